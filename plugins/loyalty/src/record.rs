//! The kv value of a loyalty card: a contract shared with the operator's
//! CLI (`switchyard loyalty credit` / `balance`), which reads and writes the
//! same keys. Pure functions over text: no SDK types.
//!
//! Key `points:<PAN>` ([`points_key`]); value, ASCII:
//!
//! ```text
//! <balance> [<TRANLOG_ID> ...]
//! ```
//!
//! the balance in points as a signed decimal integer (`-?[0-9]+`, 64 bits;
//! 1 point = one minor unit of the plugin's currency), then zero or more
//! tokens separated by single spaces: the ids of the transactions already
//! reversed on this card, oldest first, newest last, at most
//! [`MAX_REVERSED`] kept by [`PointsRecord::record_reversal`]. A token is
//! one or more printable ASCII characters other than space. A missing key is
//! a balance of 0 with no ids ([`PointsRecord::default`]). Every change is
//! one compare-and-set of this one key.

use std::fmt;

/// The prefix of a loyalty card's kv key.
pub const KEY_PREFIX: &str = "points:";

/// How many reversed transaction ids a value keeps (the newest).
pub const MAX_REVERSED: usize = 32;

/// The kv key of a card's points: `points:<PAN>`. The host hashes keys, so
/// the PAN is never stored in clear.
pub fn points_key(pan: &str) -> String {
    format!("{KEY_PREFIX}{pan}")
}

/// A card's points and the reversals already applied to it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct PointsRecord {
    /// The balance in points (minor units); negative after the reversal of
    /// a refund whose points were already spent.
    pub balance: i64,
    /// Ids (`TRANLOG_ID`) of the transactions reversed on this card, oldest
    /// first.
    pub reversed: Vec<String>,
}

/// Why a points value could not be read. The messages never repeat the
/// value itself.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RecordError {
    /// Not ASCII text.
    NotAscii,
    /// The balance is missing, is not a signed decimal integer, or does not
    /// fit in 64 bits.
    BadBalance,
    /// The id at this position (0: the first after the balance) is empty
    /// (two spaces in a row, or a trailing space) or not printable ASCII.
    BadId {
        /// The id's position.
        position: usize,
    },
}

impl fmt::Display for RecordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecordError::NotAscii => f.write_str("the value is not ASCII text"),
            RecordError::BadBalance => {
                f.write_str("the balance is not a signed decimal integer of 64 bits")
            }
            RecordError::BadId { position } => write!(
                f,
                "reversed id {position} is empty or not printable ASCII (ids are separated by single spaces)"
            ),
        }
    }
}

impl std::error::Error for RecordError {}

/// Whether `id` can be kept in a value: one or more printable ASCII
/// characters, no space.
pub fn is_valid_id(id: &str) -> bool {
    !id.is_empty() && id.bytes().all(|c| c.is_ascii_graphic())
}

/// Reads a points value.
pub fn parse_points(value: &[u8]) -> Result<PointsRecord, RecordError> {
    let text = std::str::from_utf8(value)
        .ok()
        .filter(|t| t.is_ascii())
        .ok_or(RecordError::NotAscii)?;
    let mut tokens = text.split(' ');
    let balance = tokens
        .next()
        .and_then(parse_balance)
        .ok_or(RecordError::BadBalance)?;
    let reversed = tokens
        .enumerate()
        .map(|(position, id)| {
            if is_valid_id(id) {
                Ok(id.to_owned())
            } else {
                Err(RecordError::BadId { position })
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(PointsRecord { balance, reversed })
}

/// `-?[0-9]+` as an `i64`: no `+`, no whitespace.
fn parse_balance(text: &str) -> Option<i64> {
    let digits = text.strip_prefix('-').unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// Writes a points value: `parse_points(format_points(r).as_bytes())` is
/// `r` for every record whose ids are valid.
pub fn format_points(record: &PointsRecord) -> String {
    let mut value = record.balance.to_string();
    for id in &record.reversed {
        value.push(' ');
        value.push_str(id);
    }
    value
}

impl PointsRecord {
    /// Whether the transaction `id` was already reversed on this card.
    pub fn has_reversed(&self, id: &str) -> bool {
        self.reversed.iter().any(|r| r == id)
    }

    /// Records the reversal of `id` (newest last), keeping the newest
    /// [`MAX_REVERSED`].
    pub fn record_reversal(&mut self, id: &str) {
        self.reversed.push(id.to_owned());
        let excess = self.reversed.len().saturating_sub(MAX_REVERSED);
        self.reversed.drain(..excess);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip() {
        let records = [
            PointsRecord::default(),
            PointsRecord {
                balance: 12_345,
                reversed: vec![],
            },
            PointsRecord {
                balance: -250,
                reversed: vec!["17".into(), "42".into()],
            },
            PointsRecord {
                balance: i64::MAX,
                reversed: vec!["a:b".into()],
            },
            PointsRecord {
                balance: i64::MIN,
                reversed: vec![],
            },
        ];
        for record in records {
            let value = format_points(&record);
            assert_eq!(parse_points(value.as_bytes()), Ok(record), "{value}");
        }
        assert_eq!(
            format_points(&PointsRecord {
                balance: -250,
                reversed: vec!["17".into(), "42".into()],
            }),
            "-250 17 42"
        );
    }

    #[test]
    fn the_cli_forms_are_read() {
        assert_eq!(parse_points(b"0"), Ok(PointsRecord::default()));
        assert_eq!(parse_points(b"007").map(|r| r.balance), Ok(7));
        assert_eq!(parse_points(b"-0").map(|r| r.balance), Ok(0));
        assert_eq!(
            parse_points(b"100 9 10 11").map(|r| r.reversed),
            Ok(vec!["9".to_string(), "10".into(), "11".into()])
        );
    }

    #[test]
    fn corrupt_values_are_refused_without_panicking() {
        for bad in [
            &b""[..],
            b" ",
            b"+5",
            b"-",
            b"5.0",
            b"1e3",
            b"abc",
            b" 5",
            b"5\n",
            b"9223372036854775808",
            b"-9223372036854775809",
        ] {
            assert_eq!(
                parse_points(bad),
                Err(RecordError::BadBalance),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        assert_eq!(parse_points(b"5 "), Err(RecordError::BadId { position: 0 }));
        assert_eq!(
            parse_points(b"5 1  2"),
            Err(RecordError::BadId { position: 1 })
        );
        assert_eq!(
            parse_points(b"5 1\t2"),
            Err(RecordError::BadId { position: 0 })
        );
        assert_eq!(parse_points(b"5 \xff"), Err(RecordError::NotAscii));
        assert_eq!(parse_points("5 é".as_bytes()), Err(RecordError::NotAscii));
    }

    #[test]
    fn errors_never_repeat_the_value() {
        let value = b"6006490000000004x 1";
        let error = parse_points(value).unwrap_err();
        assert!(!error.to_string().contains("6006490000000004"), "{error}");
    }

    #[test]
    fn reversals_keep_the_newest_32() {
        let mut record = PointsRecord::default();
        for id in 1..=40 {
            record.record_reversal(&id.to_string());
        }
        assert_eq!(record.reversed.len(), MAX_REVERSED);
        assert!(!record.has_reversed("8"));
        assert!(record.has_reversed("9"));
        assert_eq!(record.reversed.last().map(String::as_str), Some("40"));
        let value = format_points(&record);
        assert_eq!(parse_points(value.as_bytes()), Ok(record));
    }

    #[test]
    fn keys_and_ids() {
        assert_eq!(points_key("6006490000000004"), "points:6006490000000004");
        assert!(is_valid_id("42"));
        assert!(is_valid_id("-"));
        assert!(!is_valid_id(""));
        assert!(!is_valid_id("4 2"));
        assert!(!is_valid_id("4\n"));
    }
}
