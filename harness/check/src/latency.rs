//! Latency percentiles per phase (steady, fault, recovery) against the scenario's bounds.
//! Latency runs from each op's due time to its completion, so client stalls are counted.

use std::collections::BTreeMap;

use chaos_model::{CheckResult, History, LatencyBounds, Verdict};

use crate::fmt_us;
use crate::phases::PhaseMap;
use crate::view::{View, with_history};

pub const NAME: &str = "latency";

/// How many of the slowest offending ops an invalid verdict names.
const MAX_PROOF_OPS: usize = 20;

pub fn check_latency(bounds: &LatencyBounds, history: &History, phases: &PhaseMap) -> CheckResult {
    with_history(history, |v| check(bounds, v, phases))
}

pub(crate) fn check(bounds: &LatencyBounds, v: &View<'_>, phases: &PhaseMap) -> CheckResult {
    let mut samples: BTreeMap<&str, Vec<(u64, u64)>> = BTreeMap::new();
    let mut incomplete = 0usize;
    for op in &v.ops {
        let Some(lat) = op.latency_us() else {
            incomplete += 1;
            continue;
        };
        samples
            .entry(phases.at(op.due_us).as_str())
            .or_default()
            .push((lat, op.id));
    }

    let mut verdict = Verdict::Valid;
    let mut lines = Vec::new();
    for (phase, pct) in bounds.by_phase() {
        let mut v = samples.remove(phase).unwrap_or_default();
        if v.is_empty() {
            let reason = format!("no completed ops in the {phase} phase");
            lines.push(reason.clone());
            verdict = verdict.worst(Verdict::Unknown { reason });
            continue;
        }
        v.sort_unstable();
        for (name, q, bound) in pct.bounds() {
            let observed = quantile(&v, q);
            let limit = bound.as_micros();
            let ok = observed <= limit;
            lines.push(format!(
                "{phase} {name} {} {} {} (n={})",
                fmt_us(observed),
                if ok { "<=" } else { ">" },
                fmt_us(limit),
                v.len()
            ));
            if !ok {
                let mut ops: Vec<u64> = v
                    .iter()
                    .rev()
                    .take_while(|(lat, _)| *lat > limit)
                    .take(MAX_PROOF_OPS)
                    .map(|(_, id)| *id)
                    .collect();
                ops.sort_unstable();
                verdict = verdict.worst(Verdict::Invalid { ops, rows: vec![] });
            }
        }
    }
    if incomplete > 0 {
        lines.push(format!(
            "{incomplete} op(s) never completed and have no latency"
        ));
    }
    // Merge proof ops of several violated bounds into one sorted list.
    if let Verdict::Invalid { ops, .. } = &mut verdict {
        ops.sort_unstable();
        ops.dedup();
    }
    CheckResult {
        invariant: NAME.into(),
        verdict,
        detail: lines.join("; "),
    }
}

/// Nearest-rank quantile of sorted samples; `q = 1.0` is the maximum.
fn quantile(sorted: &[(u64, u64)], q: f64) -> u64 {
    sorted[nearest_rank(sorted.len(), q)].0
}

/// Defined beside the model's other shared definitions, so that the benchmarks' reports
/// (which cannot depend on the checkers) take percentiles the same way.
pub use chaos_model::nearest_rank;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::*;
    use chaos_model::{Dur, Percentiles};

    fn bound_p99(ms: u64) -> Percentiles {
        Percentiles {
            p99: Some(Dur::from_millis(ms)),
            ..Percentiles::default()
        }
    }

    fn check(h: &History, b: LatencyBounds) -> CheckResult {
        check_latency(&b, h, &PhaseMap::new(h, Dur::from_millis(100)))
    }

    #[test]
    fn latency_counts_from_the_due_time_not_the_send_time() {
        // Due at 0, sent late at 900ms (a stalled client), done at 950ms: 950ms, not 50ms.
        let h = history(vec![read_at(1, 0, 900_000), done_at(1, 950_000)]);
        let r = check(
            &h,
            LatencyBounds {
                steady: Some(bound_p99(100)),
                ..Default::default()
            },
        );
        assert_eq!(
            r.verdict,
            Verdict::Invalid {
                ops: vec![1],
                rows: vec![]
            },
            "{}",
            r.detail
        );
    }

    #[test]
    fn each_phase_has_its_own_bound() {
        let h = history(vec![
            read_at(1, 0, 0),
            done_at(1, 10_000),
            inject(1_000_000),
            read_at(2, 1_100_000, 1_100_000),
            done_at(2, 1_600_000), // 500ms during the fault
            heal(2_000_000),
            read_at(3, 3_000_000, 3_000_000),
            done_at(3, 3_005_000),
        ]);
        let ok = check(
            &h,
            LatencyBounds {
                steady: Some(bound_p99(50)),
                fault: Some(bound_p99(1000)),
                recovery: None,
            },
        );
        assert_eq!(ok.verdict, Verdict::Valid, "{}", ok.detail);
        let bad = check(
            &h,
            LatencyBounds {
                steady: Some(bound_p99(50)),
                fault: Some(bound_p99(100)),
                recovery: None,
            },
        );
        assert_eq!(
            bad.verdict,
            Verdict::Invalid {
                ops: vec![2],
                rows: vec![]
            },
            "{}",
            bad.detail
        );
    }

    #[test]
    fn an_empty_phase_is_unknown_not_valid() {
        let h = history(vec![read_at(1, 0, 0), done_at(1, 1_000)]);
        let r = check(
            &h,
            LatencyBounds {
                fault: Some(bound_p99(100)),
                ..Default::default()
            },
        );
        assert!(matches!(r.verdict, Verdict::Unknown { .. }), "{r:?}");
    }

    #[test]
    fn info_ops_count_with_their_latency_and_unfinished_ops_are_reported() {
        let h = history(vec![
            read_at(1, 0, 0),
            timed_out_at(1, 2_000_000),
            read_at(2, 0, 0),
        ]);
        let r = check(
            &h,
            LatencyBounds {
                steady: Some(bound_p99(100)),
                ..Default::default()
            },
        );
        assert_eq!(
            r.verdict,
            Verdict::Invalid {
                ops: vec![1],
                rows: vec![]
            }
        );
        assert!(r.detail.contains("1 op(s) never completed"), "{}", r.detail);
    }

    #[test]
    fn nearest_rank_quantiles() {
        let v: Vec<(u64, u64)> = (1..=100).map(|i| (i, i)).collect();
        assert_eq!(quantile(&v, 0.5), 50);
        assert_eq!(quantile(&v, 0.99), 99);
        assert_eq!(quantile(&v, 1.0), 100);
        assert_eq!(quantile(&v[..1], 0.99), 1);
    }
}
