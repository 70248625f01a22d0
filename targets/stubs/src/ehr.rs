//! The EHR stub: a FHIR R4 server of `Appointment` resources only. `PUT
//! /fhir/Appointment/{id}` creates or updates (201 or 200), `POST /fhir/Appointment` creates,
//! `GET /fhir/Appointment/{id}` reads; each answer is the stored resource with
//! `meta.versionId`. Errors are FHIR `OperationOutcome`s.

use std::collections::BTreeMap;
use std::sync::Mutex;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};

use crate::SharedStub;
use crate::control::Decision;

/// The stub's state plus the resources it holds.
#[derive(Default)]
pub struct Ehr {
    pub stub: SharedStub,
    resources: Mutex<BTreeMap<String, (u64, Value)>>,
}

pub type SharedEhr = std::sync::Arc<Ehr>;

pub fn router(ehr: SharedEhr) -> Router {
    Router::new()
        .route("/fhir/Appointment", post(create))
        .route("/fhir/Appointment/{id}", get(read).put(upsert))
        .with_state(ehr)
}

async fn create(State(ehr): State<SharedEhr>, headers: HeaderMap, body: Bytes) -> Response {
    let id = format!("ehr-{}", ehr.stub.log.snapshot().len() + 1);
    store(
        &ehr,
        "POST",
        "/fhir/Appointment".into(),
        id,
        &headers,
        &body,
    )
    .await
}

async fn upsert(
    State(ehr): State<SharedEhr>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    store(
        &ehr,
        "PUT",
        format!("/fhir/Appointment/{id}"),
        id,
        &headers,
        &body,
    )
    .await
}

async fn read(State(ehr): State<SharedEhr>, Path(id): Path<String>) -> Response {
    match ehr.resources.lock().expect("ehr lock poisoned").get(&id) {
        Some((_, r)) => (StatusCode::OK, Json(r.clone())).into_response(),
        None => outcome(404, "not-found", &format!("Appointment/{id} is not known")),
    }
}

async fn store(
    ehr: &Ehr,
    method: &str,
    path: String,
    id: String,
    headers: &HeaderMap,
    body: &Bytes,
) -> Response {
    let key = crate::idempotency_key(headers);
    let parsed: Result<Value, _> = serde_json::from_slice(body);
    let (delay, response) = match crate::decide(&ehr.stub).await {
        Decision::Hang => unreachable!("decide resolves hangs"),
        Decision::Error { delay, status } => {
            (delay, outcome(status, "transient", "injected error"))
        }
        Decision::Answer { delay } => (delay, upsert_resource(ehr, &id, parsed.as_ref().ok())),
    };
    tokio::time::sleep(delay).await;
    let logged = parsed.unwrap_or_else(|_| json!({ "unparsed": String::from_utf8_lossy(body) }));
    ehr.stub
        .log
        .record(method, &path, key, logged, response.status().as_u16());
    response
}

fn upsert_resource(ehr: &Ehr, id: &str, body: Option<&Value>) -> Response {
    let Some(b) = body.filter(|b| b["resourceType"] == "Appointment") else {
        return outcome(400, "invalid", "expected a FHIR Appointment resource");
    };
    if b["status"].as_str().is_none() {
        return outcome(400, "required", "Appointment.status is required");
    }
    let mut all = ehr.resources.lock().expect("ehr lock poisoned");
    let version = all.get(id).map_or(1, |(v, _)| v + 1);
    let mut resource = b.clone();
    resource["id"] = json!(id);
    resource["meta"] = json!({ "versionId": version.to_string() });
    all.insert(id.to_string(), (version, resource.clone()));
    let status = if version == 1 {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let mut r = (status, Json(resource)).into_response();
    if let Ok(etag) = HeaderValue::from_str(&format!("W/\"{version}\"")) {
        r.headers_mut().insert("etag", etag);
    }
    r
}

fn outcome(status: u16, code: &str, diagnostics: &str) -> Response {
    let s = StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
    let body = json!({
        "resourceType": "OperationOutcome",
        "issue": [{ "severity": "error", "code": code, "diagnostics": diagnostics }],
    });
    let mut r = (s, Json(body)).into_response();
    if status == 429 {
        r.headers_mut()
            .insert("retry-after", HeaderValue::from_static("1"));
    }
    r
}
