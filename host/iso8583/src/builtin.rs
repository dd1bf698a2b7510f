//! The built-in specs, by name: one field table per standard (1987, 1993) and the wire
//! dialects applied to it (ASCII, ASCII with hex bitmap, binary/BCD, EBCDIC).
//!
//! | name | MTI | bitmap | n fields | lengths | b fields | like |
//! |---|---|---|---|---|---|---|
//! | `iso87-ascii` | ASCII | binary | ASCII | ASCII | raw | pyiso8583 `specs.default` |
//! | `iso87-ascii-hex` | ASCII | hex | ASCII | ASCII | hex | jPOS `ISO87APackager` |
//! | `iso87-binary` | BCD | binary | BCD | BCD | raw | jPOS `ISO87BPackager` |
//! | `iso93-ascii` | ASCII | binary | ASCII | ASCII | raw | ISO 8583:1993 fields |
//! | `iso93-binary` | BCD | binary | BCD | BCD | raw | ISO 8583:1993 fields |
//! | `iso87-ebcdic` | EBCDIC | binary | EBCDIC | EBCDIC | raw | code page 037 |
//! | `iso87-ebcdic-1047` | EBCDIC | binary | EBCDIC | EBCDIC | raw | code page 1047 |
//!
//! In the binary dialects, fixed n fields are BCD padded on the left with 0 (`123` → `01 23`);
//! variable n fields (DE2, DE32, DE33, …) and DE35 are BCD padded on the *right* with 0, as jPOS
//! `IFB_LLNUM` does; a/an/ans fields stay ASCII (DE49 too); every length prefix is BCD and
//! counts digits or characters. Hosts differ on all of this: a spec that `extends` a built-in
//! changes any field's `pad` or `encoding`.

use crate::spec::{
    BitmapEncoding, CodePage, ContentType, DataEncoding, LengthCounts, LengthEncoding, LengthKind,
    MtiEncoding, Pad, Spec,
};

/// (canonical name, aliases)
const NAMES: &[(&str, &[&str])] = &[
    ("iso87-ascii", &["default"]),
    ("iso87-ascii-hex", &["iso87a", "jpos-iso87a"]),
    ("iso87-binary", &["iso87b", "jpos-iso87b"]),
    ("iso93-ascii", &["iso93a"]),
    ("iso93-binary", &["iso93b"]),
    ("iso87-ebcdic", &["iso87-ebcdic-037"]),
    ("iso87-ebcdic-1047", &[]),
];

/// The canonical names.
pub(crate) const CANONICAL: &[&str] = &[
    "iso87-ascii",
    "iso87-ascii-hex",
    "iso87-binary",
    "iso93-ascii",
    "iso93-binary",
    "iso87-ebcdic",
    "iso87-ebcdic-1047",
];

pub(crate) fn builtin(name: &str) -> Option<Spec> {
    let canonical = NAMES
        .iter()
        .find(|(c, aliases)| *c == name || aliases.contains(&name))?
        .0;
    let spec = match canonical {
        "iso87-ascii" => crate::iso87::spec(),
        "iso87-ascii-hex" => ascii_hex(crate::iso87::spec()),
        "iso87-binary" => binary(crate::iso87::spec()),
        "iso93-ascii" => crate::iso93::spec(),
        "iso93-binary" => binary(crate::iso93::spec()),
        "iso87-ebcdic" => ebcdic(crate::iso87::spec(), CodePage::Cp037),
        "iso87-ebcdic-1047" => ebcdic(crate::iso87::spec(), CodePage::Cp1047),
        _ => return None,
    };
    Some(with_emv_data(spec).with_name(canonical))
}

/// DE55 (ICC data) is BER-TLV in every built-in spec.
pub(crate) fn with_emv_data(mut spec: Spec) -> Spec {
    if let Some(f) = spec.fields[55].as_mut() {
        f.composite = Some(std::sync::Arc::new(crate::composite::Layout::BerTlv));
    }
    spec
}

/// Hex bitmaps; b fields as hex characters, variable ones counting those characters.
fn ascii_hex(mut spec: Spec) -> Spec {
    spec.bitmap = BitmapEncoding::Hex;
    for f in spec.fields.iter_mut().flatten() {
        if f.content == ContentType::B {
            f.encoding = DataEncoding::Hex;
            if f.length != LengthKind::Fixed {
                f.length_counts = LengthCounts::Wire;
                f.max_len = (f.max_len * 2).min(f.prefix_capacity() as u32);
            }
        }
    }
    spec.has_hex = true;
    spec
}

/// BCD MTI, BCD n fields (fixed: left 0 pad; variable and DE35: right 0 pad), BCD lengths.
fn binary(mut spec: Spec) -> Spec {
    spec.mti = MtiEncoding::Bcd;
    for (n, f) in spec.fields.iter_mut().enumerate() {
        let Some(f) = f else { continue };
        let variable = f.length != LengthKind::Fixed;
        match f.content {
            ContentType::N => {
                f.encoding = DataEncoding::Bcd;
                f.pad = if variable {
                    Pad::RightZero
                } else {
                    Pad::LeftZero
                };
            }
            ContentType::Z if n == 35 => {
                f.encoding = DataEncoding::Bcd;
                f.pad = Pad::RightZero;
            }
            _ => {}
        }
        if variable {
            f.length_encoding = LengthEncoding::Bcd;
        }
    }
    spec
}

/// EBCDIC MTI, fields and length prefixes; b fields raw; binary bitmaps.
fn ebcdic(mut spec: Spec, code_page: CodePage) -> Spec {
    spec.mti = MtiEncoding::Ebcdic;
    spec.code_page = code_page;
    for f in spec.fields.iter_mut().flatten() {
        if f.content != ContentType::B {
            f.encoding = DataEncoding::Ebcdic;
        }
        if f.length != LengthKind::Fixed {
            f.length_encoding = LengthEncoding::Ebcdic;
        }
    }
    spec
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_and_alias_resolves_to_a_valid_spec() {
        for (name, aliases) in NAMES {
            assert!(CANONICAL.contains(name));
            let spec = builtin(name).unwrap();
            assert_eq!(spec.name(), *name);
            for (n, f) in spec.fields() {
                f.validate()
                    .unwrap_or_else(|e| panic!("{name} field {n}: {e}"));
            }
            for alias in *aliases {
                assert_eq!(builtin(alias).unwrap(), spec);
            }
        }
        assert_eq!(CANONICAL.len(), NAMES.len());
        assert!(builtin("iso99").is_none());
    }

    #[test]
    fn binary_dialect_pads_like_jpos() {
        let spec = builtin("iso87-binary").unwrap();
        assert_eq!(spec.field(2).unwrap().pad(), Pad::RightZero);
        assert_eq!(spec.field(3).unwrap().pad(), Pad::LeftZero);
        assert_eq!(spec.field(35).unwrap().encoding(), DataEncoding::Bcd);
        assert_eq!(spec.field(36).unwrap().encoding(), DataEncoding::Ascii);
        assert_eq!(spec.field(49).unwrap().encoding(), DataEncoding::Ascii);
        assert_eq!(
            spec.field(48).unwrap().length_encoding(),
            LengthEncoding::Bcd
        );
    }
}
