//! MediConnect against real PostgreSQL, Redis and RabbitMQ started by the harness's local
//! environment: for each reviewed finding, the naive profile shows the flaw and the hardened
//! profile the countermeasure; and the API's contract (errors, rate limit, metrics).

use std::time::Duration;

use chaos_engine::env::{LocalEnv, LocalEnvConfig};
use chaos_model::{Profile, Service};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// 2030-01-07 10:00 UTC, a Monday slot; `slot(n)` is the n-th half hour after it (same day
/// for n < 14).
fn slot(n: i64) -> i64 {
    1_893_974_400 + 10 * 3600 + n * 1800
}

struct Target {
    env: LocalEnv,
    http: reqwest::Client,
    base: String,
}

impl Target {
    async fn start(profile: Profile, name: &str) -> Target {
        Target::start_with(profile, name, 1, chaos_model::TargetOptions::default()).await
    }

    async fn start_with(
        profile: Profile,
        name: &str,
        replicas: u32,
        options: chaos_model::TargetOptions,
    ) -> Target {
        let cfg = LocalEnvConfig {
            run_id: format!("mediconnect-{name}-{profile}-{}", std::process::id()),
            profile,
            replicas,
            providers: 3,
            patients: 40,
            seed: 1,
            options,
            keep_dir: false,
        };
        let env = LocalEnv::start(&cfg, &|_m: String| {})
            .await
            .unwrap_or_else(|e| panic!("environment: {e}"));
        let base = env.endpoints().target[0].clone();
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap();
        Target { env, http, base }
    }

    async fn login(&self, patient: u32) -> String {
        let r = self
            .http
            .post(format!("{}/api/v1/sessions", self.base))
            .json(&json!({ "username": format!("patient-{patient}"), "password": format!("pw-{patient}") }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::CREATED);
        r.json::<Value>().await.unwrap()["token"]
            .as_str()
            .unwrap()
            .to_string()
    }

    fn post(&self, token: &str, path: &str, body: Value) -> reqwest::RequestBuilder {
        self.http
            .post(format!("{}{path}", self.base))
            .bearer_auth(token)
            .json(&body)
    }

    fn get(&self, token: &str, path: &str) -> reqwest::RequestBuilder {
        self.http
            .get(format!("{}{path}", self.base))
            .bearer_auth(token)
    }

    async fn book(&self, token: &str, provider: i32, start: i64) -> (StatusCode, Value) {
        let r = self
            .post(
                token,
                "/api/v1/appointments",
                json!({ "provider_id": provider, "start": start }),
            )
            .send()
            .await
            .unwrap();
        (r.status(), r.json().await.unwrap_or(Value::Null))
    }

    /// One value of a query about a slot's live appointments, straight from the database.
    async fn slot_query<T: for<'a> tokio_postgres::types::FromSql<'a>>(
        &self,
        select: &str,
        provider: i32,
        start: i64,
    ) -> T {
        let (client, conn) =
            tokio_postgres::connect(&self.env.endpoints().postgres_direct, tokio_postgres::NoTls)
                .await
                .unwrap();
        tokio::spawn(conn);
        let sql = format!(
            "SELECT {select} FROM appointments WHERE provider_id = $1 AND starts_at = to_timestamp($2) AND status = 'booked'"
        );
        client
            .query_one(&sql, &[&provider, &(start as f64)])
            .await
            .unwrap()
            .get(0)
    }

    /// Live appointments in a slot.
    async fn live_rows(&self, provider: i32, start: i64) -> i64 {
        self.slot_query("count(*)", provider, start).await
    }
}

/// Race `racers` patients for one slot, `rounds` times; returns the most live rows any slot got.
async fn race(t: &Target, tokens: &[String], rounds: i64) -> i64 {
    let mut worst = 0;
    for round in 0..rounds {
        let start = slot(round);
        let attempts = tokens.iter().map(|tok| t.book(tok, 2, start));
        let results = futures_util::future::join_all(attempts).await;
        assert!(
            results
                .iter()
                .all(|(s, _)| *s == StatusCode::CREATED || *s == StatusCode::CONFLICT),
            "{results:?}"
        );
        worst = worst.max(t.live_rows(2, start).await);
    }
    worst
}

async fn tokens(t: &Target, patients: std::ops::Range<u32>) -> Vec<String> {
    let mut v = Vec::new();
    for p in patients {
        v.push(t.login(p).await);
    }
    v
}

/// 000:S2, 001:C-3, 002:C-4: concurrent bookings of one slot.
async fn booking_race(profile: Profile) {
    let t = Target::start(profile, "race").await;
    let racers = tokens(&t, 1..17).await;
    let worst = race(&t, &racers, 8).await;
    match profile {
        Profile::Naive => assert!(
            worst > 1,
            "naive check-then-insert should double-book under a 16-way race"
        ),
        Profile::Hardened => assert_eq!(
            worst, 1,
            "hardened must never hold two live appointments in a slot"
        ),
    }
    t.env.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forced_race_double_books_on_naive_and_not_on_hardened() {
    booking_race(Profile::Naive).await;
    booking_race(Profile::Hardened).await;
}

/// 000:C5, 001:C-1: a create retried with the same Idempotency-Key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_create_yields_one_appointment_on_hardened_only() {
    for profile in [Profile::Naive, Profile::Hardened] {
        let t = Target::start(profile, "idem").await;
        let tok = t.login(1).await;
        let send = || {
            t.post(
                &tok,
                "/api/v1/appointments",
                json!({ "provider_id": 1, "start": slot(2) }),
            )
            .header("Idempotency-Key", "retry-1")
        };
        let first = send().send().await.unwrap();
        assert_eq!(first.status(), StatusCode::CREATED);
        let first: Value = first.json().await.unwrap();
        let again = send().send().await.unwrap();
        match profile {
            Profile::Naive => {
                // No idempotency: the retry is a new request, and the client is told its own
                // booking is someone else's.
                assert_eq!(again.status(), StatusCode::CONFLICT);
            }
            Profile::Hardened => {
                assert_eq!(again.status(), StatusCode::CREATED);
                assert_eq!(again.headers()["idempotent-replayed"], "true");
                let again: Value = again.json().await.unwrap();
                assert_eq!(again["id"], first["id"], "the retry gets the first answer");
                let other = t
                    .post(
                        &tok,
                        "/api/v1/appointments",
                        json!({ "provider_id": 1, "start": slot(3) }),
                    )
                    .header("Idempotency-Key", "retry-1")
                    .send()
                    .await
                    .unwrap();
                assert_eq!(
                    other.status(),
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "a key reused for another request"
                );
            }
        }
        assert_eq!(t.live_rows(1, slot(2)).await, 1);
        t.env.shutdown().await;
    }
}

/// 000:C1, 001:C-4: sessions live in one Redis. Authentication fails closed on both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_loss_logs_everyone_out_on_naive_and_not_on_hardened() {
    for profile in [Profile::Naive, Profile::Hardened] {
        let mut t = Target::start(profile, "redis").await;
        let tok = t.login(1).await;
        let providers = |t: &Target, tok: &str| t.get(tok, "/api/v1/providers").send();
        assert_eq!(providers(&t, &tok).await.unwrap().status(), StatusCode::OK);

        t.env.kill(Service::Redis).await.unwrap();
        let during = providers(&t, &tok).await.unwrap().status();
        let forged = providers(&t, "not-a-session").await.unwrap().status();
        assert!(
            !forged.is_success(),
            "{profile}: an unknown token must never pass (fails closed): {forged}"
        );
        match profile {
            Profile::Naive => assert_eq!(
                during,
                StatusCode::SERVICE_UNAVAILABLE,
                "naive: every request fails without Redis"
            ),
            Profile::Hardened => assert_eq!(
                during,
                StatusCode::OK,
                "hardened: sessions survive the outage"
            ),
        }

        t.env.restart(Service::Redis).await.unwrap();
        // The restarted Redis is empty (no persistence): naive has lost every session.
        let after = providers(&t, &tok).await.unwrap().status();
        match profile {
            Profile::Naive => assert_eq!(after, StatusCode::UNAUTHORIZED),
            Profile::Hardened => assert_eq!(after, StatusCode::OK),
        }
        t.env.shutdown().await;
    }
}

impl Target {
    /// Successful calls a stub received whose body names `appointment`.
    async fn stub_calls_for(&self, stub: &str, appointment: &str) -> usize {
        let url = format!("{}/calls", self.env.endpoints().stubs[stub]);
        let calls: Vec<Value> = self
            .http
            .get(url)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        calls
            .iter()
            .filter(|c| {
                c["status"].as_u64().is_some_and(|s| s < 300)
                    && c["body"].to_string().contains(appointment)
            })
            .count()
    }

    /// Poll until `stub` has delivered something for `appointment`, or `within` passes.
    async fn delivered(&self, stub: &str, appointment: &str, within: Duration) -> usize {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let n = self.stub_calls_for(stub, appointment).await;
            if n > 0 || tokio::time::Instant::now() >= deadline {
                return n;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn appointment_id(&self, provider: i32, start: i64) -> String {
        self.slot_query("id::text", provider, start).await
    }
}

/// 000:C2: notifications published inline in the booking request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_outage_loses_reminders_on_naive_and_none_on_hardened() {
    for profile in [Profile::Naive, Profile::Hardened] {
        let mut t = Target::start(profile, "broker").await;
        let tok = t.login(1).await;
        // Reminders flow while the broker is up.
        let (status, before) = t.book(&tok, 3, slot(3)).await;
        assert_eq!(status, StatusCode::CREATED);
        let before = before["id"].as_str().unwrap().to_string();
        assert_eq!(
            t.delivered("twilio", &before, Duration::from_secs(20))
                .await,
            1,
            "{profile}: SMS before the outage"
        );
        assert_eq!(
            t.delivered("sendgrid", &before, Duration::from_secs(20))
                .await,
            1,
            "{profile}: e-mail before the outage"
        );

        t.env.kill(Service::Rabbitmq).await.unwrap();
        let (status, _) = t.book(&tok, 3, slot(4)).await;
        match profile {
            // Naive publishes without confirms: 500 once its client has seen the broker go,
            // or 201 while it still writes into the dead connection. Lost either way.
            Profile::Naive => assert!(
                status == StatusCode::INTERNAL_SERVER_ERROR || status == StatusCode::CREATED,
                "naive answers 500 or, unknowingly, 201: {status}"
            ),
            Profile::Hardened => assert_eq!(status, StatusCode::CREATED),
        }
        assert_eq!(
            t.live_rows(3, slot(4)).await,
            1,
            "{profile}: the booking was committed either way"
        );
        let during = t.appointment_id(3, slot(4)).await;
        t.env.restart(Service::Rabbitmq).await.unwrap();
        let sms = t
            .delivered("twilio", &during, Duration::from_secs(20))
            .await;
        match profile {
            Profile::Naive => assert_eq!(
                sms, 0,
                "naive: the reminder published during the outage is lost"
            ),
            Profile::Hardened => {
                assert_eq!(
                    sms, 1,
                    "hardened: the outbox delivers it after the broker returns, once"
                );
                assert_eq!(
                    t.delivered("sendgrid", &during, Duration::from_secs(20))
                        .await,
                    1
                );
            }
        }
        t.env.shutdown().await;
    }
}

/// 000:C6, 000:S1: a failing channel makes naive resend the one that succeeded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_channel_duplicates_sms_on_naive_and_not_on_hardened() {
    for profile in [Profile::Naive, Profile::Hardened] {
        let t = Target::start(profile, "dedup").await;
        let knobs = format!("{}/knobs", t.env.endpoints().stubs["sendgrid"]);
        let r = t
            .http
            .post(&knobs)
            .json(&json!({ "fail_first": 3, "error_status": 503 }))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success());
        let tok = t.login(1).await;
        let (_, a) = t.book(&tok, 2, slot(8)).await;
        let id = a["id"].as_str().unwrap().to_string();
        // The e-mail fails three times, then goes through.
        assert_eq!(
            t.delivered("sendgrid", &id, Duration::from_secs(30)).await,
            1,
            "{profile}: the e-mail arrives once in the end"
        );
        let sms = t.stub_calls_for("twilio", &id).await;
        match profile {
            Profile::Naive => assert!(
                sms >= 4,
                "naive resends the SMS with every retry of the e-mail: {sms}"
            ),
            Profile::Hardened => assert_eq!(sms, 1, "hardened sends the SMS once"),
        }
        t.env.shutdown().await;
    }
}

/// 000:S3: two replicas poll for reminders; the service clock runs an hour a second from
/// Sunday 08:00, so Monday 10:00's 24 h reminder falls due about two seconds in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unlocked_pollers_duplicate_reminders_on_naive_only() {
    for profile in [Profile::Naive, Profile::Hardened] {
        let options = chaos_model::TargetOptions {
            clock_scale: Some(3600.0),
            reminder_poll: chaos_model::Dur::from_millis(100),
            ..chaos_model::TargetOptions::default()
        };
        let t = Target::start_with(profile, "poller", 2, options).await;
        let tok = t.login(1).await;
        // Three providers' slots at the same times fall due together, as a busy clinic's do.
        let mut ids = Vec::new();
        for n in 0..12 {
            for provider in 1..=3 {
                let (s, a) = t.book(&tok, provider, slot(n)).await;
                assert_eq!(s, StatusCode::CREATED);
                ids.push(a["id"].as_str().unwrap().to_string());
            }
        }
        // Every 24 h reminder is out once the clock is past Sunday 15:30 (under 10 s).
        let mut most = 0;
        for id in &ids {
            let want = format!("{id}/24h");
            assert!(
                t.delivered("twilio", &want, Duration::from_secs(30)).await >= 1,
                "{profile}: no 24 h reminder for {id}"
            );
        }
        // Let both pollers run a few more rounds before counting.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        for id in &ids {
            most = most.max(t.stub_calls_for("twilio", &format!("{id}/24h")).await);
        }
        match profile {
            Profile::Naive => assert!(
                most > 1,
                "naive: two unlocked pollers should send some 24 h reminder twice"
            ),
            Profile::Hardened => assert_eq!(
                most, 1,
                "hardened: one poller at a time, each reminder once"
            ),
        }
        t.env.shutdown().await;
    }
}

/// 000:C12, 001:M-2: overload. With the database slowed and a limit of 2 requests in flight,
/// hardened sheds the excess at once with 503 and Retry-After; naive queues everything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overload_is_shed_with_retry_after_on_hardened_only() {
    for profile in [Profile::Naive, Profile::Hardened] {
        let options = chaos_model::TargetOptions {
            max_in_flight: 2,
            ..chaos_model::TargetOptions::default()
        };
        let t = Target::start_with(profile, "shed", 1, options).await;
        let tok = t.login(1).await;
        t.env
            .proxy_client()
            .add_toxic(
                "postgres",
                json!({ "type": "latency", "attributes": { "latency": 300 } }),
            )
            .await
            .unwrap();
        let burst = (0..12).map(|_| t.get(&tok, "/api/v1/providers").send());
        let answers = futures_util::future::join_all(burst).await;
        let mut shed = 0;
        for a in answers {
            let a = a.unwrap();
            if a.status() == StatusCode::SERVICE_UNAVAILABLE {
                assert!(
                    a.headers().get("retry-after").is_some(),
                    "a shed request says when to retry"
                );
                shed += 1;
            } else {
                assert_eq!(a.status(), StatusCode::OK);
            }
        }
        match profile {
            Profile::Naive => assert_eq!(shed, 0, "naive queues every request"),
            Profile::Hardened => {
                assert!(shed >= 8, "hardened sheds beyond 2 in flight: {shed} of 12")
            }
        }
        t.env.shutdown().await;
    }
}

/// The API's contract, the same on both profiles: errors, cancel with waitlist rebooking,
/// reschedule, availability, the rate limit and metrics.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_contract_holds_on_both_profiles() {
    for profile in [Profile::Naive, Profile::Hardened] {
        let t = Target::start(profile, "api").await;
        let (a, b) = (t.login(1).await, t.login(2).await);

        // Client mistakes are 4xx with a JSON error, never 500.
        let bad = t
            .post(&a, "/api/v1/appointments", json!({ "provider_id": "x" }))
            .send()
            .await
            .unwrap();
        assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
        assert!(bad.json::<Value>().await.unwrap()["error"]["code"].is_string());
        let r = t
            .http
            .post(format!("{}/api/v1/appointments", t.base))
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            t.book(&a, 1, slot(0) + 60).await.0,
            StatusCode::UNPROCESSABLE_ENTITY
        );
        assert_eq!(t.book(&a, 99, slot(0)).await.0, StatusCode::NOT_FOUND);
        let r = t
            .get(&a, "/api/v1/providers/1/available-slots?date=2030-13-01")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        let r = t.get(&a, "/api/v1/nope").send().await.unwrap();
        assert_eq!(r.status(), StatusCode::NOT_FOUND);

        // Book, see the slot leave availability, wait-list, cancel, rebook from the list.
        let (s, booked) = t.book(&a, 1, slot(5)).await;
        assert_eq!(s, StatusCode::CREATED);
        let free: Value = t
            .get(&a, "/api/v1/providers/1/available-slots?date=2030-01-07")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let free: Vec<i64> = free["slots"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_i64().unwrap())
            .collect();
        assert_eq!(free.len(), 15, "16 slots on a Monday, one booked");
        assert!(!free.contains(&slot(5)));
        let w = t
            .post(
                &b,
                "/api/v1/waitlist",
                json!({ "provider_id": 1, "start": slot(5) }),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(w.status(), StatusCode::CREATED);
        let id = booked["id"].as_str().unwrap();
        let c: Value = t
            .post(&a, &format!("/api/v1/appointments/{id}/cancel"), json!({}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(c["appointment"]["status"], "cancelled");
        assert_eq!(
            c["rebooked_from_waitlist"]["patient_id"], 2,
            "{profile}: the waitlisted patient gets the slot"
        );
        let again = t
            .post(&a, &format!("/api/v1/appointments/{id}/cancel"), json!({}))
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), StatusCode::CONFLICT);
        let others = t
            .get(&b, &format!("/api/v1/appointments/{id}"))
            .send()
            .await
            .unwrap();
        assert_eq!(
            others.status(),
            StatusCode::NOT_FOUND,
            "another patient's appointment is not visible"
        );

        // Reschedule into a taken slot is refused; into a free one moves it.
        let (_, mine) = t.book(&a, 1, slot(6)).await;
        let mine = mine["id"].as_str().unwrap().to_string();
        let r = t
            .post(
                &a,
                &format!("/api/v1/appointments/{mine}/reschedule"),
                json!({ "start": slot(5) }),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::CONFLICT);
        let r: Value = t
            .post(
                &a,
                &format!("/api/v1/appointments/{mine}/reschedule"),
                json!({ "start": slot(7) }),
            )
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(r["start"], slot(7));
        assert_eq!(r["version"], 2);

        // The rate limit: 100 requests a minute per user, then 429 with Retry-After.
        let c = t.login(3).await;
        let mut limited = None;
        for i in 0..110 {
            let r = t.get(&c, "/api/v1/providers").send().await.unwrap();
            if r.status() == StatusCode::TOO_MANY_REQUESTS {
                limited = Some((i, r.headers().get("retry-after").is_some()));
                break;
            }
        }
        let (at, retry_after) = limited.expect("no 429 within 110 requests");
        assert!(at >= 99, "limited after only {at} requests");
        assert!(retry_after, "429 carries Retry-After");

        let metrics = t
            .http
            .get(format!("{}/metrics", t.base))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            metrics.contains("mediconnect_http_requests_total{"),
            "{metrics}"
        );
        assert!(
            metrics.contains("mediconnect_bookings_total{outcome=\"created\"}"),
            "{metrics}"
        );
        t.env.shutdown().await;
    }
}

impl Target {
    /// One value of a query, straight from the database.
    async fn scalar<T: for<'a> tokio_postgres::types::FromSql<'a>>(&self, sql: &str) -> T {
        let (client, conn) =
            tokio_postgres::connect(&self.env.endpoints().postgres_direct, tokio_postgres::NoTls)
                .await
                .unwrap();
        tokio::spawn(conn);
        client.query_one(sql, &[]).await.unwrap().get(0)
    }

    /// Set a stub's fault knobs.
    async fn knobs(&self, stub: &str, knobs: Value) {
        let url = format!("{}/knobs", self.env.endpoints().stubs[stub]);
        let r = self.http.post(url).json(&knobs).send().await.unwrap();
        assert!(r.status().is_success(), "{stub} knobs: {}", r.status());
    }

    /// Every call the EHR stub answered with success that names `appointment`: (method, path,
    /// FHIR status of the body).
    async fn ehr_pushes(&self, appointment: &str) -> Vec<(String, String, String)> {
        let url = format!("{}/calls", self.env.endpoints().stubs["ehr"]);
        let calls: Vec<Value> = self
            .http
            .get(url)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        calls
            .iter()
            .filter(|c| {
                c["status"].as_u64().is_some_and(|s| s < 300)
                    && c["body"].to_string().contains(appointment)
            })
            .map(|c| {
                let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
                (s(&c["method"]), s(&c["path"]), s(&c["body"]["status"]))
            })
            .collect()
    }

    /// Poll `ehr_pushes(appointment)` until `done` holds, or panic after `within`.
    async fn await_pushes(
        &self,
        appointment: &str,
        within: Duration,
        done: impl Fn(&[(String, String, String)]) -> bool,
    ) -> Vec<(String, String, String)> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let pushes = self.ehr_pushes(appointment).await;
            if done(&pushes) {
                return pushes;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "EHR pushes of {appointment} after {within:?}: {pushes:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Resources the EHR holds for one appointment, from its pushes: every POST creates one, PUTs
/// to one path upsert one.
fn ehr_resources(pushes: &[(String, String, String)]) -> usize {
    let posts = pushes.iter().filter(|p| p.0 == "POST").count();
    let put_paths: std::collections::BTreeSet<&str> = pushes
        .iter()
        .filter(|p| p.0 == "PUT")
        .map(|p| p.1.as_str())
        .collect();
    posts + put_paths.len()
}

/// 000:S7: an EHR slower than the sync's 2 s timeout. Both profiles push again what timed
/// out; naive's POST creates a second resource, hardened's PUT to the appointment's own id
/// overwrites. Naive never pushes a cancellation; hardened pushes every new version.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_ehr_gets_duplicates_on_naive_and_exactly_once_on_hardened() {
    for profile in [Profile::Naive, Profile::Hardened] {
        let t = Target::start(profile, "ehr").await;
        let tok = t.login(1).await;
        // Answers are held 2.5 s in the proxy: the EHR has stored the resource, the client
        // has given up.
        let proxy = t.env.proxy_client();
        proxy
            .add_toxic(
                "ehr",
                json!({ "name": "slow", "type": "latency", "attributes": { "latency": 2500 } }),
            )
            .await
            .unwrap();
        let mut ids = Vec::new();
        for n in 0..2 {
            let (s, a) = t.book(&tok, 1, slot(n)).await;
            assert_eq!(s, StatusCode::CREATED);
            ids.push(a["id"].as_str().unwrap().to_string());
        }
        // Each is pushed again after the timeout.
        for id in &ids {
            t.await_pushes(id, Duration::from_secs(30), |p| p.len() >= 2)
                .await;
        }
        proxy.remove_toxic("ehr", "slow").await.unwrap();
        let synced = format!(
            "SELECT count(*) FROM ehr_sync WHERE appointment_id::text IN ('{}', '{}')",
            ids[0], ids[1]
        );
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while t.scalar::<i64>(&synced).await < 2 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{profile}: never synced"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let most = {
            let mut most = 0;
            for id in &ids {
                most = most.max(ehr_resources(&t.ehr_pushes(id).await));
            }
            most
        };

        // Cancel the first; then book another and wait until a later round has pushed it.
        let c = t
            .post(
                &tok,
                &format!("/api/v1/appointments/{}/cancel", ids[0]),
                json!({}),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(c.status(), StatusCode::OK);
        let (_, later) = t.book(&tok, 1, slot(5)).await;
        let later = later["id"].as_str().unwrap().to_string();
        t.await_pushes(&later, Duration::from_secs(30), |p| !p.is_empty())
            .await;
        let cancelled = t
            .ehr_pushes(&ids[0])
            .await
            .iter()
            .any(|p| p.2 == "cancelled");
        match profile {
            Profile::Naive => {
                assert!(most >= 2, "naive: a timed-out POST is posted again: {most}");
                assert!(!cancelled, "naive never pushes a cancellation");
            }
            Profile::Hardened => {
                assert_eq!(most, 1, "hardened: one resource per appointment");
                assert!(cancelled, "hardened pushes the cancellation");
            }
        }
        t.env.shutdown().await;
    }
}

/// 000:C4, 001:S-1 and the bulkheads: Twilio hangs. Naive has no timeout and handles one
/// reminder at a time, so nothing at all is sent while it hangs, e-mails included; hardened
/// times the SMS out, keeps sending e-mails beside it, and sends every SMS once Twilio is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_twilio_stalls_every_reminder_on_naive_only() {
    for profile in [Profile::Naive, Profile::Hardened] {
        let t = Target::start(profile, "hang").await;
        let tok = t.login(1).await;
        t.knobs("twilio", json!({ "hang": true })).await;
        let mut ids = Vec::new();
        for n in 0..3 {
            let (s, a) = t.book(&tok, 2, slot(n)).await;
            assert_eq!(s, StatusCode::CREATED);
            ids.push(a["id"].as_str().unwrap().to_string());
        }
        // The window is three times hardened's 3 s SMS timeout; hardened's e-mails need none
        // of it.
        let mut emails = 0;
        for id in &ids {
            emails += t.delivered("sendgrid", id, Duration::from_secs(9)).await;
        }
        match profile {
            Profile::Naive => assert_eq!(emails, 0, "naive: the hang stops every e-mail too"),
            Profile::Hardened => assert_eq!(emails, 3, "hardened: e-mails flow beside the hang"),
        }
        // Twilio answers again: everything is delivered, and no e-mail twice.
        t.knobs("twilio", json!({})).await;
        for id in &ids {
            assert!(
                t.delivered("twilio", id, Duration::from_secs(30)).await >= 1,
                "{profile}: the SMS for {id} arrives once Twilio is back"
            );
            assert_eq!(
                t.delivered("sendgrid", id, Duration::from_secs(30)).await,
                1,
                "{profile}: one e-mail for {id}"
            );
        }
        t.env.shutdown().await;
    }
}
