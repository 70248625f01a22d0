//! The workload driver against `wrk` on one trivial endpoint, in one run: the driver's
//! requests per second (open loop, every op recorded to a history) beside wrk's at
//! saturation, and its latency percentiles at a fixed rate beside a wrk2-style corrected
//! measurement (constant rate per connection, latency from the scheduled send time).
//! `just bench` runs it (release build), and installs wrk first (`scripts/setup.sh wrk`).

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use chaos_engine::history::{Clock, Recorder};
use chaos_engine::workload::{TargetClient, drive, plan};
use chaos_model::bench::{BenchPart, Distribution, Figure, Goal};
use chaos_model::{History, Outcome, Workload};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[path = "../../benches/part.rs"]
mod part;

/// The chaos binary's allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Seconds of each measured stretch.
const SECONDS: u64 = 5;
/// wrk's connections (and threads) at saturation.
const WRK_CONNECTIONS: u32 = 64;
const WRK_THREADS: u32 = 2;
/// The fixed rate of the latency comparison, as a share of the lower of the two saturated
/// rates: well below both, so that neither generator queues and their percentiles show their
/// own cost.
const LATENCY_LOAD: f64 = 0.25;
/// Connections of the corrected yardstick, each at an equal share of the rate.
const YARDSTICK_CONNECTIONS: usize = 16;

const RESPONSE: &[u8] =
    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}";

/// The trivial endpoint: every request without a body answered `200 {}` at once, on a
/// runtime of its own (two threads), so that both generators meet the same server.
fn trivial_server() -> SocketAddr {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("trivial-server")
            .enable_all()
            .build()
            .expect("the server's runtime builds");
        rt.block_on(async move {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind the trivial server");
            tx.send(l.local_addr().expect("bound")).expect("send addr");
            while let Ok((mut s, _)) = l.accept().await {
                tokio::spawn(async move {
                    let _ = s.set_nodelay(true);
                    let mut buf = vec![0u8; 16 * 1024];
                    let mut have = 0usize;
                    let mut out = Vec::new();
                    loop {
                        match s.read(&mut buf[have..]).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => have += n,
                        }
                        // Answer every whole request head; keep a partial one for later.
                        let mut start = 0;
                        while let Some(i) = find(&buf[start..have], b"\r\n\r\n") {
                            out.extend_from_slice(RESPONSE);
                            start += i + 4;
                        }
                        buf.copy_within(start..have, 0);
                        have -= start;
                        if have == buf.len() {
                            return; // a head larger than the buffer: not a client of ours
                        }
                        if !out.is_empty() {
                            if s.write_all(&out).await.is_err() {
                                return;
                            }
                            out.clear();
                        }
                    }
                });
            }
        });
    });
    rx.recv().expect("the trivial server starts")
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// wrk at saturation: requests per second and its (uncorrected) latency percentiles.
fn wrk(url: &str) -> (f64, Vec<(f64, f64)>) {
    let out = Command::new("wrk")
        .args([
            &format!("-t{WRK_THREADS}"),
            &format!("-c{WRK_CONNECTIONS}"),
            &format!("-d{SECONDS}s"),
            "--latency",
            url,
        ])
        .output()
        .unwrap_or_else(|e| {
            panic!("wrk does not run ({e}): `scripts/setup.sh` installs it (Debian package wrk)")
        });
    assert!(out.status.success(), "wrk failed: {out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    let rps = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no Requests/sec in wrk's output:\n{text}"));
    // "Latency Distribution" lines: "     50%   1.23ms".
    let pcts = text
        .lines()
        .filter_map(|l| {
            let (q, v) = l.trim().split_once('%')?;
            Some((q.trim().parse::<f64>().ok()? / 100.0, wrk_us(v.trim())?))
        })
        .collect();
    (rps, pcts)
}

/// wrk's "123.45us", "1.23ms", "1.02s" in microseconds.
fn wrk_us(v: &str) -> Option<f64> {
    let (num, mult) = if let Some(n) = v.strip_suffix("us") {
        (n, 1.0)
    } else if let Some(n) = v.strip_suffix("ms") {
        (n, 1e3)
    } else if let Some(n) = v.strip_suffix('s') {
        (n, 1e6)
    } else {
        return None;
    };
    Some(num.parse::<f64>().ok()? * mult)
}

/// The wrk2-style corrected yardstick: each connection sends at its constant rate; a
/// request's latency counts from when it was scheduled, so a stall is never hidden. Blocking
/// threads with zero timer slack, raw HTTP/1.1 keep-alive. Returns sorted latencies (us).
fn corrected(addr: SocketAddr, rate: f64) -> Vec<f64> {
    let per_conn = rate / YARDSTICK_CONNECTIONS as f64;
    let interval = Duration::from_secs_f64(1.0 / per_conn);
    let n = (per_conn * SECONDS as f64) as usize;
    let start = Instant::now() + Duration::from_millis(20);
    let threads: Vec<_> = (0..YARDSTICK_CONNECTIONS)
        .map(|c| {
            std::thread::spawn(move || {
                let _ = nix::sys::prctl::set_timerslack(1);
                let mut s = std::net::TcpStream::connect(addr).expect("connect");
                s.set_nodelay(true).expect("nodelay");
                let req = b"GET /health/readiness HTTP/1.1\r\nhost: bench\r\n\r\n";
                let mut buf = [0u8; 256];
                // Stagger the connections over one interval, as an open-loop plan spreads ops.
                let offset = interval.mul_f64(c as f64 / YARDSTICK_CONNECTIONS as f64);
                let mut lat = Vec::with_capacity(n);
                for i in 0..n {
                    let due = start + offset + interval * i as u32;
                    if let Some(wait) = due.checked_duration_since(Instant::now()) {
                        std::thread::sleep(wait);
                    }
                    s.write_all(req).expect("send");
                    let mut got = 0;
                    while find(&buf[..got], b"{}").is_none() {
                        let k = s.read(&mut buf[got..]).expect("read");
                        assert!(k > 0, "the trivial server closed");
                        got += k;
                    }
                    lat.push(due.elapsed().as_secs_f64() * 1e6);
                }
                lat
            })
        })
        .collect();
    let mut all: Vec<f64> = threads
        .into_iter()
        .flat_map(|t| t.join().expect("a yardstick thread"))
        .collect();
    all.sort_by(f64::total_cmp);
    all
}

/// The driver, as a run drives the target: readiness probes at `rate` for SECONDS, every op
/// recorded to history.jsonl. Returns ok ops per second over the run and the sorted
/// latencies of the ok ops (from their due times, us).
async fn driver(base: &str, rate: f64) -> (f64, Vec<f64>) {
    let w: Workload = serde_json::from_value(serde_json::json!({
        "duration": format!("{SECONDS}s"),
        "rate": rate,
        "clients": 64,
        "mix": { "readiness": 1.0 },
        "op_timeout": "5s",
    }))
    .expect("the bench's workload is valid");
    let dir = std::env::temp_dir().join(format!("chaos-bench-driver-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("create the bench's run dir");
    let file = dir.join("history.jsonl");
    let clock = Clock::start();
    let (rec, writer) = Recorder::start(&file, clock).expect("start the recorder");
    let client = TargetClient::new(vec![base.to_string()], w.op_timeout.0);
    let ops = plan(1, &w);
    drive(ops, client, rec, w).await;
    writer.finish().await.expect("the history is written");
    let text = std::fs::read_to_string(&file).expect("read the history back");
    let _ = std::fs::remove_dir_all(&dir);
    let h = History::from_jsonl(&text).expect("the driver writes a history");
    let ops = h.ops();
    let not_ok: Vec<_> = ops.iter().filter(|o| o.outcome != Outcome::Ok).collect();
    assert!(
        not_ok.is_empty(),
        "the trivial endpoint answers every op: {} did not, the first {:?}",
        not_ok.len(),
        not_ok.first().map(|o| (o.outcome, o.error))
    );
    let end_us = ops.iter().filter_map(|o| o.complete_us).max().unwrap_or(1);
    let mut lat: Vec<f64> = ops
        .iter()
        .filter_map(|o| o.latency_us().map(|l| l as f64))
        .collect();
    lat.sort_by(f64::total_cmp);
    let mut late: Vec<f64> = ops
        .iter()
        .map(|o| o.invoke_us.saturating_sub(o.due_us) as f64)
        .collect();
    late.sort_by(f64::total_cmp);
    println!(
        "driver at {rate:.0}/s: latency p50 {:.0} us, p99 {:.0} us; of which sent late by p50 {:.0} us, p99 {:.0} us",
        pct(&lat, 0.5),
        pct(&lat, 0.99),
        pct(&late, 0.5),
        pct(&late, 0.99)
    );
    (ops.len() as f64 / (end_us as f64 / 1e6), lat)
}

fn pct(v: &[f64], q: f64) -> f64 {
    v[chaos_model::nearest_rank(v.len(), q)]
}

fn main() {
    chaos_engine::alloc::keep_freed_memory();
    let addr = trivial_server();
    let url = format!("http://{addr}/health/readiness");
    let base = format!("http://{addr}");
    // Warm both paths (connections, caches) before anything is measured.
    let warm = Command::new("wrk")
        .args(["-t1", "-c4", "-d1s", &url])
        .output();
    assert!(
        warm.as_ref().is_ok_and(|o| o.status.success()),
        "wrk does not run ({warm:?}): `scripts/setup.sh` installs it (Debian package wrk)"
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("the driver's runtime builds");
    let (wrk_rps, wrk_pcts) = wrk(&url);
    // On a worker of the runtime, as a run spawns it.
    let on_rt = |rate: f64| {
        let base = base.clone();
        rt.block_on(async move { tokio::spawn(async move { driver(&base, rate).await }).await })
            .expect("the driver's task")
    };
    let (driver_rps, _) = on_rt(wrk_rps);
    let fixed = (wrk_rps.min(driver_rps) * LATENCY_LOAD).round();
    let yard = corrected(addr, fixed);
    let (_, lat) = on_rt(fixed);
    println!(
        "driver benchmark: wrk -t{WRK_THREADS} -c{WRK_CONNECTIONS} {SECONDS}s: {wrk_rps:.0} rps \
         (its own p50 {:.0} us, p99 {:.0} us, uncorrected); fixed rate {fixed:.0}/s",
        wrk_pcts
            .iter()
            .find(|p| p.0 == 0.5)
            .map_or(f64::NAN, |p| p.1),
        wrk_pcts
            .iter()
            .find(|p| p.0 == 0.99)
            .map_or(f64::NAN, |p| p.1),
    );
    let mut figures = vec![Figure::new(
        "requests/s, open-loop driver recording every op / wrk",
        driver_rps,
        "rps",
        "wrk at saturation",
        wrk_rps,
        Goal::AtLeast(0.9),
    )];
    for (label, q) in [("p50", 0.5), ("p90", 0.9), ("p99", 0.99)] {
        figures.push(Figure::new(
            &format!("latency {label} at {fixed:.0}/s, driver / corrected yardstick"),
            pct(&lat, q),
            "us",
            "wrk2-style corrected",
            pct(&yard, q),
            Goal::Within(0.1),
        ));
    }
    part::write_part(&BenchPart {
        bench: "driver".into(),
        title: "Workload driver against wrk".into(),
        conditions: format!(
            "one trivial endpoint (200 {{}}); wrk -t{WRK_THREADS} -c{WRK_CONNECTIONS} for {SECONDS} s, \
             the driver offered wrk's rate for {SECONDS} s; latency at {:.0}% of the lower of the two \
             ({fixed:.0}/s), the yardstick on {YARDSTICK_CONNECTIONS} connections",
            LATENCY_LOAD * 100.0
        ),
        figures,
        distributions: vec![
            Distribution::from_sorted("driver", "us", &lat),
            Distribution::from_sorted("wrk2-style corrected", "us", &yard),
        ],
    });
}
