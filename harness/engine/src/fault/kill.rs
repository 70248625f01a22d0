//! Kill: SIGKILL a node's process group (a server, a stub or a replica); heal: start it
//! again on the same port with the same data, and wait until it serves.

use chaos_model::Node;

use super::Injected;
use crate::env::Env;
use crate::error::EngineError;

pub(super) async fn inject(env: &Env, node: Node) -> Result<Injected, EngineError> {
    env.kill(node).await?;
    Ok(Injected::Killed(node))
}

pub(super) async fn heal(env: &Env, node: Node) -> Result<(), EngineError> {
    env.restart(node).await
}
