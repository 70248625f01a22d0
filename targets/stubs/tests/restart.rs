//! One stub per process, journaled: the real `stubs` binary is SIGKILLed with calls in
//! flight and started again on the same ports and journal; it still reports every call,
//! continues `seq`, still holds what it accepted, and behaves (knobs are not journaled).

mod support;

use std::path::Path;
use std::process::Stdio;

use serde_json::{Value, json};
use support::{TWILIO_PATH, call, calls, client, set_knobs, sms, until};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

struct Proc {
    child: Child,
    /// `127.0.0.1:PORT` of the API and of the control API.
    api: String,
    control_addr: String,
    /// The control URL from the ready line.
    control: String,
}

async fn start(name: &str, listen: &str, control: &str, journal: &Path) -> Proc {
    let mut child = Command::new(env!("CARGO_BIN_EXE_stubs"))
        .args([
            "--only",
            name,
            "--listen",
            listen,
            "--control",
            control,
            "--journal",
        ])
        .arg(journal)
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("the stubs binary starts");
    let stdout = child.stdout.take().unwrap();
    let line = BufReader::new(stdout)
        .lines()
        .next_line()
        .await
        .unwrap()
        .expect("a ready line");
    let ready: Value = serde_json::from_str(&line).unwrap();
    // Exactly this stub, and its control URL under /<name>.
    let keys: Vec<&String> = ready.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["control", name], "{ready}");
    let controls = ready["control"].as_object().unwrap();
    assert_eq!(controls.len(), 1, "{ready}");
    let control_url = ready["control"][name].as_str().unwrap().to_string();
    let control_addr = control_url
        .strip_prefix("http://")
        .and_then(|u| u.strip_suffix(&format!("/{name}")))
        .unwrap_or_else(|| panic!("control URL {control_url}"))
        .to_string();
    Proc {
        child,
        api: ready[name].as_str().unwrap().to_string(),
        control_addr,
        control: control_url,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_stub_restarted_on_its_journal_keeps_its_log_and_continues_seq() {
    let dir = std::env::temp_dir().join(format!("stubs-restart-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let journal = dir.join("twilio.jsonl");
    let _ = std::fs::remove_file(&journal);
    let http = client();

    let mut first = start("twilio", "127.0.0.1:0", "127.0.0.1:0", &journal).await;
    let api = format!("http://{}", first.api);
    assert_eq!(
        sms(&http, &api, "+15550000001", "answered")
            .send()
            .await
            .unwrap()
            .status(),
        201
    );
    // Accepted, its answer held back.
    set_knobs(&http, &first.control, json!({ "late_answer_ms": 600_000 })).await;
    let late = tokio::spawn(sms(&http, &api, "+15550000002", "late").send());
    until(&http, &first.control, "call 2 accepted", |c| {
        c.get(1).is_some_and(|c| c["accepted"] == true)
    })
    .await;
    // Not yet handled.
    set_knobs(&http, &first.control, json!({ "latency_ms": 600_000 })).await;
    let slow = tokio::spawn(sms(&http, &api, "+15550000003", "slow").send());
    until(&http, &first.control, "call 3", |c| c.len() == 3).await;

    first.child.start_kill().unwrap();
    first.child.wait().await.unwrap();
    assert!(late.await.unwrap().is_err(), "the killed stub answered");
    assert!(slow.await.unwrap().is_err(), "the killed stub answered");

    // The same ports, the same journal.
    let second = start("twilio", &first.api, &first.control_addr, &journal).await;
    assert_eq!((&second.api, &second.control), (&first.api, &first.control));
    let log = calls(&http, &second.control).await;
    assert_eq!(log.len(), 3, "{log:#?}");
    let (answered, late, slow) = (call(&log, 1), call(&log, 2), call(&log, 3));
    assert_eq!(
        (&answered["status"], &answered["accepted"]),
        (&json!(201), &json!(true))
    );
    assert_eq!(
        (&late["status"], &late["accepted"]),
        (&Value::Null, &json!(true))
    );
    assert_eq!(
        (&slow["status"], &slow["accepted"]),
        (&Value::Null, &json!(false))
    );
    assert_eq!(slow["body"]["Body"], "slow");

    // It behaves: the knobs were not journaled.
    let knobs: Value = http
        .get(format!("{}/knobs", second.control))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (&knobs["latency_ms"], &knobs["late_answer_ms"]),
        (&json!(0), &json!(0))
    );
    assert_eq!(
        sms(&http, &api, "+15550000004", "after")
            .send()
            .await
            .unwrap()
            .status(),
        201
    );
    let log = calls(&http, &second.control).await;
    assert_eq!(call(&log, 4)["body"]["Body"], "after");

    // The provider still holds what it accepted before the kill, and not what it had not.
    let list: Value = http
        .get(format!("{api}{TWILIO_PATH}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let bodies: Vec<&str> = list["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["body"].as_str().unwrap())
        .collect();
    assert_eq!(bodies, ["after", "late", "answered"]);

    // A reset empties the journal too.
    let r = http
        .post(format!("{}/reset", second.control))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    assert!(calls(&http, &second.control).await.is_empty());
    assert_eq!(std::fs::metadata(&journal).unwrap().len(), 0);
    drop(second);
    std::fs::remove_dir_all(&dir).unwrap();
}
