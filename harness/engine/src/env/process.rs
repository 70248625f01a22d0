//! Child processes the harness owns: each in its own process group, killed with the group
//! when dropped, and killed by the kernel if the harness itself dies (parent-death signal).

use std::path::{Path, PathBuf};
use std::process::Stdio;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::process::{Child, Command};

use crate::error::EngineError;

/// Every child carries this variable, so leftovers of a run can be found by its id.
pub const RUN_ID_ENV: &str = "CHAOS_RUN_ID";

/// How long `kill` waits for a SIGKILLed leader to be reaped.
const KILL_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// A running child and its process group.
#[derive(Debug)]
pub struct ChildProcess {
    pub name: String,
    child: Child,
    pgid: Pid,
    pub log: PathBuf,
}

impl ChildProcess {
    /// Spawn `cmd` in a new process group, with stderr (and stdout unless `pipe_stdout`)
    /// appended to `log`.
    pub fn spawn(
        name: &str,
        mut cmd: Command,
        run_id: &str,
        log: &Path,
        pipe_stdout: bool,
    ) -> Result<ChildProcess, EngineError> {
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .map_err(EngineError::io(format!("open {}", log.display())))?;
        let err = out.try_clone().map_err(EngineError::io("dup log file"))?;
        cmd.env(RUN_ID_ENV, run_id)
            .stdin(Stdio::null())
            .stdout(if pipe_stdout {
                Stdio::piped()
            } else {
                Stdio::from(out)
            })
            .stderr(Stdio::from(err))
            .process_group(0)
            .kill_on_drop(false);
        set_parent_death_signal(&mut cmd);
        let program = cmd.as_std().get_program().to_string_lossy().into_owned();
        let child = cmd.spawn().map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => EngineError::MissingProgram(program.clone()),
            _ => EngineError::Io {
                what: format!("spawn {program}"),
                source: e,
            },
        })?;
        let pid = child.id().expect("a just-spawned child has a pid") as i32;
        Ok(ChildProcess {
            name: name.to_string(),
            child,
            pgid: Pid::from_raw(pid),
            log: log.to_path_buf(),
        })
    }

    pub fn pgid(&self) -> i32 {
        self.pgid.as_raw()
    }

    pub fn stdout(&mut self) -> Option<tokio::process::ChildStdout> {
        self.child.stdout.take()
    }

    /// Whether the process has exited (and its status, if so).
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Wait for the leader to exit.
    pub async fn wait(&mut self) -> std::io::Result<std::process::ExitStatus> {
        self.child.wait().await
    }

    /// Send `signal` to the leader alone (a graceful stop, which the leader passes on).
    pub fn signal_leader(&self, signal: Signal) -> Result<(), EngineError> {
        nix::sys::signal::kill(self.pgid, signal)
            .map_err(|e| EngineError::Other(format!("{signal} to {}: {e}", self.name)))
    }

    /// Send `signal` to every process of the group (SIGSTOP and SIGCONT pause and resume
    /// all of a server's processes: PostgreSQL's backends, RabbitMQ's helpers).
    pub fn signal_group(&self, signal: Signal) -> Result<(), EngineError> {
        killpg(self.pgid, signal)
            .map_err(|e| EngineError::Other(format!("{signal} to {}: {e}", self.name)))
    }

    /// Wait up to `limit` for the leader to exit; true if it did.
    pub async fn wait_exit(&mut self, limit: std::time::Duration) -> bool {
        tokio::time::timeout(limit, self.child.wait()).await.is_ok()
    }

    /// SIGKILL the whole group and reap the leader.
    pub async fn kill(&mut self) {
        let _ = killpg(self.pgid, Signal::SIGKILL);
        // SIGKILL cannot be caught, but a process in uninterruptible sleep dies only when
        // its I/O returns: bounded, so one such process cannot hold a fault or a run.
        if tokio::time::timeout(KILL_WAIT, self.child.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                "{} did not die within {KILL_WAIT:?} of SIGKILL; the run's reaper will look again",
                self.name
            );
        }
    }

    /// The last `n` lines of the log, for error messages.
    pub fn log_tail(&self, n: usize) -> String {
        log_tail(&self.log, n)
    }
}

impl Drop for ChildProcess {
    fn drop(&mut self) {
        // Synchronous on purpose: Drop runs on panic and cancellation too. Members of the
        // group that outlive the leader (postgres backends, erl_child_setup) die with it.
        let _ = killpg(self.pgid, Signal::SIGKILL);
        let _ = self.child.start_kill();
    }
}

pub(crate) fn log_tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[expect(
    unsafe_code,
    reason = "pre_exec is the only way to set PR_SET_PDEATHSIG in the child"
)]
fn set_parent_death_signal(cmd: &mut Command) {
    // SAFETY: the closure runs in the forked child before exec and only calls prctl(2),
    // which is async-signal-safe; it allocates nothing and touches no shared state.
    unsafe {
        cmd.pre_exec(|| {
            nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(std::io::Error::from)
        });
    }
}

/// The uid and gid of a system account, read from /etc/passwd.
pub(crate) fn system_user(name: &str) -> Option<(u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let f: Vec<&str> = line.split(':').collect();
        (f.len() > 3 && f[0] == name).then(|| Some((f[2].parse().ok()?, f[3].parse().ok()?)))?
    })
}

/// When the harness runs as root, servers that refuse root (PostgreSQL) or should not have
/// it run as their Debian system account; `dir` is handed to that account.
pub(crate) fn drop_root(cmd: &mut Command, account: &str, dir: &Path) -> Result<(), EngineError> {
    if !nix::unistd::geteuid().is_root() {
        return Ok(());
    }
    let (uid, gid) = system_user(account).ok_or_else(|| {
        EngineError::MissingProgram(format!(
            "system user {account:?} (install the Debian package that creates it)"
        ))
    })?;
    chown_recursive(dir, uid, gid)?;
    cmd.uid(uid).gid(gid);
    Ok(())
}

pub(crate) fn chown_recursive(dir: &Path, uid: u32, gid: u32) -> Result<(), EngineError> {
    std::os::unix::fs::chown(dir, Some(uid), Some(gid))
        .map_err(EngineError::io(format!("chown {}", dir.display())))?;
    if dir.is_dir() {
        for entry in
            std::fs::read_dir(dir).map_err(EngineError::io(format!("read {}", dir.display())))?
        {
            let entry = entry.map_err(EngineError::io("read dir entry"))?;
            let path = entry.path();
            if entry.file_type().map(|t| t.is_symlink()).unwrap_or(false) {
                continue;
            }
            chown_recursive(&path, uid, gid)?;
        }
    }
    Ok(())
}
