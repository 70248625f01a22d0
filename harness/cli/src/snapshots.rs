//! Snapshot tests of the rendered reports (`summary.md`, `junit.xml`, `verdicts.json`) for
//! one fixed history, and validation of `verdicts.json` and `history.jsonl` against the
//! checked-in JSON Schemas. `UPDATE_SNAPSHOTS=1 cargo nextest run -p chaos-cli snapshots`
//! rewrites the snapshots after a deliberate change; review the diff before committing.

use std::path::PathBuf;

use chaos_engine::runner::RunReport;
use chaos_model::{
    AppointmentRow, Completion, Evidence, FaultAction, FaultEvent, History, Invoke, OpKind,
    Profile, Record, Scenario, Slot, Thresholds,
};

use crate::report::{self, RunFacts};
use crate::schema::{history_errors, schema_errors};

const SCENARIO: &str = r#"
name = "fixture"
description = "a fixed history: one double booking, one lost booking, a fault"
target = "mediconnect"

[workload]
duration = "1s"
rate = 10
clients = 3

[[faults]]
at = "200ms"
kill = "redis"
restart_after = "300ms"

[invariants]
no_double_booking = {}
acknowledged_durable = {}
auth_fails_closed = {}
latency = { steady = { p99 = "50ms" } }
"#;

const HOT: Slot = Slot {
    provider: 1,
    start: 1_893_999_600,
};

fn invoke(op: u64, f: OpKind, slot: Option<Slot>, t: u64) -> Record {
    Record::Invoke(Invoke {
        slot,
        ..Invoke::new(op, op as u32 % 3, f, t, t + 40)
    })
}

fn done(op: u64, t: u64, status: u16, appointment: Option<&str>) -> Completion {
    Completion {
        op,
        time_us: t,
        status: Some(status),
        appointment: appointment.map(str::to_string),
        error: None,
        ..Completion::default()
    }
}

/// Ops 1 and 2 both get the hot slot; op 3's booking is lost; op 4 times out; op 5 is a
/// forged token refused while Redis is down; op 6 a slow read.
pub(crate) fn fixture() -> (Scenario, History, Evidence) {
    let scenario = Scenario::parse("fixture.toml", SCENARIO).expect("the fixture parses");
    let other = Slot { provider: 2, ..HOT };
    let history = History::new(vec![
        invoke(1, OpKind::Book, Some(HOT), 10_000),
        invoke(2, OpKind::Book, Some(HOT), 10_000),
        Record::Ok(done(1, 22_000, 201, Some("a-1"))),
        Record::Ok(done(2, 25_000, 201, Some("a-2"))),
        Record::Fault(FaultEvent {
            fault: 0,
            name: "kill redis".into(),
            action: FaultAction::Inject,
            time_us: 200_000,
            effective_us: None,
            error: None,
        }),
        invoke(3, OpKind::Book, Some(other), 210_000),
        Record::Ok(done(3, 230_000, 201, Some("a-3"))),
        invoke(4, OpKind::Book, Some(other), 240_000),
        Record::Info(Completion {
            status: None,
            error: Some("timeout after 2s".into()),
            ..done(4, 2_240_000, 0, None)
        }),
        // A forged token while the session store is down: when failing open would show.
        invoke(5, OpKind::Forged, None, 300_000),
        Record::Fail(done(5, 301_000, 401, None)),
        Record::Fault(FaultEvent {
            fault: 0,
            name: "kill redis".into(),
            action: FaultAction::Heal,
            time_us: 500_000,
            effective_us: None,
            error: None,
        }),
        invoke(6, OpKind::Availability, None, 700_000),
        Record::Ok(done(6, 790_000, 200, None)),
    ]);
    let row = |id: &str, slot: Slot| AppointmentRow {
        id: id.into(),
        patient: 1,
        slot,
        status: "booked".into(),
        version: None,
    };
    let evidence = Evidence {
        appointments: Some(vec![row("a-1", HOT), row("a-2", HOT)]),
        ..Evidence::default()
    };
    (scenario, history, evidence)
}

pub(crate) fn rendered() -> Vec<(&'static str, String)> {
    let (scenario, history, evidence) = fixture();
    let results = chaos_check::check_all(&scenario, &history, &evidence);
    let report = RunReport {
        bundle: PathBuf::from("reports/runs/fixture/19700101T000000Z-7"),
        run_id: "fixture-7".into(),
        results,
        counts: [6, 4, 1, 1],
        setup_s: 1.25,
        workload_s: 1.0,
        phases: [
            ("up", 1.25),
            ("workload", 1.0),
            ("quiesce", 0.5),
            ("collect", 0.125),
            ("check", 0.0625),
            ("down", 0.25),
        ]
        .into_iter()
        .map(|(phase, s)| chaos_engine::runner::PhaseTime {
            phase: phase.into(),
            s,
        })
        .collect(),
    };
    let reproduce = crate::commands::reproduce_line(
        std::path::Path::new("scenarios/fixture.toml"),
        7,
        Profile::Naive,
    );
    let facts = RunFacts {
        scenario: "fixture",
        profile: Profile::Naive,
        seed: 7,
        reproduce: &reproduce,
    };
    vec![
        ("summary.md", report::summary_md(&facts, &report)),
        (
            "junit.xml",
            report::junit_document(vec![report::junit_suite(&facts, &report)]),
        ),
        ("verdicts.json", report::verdicts_json(&facts, &report)),
    ]
}

fn snapshot_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/snapshots")
        .join(format!("fixture.{name}"))
}

#[test]
fn reports_match_their_snapshots() {
    let update = std::env::var_os("UPDATE_SNAPSHOTS").is_some();
    let mut stale = Vec::new();
    for (name, text) in rendered() {
        let path = snapshot_path(name);
        if update {
            std::fs::write(&path, &text).unwrap();
            continue;
        }
        let expected = std::fs::read_to_string(&path).unwrap_or_default();
        if expected != text {
            stale.push(format!(
                "--- {} (expected)\n{expected}\n+++ rendered now\n{text}",
                path.display()
            ));
        }
    }
    assert!(
        stale.is_empty(),
        "snapshots differ (UPDATE_SNAPSHOTS=1 to accept):\n{}",
        stale.join("\n")
    );
}

#[test]
fn the_fixture_convicts_what_it_plants() {
    let verdicts: serde_json::Value = serde_json::from_str(&rendered()[2].1).unwrap();
    let by_name = |n: &str| {
        verdicts["results"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["invariant"] == n)
            .unwrap_or_else(|| panic!("no result for {n}"))
            .clone()
    };
    assert_eq!(
        by_name("no_double_booking")["ops"],
        serde_json::json!([1, 2])
    );
    assert_eq!(
        by_name("acknowledged_durable")["ops"],
        serde_json::json!([3])
    );
    assert_eq!(by_name("auth_fails_closed")["verdict"], "valid");
    assert_eq!(verdicts["verdict"], "invalid");
}

#[test]
fn verdicts_and_history_follow_their_schemas() {
    let verdicts: serde_json::Value = serde_json::from_str(&rendered()[2].1).unwrap();
    let errors = schema_errors("verdicts.schema.json", &verdicts);
    assert!(errors.is_empty(), "{errors:#?}");
    let (_, history, _) = fixture();
    let jsonl: String = history
        .records
        .iter()
        .map(|r| serde_json::to_string(r).unwrap() + "\n")
        .collect();
    let errors = history_errors(&jsonl);
    assert!(errors.is_empty(), "{errors:#?}");
}

#[test]
fn a_history_line_with_every_field_of_the_model_follows_the_schema() {
    let slot = Slot {
        provider: 2,
        start: 1_894_006_800,
    };
    let invoke = Invoke {
        slot: Some(slot),
        key: Some("k".into()),
        target: Some("a-1".into()),
        to: Some(slot),
        hours: Some([600, 960]),
        replica: Some(2),
        session: Some(8),
        trace: Some("0123456789abcdef0123456789abcdef".into()),
        attempt: Some(2),
        ..Invoke::new(10, 1, OpKind::Reschedule, 5, 6)
    };
    let done = Completion {
        op: 10,
        time_us: 7,
        status: Some(503),
        appointment: Some("a-1".into()),
        error: Some("overloaded".into()),
        retry_after: Some(1),
        free: Some(vec![slot.start]),
        promoted: Some("a-2".into()),
        version: Some(3),
        patient: Some(4),
    };
    let jsonl: String = [Record::Invoke(invoke), Record::Info(done)]
        .iter()
        .map(|r| serde_json::to_string(r).unwrap() + "\n")
        .collect();
    let errors = history_errors(&jsonl);
    assert!(errors.is_empty(), "{errors:#?}");
}

#[test]
fn the_schemas_refuse_what_they_must() {
    let valid_unknown = serde_json::json!({
        "scenario": "s", "profile": "naive", "seed": 1, "verdict": "unknown",
        "results": [{ "invariant": "latency", "verdict": "unknown", "reason": "r", "detail": "d" }],
        "ops": { "invoked": 0, "ok": 0, "fail": 0, "info": 0 },
        "setup_s": 0.1, "workload_s": 0.0, "phases": [{ "phase": "up", "s": 0.1 }],
        "reproduce": "chaos run f.toml --seed 1 --profile naive"
    });
    assert!(schema_errors("verdicts.schema.json", &valid_unknown).is_empty());
    let mut no_reason = valid_unknown.clone();
    no_reason["results"][0]
        .as_object_mut()
        .unwrap()
        .remove("reason");
    assert!(!schema_errors("verdicts.schema.json", &no_reason).is_empty());
    let mut bad_phase = valid_unknown.clone();
    bad_phase["phases"][0]["phase"] = "lunch".into();
    assert!(!schema_errors("verdicts.schema.json", &bad_phase).is_empty());
    let mut bad_profile = valid_unknown;
    bad_profile["profile"] = "sturdy".into();
    assert!(!schema_errors("verdicts.schema.json", &bad_profile).is_empty());
    assert!(
        !history_errors(r#"{"type":"ok","op":1}"#).is_empty(),
        "ok needs time_us"
    );
    assert!(
        !history_errors(r#"{"type":"invoke","op":1,"process":0,"f":"fly","due_us":0,"time_us":0}"#)
            .is_empty()
    );
}

/// The fixture as a bundle on disk, as the engine would have left it (before the reports).
pub(crate) fn fixture_bundle(name: &str, scenario_name: &str) -> PathBuf {
    fixture_bundle_with(name, scenario_name, fixture().1)
}

/// The fixture's bundle with another history.
pub(crate) fn fixture_bundle_with(name: &str, scenario_name: &str, history: History) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("chaos-fixture-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("evidence")).unwrap();
    let (_, _, evidence) = fixture();
    let text = SCENARIO.replace("name = \"fixture\"", &format!("name = \"{scenario_name}\""));
    std::fs::write(
        dir.join("scenario.toml"),
        format!("# as run: profile = \"naive\", seed = 7\n{text}"),
    )
    .unwrap();
    let jsonl: String = history
        .records
        .iter()
        .map(|r| serde_json::to_string(r).unwrap() + "\n")
        .collect();
    std::fs::write(dir.join("history.jsonl"), jsonl).unwrap();
    std::fs::write(
        dir.join("evidence/evidence.json"),
        serde_json::to_string(&evidence).unwrap(),
    )
    .unwrap();
    std::fs::write(dir.join("verdicts.json"), &rendered()[2].1).unwrap();
    std::fs::write(
        dir.join("schedule.json"),
        r#"{"seed": 7, "faults": [{"name": "kill redis", "at_us": 200000}]}"#,
    )
    .unwrap();
    dir
}

#[test]
fn report_rerenders_a_bundle_with_links_to_the_proof() {
    let dir = fixture_bundle("rerender", "fixture");
    let code = crate::commands::render::run(Some(&dir), None, &Thresholds::default());
    assert_eq!(code, crate::exit::INVALID, "the fixture plants violations");
    let read = |n: &str| std::fs::read_to_string(dir.join(n)).unwrap();
    let run = rendered();
    assert_eq!(
        read("summary.md"),
        run[0].1,
        "re-rendered as the run rendered it"
    );
    assert_eq!(read("junit.xml"), run[1].1);
    let html = read("report.html");
    for needle in [
        "<a href=\"#op-1\">1</a>, <a href=\"#op-2\">2</a>",
        "<tr id=\"op-1\">",
        "<tr id=\"op-3\">",
        "<svg",
        "fault active",
        "kill redis",
    ] {
        assert!(html.contains(needle), "report.html lacks {needle}");
    }
    assert!(!html.contains("<script") && !html.contains("http-equiv") && !html.contains("src="));
    let verdicts: serde_json::Value = serde_json::from_str(&read("verdicts.json")).unwrap();
    assert!(schema_errors("verdicts.schema.json", &verdicts).is_empty());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn report_refuses_what_is_no_bundle() {
    let dir = std::env::temp_dir().join(format!("chaos-no-bundle-{}", std::process::id()));
    assert_eq!(
        crate::commands::render::run(Some(&dir), None, &Thresholds::default()),
        crate::exit::USAGE
    );
    let bundle = fixture_bundle("bad-header", "fixture");
    let text = std::fs::read_to_string(bundle.join("scenario.toml")).unwrap();
    std::fs::write(
        bundle.join("scenario.toml"),
        &text[text.find('\n').unwrap() + 1..],
    )
    .unwrap();
    assert_eq!(
        crate::commands::render::run(Some(&bundle), None, &Thresholds::default()),
        crate::exit::USAGE
    );
    std::fs::remove_dir_all(&bundle).unwrap();
}

#[test]
fn compare_shows_phase_deltas_and_refuses_different_scenarios() {
    use crate::report::bundle::Bundle;
    let a = fixture_bundle("compare-a", "fixture");
    let b = fixture_bundle("compare-b", "fixture");
    let c = fixture_bundle("compare-c", "another");
    let none = Thresholds::default();
    let (text, regressions) = crate::report::compare::compare(
        &Bundle::load(&a).unwrap(),
        &Bundle::load(&b).unwrap(),
        &none,
    )
    .unwrap();
    assert!(
        regressions.is_empty() && !text.contains("## Gate"),
        "{text}"
    );
    // Op 6 is due at 0.7 s (steady: the recovery window is 5 s by default, so it is
    // recovery), ops 3, 4 and the forged op 5 in the fault window.
    assert!(
        text.contains("| fault | 3 → 3 | 20.0ms → 20.0ms +0us (+0%) |"),
        "{text}"
    );
    assert!(
        text.contains("| no_double_booking | invalid | invalid |"),
        "{text}"
    );
    let refused = crate::report::compare::compare(
        &Bundle::load(&a).unwrap(),
        &Bundle::load(&c).unwrap(),
        &none,
    );
    assert!(refused.unwrap_err().contains("different scenarios"));
    assert_eq!(
        crate::commands::render::run(None, Some(&[a.clone(), c.clone()]), &Thresholds::default()),
        crate::exit::USAGE
    );
    for d in [a, b, c] {
        std::fs::remove_dir_all(d).unwrap();
    }
}

#[test]
fn compare_with_thresholds_exits_1_only_on_a_regression_past_them() {
    // Op 2, a steady booking, now takes 90 ms instead of 15 ms: the steady p99 is six times
    // the baseline's.
    let slower = History::new(
        fixture()
            .1
            .records
            .into_iter()
            .map(|r| match r {
                Record::Ok(c) if c.op == 2 => Record::Ok(Completion {
                    time_us: 100_000,
                    ..c
                }),
                r => r,
            })
            .collect(),
    );
    let a = fixture_bundle("gate-a", "fixture");
    let b = fixture_bundle_with("gate-b", "fixture", slower);
    let run = |x: &PathBuf, y: &PathBuf, t: Thresholds| {
        crate::commands::render::run(None, Some(&[x.clone(), y.clone()]), &t)
    };
    let p99 = Thresholds {
        p99_ratio: Some(1.5),
        ..Thresholds::default()
    };
    assert_eq!(run(&a, &b, p99), crate::exit::INVALID);
    assert_eq!(run(&a, &a, p99), crate::exit::VALID, "no regression");
    assert_eq!(
        run(&b, &a, p99),
        crate::exit::VALID,
        "getting faster is no regression"
    );
    assert_eq!(
        run(&a, &b, Thresholds::default()),
        crate::exit::VALID,
        "without thresholds it only prints"
    );
    let loose = Thresholds {
        p99_ratio: Some(10.0),
        error_share_delta: Some(0.0),
        recovery_ratio: Some(1.0),
    };
    assert_eq!(run(&a, &b, loose), crate::exit::VALID, "6x is within 10x");
    let bad = Thresholds {
        p99_ratio: Some(0.5),
        ..Thresholds::default()
    };
    assert_eq!(run(&a, &b, bad), crate::exit::USAGE, "a ratio below 1");

    use crate::report::bundle::Bundle;
    let (text, found) = crate::report::compare::compare(
        &Bundle::load(&a).unwrap(),
        &Bundle::load(&b).unwrap(),
        &p99,
    )
    .unwrap();
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!((found[0].at.as_str(), found[0].figure), ("steady", "p99"));
    assert!(text.contains("## Gate: p99 at most 1.5x"), "{text}");
    assert!(
        text.contains("| steady | p99 | 15.0ms | **90.0ms** |"),
        "{text}"
    );
    for d in [a, b] {
        std::fs::remove_dir_all(d).unwrap();
    }
}

/// Break one file of a fresh fixture bundle; `None` removes it.
fn broken_bundle(tag: &str, file: &str, text: Option<&str>) -> PathBuf {
    let dir = fixture_bundle(&format!("broken-{tag}"), "fixture");
    match text {
        Some(t) => std::fs::write(dir.join(file), t).unwrap(),
        None => std::fs::remove_file(dir.join(file)).unwrap(),
    }
    dir
}

#[test]
fn a_truncated_or_corrupt_bundle_is_an_error_naming_the_file_and_line() {
    use crate::report::bundle::Bundle;
    let whole = fixture_bundle("whole", "fixture");
    let read = |f: &str| std::fs::read_to_string(whole.join(f)).unwrap();
    let history = read("history.jsonl");
    let scenario = read("scenario.toml");
    let cut = |t: &str, at: usize| t[..at].to_string();
    let second_line = history.find('\n').unwrap() + 1;
    let cases: Vec<(&str, &str, Option<String>, &str)> = vec![
        (
            "h-missing",
            "history.jsonl",
            None,
            "history.jsonl: cannot read",
        ),
        (
            "h-truncated",
            "history.jsonl",
            Some(cut(&history, second_line + 10)),
            "history.jsonl: line 2: ",
        ),
        (
            "h-early",
            "history.jsonl",
            Some(format!(
                "{{\"type\":\"ok\",\"op\":99,\"time_us\":5,\"status\":200}}\n{history}"
            )),
            "history.jsonl: line 1: op 99 completes before it is invoked",
        ),
        (
            "h-repeated",
            "history.jsonl",
            Some(format!("{history}{}", &history[..second_line])),
            "is invoked a second time",
        ),
        (
            "h-binary",
            "history.jsonl",
            Some("\u{0}\u{1}garbage\n".into()),
            "history.jsonl: line 1: ",
        ),
        (
            "v-missing",
            "verdicts.json",
            None,
            "verdicts.json: cannot read",
        ),
        (
            "v-truncated",
            "verdicts.json",
            Some(cut(&read("verdicts.json"), 40)),
            "verdicts.json: line ",
        ),
        (
            "v-shape",
            "verdicts.json",
            Some("{\"setup_s\": \"soon\", \"workload_s\": 1, \"reproduce\": \"x\"}".into()),
            "verdicts.json: line 1",
        ),
        (
            "v-phase",
            "verdicts.json",
            Some(
                "{\"setup_s\": 1, \"workload_s\": 1, \"phases\": [{\"phase\": \"up\", \"s\": -1}], \"reproduce\": \"x\"}"
                    .into(),
            ),
            "phase up must take seconds (0 to 1e9), found -1",
        ),
        (
            "e-missing",
            "evidence/evidence.json",
            None,
            "evidence/evidence.json: cannot read",
        ),
        (
            "e-truncated",
            "evidence/evidence.json",
            Some("{\"appointments\": [".into()),
            "evidence/evidence.json: line 1",
        ),
        (
            "s-missing",
            "scenario.toml",
            None,
            "scenario.toml: cannot read",
        ),
        (
            "s-header",
            "scenario.toml",
            Some(scenario.lines().skip(1).collect::<Vec<_>>().join("\n")),
            "scenario.toml: line 1: the first line is not",
        ),
        (
            "s-corrupt",
            "scenario.toml",
            Some(scenario.replace("rate = 10", "rate = [")),
            "scenario.toml: line ",
        ),
        (
            "sch-missing",
            "schedule.json",
            None,
            "schedule.json: cannot read",
        ),
        (
            "sch-truncated",
            "schedule.json",
            Some("{\"seed\": ".into()),
            "schedule.json: line 1",
        ),
        (
            "sch-shape",
            "schedule.json",
            Some("[1, 2]".into()),
            "schedule.json: expected a JSON object",
        ),
    ];
    for (tag, file, text, needle) in cases {
        let dir = broken_bundle(tag, file, text.as_deref());
        let err = Bundle::load(&dir)
            .err()
            .unwrap_or_else(|| panic!("{tag}: loaded"));
        assert!(err.contains(needle), "{tag}: {err}");
        assert!(
            err.contains(&dir.display().to_string()),
            "{tag}: the error names the file: {err}"
        );
        assert_eq!(
            crate::commands::render::run(Some(&dir), None, &Thresholds::default()),
            crate::exit::USAGE,
            "{tag}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
    assert!(Bundle::load(&whole).is_ok(), "the unbroken fixture loads");
    std::fs::remove_dir_all(&whole).unwrap();
}

#[test]
fn the_run_junit_reads_back_with_a_real_parser() {
    let xml = &rendered()[1].1;
    let junit = junit_parser::from_reader(std::io::Cursor::new(xml.as_bytes())).unwrap();
    assert_eq!(junit.suites.len(), 1);
    let suite = &junit.suites[0];
    assert_eq!(suite.name, "fixture/naive");
    assert_eq!((suite.tests, suite.failures, suite.errors), (5, 2, 0));
    assert_eq!(suite.properties.hashmap["seed"], "7");
    assert!(suite.properties.hashmap["reproduce"].starts_with("chaos run "));
    let case = |n: &str| suite.cases.iter().find(|c| c.original_name == n).unwrap();
    assert!(case("no_double_booking").status.is_failure());
    assert!(case("latency").status.is_success());
    assert_eq!(case("latency").classname.as_deref(), Some("fixture.naive"));
}
