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
    /// Its optimistic-locking version, when collected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u32>,
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

/// One call a stub received, recorded when it arrived and completed when it was answered.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StubCall {
    pub seq: u64,
    /// When it arrived: milliseconds since the Unix epoch, by the stub's clock.
    pub at_ms: u64,
    pub method: String,
    pub path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    /// The trace id of its `traceparent` header, if it carried one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace: Option<String>,
    /// The request body, parsed: form fields or JSON.
    pub body: serde_json::Value,
    /// The status it was answered with; absent when the caller gave up first (or the
    /// stub still held it when the log was read).
    #[serde(default)]
    pub status: Option<u16>,
    /// When it was answered (ms since the Unix epoch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answered_ms: Option<u64>,
    /// Whether the provider acted on it (the message went out, the resource was stored),
    /// answered or not. Absent in old logs: then a 2xx answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accepted: Option<bool>,
}

impl StubCall {
    /// Whether the provider acted on the call.
    pub fn took_effect(&self) -> bool {
        self.accepted
            .unwrap_or_else(|| self.status.is_some_and(|s| (200..300).contains(&s)))
    }

    /// Whether it was refused (answered 4xx or 5xx).
    pub fn refused(&self) -> bool {
        self.status.is_some_and(|s| s >= 400)
    }
}

/// One row of the target's `waitlist` table.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct WaitlistRow {
    pub id: i64,
    pub patient: u32,
    pub slot: Slot,
    /// `waiting` or `booked`.
    pub status: String,
    /// The appointment its promotion booked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub appointment: Option<String>,
}

/// How the quiesce phase ended: drained, or still busy at its deadline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Drain {
    pub drained: bool,
    /// How long the runner waited after the workload.
    pub waited_ms: u64,
    /// Outbox rows not yet relayed when it stopped waiting (hardened).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outbox: Option<u64>,
    /// Messages still in the broker's queues (ready and unacknowledged).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queued: Option<u64>,
    /// Milliseconds since the last stub call, when it stopped waiting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stubs_idle_ms: Option<u64>,
}

/// One reading of every replica's gauges, taken periodically during the run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricSample {
    /// On the history's clock.
    pub time_us: u64,
    /// 1-based replica.
    pub replica: u32,
    /// Whether the replica answered `/metrics` (it may answer with no gauge at all).
    #[serde(default = "answered")]
    pub answered: bool,
    /// Gauge name (labels folded by sum) -> value; empty when the replica did not answer
    /// or exports no gauge.
    pub gauges: BTreeMap<String, f64>,
}

fn answered() -> bool {
    true
}

/// The target's service clock: service time = `start` + (real time - `epoch`) * `scale`,
/// in Unix seconds; it decides when 24 h and 1 h reminders are due.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ServiceClock {
    pub start: f64,
    pub epoch: f64,
    pub scale: f64,
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
    /// Every row of the `waitlist` table.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waitlist: Option<Vec<WaitlistRow>>,
    /// How the quiesce phase ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drain: Option<Drain>,
    /// The replicas' gauges, sampled during the run.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub metric_samples: Vec<MetricSample>,
    /// The service clock the replicas ran on, when it ran fast.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_clock: Option<ServiceClock>,
    /// Problems met while collecting, for the report.
    #[serde(default)]
    pub errors: Vec<String>,
}
