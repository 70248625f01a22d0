//! HTTP stubs of the providers MediConnect calls (Twilio Messages for now). Each stub records
//! every call it receives and obeys fault knobs set through a separate control API.

pub mod control;
pub mod ehr;
pub mod log;
pub mod sendgrid;
pub mod twilio;

use std::sync::Arc;

pub use control::{Knobs, control_router};
pub use log::CallLog;

/// State shared by one stub's API router and its control router.
#[derive(Debug, Default)]
pub struct Stub {
    pub log: CallLog,
    pub knobs: std::sync::Mutex<Knobs>,
    /// Calls answered since the knobs were last set, for `fail_first` and `error_rate`.
    pub calls_since_knobs: std::sync::atomic::AtomicU64,
    /// Wakes hanging calls when the knobs change.
    pub released: tokio::sync::Notify,
}

pub type SharedStub = Arc<Stub>;

/// What to do with the next call, from the knobs; a hanging call waits here until the knobs
/// change, then is decided again.
pub async fn decide(stub: &Stub) -> control::Decision {
    use std::sync::atomic::Ordering;
    loop {
        // Register interest before reading the knobs, so a change in between is not missed.
        let released = stub.released.notified();
        let n = stub.calls_since_knobs.fetch_add(1, Ordering::SeqCst) + 1;
        let d = stub.knobs.lock().expect("knobs lock poisoned").decide(n);
        if d != control::Decision::Hang {
            return d;
        }
        stub.calls_since_knobs.fetch_sub(1, Ordering::SeqCst);
        released.await;
    }
}

/// The `Idempotency-Key` header of a call, if any.
pub fn idempotency_key(headers: &axum::http::HeaderMap) -> Option<String> {
    headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}
