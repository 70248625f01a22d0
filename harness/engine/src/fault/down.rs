//! Down: cut the link to a service (its proxy disabled: open connections closed, new ones
//! refused); heal: enable it again.

use chaos_model::Service;

use super::Injected;
use crate::env::Env;
use crate::error::EngineError;

pub(super) async fn inject(env: &Env, service: Service) -> Result<Injected, EngineError> {
    env.proxy_client()
        .set_enabled(service.as_str(), false)
        .await?;
    Ok(Injected::Down(service))
}

pub(super) async fn heal(env: &Env, service: Service) -> Result<(), EngineError> {
    env.proxy_client().set_enabled(service.as_str(), true).await
}
