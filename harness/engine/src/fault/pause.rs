//! Pause: SIGSTOP every process of a node, so it keeps its sockets open and answers
//! nothing (what a long GC pause or a frozen VM looks like to its clients); heal: SIGCONT.

use chaos_model::Node;

use super::Injected;
use crate::env::Env;
use crate::error::EngineError;

pub(super) async fn inject(env: &Env, node: Node) -> Result<Injected, EngineError> {
    env.pause(node).await?;
    Ok(Injected::Paused(node))
}

pub(super) async fn heal(env: &Env, node: Node) -> Result<(), EngineError> {
    env.resume(node).await
}
