//! The invariant checkers: pure functions of (scenario, history, evidence) to verdicts.
//!
//! Architecture invariant: no IO and no async runtime here (`cargo tree -p chaos-check -i tokio`
//! finds nothing). One checker per file, named for its invariant.

mod acknowledged_durable;
mod answers_in_time;
mod auth_fails_closed;
mod bounded_calls;
mod delivered_within;
mod deliveries;
mod drain;
mod ehr_sync;
mod fasthash;
mod faults_applied;
mod idempotent_creation;
mod latency;
mod linearizable;
mod metrics_reflect;
mod no_double_booking;
mod no_duplicate_reminders;
mod no_lost_reminders;
mod no_lost_update;
mod phases;
mod prepared;
mod proof;
mod rate_limit;
mod readiness;
mod recovery;
mod served;
mod sessions_survive;
mod success_ratio;
mod trace_propagates;
mod view;
mod waitlist_promotes_once;
mod within_schedule;

use chaos_model::{CheckResult, Evidence, History, Scenario};

pub use acknowledged_durable::check_acknowledged_durable;
pub use answers_in_time::check_answers_in_time;
pub use auth_fails_closed::check_auth_fails_closed;
pub use bounded_calls::check_bounded_calls;
pub use delivered_within::check_delivered_within;
pub use ehr_sync::check_ehr_sync;
pub use faults_applied::check_faults_applied;
pub use idempotent_creation::check_idempotent_creation;
pub use latency::{check_latency, nearest_rank};
pub use linearizable::check_linearizable;
pub use metrics_reflect::check_metrics_reflect;
pub use no_double_booking::check_no_double_booking;
pub use no_duplicate_reminders::check_no_duplicate_reminders;
pub use no_lost_reminders::check_no_lost_reminders;
pub use no_lost_update::check_no_lost_update;
pub use phases::{Phase, PhaseMap};
pub use prepared::{Prepared, judge_while_reading, prepare};
pub use rate_limit::check_rate_limit;
pub use readiness::check_readiness;
pub use recovery::check_recovery;
pub use sessions_survive::check_sessions_survive;
pub use success_ratio::check_success_ratio;
pub use trace_propagates::check_trace_propagates;
pub use waitlist_promotes_once::check_waitlist_promotes_once;
pub use within_schedule::check_within_schedule;

/// Run every invariant the scenario enables, in the scenario's report order. The checkers
/// are pure functions of read-only inputs, so they run side by side on every core.
pub fn check_all(scenario: &Scenario, history: &History, evidence: &Evidence) -> Vec<CheckResult> {
    check_prepared(scenario, history, Prepared::none(evidence))
}

/// `check_all`, with what `prepare` did from the evidence already done: the same results.
pub fn check_prepared<'a>(
    scenario: &Scenario,
    history: &'a History,
    prepared: Prepared<'a>,
) -> Vec<CheckResult> {
    let Prepared {
        evidence,
        deliveries,
        caused_calls,
        ehr_sync,
        bounded_calls,
    } = prepared;
    let v = view::View::with_ready(history, evidence, ready(deliveries), ready(caused_calls));
    let inv = &scenario.invariants;
    let phases = PhaseMap::new(history, scenario.phases.recovery);
    let (v, phases) = (&v, &phases);
    let mut jobs: Vec<Job<'_>> = Vec::new();
    if !scenario.faults.is_empty() {
        jobs.push(Box::new(move || check_faults_applied(scenario, history)));
    }
    if inv.no_double_booking.is_some() {
        jobs.push(Box::new(move || no_double_booking::check(v)));
    }
    if inv.acknowledged_durable.is_some() {
        jobs.push(Box::new(move || acknowledged_durable::check(v)));
    }
    if let Some(bounds) = &inv.latency {
        jobs.push(Box::new(move || latency::check(bounds, v, phases)));
    }
    let has_faults = !scenario.faults.is_empty();
    if inv.auth_fails_closed.is_some() {
        jobs.push(Box::new(move || auth_fails_closed::check(has_faults, v)));
    }
    if let Some(ratios) = &inv.success_ratio {
        jobs.push(Box::new(move || success_ratio::check(ratios, v, phases)));
    }
    if let Some(bound) = &inv.recovery {
        jobs.push(Box::new(move || recovery::check(bound, v)));
    }
    if inv.ehr_sync.is_some() {
        jobs.push(Box::new(move || {
            ehr_sync.unwrap_or_else(|| check_ehr_sync(evidence))
        }));
    }
    if inv.no_duplicate_reminders.is_some() {
        jobs.push(Box::new(move || no_duplicate_reminders::check(v)));
    }
    if inv.no_lost_reminders.is_some() {
        jobs.push(Box::new(move || no_lost_reminders::check(scenario, v)));
    }
    if let Some(bound) = &inv.bounded_calls {
        jobs.push(Box::new(move || {
            bounded_calls
                .filter(|(judged, _)| judged == bound)
                .map_or_else(|| check_bounded_calls(bound, evidence), |(_, r)| r)
        }));
    }
    if inv.idempotent_creation.is_some() {
        jobs.push(Box::new(move || idempotent_creation::check(v)));
    }
    if inv.within_schedule.is_some() {
        jobs.push(Box::new(move || within_schedule::check(v)));
    }
    if inv.rate_limit.is_some() {
        jobs.push(Box::new(move || {
            rate_limit::check(scenario.options.rate_limit, v)
        }));
    }
    if let Some(bound) = &inv.readiness {
        jobs.push(Box::new(move || readiness::check(bound, v)));
    }
    if let Some(bound) = &inv.delivered_within {
        jobs.push(Box::new(move || delivered_within::check(bound, v)));
    }
    if let Some(bound) = &inv.answers_in_time {
        let timeout_us = scenario.workload.op_timeout.as_micros();
        jobs.push(Box::new(move || {
            answers_in_time::check(bound, timeout_us, v, phases)
        }));
    }
    if inv.sessions_survive.is_some() {
        jobs.push(Box::new(move || sessions_survive::check(has_faults, v)));
    }
    if inv.waitlist_promotes_once.is_some() {
        jobs.push(Box::new(move || waitlist_promotes_once::check(v)));
    }
    if inv.no_lost_update.is_some() {
        jobs.push(Box::new(move || no_lost_update::check(v)));
    }
    if inv.trace_propagates.is_some() {
        jobs.push(Box::new(move || trace_propagates::check(v)));
    }
    if let Some(bound) = &inv.metrics_reflect {
        jobs.push(Box::new(move || {
            metrics_reflect::check(bound, scenario.phases.recovery, v)
        }));
    }
    if inv.linearizable.is_some() {
        jobs.push(Box::new(move || linearizable::check(v)));
    }
    run_jobs(jobs)
}

/// A part of the view computed ahead (`Some`), or to compute on first use.
fn ready<T>(part: Option<T>) -> std::sync::OnceLock<T> {
    part.map_or_else(std::sync::OnceLock::new, std::sync::OnceLock::from)
}

/// One checker, ready to run on any thread.
type Job<'a> = Box<dyn FnOnce() -> CheckResult + Send + 'a>;

/// Run the jobs on as many threads as the machine has cores (each thread takes the next job,
/// from the back, when it finishes one) and answer in the jobs' order, whatever order they
/// finish in. A checker's panic (a harness bug) goes on to the caller.
fn run_jobs(jobs: Vec<Job<'_>>) -> Vec<CheckResult> {
    let threads = std::thread::available_parallelism()
        .map_or(1, std::num::NonZeroUsize::get)
        .min(jobs.len());
    if threads <= 1 {
        return jobs.into_iter().map(|job| job()).collect();
    }
    let n = jobs.len();
    // Taken from the back: the report's last checker, the model checker, is the slowest by
    // far, and started first it runs beside the others instead of after them.
    let queue = std::sync::Mutex::new(jobs.into_iter().enumerate().rev());
    let mut out: Vec<Option<CheckResult>> = (0..n).map(|_| None).collect();
    std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    let mut done = Vec::new();
                    loop {
                        let next = queue
                            .lock()
                            .expect("no checker panics holding the queue")
                            .next();
                        let Some((i, job)) = next else { break done };
                        done.push((i, job()));
                    }
                })
            })
            .collect();
        for worker in workers {
            match worker.join() {
                Ok(done) => done.into_iter().for_each(|(i, r)| out[i] = Some(r)),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
    });
    out.into_iter().map(|r| r.expect("every job ran")).collect()
}

/// Format microseconds for people: `850us`, `12.3ms`, `1.20s`.
pub fn fmt_us(us: u64) -> String {
    if us < 1_000 {
        format!("{us}us")
    } else if us < 1_000_000 {
        format!("{:.1}ms", us as f64 / 1e3)
    } else {
        format!("{:.2}s", us as f64 / 1e6)
    }
}

#[cfg(test)]
mod testkit;
