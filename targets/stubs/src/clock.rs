//! Wall-clock time in the formats the providers speak: milliseconds since the Unix epoch for
//! the call log, RFC 2822 dates (Twilio), RFC 3339 instants (SendGrid, FHIR) and
//! `YYYY-MM-DD` dates (Twilio's `DateSent` filter).

use std::time::{SystemTime, UNIX_EPOCH};

const DAY_MS: u64 = 86_400_000;

/// Milliseconds since the Unix epoch, by this machine's clock.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The UTC day (days since 1970-01-01) of `ms`.
pub fn day_of(ms: u64) -> i64 {
    (ms / DAY_MS) as i64
}

/// `Fri, 24 May 2019 17:44:46 +0000`, the date format of Twilio's resources.
pub fn rfc2822(ms: u64) -> String {
    const WEEKDAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = day_of(ms);
    let (y, m, d) = civil_from_days(days);
    let (hh, mm, ss) = time_of_day(ms);
    format!(
        "{}, {d:02} {} {y:04} {hh:02}:{mm:02}:{ss:02} +0000",
        WEEKDAYS[days.rem_euclid(7) as usize],
        MONTHS[(m - 1) as usize],
    )
}

/// `2019-05-24T17:44:46Z`, to the second (SendGrid's `last_event_time`).
pub fn rfc3339(ms: u64) -> String {
    let (y, m, d) = civil_from_days(day_of(ms));
    let (hh, mm, ss) = time_of_day(ms);
    format!("{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}Z")
}

/// `2019-05-24T17:44:46.123Z`, to the millisecond (a FHIR `instant`).
pub fn rfc3339_ms(ms: u64) -> String {
    let s = rfc3339(ms);
    format!("{}.{:03}Z", &s[..s.len() - 1], ms % 1000)
}

/// The day of a `YYYY-MM-DD` date, if it is one.
pub fn parse_date(s: &str) -> Option<i64> {
    let mut parts = s.split('-');
    let (y, m, d) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || y.len() != 4 || m.len() != 2 || d.len() != 2 {
        return None;
    }
    let (y, m, d): (i64, u32, u32) = (y.parse().ok()?, m.parse().ok()?, d.parse().ok()?);
    if !(1..=12).contains(&m) || d == 0 {
        return None;
    }
    let days = days_from_civil(y, m, d);
    // Refuses days past the end of their month (2023-02-30) by the round trip.
    (civil_from_days(days) == (y, m, d)).then_some(days)
}

fn time_of_day(ms: u64) -> (u64, u64, u64) {
    let s = (ms % DAY_MS) / 1000;
    (s / 3600, s / 60 % 60, s % 60)
}

/// Howard Hinnant's `days_from_civil`: days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = i64::from((m + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The inverse of [`days_from_civil`].
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_a_known_instant() {
        // 2019-05-24T17:44:46.250Z, a Friday.
        let ms = 1_558_719_886_250;
        assert_eq!(rfc2822(ms), "Fri, 24 May 2019 17:44:46 +0000");
        assert_eq!(rfc3339(ms), "2019-05-24T17:44:46Z");
        assert_eq!(rfc3339_ms(ms), "2019-05-24T17:44:46.250Z");
        assert_eq!(parse_date("2019-05-24"), Some(day_of(ms)));
    }

    #[test]
    fn dates_round_trip_and_bad_ones_are_refused() {
        assert_eq!(parse_date("1970-01-01"), Some(0));
        assert_eq!(parse_date("2024-02-29"), Some(19_782));
        for bad in [
            "2023-02-29",
            "2024-13-01",
            "2024-1-01",
            "24-01-01",
            "2024-01-01x",
            "",
        ] {
            assert_eq!(parse_date(bad), None, "{bad}");
        }
        for day in [-800_000, -1, 0, 59, 60, 11_016, 19_782, 2_932_896] {
            let (y, m, d) = civil_from_days(day);
            assert_eq!(days_from_civil(y, m, d), day);
        }
    }
}
