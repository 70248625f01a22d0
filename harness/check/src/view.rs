//! A run prepared once for every checker: the history's ops in id order, and (computed on
//! first use) the stubs' reminder deliveries and which op booked each appointment. The
//! checkers read this view, so a million-op history is folded into ops once, not once per
//! invariant.

use std::cell::OnceCell;

use chaos_model::{Evidence, History, Op};

use crate::deliveries::{Deliveries, booking_ops, deliveries};
use crate::fasthash::FastMap;

pub struct View<'a> {
    pub history: &'a History,
    pub evidence: &'a Evidence,
    pub ops: Vec<Op<'a>>,
    deliveries: OnceCell<Option<Deliveries<'a>>>,
    booking_ops: OnceCell<FastMap<&'a str, u64>>,
}

impl<'a> View<'a> {
    pub fn new(history: &'a History, evidence: &'a Evidence) -> View<'a> {
        View {
            history,
            evidence,
            ops: history.ops(),
            deliveries: OnceCell::new(),
            booking_ops: OnceCell::new(),
        }
    }

    /// Successful deliveries by (appointment, kind, channel); `None` without stub logs.
    pub fn deliveries(&self) -> Option<&Deliveries<'a>> {
        self.deliveries
            .get_or_init(|| deliveries(self.evidence))
            .as_ref()
    }

    /// Appointment id -> the op whose answer named it.
    pub fn booking_ops(&self) -> &FastMap<&'a str, u64> {
        self.booking_ops.get_or_init(|| booking_ops(&self.ops))
    }
}

/// Run a checker of the view on a history alone (for the checkers that need no evidence).
pub fn with_history<T>(history: &History, f: impl FnOnce(&View<'_>) -> T) -> T {
    let ev = Evidence::default();
    f(&View::new(history, &ev))
}
