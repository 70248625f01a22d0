//! The Twilio Messages stub: `POST /2010-04-01/Accounts/{sid}/Messages.json`, form-encoded,
//! answering with Twilio's message resource or Twilio's error JSON.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Form, Json, Router};
use serde_json::json;

use crate::SharedStub;
use crate::control::Decision;

pub fn router(stub: SharedStub) -> Router {
    Router::new()
        .route(
            "/2010-04-01/Accounts/{account}/Messages.json",
            post(create_message),
        )
        .with_state(stub)
}

async fn create_message(
    State(stub): State<SharedStub>,
    Path(account): Path<String>,
    headers: HeaderMap,
    form: Result<Form<BTreeMap<String, String>>, axum::extract::rejection::FormRejection>,
) -> Response {
    let path = format!("/2010-04-01/Accounts/{account}/Messages.json");
    let key = crate::idempotency_key(&headers);
    let fields = form.map(|Form(f)| f).unwrap_or_default();
    let body = serde_json::to_value(&fields).expect("form fields serialise");

    let decision = crate::decide(&stub).await;
    let (delay, response) = match decision {
        Decision::Hang => unreachable!("hang is resolved above"),
        Decision::Error { delay, status } => (delay, twilio_error(status)),
        Decision::Answer { delay } => (delay, message_or_validation_error(&account, &fields)),
    };
    tokio::time::sleep(delay).await;
    stub.log
        .record("POST", &path, key, body, response.status().as_u16());
    response
}

fn message_or_validation_error(account: &str, f: &BTreeMap<String, String>) -> Response {
    let missing = |code: u32, message: &str| error_body(StatusCode::BAD_REQUEST, code, message);
    let Some(to) = f.get("To").filter(|s| !s.is_empty()) else {
        return missing(21604, "A 'To' phone number is required.");
    };
    let Some(from) = f.get("From").filter(|s| !s.is_empty()) else {
        return missing(21603, "A 'From' phone number is required.");
    };
    let Some(text) = f.get("Body").filter(|s| !s.is_empty()) else {
        return missing(21602, "Message body is required.");
    };
    let sid = format!("SM{:032x}", message_seed(to, text));
    let resource = json!({
        "sid": sid,
        "account_sid": account,
        "to": to,
        "from": from,
        "body": text,
        "status": "queued",
        "num_segments": "1",
        "direction": "outbound-api",
        "api_version": "2010-04-01",
        "error_code": null,
        "error_message": null,
        "uri": format!("/2010-04-01/Accounts/{account}/Messages/{sid}.json"),
    });
    (StatusCode::CREATED, Json(resource)).into_response()
}

/// A stable message sid component from the content (real sids are random; ours only need to
/// be well-formed and distinct enough to read in logs).
fn message_seed(to: &str, body: &str) -> u128 {
    let mut h: u128 = 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d;
    for b in to.bytes().chain(body.bytes()) {
        h = (h ^ b as u128).wrapping_mul(0x0000_0000_0100_0000_0000_0000_0000_013b);
    }
    h
}

fn twilio_error(status: u16) -> Response {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
    let (twilio_code, message) = match status {
        429 => (20429, "Too Many Requests"),
        500 => (20500, "Internal Server Error"),
        503 => (20503, "Service Unavailable"),
        _ => (20001, "Injected error"),
    };
    let mut r = error_body(code, twilio_code, message);
    if status == 429 {
        r.headers_mut()
            .insert("retry-after", HeaderValue::from_static("1"));
    }
    r
}

fn error_body(status: StatusCode, code: u32, message: &str) -> Response {
    let body = json!({
        "code": code,
        "message": message,
        "more_info": format!("https://www.twilio.com/docs/errors/{code}"),
        "status": status.as_u16(),
    });
    (status, Json(body)).into_response()
}
