//! Golden vectors: the bytes pyiso8583 4.0.1 produces with `iso8583.specs.default` for the same
//! fields (`iso8583.encode(doc, specs.default)`; b fields given to it as hex strings). Our
//! encoder must produce exactly these bytes and our decoder must read them back.

use switchyard_iso8583::{Bytes, Message, Mti, Spec};

/// `decode_hex` for test constants.
fn hex(s: &str) -> Vec<u8> {
    assert!(s.len().is_multiple_of(2));
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn message(mti: &str, fields: &[(u16, &[u8])]) -> Message {
    let mut m = Message::new(Mti::new(mti).unwrap());
    for &(n, v) in fields {
        m.set(n, Bytes::copy_from_slice(v));
    }
    m
}

fn check(m: &Message, golden: &str) {
    let spec = Spec::iso87_ascii();
    let golden = hex(golden);
    let wire = spec.encode(m).unwrap();
    assert_eq!(
        wire[..],
        golden[..],
        "\nours:   {}\npyiso:  {}",
        String::from_utf8_lossy(&wire),
        String::from_utf8_lossy(&golden)
    );
    assert_eq!(&spec.decode(Bytes::from(golden)).unwrap(), m);
}

/// A 0200 with 16 fields, as pyiso8583 encodes it.
const AUTH_0200: &str = "30323030723c448008e080003136343736313733393030313031303131393030303030303030303030303030313030303131323331303130313030303030303131303130313031313233323531323539393930353130303030303030303030303030315445524d303030314d45524348414e5430303030303031535749544348594152442054455354204d45524348414e542020414d5354455244414d2020204e4c393738";

pub fn auth_0200() -> Message {
    message(
        "0200",
        &[
            (2, b"4761739001010119"),
            (3, b"000000"),
            (4, b"000000001000"),
            (7, b"1123101010"),
            (11, b"000001"),
            (12, b"101010"),
            (13, b"1123"),
            (14, b"2512"),
            (18, b"5999"),
            (22, b"051"),
            (25, b"00"),
            (37, b"000000000001"),
            (41, b"TERM0001"),
            (42, b"MERCHANT0000001"),
            (43, b"SWITCHYARD TEST MERCHANT  AMSTERDAM   NL"),
            (49, b"978"),
        ],
    )
}

#[test]
fn auth_0200_matches_pyiso8583() {
    let m = auth_0200();
    assert_eq!(m.len(), 16);
    check(&m, AUTH_0200);
}

/// A 0800 echo: DE7, DE11 and DE70 = 301 (so a secondary bitmap).
const ECHO_0800: &str =
    "303830308220000000000000040000000000000031313233313031303130303030303037333031";

#[test]
fn echo_0800_matches_pyiso8583() {
    let m = message("0800", &[(7, b"1123101010"), (11, b"000007"), (70, b"301")]);
    check(&m, ECHO_0800);
}

/// Binary fields (DE55 LLL b, DE64, DE96, DE128), an LLLVAR ans field with every punctuation
/// character, a zero-length LLVAR field (DE100) and an ans LLVAR field with a space.
const WIDE_0100: &str = "30313030f0200001000102010400000114000001313634373631373339303031303130313139333030303030303030303030303030303030313233343536303531323334353034374164646974696f6e616c20646174613a207e6021402324255e262a28295f2b7b7d7c5b5d5c3a223b273c3e3f2c2e2f3032359f2608aabbccddeeff00119f2701809f100706010a03a000000102030405060708303031a1a2a3a4a5a6a7a830303036414343542031f0e0d0c0b0a09080";

#[test]
fn binary_and_variable_fields_match_pyiso8583() {
    let de55 = hex("9F2608AABBCCDDEEFF00119F2701809F100706010A03A00000");
    let m = message(
        "0100",
        &[
            (2, b"4761739001010119"),
            (3, b"300000"),
            (4, b"000000000000"),
            (11, b"123456"),
            (32, b"12345"),
            (48, b"Additional data: ~`!@#$%^&*()_+{}|[]\\:\";'<>?,./"),
            (55, &de55),
            (64, &hex("0102030405060708")),
            (70, b"001"),
            (96, &hex("A1A2A3A4A5A6A7A8")),
            (100, b""),
            (102, b"ACCT 1"),
            (128, &hex("F0E0D0C0B0A09080")),
        ],
    );
    check(&m, WIDE_0100);
}

#[test]
fn decoding_an_ascii_spec_borrows_from_the_frame() {
    let frame = Bytes::from(hex(AUTH_0200));
    let m = Spec::iso87_ascii().decode(frame.clone()).unwrap();
    let range = frame.as_ptr_range();
    for (n, v) in m.fields() {
        assert!(range.contains(&v.as_ptr()), "field {n} was copied");
    }
}
