//! Whether an op was served: it succeeded, or the system gave a definite business answer
//! (409: the slot is taken). Shared by the availability checkers, which leave out probes:
//! forged requests (which must fail) and readiness probes (which must fail during outages).

use chaos_model::{Op, OpKind, Outcome};

/// Whether an op counts towards availability at all.
pub fn counts(op: &Op) -> bool {
    !matches!(op.f, OpKind::Forged | OpKind::Readiness)
}

pub fn served(op: &Op) -> bool {
    match op.outcome {
        Outcome::Ok => true,
        Outcome::Fail => op.status == Some(409),
        Outcome::Info => false,
    }
}
