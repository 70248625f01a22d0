//! Success ratio per phase: the share of ops the system served (ok, or a definite 409)
//! among those due in each phase, against the scenario's minimum.

use std::collections::BTreeMap;

use chaos_model::{CheckResult, History, Op, PhaseRatios, Verdict};

use crate::phases::PhaseMap;
use crate::served::{counts, served};
use crate::view::{View, with_history};

pub const NAME: &str = "success_ratio";
const MAX_PROOF_OPS: usize = 20;

pub fn check_success_ratio(
    bounds: &PhaseRatios,
    history: &History,
    phases: &PhaseMap,
) -> CheckResult {
    with_history(history, |v| check(bounds, v, phases))
}

pub(crate) fn check(bounds: &PhaseRatios, v: &View<'_>, phases: &PhaseMap) -> CheckResult {
    let mut by_phase: BTreeMap<&str, Vec<&Op>> = BTreeMap::new();
    for op in v.ops.iter().filter(|o| counts(o)) {
        by_phase
            .entry(phases.at(op.due_us).as_str())
            .or_default()
            .push(op);
    }
    let mut verdict = Verdict::Valid;
    let mut lines = Vec::new();
    for (phase, min) in bounds.by_phase() {
        let ops = by_phase.remove(phase).unwrap_or_default();
        if ops.is_empty() {
            let reason = format!("no ops in the {phase} phase");
            lines.push(reason.clone());
            verdict = verdict.worst(Verdict::Unknown { reason });
            continue;
        }
        let ok = ops.iter().filter(|o| served(o)).count();
        let ratio = ok as f64 / ops.len() as f64;
        let holds = ratio >= min;
        lines.push(format!(
            "{phase} {:.1}% served ({ok}/{}) {} {:.1}%",
            ratio * 100.0,
            ops.len(),
            if holds { ">=" } else { "<" },
            min * 100.0
        ));
        if !holds {
            let proof = ops
                .iter()
                .filter(|o| !served(o))
                .take(MAX_PROOF_OPS)
                .map(|o| o.id)
                .collect();
            verdict = verdict.worst(Verdict::Invalid {
                ops: proof,
                rows: vec![],
            });
        }
    }
    if let Verdict::Invalid { ops, .. } = &mut verdict {
        ops.sort_unstable();
        ops.dedup();
    }
    CheckResult::new(NAME, (verdict, lines.join("; ")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::*;
    use chaos_model::Dur;

    fn ratios(steady: f64, fault: f64) -> PhaseRatios {
        PhaseRatios {
            steady: Some(steady),
            fault: Some(fault),
            recovery: None,
        }
    }

    fn check(h: &History, r: PhaseRatios) -> CheckResult {
        check_success_ratio(&r, h, &PhaseMap::new(h, Dur::from_millis(1)))
    }

    #[test]
    fn a_conflict_is_served_and_a_timeout_is_not() {
        let h = history(vec![
            read_at(1, 0, 0),
            done_at(1, 10),
            book(2, SLOT),
            failed(2, 409),
            inject(1_000),
            read_at(3, 2_000, 2_000),
            timed_out_at(3, 3_000),
            read_at(4, 2_100, 2_100),
            done_at(4, 2_200),
            heal(5_000),
        ]);
        let r = check(&h, ratios(1.0, 0.5));
        assert_eq!(r.verdict, Verdict::Valid, "{}", r.detail);
        let r = check(&h, ratios(1.0, 0.9));
        assert_eq!(
            r.verdict,
            Verdict::Invalid {
                ops: vec![3],
                rows: vec![]
            },
            "{}",
            r.detail
        );
    }

    #[test]
    fn an_empty_phase_is_unknown() {
        let h = history(vec![read_at(1, 0, 0), done_at(1, 10)]);
        let r = check(&h, ratios(0.9, 0.9));
        assert!(matches!(r.verdict, Verdict::Unknown { .. }), "{r:?}");
    }
}
