//! `chaos report RUN_DIR` re-renders a bundle in place; `chaos report --compare A B` prints
//! the per-phase deltas between two bundles of one scenario and, given thresholds, exits 1
//! when the candidate regressed past them. A bundle that cannot be read exits 3.

use std::path::{Path, PathBuf};

use chaos_model::{CheckResult, Thresholds};

use crate::exit;
use crate::report::bundle::{self, Bundle};
use crate::report::{RunFacts, compare, result_lines};

pub fn run(run_dir: Option<&Path>, compare: Option<&[PathBuf]>, t: &Thresholds) -> u8 {
    match (run_dir, compare) {
        (_, Some([base, cand])) => compare_runs(base, cand, t),
        (Some(dir), None) => rerender(dir),
        _ => usage("give a run bundle, or --compare BASELINE CANDIDATE"),
    }
}

/// Print the comparison; with thresholds, exit 1 when the candidate regressed past them.
fn compare_runs(base: &Path, cand: &Path, t: &Thresholds) -> u8 {
    if let Err((field, m)) = t.check() {
        return usage(&format!("--{}: {m}", field.replace('_', "-")));
    }
    let (a, b) = match (Bundle::load(base), Bundle::load(cand)) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => return usage(&e),
    };
    match compare::compare(&a, &b, t) {
        Ok((text, regressions)) => {
            print!("{text}");
            for r in &regressions {
                eprintln!("chaos: regressed: {r}");
            }
            if regressions.is_empty() {
                exit::VALID
            } else {
                exit::INVALID
            }
        }
        Err(e) => usage(&e),
    }
}

fn usage(e: &str) -> u8 {
    eprintln!("chaos: {e}");
    exit::USAGE
}

fn rerender(dir: &Path) -> u8 {
    let (b, report) = match Bundle::load_and_check(dir) {
        Ok(loaded) => loaded,
        Err(e) => return usage(&e),
    };
    let reproduce = b.reproduce();
    let facts = RunFacts {
        scenario: &b.scenario.name,
        profile: b.scenario.profile,
        seed: b.seed,
        reproduce: &reproduce,
    };
    let errors = bundle::write_reports(&facts, &report, &b.history, &b.evidence);
    for e in &errors {
        eprintln!("chaos: {e}");
    }
    for l in result_lines(&facts, &report) {
        println!("{l}");
    }
    if errors.is_empty() {
        exit::of_verdict(&CheckResult::overall(&report.results))
    } else {
        exit::ENVIRONMENT
    }
}
