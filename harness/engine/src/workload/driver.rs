//! The open-loop driver: sends each planned op at its due time whether or not earlier ops
//! have finished, and records invoke then ok | fail | info for each.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use chaos_model::{Completion, Invoke, OpKind, Outcome, Record, Slot};
use serde_json::Value;
use tokio::sync::{Mutex, Semaphore};
use tokio::task::JoinSet;

use super::client::{Reply, TargetClient};
use super::plan::Planned;
use crate::history::Recorder;

/// Ops in flight at once. Past it, new ops wait; their latency still counts from their due
/// time, so a saturated harness shows up as latency instead of hiding it.
const MAX_IN_FLIGHT: usize = 4096;

struct Shared {
    client: TargetClient,
    rec: Recorder,
    next_op: AtomicU64,
    /// One session token per process (client).
    sessions: Vec<Mutex<Option<String>>>,
    /// Per process, its acknowledged appointments not yet cancelled, oldest first.
    booked: Vec<Mutex<std::collections::VecDeque<(String, Slot)>>>,
}

/// Run the plan to its end and wait for every op to complete.
pub async fn drive(plan: Vec<Planned>, client: TargetClient, rec: Recorder, clients: u32) {
    let shared = Arc::new(Shared {
        client,
        rec,
        next_op: AtomicU64::new(1),
        sessions: (0..clients).map(|_| Mutex::new(None)).collect(),
        booked: (0..clients).map(|_| Mutex::default()).collect(),
    });
    let clock = shared.rec.clock();
    let permits = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let mut tasks = JoinSet::new();
    for p in plan {
        tokio::time::sleep_until(clock.at(p.due_us)).await;
        let permit = Arc::clone(&permits)
            .acquire_owned()
            .await
            .expect("semaphore is never closed");
        let s = Arc::clone(&shared);
        tasks.spawn(async move {
            run_op(&s, &p).await;
            drop(permit);
        });
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
}

async fn run_op(s: &Shared, p: &Planned) {
    if matches!(p.f, OpKind::Forged | OpKind::Readiness) {
        let id = s.next_op.fetch_add(1, Ordering::Relaxed);
        invoke(s, id, p, p.f, None);
        let reply = if p.f == OpKind::Forged {
            s.client.forged(p.process, id).await
        } else {
            s.client.readiness(p.process).await
        };
        finish(s, id, p.f, reply, None);
        return;
    }
    // A cancellation needs an appointment of this client's to cancel; without one it is
    // not sent (and not recorded).
    let target = if p.f == OpKind::Cancel {
        match s.booked[p.process as usize].lock().await.pop_front() {
            Some(t) => Some(t),
            None => return,
        }
    } else {
        None
    };
    let token = {
        let mut session = s.sessions[p.process as usize].lock().await;
        if session.is_none() {
            *session = login(s, p).await;
        }
        session.clone()
    };
    let id = s.next_op.fetch_add(1, Ordering::Relaxed);
    let slot = Some(target.as_ref().map_or(p.slot, |t| t.1));
    invoke(s, id, p, p.f, slot);
    let Some(token) = token else {
        complete(
            s,
            id,
            Outcome::Fail,
            None,
            None,
            Some("no session: login failed".into()),
        );
        return;
    };
    let reply = match p.f {
        OpKind::Book => {
            s.client
                .book(p.process, &token, p.slot, p.key.as_deref())
                .await
        }
        OpKind::Availability => s.client.availability(p.process, &token, p.slot).await,
        OpKind::Cancel => {
            let (appointment, _) = target.as_ref().expect("a cancel has its target");
            s.client.cancel(p.process, &token, appointment).await
        }
        OpKind::Login | OpKind::Forged | OpKind::Readiness => {
            unreachable!("logins happen on demand; session-less ops return above")
        }
    };
    if matches!(reply, Reply::Answer { status: 401, .. }) {
        // The session is gone (e.g. Redis lost it): log in again on the next op.
        *s.sessions[p.process as usize].lock().await = None;
    }
    let named = finish(s, id, p.f, reply, target.as_ref().map(|t| t.0.as_str()));
    if p.f == OpKind::Book {
        remember(s, p, named).await;
    }
    if p.resubmit {
        // The same request again, as a client that did not trust the first answer sends it.
        let again = Planned {
            due_us: s.rec.clock().now_us(),
            resubmit: false,
            ..p.clone()
        };
        let id = s.next_op.fetch_add(1, Ordering::Relaxed);
        invoke(s, id, &again, OpKind::Book, Some(again.slot));
        let reply = s
            .client
            .book(again.process, &token, again.slot, again.key.as_deref())
            .await;
        let named = finish(s, id, OpKind::Book, reply, None);
        remember(s, &again, named).await;
    }
}

/// Keep an acknowledged appointment for the client's later cancellations.
async fn remember(s: &Shared, p: &Planned, appointment: Option<String>) {
    if let Some(a) = appointment {
        let mut booked = s.booked[p.process as usize].lock().await;
        if !booked.iter().any(|(b, _)| *b == a) {
            booked.push_back((a, p.slot));
        }
    }
}

async fn login(s: &Shared, p: &Planned) -> Option<String> {
    let id = s.next_op.fetch_add(1, Ordering::Relaxed);
    invoke(s, id, p, OpKind::Login, None);
    let reply = s.client.login(p.process, p.process + 1).await;
    let token = match &reply {
        Reply::Answer { status: 201, body } => body["token"].as_str().map(str::to_string),
        _ => None,
    };
    finish(s, id, OpKind::Login, reply, None);
    token
}

fn invoke(s: &Shared, op: u64, p: &Planned, f: OpKind, slot: Option<Slot>) {
    let time_us = s.rec.clock().now_us();
    s.rec.record(Record::Invoke(Invoke {
        op,
        process: p.process,
        f,
        slot,
        due_us: p.due_us,
        time_us,
        key: if f == OpKind::Book {
            p.key.clone()
        } else {
            None
        },
    }));
}

/// Map a reply to an outcome. A write whose answer was lost, or that failed on the server
/// side, may have taken effect: `info`. Reads and refused connections change nothing: `fail`.
/// Returns the appointment an `ok` names: the one booked, or `target`, the one cancelled.
fn finish(s: &Shared, op: u64, f: OpKind, reply: Reply, target: Option<&str>) -> Option<String> {
    let writes = matches!(f, OpKind::Book | OpKind::Login | OpKind::Cancel);
    match reply {
        Reply::Answer { status, body } => {
            let outcome = match status {
                200..=299 => Outcome::Ok,
                500..=599 if writes => Outcome::Info,
                _ => Outcome::Fail,
            };
            let appointment = match (f, outcome) {
                (OpKind::Book, Outcome::Ok) => body["id"].as_str().map(str::to_string),
                (OpKind::Cancel, Outcome::Ok) => target.map(str::to_string),
                _ => None,
            };
            let error = (outcome != Outcome::Ok).then(|| error_code(&body));
            complete(s, op, outcome, Some(status), appointment.clone(), error);
            appointment
        }
        Reply::NotSent(e) => {
            let error = Some(format!("not sent: {e}"));
            complete(s, op, Outcome::Fail, None, None, error);
            None
        }
        Reply::Lost(e) => {
            let outcome = if writes { Outcome::Info } else { Outcome::Fail };
            complete(s, op, outcome, None, None, Some(e));
            None
        }
    }
}

fn error_code(body: &Value) -> String {
    body["error"]["code"]
        .as_str()
        .map_or_else(|| body.to_string(), str::to_string)
}

fn complete(
    s: &Shared,
    op: u64,
    outcome: Outcome,
    status: Option<u16>,
    appointment: Option<String>,
    error: Option<String>,
) {
    let c = Completion {
        op,
        time_us: s.rec.clock().now_us(),
        status,
        appointment,
        error,
    };
    s.rec.record(match outcome {
        Outcome::Ok => Record::Ok(c),
        Outcome::Fail => Record::Fail(c),
        Outcome::Info => Record::Info(c),
    });
}
