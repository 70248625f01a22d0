//! No double booking: no slot holds two live appointments, judged from the client history
//! (two acknowledged bookings of one slot that were certainly live at the same time) and from
//! the database rows. An appointment is certainly live from its booking's acknowledgement to
//! the invocation of a cancellation that may have taken effect (acknowledged, or unanswered
//! by the same client for the same slot): a slot cancelled and booked again is no proof.

use chaos_model::{CheckResult, Evidence, History, OpKind, Outcome, Slot, Verdict};

use crate::view::View;

pub const NAME: &str = "no_double_booking";

pub fn check_no_double_booking(history: &History, evidence: &Evidence) -> CheckResult {
    check(&View::new(history, evidence))
}

pub(crate) fn check(v: &View<'_>) -> CheckResult {
    let (ops, evidence) = (&v.ops, v.evidence);
    let books: Vec<_> = ops.iter().filter(|o| o.f == OpKind::Book).collect();
    let acked: Vec<_> = books.iter().filter(|o| o.outcome == Outcome::Ok).collect();
    let unknown = books.iter().filter(|o| o.outcome == Outcome::Info).count();

    // From the history: an `ok` is proof that the system promised the slot to that client.
    // `info` bookings may have happened too, but prove nothing, so they never convict.
    // When each appointment may have stopped being live.
    let cancelled_from = v.cancelled_from();
    // (slot, appointment, op, acknowledged at, live until), sorted: a slot with two
    // appointments certainly live at once is a double booking; the same appointment twice
    // (an idempotent replay) is not.
    let mut owners: Vec<(Slot, &str, u64, u64, u64)> = acked
        .iter()
        .filter_map(|o| {
            let (slot, a) = (o.slot?, o.appointment?);
            let until = cancelled_from.get(a).copied().unwrap_or(u64::MAX);
            Some((slot, a, o.id, o.complete_us.unwrap_or(u64::MAX), until))
        })
        .collect();
    owners.sort_unstable();
    let mut ops_proof = Vec::new();
    let mut slots_in_history = 0;
    for group in owners.chunk_by(|a, b| a.0 == b.0) {
        // The first acknowledgement of each appointment.
        let lives: Vec<(u64, u64, u64)> = group
            .chunk_by(|a, b| a.1 == b.1)
            .map(|same| (same[0].2, same[0].3, same[0].4))
            .collect();
        let mut convicted = Vec::new();
        for (i, a) in lives.iter().enumerate() {
            for b in &lives[i + 1..] {
                if a.1 < b.2 && b.1 < a.2 {
                    convicted.extend([a.0, b.0]);
                }
            }
        }
        if !convicted.is_empty() {
            slots_in_history += 1;
            convicted.sort_unstable();
            convicted.dedup();
            ops_proof.append(&mut convicted);
        }
    }
    ops_proof.sort_unstable();

    // From the database: live rows per slot.
    let mut rows_proof = Vec::new();
    let mut slots_in_db = 0;
    if let Some(rows) = &evidence.appointments {
        // Stable by slot, so each slot's rows keep the database's order.
        let mut live: Vec<(Slot, &str)> = rows
            .iter()
            .filter(|r| r.status == "booked")
            .map(|r| (r.slot, r.id.as_str()))
            .collect();
        live.sort_by_key(|l| l.0);
        for group in live.chunk_by(|a, b| a.0 == b.0).filter(|g| g.len() > 1) {
            slots_in_db += 1;
            rows_proof.extend(
                group
                    .iter()
                    .map(|(slot, id)| format!("appointment {id} ({slot})")),
            );
        }
    }

    let (verdict, detail) = if !ops_proof.is_empty() || !rows_proof.is_empty() {
        let detail = format!(
            "{slots_in_history} slot(s) acknowledged to more than one client; {slots_in_db} slot(s) with more than one live row in the database"
        );
        (
            Verdict::Invalid {
                ops: ops_proof,
                rows: rows_proof,
            },
            detail,
        )
    } else if evidence.appointments.is_none() {
        let reason =
            "the history shows no double booking, but the appointment rows were not collected"
                .to_string();
        Verdict::unknown(reason)
    } else if acked.is_empty() {
        let reason = format!(
            "no booking was acknowledged ({} attempted, {unknown} unknown): nothing exercised the invariant",
            books.len()
        );
        Verdict::unknown(reason)
    } else {
        let rows = evidence.appointments.as_ref().map_or(0, Vec::len);
        let detail = format!(
            "{} bookings acknowledged, {unknown} unknown, {rows} rows: every slot has at most one live appointment",
            acked.len()
        );
        (Verdict::Valid, detail)
    };
    CheckResult::new(NAME, (verdict, detail))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::*;

    #[test]
    fn a_slot_cancelled_then_booked_again_is_no_double_booking() {
        // Booking 1 (acknowledged at 101) cancelled at 200 (acknowledged); booking 300 after.
        let mut records = vec![book(1, SLOT), booked(1, "a")];
        records.extend(cancel(200, 1, "a", true));
        records.extend([book(300, SLOT), booked(300, "b")]);
        let mut gone = row("a");
        gone.status = "cancelled".into();
        let ev = Evidence {
            appointments: Some(vec![gone, row("b")]),
            ..Evidence::default()
        };
        let r = check_no_double_booking(&history(records.clone()), &ev);
        assert_eq!(r.verdict, Verdict::Valid, "{}", r.detail);
        // Acknowledged again (at 150) before the cancellation was even sent: both were live
        // at once.
        let mut early = vec![
            book(1, SLOT),
            booked(1, "a"),
            book(50, SLOT),
            booked(50, "b"),
        ];
        early.extend(cancel(200, 1, "a", true));
        match check_no_double_booking(&history(early), &ev).verdict {
            Verdict::Invalid { ops, .. } => assert_eq!(ops, vec![1, 50]),
            v => panic!("expected invalid, got {v:?}"),
        }
    }

    use chaos_model::AppointmentRow;

    fn rows(v: &[(&str, Slot, &str)]) -> Evidence {
        Evidence {
            appointments: Some(
                v.iter()
                    .map(|(id, slot, status)| AppointmentRow {
                        id: id.to_string(),
                        patient: 1,
                        slot: *slot,
                        status: status.to_string(),
                        version: None,
                    })
                    .collect(),
            ),
            ..Evidence::default()
        }
    }

    const A: Slot = Slot {
        provider: 1,
        start: 3600,
    };
    const B: Slot = Slot {
        provider: 2,
        start: 3600,
    };

    #[test]
    fn two_acknowledged_bookings_of_one_slot_are_invalid_with_both_ops() {
        let h = history(vec![
            book(1, A),
            book(2, A),
            book(3, B),
            booked(1, "x"),
            booked(2, "y"),
            booked(3, "z"),
        ]);
        let r = check_no_double_booking(&h, &rows(&[("x", A, "booked"), ("z", B, "booked")]));
        assert_eq!(
            r.verdict,
            Verdict::Invalid {
                ops: vec![1, 2],
                rows: vec![]
            },
            "{}",
            r.detail
        );
    }

    #[test]
    fn info_bookings_never_convict() {
        let h = history(vec![book(1, A), book(2, A), booked(1, "x"), timed_out(2)]);
        let r = check_no_double_booking(&h, &rows(&[("x", A, "booked")]));
        assert_eq!(r.verdict, Verdict::Valid, "{}", r.detail);
    }

    #[test]
    fn a_retried_ack_of_the_same_appointment_is_not_a_double_booking() {
        let h = history(vec![book(1, A), book(2, A), booked(1, "x"), booked(2, "x")]);
        let r = check_no_double_booking(&h, &rows(&[("x", A, "booked")]));
        assert_eq!(r.verdict, Verdict::Valid);
    }

    #[test]
    fn duplicate_live_rows_are_invalid_even_when_the_history_is_clean() {
        // The second insert's response was lost (info), but the row is there.
        let h = history(vec![book(1, A), book(2, A), booked(1, "x"), timed_out(2)]);
        let r = check_no_double_booking(&h, &rows(&[("x", A, "booked"), ("y", A, "booked")]));
        match r.verdict {
            Verdict::Invalid { ops, rows } => {
                assert!(ops.is_empty());
                assert_eq!(rows.len(), 2);
                assert!(rows[0].contains("appointment x"));
            }
            v => panic!("expected invalid, got {v:?}"),
        }
    }

    #[test]
    fn cancelled_rows_do_not_count() {
        let h = history(vec![book(1, A), booked(1, "y")]);
        let r = check_no_double_booking(&h, &rows(&[("x", A, "cancelled"), ("y", A, "booked")]));
        assert_eq!(r.verdict, Verdict::Valid);
    }

    #[test]
    fn without_rows_or_acknowledgements_the_verdict_is_unknown() {
        let h = history(vec![book(1, A), booked(1, "x")]);
        let r = check_no_double_booking(&h, &Evidence::default());
        assert!(matches!(r.verdict, Verdict::Unknown { .. }), "{r:?}");

        let h = history(vec![book(1, A), failed(1, 409)]);
        let r = check_no_double_booking(&h, &rows(&[]));
        assert!(matches!(r.verdict, Verdict::Unknown { .. }), "{r:?}");
    }
}
