//! The control API of a stub: read and reset its call log, set and clear its fault knobs.

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use crate::SharedStub;

/// Fault knobs. All default to "behave".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Knobs {
    /// Added to every response.
    #[serde(default)]
    pub latency_ms: u64,
    /// Never answer (until the knobs are reset).
    #[serde(default)]
    pub hang: bool,
    /// Answer the first N calls after the knobs were set with `error_status`.
    #[serde(default)]
    pub fail_first: u64,
    /// Fraction of calls, 0..1, answered with `error_status` (deterministic: every k-th call).
    #[serde(default)]
    pub error_rate: f64,
    /// The status used for injected errors: 429 comes with `Retry-After`.
    #[serde(default = "default_error_status")]
    pub error_status: u16,
}

fn default_error_status() -> u16 {
    503
}

impl Default for Knobs {
    fn default() -> Self {
        Knobs {
            latency_ms: 0,
            hang: false,
            fail_first: 0,
            error_rate: 0.0,
            error_status: default_error_status(),
        }
    }
}

/// What a stub should do with one call, decided from its knobs and the call's position.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    Answer { delay: Duration },
    Error { delay: Duration, status: u16 },
    Hang,
}

impl Knobs {
    /// `n` is the 1-based count of calls since the knobs were set.
    pub fn decide(&self, n: u64) -> Decision {
        let delay = Duration::from_millis(self.latency_ms);
        if self.hang {
            return Decision::Hang;
        }
        let by_rate = self.error_rate > 0.0 && {
            // Deterministic spreading: call n fails when floor(n*rate) steps up.
            let r = self.error_rate.min(1.0);
            ((n as f64) * r).floor() > (((n - 1) as f64) * r).floor()
        };
        if n <= self.fail_first || by_rate {
            Decision::Error {
                delay,
                status: self.error_status,
            }
        } else {
            Decision::Answer { delay }
        }
    }

    fn validate(&self) -> Result<(), String> {
        if !(0.0..=1.0).contains(&self.error_rate) {
            return Err("error_rate must be within 0..1".into());
        }
        if !(400..=599).contains(&self.error_status) {
            return Err("error_status must be a 4xx or 5xx status".into());
        }
        if self.latency_ms > 600_000 {
            return Err("latency_ms must be at most 600000".into());
        }
        Ok(())
    }
}

pub fn control_router(stub: SharedStub) -> Router {
    Router::new()
        .route("/calls", get(calls))
        .route("/reset", post(reset))
        .route("/knobs", get(get_knobs).post(set_knobs))
        .with_state(stub)
}

async fn calls(State(stub): State<SharedStub>) -> Json<Vec<crate::log::Call>> {
    Json(stub.log.snapshot())
}

async fn reset(State(stub): State<SharedStub>) -> StatusCode {
    stub.log.clear();
    *stub.knobs.lock().expect("knobs lock poisoned") = Knobs::default();
    stub.calls_since_knobs
        .store(0, std::sync::atomic::Ordering::SeqCst);
    StatusCode::NO_CONTENT
}

async fn get_knobs(State(stub): State<SharedStub>) -> Json<Knobs> {
    Json(stub.knobs.lock().expect("knobs lock poisoned").clone())
}

async fn set_knobs(
    State(stub): State<SharedStub>,
    body: Result<Json<Knobs>, axum::extract::rejection::JsonRejection>,
) -> (StatusCode, Json<serde_json::Value>) {
    let knobs = match body {
        Ok(Json(k)) => k,
        Err(e) => return bad_request(e.body_text()),
    };
    if let Err(msg) = knobs.validate() {
        return bad_request(msg);
    }
    *stub.knobs.lock().expect("knobs lock poisoned") = knobs.clone();
    stub.calls_since_knobs
        .store(0, std::sync::atomic::Ordering::SeqCst);
    stub.released.notify_waiters();
    (
        StatusCode::OK,
        Json(serde_json::to_value(knobs).expect("knobs serialise")),
    )
}

fn bad_request(message: String) -> (StatusCode, Json<serde_json::Value>) {
    (
        StatusCode::BAD_REQUEST,
        Json(serde_json::json!({ "error": message })),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fail_first_then_answer() {
        let k = Knobs {
            fail_first: 2,
            ..Knobs::default()
        };
        assert!(matches!(k.decide(1), Decision::Error { status: 503, .. }));
        assert!(matches!(k.decide(2), Decision::Error { .. }));
        assert!(matches!(k.decide(3), Decision::Answer { .. }));
    }

    #[test]
    fn error_rate_is_spread_exactly() {
        let k = Knobs {
            error_rate: 0.25,
            ..Knobs::default()
        };
        let errors = (1..=100)
            .filter(|&n| matches!(k.decide(n), Decision::Error { .. }))
            .count();
        assert_eq!(errors, 25);
    }

    #[test]
    fn bad_knobs_are_refused() {
        assert!(
            Knobs {
                error_rate: 1.5,
                ..Knobs::default()
            }
            .validate()
            .is_err()
        );
        assert!(
            Knobs {
                error_status: 200,
                ..Knobs::default()
            }
            .validate()
            .is_err()
        );
    }
}
