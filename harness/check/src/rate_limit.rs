//! Rate limit enforced (000:M5, 002:S-6): no user had more authenticated requests let through
//! (answered with anything but 429) in one minute of the wall clock than the target's limit.
//! MediConnect counts per user per calendar minute, so requests are placed in minutes by the
//! evidence's start time; a request within a second of a minute's edge may be counted in the
//! neighbouring minute by the server, hence a slack of the requests that close to the edge.
//! Requests that got no answer may or may not have been counted: they prove nothing.

use std::collections::BTreeMap;

use chaos_model::{CheckResult, Evidence, History, OpKind, Verdict};

use crate::view::View;

pub const NAME: &str = "rate_limit";
const MAX_PROOF_OPS: usize = 20;
/// How close to a minute's edge (in ms) a request may be counted on the other side.
const EDGE_MS: u64 = 1_000;

pub fn check_rate_limit(limit: u32, history: &History, evidence: &Evidence) -> CheckResult {
    check(limit, &View::new(history, evidence))
}

pub(crate) fn check(limit: u32, v: &View<'_>) -> CheckResult {
    let unknown = |reason: &str| CheckResult::new(NAME, Verdict::unknown(reason));
    let Some(t0_ms) = v.evidence.run_started_unix_ms else {
        return unknown("the evidence has no start time to place requests in minutes");
    };
    // (user, minute) -> requests let through (op ids), answered 429, and near the edges.
    #[derive(Default)]
    struct Minute {
        through: Vec<u64>,
        limited: usize,
        near_edge: usize,
    }
    let mut minutes: BTreeMap<(u32, u64), Minute> = BTreeMap::new();
    for o in &v.ops {
        if !matches!(o.f, OpKind::Book | OpKind::Availability) {
            continue;
        }
        let Some(status) = o.status else { continue };
        if status == 401 {
            continue; // refused before the limiter: no session
        }
        let at_ms = t0_ms + o.invoke_us / 1000;
        let m = minutes.entry((o.process, at_ms / 60_000)).or_default();
        let in_minute = at_ms % 60_000;
        if !(EDGE_MS..60_000 - EDGE_MS).contains(&in_minute) {
            m.near_edge += 1;
        }
        if status == 429 {
            m.limited += 1;
        } else {
            m.through.push(o.id);
        }
    }
    if minutes.is_empty() {
        return unknown("no authenticated request was answered");
    }
    let limited: usize = minutes.values().map(|m| m.limited).sum();
    let busiest = minutes.values().map(|m| m.through.len()).max().unwrap_or(0);
    let mut over = Vec::new();
    let mut proof = Vec::new();
    for ((user, minute), m) in &minutes {
        let allowed = limit as usize + m.near_edge;
        if m.through.len() > allowed {
            over.push(format!(
                "user of process {user}: {} requests let through in minute {minute} (limit {limit}, {} near its edges)",
                m.through.len(),
                m.near_edge
            ));
            proof.extend(m.through[allowed..].iter().copied());
        }
    }
    let detail = format!(
        "{} user-minutes, at most {busiest} requests let through in one, {limited} answered 429 (limit {limit}/min)",
        minutes.len()
    );
    if over.is_empty() {
        if limited == 0 && busiest < limit as usize {
            return CheckResult::new(
                NAME,
                Verdict::unknown(format!(
                    "no user came near the limit: nothing exercised the invariant ({detail})"
                )),
            );
        }
        return CheckResult::new(NAME, (Verdict::Valid, detail));
    }
    proof.sort_unstable();
    proof.truncate(MAX_PROOF_OPS);
    CheckResult::new(
        NAME,
        (
            Verdict::Invalid {
                ops: proof,
                rows: over,
            },
            detail,
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use chaos_model::{Completion, Invoke, Record};

    /// `n` reads by process 0, 100 ms apart from `from_ms` after the start, answered `status`
    /// (the first `allowed` of each minute 200, the rest 429, when `status` is None).
    fn reads(n: u64, from_ms: u64, allowed: Option<u64>) -> Vec<Record> {
        let mut r = Vec::new();
        for i in 0..n {
            let t = (from_ms + i * 100) * 1000;
            r.push(Record::Invoke(Invoke {
                ..Invoke::new(i + 1, 0, OpKind::Availability, t, t)
            }));
            let status = match allowed {
                Some(a) if i >= a => 429,
                _ => 200,
            };
            let c = Completion {
                op: i + 1,
                time_us: t + 500,
                status: Some(status),
                appointment: None,
                error: None,
                ..Completion::default()
            };
            r.push(if status == 200 {
                Record::Ok(c)
            } else {
                Record::Fail(c)
            });
        }
        r
    }

    /// The run starts 5 s into a minute.
    fn started() -> Evidence {
        Evidence {
            run_started_unix_ms: Some(60_000 * 1_000 + 5_000),
            ..Evidence::default()
        }
    }

    #[test]
    fn a_limiter_that_answers_429_past_the_limit_is_valid() {
        let h = History::new(reads(50, 0, Some(20)));
        let r = check_rate_limit(20, &h, &started());
        assert_eq!(r.verdict, Verdict::Valid, "{}", r.detail);
        assert!(r.detail.contains("30 answered 429"), "{}", r.detail);
    }

    #[test]
    fn requests_past_the_limit_let_through_are_invalid_with_the_excess_ops() {
        let h = History::new(reads(50, 0, None));
        match check_rate_limit(20, &h, &started()).verdict {
            Verdict::Invalid { ops, rows } => {
                assert_eq!(
                    ops,
                    (21..=40).collect::<Vec<u64>>(),
                    "the first 20 over the limit"
                );
                assert!(rows[0].contains("50 requests let through"), "{rows:?}");
            }
            v => panic!("expected invalid, got {v:?}"),
        }
    }

    #[test]
    fn requests_near_a_minute_edge_get_slack_and_quiet_users_are_unknown() {
        // 30 requests from 54.5 s after the start: 59.5 s to 62.4 s of the minute. The next
        // minute has 25, 10 of them within a second of its edge: 25 <= 20 + 10.
        let h = History::new(reads(30, 54_500, None));
        let r = check_rate_limit(20, &h, &started());
        assert_eq!(r.verdict, Verdict::Valid, "{r:?}");
        let quiet = History::new(reads(5, 0, None));
        assert!(matches!(
            check_rate_limit(20, &quiet, &started()).verdict,
            Verdict::Unknown { .. }
        ));
        assert!(matches!(
            check_rate_limit(20, &quiet, &Evidence::default()).verdict,
            Verdict::Unknown { .. }
        ));
    }
}
