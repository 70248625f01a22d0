//! The docker environment's images, built on this machine and never pulled: `chaos-base`, a
//! Debian root file system from `debootstrap` with PostgreSQL, Redis, RabbitMQ and tini, and
//! `chaos-app` on top of it with the workspace's binaries (target, stubs, the harness for its
//! proxy) and the services' start script. Each is tagged by a hash of its inputs and built
//! only when no image carries that tag. Building shells out to the Docker CLI (`docker
//! import`, `docker build`): bollard would need the contexts as tar streams made here.
//!
//! Beside the images, the broker's code volumes: the directories RabbitMQ boots from (the
//! Erlang runtime, the broker's applications, its home), copied once out of the app image
//! onto named volumes that the RabbitMQ container mounts read-only. An image's files are
//! read through the storage driver (`fuse-overlayfs` on a machine without native overlay,
//! where every module the broker loads costs a trip through FUSE); a volume's are on the
//! host's own file system. They hold code, never state, so runs share them; they are named
//! by a hash of what made them and removed with the images of earlier inputs.

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
/// The app image's directories the broker boots from, each on a code volume of its own:
/// (the volume's last name part, the directory).
const CODE_DIRS: [(&str, &str); 3] = [
    ("erlang", "/usr/lib/erlang"),
    ("rabbitmq", "/usr/lib/rabbitmq"),
    ("rabbit-home", "/var/lib/chaos/rabbit-home"),
];
/// The label every code volume carries, valued with the code's tag.
const LABEL_CODE: &str = "chaos.code";
/// The label of the code volumes' marker: the id of the base image they were filled from.
const LABEL_CODE_BASE: &str = "chaos.code-base";
/// The app image's label naming the id of the base image it was built on.
const LABEL_BASE: &str = "chaos.base";

/// The image repository names: `chaos-base` and `chaos-app`, under another prefix when
/// `CHAOS_IMAGE_PREFIX` says so (tests use it to name images that do not exist).
pub fn repo(which: &str) -> String {
    let prefix = std::env::var("CHAOS_IMAGE_PREFIX").unwrap_or_else(|_| "chaos".into());
    format!("{prefix}-{which}")
}

/// The images a docker environment runs, as `repo:tag`, and the tag of its code volumes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Images {
    pub base: String,
    pub app: String,
    /// A hash of every input of the app image but its binaries: what the directories on the
    /// code volumes come from (a rebuilt binary changes the app image, not them).
    pub code: String,
}

impl Images {
    /// The code volumes, as (volume name, directory it holds), in mount order.
    pub fn code_volumes(&self) -> Vec<(String, &'static str)> {
        CODE_DIRS
            .iter()
            .map(|(part, dir)| (format!("{}-{}-{part}", repo("code"), self.code), *dir))
            .collect()
    }

    /// The empty volume whose presence says the code volumes were filled completely.
    pub fn code_marker(&self) -> String {
        format!("{}-{}-ready", repo("code"), self.code)
    }
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

/// The app image's tag and its code's: a hash of its base, its Dockerfile and its files, the
/// code's; then every binary's content too, the image's (a rebuilt binary is a new image;
/// the same binary, the same image).
fn app_tags(base: &str, binaries: &[PathBuf]) -> Result<(String, String), EngineError> {
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
    let code = tag_of(h.clone());
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
    Ok((format!("{}:{}", repo("app"), tag_of(h)), code))
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
    let (app, code) = app_tags(&base, &binaries)?;
    Ok(WANTED.get_or_init(|| Images { base, app, code }).clone())
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
/// error naming the command that builds them. Nothing is ever pulled. Then the code volumes,
/// filled from the app image when incomplete whatever `build` says (a copy, not a build).
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
    ensure_code_volumes(&images, progress).await?;
    if build == Build::Command {
        prune_apps(&images, progress).await;
    }
    Ok(images)
}

/// Whether an image with this tag is on the engine.
pub async fn exists(tag: &str) -> Result<bool, EngineError> {
    let out = docker(&["image", "inspect", "--format", "{{.Id}}", tag]).await?;
    Ok(out.status.success())
}

/// Whether a volume of this name is on the engine.
pub async fn volume_exists(name: &str) -> Result<bool, EngineError> {
    let out = docker(&["volume", "inspect", "--format", "{{.Name}}", name]).await?;
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

/// A Docker CLI command that failed: what it did, its error output, and what to do when the
/// disk is full.
fn failed(what: String, out: &std::process::Output) -> EngineError {
    EngineError::Docker(format!(
        "{what}: {}{}",
        String::from_utf8_lossy(&out.stderr).trim(),
        full_disk_hint(&out.stderr)
    ))
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
        return Err(failed(
            format!("docker import {tag} (tar {tar_status})"),
            &out,
        ));
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

/// Make the code volumes unless they are complete: one container created (never started)
/// from the app image with each volume mounted on its directory, which has the engine copy
/// the image's files into the new, empty volume; the container removed; then the marker
/// volume made, labelled with the id of the base image the app image was built on. The
/// volumes count as complete only when the marker is there and names that base: the engine
/// makes a volume before it copies into it, so a volume that merely exists may be mid-copy
/// (or cut off by a crash), and an app image rebuilt on a base rebuilt under the same tag
/// (after `docker system prune -a`) may differ from the one the volumes came from. Filling
/// is under a lock of this machine's, so two processes never fill the same volumes at once.
pub async fn ensure_code_volumes(
    images: &Images,
    progress: &(dyn Fn(String) + Sync),
) -> Result<(), EngineError> {
    let base_id = code_source(images).await?;
    if code_complete(images, &base_id).await? {
        return Ok(());
    }
    let _lock = machine_lock("code-volumes", progress).await?;
    // Another process may have filled them while this one waited.
    if code_complete(images, &base_id).await? {
        return Ok(());
    }
    let volumes = images.code_volumes();
    let marker = images.code_marker();
    // Whatever is there is incomplete: it goes, and is filled again from nothing.
    for name in volumes.iter().map(|(v, _)| v).chain([&marker]) {
        // Forced: a missing volume is no error (one in use still is).
        let out = docker(&["volume", "rm", "--force", name]).await?;
        let err = String::from_utf8_lossy(&out.stderr);
        if !out.status.success() && !err.to_lowercase().contains("no such volume") {
            return Err(EngineError::Docker(format!(
                "remove {name}, an incomplete code volume, to fill it again: {} (a container still mounts it: `chaos down --all` removes this machine's runs)",
                err.trim()
            )));
        }
    }
    progress(format!(
        "copying the broker's code out of {} onto volumes {} (once per image inputs)",
        images.app,
        volumes
            .iter()
            .map(|(v, _)| v.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    ));
    // Labelled as a run's, so a filler left by a crash is reaped as a crashed run's is.
    let filler = format!("{}-fill-{}", repo("code"), std::process::id());
    let _ = docker(&["rm", "--force", &filler]).await;
    let mut args: Vec<String> = ["create", "--name", &filler].map(String::from).to_vec();
    for (k, v) in super::reap::labels(&filler) {
        args.extend(["--label".into(), format!("{k}={v}")]);
    }
    for (volume, dir) in &volumes {
        args.extend([
            "--mount".into(),
            format!(
                "type=volume,src={volume},dst={dir},volume-label={LABEL_CODE}={}",
                images.code
            ),
        ]);
    }
    args.extend([images.app.clone(), "true".into()]);
    let out = docker(&args.iter().map(String::as_str).collect::<Vec<_>>()).await?;
    let _ = docker(&["rm", "--force", &filler]).await;
    if !out.status.success() {
        // A create that failed halfway (a full disk) may have left a volume half filled;
        // without its marker the next process fills it again anyway.
        for (volume, _) in &volumes {
            let _ = docker(&["volume", "rm", volume]).await;
        }
        return Err(failed(
            format!("copy the broker's code out of {} onto volumes", images.app),
            &out,
        ));
    }
    let out = docker(&[
        "volume",
        "create",
        "--label",
        &format!("{LABEL_CODE}={}", images.code),
        "--label",
        &format!("{LABEL_CODE_BASE}={base_id}"),
        &marker,
    ])
    .await?;
    if !out.status.success() {
        return Err(failed(
            format!("create {marker}, the code volumes' marker"),
            &out,
        ));
    }
    Ok(())
}

/// Whether the code volumes and their marker are there, the marker naming `base_id`.
async fn code_complete(images: &Images, base_id: &str) -> Result<bool, EngineError> {
    let marker = images.code_marker();
    let volumes = images.code_volumes();
    let format = format!("{{{{.Name}}}} {{{{index .Labels \"{LABEL_CODE_BASE}\"}}}}");
    let mut args = vec!["volume", "inspect", "--format", &format, &marker];
    args.extend(volumes.iter().map(|(v, _)| v.as_str()));
    let out = docker(&args).await?;
    // Fails when any of them is missing.
    if !out.status.success() {
        return Ok(false);
    }
    let text = String::from_utf8_lossy(&out.stdout);
    Ok(text
        .lines()
        .any(|l| l.split_once(' ') == Some((marker.as_str(), base_id))))
}

/// What the code volumes of `images` are filled from: the id of the base image the app
/// image was built on (its `chaos.base` label; a base rebuilt under the same tag leaves an
/// existing app image on the old one), or the base's own id for an app image built before
/// the label was.
async fn code_source(images: &Images) -> Result<String, EngineError> {
    let format = format!("{{{{index .Config.Labels \"{LABEL_BASE}\"}}}}");
    let labelled = inspect(&images.app, &format).await?;
    if labelled.starts_with("sha256:") {
        return Ok(labelled);
    }
    inspect(&images.base, "{{.Id}}").await
}

/// One `docker image inspect --format` answer.
async fn inspect(tag: &str, format: &str) -> Result<String, EngineError> {
    let out = docker(&["image", "inspect", "--format", format, tag]).await?;
    if !out.status.success() {
        return Err(EngineError::Docker(format!(
            "inspect {tag}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Whether the code volumes of `images` are complete (for `chaos images status`).
pub async fn code_volumes_complete(images: &Images) -> Result<bool, EngineError> {
    code_complete(images, &code_source(images).await?).await
}

/// An exclusive lock on a file of this machine's (under the images' work directory), held
/// until the returned lock is dropped; waited for on a blocking thread, saying so.
async fn machine_lock(
    name: &str,
    progress: &(dyn Fn(String) + Sync),
) -> Result<nix::fcntl::Flock<std::fs::File>, EngineError> {
    let path = work_dir().join(format!("{name}.lock"));
    match lock_file(&path, nix::fcntl::FlockArg::LockExclusiveNonblock) {
        Err(LockError::Held) => {}
        Err(LockError::Engine(e)) => return Err(e),
        Ok(l) => return Ok(l),
    }
    progress(format!(
        "waiting for another chaos process holding {}",
        path.display()
    ));
    tokio::task::spawn_blocking(move || lock_file(&path, nix::fcntl::FlockArg::LockExclusive))
        .await
        .expect("the lock's thread does not panic")
        .map_err(|e| match e {
            LockError::Engine(e) => e,
            LockError::Held => unreachable!("a blocking lock waits instead"),
        })
}

#[derive(Debug)]
enum LockError {
    /// Another holder has it (a non-blocking try).
    Held,
    Engine(EngineError),
}

/// Lock `path`, made readable and writable by everyone when it is new (a lock file made by
/// `sudo chaos images build` must not lock a later run by another user out); an existing
/// one is opened read-only, which is all `flock(2)` needs.
fn lock_file(
    path: &Path,
    how: nix::fcntl::FlockArg,
) -> Result<nix::fcntl::Flock<std::fs::File>, LockError> {
    use std::os::unix::fs::PermissionsExt;
    let fail = |what: &str| {
        let ctx = format!("{what} {}", path.display());
        move |e: std::io::Error| LockError::Engine(EngineError::io(ctx.clone())(e))
    };
    let f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(fail("create the directory of"))?;
            }
            match std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(path)
            {
                Ok(f) => {
                    // Another process may have made it first; only ours is widened.
                    let _ = f.set_permissions(std::fs::Permissions::from_mode(0o666));
                    f
                }
                // Another user's, made in between: read-only is enough.
                Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                    std::fs::File::open(path).map_err(fail("open"))?
                }
                Err(e) => return Err(fail("create")(e)),
            }
        }
        Err(e) => return Err(fail("open")(e)),
    };
    nix::fcntl::Flock::lock(f, how).map_err(|(_, e)| {
        if e == nix::errno::Errno::EWOULDBLOCK {
            LockError::Held
        } else {
            fail("lock")(std::io::Error::from(e))
        }
    })
}

/// Remove the app images of earlier binaries: each is a few hundred MB of layers no run
/// will use again. One a container still uses (another run's) stays. Then the code volumes
/// of earlier image inputs, which no run will mount again either.
async fn prune_apps(keep: &Images, progress: &(dyn Fn(String) + Sync)) {
    prune_code(keep, progress).await;
    let keep = keep.app.as_str();
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

/// Remove the code volumes of other image inputs under this prefix. One a container still
/// mounts stays.
async fn prune_code(keep: &Images, progress: &(dyn Fn(String) + Sync)) {
    let Ok(out) = docker(&[
        "volume",
        "ls",
        "--quiet",
        "--filter",
        &format!("label={LABEL_CODE}"),
    ])
    .await
    else {
        return;
    };
    let ours = format!("{}-", repo("code"));
    // (tag, volume), for the tags of other inputs under this prefix. A prefix ending in
    // `-code` (`chaos-code` under `chaos`'s) is not this prefix's either: a tag is 16 hex
    // digits, so what follows the prefix must start with one and a dash.
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let old: Vec<(&str, &str)> = text
        .lines()
        .filter_map(|name| {
            let (tag, _) = name.strip_prefix(&ours)?.split_once('-')?;
            let is_tag = tag.len() == 16 && tag.bytes().all(|b| b.is_ascii_hexdigit());
            (is_tag && tag != keep.code).then_some((tag, name))
        })
        .collect();
    // The volumes first, then the markers of the tags whose volumes all went: a tag with a
    // volume still mounted (by a run of those inputs) keeps its marker, so it is not filled
    // again under the run.
    let mut kept = std::collections::BTreeSet::new();
    for (tag, name) in old.iter().filter(|(_, n)| !n.ends_with("-ready")) {
        if docker(&["volume", "rm", name])
            .await
            .is_ok_and(|o| o.status.success())
        {
            progress(format!(
                "removed {name}, a code volume of earlier image inputs"
            ));
        } else {
            kept.insert(*tag);
        }
    }
    for (tag, name) in old.iter().filter(|(_, n)| n.ends_with("-ready")) {
        if !kept.contains(tag) {
            let _ = docker(&["volume", "rm", name]).await;
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
        .args([
            "--label",
            &format!("{LABEL_BASE}={}", inspect(base, "{{.Id}}").await?),
        ])
        .arg(&ctx.0)
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(EngineError::io("run docker build"))?;
    if !out.status.success() {
        return Err(failed(format!("docker build {tag}"), &out));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::fcntl::FlockArg;

    #[test]
    fn the_machine_lock_is_held_by_one_holder_at_a_time() {
        let dir = std::env::temp_dir().join(format!("chaos-lock-test-{}", std::process::id()));
        let path = dir.join("sub").join("code-volumes.lock");
        let held = lock_file(&path, FlockArg::LockExclusive).expect("the lock is taken");
        // Another open file description (another process's, or another task's) waits.
        assert!(lock_file(&path, FlockArg::LockExclusiveNonblock).is_err());
        drop(held);
        assert!(lock_file(&path, FlockArg::LockExclusiveNonblock).is_ok());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_rebuilt_binary_changes_the_app_tag_not_the_code_tag() {
        let dir = std::env::temp_dir().join(format!("chaos-tag-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let bin = dir.join("mediconnect");
        std::fs::write(&bin, b"one build").unwrap();
        let (app1, code1) = app_tags("chaos-base:1", std::slice::from_ref(&bin)).unwrap();
        std::fs::write(&bin, b"another build").unwrap();
        let (app2, code2) = app_tags("chaos-base:1", std::slice::from_ref(&bin)).unwrap();
        let (_, code3) = app_tags("chaos-base:2", &[bin]).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        assert_ne!(app1, app2, "new binaries, a new app image");
        assert_eq!(code1, code2, "the same code volumes for both");
        assert_ne!(code1, code3, "another base, other code volumes");
    }

    #[test]
    fn code_volumes_are_named_by_the_code_tag_one_per_directory() {
        let images = Images {
            base: "chaos-base:1".into(),
            app: "chaos-app:2".into(),
            code: "00112233445566ff".into(),
        };
        let v = images.code_volumes();
        assert_eq!(v.len(), CODE_DIRS.len());
        for ((name, dir), (part, want)) in v.iter().zip(CODE_DIRS) {
            assert!(
                name.ends_with(&format!("-code-00112233445566ff-{part}")),
                "{name}"
            );
            assert_eq!(dir, &want);
        }
    }
}
