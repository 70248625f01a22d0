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
        let key = match req {
            Request::Book { key: Some(k), .. } => Some(k.as_str()),
            _ => None,
        };
        // The token came from the target's answer: one that would break the request's head
        // is never sent.
        for (name, v) in [
            ("authorization: Bearer ", bearer),
            ("idempotency-key: ", key),
        ] {
            let Some(v) = v else { continue };
            if v.is_empty() || !v.bytes().all(|b| b.is_ascii_graphic()) {
                return Reply::NotSent(format!("{} is not a header value: {v:?}", name.trim_end()));
            }
            head.push_str(name);
            head.push_str(v);
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
            None if method == "GET" => {
                head.push_str("\r\n");
                head.into_bytes()
            }
            None => {
                head.push_str("content-length: 0\r\n\r\n");
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
            format!("/api/v1/appointments/{}/cancel", segment(appointment)),
            None,
        ),
        Request::Reschedule { appointment, start } => (
            "POST",
            format!("/api/v1/appointments/{}/reschedule", segment(appointment)),
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

/// `s` as one path segment: every byte but RFC 3986's unreserved ones percent-encoded (an
/// appointment id comes from the target's answer).
fn segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_the_target_said_cannot_break_a_request() {
        assert_eq!(segment("a1b2-c3"), "a1b2-c3");
        assert_eq!(segment("a/b c\r\n"), "a%2Fb%20c%0D%0A");
        let (_, path, _) = route(&Request::Cancel {
            appointment: "x y".into(),
        });
        assert_eq!(path, "/api/v1/appointments/x%20y/cancel");
    }

    #[tokio::test]
    async fn a_token_that_is_no_header_value_is_never_sent() {
        // No server: a request that got as far as connecting would say so.
        let c = TargetClient::new(vec!["http://127.0.0.1:1".into()], Duration::from_secs(1));
        let req = Request::Availability {
            slot: Slot {
                provider: 1,
                start: 0,
            },
        };
        match c.send(0, Some("tok\r\nx: y"), "00-0-0-01", &req).await {
            Reply::NotSent(e) => assert!(e.contains("not a header value"), "{e}"),
            other => panic!("expected a refusal to send, got {other:?}"),
        }
    }
}
