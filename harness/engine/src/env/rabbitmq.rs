//! RabbitMQ from Debian's `rabbitmq-server`, as a child with its own ports, data and log
//! directories, and its own `epmd` on a private port (so nothing outlives the run); its node
//! directory copied from a cached template that one cold boot initialised.

use std::path::PathBuf;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::Command;

use super::ports::free_port;
use super::process::{ChildProcess, drop_root};
use super::ready::wait_ready;
use super::rundir::{RunDir, copy_dir};
use crate::error::EngineError;

const SERVER: &str = "/usr/lib/rabbitmq/bin/rabbitmq-server";
const CTL: &str = "/usr/lib/rabbitmq/bin/rabbitmqctl";
/// One name for every run's node: each registers with an epmd of its own on a private port,
/// so two runs' nodes never meet, and one template serves every run (Mnesia's schema names
/// its node, so a node directory is valid only under the name it was made with).
const NODE: &str = "chaos@localhost";
/// How long a template's broker may take to stop cleanly before the template is abandoned.
const TEMPLATE_STOP: Duration = Duration::from_secs(30);
/// The file that makes a cached template directory a whole template.
const TEMPLATE_MARK: &str = "complete";

pub(crate) struct RabbitSpec {
    pub port: u16,
    dist_port: u16,
    epmd_port: u16,
    dir: PathBuf,
    run_id: String,
    /// Appended to its logs' names: `rabbitmq.log` and `epmd.log` for a run's node,
    /// `rabbitmq-template.log` for the one that makes the template.
    label: &'static str,
}

/// A RabbitMQ node: the broker and the epmd it registers with.
pub(crate) struct RabbitProcs {
    pub broker: ChildProcess,
    pub epmd: ChildProcess,
}

impl RabbitSpec {
    pub fn new(run: &RunDir, port: u16) -> Result<RabbitSpec, EngineError> {
        if !std::path::Path::new(SERVER).exists() {
            return Err(EngineError::MissingProgram(
                "rabbitmq-server (apt-get install rabbitmq-server)".into(),
            ));
        }
        RabbitSpec::in_dir(run.sub("rabbitmq")?, port, &run.id, "")
    }

    fn in_dir(
        dir: PathBuf,
        port: u16,
        run_id: &str,
        label: &'static str,
    ) -> Result<RabbitSpec, EngineError> {
        Ok(RabbitSpec {
            port,
            dist_port: free_port()?,
            epmd_port: free_port()?,
            dir,
            run_id: run_id.to_string(),
            label,
        })
    }

    /// The node's epmd, then the broker on a copy of the cached template's node directory
    /// (made by one cold boot on first use): a node that finds its database initialised
    /// skips the first boot's schema creation and seeding. The template is an optimisation:
    /// when it cannot be made or copied, the node boots cold, and the log says why.
    pub async fn start(&self, run: &RunDir) -> Result<RabbitProcs, EngineError> {
        let copied = match template_dir(run).await {
            Ok(template) => copy_dir(&template.join("mnesia"), &self.dir.join("mnesia")).await,
            Err(e) => Err(e),
        };
        if let Err(e) = copied {
            tracing::warn!("RabbitMQ boots cold: no template node directory ({e})");
            let _ = std::fs::remove_dir_all(self.dir.join("mnesia"));
        }
        self.boot(run).await
    }

    /// A cold boot from an empty node directory: the environment benchmark's floor.
    pub async fn start_cold(&self, run: &RunDir) -> Result<RabbitProcs, EngineError> {
        self.boot(run).await
    }

    /// The node's epmd, then the broker on whatever node directory it has.
    async fn boot(&self, run: &RunDir) -> Result<RabbitProcs, EngineError> {
        let mut epmd_cmd = Command::new("epmd");
        epmd_cmd.args([
            "-port",
            &self.epmd_port.to_string(),
            "-address",
            "127.0.0.1",
        ]);
        let log = run.log(&format!("epmd{}", self.label));
        let epmd = ChildProcess::spawn("epmd", epmd_cmd, &run.id, &log, false)?;
        let broker = self.start_broker(run).await?;
        Ok(RabbitProcs { broker, epmd })
    }

    /// Start (or restart) the broker alone, registering with the node's running epmd.
    pub async fn start_broker(&self, run: &RunDir) -> Result<ChildProcess, EngineError> {
        std::fs::write(self.dir.join("enabled_plugins"), "[].\n")
            .map_err(EngineError::io("write enabled_plugins"))?;
        let d = |sub: &str| self.dir.join(sub).to_string_lossy().into_owned();
        let mut cmd = self.node_command(SERVER);
        cmd.env("RABBITMQ_NODE_IP_ADDRESS", "127.0.0.1")
            .env("RABBITMQ_NODE_PORT", self.port.to_string())
            .env("RABBITMQ_DIST_PORT", self.dist_port.to_string())
            .env("RABBITMQ_MNESIA_BASE", d("mnesia"))
            .env("RABBITMQ_LOG_BASE", d("log"))
            .env("RABBITMQ_LOGS", "-")
            .env("RABBITMQ_ENABLED_PLUGINS_FILE", d("enabled_plugins"))
            .env("RABBITMQ_CONFIG_FILE", d("rabbitmq"))
            .env("RABBITMQ_PID_FILE", d("pid"));
        drop_root(&mut cmd, "rabbitmq", &self.dir)?;
        let log = run.log(&format!("rabbitmq{}", self.label));
        let mut broker = ChildProcess::spawn("rabbitmq", cmd, &run.id, &log, false)?;
        let port = self.port;
        wait_ready(&mut broker, Duration::from_secs(60), || amqp_greeting(port)).await?;
        Ok(broker)
    }
}

impl RabbitSpec {
    /// A program of this node (the server, rabbitmqctl): run in its directory with a clean
    /// environment naming the node and its epmd.
    fn node_command(&self, program: &str) -> Command {
        let mut cmd = Command::new(program);
        cmd.current_dir(&self.dir)
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("HOME", &self.dir)
            .env("LANG", "C.UTF-8")
            .env("RABBITMQ_NODENAME", NODE)
            .env("ERL_EPMD_PORT", self.epmd_port.to_string());
        cmd
    }

    /// Messages the broker holds, ready or delivered and not yet acknowledged, over every
    /// queue, by `rabbitmqctl list_queues` (a passive declare counts only ready ones, and a
    /// consumer that holds a message while it waits to retry holds it unacknowledged).
    pub async fn held_messages(&self) -> Result<u64, String> {
        let mut cmd = self.node_command(CTL);
        // Marked as the run's own, so the end of the run reaps an Erlang VM a timed-out
        // call left behind.
        cmd.env(super::process::RUN_ID_ENV, &self.run_id)
            .args([
                "-n",
                NODE,
                "-q",
                "list_queues",
                "messages_ready",
                "messages_unacknowledged",
            ])
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true);
        if nix::unistd::geteuid().is_root() {
            let (uid, gid) = super::process::system_user("rabbitmq")
                .ok_or_else(|| "no rabbitmq system user".to_string())?;
            cmd.uid(uid).gid(gid);
        }
        let out = tokio::time::timeout(Duration::from_secs(15), cmd.output())
            .await
            .map_err(|_| "rabbitmqctl timed out".to_string())?
            .map_err(|e| format!("rabbitmqctl: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "rabbitmqctl: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        let text = String::from_utf8_lossy(&out.stdout);
        Ok(text
            .split_whitespace()
            .filter_map(|n| n.parse::<u64>().ok())
            .sum())
    }
}

/// The cached template: `$TMPDIR/chaos/rabbitmq-template-<server>-otp<version>/mnesia`, the
/// node directory of a broker that booted once from nothing and stopped cleanly. Built in the
/// run's own directory and renamed into place, so concurrent runs never see half of one.
async fn template_dir(run: &RunDir) -> Result<PathBuf, EngineError> {
    let server = std::fs::canonicalize(SERVER)
        .ok()
        .and_then(|p| {
            Some(
                p.parent()?
                    .parent()?
                    .file_name()?
                    .to_string_lossy()
                    .into_owned(),
            )
        })
        .unwrap_or_else(|| "rabbitmq".into());
    let otp = std::fs::read_dir("/usr/lib/erlang/releases")
        .ok()
        .into_iter()
        .flatten()
        .filter_map(|e| std::fs::read_to_string(e.ok()?.path().join("OTP_VERSION")).ok())
        .map(|v| v.trim().to_string())
        .max()
        .unwrap_or_default();
    let cache = std::env::temp_dir()
        .join("chaos")
        .join(format!("rabbitmq-template-{server}-otp{otp}"));
    // Written last, inside the template before it is renamed into place: a cache without it
    // is no template (a tmp cleaner's leftovers, an older layout) and is replaced.
    let complete = cache.join(TEMPLATE_MARK);
    if complete.is_file() {
        return Ok(cache);
    }
    if cache.exists() {
        let _ = std::fs::remove_dir_all(&cache);
    }
    let staging = run.sub("rabbitmq-template")?;
    let spec = RabbitSpec::in_dir(staging.join("node"), free_port()?, &run.id, "-template")?;
    std::fs::create_dir_all(&spec.dir).map_err(EngineError::io("create template node dir"))?;
    let mut procs = spec.boot(run).await?;
    // SIGTERM to the server script: it asks the node to stop, which syncs its database.
    procs
        .broker
        .signal_leader(nix::sys::signal::Signal::SIGTERM)?;
    let clean = procs.broker.wait_exit(TEMPLATE_STOP).await;
    let stopped = if clean {
        Ok(())
    } else {
        Err(super::ready::start_error(
            &procs.broker,
            format!("the template's broker did not stop within {TEMPLATE_STOP:?} of SIGTERM"),
        ))
    };
    procs.broker.kill().await;
    procs.epmd.kill().await;
    stopped?;
    // The script exits 0 however the node ended: a node that stopped cleanly left its
    // schema and the record of the nodes running at its shutdown.
    let node_dir = spec.dir.join("mnesia").join(NODE);
    for f in ["schema.DAT", "nodes_running_at_shutdown"] {
        if !node_dir.join(f).is_file() {
            return Err(EngineError::Other(format!(
                "the template's broker stopped without writing {f}: not installed as a template"
            )));
        }
    }
    let made = staging.join("template");
    std::fs::create_dir_all(&made).map_err(EngineError::io("create template dir"))?;
    std::fs::rename(spec.dir.join("mnesia"), made.join("mnesia"))
        .map_err(EngineError::io("move the template's node directory"))?;
    std::fs::write(made.join(TEMPLATE_MARK), format!("{server} otp{otp}\n"))
        .map_err(EngineError::io("mark the template complete"))?;
    std::fs::create_dir_all(cache.parent().expect("the cache has a parent"))
        .map_err(EngineError::io("create the template cache"))?;
    match std::fs::rename(&made, &cache) {
        Ok(()) => Ok(cache),
        // Another run won the race; its template is as good as ours.
        Err(_) if complete.is_file() => Ok(cache),
        Err(e) => Err(EngineError::Io {
            what: format!("install {}", cache.display()),
            source: e,
        }),
    }
}

/// Send the AMQP 0-9-1 protocol header; a ready broker answers with a method frame
/// (type 1) on channel 0: connection.start.
pub(crate) async fn amqp_greeting(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)).await else {
        return false;
    };
    if s.write_all(b"AMQP\x00\x00\x09\x01").await.is_err() {
        return false;
    }
    let mut head = [0u8; 3];
    s.read_exact(&mut head).await.is_ok() && head == [1, 0, 0]
}
