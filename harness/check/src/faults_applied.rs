//! Faults applied: every fault of the schedule was injected and healed without error. When
//! one was not, the run did not test what it claims to, so the verdict is unknown.

use chaos_model::{CheckResult, FaultAction, History, Scenario, Verdict};

pub const NAME: &str = "faults_applied";

pub fn check_faults_applied(scenario: &Scenario, history: &History) -> CheckResult {
    let mut problems = Vec::new();
    for (i, f) in scenario.faults.iter().enumerate() {
        let events: Vec<_> = history.faults().filter(|e| e.fault == i).collect();
        for action in [FaultAction::Inject, FaultAction::Heal] {
            match events.iter().find(|e| e.action == action) {
                None => problems.push(format!("{} was never {}", f.label(), past(action))),
                Some(e) => {
                    if let Some(err) = &e.error {
                        problems.push(format!(
                            "{} could not be {}: {err}",
                            f.label(),
                            past(action)
                        ));
                    }
                }
            }
        }
    }
    let (verdict, detail) = if problems.is_empty() {
        (
            Verdict::Valid,
            format!(
                "{} fault(s) injected and healed as scheduled",
                scenario.faults.len()
            ),
        )
    } else {
        let reason = problems.join("; ");
        Verdict::unknown(reason)
    };
    CheckResult::new(NAME, (verdict, detail))
}

fn past(a: FaultAction) -> &'static str {
    match a {
        FaultAction::Inject => "injected",
        FaultAction::Heal => "healed",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::*;
    use chaos_model::{FaultEvent, Record};

    fn scenario() -> Scenario {
        Scenario::parse(
            "t.toml",
            "name = \"t\"\n[workload]\nduration = \"10s\"\nrate = 1\nclients = 1\n\
             [[faults]]\nat = \"1s\"\nkill = \"redis\"\nrestart_after = \"1s\"\n\
             [invariants]\nno_double_booking = {}\n",
        )
        .unwrap()
    }

    #[test]
    fn a_fault_injected_and_healed_is_valid() {
        let r = check_faults_applied(&scenario(), &history(vec![inject(10), heal(20)]));
        assert_eq!(r.verdict, Verdict::Valid, "{}", r.detail);
    }

    #[test]
    fn a_missing_heal_or_an_error_is_unknown() {
        let r = check_faults_applied(&scenario(), &history(vec![inject(10)]));
        assert!(matches!(r.verdict, Verdict::Unknown { .. }));
        assert!(r.detail.contains("never healed"), "{}", r.detail);

        let failed = Record::Fault(FaultEvent {
            fault: 0,
            name: "kill redis".into(),
            action: FaultAction::Inject,
            time_us: 10,
            effective_us: None,
            error: Some("redis is not running".into()),
        });
        let r = check_faults_applied(&scenario(), &history(vec![failed]));
        assert!(r.detail.contains("could not be injected"), "{}", r.detail);
    }
}
