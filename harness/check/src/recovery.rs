//! Time to recover: after each heal, the first of `run` consecutive served ops (by due time)
//! is due within the bound. A heal never followed by such a run never recovered.

use chaos_model::{CheckResult, FaultAction, History, RecoveryBound, Verdict};

use crate::fmt_us;
use crate::served::{counts, served};
use crate::view::{View, with_history};

pub const NAME: &str = "recovery";

pub fn check_recovery(bound: &RecoveryBound, history: &History) -> CheckResult {
    with_history(history, |v| check(bound, v))
}

pub(crate) fn check(bound: &RecoveryBound, v: &View<'_>) -> CheckResult {
    let history = v.history;
    let mut ops: Vec<_> = v.ops.iter().filter(|o| counts(o)).collect();
    ops.sort_by_key(|o| (o.due_us, o.id));
    let heals: Vec<(u64, String)> = history
        .faults()
        .filter(|f| f.action == FaultAction::Heal && f.error.is_none())
        .map(|f| (f.time_us, f.name.clone()))
        .collect();
    if heals.is_empty() {
        return CheckResult::new(
            NAME,
            Verdict::unknown("no fault was healed: nothing to recover from"),
        );
    }
    let run = bound.run as usize;
    let within = bound.within.as_micros();
    let mut verdict = Verdict::Valid;
    let mut lines = Vec::new();
    for (heal, name) in heals {
        let after: Vec<_> = ops.iter().filter(|o| o.due_us >= heal).collect();
        let mut streak = 0;
        let mut recovered_at = None;
        for (i, o) in after.iter().enumerate() {
            streak = if served(o) { streak + 1 } else { 0 };
            if streak == run {
                recovered_at = Some(after[i + 1 - run].due_us);
                break;
            }
        }
        match recovered_at {
            Some(t) if t - heal <= within => {
                lines.push(format!(
                    "{name}: recovered {} after the heal (<= {})",
                    fmt_us(t - heal),
                    fmt_us(within)
                ));
            }
            Some(t) => {
                lines.push(format!(
                    "{name}: recovered only {} after the heal (> {})",
                    fmt_us(t - heal),
                    fmt_us(within)
                ));
                let failed = after
                    .iter()
                    .filter(|o| !served(o) && o.due_us < t)
                    .take(20)
                    .map(|o| o.id)
                    .collect();
                verdict = verdict.worst(Verdict::Invalid {
                    ops: failed,
                    rows: vec![],
                });
            }
            None if after.len() < run => {
                let reason = format!(
                    "{name}: only {} ops after the heal, fewer than the run of {run}",
                    after.len()
                );
                lines.push(reason.clone());
                verdict = verdict.worst(Verdict::Unknown { reason });
            }
            None => {
                lines.push(format!(
                    "{name}: never {run} served ops in a row after the heal"
                ));
                let failed = after
                    .iter()
                    .filter(|o| !served(o))
                    .take(20)
                    .map(|o| o.id)
                    .collect();
                verdict = verdict.worst(Verdict::Invalid {
                    ops: failed,
                    rows: vec![],
                });
            }
        }
    }
    CheckResult::new(NAME, (verdict, lines.join("; ")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::*;
    use chaos_model::{Dur, Record};

    fn reads(from: u64, n: u64, ok: bool) -> Vec<Record> {
        (0..n)
            .flat_map(|i| {
                let id = from + i;
                let t = id * 1_000;
                [
                    read_at(id, t, t),
                    if ok {
                        done_at(id, t + 10)
                    } else {
                        failed(id, 503)
                    },
                ]
            })
            .collect()
    }

    fn bound(ms: u64) -> RecoveryBound {
        RecoveryBound {
            within: Dur::from_millis(ms),
            run: 3,
        }
    }

    #[test]
    fn recovery_is_timed_from_the_heal_to_the_first_of_a_served_run() {
        let mut recs = vec![inject(0)];
        recs.extend(reads(1, 5, false)); // due 1ms..5ms, failing
        recs.push(heal(2_000));
        recs.extend(reads(6, 4, true)); // due 6ms..9ms, served
        let h = history(recs);
        let r = check_recovery(&bound(5), &h);
        assert_eq!(r.verdict, Verdict::Valid, "{}", r.detail);
        let r = check_recovery(&bound(2), &h);
        assert_eq!(
            r.verdict,
            Verdict::Invalid {
                ops: vec![2, 3, 4, 5],
                rows: vec![]
            },
            "{}",
            r.detail
        );
    }

    #[test]
    fn never_recovering_is_invalid_and_no_heal_is_unknown() {
        let mut recs = vec![inject(0), heal(1)];
        recs.extend(reads(1, 5, false));
        let r = check_recovery(&bound(1_000), &history(recs));
        assert!(matches!(r.verdict, Verdict::Invalid { .. }), "{r:?}");
        let r = check_recovery(&bound(1_000), &history(reads(1, 5, true)));
        assert!(matches!(r.verdict, Verdict::Unknown { .. }), "{r:?}");
    }
}
