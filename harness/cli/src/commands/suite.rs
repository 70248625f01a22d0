//! `chaos suite FILE`: run each row of a suite (a scenario on a profile) once per seed,
//! judge every verdict against what the scenario expects of that profile, compare each run
//! with a baseline suite run when there is one, and write the index with the findings
//! matrix. Exit 1 on any deviation or regression, else 4 if a run's environment failed,
//! else 0; 3 for a bad suite or scenario, before anything starts.

use std::path::{Path, PathBuf};

use chaos_engine::env::docker::images::Build;
use chaos_engine::runner::RunSpec;
use chaos_model::{EnvKind, Profile, Scenario, Suite, Thresholds};

use super::{load_scenario, run_one, runtime, seed_or_fresh, utc_now_stamp};
use crate::exit;
use crate::report::bundle::Bundle;
use crate::report::compare;
use crate::report::index::{
    self, BaselineResult, Compared, RowResult, RunResult, SuiteResult, baseline_bundles,
};

pub struct Options {
    pub file: PathBuf,
    pub seed: Option<u64>,
    pub seeds: Option<u32>,
    pub baseline: Option<PathBuf>,
    pub out: Option<PathBuf>,
    /// `--env`: wins over the suite's and each scenario's `environment`.
    pub env: Option<EnvKind>,
    pub images: Build,
}

/// A row, validated before anything starts.
struct Planned {
    /// The scenario file as the suite named it (after glob expansion).
    named: String,
    path: PathBuf,
    scenario: Scenario,
    text: String,
    seeds: u32,
    env: EnvKind,
}

/// The baseline to compare with: its directory, thresholds and bundles.
struct Gate {
    dir: PathBuf,
    thresholds: Thresholds,
    bundles: std::collections::BTreeMap<(String, Profile, u32), PathBuf>,
}

fn usage(e: &str) -> anyhow::Result<u8> {
    eprintln!("chaos: {e}");
    Ok(exit::USAGE)
}

pub fn run(o: &Options) -> anyhow::Result<u8> {
    let name = o.file.display().to_string();
    let text = match std::fs::read_to_string(&o.file) {
        Ok(t) => t,
        Err(e) => return usage(&format!("{name}: cannot read: {e}")),
    };
    let suite = match Suite::parse(&name, &text) {
        Ok(s) => s,
        Err(e) => return usage(&e.to_string()),
    };
    let base = o.file.parent().unwrap_or(Path::new("")).to_path_buf();
    let rows = match suite.rows(&name, &text, |d| list_dir(&base.join(d))) {
        Ok(r) => r,
        Err(e) => return usage(&e.to_string()),
    };
    // Validate every scenario before anything starts.
    let mut planned: Vec<Planned> = Vec::new();
    for row in rows {
        let path = base.join(&row.scenario);
        let (scenario, text) = match load_scenario(&path, row.profile) {
            Ok(x) => x,
            Err(e) => return usage(&e),
        };
        if let Some(p) = planned
            .iter()
            .find(|p| p.scenario.name == scenario.name && p.scenario.profile == scenario.profile)
        {
            return usage(&format!(
                "{name}: {} and {} are both scenario {} on {}: their bundles would collide",
                p.named, row.scenario, scenario.name, scenario.profile
            ));
        }
        let env = super::env_of(o.env, suite.environment, &scenario);
        if let Some(why) = scenario.unsupported_on(env) {
            return usage(&format!("{}: {why}", row.scenario));
        }
        planned.push(Planned {
            named: row.scenario,
            path,
            scenario,
            text,
            seeds: o.seeds.unwrap_or(row.seeds),
            env,
        });
    }
    let gate = match baseline(o, &suite, &name, &base) {
        Ok(g) => g,
        Err(e) => return usage(&e),
    };

    let seed = seed_or_fresh(o.seed);
    let dir = o.out.clone().unwrap_or_else(|| {
        PathBuf::from("reports/suites")
            .join(&suite.name)
            .join(format!("{}-{seed}", utc_now_stamp()))
    });
    std::fs::create_dir_all(&dir)?;
    let total: u32 = planned.iter().map(|p| p.seeds).sum();
    eprintln!(
        "[suite {}] seed {seed}: {} row(s), {total} run(s), into {}",
        suite.name,
        planned.len(),
        dir.display()
    );
    let mut reproduce = format!("chaos suite {name} --seed {seed}");
    if let Some(n) = o.seeds {
        reproduce += &format!(" --seeds {n}");
    }
    if let Some(b) = &o.baseline {
        reproduce += &format!(" --baseline {}", b.display());
    }
    if let Some(e) = o.env {
        reproduce += &format!(" --env {e}");
    }
    let mut result = SuiteResult {
        suite: suite.name.clone(),
        description: suite.description.clone(),
        reproduce,
        seed,
        rows: Vec::new(),
        baseline: None,
        interrupted: None,
        wall_s: 0.0,
    };
    let started = std::time::Instant::now();

    let rt = runtime()?;
    let docker = planned.iter().any(|p| p.env == EnvKind::Docker);
    if let Err(e) = super::prepare(&rt, docker, o.images) {
        eprintln!("chaos: {e}");
        return Ok(exit::ENVIRONMENT);
    }
    let mut k = 0;
    let mut interrupted = None;
    'rows: for p in planned {
        let profile = p.scenario.profile;
        let mut row = RowResult {
            scenario: p.scenario.name.clone(),
            file: p.named.clone(),
            profile,
            findings: p.scenario.findings.clone(),
            expect_invalid: p.scenario.expect.for_profile(profile).to_vec(),
            runs: Vec::new(),
        };
        for i in 1..=p.seeds {
            k += 1;
            let s = seed.wrapping_add(u64::from(i - 1));
            let bundle = format!("{}-{profile}-{i}", p.scenario.name);
            eprintln!(
                "[suite {}] run {k}/{total}: {} on {profile}, seed {s} ({i} of {})",
                suite.name, p.scenario.name, p.seeds
            );
            let spec = RunSpec {
                scenario: p.scenario.clone(),
                scenario_text: p.text.clone(),
                scenario_file: p.path.display().to_string(),
                seed: s,
                out_dir: dir.join(&bundle),
                keep_env_dir: false,
                env: p.env,
                images: o.images,
            };
            let outcome = run_one(&rt, spec, &p.path);
            for l in &outcome.lines {
                println!("{l}");
            }
            if outcome.code == exit::INTERRUPTED_INT || outcome.code == exit::INTERRUPTED_TERM {
                interrupted = Some((
                    outcome.code,
                    outcome.error.unwrap_or_else(|| "interrupted".into()),
                ));
                result.rows.push(row);
                break 'rows;
            }
            let (results, phases) = match outcome.report {
                Some(r) => (Ok(r.results), r.phases),
                None => (
                    Err(outcome
                        .error
                        .unwrap_or_else(|| "the run ended without verdicts".into())),
                    Vec::new(),
                ),
            };
            let run = RunResult {
                index: i,
                seed: s,
                bundle,
                results,
                phases,
            };
            match &run.results {
                Ok(res) => {
                    for j in row.judged(res).iter().filter(|j| j.status.deviates()) {
                        println!(
                            "  DEVIATION {}: {} expected {}, came out {}",
                            j.status.name(),
                            j.invariant,
                            if j.expected_invalid {
                                "invalid"
                            } else {
                                "valid"
                            },
                            j.verdict
                        );
                    }
                }
                Err(e) => println!("  ENVIRONMENT FAILED: {e}"),
            }
            row.runs.push(run);
        }
        result.rows.push(row);
    }

    if let Some((code, why)) = interrupted {
        result.interrupted = Some(why);
        result.wall_s = started.elapsed().as_secs_f64();
        let index = index::write_index(&dir, &result)?;
        println!("suite {}: interrupted", suite.name);
        println!("report: {}", index.display());
        return Ok(code);
    }
    if let Some(g) = gate {
        result.baseline = Some(compare_with(&g, &dir, &result.rows));
    }
    result.wall_s = started.elapsed().as_secs_f64();
    let index = index::write_index(&dir, &result)?;
    let code = result.code();
    println!();
    println!("suite {}: {}", suite.name, result.headline());
    println!("  {}", result.time_line());
    for l in result.problem_lines() {
        println!("  {l}");
    }
    for r in &result.rows {
        println!(
            "  {:<28} {:<9} runs {:>2}  deviating {:>2}  {}",
            r.scenario,
            r.profile,
            r.runs.len(),
            r.deviating_runs(),
            r.cell().name()
        );
    }
    println!("report: {}", index.display());
    Ok(code)
}

/// The entries of a suite's directory (or one below it); a file where a directory was
/// expected has none.
fn list_dir(dir: &Path) -> Result<Vec<String>, String> {
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    match std::fs::read_dir(dir) {
        Ok(entries) => Ok(entries
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
            .collect()),
        Err(e) if e.kind() == std::io::ErrorKind::NotADirectory => Ok(Vec::new()),
        Err(e) => Err(format!("{}: cannot list: {e}", dir.display())),
    }
}

/// The repository holding `dir`: its nearest ancestor with a `.git`; else the current
/// directory.
fn repo_root(dir: &Path) -> PathBuf {
    let start = std::fs::canonicalize(if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    })
    .unwrap_or_else(|_| dir.to_path_buf());
    start
        .ancestors()
        .find(|a| a.join(".git").exists())
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

/// The baseline: `--baseline` or `[baseline] dir` (relative to the repository root), with
/// the suite's thresholds, read before anything runs.
fn baseline(o: &Options, suite: &Suite, name: &str, base: &Path) -> Result<Option<Gate>, String> {
    let thresholds = suite
        .baseline
        .as_ref()
        .map(chaos_model::Baseline::thresholds);
    let dir = o.baseline.clone().or_else(|| {
        let d = suite.baseline.as_ref()?.dir.as_ref()?;
        Some(if Path::new(d).is_absolute() {
            PathBuf::from(d)
        } else {
            repo_root(base).join(d)
        })
    });
    match (dir, thresholds) {
        (Some(dir), Some(thresholds)) => {
            let bundles = baseline_bundles(&dir)?;
            Ok(Some(Gate {
                dir,
                thresholds,
                bundles,
            }))
        }
        (Some(_), None) => Err(format!(
            "--baseline: {name} has no [baseline] table with the thresholds to compare by"
        )),
        (None, Some(_)) => {
            eprintln!(
                "chaos: {name} has [baseline] thresholds but no baseline directory: rows are not compared (give --baseline DIR, a previous run of the suite)"
            );
            Ok(None)
        }
        (None, None) => Ok(None),
    }
}

/// Every run that reached verdicts against the baseline's run of the same scenario,
/// profile and seed index, on the figures of `chaos report --compare`.
fn compare_with(g: &Gate, dir: &Path, rows: &[RowResult]) -> BaselineResult {
    let mut compared = Vec::new();
    for row in rows {
        for run in row.runs.iter().filter(|r| r.results.is_ok()) {
            let key = (row.scenario.clone(), row.profile, run.index);
            let mut c = Compared {
                scenario: row.scenario.clone(),
                profile: row.profile,
                index: run.index,
                bundle: run.bundle.clone(),
                against: g.bundles.get(&key).map(|p| p.display().to_string()),
                regressions: Vec::new(),
                error: None,
            };
            if let Some(against) = g.bundles.get(&key) {
                match (Bundle::load(against), Bundle::load(&dir.join(&run.bundle))) {
                    (Ok(a), Ok(b)) => {
                        let fa = compare::figures(&a.scenario, &a.history);
                        let fb = compare::figures(&b.scenario, &b.history);
                        c.regressions = compare::regressions(&fa, &fb, &g.thresholds);
                    }
                    (Err(e), _) | (_, Err(e)) => c.error = Some(e),
                }
            }
            compared.push(c);
        }
    }
    BaselineResult {
        dir: g.dir.display().to_string(),
        thresholds: g.thresholds,
        compared,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::index::{self, RowResult, RunResult};
    use chaos_model::{Completion, History, Record};

    fn rows(bundles: &[&str]) -> Vec<RowResult> {
        let (scenario, _, _) = crate::snapshots::fixture();
        let results = Ok(chaos_check::check_all(
            &scenario,
            &crate::snapshots::fixture().1,
            &crate::snapshots::fixture().2,
        ));
        vec![RowResult {
            scenario: "fixture".into(),
            file: "fixture.toml".into(),
            profile: Profile::Naive,
            findings: vec!["000:S2".into()],
            expect_invalid: vec!["no_double_booking".into(), "acknowledged_durable".into()],
            runs: bundles
                .iter()
                .enumerate()
                .map(|(i, b)| RunResult {
                    index: i as u32 + 1,
                    seed: 7 + i as u64,
                    bundle: b.to_string(),
                    results: results.clone(),
                    phases: Vec::new(),
                })
                .collect(),
        }]
    }

    fn suite_dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("chaos-gate-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn result(rows: Vec<RowResult>) -> SuiteResult {
        SuiteResult {
            suite: "release".into(),
            description: String::new(),
            reproduce: "chaos suite scenarios/release.toml --seed 7".into(),
            seed: 7,
            rows,
            baseline: None,
            interrupted: None,
            wall_s: 0.0,
        }
    }

    #[test]
    fn the_release_gate_compares_each_run_with_the_baselines_of_the_same_seed_index() {
        // The baseline: one run of the fixture, its index written as a suite writes it.
        let base = suite_dir("base");
        std::fs::rename(
            crate::snapshots::fixture_bundle("gate-base", "fixture"),
            base.join("fixture-naive-1"),
        )
        .unwrap();
        index::write_index(&base, &result(rows(&["fixture-naive-1"]))).unwrap();

        // The candidate: run 1 slower at the steady p99 (op 2 takes 90 ms, not 15 ms); run 2
        // has no counterpart in the baseline.
        let cand = suite_dir("cand");
        let slower = History::new(
            crate::snapshots::fixture()
                .1
                .records
                .into_iter()
                .map(|r| match r {
                    Record::Ok(c) if c.op == 2 => Record::Ok(Completion {
                        time_us: 100_000,
                        ..c
                    }),
                    r => r,
                })
                .collect(),
        );
        std::fs::rename(
            crate::snapshots::fixture_bundle_with("gate-cand", "fixture", slower),
            cand.join("fixture-naive-1"),
        )
        .unwrap();
        std::fs::rename(
            crate::snapshots::fixture_bundle("gate-cand-2", "fixture"),
            cand.join("fixture-naive-2"),
        )
        .unwrap();
        let rows = rows(&["fixture-naive-1", "fixture-naive-2"]);
        let gate = Gate {
            dir: base.clone(),
            thresholds: Thresholds {
                p99_ratio: Some(1.5),
                error_share_delta: Some(0.02),
                recovery_ratio: None,
            },
            bundles: baseline_bundles(&base).unwrap(),
        };
        let b = compare_with(&gate, &cand, &rows);
        assert_eq!(b.compared.len(), 2);
        let one = &b.compared[0];
        assert_eq!(
            one.against.as_deref(),
            Some(base.join("fixture-naive-1").display().to_string().as_str())
        );
        let found: Vec<String> = one.regressions.iter().map(ToString::to_string).collect();
        assert_eq!(found, ["steady p99: 15.0ms → 90.0ms (limit 22.5ms (1.5x))"]);
        assert!(one.fails());
        assert!(b.compared[1].against.is_none() && !b.compared[1].fails());

        let mut s = result(rows.clone());
        assert_eq!(s.code(), exit::VALID, "the runs themselves are as expected");
        s.baseline = Some(b);
        assert_eq!(s.code(), exit::INVALID, "a regression fails the gate");
        assert!(
            s.problem_lines()
                .contains(&"REGRESSED: fixture on naive, run 1: steady p99: 15.0ms → 90.0ms (limit 22.5ms (1.5x))".to_string()),
            "{:?}",
            s.problem_lines()
        );

        // A baseline bundle that no longer reads is a failure of the gate, not a pass.
        std::fs::remove_file(base.join("fixture-naive-1/history.jsonl")).unwrap();
        let b = compare_with(&gate, &cand, &rows);
        assert!(
            b.compared[0]
                .error
                .as_deref()
                .is_some_and(|e| e.contains("history.jsonl"))
        );
        assert!(b.compared[0].fails());
        for d in [base, cand] {
            std::fs::remove_dir_all(d).unwrap();
        }
    }

    #[test]
    fn a_baseline_dir_is_relative_to_the_repository_root() {
        let scenarios = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scenarios");
        let root = repo_root(&scenarios);
        assert!(
            root.join("scenarios/release.toml").exists(),
            "{}",
            root.display()
        );
        let text = "name = \"r\"\n[baseline]\ndir = \"nowhere/base\"\np99_ratio = 1.5\n[[run]]\nscenario = \"a.toml\"\n";
        let suite = Suite::parse("r.toml", text).unwrap();
        let o = Options {
            file: scenarios.join("r.toml"),
            seed: None,
            seeds: None,
            baseline: None,
            out: None,
            env: None,
            images: Build::Never,
        };
        let e = baseline(&o, &suite, "r.toml", &scenarios).err().unwrap();
        assert!(
            e.contains(&root.join("nowhere/base/index.json").display().to_string()),
            "{e}"
        );
        // --baseline without thresholds to compare by is refused.
        let bare =
            Suite::parse("r.toml", "name = \"r\"\n[[run]]\nscenario = \"a.toml\"\n").unwrap();
        let o = Options {
            baseline: Some(PathBuf::from("/x")),
            ..o
        };
        let e = baseline(&o, &bare, "r.toml", &scenarios).err().unwrap();
        assert!(e.contains("no [baseline] table"), "{e}");
    }
}
