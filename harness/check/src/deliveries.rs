//! Reminder deliveries read from the stubs' call logs: which (appointment, kind, channel)
//! each successful SMS (Twilio) and e-mail (SendGrid) was for. Shared by the reminder
//! checkers.

use std::collections::BTreeMap;

use chaos_model::Evidence;

/// (appointment id, reminder kind, channel).
pub type DeliveryKey = (String, String, &'static str);

/// Every successful delivery, by key, with the stub's sequence numbers of its calls.
/// `None` when neither stub's log was collected.
pub fn deliveries(evidence: &Evidence) -> Option<BTreeMap<DeliveryKey, Vec<u64>>> {
    let sms = evidence.stub_calls.get("twilio");
    let email = evidence.stub_calls.get("sendgrid");
    if sms.is_none() && email.is_none() {
        return None;
    }
    let mut out: BTreeMap<DeliveryKey, Vec<u64>> = BTreeMap::new();
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
            out.entry((id.to_string(), kind.to_string(), "sms"))
                .or_default()
                .push(c.seq);
        }
    }
    for c in email
        .into_iter()
        .flatten()
        .filter(|c| (200..300).contains(&c.status))
    {
        let args = &c.body["custom_args"];
        if let (Some(id), Some(kind)) = (args["appointment_id"].as_str(), args["kind"].as_str()) {
            out.entry((id.to_string(), kind.to_string(), "email"))
                .or_default()
                .push(c.seq);
        }
    }
    Some(out)
}

/// The op ids of acknowledged or unknown bookings that returned each appointment id.
pub fn booking_ops(history: &chaos_model::History) -> BTreeMap<String, u64> {
    history
        .ops()
        .into_iter()
        .filter_map(|o| o.appointment.map(|a| (a, o.id)))
        .collect()
}
