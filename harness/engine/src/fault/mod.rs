//! Faults: each an inject/heal pair. `inject` returns what `heal` needs to undo it, and the
//! runner heals every injected fault before the run ends, whatever happened.

mod kill;
mod knobs;
mod latency;

use chaos_model::{Fault, FaultKind, Service};

use crate::env::LocalEnv;
use crate::error::EngineError;

/// An injected fault, holding what its heal needs.
#[derive(Debug, Clone, PartialEq)]
pub enum Injected {
    Killed { service: Service },
    Toxic { service: Service, toxic: String },
    Knobs { service: Service },
}

pub async fn inject(
    env: &mut LocalEnv,
    index: usize,
    fault: &Fault,
) -> Result<Injected, EngineError> {
    match fault.kind() {
        FaultKind::Kill { service, .. } => kill::inject(env, service).await,
        FaultKind::Toxic { service, toxic, .. } => {
            latency::inject(env, index, service, &toxic).await
        }
        FaultKind::Knobs { service, knobs, .. } => knobs::inject(env, service, &knobs).await,
    }
}

pub async fn heal(env: &mut LocalEnv, injected: &Injected) -> Result<(), EngineError> {
    match injected {
        Injected::Killed { service } => kill::heal(env, *service).await,
        Injected::Toxic { service, toxic } => latency::heal(env, *service, toxic).await,
        Injected::Knobs { service } => knobs::heal(env, *service).await,
    }
}
