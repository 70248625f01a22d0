//! The control API of a stub: read and reset its call log, set and read its fault knobs.

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use crate::stub::{Provider, SharedStub};

/// Fault knobs, with the names of the harness's `chaos_model::StubKnobs`. All default to
/// "behave"; a `POST /knobs` replaces all of them (an absent knob is back to its default).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Knobs {
    /// Wait this long before handling a call: a caller that gives up first leaves it undone.
    #[serde(default)]
    pub latency_ms: u64,
    /// Never answer (until the knobs change); the call is not acted on.
    #[serde(default)]
    pub hang: bool,
    /// Answer the first N calls after the knobs were set with `error_status`.
    #[serde(default)]
    pub fail_first: u64,
    /// Fraction of calls, 0..1, answered with `error_status` (deterministic: every k-th call).
    #[serde(default)]
    pub error_rate: f64,
    /// The status of injected errors.
    #[serde(default = "default_error_status")]
    pub error_status: u16,
    /// The `Retry-After` seconds of injected 429 and 503 answers; 1 when absent. Only with an
    /// `error_status` of 429 or 503.
    #[serde(default)]
    pub retry_after_s: Option<u64>,
    /// Act on the call at once (message queued, resource stored), then answer only after this
    /// long: past the caller's timeout, the answer is lost but the effect is not.
    #[serde(default)]
    pub late_answer_ms: u64,
}

fn default_error_status() -> u16 {
    503
}

const MAX_DELAY_MS: u64 = 600_000;
const MAX_RETRY_AFTER_S: u64 = 3600;

impl Default for Knobs {
    fn default() -> Self {
        Knobs {
            latency_ms: 0,
            hang: false,
            fail_first: 0,
            error_rate: 0.0,
            error_status: default_error_status(),
            retry_after_s: None,
            late_answer_ms: 0,
        }
    }
}

/// What a stub does with one call, decided from its knobs and the call's position.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// Wait before handling.
    pub latency: Duration,
    pub action: Action,
    /// Wait after handling, before answering.
    pub late_answer: Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Handle the call as the provider would.
    Handle,
    /// Answer with an injected error; `retry_after_s` goes in `Retry-After` when set.
    Error {
        status: u16,
        retry_after_s: Option<u64>,
    },
    /// Hold the call until the knobs change.
    Hang,
}

impl Knobs {
    /// `n` is the 1-based count of calls since the knobs were set.
    pub fn decide(&self, n: u64) -> Decision {
        let action = if self.hang {
            Action::Hang
        } else if n <= self.fail_first || self.by_rate(n) {
            Action::Error {
                status: self.error_status,
                retry_after_s: matches!(self.error_status, 429 | 503)
                    .then(|| self.retry_after_s.unwrap_or(1)),
            }
        } else {
            Action::Handle
        };
        Decision {
            latency: Duration::from_millis(self.latency_ms),
            action,
            late_answer: Duration::from_millis(self.late_answer_ms),
        }
    }

    /// Deterministic spreading: call n fails when floor(n * rate) steps up.
    fn by_rate(&self, n: u64) -> bool {
        let r = self.error_rate.min(1.0);
        r > 0.0 && ((n as f64) * r).floor() > (((n - 1) as f64) * r).floor()
    }

    pub fn validate(&self) -> Result<(), String> {
        if !(0.0..=1.0).contains(&self.error_rate) {
            return Err(format!(
                "error_rate: expected a fraction in [0, 1], found {}",
                self.error_rate
            ));
        }
        if !(400..=599).contains(&self.error_status) {
            return Err(format!(
                "error_status: expected a 4xx or 5xx status, found {}",
                self.error_status
            ));
        }
        for (name, ms) in [
            ("latency_ms", self.latency_ms),
            ("late_answer_ms", self.late_answer_ms),
        ] {
            if ms > MAX_DELAY_MS {
                return Err(format!(
                    "{name}: expected at most {MAX_DELAY_MS} (10 minutes), found {ms}"
                ));
            }
        }
        if let Some(s) = self.retry_after_s {
            if !matches!(self.error_status, 429 | 503) {
                return Err(format!(
                    "retry_after_s: Retry-After goes with error_status 429 or 503, not {}",
                    self.error_status
                ));
            }
            if s > MAX_RETRY_AFTER_S {
                return Err(format!(
                    "retry_after_s: expected at most {MAX_RETRY_AFTER_S} seconds, found {s}"
                ));
            }
        }
        Ok(())
    }
}

/// `/calls`, `/knobs` and `/reset` of one stub (the binary nests it under `/<stub>`).
pub fn control_router<P: Provider>(stub: SharedStub<P>) -> Router {
    Router::new()
        .route("/calls", get(calls::<P>))
        .route("/reset", post(reset::<P>))
        .route("/knobs", get(get_knobs::<P>).post(set_knobs::<P>))
        .with_state(stub)
}

async fn calls<P: Provider>(State(stub): State<SharedStub<P>>) -> Json<Vec<crate::log::Call>> {
    Json(stub.log.snapshot())
}

async fn reset<P: Provider>(State(stub): State<SharedStub<P>>) -> StatusCode {
    stub.reset();
    StatusCode::NO_CONTENT
}

async fn get_knobs<P: Provider>(State(stub): State<SharedStub<P>>) -> Json<Knobs> {
    Json(stub.knobs())
}

async fn set_knobs<P: Provider>(
    State(stub): State<SharedStub<P>>,
    body: Result<Json<Knobs>, axum::extract::rejection::JsonRejection>,
) -> (StatusCode, Json<serde_json::Value>) {
    let knobs = match body {
        Ok(Json(k)) => k,
        Err(e) => return bad_request(e.body_text()),
    };
    if let Err(msg) = knobs.validate() {
        return bad_request(msg);
    }
    stub.set_knobs(knobs.clone());
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

    fn is_error(d: &Decision) -> bool {
        matches!(d.action, Action::Error { .. })
    }

    #[test]
    fn fail_first_then_answer() {
        let k = Knobs {
            fail_first: 2,
            ..Knobs::default()
        };
        assert!(matches!(
            k.decide(1).action,
            Action::Error {
                status: 503,
                retry_after_s: Some(1)
            }
        ));
        assert!(is_error(&k.decide(2)));
        assert_eq!(k.decide(3).action, Action::Handle);
    }

    #[test]
    fn error_rate_is_spread_exactly() {
        let k = Knobs {
            error_rate: 0.25,
            ..Knobs::default()
        };
        let errors = (1..=100).filter(|&n| is_error(&k.decide(n))).count();
        assert_eq!(errors, 25);
    }

    #[test]
    fn retry_after_goes_with_429_and_503_only() {
        let k = |status, retry| Knobs {
            fail_first: 1,
            error_status: status,
            retry_after_s: retry,
            ..Knobs::default()
        };
        assert_eq!(
            k(429, Some(7)).decide(1).action,
            Action::Error {
                status: 429,
                retry_after_s: Some(7)
            }
        );
        assert_eq!(
            k(500, None).decide(1).action,
            Action::Error {
                status: 500,
                retry_after_s: None
            }
        );
        assert!(k(500, Some(7)).validate().is_err());
        assert!(k(503, Some(3601)).validate().is_err());
        assert!(k(503, Some(3600)).validate().is_ok());
    }

    #[test]
    fn bad_knobs_are_refused() {
        for k in [
            Knobs {
                error_rate: 1.5,
                ..Knobs::default()
            },
            Knobs {
                error_status: 200,
                ..Knobs::default()
            },
            Knobs {
                late_answer_ms: 600_001,
                ..Knobs::default()
            },
            Knobs {
                latency_ms: 600_001,
                ..Knobs::default()
            },
        ] {
            assert!(k.validate().is_err(), "{k:?}");
        }
        assert!(Knobs::default().validate().is_ok());
    }
}
