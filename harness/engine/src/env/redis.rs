//! Redis from Debian's `redis-server`, on a loopback port, no persistence by default, run
//! as the `redis` account when the harness is root.

use std::path::PathBuf;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::Command;

use super::process::{ChildProcess, drop_root};
use super::ready::wait_ready;
use super::rundir::RunDir;
use crate::error::EngineError;

pub(crate) struct RedisSpec {
    pub port: u16,
    pub dir: PathBuf,
}

impl RedisSpec {
    pub fn new(run: &RunDir, port: u16) -> Result<RedisSpec, EngineError> {
        Ok(RedisSpec {
            port,
            dir: run.sub("redis")?,
        })
    }

    /// Start (or restart, on the same port and directory) and wait for PONG.
    pub async fn start(&self, run: &RunDir) -> Result<ChildProcess, EngineError> {
        let mut cmd = Command::new("redis-server");
        cmd.args([
            "--port",
            &self.port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .args([
            "--dir",
            &self.dir.to_string_lossy(),
            "--daemonize",
            "no",
            "--protected-mode",
            "yes",
        ]);
        drop_root(&mut cmd, "redis", &self.dir)?;
        let mut child = ChildProcess::spawn("redis", cmd, &run.id, &run.log("redis"), false)?;
        let port = self.port;
        wait_ready(&mut child, Duration::from_secs(10), || ping(port)).await?;
        Ok(child)
    }
}

/// A RESP PING answered by +PONG.
pub(crate) async fn ping(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)).await else {
        return false;
    };
    if s.write_all(b"PING\r\n").await.is_err() {
        return false;
    }
    let mut buf = [0u8; 7];
    s.read_exact(&mut buf).await.is_ok() && &buf == b"+PONG\r\n"
}
