//! `chaos report RUN_DIR` re-renders a bundle in place; `chaos report --compare A B` prints
//! the per-phase deltas between two bundles of one scenario.

use std::path::{Path, PathBuf};

use chaos_model::CheckResult;

use crate::exit;
use crate::report::bundle::{self, Bundle};
use crate::report::{RunFacts, compare, result_lines};

pub fn run(run_dir: Option<&Path>, compare: Option<&[PathBuf]>) -> u8 {
    match (run_dir, compare) {
        (_, Some([base, cand])) => match (Bundle::load(base), Bundle::load(cand)) {
            (Ok(a), Ok(b)) => match compare::compare(&a, &b) {
                Ok(text) => {
                    print!("{text}");
                    exit::VALID
                }
                Err(e) => usage(&e),
            },
            (Err(e), _) | (_, Err(e)) => usage(&e),
        },
        (Some(dir), None) => rerender(dir),
        _ => usage("give a run bundle, or --compare BASELINE CANDIDATE"),
    }
}

fn usage(e: &str) -> u8 {
    eprintln!("chaos: {e}");
    exit::USAGE
}

fn rerender(dir: &Path) -> u8 {
    let b = match Bundle::load(dir) {
        Ok(b) => b,
        Err(e) => return usage(&e),
    };
    let report = b.recheck();
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
