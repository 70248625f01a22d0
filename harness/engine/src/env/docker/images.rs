//! The docker environment's images, built on this machine and never pulled: `chaos-base`, a
//! Debian root file system from `debootstrap` with PostgreSQL, Redis, RabbitMQ and tini, and
//! `chaos-app` on top of it with the workspace's binaries (target, stubs, the harness for its
//! proxy) and the services' start script. Each is tagged by a hash of its inputs and built
//! only when no image carries that tag. Building shells out to the Docker CLI (`docker
//! import`, `docker build`): bollard would need the contexts as tar streams made here.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use sha2::{Digest, Sha256};
use tokio::process::Command;

use super::super::ready::workspace_binary;
use crate::error::EngineError;

/// The Debian release and mirror the base image's root file system comes from.
const SUITE: &str = "bookworm";
const MIRROR: &str = "http://deb.debian.org/debian";
/// What the base image holds beyond Debian's minimal base.
const PACKAGES: [&str; 4] = ["postgresql", "redis-server", "rabbitmq-server", "tini"];
/// Bumped when the way the base is made changes in a way its other inputs do not show.
const BASE_RECIPE: &str = "minbase-1";
/// The services' start script, baked into the app image as `/usr/local/bin/chaos-service`
/// (which also makes the image's PostgreSQL template at build time). The layers up to it
/// come before the binaries', so the builder reuses them when only a binary changed.
pub(crate) const SERVICE_SCRIPT: &str = include_str!("service.sh");
/// RabbitMQ's settings: the broker is reached from the proxy's container, not loopback, so
/// the guest account may log in from the network; no plugins (the local broker has none).
const RABBIT_CONF: &str = "loopback_users = none\n";
const RABBIT_PLUGINS: &str = "[].\n";
/// The workspace binaries the app image carries.
const BINARIES: [&str; 3] = ["chaos", "mediconnect", "stubs"];

/// The image repository names: `chaos-base` and `chaos-app`, under another prefix when
/// `CHAOS_IMAGE_PREFIX` says so (tests use it to name images that do not exist).
pub fn repo(which: &str) -> String {
    let prefix = std::env::var("CHAOS_IMAGE_PREFIX").unwrap_or_else(|_| "chaos".into());
    format!("{prefix}-{which}")
}

/// The images a docker environment runs, as `repo:tag`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Images {
    pub base: String,
    pub app: String,
}

/// Whether missing images are built (`chaos images build`, or a run asked to) or are an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Build {
    /// Build what is missing (a run asked to).
    IfMissing,
    /// An error naming the build command (`--no-image-build`).
    Never,
    /// `chaos images build`: build what is missing, then remove the app images of earlier
    /// binaries. Only then: a run never removes an image another run may be about to use.
    Command,
}

/// Each part hashed with its length first, so no two lists of parts hash alike.
fn hash_parts(h: &mut Sha256, parts: &[&[u8]]) {
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p);
    }
}

/// The first 8 bytes of a hash, in hex: an image tag.
fn tag_of(h: Sha256) -> String {
    h.finalize()
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn base_tag() -> String {
    let packages = PACKAGES.join(",");
    let mut h = Sha256::new();
    hash_parts(
        &mut h,
        &[
            SUITE.as_bytes(),
            MIRROR.as_bytes(),
            packages.as_bytes(),
            BASE_RECIPE.as_bytes(),
        ],
    );
    format!("{}:{}", repo("base"), tag_of(h))
}

fn dockerfile(base: &str) -> String {
    format!(
        "FROM {base}\n\
         ENV LANG=C.UTF-8\n\
         COPY chaos-service /usr/local/bin/\n\
         COPY rabbitmq.conf enabled_plugins /etc/rabbitmq/\n\
         RUN /usr/local/bin/chaos-service pg-template && /usr/local/bin/chaos-service rabbit-template\n\
         COPY chaos mediconnect stubs /usr/local/bin/\n\
         ENTRYPOINT [\"/usr/bin/tini\", \"-g\", \"--\"]\n"
    )
}

/// The app image's tag: a hash of its base, its Dockerfile, its files and every binary's
/// content (a rebuilt binary is a new image; the same binary, the same image).
fn app_tag(base: &str, binaries: &[PathBuf]) -> Result<String, EngineError> {
    let mut h = Sha256::new();
    hash_parts(
        &mut h,
        &[
            base.as_bytes(),
            dockerfile(base).as_bytes(),
            SERVICE_SCRIPT.as_bytes(),
            RABBIT_CONF.as_bytes(),
            RABBIT_PLUGINS.as_bytes(),
        ],
    );
    for b in binaries {
        use std::io::Read;
        let mut f =
            std::fs::File::open(b).map_err(EngineError::io(format!("read {}", b.display())))?;
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = f
                .read(&mut buf)
                .map_err(EngineError::io(format!("hash {}", b.display())))?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
        }
    }
    Ok(format!("{}:{}", repo("app"), tag_of(h)))
}

/// The tags the current inputs call for, whether or not such images exist.
///
/// Worked out once per process: a suite's runs (and the check before a run, then the run's
/// own) would otherwise hash every binary again, and a binary rebuilt while a suite runs
/// must not change the image halfway through it.
pub fn wanted() -> Result<Images, EngineError> {
    static WANTED: std::sync::OnceLock<Images> = std::sync::OnceLock::new();
    if let Some(w) = WANTED.get() {
        return Ok(w.clone());
    }
    let base = base_tag();
    let binaries = binaries()?;
    let app = app_tag(&base, &binaries)?;
    Ok(WANTED.get_or_init(|| Images { base, app }).clone())
}

/// The directory the binaries come from, as an image label.
fn bin_dir_label() -> String {
    workspace_binary("chaos")
        .ok()
        .and_then(|p| p.parent().map(|d| d.display().to_string()))
        .unwrap_or_default()
}

fn binaries() -> Result<Vec<PathBuf>, EngineError> {
    BINARIES.iter().map(|b| workspace_binary(b)).collect()
}

/// The images for this run: present already, or built now when `build` allows; otherwise an
/// error naming the command that builds them. Nothing is ever pulled.
pub async fn ensure(
    build: Build,
    progress: &(dyn Fn(String) + Sync),
) -> Result<Images, EngineError> {
    // No engine is said as such, before anything is hashed or built.
    super::reap::connect().await?;
    let images = wanted()?;
    for (tag, which) in [(&images.base, "base"), (&images.app, "app")] {
        if exists(tag).await? {
            continue;
        }
        if build == Build::Never {
            return Err(EngineError::MissingImage {
                image: tag.clone(),
                hint: "build it with `chaos images build` (images are built on this machine from Debian packages, never pulled)".into(),
            });
        }
        if which == "base" {
            build_base(tag, progress).await?;
        } else {
            build_app(&images.base, tag, progress).await?;
        }
    }
    if build == Build::Command {
        prune_apps(&images.app, progress).await;
    }
    Ok(images)
}

/// Whether an image with this tag is on the engine.
pub async fn exists(tag: &str) -> Result<bool, EngineError> {
    let out = docker(&["image", "inspect", "--format", "{{.Id}}", tag]).await?;
    Ok(out.status.success())
}

async fn docker(args: &[&str]) -> Result<std::process::Output, EngineError> {
    Command::new("docker")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => EngineError::MissingProgram(
                "docker, the Docker CLI (apt-get install docker.io)".into(),
            ),
            _ => EngineError::Docker(format!("run docker {}: {e}", args.join(" "))),
        })
}

/// What to do when the engine's answer says the disk is full.
pub(crate) fn full_disk_hint(stderr: &[u8]) -> &'static str {
    if String::from_utf8_lossy(stderr).contains("no space left") {
        " (the disk is full: free space, e.g. `docker system prune` or `chaos down --all`, then try again)"
    } else {
        ""
    }
}

/// Where image builds keep their scratch files (root file systems, build contexts).
fn work_dir() -> PathBuf {
    std::env::var_os("CHAOS_IMAGE_WORK")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/tmp/chaos-images"))
}

/// A scratch directory removed when dropped, whatever happened.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn scratch(name: &str) -> Result<Scratch, EngineError> {
    let dir = work_dir().join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(EngineError::io(format!("create {}", dir.display())))?;
    Ok(Scratch(dir))
}

async fn build_base(tag: &str, progress: &(dyn Fn(String) + Sync)) -> Result<(), EngineError> {
    if !nix::unistd::geteuid().is_root() {
        return Err(EngineError::Docker(
            "building the base image runs debootstrap, which needs root: run `sudo chaos images build`".into(),
        ));
    }
    let debootstrap = ["/usr/sbin/debootstrap", "/usr/bin/debootstrap"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .ok_or_else(|| {
            EngineError::MissingProgram(
                "debootstrap, to build the base image (apt-get install debootstrap, or scripts/setup.sh)".into(),
            )
        })?;
    let work = scratch("base")?;
    let root = work.0.join("root");
    let log = work_dir().join("debootstrap.log");
    progress(format!(
        "building {tag}: debootstrap {SUITE} with {} from {MIRROR} (a few minutes; log {})",
        PACKAGES.join(", "),
        log.display()
    ));
    let log_file = std::fs::File::create(&log)
        .map_err(EngineError::io(format!("create {}", log.display())))?;
    let err_file = log_file
        .try_clone()
        .map_err(EngineError::io("clone log handle"))?;
    let mut child = Command::new(debootstrap)
        .args([
            "--variant=minbase",
            &format!("--include={}", PACKAGES.join(",")),
        ])
        .arg(SUITE)
        .arg(&root)
        .arg(MIRROR)
        .stdin(Stdio::null())
        .stdout(log_file)
        .stderr(err_file)
        .kill_on_drop(true)
        .spawn()
        .map_err(EngineError::io("run debootstrap"))?;
    let mut last = String::new();
    let status = loop {
        tokio::select! {
            s = child.wait() => break s.map_err(EngineError::io("wait for debootstrap"))?,
            () = tokio::time::sleep(std::time::Duration::from_secs(15)) => {
                // Progress on long work: debootstrap's latest step, when it changed.
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                if let Some(l) = text.lines().rev().find(|l| l.starts_with("I: "))
                    && l != last
                {
                    progress(format!("debootstrap: {}", &l[3..]));
                    last = l.to_string();
                }
            }
        }
    };
    if !status.success() {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(10).collect();
        return Err(EngineError::Docker(format!(
            "debootstrap exited with {status} (is {MIRROR} reachable? is the disk full?); last lines of {}:\n{}",
            log.display(),
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        )));
    }
    // The package cache is not part of the image.
    for sub in ["var/cache/apt/archives", "var/lib/apt/lists"] {
        let d = root.join(sub);
        if let Ok(entries) = std::fs::read_dir(&d) {
            for e in entries.flatten() {
                if e.path().is_file() {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
    }
    progress(format!("importing the root file system as {tag}"));
    let mut tar = Command::new("tar")
        .arg("-C")
        .arg(&root)
        .args(["--numeric-owner", "-c", "."])
        .stdout(Stdio::piped())
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(EngineError::io("run tar"))?;
    let stdout: Stdio = tar
        .stdout
        .take()
        .expect("tar's stdout is piped")
        .try_into()
        .map_err(EngineError::io("pipe tar into docker import"))?;
    // Imported under a temporary tag, and given its real one only when both tar and the
    // import succeeded: a cut-off archive must never carry the tag that says "built".
    let staging = format!("{}:staging-{}", repo("base"), std::process::id());
    let out = Command::new("docker")
        .args([
            "import",
            "--change",
            "ENV LANG=C.UTF-8",
            "--message",
            "chaos base: debootstrap",
            "-",
            &staging,
        ])
        .stdin(stdout)
        .kill_on_drop(true)
        .output()
        .await
        .map_err(EngineError::io("run docker import"))?;
    let tar_status = tar.wait().await.map_err(EngineError::io("wait for tar"))?;
    if !out.status.success() || !tar_status.success() {
        let _ = docker(&["rmi", &staging]).await;
        return Err(EngineError::Docker(format!(
            "docker import {tag} (tar {tar_status}): {}{}",
            String::from_utf8_lossy(&out.stderr).trim(),
            full_disk_hint(&out.stderr)
        )));
    }
    let tagged = docker(&["tag", &staging, tag]).await?;
    let _ = docker(&["rmi", &staging]).await;
    if !tagged.status.success() {
        return Err(EngineError::Docker(format!(
            "docker tag {staging} {tag}: {}",
            String::from_utf8_lossy(&tagged.stderr).trim()
        )));
    }
    Ok(())
}

/// Remove the app images of earlier binaries: each is a few hundred MB of layers no run
/// will use again. One a container still uses (another run's) stays.
async fn prune_apps(keep: &str, progress: &(dyn Fn(String) + Sync)) {
    let repo = repo("app");
    // Only those built from the same directory of binaries: a debug and a release build
    // each keep theirs.
    let filter = format!("label=chaos.bindir={}", bin_dir_label());
    let Ok(out) = docker(&[
        "images",
        "--filter",
        &filter,
        "--format",
        "{{.Repository}}:{{.Tag}}",
        &repo,
    ])
    .await
    else {
        return;
    };
    for old in String::from_utf8_lossy(&out.stdout).lines() {
        if old != keep
            && old.starts_with(&format!("{repo}:"))
            && docker(&["rmi", old])
                .await
                .is_ok_and(|o| o.status.success())
        {
            progress(format!("removed {old}, the image of earlier binaries"));
        }
    }
}

async fn build_app(
    base: &str,
    tag: &str,
    progress: &(dyn Fn(String) + Sync),
) -> Result<(), EngineError> {
    progress(format!(
        "building {tag} on {base} with the workspace's binaries"
    ));
    let ctx = scratch("app")?;
    for b in binaries()? {
        let name = b.file_name().expect("a binary has a name");
        let dest = ctx.0.join(name);
        // A hard link when the scratch is on the same file system, a copy otherwise.
        if std::fs::hard_link(&b, &dest).is_err() {
            std::fs::copy(&b, &dest).map_err(EngineError::io(format!("copy {}", b.display())))?;
        }
    }
    let script = ctx.0.join("chaos-service");
    std::fs::write(&script, SERVICE_SCRIPT).map_err(EngineError::io("write chaos-service"))?;
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755))
            .map_err(EngineError::io("chmod chaos-service"))?;
    }
    for (name, text) in [
        ("rabbitmq.conf", RABBIT_CONF),
        ("enabled_plugins", RABBIT_PLUGINS),
        ("Dockerfile", &dockerfile(base)),
    ] {
        std::fs::write(ctx.0.join(name), text).map_err(EngineError::io(format!("write {name}")))?;
    }
    // The classic builder: it reads FROM from the engine's own images and never asks a
    // registry (BuildKit would, for the base's metadata).
    let out = Command::new("docker")
        .env("DOCKER_BUILDKIT", "0")
        .args(["build", "--quiet", "--label", "chaos.image=app", "-t", tag])
        .args(["--label", &format!("chaos.bindir={}", bin_dir_label())])
        .arg(&ctx.0)
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(EngineError::io("run docker build"))?;
    if !out.status.success() {
        return Err(EngineError::Docker(format!(
            "docker build {tag}: {}{}",
            String::from_utf8_lossy(&out.stderr).trim(),
            full_disk_hint(&out.stderr)
        )));
    }
    Ok(())
}
