//! MediConnect's capacity on this machine, both profiles side by side: bookings per second
//! with a closed loop of clients, latency at a fixed 200 bookings/s (open loop, measured
//! from each request's due time), and available-slots latency with 1,000,000 appointments in
//! the table. Real PostgreSQL, Redis and RabbitMQ, started by the harness's local
//! environment, with every dependency behind the harness's proxy as in a run.
//!
//! Run with `just bench-target` (which builds the release binaries first).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use chaos_engine::env::{Env, EnvConfig};
use chaos_model::Profile;
use reqwest::StatusCode;
use serde_json::json;

const PROVIDERS: u32 = 100;
const PATIENTS: u32 = 200;
const CLIENTS: usize = 64;
const CAPACITY_FOR: Duration = Duration::from_secs(10);
const FIXED_RATE: u32 = 200;
const FIXED_FOR: Duration = Duration::from_secs(10);
const BULK_PER_PROVIDER: i64 = 10_000;
const SLOT_QUERIES: usize = 2_000;
/// 2030-01-07, a Monday (Unix seconds at 00:00 UTC).
const MONDAY: i64 = 1_893_974_400;
/// 2031-01-06, a Monday: where the bulk appointments start, after every benchmark booking.
const BULK_MONDAY: &str = "2031-01-06";

/// The n-th weekday slot of a provider's default template (Monday to Friday, 09:00-17:00,
/// half hours): distinct for every n, so no booking meets a conflict.
fn nth_slot(n: usize) -> (i32, i64) {
    let provider = (n % PROVIDERS as usize) as i32 + 1;
    let k = (n / PROVIDERS as usize) as i64;
    let (day, half_hour) = (k / 16, k % 16);
    let date = MONDAY + ((day / 5) * 7 + day % 5) * 86_400;
    (provider, date + 9 * 3600 + half_hour * 1800)
}

struct Bench {
    env: Env,
    http: reqwest::Client,
    base: String,
    tokens: Vec<String>,
    next_slot: AtomicUsize,
}

impl Bench {
    async fn start(profile: Profile) -> Bench {
        let cfg = EnvConfig {
            run_id: format!("bench-capacity-{profile}-{}", std::process::id()),
            profile,
            replicas: 1,
            providers: PROVIDERS,
            patients: PATIENTS,
            seed: 1,
            options: chaos_model::TargetOptions {
                rate_limit: 1_000_000,
                max_in_flight: 1_024,
                ..chaos_model::TargetOptions::default()
            },
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
            .pool_max_idle_per_host(CLIENTS)
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        let mut tokens = Vec::new();
        for p in 1..=PATIENTS {
            let r = http
                .post(format!("{base}/api/v1/sessions"))
                .json(&json!({ "username": format!("patient-{p}"), "password": format!("pw-{p}") }))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::CREATED);
            let v: serde_json::Value = r.json().await.unwrap();
            tokens.push(v["token"].as_str().unwrap().to_string());
        }
        Bench {
            env,
            http,
            base,
            tokens,
            next_slot: AtomicUsize::new(0),
        }
    }

    /// Book the next free slot; the latency and whether it was created.
    async fn book_one(&self) -> (Duration, bool) {
        let n = self.next_slot.fetch_add(1, Ordering::Relaxed);
        let (provider, start) = nth_slot(n);
        let token = &self.tokens[n % self.tokens.len()];
        let t0 = Instant::now();
        let r = self
            .http
            .post(format!("{}/api/v1/appointments", self.base))
            .bearer_auth(token)
            .json(&json!({ "provider_id": provider, "start": start }))
            .send()
            .await;
        let created = matches!(&r, Ok(r) if r.status() == StatusCode::CREATED);
        if let Ok(r) = r {
            let _ = r.bytes().await;
        }
        (t0.elapsed(), created)
    }

    /// Closed loop: `CLIENTS` clients book back to back. Bookings created per second.
    async fn capacity(self: &Arc<Self>) -> (f64, usize) {
        let deadline = Instant::now() + CAPACITY_FOR;
        let started = Instant::now();
        let workers = (0..CLIENTS).map(|_| {
            let b = Arc::clone(self);
            tokio::spawn(async move {
                let (mut created, mut failed) = (0usize, 0usize);
                while Instant::now() < deadline {
                    match b.book_one().await {
                        (_, true) => created += 1,
                        (_, false) => failed += 1,
                    }
                }
                (created, failed)
            })
        });
        let (mut created, mut failed) = (0, 0);
        for w in futures_util::future::join_all(workers).await {
            let (c, f) = w.unwrap();
            created += c;
            failed += f;
        }
        (created as f64 / started.elapsed().as_secs_f64(), failed)
    }

    /// Open loop at `FIXED_RATE`: latencies from each booking's due time, so a stall delays
    /// every later one (no coordinated omission).
    async fn at_fixed_rate(self: &Arc<Self>) -> (Vec<Duration>, usize) {
        let count = (FIXED_RATE as u64 * FIXED_FOR.as_secs()) as usize;
        let interval = Duration::from_secs(1) / FIXED_RATE;
        let start = tokio::time::Instant::now() + Duration::from_millis(50);
        let ops = (0..count).map(|i| {
            let b = Arc::clone(self);
            let due = start + interval * i as u32;
            tokio::spawn(async move {
                tokio::time::sleep_until(due).await;
                let (_, created) = b.book_one().await;
                (due.elapsed(), created)
            })
        });
        let mut lat = Vec::with_capacity(count);
        let mut failed = 0;
        for r in futures_util::future::join_all(ops).await {
            let (d, created) = r.unwrap();
            lat.push(d);
            failed += usize::from(!created);
        }
        (lat, failed)
    }

    /// Fill the table to 1,000,000 appointments (marked as synced to the EHR, so the sync
    /// does not spend the measurement pushing them), then time available-slots queries of
    /// random providers and days inside the filled range.
    async fn slots_with_a_million(&self) -> (Vec<Duration>, i64) {
        let (db, conn) =
            tokio_postgres::connect(&self.env.endpoints().postgres_direct, tokio_postgres::NoTls)
                .await
                .unwrap();
        tokio::spawn(conn);
        let existing: i64 = db
            .query_one("SELECT count(*) FROM appointments", &[])
            .await
            .unwrap()
            .get(0);
        let per_provider = BULK_PER_PROVIDER - existing / i64::from(PROVIDERS);
        db.batch_execute(&format!(
            "INSERT INTO appointments (patient_id, provider_id, starts_at)
             SELECT 1 + (n % {PATIENTS}), p,
                    timestamptz '{BULK_MONDAY} 09:00Z'
                    + ((n / 16) / 5 * 7 + (n / 16) % 5) * interval '1 day'
                    + (n % 16) * interval '30 minutes'
             FROM generate_series(1, {PROVIDERS}) p, generate_series(0, {per_provider} - 1) n;
             INSERT INTO ehr_sync (appointment_id, version)
             SELECT id, version FROM appointments ON CONFLICT DO NOTHING;
             ANALYZE;"
        ))
        .await
        .unwrap();
        let total: i64 = db
            .query_one("SELECT count(*) FROM appointments", &[])
            .await
            .unwrap()
            .get(0);
        // The filled range spans per_provider / 16 weekdays; query inside it.
        let weekdays = per_provider / 16;
        let bulk_monday = MONDAY + 52 * 7 * 86_400; // BULK_MONDAY
        let mut rng = 0x9e37_79b9_7f4a_7c15_u64;
        let mut lat = Vec::with_capacity(SLOT_QUERIES);
        for _ in 0..SLOT_QUERIES {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            let provider = (rng % u64::from(PROVIDERS)) as i64 + 1;
            let day = ((rng >> 20) % weekdays as u64) as i64;
            let date = bulk_monday + ((day / 5) * 7 + day % 5) * 86_400;
            let t0 = Instant::now();
            let r = self
                .http
                .get(format!(
                    "{}/api/v1/providers/{provider}/available-slots?date={}",
                    self.base,
                    civil(date)
                ))
                .bearer_auth(&self.tokens[0])
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::OK);
            let _ = r.bytes().await;
            lat.push(t0.elapsed());
        }
        (lat, total)
    }
}

/// YYYY-MM-DD of a Unix time (days-from-civil inverse, Howard Hinnant's algorithm).
fn civil(unix: i64) -> String {
    let z = unix.div_euclid(86_400) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

#[derive(Clone, Copy)]
struct Figures {
    capacity: f64,
    capacity_failed: usize,
    fixed_p50: Duration,
    fixed_p99: Duration,
    fixed_failed: usize,
    slots_p50: Duration,
    slots_p99: Duration,
    rows: i64,
}

async fn measure(profile: Profile) -> Figures {
    eprintln!("{profile}: starting the environment");
    let b = Arc::new(Bench::start(profile).await);
    eprintln!("{profile}: capacity, {CLIENTS} clients for {CAPACITY_FOR:?}");
    let (capacity, capacity_failed) = b.capacity().await;
    eprintln!("{profile}: {FIXED_RATE} bookings/s for {FIXED_FOR:?}");
    let (mut fixed, fixed_failed) = b.at_fixed_rate().await;
    fixed.sort_unstable();
    eprintln!("{profile}: available-slots with 1,000,000 appointments");
    let (mut slots, rows) = b.slots_with_a_million().await;
    slots.sort_unstable();
    let figures = Figures {
        capacity,
        capacity_failed,
        fixed_p50: percentile(&fixed, 0.50),
        fixed_p99: percentile(&fixed, 0.99),
        fixed_failed,
        slots_p50: percentile(&slots, 0.50),
        slots_p99: percentile(&slots, 0.99),
        rows,
    };
    match Arc::try_unwrap(b) {
        Ok(b) => b.env.shutdown().await,
        Err(_) => unreachable!("every benchmark task has finished"),
    }
    figures
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    // CHAOS_BENCH_PROFILE=naive|hardened measures one profile (the other column repeats it).
    let only = std::env::var("CHAOS_BENCH_PROFILE").ok();
    let naive = rt.block_on(measure(match only.as_deref() {
        Some("hardened") => Profile::Hardened,
        _ => Profile::Naive,
    }));
    let hardened = match only.as_deref() {
        Some(_) => naive,
        None => rt.block_on(measure(Profile::Hardened)),
    };
    println!("\nMediConnect capacity (this machine; release build; one replica)\n");
    println!("| measure | goal | naive | hardened |");
    println!("| --- | --- | --- | --- |");
    let row = |name: &str, goal: &str, f: &dyn Fn(&Figures) -> String| {
        println!("| {name} | {goal} | {} | {} |", f(&naive), f(&hardened));
    };
    row(
        "bookings/s, 64 clients, closed loop",
        "hardened >= 1500",
        &|f| format!("{:.0} ({} not created)", f.capacity, f.capacity_failed),
    );
    row("booking p50 at 200/s", "", &|f| ms(f.fixed_p50));
    row("booking p99 at 200/s", "hardened <= 20 ms", &|f| {
        format!("{} ({} not created)", ms(f.fixed_p99), f.fixed_failed)
    });
    row("available-slots p50", "", &|f| ms(f.slots_p50));
    row("available-slots p99", "<= 10 ms", &|f| ms(f.slots_p99));
    row("appointments in the table", "1,000,000", &|f| {
        f.rows.to_string()
    });
}
