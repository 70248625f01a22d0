//! The SendGrid v3 Mail Send stub: `POST /v3/mail/send` with a JSON body and a bearer API
//! key, answering 202 with no body, or SendGrid's `{"errors": [...]}`.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{Value, json};

use crate::SharedStub;
use crate::control::Decision;

pub const PATH: &str = "/v3/mail/send";

pub fn router(stub: SharedStub) -> Router {
    Router::new().route(PATH, post(send)).with_state(stub)
}

async fn send(State(stub): State<SharedStub>, headers: HeaderMap, body: Bytes) -> Response {
    let key = crate::idempotency_key(&headers);
    let parsed: Result<Value, _> = serde_json::from_slice(&body);
    let (delay, response) = match crate::decide(&stub).await {
        Decision::Hang => unreachable!("decide resolves hangs"),
        Decision::Error { delay, status } => (delay, error(status, "injected error", None)),
        Decision::Answer { delay } => (delay, validate(&headers, parsed.as_ref().ok())),
    };
    tokio::time::sleep(delay).await;
    let logged = parsed.unwrap_or_else(|_| json!({ "unparsed": String::from_utf8_lossy(&body) }));
    stub.log
        .record("POST", PATH, key, logged, response.status().as_u16());
    response
}

fn validate(headers: &HeaderMap, body: Option<&Value>) -> Response {
    let authorized = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("Bearer ") && v.len() > 7);
    if !authorized {
        return error(
            401,
            "The provided authorization grant is invalid, expired, or revoked",
            None,
        );
    }
    let Some(b) = body else {
        return error(400, "Bad Request", None);
    };
    let to = b["personalizations"][0]["to"][0]["email"].as_str();
    if to.is_none_or(|e| !e.contains('@')) {
        return error(
            400,
            "The to email does not contain a valid address.",
            Some("personalizations.0.to.0.email"),
        );
    }
    if b["from"]["email"].as_str().is_none_or(|e| !e.contains('@')) {
        return error(
            400,
            "The from email does not contain a valid address.",
            Some("from.email"),
        );
    }
    if b["content"][0]["value"].as_str().is_none_or(str::is_empty) {
        return error(
            400,
            "The content value must be a string at least one character in length.",
            Some("content.0.value"),
        );
    }
    let mut r = StatusCode::ACCEPTED.into_response();
    r.headers_mut().insert(
        "x-message-id",
        HeaderValue::from_static("chaos-stub-message"),
    );
    r
}

fn error(status: u16, message: &str, field: Option<&str>) -> Response {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
    let mut r = (
        code,
        Json(json!({ "errors": [{ "message": message, "field": field, "help": null }] })),
    )
        .into_response();
    if status == 429 {
        r.headers_mut()
            .insert("retry-after", HeaderValue::from_static("1"));
    }
    r
}
