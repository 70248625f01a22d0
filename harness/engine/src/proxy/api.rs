//! The Toxiproxy-compatible HTTP API over a [`Registry`], and the embedded server that runs
//! it. Shapes and status codes follow Toxiproxy 2.x; errors are `{"error", "status"}`.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use super::registry::{ProxyError, ProxySpec, ProxyUpdate, Registry};
use crate::error::EngineError;

type Shared = Arc<Registry>;

/// The HTTP API router over a registry.
pub fn router(registry: Shared) -> Router {
    Router::new()
        .route("/version", get(version))
        .route("/reset", post(reset))
        .route("/populate", post(populate))
        .route("/proxies", get(index).post(create))
        .route(
            "/proxies/{proxy}",
            get(show).post(update).patch(update).delete(delete),
        )
        .route(
            "/proxies/{proxy}/toxics",
            get(toxic_index).post(toxic_create),
        )
        .route(
            "/proxies/{proxy}/toxics/{toxic}",
            get(toxic_show)
                .post(toxic_update)
                .patch(toxic_update)
                .delete(toxic_delete),
        )
        .with_state(registry)
}

impl IntoResponse for ProxyError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status()).expect("valid status");
        (
            status,
            Json(json!({ "error": self.to_string(), "status": self.status() })),
        )
            .into_response()
    }
}

type ApiResult = Result<Response, ProxyError>;

fn body_json<T: serde::de::DeserializeOwned>(body: &Bytes) -> Result<T, ProxyError> {
    serde_json::from_slice(body)
        .map_err(|e| ProxyError::BadRequest(format!("bad request body: {e}")))
}

async fn version() -> Json<Value> {
    Json(json!({ "version": concat!("chaos-", env!("CARGO_PKG_VERSION")) }))
}

async fn reset(State(r): State<Shared>) -> ApiResult {
    r.reset().await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn index(State(r): State<Shared>) -> Json<Value> {
    let map: serde_json::Map<String, Value> = r
        .list()
        .iter()
        .map(|p| (p.name.clone(), p.to_json()))
        .collect();
    Json(Value::Object(map))
}

async fn create(State(r): State<Shared>, body: Bytes) -> ApiResult {
    let spec: ProxySpec = body_json(&body)?;
    let p = r.create(spec).await?;
    Ok((StatusCode::CREATED, Json(p.to_json())).into_response())
}

/// Create the listed proxies, or update those that exist; answers `{"proxies": [...]}`.
async fn populate(State(r): State<Shared>, body: Bytes) -> ApiResult {
    let specs: Vec<ProxySpec> = body_json(&body)?;
    let mut out = Vec::new();
    for spec in specs {
        let p = match r.get(&spec.name) {
            Ok(_) => {
                let u = ProxyUpdate {
                    listen: Some(spec.listen.clone()).filter(|l| !l.is_empty()),
                    upstream: Some(spec.upstream.clone()).filter(|u| !u.is_empty()),
                    enabled: Some(spec.enabled),
                };
                r.update(&spec.name, u).await?
            }
            Err(_) => r.create(spec).await?,
        };
        out.push(p.to_json());
    }
    Ok((StatusCode::CREATED, Json(json!({ "proxies": out }))).into_response())
}

async fn show(State(r): State<Shared>, Path(name): Path<String>) -> ApiResult {
    Ok(Json(r.get(&name)?.to_json()).into_response())
}

async fn update(State(r): State<Shared>, Path(name): Path<String>, body: Bytes) -> ApiResult {
    r.get(&name)?;
    let u: ProxyUpdate = body_json(&body)?;
    Ok(Json(r.update(&name, u).await?.to_json()).into_response())
}

async fn delete(State(r): State<Shared>, Path(name): Path<String>) -> ApiResult {
    r.delete(&name).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn toxic_index(State(r): State<Shared>, Path(name): Path<String>) -> ApiResult {
    let p = r.get(&name)?;
    let list: Vec<Value> = p.toxics().iter().map(|t| t.to_json()).collect();
    Ok(Json(list).into_response())
}

async fn toxic_create(State(r): State<Shared>, Path(name): Path<String>, body: Bytes) -> ApiResult {
    r.get(&name)?;
    let t = r.add_toxic(&name, body_json(&body)?)?;
    Ok(Json(t.to_json()).into_response())
}

async fn toxic_show(
    State(r): State<Shared>,
    Path((name, toxic)): Path<(String, String)>,
) -> ApiResult {
    Ok(Json(r.get_toxic(&name, &toxic)?.to_json()).into_response())
}

async fn toxic_update(
    State(r): State<Shared>,
    Path((name, toxic)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult {
    r.get_toxic(&name, &toxic)?;
    let t = r.update_toxic(&name, &toxic, body_json(&body)?)?;
    Ok(Json(t.to_json()).into_response())
}

async fn toxic_delete(
    State(r): State<Shared>,
    Path((name, toxic)): Path<(String, String)>,
) -> ApiResult {
    r.remove_toxic(&name, &toxic)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// An embedded proxy server: the registry plus its HTTP API on a loopback port. Dropping it
/// stops the API and every proxy.
pub struct ProxyServer {
    registry: Shared,
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl ProxyServer {
    pub async fn start(api: &str, seed: u64) -> Result<ProxyServer, EngineError> {
        let registry = Arc::new(Registry::new(seed));
        let listener = TcpListener::bind(api)
            .await
            .map_err(EngineError::io(format!("bind proxy API on {api}")))?;
        let addr = listener
            .local_addr()
            .map_err(EngineError::io("proxy API address"))?;
        let app = router(Arc::clone(&registry));
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(ProxyServer {
            registry,
            addr,
            task,
        })
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Serve until the API task ends (standalone mode).
    pub async fn serve_forever(&mut self) {
        let _ = (&mut self.task).await;
    }
}

impl Drop for ProxyServer {
    fn drop(&mut self) {
        self.task.abort();
        self.registry.shutdown();
    }
}
