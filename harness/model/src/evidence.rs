//! Evidence: what the engine reads from the world after the run (database rows, stub logs,
//! queue depths, the target's metrics).

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

/// One provider's weekly template for one weekday (Monday = 0), in minutes of the UTC day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduleRow {
    pub provider: u32,
    pub weekday: u8,
    pub start_minute: u32,
    pub end_minute: u32,
    pub slot_minutes: u32,
}

impl ScheduleRow {
    /// Whether `start` (Unix seconds) begins one of this template's slots.
    pub fn has_slot(&self, start: i64) -> bool {
        const DAY: i64 = 86_400;
        let weekday = (start.div_euclid(DAY) + 3).rem_euclid(7);
        let second = start.rem_euclid(DAY);
        if weekday != i64::from(self.weekday) || second % 60 != 0 {
            return false;
        }
        let minute = second / 60;
        let (from, to, step) = (
            i64::from(self.start_minute),
            i64::from(self.end_minute),
            i64::from(self.slot_minutes).max(1),
        );
        minute >= from && minute + step <= to && (minute - from) % step == 0
    }
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

/// A broker queue's depth as the broker reports it to a passive declare.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueDepth {
    /// Messages ready for delivery.
    pub messages: u32,
    pub consumers: u32,
}

/// Everything read after the run. A `None` field means the engine could not read it; a
/// checker that needs it says `unknown` rather than guessing.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    #[serde(default)]
    pub appointments: Option<Vec<AppointmentRow>>,
    /// Every provider's weekly schedule template, as the target holds it at the end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedules: Option<Vec<ScheduleRow>>,
    /// Stub name -> every call it received.
    #[serde(default)]
    pub stub_calls: BTreeMap<String, Vec<StubCall>>,
    /// Wall-clock time of the history's zero, in milliseconds since the Unix epoch, to
    /// place the stubs' wall-clock stamps on the run's clock.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_started_unix_ms: Option<u64>,
    /// Queue name -> messages in it (ready and unacknowledged) when collected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queues: Option<BTreeMap<String, QueueDepth>>,
    /// Replica base URL -> its Prometheus `/metrics` text.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metrics: BTreeMap<String, String>,
    /// Problems met while collecting, for the report.
    #[serde(default)]
    pub errors: Vec<String>,
}
