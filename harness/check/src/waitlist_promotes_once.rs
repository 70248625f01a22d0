//! Waitlist promotes once: a freed slot goes to one patient of its waitlist, never two.
//! Judged from the history (cancellations and reschedules, which free a slot and name the
//! appointment their promotion booked; waitlist joins) and from the rows (`waitlist`,
//! `appointments`). Invalid when a slot ends with two live appointments one of which a
//! promotion made, when more waitlist rows of a slot were promoted than the slot was freed
//! (each appointment cancelled or moved away from it frees it once, whether the answer was
//! `ok` or `info`), when one freeing is answered with two different promotions, or when a
//! waitlist row says `booked` with no such appointment row.

use std::collections::{BTreeMap, BTreeSet};

use chaos_model::{CheckResult, Evidence, History, OpKind, Outcome, Slot, Verdict};

use crate::fasthash::FastMap;
use crate::proof::invalid;
use crate::view::View;

pub const NAME: &str = "waitlist_promotes_once";

pub fn check_waitlist_promotes_once(history: &History, evidence: &Evidence) -> CheckResult {
    check(&View::new(history, evidence))
}

/// One freeing of a slot: the appointment that left it, and for a reschedule the planned
/// op (an appointment moved away, back and away again frees the slot twice).
type Freeing<'a> = (&'a str, Option<u64>);

pub(crate) fn check(v: &View<'_>) -> CheckResult {
    let unknown = |reason: &str| CheckResult::new(NAME, Verdict::unknown(reason));
    let Some(waitlist) = &v.evidence.waitlist else {
        return unknown("the waitlist rows were not collected");
    };
    let Some(rows) = &v.evidence.appointments else {
        return unknown("the appointment rows were not collected");
    };
    // Slot -> every freeing that may have happened, with the ops behind it and the
    // promotions their answers named.
    #[derive(Default)]
    struct Freed<'a> {
        ops: Vec<u64>,
        promoted: BTreeSet<&'a str>,
    }
    let mut freed: BTreeMap<Slot, BTreeMap<Freeing<'_>, Freed<'_>>> = BTreeMap::new();
    // Slot -> when waitlist joins of it were invoked (ok or info: either may have joined).
    let mut joins: FastMap<Slot, u64> = FastMap::default();
    for o in &v.ops {
        if o.f == OpKind::Waitlist
            && o.outcome != Outcome::Fail
            && let Some(slot) = o.slot
        {
            let t = joins.entry(slot).or_insert(u64::MAX);
            *t = (*t).min(o.invoke_us);
        }
    }
    let mut promoted_ids: FastMap<&str, u64> = FastMap::default();
    let mut exercised = 0usize;
    for o in &v.ops {
        if !matches!(o.f, OpKind::Cancel | OpKind::Reschedule) || o.outcome == Outcome::Fail {
            continue;
        }
        let Some(slot) = o.slot else { continue };
        let who = o.target.or(o.appointment).unwrap_or("");
        let key = match o.f {
            OpKind::Reschedule => (who, Some(o.plan_index())),
            _ if who.is_empty() => ("", Some(o.id)),
            _ => (who, None),
        };
        let f = freed.entry(slot).or_default().entry(key).or_default();
        f.ops.push(o.id);
        if let Some(p) = o.promoted {
            f.promoted.insert(p);
            promoted_ids.insert(p, o.id);
        }
        let waited_before = joins
            .get(&slot)
            .is_some_and(|&t| t < o.complete_us.unwrap_or(u64::MAX));
        if o.outcome == Outcome::Ok && (o.promoted.is_some() || waited_before) {
            exercised += 1;
        }
    }
    let booked_rows: Vec<_> = waitlist.iter().filter(|w| w.status == "booked").collect();
    for w in &booked_rows {
        if let Some(a) = w.appointment.as_deref() {
            promoted_ids.entry(a).or_insert(0);
        }
        if freed.contains_key(&w.slot) {
            exercised += 1;
        }
    }
    let appointments: FastMap<&str, &chaos_model::AppointmentRow> =
        rows.iter().map(|r| (r.id.as_str(), r)).collect();
    let mut proof = Vec::new();
    let mut ops = Vec::new();
    // Two live appointments in one slot, a promotion made one of them.
    let mut live: Vec<(Slot, &str)> = rows
        .iter()
        .filter(|r| r.status == "booked")
        .map(|r| (r.slot, r.id.as_str()))
        .collect();
    live.sort_unstable();
    for group in live.chunk_by(|a, b| a.0 == b.0).filter(|g| g.len() > 1) {
        let by_promotion: Vec<&str> = group
            .iter()
            .map(|(_, id)| *id)
            .filter(|id| promoted_ids.contains_key(id))
            .collect();
        if by_promotion.is_empty() {
            continue;
        }
        let ids: Vec<&str> = group.iter().map(|(_, id)| *id).collect();
        proof.push(format!(
            "{}: {} live appointments ({}), {} booked by a promotion",
            group[0].0,
            ids.len(),
            ids.join(", "),
            by_promotion.join(", ")
        ));
        ops.extend(
            by_promotion
                .iter()
                .filter_map(|id| promoted_ids.get(id).copied())
                .filter(|&op| op > 0),
        );
    }
    // More waitlist rows promoted than the slot was freed.
    let mut promoted_per_slot: BTreeMap<Slot, Vec<i64>> = BTreeMap::new();
    for w in &booked_rows {
        promoted_per_slot.entry(w.slot).or_default().push(w.id);
    }
    for (slot, ids) in &promoted_per_slot {
        let freeings = freed.get(slot).map_or(0, BTreeMap::len);
        if ids.len() > freeings {
            let ids: Vec<String> = ids.iter().map(i64::to_string).collect();
            proof.push(format!(
                "{slot}: {} waitlist rows promoted (rows {}) for {freeings} freeing(s)",
                ids.len(),
                ids.join(", ")
            ));
            if let Some(f) = freed.get(slot) {
                ops.extend(f.values().flat_map(|f| f.ops.iter().copied()));
            }
        }
    }
    // One freeing answered with two promotions.
    for (slot, freeings) in &freed {
        for ((who, _), f) in freeings.iter().filter(|(_, f)| f.promoted.len() > 1) {
            let p: Vec<&str> = f.promoted.iter().copied().collect();
            proof.push(format!(
                "{slot}: freeing appointment {who} was answered with {} promotions ({})",
                p.len(),
                p.join(", ")
            ));
            ops.extend(f.ops.iter().copied());
        }
    }
    // A waitlist row booked into no appointment.
    for w in &booked_rows {
        match w.appointment.as_deref() {
            Some(a) if appointments.contains_key(a) => {}
            Some(a) => proof.push(format!(
                "waitlist row {} ({}) is booked into appointment {a}, which has no row",
                w.id, w.slot
            )),
            None => proof.push(format!(
                "waitlist row {} ({}) is booked into no appointment",
                w.id, w.slot
            )),
        }
    }
    let detail = format!(
        "{} slot(s) freed, {} waitlist row(s) promoted of {}",
        freed.len(),
        booked_rows.len(),
        waitlist.len()
    );
    if !proof.is_empty() {
        return invalid(NAME, ops, proof, |n| {
            format!("{detail}: {n} promotion(s) went to more than one patient or nowhere")
        });
    }
    if exercised == 0 {
        return unknown(
            "no cancellation or reschedule freed a slot that had a waiting entry: nothing exercised the invariant",
        );
    }
    CheckResult::new(
        NAME,
        (
            Verdict::Valid,
            format!("{detail}: each freed slot went to at most one waiting patient"),
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::*;
    use chaos_model::{AppointmentRow, Record, WaitlistRow};

    /// Patient 2 joins SLOT's waitlist (op 2), patient 1 cancels a0 (op 3, promoting `p`).
    fn world(promoted: Option<&str>, outcome: Outcome) -> Vec<Record> {
        vec![
            book(1, SLOT),
            booked(1, "a0"),
            edit(invoked(2, OpKind::Waitlist, 200), |i| i.slot = Some(SLOT)),
            ended(2, Outcome::Ok, 250, Some(201)),
            edit(invoked(3, OpKind::Cancel, 300), |i| {
                i.slot = Some(SLOT);
                i.target = Some("a0".into());
            }),
            amend(ended(3, outcome, 400, Some(200)), |c| {
                c.appointment = Some("a0".into());
                c.promoted = promoted.map(str::to_string);
            }),
        ]
    }

    fn cancelled(id: &str) -> AppointmentRow {
        let mut r = row(id);
        r.status = "cancelled".into();
        r
    }

    fn evidence(rows: Vec<AppointmentRow>, waitlist: Vec<WaitlistRow>) -> Evidence {
        Evidence {
            appointments: Some(rows),
            waitlist: Some(waitlist),
            ..Evidence::default()
        }
    }

    fn run(records: Vec<Record>, ev: &Evidence) -> CheckResult {
        check_waitlist_promotes_once(&history(records), ev)
    }

    #[test]
    fn one_promotion_per_freeing_is_valid() {
        let ev = evidence(
            vec![cancelled("a0"), row("p1")],
            vec![waiting(1, SLOT, Some("p1")), waiting(2, SLOT, None)],
        );
        let r = run(world(Some("p1"), Outcome::Ok), &ev);
        assert_eq!(r.verdict, Verdict::Valid, "{}", r.detail);
    }

    #[test]
    fn two_live_appointments_one_by_promotion_is_invalid() {
        // The cancellation's promotion raced a booking: both hold the slot.
        let mut h = world(Some("p1"), Outcome::Ok);
        h.extend([book(500, SLOT), booked(500, "b1")]);
        let ev = evidence(
            vec![cancelled("a0"), row("p1"), row("b1")],
            vec![waiting(1, SLOT, Some("p1"))],
        );
        match run(h, &ev).verdict {
            Verdict::Invalid { ops, rows } => {
                assert_eq!(ops, vec![3]);
                assert!(rows[0].contains("2 live appointments (b1, p1)"), "{rows:?}");
            }
            v => panic!("expected invalid, got {v:?}"),
        }
    }

    #[test]
    fn two_rows_promoted_for_one_freeing_is_invalid_even_from_a_retry() {
        // The cancellation was retried after an unknown answer: still one freeing.
        let mut h = world(None, Outcome::Info);
        h.extend([
            edit(invoked(4, OpKind::Cancel, 600), |i| {
                i.slot = Some(SLOT);
                i.target = Some("a0".into());
            }),
            amend(ended(4, Outcome::Ok, 700, Some(200)), |c| {
                c.promoted = Some("p2".into())
            }),
        ]);
        let ev = evidence(
            vec![cancelled("a0"), row("p1"), cancelled("p2")],
            vec![waiting(1, SLOT, Some("p1")), waiting(2, SLOT, Some("p2"))],
        );
        match run(h, &ev).verdict {
            Verdict::Invalid { ops, rows } => {
                assert_eq!(ops, vec![3, 4]);
                assert!(
                    rows.iter()
                        .any(|r| r.contains("2 waitlist rows promoted (rows 1, 2) for 1 freeing")),
                    "{rows:?}"
                );
            }
            v => panic!("expected invalid, got {v:?}"),
        }
    }

    #[test]
    fn a_row_booked_into_nothing_is_invalid() {
        let ev = evidence(vec![cancelled("a0")], vec![waiting(1, SLOT, Some("ghost"))]);
        match run(world(Some("ghost"), Outcome::Ok), &ev).verdict {
            Verdict::Invalid { rows, .. } => {
                assert!(rows[0].contains("ghost, which has no row"), "{rows:?}")
            }
            v => panic!("expected invalid, got {v:?}"),
        }
    }

    #[test]
    fn nothing_freed_for_a_waiting_patient_or_no_rows_is_unknown() {
        // The cancellation's answer was lost: it promises no freeing.
        let ev = evidence(vec![cancelled("a0")], vec![waiting(1, SLOT, None)]);
        let r = run(world(None, Outcome::Info), &ev);
        assert!(matches!(r.verdict, Verdict::Unknown { .. }), "{r:?}");
        // Nobody waited when the slot was freed.
        let mut h = world(None, Outcome::Ok);
        h.drain(2..4);
        let r = run(h, &evidence(vec![cancelled("a0")], vec![]));
        assert!(matches!(r.verdict, Verdict::Unknown { .. }), "{r:?}");
        let mut ev = evidence(vec![], vec![]);
        ev.waitlist = None;
        match run(world(Some("p1"), Outcome::Ok), &ev).verdict {
            Verdict::Unknown { reason } => assert!(reason.contains("waitlist rows"), "{reason}"),
            v => panic!("expected unknown, got {v:?}"),
        }
    }
}
