//! The history partitioned by slot: what each write's answer says about each slot it touched
//! (a reschedule touches two), which slots are certainly in their provider's template, and
//! the answered availability reads, grouped by the provider and day they listed.
//!
//! Bookings sent with one `Idempotency-Key` for one slot are one request to a system that
//! keeps its promise (a retry gets the first answer, replayed even after the slot changed)
//! and several to one that does not: when their answers agree they are judged as one op
//! (called when the first was, answered when the first answer came), which is sound for both.

use chaos_model::{Op, OpKind, Outcome, Slot};

use super::reads::DayReads;
use super::search::PENDING;
use crate::fasthash::FastMap;

pub const DAY: i64 = 86_400;

/// An op's answer in one slot, before the slot's appointment ids are interned.
#[derive(Debug, Clone, Copy)]
pub enum RawAct<'a> {
    Take(Option<&'a str>),
    Arrive(&'a str),
    Taken,
    Release {
        target: Option<&'a str>,
        promoted: RawPromotion<'a>,
    },
    ReleaseIfHeld {
        target: &'a str,
        promoted: RawPromotion<'a>,
    },
    NotHeldBy(&'a str),
    HeldBy(&'a str),
    Join,
    JoinRefused,
}

#[derive(Debug, Clone, Copy)]
pub enum RawPromotion<'a> {
    None,
    Named(&'a str),
    Maybe,
}

/// One write's answer in one slot.
#[derive(Debug, Clone, Copy)]
pub struct Sub<'a> {
    pub act: RawAct<'a>,
    pub call: u64,
    /// [`PENDING`] when it may or may not have taken effect.
    pub ret: u64,
    /// The op (index into the view's ops) whose answer this is.
    pub op: u32,
    /// Index into [`Partition::groups`] of the ops judged as one with it, or [`NO_GROUP`].
    pub group: u32,
}

pub const NO_GROUP: u32 = u32::MAX;

pub struct Partition<'a> {
    /// Every slot some write touched, by (provider, start).
    pub slots: Vec<Slot>,
    /// `subs[start[i]..start[i + 1]]` are slot `i`'s.
    pub start: Vec<u32>,
    pub subs: Vec<Sub<'a>>,
    /// Whether an answer showed that the slot is in its provider's template (a booking, a
    /// move or a waitlist join got past the service's check of the slot).
    pub confirmed: Vec<bool>,
    /// Op ids judged as one op (bookings with one key).
    pub groups: Vec<Vec<u64>>,
    /// Providers whose template a schedule change may have replaced.
    pub changed: Vec<u32>,
    /// The provider-days that have slots, by (provider, day): their slots are
    /// `slots[days[d].1 .. days[d + 1].1]`, and their reads are
    /// `reads.of(d)`, by call time.
    pub days: Vec<((u32, i64), u32)>,
    pub reads: DayReads,
    pub index: FastMap<Slot, u32>,
}

impl<'a> Partition<'a> {
    pub fn new(ops: &[Op<'a>]) -> Partition<'a> {
        let mut b = Builder::default();
        // Cancellations and moves wait until every move is known (one pass over the ops).
        let mut later: Vec<u32> = Vec::new();
        let mut keyed: Vec<(u32, &'a str, u32)> = Vec::new();
        let mut reads: Vec<u32> = Vec::new();
        let mut changed: Vec<u32> = Vec::new();
        for (i, o) in ops.iter().enumerate() {
            let i = i as u32;
            match o.f {
                OpKind::Book => {
                    let Some(slot) = o.slot else { continue };
                    match (o.key, booking(o)) {
                        (_, None) => {}
                        (Some(key), Some(_)) => {
                            let s = b.slot(slot);
                            keyed.push((s, key, i));
                        }
                        (None, Some(act)) => b.push(slot, act, o, i),
                    }
                    if answered_past_check(o) {
                        b.confirm(slot);
                    }
                }
                OpKind::Cancel | OpKind::Reschedule => later.push(i),
                OpKind::Waitlist => {
                    let Some(slot) = o.slot else { continue };
                    let act = match (o.outcome, o.status) {
                        (Outcome::Ok, _) | (Outcome::Info, _) => RawAct::Join,
                        (Outcome::Fail, Some(409)) => RawAct::JoinRefused,
                        _ => continue,
                    };
                    b.push(slot, act, o, i);
                    if answered_past_check(o) {
                        b.confirm(slot);
                    }
                }
                OpKind::Availability => {
                    if o.outcome == Outcome::Ok && o.free.is_some() && o.slot.is_some() {
                        reads.push(i);
                    }
                }
                OpKind::ScheduleChange => {
                    if let Some(s) = o.slot {
                        changed.push(s.provider);
                    }
                }
                OpKind::Login | OpKind::Forged | OpKind::Readiness => {}
            }
        }
        let moved = moved(ops, &later);
        for i in later {
            let o = &ops[i as usize];
            match o.f {
                OpKind::Cancel => cancel(&mut b, &moved, o, i),
                _ => reschedule(&mut b, &moved, o, i),
            }
        }
        keyed_bookings(&mut b, ops, keyed);
        changed.sort_unstable();
        changed.dedup();
        b.finish(ops, reads, changed)
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn subs_of(&self, slot: usize) -> &[Sub<'a>] {
        &self.subs[self.start[slot] as usize..self.start[slot + 1] as usize]
    }
}

/// What a booking's answer says about its slot, if anything.
fn booking<'a>(o: &Op<'a>) -> Option<RawAct<'a>> {
    match (o.outcome, o.status) {
        (Outcome::Ok, _) | (Outcome::Info, _) => Some(RawAct::Take(o.appointment)),
        (Outcome::Fail, Some(409)) => Some(RawAct::Taken),
        // Not sent, refused before the booking (401, 404, 422, 429, 503...): no effect.
        _ => None,
    }
}

/// A 2xx or a 409: the service found the slot in the provider's template first.
fn answered_past_check(o: &Op<'_>) -> bool {
    matches!(o.outcome, Outcome::Ok) || (o.outcome == Outcome::Fail && o.status == Some(409))
}

fn target<'a>(o: &Op<'a>) -> Option<&'a str> {
    o.target.or(match o.f {
        OpKind::Cancel => o.appointment,
        _ => None,
    })
}

/// Appointment id -> every slot it may be in, for the appointments a reschedule may have
/// moved: the slots its bookings and moves named. A client's idea of where its appointment
/// is may be stale after a move whose answer was lost.
/// `later`: the cancellations and moves, by index.
fn moved<'a>(ops: &[Op<'a>], later: &[u32]) -> FastMap<&'a str, Vec<Slot>> {
    let mut moved: FastMap<&'a str, Vec<Slot>> = FastMap::default();
    let moves = later.iter().map(|&i| &ops[i as usize]);
    for o in moves.filter(|o| o.f == OpKind::Reschedule) {
        let (Some(t), Some(from), Some(to)) = (target(o), o.slot, o.to) else {
            continue;
        };
        if from != to && o.outcome != Outcome::Fail {
            moved.entry(t).or_default().extend([from, to]);
        }
    }
    if moved.is_empty() {
        return moved;
    }
    for o in ops.iter() {
        let named = match o.f {
            OpKind::Book => o.appointment,
            OpKind::Reschedule => target(o),
            _ => None,
        };
        if let (Some(a), Some(slot)) = (named, o.slot)
            && let Some(v) = moved.get_mut(a)
        {
            v.push(slot);
        }
        if let (Some(p), Some(slot)) = (o.promoted, o.slot)
            && let Some(v) = moved.get_mut(p)
        {
            v.push(slot);
        }
    }
    for v in moved.values_mut() {
        v.sort_unstable();
        v.dedup();
    }
    moved
}

fn promotion<'a>(o: &Op<'a>, unnamed: RawPromotion<'a>) -> RawPromotion<'a> {
    match (o.outcome, o.promoted) {
        (Outcome::Ok, Some(p)) => RawPromotion::Named(p),
        (Outcome::Ok, None) => unnamed,
        _ => RawPromotion::Maybe,
    }
}

fn cancel<'a>(b: &mut Builder<'a>, moved: &FastMap<&'a str, Vec<Slot>>, o: &Op<'a>, i: u32) {
    let Some(slot) = o.slot else { return };
    let t = target(o);
    let act = match (o.outcome, o.status, t) {
        // The answer says whether the waitlist promotion happened.
        (Outcome::Ok, _, _) | (Outcome::Info, _, _) => RawAct::Release {
            target: t,
            promoted: promotion(o, RawPromotion::None),
        },
        (Outcome::Fail, Some(409), Some(t)) => RawAct::NotHeldBy(t),
        _ => return,
    };
    match t.and_then(|t| moved.get(t)) {
        None => b.push(slot, act, o, i),
        Some(slots) => {
            let own = (!slots.contains(&slot)).then_some(slot);
            for &s in slots.iter().chain(own.iter()) {
                b.push(s, may_be_elsewhere(act), o, i);
            }
        }
    }
}

/// A release of an appointment that may be in another of its slots releases it only where
/// it is; a refusal because it was not booked holds in every slot.
fn may_be_elsewhere(act: RawAct<'_>) -> RawAct<'_> {
    match act {
        RawAct::Release {
            target: Some(target),
            promoted,
        } => RawAct::ReleaseIfHeld { target, promoted },
        a => a,
    }
}

fn reschedule<'a>(b: &mut Builder<'a>, moved: &FastMap<&'a str, Vec<Slot>>, o: &Op<'a>, i: u32) {
    let (Some(t), Some(from), Some(to)) = (target(o), o.slot, o.to) else {
        return;
    };
    if from == to {
        if o.outcome == Outcome::Ok {
            b.push(from, RawAct::HeldBy(t), o, i);
        }
        return;
    }
    let (into, out) = match (o.outcome, o.status, o.error) {
        (Outcome::Ok, _, _) | (Outcome::Info, _, _) => (
            RawAct::Take(Some(t)),
            RawAct::Release {
                target: Some(t),
                // Today's answer to a move does not say whether the freed slot promoted.
                promoted: promotion(o, RawPromotion::Maybe),
            },
        ),
        (Outcome::Fail, Some(409), Some("slot_taken")) => {
            b.push(to, RawAct::Taken, o, i);
            b.confirm(to);
            return;
        }
        (Outcome::Fail, Some(409), _) => {
            b.confirm(to);
            return;
        }
        _ => return,
    };
    if o.outcome == Outcome::Ok {
        b.confirm(to);
    }
    match moved.get(t) {
        // Moved more than once: it may already be in `to`, and may not be in `from`.
        Some(slots) if slots.len() > 2 => {
            b.push(to, RawAct::Arrive(t), o, i);
            for &s in slots.iter().filter(|&&s| s != to) {
                b.push(s, may_be_elsewhere(out), o, i);
            }
        }
        _ => {
            b.push(to, into, o, i);
            b.push(from, out, o, i);
        }
    }
}

/// Bookings with a key, by (slot, key): judged as one op when their answers agree.
fn keyed_bookings<'a>(b: &mut Builder<'a>, ops: &[Op<'a>], mut keyed: Vec<(u32, &'a str, u32)>) {
    keyed.sort_unstable();
    for group in keyed.chunk_by(|x, y| x.0 == y.0 && x.1 == y.1) {
        let slot = b.slots[group[0].0 as usize];
        let members = || group.iter().map(|&(_, _, i)| (&ops[i as usize], i));
        let single = |b: &mut Builder<'a>| {
            for (o, i) in members() {
                if let Some(act) = booking(o) {
                    b.push(slot, act, o, i);
                }
            }
        };
        if group.len() == 1 {
            single(b);
            continue;
        }
        let mut ids: Vec<&str> = Vec::new();
        let mut refused = 0;
        for (o, _) in members() {
            match (o.outcome, o.status) {
                (Outcome::Ok, _) => ids.push(o.appointment.unwrap_or("")),
                (Outcome::Fail, Some(409)) => refused += 1,
                _ => {}
            }
        }
        ids.sort_unstable();
        ids.dedup();
        let merged = match (ids.as_slice(), refused) {
            // One appointment named by every answer: replays of one booking.
            ([id], 0) if !id.is_empty() => RawAct::Take(Some(id)),
            // Refused every time: the first refusal, replayed or not.
            ([], n) if n > 0 => RawAct::Taken,
            _ => {
                single(b);
                continue;
            }
        };
        let definite = |o: &Op<'_>| answered_past_check(o);
        let call = members()
            .filter(|(o, _)| booking(o).is_some())
            .map(|(o, _)| o.invoke_us)
            .min()
            .unwrap_or(0);
        let ret = members()
            .filter(|(o, _)| definite(o))
            .filter_map(|(o, _)| o.complete_us)
            .min()
            .unwrap_or(PENDING);
        let first = members()
            .find(|(o, _)| definite(o))
            .map_or(group[0].2, |m| m.1);
        let g = b.groups.len() as u32;
        b.groups.push(
            members()
                .filter(|(o, _)| booking(o).is_some())
                .map(|(o, _)| o.id)
                .collect(),
        );
        b.subs.push((
            group[0].0,
            Sub {
                act: merged,
                call,
                ret,
                op: first,
                group: g,
            },
        ));
        if matches!(merged, RawAct::Taken) {
            // The refusals say nothing of the unanswered tries, which may have booked.
            for (o, i) in members().filter(|(o, _)| o.outcome == Outcome::Info) {
                b.push(slot, RawAct::Take(o.appointment), o, i);
            }
        }
    }
}

#[derive(Default)]
struct Builder<'a> {
    index: FastMap<Slot, u32>,
    slots: Vec<Slot>,
    confirmed: Vec<bool>,
    subs: Vec<(u32, Sub<'a>)>,
    groups: Vec<Vec<u64>>,
}

impl<'a> Builder<'a> {
    fn slot(&mut self, slot: Slot) -> u32 {
        let n = self.slots.len() as u32;
        let i = *self.index.entry(slot).or_insert(n);
        if i == n {
            self.slots.push(slot);
            self.confirmed.push(false);
        }
        i
    }

    fn confirm(&mut self, slot: Slot) {
        let i = self.slot(slot);
        self.confirmed[i as usize] = true;
    }

    fn push(&mut self, slot: Slot, act: RawAct<'a>, o: &Op<'a>, op: u32) {
        let s = self.slot(slot);
        let ret = match o.outcome {
            Outcome::Info => PENDING,
            _ => o.complete_us.unwrap_or(PENDING),
        };
        self.subs.push((
            s,
            Sub {
                act,
                call: o.invoke_us,
                ret,
                op,
                group: NO_GROUP,
            },
        ));
    }

    fn finish(self, ops: &[Op<'a>], reads: Vec<u32>, changed: Vec<u32>) -> Partition<'a> {
        let Builder {
            mut index,
            slots: first_seen,
            confirmed: seen_confirmed,
            subs: raw,
            groups,
        } = self;
        // Slots with no answer to judge (only a confirmation) still get an index: harmless.
        let n = first_seen.len();
        let mut order: Vec<u32> = (0..n as u32).collect();
        order.sort_unstable_by_key(|&i| first_seen[i as usize]);
        let mut rank = vec![0u32; n];
        for (r, &i) in order.iter().enumerate() {
            rank[i as usize] = r as u32;
        }
        let slots: Vec<Slot> = order.iter().map(|&i| first_seen[i as usize]).collect();
        let confirmed: Vec<bool> = order.iter().map(|&i| seen_confirmed[i as usize]).collect();
        for v in index.values_mut() {
            *v = rank[*v as usize];
        }
        // Counting sort of the answers by slot.
        let mut start = vec![0u32; n + 1];
        for (s, _) in &raw {
            start[rank[*s as usize] as usize + 1] += 1;
        }
        for i in 0..n {
            start[i + 1] += start[i];
        }
        let mut fill = start.clone();
        let mut subs: Vec<Sub<'a>> = match raw.first() {
            Some(&(_, first)) => vec![first; raw.len()],
            None => Vec::new(),
        };
        for (s, sub) in raw {
            let r = rank[s as usize] as usize;
            subs[fill[r] as usize] = sub;
            fill[r] += 1;
        }
        // Provider-days, and the reads of each.
        let mut days: Vec<((u32, i64), u32)> = Vec::new();
        let mut day_index: FastMap<(u32, i64), u32> = FastMap::default();
        for (i, s) in slots.iter().enumerate() {
            let key = (s.provider, s.start.div_euclid(DAY));
            if days.last().is_none_or(|d| d.0 != key) {
                day_index.insert(key, days.len() as u32);
                days.push((key, i as u32));
            }
        }
        days.push(((u32::MAX, i64::MAX), n as u32));
        let reads = DayReads::new(ops, &reads, &slots, &days, &day_index);
        Partition {
            slots,
            start,
            subs,
            confirmed,
            groups,
            changed,
            days,
            reads,
            index,
        }
    }
}
