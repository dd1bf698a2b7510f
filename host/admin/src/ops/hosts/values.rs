//! The internal hosts' kv values, written and read independently of the
//! plugins that share them (`plugins/loyalty`, `plugins/coupon`): the
//! formats are a contract, pure functions over text here. Also what the
//! operator types: card numbers, amounts, days.
//!
//! - Loyalty, key `points:<PAN>`: ASCII, the balance in points as a signed
//!   decimal integer (`-?[0-9]+`, 64 bits; 1 point = one minor unit), then
//!   zero or more ` <TRANLOG_ID>` tokens (single spaces, printable ASCII):
//!   the transactions already reversed on the card, kept as they are. No
//!   key: a balance of 0.
//! - Coupon, key `coupon:<PAN>`: ASCII `v1 <PAN> <value in minor units>
//!   <expires YYYY-MM-DD> <state>`, state `open` or `redeemed:<TRANLOG_ID>`
//!   (`redeemed:-` without a tranlog).
//!
//! No message here repeats a card number or a stored value.

use std::fmt;

use super::HostsError;

/// The prefix of a loyalty card's kv key.
pub const POINTS_PREFIX: &str = "points:";
/// The prefix of a coupon's kv key.
pub const COUPON_PREFIX: &str = "coupon:";
/// The first field of a coupon value.
pub const COUPON_VERSION: &str = "v1";
/// The card range of coupons (their first six digits).
pub const COUPON_RANGE: &str = "600650";
/// The length of an issued coupon number.
pub const COUPON_LEN: usize = 16;
/// The largest amount, points or value accepted: 12 digits, the most an
/// ISO 8583 amount field (DE4, DE54) carries.
pub const MAX_AMOUNT: i64 = 999_999_999_999;

/// The kv key of a loyalty card.
pub fn points_key(pan: &str) -> String {
    format!("{POINTS_PREFIX}{pan}")
}

/// The kv key of a coupon.
pub fn coupon_key(pan: &str) -> String {
    format!("{COUPON_PREFIX}{pan}")
}

/// Whether `token` may stand in a value: printable ASCII, no space.
fn is_token(token: &str) -> bool {
    !token.is_empty() && token.bytes().all(|b| b.is_ascii_graphic())
}

/// A signed decimal integer, `-?[0-9]+`, 64 bits.
fn signed(text: &str) -> Option<i64> {
    let digits = text.strip_prefix('-').unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// A loyalty card's stored points.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Points {
    /// The balance in points.
    pub balance: i64,
    /// The reversed-transaction tokens, verbatim, each with its leading
    /// space (empty when none).
    tail: String,
}

impl Points {
    /// Reads a stored value.
    pub fn parse(value: &[u8]) -> Result<Points, String> {
        let text = std::str::from_utf8(value)
            .ok()
            .filter(|t| t.is_ascii())
            .ok_or("the value is not ASCII text")?;
        let (balance, tail) = match text.find(' ') {
            Some(i) => text.split_at(i),
            None => (text, ""),
        };
        let balance =
            signed(balance).ok_or("the balance is not a signed decimal integer of 64 bits")?;
        if let Some(bad) = tail.split(' ').skip(1).position(|t| !is_token(t)) {
            return Err(format!("reversed id {bad} is empty or not printable ASCII"));
        }
        Ok(Points {
            balance,
            tail: tail.to_owned(),
        })
    }

    /// The value to store.
    pub fn to_value(&self) -> String {
        format!("{}{}", self.balance, self.tail)
    }
}

/// A calendar day (UTC), ordered by time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Day {
    year: u16,
    month: u8,
    day: u8,
}

impl Day {
    /// Reads `YYYY-MM-DD`: a real day of that month.
    pub fn parse(text: &str) -> Option<Day> {
        let b = text.as_bytes();
        if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
            return None;
        }
        let number = |r: std::ops::Range<usize>| -> Option<u16> {
            let digits = &b[r];
            digits.iter().all(u8::is_ascii_digit).then(|| {
                digits
                    .iter()
                    .fold(0u16, |n, &c| n * 10 + u16::from(c - b'0'))
            })
        };
        let year = number(0..4)?;
        let month = u8::try_from(number(5..7)?).ok()?;
        let day = u8::try_from(number(8..10)?).ok()?;
        let last = match month {
            4 | 6 | 9 | 11 => 30,
            2 if year.is_multiple_of(4)
                && (!year.is_multiple_of(100) || year.is_multiple_of(400)) =>
            {
                29
            }
            2 => 28,
            1..=12 => 31,
            _ => return None,
        };
        (1..=last)
            .contains(&day)
            .then_some(Day { year, month, day })
    }

    /// Today, UTC.
    pub fn today() -> Day {
        let t = switchyard_iso8583::UtcTime::now();
        Day {
            year: u16::try_from(t.year).unwrap_or(u16::MAX),
            month: t.month as u8,
            day: t.day as u8,
        }
    }
}

impl fmt::Display for Day {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

/// Whether a coupon can still be redeemed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CouponState {
    /// Not redeemed.
    Open,
    /// Redeemed by the transaction with this token (`-`: no tranlog).
    Redeemed(String),
}

/// One coupon as stored.
#[derive(Clone, PartialEq, Eq)]
pub struct Coupon {
    /// The coupon's number (a full PAN: never log it).
    pub pan: String,
    /// Its value in minor units.
    pub value_minor: i64,
    /// The last day it can be redeemed.
    pub expires: Day,
    /// Open or redeemed.
    pub state: CouponState,
}

impl fmt::Debug for Coupon {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Coupon")
            .field("pan", &switchyard_iso8583::mask_pan(&self.pan))
            .field("value_minor", &self.value_minor)
            .field("expires", &self.expires)
            .field("state", &self.state)
            .finish()
    }
}

impl Coupon {
    /// Reads a stored value; `None` when it is not a coupon of this format.
    pub fn parse(value: &[u8]) -> Option<Coupon> {
        let text = std::str::from_utf8(value).ok()?;
        let [version, pan, minor, expires, state] = text.split(' ').collect::<Vec<_>>()[..] else {
            return None;
        };
        if version != COUPON_VERSION || !is_card_number(pan) {
            return None;
        }
        if minor.is_empty() || !minor.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let state = match state {
            "open" => CouponState::Open,
            s => CouponState::Redeemed(s.strip_prefix("redeemed:").filter(|t| is_token(t))?.into()),
        };
        Some(Coupon {
            pan: pan.to_owned(),
            value_minor: minor.parse().ok()?,
            expires: Day::parse(expires)?,
            state,
        })
    }

    /// The value to store.
    pub fn to_value(&self) -> String {
        let state = match &self.state {
            CouponState::Open => "open".to_owned(),
            CouponState::Redeemed(t) => format!("redeemed:{t}"),
        };
        format!(
            "{COUPON_VERSION} {} {} {} {state}",
            self.pan, self.value_minor, self.expires
        )
    }
}

/// 12 to 19 digits (the Luhn check aside).
fn is_card_number(text: &str) -> bool {
    (12..=19).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_digit())
}

/// Whether `digits` (ASCII digits) pass the Luhn check.
pub fn luhn_valid(digits: &str) -> bool {
    luhn_sum(digits, false).is_multiple_of(10)
}

/// The check digit that makes `digits` followed by it Luhn-valid.
pub fn luhn_check_digit(digits: &str) -> u8 {
    ((10 - luhn_sum(digits, true) % 10) % 10) as u8
}

/// The Luhn sum from the right; `double_last`: the rightmost digit is
/// doubled (it is not the check digit).
fn luhn_sum(digits: &str, double_last: bool) -> u32 {
    digits
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, b)| {
            let d = u32::from(b.wrapping_sub(b'0') % 10);
            if (i % 2 == 0) == double_last {
                let x = d * 2;
                if x > 9 { x - 9 } else { x }
            } else {
                d
            }
        })
        .sum()
}

/// A card number as the operator typed it: 12 to 19 digits, Luhn-valid.
/// The error never repeats it.
pub fn card_number(text: &str) -> Result<String, HostsError> {
    let digits = text.trim();
    if !is_card_number(digits) {
        return Err(HostsError::invalid(
            "card",
            "a card number is 12 to 19 digits",
        ));
    }
    if !luhn_valid(digits) {
        return Err(HostsError::invalid(
            "card",
            "the card number fails the Luhn check (a digit mistyped?)",
        ));
    }
    Ok(digits.to_owned())
}

/// A new coupon number: [`COUPON_RANGE`], 9 random digits, the Luhn check
/// digit.
pub fn new_coupon_number() -> Result<String, HostsError> {
    let mut number = String::with_capacity(COUPON_LEN);
    number.push_str(COUPON_RANGE);
    let mut pool = [0u8; 32];
    while number.len() < COUPON_LEN - 1 {
        getrandom::getrandom(&mut pool)
            .map_err(|e| HostsError::Internal(format!("the system's random source: {e}")))?;
        // Bytes of 250 and above would favour the low digits: dropped.
        for b in pool.iter().filter(|&&b| b < 250) {
            if number.len() == COUPON_LEN - 1 {
                break;
            }
            number.push(char::from(b'0' + b % 10));
        }
    }
    let check = luhn_check_digit(&number);
    number.push(char::from(b'0' + check));
    Ok(number)
}

/// A positive amount of money, `25`, `25.5` or `25.00` (at most two
/// decimals), in minor units, at most [`MAX_AMOUNT`].
pub fn parse_money(field: &str, text: &str) -> Result<i64, HostsError> {
    let text = text.trim();
    let (units, cents) = text.split_once('.').unwrap_or((text, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if text.starts_with('-') {
        return Err(HostsError::invalid(field, "must be more than 0"));
    }
    if units.is_empty() || !digits(units) || !digits(cents) || text.ends_with('.') {
        return Err(HostsError::invalid(
            field,
            "an amount such as 25.00 (digits, a point, at most 2 decimals)",
        ));
    }
    if cents.len() > 2 {
        return Err(HostsError::invalid(field, "at most 2 decimals"));
    }
    let too_large = || HostsError::invalid(field, format!("at most {}", money(MAX_AMOUNT)));
    let units: i64 = units.parse().map_err(|_| too_large())?;
    let cents: i64 = format!("{cents:0<2}").parse().unwrap_or(0);
    let minor = units
        .checked_mul(100)
        .and_then(|u| u.checked_add(cents))
        .filter(|m| *m <= MAX_AMOUNT)
        .ok_or_else(too_large)?;
    if minor == 0 {
        return Err(HostsError::invalid(field, "must be more than 0"));
    }
    Ok(minor)
}

/// A positive whole number of points, at most [`MAX_AMOUNT`].
pub fn parse_points(text: &str) -> Result<i64, HostsError> {
    let text = text.trim();
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(HostsError::invalid(
            "points",
            "a positive whole number of points (1 point = 0.01)",
        ));
    }
    let points: i64 = text.parse().unwrap_or(i64::MAX);
    check_points(points)?;
    Ok(points)
}

/// `points` is 1 to [`MAX_AMOUNT`].
pub fn check_points(points: i64) -> Result<(), HostsError> {
    if points < 1 {
        return Err(HostsError::invalid("points", "must be at least 1"));
    }
    if points > MAX_AMOUNT {
        return Err(HostsError::invalid(
            "points",
            format!("at most {MAX_AMOUNT} at a time"),
        ));
    }
    Ok(())
}

/// Minor units as money: `1500` → `15.00`, `-5` → `-0.05`.
pub fn money(minor: i64) -> String {
    let sign = if minor < 0 { "-" } else { "" };
    let abs = minor.unsigned_abs();
    format!("{sign}{}.{:02}", abs / 100, abs % 100)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOYALTY: &str = "6006490000000004";

    #[test]
    fn points_values_keep_their_reversal_ids() {
        assert_eq!(Points::parse(b"1500").unwrap().balance, 1500);
        let p = Points::parse(b"-20 7401823476318208 7401823476318209").unwrap();
        assert_eq!(p.balance, -20);
        let moved = Points {
            balance: p.balance + 100,
            ..p
        };
        assert_eq!(moved.to_value(), "80 7401823476318208 7401823476318209");
        assert_eq!(Points::default().to_value(), "0");
        for bad in [
            &b""[..],
            b"+5",
            b"12a",
            b"5 ",
            b"5  id",
            b"99999999999999999999",
            b"\xff",
        ] {
            assert!(Points::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn coupon_values_round_trip() {
        let v = b"v1 6006501234567897 2500 2027-06-30 open";
        let c = Coupon::parse(v).unwrap();
        assert_eq!(c.value_minor, 2500);
        assert_eq!(c.expires.to_string(), "2027-06-30");
        assert_eq!(c.state, CouponState::Open);
        assert_eq!(c.to_value().as_bytes(), v);
        let r = Coupon::parse(b"v1 6006501234567897 2500 2027-06-30 redeemed:-").unwrap();
        assert_eq!(r.state, CouponState::Redeemed("-".into()));
        assert!(!format!("{r:?}").contains("6006501234567897"));
        for bad in [
            &b"1500"[..],
            b"v2 6006501234567897 2500 2027-06-30 open",
            b"v1 60065000 2500 2027-06-30 open",
            b"v1 6006501234567897 -1 2027-06-30 open",
            b"v1 6006501234567897 2500 2027-02-30 open",
            b"v1 6006501234567897 2500 2027-06-30 redeemed:",
            b"v1 6006501234567897 2500 2027-06-30 used",
            b"v1 6006501234567897 2500 2027-06-30 open extra",
        ] {
            assert!(
                Coupon::parse(bad).is_none(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn days() {
        assert!(Day::parse("2028-02-29").is_some());
        for bad in [
            "2027-02-29",
            "2027-13-01",
            "2027-6-30",
            "2027-06-31",
            "tomorrow",
        ] {
            assert!(Day::parse(bad).is_none(), "{bad}");
        }
        assert!(Day::parse("2027-06-30") < Day::parse("2027-07-01"));
        assert!(Day::today() > Day::parse("2025-01-01").unwrap());
    }

    #[test]
    fn luhn_and_coupon_numbers() {
        for pan in [
            LOYALTY,
            "4761739001010119",
            "5413330089010509",
            "2223000048410010",
        ] {
            assert!(luhn_valid(pan));
            let (body, check) = pan.split_at(pan.len() - 1);
            assert_eq!(luhn_check_digit(body).to_string(), check);
        }
        assert!(!luhn_valid("6006490000000009"));
        for _ in 0..200 {
            let n = new_coupon_number().unwrap();
            assert!(n.len() == COUPON_LEN && n.starts_with(COUPON_RANGE) && luhn_valid(&n));
            assert!(n.bytes().all(|b| b.is_ascii_digit()));
        }
        assert_ne!(new_coupon_number().unwrap(), new_coupon_number().unwrap());
    }

    #[test]
    fn card_numbers_are_checked_without_being_repeated() {
        assert_eq!(card_number(LOYALTY).unwrap(), LOYALTY);
        for bad in ["6006490000000009", "60064900000", "600649000000000a", ""] {
            let e = card_number(bad).unwrap_err().to_string();
            assert!(e.starts_with("card: "), "{e}");
            assert!(bad.is_empty() || !e.contains(bad), "{e}");
        }
    }

    #[test]
    fn amounts_and_points() {
        assert_eq!(parse_money("value", "25.00").unwrap(), 2500);
        assert_eq!(parse_money("value", "25.5").unwrap(), 2550);
        assert_eq!(parse_money("value", "7").unwrap(), 700);
        assert_eq!(parse_money("value", "9999999999.99").unwrap(), MAX_AMOUNT);
        for (bad, why) in [
            ("25.001", "at most 2 decimals"),
            ("0", "more than 0"),
            ("0.00", "more than 0"),
            ("-5", "more than 0"),
            ("25.", "an amount"),
            (".5", "an amount"),
            ("1e3", "an amount"),
            ("10000000000.00", "at most 9999999999.99"),
        ] {
            let e = parse_money("value", bad).unwrap_err().to_string();
            assert!(e.starts_with("value: ") && e.contains(why), "{bad}: {e}");
        }
        assert_eq!(parse_points("1500").unwrap(), 1500);
        for bad in [
            "0",
            "-3",
            "1.5",
            "",
            "1000000000000",
            "99999999999999999999999",
        ] {
            assert!(parse_points(bad).is_err(), "{bad}");
        }
        assert_eq!(money(1500), "15.00");
        assert_eq!(money(-5), "-0.05");
        assert_eq!(money(i64::MIN), "-92233720368547758.08");
    }
}
