//! End-to-end: the `chaos` binary runs real scenarios against real PostgreSQL, Redis and
//! RabbitMQ started by its local environment. Slow tier (about a minute and a half).

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use chaos_engine::env::{processes_of_run, reap_leftovers};
use serde_json::Value;

#[path = "support/schema.rs"]
mod schema;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn scenario(name: &str) -> String {
    root()
        .join("scenarios/mediconnect")
        .join(name)
        .display()
        .to_string()
}

fn chaos() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_chaos"));
    c.current_dir(root());
    c
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
    out: PathBuf,
    run_id: String,
}

fn run(file: &str, profile: &str, seed: u64, extra_env: &[(&str, &str)]) -> Run {
    let out =
        std::env::temp_dir().join(format!("chaos-e2e-{profile}-{seed}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let mut cmd = chaos();
    cmd.args([
        "run",
        &scenario(file),
        "--profile",
        profile,
        "--seed",
        &seed.to_string(),
        "--out",
    ])
    .arg(&out)
    .envs(extra_env.iter().copied())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let child = cmd.spawn().expect("spawn chaos");
    let pid = child.id();
    let Output {
        status,
        stdout,
        stderr,
    } = child.wait_with_output().expect("wait for chaos");
    let name = file.trim_end_matches(".toml");
    Run {
        code: status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
        out,
        run_id: format!("{name}-{seed}-{pid}"),
    }
}

fn verdicts(r: &Run) -> Value {
    let text = std::fs::read_to_string(r.out.join("verdicts.json"))
        .unwrap_or_else(|e| panic!("no verdicts.json ({e}); stderr:\n{}", r.stderr));
    serde_json::from_str(&text).unwrap()
}

fn result<'a>(v: &'a Value, invariant: &str) -> &'a Value {
    v["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["invariant"] == invariant)
        .unwrap_or_else(|| panic!("no result for {invariant} in {v}"))
}

/// No process of the run is alive and every port it used can be bound again.
fn assert_nothing_left(r: &Run) {
    let left = processes_of_run(&r.run_id);
    assert!(
        left.is_empty(),
        "processes of run {} still alive: {left:?}",
        r.run_id
    );
    if let Ok(text) = std::fs::read_to_string(r.out.join("endpoints.json")) {
        let ep: Value = serde_json::from_str(&text).unwrap();
        for group in ["services", "direct"] {
            for (name, addr) in ep["endpoints"][group].as_object().unwrap() {
                let addr = addr.as_str().unwrap();
                std::net::TcpListener::bind(addr)
                    .unwrap_or_else(|e| panic!("{group} port of {name} ({addr}) still taken: {e}"));
            }
        }
    }
    assert!(
        !chaos_engine::env::runs_root().join(&r.run_id).exists(),
        "the run directory of {} was not removed",
        r.run_id
    );
}

/// Run `file` on both profiles with `seed`: naive must exit 1 with each of `broken` invalid,
/// hardened exit 0 with each of `held` valid, and neither may leave anything behind. Returns
/// both verdicts for further checks; the bundles are removed.
fn naive_breaks_hardened_holds(
    file: &str,
    seed: u64,
    broken: &[&str],
    held: &[&str],
) -> (Value, Value, String) {
    let naive = run(file, "naive", seed, &[]);
    assert_eq!(naive.code, 1, "naive stderr:\n{}", naive.stderr);
    let nv = verdicts(&naive);
    for inv in broken {
        assert_eq!(result(&nv, inv)["verdict"], "invalid", "naive {inv}: {nv}");
    }
    let history = std::fs::read_to_string(naive.out.join("history.jsonl")).unwrap();
    assert_nothing_left(&naive);
    let hardened = run(file, "hardened", seed, &[]);
    assert_eq!(
        hardened.code, 0,
        "hardened stdout:\n{}\nstderr:\n{}",
        hardened.stdout, hardened.stderr
    );
    let hv = verdicts(&hardened);
    for inv in held {
        assert_eq!(result(&hv, inv)["verdict"], "valid", "hardened {inv}: {hv}");
    }
    assert_nothing_left(&hardened);
    for r in [naive, hardened] {
        let _ = std::fs::remove_dir_all(&r.out);
    }
    (nv, hv, history)
}

#[test]
fn booking_contention_double_books_on_naive_and_not_on_hardened() {
    let naive = run("booking-contention.toml", "naive", 11, &[]);
    assert_eq!(
        naive.code, 1,
        "naive must exit 1 (invalid); stderr:\n{}",
        naive.stderr
    );
    let v = verdicts(&naive);
    assert_eq!(v["verdict"], "invalid");
    let ndb = result(&v, "no_double_booking");
    assert_eq!(ndb["verdict"], "invalid");
    assert!(
        !ndb["ops"].as_array().unwrap().is_empty(),
        "invalid must name the ops: {ndb}"
    );
    assert!(
        !ndb["rows"].as_array().unwrap().is_empty(),
        "and the database rows: {ndb}"
    );
    let last = naive.stdout.trim_end().lines().last().unwrap();
    assert!(
        last.starts_with("reproduce: chaos run ") && last.ends_with("--seed 11 --profile naive"),
        "last line: {last}"
    );
    for f in [
        "scenario.toml",
        "schedule.json",
        "history.jsonl",
        "verdicts.json",
        "summary.md",
        "junit.xml",
        "report.html",
        "evidence/evidence.json",
        "evidence/metrics-replica-1.prom",
    ] {
        assert!(naive.out.join(f).is_file(), "bundle lacks {f}");
    }
    // The evidence holds the queue depths and the target's metrics, read after quiesce.
    let ev: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(naive.out.join("evidence/evidence.json")).unwrap(),
    )
    .unwrap();
    assert!(
        ev["queues"]["reminders"]["messages"].is_u64(),
        "{}",
        ev["queues"]
    );
    assert!(ev["run_started_unix_ms"].is_u64());
    let metrics =
        std::fs::read_to_string(naive.out.join("evidence/metrics-replica-1.prom")).unwrap();
    assert!(
        metrics.contains("# TYPE"),
        "Prometheus text: {}",
        &metrics[..metrics.len().min(200)]
    );
    // report.html links the double booking's proof to the ops it cites.
    let html = std::fs::read_to_string(naive.out.join("report.html")).unwrap();
    let first = result(&v, "no_double_booking")["ops"][0].as_u64().unwrap();
    assert!(
        html.contains(&format!("<a href=\"#op-{first}\">")),
        "no link to op {first}"
    );
    assert!(
        html.contains(&format!("<tr id=\"op-{first}\">")),
        "no row for op {first}"
    );
    // The real output follows the checked-in schemas.
    let errors = schema::schema_errors("verdicts.schema.json", &v);
    assert!(errors.is_empty(), "verdicts.json: {errors:#?}");
    let history = std::fs::read_to_string(naive.out.join("history.jsonl")).unwrap();
    let errors = schema::history_errors(&history);
    assert!(errors.is_empty(), "history.jsonl: {errors:#?}");
    assert_eq!(result(&v, "acknowledged_durable")["verdict"], "valid");
    assert_eq!(result(&v, "within_schedule")["verdict"], "valid", "{v}");
    let ev: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(naive.out.join("evidence/evidence.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        ev["schedules"].as_array().map(Vec::len),
        Some(25),
        "5 providers x 5 weekdays"
    );
    assert_nothing_left(&naive);

    // junit.xml, read back by a real JUnit parser: one testsuite, one testcase per
    // invariant, the violated one a failure carrying its evidence.
    let file = std::fs::File::open(naive.out.join("junit.xml")).unwrap();
    let junit = junit_parser::from_reader(std::io::BufReader::new(file)).unwrap();
    assert_eq!(junit.suites.len(), 1);
    let suite = &junit.suites[0];
    assert_eq!(suite.name, "booking-contention/naive");
    assert_eq!(suite.tests as usize, v["results"].as_array().unwrap().len());
    assert_eq!(suite.failures, 1);
    let case = suite
        .cases
        .iter()
        .find(|c| c.original_name == "no_double_booking")
        .unwrap();
    assert!(case.status.is_failure(), "{:?}", case.status);
    assert!(
        suite
            .cases
            .iter()
            .find(|c| c.original_name == "latency")
            .unwrap()
            .status
            .is_success()
    );

    let hardened = run("booking-contention.toml", "hardened", 11, &[]);
    assert_eq!(
        hardened.code, 0,
        "hardened must exit 0 (valid); stdout:\n{}\nstderr:\n{}",
        hardened.stdout, hardened.stderr
    );
    let v = verdicts(&hardened);
    assert_eq!(result(&v, "no_double_booking")["verdict"], "valid");
    assert_nothing_left(&hardened);
    for r in [naive, hardened] {
        let _ = std::fs::remove_dir_all(&r.out);
    }
}

#[test]
fn a_broker_kill_loses_reminders_on_naive_and_none_on_hardened() {
    let (naive, _, _) = naive_breaks_hardened_holds(
        "rabbitmq-kill.toml",
        12,
        &["no_lost_reminders"],
        &[
            "no_lost_reminders",
            "no_duplicate_reminders",
            "faults_applied",
        ],
    );
    assert!(
        !result(&naive, "no_lost_reminders")["rows"]
            .as_array()
            .unwrap()
            .is_empty()
    );
}

/// 000:S1: with SendGrid refusing every call, naive requeues each failed reminder at once
/// (hundreds of refused calls a second, and the SMS again every time); hardened backs off
/// and opens its breaker, and every e-mail still gets through after the heal.
#[test]
fn a_dead_sendgrid_is_stormed_on_naive_and_not_on_hardened() {
    let (naive, _, _) = naive_breaks_hardened_holds(
        "sendgrid-down.toml",
        4,
        &["bounded_calls", "no_duplicate_reminders"],
        &[
            "bounded_calls",
            "no_lost_reminders",
            "no_duplicate_reminders",
        ],
    );
    let storm = result(&naive, "bounded_calls");
    assert!(
        storm["rows"][0]
            .as_str()
            .unwrap()
            .contains("refused calls to sendgrid in second"),
        "{storm}"
    );
}

/// 000:C5, 001:C-1: bookings sent twice with one Idempotency-Key. Naive ignores the key
/// and answers the retry 409, its own booking taken for a conflict; hardened replays.
#[test]
fn a_resubmitted_booking_conflicts_with_itself_on_naive_only() {
    let (naive, _, history) = naive_breaks_hardened_holds(
        "idempotent-retry.toml",
        6,
        &["idempotent_creation"],
        &["idempotent_creation"],
    );
    let r = result(&naive, "idempotent_creation");
    assert!(
        r["rows"][0].as_str().unwrap().contains("then answered 409"),
        "{r}"
    );
    assert!(
        history.contains("\"key\":"),
        "keyed bookings are recorded with their key"
    );
}

#[test]
fn redis_kill_logs_out_and_misreports_readiness_on_naive_only() {
    for profile in ["naive", "hardened"] {
        let r = run("redis-kill.toml", profile, 5, &[]);
        assert!(
            r.code == 0 || r.code == 1 || r.code == 2,
            "{profile}: exit {}; stderr:\n{}",
            r.code,
            r.stderr
        );
        let v = verdicts(&r);
        assert_eq!(
            result(&v, "faults_applied")["verdict"],
            "valid",
            "{profile}: {v}"
        );
        // Readiness agrees with what the replica serves: hardened degrades to PostgreSQL
        // sessions and is rightly ready; naive says ready while it serves nothing, and logs
        // everyone out when Redis comes back empty.
        let expected = if profile == "naive" {
            "invalid"
        } else {
            "valid"
        };
        for invariant in ["readiness", "sessions_survive"] {
            assert_eq!(
                result(&v, invariant)["verdict"],
                expected,
                "{profile} {invariant}: {v}"
            );
        }
        let history = std::fs::read_to_string(r.out.join("history.jsonl")).unwrap();
        assert!(
            history.contains("\"action\":\"inject\"") && history.contains("\"action\":\"heal\"")
        );
        // The fault's window in the history is the widest it may have been: from the start
        // of the kill (an op invoked while it was under way may meet it) to the end of the
        // restart, as schedule.json stamps them.
        let schedule: Value =
            serde_json::from_str(&std::fs::read_to_string(r.out.join("schedule.json")).unwrap())
                .unwrap();
        let applied = &schedule["faults"][0]["applied"];
        let at = |action: &str| -> u64 {
            history
                .lines()
                .map(|l| serde_json::from_str::<Value>(l).unwrap())
                .find(|rec| rec["type"] == "fault" && rec["action"] == action)
                .and_then(|rec| rec["time_us"].as_u64())
                .unwrap()
        };
        assert_eq!(
            at("inject"),
            applied["inject"]["started_us"].as_u64().unwrap(),
            "{profile}"
        );
        assert_eq!(
            at("heal"),
            applied["heal"]["done_us"].as_u64().unwrap(),
            "{profile}"
        );
        assert!(
            applied["inject"]["started_us"].as_u64() < applied["inject"]["done_us"].as_u64(),
            "{profile}: a kill takes time"
        );
        assert!(
            history.contains("\"f\":\"readiness\""),
            "probes are recorded"
        );
        assert_nothing_left(&r);
        let _ = std::fs::remove_dir_all(&r.out);
    }
}

/// Start booking-contention with `seed`, and wait until its workload runs. Returns the
/// child, its run id and its bundle directory.
fn start_mid_run(seed: u64, tag: &str) -> (std::process::Child, String, PathBuf) {
    let out = std::env::temp_dir().join(format!("chaos-e2e-{tag}-{}", std::process::id()));
    let mut child = chaos()
        .args([
            "run",
            &scenario("booking-contention.toml"),
            "--seed",
            &seed.to_string(),
            "--out",
        ])
        .arg(&out)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let run_id = format!("booking-contention-{seed}-{}", child.id());
    wait_for_phase(&mut child, "phase steady");
    (child, run_id, out)
}

/// Start a run, wait until its workload is running, send `signal`, and check the exit code
/// and that nothing of the run is left.
fn interrupt_mid_run(signal: nix::sys::signal::Signal, seed: u64, expected_code: i32) {
    let (mut child, run_id, out) = start_mid_run(seed, signal.as_ref());
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), signal).unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(expected_code), "exit after {signal}");
    let left = processes_of_run(&run_id);
    assert!(
        left.is_empty(),
        "after {signal}, processes of {run_id} alive: {left:?}"
    );
    assert!(!chaos_engine::env::runs_root().join(&run_id).exists());
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn sigterm_mid_run_stops_everything() {
    interrupt_mid_run(nix::sys::signal::Signal::SIGTERM, 3, 143);
}

#[test]
fn ctrl_c_mid_run_stops_everything() {
    interrupt_mid_run(nix::sys::signal::Signal::SIGINT, 8, 130);
}

#[test]
fn an_environment_that_cannot_start_exits_4_and_leaves_nothing() {
    // Without redis-server and epmd on PATH, Redis and RabbitMQ cannot start, while
    // PostgreSQL (found by absolute path) already has: it must be stopped again.
    let r = run(
        "booking-contention.toml",
        "hardened",
        9,
        &[("PATH", "/nonexistent")],
    );
    assert_eq!(r.code, 4, "stdout:\n{}\nstderr:\n{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains("missing"),
        "the error names what is missing: {}",
        r.stderr
    );
    assert_nothing_left(&r);
    let _ = std::fs::remove_dir_all(&r.out);
}

#[test]
fn a_panicking_harness_leaves_nothing_running() {
    let r = run(
        "booking-contention.toml",
        "hardened",
        4,
        &[("CHAOS_SELF_TEST_PANIC", "collect")],
    );
    assert_ne!(r.code, 0);
    assert!(
        r.stderr.contains("self-test panic"),
        "stderr:\n{}",
        r.stderr
    );
    assert_nothing_left(&r);
    let _ = std::fs::remove_dir_all(&r.out);
}

#[test]
fn a_later_run_reaps_what_a_killed_harness_left() {
    let (mut child, run_id, out) = start_mid_run(6, "kill");
    child.kill().unwrap();
    child.wait().unwrap();
    // Direct children die with the harness (parent-death signal); whatever a grandchild
    // kept alive is reaped by the next run, found by its run id.
    reap_leftovers();
    let left = processes_of_run(&run_id);
    assert!(
        left.is_empty(),
        "processes of the killed run {run_id} alive: {left:?}"
    );
    assert!(!chaos_engine::env::runs_root().join(&run_id).exists());
    let _ = std::fs::remove_dir_all(&out);
}

/// A plain HTTP/1.1 GET; returns the status code.
fn http_status(url: &str) -> u16 {
    use std::io::{Read, Write};
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest
        .split_once('/')
        .map_or((rest, "/".to_string()), |(h, p)| (h, format!("/{p}")));
    let mut s = std::net::TcpStream::connect(host).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    let _ = s.read_to_string(&mut text);
    text.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

#[test]
fn up_keeps_an_environment_until_down() {
    use std::io::{BufRead, BufReader};
    let mut up = chaos()
        .args([
            "up",
            &scenario("redis-kill.toml"),
            "--profile",
            "naive",
            "--json",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(up.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let ep: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"));
    let run_id = ep["run_id"].as_str().unwrap().to_string();
    for key in ["target", "proxy_api", "stubs", "services"] {
        assert!(!ep[key].is_null(), "--json lacks {key}: {ep}");
    }
    let target = ep["target"][0].as_str().unwrap();
    assert_eq!(http_status(&format!("{target}/health/readiness")), 200);
    assert_eq!(
        http_status(&format!(
            "{}/proxies/redis",
            ep["proxy_api"].as_str().unwrap()
        )),
        200
    );
    assert_eq!(
        http_status(&format!(
            "{}/calls",
            ep["stubs"]["twilio"].as_str().unwrap()
        )),
        200
    );
    assert!(
        !processes_of_run(&run_id).is_empty(),
        "the environment runs while up"
    );

    let down = chaos().args(["down", "--run", &run_id]).output().unwrap();
    assert!(
        down.status.success(),
        "{}",
        String::from_utf8_lossy(&down.stderr)
    );
    assert_eq!(up.wait().unwrap().code(), Some(0));
    let left = processes_of_run(&run_id);
    assert!(
        left.is_empty(),
        "after chaos down, processes of {run_id} alive: {left:?}"
    );
    let again = chaos().args(["down", "--run", &run_id]).output().unwrap();
    assert_eq!(
        again.status.code(),
        Some(3),
        "downing an unknown environment is a usage error"
    );
}

/// Read the child's stderr until a line contains `needle` (bounded by a deadline).
fn wait_for_phase(child: &mut std::process::Child, needle: &str) {
    use std::io::{BufRead, BufReader};
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    let mut seen = Vec::new();
    while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
        match rx.recv_timeout(left) {
            Ok(line) if line.contains(needle) => return,
            Ok(line) => seen.push(line),
            Err(_) => break,
        }
    }
    let _ = child.kill();
    panic!("never saw {needle:?}; stderr so far:\n{}", seen.join("\n"));
}
