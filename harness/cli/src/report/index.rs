//! A suite run's index: every row's runs judged against its scenario's `[expect]`, the
//! findings matrix, flakiness over seeds and the baseline comparison; rendered as
//! `index.md`, `index.html` (self-contained), `index.json` and `junit.xml`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use chaos_engine::runner::PhaseTime;
use chaos_model::{CheckResult, Profile, Thresholds, Verdict};
use quick_junit::{NonSuccessKind, Property, TestCase, TestCaseStatus, TestSuite};
use serde_json::json;

use super::compare::Regression;
use crate::exit;

/// Both profiles, in the order of the matrix's columns.
pub const PROFILES: [Profile; 2] = [Profile::Naive, Profile::Hardened];

/// A whole suite run, as the index renders it.
#[derive(Debug, Clone)]
pub struct SuiteResult {
    pub suite: String,
    pub description: String,
    /// The command that reruns the suite with the same seeds.
    pub reproduce: String,
    /// The first seed; run `i` (1-based) of a row has seed `seed + i - 1`.
    pub seed: u64,
    pub rows: Vec<RowResult>,
    pub baseline: Option<BaselineResult>,
    /// Why the suite stopped early, if it did: the rows that ran are all there is.
    pub interrupted: Option<String>,
    /// Wall time of the whole suite, seconds.
    pub wall_s: f64,
}

/// One row: a scenario on a profile, run once per seed.
#[derive(Debug, Clone)]
pub struct RowResult {
    pub scenario: String,
    /// The scenario file as the suite named it.
    pub file: String,
    pub profile: Profile,
    pub findings: Vec<String>,
    /// What the scenario expects this profile to break.
    pub expect_invalid: Vec<String>,
    pub runs: Vec<RunResult>,
}

/// One run of a row.
#[derive(Debug, Clone)]
pub struct RunResult {
    /// 1-based seed index.
    pub index: u32,
    pub seed: u64,
    /// The bundle's directory, relative to the suite run's directory.
    pub bundle: String,
    /// Every invariant's result, or the environment failure that left none.
    pub results: Result<Vec<CheckResult>, String>,
    /// How long each phase of the run took (empty when it ended without a report).
    pub phases: Vec<PhaseTime>,
}

/// The comparison of every run with the baseline's run of the same row and seed index.
#[derive(Debug, Clone)]
pub struct BaselineResult {
    pub dir: String,
    pub thresholds: Thresholds,
    pub compared: Vec<Compared>,
}

#[derive(Debug, Clone)]
pub struct Compared {
    pub scenario: String,
    pub profile: Profile,
    pub index: u32,
    pub bundle: String,
    /// The baseline's bundle; `None` when the baseline has no such row (nothing to compare).
    pub against: Option<String>,
    pub regressions: Vec<Regression>,
    /// Why the two could not be compared (a bundle unreadable): counts as a regression.
    pub error: Option<String>,
}

impl Compared {
    pub fn fails(&self) -> bool {
        !self.regressions.is_empty() || self.error.is_some()
    }
}

/// One invariant of one run against its expectation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Status {
    /// Expected invalid, came out invalid.
    Caught,
    /// Expected valid, came out valid.
    Held,
    /// Expected invalid, came out valid or unknown (or not at all).
    Missed,
    /// Expected valid, came out invalid.
    Violated,
    /// Expected valid, came out unknown.
    Unknown,
}

impl Status {
    pub fn judge(expected_invalid: bool, verdict: Option<&Verdict>) -> Status {
        match (expected_invalid, verdict) {
            (true, Some(Verdict::Invalid { .. })) => Status::Caught,
            (true, _) => Status::Missed,
            (false, Some(Verdict::Valid)) => Status::Held,
            (false, Some(Verdict::Invalid { .. })) => Status::Violated,
            (false, _) => Status::Unknown,
        }
    }

    pub fn deviates(self) -> bool {
        matches!(self, Status::Missed | Status::Violated | Status::Unknown)
    }

    pub fn name(self) -> &'static str {
        match self {
            Status::Caught => "caught",
            Status::Held => "held",
            Status::Missed => "MISSED",
            Status::Violated => "VIOLATED",
            Status::Unknown => "UNKNOWN",
        }
    }
}

/// One invariant of one run, judged.
#[derive(Debug, Clone)]
pub struct Judged<'a> {
    pub invariant: &'a str,
    /// valid, invalid, unknown, or absent (the run has no result for it).
    pub verdict: &'static str,
    pub expected_invalid: bool,
    pub status: Status,
    pub detail: &'a str,
}

/// A scenario x profile in the findings matrix, over every seed of its row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cell {
    /// Every run broke what the profile is expected to break.
    Caught,
    /// Every run held every invariant (the profile is expected to break nothing).
    Held,
    /// No run did what was expected.
    Missed,
    /// Some runs did and `off` of `of` judged runs did not: a deviation.
    Flaky { off: usize, of: usize },
    /// No run got as far as verdicts.
    Error,
}

impl Cell {
    pub fn name(self) -> String {
        match self {
            Cell::Caught => "caught".into(),
            Cell::Held => "held".into(),
            Cell::Missed => "missed".into(),
            Cell::Flaky { off, of } => format!("flaky ({off}/{of})"),
            Cell::Error => "error".into(),
        }
    }

    pub fn fails(self) -> bool {
        matches!(self, Cell::Missed | Cell::Flaky { .. })
    }

    fn class(self) -> &'static str {
        match self {
            Cell::Caught | Cell::Held => "valid",
            Cell::Missed | Cell::Flaky { .. } => "invalid",
            Cell::Error => "unknown",
        }
    }
}

impl RowResult {
    pub fn label(&self) -> String {
        format!("{}/{}", self.scenario, self.profile)
    }

    /// Every invariant of a run against the expectation, in the run's order, then any
    /// expected-invalid invariant the run has no result for (missed).
    pub fn judged<'a>(&'a self, results: &'a [CheckResult]) -> Vec<Judged<'a>> {
        let mut out: Vec<Judged<'a>> = results
            .iter()
            .map(|c| {
                let expected_invalid = self.expect_invalid.contains(&c.invariant);
                Judged {
                    invariant: &c.invariant,
                    verdict: c.verdict.name(),
                    expected_invalid,
                    status: Status::judge(expected_invalid, Some(&c.verdict)),
                    detail: &c.detail,
                }
            })
            .collect();
        for e in &self.expect_invalid {
            if !results.iter().any(|c| &c.invariant == e) {
                out.push(Judged {
                    invariant: e,
                    verdict: "absent",
                    expected_invalid: true,
                    status: Status::Missed,
                    detail: "the run has no result for it",
                });
            }
        }
        out
    }

    /// Each deviation of each run.
    pub fn deviations(&self) -> Vec<(&RunResult, Judged<'_>)> {
        let mut out = Vec::new();
        for run in &self.runs {
            if let Ok(results) = &run.results {
                for j in self.judged(results) {
                    if j.status.deviates() {
                        out.push((run, j));
                    }
                }
            }
        }
        out
    }

    /// Runs with at least one deviation.
    pub fn deviating_runs(&self) -> usize {
        self.runs
            .iter()
            .filter(|r| match &r.results {
                Ok(res) => self.judged(res).iter().any(|j| j.status.deviates()),
                Err(_) => false,
            })
            .count()
    }

    /// Runs that ended without verdicts, with why.
    pub fn failed_runs(&self) -> impl Iterator<Item = (&RunResult, &str)> {
        self.runs.iter().filter_map(|r| match &r.results {
            Err(e) => Some((r, e.as_str())),
            Ok(_) => None,
        })
    }

    /// Every invariant any run judged (or the row expects), in first-seen order.
    pub fn invariants(&self) -> Vec<&str> {
        let mut names: Vec<&str> = Vec::new();
        for r in &self.runs {
            if let Ok(res) = &r.results {
                for j in self.judged(res) {
                    if !names.contains(&j.invariant) {
                        names.push(j.invariant);
                    }
                }
            }
        }
        for e in &self.expect_invalid {
            if !names.contains(&e.as_str()) {
                names.push(e);
            }
        }
        names
    }

    /// For one invariant over the judged runs: the verdicts seen (with counts), how many
    /// runs deviated on it, and the status when every run agreed.
    pub fn seen(&self, invariant: &str) -> Seen {
        let mut s = Seen::default();
        for r in &self.runs {
            let Ok(res) = &r.results else { continue };
            if let Some(j) = self
                .judged(res)
                .into_iter()
                .find(|j| j.invariant == invariant)
            {
                *s.verdicts.entry(j.verdict).or_default() += 1;
                *s.statuses.entry(j.status).or_default() += 1;
                s.runs += 1;
                if j.status.deviates() {
                    s.deviating += 1;
                }
            }
        }
        s
    }

    /// This row's cell in the findings matrix: with invariants expected invalid, `caught`
    /// when every run broke all of them; with none, `held` when every run kept every
    /// invariant valid; `flaky` when the seeds disagree.
    pub fn cell(&self) -> Cell {
        let agrees = |res: &[CheckResult]| {
            if self.expect_invalid.is_empty() {
                res.iter().all(|c| c.verdict == Verdict::Valid)
            } else {
                self.expect_invalid.iter().all(|e| {
                    res.iter()
                        .any(|c| &c.invariant == e && matches!(c.verdict, Verdict::Invalid { .. }))
                })
            }
        };
        let judged: Vec<bool> = self
            .runs
            .iter()
            .filter_map(|r| r.results.as_ref().ok().map(|res| agrees(res)))
            .collect();
        let off = judged.iter().filter(|a| !**a).count();
        match (judged.len(), off) {
            (0, _) => Cell::Error,
            (_, 0) if self.expect_invalid.is_empty() => Cell::Held,
            (_, 0) => Cell::Caught,
            (n, k) if k == n => Cell::Missed,
            (n, k) => Cell::Flaky { off: k, of: n },
        }
    }
}

/// What one invariant did over a row's runs.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Seen {
    pub verdicts: BTreeMap<&'static str, usize>,
    pub statuses: BTreeMap<Status, usize>,
    pub runs: usize,
    pub deviating: usize,
}

impl Seen {
    /// `valid 2, invalid 1`.
    pub fn verdicts_text(&self) -> String {
        let v: Vec<String> = self
            .verdicts
            .iter()
            .map(|(k, n)| format!("{k} {n}"))
            .collect();
        if v.is_empty() {
            "—".into()
        } else {
            v.join(", ")
        }
    }

    /// The status every run agreed on, or `flaky (k/N)`.
    pub fn status_text(&self) -> String {
        match self.statuses.len() {
            0 => "—".into(),
            1 => self.statuses.keys().next().expect("one").name().into(),
            _ if self.deviating < self.runs => format!("flaky ({}/{})", self.deviating, self.runs),
            // Every run deviated, not all in the same way.
            _ => self
                .statuses
                .iter()
                .map(|(k, n)| format!("{} {n}", k.name()))
                .collect::<Vec<_>>()
                .join(", "),
        }
    }
}

/// A finding's matrix rows: each covering scenario, and its row on each profile if it ran.
pub type Matrix<'a> = BTreeMap<&'a str, Vec<(&'a str, [Option<&'a RowResult>; 2])>>;

impl SuiteResult {
    pub fn matrix(&self) -> Matrix<'_> {
        let mut m: Matrix<'_> = BTreeMap::new();
        for row in &self.rows {
            let col = PROFILES
                .iter()
                .position(|p| *p == row.profile)
                .expect("two profiles");
            for f in &row.findings {
                let scenarios = m.entry(f.as_str()).or_default();
                match scenarios.iter_mut().find(|(s, _)| *s == row.scenario) {
                    Some((_, cells)) => cells[col] = Some(row),
                    None => {
                        let mut cells = [None, None];
                        cells[col] = Some(row);
                        scenarios.push((row.scenario.as_str(), cells));
                    }
                }
            }
        }
        m
    }

    /// Whether anything deviated: an invariant, a finding's cell (flaky counts), or a row
    /// regressed from the baseline.
    pub fn deviated(&self) -> bool {
        self.rows
            .iter()
            .any(|r| r.deviating_runs() > 0 || r.cell().fails())
            || self
                .baseline
                .as_ref()
                .is_some_and(|b| b.compared.iter().any(Compared::fails))
    }

    pub fn environment_failed(&self) -> bool {
        self.rows.iter().any(|r| r.failed_runs().next().is_some())
    }

    /// 1 on any deviation, else 4 on any environment failure, else 0.
    pub fn code(&self) -> u8 {
        if self.deviated() {
            exit::INVALID
        } else if self.environment_failed() {
            exit::ENVIRONMENT
        } else {
            exit::VALID
        }
    }

    /// Where the suite's time went: its wall time, then each phase summed over every run,
    /// largest first, with its share of the wall time, and what no run's phase holds
    /// (rendering reports, checking images): `took 4m12s; over 8 run(s): workload 120.0s
    /// (48%), ..., other 12.0s (5%)`.
    pub fn time_line(&self) -> String {
        let mut total: BTreeMap<&str, f64> = BTreeMap::new();
        let mut runs = 0;
        for run in self.rows.iter().flat_map(|r| &r.runs) {
            runs += usize::from(!run.phases.is_empty());
            for p in &run.phases {
                *total.entry(p.phase.as_str()).or_default() += p.s;
            }
        }
        let wall = self.wall_s.max(0.0);
        let mut line = format!("took {}m{:02}s", (wall / 60.0) as u64, wall as u64 % 60);
        if runs > 0 {
            let mut parts: Vec<(&str, f64)> = total.into_iter().collect();
            parts.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(b.0)));
            let other = wall - parts.iter().map(|p| p.1).sum::<f64>();
            if other >= 0.05 {
                parts.push(("other", other));
            }
            let listed: Vec<String> = parts
                .iter()
                .map(|(phase, secs)| {
                    let share = if wall > 0.0 { secs / wall * 100.0 } else { 0.0 };
                    format!("{phase} {secs:.1}s ({share:.0}%)")
                })
                .collect();
            line += &format!("; over {runs} run(s): {}", listed.join(", "));
        }
        line
    }

    pub fn headline(&self) -> &'static str {
        if self.interrupted.is_some() {
            "interrupted"
        } else if self.deviated() {
            "NOT as expected"
        } else if self.environment_failed() {
            "environment failed"
        } else {
            "as expected"
        }
    }

    fn runs(&self) -> usize {
        self.rows.iter().map(|r| r.runs.len()).sum()
    }

    /// One line per deviation, per environment failure and per regression: what the suite
    /// prints at the end and the index lists first.
    pub fn problem_lines(&self) -> Vec<String> {
        let mut out = Vec::new();
        for row in &self.rows {
            for (run, j) in row.deviations() {
                out.push(format!(
                    "{}: {} on {}, run {} (seed {}): {} expected {}, came out {}",
                    j.status.name(),
                    row.scenario,
                    row.profile,
                    run.index,
                    run.seed,
                    j.invariant,
                    if j.expected_invalid {
                        "invalid"
                    } else {
                        "valid"
                    },
                    j.verdict
                ));
            }
            for (run, e) in row.failed_runs() {
                out.push(format!(
                    "ENVIRONMENT: {} on {}, run {} (seed {}): {e}",
                    row.scenario, row.profile, run.index, run.seed
                ));
            }
        }
        if let Some(b) = &self.baseline {
            for c in &b.compared {
                for r in &c.regressions {
                    out.push(format!(
                        "REGRESSED: {} on {}, run {}: {r}",
                        c.scenario, c.profile, c.index
                    ));
                }
                if let Some(e) = &c.error {
                    out.push(format!(
                        "REGRESSED: {} on {}, run {}: cannot compare: {e}",
                        c.scenario, c.profile, c.index
                    ));
                }
            }
        }
        out
    }
}

fn md_cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

fn expected(j_expected_invalid: bool) -> &'static str {
    if j_expected_invalid {
        "invalid"
    } else {
        "valid"
    }
}

/// Links to a row's bundles: `[1](dir/summary.md) [2](…)`.
fn md_links(row: &RowResult) -> String {
    row.runs
        .iter()
        .map(|r| format!("[{}]({}/summary.md)", r.index, r.bundle))
        .collect::<Vec<_>>()
        .join(" ")
}

pub fn index_md(s: &SuiteResult) -> String {
    let mut m = format!("# Suite {}: {}\n\n", s.suite, s.headline());
    if !s.description.is_empty() {
        let _ = writeln!(m, "{}\n", s.description);
    }
    let deviations: usize = s.rows.iter().map(|r| r.deviations().len()).sum();
    let failures: usize = s.rows.iter().map(|r| r.failed_runs().count()).sum();
    let _ = writeln!(
        m,
        "seed {} · {} row(s), {} run(s) · {deviations} deviation(s) · {failures} environment failure(s)\n\n{}\n\nreproduce: `{}`\n",
        s.seed,
        s.rows.len(),
        s.runs(),
        s.time_line(),
        s.reproduce
    );
    if let Some(why) = &s.interrupted {
        let _ = writeln!(m, "**Interrupted**: {why}; only the runs listed ran.\n");
    }
    let problems = s.problem_lines();
    if !problems.is_empty() {
        m += "## Deviations\n\n";
        for p in &problems {
            let _ = writeln!(m, "- {}", md_cell(p));
        }
        m += "\n";
    }

    m += "## Findings\n\nEach review finding, the scenarios that make it executable, and what each profile did over every seed: `caught` (naive broke every invariant it is expected to break), `held` (every invariant valid), `missed`, or `flaky (k/N)` (k of N runs did not agree; a deviation).\n\n";
    let matrix = s.matrix();
    if matrix.is_empty() {
        m += "No scenario of this suite names a finding.\n\n";
    } else {
        m += "| finding | scenario | naive | hardened |\n|---|---|---|---|\n";
        for (f, scenarios) in &matrix {
            for (scenario, cells) in scenarios {
                let cell = |c: &Option<&RowResult>| match c {
                    Some(r) => format!("{} ({})", r.cell().name(), md_links(r)),
                    None => "not run".into(),
                };
                let _ = writeln!(
                    m,
                    "| {f} | {scenario} | {} | {} |",
                    cell(&cells[0]),
                    cell(&cells[1])
                );
            }
        }
        m += "\n";
    }

    m += "## Rows\n\n| scenario | profile | runs | deviating | flakiness | environment failures | bundles |\n|---|---|---|---|---|---|---|\n";
    for r in &s.rows {
        let n = r.runs.len();
        let _ = writeln!(
            m,
            "| {} | {} | {n} | {} | {} | {} | {} |",
            r.scenario,
            r.profile,
            r.deviating_runs(),
            flakiness(r.deviating_runs(), n),
            r.failed_runs().count(),
            md_links(r)
        );
    }

    m += "\n## Invariants\n\n| scenario | profile | invariant | expected | verdicts seen | status |\n|---|---|---|---|---|---|\n";
    for r in &s.rows {
        for inv in r.invariants() {
            let seen = r.seen(inv);
            let _ = writeln!(
                m,
                "| {} | {} | {inv} | {} | {} | {} |",
                r.scenario,
                r.profile,
                expected(r.expect_invalid.iter().any(|e| e == inv)),
                seen.verdicts_text(),
                seen.status_text()
            );
        }
    }

    if let Some(b) = &s.baseline {
        let _ = write!(
            m,
            "\n## Baseline\n\nCompared with `{}`: {}.\n\n| row | run | baseline bundle | result |\n|---|---|---|---|\n",
            b.dir,
            thresholds_text(&b.thresholds)
        );
        for c in &b.compared {
            let result = compared_text(c);
            let _ = writeln!(
                m,
                "| {}/{} | [{}]({}/summary.md) | {} | {} |",
                c.scenario,
                c.profile,
                c.index,
                c.bundle,
                c.against
                    .as_deref()
                    .map_or("—".into(), |a| format!("`{a}`")),
                md_cell(&result)
            );
        }
    }
    m
}

fn flakiness(deviating: usize, runs: usize) -> String {
    if runs == 0 {
        "—".into()
    } else {
        format!("{deviating}/{runs}")
    }
}

pub fn thresholds_text(t: &Thresholds) -> String {
    let mut v = Vec::new();
    if let Some(r) = t.p99_ratio {
        v.push(format!("p99 per phase at most {r}x the baseline's"));
    }
    if let Some(d) = t.error_share_delta {
        v.push(format!(
            "not-ok share per phase at most {:.1} points more",
            d * 100.0
        ));
    }
    if let Some(r) = t.recovery_ratio {
        v.push(format!("recovery after each heal at most {r}x"));
    }
    v.join("; ")
}

fn compared_text(c: &Compared) -> String {
    if let Some(e) = &c.error {
        return format!("REGRESSED: cannot compare: {e}");
    }
    if c.against.is_none() {
        return "not in the baseline: not compared".into();
    }
    if c.regressions.is_empty() {
        return "within the thresholds".into();
    }
    let v: Vec<String> = c.regressions.iter().map(ToString::to_string).collect();
    format!("REGRESSED: {}", v.join("; "))
}

pub fn index_html(s: &SuiteResult) -> String {
    use super::html::{STYLE, esc};
    let mut h = String::new();
    let headline = s.headline();
    let badge = match s.code() {
        exit::VALID if s.interrupted.is_none() => "valid",
        exit::ENVIRONMENT => "unknown",
        _ => "invalid",
    };
    let _ = write!(
        h,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Suite {} · {}</title><style>{STYLE}</style></head><body>\n<h1>Suite {} <span class=\"badge b-{badge}\">{}</span></h1>\n",
        esc(&s.suite),
        esc(headline),
        esc(&s.suite),
        esc(headline)
    );
    let deviations: usize = s.rows.iter().map(|r| r.deviations().len()).sum();
    let failures: usize = s.rows.iter().map(|r| r.failed_runs().count()).sum();
    let _ = writeln!(
        h,
        "<p>{}</p>\n<p class=\"facts\">seed {} · {} row(s), {} run(s) · {deviations} deviation(s) · {failures} environment failure(s)<br>reproduce: <code>{}</code></p>",
        esc(&s.description),
        s.seed,
        s.rows.len(),
        s.runs(),
        esc(&s.reproduce)
    );
    if let Some(why) = &s.interrupted {
        let _ = writeln!(
            h,
            "<p class=\"invalid\">Interrupted: {}; only the runs listed ran.</p>",
            esc(why)
        );
    }
    let problems = s.problem_lines();
    if !problems.is_empty() {
        h += "<h2>Deviations</h2>\n<ul>\n";
        for p in &problems {
            let _ = writeln!(h, "<li class=\"invalid\">{}</li>", esc(p));
        }
        h += "</ul>\n";
    }
    let links = |r: &RowResult| {
        r.runs
            .iter()
            .map(|x| format!("<a href=\"{}/report.html\">{}</a>", esc(&x.bundle), x.index))
            .collect::<Vec<_>>()
            .join(" ")
    };
    h += "<h2>Findings</h2>\n";
    let matrix = s.matrix();
    if matrix.is_empty() {
        h += "<p>No scenario of this suite names a finding.</p>\n";
    } else {
        h += "<table><tr><th>finding</th><th>scenario</th><th>naive</th><th>hardened</th></tr>\n";
        for (f, scenarios) in &matrix {
            for (scenario, cells) in scenarios {
                let cell = |c: &Option<&RowResult>| match c {
                    Some(r) => {
                        let cell = r.cell();
                        format!(
                            "<td class=\"{}\">{} ({})</td>",
                            cell.class(),
                            esc(&cell.name()),
                            links(r)
                        )
                    }
                    None => "<td>not run</td>".into(),
                };
                let _ = writeln!(
                    h,
                    "<tr><td>{}</td><td>{}</td>{}{}</tr>",
                    esc(f),
                    esc(scenario),
                    cell(&cells[0]),
                    cell(&cells[1])
                );
            }
        }
        h += "</table>\n";
    }
    h += "<h2>Rows</h2>\n<table><tr><th>scenario</th><th>profile</th><th>runs</th><th>deviating</th><th>flakiness</th><th>environment failures</th><th>bundles</th></tr>\n";
    for r in &s.rows {
        let dev = r.deviating_runs();
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"{}\">{dev}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&r.scenario),
            r.profile,
            r.runs.len(),
            if dev > 0 { "invalid" } else { "valid" },
            flakiness(dev, r.runs.len()),
            r.failed_runs().count(),
            links(r)
        );
    }
    h += "</table>\n<h2>Invariants</h2>\n<table><tr><th>scenario</th><th>profile</th><th>invariant</th><th>expected</th><th>verdicts seen</th><th>status</th></tr>\n";
    for r in &s.rows {
        for inv in r.invariants() {
            let seen = r.seen(inv);
            let _ = writeln!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"{}\">{}</td></tr>",
                esc(&r.scenario),
                r.profile,
                esc(inv),
                expected(r.expect_invalid.iter().any(|e| e == inv)),
                esc(&seen.verdicts_text()),
                if seen.deviating > 0 {
                    "invalid"
                } else {
                    "valid"
                },
                esc(&seen.status_text())
            );
        }
    }
    h += "</table>\n";
    if let Some(b) = &s.baseline {
        let _ = writeln!(
            h,
            "<h2>Baseline</h2>\n<p>Compared with <code>{}</code>: {}.</p>\n<table><tr><th>row</th><th>run</th><th>baseline bundle</th><th>result</th></tr>",
            esc(&b.dir),
            esc(&thresholds_text(&b.thresholds))
        );
        for c in &b.compared {
            let _ = writeln!(
                h,
                "<tr><td>{}/{}</td><td><a href=\"{}/report.html\">{}</a></td><td>{}</td><td class=\"{}\">{}</td></tr>",
                esc(&c.scenario),
                c.profile,
                esc(&c.bundle),
                c.index,
                c.against
                    .as_deref()
                    .map_or("—".into(), |a| format!("<code>{}</code>", esc(a))),
                if c.fails() { "invalid" } else { "valid" },
                esc(&compared_text(c))
            );
        }
        h += "</table>\n";
    }
    h += "</body></html>\n";
    h
}

pub fn index_json(s: &SuiteResult) -> String {
    let rows: Vec<_> = s
        .rows
        .iter()
        .map(|r| {
            let runs: Vec<_> = r
                .runs
                .iter()
                .map(|run| match &run.results {
                    Ok(res) => {
                        let judged: Vec<_> = r
                            .judged(res)
                            .iter()
                            .map(|j| {
                                json!({ "invariant": j.invariant, "verdict": j.verdict,
                                    "expected": expected(j.expected_invalid), "status": j.status.name() })
                            })
                            .collect();
                        json!({ "index": run.index, "seed": run.seed, "bundle": run.bundle,
                            "results": judged,
                            "phases": run.phases.iter().map(|p| json!({ "phase": p.phase, "s": super::to_ms(p.s) })).collect::<Vec<_>>() })
                    }
                    Err(e) => json!({ "index": run.index, "seed": run.seed, "bundle": run.bundle,
                        "error": e }),
                })
                .collect();
            json!({
                "scenario": r.scenario, "file": r.file, "profile": r.profile,
                "findings": r.findings, "expect_invalid": r.expect_invalid,
                "runs": runs, "deviating_runs": r.deviating_runs(),
                "flakiness": if r.runs.is_empty() { 0.0 } else { r.deviating_runs() as f64 / r.runs.len() as f64 },
                "cell": r.cell().name(),
            })
        })
        .collect();
    let findings: Vec<_> = s
        .matrix()
        .iter()
        .map(|(f, scenarios)| {
            let sc: Vec<_> = scenarios
                .iter()
                .map(|(name, cells)| {
                    let c = |i: usize| cells[i].map(|r| r.cell().name());
                    json!({ "scenario": name, "naive": c(0), "hardened": c(1) })
                })
                .collect();
            json!({ "finding": f, "outcome": finding_outcome(scenarios).0, "scenarios": sc })
        })
        .collect();
    let baseline = s.baseline.as_ref().map(|b| {
        let compared: Vec<_> = b
            .compared
            .iter()
            .map(|c| {
                json!({ "scenario": c.scenario, "profile": c.profile, "index": c.index,
                    "bundle": c.bundle, "against": c.against, "error": c.error,
                    "regressions": c.regressions.iter().map(ToString::to_string).collect::<Vec<_>>() })
            })
            .collect();
        json!({ "dir": b.dir, "thresholds": b.thresholds, "compared": compared })
    });
    let doc = json!({
        "suite": s.suite, "description": s.description, "seed": s.seed,
        "reproduce": s.reproduce, "outcome": s.headline(), "code": s.code(),
        "interrupted": s.interrupted, "rows": rows, "findings": findings, "baseline": baseline,
    });
    serde_json::to_string_pretty(&doc).expect("the index serialises") + "\n"
}

/// A finding over its scenarios: `caught` and `held` cells pass, a `missed` or `flaky`
/// one fails it, and with neither an `error` one leaves it in error. Returns the outcome and
/// the cells that made it.
fn finding_outcome(scenarios: &[(&str, [Option<&RowResult>; 2])]) -> (&'static str, Vec<String>) {
    let mut failing = Vec::new();
    let mut errors = Vec::new();
    for (name, cells) in scenarios {
        for (p, c) in PROFILES.iter().zip(cells) {
            let Some(r) = c else { continue };
            let cell = r.cell();
            let line = format!("{name} on {p}: {}", cell.name());
            if cell.fails() {
                failing.push(line);
            } else if cell == Cell::Error {
                errors.push(line);
            }
        }
    }
    if !failing.is_empty() {
        ("missed", failing)
    } else if !errors.is_empty() {
        ("error", errors)
    } else {
        ("demonstrated", Vec::new())
    }
}

/// The suite's `junit.xml`: a testsuite per scenario x profile with a testcase per
/// invariant (a deviation in any run is a failure; a run without verdicts an error), a
/// testsuite `findings` with a testcase per finding, and with a baseline a testsuite
/// `baseline` with a testcase per compared run.
pub fn junit_xml(s: &SuiteResult) -> String {
    let mut suites = Vec::new();
    for r in &s.rows {
        let mut ts = TestSuite::new(r.label());
        let seeds: Vec<String> = r.runs.iter().map(|x| x.seed.to_string()).collect();
        ts.add_property(Property::new("seeds", seeds.join(",")));
        ts.add_property(Property::new("file", r.file.as_str()));
        let class = format!("{}.{}", r.scenario, r.profile);
        for inv in r.invariants() {
            let seen = r.seen(inv);
            let status = if seen.deviating > 0 {
                let mut st = TestCaseStatus::non_success(NonSuccessKind::Failure);
                let detail: Vec<String> = r
                    .deviations()
                    .iter()
                    .filter(|(_, j)| j.invariant == inv)
                    .map(|(run, j)| {
                        format!(
                            "run {} (seed {}): {}, {}: {}",
                            run.index,
                            run.seed,
                            j.status.name(),
                            j.verdict,
                            j.detail
                        )
                    })
                    .collect();
                st.set_message(format!(
                    "expected {}; deviated in {} of {} run(s); verdicts seen: {}",
                    expected(r.expect_invalid.iter().any(|e| e == inv)),
                    seen.deviating,
                    seen.runs,
                    seen.verdicts_text()
                ))
                .set_description(detail.join("\n"));
                st
            } else {
                TestCaseStatus::success()
            };
            let mut case = TestCase::new(inv, status);
            case.set_classname(class.as_str());
            ts.add_test_case(case);
        }
        for (run, e) in r.failed_runs() {
            let mut st = TestCaseStatus::non_success(NonSuccessKind::Error);
            st.set_message(e);
            let mut case = TestCase::new(format!("run {} (seed {})", run.index, run.seed), st);
            case.set_classname(class.as_str());
            ts.add_test_case(case);
        }
        suites.push(ts);
    }
    let mut findings = TestSuite::new("findings");
    for (f, scenarios) in &s.matrix() {
        let (outcome, lines) = finding_outcome(scenarios);
        let status = match outcome {
            "missed" => {
                let mut st = TestCaseStatus::non_success(NonSuccessKind::Failure);
                st.set_message(lines.join("; "));
                st
            }
            "error" => {
                let mut st = TestCaseStatus::non_success(NonSuccessKind::Error);
                st.set_message(lines.join("; "));
                st
            }
            _ => TestCaseStatus::success(),
        };
        let mut case = TestCase::new(*f, status);
        case.set_classname("findings");
        let covered: Vec<&str> = scenarios.iter().map(|(n, _)| *n).collect();
        case.add_property(Property::new("scenarios", covered.join(",")));
        findings.add_test_case(case);
    }
    suites.push(findings);
    if let Some(b) = &s.baseline {
        let mut ts = TestSuite::new("baseline");
        ts.add_property(Property::new("dir", b.dir.as_str()));
        for c in &b.compared {
            let status = if c.fails() {
                let mut st = TestCaseStatus::non_success(NonSuccessKind::Failure);
                st.set_message(compared_text(c));
                st
            } else {
                TestCaseStatus::success()
            };
            let mut case = TestCase::new(
                format!("{}/{} run {}", c.scenario, c.profile, c.index),
                status,
            );
            case.set_classname("baseline");
            ts.add_test_case(case);
        }
        suites.push(ts);
    }
    super::junit_document(suites)
}

/// Write the four index files into `dir`; returns the path of `index.md`.
pub fn write_index(dir: &Path, s: &SuiteResult) -> std::io::Result<PathBuf> {
    let md = dir.join("index.md");
    std::fs::write(&md, index_md(s))?;
    std::fs::write(dir.join("index.html"), index_html(s))?;
    std::fs::write(dir.join("index.json"), index_json(s))?;
    std::fs::write(dir.join("junit.xml"), junit_xml(s))?;
    Ok(md)
}

/// The bundles of a previous suite run, from its `index.json`: (scenario, profile, seed
/// index) to the bundle's directory. The error names the file and what is wrong.
pub fn baseline_bundles(dir: &Path) -> Result<BTreeMap<(String, Profile, u32), PathBuf>, String> {
    let path = dir.join("index.json");
    let text = std::fs::read_to_string(&path).map_err(|e| {
        format!(
            "{}: cannot read: {e} (a baseline is a suite run's directory)",
            path.display()
        )
    })?;
    #[derive(serde::Deserialize)]
    struct Index {
        rows: Vec<Row>,
    }
    #[derive(serde::Deserialize)]
    struct Row {
        scenario: String,
        profile: Profile,
        runs: Vec<Run>,
    }
    #[derive(serde::Deserialize)]
    struct Run {
        index: u32,
        bundle: String,
    }
    let index: Index = serde_json::from_str(&text).map_err(|e| {
        format!(
            "{}: line {}, column {}: {e}",
            path.display(),
            e.line(),
            e.column()
        )
    })?;
    let mut out = BTreeMap::new();
    for row in index.rows {
        for run in row.runs {
            if Path::new(&run.bundle).is_absolute() || run.bundle.split('/').any(|c| c == "..") {
                return Err(format!(
                    "{}: bundle {:?} is not inside the suite run",
                    path.display(),
                    run.bundle
                ));
            }
            out.insert(
                (row.scenario.clone(), row.profile, run.index),
                dir.join(&run.bundle),
            );
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(invariant: &str, verdict: Verdict) -> CheckResult {
        CheckResult {
            invariant: invariant.into(),
            verdict,
            detail: format!("{invariant}: what the checker saw"),
        }
    }

    fn invalid() -> Verdict {
        Verdict::Invalid {
            ops: vec![1, 2],
            rows: vec![],
        }
    }

    fn unknown() -> Verdict {
        Verdict::Unknown {
            reason: "nothing to judge".into(),
        }
    }

    fn row(
        scenario: &str,
        profile: Profile,
        findings: &[&str],
        expect: &[&str],
        runs: Vec<Result<Vec<CheckResult>, String>>,
    ) -> RowResult {
        RowResult {
            scenario: scenario.into(),
            file: format!("mediconnect/{scenario}.toml"),
            profile,
            findings: findings.iter().map(|f| f.to_string()).collect(),
            expect_invalid: expect.iter().map(|f| f.to_string()).collect(),
            runs: runs
                .into_iter()
                .enumerate()
                .map(|(i, results)| RunResult {
                    index: i as u32 + 1,
                    seed: 42 + i as u64,
                    bundle: format!("{scenario}-{profile}-{}", i + 1),
                    phases: if results.is_ok() {
                        vec![
                            PhaseTime {
                                phase: "up".into(),
                                s: 5.0,
                            },
                            PhaseTime {
                                phase: "workload".into(),
                                s: 20.0,
                            },
                        ]
                    } else {
                        Vec::new()
                    },
                    results,
                })
                .collect(),
        }
    }

    fn suite(rows: Vec<RowResult>) -> SuiteResult {
        SuiteResult {
            suite: "nightly".into(),
            description: "every scenario, both profiles".into(),
            reproduce: "chaos suite scenarios/nightly.toml --seed 42 --seeds 3".into(),
            seed: 42,
            rows,
            baseline: None,
            interrupted: None,
            wall_s: 250.0,
        }
    }

    use Profile::{Hardened, Naive};

    /// booking-contention: naive catches the double booking in 2 of 3 seeds (flaky), hardened
    /// holds; redis-kill: naive caught, hardened unknown once (a deviation, missed).
    fn nightly() -> SuiteResult {
        let bc = ["000:S2", "001:C-3"];
        let ok = |inv: &[&str]| Ok(inv.iter().map(|i| res(i, Verdict::Valid)).collect());
        suite(vec![
            row(
                "booking-contention",
                Naive,
                &bc,
                &["no_double_booking"],
                vec![
                    Ok(vec![
                        res("no_double_booking", invalid()),
                        res("latency", Verdict::Valid),
                    ]),
                    Ok(vec![
                        res("no_double_booking", Verdict::Valid),
                        res("latency", Verdict::Valid),
                    ]),
                    Ok(vec![
                        res("no_double_booking", invalid()),
                        res("latency", Verdict::Valid),
                    ]),
                ],
            ),
            row(
                "booking-contention",
                Hardened,
                &bc,
                &[],
                vec![
                    ok(&["no_double_booking", "latency"]),
                    ok(&["no_double_booking", "latency"]),
                    ok(&["no_double_booking", "latency"]),
                ],
            ),
            row(
                "redis-kill",
                Naive,
                &["000:C1"],
                &["success_ratio"],
                vec![Ok(vec![
                    res("success_ratio", invalid()),
                    res("faults_applied", Verdict::Valid),
                ])],
            ),
            row(
                "redis-kill",
                Hardened,
                &["000:C1"],
                &[],
                vec![Ok(vec![
                    res("success_ratio", unknown()),
                    res("faults_applied", Verdict::Valid),
                ])],
            ),
        ])
    }

    #[test]
    fn a_deviation_is_invalid_or_unknown_against_valid_and_anything_but_invalid_against_invalid() {
        let cases = [
            (true, Some(invalid()), Status::Caught),
            (true, Some(Verdict::Valid), Status::Missed),
            (true, Some(unknown()), Status::Missed),
            (true, None, Status::Missed),
            (false, Some(Verdict::Valid), Status::Held),
            (false, Some(invalid()), Status::Violated),
            (false, Some(unknown()), Status::Unknown),
        ];
        for (expect_invalid, verdict, status) in cases {
            let got = Status::judge(expect_invalid, verdict.as_ref());
            assert_eq!(got, status, "{expect_invalid} {verdict:?}");
            assert_eq!(
                got.deviates(),
                !matches!(status, Status::Caught | Status::Held)
            );
        }
        // An expected-invalid invariant the run has no result for is missed.
        let r = row(
            "s",
            Naive,
            &[],
            &["no_double_booking"],
            vec![Ok(vec![res("latency", Verdict::Valid)])],
        );
        let j = r.judged(r.runs[0].results.as_ref().unwrap());
        assert_eq!(j.len(), 2);
        assert_eq!(
            (j[1].invariant, j[1].verdict),
            ("no_double_booking", "absent")
        );
        assert_eq!(j[1].status, Status::Missed);
    }

    #[test]
    fn exit_codes_deviation_1_environment_4_clean_0() {
        let clean = || {
            row(
                "a",
                Hardened,
                &[],
                &[],
                vec![Ok(vec![res("latency", Verdict::Valid)])],
            )
        };
        let env = || {
            row(
                "b",
                Hardened,
                &[],
                &[],
                vec![Err("postgres did not start".into())],
            )
        };
        let unknown_only = || {
            row(
                "c",
                Hardened,
                &[],
                &[],
                vec![Ok(vec![res("latency", unknown())])],
            )
        };
        assert_eq!(suite(vec![clean()]).code(), exit::VALID);
        assert_eq!(suite(vec![clean(), env()]).code(), exit::ENVIRONMENT);
        assert_eq!(
            suite(vec![unknown_only()]).code(),
            exit::INVALID,
            "unknown where valid is expected is a deviation"
        );
        assert_eq!(suite(vec![env(), unknown_only()]).code(), exit::INVALID);
        let s = suite(vec![env(), unknown_only()]);
        assert_eq!(
            s.problem_lines(),
            [
                "ENVIRONMENT: b on hardened, run 1 (seed 42): postgres did not start",
                "UNKNOWN: c on hardened, run 1 (seed 42): latency expected valid, came out unknown",
            ]
        );
    }

    #[test]
    fn the_matrix_has_each_finding_its_scenarios_and_every_seed_agreeing_or_flaky() {
        let s = nightly();
        let m = s.matrix();
        assert_eq!(
            m.keys().copied().collect::<Vec<_>>(),
            ["000:C1", "000:S2", "001:C-3"]
        );
        let cells = |f: &str| -> Vec<(String, Option<String>, Option<String>)> {
            m[f].iter()
                .map(|(sc, c)| {
                    (
                        sc.to_string(),
                        c[0].map(|r| r.cell().name()),
                        c[1].map(|r| r.cell().name()),
                    )
                })
                .collect()
        };
        assert_eq!(
            cells("000:S2"),
            [(
                "booking-contention".to_string(),
                Some("flaky (1/3)".to_string()),
                Some("held".to_string())
            )]
        );
        assert_eq!(
            cells("000:C1"),
            [(
                "redis-kill".to_string(),
                Some("caught".to_string()),
                Some("missed".to_string())
            )]
        );
        let bc = &s.rows[0];
        assert_eq!(bc.deviating_runs(), 1);
        let seen = bc.seen("no_double_booking");
        assert_eq!(seen.verdicts_text(), "invalid 2, valid 1");
        assert_eq!(seen.status_text(), "flaky (1/3)");
        assert_eq!(bc.seen("latency").status_text(), "held");
        assert_eq!(s.code(), exit::INVALID);

        let md = index_md(&s);
        for needle in [
            "# Suite nightly: NOT as expected",
            "| 000:S2 | booking-contention | flaky (1/3) ([1](booking-contention-naive-1/summary.md) [2](booking-contention-naive-2/summary.md) [3](booking-contention-naive-3/summary.md)) | held (",
            "| 000:C1 | redis-kill | caught ([1](redis-kill-naive-1/summary.md)) | missed ([1](redis-kill-hardened-1/summary.md)) |",
            "| booking-contention | naive | 3 | 1 | 1/3 | 0 |",
            "| booking-contention | naive | no_double_booking | invalid | invalid 2, valid 1 | flaky (1/3) |",
            "- MISSED: booking-contention on naive, run 2 (seed 43): no_double_booking expected invalid, came out valid",
            "- UNKNOWN: redis-kill on hardened, run 1 (seed 42): success_ratio expected valid, came out unknown",
            "reproduce: `chaos suite scenarios/nightly.toml --seed 42 --seeds 3`",
        ] {
            assert!(md.contains(needle), "index.md lacks {needle}:\n{md}");
        }
    }

    #[test]
    fn a_naive_row_that_breaks_what_is_expected_is_caught_and_one_that_does_not_is_missed() {
        let r = |runs| row("s", Naive, &["000:C1"], &["a", "b"], runs);
        let both = || Ok(vec![res("a", invalid()), res("b", invalid())]);
        let one = || Ok(vec![res("a", invalid()), res("b", Verdict::Valid)]);
        assert_eq!(r(vec![both(), both()]).cell(), Cell::Caught);
        assert_eq!(r(vec![one(), one()]).cell(), Cell::Missed);
        assert_eq!(r(vec![both(), one()]).cell(), Cell::Flaky { off: 1, of: 2 });
        assert_eq!(r(vec![Err("down".into())]).cell(), Cell::Error);
        assert_eq!(
            r(vec![both(), Err("down".into())]).cell(),
            Cell::Caught,
            "only judged runs count"
        );
        assert!(Cell::Flaky { off: 1, of: 2 }.fails() && !Cell::Caught.fails());
    }

    #[test]
    fn the_junit_document_reads_back_with_a_suite_per_row_and_one_for_findings() {
        let xml = junit_xml(&nightly());
        let junit = junit_parser::from_reader(std::io::Cursor::new(xml.as_bytes())).unwrap();
        let names: Vec<&str> = junit.suites.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "booking-contention/naive",
                "booking-contention/hardened",
                "redis-kill/naive",
                "redis-kill/hardened",
                "findings"
            ]
        );
        let bc = &junit.suites[0];
        assert_eq!(bc.tests, 2);
        assert_eq!(bc.failures, 1);
        let ndb = bc
            .cases
            .iter()
            .find(|c| c.original_name == "no_double_booking")
            .unwrap();
        assert!(ndb.status.is_failure(), "{:?}", ndb.status);
        assert_eq!(junit.suites[1].failures, 0);
        assert_eq!(junit.suites[3].failures, 1, "unknown on hardened");
        let findings = &junit.suites[4];
        assert_eq!(findings.tests, 3);
        let status = |id: &str| {
            findings
                .cases
                .iter()
                .find(|c| c.original_name == id)
                .unwrap()
                .status
                .clone()
        };
        assert!(status("000:S2").is_failure(), "flaky fails the finding");
        assert!(status("000:C1").is_failure(), "hardened missed");
        let all_held = {
            let mut s = nightly();
            s.rows
                .retain(|r| r.scenario == "redis-kill" && r.profile == Naive);
            junit_xml(&s)
        };
        let j = junit_parser::from_reader(std::io::Cursor::new(all_held.as_bytes())).unwrap();
        let f = j.suites.iter().find(|s| s.name == "findings").unwrap();
        assert!(f.cases[0].status.is_success(), "{:?}", f.cases[0].status);
    }

    #[test]
    fn a_run_without_verdicts_is_an_error_testcase_and_an_error_cell() {
        let s = suite(vec![row(
            "rabbitmq-kill",
            Hardened,
            &["000:C2"],
            &[],
            vec![Err("rabbitmq did not start".into())],
        )]);
        assert_eq!(s.code(), exit::ENVIRONMENT);
        let xml = junit_xml(&s);
        let j = junit_parser::from_reader(std::io::Cursor::new(xml.as_bytes())).unwrap();
        assert_eq!(j.suites[0].errors, 1);
        assert!(j.suites[0].cases[0].status.is_error());
        assert!(
            j.suites[1].cases[0].status.is_error(),
            "the finding is in error"
        );
        assert!(index_md(&s).contains("| 000:C2 | rabbitmq-kill | not run | error ("));
    }

    #[test]
    fn the_time_line_sums_each_phase_over_the_runs_that_reported_largest_first() {
        let s = nightly();
        let runs = s
            .rows
            .iter()
            .flat_map(|r| &r.runs)
            .filter(|r| r.results.is_ok())
            .count();
        assert!(runs > 1);
        let n = runs as f64;
        let want = format!(
            "took 4m10s; over {runs} run(s): workload {:.1}s ({:.0}%), up {:.1}s ({:.0}%), other {:.1}s ({:.0}%)",
            20.0 * n,
            20.0 * n / 2.5,
            5.0 * n,
            5.0 * n / 2.5,
            250.0 - 25.0 * n,
            (250.0 - 25.0 * n) / 2.5
        );
        assert_eq!(s.time_line(), want);
        assert!(
            index_md(&s).contains(&want),
            "the index says where the time went"
        );
        assert_eq!(suite(Vec::new()).time_line(), "took 4m10s");
    }

    #[test]
    fn the_html_index_is_self_contained_and_links_each_bundle() {
        let h = index_html(&nightly());
        for needle in [
            "<a href=\"booking-contention-naive-2/report.html\">2</a>",
            "<td class=\"invalid\">flaky (1/3)",
            "<td class=\"valid\">held (",
            "NOT as expected",
        ] {
            assert!(h.contains(needle), "index.html lacks {needle}");
        }
        assert!(
            !h.contains("<script") && !h.contains("http://") && !h.contains("https://"),
            "no script, no network"
        );
    }

    #[test]
    fn index_json_names_every_bundle_for_a_later_baseline() {
        let dir = std::env::temp_dir().join(format!("chaos-index-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut s = nightly();
        s.baseline = Some(BaselineResult {
            dir: "/b".into(),
            thresholds: Thresholds {
                p99_ratio: Some(1.5),
                ..Thresholds::default()
            },
            compared: vec![Compared {
                scenario: "redis-kill".into(),
                profile: Hardened,
                index: 1,
                bundle: "redis-kill-hardened-1".into(),
                against: Some("/b/redis-kill-hardened-1".into()),
                regressions: vec![Regression {
                    at: "fault".into(),
                    figure: "p99",
                    baseline: "10.0ms".into(),
                    candidate: "20.0ms".into(),
                    limit: "15.0ms (1.5x)".into(),
                }],
                error: None,
            }],
        });
        let md = write_index(&dir, &s).unwrap();
        assert!(
            std::fs::read_to_string(md)
                .unwrap()
                .contains("| redis-kill/hardened | [1](redis-kill-hardened-1/summary.md) | `/b/redis-kill-hardened-1` | REGRESSED: fault p99: 10.0ms → 20.0ms (limit 15.0ms (1.5x)) |")
        );
        let bundles = baseline_bundles(&dir).unwrap();
        assert_eq!(bundles.len(), 8);
        assert_eq!(
            bundles[&("booking-contention".to_string(), Naive, 3)],
            dir.join("booking-contention-naive-3")
        );
        let xml = std::fs::read_to_string(dir.join("junit.xml")).unwrap();
        let j = junit_parser::from_reader(std::io::Cursor::new(xml.as_bytes())).unwrap();
        let b = j.suites.iter().find(|s| s.name == "baseline").unwrap();
        assert!(b.cases[0].status.is_failure());
        std::fs::write(dir.join("index.json"), "{\"rows\": [{\"scenario\": 1}]}").unwrap();
        let e = baseline_bundles(&dir).unwrap_err();
        assert!(e.contains("index.json: line 1"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
