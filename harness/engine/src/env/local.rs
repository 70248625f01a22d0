//! The `local` environment: PostgreSQL, Redis and RabbitMQ from the OS packages, the stubs
//! and the target replicas, all children of the harness on loopback ports, with every link
//! from the target to a dependency going through a toxic proxy.

use std::collections::BTreeMap;
use std::path::Path;

use chaos_model::{Profile, Service};

use super::ports::free_port;
use super::postgres::{PostgresSpec, conninfo};
use super::process::ChildProcess;
use super::rabbitmq::{RabbitProcs, RabbitSpec};
use super::redis::RedisSpec;
use super::rundir::RunDir;
use super::stubs::{self, StubsProc};
use super::target::{TargetWiring, start_replica};
use super::{reaper, rundir};
use crate::error::EngineError;
use crate::proxy::{ProxyServer, ToxiproxyClient};

#[derive(Debug, Clone)]
pub struct LocalEnvConfig {
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
}

/// Where everything of a running environment can be reached.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Endpoints {
    /// Base URLs of the target replicas.
    pub target: Vec<String>,
    /// The Toxiproxy API controlling every proxy.
    pub proxy_api: String,
    /// Stub name -> base URL of its control API.
    pub stubs: BTreeMap<String, String>,
    /// Service -> the address clients use (its proxy).
    pub services: BTreeMap<String, String>,
    /// Service -> the address of the server itself, bypassing the proxy (for evidence).
    pub direct: BTreeMap<String, String>,
    /// libpq connection string of the database, bypassing the proxy.
    pub postgres_direct: String,
}

pub struct LocalEnv {
    // Field order is drop order: the target first, the run directory last.
    targets: Vec<ChildProcess>,
    stubs: StubsProc,
    redis: Option<ChildProcess>,
    rabbit_broker: Option<ChildProcess>,
    rabbit_epmd: ChildProcess,
    postgres: Option<ChildProcess>,
    /// Held for its lifetime: dropping it stops the API and every proxy.
    _proxy: ProxyServer,
    client: ToxiproxyClient,
    redis_spec: RedisSpec,
    rabbit_spec: RabbitSpec,
    pg_spec: PostgresSpec,
    endpoints: Endpoints,
    run: RunDir,
}

impl LocalEnv {
    /// Start every service, the proxies and the target; ready when this returns. On error,
    /// everything started so far is stopped again.
    pub async fn start(
        cfg: &LocalEnvConfig,
        progress: &(dyn Fn(String) + Sync),
    ) -> Result<LocalEnv, EngineError> {
        for id in reaper::reap_leftovers() {
            progress(format!("reaped leftovers of crashed run {id}"));
        }
        let mut run = RunDir::create(&cfg.run_id)?;
        run.keep = cfg.keep_dir;
        progress(format!("run directory {}", run.path.display()));

        let redis_spec = RedisSpec::new(&run, free_port()?)?;
        let rabbit_spec = RabbitSpec::new(&run, free_port()?)?;
        let pg_port = free_port()?;
        // RabbitMQ's cold start dominates (seconds): everything else starts beside it.
        progress("starting postgres, redis, rabbitmq and stubs".into());
        let (rabbit, (pg_spec, postgres), redis, stubs) = tokio::try_join!(
            rabbit_spec.start(&run),
            async {
                let spec = PostgresSpec::prepare(&run, pg_port).await?;
                let child = spec.start(&run).await?;
                Ok::<_, EngineError>((spec, child))
            },
            redis_spec.start(&run),
            stubs::start(&run),
        )?;
        let RabbitProcs { broker, epmd } = rabbit;

        let proxy = ProxyServer::start("127.0.0.1:0", cfg.seed).await?;
        let client = ToxiproxyClient::new(&proxy.url());
        let mut direct = BTreeMap::new();
        direct.insert(Service::Postgres, format!("127.0.0.1:{}", pg_spec.port));
        direct.insert(Service::Redis, format!("127.0.0.1:{}", redis_spec.port));
        direct.insert(Service::Rabbitmq, format!("127.0.0.1:{}", rabbit_spec.port));
        direct.insert(Service::Twilio, stubs.apis["twilio"].to_string());
        direct.insert(Service::Sendgrid, stubs.apis["sendgrid"].to_string());
        direct.insert(Service::Ehr, stubs.apis["ehr"].to_string());
        let mut services = BTreeMap::new();
        for (service, upstream) in &direct {
            let info = client
                .create_proxy(service.as_str(), "127.0.0.1:0", upstream)
                .await?;
            services.insert(*service, info.listen);
        }
        let port_of = |s: Service| -> u16 {
            services[&s]
                .rsplit(':')
                .next()
                .and_then(|p| p.parse().ok())
                .expect("proxy listen has a port")
        };
        let wiring = TargetWiring {
            profile: cfg.profile,
            postgres: conninfo(port_of(Service::Postgres)),
            redis: format!("redis://127.0.0.1:{}", port_of(Service::Redis)),
            amqp: format!(
                "amqp://guest:guest@127.0.0.1:{}/%2f?heartbeat=5&connection_timeout=2000",
                port_of(Service::Rabbitmq)
            ),
            twilio: format!("http://127.0.0.1:{}", port_of(Service::Twilio)),
            sendgrid: format!("http://127.0.0.1:{}", port_of(Service::Sendgrid)),
            ehr: format!("http://127.0.0.1:{}/fhir", port_of(Service::Ehr)),
            providers: cfg.providers,
            patients: cfg.patients,
            options: cfg.options.clone(),
            clock_epoch: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64()),
        };
        progress(format!(
            "starting {} mediconnect replica(s), profile {}",
            cfg.replicas, cfg.profile
        ));
        let mut targets = Vec::new();
        let mut urls = Vec::new();
        for i in 0..cfg.replicas as usize {
            let (child, url) = start_replica(&run, i, &wiring).await?;
            targets.push(child);
            urls.push(url);
        }
        let endpoints = Endpoints {
            target: urls,
            proxy_api: proxy.url(),
            stubs: stubs.controls.clone(),
            services: services
                .iter()
                .map(|(s, a)| (s.to_string(), a.clone()))
                .collect(),
            direct: direct
                .iter()
                .map(|(s, a)| (s.to_string(), a.clone()))
                .collect(),
            postgres_direct: pg_spec.conninfo(),
        };
        Ok(LocalEnv {
            targets,
            stubs,
            redis: Some(redis),
            rabbit_broker: Some(broker),
            rabbit_epmd: epmd,
            postgres: Some(postgres),
            _proxy: proxy,
            client,
            redis_spec,
            rabbit_spec,
            pg_spec,
            endpoints,
            run,
        })
    }

    pub fn endpoints(&self) -> &Endpoints {
        &self.endpoints
    }

    pub fn proxy_client(&self) -> &ToxiproxyClient {
        &self.client
    }

    pub fn run_id(&self) -> &str {
        &self.run.id
    }

    fn slot(&mut self, service: Service) -> Result<&mut Option<ChildProcess>, EngineError> {
        match service {
            Service::Postgres => Ok(&mut self.postgres),
            Service::Redis => Ok(&mut self.redis),
            Service::Rabbitmq => Ok(&mut self.rabbit_broker),
            Service::Twilio | Service::Sendgrid | Service::Ehr => Err(EngineError::Other(format!(
                "{service} is a stub: it has no process to kill (use a toxic or its knobs)"
            ))),
        }
    }

    /// SIGKILL a service's process group.
    pub async fn kill(&mut self, service: Service) -> Result<(), EngineError> {
        let slot = self.slot(service)?;
        let mut child = slot
            .take()
            .ok_or_else(|| EngineError::Other(format!("{service} is not running")))?;
        child.kill().await;
        Ok(())
    }

    /// Start a killed service again, on the same port with the same data directory.
    pub async fn restart(&mut self, service: Service) -> Result<(), EngineError> {
        if self.slot(service)?.is_some() {
            return Err(EngineError::Other(format!("{service} is already running")));
        }
        let child = match service {
            Service::Postgres => self.pg_spec.start(&self.run).await?,
            Service::Redis => self.redis_spec.start(&self.run).await?,
            Service::Rabbitmq => self.rabbit_spec.start_broker(&self.run).await?,
            Service::Twilio | Service::Sendgrid | Service::Ehr => {
                unreachable!("rejected by slot()")
            }
        };
        *self.slot(service)? = Some(child);
        Ok(())
    }

    /// Copy every service's log into `dest`.
    pub fn copy_logs(&self, dest: &Path) -> Result<(), EngineError> {
        std::fs::create_dir_all(dest)
            .map_err(EngineError::io(format!("create {}", dest.display())))?;
        let entries = std::fs::read_dir(&self.run.path).map_err(EngineError::io("read run dir"))?;
        for e in entries.flatten() {
            let p = e.path();
            if p.extension().is_some_and(|x| x == "log") {
                let _ = std::fs::copy(&p, dest.join(e.file_name()));
            }
        }
        Ok(())
    }

    /// Stop everything, targets first, and remove the run directory.
    pub async fn shutdown(mut self) {
        for t in &mut self.targets {
            t.kill().await;
        }
        self.stubs.child.kill().await;
        for c in [
            self.redis.as_mut(),
            self.rabbit_broker.as_mut(),
            self.postgres.as_mut(),
        ]
        .into_iter()
        .flatten()
        {
            c.kill().await;
        }
        self.rabbit_epmd.kill().await;
        drop(self);
    }
}

/// Where run directories live (for the leftover check in tests).
pub fn runs_root() -> std::path::PathBuf {
    rundir::runs_root()
}
