//! Card-type rules: message-type (MTI) and processing-code (DE3) patterns
//! that dictate a route without a BIN lookup, e.g. `type 08xx *` for network
//! management or `type * 31xxxx` for balance inquiries.

use std::fmt;

/// A pattern of one field: `*` (anything, the field may be absent) or `N`
/// characters, each a digit or `x` (any character).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FieldPattern<const N: usize> {
    /// `*`: matches any value, and a missing field.
    Any,
    /// One entry per character: `Some(digit)` must be equal, `None` (`x`)
    /// matches any character. Matches only a value of exactly `N` bytes.
    Chars([Option<u8>; N]),
}

impl<const N: usize> FieldPattern<N> {
    /// Parses `*` or `N` characters of `0-9` and `x`; `None` otherwise.
    pub fn parse(pattern: &str) -> Option<FieldPattern<N>> {
        if pattern == "*" {
            return Some(FieldPattern::Any);
        }
        let bytes = pattern.as_bytes();
        if bytes.len() != N {
            return None;
        }
        let mut chars = [None; N];
        for (slot, &c) in chars.iter_mut().zip(bytes) {
            *slot = match c {
                b'0'..=b'9' => Some(c),
                b'x' => None,
                _ => return None,
            };
        }
        Some(FieldPattern::Chars(chars))
    }

    /// The number of literal (digit) characters: the pattern's specificity.
    pub fn literals(&self) -> usize {
        match self {
            FieldPattern::Any => 0,
            FieldPattern::Chars(chars) => chars.iter().flatten().count(),
        }
    }

    /// Whether the field's value (`None`: absent) matches.
    pub fn matches(&self, value: Option<&[u8]>) -> bool {
        match (self, value) {
            (FieldPattern::Any, _) => true,
            (FieldPattern::Chars(chars), Some(value)) => {
                value.len() == N
                    && chars
                        .iter()
                        .zip(value)
                        .all(|(want, got)| want.is_none_or(|want| want == *got))
            }
            (FieldPattern::Chars(_), None) => false,
        }
    }

    /// Whether some value matches both patterns.
    pub fn can_overlap(&self, other: &FieldPattern<N>) -> bool {
        match (self, other) {
            (FieldPattern::Chars(a), FieldPattern::Chars(b)) => a
                .iter()
                .zip(b)
                .all(|(a, b)| a.is_none() || b.is_none() || a == b),
            _ => true,
        }
    }
}

/// As in the settings: `*`, `08xx`.
impl<const N: usize> fmt::Display for FieldPattern<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FieldPattern::Any => f.write_str("*"),
            FieldPattern::Chars(chars) => chars.iter().try_for_each(|c| {
                let shown = c.map_or('x', char::from);
                write!(f, "{shown}")
            }),
        }
    }
}

/// Why the pattern of a `type` setting is not `<MTI> <DE3>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TypePatternError {
    /// Not two words after `type`: how many there were.
    Words(usize),
    /// The MTI pattern is not `*` or 4 characters of `0-9` and `x`.
    Mti,
    /// The DE3 pattern is not `*` or 6 characters of `0-9` and `x`.
    ProcessingCode,
}

impl fmt::Display for TypePatternError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TypePatternError::Words(n) => write!(
                f,
                "has {n} patterns after `type`; expected `type <MTI> <DE3>`, \
                 e.g. `type 0200 31xxxx` or `type 08xx *`"
            ),
            TypePatternError::Mti => f.write_str(
                "has a bad MTI pattern; expected 4 characters, each a digit or x, or * alone",
            ),
            TypePatternError::ProcessingCode => f.write_str(
                "has a bad DE3 pattern; expected 6 characters, each a digit or x, or * alone",
            ),
        }
    }
}

impl std::error::Error for TypePatternError {}

/// The pattern of a `type` rule: MTI and processing code (DE3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TypePattern {
    /// The MTI pattern.
    pub mti: FieldPattern<4>,
    /// The DE3 pattern.
    pub processing_code: FieldPattern<6>,
}

impl TypePattern {
    /// Parses `<MTI> <DE3>` (the key after `type `), separated by
    /// whitespace.
    pub fn parse(patterns: &str) -> Result<TypePattern, TypePatternError> {
        let words: Vec<&str> = patterns.split_whitespace().collect();
        let [mti, processing_code] = words[..] else {
            return Err(TypePatternError::Words(words.len()));
        };
        Ok(TypePattern {
            mti: FieldPattern::parse(mti).ok_or(TypePatternError::Mti)?,
            processing_code: FieldPattern::parse(processing_code)
                .ok_or(TypePatternError::ProcessingCode)?,
        })
    }

    /// The number of literal characters of both patterns: the most
    /// specific matching rule wins.
    pub fn specificity(&self) -> usize {
        self.mti.literals() + self.processing_code.literals()
    }

    /// Whether a message with this MTI and DE3 (`None`: absent) matches.
    pub fn matches(&self, mti: Option<&[u8]>, processing_code: Option<&[u8]>) -> bool {
        self.mti.matches(mti) && self.processing_code.matches(processing_code)
    }

    /// Whether some message matches both patterns.
    pub fn can_overlap(&self, other: &TypePattern) -> bool {
        self.mti.can_overlap(&other.mti) && self.processing_code.can_overlap(&other.processing_code)
    }
}

/// As in the settings: `0200 31xxxx`.
impl fmt::Display for TypePattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.mti, self.processing_code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(text: &str) -> TypePattern {
        TypePattern::parse(text).unwrap()
    }

    #[test]
    fn parses_and_shows_patterns() {
        for text in ["0200 31xxxx", "08xx *", "* *", "xxxx 000000"] {
            assert_eq!(pattern(text).to_string(), text);
        }
        assert_eq!(pattern("  0200\t 31xxxx ").to_string(), "0200 31xxxx");
        assert_eq!(pattern("0200 31xxxx").specificity(), 6);
        assert_eq!(pattern("08xx *").specificity(), 2);
        assert_eq!(pattern("* *").specificity(), 0);
    }

    #[test]
    fn refuses_bad_patterns() {
        for (text, error) in [
            ("", TypePatternError::Words(0)),
            ("0200", TypePatternError::Words(1)),
            ("0200 000000 x", TypePatternError::Words(3)),
            ("020 000000", TypePatternError::Mti),
            ("02000 000000", TypePatternError::Mti),
            ("02X0 000000", TypePatternError::Mti),
            ("** 000000", TypePatternError::Mti),
            ("0200 00000", TypePatternError::ProcessingCode),
            ("0200 00000a", TypePatternError::ProcessingCode),
            ("0200 x*xxxx", TypePatternError::ProcessingCode),
        ] {
            assert_eq!(TypePattern::parse(text), Err(error), "{text:?}");
            assert!(!error.to_string().is_empty());
        }
    }

    #[test]
    fn matches_literals_wildcards_and_absent_fields() {
        let inquiry = pattern("0x00 31xxxx");
        assert!(inquiry.matches(Some(b"0200"), Some(b"310000")));
        assert!(inquiry.matches(Some(b"0100"), Some(b"312000")));
        assert!(!inquiry.matches(Some(b"0210"), Some(b"310000")));
        assert!(!inquiry.matches(Some(b"0200"), Some(b"000000")));
        assert!(!inquiry.matches(Some(b"0200"), None), "DE3 absent");
        assert!(!inquiry.matches(Some(b"0200"), Some(b"31000")), "short DE3");
        let network = pattern("08xx *");
        assert!(network.matches(Some(b"0800"), None));
        assert!(network.matches(Some(b"0810"), Some(b"990000")));
        assert!(!network.matches(None, None));
        assert!(pattern("* *").matches(None, None));
    }

    #[test]
    fn overlap_is_some_message_matching_both() {
        assert!(pattern("0200 xxxxxx").can_overlap(&pattern("xxxx 000000")));
        assert!(pattern("0200 *").can_overlap(&pattern("* 31xxxx")));
        assert!(!pattern("0200 31xxxx").can_overlap(&pattern("0100 31xxxx")));
        assert!(!pattern("0200 31xxxx").can_overlap(&pattern("0200 00xxxx")));
        assert!(pattern("02x0 3x0000").can_overlap(&pattern("0x00 x10000")));
    }
}
