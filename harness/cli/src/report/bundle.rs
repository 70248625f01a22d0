//! A run bundle on disk: reading one back (for `chaos report`) and writing every rendered
//! report into it (`verdicts.json`, `summary.md`, `junit.xml`, `report.html`).

use std::path::{Path, PathBuf};

use chaos_engine::runner::{PhaseTime, RunReport};
use chaos_model::{CheckResult, Evidence, History, Profile, Scenario};

use super::{RunFacts, html, junit_document, junit_suite, summary_md, verdicts_json};

/// What a bundle holds, read back and parsed.
pub struct Bundle {
    pub dir: PathBuf,
    pub scenario: Scenario,
    pub seed: u64,
    pub history: History,
    pub evidence: Evidence,
    /// What `verdicts.json` recorded when the run ended; `None` only for a bundle read before
    /// its reports were first written.
    pub recorded: Option<Recorded>,
}

/// The parts of `verdicts.json` a re-render keeps: the run's timings and reproduce line.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
pub struct Recorded {
    pub setup_s: f64,
    pub workload_s: f64,
    /// Absent from bundles recorded before runs timed their phases.
    #[serde(default)]
    pub phases: Vec<PhaseTime>,
    pub reproduce: String,
}

impl Bundle {
    /// Read a finished bundle, `verdicts.json` included. Every problem is an error naming the
    /// file (and the line where there is one): a truncated or corrupt bundle never panics.
    /// The first broken file is named, in this order: `scenario.toml`, `schedule.json`,
    /// `verdicts.json`, `history.jsonl`, `evidence/evidence.json` (the small files are read
    /// before the large ones).
    pub fn load(dir: &Path) -> Result<Bundle, String> {
        Ok(Bundle::read(dir, true, side_by_side)?.0)
    }

    /// `load`, then `recheck`, with the evidence's share of the checking done while the
    /// history is still being read (`chaos_check::judge_while_reading`): what `chaos report
    /// DIR` waits for.
    pub fn load_and_check(dir: &Path) -> Result<(Bundle, RunReport), String> {
        let (bundle, results) = Bundle::read(dir, true, |s, history, evidence| {
            chaos_check::judge_while_reading(s, history, evidence)
        })?;
        let report = bundle.report_of(results);
        Ok((bundle, report))
    }

    /// Read a bundle the engine has just written, before its reports (and so before
    /// `verdicts.json`) exist.
    pub fn load_unrendered(dir: &Path) -> Result<Bundle, String> {
        Ok(Bundle::read(dir, false, side_by_side)?.0)
    }

    /// The bundle, its small files read here and its two large ones by `large` (given the
    /// scenario and a reader of each), with whatever else `large` makes of them.
    fn read<T>(
        dir: &Path,
        with_verdicts: bool,
        large: impl FnOnce(
            &Scenario,
            Reader<'_, History>,
            Reader<'_, Evidence>,
        ) -> Result<(History, Evidence, T), String>,
    ) -> Result<(Bundle, T), String> {
        if !dir.is_dir() {
            return Err(format!(
                "{}: not a run bundle (no such directory)",
                dir.display()
            ));
        }
        let path = |name: &str| dir.join(name).display().to_string();
        let read = |name: &str| {
            std::fs::read_to_string(dir.join(name))
                .map_err(|e| format!("{}: cannot read: {e}", path(name)))
        };
        let file = path("scenario.toml");
        let text = read("scenario.toml")?;
        let (profile, seed) = as_run(&text).ok_or_else(|| {
            format!("{file}: line 1: the first line is not `# as run: profile = \"P\", seed = N`")
        })?;
        let mut scenario = Scenario::parse(&file, &text).map_err(|e| e.to_string())?;
        scenario.profile = profile;
        // The small files first, so that a broken one is found before the large ones are read.
        // The schedule as applied: not needed to re-render, but a bundle without it is not whole.
        let schedule: serde_json::Value =
            json_file(&path("schedule.json"), &read("schedule.json")?)?;
        if !schedule.is_object() {
            return Err(format!("{}: expected a JSON object", path("schedule.json")));
        }
        let recorded = if with_verdicts {
            let r: Recorded = json_file(&path("verdicts.json"), &read("verdicts.json")?)?;
            let seconds = |x: f64| (0.0..1e9).contains(&x);
            if !(seconds(r.setup_s) && seconds(r.workload_s)) {
                return Err(format!(
                    "{}: setup_s and workload_s must be seconds (0 to 1e9), found {} and {}",
                    path("verdicts.json"),
                    r.setup_s,
                    r.workload_s
                ));
            }
            if let Some(p) = r.phases.iter().find(|p| !seconds(p.s)) {
                return Err(format!(
                    "{}: phase {} must take seconds (0 to 1e9), found {}",
                    path("verdicts.json"),
                    p.phase,
                    p.s
                ));
            }
            Some(r)
        } else {
            None
        };
        let read_history: Reader<'_, History> = Box::new(|| {
            History::from_jsonl(&read("history.jsonl")?)
                .map_err(|e| format!("{}: {e}", path("history.jsonl")))
        });
        let read_evidence: Reader<'_, Evidence> = Box::new(|| {
            read("evidence/evidence.json")
                .and_then(|text| json_file::<Evidence>(&path("evidence/evidence.json"), &text))
        });
        let (history, evidence, made) = large(&scenario, read_history, read_evidence)?;
        let bundle = Bundle {
            dir: dir.to_path_buf(),
            scenario,
            seed,
            history,
            evidence,
            recorded,
        };
        Ok((bundle, made))
    }

    /// Check the bundle's history and evidence again and make the report of it, keeping the
    /// timings the run recorded.
    pub fn recheck(&self) -> RunReport {
        self.report_of(chaos_check::check_all(
            &self.scenario,
            &self.history,
            &self.evidence,
        ))
    }

    /// The report of this bundle's results, keeping the timings the run recorded.
    fn report_of(&self, results: Vec<CheckResult>) -> RunReport {
        let (setup_s, workload_s, phases) =
            self.recorded.as_ref().map_or((0.0, 0.0, Vec::new()), |r| {
                (r.setup_s, r.workload_s, r.phases.clone())
            });
        RunReport {
            bundle: self.dir.clone(),
            run_id: String::new(),
            results,
            counts: counts(&self.history),
            setup_s,
            workload_s,
            phases,
        }
    }

    /// The reproduce line the run printed, or one that reruns the bundle's own copy.
    pub fn reproduce(&self) -> String {
        self.recorded
            .as_ref()
            .map(|r| r.reproduce.clone())
            .unwrap_or_else(|| {
                crate::commands::reproduce_line(
                    &self.dir.join("scenario.toml"),
                    self.seed,
                    self.scenario.profile,
                )
            })
    }
}

/// A reader of one of a bundle's large files.
type Reader<'r, T> = Box<dyn FnOnce() -> Result<T, String> + Send + 'r>;

/// The two large files read and parsed side by side (the history on this thread); a history
/// error comes first.
fn side_by_side(
    _: &Scenario,
    read_history: Reader<'_, History>,
    read_evidence: Reader<'_, Evidence>,
) -> Result<(History, Evidence, ()), String> {
    let (history, evidence) = std::thread::scope(|s| {
        let evidence = s.spawn(read_evidence);
        let history = read_history();
        let evidence = evidence
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        (history, evidence)
    });
    Ok((history?, evidence?, ()))
}

/// A JSON file parsed into `T`; the error names the file, line and column.
fn json_file<T: serde::de::DeserializeOwned>(path: &str, text: &str) -> Result<T, String> {
    serde_json::from_str(text)
        .map_err(|e| format!("{path}: line {}, column {}: {e}", e.line(), e.column()))
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
    let junit = junit_document(vec![junit_suite(f, r)]);
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
    fn a_bundle_recorded_before_phases_were_timed_reads_with_none() {
        let old: Recorded = serde_json::from_str(
            r#"{"setup_s": 5.5, "workload_s": 20.0, "reproduce": "chaos run f.toml --seed 1 --profile naive"}"#,
        )
        .expect("an old verdicts.json still reads");
        assert!(old.phases.is_empty());
        let new: Recorded = serde_json::from_str(
            r#"{"setup_s": 5.5, "workload_s": 20.0, "phases": [{"phase": "up", "s": 5.5}], "reproduce": "x"}"#,
        )
        .expect("reads");
        assert_eq!(new.phases[0].phase, "up");
    }

    #[test]
    fn counts_take_unfinished_ops_as_info() {
        use chaos_model::{Invoke, OpKind, Outcome, Record};
        let h = History::new(vec![Record::Invoke(Invoke {
            ..Invoke::new(1, 0, OpKind::Login, 0, 0)
        })]);
        assert_eq!(counts(&h), [1, 0, 0, 1]);
        assert_eq!(Outcome::Info as usize, 2);
    }
}
