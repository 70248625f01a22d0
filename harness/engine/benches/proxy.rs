//! Proxy overhead, measured side by side in one run: round trips direct and through the
//! proxy, bulk throughput, the cost of a 0 ms latency toxic, and a 10 ms toxic's accuracy.
//! `just bench` runs it (release build); it prints a table and the ratios to the goals.

use std::time::Instant;

use chaos_engine::proxy::{ProxyServer, ToxiproxyClient};
use chaos_model::bench::{BenchPart, Distribution, Figure, Goal};

#[path = "../../benches/part.rs"]
mod part;

/// The chaos binary's allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
use part::write_part;
use serde_json::json;
use std::io::{Read, Write};

const ROUND_TRIPS: usize = 20_000;
const BULK_BYTES: usize = 1 << 30;

/// An echo server on its own OS thread (blocking IO), so that direct and proxied round
/// trips share everything but the proxy.
fn echo_server() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            s.set_nodelay(true).unwrap();
            std::thread::spawn(move || {
                let mut buf = vec![0u8; 64 * 1024];
                loop {
                    match s.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => {
                            if s.write_all(&buf[..n]).is_err() {
                                return;
                            }
                        }
                    }
                }
            });
        }
    });
    addr
}

/// A sink that counts what it reads and answers the total when the sender closes.
fn sink_server() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            std::thread::spawn(move || {
                let mut buf = vec![0u8; 256 * 1024];
                let mut total = 0usize;
                loop {
                    match s.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => total += n,
                    }
                }
                let _ = s.write_all(&(total as u64).to_le_bytes());
            });
        }
    });
    addr
}

/// Round-trip times of 64-byte messages, in microseconds, from a blocking client.
fn round_trips(addr: &str, n: usize) -> Vec<f64> {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_nodelay(true).unwrap();
    let msg = [7u8; 64];
    let mut back = [0u8; 64];
    for _ in 0..(n / 10) {
        s.write_all(&msg).unwrap();
        s.read_exact(&mut back).unwrap();
    }
    let mut v = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        s.write_all(&msg).unwrap();
        s.read_exact(&mut back).unwrap();
        v.push(t.elapsed().as_secs_f64() * 1e6);
    }
    v
}

/// Interleave batches of round trips over several paths, in a rotating order, so that drift
/// in the machine's load affects every path alike; returns each path's sorted samples.
fn interleaved(addrs: &[&str], n: usize) -> Vec<Vec<f64>> {
    let batches = 20;
    let mut out = vec![Vec::with_capacity(n); addrs.len()];
    for b in 0..batches {
        // Each batch starts at another path, so no path always follows the same one.
        for k in 0..addrs.len() {
            let i = (b + k) % addrs.len();
            out[i].extend(round_trips(addrs[i], n / batches));
        }
    }
    for v in &mut out {
        v.sort_by(f64::total_cmp);
    }
    out
}

fn pct(v: &[f64], q: f64) -> f64 {
    v[chaos_model::nearest_rank(v.len(), q)]
}

/// CPU seconds (user + system) this process has used, from /proc/self/stat.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split(' ').collect();
    let ticks: f64 = f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap();
    ticks / 100.0
}

/// MB/s of a one-way bulk transfer, acknowledged by the sink with its byte count, and the
/// CPU seconds the whole process spent per GB moved.
fn bulk(addr: &str) -> (f64, f64) {
    let cpu0 = cpu_seconds();
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    let chunk = vec![1u8; 256 * 1024];
    let t = Instant::now();
    let mut sent = 0;
    while sent < BULK_BYTES {
        s.write_all(&chunk).unwrap();
        sent += chunk.len();
    }
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let mut ack = [0u8; 8];
    s.read_exact(&mut ack).unwrap();
    assert_eq!(
        u64::from_le_bytes(ack) as usize,
        BULK_BYTES,
        "the sink must get every byte"
    );
    let gb = BULK_BYTES as f64 / 1e9;
    (
        BULK_BYTES as f64 / 1e6 / t.elapsed().as_secs_f64(),
        (cpu_seconds() - cpu0) / gb,
    )
}

async fn proxy(client: &ToxiproxyClient, name: &str, upstream: &str) -> String {
    client
        .create_proxy(name, "127.0.0.1:0", upstream)
        .await
        .unwrap()
        .listen
}

/// A minimal tokio proxy (two `copy` calls), as a yardstick for the runtime's own cost.
async fn plain_proxy(upstream: String) -> String {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        while let Ok((mut c, _)) = l.accept().await {
            let up = upstream.clone();
            tokio::spawn(async move {
                let mut u = tokio::net::TcpStream::connect(up).await.unwrap();
                c.set_nodelay(true).unwrap();
                u.set_nodelay(true).unwrap();
                let _ = tokio::io::copy_bidirectional(&mut c, &mut u).await;
            });
        }
    });
    addr
}

/// A proxy of blocking threads, one per direction: the cost of a hop without a reactor.
fn thread_proxy(upstream: String) -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for c in l.incoming() {
            let c = c.unwrap();
            let u = std::net::TcpStream::connect(&upstream).unwrap();
            c.set_nodelay(true).unwrap();
            u.set_nodelay(true).unwrap();
            let (mut c2, mut u2) = (c.try_clone().unwrap(), u.try_clone().unwrap());
            let (mut c, mut u) = (c, u);
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut c, &mut u);
                let _ = u.shutdown(std::net::Shutdown::Write);
            });
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut u2, &mut c2);
            });
        }
    });
    addr
}

fn main() {
    chaos_engine::alloc::keep_freed_memory();
    // CHAOS_BENCH_PIN=<cpu>: run every thread on one CPU. On a VM, waking a thread on an idle
    // virtual CPU costs tens of microseconds (an inter-processor interrupt through the
    // host); pinned, the figures show the proxy's own cost without that.
    let pinned = std::env::var("CHAOS_BENCH_PIN")
        .ok()
        .and_then(|c| c.parse::<usize>().ok());
    if let Some(cpu) = pinned {
        let mut set = nix::sched::CpuSet::new();
        set.set(cpu).unwrap();
        nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set).unwrap();
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let server = ProxyServer::start("127.0.0.1:0", 0).await.unwrap();
        let client = ToxiproxyClient::new(&server.url());
        let echo = echo_server();
        let sink = sink_server();
        let via_echo = proxy(&client, "echo", &echo).await;
        let via_sink = proxy(&client, "sink", &sink).await;
        let via_zero = proxy(&client, "zero", &echo).await;
        client
            .add_toxic(
                "zero",
                json!({ "type": "latency", "attributes": { "latency": 0 } }),
            )
            .await
            .unwrap();
        let via_ten = proxy(&client, "ten", &echo).await;
        client
            .add_toxic(
                "ten",
                json!({ "type": "latency", "attributes": { "latency": 10 } }),
            )
            .await
            .unwrap();
        let plain = (
            plain_proxy(echo.clone()).await,
            plain_proxy(sink.clone()).await,
        );
        let threads = (thread_proxy(echo.clone()), thread_proxy(sink.clone()));

        // The clients block: run them off the runtime that serves the proxy.
        let rows = tokio::task::spawn_blocking(move || {
            let paths: [(&str, &str, Option<&str>); 5] = [
                ("direct", &echo, Some(&sink)),
                ("chaos proxy", &via_echo, Some(&via_sink)),
                ("chaos proxy, 0 ms latency toxic", &via_zero, None),
                (
                    "yardstick: tokio copy_bidirectional",
                    &plain.0,
                    Some(&plain.1),
                ),
                (
                    "yardstick: a thread per direction",
                    &threads.0,
                    Some(&threads.1),
                ),
            ];
            let rtts = interleaved(&paths.map(|p| p.1), ROUND_TRIPS);
            let ten = interleaved(&[&via_ten], 400).remove(0);
            let bulks: Vec<Option<(f64, f64)>> = paths.iter().map(|p| p.2.map(bulk)).collect();
            (paths.map(|p| p.0.to_string()), rtts, bulks, ten)
        })
        .await
        .unwrap();
        let (names, rtts, bulks, ten) = rows;

        println!(
            "proxy benchmark: {ROUND_TRIPS} round trips of 64 B; {} MiB one way{}",
            BULK_BYTES >> 20,
            pinned.map_or(String::new(), |c| format!(
                "; every thread pinned to CPU {c}"
            ))
        );
        println!(
            "{:<38} {:>10} {:>10} {:>10} {:>11}",
            "path", "rtt p50", "rtt p99", "bulk MB/s", "CPU-s/GB"
        );
        for i in 0..names.len() {
            let (mbps, cpu) = bulks[i].map_or(("-".into(), "-".into()), |(m, c)| {
                (format!("{m:.0}"), format!("{c:.2}"))
            });
            println!(
                "{:<38} {:>7.1} us {:>7.1} us {:>10} {:>11}",
                names[i],
                pct(&rtts[i], 0.5),
                pct(&rtts[i], 0.99),
                mbps,
                cpu
            );
        }
        println!();
        let (direct, proxied, zero) = (&rtts[0], &rtts[1], &rtts[2]);
        // The best plain proxy at each measure is the yardstick.
        let best = |f: &dyn Fn(usize) -> f64, lower: bool| {
            let (a, b) = (f(3), f(4));
            let pick_a = if lower { a <= b } else { a >= b };
            if pick_a { (a, names[3].as_str()) } else { (b, names[4].as_str()) }
        };
        let yard = |name: &str| name.trim_start_matches("yardstick: ").to_string();
        let mut figures = Vec::new();
        for (label, q) in [("p50", 0.5), ("p99", 0.99)] {
            let (peer, peer_name) = best(&|i| pct(&rtts[i], q), true);
            figures.push(Figure::new(
                &format!("round trip {label}, chaos proxy / best plain proxy"),
                pct(proxied, q),
                "us",
                &yard(peer_name),
                peer,
                Goal::AtMost(1.0),
            ));
        }
        let (peer, peer_name) = best(&|i| bulks[i].expect("a bulk path").0, false);
        figures.push(Figure::new(
            "bulk throughput, chaos proxy / best plain proxy",
            bulks[1].expect("measured").0,
            "MB/s",
            &yard(peer_name),
            peer,
            Goal::AtLeast(1.5),
        ));
        figures.push(Figure::new(
            "bulk throughput, chaos proxy / direct",
            bulks[1].expect("measured").0,
            "MB/s",
            "direct",
            bulks[0].expect("measured").0,
            Goal::AtLeast(0.8),
        ));
        figures.push(Figure::new(
            "round trip p50 with a 0 ms latency toxic / without",
            pct(zero, 0.5),
            "us",
            "chaos proxy, no toxic",
            pct(proxied, 0.5),
            Goal::Reported,
        ));
        figures.push(Figure::new(
            "round trip p50 over a 10 ms latency toxic / 10 ms",
            pct(&ten, 0.5),
            "us",
            "the toxic's 10 ms",
            10_000.0,
            Goal::Between(1.0, 1.05),
        ));
        figures.push(Figure::new(
            "round trip p50, chaos proxy / direct",
            pct(proxied, 0.5),
            "us",
            "direct",
            pct(direct, 0.5),
            Goal::Reported,
        ));
        let bench = if pinned.is_some() { "proxy-pinned" } else { "proxy" };
        let part = BenchPart {
            bench: bench.into(),
            title: format!(
                "Proxy{}",
                if pinned.is_some() { ", every thread on one CPU" } else { "" }
            ),
            conditions: format!(
                "{ROUND_TRIPS} round trips of 64 B per path, interleaved in 20 batches; {} MiB one way",
                BULK_BYTES >> 20
            ),
            figures,
            distributions: (0..names.len())
                .map(|i| Distribution::from_sorted(&names[i], "us", &rtts[i]))
                .collect(),
        };
        write_part(&part);
    });
}
