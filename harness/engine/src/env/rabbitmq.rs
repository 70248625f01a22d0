//! RabbitMQ from Debian's `rabbitmq-server`, as a child with its own ports, data and log
//! directories, and its own `epmd` on a private port (so nothing outlives the run); its node
//! directory copied from a cached template that one cold boot initialised, and its code path
//! cut to the broker's own applications by a RabbitMQ home of the run's own.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
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
    /// The server script of the run's lean RabbitMQ home ([`lean_home`]), once
    /// [`RabbitSpec::start`] made it: the broker's every start (a restart after a kill too)
    /// runs from it.
    lean: OnceLock<PathBuf>,
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
            lean: OnceLock::new(),
        })
    }

    /// The node's epmd, then the broker on a copy of the cached template's node directory
    /// (made by one cold boot on first use): a node that finds its database initialised
    /// skips the first boot's schema creation and seeding. It runs from a RabbitMQ home of
    /// the run's own whose code path holds only the broker's applications ([`lean_home`]).
    /// Both are optimisations: when one cannot be made, the node boots cold or from the stock
    /// home, and the log says why.
    pub async fn start(&self, run: &RunDir) -> Result<RabbitProcs, EngineError> {
        let copied = match template_dir(run).await {
            Ok(template) => copy_dir(&template.join("mnesia"), &self.dir.join("mnesia")).await,
            Err(e) => Err(e),
        };
        if let Err(e) = copied {
            tracing::warn!("RabbitMQ boots cold: no template node directory ({e})");
            let _ = std::fs::remove_dir_all(self.dir.join("mnesia"));
        }
        match lean_home(&self.dir.join("home")) {
            Ok(server) => {
                let _ = self.lean.set(server);
            }
            Err(e) => tracing::warn!("RabbitMQ runs from its stock home: {e}"),
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
        let server = self.lean.get().map_or(Path::new(SERVER), PathBuf::as_path);
        let mut cmd = self.node_command(server);
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
    fn node_command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
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
    let server = stock_home()
        .as_deref()
        .and_then(Path::file_name)
        .map_or_else(|| "rabbitmq".into(), |n| n.to_string_lossy().into_owned());
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

/// The package's RabbitMQ home, `/usr/lib/rabbitmq/lib/rabbitmq_server-<version>`: where the
/// server script really is (`/usr/lib/rabbitmq/bin/rabbitmq-server` links into its `sbin`).
fn stock_home() -> Option<PathBuf> {
    let server = std::fs::canonicalize(SERVER).ok()?;
    Some(server.parent()?.parent()?.to_path_buf())
}

/// Make `home`, a RabbitMQ home for one run's broker, and answer its server script. The
/// server's scripts put `<home>/plugins` on the VM's code path (`ERL_LIBS`), `<home>` being
/// where the scripts really are, so the scripts are copied (a link would resolve to the
/// stock home) and `plugins` holds links to the broker's own applications only
/// ([`lean_plugins`]). Most of a boot is loading every module of every application on the
/// path and searching the path's directories for each: 20 applications instead of 70.
fn lean_home(home: &Path) -> Result<PathBuf, String> {
    let stock = stock_home().ok_or_else(|| format!("{SERVER} is not in a RabbitMQ home"))?;
    let fail = |what: &str, p: &Path, e: std::io::Error| format!("{what} {}: {e}", p.display());
    let sbin = home.join("sbin");
    let plugins = home.join("plugins");
    for dir in [&sbin, &plugins] {
        std::fs::create_dir_all(dir).map_err(|e| fail("create", dir, e))?;
    }
    let stock_sbin = stock.join("sbin");
    for entry in std::fs::read_dir(&stock_sbin).map_err(|e| fail("read", &stock_sbin, e))? {
        let from = entry.map_err(|e| fail("read", &stock_sbin, e))?.path();
        let to = sbin.join(from.file_name().expect("a directory entry has a name"));
        std::fs::copy(&from, &to).map_err(|e| fail("copy", &from, e))?;
    }
    let link = |from: &Path, to: PathBuf| {
        std::os::unix::fs::symlink(from, &to).map_err(|e| fail("link", &to, e))
    };
    link(&stock.join("escript"), home.join("escript"))?;
    for app in lean_plugins(&stock.join("plugins"))? {
        let name = app
            .file_name()
            .expect("a plugins entry has a name")
            .to_owned();
        link(&app, plugins.join(name))?;
    }
    Ok(sbin.join("rabbitmq-server"))
}

/// The directories of `stock` (a RabbitMQ plugins directory of `<app>-<version>` entries)
/// that the broker's application `rabbit` needs, itself and what it depends on, transitively,
/// by each application's `ebin/<app>.app`. With no plugin enabled, the other fifty-odd
/// entries only lengthen the code path that every module load searches.
fn lean_plugins(stock: &Path) -> Result<Vec<PathBuf>, String> {
    let entries = std::fs::read_dir(stock).map_err(|e| format!("{}: {e}", stock.display()))?;
    let mut apps: std::collections::BTreeMap<String, PathBuf> = std::collections::BTreeMap::new();
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some((app, _version)) = name.rsplit_once('-')
            && path.join("ebin").is_dir()
        {
            apps.insert(app.to_string(), path);
        }
    }
    let mut needed = std::collections::BTreeSet::new();
    let mut todo = vec!["rabbit".to_string()];
    while let Some(app) = todo.pop() {
        // Not in the plugins directory: one of Erlang/OTP's own (kernel, ssl, ...).
        let Some(dir) = apps.get(&app) else { continue };
        if !needed.insert(app.clone()) {
            continue;
        }
        let file = dir.join("ebin").join(format!("{app}.app"));
        let text =
            std::fs::read_to_string(&file).map_err(|e| format!("{}: {e}", file.display()))?;
        todo.extend(
            app_dependencies(&text)
                .ok_or_else(|| format!("{}: no `{{applications, [...]}}` list", file.display()))?,
        );
    }
    if !needed.contains("rabbit") {
        return Err(format!("{}: no rabbit application", stock.display()));
    }
    Ok(needed.iter().map(|app| apps[app].clone()).collect())
}

/// The names in an application resource file's `{applications, [a, b, ...]}`.
fn app_dependencies(app_file: &str) -> Option<Vec<String>> {
    let mut rest = app_file;
    // The key itself, `{applications` then a comma, not a longer key that begins so.
    let after = loop {
        let at = rest.find("{applications")? + "{applications".len();
        let tail = rest[at..].trim_start();
        if let Some(tail) = tail.strip_prefix(',') {
            break tail.trim_start();
        }
        rest = &rest[at..];
    };
    let list = after.strip_prefix('[')?;
    let list = &list[..list.find(']')?];
    Some(
        list.split(',')
            .map(|a| a.trim().trim_matches('\''))
            .filter(|a| !a.is_empty())
            .map(str::to_string)
            .collect(),
    )
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh scratch directory of this test's own (removed by the next run of it).
    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("chaos-test-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn app(dir: &Path, entry: &str, deps: &str) {
        let (name, _) = entry.rsplit_once('-').unwrap();
        let ebin = dir.join(entry).join("ebin");
        std::fs::create_dir_all(&ebin).unwrap();
        std::fs::write(
            ebin.join(format!("{name}.app")),
            format!("{{application, '{name}', [\n\t{{vsn, \"1\"}},\n\t{{applications, [{deps}]}},\n\t{{env, [{{tcp_listeners, [5672]}}]}}]}}.\n"),
        )
        .unwrap();
    }

    #[test]
    fn the_lean_plugins_are_rabbit_and_what_it_needs_transitively_and_nothing_else() {
        let dir = scratch("lean-plugins");
        let stock = dir.as_path();
        app(
            stock,
            "rabbit-3.10.8",
            "kernel,stdlib,\n\t\tra, rabbit_common",
        );
        app(stock, "rabbit_common-3.10.8", "kernel,jsx");
        app(stock, "ra-2.2.0", "kernel,aten,rabbit_common");
        app(stock, "aten-0.5.8", "kernel");
        app(stock, "jsx-3.1.0", "");
        app(stock, "rabbitmq_management-3.10.8", "rabbit,cowboy");
        app(stock, "cowboy-2.8.0", "ranch");
        std::fs::write(stock.join("README"), "not an application").unwrap();
        let names: Vec<String> = lean_plugins(stock)
            .unwrap()
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            [
                "aten-0.5.8",
                "jsx-3.1.0",
                "ra-2.2.0",
                "rabbit-3.10.8",
                "rabbit_common-3.10.8"
            ]
        );
    }

    #[test]
    fn app_dependencies_read_the_key_itself_and_unquote_its_atoms() {
        let file = "{application, x, [{applications_note, \"not it\"},\n {applications ,\n  ['rabbit_common', kernel]}]}.";
        assert_eq!(app_dependencies(file).unwrap(), ["rabbit_common", "kernel"]);
        assert_eq!(app_dependencies("{applications, ] ["), None);
        assert_eq!(app_dependencies("{vsn, \"1\"}"), None);
    }

    /// On the installed package (the project's setup installs it): the server's own scripts,
    /// run from the lean home, put only its `plugins` on the VM's code path, and that holds
    /// the broker's applications and none of the plugins.
    #[test]
    fn a_lean_home_puts_only_the_brokers_applications_on_the_code_path() {
        let dir = scratch("lean-home");
        let server =
            lean_home(&dir.join("home")).expect("rabbitmq-server is installed (scripts/setup.sh)");
        // The first lines of the server script, then the function it calls to set ERL_LIBS.
        let probe = server.with_file_name("probe");
        std::fs::write(
            &probe,
            "SCRIPTS_DIR=$(dirname \"$0\")\n. \"$SCRIPTS_DIR/rabbitmq-env\"\n_rmq_env_set_erl_libs\necho \"$ERL_LIBS\"\n",
        )
        .unwrap();
        let out = std::process::Command::new("sh")
            .arg(&probe)
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .output()
            .unwrap();
        let libs = String::from_utf8(out.stdout.clone()).unwrap();
        assert_eq!(
            libs.trim(),
            dir.join("home/plugins").display().to_string(),
            "{out:?}"
        );
        let apps: Vec<String> = std::fs::read_dir(dir.join("home/plugins"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(apps.iter().any(|a| a.starts_with("rabbit-")), "{apps:?}");
        assert!(apps.iter().any(|a| a.starts_with("ra-")), "{apps:?}");
        assert!(
            !apps.iter().any(|a| a.starts_with("rabbitmq_management")),
            "{apps:?}"
        );
        let stock = std::fs::read_dir(stock_home().unwrap().join("plugins"))
            .unwrap()
            .count();
        assert!(apps.len() * 2 < stock, "{} of {stock}", apps.len());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn lean_plugins_refuse_a_directory_without_rabbit_or_with_an_unreadable_app_file() {
        let dir = scratch("lean-plugins-refused");
        app(&dir, "jsx-3.1.0", "");
        assert!(
            lean_plugins(&dir)
                .unwrap_err()
                .contains("no rabbit application")
        );
        std::fs::create_dir_all(dir.join("rabbit-3.10.8/ebin")).unwrap();
        std::fs::write(
            dir.join("rabbit-3.10.8/ebin/rabbit.app"),
            "{application, rabbit, []}.",
        )
        .unwrap();
        assert!(
            lean_plugins(&dir)
                .unwrap_err()
                .contains("no `{applications")
        );
        assert!(lean_plugins(&dir.join("absent")).is_err());
    }
}
