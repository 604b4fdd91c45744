//! `Day`: a UTC calendar day, the unit of usage metering and daily token quotas.
//!
//! Written and parsed as `YYYY-MM-DD`, which sorts as text in date order, so stores can
//! keep it as a string and compare ranges on any backend.

use std::fmt;

/// A UTC day, counted from 1970-01-01.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Day(i64);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{0}' is not a date of the form YYYY-MM-DD")]
pub struct DayError(String);

const SECONDS_PER_DAY: i64 = 86_400;

impl Day {
    /// The day holding the Unix time `seconds`.
    pub fn from_unix(seconds: i64) -> Self {
        Self(seconds.div_euclid(SECONDS_PER_DAY))
    }

    /// Today, in UTC.
    pub fn today() -> Self {
        Self::from_unix(crate::unix_now())
    }

    /// Unix time of the first second of the next day: when daily quotas reset.
    pub fn next_midnight_unix(self) -> i64 {
        (self.0 + 1) * SECONDS_PER_DAY
    }

    /// Year, month (1–12) and day of month (1–31), by Howard Hinnant's
    /// `civil_from_days` (proleptic Gregorian calendar).
    fn civil(self) -> (i64, u32, u32) {
        let z = self.0 + 719_468;
        let era = z.div_euclid(146_097);
        let day_of_era = z.rem_euclid(146_097);
        let year_of_era =
            (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
        let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
        let mp = (5 * day_of_year + 2) / 153;
        let day = (day_of_year - (153 * mp + 2) / 5 + 1) as u32;
        let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
        let year = year_of_era + era * 400 + i64::from(month <= 2);
        (year, month, day)
    }

    /// The inverse of [`Day::civil`] (Hinnant's `days_from_civil`).
    fn from_civil(year: i64, month: u32, day: u32) -> Self {
        let year = year - i64::from(month <= 2);
        let era = year.div_euclid(400);
        let year_of_era = year.rem_euclid(400);
        let month = i64::from(month);
        let day_of_year =
            (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + i64::from(day) - 1;
        let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
        Self(era * 146_097 + day_of_era - 719_468)
    }
}

impl fmt::Display for Day {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (year, month, day) = self.civil();
        write!(f, "{year:04}-{month:02}-{day:02}")
    }
}

impl std::str::FromStr for Day {
    type Err = DayError;

    fn from_str(text: &str) -> Result<Self, DayError> {
        let error = || DayError(text.chars().take(32).collect());
        let bytes = text.as_bytes();
        if bytes.len() != 10 || bytes[4] != b'-' || bytes[7] != b'-' {
            return Err(error());
        }
        let number = |range: std::ops::Range<usize>| -> Result<u32, DayError> {
            let part = &text[range];
            if !part.bytes().all(|b| b.is_ascii_digit()) {
                return Err(error());
            }
            part.parse().map_err(|_| error())
        };
        let (year, month, day) = (number(0..4)?, number(5..7)?, number(8..10)?);
        if !(1..=12).contains(&month) || day == 0 {
            return Err(error());
        }
        let parsed = Self::from_civil(i64::from(year), month, day);
        // Rejects days past the end of the month (2026-02-30) by the round trip.
        if parsed.civil() != (i64::from(year), month, day) {
            return Err(error());
        }
        Ok(parsed)
    }
}

impl TryFrom<String> for Day {
    type Error = DayError;

    fn try_from(text: String) -> Result<Self, DayError> {
        text.parse()
    }
}

impl serde::Serialize for Day {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Day {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_print_and_parse() {
        let check = |unix: i64, text: &str| {
            let day = Day::from_unix(unix);
            assert_eq!(day.to_string(), text, "{unix}");
            assert_eq!(text.parse::<Day>(), Ok(day), "{text}");
        };
        check(0, "1970-01-01");
        check(86_399, "1970-01-01");
        check(86_400, "1970-01-02");
        check(-1, "1969-12-31");
        check(951_782_400, "2000-02-29");
        check(1_709_164_800, "2024-02-29");
        check(1_798_675_200, "2026-12-31");
        assert_eq!(Day::from_unix(86_399).next_midnight_unix(), 86_400);
    }

    #[test]
    fn malformed_days_are_refused() {
        for text in [
            "",
            "2026-1-01",
            "2026-13-01",
            "2026-02-30",
            "2026-00-10",
            "2026-01-00",
            "20260101",
            "2026/01/01",
            "+026-01-01",
            "2026-01-01x",
        ] {
            assert!(text.parse::<Day>().is_err(), "{text}");
        }
    }
}
