//! The `local` environment: PostgreSQL, Redis and RabbitMQ from the OS packages, the stubs
//! and the target replicas, all children of the harness on loopback ports, with every link
//! from the target to a dependency going through a toxic proxy. Every process is a node the
//! faults can kill, stop or pause, each behind its own lock, so faults on different nodes
//! proceed at once.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use chaos_model::{Node, Service, ServiceClock};
use nix::sys::signal::Signal as Sig;
use tokio::sync::Mutex;

use super::ports::free_port;
use super::postgres::PostgresSpec;
use super::process::ChildProcess;
use super::rabbitmq::{RabbitProcs, RabbitSpec};
use super::redis::RedisSpec;
use super::rundir::RunDir;
use super::stubs::{STUBS, StubSpec};
use super::target::{CLOCK_START, TargetWiring, Wait, start_replica};
use super::{EnvConfig, Startup, reaper, rundir};
use crate::error::EngineError;
use crate::proxy::{ProxyServer, ToxiproxyClient};

/// Where everything of a running environment can be reached.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Endpoints {
    /// Base URLs of the target replicas: `mediconnect-1` first.
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

/// How a node is started, and started again after a kill or a stop.
enum Starter {
    Postgres(PostgresSpec),
    Redis(RedisSpec),
    Rabbitmq(RabbitSpec),
    Stub(StubSpec),
    Replica { n: u32, port: u16 },
}

/// One node's process: absent while killed or stopped.
struct Running {
    child: Option<ChildProcess>,
    paused: bool,
}

struct NodeSlot {
    starter: Starter,
    running: Mutex<Running>,
}

/// How long a graceful stop may take before the process is killed.
const STOP_GRACE: Duration = Duration::from_secs(10);

pub struct LocalEnv {
    // Field order is drop order: the processes first, the run directory last.
    nodes: BTreeMap<Node, NodeSlot>,
    rabbit_epmd: ChildProcess,
    /// Held for its lifetime: dropping it stops the API and every proxy.
    _proxy: ProxyServer,
    client: ToxiproxyClient,
    wiring: TargetWiring,
    endpoints: Endpoints,
    clock: Option<ServiceClock>,
    startup: BTreeMap<String, f64>,
    run: RunDir,
}

impl LocalEnv {
    /// Start every service, the proxies and the target; ready when this returns. On error,
    /// everything started so far is stopped again.
    pub async fn start(
        cfg: &EnvConfig,
        progress: &(dyn Fn(String) + Sync),
    ) -> Result<LocalEnv, EngineError> {
        for id in reaper::reap_leftovers() {
            progress(format!("reaped leftovers of crashed run {id}"));
        }
        let startup = Startup::begin();
        let mut run = RunDir::create(&cfg.run_id)?;
        run.keep = cfg.keep_dir;
        progress(format!("run directory {}", run.path.display()));

        let redis_spec = RedisSpec::new(&run, free_port()?)?;
        let rabbit_spec = RabbitSpec::new(&run, free_port()?)?;
        let pg_port = free_port()?;
        let mut stub_specs = Vec::new();
        for name in STUBS {
            stub_specs.push(StubSpec {
                name,
                api: format!("127.0.0.1:{}", free_port()?)
                    .parse()
                    .expect("a loopback address parses"),
                control_port: free_port()?,
            });
        }
        // RabbitMQ's cold start dominates (seconds): everything else starts beside it.
        progress("starting postgres, redis, rabbitmq and stubs".into());
        let (rabbit, (pg_spec, postgres), redis, stubs) = tokio::try_join!(
            startup.time("rabbitmq", rabbit_spec.start(&run)),
            startup.time("postgres", async {
                let spec = PostgresSpec::prepare(&run, pg_port).await?;
                let child = spec.start(&run).await?;
                Ok::<_, EngineError>((spec, child))
            }),
            startup.time("redis", redis_spec.start(&run)),
            futures_util::future::try_join_all(
                stub_specs
                    .iter()
                    .map(|s| startup.time(s.name, s.start(&run)))
            ),
        )?;
        let RabbitProcs { broker, epmd } = rabbit;

        let proxy = startup
            .time("proxy", ProxyServer::start("127.0.0.1:0", cfg.seed))
            .await?;
        let client = ToxiproxyClient::new(&proxy.url());
        let mut direct = BTreeMap::new();
        direct.insert(Service::Postgres, format!("127.0.0.1:{}", pg_spec.port));
        direct.insert(Service::Redis, format!("127.0.0.1:{}", redis_spec.port));
        direct.insert(Service::Rabbitmq, format!("127.0.0.1:{}", rabbit_spec.port));
        for s in &stub_specs {
            let service: Service = s.name.parse().expect("stub names are services");
            direct.insert(service, s.api.to_string());
        }
        let mut services = BTreeMap::new();
        for (service, upstream) in &direct {
            let info = client
                .create_proxy(service.as_str(), "127.0.0.1:0", upstream)
                .await?;
            services.insert(*service, info.listen);
        }
        let wiring = TargetWiring::through(cfg, |s| services[&s].clone());
        progress(format!(
            "starting {} mediconnect replica(s), profile {}",
            cfg.replicas, cfg.profile
        ));
        let mut nodes = BTreeMap::new();
        let mut urls = Vec::new();
        for n in 1..=cfg.replicas {
            let port = free_port()?;
            let (child, url) = startup
                .time(
                    &Node::replica_name(n),
                    start_replica(&run, n, port, &wiring, Wait::Ready),
                )
                .await?;
            urls.push(url);
            nodes.insert(
                Node::Replica(n),
                NodeSlot::new(Starter::Replica { n, port }, child),
            );
        }
        let endpoints = Endpoints {
            target: urls,
            proxy_api: proxy.url(),
            stubs: stub_specs
                .iter()
                .map(|s| (s.name.to_string(), s.control()))
                .collect(),
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
        nodes.insert(
            Node::Service(Service::Postgres),
            NodeSlot::new(Starter::Postgres(pg_spec), postgres),
        );
        nodes.insert(
            Node::Service(Service::Redis),
            NodeSlot::new(Starter::Redis(redis_spec), redis),
        );
        nodes.insert(
            Node::Service(Service::Rabbitmq),
            NodeSlot::new(Starter::Rabbitmq(rabbit_spec), broker),
        );
        for (spec, child) in stub_specs.into_iter().zip(stubs) {
            let service: Service = spec.name.parse().expect("stub names are services");
            nodes.insert(
                Node::Service(service),
                NodeSlot::new(Starter::Stub(spec), child),
            );
        }
        let clock = cfg.options.clock_scale.map(|scale| ServiceClock {
            start: CLOCK_START as f64,
            epoch: wiring.clock_epoch,
            scale,
        });
        Ok(LocalEnv {
            startup: startup.finish(),
            nodes,
            rabbit_epmd: epmd,
            _proxy: proxy,
            client,
            wiring,
            endpoints,
            clock,
            run,
        })
    }

    /// Seconds each service took to start and become ready, and `total`.
    pub fn startup(&self) -> &BTreeMap<String, f64> {
        &self.startup
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

    /// The service clock the replicas run on, when it runs fast.
    pub fn service_clock(&self) -> Option<ServiceClock> {
        self.clock
    }

    fn slot(&self, node: Node) -> Result<&NodeSlot, EngineError> {
        self.nodes
            .get(&node)
            .ok_or_else(|| EngineError::Other(format!("this environment has no {node}")))
    }

    /// Messages RabbitMQ holds, ready or unacknowledged (see [`RabbitSpec::held_messages`]).
    pub async fn broker_held_messages(&self) -> Result<u64, String> {
        match &self
            .slot(Node::Service(Service::Rabbitmq))
            .map_err(|e| e.to_string())?
            .starter
        {
            Starter::Rabbitmq(spec) => spec.held_messages().await,
            _ => unreachable!("the rabbitmq node is started by its spec"),
        }
    }

    /// SIGKILL a node's process group.
    pub async fn kill(&self, node: impl Into<Node>) -> Result<(), EngineError> {
        let node = node.into();
        let mut r = self.slot(node)?.running.lock().await;
        let mut child = r
            .child
            .take()
            .ok_or_else(|| EngineError::Other(format!("{node} is not running")))?;
        r.paused = false;
        child.kill().await;
        Ok(())
    }

    /// Stop a node gracefully: SIGTERM to its leader (SIGINT to PostgreSQL's postmaster,
    /// whose SIGTERM would wait for every client to leave), then wait for it to exit; past
    /// the grace period it is killed. Either way it is down afterwards; the answer says
    /// whether it went by itself (`true`) or had to be killed.
    pub async fn stop(&self, node: impl Into<Node>) -> Result<bool, EngineError> {
        let node = node.into();
        let mut r = self.slot(node)?.running.lock().await;
        let mut child = r
            .child
            .take()
            .ok_or_else(|| EngineError::Other(format!("{node} is not running")))?;
        if std::mem::take(&mut r.paused) {
            // A stopped process cannot handle SIGTERM: let it run to hear it.
            child.signal_group(Sig::SIGCONT)?;
        }
        let signal = if node == Node::Service(Service::Postgres) {
            Sig::SIGINT
        } else {
            Sig::SIGTERM
        };
        child.signal_leader(signal)?;
        let graceful = child.wait_exit(STOP_GRACE).await;
        // What the leader left behind (or the leader itself) goes now.
        child.kill().await;
        if !graceful {
            tracing::warn!("{node} did not exit within {STOP_GRACE:?} of {signal}: killed");
        }
        Ok(graceful)
    }

    /// SIGSTOP every process of a node: it holds its connections and answers nothing.
    pub async fn pause(&self, node: impl Into<Node>) -> Result<(), EngineError> {
        let node = node.into();
        let mut r = self.slot(node)?.running.lock().await;
        let child = r
            .child
            .as_ref()
            .ok_or_else(|| EngineError::Other(format!("{node} is not running")))?;
        child.signal_group(Sig::SIGSTOP)?;
        r.paused = true;
        Ok(())
    }

    /// SIGCONT a paused node.
    pub async fn resume(&self, node: impl Into<Node>) -> Result<(), EngineError> {
        let node = node.into();
        let mut r = self.slot(node)?.running.lock().await;
        let child = r
            .child
            .as_ref()
            .ok_or_else(|| EngineError::Other(format!("{node} is not running")))?;
        if !r.paused {
            return Err(EngineError::Other(format!("{node} is not paused")));
        }
        child.signal_group(Sig::SIGCONT)?;
        r.paused = false;
        Ok(())
    }

    /// Start a killed or stopped node again, on the same port with the same data, and wait
    /// until it serves (a replica: live, since a dependency may still be down).
    pub async fn restart(&self, node: impl Into<Node>) -> Result<(), EngineError> {
        let node = node.into();
        let slot = self.slot(node)?;
        let mut r = slot.running.lock().await;
        if r.child.is_some() {
            return Err(EngineError::Other(format!("{node} is already running")));
        }
        let child = match &slot.starter {
            Starter::Postgres(spec) => spec.start(&self.run).await?,
            Starter::Redis(spec) => spec.start(&self.run).await?,
            Starter::Rabbitmq(spec) => spec.start_broker(&self.run).await?,
            Starter::Stub(spec) => spec.start(&self.run).await?,
            Starter::Replica { n, port } => {
                start_replica(&self.run, *n, *port, &self.wiring, Wait::Live)
                    .await?
                    .0
            }
        };
        r.child = Some(child);
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

    /// Stop everything, the replicas first, and remove the run directory.
    pub async fn shutdown(mut self) {
        let order: Vec<Node> = self
            .nodes
            .keys()
            .copied()
            .filter(|n| matches!(n, Node::Replica(_)))
            .chain(
                self.nodes
                    .keys()
                    .copied()
                    .filter(|n| matches!(n, Node::Service(_))),
            )
            .collect();
        for node in order {
            let slot = self.nodes.get_mut(&node).expect("listed above");
            if let Some(mut c) = slot.running.get_mut().child.take() {
                c.kill().await;
            }
        }
        self.rabbit_epmd.kill().await;
        drop(self);
    }
}

impl NodeSlot {
    fn new(starter: Starter, child: ChildProcess) -> NodeSlot {
        NodeSlot {
            starter,
            running: Mutex::new(Running {
                child: Some(child),
                paused: false,
            }),
        }
    }
}

/// Where run directories live (for the leftover check in tests).
pub fn runs_root() -> std::path::PathBuf {
    rundir::runs_root()
}
