//! `chaos down`: stop what `chaos up` keeps running, by asking each `up` process to stop
//! (SIGTERM) and waiting until it has cleaned up. A process is signalled only when its start
//! time is the one recorded for it: a pid reused by another process is never signalled.

use std::path::Path;
use std::time::{Duration, Instant};

use chaos_engine::env::runs_root;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use super::up_dir;
use crate::exit;

/// What is known of an environment's `up` process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner {
    /// The recorded process runs, and started when recorded.
    Running,
    /// No process with that pid runs (or only a zombie): the record is stale.
    Gone,
    /// The pid now names another process (its start time differs).
    Recycled,
    /// No start time was recorded: nothing proves the pid is still ours.
    Unverifiable,
}

/// The start time recorded for run `id`: the run directory's owner record (`PID START`,
/// written by the engine when the environment started), else the `up` record's `started`.
fn recorded_start(id: &str, pid: i32, record: &serde_json::Value) -> Option<u64> {
    let owner = std::fs::read_to_string(runs_root().join(id).join("owner")).unwrap_or_default();
    let mut fields = owner.split_whitespace().map(|f| f.parse::<u64>().ok());
    match (fields.next().flatten(), fields.next().flatten()) {
        (Some(p), Some(started)) if p == pid as u64 && started > 0 => Some(started),
        _ => record["started"].as_u64().filter(|s| *s > 0),
    }
}

pub fn owner_state(pid: i32, recorded: Option<u64>) -> Owner {
    if !alive(Pid::from_raw(pid)) {
        return Owner::Gone;
    }
    match (recorded, process_start_time(pid)) {
        (None, _) => Owner::Unverifiable,
        (Some(r), Some(now)) if r == now => Owner::Running,
        (Some(_), Some(_)) => Owner::Recycled,
        // It exited between the two looks.
        (Some(_), None) => Owner::Gone,
    }
}

pub fn run(only: Option<&str>, all: bool) -> anyhow::Result<u8> {
    let code = stop_ups(only)?;
    if !all {
        // What a SIGKILLed run left on the engine goes too, as with every command.
        let rt = super::runtime()?;
        rt.block_on(async {
            for id in chaos_engine::env::docker::reap::reap_if_engine().await {
                println!("reaped the containers of crashed run {id}");
            }
        });
        return Ok(code);
    }
    for id in chaos_engine::env::reap_leftovers() {
        println!("removed the leftovers of local run {id}");
    }
    let rt = super::runtime()?;
    let removed = rt.block_on(async {
        let docker = chaos_engine::env::docker::reap::connect().await?;
        chaos_engine::env::docker::reap::remove_all(&docker).await
    });
    match removed {
        Ok(ids) => {
            for id in &ids {
                println!("removed the containers, network and volumes of run {id}");
            }
            if ids.is_empty() {
                println!("no run has anything on the Docker engine");
            }
            Ok(code)
        }
        Err(e) => {
            eprintln!("chaos: {e}");
            Ok(exit::ENVIRONMENT)
        }
    }
}

fn stop_ups(only: Option<&str>) -> anyhow::Result<u8> {
    let mut stopped = 0;
    let mut refused = 0;
    let mut entries: Vec<_> = std::fs::read_dir(up_dir())
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    entries.sort();
    for path in entries {
        let Some(id) = path
            .file_stem()
            .and_then(|s| s.to_str())
            .map(str::to_string)
        else {
            continue;
        };
        if only.is_some_and(|o| o != id) {
            continue;
        }
        let record: serde_json::Value = std::fs::read_to_string(&path)
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default();
        let Some(pid) = record["pid"]
            .as_i64()
            .and_then(|p| i32::try_from(p).ok())
            .filter(|p| *p > 0)
        else {
            eprintln!("chaos: {}: no pid in the record; removed", path.display());
            remove(&path);
            continue;
        };
        match owner_state(pid, recorded_start(&id, pid, &record)) {
            Owner::Gone => {
                // Its process is gone already; the record is stale.
                remove(&path);
                continue;
            }
            Owner::Recycled => {
                eprintln!(
                    "chaos: {id}: pid {pid} now belongs to another process (its start time differs); not signalled, stale record removed"
                );
                remove(&path);
                continue;
            }
            Owner::Unverifiable => {
                eprintln!(
                    "chaos: {id}: no start time recorded for pid {pid}, so nothing shows it is still `chaos up`; not signalled (stop it by hand if it is)"
                );
                refused += 1;
                continue;
            }
            Owner::Running => {}
        }
        let pid = Pid::from_raw(pid);
        println!("stopping {id} (pid {pid})");
        kill(pid, Signal::SIGTERM)?;
        let deadline = Instant::now() + Duration::from_secs(60);
        while alive(pid) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        if alive(pid) {
            eprintln!(
                "chaos: {id} did not stop within 60 s; killing it (its children die with it)"
            );
            let _ = kill(pid, Signal::SIGKILL);
        }
        remove(&path);
        stopped += 1;
    }
    if refused > 0 {
        return Ok(exit::ENVIRONMENT);
    }
    if stopped == 0 {
        match only {
            Some(id) => {
                eprintln!("chaos: no environment {id} is up");
                return Ok(exit::USAGE);
            }
            None => println!("no environment is up"),
        }
    }
    Ok(exit::VALID)
}

fn remove(path: &Path) {
    let _ = std::fs::remove_file(path);
}

/// Whether a process runs: it exists and is not a zombie waiting for its parent to reap it.
fn alive(pid: Pid) -> bool {
    if kill(pid, None).is_err() {
        return false;
    }
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let state = stat
        .rfind(')')
        .and_then(|i| stat[i + 1..].split_whitespace().next());
    state.is_some_and(|s| s != "Z")
}

/// A process's start time in clock ticks since boot (field 22 of /proc/PID/stat), as the
/// engine records it in a run's owner record (`env/rundir.rs`, which does not export it).
pub fn process_start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may contain spaces; fields after it follow the last ')'.
    let rest = stat.get(stat.rfind(')')? + 2..)?;
    rest.split(' ').nth(19)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_process_is_ours_only_with_the_start_time_recorded() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let pid = child.id() as i32;
        let started = process_start_time(pid).expect("a running child has a start time");
        assert_eq!(owner_state(pid, Some(started)), Owner::Running);
        assert_eq!(owner_state(pid, Some(started + 1)), Owner::Recycled);
        assert_eq!(owner_state(pid, None), Owner::Unverifiable);
        child.kill().unwrap();
        child.wait().unwrap();
        // Gone; or, were the pid taken again at once, another process's.
        assert_ne!(owner_state(pid, Some(started)), Owner::Running);
    }
}
