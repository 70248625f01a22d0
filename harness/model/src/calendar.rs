//! Civil dates from Unix seconds (UTC), for slot dates and run directory names.

const DAY: i64 = 86_400;

/// (year, month, day) of the UTC day containing `t` (H. Hinnant's civil-from-days).
pub fn civil(t: i64) -> (i64, i64, i64) {
    let z = t.div_euclid(DAY) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// `YYYY-MM-DD` of the UTC day containing `t`.
pub fn format_date(t: i64) -> String {
    let (y, m, d) = civil(t);
    format!("{y:04}-{m:02}-{d:02}")
}

/// `YYYYMMDDTHHMMSSZ`, a sortable UTC stamp for directory names.
pub fn utc_stamp(t: i64) -> String {
    let (y, m, d) = civil(t);
    let s = t.rem_euclid(DAY);
    format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z",
        s / 3600,
        s % 3600 / 60,
        s % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_dates() {
        assert_eq!(format_date(0), "1970-01-01");
        assert_eq!(format_date(1_893_974_400), "2030-01-07");
        assert_eq!(format_date(951_782_400), "2000-02-29");
        assert_eq!(utc_stamp(1_893_974_400 + 3661), "20300107T010101Z");
    }
}
