//! What of a field's value may be shown in a log, a `Debug` or an error message.

use std::fmt::{self, Write};

/// Masks a primary account number for logs: the first 6 and the last 4 characters stay, every
/// character in between becomes `*` (`4761739001010119` → `476173******0119`).
///
/// Numbers too short to keep 6 + 4 characters and still hide something keep only their last 4
/// (or nothing, at 4 characters or fewer).
pub fn mask_pan(pan: &str) -> String {
    let n = pan.chars().count();
    let (head, tail) = match n {
        11.. => (6, 4),
        5..=10 => (0, 4),
        _ => (0, 0),
    };
    pan.chars()
        .enumerate()
        .map(|(i, c)| if i < head || i >= n - tail { c } else { '*' })
        .collect()
}

/// How a field's value may be shown.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Visibility {
    Clear,
    /// A PAN: first 6 and last 4 only.
    MaskedPan,
    /// Track data, PIN blocks, chip data: never shown.
    Redacted,
}

/// DE2 and DE34 are PANs; DE35 (track 2), DE36 (track 3), DE45 (track 1), DE52 (PIN block) and
/// DE55 (chip data, which carries the PAN and track 2 equivalent data) are never shown.
pub(crate) fn visibility(field: u16) -> Visibility {
    match field {
        2 | 34 => Visibility::MaskedPan,
        35 | 36 | 45 | 52 | 55 => Visibility::Redacted,
        _ => Visibility::Clear,
    }
}

/// Renders a value for humans: printable ASCII as a quoted string, anything else as hex,
/// with masking applied. At most `limit` bytes of a clear value are shown.
pub(crate) struct Shown<'a> {
    pub field: u16,
    pub value: &'a [u8],
    pub limit: usize,
}

impl fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match visibility(self.field) {
            Visibility::Redacted => f.write_str("<redacted>"),
            Visibility::MaskedPan => {
                let s = String::from_utf8_lossy(self.value);
                write!(f, "\"{}\"", mask_pan(&s).escape_debug())
            }
            Visibility::Clear => {
                let (v, more) = if self.value.len() > self.limit {
                    (&self.value[..self.limit], true)
                } else {
                    (self.value, false)
                };
                if v.iter().all(|b| (0x20..0x7f).contains(b)) {
                    f.write_char('"')?;
                    for &b in v {
                        match b {
                            b'"' | b'\\' => write!(f, "\\{}", b as char)?,
                            _ => f.write_char(b as char)?,
                        }
                    }
                    f.write_char('"')?;
                } else {
                    f.write_str("0x")?;
                    for b in v {
                        write!(f, "{b:02X}")?;
                    }
                }
                if more {
                    write!(f, "… ({} bytes)", self.value.len())?;
                }
                Ok(())
            }
        }
    }
}

/// A byte as a character in an error message: `'!'`, `'\n'`, or `0x9F`.
pub(crate) struct ByteChar(pub u8);

impl fmt::Display for ByteChar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_ascii() {
            write!(f, "'{}'", (self.0 as char).escape_default())
        } else {
            write!(f, "0x{:02X}", self.0)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_pans_of_every_length() {
        assert_eq!(mask_pan("4761739001010119"), "476173******0119");
        assert_eq!(mask_pan("4761739001010119123"), "476173*********9123");
        assert_eq!(mask_pan("476173900101"), "476173**0101");
        assert_eq!(mask_pan("47617390010"), "476173*0010");
        assert_eq!(mask_pan("4761739001"), "******9001");
        assert_eq!(mask_pan("47617"), "*7617");
        assert_eq!(mask_pan("4761"), "****");
        assert_eq!(mask_pan(""), "");
    }

    #[test]
    fn shows_values_safely() {
        let s = |field, value: &[u8]| {
            Shown {
                field,
                value,
                limit: 8,
            }
            .to_string()
        };
        assert_eq!(s(2, b"4761739001010119"), "\"476173******0119\"");
        assert_eq!(s(35, b"4761739001010119D2512"), "<redacted>");
        assert_eq!(s(41, b"AB\"!"), "\"AB\\\"!\"");
        assert_eq!(s(64, &[0x01, 0xff]), "0x01FF");
        assert_eq!(s(43, b"0123456789"), "\"01234567\"… (10 bytes)");
        assert_eq!(ByteChar(b'!').to_string(), "'!'");
        assert_eq!(ByteChar(b'\n').to_string(), "'\\n'");
        assert_eq!(ByteChar(0x9f).to_string(), "0x9F");
    }
}
