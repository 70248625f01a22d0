//! The fault schedule as the runner applies it: each fault in a task of its own (inject at
//! its time, heal its duration later), faults that hold the same thing taking turns, every
//! inject and heal recorded in the history and stamped with when it was applied, its drift
//! from the plan and its outcome, for `schedule.json`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use chaos_model::{FaultAction, FaultEvent, FaultKind, Record, Scenario};
use serde::Serialize;
use serde_json::json;

use super::progress::{Progress, ProgressFn};
use crate::env::Env;
use crate::fault;
use crate::history::Recorder;

/// One action of a fault as applied.
#[derive(Debug, Clone, Serialize)]
pub struct Stamp {
    /// When the plan wanted it, on the history's clock.
    pub planned_us: u64,
    /// When it was started.
    pub started_us: u64,
    /// When it took effect (the history's fault event carries this time).
    pub done_us: u64,
    /// `started_us - planned_us`: how late it began (waiting for a fault holding the same
    /// thing, or a busy runtime).
    pub drift_us: i64,
    /// `ok`, `ok: <how it differed>` (a stop that had to kill), or `error: <why>`.
    pub outcome: String,
}

/// A fault's inject and heal as applied; absent ones never happened (the run ended first,
/// or the inject failed so there was nothing to heal).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Applied {
    pub inject: Option<Stamp>,
    pub heal: Option<Stamp>,
}

/// Faults in force now, by index (for progress lines).
pub type Active = Arc<Mutex<BTreeSet<usize>>>;

/// Start every fault of the scenario, each in its own task of `tasks`. Each task returns
/// the fault's index and how it was applied.
pub fn start(
    scenario: &Scenario,
    env: &Arc<Env>,
    rec: &Recorder,
    progress: &ProgressFn,
    active: &Active,
    tasks: &mut tokio::task::JoinSet<(usize, Applied)>,
) {
    let mut turns: BTreeMap<String, Arc<tokio::sync::Mutex<()>>> = BTreeMap::new();
    for (i, f) in scenario.schedule() {
        let kind = f.kind();
        let turn = fault::holds(&kind).map(|k| Arc::clone(turns.entry(k).or_default()));
        let job = Job {
            index: i,
            name: f.label(),
            at_us: f.at.as_micros(),
            heal_us: f.heal_at().as_micros(),
            kind,
            env: Arc::clone(env),
            rec: rec.clone(),
            progress: Arc::clone(progress),
            active: Arc::clone(active),
        };
        tasks.spawn(async move {
            // Held from injection to heal: the next fault on the same thing waits its turn.
            let _turn = match &turn {
                Some(t) => Some(wait_turn(t, &job).await),
                None => {
                    tokio::time::sleep_until(job.rec.clock().at(job.at_us)).await;
                    None
                }
            };
            (job.index, job.apply().await)
        });
    }
}

async fn wait_turn<'a>(
    turn: &'a tokio::sync::Mutex<()>,
    job: &Job,
) -> tokio::sync::MutexGuard<'a, ()> {
    tokio::time::sleep_until(job.rec.clock().at(job.at_us)).await;
    turn.lock().await
}

struct Job {
    index: usize,
    name: String,
    at_us: u64,
    heal_us: u64,
    kind: FaultKind,
    env: Arc<Env>,
    rec: Recorder,
    progress: ProgressFn,
    active: Active,
}

impl Job {
    async fn apply(&self) -> Applied {
        let clock = self.rec.clock();
        let started = clock.now_us();
        let injected = fault::inject(&self.env, self.index, &self.kind).await;
        let error = injected.as_ref().err().map(ToString::to_string);
        let mut inject = self.stamp(FaultAction::Inject, self.at_us, started, error);
        if let Some(note) = injected.as_ref().ok().and_then(fault::Injected::note) {
            inject.outcome = format!("ok: {note}");
        }
        let Ok(injected) = injected else {
            return Applied {
                inject: Some(inject),
                heal: None,
            };
        };
        self.active
            .lock()
            .expect("active faults lock")
            .insert(self.index);
        // The fault lasts its stated duration from the moment it took effect.
        let heal_at = inject.done_us + (self.heal_us - self.at_us);
        tokio::time::sleep_until(clock.at(heal_at)).await;
        let started = clock.now_us();
        let error = fault::heal(&self.env, injected)
            .await
            .err()
            .map(|e| e.to_string());
        self.active
            .lock()
            .expect("active faults lock")
            .remove(&self.index);
        let heal = self.stamp(FaultAction::Heal, self.heal_us, started, error);
        Applied {
            inject: Some(inject),
            heal: Some(heal),
        }
    }

    /// Record the action in the history and the progress, and stamp it.
    fn stamp(
        &self,
        action: FaultAction,
        planned_us: u64,
        started_us: u64,
        error: Option<String>,
    ) -> Stamp {
        let done_us = self.rec.clock().now_us();
        // The history's window of the fault is the widest it may have been: from the moment
        // its injection began (a kill, a toxic or a pause takes effect somewhere inside the
        // call that makes it, which can take a docker round trip) to the moment its heal was
        // done. An op invoked while the injection was under way is not steady.
        let (time_us, effective_us) = match action {
            FaultAction::Inject => (started_us, done_us),
            FaultAction::Heal => (done_us, started_us),
        };
        self.rec.record(Record::Fault(FaultEvent {
            fault: self.index,
            name: self.name.clone(),
            action,
            time_us,
            effective_us: Some(effective_us),
            error: error.clone(),
        }));
        (self.progress)(Progress::Fault {
            name: self.name.clone(),
            action,
            error: error.clone(),
        });
        Stamp {
            planned_us,
            started_us,
            done_us,
            drift_us: started_us as i64 - planned_us as i64,
            outcome: error.map_or_else(|| "ok".to_string(), |e| format!("error: {e}")),
        }
    }
}

/// `schedule.json`: the schedule exactly as planned, with the seed that drew the workload,
/// and (once the run has applied it) each fault as applied.
pub fn schedule_json(
    scenario: &Scenario,
    file: &str,
    seed: u64,
    applied: Option<&BTreeMap<usize, Applied>>,
) -> String {
    let faults: Vec<_> = scenario
        .schedule()
        .into_iter()
        .map(|(i, f)| {
            let mut v = json!({
                "fault": i,
                "name": f.label(),
                "inject_at_us": f.at.as_micros(),
                "heal_at_us": f.heal_at().as_micros(),
                "spec": f,
            });
            if let Some(applied) = applied {
                v["applied"] = json!(applied.get(&i).cloned().unwrap_or_default());
            }
            v
        })
        .collect();
    let doc = json!({
        "scenario": scenario.name,
        "file": file,
        "profile": scenario.profile,
        "seed": seed,
        "workload": scenario.workload,
        "faults": faults,
    });
    serde_json::to_string_pretty(&doc).expect("schedule serialises")
}
