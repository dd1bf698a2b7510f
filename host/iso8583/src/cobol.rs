//! COBOL numerics of mainframe endpoint formats: zoned decimal with a signed overpunch
//! (`PIC S9(n)V9(m)` DISPLAY) and packed decimal (`COMP-3`), both directions. No dependencies;
//! the plugin SDK re-exports this module for formatters.
//!
//! ```
//! use switchyard_iso8583::cobol::{Decimal, Zone, parse_zoned, format_zoned, parse_packed, format_packed};
//!
//! // S9(3)V9(4): 7 digits, 4 of them decimals.
//! assert_eq!(parse_zoned(b"100000{", 4, Zone::Ascii)?.to_string(), "100.0000");
//! assert_eq!(parse_zoned(b"100495N", 4, Zone::Ascii)?.to_string(), "-100.4955");
//! let v = Decimal::new(-1_004_955, 4);
//! assert_eq!(format_zoned(v, 7, Zone::Ascii)?, b"100495N");
//! assert_eq!(format_zoned(v, 7, Zone::Ebcdic)?, [0xF1, 0xF0, 0xF0, 0xF4, 0xF9, 0xF5, 0xD5]);
//! // COMP-3: S9(5)V99 of -123.45 is 4 bytes, sign nibble D.
//! assert_eq!(format_packed(Decimal::new(-12_345, 2), 7)?, [0x00, 0x12, 0x34, 0x5D]);
//! assert_eq!(parse_packed(&[0x12, 0x34, 0x5D], 2)?.to_string(), "-123.45");
//! # Ok::<(), switchyard_iso8583::cobol::CobolError>(())
//! ```

use std::fmt;

/// A decimal number: `units` × 10^−`scale` (−100.4955 is `units = -1004955, scale = 4`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub struct Decimal {
    /// The value in units of the last decimal place.
    pub units: i128,
    /// Decimal places (the `V9(m)` of the picture).
    pub scale: u32,
}

impl Decimal {
    /// `units` × 10^−`scale`.
    pub const fn new(units: i128, scale: u32) -> Decimal {
        Decimal { units, scale }
    }
}

impl fmt::Display for Decimal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.units < 0 { "-" } else { "" };
        let digits = self.units.unsigned_abs().to_string();
        let scale = self.scale as usize;
        if scale == 0 {
            return write!(f, "{sign}{digits}");
        }
        let padded = format!("{digits:0>width$}", width = scale + 1);
        let (int, frac) = padded.split_at(padded.len() - scale);
        write!(f, "{sign}{int}.{frac}")
    }
}

/// How a zoned decimal's digits and sign are written.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Zone {
    /// ASCII digits, the sign overpunched on the last one as IBM's EBCDIC zones read in
    /// ASCII: `{` `A`–`I` for +0..+9, `}` `J`–`R` for −0..−9. Decoding also accepts a plain
    /// last digit (unsigned) and the ASCII sign nibble (`0x7_`, `p`–`y`, for negative).
    Ascii,
    /// ASCII digits, the sign in the zone nibble of the last one: `0x3_` positive, `0x7_`
    /// negative (`p`–`y`, as Micro Focus and other ASCII COBOLs write it).
    AsciiNibble,
    /// EBCDIC digits (`F0`–`F9`), the sign in the zone nibble of the last one: `C` or `F`
    /// positive, `D` negative (`B` also read as negative, `A` and `E` as positive).
    Ebcdic,
}

/// A COBOL numeric could not be read or written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CobolError {
    /// Index of the offending byte (reading), or 0 (writing).
    pub position: usize,
    /// What is wrong.
    pub kind: CobolErrorKind,
}

/// What is wrong with a COBOL numeric.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CobolErrorKind {
    /// No bytes.
    Empty,
    /// A byte that is not a digit of the zoned encoding.
    BadDigit {
        /// The byte.
        byte: u8,
    },
    /// The last byte carries no sign the encoding knows.
    BadSign {
        /// The byte.
        byte: u8,
    },
    /// A packed byte holds a nibble that is not a digit, or the sign nibble is not A–F.
    BadPacked {
        /// The byte.
        byte: u8,
    },
    /// More than 38 digits (beyond an `i128`), or the scale is above the digit count.
    TooManyDigits {
        /// Digits asked for.
        digits: usize,
    },
    /// The value does not fit the picture's digits (writing).
    Overflow {
        /// Digits the value needs.
        needed: usize,
        /// Digits the picture has.
        digits: usize,
    },
}

impl fmt::Display for CobolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use CobolErrorKind::*;
        let p = self.position;
        match &self.kind {
            Empty => f.write_str("no digits"),
            BadDigit { byte } => write!(f, "byte {p} (0x{byte:02X}) is not a zoned digit"),
            BadSign { byte } => write!(f, "byte {p} (0x{byte:02X}) carries no valid sign"),
            BadPacked { byte } => write!(f, "byte {p} (0x{byte:02X}) is not packed decimal"),
            TooManyDigits { digits } => {
                write!(
                    f,
                    "{digits} digits is over the limit of 38 (or under the scale)"
                )
            }
            Overflow { needed, digits } => {
                write!(f, "value needs {needed} digits, the picture has {digits}")
            }
        }
    }
}

impl std::error::Error for CobolError {}

fn err(position: usize, kind: CobolErrorKind) -> CobolError {
    CobolError { position, kind }
}

const MAX_DIGITS: usize = 38;

/// Reads a zoned decimal (`PIC S9(n)V9(scale)` DISPLAY): one byte per digit, the sign in the
/// last byte.
pub fn parse_zoned(bytes: &[u8], scale: u32, zone: Zone) -> Result<Decimal, CobolError> {
    let Some((&last, init)) = bytes.split_last() else {
        return Err(err(0, CobolErrorKind::Empty));
    };
    if bytes.len() > MAX_DIGITS || scale as usize > bytes.len() {
        return Err(err(
            0,
            CobolErrorKind::TooManyDigits {
                digits: bytes.len(),
            },
        ));
    }
    let digit = |i: usize, b: u8| {
        let d = match zone {
            Zone::Ascii | Zone::AsciiNibble => b.wrapping_sub(b'0'),
            Zone::Ebcdic => b.wrapping_sub(0xf0),
        };
        if d < 10 {
            Ok(d)
        } else {
            Err(err(i, CobolErrorKind::BadDigit { byte: b }))
        }
    };
    let mut units: i128 = 0;
    for (i, &b) in init.iter().enumerate() {
        units = units * 10 + i128::from(digit(i, b)?);
    }
    let i = init.len();
    let bad_sign = || err(i, CobolErrorKind::BadSign { byte: last });
    let (d, negative) = match zone {
        Zone::Ascii | Zone::AsciiNibble => match last {
            b'0'..=b'9' => (last - b'0', false),
            b'p'..=b'y' => (last - b'p', true),
            b'{' if zone == Zone::Ascii => (0, false),
            b'A'..=b'I' if zone == Zone::Ascii => (last - b'A' + 1, false),
            b'}' if zone == Zone::Ascii => (0, true),
            b'J'..=b'R' if zone == Zone::Ascii => (last - b'J' + 1, true),
            _ => return Err(bad_sign()),
        },
        Zone::Ebcdic => {
            let (z, d) = (last >> 4, last & 0xf);
            if d > 9 {
                return Err(bad_sign());
            }
            match z {
                0xa | 0xc | 0xe | 0xf => (d, false),
                0xb | 0xd => (d, true),
                _ => return Err(bad_sign()),
            }
        }
    };
    units = units * 10 + i128::from(d);
    Ok(Decimal::new(if negative { -units } else { units }, scale))
}

/// The digits of `value`'s units, left-padded to `digits`, and whether it is negative.
fn digits_of(value: Decimal, digits: usize) -> Result<(Vec<u8>, bool), CobolError> {
    if digits == 0 || digits > MAX_DIGITS {
        return Err(err(0, CobolErrorKind::TooManyDigits { digits }));
    }
    let text = value.units.unsigned_abs().to_string();
    if text.len() > digits {
        return Err(err(
            0,
            CobolErrorKind::Overflow {
                needed: text.len(),
                digits,
            },
        ));
    }
    let mut out = vec![0u8; digits - text.len()];
    out.extend(text.bytes().map(|b| b - b'0'));
    Ok((out, value.units < 0))
}

/// Writes a zoned decimal of `digits` digits (the picture's `n + m`); `value.scale` is the
/// picture's `m`.
pub fn format_zoned(value: Decimal, digits: usize, zone: Zone) -> Result<Vec<u8>, CobolError> {
    let (mut d, negative) = digits_of(value, digits)?;
    let last = d.len() - 1;
    for (i, x) in d.iter_mut().enumerate() {
        let v = *x;
        *x = match (zone, i == last, negative) {
            (Zone::Ascii | Zone::AsciiNibble, false, _) => b'0' + v,
            (Zone::Ebcdic, false, _) => 0xf0 | v,
            (Zone::Ascii, true, false) => b"{ABCDEFGHI"[v as usize],
            (Zone::Ascii, true, true) => b"}JKLMNOPQR"[v as usize],
            (Zone::AsciiNibble, true, false) => b'0' + v,
            (Zone::AsciiNibble, true, true) => b'p' + v,
            (Zone::Ebcdic, true, false) => 0xc0 | v,
            (Zone::Ebcdic, true, true) => 0xd0 | v,
        };
    }
    Ok(d)
}

/// Reads a packed decimal (`COMP-3`): two digits per byte, the last nibble the sign (`C`/`F`
/// and `A`/`E` positive, `D`/`B` negative).
pub fn parse_packed(bytes: &[u8], scale: u32) -> Result<Decimal, CobolError> {
    let Some(&last) = bytes.last() else {
        return Err(err(0, CobolErrorKind::Empty));
    };
    let digits = bytes.len() * 2 - 1;
    if digits > MAX_DIGITS || scale as usize > digits {
        return Err(err(0, CobolErrorKind::TooManyDigits { digits }));
    }
    let mut units: i128 = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let bad = || err(i, CobolErrorKind::BadPacked { byte: b });
        let (hi, lo) = (b >> 4, b & 0xf);
        if hi > 9 {
            return Err(bad());
        }
        units = units * 10 + i128::from(hi);
        if i + 1 < bytes.len() {
            if lo > 9 {
                return Err(bad());
            }
            units = units * 10 + i128::from(lo);
        }
    }
    let negative = match last & 0xf {
        0xb | 0xd => true,
        0xa | 0xc | 0xe | 0xf => false,
        _ => {
            return Err(err(
                bytes.len() - 1,
                CobolErrorKind::BadPacked { byte: last },
            ));
        }
    };
    Ok(Decimal::new(if negative { -units } else { units }, scale))
}

/// Writes a packed decimal of `digits` digits (`(digits + 1) / 2` bytes, rounded up; an even
/// digit count gets a leading 0 nibble), sign `C` or `D`.
pub fn format_packed(value: Decimal, digits: usize) -> Result<Vec<u8>, CobolError> {
    let digits = digits | 1; // a sign nibble completes the last byte
    let (d, negative) = digits_of(value, digits)?;
    let mut nibbles = d;
    nibbles.push(if negative { 0xd } else { 0xc });
    Ok(nibbles.chunks(2).map(|p| p[0] << 4 | p[1]).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overpunch_examples_from_the_issue() {
        let plus = parse_zoned(b"100000{", 4, Zone::Ascii).unwrap();
        assert_eq!(plus, Decimal::new(1_000_000, 4));
        assert_eq!(plus.to_string(), "100.0000");
        let minus = parse_zoned(b"100495N", 4, Zone::Ascii).unwrap();
        assert_eq!(minus.to_string(), "-100.4955");
        assert_eq!(format_zoned(plus, 7, Zone::Ascii).unwrap(), b"100000{");
        assert_eq!(format_zoned(minus, 7, Zone::Ascii).unwrap(), b"100495N");
        // The same numbers in EBCDIC: `{` is 0xC0 and `N` is 0xD5 in code page 037.
        let e = format_zoned(minus, 7, Zone::Ebcdic).unwrap();
        assert_eq!(e, [0xf1, 0xf0, 0xf0, 0xf4, 0xf9, 0xf5, 0xd5]);
        assert_eq!(parse_zoned(&e, 4, Zone::Ebcdic).unwrap(), minus);
        assert_eq!(
            format_zoned(plus, 7, Zone::Ebcdic).unwrap(),
            [0xf1, 0xf0, 0xf0, 0xf0, 0xf0, 0xf0, 0xc0]
        );
        // ASCII sign nibble.
        assert_eq!(
            format_zoned(minus, 7, Zone::AsciiNibble).unwrap(),
            b"100495u"
        );
        assert_eq!(parse_zoned(b"100495u", 4, Zone::Ascii).unwrap(), minus);
        assert_eq!(
            parse_zoned(b"1004955", 4, Zone::Ascii).unwrap().units,
            1_004_955
        );
        assert_eq!(
            parse_zoned(&[0xf1, 0xf2, 0xf3], 0, Zone::Ebcdic)
                .unwrap()
                .units,
            123
        );
    }

    #[test]
    fn every_digit_and_sign_round_trips() {
        for zone in [Zone::Ascii, Zone::AsciiNibble, Zone::Ebcdic] {
            for units in (-1999i128..=1999).step_by(7).chain([0, 9, -9, 10, -10]) {
                let v = Decimal::new(units, 2);
                let z = format_zoned(v, 5, zone).unwrap();
                assert_eq!(parse_zoned(&z, 2, zone).unwrap(), v, "{zone:?} {units}");
                let p = format_packed(v, 5).unwrap();
                assert_eq!(p.len(), 3);
                assert_eq!(parse_packed(&p, 2).unwrap(), v);
            }
        }
    }

    #[test]
    fn packed_decimal() {
        assert_eq!(
            format_packed(Decimal::new(12_345, 2), 5).unwrap(),
            [0x12, 0x34, 0x5c]
        );
        assert_eq!(
            format_packed(Decimal::new(-7, 0), 4).unwrap(),
            [0x00, 0x00, 0x7d]
        );
        assert_eq!(parse_packed(&[0x12, 0x34, 0x5f], 0).unwrap().units, 12_345);
        assert_eq!(parse_packed(&[0x0d], 0).unwrap(), Decimal::new(0, 0));
        assert_eq!(Decimal::new(-5, 3).to_string(), "-0.005");
        assert_eq!(Decimal::new(42, 0).to_string(), "42");
    }

    #[test]
    fn bad_input_is_an_error_never_a_panic() {
        let e = |r: Result<Decimal, CobolError>| r.unwrap_err().to_string();
        assert_eq!(e(parse_zoned(b"", 0, Zone::Ascii)), "no digits");
        assert_eq!(
            e(parse_zoned(b"1x3", 0, Zone::Ascii)),
            "byte 1 (0x78) is not a zoned digit"
        );
        assert_eq!(
            e(parse_zoned(b"12!", 0, Zone::Ascii)),
            "byte 2 (0x21) carries no valid sign"
        );
        assert_eq!(
            e(parse_zoned(&[0xf1, 0x31], 0, Zone::Ebcdic)),
            "byte 1 (0x31) carries no valid sign"
        );
        assert_eq!(
            e(parse_packed(&[0x1a, 0x2c], 0)),
            "byte 0 (0x1A) is not packed decimal"
        );
        assert_eq!(
            e(parse_packed(&[0x12, 0x31], 0)),
            "byte 1 (0x31) is not packed decimal"
        );
        assert!(parse_zoned(&[b'9'; 39], 0, Zone::Ascii).is_err());
        assert!(parse_packed(&[0x99; 20], 0).is_err());
        assert_eq!(
            format_zoned(Decimal::new(123_456, 0), 5, Zone::Ascii)
                .unwrap_err()
                .to_string(),
            "value needs 6 digits, the picture has 5"
        );
        assert!(format_packed(Decimal::new(1, 0), 40).is_err());
        // Nothing panics on any short input.
        for a in 0..=255u8 {
            for b in [0x00, 0x0c, 0x7d, 0xf9, 0xff] {
                for zone in [Zone::Ascii, Zone::AsciiNibble, Zone::Ebcdic] {
                    let _ = parse_zoned(&[a, b], 1, zone);
                }
                let _ = parse_packed(&[a, b], 1);
            }
        }
    }
}
