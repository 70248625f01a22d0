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
    /// A cancellation of one of the client's own acknowledged appointments; its invoke and
    /// its completion name the appointment.
    Cancel,
    /// A move of one of the client's own appointments (`target`) from `slot` to `to`.
    Reschedule,
    /// A join of `slot`'s waitlist; a later cancellation may book the client into it.
    Waitlist,
    /// A clinic replaces the weekly template of `slot.provider` with `hours`.
    ScheduleChange,
}

impl OpKind {
    /// Whether an unanswered request of this kind may have changed the system's state.
    pub fn writes(self) -> bool {
        !matches!(
            self,
            OpKind::Availability | OpKind::Forged | OpKind::Readiness
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            OpKind::Login => "login",
            OpKind::Availability => "availability",
            OpKind::Book => "book",
            OpKind::Forged => "forged",
            OpKind::Readiness => "readiness",
            OpKind::Cancel => "cancel",
            OpKind::Reschedule => "reschedule",
            OpKind::Waitlist => "waitlist",
            OpKind::ScheduleChange => "schedule_change",
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

/// Op ids are fixed by the plan: op `STRIDE * i + part` is part `part` of the plan's op `i`,
/// so a reproduced run cites the same ops. Part 0 is the login a client needed first,
/// parts 1 to 6 the tries (a retry policy allows up to 6), part 7 a resubmission.
pub const OP_STRIDE: u64 = 8;
/// The part of a planned op that is the login before it.
pub const PART_LOGIN: u64 = 0;
/// The part of a planned op that is its resubmission (sent again with its key).
pub const PART_RESUBMIT: u64 = 7;

/// The id of part `part` of the plan's op `index`.
pub fn op_id(index: u64, part: u64) -> u64 {
    assert!(part < OP_STRIDE, "an op has at most {OP_STRIDE} parts");
    index * OP_STRIDE + part
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
    /// The appointment a cancellation or a reschedule acts on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// Where a reschedule moves its appointment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<Slot>,
    /// A schedule change's weekday hours, `[start, end)` in minutes of the UTC day.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hours: Option<[u32; 2]>,
    /// The 1-based replica the request went to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replica: Option<u32>,
    /// The op id of the login whose session the request carried.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<u64>,
    /// The trace id of the request's `traceparent` header (32 hex digits).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace: Option<String>,
    /// Which try this is (2 and up for retries; absent for the first).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempt: Option<u32>,
}

impl Invoke {
    /// An invocation with no optional field set.
    pub fn new(op: u64, process: u32, f: OpKind, due_us: u64, time_us: u64) -> Invoke {
        Invoke {
            op,
            process,
            f,
            slot: None,
            due_us,
            time_us,
            key: None,
            target: None,
            to: None,
            hours: None,
            replica: None,
            session: None,
            trace: None,
            attempt: None,
        }
    }
}

/// The end of an op.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Completion {
    pub op: u64,
    pub time_us: u64,
    /// HTTP status, when a response arrived.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// The appointment id a successful booking returned, or a cancellation cancelled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub appointment: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The `Retry-After` of a refusal, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<u64>,
    /// For an availability read that was answered: the free slot starts it listed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub free: Option<Vec<i64>>,
    /// For a cancellation or a reschedule: the appointment the waitlist promotion of the
    /// freed slot booked, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub promoted: Option<String>,
    /// The appointment's `version` in the answer (bookings and reschedules).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u32>,
    /// For an acknowledged login: the patient the session belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patient: Option<u32>,
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
    /// An inject's is when it began (the fault may be in effect from then on), a heal's when
    /// it was done (the fault may be in effect until then): the fault's window is the widest
    /// it may have been.
    pub time_us: u64,
    /// The other end of the action, where the engine knows it: an inject's when it was done
    /// (the fault certainly in effect from then on), a heal's when it began (certainly in
    /// effect until then). What a checker needs as proof that something happened *during* a
    /// fault is judged inside these narrower bounds ([`History::certain_fault_windows`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effective_us: Option<u64>,
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
    /// The appointment a cancellation or reschedule acted on.
    pub target: Option<&'a str>,
    /// Where a reschedule moved to.
    pub to: Option<Slot>,
    /// A schedule change's hours.
    pub hours: Option<[u32; 2]>,
    pub replica: Option<u32>,
    /// The login op whose session it carried.
    pub session: Option<u64>,
    pub trace: Option<&'a str>,
    /// 1 for a first try, 2 and up for retries.
    pub attempt: u32,
    pub retry_after: Option<u64>,
    /// The free slots an answered availability read listed.
    pub free: Option<&'a [i64]>,
    /// The appointment a waitlist promotion of the freed slot booked.
    pub promoted: Option<&'a str>,
    /// The appointment's version in the answer.
    pub version: Option<u32>,
    /// The patient an acknowledged login's session belongs to.
    pub patient: Option<u32>,
}

impl Op<'_> {
    /// The index of the planned op this is part of.
    pub fn plan_index(&self) -> u64 {
        self.id / OP_STRIDE
    }

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

    /// Parse `history.jsonl` text and check that it is a history: every op invoked once,
    /// completed at most once and only after its invocation, never before it in time.
    /// Errors name the 1-based line.
    pub fn from_jsonl(text: &str) -> Result<History, String> {
        let mut records = Vec::new();
        // Op id -> (invoke time, completed).
        let mut seen: BTreeMap<u64, (u64, bool)> = BTreeMap::new();
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let at = |m: String| format!("line {}: {m}", i + 1);
            let r: Record = serde_json::from_str(line).map_err(|e| at(e.to_string()))?;
            match &r {
                Record::Invoke(inv) => {
                    if seen.insert(inv.op, (inv.time_us, false)).is_some() {
                        return Err(at(format!("op {} is invoked a second time", inv.op)));
                    }
                }
                Record::Ok(c) | Record::Fail(c) | Record::Info(c) => match seen.get_mut(&c.op) {
                    None => {
                        return Err(at(format!("op {} completes before it is invoked", c.op)));
                    }
                    Some((_, true)) => {
                        return Err(at(format!("op {} completes a second time", c.op)));
                    }
                    Some((t, done)) => {
                        if c.time_us < *t {
                            return Err(at(format!(
                                "op {} completes at {}us, before its invocation at {t}us",
                                c.op, c.time_us
                            )));
                        }
                        *done = true;
                    }
                },
                Record::Fault(_) => {}
            }
            records.push(r);
        }
        Ok(History { records })
    }

    /// Every op, its invocation paired with its completion, in id order. Ids are planned
    /// (at most `OP_STRIDE` per planned op), so a table indexed by id finds an op's invoke;
    /// ids beyond it fall back to a map. A completion without an invocation panics: a
    /// history read by `from_jsonl` never has one, so it is a bug of whoever built it.
    pub fn ops(&self) -> Vec<Op<'_>> {
        let mut ops: Vec<Op<'_>> = Vec::with_capacity(self.records.len() / 2 + 1);
        // Ids are planned: up to OP_STRIDE per planned op, about two records per op.
        let dense_limit = self.records.len() as u64 * OP_STRIDE + 64;
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
                        target: i.target.as_deref(),
                        to: i.to,
                        hours: i.hours,
                        replica: i.replica,
                        session: i.session,
                        trace: i.trace.as_deref(),
                        attempt: i.attempt.unwrap_or(1),
                        retry_after: None,
                        free: None,
                        promoted: None,
                        version: None,
                        patient: None,
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
                    op.retry_after = c.retry_after;
                    op.free = c.free.as_deref();
                    op.promoted = c.promoted.as_deref();
                    op.version = c.version;
                    op.patient = c.patient;
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
    /// injected and never healed, or whose heal failed, extends to the end of the history;
    /// an inject that failed opens none.
    pub fn fault_windows(&self) -> Vec<(usize, u64, u64)> {
        self.windows(|f| f.time_us)
    }

    /// The faults' windows where each was certainly in effect: from its inject's completion
    /// to its heal's beginning (`effective_us`, or `time_us` where a history has none); a
    /// window that is empty so is left out. Proof that something happened during a fault is
    /// judged inside these; what is steady, outside [`History::fault_windows`].
    pub fn certain_fault_windows(&self) -> Vec<(usize, u64, u64)> {
        let mut out = self.windows(|f| f.effective_us.unwrap_or(f.time_us));
        out.retain(|&(_, a, b)| a < b);
        out
    }

    fn windows(&self, at: impl Fn(&FaultEvent) -> u64) -> Vec<(usize, u64, u64)> {
        let end = self.records.iter().map(Record::time_us).max().unwrap_or(0);
        let mut open: BTreeMap<usize, u64> = BTreeMap::new();
        let mut out = Vec::new();
        for f in self.faults() {
            match f.action {
                // An inject that failed took no effect: no window.
                FaultAction::Inject if f.error.is_none() => {
                    open.insert(f.fault, at(f));
                }
                FaultAction::Inject => {}
                // A heal that failed left the fault in place: the window stays open to the
                // end of the history.
                FaultAction::Heal if f.error.is_none() => {
                    if let Some(start) = open.remove(&f.fault) {
                        out.push((f.fault, start, at(f)));
                    }
                }
                FaultAction::Heal => {}
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
                slot: Some(Slot {
                    provider: 1,
                    start: 60,
                }),
                ..Invoke::new(1, 2, OpKind::Book, 10, 12)
            }),
            Record::Fault(FaultEvent {
                fault: 0,
                name: "kill redis".into(),
                action: FaultAction::Inject,
                time_us: 13,
                effective_us: None,
                error: None,
            }),
            Record::Ok(Completion {
                op: 1,
                time_us: 20,
                status: Some(201),
                appointment: Some("a".into()),
                ..Completion::default()
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
    fn certain_windows_run_from_an_inject_done_to_a_heal_begun() {
        let ev = |action, time_us, effective_us| {
            Record::Fault(FaultEvent {
                fault: 0,
                name: "f".into(),
                action,
                time_us,
                effective_us,
                error: None,
            })
        };
        let h = History::new(vec![
            ev(FaultAction::Inject, 100, Some(130)),
            ev(FaultAction::Heal, 200, Some(170)),
        ]);
        assert_eq!(h.fault_windows(), vec![(0, 100, 200)]);
        assert_eq!(h.certain_fault_windows(), vec![(0, 130, 170)]);
        // A heal begun before the inject was done: never certainly in effect.
        let h = History::new(vec![
            ev(FaultAction::Inject, 100, Some(180)),
            ev(FaultAction::Heal, 200, Some(170)),
        ]);
        assert_eq!(h.certain_fault_windows(), vec![]);
        // A history without the other ends (an older bundle): the same windows.
        let h = History::new(vec![
            ev(FaultAction::Inject, 100, None),
            ev(FaultAction::Heal, 200, None),
        ]);
        assert_eq!(h.certain_fault_windows(), h.fault_windows());
    }

    #[test]
    fn an_op_without_completion_is_info() {
        let h = History::new(vec![Record::Invoke(Invoke::new(
            7,
            0,
            OpKind::Availability,
            0,
            0,
        ))]);
        let op = &h.ops()[0];
        assert_eq!(op.outcome, Outcome::Info);
        assert_eq!(op.latency_us(), None);
    }

    #[test]
    fn a_history_that_is_no_history_is_refused_with_its_line() {
        let inv = |op: u64, t: u64| {
            serde_json::to_string(&Record::Invoke(Invoke::new(op, 0, OpKind::Book, t, t))).unwrap()
        };
        let ok = |op: u64, t: u64| {
            serde_json::to_string(&Record::Ok(Completion {
                op,
                time_us: t,
                ..Completion::default()
            }))
            .unwrap()
        };
        let e = History::from_jsonl(&format!("{}\n", ok(3, 5))).unwrap_err();
        assert_eq!(e, "line 1: op 3 completes before it is invoked");
        let e = History::from_jsonl(&format!("{}\n{}\n", inv(3, 5), inv(3, 6))).unwrap_err();
        assert_eq!(e, "line 2: op 3 is invoked a second time");
        let e = History::from_jsonl(&format!("{}\n{}\n{}\n", inv(3, 5), ok(3, 6), ok(3, 7)))
            .unwrap_err();
        assert_eq!(e, "line 3: op 3 completes a second time");
        let e = History::from_jsonl(&format!("{}\n{}\n", inv(3, 5), ok(3, 4))).unwrap_err();
        assert!(e.contains("before its invocation"), "{e}");
        assert!(History::from_jsonl(&format!("{}\n{}\n", inv(3, 5), ok(3, 5))).is_ok());
    }

    #[test]
    fn op_ids_name_their_planned_op() {
        assert_eq!(op_id(10, PART_RESUBMIT), 87);
        let h = History::new(vec![Record::Invoke(Invoke::new(
            op_id(4, 2),
            0,
            OpKind::Book,
            0,
            0,
        ))]);
        assert_eq!(h.ops()[0].plan_index(), 4);
        assert_eq!(h.ops()[0].attempt, 1);
    }

    #[test]
    fn a_bad_line_is_named() {
        let e = History::from_jsonl("\n{\"type\":\"nope\"}\n").unwrap_err();
        assert!(e.starts_with("line 2:"), "{e}");
    }

    #[test]
    fn a_failed_inject_opens_no_window_and_a_failed_heal_closes_none() {
        let ev = |fault, action, time_us, error: Option<&str>| {
            Record::Fault(FaultEvent {
                fault,
                name: format!("fault {fault}"),
                action,
                time_us,
                effective_us: None,
                error: error.map(str::to_string),
            })
        };
        let h = History::new(vec![
            ev(0, FaultAction::Inject, 10, Some("no such proxy")),
            ev(1, FaultAction::Inject, 20, None),
            ev(2, FaultAction::Inject, 30, None),
            ev(1, FaultAction::Heal, 40, None),
            ev(2, FaultAction::Heal, 50, Some("restart failed")),
            Record::Invoke(Invoke::new(8, 0, OpKind::Book, 90, 90)),
        ]);
        assert_eq!(h.fault_windows(), vec![(1, 20, 40), (2, 30, 90)]);
    }
}
