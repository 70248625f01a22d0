//! The commands, one per file, and what they share: loading scenarios and running one.

mod bench;
mod down;
mod images;
mod proxy;
pub mod render;
mod run;
mod suite;
mod up;
mod validate;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use chaos_engine::EngineError;
use chaos_engine::env::docker::images::Build;
use chaos_engine::runner::{self, Progress, ProgressFn, RunReport, RunSpec};
use chaos_model::{CheckResult, EnvKind, Profile, Scenario};

use crate::args::{Cli, Command};
use crate::exit;
use crate::report::{self, RunFacts};

pub fn dispatch(cli: Cli) -> anyhow::Result<u8> {
    match cli.command {
        Command::Validate { files } => Ok(validate::run(&files)),
        Command::Run {
            file,
            profile,
            seed,
            out,
            keep_env,
            env,
            no_image_build,
        } => run::run(
            &file,
            profile.as_deref(),
            seed,
            out,
            keep_env,
            parse_env(env.as_deref()),
            images_policy(no_image_build),
        ),
        Command::Suite {
            file,
            seed,
            seeds,
            baseline,
            out,
            env,
            no_image_build,
        } => suite::run(&suite::Options {
            file,
            seed,
            seeds,
            baseline,
            out,
            env: parse_env(env.as_deref()),
            images: images_policy(no_image_build),
        }),
        Command::Proxy { api, seed } => proxy::run(&api, seed),
        Command::BenchReport { parts, out, readme } => bench::run(&parts, &out, &readme),
        Command::Up {
            file,
            profile,
            json,
            seed,
            env,
            no_image_build,
        } => up::run(
            &file,
            profile.as_deref(),
            json,
            seed,
            parse_env(env.as_deref()),
            images_policy(no_image_build),
        ),
        Command::Down { run, all } => down::run(run.as_deref(), all),
        Command::Images { action } => images::run(&action),
        Command::Report {
            run_dir,
            compare,
            p99_ratio,
            error_share_delta,
            recovery_ratio,
        } => {
            let thresholds = chaos_model::Thresholds {
                p99_ratio,
                error_share_delta,
                recovery_ratio,
            };
            Ok(render::run(
                run_dir.as_deref(),
                compare.as_deref(),
                &thresholds,
            ))
        }
    }
}

fn parse_env(flag: Option<&str>) -> Option<EnvKind> {
    flag.map(|e| e.parse().expect("clap restricts --env to local or docker"))
}

fn images_policy(no_build: bool) -> Build {
    if no_build {
        Build::Never
    } else {
        Build::IfMissing
    }
}

/// Where a run goes: the command line's `--env`, else the suite's, else the scenario's,
/// else local.
pub fn env_of(flag: Option<EnvKind>, suite: Option<EnvKind>, scenario: &Scenario) -> EnvKind {
    flag.or(suite).or(scenario.environment).unwrap_or_default()
}

/// What a command that starts environments does before anything is timed: reap what a
/// SIGKILLed run of this machine left on the Docker engine (if an engine answers), and, when
/// a run goes to docker, make sure its images exist (building them if allowed), so a first
/// build's minutes never count against a run's global timeout. The error is the message.
pub fn prepare(rt: &tokio::runtime::Runtime, docker: bool, images: Build) -> Result<(), String> {
    rt.block_on(async {
        for id in chaos_engine::env::docker::reap::reap_if_engine().await {
            eprintln!("[chaos] reaped the containers of crashed run {id}");
        }
        if docker {
            let note = |m: String| eprintln!("[images] {m}");
            chaos_engine::env::docker::images::ensure(images, &note)
                .await
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    })
}

pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

/// Read and validate a scenario; the error is the one line a user needs.
pub fn load_scenario(path: &Path, profile: Option<Profile>) -> Result<(Scenario, String), String> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| format!("{file}: cannot read: {e}"))?;
    let mut scenario = Scenario::parse(&file, &text).map_err(|e| e.to_string())?;
    if let Some(p) = profile {
        scenario.profile = p;
    }
    Ok((scenario, text))
}

/// A seed from the clock when none was given; printed so the run can be repeated.
pub fn seed_or_fresh(seed: Option<u64>) -> u64 {
    seed.unwrap_or_else(|| {
        let d = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        (d.as_nanos() as u64 ^ u64::from(std::process::id()).rotate_left(32)) % 1_000_000_000
    })
}

pub fn utc_now_stamp() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    chaos_model::calendar::utc_stamp(secs)
}

/// How one run ended, for a single run or a row of a suite.
pub struct Outcome {
    pub code: u8,
    pub report: Option<RunReport>,
    pub error: Option<String>,
    pub lines: Vec<String>,
}

pub fn reproduce_line(file: &Path, seed: u64, profile: Profile) -> String {
    format!(
        "chaos run {} --seed {seed} --profile {profile}",
        file.display()
    )
}

/// Run one scenario to its verdicts under the global timeout, writing `verdicts.json` and
/// `summary.md` beside the engine's artefacts. Ctrl-C and SIGTERM stop it cleanly.
pub fn run_one(rt: &tokio::runtime::Runtime, spec: RunSpec, file: &Path) -> Outcome {
    let facts_scenario = spec.scenario.name.clone();
    let profile = spec.profile();
    let seed = spec.seed;
    let mut reproduce = reproduce_line(file, seed, profile);
    if spec.env == EnvKind::Docker {
        reproduce += " --env docker";
    }
    let timeout = spec.scenario.phases.timeout.0;
    let label = format!("{facts_scenario}/{profile}");
    let printer = crate::progress::printer(label);
    // The last phase entered and the last line of detail, for a run that times out.
    let last = Arc::new(Mutex::new(("up", String::new())));
    let seen = Arc::clone(&last);
    let progress: ProgressFn = Arc::new(move |p: Progress| {
        {
            let mut l = seen.lock().expect("progress lock");
            match &p {
                Progress::Phase(name) => *l = (name, String::new()),
                Progress::Note(n) => l.1.clone_from(n),
                _ => {}
            }
        }
        printer(p);
    });
    let stuck = || {
        let l = last.lock().expect("progress lock");
        if l.1.is_empty() {
            format!("in phase {}", l.0)
        } else {
            format!("in phase {} (last: {})", l.0, l.1)
        }
    };
    let result = rt.block_on(async move {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .map_err(|e| (exit::ENVIRONMENT, format!("cannot watch SIGTERM: {e}")))?;
        tokio::select! {
            r = tokio::time::timeout(timeout, runner::run(spec, progress)) => match r {
                Ok(Ok(report)) => Ok(report),
                Ok(Err(e @ EngineError::Timeout(_))) => Err((exit::UNKNOWN, e.to_string())),
                Ok(Err(e)) => Err((exit::ENVIRONMENT, e.to_string())),
                Err(_) => Err((exit::UNKNOWN, format!("the run exceeded its global timeout of {timeout:?} {}; everything was stopped", stuck()))),
            },
            _ = tokio::signal::ctrl_c() => Err((exit::INTERRUPTED_INT, "interrupted (SIGINT); everything was stopped".to_string())),
            _ = term.recv() => Err((exit::INTERRUPTED_TERM, "terminated (SIGTERM); everything was stopped".to_string())),
        }
    });
    match result {
        Ok(report) => {
            let facts = RunFacts {
                scenario: &facts_scenario,
                profile,
                seed,
                reproduce: &reproduce,
            };
            // The reports are rendered from the bundle's own files, as `chaos report` does.
            let mut lines = match report::bundle::Bundle::load_unrendered(&report.bundle) {
                Ok(b) => report::bundle::write_reports(&facts, &report, &b.history, &b.evidence),
                Err(e) => vec![format!("cannot read the bundle back: {e}")],
            };
            lines.extend(report::result_lines(&facts, &report));
            let code = exit::of_verdict(&CheckResult::overall(&report.results));
            Outcome {
                code,
                report: Some(report),
                error: None,
                lines,
            }
        }
        Err((code, msg)) => Outcome {
            code,
            report: None,
            error: Some(msg.clone()),
            lines: vec![
                format!("{facts_scenario} ({profile}, seed {seed}): {msg}"),
                format!("reproduce: {reproduce}"),
            ],
        },
    }
}

/// Where `chaos up` records the environments it keeps, for `chaos down`.
pub fn up_dir() -> PathBuf {
    std::env::temp_dir().join("chaos").join("up")
}

pub fn default_run_dir(scenario: &str, seed: u64) -> PathBuf {
    PathBuf::from("reports/runs")
        .join(scenario)
        .join(format!("{}-{seed}", utc_now_stamp()))
}
