//! Idempotent creation (000:C5, 001:C-1): a booking sent again with the same
//! `Idempotency-Key` is answered as the first was: never a second appointment, and never a
//! conflict with the client's own booking (a 409 to the retry of a request the system
//! acknowledged tells the client it has no appointment when it has one). Judged from the
//! history: the workload resubmits a share of its bookings with their key, or retries them
//! with it after an answer it did not get. Answers that were lost or 5xx (`info`) say nothing
//! either way, so the verdict is earned only by a key with two tries that were both answered
//! (`ok`, or a definite refusal), or by a retry answered after a try that may have taken
//! effect, judged against the rows: a 409 for a slot whose live appointment is the client's
//! own (its session's patient) and that no other booking of that client asked for is the
//! client's own booking coming back as a conflict.

use std::collections::BTreeMap;

use chaos_model::{CheckResult, History, Op, OpKind, Outcome, Slot, Verdict};

use crate::view::{View, with_history};

pub const NAME: &str = "idempotent_creation";
const MAX_PROOF_ROWS: usize = 20;

pub fn check_idempotent_creation(history: &History) -> CheckResult {
    with_history(history, check)
}

pub(crate) fn check(v: &View<'_>) -> CheckResult {
    let mut by_key: BTreeMap<&str, Vec<&Op<'_>>> = BTreeMap::new();
    // (process, slot) -> the keys its bookings carried (None: unkeyed).
    let mut asked: BTreeMap<(u32, Slot), Vec<Option<&str>>> = BTreeMap::new();
    for o in v.ops.iter().filter(|o| o.f == OpKind::Book) {
        if let Some(k) = o.key {
            by_key.entry(k).or_default().push(o);
        }
        if let Some(slot) = o.slot {
            asked.entry((o.process, slot)).or_default().push(o.key);
        }
    }
    let patient_of: BTreeMap<u64, u32> = v
        .ops
        .iter()
        .filter(|o| o.f == OpKind::Login && o.outcome == Outcome::Ok)
        .filter_map(|o| Some((o.id, o.patient?)))
        .collect();
    // Slot -> the patient of its live row.
    let live: BTreeMap<Slot, u32> = v
        .evidence
        .appointments
        .iter()
        .flatten()
        .filter(|r| r.status == "booked")
        .map(|r| (r.slot, r.patient))
        .collect();
    let repeated: Vec<_> = by_key.iter().filter(|(_, ops)| ops.len() > 1).collect();
    if repeated.is_empty() {
        return CheckResult::new(
            NAME,
            Verdict::unknown("no booking was sent twice with its key (set workload.resubmit)"),
        );
    }
    let mut rows = Vec::new();
    let mut proof = Vec::new();
    let mut replays = 0usize;
    let mut after_lost = 0usize;
    let mut answered_twice = 0usize;
    for (key, ops) in &repeated {
        let answered = ops
            .iter()
            .filter(|o| o.outcome != Outcome::Info && o.status.is_some())
            .count();
        let retried_after_unknown = ops.iter().enumerate().any(|(i, o)| {
            i > 0
                && o.outcome != Outcome::Info
                && o.status.is_some()
                && ops[..i].iter().any(|e| e.outcome == Outcome::Info)
        });
        answered_twice += usize::from(answered > 1 || (retried_after_unknown && !live.is_empty()));
        let acked: Vec<&&Op<'_>> = ops.iter().filter(|o| o.outcome == Outcome::Ok).collect();
        let mut appointments: Vec<&str> = acked.iter().filter_map(|o| o.appointment).collect();
        appointments.sort_unstable();
        appointments.dedup();
        let conflicts: Vec<u64> = ops
            .iter()
            .filter(|o| o.outcome == Outcome::Fail && o.status == Some(409))
            .map(|o| o.id)
            .collect();
        let ids = || ops.iter().map(|o| o.id).collect::<Vec<_>>();
        if appointments.len() > 1 {
            rows.push(format!(
                "key {key}: {} appointments ({}) for one request",
                appointments.len(),
                appointments.join(", ")
            ));
            proof.extend(ids());
        } else if let (Some(first), false) = (acked.first(), conflicts.is_empty()) {
            rows.push(format!(
                "key {key}: acknowledged as {} (op {}), then answered 409 to the same request (op {})",
                first.appointment.unwrap_or("?"),
                first.id,
                conflicts
                    .iter()
                    .map(u64::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
            proof.extend(ids());
        } else if let Some(own) = conflicts.iter().find_map(|&c| {
            let o = ops.iter().find(|o| o.id == c)?;
            let slot = o.slot?;
            let patient = patient_of.get(&o.session?)?;
            let only_this_key = asked
                .get(&(o.process, slot))
                .is_some_and(|keys| keys.iter().all(|k| *k == Some(*key)));
            (live.get(&slot) == Some(patient) && only_this_key).then_some((o.id, slot, *patient))
        }) {
            rows.push(format!(
                "key {key}: op {} answered 409, but the slot's live appointment ({}) is patient {}'s own, booked by this request's earlier try",
                own.0, own.1, own.2
            ));
            proof.extend(ids());
        } else if acked.len() > 1 {
            replays += 1;
        } else if retried_after_unknown && !acked.is_empty() {
            after_lost += 1;
        }
    }
    let detail = format!(
        "{} bookings sent again with their key, {answered_twice} judged (answered twice, or retried after a lost answer): {replays} answered with the first appointment, {after_lost} acknowledged once after a lost answer",
        repeated.len()
    );
    if rows.is_empty() && answered_twice == 0 {
        return CheckResult::new(
            NAME,
            Verdict::unknown(format!(
                "no resubmission was answered twice ({} bookings sent again with their key)",
                repeated.len()
            )),
        );
    }
    if rows.is_empty() {
        return CheckResult::new(NAME, (Verdict::Valid, detail));
    }
    let n = rows.len();
    rows.truncate(MAX_PROOF_ROWS);
    proof.sort_unstable();
    CheckResult::new(
        NAME,
        (
            Verdict::Invalid { ops: proof, rows },
            format!("{detail}; {n} answered otherwise"),
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::*;
    use chaos_model::Record;

    /// `book(op, SLOT)` carrying `key`.
    fn keyed(op: u64, key: &str) -> Record {
        let mut r = book(op, SLOT);
        if let Record::Invoke(i) = &mut r {
            i.key = Some(key.into());
        }
        r
    }

    /// Client 7 logs in as patient 8 (op 100), then tries a keyed booking of `SLOT` (op 1,
    /// unanswered), and retries it (op 2) with the answer `retry`; the rows hold `SLOT`'s
    /// live appointment `a1` of patient `owner`.
    fn retried_after_a_timeout(retry: Record, owner: u32) -> CheckResult {
        let login = Record::Invoke(chaos_model::Invoke::new(100, 7, OpKind::Login, 0, 0));
        let logged_in = Record::Ok(chaos_model::Completion {
            op: 100,
            time_us: 1,
            status: Some(201),
            patient: Some(8),
            ..chaos_model::Completion::default()
        });
        let mut records = vec![
            login,
            logged_in,
            keyed(1, "k"),
            timed_out(1),
            keyed(2, "k"),
            retry,
        ];
        for r in &mut records {
            if let Record::Invoke(i) = r
                && i.f == OpKind::Book
            {
                i.process = 7;
                i.session = Some(100);
            }
        }
        let ev = chaos_model::Evidence {
            appointments: Some(vec![chaos_model::AppointmentRow {
                patient: owner,
                ..row("a1")
            }]),
            ..chaos_model::Evidence::default()
        };
        let h = history(records);
        check(&crate::view::View::new(&h, &ev))
    }

    #[test]
    fn a_retry_after_a_timeout_that_meets_its_own_booking_is_invalid() {
        let r = retried_after_a_timeout(failed(2, 409), 8);
        match &r.verdict {
            Verdict::Invalid { ops, rows } => {
                assert_eq!(ops, &vec![1, 2]);
                assert!(rows[0].contains("patient 8's own"), "{rows:?}");
            }
            v => panic!("expected invalid, got {v:?}: {}", r.detail),
        }
        // Someone else's appointment in the slot: the 409 is a true conflict.
        let r = retried_after_a_timeout(failed(2, 409), 9);
        assert_eq!(r.verdict, Verdict::Valid, "{}", r.detail);
        // The retry replayed the appointment its first try made.
        let r = retried_after_a_timeout(booked(2, "a1"), 8);
        assert_eq!(r.verdict, Verdict::Valid, "{}", r.detail);
    }

    #[test]
    fn a_replay_of_the_first_appointment_is_valid() {
        let h = history(vec![
            keyed(1, "k"),
            booked(1, "a1"),
            keyed(2, "k"),
            booked(2, "a1"),
        ]);
        let r = check_idempotent_creation(&h);
        assert_eq!(r.verdict, Verdict::Valid, "{}", r.detail);
        assert!(
            r.detail.contains("1 answered with the first appointment"),
            "{}",
            r.detail
        );
    }

    #[test]
    fn a_conflict_with_itself_or_a_second_appointment_is_invalid() {
        let h = history(vec![
            keyed(1, "k"),
            booked(1, "a1"),
            keyed(2, "k"),
            failed(2, 409),
        ]);
        match check_idempotent_creation(&h).verdict {
            Verdict::Invalid { ops, rows } => {
                assert_eq!(ops, vec![1, 2]);
                assert!(rows[0].contains("then answered 409"), "{rows:?}");
            }
            v => panic!("expected invalid, got {v:?}"),
        }
        let h = history(vec![
            keyed(1, "k"),
            booked(1, "a1"),
            keyed(2, "k"),
            booked(2, "a2"),
        ]);
        match check_idempotent_creation(&h).verdict {
            Verdict::Invalid { rows, .. } => {
                assert!(rows[0].contains("2 appointments"), "{rows:?}")
            }
            v => panic!("expected invalid, got {v:?}"),
        }
    }

    #[test]
    fn info_answers_never_convict_and_no_resubmission_is_unknown() {
        // One try answered: the other's answer was lost, so nothing was answered twice.
        let h = history(vec![
            keyed(1, "k"),
            timed_out(1),
            keyed(2, "k"),
            failed(2, 409),
        ]);
        match check_idempotent_creation(&h).verdict {
            Verdict::Unknown { reason } => {
                assert!(
                    reason.contains("no resubmission was answered twice"),
                    "{reason}"
                )
            }
            v => panic!("expected unknown, got {v:?}"),
        }
        // Answered twice on another key: judged, and the lost answer does not convict.
        let h = history(vec![
            keyed(1, "k"),
            timed_out(1),
            keyed(2, "k"),
            failed(2, 409),
            keyed(3, "j"),
            booked(3, "a3"),
            keyed(4, "j"),
            booked(4, "a3"),
        ]);
        assert_eq!(check_idempotent_creation(&h).verdict, Verdict::Valid);
        let h = history(vec![keyed(1, "k"), booked(1, "a1")]);
        assert!(matches!(
            check_idempotent_creation(&h).verdict,
            Verdict::Unknown { .. }
        ));
    }
}
