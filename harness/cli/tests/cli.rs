//! The CLI's contract without an environment: usage errors, bad scenarios and exit codes.
//! Fast tier: nothing here starts a server.

use std::path::Path;
use std::process::Command;

fn chaos(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_chaos"))
        .args(args)
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."))
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn temp_scenario(name: &str, text: &str) -> String {
    let p = std::env::temp_dir().join(format!("chaos-cli-{}-{name}", std::process::id()));
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

#[test]
fn a_missing_scenario_exits_3_naming_the_file() {
    let (code, _, err) = chaos(&["run", "scenarios/nope.toml"]);
    assert_eq!(code, 3);
    assert!(err.contains("scenarios/nope.toml: cannot read"), "{err}");
}

#[test]
fn a_malformed_scenario_exits_3_with_file_line_and_field_and_starts_nothing() {
    let f = temp_scenario(
        "bad.toml",
        "name = \"x\"\n[workload]\nduration = 10\nrate = 5\nclients = 1\n[invariants]\nno_double_booking = {}\n",
    );
    let (code, out, err) = chaos(&["run", &f, "--out", "/nonexistent/never-created"]);
    assert_eq!(code, 3, "{out}{err}");
    assert!(
        err.contains(&format!("{f}: line 3: workload.duration: ")),
        "{err}"
    );
    assert!(
        !err.contains("phase up"),
        "nothing may start for a bad scenario: {err}"
    );
    let _ = std::fs::remove_file(&f);
}

#[test]
fn bench_report_without_trustworthy_parts_exits_3_and_writes_nothing() {
    let dir = std::env::temp_dir().join(format!("chaos-cli-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let (parts, out) = (dir.join("parts"), dir.join("out"));
    std::fs::create_dir_all(&parts).unwrap();
    let readme = dir.join("README.md");
    std::fs::write(
        &readme,
        "<!-- bench:begin (written by `just bench`) -->\n<!-- bench:end -->\n",
    )
    .unwrap();
    let args = |p: &Path| {
        [
            "bench-report",
            "--parts",
            p.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--readme",
            readme.to_str().unwrap(),
        ]
        .map(str::to_string)
    };
    let run = |p: &Path| {
        let a = args(p);
        chaos(&a.iter().map(String::as_str).collect::<Vec<_>>())
    };
    let (code, _, err) = run(&dir.join("none"));
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("run `just bench` first"), "{err}");
    std::fs::write(parts.join("proxy.json"), "{ not json").unwrap();
    let (code, _, err) = run(&parts);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("proxy.json: not a bench part"), "{err}");
    assert!(!out.exists(), "nothing is written from bad input");
    assert!(
        std::fs::read_to_string(&readme)
            .unwrap()
            .ends_with("<!-- bench:end -->\n")
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn usage_errors_exit_3_and_help_exits_0() {
    assert_eq!(chaos(&["run"]).0, 3);
    assert_eq!(chaos(&["run", "x.toml", "--profile", "paranoid"]).0, 3);
    assert_eq!(chaos(&["frobnicate"]).0, 3);
    let (code, out, _) = chaos(&["--help"]);
    assert_eq!(code, 0);
    assert!(out.contains("Exit codes"), "{out}");
}

#[test]
fn every_checked_in_scenario_validates() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scenarios/mediconnect");
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path().display().to_string())
        .filter(|p| p.ends_with(".toml"))
        .collect();
    files.sort();
    assert!(files.len() >= 2);
    let mut args = vec!["validate"];
    args.extend(files.iter().map(String::as_str));
    let (code, out, err) = chaos(&args);
    assert_eq!(code, 0, "{out}{err}");
}

#[test]
fn every_checked_in_suite_names_scenarios_that_exist_and_validate() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scenarios");
    let mut suites = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "toml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let suite = chaos_model::Suite::parse(&path.display().to_string(), &text)
            .unwrap_or_else(|e| panic!("{e}"));
        suites += 1;
        let rows = suite
            .rows(&path.display().to_string(), &text, |d| {
                Ok(std::fs::read_dir(dir.join(d))
                    .map_err(|e| e.to_string())?
                    .map(|e| e.unwrap().file_name().into_string().unwrap())
                    .collect())
            })
            .unwrap_or_else(|e| panic!("{e}"));
        let files: Vec<String> = rows
            .iter()
            .map(|r| dir.join(&r.scenario).display().to_string())
            .collect();
        if suite.name != "smoke" {
            // nightly and release run every experiment; the docker suite every docker one.
            let sub = if suite.name == "docker" {
                "docker"
            } else {
                "mediconnect"
            };
            let every = std::fs::read_dir(dir.join(sub)).unwrap().count();
            let distinct: std::collections::BTreeSet<&String> = files.iter().collect();
            assert_eq!(distinct.len(), every, "{}", path.display());
        }
        let mut args = vec!["validate"];
        args.extend(files.iter().map(String::as_str));
        let (code, out, err) = chaos(&args);
        assert_eq!(code, 0, "{}: {out}{err}", path.display());
    }
    assert!(suites >= 4, "smoke, nightly, release and docker");
}

/// A private directory for one test's files (and, as TMPDIR, for `chaos up`/`down` records).
fn temp_dir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("chaos-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn chaos_env(args: &[&str], env: &[(&str, &Path)]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_chaos"))
        .args(args)
        .envs(env.iter().map(|(k, v)| (*k, v.as_os_str())))
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."))
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn garbage_inputs_exit_3_with_a_message_on_stderr_and_never_panic() {
    let dir = temp_dir("garbage");
    let file = |name: &str, bytes: &[u8]| {
        let p = dir.join(name);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(&p, bytes).unwrap();
        p.display().to_string()
    };
    let binary = file("binary.toml", &[0xff, 0xfe, 0x00, b'[', 0x9f, b'\n', b'=']);
    let contention = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../scenarios/mediconnect/booking-contention.toml"),
    )
    .unwrap();
    let half = file("half.toml", &contention.as_bytes()[..contention.len() / 2]);
    let suite = file("suite.toml", b"name = \"s\"\n[[run]]\nscenario = 3\n");
    let globbed = file(
        "globbed.toml",
        b"name = \"s\"\n[[run]]\nscenario = \"*.nothing\"\n",
    );
    let bundle = dir.join("bundle");
    file(
        "bundle/scenario.toml",
        b"# as run: profile = \"naive\", seed = 1\n\x00\x01 = = [[\n",
    );
    file(
        "bundle/history.jsonl",
        b"{\"type\":\"ok\",\"op\":1,\"time_us\":5}\n",
    );
    let bundle = bundle.display().to_string();
    let missing = dir.join("no-bundle").display().to_string();
    let tmp = temp_dir("garbage-tmp");
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["validate", &binary], "binary.toml"),
        (vec!["validate", &half], "half.toml"),
        (vec!["run", &binary], "binary.toml"),
        (vec!["up", &half], "half.toml"),
        (vec!["suite", &suite], "run[0].scenario"),
        (vec!["suite", &globbed], "matches no file"),
        (vec!["suite", &binary], "binary.toml"),
        (
            vec!["suite", "scenarios/release.toml", "--baseline", &missing],
            "index.json: cannot read",
        ),
        (vec!["report", &bundle], "scenario.toml: line 2"),
        (vec!["report", &missing], "no-bundle"),
        (vec!["report", "--compare", &bundle, &missing], "bundle"),
        (vec!["proxy", "--api", "not an address"], "--api"),
        (vec!["down", "--run", "up-nothing-1"], "up-nothing-1"),
    ];
    for (args, needle) in cases {
        let (code, out, err) = chaos_env(&args, &[("TMPDIR", &tmp)]);
        assert_eq!(code, 3, "{args:?}: {out}{err}");
        assert!(
            err.contains(needle),
            "{args:?}: stderr lacks {needle}: {err}"
        );
        assert!(
            !err.contains("panicked") && !err.contains("RUST_BACKTRACE"),
            "{args:?}: {err}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&tmp);
}

fn start_time(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    rest.split(' ').nth(19).unwrap().parse().unwrap()
}

fn alive(child: &mut std::process::Child) -> bool {
    child.try_wait().unwrap().is_none()
}

#[test]
fn down_signals_only_the_process_that_started_when_recorded() {
    let tmp = temp_dir("down");
    let up = tmp.join("chaos/up");
    std::fs::create_dir_all(&up).unwrap();
    let mut child = Command::new("sleep").arg("60").spawn().unwrap();
    let pid = child.id();
    let started = start_time(pid);
    let record = |id: &str, started: Option<u64>| {
        let doc = match started {
            Some(s) => format!("{{\"pid\": {pid}, \"started\": {s}}}"),
            None => format!("{{\"pid\": {pid}}}"),
        };
        std::fs::write(up.join(format!("{id}.json")), doc).unwrap();
    };

    // The pid recorded now names a process that started later: never signalled.
    record("up-recycled-1", Some(started + 1));
    let (code, out, err) = chaos_env(&["down"], &[("TMPDIR", &tmp)]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(err.contains("not signalled"), "{err}");
    assert!(alive(&mut child), "a recycled pid was signalled");
    assert!(
        !up.join("up-recycled-1.json").exists(),
        "the stale record is removed"
    );

    // No start time recorded anywhere: nothing proves it is ours.
    record("up-unknown-1", None);
    let (code, _, err) = chaos_env(&["down"], &[("TMPDIR", &tmp)]);
    assert_eq!(code, 4, "{err}");
    assert!(alive(&mut child));
    std::fs::remove_file(up.join("up-unknown-1.json")).unwrap();

    // The run directory's owner record (as the engine writes it) proves it.
    record("up-owned-1", None);
    let owner = tmp.join("chaos/runs/up-owned-1");
    std::fs::create_dir_all(&owner).unwrap();
    std::fs::write(owner.join("owner"), format!("{pid} {started}\n")).unwrap();
    let (code, out, err) = chaos_env(&["down", "--run", "up-owned-1"], &[("TMPDIR", &tmp)]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains(&format!("stopping up-owned-1 (pid {pid})")),
        "{out}"
    );
    let status = child.wait().unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(15), "SIGTERM");
    let _ = std::fs::remove_dir_all(&tmp);
}
