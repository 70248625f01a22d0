//! Authentication fails closed: no request carrying a forged token succeeds, whether or not
//! the session store is up (000:C1, 001:C-4). A refusal (401) and an error (503) both count
//! as closed; only a success is a breach.

use chaos_model::{CheckResult, History, OpKind, Outcome, Verdict};

use crate::view::{View, with_history};

pub const NAME: &str = "auth_fails_closed";

pub fn check_auth_fails_closed(history: &History) -> CheckResult {
    with_history(history, check)
}

pub(crate) fn check(v: &View<'_>) -> CheckResult {
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
    if breaches.is_empty() {
        let detail = format!(
            "{} forged requests: {refused} refused (401), {errors} errors (5xx), none let through",
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

    #[test]
    fn refusals_and_errors_are_closed_and_a_success_is_a_breach() {
        let h = history(vec![forged(1), failed(1, 401), forged(2), failed(2, 503)]);
        assert_eq!(check_auth_fails_closed(&h).verdict, Verdict::Valid);
        let h = history(vec![forged(1), failed(1, 401), forged(2), done_at(2, 50)]);
        assert_eq!(
            check_auth_fails_closed(&h).verdict,
            Verdict::Invalid {
                ops: vec![2],
                rows: vec![]
            }
        );
    }

    #[test]
    fn without_forged_requests_it_is_unknown() {
        let h = history(vec![read_at(1, 0, 0), done_at(1, 10)]);
        assert!(matches!(
            check_auth_fails_closed(&h).verdict,
            Verdict::Unknown { .. }
        ));
    }
}
