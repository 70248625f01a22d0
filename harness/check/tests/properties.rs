//! Property tests of the checkers: a generated clean history (with the evidence a correct
//! system leaves) is always valid on every safety invariant, and a planted anomaly is
//! always caught, by the right invariant, with the planted op among its proof.

#[path = "support/generate.rs"]
mod generate;

use chaos_check::check_all;
use chaos_model::{CheckResult, Completion, Evidence, History, Record, Verdict};
use generate::{Intent, World, clean, email, scenario, sms};
use proptest::prelude::*;

/// The invariants a correct system must always satisfy, whatever the timing.
const SAFETY: [&str; 6] = [
    "no_double_booking",
    "acknowledged_durable",
    "auth_fails_closed",
    "ehr_sync",
    "no_duplicate_reminders",
    "no_lost_reminders",
];

fn intents(max_slots: u32) -> impl Strategy<Value = Vec<Intent>> {
    prop::collection::vec(
        (0u8..5, 0..max_slots, 0u8..5, 1u16..20_000, 1u16..30_000).prop_map(
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
        op,
        process: 99,
        f: chaos_model::OpKind::Book,
        slot: Some(slot),
        due_us: end + 1,
        time_us: end + 1,
        key: None,
    }));
    w.history.records.push(Record::Ok(Completion {
        op,
        time_us: end + 2,
        status: Some(201),
        appointment: Some(id.clone()),
        error: None,
    }));
    let rows = w.evidence.appointments.as_mut().unwrap();
    rows.push(chaos_model::AppointmentRow {
        id: id.clone(),
        patient: 99,
        slot,
        status: "booked".into(),
    });
    push_call(&mut w.evidence, "twilio", sms(10_000_000, &id));
    push_call(&mut w.evidence, "sendgrid", email(10_000_001, &id));
    push_call(&mut w.evidence, "ehr", generate::ehr(10_000_002, &id));
    op
}

fn push_call(ev: &mut Evidence, stub: &str, call: chaos_model::StubCall) {
    ev.stub_calls.get_mut(stub).unwrap().push(call);
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 256,
        failure_persistence: Some(Box::new(
            proptest::test_runner::FileFailurePersistence::Direct("tests/properties.proptest-regressions"),
        )),
        ..ProptestConfig::default()
    })]

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
        }
        if !w.applied.is_empty() {
            prop_assert_eq!(verdict(&rs, "no_lost_reminders"), &Verdict::Valid);
            prop_assert_eq!(verdict(&rs, "no_duplicate_reminders"), &Verdict::Valid);
            prop_assert_eq!(verdict(&rs, "ehr_sync"), &Verdict::Valid);
        }
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
    for name in SAFETY.iter().filter(|n| **n != "auth_fails_closed") {
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
