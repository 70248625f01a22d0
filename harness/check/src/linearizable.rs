//! Linearizable: the history of each slot (bookings, cancellations, moves, waitlist joins
//! and promotions, availability reads) has a linearization against a sequential model of one
//! slot, as Knossos and Porcupine check a register. It catches an answer no order of the ops
//! explains: a 409 for a slot that was certainly free, a read listing a slot free that an
//! acknowledged booking held, an acknowledged booking that the database lost.
//!
//! The history is partitioned by slot and each slot searched alone, which keeps it fast
//! (most slots have a handful of ops). A move touches two slots and appears in both; a read
//! of a day reads every slot of it. Judging each slot's projection alone is sound for
//! finding violations, as Knossos's independent keys are: a linearization of the whole
//! history projects to one of each slot, so a slot with none proves the whole has none. It
//! can miss a violation that only the two halves of a move show together.
//!
//! `info` ops (and ops that never completed) may take effect any time after they were sent,
//! or never. Without database rows the final states are not checked.
//!
//! The model (`model.rs`) follows MediConnect: a booking or a move in needs the slot free, a
//! 409 `slot_taken` needs it held, a cancellation or a move out needs its appointment to
//! hold it and leaves it free or, when its answer names a promotion, held by the promoted
//! appointment (which pops a waiting patient). A release whose answer names no promotion
//! does not prove the waitlist empty (the hardened promotion skips locked entries). A move's
//! answer does not say whether the freed slot promoted, so it may have. An appointment that
//! may have been moved may be in any of the slots its moves named: a release of it releases
//! it only where it is. Bookings with one `Idempotency-Key` are judged as one when their
//! answers agree (`partition.rs`); reads are summed up per slot (`reads.rs`).

mod explain;
mod model;
mod partition;
mod reads;
mod search;

use chaos_model::{AppointmentRow, CheckResult, Evidence, History, Slot, Verdict};

use self::explain::{FINAL_OP, Failing, Origin, explain};
use self::model::{Act, FIRST_ID, Final, Ids, Promotion, State, UNKNOWN, WHOEVER, Who};
use self::partition::{NO_GROUP, Partition, RawAct, RawPromotion};
use self::reads::Reads;
use self::search::{Found, Item, Search};
use crate::fasthash::FastMap;
use crate::view::View;

pub const NAME: &str = "linearizable";

/// States one slot's search may visit before its verdict is unknown.
pub const CAP: usize = 200_000;

/// More appointment ids than a slot's state can name: such a slot is not searched.
const MAX_IDS: usize = 60_000;

const FINAL_CALL: u64 = u64::MAX - 2;

pub fn check_linearizable(history: &History, evidence: &Evidence) -> CheckResult {
    check(&View::new(history, evidence))
}

pub(crate) fn check(v: &View<'_>) -> CheckResult {
    CheckResult::new(NAME, judge(v, CAP))
}

/// Buffers reused from slot to slot.
#[derive(Default)]
struct Work<'a> {
    items: Vec<Item>,
    origins: Vec<Origin>,
    names: Vec<&'a str>,
    created: Vec<bool>,
    lookup: FastMap<&'a str, Who>,
    foreign: Vec<bool>,
    reads: Reads,
    search: Search,
}

impl<'a> Work<'a> {
    fn clear(&mut self) {
        self.items.clear();
        self.origins.clear();
        self.names.clear();
        self.created.clear();
        if !self.lookup.is_empty() {
            // Clearing costs its capacity: only a slot with many ids grew it.
            self.lookup = FastMap::default();
        }
    }

    fn who(&mut self, id: &'a str, creates: bool) -> Who {
        let at = if self.names.len() < 16 {
            self.names.iter().position(|n| *n == id)
        } else {
            if self.lookup.is_empty() {
                for (i, n) in self.names.iter().enumerate() {
                    self.lookup.insert(n, i as Who);
                }
            }
            self.lookup.get(id).map(|&i| usize::from(i))
        };
        let at = at.unwrap_or_else(|| {
            self.names.push(id);
            self.created.push(false);
            if !self.lookup.is_empty() {
                self.lookup.insert(id, (self.names.len() - 1) as Who);
            }
            self.names.len() - 1
        });
        self.created[at] |= creates;
        FIRST_ID.saturating_add(at.min(usize::from(Who::MAX - FIRST_ID - 1)) as Who)
    }

    fn act(&mut self, raw: RawAct<'a>) -> Act {
        let promotion = |w: &mut Self, p: RawPromotion<'a>| match p {
            RawPromotion::None => Promotion::None,
            RawPromotion::Named(id) => Promotion::Named(w.who(id, true)),
            RawPromotion::Maybe => Promotion::Maybe,
        };
        match raw {
            RawAct::Take(Some(id)) => Act::Take(self.who(id, true)),
            RawAct::Take(None) => Act::Take(UNKNOWN),
            RawAct::Arrive(id) => Act::Arrive(self.who(id, true)),
            RawAct::Taken => Act::Taken,
            RawAct::Release { target, promoted } => {
                let target = target.map_or(WHOEVER, |t| self.who(t, false));
                let promoted = promotion(self, promoted);
                Act::Release { target, promoted }
            }
            RawAct::ReleaseIfHeld { target, promoted } => {
                let target = self.who(target, false);
                let promoted = promotion(self, promoted);
                Act::ReleaseIfHeld { target, promoted }
            }
            RawAct::NotHeldBy(id) => Act::NotHeldBy(self.who(id, false)),
            RawAct::HeldBy(id) => Act::HeldBy(self.who(id, false)),
            RawAct::Join => Act::Join,
            RawAct::JoinRefused => Act::JoinRefused,
        }
    }
}

/// Live rows by slot: how many, and the first one's id.
fn live_rows<'a>(p: &Partition<'_>, rows: &'a [AppointmentRow]) -> Vec<(u32, Option<&'a str>)> {
    let mut live = vec![(0u32, None); p.len()];
    for r in rows.iter().filter(|r| r.status == "booked") {
        if let Some(&i) = p.index.get(&r.slot) {
            let l = &mut live[i as usize];
            l.0 += 1;
            l.1 = l.1.or(Some(r.id.as_str()));
        }
    }
    live
}

/// Failing slots explained in full (the report shows one and names three more).
const EXPLAINED: usize = 4;

struct Invalid {
    ops: Vec<u64>,
    rows: Vec<String>,
    sentence: String,
}

fn judge(v: &View<'_>, cap: usize) -> (Verdict, String) {
    let ops = &v.ops;
    let p = Partition::new(ops);
    let rows = v.evidence.appointments.as_deref();
    let live = rows.map(|r| live_rows(&p, r));
    let mut w = Work::default();
    let mut invalid: Vec<(Slot, Invalid)> = Vec::new();
    let mut capped: Vec<(Slot, usize)> = Vec::new();
    let mut judged_slots = 0usize;
    let mut judged = vec![false; ops.len()];
    let mut grouped = 0usize;
    for d in 0..p.days.len() - 1 {
        let (lo, hi) = (p.days[d].1 as usize, p.days[d + 1].1 as usize);
        let provider = p.days[d].0.0;
        let has_reads = !p.reads.of(d).is_empty();
        // A read leaves out a slot that is taken or not in the template: it says "taken"
        // only of slots certainly in a template no schedule change replaced.
        let template_kept = p.changed.binary_search(&provider).is_err();
        for i in lo..hi {
            w.clear();
            let subs = p.subs_of(i);
            if subs.is_empty() {
                // Only shown to be a slot (by a refused move): nothing to judge of it.
                continue;
            }
            for sub in subs {
                let act = w.act(sub.act);
                w.items.push(Item {
                    act,
                    call: sub.call,
                    ret: sub.ret,
                });
                w.origins.push((sub.op, sub.group));
            }
            if has_reads {
                let judge_taken = template_kept && p.confirmed[i];
                let Work {
                    reads,
                    items,
                    origins,
                    ..
                } = &mut w;
                reads.slot(&p.reads, d, i - lo, subs, judge_taken, items, origins);
            }
            let mut required = 0;
            for (it, &(op, group)) in w.items.iter().zip(&w.origins) {
                if it.required() {
                    required += 1;
                    judged[op as usize] = true;
                    if let Some(g) = p.groups.get(group as usize) {
                        grouped += g.len().saturating_sub(1);
                    }
                }
            }
            if required > 0 {
                judged_slots += 1;
            }
            let mut live_here = 0;
            if let Some(live) = &live {
                let (n, first) = live[i];
                live_here = n as usize;
                let f = match (n, first) {
                    (0, _) | (_, None) => Final::Free,
                    (1, Some(id)) => Final::Held(w.who(id, false)),
                    _ => Final::Impossible,
                };
                w.items.push(Item {
                    act: Act::Final(f),
                    call: FINAL_CALL,
                    ret: FINAL_CALL + 1,
                });
                w.origins.push((FINAL_OP, NO_GROUP));
            }
            if w.items.is_empty() {
                continue;
            }
            if w.names.len() > MAX_IDS {
                capped.push((p.slots[i], w.items.len()));
                continue;
            }
            w.foreign.clear();
            w.foreign.extend(w.created.iter().map(|c| !c));
            let ids = Ids {
                foreign: std::mem::take(&mut w.foreign),
            };
            match w.search.run(&ids, &w.items, State::START, cap) {
                Found::Linearizable => {}
                Found::Capped => capped.push((p.slots[i], w.items.len())),
                Found::NotLinearizable => {
                    let failing = Failing {
                        slot: p.slots[i],
                        items: &w.items,
                        origins: &w.origins,
                        ids: &ids,
                        names: &w.names,
                        ops,
                        groups: &p.groups,
                        live: live_here,
                    };
                    // The report shows the first failing slot's explanation and names three
                    // more; past those, explaining (up to BUDGET searches each) would cost a
                    // naive history's hundreds of failing slots minutes for nothing shown.
                    let (proof, sentence) = if invalid.len() < EXPLAINED {
                        explain(&failing, &mut w.search, cap)
                    } else {
                        (explain::all_ops(&failing), String::new())
                    };
                    let rows = if sentence.contains("database rows") {
                        rows.into_iter()
                            .flatten()
                            .filter(|r| r.status == "booked" && r.slot == p.slots[i])
                            .map(|r| format!("appointment {} ({})", r.id, r.slot))
                            .collect()
                    } else {
                        Vec::new()
                    };
                    invalid.push((
                        p.slots[i],
                        Invalid {
                            ops: proof,
                            rows,
                            sentence,
                        },
                    ));
                }
            }
            w.foreign = ids.foreign;
        }
    }
    let judged_ops = judged.iter().filter(|&&j| j).count() + grouped;
    verdict(
        invalid,
        capped,
        judged_slots,
        judged_ops,
        rows.is_some(),
        cap,
    )
}

fn verdict(
    invalid: Vec<(Slot, Invalid)>,
    capped: Vec<(Slot, usize)>,
    slots: usize,
    ops: usize,
    rows: bool,
    cap: usize,
) -> (Verdict, String) {
    if let Some((_, first)) = invalid.first() {
        let mut detail = first.sentence.clone();
        if invalid.len() > 1 {
            let more: Vec<String> = invalid[1..]
                .iter()
                .take(3)
                .map(|(s, _)| s.to_string())
                .collect();
            let etc = if invalid.len() > 4 { ", ..." } else { "" };
            detail.push_str(&format!(
                "; and {} more slot(s) whose ops no order explains ({}{etc})",
                invalid.len() - 1,
                more.join(", ")
            ));
        }
        let mut proof_ops = Vec::new();
        let mut proof_rows = Vec::new();
        for (_, i) in invalid {
            proof_ops.extend(i.ops);
            proof_rows.extend(i.rows);
        }
        proof_ops.sort_unstable();
        proof_ops.dedup();
        return (
            Verdict::Invalid {
                ops: proof_ops,
                rows: proof_rows,
            },
            detail,
        );
    }
    if let Some((slot, n)) = capped.first() {
        let more = if capped.len() > 1 {
            format!(", nor that of {} more slot(s)", capped.len() - 1)
        } else {
            String::new()
        };
        let others = slots.saturating_sub(capped.len());
        let rest = if others > 0 {
            format!("; the other {others} slot(s) are linearizable")
        } else {
            String::new()
        };
        return Verdict::unknown(format!(
            "the search of {slot} ({n} ops) visited {cap} states without an answer{more}{rest}"
        ));
    }
    if slots == 0 {
        return Verdict::unknown(
            "nothing to judge: no booking, cancellation, move, waitlist join or availability read of a slot had a definite answer",
        );
    }
    let unchecked = if rows {
        ""
    } else {
        " (the database rows could not be read: final states not checked)"
    };
    (
        Verdict::Valid,
        format!("{slots} slots, {ops} ops, all linearizable{unchecked}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::*;
    use chaos_model::{OpKind, Record};

    const B: Slot = Slot {
        provider: 1,
        start: 5400,
    };

    fn check(records: Vec<Record>, ev: &Evidence) -> CheckResult {
        check_linearizable(&history(records), ev)
    }

    fn invalid(r: &CheckResult) -> &[u64] {
        match &r.verdict {
            Verdict::Invalid { ops, .. } => ops,
            v => panic!("expected invalid, got {v:?}: {}", r.detail),
        }
    }

    fn valid(r: &CheckResult) {
        assert_eq!(r.verdict, Verdict::Valid, "{}", r.detail);
    }

    #[test]
    fn two_acknowledged_bookings_with_no_cancellation_between_are_invalid() {
        let r = check(
            vec![
                book(1, SLOT),
                booked(1, "a"),
                book(200, SLOT),
                booked(200, "b"),
            ],
            &rows_of(&[("a", SLOT, "booked")]),
        );
        assert_eq!(invalid(&r), &[1, 200]);
        assert_eq!(
            r.detail,
            "no order of these 2 ops of provider 1 at 3600 explains op 200's 201 (booked b): the slot was certainly held"
        );
    }

    #[test]
    fn a_conflict_for_a_slot_that_was_certainly_free_is_invalid() {
        // The 409 was answered before the only booking that took the slot was sent.
        let r = check(
            vec![
                book(1, SLOT),
                failed(1, 409),
                book(200, SLOT),
                booked(200, "a"),
            ],
            &rows_of(&[("a", SLOT, "booked")]),
        );
        assert_eq!(invalid(&r), &[1]);
        assert_eq!(
            r.detail,
            "no order of this 1 op of provider 1 at 3600 explains op 1's 409: the slot was certainly free"
        );
        // Every other booking of it failed before it was checked.
        let r = check(
            vec![
                book(1, SLOT),
                failed(1, 503),
                book(200, SLOT),
                failed(200, 409),
            ],
            &Evidence::default(),
        );
        assert_eq!(invalid(&r), &[200]);
        // Sent while the slot was being booked: it may have come second.
        let r = check(
            vec![
                book(1, SLOT),
                book(50, SLOT),
                failed(50, 409),
                booked(1, "a"),
            ],
            &rows_of(&[("a", SLOT, "booked")]),
        );
        valid(&r);
    }

    #[test]
    fn a_read_listing_a_slot_free_after_its_booking_was_acknowledged_is_stale() {
        let records = |free: &[i64]| {
            vec![
                availability(1, SLOT),
                listed(1, &[SLOT.start, B.start]),
                book(200, SLOT),
                booked(200, "a"),
                availability(400, SLOT),
                listed(400, free),
            ]
        };
        let ev = rows_of(&[("a", SLOT, "booked")]);
        let r = check(records(&[SLOT.start, B.start]), &ev);
        assert_eq!(invalid(&r), &[200, 400]);
        assert!(
            r.detail
                .ends_with("explains op 400's read listing it free: the slot was certainly held"),
            "{}",
            r.detail
        );
        // Leaving the held slot out is right; the first read saw it free before the booking.
        valid(&check(records(&[B.start]), &ev));
    }

    #[test]
    fn a_read_leaving_out_a_free_slot_is_invalid_only_when_it_is_certainly_a_slot() {
        let h = vec![
            book(1, SLOT),
            failed(1, 503),
            availability(200, SLOT),
            listed(200, &[]),
            book(400, SLOT),
            booked(400, "a"),
        ];
        // Booked after the read: the slot was free when the read left it out.
        let r = check(h.clone(), &rows_of(&[("a", SLOT, "booked")]));
        assert_eq!(invalid(&r), &[200]);
        // A schedule change of the provider may have taken the slot out of the template.
        let mut changed = h;
        changed.push(Record::Invoke(call(10, OpKind::ScheduleChange, SLOT)));
        valid(&check(changed, &rows_of(&[("a", SLOT, "booked")])));
    }

    #[test]
    fn a_conflict_concurrent_with_an_unanswered_booking_may_be_explained_by_it() {
        let h = vec![book(1, SLOT), book(50, SLOT), timed_out(1), failed(50, 409)];
        // The unanswered booking took effect: its row is there (an id no answer named).
        valid(&check(h.clone(), &rows_of(&[("x", SLOT, "booked")])));
        valid(&check(h.clone(), &Evidence::default()));
        // No row: it did not, and nothing explains the 409.
        let r = check(h, &rows_of(&[]));
        assert_eq!(invalid(&r), &[1, 50]);
    }

    #[test]
    fn an_unanswered_booking_may_or_may_not_have_taken_effect() {
        // It did not: a later booking got the slot.
        let did_not = vec![
            book(1, SLOT),
            timed_out(1),
            book(200, SLOT),
            booked(200, "b"),
        ];
        valid(&check(did_not, &rows_of(&[("b", SLOT, "booked")])));
        // It did: a later booking was refused, and its row (named by a 500) is live.
        let did = vec![
            book(1, SLOT),
            server_error(1, "a"),
            book(200, SLOT),
            failed(200, 409),
        ];
        valid(&check(did.clone(), &rows_of(&[("a", SLOT, "booked")])));
        // Another appointment's row: the 500 named the one it booked.
        let r = check(did, &rows_of(&[("z", SLOT, "booked")]));
        assert!(invalid(&r).contains(&1), "{}", r.detail);
    }

    #[test]
    fn a_slot_cancelled_then_booked_again_is_linearizable() {
        let mut h = vec![book(1, SLOT), booked(1, "a")];
        h.extend(cancel(200, 1, "a", true));
        h.extend([book(400, SLOT), booked(400, "b")]);
        let ev = rows_of(&[("a", SLOT, "cancelled"), ("b", SLOT, "booked")]);
        valid(&check(h.clone(), &ev));
        // An unanswered cancellation may have freed it too.
        let mut info = vec![book(1, SLOT), booked(1, "a")];
        info.extend(cancel(200, 1, "a", false));
        info.extend([book(400, SLOT), booked(400, "b")]);
        valid(&check(info, &ev));
        // A cancellation refused as not booked while it certainly was.
        let r = check(
            vec![
                book(1, SLOT),
                booked(1, "a"),
                cancel_of(200, SLOT, "a"),
                refused(200, 409, "not_booked"),
            ],
            &rows_of(&[("a", SLOT, "booked")]),
        );
        assert_eq!(invalid(&r), &[1, 200]);
    }

    #[test]
    fn a_waitlist_promotion_named_by_a_cancellation_holds_the_slot() {
        let h = |join: bool, promoted: Option<&str>| {
            let mut h = vec![book(1, SLOT), booked(1, "a")];
            if join {
                h.extend([waitlist(200, SLOT), answered(200, 201)]);
            }
            h.extend([
                cancel_of(400, SLOT, "a"),
                cancelled(400, "a", promoted),
                book(600, SLOT),
                failed(600, 409),
                availability(800, SLOT),
                listed(800, &[]),
            ]);
            h
        };
        let ev = rows_of(&[("a", SLOT, "cancelled"), ("p", SLOT, "booked")]);
        valid(&check(h(true, Some("p")), &ev));
        // Promoted while nobody waited.
        let r = check(h(false, Some("p")), &ev);
        assert!(invalid(&r).contains(&400), "{}", r.detail);
        // Not promoted: the slot was free, and the 409 is unexplained.
        let r = check(h(true, None), &rows_of(&[("a", SLOT, "cancelled")]));
        assert!(invalid(&r).contains(&600), "{}", r.detail);
        // A join refused as free while the slot was held.
        let r = check(
            vec![
                book(1, SLOT),
                booked(1, "a"),
                waitlist(200, SLOT),
                refused(200, 409, "slot_free"),
            ],
            &rows_of(&[("a", SLOT, "booked")]),
        );
        assert_eq!(invalid(&r), &[1, 200]);
    }

    #[test]
    fn a_move_into_a_free_slot_then_refuses_its_bookings() {
        let h = vec![
            book(1, SLOT),
            booked(1, "a"),
            reschedule(200, "a", SLOT, B),
            answered(200, 200),
            book(400, B),
            failed(400, 409),
            book(600, SLOT),
            booked(600, "c"),
        ];
        let ev = rows_of(&[("a", B, "booked"), ("c", SLOT, "booked")]);
        valid(&check(h, &ev));
    }

    #[test]
    fn a_move_acknowledged_into_a_slot_an_acknowledged_booking_holds_is_invalid() {
        let h = vec![
            book(1, SLOT),
            booked(1, "a"),
            book(2, B),
            booked(2, "b"),
            reschedule(200, "a", SLOT, B),
            answered(200, 200),
        ];
        let r = check(h, &rows_of(&[("a", B, "booked"), ("b", B, "booked")]));
        let ops = invalid(&r);
        assert!(ops.contains(&2) && ops.contains(&200), "{ops:?}");
        assert!(
            r.detail
                .contains("explains op 200's move of a into it: the slot was certainly held"),
            "{}",
            r.detail
        );
        // Refused as taken: fine.
        let h = vec![
            book(1, SLOT),
            booked(1, "a"),
            book(2, B),
            booked(2, "b"),
            reschedule(200, "a", SLOT, B),
            refused(200, 409, "slot_taken"),
        ];
        valid(&check(
            h,
            &rows_of(&[("a", SLOT, "booked"), ("b", B, "booked")]),
        ));
    }

    #[test]
    fn a_lost_acknowledged_booking_contradicts_the_final_rows() {
        let h = vec![book(1, SLOT), booked(1, "a")];
        let r = check(h.clone(), &rows_of(&[]));
        assert_eq!(invalid(&r), &[1]);
        assert_eq!(
            r.detail,
            "no order of this 1 op of provider 1 at 3600 leaves it free, as the database rows show"
        );
        // Two live rows: no sequential state has two holders.
        let r = check(h, &rows_of(&[("a", SLOT, "booked"), ("y", SLOT, "booked")]));
        match &r.verdict {
            Verdict::Invalid { rows, .. } => assert_eq!(rows.len(), 2, "{rows:?}"),
            v => panic!("{v:?}"),
        }
    }

    #[test]
    fn a_retry_with_its_key_replays_the_first_answer() {
        // The first try timed out but booked; a refusal came back before the retry was
        // sent; the retry got the first answer again.
        let h = vec![
            book_keyed(1, SLOT, "k"),
            timed_out_at(1, 30),
            book(20, SLOT),
            refused_at(20, 409, "slot_taken", 40),
            book_keyed(50, SLOT, "k"),
            booked(50, "a"),
        ];
        let ev = rows_of(&[("a", SLOT, "booked")]);
        valid(&check(h.clone(), &ev));
        // Without the key they are two bookings, and the second found the slot taken.
        let unkeyed: Vec<Record> = h
            .into_iter()
            .map(|r| match r {
                Record::Invoke(i) => Record::Invoke(chaos_model::Invoke { key: None, ..i }),
                r => r,
            })
            .collect();
        assert_eq!(invalid(&check(unkeyed, &ev)), &[1, 20, 50]);
    }

    #[test]
    fn a_slot_raced_for_by_a_burst_is_judged_without_exploring_every_order() {
        // Forty clients at once: one booked it, ten got no answer, the rest were refused.
        let mut h = Vec::new();
        for op in 1..=40 {
            h.push(book(op, SLOT));
        }
        for op in 1..=40 {
            h.push(match op {
                7 => booked(op, "a"),
                op if op % 4 == 0 => timed_out_at(op, 300),
                op => failed(op, 409),
            });
        }
        let decide = |ev: &Evidence| {
            let hist = history(h.clone());
            judge(&View::new(&hist, ev), 20_000)
        };
        let (v, detail) = decide(&rows_of(&[("a", SLOT, "booked")]));
        assert_eq!(v, Verdict::Valid, "{detail}");
        // Its row lost: every order fails, and the search must see that within its cap.
        let (v, detail) = decide(&rows_of(&[]));
        assert!(matches!(v, Verdict::Invalid { .. }), "{v:?}: {detail}");
    }

    #[test]
    fn nothing_to_judge_is_unknown() {
        let r = check(
            vec![book(1, SLOT), timed_out(1), book(2, SLOT), failed(2, 503)],
            &Evidence::default(),
        );
        assert!(
            matches!(&r.verdict, Verdict::Unknown { reason } if reason.starts_with("nothing to judge")),
            "{r:?}"
        );
        let r = check(vec![], &rows_of(&[]));
        assert!(matches!(r.verdict, Verdict::Unknown { .. }), "{r:?}");
    }

    #[test]
    fn a_slot_past_the_search_cap_is_unknown_unless_another_is_invalid() {
        // Thirty unanswered joins, any subset of which may have happened, then a read that no
        // subset explains: the search meets its cap (here 10,000 states) first.
        let mut h = vec![book(1, SLOT), booked(1, "a")];
        for op in 200..230 {
            h.extend([waitlist(op, SLOT), timed_out(op)]);
        }
        h.extend([availability(1000, SLOT), listed(1000, &[SLOT.start])]);
        let capped = |h: Vec<Record>| {
            let (h, ev) = (history(h), Evidence::default());
            CheckResult::new(NAME, judge(&View::new(&h, &ev), 10_000))
        };
        let r = capped(h.clone());
        match &r.verdict {
            Verdict::Unknown { reason } => {
                assert!(
                    reason.starts_with("the search of provider 1 at 3600 (32 ops)"),
                    "{reason}"
                )
            }
            v => panic!("expected unknown, got {v:?}"),
        }
        let other = Slot {
            provider: 2,
            start: 3600,
        };
        h.extend([book(2000, other), failed(2000, 409)]);
        assert_eq!(invalid(&capped(h)), &[2000]);
    }
}
