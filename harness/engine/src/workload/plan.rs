//! The plan: every op of a run, with its due time and client, drawn from one seed. Pure, so
//! the same seed and workload always give the same plan.

use chaos_model::{OpKind, Slot, Workload};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::calendar::{SLOTS_PER_DAY, slot_start};

/// One op to send.
#[derive(Debug, Clone, PartialEq)]
pub struct Planned {
    pub due_us: u64,
    pub process: u32,
    pub f: OpKind,
    /// The slot a booking asks for; for availability, the provider and day to list.
    pub slot: Slot,
    /// The booking's `Idempotency-Key`, when the workload resubmits.
    pub key: Option<String>,
    /// Send the booking again with the same key once it is answered.
    pub resubmit: bool,
}

/// Weeks of calendar that spread-out bookings and availability reads draw from.
const WEEKS: u64 = 52;

pub fn plan(seed: u64, w: &Workload) -> Vec<Planned> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let interval_us = 1e6 / w.rate;
    let end_us = w.duration.as_micros() as f64;
    let total_weight = w.mix.total();
    let calendar = u64::from(w.providers) * SLOTS_PER_DAY * 5 * WEEKS;
    let mut out = Vec::new();
    let mut t = 0.0f64;
    let mut next_process = 0u32;
    let mut bursts = 0u64;
    let mut take_process = || {
        let p = next_process;
        next_process = (next_process + 1) % w.clients;
        p
    };
    while t < end_us {
        let due_us = t as u64;
        let pick = rng.random::<f64>() * total_weight;
        if pick < w.mix.book {
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
                let key = (w.resubmit > 0.0).then(|| format!("{seed:x}-{}", out.len()));
                out.push(Planned {
                    due_us,
                    process: take_process(),
                    f: OpKind::Book,
                    slot,
                    key,
                    resubmit,
                });
            }
            t += interval_us * f64::from(w.burst);
        } else {
            let f = if pick < w.mix.book + w.mix.availability {
                OpKind::Availability
            } else if pick < w.mix.book + w.mix.availability + w.mix.forged {
                OpKind::Forged
            } else if pick < w.mix.book + w.mix.availability + w.mix.forged + w.mix.readiness {
                OpKind::Readiness
            } else {
                OpKind::Cancel
            };
            let k = rng.random_range(0..calendar);
            let slot = slot_start(k, w.providers);
            out.push(Planned {
                due_us,
                process: take_process(),
                f,
                slot,
                key: None,
                resubmit: false,
            });
            t += interval_us;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use chaos_model::{Dur, Mix};

    fn workload() -> Workload {
        Workload {
            duration: Dur::from_secs(2),
            rate: 100.0,
            clients: 10,
            mix: Mix {
                book: 1.0,
                availability: 1.0,
                forged: 0.0,
                readiness: 0.0,
                cancel: 0.0,
            },
            providers: 3,
            hot_slots: Some(2),
            burst: 4,
            op_timeout: Dur::from_secs(1),
            resubmit: 0.0,
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_plan_and_another_seed_another() {
        let w = workload();
        assert_eq!(plan(7, &w), plan(7, &w));
        assert_ne!(plan(7, &w), plan(8, &w));
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
    fn bursts_race_distinct_clients_for_one_slot() {
        let p = plan(3, &workload());
        let first_book = p.iter().position(|o| o.f == OpKind::Book).unwrap();
        let burst = &p[first_book..first_book + 4];
        assert!(burst.iter().all(|o| o.f == OpKind::Book
            && o.slot == burst[0].slot
            && o.due_us == burst[0].due_us));
        let mut procs: Vec<_> = burst.iter().map(|o| o.process).collect();
        procs.dedup();
        assert_eq!(procs.len(), 4);
    }

    #[test]
    fn resubmitting_workloads_key_every_booking_and_others_none() {
        assert!(
            plan(3, &workload())
                .iter()
                .all(|o| o.key.is_none() && !o.resubmit)
        );
        let w = Workload {
            resubmit: 0.5,
            hot_slots: None,
            burst: 1,
            ..workload()
        };
        let p = plan(3, &w);
        let books: Vec<_> = p.iter().filter(|o| o.f == OpKind::Book).collect();
        let mut keys: Vec<_> = books.iter().map(|o| o.key.clone().unwrap()).collect();
        keys.sort();
        keys.dedup();
        assert_eq!(keys.len(), books.len(), "one key per booking");
        let again = books.iter().filter(|o| o.resubmit).count();
        assert!(
            (books.len() / 4..books.len() * 3 / 4).contains(&again),
            "{again} of {} resubmitted",
            books.len()
        );
        assert!(
            p.iter()
                .filter(|o| o.f != OpKind::Book)
                .all(|o| o.key.is_none())
        );
    }
}
