//! Amounts: DE4 in minor units, decimal strings in major units, and the
//! ISO 4217 exponent that converts one into the other.

use std::fmt;

/// Why an amount could not be read.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum AmountError {
    /// No digits at all.
    Empty,
    /// A character that is not a digit (or, in a decimal string, a second
    /// decimal point or a sign).
    NotNumeric,
    /// More significant decimals than the currency has.
    TooPrecise {
        /// The currency's exponent.
        exponent: u8,
    },
    /// The value does not fit in 64 bits of minor units.
    Overflow,
}

impl fmt::Display for AmountError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AmountError::Empty => f.write_str("no digits"),
            AmountError::NotNumeric => f.write_str("not a decimal number"),
            AmountError::TooPrecise { exponent } => {
                write!(f, "more than {exponent} decimals for the currency")
            }
            AmountError::Overflow => f.write_str("too large"),
        }
    }
}

impl std::error::Error for AmountError {}

/// The exponent used when the currency is absent or unknown.
pub const DEFAULT_EXPONENT: u8 = 2;

/// The ISO 4217 minor-unit exponent of a numeric currency code (DE49), e.g.
/// 2 for `840` (USD), 0 for `392` (JPY), 3 for `414` (KWD). Unknown or
/// malformed codes get [`DEFAULT_EXPONENT`].
pub fn currency_exponent(code: &[u8]) -> u8 {
    let [a, b, c] = *code else {
        return DEFAULT_EXPONENT;
    };
    if !(a.is_ascii_digit() && b.is_ascii_digit() && c.is_ascii_digit()) {
        return DEFAULT_EXPONENT;
    }
    let n = u16::from(a - b'0') * 100 + u16::from(b - b'0') * 10 + u16::from(c - b'0');
    match n {
        // BIF CLP KMF DJF GNF ISK JPY KRW VUV PYG RWF VND UGX UYI XAF XOF XPF
        108 | 152 | 174 | 262 | 324 | 352 | 392 | 410 | 548 | 600 | 646 | 704 | 800 | 940 | 950
        | 952 | 953 => 0,
        // BHD IQD JOD KWD LYD OMR TND
        48 | 368 | 400 | 414 | 434 | 512 | 788 => 3,
        // UYW CLF
        927 | 990 => 4,
        _ => DEFAULT_EXPONENT,
    }
}

/// Reads a DE4-style amount: ASCII digits in minor units, e.g. `000000001000`
/// is 10.00 in a currency of exponent 2.
pub fn parse_minor_units(digits: &[u8]) -> Result<u64, AmountError> {
    if digits.is_empty() {
        return Err(AmountError::Empty);
    }
    let mut value = 0u64;
    for &c in digits {
        if !c.is_ascii_digit() {
            return Err(AmountError::NotNumeric);
        }
        value = value
            .checked_mul(10)
            .and_then(|v| v.checked_add(u64::from(c - b'0')))
            .ok_or(AmountError::Overflow)?;
    }
    Ok(value)
}

/// Reads a decimal string in major units (`"5000.00"`, `"5000"`, `"0.5"`)
/// into minor units of a currency with the given exponent. Surrounding
/// whitespace is ignored; signs, separators and exponents are not accepted.
/// Decimals beyond the exponent must be zeros (`"5000.00"` is 5000 in JPY).
pub fn parse_major_units(text: &str, exponent: u8) -> Result<u64, AmountError> {
    let text = text.trim();
    let (int, frac) = match text.split_once('.') {
        Some((int, frac)) => (int, frac),
        None => (text, ""),
    };
    if int.is_empty() {
        return Err(if frac.is_empty() {
            AmountError::Empty
        } else {
            AmountError::NotNumeric
        });
    }
    let all_digits = |s: &str| s.bytes().all(|c| c.is_ascii_digit());
    if !all_digits(int) || !all_digits(frac) {
        return Err(AmountError::NotNumeric);
    }
    let exp = usize::from(exponent);
    let (kept, dropped) = frac.split_at(frac.len().min(exp));
    if dropped.bytes().any(|c| c != b'0') {
        return Err(AmountError::TooPrecise { exponent });
    }
    let scale = 10u64
        .checked_pow(u32::from(exponent))
        .ok_or(AmountError::Overflow)?;
    let pad = 10u64.pow((exp - kept.len()) as u32);
    let int = parse_minor_units(int.as_bytes())?;
    let kept = if kept.is_empty() {
        0
    } else {
        parse_minor_units(kept.as_bytes())?
    };
    int.checked_mul(scale)
        .and_then(|v| v.checked_add(kept * pad))
        .ok_or(AmountError::Overflow)
}

/// Minor units as a decimal string in major units, e.g. `500000` with
/// exponent 2 is `"5000.00"`: for log messages.
pub fn format_major_units(minor: u64, exponent: u8) -> String {
    if exponent == 0 {
        return minor.to_string();
    }
    let digits = format!("{minor:0width$}", width = usize::from(exponent) + 1);
    let (int, frac) = digits.split_at(digits.len() - usize::from(exponent));
    format!("{int}.{frac}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn de4_is_read_in_minor_units() {
        assert_eq!(parse_minor_units(b"000000001000"), Ok(1000));
        assert_eq!(parse_minor_units(b"000000000000"), Ok(0));
        assert_eq!(parse_minor_units(b"999999999999"), Ok(999_999_999_999));
        assert_eq!(parse_minor_units(b"18446744073709551615"), Ok(u64::MAX));
    }

    #[test]
    fn de4_rejects_empty_non_digits_and_overflow() {
        assert_eq!(parse_minor_units(b""), Err(AmountError::Empty));
        assert_eq!(
            parse_minor_units(b"00000000100A"),
            Err(AmountError::NotNumeric)
        );
        assert_eq!(
            parse_minor_units(b" 0000001000"),
            Err(AmountError::NotNumeric)
        );
        assert_eq!(parse_minor_units(b"-1"), Err(AmountError::NotNumeric));
        assert_eq!(
            parse_minor_units(b"18446744073709551616"),
            Err(AmountError::Overflow)
        );
    }

    #[test]
    fn decimal_strings_use_the_exponent() {
        assert_eq!(parse_major_units("5000.00", 2), Ok(500_000));
        assert_eq!(parse_major_units("5000", 2), Ok(500_000));
        assert_eq!(parse_major_units("5000.5", 2), Ok(500_050));
        assert_eq!(parse_major_units("0.01", 2), Ok(1));
        assert_eq!(parse_major_units(" 12.5 ", 2), Ok(1250));
        assert_eq!(parse_major_units("5000.00", 0), Ok(5000));
        assert_eq!(parse_major_units("5000", 0), Ok(5000));
        assert_eq!(parse_major_units("1.234", 3), Ok(1234));
        assert_eq!(parse_major_units("1.", 2), Ok(100));
    }

    #[test]
    fn decimal_strings_reject_what_is_not_an_amount() {
        assert_eq!(parse_major_units("", 2), Err(AmountError::Empty));
        assert_eq!(parse_major_units(".50", 2), Err(AmountError::NotNumeric));
        assert_eq!(
            parse_major_units("5,000.00", 2),
            Err(AmountError::NotNumeric)
        );
        assert_eq!(parse_major_units("-5", 2), Err(AmountError::NotNumeric));
        assert_eq!(parse_major_units("+5", 2), Err(AmountError::NotNumeric));
        assert_eq!(parse_major_units("1.2.3", 2), Err(AmountError::NotNumeric));
        assert_eq!(parse_major_units("5e3", 2), Err(AmountError::NotNumeric));
        assert_eq!(parse_major_units("abc", 2), Err(AmountError::NotNumeric));
        assert_eq!(
            parse_major_units("5000.001", 2),
            Err(AmountError::TooPrecise { exponent: 2 })
        );
        assert_eq!(
            parse_major_units("5.5", 0),
            Err(AmountError::TooPrecise { exponent: 0 })
        );
        assert_eq!(
            parse_major_units("184467440737095517", 2),
            Err(AmountError::Overflow)
        );
    }

    #[test]
    fn exponents_follow_iso_4217() {
        assert_eq!(currency_exponent(b"840"), 2, "USD");
        assert_eq!(currency_exponent(b"978"), 2, "EUR");
        assert_eq!(currency_exponent(b"392"), 0, "JPY");
        assert_eq!(currency_exponent(b"152"), 0, "CLP");
        assert_eq!(currency_exponent(b"414"), 3, "KWD");
        assert_eq!(currency_exponent(b"048"), 3, "BHD");
        assert_eq!(currency_exponent(b"990"), 4, "CLF");
        assert_eq!(currency_exponent(b"999"), 2, "unknown");
        assert_eq!(currency_exponent(b"84"), 2, "malformed");
        assert_eq!(currency_exponent(b"USD"), 2, "alphabetic");
    }

    #[test]
    fn minor_units_format_back_to_major() {
        assert_eq!(format_major_units(500_000, 2), "5000.00");
        assert_eq!(format_major_units(5, 2), "0.05");
        assert_eq!(format_major_units(0, 3), "0.000");
        assert_eq!(format_major_units(5000, 0), "5000");
        for (text, exponent) in [("5000.00", 2), ("0.05", 2), ("1.234", 3), ("42", 0)] {
            let minor = parse_major_units(text, exponent).unwrap();
            assert_eq!(format_major_units(minor, exponent), text);
        }
    }
}
