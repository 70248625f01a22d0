//! The target's replicas: `mediconnect` processes pointed at the proxies, ready when they
//! print their address and answer `/health/readiness` with 200.

use std::time::Duration;

use chaos_model::Profile;
use tokio::process::Command;

use super::process::ChildProcess;
use super::ready::{ready_line, start_error, wait_ready, workspace_binary};
use super::rundir::RunDir;
use crate::error::EngineError;

/// Where a replica finds its dependencies (the proxies' listen addresses).
pub(crate) struct TargetWiring {
    pub profile: Profile,
    pub postgres: String,
    pub redis: String,
    pub amqp: String,
    pub twilio: String,
    pub sendgrid: String,
    pub ehr: String,
    pub providers: u32,
    pub patients: u32,
    pub options: chaos_model::TargetOptions,
    /// Real Unix time at which every replica's service clock starts, so they agree.
    pub clock_epoch: f64,
}

/// Where the service clock starts when it runs fast: Sunday 2030-01-06 08:00 UTC, the day
/// before the workload's first Monday.
const CLOCK_START: i64 = crate::workload::BASE_MONDAY - 86_400 + 8 * 3600;

pub(crate) async fn start_replica(
    run: &RunDir,
    index: usize,
    w: &TargetWiring,
) -> Result<(ChildProcess, String), EngineError> {
    let mut cmd = Command::new(workspace_binary("mediconnect")?);
    cmd.args(["--profile", w.profile.as_str(), "--listen", "127.0.0.1:0"])
        .args([
            "--postgres",
            &w.postgres,
            "--redis",
            &w.redis,
            "--amqp",
            &w.amqp,
            "--twilio",
            &w.twilio,
            "--sendgrid",
            &w.sendgrid,
            "--ehr",
            &w.ehr,
        ])
        .args([
            "--providers",
            &w.providers.to_string(),
            "--patients",
            &w.patients.to_string(),
        ])
        .args(["--rate-limit", &w.options.rate_limit.to_string()])
        .args(["--max-in-flight", &w.options.max_in_flight.to_string()])
        .args([
            "--poll-ms",
            &(w.options.reminder_poll.0.as_millis() as u64).to_string(),
        ])
        .env("RUST_LOG", "info");
    if let Some(scale) = w.options.clock_scale {
        cmd.args(["--clock-start", &CLOCK_START.to_string()])
            .args(["--clock-epoch", &format!("{:.3}", w.clock_epoch)])
            .args(["--clock-scale", &scale.to_string()]);
    }
    let name = format!("mediconnect-{index}");
    let mut child = ChildProcess::spawn(&name, cmd, &run.id, &run.log(&name), true)?;
    let ready = ready_line(&mut child, Duration::from_secs(30)).await?;
    let Some(listen) = ready["listen"].as_str() else {
        return Err(start_error(
            &child,
            format!("unexpected ready line {ready}"),
        ));
    };
    let base = format!("http://{listen}");
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(2))
        .build()
        .expect("reqwest client builds");
    let url = format!("{base}/health/readiness");
    wait_ready(&mut child, Duration::from_secs(30), || {
        let req = http.get(&url);
        async move { req.send().await.is_ok_and(|r| r.status().is_success()) }
    })
    .await?;
    Ok((child, base))
}
