//! The target client: how one op reaches MediConnect over HTTP. It reports what came back,
//! and distinguishes "never sent" from "sent, answer lost", which decide fail versus info.

use std::time::Duration;

use chaos_model::Slot;
use serde_json::{Value, json};

use super::calendar::format_date;

/// What one request came to.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// An HTTP answer.
    Answer { status: u16, body: Value },
    /// The request was never sent (connection refused): it cannot have taken effect.
    NotSent(String),
    /// Sent, but no answer (timeout, reset): it may or may not have taken effect.
    Lost(String),
}

#[derive(Clone)]
pub struct TargetClient {
    http: reqwest::Client,
    bases: Vec<String>,
}

impl TargetClient {
    /// A client spreading processes over the replicas at `bases`, with a deadline per op.
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
            .pool_max_idle_per_host(64)
            .build()
            .expect("reqwest client builds");
        TargetClient { http, bases }
    }

    fn url(&self, process: u32, path: &str) -> String {
        format!("{}{path}", self.bases[process as usize % self.bases.len()])
    }

    pub async fn login(&self, process: u32, patient: u32) -> Reply {
        let body = json!({ "username": format!("patient-{patient}"), "password": format!("pw-{patient}") });
        send(
            self.http
                .post(self.url(process, "/api/v1/sessions"))
                .json(&body),
        )
        .await
    }

    pub async fn availability(&self, process: u32, token: &str, slot: Slot) -> Reply {
        let path = format!("/api/v1/providers/{}/available-slots", slot.provider);
        let req = self
            .http
            .get(self.url(process, &path))
            .query(&[("date", format_date(slot.start))])
            .bearer_auth(token);
        send(req).await
    }

    /// A read with a token that is no session: fails closed unless authentication is broken.
    pub async fn forged(&self, process: u32, op: u64) -> Reply {
        let req = self
            .http
            .get(self.url(process, "/api/v1/providers"))
            .bearer_auth(format!("forged-{op}"));
        send(req).await
    }

    /// Cancel one of the caller's appointments.
    pub async fn cancel(&self, process: u32, token: &str, appointment: &str) -> Reply {
        let path = format!("/api/v1/appointments/{appointment}/cancel");
        send(self.http.post(self.url(process, &path)).bearer_auth(token)).await
    }

    /// A readiness probe: no session, 200 when ready, 503 when a dependency is down.
    pub async fn readiness(&self, process: u32) -> Reply {
        send(self.http.get(self.url(process, "/health/readiness"))).await
    }

    pub async fn book(&self, process: u32, token: &str, slot: Slot, key: Option<&str>) -> Reply {
        let body = json!({ "provider_id": slot.provider, "start": slot.start });
        let mut req = self
            .http
            .post(self.url(process, "/api/v1/appointments"))
            .json(&body)
            .bearer_auth(token);
        if let Some(k) = key {
            req = req.header("Idempotency-Key", k);
        }
        send(req).await
    }
}

async fn send(req: reqwest::RequestBuilder) -> Reply {
    match req.send().await {
        Ok(resp) => {
            let status = resp.status().as_u16();
            match resp.bytes().await {
                Ok(b) => Reply::Answer {
                    status,
                    body: serde_json::from_slice(&b).unwrap_or(Value::Null),
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
