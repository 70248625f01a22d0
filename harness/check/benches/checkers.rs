//! Benchmark of every checker on a generated 1,000,000-op history. `cargo bench -p
//! chaos-check --bench checkers`; `CHAOS_BENCH_OPS=N` changes the size. Prints each
//! checker's share, then all of them together (goal: at least 1M ops/s on one core), then
//! what a user of `chaos report DIR` waits for (the bundle's `history.jsonl` read from disk
//! and parsed while `evidence.json` is read and judged as far as it can be alone, then every
//! other checker) beside the floor of merely reading and parsing the same history file,
//! measured in turns in the same run; goal: at most 1.5x the floor.

#[path = "../tests/support/generate.rs"]
mod generate;

use std::time::{Duration, Instant};

use chaos_check::{PhaseMap, check_all};
use chaos_model::History;
use chaos_model::bench::{BenchPart, Figure, Goal};

#[path = "../../benches/part.rs"]
mod part;

/// The chaos binary's allocator settings (chaos-check does not depend on the engine).
#[path = "../../engine/src/alloc.rs"]
#[allow(
    dead_code,
    reason = "its tests' helpers, compiled here when clippy checks the bench as a test"
)]
mod alloc;

/// The chaos binary's allocator, so that the figures are what `chaos report` pays.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const RUNS: usize = 3;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// Pairs of (reading, judging) measured in turns.
const PAIRS: usize = 5;

fn time_once<T>(f: impl Fn() -> T) -> Duration {
    let t = Instant::now();
    std::hint::black_box(f());
    t.elapsed()
}

fn time<T>(f: impl Fn() -> T) -> Duration {
    median((0..RUNS).map(|_| time_once(&f)).collect())
}

fn main() {
    alloc::keep_freed_memory();
    let n: usize = std::env::var("CHAOS_BENCH_OPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let scenario = generate::scenario();
    let w = generate::clean(&generate::intents(42, n, (n as u32 / 3).max(1)), true);
    let rows = w.evidence.appointments.as_ref().map_or(0, Vec::len);
    let calls = w.evidence.stub_calls.values().map(Vec::len).sum::<usize>();
    let jsonl: String = w
        .history
        .records
        .iter()
        .map(|r| serde_json::to_string(r).expect("records serialise") + "\n")
        .collect();
    println!(
        "checkers on {n} ops ({} records, {:.0} MB of history.jsonl), {rows} appointment rows, {} stub calls; median of {RUNS} (reading and judging: of {PAIRS})",
        w.history.records.len(),
        jsonl.len() as f64 / 1e6,
        calls
    );
    let parse = time(|| History::from_jsonl(&jsonl).expect("parses"));
    println!(
        "  {:<24} {:>8.1} ms  ({:.2}M ops/s)",
        "parse history.jsonl",
        parse.as_secs_f64() * 1e3,
        n as f64 / parse.as_secs_f64() / 1e6
    );
    // Check what a run checks: the history and evidence as read back from the bundle's files.
    let history = History::from_jsonl(&jsonl).expect("parses");
    let evidence: chaos_model::Evidence =
        serde_json::from_str(&serde_json::to_string(&w.evidence).expect("evidence serialises"))
            .expect("evidence parses");
    drop(w);
    let (h, ev, s) = (&history, &evidence, &scenario);
    let fold = time(|| h.ops());
    println!(
        "  {:<24} {:>8.1} ms  (shared by every checker below)",
        "history -> ops",
        fold.as_secs_f64() * 1e3
    );
    let phases = || PhaseMap::new(h, s.phases.recovery);
    let inv = &s.invariants;
    type Checker<'a> = (&'static str, Box<dyn Fn() + 'a>);
    let each: Vec<Checker<'_>> = vec![
        (
            "faults_applied",
            Box::new(|| drop(chaos_check::check_faults_applied(s, h))),
        ),
        (
            "no_double_booking",
            Box::new(|| drop(chaos_check::check_no_double_booking(h, ev))),
        ),
        (
            "acknowledged_durable",
            Box::new(|| drop(chaos_check::check_acknowledged_durable(h, ev))),
        ),
        (
            "latency",
            Box::new(|| {
                drop(chaos_check::check_latency(
                    inv.latency.as_ref().expect("set"),
                    h,
                    &phases(),
                ))
            }),
        ),
        (
            "auth_fails_closed",
            Box::new(|| drop(chaos_check::check_auth_fails_closed(s, h))),
        ),
        (
            "success_ratio",
            Box::new(|| {
                drop(chaos_check::check_success_ratio(
                    inv.success_ratio.as_ref().expect("set"),
                    h,
                    &phases(),
                ))
            }),
        ),
        (
            "recovery",
            Box::new(|| {
                drop(chaos_check::check_recovery(
                    inv.recovery.as_ref().expect("set"),
                    h,
                ))
            }),
        ),
        (
            "ehr_sync",
            Box::new(|| drop(chaos_check::check_ehr_sync(ev))),
        ),
        (
            "no_duplicate_reminders",
            Box::new(|| drop(chaos_check::check_no_duplicate_reminders(h, ev))),
        ),
        (
            "no_lost_reminders",
            Box::new(|| drop(chaos_check::check_no_lost_reminders(s, h, ev))),
        ),
        (
            "readiness",
            Box::new(|| {
                drop(chaos_check::check_readiness(
                    inv.readiness.as_ref().expect("set"),
                    h,
                ))
            }),
        ),
        (
            "delivered_within",
            Box::new(|| {
                drop(chaos_check::check_delivered_within(
                    inv.delivered_within.as_ref().expect("set"),
                    h,
                    ev,
                ))
            }),
        ),
        (
            "answers_in_time",
            Box::new(|| {
                drop(chaos_check::check_answers_in_time(
                    inv.answers_in_time.as_ref().expect("set"),
                    s,
                    h,
                ))
            }),
        ),
        (
            "sessions_survive",
            Box::new(|| drop(chaos_check::check_sessions_survive(s, h))),
        ),
        (
            "waitlist_promotes_once",
            Box::new(|| drop(chaos_check::check_waitlist_promotes_once(h, ev))),
        ),
        (
            "no_lost_update",
            Box::new(|| drop(chaos_check::check_no_lost_update(h, ev))),
        ),
        (
            "trace_propagates",
            Box::new(|| drop(chaos_check::check_trace_propagates(h, ev))),
        ),
        (
            "metrics_reflect",
            Box::new(|| {
                drop(chaos_check::check_metrics_reflect(
                    inv.metrics_reflect.as_ref().expect("set"),
                    s.phases.recovery,
                    h,
                    ev,
                ))
            }),
        ),
        (
            "linearizable",
            Box::new(|| drop(chaos_check::check_linearizable(h, ev))),
        ),
    ];
    for (name, f) in &each {
        let d = time(f);
        println!("  {name:<24} {:>8.1} ms", d.as_secs_f64() * 1e3);
    }
    let all = time(|| check_all(s, h, ev));
    let rate = n as f64 / all.as_secs_f64();
    println!(
        "  {:<24} {:>8.1} ms  => {:.2}M ops/s (goal >= 1M ops/s on every core: {})",
        "all (check_all)",
        all.as_secs_f64() * 1e3,
        rate / 1e6,
        if rate >= 1e6 { "met" } else { "NOT met" }
    );
    // What judging a bundle costs a user, from its files, against reading the history alone.
    let dir = std::env::temp_dir().join(format!("chaos-bench-checkers-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("create the bench's bundle dir");
    let (hist_file, ev_file) = (dir.join("history.jsonl"), dir.join("evidence.json"));
    std::fs::write(&hist_file, &jsonl).expect("write history.jsonl");
    std::fs::write(
        &ev_file,
        serde_json::to_string(ev).expect("evidence serialises"),
    )
    .expect("write evidence.json");
    drop(jsonl);
    let read = || {
        History::from_jsonl(&std::fs::read_to_string(&hist_file).expect("read history.jsonl"))
            .expect("parses")
    };
    // As `chaos report` reads a bundle: the history on this thread, and beside it the
    // evidence read and judged as far as it can be alone.
    let judge = || {
        chaos_check::judge_while_reading(
            s,
            || Ok::<_, String>(read()),
            || {
                serde_json::from_str::<chaos_model::Evidence>(
                    &std::fs::read_to_string(&ev_file).expect("read evidence.json"),
                )
                .map_err(|e| e.to_string())
            },
        )
        .expect("the bundle reads")
    };
    // The floor and the judging, measured in turns (this machine's speed drifts by tens of
    // percent within a minute: one after the other, a slow spell would fall on one of them).
    let (mut floors, mut judgings) = (Vec::new(), Vec::new());
    for i in 0..PAIRS {
        // Each first in every other turn, so that neither always follows the other.
        if i % 2 == 0 {
            floors.push(time_once(read));
            judgings.push(time_once(judge));
        } else {
            judgings.push(time_once(judge));
            floors.push(time_once(read));
        }
    }
    let (floor, judged) = (median(floors), median(judgings));
    // The other core's share while the history is read: the evidence read, then prepared.
    let beside = time(|| {
        let ev: chaos_model::Evidence =
            serde_json::from_str(&std::fs::read_to_string(&ev_file).expect("read evidence.json"))
                .expect("evidence parses");
        drop(chaos_check::prepare(s, &ev));
    });
    let _ = std::fs::remove_dir_all(&dir);
    println!(
        "  {:<24} {:>8.1} ms  (floor: read history.jsonl alone)",
        "read",
        floor.as_secs_f64() * 1e3
    );
    println!(
        "  {:<24} {:>8.1} ms  (beside the read, on another core)",
        "evidence + prepare",
        beside.as_secs_f64() * 1e3
    );
    println!(
        "  {:<24} {:>8.1} ms",
        "read + evidence + check",
        judged.as_secs_f64() * 1e3,
    );
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let floor_name = "read history.jsonl alone";
    part::write_part(&BenchPart {
        bench: "checkers".into(),
        title: "Judging a bundle".into(),
        conditions: format!(
            "{n} ops, generated; checkers alone median of {RUNS}, reading and judging median of {PAIRS} measured in turns"
        ),
        figures: vec![
            Figure::new(
                "read history + evidence, then every checker / reading",
                ms(judged),
                "ms",
                floor_name,
                ms(floor),
                Goal::AtMost(1.5),
            ),
            Figure::new(
                "every checker (check_all) / reading",
                ms(all),
                "ms",
                floor_name,
                ms(floor),
                Goal::Reported,
            ),
        ],
        distributions: Vec::new(),
    });
    let results = check_all(s, h, ev);
    for r in &results {
        println!("    {:<22} {}", r.invariant, r.verdict.name());
    }
}
