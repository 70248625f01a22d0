//! The call log and the knobs, against stubs served in-process and a real HTTP client: calls
//! are logged when they arrive, abandoned calls stay unanswered (acted on or not as the knob
//! says), traces are captured, injected 429/503 carry `Retry-After`, and `/calls` has the
//! harness's `StubCall` shape.

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use stubs::Kind;
use support::{TWILIO_PATH, call, serve};

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

fn messages_to(list: &Value) -> Vec<&str> {
    list["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["to"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn a_call_abandoned_during_latency_is_logged_unanswered_and_never_acted_on() {
    let t = serve(Kind::Twilio).await;
    t.knobs(json!({ "latency_ms": 300 })).await;
    let first = tokio::spawn(t.sms("+15550000001", "first").send());
    // In the log as soon as it arrives, before the latency has passed.
    let calls = t.until("the first call", |c| !c.is_empty()).await;
    assert_eq!(calls[0]["status"], Value::Null);
    assert_eq!(calls[0]["accepted"], false);
    // The caller gives up: its connection closes.
    first.abort();
    assert!(first.await.unwrap_err().is_cancelled());

    // A later call whose latency ends well after the first's would have: when it is
    // answered, the first call would have been acted on long ago had it survived.
    t.knobs(json!({ "latency_ms": 700 })).await;
    let second = t.sms("+15550000002", "second").send().await.unwrap();
    assert_eq!(second.status(), 201);

    let calls = t.calls().await;
    let first = call(&calls, 1);
    assert_eq!(first["status"], Value::Null, "{first}");
    assert_eq!(first["accepted"], false, "{first}");
    assert!(first.get("answered_ms").is_none(), "{first}");
    let second = call(&calls, 2);
    assert_eq!(second["status"], 201);
    assert_eq!(second["accepted"], true);

    t.knobs(json!({})).await;
    let list: Value = t
        .http
        .get(format!("{}{TWILIO_PATH}", t.api))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(messages_to(&list), ["+15550000002"], "{list:#}");
}

#[tokio::test]
async fn a_call_abandoned_during_a_late_answer_is_logged_accepted_and_unanswered() {
    let t = serve(Kind::Twilio).await;
    t.knobs(json!({ "late_answer_ms": 300 })).await;
    let first = tokio::spawn(t.sms("+15550000001", "first").send());
    let calls = t
        .until("the first call accepted", |c| {
            c.first().is_some_and(|c| c["accepted"] == true)
        })
        .await;
    assert_eq!(calls[0]["status"], Value::Null);
    first.abort();
    assert!(first.await.unwrap_err().is_cancelled());

    // Answered well after the first call's answer was due.
    t.knobs(json!({ "late_answer_ms": 700 })).await;
    let second = t.sms("+15550000002", "second").send().await.unwrap();
    assert_eq!(second.status(), 201);

    let calls = t.calls().await;
    let first = call(&calls, 1);
    assert_eq!(first["accepted"], true, "{first}");
    assert_eq!(first["status"], Value::Null, "{first}");
    assert!(first.get("answered_ms").is_none(), "{first}");
    assert_eq!(call(&calls, 2)["status"], 201);

    // The provider sent both: the lost answer did not undo the message.
    t.knobs(json!({})).await;
    let list: Value = t
        .http
        .get(format!("{}{TWILIO_PATH}", t.api))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(messages_to(&list), ["+15550000002", "+15550000001"]);
}

#[tokio::test]
async fn a_completed_call_has_its_arrival_its_answer_and_their_times() {
    let t = serve(Kind::Ehr).await;
    t.knobs(json!({ "latency_ms": 150 })).await;
    let r = t
        .http
        .put(format!("{}/fhir/Appointment/a1", t.api))
        .header("idempotency-key", "k1")
        .json(&json!({ "resourceType": "Appointment", "status": "booked" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let calls = t.calls().await;
    let c = call(&calls, 1);
    assert_eq!(c["method"], "PUT");
    assert_eq!(c["path"], "/fhir/Appointment/a1");
    assert_eq!(c["idempotency_key"], "k1");
    assert_eq!(c["status"], 201);
    assert_eq!(c["accepted"], true);
    let (at, answered) = (
        c["at_ms"].as_u64().unwrap(),
        c["answered_ms"].as_u64().unwrap(),
    );
    // at_ms is the arrival, before the latency; answered_ms after it.
    assert!(answered >= at + 150, "{c}");
}

#[tokio::test]
async fn a_hanging_call_is_not_acted_on_until_the_knobs_change() {
    let t = serve(Kind::Twilio).await;
    t.knobs(json!({ "hang": true })).await;
    let held = tokio::spawn(t.sms("+15550000001", "held").send());
    let calls = t.until("the held call", |c| !c.is_empty()).await;
    assert_eq!(calls[0]["status"], Value::Null);
    assert_eq!(calls[0]["accepted"], false);
    t.knobs(json!({})).await;
    assert_eq!(held.await.unwrap().unwrap().status(), 201);
    let calls = t.calls().await;
    assert_eq!(calls[0]["status"], 201);
    assert_eq!(calls[0]["accepted"], true);
}

#[tokio::test]
async fn the_trace_of_a_well_formed_traceparent_is_captured_and_a_malformed_one_is_not() {
    let t = serve(Kind::Twilio).await;
    for traceparent in [
        Some(format!("00-{TRACE}-00f067aa0ba902b7-01")),
        Some(format!("00-{}-00f067aa0ba902b7-01", TRACE.to_uppercase())),
        Some(format!("00-{TRACE}-01")),
        None,
    ] {
        let mut req = t.sms("+15550000001", "traced");
        if let Some(tp) = traceparent {
            req = req.header("traceparent", tp);
        }
        assert_eq!(req.send().await.unwrap().status(), 201);
    }
    let calls = t.calls().await;
    let traces: Vec<&Value> = calls.iter().map(|c| &c["trace"]).collect();
    assert_eq!(
        traces,
        [&json!(TRACE), &Value::Null, &Value::Null, &Value::Null]
    );
    assert!(
        calls[1].get("trace").is_none(),
        "absent, not null: {}",
        calls[1]
    );
}

#[tokio::test]
async fn injected_429_and_503_carry_retry_after_in_every_stub() {
    let twilio = serve(Kind::Twilio).await;
    let sendgrid = serve(Kind::Sendgrid).await;
    let ehr = serve(Kind::Ehr).await;
    twilio
        .knobs(json!({ "fail_first": 1, "error_status": 429, "retry_after_s": 7 }))
        .await;
    sendgrid.knobs(json!({ "fail_first": 1 })).await;
    ehr.knobs(json!({ "fail_first": 1, "error_status": 503, "retry_after_s": 2 }))
        .await;

    let r = twilio.sms("+15550000001", "x").send().await.unwrap();
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["retry-after"], "7");
    assert_eq!(r.json::<Value>().await.unwrap()["code"], 20429);
    let r = sendgrid
        .http
        .post(format!("{}/v3/mail/send", sendgrid.api))
        .bearer_auth("SG.key")
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["retry-after"], "1");
    let r = ehr
        .http
        .get(format!("{}/fhir/Appointment?identifier=x", ehr.api))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["retry-after"], "2");
    assert_eq!(
        r.json::<Value>().await.unwrap()["resourceType"],
        "OperationOutcome"
    );

    // Other statuses carry none.
    twilio
        .knobs(json!({ "fail_first": 1, "error_status": 500 }))
        .await;
    let r = twilio.sms("+15550000001", "x").send().await.unwrap();
    assert_eq!(r.status(), 500);
    assert!(r.headers().get("retry-after").is_none());

    // Injected errors are answered and never acted on.
    for c in twilio.calls().await {
        assert_eq!(c["accepted"], false, "{c}");
        assert!(c["status"].as_u64().is_some_and(|s| s >= 429), "{c}");
    }
}

#[tokio::test]
async fn bad_knobs_are_refused_with_a_reason() {
    let t = serve(Kind::Sendgrid).await;
    for (knobs, names) in [
        (
            json!({ "error_status": 500, "retry_after_s": 3 }),
            "retry_after_s",
        ),
        (json!({ "late_answer_ms": 600_001 }), "late_answer_ms"),
        (json!({ "error_rate": 2.0 }), "error_rate"),
        (json!({ "latency": 5 }), "latency"),
    ] {
        let r = t
            .http
            .post(format!("{}/knobs", t.control))
            .json(&knobs)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{knobs}");
        let body: Value = r.json().await.unwrap();
        let message = body["error"].as_str().unwrap();
        assert!(message.contains(names), "{knobs}: {message}");
    }
    let knobs: Value = t
        .http
        .get(format!("{}/knobs", t.control))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        knobs["error_status"], 503,
        "refused knobs left the defaults: {knobs}"
    );
    assert_eq!(knobs["late_answer_ms"], 0);
}

#[tokio::test]
async fn calls_have_the_shape_of_the_harness_stub_call() {
    let t = serve(Kind::Twilio).await;
    let ok = t
        .sms("+15550000001", "shaped")
        .header("idempotency-key", "a1:24h:sms")
        .header("traceparent", format!("00-{TRACE}-00f067aa0ba902b7-01"))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 201);
    let refused = t
        .http
        .post(format!("{}{TWILIO_PATH}", t.api))
        .form(&[("To", "+15550000001")])
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 400);
    let lookup = t
        .http
        .get(format!("{}{TWILIO_PATH}?To=%2B15550000001", t.api))
        .send()
        .await
        .unwrap();
    assert_eq!(lookup.status(), 200);
    t.knobs(json!({ "hang": true })).await;
    let held = tokio::spawn(t.sms("+15550000001", "held").send());
    t.until("the held call", |c| c.len() == 4).await;

    let text = t
        .http
        .get(format!("{}/calls", t.control))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let ours: Value = serde_json::from_str(&text).unwrap();
    let theirs: Vec<chaos_model::StubCall> = serde_json::from_str(&text).unwrap();
    // Nothing is lost or added on the way through the harness's type.
    assert_eq!(serde_json::to_value(&theirs).unwrap(), ours);
    assert_eq!(theirs.len(), 4);
    assert_eq!(theirs[0].trace.as_deref(), Some(TRACE));
    assert_eq!(theirs[0].idempotency_key.as_deref(), Some("a1:24h:sms"));
    assert!(theirs[0].took_effect() && theirs[0].status == Some(201));
    assert!(theirs[1].refused() && !theirs[1].took_effect());
    assert_eq!(theirs[2].method, "GET");
    assert_eq!(theirs[2].path, format!("{TWILIO_PATH}?To=%2B15550000001"));
    assert!(!theirs[2].took_effect());
    assert_eq!(theirs[3].status, None);
    assert!(!theirs[3].took_effect());
    held.abort();
    let _ = tokio::time::timeout(Duration::from_secs(5), held).await;
}
