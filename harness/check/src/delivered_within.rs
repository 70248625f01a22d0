//! Delivered within a bound (000:C2): every acknowledged booking of an appointment that is
//! live at the end gets its confirmation by SMS (Twilio) and by e-mail (SendGrid) within
//! `within` of the booking's acknowledgement (the completion of the op that acknowledged
//! it; for an appointment a waitlist promotion booked, the cancellation or reschedule whose
//! answer named it). The stubs stamp arrivals on the wall clock; the evidence's start time
//! places the history's zero on it. A confirmation that never arrived is late, unless the
//! quiesce phase ended with work still in flight (then unknown). `info` bookings promise
//! nothing and are not judged; the 24 h and 1 h reminders are not the booking's to deliver
//! (`no_lost_reminders` holds them to their due time).

use chaos_model::{CheckResult, DeliveryBound, Evidence, History, OpKind, Outcome, Verdict};

use crate::deliveries::REMINDER_STUBS;
use crate::drain::still_in_flight;
use crate::fasthash::FastMap;
use crate::proof::invalid;
use crate::view::View;
use crate::{fmt_us, nearest_rank};

pub const NAME: &str = "delivered_within";

pub fn check_delivered_within(
    bound: &DeliveryBound,
    history: &History,
    evidence: &Evidence,
) -> CheckResult {
    check(bound, &View::new(history, evidence))
}

pub(crate) fn check(bound: &DeliveryBound, v: &View<'_>) -> CheckResult {
    let unknown = |reason: String| CheckResult::new(NAME, Verdict::unknown(reason));
    let Some(rows) = &v.evidence.appointments else {
        return unknown("the appointment rows were not collected".into());
    };
    let Some(delivered) = v.deliveries() else {
        return unknown("the twilio and sendgrid stubs' call logs were not collected".into());
    };
    if let Some(reason) = delivered.missing_reason() {
        return unknown(reason);
    }
    let Some(t0_ms) = v.evidence.run_started_unix_ms else {
        return unknown("the evidence has no start time to place the stubs' calls on".into());
    };
    // Appointment -> (its first acknowledgement, the op that gave it).
    let mut acked: FastMap<&str, (u64, u64)> = FastMap::default();
    for o in &v.ops {
        let named = match (o.f, o.outcome) {
            (OpKind::Book, Outcome::Ok) => o.appointment,
            (OpKind::Cancel | OpKind::Reschedule, Outcome::Ok) => o.promoted,
            _ => None,
        };
        let (Some(a), Some(at)) = (named, o.complete_us) else {
            continue;
        };
        let e = acked.entry(a).or_insert((at, o.id));
        if at < e.0 {
            *e = (at, o.id);
        }
    }
    // Only appointments live at the end.
    let mut acked: Vec<(u64, u64, &str)> = rows
        .iter()
        .filter(|r| r.status == "booked")
        .filter_map(|r| {
            let (t, op) = acked.get(r.id.as_str())?;
            Some((*op, *t, r.id.as_str()))
        })
        .collect();
    if acked.is_empty() {
        return unknown(
            "no acknowledged booking is live at the end: nothing exercised the invariant".into(),
        );
    }
    acked.sort_unstable();
    let within_ms = bound.within.as_micros() / 1000;
    let mut delays_ms: Vec<u64> = Vec::with_capacity(acked.len() * 2);
    let (mut late, mut late_ops) = (Vec::new(), Vec::new());
    let (mut missing, mut missing_ops) = (Vec::new(), Vec::new());
    for &(op, ack_us, a) in &acked {
        let ack_ms = t0_ms + ack_us / 1000;
        let judged = REMINDER_STUBS
            .iter()
            .filter(|(_, c)| bound.channels.is_empty() || bound.channels.iter().any(|b| b == c));
        for &(stub, channel) in judged {
            match delivered.first_at((a, "confirmation", channel)) {
                Some((at_ms, seq)) => {
                    let delay = at_ms.saturating_sub(ack_ms);
                    delays_ms.push(delay);
                    if delay > within_ms {
                        late_ops.push(op);
                        late.push(format!(
                            "appointment {a}: confirmation by {channel} {} after op {op} acknowledged it ({stub} call {seq}), {} late",
                            fmt_us(delay * 1000),
                            fmt_us((delay - within_ms) * 1000)
                        ));
                    }
                }
                None => {
                    missing_ops.push(op);
                    missing.push(format!(
                        "appointment {a}: no confirmation by {channel} after op {op} acknowledged it"
                    ));
                }
            }
        }
    }
    delays_ms.sort_unstable();
    let spread = if delays_ms.is_empty() {
        String::new()
    } else {
        let p99 = delays_ms[nearest_rank(delays_ms.len(), 0.99)];
        let max = delays_ms[delays_ms.len() - 1];
        format!(
            "; delivered p99 {} after acknowledgement, slowest {}",
            fmt_us(p99 * 1000),
            fmt_us(max * 1000)
        )
    };
    let summary = format!(
        "{} acknowledged bookings live at the end, bound {}{}",
        acked.len(),
        bound.within,
        if bound.channels.is_empty() {
            String::new()
        } else {
            format!(" on {}", bound.channels.join(" and "))
        }
    );
    let in_flight = still_in_flight(v.evidence);
    if late.is_empty() && missing.is_empty() {
        return CheckResult::new(
            NAME,
            (
                Verdict::Valid,
                format!("{summary}: every confirmation by SMS and e-mail in time{spread}"),
            ),
        );
    }
    if late.is_empty()
        && let Some(in_flight) = in_flight.as_deref()
    {
        let reason = format!(
            "{} confirmation(s) not delivered yet, {in_flight}",
            missing.len()
        );
        return unknown(reason);
    }
    let mut ops = late_ops;
    let mut proof = late;
    let detail = if in_flight.is_some() {
        format!(
            "{summary}: {} confirmation(s) late; {} not delivered yet (still in flight, not judged){spread}",
            proof.len(),
            missing.len()
        )
    } else {
        let d = format!(
            "{summary}: {} confirmation(s) late, {} never delivered{spread}",
            proof.len(),
            missing.len()
        );
        ops.append(&mut missing_ops);
        proof.append(&mut missing);
        d
    };
    invalid(NAME, ops, proof, |_| detail)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::*;
    use chaos_model::{Dur, Record};

    const T0: u64 = 1_000_000;

    fn bound() -> DeliveryBound {
        DeliveryBound {
            within: Dur::from_secs(2),
            channels: Vec::new(),
        }
    }

    #[test]
    fn only_the_named_channels_are_judged() {
        // The SMS is 5 s late, the e-mail on time.
        let (records, ev) = world(Some(5_000), Some(100));
        assert!(matches!(
            run(records.clone(), &ev).verdict,
            Verdict::Invalid { .. }
        ));
        let email_only = DeliveryBound {
            channels: vec!["email".into()],
            ..bound()
        };
        let r = check_delivered_within(&email_only, &history(records), &ev);
        assert_eq!(r.verdict, Verdict::Valid, "{}", r.detail);
        assert!(r.detail.contains("on email"), "{}", r.detail);
    }

    /// Booking op 1 acknowledged at 101 us (0 ms), its confirmations arriving at these
    /// milliseconds after the start (None: never).
    fn world(sms_ms: Option<u64>, email_ms: Option<u64>) -> (Vec<Record>, Evidence) {
        let mut calls = Vec::new();
        if let Some(t) = sms_ms {
            calls.push(arrived(sms("a1", "confirmation", 1), T0 + t, None));
        }
        if let Some(t) = email_ms {
            calls.push(arrived(email("a1", "confirmation", 2), T0 + t, None));
        }
        let mut ev = stubs(&calls);
        ev.appointments = Some(vec![row("a1")]);
        ev.run_started_unix_ms = Some(T0);
        (vec![book(1, SLOT), booked(1, "a1")], ev)
    }

    fn run(records: Vec<Record>, ev: &Evidence) -> CheckResult {
        check_delivered_within(&bound(), &history(records), ev)
    }

    #[test]
    fn confirmations_in_time_on_both_channels_are_valid() {
        let (h, ev) = world(Some(300), Some(1_900));
        let r = run(h, &ev);
        assert_eq!(r.verdict, Verdict::Valid, "{}", r.detail);
        assert!(r.detail.contains("slowest 1.90s"), "{}", r.detail);
    }

    #[test]
    fn a_late_confirmation_is_invalid_with_its_booking_and_lateness() {
        let (h, ev) = world(Some(300), Some(3_500));
        match run(h, &ev).verdict {
            Verdict::Invalid { ops, rows } => {
                assert_eq!(ops, vec![1]);
                assert_eq!(rows.len(), 1);
                assert!(
                    rows[0].contains("email 3.50s after op 1") && rows[0].contains("1.50s late"),
                    "{rows:?}"
                );
            }
            v => panic!("expected invalid, got {v:?}"),
        }
    }

    #[test]
    fn a_missing_confirmation_is_late_unless_work_is_in_flight() {
        let (h, mut ev) = world(Some(300), None);
        assert!(matches!(
            run(h.clone(), &ev).verdict,
            Verdict::Invalid { .. }
        ));
        ev.drain = Some(drain(true));
        match run(h.clone(), &ev).verdict {
            Verdict::Invalid { rows, .. } => {
                assert!(rows[0].contains("no confirmation by email"), "{rows:?}")
            }
            v => panic!("expected invalid, got {v:?}"),
        }
        ev.drain = Some(drain(false));
        let r = run(h, &ev);
        match &r.verdict {
            Verdict::Unknown { reason } => assert!(reason.contains("still in flight"), "{reason}"),
            v => panic!("expected unknown, got {v:?}"),
        }
        // A late one is a fact even while other work is in flight.
        let (h, mut ev) = world(Some(5_000), None);
        ev.drain = Some(drain(false));
        assert!(matches!(run(h, &ev).verdict, Verdict::Invalid { .. }));
    }

    #[test]
    fn a_promotion_counts_from_the_answer_that_named_it() {
        // Appointment p1 was booked by the waitlist promotion of cancellation op 5,
        // acknowledged at 5.0 s; its confirmations at 6.0 s are in time.
        let mut ev = stubs(&[
            arrived(sms("p1", "confirmation", 1), T0 + 6_000, None),
            arrived(email("p1", "confirmation", 2), T0 + 6_000, None),
        ]);
        ev.appointments = Some(vec![row("p1")]);
        ev.run_started_unix_ms = Some(T0);
        let h = vec![
            invoked(5, OpKind::Cancel, 4_000_000),
            amend(ended(5, Outcome::Ok, 5_000_000, Some(200)), |c| {
                c.appointment = Some("a0".into());
                c.promoted = Some("p1".into());
            }),
        ];
        let r = run(h.clone(), &ev);
        assert_eq!(r.verdict, Verdict::Valid, "{}", r.detail);
        // Counted from the history's zero instead, it would have arrived 6 s after.
        ev.run_started_unix_ms = Some(T0 - 5_000);
        assert!(matches!(run(h, &ev).verdict, Verdict::Invalid { .. }));
    }

    #[test]
    fn info_bookings_cancelled_appointments_and_missing_evidence_are_unknown() {
        let (_, ev) = world(None, None);
        // The booking timed out: it promised nothing.
        let r = run(vec![book(1, SLOT), timed_out(1)], &ev);
        assert!(matches!(r.verdict, Verdict::Unknown { .. }), "{r:?}");
        // The appointment is not live at the end.
        let (h, mut gone) = world(None, None);
        gone.appointments.as_mut().unwrap()[0].status = "cancelled".into();
        assert!(matches!(run(h, &gone).verdict, Verdict::Unknown { .. }));
        let (h, mut ev) = world(Some(1), Some(1));
        ev.stub_calls.remove("sendgrid");
        match run(h.clone(), &ev).verdict {
            Verdict::Unknown { reason } => assert!(reason.contains("sendgrid"), "{reason}"),
            v => panic!("expected unknown, got {v:?}"),
        }
        let (_, mut ev) = world(Some(1), Some(1));
        ev.run_started_unix_ms = None;
        assert!(matches!(run(h, &ev).verdict, Verdict::Unknown { .. }));
    }
}
