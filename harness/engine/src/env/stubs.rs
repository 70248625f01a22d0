//! The stubs process (Twilio, SendGrid, EHR): started from the workspace's
//! `stubs` binary; ready when it prints its bound addresses.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::process::Command;

use super::process::ChildProcess;
use super::ready::{ready_line, start_error, workspace_binary};
use super::rundir::RunDir;
use crate::error::EngineError;

pub(crate) struct StubsProc {
    pub child: ChildProcess,
    /// Stub name -> the address of its API (what the proxy forwards to).
    pub apis: BTreeMap<String, SocketAddr>,
    /// Stub name -> base URL of its control API.
    pub controls: BTreeMap<String, String>,
}

/// The stubs the `stubs` binary serves, each on its own port behind its own proxy.
pub(crate) const STUBS: [&str; 3] = ["twilio", "sendgrid", "ehr"];

pub(crate) async fn start(run: &RunDir) -> Result<StubsProc, EngineError> {
    let cmd = Command::new(workspace_binary("stubs")?);
    let mut child = ChildProcess::spawn("stubs", cmd, &run.id, &run.log("stubs"), true)?;
    let ready = ready_line(&mut child, Duration::from_secs(10)).await?;
    let mut apis = BTreeMap::new();
    let mut controls = BTreeMap::new();
    for name in STUBS {
        let api = ready[name].as_str().and_then(|s| s.parse().ok());
        let control = ready["control"][name].as_str().map(str::to_string);
        let (Some(api), Some(control)) = (api, control) else {
            return Err(start_error(
                &child,
                format!("ready line lacks {name}: {ready}"),
            ));
        };
        apis.insert(name.to_string(), api);
        controls.insert(name.to_string(), control);
    }
    Ok(StubsProc {
        child,
        apis,
        controls,
    })
}
