//! Generated worlds for the property tests and the checkers' benchmark: a history, and the
//! evidence a correct system would leave for it, built from a list of intents by a
//! sequential model of MediConnect (one live appointment per slot; every appointment gets
//! its confirmation by SMS and e-mail and one EHR resource, within a millisecond of the
//! booking's answer and carrying its trace; a cancellation or a move out of a slot books the
//! first patient on its waitlist; availability reads list the free slots of a provider's
//! day). Each op takes effect when it is sent. Anomalies are planted on top.

#![allow(dead_code)] // each including target uses part of it

use std::collections::BTreeMap;

use chaos_model::{
    AppointmentRow, Completion, Evidence, FaultAction, FaultEvent, History, Invoke, OpKind, Record,
    Scenario, Slot, StubCall,
};

/// Every invariant a (scenario, history, evidence) triple can be checked for.
pub const SCENARIO: &str = r#"
name = "generated"
target = "mediconnect"

[workload]
duration = "10s"
rate = 100
clients = 16
mix = { book = 3, availability = 1, forged = 1, login = 1, cancel = 1, readiness = 0.1, waitlist = 0.1, reschedule = 0.1 }

[[faults]]
at = "4s"
kill = "redis"
restart_after = "2s"

[invariants]
no_double_booking = {}
acknowledged_durable = {}
auth_fails_closed = {}
latency = { steady = { p50 = "1s", p99 = "10s" }, fault = { p99 = "10s" } }
success_ratio = { steady = 0.5 }
recovery = { within = "10s" }
ehr_sync = {}
no_duplicate_reminders = {}
no_lost_reminders = {}
readiness = { within = "1s" }
delivered_within = { within = "1s" }
answers_in_time = { refusal = "100ms" }
sessions_survive = {}
waitlist_promotes_once = {}
no_lost_update = {}
trace_propagates = {}
metrics_reflect = { gauges = ["mediconnect_http_in_flight"] }
linearizable = {}
"#;

/// The wall clock of the history's zero, in Unix milliseconds.
pub const T0_MS: u64 = 1_900_000_000_000;

/// The trace id a booking's request carried.
pub fn trace_of(op: u64) -> String {
    format!("{op:032x}")
}

pub fn scenario() -> Scenario {
    Scenario::parse("generated.toml", SCENARIO).expect("the generated scenario parses")
}

/// What one client op tries, and how its answer goes.
#[derive(Debug, Clone, Copy)]
pub struct Intent {
    /// 0 book, 1 availability, 2 login, 3 forged token, 4 cancel the slot's appointment, 5
    /// join the slot's waitlist, 6 move the slot's appointment to the provider's next slot
    /// (4 and 6 when the appointment was acknowledged before this op; otherwise a read). A
    /// slot an appointment was moved out of is not booked again (a booking of it is a read):
    /// the other checkers do not follow moves.
    pub kind: u8,
    /// Which slot a booking asks for, or which slot's provider and day a read lists.
    pub slot: u32,
    /// A booking of a free slot, a join or a move: 0 and 1 acknowledged, 2 timed out but
    /// applied, 3 timed out and not applied (both `info`), 4 a 503 (`fail`, not applied).
    pub fate: u8,
    /// Microseconds from this op's invoke to the next one's.
    pub gap_us: u16,
    /// Microseconds the op takes.
    pub latency_us: u16,
}

/// A history and the evidence a correct system leaves for it.
#[derive(Debug, Clone)]
pub struct World {
    pub history: History,
    pub evidence: Evidence,
    /// Op id -> appointment id of every booking that created one (acknowledged or not).
    pub applied: BTreeMap<u64, String>,
    /// Op ids of acknowledged bookings.
    pub acknowledged: Vec<u64>,
    /// Op ids of acknowledged bookings whose appointment was cancelled (acknowledged).
    pub cancelled: Vec<u64>,
    /// How many slots the providers' templates have (`slot(0..universe)`).
    pub universe: u32,
}

impl World {
    /// Acknowledged bookings whose appointment is still live.
    pub fn live_acknowledged(&self) -> Vec<u64> {
        let mut v = self.acknowledged.clone();
        v.retain(|op| !self.cancelled.contains(op));
        v
    }
}

fn slot(i: u32) -> Slot {
    Slot {
        provider: i % 16 + 1,
        start: 1_900_000_000 + i64::from(i / 16) * 1800,
    }
}

fn call(seq: u64, path: &str, body: serde_json::Value, status: u16) -> StubCall {
    StubCall {
        seq,
        at_ms: seq,
        method: "POST".into(),
        path: path.into(),
        idempotency_key: None,
        body,
        status: Some(status),
        ..StubCall::default()
    }
}

pub fn sms(seq: u64, appointment: &str) -> StubCall {
    let body = format!("MediConnect: booked. Ref {appointment}/confirmation");
    call(
        seq,
        "/2010-04-01/Accounts/AC/Messages.json",
        serde_json::json!({ "To": "+15550100", "Body": body }),
        201,
    )
}

pub fn email(seq: u64, appointment: &str) -> StubCall {
    let args = serde_json::json!({ "appointment_id": appointment, "kind": "confirmation" });
    call(
        seq,
        "/v3/mail/send",
        serde_json::json!({ "custom_args": args }),
        202,
    )
}

pub fn ehr(seq: u64, appointment: &str) -> StubCall {
    let body = serde_json::json!({
        "resourceType": "Appointment",
        "status": "booked",
        "identifier": [{ "value": appointment }],
    });
    call(seq, &format!("/fhir/Appointment/{appointment}"), body, 201)
}

/// Build the clean world of these intents. With `fault`, a Redis kill spans the middle
/// fifth of the history (it changes no outcome: the model is a correct system).
pub fn clean(intents: &[Intent], fault: bool) -> World {
    // Every slot an intent names, and the one after it of the same provider, is a slot of
    // the providers' templates: reads list those that are free.
    let universe = intents.iter().map(|i| i.slot + 17).max().unwrap_or(0);
    let mut waiting: BTreeMap<Slot, u32> = BTreeMap::new();
    let mut retired: std::collections::BTreeSet<Slot> = std::collections::BTreeSet::new();
    let mut records = Vec::with_capacity(intents.len() * 2 + 2);
    let mut ev = Evidence {
        appointments: Some(Vec::new()),
        run_started_unix_ms: Some(T0_MS),
        // The world has settled: every reminder it sends is in the stubs' logs.
        drain: Some(chaos_model::Drain {
            drained: true,
            waited_ms: 0,
            outbox: Some(0),
            queued: Some(0),
            stubs_idle_ms: Some(1_000),
        }),
        ..Evidence::default()
    };
    for stub in ["twilio", "sendgrid", "ehr"] {
        ev.stub_calls.insert(stub.into(), Vec::new());
    }
    // Slot -> (appointment, booking op, when the client learnt of it, if it did).
    let mut booked: BTreeMap<Slot, (String, u64, Option<u64>)> = BTreeMap::new();
    let mut cancelled = Vec::new();
    let mut applied = BTreeMap::new();
    let mut acknowledged = Vec::new();
    let mut seq = 0u64;
    let mut t = 0u64;
    let end = intents.iter().map(|i| u64::from(i.gap_us)).sum::<u64>();
    let window = (end * 2 / 5, end * 3 / 5);
    let mut fault_state = 0;
    for (n, it) in intents.iter().enumerate() {
        let op = n as u64 + 1;
        if fault && fault_state < 2 {
            let (at, action) = if fault_state == 0 {
                (window.0, FaultAction::Inject)
            } else {
                (window.1, FaultAction::Heal)
            };
            if t >= at {
                records.push(Record::Fault(FaultEvent {
                    fault: 0,
                    name: "kill redis".into(),
                    action,
                    time_us: t,
                    effective_us: None,
                    error: None,
                }));
                fault_state += 1;
            }
        }
        let s = slot(it.slot);
        // A client cancels only an appointment it was told of before it sends the cancel.
        let cancellable = booked
            .get(&s)
            .is_some_and(|(_, _, acked)| acked.is_some_and(|a| a <= t));
        let f = match it.kind % 7 {
            0 if retired.contains(&s) => OpKind::Availability,
            0 => OpKind::Book,
            1 => OpKind::Availability,
            2 => OpKind::Login,
            3 => OpKind::Forged,
            4 if cancellable => OpKind::Cancel,
            5 => OpKind::Waitlist,
            6 if cancellable => OpKind::Reschedule,
            _ => OpKind::Availability,
        };
        let to = slot(it.slot + 16);
        let holder = booked.get(&s).map(|b| b.0.clone());
        records.push(Record::Invoke(Invoke {
            slot: matches!(
                f,
                OpKind::Book
                    | OpKind::Cancel
                    | OpKind::Availability
                    | OpKind::Waitlist
                    | OpKind::Reschedule
            )
            .then_some(s),
            target: holder
                .clone()
                .filter(|_| matches!(f, OpKind::Cancel | OpKind::Reschedule)),
            to: (f == OpKind::Reschedule).then_some(to),
            trace: (f == OpKind::Book).then(|| trace_of(op)),
            ..Invoke::new(op, (n % 16) as u32, f, t, t)
        }));
        let done = t + u64::from(it.latency_us);
        // The stubs hear of what the op caused a millisecond after its answer.
        let heard_ms = T0_MS + done / 1000 + 1;
        let answer = |status: u16, appointment: Option<String>| Completion {
            op,
            time_us: done,
            status: Some(status),
            appointment,
            error: None,
            ..Completion::default()
        };
        let record = match f {
            OpKind::Book if booked.contains_key(&s) => Record::Fail(answer(409, None)),
            OpKind::Book => {
                let id = format!("a-{op}");
                let fate = it.fate % 5;
                if fate <= 2 {
                    booked.insert(s, (id.clone(), op, (fate <= 1).then_some(done)));
                    applied.insert(op, id.clone());
                    let rows = ev.appointments.as_mut().expect("set above");
                    rows.push(AppointmentRow {
                        id: id.clone(),
                        patient: (n % 64) as u32,
                        slot: s,
                        status: "booked".into(),
                        version: None,
                    });
                    for (stub, mut c) in [
                        ("twilio", sms(seq, &id)),
                        ("sendgrid", email(seq + 1, &id)),
                        ("ehr", ehr(seq + 2, &id)),
                    ] {
                        c.at_ms = heard_ms;
                        c.trace = Some(trace_of(op));
                        ev.stub_calls.get_mut(stub).expect("set above").push(c);
                    }
                    seq += 3;
                }
                match fate {
                    0 | 1 => {
                        acknowledged.push(op);
                        Record::Ok(answer(201, Some(id)))
                    }
                    2 | 3 => Record::Info(Completion {
                        status: None,
                        error: Some("timeout".into()),
                        ..answer(0, None)
                    }),
                    _ => Record::Fail(Completion {
                        retry_after: Some(1),
                        ..answer(503, None)
                    }),
                }
            }
            OpKind::Cancel => {
                let (id, booking, _) = booked.remove(&s).expect("cancellable");
                let rows = ev.appointments.as_mut().expect("set above");
                for r in rows.iter_mut().filter(|r| r.id == id) {
                    r.status = "cancelled".into();
                }
                let mut update = ehr(seq, &id);
                update.body["status"] = "cancelled".into();
                update.status = Some(200);
                update.at_ms = heard_ms;
                ev.stub_calls
                    .get_mut("ehr")
                    .expect("set above")
                    .push(update);
                seq += 1;
                cancelled.push(booking);
                let promoted = promote(&mut waiting, &mut booked, &mut ev, &mut seq, s, op, done);
                Record::Ok(Completion {
                    promoted,
                    ..answer(200, Some(id))
                })
            }
            OpKind::Waitlist => {
                let held = booked.contains_key(&s);
                match it.fate % 5 {
                    _ if !held => Record::Fail(Completion {
                        error: Some("slot_free".into()),
                        ..answer(409, None)
                    }),
                    4 => Record::Fail(Completion {
                        retry_after: Some(1),
                        ..answer(503, None)
                    }),
                    fate => {
                        if fate != 3 {
                            *waiting.entry(s).or_default() += 1;
                        }
                        if fate <= 1 {
                            Record::Ok(answer(201, None))
                        } else {
                            Record::Info(Completion {
                                status: None,
                                error: Some("timeout".into()),
                                ..answer(0, None)
                            })
                        }
                    }
                }
            }
            OpKind::Reschedule if booked.contains_key(&to) => Record::Fail(Completion {
                error: Some("slot_taken".into()),
                ..answer(409, None)
            }),
            OpKind::Reschedule => match it.fate % 5 {
                4 => Record::Fail(Completion {
                    retry_after: Some(1),
                    ..answer(503, None)
                }),
                fate => {
                    let mut promoted = None;
                    if fate != 3 {
                        let (id, booking, acked) = booked.remove(&s).expect("movable");
                        let rows = ev.appointments.as_mut().expect("set above");
                        for r in rows.iter_mut().filter(|r| r.id == id) {
                            r.slot = to;
                        }
                        booked.insert(to, (id, booking, acked));
                        retired.insert(s);
                        promoted =
                            promote(&mut waiting, &mut booked, &mut ev, &mut seq, s, op, done);
                    }
                    if fate <= 1 {
                        Record::Ok(Completion {
                            promoted,
                            ..answer(200, holder.clone())
                        })
                    } else {
                        Record::Info(Completion {
                            status: None,
                            error: Some("timeout".into()),
                            ..answer(0, None)
                        })
                    }
                }
            },
            OpKind::Availability => Record::Ok(Completion {
                free: Some(free_of(&booked, s, universe)),
                ..answer(200, None)
            }),
            OpKind::Forged => Record::Fail(answer(401, None)),
            OpKind::Login | OpKind::Readiness => Record::Ok(answer(200, None)),
            OpKind::ScheduleChange => unreachable!("schedule changes are not generated"),
        };
        records.push(record);
        t += u64::from(it.gap_us);
    }
    World {
        history: History::new(records),
        evidence: ev,
        applied,
        acknowledged,
        cancelled,
        universe,
    }
}

/// Book the first patient waiting for `s`, just freed by op `op`: the new appointment's id
/// (its row, confirmations and EHR resource are the system's), known to the op's client when
/// its answer comes at `done`.
fn promote(
    waiting: &mut BTreeMap<Slot, u32>,
    booked: &mut BTreeMap<Slot, (String, u64, Option<u64>)>,
    ev: &mut Evidence,
    seq: &mut u64,
    s: Slot,
    op: u64,
    done: u64,
) -> Option<String> {
    let w = waiting.get_mut(&s).filter(|w| **w > 0)?;
    *w -= 1;
    let id = format!("p-{op}");
    ev.appointments
        .as_mut()
        .expect("set above")
        .push(AppointmentRow {
            id: id.clone(),
            patient: 1000 + (op % 64) as u32,
            slot: s,
            status: "booked".into(),
            version: None,
        });
    for (stub, c) in [
        ("twilio", sms(*seq, &id)),
        ("sendgrid", email(*seq + 1, &id)),
        ("ehr", ehr(*seq + 2, &id)),
    ] {
        ev.stub_calls.get_mut(stub).expect("set above").push(c);
    }
    *seq += 3;
    booked.insert(s, (id.clone(), op, Some(done)));
    Some(id)
}

const DAY: i64 = 86_400;

/// The free slots of `s`'s provider on `s`'s UTC day, among the first `universe` slots.
fn free_of(
    booked: &BTreeMap<Slot, (String, u64, Option<u64>)>,
    s: Slot,
    universe: u32,
) -> Vec<i64> {
    let day = s.start.div_euclid(DAY) * DAY;
    let lo = Slot {
        provider: s.provider,
        start: day,
    };
    let hi = Slot {
        provider: s.provider,
        start: day + DAY,
    };
    free_among(booked.range(lo..hi).map(|(s, _)| s.start), s, universe)
}

/// What a read of `s`'s provider and day would list at the end of the world: the slots no
/// live row holds.
pub fn free_at_end(w: &World, s: Slot) -> Vec<i64> {
    let day = s.start.div_euclid(DAY) * DAY;
    let mut held: Vec<i64> = w
        .evidence
        .appointments
        .iter()
        .flatten()
        .filter(|r| r.status == "booked" && r.slot.provider == s.provider)
        .map(|r| r.slot.start)
        .filter(|t| (day..day + DAY).contains(t))
        .collect();
    held.sort_unstable();
    free_among(held.into_iter(), s, w.universe)
}

fn free_among(held: impl Iterator<Item = i64>, s: Slot, universe: u32) -> Vec<i64> {
    let day = s.start.div_euclid(DAY) * DAY;
    let mut held = held.peekable();
    let first = slot(s.provider - 1).start;
    let mut out = Vec::new();
    // Slot i of the provider is index 16 i + provider - 1, starting at first + 1800 i.
    let from = (day - first).max(0).div_euclid(1800) + i64::from((day - first).max(0) % 1800 != 0);
    let mut k = from;
    loop {
        let start = first + k * 1800;
        let index = 16 * k + i64::from(s.provider) - 1;
        if start >= day + DAY || index >= i64::from(universe) {
            break;
        }
        while held.next_if(|&h| h < start).is_some() {}
        if held.peek() != Some(&start) {
            out.push(start);
        }
        k += 1;
    }
    out
}

/// A tiny deterministic generator (SplitMix64) for the benchmark's large worlds.
pub struct SplitMix(pub u64);

impl SplitMix {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// `n` intents drawn from a seed: mostly bookings and reads over `slots` slots.
pub fn intents(seed: u64, n: usize, slots: u32) -> Vec<Intent> {
    let mut r = SplitMix(seed);
    (0..n)
        .map(|_| {
            let x = r.next();
            Intent {
                kind: [0, 0, 0, 1, 1, 2, 3, 1][(x & 7) as usize],
                slot: ((x >> 8) % u64::from(slots)) as u32,
                fate: ((x >> 16) % 5) as u8,
                gap_us: 10_000,
                latency_us: 1_000 + ((x >> 24) % 20_000) as u16,
            }
        })
        .collect()
}
