//! Acknowledged bookings and cancellations are durable: every booking the system
//! acknowledged (an `ok` op with its appointment id) is still a live row when the run is
//! over, unless the client later cancelled it; every cancellation it acknowledged left its
//! row cancelled. A booking whose cancellation got no answer (`info`) may be either.

use chaos_model::{CheckResult, Evidence, History, OpKind, Outcome, Verdict};

use crate::fasthash::FastMap;
use crate::view::View;

pub const NAME: &str = "acknowledged_durable";

pub fn check_acknowledged_durable(history: &History, evidence: &Evidence) -> CheckResult {
    check(&View::new(history, evidence))
}

pub(crate) fn check(v: &View<'_>) -> CheckResult {
    let Some(rows) = &v.evidence.appointments else {
        return CheckResult::new(
            NAME,
            Verdict::unknown("the appointment rows were not collected".to_string()),
        );
    };
    let status: FastMap<&str, &str> = rows
        .iter()
        .map(|r| (r.id.as_str(), r.status.as_str()))
        .collect();
    // A booking that a cancellation may have undone is held to nothing.
    let cancelled_from = v.cancelled_from();
    let (mut acked, mut cancels) = (0usize, 0usize);
    let mut lost_ops = Vec::new();
    let mut lost_rows = Vec::new();
    // `info` bookings may or may not have happened: only an `ok` is a promise to keep.
    for o in &v.ops {
        if o.outcome != Outcome::Ok {
            continue;
        }
        let Some(id) = o.appointment else {
            continue;
        };
        let (expected, by) = match o.f {
            OpKind::Book if cancelled_from.contains_key(id) => continue,
            OpKind::Book => {
                acked += 1;
                ("booked", o.id)
            }
            OpKind::Cancel => {
                cancels += 1;
                ("cancelled", o.id)
            }
            _ => continue,
        };
        match status.get(id) {
            Some(s) if *s == expected => {}
            Some(other) => {
                lost_ops.push(by);
                lost_rows.push(format!(
                    "appointment {id} is {other}, acknowledged {expected}"
                ));
            }
            None => {
                lost_ops.push(by);
                lost_rows.push(format!("appointment {id} has no row"));
            }
        }
    }
    lost_ops.sort_unstable();
    let result = if !lost_ops.is_empty() {
        let detail = format!(
            "{} of {acked} acknowledged bookings and {cancels} cancellations are not as acknowledged in the database",
            lost_ops.len()
        );
        (
            Verdict::Invalid {
                ops: lost_ops,
                rows: lost_rows,
            },
            detail,
        )
    } else if acked + cancels == 0 {
        Verdict::unknown("no booking was acknowledged: nothing exercised the invariant".to_string())
    } else if cancels == 0 {
        (
            Verdict::Valid,
            format!("all {acked} acknowledged bookings are live rows"),
        )
    } else {
        (
            Verdict::Valid,
            format!(
                "all {acked} acknowledged bookings are live rows and all {cancels} acknowledged cancellations cancelled"
            ),
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
                    "appointment b is cancelled, acknowledged booked".into()
                ],
            }
        );
    }

    #[test]
    fn cancellations_are_held_to_what_was_acknowledged() {
        let mut cancelled = row("a");
        cancelled.status = "cancelled".into();
        let mut h = vec![book(1, SLOT), booked(1, "a"), book(2, SLOT), booked(2, "b")];
        h.extend(cancel(3, 1, "a", true));
        h.extend(cancel(4, 2, "b", true));
        // a was cancelled as acknowledged; b's acknowledged cancellation did not stick.
        let r = check_acknowledged_durable(
            &history(h.clone()),
            &evidence(vec![cancelled.clone(), row("b")]),
        );
        assert_eq!(
            r.verdict,
            Verdict::Invalid {
                ops: vec![4],
                rows: vec!["appointment b is booked, acknowledged cancelled".into()],
            }
        );
        // An unanswered cancellation excuses its booking either way.
        let mut h = vec![book(1, SLOT), booked(1, "a")];
        h.extend(cancel(2, 1, "a", false));
        let r = check_acknowledged_durable(&history(h.clone()), &evidence(vec![cancelled]));
        assert_eq!(
            r.verdict,
            Verdict::Unknown {
                reason: "no booking was acknowledged: nothing exercised the invariant".into()
            }
        );
        let r = check_acknowledged_durable(&history(h), &evidence(vec![row("a")]));
        assert!(!matches!(r.verdict, Verdict::Invalid { .. }), "{r:?}");
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
