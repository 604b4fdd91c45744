//! Calendar dates (`YYYY-MM-DD`, proleptic Gregorian, UTC) such as a licence's expiry.

use std::fmt;

/// A valid calendar date; serialised as `YYYY-MM-DD`. Ordered chronologically.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(try_from = "String", into = "String")]
pub struct Date {
    /// Days since 1970-01-01; the field order makes the derived ordering chronological.
    days: i64,
}

/// Why a date was refused; the message is shown to users as is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{0}' is not a date; write it as YYYY-MM-DD, e.g. 2027-12-31")]
pub struct DateError(String);

impl Date {
    /// The date of `days` since 1970-01-01.
    pub fn from_days(days: i64) -> Date {
        Date { days }
    }

    /// Today in UTC.
    pub fn today() -> Date {
        Date::from_days(crate::unix_now().div_euclid(86_400))
    }

    pub fn days_since_epoch(&self) -> i64 {
        self.days
    }

    /// Year, month (1–12) and day (1–31).
    pub fn ymd(&self) -> (i64, u32, u32) {
        civil_from_days(self.days)
    }
}

impl TryFrom<&str> for Date {
    type Error = DateError;
    fn try_from(text: &str) -> Result<Date, DateError> {
        let error = || DateError(text.chars().take(40).collect());
        let bytes = text.as_bytes();
        let digits = |range: std::ops::Range<usize>| -> Option<i64> {
            let part = text.get(range)?;
            part.bytes()
                .all(|b| b.is_ascii_digit())
                .then(|| part.parse().ok())?
        };
        if bytes.len() != 10 || bytes[4] != b'-' || bytes[7] != b'-' {
            return Err(error());
        }
        let (year, month, day) = match (digits(0..4), digits(5..7), digits(8..10)) {
            (Some(y), Some(m), Some(d)) => (y, m as u32, d as u32),
            _ => return Err(error()),
        };
        if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
            return Err(error());
        }
        Ok(Date::from_days(days_from_civil(year, month, day)))
    }
}

impl TryFrom<String> for Date {
    type Error = DateError;
    fn try_from(text: String) -> Result<Date, DateError> {
        Date::try_from(text.as_str())
    }
}

impl std::str::FromStr for Date {
    type Err = DateError;
    fn from_str(text: &str) -> Result<Date, DateError> {
        Date::try_from(text)
    }
}

impl From<Date> for String {
    fn from(date: Date) -> String {
        date.to_string()
    }
}

impl fmt::Display for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (year, month, day) = self.ymd();
        write!(f, "{year:04}-{month:02}-{day:02}")
    }
}

fn is_leap(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Howard Hinnant's `days_from_civil`: days since 1970-01-01 of a Gregorian date.
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month = i64::from(month);
    let day_of_year =
        (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The inverse of [`days_from_civil`].
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_parse_print_and_order() {
        let check = |text: &str, days: Option<i64>| {
            let parsed = Date::try_from(text).ok();
            assert_eq!(parsed.map(|d| d.days_since_epoch()), days, "{text}");
            if let Some(date) = parsed {
                assert_eq!(date.to_string(), text);
            }
        };
        check("1970-01-01", Some(0));
        check("1969-12-31", Some(-1));
        check("2000-02-29", Some(11_016));
        check("2024-03-01", Some(19_783));
        check("2100-02-29", None);
        check("2023-02-29", None);
        check("2023-13-01", None);
        check("2023-00-10", None);
        check("2023-1-10", None);
        check("2023-01-1x", None);
        check("+023-01-10", None);
        check("", None);
        assert!(Date::try_from("2026-01-01").unwrap() < Date::try_from("2026-01-02").unwrap());
        let json: Date = serde_json::from_str("\"2027-12-31\"").unwrap();
        assert_eq!(serde_json::to_string(&json).unwrap(), "\"2027-12-31\"");
        assert!(serde_json::from_str::<Date>("\"31/12/2027\"").is_err());
    }

    #[test]
    fn every_day_round_trips() {
        for days in -800_000..800_000 {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
    }
}
