//! The target client: how one request reaches a MediConnect replica over HTTP. It reports what
//! came back, and distinguishes "never sent" from "sent, answer lost", which decide fail
//! versus info.

use std::time::Duration;

use chaos_model::Slot;
use serde_json::{Value, json};

use super::calendar::{NARROW_SLOT_MINUTES, format_date};

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

/// How long an idle connection to a replica is kept for reuse.
const POOL_IDLE: Duration = Duration::from_secs(5);

#[derive(Clone)]
pub struct TargetClient {
    http: reqwest::Client,
    bases: Vec<String>,
}

impl TargetClient {
    /// A client of the replicas at `bases`, with a deadline per request.
    pub fn new(bases: Vec<String>, op_timeout: Duration) -> TargetClient {
        assert!(
            !bases.is_empty(),
            "a target client needs at least one replica"
        );
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(op_timeout)
            .connect_timeout(op_timeout.min(Duration::from_secs(1)))
            // A hidden retry would turn one op into two requests behind the history's back.
            .retry(reqwest::retry::never())
            // As many idle connections as requests may be in flight: a smaller pool would close
            // and reopen connections at every burst (a handshake per op, at high rates most of
            // the driver's cost).
            .pool_max_idle_per_host(super::driver::MAX_IN_FLIGHT)
            // Short, so that after a fault few connections idle long enough to have gone
            // stale, and well under a server's own keep-alive limit (hyper's is 30 s).
            .pool_idle_timeout(POOL_IDLE)
            .build()
            .expect("reqwest client builds");
        TargetClient { http, bases }
    }

    /// How many replicas the client spreads over.
    pub fn replicas(&self) -> u32 {
        u32::try_from(self.bases.len()).expect("fewer than 4G replicas")
    }

    /// Send `req` to replica `replica` (0-based, taken modulo the replicas) with `token` as
    /// its bearer token and `traceparent` as its W3C trace context.
    pub async fn send(
        &self,
        replica: u32,
        token: Option<&str>,
        traceparent: &str,
        req: &Request,
    ) -> Reply {
        let base = &self.bases[replica as usize % self.bases.len()];
        let url = |path: &str| format!("{base}{path}");
        let mut b = match req {
            Request::Login { patient } => self.http.post(url("/api/v1/sessions")).json(
                &json!({ "username": format!("patient-{patient}"), "password": format!("pw-{patient}") }),
            ),
            Request::Availability { slot } => self
                .http
                .get(url(&format!(
                    "/api/v1/providers/{}/available-slots",
                    slot.provider
                )))
                .query(&[("date", format_date(slot.start))]),
            Request::Book { slot, key } => {
                let b = self
                    .http
                    .post(url("/api/v1/appointments"))
                    .json(&json!({ "provider_id": slot.provider, "start": slot.start }));
                match key {
                    Some(k) => b.header("Idempotency-Key", k),
                    None => b,
                }
            }
            Request::Forged { token } => self
                .http
                .get(url("/api/v1/providers"))
                .bearer_auth(token),
            Request::Readiness => self.http.get(url("/health/readiness")),
            Request::Cancel { appointment } => self
                .http
                .post(url(&format!("/api/v1/appointments/{appointment}/cancel"))),
            Request::Reschedule { appointment, start } => self
                .http
                .post(url(&format!(
                    "/api/v1/appointments/{appointment}/reschedule"
                )))
                .json(&json!({ "start": start })),
            Request::Waitlist { slot } => self
                .http
                .post(url("/api/v1/waitlist"))
                .json(&json!({ "provider_id": slot.provider, "start": slot.start })),
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
                self.http
                    .put(url(&format!("/api/v1/providers/{provider}/schedule")))
                    .json(&json!({ "weekly": weekly }))
            }
        };
        if let Some(t) = token.filter(|_| req.needs_session()) {
            b = b.bearer_auth(t);
        }
        send(b.header("traceparent", traceparent)).await
    }
}

async fn send(req: reqwest::RequestBuilder) -> Reply {
    match req.send().await {
        Ok(resp) => {
            let status = resp.status().as_u16();
            let retry_after = resp
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok());
            match resp.bytes().await {
                Ok(b) => Reply::Answer {
                    status,
                    body: serde_json::from_slice(&b).unwrap_or(Value::Null),
                    retry_after,
                },
                Err(e) => Reply::Lost(format!("reading the answer: {e}")),
            }
        }
        Err(e) if e.is_connect() => Reply::NotSent(error_chain(&e)),
        Err(e) => Reply::Lost(error_chain(&e)),
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}
