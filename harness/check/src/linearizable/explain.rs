//! Why a slot is not linearizable, in as few ops as the search can show: the op whose answer
//! no order explains (the first answer after which the history up to it has no
//! linearization: a prefix of a linearizable history is linearizable, so this is a binary
//! search), and a window of the ops before it, cut where nothing was in flight. A window
//! that no order explains from any state (free or held by anyone, with any number waiting)
//! is a proof on its own: whatever happened before it, the state it started from is one of
//! those. Unanswered ops from before the cut stay in, since they may take effect inside it.

use chaos_model::{Op, OpKind, Slot};

use super::model::{
    ANY, Act, FIRST_ID, FREE, Final, Ids, MANY_WAITING, Promotion, State, UNKNOWN, Who,
};
use super::search::{Found, Item, PENDING, Search};

/// Where an item came from: the op (index into the view's ops) and its group of ops judged
/// as one, or `NO_GROUP`; the final state has op `u32::MAX`.
pub type Origin = (u32, u32);

pub const FINAL_OP: u32 = u32::MAX;

/// Cuts tried, latest first, before the whole prefix is the proof.
const CUTS: usize = 40;

/// The explanation of a slot may visit this many times a search's cap in states.
const BUDGET: usize = 8;

/// A slot whose ops no order explains.
pub struct Failing<'s, 'a> {
    pub slot: Slot,
    pub items: &'s [Item],
    pub origins: &'s [Origin],
    pub ids: &'s Ids,
    pub names: &'s [&'a str],
    pub ops: &'s [Op<'a>],
    pub groups: &'s [Vec<u64>],
    /// Live rows of the slot, when more than one.
    pub live: usize,
}

/// The op ids of the proof and the sentence saying what no order explains.
pub fn explain(s: &Failing<'_, '_>, search: &mut Search, cap: usize) -> (Vec<u64>, String) {
    let items = s.items;
    let fin = items.iter().position(|i| matches!(i.act, Act::Final(_)));
    let body: Vec<usize> = (0..items.len()).filter(|&i| Some(i) != fin).collect();
    let mut scratch: Vec<Item> = Vec::new();
    // The states all of the explanation's searches may visit; past it, the best so far.
    let mut budget = BUDGET.saturating_mul(cap);
    let mut run =
        |idx: &[usize], end: u64, demote: Option<usize>, init: State, search: &mut Search| {
            if budget == 0 {
                return Found::Capped;
            }
            scratch.clear();
            scratch.extend(idx.iter().map(|&i| {
                let mut it = items[i];
                if it.ret > end || Some(i) == demote {
                    it.ret = PENDING;
                }
                it
            }));
            let found = search.run(s.ids, &scratch, init, cap);
            budget = budget.saturating_sub(search.visited.max(1));
            found
        };
    // The culprit, and the time up to which the ops explain nothing.
    let (culprit, end) = 'found: {
        if let Some(f) = fin
            && run(&body, u64::MAX, None, State::START, search) == Found::Linearizable
        {
            break 'found (f, u64::MAX);
        }
        let mut rets: Vec<u64> = body
            .iter()
            .map(|&i| items[i].ret)
            .filter(|&r| r != PENDING)
            .collect();
        rets.sort_unstable();
        rets.dedup();
        let prefix = |end: u64| -> Vec<usize> {
            body.iter()
                .copied()
                .filter(|&i| items[i].call <= end)
                .collect()
        };
        let (mut lo, mut hi) = (0, rets.len());
        // Invariant: the prefix up to rets[hi] (or everything) is not linearizable.
        while lo < hi {
            let mid = (lo + hi) / 2;
            if run(&prefix(rets[mid]), rets[mid], None, State::START, search)
                == Found::NotLinearizable
            {
                hi = mid;
            } else {
                lo = mid + 1;
            }
        }
        let Some(&end) = rets.get(hi) else {
            return (
                all_ops(s),
                format!(
                    "no order of the {} ops of {} explains their answers",
                    all_ops(s).len(),
                    s.slot
                ),
            );
        };
        let within = prefix(end);
        let answered: Vec<usize> = within
            .iter()
            .copied()
            .filter(|&i| items[i].ret == end)
            .collect();
        let culprit = answered
            .iter()
            .copied()
            .find(|&c| run(&within, end, Some(c), State::START, search) == Found::Linearizable)
            .unwrap_or(answered[0]);
        (culprit, end)
    };
    let within: Vec<usize> = if end == u64::MAX {
        (0..items.len()).collect()
    } else {
        body.iter()
            .copied()
            .filter(|&i| items[i].call <= end)
            .collect()
    };
    // Cuts: instants before the culprit's call with no answered op in flight.
    let mut definite: Vec<usize> = within
        .iter()
        .copied()
        .filter(|&i| items[i].ret != PENDING && !matches!(items[i].act, Act::Final(_)))
        .collect();
    definite.sort_unstable_by_key(|&i| items[i].call);
    let limit = items[culprit].call;
    let mut cuts = Vec::new();
    let mut reach = 0u64;
    for (k, &i) in definite.iter().enumerate() {
        if k > 0 && reach < items[i].call && items[i].call <= limit {
            cuts.push(items[i].call);
        }
        reach = reach.max(items[i].ret);
    }
    let mut window = within.clone();
    for &cut in cuts.iter().rev().take(CUTS) {
        let w: Vec<usize> = within
            .iter()
            .copied()
            .filter(|&i| items[i].call >= cut || items[i].ret == PENDING)
            .collect();
        let from = |holder| State {
            holder,
            waiting: MANY_WAITING,
        };
        let free = run(&w, end, None, from(FREE), search);
        if free == Found::Capped {
            break;
        }
        if free == Found::NotLinearizable {
            match run(&w, end, None, from(ANY), search) {
                Found::NotLinearizable => {
                    window = w;
                    break;
                }
                Found::Capped => break,
                Found::Linearizable => {}
            }
        }
    }
    let mut proof: Vec<u64> = Vec::new();
    for &i in &window {
        push_ops(s, s.origins[i], &mut proof);
    }
    proof.sort_unstable();
    proof.dedup();
    let sentence = match items[culprit].act {
        Act::Final(f) => format!(
            "no order of {} of {} leaves it {}, as the database rows show",
            these(proof.len()),
            s.slot,
            match f {
                Final::Free => "free".to_string(),
                Final::Held(w) => format!("held by {}", name(s, w)),
                Final::Impossible => format!("with {} live appointments", s.live),
            }
        ),
        act => {
            let (op, _) = s.origins[culprit];
            let o = &s.ops[op as usize];
            format!(
                "no order of {} of {} explains op {}'s {}: {}",
                these(proof.len()),
                s.slot,
                o.id,
                answer(s, o, &act),
                why(s, &act)
            )
        }
    };
    (proof, sentence)
}

fn these(n: usize) -> String {
    if n == 1 {
        "this 1 op".into()
    } else {
        format!("these {n} ops")
    }
}

fn push_ops(s: &Failing<'_, '_>, (op, group): Origin, out: &mut Vec<u64>) {
    if op == FINAL_OP {
        return;
    }
    match s.groups.get(group as usize) {
        Some(g) => out.extend_from_slice(g),
        None => out.push(s.ops[op as usize].id),
    }
}

/// Every op of a failing slot, unexplained: for the slots past the first few, whose
/// explanations the report would not show.
pub fn all_ops(s: &Failing<'_, '_>) -> Vec<u64> {
    let mut v = Vec::new();
    for &o in s.origins {
        push_ops(s, o, &mut v);
    }
    v.sort_unstable();
    v.dedup();
    v
}

fn name(s: &Failing<'_, '_>, w: Who) -> String {
    match w {
        FREE => "nobody".into(),
        UNKNOWN => "an appointment of unknown id".into(),
        ANY => "anyone".into(),
        w if w >= FIRST_ID && usize::from(w - FIRST_ID) < s.names.len() => {
            s.names[usize::from(w - FIRST_ID)].to_string()
        }
        _ => "its appointment".into(),
    }
}

/// The answer, as "op N's ...".
fn answer(s: &Failing<'_, '_>, o: &Op<'_>, act: &Act) -> String {
    let status = o
        .status
        .map_or_else(|| "answer".to_string(), |c| c.to_string());
    let moving = o.f == OpKind::Reschedule;
    match *act {
        Act::Take(w) | Act::Arrive(w) if moving => format!("move of {} into it", name(s, w)),
        Act::Take(w) | Act::Arrive(w) => format!("{status} (booked {})", name(s, w)),
        Act::Taken if moving => "409 (slot taken) to a move into it".into(),
        Act::Taken => status,
        Act::Release { target, promoted } | Act::ReleaseIfHeld { target, promoted } => {
            let what = if moving { "move out" } else { "cancellation" };
            match promoted {
                Promotion::Named(p) => {
                    format!("{what} of {} that promoted {}", name(s, target), name(s, p))
                }
                _ => format!("{what} of {}", name(s, target)),
            }
        }
        Act::NotHeldBy(w) => format!("409 (not booked) to the cancellation of {}", name(s, w)),
        Act::HeldBy(w) => format!("move of {} to the slot it held", name(s, w)),
        Act::Join => "waitlist join".into(),
        Act::JoinRefused => "409 (slot free) to a waitlist join".into(),
        Act::ReadFree => "read listing it free".into(),
        Act::ReadHeld => "read leaving it out".into(),
        Act::Final(_) => "end".into(),
    }
}

fn why(s: &Failing<'_, '_>, act: &Act) -> String {
    match *act {
        Act::Take(_) | Act::Arrive(_) | Act::JoinRefused | Act::ReadFree => {
            "the slot was certainly held".into()
        }
        Act::Taken | Act::Join | Act::ReadHeld => "the slot was certainly free".into(),
        Act::ReleaseIfHeld { .. } => "nobody waited to be promoted".into(),
        Act::Release { target, promoted } => {
            let promoted = if matches!(promoted, Promotion::Named(_)) {
                ", or nobody waited to be promoted"
            } else {
                ""
            };
            format!("{} certainly did not hold it{promoted}", name(s, target))
        }
        Act::NotHeldBy(w) => format!("{} certainly held it", name(s, w)),
        Act::HeldBy(w) => format!("{} certainly did not hold it", name(s, w)),
        Act::Final(_) => "the rows".into(),
    }
}
