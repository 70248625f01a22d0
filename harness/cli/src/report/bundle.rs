//! A run bundle on disk: reading one back (for `chaos report`) and writing every rendered
//! report into it (`verdicts.json`, `summary.md`, `junit.xml`, `report.html`).

use std::path::{Path, PathBuf};

use chaos_engine::runner::RunReport;
use chaos_model::{Evidence, History, Profile, Scenario};

use super::{RunFacts, html, junit_document, junit_suite, summary_md, verdicts_json};

/// What a bundle holds, read back and parsed.
pub struct Bundle {
    pub dir: PathBuf,
    pub scenario: Scenario,
    pub seed: u64,
    pub history: History,
    pub evidence: Evidence,
    /// The `verdicts.json` written when the run ended, if there is one.
    pub verdicts: Option<serde_json::Value>,
}

impl Bundle {
    /// Read a bundle; the error names the file and what is wrong with it.
    pub fn load(dir: &Path) -> Result<Bundle, String> {
        let read = |name: &str| {
            let p = dir.join(name);
            std::fs::read_to_string(&p).map_err(|e| format!("{}: {e}", p.display()))
        };
        let file = dir.join("scenario.toml").display().to_string();
        let text = read("scenario.toml")?;
        let (profile, seed) = as_run(&text).ok_or_else(|| {
            format!("{file}:1: the first line is not `# as run: profile = \"P\", seed = N`")
        })?;
        let mut scenario = Scenario::parse(&file, &text).map_err(|e| e.to_string())?;
        scenario.profile = profile;
        let history = History::from_jsonl(&read("history.jsonl")?)
            .map_err(|e| format!("{}: {e}", dir.join("history.jsonl").display()))?;
        let evidence = match read("evidence/evidence.json") {
            Ok(t) => serde_json::from_str(&t)
                .map_err(|e| format!("{}: {e}", dir.join("evidence/evidence.json").display()))?,
            Err(e) => Evidence {
                errors: vec![format!("no evidence in the bundle ({e})")],
                ..Evidence::default()
            },
        };
        let verdicts = read("verdicts.json")
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok());
        Ok(Bundle {
            dir: dir.to_path_buf(),
            scenario,
            seed,
            history,
            evidence,
            verdicts,
        })
    }

    /// Check the bundle's history and evidence again and make the report of it, keeping the
    /// timings the run recorded.
    pub fn recheck(&self) -> RunReport {
        let results = chaos_check::check_all(&self.scenario, &self.history, &self.evidence);
        let secs = |k: &str| {
            self.verdicts
                .as_ref()
                .and_then(|v| v[k].as_f64())
                .unwrap_or(0.0)
        };
        RunReport {
            bundle: self.dir.clone(),
            run_id: String::new(),
            results,
            counts: counts(&self.history),
            setup_s: secs("setup_s"),
            workload_s: secs("workload_s"),
        }
    }

    /// The reproduce line the run printed, or one that reruns the bundle's own copy.
    pub fn reproduce(&self) -> String {
        self.verdicts
            .as_ref()
            .and_then(|v| v["reproduce"].as_str().map(str::to_string))
            .unwrap_or_else(|| {
                crate::commands::reproduce_line(
                    &self.dir.join("scenario.toml"),
                    self.seed,
                    self.scenario.profile,
                )
            })
    }
}

/// Invoked, ok, fail and info ops of a history (an op never completed counts as info).
pub fn counts(history: &History) -> [u64; 4] {
    let mut c = [0u64; 4];
    for op in history.ops() {
        c[0] += 1;
        c[1 + op.outcome as usize] += 1;
    }
    c
}

/// The profile and seed from the line the engine puts first in the bundle's scenario copy.
fn as_run(text: &str) -> Option<(Profile, u64)> {
    let rest = text
        .lines()
        .next()?
        .strip_prefix("# as run: profile = \"")?;
    let (profile, rest) = rest.split_once('"')?;
    let seed = rest.strip_prefix(", seed = ")?.trim().parse().ok()?;
    Some((profile.parse().ok()?, seed))
}

/// Render every report into the bundle; returns the files that could not be written.
pub fn write_reports(
    f: &RunFacts<'_>,
    r: &RunReport,
    history: &History,
    evidence: &Evidence,
) -> Vec<String> {
    let junit = junit_document(&[junit_suite(f, r)]);
    let mut errors = Vec::new();
    for (name, text) in [
        ("verdicts.json", verdicts_json(f, r)),
        ("summary.md", summary_md(f, r)),
        ("junit.xml", junit),
        ("report.html", html::report_html(f, r, history, evidence)),
    ] {
        if let Err(e) = std::fs::write(r.bundle.join(name), text) {
            errors.push(format!("cannot write {name}: {e}"));
        }
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_as_run_line_gives_profile_and_seed() {
        assert_eq!(
            as_run("# as run: profile = \"hardened\", seed = 42\nname = \"x\"\n"),
            Some((Profile::Hardened, 42))
        );
        assert_eq!(as_run("name = \"x\"\n"), None);
        assert_eq!(as_run("# as run: profile = \"sturdy\", seed = 1\n"), None);
    }

    #[test]
    fn counts_take_unfinished_ops_as_info() {
        use chaos_model::{Invoke, OpKind, Outcome, Record};
        let h = History::new(vec![Record::Invoke(Invoke {
            op: 1,
            process: 0,
            f: OpKind::Login,
            slot: None,
            due_us: 0,
            time_us: 0,
            key: None,
        })]);
        assert_eq!(counts(&h), [1, 0, 0, 1]);
        assert_eq!(Outcome::Info as usize, 2);
    }
}
