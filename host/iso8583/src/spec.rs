//! Message specifications as data: how the MTI, the bitmaps and each field are laid out.

use std::borrow::Cow;
use std::fmt;

use bytes::{Bytes, BytesMut};

use crate::decode::{self, DecodeError};
use crate::encode::{self, EncodeError};
use crate::message::{Message, bit};

/// How a field's length is determined: fixed, or a prefix of 1, 2, 3, 4 or 6 digits
/// (LVAR … LLLLLLVAR).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
#[cfg_attr(feature = "serde", derive(serde::Deserialize))]
pub enum LengthKind {
    /// Always exactly the field's length.
    #[cfg_attr(feature = "serde", serde(rename = "fixed"))]
    Fixed,
    /// One length digit (up to 9).
    L,
    /// Two length digits (up to 99).
    LL,
    /// Three length digits (up to 999).
    LLL,
    /// Four length digits (up to 9,999).
    LLLL,
    /// Six length digits (up to 999,999).
    LLLLLL,
}

impl LengthKind {
    /// The number of decimal digits of the length prefix (0 for fixed fields).
    pub const fn digits(self) -> u32 {
        match self {
            LengthKind::Fixed => 0,
            LengthKind::L => 1,
            LengthKind::LL => 2,
            LengthKind::LLL => 3,
            LengthKind::LLLL => 4,
            LengthKind::LLLLLL => 6,
        }
    }
}

/// How a variable field's length prefix is written.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Deserialize),
    serde(rename_all = "lowercase")
)]
pub enum LengthEncoding {
    /// Decimal digits in ASCII, one byte per digit (`"19"`).
    #[default]
    Ascii,
    /// Decimal digits in EBCDIC, one byte per digit (`F1 F9`).
    Ebcdic,
    /// Packed decimal, two digits per byte, left-padded with 0 (LL: `19`; LLL: `01 19`).
    Bcd,
    /// Unsigned big-endian integer: 1 byte for L/LL, 2 for LLL/LLLL, 3 for LLLLLL.
    Binary,
    /// Hexadecimal digits in ASCII, one byte per digit (LL: `"13"` for 19).
    Hex,
}

/// How a field's value is written on the wire.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Deserialize),
    serde(rename_all = "lowercase")
)]
pub enum DataEncoding {
    /// The characters as ASCII bytes (n, a, an, ans, z).
    #[default]
    Ascii,
    /// The characters in EBCDIC, in the spec's code page ([`CodePage`]: 037 unless set)
    /// (n, a, an, ans, z).
    Ebcdic,
    /// Packed decimal, two digits per byte, odd lengths padded per [`Pad`] (n; z with `D`/`=`
    /// as nibble 0xD).
    Bcd,
    /// The bytes as they are (b).
    Binary,
    /// Each byte as two ASCII hex digits, upper case on encode, either case on decode (b).
    Hex,
}

/// The characters a field may hold.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Deserialize),
    serde(rename_all = "lowercase")
)]
pub enum ContentType {
    /// Digits `0`–`9`.
    N,
    /// Letters `A`–`Z`, `a`–`z`.
    A,
    /// Letters and digits.
    An,
    /// Printable ASCII, space to `~`.
    Ans,
    /// Binary: any bytes.
    B,
    /// Track 2/3 data: digits, `=` or `D` as the separator, `:;<>?` (sentinels, controls).
    Z,
}

impl ContentType {
    /// The ISO 8583 abbreviation (`n`, `a`, `an`, `ans`, `b`, `z`).
    pub const fn as_str(self) -> &'static str {
        match self {
            ContentType::N => "n",
            ContentType::A => "a",
            ContentType::An => "an",
            ContentType::Ans => "ans",
            ContentType::B => "b",
            ContentType::Z => "z",
        }
    }
}

impl fmt::Display for ContentType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where the pad nibble of an odd-length BCD value goes, and its value.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
#[cfg_attr(feature = "serde", derive(serde::Deserialize))]
pub enum Pad {
    /// `0` before the first digit (`123` → `01 23`). The default for n.
    #[cfg_attr(feature = "serde", serde(rename = "left-0"))]
    LeftZero,
    /// `F` before the first digit (`123` → `F1 23`).
    #[cfg_attr(feature = "serde", serde(rename = "left-f"))]
    LeftF,
    /// `0` after the last digit (`123` → `12 30`).
    #[cfg_attr(feature = "serde", serde(rename = "right-0"))]
    RightZero,
    /// `F` after the last digit (`123` → `12 3F`). The default for z.
    #[cfg_attr(feature = "serde", serde(rename = "right-f"))]
    RightF,
}

impl Pad {
    pub(crate) const fn is_left(self) -> bool {
        matches!(self, Pad::LeftZero | Pad::LeftF)
    }
    pub(crate) const fn nibble(self) -> u8 {
        match self {
            Pad::LeftZero | Pad::RightZero => 0,
            Pad::LeftF | Pad::RightF => 0xf,
        }
    }
}

/// What a variable field's length prefix (and its minimum and maximum) counts.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Deserialize),
    serde(rename_all = "lowercase")
)]
pub enum LengthCounts {
    /// The value's own length: characters (digits for BCD) or, for b fields, bytes.
    #[default]
    Value,
    /// The encoded bytes on the wire. Differs from `Value` only for BCD (bytes, not digits)
    /// and hex (characters, not bytes). With BCD, decoded values are always an even number of
    /// digits, less an `F` pad nibble.
    Wire,
}

/// How the MTI is written.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Deserialize),
    serde(rename_all = "lowercase")
)]
pub enum MtiEncoding {
    /// Four ASCII digits.
    #[default]
    Ascii,
    /// Two bytes of packed decimal.
    Bcd,
    /// Four EBCDIC digits.
    Ebcdic,
}

/// Which EBCDIC code page a spec's EBCDIC MTI, length prefixes and fields use. They agree on
/// digits, letters and most punctuation; 1047 moves `[`, `]` and `^`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Deserialize),
    serde(rename_all = "lowercase")
)]
pub enum CodePage {
    /// IBM code page 037 (US/Canada; Python's `cp037`).
    #[default]
    Cp037,
    /// IBM code page 1047 (z/OS Open Systems, Latin-1).
    Cp1047,
}

impl CodePage {
    pub(crate) fn tables(self) -> &'static crate::charset::EbcdicTables {
        match self {
            CodePage::Cp037 => &crate::charset::CP037,
            CodePage::Cp1047 => &crate::charset::CP1047,
        }
    }

    /// The code page's name (`cp037`, `cp1047`).
    pub const fn as_str(self) -> &'static str {
        match self {
            CodePage::Cp037 => "cp037",
            CodePage::Cp1047 => "cp1047",
        }
    }
}

/// How the bitmaps are written.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Deserialize),
    serde(rename_all = "lowercase")
)]
pub enum BitmapEncoding {
    /// 8 bytes per bitmap.
    #[default]
    Binary,
    /// 16 ASCII hex digits per bitmap (upper case on encode, either case on decode).
    Hex,
}

/// The definition of one data element. Build with [`FieldSpec::fixed`] or
/// [`FieldSpec::variable`] and the `with_*` methods; [`FieldSpec::validate`] says whether the
/// combination makes sense ([`Spec::with_field`] calls it).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct FieldSpec {
    pub(crate) length: LengthKind,
    pub(crate) min_len: u32,
    pub(crate) max_len: u32,
    pub(crate) content: ContentType,
    pub(crate) encoding: DataEncoding,
    pub(crate) length_encoding: LengthEncoding,
    pub(crate) pad: Pad,
    pub(crate) length_counts: LengthCounts,
    pub(crate) description: Cow<'static, str>,
    pub(crate) composite: Option<std::sync::Arc<crate::composite::Layout>>,
}

/// A field definition that makes no sense (e.g. a b field encoded as BCD).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct FieldSpecError(pub String);

impl FieldSpec {
    /// A fixed-length field of `len` characters (bytes for b), ASCII (binary for b).
    pub const fn fixed(len: u32, content: ContentType) -> FieldSpec {
        FieldSpec::new(LengthKind::Fixed, len, len, content)
    }

    /// A variable-length field of at most `max_len` characters (bytes for b), ASCII data
    /// (binary for b) with an ASCII length prefix.
    pub const fn variable(length: LengthKind, max_len: u32, content: ContentType) -> FieldSpec {
        FieldSpec::new(length, 0, max_len, content)
    }

    const fn new(length: LengthKind, min_len: u32, max_len: u32, content: ContentType) -> Self {
        FieldSpec {
            length,
            min_len,
            max_len,
            content,
            encoding: match content {
                ContentType::B => DataEncoding::Binary,
                _ => DataEncoding::Ascii,
            },
            length_encoding: LengthEncoding::Ascii,
            pad: match content {
                ContentType::Z => Pad::RightF,
                _ => Pad::LeftZero,
            },
            length_counts: LengthCounts::Value,
            description: Cow::Borrowed(""),
            composite: None,
        }
    }

    /// Sets the data encoding.
    pub const fn with_encoding(mut self, encoding: DataEncoding) -> Self {
        self.encoding = encoding;
        self
    }
    /// Sets the length prefix encoding.
    pub const fn with_length_encoding(mut self, encoding: LengthEncoding) -> Self {
        self.length_encoding = encoding;
        self
    }
    /// Sets the pad of odd-length BCD values.
    pub const fn with_pad(mut self, pad: Pad) -> Self {
        self.pad = pad;
        self
    }
    /// Sets what the length prefix counts.
    pub const fn with_length_counts(mut self, counts: LengthCounts) -> Self {
        self.length_counts = counts;
        self
    }
    /// Sets the minimum length of a variable field.
    pub const fn with_min_len(mut self, min_len: u32) -> Self {
        self.min_len = min_len;
        self
    }
    /// Sets the human description.
    pub fn with_description(mut self, description: impl Into<Cow<'static, str>>) -> Self {
        self.description = description.into();
        self
    }

    /// Gives the field a composite layout ([`crate::composite`]): its value can then be
    /// decoded into subfields and encoded back.
    pub fn with_composite(mut self, layout: crate::composite::Layout) -> Self {
        self.composite = Some(std::sync::Arc::new(layout));
        self
    }
    /// The composite layout, if any.
    pub fn composite(&self) -> Option<&crate::composite::Layout> {
        self.composite.as_deref()
    }

    /// Fixed or the width of the length prefix.
    pub fn length(&self) -> LengthKind {
        self.length
    }
    /// The minimum length (equal to `max_len` for fixed fields).
    pub fn min_len(&self) -> u32 {
        self.min_len
    }
    /// The maximum length (the length of fixed fields).
    pub fn max_len(&self) -> u32 {
        self.max_len
    }
    /// The content type.
    pub fn content(&self) -> ContentType {
        self.content
    }
    /// The data encoding.
    pub fn encoding(&self) -> DataEncoding {
        self.encoding
    }
    /// The length prefix encoding (meaningless for fixed fields).
    pub fn length_encoding(&self) -> LengthEncoding {
        self.length_encoding
    }
    /// The pad of odd-length BCD values.
    pub fn pad(&self) -> Pad {
        self.pad
    }
    /// What the length prefix counts.
    pub fn length_counts(&self) -> LengthCounts {
        self.length_counts
    }
    /// The human description.
    pub fn description(&self) -> &str {
        &self.description
    }

    /// Bytes of the length prefix.
    pub(crate) const fn prefix_width(&self) -> usize {
        let digits = self.length.digits() as usize;
        match self.length_encoding {
            LengthEncoding::Ascii | LengthEncoding::Ebcdic | LengthEncoding::Hex => digits,
            LengthEncoding::Bcd | LengthEncoding::Binary => digits.div_ceil(2),
        }
    }

    /// The largest length the prefix can express.
    pub(crate) fn prefix_capacity(&self) -> u64 {
        let digits = self.length.digits();
        match self.length_encoding {
            LengthEncoding::Ascii | LengthEncoding::Ebcdic | LengthEncoding::Bcd => {
                10u64.pow(digits) - 1
            }
            LengthEncoding::Hex => 16u64.pow(digits) - 1,
            LengthEncoding::Binary => (1u64 << (8 * self.prefix_width())) - 1,
        }
    }

    /// Whether lengths count encoded bytes rather than value units (only differs for BCD, hex).
    pub(crate) fn counts_wire(&self) -> bool {
        self.length_counts == LengthCounts::Wire
            && self.length != LengthKind::Fixed
            && matches!(self.encoding, DataEncoding::Bcd | DataEncoding::Hex)
    }

    /// Checks that the definition makes sense; the message names every problem found.
    pub fn validate(&self) -> Result<(), FieldSpecError> {
        let problems = self.problems();
        if problems.is_empty() {
            Ok(())
        } else {
            Err(FieldSpecError(problems.join("; ")))
        }
    }

    pub(crate) fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        use ContentType as C;
        use DataEncoding as D;
        let ok = match self.content {
            C::B => matches!(self.encoding, D::Binary | D::Hex),
            C::N | C::Z => matches!(self.encoding, D::Ascii | D::Ebcdic | D::Bcd),
            C::A | C::An | C::Ans => matches!(self.encoding, D::Ascii | D::Ebcdic),
        };
        if !ok {
            let allowed = match self.content {
                C::B => "binary or hex",
                C::N | C::Z => "ascii, ebcdic or bcd",
                _ => "ascii or ebcdic",
            };
            p.push(format!(
                "a {} field cannot be encoded as {}; use {allowed}",
                self.content,
                encoding_name(self.encoding)
            ));
        }
        if self.max_len == 0 {
            p.push(if self.length == LengthKind::Fixed {
                "a fixed field needs a length of at least 1".to_string()
            } else {
                "a variable field needs a maximum length of at least 1".to_string()
            });
        }
        if self.length == LengthKind::Fixed {
            if self.min_len != self.max_len {
                p.push("a fixed field has no separate minimum length".to_string());
            }
            // A fixed field's length is in value units; keep it sane (and the encoded size
            // addressable).
            if self.max_len > 999_999 {
                p.push(format!(
                    "fixed length {} is over the limit of 999999",
                    self.max_len
                ));
            }
        } else {
            if self.min_len > self.max_len {
                p.push(format!(
                    "minimum length {} is above maximum length {}",
                    self.min_len, self.max_len
                ));
            }
            let cap = self.prefix_capacity();
            if u64::from(self.max_len) > cap {
                p.push(format!(
                    "maximum length {} does not fit a {:?} {} length prefix (at most {cap})",
                    self.max_len,
                    self.length,
                    length_encoding_name(self.length_encoding)
                ));
            }
        }
        p
    }
}

pub(crate) fn encoding_name(e: DataEncoding) -> &'static str {
    match e {
        DataEncoding::Ascii => "ascii",
        DataEncoding::Ebcdic => "ebcdic",
        DataEncoding::Bcd => "bcd",
        DataEncoding::Binary => "binary",
        DataEncoding::Hex => "hex",
    }
}

pub(crate) fn length_encoding_name(e: LengthEncoding) -> &'static str {
    match e {
        LengthEncoding::Ascii => "ascii",
        LengthEncoding::Ebcdic => "ebcdic",
        LengthEncoding::Bcd => "bcd",
        LengthEncoding::Binary => "binary",
        LengthEncoding::Hex => "hex",
    }
}

/// A message specification (data, not code): the MTI encoding, the bitmap encoding, whether a
/// tertiary bitmap exists, and a [`FieldSpec`] per defined data element. Cheap to share
/// (`Arc<Spec>` in callers).
#[derive(Clone, PartialEq, Eq)]
pub struct Spec {
    pub(crate) name: Cow<'static, str>,
    pub(crate) mti: MtiEncoding,
    pub(crate) bitmap: BitmapEncoding,
    pub(crate) tertiary: bool,
    pub(crate) code_page: CodePage,
    /// Indexed by field number, 0..=192.
    pub(crate) fields: Box<[Option<FieldSpec>]>,
    /// Defined fields, in message presence-map order.
    pub(crate) defined: [u64; 3],
    /// Whether any field is hex-encoded (the only encoding that makes values longer).
    pub(crate) has_hex: bool,
}

impl fmt::Debug for Spec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Spec")
            .field("name", &self.name)
            .field("mti", &self.mti)
            .field("bitmap", &self.bitmap)
            .field("tertiary_bitmap", &self.tertiary)
            .field("code_page", &self.code_page)
            .field(
                "fields",
                &self.defined.iter().map(|w| w.count_ones()).sum::<u32>(),
            )
            .finish()
    }
}

impl Spec {
    /// An empty spec: ASCII MTI, binary bitmaps, no tertiary bitmap, no fields.
    pub fn new(name: impl Into<Cow<'static, str>>) -> Spec {
        Spec {
            name: name.into(),
            mti: MtiEncoding::Ascii,
            bitmap: BitmapEncoding::Binary,
            tertiary: false,
            code_page: CodePage::Cp037,
            fields: vec![None; 193].into_boxed_slice(),
            defined: [0; 3],
            has_hex: false,
        }
    }

    /// ISO 8583:1987, ASCII fields, 8-byte binary bitmap(s) — byte-identical to pyiso8583
    /// 4.0.1 `specs.default` for every field it defines (2..=64, 66..=128). Like pyiso8583,
    /// bit 65 announces a tertiary bitmap right after the secondary one; no field 129..=192 is
    /// defined.
    pub fn iso87_ascii() -> Spec {
        crate::builtin::with_emv_data(crate::iso87::spec())
    }

    /// Built-in specs by name: `"iso87-ascii"` (the default; alias `"default"`),
    /// `"iso87-ascii-hex"` (jPOS ISO87A; alias `"iso87a"`), `"iso87-binary"` (jPOS ISO87B;
    /// alias `"iso87b"`), `"iso93-ascii"`, `"iso93-binary"`, `"iso87-ebcdic"` (code page 037)
    /// and `"iso87-ebcdic-1047"`. The table of what each is lives in the `builtin` module docs
    /// and in `docs/codec.md`.
    pub fn builtin(name: &str) -> Option<Spec> {
        crate::builtin::builtin(name)
    }

    /// The canonical names [`Spec::builtin`] knows.
    pub fn builtin_names() -> &'static [&'static str] {
        crate::builtin::CANONICAL
    }

    /// The spec's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Renames the spec (e.g. to the key it has in a configuration file).
    pub fn with_name(mut self, name: impl Into<Cow<'static, str>>) -> Spec {
        self.name = name.into();
        self
    }

    /// The MTI encoding.
    pub fn mti_encoding(&self) -> MtiEncoding {
        self.mti
    }
    /// The bitmap encoding.
    pub fn bitmap_encoding(&self) -> BitmapEncoding {
        self.bitmap
    }
    /// Whether bit 65 announces a tertiary bitmap (fields 129..=192).
    pub fn has_tertiary_bitmap(&self) -> bool {
        self.tertiary
    }

    /// The EBCDIC code page (only matters where something is EBCDIC).
    pub fn code_page(&self) -> CodePage {
        self.code_page
    }
    /// Sets the EBCDIC code page.
    pub fn with_code_page(mut self, code_page: CodePage) -> Spec {
        self.code_page = code_page;
        self
    }

    /// Sets the MTI encoding.
    pub fn with_mti_encoding(mut self, mti: MtiEncoding) -> Spec {
        self.mti = mti;
        self
    }
    /// Sets the bitmap encoding.
    pub fn with_bitmap_encoding(mut self, bitmap: BitmapEncoding) -> Spec {
        self.bitmap = bitmap;
        self
    }
    /// Enables or disables the tertiary bitmap. Disabling it removes fields 129..=192.
    pub fn with_tertiary_bitmap(mut self, tertiary: bool) -> Spec {
        self.tertiary = tertiary;
        if !tertiary {
            for n in 129..=192 {
                self.fields[n] = None;
            }
            self.defined[2] = 0;
            self.has_hex = self.any_hex();
        }
        self
    }

    fn any_hex(&self) -> bool {
        self.fields
            .iter()
            .flatten()
            .any(|f| f.encoding == DataEncoding::Hex)
    }

    /// Defines (or redefines) data element `n`: 2..=64, 66..=128, or 129..=192 when the spec has
    /// a tertiary bitmap. The definition is validated.
    pub fn with_field(mut self, n: u16, field: FieldSpec) -> Result<Spec, FieldSpecError> {
        self.set_field(n, field)?;
        Ok(self)
    }

    pub(crate) fn set_field(&mut self, n: u16, field: FieldSpec) -> Result<(), FieldSpecError> {
        self.check_field_number(n).map_err(FieldSpecError)?;
        field.validate()?;
        let (w, m) = bit(n);
        self.defined[w] |= m;
        self.has_hex |= field.encoding == DataEncoding::Hex;
        self.fields[n as usize] = Some(field);
        Ok(())
    }

    pub(crate) fn check_field_number(&self, n: u16) -> Result<(), String> {
        match n {
            2..=64 | 66..=128 => Ok(()),
            129..=192 if self.tertiary => Ok(()),
            129..=192 => Err(format!(
                "field {n} needs a tertiary bitmap (set tertiary_bitmap = true)"
            )),
            _ => Err(format!(
                "field {n} cannot be defined (data elements are 2..=64 and 66..=192; 1 and 65 are bitmaps)"
            )),
        }
    }

    /// Removes data element `n` from the spec.
    pub fn without_field(mut self, n: u16) -> Spec {
        if (1..=192).contains(&n) {
            let (w, m) = bit(n);
            self.defined[w] &= !m;
            self.fields[n as usize] = None;
            self.has_hex = self.any_hex();
        }
        self
    }

    /// The definition of data element `n`.
    pub fn field(&self, n: u16) -> Option<&FieldSpec> {
        self.fields.get(n as usize)?.as_ref()
    }

    /// Whether data element `n` is defined.
    pub fn defines(&self, n: u16) -> bool {
        self.field(n).is_some()
    }

    /// The defined data elements and their definitions, ascending.
    pub fn fields(&self) -> impl Iterator<Item = (u16, &FieldSpec)> {
        self.fields
            .iter()
            .enumerate()
            .filter_map(|(n, f)| Some((n as u16, f.as_ref()?)))
    }

    /// Decodes one whole message (the frame without its length header). Trailing bytes are an
    /// error.
    pub fn decode(&self, frame: Bytes) -> Result<Message, DecodeError> {
        decode::decode(self, &frame)
    }

    /// Best effort for answering malformed input: everything that could be decoded plus the
    /// first error. The message is `None` only when the MTI could not be read. Fields up to the
    /// first error are included; past an error in a field's *content* (its length was
    /// readable), decoding goes on, so later fields (e.g. DE11 after a bad DE4) are included too
    /// — but never the faulty field itself.
    pub fn decode_partial(&self, frame: Bytes) -> (Option<Message>, Result<(), DecodeError>) {
        decode::decode_partial(self, &frame)
    }

    /// Appends the encoded message to `out`. On error, `out` is left as it was.
    pub fn encode_into(&self, msg: &Message, out: &mut BytesMut) -> Result<(), EncodeError> {
        encode::encode_into(self, msg, out)
    }

    /// Encodes the message into a new buffer.
    pub fn encode(&self, msg: &Message) -> Result<Bytes, EncodeError> {
        let mut out = BytesMut::new();
        self.encode_into(msg, &mut out)?;
        Ok(out.freeze())
    }
}
