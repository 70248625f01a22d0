//! Idempotent creation (000:C5, 001:C-1): a booking sent again with the same
//! `Idempotency-Key` is answered as the first was: never a second appointment, and never a
//! conflict with the client's own booking (a 409 to the retry of a request the system
//! acknowledged tells the client it has no appointment when it has one). Judged from the
//! history: the workload resubmits a share of its bookings with their key. Answers that were
//! lost or 5xx (`info`) say nothing either way.

use std::collections::BTreeMap;

use chaos_model::{CheckResult, History, Op, OpKind, Outcome, Verdict};

use crate::view::{View, with_history};

pub const NAME: &str = "idempotent_creation";
const MAX_PROOF_ROWS: usize = 20;

pub fn check_idempotent_creation(history: &History) -> CheckResult {
    with_history(history, check)
}

pub(crate) fn check(v: &View<'_>) -> CheckResult {
    let mut by_key: BTreeMap<&str, Vec<&Op<'_>>> = BTreeMap::new();
    for o in v.ops.iter().filter(|o| o.f == OpKind::Book) {
        if let Some(k) = o.key {
            by_key.entry(k).or_default().push(o);
        }
    }
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
    for (key, ops) in &repeated {
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
        } else if acked.len() > 1 {
            replays += 1;
        }
    }
    let detail = format!(
        "{} bookings sent again with their key: {replays} answered with the first appointment",
        repeated.len()
    );
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
        let h = history(vec![
            keyed(1, "k"),
            timed_out(1),
            keyed(2, "k"),
            failed(2, 409),
        ]);
        assert_eq!(check_idempotent_creation(&h).verdict, Verdict::Valid);
        let h = history(vec![keyed(1, "k"), booked(1, "a1")]);
        assert!(matches!(
            check_idempotent_creation(&h).verdict,
            Verdict::Unknown { .. }
        ));
    }
}
