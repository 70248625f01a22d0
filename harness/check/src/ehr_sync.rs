//! EHR sync complete and exactly once (000:S7): every appointment reached the EHR as exactly
//! one FHIR resource, and the last state pushed matches the database. Judged from the EHR
//! stub's call log after the quiesce period: a resource is created by a POST answered 201,
//! or by the first PUT to an id answered 201; each names our appointment in `identifier`.
//! A second resource is a fact; a resource missing or behind the database while the quiesce
//! phase ended with work in flight may still be on its way (unknown, not invalid).

use crate::deliveries::ehr_appointment;
use crate::drain::still_in_flight;
use crate::fasthash::FastMap;

use chaos_model::{CheckResult, Evidence, Verdict};

pub const NAME: &str = "ehr_sync";

pub fn check_ehr_sync(evidence: &Evidence) -> CheckResult {
    let unknown = |reason: &str| CheckResult::new(NAME, Verdict::unknown(reason));
    let Some(rows) = &evidence.appointments else {
        return unknown("the appointment rows were not collected");
    };
    let Some(calls) = evidence.stub_calls.get("ehr") else {
        return unknown("the EHR stub's call log was not collected");
    };
    if rows.is_empty() {
        return unknown("no appointment exists: nothing exercised the invariant");
    }
    // Per appointment: the stub calls that created a resource, and the last status pushed.
    let mut created: FastMap<&str, Vec<u64>> = FastMap::default();
    let mut last: FastMap<&str, &str> = FastMap::default();
    created.reserve(rows.len());
    last.reserve(rows.len());
    for c in calls.iter().filter(|c| c.took_effect()) {
        let Some(id) = ehr_appointment(c) else {
            continue;
        };
        // A call answered 201 created a resource; so did a POST the stub accepted but whose
        // answer the caller abandoned (an abandoned PUT counts as an update, so a duplicate
        // is never inferred from it).
        if c.status == Some(201) || (c.status.is_none() && c.method == "POST") {
            created.entry(id).or_default().push(c.seq);
        }
        if let Some(status) = c.body["status"].as_str() {
            last.insert(id, status);
        }
    }
    // Duplicates are facts; missing or stale resources may be pushes still in flight.
    let mut problems = Vec::new();
    let mut pending = Vec::new();
    for r in rows {
        let expected = if r.status == "cancelled" {
            "cancelled"
        } else {
            "booked"
        };
        match created.get(r.id.as_str()).map(Vec::as_slice) {
            None | Some([]) => pending.push(format!("appointment {} never reached the EHR", r.id)),
            Some([_]) => {}
            Some(many) => {
                let seqs: Vec<String> = many.iter().map(u64::to_string).collect();
                problems.push(format!(
                    "appointment {} is {} resources in the EHR (stub calls {})",
                    r.id,
                    many.len(),
                    seqs.join(", ")
                ));
            }
        }
        if let Some(status) = last.get(r.id.as_str()).filter(|s| **s != expected) {
            pending.push(format!(
                "appointment {} is {} in the EHR but {} here",
                r.id, status, r.status
            ));
        }
    }
    let in_flight = still_in_flight(evidence);
    if problems.is_empty()
        && !pending.is_empty()
        && let Some(in_flight) = &in_flight
    {
        return unknown(&format!(
            "{} appointment(s) missing or behind in the EHR, {in_flight}",
            pending.len()
        ));
    }
    let held_back = if in_flight.is_some() {
        std::mem::take(&mut pending).len()
    } else {
        0
    };
    problems.append(&mut pending);
    if problems.is_empty() {
        CheckResult::new(
            NAME,
            (
                Verdict::Valid,
                format!(
                    "{} appointments, each one resource in the EHR, states agree",
                    rows.len()
                ),
            ),
        )
    } else {
        let mut detail = format!(
            "{} problem(s) over {} appointments",
            problems.len(),
            rows.len()
        );
        if held_back > 0 {
            detail += &format!("; {held_back} missing or behind not judged (still in flight)");
        }
        CheckResult::new(
            NAME,
            (
                Verdict::Invalid {
                    ops: vec![],
                    rows: problems,
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
    use chaos_model::StubCall;

    use crate::testkit::ehr_push as push;

    fn evidence(calls: Vec<StubCall>, rows: Vec<chaos_model::AppointmentRow>) -> Evidence {
        let mut ev = Evidence {
            appointments: Some(rows),
            drain: Some(crate::testkit::drain(true)),
            ..Evidence::default()
        };
        ev.stub_calls.insert("ehr".into(), calls);
        ev
    }

    #[test]
    fn one_resource_per_appointment_is_valid_and_updates_are_fine() {
        let ev = evidence(
            vec![
                push(1, "PUT", "a1", 201, "booked"),
                push(2, "PUT", "a1", 200, "booked"),
            ],
            vec![row("a1")],
        );
        assert_eq!(check_ehr_sync(&ev).verdict, Verdict::Valid);
    }

    #[test]
    fn a_second_creation_a_missing_one_or_a_stale_state_is_invalid() {
        let ev = evidence(
            vec![
                push(1, "POST", "a1", 201, "booked"),
                push(2, "POST", "a1", 201, "booked"),
            ],
            vec![row("a1"), row("a2")],
        );
        match check_ehr_sync(&ev).verdict {
            Verdict::Invalid { rows, .. } => {
                assert!(
                    rows.iter().any(|r| r.contains("a1 is 2 resources")),
                    "{rows:?}"
                );
                assert!(
                    rows.iter().any(|r| r.contains("a2 never reached")),
                    "{rows:?}"
                );
            }
            v => panic!("expected invalid, got {v:?}"),
        }
        let mut cancelled = row("a1");
        cancelled.status = "cancelled".into();
        let ev = evidence(vec![push(1, "PUT", "a1", 201, "booked")], vec![cancelled]);
        assert!(matches!(
            check_ehr_sync(&ev).verdict,
            Verdict::Invalid { .. }
        ));
    }

    #[test]
    fn missing_or_stale_resources_in_flight_are_unknown_but_duplicates_are_not() {
        let mut ev = evidence(
            vec![push(1, "PUT", "a1", 201, "booked")],
            vec![row("a1"), row("a2")],
        );
        ev.drain = Some(drain(false));
        match check_ehr_sync(&ev).verdict {
            Verdict::Unknown { reason } => assert!(reason.contains("still in flight"), "{reason}"),
            v => panic!("expected unknown, got {v:?}"),
        }
        ev.drain = Some(drain(true));
        assert!(matches!(
            check_ehr_sync(&ev).verdict,
            Verdict::Invalid { .. }
        ));
        let mut ev = evidence(
            vec![
                push(1, "POST", "a1", 201, "booked"),
                push(2, "POST", "a1", 201, "booked"),
            ],
            vec![row("a1"), row("a2")],
        );
        ev.drain = Some(drain(false));
        let r = check_ehr_sync(&ev);
        match r.verdict {
            Verdict::Invalid { rows, .. } => {
                assert_eq!(rows.len(), 1, "only the duplicate is proof: {rows:?}");
                assert!(
                    r.detail.contains("1 missing or behind not judged"),
                    "{}",
                    r.detail
                );
            }
            v => panic!("expected invalid, got {v:?}"),
        }
    }

    #[test]
    fn failed_calls_create_nothing() {
        let ev = evidence(vec![push(1, "POST", "a1", 503, "booked")], vec![row("a1")]);
        assert!(matches!(
            check_ehr_sync(&ev).verdict,
            Verdict::Invalid { .. }
        ));
    }
}
