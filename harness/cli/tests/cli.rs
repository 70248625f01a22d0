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
        let files: Vec<String> = suite
            .runs
            .iter()
            .map(|r| dir.join(&r.scenario).display().to_string())
            .collect();
        let mut args = vec!["validate"];
        args.extend(files.iter().map(String::as_str));
        let (code, out, err) = chaos(&args);
        assert_eq!(code, 0, "{}: {out}{err}", path.display());
    }
    assert!(suites >= 2, "smoke and nightly");
}
