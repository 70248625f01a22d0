//! The fault palette of scenario files: what can be broken (services, replicas, links,
//! stubs, tables), how, for how long, and the rules that make a schedule runnable.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::duration::Dur;

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

    /// Whether this is one of the HTTP stubs (which have fault knobs).
    pub fn is_stub(self) -> bool {
        matches!(self, Service::Twilio | Service::Sendgrid | Service::Ehr)
    }
}

impl fmt::Display for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Service {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Service::ALL
            .into_iter()
            .find(|x| x.as_str() == s)
            .ok_or_else(|| {
                format!("unknown service {s:?}: expected postgres, redis, rabbitmq, twilio, sendgrid or ehr")
            })
    }
}

/// A process the harness can signal: a service, or one replica of the target
/// (`mediconnect-1` is the first).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Node {
    Service(Service),
    /// 1-based replica number.
    Replica(u32),
}

impl From<Service> for Node {
    fn from(s: Service) -> Node {
        Node::Service(s)
    }
}

impl Node {
    /// The replica's name as a scenario writes it.
    pub fn replica_name(n: u32) -> String {
        format!("mediconnect-{n}")
    }
}

impl fmt::Display for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Node::Service(s) => f.write_str(s.as_str()),
            Node::Replica(n) => write!(f, "mediconnect-{n}"),
        }
    }
}

impl std::str::FromStr for Node {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if let Some(n) = s.strip_prefix("mediconnect-") {
            return match n.parse::<u32>() {
                Ok(n) if n >= 1 => Ok(Node::Replica(n)),
                _ => Err(format!(
                    "unknown replica {s:?}: replicas are mediconnect-1, mediconnect-2, ..."
                )),
            };
        }
        s.parse::<Service>().map(Node::Service).map_err(|_| {
            format!(
                "unknown service {s:?}: expected postgres, redis, rabbitmq, twilio, sendgrid, ehr or a replica (mediconnect-1, ...)"
            )
        })
    }
}

impl Serialize for Node {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
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

fn one() -> f64 {
    1.0
}

/// A toxic as a scenario names it: every toxic of Toxiproxy with its attributes, each with
/// the `stream` it acts on and its `toxicity` (the share of connections it applies to).
/// Times are durations (`"100ms"`); the proxy layer translates them to Toxiproxy's units.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Toxic {
    /// Each chunk waits `latency` ± `jitter` from its arrival.
    Latency {
        latency: Dur,
        #[serde(default)]
        jitter: Dur,
        #[serde(default)]
        stream: Stream,
        #[serde(default = "one")]
        toxicity: f64,
    },
    /// Throughput limited to `rate` KB/s.
    Bandwidth {
        rate: u64,
        #[serde(default)]
        stream: Stream,
        #[serde(default = "one")]
        toxicity: f64,
    },
    /// The close is passed on `delay` after the source closed.
    SlowClose {
        delay: Dur,
        #[serde(default)]
        stream: Stream,
        #[serde(default = "one")]
        toxicity: f64,
    },
    /// Nothing passes; the connection closes after `timeout` (0s: never).
    Timeout {
        timeout: Dur,
        #[serde(default)]
        stream: Stream,
        #[serde(default = "one")]
        toxicity: f64,
    },
    /// Once data arrives, both sides are reset (TCP RST) after `timeout`.
    ResetPeer {
        #[serde(default)]
        timeout: Dur,
        #[serde(default)]
        stream: Stream,
        #[serde(default = "one")]
        toxicity: f64,
    },
    /// The connection closes once `bytes` have passed.
    LimitData {
        bytes: u64,
        #[serde(default)]
        stream: Stream,
        #[serde(default = "one")]
        toxicity: f64,
    },
    /// Data is cut into pieces of `average_size` ± `size_variation` bytes, `delay` apart.
    Slicer {
        average_size: u64,
        #[serde(default)]
        size_variation: u64,
        #[serde(default)]
        delay: Dur,
        #[serde(default)]
        stream: Stream,
        #[serde(default = "one")]
        toxicity: f64,
    },
}

impl Toxic {
    /// Toxiproxy's name of the type.
    pub fn type_name(&self) -> &'static str {
        match self {
            Toxic::Latency { .. } => "latency",
            Toxic::Bandwidth { .. } => "bandwidth",
            Toxic::SlowClose { .. } => "slow_close",
            Toxic::Timeout { .. } => "timeout",
            Toxic::ResetPeer { .. } => "reset_peer",
            Toxic::LimitData { .. } => "limit_data",
            Toxic::Slicer { .. } => "slicer",
        }
    }

    pub fn stream(&self) -> Stream {
        match self {
            Toxic::Latency { stream, .. }
            | Toxic::Bandwidth { stream, .. }
            | Toxic::SlowClose { stream, .. }
            | Toxic::Timeout { stream, .. }
            | Toxic::ResetPeer { stream, .. }
            | Toxic::LimitData { stream, .. }
            | Toxic::Slicer { stream, .. } => *stream,
        }
    }

    pub fn toxicity(&self) -> f64 {
        match self {
            Toxic::Latency { toxicity, .. }
            | Toxic::Bandwidth { toxicity, .. }
            | Toxic::SlowClose { toxicity, .. }
            | Toxic::Timeout { toxicity, .. }
            | Toxic::ResetPeer { toxicity, .. }
            | Toxic::LimitData { toxicity, .. }
            | Toxic::Slicer { toxicity, .. } => *toxicity,
        }
    }

    /// The attributes in Toxiproxy's units (milliseconds, KB/s, bytes, microseconds for the
    /// slicer's delay), as its API takes them.
    pub fn attributes(&self) -> serde_json::Value {
        let ms = |d: &Dur| d.0.as_millis() as u64;
        match self {
            Toxic::Latency {
                latency, jitter, ..
            } => serde_json::json!({ "latency": ms(latency), "jitter": ms(jitter) }),
            Toxic::Bandwidth { rate, .. } => serde_json::json!({ "rate": rate }),
            Toxic::SlowClose { delay, .. } => serde_json::json!({ "delay": ms(delay) }),
            Toxic::Timeout { timeout, .. } | Toxic::ResetPeer { timeout, .. } => {
                serde_json::json!({ "timeout": ms(timeout) })
            }
            Toxic::LimitData { bytes, .. } => serde_json::json!({ "bytes": bytes }),
            Toxic::Slicer {
                average_size,
                size_variation,
                delay,
                ..
            } => serde_json::json!({
                "average_size": average_size,
                "size_variation": size_variation,
                "delay": delay.as_micros(),
            }),
        }
    }

    /// A rule the attributes break, as (attribute, why).
    fn problem(&self) -> Option<(&'static str, &'static str)> {
        if !(self.toxicity().is_finite() && (0.0..=1.0).contains(&self.toxicity())) {
            return Some(("toxicity", "expected a share of connections in [0, 1]"));
        }
        match self {
            Toxic::Latency {
                latency, jitter, ..
            } if jitter > latency => Some(("jitter", "must not exceed latency")),
            Toxic::Latency { latency, .. } if latency.0.as_millis() == 0 => Some((
                "latency",
                "expected at least 1ms (Toxiproxy counts milliseconds)",
            )),
            Toxic::Bandwidth { rate: 0, .. } => Some((
                "rate",
                "expected at least 1 KB/s (use down = true to cut the link)",
            )),
            Toxic::LimitData { bytes: 0, .. } => Some(("bytes", "expected at least 1 byte")),
            Toxic::Slicer {
                average_size,
                size_variation,
                ..
            } => {
                if *average_size == 0 {
                    Some(("average_size", "expected at least 1 byte"))
                } else if size_variation >= average_size {
                    Some(("size_variation", "must be below average_size"))
                } else {
                    None
                }
            }
            _ => None,
        }
    }
}

/// Fault knobs of a stub, as its control API takes them; unset knobs stay at "behave".
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StubKnobs {
    /// Added before a call is handled: a caller that gives up first leaves it undone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<u64>,
    /// Never answer (until the knobs are reset); the call is not acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hang: Option<bool>,
    /// Answer the first N calls after the knobs are set with `error_status`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fail_first: Option<u64>,
    /// Answer this share of calls (every k-th) with `error_status`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_rate: Option<f64>,
    /// The status of injected errors (503 by default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_status: Option<u16>,
    /// Seconds in the `Retry-After` header of injected 429 and 503 answers (1 by default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_s: Option<u64>,
    /// The provider accepts the call at once (the message goes out, the resource is
    /// stored) and answers only this long after: past the caller's timeout, the answer is
    /// lost but the effect is not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub late_answer_ms: Option<u64>,
}

impl StubKnobs {
    fn problem(&self) -> Option<(&'static str, &'static str)> {
        if self.error_rate.is_some_and(|r| !(0.0..=1.0).contains(&r)) {
            return Some(("error_rate", "expected a fraction in [0, 1]"));
        }
        if self.error_status.is_some_and(|s| !(400..=599).contains(&s)) {
            return Some(("error_status", "expected a 4xx or 5xx status"));
        }
        if self.latency_ms.is_some_and(|l| l > 600_000)
            || self.late_answer_ms.is_some_and(|l| l > 600_000)
        {
            return Some(("latency_ms", "expected at most 600000 (10 minutes)"));
        }
        if self.retry_after_s.is_some() && self.error_status.is_some_and(|s| s != 429 && s != 503) {
            return Some((
                "retry_after_s",
                "Retry-After goes with error_status 429 or 503",
            ));
        }
        if self.retry_after_s.is_some_and(|s| s > 3600) {
            return Some(("retry_after_s", "expected at most 3600 seconds"));
        }
        if self == &StubKnobs::default() {
            return Some((
                "",
                "set at least one knob (latency_ms, hang, fail_first, error_rate, late_answer_ms)",
            ));
        }
        None
    }
}

/// How a held table lock blocks others, as PostgreSQL's `LOCK TABLE ... IN <mode> MODE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LockMode {
    /// Blocks every other access, reads included.
    #[default]
    AccessExclusive,
    /// Blocks writes and `SELECT ... FOR UPDATE`; plain reads pass.
    Exclusive,
    /// Blocks writes; reads pass.
    Share,
}

impl LockMode {
    pub fn sql(self) -> &'static str {
        match self {
            LockMode::AccessExclusive => "ACCESS EXCLUSIVE",
            LockMode::Exclusive => "EXCLUSIVE",
            LockMode::Share => "SHARE",
        }
    }
}

/// The tables of MediConnect a `postgres_lock` may name.
pub const LOCKABLE_TABLES: [&str; 10] = [
    "appointments",
    "deliveries",
    "ehr_sync",
    "idempotency_keys",
    "outbox",
    "patients",
    "providers",
    "schedule_templates",
    "sessions",
    "waitlist",
];

/// `postgres_lock = { table = "appointments" }`: the harness holds a lock on a table from
/// its own connection, so the target's queries on it hang (002:S-4).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableLock {
    pub table: String,
    #[serde(default)]
    pub mode: LockMode,
}

/// What a process fault sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Signal {
    /// SIGKILL, then start again.
    Kill,
    /// SIGTERM (a graceful stop), then start again.
    Stop,
    /// SIGSTOP, then SIGCONT.
    Pause,
}

impl Signal {
    pub fn as_str(self) -> &'static str {
        match self {
            Signal::Kill => "kill",
            Signal::Stop => "stop",
            Signal::Pause => "pause",
        }
    }
}

/// One entry of the fault schedule as written: `at` plus exactly one kind of fault, and how
/// long it lasts (`for`, or `restart_after` for kill and stop).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fault {
    pub at: Dur,
    /// `kill = "redis"`: SIGKILL the process (a service or `mediconnect-N`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kill: Option<Node>,
    /// `stop = "mediconnect-2"`: SIGTERM, a graceful stop.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop: Option<Node>,
    /// `pause = "redis"`: SIGSTOP, and SIGCONT after `for`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pause: Option<Node>,
    /// `partition = "redis"`: cut the node off the run's network (docker only: its container
    /// is disconnected, the proxy stays up), and reconnect it after `for`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition: Option<Node>,
    /// With `kill` or `stop`: start the process again (same port, same data) this long after.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart_after: Option<Dur>,
    /// With `toxic`, `down` or `knobs`: the service whose proxy or stub it acts on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<Service>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub toxic: Option<Toxic>,
    /// `down = true`: the link is cut (the proxy disabled: connections closed, new ones
    /// refused) until healed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub down: Option<bool>,
    /// Fault knobs set on a stub, reset when healed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub knobs: Option<StubKnobs>,
    /// A lock the harness holds on one of the target's tables.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postgres_lock: Option<TableLock>,
    /// How long the fault stays before it is healed (every kind but kill and stop).
    #[serde(default, rename = "for", skip_serializing_if = "Option::is_none")]
    pub for_: Option<Dur>,
}

/// A validated fault: what to inject and how long until its heal.
#[derive(Debug, Clone, PartialEq)]
pub enum FaultKind {
    Process {
        signal: Signal,
        node: Node,
        duration: Dur,
    },
    Toxic {
        service: Service,
        toxic: Toxic,
        duration: Dur,
    },
    Down {
        service: Service,
        duration: Dur,
    },
    Knobs {
        service: Service,
        knobs: StubKnobs,
        duration: Dur,
    },
    PostgresLock {
        lock: TableLock,
        duration: Dur,
    },
    /// The node's container disconnected from the run's network (docker only).
    Partition {
        node: Node,
        duration: Dur,
    },
}

impl FaultKind {
    fn duration(&self) -> Dur {
        match self {
            FaultKind::Process { duration, .. }
            | FaultKind::Toxic { duration, .. }
            | FaultKind::Down { duration, .. }
            | FaultKind::Knobs { duration, .. }
            | FaultKind::PostgresLock { duration, .. }
            | FaultKind::Partition { duration, .. } => *duration,
        }
    }

    /// What this fault holds exclusively while it is in force: two faults that hold the
    /// same thing at the same time conflict (one would undo or hide the other).
    fn holds(&self) -> Option<String> {
        match self {
            // A partitioned node cannot be restarted (its readiness is probed over the
            // network), nor a stopped one partitioned: one holds what the other needs.
            FaultKind::Process { node, .. } | FaultKind::Partition { node, .. } => {
                Some(format!("the process of {node}"))
            }
            FaultKind::Knobs { service, .. } => Some(format!("the knobs of {service}")),
            FaultKind::Down { service, .. } => Some(format!("the link to {service}")),
            FaultKind::PostgresLock { lock, .. } => Some(format!("table {}", lock.table)),
            // Toxics on one proxy stack, as in Toxiproxy.
            FaultKind::Toxic { .. } => None,
        }
    }

    /// The process a fault depends on staying up (a stub's knobs need the stub's process, a
    /// table lock PostgreSQL's).
    fn needs_process(&self) -> Option<Node> {
        match self {
            FaultKind::Knobs { service, .. } => Some(Node::Service(*service)),
            FaultKind::PostgresLock { .. } => Some(Node::Service(Service::Postgres)),
            _ => None,
        }
    }
}

impl Fault {
    /// The fault as the runner applies it. Only valid on a validated scenario.
    pub fn kind(&self) -> FaultKind {
        self.try_kind()
            .unwrap_or_else(|(f, m)| panic!("Fault::kind on an unvalidated fault ({f}: {m})"))
    }

    /// When the heal is due, relative to the start of the workload.
    pub fn heal_at(&self) -> Dur {
        Dur(self.at.0 + self.kind().duration().0)
    }

    /// A short human name, e.g. `kill redis`, `latency twilio`, `down rabbitmq`.
    pub fn label(&self) -> String {
        match self.kind() {
            FaultKind::Process { signal, node, .. } => format!("{} {node}", signal.as_str()),
            FaultKind::Toxic { service, toxic, .. } => {
                format!("{} {service}", toxic.type_name())
            }
            FaultKind::Down { service, .. } => format!("down {service}"),
            FaultKind::Knobs { service, .. } => format!("knobs {service}"),
            FaultKind::PostgresLock { lock, .. } => format!("lock {}", lock.table),
            FaultKind::Partition { node, .. } => format!("partition {node}"),
        }
    }

    /// The validated kind, or the field at fault (relative to this fault) and why.
    fn try_kind(&self) -> Result<FaultKind, (String, String)> {
        let bad = |f: &str, m: &str| Err((f.to_string(), m.to_string()));
        let process = [
            (Signal::Kill, self.kill),
            (Signal::Stop, self.stop),
            (Signal::Pause, self.pause),
        ];
        let mut kinds: Vec<&str> = process
            .iter()
            .filter(|(_, n)| n.is_some())
            .map(|(s, _)| s.as_str())
            .collect();
        for (name, set) in [
            ("toxic", self.toxic.is_some()),
            ("down", self.down.is_some()),
            ("knobs", self.knobs.is_some()),
            ("postgres_lock", self.postgres_lock.is_some()),
            ("partition", self.partition.is_some()),
        ] {
            if set {
                kinds.push(name);
            }
        }
        match kinds.len() {
            0 => {
                return bad(
                    "",
                    "expected one of kill, stop, pause, partition = \"<service>\", toxic = { ... }, down = true, knobs = { ... } or postgres_lock = { ... }",
                );
            }
            1 => {}
            _ => {
                return bad(
                    kinds[1],
                    &format!(
                        "a fault is one kind; this one says both {} and {} (write two faults)",
                        kinds[0], kinds[1]
                    ),
                );
            }
        }
        if let Some((signal, node)) = process.iter().find_map(|(s, n)| n.map(|n| (*s, n))) {
            let field = signal.as_str();
            if self.service.is_some() {
                return bad(
                    "service",
                    &format!(
                        "{field} names its process itself; service goes with toxic, down and knobs"
                    ),
                );
            }
            let duration = match signal {
                Signal::Pause => {
                    if self.restart_after.is_some() {
                        return bad(
                            "restart_after",
                            "a pause is resumed after for = \"<duration>\"; restart_after goes with kill and stop",
                        );
                    }
                    self.for_.ok_or(())
                }
                Signal::Kill | Signal::Stop => {
                    if self.for_.is_some() {
                        return bad(
                            "for",
                            &format!(
                                "{field} is healed by restart_after = \"<duration>\", not for"
                            ),
                        );
                    }
                    self.restart_after.ok_or(())
                }
            };
            let Ok(duration) = duration else {
                let need = if signal == Signal::Pause {
                    "for"
                } else {
                    "restart_after"
                };
                return bad(
                    need,
                    &format!("{field} needs {need} = \"<duration>\" (every fault is healed)"),
                );
            };
            return Ok(FaultKind::Process {
                signal,
                node,
                duration,
            });
        }
        if self.restart_after.is_some() {
            return bad("restart_after", "restart_after goes with kill and stop");
        }
        let Some(duration) = self.for_ else {
            return bad(
                "for",
                "this fault needs for = \"<duration>\" (every fault is healed)",
            );
        };
        if let Some(node) = self.partition {
            if self.service.is_some() {
                return bad(
                    "service",
                    "partition names its node itself; service goes with toxic, down and knobs",
                );
            }
            return Ok(FaultKind::Partition { node, duration });
        }
        if let Some(lock) = &self.postgres_lock {
            if self.service.is_some() {
                return bad(
                    "service",
                    "postgres_lock acts on PostgreSQL; it takes no service",
                );
            }
            if !LOCKABLE_TABLES.contains(&lock.table.as_str()) {
                return bad(
                    "postgres_lock.table",
                    &format!(
                        "unknown table {:?}: expected one of {}",
                        lock.table,
                        LOCKABLE_TABLES.join(", ")
                    ),
                );
            }
            return Ok(FaultKind::PostgresLock {
                lock: lock.clone(),
                duration,
            });
        }
        let Some(service) = self.service else {
            return bad(
                "service",
                "a toxic, down or knobs needs the service it acts on",
            );
        };
        if let Some(toxic) = &self.toxic {
            if let Some((attr, why)) = toxic.problem() {
                return bad(&format!("toxic.{attr}"), why);
            }
            return Ok(FaultKind::Toxic {
                service,
                toxic: toxic.clone(),
                duration,
            });
        }
        if let Some(down) = self.down {
            if !down {
                return bad("down", "down = true cuts the link; false is no fault");
            }
            return Ok(FaultKind::Down { service, duration });
        }
        let knobs = self.knobs.as_ref().expect("one kind is set");
        if !service.is_stub() {
            return bad("service", "knobs act on a stub: twilio, sendgrid or ehr");
        }
        if let Some((knob, why)) = knobs.problem() {
            let field = if knob.is_empty() {
                "knobs".to_string()
            } else {
                format!("knobs.{knob}")
            };
            return bad(&field, why);
        }
        Ok(FaultKind::Knobs {
            service,
            knobs: knobs.clone(),
            duration,
        })
    }
}

/// Check a schedule against a workload of `duration` and a target of `replicas`: every
/// fault well formed, on something the environment has, and no two faults holding the same
/// thing at once. Errors name the field (`faults[2].pause`) and why.
pub(crate) fn validate_schedule(
    faults: &[Fault],
    duration: Dur,
    replicas: u32,
) -> Result<(), (String, String)> {
    let mut kinds = Vec::new();
    for (i, f) in faults.iter().enumerate() {
        let at = |field: &str| {
            if field.is_empty() {
                format!("faults[{i}]")
            } else {
                format!("faults[{i}].{field}")
            }
        };
        if f.at > duration {
            return Err((
                at("at"),
                format!("is after the end of the workload ({duration})"),
            ));
        }
        let kind = f.try_kind().map_err(|(field, m)| (at(&field), m))?;
        let replica = match &kind {
            FaultKind::Process {
                signal,
                node: Node::Replica(n),
                ..
            } => Some((signal.as_str(), *n)),
            FaultKind::Partition {
                node: Node::Replica(n),
                ..
            } => Some(("partition", *n)),
            _ => None,
        };
        if let Some((field, n)) = replica
            && n > replicas
        {
            return Err((
                at(field),
                format!(
                    "replica {n} is out of range: this scenario runs {replicas} (mediconnect-1 to mediconnect-{replicas})"
                ),
            ));
        }
        // Checked here so that `heal_at` cannot overflow on a validated scenario.
        let Some(end) = f.at.0.checked_add(kind.duration().0) else {
            return Err((
                at("at"),
                "the fault would heal past the end of time (at plus its duration overflows)".into(),
            ));
        };
        if kind.duration().0.is_zero() {
            return Err((
                at(""),
                "lasts 0s: give it a `for` (or `restart_after`) above 0s".into(),
            ));
        }
        if end > duration.0 {
            return Err((
                at(""),
                format!(
                    "heals at {}, after the end of the workload ({duration}): a fault must be healed while the workload can show the recovery",
                    Dur(end)
                ),
            ));
        }
        kinds.push((f.at, Dur(end), kind));
    }
    for (j, (start_b, end_b, b)) in kinds.iter().enumerate() {
        for (i, (start_a, end_a, a)) in kinds.iter().enumerate().take(j) {
            let overlap = start_a < end_b && start_b < end_a;
            if !overlap {
                continue;
            }
            let same = a.holds().is_some() && a.holds() == b.holds();
            let process_of = |x: &FaultKind| match x {
                FaultKind::Process { node, .. } | FaultKind::Partition { node, .. } => Some(*node),
                _ => None,
            };
            let starved = (b.needs_process().is_some() && b.needs_process() == process_of(a))
                || (a.needs_process().is_some() && a.needs_process() == process_of(b));
            if same || starved {
                let what = if same {
                    a.holds().expect("checked")
                } else {
                    format!(
                        "{} (one fault stops the process the other needs)",
                        a.needs_process().or(b.needs_process()).expect("checked")
                    )
                };
                return Err((
                    format!("faults[{j}]"),
                    format!(
                        "conflicts with faults[{i}]: both act on {what} from {} to {}",
                        Dur(start_a.0.max(start_b.0)),
                        Dur(end_a.0.min(end_b.0))
                    ),
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_parse_services_and_replicas() {
        assert_eq!("redis".parse::<Node>(), Ok(Node::Service(Service::Redis)));
        assert_eq!("mediconnect-2".parse::<Node>(), Ok(Node::Replica(2)));
        assert!("mediconnect-0".parse::<Node>().is_err());
        assert!(
            "memcached"
                .parse::<Node>()
                .unwrap_err()
                .contains("mediconnect-1")
        );
        assert_eq!(Node::Replica(3).to_string(), "mediconnect-3");
    }

    #[test]
    fn toxic_attributes_are_in_toxiproxy_units() {
        let t = Toxic::Slicer {
            average_size: 64,
            size_variation: 8,
            delay: Dur::from_millis(2),
            stream: Stream::Upstream,
            toxicity: 0.5,
        };
        assert_eq!(
            t.attributes(),
            serde_json::json!({"average_size": 64, "size_variation": 8, "delay": 2000})
        );
        assert_eq!(t.type_name(), "slicer");
        assert_eq!(t.stream(), Stream::Upstream);
        let l = Toxic::Latency {
            latency: Dur::from_millis(30),
            jitter: Dur::from_millis(40),
            stream: Stream::Downstream,
            toxicity: 1.0,
        };
        assert_eq!(l.problem(), Some(("jitter", "must not exceed latency")));
    }
}
