//! Reminder deliveries read from the stubs' call logs: which (appointment, kind, channel)
//! each successful SMS (Twilio) and e-mail (SendGrid) was for, and when it arrived. Shared by
//! the reminder checkers and `trace_propagates`.

use std::collections::BTreeMap;

use crate::fasthash::FastMap;

use chaos_model::{Evidence, StubCall};

/// (appointment id, reminder kind, channel), borrowed from the evidence.
pub type DeliveryKey<'a> = (&'a str, &'a str, &'static str);

/// The reminder stubs: (stub name, channel).
pub const REMINDER_STUBS: [(&str, &str); 2] = [("twilio", "sms"), ("sendgrid", "email")];

/// How many times one key was delivered, and its first delivery.
#[derive(Debug, Clone, Copy)]
struct Count {
    n: u32,
    /// Arrival (Unix ms) and stub sequence number of the earliest delivery.
    first: (u64, u64),
}

/// Every successful delivery, in the stubs' order, and how many times each key was
/// delivered (a hash count: the order of any output comes from the sorted repeats).
pub struct Deliveries<'a> {
    /// (key, stub sequence number, arrival in Unix ms).
    calls: Vec<(DeliveryKey<'a>, u64, u64)>,
    counts: FastMap<DeliveryKey<'a>, Count>,
    any_repeated: bool,
    /// The reminder stubs whose log was not collected, in `REMINDER_STUBS` order.
    missing: Vec<&'static str>,
}

impl<'a> Deliveries<'a> {
    /// How many distinct (appointment, kind, channel) were delivered.
    pub fn distinct(&self) -> usize {
        self.counts.len()
    }

    /// Whether this (appointment, kind, channel) was delivered at least once.
    pub fn has(&self, key: DeliveryKey<'_>) -> bool {
        // The map's keys borrow from the evidence; look up by value.
        self.counts.contains_key(&key)
    }

    /// "the twilio and sendgrid stubs' call logs were not collected", when any is missing.
    pub fn missing_reason(&self) -> Option<String> {
        missing_logs(&self.missing)
    }

    /// Appointment id -> the channels its confirmation reached (bit 0 SMS, bit 1 e-mail).
    pub fn confirmed(&self) -> FastMap<&'a str, u8> {
        let mut out: FastMap<&'a str, u8> = FastMap::default();
        out.reserve(self.counts.len() / 2);
        for ((id, kind, channel), _, _) in &self.calls {
            if *kind == "confirmation" {
                *out.entry(id).or_default() |= channel_bit(channel);
            }
        }
        out
    }

    /// A delivered key's first delivery: (arrival in Unix ms, stub sequence number).
    pub fn first_at(&self, key: DeliveryKey<'_>) -> Option<(u64, u64)> {
        self.counts.get(&key).map(|c| c.first)
    }

    /// Keys delivered more than once, sorted, each with the stub sequence numbers of its
    /// deliveries in the stubs' order.
    pub fn repeated(&self) -> BTreeMap<DeliveryKey<'a>, Vec<u64>> {
        let mut out: BTreeMap<DeliveryKey<'a>, Vec<u64>> = BTreeMap::new();
        if !self.any_repeated {
            return out;
        }
        for (k, seq, _) in &self.calls {
            if self.counts[k].n > 1 {
                out.entry(*k).or_default().push(*seq);
            }
        }
        out
    }
}

/// A sentence naming the stubs whose call log was not collected, if any.
pub fn missing_logs(stubs: &[&str]) -> Option<String> {
    match stubs {
        [] => None,
        [one] => Some(format!("the {one} stub's call log was not collected")),
        many => Some(format!(
            "the {} stubs' call logs were not collected",
            many.join(" and ")
        )),
    }
}

/// The bit of a channel in [`Deliveries::confirmed`].
pub fn channel_bit(channel: &str) -> u8 {
    if channel == "sms" { 1 } else { 2 }
}

/// The (appointment, kind) a call to a reminder stub was for, whatever its answer:
/// MediConnect's SMS bodies end in "Ref <appointment>/<kind>", its e-mails carry both in
/// SendGrid's `custom_args`.
pub fn reminder_of<'a>(stub: &str, c: &'a StubCall) -> Option<(&'a str, &'a str)> {
    match stub {
        "twilio" => c.body["Body"]
            .as_str()?
            .rsplit_once("Ref ")
            .and_then(|(_, r)| r.trim().split_once('/')),
        "sendgrid" => {
            let args = &c.body["custom_args"];
            Some((args["appointment_id"].as_str()?, args["kind"].as_str()?))
        }
        _ => None,
    }
}

/// The appointment an EHR push was for: the FHIR resource's first identifier.
pub fn ehr_appointment(c: &StubCall) -> Option<&str> {
    c.body["identifier"][0]["value"].as_str()
}

/// Every successful delivery. `None` when neither stub's log was collected.
pub fn deliveries(evidence: &Evidence) -> Option<Deliveries<'_>> {
    let mut missing = Vec::new();
    let mut calls = Vec::new();
    for (stub, channel) in REMINDER_STUBS {
        let Some(log) = evidence.stub_calls.get(stub) else {
            missing.push(stub);
            continue;
        };
        for c in log.iter().filter(|c| c.took_effect()) {
            if let Some((id, kind)) = reminder_of(stub, c) {
                calls.push(((id, kind, channel), c.seq, c.at_ms));
            }
        }
    }
    if missing.len() == REMINDER_STUBS.len() {
        return None;
    }
    let mut counts: FastMap<DeliveryKey<'_>, Count> = FastMap::default();
    counts.reserve(calls.len());
    let mut any_repeated = false;
    for &(k, seq, at) in &calls {
        let c = counts.entry(k).or_insert(Count {
            n: 0,
            first: (at, seq),
        });
        c.n += 1;
        if at < c.first.0 {
            c.first = (at, seq);
        }
        any_repeated |= c.n > 1;
    }
    Some(Deliveries {
        calls,
        counts,
        any_repeated,
        missing,
    })
}

/// The op ids of acknowledged or unknown bookings that returned each appointment id.
pub fn booking_ops<'a>(ops: &[chaos_model::Op<'a>]) -> FastMap<&'a str, u64> {
    ops.iter()
        .filter(|o| o.f == chaos_model::OpKind::Book)
        .filter_map(|o| o.appointment.map(|a| (a, o.id)))
        .collect()
}
