//! Rendering a run's verdicts: `verdicts.json` for machines, `summary.md` for people (fit
//! for a pull-request comment), `junit.xml` for CI, `report.html` (in `html`) to look at,
//! and the lines printed at the end of a run.

pub mod bench;
pub mod bundle;
pub mod compare;
pub mod html;
pub mod index;
pub mod plots;

use std::time::Duration;

use chaos_engine::runner::RunReport;
use chaos_model::{CheckResult, Profile, Verdict};
use quick_junit::{NonSuccessKind, Property, Report, TestCase, TestCaseStatus, TestSuite};
use serde_json::json;

/// What the renderers need to know about a run besides its report.
pub struct RunFacts<'a> {
    pub scenario: &'a str,
    pub profile: Profile,
    pub seed: u64,
    pub reproduce: &'a str,
}

pub fn verdicts_json(f: &RunFacts<'_>, r: &RunReport) -> String {
    let overall = CheckResult::overall(&r.results);
    let [invoked, ok, fail, info] = r.counts;
    let doc = json!({
        "scenario": f.scenario,
        "profile": f.profile,
        "seed": f.seed,
        "verdict": overall.name(),
        "results": r.results,
        "ops": { "invoked": invoked, "ok": ok, "fail": fail, "info": info },
        "setup_s": to_ms(r.setup_s),
        "workload_s": to_ms(r.workload_s),
        "phases": r.phases.iter().map(|p| json!({ "phase": p.phase, "s": to_ms(p.s) })).collect::<Vec<_>>(),
        "reproduce": f.reproduce,
    });
    serde_json::to_string_pretty(&doc).expect("verdicts serialise") + "\n"
}

/// Seconds rounded to the millisecond: what `verdicts.json` keeps, and what every report
/// renders from, so a bundle re-rendered from its `verdicts.json` reads the same.
fn to_ms(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

pub fn summary_md(f: &RunFacts<'_>, r: &RunReport) -> String {
    let overall = CheckResult::overall(&r.results);
    let [invoked, ok, fail, info] = r.counts;
    let mut s = format!("# {} on {}: {}\n\n", f.scenario, f.profile, overall.name());
    s += &format!(
        "seed {} · {invoked} ops (ok {ok}, fail {fail}, info {info}) · environment up in {:.1}s · workload {:.1}s\n\n",
        f.seed,
        to_ms(r.setup_s),
        to_ms(r.workload_s)
    );
    if let Some(line) = phases_line(r) {
        s += &format!("{line}\n\n");
    }
    s += "| invariant | verdict | evidence |\n|---|---|---|\n";
    for c in &r.results {
        s += &format!(
            "| {} | {} | {} |\n",
            c.invariant,
            verdict_cell(&c.verdict),
            evidence(c).replace('|', "\\|")
        );
    }
    s += &format!("\nreproduce: `{}`\n", f.reproduce);
    s
}

/// Where the run's time went, phase by phase: `phases: up 5.6s · workload 20.0s · ...`;
/// `None` for a bundle recorded before runs timed their phases.
pub fn phases_line(r: &RunReport) -> Option<String> {
    if r.phases.is_empty() {
        return None;
    }
    let parts: Vec<String> = r
        .phases
        .iter()
        .map(|p| format!("{} {:.1}s", p.phase, to_ms(p.s)))
        .collect();
    Some(format!("phases: {}", parts.join(" · ")))
}

fn verdict_cell(v: &Verdict) -> String {
    match v {
        Verdict::Valid => "valid".into(),
        Verdict::Invalid { .. } => "**invalid**".into(),
        Verdict::Unknown { .. } => "_unknown_".into(),
    }
}

/// The detail sentence plus the proof: op ids and rows, shortened for a table cell.
pub fn evidence(c: &CheckResult) -> String {
    let mut e = c.detail.clone();
    if let Verdict::Invalid { ops, rows } = &c.verdict {
        if !ops.is_empty() {
            e += &format!("; ops {}", list(ops.iter().map(u64::to_string), 12));
        }
        if !rows.is_empty() {
            e += &format!("; rows {}", list(rows.iter().cloned(), 4));
        }
    }
    e
}

fn list(items: impl ExactSizeIterator<Item = String>, max: usize) -> String {
    let n = items.len();
    let mut v: Vec<String> = items.take(max).collect();
    if n > max {
        v.push(format!("… {} more", n - max));
    }
    v.join(", ")
}

/// The lines printed on stdout at the end of a run; the last is the reproduce line.
pub fn result_lines(f: &RunFacts<'_>, r: &RunReport) -> Vec<String> {
    let overall = CheckResult::overall(&r.results);
    let mut lines = vec![format!(
        "{} ({}, seed {}): {}",
        f.scenario,
        f.profile,
        f.seed,
        overall.name().to_uppercase()
    )];
    for c in &r.results {
        lines.push(format!(
            "  {:<24} {:<8} {}",
            c.invariant,
            c.verdict.name(),
            evidence(c)
        ));
    }
    lines.push(format!("bundle: {}", r.bundle.display()));
    lines.push(format!("reproduce: {}", f.reproduce));
    lines
}

/// One `<testsuite>` for a run: a testcase per invariant; invalid is a `<failure>` carrying
/// the evidence, unknown an `<error>` carrying the reason.
pub fn junit_suite(f: &RunFacts<'_>, r: &RunReport) -> TestSuite {
    let mut suite = TestSuite::new(format!("{}/{}", f.scenario, f.profile));
    let secs = to_ms(r.setup_s) + to_ms(r.workload_s);
    suite.set_time(Duration::try_from_secs_f64(secs).unwrap_or_default());
    suite.add_property(Property::new("seed", f.seed.to_string()));
    suite.add_property(Property::new("reproduce", f.reproduce));
    let class = format!("{}.{}", f.scenario, f.profile);
    for c in &r.results {
        let status = match &c.verdict {
            Verdict::Valid => TestCaseStatus::success(),
            Verdict::Invalid { .. } => {
                let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
                s.set_message(c.detail.as_str())
                    .set_description(evidence(c));
                s
            }
            Verdict::Unknown { reason } => {
                let mut s = TestCaseStatus::non_success(NonSuccessKind::Error);
                s.set_message(reason.as_str())
                    .set_description(c.detail.as_str());
                s
            }
        };
        let mut case = TestCase::new(c.invariant.as_str(), status);
        case.set_classname(class.as_str());
        suite.add_test_case(case);
    }
    suite
}

/// A whole `junit.xml` document from testsuites.
pub fn junit_document(suites: Vec<TestSuite>) -> String {
    let mut report = Report::new("chaos");
    report.add_test_suites(suites);
    report
        .to_string()
        .expect("a JUnit report serialises to memory")
}
