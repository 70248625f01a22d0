//! Evidence: what the engine reads from the world after the run (database rows, stub logs).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::history::Slot;

/// One row of the target's `appointments` table.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct AppointmentRow {
    pub id: String,
    pub patient: u32,
    pub slot: Slot,
    pub status: String,
}

/// One call a stub received.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StubCall {
    pub seq: u64,
    /// Milliseconds since the Unix epoch, by the stub's clock.
    pub at_ms: u64,
    pub method: String,
    pub path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    /// The request body, parsed: form fields or JSON.
    pub body: serde_json::Value,
    pub status: u16,
}

/// Everything read after the run. A `None` field means the engine could not read it; a
/// checker that needs it says `unknown` rather than guessing.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    #[serde(default)]
    pub appointments: Option<Vec<AppointmentRow>>,
    /// Stub name -> every call it received.
    #[serde(default)]
    pub stub_calls: BTreeMap<String, Vec<StubCall>>,
    /// Problems met while collecting, for the report.
    #[serde(default)]
    pub errors: Vec<String>,
}
