//! `chaos suite FILE`: run each scenario of a suite on its profile, compare every verdict
//! with what the scenario expects of that profile, and write an index.

use std::path::{Path, PathBuf};

use chaos_engine::runner::RunSpec;
use chaos_model::{Suite, Verdict};
use serde_json::json;

use super::{load_scenario, run_one, runtime, seed_or_fresh, utc_now_stamp};
use crate::exit;

/// One row of the index: a scenario x profile x invariant.
struct Row {
    scenario: String,
    profile: String,
    invariant: String,
    verdict: String,
    expected: &'static str,
    status: &'static str,
}

pub fn run(file: &Path, seed: Option<u64>, out: Option<PathBuf>) -> anyhow::Result<u8> {
    let name = file.display().to_string();
    let text = match std::fs::read_to_string(file) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("chaos: {name}: cannot read: {e}");
            return Ok(exit::USAGE);
        }
    };
    let suite = match Suite::parse(&name, &text) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("chaos: {e}");
            return Ok(exit::USAGE);
        }
    };
    let base = file.parent().unwrap_or(Path::new("."));
    // Validate every scenario before anything starts.
    let mut loaded = Vec::new();
    for r in &suite.runs {
        let path = base.join(&r.scenario);
        match load_scenario(&path, r.profile) {
            Ok((s, t)) => loaded.push((path, s, t)),
            Err(e) => {
                eprintln!("chaos: {e}");
                return Ok(exit::USAGE);
            }
        }
    }
    let seed = seed_or_fresh(seed);
    let dir = out.unwrap_or_else(|| {
        PathBuf::from("reports/suites")
            .join(&suite.name)
            .join(format!("{}-{seed}", utc_now_stamp()))
    });
    std::fs::create_dir_all(&dir)?;
    let rt = runtime()?;
    let mut rows = Vec::new();
    let mut junit = Vec::new();
    let (mut failed, mut env_failed, mut unknown) = (false, false, false);
    for (i, (path, scenario, text)) in loaded.into_iter().enumerate() {
        let profile = scenario.profile;
        let expected_invalid = scenario.expect.for_profile(profile).to_vec();
        let label = scenario.name.clone();
        eprintln!(
            "[suite {}] run {}/{}: {label} on {profile}",
            suite.name,
            i + 1,
            suite.runs.len()
        );
        let spec = RunSpec {
            scenario,
            scenario_text: text,
            scenario_file: path.display().to_string(),
            seed,
            out_dir: dir.join(format!("{label}-{profile}")),
            keep_env_dir: false,
        };
        let outcome = run_one(&rt, spec, &path);
        for l in &outcome.lines {
            println!("{l}");
        }
        if outcome.code == exit::INTERRUPTED_INT || outcome.code == exit::INTERRUPTED_TERM {
            return Ok(outcome.code);
        }
        let Some(report) = outcome.report else {
            env_failed |= outcome.code == exit::ENVIRONMENT;
            unknown |= outcome.code != exit::ENVIRONMENT;
            rows.push(Row {
                scenario: label,
                profile: profile.to_string(),
                invariant: "-".into(),
                verdict: outcome.error.unwrap_or_default(),
                expected: "-",
                status: "error",
            });
            continue;
        };
        if let Ok(text) = std::fs::read_to_string(report.bundle.join("junit.xml")) {
            // Each run's document holds one testsuite; the suite's document gathers them.
            if let (Some(a), Some(b)) = (text.find("  <testsuite "), text.rfind("</testsuites>")) {
                junit.push(text[a..b].to_string());
            }
        }
        for c in &report.results {
            let expect_invalid = expected_invalid.contains(&c.invariant);
            let status = match (&c.verdict, expect_invalid) {
                (Verdict::Invalid { .. }, true) => "caught",
                (Verdict::Valid, false) => "held",
                (Verdict::Invalid { .. }, false) => "VIOLATED",
                (Verdict::Valid, true) => "MISSED",
                (Verdict::Unknown { .. }, _) => "unknown",
            };
            failed |= matches!(status, "VIOLATED" | "MISSED");
            unknown |= status == "unknown";
            rows.push(Row {
                scenario: label.clone(),
                profile: profile.to_string(),
                invariant: c.invariant.clone(),
                verdict: c.verdict.name().into(),
                expected: if expect_invalid { "invalid" } else { "valid" },
                status,
            });
        }
    }
    let index = dir.join("index.md");
    std::fs::write(&index, index_md(&suite, seed, &rows))?;
    std::fs::write(dir.join("index.json"), index_json(&suite, seed, &rows))?;
    std::fs::write(dir.join("junit.xml"), crate::report::junit_document(&junit))?;
    let code = if failed {
        exit::INVALID
    } else if env_failed {
        exit::ENVIRONMENT
    } else if unknown {
        exit::UNKNOWN
    } else {
        exit::VALID
    };
    println!();
    println!(
        "suite {}: {}",
        suite.name,
        [
            "as expected",
            "NOT as expected",
            "unknown",
            "",
            "environment failed"
        ][code as usize]
    );
    for r in &rows {
        println!(
            "  {:<22} {:<9} {:<18} {:<8} expected {:<8} {}",
            r.scenario, r.profile, r.invariant, r.verdict, r.expected, r.status
        );
    }
    println!("report: {}", index.display());
    Ok(code)
}

fn index_md(suite: &Suite, seed: u64, rows: &[Row]) -> String {
    let mut s = format!(
        "# Suite {} (seed {seed})\n\n{}\n\n",
        suite.name, suite.description
    );
    s += "| scenario | profile | invariant | verdict | expected | status | bundle |\n|---|---|---|---|---|---|---|\n";
    for r in rows {
        s += &format!(
            "| {} | {} | {} | {} | {} | {} | [summary]({}-{}/summary.md) |\n",
            r.scenario,
            r.profile,
            r.invariant,
            r.verdict.replace('|', "\\|"),
            r.expected,
            r.status,
            r.scenario,
            r.profile
        );
    }
    s
}

fn index_json(suite: &Suite, seed: u64, rows: &[Row]) -> String {
    let rows: Vec<_> = rows
        .iter()
        .map(|r| {
            json!({ "scenario": r.scenario, "profile": r.profile, "invariant": r.invariant,
                         "verdict": r.verdict, "expected": r.expected, "status": r.status })
        })
        .collect();
    serde_json::to_string_pretty(&json!({ "suite": suite.name, "seed": seed, "rows": rows }))
        .expect("index serialises")
}
