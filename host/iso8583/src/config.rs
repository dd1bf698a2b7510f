//! Specs from configuration: serde `Deserialize` for [`Spec`] and [`FieldSpec`], validated at
//! load, every problem reported at once with its path.
//!
//! ```toml
//! name = "acme-host"          # optional; default "custom"
//! extends = "iso87-ascii"     # optional: start from a built-in spec
//! mti = "bcd"                 # ascii | bcd | ebcdic
//! bitmap = "binary"           # binary | hex
//! tertiary_bitmap = false     # bit 65 announces fields 129..=192
//! code_page = "cp037"         # EBCDIC code page: cp037 | cp1047
//! remove = [45]               # drop fields of the base spec
//!
//! [fields.2]
//! length = "LL"               # fixed | L | LL | LLL | LLLL | LLLLLL
//! max_len = 19                # variable fields: max_len (and min_len); fixed fields: len
//! content = "n"               # n | a | an | ans | b | z
//! encoding = "bcd"            # ascii | ebcdic | bcd | binary | hex (default ascii; binary for b)
//! length_encoding = "bcd"     # ascii | ebcdic | bcd | binary | hex (default ascii)
//! pad = "left-0"              # BCD only: left-0 | left-f | right-0 | right-f
//! length_counts = "value"     # value (digits/characters/bytes) | wire (encoded bytes)
//! description = "PAN"
//!
//! [fields.55]                 # composite fields: decoded on demand into subfields
//! length = "LLL"
//! max_len = 255
//! content = "b"
//! composite = "ber-tlv"       # positional | ber-tlv | tlv | bitmapped
//!
//! [fields.48]
//! length = "LLL"
//! max_len = 999
//! content = "ans"
//! composite = "tlv"
//! tag_len = 2                 # tlv: characters of a tag
//! len_digits = 3              # tlv: ASCII digits of a length
//!
//! [fields.127]
//! length = "LLLLLL"
//! max_len = 99999
//! content = "b"
//! composite = "bitmapped"
//! subfield_bitmap = "binary"  # binary | hex
//! subfields.2 = { length = "LL", max_len = 32, content = "ans" }
//! subfields.3 = { length = "fixed", len = 48, content = "ans" }
//! # positional: subfields = [ { length = "fixed", len = 4, content = "n" }, … ]
//! ```

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Deserializer};

use crate::composite::Layout;
use crate::spec::{
    BitmapEncoding, CodePage, ContentType, DataEncoding, FieldSpec, LengthCounts, LengthEncoding,
    LengthKind, MtiEncoding, Pad, Spec,
};

/// A spec from configuration is unusable; every problem found, each with its path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecError {
    problems: Vec<String>,
}

impl SpecError {
    /// Every problem found, each prefixed with its path (`fields.2.encoding: …`).
    pub fn problems(&self) -> &[String] {
        &self.problems
    }
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.problems.as_slice() {
            [one] => f.write_str(one),
            many => write!(f, "{} problems: {}", many.len(), many.join("; ")),
        }
    }
}

impl std::error::Error for SpecError {}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SpecDef {
    name: Option<String>,
    extends: Option<String>,
    mti: Option<MtiEncoding>,
    bitmap: Option<BitmapEncoding>,
    tertiary_bitmap: Option<bool>,
    code_page: Option<CodePage>,
    #[serde(default)]
    remove: Vec<u16>,
    #[serde(default)]
    fields: BTreeMap<String, FieldDef>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FieldDef {
    length: LengthKind,
    len: Option<u32>,
    max_len: Option<u32>,
    min_len: Option<u32>,
    content: ContentType,
    encoding: Option<DataEncoding>,
    length_encoding: Option<LengthEncoding>,
    pad: Option<Pad>,
    length_counts: Option<LengthCounts>,
    description: Option<String>,
    composite: Option<CompositeKind>,
    tag_len: Option<usize>,
    len_digits: Option<usize>,
    subfield_bitmap: Option<BitmapEncoding>,
    subfields: Option<SubfieldsDef>,
}

#[derive(Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
enum CompositeKind {
    Positional,
    BerTlv,
    Tlv,
    Bitmapped,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum SubfieldsDef {
    List(Vec<FieldDef>),
    Map(BTreeMap<String, FieldDef>),
}

impl FieldDef {
    fn build(self) -> Result<FieldSpec, Vec<String>> {
        let mut p = Vec::new();
        let mut forbid = |present: bool, what: &str, why: &str| {
            if present {
                p.push(format!("{what} {why}"));
            }
        };
        let field = if self.length == LengthKind::Fixed {
            let why = "is for variable fields; a fixed field has `len`";
            forbid(self.max_len.is_some(), "max_len", why);
            forbid(self.min_len.is_some(), "min_len", why);
            let why = "has no meaning for a fixed field";
            forbid(self.length_encoding.is_some(), "length_encoding", why);
            forbid(self.length_counts.is_some(), "length_counts", why);
            let Some(len) = self.len else {
                p.push("a fixed field needs `len`".to_string());
                return Err(p);
            };
            FieldSpec::fixed(len, self.content)
        } else {
            forbid(
                self.len.is_some(),
                "len",
                "is for fixed fields; a variable field has `max_len` (and `min_len`)",
            );
            let Some(max_len) = self.max_len else {
                p.push("a variable field needs `max_len`".to_string());
                return Err(p);
            };
            FieldSpec::variable(self.length, max_len, self.content)
                .with_min_len(self.min_len.unwrap_or(0))
                .with_length_encoding(self.length_encoding.unwrap_or_default())
                .with_length_counts(self.length_counts.unwrap_or_default())
        };
        let mut field = field.with_description(self.description.unwrap_or_default());
        if let Some(e) = self.encoding {
            field = field.with_encoding(e);
        }
        if let Some(pad) = self.pad {
            if field.encoding() != DataEncoding::Bcd {
                p.push("pad is only for BCD fields".to_string());
            }
            field = field.with_pad(pad);
        }
        p.extend(field.problems());
        let layout = FieldDef::layout(
            self.composite,
            self.tag_len,
            self.len_digits,
            self.subfield_bitmap,
            self.subfields,
            &mut p,
        );
        if let Some(layout) = layout {
            field = field.with_composite(layout);
        }
        if p.is_empty() { Ok(field) } else { Err(p) }
    }

    fn layout(
        kind: Option<CompositeKind>,
        tag_len: Option<usize>,
        len_digits: Option<usize>,
        bitmap: Option<BitmapEncoding>,
        subfields: Option<SubfieldsDef>,
        p: &mut Vec<String>,
    ) -> Option<Layout> {
        use CompositeKind as K;
        let Some(kind) = kind else {
            if tag_len.is_some() || len_digits.is_some() || bitmap.is_some() || subfields.is_some()
            {
                p.push(
                    "tag_len, len_digits, subfield_bitmap and subfields need `composite`".into(),
                );
            }
            return None;
        };
        if kind != K::Tlv && (tag_len.is_some() || len_digits.is_some()) {
            p.push("tag_len and len_digits are for composite = \"tlv\"".into());
        }
        if kind != K::Bitmapped && bitmap.is_some() {
            p.push("subfield_bitmap is for composite = \"bitmapped\"".into());
        }
        let build = |path: String, def: FieldDef, p: &mut Vec<String>| match def.build() {
            Ok(f) => Some(f),
            Err(e) => {
                p.extend(e.into_iter().map(|e| format!("{path}: {e}")));
                None
            }
        };
        match (kind, subfields) {
            (K::BerTlv, None) => Some(Layout::BerTlv),
            (K::Tlv, None) => match (tag_len, len_digits) {
                (Some(t @ 1..=8), Some(l @ 1..=6)) => Some(Layout::Tlv {
                    tag_len: t,
                    len_digits: l,
                }),
                _ => {
                    p.push(
                        "composite = \"tlv\" needs tag_len (1..=8) and len_digits (1..=6)".into(),
                    );
                    None
                }
            },
            (K::Positional, Some(SubfieldsDef::List(list))) if !list.is_empty() => {
                let n = list.len();
                let specs: Vec<_> = list
                    .into_iter()
                    .enumerate()
                    .filter_map(|(i, d)| build(format!("subfields[{i}]"), d, p))
                    .collect();
                (specs.len() == n).then_some(Layout::Positional(specs))
            }
            (K::Bitmapped, Some(SubfieldsDef::Map(map))) => {
                let mut subfields = vec![None; 65];
                let mut ok = true;
                for (key, def) in map {
                    match key.parse::<usize>() {
                        Ok(k @ 2..=64) => subfields[k] = build(format!("subfields.{key}"), def, p),
                        _ => {
                            p.push(format!("subfields.{key}: subfield numbers are 2..=64"));
                            ok = false;
                        }
                    }
                }
                ok.then_some(Layout::Bitmapped {
                    bitmap: bitmap.unwrap_or_default(),
                    subfields,
                })
            }
            (K::Positional, _) => {
                p.push("composite = \"positional\" needs subfields = [ {…}, … ]".into());
                None
            }
            (K::Bitmapped, _) => {
                p.push("composite = \"bitmapped\" needs a subfields table keyed by number".into());
                None
            }
            (K::BerTlv | K::Tlv, Some(_)) => {
                p.push("subfields are for positional and bitmapped layouts".into());
                None
            }
        }
    }
}

impl TryFrom<SpecDef> for Spec {
    type Error = SpecError;
    fn try_from(def: SpecDef) -> Result<Spec, SpecError> {
        let mut problems = Vec::new();
        let base = match &def.extends {
            None => Spec::new("custom"),
            Some(name) => Spec::builtin(name).unwrap_or_else(|| {
                problems.push(format!(
                    "extends: unknown built-in spec {name:?} (known: {})",
                    Spec::builtin_names().join(", ")
                ));
                Spec::new("custom")
            }),
        };
        let mut spec = base.with_name(def.name.unwrap_or_else(|| "custom".to_string()));
        if let Some(mti) = def.mti {
            spec = spec.with_mti_encoding(mti);
        }
        if let Some(bitmap) = def.bitmap {
            spec = spec.with_bitmap_encoding(bitmap);
        }
        if let Some(code_page) = def.code_page {
            spec = spec.with_code_page(code_page);
        }
        if let Some(tertiary) = def.tertiary_bitmap {
            spec = spec.with_tertiary_bitmap(tertiary);
        }
        for n in def.remove {
            if spec.defines(n) {
                spec = spec.without_field(n);
            } else {
                problems.push(format!("remove: field {n} is not defined"));
            }
        }
        for (key, field) in def.fields {
            let path = format!("fields.{key}");
            let n = match key.parse::<u16>() {
                Ok(n) => n,
                Err(_) => {
                    problems.push(format!("{path}: {key:?} is not a field number"));
                    continue;
                }
            };
            if let Err(e) = spec.check_field_number(n) {
                problems.push(format!("{path}: {e}"));
                continue;
            }
            match field.build() {
                Ok(field) => {
                    // Number and definition are both checked, so this cannot fail.
                    if let Err(e) = spec.set_field(n, field) {
                        problems.push(format!("{path}: {e}"));
                    }
                }
                Err(p) => problems.extend(p.into_iter().map(|p| format!("{path}: {p}"))),
            }
        }
        if problems.is_empty() {
            Ok(spec)
        } else {
            Err(SpecError { problems })
        }
    }
}

impl<'de> Deserialize<'de> for Spec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Spec, D::Error> {
        Spec::try_from(SpecDef::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

impl<'de> Deserialize<'de> for FieldSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<FieldSpec, D::Error> {
        FieldDef::deserialize(d)?
            .build()
            .map_err(|p| serde::de::Error::custom(p.join("; ")))
    }
}

impl Spec {
    /// Loads a spec from TOML text (see the format in this module's documentation); every
    /// problem is reported at once.
    pub fn from_toml_str(text: &str) -> Result<Spec, SpecError> {
        toml::from_str(text).map_err(|e| SpecError {
            problems: vec![e.to_string().trim_end().to_string()],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Message, Mti};

    #[test]
    fn extends_a_builtin_and_overrides_fields() {
        let spec = Spec::from_toml_str(
            r#"
            name = "acme"
            extends = "iso87-ascii"
            mti = "bcd"
            bitmap = "hex"
            remove = [45]

            [fields.2]
            length = "LL"
            max_len = 19
            content = "n"
            encoding = "bcd"
            length_encoding = "bcd"

            [fields.4]
            length = "fixed"
            len = 12
            content = "n"
            encoding = "ebcdic"
            "#,
        )
        .unwrap();
        assert_eq!(spec.name(), "acme");
        assert_eq!(spec.mti_encoding(), MtiEncoding::Bcd);
        assert_eq!(spec.bitmap_encoding(), BitmapEncoding::Hex);
        assert!(!spec.defines(45));
        assert!(spec.defines(44));
        assert_eq!(spec.field(2).unwrap().encoding(), DataEncoding::Bcd);
        assert_eq!(spec.field(4).unwrap().encoding(), DataEncoding::Ebcdic);

        let mut m = Message::new(Mti::new("0200").unwrap());
        m.set(2, "4761739001010119");
        m.set(4, "000000001000");
        let wire = spec.encode(&m).unwrap();
        assert_eq!(
            wire[..],
            b"\x02\x005000000000000000\x16\x47\x61\x73\x90\x01\x01\x01\x19\
              \xf0\xf0\xf0\xf0\xf0\xf0\xf0\xf0\xf1\xf0\xf0\xf0"[..]
        );
        assert_eq!(spec.decode(wire).unwrap(), m);
    }

    #[test]
    fn every_problem_is_reported_with_its_path() {
        let err = Spec::from_toml_str(
            r#"
            extends = "iso99"
            remove = [129]

            [fields.x]
            length = "fixed"
            len = 1
            content = "n"

            [fields.65]
            length = "fixed"
            len = 8
            content = "b"

            [fields.150]
            length = "fixed"
            len = 8
            content = "b"

            [fields.3]
            length = "fixed"
            content = "n"
            max_len = 6
            length_encoding = "bcd"

            [fields.52]
            length = "fixed"
            len = 8
            content = "b"
            encoding = "bcd"

            [fields.48]
            length = "LL"
            max_len = 120
            min_len = 200
            content = "ans"
            pad = "left-f"

            [fields.100]
            length = "LL"
            len = 11
            content = "n"
            "#,
        )
        .unwrap_err();
        let text = err.to_string();
        for expected in [
            "extends: unknown built-in spec \"iso99\" (known: iso87-ascii, iso87-ascii-hex,",
            "remove: field 129 is not defined",
            "fields.x: \"x\" is not a field number",
            "fields.65: field 65 cannot be defined",
            "fields.150: field 150 needs a tertiary bitmap",
            "fields.3: max_len is for variable fields; a fixed field has `len`",
            "fields.3: length_encoding has no meaning for a fixed field",
            "fields.3: a fixed field needs `len`",
            "fields.52: a b field cannot be encoded as bcd; use binary or hex",
            "fields.48: pad is only for BCD fields",
            "fields.48: minimum length 200 is above maximum length 120",
            "fields.48: maximum length 120 does not fit a LL ascii length prefix (at most 99)",
            "fields.100: len is for fixed fields",
            "fields.100: a variable field needs `max_len`",
        ] {
            assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
        }
    }

    #[test]
    fn unknown_keys_are_refused() {
        let err = Spec::from_toml_str("nmae = \"x\"").unwrap_err();
        assert!(err.to_string().contains("unknown field `nmae`"), "{err}");
        let err = Spec::from_toml_str(
            "[fields.2]\nlength = \"LL\"\nmax_len = 19\ncontent = \"n\"\nmaxlen = 3",
        )
        .unwrap_err();
        assert!(err.to_string().contains("unknown field `maxlen`"), "{err}");
        let err =
            Spec::from_toml_str("[fields.2]\nlength = \"LLLLL\"\nmax_len = 19\ncontent = \"n\"")
                .unwrap_err();
        assert!(err.to_string().contains("unknown variant `LLLLL`"), "{err}");
    }

    #[test]
    fn a_field_spec_deserializes_alone() {
        let f: FieldSpec = toml::from_str(
            "length = \"LLL\"\nmax_len = 255\ncontent = \"b\"\nlength_encoding = \"binary\"",
        )
        .unwrap();
        assert_eq!(
            f,
            FieldSpec::variable(LengthKind::LLL, 255, ContentType::B)
                .with_length_encoding(LengthEncoding::Binary)
        );
    }
}
