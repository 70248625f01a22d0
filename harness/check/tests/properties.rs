//! Property tests of the checkers: a generated clean history (with the evidence a correct
//! system leaves) is always valid on every safety invariant, and a planted anomaly is
//! always caught, by the right invariant, with the planted op among its proof. Invariants
//! whose data the generator does not produce (sessions, waitlists, reschedules, gauges,
//! probes) must say unknown there, never valid.

#[path = "support/generate.rs"]
mod generate;

use chaos_check::check_all;
use chaos_model::{
    CheckResult, Completion, Evidence, History, OpKind, Outcome, Record, Slot, Verdict,
};
use generate::{Intent, World, clean, email, free_at_end, scenario, sms};
use proptest::prelude::*;

/// The invariants a correct system must always satisfy, whatever the timing.
const SAFETY: [&str; 9] = [
    "no_double_booking",
    "acknowledged_durable",
    "auth_fails_closed",
    "ehr_sync",
    "no_duplicate_reminders",
    "no_lost_reminders",
    "linearizable",
    "waitlist_promotes_once",
    "no_lost_update",
];

/// Invariants that need data the generator does not produce: always unknown on its worlds.
const UNFED: [&str; 3] = ["readiness", "sessions_survive", "metrics_reflect"];

/// The ops of a world the client gave up on (the generator's timeouts).
fn gave_up(w: &World) -> Vec<u64> {
    w.history
        .ops()
        .iter()
        .filter(|o| o.status.is_none() && o.error == Some("timeout"))
        .map(|o| o.id)
        .collect()
}

/// The stub call of `stub` that `appointment`'s booking caused.
fn call_of<'a>(w: &'a mut World, stub: &str, appointment: &str) -> &'a mut chaos_model::StubCall {
    w.evidence
        .stub_calls
        .get_mut(stub)
        .unwrap()
        .iter_mut()
        .find(|c| {
            c.body["Body"]
                .as_str()
                .is_some_and(|b| b.contains(&format!("Ref {appointment}/")))
                || c.body["custom_args"]["appointment_id"] == appointment
                || c.body["identifier"][0]["value"] == appointment
        })
        .expect("every applied booking has its calls")
}

fn intents(max_slots: u32) -> impl Strategy<Value = Vec<Intent>> {
    prop::collection::vec(
        (0u8..7, 0..max_slots, 0u8..5, 1u16..20_000, 1u16..30_000).prop_map(
            |(kind, slot, fate, gap_us, latency_us)| Intent {
                kind,
                slot,
                fate,
                gap_us,
                latency_us,
            },
        ),
        1..250,
    )
}

fn results(w: &World) -> Vec<CheckResult> {
    check_all(&scenario(), &w.history, &w.evidence)
}

fn verdict<'a>(rs: &'a [CheckResult], name: &str) -> &'a Verdict {
    &rs.iter()
        .find(|r| r.invariant == name)
        .unwrap_or_else(|| panic!("no result for {name}"))
        .verdict
}

/// Valid, or unknown because the history never exercised it (no booking, no forged op).
fn holds(v: &Verdict) -> bool {
    matches!(v, Verdict::Valid | Verdict::Unknown { .. })
}

fn proof_ops(v: &Verdict) -> &[u64] {
    match v {
        Verdict::Invalid { ops, .. } => ops,
        _ => &[],
    }
}

/// Append an acknowledged booking of `op`'s slot (already booked), with its row and its
/// confirmations: the system let a second client have the slot.
fn plant_double_booking(w: &mut World, first: u64) -> u64 {
    let ops = w.history.ops();
    let slot = ops[(first - 1) as usize]
        .slot
        .expect("a booking has a slot");
    let end = w
        .history
        .records
        .iter()
        .map(Record::time_us)
        .max()
        .unwrap_or(0);
    let op = ops.len() as u64 + 1;
    let id = format!("a-{op}");
    w.history.records.push(Record::Invoke(chaos_model::Invoke {
        slot: Some(slot),
        ..chaos_model::Invoke::new(op, 99, chaos_model::OpKind::Book, end + 1, end + 1)
    }));
    w.history.records.push(Record::Ok(Completion {
        op,
        time_us: end + 2,
        status: Some(201),
        appointment: Some(id.clone()),
        error: None,
        ..Completion::default()
    }));
    let rows = w.evidence.appointments.as_mut().unwrap();
    rows.push(chaos_model::AppointmentRow {
        id: id.clone(),
        patient: 99,
        slot,
        status: "booked".into(),
        version: None,
    });
    push_call(&mut w.evidence, "twilio", sms(10_000_000, &id));
    push_call(&mut w.evidence, "sendgrid", email(10_000_001, &id));
    push_call(&mut w.evidence, "ehr", generate::ehr(10_000_002, &id));
    op
}

fn push_call(ev: &mut Evidence, stub: &str, call: chaos_model::StubCall) {
    ev.stub_calls.get_mut(stub).unwrap().push(call);
}

/// Slots no unanswered op touched, with whether a live row holds them at the end and
/// whether a booking's answer showed them to be slots of the template.
fn settled_slots(w: &World) -> Vec<(Slot, bool)> {
    let ops = w.history.ops();
    let touched = |o: &chaos_model::Op<'_>| o.slot.into_iter().chain(o.to);
    let unsettled: std::collections::BTreeSet<Slot> = ops
        .iter()
        .filter(|o| o.f != OpKind::Availability && o.outcome == Outcome::Info)
        .flat_map(touched)
        .collect();
    let mut slots: Vec<Slot> = ops
        .iter()
        .filter(|o| o.f == OpKind::Book && (o.outcome == Outcome::Ok || o.status == Some(409)))
        .filter_map(|o| o.slot)
        .filter(|s| !unsettled.contains(s))
        .collect();
    slots.sort_unstable();
    slots.dedup();
    let rows = w.evidence.appointments.as_ref().unwrap();
    slots
        .into_iter()
        .map(|s| (s, rows.iter().any(|r| r.slot == s && r.status == "booked")))
        .collect()
}

/// Append an op of kind `f` on `slot` sent after everything else, answered by `done`.
fn plant(w: &mut World, f: OpKind, slot: Slot, done: Record) -> u64 {
    let end = w
        .history
        .records
        .iter()
        .map(Record::time_us)
        .max()
        .unwrap_or(0);
    let op = w.history.ops().len() as u64 + 1;
    w.history.records.push(Record::Invoke(chaos_model::Invoke {
        slot: Some(slot),
        ..chaos_model::Invoke::new(op, 99, f, end + 1, end + 1)
    }));
    let mut done = done;
    if let Record::Ok(c) | Record::Fail(c) = &mut done {
        c.op = op;
        c.time_us = end + 2;
    }
    w.history.records.push(done);
    op
}

fn caught_by_linearizable(w: &World, op: u64) -> Result<(), TestCaseError> {
    let rs = results(w);
    let v = verdict(&rs, "linearizable");
    prop_assert!(matches!(v, Verdict::Invalid { .. }), "{v:?}");
    prop_assert!(proof_ops(v).contains(&op), "planted op {op} not in {v:?}");
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 256,
        failure_persistence: Some(Box::new(
            proptest::test_runner::FileFailurePersistence::Direct("tests/properties.proptest-regressions"),
        )),
        ..ProptestConfig::default()
    })]

    /// As a run and `chaos report` judge, the evidence's share first (`prepare`) and then
    /// the rest: the same results as `check_all`, clean or with a reminder sent twice and
    /// an EHR push that lost its trace.
    #[test]
    fn judging_the_evidence_first_gives_check_alls_results(
        intents in intents(24),
        fault in any::<bool>(),
        plant in any::<bool>(),
    ) {
        let mut w = clean(&intents, fault);
        if plant {
            for log in ["twilio", "ehr"] {
                let calls = w.evidence.stub_calls.get_mut(log).unwrap();
                if let Some(first) = calls.first().cloned() {
                    calls[0].trace = None;
                    calls.push(chaos_model::StubCall { seq: u64::MAX, ..first });
                }
            }
        }
        let s = scenario();
        let split = chaos_check::check_prepared(&s, &w.history, chaos_check::prepare(&s, &w.evidence));
        prop_assert_eq!(split, check_all(&s, &w.history, &w.evidence));
    }

    #[test]
    fn clean_histories_are_always_valid(intents in intents(24), fault in any::<bool>()) {
        let w = clean(&intents, fault);
        let rs = results(&w);
        for name in SAFETY {
            prop_assert!(holds(verdict(&rs, name)), "{name}: {:?}", verdict(&rs, name));
        }
        if !w.acknowledged.is_empty() {
            prop_assert_eq!(verdict(&rs, "no_double_booking"), &Verdict::Valid);
            prop_assert_eq!(verdict(&rs, "acknowledged_durable"), &Verdict::Valid);
            prop_assert_eq!(verdict(&rs, "linearizable"), &Verdict::Valid);
        }
        if !w.applied.is_empty() {
            prop_assert_eq!(verdict(&rs, "no_lost_reminders"), &Verdict::Valid);
            prop_assert_eq!(verdict(&rs, "no_duplicate_reminders"), &Verdict::Valid);
            prop_assert_eq!(verdict(&rs, "ehr_sync"), &Verdict::Valid);
        }
        for name in UNFED {
            let v = verdict(&rs, name);
            prop_assert!(matches!(v, Verdict::Unknown { .. }), "{name}: {v:?}");
        }
        let v = verdict(&rs, "delivered_within");
        // A waitlist promotion is acknowledged by the answer that named it.
        let promoted_live = w.history.records.iter().any(|r| match r {
            chaos_model::Record::Ok(c) => c.promoted.as_ref().is_some_and(|p| {
                w.evidence
                    .appointments
                    .iter()
                    .flatten()
                    .any(|row| &row.id == p && row.status == "booked")
            }),
            _ => false,
        });
        if w.live_acknowledged().is_empty() && !promoted_live {
            prop_assert!(matches!(v, Verdict::Unknown { .. }), "{v:?}");
        } else {
            prop_assert_eq!(v, &Verdict::Valid);
        }
        let v = verdict(&rs, "trace_propagates");
        if w.acknowledged.is_empty() {
            prop_assert!(matches!(v, Verdict::Unknown { .. }), "{v:?}");
        } else {
            prop_assert_eq!(v, &Verdict::Valid);
        }
        // A correct system may still be slow: answers_in_time convicts exactly the ops the
        // client gave up on (its refusals are fast and say Retry-After).
        let late = gave_up(&w);
        let v = verdict(&rs, "answers_in_time");
        if late.is_empty() {
            prop_assert!(!matches!(v, Verdict::Invalid { .. }), "{v:?}");
        } else {
            prop_assert!(matches!(v, Verdict::Invalid { .. }), "{v:?}");
            prop_assert!(proof_ops(v).iter().all(|op| late.contains(op)), "{v:?} not in {late:?}");
        }
    }

    #[test]
    fn a_late_confirmation_is_caught_with_its_booking(
        intents in intents(24), pick in any::<prop::sample::Index>(), sms_late in any::<bool>()
    ) {
        let mut w = clean(&intents, false);
        let live = w.live_acknowledged();
        prop_assume!(!live.is_empty());
        let op = *pick.get(&live);
        let id = w.applied[&op].clone();
        let stub = if sms_late { "twilio" } else { "sendgrid" };
        // Heard a millisecond after the answer: 999 ms more is the bound exactly, 1 more late.
        call_of(&mut w, stub, &id).at_ms += 999;
        let rs = results(&w);
        prop_assert_eq!(verdict(&rs, "delivered_within"), &Verdict::Valid);
        call_of(&mut w, stub, &id).at_ms += 1;
        let rs = results(&w);
        let v = verdict(&rs, "delivered_within");
        prop_assert!(matches!(v, Verdict::Invalid { .. }), "{v:?}");
        prop_assert_eq!(proof_ops(v), &[op][..]);
    }

    #[test]
    fn a_call_without_its_booking_s_trace_is_caught_with_the_booking(
        intents in intents(24), pick in any::<prop::sample::Index>(), stub in 0usize..3
    ) {
        let mut w = clean(&intents, false);
        // Live ones: a cancelled appointment's later pushes are the cancellation's.
        let live = w.live_acknowledged();
        prop_assume!(!live.is_empty());
        let op = *pick.get(&live);
        let id = w.applied[&op].clone();
        let stub = ["twilio", "sendgrid", "ehr"][stub];
        // An EHR push heard once a reschedule or cancel of the appointment was sent may be that
        // change's (the checker judges only pushes before it): not a planted fault.
        let changed_ms = w.history.records.iter().find_map(|r| match r {
            chaos_model::Record::Invoke(i)
                if matches!(i.f, chaos_model::OpKind::Reschedule | chaos_model::OpKind::Cancel)
                    && i.target.as_deref() == Some(&id) =>
            {
                Some(w.evidence.run_started_unix_ms.unwrap_or(0) + i.time_us / 1000)
            }
            _ => None,
        });
        prop_assume!(stub != "ehr" || changed_ms.is_none_or(|t| call_of(&mut w, stub, &id).at_ms < t));
        call_of(&mut w, stub, &id).trace = None;
        let rs = results(&w);
        let v = verdict(&rs, "trace_propagates");
        prop_assert!(matches!(v, Verdict::Invalid { .. }), "{stub}: {v:?}");
        prop_assert_eq!(proof_ops(v), &[op][..]);
    }

    #[test]
    fn a_planted_double_booking_is_caught_with_both_ops(
        intents in intents(24), pick in any::<prop::sample::Index>()
    ) {
        let mut w = clean(&intents, false);
        let live = w.live_acknowledged();
        prop_assume!(!live.is_empty());
        let first = *pick.get(&live);
        let second = plant_double_booking(&mut w, first);
        let rs = results(&w);
        let v = verdict(&rs, "no_double_booking");
        prop_assert!(matches!(v, Verdict::Invalid { .. }), "{v:?}");
        prop_assert!(proof_ops(v).contains(&first), "first booking {first} not in {v:?}");
        prop_assert!(proof_ops(v).contains(&second), "second booking {second} not in {v:?}");
    }

    #[test]
    fn a_conflict_for_a_certainly_free_slot_is_not_linearizable(
        intents in intents(24), pick in any::<prop::sample::Index>()
    ) {
        let mut w = clean(&intents, false);
        let free: Vec<Slot> = settled_slots(&w).into_iter().filter(|s| !s.1).map(|s| s.0).collect();
        prop_assume!(!free.is_empty());
        let slot = *pick.get(&free);
        let refused = Record::Fail(Completion {
            status: Some(409),
            error: Some("slot_taken".into()),
            ..Completion::default()
        });
        let op = plant(&mut w, OpKind::Book, slot, refused);
        caught_by_linearizable(&w, op)?;
    }

    #[test]
    fn a_stale_read_listing_a_held_slot_free_is_not_linearizable(
        intents in intents(24), pick in any::<prop::sample::Index>()
    ) {
        let mut w = clean(&intents, false);
        let held: Vec<Slot> = settled_slots(&w).into_iter().filter(|s| s.1).map(|s| s.0).collect();
        prop_assume!(!held.is_empty());
        let slot = *pick.get(&held);
        let mut free = free_at_end(&w, slot);
        prop_assert!(!free.contains(&slot.start));
        free.push(slot.start);
        free.sort_unstable();
        let read = Record::Ok(Completion {
            status: Some(200),
            free: Some(free),
            ..Completion::default()
        });
        let op = plant(&mut w, OpKind::Availability, slot, read);
        caught_by_linearizable(&w, op)?;
    }

    #[test]
    fn a_second_acknowledged_booking_of_a_held_slot_is_not_linearizable(
        intents in intents(24), pick in any::<prop::sample::Index>()
    ) {
        let mut w = clean(&intents, false);
        // Live bookings still in the slot they booked (not moved away since).
        let ops = w.history.ops();
        let rows = w.evidence.appointments.clone().unwrap();
        let live: Vec<u64> = w
            .live_acknowledged()
            .into_iter()
            .filter(|op| {
                let o = &ops[(op - 1) as usize];
                rows.iter().any(|r| Some(r.id.as_str()) == o.appointment && Some(r.slot) == o.slot)
            })
            .collect();
        drop(ops);
        prop_assume!(!live.is_empty());
        let first = *pick.get(&live);
        let second = plant_double_booking(&mut w, first);
        caught_by_linearizable(&w, second)?;
        // Read by a correct checker of the same world without it: linearizable.
    }

    #[test]
    fn a_lost_acknowledged_booking_is_caught_with_its_op(
        intents in intents(24), pick in any::<prop::sample::Index>()
    ) {
        let mut w = clean(&intents, false);
        let live = w.live_acknowledged();
        prop_assume!(!live.is_empty());
        let op = *pick.get(&live);
        let id = w.applied[&op].clone();
        w.evidence.appointments.as_mut().unwrap().retain(|r| r.id != id);
        let rs = results(&w);
        let v = verdict(&rs, "acknowledged_durable");
        prop_assert!(matches!(v, Verdict::Invalid { .. }), "{v:?}");
        prop_assert_eq!(proof_ops(v), &[op][..]);
    }

    #[test]
    fn a_repeated_or_missing_reminder_is_caught_with_its_booking(
        intents in intents(24), pick in any::<prop::sample::Index>(), repeat in any::<bool>()
    ) {
        let mut w = clean(&intents, false);
        let applied: Vec<(u64, String)> = w.applied.clone().into_iter().collect();
        prop_assume!(!applied.is_empty());
        let (op, id) = pick.get(&applied).clone();
        let name = if repeat {
            push_call(&mut w.evidence, "twilio", sms(20_000_000, &id));
            "no_duplicate_reminders"
        } else {
            let mails = w.evidence.stub_calls.get_mut("sendgrid").unwrap();
            mails.retain(|c| c.body["custom_args"]["appointment_id"] != id.as_str());
            "no_lost_reminders"
        };
        let rs = results(&w);
        let v = verdict(&rs, name);
        prop_assert!(matches!(v, Verdict::Invalid { .. }), "{name}: {v:?}");
        // A booking whose answer was lost (info) is known only by its row: no op proves it.
        let expected: &[u64] = if w.acknowledged.contains(&op) { &[op] } else { &[] };
        prop_assert_eq!(proof_ops(v), expected, "{}", name);
        let Verdict::Invalid { rows, .. } = v else { unreachable!() };
        prop_assert!(rows.iter().any(|r| r.contains(id.as_str())), "{name}: {rows:?}");
    }

    #[test]
    fn a_forged_request_let_through_is_caught_with_its_op(
        intents in intents(24), pick in any::<prop::sample::Index>()
    ) {
        let mut w = clean(&intents, false);
        let forged: Vec<u64> = w
            .history
            .ops()
            .iter()
            .filter(|o| o.f == chaos_model::OpKind::Forged)
            .map(|o| o.id)
            .collect();
        prop_assume!(!forged.is_empty());
        let op = *pick.get(&forged);
        for r in &mut w.history.records {
            if let Record::Fail(c) = r
                && c.op == op
            {
                *r = Record::Ok(Completion { status: Some(200), ..c.clone() });
            }
        }
        let rs = results(&w);
        let v = verdict(&rs, "auth_fails_closed");
        prop_assert!(matches!(v, Verdict::Invalid { .. }), "{v:?}");
        prop_assert_eq!(proof_ops(v), &[op][..]);
    }
}

#[test]
fn an_empty_history_is_unknown_never_valid_on_what_it_cannot_show() {
    let w = clean(&[], false);
    let rs = results(&w);
    for name in [
        "no_double_booking",
        "auth_fails_closed",
        "no_lost_reminders",
        "no_duplicate_reminders",
        "delivered_within",
        "answers_in_time",
        "sessions_survive",
        "waitlist_promotes_once",
        "no_lost_update",
        "trace_propagates",
        "metrics_reflect",
        "readiness",
    ] {
        assert!(
            matches!(verdict(&rs, name), Verdict::Unknown { .. }),
            "{name}: {:?}",
            verdict(&rs, name)
        );
    }
    assert_eq!(History::default().ops().len(), 0);
}

#[test]
fn a_slot_cancelled_and_booked_again_is_clean() {
    let step = |kind, fate| Intent {
        kind,
        slot: 0,
        fate,
        gap_us: 50_000,
        latency_us: 1_000,
    };
    // Book slot 0, cancel it, book it again: two acknowledged bookings of one slot.
    let w = clean(&[step(0, 0), step(4, 0), step(0, 0)], false);
    assert_eq!(w.acknowledged, vec![1, 3]);
    assert_eq!(w.cancelled, vec![1]);
    let rs = results(&w);
    // auth_fails_closed, waitlist_promotes_once and no_lost_update have nothing to judge here.
    for name in SAFETY.iter().filter(|n| {
        ![
            "auth_fails_closed",
            "waitlist_promotes_once",
            "no_lost_update",
        ]
        .contains(n)
    }) {
        assert_eq!(verdict(&rs, name), &Verdict::Valid, "{name}");
    }
    // Without the cancellation the second booking is a double booking.
    let w = clean(&[step(0, 0), step(0, 0)], false);
    assert_eq!(
        w.acknowledged,
        vec![1],
        "the model refuses the second: the slot is taken"
    );
}
