//! The call log: every request a stub received, in arrival order, with the status it answered.

use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct Call {
    pub seq: u64,
    pub at_ms: u64,
    pub method: String,
    pub path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    pub body: serde_json::Value,
    pub status: u16,
}

#[derive(Debug, Default)]
pub struct CallLog {
    calls: Mutex<Vec<Call>>,
}

impl CallLog {
    /// Append a call and return its sequence number.
    pub fn record(
        &self,
        method: &str,
        path: &str,
        idempotency_key: Option<String>,
        body: serde_json::Value,
        status: u16,
    ) -> u64 {
        let mut calls = self.calls.lock().expect("call log lock poisoned");
        let seq = calls.len() as u64 + 1;
        let at_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        calls.push(Call {
            seq,
            at_ms,
            method: method.to_string(),
            path: path.to_string(),
            idempotency_key,
            body,
            status,
        });
        seq
    }

    pub fn snapshot(&self) -> Vec<Call> {
        self.calls.lock().expect("call log lock poisoned").clone()
    }

    pub fn clear(&self) {
        self.calls.lock().expect("call log lock poisoned").clear();
    }
}
