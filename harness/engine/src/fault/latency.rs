//! Latency: a latency toxic (with jitter) on a service's proxy; heal: remove it.

use chaos_model::{Service, Toxic};
use serde_json::json;

use super::Injected;
use crate::env::LocalEnv;
use crate::error::EngineError;

pub(super) async fn inject(
    env: &mut LocalEnv,
    index: usize,
    service: Service,
    toxic: &Toxic,
) -> Result<Injected, EngineError> {
    let Toxic::Latency {
        latency,
        jitter,
        stream,
    } = toxic;
    let name = format!("chaos_fault_{index}_latency");
    let body = json!({
        "name": name,
        "type": "latency",
        "stream": stream.as_str(),
        "toxicity": 1.0,
        "attributes": { "latency": latency.0.as_millis() as u64, "jitter": jitter.0.as_millis() as u64 },
    });
    env.proxy_client().add_toxic(service.as_str(), body).await?;
    Ok(Injected::Toxic {
        service,
        toxic: name,
    })
}

pub(super) async fn heal(
    env: &mut LocalEnv,
    service: Service,
    toxic: &str,
) -> Result<(), EngineError> {
    env.proxy_client()
        .remove_toxic(service.as_str(), toxic)
        .await
}
