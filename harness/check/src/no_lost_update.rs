//! No lost update (001:C-3; the design's optimistic locking): concurrent reschedules of one
//! appointment (two or more with the same `target` whose invoke-to-completion intervals
//! overlap) never both win from the same read. Invalid when two acknowledged reschedules of
//! one appointment answered the same `version` (both applied on the version they read: one
//! overwrote the other without seeing it), or when the appointment's final row is not where
//! the acknowledged reschedule with the highest version put it and no unanswered (`info`)
//! reschedule of it could have put it there (an acknowledged move silently undone). When an
//! acknowledged answer carried no version, the row must at least be where some acknowledged
//! or unanswered reschedule put it. Reschedules that failed changed nothing.

use chaos_model::{CheckResult, Evidence, History, Op, OpKind, Outcome, Verdict};

use crate::fasthash::FastMap;
use crate::proof::invalid;
use crate::view::View;

pub const NAME: &str = "no_lost_update";

pub fn check_no_lost_update(history: &History, evidence: &Evidence) -> CheckResult {
    check(&View::new(history, evidence))
}

/// Whether any two of these ops' [invoke, complete] intervals overlap (an op that never
/// completed lasts to the end).
fn overlapping(ops: &mut [&Op<'_>]) -> bool {
    ops.sort_by_key(|o| o.invoke_us);
    let mut until = 0u64;
    for (i, o) in ops.iter().enumerate() {
        if i > 0 && o.invoke_us <= until {
            return true;
        }
        until = until.max(o.complete_us.unwrap_or(u64::MAX));
    }
    false
}

pub(crate) fn check(v: &View<'_>) -> CheckResult {
    let mut by_target: FastMap<&str, Vec<&Op<'_>>> = FastMap::default();
    for o in v.ops.iter().filter(|o| o.f == OpKind::Reschedule) {
        if let Some(t) = o.target {
            by_target.entry(t).or_default().push(o);
        }
    }
    let mut targets: Vec<(&str, Vec<&Op<'_>>)> = by_target.into_iter().collect();
    targets.sort_unstable_by_key(|(t, _)| *t);
    let rows: Option<FastMap<&str, &chaos_model::AppointmentRow>> = v
        .evidence
        .appointments
        .as_ref()
        .map(|rs| rs.iter().map(|r| (r.id.as_str(), r)).collect());
    let (mut concurrent, mut judged_rows) = (0usize, 0usize);
    let mut proof = Vec::new();
    let mut ops = Vec::new();
    for (target, group) in &mut targets {
        if group.len() > 1 && overlapping(group) {
            concurrent += 1;
        }
        let acked: Vec<&&Op<'_>> = group.iter().filter(|o| o.outcome == Outcome::Ok).collect();
        // Two acknowledgements of one version: both applied on the same read.
        let mut versions: Vec<(u32, u64)> = acked
            .iter()
            .filter_map(|o| Some((o.version?, o.id)))
            .collect();
        versions.sort_unstable();
        for same in versions.chunk_by(|a, b| a.0 == b.0).filter(|g| g.len() > 1) {
            let ids: Vec<String> = same.iter().map(|(_, id)| id.to_string()).collect();
            proof.push(format!(
                "appointment {target}: reschedules {} all answered version {} (one overwrote the other)",
                ids.join(", "),
                same[0].0
            ));
            ops.extend(same.iter().map(|(_, id)| *id));
        }
        // The final row is where the last acknowledged move put it.
        let Some(row) = rows.as_ref().and_then(|r| r.get(target).copied()) else {
            continue;
        };
        if acked.is_empty() {
            continue;
        }
        judged_rows += 1;
        let explained_by_info = group
            .iter()
            .any(|o| o.outcome == Outcome::Info && o.to == Some(row.slot));
        if explained_by_info {
            continue;
        }
        if acked.iter().all(|o| o.version.is_some()) {
            let last = acked
                .iter()
                .max_by_key(|o| (o.version, o.complete_us))
                .expect("not empty");
            if last.to.is_some_and(|to| to != row.slot) {
                proof.push(format!(
                    "appointment {target} is at {}, but op {} moved it to {} as version {}, the highest acknowledged",
                    row.slot,
                    last.id,
                    last.to.expect("checked"),
                    last.version.expect("checked")
                ));
                ops.push(last.id);
            }
        } else if acked.iter().all(|o| o.to.is_some_and(|to| to != row.slot)) {
            proof.push(format!(
                "appointment {target} is at {}, where none of its acknowledged reschedules put it",
                row.slot
            ));
            ops.extend(acked.iter().map(|o| o.id));
        }
    }
    let detail = format!(
        "{} appointment(s) rescheduled, {concurrent} of them concurrently; {judged_rows} final row(s) against their acknowledged moves",
        targets.len()
    );
    if !proof.is_empty() {
        return invalid(NAME, ops, proof, |n| {
            format!("{detail}: {n} lost update(s)")
        });
    }
    if concurrent == 0 {
        return CheckResult::new(
            NAME,
            Verdict::unknown(
                "no appointment was rescheduled concurrently: nothing exercised the invariant",
            ),
        );
    }
    if v.evidence.appointments.is_none() {
        return CheckResult::new(
            NAME,
            Verdict::unknown(
                "no two acknowledged reschedules share a version, but the appointment rows were not collected",
            ),
        );
    }
    if judged_rows == 0 {
        return CheckResult::new(
            NAME,
            Verdict::unknown(format!(
                "{detail}: no final row had an acknowledged move to be judged against"
            )),
        );
    }
    CheckResult::new(NAME, (Verdict::Valid, detail + ": no move lost"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::*;
    use chaos_model::{Record, Slot};

    const TO_A: Slot = Slot {
        provider: 1,
        start: 7200,
    };
    const TO_B: Slot = Slot {
        provider: 1,
        start: 9000,
    };

    /// A reschedule of `a1` from `SLOT` to `to`, invoked at `from` and ended at `until`.
    fn move_to(
        op: u64,
        to: Slot,
        from: u64,
        until: u64,
        outcome: Outcome,
        version: Option<u32>,
    ) -> [Record; 2] {
        [
            edit(invoked(op, OpKind::Reschedule, from), |i| {
                i.slot = Some(SLOT);
                i.target = Some("a1".into());
                i.to = Some(to);
            }),
            amend(
                ended(
                    op,
                    outcome,
                    until,
                    match outcome {
                        Outcome::Ok => Some(200),
                        Outcome::Fail => Some(409),
                        Outcome::Info => None,
                    },
                ),
                |c| c.version = version,
            ),
        ]
    }

    fn run(records: Vec<Record>, at: Option<Slot>) -> CheckResult {
        let ev = Evidence {
            appointments: at.map(|s| vec![row_at("a1", s)]),
            ..Evidence::default()
        };
        check_no_lost_update(&history(records), &ev)
    }

    #[test]
    fn concurrent_moves_serialised_by_version_are_valid() {
        let mut h = move_to(1, TO_A, 0, 100, Outcome::Ok, Some(2)).to_vec();
        h.extend(move_to(2, TO_B, 50, 150, Outcome::Ok, Some(3)));
        let r = run(h, Some(TO_B));
        assert_eq!(r.verdict, Verdict::Valid, "{}", r.detail);
        // The loser told so (409) changed nothing.
        let mut h = move_to(1, TO_A, 0, 100, Outcome::Ok, Some(2)).to_vec();
        h.extend(move_to(2, TO_B, 50, 150, Outcome::Fail, None));
        assert_eq!(run(h, Some(TO_A)).verdict, Verdict::Valid);
    }

    #[test]
    fn two_acknowledgements_of_one_version_are_invalid() {
        let mut h = move_to(1, TO_A, 0, 100, Outcome::Ok, Some(2)).to_vec();
        h.extend(move_to(2, TO_B, 50, 150, Outcome::Ok, Some(2)));
        match run(h, Some(TO_B)).verdict {
            Verdict::Invalid { ops, rows } => {
                assert_eq!(ops, vec![1, 2]);
                assert!(rows[0].contains("all answered version 2"), "{rows:?}");
            }
            v => panic!("expected invalid, got {v:?}"),
        }
    }

    #[test]
    fn a_row_not_where_the_last_acknowledged_move_put_it_is_invalid_unless_an_info_explains_it() {
        let mut h = move_to(1, TO_A, 0, 100, Outcome::Ok, Some(2)).to_vec();
        h.extend(move_to(2, TO_B, 50, 150, Outcome::Ok, Some(3)));
        match run(h.clone(), Some(TO_A)).verdict {
            Verdict::Invalid { ops, rows } => {
                assert_eq!(ops, vec![2]);
                assert!(rows[0].contains("version 3, the highest"), "{rows:?}");
            }
            v => panic!("expected invalid, got {v:?}"),
        }
        // A third move, unanswered, may have put it back at TO_A.
        h.extend(move_to(3, TO_A, 60, 2_000_000, Outcome::Info, None));
        assert_eq!(run(h, Some(TO_A)).verdict, Verdict::Valid);
    }

    #[test]
    fn sequential_reschedules_or_no_rows_are_unknown() {
        let mut h = move_to(1, TO_A, 0, 100, Outcome::Ok, Some(2)).to_vec();
        h.extend(move_to(2, TO_B, 200, 300, Outcome::Ok, Some(3)));
        let r = run(h, Some(TO_B));
        assert!(matches!(r.verdict, Verdict::Unknown { .. }), "{r:?}");
        let mut h = move_to(1, TO_A, 0, 100, Outcome::Ok, Some(2)).to_vec();
        h.extend(move_to(2, TO_B, 50, 150, Outcome::Ok, Some(3)));
        match run(h, None).verdict {
            Verdict::Unknown { reason } => assert!(reason.contains("rows"), "{reason}"),
            v => panic!("expected unknown, got {v:?}"),
        }
    }
}
