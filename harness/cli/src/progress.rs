//! Progress lines on stderr: phases, once-a-second counts, faults as they happen.

use std::sync::Arc;
use std::time::Instant;

use chaos_engine::runner::{Progress, ProgressFn};
use chaos_model::FaultAction;

/// A printer of progress events, prefixed with the time since `start` and a label.
pub fn printer(label: String) -> ProgressFn {
    let start = Instant::now();
    Arc::new(move |p: Progress| {
        let t = start.elapsed().as_secs_f64();
        let line = match p {
            Progress::Phase(name) => format!("phase {name}"),
            Progress::Note(n) => n,
            Progress::Tick {
                t_s,
                invoked,
                ok,
                fail,
                info,
                faults_active,
            } => {
                let faults = if faults_active.is_empty() {
                    "-".to_string()
                } else {
                    faults_active.join(", ")
                };
                format!(
                    "t={t_s:5.1}s ops {invoked:>6} ok {ok:>6} fail {fail:>5} info {info:>5} | faults: {faults}"
                )
            }
            Progress::Fault {
                name,
                action,
                error,
            } => {
                let what = match action {
                    FaultAction::Inject => "inject",
                    FaultAction::Heal => "heal",
                };
                match error {
                    None => format!("fault {what}: {name}"),
                    Some(e) => format!("fault {what} FAILED: {name}: {e}"),
                }
            }
        };
        eprintln!("[{t:6.1}s] {label}: {line}");
    })
}
