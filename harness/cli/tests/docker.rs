//! The `chaos` binary on the docker environment (the `docker` tier): a missing image is exit 4
//! naming the build command and nothing is pulled; no engine is exit 4 saying what to do;
//! Ctrl-C, SIGTERM or a panic mid-run removes every container, network and volume of the
//! run; a run whose harness was SIGKILLed is reaped by the next command; `chaos down --all`
//! removes every run of this machine (a developer's own `chaos up` on docker included: the
//! tier is for a machine running nothing else). Needs the Docker engine and the images
//! (`chaos images build`; the runs here build them if missing).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn chaos() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_chaos"));
    c.current_dir(root()).stdin(Stdio::null());
    c
}

const SCENARIO: &str = "scenarios/mediconnect/redis-kill.toml";

fn out_dir(tag: &str) -> PathBuf {
    std::env::temp_dir().join(format!("chaos-docker-{tag}-{}", std::process::id()))
}

/// `docker <args>`'s stdout, one entry per line.
fn docker(args: &[&str]) -> Vec<String> {
    let out = Command::new("docker")
        .args(args)
        .output()
        .expect("the docker CLI runs");
    assert!(
        out.status.success(),
        "docker {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_string)
        .collect()
}

/// Every container, network and volume labelled with `run_id`.
fn resources(run_id: &str) -> Vec<String> {
    let label = format!("label=chaos.run={run_id}");
    let mut all = docker(&["ps", "-aq", "--filter", &label]);
    all.extend(docker(&["network", "ls", "-q", "--filter", &label]));
    all.extend(docker(&["volume", "ls", "-q", "--filter", &label]));
    all
}

/// Wait (polling the engine) until run `run_id`'s first replica container runs: the
/// environment is up and the workload is starting.
fn await_replica(run_id: &str, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(240);
    let label = format!("label=chaos.run={run_id}");
    let name = format!("name=chaos-{run_id}-mediconnect-1");
    loop {
        if !docker(&["ps", "-q", "--filter", &label, "--filter", &name]).is_empty() {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("chaos exited with {status} before its replica ran");
        }
        assert!(
            Instant::now() < deadline,
            "no replica of {run_id} within 240s"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Wait until the run's workload has recorded `ops` events in its history: mid-run.
fn await_workload(out: &Path, ops: usize, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(240);
    loop {
        let lines = std::fs::read_to_string(out.join("history.jsonl"))
            .map(|t| t.lines().count())
            .unwrap_or(0);
        if lines >= ops {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("chaos exited with {status} before its workload ran");
        }
        assert!(Instant::now() < deadline, "no workload within 240s");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The run id the bundle's endpoints.json names (written once the environment is up).
fn bundle_run_id(out: &Path) -> String {
    let text = std::fs::read_to_string(out.join("endpoints.json")).expect("endpoints.json");
    let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(doc["environment"], "docker", "{doc}");
    doc["run_id"].as_str().unwrap().to_string()
}

/// Interrupt a run mid-workload with `signal`: it exits `code` and leaves nothing.
fn interrupted_mid_run(tag: &str, seed: u64, signal: nix::sys::signal::Signal, code: i32) {
    let (mut child, run_id) = spawn_run(tag, seed);
    await_workload(&out_dir(tag), 200, &mut child);
    assert_eq!(bundle_run_id(&out_dir(tag)), run_id);
    assert!(resources(&run_id).len() >= 9, "the run's containers are up");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), signal).unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(code), "interrupted by {signal}");
    let left = resources(&run_id);
    assert!(left.is_empty(), "left behind by {run_id}: {left:?}");
    let _ = std::fs::remove_dir_all(out_dir(tag));
}

fn spawn_run(tag: &str, seed: u64) -> (Child, String) {
    let child = chaos()
        .args(["run", SCENARIO, "--profile", "hardened", "--env", "docker"])
        .args(["--seed", &seed.to_string(), "--out"])
        .arg(out_dir(tag))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn chaos run");
    let run_id = format!("redis-kill-hardened-{seed}-{}-1", child.id());
    (child, run_id)
}

#[test]
fn a_missing_image_is_exit_4_naming_the_build_command_and_nothing_is_pulled() {
    let since = docker(&["version", "--format", "{{.Server.Os}}"]);
    assert_eq!(since, ["linux"], "the engine answers");
    let t0 = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        - 1;
    let prefix = format!("chaos-absent-{}", std::process::id());
    let out = chaos()
        .args([
            "run",
            SCENARIO,
            "--env",
            "docker",
            "--no-image-build",
            "--seed",
            "1",
        ])
        .arg("--out")
        .arg(out_dir("missing"))
        .env("CHAOS_IMAGE_PREFIX", &prefix)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "stderr:\n{stderr}");
    assert!(
        stderr.contains(&format!("image {prefix}-base:")),
        "{stderr}"
    );
    assert!(stderr.contains("chaos images build"), "{stderr}");
    assert!(stderr.contains("never pulled"), "{stderr}");
    // The engine saw no pull in the meantime.
    let t1 = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 1;
    let pulls = docker(&[
        "events",
        "--since",
        &t0.to_string(),
        "--until",
        &t1.to_string(),
        "--filter",
        "type=image",
        "--filter",
        "event=pull",
    ]);
    assert!(pulls.is_empty(), "the engine pulled: {pulls:?}");
    let _ = std::fs::remove_dir_all(out_dir("missing"));
}

#[test]
fn no_docker_engine_is_exit_4_saying_what_to_do() {
    let out = chaos()
        .args(["run", SCENARIO, "--env", "docker", "--seed", "1"])
        .arg("--out")
        .arg(out_dir("noengine"))
        .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "stderr:\n{stderr}");
    assert!(
        stderr.contains("cannot reach the Docker engine"),
        "{stderr}"
    );
    assert!(stderr.contains("--env local"), "{stderr}");
    let _ = std::fs::remove_dir_all(out_dir("noengine"));
}

#[test]
fn ctrl_c_mid_run_removes_every_container_network_and_volume() {
    interrupted_mid_run("ctrlc", 11, nix::sys::signal::Signal::SIGINT, 130);
}

#[test]
fn sigterm_mid_run_removes_every_container_network_and_volume() {
    interrupted_mid_run("sigterm", 15, nix::sys::signal::Signal::SIGTERM, 143);
}

#[test]
fn a_sigkilled_run_is_reaped_by_the_next_command() {
    let (mut child, run_id) = spawn_run("killed", 12);
    await_replica(&run_id, &mut child);
    child.kill().unwrap();
    child.wait().unwrap();
    let left = resources(&run_id);
    assert!(
        left.len() >= 9,
        "a SIGKILLed harness cannot clean up: its containers, network and volumes remain ({left:?})"
    );
    // The next command that starts a docker environment reaps it first.
    let mut up = chaos()
        .args(["up", SCENARIO, "--env", "docker", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let up_id = format!("up-redis-kill-{}", up.id());
    let mut line = String::new();
    BufReader::new(up.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let doc: serde_json::Value = serde_json::from_str(&line)
        .unwrap_or_else(|e| panic!("`chaos up --json` printed {line:?}: {e}"));
    assert_eq!(doc["environment"], "docker");
    let left = resources(&run_id);
    assert!(left.is_empty(), "not reaped: {left:?}");
    assert!(!resources(&up_id).is_empty(), "the new environment is up");
    // Ctrl-C ends `up`, which removes its own.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(up.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let status = up.wait().unwrap();
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut up.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(status.success(), "up stderr:\n{stderr}");
    assert!(
        stderr.contains(&format!("reaped the containers of crashed run {run_id}")),
        "{stderr}"
    );
    let left = resources(&up_id);
    assert!(left.is_empty(), "left behind by {up_id}: {left:?}");
    let _ = std::fs::remove_dir_all(out_dir("killed"));
}

#[test]
fn a_panicking_harness_leaves_nothing_on_docker() {
    let mut child = chaos()
        .args(["run", SCENARIO, "--profile", "hardened", "--env", "docker"])
        .args(["--seed", "13", "--out"])
        .arg(out_dir("panic"))
        .env("CHAOS_SELF_TEST_PANIC", "steady")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let run_id = format!("redis-kill-hardened-13-{}-1", child.id());
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(101), "a panic: {stderr}");
    assert!(
        stderr.contains("self-test panic requested in phase steady"),
        "{stderr}"
    );
    // The environment was up (its bundle names it) when the harness panicked.
    assert_eq!(bundle_run_id(&out_dir("panic")), run_id);
    let left = resources(&run_id);
    assert!(left.is_empty(), "left behind by {run_id}: {left:?}");
    let _ = std::fs::remove_dir_all(out_dir("panic"));
}

#[test]
fn down_all_removes_every_run_left_on_the_engine() {
    let (mut child, run_id) = spawn_run("downall", 14);
    await_replica(&run_id, &mut child);
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(!resources(&run_id).is_empty());
    let out = chaos().args(["down", "--all"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains(&format!("run {run_id}")), "{stdout}");
    let left = resources(&run_id);
    assert!(left.is_empty(), "left behind by {run_id}: {left:?}");
    let _ = std::fs::remove_dir_all(out_dir("downall"));
}
