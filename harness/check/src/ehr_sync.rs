//! EHR sync complete and exactly once (000:S7): every appointment reached the EHR as exactly
//! one FHIR resource, and the last state pushed matches the database. Judged from the EHR
//! stub's call log after the quiesce period: a resource is created by a POST answered 201,
//! or by the first PUT to an id answered 201; each names our appointment in `identifier`.

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
    for c in calls.iter().filter(|c| (200..300).contains(&c.status)) {
        let Some(id) = c.body["identifier"][0]["value"].as_str() else {
            continue;
        };
        if c.status == 201 {
            created.entry(id).or_default().push(c.seq);
        }
        if let Some(status) = c.body["status"].as_str() {
            last.insert(id, status);
        }
    }
    let mut problems = Vec::new();
    for r in rows {
        let expected = if r.status == "cancelled" {
            "cancelled"
        } else {
            "booked"
        };
        match created.get(r.id.as_str()).map(Vec::as_slice) {
            None | Some([]) => problems.push(format!("appointment {} never reached the EHR", r.id)),
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
            problems.push(format!(
                "appointment {} is {} in the EHR but {} here",
                r.id, status, r.status
            ));
        }
    }
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
        let detail = format!(
            "{} problem(s) over {} appointments",
            problems.len(),
            rows.len()
        );
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

    fn push(seq: u64, method: &str, id: &str, status: u16, fhir_status: &str) -> StubCall {
        StubCall {
            seq,
            at_ms: seq,
            method: method.into(),
            path: "/fhir/Appointment".into(),
            idempotency_key: None,
            body: serde_json::json!({ "resourceType": "Appointment", "status": fhir_status,
                                      "identifier": [{ "value": id }] }),
            status,
        }
    }

    fn evidence(calls: Vec<StubCall>, rows: Vec<chaos_model::AppointmentRow>) -> Evidence {
        let mut ev = Evidence {
            appointments: Some(rows),
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
    fn failed_calls_create_nothing() {
        let ev = evidence(vec![push(1, "POST", "a1", 503, "booked")], vec![row("a1")]);
        assert!(matches!(
            check_ehr_sync(&ev).verdict,
            Verdict::Invalid { .. }
        ));
    }
}
