//! Answers in time (000:C4, 000:C12): every request is answered before the client's
//! timeout (`workload.op_timeout`), and a refusal (503 or 429) is fast and says when to come
//! back: answered within `refusal` of its invocation, with `Retry-After`. An op the client
//! gave up on has no status and an error saying it timed out (reqwest words it "operation
//! timed out"; a connection that timed out before it was accepted counts too: nobody
//! answered). Probes (forged tokens, readiness) are left out; ops the run ended before they
//! completed are counted but not judged.

use chaos_model::{AnswerBound, CheckResult, History, Op, Scenario, Verdict};

use crate::phases::{Phase, PhaseMap};
use crate::served::counts;
use crate::view::{View, with_history};
use crate::{fmt_us, nearest_rank};

pub const NAME: &str = "answers_in_time";
const MAX_PROOF: usize = 20;

pub fn check_answers_in_time(
    bound: &AnswerBound,
    scenario: &Scenario,
    history: &History,
) -> CheckResult {
    let phases = PhaseMap::new(history, scenario.phases.recovery);
    with_history(history, |v| {
        check(bound, scenario.workload.op_timeout.as_micros(), v, &phases)
    })
}

/// Whether the client gave up waiting for the answer.
pub fn gave_up(o: &Op<'_>) -> bool {
    o.status.is_none()
        && o.error
            .is_some_and(|e| contains_ci(e, b"timed out") || contains_ci(e, b"timeout"))
}

/// Whether `hay` contains `needle`, ignoring ASCII case (without allocating: most errors of
/// a large history are timeouts).
fn contains_ci(hay: &str, needle: &[u8]) -> bool {
    hay.as_bytes()
        .windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle))
}

fn phase_index(p: Phase) -> usize {
    match p {
        Phase::Steady => 0,
        Phase::Fault => 1,
        Phase::Recovery => 2,
    }
}

#[derive(Default)]
struct Tally {
    ops: usize,
    gave_up: usize,
    refused: usize,
    slow: usize,
    bare: usize,
    unfinished: usize,
}

pub(crate) fn check(
    bound: &AnswerBound,
    op_timeout_us: u64,
    v: &View<'_>,
    phases: &PhaseMap,
) -> CheckResult {
    let limit = bound.refusal.as_micros();
    // By phase: steady, fault, recovery.
    let mut tally: [Tally; 3] = Default::default();
    let mut refusal_us: Vec<u64> = Vec::new();
    let mut proof_ops = Vec::new();
    let mut rows = Vec::new();
    let mut violations = 0usize;
    for o in v.ops.iter().filter(|o| counts(o)) {
        let t = &mut tally[phase_index(phases.at(o.due_us))];
        t.ops += 1;
        let Some(done) = o.complete_us else {
            t.unfinished += 1;
            continue;
        };
        let took = done.saturating_sub(o.invoke_us);
        let mut why = Vec::new();
        if gave_up(o) {
            t.gave_up += 1;
            why.push(format!(
                "got no answer within the client's {} ({})",
                fmt_us(op_timeout_us),
                o.error.unwrap_or_default()
            ));
        } else if let Some(status @ (429 | 503)) = o.status {
            t.refused += 1;
            refusal_us.push(took);
            if took > limit {
                t.slow += 1;
                why.push(format!(
                    "refused {status} after {} (bound {})",
                    fmt_us(took),
                    fmt_us(limit)
                ));
            }
            if o.retry_after.is_none() {
                t.bare += 1;
                why.push(format!("refused {status} without Retry-After"));
            }
        }
        if !why.is_empty() {
            violations += 1;
            if proof_ops.len() < MAX_PROOF {
                proof_ops.push(o.id);
                rows.push(format!("op {} ({}) {}", o.id, o.f, why.join(", ")));
            }
        }
    }
    let total: usize = tally.iter().map(|t| t.ops).sum();
    let unfinished: usize = tally.iter().map(|t| t.unfinished).sum();
    if total == 0 {
        return CheckResult::new(
            NAME,
            Verdict::unknown("the workload sent no ops but probes: nothing to answer"),
        );
    }
    if total == unfinished {
        return CheckResult::new(
            NAME,
            Verdict::unknown(format!(
                "none of the {total} ops completed before the run ended"
            )),
        );
    }
    let mut parts: Vec<String> = [Phase::Steady, Phase::Fault, Phase::Recovery]
        .into_iter()
        .zip(&tally)
        .filter(|(_, t)| t.ops > 0)
        .map(|(phase, t)| {
            let mut s = format!(
                "{}: {} ops, {} unanswered in time, {} refused ({} slow, {} without Retry-After)",
                phase.as_str(),
                t.ops,
                t.gave_up,
                t.refused,
                t.slow,
                t.bare
            );
            if t.unfinished > 0 {
                s += &format!(", {} never completed (not judged)", t.unfinished);
            }
            s
        })
        .collect();
    if !refusal_us.is_empty() {
        refusal_us.sort_unstable();
        parts.push(format!(
            "refusals answered p99 {}",
            fmt_us(refusal_us[nearest_rank(refusal_us.len(), 0.99)])
        ));
    }
    let detail = parts.join("; ");
    if violations == 0 {
        return CheckResult::new(NAME, (Verdict::Valid, detail));
    }
    if violations > MAX_PROOF {
        rows.push(format!("… {} more", violations - MAX_PROOF));
    }
    proof_ops.sort_unstable();
    CheckResult::new(
        NAME,
        (
            Verdict::Invalid {
                ops: proof_ops,
                rows,
            },
            format!("{violations} op(s) not answered in time; {detail}"),
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::*;
    use chaos_model::{Dur, OpKind, Outcome, Record};

    fn run(records: Vec<Record>) -> CheckResult {
        let h = history(records);
        let phases = PhaseMap::new(&h, Dur::from_secs(1));
        let bound = AnswerBound {
            refusal: Dur::from_millis(100),
        };
        with_history(&h, |v| check(&bound, 2_000_000, v, &phases))
    }

    /// Op `op` invoked at `t` and refused `status` `took_us` later.
    fn refused(
        op: u64,
        t: u64,
        status: u16,
        took_us: u64,
        retry_after: Option<u64>,
    ) -> [Record; 2] {
        [
            invoked(op, OpKind::Book, t),
            amend(ended(op, Outcome::Fail, t + took_us, Some(status)), |c| {
                c.retry_after = retry_after
            }),
        ]
    }

    fn reqwest_timeout(op: u64, t: u64) -> Record {
        amend(ended(op, Outcome::Info, t, None), |c| {
            c.error = Some(
                "error sending request for url (http://127.0.0.1:1/api/v1/appointments): operation timed out".into(),
            )
        })
    }

    #[test]
    fn answers_and_fast_refusals_with_retry_after_are_valid_per_phase() {
        let mut r = vec![read_at(1, 0, 0), done_at(1, 50_000), inject(100_000)];
        r.extend(refused(2, 200_000, 503, 5_000, Some(1)));
        r.extend(refused(3, 300_000, 429, 90_000, Some(60)));
        r.push(heal(400_000));
        // Probes are not judged, even when the client gave up on them.
        r.extend([forged(5), reqwest_timeout(5, 2_000_005)]);
        let c = run(r);
        assert_eq!(c.verdict, Verdict::Valid, "{}", c.detail);
        assert!(
            c.detail
                .contains("steady: 1 ops, 0 unanswered in time, 0 refused")
                && c.detail.contains(
                    "fault: 2 ops, 0 unanswered in time, 2 refused (0 slow, 0 without Retry-After)"
                ),
            "{}",
            c.detail
        );
    }

    #[test]
    fn a_client_that_gave_up_is_a_violation_info_or_not() {
        let c = run(vec![
            book(1, SLOT),
            reqwest_timeout(1, 2_000_001),
            read_at(2, 10, 10),
            // A read the client gave up on ends `fail`: still unanswered.
            amend(ended(2, Outcome::Fail, 2_000_010, None), |c| {
                c.error = Some("operation timed out".into())
            }),
            book(3, SLOT),
            // Reset, not a timeout: answered badly, but not late.
            amend(ended(3, Outcome::Info, 50, None), |c| {
                c.error = Some("connection reset by peer".into())
            }),
        ]);
        match c.verdict {
            Verdict::Invalid { ops, rows } => {
                assert_eq!(ops, vec![1, 2]);
                assert!(
                    rows[0].contains("no answer within the client's 2.00s"),
                    "{rows:?}"
                );
            }
            v => panic!("expected invalid, got {v:?}"),
        }
    }

    #[test]
    fn a_slow_refusal_or_one_without_retry_after_is_a_violation() {
        let mut r = Vec::new();
        r.extend(refused(1, 0, 503, 250_000, Some(1)));
        r.extend(refused(2, 0, 429, 1_000, None));
        r.extend(refused(3, 0, 409, 900_000, None)); // a conflict is no refusal
        match run(r).verdict {
            Verdict::Invalid { ops, rows } => {
                assert_eq!(ops, vec![1, 2]);
                assert!(rows[0].contains("refused 503 after 250.0ms"), "{rows:?}");
                assert!(rows[1].contains("429 without Retry-After"), "{rows:?}");
            }
            v => panic!("expected invalid, got {v:?}"),
        }
    }

    #[test]
    fn no_ops_but_probes_is_unknown_and_unfinished_ops_are_not_judged() {
        assert!(matches!(run(vec![]).verdict, Verdict::Unknown { .. }));
        assert!(matches!(
            run(vec![forged(1), failed(1, 401)]).verdict,
            Verdict::Unknown { .. }
        ));
        assert!(matches!(
            run(vec![book(1, SLOT)]).verdict,
            Verdict::Unknown { .. }
        ));
        let c = run(vec![book(1, SLOT), book(2, SLOT), booked(2, "a")]);
        assert_eq!(c.verdict, Verdict::Valid);
        assert!(c.detail.contains("1 never completed"), "{}", c.detail);
    }
}
