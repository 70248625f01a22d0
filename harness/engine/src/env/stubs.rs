//! The stubs (Twilio, SendGrid, EHR): each its own process of the workspace's `stubs`
//! binary (`--only <name>`), on ports fixed for the run so a restart comes back where it
//! was, with a journal in the run directory so its call log survives a kill. Ready when it
//! prints its bound addresses.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::process::Command;

use super::process::ChildProcess;
use super::ready::{ready_line, start_error, workspace_binary};
use super::rundir::RunDir;
use crate::error::EngineError;

/// The stubs the `stubs` binary serves, each on its own port behind its own proxy.
pub(crate) const STUBS: [&str; 3] = ["twilio", "sendgrid", "ehr"];

/// How to start (and restart) one stub.
#[derive(Debug, Clone)]
pub(crate) struct StubSpec {
    pub name: &'static str,
    pub api: SocketAddr,
    pub control_port: u16,
}

impl StubSpec {
    /// Base URL of its control API (`/calls`, `/knobs`, `/reset`).
    pub fn control(&self) -> String {
        format!("http://127.0.0.1:{}/{}", self.control_port, self.name)
    }

    /// Start it (again) and wait for its ready line.
    pub async fn start(&self, run: &RunDir) -> Result<ChildProcess, EngineError> {
        let mut cmd = Command::new(workspace_binary("stubs")?);
        cmd.args(["--only", self.name])
            .args(["--listen", &self.api.to_string()])
            .args(["--control", &format!("127.0.0.1:{}", self.control_port)])
            .arg("--journal")
            .arg(run.path.join(format!("{}.journal", self.name)));
        let mut child = ChildProcess::spawn(self.name, cmd, &run.id, &run.log(self.name), true)?;
        let ready = ready_line(&mut child, Duration::from_secs(10)).await?;
        let api = ready[self.name]
            .as_str()
            .and_then(|s| s.parse::<SocketAddr>().ok());
        if api != Some(self.api) {
            return Err(start_error(
                &child,
                format!(
                    "expected {} on {}, ready line says {ready}",
                    self.name, self.api
                ),
            ));
        }
        Ok(child)
    }
}
