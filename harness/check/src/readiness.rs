//! Readiness reflects dependencies: `/health/readiness` answers not ready (503) while a
//! dependency of the target is killed, and ready (200) in the steady phase. A probe is held
//! to "not ready" when it was sent at least `within` after the kill and answered at least
//! half a second before the heal event (which the harness records once the restarted
//! server answers its own probe, a moment after the target may see it back). Probes in those
//! margins or in a recovery window are not judged, nor probes that got no answer.

use chaos_model::{CheckResult, History, OpKind, ReadinessBound, Scenario, Verdict};

use crate::phases::{Phase, PhaseMap};
use crate::view::{View, with_history};

pub const NAME: &str = "readiness";
/// How long before the heal event a probe must have been answered to be held to "not ready".
const BEFORE_HEAL_US: u64 = 500_000;

pub fn check_readiness(
    bound: &ReadinessBound,
    scenario: &Scenario,
    history: &History,
) -> CheckResult {
    with_history(history, |v| check(bound, scenario, v))
}

pub(crate) fn check(bound: &ReadinessBound, scenario: &Scenario, v: &View<'_>) -> CheckResult {
    let history = v.history;
    let probes: Vec<_> = v.ops.iter().filter(|o| o.f == OpKind::Readiness).collect();
    if probes.is_empty() {
        return CheckResult::new(
            NAME,
            Verdict::unknown("the workload sent no readiness probes (set workload.mix.readiness)"),
        );
    }
    let grace = bound.within.as_micros();
    // Windows in which readiness must say no: a killed dependency, after the grace period.
    let outages: Vec<(u64, u64)> = history
        .fault_windows()
        .into_iter()
        .filter(|(i, _, _)| scenario.faults.get(*i).is_some_and(|f| f.kill.is_some()))
        .map(|(_, a, b)| (a.saturating_add(grace), b.saturating_sub(BEFORE_HEAL_US)))
        .filter(|(a, b)| a < b)
        .collect();
    let phases = PhaseMap::new(history, scenario.phases.recovery);
    let (mut down_judged, mut down_ok, mut up_judged, mut up_ok, mut unanswered) = (0, 0, 0, 0, 0);
    let mut liars = Vec::new();
    for p in probes.iter() {
        let Some(status) = p.status else {
            unanswered += 1;
            continue;
        };
        let ready = status == 200;
        let answered = p.complete_us.unwrap_or(u64::MAX);
        if outages
            .iter()
            .any(|&(a, b)| a <= p.invoke_us && answered < b)
        {
            down_judged += 1;
            if ready {
                liars.push(p.id);
            } else {
                down_ok += 1;
            }
        } else if phases.at(p.due_us) == Phase::Steady {
            up_judged += 1;
            if ready {
                up_ok += 1;
            } else {
                liars.push(p.id);
            }
        }
    }
    let mut detail = format!(
        "{} probes: while a dependency was killed {down_ok}/{down_judged} not ready; steady {up_ok}/{up_judged} ready",
        probes.len()
    );
    if unanswered > 0 {
        detail += &format!("; {unanswered} unanswered (not judged)");
    }
    let verdict = if !liars.is_empty() {
        liars.sort_unstable();
        Verdict::Invalid {
            ops: liars,
            rows: vec![],
        }
    } else if !outages.is_empty() && down_judged == 0 {
        Verdict::Unknown {
            reason: "no probe was answered while a dependency was killed".into(),
        }
    } else if up_judged == 0 {
        Verdict::Unknown {
            reason: "no probe was answered in the steady phase".into(),
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
    use chaos_model::{Completion, Dur, Invoke, Record};

    const SCENARIO: &str = r#"
name = "r"
target = "mediconnect"
[workload]
duration = "10s"
rate = 10
clients = 2
mix = { book = 1, readiness = 1 }
[phases]
recovery = "1s"
[[faults]]
at = "2s"
kill = "redis"
restart_after = "4s"
[invariants]
readiness = { within = "500ms" }
"#;

    fn probe(op: u64, due_us: u64, status: Option<u16>) -> [Record; 2] {
        let done = Completion {
            op,
            time_us: due_us + 1_000,
            status,
            appointment: None,
            error: None,
        };
        [
            Record::Invoke(Invoke {
                op,
                process: 0,
                f: OpKind::Readiness,
                slot: None,
                due_us,
                time_us: due_us,
                key: None,
            }),
            match status {
                Some(200) => Record::Ok(done),
                Some(_) => Record::Fail(done),
                None => Record::Info(done),
            },
        ]
    }

    fn check(records: Vec<Record>) -> CheckResult {
        let s = Scenario::parse("r.toml", SCENARIO).unwrap();
        let bound = s.invariants.readiness.clone().unwrap();
        assert_eq!(bound.within, Dur::from_millis(500));
        check_readiness(&bound, &s, &history(records))
    }

    /// Steady probes at 1 s and 8 s, the kill from 2 s to 6 s, recovery to 7 s.
    fn run(steady: u16, killed: u16, settling: u16) -> Vec<Record> {
        let mut r = Vec::new();
        r.extend(probe(1, 1_000_000, Some(steady)));
        r.push(inject(2_000_000));
        r.extend(probe(2, 2_100_000, Some(settling)));
        r.extend(probe(3, 3_000_000, Some(killed)));
        r.extend(probe(4, 4_000_000, None));
        // Answered within half a second of the heal event: the restarted server may be back.
        r.extend(probe(7, 5_800_000, Some(200)));
        r.push(heal(6_000_000));
        r.extend(probe(5, 6_500_000, Some(503)));
        r.extend(probe(6, 8_000_000, Some(200)));
        r
    }

    #[test]
    fn not_ready_while_killed_and_ready_when_steady_is_valid() {
        let r = check(run(200, 503, 200));
        assert_eq!(r.verdict, Verdict::Valid, "{}", r.detail);
        assert!(
            r.detail
                .contains("7 probes: while a dependency was killed 1/1 not ready; steady 2/2 ready; 1 unanswered"),
            "{}",
            r.detail
        );
    }

    #[test]
    fn ready_during_a_kill_or_not_ready_when_steady_is_invalid_with_the_probe() {
        match check(run(200, 200, 503)).verdict {
            Verdict::Invalid { ops, .. } => {
                assert_eq!(ops, vec![3], "settling probe 2 is not judged")
            }
            v => panic!("expected invalid, got {v:?}"),
        }
        match check(run(503, 503, 200)).verdict {
            Verdict::Invalid { ops, .. } => assert_eq!(ops, vec![1]),
            v => panic!("expected invalid, got {v:?}"),
        }
    }

    #[test]
    fn no_probe_or_none_answered_in_a_kill_is_unknown() {
        assert!(matches!(check(vec![]).verdict, Verdict::Unknown { .. }));
        let mut r = Vec::new();
        r.extend(probe(1, 1_000_000, Some(200)));
        r.push(inject(2_000_000));
        r.extend(probe(2, 3_000_000, None));
        r.push(heal(6_000_000));
        let c = check(r);
        assert!(matches!(c.verdict, Verdict::Unknown { .. }), "{c:?}");
    }
}
