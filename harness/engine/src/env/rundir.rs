//! The run directory: where one run's servers keep their data, sockets and logs, with the
//! record (owner pid, process groups) that lets a later run reap what a crashed one left.

use std::path::{Path, PathBuf};

use crate::error::EngineError;

/// `$TMPDIR/chaos/runs`: every run directory lives here, so leftovers can be found.
pub fn runs_root() -> PathBuf {
    std::env::temp_dir().join("chaos").join("runs")
}

#[derive(Debug)]
pub struct RunDir {
    pub id: String,
    pub path: PathBuf,
    /// Keep the directory after the run (for debugging); removed otherwise.
    pub keep: bool,
}

impl RunDir {
    pub fn create(id: &str) -> Result<RunDir, EngineError> {
        let path = runs_root().join(id);
        std::fs::create_dir_all(&path)
            .map_err(EngineError::io(format!("create {}", path.display())))?;
        // Other accounts (postgres, rabbitmq) must be able to reach their subdirectories.
        set_mode(&runs_root().join(".."), 0o755)?;
        set_mode(&runs_root(), 0o755)?;
        set_mode(&path, 0o755)?;
        let me = std::process::id() as i32;
        let started = process_start_time(me).unwrap_or(0);
        std::fs::write(path.join("owner"), format!("{me} {started}\n"))
            .map_err(EngineError::io("write owner"))?;
        Ok(RunDir {
            id: id.to_string(),
            path,
            keep: false,
        })
    }

    pub fn sub(&self, name: &str) -> Result<PathBuf, EngineError> {
        let p = self.path.join(name);
        std::fs::create_dir_all(&p).map_err(EngineError::io(format!("create {}", p.display())))?;
        Ok(p)
    }

    pub fn log(&self, name: &str) -> PathBuf {
        self.path.join(format!("{name}.log"))
    }
}

impl Drop for RunDir {
    fn drop(&mut self) {
        // The run's servers were SIGKILLed before this (field order in `LocalEnv`), but a
        // killed process lingers until the kernel has torn it down, and a stray one may have
        // left its group: the run ends only when none of its processes is left.
        super::reaper::kill_and_await(&self.id, std::time::Duration::from_secs(10));
        if !self.keep {
            // A killed server's last children may still be exiting and writing; a second
            // attempt catches files created during the first.
            for _ in 0..3 {
                if std::fs::remove_dir_all(&self.path).is_ok() || !self.path.exists() {
                    break;
                }
            }
        }
    }
}

fn set_mode(p: &Path, mode: u32) -> Result<(), EngineError> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(p).map_err(EngineError::io(format!("stat {}", p.display())))?;
    if meta.permissions().mode() & 0o777 != mode && meta.uid_is_mine() {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode))
            .map_err(EngineError::io(format!("chmod {}", p.display())))?;
    }
    Ok(())
}

trait Mine {
    fn uid_is_mine(&self) -> bool;
}

impl Mine for std::fs::Metadata {
    fn uid_is_mine(&self) -> bool {
        use std::os::unix::fs::MetadataExt;
        self.uid() == nix::unistd::geteuid().as_raw()
    }
}

/// A process's start time in clock ticks since boot (field 22 of /proc/PID/stat): with the
/// pid it names one process for good, since pids are reused but not with the same start.
pub fn process_start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may contain spaces; fields after it follow the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split(' ').nth(19)?.parse().ok()
}

/// `cp -a FROM TO`: a cached template copied into a run, owners and modes kept.
pub(crate) async fn copy_dir(from: &Path, to: &Path) -> Result<(), EngineError> {
    let status = tokio::process::Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .await
        .map_err(EngineError::io("run cp"))?;
    if !status.success() {
        return Err(EngineError::Other(format!(
            "cp -a {} {} failed",
            from.display(),
            to.display()
        )));
    }
    Ok(())
}
