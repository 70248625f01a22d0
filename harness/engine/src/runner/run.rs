//! One run from start to verdicts.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chaos_model::{CheckResult, History, Profile, Scenario};

use super::evidence::collect_evidence;
use super::progress::{Progress, ProgressFn};
use super::schedule::{self, schedule_json};
use super::{drain, sample};
use crate::env::{Env, EnvConfig};
use crate::error::EngineError;
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
    /// Where the services run (the command line's choice, else the scenario's).
    pub env: chaos_model::EnvKind,
    /// On docker: build missing images first, or fail naming the command that does.
    pub images: crate::env::docker::images::Build,
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
    /// Wall time of each phase in order (up, workload, quiesce, collect, check, down), so
    /// the report shows where a run's time went.
    pub phases: Vec<PhaseTime>,
}

/// How long one phase of a run took, in seconds.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PhaseTime {
    pub phase: String,
    pub s: f64,
}

/// Announces each phase and times it: a phase ends when the next begins.
struct PhaseClock {
    progress: ProgressFn,
    current: Option<(&'static str, std::time::Instant)>,
    done: Vec<PhaseTime>,
}

impl PhaseClock {
    fn new(progress: &ProgressFn) -> PhaseClock {
        PhaseClock {
            progress: Arc::clone(progress),
            current: None,
            done: Vec::new(),
        }
    }

    /// Close the phase under way and begin `phase`. The progress phase `steady` (the
    /// workload with its faults, heal and recovery) is recorded as `workload`.
    fn enter(&mut self, phase: &'static str) {
        self.close();
        enter(&self.progress, phase);
        let recorded = if phase == "steady" { "workload" } else { phase };
        self.current = Some((recorded, std::time::Instant::now()));
    }

    fn close(&mut self) {
        if let Some((phase, t0)) = self.current.take() {
            self.done.push(PhaseTime {
                phase: phase.to_string(),
                s: t0.elapsed().as_secs_f64(),
            });
        }
    }

    fn finish(mut self) -> Vec<PhaseTime> {
        self.close();
        self.done
    }
}

/// Aborts a task when dropped: a run that is cancelled (its global timeout, Ctrl-C inside a
/// suite) stops its workload and sampling at once, before the next run starts.
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
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
    write(
        out,
        "schedule.json",
        &schedule_json(s, &spec.scenario_file, spec.seed, None),
    )?;

    // Unique within the process: a suite's rows (the same scenario and seed on two
    // profiles, or again on a later seed) never share a run directory,
    // even when an earlier row's processes are still dying after its timeout.
    static RUNS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
    let run_id = format!(
        "{}-{}-{}-{}-{n}",
        s.name,
        s.profile,
        spec.seed,
        std::process::id()
    );
    let started = std::time::Instant::now();
    let mut phases = PhaseClock::new(&progress);
    phases.enter("up");
    let env_cfg = EnvConfig {
        run_id: run_id.clone(),
        profile: s.profile,
        replicas: s.replicas,
        providers: s.workload.providers,
        patients: s.workload.clients,
        seed: spec.seed,
        options: s.options.clone(),
        keep_dir: spec.keep_env_dir,
        kind: spec.env,
        images: spec.images,
    };
    let note = {
        let p = Arc::clone(&progress);
        move |m: String| p(Progress::Note(m))
    };
    let env = Arc::new(Env::start(&env_cfg, &note).await?);
    let setup_s = started.elapsed().as_secs_f64();
    let endpoints = serde_json::json!({
        "run_id": run_id,
        "environment": spec.env,
        "endpoints": env.endpoints(),
        "startup_s": env.startup(),
    });
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
    phases.enter("steady");
    let mut driver = tokio::spawn(drive(ops, client, rec.clone(), s.workload.clone()));
    let _driver_guard = AbortOnDrop(driver.abort_handle());
    let samples = Arc::new(Mutex::new(Vec::new()));
    let sampler = tokio::spawn(sample::sample(
        env.endpoints().target.clone(),
        clock,
        Arc::clone(&samples),
    ));
    let _sampler_guard = AbortOnDrop(sampler.abort_handle());

    // Dropping the set (a cancelled run) aborts every fault task.
    let mut faults = tokio::task::JoinSet::new();
    let active: schedule::Active = Arc::default();
    schedule::start(s, &env, &rec, &progress, &active, &mut faults);
    let mut applied = BTreeMap::new();
    let mut driver_done = false;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    while !(driver_done && faults.is_empty()) {
        tokio::select! {
            r = &mut driver, if !driver_done => {
                driver_done = true;
                if let Err(e) = r {
                    panic!("the workload driver panicked: {e}");
                }
            }
            Some(r) = faults.join_next(), if !faults.is_empty() => {
                let (i, a) = r.unwrap_or_else(|e| panic!("a fault task panicked: {e}"));
                applied.insert(i, a);
            }
            _ = tick.tick() => {
                let [invoked, ok, fail, info] = counters.snapshot();
                let faults_active = active.lock().expect("active faults lock").iter().map(|i| s.faults[*i].label()).collect();
                progress(Progress::Tick { t_s: clock.now_us() as f64 / 1e6, invoked, ok, fail, info, faults_active });
            }
        }
    }
    let workload_s = clock.now_us() as f64 / 1e6;

    phases.enter("quiesce");
    let drained = drain::drain(&env, s.phases.quiesce.0, s.phases.idle.0, &note).await;
    progress(Progress::Note(if drained.drained {
        format!("drained after {} ms", drained.waited_ms)
    } else {
        format!(
            "not drained after {} ms: still in flight (the reminder checks will say so)",
            drained.waited_ms
        )
    }));

    phases.enter("collect");
    drop(_sampler_guard);
    let mut evidence = collect_evidence(env.endpoints()).await;
    evidence.run_started_unix_ms = Some(clock.unix_ms0());
    evidence.drain = Some(drained);
    evidence.service_clock = env.service_clock();
    evidence.metric_samples = std::mem::take(&mut *samples.lock().expect("samples lock"));
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
    // Numbered by replica (the order of the target's endpoints), not by URL.
    for (i, base) in env.endpoints().target.iter().enumerate() {
        if let Some(text) = evidence.metrics.get(base) {
            write(&ev_dir, &format!("metrics-replica-{}.prom", i + 1), text)?;
        }
    }
    env.copy_logs(&out.join("logs")).await?;
    write(
        out,
        "schedule.json",
        &schedule_json(s, &spec.scenario_file, spec.seed, Some(&applied)),
    )?;

    let counts = counters.snapshot();
    drop(rec);
    writer.finish().await?;

    phases.enter("check");
    // The history is read back from its file (what was recorded is what is judged), while
    // the evidence's share of the checking is done beside it.
    let (_, _, results) = chaos_check::judge_while_reading(
        s,
        || {
            let text = std::fs::read_to_string(out.join("history.jsonl"))
                .map_err(EngineError::io("read history.jsonl"))?;
            Ok(History::from_jsonl(&text).unwrap_or_else(|e| {
                panic!("the recorder wrote a history it cannot read back: {e}")
            }))
        },
        move || Ok(evidence),
    )?;

    phases.enter("down");
    drop(faults);
    let env = Arc::into_inner(env).expect("every fault task is done: the run owns its environment");
    env.shutdown().await;
    Ok(RunReport {
        bundle: out.clone(),
        run_id,
        results,
        counts,
        setup_s,
        workload_s,
        phases: phases.finish(),
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

fn write(dir: &Path, name: &str, text: &str) -> Result<(), EngineError> {
    let p = dir.join(name);
    std::fs::write(&p, text).map_err(EngineError::io(format!("write {}", p.display())))
}
