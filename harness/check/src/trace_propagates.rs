//! Trace propagates (000:C13, 001:C-5): every stub call an acknowledged booking caused
//! carries that booking's trace id (its `traceparent`), so one booking can be followed
//! through the queue, the workers and the providers. The calls a booking causes: its
//! confirmation SMS and e-mail (named as `deliveries.rs` reads them, answered or not) and
//! the EHR pushes of its appointment, up to the first cancellation or reschedule of it
//! (later pushes carry that op's state and may carry its trace). A booking retried with
//! its `Idempotency-Key` may have been applied by any of its tries: any of their traces
//! will do. The 24 h and 1 h reminders are the poller's, not the booking's: not judged, nor
//! appointments a waitlist promotion booked.

use chaos_model::{CheckResult, Evidence, History, OpKind, Outcome, Verdict};

use crate::deliveries::{REMINDER_STUBS, ehr_appointment, missing_logs, reminder_of};
use crate::fasthash::FastMap;
use crate::proof::invalid;
use crate::view::View;

pub const NAME: &str = "trace_propagates";

pub fn check_trace_propagates(history: &History, evidence: &Evidence) -> CheckResult {
    check(&View::new(history, evidence))
}

/// The booking that caused an appointment's calls: its first acknowledging op, that op's
/// trace and key (every try with the key may have applied it), and whether a call was
/// judged against it.
struct Cause<'a> {
    op: u64,
    trace: Option<&'a str>,
    key: Option<&'a str>,
    judged: bool,
}

pub(crate) fn check(v: &View<'_>) -> CheckResult {
    let ev = v.evidence;
    let mut key_traces: FastMap<&str, Vec<&str>> = FastMap::default();
    for o in v.ops.iter().filter(|o| o.f == OpKind::Book) {
        if let (Some(k), Some(t)) = (o.key, o.trace) {
            key_traces.entry(k).or_default().push(t);
        }
    }
    // Appointment -> its cause's index in `causes`.
    let mut caused_by: FastMap<&str, usize> = FastMap::default();
    let mut causes: Vec<Cause<'_>> = Vec::new();
    for o in v.ops.iter().filter(|o| o.f == OpKind::Book) {
        let (Outcome::Ok, Some(a)) = (o.outcome, o.appointment) else {
            continue;
        };
        let keyed = o.key.filter(|k| key_traces.contains_key(k));
        if o.trace.is_none() && keyed.is_none() {
            continue;
        }
        // Ops come in id order: the first acknowledgement is the cause.
        caused_by.entry(a).or_insert_with(|| {
            causes.push(Cause {
                op: o.id,
                trace: o.trace,
                key: keyed,
                judged: false,
            });
            causes.len() - 1
        });
    }
    // Appointment -> the first invocation of an op that changed it after its booking.
    let mut changed_from: FastMap<&str, u64> = FastMap::default();
    for o in &v.ops {
        if matches!(o.f, OpKind::Cancel | OpKind::Reschedule)
            && let Some(a) = o.target.or(o.appointment)
        {
            let t = changed_from.entry(a).or_insert(u64::MAX);
            *t = (*t).min(o.invoke_us);
        }
    }
    let traces_of = |c: &Cause<'_>| -> String {
        let mut t: Vec<String> = c.trace.into_iter().map(str::to_string).collect();
        if let Some(k) = c.key {
            t.extend(key_traces[k].iter().map(|s| s.to_string()));
        }
        t.join(" or ")
    };
    let mut judged = 0usize;
    let mut proof = Vec::new();
    let mut ops = Vec::new();
    let mut judge = |stub: &str, seq: u64, a: &str, what: &str, trace: Option<&str>, i: usize| {
        let cause = &mut causes[i];
        cause.judged = true;
        judged += 1;
        let same = |b: &str| trace.is_some_and(|t| t.eq_ignore_ascii_case(b));
        if cause.trace.is_some_and(same)
            || cause
                .key
                .is_some_and(|k| key_traces[k].iter().copied().any(same))
        {
            return;
        }
        ops.push(cause.op);
        let expected = traces_of(cause);
        proof.push(match trace {
            None => format!(
                "{stub} call {seq} ({what} of appointment {a}) carried no trace; booking op {} had {expected}",
                cause.op
            ),
            Some(t) => format!(
                "{stub} call {seq} ({what} of appointment {a}) carried trace {t}, not booking op {}'s {expected}",
                cause.op
            ),
        });
    };
    let caused = v.caused_calls();
    for c in &caused.calls {
        let Some(&i) = caused_by.get(c.appointment) else {
            continue;
        };
        let what = match c.push {
            None => "confirmation",
            Some((at_ms, booked)) => {
                if let Some(&from_us) = changed_from.get(c.appointment) {
                    // Only pushes that arrived before the change are the booking's alone.
                    let Some(t0) = ev.run_started_unix_ms else {
                        continue;
                    };
                    if at_ms >= t0.saturating_add(from_us / 1000) || !booked {
                        continue;
                    }
                }
                "push"
            }
        };
        judge(c.stub, c.seq, c.appointment, what, c.trace, i);
    }
    let missing = &caused.missing;
    let bookings = causes.iter().filter(|c| c.judged).count();
    let detail = format!(
        "{judged} stub call(s) caused by {bookings} acknowledged booking(s) that carried a trace"
    );
    if !proof.is_empty() {
        return invalid(NAME, ops, proof, |n| {
            format!("{detail}: {n} without their booking's trace")
        });
    }
    if let Some(reason) = missing_logs(missing) {
        return CheckResult::new(NAME, Verdict::unknown(reason));
    }
    if judged == 0 {
        return CheckResult::new(
            NAME,
            Verdict::unknown(
                "no stub call can be traced to an acknowledged booking that carried a trace",
            ),
        );
    }
    CheckResult::new(
        NAME,
        (
            Verdict::Valid,
            detail + ": each carried its booking's trace",
        ),
    )
}

/// A stub call a booking may have caused, as its stub logged it.
pub(crate) struct Caused<'e> {
    stub: &'static str,
    seq: u64,
    appointment: &'e str,
    /// For an EHR push (else it is a confirmation): its arrival (Unix ms) and whether it
    /// pushed the status `booked`.
    push: Option<(u64, bool)>,
    trace: Option<&'e str>,
}

/// Every call a booking may cause, in the stubs' order, and the stubs whose log was not
/// collected: read from the evidence alone (`prepare` reads it beside the history).
pub(crate) struct CausedCalls<'e> {
    pub(crate) calls: Vec<Caused<'e>>,
    pub(crate) missing: Vec<&'static str>,
}

pub(crate) fn caused_calls(ev: &Evidence) -> CausedCalls<'_> {
    let (mut calls, mut missing) = (Vec::new(), Vec::new());
    for (stub, _) in REMINDER_STUBS {
        let Some(log) = ev.stub_calls.get(stub) else {
            missing.push(stub);
            continue;
        };
        for c in log {
            if let Some((appointment, "confirmation")) = reminder_of(stub, c) {
                calls.push(Caused {
                    stub,
                    seq: c.seq,
                    appointment,
                    push: None,
                    trace: c.trace.as_deref(),
                });
            }
        }
    }
    match ev.stub_calls.get("ehr") {
        None => missing.push("ehr"),
        Some(log) => calls.extend(log.iter().filter_map(|c| {
            Some(Caused {
                stub: "ehr",
                seq: c.seq,
                appointment: ehr_appointment(c)?,
                push: Some((c.at_ms, c.body["status"] == "booked")),
                trace: c.trace.as_deref(),
            })
        })),
    }
    CausedCalls { calls, missing }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::*;
    use chaos_model::{Record, StubCall};

    const T1: &str = "0af7651916cd43dd8448eb211c80319c";
    const T2: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

    fn traced_booking(op: u64, trace: &str, key: Option<&str>) -> Record {
        edit(book(op, SLOT), |i| {
            i.trace = Some(trace.into());
            i.key = key.map(str::to_string);
        })
    }

    fn evidence(calls: &[StubCall], ehr: Vec<StubCall>) -> Evidence {
        let mut ev = stubs(calls);
        ev.stub_calls.insert("ehr".into(), ehr);
        ev.run_started_unix_ms = Some(0);
        ev
    }

    fn run(records: Vec<Record>, ev: &Evidence) -> CheckResult {
        check_trace_propagates(&history(records), ev)
    }

    #[test]
    fn every_call_of_a_booking_with_its_trace_is_valid() {
        let ev = evidence(
            &[
                arrived(sms("a1", "confirmation", 1), 5, Some(T1)),
                arrived(email("a1", "confirmation", 2), 5, Some(T1)),
                // The poller's reminder carries another trace: not the booking's call.
                arrived(sms("a1", "24h", 3), 5, Some(T2)),
            ],
            vec![arrived(
                ehr_push(4, "PUT", "a1", 201, "booked"),
                6,
                Some(T1),
            )],
        );
        let r = run(vec![traced_booking(1, T1, None), booked(1, "a1")], &ev);
        assert_eq!(r.verdict, Verdict::Valid, "{}", r.detail);
        assert!(r.detail.starts_with("3 stub call(s)"), "{}", r.detail);
    }

    #[test]
    fn a_call_without_the_trace_is_invalid_with_its_stub_seq_and_booking() {
        let ev = evidence(
            &[
                arrived(sms("a1", "confirmation", 1), 5, Some(T1)),
                arrived(email("a1", "confirmation", 2), 5, None),
            ],
            vec![arrived(
                ehr_push(4, "PUT", "a1", 201, "booked"),
                6,
                Some(T2),
            )],
        );
        match run(vec![traced_booking(1, T1, None), booked(1, "a1")], &ev).verdict {
            Verdict::Invalid { ops, rows } => {
                assert_eq!(ops, vec![1]);
                assert!(
                    rows[0].contains("sendgrid call 2") && rows[0].contains("no trace"),
                    "{rows:?}"
                );
                assert!(
                    rows[1].contains("ehr call 4") && rows[1].contains(T2),
                    "{rows:?}"
                );
            }
            v => panic!("expected invalid, got {v:?}"),
        }
    }

    #[test]
    fn any_try_of_a_keyed_booking_may_have_applied_it_and_later_changes_are_not_judged() {
        // Try 1 timed out but applied (its trace reached the stubs); try 2 got the replay.
        let mut h = vec![
            traced_booking(1, T1, Some("k")),
            timed_out(1),
            traced_booking(2, T2, Some("k")),
            booked(2, "a1"),
        ];
        h.extend(cancel(1_000, 2, "a1", true));
        let ev = evidence(
            &[
                arrived(sms("a1", "confirmation", 1), 0, Some(T1)),
                arrived(email("a1", "confirmation", 2), 0, Some(T1)),
            ],
            vec![
                arrived(ehr_push(3, "PUT", "a1", 201, "booked"), 0, Some(T1)),
                // The cancellation's push, after it was sent: its own trace, or none.
                arrived(ehr_push(4, "PUT", "a1", 200, "cancelled"), 2, None),
            ],
        );
        let r = run(h, &ev);
        assert_eq!(r.verdict, Verdict::Valid, "{}", r.detail);
    }

    #[test]
    fn a_push_before_the_change_is_judged_only_when_it_pushed_booked_and_can_be_placed() {
        let mut h = vec![traced_booking(1, T1, None), booked(1, "a1")];
        // Cancelled 5 ms into the run.
        h.extend(cancel(5_000, 1, "a1", true));
        let confirmations = [
            arrived(sms("a1", "confirmation", 1), 0, Some(T1)),
            arrived(email("a1", "confirmation", 2), 0, Some(T1)),
        ];
        let first = arrived(ehr_push(3, "PUT", "a1", 201, "booked"), 0, Some(T1));
        let untraced = |status: &str| arrived(ehr_push(4, "PUT", "a1", 200, status), 1, None);
        // Before the change and `booked`: the booking's own push, judged.
        let ev = evidence(&confirmations, vec![first.clone(), untraced("booked")]);
        match run(h.clone(), &ev).verdict {
            Verdict::Invalid { rows, .. } => assert!(rows[0].contains("ehr call 4"), "{rows:?}"),
            v => panic!("expected invalid, got {v:?}"),
        }
        // Before the change but pushing another state: not the booking's alone.
        let ev = evidence(&confirmations, vec![first.clone(), untraced("cancelled")]);
        let r = run(h.clone(), &ev);
        assert_eq!(r.verdict, Verdict::Valid, "{}", r.detail);
        assert!(r.detail.starts_with("3 stub call(s)"), "{}", r.detail);
        // Without the run's start the pushes cannot be placed before the change: neither is
        // judged.
        let mut ev = evidence(&confirmations, vec![first, untraced("booked")]);
        ev.run_started_unix_ms = None;
        let r = run(h, &ev);
        assert_eq!(r.verdict, Verdict::Valid, "{}", r.detail);
        assert!(r.detail.starts_with("2 stub call(s)"), "{}", r.detail);
    }

    #[test]
    fn untraced_or_unacknowledged_bookings_and_missing_logs_are_unknown() {
        let ev = evidence(&[arrived(sms("a1", "confirmation", 1), 5, None)], vec![]);
        // No trace on the booking: nothing to propagate.
        let r = run(vec![book(1, SLOT), booked(1, "a1")], &ev);
        assert!(matches!(r.verdict, Verdict::Unknown { .. }), "{r:?}");
        // A 500 naming the appointment acknowledged nothing.
        let r = run(
            vec![traced_booking(1, T1, None), server_error(1, "a1")],
            &ev,
        );
        assert!(matches!(r.verdict, Verdict::Unknown { .. }), "{r:?}");
        let mut ev = evidence(
            &[arrived(sms("a1", "confirmation", 1), 5, Some(T1))],
            vec![],
        );
        ev.stub_calls.remove("ehr");
        match run(vec![traced_booking(1, T1, None), booked(1, "a1")], &ev).verdict {
            Verdict::Unknown { reason } => assert!(reason.contains("the ehr stub"), "{reason}"),
            v => panic!("expected unknown, got {v:?}"),
        }
    }
}
