//! `chaos report --compare BASELINE CANDIDATE`: per-phase latency and error deltas between
//! two runs of the same scenario, and every invariant's verdict on each, as Markdown.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use chaos_check::{Phase, PhaseMap, fmt_us, nearest_rank};
use chaos_model::{History, Outcome, Scenario};

use super::bundle::Bundle;

/// One phase of one run: latencies of completed ops (sorted) and how many ops did not
/// succeed (fail, info, or never completed).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct PhaseStats {
    pub latencies: Vec<u64>,
    pub ops: usize,
    pub errors: usize,
}

impl PhaseStats {
    fn pct(&self, q: f64) -> Option<u64> {
        (!self.latencies.is_empty()).then(|| self.latencies[nearest_rank(self.latencies.len(), q)])
    }

    fn error_ratio(&self) -> Option<f64> {
        (self.ops > 0).then(|| self.errors as f64 / self.ops as f64)
    }
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

/// The comparison, or why the two bundles cannot be compared.
pub fn compare(base: &Bundle, cand: &Bundle) -> Result<String, String> {
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
    let a = phase_stats(&base.scenario, &base.history);
    let b = phase_stats(&cand.scenario, &cand.history);
    for phase in [Phase::Steady, Phase::Fault, Phase::Recovery] {
        let (x, y) = (a.get(&phase), b.get(&phase));
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
    Ok(s)
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
    let p = |r: Option<f64>| r.map_or_else(|| "—".to_string(), |r| format!("{:.1}%", r * 100.0));
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
}
