//! Environments: the running services of one run. `local` starts them as child processes,
//! `docker` as containers through testcontainers; [`Env`] is either, with one set of
//! operations (the faults' and the runner's), so every scenario runs unchanged on both.

pub mod docker;
mod local;
mod ports;
mod postgres;
mod process;
mod rabbitmq;
mod ready;
mod reaper;
mod redis;
mod rundir;
mod stubs;
mod target;

use std::path::Path;

use chaos_model::{EnvKind, Node, Profile, ServiceClock};

pub use docker::DockerEnv;
pub use local::{Endpoints, LocalEnv, runs_root};
pub use ports::free_port;
pub use process::{ChildProcess, RUN_ID_ENV};
pub use reaper::{processes_of_run, reap_leftovers};
pub use rundir::RunDir;

use crate::error::EngineError;
use crate::proxy::ToxiproxyClient;

#[derive(Debug, Clone)]
pub struct EnvConfig {
    pub run_id: String,
    pub profile: Profile,
    pub replicas: u32,
    pub providers: u32,
    pub patients: u32,
    /// Seeds the proxies' randomness (jitter, toxicity).
    pub seed: u64,
    /// The target's settings (clock, poller, rate limit).
    pub options: chaos_model::TargetOptions,
    /// Keep the run directory (data, logs) after shutdown.
    pub keep_dir: bool,
    /// Where the services run.
    pub kind: EnvKind,
    /// On docker: whether missing images are built first or are an error.
    pub images: docker::images::Build,
}

/// A running environment of either kind. Made once per run and held behind an `Arc`, so
/// the size difference of its variants costs nothing.
#[allow(clippy::large_enum_variant)]
pub enum Env {
    Local(LocalEnv),
    Docker(DockerEnv),
}

/// The same call on whichever environment this is.
macro_rules! each {
    ($self:expr, $e:ident => $body:expr) => {
        match $self {
            Env::Local($e) => $body,
            Env::Docker($e) => $body,
        }
    };
}

impl Env {
    /// Start every service, the proxies and the target; ready when this returns. On error,
    /// everything started so far is removed again.
    pub async fn start(
        cfg: &EnvConfig,
        progress: &(dyn Fn(String) + Sync),
    ) -> Result<Env, EngineError> {
        Ok(match cfg.kind {
            EnvKind::Local => Env::Local(LocalEnv::start(cfg, progress).await?),
            EnvKind::Docker => Env::Docker(DockerEnv::start(cfg, progress).await?),
        })
    }

    pub fn kind(&self) -> EnvKind {
        match self {
            Env::Local(_) => EnvKind::Local,
            Env::Docker(_) => EnvKind::Docker,
        }
    }

    pub fn endpoints(&self) -> &Endpoints {
        each!(self, e => e.endpoints())
    }

    /// Seconds each service took from its start to its readiness, and `total`.
    pub fn startup(&self) -> &std::collections::BTreeMap<String, f64> {
        each!(self, e => e.startup())
    }

    pub fn proxy_client(&self) -> &ToxiproxyClient {
        each!(self, e => e.proxy_client())
    }

    pub fn run_id(&self) -> &str {
        each!(self, e => e.run_id())
    }

    pub fn service_clock(&self) -> Option<ServiceClock> {
        each!(self, e => e.service_clock())
    }

    /// Messages RabbitMQ holds, ready or unacknowledged.
    pub async fn broker_held_messages(&self) -> Result<u64, String> {
        each!(self, e => e.broker_held_messages().await)
    }

    /// Kill a node at once (SIGKILL).
    pub async fn kill(&self, node: impl Into<Node>) -> Result<(), EngineError> {
        each!(self, e => e.kill(node.into()).await)
    }

    /// Stop a node gracefully; `true` when it exited by itself within the grace period.
    pub async fn stop(&self, node: impl Into<Node>) -> Result<bool, EngineError> {
        each!(self, e => e.stop(node.into()).await)
    }

    /// Freeze a node: it keeps its connections and answers nothing.
    pub async fn pause(&self, node: impl Into<Node>) -> Result<(), EngineError> {
        each!(self, e => e.pause(node.into()).await)
    }

    pub async fn resume(&self, node: impl Into<Node>) -> Result<(), EngineError> {
        each!(self, e => e.resume(node.into()).await)
    }

    /// Start a killed or stopped node again, with its data, and wait until it serves.
    pub async fn restart(&self, node: impl Into<Node>) -> Result<(), EngineError> {
        each!(self, e => e.restart(node.into()).await)
    }

    /// Cut a node off the run's network (docker only).
    pub async fn partition(&self, node: impl Into<Node>) -> Result<(), EngineError> {
        match self {
            Env::Docker(e) => e.partition(node.into()).await,
            Env::Local(_) => Err(unsupported_partition()),
        }
    }

    /// Connect a partitioned node to the run's network again (docker only).
    pub async fn reconnect(&self, node: impl Into<Node>) -> Result<(), EngineError> {
        match self {
            Env::Docker(e) => e.reconnect(node.into()).await,
            Env::Local(_) => Err(unsupported_partition()),
        }
    }

    /// Save every service's log into `dest`.
    pub async fn copy_logs(&self, dest: &Path) -> Result<(), EngineError> {
        match self {
            Env::Local(e) => e.copy_logs(dest),
            Env::Docker(e) => e.copy_logs(dest).await,
        }
    }

    /// Stop and remove everything of the run.
    pub async fn shutdown(self) {
        each!(self, e => e.shutdown().await)
    }
}

/// How long each part of an environment's start took (for `endpoints.json` and the
/// environment benchmark): each service from its start to its readiness, and the total.
pub(crate) struct Startup {
    began: std::time::Instant,
    parts: std::sync::Mutex<std::collections::BTreeMap<String, f64>>,
}

impl Startup {
    pub(crate) fn begin() -> Startup {
        Startup {
            began: std::time::Instant::now(),
            parts: std::sync::Mutex::default(),
        }
    }

    /// Run `fut`, recording how long it took under `name` when it succeeds.
    pub(crate) async fn time<T, E>(
        &self,
        name: &str,
        fut: impl std::future::Future<Output = Result<T, E>>,
    ) -> Result<T, E> {
        let t = std::time::Instant::now();
        let r = fut.await;
        if r.is_ok() {
            self.parts
                .lock()
                .expect("startup lock")
                .insert(name.to_string(), t.elapsed().as_secs_f64());
        }
        r
    }

    /// Record `name` as having taken `took`.
    pub(crate) fn record(&self, name: &str, took: std::time::Duration) {
        self.parts
            .lock()
            .expect("startup lock")
            .insert(name.to_string(), took.as_secs_f64());
    }

    pub(crate) fn finish(self) -> std::collections::BTreeMap<String, f64> {
        let mut parts = self.parts.into_inner().expect("startup lock");
        parts.insert("total".into(), self.began.elapsed().as_secs_f64());
        parts
    }
}

/// RabbitMQ's own cold start on this machine, alone (from its start to its AMQP greeting),
/// in seconds: the floor the environment benchmark measures every environment's start by.
pub async fn rabbitmq_cold_start(run_id: &str) -> Result<f64, EngineError> {
    let run = RunDir::create(run_id)?;
    let spec = rabbitmq::RabbitSpec::new(&run, free_port()?)?;
    let t = std::time::Instant::now();
    let mut procs = spec.start_cold(&run).await?;
    let took = t.elapsed().as_secs_f64();
    procs.broker.kill().await;
    procs.epmd.kill().await;
    Ok(took)
}

fn unsupported_partition() -> EngineError {
    EngineError::Other(
        "a partition needs the docker environment (--env docker): local processes share loopback"
            .into(),
    )
}
