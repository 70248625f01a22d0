//! `Dur`: a duration written the way people write them in scenario files ("250ms", "20s", "2m").

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A non-negative duration parsed from and printed as `<integer><unit>` with unit one of
/// `us`, `ms`, `s`, `m`, `h`. Scenario files never carry bare numbers for time: a bare
/// number is a mistake that names no unit, so it is rejected. A duration longer than
/// [`Dur::MAX`] (a year) is rejected too: no scenario means it, and sums of durations
/// (a workload, its quiesce, its timeout) then never overflow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Dur(pub Duration);

impl Dur {
    pub const ZERO: Dur = Dur(Duration::ZERO);
    /// The longest duration a scenario may write: 8760h, a year.
    pub const MAX: Dur = Dur(Duration::from_secs(8760 * 3600));

    pub fn from_millis(ms: u64) -> Dur {
        Dur(Duration::from_millis(ms))
    }

    pub fn from_secs(s: u64) -> Dur {
        Dur(Duration::from_secs(s))
    }

    pub fn as_micros(self) -> u64 {
        u64::try_from(self.0.as_micros()).unwrap_or(u64::MAX)
    }
}

impl FromStr for Dur {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let expected = || format!("expected a duration like \"250ms\" or \"20s\", found {s:?}");
        let t = s.trim();
        let split = t.find(|c: char| !c.is_ascii_digit()).ok_or_else(expected)?;
        let (digits, unit) = t.split_at(split);
        let n: u64 = digits.parse().map_err(|_| expected())?;
        let d = match unit {
            "us" | "µs" => Duration::from_micros(n),
            "ms" => Duration::from_millis(n),
            "s" => Duration::from_secs(n),
            "m" => Duration::from_secs(n.checked_mul(60).ok_or_else(expected)?),
            "h" => Duration::from_secs(n.checked_mul(3600).ok_or_else(expected)?),
            _ => return Err(expected()),
        };
        if d > Dur::MAX.0 {
            return Err(format!(
                "{s:?} is longer than {} (a year), the longest duration a scenario may write",
                Dur::MAX
            ));
        }
        Ok(Dur(d))
    }
}

impl fmt::Display for Dur {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let us = self.0.as_micros();
        if us == 0 {
            write!(f, "0s")
        } else if us.is_multiple_of(3_600_000_000) {
            write!(f, "{}h", us / 3_600_000_000)
        } else if us.is_multiple_of(60_000_000) {
            write!(f, "{}m", us / 60_000_000)
        } else if us.is_multiple_of(1_000_000) {
            write!(f, "{}s", us / 1_000_000)
        } else if us.is_multiple_of(1_000) {
            write!(f, "{}ms", us / 1_000)
        } else {
            write!(f, "{us}us")
        }
    }
}

impl Serialize for Dur {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Dur;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                write!(f, "a duration like \"250ms\" or \"20s\"")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Dur, E> {
                v.parse().map_err(E::custom)
            }
        }
        d.deserialize_str(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_each_unit() {
        for (text, micros) in [
            ("250ms", 250_000),
            ("20s", 20_000_000),
            ("2m", 120_000_000),
            ("1h", 3_600_000_000),
            ("15us", 15),
            ("0s", 0),
        ] {
            let d: Dur = text.parse().unwrap();
            assert_eq!(d.as_micros(), micros, "{text}");
            assert_eq!(d.to_string(), text);
        }
    }

    #[test]
    fn rejects_bare_numbers_and_unknown_units() {
        for bad in ["20", "s", "1.5s", "3 days", "-1s", ""] {
            let err = bad.parse::<Dur>().unwrap_err();
            assert!(err.contains("expected a duration"), "{bad}: {err}");
        }
    }

    #[test]
    fn rejects_durations_longer_than_a_year_so_sums_cannot_overflow() {
        assert_eq!("8760h".parse::<Dur>().unwrap(), Dur::MAX);
        for long in ["8761h", "18446744073709551615s", "525601m"] {
            let err = long.parse::<Dur>().unwrap_err();
            assert!(err.contains("longer than 8760h"), "{long}: {err}");
        }
        // The sum validation makes of a workload, its quiesce and a minute stays in range.
        let _ = Dur::MAX.0 + Dur::MAX.0 + Duration::from_secs(60);
    }
}
