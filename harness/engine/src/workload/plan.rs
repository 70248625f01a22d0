//! The plan: every op of a run, with its due time, client, trace id and (for bookings) key,
//! drawn from one seed. Pure, so the same seed and workload always give the same plan, and so
//! the same op ids (`op_id(index, part)`) and traces in the history.

use chaos_model::{OpKind, Slot, Workload};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::calendar::{SLOTS_PER_DAY, slot_of, slot_start};

/// One op to send: the plan's `index`-th.
#[derive(Debug, Clone, PartialEq)]
pub struct Planned {
    /// Its place in the plan; its login, tries and resubmission are ops `op_id(index, part)`.
    pub index: u64,
    pub due_us: u64,
    pub process: u32,
    /// The trace id every request of this op carries in its `traceparent` (every try the
    /// same trace, each its own span).
    pub trace: u128,
    pub op: PlannedOp,
}

/// What a planned op does.
#[derive(Debug, Clone, PartialEq)]
pub enum PlannedOp {
    /// Book `slot`, with `key` as `Idempotency-Key` when the workload keys bookings; when
    /// `resubmit`, send it again with the same key once it is answered.
    Book {
        slot: Slot,
        key: Option<String>,
        resubmit: bool,
    },
    /// List the free slots of `slot.provider` on the day of `slot.start`.
    Availability { slot: Slot },
    /// A read with a token that is no session.
    Forged,
    /// A probe of `/health/readiness`.
    Readiness,
    /// Cancel the client's oldest acknowledged appointment (skipped when it has none).
    Cancel,
    /// Move one of the client's appointments (skipped when it has none).
    Reschedule(Move),
    /// Join the waitlist of `slot`.
    Waitlist { slot: Slot },
    /// Replace `provider`'s weekly template with the narrow hours (`NARROW_HOURS`). Recorded
    /// with `slot = (provider, 0)`: the change is to a template, not to one slot.
    ScheduleChange { provider: u32 },
    /// Log in again: the new session replaces the client's old one.
    Login,
}

impl PlannedOp {
    pub fn kind(&self) -> OpKind {
        match self {
            PlannedOp::Book { .. } => OpKind::Book,
            PlannedOp::Availability { .. } => OpKind::Availability,
            PlannedOp::Forged => OpKind::Forged,
            PlannedOp::Readiness => OpKind::Readiness,
            PlannedOp::Cancel => OpKind::Cancel,
            PlannedOp::Reschedule(_) => OpKind::Reschedule,
            PlannedOp::Waitlist { .. } => OpKind::Waitlist,
            PlannedOp::ScheduleChange { .. } => OpKind::ScheduleChange,
            PlannedOp::Login => OpKind::Login,
        }
    }
}

/// A reschedule's destination as drawn by the plan, before the appointment (and so its
/// provider) is known: it is mapped to the appointment's provider at run time by
/// [`Move::destination`]. The reschedules of one burst (one patient on `burst` devices) move
/// the same appointment at once, each to a different slot.
#[derive(Debug, Clone, PartialEq)]
pub struct Move {
    /// The plan index of the burst's first reschedule: the burst's name.
    pub burst: u64,
    /// Which reschedule of its burst this is, from 0.
    pub nth: u32,
    /// With `hot_slots`: the hot window current when the op was planned, as calendar
    /// positions `[first, first + len)` of [`slot_start`].
    pub hot: Option<(u64, u64)>,
    /// Chooses among the provider's hot slots.
    pub pick: u64,
    /// One row of the provider's own calendar ([`slot_of`]) per reschedule of the burst, for
    /// those that get no hot slot.
    pub rows: Vec<u64>,
}

impl Move {
    /// Where this reschedule moves an appointment now at `from`: to a slot of the same
    /// provider, never `from`, never where another reschedule of its burst moves it. With a
    /// hot window, the provider's hot slots in it come first (one each, from `pick` on);
    /// the rest, or all without hot slots, go to their own calendar rows (the next row when
    /// that one is taken).
    pub fn destination(&self, from: Slot, providers: u32) -> Slot {
        let p = u64::from(providers.max(1));
        let own = u64::from(from.provider.max(1) - 1);
        let hot: Vec<Slot> = self
            .hot
            .map(|(first, len)| {
                (first..first + len)
                    .filter(|k| k % p == own)
                    .map(|k| slot_start(k, providers))
                    .filter(|s| *s != from)
                    .collect()
            })
            .unwrap_or_default();
        let mut taken = vec![from];
        for j in 0..=self.nth as usize {
            let mut row = self.rows[j];
            let mut s = if j < hot.len() {
                hot[(self.pick as usize % hot.len() + j) % hot.len()]
            } else {
                slot_of(row, from.provider, providers)
            };
            while taken.contains(&s) {
                row += 1;
                s = slot_of(row, from.provider, providers);
            }
            taken.push(s);
        }
        *taken.last().expect("at least this reschedule's slot")
    }
}

/// Weeks of calendar that spread-out bookings and availability reads draw from.
const WEEKS: u64 = 52;

pub fn plan(seed: u64, w: &Workload) -> Vec<Planned> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let end_us = w.duration.as_micros() as f64;
    // The rate at time t: constant, or a linear ramp from `rate` to `rate_end`.
    let rate_at = |t: f64| match w.rate_end {
        Some(to) => w.rate + (to - w.rate) * (t / end_us).clamp(0.0, 1.0),
        None => w.rate,
    };
    let weights = w.mix.weights();
    let total_weight = w.mix.total();
    let rows = SLOTS_PER_DAY * 5 * WEEKS;
    let calendar = u64::from(w.providers) * rows;
    let mut out: Vec<Planned> = Vec::new();
    let mut t = 0.0f64;
    let mut next_process = 0u32;
    let mut bursts = 0u64;
    let mut changed = 0u32;
    let mut take_process = || {
        let p = next_process;
        next_process = (next_process + 1) % w.clients;
        p
    };
    let push = |out: &mut Vec<Planned>, due_us: u64, process: u32, op: PlannedOp| {
        let index = out.len() as u64;
        out.push(Planned {
            index,
            due_us,
            process,
            trace: trace_id(seed, index),
            op,
        });
    };
    while t < end_us {
        let interval_us = 1e6 / rate_at(t);
        let due_us = t as u64;
        let pick = rng.random::<f64>() * total_weight;
        // The hot window the latest booking burst raced in (the first before any).
        let hot_window = w.hot_slots.map(|h| {
            let h = u64::from(h);
            (bursts.saturating_sub(1) / h * h, h)
        });
        match choose(&weights, pick) {
            "book" => {
                let k = match w.hot_slots {
                    // A window of `hot` slots takes `hot` bursts, so each hot slot is raced for
                    // by about one burst of `w.burst` clients, some by several.
                    Some(hot) => {
                        let hot = u64::from(hot);
                        (bursts / hot) * hot + rng.random_range(0..hot)
                    }
                    None => rng.random_range(0..calendar),
                };
                bursts += 1;
                let slot = slot_start(k, w.providers);
                for _ in 0..w.burst {
                    // Drawn only when resubmitting, so other workloads keep their plans.
                    let resubmit = w.resubmit > 0.0 && rng.random::<f64>() < w.resubmit;
                    let key = w.keys_bookings().then(|| format!("{seed:x}-{}", out.len()));
                    let op = PlannedOp::Book {
                        slot,
                        key,
                        resubmit,
                    };
                    push(&mut out, due_us, take_process(), op);
                }
                t += interval_us * f64::from(w.burst);
            }
            "reschedule" => {
                // One patient on `burst` devices: one client, one appointment, at once.
                let process = take_process();
                let pick = rng.random_range(0..1u64 << 32);
                let rows: Vec<u64> = (0..w.burst).map(|_| rng.random_range(0..rows)).collect();
                let burst = out.len() as u64;
                for nth in 0..w.burst {
                    let m = Move {
                        burst,
                        nth,
                        hot: hot_window,
                        pick,
                        rows: rows.clone(),
                    };
                    push(&mut out, due_us, process, PlannedOp::Reschedule(m));
                }
                t += interval_us * f64::from(w.burst);
            }
            "waitlist" => {
                let k = match hot_window {
                    Some((first, len)) => first + rng.random_range(0..len),
                    None => rng.random_range(0..calendar),
                };
                let slot = slot_start(k, w.providers);
                push(
                    &mut out,
                    due_us,
                    take_process(),
                    PlannedOp::Waitlist { slot },
                );
                t += interval_us;
            }
            "login" => {
                push(&mut out, due_us, take_process(), PlannedOp::Login);
                t += interval_us;
            }
            other => {
                let slot = slot_start(rng.random_range(0..calendar), w.providers);
                let op = match other {
                    "availability" => PlannedOp::Availability { slot },
                    "forged" => PlannedOp::Forged,
                    "readiness" => PlannedOp::Readiness,
                    "cancel" => PlannedOp::Cancel,
                    // Each provider's template changes once, in turn; later draws read.
                    "schedule_change" if changed < w.providers => {
                        changed += 1;
                        PlannedOp::ScheduleChange { provider: changed }
                    }
                    "schedule_change" => PlannedOp::Availability { slot },
                    _ => unreachable!("Mix::weights names {other}, which the plan does not know"),
                };
                push(&mut out, due_us, take_process(), op);
                t += interval_us;
            }
        }
    }
    out
}

/// The name of the op whose share of the total weight `pick` falls in.
fn choose(weights: &[(&'static str, f64)], pick: f64) -> &'static str {
    let mut acc = 0.0;
    let mut last = None;
    for &(name, w) in weights {
        if w > 0.0 {
            acc += w;
            last = Some(name);
            if pick < acc {
                return name;
            }
        }
    }
    last.expect("a validated mix has a weight above 0")
}

/// SplitMix64's finaliser: a bijection of u64 that scatters nearby inputs.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The trace id of the plan's op `index` in a run seeded `seed`: never zero (W3C forbids it).
pub fn trace_id(seed: u64, index: u64) -> u128 {
    let hi = mix(seed ^ mix(index));
    let lo = mix(hi ^ mix(index.wrapping_add(0x0074_7261_6365)));
    (u128::from(hi) << 64 | u128::from(lo)).max(1)
}

/// The `traceparent` header of part `part` of the op traced `trace`: its trace id and a span
/// of its own (never zero).
pub fn traceparent(trace: u128, part: u64) -> String {
    let span = mix((trace >> 64) as u64 ^ mix(trace as u64 ^ part)).max(1);
    format!("00-{trace:032x}-{span:016x}-01")
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use super::*;
    use chaos_model::{Dur, Mix, OP_STRIDE, Retry, op_id};

    fn workload() -> Workload {
        Workload {
            duration: Dur::from_secs(2),
            rate: 100.0,
            rate_end: None,
            clients: 10,
            mix: Mix {
                book: 1.0,
                availability: 1.0,
                forged: 0.0,
                readiness: 0.0,
                cancel: 0.0,
                ..Mix::default()
            },
            providers: 3,
            hot_slots: Some(2),
            burst: 4,
            op_timeout: Dur::from_secs(1),
            resubmit: 0.0,
            retry: None,
        }
    }

    #[test]
    fn a_ramp_raises_the_rate_from_start_to_end() {
        let w = Workload {
            rate: 100.0,
            rate_end: Some(900.0),
            hot_slots: None,
            burst: 1,
            ..workload()
        };
        let p = plan(5, &w);
        let first = p.iter().filter(|o| o.due_us < 500_000).count();
        let last = p.iter().filter(|o| o.due_us >= 1_500_000).count();
        // Over 2 s: ~150/s in the first half second, ~850/s in the last.
        assert!((60..=100).contains(&first), "{first} ops in the first 0.5s");
        assert!((380..=460).contains(&last), "{last} ops in the last 0.5s");
        assert!(p.windows(2).all(|w| w[0].due_us <= w[1].due_us));
    }

    /// A mix with every op kind.
    fn everything() -> Workload {
        Workload {
            duration: Dur::from_secs(20),
            rate: 500.0,
            clients: 50,
            mix: Mix {
                book: 2.0,
                availability: 1.0,
                forged: 0.5,
                readiness: 0.5,
                cancel: 1.0,
                reschedule: 1.5,
                waitlist: 1.0,
                schedule_change: 0.5,
                login: 1.0,
            },
            providers: 1000,
            hot_slots: None,
            burst: 1,
            ..workload()
        }
    }

    fn book(o: &Planned) -> Option<(Slot, Option<&str>, bool)> {
        match &o.op {
            PlannedOp::Book {
                slot,
                key,
                resubmit,
            } => Some((*slot, key.as_deref(), *resubmit)),
            _ => None,
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_plan_ids_and_traces_and_another_seed_another() {
        for w in [workload(), everything()] {
            let (a, b, c) = (plan(7, &w), plan(7, &w), plan(8, &w));
            assert_eq!(a, b);
            assert_ne!(a, c);
            let traces = |p: &[Planned]| p.iter().map(|o| o.trace).collect::<Vec<_>>();
            assert_eq!(traces(&a), traces(&b));
            let other: BTreeSet<u128> = traces(&c).into_iter().collect();
            assert!(
                traces(&a).iter().all(|t| !other.contains(t)),
                "seeds share traces"
            );
            assert_eq!(traceparent(a[3].trace, 2), traceparent(b[3].trace, 2));
        }
    }

    #[test]
    fn ids_are_the_plan_index_and_every_part_is_unique() {
        let p = plan(11, &everything());
        let mut ids = BTreeSet::new();
        for (i, o) in p.iter().enumerate() {
            assert_eq!(o.index, i as u64);
            for part in 0..OP_STRIDE {
                assert!(ids.insert(op_id(o.index, part)), "op {i} part {part} twice");
            }
        }
    }

    #[test]
    fn every_op_has_its_own_trace_and_every_try_its_own_span() {
        let p = plan(5, &everything());
        let traces: BTreeSet<u128> = p.iter().map(|o| o.trace).collect();
        assert_eq!(traces.len(), p.len());
        let tp = traceparent(p[0].trace, 1);
        assert_eq!(tp.len(), 55, "{tp}");
        assert!(tp.starts_with(&format!("00-{:032x}-", p[0].trace)) && tp.ends_with("-01"));
        let spans: BTreeSet<String> = (0..OP_STRIDE)
            .map(|part| traceparent(p[0].trace, part)[36..52].to_string())
            .collect();
        assert_eq!(spans.len(), OP_STRIDE as usize);
        assert!(!spans.contains("0000000000000000"));
    }

    #[test]
    fn the_rate_and_duration_are_kept() {
        let p = plan(1, &workload());
        assert!(
            (190..=210).contains(&p.len()),
            "{} ops for 2s at 100/s",
            p.len()
        );
        assert!(p.iter().all(|o| o.due_us < 2_000_000));
        assert!(p.windows(2).all(|w| w[0].due_us <= w[1].due_us));
    }

    #[test]
    fn each_op_kind_is_drawn_in_proportion_to_its_weight() {
        let w = everything();
        let p = plan(9, &w);
        let mut counts: BTreeMap<OpKind, f64> = BTreeMap::new();
        for o in &p {
            *counts.entry(o.op.kind()).or_default() += 1.0;
        }
        let n = p.len() as f64;
        assert!(n > 9_000.0, "{n} ops");
        let total = w.mix.total();
        for (kind, weight) in [
            (OpKind::Book, w.mix.book),
            (OpKind::Availability, w.mix.availability),
            (OpKind::Forged, w.mix.forged),
            (OpKind::Readiness, w.mix.readiness),
            (OpKind::Cancel, w.mix.cancel),
            (OpKind::Reschedule, w.mix.reschedule),
            (OpKind::Waitlist, w.mix.waitlist),
            (OpKind::ScheduleChange, w.mix.schedule_change),
            (OpKind::Login, w.mix.login),
        ] {
            let share = counts.get(&kind).copied().unwrap_or(0.0) / n;
            let want = weight / total;
            assert!(
                (share - want).abs() < want * 0.15,
                "{kind}: {share:.4} of the ops, weight says {want:.4}"
            );
        }
    }

    #[test]
    fn a_zero_weight_is_never_drawn_and_old_mixes_keep_their_plans() {
        let p = plan(3, &workload());
        assert!(
            p.iter()
                .all(|o| matches!(o.op.kind(), OpKind::Book | OpKind::Availability))
        );
        // The same regions of the draw as before the new kinds existed.
        assert_eq!(choose(&Mix::default().weights(), 0.69), "book");
        assert_eq!(choose(&Mix::default().weights(), 0.71), "availability");
        assert_eq!(choose(&Mix::default().weights(), 1.0), "availability");
    }

    #[test]
    fn bursts_race_distinct_clients_for_one_slot() {
        let p = plan(3, &workload());
        let first_book = p.iter().position(|o| book(o).is_some()).unwrap();
        let burst = &p[first_book..first_book + 4];
        let slot = book(&burst[0]).unwrap().0;
        assert!(
            burst
                .iter()
                .all(|o| book(o).is_some_and(|b| b.0 == slot) && o.due_us == burst[0].due_us)
        );
        let mut procs: Vec<_> = burst.iter().map(|o| o.process).collect();
        procs.dedup();
        assert_eq!(procs.len(), 4);
    }

    fn reschedule_workload(hot_slots: Option<u32>) -> Workload {
        Workload {
            mix: Mix {
                book: 1.0,
                reschedule: 1.0,
                ..Mix::default()
            },
            hot_slots,
            burst: 3,
            providers: 2,
            ..workload()
        }
    }

    #[test]
    fn a_burst_of_reschedules_moves_one_appointment_to_different_slots() {
        for hot in [None, Some(4), Some(1)] {
            let w = reschedule_workload(hot);
            let p = plan(21, &w);
            let moves: Vec<(&Planned, &Move)> = p
                .iter()
                .filter_map(|o| match &o.op {
                    PlannedOp::Reschedule(m) => Some((o, m)),
                    _ => None,
                })
                .collect();
            assert!(moves.len() >= 30, "{} reschedules", moves.len());
            for burst in moves.chunks(3) {
                let (first, m0) = burst[0];
                assert_eq!(m0.burst, first.index);
                assert!(burst.iter().enumerate().all(|(j, (o, m))| {
                    m.burst == first.index
                        && m.nth == j as u32
                        && o.process == first.process
                        && o.due_us == first.due_us
                }));
                for from in [slot_start(0, 2), slot_start(7, 2), slot_start(1000, 2)] {
                    let to: BTreeSet<Slot> = burst
                        .iter()
                        .map(|(_, m)| m.destination(from, w.providers))
                        .collect();
                    assert_eq!(to.len(), 3, "{hot:?}: {to:?} from {from:?}");
                    assert!(to.iter().all(|s| s.provider == from.provider && *s != from));
                }
            }
        }
    }

    #[test]
    fn with_hot_slots_a_reschedule_goes_to_a_hot_slot_of_its_provider() {
        let m = Move {
            burst: 0,
            nth: 0,
            hot: Some((8, 4)),
            pick: 1,
            rows: vec![500],
        };
        // Positions 8..12 over 2 providers: provider 1 has 8 and 10, provider 2 has 9 and 11.
        let from = slot_start(0, 2);
        assert_eq!(m.destination(from, 2), slot_start(10, 2));
        let from = slot_start(9, 2);
        assert_eq!(
            m.destination(from, 2),
            slot_start(11, 2),
            "never its own slot"
        );
        // A provider with no slot in the window goes to its calendar row.
        let m = Move {
            hot: Some((8, 1)),
            ..m
        };
        assert_eq!(m.destination(slot_start(1, 2), 2), slot_of(500, 2, 2));
    }

    #[test]
    fn schedule_changes_are_one_per_provider_in_turn_then_reads() {
        let w = Workload {
            mix: Mix {
                book: 1.0,
                schedule_change: 1.0,
                ..Mix::default()
            },
            providers: 5,
            hot_slots: None,
            burst: 1,
            ..workload()
        };
        let p = plan(4, &w);
        let changed: Vec<u32> = p
            .iter()
            .filter_map(|o| match o.op {
                PlannedOp::ScheduleChange { provider } => Some(provider),
                _ => None,
            })
            .collect();
        assert_eq!(changed, [1, 2, 3, 4, 5]);
        let reads = p
            .iter()
            .filter(|o| o.op.kind() == OpKind::Availability)
            .count();
        assert!(reads > 50, "later schedule-change draws read: {reads}");
    }

    #[test]
    fn waitlist_joins_go_to_the_current_hot_slots() {
        let w = Workload {
            mix: Mix {
                book: 1.0,
                waitlist: 1.0,
                ..Mix::default()
            },
            burst: 1,
            hot_slots: Some(2),
            ..workload()
        };
        let p = plan(6, &w);
        let mut last_booked: Option<Slot> = None;
        let mut joins = 0;
        for o in &p {
            match &o.op {
                PlannedOp::Book { slot, .. } => last_booked = Some(*slot),
                PlannedOp::Waitlist { slot } => {
                    joins += 1;
                    if let Some(b) = last_booked {
                        // Within the window of the latest booking burst (2 positions wide).
                        let dist = (slot.start - b.start).abs();
                        assert!(dist <= 1800, "{slot:?} far from the hot slot {b:?}");
                    }
                }
                _ => {}
            }
        }
        assert!(joins > 50, "{joins} joins");
    }

    #[test]
    fn keyed_workloads_key_every_booking_and_others_none() {
        assert!(
            plan(3, &workload())
                .iter()
                .filter_map(book)
                .all(|b| b.1.is_none() && !b.2)
        );
        let spread = Workload {
            hot_slots: None,
            burst: 1,
            ..workload()
        };
        let retry = |idempotency_key| Retry {
            attempts: 3,
            backoff: Dur::from_millis(50),
            idempotency_key,
        };
        let unkeyed = Workload {
            retry: Some(retry(false)),
            ..spread.clone()
        };
        assert!(
            plan(3, &unkeyed)
                .iter()
                .filter_map(book)
                .all(|b| b.1.is_none())
        );
        for (w, resubmits) in [
            (
                Workload {
                    resubmit: 0.5,
                    ..spread.clone()
                },
                true,
            ),
            (
                Workload {
                    retry: Some(retry(true)),
                    ..spread.clone()
                },
                false,
            ),
        ] {
            let p = plan(3, &w);
            let books: Vec<_> = p.iter().filter(|o| book(o).is_some()).collect();
            let keys: BTreeSet<String> = books
                .iter()
                .map(|o| book(o).unwrap().1.unwrap().to_string())
                .collect();
            assert_eq!(keys.len(), books.len(), "one key per booking");
            assert!(
                books
                    .iter()
                    .all(|o| book(o).unwrap().1 == Some(format!("3-{}", o.index).as_str()))
            );
            let again = books.iter().filter(|o| book(o).unwrap().2).count();
            if resubmits {
                assert!(
                    (books.len() / 4..books.len() * 3 / 4).contains(&again),
                    "{again} of {} resubmitted",
                    books.len()
                );
            } else {
                assert_eq!(again, 0);
            }
        }
    }
}
