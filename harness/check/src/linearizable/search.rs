//! The search for a linearization of one slot's ops (Wing & Gong, with Lowe's memoisation
//! of (linearized set, state) as Porcupine does): walk the ops in time order, linearize a
//! call the model accepts, backtrack at the return of an op not yet linearized. Ops without
//! a return (`info`, or cut off by a window) are optional: they may take effect any time
//! after their call, or never. The buffers are kept between slots: most slots are tiny.
//!
//! An op that only observes the state (a refusal, a read) and that the state explains when
//! the walk reaches it is linearized there and then, with no alternative tried: any order
//! that puts it later can put it there instead, for it changes nothing and everything that
//! had to come before it already has. Without that, a slot raced for by a burst of clients
//! (one booked, dozens refused) makes the search try every subset of the refusals.

use std::collections::HashSet;
use std::hash::{BuildHasherDefault, Hash};

use super::model::{Act, Ids, State};
use crate::fasthash::WordHasher;

/// An op's answer in one slot: what it says, when it was called and when it returned.
#[derive(Debug, Clone, Copy)]
pub struct Item {
    pub act: Act,
    pub call: u64,
    /// [`PENDING`] for an op that may or may not have taken effect.
    pub ret: u64,
}

/// The return time of an optional op.
pub const PENDING: u64 = u64::MAX;

impl Item {
    pub fn required(&self) -> bool {
        self.ret != PENDING
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Found {
    Linearizable,
    NotLinearizable,
    /// The search visited more states than its cap allows.
    Capped,
}

type Fast<T> = HashSet<T, BuildHasherDefault<WordHasher>>;

/// Reused buffers.
#[derive(Default)]
pub struct Search {
    order: Vec<(u64, u32)>,
    next: Vec<u32>,
    prev: Vec<u32>,
    /// Entry -> item << 1 | is_return.
    code: Vec<u32>,
    /// Item -> its return entry (0: none).
    ret_entry: Vec<u32>,
    /// (call entry, state before, alternative taken, forced: an observation).
    stack: Vec<(u32, State, u8, bool)>,
    small: Vec<(u64, State)>,
    seen64: Fast<(u64, State)>,
    seen: Fast<(Box<[u64]>, State)>,
    /// States visited by the last search.
    pub visited: usize,
}

/// Up to this many visited states are kept in a vector searched linearly.
const SMALL: usize = 24;

trait Bits: Clone {
    fn empty(n: usize) -> Self;
    fn flip(&mut self, i: usize);
    /// Whether (self, s) is new to the cache; remembers it.
    fn insert(&self, s: State, search: &mut Caches<'_>) -> bool;
}

struct Caches<'a> {
    small: &'a mut Vec<(u64, State)>,
    seen64: &'a mut Fast<(u64, State)>,
    seen: &'a mut Fast<(Box<[u64]>, State)>,
}

impl Bits for u64 {
    fn empty(_: usize) -> u64 {
        0
    }

    fn flip(&mut self, i: usize) {
        *self ^= 1 << i;
    }

    fn insert(&self, s: State, c: &mut Caches<'_>) -> bool {
        if c.seen64.is_empty() {
            if c.small.iter().any(|&(b, t)| b == *self && t == s) {
                return false;
            }
            if c.small.len() < SMALL {
                c.small.push((*self, s));
                return true;
            }
            c.seen64.extend(c.small.drain(..));
        }
        c.seen64.insert((*self, s))
    }
}

impl Bits for Box<[u64]> {
    fn empty(n: usize) -> Self {
        vec![0; n.div_ceil(64)].into_boxed_slice()
    }

    fn flip(&mut self, i: usize) {
        self[i / 64] ^= 1 << (i % 64);
    }

    fn insert(&self, s: State, c: &mut Caches<'_>) -> bool {
        c.seen.insert((self.clone(), s))
    }
}

impl Search {
    /// Whether `items`, from `init`, have a linearization; at most `cap` states visited.
    pub fn run(&mut self, ids: &Ids, items: &[Item], init: State, cap: usize) -> Found {
        if items.len() <= 64 {
            self.run_with::<u64>(ids, items, init, cap)
        } else {
            self.run_with::<Box<[u64]>>(ids, items, init, cap)
        }
    }

    fn run_with<B: Bits + Hash + Eq>(
        &mut self,
        ids: &Ids,
        items: &[Item],
        init: State,
        cap: usize,
    ) -> Found {
        let mut required = items.iter().filter(|i| i.required()).count();
        self.visited = 0;
        if required == 0 {
            return Found::Linearizable;
        }
        self.link(items);
        self.small.clear();
        if !self.seen64.is_empty() {
            self.seen64 = Fast::default();
        }
        if !self.seen.is_empty() {
            self.seen = Fast::default();
        }
        let Search {
            next,
            prev,
            code,
            ret_entry,
            stack,
            small,
            seen64,
            seen,
            ..
        } = self;
        let mut caches = Caches {
            small,
            seen64,
            seen,
        };
        stack.clear();
        let tail = (next.len() - 1) as u32;
        let mut state = init;
        let mut linearized = B::empty(items.len());
        let mut entry = next[0];
        let mut first_alt = 0u8;
        let mut visited = 0usize;
        let found = loop {
            let c = code[entry as usize];
            let mut dominated = false;
            if entry != tail && c & 1 == 0 {
                let item = (c >> 1) as usize;
                let act = &items[item].act;
                let observes = act.observes();
                let mut lifted = false;
                // An optional observation explains nothing: leave it out.
                let alts = if observes && !items[item].required() {
                    0
                } else {
                    act.alternatives()
                };
                for alt in first_alt..alts {
                    let Some(after) = ids.step(state, act, alt) else {
                        continue;
                    };
                    linearized.flip(item);
                    if !linearized.insert(after, &mut caches) {
                        linearized.flip(item);
                        // Taking the observation here was tried and failed: so does
                        // everything from here.
                        dominated = observes;
                        continue;
                    }
                    visited += 1;
                    if visited > cap {
                        break;
                    }
                    stack.push((entry, state, alt, observes));
                    state = after;
                    // Lift the call and its return out of the list.
                    unlink(next, prev, entry);
                    let r = ret_entry[item];
                    if r != 0 {
                        unlink(next, prev, r);
                        required -= 1;
                    }
                    lifted = true;
                    break;
                }
                if visited > cap {
                    break Found::Capped;
                }
                first_alt = 0;
                if lifted {
                    if required == 0 {
                        break Found::Linearizable;
                    }
                    entry = next[0];
                    continue;
                } else if !dominated {
                    entry = next[entry as usize];
                    continue;
                }
            }
            // The return of an op not linearized yet, the end, or a dominated state: undo
            // steps back to the last one that has an alternative.
            let mut resumed = false;
            while let Some((e, before, alt, forced)) = stack.pop() {
                let item = (code[e as usize] >> 1) as usize;
                let r = ret_entry[item];
                if r != 0 {
                    relink(next, prev, r);
                    required += 1;
                }
                relink(next, prev, e);
                linearized.flip(item);
                state = before;
                if !forced {
                    entry = e;
                    first_alt = alt + 1;
                    resumed = true;
                    break;
                }
            }
            if !resumed {
                break Found::NotLinearizable;
            }
        };
        self.visited = visited;
        found
    }

    /// The doubly linked list of calls and returns in time order (a call before a return at
    /// the same instant: those ops overlap), between a head (0) and a tail sentinel.
    fn link(&mut self, items: &[Item]) {
        self.order.clear();
        for (i, it) in items.iter().enumerate() {
            let i = i as u32;
            self.order.push((it.call, i << 1));
            if it.required() {
                self.order.push((it.ret, i << 1 | 1));
            }
        }
        self.order.sort_unstable_by_key(|&(t, c)| (t, c & 1, c));
        let n = self.order.len();
        self.code.clear();
        self.code.push(0);
        self.ret_entry.clear();
        self.ret_entry.resize(items.len(), 0);
        for (e, &(_, c)) in self.order.iter().enumerate() {
            self.code.push(c);
            if c & 1 == 1 {
                self.ret_entry[(c >> 1) as usize] = e as u32 + 1;
            }
        }
        self.code.push(0);
        self.next.clear();
        self.prev.clear();
        for e in 0..n + 2 {
            self.next.push((e + 1).min(n + 1) as u32);
            self.prev.push(e.saturating_sub(1) as u32);
        }
    }
}

fn unlink(next: &mut [u32], prev: &mut [u32], e: u32) {
    let (p, n) = (prev[e as usize], next[e as usize]);
    next[p as usize] = n;
    prev[n as usize] = p;
}

fn relink(next: &mut [u32], prev: &mut [u32], e: u32) {
    let (p, n) = (prev[e as usize], next[e as usize]);
    next[p as usize] = e;
    prev[n as usize] = e;
}

#[cfg(test)]
mod tests {
    use super::super::model::{FIRST_ID, Promotion};
    use super::*;

    fn item(act: Act, call: u64, ret: u64) -> Item {
        Item { act, call, ret }
    }

    fn run(items: &[Item]) -> Found {
        let ids = Ids {
            foreign: vec![false; 4],
        };
        Search::default().run(&ids, items, State::START, 1000)
    }

    const A: u16 = FIRST_ID;
    const B: u16 = FIRST_ID + 1;

    #[test]
    fn concurrent_ops_may_take_any_order_and_sequential_ones_may_not() {
        let book = |who, c, r| item(Act::Take(who), c, r);
        // A refusal concurrent with the booking that took the slot: fine.
        assert_eq!(
            run(&[item(Act::Taken, 0, 10), book(A, 5, 20)]),
            Found::Linearizable
        );
        // The refusal was over before the booking was sent.
        assert_eq!(
            run(&[item(Act::Taken, 0, 10), book(A, 11, 20)]),
            Found::NotLinearizable
        );
        // Two bookings, one of them pending: it may never have happened.
        assert_eq!(
            run(&[book(A, 0, 10), book(B, 5, PENDING)]),
            Found::Linearizable
        );
        assert_eq!(
            run(&[book(A, 0, 10), book(B, 11, 20)]),
            Found::NotLinearizable
        );
        // Overlapping at an instant (one returns as the other is called): concurrent.
        assert_eq!(
            run(&[item(Act::Taken, 0, 10), book(A, 10, 20)]),
            Found::Linearizable
        );
    }

    #[test]
    fn a_pending_release_explains_a_later_free_read_and_alternatives_are_tried() {
        let cancel = Act::Release {
            target: A,
            promoted: Promotion::Maybe,
        };
        let items = [
            item(Act::Take(A), 0, 10),
            item(Act::Join, 11, 20),
            item(cancel, 21, PENDING),
            item(Act::ReadHeld, 30, 40),
            item(Act::ReadHeld, 50, 60),
        ];
        // Held after the pending cancel only if it promoted (second alternative) or never ran.
        assert_eq!(run(&items), Found::Linearizable);
        let mut free_then_held = items;
        free_then_held[3].act = Act::ReadFree;
        assert_eq!(run(&free_then_held), Found::NotLinearizable);
    }

    #[test]
    fn the_cap_stops_a_search_that_explodes() {
        // Twenty pending joins, each of which may or may not have happened, then a read that
        // no subset explains: every subset is a state.
        let mut items = vec![item(Act::Take(A), 0, 1)];
        for i in 0..20 {
            items.push(item(Act::Join, 2 + i, PENDING));
        }
        items.push(item(Act::ReadFree, 100, 101));
        let ids = Ids {
            foreign: vec![false],
        };
        let mut s = Search::default();
        assert_eq!(s.run(&ids, &items, State::START, 10_000), Found::Capped);
        assert_eq!(
            s.run(&ids, &items[..3], State::START, 10_000),
            Found::Linearizable
        );
    }
}
