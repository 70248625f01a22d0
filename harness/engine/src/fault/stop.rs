//! Stop: SIGTERM a node (SIGINT for PostgreSQL), a graceful stop it may use to finish what
//! it is doing, killed if it takes longer than the grace period (still down, so still healed); heal: start it again on the
//! same port with the same data, and wait until it serves.

use chaos_model::Node;

use super::Injected;
use crate::env::Env;
use crate::error::EngineError;

pub(super) async fn inject(env: &Env, node: Node) -> Result<Injected, EngineError> {
    let graceful = env.stop(node).await?;
    Ok(Injected::Stopped { node, graceful })
}

pub(super) async fn heal(env: &Env, node: Node) -> Result<(), EngineError> {
    env.restart(node).await
}
