//! Progress events: what the runner tells its caller while it works. The engine never
//! prints; the CLI turns these into lines.

use std::sync::Arc;

use chaos_model::FaultAction;

#[derive(Debug, Clone)]
pub enum Progress {
    /// A phase begins: up, steady, quiesce, collect, check, down.
    Phase(&'static str),
    /// A line of detail (environment start-up steps, evidence collected).
    Note(String),
    /// Once a second during the workload.
    Tick {
        t_s: f64,
        invoked: u64,
        ok: u64,
        fail: u64,
        info: u64,
        faults_active: Vec<String>,
    },
    /// A fault was injected or healed (or failed to be).
    Fault {
        name: String,
        action: FaultAction,
        error: Option<String>,
    },
}

pub type ProgressFn = Arc<dyn Fn(Progress) + Send + Sync>;
