//! MediConnect against real PostgreSQL, Redis and RabbitMQ started by the harness's local
//! environment: for each reviewed finding, the naive profile shows the flaw and the hardened
//! profile the countermeasure; and the API's contract (errors, rate limit, metrics).

mod support;

use std::time::Duration;

use chaos_engine::env::{Env, EnvConfig};
use chaos_model::{Profile, Service};
use reqwest::StatusCode;
use serde_json::{Value, json};
use support::{Fake, Knob, Providers, Replica};

/// 2030-01-07 10:00 UTC, a Monday slot; `slot(n)` is the n-th half hour after it (same day
/// for n < 14).
fn slot(n: i64) -> i64 {
    1_893_974_400 + 10 * 3600 + n * 1800
}

struct Target {
    env: Env,
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
        let cfg = EnvConfig {
            run_id: format!("mediconnect-{name}-{profile}-{}", std::process::id()),
            profile,
            replicas,
            providers: 3,
            patients: 40,
            seed: 1,
            options,
            keep_dir: false,
            kind: chaos_model::EnvKind::Local,
            images: chaos_engine::env::docker::images::Build::Never,
        };
        let env = Env::start(&cfg, &|_m: String| {})
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
        let t = Target::start(profile, "redis").await;
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

        // A login during the outage: naive cannot create a session; hardened keeps it in
        // PostgreSQL only.
        let login = t
            .http
            .post(format!("{}/api/v1/sessions", t.base))
            .json(&json!({ "username": "patient-2", "password": "pw-2" }))
            .send()
            .await
            .unwrap();
        let during_login = match profile {
            Profile::Naive => {
                assert_eq!(login.status(), StatusCode::SERVICE_UNAVAILABLE);
                assert!(login.headers().get("retry-after").is_some());
                None
            }
            Profile::Hardened => {
                assert_eq!(login.status(), StatusCode::CREATED);
                let v: Value = login.json().await.unwrap();
                Some(v["token"].as_str().unwrap().to_string())
            }
        };

        t.env.restart(Service::Redis).await.unwrap();
        // The restarted Redis is empty (no persistence): naive has lost every session.
        let after = providers(&t, &tok).await.unwrap().status();
        match profile {
            Profile::Naive => assert_eq!(after, StatusCode::UNAUTHORIZED),
            Profile::Hardened => assert_eq!(after, StatusCode::OK),
        }
        if let Some(tok2) = during_login {
            assert_eq!(
                providers(&t, &tok2).await.unwrap().status(),
                StatusCode::OK,
                "a session created while Redis was down survives its return"
            );
        }
        let forged = providers(&t, "not-a-session").await.unwrap().status();
        assert_eq!(
            forged,
            StatusCode::UNAUTHORIZED,
            "{profile}: still fails closed"
        );
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
        let t = Target::start(profile, "broker").await;
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
        let w = t
            .post(
                &b,
                "/api/v1/waitlist",
                json!({ "provider_id": 1, "start": slot(6) }),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(w.status(), StatusCode::CREATED);
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
        assert_eq!(
            r["rebooked_from_waitlist"]["patient_id"], 2,
            "{profile}: the freed slot goes to its waitlist: {r}"
        );
        assert_eq!(r["rebooked_from_waitlist"]["start"], slot(6));
        let r: Value = t
            .post(
                &a,
                &format!("/api/v1/appointments/{mine}/reschedule"),
                json!({ "start": slot(8) }),
            )
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(r["version"], 3);
        assert_eq!(r["rebooked_from_waitlist"], Value::Null, "{r}");

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

/// An environment without replicas of its own: the test starts them (to signal them) and
/// may point them at in-process providers.
async fn bare_env(profile: Profile, name: &str) -> Env {
    let cfg = EnvConfig {
        run_id: format!("mediconnect-{name}-{profile}-{}", std::process::id()),
        profile,
        replicas: 0,
        providers: 3,
        patients: 40,
        seed: 1,
        options: chaos_model::TargetOptions::default(),
        keep_dir: false,
        kind: chaos_model::EnvKind::Local,
        images: chaos_engine::env::docker::images::Build::Never,
    };
    Env::start(&cfg, &|_m: String| {})
        .await
        .unwrap_or_else(|e| panic!("environment: {e}"))
}

/// One value of a query, straight from the database.
async fn scalar<T: for<'a> tokio_postgres::types::FromSql<'a>>(env: &Env, sql: &str) -> T {
    let (client, conn) =
        tokio_postgres::connect(&env.endpoints().postgres_direct, tokio_postgres::NoTls)
            .await
            .unwrap();
    tokio::spawn(conn);
    client.query_one(sql, &[]).await.unwrap().get(0)
}

/// Poll `sql` until it yields `want`, or panic after `within`.
async fn await_scalar(env: &Env, sql: &str, want: i64, within: Duration) {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let got: i64 = scalar(env, sql).await;
        if got == want {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{sql}: {got}, wanted {want} within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A session on the database, bypassing the proxy, that holds `LOCK TABLE <table>` until
/// dropped (its transaction then ends with the connection).
async fn hold_lock(env: &Env, table: &str) -> tokio_postgres::Client {
    let (client, conn) =
        tokio_postgres::connect(&env.endpoints().postgres_direct, tokio_postgres::NoTls)
            .await
            .unwrap();
    tokio::spawn(conn);
    client
        .batch_execute(&format!(
            "BEGIN; LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE"
        ))
        .await
        .unwrap();
    client
}

/// The API of one replica.
struct Api {
    http: reqwest::Client,
    base: String,
}

impl Api {
    fn new(base: &str) -> Api {
        Api {
            http: reqwest::Client::builder()
                .no_proxy()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap(),
            base: base.to_string(),
        }
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

    /// Book and return the appointment's id, asserting 201.
    async fn book(&self, token: &str, provider: i32, start: i64) -> String {
        let r = self
            .post(
                token,
                "/api/v1/appointments",
                json!({ "provider_id": provider, "start": start }),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::CREATED);
        r.json::<Value>().await.unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string()
    }

    async fn metrics(&self) -> String {
        self.http
            .get(format!("{}/metrics", self.base))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// Poll readiness until its status is `want`, or panic after `within`; returns whether
    /// the answer carried `Retry-After`.
    async fn await_readiness(&self, want: StatusCode, within: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let r = self
                .http
                .get(format!("{}/health/readiness", self.base))
                .send()
                .await
                .unwrap();
            if r.status() == want {
                return r.headers().get("retry-after").is_some();
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "readiness {} after {within:?}, wanted {want}",
                r.status()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Poll `/metrics` until `gauge` (name with labels) satisfies `ok`, or panic.
    async fn await_gauge(&self, gauge: &str, within: Duration, ok: impl Fn(f64) -> bool) {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let v = gauge_value(&self.metrics().await, gauge);
            if v.is_some_and(&ok) {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{gauge} = {v:?} after {within:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// The value of one series (`name` or `name{labels}`) in Prometheus text.
fn gauge_value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT_SPAN: &str = "00f067aa0ba902b7";

/// Whether a `traceparent` continues `TRACE` in a new span.
fn continues_trace(tp: Option<&str>) -> bool {
    let Some(tp) = tp else { return false };
    let parts: Vec<&str> = tp.split('-').collect();
    parts.len() == 4
        && parts[0] == "00"
        && parts[1] == TRACE
        && parts[2].len() == 16
        && parts[2] != PARENT_SPAN
        && parts[3].len() == 2
}

/// 000:C13, 001:C-5: no distributed tracing. A booking made with a `traceparent`: hardened
/// sends its trace id on to the confirmation SMS and e-mail (through the outbox and the
/// broker) and to the EHR pushes of the appointment, its cancellation's included, each in a
/// new span; naive sends no `traceparent` at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_trace_reaches_every_call_a_booking_caused_on_hardened_only() {
    for profile in [Profile::Naive, Profile::Hardened] {
        let env = bare_env(profile, "trace").await;
        let fake = Fake::start().await;
        let replica = Replica::start(
            profile,
            env.endpoints(),
            &Providers::at(&fake.base),
            &["--ehr-sync-ms", "200"],
        )
        .await;
        let api = Api::new(&replica.base);
        let tok = api.login(1).await;
        let r = api
            .post(
                &tok,
                "/api/v1/appointments",
                json!({ "provider_id": 1, "start": slot(1) }),
            )
            .header("traceparent", format!("00-{TRACE}-{PARENT_SPAN}-01"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::CREATED);
        let id = r.json::<Value>().await.unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string();
        fake.wait_for(Duration::from_secs(20), "SMS, e-mail and EHR push", |f| {
            f.accepted("twilio", &id) >= 1
                && f.accepted("sendgrid", &id) >= 1
                && f.accepted("ehr", &id) >= 1
        })
        .await;
        if profile == Profile::Hardened {
            let c = api
                .post(
                    &tok,
                    &format!("/api/v1/appointments/{id}/cancel"),
                    json!({}),
                )
                .send()
                .await
                .unwrap();
            assert_eq!(c.status(), StatusCode::OK);
            fake.wait_for(Duration::from_secs(20), "the cancellation's push", |f| {
                f.calls_for("ehr", "PUT", &id)
                    .iter()
                    .any(|c| c.body["status"] == "cancelled")
            })
            .await;
        }
        let calls: Vec<support::Call> = fake
            .calls()
            .into_iter()
            .filter(|c| c.body.to_string().contains(&id))
            .collect();
        for c in &calls {
            match profile {
                Profile::Naive => assert_eq!(
                    c.traceparent, None,
                    "naive propagates nothing: {} {}",
                    c.provider, c.path
                ),
                Profile::Hardened => assert!(
                    continues_trace(c.traceparent.as_deref()),
                    "hardened: {} {} carries {:?}",
                    c.provider,
                    c.path,
                    c.traceparent
                ),
            }
        }
        drop(replica);
        env.shutdown().await;
    }
}

/// 000:C8, 001:S-2: no saturation signals. Hardened exports gauges of requests in flight,
/// the pool, the outbox and each provider's circuit, and they move with the faults: the
/// outbox fills while the broker is down and empties when it is back; Twilio's circuit
/// opens while Twilio fails and closes after. Naive exports its counters only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn saturation_gauges_move_with_faults_on_hardened_only() {
    for profile in [Profile::Naive, Profile::Hardened] {
        let t = Target::start(profile, "gauges").await;
        let api = Api::new(&t.base);
        let tok = api.login(1).await;
        api.book(&tok, 1, slot(0)).await;
        let text = api.metrics().await;
        assert!(text.contains("mediconnect_bookings_total{"), "{text}");
        if profile == Profile::Naive {
            assert!(!text.contains(" gauge\n"), "naive has no gauges: {text}");
            t.env.shutdown().await;
            continue;
        }
        for name in [
            "mediconnect_http_in_flight",
            "mediconnect_db_pool_in_use",
            "mediconnect_db_pool_waiting",
            "mediconnect_outbox_pending",
            "mediconnect_breaker_open",
        ] {
            assert!(
                text.contains(&format!("# TYPE {name} gauge\n")),
                "{name}: {text}"
            );
        }
        for provider in ["twilio", "sendgrid", "ehr"] {
            assert_eq!(
                gauge_value(
                    &text,
                    &format!("mediconnect_breaker_open{{provider=\"{provider}\"}}")
                ),
                Some(0.0),
                "{text}"
            );
        }

        t.env.kill(Service::Rabbitmq).await.unwrap();
        for n in 1..4 {
            api.book(&tok, 1, slot(n)).await;
        }
        api.await_gauge("mediconnect_outbox_pending", Duration::from_secs(10), |v| {
            v >= 3.0
        })
        .await;
        t.env.restart(Service::Rabbitmq).await.unwrap();
        api.await_gauge("mediconnect_outbox_pending", Duration::from_secs(30), |v| {
            v == 0.0
        })
        .await;

        t.knobs("twilio", json!({ "fail_first": 1_000_000 })).await;
        for n in 4..10 {
            api.book(&tok, 2, slot(n)).await;
        }
        let twilio = "mediconnect_breaker_open{provider=\"twilio\"}";
        api.await_gauge(twilio, Duration::from_secs(20), |v| v == 1.0)
            .await;
        t.knobs("twilio", json!({})).await;
        api.await_gauge(twilio, Duration::from_secs(30), |v| v == 0.0)
            .await;
        t.env.shutdown().await;
    }
}

/// 000:S6, 001:M-1: no health check design. Naive's readiness checks nothing: 200 with the
/// database gone. Hardened's answers 200 exactly when the replica can book: with Redis or
/// the broker gone (and then books), not with PostgreSQL gone or a lock on the appointments
/// held (then 503 with `Retry-After`, and so are the bookings).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_follows_the_ability_to_book_on_hardened_only() {
    for profile in [Profile::Naive, Profile::Hardened] {
        let t = Target::start(profile, "ready").await;
        let api = Api::new(&t.base);
        let tok = api.login(1).await;
        let second = Duration::from_secs(5);
        if profile == Profile::Naive {
            t.env.kill(Service::Postgres).await.unwrap();
            let (status, _) = t.book(&tok, 1, slot(0)).await;
            assert_ne!(
                status,
                StatusCode::CREATED,
                "naive cannot book without PostgreSQL"
            );
            let r = api
                .http
                .get(format!("{}/health/readiness", api.base))
                .send()
                .await
                .unwrap();
            assert_eq!(
                r.status(),
                StatusCode::OK,
                "naive's readiness checks nothing"
            );
            t.env.restart(Service::Postgres).await.unwrap();
            t.env.shutdown().await;
            continue;
        }
        for (n, dependency) in [(0, Service::Redis), (1, Service::Rabbitmq)] {
            t.env.kill(dependency).await.unwrap();
            api.await_readiness(StatusCode::OK, second).await;
            assert_eq!(
                t.book(&tok, 1, slot(n)).await.0,
                StatusCode::CREATED,
                "hardened books without {dependency}"
            );
            t.env.restart(dependency).await.unwrap();
        }

        let lock = hold_lock(&t.env, "appointments").await;
        assert!(
            api.await_readiness(StatusCode::SERVICE_UNAVAILABLE, second)
                .await,
            "503 with Retry-After"
        );
        let r = api
            .post(
                &tok,
                "/api/v1/appointments",
                json!({ "provider_id": 1, "start": slot(2) }),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(r.headers().get("retry-after").is_some());
        drop(lock);
        api.await_readiness(StatusCode::OK, second).await;
        assert_eq!(t.book(&tok, 1, slot(2)).await.0, StatusCode::CREATED);

        t.env.kill(Service::Postgres).await.unwrap();
        assert!(
            api.await_readiness(StatusCode::SERVICE_UNAVAILABLE, second)
                .await
        );
        t.env.restart(Service::Postgres).await.unwrap();
        api.await_readiness(StatusCode::OK, Duration::from_secs(15))
            .await;
        t.env.shutdown().await;
    }
}

/// 002:S-4, 002:S-2, 002:M-5: no query timeout, a default pool. While a session holds
/// `LOCK TABLE appointments`, a client with the usual 2 s timeout gives up on naive, which
/// waits as long as the lock is held; hardened answers it in time with 503 and
/// `Retry-After`, the booking at once and a read once its lock wait times out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_table_lock_outwaits_the_client_on_naive_and_is_refused_in_time_on_hardened() {
    for profile in [Profile::Naive, Profile::Hardened] {
        let t = Target::start(profile, "lock").await;
        let api = Api::new(&t.base);
        let tok = api.login(1).await;
        let id = api.book(&tok, 1, slot(0)).await;
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(2))
            .build()
            .unwrap();
        let lock = hold_lock(&t.env, "appointments").await;
        let booking = client
            .post(format!("{}/api/v1/appointments", t.base))
            .bearer_auth(&tok)
            .json(&json!({ "provider_id": 1, "start": slot(1) }))
            .send()
            .await;
        let read = client
            .get(format!("{}/api/v1/appointments/{id}", t.base))
            .bearer_auth(&tok)
            .send()
            .await;
        for (what, answer) in [("booking", booking), ("read", read)] {
            match profile {
                Profile::Naive => assert!(
                    answer.as_ref().is_err_and(reqwest::Error::is_timeout),
                    "naive: the {what} waits out the client: {answer:?}"
                ),
                Profile::Hardened => {
                    let r = answer.unwrap_or_else(|e| panic!("hardened: the {what}: {e}"));
                    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE, "{what}");
                    assert!(r.headers().get("retry-after").is_some(), "{what}");
                }
            }
        }
        drop(lock);
        let ok = api
            .get(&tok, &format!("/api/v1/appointments/{id}"))
            .send()
            .await
            .unwrap();
        assert_eq!(
            ok.status(),
            StatusCode::OK,
            "{profile}: served once the lock is gone"
        );
        t.env.shutdown().await;
    }
}

/// Optimistic locking (the design's `version`), left out of naive's reschedule: concurrent
/// reschedules of one appointment. Naive writes the version it computed from its own read,
/// so several clients are told they moved it, with the same version, and all but the last
/// move are lost. Hardened: every success has its own version, the losers are told 409
/// `version_conflict`, and the database holds the move with the highest version.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_reschedules_lose_updates_on_naive_only() {
    for profile in [Profile::Naive, Profile::Hardened] {
        let t = Target::start(profile, "resched").await;
        let api = Api::new(&t.base);
        let tok = api.login(1).await;
        let mut lost = 0;
        for provider in 1..=3 {
            let id = api.book(&tok, provider, slot(0)).await;
            let moves = (1..=12).map(|n| {
                api.post(
                    &tok,
                    &format!("/api/v1/appointments/{id}/reschedule"),
                    json!({ "start": slot(n) }),
                )
                .send()
            });
            let mut won = Vec::new();
            for r in futures_util::future::join_all(moves).await {
                let r = r.unwrap();
                let status = r.status();
                let body: Value = r.json().await.unwrap();
                match status {
                    StatusCode::OK => {
                        assert!(body.get("rebooked_from_waitlist").is_some(), "{body}");
                        won.push((
                            body["version"].as_i64().unwrap(),
                            body["start"].as_i64().unwrap(),
                        ));
                    }
                    StatusCode::CONFLICT => {
                        assert_eq!(profile, Profile::Hardened, "naive never refuses: {body}");
                        assert_eq!(body["error"]["code"], "version_conflict", "{body}");
                    }
                    s => panic!("{profile}: {s} {body}"),
                }
            }
            let mut versions: Vec<i64> = won.iter().map(|w| w.0).collect();
            versions.sort_unstable();
            versions.dedup();
            lost += won.len() - versions.len();
            if profile == Profile::Hardened {
                let (version, start) = *won.iter().max().unwrap();
                let row: String = scalar(
                    &t.env,
                    &format!("SELECT version || ' ' || extract(epoch FROM starts_at)::bigint FROM appointments WHERE id = '{id}'"),
                )
                .await;
                assert_eq!(
                    row,
                    format!("{version} {start}"),
                    "the last acknowledged move holds"
                );
            }
        }
        match profile {
            Profile::Naive => assert!(lost > 0, "naive: some acknowledged moves share a version"),
            Profile::Hardened => assert_eq!(lost, 0, "hardened: no acknowledged move is lost"),
        }
        t.env.shutdown().await;
    }
}

/// 002:C-5: a schedule cache without invalidation. Two replicas have read Monday's slots;
/// the clinic narrows Monday to 09:00-12:00 through the first. Naive's replicas keep their
/// cached template: both still list and accept 15:00. Hardened refuses it on both at once
/// (422 `not_a_slot`) and lists only the morning.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_narrowed_schedule_is_ignored_by_naive_caches_and_not_by_hardened() {
    for profile in [Profile::Naive, Profile::Hardened] {
        let t =
            Target::start_with(profile, "sched", 2, chaos_model::TargetOptions::default()).await;
        let replicas: Vec<Api> = t
            .env
            .endpoints()
            .target
            .iter()
            .map(|b| Api::new(b))
            .collect();
        let tok = replicas[0].login(1).await;
        let slots = |api: &Api| {
            let req = api.get(&tok, "/api/v1/providers/1/available-slots?date=2030-01-07");
            async move {
                let v: Value = req.send().await.unwrap().json().await.unwrap();
                v["slots"].as_array().unwrap().len()
            }
        };
        for api in &replicas {
            assert_eq!(slots(api).await, 16);
        }
        let mut weekly = vec![
            json!({ "weekday": 0, "start_minute": 540, "end_minute": 720, "slot_minutes": 30 }),
        ];
        for weekday in 1..5 {
            weekly.push(json!({ "weekday": weekday, "start_minute": 540, "end_minute": 1020, "slot_minutes": 30 }));
        }
        let r = replicas[0]
            .http
            .put(format!("{}/api/v1/providers/1/schedule", replicas[0].base))
            .bearer_auth(&tok)
            .json(&json!({ "weekly": weekly }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        // 15:00 and 15:30 on Monday: outside the new hours.
        for (i, api) in replicas.iter().enumerate() {
            let r = api
                .post(
                    &tok,
                    "/api/v1/appointments",
                    json!({ "provider_id": 1, "start": slot(10 + i as i64) }),
                )
                .send()
                .await
                .unwrap();
            match profile {
                Profile::Naive => {
                    assert_eq!(
                        r.status(),
                        StatusCode::CREATED,
                        "naive replica {i} books 15:00"
                    );
                    // 16 slots less the bookings made so far: the afternoon is still listed.
                    assert_eq!(
                        slots(api).await,
                        15 - i,
                        "naive replica {i} still lists the afternoon"
                    );
                }
                Profile::Hardened => {
                    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY, "replica {i}");
                    assert_eq!(
                        r.json::<Value>().await.unwrap()["error"]["code"],
                        "not_a_slot"
                    );
                    assert_eq!(
                        slots(api).await,
                        6,
                        "hardened replica {i} lists 09:00-11:30"
                    );
                }
            }
        }
        t.env.shutdown().await;
    }
}

/// 000:C6: the answer to a send is lost (every answer from the providers is reset, after
/// they acted). Naive sends the SMS again and again; hardened records that it cannot know,
/// asks Twilio's and SendGrid's logs before sending again, finds its messages there once the
/// answers come through, and sends each once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_answer_is_sent_again_by_naive_and_looked_up_by_hardened() {
    for profile in [Profile::Naive, Profile::Hardened] {
        let env = bare_env(profile, "lost").await;
        let fake = Fake::start().await;
        let proxy = env.proxy_client();
        let info = proxy
            .create_proxy(
                "providers",
                "127.0.0.1:0",
                fake.base.trim_start_matches("http://"),
            )
            .await
            .unwrap();
        let replica = Replica::start(
            profile,
            env.endpoints(),
            &Providers::at(&format!("http://{}", info.listen)),
            &["--ehr-sync-ms", "0", "--poll-ms", "0"],
        )
        .await;
        let api = Api::new(&replica.base);
        let tok = api.login(1).await;
        proxy
            .add_toxic(
                "providers",
                json!({ "name": "reset", "type": "reset_peer", "attributes": { "timeout": 0 } }),
            )
            .await
            .unwrap();
        let id = api.book(&tok, 1, slot(3)).await;
        match profile {
            Profile::Naive => {
                fake.wait_for(Duration::from_secs(15), "naive resends", |f| {
                    f.accepted("twilio", &id) >= 3
                })
                .await;
                proxy.remove_toxic("providers", "reset").await.unwrap();
            }
            Profile::Hardened => {
                fake.wait_for(Duration::from_secs(15), "hardened looks up", |f| {
                    f.accepted("twilio", &id) >= 1
                        && f.accepted("sendgrid", &id) >= 1
                        && f.lookups("twilio") >= 1
                        && f.lookups("sendgrid") >= 1
                })
                .await;
                proxy.remove_toxic("providers", "reset").await.unwrap();
                await_scalar(
                    &env,
                    &format!("SELECT count(*) FROM deliveries WHERE appointment_id = '{id}' AND status = 'sent'"),
                    2,
                    Duration::from_secs(30),
                )
                .await;
                assert_eq!(fake.accepted("twilio", &id), 1, "one SMS");
                assert_eq!(fake.accepted("sendgrid", &id), 1, "one e-mail");
            }
        }
        drop(replica);
        env.shutdown().await;
    }
}

/// 001:C-2, 000:S1: the EHR fails. Naive pushes its whole backlog at it every round; hardened's
/// breaker opens after three failures and lets a trial through after ever longer pauses (its
/// gauge says so), and both catch up once the EHR is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_ehr_is_hammered_by_naive_and_backed_off_by_hardened() {
    for profile in [Profile::Naive, Profile::Hardened] {
        let t = Target::start(profile, "ehrfail").await;
        let api = Api::new(&t.base);
        let tok = api.login(1).await;
        t.knobs("ehr", json!({ "fail_first": 1_000_000 })).await;
        let mut ids = Vec::new();
        for n in 0..3 {
            ids.push(api.book(&tok, 1, slot(n)).await);
        }
        // The observation window: eight rounds of the sync with the EHR failing.
        tokio::time::sleep(Duration::from_secs(8)).await;
        let url = format!("{}/calls", t.env.endpoints().stubs["ehr"]);
        let calls = t
            .http
            .get(url)
            .send()
            .await
            .unwrap()
            .json::<Vec<Value>>()
            .await
            .unwrap()
            .len();
        match profile {
            Profile::Naive => assert!(calls >= 15, "naive retries everything every round: {calls}"),
            Profile::Hardened => {
                assert!(calls <= 8, "hardened backs off: {calls} calls in 8 s");
                api.await_gauge(
                    "mediconnect_breaker_open{provider=\"ehr\"}",
                    Duration::from_secs(5),
                    |v| v == 1.0,
                )
                .await;
            }
        }
        t.knobs("ehr", json!({})).await;
        let synced = format!(
            "SELECT count(*) FROM ehr_sync WHERE appointment_id::text IN ('{}', '{}', '{}')",
            ids[0], ids[1], ids[2]
        );
        await_scalar(&t.env, &synced, 3, Duration::from_secs(40)).await;
        t.env.shutdown().await;
    }
}

/// 000:S6 (graceful shutdown): SIGTERM while a request and an e-mail are in flight.
/// Hardened finishes both, hands back no claim, closes and exits 0. Naive just dies: the
/// request is cut off, and its unacknowledged reminder comes back to the next replica, which
/// sends the SMS again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_work_on_hardened_and_cuts_it_off_on_naive() {
    for profile in [Profile::Naive, Profile::Hardened] {
        let env = bare_env(profile, "stop").await;
        let fake = Fake::start().await;
        fake.set(
            "sendgrid",
            Knob {
                late_answer_ms: 2500,
                refuse: false,
            },
        );
        let providers = Providers::at(&fake.base);
        let quiet = ["--ehr-sync-ms", "0", "--poll-ms", "0"];
        let mut a = Replica::start(profile, env.endpoints(), &providers, &quiet).await;
        let api = Api::new(&a.base);
        let tok = api.login(1).await;
        let id = api.book(&tok, 1, slot(2)).await;
        fake.wait_for(Duration::from_secs(20), "the e-mail in flight", |f| {
            !f.calls_for("sendgrid", "POST", &id).is_empty()
        })
        .await;
        let mut lock = None;
        match profile {
            // Slow the database so the request stays in flight; the gauge shows it is.
            Profile::Hardened => {
                env.proxy_client()
                    .add_toxic("postgres", json!({ "name": "slow", "type": "latency", "attributes": { "latency": 100 } }))
                    .await
                    .unwrap();
            }
            // Naive has no gauge: hold the table its booking needs and watch it wait.
            Profile::Naive => lock = Some(hold_lock(&env, "appointments").await),
        }
        let request = tokio::spawn(
            api.post(
                &tok,
                "/api/v1/appointments",
                json!({ "provider_id": 1, "start": slot(3) }),
            )
            .send(),
        );
        match profile {
            Profile::Hardened => {
                api.await_gauge("mediconnect_http_in_flight", Duration::from_secs(5), |v| {
                    v >= 1.0
                })
                .await
            }
            Profile::Naive => {
                await_scalar(
                    &env,
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'",
                    1,
                    Duration::from_secs(5),
                )
                .await
            }
        }
        a.terminate();
        let status = a.exit(Duration::from_secs(15)).await;
        let answer = request.await.unwrap();
        drop(lock);
        match profile {
            Profile::Hardened => {
                assert!(status.success(), "hardened exits 0: {status}");
                assert_eq!(
                    answer.unwrap().status(),
                    StatusCode::CREATED,
                    "the request finished"
                );
                let mail = fake.calls_for("sendgrid", "POST", &id);
                assert!(
                    mail.iter().all(|c| c.answered),
                    "the e-mail was waited for: {mail:?}"
                );
                env.proxy_client()
                    .remove_toxic("postgres", "slow")
                    .await
                    .unwrap();
                let left: i64 = scalar(
                    &env,
                    &format!("SELECT count(*) FROM deliveries WHERE appointment_id = '{id}' AND status <> 'sent'"),
                )
                .await;
                assert_eq!(left, 0, "both channels recorded as sent, no claim left");
            }
            Profile::Naive => {
                assert!(!status.success(), "naive dies by the signal: {status}");
                assert!(answer.is_err(), "naive cuts the request off: {answer:?}");
                let _b = Replica::start(profile, env.endpoints(), &providers, &quiet).await;
                fake.wait_for(Duration::from_secs(20), "the SMS sent again", |f| {
                    f.accepted("twilio", &id) >= 2
                })
                .await;
            }
        }
        env.shutdown().await;
    }
}

/// A replica killed (SIGKILL) while an e-mail is in flight, a second replica beside it.
/// Naive's second replica gets the reminder back and sends the SMS (and e-mail) again.
/// Hardened's finds the SMS done and the e-mail claimed; once the dead worker's lease runs
/// out it takes the claim over, asks SendGrid's log, finds the e-mail there and sends
/// nothing twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_killed_mid_send_duplicates_on_naive_and_loses_nothing_on_hardened() {
    for profile in [Profile::Naive, Profile::Hardened] {
        let env = bare_env(profile, "kill").await;
        let fake = Fake::start().await;
        fake.set(
            "sendgrid",
            Knob {
                late_answer_ms: 2500,
                refuse: false,
            },
        );
        let providers = Providers::at(&fake.base);
        let quiet = ["--ehr-sync-ms", "0", "--poll-ms", "0"];
        let mut a = Replica::start(profile, env.endpoints(), &providers, &quiet).await;
        let api = Api::new(&a.base);
        let tok = api.login(1).await;
        let id = api.book(&tok, 1, slot(4)).await;
        fake.wait_for(
            Duration::from_secs(20),
            "the SMS sent, the e-mail in flight",
            |f| f.accepted("twilio", &id) == 1 && !f.calls_for("sendgrid", "POST", &id).is_empty(),
        )
        .await;
        let _b = Replica::start(profile, env.endpoints(), &providers, &quiet).await;
        a.kill().await;
        match profile {
            Profile::Naive => {
                fake.wait_for(Duration::from_secs(30), "the SMS sent again", |f| {
                    f.accepted("twilio", &id) >= 2
                })
                .await;
            }
            Profile::Hardened => {
                await_scalar(
                    &env,
                    &format!("SELECT count(*) FROM deliveries WHERE appointment_id = '{id}' AND status = 'sent'"),
                    2,
                    Duration::from_secs(40),
                )
                .await;
                assert_eq!(fake.accepted("twilio", &id), 1, "one SMS");
                assert_eq!(fake.accepted("sendgrid", &id), 1, "one e-mail");
                assert!(fake.lookups("sendgrid") >= 1, "SendGrid's log was asked");
            }
        }
        env.shutdown().await;
    }
}

/// Every wait of hardened has a deadline shorter than a client's 2 s: with PostgreSQL,
/// Redis or RabbitMQ hanging (a `timeout` toxic: nothing passes, nothing closes), each of its
/// answers arrives in time, refusals as 503 with `Retry-After`, and without Redis or the
/// broker it still books. Naive's booking waits on the hung database past the client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hardened_answers_in_time_while_a_dependency_hangs() {
    for profile in [Profile::Naive, Profile::Hardened] {
        let t = Target::start(profile, "hangdep").await;
        let api = Api::new(&t.base);
        let tok = api.login(1).await;
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(2))
            .build()
            .unwrap();
        let proxy = t.env.proxy_client();
        for (n, service) in ["postgres", "redis", "rabbitmq"].into_iter().enumerate() {
            proxy
                .add_toxic(
                    service,
                    json!({ "name": "hang", "type": "timeout", "attributes": { "timeout": 0 } }),
                )
                .await
                .unwrap();
            let booking = client
                .post(format!("{}/api/v1/appointments", t.base))
                .bearer_auth(&tok)
                .json(&json!({ "provider_id": 1, "start": slot(n as i64) }))
                .send()
                .await;
            let read = client
                .get(format!("{}/api/v1/providers", t.base))
                .bearer_auth(&tok)
                .send()
                .await;
            match profile {
                Profile::Naive => {
                    if service == "postgres" {
                        assert!(
                            booking.as_ref().is_err_and(reqwest::Error::is_timeout),
                            "naive waits on a hung database: {booking:?}"
                        );
                    }
                }
                Profile::Hardened => {
                    for (what, answer) in [("booking", booking), ("read", read)] {
                        let r = answer.unwrap_or_else(|e| {
                            panic!("hardened, {service} hanging: the {what} was not answered: {e}")
                        });
                        let status = r.status();
                        if status == StatusCode::SERVICE_UNAVAILABLE {
                            assert!(r.headers().get("retry-after").is_some(), "{what}");
                        }
                        match (service, what) {
                            ("postgres", _) => {
                                assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{what}")
                            }
                            (_, "booking") => assert_eq!(
                                status,
                                StatusCode::CREATED,
                                "hardened books while {service} hangs"
                            ),
                            _ => assert_eq!(status, StatusCode::OK, "{what}"),
                        }
                    }
                }
            }
            proxy.remove_toxic(service, "hang").await.unwrap();
            if profile == Profile::Hardened {
                api.await_readiness(StatusCode::OK, Duration::from_secs(10))
                    .await;
            }
        }
        t.env.shutdown().await;
    }
}
