//! The invariant checkers: pure functions of (scenario, history, evidence) to verdicts.
//!
//! Architecture invariant: no IO and no async runtime here (`cargo tree -p chaos-check -i tokio`
//! finds nothing). One checker per file, named for its invariant.

mod acknowledged_durable;
mod auth_fails_closed;
mod bounded_calls;
mod deliveries;
mod ehr_sync;
mod fasthash;
mod faults_applied;
mod idempotent_creation;
mod latency;
mod no_double_booking;
mod no_duplicate_reminders;
mod no_lost_reminders;
mod phases;
mod rate_limit;
mod readiness;
mod recovery;
mod served;
mod success_ratio;
mod view;
mod within_schedule;

use chaos_model::{CheckResult, Evidence, History, Scenario};

pub use acknowledged_durable::check_acknowledged_durable;
pub use auth_fails_closed::check_auth_fails_closed;
pub use bounded_calls::check_bounded_calls;
pub use ehr_sync::check_ehr_sync;
pub use faults_applied::check_faults_applied;
pub use idempotent_creation::check_idempotent_creation;
pub use latency::{check_latency, nearest_rank};
pub use no_double_booking::check_no_double_booking;
pub use no_duplicate_reminders::check_no_duplicate_reminders;
pub use no_lost_reminders::check_no_lost_reminders;
pub use phases::{Phase, PhaseMap};
pub use rate_limit::check_rate_limit;
pub use readiness::check_readiness;
pub use recovery::check_recovery;
pub use success_ratio::check_success_ratio;
pub use within_schedule::check_within_schedule;

/// Run every invariant the scenario enables, in the scenario's report order.
pub fn check_all(scenario: &Scenario, history: &History, evidence: &Evidence) -> Vec<CheckResult> {
    let mut out = Vec::new();
    let v = view::View::new(history, evidence);
    let inv = &scenario.invariants;
    let phases = PhaseMap::new(history, scenario.phases.recovery);
    if !scenario.faults.is_empty() {
        out.push(check_faults_applied(scenario, history));
    }
    if inv.no_double_booking.is_some() {
        out.push(no_double_booking::check(&v));
    }
    if inv.acknowledged_durable.is_some() {
        out.push(acknowledged_durable::check(&v));
    }
    if let Some(bounds) = &inv.latency {
        out.push(latency::check(bounds, &v, &phases));
    }
    if inv.auth_fails_closed.is_some() {
        out.push(auth_fails_closed::check(&v));
    }
    if let Some(ratios) = &inv.success_ratio {
        out.push(success_ratio::check(ratios, &v, &phases));
    }
    if let Some(bound) = &inv.recovery {
        out.push(recovery::check(bound, &v));
    }
    if inv.ehr_sync.is_some() {
        out.push(check_ehr_sync(evidence));
    }
    if inv.no_duplicate_reminders.is_some() {
        out.push(no_duplicate_reminders::check(&v));
    }
    if inv.no_lost_reminders.is_some() {
        out.push(no_lost_reminders::check(&v));
    }
    if let Some(bound) = &inv.bounded_calls {
        out.push(check_bounded_calls(bound, evidence));
    }
    if inv.idempotent_creation.is_some() {
        out.push(idempotent_creation::check(&v));
    }
    if inv.within_schedule.is_some() {
        out.push(within_schedule::check(&v));
    }
    if inv.rate_limit.is_some() {
        out.push(rate_limit::check(scenario.options.rate_limit, &v));
    }
    if let Some(bound) = &inv.readiness {
        out.push(readiness::check(bound, scenario, &v));
    }
    out
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
