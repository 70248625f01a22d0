//! Reaping what a crashed run left behind, found by run id: its processes and its directory.

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

use super::process::RUN_ID_ENV;
use super::rundir::{process_start_time, runs_root};

/// Pids of live processes whose environment carries `CHAOS_RUN_ID=<run_id>`.
pub fn processes_of_run(run_id: &str) -> Vec<i32> {
    let needle = format!("{RUN_ID_ENV}={run_id}");
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut pids: Vec<i32> = entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/environ"))
                .is_ok_and(|env| env.split(|&b| b == 0).any(|kv| kv == needle.as_bytes()))
        })
        .collect();
    pids.sort_unstable();
    pids
}

/// SIGKILL every process of `run_id` until none is left, or `limit` has passed (a process
/// in uninterruptible sleep can outlast any signal; it is logged, not waited for forever).
pub(crate) fn kill_and_await(run_id: &str, limit: std::time::Duration) {
    let start = std::time::Instant::now();
    loop {
        let left = processes_of_run(run_id);
        if left.is_empty() {
            return;
        }
        if start.elapsed() > limit {
            tracing::warn!("processes of run {run_id} still alive after {limit:?}: {left:?}");
            return;
        }
        for pid in left {
            let _ = nix::sys::signal::kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
        // Polling /proc: there is no event for "a process outside my children has gone".
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

/// Kill the processes and remove the directories of runs whose owner is gone. Returns the
/// ids of the runs reaped.
pub fn reap_leftovers() -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(runs_root()) else {
        return Vec::new();
    };
    let mut reaped = Vec::new();
    for entry in entries.flatten() {
        let dir = entry.path();
        let Some(id) = dir.file_name().and_then(|n| n.to_str()).map(str::to_string) else {
            continue;
        };
        let owner = std::fs::read_to_string(dir.join("owner")).unwrap_or_default();
        let mut fields = owner.split_whitespace().map(|f| f.parse::<u64>().ok());
        let (pid, started) = (fields.next().flatten(), fields.next().flatten());
        // A pid can be reused by an unrelated process: the owner is alive only if the
        // process with that pid also started when the owner did.
        let owner_alive = match (pid, started) {
            (Some(pid), Some(started)) => process_start_time(pid as i32) == Some(started),
            _ => false,
        };
        // A directory whose owner line is not written yet belongs to a run starting now.
        let young = std::fs::metadata(&dir)
            .and_then(|m| m.modified())
            .is_ok_and(|t| t.elapsed().unwrap_or_default() < std::time::Duration::from_secs(60));
        if owner_alive || (pid.is_none() && young) {
            continue;
        }
        for pid in processes_of_run(&id) {
            tracing::warn!("reaping process {pid} left by run {id}");
            let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
        }
        kill_and_await(&id, std::time::Duration::from_secs(10));
        let _ = std::fs::remove_dir_all(&dir);
        reaped.push(id);
    }
    reaped
}
