//! Bounded calls to a failing dependency (000:S1, no retry storm): in no second of the run
//! did one stub refuse more of the target's calls (an answer of 400 or above) than the
//! scenario allows. A storm is made of calls that fail and are tried again at once; a backlog
//! delivered once after the dependency heals is not one, so successful calls do not count.
//! Judged from the stub's own call log, placed on the run's clock by the evidence's start
//! time.

use chaos_model::{CallBound, CheckResult, Evidence, Verdict};

pub const NAME: &str = "bounded_calls";
/// How many of the offending seconds the proof lists.
const MAX_PROOF_ROWS: usize = 10;

pub fn check_bounded_calls(bound: &CallBound, evidence: &Evidence) -> CheckResult {
    let unknown = |reason: String| CheckResult::new(NAME, Verdict::unknown(reason));
    let stub = bound.stub.as_str();
    let Some(t0_ms) = evidence.run_started_unix_ms else {
        return unknown("the evidence has no start time to place the calls on".into());
    };
    let Some(calls) = evidence.stub_calls.get(stub) else {
        return unknown(format!("the {stub} stub's call log was not collected"));
    };
    let failed: Vec<_> = calls.iter().filter(|c| c.refused()).collect();
    if failed.is_empty() {
        return unknown(format!(
            "{stub} refused none of {} calls: nothing exercised the invariant",
            calls.len()
        ));
    }
    // Failed calls per second since the start of the workload (earlier ones in second 0).
    let mut per_s: Vec<u32> = Vec::new();
    for c in failed.iter() {
        let s = (c.at_ms.saturating_sub(t0_ms) / 1000) as usize;
        if per_s.len() <= s {
            per_s.resize(s + 1, 0);
        }
        per_s[s] += 1;
    }
    let (peak_s, peak) = per_s
        .iter()
        .enumerate()
        .max_by_key(|(s, n)| (**n, std::cmp::Reverse(*s)))
        .map(|(s, n)| (s, *n))
        .expect("at least one failed call");
    let over: Vec<(usize, u32)> = per_s
        .iter()
        .enumerate()
        .filter(|(_, n)| **n > bound.max_failed_per_s)
        .map(|(s, n)| (s, *n))
        .collect();
    let summary = format!(
        "{} of {} calls to {stub} refused, peak {peak} in second {peak_s} (bound {}/s)",
        failed.len(),
        calls.len(),
        bound.max_failed_per_s
    );
    if over.is_empty() {
        return CheckResult::new(NAME, (Verdict::Valid, summary));
    }
    let mut rows: Vec<String> = over
        .iter()
        .take(MAX_PROOF_ROWS)
        .map(|(s, n)| {
            format!(
                "{n} refused calls to {stub} in second {s} ({s}.0-{}.0 s)",
                s + 1
            )
        })
        .collect();
    if over.len() > MAX_PROOF_ROWS {
        rows.push(format!(
            "… {} more seconds over the bound",
            over.len() - MAX_PROOF_ROWS
        ));
    }
    CheckResult::new(
        NAME,
        (
            Verdict::Invalid { ops: vec![], rows },
            format!("{summary}: {} second(s) over the bound", over.len()),
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::*;
    use chaos_model::Service;

    fn bound(max_failed_per_s: u32) -> CallBound {
        CallBound {
            stub: Service::Sendgrid,
            max_failed_per_s,
        }
    }

    /// Refused e-mail calls at these milliseconds after a start at 10 000 ms, each followed
    /// by a successful one in the same millisecond (which never counts).
    fn calls_at(ms: &[u64]) -> Evidence {
        let mut calls: Vec<_> = ms
            .iter()
            .flat_map(|t| [(t, 503), (t, 202)])
            .enumerate()
            .map(|(i, (t, status))| {
                let mut c = email("a1", "confirmation", i as u64);
                c.at_ms = 10_000 + t;
                c.status = Some(status);
                c
            })
            .collect();
        calls.sort_by_key(|c| c.seq);
        let mut ev = stubs(&calls);
        ev.run_started_unix_ms = Some(10_000);
        ev
    }

    #[test]
    fn calls_within_the_bound_every_second_are_valid() {
        let ev = calls_at(&[0, 300, 900, 1_100, 1_500, 2_999]);
        let r = check_bounded_calls(&bound(3), &ev);
        assert_eq!(r.verdict, Verdict::Valid, "{}", r.detail);
        assert!(
            r.detail
                .contains("6 of 12 calls to sendgrid refused, peak 3 in second 0"),
            "{}",
            r.detail
        );
    }

    #[test]
    fn a_storm_is_invalid_with_the_seconds_that_broke_the_bound() {
        let mut ms: Vec<u64> = (0..50).map(|i| 2_000 + i * 10).collect();
        ms.extend([100, 5_500]);
        let r = check_bounded_calls(&bound(10), &calls_at(&ms));
        match r.verdict {
            Verdict::Invalid { ops, rows } => {
                assert!(ops.is_empty(), "stub calls are not client ops");
                assert_eq!(
                    rows,
                    vec!["50 refused calls to sendgrid in second 2 (2.0-3.0 s)"]
                );
            }
            v => panic!("expected invalid, got {v:?}"),
        }
    }

    #[test]
    fn without_a_start_time_a_log_or_any_call_it_is_unknown() {
        let mut ev = calls_at(&[0]);
        ev.run_started_unix_ms = None;
        assert!(matches!(
            check_bounded_calls(&bound(1), &ev).verdict,
            Verdict::Unknown { .. }
        ));
        assert!(matches!(
            check_bounded_calls(&bound(1), &Evidence::default()).verdict,
            Verdict::Unknown { .. }
        ));
        let mut empty = stubs(&[]);
        empty.run_started_unix_ms = Some(0);
        assert!(matches!(
            check_bounded_calls(&bound(1), &empty).verdict,
            Verdict::Unknown { .. }
        ));
    }
}
