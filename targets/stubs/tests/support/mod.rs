//! Test support: a stub served in-process on loopback port 0, a real HTTP client, and
//! polling of its call log.

#![allow(dead_code)]

use std::time::{Duration, Instant};

use serde_json::Value;
use stubs::Kind;
use tokio::net::TcpListener;

pub const TWILIO_PATH: &str = "/2010-04-01/Accounts/ACtest/Messages.json";

/// One stub served in-process.
pub struct Served {
    /// Base URL of its API, `http://127.0.0.1:PORT`.
    pub api: String,
    /// Base URL of its control API, `http://127.0.0.1:PORT/<name>`.
    pub control: String,
    pub http: reqwest::Client,
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("reqwest client builds")
}

pub async fn serve(kind: Kind) -> Served {
    let routers = stubs::routers(kind, None).expect("an in-memory stub builds");
    let api = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let control = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let served = Served {
        api: format!("http://{}", api.local_addr().unwrap()),
        control: format!("http://{}/{}", control.local_addr().unwrap(), kind.name()),
        http: client(),
    };
    tokio::spawn(async move { axum::serve(api, routers.api).await });
    tokio::spawn(async move { axum::serve(control, routers.control).await });
    served
}

impl Served {
    pub async fn calls(&self) -> Vec<Value> {
        calls(&self.http, &self.control).await
    }

    pub async fn knobs(&self, knobs: Value) {
        set_knobs(&self.http, &self.control, knobs).await;
    }

    /// Polls the call log until `done` holds of it.
    pub async fn until(&self, what: &str, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        until(&self.http, &self.control, what, done).await
    }

    /// Sends an SMS through the Twilio stub.
    pub fn sms(&self, to: &str, body: &str) -> reqwest::RequestBuilder {
        sms(&self.http, &self.api, to, body)
    }
}

pub fn sms(http: &reqwest::Client, api: &str, to: &str, body: &str) -> reqwest::RequestBuilder {
    http.post(format!("{api}{TWILIO_PATH}")).form(&[
        ("To", to),
        ("From", "+15550000000"),
        ("Body", body),
    ])
}

pub async fn calls(http: &reqwest::Client, control: &str) -> Vec<Value> {
    let r = http.get(format!("{control}/calls")).send().await.unwrap();
    assert!(r.status().is_success(), "GET /calls: {}", r.status());
    r.json().await.unwrap()
}

pub async fn set_knobs(http: &reqwest::Client, control: &str, knobs: Value) {
    let r = http
        .post(format!("{control}/knobs"))
        .json(&knobs)
        .send()
        .await
        .unwrap();
    let status = r.status();
    assert!(
        status.is_success(),
        "knobs {knobs}: {status}: {}",
        r.text().await.unwrap()
    );
}

pub async fn until(
    http: &reqwest::Client,
    control: &str,
    what: &str,
    done: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let calls = calls(http, control).await;
        if done(&calls) {
            return calls;
        }
        assert!(Instant::now() < deadline, "never saw {what}: {calls:#?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The call with sequence number `seq`.
pub fn call(calls: &[Value], seq: u64) -> &Value {
    calls
        .iter()
        .find(|c| c["seq"] == seq)
        .unwrap_or_else(|| panic!("no call {seq} in {calls:#?}"))
}
