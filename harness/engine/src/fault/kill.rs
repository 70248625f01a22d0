//! Kill: SIGKILL a service's process group; heal: start it again on the same port and data
//! directory, and wait until it is ready.

use chaos_model::Service;

use super::Injected;
use crate::env::LocalEnv;
use crate::error::EngineError;

pub(super) async fn inject(env: &mut LocalEnv, service: Service) -> Result<Injected, EngineError> {
    env.kill(service).await?;
    Ok(Injected::Killed { service })
}

pub(super) async fn heal(env: &mut LocalEnv, service: Service) -> Result<(), EngineError> {
    env.restart(service).await
}
