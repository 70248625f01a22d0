//! Acknowledged bookings are durable: every booking the system acknowledged (an `ok` op with
//! its appointment id) is still a live row in the database when the run is over. The
//! workload never cancels, so a missing or cancelled row is an acknowledged write lost.

use crate::fasthash::FastMap;

use chaos_model::{CheckResult, Evidence, History, OpKind, Outcome, Verdict};

use crate::view::View;

pub const NAME: &str = "acknowledged_durable";

pub fn check_acknowledged_durable(history: &History, evidence: &Evidence) -> CheckResult {
    check(&View::new(history, evidence))
}

pub(crate) fn check(v: &View<'_>) -> CheckResult {
    let Some(rows) = &v.evidence.appointments else {
        return CheckResult::new(
            NAME,
            Verdict::unknown("the database rows could not be read".to_string()),
        );
    };
    let status: FastMap<&str, &str> = rows
        .iter()
        .map(|r| (r.id.as_str(), r.status.as_str()))
        .collect();
    let mut acked = 0usize;
    let mut lost_ops = Vec::new();
    let mut lost_rows = Vec::new();
    // `info` bookings may or may not have happened: only an `ok` is a promise to keep.
    for o in &v.ops {
        if o.f != OpKind::Book || o.outcome != Outcome::Ok {
            continue;
        }
        let Some(id) = o.appointment else {
            continue;
        };
        acked += 1;
        match status.get(id) {
            Some(&"booked") => {}
            Some(other) => {
                lost_ops.push(o.id);
                lost_rows.push(format!("appointment {id} is {other}"));
            }
            None => {
                lost_ops.push(o.id);
                lost_rows.push(format!("appointment {id} has no row"));
            }
        }
    }
    let result = if !lost_ops.is_empty() {
        let detail = format!(
            "{} of {acked} acknowledged bookings are not live in the database",
            lost_ops.len()
        );
        (
            Verdict::Invalid {
                ops: lost_ops,
                rows: lost_rows,
            },
            detail,
        )
    } else if acked == 0 {
        Verdict::unknown("no booking was acknowledged: nothing exercised the invariant".to_string())
    } else {
        (
            Verdict::Valid,
            format!("all {acked} acknowledged bookings are live rows"),
        )
    };
    CheckResult::new(NAME, result)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::*;

    fn evidence(rows: Vec<chaos_model::AppointmentRow>) -> Evidence {
        Evidence {
            appointments: Some(rows),
            ..Evidence::default()
        }
    }

    #[test]
    fn every_acknowledged_booking_present_is_valid() {
        let h = history(vec![
            book(1, SLOT),
            booked(1, "a"),
            book(2, SLOT),
            failed(2, 409),
        ]);
        let r = check_acknowledged_durable(&h, &evidence(vec![row("a")]));
        assert_eq!(r.verdict, Verdict::Valid, "{}", r.detail);
    }

    #[test]
    fn a_missing_or_cancelled_row_convicts_its_op() {
        let mut cancelled = row("b");
        cancelled.status = "cancelled".into();
        let h = history(vec![
            book(1, SLOT),
            booked(1, "a"),
            book(2, SLOT),
            booked(2, "b"),
            book(3, SLOT),
            booked(3, "c"),
        ]);
        let r = check_acknowledged_durable(&h, &evidence(vec![row("c"), cancelled]));
        assert_eq!(
            r.verdict,
            Verdict::Invalid {
                ops: vec![1, 2],
                rows: vec![
                    "appointment a has no row".into(),
                    "appointment b is cancelled".into()
                ],
            }
        );
    }

    #[test]
    fn info_bookings_never_convict() {
        // A timed-out booking and a 500 naming an appointment: neither was a promise.
        let h = history(vec![
            book(1, SLOT),
            timed_out(1),
            book(2, SLOT),
            server_error(2, "x"),
            book(3, SLOT),
            booked(3, "c"),
        ]);
        let r = check_acknowledged_durable(&h, &evidence(vec![row("c")]));
        assert_eq!(r.verdict, Verdict::Valid, "{}", r.detail);
    }

    #[test]
    fn no_rows_or_no_acknowledgement_is_unknown() {
        let h = history(vec![book(1, SLOT), booked(1, "a")]);
        let r = check_acknowledged_durable(&h, &Evidence::default());
        assert!(matches!(r.verdict, Verdict::Unknown { .. }));
        let empty = history(vec![book(1, SLOT), timed_out(1)]);
        let r = check_acknowledged_durable(&empty, &evidence(vec![]));
        assert!(matches!(r.verdict, Verdict::Unknown { .. }));
    }
}
