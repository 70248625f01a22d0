//! Reminder deliveries read from the stubs' call logs: which (appointment, kind, channel)
//! each successful SMS (Twilio) and e-mail (SendGrid) was for. Shared by the reminder
//! checkers.

use std::collections::BTreeMap;

use crate::fasthash::FastMap;

use chaos_model::Evidence;

/// (appointment id, reminder kind, channel), borrowed from the evidence.
pub type DeliveryKey<'a> = (&'a str, &'a str, &'static str);

/// Every successful delivery, in the stubs' order, and how many times each key was
/// delivered (a hash count: the order of any output comes from the sorted repeats).
pub struct Deliveries<'a> {
    calls: Vec<(DeliveryKey<'a>, u64)>,
    counts: FastMap<DeliveryKey<'a>, u32>,
    any_repeated: bool,
}

impl<'a> Deliveries<'a> {
    /// How many distinct (appointment, kind, channel) were delivered.
    pub fn distinct(&self) -> usize {
        self.counts.len()
    }

    /// Appointment id -> the channels its confirmation reached (bit 0 SMS, bit 1 e-mail).
    pub fn confirmed(&self) -> FastMap<&'a str, u8> {
        let mut out: FastMap<&'a str, u8> = FastMap::default();
        out.reserve(self.counts.len() / 2);
        for ((id, kind, channel), _) in &self.calls {
            if *kind == "confirmation" {
                *out.entry(id).or_default() |= channel_bit(channel);
            }
        }
        out
    }

    /// Keys delivered more than once, sorted, each with the stub sequence numbers of its
    /// deliveries in the stubs' order.
    pub fn repeated(&self) -> BTreeMap<DeliveryKey<'a>, Vec<u64>> {
        let mut out: BTreeMap<DeliveryKey<'a>, Vec<u64>> = BTreeMap::new();
        if !self.any_repeated {
            return out;
        }
        for (k, seq) in &self.calls {
            if self.counts[k] > 1 {
                out.entry(*k).or_default().push(*seq);
            }
        }
        out
    }
}

/// The bit of a channel in [`Deliveries::confirmed`].
pub fn channel_bit(channel: &str) -> u8 {
    if channel == "sms" { 1 } else { 2 }
}

/// Every successful delivery. `None` when neither stub's log was collected.
pub fn deliveries(evidence: &Evidence) -> Option<Deliveries<'_>> {
    let sms = evidence.stub_calls.get("twilio");
    let email = evidence.stub_calls.get("sendgrid");
    if sms.is_none() && email.is_none() {
        return None;
    }
    let mut calls = Vec::new();
    for c in sms
        .into_iter()
        .flatten()
        .filter(|c| (200..300).contains(&c.status))
    {
        // MediConnect's SMS bodies end in "Ref <appointment>/<kind>".
        let body = c.body["Body"].as_str().unwrap_or_default();
        if let Some((id, kind)) = body
            .rsplit_once("Ref ")
            .and_then(|(_, r)| r.trim().split_once('/'))
        {
            calls.push(((id, kind, "sms"), c.seq));
        }
    }
    for c in email
        .into_iter()
        .flatten()
        .filter(|c| (200..300).contains(&c.status))
    {
        let args = &c.body["custom_args"];
        if let (Some(id), Some(kind)) = (args["appointment_id"].as_str(), args["kind"].as_str()) {
            calls.push(((id, kind, "email"), c.seq));
        }
    }
    let mut counts: FastMap<DeliveryKey<'_>, u32> = FastMap::default();
    counts.reserve(calls.len());
    let mut any_repeated = false;
    for (k, _) in &calls {
        let n = counts.entry(*k).or_default();
        *n += 1;
        any_repeated |= *n > 1;
    }
    Some(Deliveries {
        calls,
        counts,
        any_repeated,
    })
}

/// The op ids of acknowledged or unknown bookings that returned each appointment id.
pub fn booking_ops<'a>(ops: &[chaos_model::Op<'a>]) -> FastMap<&'a str, u64> {
    ops.iter()
        .filter(|o| o.f == chaos_model::OpKind::Book)
        .filter_map(|o| o.appointment.map(|a| (a, o.id)))
        .collect()
}
