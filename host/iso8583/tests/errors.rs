//! Every decode and encode error kind, with its exact message: field, offset and reason.

use switchyard_iso8583::{
    BitmapEncoding, Bytes, ContentType, DataEncoding, DecodeErrorKind, EncodeErrorKind, FieldSpec,
    LengthCounts, LengthEncoding, LengthKind, Message, Mti, Pad, Spec,
};

/// "0200" + binary bitmap(s) for `fields` + `body`.
fn frame(fields: &[u16], body: &[u8]) -> Bytes {
    let mut words = [0u64; 3];
    for &n in fields {
        let i = (n - 1) as usize;
        words[i / 64] |= 1 << (63 - i % 64);
    }
    if words[2] != 0 {
        words[1] |= 1 << 63;
    }
    if words[1] != 0 {
        words[0] |= 1 << 63;
    }
    let mut f = b"0200".to_vec();
    f.extend_from_slice(&words[0].to_be_bytes());
    if words[0] >> 63 == 1 {
        f.extend_from_slice(&words[1].to_be_bytes());
    }
    if words[1] >> 63 == 1 {
        f.extend_from_slice(&words[2].to_be_bytes());
    }
    f.extend_from_slice(body);
    Bytes::from(f)
}

fn decode_err(spec: &Spec, frame: Bytes) -> String {
    spec.decode(frame).unwrap_err().to_string()
}

fn iso87(frame: Bytes) -> String {
    decode_err(&Spec::iso87_ascii(), frame)
}

#[test]
fn mti_errors() {
    assert_eq!(
        iso87(Bytes::from_static(b"02")),
        "MTI at offset 0: 4 bytes required, 2 available"
    );
    assert_eq!(
        iso87(Bytes::new()),
        "MTI at offset 0: 4 bytes required, 0 available"
    );
    assert_eq!(
        iso87(Bytes::from_static(b"02X0\0\0\0\0\0\0\0\0")),
        "MTI at offset 0: not 4 digits"
    );
    assert_eq!(
        iso87(Bytes::from_static(b"02\xff0")),
        "MTI at offset 0: not 4 digits"
    );
}

#[test]
fn bitmap_errors() {
    assert_eq!(
        iso87(Bytes::from_static(b"0200\x70\x00")),
        "primary bitmap at offset 4: 8 bytes required, 2 available"
    );
    assert_eq!(
        iso87(Bytes::from_static(b"0800\x80\0\0\0\0\0\0\0\0\0")),
        "secondary bitmap at offset 12: 8 bytes required, 2 available"
    );
    assert_eq!(
        iso87(Bytes::from_static(
            b"0800\x80\0\0\0\0\0\0\0\x80\0\0\0\0\0\0\0"
        )),
        "tertiary bitmap at offset 20: 8 bytes required, 0 available"
    );
    // A spec without a tertiary bitmap refuses bit 65.
    let no_tertiary = Spec::iso87_ascii().with_tertiary_bitmap(false);
    assert_eq!(
        decode_err(
            &no_tertiary,
            Bytes::from_static(b"0800\x80\0\0\0\0\0\0\0\x80\0\0\0\0\0\0\0")
        ),
        "tertiary bitmap at offset 20: announced by bit 65, but the spec has no tertiary bitmap"
    );
    let hex = Spec::iso87_ascii().with_bitmap_encoding(BitmapEncoding::Hex);
    assert_eq!(
        decode_err(&hex, Bytes::from_static(b"020070G0000000000000")),
        "primary bitmap at offset 6: not a hex digit"
    );
}

#[test]
fn field_not_in_spec() {
    // pyiso8583's default spec, like ours, reads a tertiary bitmap but defines no field in it.
    assert_eq!(
        iso87(frame(&[129], b"X")),
        "field 129 at offset 28: present in the bitmap but not defined in the spec"
    );
    let spec = Spec::iso87_ascii().without_field(3);
    let err = spec
        .decode(frame(&[2, 3], b"16476173900101011900000"))
        .unwrap_err();
    assert_eq!(err.field, Some(3));
    assert_eq!(err.offset, 30);
    assert_eq!(err.kind, DecodeErrorKind::FieldNotInSpec);
}

#[test]
fn length_prefix_errors() {
    assert_eq!(
        iso87(frame(&[2], b"1")),
        "field 2 at offset 12: length prefix needs 2 bytes, 1 available"
    );
    assert_eq!(
        iso87(frame(&[2], b"1x4761739001")),
        "field 2 at offset 12: length prefix is not a decimal number"
    );
    assert_eq!(
        iso87(frame(&[2], b"-1")),
        "field 2 at offset 12: length prefix is not a decimal number"
    );
    assert_eq!(
        iso87(frame(&[2], b"2047617390010101191234")),
        "field 2 at offset 12: length 20 exceeds the maximum 19"
    );
    let min = Spec::iso87_ascii()
        .with_field(
            2,
            FieldSpec::variable(LengthKind::LL, 19, ContentType::N).with_min_len(12),
        )
        .unwrap();
    assert_eq!(
        decode_err(&min, frame(&[2], b"03476")),
        "field 2 at offset 12: length 3 is below the minimum 12"
    );
}

#[test]
fn truncated_fields() {
    // DE2 at 12..30, DE3 at 30..36, DE4 at 36 with 3 of its 12 bytes.
    let err = Spec::iso87_ascii()
        .decode(frame(&[2, 3, 4], b"164761739001010119000000123"))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "field 4 at offset 36: length 12 required, 3 bytes available"
    );
    assert_eq!(
        err.kind,
        DecodeErrorKind::Truncated {
            length: 12,
            need: 12,
            have: 3
        }
    );
    assert_eq!(
        iso87(frame(&[2], b"16476173900101")),
        "field 2 at offset 14: length 16 required, 12 bytes available"
    );
    assert_eq!(
        iso87(frame(&[48], b"005abc")),
        "field 48 at offset 15: length 5 required, 3 bytes available"
    );
}

#[test]
fn bad_characters_name_the_position_and_show_no_byte() {
    assert_eq!(
        iso87(frame(&[39], b"0!")),
        "field 39 at offset 13: character 1 of the value is not allowed in an an field"
    );
    assert_eq!(
        iso87(frame(&[4], b"00000000100A")),
        "field 4 at offset 23: character 11 of the value is not allowed in an n field"
    );
    assert_eq!(
        iso87(frame(&[41], b"TERM\t001")),
        "field 41 at offset 16: character 4 of the value is not allowed in an ans field"
    );
    let mut cafe = b"Caf\xc3\xa9 Amsterdam".to_vec();
    cafe.resize(40, b' ');
    let e = iso87(frame(&[43], &cafe));
    assert_eq!(
        e,
        "field 43 at offset 15: character 3 of the value is not allowed in an ans field"
    );
    // No byte of an undecodable frame is shown: not even a masked PAN.
    let e = iso87(frame(&[2], b"1647617390X1010119"));
    assert_eq!(
        e,
        "field 2 at offset 22: character 8 of the value is not allowed in an n field"
    );
    // Track data is never shown.
    let e = iso87(frame(&[35], b"214761739001010119^2512"));
    assert_eq!(
        e,
        "field 35 at offset 30: character 16 of the value is not allowed in a z field"
    );
    assert!(!e.contains("4761739001010119"));
    assert!(!e.contains("2512"));
}

#[test]
fn trailing_bytes() {
    let mut f = frame(&[7, 11, 70], b"1123101010000007301").to_vec();
    f.extend_from_slice(b"XY");
    assert_eq!(
        iso87(Bytes::from(f)),
        "message at offset 39: 2 unexpected bytes after the last field"
    );
}

/// A spec with every non-ASCII encoding, for their error kinds.
fn exotic() -> Spec {
    Spec::new("exotic")
        .with_field(
            2,
            FieldSpec::variable(LengthKind::LL, 19, ContentType::N)
                .with_encoding(DataEncoding::Bcd)
                .with_length_encoding(LengthEncoding::Bcd),
        )
        .unwrap()
        .with_field(
            3,
            FieldSpec::fixed(3, ContentType::N)
                .with_encoding(DataEncoding::Bcd)
                .with_pad(Pad::LeftF),
        )
        .unwrap()
        .with_field(
            41,
            FieldSpec::fixed(4, ContentType::Ans).with_encoding(DataEncoding::Ebcdic),
        )
        .unwrap()
        .with_field(
            55,
            FieldSpec::variable(LengthKind::LLL, 255, ContentType::B)
                .with_encoding(DataEncoding::Hex)
                .with_length_counts(LengthCounts::Wire),
        )
        .unwrap()
}

#[test]
fn encoding_errors() {
    let s = exotic();
    assert_eq!(
        decode_err(&s, frame(&[2], b"\x1a\x47")),
        "field 2 at offset 12: length prefix is not a BCD number"
    );
    assert_eq!(
        decode_err(&s, frame(&[2], b"\x04\x47\x6a")),
        "field 2 at offset 14: byte is not valid BCD"
    );
    assert_eq!(
        decode_err(&s, frame(&[3], b"\x01\x23")),
        "field 3 at offset 12: pad nibble is not F"
    );
    assert_eq!(
        decode_err(&s, frame(&[41], b"\xe3\xc5\x00\xd4")),
        "field 41 at offset 14: byte is not a printable character in EBCDIC (code page 037)"
    );
    assert_eq!(
        decode_err(&s, frame(&[55], b"0049F2")),
        "field 55 at offset 15: length 4 required, 3 bytes available"
    );
    assert_eq!(
        decode_err(&s, frame(&[55], b"0049F2X1")),
        "field 55 at offset 18: not a hex digit"
    );
    assert_eq!(
        decode_err(&s, frame(&[55], b"0039F2")),
        "field 55 at offset 12: length 3 is odd, but hex takes 2 characters per byte"
    );
}

#[test]
fn truncation_in_bcd_names_both_lengths() {
    assert_eq!(
        decode_err(&exotic(), frame(&[2], b"\x16\x47\x61")),
        "field 2 at offset 13: length 16 needs 8 bytes, 2 available"
    );
}

fn msg(fields: &[(u16, &'static [u8])]) -> Message {
    let mut m = Message::new(Mti::new("0200").unwrap());
    for &(n, v) in fields {
        m.set(n, v);
    }
    m
}

#[test]
fn encode_errors() {
    let spec = Spec::iso87_ascii();
    let e = |m: &Message| spec.encode(m).unwrap_err().to_string();
    assert_eq!(
        e(&msg(&[(4, b"1000")])),
        "field 4: length 4, fixed length 12 required"
    );
    assert_eq!(
        e(&msg(&[(2, b"47617390010101191234")])),
        "field 2: length 20 exceeds the maximum 19"
    );
    assert_eq!(
        e(&msg(&[(2, b"4761739001O10119")])),
        "field 2: value \"476173******0119\" contains 'O' not allowed in an n field"
    );
    assert_eq!(
        e(&msg(&[(39, b"0 ")])),
        "field 39: value \"0 \" contains ' ' not allowed in an an field"
    );
    assert_eq!(
        e(&msg(&[(35, b"4761739001010119^2512")])),
        "field 35: value contains '^' not allowed in a z field"
    );
    let mut tertiary = msg(&[]);
    tertiary.set(130, &b"x"[..]);
    assert_eq!(e(&tertiary), "field 130: not defined in the spec");
    let bad_mti = Message::new(Mti::from_bytes(*b"02X0"));
    let err = spec.encode(&bad_mti).unwrap_err();
    assert_eq!(err.to_string(), "MTI: \"02X0\" is not 4 digits");
    assert_eq!(err.field, None);
    assert_eq!(err.kind, EncodeErrorKind::InvalidMti { found: *b"02X0" });

    let min = Spec::iso87_ascii()
        .with_field(
            2,
            FieldSpec::variable(LengthKind::LL, 19, ContentType::N).with_min_len(12),
        )
        .unwrap();
    assert_eq!(
        min.encode(&msg(&[(2, b"4761")])).unwrap_err().to_string(),
        "field 2: length 4 is below the minimum 12"
    );
    // BCD cannot hold letters even where the content type would.
    let track = Spec::new("t")
        .with_field(
            35,
            FieldSpec::variable(LengthKind::LL, 37, ContentType::Z)
                .with_encoding(DataEncoding::Bcd),
        )
        .unwrap();
    assert_eq!(
        track
            .encode(&msg(&[(35, b"4761739001010119?")]))
            .unwrap_err()
            .to_string(),
        "field 35: value contains '?' not allowed in a z field"
    );
}

#[test]
fn a_failed_encode_leaves_the_buffer_as_it_was() {
    let spec = Spec::iso87_ascii();
    let mut out = switchyard_iso8583::BytesMut::from(&b"keep"[..]);
    let bad = msg(&[(3, b"000000"), (4, b"12")]);
    assert!(spec.encode_into(&bad, &mut out).is_err());
    assert_eq!(&out[..], b"keep");
}

#[test]
fn decode_partial_keeps_what_it_could_read() {
    let spec = Spec::iso87_ascii();
    // DE4 has a bad character but a known length: DE11 after it is still read.
    let (m, r) = spec.decode_partial(frame(&[3, 4, 11], b"00000000000000100A000123"));
    let m = m.unwrap();
    assert_eq!(m.mti().as_str(), "0200");
    assert_eq!(m.get_str(3), Some("000000"));
    assert_eq!(m.get(4), None);
    assert_eq!(m.get_str(11), Some("000123"));
    assert_eq!(r.unwrap_err().field, Some(4));
    // A bad length prefix stops decoding there.
    let (m, r) = spec.decode_partial(frame(&[3, 32, 41], b"000000x1"));
    let m = m.unwrap();
    assert_eq!(m.field_numbers().collect::<Vec<_>>(), [3]);
    assert_eq!(
        r.unwrap_err().to_string(),
        "field 32 at offset 18: length prefix is not a decimal number"
    );
    // Trailing bytes: everything is there, and the error says so.
    let (m, r) = spec.decode_partial(frame(&[11], b"000123!"));
    assert_eq!(m.unwrap().get_str(11), Some("000123"));
    assert!(matches!(
        r.unwrap_err().kind,
        DecodeErrorKind::TrailingBytes { count: 1 }
    ));
    // Bitmap cut short: MTI only.
    let (m, r) = spec.decode_partial(Bytes::from_static(b"0800\x82"));
    assert_eq!(m.unwrap().len(), 0);
    assert!(r.is_err());
    // No MTI: nothing.
    let (m, r) = spec.decode_partial(Bytes::from_static(b"08"));
    assert!(m.is_none());
    assert!(r.is_err());
}
