//! Scenario files: their shape, their validation, and errors that name the file, line and field.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::duration::Dur;
use crate::fault::{self, Fault, Service};
use crate::locate;

/// One experiment, as written in a `scenarios/**/*.toml` file and validated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// Review findings this experiment makes executable, e.g. `000:C1`.
    #[serde(default)]
    pub findings: Vec<String>,
    #[serde(default = "default_target")]
    pub target: String,
    #[serde(default)]
    pub profile: Profile,
    #[serde(default = "one")]
    pub replicas: u32,
    /// Where it runs when the command line does not say (`--env` wins): `local` processes
    /// (the default) or `docker` containers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<EnvKind>,
    /// How the target is configured for this experiment.
    #[serde(default)]
    pub options: TargetOptions,
    pub workload: Workload,
    #[serde(default)]
    pub phases: Phases,
    #[serde(default)]
    pub faults: Vec<Fault>,
    pub invariants: Invariants,
    #[serde(default)]
    pub expect: Expect,
}

fn default_target() -> String {
    "mediconnect".into()
}

fn one() -> u32 {
    1
}

/// Where a run's services run: child processes of the harness, or containers.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum EnvKind {
    #[default]
    Local,
    Docker,
}

impl EnvKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EnvKind::Local => "local",
            EnvKind::Docker => "docker",
        }
    }
}

impl fmt::Display for EnvKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for EnvKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "local" => Ok(EnvKind::Local),
            "docker" => Ok(EnvKind::Docker),
            _ => Err(format!(
                "unknown environment {s:?}: expected local or docker"
            )),
        }
    }
}

/// The resilience profile of the target: the design as reviewed, or with the countermeasures.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    Naive,
    #[default]
    Hardened,
}

impl Profile {
    pub fn as_str(self) -> &'static str {
        match self {
            Profile::Naive => "naive",
            Profile::Hardened => "hardened",
        }
    }
}

impl std::str::FromStr for Profile {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "naive" => Ok(Profile::Naive),
            "hardened" => Ok(Profile::Hardened),
            _ => Err(format!("expected naive or hardened, found {s:?}")),
        }
    }
}

impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Settings of the target for one experiment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetOptions {
    /// Run the service clock this many times real time, starting on the Sunday before the
    /// workload's first Monday at 08:00 UTC, so 24 h and 1 h reminders fall due within the
    /// run. Absent: the real clock.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clock_scale: Option<f64>,
    /// Period of each replica's reminder poller.
    #[serde(default = "default_poll")]
    pub reminder_poll: Dur,
    /// Requests per user per minute before 429.
    #[serde(default = "default_rate_limit")]
    pub rate_limit: u32,
    /// Hardened: requests in flight per replica before new ones are shed with 503.
    #[serde(default = "default_max_in_flight")]
    pub max_in_flight: u32,
}

fn default_max_in_flight() -> u32 {
    256
}

fn default_poll() -> Dur {
    Dur::from_millis(1000)
}

fn default_rate_limit() -> u32 {
    100
}

impl Default for TargetOptions {
    fn default() -> Self {
        TargetOptions {
            clock_scale: None,
            reminder_poll: default_poll(),
            rate_limit: default_rate_limit(),
            max_in_flight: default_max_in_flight(),
        }
    }
}

/// The client side: an open-loop stream of operations at a fixed rate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Workload {
    pub duration: Dur,
    /// Operations per second, issued on schedule whether or not earlier ones have finished.
    pub rate: f64,
    /// When set, the rate ramps linearly from `rate` at the start to this at the end (an
    /// overload ramp).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_end: Option<f64>,
    /// Logical clients (patients with a session each); ops are spread over them.
    pub clients: u32,
    #[serde(default)]
    pub mix: Mix,
    /// Providers whose calendars the workload books into.
    #[serde(default = "default_providers")]
    pub providers: u32,
    /// When set, bookings race for this many hot slots at a time instead of spreading out.
    #[serde(default)]
    pub hot_slots: Option<u32>,
    /// Bookings are issued in bursts of this many simultaneous requests for one slot.
    #[serde(default = "one")]
    pub burst: u32,
    /// Client-side deadline of one operation; past it the op is recorded as `info`.
    #[serde(default = "default_op_timeout")]
    pub op_timeout: Dur,
    /// Share of bookings the client sends again, with the same `Idempotency-Key`, once the
    /// first answer is in (a double submit, or a retry after an answer it did not trust).
    /// Above 0, every booking carries a key.
    #[serde(default)]
    pub resubmit: f64,
    /// How clients retry an op whose outcome they do not know (`info`: a timeout, a reset,
    /// a 5xx to a write) or that was refused for now (503, 429). Absent: no retries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<Retry>,
}

/// A client's retry policy, as real clients have one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Retry {
    /// Tries in all, the first included (2 to 6).
    pub attempts: u32,
    /// Wait before the first retry; it doubles before each next one (a `Retry-After` in the
    /// answer is honoured when longer).
    pub backoff: Dur,
    /// Whether bookings carry an `Idempotency-Key`, the same on every try.
    #[serde(default)]
    pub idempotency_key: bool,
}

impl Workload {
    /// Whether every booking carries an `Idempotency-Key`.
    pub fn keys_bookings(&self) -> bool {
        self.resubmit > 0.0 || self.retry.as_ref().is_some_and(|r| r.idempotency_key)
    }
}

fn default_providers() -> u32 {
    5
}

fn default_op_timeout() -> Dur {
    Dur::from_secs(2)
}

/// Relative weights of the operations; they need not sum to one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mix {
    #[serde(default)]
    pub book: f64,
    #[serde(default)]
    pub availability: f64,
    /// Requests carrying a token that is no session (probes of authentication).
    #[serde(default)]
    pub forged: f64,
    /// Probes of `/health/readiness` (for the readiness invariant).
    #[serde(default)]
    pub readiness: f64,
    /// Cancellations of the client's own acknowledged appointments (skipped while it has
    /// none).
    #[serde(default)]
    pub cancel: f64,
    /// Moves of the client's own acknowledged appointments to another slot of the same
    /// provider (skipped while it has none); with `hot_slots`, to a hot slot.
    #[serde(default)]
    pub reschedule: f64,
    /// Joins of a slot's waitlist (a hot slot when `hot_slots` is set), to be booked into it
    /// when its appointment is cancelled.
    #[serde(default)]
    pub waitlist: f64,
    /// A clinic changes a provider's weekly template to its narrow hours (10:00-16:00),
    /// once per provider (002:C-5).
    #[serde(default)]
    pub schedule_change: f64,
    /// A patient logs in again: a new session replaces its old one (login churn).
    #[serde(default)]
    pub login: f64,
}

impl Mix {
    /// Every weight by name, in a fixed order.
    pub fn weights(&self) -> [(&'static str, f64); 9] {
        [
            ("book", self.book),
            ("availability", self.availability),
            ("forged", self.forged),
            ("readiness", self.readiness),
            ("cancel", self.cancel),
            ("reschedule", self.reschedule),
            ("waitlist", self.waitlist),
            ("schedule_change", self.schedule_change),
            ("login", self.login),
        ]
    }

    pub fn total(&self) -> f64 {
        self.weights().iter().map(|(_, w)| w).sum()
    }
}

impl Default for Mix {
    fn default() -> Self {
        Mix {
            book: 0.7,
            availability: 0.3,
            forged: 0.0,
            readiness: 0.0,
            cancel: 0.0,
            reschedule: 0.0,
            waitlist: 0.0,
            schedule_change: 0.0,
            login: 0.0,
        }
    }
}

/// How long the runner waits after the workload: the recovery window that the latency and
/// recovery checks judge, and the quiesce period before evidence is collected.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Phases {
    #[serde(default = "default_recovery")]
    pub recovery: Dur,
    /// The deadline of the quiesce phase: after the workload the runner waits until the
    /// system has drained (the outbox and the queues empty, no stub called for `idle`), at
    /// most this long. Work still in flight then makes the reminder checks unknown.
    #[serde(default = "default_quiesce")]
    pub quiesce: Dur,
    /// How long no stub may have been called for the system to count as drained.
    #[serde(default = "default_idle")]
    pub idle: Dur,
    /// Global deadline of the run, environment start-up included.
    #[serde(default = "default_timeout")]
    pub timeout: Dur,
}

fn default_recovery() -> Dur {
    Dur::from_secs(5)
}
fn default_quiesce() -> Dur {
    Dur::from_secs(15)
}
fn default_idle() -> Dur {
    Dur::from_secs(1)
}
/// The most ops a workload may plan (rate times duration): the plan is built in memory.
const MAX_PLANNED_OPS: f64 = 2_000_000.0;

fn default_timeout() -> Dur {
    Dur::from_secs(300)
}

impl Default for Phases {
    fn default() -> Self {
        Phases {
            recovery: default_recovery(),
            quiesce: default_quiesce(),
            idle: default_idle(),
            timeout: default_timeout(),
        }
    }
}

/// The invariants a scenario checks, each with its thresholds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Invariants {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_double_booking: Option<Empty>,
    /// Every acknowledged booking is a live row when the run is over.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acknowledged_durable: Option<Empty>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency: Option<LatencyBounds>,
    /// No request with a forged token succeeds, fault or no fault.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_fails_closed: Option<Empty>,
    /// Share of ops served per phase: ok, or a definite business answer (409).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub success_ratio: Option<PhaseRatios>,
    /// After each heal, service is back (a run of consecutive served ops) within this long.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery: Option<RecoveryBound>,
    /// Every appointment reached the EHR as exactly one resource, in its current state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ehr_sync: Option<Empty>,
    /// No (appointment, reminder kind, channel) delivered more than once (stub call logs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_duplicate_reminders: Option<Empty>,
    /// Every appointment in the database got its confirmation on every channel, and (on a
    /// service clock) every live one its 24 h and 1 h reminders once due, by the end of the
    /// quiesce period; work still in flight then makes it unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_lost_reminders: Option<Empty>,
    /// Calls a stub refuses stay under a rate in every second of the run: retries back off
    /// instead of storming a failing dependency (000:S1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bounded_calls: Option<CallBound>,
    /// `/health/readiness` agrees with the replica's ability to serve: a probe that says
    /// ready while every op sent to the same replica within `within` of it failed (at least
    /// 3), or not ready while every such op was served, disagrees. A replica that degrades
    /// gracefully through a dependency's outage is rightly ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub readiness: Option<ReadinessBound>,
    /// Every live appointment and acknowledged booking starts a slot of its provider's
    /// weekly template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub within_schedule: Option<Empty>,
    /// A booking sent again with its `Idempotency-Key` gets the first answer's appointment,
    /// never a second appointment nor a conflict with itself (needs `workload.resubmit`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotent_creation: Option<Empty>,
    /// No user gets more requests through in a minute than `options.rate_limit`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<Empty>,
    /// Each acknowledged booking's confirmation reaches each channel within `within` of the
    /// acknowledgement (a waitlist promotion's, of the answer that named it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivered_within: Option<DeliveryBound>,
    /// Every request is answered before the client's timeout; a refusal (503, 429) is
    /// answered within `refusal` and says when to come back (`Retry-After`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answers_in_time: Option<AnswerBound>,
    /// No request is refused 401 for a session that was acknowledged at login (a cache loss
    /// logs nobody out).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sessions_survive: Option<Empty>,
    /// A cancelled slot goes to one patient of its waitlist: never two, never the slot
    /// booked twice by a promotion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waitlist_promotes_once: Option<Empty>,
    /// Concurrent reschedules of one appointment: the database keeps the move that was
    /// acknowledged last, never a move whose client was told it lost.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_lost_update: Option<Empty>,
    /// The correlation id of a booking reaches every stub call it caused (000:C13, 001:C-5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_propagates: Option<Empty>,
    /// Saturation gauges rise while a fault is in force and fall after its heal (000:C8).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics_reflect: Option<GaugeBound>,
    /// The history of each slot is linearizable against a sequential model of one slot
    /// (bookings, cancellations, reschedules, waitlist promotions, availability reads).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub linearizable: Option<Empty>,
}

/// How soon each reminder must reach each channel after its booking was acknowledged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeliveryBound {
    pub within: Dur,
    /// The channels judged: `sms`, `email` (both when empty).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub channels: Vec<String>,
}

/// How fast a refusal must be.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnswerBound {
    #[serde(default = "default_refusal")]
    pub refusal: Dur,
}

fn default_refusal() -> Dur {
    Dur::from_millis(100)
}

/// Gauges of the target's `/metrics` that must reflect saturation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GaugeBound {
    /// Gauge names, e.g. `mediconnect_http_in_flight`.
    pub gauges: Vec<String>,
}

/// How far (either side of a probe) the ops it is compared with were sent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReadinessBound {
    #[serde(default = "default_readiness_within")]
    pub within: Dur,
}

fn default_readiness_within() -> Dur {
    Dur::from_secs(2)
}

/// At most `max_failed_per_s` refused calls (status >= 400) to `stub` in any one second.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallBound {
    pub stub: Service,
    pub max_failed_per_s: u32,
}

/// Minimum share of served ops per phase, each in 0..=1.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PhaseRatios {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steady: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fault: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery: Option<f64>,
}

impl PhaseRatios {
    /// The phases that carry a bound, in a fixed order.
    pub fn by_phase(&self) -> Vec<(&'static str, f64)> {
        [
            ("steady", self.steady),
            ("fault", self.fault),
            ("recovery", self.recovery),
        ]
        .into_iter()
        .filter_map(|(n, r)| r.map(|r| (n, r)))
        .collect()
    }
}

/// Time to recover after a heal: the first of `run` consecutive served ops (by due time)
/// must be due within `within` of the heal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecoveryBound {
    pub within: Dur,
    #[serde(default = "default_recovery_run")]
    pub run: u32,
}

fn default_recovery_run() -> u32 {
    20
}

/// An invariant that takes no parameters: written `name = {}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Empty {}

/// Latency thresholds per phase. Latency is measured from each op's due time.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LatencyBounds {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steady: Option<Percentiles>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fault: Option<Percentiles>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery: Option<Percentiles>,
}

impl LatencyBounds {
    /// The phases that carry a bound, in a fixed order.
    pub fn by_phase(&self) -> Vec<(&'static str, &Percentiles)> {
        [
            ("steady", &self.steady),
            ("fault", &self.fault),
            ("recovery", &self.recovery),
        ]
        .into_iter()
        .filter_map(|(name, p)| p.as_ref().map(|p| (name, p)))
        .collect()
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Percentiles {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p50: Option<Dur>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p90: Option<Dur>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p99: Option<Dur>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<Dur>,
}

impl Percentiles {
    /// (name, quantile, bound) for every bound set, in a fixed order.
    pub fn bounds(&self) -> Vec<(&'static str, f64, Dur)> {
        [
            ("p50", 0.50, self.p50),
            ("p90", 0.90, self.p90),
            ("p99", 0.99, self.p99),
            ("max", 1.0, self.max),
        ]
        .into_iter()
        .filter_map(|(n, q, b)| b.map(|b| (n, q, b)))
        .collect()
    }
}

/// What each profile is expected to break: the invariants that must come out invalid.
/// A suite compares verdicts with these; a single run reports verdicts as they are.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    #[serde(default)]
    pub naive: Vec<String>,
    #[serde(default)]
    pub hardened: Vec<String>,
}

impl Expect {
    pub fn for_profile(&self, p: Profile) -> &[String] {
        match p {
            Profile::Naive => &self.naive,
            Profile::Hardened => &self.hardened,
        }
    }
}

/// A scenario file that cannot be run, with where and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ScenarioError {
    pub file: String,
    /// 1-based line, when the problem has a place in the file.
    pub line: Option<usize>,
    /// Dotted path of the field, e.g. `faults[1].at`; empty for the whole file.
    pub field: String,
    pub message: String,
}

impl fmt::Display for ScenarioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(line) = self.line {
            write!(f, ": line {line}")?;
        }
        if !self.field.is_empty() {
            write!(f, ": {}", self.field)?;
        }
        write!(f, ": {}", self.message)
    }
}

impl Invariants {
    /// The names of the invariants that are switched on.
    pub fn enabled(&self) -> Vec<&'static str> {
        let mut v = Vec::new();
        if self.no_double_booking.is_some() {
            v.push("no_double_booking");
        }
        if self.acknowledged_durable.is_some() {
            v.push("acknowledged_durable");
        }
        if self.latency.is_some() {
            v.push("latency");
        }
        if self.auth_fails_closed.is_some() {
            v.push("auth_fails_closed");
        }
        if self.success_ratio.is_some() {
            v.push("success_ratio");
        }
        if self.recovery.is_some() {
            v.push("recovery");
        }
        if self.ehr_sync.is_some() {
            v.push("ehr_sync");
        }
        if self.no_duplicate_reminders.is_some() {
            v.push("no_duplicate_reminders");
        }
        if self.no_lost_reminders.is_some() {
            v.push("no_lost_reminders");
        }
        if self.bounded_calls.is_some() {
            v.push("bounded_calls");
        }
        if self.readiness.is_some() {
            v.push("readiness");
        }
        if self.within_schedule.is_some() {
            v.push("within_schedule");
        }
        if self.idempotent_creation.is_some() {
            v.push("idempotent_creation");
        }
        if self.rate_limit.is_some() {
            v.push("rate_limit");
        }
        for (name, on) in [
            ("delivered_within", self.delivered_within.is_some()),
            ("answers_in_time", self.answers_in_time.is_some()),
            ("sessions_survive", self.sessions_survive.is_some()),
            (
                "waitlist_promotes_once",
                self.waitlist_promotes_once.is_some(),
            ),
            ("no_lost_update", self.no_lost_update.is_some()),
            ("trace_propagates", self.trace_propagates.is_some()),
            ("metrics_reflect", self.metrics_reflect.is_some()),
            ("linearizable", self.linearizable.is_some()),
        ] {
            if on {
                v.push(name);
            }
        }
        v
    }
}

impl Scenario {
    /// Parse and validate scenario text. `file` names the source in errors.
    pub fn parse(file: &str, text: &str) -> Result<Scenario, ScenarioError> {
        let scenario: Scenario = locate::from_toml(file, text)?;
        scenario
            .validate()
            .map_err(|(field, message)| locate::field_error(file, text, field, message))?;
        Ok(scenario)
    }

    /// Rules that the types alone cannot state. Returns the offending field and why.
    fn validate(&self) -> Result<(), (String, String)> {
        let bad = |field: &str, msg: &str| Err((field.to_string(), msg.to_string()));
        if self.name.trim().is_empty() {
            return bad("name", "must not be empty");
        }
        if !self
            .name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return bad(
                "name",
                "use only letters, digits, '-' and '_' (it names directories)",
            );
        }
        if self.target != "mediconnect" {
            return bad("target", "the only target is \"mediconnect\"");
        }
        if !(1..=8).contains(&self.replicas) {
            return bad("replicas", "expected 1 to 8");
        }
        if self
            .options
            .clock_scale
            .is_some_and(|c| !(c.is_finite() && (1.0..=1e6).contains(&c)))
        {
            return bad(
                "options.clock_scale",
                "expected 1 to 1000000 (service seconds per real second)",
            );
        }
        if self.options.reminder_poll.0 < std::time::Duration::from_millis(10) {
            return bad("options.reminder_poll", "expected at least 10ms");
        }
        if self.options.max_in_flight == 0 {
            return bad("options.max_in_flight", "expected at least 1");
        }
        if self.options.rate_limit == 0 {
            return bad("options.rate_limit", "expected at least 1 request a minute");
        }
        if let Some(b) = &self.invariants.bounded_calls {
            if !b.stub.is_stub() {
                return bad(
                    "invariants.bounded_calls.stub",
                    "expected a stub: twilio, sendgrid or ehr",
                );
            }
            if b.max_failed_per_s == 0 {
                return bad(
                    "invariants.bounded_calls.max_failed_per_s",
                    "expected at least 1",
                );
            }
        }
        if self.invariants.idempotent_creation.is_some() && !self.workload.keys_bookings() {
            return bad(
                "invariants.idempotent_creation",
                "needs bookings sent again with their key (workload.resubmit > 0, or workload.retry with idempotency_key = true)",
            );
        }
        let needs = [
            (
                "waitlist_promotes_once",
                "waitlist",
                self.workload.mix.waitlist,
                self.invariants.waitlist_promotes_once.is_some(),
            ),
            (
                "no_lost_update",
                "reschedule",
                self.workload.mix.reschedule,
                self.invariants.no_lost_update.is_some(),
            ),
        ];
        for (inv, op, weight, on) in needs {
            if on && weight <= 0.0 {
                return bad(
                    &format!("invariants.{inv}"),
                    &format!("needs {op} ops in the workload (workload.mix.{op} > 0)"),
                );
            }
        }
        if let Some(g) = &self.invariants.metrics_reflect {
            if self.faults.is_empty() {
                return bad(
                    "invariants.metrics_reflect",
                    "gauges are judged in faults and after heals: the scenario has no faults",
                );
            }
            if g.gauges.is_empty() {
                return bad(
                    "invariants.metrics_reflect.gauges",
                    "name at least one gauge",
                );
            }
            for (i, name) in g.gauges.iter().enumerate() {
                if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                    return bad(
                        &format!("invariants.metrics_reflect.gauges[{i}]"),
                        "expected a Prometheus metric name (letters, digits, _)",
                    );
                }
            }
        }
        if let Some(d) = &self.invariants.delivered_within
            && d.within.0.is_zero()
        {
            return bad(
                "invariants.delivered_within.within",
                "must be longer than 0s",
            );
        }
        if self.invariants.readiness.is_some() && self.workload.mix.readiness <= 0.0 {
            return bad(
                "invariants.readiness",
                "needs readiness probes in the workload (workload.mix.readiness > 0)",
            );
        }
        for (i, f) in self.findings.iter().enumerate() {
            let ok = f.split_once(':').is_some_and(|(seed, id)| {
                seed.len() == 3 && seed.bytes().all(|b| b.is_ascii_digit()) && !id.is_empty()
            });
            if !ok {
                return bad(
                    &format!("findings[{i}]"),
                    "expected a review finding like \"000:C1\"",
                );
            }
        }
        let w = &self.workload;
        if w.duration.0.is_zero() {
            return bad("workload.duration", "must be longer than 0s");
        }
        if !(w.rate.is_finite() && w.rate > 0.0 && w.rate <= 20_000.0) {
            return bad("workload.rate", "expected ops per second in (0, 20000]");
        }
        if w.rate_end
            .is_some_and(|r| !(r.is_finite() && r > 0.0 && r <= 20_000.0))
        {
            return bad("workload.rate_end", "expected ops per second in (0, 20000]");
        }
        if !(1..=10_000).contains(&w.clients) {
            return bad("workload.clients", "expected 1 to 10000");
        }
        if !(1..=1_000).contains(&w.providers) {
            return bad("workload.providers", "expected 1 to 1000");
        }
        if w.hot_slots == Some(0) {
            return bad("workload.hot_slots", "expected at least 1");
        }
        if !(1..=64).contains(&w.burst) {
            return bad("workload.burst", "expected 1 to 64");
        }
        if !(w.resubmit.is_finite() && (0.0..=1.0).contains(&w.resubmit)) {
            return bad("workload.resubmit", "expected a share in [0, 1]");
        }
        if w.op_timeout.0.is_zero() {
            return bad("workload.op_timeout", "must be longer than 0s");
        }
        for (name, weight) in w.mix.weights() {
            if !(weight.is_finite() && weight >= 0.0) {
                return bad(&format!("workload.mix.{name}"), "expected a weight >= 0");
            }
        }
        if let Some(r) = &w.retry {
            if !(2..=6).contains(&r.attempts) {
                return bad(
                    "workload.retry.attempts",
                    "expected 2 to 6 tries in all (the first included)",
                );
            }
            if r.backoff.0 > std::time::Duration::from_secs(60) {
                return bad("workload.retry.backoff", "expected at most 60s");
            }
        }
        if w.mix.total() <= 0.0 {
            return bad(
                "workload.mix",
                "at least one operation needs a weight above 0",
            );
        }
        let peak = w.rate.max(w.rate_end.unwrap_or(0.0));
        let planned = peak * w.duration.0.as_secs_f64();
        if planned > MAX_PLANNED_OPS {
            return bad(
                "workload.duration",
                &format!(
                    "plans about {planned:.0} ops at up to {peak} per second: at most {MAX_PLANNED_OPS} (shorten it, or lower the rate)"
                ),
            );
        }
        // The run must fit its global timeout: the workload, the quiesce phase, and a minute
        // for starting the environment and collecting the evidence.
        let needs = w.duration.0 + self.phases.quiesce.0 + std::time::Duration::from_secs(60);
        if self.phases.timeout.0 < needs {
            return bad(
                "phases.timeout",
                &format!(
                    "is {}, but the run needs at least {} (workload {}, quiesce {}, a minute to start and collect)",
                    self.phases.timeout,
                    Dur(needs),
                    w.duration,
                    self.phases.quiesce
                ),
            );
        }
        fault::validate_schedule(&self.faults, w.duration, self.replicas)?;
        let enabled = self.invariants.enabled();
        if enabled.is_empty() {
            return bad("invariants", "name at least one invariant to check");
        }
        if let Some(l) = &self.invariants.latency {
            if l.by_phase().is_empty() {
                return bad(
                    "invariants.latency",
                    "set a bound for at least one of steady, fault, recovery",
                );
            }
            for (phase, p) in l.by_phase() {
                if p.bounds().is_empty() {
                    return bad(
                        &format!("invariants.latency.{phase}"),
                        "set at least one of p50, p90, p99, max",
                    );
                }
            }
        }
        if let Some(r) = &self.invariants.success_ratio {
            if r.by_phase().is_empty() {
                return bad(
                    "invariants.success_ratio",
                    "set a ratio for at least one of steady, fault, recovery",
                );
            }
            for (phase, ratio) in r.by_phase() {
                if !(0.0..=1.0).contains(&ratio) {
                    return bad(
                        &format!("invariants.success_ratio.{phase}"),
                        "expected a fraction in 0..1",
                    );
                }
            }
        }
        if let Some(r) = &self.invariants.recovery {
            if self.faults.is_empty() {
                return bad(
                    "invariants.recovery",
                    "recovery is judged after heals: the scenario has no faults",
                );
            }
            if !(1..=10_000).contains(&r.run) {
                return bad(
                    "invariants.recovery.run",
                    "expected 1 to 10000 consecutive served ops",
                );
            }
        }
        for (profile, names) in [
            ("naive", &self.expect.naive),
            ("hardened", &self.expect.hardened),
        ] {
            for (i, n) in names.iter().enumerate() {
                if !enabled.contains(&n.as_str()) {
                    let known = BTreeMap::from_iter(enabled.iter().map(|n| (*n, ())));
                    let known: Vec<_> = known.keys().copied().collect();
                    return bad(
                        &format!("expect.{profile}[{i}]"),
                        &format!(
                            "{n:?} is not among this scenario's invariants ({})",
                            known.join(", ")
                        ),
                    );
                }
            }
        }
        Ok(())
    }

    /// The fault schedule sorted by injection time (stable for equal times).
    pub fn schedule(&self) -> Vec<(usize, &Fault)> {
        let mut v: Vec<_> = self.faults.iter().enumerate().collect();
        v.sort_by_key(|(i, f)| (f.at, *i));
        v
    }

    /// Why this scenario cannot run on environment `kind`, if it cannot: a partition needs
    /// containers on a network of their own.
    pub fn unsupported_on(&self, kind: EnvKind) -> Option<String> {
        if kind == EnvKind::Docker {
            return None;
        }
        self.faults.iter().enumerate().find_map(|(i, f)| {
            f.partition.map(|node| {
                format!(
                    "{}: faults[{i}].partition: partitioning {node} needs the docker environment (run with --env docker, or set environment = \"docker\")",
                    self.name
                )
            })
        })
    }

    /// Services and replicas that the scenario's faults act on, each once, in order.
    pub fn faulted(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .faults
            .iter()
            .map(|f| match f.kind() {
                fault::FaultKind::Process { node, .. }
                | fault::FaultKind::Partition { node, .. } => node.to_string(),
                fault::FaultKind::Toxic { service, .. }
                | fault::FaultKind::Down { service, .. }
                | fault::FaultKind::Knobs { service, .. } => service.to_string(),
                fault::FaultKind::PostgresLock { .. } => Service::Postgres.to_string(),
            })
            .collect();
        v.sort();
        v.dedup();
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
name = "redis-kill"
findings = ["000:C1"]

[workload]
duration = "10s"
rate = 50
clients = 8

[[faults]]
at = "3s"
kill = "redis"
restart_after = "2s"

[[faults]]
at = "5s"
service = "twilio"
toxic = { type = "latency", latency = "100ms" }
for = "2s"

[invariants]
no_double_booking = {}
latency = { steady = { p99 = "200ms" } }
"#;

    fn parse(text: &str) -> Result<Scenario, ScenarioError> {
        Scenario::parse("x.toml", text)
    }

    #[test]
    fn a_good_scenario_parses_with_defaults() {
        let s = parse(GOOD).unwrap();
        assert_eq!(s.profile, Profile::Hardened);
        assert_eq!(s.workload.burst, 1);
        assert_eq!(s.faults[0].heal_at(), Dur::from_secs(5));
        assert_eq!(s.faults[1].label(), "latency twilio");
        assert_eq!(s.faulted(), vec!["redis", "twilio"]);
    }

    #[test]
    fn a_wrong_type_names_line_and_field() {
        let text = GOOD.replace("at = \"3s\"", "at = 3");
        let e = parse(&text).unwrap_err();
        assert_eq!(e.field, "faults[0].at");
        assert_eq!(e.line, Some(11));
        assert!(e.message.contains("duration"), "{e}");
        assert!(
            e.to_string().starts_with("x.toml: line 11: faults[0].at: "),
            "{e}"
        );
    }

    #[test]
    fn an_unknown_field_is_rejected_with_its_line() {
        let text = GOOD.replace("clients = 8", "clients = 8\nclinets = 9");
        let e = parse(&text).unwrap_err();
        assert_eq!(e.line, Some(9), "{e}");
        assert!(e.message.contains("clinets"), "{e}");
    }

    #[test]
    fn a_syntax_error_has_a_line() {
        let e = parse("name = \"x\"\n[workload\n").unwrap_err();
        assert_eq!(e.line, Some(2), "{e}");
    }

    #[test]
    fn semantic_errors_point_at_the_field() {
        let text = GOOD.replace("restart_after = \"2s\"\n", "");
        let e = parse(&text).unwrap_err();
        assert_eq!(e.field, "faults[0].restart_after");
        assert_eq!(
            e.line,
            Some(10),
            "the fault's table header when the field is absent: {e}"
        );

        let text = GOOD.replace("at = \"5s\"", "at = \"50s\"");
        let e = parse(&text).unwrap_err();
        assert_eq!(e.field, "faults[1].at");
        assert_eq!(e.line, Some(16), "{e}");

        let text = GOOD.replace("kill = \"redis\"", "kill = \"mediconnect-2\"");
        let e = parse(&text).unwrap_err();
        assert_eq!(e.field, "faults[0].kill");
        assert!(e.message.contains("out of range"), "{e}");
        let text = GOOD.replace("kill = \"redis\"", "kill = \"memcached\"");
        let e = parse(&text).unwrap_err();
        assert_eq!(
            (e.field.as_str(), e.line),
            ("faults[0].kill", Some(12)),
            "{e}"
        );

        let bounded = |b: &str| format!("{GOOD}bounded_calls = {b}\n");
        let s = parse(&bounded("{ stub = \"sendgrid\", max_failed_per_s = 40 }")).unwrap();
        assert_eq!(s.invariants.enabled().last(), Some(&"bounded_calls"));
        let e = parse(&bounded("{ stub = \"redis\", max_failed_per_s = 40 }")).unwrap_err();
        assert_eq!(e.field, "invariants.bounded_calls.stub", "{e}");
        let e = parse(&bounded("{ stub = \"ehr\", max_failed_per_s = 0 }")).unwrap_err();
        assert_eq!(e.field, "invariants.bounded_calls.max_failed_per_s", "{e}");
    }

    #[test]
    fn probe_and_resubmit_invariants_need_their_workload() {
        let with = |workload: &str, invariant: &str| {
            GOOD.replace("clients = 8\n", &format!("clients = 8\n{workload}\n")) + invariant + "\n"
        };
        let e = parse(&with("", "readiness = {}")).unwrap_err();
        assert_eq!(e.field, "invariants.readiness", "{e}");
        let s = parse(&with(
            "mix = { book = 1, readiness = 0.1 }",
            "readiness = { within = \"1s\" }",
        ))
        .unwrap();
        assert_eq!(s.invariants.readiness.unwrap().within, Dur::from_secs(1));
        let e = parse(&with("", "idempotent_creation = {}")).unwrap_err();
        assert_eq!(e.field, "invariants.idempotent_creation", "{e}");
        assert!(parse(&with("resubmit = 0.3", "idempotent_creation = {}")).is_ok());
        let e = parse(&with("resubmit = 1.5", "")).unwrap_err();
        assert_eq!(e.field, "workload.resubmit", "{e}");
        let e = parse(&with("mix = { book = 1, cancel = -1 }", "")).unwrap_err();
        assert_eq!(e.field, "workload.mix.cancel", "{e}");
    }

    #[test]
    fn knobs_act_on_stubs_only_and_are_checked() {
        let knobs = GOOD.replace(
            "service = \"twilio\"\ntoxic = { type = \"latency\", latency = \"100ms\" }",
            "service = \"sendgrid\"\nknobs = { error_rate = 0.5 }",
        );
        let s = parse(&knobs).unwrap();
        assert_eq!(s.faults[1].label(), "knobs sendgrid");
        let e = parse(&knobs.replace("\"sendgrid\"", "\"redis\"")).unwrap_err();
        assert_eq!(e.field, "faults[1].service", "{e}");
        let e = parse(&knobs.replace("0.5", "1.5")).unwrap_err();
        assert_eq!(e.field, "faults[1].knobs.error_rate", "{e}");
        let both = GOOD.replace("for = \"2s\"", "knobs = { hang = true }\nfor = \"2s\"");
        let e = parse(&both).unwrap_err();
        assert_eq!(e.field, "faults[1].knobs", "{e}");
        assert!(e.message.contains("both toxic and knobs"), "{e}");
    }

    /// The scenario's second fault replaced by `fault` (the lines after `at`).
    fn with_fault(fault: &str) -> String {
        GOOD.replace(
            "service = \"twilio\"\ntoxic = { type = \"latency\", latency = \"100ms\" }\nfor = \"2s\"",
            fault,
        )
    }

    #[test]
    fn every_toxic_and_fault_kind_parses() {
        for (toxic, label) in [
            (
                "{ type = \"latency\", latency = \"50ms\", jitter = \"5ms\", toxicity = 0.5 }",
                "latency",
            ),
            (
                "{ type = \"bandwidth\", rate = 10, stream = \"upstream\" }",
                "bandwidth",
            ),
            ("{ type = \"slow_close\", delay = \"1s\" }", "slow_close"),
            ("{ type = \"timeout\", timeout = \"0s\" }", "timeout"),
            (
                "{ type = \"reset_peer\", timeout = \"10ms\" }",
                "reset_peer",
            ),
            ("{ type = \"limit_data\", bytes = 1000 }", "limit_data"),
            (
                "{ type = \"slicer\", average_size = 64, size_variation = 32, delay = \"10us\" }",
                "slicer",
            ),
        ] {
            let s = parse(&with_fault(&format!(
                "service = \"postgres\"\ntoxic = {toxic}\nfor = \"2s\""
            )))
            .unwrap_or_else(|e| panic!("{toxic}: {e}"));
            assert_eq!(s.faults[1].label(), format!("{label} postgres"));
        }
        for (fault, label) in [
            (
                "service = \"rabbitmq\"\ndown = true\nfor = \"1s\"",
                "down rabbitmq",
            ),
            ("pause = \"postgres\"\nfor = \"1s\"", "pause postgres"),
            ("stop = \"twilio\"\nrestart_after = \"1s\"", "stop twilio"),
            (
                "kill = \"mediconnect-1\"\nrestart_after = \"1s\"",
                "kill mediconnect-1",
            ),
            (
                "postgres_lock = { table = \"appointments\", mode = \"share\" }\nfor = \"1s\"",
                "lock appointments",
            ),
            (
                "service = \"twilio\"\nknobs = { late_answer_ms = 3000 }\nfor = \"1s\"",
                "knobs twilio",
            ),
            (
                "service = \"ehr\"\nknobs = { error_status = 429, retry_after_s = 2, fail_first = 3 }\nfor = \"1s\"",
                "knobs ehr",
            ),
        ] {
            let s = parse(&with_fault(fault)).unwrap_or_else(|e| panic!("{fault}: {e}"));
            assert_eq!(s.faults[1].label(), label);
            assert_eq!(s.faults[1].heal_at(), Dur::from_secs(6));
        }
    }

    #[test]
    fn bad_faults_name_their_field() {
        for (fault, field, says) in [
            (
                "service = \"postgres\"\ntoxic = { type = \"lag\", latency = \"1ms\" }\nfor = \"1s\"",
                "faults[1].toxic.type",
                "lag",
            ),
            (
                "service = \"postgres\"\ntoxic = { type = \"latency\", delay = \"1ms\" }\nfor = \"1s\"",
                "faults[1].toxic",
                "delay",
            ),
            (
                "service = \"postgres\"\ntoxic = { type = \"bandwidth\", rate = 0 }\nfor = \"1s\"",
                "faults[1].toxic.rate",
                "KB/s",
            ),
            (
                "service = \"postgres\"\ntoxic = { type = \"latency\", latency = \"5ms\", toxicity = 2.0 }\nfor = \"1s\"",
                "faults[1].toxic.toxicity",
                "[0, 1]",
            ),
            (
                "service = \"postgres\"\ntoxic = { type = \"slicer\", average_size = 8, size_variation = 8 }\nfor = \"1s\"",
                "faults[1].toxic.size_variation",
                "below",
            ),
            (
                "pause = \"redis\"\nrestart_after = \"1s\"",
                "faults[1].restart_after",
                "for",
            ),
            (
                "stop = \"redis\"\nfor = \"1s\"",
                "faults[1].for",
                "restart_after",
            ),
            ("pause = \"redis\"", "faults[1].for", "healed"),
            (
                "service = \"redis\"\ndown = false\nfor = \"1s\"",
                "faults[1].down",
                "no fault",
            ),
            (
                "postgres_lock = { table = \"apointments\" }\nfor = \"1s\"",
                "faults[1].postgres_lock.table",
                "appointments",
            ),
            (
                "postgres_lock = { table = \"appointments\", mode = \"total\" }\nfor = \"1s\"",
                "faults[1].postgres_lock.mode",
                "total",
            ),
            (
                "service = \"twilio\"\nknobs = {}\nfor = \"1s\"",
                "faults[1].knobs",
                "at least one knob",
            ),
            (
                "service = \"twilio\"\nknobs = { retry_after_s = 2, error_status = 500 }\nfor = \"1s\"",
                "faults[1].knobs.retry_after_s",
                "429 or 503",
            ),
            (
                "service = \"twilio\"\nknobs = { hang = true, slow = 1 }\nfor = \"1s\"",
                "faults[1].knobs.slow",
                "slow",
            ),
            (
                "kill = \"redis\"\nservice = \"redis\"\nrestart_after = \"1s\"",
                "faults[1].service",
                "names its process",
            ),
        ] {
            let e = parse(&with_fault(fault)).unwrap_err();
            assert_eq!(e.field, field, "{fault}: {e}");
            assert!(e.message.contains(says), "{fault}: {e}");
            assert!(e.line.is_some_and(|l| l >= 15), "{fault}: {e}");
        }
    }

    #[test]
    fn a_run_that_cannot_finish_is_refused_before_it_starts() {
        // faults[1] at 5s for 6s heals after the 10s workload.
        let e = parse(&with_fault("pause = \"redis\"\nfor = \"6s\"")).unwrap_err();
        assert_eq!(e.field, "faults[1]", "{e}");
        assert!(e.message.contains("after the end of the workload"), "{e}");
        let e = parse(&with_fault("pause = \"redis\"\nfor = \"0s\"")).unwrap_err();
        assert!(e.message.contains("0s"), "{e}");
        let e = parse(&format!("{GOOD}\n[phases]\ntimeout = \"30s\"\n")).unwrap_err();
        assert_eq!(e.field, "phases.timeout", "{e}");
        assert!(e.message.contains("needs at least 85s"), "{e}");
        let e = parse(
            &GOOD
                .replace("rate = 50", "rate = 20000")
                .replace("duration = \"10s\"", "duration = \"200s\""),
        )
        .unwrap_err();
        assert_eq!(e.field, "workload.duration", "{e}");
        assert!(e.message.contains("at most 2000000"), "{e}");
    }

    #[test]
    fn a_fault_healing_past_the_end_of_time_is_an_error_not_a_panic() {
        // Found by the CLI's fuzz tests: `at` plus `restart_after` overflowed a Duration.
        // Durations are bounded by a year at parse time now, so no sum of them can overflow.
        let e = parse(&GOOD.replace("\"2s\"", "\"18446744073709551615s\"")).unwrap_err();
        assert!(e.message.contains("longer than 8760h"), "{e}");
        // And a timeout as long as may be written, plus a workload and a quiesce as long,
        // is judged, not overflowed (found by the CLI's fuzz tests in CI).
        let long = GOOD.replace(
            "[invariants]",
            "[phases]\ntimeout = \"8760h\"\nquiesce = \"8760h\"\n\n[invariants]",
        );
        let e = parse(&long).unwrap_err();
        assert!(e.field.starts_with("phases."), "{e}");
    }

    #[test]
    fn faults_on_one_thing_at_once_conflict_and_toxics_stack() {
        // faults[0] kills redis from 3s to 5s.
        let e = parse(
            &with_fault("pause = \"redis\"\nfor = \"1s\"").replace("at = \"5s\"", "at = \"4s\""),
        )
        .unwrap_err();
        assert_eq!(e.field, "faults[1]", "{e}");
        assert!(e.message.contains("conflicts with faults[0]"), "{e}");
        assert!(
            e.message.contains("the process of redis from 4s to 5s"),
            "{e}"
        );
        // Back to back is no overlap.
        assert!(parse(&with_fault("pause = \"redis\"\nfor = \"1s\"")).is_ok());
        let two_locks = format!(
            "{}\n[[faults]]\nat = \"5500ms\"\npostgres_lock = {{ table = \"outbox\" }}\nfor = \"1s\"\n",
            with_fault("postgres_lock = { table = \"outbox\" }\nfor = \"1s\"")
        );
        let e = parse(&two_locks).unwrap_err();
        assert_eq!(e.field, "faults[2]", "{e}");
        let knobs_while_killed = GOOD
            .replace("kill = \"redis\"", "kill = \"twilio\"")
            .replace("at = \"5s\"", "at = \"4s\"")
            .replace(
                "toxic = { type = \"latency\", latency = \"100ms\" }",
                "knobs = { hang = true }",
            );
        let e = parse(&knobs_while_killed).unwrap_err();
        assert!(
            e.message.contains("stops the process the other needs"),
            "{e}"
        );
        let stacked = format!(
            "{}\n[[faults]]\nat = \"5s\"\nservice = \"twilio\"\ntoxic = {{ type = \"bandwidth\", rate = 1 }}\nfor = \"1s\"\n",
            GOOD
        );
        assert!(parse(&stacked).is_ok());
    }

    #[test]
    fn a_missing_required_section_is_named() {
        let e = parse("name = \"x\"\n[invariants]\nno_double_booking = {}\n").unwrap_err();
        assert!(e.message.contains("workload"), "{e}");
    }

    #[test]
    fn expectations_must_name_enabled_invariants() {
        let text = format!("{GOOD}\n[expect]\nnaive = [\"no_lost_reminders\"]\n");
        let e = parse(&text).unwrap_err();
        assert_eq!(e.field, "expect.naive[0]");
    }
}
