//! The client's retry policy as pure functions: whether a try is followed by another, how long
//! the client waits first, which op id and which replica each try has.

use std::time::Duration;

use chaos_model::{OP_STRIDE, OpKind, Outcome, PART_RESUBMIT, Retry, op_id};

/// How one try came out, as far as the retry decision needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tried {
    pub outcome: Outcome,
    /// The HTTP status, when an answer arrived.
    pub status: Option<u16>,
    /// The answer's `Retry-After`, in seconds.
    pub retry_after: Option<u64>,
}

/// After try number `try_no` (1 for the first) of a `kind` op came out as `tried`: how long
/// the client waits before the next try, or `None` when it stops.
///
/// A client tries again after an outcome it does not know (`info`), after a refusal for now
/// (503, 429), and after a request that got no answer at all (never sent, or a read whose
/// answer was lost), up to `attempts` tries in all. It waits `backoff` before the first
/// retry, doubling before each next one, or the answer's `Retry-After` when that is longer.
/// Probes (`forged`, `readiness`) are never retried: they measure the target, not a client.
/// A client told to come back later than [`MAX_WAIT`] gives up on the request instead.
pub fn retry_wait(
    policy: Option<&Retry>,
    kind: OpKind,
    tried: Tried,
    try_no: u32,
) -> Option<Duration> {
    let policy = policy?;
    if matches!(kind, OpKind::Forged | OpKind::Readiness) || try_no >= policy.attempts {
        return None;
    }
    let again = tried.outcome == Outcome::Info || matches!(tried.status, None | Some(429 | 503));
    if !again {
        return None;
    }
    let doubled = policy
        .backoff
        .0
        .saturating_mul(1u32 << (try_no.clamp(1, 16) - 1));
    let asked = Duration::from_secs(tried.retry_after.unwrap_or(0));
    if asked > MAX_WAIT {
        return None;
    }
    Some(doubled.max(asked))
}

/// The longest `Retry-After` a client waits out (a rate limiter's "in a minute" is a no).
pub const MAX_WAIT: Duration = Duration::from_secs(5);

/// The op id of try `try_no` (1-based) of the plan's op `index`: the try number is the part.
pub fn try_op(index: u64, try_no: u32) -> u64 {
    let part = u64::from(try_no);
    assert!(
        (1..PART_RESUBMIT).contains(&part) && part < OP_STRIDE,
        "a planned op has tries 1 to 6, not {try_no}"
    );
    op_id(index, part)
}

/// The 0-based replica try `try_no` of `process`'s op goes to: the first to the client's own
/// replica, each retry to the next one, as a client behind a load balancer fails over.
pub fn replica_of(process: u32, try_no: u32, replicas: u32) -> u32 {
    assert!(replicas > 0, "a target has at least one replica");
    let p = u64::from(process) + u64::from(try_no.max(1)) - 1;
    (p % u64::from(replicas)) as u32
}

#[cfg(test)]
mod tests {
    use super::*;
    use chaos_model::Dur;

    #[test]
    fn a_client_does_not_wait_out_a_long_retry_after() {
        let p = policy(3);
        let refused = |s| tried(Outcome::Fail, Some(429), Some(s));
        assert_eq!(
            retry_wait(Some(&p), OpKind::Book, refused(5), 1),
            Some(Duration::from_secs(5))
        );
        assert_eq!(retry_wait(Some(&p), OpKind::Book, refused(60), 1), None);
    }

    fn policy(attempts: u32) -> Retry {
        Retry {
            attempts,
            backoff: Dur::from_millis(100),
            idempotency_key: false,
        }
    }

    fn tried(outcome: Outcome, status: Option<u16>, retry_after: Option<u64>) -> Tried {
        Tried {
            outcome,
            status,
            retry_after,
        }
    }

    fn ms(ms: u64) -> Duration {
        Duration::from_millis(ms)
    }

    #[test]
    fn unknown_outcomes_and_refusals_are_retried_with_doubling_backoff() {
        let p = policy(4);
        let info = tried(Outcome::Info, None, None);
        assert_eq!(retry_wait(Some(&p), OpKind::Book, info, 1), Some(ms(100)));
        assert_eq!(retry_wait(Some(&p), OpKind::Book, info, 2), Some(ms(200)));
        assert_eq!(retry_wait(Some(&p), OpKind::Book, info, 3), Some(ms(400)));
        assert_eq!(
            retry_wait(Some(&p), OpKind::Book, info, 4),
            None,
            "4 tries in all"
        );
        let shed = tried(Outcome::Fail, Some(503), None);
        assert_eq!(
            retry_wait(Some(&p), OpKind::Availability, shed, 1),
            Some(ms(100))
        );
        let limited = tried(Outcome::Fail, Some(429), None);
        assert_eq!(
            retry_wait(Some(&p), OpKind::Cancel, limited, 2),
            Some(ms(200))
        );
        let write_500 = tried(Outcome::Info, Some(500), None);
        assert_eq!(
            retry_wait(Some(&p), OpKind::Reschedule, write_500, 1),
            Some(ms(100))
        );
        let not_sent = tried(Outcome::Fail, None, None);
        assert_eq!(
            retry_wait(Some(&p), OpKind::Login, not_sent, 1),
            Some(ms(100))
        );
    }

    #[test]
    fn a_longer_retry_after_is_honoured_and_a_shorter_one_is_not() {
        let p = policy(3);
        let asks_2s = tried(Outcome::Fail, Some(429), Some(2));
        assert_eq!(
            retry_wait(Some(&p), OpKind::Book, asks_2s, 1),
            Some(ms(2000))
        );
        let slow = Retry {
            backoff: Dur::from_secs(3),
            ..policy(3)
        };
        let asks_1s = tried(Outcome::Info, Some(503), Some(1));
        assert_eq!(
            retry_wait(Some(&slow), OpKind::Book, asks_1s, 2),
            Some(ms(6000))
        );
    }

    #[test]
    fn definite_answers_probes_and_no_policy_stop() {
        let p = policy(6);
        for (outcome, status) in [
            (Outcome::Ok, Some(201)),
            (Outcome::Fail, Some(409)),
            (Outcome::Fail, Some(401)),
            (Outcome::Fail, Some(422)),
            (Outcome::Fail, Some(404)),
            (Outcome::Fail, Some(500)),
        ] {
            let t = tried(outcome, status, Some(5));
            assert_eq!(retry_wait(Some(&p), OpKind::Book, t, 1), None, "{status:?}");
        }
        let shed = tried(Outcome::Fail, Some(503), None);
        assert_eq!(retry_wait(Some(&p), OpKind::Readiness, shed, 1), None);
        assert_eq!(
            retry_wait(
                Some(&p),
                OpKind::Forged,
                tried(Outcome::Fail, None, None),
                1
            ),
            None
        );
        assert_eq!(
            retry_wait(None, OpKind::Book, tried(Outcome::Info, None, None), 1),
            None
        );
    }

    #[test]
    fn tries_are_parts_one_to_six_and_fail_over_replica_by_replica() {
        assert_eq!(try_op(5, 1), 41);
        assert_eq!(try_op(5, 6), 46);
        assert_eq!(
            (1..=6).map(|t| replica_of(4, t, 3)).collect::<Vec<_>>(),
            [1, 2, 0, 1, 2, 0]
        );
        assert!((1..=6).all(|t| replica_of(7, t, 1) == 0));
    }

    #[test]
    #[should_panic(expected = "tries 1 to 6")]
    fn a_seventh_try_is_a_harness_bug() {
        try_op(0, 7);
    }
}
