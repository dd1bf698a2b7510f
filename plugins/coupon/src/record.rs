//! The kv value of a coupon: a contract shared with the operator's CLI
//! (`switchyard coupons issue` / `list`), which writes and reads the same
//! keys. Pure functions over text: no SDK types.
//!
//! Key `coupon:<PAN>` ([`coupon_key`]); value, ASCII, five fields separated
//! by single spaces:
//!
//! ```text
//! v1 <PAN> <value> <expires> <state>
//! ```
//!
//! - `v1`: the format's version;
//! - `<PAN>`: the coupon's card number, 12 to 19 digits (inside the
//!   encrypted value so that the CLI can list coupons; the key is hashed);
//! - `<value>`: what it approves, in minor units of the plugin's currency,
//!   decimal digits (64 bits);
//! - `<expires>`: the last day it can be redeemed, `YYYY-MM-DD` (UTC);
//! - `<state>`: `open`, or `redeemed:<TRANLOG_ID>` naming the transaction
//!   that redeemed it (`redeemed:-` when the switch runs without a tranlog,
//!   see [`redemption_token`]). A token is one or more printable ASCII
//!   characters other than space.
//!
//! No key: no such coupon.

use std::fmt;

/// The prefix of a coupon's kv key.
pub const KEY_PREFIX: &str = "coupon:";

/// The first field of a value.
pub const VERSION: &str = "v1";

/// The token of a redemption by a switch without a tranlog.
pub const NO_TRANLOG: &str = "-";

/// The kv key of a coupon: `coupon:<PAN>`. The host hashes keys.
pub fn coupon_key(pan: &str) -> String {
    format!("{KEY_PREFIX}{pan}")
}

/// The token a redemption records: the transaction's `TRANLOG_ID`, or
/// [`NO_TRANLOG`] when it is empty.
pub fn redemption_token(tranlog_id: &str) -> &str {
    if tranlog_id.is_empty() {
        NO_TRANLOG
    } else {
        tranlog_id
    }
}

/// Whether `token` can be kept in a value: one or more printable ASCII
/// characters, no space.
pub fn is_valid_token(token: &str) -> bool {
    !token.is_empty() && token.bytes().all(|c| c.is_ascii_graphic())
}

/// A calendar day (proleptic Gregorian, UTC), ordered by time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Date {
    /// The year.
    pub year: i32,
    /// 1 to 12.
    pub month: u8,
    /// 1 to the last day of the month.
    pub day: u8,
}

impl Date {
    /// Reads `YYYY-MM-DD`: four-digit year, a real day of that month.
    pub fn parse(text: &str) -> Option<Date> {
        let b = text.as_bytes();
        if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
            return None;
        }
        let number = |range: std::ops::Range<usize>| -> Option<u32> {
            let digits = &b[range];
            digits
                .iter()
                .all(u8::is_ascii_digit)
                .then(|| digits.iter().fold(0, |n, &c| n * 10 + u32::from(c - b'0')))
        };
        let year = i32::try_from(number(0..4)?).ok()?;
        let month = u8::try_from(number(5..7)?).ok()?;
        let day = u8::try_from(number(8..10)?).ok()?;
        if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
            return None;
        }
        Some(Date { year, month, day })
    }

    /// The UTC day of a Unix time in milliseconds.
    pub fn from_unix_millis(unix_millis: i64) -> Date {
        let days = unix_millis.div_euclid(86_400_000);
        // Civil-from-days (H. Hinnant), proleptic Gregorian calendar.
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        let year = yoe + era * 400 + i64::from(month <= 2);
        Date {
            year: i32::try_from(year).unwrap_or(if year < 0 { i32::MIN } else { i32::MAX }),
            month: month as u8,
            day: day as u8,
        }
    }
}

impl fmt::Display for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

fn days_in_month(year: i32, month: u8) -> u8 {
    match month {
        4 | 6 | 9 | 11 => 30,
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        _ => 31,
    }
}

/// Whether a coupon can still be redeemed.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum State {
    /// Not redeemed.
    Open,
    /// Redeemed by the transaction with this token (its `TRANLOG_ID`, or
    /// [`NO_TRANLOG`]).
    Redeemed(String),
}

/// One coupon as stored.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Coupon {
    /// The coupon's card number.
    pub pan: String,
    /// What it approves, in minor units.
    pub value: u64,
    /// The last day it can be redeemed (UTC).
    pub expires: Date,
    /// Open or redeemed.
    pub state: State,
}

impl fmt::Debug for Coupon {
    // The card number is shown masked.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Coupon")
            .field("pan", &mask(&self.pan))
            .field("value", &self.value)
            .field("expires", &self.expires)
            .field("state", &self.state)
            .finish()
    }
}

/// First six and last four digits (the SDK's `mask_pan`, kept free of SDK
/// types here).
fn mask(pan: &str) -> String {
    let len = pan.len();
    pan.chars()
        .enumerate()
        .map(|(i, c)| if i < 6 || i + 4 >= len { c } else { '*' })
        .collect()
}

impl Coupon {
    /// Whether it is expired on `today`: after its expiry day.
    pub fn is_expired(&self, today: Date) -> bool {
        today > self.expires
    }
}

/// Why a coupon value could not be read. The messages never repeat the
/// value itself.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RecordError {
    /// Not ASCII text.
    NotAscii,
    /// Not five fields separated by single spaces.
    Fields {
        /// How many fields were found.
        found: usize,
    },
    /// The first field is not `v1`.
    Version,
    /// The card number is not 12 to 19 digits.
    BadPan,
    /// The value is not decimal digits fitting in 64 bits.
    BadValue,
    /// The expiry is not a real day written `YYYY-MM-DD`.
    BadExpiry,
    /// The state is not `open` or `redeemed:<token>`.
    BadState,
}

impl fmt::Display for RecordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecordError::NotAscii => f.write_str("the value is not ASCII text"),
            RecordError::Fields { found } => write!(
                f,
                "{found} fields instead of five separated by single spaces"
            ),
            RecordError::Version => write!(f, "the version is not {VERSION}"),
            RecordError::BadPan => f.write_str("the card number is not 12 to 19 digits"),
            RecordError::BadValue => {
                f.write_str("the value is not a decimal number of minor units (64 bits)")
            }
            RecordError::BadExpiry => f.write_str("the expiry is not a day written YYYY-MM-DD"),
            RecordError::BadState => f.write_str("the state is not open or redeemed:<id>"),
        }
    }
}

impl std::error::Error for RecordError {}

/// Reads a coupon value.
pub fn parse_coupon(value: &[u8]) -> Result<Coupon, RecordError> {
    let text = std::str::from_utf8(value)
        .ok()
        .filter(|t| t.is_ascii())
        .ok_or(RecordError::NotAscii)?;
    let fields: Vec<&str> = text.split(' ').collect();
    let [version, pan, amount, expires, state] = fields[..] else {
        return Err(RecordError::Fields {
            found: fields.len(),
        });
    };
    if version != VERSION {
        return Err(RecordError::Version);
    }
    if !(12..=19).contains(&pan.len()) || !pan.bytes().all(|c| c.is_ascii_digit()) {
        return Err(RecordError::BadPan);
    }
    if amount.is_empty() || !amount.bytes().all(|c| c.is_ascii_digit()) {
        return Err(RecordError::BadValue);
    }
    let value = amount.parse().map_err(|_| RecordError::BadValue)?;
    let expires = Date::parse(expires).ok_or(RecordError::BadExpiry)?;
    let state = match state {
        "open" => State::Open,
        other => match other.strip_prefix("redeemed:") {
            Some(token) if is_valid_token(token) => State::Redeemed(token.to_owned()),
            _ => return Err(RecordError::BadState),
        },
    };
    Ok(Coupon {
        pan: pan.to_owned(),
        value,
        expires,
        state,
    })
}

/// Writes a coupon value: `parse_coupon(format_coupon(c).as_bytes())` is
/// `c` for every coupon with a valid card number, expiry and token.
pub fn format_coupon(coupon: &Coupon) -> String {
    let state = match &coupon.state {
        State::Open => "open".to_owned(),
        State::Redeemed(token) => format!("redeemed:{token}"),
    };
    format!(
        "{VERSION} {} {} {} {state}",
        coupon.pan, coupon.value, coupon.expires
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAN: &str = "6006500000000018";

    fn coupon(state: State) -> Coupon {
        Coupon {
            pan: PAN.into(),
            value: 2_500,
            expires: Date {
                year: 2025,
                month: 12,
                day: 31,
            },
            state,
        }
    }

    #[test]
    fn values_round_trip() {
        for state in [
            State::Open,
            State::Redeemed("42".into()),
            State::Redeemed(NO_TRANLOG.into()),
        ] {
            let c = coupon(state);
            let value = format_coupon(&c);
            assert_eq!(parse_coupon(value.as_bytes()), Ok(c), "{value}");
        }
        assert_eq!(
            format_coupon(&coupon(State::Open)),
            "v1 6006500000000018 2500 2025-12-31 open"
        );
        assert_eq!(
            format_coupon(&coupon(State::Redeemed("42".into()))),
            "v1 6006500000000018 2500 2025-12-31 redeemed:42"
        );
        let big = Coupon {
            value: u64::MAX,
            pan: "123456789012".into(),
            ..coupon(State::Open)
        };
        assert_eq!(parse_coupon(format_coupon(&big).as_bytes()), Ok(big));
    }

    #[test]
    fn corrupt_values_are_refused_without_panicking() {
        let cases: [(&[u8], RecordError); 17] = [
            (b"", RecordError::Fields { found: 1 }),
            (
                b"v1 6006500000000018 2500 2025-12-31",
                RecordError::Fields { found: 4 },
            ),
            (
                b"v1 6006500000000018 2500 2025-12-31 open ",
                RecordError::Fields { found: 6 },
            ),
            (
                b"v1  6006500000000018 2500 2025-12-31 open",
                RecordError::Fields { found: 6 },
            ),
            (
                b"v2 6006500000000018 2500 2025-12-31 open",
                RecordError::Version,
            ),
            (b"v1 60065000000 2500 2025-12-31 open", RecordError::BadPan),
            (
                b"v1 600650000000001A 2500 2025-12-31 open",
                RecordError::BadPan,
            ),
            (
                b"v1 6006500000000018 -1 2025-12-31 open",
                RecordError::BadValue,
            ),
            (
                b"v1 6006500000000018 25.00 2025-12-31 open",
                RecordError::BadValue,
            ),
            (
                b"v1 6006500000000018 18446744073709551616 2025-12-31 open",
                RecordError::BadValue,
            ),
            (
                b"v1 6006500000000018 2500 2025-02-29 open",
                RecordError::BadExpiry,
            ),
            (
                b"v1 6006500000000018 2500 2025-13-01 open",
                RecordError::BadExpiry,
            ),
            (
                b"v1 6006500000000018 2500 25-12-31 open",
                RecordError::BadExpiry,
            ),
            (
                b"v1 6006500000000018 2500 2025-12-31 closed",
                RecordError::BadState,
            ),
            (
                b"v1 6006500000000018 2500 2025-12-31 redeemed:",
                RecordError::BadState,
            ),
            (
                b"v1 6006500000000018 2500 2025-12-31 redeemed:\x01",
                RecordError::BadState,
            ),
            (
                b"v1 6006500000000018 2500 2025-12-31 \xff",
                RecordError::NotAscii,
            ),
        ];
        for (value, error) in cases {
            assert_eq!(
                parse_coupon(value),
                Err(error.clone()),
                "{:?}",
                String::from_utf8_lossy(value)
            );
            assert!(!error.to_string().contains(PAN));
        }
    }

    #[test]
    fn dates_are_real_days() {
        assert_eq!(
            Date::parse("2024-02-29"),
            Some(Date {
                year: 2024,
                month: 2,
                day: 29
            })
        );
        assert_eq!(Date::parse("2000-02-29").map(|d| d.day), Some(29));
        for bad in [
            "1900-02-29",
            "2025-04-31",
            "2025-00-10",
            "2025-01-00",
            "2025/01/01",
            "2025-1-01",
            "+025-01-01",
            "２０２５-01-01",
            "",
        ] {
            assert_eq!(Date::parse(bad), None, "{bad}");
        }
        for text in ["2025-06-15", "0001-01-01", "9999-12-31"] {
            assert_eq!(
                Date::parse(text).map(|d| d.to_string()).as_deref(),
                Some(text)
            );
        }
    }

    #[test]
    fn days_of_unix_times() {
        let day = |ms| Date::from_unix_millis(ms).to_string();
        assert_eq!(day(0), "1970-01-01");
        assert_eq!(day(-1), "1969-12-31");
        assert_eq!(day(1_749_988_800_000), "2025-06-15");
        assert_eq!(day(1_709_164_800_000), "2024-02-29");
        assert_eq!(day(1_735_689_599_999), "2024-12-31");
        assert_eq!(day(1_735_689_600_000), "2025-01-01");
    }

    #[test]
    fn a_coupon_is_valid_through_its_expiry_day() {
        let c = coupon(State::Open);
        let on = |text| Date::parse(text).unwrap();
        assert!(!c.is_expired(on("2025-06-15")));
        assert!(!c.is_expired(on("2025-12-31")));
        assert!(c.is_expired(on("2026-01-01")));
    }

    #[test]
    fn keys_tokens_and_debug() {
        assert_eq!(coupon_key(PAN), "coupon:6006500000000018");
        assert_eq!(redemption_token(""), "-");
        assert_eq!(redemption_token("42"), "42");
        assert!(is_valid_token("-"));
        assert!(!is_valid_token(""));
        assert!(!is_valid_token("4 2"));
        let shown = format!("{:?}", coupon(State::Open));
        assert!(
            !shown.contains(PAN) && shown.contains("600650******0018"),
            "{shown}"
        );
    }
}
