//! The sequential model of one slot: who holds it (nobody, a named appointment, one whose id
//! no answer named, or anyone at all) and how many patients wait for it, and what each op's
//! answer requires of that state and does to it.

/// Who holds the slot. Named appointments are interned per slot, from [`FIRST_ID`].
pub type Who = u16;
/// Nobody: the slot is free.
pub const FREE: Who = 0;
/// An appointment whose id no answer named (an unanswered booking or promotion). It may be
/// any appointment no op of the slot created by name.
pub const UNKNOWN: Who = 1;
/// Anyone: the start of a window cut out of a longer history, which covers every held state.
pub const ANY: Who = 2;
/// The first interned appointment id.
pub const FIRST_ID: Who = 3;
/// The target of a cancellation that named none: it releases whoever holds the slot.
pub const WHOEVER: Who = Who::MAX;

/// Waiting patients at the start of a cut-out window: more than any window can pop.
pub const MANY_WAITING: u16 = u16::MAX / 2;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct State {
    pub holder: Who,
    pub waiting: u16,
}

impl State {
    pub const START: State = State {
        holder: FREE,
        waiting: 0,
    };
}

/// What a release does with the slot's waitlist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Promotion {
    /// The slot is left free (the answer named no promotion).
    None,
    /// The first waiting patient was booked into it, as this appointment.
    Named(Who),
    /// Either (an unanswered release, or a reschedule, whose answer does not say).
    Maybe,
}

/// What one op's answer says about one slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Act {
    /// A booking (or a move into the slot) that took effect: the slot was free, and is held
    /// by this appointment from then on. A replayed answer of the holder changes nothing.
    Take(Who),
    /// A move into the slot of an appointment that may already be there (it was moved more
    /// than once): free then held by it, or held by it already.
    Arrive(Who),
    /// Refused because the slot was taken (409 `slot_taken`).
    Taken,
    /// A cancellation, or a move out of the slot: this appointment held it.
    Release { target: Who, promoted: Promotion },
    /// A release of an appointment that may be elsewhere (it was moved): when it holds the
    /// slot, it is released; otherwise nothing changes.
    ReleaseIfHeld { target: Who, promoted: Promotion },
    /// Refused because the appointment was not booked (409 `not_booked`).
    NotHeldBy(Who),
    /// A move of an appointment to the slot it holds: nothing changes.
    HeldBy(Who),
    /// A waitlist join (201): the slot was held; one more patient waits.
    Join,
    /// A waitlist join refused because the slot was free (409 `slot_free`).
    JoinRefused,
    /// An availability read listed the slot free.
    ReadFree,
    /// An availability read left the slot out: it was taken.
    ReadHeld,
    /// The end of the history: the state the database rows show.
    Final(Final),
}

/// The slot's state in the database at the end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Final {
    Free,
    Held(Who),
    /// More than one live appointment: no sequential state.
    Impossible,
}

impl Act {
    /// Whether the op only observes the state: it never changes it.
    pub fn observes(&self) -> bool {
        matches!(
            self,
            Act::Taken
                | Act::NotHeldBy(_)
                | Act::HeldBy(_)
                | Act::JoinRefused
                | Act::ReadFree
                | Act::ReadHeld
                | Act::Final(_)
        )
    }

    /// How many successors a step may have (a release that may or may not promote has two).
    pub fn alternatives(&self) -> u8 {
        match self {
            Act::Release {
                promoted: Promotion::Maybe,
                ..
            }
            | Act::ReleaseIfHeld {
                promoted: Promotion::Maybe,
                ..
            } => 2,
            _ => 1,
        }
    }
}

/// The slot's appointment ids: which of them no op of the slot created by name (an
/// appointment of unknown id may be one of those).
#[derive(Debug, Default)]
pub struct Ids {
    pub foreign: Vec<bool>,
}

impl Ids {
    fn foreign(&self, who: Who) -> bool {
        who >= FIRST_ID
            && self
                .foreign
                .get(usize::from(who - FIRST_ID))
                .copied()
                .unwrap_or(true)
    }

    /// Whether `target` may be the holder.
    pub fn holds(&self, holder: Who, target: Who) -> bool {
        match holder {
            FREE => false,
            ANY => true,
            _ if target == WHOEVER => true,
            UNKNOWN => self.foreign(target),
            h => h == target,
        }
    }

    /// The state after `act` from `s` (its `alt`-th alternative), or `None` when `s` cannot
    /// have given the op's answer.
    pub fn step(&self, s: State, act: &Act, alt: u8) -> Option<State> {
        let held = s.holder != FREE;
        let same = |ok: bool| ok.then_some(s);
        match *act {
            Act::Take(who) => {
                if !held {
                    Some(State { holder: who, ..s })
                } else {
                    // A replayed answer of the holder (or, from a window's start, of anyone).
                    same(who >= FIRST_ID && (s.holder == who || s.holder == ANY))
                }
            }
            Act::Arrive(who) => {
                if !held {
                    Some(State { holder: who, ..s })
                } else {
                    same(self.holds(s.holder, who))
                }
            }
            Act::Taken | Act::ReadHeld => same(held),
            Act::JoinRefused | Act::ReadFree => same(!held),
            Act::Join => held.then_some(State {
                waiting: s.waiting.saturating_add(1),
                ..s
            }),
            Act::NotHeldBy(who) => same(!(held && s.holder == who)),
            Act::HeldBy(who) => same(self.holds(s.holder, who)),
            Act::Release { target, promoted } => {
                if !self.holds(s.holder, target) {
                    return None;
                }
                release(s, promoted, alt)
            }
            Act::ReleaseIfHeld { target, promoted } => {
                if self.holds(s.holder, target) {
                    release(s, promoted, alt)
                } else {
                    same(alt == 0)
                }
            }
            Act::Final(f) => same(match f {
                Final::Free => !held,
                Final::Held(who) => {
                    s.holder == who || s.holder == ANY || (s.holder == UNKNOWN && self.foreign(who))
                }
                Final::Impossible => false,
            }),
        }
    }
}

fn release(s: State, promoted: Promotion, alt: u8) -> Option<State> {
    let free = State { holder: FREE, ..s };
    let promote = |holder: Who| {
        (s.waiting > 0).then(|| State {
            holder,
            waiting: s.waiting - 1,
        })
    };
    match (promoted, alt) {
        (Promotion::None, _) | (Promotion::Maybe, 0) => Some(free),
        (Promotion::Named(who), _) => promote(who),
        (Promotion::Maybe, _) => promote(UNKNOWN),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: Who = FIRST_ID;
    const B: Who = FIRST_ID + 1;

    fn held(holder: Who) -> State {
        State { holder, waiting: 0 }
    }

    #[test]
    fn a_booking_needs_a_free_slot_and_a_refusal_a_taken_one() {
        let ids = Ids {
            foreign: vec![false, false],
        };
        assert_eq!(ids.step(State::START, &Act::Take(A), 0), Some(held(A)));
        assert_eq!(ids.step(held(B), &Act::Take(A), 0), None);
        assert_eq!(ids.step(held(A), &Act::Take(A), 0), Some(held(A)));
        assert_eq!(ids.step(held(UNKNOWN), &Act::Take(UNKNOWN), 0), None);
        assert_eq!(ids.step(held(ANY), &Act::Take(A), 0), Some(held(ANY)));
        assert_eq!(ids.step(State::START, &Act::Taken, 0), None);
        assert_eq!(ids.step(held(UNKNOWN), &Act::Taken, 0), Some(held(UNKNOWN)));
    }

    #[test]
    fn a_release_frees_or_promotes_and_unknown_holders_match_only_foreign_ids() {
        let ids = Ids {
            foreign: vec![false, true],
        };
        let cancel = |target| Act::Release {
            target,
            promoted: Promotion::None,
        };
        assert_eq!(ids.step(held(A), &cancel(A), 0), Some(State::START));
        assert_eq!(ids.step(held(UNKNOWN), &cancel(A), 0), None);
        assert_eq!(ids.step(held(UNKNOWN), &cancel(B), 0), Some(State::START));
        assert_eq!(ids.step(held(ANY), &cancel(A), 0), Some(State::START));
        let promote = Act::Release {
            target: A,
            promoted: Promotion::Named(B),
        };
        assert_eq!(ids.step(held(A), &promote, 0), None, "nobody waits");
        let waiting = State {
            holder: A,
            waiting: 1,
        };
        assert_eq!(ids.step(waiting, &promote, 0), Some(held(B)));
        let maybe = Act::Release {
            target: A,
            promoted: Promotion::Maybe,
        };
        assert_eq!(maybe.alternatives(), 2);
        assert_eq!(
            ids.step(waiting, &maybe, 0),
            Some(State {
                holder: FREE,
                waiting: 1
            })
        );
        assert_eq!(ids.step(waiting, &maybe, 1), Some(held(UNKNOWN)));
    }

    #[test]
    fn the_final_state_is_the_rows() {
        let ids = Ids {
            foreign: vec![false, true],
        };
        let held_by = |w| Act::Final(Final::Held(w));
        assert!(ids.step(held(A), &held_by(A), 0).is_some());
        assert!(ids.step(held(UNKNOWN), &held_by(A), 0).is_none());
        assert!(ids.step(held(UNKNOWN), &held_by(B), 0).is_some());
        assert!(
            ids.step(State::START, &Act::Final(Final::Free), 0)
                .is_some()
        );
        assert!(ids.step(held(A), &Act::Final(Final::Free), 0).is_none());
        assert!(
            ids.step(held(ANY), &Act::Final(Final::Impossible), 0)
                .is_none()
        );
    }
}
