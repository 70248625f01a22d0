//! No booking outside the provider's schedule (002's availability model, 002:C-5): every live
//! appointment row, and every booking the system acknowledged, starts one of the slots of its
//! provider's weekly template, as the target holds it at the end of the run. A provider whose
//! template a clinic changed during the run is judged only from the moment the change was
//! acknowledged: a booking sent after that must fit the new template (a stale cache that
//! still accepts the removed hours is caught), one sent before it may fit the old one and is
//! not judged. Judged from the database's rows and templates, and from the history.

use chaos_model::{CheckResult, Evidence, History, OpKind, Outcome, ScheduleRow, Slot, Verdict};

use crate::fasthash::FastMap;
use crate::view::View;

pub const NAME: &str = "within_schedule";
const MAX_PROOF_ROWS: usize = 20;

pub fn check_within_schedule(history: &History, evidence: &Evidence) -> CheckResult {
    check(&View::new(history, evidence))
}

/// Each provider's templates (one per weekday at most).
type Templates<'a> = FastMap<u32, Vec<&'a ScheduleRow>>;

fn in_schedule(templates: &Templates<'_>, slot: Slot) -> bool {
    templates
        .get(&slot.provider)
        .is_some_and(|ts| ts.iter().any(|t| t.has_slot(slot.start)))
}

pub(crate) fn check(v: &View<'_>) -> CheckResult {
    let unknown = |reason: &str| CheckResult::new(NAME, Verdict::unknown(reason));
    let (rows, schedules) = match (&v.evidence.appointments, &v.evidence.schedules) {
        (Some(r), Some(s)) => (r, s),
        (None, None) => {
            return unknown("the appointment rows and schedule templates were not collected");
        }
        (None, Some(_)) => return unknown("the appointment rows were not collected"),
        (Some(_), None) => return unknown("the schedule templates were not collected"),
    };
    let mut templates: Templates<'_> = FastMap::default();
    for t in schedules {
        templates.entry(t.provider).or_default().push(t);
    }
    // Provider -> from when its final template is known to hold (None: never, an
    // unanswered change may have applied at any time), for providers whose template changed.
    let mut changed: FastMap<u32, Option<u64>> = FastMap::default();
    for o in v.ops.iter().filter(|o| o.f == OpKind::ScheduleChange) {
        let Some(provider) = o.slot.map(|s| s.provider) else {
            continue;
        };
        let e = changed.entry(provider).or_insert(None);
        match (o.outcome, o.complete_us) {
            (Outcome::Ok, Some(done)) => *e = Some(e.map_or(done, |t| t.max(done))),
            (Outcome::Info, _) => {}
            _ => continue,
        }
    }
    let booked_by = v.booking_ops();
    let invoked: FastMap<u64, u64> = v
        .ops
        .iter()
        .filter(|o| o.f == OpKind::Book)
        .map(|o| (o.id, o.invoke_us))
        .collect();
    // Whether a booking of `provider` sent at `sent_us` is held to the final template.
    let judged = |provider: u32, sent_us: Option<u64>| match changed.get(&provider) {
        None => true,
        Some(None) => false,
        Some(Some(from)) => sent_us.is_some_and(|t| t > *from),
    };
    let acked: Vec<_> = v
        .ops
        .iter()
        .filter(|o| o.f == OpKind::Book && o.outcome == Outcome::Ok)
        .filter(|o| {
            o.slot
                .is_some_and(|s| judged(s.provider, Some(o.invoke_us)))
        })
        .collect();
    let live: Vec<_> = rows
        .iter()
        .filter(|r| r.status == "booked")
        .filter(|r| {
            let sent = booked_by
                .get(r.id.as_str())
                .and_then(|op| invoked.get(op).copied());
            judged(r.slot.provider, sent)
        })
        .collect();
    if acked.is_empty() && live.is_empty() {
        return unknown(if changed.is_empty() {
            "no booking exists: nothing exercised the invariant"
        } else {
            "no booking was sent after its provider's schedule change was acknowledged"
        });
    }
    let mut ops: Vec<u64> = acked
        .iter()
        .filter(|o| o.slot.is_some_and(|s| !in_schedule(&templates, s)))
        .map(|o| o.id)
        .collect();
    let acked_outside = ops.len();
    let outside: Vec<_> = live
        .iter()
        .filter(|r| !in_schedule(&templates, r.slot))
        .collect();
    ops.extend(
        outside
            .iter()
            .filter_map(|r| booked_by.get(r.id.as_str()).copied()),
    );
    ops.sort_unstable();
    ops.dedup();
    let detail = format!(
        "{} acknowledged bookings and {} live rows against {} templates{}",
        acked.len(),
        live.len(),
        schedules.len(),
        if changed.is_empty() {
            String::new()
        } else {
            format!(
                " ({} provider(s) changed their template: judged from the change's acknowledgement)",
                changed.len()
            )
        }
    );
    if ops.is_empty() && outside.is_empty() {
        return CheckResult::new(NAME, (Verdict::Valid, detail + ": every one in a slot"));
    }
    let mut proof: Vec<String> = outside
        .iter()
        .take(MAX_PROOF_ROWS)
        .map(|r| {
            format!(
                "appointment {} ({}) is in no slot of the template",
                r.id, r.slot
            )
        })
        .collect();
    if outside.len() > MAX_PROOF_ROWS {
        proof.push(format!("… {} more", outside.len() - MAX_PROOF_ROWS));
    }
    CheckResult::new(
        NAME,
        (
            Verdict::Invalid { ops, rows: proof },
            format!(
                "{detail}: {acked_outside} acknowledged bookings and {} live rows outside the schedule",
                outside.len()
            ),
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::*;
    use chaos_model::AppointmentRow;

    /// Monday 2030-01-07 00:00 UTC.
    const MONDAY: i64 = 1_893_974_400;

    fn template() -> ScheduleRow {
        ScheduleRow {
            provider: 1,
            weekday: 0,
            start_minute: 9 * 60,
            end_minute: 17 * 60,
            slot_minutes: 30,
        }
    }

    fn at(hour: i64, minute: i64) -> Slot {
        Slot {
            provider: 1,
            start: MONDAY + hour * 3600 + minute * 60,
        }
    }

    fn evidence(slots: &[(&str, Slot)]) -> Evidence {
        Evidence {
            appointments: Some(
                slots
                    .iter()
                    .map(|(id, slot)| AppointmentRow {
                        id: (*id).into(),
                        patient: 1,
                        slot: *slot,
                        status: "booked".into(),
                        version: None,
                    })
                    .collect(),
            ),
            schedules: Some(vec![template()]),
            ..Evidence::default()
        }
    }

    #[test]
    fn template_slots_are_found_exactly() {
        let t = template();
        assert!(t.has_slot(at(9, 0).start));
        assert!(t.has_slot(at(16, 30).start), "the last slot ends at 17:00");
        assert!(!t.has_slot(at(17, 0).start), "ends after closing");
        assert!(!t.has_slot(at(8, 30).start));
        assert!(!t.has_slot(at(9, 15).start), "not on the 30-minute grid");
        assert!(
            !t.has_slot(at(9, 0).start + 86_400),
            "Tuesday has no template here"
        );
        assert!(!t.has_slot(at(9, 0).start + 1));
    }

    /// A schedule change of provider 1 (op `op`, invoked at time `op`), answered `ok`.
    fn change(op: u64, ok: bool) -> [chaos_model::Record; 2] {
        let sent = chaos_model::Record::Invoke(chaos_model::Invoke {
            slot: Some(Slot {
                provider: 1,
                start: 0,
            }),
            hours: Some([600, 960]),
            ..chaos_model::Invoke::new(op, 0, OpKind::ScheduleChange, op, op)
        });
        [
            sent,
            if ok {
                done_at(op, op + 100)
            } else {
                timed_out(op)
            },
        ]
    }

    #[test]
    fn after_an_acknowledged_change_the_new_template_holds_and_before_it_nothing_is_judged() {
        // The template at the end is the narrowed one: 10:00-16:00.
        let narrow = ScheduleRow {
            start_minute: 600,
            end_minute: 960,
            ..template()
        };
        let ev = |slots: &[(&str, Slot)]| Evidence {
            schedules: Some(vec![narrow]),
            ..evidence(slots)
        };
        let [c, cdone] = change(100, true);
        // Op 1 booked 09:00 before the change: not judged; op 300 booked 09:30 after it.
        let h = history(vec![
            book(1, at(9, 0)),
            booked(1, "a1"),
            c.clone(),
            cdone.clone(),
            book(300, at(9, 30)),
            booked(300, "a2"),
        ]);
        match check_within_schedule(&h, &ev(&[("a1", at(9, 0)), ("a2", at(9, 30))])).verdict {
            Verdict::Invalid { ops, rows } => {
                assert_eq!(ops, vec![300]);
                assert_eq!(rows.len(), 1, "{rows:?}");
            }
            v => panic!("expected invalid, got {v:?}"),
        }
        let h = history(vec![book(1, at(9, 0)), booked(1, "a1"), c, cdone]);
        let r = check_within_schedule(&h, &ev(&[("a1", at(9, 0))]));
        assert!(matches!(r.verdict, Verdict::Unknown { .. }), "{}", r.detail);
        // An unanswered change may have applied at any time: nothing of provider 1 judged.
        let [c, cinfo] = change(100, false);
        let h = history(vec![c, cinfo, book(300, at(9, 30)), booked(300, "a2")]);
        let r = check_within_schedule(&h, &ev(&[("a2", at(9, 30))]));
        assert!(matches!(r.verdict, Verdict::Unknown { .. }), "{}", r.detail);
    }

    #[test]
    fn bookings_in_slots_are_valid() {
        let h = history(vec![book(1, at(9, 0)), booked(1, "a1")]);
        let r = check_within_schedule(&h, &evidence(&[("a1", at(9, 0))]));
        assert_eq!(r.verdict, Verdict::Valid, "{}", r.detail);
    }

    #[test]
    fn a_row_or_an_acknowledged_booking_outside_is_invalid_with_its_op() {
        let h = history(vec![
            book(1, at(9, 0)),
            booked(1, "a1"),
            book(2, at(18, 0)),
            booked(2, "a2"),
            book(3, at(7, 0)),
            timed_out(3),
        ]);
        let ev = evidence(&[("a1", at(9, 0)), ("a2", at(18, 0)), ("a3", at(7, 0))]);
        match check_within_schedule(&h, &ev).verdict {
            Verdict::Invalid { ops, rows } => {
                assert_eq!(ops, vec![2], "op 3 timed out: its row is proof, it is not");
                assert_eq!(rows.len(), 2, "{rows:?}");
                assert!(rows[1].contains("a3"), "{rows:?}");
            }
            v => panic!("expected invalid, got {v:?}"),
        }
    }

    #[test]
    fn without_templates_or_bookings_it_is_unknown() {
        let mut ev = evidence(&[]);
        assert!(matches!(
            check_within_schedule(&history(vec![]), &ev).verdict,
            Verdict::Unknown { .. }
        ));
        ev.schedules = None;
        let h = history(vec![book(1, at(9, 0)), booked(1, "a1")]);
        assert_eq!(
            check_within_schedule(&h, &ev).verdict,
            Verdict::Unknown {
                reason: "the schedule templates were not collected".into()
            }
        );
    }
}
