//! Composite fields: a field whose value has a structure of its own, decoded on demand
//! ([`Spec::decode_subfields`]) and re-encoded byte for byte ([`Spec::encode_subfields`]).
//!
//! - [`Layout::Positional`]: subfields one after the other, each a [`FieldSpec`] (fixed or
//!   with its own length prefix); trailing subfields may be absent.
//! - [`Layout::BerTlv`]: EMV chip data (DE55): BER-TLV, constructed tags decoded into their
//!   children, every tag kept (unknown ones too), each length re-encoded in the form it came.
//! - [`Layout::Tlv`]: private TLV (DE48-style): a tag of N characters, a length of M ASCII
//!   digits, the value.
//! - [`Layout::Bitmapped`]: an 8-byte (or 16 hex character) bitmap, then the subfields it
//!   announces, each a [`FieldSpec`] (DE127-style, as in Postilion and Base24).
//!
//! Messages keep the field as bytes; the structure is read only when asked for, so a switch
//! that passes DE55 through pays nothing for it.

use std::fmt;

use bytes::{BufMut, Bytes, BytesMut};

use crate::decode::read_value;
use crate::encode::put_field;
use crate::spec::{BitmapEncoding, FieldSpec, Spec};

/// The structure of a composite field.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Layout {
    /// Subfields 1, 2, … in order.
    Positional(Vec<FieldSpec>),
    /// EMV BER-TLV.
    BerTlv,
    /// Private TLV with fixed-width ASCII tag and length.
    Tlv {
        /// Characters of a tag.
        tag_len: usize,
        /// ASCII digits of a length.
        len_digits: usize,
    },
    /// A bitmap and the subfields it announces (2..=64; bit 1 must be clear).
    Bitmapped {
        /// How the subfield bitmap is written.
        bitmap: BitmapEncoding,
        /// Subfield definitions by number (index 0 and 1 unused).
        subfields: Vec<Option<FieldSpec>>,
    },
}

/// A decoded composite field.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Subfields {
    /// Positional subfields (1-based in errors), those present.
    Positional(Vec<Bytes>),
    /// BER-TLV or private TLV items, in order.
    Tlv(Vec<Tlv>),
    /// Bitmapped subfields: (number, value), ascending.
    Bitmapped(Vec<(u16, Bytes)>),
}

/// One TLV item.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Tlv {
    /// The tag's bytes (`9F 26`; for private TLV, its characters).
    pub tag: Bytes,
    /// The value.
    pub value: TlvValue,
    /// BER-TLV: bytes of the length as received (1 for the short form; 2..=5 for the long
    /// form), kept so that re-encoding gives the same bytes; 0 for a new item (shortest form).
    pub length_bytes: u8,
}

/// A TLV item's value.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum TlvValue {
    /// A primitive value.
    Primitive(Bytes),
    /// A constructed (BER) value: its items.
    Constructed(Vec<Tlv>),
}

impl Tlv {
    /// A primitive item in the shortest length form.
    pub fn new(tag: impl Into<Bytes>, value: impl Into<Bytes>) -> Tlv {
        Tlv {
            tag: tag.into(),
            value: TlvValue::Primitive(value.into()),
            length_bytes: 0,
        }
    }

    /// The tag as upper-case hex (`9F26`).
    pub fn tag_hex(&self) -> String {
        self.tag.iter().map(|b| format!("{b:02X}")).collect()
    }
}

impl Subfields {
    /// The TLV item with `tag` (searching constructed items too), for TLV layouts.
    pub fn find_tag(&self, tag: &[u8]) -> Option<&Tlv> {
        fn find<'a>(items: &'a [Tlv], tag: &[u8]) -> Option<&'a Tlv> {
            items.iter().find_map(|t| {
                if &t.tag[..] == tag {
                    return Some(t);
                }
                match &t.value {
                    TlvValue::Constructed(children) => find(children, tag),
                    TlvValue::Primitive(_) => None,
                }
            })
        }
        match self {
            Subfields::Tlv(items) => find(items, tag),
            _ => None,
        }
    }

    /// Subfield `n` of a positional (1-based) or bitmapped layout.
    pub fn get(&self, n: u16) -> Option<&Bytes> {
        match self {
            Subfields::Positional(v) => v.get(usize::from(n).checked_sub(1)?),
            Subfields::Bitmapped(v) => v.iter().find(|(k, _)| *k == n).map(|(_, v)| v),
            Subfields::Tlv(_) => None,
        }
    }
}

/// A composite field could not be decoded or encoded.
///
/// Display: `field 55, tag 9F26 at offset 3: length 8 needs 8 bytes, 2 available`,
/// `field 127, subfield 3 at offset 10: …`. Offsets count from the start of the field's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubfieldError {
    /// The field.
    pub field: u16,
    /// The subfield (`3`), tag (`tag 9F26`) or part (`bitmap`) at fault, for humans.
    pub subfield: String,
    /// Byte offset in the field's value (0 when encoding).
    pub offset: usize,
    /// Why.
    pub reason: String,
}

impl fmt::Display for SubfieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "field {}, {} at offset {}: {}",
            self.field, self.subfield, self.offset, self.reason
        )
    }
}

impl std::error::Error for SubfieldError {}

/// Nesting of constructed BER-TLV items accepted (EMV uses 2 or 3).
const MAX_DEPTH: usize = 8;

impl Spec {
    /// The composite layout of field `n`, if it has one.
    pub fn layout(&self, n: u16) -> Option<&Layout> {
        self.field(n)?.composite.as_deref()
    }

    /// Decodes the value of composite field `n` into its subfields.
    pub fn decode_subfields(&self, n: u16, value: &Bytes) -> Result<Subfields, SubfieldError> {
        let layout = self.layout(n).ok_or_else(|| SubfieldError {
            field: n,
            subfield: "layout".into(),
            offset: 0,
            reason: "the field has no composite layout in this spec".into(),
        })?;
        decode(self, n, layout, value)
    }

    /// Encodes subfields back into the value of composite field `n`.
    pub fn encode_subfields(&self, n: u16, subfields: &Subfields) -> Result<Bytes, SubfieldError> {
        let err = |subfield: String, reason: String| SubfieldError {
            field: n,
            subfield,
            offset: 0,
            reason,
        };
        let layout = self.layout(n).ok_or_else(|| {
            err(
                "layout".into(),
                "the field has no composite layout in this spec".into(),
            )
        })?;
        let ebcdic = self.code_page.tables();
        let mut out = BytesMut::new();
        match (layout, subfields) {
            (Layout::Positional(specs), Subfields::Positional(values)) => {
                if values.len() > specs.len() {
                    return Err(err(
                        (specs.len() + 1).to_string(),
                        format!("the layout has {} subfields", specs.len()),
                    ));
                }
                for (i, (fs, v)) in specs.iter().zip(values).enumerate() {
                    put_field(n, fs, v, ebcdic, &mut out)
                        .map_err(|e| err((i + 1).to_string(), e.kind.to_string()))?;
                }
            }
            (Layout::BerTlv, Subfields::Tlv(items)) => put_ber(items, &mut out, 0)
                .map_err(|(tag, reason)| err(format!("tag {tag}"), reason))?,
            (
                Layout::Tlv {
                    tag_len,
                    len_digits,
                },
                Subfields::Tlv(items),
            ) => {
                for t in items {
                    let TlvValue::Primitive(v) = &t.value else {
                        return Err(err(
                            format!("tag {}", String::from_utf8_lossy(&t.tag)),
                            "private TLV has no constructed items".into(),
                        ));
                    };
                    let digits = v.len().to_string();
                    if t.tag.len() != *tag_len || digits.len() > *len_digits {
                        return Err(err(
                            format!("tag {}", String::from_utf8_lossy(&t.tag)),
                            format!(
                                "tag must be {tag_len} characters and the value at most {} bytes",
                                10usize.pow(*len_digits as u32) - 1
                            ),
                        ));
                    }
                    out.put_slice(&t.tag);
                    for _ in digits.len()..*len_digits {
                        out.put_u8(b'0');
                    }
                    out.put_slice(digits.as_bytes());
                    out.put_slice(v);
                }
            }
            (Layout::Bitmapped { bitmap, subfields }, Subfields::Bitmapped(values)) => {
                let mut word = 0u64;
                let mut last = 0;
                for (k, _) in values {
                    if *k <= last
                        || !(2..=64).contains(k)
                        || subfields.get(*k as usize).is_none_or(Option::is_none)
                    {
                        return Err(err(
                            k.to_string(),
                            "not defined in the layout, or out of order".into(),
                        ));
                    }
                    last = *k;
                    word |= 1 << (64 - k);
                }
                match bitmap {
                    BitmapEncoding::Binary => out.put_u64(word),
                    BitmapEncoding::Hex => out.put_slice(format!("{word:016X}").as_bytes()),
                }
                for (k, v) in values {
                    let fs = subfields[*k as usize].as_ref().expect("checked above");
                    put_field(n, fs, v, ebcdic, &mut out)
                        .map_err(|e| err(k.to_string(), e.kind.to_string()))?;
                }
            }
            _ => {
                return Err(err(
                    "layout".into(),
                    "the subfields do not match the field's layout".into(),
                ));
            }
        }
        Ok(out.freeze())
    }
}

fn decode(spec: &Spec, n: u16, layout: &Layout, value: &Bytes) -> Result<Subfields, SubfieldError> {
    let err = |subfield: String, offset: usize, reason: String| SubfieldError {
        field: n,
        subfield,
        offset,
        reason,
    };
    match layout {
        Layout::Positional(specs) => {
            let mut pos = 0;
            let mut out = Vec::new();
            for (i, fs) in specs.iter().enumerate() {
                if pos == value.len() {
                    break;
                }
                let (v, end) = read_value(value, pos, n, fs, spec.code_page).map_err(|f| {
                    err(
                        (i + 1).to_string(),
                        f.error.offset,
                        f.error.kind.to_string(),
                    )
                })?;
                out.push(v);
                pos = end;
            }
            if pos != value.len() {
                return Err(err(
                    "end".into(),
                    pos,
                    format!("{} bytes after the last subfield", value.len() - pos),
                ));
            }
            Ok(Subfields::Positional(out))
        }
        Layout::BerTlv => read_ber(value, 0, value.len(), 0)
            .map(Subfields::Tlv)
            .map_err(|(tag, offset, reason)| err(tag, offset, reason)),
        Layout::Tlv {
            tag_len,
            len_digits,
        } => {
            let mut pos = 0;
            let mut out = Vec::new();
            while pos < value.len() {
                let head = tag_len + len_digits;
                let Some(raw) = value.get(pos..pos + head) else {
                    return Err(err(
                        "tag".into(),
                        pos,
                        format!(
                            "{head} bytes of tag and length required, {} available",
                            value.len() - pos
                        ),
                    ));
                };
                let tag = value.slice(pos..pos + tag_len);
                let name = format!("tag {}", String::from_utf8_lossy(&tag).escape_debug());
                let len = raw[*tag_len..].iter().try_fold(0usize, |acc, &b| {
                    let d = b.wrapping_sub(b'0');
                    (d < 10).then_some(acc * 10 + d as usize)
                });
                let Some(len) = len else {
                    return Err(err(
                        name,
                        pos + tag_len,
                        "length is not ASCII digits".into(),
                    ));
                };
                let start = pos + head;
                if len > value.len() - start {
                    return Err(err(
                        name,
                        start,
                        format!(
                            "length {len} required, {} bytes available",
                            value.len() - start
                        ),
                    ));
                }
                out.push(Tlv {
                    tag,
                    value: TlvValue::Primitive(value.slice(start..start + len)),
                    length_bytes: *len_digits as u8,
                });
                pos = start + len;
            }
            Ok(Subfields::Tlv(out))
        }
        Layout::Bitmapped { bitmap, subfields } => {
            let width = match bitmap {
                BitmapEncoding::Binary => 8,
                BitmapEncoding::Hex => 16,
            };
            let Some(raw) = value.get(..width) else {
                return Err(err(
                    "bitmap".into(),
                    0,
                    format!("{width} bytes required, {} available", value.len()),
                ));
            };
            let word = match bitmap {
                BitmapEncoding::Binary => raw.iter().fold(0u64, |w, &b| w << 8 | u64::from(b)),
                BitmapEncoding::Hex => {
                    let mut w = 0u64;
                    for (i, &b) in raw.iter().enumerate() {
                        let d = (b as char).to_digit(16).ok_or_else(|| {
                            err(
                                "bitmap".into(),
                                i,
                                format!("byte 0x{b:02X} is not a hex digit"),
                            )
                        })?;
                        w = w << 4 | u64::from(d);
                    }
                    w
                }
            };
            if word & (1 << 63) != 0 {
                return Err(err(
                    "bitmap".into(),
                    0,
                    "bit 1 is set, but subfield bitmaps have no extension".into(),
                ));
            }
            let mut pos = width;
            let mut out = Vec::new();
            for k in 2..=64u16 {
                if word & (1 << (64 - k)) == 0 {
                    continue;
                }
                let Some(Some(fs)) = subfields.get(k as usize) else {
                    return Err(err(
                        k.to_string(),
                        pos,
                        "present in the bitmap but not defined in the layout".into(),
                    ));
                };
                let (v, end) = read_value(value, pos, n, fs, spec.code_page)
                    .map_err(|f| err(k.to_string(), f.error.offset, f.error.kind.to_string()))?;
                out.push((k, v));
                pos = end;
            }
            if pos != value.len() {
                return Err(err(
                    "end".into(),
                    pos,
                    format!("{} bytes after the last subfield", value.len() - pos),
                ));
            }
            Ok(Subfields::Bitmapped(out))
        }
    }
}

type BerFail = (String, usize, String);

fn read_ber(value: &Bytes, mut pos: usize, end: usize, depth: usize) -> Result<Vec<Tlv>, BerFail> {
    let mut items = Vec::new();
    while pos < end {
        let start = pos;
        let first = value[pos];
        pos += 1;
        if first & 0x1f == 0x1f {
            // Subsequent tag bytes while bit 8 is set; EMV tags are at most 3 bytes.
            loop {
                let Some(&b) = value.get(pos).filter(|_| pos < end) else {
                    return Err(("tag".into(), start, "the stream ends inside a tag".into()));
                };
                pos += 1;
                if b & 0x80 == 0 {
                    break;
                }
                if pos - start >= 4 {
                    return Err(("tag".into(), start, "tag longer than 4 bytes".into()));
                }
            }
        }
        let tag = value.slice(start..pos);
        let name = format!(
            "tag {}",
            tag.iter().map(|b| format!("{b:02X}")).collect::<String>()
        );
        let Some(&l) = value.get(pos).filter(|_| pos < end) else {
            return Err((name, pos, "the value ends before the length".into()));
        };
        let len_at = pos;
        pos += 1;
        let len = if l < 0x80 {
            usize::from(l)
        } else {
            let k = usize::from(l & 0x7f);
            if k == 0 || k > 4 {
                return Err((
                    name,
                    len_at,
                    format!("length byte 0x{l:02X} is not a definite length of 1 to 4 bytes"),
                ));
            }
            let Some(raw) = value.get(pos..pos + k).filter(|_| pos + k <= end) else {
                return Err((name, len_at, "the value ends inside a length".into()));
            };
            pos += k;
            raw.iter().fold(0usize, |acc, &b| acc << 8 | usize::from(b))
        };
        if len > end - pos {
            return Err((
                name,
                pos,
                format!("length {len} needs {len} bytes, {} available", end - pos),
            ));
        }
        let length_bytes = (pos - len_at) as u8;
        let item_value = if first & 0x20 != 0 {
            if depth >= MAX_DEPTH {
                return Err((
                    name,
                    start,
                    format!("constructed items nested deeper than {MAX_DEPTH}"),
                ));
            }
            TlvValue::Constructed(read_ber(value, pos, pos + len, depth + 1)?)
        } else {
            TlvValue::Primitive(value.slice(pos..pos + len))
        };
        items.push(Tlv {
            tag,
            value: item_value,
            length_bytes,
        });
        pos += len;
    }
    Ok(items)
}

fn put_ber(items: &[Tlv], out: &mut BytesMut, depth: usize) -> Result<(), (String, String)> {
    for t in items {
        if t.tag.is_empty() || t.tag.len() > 4 {
            return Err((t.tag_hex(), "a tag is 1 to 4 bytes".into()));
        }
        let mut body = BytesMut::new();
        let body: &[u8] = match &t.value {
            TlvValue::Primitive(v) => v,
            TlvValue::Constructed(children) => {
                if depth >= MAX_DEPTH {
                    return Err((t.tag_hex(), format!("nested deeper than {MAX_DEPTH}")));
                }
                put_ber(children, &mut body, depth + 1)?;
                &body
            }
        };
        let len = body.len();
        let minimal = match len {
            0..=0x7f => 1,
            0x80..=0xff => 2,
            0x100..=0xffff => 3,
            0x1_0000..=0xff_ffff => 4,
            _ => 5,
        };
        let form = usize::from(t.length_bytes).max(minimal).min(5);
        out.put_slice(&t.tag);
        if form == 1 {
            out.put_u8(len as u8);
        } else {
            let k = form - 1;
            out.put_u8(0x80 | k as u8);
            for i in (0..k).rev() {
                out.put_u8((len >> (8 * i)) as u8);
            }
        }
        out.put_slice(body);
    }
    Ok(())
}
