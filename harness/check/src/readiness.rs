//! Readiness agrees with the replica's ability to serve (000:S6, 001:M-1): each
//! `/health/readiness` probe is compared with the other ops sent to the same replica within
//! `within` of it (its neighbours). A probe that says ready (200) while at least 3
//! neighbours were sent and every one failed (503, another 5xx, no answer, or `info`)
//! disagrees: the balancer keeps sending traffic a replica cannot serve. A probe that says
//! not ready while at least 3 neighbours were sent and every one was served (ok, or a
//! definite 409) disagrees too: the balancer drops a replica that serves, as a replica that
//! degrades gracefully through a Redis outage does (it is rightly ready). Neighbours refused
//! for the client's own sake (401, 429, other 4xx) say nothing either way; so does a probe
//! with fewer than 3 neighbours, or none answered.

use chaos_model::{CheckResult, History, Op, OpKind, Outcome, ReadinessBound, Verdict};

use crate::fasthash::FastMap;
use crate::fmt_us;
use crate::served::{counts, served};
use crate::view::{View, with_history};

pub const NAME: &str = "readiness";
/// How many neighbours a probe needs to be judged.
const MIN_NEIGHBOURS: u64 = 3;
const MAX_PROOF_ROWS: usize = 20;

pub fn check_readiness(bound: &ReadinessBound, history: &History) -> CheckResult {
    with_history(history, |v| check(bound, v))
}

/// Whether an op shows its replica could not serve it.
fn failed(o: &Op<'_>) -> bool {
    match o.outcome {
        Outcome::Info => true,
        Outcome::Fail => o.status.is_none_or(|s| s >= 500),
        Outcome::Ok => false,
    }
}

/// One replica's non-probe ops by invocation, with running counts of served and failed.
#[derive(Default)]
struct Neighbours {
    at: Vec<u64>,
    /// `served[i]`, `failed[i]`: among the first `i` ops.
    served: Vec<u64>,
    failed: Vec<u64>,
}

impl Neighbours {
    /// (served, failed) among the ops invoked in `[from, to]`.
    fn within(&self, from: u64, to: u64) -> (u64, u64) {
        let a = self.at.partition_point(|&t| t < from);
        let b = self.at.partition_point(|&t| t <= to);
        (
            self.served[b] - self.served[a],
            self.failed[b] - self.failed[a],
        )
    }
}

pub(crate) fn check(bound: &ReadinessBound, v: &View<'_>) -> CheckResult {
    let probes: Vec<_> = v.ops.iter().filter(|o| o.f == OpKind::Readiness).collect();
    if probes.is_empty() {
        return CheckResult::new(
            NAME,
            Verdict::unknown("the workload sent no readiness probes (set workload.mix.readiness)"),
        );
    }
    let mut ops: Vec<(Option<u32>, u64, bool, bool)> = v
        .ops
        .iter()
        .filter(|o| counts(o))
        .map(|o| (o.replica, o.invoke_us, served(o), failed(o)))
        .collect();
    ops.sort_unstable_by_key(|o| (o.0, o.1));
    let mut replicas: FastMap<Option<u32>, Neighbours> = FastMap::default();
    for (replica, at, s, f) in ops {
        let n = replicas.entry(replica).or_insert_with(|| Neighbours {
            served: vec![0],
            failed: vec![0],
            ..Neighbours::default()
        });
        n.at.push(at);
        n.served
            .push(n.served.last().expect("seeded") + u64::from(s));
        n.failed
            .push(n.failed.last().expect("seeded") + u64::from(f));
    }
    let within = bound.within.as_micros();
    let (mut unanswered, mut ready_ok, mut not_ready_ok) = (0usize, 0usize, 0usize);
    let mut liars = Vec::new();
    let mut rows = Vec::new();
    for p in &probes {
        let Some(status) = p.status else {
            unanswered += 1;
            continue;
        };
        let Some(n) = replicas.get(&p.replica) else {
            continue;
        };
        let (s, f) = n.within(
            p.invoke_us.saturating_sub(within),
            p.invoke_us.saturating_add(within),
        );
        if s + f < MIN_NEIGHBOURS {
            continue;
        }
        let ready = status == 200;
        let to = p
            .replica
            .map_or_else(String::new, |r| format!(" to replica {r}"));
        let disagreed = if ready && s == 0 {
            Some(format!(
                "said ready, but all {f} ops to it within {} failed",
                bound.within
            ))
        } else if !ready && f == 0 {
            Some(format!(
                "said not ready ({status}), but all {s} ops to it within {} were served",
                bound.within
            ))
        } else {
            None
        };
        match disagreed {
            Some(why) => {
                liars.push(p.id);
                if rows.len() < MAX_PROOF_ROWS {
                    rows.push(format!(
                        "probe op {}{to} at {} {why}",
                        p.id,
                        fmt_us(p.invoke_us)
                    ));
                }
            }
            None if ready => ready_ok += 1,
            None => not_ready_ok += 1,
        }
    }
    let judged = ready_ok + not_ready_ok + liars.len();
    let mut detail = format!(
        "{} probes, {judged} with at least {MIN_NEIGHBOURS} ops to their replica within {}: {ready_ok} ready and {not_ready_ok} not ready agreed, {} disagreed",
        probes.len(),
        bound.within,
        liars.len()
    );
    if unanswered > 0 {
        detail += &format!("; {unanswered} unanswered (not judged)");
    }
    let verdict = if !liars.is_empty() {
        if liars.len() > MAX_PROOF_ROWS {
            rows.push(format!("… {} more", liars.len() - MAX_PROOF_ROWS));
        }
        Verdict::Invalid { ops: liars, rows }
    } else if judged == 0 {
        Verdict::Unknown {
            reason: format!(
                "no answered probe had at least {MIN_NEIGHBOURS} ops to its replica within {} to agree with",
                bound.within
            ),
        }
    } else {
        Verdict::Valid
    };
    CheckResult {
        invariant: NAME.into(),
        verdict,
        detail,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::*;
    use chaos_model::{Dur, Record};

    fn bound() -> ReadinessBound {
        ReadinessBound {
            within: Dur::from_millis(500),
        }
    }

    fn run(records: Vec<Record>) -> CheckResult {
        check_readiness(&bound(), &history(records))
    }

    /// A probe of `replica` at `t` answered `status` (None: unanswered).
    fn probe(op: u64, t: u64, replica: u32, status: Option<u16>) -> [Record; 2] {
        let outcome = match status {
            Some(200) => Outcome::Ok,
            Some(_) => Outcome::Fail,
            None => Outcome::Info,
        };
        [
            edit(invoked(op, OpKind::Readiness, t), |i| {
                i.replica = Some(replica)
            }),
            ended(op, outcome, t + 1_000, status),
        ]
    }

    /// A booking sent to `replica` at `t`, answered `status` (None: timed out, `info`).
    fn sent(op: u64, t: u64, replica: u32, status: Option<u16>) -> [Record; 2] {
        let outcome = match status {
            Some(s) if s < 300 => Outcome::Ok,
            Some(s) if s >= 500 => Outcome::Info,
            Some(_) => Outcome::Fail,
            None => Outcome::Info,
        };
        [
            edit(invoked(op, OpKind::Book, t), |i| i.replica = Some(replica)),
            ended(op, outcome, t + 2_000, status),
        ]
    }

    /// Three bookings to `replica` around `t`, answered `status`.
    fn around(first: u64, t: u64, replica: u32, status: Option<u16>) -> Vec<Record> {
        (0..3)
            .flat_map(|i| sent(first + i, t - 200_000 + i * 200_000, replica, status))
            .collect()
    }

    #[test]
    fn probes_that_agree_with_their_replica_are_valid() {
        let mut r = probe(1, 1_000_000, 1, Some(200)).to_vec();
        r.extend(around(10, 1_000_000, 1, Some(201)));
        // A conflict is served too.
        r.extend(sent(13, 1_100_000, 1, Some(409)));
        r.extend(probe(2, 5_000_000, 1, Some(503)));
        r.extend(around(20, 5_000_000, 1, Some(503)));
        // Replica 2 failing at the same time says nothing about replica 1's probes.
        r.extend(around(30, 1_000_000, 2, None));
        let c = run(r);
        assert_eq!(c.verdict, Verdict::Valid, "{}", c.detail);
        assert!(
            c.detail.contains("2 probes, 2 with at least 3 ops to their replica within 500ms: 1 ready and 1 not ready agreed"),
            "{}",
            c.detail
        );
    }

    #[test]
    fn ready_while_nothing_is_served_is_invalid() {
        let mut r = probe(1, 1_000_000, 1, Some(200)).to_vec();
        r.extend(around(10, 1_000_000, 1, None));
        match run(r).verdict {
            Verdict::Invalid { ops, rows } => {
                assert_eq!(ops, vec![1]);
                assert!(rows[0].contains("said ready, but all 3 ops"), "{rows:?}");
            }
            v => panic!("expected invalid, got {v:?}"),
        }
    }

    #[test]
    fn not_ready_while_everything_is_served_is_invalid() {
        // Graceful degradation: the replica serves through a Redis outage; readiness must
        // not take it out of the balancer.
        let mut r = vec![inject(0)];
        r.extend(probe(1, 1_000_000, 1, Some(503)));
        r.extend(around(10, 1_000_000, 1, Some(200)));
        match run(r).verdict {
            Verdict::Invalid { ops, rows } => {
                assert_eq!(ops, vec![1]);
                assert!(rows[0].contains("not ready (503), but all 3"), "{rows:?}");
            }
            v => panic!("expected invalid, got {v:?}"),
        }
    }

    #[test]
    fn probes_without_enough_neighbours_or_answers_are_unknown() {
        assert!(matches!(run(vec![]).verdict, Verdict::Unknown { .. }));
        // Two neighbours only, or neighbours out of the window, or a 401 (the client's).
        let mut r = probe(1, 1_000_000, 1, Some(200)).to_vec();
        r.extend(sent(10, 900_000, 1, None));
        r.extend(sent(11, 1_100_000, 1, None));
        r.extend(sent(12, 2_000_000, 1, None));
        r.extend(sent(13, 1_000_000, 1, Some(401)));
        // An unanswered probe with plenty of neighbours.
        r.extend(probe(2, 5_000_000, 1, None));
        r.extend(around(20, 5_000_000, 1, None));
        let c = run(r);
        assert!(matches!(c.verdict, Verdict::Unknown { .. }), "{c:?}");
        assert!(c.detail.contains("1 unanswered"), "{}", c.detail);
    }
}
