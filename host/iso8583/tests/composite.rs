//! Composite fields: decoded into structure and re-encoded byte for byte.

use switchyard_iso8583::composite::{Layout, Subfields, Tlv, TlvValue};
use switchyard_iso8583::{Bytes, Spec};

fn hex(s: &str) -> Bytes {
    Bytes::from(
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect::<Vec<_>>(),
    )
}

#[test]
fn emv_data_is_ber_tlv_with_unknown_tags_and_length_forms_kept() {
    let spec = Spec::builtin("iso87-binary").unwrap();
    assert_eq!(spec.layout(55), Some(&Layout::BerTlv));
    // 9F26 (cryptogram), 82 (AIP), a constructed 70 template holding 5F34 and an unknown
    // private tag DF8101, and 9F10 with a long-form length (81 03) for a 3-byte value.
    let value = hex("9F2608A1B2C3D4E5F6071882021980700A5F340101DF8101020A0B9F108103060708");
    let tlv = spec.decode_subfields(55, &value).unwrap();
    let Subfields::Tlv(items) = &tlv else {
        panic!("not TLV")
    };
    assert_eq!(
        items.iter().map(Tlv::tag_hex).collect::<Vec<_>>(),
        ["9F26", "82", "70", "9F10"]
    );
    let TlvValue::Constructed(children) = &items[2].value else {
        panic!("70 is constructed")
    };
    assert_eq!(children[1].tag_hex(), "DF8101");
    assert_eq!(items[3].length_bytes, 2);
    assert_eq!(
        tlv.find_tag(&[0xdf, 0x81, 0x01]).unwrap().value,
        TlvValue::Primitive(hex("0A0B"))
    );
    assert_eq!(spec.encode_subfields(55, &tlv).unwrap(), value);
    // A new item gets the shortest length form.
    let fresh = Subfields::Tlv(vec![Tlv::new(hex("9F02"), hex("000000001000"))]);
    assert_eq!(
        spec.encode_subfields(55, &fresh).unwrap(),
        hex("9F0206000000001000")
    );
}

#[test]
fn ber_tlv_errors_name_the_tag_and_offset() {
    let spec = Spec::iso87_ascii();
    let e = |h: &str| spec.decode_subfields(55, &hex(h)).unwrap_err().to_string();
    assert_eq!(
        e("9F2608A1B2"),
        "field 55, tag 9F26 at offset 3: length 8 needs 8 bytes, 2 available"
    );
    assert_eq!(
        e("9F"),
        "field 55, tag at offset 0: the stream ends inside a tag"
    );
    assert_eq!(
        e("8280"),
        "field 55, tag 82 at offset 1: length byte 0x80 is not a definite length of 1 to 4 bytes"
    );
    // Nesting is bounded; no input panics.
    let mut nested = String::new();
    for _ in 0..20 {
        nested.push_str("7081");
    }
    let _ = spec.decode_subfields(55, &hex(&nested));
}

#[test]
fn private_tlv_positional_and_bitmapped_from_config() {
    let spec = Spec::from_toml_str(
        r#"
        extends = "iso87-ascii"

        [fields.48]
        length = "LLL"
        max_len = 999
        content = "ans"
        composite = "tlv"
        tag_len = 2
        len_digits = 3

        [fields.60]
        length = "LLL"
        max_len = 999
        content = "ans"
        composite = "positional"
        subfields = [
            { length = "fixed", len = 4, content = "n" },
            { length = "LL", max_len = 20, content = "ans" },
            { length = "fixed", len = 2, content = "an" },
        ]

        [fields.127]
        length = "LLL"
        max_len = 999
        content = "b"
        composite = "bitmapped"
        subfield_bitmap = "binary"
        subfields.2 = { length = "LL", max_len = 32, content = "ans" }
        subfields.3 = { length = "fixed", len = 6, content = "n" }
        subfields.22 = { length = "LLL", max_len = 500, content = "ans" }
        "#,
    )
    .unwrap();

    let de48 = Bytes::from_static(b"01003ABC02000TE011SWITCHYARD!");
    let tlv = spec.decode_subfields(48, &de48).unwrap();
    let Subfields::Tlv(items) = &tlv else {
        panic!()
    };
    assert_eq!(items.len(), 3);
    assert_eq!(&items[0].tag[..], b"01");
    assert_eq!(items[1].value, TlvValue::Primitive(Bytes::new()));
    assert_eq!(spec.encode_subfields(48, &tlv).unwrap(), de48);
    assert_eq!(
        spec.decode_subfields(48, &Bytes::from_static(b"01009AB"))
            .unwrap_err()
            .to_string(),
        "field 48, tag 01 at offset 5: length 9 required, 2 bytes available"
    );

    let de60 = Bytes::from_static(b"123405HELLOZZ");
    let pos = spec.decode_subfields(60, &de60).unwrap();
    assert_eq!(pos.get(2).unwrap(), &b"HELLO"[..]);
    assert_eq!(spec.encode_subfields(60, &pos).unwrap(), de60);
    // Trailing subfields may be absent.
    let short = Bytes::from_static(b"1234");
    assert_eq!(
        spec.decode_subfields(60, &short).unwrap(),
        Subfields::Positional(vec![short.clone()])
    );
    assert_eq!(
        spec.decode_subfields(60, &Bytes::from_static(b"12x4"))
            .unwrap_err()
            .to_string(),
        "field 60, 1 at offset 2: character 2 of the value is not allowed in an n field"
    );

    let mut de127 = vec![0x60, 0, 0x04, 0, 0, 0, 0, 0];
    de127.extend_from_slice(b"04ABCD123456007private");
    let de127 = Bytes::from(de127);
    let bm = spec.decode_subfields(127, &de127).unwrap();
    assert_eq!(
        bm,
        Subfields::Bitmapped(vec![
            (2, Bytes::from_static(b"ABCD")),
            (3, Bytes::from_static(b"123456")),
            (22, Bytes::from_static(b"private")),
        ])
    );
    assert_eq!(spec.encode_subfields(127, &bm).unwrap(), de127);
    let mut undefined = de127.to_vec();
    undefined[0] |= 0x10; // subfield 4
    assert!(
        spec.decode_subfields(127, &Bytes::from(undefined))
            .unwrap_err()
            .to_string()
            .starts_with("field 127, 4 at offset")
    );
}

#[test]
fn composite_config_problems_are_reported() {
    let err = Spec::from_toml_str(
        r#"
        [fields.48]
        length = "LLL"
        max_len = 999
        content = "ans"
        composite = "tlv"

        [fields.60]
        length = "LLL"
        max_len = 999
        content = "ans"
        composite = "positional"
        subfields = [ { length = "fixed", content = "n" } ]
        "#,
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("fields.48: composite = \"tlv\" needs tag_len"),
        "{err}"
    );
    assert!(
        err.contains("fields.60: subfields[0]: a fixed field needs `len`"),
        "{err}"
    );
}
