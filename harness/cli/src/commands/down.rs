//! `chaos down`: stop what `chaos up` keeps running, by asking each `up` process to stop
//! (SIGTERM) and waiting until it has cleaned up.

use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use super::up_dir;
use crate::exit;

pub fn run(only: Option<&str>) -> anyhow::Result<u8> {
    let mut stopped = 0;
    let entries = std::fs::read_dir(up_dir())
        .map(|d| d.flatten().collect::<Vec<_>>())
        .unwrap_or_default();
    for e in entries {
        let path = e.path();
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
        let Some(pid) = record["pid"].as_i64() else {
            let _ = std::fs::remove_file(&path);
            continue;
        };
        let pid = Pid::from_raw(pid as i32);
        if !alive(pid) {
            // Its process is gone already; the record is stale.
            let _ = std::fs::remove_file(&path);
            continue;
        }
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
        let _ = std::fs::remove_file(&path);
        stopped += 1;
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
