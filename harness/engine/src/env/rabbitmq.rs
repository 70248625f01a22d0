//! RabbitMQ from Debian's `rabbitmq-server`, as a child with its own node name, ports, data
//! and log directories, and its own `epmd` on a private port (so nothing outlives the run).

use std::path::PathBuf;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::Command;

use super::ports::free_port;
use super::process::{ChildProcess, drop_root};
use super::ready::wait_ready;
use super::rundir::RunDir;
use crate::error::EngineError;

const SERVER: &str = "/usr/lib/rabbitmq/bin/rabbitmq-server";
const CTL: &str = "/usr/lib/rabbitmq/bin/rabbitmqctl";

pub(crate) struct RabbitSpec {
    pub port: u16,
    dist_port: u16,
    epmd_port: u16,
    dir: PathBuf,
    node: String,
    run_id: String,
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
        let dir = run.sub("rabbitmq")?;
        // The scenario's name leads; the tail (profile, seed, pid, run number) keeps two runs
        // of one suite apart.
        let alnum: Vec<char> = run.id.chars().filter(char::is_ascii_alphanumeric).collect();
        let short: String = if alnum.len() <= 32 {
            alnum.iter().collect()
        } else {
            alnum[..12]
                .iter()
                .chain(&alnum[alnum.len() - 20..])
                .collect()
        };
        Ok(RabbitSpec {
            port,
            dist_port: free_port()?,
            epmd_port: free_port()?,
            dir,
            node: format!("chaos{short}@localhost"),
            run_id: run.id.clone(),
        })
    }

    pub async fn start(&self, run: &RunDir) -> Result<RabbitProcs, EngineError> {
        let mut epmd_cmd = Command::new("epmd");
        epmd_cmd.args([
            "-port",
            &self.epmd_port.to_string(),
            "-address",
            "127.0.0.1",
        ]);
        let epmd = ChildProcess::spawn("epmd", epmd_cmd, &run.id, &run.log("epmd"), false)?;
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
        let mut broker =
            ChildProcess::spawn("rabbitmq", cmd, &run.id, &run.log("rabbitmq"), false)?;
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
            .env("RABBITMQ_NODENAME", &self.node)
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
                &self.node,
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
