//! Decoding frames into messages, and the errors that say precisely why a frame is malformed.

use std::fmt;

use bytes::Bytes;

use crate::charset::{bcd_char, first_invalid, hex_value};
use crate::message::{FieldNumbers, Message};
use crate::mti::Mti;
use crate::redact::{Shown, Visibility, visibility};
use crate::spec::{
    BitmapEncoding, CodePage, ContentType, DataEncoding, FieldSpec, LengthEncoding, LengthKind,
    MtiEncoding, Spec,
};

/// Which bitmap an error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BitmapLevel {
    /// Fields 1..=64; always present.
    Primary,
    /// Fields 65..=128; present when bit 1 is set.
    Secondary,
    /// Fields 129..=192; present when bit 65 is set.
    Tertiary,
}

impl fmt::Display for BitmapLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BitmapLevel::Primary => "primary",
            BitmapLevel::Secondary => "secondary",
            BitmapLevel::Tertiary => "tertiary",
        })
    }
}

/// A frame could not be decoded.
///
/// `field` is `None` for the MTI, the bitmaps and the message as a whole (trailing bytes).
/// `offset` is the byte offset in the frame of what is wrong: the start of the MTI, bitmap or
/// length prefix; the start of a field's data when it is truncated; the offending byte itself
/// for a bad character.
///
/// Display: `field 4 at offset 22: length 12 required, 3 bytes available`,
/// `MTI at offset 0: not 4 digits`, `secondary bitmap at offset 12: …`,
/// `message at offset 40: 2 unexpected bytes after the last field`.
///
/// An error carries the field, the offset, lengths and the reason, and **no byte of the
/// frame**: not a value, not a length prefix, not even the one offending character. A frame
/// that does not decode may have its fields misparsed (a wrong length prefix moves card digits
/// into a neighbouring field), so no field of it is known to be safe to show; whoever needs the
/// bytes has the frame and the offset. The same holds for its `Debug`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    /// The data element at fault, if any.
    pub field: Option<u16>,
    /// Byte offset in the frame.
    pub offset: usize,
    /// What is wrong.
    pub kind: DecodeErrorKind,
}

/// What is wrong with a frame.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DecodeErrorKind {
    /// The frame ends inside the MTI.
    MtiTruncated {
        /// Bytes the MTI takes.
        need: usize,
        /// Bytes left in the frame.
        have: usize,
    },
    /// The MTI is not four digits.
    InvalidMti,
    /// The frame ends inside a bitmap.
    BitmapTruncated {
        /// Which bitmap.
        bitmap: BitmapLevel,
        /// Bytes the bitmap takes.
        need: usize,
        /// Bytes left in the frame.
        have: usize,
    },
    /// A hex bitmap holds a byte that is not a hex digit.
    InvalidBitmap {
        /// Which bitmap.
        bitmap: BitmapLevel,
    },
    /// Bit 65 announces a tertiary bitmap the spec does not have.
    TertiaryBitmapNotInSpec,
    /// The bitmap announces a field the spec does not define.
    FieldNotInSpec,
    /// The frame ends inside a length prefix.
    LengthPrefixTruncated {
        /// Bytes the prefix takes.
        need: usize,
        /// Bytes left in the frame.
        have: usize,
    },
    /// A length prefix is not a number in its encoding.
    InvalidLengthPrefix {
        /// How the prefix should have been encoded.
        encoding: LengthEncoding,
    },
    /// A length prefix says more than the field's maximum.
    TooLong {
        /// The length read.
        length: usize,
        /// The field's maximum.
        max: u32,
    },
    /// A length prefix says less than the field's minimum.
    TooShort {
        /// The length read.
        length: usize,
        /// The field's minimum.
        min: u32,
    },
    /// The frame ends inside a field's data.
    Truncated {
        /// The field's length (in its length unit).
        length: usize,
        /// Bytes that length takes on the wire.
        need: usize,
        /// Bytes left in the frame.
        have: usize,
    },
    /// A character the field's content type does not allow.
    InvalidCharacter {
        /// The field's content type.
        content: ContentType,
        /// The offending character's index in the value (0-based).
        position: usize,
    },
    /// A byte of a BCD field holds a nibble that is not a digit (or, for z, a separator).
    InvalidBcd,
    /// The pad nibble of an odd-length BCD field is not the configured one.
    InvalidPad {
        /// The configured pad nibble.
        expected: u8,
    },
    /// A byte of a hex field is not a hex digit.
    InvalidHex,
    /// A hex field counted in wire characters has an odd length.
    OddHexLength {
        /// The length read.
        length: usize,
    },
    /// A byte of an EBCDIC field has no printable ASCII counterpart.
    InvalidEbcdic {
        /// The spec's code page.
        code_page: crate::spec::CodePage,
    },
    /// Bytes remain after the last field the bitmap announces.
    TrailingBytes {
        /// How many.
        count: usize,
    },
}

fn article(content: ContentType) -> &'static str {
    match content {
        ContentType::B | ContentType::Z => "a",
        _ => "an",
    }
}

impl DecodeErrorKind {
    /// The length the error is about, when it has one: the value of a length prefix that is
    /// out of bounds, odd or runs past the frame (in the field's length unit).
    pub fn length(&self) -> Option<usize> {
        use DecodeErrorKind::*;
        match self {
            TooLong { length, .. }
            | TooShort { length, .. }
            | Truncated { length, .. }
            | OddHexLength { length } => Some(*length),
            _ => None,
        }
    }
}

impl fmt::Display for DecodeErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use DecodeErrorKind::*;
        match self {
            MtiTruncated { need, have } | BitmapTruncated { need, have, .. } => {
                write!(f, "{need} bytes required, {have} available")
            }
            InvalidMti => f.write_str("not 4 digits"),
            InvalidBitmap { .. } => f.write_str("not a hex digit"),
            TertiaryBitmapNotInSpec => {
                f.write_str("announced by bit 65, but the spec has no tertiary bitmap")
            }
            FieldNotInSpec => f.write_str("present in the bitmap but not defined in the spec"),
            LengthPrefixTruncated { need, have } => {
                write!(f, "length prefix needs {need} bytes, {have} available")
            }
            InvalidLengthPrefix { encoding } => {
                let what = match encoding {
                    LengthEncoding::Ascii => "a decimal number",
                    LengthEncoding::Ebcdic => "a decimal number in EBCDIC",
                    LengthEncoding::Bcd => "a BCD number",
                    LengthEncoding::Hex => "a hexadecimal number",
                    LengthEncoding::Binary => "a binary number",
                };
                write!(f, "length prefix is not {what}")
            }
            TooLong { length, max } => write!(f, "length {length} exceeds the maximum {max}"),
            TooShort { length, min } => write!(f, "length {length} is below the minimum {min}"),
            Truncated { length, need, have } if length == need => {
                write!(f, "length {length} required, {have} bytes available")
            }
            Truncated { length, need, have } => {
                write!(f, "length {length} needs {need} bytes, {have} available")
            }
            InvalidCharacter { content, position } => write!(
                f,
                "character {position} of the value is not allowed in {} {content} field",
                article(*content)
            ),
            InvalidBcd => f.write_str("byte is not valid BCD"),
            InvalidPad { expected } => write!(f, "pad nibble is not {expected:X}"),
            InvalidHex => f.write_str("not a hex digit"),
            OddHexLength { length } => {
                write!(
                    f,
                    "length {length} is odd, but hex takes 2 characters per byte"
                )
            }
            InvalidEbcdic { code_page } => write!(
                f,
                "byte is not a printable character in EBCDIC (code page {})",
                &code_page.as_str()[2..]
            ),
            TrailingBytes { count } => {
                write!(f, "{count} unexpected bytes after the last field")
            }
        }
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use DecodeErrorKind::*;
        let o = self.offset;
        match (self.field, &self.kind) {
            (Some(n), k) => write!(f, "field {n} at offset {o}: {k}"),
            (None, k @ (MtiTruncated { .. } | InvalidMti)) => {
                write!(f, "MTI at offset {o}: {k}")
            }
            (None, k @ (BitmapTruncated { bitmap, .. } | InvalidBitmap { bitmap, .. })) => {
                write!(f, "{bitmap} bitmap at offset {o}: {k}")
            }
            (None, k @ TertiaryBitmapNotInSpec) => write!(f, "tertiary bitmap at offset {o}: {k}"),
            (None, k) => write!(f, "message at offset {o}: {k}"),
        }
    }
}

impl std::error::Error for DecodeError {}

/// A field that failed, and where decoding may resume when only its content was wrong.
pub(crate) struct FieldFail {
    pub(crate) error: DecodeError,
    pub(crate) resume: Option<usize>,
}

struct Decoder<'a> {
    spec: &'a Spec,
    frame: &'a Bytes,
    pos: usize,
}

pub(crate) fn decode(spec: &Spec, frame: &Bytes) -> Result<Message, DecodeError> {
    let mut d = Decoder {
        spec,
        frame,
        pos: 0,
    };
    let mti = d.mti()?;
    let present = d.bitmaps()?;
    let count = present.iter().map(|w| w.count_ones() as usize).sum();
    let mut msg = Message::with_capacity(mti, count);
    d.fields(present, &mut msg, None)?;
    d.finish()?;
    Ok(msg)
}

pub(crate) fn decode_partial(
    spec: &Spec,
    frame: &Bytes,
) -> (Option<Message>, Result<(), DecodeError>) {
    let mut d = Decoder {
        spec,
        frame,
        pos: 0,
    };
    let mti = match d.mti() {
        Ok(mti) => mti,
        Err(e) => return (None, Err(e)),
    };
    let mut msg = Message::new(mti);
    let present = match d.bitmaps() {
        Ok(p) => p,
        Err(e) => return (Some(msg), Err(e)),
    };
    let mut first = None;
    let result = d
        .fields(present, &mut msg, Some(&mut first))
        .and_then(|()| d.finish());
    let result = match first {
        Some(e) => Err(e),
        None => result,
    };
    (Some(msg), result)
}

impl Decoder<'_> {
    #[inline]
    fn have(&self) -> usize {
        self.frame.len() - self.pos
    }

    fn mti(&mut self) -> Result<Mti, DecodeError> {
        let need = match self.spec.mti {
            MtiEncoding::Ascii | MtiEncoding::Ebcdic => 4,
            MtiEncoding::Bcd => 2,
        };
        let err = |kind| DecodeError {
            field: None,
            offset: 0,
            kind,
        };
        let Some(raw) = self.frame.get(..need) else {
            return Err(err(DecodeErrorKind::MtiTruncated {
                need,
                have: self.frame.len(),
            }));
        };
        let mut digits = [0u8; 4];
        let ok = match self.spec.mti {
            MtiEncoding::Ascii => {
                digits.copy_from_slice(raw);
                true
            }
            MtiEncoding::Ebcdic => raw.iter().zip(&mut digits).all(|(&b, d)| {
                *d = b.wrapping_sub(0xf0).wrapping_add(b'0');
                (0xf0..=0xf9).contains(&b)
            }),
            MtiEncoding::Bcd => {
                for (i, &b) in raw.iter().enumerate() {
                    digits[2 * i] = b'0'.wrapping_add(b >> 4);
                    digits[2 * i + 1] = b'0'.wrapping_add(b & 0xf);
                }
                raw.iter().all(|b| b >> 4 < 10 && b & 0xf < 10)
            }
        };
        match Mti::try_from_bytes(&digits) {
            Some(mti) if ok => {
                self.pos = need;
                Ok(mti)
            }
            _ => Err(err(DecodeErrorKind::InvalidMti)),
        }
    }

    fn bitmap(&mut self, level: BitmapLevel) -> Result<u64, DecodeError> {
        let at = self.pos;
        let err = |kind| DecodeError {
            field: None,
            offset: at,
            kind,
        };
        let need = match self.spec.bitmap {
            BitmapEncoding::Binary => 8,
            BitmapEncoding::Hex => 16,
        };
        let Some(raw) = self.frame.get(at..at + need) else {
            return Err(err(DecodeErrorKind::BitmapTruncated {
                bitmap: level,
                need,
                have: self.have(),
            }));
        };
        let word = match self.spec.bitmap {
            BitmapEncoding::Binary => {
                u64::from_be_bytes(raw.try_into().expect("8 bytes were sliced"))
            }
            BitmapEncoding::Hex => {
                let mut w = 0u64;
                for (i, &b) in raw.iter().enumerate() {
                    let Some(v) = hex_value(b) else {
                        return Err(DecodeError {
                            field: None,
                            offset: at + i,
                            kind: DecodeErrorKind::InvalidBitmap { bitmap: level },
                        });
                    };
                    w = (w << 4) | u64::from(v);
                }
                w
            }
        };
        self.pos = at + need;
        Ok(word)
    }

    /// Reads the bitmaps; returns the presence map without the bitmap indicator bits 1 and 65.
    fn bitmaps(&mut self) -> Result<[u64; 3], DecodeError> {
        const FIRST: u64 = 1 << 63;
        let primary = self.bitmap(BitmapLevel::Primary)?;
        let secondary = if primary & FIRST != 0 {
            self.bitmap(BitmapLevel::Secondary)?
        } else {
            0
        };
        let tertiary = if secondary & FIRST != 0 {
            if !self.spec.tertiary {
                return Err(DecodeError {
                    field: None,
                    offset: self.pos,
                    kind: DecodeErrorKind::TertiaryBitmapNotInSpec,
                });
            }
            self.bitmap(BitmapLevel::Tertiary)?
        } else {
            0
        };
        Ok([primary & !FIRST, secondary & !FIRST, tertiary])
    }

    fn fields(
        &mut self,
        present: [u64; 3],
        msg: &mut Message,
        mut first_content_error: Option<&mut Option<DecodeError>>,
    ) -> Result<(), DecodeError> {
        for n in (FieldNumbers { present, word: 0 }) {
            let Some(Some(fs)) = self.spec.fields.get(n as usize) else {
                return Err(DecodeError {
                    field: Some(n),
                    offset: self.pos,
                    kind: DecodeErrorKind::FieldNotInSpec,
                });
            };
            match self.field(n, fs) {
                Ok(value) => msg.push_ascending(n, value),
                Err(FieldFail {
                    error,
                    resume: Some(next),
                }) if first_content_error.is_some() => {
                    if let Some(slot) = first_content_error.as_deref_mut() {
                        slot.get_or_insert(error);
                    }
                    self.pos = next;
                }
                Err(fail) => return Err(fail.error),
            }
        }
        Ok(())
    }

    fn finish(&self) -> Result<(), DecodeError> {
        match self.have() {
            0 => Ok(()),
            count => Err(DecodeError {
                field: None,
                offset: self.pos,
                kind: DecodeErrorKind::TrailingBytes { count },
            }),
        }
    }

    /// Decodes field `n` at the current position and moves past it.
    #[inline]
    fn field(&mut self, n: u16, fs: &FieldSpec) -> Result<Bytes, FieldFail> {
        let (value, end) = read_value(self.frame, self.pos, n, fs, self.spec.code_page)?;
        self.pos = end;
        Ok(value)
    }
}

/// Reads the value of field (or subfield) `n` defined by `fs` at `start` of `frame`; returns
/// it and where it ends. Its errors carry no byte of the frame.
#[inline]
pub(crate) fn read_value(
    frame: &Bytes,
    start: usize,
    n: u16,
    fs: &FieldSpec,
    code_page: CodePage,
) -> Result<(Bytes, usize), FieldFail> {
    {
        let buf: &[u8] = frame;
        let fail = |offset, kind, resume| FieldFail {
            error: DecodeError {
                field: Some(n),
                offset,
                kind,
            },
            resume,
        };

        let (length, data_at) = if fs.length == LengthKind::Fixed {
            (fs.max_len as usize, start)
        } else {
            let width = fs.prefix_width();
            let have = buf.len() - start;
            let Some(raw) = buf.get(start..start + width) else {
                let kind = DecodeErrorKind::LengthPrefixTruncated { need: width, have };
                return Err(fail(start, kind, None));
            };
            let Some(length) = parse_prefix(fs.length_encoding, raw) else {
                let kind = DecodeErrorKind::InvalidLengthPrefix {
                    encoding: fs.length_encoding,
                };
                return Err(fail(start, kind, None));
            };
            let data_at = start + width;
            // Where the field would end, if its bytes are all there: decoding may resume there
            // after a length that is out of bounds but readable.
            let resume = wire_len(fs, length).and_then(|w| {
                let end = data_at.checked_add(w)?;
                (end <= buf.len()).then_some(end)
            });
            if length > fs.max_len as usize {
                let kind = DecodeErrorKind::TooLong {
                    length,
                    max: fs.max_len,
                };
                return Err(fail(start, kind, resume));
            }
            if length < fs.min_len as usize {
                let kind = DecodeErrorKind::TooShort {
                    length,
                    min: fs.min_len,
                };
                return Err(fail(start, kind, resume));
            }
            (length, data_at)
        };

        let Some(wire) = wire_len(fs, length) else {
            return Err(fail(start, DecodeErrorKind::OddHexLength { length }, None));
        };
        let have = buf.len() - data_at;
        if wire > have {
            let kind = DecodeErrorKind::Truncated {
                length,
                need: wire,
                have,
            };
            return Err(fail(data_at, kind, None));
        }
        let end = data_at + wire;
        let raw = &buf[data_at..end];

        let content_error = |i: usize| {
            let kind = DecodeErrorKind::InvalidCharacter {
                content: fs.content,
                position: i,
            };
            fail(data_at + i, kind, Some(end))
        };
        match fs.encoding {
            DataEncoding::Ascii => match first_invalid(fs.content, raw) {
                None => Ok(frame.slice(data_at..end)),
                Some((i, _)) => Err(content_error(i)),
            },
            DataEncoding::Binary => Ok(frame.slice(data_at..end)),
            DataEncoding::Ebcdic => {
                let mut value = Vec::with_capacity(raw.len());
                let tables = code_page.tables();
                for (i, &b) in raw.iter().enumerate() {
                    match tables.decode(b) {
                        Some(a) => value.push(a),
                        None => {
                            let kind = DecodeErrorKind::InvalidEbcdic { code_page };
                            return Err(fail(data_at + i, kind, Some(end)));
                        }
                    }
                }
                match first_invalid(fs.content, &value) {
                    None => Ok(Bytes::from(value)),
                    Some((i, _)) => Err(content_error(i)),
                }
            }
            DataEncoding::Hex => {
                let mut value = Vec::with_capacity(raw.len() / 2);
                for (i, pair) in raw.chunks_exact(2).enumerate() {
                    match (hex_value(pair[0]), hex_value(pair[1])) {
                        (Some(hi), Some(lo)) => value.push(hi << 4 | lo),
                        (None, _) => {
                            let kind = DecodeErrorKind::InvalidHex;
                            return Err(fail(data_at + 2 * i, kind, Some(end)));
                        }
                        (_, None) => {
                            let kind = DecodeErrorKind::InvalidHex;
                            return Err(fail(data_at + 2 * i + 1, kind, Some(end)));
                        }
                    }
                }
                Ok(Bytes::from(value))
            }
            DataEncoding::Bcd => bcd(fs, length, raw)
                .map(Bytes::from)
                .map_err(|(i, kind)| fail(data_at + i, kind, Some(end))),
        }
        .map(|value| (value, end))
    }
}

/// Unpacks a BCD value; on error, the index of the offending byte in `raw`.
fn bcd(fs: &FieldSpec, length: usize, raw: &[u8]) -> Result<Vec<u8>, (usize, DecodeErrorKind)> {
    let pad = fs.pad.nibble();
    let nibbles = raw.len() * 2;
    // Which nibble (if any) is padding: with lengths in digits, an odd length has exactly one;
    // with lengths in bytes, an `F` on the pad side is padding.
    let digits = if fs.counts_wire() { nibbles } else { length };
    let pad_at = if fs.pad.is_left() {
        0
    } else {
        nibbles.saturating_sub(1)
    };
    let nibble = |k: usize| {
        let b = raw[k / 2];
        if k.is_multiple_of(2) { b >> 4 } else { b & 0xf }
    };
    let skip = if digits % 2 == 1 {
        let found = nibble(pad_at);
        if found != pad {
            let kind = DecodeErrorKind::InvalidPad { expected: pad };
            return Err((pad_at / 2, kind));
        }
        Some(pad_at)
    } else if fs.counts_wire() && pad == 0xf && nibbles > 0 && nibble(pad_at) == 0xf {
        Some(pad_at)
    } else {
        None
    };
    let mut value = Vec::with_capacity(nibbles);
    for k in (0..nibbles).filter(|&k| Some(k) != skip) {
        match bcd_char(fs.content, nibble(k)) {
            Some(c) => value.push(c),
            None => return Err((k / 2, DecodeErrorKind::InvalidBcd)),
        }
    }
    Ok(value)
}

/// The value of a length prefix, if it is a number in its encoding.
#[inline]
fn parse_prefix(encoding: LengthEncoding, raw: &[u8]) -> Option<usize> {
    match encoding {
        LengthEncoding::Ascii => raw.iter().try_fold(0usize, |acc, &b| {
            let d = b.wrapping_sub(b'0');
            (d < 10).then_some(acc * 10 + d as usize)
        }),
        LengthEncoding::Ebcdic => raw.iter().try_fold(0usize, |acc, &b| {
            let d = b.wrapping_sub(0xf0);
            (d < 10).then_some(acc * 10 + d as usize)
        }),
        LengthEncoding::Bcd => raw.iter().try_fold(0usize, |acc, &b| {
            let (hi, lo) = (b >> 4, b & 0xf);
            (hi < 10 && lo < 10).then_some(acc * 100 + hi as usize * 10 + lo as usize)
        }),
        LengthEncoding::Hex => raw.iter().try_fold(0usize, |acc, &b| {
            hex_value(b).map(|d| acc * 16 + d as usize)
        }),
        LengthEncoding::Binary => Some(raw.iter().fold(0usize, |acc, &b| acc << 8 | b as usize)),
    }
}

/// Bytes on the wire of a value of `length` (in the field's length unit); `None` for an odd
/// count of hex characters.
#[inline]
pub(crate) fn wire_len(fs: &FieldSpec, length: usize) -> Option<usize> {
    let counts_wire = fs.counts_wire();
    match fs.encoding {
        DataEncoding::Ascii | DataEncoding::Ebcdic | DataEncoding::Binary => Some(length),
        DataEncoding::Bcd if counts_wire => Some(length),
        DataEncoding::Bcd => Some(length.div_ceil(2)),
        DataEncoding::Hex if counts_wire => length.is_multiple_of(2).then_some(length),
        DataEncoding::Hex => length.checked_mul(2),
    }
}

/// A value as an error message may show it.
pub(crate) fn shown(field: u16, value: &[u8]) -> Option<String> {
    match visibility(field) {
        Visibility::Redacted => None,
        _ => Some(
            Shown {
                field,
                value,
                limit: 40,
            }
            .to_string(),
        ),
    }
}
