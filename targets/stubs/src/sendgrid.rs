//! The SendGrid stub: v3 Mail Send (`POST /v3/mail/send`, JSON body, bearer API key,
//! answering 202 with an `X-Message-Id`) and the Email Activity API
//! (`GET /v3/messages?query=…&limit=…`, see [`crate::activity_query`]) over the mail it
//! accepted, one message per recipient, newest first. Errors are SendGrid's
//! `{"errors": [{"message", "field", "help"}]}`.
//!
//! Accepted mail shows in the activity as `delivered`, with the v3 `custom_args` (top level,
//! overridden by the personalization's) as its `unique_args`.

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};

use crate::activity_query::{self, Fields};
use crate::clock;
use crate::log::Call;
use crate::stub::{Outcome, Provider, SharedStub, arrival, json_body, target};

pub const PATH: &str = "/v3/mail/send";
pub const ACTIVITY_PATH: &str = "/v3/messages";

const DEFAULT_LIMIT: usize = 10;
const MAX_LIMIT: usize = 1000;

/// The messages SendGrid accepted, one per recipient, in the order it accepted them.
#[derive(Debug, Default)]
pub struct Sendgrid {
    messages: Vec<Activity>,
}

#[derive(Debug)]
struct Activity {
    seq: u64,
    msg_id: String,
    from_email: String,
    subject: String,
    to_email: String,
    unique_args: BTreeMap<String, String>,
    last_event_ms: u64,
}

const STATUS: &str = "delivered";

pub fn router(stub: SharedStub<Sendgrid>) -> Router {
    Router::new()
        .route(PATH, post(send))
        .route(ACTIVITY_PATH, get(activity))
        .with_state(stub)
}

async fn send(
    State(stub): State<SharedStub<Sendgrid>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let parsed: Option<Value> = serde_json::from_slice(&body).ok();
    let a = arrival("POST", target(&uri), &headers, json_body(&body));
    stub.serve(a, |_| validate(&headers, parsed.as_ref())).await
}

async fn activity(
    State(stub): State<SharedStub<Sendgrid>>,
    RawQuery(query): RawQuery,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let a = arrival("GET", target(&uri), &headers, Value::Null);
    let query = query.unwrap_or_default();
    stub.serve(a, |s| {
        Outcome::Answer(unauthorized(&headers).unwrap_or_else(|| s.activity(&query)))
    })
    .await
}

/// SendGrid's answer to a call without a bearer API key, if this one has none.
fn unauthorized(headers: &HeaderMap) -> Option<Response> {
    let ok = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("Bearer ") && v.len() > 7);
    (!ok).then(|| {
        error(
            401,
            "The provided authorization grant is invalid, expired, or revoked",
            None,
        )
    })
}

fn validate(headers: &HeaderMap, body: Option<&Value>) -> Outcome {
    if let Some(r) = unauthorized(headers) {
        return Outcome::Refuse(r);
    }
    let refuse = |message, field| Outcome::Refuse(error(400, message, field));
    let Some(b) = body else {
        return refuse("Bad Request", None);
    };
    let to = b["personalizations"][0]["to"][0]["email"].as_str();
    if to.is_none_or(|e| !e.contains('@')) {
        return refuse(
            "The to email does not contain a valid address.",
            Some("personalizations.0.to.0.email"),
        );
    }
    if b["from"]["email"].as_str().is_none_or(|e| !e.contains('@')) {
        return refuse(
            "The from email does not contain a valid address.",
            Some("from.email"),
        );
    }
    if b["content"][0]["value"].as_str().is_none_or(str::is_empty) {
        return refuse(
            "The content value must be a string at least one character in length.",
            Some("content.0.value"),
        );
    }
    Outcome::Accept
}

/// String values of a `custom_args` object (SendGrid keeps only strings).
fn string_args(v: &Value, into: &mut BTreeMap<String, String>) {
    if let Some(o) = v.as_object() {
        for (k, v) in o {
            if let Some(s) = v.as_str() {
                into.insert(k.clone(), s.to_string());
            }
        }
    }
}

impl Provider for Sendgrid {
    fn apply(&mut self, call: &Call, accepted_ms: u64) -> Response {
        let b = &call.body;
        let x_message_id = format!("chaos{:010}x{:013}", call.seq, call.at_ms);
        let from_email = b["from"]["email"].as_str().unwrap_or_default();
        let subject = b["subject"].as_str().unwrap_or_default();
        let mut n = 0;
        for p in b["personalizations"].as_array().into_iter().flatten() {
            let mut args = BTreeMap::new();
            string_args(&b["custom_args"], &mut args);
            string_args(&p["custom_args"], &mut args);
            let subject = p["subject"].as_str().unwrap_or(subject);
            for to in p["to"].as_array().into_iter().flatten() {
                self.messages.push(Activity {
                    seq: call.seq,
                    msg_id: format!("{x_message_id}.filterdrecv-chaos-{n}.0"),
                    from_email: from_email.to_string(),
                    subject: subject.to_string(),
                    to_email: to["email"].as_str().unwrap_or_default().to_string(),
                    unique_args: args.clone(),
                    last_event_ms: accepted_ms,
                });
                n += 1;
            }
        }
        let mut r = StatusCode::ACCEPTED.into_response();
        if let Ok(v) = HeaderValue::from_str(&x_message_id) {
            r.headers_mut().insert("x-message-id", v);
        }
        r
    }

    fn injected_error(status: u16) -> Response {
        error(status, "injected error", None)
    }
}

impl Sendgrid {
    fn activity(&self, query: &str) -> Response {
        let pairs: Vec<(String, String)> = match serde_urlencoded::from_str(query) {
            Ok(p) => p,
            Err(e) => return error(400, &format!("invalid query string: {e}"), None),
        };
        let mut filter = None;
        let mut limit = DEFAULT_LIMIT;
        for (k, v) in pairs {
            match k.as_str() {
                "query" => match activity_query::parse(&v) {
                    Ok(q) => filter = Some(q),
                    Err(message) => return error(400, &message, Some("query")),
                },
                "limit" => match v.parse() {
                    Ok(n) if (1..=MAX_LIMIT).contains(&n) => limit = n,
                    _ => {
                        return error(
                            400,
                            &format!("limit must be from 1 to {MAX_LIMIT}, found '{v}'"),
                            Some("limit"),
                        );
                    }
                },
                other => {
                    return error(
                        400,
                        &format!("unknown parameter '{other}': this stub takes query and limit"),
                        Some(other),
                    );
                }
            }
        }
        let mut found: Vec<&Activity> = self
            .messages
            .iter()
            .filter(|m| {
                filter.as_ref().is_none_or(|q| {
                    q.matches(&Fields {
                        msg_id: &m.msg_id,
                        from_email: &m.from_email,
                        subject: &m.subject,
                        to_email: &m.to_email,
                        status: STATUS,
                        unique_args: &m.unique_args,
                    })
                })
            })
            .collect();
        found.sort_by_key(|m| std::cmp::Reverse((m.last_event_ms, m.seq)));
        let messages: Vec<Value> = found
            .into_iter()
            .take(limit)
            .map(|m| {
                json!({
                    "msg_id": m.msg_id,
                    "from_email": m.from_email,
                    "subject": m.subject,
                    "to_email": m.to_email,
                    "status": STATUS,
                    "opens_count": 0,
                    "clicks_count": 0,
                    "last_event_time": clock::rfc3339(m.last_event_ms),
                })
            })
            .collect();
        (StatusCode::OK, Json(json!({ "messages": messages }))).into_response()
    }
}

fn error(status: u16, message: &str, field: Option<&str>) -> Response {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
    (
        code,
        Json(json!({ "errors": [{ "message": message, "field": field, "help": null }] })),
    )
        .into_response()
}
