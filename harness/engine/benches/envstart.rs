//! Environment start, side by side in one run: the local environment (child processes) and
//! the docker environment (containers), each started and shut down `CHAOS_BENCH_STARTS`
//! times (3 by default), every service's time from its start to its readiness and the
//! total, with RabbitMQ's own cold start alone (from an empty node directory) as the floor.
//! Goals: each environment's total and its slowest part at most 0.8x the floor (the
//! environment starts everything at once and its broker boots on a copy of an initialised
//! node directory; in docker, from code volumes rather than the image's layers), and
//! docker's total within 1.5x of local's. `just bench` runs it; the images are built first
//! (not timed).

use std::collections::BTreeMap;

use chaos_engine::env::docker::images::{self, Build};
use chaos_engine::env::{Env, EnvConfig, rabbitmq_cold_start};
use chaos_model::bench::{BenchPart, Figure, Goal};
use chaos_model::{EnvKind, Profile};

#[path = "../../benches/part.rs"]
mod part;

/// The chaos binary's allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

async fn starts(kind: EnvKind, n: u32) -> BTreeMap<String, Vec<f64>> {
    let mut all: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for i in 0..n {
        let cfg = EnvConfig {
            run_id: format!("bench-{kind}-{i}-{}", std::process::id()),
            profile: Profile::Hardened,
            replicas: 1,
            providers: 4,
            patients: 8,
            seed: 1,
            options: chaos_model::TargetOptions::default(),
            keep_dir: false,
            kind,
            images: Build::Never,
        };
        let env = Env::start(&cfg, &|_m: String| {})
            .await
            .unwrap_or_else(|e| panic!("{kind} environment: {e}"));
        for (part, s) in env.startup() {
            // Checking for the images is setup, not start.
            if part != "images" {
                all.entry(part.clone()).or_default().push(*s);
            }
        }
        env.shutdown().await;
    }
    all
}

fn main() {
    chaos_engine::alloc::keep_freed_memory();
    let n: u32 = std::env::var("CHAOS_BENCH_STARTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        images::ensure(Build::IfMissing, &|m: String| eprintln!("[images] {m}"))
            .await
            .unwrap_or_else(|e| panic!("images: {e}"));
        let mut floor = Vec::new();
        for i in 0..n {
            floor.push(
                rabbitmq_cold_start(&format!("bench-floor-{i}-{}", std::process::id()))
                    .await
                    .unwrap_or_else(|e| panic!("rabbitmq alone: {e}")),
            );
        }
        let floor = median(floor);
        // Untimed: one local start first, so the RabbitMQ template (made on a machine's first
        // start) is not counted in the timed ones.
        starts(EnvKind::Local, 1).await;
        let local = starts(EnvKind::Local, n).await;
        let docker = starts(EnvKind::Docker, n).await;
        println!("environment start, median of {n} (seconds from start to ready)");
        println!(
            "{:<16} {:>8} {:>8} {:>8}",
            "part", "local", "docker", "ratio"
        );
        let parts: std::collections::BTreeSet<&String> =
            local.keys().chain(docker.keys()).collect();
        for part in parts {
            let l = local.get(part).cloned().map(median);
            let d = docker.get(part).cloned().map(median);
            let show = |x: Option<f64>| x.map_or("-".to_string(), |x| format!("{x:.2}"));
            let ratio = match (l, d) {
                (Some(l), Some(d)) if l > 0.0 => format!("{:.2}x", d / l),
                _ => "-".into(),
            };
            println!("{part:<16} {:>8} {:>8} {:>8}", show(l), show(d), ratio);
        }
        let lt = median(local["total"].clone());
        let dt = median(docker["total"].clone());
        println!("{:<16} {floor:>8.2}", "floor: rabbitmq alone");
        println!(
            "total over the floor: local {:.2}x, docker {:.2}x",
            lt / floor,
            dt / floor
        );
        let floor_name = "RabbitMQ's own cold start";
        let mut figures = vec![
            Figure::new("local environment start, total / RabbitMQ cold", lt, "s", floor_name, floor, Goal::AtMost(0.8)),
            Figure::new("docker environment start, total / RabbitMQ cold", dt, "s", floor_name, floor, Goal::AtMost(0.8)),
            Figure::new("docker environment start, total / local", dt, "s", "local total", lt, Goal::AtMost(1.5)),
        ];
        // Each environment's parts beside the same floor; the goal is on the slowest.
        for (kind, all) in [("local", &local), ("docker", &docker)] {
            let parts: Vec<(&String, f64)> = all
                .iter()
                .filter(|(part, _)| part.as_str() != "total")
                .map(|(part, v)| (part, median(v.clone())))
                .collect();
            let slowest = parts
                .iter()
                .max_by(|a, b| a.1.total_cmp(&b.1))
                .map(|(part, _)| *part)
                .expect("an environment has parts");
            for (part, v) in &parts {
                let goal = if *part == slowest {
                    Goal::AtMost(0.8)
                } else {
                    Goal::Reported
                };
                figures.push(Figure::new(
                    &format!("{kind} {part} / RabbitMQ cold"),
                    *v,
                    "s",
                    floor_name,
                    floor,
                    goal,
                ));
            }
        }
        println!();
        part::write_part(&BenchPart {
            bench: "envstart".into(),
            title: "Environment start".into(),
            conditions: format!(
                "median of {n} starts each: local processes, docker containers, and RabbitMQ alone from an empty node directory"
            ),
            figures,
            distributions: Vec::new(),
        });
    });
}
