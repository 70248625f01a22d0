//! Scenario files: their shape, their validation, and errors that name the file, line and field.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::duration::Dur;
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
}

impl Mix {
    pub fn total(&self) -> f64 {
        self.book + self.availability + self.forged + self.readiness + self.cancel
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
    #[serde(default = "default_quiesce")]
    pub quiesce: Dur,
    /// Global deadline of the run, environment start-up included.
    #[serde(default = "default_timeout")]
    pub timeout: Dur,
}

fn default_recovery() -> Dur {
    Dur::from_secs(5)
}
fn default_quiesce() -> Dur {
    Dur::from_secs(3)
}
fn default_timeout() -> Dur {
    Dur::from_secs(300)
}

impl Default for Phases {
    fn default() -> Self {
        Phases {
            recovery: default_recovery(),
            quiesce: default_quiesce(),
            timeout: default_timeout(),
        }
    }
}

/// A service of the environment: a server process or a stub, each behind its own proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Service {
    Postgres,
    Redis,
    Rabbitmq,
    Twilio,
    Sendgrid,
    Ehr,
}

impl Service {
    pub const ALL: [Service; 6] = [
        Service::Postgres,
        Service::Redis,
        Service::Rabbitmq,
        Service::Twilio,
        Service::Sendgrid,
        Service::Ehr,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Service::Postgres => "postgres",
            Service::Redis => "redis",
            Service::Rabbitmq => "rabbitmq",
            Service::Twilio => "twilio",
            Service::Sendgrid => "sendgrid",
            Service::Ehr => "ehr",
        }
    }

    /// Whether the harness owns a process it can kill for this service.
    pub fn is_killable(self) -> bool {
        matches!(self, Service::Postgres | Service::Redis | Service::Rabbitmq)
    }
}

impl fmt::Display for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which direction of a proxied connection a toxic acts on, as in Toxiproxy.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    Upstream,
    #[default]
    Downstream,
}

impl Stream {
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Upstream => "upstream",
            Stream::Downstream => "downstream",
        }
    }
}

/// A toxic as a scenario names it. The proxy layer translates it to Toxiproxy attributes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Toxic {
    Latency {
        latency: Dur,
        #[serde(default)]
        jitter: Dur,
        #[serde(default)]
        stream: Stream,
    },
}

/// One entry of the fault schedule as written: `at` plus exactly one kind of fault.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fault {
    pub at: Dur,
    /// `kill = "redis"`: SIGKILL the service's process.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kill: Option<Service>,
    /// With `kill`: restart the service (same data directory) this long after the kill.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart_after: Option<Dur>,
    /// With `toxic`: the service whose proxy gets it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<Service>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub toxic: Option<Toxic>,
    /// With `service` (a stub): fault knobs set on the stub, reset when healed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub knobs: Option<StubKnobs>,
    /// With `toxic` or `knobs`: how long it stays before it is removed.
    #[serde(default, rename = "for", skip_serializing_if = "Option::is_none")]
    pub for_: Option<Dur>,
}

/// Fault knobs of a stub, as its control API takes them; unset knobs stay at "behave".
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StubKnobs {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hang: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fail_first: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_rate: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_status: Option<u16>,
}

/// A validated fault: what to inject, and when its heal comes.
#[derive(Debug, Clone, PartialEq)]
pub enum FaultKind {
    Kill {
        service: Service,
        restart_after: Dur,
    },
    Toxic {
        service: Service,
        toxic: Toxic,
        duration: Dur,
    },
    Knobs {
        service: Service,
        knobs: StubKnobs,
        duration: Dur,
    },
}

impl Fault {
    /// The fault as the runner applies it. Only valid on a validated scenario.
    pub fn kind(&self) -> FaultKind {
        match (self.kill, &self.toxic, &self.knobs, self.service) {
            (Some(service), None, None, None) => FaultKind::Kill {
                service,
                restart_after: self
                    .restart_after
                    .expect("validated: kill has restart_after"),
            },
            (None, Some(toxic), None, Some(service)) => FaultKind::Toxic {
                service,
                toxic: toxic.clone(),
                duration: self.for_.expect("validated: toxic has for"),
            },
            (None, None, Some(knobs), Some(service)) => FaultKind::Knobs {
                service,
                knobs: knobs.clone(),
                duration: self.for_.expect("validated: knobs have for"),
            },
            _ => panic!("Fault::kind called on an unvalidated fault: {self:?}"),
        }
    }

    /// When the heal is due, relative to the start of the workload.
    pub fn heal_at(&self) -> Dur {
        let d = match self.kind() {
            FaultKind::Kill { restart_after, .. } => restart_after,
            FaultKind::Toxic { duration, .. } | FaultKind::Knobs { duration, .. } => duration,
        };
        Dur(self.at.0 + d.0)
    }

    /// A short human name, e.g. `kill redis` or `latency twilio`.
    pub fn label(&self) -> String {
        match self.kind() {
            FaultKind::Kill { service, .. } => format!("kill {service}"),
            FaultKind::Toxic {
                service,
                toxic: Toxic::Latency { .. },
                ..
            } => format!("latency {service}"),
            FaultKind::Knobs { service, .. } => format!("knobs {service}"),
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
    /// Every appointment in the database got its confirmation on every channel, by the end
    /// of the quiesce period.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_lost_reminders: Option<Empty>,
    /// Calls a stub refuses stay under a rate in every second of the run: retries back off
    /// instead of storming a failing dependency (000:S1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bounded_calls: Option<CallBound>,
    /// `/health/readiness` says not ready while a dependency is killed (from `within` after
    /// the kill to its restart) and ready in the steady phase.
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
}

/// How long readiness may take to notice a killed dependency.
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
            if b.stub.is_killable() {
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
        if self.invariants.idempotent_creation.is_some() && self.workload.resubmit <= 0.0 {
            return bad(
                "invariants.idempotent_creation",
                "needs resubmitted bookings in the workload (workload.resubmit > 0)",
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
        for (name, weight) in [
            ("book", w.mix.book),
            ("availability", w.mix.availability),
            ("forged", w.mix.forged),
            ("readiness", w.mix.readiness),
            ("cancel", w.mix.cancel),
        ] {
            if !(weight.is_finite() && weight >= 0.0) {
                return bad(&format!("workload.mix.{name}"), "expected a weight >= 0");
            }
        }
        if w.mix.total() <= 0.0 {
            return bad(
                "workload.mix",
                "at least one operation needs a weight above 0",
            );
        }
        for (i, f) in self.faults.iter().enumerate() {
            let at = |field: &str| format!("faults[{i}].{field}");
            if f.at > w.duration {
                return bad(
                    &at("at"),
                    &format!("is after the end of the workload ({})", w.duration),
                );
            }
            let kinds = [f.kill.is_some(), f.toxic.is_some(), f.knobs.is_some()];
            match kinds.iter().filter(|k| **k).count() {
                0 => {
                    return bad(
                        &format!("faults[{i}]"),
                        "expected kill = \"<service>\", toxic = { ... } or knobs = { ... }",
                    );
                }
                1 => {}
                _ => {
                    return bad(
                        &format!("faults[{i}]"),
                        "a fault is one of kill, toxic or knobs",
                    );
                }
            }
            if let Some(service) = f.kill {
                if !service.is_killable() {
                    return bad(
                        &at("kill"),
                        "only postgres, redis and rabbitmq have a process to kill",
                    );
                }
                if f.restart_after.is_none() {
                    return bad(
                        &at("restart_after"),
                        "kill needs restart_after (every fault is healed)",
                    );
                }
                if f.service.is_some() || f.for_.is_some() {
                    return bad(&at("kill"), "kill takes restart_after, not service or for");
                }
                continue;
            }
            let Some(service) = f.service else {
                return bad(
                    &at("service"),
                    "a toxic or knobs need the service they act on",
                );
            };
            if f.for_.is_none() {
                return bad(
                    &at("for"),
                    "a toxic or knobs need for = \"<duration>\" (every fault is healed)",
                );
            }
            if f.restart_after.is_some() {
                return bad(&at("restart_after"), "restart_after goes with kill");
            }
            if let Some(Toxic::Latency {
                latency, jitter, ..
            }) = &f.toxic
                && jitter > latency
            {
                return bad(&at("toxic.jitter"), "jitter must not exceed latency");
            }
            if let Some(k) = &f.knobs {
                if service.is_killable() {
                    return bad(
                        &at("service"),
                        "knobs act on a stub: twilio, sendgrid or ehr",
                    );
                }
                if k.error_rate.is_some_and(|r| !(0.0..=1.0).contains(&r)) {
                    return bad(&at("knobs.error_rate"), "expected a fraction in 0..1");
                }
                if k.error_status.is_some_and(|s| !(400..=599).contains(&s)) {
                    return bad(&at("knobs.error_status"), "expected a 4xx or 5xx status");
                }
            }
        }
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

    /// Services that the scenario faults, so the environment can check it provides them.
    pub fn faulted_services(&self) -> Vec<Service> {
        let mut v: Vec<Service> = self
            .faults
            .iter()
            .filter_map(|f| f.kill.or(f.service))
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
        assert_eq!(s.faulted_services(), vec![Service::Redis, Service::Twilio]);
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

        let text = GOOD.replace("kill = \"redis\"", "kill = \"twilio\"");
        let e = parse(&text).unwrap_err();
        assert_eq!(e.field, "faults[0].kill");

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
        assert!(
            parse(&both)
                .unwrap_err()
                .message
                .contains("one of kill, toxic or knobs")
        );
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
