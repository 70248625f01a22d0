//! A run prepared once for every checker: the history's ops in id order, and (computed on
//! first use, or handed in ready by `prepared.rs`) the stubs' reminder deliveries, the stub
//! calls a booking may cause, which op booked each appointment and when each appointment
//! may have been cancelled. The checkers read this view, so a million-op history is folded
//! into ops once, not once per invariant.

use std::sync::OnceLock;

use chaos_model::{Evidence, History, Op, OpKind, Outcome, Slot};

use crate::deliveries::{Deliveries, booking_ops, deliveries};
use crate::fasthash::FastMap;
use crate::trace_propagates::{CausedCalls, caused_calls};

pub struct View<'a> {
    pub history: &'a History,
    pub evidence: &'a Evidence,
    pub ops: Vec<Op<'a>>,
    deliveries: OnceLock<Option<Deliveries<'a>>>,
    caused_calls: OnceLock<CausedCalls<'a>>,
    booking_ops: OnceLock<FastMap<&'a str, u64>>,
    cancelled_from: OnceLock<FastMap<&'a str, u64>>,
    fault_windows: OnceLock<Vec<(usize, u64, u64)>>,
    certain_fault_windows: OnceLock<Vec<(usize, u64, u64)>>,
}

impl<'a> View<'a> {
    pub fn new(history: &'a History, evidence: &'a Evidence) -> View<'a> {
        View::with_ready(history, evidence, OnceLock::new(), OnceLock::new())
    }

    /// A view whose parts read from the evidence alone may be ready already (`Prepared`).
    pub fn with_ready(
        history: &'a History,
        evidence: &'a Evidence,
        deliveries: OnceLock<Option<Deliveries<'a>>>,
        caused_calls: OnceLock<CausedCalls<'a>>,
    ) -> View<'a> {
        View {
            history,
            evidence,
            ops: history.ops(),
            deliveries,
            caused_calls,
            booking_ops: OnceLock::new(),
            cancelled_from: OnceLock::new(),
            fault_windows: OnceLock::new(),
            certain_fault_windows: OnceLock::new(),
        }
    }

    /// Successful deliveries by (appointment, kind, channel); `None` without stub logs.
    pub fn deliveries(&self) -> Option<&Deliveries<'a>> {
        self.deliveries
            .get_or_init(|| deliveries(self.evidence))
            .as_ref()
    }

    /// The stub calls a booking may cause (`trace_propagates`).
    pub fn caused_calls(&self) -> &CausedCalls<'a> {
        self.caused_calls
            .get_or_init(|| caused_calls(self.evidence))
    }

    /// Appointment id -> the op whose answer named it.
    pub fn booking_ops(&self) -> &FastMap<&'a str, u64> {
        self.booking_ops.get_or_init(|| booking_ops(&self.ops))
    }

    /// The history's fault windows (`History::fault_windows`, a scan of every record),
    /// computed once.
    pub fn fault_windows(&self) -> &[(usize, u64, u64)] {
        self.fault_windows
            .get_or_init(|| self.history.fault_windows())
    }

    /// Where each fault was certainly in effect (`History::certain_fault_windows`): what a
    /// checker takes as proof that something happened during a fault falls inside these.
    pub fn certain_fault_windows(&self) -> &[(usize, u64, u64)] {
        self.certain_fault_windows
            .get_or_init(|| self.history.certain_fault_windows())
    }

    /// Appointment id -> the earliest invoke of a cancellation that may have taken effect:
    /// one acknowledged naming it, or one left unanswered (`info`) by the client that booked
    /// it, for its slot (an unanswered cancellation names no appointment). Appointments no
    /// cancellation may have touched are absent.
    pub fn cancelled_from(&self) -> &FastMap<&'a str, u64> {
        self.cancelled_from.get_or_init(|| {
            let mut from: FastMap<&'a str, u64> = FastMap::default();
            let mut unanswered: FastMap<(u32, Slot), u64> = FastMap::default();
            for c in self.ops.iter().filter(|o| o.f == OpKind::Cancel) {
                match (c.outcome, c.appointment, c.slot) {
                    (Outcome::Ok, Some(a), _) => {
                        earliest(from.entry(a).or_insert(u64::MAX), c.invoke_us);
                    }
                    (Outcome::Info, _, Some(slot)) => {
                        let t = unanswered.entry((c.process, slot)).or_insert(u64::MAX);
                        earliest(t, c.invoke_us);
                    }
                    _ => {}
                }
            }
            for b in self.ops.iter().filter(|o| o.f == OpKind::Book) {
                let (Some(a), Some(slot)) = (b.appointment, b.slot) else {
                    continue;
                };
                if let Some(&at) = unanswered.get(&(b.process, slot)) {
                    earliest(from.entry(a).or_insert(u64::MAX), at);
                }
            }
            from
        })
    }
}

fn earliest(t: &mut u64, at: u64) {
    *t = (*t).min(at);
}

/// Run a checker of the view on a history alone (for the checkers that need no evidence).
pub fn with_history<T>(history: &History, f: impl FnOnce(&View<'_>) -> T) -> T {
    let ev = Evidence::default();
    f(&View::new(history, &ev))
}
