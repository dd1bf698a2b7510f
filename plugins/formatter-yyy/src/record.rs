//! The records of endpoint `yyy`, as the copybook `YYY.CPY` (docs/mainframe.md) lays them out:
//! fixed positions, EBCDIC code page 037, `YYY-AMOUNT` a zoned `S9(10)V99` with the sign
//! overpunched on its last digit (zone `C` positive, `D` negative).
//!
//! | offset | length | field | picture |
//! |---:|---:|---|---|
//! | 0 | 2 | `YYY-RECORD-TYPE` | `X(2)` |
//! | 2 | 6 | `YYY-STAN` | `9(6)` |
//! | 8 | 10 | `YYY-XMIT-DATE-TIME` | `9(10)` |
//! | 18 | 8 | `YYY-TERMINAL-ID` | `X(8)` |
//! | 26 | 15 | `YYY-MERCHANT-ID` | `X(15)` |
//! | 41 | 19 | `YYY-PAN` | `X(19)` |
//! | 60 | 4 | `YYY-EXPIRY` | `9(4)` |
//! | 64 | 12 | `YYY-AMOUNT` | `S9(10)V99` |
//! | 76 | 3 | `YYY-CURRENCY` | `9(3)` |
//! | 79 | 2 | `YYY-RESPONSE-CODE` | `X(2)` |
//! | 81 | 6 | `YYY-APPROVAL-CODE` | `X(6)` |
//! | 87 | 2 | `YYY-REASON` (SAF records) | `X(2)` |
//! | 89 | 1 | `YYY-REPEAT` (SAF records) | `X(1)` |
//!
//! Authorization records (`AQ`, `AR`) are 87 bytes; store-and-forward records (`RQ`, `RR`,
//! `CQ`, `CR`) 90.

use std::fmt;

use switchyard_sdk::card::mask_pan;
use switchyard_sdk::cobol::{self, CobolErrorKind, Decimal, Zone};

use crate::cp037;

/// One field of the copybook.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Field {
    /// The copybook's data name.
    pub name: &'static str,
    /// Offset in the record (from 0, after the RDW).
    pub offset: usize,
    /// Length in bytes.
    pub len: usize,
}

impl Field {
    const fn new(name: &'static str, offset: usize, len: usize) -> Field {
        Field { name, offset, len }
    }

    /// The field's bytes in `record` (which callers checked to be long enough).
    fn of(self, record: &[u8]) -> &[u8] {
        &record[self.offset..self.offset + self.len]
    }
}

/// `YYY-RECORD-TYPE PIC X(2)`.
pub const RECORD_TYPE: Field = Field::new("YYY-RECORD-TYPE", 0, 2);
/// `YYY-STAN PIC 9(6)`: DE11.
pub const STAN: Field = Field::new("YYY-STAN", 2, 6);
/// `YYY-XMIT-DATE-TIME PIC 9(10)`: DE7, `MMDDhhmmss`.
pub const DATE_TIME: Field = Field::new("YYY-XMIT-DATE-TIME", 8, 10);
/// `YYY-TERMINAL-ID PIC X(8)`: DE41.
pub const TERMINAL: Field = Field::new("YYY-TERMINAL-ID", 18, 8);
/// `YYY-MERCHANT-ID PIC X(15)`: DE42.
pub const MERCHANT: Field = Field::new("YYY-MERCHANT-ID", 26, 15);
/// `YYY-PAN PIC X(19)`: the card number, left-justified, space-padded.
pub const PAN: Field = Field::new("YYY-PAN", 41, 19);
/// `YYY-EXPIRY PIC 9(4)`: `YYMM`.
pub const EXPIRY: Field = Field::new("YYY-EXPIRY", 60, 4);
/// `YYY-AMOUNT PIC S9(10)V99`: zoned, trailing overpunch sign.
pub const AMOUNT: Field = Field::new("YYY-AMOUNT", 64, 12);
/// `YYY-CURRENCY PIC 9(3)`: DE49.
pub const CURRENCY: Field = Field::new("YYY-CURRENCY", 76, 3);
/// `YYY-RESPONSE-CODE PIC X(2)`: spaces in a request.
pub const RESPONSE_CODE: Field = Field::new("YYY-RESPONSE-CODE", 79, 2);
/// `YYY-APPROVAL-CODE PIC X(6)`.
pub const APPROVAL_CODE: Field = Field::new("YYY-APPROVAL-CODE", 81, 6);
/// `YYY-REASON PIC X(2)`: the reversal's or advice's reason (store-and-forward records).
pub const REASON: Field = Field::new("YYY-REASON", 87, 2);
/// `YYY-REPEAT PIC X(1)`: `N` first sent, `Y` a retransmission (store-and-forward records).
pub const REPEAT: Field = Field::new("YYY-REPEAT", 89, 1);

/// Length of an authorization record (`AQ`, `AR`).
pub const AUTH_LEN: usize = 87;
/// Length of a store-and-forward record (`RQ`, `RR`, `CQ`, `CR`).
pub const SAF_LEN: usize = 90;
/// Digits of `YYY-AMOUNT` (`S9(10)V99`).
pub const AMOUNT_DIGITS: usize = 12;
/// Implied decimals of `YYY-AMOUNT`.
pub const AMOUNT_SCALE: u32 = 2;

/// What a record is: its `YYY-RECORD-TYPE`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RecordType {
    /// `AQ`: authorization request (an 0100 or 0200).
    AuthRequest,
    /// `AR`: authorization reply.
    AuthReply,
    /// `RQ`: reversal request.
    ReversalRequest,
    /// `RR`: reversal reply.
    ReversalReply,
    /// `CQ`: completion advice (an acquirer's 0220).
    AdviceRequest,
    /// `CR`: advice reply.
    AdviceReply,
}

impl RecordType {
    /// Every record type.
    pub const ALL: [RecordType; 6] = [
        RecordType::AuthRequest,
        RecordType::AuthReply,
        RecordType::ReversalRequest,
        RecordType::ReversalReply,
        RecordType::AdviceRequest,
        RecordType::AdviceReply,
    ];

    /// The two characters of `YYY-RECORD-TYPE`.
    pub const fn code(self) -> &'static str {
        match self {
            RecordType::AuthRequest => "AQ",
            RecordType::AuthReply => "AR",
            RecordType::ReversalRequest => "RQ",
            RecordType::ReversalReply => "RR",
            RecordType::AdviceRequest => "CQ",
            RecordType::AdviceReply => "CR",
        }
    }

    /// The record type of `code` (ASCII), if it is one.
    pub fn from_code(code: &[u8]) -> Option<RecordType> {
        RecordType::ALL
            .into_iter()
            .find(|t| t.code().as_bytes() == code)
    }

    /// The record's length.
    pub const fn record_len(self) -> usize {
        match self {
            RecordType::AuthRequest | RecordType::AuthReply => AUTH_LEN,
            _ => SAF_LEN,
        }
    }

    /// Whether the record carries `YYY-REASON` and `YYY-REPEAT`.
    pub const fn is_saf(self) -> bool {
        self.record_len() == SAF_LEN
    }

    /// Whether it is a reply (`AR`, `RR`, `CR`).
    pub const fn is_reply(self) -> bool {
        matches!(
            self,
            RecordType::AuthReply | RecordType::ReversalReply | RecordType::AdviceReply
        )
    }

    /// The reply a request expects, or a reply's own type: `AQ` → `AR`, `RR` → `RR`.
    pub const fn reply(self) -> RecordType {
        match self {
            RecordType::AuthRequest | RecordType::AuthReply => RecordType::AuthReply,
            RecordType::ReversalRequest | RecordType::ReversalReply => RecordType::ReversalReply,
            RecordType::AdviceRequest | RecordType::AdviceReply => RecordType::AdviceReply,
        }
    }
}

impl fmt::Display for RecordType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// What is wrong with a field (never its content: it may be card data).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Problem {
    /// The record's length is not its record type's.
    Length {
        /// Bytes the record type has.
        expected: usize,
        /// Bytes received.
        found: usize,
    },
    /// The record is shorter than `YYY-RECORD-TYPE`.
    NoRecordType {
        /// Bytes received.
        found: usize,
    },
    /// `YYY-RECORD-TYPE` is none of `AQ`, `AR`, `RQ`, `RR`, `CQ`, `CR`.
    UnknownRecordType,
    /// The text is longer than the field.
    TooLong,
    /// A character code page 037 text does not have (writing), or a byte that is no printable
    /// code page 037 character (reading), at this offset.
    NotText,
    /// Not exactly the field's digits.
    NotDigits,
    /// `YYY-PAN` is not digits, left-justified and space-padded.
    NotPan,
    /// `YYY-REPEAT` is neither `Y` nor `N`.
    NotRepeatFlag,
    /// A byte of `YYY-AMOUNT` before the last is not an EBCDIC digit (`F0`–`F9`).
    NotZonedDigit,
    /// The last byte of `YYY-AMOUNT` carries no sign (zones `C`, `F` positive, `D` negative).
    NoSign,
    /// The amount has more digits than `S9(10)V99`, or not 2 decimals.
    AmountDoesNotFit,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Length { expected, found } => {
                write!(f, "record of {found} bytes, its record type has {expected}")
            }
            Problem::NoRecordType { found } => {
                write!(f, "record of {found} bytes has no record type")
            }
            Problem::UnknownRecordType => {
                f.write_str("not a record type of yyy (AQ, AR, RQ, RR, CQ, CR)")
            }
            Problem::TooLong => f.write_str("longer than the field"),
            Problem::NotText => f.write_str("not a printable code page 037 character"),
            Problem::NotDigits => f.write_str("not all digits"),
            Problem::NotPan => f.write_str("not digits, left-justified and space-padded"),
            Problem::NotRepeatFlag => f.write_str("neither Y nor N"),
            Problem::NotZonedDigit => f.write_str("not a zoned digit (F0-F9)"),
            Problem::NoSign => f.write_str("no overpunch sign (zone C, D or F)"),
            Problem::AmountDoesNotFit => f.write_str("does not fit S9(10)V99"),
        }
    }
}

/// A record could not be written or read: which field, at which offset, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordError {
    /// The copybook's data name.
    pub field: &'static str,
    /// Offset in the record of the offending byte (or of the field).
    pub offset: usize,
    /// What is wrong.
    pub problem: Problem,
}

impl RecordError {
    fn new(field: Field, offset: usize, problem: Problem) -> RecordError {
        RecordError {
            field: field.name,
            offset,
            problem,
        }
    }
}

impl fmt::Display for RecordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} at offset {}: {}",
            self.field, self.offset, self.problem
        )
    }
}

impl std::error::Error for RecordError {}

/// A yyy record, its fields as text (ASCII; `X(n)` fields without their trailing spaces).
#[derive(Clone, PartialEq, Eq)]
pub struct Record {
    /// `YYY-RECORD-TYPE`.
    pub kind: RecordType,
    /// `YYY-STAN`: 6 digits.
    pub stan: String,
    /// `YYY-XMIT-DATE-TIME`: 10 digits.
    pub date_time: String,
    /// `YYY-TERMINAL-ID`: up to 8 characters.
    pub terminal: String,
    /// `YYY-MERCHANT-ID`: up to 15 characters.
    pub merchant: String,
    /// `YYY-PAN`: up to 19 digits (empty in replies). Card data: never shown.
    pub pan: String,
    /// `YYY-EXPIRY`: 4 digits `YYMM`.
    pub expiry: String,
    /// `YYY-AMOUNT`: scale 2.
    pub amount: Decimal,
    /// `YYY-CURRENCY`: 3 digits.
    pub currency: String,
    /// `YYY-RESPONSE-CODE`: empty in a request.
    pub response_code: String,
    /// `YYY-APPROVAL-CODE`: empty when none.
    pub approval_code: String,
    /// `YYY-REASON` of a store-and-forward record; empty otherwise.
    pub reason: String,
    /// `YYY-REPEAT` of a store-and-forward record (`Y`); false otherwise.
    pub repeat: bool,
}

impl fmt::Debug for Record {
    // The PAN is shown masked (first 6, last 4), nothing else of it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Record")
            .field("kind", &self.kind)
            .field("stan", &self.stan)
            .field("date_time", &self.date_time)
            .field("terminal", &self.terminal)
            .field("merchant", &self.merchant)
            .field("pan", &mask_pan(self.pan.as_bytes()))
            .field("expiry", &"****")
            .field("amount", &self.amount.to_string())
            .field("currency", &self.currency)
            .field("response_code", &self.response_code)
            .field("approval_code", &self.approval_code)
            .field("reason", &self.reason)
            .field("repeat", &self.repeat)
            .finish()
    }
}

impl Record {
    /// The matching key of the record: `REPLY-TYPE|STAN|TERMINAL|DATE-TIME`, the type the
    /// reply to it has (or a reply's own), e.g. `AR|000123|TERM0001|0615115959`.
    pub fn key(&self) -> String {
        key(self.kind, &self.stan, &self.terminal, &self.date_time)
    }

    /// Writes the record: [`RecordType::len`] bytes of code page 037.
    pub fn encode(&self) -> Result<Vec<u8>, RecordError> {
        let mut out = Vec::with_capacity(self.kind.record_len());
        put_text(&mut out, RECORD_TYPE, self.kind.code())?;
        put_digits(&mut out, STAN, &self.stan)?;
        put_digits(&mut out, DATE_TIME, &self.date_time)?;
        put_text(&mut out, TERMINAL, &self.terminal)?;
        put_text(&mut out, MERCHANT, &self.merchant)?;
        if !self.pan.bytes().all(|b| b.is_ascii_digit()) {
            return Err(RecordError::new(PAN, PAN.offset, Problem::NotPan));
        }
        put_text(&mut out, PAN, &self.pan)?;
        put_digits(&mut out, EXPIRY, &self.expiry)?;
        if self.amount.scale != AMOUNT_SCALE {
            return Err(RecordError::new(
                AMOUNT,
                AMOUNT.offset,
                Problem::AmountDoesNotFit,
            ));
        }
        let zoned = cobol::format_zoned(self.amount, AMOUNT_DIGITS, Zone::Ebcdic)
            .map_err(|_| RecordError::new(AMOUNT, AMOUNT.offset, Problem::AmountDoesNotFit))?;
        out.extend_from_slice(&zoned);
        put_digits(&mut out, CURRENCY, &self.currency)?;
        put_text(&mut out, RESPONSE_CODE, &self.response_code)?;
        put_text(&mut out, APPROVAL_CODE, &self.approval_code)?;
        if self.kind.is_saf() {
            put_text(&mut out, REASON, &self.reason)?;
            put_text(&mut out, REPEAT, if self.repeat { "Y" } else { "N" })?;
        }
        debug_assert_eq!(out.len(), self.kind.record_len());
        Ok(out)
    }

    /// Reads a record of any type; the first bad field, in record order, is the error.
    pub fn decode(record: &[u8]) -> Result<Record, RecordError> {
        let kind = record_type(record)?;
        let stan = digits(record, STAN)?;
        let date_time = digits(record, DATE_TIME)?;
        let terminal = text(record, TERMINAL)?;
        let merchant = text(record, MERCHANT)?;
        let pan = text(record, PAN)?;
        if !pan.bytes().all(|b| b.is_ascii_digit()) {
            return Err(RecordError::new(PAN, PAN.offset, Problem::NotPan));
        }
        let expiry = digits(record, EXPIRY)?;
        let amount =
            cobol::parse_zoned(AMOUNT.of(record), AMOUNT_SCALE, Zone::Ebcdic).map_err(|e| {
                let problem = match e.kind {
                    CobolErrorKind::BadDigit { .. } => Problem::NotZonedDigit,
                    CobolErrorKind::BadSign { .. } => Problem::NoSign,
                    _ => Problem::AmountDoesNotFit,
                };
                RecordError::new(AMOUNT, AMOUNT.offset + e.position, problem)
            })?;
        let currency = digits(record, CURRENCY)?;
        let response_code = text(record, RESPONSE_CODE)?;
        let approval_code = text(record, APPROVAL_CODE)?;
        let (reason, repeat) = if kind.is_saf() {
            let reason = text(record, REASON)?;
            let repeat = match text(record, REPEAT)?.as_str() {
                "Y" => true,
                "N" => false,
                _ => {
                    return Err(RecordError::new(
                        REPEAT,
                        REPEAT.offset,
                        Problem::NotRepeatFlag,
                    ));
                }
            };
            (reason, repeat)
        } else {
            (String::new(), false)
        };
        Ok(Record {
            kind,
            stan,
            date_time,
            terminal,
            merchant,
            pan,
            expiry,
            amount,
            currency,
            response_code,
            approval_code,
            reason,
            repeat,
        })
    }
}

/// A matching key: `TYPE|STAN|TERMINAL|DATE-TIME` with the reply type of `kind`.
fn key(kind: RecordType, stan: &str, terminal: &str, date_time: &str) -> String {
    format!("{}|{stan}|{terminal}|{date_time}", kind.reply())
}

/// The record type of a record of the right length for it.
pub fn record_type(record: &[u8]) -> Result<RecordType, RecordError> {
    let Some(code) = record.get(..RECORD_TYPE.len) else {
        return Err(RecordError::new(
            RECORD_TYPE,
            0,
            Problem::NoRecordType {
                found: record.len(),
            },
        ));
    };
    let ascii: Vec<u8> = code.iter().filter_map(|&b| cp037::decode(b)).collect();
    let kind = RecordType::from_code(&ascii)
        .ok_or_else(|| RecordError::new(RECORD_TYPE, 0, Problem::UnknownRecordType))?;
    if record.len() != kind.record_len() {
        return Err(RecordError::new(
            RECORD_TYPE,
            0,
            Problem::Length {
                expected: kind.record_len(),
                found: record.len(),
            },
        ));
    }
    Ok(kind)
}

/// The record type and matching key of a record, reading only what the key is made of.
pub fn read_key(record: &[u8]) -> Result<(RecordType, String), RecordError> {
    let kind = record_type(record)?;
    let stan = digits(record, STAN)?;
    let terminal = text(record, TERMINAL)?;
    let date_time = digits(record, DATE_TIME)?;
    Ok((kind, key(kind, &stan, &terminal, &date_time)))
}

/// Appends `value` as `PIC X(n)`: code page 037, left-justified, space-padded.
fn put_text(out: &mut Vec<u8>, field: Field, value: &str) -> Result<(), RecordError> {
    if value.len() > field.len {
        return Err(RecordError::new(field, field.offset, Problem::TooLong));
    }
    for (i, b) in value.bytes().enumerate() {
        let e = cp037::encode(b)
            .ok_or_else(|| RecordError::new(field, field.offset + i, Problem::NotText))?;
        out.push(e);
    }
    out.resize(out.len() + field.len - value.len(), cp037::SPACE);
    Ok(())
}

/// Appends `value` as `PIC 9(n)`: exactly n digits.
fn put_digits(out: &mut Vec<u8>, field: Field, value: &str) -> Result<(), RecordError> {
    if value.len() != field.len || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(RecordError::new(field, field.offset, Problem::NotDigits));
    }
    put_text(out, field, value)
}

/// Reads a `PIC X(n)` field, without its trailing spaces.
fn text(record: &[u8], field: Field) -> Result<String, RecordError> {
    let mut value = String::with_capacity(field.len);
    for (i, &b) in field.of(record).iter().enumerate() {
        let a = cp037::decode(b)
            .ok_or_else(|| RecordError::new(field, field.offset + i, Problem::NotText))?;
        value.push(char::from(a));
    }
    value.truncate(value.trim_end_matches(' ').len());
    Ok(value)
}

/// Reads a `PIC 9(n)` field: n EBCDIC digits.
fn digits(record: &[u8], field: Field) -> Result<String, RecordError> {
    let bytes = field.of(record);
    match bytes.iter().position(|b| !(0xf0..=0xf9).contains(b)) {
        Some(i) => Err(RecordError::new(
            field,
            field.offset + i,
            Problem::NotDigits,
        )),
        None => Ok(bytes.iter().map(|&b| char::from(b - 0xf0 + b'0')).collect()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIELDS: [Field; 13] = [
        RECORD_TYPE,
        STAN,
        DATE_TIME,
        TERMINAL,
        MERCHANT,
        PAN,
        EXPIRY,
        AMOUNT,
        CURRENCY,
        RESPONSE_CODE,
        APPROVAL_CODE,
        REASON,
        REPEAT,
    ];

    #[test]
    fn the_fields_follow_each_other_without_gaps() {
        let mut at = 0;
        for f in FIELDS {
            assert_eq!(f.offset, at, "{}", f.name);
            at += f.len;
            if f == APPROVAL_CODE {
                assert_eq!(at, AUTH_LEN);
            }
        }
        assert_eq!(at, SAF_LEN);
    }

    #[test]
    fn record_types_and_their_replies() {
        for t in RecordType::ALL {
            assert_eq!(RecordType::from_code(t.code().as_bytes()), Some(t));
            assert!(t.reply().is_reply());
            assert_eq!(t.reply().reply(), t.reply());
            assert_eq!(t.is_reply(), t.reply() == t, "{t}");
            assert_eq!(t.is_saf(), !t.code().starts_with('A'), "{t}");
        }
        assert_eq!(RecordType::from_code(b"AX"), None);
        assert_eq!(RecordType::from_code(b"A"), None);
    }
}
