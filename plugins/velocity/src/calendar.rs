//! Calendar periods (UTC) from the wall clock, for `window=day` and
//! `window=month`: the period goes into the counter key, so the counter's
//! sum is the period's total.

/// Milliseconds in a day.
const DAY_MILLIS: i64 = 86_400_000;

/// The civil date (year, month 1–12, day 1–31) of a day number counted
/// from 1970-01-01 (proleptic Gregorian; Howard Hinnant's
/// `civil_from_days`).
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // [0, 146096]
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11], March first
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32; // [1, 31]
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32; // [1, 12]
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// The UTC date of a wall-clock time.
fn date(unix_millis: i64) -> (i64, u32, u32) {
    civil_from_days(unix_millis.div_euclid(DAY_MILLIS))
}

/// The UTC day of a wall-clock time: `YYYY-MM-DD`.
pub fn day(unix_millis: i64) -> String {
    let (y, m, d) = date(unix_millis);
    format!("{y:04}-{m:02}-{d:02}")
}

/// The UTC month of a wall-clock time: `YYYY-MM`.
pub fn month(unix_millis: i64) -> String {
    let (y, m, _) = date(unix_millis);
    format!("{y:04}-{m:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(11_017), (2000, 3, 1));
        assert_eq!(civil_from_days(20_423), (2025, 12, 1));
        assert_eq!(civil_from_days(-719_468), (0, 3, 1));
    }

    #[test]
    fn days_follow_each_other_without_gaps() {
        // 1900-03-01 to 2200-01-01: each day is the day after the previous.
        let mut previous = civil_from_days(-25_508);
        assert_eq!(previous, (1900, 3, 1));
        for days in -25_507..84_006 {
            let (y, m, d) = civil_from_days(days);
            let (py, pm, pd) = previous;
            let next_day = y == py && m == pm && d == pd + 1;
            let next_month = y == py && m == pm + 1 && d == 1;
            let next_year = y == py + 1 && m == 1 && pm == 12 && d == 1;
            assert!(
                next_day || next_month || next_year,
                "{previous:?} → {:?}",
                (y, m, d)
            );
            let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
            let days_in_month = match m {
                2 if leap => 29,
                2 => 28,
                4 | 6 | 9 | 11 => 30,
                _ => 31,
            };
            assert!(d <= days_in_month);
            previous = (y, m, d);
        }
        assert_eq!(previous, (2199, 12, 31));
    }

    #[test]
    fn periods_of_the_wall_clock() {
        // 2025-06-15T12:00:00Z.
        assert_eq!(day(1_749_988_800_000), "2025-06-15");
        assert_eq!(month(1_749_988_800_000), "2025-06");
        // The last millisecond of 2026-12-31 and the first of 2027.
        assert_eq!(day(1_798_761_599_999), "2026-12-31");
        assert_eq!(day(1_798_761_600_000), "2027-01-01");
        assert_eq!(month(1_798_761_600_000), "2027-01");
        assert_eq!(day(-1), "1969-12-31");
    }
}
