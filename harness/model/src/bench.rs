//! The figures one benchmark measured, as `just bench` joins them into one report: each
//! figure beside its peer or floor from the same run, the ratio, and the goal it is held to;
//! and latency distributions to draw side by side.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// What one benchmark (one binary, one variant) measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BenchPart {
    /// File stem and key: `proxy`, `proxy-pinned`, `checkers`, `driver`, `envstart`.
    pub bench: String,
    /// A heading for people.
    pub title: String,
    /// How it was measured (sizes, counts, pinning), one line.
    pub conditions: String,
    pub figures: Vec<Figure>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub distributions: Vec<Distribution>,
}

/// One measured figure against its peer (a yardstick measured beside it) or floor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Figure {
    pub name: String,
    pub value: f64,
    /// `us`, `ms`, `s`, `MB/s`, `rps`, ...
    pub unit: String,
    /// What it is set beside: `tokio copy_bidirectional`, `wrk`, `read history.jsonl alone`.
    pub peer: String,
    pub peer_value: f64,
    /// `value / peer_value`; none when the peer measured nothing.
    pub ratio: Option<f64>,
    pub goal: Goal,
}

/// What a figure's ratio is held to.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "ratio", rename_all = "snake_case")]
pub enum Goal {
    /// The ratio must be at most this.
    AtMost(f64),
    /// The ratio must be at least this.
    AtLeast(f64),
    /// The ratio must be within this share of 1 (0.1: between 0.9 and 1.1).
    Within(f64),
    /// The ratio must be between these two, both included.
    Between(f64, f64),
    /// Shown for context; no goal.
    Reported,
}

impl Goal {
    /// Whether `ratio` meets the goal; `None` when there is none.
    pub fn met(self, ratio: f64) -> Option<bool> {
        match self {
            Goal::AtMost(g) => Some(ratio <= g),
            Goal::AtLeast(g) => Some(ratio >= g),
            Goal::Within(g) => Some((ratio - 1.0).abs() <= g),
            Goal::Between(lo, hi) => Some((lo..=hi).contains(&ratio)),
            Goal::Reported => None,
        }
    }

    /// `<= 1.00x`, `>= 1.50x`, `1.00x +-10%`, `1.00x-1.05x`, `-`.
    pub fn describe(self) -> String {
        match self {
            Goal::AtMost(g) => format!("<= {g:.2}x"),
            Goal::AtLeast(g) => format!(">= {g:.2}x"),
            Goal::Within(g) => format!("1.00x +-{:.0}%", g * 100.0),
            Goal::Between(lo, hi) => format!("{lo:.2}x-{hi:.2}x"),
            Goal::Reported => "-".into(),
        }
    }
}

/// `value / peer_value`, when the peer measured something.
fn ratio(value: f64, peer_value: f64) -> Option<f64> {
    (peer_value != 0.0 && (value / peer_value).is_finite()).then(|| value / peer_value)
}

impl Figure {
    /// A figure beside its peer; the ratio is worked out here.
    pub fn new(
        name: &str,
        value: f64,
        unit: &str,
        peer: &str,
        peer_value: f64,
        goal: Goal,
    ) -> Figure {
        Figure {
            name: name.into(),
            value,
            unit: unit.into(),
            peer: peer.into(),
            peer_value,
            ratio: ratio(value, peer_value),
            goal,
        }
    }

    /// Whether the goal is met; a goal without a ratio to judge is not.
    pub fn met(&self) -> Option<bool> {
        match self.ratio {
            Some(r) => self.goal.met(r),
            None => Some(false).filter(|_| self.goal != Goal::Reported),
        }
    }
}

/// One path's latency distribution: `(quantile, value)` pairs, quantiles rising in (0, 1].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Distribution {
    pub name: String,
    pub unit: String,
    pub quantiles: Vec<(f64, f64)>,
}

/// The quantiles a distribution keeps: fine where the tail is.
pub const PLOT_QUANTILES: [f64; 16] = [
    0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.995, 0.999, 0.9995, 0.9999, 0.99995,
    0.99999, 1.0,
];

impl Distribution {
    /// From samples sorted ascending, nearest-rank at [`PLOT_QUANTILES`].
    pub fn from_sorted(name: &str, unit: &str, sorted: &[f64]) -> Distribution {
        assert!(!sorted.is_empty(), "a distribution needs samples");
        let n = sorted.len();
        let quantiles = PLOT_QUANTILES
            .iter()
            .map(|&q| (q, sorted[crate::nearest_rank(n, q)]))
            .collect();
        Distribution {
            name: name.into(),
            unit: unit.into(),
            quantiles,
        }
    }
}

impl BenchPart {
    /// What makes the part unfit to report, if anything: a figure whose ratio is not its
    /// value over its peer's, a value that is not a finite number, a distribution without
    /// quantiles or with quantiles outside (0, 1] or not rising, a negative latency.
    pub fn problem(&self) -> Option<String> {
        for f in &self.figures {
            if !f.value.is_finite() || !f.peer_value.is_finite() {
                return Some(format!("figure `{}`: a value is not a number", f.name));
            }
            let same = match (f.ratio, ratio(f.value, f.peer_value)) {
                (Some(a), Some(b)) => (a - b).abs() <= 1e-9 * b.abs().max(1.0),
                (a, b) => a == b,
            };
            if !same {
                return Some(format!(
                    "figure `{}`: ratio {:?} is not value / peer value",
                    f.name, f.ratio
                ));
            }
        }
        for d in &self.distributions {
            if d.quantiles.is_empty() {
                return Some(format!("distribution `{}` has no quantiles", d.name));
            }
            let mut last = 0.0;
            for &(q, v) in &d.quantiles {
                if !(q > last && q <= 1.0) {
                    return Some(format!(
                        "distribution `{}`: quantile {q} is not rising within (0, 1]",
                        d.name
                    ));
                }
                if !(v.is_finite() && v >= 0.0) {
                    return Some(format!("distribution `{}`: value {v} at {q}", d.name));
                }
                last = q;
            }
        }
        None
    }
}

/// Where the benchmarks of a workspace rooted at `root` leave their parts.
pub fn parts_dir(root: &Path) -> PathBuf {
    root.join("reports").join("bench").join("parts")
}

/// The part's file in `parts_dir`.
pub fn part_file(parts: &Path, bench: &str) -> PathBuf {
    parts.join(format!("{bench}.json"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn goals_judge_ratios_and_a_missing_peer_fails() {
        assert_eq!(Goal::AtMost(1.0).met(1.0), Some(true));
        assert_eq!(Goal::AtMost(1.0).met(1.01), Some(false));
        assert_eq!(Goal::AtLeast(1.5).met(1.49), Some(false));
        assert_eq!(Goal::Within(0.1).met(0.89), Some(false));
        assert_eq!(Goal::Within(0.1).met(1.09), Some(true));
        assert_eq!(Goal::Between(1.0, 1.05).met(0.99), Some(false));
        assert_eq!(Goal::Between(1.0, 1.05).met(1.05), Some(true));
        assert_eq!(Goal::Reported.met(9.0), None);
        let f = Figure::new("x", 1.0, "us", "y", 0.0, Goal::AtMost(1.0));
        assert_eq!(f.met(), Some(false), "no peer figure is no proof");
    }

    #[test]
    fn parts_round_trip_and_distributions_take_nearest_ranks() {
        let sorted: Vec<f64> = (1..=1000).map(f64::from).collect();
        let d = Distribution::from_sorted("direct", "us", &sorted);
        assert_eq!(d.quantiles[4], (0.5, 500.0));
        assert_eq!(d.quantiles[8], (0.99, 990.0));
        assert_eq!(d.quantiles.last(), Some(&(1.0, 1000.0)));
        let p = BenchPart {
            bench: "proxy".into(),
            title: "t".into(),
            conditions: "c".into(),
            figures: vec![Figure::new(
                "rtt",
                2.0,
                "us",
                "plain",
                4.0,
                Goal::AtMost(1.0),
            )],
            distributions: vec![d],
        };
        let back: BenchPart = serde_json::from_str(&serde_json::to_string(&p).unwrap()).unwrap();
        assert_eq!(back, p);
        assert_eq!(back.figures[0].ratio, Some(0.5));
        assert_eq!(back.figures[0].met(), Some(true));
        assert_eq!(back.problem(), None);
        let mut bad = back.clone();
        bad.figures[0].ratio = Some(3.0);
        assert!(bad.problem().unwrap().contains("not value / peer value"));
        let mut bad = back.clone();
        bad.distributions[0].quantiles.clear();
        assert!(bad.problem().unwrap().contains("no quantiles"));
        let mut bad = back;
        bad.distributions[0].quantiles[1].0 = 0.001;
        assert!(bad.problem().unwrap().contains("not rising"));
    }
}
