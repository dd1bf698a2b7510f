//! Card expiry dates (DE14, YYMM) against the host's clock, in UTC.
//!
//! A card is valid through the last day of its expiry month: it is expired
//! once the current month is after it.

use std::fmt;

/// A calendar month.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct YearMonth {
    /// The full year, e.g. 2025.
    pub year: i32,
    /// 1 to 12.
    pub month: u8,
}

/// Why an expiry date could not be read.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ExpiryError {
    /// Not exactly four ASCII digits.
    NotYymm,
    /// The month is not 01 to 12.
    BadMonth(u8),
}

impl fmt::Display for ExpiryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExpiryError::NotYymm => f.write_str("not four digits YYMM"),
            ExpiryError::BadMonth(m) => write!(f, "month {m:02} is not 01 to 12"),
        }
    }
}

impl std::error::Error for ExpiryError {}

/// Reads a YYMM expiry date. Two-digit years are in 2000–2099.
pub fn parse_yymm(yymm: &[u8]) -> Result<YearMonth, ExpiryError> {
    let [y1, y2, m1, m2] = *yymm else {
        return Err(ExpiryError::NotYymm);
    };
    if ![y1, y2, m1, m2].iter().all(u8::is_ascii_digit) {
        return Err(ExpiryError::NotYymm);
    }
    let year = 2000 + i32::from((y1 - b'0') * 10 + (y2 - b'0'));
    let month = (m1 - b'0') * 10 + (m2 - b'0');
    if !(1..=12).contains(&month) {
        return Err(ExpiryError::BadMonth(month));
    }
    Ok(YearMonth { year, month })
}

/// The UTC calendar month of a Unix time in milliseconds.
pub fn year_month_utc(unix_millis: i64) -> YearMonth {
    let days = unix_millis.div_euclid(86_400_000);
    // Civil-from-days (H. Hinnant), proleptic Gregorian calendar.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    YearMonth {
        year: year as i32,
        month: month as u8,
    }
}

/// Whether a card with expiry date `yymm` is expired at `now_unix_millis`
/// (UTC): its month is before the current month.
pub fn is_expired(yymm: &[u8], now_unix_millis: i64) -> Result<bool, ExpiryError> {
    Ok(parse_yymm(yymm)? < year_month_utc(now_unix_millis))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2025-06-15T12:00:00Z.
    const JUNE_2025: i64 = 1_749_988_800_000;

    #[test]
    fn utc_months_from_unix_millis() {
        let ym = |year, month| YearMonth { year, month };
        assert_eq!(year_month_utc(0), ym(1970, 1));
        assert_eq!(year_month_utc(JUNE_2025), ym(2025, 6));
        // 2024-02-29T23:59:59.999Z, then 2024-03-01T00:00:00Z.
        assert_eq!(year_month_utc(1_709_251_199_999), ym(2024, 2));
        assert_eq!(year_month_utc(1_709_251_200_000), ym(2024, 3));
        // 2025-12-31T23:59:59.999Z, then 2026-01-01T00:00:00Z.
        assert_eq!(year_month_utc(1_767_225_599_999), ym(2025, 12));
        assert_eq!(year_month_utc(1_767_225_600_000), ym(2026, 1));
        assert_eq!(year_month_utc(-1), ym(1969, 12));
    }

    #[test]
    fn yymm_is_read_into_the_2000s() {
        assert_eq!(
            parse_yymm(b"2506"),
            Ok(YearMonth {
                year: 2025,
                month: 6
            })
        );
        assert_eq!(
            parse_yymm(b"9912"),
            Ok(YearMonth {
                year: 2099,
                month: 12
            })
        );
        assert_eq!(
            parse_yymm(b"0001"),
            Ok(YearMonth {
                year: 2000,
                month: 1
            })
        );
    }

    #[test]
    fn malformed_yymm_is_an_error() {
        assert_eq!(parse_yymm(b"250"), Err(ExpiryError::NotYymm));
        assert_eq!(parse_yymm(b"25061"), Err(ExpiryError::NotYymm));
        assert_eq!(parse_yymm(b"25A6"), Err(ExpiryError::NotYymm));
        assert_eq!(parse_yymm(b"2500"), Err(ExpiryError::BadMonth(0)));
        assert_eq!(parse_yymm(b"2513"), Err(ExpiryError::BadMonth(13)));
    }

    #[test]
    fn a_card_is_valid_through_its_expiry_month() {
        assert_eq!(is_expired(b"2505", JUNE_2025), Ok(true));
        assert_eq!(is_expired(b"2412", JUNE_2025), Ok(true));
        assert_eq!(is_expired(b"2506", JUNE_2025), Ok(false));
        assert_eq!(is_expired(b"2507", JUNE_2025), Ok(false));
        assert_eq!(is_expired(b"3001", JUNE_2025), Ok(false));
        assert_eq!(
            is_expired(b"2513", JUNE_2025),
            Err(ExpiryError::BadMonth(13))
        );
    }
}
