//! One run from start to verdicts.

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chaos_model::{CheckResult, FaultAction, FaultEvent, History, Profile, Record, Scenario};
use serde_json::json;

use super::evidence::collect_evidence;
use super::progress::{Progress, ProgressFn};
use crate::env::{LocalEnv, LocalEnvConfig};
use crate::error::EngineError;
use crate::fault::{self, Injected};
use crate::history::{Clock, Recorder};
use crate::workload::{TargetClient, drive, plan};

/// What to run and where to put the bundle.
#[derive(Debug, Clone)]
pub struct RunSpec {
    /// Validated, with the profile already overridden by the caller if asked.
    pub scenario: Scenario,
    /// The file's text as written, copied into the bundle.
    pub scenario_text: String,
    pub scenario_file: String,
    pub seed: u64,
    pub out_dir: PathBuf,
    /// Keep the environment's run directory (data, sockets) after the run.
    pub keep_env_dir: bool,
}

impl RunSpec {
    pub fn profile(&self) -> Profile {
        self.scenario.profile
    }
}

/// The outcome of a run that reached its checks.
#[derive(Debug, Clone)]
pub struct RunReport {
    pub bundle: PathBuf,
    pub run_id: String,
    pub results: Vec<CheckResult>,
    /// invoked, ok, fail, info.
    pub counts: [u64; 4],
    pub setup_s: f64,
    pub workload_s: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Step {
    // Heals sort before injects at the same instant, so back-to-back faults do not overlap.
    Heal,
    Inject,
}

pub async fn run(spec: RunSpec, progress: ProgressFn) -> Result<RunReport, EngineError> {
    let s = &spec.scenario;
    let out = &spec.out_dir;
    std::fs::create_dir_all(out).map_err(EngineError::io(format!("create {}", out.display())))?;
    write(
        out,
        "scenario.toml",
        &format!(
            "# as run: profile = \"{}\", seed = {}\n{}",
            s.profile, spec.seed, spec.scenario_text
        ),
    )?;
    write(out, "schedule.json", &schedule_json(&spec))?;

    let run_id = format!("{}-{}-{}", s.name, spec.seed, std::process::id());
    let started = std::time::Instant::now();
    enter(&progress, "up");
    let env_cfg = LocalEnvConfig {
        run_id: run_id.clone(),
        profile: s.profile,
        replicas: s.replicas,
        providers: s.workload.providers,
        patients: s.workload.clients,
        seed: spec.seed,
        options: s.options.clone(),
        keep_dir: spec.keep_env_dir,
    };
    let note = {
        let p = Arc::clone(&progress);
        move |m: String| p(Progress::Note(m))
    };
    let mut env = LocalEnv::start(&env_cfg, &note).await?;
    let setup_s = started.elapsed().as_secs_f64();
    let endpoints = serde_json::json!({ "run_id": run_id, "endpoints": env.endpoints() });
    write(
        out,
        "endpoints.json",
        &serde_json::to_string_pretty(&endpoints).expect("endpoints serialise"),
    )?;
    progress(Progress::Note(format!(
        "environment ready in {setup_s:.1}s"
    )));

    let clock = Clock::start();
    let (rec, writer) = Recorder::start(&out.join("history.jsonl"), clock)?;
    let counters = rec.counters();
    let client = TargetClient::new(env.endpoints().target.clone(), s.workload.op_timeout.0);
    let ops = plan(spec.seed, &s.workload);
    enter(&progress, "steady");
    let mut driver = tokio::spawn(drive(ops, client, rec.clone(), s.workload.clients));

    let mut steps: Vec<(u64, Step, usize)> = Vec::new();
    for (i, f) in s.schedule() {
        steps.push((f.at.as_micros(), Step::Inject, i));
        steps.push((f.heal_at().as_micros(), Step::Heal, i));
    }
    steps.sort();
    let mut steps: VecDeque<_> = steps.into();
    let mut injected: BTreeMap<usize, Injected> = BTreeMap::new();
    let mut driver_done = false;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    loop {
        if driver_done && steps.is_empty() {
            break;
        }
        let next = steps.front().map(|st| clock.at(st.0));
        tokio::select! {
            () = async { tokio::time::sleep_until(next.expect("guarded")).await }, if next.is_some() => {
                let (_, step, i) = steps.pop_front().expect("a step is due");
                let f = &s.faults[i];
                match step {
                    Step::Inject => {
                        let r = fault::inject(&mut env, i, f).await;
                        let error = r.as_ref().err().map(ToString::to_string);
                        if let Ok(inj) = r {
                            injected.insert(i, inj);
                        } else {
                            // Nothing to heal: drop this fault's heal step.
                            steps.retain(|st| st.2 != i);
                        }
                        record_fault(&rec, &progress, i, f.label(), FaultAction::Inject, error);
                    }
                    Step::Heal => {
                        if let Some(inj) = injected.remove(&i) {
                            let error = fault::heal(&mut env, &inj).await.err().map(|e| e.to_string());
                            record_fault(&rec, &progress, i, f.label(), FaultAction::Heal, error);
                        }
                    }
                }
            }
            r = &mut driver, if !driver_done => {
                driver_done = true;
                if let Err(e) = r {
                    panic!("the workload driver panicked: {e}");
                }
            }
            _ = tick.tick() => {
                let [invoked, ok, fail, info] = counters.snapshot();
                let faults_active = injected.keys().map(|i| s.faults[*i].label()).collect();
                progress(Progress::Tick { t_s: clock.now_us() as f64 / 1e6, invoked, ok, fail, info, faults_active });
            }
        }
    }
    let workload_s = clock.now_us() as f64 / 1e6;

    enter(&progress, "quiesce");
    tokio::time::sleep(s.phases.quiesce.0).await;

    enter(&progress, "collect");
    let mut evidence = collect_evidence(env.endpoints()).await;
    evidence.run_started_unix_ms = Some(clock.unix_ms0());
    for e in &evidence.errors {
        progress(Progress::Note(format!("evidence: {e}")));
    }
    let ev_dir = out.join("evidence");
    std::fs::create_dir_all(&ev_dir).map_err(EngineError::io("create evidence/"))?;
    write(
        &ev_dir,
        "evidence.json",
        &serde_json::to_string_pretty(&evidence).expect("evidence serialises"),
    )?;
    for (i, text) in evidence.metrics.values().enumerate() {
        write(&ev_dir, &format!("metrics-replica-{i}.prom"), text)?;
    }
    env.copy_logs(&out.join("logs"))?;

    let counts = counters.snapshot();
    drop(rec);
    writer.finish().await?;

    enter(&progress, "check");
    let text = std::fs::read_to_string(out.join("history.jsonl"))
        .map_err(EngineError::io("read history.jsonl"))?;
    let history = History::from_jsonl(&text)
        .unwrap_or_else(|e| panic!("the recorder wrote a history it cannot read back: {e}"));
    let results = chaos_check::check_all(s, &history, &evidence);

    enter(&progress, "down");
    env.shutdown().await;
    Ok(RunReport {
        bundle: out.clone(),
        run_id,
        results,
        counts,
        setup_s,
        workload_s,
    })
}

/// Announce a phase. `CHAOS_SELF_TEST_PANIC=<phase>` makes the harness panic there, so
/// tests can prove that a panicking harness leaves nothing running.
fn enter(progress: &ProgressFn, phase: &'static str) {
    progress(Progress::Phase(phase));
    if std::env::var("CHAOS_SELF_TEST_PANIC").is_ok_and(|p| p == phase) {
        panic!("self-test panic requested in phase {phase} (CHAOS_SELF_TEST_PANIC)");
    }
}

fn record_fault(
    rec: &Recorder,
    progress: &ProgressFn,
    fault: usize,
    name: String,
    action: FaultAction,
    error: Option<String>,
) {
    rec.record(Record::Fault(FaultEvent {
        fault,
        name: name.clone(),
        action,
        time_us: rec.clock().now_us(),
        error: error.clone(),
    }));
    progress(Progress::Fault {
        name,
        action,
        error,
    });
}

fn write(dir: &Path, name: &str, text: &str) -> Result<(), EngineError> {
    let p = dir.join(name);
    std::fs::write(&p, text).map_err(EngineError::io(format!("write {}", p.display())))
}

/// The schedule exactly as the runner will apply it, with the seed that drew the workload.
fn schedule_json(spec: &RunSpec) -> String {
    let faults: Vec<_> = spec
        .scenario
        .schedule()
        .into_iter()
        .map(|(i, f)| {
            json!({
                "fault": i,
                "name": f.label(),
                "inject_at_us": f.at.as_micros(),
                "heal_at_us": f.heal_at().as_micros(),
                "spec": f,
            })
        })
        .collect();
    let doc = json!({
        "scenario": spec.scenario.name,
        "file": spec.scenario_file,
        "profile": spec.scenario.profile,
        "seed": spec.seed,
        "workload": spec.scenario.workload,
        "faults": faults,
    });
    serde_json::to_string_pretty(&doc).expect("schedule serialises")
}
