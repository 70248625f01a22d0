//! Toxic: any Toxiproxy toxic (latency, bandwidth, slow_close, timeout, reset_peer,
//! limit_data, slicer) with its stream and toxicity on a service's proxy; heal: remove it.
//! Toxics on one proxy stack, each named after its fault.

use chaos_model::{Service, Toxic};
use serde_json::json;

use super::Injected;
use crate::env::Env;
use crate::error::EngineError;

pub(super) async fn inject(
    env: &Env,
    index: usize,
    service: Service,
    toxic: &Toxic,
) -> Result<Injected, EngineError> {
    let name = format!("chaos_fault_{index}_{}", toxic.type_name());
    let body = json!({
        "name": name,
        "type": toxic.type_name(),
        "stream": toxic.stream().as_str(),
        "toxicity": toxic.toxicity(),
        "attributes": toxic.attributes(),
    });
    env.proxy_client().add_toxic(service.as_str(), body).await?;
    Ok(Injected::Toxic {
        service,
        toxic: name,
    })
}

pub(super) async fn heal(env: &Env, service: Service, toxic: &str) -> Result<(), EngineError> {
    env.proxy_client()
        .remove_toxic(service.as_str(), toxic)
        .await
}
