//! Tiny builders of hand-written histories for the checkers' tests.

use std::collections::BTreeMap;

use chaos_model::{
    AppointmentRow, Completion, Drain, Evidence, FaultAction, FaultEvent, History, Invoke,
    MetricSample, OpKind, Outcome, Record, Scenario, Slot, StubCall, WaitlistRow,
};

pub fn history(records: Vec<Record>) -> History {
    History::new(records)
}

fn invoke(op: u64, f: OpKind, slot: Option<Slot>, due_us: u64, time_us: u64) -> Record {
    Record::Invoke(Invoke {
        slot,
        ..Invoke::new(op, op as u32, f, due_us, time_us)
    })
}

fn completion(op: u64, time_us: u64) -> Completion {
    Completion {
        op,
        time_us,
        status: None,
        appointment: None,
        error: None,
        ..Completion::default()
    }
}

/// A booking of `slot`, invoked at time `op` (so op order is time order).
pub fn book(op: u64, slot: Slot) -> Record {
    invoke(op, OpKind::Book, Some(slot), op, op)
}

pub fn booked(op: u64, appointment: &str) -> Record {
    Record::Ok(Completion {
        status: Some(201),
        appointment: Some(appointment.into()),
        ..completion(op, op + 100)
    })
}

pub fn failed(op: u64, status: u16) -> Record {
    Record::Fail(Completion {
        status: Some(status),
        ..completion(op, op + 100)
    })
}

pub fn timed_out(op: u64) -> Record {
    timed_out_at(op, op + 100)
}

pub fn timed_out_at(op: u64, time_us: u64) -> Record {
    Record::Info(Completion {
        error: Some("timeout".into()),
        ..completion(op, time_us)
    })
}

/// A request with a forged token, invoked at time `op`.
pub fn forged(op: u64) -> Record {
    invoke(op, OpKind::Forged, None, op, op)
}

pub fn read_at(op: u64, due_us: u64, time_us: u64) -> Record {
    invoke(op, OpKind::Availability, None, due_us, time_us)
}

pub fn done_at(op: u64, time_us: u64) -> Record {
    Record::Ok(Completion {
        status: Some(200),
        ..completion(op, time_us)
    })
}

fn fault(action: FaultAction, time_us: u64) -> Record {
    Record::Fault(FaultEvent {
        fault: 0,
        name: "kill redis".into(),
        action,
        time_us,
        effective_us: None,
        error: None,
    })
}

pub fn inject(time_us: u64) -> Record {
    fault(FaultAction::Inject, time_us)
}

pub fn heal(time_us: u64) -> Record {
    fault(FaultAction::Heal, time_us)
}

/// An inject that began at `began_us` and was done at `done_us`, as the engine stamps one.
pub fn inject_between(began_us: u64, done_us: u64) -> Record {
    let Record::Fault(f) = fault(FaultAction::Inject, began_us) else {
        unreachable!("fault() makes a fault record")
    };
    Record::Fault(FaultEvent {
        effective_us: Some(done_us),
        ..f
    })
}

pub const SLOT: Slot = Slot {
    provider: 1,
    start: 3600,
};

/// A booking answered 500 that names the appointment anyway (recorded as info).
pub fn server_error(op: u64, appointment: &str) -> Record {
    Record::Info(Completion {
        status: Some(500),
        appointment: Some(appointment.into()),
        ..completion(op, op + 100)
    })
}

pub fn sms(appointment: &str, kind: &str, seq: u64) -> StubCall {
    StubCall {
        seq,
        at_ms: seq,
        method: "POST".into(),
        path: "/2010-04-01/Accounts/AC/Messages.json".into(),
        idempotency_key: None,
        body: serde_json::json!({ "To": "+1555", "Body": format!("MediConnect: soon. Ref {appointment}/{kind}") }),
        status: Some(201),
        ..StubCall::default()
    }
}

pub fn email(appointment: &str, kind: &str, seq: u64) -> StubCall {
    StubCall {
        seq,
        at_ms: seq,
        method: "POST".into(),
        path: "/v3/mail/send".into(),
        idempotency_key: None,
        body: serde_json::json!({ "custom_args": { "appointment_id": appointment, "kind": kind } }),
        status: Some(202),
        ..StubCall::default()
    }
}

/// Evidence with these calls split into the twilio and sendgrid logs by their path.
pub fn stubs(calls: &[StubCall]) -> Evidence {
    let mut ev = Evidence::default();
    for c in calls {
        let stub = if c.path.contains("Messages") {
            "twilio"
        } else {
            "sendgrid"
        };
        ev.stub_calls
            .entry(stub.to_string())
            .or_default()
            .push(c.clone());
    }
    ev.stub_calls.entry("twilio".into()).or_default();
    ev.stub_calls.entry("sendgrid".into()).or_default();
    ev.drain = Some(drain(true));
    ev
}

pub fn row(id: &str) -> AppointmentRow {
    AppointmentRow {
        id: id.into(),
        patient: 1,
        slot: SLOT,
        status: "booked".into(),
        version: None,
    }
}

/// A cancellation by op `op` (invoked at time `op`), sent by the client of booking op
/// `booking`, of its appointment `id` of `SLOT`: acknowledged (200, naming it) or unanswered.
pub fn cancel(op: u64, booking: u64, id: &str, acknowledged: bool) -> [Record; 2] {
    let done = if acknowledged {
        Record::Ok(Completion {
            status: Some(200),
            appointment: Some(id.into()),
            ..completion(op, op + 100)
        })
    } else {
        timed_out(op)
    };
    let mut sent = invoke(op, OpKind::Cancel, Some(SLOT), op, op);
    if let Record::Invoke(i) = &mut sent {
        i.process = booking as u32;
    }
    [sent, done]
}

/// An invocation of `f` by op `op` at `time_us` (due then too), from process `op`.
pub fn invoked(op: u64, f: OpKind, time_us: u64) -> Record {
    invoke(op, f, None, time_us, time_us)
}

/// The invocation `r` with some of its fields set.
pub fn edit(mut r: Record, f: impl FnOnce(&mut Invoke)) -> Record {
    match &mut r {
        Record::Invoke(i) => f(i),
        other => panic!("edit needs an invocation, got {other:?}"),
    }
    r
}

/// The completion of op `op` at `time_us`, with this outcome and status.
pub fn ended(op: u64, outcome: Outcome, time_us: u64, status: Option<u16>) -> Record {
    let c = Completion {
        status,
        ..completion(op, time_us)
    };
    match outcome {
        Outcome::Ok => Record::Ok(c),
        Outcome::Fail => Record::Fail(c),
        Outcome::Info => Record::Info(c),
    }
}

/// The completion `r` with some of its fields set.
pub fn amend(mut r: Record, f: impl FnOnce(&mut Completion)) -> Record {
    match &mut r {
        Record::Ok(c) | Record::Fail(c) | Record::Info(c) => f(c),
        other => panic!("amend needs a completion, got {other:?}"),
    }
    r
}

/// The call `c`, arrived at `at_ms` (Unix ms) and carrying `trace`.
pub fn arrived(mut c: StubCall, at_ms: u64, trace: Option<&str>) -> StubCall {
    c.at_ms = at_ms;
    c.trace = trace.map(str::to_string);
    c
}

/// A FHIR push of appointment `id` to the EHR stub, answered `status`.
pub fn ehr_push(seq: u64, method: &str, id: &str, status: u16, fhir_status: &str) -> StubCall {
    StubCall {
        seq,
        at_ms: seq,
        method: method.into(),
        path: format!("/fhir/Appointment/{id}"),
        idempotency_key: None,
        body: serde_json::json!({ "resourceType": "Appointment", "status": fhir_status,
                                  "identifier": [{ "value": id }] }),
        status: Some(status),
        ..StubCall::default()
    }
}

/// How the quiesce phase ended: drained, or with work in flight.
pub fn drain(drained: bool) -> Drain {
    Drain {
        drained,
        waited_ms: 1_000,
        outbox: Some(if drained { 0 } else { 2 }),
        queued: Some(if drained { 0 } else { 1 }),
        stubs_idle_ms: Some(if drained { 1_000 } else { 10 }),
    }
}

/// One reading of one replica's gauges at `time_us`.
pub fn sample(time_us: u64, replica: u32, gauges: &[(&str, f64)]) -> MetricSample {
    MetricSample {
        time_us,
        replica,
        answered: true,
        gauges: gauges
            .iter()
            .map(|(n, v)| ((*n).to_string(), *v))
            .collect::<BTreeMap<_, _>>(),
    }
}

/// A reading of a replica that did not answer `/metrics` (killed, paused).
pub fn unanswered(time_us: u64, replica: u32) -> MetricSample {
    MetricSample {
        answered: false,
        ..sample(time_us, replica, &[])
    }
}

/// A waitlist row of `slot`: `waiting`, or `booked` into `appointment`.
pub fn waiting(id: i64, slot: Slot, appointment: Option<&str>) -> WaitlistRow {
    WaitlistRow {
        id,
        patient: 100 + id as u32,
        slot,
        status: if appointment.is_some() {
            "booked"
        } else {
            "waiting"
        }
        .into(),
        appointment: appointment.map(str::to_string),
    }
}

/// A live appointment row of `slot`.
pub fn row_at(id: &str, slot: Slot) -> AppointmentRow {
    AppointmentRow { slot, ..row(id) }
}

/// A 10 s scenario polling reminders every 100 ms, with a Redis kill from 2 s to 4 s when
/// `faults`; every op kind in its mix.
pub fn scenario(faults: bool) -> Scenario {
    let faults = if faults {
        "[[faults]]\nat = \"2s\"\nkill = \"redis\"\nrestart_after = \"2s\"\n"
    } else {
        ""
    };
    let text = format!(
        "name = \"t\"\n[options]\nreminder_poll = \"100ms\"\n[workload]\nduration = \"10s\"\nrate = 10\nclients = 2\n\
         mix = {{ book = 1, readiness = 1, waitlist = 1, reschedule = 1, cancel = 1 }}\n\
         {faults}[invariants]\nno_double_booking = {{}}\n"
    );
    Scenario::parse("t.toml", &text).expect("the test scenario parses")
}
/// An op of kind `f` on `slot`, invoked at time `op` by process `op`.
pub fn call(op: u64, f: OpKind, slot: Slot) -> Invoke {
    Invoke {
        slot: Some(slot),
        ..Invoke::new(op, op as u32, f, op, op)
    }
}

/// A booking of `slot` with an `Idempotency-Key`, invoked at time `op`.
pub fn book_keyed(op: u64, slot: Slot, key: &str) -> Record {
    Record::Invoke(Invoke {
        key: Some(key.into()),
        ..call(op, OpKind::Book, slot)
    })
}

/// A refusal of op `op` at `time_us`, with its error code.
pub fn refused_at(op: u64, status: u16, code: &str, time_us: u64) -> Record {
    Record::Fail(Completion {
        status: Some(status),
        error: Some(code.into()),
        ..completion(op, time_us)
    })
}

/// A refusal of op `op` at time `op + 100`, with its error code.
pub fn refused(op: u64, status: u16, code: &str) -> Record {
    refused_at(op, status, code, op + 100)
}

/// An answer 2xx to op `op` at time `op + 100`.
pub fn answered(op: u64, status: u16) -> Record {
    Record::Ok(Completion {
        status: Some(status),
        ..completion(op, op + 100)
    })
}

/// A cancellation of appointment `id` of `slot`, invoked at time `op`.
pub fn cancel_of(op: u64, slot: Slot, id: &str) -> Record {
    Record::Invoke(Invoke {
        target: Some(id.into()),
        ..call(op, OpKind::Cancel, slot)
    })
}

/// The acknowledgement of cancellation `op` of `id`, naming the waitlist promotion if any.
pub fn cancelled(op: u64, id: &str, promoted: Option<&str>) -> Record {
    Record::Ok(Completion {
        status: Some(200),
        appointment: Some(id.into()),
        promoted: promoted.map(Into::into),
        ..completion(op, op + 100)
    })
}

/// A move of appointment `id` from `from` to `to`, invoked at time `op`.
pub fn reschedule(op: u64, id: &str, from: Slot, to: Slot) -> Record {
    Record::Invoke(Invoke {
        target: Some(id.into()),
        to: Some(to),
        ..call(op, OpKind::Reschedule, from)
    })
}

/// A join of `slot`'s waitlist, invoked at time `op`.
pub fn waitlist(op: u64, slot: Slot) -> Record {
    Record::Invoke(call(op, OpKind::Waitlist, slot))
}

/// A read of the free slots of `slot`'s provider and day, invoked at time `op`.
pub fn availability(op: u64, slot: Slot) -> Record {
    Record::Invoke(call(op, OpKind::Availability, slot))
}

/// The answer to read `op` at time `op + 100`, listing these slot starts free.
pub fn listed(op: u64, free: &[i64]) -> Record {
    Record::Ok(Completion {
        status: Some(200),
        free: Some(free.to_vec()),
        ..completion(op, op + 100)
    })
}

/// Evidence holding these appointment rows (id, slot, status).
pub fn rows_of(rows: &[(&str, Slot, &str)]) -> Evidence {
    Evidence {
        appointments: Some(
            rows.iter()
                .map(|(id, slot, status)| AppointmentRow {
                    slot: *slot,
                    status: status.to_string(),
                    ..row(id)
                })
                .collect(),
        ),
        ..Evidence::default()
    }
}
