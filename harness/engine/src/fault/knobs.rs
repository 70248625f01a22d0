//! Stub knobs: make a stub slow, hang, fail (a share of calls or the first N, with
//! `Retry-After`) or accept and answer late, through its control API; heal: set its knobs
//! back to "behave". Its call log is kept.

use std::time::Duration;

use chaos_model::{Service, StubKnobs};

use super::Injected;
use crate::env::Env;
use crate::error::EngineError;

async fn set(env: &Env, service: Service, knobs: &StubKnobs) -> Result<(), EngineError> {
    let control = env
        .endpoints()
        .stubs
        .get(service.as_str())
        .ok_or_else(|| EngineError::Other(format!("{service} has no stub control API")))?;
    let url = format!("{control}/knobs");
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("reqwest client builds");
    let resp = http
        .post(&url)
        .json(knobs)
        .send()
        .await
        .map_err(|e| EngineError::Other(format!("POST {url}: {e}")))?;
    if !resp.status().is_success() {
        let status = resp.status();
        let body = resp.text().await.unwrap_or_default();
        return Err(EngineError::Other(format!("POST {url}: {status}: {body}")));
    }
    Ok(())
}

pub(super) async fn inject(
    env: &Env,
    service: Service,
    knobs: &StubKnobs,
) -> Result<Injected, EngineError> {
    set(env, service, knobs).await?;
    Ok(Injected::Knobs(service))
}

pub(super) async fn heal(env: &Env, service: Service) -> Result<(), EngineError> {
    set(env, service, &StubKnobs::default()).await
}
