//! UTC calendar time to the second, and the ISO 8583 date and time
//! fields made from it (DE7, DE12, DE13, expiry dates).

use std::time::{SystemTime, UNIX_EPOCH};

/// UTC calendar time, to the second.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UtcTime {
    /// Year, e.g. 2026.
    pub year: i64,
    /// 1..=12.
    pub month: u32,
    /// 1..=31.
    pub day: u32,
    /// 0..=23.
    pub hour: u32,
    /// 0..=59.
    pub minute: u32,
    /// 0..=59.
    pub second: u32,
}

impl UtcTime {
    /// Now.
    pub fn now() -> UtcTime {
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        UtcTime::from_unix(secs)
    }

    /// From seconds since the Unix epoch (proleptic Gregorian calendar).
    pub fn from_unix(secs: i64) -> UtcTime {
        let days = secs.div_euclid(86_400);
        let rem = secs.rem_euclid(86_400) as u32;
        // Howard Hinnant's civil-from-days.
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
        let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
        let year = yoe + era * 400 + i64::from(month <= 2);
        UtcTime {
            year,
            month,
            day,
            hour: rem / 3600,
            minute: rem / 60 % 60,
            second: rem % 60,
        }
    }

    /// DE7, transmission date and time: MMDDhhmmss.
    pub fn de7(&self) -> String {
        format!(
            "{:02}{:02}{:02}{:02}{:02}",
            self.month, self.day, self.hour, self.minute, self.second
        )
    }

    /// DE12, local time: hhmmss.
    pub fn de12(&self) -> String {
        format!("{:02}{:02}{:02}", self.hour, self.minute, self.second)
    }

    /// DE12 of ISO 8583:1993, local date and time: YYMMDDhhmmss.
    pub fn de12_93(&self) -> String {
        format!(
            "{:02}{:02}{:02}{}",
            self.year % 100,
            self.month,
            self.day,
            self.de12()
        )
    }

    /// DE13, local date: MMDD.
    pub fn de13(&self) -> String {
        format!("{:02}{:02}", self.month, self.day)
    }

    /// YYMM, `months` months from now (negative: in the past).
    pub fn yymm_plus(&self, months: i64) -> String {
        let total = self.year * 12 + i64::from(self.month) - 1 + months;
        format!(
            "{:02}{:02}",
            total.div_euclid(12) % 100,
            total.rem_euclid(12) + 1
        )
    }
}
