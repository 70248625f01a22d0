//! Generated worlds for the property tests and the checkers' benchmark: a history, and the
//! evidence a correct system would leave for it, built from a list of intents by a
//! sequential model of MediConnect (one live appointment per slot; every appointment gets
//! its confirmation by SMS and e-mail and one EHR resource). Anomalies are planted on top.

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
"#;

pub fn scenario() -> Scenario {
    Scenario::parse("generated.toml", SCENARIO).expect("the generated scenario parses")
}

/// What one client op tries, and how its answer goes.
#[derive(Debug, Clone, Copy)]
pub struct Intent {
    /// 0 book, 1 availability, 2 login, 3 forged token, 4 cancel the slot's appointment
    /// (when it was acknowledged before this op; otherwise a read).
    pub kind: u8,
    /// Which slot a booking asks for.
    pub slot: u32,
    /// A booking of a free slot: 0 and 1 acknowledged, 2 timed out but applied, 3 timed
    /// out and not applied (both `info`), 4 a 503 (`fail`, not applied).
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
        status,
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
    let mut records = Vec::with_capacity(intents.len() * 2 + 2);
    let mut ev = Evidence {
        appointments: Some(Vec::new()),
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
        let f = match it.kind % 5 {
            0 => OpKind::Book,
            1 => OpKind::Availability,
            2 => OpKind::Login,
            3 => OpKind::Forged,
            _ if cancellable => OpKind::Cancel,
            _ => OpKind::Availability,
        };
        records.push(Record::Invoke(Invoke {
            op,
            process: (n % 16) as u32,
            f,
            slot: matches!(f, OpKind::Book | OpKind::Cancel).then_some(s),
            due_us: t,
            time_us: t,
            key: None,
        }));
        let done = t + u64::from(it.latency_us);
        let answer = |status: u16, appointment: Option<String>| Completion {
            op,
            time_us: done,
            status: Some(status),
            appointment,
            error: None,
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
                    });
                    for (stub, c) in [
                        ("twilio", sms(seq, &id)),
                        ("sendgrid", email(seq + 1, &id)),
                        ("ehr", ehr(seq + 2, &id)),
                    ] {
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
                    _ => Record::Fail(answer(503, None)),
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
                update.status = 200;
                ev.stub_calls
                    .get_mut("ehr")
                    .expect("set above")
                    .push(update);
                seq += 1;
                cancelled.push(booking);
                Record::Ok(answer(200, Some(id)))
            }
            OpKind::Forged => Record::Fail(answer(401, None)),
            OpKind::Availability | OpKind::Login | OpKind::Readiness => {
                Record::Ok(answer(200, None))
            }
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
    }
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
