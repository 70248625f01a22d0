//! The target's replicas: `mediconnect` processes pointed at the proxies, each on a port
//! fixed for the run (so a restarted replica comes back at the address clients use), ready
//! when they print their address and answer `/health/readiness` (at the start of a run) or
//! `/health/liveness` (a restart during a fault, when a dependency may be down) with 200.

use std::time::Duration;

use chaos_model::{Profile, Service};
use tokio::process::Command;

use super::postgres::{PG_DB, PG_USER};
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

impl TargetWiring {
    /// The wiring of a run configured by `cfg` whose replicas reach each dependency at
    /// `addr(service)` (`host:port`, the service's proxy).
    pub(crate) fn through(
        cfg: &super::EnvConfig,
        addr: impl Fn(Service) -> String,
    ) -> TargetWiring {
        let pg = addr(Service::Postgres);
        let (host, port) = pg.rsplit_once(':').expect("an address has a port");
        TargetWiring {
            profile: cfg.profile,
            postgres: format!(
                "host={host} port={port} user={PG_USER} dbname={PG_DB} connect_timeout=2"
            ),
            redis: format!("redis://{}", addr(Service::Redis)),
            amqp: format!(
                "amqp://guest:guest@{}/%2f?heartbeat=5&connection_timeout=2000",
                addr(Service::Rabbitmq)
            ),
            twilio: format!("http://{}", addr(Service::Twilio)),
            sendgrid: format!("http://{}", addr(Service::Sendgrid)),
            ehr: format!("http://{}/fhir", addr(Service::Ehr)),
            providers: cfg.providers,
            patients: cfg.patients,
            options: cfg.options.clone(),
            clock_epoch: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64()),
        }
    }
}

/// Where the service clock starts when it runs fast: Sunday 2030-01-06 08:00 UTC, the day
/// before the workload's first Monday.
pub(crate) const CLOCK_START: i64 = crate::workload::BASE_MONDAY - 86_400 + 8 * 3600;

/// What a replica must answer before it counts as started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wait {
    /// `/health/readiness`: every dependency reachable (the start of a run).
    Ready,
    /// `/health/liveness`: the process serves (a restart while a fault may be in force).
    Live,
}

/// A replica's command line after the program: listening on `listen`, wired by `w`. The
/// same in both environments.
pub(crate) fn replica_args(w: &TargetWiring, listen: &str) -> Vec<String> {
    let mut args: Vec<String> = [
        "--profile",
        w.profile.as_str(),
        "--listen",
        listen,
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
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for (flag, value) in [
        ("--providers", w.providers.to_string()),
        ("--patients", w.patients.to_string()),
        ("--rate-limit", w.options.rate_limit.to_string()),
        ("--max-in-flight", w.options.max_in_flight.to_string()),
        (
            "--poll-ms",
            (w.options.reminder_poll.0.as_millis() as u64).to_string(),
        ),
    ] {
        args.push(flag.into());
        args.push(value);
    }
    if let Some(scale) = w.options.clock_scale {
        for (flag, value) in [
            ("--clock-start", CLOCK_START.to_string()),
            ("--clock-epoch", format!("{:.3}", w.clock_epoch)),
            ("--clock-scale", scale.to_string()),
        ] {
            args.push(flag.into());
            args.push(value);
        }
    }
    args
}

/// Start replica `n` (1-based, `mediconnect-<n>`) listening on `port`; returns its base URL.
pub(crate) async fn start_replica(
    run: &RunDir,
    n: u32,
    port: u16,
    w: &TargetWiring,
    wait: Wait,
) -> Result<(ChildProcess, String), EngineError> {
    let mut cmd = Command::new(workspace_binary("mediconnect")?);
    cmd.args(replica_args(w, &format!("127.0.0.1:{port}")))
        .env("RUST_LOG", "info");
    let name = chaos_model::Node::replica_name(n);
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
    let url = match wait {
        Wait::Ready => format!("{base}/health/readiness"),
        Wait::Live => format!("{base}/health/liveness"),
    };
    wait_ready(&mut child, Duration::from_secs(30), || {
        let req = http.get(&url);
        async move { req.send().await.is_ok_and(|r| r.status().is_success()) }
    })
    .await?;
    Ok((child, base))
}
