//! Metrics reflect saturation (000:C8, 001:S-2): each named gauge rises while a fault is in
//! force and falls back after the last heal, judged from the gauges sampled during the run
//! (`evidence.metric_samples`, on the history's clock).
//!
//! Per replica: a gauge's steady level on a replica is the (lower) median of its samples before the
//! first fault. The slack is `max(1, 10 % of the level)` (gauges count things in flight: a
//! request or two of ordinary load is no saturation). It rises when, in at least one fault
//! window, some replica's sample is above that replica's own level plus the slack (one
//! replica saturating is a signal; a sum would let a killed replica's silence hide it). It
//! falls when every replica with a steady level and a sample in the recovery window after
//! the last heal has one at or below its level plus the slack. Invalid when a replica that answered exports no such
//! gauge at all (the design has no saturation signal), when the gauge never rises in a
//! fault, or when it stays up after it.

use std::collections::BTreeMap;

use chaos_model::{CheckResult, Dur, Evidence, GaugeBound, History, MetricSample, Verdict};

use crate::fmt_us;
use crate::view::View;

pub const NAME: &str = "metrics_reflect";

pub fn check_metrics_reflect(
    bound: &GaugeBound,
    recovery: Dur,
    history: &History,
    evidence: &Evidence,
) -> CheckResult {
    check(bound, recovery, &View::new(history, evidence))
}

/// How far above its steady level a gauge may be and count as back.
pub fn slack(level: f64) -> f64 {
    (level.abs() * 0.1).max(1.0)
}

fn fmt_v(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

/// What one gauge came to: its line of the detail, and the proof when it failed.
enum Judged {
    Valid(String),
    Unknown(String),
    Invalid(String, Vec<String>),
}

/// The fault windows of the run and the end of the recovery window after the last heal.
struct Windows {
    /// Where the faults were certainly in effect: a sample inside one is a sample during a
    /// fault.
    faults: Vec<(u64, u64)>,
    first_fault: u64,
    last_heal: u64,
    recovered_by: u64,
}

pub(crate) fn check(bound: &GaugeBound, recovery: Dur, v: &View<'_>) -> CheckResult {
    let samples = &v.evidence.metric_samples;
    if samples.is_empty() {
        return CheckResult::new(NAME, Verdict::unknown("no gauge samples were collected"));
    }
    let faults: Vec<(u64, u64)> = v.fault_windows().iter().map(|w| (w.1, w.2)).collect();
    let (Some(first_fault), Some(last_heal)) = (
        faults.iter().map(|w| w.0).min(),
        faults.iter().map(|w| w.1).max(),
    ) else {
        return CheckResult::new(
            NAME,
            Verdict::unknown("no fault was injected: there is no fault to reflect"),
        );
    };
    let w = Windows {
        faults: v
            .certain_fault_windows()
            .iter()
            .map(|w| (w.1, w.2))
            .collect(),
        first_fault,
        last_heal,
        recovered_by: last_heal.saturating_add(recovery.as_micros()),
    };
    let answering: BTreeMap<u32, ()> = samples
        .iter()
        .filter(|s| s.answered)
        .map(|s| (s.replica, ()))
        .collect();
    let mut verdict = Verdict::Valid;
    let mut lines = Vec::new();
    let mut proof = Vec::new();
    for g in &bound.gauges {
        match judge(g, samples, &w, &answering, recovery) {
            Judged::Valid(line) => lines.push(line),
            Judged::Unknown(reason) => {
                let reason = format!("{g}: {reason}");
                lines.push(reason.clone());
                verdict = verdict.worst(Verdict::Unknown { reason });
            }
            Judged::Invalid(line, mut rows) => {
                lines.push(format!("{g}: {line}"));
                proof.append(&mut rows);
                verdict = verdict.worst(Verdict::Invalid {
                    ops: vec![],
                    rows: vec![],
                });
            }
        }
    }
    let detail = format!("{} samples: {}", samples.len(), lines.join("; "));
    let verdict = match verdict {
        Verdict::Invalid { .. } => Verdict::Invalid {
            ops: vec![],
            rows: proof,
        },
        other => other,
    };
    CheckResult {
        invariant: NAME.into(),
        verdict,
        detail,
    }
}

fn judge(
    g: &str,
    samples: &[MetricSample],
    w: &Windows,
    answering: &BTreeMap<u32, ()>,
    recovery: Dur,
) -> Judged {
    let of = |s: &MetricSample| s.gauges.get(g).copied();
    let exporting: BTreeMap<u32, ()> = samples
        .iter()
        .filter(|s| of(s).is_some())
        .map(|s| (s.replica, ()))
        .collect();
    let silent: Vec<String> = answering
        .keys()
        .filter(|r| !exporting.contains_key(r))
        .map(|r| {
            format!("replica {r} answered but exports no gauge {g}: no saturation signal (000:C8)")
        })
        .collect();
    if !silent.is_empty() {
        return Judged::Invalid(
            format!("not exported by {} replica(s)", silent.len()),
            silent,
        );
    }
    // Each replica's steady level: the median of its samples before the first fault (one
    // warm-up spike neither raises the bar a fault must clear nor hides a rise).
    let mut before: BTreeMap<u32, Vec<f64>> = BTreeMap::new();
    for s in samples.iter().filter(|s| s.time_us < w.first_fault) {
        if let Some(x) = of(s) {
            before.entry(s.replica).or_default().push(x);
        }
    }
    let level: BTreeMap<u32, f64> = before
        .into_iter()
        .map(|(r, mut xs)| {
            xs.sort_by(f64::total_cmp);
            (r, xs[(xs.len() - 1) / 2])
        })
        .collect();
    let in_fault = |t: u64| w.faults.iter().any(|&(a, b)| a <= t && t < b);
    let during: Vec<(&MetricSample, f64)> = samples
        .iter()
        .filter(|s| in_fault(s.time_us))
        .filter_map(|s| Some((s, of(s)?)))
        .collect();
    if during.is_empty() {
        return Judged::Unknown("no sample inside a fault window".into());
    }
    if level.is_empty() {
        return Judged::Unknown("no sample before the first fault to set its steady level".into());
    }
    let levels: Vec<String> = level
        .iter()
        .map(|(r, l)| format!("{} on replica {r}", fmt_v(*l)))
        .collect();
    // How far each sample in a fault stands above its replica's level plus the slack.
    let peak = during
        .iter()
        .filter_map(|(s, x)| {
            let l = level.get(&s.replica)?;
            Some((x - l - slack(*l), *x, s.replica, s.time_us))
        })
        .max_by(|a, b| a.0.total_cmp(&b.0));
    let Some((excess, peak_v, peak_r, peak_t)) = peak else {
        return Judged::Unknown(
            "no replica sampled in a fault had a steady level to compare with".into(),
        );
    };
    if excess <= 0.0 {
        return Judged::Invalid(
            "flat in faults".into(),
            vec![format!(
                "{g} never rose above its steady level ({}) plus slack in a fault: peak {} on replica {peak_r}",
                levels.join(", "),
                fmt_v(peak_v)
            )],
        );
    }
    // Per replica with a level: its lowest sample in the recovery window.
    let mut lowest: BTreeMap<u32, f64> = BTreeMap::new();
    for s in samples
        .iter()
        .filter(|s| w.last_heal <= s.time_us && s.time_us < w.recovered_by)
    {
        if let (Some(x), true) = (of(s), level.contains_key(&s.replica)) {
            let l = lowest.entry(s.replica).or_insert(x);
            *l = l.min(x);
        }
    }
    let rose = format!(
        "rose to {} on replica {peak_r} at {} in a fault",
        fmt_v(peak_v),
        fmt_us(peak_t)
    );
    if lowest.is_empty() {
        return Judged::Unknown(format!(
            "{rose}, but no sample in the recovery window after the last heal"
        ));
    }
    let stuck: Vec<String> = lowest
        .iter()
        .filter(|(r, x)| **x > level[r] + slack(level[r]))
        .map(|(r, x)| {
            format!(
                "{g} on replica {r} stayed above its steady level {} (+{} slack) through the {recovery} after the last heal: lowest {}",
                fmt_v(level[r]),
                fmt_v(slack(level[r])),
                fmt_v(*x)
            )
        })
        .collect();
    if stuck.is_empty() {
        Judged::Valid(format!(
            "{g}: steady {}; {rose}; back within {recovery} of the last heal",
            levels.join(", ")
        ))
    } else {
        Judged::Invalid("did not fall after the last heal".into(), stuck)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::*;
    use chaos_model::MetricSample;

    const G: &str = "mediconnect_http_in_flight";

    fn run(samples: Vec<MetricSample>) -> CheckResult {
        // A fault from 1 s to 2 s, recovery 1 s.
        let h = history(vec![inject(1_000_000), heal(2_000_000)]);
        let ev = Evidence {
            metric_samples: samples,
            ..Evidence::default()
        };
        let bound = GaugeBound {
            gauges: vec![G.into()],
        };
        check_metrics_reflect(&bound, Dur::from_secs(1), &h, &ev)
    }

    /// Two replicas sampled every 500 ms from 0 to 3 s; replica 1's values are `one`.
    fn series(one: [f64; 7]) -> Vec<MetricSample> {
        (0..7)
            .flat_map(|i| {
                let t = i as u64 * 500_000;
                [sample(t, 1, &[(G, one[i])]), sample(t, 2, &[(G, 2.0)])]
            })
            .collect()
    }

    #[test]
    fn a_gauge_that_rises_in_the_fault_and_falls_after_is_valid() {
        let r = run(series([3.0, 4.0, 40.0, 35.0, 9.0, 4.0, 3.0]));
        assert_eq!(r.verdict, Verdict::Valid, "{}", r.detail);
        assert!(
            r.detail.contains("rose to 40 on replica 1 at 1.00s"),
            "{}",
            r.detail
        );
    }

    #[test]
    fn a_warm_up_spike_does_not_raise_the_steady_level() {
        // 30 at start-up, 3 after: the steady level is 3, so 20 in the fault is a rise.
        let r = run(series([30.0, 3.0, 20.0, 15.0, 4.0, 3.0, 3.0]));
        assert_eq!(r.verdict, Verdict::Valid, "{}", r.detail);
    }

    #[test]
    fn a_flat_gauge_or_one_that_stays_up_is_invalid() {
        match run(series([3.0, 4.0, 4.0, 2.0, 3.0, 4.0, 3.0])).verdict {
            Verdict::Invalid { rows, .. } => {
                assert!(rows[0].contains("never rose"), "{rows:?}")
            }
            v => panic!("expected invalid, got {v:?}"),
        }
        // Level 3, slack 1: 6 is not back.
        match run(series([3.0, 4.0, 40.0, 35.0, 30.0, 6.0, 3.0])).verdict {
            Verdict::Invalid { rows, .. } => {
                assert!(rows[0].contains("replica 1 stayed above"), "{rows:?}")
            }
            v => panic!("expected invalid, got {v:?}"),
        }
    }

    #[test]
    fn a_replica_that_answers_without_the_gauge_is_invalid() {
        let mut s = series([3.0, 4.0, 40.0, 35.0, 9.0, 4.0, 3.0]);
        s.push(sample(100, 3, &[("mediconnect_bookings_total", 1.0)]));
        // A replica that did not answer (killed) is not held to export anything.
        s.push(unanswered(100, 4));
        // One that answered with no gauge at all (naive: counters only) is.
        s.push(sample(100, 5, &[]));
        match run(s).verdict {
            Verdict::Invalid { rows, .. } => {
                assert_eq!(rows.len(), 2, "{rows:?}");
                assert!(
                    rows[0].contains("replica 3 answered but exports no gauge"),
                    "{rows:?}"
                );
                assert!(rows[1].contains("replica 5 answered"), "{rows:?}");
            }
            v => panic!("expected invalid, got {v:?}"),
        }
    }

    #[test]
    fn no_samples_none_in_a_fault_or_none_after_is_unknown() {
        assert!(matches!(run(vec![]).verdict, Verdict::Unknown { .. }));
        let before_only = vec![sample(0, 1, &[(G, 1.0)]), sample(500_000, 1, &[(G, 1.0)])];
        match run(before_only).verdict {
            Verdict::Unknown { reason } => assert!(reason.contains("inside a fault"), "{reason}"),
            v => panic!("expected unknown, got {v:?}"),
        }
        let no_recovery: Vec<_> = series([3.0, 4.0, 40.0, 35.0, 9.0, 4.0, 3.0])
            .into_iter()
            .filter(|s| s.time_us < 2_000_000)
            .collect();
        assert!(matches!(run(no_recovery).verdict, Verdict::Unknown { .. }));
    }
}
