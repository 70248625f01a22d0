//! Authentication fails closed: no request carrying a forged token succeeds, whether or not
//! the session store is up (000:C1, 001:C-4). A refusal (401) and an error (503) both count
//! as closed; only a success is a breach. When the scenario has faults, the verdict is
//! earned only by forged requests answered while a fault was in force: that is when a
//! store that fails open lets them through. An unanswered request judges nothing.

use chaos_model::{CheckResult, History, OpKind, Outcome, Scenario, Verdict};

use crate::view::{View, with_history};

pub const NAME: &str = "auth_fails_closed";

pub fn check_auth_fails_closed(scenario: &Scenario, history: &History) -> CheckResult {
    with_history(history, |v| check(!scenario.faults.is_empty(), v))
}

pub(crate) fn check(has_faults: bool, v: &View<'_>) -> CheckResult {
    let forged: Vec<_> = v.ops.iter().filter(|o| o.f == OpKind::Forged).collect();
    if forged.is_empty() {
        return CheckResult::new(
            NAME,
            Verdict::unknown("the workload sent no forged requests (set workload.mix.forged)"),
        );
    }
    let breaches: Vec<u64> = forged
        .iter()
        .filter(|o| o.outcome == Outcome::Ok)
        .map(|o| o.id)
        .collect();
    let refused = forged.iter().filter(|o| o.status == Some(401)).count();
    let errors = forged
        .iter()
        .filter(|o| o.status.is_some_and(|s| s >= 500))
        .count();
    // Answered during a fault: while it was certainly in effect.
    let windows = v.certain_fault_windows();
    // Only an answer judges the store: a forged request that timed out was neither let
    // through nor refused.
    let answered = forged.iter().filter(|o| o.status.is_some()).count();
    let in_fault = forged
        .iter()
        .filter(|o| {
            o.status.is_some()
                && windows
                    .iter()
                    .any(|&(_, a, b)| a <= o.invoke_us && o.invoke_us < b)
        })
        .count();
    if breaches.is_empty() && answered == 0 {
        CheckResult::new(
            NAME,
            Verdict::unknown(format!(
                "none of the {} forged requests was answered",
                forged.len()
            )),
        )
    } else if breaches.is_empty() && has_faults && in_fault == 0 {
        CheckResult::new(
            NAME,
            Verdict::unknown(format!(
                "no forged request was answered during a fault ({} sent, {answered} answered outside faults, none let through)",
                forged.len()
            )),
        )
    } else if breaches.is_empty() {
        let during = if has_faults {
            format!(" ({in_fault} answered during a fault)")
        } else {
            String::new()
        };
        let detail = format!(
            "{} forged requests{during}: {refused} refused (401), {errors} errors (5xx), none let through",
            forged.len()
        );
        CheckResult::new(NAME, (Verdict::Valid, detail))
    } else {
        let detail = format!(
            "{} of {} forged requests were let through",
            breaches.len(),
            forged.len()
        );
        CheckResult::new(
            NAME,
            (
                Verdict::Invalid {
                    ops: breaches,
                    rows: vec![],
                },
                detail,
            ),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::*;

    fn run(has_faults: bool, h: &History) -> CheckResult {
        with_history(h, |v| check(has_faults, v))
    }

    #[test]
    fn refusals_and_errors_are_closed_and_a_success_is_a_breach() {
        let h = history(vec![forged(1), failed(1, 401), forged(2), failed(2, 503)]);
        assert_eq!(run(false, &h).verdict, Verdict::Valid);
        let h = history(vec![forged(1), failed(1, 401), forged(2), done_at(2, 50)]);
        assert_eq!(
            run(false, &h).verdict,
            Verdict::Invalid {
                ops: vec![2],
                rows: vec![]
            }
        );
    }

    #[test]
    fn without_forged_requests_it_is_unknown() {
        let h = history(vec![read_at(1, 0, 0), done_at(1, 10)]);
        assert!(matches!(run(false, &h).verdict, Verdict::Unknown { .. }));
        assert!(matches!(run(true, &h).verdict, Verdict::Unknown { .. }));
    }

    #[test]
    fn a_forged_request_sent_while_the_injection_was_under_way_proves_nothing() {
        // The kill began at 100 us and was done at 130: a request at 120 may have met a
        // store still up, so it is not steady, and not proof of failing closed either.
        let h = history(vec![
            inject_between(100, 130),
            forged(120),
            failed(120, 401),
            heal(150),
        ]);
        assert!(
            matches!(run(true, &h).verdict, Verdict::Unknown { .. }),
            "{:?}",
            run(true, &h)
        );
        let h = history(vec![
            inject_between(100, 130),
            forged(140),
            failed(140, 401),
            heal(150),
        ]);
        assert_eq!(run(true, &h).verdict, Verdict::Valid);
    }

    #[test]
    fn with_faults_only_forged_requests_answered_in_a_fault_earn_the_verdict() {
        // Forged at 1 and 200 us; the fault from 100 to 150 us.
        let h = history(vec![
            forged(1),
            failed(1, 401),
            inject(100),
            heal(150),
            forged(200),
            failed(200, 401),
        ]);
        match run(true, &h).verdict {
            Verdict::Unknown { reason } => {
                assert!(
                    reason.contains("no forged request was answered during a fault"),
                    "{reason}"
                )
            }
            v => panic!("expected unknown, got {v:?}"),
        }
        let h = history(vec![
            inject(100),
            forged(120),
            failed(120, 503),
            heal(150),
            forged(200),
            done_at(200, 210),
        ]);
        // A breach outside the fault is still a breach.
        assert!(matches!(run(true, &h).verdict, Verdict::Invalid { .. }));
        let h = history(vec![inject(100), forged(120), failed(120, 503), heal(150)]);
        let r = run(true, &h);
        assert_eq!(r.verdict, Verdict::Valid, "{}", r.detail);
        assert!(
            r.detail.contains("(1 answered during a fault)"),
            "{}",
            r.detail
        );
        // Sent during the fault but never answered (a frozen store): nothing judged.
        let h = history(vec![
            forged(1),
            failed(1, 401),
            inject(100),
            forged(120),
            timed_out_at(120, 140),
            heal(150),
        ]);
        assert!(matches!(run(true, &h).verdict, Verdict::Unknown { .. }));
        let h = history(vec![forged(1), timed_out(1)]);
        match run(false, &h).verdict {
            Verdict::Unknown { reason } => assert!(reason.contains("was answered"), "{reason}"),
            v => panic!("expected unknown, got {v:?}"),
        }
    }
}
