//! `chaos report --compare BASELINE CANDIDATE`: per-phase latency and error deltas between
//! two runs of the same scenario, the time to recover from each heal, and every invariant's
//! verdict on each, as Markdown; with thresholds, the regressions past them (the release
//! gate of a suite uses the same figures and the same judgement).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use chaos_check::{Phase, PhaseMap, fmt_us, nearest_rank};
use chaos_model::{FaultAction, History, Op, OpKind, Outcome, Scenario, Thresholds};

use super::bundle::Bundle;

/// Recovery times below this count as this much when their ratio is gated: a ratio of two
/// times near zero (the first op after a heal already served) says nothing.
const RECOVERY_FLOOR_US: u64 = 100_000;
/// The run of served ops that marks recovery when the scenario has no `recovery` invariant
/// (the invariant's own default).
const DEFAULT_RECOVERY_RUN: u32 = 20;

/// One phase of one run: latencies of completed ops (sorted) and how many ops did not
/// succeed (fail, info, or never completed).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct PhaseStats {
    pub latencies: Vec<u64>,
    pub ops: usize,
    pub errors: usize,
}

impl PhaseStats {
    pub fn pct(&self, q: f64) -> Option<u64> {
        (!self.latencies.is_empty()).then(|| self.latencies[nearest_rank(self.latencies.len(), q)])
    }

    /// The share of ops not ok.
    pub fn error_ratio(&self) -> Option<f64> {
        (self.ops > 0).then(|| self.errors as f64 / self.ops as f64)
    }
}

/// What two runs are compared on.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Figures {
    pub phases: BTreeMap<Phase, PhaseStats>,
    /// Each healed fault, in order: its name and how long after the heal the first of a run
    /// of served ops was due (`None`: never recovered).
    pub recovery: Vec<(String, Option<u64>)>,
}

/// Ops by the phase they were due in.
pub fn phase_stats(scenario: &Scenario, history: &History) -> BTreeMap<Phase, PhaseStats> {
    let phases = PhaseMap::new(history, scenario.phases.recovery);
    let mut out: BTreeMap<Phase, PhaseStats> = BTreeMap::new();
    for op in history.ops() {
        let s = out.entry(phases.at(op.due_us)).or_default();
        s.ops += 1;
        if op.outcome != Outcome::Ok {
            s.errors += 1;
        }
        if let Some(l) = op.latency_us() {
            s.latencies.push(l);
        }
    }
    for s in out.values_mut() {
        s.latencies.sort_unstable();
    }
    out
}

/// Served as the availability checkers count it: ok, or a definite 409 (the slot is taken);
/// forged requests and readiness probes do not count at all.
fn counts(op: &Op) -> bool {
    !matches!(op.f, OpKind::Forged | OpKind::Readiness)
}

fn served(op: &Op) -> bool {
    match op.outcome {
        Outcome::Ok => true,
        Outcome::Fail => op.status == Some(409),
        Outcome::Info => false,
    }
}

/// For each successful heal, how long until the first of `run` consecutive served ops (by
/// due time) was due, as the `recovery` checker measures it.
pub fn recovery_times(history: &History, run: u32) -> Vec<(String, Option<u64>)> {
    let ops = history.ops();
    let mut ops: Vec<&Op> = ops.iter().filter(|o| counts(o)).collect();
    ops.sort_by_key(|o| (o.due_us, o.id));
    let run = run.max(1) as usize;
    history
        .faults()
        .filter(|f| f.action == FaultAction::Heal && f.error.is_none())
        .map(|f| {
            let after: Vec<&&Op> = ops.iter().filter(|o| o.due_us >= f.time_us).collect();
            let mut streak = 0;
            let mut at = None;
            for (i, o) in after.iter().enumerate() {
                streak = if served(o) { streak + 1 } else { 0 };
                if streak == run {
                    at = Some(after[i + 1 - run].due_us - f.time_us);
                    break;
                }
            }
            (f.name.clone(), at)
        })
        .collect()
}

pub fn figures(scenario: &Scenario, history: &History) -> Figures {
    let run = scenario
        .invariants
        .recovery
        .as_ref()
        .map_or(DEFAULT_RECOVERY_RUN, |r| r.run);
    Figures {
        phases: phase_stats(scenario, history),
        recovery: recovery_times(history, run),
    }
}

/// A candidate's figure past its threshold.
#[derive(Debug, Clone, PartialEq)]
pub struct Regression {
    /// `steady`, `fault`, `recovery`, or the healed fault's name.
    pub at: String,
    pub figure: &'static str,
    pub baseline: String,
    pub candidate: String,
    pub limit: String,
}

impl std::fmt::Display for Regression {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {} → {} (limit {})",
            self.at, self.figure, self.baseline, self.candidate, self.limit
        )
    }
}

const PHASES: [Phase; 3] = [Phase::Steady, Phase::Fault, Phase::Recovery];

/// Every figure of `cand` past the thresholds relative to `base`. A phase absent from
/// either run has nothing to compare; a heal the baseline recovered from and the candidate
/// never did is a regression whatever the ratio.
pub fn regressions(base: &Figures, cand: &Figures, t: &Thresholds) -> Vec<Regression> {
    let mut out = Vec::new();
    for phase in PHASES {
        let (Some(x), Some(y)) = (base.phases.get(&phase), cand.phases.get(&phase)) else {
            continue;
        };
        if let (Some(ratio), Some(a), Some(b)) = (t.p99_ratio, x.pct(0.99), y.pct(0.99)) {
            let limit = a.max(1) as f64 * ratio;
            if b as f64 > limit {
                out.push(Regression {
                    at: phase.as_str().into(),
                    figure: "p99",
                    baseline: fmt_us(a),
                    candidate: fmt_us(b),
                    limit: format!("{} ({ratio}x)", fmt_us(limit as u64)),
                });
            }
        }
        if let (Some(delta), Some(a), Some(b)) =
            (t.error_share_delta, x.error_ratio(), y.error_ratio())
            && b - a > delta + 1e-12
        {
            out.push(Regression {
                at: phase.as_str().into(),
                figure: "not-ok share",
                baseline: pct(a),
                candidate: pct(b),
                limit: format!("{} (+{:.1} pt)", pct(a + delta), delta * 100.0),
            });
        }
    }
    if let Some(ratio) = t.recovery_ratio {
        for (i, ((name, a), (_, b))) in base.recovery.iter().zip(&cand.recovery).enumerate() {
            let at = format!("heal {} ({name})", i + 1);
            let show = |v: &Option<u64>| v.map_or_else(|| "never".to_string(), fmt_us);
            let limit = a.map(|a| a.max(RECOVERY_FLOOR_US) as f64 * ratio);
            let regressed = match (a, b, limit) {
                (Some(_), None, _) => true,
                (Some(_), Some(b), Some(limit)) => *b as f64 > limit,
                _ => false,
            };
            if regressed {
                out.push(Regression {
                    at,
                    figure: "recovery",
                    baseline: show(a),
                    candidate: show(b),
                    limit: limit
                        .map_or_else(String::new, |l| format!("{} ({ratio}x)", fmt_us(l as u64))),
                });
            }
        }
    }
    out
}

fn pct(r: f64) -> String {
    format!("{:.1}%", r * 100.0)
}

/// The comparison as Markdown and the regressions past `t` (none when `t` is empty), or
/// why the two bundles cannot be compared.
pub fn compare(
    base: &Bundle,
    cand: &Bundle,
    t: &Thresholds,
) -> Result<(String, Vec<Regression>), String> {
    if base.scenario.name != cand.scenario.name {
        return Err(format!(
            "cannot compare runs of different scenarios: {} is {}, {} is {}",
            base.dir.display(),
            base.scenario.name,
            cand.dir.display(),
            cand.scenario.name
        ));
    }
    let label = |b: &Bundle| format!("{} (seed {})", b.scenario.profile, b.seed);
    let mut s = format!(
        "# {}: baseline {} vs candidate {}\n\nbaseline `{}`, candidate `{}`\n\n",
        base.scenario.name,
        label(base),
        label(cand),
        base.dir.display(),
        cand.dir.display()
    );
    s += "| phase | ops | p50 | p99 | max | not ok (fail + info) |\n|---|---|---|---|---|---|\n";
    let a = figures(&base.scenario, &base.history);
    let b = figures(&cand.scenario, &cand.history);
    for phase in PHASES {
        let (x, y) = (a.phases.get(&phase), b.phases.get(&phase));
        if x.is_none() && y.is_none() {
            continue;
        }
        let (x, y) = (
            x.cloned().unwrap_or_default(),
            y.cloned().unwrap_or_default(),
        );
        let _ = writeln!(
            s,
            "| {} | {} → {} | {} | {} | {} | {} |",
            phase.as_str(),
            x.ops,
            y.ops,
            latency_delta(x.pct(0.5), y.pct(0.5)),
            latency_delta(x.pct(0.99), y.pct(0.99)),
            latency_delta(x.latencies.last().copied(), y.latencies.last().copied()),
            ratio_delta(x.error_ratio(), y.error_ratio()),
        );
    }
    let heals = a.recovery.len().max(b.recovery.len());
    if heals > 0 {
        s += "\n| heal | recovered after |\n|---|---|\n";
        for i in 0..heals {
            let (x, y) = (a.recovery.get(i), b.recovery.get(i));
            let name = x.or(y).map_or("", |r| r.0.as_str());
            let cell = match (x.and_then(|r| r.1), y.and_then(|r| r.1)) {
                (None, None) => "never → never".to_string(),
                (Some(p), None) => format!("{} → never", fmt_us(p)),
                (None, Some(q)) => format!("never → {}", fmt_us(q)),
                (p, q) => latency_delta(p, q),
            };
            let _ = writeln!(s, "| {} ({name}) | {cell} |", i + 1);
        }
    }
    s += "\n| invariant | baseline | candidate |\n|---|---|---|\n";
    let verdicts = |b: &Bundle| -> BTreeMap<String, &'static str> {
        b.recheck()
            .results
            .into_iter()
            .map(|r| (r.invariant, r.verdict.name()))
            .collect()
    };
    let (va, vb) = (verdicts(base), verdicts(cand));
    let mut names: Vec<&String> = va.keys().chain(vb.keys()).collect();
    names.sort();
    names.dedup();
    for n in names {
        let get = |m: &BTreeMap<String, &'static str>| m.get(n).copied().unwrap_or("—");
        let (x, y) = (get(&va), get(&vb));
        let mark = if x != y { " ⚠" } else { "" };
        let _ = writeln!(s, "| {n} | {x} | {y}{mark} |");
    }
    let found = regressions(&a, &b, t);
    if !t.is_empty() {
        s += &gate_md(t, &found);
    }
    Ok((s, found))
}

/// The thresholds and what passed them, as a Markdown section.
fn gate_md(t: &Thresholds, found: &[Regression]) -> String {
    let mut limits = Vec::new();
    if let Some(r) = t.p99_ratio {
        limits.push(format!("p99 at most {r}x"));
    }
    if let Some(d) = t.error_share_delta {
        limits.push(format!("not-ok share at most +{:.1} pt", d * 100.0));
    }
    if let Some(r) = t.recovery_ratio {
        limits.push(format!("recovery at most {r}x"));
    }
    let mut s = format!("\n## Gate: {}\n\n", limits.join(", "));
    if found.is_empty() {
        s += "No regression past the thresholds.\n";
    } else {
        s += "| where | figure | baseline | candidate | limit |\n|---|---|---|---|---|\n";
        for r in found {
            let _ = writeln!(
                s,
                "| {} | {} | {} | **{}** | {} |",
                r.at, r.figure, r.baseline, r.candidate, r.limit
            );
        }
    }
    s
}

fn latency_delta(a: Option<u64>, b: Option<u64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) => {
            let d = b as f64 - a as f64;
            let sign = if d < 0.0 { "-" } else { "+" };
            let pct = if a > 0 {
                format!(" ({sign}{:.0}%)", (d.abs() / a as f64) * 100.0)
            } else {
                String::new()
            };
            format!(
                "{} → {} {sign}{}{pct}",
                fmt_us(a),
                fmt_us(b),
                fmt_us(d.abs() as u64)
            )
        }
        (a, b) => format!(
            "{} → {}",
            a.map_or_else(|| "—".into(), fmt_us),
            b.map_or_else(|| "—".into(), fmt_us)
        ),
    }
}

fn ratio_delta(a: Option<f64>, b: Option<f64>) -> String {
    let p = |r: Option<f64>| r.map_or_else(|| "—".to_string(), pct);
    match (a, b) {
        (Some(x), Some(y)) => format!("{} → {} ({:+.1} pt)", p(a), p(b), (y - x) * 100.0),
        _ => format!("{} → {}", p(a), p(b)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deltas_read_as_a_person_expects() {
        assert_eq!(
            latency_delta(Some(2_000), Some(3_000)),
            "2.0ms → 3.0ms +1.0ms (+50%)"
        );
        assert_eq!(
            latency_delta(Some(4_000), Some(1_000)),
            "4.0ms → 1.0ms -3.0ms (-75%)"
        );
        assert_eq!(latency_delta(None, Some(500)), "— → 500us");
        assert_eq!(
            ratio_delta(Some(0.01), Some(0.25)),
            "1.0% → 25.0% (+24.0 pt)"
        );
    }

    fn stats(latencies_ms: &[u64], ops: usize, errors: usize) -> PhaseStats {
        PhaseStats {
            latencies: latencies_ms.iter().map(|m| m * 1000).collect(),
            ops,
            errors,
        }
    }

    fn figs(phases: &[(Phase, PhaseStats)], recovery: &[Option<u64>]) -> Figures {
        Figures {
            phases: phases.iter().cloned().collect(),
            recovery: recovery
                .iter()
                .map(|r| ("kill redis".to_string(), *r))
                .collect(),
        }
    }

    #[test]
    fn regressions_are_what_passes_each_threshold_and_nothing_else() {
        let base = figs(
            &[
                (Phase::Steady, stats(&[10; 100], 100, 1)),
                (Phase::Fault, stats(&[100; 100], 100, 10)),
            ],
            &[Some(500_000), Some(10_000), Some(1_000_000)],
        );
        let cand = figs(
            &[
                // p99 15 ms: exactly 1.5x, not past it; not-ok 3%: +2 pt exactly.
                (Phase::Steady, stats(&[15; 100], 100, 3)),
                // p99 151 ms: past 1.5x; not-ok 13%: +3 pt.
                (Phase::Fault, stats(&[151; 100], 100, 13)),
                // Absent from the baseline: nothing to compare.
                (Phase::Recovery, stats(&[900; 10], 10, 10)),
            ],
            // 1.5x of 500 ms is 750 ms; 10 ms counts as the 100 ms floor; never recovered.
            &[Some(760_000), Some(140_000), None],
        );
        let t = Thresholds {
            p99_ratio: Some(1.5),
            error_share_delta: Some(0.02),
            recovery_ratio: Some(1.5),
        };
        let found: Vec<String> = regressions(&base, &cand, &t)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            found,
            [
                "fault p99: 100.0ms → 151.0ms (limit 150.0ms (1.5x))",
                "fault not-ok share: 10.0% → 13.0% (limit 12.0% (+2.0 pt))",
                "heal 1 (kill redis) recovery: 500.0ms → 760.0ms (limit 750.0ms (1.5x))",
                "heal 3 (kill redis) recovery: 1.00s → never (limit 1.50s (1.5x))",
            ]
        );
        assert!(regressions(&base, &cand, &Thresholds::default()).is_empty());
        assert!(
            regressions(&base, &base, &t).is_empty(),
            "a run does not regress from itself"
        );
    }
}
