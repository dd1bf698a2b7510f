//! The spec model beyond the default spec: BCD, EBCDIC, hex and binary encodings, every length
//! kind, hex bitmaps, BCD/EBCDIC MTIs, tertiary bitmaps.

use proptest::prelude::*;
use switchyard_iso8583::{
    BitmapEncoding, Bytes, ContentType, DataEncoding, FieldSpec, LengthCounts, LengthEncoding,
    LengthKind, Message, Mti, MtiEncoding, Pad, Spec,
};

fn one_field(field: FieldSpec) -> Spec {
    Spec::new("t").with_field(2, field).unwrap()
}

/// Encodes DE2 = `value` alone and returns the field's bytes (after MTI and bitmap).
fn field_bytes(spec: &Spec, value: &[u8]) -> Vec<u8> {
    let mut m = Message::new(Mti::new("0200").unwrap());
    m.set(2, Bytes::copy_from_slice(value));
    let wire = spec.encode(&m).unwrap();
    assert_eq!(spec.decode(wire.clone()).unwrap(), m, "round trip");
    wire[12..].to_vec()
}

#[test]
fn bcd_values_and_pads() {
    use ContentType::N;
    let var = |pad| {
        one_field(
            FieldSpec::variable(LengthKind::LL, 19, N)
                .with_encoding(DataEncoding::Bcd)
                .with_length_encoding(LengthEncoding::Bcd)
                .with_pad(pad),
        )
    };
    assert_eq!(field_bytes(&var(Pad::LeftZero), b"123"), [0x03, 0x01, 0x23]);
    assert_eq!(field_bytes(&var(Pad::LeftF), b"123"), [0x03, 0xf1, 0x23]);
    assert_eq!(
        field_bytes(&var(Pad::RightZero), b"123"),
        [0x03, 0x12, 0x30]
    );
    assert_eq!(field_bytes(&var(Pad::RightF), b"123"), [0x03, 0x12, 0x3f]);
    assert_eq!(field_bytes(&var(Pad::RightF), b"1234"), [0x04, 0x12, 0x34]);
    assert_eq!(field_bytes(&var(Pad::RightF), b""), [0x00]);
    let fixed = one_field(FieldSpec::fixed(6, N).with_encoding(DataEncoding::Bcd));
    assert_eq!(field_bytes(&fixed, b"000100"), [0x00, 0x01, 0x00]);
}

#[test]
fn bcd_track_data_uses_d_as_separator() {
    let spec = one_field(
        FieldSpec::variable(LengthKind::LL, 37, ContentType::Z)
            .with_encoding(DataEncoding::Bcd)
            .with_length_encoding(LengthEncoding::Binary),
    );
    assert_eq!(field_bytes(&spec, b"12D345"), [6, 0x12, 0xd3, 0x45]);
    assert_eq!(field_bytes(&spec, b"12D34"), [5, 0x12, 0xd3, 0x4f]);
    // '=' is written as D too, and reads back as D.
    let mut m = Message::new(Mti::new("0200").unwrap());
    m.set(2, &b"12=34"[..]);
    let wire = spec.encode(&m).unwrap();
    assert_eq!(wire[12..], [5, 0x12, 0xd3, 0x4f]);
    assert_eq!(spec.decode(wire).unwrap().get(2), Some(&b"12D34"[..]));
}

#[test]
fn bcd_lengths_counted_in_bytes() {
    let spec = one_field(
        FieldSpec::variable(LengthKind::LL, 10, ContentType::N)
            .with_encoding(DataEncoding::Bcd)
            .with_pad(Pad::RightF)
            .with_length_counts(LengthCounts::Wire),
    );
    // 5 digits = 3 bytes; the F pad is dropped on decode.
    assert_eq!(field_bytes(&spec, b"12345"), *b"03\x12\x34\x5f");
    assert_eq!(field_bytes(&spec, b"1234"), *b"02\x12\x34");
}

#[test]
fn ebcdic_values_and_lengths() {
    let spec = one_field(
        FieldSpec::variable(LengthKind::LLL, 99, ContentType::Ans)
            .with_encoding(DataEncoding::Ebcdic)
            .with_length_encoding(LengthEncoding::Ebcdic),
    );
    assert_eq!(
        field_bytes(&spec, b"Ab 1!"),
        [0xf0, 0xf0, 0xf5, 0xc1, 0x82, 0x40, 0xf1, 0x5a]
    );
}

#[test]
fn hex_and_binary_fields() {
    let hex = one_field(
        FieldSpec::variable(LengthKind::LLL, 255, ContentType::B)
            .with_encoding(DataEncoding::Hex)
            .with_length_encoding(LengthEncoding::Ascii),
    );
    assert_eq!(field_bytes(&hex, &[0x9f, 0x26, 0x0a]), *b"0039F260A");
    let hex_wire = one_field(
        FieldSpec::variable(LengthKind::LLL, 510, ContentType::B)
            .with_encoding(DataEncoding::Hex)
            .with_length_counts(LengthCounts::Wire),
    );
    assert_eq!(field_bytes(&hex_wire, &[0x9f, 0x26, 0x0a]), *b"0069F260A");
    // Lower-case hex is accepted on decode.
    let m = hex
        .decode(Bytes::from_static(b"0200\x40\0\0\0\0\0\0\x00002abcd"))
        .unwrap();
    assert_eq!(m.get(2), Some(&[0xab, 0xcd][..]));
    let binary = one_field(
        FieldSpec::variable(LengthKind::LLLL, 9999, ContentType::B)
            .with_length_encoding(LengthEncoding::Binary),
    );
    assert_eq!(field_bytes(&binary, &[1, 2, 3]), [0, 3, 1, 2, 3]);
}

#[test]
fn every_length_kind_and_prefix_encoding() {
    use LengthEncoding::*;
    use LengthKind::*;
    let cases: &[(LengthKind, LengthEncoding, &[u8])] = &[
        (L, Ascii, b"5"),
        (LL, Ascii, b"05"),
        (LLL, Ascii, b"005"),
        (LLLL, Ascii, b"0005"),
        (LLLLLL, Ascii, b"000005"),
        (L, Bcd, b"\x05"),
        (LL, Bcd, b"\x05"),
        (LLL, Bcd, b"\x00\x05"),
        (LLLL, Bcd, b"\x00\x05"),
        (LLLLLL, Bcd, b"\x00\x00\x05"),
        (L, Binary, b"\x05"),
        (LL, Binary, b"\x05"),
        (LLL, Binary, b"\x00\x05"),
        (LLLL, Binary, b"\x00\x05"),
        (LLLLLL, Binary, b"\x00\x00\x05"),
        (LL, Ebcdic, b"\xf0\xf5"),
        (LLL, Hex, b"005"),
    ];
    for &(kind, enc, prefix) in cases {
        let spec =
            one_field(FieldSpec::variable(kind, 9, ContentType::An).with_length_encoding(enc));
        let mut expected = prefix.to_vec();
        expected.extend_from_slice(b"ABC12");
        assert_eq!(field_bytes(&spec, b"ABC12"), expected, "{kind:?} {enc:?}");
    }
    // Large lengths: a 1,000-byte LLLLLL field, and the biggest hex LL length.
    let big = one_field(FieldSpec::variable(LLLLLL, 999_999, ContentType::Ans));
    let v = vec![b'x'; 1000];
    assert_eq!(field_bytes(&big, &v)[..6], *b"001000");
    let hexlen =
        one_field(FieldSpec::variable(LL, 255, ContentType::Ans).with_length_encoding(Hex));
    assert_eq!(field_bytes(&hexlen, &[b'y'; 255])[..2], *b"FF");
}

#[test]
fn mti_and_bitmap_encodings() {
    let mut m = Message::new(Mti::new("0800").unwrap());
    m.set(70, &b"301"[..]);
    let bcd = Spec::iso87_ascii()
        .with_mti_encoding(MtiEncoding::Bcd)
        .with_bitmap_encoding(BitmapEncoding::Hex);
    let wire = bcd.encode(&m).unwrap();
    assert_eq!(wire[..], *b"\x08\x0080000000000000000400000000000000301");
    assert_eq!(bcd.decode(wire).unwrap(), m);
    let ebcdic = Spec::iso87_ascii().with_mti_encoding(MtiEncoding::Ebcdic);
    let wire = ebcdic.encode(&m).unwrap();
    assert_eq!(wire[..4], [0xf0, 0xf8, 0xf0, 0xf0]);
    assert_eq!(ebcdic.decode(wire).unwrap(), m);
}

#[test]
fn tertiary_bitmap_fields() {
    let spec = Spec::iso87_ascii()
        .with_field(
            150,
            FieldSpec::variable(LengthKind::LLL, 999, ContentType::Ans),
        )
        .unwrap();
    let mut m = Message::new(Mti::new("0200").unwrap());
    m.set(11, &b"000001"[..]);
    m.set(150, &b"hello"[..]);
    let wire = spec.encode(&m).unwrap();
    // Primary (bit 1 + 11), secondary (bit 65 only), tertiary (bit 150), DE11, DE150.
    assert_eq!(
        wire[..],
        *b"0200\x80\x20\0\0\0\0\0\0\x80\0\0\0\0\0\0\0\0\0\x04\0\0\0\0\x00000001005hello"
    );
    assert_eq!(spec.decode(wire).unwrap(), m);
}

fn exotic() -> Spec {
    use ContentType::*;
    use LengthKind::*;
    Spec::new("exotic")
        .with_mti_encoding(MtiEncoding::Bcd)
        .with_bitmap_encoding(BitmapEncoding::Hex)
        .with_tertiary_bitmap(true)
        .with_field(
            2,
            FieldSpec::variable(LL, 19, N)
                .with_encoding(DataEncoding::Bcd)
                .with_length_encoding(LengthEncoding::Bcd),
        )
        .and_then(|s| {
            s.with_field(
                3,
                FieldSpec::fixed(5, N)
                    .with_encoding(DataEncoding::Bcd)
                    .with_pad(Pad::RightF),
            )
        })
        .and_then(|s| {
            s.with_field(
                35,
                FieldSpec::variable(LL, 37, Z)
                    .with_encoding(DataEncoding::Bcd)
                    .with_length_encoding(LengthEncoding::Binary),
            )
        })
        .and_then(|s| {
            s.with_field(
                41,
                FieldSpec::fixed(8, Ans).with_encoding(DataEncoding::Ebcdic),
            )
        })
        .and_then(|s| {
            s.with_field(
                43,
                FieldSpec::variable(LLL, 99, A)
                    .with_encoding(DataEncoding::Ebcdic)
                    .with_length_encoding(LengthEncoding::Ebcdic),
            )
        })
        .and_then(|s| {
            s.with_field(
                55,
                FieldSpec::variable(LLL, 255, B)
                    .with_encoding(DataEncoding::Hex)
                    .with_length_encoding(LengthEncoding::Hex),
            )
        })
        .and_then(|s| s.with_field(64, FieldSpec::fixed(8, B)))
        .and_then(|s| {
            s.with_field(
                70,
                FieldSpec::fixed(3, N).with_encoding(DataEncoding::Ebcdic),
            )
        })
        .and_then(|s| s.with_field(102, FieldSpec::variable(LLLLLL, 30, An).with_min_len(2)))
        .and_then(|s| {
            s.with_field(
                160,
                FieldSpec::variable(L, 9, B).with_length_encoding(LengthEncoding::Binary),
            )
        })
        .unwrap()
}

fn chars(set: &'static [u8], len: std::ops::RangeInclusive<usize>) -> BoxedStrategy<Vec<u8>> {
    prop::collection::vec(prop::sample::select(set), len).boxed()
}

proptest! {
    #[test]
    fn exotic_spec_round_trips(
        mti in prop::sample::select(vec!["0100", "0200", "0800", "9999"]),
        de2 in prop::option::of(chars(b"0123456789", 0..=19)),
        de3 in prop::option::of(chars(b"0123456789", 5..=5)),
        de35 in prop::option::of(chars(b"0123456789D", 0..=37)),
        de41 in prop::option::of(chars(b" !AZaz09~{}[]|^", 8..=8)),
        de43 in prop::option::of(chars(b"ABCxyz", 0..=99)),
        de55 in prop::option::of(prop::collection::vec(any::<u8>(), 0..=255)),
        de64 in prop::option::of(prop::collection::vec(any::<u8>(), 8..=8)),
        de70 in prop::option::of(chars(b"0123456789", 3..=3)),
        de102 in prop::option::of(chars(b"0123456789ABCxyz", 2..=30)),
        de160 in prop::option::of(prop::collection::vec(any::<u8>(), 0..=9)),
    ) {
        let spec = exotic();
        let mut m = Message::new(Mti::new(mti).unwrap());
        for (n, v) in [(2, de2), (3, de3), (35, de35), (41, de41), (43, de43), (55, de55), (64, de64), (70, de70), (102, de102), (160, de160)] {
            if let Some(v) = v {
                m.set(n, v);
            }
        }
        let wire = spec.encode(&m).unwrap();
        prop_assert_eq!(spec.decode(wire.clone()).unwrap(), m);
        for cut in 0..wire.len() {
            prop_assert!(spec.decode(wire.slice(..cut)).is_err());
        }
    }

    #[test]
    fn exotic_spec_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        let spec = exotic();
        let frame = Bytes::from(bytes);
        let _ = spec.decode(frame.clone());
        let _ = spec.decode_partial(frame);
    }
}
