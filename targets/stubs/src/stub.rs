//! One stub: its provider's state, its call log and its knobs, and the path every call takes
//! through them (arrive, decide, wait, act, wait, answer).
//!
//! Abandoned calls: a caller that gives up closes its connection, hyper then drops the
//! handler future, and whatever the handler had not done yet never happens. Nothing has to
//! be done at that point, because each step is written as it happens: the call is in the
//! log (and the journal) from its arrival, `accepted` is set in the same critical section as
//! the provider's effect, and the answer is written last. So a call abandoned during
//! `latency_ms` or a hang stays `status: null`, `accepted: false` and has no effect; a call
//! abandoned during `late_answer_ms` stays `status: null`, `accepted: true`, its effect
//! kept. The handling is not spawned: the harness wants exactly what a caller that gave up
//! leaves behind.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use axum::http::{HeaderMap, HeaderValue};
use axum::response::Response;

use crate::clock::now_ms;
use crate::control::{Action, Knobs};
use crate::journal::JournalError;
use crate::log::{Arrival, Call, CallLog};

/// A provider's behaviour behind the common call path.
pub trait Provider: Default + Send + 'static {
    /// Stores the effect of a call the provider accepts and answers it as the provider
    /// would. Called live, and on start for every call the journal says was accepted, in
    /// the order they were (so it must depend on nothing but the call and `accepted_ms`).
    fn apply(&mut self, call: &Call, accepted_ms: u64) -> Response;

    /// The provider's error answer for an injected error (`Retry-After` is added by the
    /// caller).
    fn injected_error(status: u16) -> Response;
}

/// What a handler decided about a call once the knobs let it through, from the provider's
/// current state.
pub enum Outcome {
    /// A write the provider accepts: [`Provider::apply`] stores it and answers.
    Accept,
    /// A write the provider refuses (a validation error): no effect.
    Refuse(Response),
    /// A lookup's answer: no effect.
    Answer(Response),
}

#[derive(Debug)]
pub struct Stub<P> {
    pub log: CallLog,
    knobs: Mutex<Knobs>,
    /// Calls decided since the knobs were last set, for `fail_first` and `error_rate`.
    calls_since_knobs: AtomicU64,
    /// Wakes hanging calls when the knobs change.
    released: tokio::sync::Notify,
    provider: Mutex<P>,
}

pub type SharedStub<P> = Arc<Stub<P>>;

impl<P: Provider> Stub<P> {
    /// A stub whose log lives in memory only.
    pub fn in_memory() -> Stub<P> {
        Stub {
            log: CallLog::in_memory(),
            knobs: Mutex::default(),
            calls_since_knobs: AtomicU64::new(0),
            released: tokio::sync::Notify::new(),
            provider: Mutex::default(),
        }
    }

    /// A stub journaled to `path`: its log and its provider's state are what the journal
    /// already holds.
    pub fn journaled(path: &Path) -> Result<Stub<P>, JournalError> {
        let (log, accepted) = CallLog::journaled(path)?;
        let mut provider = P::default();
        for (call, at_ms) in &accepted {
            provider.apply(call, *at_ms);
        }
        Ok(Stub {
            log,
            provider: Mutex::new(provider),
            ..Stub::in_memory()
        })
    }

    pub fn knobs(&self) -> Knobs {
        self.knobs.lock().expect("knobs lock poisoned").clone()
    }

    pub fn set_knobs(&self, knobs: Knobs) {
        *self.knobs.lock().expect("knobs lock poisoned") = knobs;
        self.calls_since_knobs.store(0, Ordering::SeqCst);
        self.released.notify_waiters();
    }

    /// Forgets the log, the journal and the provider's state, and sets the knobs back to
    /// "behave".
    pub fn reset(&self) {
        let mut provider = self.provider();
        *provider = P::default();
        self.log.clear();
        drop(provider);
        self.set_knobs(Knobs::default());
    }

    fn provider(&self) -> MutexGuard<'_, P> {
        self.provider.lock().expect("provider lock poisoned")
    }

    /// What to do with the next call; a hanging call waits here until the knobs change,
    /// then is decided again.
    async fn decide(&self) -> crate::control::Decision {
        loop {
            // Register interest before reading the knobs, so a change in between is not missed.
            let released = self.released.notified();
            let n = self.calls_since_knobs.fetch_add(1, Ordering::SeqCst) + 1;
            let d = self.knobs.lock().expect("knobs lock poisoned").decide(n);
            if d.action != Action::Hang {
                return d;
            }
            self.calls_since_knobs.fetch_sub(1, Ordering::SeqCst);
            released.await;
        }
    }

    /// Serves one call: logs its arrival, lets the knobs delay, fail or hold it, then has
    /// `handle` decide about it from the provider's state, and answers.
    pub async fn serve(&self, arrival: Arrival, handle: impl FnOnce(&P) -> Outcome) -> Response {
        let pending = self.log.arrive(arrival, now_ms());
        let decision = self.decide().await;
        tokio::time::sleep(decision.latency).await;
        let response = match decision.action {
            Action::Hang => unreachable!("decide resolves hangs"),
            Action::Error {
                status,
                retry_after_s,
            } => with_retry_after(P::injected_error(status), retry_after_s),
            Action::Handle => {
                let mut provider = self.provider();
                if self.log.is_stale(&pending) {
                    // It arrived before a reset: the provider it was sent to is gone.
                    drop(provider);
                    return with_retry_after(P::injected_error(503), Some(1));
                }
                match handle(&provider) {
                    Outcome::Accept => {
                        let at = now_ms();
                        let r = provider.apply(&pending.call, at);
                        self.log.accept(&pending, at);
                        r
                    }
                    Outcome::Refuse(r) | Outcome::Answer(r) => r,
                }
            }
        };
        tokio::time::sleep(decision.late_answer).await;
        self.log
            .answer(pending, response.status().as_u16(), now_ms());
        response
    }
}

fn with_retry_after(mut r: Response, retry_after_s: Option<u64>) -> Response {
    if let Some(s) = retry_after_s {
        r.headers_mut().insert("retry-after", HeaderValue::from(s));
    }
    r
}

/// The `Idempotency-Key` header of a call, if any.
pub fn idempotency_key(headers: &HeaderMap) -> Option<String> {
    headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// The arrival record of a call.
pub fn arrival(
    method: &'static str,
    path: String,
    headers: &HeaderMap,
    body: serde_json::Value,
) -> Arrival {
    Arrival {
        method,
        path,
        idempotency_key: idempotency_key(headers),
        trace: crate::traceparent::trace_id(headers),
        body,
    }
}

/// A request body as the log shows it: JSON if it parses, else the text.
pub fn json_body(bytes: &[u8]) -> serde_json::Value {
    serde_json::from_slice(bytes)
        .unwrap_or_else(|_| serde_json::json!({ "unparsed": String::from_utf8_lossy(bytes) }))
}

/// The path and query of a request, as the log shows it.
pub fn target(uri: &axum::http::Uri) -> String {
    uri.path_and_query()
        .map_or_else(|| uri.path().to_string(), |pq| pq.as_str().to_string())
}
