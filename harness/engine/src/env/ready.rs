//! Waiting for a service to be ready: a probe polled until it passes, the process dies, or
//! the deadline passes. Each failure carries the service's log tail.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

use std::path::Path;

use super::process::ChildProcess;
use crate::error::EngineError;

/// Interval between two probes. A probe is a real protocol exchange (PING, SELECT 1, the
/// AMQP greeting), so this is polling for readiness, not a sleep standing in for it.
const PROBE_INTERVAL: Duration = Duration::from_millis(25);

pub(crate) async fn wait_ready<F, Fut>(
    child: &mut ChildProcess,
    timeout: Duration,
    mut probe: F,
) -> Result<(), EngineError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.exited() {
            return Err(start_error(child, format!("exited with {status}")));
        }
        if tokio::time::timeout_at(deadline, probe()).await == Ok(true) {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(start_error(child, format!("not ready after {timeout:?}")));
        }
        tokio::time::sleep(PROBE_INTERVAL).await;
    }
}

pub(crate) fn start_error(child: &ChildProcess, reason: String) -> EngineError {
    EngineError::ServiceStart {
        service: child.name.clone(),
        reason,
        log: child.log.clone(),
        tail: child.log_tail(15),
    }
}

/// Read the one JSON line a child prints on stdout when it has bound its ports, then keep
/// copying its stdout into its log.
pub(crate) async fn ready_line(
    child: &mut ChildProcess,
    timeout: Duration,
) -> Result<serde_json::Value, EngineError> {
    use tokio::io::{AsyncBufReadExt, BufReader};
    let stdout = child
        .stdout()
        .expect("ready_line needs a child spawned with piped stdout");
    let mut lines = BufReader::new(stdout).lines();
    let line = match tokio::time::timeout(timeout, lines.next_line()).await {
        Ok(Ok(Some(line))) => line,
        Ok(Ok(None)) => {
            return Err(start_error(
                child,
                "closed stdout before it was ready".into(),
            ));
        }
        Ok(Err(e)) => return Err(start_error(child, format!("reading stdout: {e}"))),
        Err(_) => {
            return Err(start_error(
                child,
                format!("printed no ready line within {timeout:?}"),
            ));
        }
    };
    let value = serde_json::from_str(&line)
        .map_err(|e| start_error(child, format!("ready line is not JSON ({e}): {line}")))?;
    let log = child.log.clone();
    tokio::spawn(async move {
        let mut f = match tokio::fs::OpenOptions::new().append(true).open(&log).await {
            Ok(f) => f,
            Err(_) => return,
        };
        while let Ok(Some(l)) = lines.next_line().await {
            use tokio::io::AsyncWriteExt;
            let _ = f.write_all(format!("{l}\n").as_bytes()).await;
        }
    });
    Ok(value)
}

/// The path of one of the workspace's binaries (`mediconnect`, `stubs`): beside the running
/// executable, or one level up from a test binary in `deps/`, or in `$CHAOS_BIN_DIR`.
pub fn workspace_binary(name: &str) -> Result<std::path::PathBuf, EngineError> {
    let mut dirs = Vec::new();
    if let Ok(d) = std::env::var("CHAOS_BIN_DIR") {
        dirs.push(std::path::PathBuf::from(d));
    }
    if let Some(dir) = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(Path::to_path_buf))
    {
        let parent = dir
            .parent()
            .filter(|_| dir.ends_with("deps"))
            .map(Path::to_path_buf);
        dirs.push(dir);
        dirs.extend(parent);
    }
    dirs.iter()
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            EngineError::MissingProgram(format!(
                "{name} (looked in {}; build it with `cargo build --workspace`)",
                dirs.iter()
                    .map(|d| d.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })
}
