//! PostgreSQL from Debian's packages: a data directory in the run directory (copied from a
//! cached `initdb` template), run as the `postgres` account when the harness is root.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::process::Command;

use super::process::{ChildProcess, drop_root};
use super::ready::wait_ready;
use super::rundir::{RunDir, copy_dir};
use crate::error::EngineError;

pub(crate) const PG_USER: &str = "chaos";
pub(crate) const PG_DB: &str = "postgres";

pub(crate) struct PostgresSpec {
    pub port: u16,
    pub data: PathBuf,
    pub socket_dir: PathBuf,
}

/// Debian keeps the server binaries out of PATH, under /usr/lib/postgresql/<major>/bin.
pub(crate) fn bin_dir() -> Result<PathBuf, EngineError> {
    let root = Path::new("/usr/lib/postgresql");
    let mut versions: Vec<u32> = std::fs::read_dir(root)
        .map_err(|_| {
            EngineError::MissingProgram("PostgreSQL server (apt-get install postgresql)".into())
        })?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .filter(|v: &u32| root.join(v.to_string()).join("bin/postgres").exists())
        .collect();
    versions.sort_unstable();
    let v = versions.last().ok_or_else(|| {
        EngineError::MissingProgram("PostgreSQL server (apt-get install postgresql)".into())
    })?;
    Ok(root.join(v.to_string()).join("bin"))
}

impl PostgresSpec {
    /// Prepare a data directory: initdb once into a shared template, then copy (about 5x
    /// faster than initdb per run).
    pub async fn prepare(run: &RunDir, port: u16) -> Result<PostgresSpec, EngineError> {
        let bin = bin_dir()?;
        let pg_root = run.sub("postgres")?;
        let template = template_dir(&bin, run).await?;
        let data = pg_root.join("data");
        copy_dir(&template, &data).await?;
        let socket_dir = pg_root.join("sock");
        std::fs::create_dir_all(&socket_dir).map_err(EngineError::io("create socket dir"))?;
        Ok(PostgresSpec {
            port,
            data,
            socket_dir,
        })
    }

    pub async fn start(&self, run: &RunDir) -> Result<ChildProcess, EngineError> {
        let bin = bin_dir()?;
        let mut cmd = Command::new(bin.join("postgres"));
        cmd.arg("-D")
            .arg(&self.data)
            .args([
                "-p",
                &self.port.to_string(),
                "-c",
                "listen_addresses=127.0.0.1",
            ])
            .arg("-c")
            .arg(format!(
                "unix_socket_directories={}",
                self.socket_dir.display()
            ))
            // Durability is not under test in the skeleton's scenarios; speed is welcome.
            .args([
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
            ])
            .args(["-c", "max_connections=200", "-c", "shared_buffers=64MB"]);
        drop_root(
            &mut cmd,
            "postgres",
            self.data.parent().expect("data has a parent"),
        )?;
        let mut child = ChildProcess::spawn("postgres", cmd, &run.id, &run.log("postgres"), false)?;
        let conninfo = self.conninfo();
        wait_ready(&mut child, Duration::from_secs(30), || {
            select_one(conninfo.clone())
        })
        .await?;
        Ok(child)
    }

    pub fn conninfo(&self) -> String {
        conninfo(self.port)
    }
}

pub(crate) fn conninfo(port: u16) -> String {
    format!("host=127.0.0.1 port={port} user={PG_USER} dbname={PG_DB} connect_timeout=2")
}

pub(crate) async fn select_one(conninfo: String) -> bool {
    let Ok((client, conn)) = tokio_postgres::connect(&conninfo, tokio_postgres::NoTls).await else {
        return false;
    };
    let task = tokio::spawn(conn);
    let ok = client.simple_query("SELECT 1").await.is_ok();
    drop(client);
    let _ = task.await;
    ok
}

/// The cached template: `$TMPDIR/chaos/pg-template-<major>`, built by initdb on first use.
async fn template_dir(bin: &Path, run: &RunDir) -> Result<PathBuf, EngineError> {
    let major = bin
        .parent()
        .and_then(|p| p.file_name())
        .map(|s| s.to_string_lossy().into_owned());
    let cache = std::env::temp_dir()
        .join("chaos")
        .join(format!("pg-template-{}", major.unwrap_or_default()));
    if cache.join("PG_VERSION").exists() {
        return Ok(cache);
    }
    // Build in a private directory and rename into place, so concurrent runs never see a
    // half-written template.
    let staging = run.sub("pg-template")?;
    let data = staging.join("data");
    let mut cmd = Command::new(bin.join("initdb"));
    cmd.arg("-D").arg(&data).args([
        "-U",
        PG_USER,
        "--auth=trust",
        "-E",
        "UTF8",
        "--locale=C",
        "--no-sync",
    ]);
    drop_root(&mut cmd, "postgres", &staging)?;
    let log = run.log("initdb");
    let mut child = ChildProcess::spawn("initdb", cmd, &run.id, &log, false)?;
    let status = match tokio::time::timeout(Duration::from_secs(60), child.wait()).await {
        Ok(Ok(status)) => status,
        Ok(Err(e)) => {
            return Err(super::ready::start_error(
                &child,
                format!("wait for initdb: {e}"),
            ));
        }
        Err(_) => {
            return Err(super::ready::start_error(
                &child,
                "initdb took over 60s".into(),
            ));
        }
    };
    if !status.success() {
        return Err(super::ready::start_error(
            &child,
            format!("initdb exited with {status}"),
        ));
    }
    match std::fs::rename(&data, &cache) {
        Ok(()) => Ok(cache),
        // Another run won the race; its template is as good as ours.
        Err(_) if cache.join("PG_VERSION").exists() => Ok(cache),
        Err(e) => Err(EngineError::Io {
            what: format!("install {}", cache.display()),
            source: e,
        }),
    }
}
