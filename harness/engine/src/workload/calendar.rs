//! The calendar the workload books into: MediConnect's default template (Monday to Friday,
//! 09:00-17:00 UTC, 30-minute slots), enumerated from a fixed Monday so runs repeat.

use chaos_model::Slot;

pub const DAY: i64 = 86_400;
/// 2030-01-07 00:00 UTC, a Monday.
pub const BASE_MONDAY: i64 = 1_893_974_400;
pub const SLOTS_PER_DAY: u64 = 16;
const FIRST_SLOT: i64 = 9 * 3600;
const SLOT_SECS: i64 = 1800;

/// The k-th slot of the calendar: providers interleaved, then slots of a day, then weekdays.
pub fn slot_start(k: u64, providers: u32) -> Slot {
    let p = u64::from(providers.max(1));
    let provider = (k % p) as u32 + 1;
    let r = k / p;
    let slot_of_day = (r % SLOTS_PER_DAY) as i64;
    let d = (r / SLOTS_PER_DAY) as i64;
    let (week, weekday) = (d / 5, d % 5);
    let start = BASE_MONDAY + (week * 7 + weekday) * DAY + FIRST_SLOT + slot_of_day * SLOT_SECS;
    Slot { provider, start }
}

/// The k-th slot of `provider`'s own calendar (slots of a day, then weekdays): the slot at
/// calendar position `row * providers + provider - 1` of [`slot_start`].
pub fn slot_of(row: u64, provider: u32, providers: u32) -> Slot {
    let p = u64::from(providers.max(1));
    let provider = u64::from(provider.clamp(1, providers.max(1)));
    slot_start(row * p + provider - 1, providers)
}

/// The narrow hours a clinic's schedule change sets, `[start, end)` in minutes of the UTC day
/// (10:00-16:00), Monday to Friday, in slots of [`NARROW_SLOT_MINUTES`].
pub const NARROW_HOURS: [u32; 2] = [600, 960];
pub const NARROW_SLOT_MINUTES: u32 = 30;

pub use chaos_model::calendar::format_date;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_base_is_a_monday_in_2030() {
        assert_eq!(format_date(BASE_MONDAY), "2030-01-07");
        assert_eq!((BASE_MONDAY / DAY + 3) % 7, 0);
    }

    #[test]
    fn slots_skip_weekends_and_stay_in_office_hours() {
        for k in (0..5_000).step_by(7) {
            let s = slot_start(k, 3);
            let day = s.start.div_euclid(DAY);
            assert!((day + 3) % 7 < 5, "slot {k} on a weekend");
            let secs = s.start - day * DAY;
            assert!(
                (9 * 3600..17 * 3600).contains(&secs),
                "slot {k} outside hours"
            );
            assert!((1..=3).contains(&s.provider));
        }
        assert_ne!(slot_start(0, 3), slot_start(3, 3));
        assert_eq!(format_date(slot_start(3 * 16 * 5, 3).start), "2030-01-14");
    }

    #[test]
    fn a_providers_own_calendar_is_its_share_of_the_interleaved_one() {
        for row in 0..200 {
            for provider in 1..=3 {
                let s = slot_of(row, provider, 3);
                assert_eq!(s.provider, provider);
                assert_eq!(s.start, slot_start(row * 3, 3).start);
            }
        }
    }
}
