//! The history format: client ops (invoke, then ok | fail | info) and fault events, one JSON
//! object per line of `history.jsonl`, in the order the recorder saw them.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// What a client asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OpKind {
    Login,
    Availability,
    Book,
    /// A request with a token that is no session: it must never succeed.
    Forged,
    /// A probe of `/health/readiness` (no session): ok when ready, fail (503) when not.
    Readiness,
    /// A cancellation of one of the client's own acknowledged appointments; its completion
    /// names the appointment.
    Cancel,
}

impl OpKind {
    pub fn as_str(self) -> &'static str {
        match self {
            OpKind::Login => "login",
            OpKind::Availability => "availability",
            OpKind::Book => "book",
            OpKind::Forged => "forged",
            OpKind::Readiness => "readiness",
            OpKind::Cancel => "cancel",
        }
    }
}

impl fmt::Display for OpKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How an op ended. `Info` means unknown: it may or may not have taken effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Ok,
    Fail,
    Info,
}

/// A bookable slot: a provider and the slot's start in Unix seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Slot {
    pub provider: u32,
    pub start: i64,
}

impl fmt::Display for Slot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "provider {} at {}", self.provider, self.start)
    }
}

/// The start of an op. Times are microseconds since the workload started; `due_us` is when
/// the open-loop schedule wanted the op sent, `time_us` when it was actually sent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Invoke {
    pub op: u64,
    pub process: u32,
    pub f: OpKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slot: Option<Slot>,
    pub due_us: u64,
    pub time_us: u64,
    /// The `Idempotency-Key` a booking carried; a resubmission carries its first try's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

/// The end of an op.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Completion {
    pub op: u64,
    pub time_us: u64,
    /// HTTP status, when a response arrived.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// The appointment id a successful booking returned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub appointment: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FaultAction {
    Inject,
    Heal,
}

/// A fault being injected or healed, on the same clock as the ops.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultEvent {
    /// Index of the fault in the scenario's `faults` list.
    pub fault: usize,
    pub name: String,
    pub action: FaultAction,
    pub time_us: u64,
    /// Set when the harness could not apply the action; the run's verdicts become unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One line of `history.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Record {
    Invoke(Invoke),
    Ok(Completion),
    Fail(Completion),
    Info(Completion),
    Fault(FaultEvent),
}

impl Record {
    pub fn time_us(&self) -> u64 {
        match self {
            Record::Invoke(i) => i.time_us,
            Record::Ok(c) | Record::Fail(c) | Record::Info(c) => c.time_us,
            Record::Fault(f) => f.time_us,
        }
    }
}

/// An op with its invocation and completion paired; its strings borrow from the history.
#[derive(Debug, Clone, PartialEq)]
pub struct Op<'a> {
    pub id: u64,
    pub process: u32,
    pub f: OpKind,
    pub slot: Option<Slot>,
    pub due_us: u64,
    pub invoke_us: u64,
    pub outcome: Outcome,
    /// None when the op never completed (the run ended first): treated as `info`.
    pub complete_us: Option<u64>,
    pub status: Option<u16>,
    pub appointment: Option<&'a str>,
    pub error: Option<&'a str>,
    /// The `Idempotency-Key` it carried, if any.
    pub key: Option<&'a str>,
}

impl Op<'_> {
    /// Latency from the op's due time (open loop: a stalled client cannot hide a stall).
    pub fn latency_us(&self) -> Option<u64> {
        self.complete_us.map(|c| c.saturating_sub(self.due_us))
    }
}

/// A whole history, in recorded order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct History {
    pub records: Vec<Record>,
}

impl History {
    pub fn new(records: Vec<Record>) -> History {
        History { records }
    }

    /// Parse `history.jsonl` text. Errors name the 1-based line.
    pub fn from_jsonl(text: &str) -> Result<History, String> {
        let mut records = Vec::new();
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let r: Record =
                serde_json::from_str(line).map_err(|e| format!("line {}: {e}", i + 1))?;
            records.push(r);
        }
        Ok(History { records })
    }

    /// Pair invocations with completions, ordered by op id. A completion without an
    /// invocation is a recorder bug and panics.
    /// Every op, in id order. Op ids are dense (the recorder numbers them from 1), so a
    /// table indexed by id finds an op's invoke; sparse ids fall back to a map.
    pub fn ops(&self) -> Vec<Op<'_>> {
        let mut ops: Vec<Op<'_>> = Vec::with_capacity(self.records.len() / 2 + 1);
        let dense_limit = self.records.len() as u64 * 2 + 16;
        let mut dense: Vec<u32> = Vec::new();
        let mut sparse: BTreeMap<u64, u32> = BTreeMap::new();
        for r in &self.records {
            match r {
                Record::Invoke(i) => {
                    let at = u32::try_from(ops.len()).expect("fewer than 4G ops");
                    if i.op < dense_limit {
                        let k = i.op as usize;
                        if dense.len() <= k {
                            dense.resize(k + 1, u32::MAX);
                        }
                        dense[k] = at;
                    } else {
                        sparse.insert(i.op, at);
                    }
                    ops.push(Op {
                        id: i.op,
                        process: i.process,
                        f: i.f,
                        slot: i.slot,
                        due_us: i.due_us,
                        invoke_us: i.time_us,
                        outcome: Outcome::Info,
                        complete_us: None,
                        status: None,
                        appointment: None,
                        error: None,
                        key: i.key.as_deref(),
                    });
                }
                Record::Ok(c) | Record::Fail(c) | Record::Info(c) => {
                    let at = if c.op < dense_limit {
                        dense.get(c.op as usize).copied().filter(|&a| a != u32::MAX)
                    } else {
                        sparse.get(&c.op).copied()
                    };
                    let op = at.map(|a| &mut ops[a as usize]).unwrap_or_else(|| {
                        panic!("history: completion of op {} before its invoke", c.op)
                    });
                    op.outcome = match r {
                        Record::Ok(_) => Outcome::Ok,
                        Record::Fail(_) => Outcome::Fail,
                        _ => Outcome::Info,
                    };
                    op.complete_us = Some(c.time_us);
                    op.status = c.status;
                    op.appointment = c.appointment.as_deref();
                    op.error = c.error.as_deref();
                }
                Record::Fault(_) => {}
            }
        }
        // Invokes are recorded in id order already; a stable sort of sorted input is linear.
        ops.sort_by_key(|o| o.id);
        ops
    }

    pub fn faults(&self) -> impl Iterator<Item = &FaultEvent> {
        self.records.iter().filter_map(|r| match r {
            Record::Fault(f) => Some(f),
            _ => None,
        })
    }

    /// Fault windows `[inject, heal)` in microseconds, by fault index. A fault that was
    /// injected and never healed extends to the end of the history.
    pub fn fault_windows(&self) -> Vec<(usize, u64, u64)> {
        let end = self.records.iter().map(Record::time_us).max().unwrap_or(0);
        let mut open: BTreeMap<usize, u64> = BTreeMap::new();
        let mut out = Vec::new();
        for f in self.faults() {
            match f.action {
                FaultAction::Inject => {
                    open.insert(f.fault, f.time_us);
                }
                FaultAction::Heal => {
                    if let Some(start) = open.remove(&f.fault) {
                        out.push((f.fault, start, f.time_us));
                    }
                }
            }
        }
        out.extend(open.into_iter().map(|(i, start)| (i, start, end)));
        out.sort_by_key(|w| (w.1, w.0));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_through_jsonl() {
        let records = vec![
            Record::Invoke(Invoke {
                op: 1,
                process: 2,
                f: OpKind::Book,
                slot: Some(Slot {
                    provider: 1,
                    start: 60,
                }),
                due_us: 10,
                time_us: 12,
                key: None,
            }),
            Record::Fault(FaultEvent {
                fault: 0,
                name: "kill redis".into(),
                action: FaultAction::Inject,
                time_us: 13,
                error: None,
            }),
            Record::Ok(Completion {
                op: 1,
                time_us: 20,
                status: Some(201),
                appointment: Some("a".into()),
                error: None,
            }),
        ];
        let text: String = records
            .iter()
            .map(|r| serde_json::to_string(r).unwrap() + "\n")
            .collect();
        assert!(text.starts_with("{\"type\":\"invoke\",\"op\":1,"), "{text}");
        let h = History::from_jsonl(&text).unwrap();
        assert_eq!(h.records, records);
        let ops = h.ops();
        assert_eq!(ops.len(), 1);
        assert_eq!(ops[0].outcome, Outcome::Ok);
        assert_eq!(ops[0].latency_us(), Some(10));
        assert_eq!(h.fault_windows(), vec![(0, 13, 20)]);
    }

    #[test]
    fn an_op_without_completion_is_info() {
        let h = History::new(vec![Record::Invoke(Invoke {
            op: 7,
            process: 0,
            f: OpKind::Availability,
            slot: None,
            due_us: 0,
            time_us: 0,
            key: None,
        })]);
        let op = &h.ops()[0];
        assert_eq!(op.outcome, Outcome::Info);
        assert_eq!(op.latency_us(), None);
    }

    #[test]
    fn a_bad_line_is_named() {
        let e = History::from_jsonl("\n{\"type\":\"nope\"}\n").unwrap_err();
        assert!(e.starts_with("line 2:"), "{e}");
    }
}
