//! The EHR stub: a FHIR R4 server of `Appointment` resources only. `PUT
//! /fhir/Appointment/{id}` creates or updates (201 or 200), `POST /fhir/Appointment` creates
//! (id `ehr-<seq>`), `GET /fhir/Appointment/{id}` reads, and `GET
//! /fhir/Appointment?identifier=<system>|<value>` searches, answering a `searchset`
//! `Bundle`. Each stored resource carries `meta.versionId` and `meta.lastUpdated`. Errors are
//! FHIR `OperationOutcome`s.

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};

use crate::clock;
use crate::log::Call;
use crate::stub::{Outcome, Provider, SharedStub, arrival, json_body, target};

const COLLECTION: &str = "/fhir/Appointment";

/// The resources the EHR holds: id -> (version, resource).
#[derive(Debug, Default)]
pub struct Ehr {
    resources: BTreeMap<String, (u64, Value)>,
}

pub fn router(stub: SharedStub<Ehr>) -> Router {
    Router::new()
        .route(COLLECTION, post(create).get(search))
        .route("/fhir/Appointment/{id}", get(read).put(upsert))
        .with_state(stub)
}

async fn create(
    State(stub): State<SharedStub<Ehr>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let parsed: Option<Value> = serde_json::from_slice(&body).ok();
    let a = arrival("POST", target(&uri), &headers, json_body(&body));
    stub.serve(a, |_| validate(parsed.as_ref())).await
}

async fn upsert(
    State(stub): State<SharedStub<Ehr>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let parsed: Option<Value> = serde_json::from_slice(&body).ok();
    let a = arrival("PUT", target(&uri), &headers, json_body(&body));
    stub.serve(a, |_| validate(parsed.as_ref())).await
}

async fn read(
    State(stub): State<SharedStub<Ehr>>,
    Path(id): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let a = arrival("GET", target(&uri), &headers, Value::Null);
    stub.serve(a, |ehr| {
        Outcome::Answer(match ehr.resources.get(&id) {
            Some((_, r)) => (StatusCode::OK, Json(r.clone())).into_response(),
            None => outcome(404, "not-found", &format!("Appointment/{id} is not known")),
        })
    })
    .await
}

async fn search(
    State(stub): State<SharedStub<Ehr>>,
    RawQuery(query): RawQuery,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let a = arrival("GET", target(&uri), &headers, Value::Null);
    let base = headers
        .get("host")
        .and_then(|h| h.to_str().ok())
        .map_or_else(String::new, |h| format!("http://{h}"));
    let query = query.unwrap_or_default();
    stub.serve(a, |ehr| Outcome::Answer(ehr.search(&base, &query)))
        .await
}

fn validate(body: Option<&Value>) -> Outcome {
    let Some(b) = body.filter(|b| b["resourceType"] == "Appointment") else {
        return Outcome::Refuse(outcome(
            400,
            "invalid",
            "expected a FHIR Appointment resource",
        ));
    };
    if b["status"].as_str().is_none() {
        return Outcome::Refuse(outcome(400, "required", "Appointment.status is required"));
    }
    Outcome::Accept
}

impl Provider for Ehr {
    fn apply(&mut self, call: &Call, accepted_ms: u64) -> Response {
        let id = match call.path.strip_prefix("/fhir/Appointment/") {
            Some(id) => id.split('?').next().unwrap_or_default().to_string(),
            None => format!("ehr-{}", call.seq),
        };
        let version = self.resources.get(&id).map_or(1, |(v, _)| v + 1);
        let mut resource = call.body.clone();
        resource["id"] = json!(id);
        resource["meta"] = json!({
            "versionId": version.to_string(),
            "lastUpdated": clock::rfc3339_ms(accepted_ms),
        });
        self.resources
            .insert(id.clone(), (version, resource.clone()));
        let status = if version == 1 {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        };
        let mut r = (status, Json(resource)).into_response();
        if let Ok(etag) = HeaderValue::from_str(&format!("W/\"{version}\"")) {
            r.headers_mut().insert("etag", etag);
        }
        if let Ok(location) =
            HeaderValue::from_str(&format!("{COLLECTION}/{id}/_history/{version}"))
        {
            r.headers_mut().insert("location", location);
        }
        r
    }

    fn injected_error(status: u16) -> Response {
        outcome(status, "transient", "injected error")
    }
}

/// One `identifier` search token: `system|value`, `|value` (no system), `system|` (any value
/// of the system) or `value` (any system).
#[derive(Debug)]
struct Token {
    system: Option<String>,
    value: Option<String>,
}

impl Token {
    fn parse(s: &str) -> Token {
        match s.split_once('|') {
            Some((system, value)) => Token {
                system: Some(system.to_string()),
                value: (!value.is_empty()).then(|| value.to_string()),
            },
            None => Token {
                system: None,
                value: Some(s.to_string()),
            },
        }
    }

    fn matches(&self, identifier: &Value) -> bool {
        let system = identifier["system"].as_str().unwrap_or_default();
        let value = identifier["value"].as_str();
        self.system.as_ref().is_none_or(|s| s == system)
            && self
                .value
                .as_ref()
                .is_none_or(|v| value == Some(v.as_str()))
    }
}

impl Ehr {
    /// A search: every `identifier` parameter must match (AND), any token of a
    /// comma-separated list may (OR), as FHIR searches combine them.
    fn search(&self, base: &str, query: &str) -> Response {
        let pairs: Vec<(String, String)> = match serde_urlencoded::from_str(query) {
            Ok(p) => p,
            Err(e) => return outcome(400, "invalid", &format!("invalid query string: {e}")),
        };
        let mut all_of: Vec<Vec<Token>> = Vec::new();
        let mut count = None;
        for (k, v) in pairs {
            match k.as_str() {
                "identifier" => all_of.push(v.split(',').map(Token::parse).collect()),
                "_count" => match v.parse::<usize>() {
                    Ok(n) => count = Some(n),
                    Err(_) => {
                        return outcome(
                            400,
                            "invalid",
                            &format!("_count must be a whole number, found '{v}'"),
                        );
                    }
                },
                other => {
                    return outcome(
                        400,
                        "not-supported",
                        &format!(
                            "search parameter '{other}' is not supported by this server \
                             (identifier, _count)"
                        ),
                    );
                }
            }
        }
        let found: Vec<&Value> = self
            .resources
            .values()
            .map(|(_, r)| r)
            .filter(|r| {
                let ids = r["identifier"].as_array();
                all_of.iter().all(|any_of| {
                    ids.into_iter()
                        .flatten()
                        .any(|i| any_of.iter().any(|t| t.matches(i)))
                })
            })
            .collect();
        let total = found.len();
        let entry: Vec<Value> = found
            .into_iter()
            .take(count.unwrap_or(usize::MAX))
            .map(|r| {
                let id = r["id"].as_str().unwrap_or_default();
                json!({
                    "fullUrl": format!("{base}{COLLECTION}/{id}"),
                    "resource": r,
                    "search": { "mode": "match" },
                })
            })
            .collect();
        let self_url = if query.is_empty() {
            format!("{base}{COLLECTION}")
        } else {
            format!("{base}{COLLECTION}?{query}")
        };
        let bundle = json!({
            "resourceType": "Bundle",
            "type": "searchset",
            "total": total,
            "link": [{ "relation": "self", "url": self_url }],
            "entry": entry,
        });
        (StatusCode::OK, Json(bundle)).into_response()
    }
}

fn outcome(status: u16, code: &str, diagnostics: &str) -> Response {
    let s = StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
    let body = json!({
        "resourceType": "OperationOutcome",
        "issue": [{ "severity": "error", "code": code, "diagnostics": diagnostics }],
    });
    (s, Json(body)).into_response()
}
