//! The availability model: weekly schedule templates turned into concrete slots (seed 002).

/// Seconds in a day; slot starts are Unix seconds in UTC.
pub const DAY: i64 = 86_400;
/// The default template: Monday to Friday, 09:00 to 17:00, 30-minute slots.
pub const DEFAULT_START_MINUTE: i32 = 9 * 60;
pub const DEFAULT_END_MINUTE: i32 = 17 * 60;
pub const DEFAULT_SLOT_MINUTES: i32 = 30;

/// Monday = 0 .. Sunday = 6 of the day containing `t` (1970-01-01 was a Thursday).
pub fn weekday(t: i64) -> i32 {
    ((t.div_euclid(DAY) + 3).rem_euclid(7)) as i32
}

/// One provider's template for one weekday.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Template {
    pub weekday: i32,
    pub start_minute: i32,
    pub end_minute: i32,
    pub slot_minutes: i32,
}

impl Template {
    /// The slot starts this template yields on the day that starts at `day_start`.
    pub fn slots_on(&self, day_start: i64) -> impl Iterator<Item = i64> + '_ {
        let step = i64::from(self.slot_minutes) * 60;
        let first = day_start + i64::from(self.start_minute) * 60;
        let end = day_start + i64::from(self.end_minute) * 60;
        (0..)
            .map(move |i| first + i * step)
            .take_while(move |&s| s + step <= end)
    }

    /// Whether `t` is the start of a slot of this template.
    pub fn has_slot(&self, t: i64) -> bool {
        weekday(t) == self.weekday && self.slots_on(t - t.rem_euclid(DAY)).any(|s| s == t)
    }
}

/// Parse `YYYY-MM-DD` to the Unix second at which that UTC day starts.
pub fn parse_date(s: &str) -> Option<i64> {
    let mut it = s.splitn(3, '-');
    let y: i64 = it.next()?.parse().ok()?;
    let m: i64 = it.next()?.parse().ok()?;
    let d: i64 = it.next()?.parse().ok()?;
    if s.len() != 10
        || !(1..=12).contains(&m)
        || !(1..=31).contains(&d)
        || !(1970..=9999).contains(&y)
    {
        return None;
    }
    // Days from civil (H. Hinnant's algorithm).
    let y2 = if m <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let t = days * DAY;
    // Reject dates like 2030-02-31 by round-tripping the day of month.
    (format_date(t) == s).then_some(t)
}

/// Format the UTC day containing `t` as `YYYY-MM-DD`.
pub fn format_date(t: i64) -> String {
    let z = t.div_euclid(DAY) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

/// RFC 3339 (UTC, whole seconds) of `t`, as FHIR wants its instants.
pub fn format_rfc3339(t: i64) -> String {
    let s = t.rem_euclid(DAY);
    format!(
        "{}T{:02}:{:02}:{:02}Z",
        format_date(t),
        s / 3600,
        s % 3600 / 60,
        s % 60
    )
}

/// `YYYY-MM-DD HH:MM` (UTC) of `t`.
pub fn format_minute(t: i64) -> String {
    let s = t.rem_euclid(DAY);
    format!("{} {:02}:{:02}", format_date(t), s / 3600, s % 3600 / 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_round_trip_and_weekdays_are_right() {
        let t = parse_date("2030-01-07").unwrap();
        assert_eq!(format_date(t), "2030-01-07");
        assert_eq!(weekday(t), 0, "2030-01-07 is a Monday");
        assert_eq!(parse_date("2030-02-31"), None);
        assert_eq!(parse_date("2030-1-7"), None);
        assert_eq!(parse_date("garbage"), None);
    }

    #[test]
    fn a_template_yields_sixteen_half_hour_slots() {
        let day = parse_date("2030-01-07").unwrap();
        let t = Template {
            weekday: 0,
            start_minute: 540,
            end_minute: 1020,
            slot_minutes: 30,
        };
        let slots: Vec<_> = t.slots_on(day).collect();
        assert_eq!(slots.len(), 16);
        assert!(t.has_slot(slots[3]));
        assert!(!t.has_slot(slots[3] + 60));
        assert!(!t.has_slot(slots[3] + DAY), "Tuesday is another template");
    }
}
