//! Availability reads as reads of each slot: a read of a provider's day is a read of every
//! slot of that day that has a sub-history (listed: free; left out: taken, for the slots
//! certainly in a template nobody changed). A day's reads are many and most say what the
//! last one said, so each slot keeps only those that can tell something: reads in the same
//! relation to every write of the slot (the same writes finished before they were sent, the
//! same ones sent before they were answered) that give the same answer are summed up by the
//! first to be answered and the last to be sent. Between writes with nothing in flight all
//! such reads see one state, so the summary loses nothing there; dropping a read only ever
//! makes a history easier to explain, so it never convicts.

use chaos_model::{Op, Slot};

use super::model::Act;
use super::partition::{NO_GROUP, Sub};
use super::search::{Item, PENDING};
use crate::fasthash::FastMap;

/// One answered read, as compact as the per-slot pass over a day's reads wants it.
#[derive(Debug, Clone, Copy)]
pub struct Read {
    pub call: u64,
    pub ret: u64,
    /// Index into the view's ops.
    pub op: u32,
    /// Offset of its mask in [`DayReads::masks`]: bit j of the mask is set when the read
    /// listed the day's slot j free.
    pub mask: u32,
}

/// The reads of every provider-day, by day then call time.
#[derive(Debug, Default)]
pub struct DayReads {
    reads: Vec<Read>,
    start: Vec<u32>,
    masks: Vec<u64>,
}

impl DayReads {
    /// Index the reads (op indices, in op order) by the day of the slots they list, with
    /// what they listed of each slot of it. Reading the ops in their order keeps the pass
    /// over memory sequential.
    pub fn new(
        ops: &[Op<'_>],
        reads: &[u32],
        slots: &[Slot],
        days: &[((u32, i64), u32)],
        day_index: &FastMap<(u32, i64), u32>,
    ) -> DayReads {
        let mut recs: Vec<(u32, Read)> = Vec::with_capacity(reads.len());
        let mut masks: Vec<u64> = Vec::new();
        let mut sorted: Vec<i64> = Vec::new();
        for &r in reads {
            let o = &ops[r as usize];
            let (Some(s), Some(mut free)) = (o.slot, o.free) else {
                continue;
            };
            let Some(&d) = day_index.get(&(s.provider, s.start.div_euclid(super::partition::DAY)))
            else {
                continue;
            };
            let starts = &slots[days[d as usize].1 as usize..days[d as usize + 1].1 as usize];
            let at = masks.len();
            masks.resize(at + starts.len().div_ceil(64), 0);
            if !free.is_sorted() {
                sorted.clear();
                sorted.extend_from_slice(free);
                sorted.sort_unstable();
                free = &sorted;
            }
            merge(starts, free, &mut masks[at..]);
            recs.push((
                d,
                Read {
                    call: o.invoke_us,
                    ret: o.complete_us.unwrap_or(PENDING),
                    op: r,
                    mask: at as u32,
                },
            ));
        }
        // Counting sort by day (op order is nearly call order), then by call.
        let n_days = days.len().saturating_sub(1);
        let mut start = vec![0u32; n_days + 1];
        for (d, _) in &recs {
            start[*d as usize + 1] += 1;
        }
        for i in 0..n_days {
            start[i + 1] += start[i];
        }
        let mut fill = start.clone();
        let mut out: Vec<Read> = match recs.first() {
            Some(&(_, r)) => vec![r; recs.len()],
            None => Vec::new(),
        };
        for (d, r) in recs {
            out[fill[d as usize] as usize] = r;
            fill[d as usize] += 1;
        }
        // Each day's masks side by side, for the pass over its slots.
        let mut by_day: Vec<u64> = Vec::with_capacity(masks.len());
        for d in 0..n_days {
            let day = &mut out[start[d] as usize..start[d + 1] as usize];
            if !day.is_sorted_by_key(|r| r.call) {
                day.sort_by_key(|r| r.call);
            }
            let words = (days[d + 1].1 - days[d].1).div_ceil(64) as usize;
            for r in day {
                let at = r.mask as usize;
                r.mask = by_day.len() as u32;
                by_day.extend_from_slice(&masks[at..at + words]);
            }
        }
        DayReads {
            reads: out,
            start,
            masks: by_day,
        }
    }

    pub fn of(&self, d: usize) -> &[Read] {
        &self.reads[self.start[d] as usize..self.start[d + 1] as usize]
    }

    fn listed(&self, r: &Read, j: usize) -> bool {
        self.masks[r.mask as usize + j / 64] & (1 << (j % 64)) != 0
    }
}

/// Set bit j of `mask` when `free` (sorted) lists `starts[j]`: a merge of two sorted lists
/// without branches to mispredict, each word of the mask built in a register.
fn merge(starts: &[Slot], free: &[i64], mask: &mut [u64]) {
    let mut x = 0;
    for (w, chunk) in starts.chunks(64).enumerate() {
        let (mut j, mut word) = (0, 0u64);
        while j < chunk.len() && x < free.len() {
            let (a, b) = (chunk[j].start, free[x]);
            word |= u64::from(a == b) << j;
            j += usize::from(a <= b);
            x += usize::from(b <= a);
        }
        mask[w] = word;
    }
}

/// Reused buffers of the per-slot summary.
#[derive(Default)]
pub struct Reads {
    calls: Vec<u64>,
    rets: Vec<u64>,
    /// By the count of writes sent before the read was answered: the first answered and the
    /// last sent read listing it free, then the same for reads leaving it out.
    table: Vec<[u32; 4]>,
    touched: Vec<u32>,
}

const NONE: u32 = u32::MAX;

impl Reads {
    /// The reads of day `d` that its slot `j` keeps, appended to `items` (their ops to
    /// `origin`). `judge_taken`: whether a read that leaves the slot out says it was taken.
    #[allow(clippy::too_many_arguments)]
    pub fn slot(
        &mut self,
        all: &DayReads,
        d: usize,
        j: usize,
        subs: &[Sub<'_>],
        judge_taken: bool,
        items: &mut Vec<Item>,
        origin: &mut Vec<(u32, u32)>,
    ) {
        let reads = all.of(d);
        if reads.is_empty() {
            return;
        }
        self.calls.clear();
        self.rets.clear();
        for s in subs {
            self.calls.push(s.call);
            if s.ret != PENDING {
                self.rets.push(s.ret);
            }
        }
        self.calls.sort_unstable();
        self.rets.sort_unstable();
        self.table.clear();
        self.table.resize(self.calls.len() + 1, [NONE; 4]);
        self.touched.clear();
        let mut before = 0; // writes answered before the current read was sent
        let mut class = usize::MAX;
        for (k, r) in reads.iter().enumerate() {
            let listed = all.listed(r, j);
            if !listed && !judge_taken {
                continue;
            }
            while before < self.rets.len() && self.rets[before] < r.call {
                before += 1;
            }
            if before != class {
                self.flush(reads, items, origin);
                class = before;
            }
            let sent = self.calls.partition_point(|&c| c <= r.ret);
            let t = &mut self.table[sent];
            if t[0] == NONE && t[2] == NONE {
                self.touched.push(sent as u32);
            }
            let v = if listed { 0 } else { 2 };
            let k = k as u32;
            if t[v] == NONE || reads[t[v] as usize].ret > r.ret {
                t[v] = k;
            }
            t[v + 1] = k;
        }
        self.flush(reads, items, origin);
    }

    fn flush(&mut self, reads: &[Read], items: &mut Vec<Item>, origin: &mut Vec<(u32, u32)>) {
        for &b in &self.touched {
            let t = std::mem::replace(&mut self.table[b as usize], [NONE; 4]);
            for (v, act) in [(0, Act::ReadFree), (2, Act::ReadHeld)] {
                let (first, last) = (t[v], t[v + 1]);
                for k in [first, last] {
                    if k == NONE {
                        break;
                    }
                    let r = &reads[k as usize];
                    items.push(Item {
                        act,
                        call: r.call,
                        ret: r.ret,
                    });
                    origin.push((r.op, NO_GROUP));
                    if first == last {
                        break;
                    }
                }
            }
        }
        self.touched.clear();
    }
}
