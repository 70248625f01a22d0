//! The target client: how one request reaches a MediConnect replica over HTTP. It reports what
//! came back, and distinguishes "never sent" from "sent, answer lost", which decide fail
//! versus info.

use std::sync::Arc;
use std::time::Duration;

use chaos_model::Slot;
use serde_json::{Value, json};

use super::calendar::{NARROW_SLOT_MINUTES, format_date};
use super::http1::{Failure, Http1};

/// What one request came to.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// An HTTP answer, with its `Retry-After` in seconds when it had one.
    Answer {
        status: u16,
        body: Value,
        retry_after: Option<u64>,
    },
    /// The request was never sent (connection refused): it cannot have taken effect.
    NotSent(String),
    /// Sent, but no answer (timeout, reset): it may or may not have taken effect.
    Lost(String),
}

/// One request of the public API, as a client sends it (and sends it again on a retry).
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    /// `POST /api/v1/sessions` as patient `patient` (`patient-<n>`, `pw-<n>`).
    Login { patient: u32 },
    /// `GET /api/v1/providers/{provider}/available-slots?date=` the day of `slot.start`.
    Availability { slot: Slot },
    /// `POST /api/v1/appointments {provider_id, start}`, with an `Idempotency-Key` if given.
    Book { slot: Slot, key: Option<String> },
    /// `GET /api/v1/providers` with the bearer token `forged`, which is no session.
    Forged { token: String },
    /// `GET /health/readiness`, no session.
    Readiness,
    /// `POST /api/v1/appointments/{id}/cancel`.
    Cancel { appointment: String },
    /// `POST /api/v1/appointments/{id}/reschedule {start}`.
    Reschedule { appointment: String, start: i64 },
    /// `POST /api/v1/waitlist {provider_id, start}`.
    Waitlist { slot: Slot },
    /// `PUT /api/v1/providers/{id}/schedule`: Monday to Friday within `hours` (minutes of
    /// the UTC day), in 30-minute slots.
    ScheduleChange { provider: u32, hours: [u32; 2] },
}

impl Request {
    /// Whether the request carries the client's session token.
    pub fn needs_session(&self) -> bool {
        !matches!(
            self,
            Request::Login { .. } | Request::Forged { .. } | Request::Readiness
        )
    }
}

/// How long an idle connection to a replica is kept for reuse: short, so that after a fault
/// few connections idle long enough to have gone stale, and well under a server's own
/// keep-alive limit (hyper's is 30 s).
const POOL_IDLE: Duration = Duration::from_secs(5);

/// The replicas' clients: one keep-alive pool each.
#[derive(Clone)]
pub struct TargetClient {
    replicas: Arc<Vec<Http1>>,
    op_timeout: Duration,
}

impl TargetClient {
    /// A client of the replicas at `bases` (`http://host:port`), with a deadline per request.
    pub fn new(bases: Vec<String>, op_timeout: Duration) -> TargetClient {
        assert!(
            !bases.is_empty(),
            "a target client needs at least one replica"
        );
        let connect = op_timeout.min(Duration::from_secs(1));
        TargetClient {
            replicas: Arc::new(
                bases
                    .iter()
                    .map(|b| Http1::new(b, POOL_IDLE, connect))
                    .collect(),
            ),
            op_timeout,
        }
    }

    /// How many replicas the client spreads over.
    pub fn replicas(&self) -> u32 {
        u32::try_from(self.replicas.len()).expect("fewer than 4G replicas")
    }

    /// Send `req` to replica `replica` (0-based, taken modulo the replicas) with `token` as
    /// its bearer token and `traceparent` as its W3C trace context. Never retried here: a
    /// hidden retry would turn one op into two requests behind the history's back.
    pub async fn send(
        &self,
        replica: u32,
        token: Option<&str>,
        traceparent: &str,
        req: &Request,
    ) -> Reply {
        let http = &self.replicas[replica as usize % self.replicas.len()];
        let (method, path, body) = route(req);
        let mut head = String::with_capacity(256);
        head.push_str(method);
        head.push(' ');
        head.push_str(&path);
        head.push_str(" HTTP/1.1\r\nhost: ");
        head.push_str(http.authority());
        head.push_str("\r\ntraceparent: ");
        head.push_str(traceparent);
        head.push_str("\r\n");
        let bearer = match req {
            Request::Forged { token } => Some(token.as_str()),
            _ => token.filter(|_| req.needs_session()),
        };
        if let Some(t) = bearer {
            head.push_str("authorization: Bearer ");
            head.push_str(t);
            head.push_str("\r\n");
        }
        if let Request::Book { key: Some(k), .. } = req {
            head.push_str("idempotency-key: ");
            head.push_str(k);
            head.push_str("\r\n");
        }
        let wire = match &body {
            Some(b) => {
                let b = serde_json::to_vec(b).expect("a request body serialises");
                head.push_str("content-type: application/json\r\ncontent-length: ");
                head.push_str(&b.len().to_string());
                head.push_str("\r\n\r\n");
                let mut w = head.into_bytes();
                w.extend_from_slice(&b);
                w
            }
            None => {
                head.push_str("\r\n");
                head.into_bytes()
            }
        };
        match http.send(&wire, self.op_timeout).await {
            Ok(a) => Reply::Answer {
                status: a.status,
                body: serde_json::from_slice(&a.body).unwrap_or(Value::Null),
                retry_after: a.retry_after,
            },
            Err(Failure::NotSent(e)) => Reply::NotSent(e),
            Err(Failure::Lost(e)) => Reply::Lost(e),
        }
    }
}

/// A request's method, path (with its query) and JSON body.
fn route(req: &Request) -> (&'static str, String, Option<Value>) {
    let slot_body =
        |slot: &Slot| Some(json!({ "provider_id": slot.provider, "start": slot.start }));
    match req {
        Request::Login { patient } => (
            "POST",
            "/api/v1/sessions".into(),
            Some(
                json!({ "username": format!("patient-{patient}"), "password": format!("pw-{patient}") }),
            ),
        ),
        // A date is digits and dashes: nothing in the query needs escaping.
        Request::Availability { slot } => (
            "GET",
            format!(
                "/api/v1/providers/{}/available-slots?date={}",
                slot.provider,
                format_date(slot.start)
            ),
            None,
        ),
        Request::Book { slot, .. } => ("POST", "/api/v1/appointments".into(), slot_body(slot)),
        Request::Forged { .. } => ("GET", "/api/v1/providers".into(), None),
        Request::Readiness => ("GET", "/health/readiness".into(), None),
        Request::Cancel { appointment } => (
            "POST",
            format!("/api/v1/appointments/{appointment}/cancel"),
            None,
        ),
        Request::Reschedule { appointment, start } => (
            "POST",
            format!("/api/v1/appointments/{appointment}/reschedule"),
            Some(json!({ "start": start })),
        ),
        Request::Waitlist { slot } => ("POST", "/api/v1/waitlist".into(), slot_body(slot)),
        Request::ScheduleChange { provider, hours } => {
            let weekly: Vec<Value> = (0..5)
                .map(|weekday| {
                    json!({
                        "weekday": weekday,
                        "start_minute": hours[0],
                        "end_minute": hours[1],
                        "slot_minutes": NARROW_SLOT_MINUTES,
                    })
                })
                .collect();
            (
                "PUT",
                format!("/api/v1/providers/{provider}/schedule"),
                Some(json!({ "weekly": weekly })),
            )
        }
    }
}
