//! Whether an op was served: it succeeded, or the system gave a definite business answer
//! (409: the slot is taken). Shared by the availability checkers, which leave out forged
//! requests: those are probes that must fail.

use chaos_model::{Op, OpKind, Outcome};

/// Whether an op counts towards availability at all.
pub fn counts(op: &Op) -> bool {
    op.f != OpKind::Forged
}

pub fn served(op: &Op) -> bool {
    match op.outcome {
        Outcome::Ok => true,
        Outcome::Fail => op.status == Some(409),
        Outcome::Info => false,
    }
}
