//! The message type indicator.

use std::fmt;
use std::str::FromStr;

/// A message type indicator: four ASCII digits (version, class, function, origin).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Mti([u8; 4]);

/// The text given for an MTI is not exactly four ASCII digits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("MTI must be exactly 4 ASCII digits, got {found:?}")]
pub struct MtiError {
    /// The rejected text (at most its first 16 characters).
    pub found: String,
}

impl Mti {
    /// Parses an MTI from exactly four ASCII digits.
    pub fn new(s: &str) -> Result<Mti, MtiError> {
        match <[u8; 4]>::try_from(s.as_bytes()) {
            Ok(b) if b.iter().all(u8::is_ascii_digit) => Ok(Mti(b)),
            _ => Err(MtiError {
                found: s.chars().take(16).collect(),
            }),
        }
    }

    /// Builds an MTI from four bytes the caller guarantees are ASCII digits.
    ///
    /// Encoding a message whose MTI is not four digits fails with
    /// [`EncodeErrorKind::InvalidMti`](crate::EncodeErrorKind::InvalidMti).
    pub const fn from_bytes(b: [u8; 4]) -> Mti {
        Mti(b)
    }

    /// Like [`Mti::new`], from bytes.
    pub fn try_from_bytes(b: &[u8]) -> Option<Mti> {
        let b = <[u8; 4]>::try_from(b).ok()?;
        b.iter().all(u8::is_ascii_digit).then_some(Mti(b))
    }

    /// The four digits as text.
    pub fn as_str(&self) -> &str {
        // An `Mti` built by `from_bytes` with non-ASCII bytes is a caller bug; show it as "????"
        // rather than panicking.
        std::str::from_utf8(&self.0).unwrap_or("????")
    }

    /// The four digits as bytes.
    pub fn as_bytes(&self) -> &[u8; 4] {
        &self.0
    }

    /// The MTI of the response to this request: the third digit plus one
    /// (0100→0110, 0200→0210, 0420→0430, 0800→0810, 1200→1210), and a
    /// repeat's origin digit made the original's, since a response's MTI
    /// never marks a repeat (0201→0210, 0421→0430, 0203→0212).
    /// `None` when this MTI is already a response (its third digit is odd).
    pub fn response(&self) -> Option<Mti> {
        if !self.is_request() {
            return None;
        }
        let mut b = self.0;
        b[2] += 1;
        if b[3].is_ascii_digit() {
            b[3] = b'0' + ((b[3] - b'0') & !1);
        }
        Some(Mti(b))
    }

    /// Whether this MTI is a request, advice or notification that expects an answer:
    /// its third digit (the function) is even.
    pub fn is_request(&self) -> bool {
        self.0[2].is_ascii_digit() && (self.0[2] - b'0').is_multiple_of(2)
    }

    pub(crate) fn is_valid(&self) -> bool {
        self.0.iter().all(u8::is_ascii_digit)
    }
}

impl FromStr for Mti {
    type Err = MtiError;
    fn from_str(s: &str) -> Result<Mti, MtiError> {
        Mti::new(s)
    }
}

impl fmt::Display for Mti {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_four_digits_only() {
        assert_eq!(Mti::new("0200").unwrap().as_str(), "0200");
        assert_eq!("0800".parse::<Mti>().unwrap().to_string(), "0800");
        for bad in ["", "020", "02000", "02a0", "０２００", " 200"] {
            let err = Mti::new(bad).unwrap_err();
            assert_eq!(
                err.to_string(),
                format!("MTI must be exactly 4 ASCII digits, got {bad:?}")
            );
        }
        assert_eq!(
            Mti::try_from_bytes(b"0210"),
            Some(Mti::from_bytes(*b"0210"))
        );
        assert_eq!(Mti::try_from_bytes(b"02x0"), None);
    }

    #[test]
    fn response_adds_one_to_the_function_digit() {
        for (req, resp) in [
            ("0100", "0110"),
            ("0200", "0210"),
            ("0220", "0230"),
            ("0400", "0410"),
            ("0420", "0430"),
            ("0800", "0810"),
            ("1200", "1210"),
            ("0120", "0130"),
            ("0201", "0210"),
            ("0421", "0430"),
            ("0221", "0230"),
            ("0101", "0110"),
            ("0203", "0212"),
        ] {
            let m = Mti::new(req).unwrap();
            assert!(m.is_request(), "{req}");
            assert_eq!(m.response(), Some(Mti::new(resp).unwrap()), "{req}");
        }
        for resp in ["0110", "0210", "0410", "0810", "1210", "0230"] {
            let m = Mti::new(resp).unwrap();
            assert!(!m.is_request(), "{resp}");
            assert_eq!(m.response(), None, "{resp}");
        }
    }
}
