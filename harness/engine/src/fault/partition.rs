//! Partition: disconnect a node's container from the run's network (docker only), so the
//! proxy in front of it stays up but reaches nothing and the node reaches nothing; heal:
//! connect it again under the same name.

use chaos_model::Node;

use super::Injected;
use crate::env::Env;
use crate::error::EngineError;

pub(super) async fn inject(env: &Env, node: Node) -> Result<Injected, EngineError> {
    env.partition(node).await?;
    Ok(Injected::Partitioned(node))
}

pub(super) async fn heal(env: &Env, node: Node) -> Result<(), EngineError> {
    env.reconnect(node).await
}
