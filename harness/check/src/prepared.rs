//! The evidence's share of judging, done before the history is there: a bundle's
//! `evidence.json` is read in a fraction of the time `history.jsonl` takes, so the
//! reminder deliveries and the checkers that read the evidence alone run on another core
//! while the history is still being read (`prepare`, then `check_prepared`, or both
//! around the caller's reading in `judge_while_reading`).

use chaos_model::{CallBound, CheckResult, Evidence, History, Scenario};

use crate::deliveries::{Deliveries, deliveries};
use crate::trace_propagates::{CausedCalls, caused_calls};
use crate::{check_bounded_calls, check_ehr_sync, check_prepared};

/// What `prepare` found in the evidence for one scenario; `check_prepared` uses it
/// instead of computing it again. `Prepared::none` has nothing ready: every part is
/// computed where it is needed, as `check_all` does.
pub struct Prepared<'e> {
    pub(crate) evidence: &'e Evidence,
    /// The stubs' reminder deliveries, when a reminder checker needs them.
    pub(crate) deliveries: Option<Option<Deliveries<'e>>>,
    /// The stub calls a booking may cause, when `trace_propagates` is judged.
    pub(crate) caused_calls: Option<CausedCalls<'e>>,
    pub(crate) ehr_sync: Option<CheckResult>,
    /// The bound judged and its result: used only for a scenario with the same bound.
    pub(crate) bounded_calls: Option<(CallBound, CheckResult)>,
}

impl<'e> Prepared<'e> {
    /// Nothing computed ahead.
    pub fn none(evidence: &'e Evidence) -> Prepared<'e> {
        Prepared {
            evidence,
            deliveries: None,
            caused_calls: None,
            ehr_sync: None,
            bounded_calls: None,
        }
    }
}

/// Do every part of judging that needs only the evidence, for the invariants the scenario
/// enables.
pub fn prepare<'e>(scenario: &Scenario, evidence: &'e Evidence) -> Prepared<'e> {
    let inv = &scenario.invariants;
    Prepared {
        evidence,
        deliveries: needs_deliveries(inv).then(|| deliveries(evidence)),
        caused_calls: inv
            .trace_propagates
            .as_ref()
            .map(|_| caused_calls(evidence)),
        ehr_sync: inv.ehr_sync.as_ref().map(|_| check_ehr_sync(evidence)),
        bounded_calls: inv
            .bounded_calls
            .as_ref()
            .map(|bound| (bound.clone(), check_bounded_calls(bound, evidence))),
    }
}

/// Whether an enabled checker reads the view's reminder deliveries (`View::deliveries`).
fn needs_deliveries(inv: &chaos_model::Invariants) -> bool {
    inv.no_duplicate_reminders.is_some()
        || inv.no_lost_reminders.is_some()
        || inv.delivered_within.is_some()
}

/// Read a run's history and evidence and judge them, each core busy: `read_history` runs
/// on the calling thread while another reads the evidence (`read_evidence`, which may
/// merely hand over what is in memory) and `prepare`s it; then the rest of `check_all`.
/// The readers do the IO; this crate does none. A history error comes first, then an
/// evidence error.
pub fn judge_while_reading<E: Send>(
    scenario: &Scenario,
    read_history: impl FnOnce() -> Result<History, E>,
    read_evidence: impl FnOnce() -> Result<Evidence, E> + Send,
) -> Result<(History, Evidence, Vec<CheckResult>), E> {
    let mut evidence: Option<Evidence> = None;
    let (history, results) = std::thread::scope(|s| {
        let slot = &mut evidence;
        let beside = s.spawn(move || -> Result<Prepared<'_>, E> {
            let ev = slot.insert(read_evidence()?);
            Ok(prepare(scenario, ev))
        });
        let history = read_history();
        let prepared = beside
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        let history = history?;
        let results = check_prepared(scenario, &history, prepared?);
        Ok((history, results))
    })?;
    let evidence = evidence.expect("the evidence was read: its reader answered Ok");
    Ok((history, evidence, results))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::*;
    use crate::{check_all, check_prepared};
    use chaos_model::{CallBound, Service, StubCall, Verdict};

    /// A scenario judging reminders, the EHR and the e-mail stub's refusals, and evidence in
    /// which the e-mail stub refused three calls in one second and one SMS went out twice.
    fn judged() -> (Scenario, chaos_model::History, Evidence) {
        let mut s = scenario(false);
        s.invariants.ehr_sync = Some(Default::default());
        s.invariants.no_duplicate_reminders = Some(Default::default());
        s.invariants.trace_propagates = Some(Default::default());
        s.invariants.bounded_calls = Some(CallBound {
            stub: Service::Sendgrid,
            max_failed_per_s: 2,
        });
        let h = history(vec![book(1, SLOT), booked(1, "a1")]);
        let mut calls = vec![sms("a1", "confirmation", 1), sms("a1", "confirmation", 2)];
        calls.extend((3..6).map(|seq| StubCall {
            status: Some(503),
            at_ms: 10_100,
            ..email("a1", "confirmation", seq)
        }));
        let mut ev = stubs(&calls);
        ev.run_started_unix_ms = Some(10_000);
        ev.appointments = Some(vec![row_at("a1", SLOT)]);
        (s, h, ev)
    }

    #[test]
    fn prepared_results_are_check_alls() {
        let (s, h, ev) = judged();
        let p = prepare(&s, &ev);
        assert!(
            p.deliveries.is_some(),
            "a reminder checker needs the deliveries"
        );
        // Answered or not, every confirmation is a call the booking caused; no EHR log.
        assert!(
            p.caused_calls
                .as_ref()
                .is_some_and(|c| c.calls.len() == 5 && c.missing == ["ehr"])
        );
        let (ehr, bounded) = (p.ehr_sync.clone(), p.bounded_calls.clone().map(|b| b.1));
        let split = check_prepared(&s, &h, p);
        let all = check_all(&s, &h, &ev);
        assert_eq!(split, all);
        let of = |name: &str| all.iter().find(|r| r.invariant == name).unwrap().clone();
        // What prepare judged is what check_all says, and it found what was planted.
        assert_eq!(ehr, Some(of("ehr_sync")));
        assert_eq!(bounded, Some(of("bounded_calls")));
        assert!(matches!(
            of("bounded_calls").verdict,
            Verdict::Invalid { .. }
        ));
        assert!(matches!(
            of("no_duplicate_reminders").verdict,
            Verdict::Invalid { .. }
        ));
    }

    #[test]
    fn what_prepare_judged_is_what_check_prepared_answers() {
        let (s, h, ev) = judged();
        let mut p = prepare(&s, &ev);
        let marker = CheckResult::new("ehr_sync", Verdict::unknown("judged by prepare"));
        p.ehr_sync = Some(marker.clone());
        let results = check_prepared(&s, &h, p);
        assert!(results.contains(&marker), "{results:?}");
    }

    #[test]
    fn a_result_for_another_bound_is_judged_again() {
        let (s, h, ev) = judged();
        // Prepared for a bound of 2 refusals a second (broken: 3 in one second) and checked
        // for a bound of 5 (held).
        let p = prepare(&s, &ev);
        let mut looser = s.clone();
        looser.invariants.bounded_calls = Some(CallBound {
            stub: Service::Sendgrid,
            max_failed_per_s: 5,
        });
        let results = check_prepared(&looser, &h, p);
        assert_eq!(results, check_all(&looser, &h, &ev));
        let bounded = results
            .iter()
            .find(|r| r.invariant == "bounded_calls")
            .unwrap();
        assert_eq!(bounded.verdict, Verdict::Valid, "{}", bounded.detail);
    }

    #[test]
    fn what_prepare_was_not_asked_for_is_computed_where_needed() {
        let (s, h, ev) = judged();
        // Prepared for a scenario that judges none of them: nothing is ready.
        let p = prepare(&scenario(false), &ev);
        assert!(p.deliveries.is_none() && p.caused_calls.is_none());
        assert!(p.ehr_sync.is_none() && p.bounded_calls.is_none());
        assert_eq!(check_prepared(&s, &h, p), check_all(&s, &h, &ev));
        assert_eq!(
            check_prepared(&s, &h, Prepared::none(&ev)),
            check_all(&s, &h, &ev)
        );
    }
}
