//! Test support for the end-to-end tier: replicas of `mediconnect` started by the test itself
//! (so it can send them SIGTERM and SIGKILL), and in-process providers that record every
//! call with its `traceparent` and answer with each provider's own shapes, including the
//! message logs the hardened worker asks (Twilio's message list, SendGrid's Email Activity).

use std::collections::BTreeMap;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Form, Json, Router};
use chaos_engine::env::Endpoints;
use chaos_model::Profile;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// One call a fake provider received.
#[derive(Debug, Clone)]
pub struct Call {
    pub provider: &'static str,
    pub method: &'static str,
    pub path: String,
    pub traceparent: Option<String>,
    pub body: Value,
    /// The provider acted on it (the message went out, the resource was stored).
    pub accepted: bool,
    /// The answer was written (the caller was still there when it was due).
    pub answered: bool,
}

/// How a fake provider misbehaves.
#[derive(Debug, Clone, Copy, Default)]
pub struct Knob {
    /// Accept a send at once, answer only this long after (log look-ups answer at once).
    pub late_answer_ms: u64,
    /// Answer 503 without acting.
    pub refuse: bool,
}

#[derive(Default)]
struct Inner {
    calls: Mutex<Vec<Call>>,
    knobs: Mutex<BTreeMap<&'static str, Knob>>,
}

/// Twilio, SendGrid and the EHR in one server.
#[derive(Clone)]
pub struct Fake {
    inner: Arc<Inner>,
    pub base: String,
}

impl Fake {
    pub async fn start() -> Fake {
        let inner = Arc::new(Inner::default());
        let app = Router::new()
            .route(
                "/2010-04-01/Accounts/{sid}/Messages.json",
                post(twilio_send).get(twilio_list),
            )
            .route("/v3/mail/send", post(sendgrid_send))
            .route("/v3/messages", get(sendgrid_activity))
            .route("/fhir/Appointment/{id}", put(ehr_put))
            .route("/fhir/Appointment", post(ehr_post))
            .with_state(Arc::clone(&inner));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Fake { inner, base }
    }

    pub fn set(&self, provider: &'static str, knob: Knob) {
        self.inner.knobs.lock().unwrap().insert(provider, knob);
    }

    pub fn calls(&self) -> Vec<Call> {
        self.inner.calls.lock().unwrap().clone()
    }

    /// Calls to `provider` with `method` whose body mentions `needle`.
    pub fn calls_for(&self, provider: &str, method: &str, needle: &str) -> Vec<Call> {
        self.calls()
            .into_iter()
            .filter(|c| {
                c.provider == provider && c.method == method && c.body.to_string().contains(needle)
            })
            .collect()
    }

    /// Messages `provider` accepted (sent) for `needle`.
    pub fn accepted(&self, provider: &str, needle: &str) -> usize {
        let method = if provider == "ehr" { "PUT" } else { "POST" };
        let mut n = self.calls_for(provider, method, needle);
        if provider == "ehr" {
            n.extend(self.calls_for(provider, "POST", needle));
        }
        n.iter().filter(|c| c.accepted).count()
    }

    /// Look-ups of a provider's message log.
    pub fn lookups(&self, provider: &str) -> usize {
        self.calls()
            .iter()
            .filter(|c| c.provider == provider && c.method == "GET")
            .count()
    }

    /// Wait until `done` holds of the calls, or panic after `within`.
    pub async fn wait_for(&self, within: Duration, what: &str, done: impl Fn(&Fake) -> bool) {
        let deadline = tokio::time::Instant::now() + within;
        while !done(self) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{what}: not after {within:?}; calls: {:#?}",
                self.calls()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn knob(inner: &Inner, provider: &'static str) -> Knob {
    inner
        .knobs
        .lock()
        .unwrap()
        .get(provider)
        .copied()
        .unwrap_or_default()
}

/// Record a call, then answer it as the knob says: `answer` if it was accepted.
async fn handle(
    inner: Arc<Inner>,
    provider: &'static str,
    method: &'static str,
    path: String,
    headers: &HeaderMap,
    body: Value,
    answer: impl FnOnce() -> Response,
) -> Response {
    let k = knob(&inner, provider);
    let traceparent = headers
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let index = {
        let mut calls = inner.calls.lock().unwrap();
        calls.push(Call {
            provider,
            method,
            path,
            traceparent,
            body,
            accepted: !k.refuse && method != "GET",
            answered: false,
        });
        calls.len() - 1
    };
    if k.late_answer_ms > 0 && method != "GET" {
        tokio::time::sleep(Duration::from_millis(k.late_answer_ms)).await;
    }
    inner.calls.lock().unwrap()[index].answered = true;
    if k.refuse {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "message": "refused" })),
        )
            .into_response();
    }
    answer()
}

async fn twilio_send(
    State(inner): State<Arc<Inner>>,
    Path(sid): Path<String>,
    headers: HeaderMap,
    Form(form): Form<BTreeMap<String, String>>,
) -> Response {
    let body = json!(form);
    let resource = json!({
        "sid": format!("SM{:032x}", uuid::Uuid::new_v4().as_u128()),
        "account_sid": sid,
        "to": form.get("To"),
        "body": form.get("Body"),
        "status": "queued",
    });
    let path = format!("/2010-04-01/Accounts/{sid}/Messages.json");
    handle(inner, "twilio", "POST", path, &headers, body, move || {
        (StatusCode::CREATED, Json(resource)).into_response()
    })
    .await
}

/// Twilio's message list: the accepted messages to `To`, newest first.
async fn twilio_list(
    State(inner): State<Arc<Inner>>,
    Path(sid): Path<String>,
    headers: HeaderMap,
    Query(q): Query<BTreeMap<String, String>>,
) -> Response {
    let to = q.get("To").cloned().unwrap_or_default();
    let messages: Vec<Value> = inner
        .calls
        .lock()
        .unwrap()
        .iter()
        .rev()
        .filter(|c| c.provider == "twilio" && c.method == "POST" && c.accepted)
        .filter(|c| c.body["To"] == to.as_str())
        .map(|c| json!({ "to": c.body["To"], "body": c.body["Body"], "status": "delivered" }))
        .collect();
    let path = format!("/2010-04-01/Accounts/{sid}/Messages.json?To={to}");
    handle(
        inner,
        "twilio",
        "GET",
        path,
        &headers,
        json!({}),
        move || Json(json!({ "messages": messages, "page": 0, "page_size": 50 })).into_response(),
    )
    .await
}

async fn sendgrid_send(
    State(inner): State<Arc<Inner>>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    handle(
        inner,
        "sendgrid",
        "POST",
        "/v3/mail/send".into(),
        &headers,
        body,
        || StatusCode::ACCEPTED.into_response(),
    )
    .await
}

/// SendGrid's Email Activity, for `unique_args['appointment_id']="<id>" AND
/// unique_args['kind']="<kind>"`.
async fn sendgrid_activity(
    State(inner): State<Arc<Inner>>,
    headers: HeaderMap,
    Query(q): Query<BTreeMap<String, String>>,
) -> Response {
    let query = q.get("query").cloned().unwrap_or_default();
    let arg = |name: &str| {
        let open = format!("unique_args['{name}']=\"");
        query
            .split_once(&open)
            .and_then(|(_, rest)| rest.split_once('"'))
            .map(|(v, _)| v.to_string())
    };
    let (id, kind) = (arg("appointment_id"), arg("kind"));
    let messages: Vec<Value> = inner
        .calls
        .lock()
        .unwrap()
        .iter()
        .filter(|c| c.provider == "sendgrid" && c.method == "POST" && c.accepted)
        .filter(|c| {
            id.as_deref() == c.body["custom_args"]["appointment_id"].as_str()
                && kind.as_deref() == c.body["custom_args"]["kind"].as_str()
        })
        .map(|c| json!({ "msg_id": "m", "to_email": c.body["personalizations"][0]["to"][0]["email"], "status": "delivered" }))
        .collect();
    handle(
        inner,
        "sendgrid",
        "GET",
        format!("/v3/messages?query={query}"),
        &headers,
        json!({}),
        move || Json(json!({ "messages": messages })).into_response(),
    )
    .await
}

async fn ehr_put(
    State(inner): State<Arc<Inner>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let path = format!("/fhir/Appointment/{id}");
    handle(
        inner,
        "ehr",
        "PUT",
        path,
        &headers,
        body.clone(),
        move || (StatusCode::OK, Json(body)).into_response(),
    )
    .await
}

async fn ehr_post(
    State(inner): State<Arc<Inner>>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    handle(
        inner,
        "ehr",
        "POST",
        "/fhir/Appointment".into(),
        &headers,
        body.clone(),
        move || (StatusCode::CREATED, Json(body)).into_response(),
    )
    .await
}

/// Where a replica started by a test sends its calls to providers.
#[derive(Debug, Clone)]
pub struct Providers {
    pub twilio: String,
    pub sendgrid: String,
    /// The EHR's FHIR base, e.g. http://host/fhir.
    pub ehr: String,
}

impl Providers {
    /// All three at one base URL (a `Fake`, or a proxy in front of it).
    pub fn at(base: &str) -> Providers {
        Providers {
            twilio: base.to_string(),
            sendgrid: base.to_string(),
            ehr: format!("{base}/fhir"),
        }
    }
}

/// A `mediconnect` process started by the test, wired to the environment's proxies.
pub struct Replica {
    pub child: Child,
    pub base: String,
}

impl Replica {
    pub async fn start(
        profile: Profile,
        env: &Endpoints,
        providers: &Providers,
        extra: &[&str],
    ) -> Replica {
        let port = |s: &str| env.services[s].rsplit(':').next().unwrap().to_string();
        let direct_port = env.direct["postgres"]
            .rsplit(':')
            .next()
            .unwrap()
            .to_string();
        let postgres = env.postgres_direct.replace(
            &format!("port={direct_port}"),
            &format!("port={}", port("postgres")),
        );
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_mediconnect"));
        cmd.args(["--profile", profile.as_str(), "--listen", "127.0.0.1:0"])
            .args(["--postgres", &postgres])
            .args(["--redis", &format!("redis://127.0.0.1:{}", port("redis"))])
            .args([
                "--amqp",
                &format!(
                    "amqp://guest:guest@127.0.0.1:{}/%2f?heartbeat=5&connection_timeout=2000",
                    port("rabbitmq")
                ),
            ])
            .args([
                "--twilio",
                &providers.twilio,
                "--sendgrid",
                &providers.sendgrid,
            ])
            .args([
                "--ehr",
                &providers.ehr,
                "--providers",
                "3",
                "--patients",
                "40",
            ])
            .args(extra)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        let mut child = cmd.spawn().expect("mediconnect starts");
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let line = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
            .await
            .expect("mediconnect prints its address within 60 s")
            .unwrap()
            .expect("a ready line");
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let ready: Value = serde_json::from_str(&line).unwrap();
        let base = format!("http://{}", ready["listen"].as_str().unwrap());
        let r = Replica { child, base };
        r.await_ready().await;
        r
    }

    /// Poll readiness until it answers 200.
    pub async fn await_ready(&self) {
        let http = reqwest::Client::builder().no_proxy().build().unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let ok = http
                .get(format!("{}/health/readiness", self.base))
                .timeout(Duration::from_secs(2))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if ok {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "replica never ready"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn terminate(&self) {
        let pid = self.child.id().expect("running") as i32;
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::SIGTERM).unwrap();
    }

    pub async fn kill(&mut self) {
        self.child.kill().await.unwrap();
    }

    /// Wait for the process to end, at most `within`.
    pub async fn exit(&mut self, within: Duration) -> std::process::ExitStatus {
        tokio::time::timeout(within, self.child.wait())
            .await
            .expect("the replica ends in time")
            .unwrap()
    }
}
