//! The `docker` environment: every service of the local environment as a container of the
//! run's own network, started through testcontainers (`GenericImage` on the images built
//! here), with the harness's toxic proxy as a container too. The target reaches each
//! dependency by the proxy's name on the network; the harness reaches the proxy's API, the
//! stubs, the replicas and each server (for evidence) through ports mapped on 127.0.0.1
//! only, each fixed for the run so a restart or a reconnect comes back where it was.
//! Readiness is the local environment's probes over those ports. The broker boots from the
//! code volumes (`images`), read-only. Faults act through the engine: SIGKILL, a graceful
//! stop, the cgroup freezer, a start with the volume kept, and a partition (the container
//! disconnected from the network while the proxy stays up).

pub mod images;
pub mod reap;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::Duration;

use chaos_model::{Node, Service, ServiceClock};
use futures_util::StreamExt;
use testcontainers::bollard::Docker;
use testcontainers::bollard::models::{
    EndpointSettings, MountVolumeOptions, NetworkConnectRequest, NetworkCreateRequest,
    NetworkDisconnectRequest, PortBinding, VolumeCreateRequest,
};
use testcontainers::bollard::query_parameters::{
    InspectContainerOptions, KillContainerOptionsBuilder, LogsOptionsBuilder,
};
use testcontainers::core::{AccessMode, ExecCommand, IntoContainerPort, Mount, WaitFor};
use testcontainers::runners::AsyncRunner;
use testcontainers::{ContainerAsync, GenericImage, ImageExt};
use tokio::sync::Mutex;

use super::ports::free_port;
use super::postgres::{conninfo, select_one};
use super::rabbitmq::amqp_greeting;
use super::redis::ping;
use super::rundir::RunDir;
use super::stubs::STUBS;
use super::target::{CLOCK_START, TargetWiring, replica_args};
use super::{Endpoints, EnvConfig, Startup};
use crate::error::EngineError;
use crate::proxy::ToxiproxyClient;

/// How long a graceful stop may take before the container is killed (as on local).
const STOP_GRACE: Duration = Duration::from_secs(10);
/// Interval between two readiness probes (each a real protocol exchange).
const PROBE_INTERVAL: Duration = Duration::from_millis(25);
/// How often a start asks the engine whether the container still runs.
const STATE_INTERVAL: Duration = Duration::from_millis(500);
/// The proxy's API inside its container.
const PROXY_API_PORT: u16 = 8474;
/// The port a stub serves its API on inside its container, and its control API.
const STUB_API_PORT: u16 = 8080;
const STUB_CONTROL_PORT: u16 = 8081;
const REPLICA_PORT: u16 = 8080;

/// Where each service listens in its container, and where the proxy listens for it.
fn ports(service: Service) -> (u16, u16) {
    match service {
        Service::Postgres => (5432, 15432),
        Service::Redis => (6379, 16379),
        Service::Rabbitmq => (5672, 15672),
        Service::Twilio => (STUB_API_PORT, 18001),
        Service::Sendgrid => (STUB_API_PORT, 18002),
        Service::Ehr => (STUB_API_PORT, 18003),
    }
}

/// How a container shows it serves: the local environment's probes, on its mapped port.
#[derive(Debug, Clone)]
enum Probe {
    Postgres(u16),
    Redis(u16),
    Rabbitmq(u16),
    /// An HTTP GET answered 2xx.
    Http(String),
}

impl Probe {
    async fn passes(&self, http: &reqwest::Client) -> bool {
        match self {
            Probe::Postgres(port) => select_one(conninfo(*port)).await,
            Probe::Redis(port) => ping(*port).await,
            Probe::Rabbitmq(port) => amqp_greeting(*port).await,
            Probe::Http(url) => http
                .get(url)
                .send()
                .await
                .is_ok_and(|r| r.status().is_success()),
        }
    }
}

/// What a node's container is doing, as the faults left it.
#[derive(Debug, Default)]
struct State {
    down: bool,
    paused: bool,
    partitioned: bool,
}

struct Container {
    inner: ContainerAsync<GenericImage>,
    /// The container's name, also its host name on the run's network.
    name: String,
    /// Ready at the start of a run; after a restart (a dependency may still be down), live.
    ready: Probe,
    live: Probe,
    state: Mutex<State>,
}

/// Removes whatever of the run is left on the engine when dropped (a failed start, a panic,
/// a cancelled run), after the containers' own drops.
struct Cleanup {
    run_id: String,
    armed: bool,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if self.armed {
            reap::remove_own_blocking(&self.run_id);
        }
    }
}

pub struct DockerEnv {
    // Field order is drop order: the containers, then what is left by label, then the
    // run directory (the owner record).
    nodes: BTreeMap<Node, Container>,
    proxy: Option<Container>,
    cleanup: Cleanup,
    docker: Docker,
    network: String,
    client: ToxiproxyClient,
    endpoints: Endpoints,
    clock: Option<ServiceClock>,
    startup: BTreeMap<String, f64>,
    http: reqwest::Client,
    run: RunDir,
}

/// What a container is started with.
struct Spec {
    node: String,
    cmd: Vec<String>,
    /// (container port, host port) pairs published on 127.0.0.1.
    ports: Vec<(u16, u16)>,
    volume: bool,
    /// Code volumes mounted read-only: (volume, directory).
    code: Vec<(String, &'static str)>,
    ready: Probe,
    live: Probe,
    timeout: Duration,
}

impl Drop for DockerEnv {
    fn drop(&mut self) {
        // A run dropped before its shutdown (a panic, Ctrl-C, SIGTERM, a timeout) may be
        // dropped anywhere: in a task aborted while its runtime shuts down, or outside any
        // runtime. testcontainers' own drop blocks on the current runtime there and never
        // returns (seen on Ctrl-C mid-run), so its handles are forgotten and `Cleanup`
        // removes the containers by label, on a thread with a runtime of its own.
        for c in std::mem::take(&mut self.nodes)
            .into_values()
            .chain(self.proxy.take())
        {
            std::mem::forget(c.inner);
        }
    }
}

impl DockerEnv {
    pub async fn start(
        cfg: &EnvConfig,
        progress: &(dyn Fn(String) + Sync),
    ) -> Result<DockerEnv, EngineError> {
        let docker = reap::connect().await?;
        for id in reap::reap_leftovers(&docker).await? {
            progress(format!("reaped the containers of crashed run {id}"));
        }
        // Callers build missing images before a run's clock starts (`images::ensure`); this
        // finds them (or builds them, for a caller that did not).
        let images = images::ensure(cfg.images, progress).await?;
        // The start is timed from here: connecting, reaping and the image check are setup.
        let startup = Startup::begin();
        let mut run = RunDir::create(&cfg.run_id)?;
        run.keep = cfg.keep_dir;
        let network = format!("chaos-{}", cfg.run_id);
        let mut env = DockerEnv {
            nodes: BTreeMap::new(),
            proxy: None,
            cleanup: Cleanup {
                run_id: cfg.run_id.clone(),
                armed: true,
            },
            docker,
            network,
            client: ToxiproxyClient::new("http://127.0.0.1:1"),
            endpoints: Endpoints {
                target: Vec::new(),
                proxy_api: String::new(),
                stubs: BTreeMap::new(),
                services: BTreeMap::new(),
                direct: BTreeMap::new(),
                postgres_direct: String::new(),
            },
            clock: None,
            startup: BTreeMap::new(),
            http: reqwest::Client::builder()
                .no_proxy()
                .timeout(Duration::from_secs(2))
                .build()
                .expect("reqwest client builds"),
            run,
        };
        env.create_network().await?;
        progress(format!(
            "network {}; starting postgres, redis, rabbitmq and stubs as containers of {}",
            env.network, images.app
        ));
        let mut specs = Vec::new();
        for service in [Service::Postgres, Service::Redis, Service::Rabbitmq] {
            let (port, _) = ports(service);
            let host = free_port()?;
            let probe = match service {
                Service::Postgres => Probe::Postgres(host),
                Service::Redis => Probe::Redis(host),
                _ => Probe::Rabbitmq(host),
            };
            env.endpoints
                .direct
                .insert(service.to_string(), format!("127.0.0.1:{host}"));
            if service == Service::Postgres {
                env.endpoints.postgres_direct = conninfo(host);
            }
            specs.push((
                Some(Node::Service(service)),
                Spec {
                    node: service.to_string(),
                    cmd: vec!["/usr/local/bin/chaos-service".into(), service.to_string()],
                    ports: vec![(port, host)],
                    volume: true,
                    // The broker boots from the host's file system, not the image's.
                    code: if service == Service::Rabbitmq {
                        images.code_volumes()
                    } else {
                        Vec::new()
                    },
                    live: probe.clone(),
                    ready: probe,
                    // RabbitMQ's cold start on an overlay file system takes seconds.
                    timeout: Duration::from_secs(90),
                },
            ));
        }
        for name in STUBS {
            let service: Service = name.parse().expect("stub names are services");
            let (api, control) = (free_port()?, free_port()?);
            let control_url = format!("http://127.0.0.1:{control}/{name}");
            env.endpoints
                .direct
                .insert(name.to_string(), format!("127.0.0.1:{api}"));
            env.endpoints
                .stubs
                .insert(name.to_string(), control_url.clone());
            let probe = Probe::Http(format!("{control_url}/calls"));
            specs.push((
                Some(Node::Service(service)),
                Spec {
                    node: name.to_string(),
                    cmd: [
                        "/usr/local/bin/stubs",
                        "--only",
                        name,
                        "--listen",
                        &format!("0.0.0.0:{STUB_API_PORT}"),
                        "--control",
                        &format!("0.0.0.0:{STUB_CONTROL_PORT}"),
                        "--journal",
                        &format!("/data/{name}.journal"),
                    ]
                    .map(String::from)
                    .to_vec(),
                    ports: vec![(STUB_API_PORT, api), (STUB_CONTROL_PORT, control)],
                    volume: true,
                    code: Vec::new(),
                    live: probe.clone(),
                    ready: probe,
                    timeout: Duration::from_secs(30),
                },
            ));
        }
        // The proxy needs nothing to start: it starts beside the services, and its
        // proxies are made once they are up.
        let api_port = free_port()?;
        let api = format!("http://127.0.0.1:{api_port}");
        // Each proxy's listen port is published too, so a person at `chaos up` (or a test)
        // reaches every service through its proxy as the target does.
        let mut proxy_ports = vec![(PROXY_API_PORT, api_port)];
        let mut published = BTreeMap::new();
        for name in ["postgres", "redis", "rabbitmq", "twilio", "sendgrid", "ehr"] {
            let service: Service = name.parse().expect("a service name");
            let host = free_port()?;
            proxy_ports.push((ports(service).1, host));
            published.insert(service, format!("127.0.0.1:{host}"));
        }
        specs.push((
            None,
            Spec {
                node: "proxy".into(),
                cmd: [
                    "/usr/local/bin/chaos",
                    "proxy",
                    "--api",
                    &format!("0.0.0.0:{PROXY_API_PORT}"),
                    "--seed",
                    &cfg.seed.to_string(),
                ]
                .map(String::from)
                .to_vec(),
                ports: proxy_ports,
                volume: false,
                code: Vec::new(),
                ready: Probe::Http(format!("{api}/version")),
                live: Probe::Http(format!("{api}/version")),
                timeout: Duration::from_secs(30),
            },
        ));
        // RabbitMQ's cold start is the critical path: its container is created first, so
        // the engine's work on the others (each create costs a second of CPU on an overlay
        // file system) overlaps its boot instead of delaying it.
        let rabbit_at = specs
            .iter()
            .position(|(n, _)| *n == Some(Node::Service(Service::Rabbitmq)))
            .expect("rabbitmq is among the services");
        let (rabbit_node, rabbit_spec) = specs.remove(rabbit_at);
        let timeouts: Vec<Duration> = std::iter::once(rabbit_spec.timeout)
            .chain(specs.iter().map(|(_, s)| s.timeout))
            .collect();
        let names: Vec<String> = std::iter::once(rabbit_spec.node.clone())
            .chain(specs.iter().map(|(_, s)| s.node.clone()))
            .collect();
        // Each service is timed from its own launch to its readiness.
        let rabbit_at = std::time::Instant::now();
        let mut launched = vec![(
            rabbit_node,
            env.launch(&images.app, rabbit_spec).await?,
            rabbit_at,
        )];
        {
            let (env, app) = (&env, &images.app);
            launched.extend(
                futures_util::future::try_join_all(specs.into_iter().map(
                    |(node, spec)| async move {
                        let at = std::time::Instant::now();
                        Ok::<_, EngineError>((node, env.launch(app, spec).await?, at))
                    },
                ))
                .await?,
            );
        }
        {
            let (env, startup) = (&env, &startup);
            futures_util::future::try_join_all(launched.iter().zip(&timeouts).zip(&names).map(
                |(((_, c, at), timeout), name)| async move {
                    env.wait(c, &c.ready, *timeout).await?;
                    startup.record(name, at.elapsed());
                    Ok::<_, EngineError>(())
                },
            ))
            .await?;
        }
        let started = launched.into_iter().map(|(node, c, _)| (node, c));
        for (node, c) in started {
            match node {
                Some(node) => {
                    env.nodes.insert(node, c);
                }
                None => env.proxy = Some(c),
            }
        }
        let proxy = env
            .proxy
            .as_ref()
            .expect("the proxy was started with the services");
        let proxy_host = proxy.name.clone();
        env.client = ToxiproxyClient::new(&api);
        env.endpoints.proxy_api = api;
        let mut services = BTreeMap::new();
        for (node, c) in &env.nodes {
            let Node::Service(service) = *node else {
                continue;
            };
            let (port, listen) = ports(service);
            env.client
                .create_proxy(
                    service.as_str(),
                    &format!("0.0.0.0:{listen}"),
                    &format!("{}:{port}", c.name),
                )
                .await?;
            services.insert(service, format!("{proxy_host}:{listen}"));
        }
        // What the harness and people use: the proxies' ports published on 127.0.0.1 (the
        // target uses the names on the network, in `services`).
        env.endpoints.services = published
            .iter()
            .map(|(s, a)| (s.to_string(), a.clone()))
            .collect();
        let wiring = TargetWiring::through(cfg, |s| services[&s].clone());
        progress(format!(
            "starting {} mediconnect replica(s) as containers, profile {}",
            cfg.replicas, cfg.profile
        ));
        for n in 1..=cfg.replicas {
            let host = free_port()?;
            let base = format!("http://127.0.0.1:{host}");
            let mut cmd = vec!["/usr/local/bin/mediconnect".to_string()];
            cmd.extend(replica_args(&wiring, &format!("0.0.0.0:{REPLICA_PORT}")));
            let c = startup
                .time(
                    &Node::replica_name(n),
                    env.run_container(
                        &images.app,
                        Spec {
                            node: Node::replica_name(n),
                            cmd,
                            ports: vec![(REPLICA_PORT, host)],
                            volume: false,
                            code: Vec::new(),
                            ready: Probe::Http(format!("{base}/health/readiness")),
                            live: Probe::Http(format!("{base}/health/liveness")),
                            timeout: Duration::from_secs(30),
                        },
                    ),
                )
                .await?;
            env.endpoints.target.push(base);
            env.nodes.insert(Node::Replica(n), c);
        }
        env.startup = startup.finish();
        env.clock = cfg.options.clock_scale.map(|scale| ServiceClock {
            start: CLOCK_START as f64,
            epoch: wiring.clock_epoch,
            scale,
        });
        Ok(env)
    }

    async fn create_network(&self) -> Result<(), EngineError> {
        let exists = self
            .docker
            .inspect_network(
                &self.network,
                None::<testcontainers::bollard::query_parameters::InspectNetworkOptions>,
            )
            .await
            .is_ok();
        if exists {
            return Err(EngineError::Docker(format!(
                "a network named {} exists already: another run with this id, or its leftovers (remove them with `chaos down --all`)",
                self.network
            )));
        }
        self.docker
            .create_network(NetworkCreateRequest {
                name: self.network.clone(),
                driver: Some("bridge".into()),
                labels: Some(reap::labels(&self.run.id)),
                ..Default::default()
            })
            .await
            .map_err(|e| {
                let text = e.to_string();
                let hint = if text.contains("address pools") || text.contains("overlap") {
                    " (the engine has no address range left for a network: `chaos down --all` removes this machine's leftover runs, `docker network prune` unused networks)"
                } else {
                    ""
                };
                EngineError::Docker(format!("create network {}: {text}{hint}", self.network))
            })?;
        Ok(())
    }

    fn container_name(&self, node: &str) -> String {
        format!("chaos-{}-{node}", self.run.id)
    }

    /// Create and start one container, then wait until its probe passes.
    async fn run_container(&self, image: &str, spec: Spec) -> Result<Container, EngineError> {
        let timeout = spec.timeout;
        let c = self.launch(image, spec).await?;
        self.wait(&c, &c.ready, timeout).await?;
        Ok(c)
    }

    /// Create and start one container, without waiting for it to serve.
    async fn launch(&self, image: &str, spec: Spec) -> Result<Container, EngineError> {
        let name = self.container_name(&spec.node);
        let (repo, tag) = image.split_once(':').expect("an image is repo:tag");
        let mut img = GenericImage::new(repo, tag).with_wait_for(WaitFor::Nothing);
        for (port, _) in &spec.ports {
            img = img.with_exposed_port(port.tcp());
        }
        let bindings: HashMap<String, Option<Vec<PortBinding>>> = spec
            .ports
            .iter()
            .map(|(c, h)| {
                (
                    format!("{c}/tcp"),
                    Some(vec![PortBinding {
                        host_ip: Some("127.0.0.1".into()),
                        host_port: Some(h.to_string()),
                    }]),
                )
            })
            .collect();
        let labels = reap::labels(&self.run.id);
        let code_dirs: Vec<&'static str> = spec.code.iter().map(|(_, dir)| *dir).collect();
        let mut req = img
            .with_cmd(spec.cmd.clone())
            .with_container_name(&name)
            .with_network(&self.network)
            .with_labels(labels.clone())
            .with_env_var("RUST_LOG", "info")
            .with_env_var(super::RUN_ID_ENV, &self.run.id)
            .with_host_config_modifier(move |hc| {
                hc.publish_all_ports = Some(false);
                hc.port_bindings = Some(bindings.clone());
                // A run never fills a code volume: one that went missing (removed by a
                // prune of other inputs) is made empty and the broker fails its start,
                // instead of the engine copying into it while another process fills it.
                for m in hc.mounts.iter_mut().flatten() {
                    if m.target.as_deref().is_some_and(|t| code_dirs.contains(&t)) {
                        m.volume_options = Some(MountVolumeOptions {
                            no_copy: Some(true),
                            ..Default::default()
                        });
                    }
                }
            });
        if spec.volume {
            let volume = format!("{name}-data");
            self.docker
                .create_volume(VolumeCreateRequest {
                    name: Some(volume.clone()),
                    labels: Some(labels),
                    ..Default::default()
                })
                .await
                .map_err(|e| {
                    let text = e.to_string();
                    EngineError::Docker(format!(
                        "create volume {volume}: {text}{}",
                        images::full_disk_hint(text.as_bytes())
                    ))
                })?;
            req = req.with_mount(Mount::volume_mount(volume, "/data"));
        }
        for (volume, dir) in &spec.code {
            req = req.with_mount(
                Mount::volume_mount(volume.clone(), *dir).with_access_mode(AccessMode::ReadOnly),
            );
        }
        let inner = req.start().await.map_err(|e| {
            let text = e.to_string();
            let hint = if text.contains("409") || text.contains("Conflict") {
                " (a container of that name exists: a leftover of this machine's runs, which `chaos down --all` removes, or another harness's run with the same id)"
            } else if text.contains("port is already allocated") || text.contains("address already in use") {
                " (a port chosen for it was taken in the meantime: run again)"
            } else {
                images::full_disk_hint(text.as_bytes())
            };
            EngineError::Docker(format!("start container {name}: {text}{hint}"))
        })?;
        let c = Container {
            inner,
            name,
            ready: spec.ready,
            live: spec.live,
            state: Mutex::new(State::default()),
        };
        Ok(c)
    }

    /// Poll `probe` until it passes, the container stops running, or `timeout` passes.
    async fn wait(
        &self,
        c: &Container,
        probe: &Probe,
        timeout: Duration,
    ) -> Result<(), EngineError> {
        let deadline = tokio::time::Instant::now() + timeout;
        // Whether the container still runs is asked of the engine every half second, not
        // at every probe: seven containers polled every 25 ms would keep the engine busy
        // while RabbitMQ boots beside it.
        let mut asked = tokio::time::Instant::now();
        loop {
            if tokio::time::timeout_at(deadline, probe.passes(&self.http)).await == Ok(true) {
                return Ok(());
            }
            let now = tokio::time::Instant::now();
            if now < deadline && now.duration_since(asked) < STATE_INTERVAL {
                tokio::time::sleep(PROBE_INTERVAL).await;
                continue;
            }
            asked = now;
            let running = self.running(c).await;
            if !running {
                return Err(self.start_error(c, "its container exited".into()).await);
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(self
                    .start_error(c, format!("not ready after {timeout:?}"))
                    .await);
            }
            tokio::time::sleep(PROBE_INTERVAL).await;
        }
    }

    async fn start_error(&self, c: &Container, reason: String) -> EngineError {
        let text = self.logs(&c.name).await.unwrap_or_default();
        let log = self.run.log(&c.name);
        let _ = std::fs::write(&log, &text);
        let tail: Vec<&str> = text.lines().rev().take(15).collect();
        EngineError::ServiceStart {
            service: c.name.clone(),
            reason,
            log,
            tail: tail.into_iter().rev().collect::<Vec<_>>().join("\n"),
        }
    }

    async fn logs(&self, name: &str) -> Result<String, String> {
        let mut stream = self.docker.logs(
            name,
            Some(
                LogsOptionsBuilder::new()
                    .stdout(true)
                    .stderr(true)
                    .follow(false)
                    .tail("all")
                    .build(),
            ),
        );
        let mut text = String::new();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| e.to_string())?;
            text.push_str(&String::from_utf8_lossy(&chunk.into_bytes()));
        }
        Ok(text)
    }

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

    pub fn service_clock(&self) -> Option<ServiceClock> {
        self.clock
    }

    fn node(&self, node: Node) -> Result<&Container, EngineError> {
        self.nodes
            .get(&node)
            .ok_or_else(|| EngineError::Other(format!("this environment has no {node}")))
    }

    fn engine_error(
        what: &str,
        node: Node,
    ) -> impl FnOnce(testcontainers::bollard::errors::Error) -> EngineError {
        let what = format!("{what} {node}");
        move |e| EngineError::Docker(format!("{what}: {e}"))
    }

    /// Messages RabbitMQ holds, ready or unacknowledged: rabbitmqctl in its container.
    pub async fn broker_held_messages(&self) -> Result<u64, String> {
        let c = self
            .node(Node::Service(Service::Rabbitmq))
            .map_err(|e| e.to_string())?;
        let cmd = ExecCommand::new([
            "/usr/local/bin/chaos-service",
            "rabbitmqctl",
            "-q",
            "list_queues",
            "messages_ready",
            "messages_unacknowledged",
        ]);
        let read = async {
            let mut r = c
                .inner
                .exec(cmd)
                .await
                .map_err(|e| format!("rabbitmqctl: {e}"))?;
            let out = r
                .stdout_to_vec()
                .await
                .map_err(|e| format!("rabbitmqctl: {e}"))?;
            let err = r.stderr_to_vec().await.unwrap_or_default();
            match r.exit_code().await {
                Ok(Some(0)) => Ok(out),
                _ => Err(format!(
                    "rabbitmqctl: {}",
                    String::from_utf8_lossy(&err).trim()
                )),
            }
        };
        let out = tokio::time::timeout(Duration::from_secs(15), read)
            .await
            .map_err(|_| "rabbitmqctl timed out".to_string())??;
        Ok(String::from_utf8_lossy(&out)
            .split_whitespace()
            .filter_map(|n| n.parse::<u64>().ok())
            .sum())
    }

    /// Whether the engine says the container runs (a container it cannot inspect does not).
    async fn running(&self, c: &Container) -> bool {
        self.docker
            .inspect_container(&c.name, None::<InspectContainerOptions>)
            .await
            .ok()
            .and_then(|i| i.state)
            .and_then(|s| s.running)
            .unwrap_or(false)
    }

    /// Send `signal` to the container's init (tini, which passes it to the process group).
    /// A container that exited by itself already is down, as a local process that died is:
    /// the engine's 409 "is not running" is no error here.
    async fn signal(&self, c: &Container, signal: &str, node: Node) -> Result<(), EngineError> {
        match self
            .docker
            .kill_container(
                &c.name,
                Some(KillContainerOptionsBuilder::new().signal(signal).build()),
            )
            .await
        {
            Ok(()) => Ok(()),
            Err(testcontainers::bollard::errors::Error::DockerResponseServerError {
                status_code: 409,
                ..
            }) if !self.running(c).await => Ok(()),
            Err(e) => Err(Self::engine_error(&format!("send {signal} to"), node)(e)),
        }
    }

    /// SIGKILL and wait until the engine says it stopped; an error if it still runs.
    async fn kill_and_await(&self, c: &Container, node: Node) -> Result<(), EngineError> {
        self.signal(c, "SIGKILL", node).await?;
        if self.await_exit(c, STOP_GRACE).await {
            Ok(())
        } else {
            Err(EngineError::Docker(format!(
                "{node} still runs {STOP_GRACE:?} after SIGKILL (is the engine overloaded?)"
            )))
        }
    }

    /// A frozen container cannot be signalled: thaw it first (it never runs in between, as
    /// the signal follows at once).
    async fn thaw(&self, c: &Container, s: &mut State, node: Node) -> Result<(), EngineError> {
        if s.paused {
            c.inner
                .unpause()
                .await
                .map_err(|e| EngineError::Docker(format!("unpause {node}: {e}")))?;
            s.paused = false;
        }
        Ok(())
    }

    /// SIGKILL the container's processes through the engine.
    pub async fn kill(&self, node: Node) -> Result<(), EngineError> {
        let c = self.node(node)?;
        let mut s = c.state.lock().await;
        if s.down {
            return Err(EngineError::Other(format!("{node} is not running")));
        }
        self.thaw(c, &mut s, node).await?;
        self.kill_and_await(c, node).await?;
        s.down = true;
        Ok(())
    }

    /// SIGTERM (SIGINT to PostgreSQL, as on local) to the container's process group through
    /// tini; killed past the grace period. `true` when it exited by itself.
    pub async fn stop(&self, node: Node) -> Result<bool, EngineError> {
        let c = self.node(node)?;
        let mut s = c.state.lock().await;
        if s.down {
            return Err(EngineError::Other(format!("{node} is not running")));
        }
        self.thaw(c, &mut s, node).await?;
        let signal = if node == Node::Service(Service::Postgres) {
            "SIGINT"
        } else {
            "SIGTERM"
        };
        self.signal(c, signal, node).await?;
        let graceful = self.await_exit(c, STOP_GRACE).await;
        if !graceful {
            tracing::warn!("{node} did not exit within {STOP_GRACE:?} of {signal}: killed");
            self.kill_and_await(c, node).await?;
        }
        s.down = true;
        Ok(graceful)
    }

    /// Whether the container stopped running within `limit`.
    async fn await_exit(&self, c: &Container, limit: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let running = self.running(c).await;
            if !running {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            // Polling the engine: its wait endpoint holds a connection per waiter.
            tokio::time::sleep(PROBE_INTERVAL).await;
        }
    }

    /// Freeze every process of the container (the cgroup freezer).
    pub async fn pause(&self, node: Node) -> Result<(), EngineError> {
        let c = self.node(node)?;
        let mut s = c.state.lock().await;
        if s.down {
            return Err(EngineError::Other(format!("{node} is not running")));
        }
        c.inner
            .pause()
            .await
            .map_err(|e| EngineError::Docker(format!("pause {node}: {e}")))?;
        s.paused = true;
        Ok(())
    }

    pub async fn resume(&self, node: Node) -> Result<(), EngineError> {
        let c = self.node(node)?;
        let mut s = c.state.lock().await;
        if !s.paused {
            return Err(EngineError::Other(format!("{node} is not paused")));
        }
        self.thaw(c, &mut s, node).await
    }

    /// Start a killed or stopped container again: same container, same volume, same
    /// ports; then wait until it serves (a replica: live).
    pub async fn restart(&self, node: Node) -> Result<(), EngineError> {
        let c = self.node(node)?;
        let mut s = c.state.lock().await;
        if !s.down {
            return Err(EngineError::Other(format!("{node} is already running")));
        }
        c.inner
            .start()
            .await
            .map_err(|e| EngineError::Docker(format!("start {node} again: {e}")))?;
        s.down = false;
        self.wait(c, &c.live, Duration::from_secs(90)).await
    }

    /// Disconnect the container from the run's network: the proxy stays up, but its
    /// connections to the node (and the node's to anything) fail.
    pub async fn partition(&self, node: Node) -> Result<(), EngineError> {
        let c = self.node(node)?;
        let mut s = c.state.lock().await;
        if s.partitioned {
            return Err(EngineError::Other(format!("{node} is partitioned already")));
        }
        self.docker
            .disconnect_network(
                &self.network,
                NetworkDisconnectRequest {
                    container: c.name.clone(),
                    force: Some(true),
                },
            )
            .await
            .map_err(Self::engine_error("disconnect", node))?;
        s.partitioned = true;
        Ok(())
    }

    /// Connect a partitioned container to the network again, under the same name.
    pub async fn reconnect(&self, node: Node) -> Result<(), EngineError> {
        let c = self.node(node)?;
        let mut s = c.state.lock().await;
        if !s.partitioned {
            return Err(EngineError::Other(format!("{node} is not partitioned")));
        }
        self.docker
            .connect_network(
                &self.network,
                NetworkConnectRequest {
                    container: c.name.clone(),
                    endpoint_config: Some(EndpointSettings::default()),
                },
            )
            .await
            .map_err(Self::engine_error("reconnect", node))?;
        s.partitioned = false;
        Ok(())
    }

    /// Save every container's log (stdout and stderr, as the engine kept them across
    /// restarts) as `<node>.log` in `dest`.
    pub async fn copy_logs(&self, dest: &Path) -> Result<(), EngineError> {
        std::fs::create_dir_all(dest)
            .map_err(EngineError::io(format!("create {}", dest.display())))?;
        let all = self
            .nodes
            .iter()
            .map(|(n, c)| (n.to_string(), c))
            .chain(self.proxy.iter().map(|c| ("proxy".to_string(), c)));
        for (node, c) in all {
            let text = self
                .logs(&c.name)
                .await
                .unwrap_or_else(|e| format!("(the engine gave no log: {e})\n"));
            let p = dest.join(format!("{node}.log"));
            std::fs::write(&p, text).map_err(EngineError::io(format!("write {}", p.display())))?;
        }
        Ok(())
    }

    /// Remove every container (at once), then the network and the volumes.
    pub async fn shutdown(mut self) {
        let containers: Vec<Container> = std::mem::take(&mut self.nodes)
            .into_values()
            .chain(self.proxy.take())
            .collect();
        let removals = containers.into_iter().map(|c| async move {
            if let Err(e) = c.inner.rm().await {
                tracing::warn!("remove container {}: {e}", c.name);
            }
        });
        futures_util::future::join_all(removals).await;
        for p in reap::remove_own(&self.docker, &self.run.id).await {
            tracing::warn!("cleaning up run {}: {p}", self.run.id);
        }
        self.cleanup.armed = false;
    }
}
