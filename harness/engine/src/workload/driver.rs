//! The open-loop driver: sends each planned op at its due time whether or not earlier ops
//! have finished, tries it again as the retry policy says, and records invoke then
//! ok | fail | info for each try under the op id the plan fixed for it.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use chaos_model::{
    Completion, Invoke, OP_STRIDE, OpKind, Outcome, PART_LOGIN, PART_RESUBMIT, Record, Retry, Slot,
    Workload, op_id,
};
use serde_json::Value;
use tokio::sync::{Mutex, OwnedSemaphorePermit, Semaphore};

use super::calendar::NARROW_HOURS;
use super::client::{Reply, Request, TargetClient};
use super::plan::{Move, Planned, PlannedOp, traceparent};
use super::retry::{Tried, replica_of, retry_wait, try_op};
use crate::history::Recorder;

/// Requests in flight at once. Past it, new ops wait; their latency still counts from their
/// due time, so a saturated harness shows up as latency instead of hiding it. An op waiting
/// out a retry's backoff holds none.
pub(crate) const MAX_IN_FLIGHT: usize = 4096;

/// A session token, and the login op that got it.
#[derive(Debug, Clone)]
struct Session {
    token: String,
    login: u64,
}

#[derive(Default)]
struct Appointments {
    /// Acknowledged and not cancelled by this client, oldest first, where it last moved them.
    list: VecDeque<(String, Slot)>,
    /// Reschedule burst -> the appointment all its reschedules move (none: the client had
    /// none), and how many of the burst have not yet asked.
    bursts: BTreeMap<u64, (Option<(String, Slot)>, usize)>,
}

/// What one client (patient) knows.
#[derive(Default)]
struct Client {
    session: Mutex<Option<Session>>,
    appointments: Mutex<Appointments>,
}

struct Shared {
    client: TargetClient,
    rec: Recorder,
    clients: Vec<Client>,
    retry: Option<Retry>,
    providers: u32,
    replicas: u32,
    permits: Arc<Semaphore>,
}

/// Run the plan of `workload` to its end and wait for every op, retries included.
///
/// The ops are dispatched from a thread of their own that sleeps precisely (zero timer
/// slack) until each op is due and spawns it on the runtime: one wake-up between a due time
/// and its request, where a task woken by a timer thread would take two, and no timer lock
/// per op at high rates. Dropping the future (a cancelled run) aborts every op and stops the
/// thread.
pub async fn drive(plan: Vec<Planned>, client: TargetClient, rec: Recorder, workload: Workload) {
    let shared = Arc::new(Shared {
        replicas: client.replicas(),
        client,
        rec,
        clients: (0..workload.clients).map(|_| Client::default()).collect(),
        retry: workload.retry.clone(),
        providers: workload.providers,
        permits: Arc::new(Semaphore::new(MAX_IN_FLIGHT)),
    });
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Dispatched>();
    let handle = tokio::runtime::Handle::current();
    std::thread::Builder::new()
        .name("chaos-dispatch".into())
        .spawn(move || {
            // A panic here is a harness bug like one in an op's task: it goes on to the
            // caller, never cuts the history short in silence.
            let run = std::panic::AssertUnwindSafe(|| dispatch(plan, &shared, &handle, &tx));
            if let Err(panic) = std::panic::catch_unwind(run) {
                let _ = tx.send(Dispatched::Panicked(panic));
            }
        })
        .expect("the dispatcher thread starts");
    let mut running = futures_util::stream::FuturesUnordered::new();
    let mut planning = true;
    while planning || !running.is_empty() {
        tokio::select! {
            t = rx.recv(), if planning => match t {
                Some(Dispatched::Op(t)) => running.push(t),
                Some(Dispatched::Panicked(panic)) => std::panic::resume_unwind(panic),
                None => planning = false,
            },
            Some(r) = futures_util::StreamExt::next(&mut running) => rethrow(r),
        }
    }
}

/// What the dispatcher thread hands the driver.
enum Dispatched {
    Op(OpTask),
    Panicked(Box<dyn std::any::Any + Send>),
}

/// The dispatcher thread's loop: each op at its due time, while the driver still listens.
fn dispatch(
    plan: Vec<Planned>,
    shared: &Arc<Shared>,
    handle: &tokio::runtime::Handle,
    tx: &tokio::sync::mpsc::UnboundedSender<Dispatched>,
) {
    // Zero slack: the kernel may otherwise defer this thread's wake-ups by 50 us.
    let _ = nix::sys::prctl::set_timerslack(1);
    let clock = shared.rec.clock();
    for p in plan {
        let due = clock.at(p.due_us).into_std();
        loop {
            if tx.is_closed() {
                return; // the run was cancelled
            }
            match due.checked_duration_since(std::time::Instant::now()) {
                // Long waits in slices, so that a cancelled run stops this thread soon.
                Some(wait) if !wait.is_zero() => std::thread::sleep(wait.min(CANCEL_CHECK)),
                _ => break,
            }
        }
        let permit = match Arc::clone(&shared.permits).try_acquire_owned() {
            Ok(p) => p,
            // Every permit is held: wait for one, or for the run to be cancelled.
            Err(_) => match handle.block_on(async {
                tokio::select! {
                    p = acquire(shared) => Some(p),
                    () = tx.closed() => None,
                }
            }) {
                Some(p) => p,
                None => return,
            },
        };
        if tx.is_closed() {
            return;
        }
        let s = Arc::clone(shared);
        let task = OpTask(handle.spawn(async move { run_op(&s, &p, permit).await }));
        if tx.send(Dispatched::Op(task)).is_err() {
            return;
        }
    }
}

/// How long the dispatcher sleeps at most before it looks whether the run was cancelled.
const CANCEL_CHECK: std::time::Duration = std::time::Duration::from_millis(20);

/// One op's task, aborted when dropped (a cancelled run leaves no op running).
struct OpTask(tokio::task::JoinHandle<()>);

impl std::future::Future for OpTask {
    type Output = Result<(), tokio::task::JoinError>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        std::pin::Pin::new(&mut self.0).poll(cx)
    }
}

impl Drop for OpTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A panic in an op's task is a harness bug: it goes on to the caller.
fn rethrow(r: Result<(), tokio::task::JoinError>) {
    if let Err(e) = r
        && e.is_panic()
    {
        std::panic::resume_unwind(e.into_panic());
    }
}

async fn acquire(s: &Shared) -> OwnedSemaphorePermit {
    Arc::clone(&s.permits)
        .acquire_owned()
        .await
        .expect("the semaphore is never closed")
}

/// The optional fields of an op's invokes.
#[derive(Debug, Clone, Default)]
struct Fields {
    slot: Option<Slot>,
    key: Option<String>,
    target: Option<String>,
    to: Option<Slot>,
    hours: Option<[u32; 2]>,
}

/// One request of an op as recorded in its invoke.
struct Attempt {
    op: u64,
    due_us: u64,
    /// 1-based.
    replica: Option<u32>,
    session: Option<u64>,
    try_no: u32,
}

async fn run_op(s: &Shared, p: &Planned, mut permit: OwnedSemaphorePermit) {
    let me = &s.clients[p.process as usize];
    let kind = p.op.kind();
    let mut f = Fields::default();
    let req = match &p.op {
        PlannedOp::Book { slot, key, .. } => {
            f.slot = Some(*slot);
            f.key.clone_from(key);
            Request::Book {
                slot: *slot,
                key: key.clone(),
            }
        }
        PlannedOp::Availability { slot } => {
            f.slot = Some(*slot);
            Request::Availability { slot: *slot }
        }
        PlannedOp::Forged => Request::Forged {
            token: format!("forged-{}", try_op(p.index, 1)),
        },
        PlannedOp::Readiness => Request::Readiness,
        PlannedOp::Cancel => {
            // A cancellation needs an appointment of this client's; without one it is not
            // sent (and not recorded).
            let Some((id, slot)) = me.appointments.lock().await.list.pop_front() else {
                return;
            };
            f.slot = Some(slot);
            f.target = Some(id.clone());
            Request::Cancel { appointment: id }
        }
        PlannedOp::Reschedule(m) => {
            let Some((id, from)) = burst_target(me, m).await else {
                return;
            };
            let to = m.destination(from, s.providers);
            f.slot = Some(from);
            f.target = Some(id.clone());
            f.to = Some(to);
            Request::Reschedule {
                appointment: id,
                start: to.start,
            }
        }
        PlannedOp::Waitlist { slot } => {
            f.slot = Some(*slot);
            Request::Waitlist { slot: *slot }
        }
        PlannedOp::ScheduleChange { provider } => {
            f.slot = Some(Slot {
                provider: *provider,
                start: 0,
            });
            f.hours = Some(NARROW_HOURS);
            Request::ScheduleChange {
                provider: *provider,
                hours: NARROW_HOURS,
            }
        }
        PlannedOp::Login => Request::Login {
            patient: p.process + 1,
        },
    };
    let session = if req.needs_session() {
        let session = {
            let mut current = me.session.lock().await;
            if current.is_none() {
                *current = login(s, p).await;
            }
            current.clone()
        };
        let Some(session) = session else {
            let op = try_op(p.index, 1);
            let a = Attempt {
                op,
                due_us: p.due_us,
                replica: None,
                session: None,
                try_no: 1,
            };
            invoke(s, p, kind, &f, &a);
            let error = Some("no session: login failed".to_string());
            complete(
                s,
                op,
                Outcome::Fail,
                Completion {
                    error,
                    ..Completion::default()
                },
            );
            return;
        };
        Some(session)
    } else {
        None
    };
    let token = session.as_ref().map(|x| x.token.as_str());
    let login = session.as_ref().map(|x| x.login);

    let clock = s.rec.clock();
    let mut due_us = p.due_us;
    let mut try_no = 1;
    // Whether every try so far certainly did not take effect.
    let mut all_failed = true;
    loop {
        let replica = replica_of(p.process, try_no, s.replicas);
        let a = Attempt {
            op: try_op(p.index, try_no),
            due_us,
            replica: Some(replica + 1),
            session: login,
            try_no,
        };
        invoke(s, p, kind, &f, &a);
        let tp = traceparent(p.trace, a.op % OP_STRIDE);
        let reply = s.client.send(replica, token, &tp, &req).await;
        let done = finish(s, a.op, kind, reply, f.target.as_deref());
        let next = retry_wait(s.retry.as_ref(), kind, done.tried, try_no);
        all_failed &= done.tried.outcome == Outcome::Fail;
        learn(me, p, &f, login, &done, next.is_none() && all_failed).await;
        let Some(wait) = next else {
            break;
        };
        // The next try is due `wait` after this answer; no permit is held meanwhile.
        drop(permit);
        due_us = done.time_us + u64::try_from(wait.as_micros()).unwrap_or(u64::MAX);
        crate::timer::sleep_until(clock.at(due_us)).await;
        permit = acquire(s).await;
        try_no += 1;
    }

    if let PlannedOp::Book { resubmit: true, .. } = p.op {
        // The same request again, as a client that did not trust the first answer sends it.
        let replica = replica_of(p.process, 1, s.replicas);
        let a = Attempt {
            op: op_id(p.index, PART_RESUBMIT),
            due_us: clock.now_us(),
            replica: Some(replica + 1),
            session: login,
            try_no: 1,
        };
        invoke(s, p, kind, &f, &a);
        let tp = traceparent(p.trace, PART_RESUBMIT);
        let reply = s.client.send(replica, token, &tp, &req).await;
        let done = finish(s, a.op, kind, reply, None);
        learn(me, p, &f, login, &done, false).await;
    }
    drop(permit);
}

/// The appointment a reschedule burst moves: the client's newest when the burst's first
/// reschedule asks, the same for every reschedule of the burst.
async fn burst_target(me: &Client, m: &Move) -> Option<(String, Slot)> {
    let mut a = me.appointments.lock().await;
    let newest = a.list.back().cloned();
    let entry = a
        .bursts
        .entry(m.burst)
        .or_insert_with(|| (newest, m.rows.len()));
    let target = entry.0.clone();
    entry.1 -= 1;
    if entry.1 == 0 {
        a.bursts.remove(&m.burst);
    }
    target
}

/// The login a client needs before its first op, and again after its session was lost: part
/// 0 of the op that needed it, sent to the replica that op's first try goes to.
async fn login(s: &Shared, p: &Planned) -> Option<Session> {
    let replica = replica_of(p.process, 1, s.replicas);
    let a = Attempt {
        op: op_id(p.index, PART_LOGIN),
        due_us: p.due_us,
        replica: Some(replica + 1),
        session: None,
        try_no: 1,
    };
    invoke(s, p, OpKind::Login, &Fields::default(), &a);
    let req = Request::Login {
        patient: p.process + 1,
    };
    let tp = traceparent(p.trace, PART_LOGIN);
    let reply = s.client.send(replica, None, &tp, &req).await;
    let done = finish(s, a.op, OpKind::Login, reply, None);
    session_of(&done)
}

/// The session a login's answer gave, if it is one a request can carry (a token that is no
/// header value counts as a failed login, so the client logs in again rather than never
/// sending another request).
fn session_of(done: &Done) -> Option<Session> {
    (done.tried.outcome == Outcome::Ok)
        .then(|| done.body["token"].as_str())
        .flatten()
        .filter(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_graphic()))
        .map(|token| Session {
            token: token.to_string(),
            login: done.op,
        })
}

/// What the client learns from an answer: its appointments, its session. `undone`: this was
/// the op's last try and none of its tries can have taken effect.
async fn learn(
    me: &Client,
    p: &Planned,
    f: &Fields,
    login: Option<u64>,
    done: &Done,
    undone: bool,
) {
    let status = done.tried.status;
    if status == Some(401) && login.is_some() {
        // The session is gone (e.g. Redis lost it): the next op logs in again. A newer
        // session (a login since) is kept.
        let mut current = me.session.lock().await;
        if current.as_ref().map(|x| x.login) == login {
            *current = None;
        }
    }
    let ok = done.tried.outcome == Outcome::Ok;
    match &p.op {
        PlannedOp::Login if ok => {
            if let Some(new) = session_of(done) {
                *me.session.lock().await = Some(new);
            }
        }
        PlannedOp::Book { slot, .. } if ok => {
            if let Some(id) = &done.appointment {
                let mut a = me.appointments.lock().await;
                if !a.list.iter().any(|(b, _)| b == id) {
                    a.list.push_back((id.clone(), *slot));
                }
            }
        }
        PlannedOp::Reschedule(_) if ok => {
            let (Some(id), Some(to)) = (&f.target, f.to) else {
                return;
            };
            let start = done.moved_to.unwrap_or(to.start);
            let mut a = me.appointments.lock().await;
            if let Some(entry) = a.list.iter_mut().find(|(b, _)| b == id) {
                entry.1.start = start;
            }
        }
        // A cancellation that certainly did not happen (refused for now, never sent) leaves
        // the appointment the client's; one that may have happened (info), or was refused
        // because it is gone (404, 409), does not.
        PlannedOp::Cancel if undone && !matches!(status, Some(404 | 409)) => {
            if let (Some(id), Some(slot)) = (&f.target, f.slot) {
                let mut a = me.appointments.lock().await;
                if !a.list.iter().any(|(b, _)| b == id) {
                    a.list.push_front((id.clone(), slot));
                }
            }
        }
        _ => {}
    }
}

fn invoke(s: &Shared, p: &Planned, f: OpKind, fields: &Fields, a: &Attempt) {
    let time_us = s.rec.clock().now_us();
    let login = f == OpKind::Login;
    s.rec.record(Record::Invoke(Invoke {
        slot: fields.slot,
        key: fields.key.clone(),
        target: fields.target.clone(),
        to: fields.to,
        hours: fields.hours,
        replica: a.replica,
        session: if login { None } else { a.session },
        trace: Some(format!("{:032x}", p.trace)),
        attempt: (a.try_no > 1).then_some(a.try_no),
        ..Invoke::new(a.op, p.process, f, a.due_us, time_us)
    }));
}

/// How a try ended, as recorded.
struct Done {
    op: u64,
    time_us: u64,
    tried: Tried,
    body: Value,
    /// The appointment an `ok` names: the one booked, cancelled or moved.
    appointment: Option<String>,
    /// Where an `ok` reschedule's answer says the appointment now starts.
    moved_to: Option<i64>,
}

/// Map a reply to an outcome and record it. A write whose answer was lost, or that failed on
/// the server side, may have taken effect: `info`. Reads and refused connections change
/// nothing: `fail`. `target` is the appointment a cancel or reschedule acted on.
fn finish(s: &Shared, op: u64, f: OpKind, reply: Reply, target: Option<&str>) -> Done {
    let writes = f.writes();
    let mut c = Completion::default();
    let (outcome, body) = match reply {
        Reply::Answer {
            status,
            body,
            retry_after,
        } => {
            let outcome = match status {
                200..=299 => Outcome::Ok,
                500..=599 if writes => Outcome::Info,
                _ => Outcome::Fail,
            };
            c.status = Some(status);
            c.retry_after = retry_after;
            if outcome != Outcome::Ok {
                c.error = Some(error_code(&body));
            }
            (outcome, body)
        }
        Reply::NotSent(e) => {
            c.error = Some(format!("not sent: {e}"));
            (Outcome::Fail, Value::Null)
        }
        Reply::Lost(e) => {
            c.error = Some(e);
            let outcome = if writes { Outcome::Info } else { Outcome::Fail };
            (outcome, Value::Null)
        }
    };
    let mut moved_to = None;
    if outcome == Outcome::Ok {
        let promoted = || {
            body["rebooked_from_waitlist"]["id"]
                .as_str()
                .map(str::to_string)
        };
        match f {
            OpKind::Book => {
                c.appointment = body["id"].as_str().map(str::to_string);
                c.version = version(&body);
            }
            OpKind::Login => {
                c.patient = body["patient_id"]
                    .as_u64()
                    .and_then(|p| u32::try_from(p).ok());
            }
            OpKind::Cancel => {
                c.appointment = target.map(str::to_string);
                c.promoted = promoted();
            }
            OpKind::Reschedule => {
                // The moved appointment, at the top of the answer or under `appointment`.
                let a = if body["appointment"].is_object() {
                    &body["appointment"]
                } else {
                    &body
                };
                c.appointment = a["id"].as_str().or(target).map(str::to_string);
                c.version = version(a);
                c.promoted = promoted();
                moved_to = a["start"].as_i64();
            }
            OpKind::Availability => {
                c.free = body["slots"]
                    .as_array()
                    .map(|a| a.iter().filter_map(Value::as_i64).collect());
            }
            OpKind::Forged | OpKind::Readiness | OpKind::Waitlist | OpKind::ScheduleChange => {}
        }
    }
    let tried = Tried {
        outcome,
        status: c.status,
        retry_after: c.retry_after,
    };
    let appointment = c.appointment.clone();
    let time_us = complete(s, op, outcome, c);
    Done {
        op,
        time_us,
        tried,
        body,
        appointment,
        moved_to,
    }
}

fn version(appointment: &Value) -> Option<u32> {
    appointment["version"]
        .as_u64()
        .and_then(|v| u32::try_from(v).ok())
}

fn error_code(body: &Value) -> String {
    body["error"]["code"]
        .as_str()
        .map_or_else(|| body.to_string(), str::to_string)
}

/// Record the completion of `op`, stamped now; returns the stamp.
fn complete(s: &Shared, op: u64, outcome: Outcome, c: Completion) -> u64 {
    let time_us = s.rec.clock().now_us();
    let c = Completion { op, time_us, ..c };
    s.rec.record(match outcome {
        Outcome::Ok => Record::Ok(c),
        Outcome::Fail => Record::Fail(c),
        Outcome::Info => Record::Info(c),
    });
    time_us
}

#[cfg(test)]
mod tests {
    //! The driver against two scripted replicas on loopback: what it sends, and what it
    //! records, try by try. (The real target is driven in `tests/e2e.rs`.)

    use std::sync::Mutex as StdMutex;
    use std::time::Duration;

    use axum::http::{HeaderMap, Method, StatusCode, Uri};
    use axum::response::{IntoResponse, Response};
    use chaos_model::{Dur, History, Op};
    use serde_json::json;

    use super::*;
    use crate::history::Clock;
    use crate::workload::calendar::slot_start;
    use crate::workload::plan::trace_id;

    /// A request as a replica saw it.
    #[derive(Debug, Clone)]
    struct Seen {
        replica: usize,
        method: String,
        path: String,
        query: String,
        auth: Option<String>,
        key: Option<String>,
        traceparent: Option<String>,
        body: Value,
    }

    type Log = Arc<StdMutex<Vec<Seen>>>;

    /// The day whose availability reads are answered 401 (a lost session).
    const LOST_DAY: &str = "2030-01-08";

    fn answer(s: &Seen, logins: usize) -> Response {
        let j = |status: u16, v: Value| {
            (StatusCode::from_u16(status).unwrap(), axum::Json(v)).into_response()
        };
        let refuse = |status: u16, secs: &'static str| {
            let mut r = j(status, json!({ "error": { "code": "overloaded" } }));
            r.headers_mut().insert("retry-after", secs.parse().unwrap());
            r
        };
        let p = s.path.as_str();
        match (s.method.as_str(), p) {
            ("POST", "/api/v1/sessions") => j(201, json!({ "token": format!("tok-{logins}") })),
            // The first replica sheds bookings; the second books them.
            ("POST", "/api/v1/appointments") if s.replica == 0 => refuse(503, "1"),
            ("POST", "/api/v1/appointments") => j(
                201,
                json!({ "id": "a-1", "start": s.body["start"], "version": 1 }),
            ),
            ("GET", "/api/v1/providers") => refuse(503, "1"),
            ("GET", _) if s.query.contains(LOST_DAY) => {
                j(401, json!({ "error": { "code": "unauthorized" } }))
            }
            ("GET", _) => j(200, json!({ "slots": [1, 2, 3] })),
            ("POST", _) if p.ends_with("/reschedule") => j(
                200,
                json!({ "id": "a-1", "start": s.body["start"], "version": 2 }),
            ),
            ("POST", _) if p.ends_with("/cancel") => j(
                200,
                json!({ "appointment": { "id": "a-1", "version": 3 },
                        "rebooked_from_waitlist": { "id": "w-1", "version": 1 } }),
            ),
            _ => j(404, json!({ "error": { "code": "not_found" } })),
        }
    }

    async fn replica(index: usize, log: Log) -> String {
        let app = axum::Router::new().fallback(
            move |method: Method, uri: Uri, headers: HeaderMap, body: axum::body::Bytes| {
                let log = Arc::clone(&log);
                async move {
                    let h = |n: &str| {
                        headers
                            .get(n)
                            .and_then(|v| v.to_str().ok())
                            .map(str::to_string)
                    };
                    let seen = Seen {
                        replica: index,
                        method: method.to_string(),
                        path: uri.path().to_string(),
                        query: uri.query().unwrap_or_default().to_string(),
                        auth: h("authorization"),
                        key: h("idempotency-key"),
                        traceparent: h("traceparent"),
                        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
                    };
                    let mut l = log.lock().unwrap();
                    let logins = l.iter().filter(|x| x.path == "/api/v1/sessions").count();
                    l.push(seen.clone());
                    answer(&seen, logins)
                }
            },
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        format!("http://{addr}")
    }

    /// One client of one provider for `secs` at `rate`; the plan is given by hand.
    fn workload(secs: u64, rate: f64, retry: Option<Retry>) -> Workload {
        Workload {
            duration: Dur::from_secs(secs),
            rate,
            rate_end: None,
            clients: 1,
            mix: chaos_model::Mix::default(),
            providers: 1,
            hot_slots: None,
            burst: 1,
            op_timeout: Dur::from_secs(2),
            resubmit: 0.0,
            retry,
        }
    }

    fn planned(index: u64, op: PlannedOp) -> Planned {
        Planned {
            index,
            // Far enough apart that each op has its answer before the next is due, and the
            // booking its second try (after a 1s Retry-After) before the ops that use it.
            due_us: index * 150_000 + if index >= 2 { 1_200_000 } else { 0 },
            process: 0,
            trace: trace_id(42, index),
            op,
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_try_is_recorded_under_its_planned_id_with_its_trace_replica_and_session() {
        let log: Log = Arc::default();
        let bases = vec![
            replica(0, Arc::clone(&log)).await,
            replica(1, Arc::clone(&log)).await,
        ];
        let slot = slot_start(0, 1);
        let lost = Slot {
            provider: 1,
            start: slot.start + 86_400,
        };
        let m = Move {
            burst: 2,
            nth: 0,
            hot: None,
            pick: 0,
            rows: vec![3],
        };
        let key = Some("k-0".to_string());
        let book = PlannedOp::Book {
            slot,
            key: key.clone(),
            resubmit: false,
        };
        let ops = vec![
            planned(0, book),
            planned(1, PlannedOp::Availability { slot }),
            planned(2, PlannedOp::Reschedule(m.clone())),
            planned(3, PlannedOp::Cancel),
            // Nothing left to cancel: not sent, not recorded.
            planned(4, PlannedOp::Cancel),
            planned(5, PlannedOp::Forged),
            planned(6, PlannedOp::Login),
            planned(7, PlannedOp::Availability { slot }),
            planned(8, PlannedOp::Availability { slot: lost }),
            planned(9, PlannedOp::ScheduleChange { provider: 1 }),
        ];
        let workload = workload(
            2,
            5.0,
            Some(Retry {
                attempts: 3,
                backoff: Dur::from_millis(10),
                idempotency_key: true,
            }),
        );
        let path =
            std::env::temp_dir().join(format!("chaos-driver-test-{}.jsonl", std::process::id()));
        let (rec, writer) = Recorder::start(&path, Clock::start()).unwrap();
        let client = TargetClient::new(bases, Duration::from_secs(2));
        drive(ops, client, rec, workload).await;
        writer.finish().await.unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        let history = History::from_jsonl(&text).unwrap();
        let ops = history.ops();
        let ids: Vec<u64> = ops.iter().map(|o| o.id).collect();
        // Login 0 first; booking tries 1, 2 (503 then 201); reads, moves and cancels their
        // try 1; cancel 4 skipped; the forged read not retried; the churn login 49, used by
        // op 57; the 401 of 65 drops the session, so op 9 logs in (72) first.
        assert_eq!(ids, [0, 1, 2, 9, 17, 25, 41, 49, 57, 65, 72, 73]);
        let op = |id: u64| -> &Op<'_> { ops.iter().find(|o| o.id == id).unwrap() };
        let trace = |i: u64| format!("{:032x}", trace_id(42, i));

        let (first, second) = (op(1), op(2));
        assert_eq!((first.outcome, first.status), (Outcome::Info, Some(503)));
        assert_eq!(first.retry_after, Some(1));
        assert_eq!((first.replica, second.replica), (Some(1), Some(2)));
        assert_eq!((first.attempt, second.attempt), (1, 2));
        assert_eq!((first.session, second.session), (Some(0), Some(0)));
        assert_eq!(first.trace, Some(trace(0).as_str()));
        assert_eq!(second.trace, first.trace);
        assert_eq!((first.key, second.key), (Some("k-0"), Some("k-0")));
        assert!(
            second.due_us >= first.complete_us.unwrap() + 1_000_000,
            "the Retry-After (1s) outlasts the backoff (10ms)"
        );
        assert_eq!(second.outcome, Outcome::Ok);
        assert_eq!((second.appointment, second.version), (Some("a-1"), Some(1)));
        assert_eq!(op(0).f, OpKind::Login);
        assert_eq!(
            op(0).trace,
            first.trace,
            "the login is part of the booking's op"
        );

        assert_eq!(op(9).free, Some(&[1i64, 2, 3][..]));
        let moved = op(17);
        assert_eq!(moved.f, OpKind::Reschedule);
        assert_eq!((moved.target, moved.slot), (Some("a-1"), Some(slot)));
        assert_eq!(moved.to, Some(m.destination(slot, 1)));
        assert_eq!(moved.version, Some(2));
        let cancelled = op(25);
        assert_eq!(cancelled.target, Some("a-1"));
        assert_eq!(
            cancelled.slot, moved.to,
            "the client's list followed the move"
        );
        assert_eq!(cancelled.promoted, Some("w-1"));
        assert_eq!((op(41).f, op(41).outcome), (OpKind::Forged, Outcome::Fail));
        assert_eq!(
            op(57).session,
            Some(49),
            "the churn login's session replaced the first"
        );
        assert_eq!(op(65).status, Some(401));
        assert_eq!(op(73).session, Some(72));
        assert_eq!(op(73).hours, Some(NARROW_HOURS));
        assert_eq!(
            op(73).slot,
            Some(Slot {
                provider: 1,
                start: 0
            })
        );

        let seen = log.lock().unwrap().clone();
        assert_eq!(seen.len(), ids.len(), "one request per recorded op");
        let books: Vec<&Seen> = seen
            .iter()
            .filter(|s| s.path == "/api/v1/appointments")
            .collect();
        assert_eq!(books.len(), 2);
        assert!(books.iter().all(|b| b.key.as_deref() == Some("k-0")));
        assert!(
            books
                .iter()
                .all(|b| b.auth.as_deref() == Some("Bearer tok-0"))
        );
        let tps: Vec<&str> = books
            .iter()
            .map(|b| b.traceparent.as_deref().unwrap())
            .collect();
        assert_eq!(&tps[0][3..35], trace(0));
        assert_eq!(tps[0][..36], tps[1][..36], "one trace for every try");
        assert_ne!(tps[0], tps[1], "a span per try");
        let change = seen.iter().find(|s| s.method == "PUT").unwrap();
        assert_eq!(change.path, "/api/v1/providers/1/schedule");
        let weekly = change.body["weekly"].as_array().unwrap();
        assert_eq!(weekly.len(), 5);
        assert!(weekly.iter().enumerate().all(|(d, t)| t["weekday"] == d
            && t["start_minute"] == 600
            && t["end_minute"] == 960
            && t["slot_minutes"] == 30));
        assert_eq!(change.auth.as_deref(), Some("Bearer tok-2"));
        let forged = seen.iter().find(|s| s.path == "/api/v1/providers").unwrap();
        assert_eq!(forged.auth.as_deref(), Some("Bearer forged-41"));
    }

    /// Threads of this process named `name` (nextest runs each test in a process of its own).
    fn threads_named(name: &str) -> usize {
        std::fs::read_dir("/proc/self/task")
            .unwrap()
            .filter_map(Result::ok)
            .filter(|t| {
                std::fs::read_to_string(t.path().join("comm")).is_ok_and(|c| c.trim() == name)
            })
            .count()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_dropped_drive_stops_its_dispatcher_and_aborts_the_ops_in_flight() {
        // A replica that accepts and never answers: every op sent stays in flight.
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", l.local_addr().unwrap());
        let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let held = Arc::clone(&accepted);
        tokio::spawn(async move {
            let mut conns = Vec::new();
            while let Ok((c, _)) = l.accept().await {
                held.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                conns.push(c);
            }
        });
        // 200 probes over 20 s with a 30 s deadline each; the drive is dropped after a few.
        let ops: Vec<Planned> = (0..200)
            .map(|i| Planned {
                index: i,
                due_us: i * 100_000,
                process: 0,
                trace: trace_id(42, i),
                op: PlannedOp::Readiness,
            })
            .collect();
        let mut workload = workload(20, 10.0, None);
        workload.op_timeout = Dur::from_secs(30);
        let path =
            std::env::temp_dir().join(format!("chaos-driver-drop-{}.jsonl", std::process::id()));
        let clock = Clock::start();
        let (rec, writer) = Recorder::start(&path, clock).unwrap();
        let client = TargetClient::new(vec![base], Duration::from_secs(30));
        let cut = tokio::time::timeout(
            Duration::from_millis(350),
            drive(ops, client, rec, workload),
        )
        .await;
        assert!(cut.is_err(), "the drive was cut short");
        // The writer finishes only once every recorder is dropped: the dispatcher thread's
        // and every op task's. Ops in flight would hold theirs for 30 s unless aborted.
        let written = tokio::time::timeout(Duration::from_secs(2), writer.finish())
            .await
            .expect("a dropped drive aborts its ops and lets go of the recorder")
            .unwrap();
        // It has dropped its recorder; it may take a moment more to exit. (nextest runs
        // each test in a process of its own, so no other test's dispatcher is counted.)
        let gone = (0..200).any(|_| {
            let n = threads_named("chaos-dispatch");
            if n > 0 {
                std::thread::sleep(Duration::from_millis(10));
            }
            n == 0
        });
        assert!(gone, "the dispatcher thread ended");
        let history = History::from_jsonl(&std::fs::read_to_string(&path).unwrap()).unwrap();
        std::fs::remove_file(&path).unwrap();
        let ops = history.ops();
        assert!(written > 0 && !ops.is_empty(), "the first probes went out");
        assert!(ops.len() < 10, "{} probes of 200 were sent", ops.len());
        assert!(
            ops.iter().all(|o| o.complete_us.is_none()),
            "no probe was answered, and none was recorded as if it had been: {:?}",
            ops.iter()
                .find(|o| o.complete_us.is_some())
                .map(|o| (o.outcome, o.error))
        );
        assert!(accepted.load(std::sync::atomic::Ordering::SeqCst) <= ops.len());
    }
}
