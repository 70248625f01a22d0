//! Faults: each an inject/heal pair, one kind per file. `inject` returns what `heal` needs
//! to undo it. The runner applies each fault in a task of its own, so a slow heal (a
//! restart that waits for readiness) stalls neither the workload nor the other faults.

mod down;
mod kill;
mod knobs;
mod partition;
mod pause;
mod postgres_lock;
mod stop;
mod toxic;

use chaos_model::{FaultKind, Node, Service, Signal};

use crate::env::Env;
use crate::error::EngineError;

/// An injected fault, holding what its heal needs.
#[derive(Debug)]
pub enum Injected {
    Killed(Node),
    /// `graceful`: it exited by itself within the grace period (otherwise it was killed).
    Stopped {
        node: Node,
        graceful: bool,
    },
    Paused(Node),
    Partitioned(Node),
    Toxic {
        service: Service,
        toxic: String,
    },
    Down(Service),
    Knobs(Service),
    Locked(postgres_lock::HeldLock),
}

impl Injected {
    /// What the schedule should say about an inject that worked but not as asked.
    pub fn note(&self) -> Option<String> {
        match self {
            Injected::Stopped {
                node,
                graceful: false,
            } => Some(format!(
                "{node} did not exit within the grace period: killed"
            )),
            _ => None,
        }
    }
}

pub async fn inject(env: &Env, index: usize, kind: &FaultKind) -> Result<Injected, EngineError> {
    match kind {
        FaultKind::Process { signal, node, .. } => match signal {
            Signal::Kill => kill::inject(env, *node).await,
            Signal::Stop => stop::inject(env, *node).await,
            Signal::Pause => pause::inject(env, *node).await,
        },
        FaultKind::Toxic { service, toxic, .. } => toxic::inject(env, index, *service, toxic).await,
        FaultKind::Down { service, .. } => down::inject(env, *service).await,
        FaultKind::Knobs { service, knobs, .. } => knobs::inject(env, *service, knobs).await,
        FaultKind::PostgresLock { lock, .. } => postgres_lock::inject(env, lock).await,
        FaultKind::Partition { node, .. } => partition::inject(env, *node).await,
    }
}

pub async fn heal(env: &Env, injected: Injected) -> Result<(), EngineError> {
    match injected {
        Injected::Killed(node) => kill::heal(env, node).await,
        Injected::Stopped { node, .. } => stop::heal(env, node).await,
        Injected::Paused(node) => pause::heal(env, node).await,
        Injected::Partitioned(node) => partition::heal(env, node).await,
        Injected::Toxic { service, toxic } => toxic::heal(env, service, &toxic).await,
        Injected::Down(service) => down::heal(env, service).await,
        Injected::Knobs(service) => knobs::heal(env, service).await,
        Injected::Locked(held) => postgres_lock::heal(held).await,
    }
}

/// What a fault holds exclusively from its injection to its heal, if anything: a fault due
/// while another holds the same thing waits for that one's heal (back-to-back faults on one
/// process never overlap, whatever a restart costs).
pub fn holds(kind: &FaultKind) -> Option<String> {
    match kind {
        FaultKind::Process { node, .. } | FaultKind::Partition { node, .. } => {
            Some(format!("process {node}"))
        }
        FaultKind::Knobs { service, .. } => Some(format!("knobs {service}")),
        FaultKind::Down { service, .. } => Some(format!("link {service}")),
        FaultKind::PostgresLock { lock, .. } => Some(format!("table {}", lock.table)),
        FaultKind::Toxic { .. } => None,
    }
}
