//! Encoding messages into frames.

use std::fmt;

use bytes::{BufMut, BytesMut};

use crate::charset::{EbcdicTables, allows, bcd_nibble, first_invalid, hex_digit};
use crate::decode::shown;
use crate::message::{FieldNumbers, Message};
use crate::redact::ByteChar;
use crate::spec::{
    BitmapEncoding, ContentType, DataEncoding, FieldSpec, LengthEncoding, LengthKind, MtiEncoding,
    Spec,
};

/// A message could not be encoded with a spec.
///
/// Display: `field 4: length 3, fixed length 12 required`, `MTI: "02X0" is not 4 digits`.
/// Values of DE2 and DE34 are shown masked, values of DE35, DE36, DE45, DE52 and DE55 never.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodeError {
    /// The data element at fault; `None` for the MTI.
    pub field: Option<u16>,
    /// What is wrong.
    pub kind: EncodeErrorKind,
}

/// Why a message could not be encoded.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum EncodeErrorKind {
    /// The MTI is not four digits (an `Mti` built with `from_bytes` from something else).
    InvalidMti {
        /// The MTI's bytes.
        found: [u8; 4],
    },
    /// The message holds a field the spec does not define.
    FieldNotInSpec,
    /// The value of a fixed field does not have the field's length.
    FixedLength {
        /// The value's length.
        length: usize,
        /// The field's length.
        required: u32,
    },
    /// The value is longer than the field's maximum.
    TooLong {
        /// The value's length (in the field's length unit).
        length: usize,
        /// The field's maximum.
        max: u32,
    },
    /// The value is shorter than the field's minimum.
    TooShort {
        /// The value's length (in the field's length unit).
        length: usize,
        /// The field's minimum.
        min: u32,
    },
    /// The value holds a character its content type (or its BCD encoding) does not allow.
    InvalidCharacter {
        /// The field's content type.
        content: ContentType,
        /// The offending character.
        byte: u8,
        /// Its index in the value.
        position: usize,
        /// The value for display, quoted (masked for a PAN); `None` when it must not be shown.
        value: Option<String>,
    },
}

impl fmt::Display for EncodeErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use EncodeErrorKind::*;
        match self {
            InvalidMti { found } => {
                write!(f, "{:?} is not 4 digits", String::from_utf8_lossy(found))
            }
            FieldNotInSpec => f.write_str("not defined in the spec"),
            FixedLength { length, required } => {
                write!(f, "length {length}, fixed length {required} required")
            }
            TooLong { length, max } => write!(f, "length {length} exceeds the maximum {max}"),
            TooShort { length, min } => write!(f, "length {length} is below the minimum {min}"),
            InvalidCharacter {
                content,
                byte,
                value,
                ..
            } => {
                f.write_str("value ")?;
                if let Some(v) = value {
                    write!(f, "{v} ")?;
                }
                let article = match content {
                    ContentType::B | ContentType::Z => "a",
                    _ => "an",
                };
                write!(
                    f,
                    "contains {} not allowed in {article} {content} field",
                    ByteChar(*byte)
                )
            }
        }
    }
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.field {
            Some(n) => write!(f, "field {n}: {}", self.kind),
            None => write!(f, "MTI: {}", self.kind),
        }
    }
}

impl std::error::Error for EncodeError {}

pub(crate) fn encode_into(
    spec: &Spec,
    msg: &Message,
    out: &mut BytesMut,
) -> Result<(), EncodeError> {
    let mark = out.len();
    let result = write(spec, msg, out);
    if result.is_err() {
        out.truncate(mark);
    }
    result
}

fn write(spec: &Spec, msg: &Message, out: &mut BytesMut) -> Result<(), EncodeError> {
    let mti = msg.mti();
    if !mti.is_valid() {
        return Err(EncodeError {
            field: None,
            kind: EncodeErrorKind::InvalidMti {
                found: *mti.as_bytes(),
            },
        });
    }
    let present = *msg.presence();
    let undefined = [
        present[0] & !spec.defined[0],
        present[1] & !spec.defined[1],
        present[2] & !spec.defined[2],
    ];
    if let Some(n) = (FieldNumbers {
        present: undefined,
        word: 0,
    })
    .next()
    {
        return Err(EncodeError {
            field: Some(n),
            kind: EncodeErrorKind::FieldNotInSpec,
        });
    }

    let tertiary = present[2] != 0;
    let secondary = tertiary || present[1] != 0;
    let bitmap_len = match spec.bitmap {
        BitmapEncoding::Binary => 8,
        BitmapEncoding::Hex => 16,
    };
    let bitmaps = 1 + usize::from(secondary) + usize::from(tertiary);

    // Reserve once: an upper bound of the encoded size. Prefixes take at most 6 bytes; only
    // hex makes a value longer on the wire than it is.
    let fields = || msg.field_numbers().zip(msg.values());
    let values: usize = msg.values().iter().map(|v| v.len()).sum();
    let mut size = 4 + bitmaps * bitmap_len + 6 * msg.len() + values;
    if spec.has_hex {
        size += values;
    }
    out.reserve(size);

    match spec.mti {
        MtiEncoding::Ascii => out.put_slice(mti.as_bytes()),
        MtiEncoding::Ebcdic => {
            for &d in mti.as_bytes() {
                out.put_u8(0xf0 | (d - b'0'));
            }
        }
        MtiEncoding::Bcd => {
            let d = mti.as_bytes().map(|d| d - b'0');
            out.put_slice(&[d[0] << 4 | d[1], d[2] << 4 | d[3]]);
        }
    }
    const FIRST: u64 = 1 << 63;
    put_bitmap(
        spec.bitmap,
        present[0] | if secondary { FIRST } else { 0 },
        out,
    );
    if secondary {
        put_bitmap(
            spec.bitmap,
            present[1] | if tertiary { FIRST } else { 0 },
            out,
        );
    }
    if tertiary {
        put_bitmap(spec.bitmap, present[2], out);
    }

    let ebcdic = spec.code_page.tables();
    for (n, v) in fields() {
        put_field(n, field_spec(spec, n), v, ebcdic, out)?;
    }
    Ok(())
}

/// Bytes on the wire of a value of `units` characters (bytes for b).
#[inline]
fn encoded_len(fs: &FieldSpec, units: usize) -> usize {
    match fs.encoding {
        DataEncoding::Ascii | DataEncoding::Ebcdic | DataEncoding::Binary => units,
        DataEncoding::Bcd => units.div_ceil(2),
        DataEncoding::Hex => units * 2,
    }
}

#[inline]
fn field_spec(spec: &Spec, n: u16) -> &FieldSpec {
    // Every present field was checked against `spec.defined`, which mirrors `spec.fields`.
    spec.fields[n as usize]
        .as_ref()
        .expect("defined fields have a spec")
}

fn put_bitmap(encoding: BitmapEncoding, word: u64, out: &mut BytesMut) {
    match encoding {
        BitmapEncoding::Binary => out.put_u64(word),
        BitmapEncoding::Hex => {
            let mut hex = [0u8; 16];
            for (i, h) in hex.iter_mut().enumerate() {
                *h = hex_digit((word >> (60 - 4 * i)) as u8);
            }
            out.put_slice(&hex);
        }
    }
}

#[inline]
pub(crate) fn put_field(
    n: u16,
    fs: &FieldSpec,
    value: &[u8],
    ebcdic: &EbcdicTables,
    out: &mut BytesMut,
) -> Result<(), EncodeError> {
    let err = |kind| EncodeError {
        field: Some(n),
        kind,
    };
    let units = value.len();
    if fs.length == LengthKind::Fixed && units != fs.max_len as usize {
        return Err(err(EncodeErrorKind::FixedLength {
            length: units,
            required: fs.max_len,
        }));
    }
    let invalid = first_invalid(fs.content, value).or_else(|| {
        // BCD holds digits, and for track data the separator, only.
        (fs.encoding == DataEncoding::Bcd)
            .then(|| value.iter().position(|&b| bcd_nibble(b).is_none()))
            .flatten()
            .map(|i| (i, value[i]))
    });
    if let Some((i, byte)) = invalid {
        debug_assert!(!allows(fs.content, byte) || fs.encoding == DataEncoding::Bcd);
        return Err(err(EncodeErrorKind::InvalidCharacter {
            content: fs.content,
            byte,
            position: i,
            value: shown(n, value),
        }));
    }
    let wire = encoded_len(fs, units);
    if fs.length != LengthKind::Fixed {
        let length = if fs.counts_wire() { wire } else { units };
        if length > fs.max_len as usize {
            return Err(err(EncodeErrorKind::TooLong {
                length,
                max: fs.max_len,
            }));
        }
        if length < fs.min_len as usize {
            return Err(err(EncodeErrorKind::TooShort {
                length,
                min: fs.min_len,
            }));
        }
        put_prefix(fs, length, out);
    }
    match fs.encoding {
        DataEncoding::Ascii | DataEncoding::Binary => out.put_slice(value),
        DataEncoding::Ebcdic => {
            for &b in value {
                out.put_u8(ebcdic.encode(b));
            }
        }
        DataEncoding::Hex => {
            for &b in value {
                out.put_slice(&[hex_digit(b >> 4), hex_digit(b)]);
            }
        }
        DataEncoding::Bcd => {
            let pad = fs.pad.nibble();
            let mut nibbles = value.iter().map(|&b| bcd_nibble(b).unwrap_or(0));
            if units % 2 == 1 && fs.pad.is_left() {
                out.put_u8(pad << 4 | nibbles.next().unwrap_or(0));
            }
            while let Some(hi) = nibbles.next() {
                out.put_u8(hi << 4 | nibbles.next().unwrap_or(pad));
            }
        }
    }
    Ok(())
}

/// Writes a length prefix; `length` fits (specs are validated so that `max_len` fits).
fn put_prefix(fs: &FieldSpec, length: usize, out: &mut BytesMut) {
    let width = fs.prefix_width();
    let mut buf = [0u8; 6];
    let digits = &mut buf[..width];
    match fs.length_encoding {
        LengthEncoding::Ascii | LengthEncoding::Ebcdic => {
            let zero = if fs.length_encoding == LengthEncoding::Ascii {
                b'0'
            } else {
                0xf0
            };
            let mut v = length;
            for d in digits.iter_mut().rev() {
                *d = zero + (v % 10) as u8;
                v /= 10;
            }
        }
        LengthEncoding::Hex => {
            let mut v = length;
            for d in digits.iter_mut().rev() {
                *d = hex_digit((v & 0xf) as u8);
                v >>= 4;
            }
        }
        LengthEncoding::Bcd => {
            let mut v = length;
            for d in digits.iter_mut().rev() {
                *d = (((v / 10 % 10) << 4) | (v % 10)) as u8;
                v /= 100;
            }
        }
        LengthEncoding::Binary => {
            let mut v = length;
            for d in digits.iter_mut().rev() {
                *d = v as u8;
                v >>= 8;
            }
        }
    }
    out.put_slice(digits);
}
