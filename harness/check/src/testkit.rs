//! Tiny builders of hand-written histories for the checkers' tests.

use chaos_model::{
    AppointmentRow, Completion, Evidence, FaultAction, FaultEvent, History, Invoke, OpKind, Record,
    Slot, StubCall,
};

pub fn history(records: Vec<Record>) -> History {
    History::new(records)
}

fn invoke(op: u64, f: OpKind, slot: Option<Slot>, due_us: u64, time_us: u64) -> Record {
    Record::Invoke(Invoke {
        op,
        process: op as u32,
        f,
        slot,
        due_us,
        time_us,
        key: None,
    })
}

fn completion(op: u64, time_us: u64) -> Completion {
    Completion {
        op,
        time_us,
        status: None,
        appointment: None,
        error: None,
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
        error: None,
    })
}

pub fn inject(time_us: u64) -> Record {
    fault(FaultAction::Inject, time_us)
}

pub fn heal(time_us: u64) -> Record {
    fault(FaultAction::Heal, time_us)
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
        status: 201,
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
        status: 202,
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
    ev
}

pub fn row(id: &str) -> AppointmentRow {
    AppointmentRow {
        id: id.into(),
        patient: 1,
        slot: SLOT,
        status: "booked".into(),
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
