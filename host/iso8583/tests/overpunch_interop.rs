//! Signed overpunch zoned decimal (`cobol::format_zoned` / `cobol::parse_zoned`) against an
//! independent implementation: the PyPI package `overpunch` 1.1, installed by `scripts/test`
//! into `.venv`, through `tests/interop/overpunch_peer.py`.
//!
//! The package reads and writes the ASCII overpunch characters (`{` `A`–`I` +0..+9, `}`
//! `J`–`R` −0..−9); the peer converts with Python's own `cp037` codec, in which those
//! characters are the EBCDIC zoned bytes `C0`–`C9` and `D0`–`D9`. Both directions, for the
//! picture of endpoint `yyy`'s `YYY-AMOUNT` (`S9(10)V99`) and a second one (`S9(5)V9(3)`):
//! our EBCDIC bytes are read by the peer, the peer's bytes by us, and the bytes must be the
//! same; our ASCII form (`Zone::Ascii`) must equal the peer's text.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use switchyard_iso8583::cobol::{Decimal, Zone, format_zoned, parse_zoned};

/// The Python with the peer: `SWITCHYARD_PYTHON`, or the repository's `.venv`.
fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("SWITCHYARD_PYTHON") {
        return p.into();
    }
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/python");
    assert!(
        venv.exists(),
        "the overpunch interop test needs the PyPI package overpunch==1.1 in .venv: run \
         scripts/test (it creates .venv), or set SWITCHYARD_PYTHON"
    );
    venv
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02X}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex from the peer"))
        .collect()
}

/// Sends `requests` to the peer for a picture of `digits` digits, `scale` of them decimals;
/// returns its answer lines, one per request.
fn peer(digits: usize, scale: u32, requests: &[String]) -> Vec<(String, String)> {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/interop/overpunch_peer.py");
    let mut child = Command::new(python())
        .arg(script)
        .args([digits.to_string(), scale.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python starts");
    let input = requests.join("\n") + "\n";
    // A peer that failed at start has closed its stdin: its exit status and stderr say why.
    let _ = child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes());
    let out = child.wait_with_output().expect("the peer ends");
    assert!(
        out.status.success(),
        "overpunch peer failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<(String, String)> = String::from_utf8(out.stdout)
        .expect("utf-8")
        .lines()
        .map(|l| {
            let (a, b) = l.split_once(' ').expect("two words a line");
            (a.to_owned(), b.to_owned())
        })
        .collect();
    assert_eq!(lines.len(), requests.len(), "one answer per request");
    lines
}

/// Values for a picture of `digits` digits: zero, ±1 unit (±0.01 for V99), every last digit
/// with either sign, the largest, powers of ten, and pseudo-random values of every length.
fn values(digits: usize) -> Vec<i128> {
    let max = 10i128.pow(digits as u32) - 1;
    let mut v = vec![0, 1, -1, max, -max, max - 1, -(max - 1)];
    for d in 0..10 {
        v.extend([d, -d, 10 + d, -(10 + d), 1000 + d, -(1000 + d)]);
    }
    for p in 1..digits as u32 {
        v.extend([10i128.pow(p), -(10i128.pow(p)), 10i128.pow(p) - 1]);
    }
    // xorshift64*, fixed seed: the same values on every run.
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        state.wrapping_mul(0x2545_F491_4F6C_DD1D)
    };
    for _ in 0..500 {
        let len = 1 + (next() % digits as u64) as u32;
        let magnitude = i128::from(next()) % 10i128.pow(len);
        v.push(if next() % 2 == 0 {
            magnitude
        } else {
            -magnitude
        });
    }
    v
}

fn round_trip(digits: usize, scale: u32) {
    let values = values(digits);
    // Ours → the peer: our EBCDIC bytes, read by `overpunch.extract` after cp037 decoding.
    let ours: Vec<Vec<u8>> = values
        .iter()
        .map(|&u| format_zoned(Decimal::new(u, scale), digits, Zone::Ebcdic).expect("fits"))
        .collect();
    let requests: Vec<String> = ours.iter().map(|b| format!("parse {}", hex(b))).collect();
    for ((&units, bytes), (value, text)) in
        values.iter().zip(&ours).zip(peer(digits, scale, &requests))
    {
        let expected = Decimal::new(units, scale);
        assert_eq!(
            value,
            expected.to_string(),
            "the peer reads our {}",
            hex(bytes)
        );
        let ascii = format_zoned(expected, digits, Zone::Ascii).expect("fits");
        assert_eq!(text.as_bytes(), ascii, "our ASCII overpunch of {expected}");
    }
    // The peer → ours: `overpunch.format`, cp037-encoded, read by `parse_zoned`.
    let requests: Vec<String> = values
        .iter()
        .map(|&u| format!("format {}", Decimal::new(u, scale)))
        .collect();
    for ((&units, ours), (theirs, text)) in
        values.iter().zip(&ours).zip(peer(digits, scale, &requests))
    {
        let expected = Decimal::new(units, scale);
        let bytes = unhex(&theirs);
        assert_eq!(
            parse_zoned(&bytes, scale, Zone::Ebcdic),
            Ok(expected),
            "we read the peer's {theirs}"
        );
        assert_eq!(
            parse_zoned(text.as_bytes(), scale, Zone::Ascii),
            Ok(expected),
            "we read the peer's ASCII {text}"
        );
        assert_eq!(&bytes, ours, "the same bytes for {expected}");
    }
}

#[test]
fn s9_10_v99_round_trips_with_the_overpunch_package() {
    round_trip(12, 2);
}

#[test]
fn s9_5_v9_3_round_trips_with_the_overpunch_package() {
    round_trip(8, 3);
}

#[test]
fn the_examples_of_endpoint_yyy() {
    let requests: Vec<String> = [
        "0",
        "0.01",
        "-0.01",
        "10.51",
        "9999999999.99",
        "-9999999999.99",
    ]
    .iter()
    .map(|v| format!("format {v}"))
    .collect();
    let got = peer(12, 2, &requests);
    let expected = [
        ("F0F0F0F0F0F0F0F0F0F0F0C0", "00000000000{"),
        ("F0F0F0F0F0F0F0F0F0F0F0C1", "00000000000A"),
        ("F0F0F0F0F0F0F0F0F0F0F0D1", "00000000000J"),
        ("F0F0F0F0F0F0F0F0F1F0F5C1", "00000000105A"),
        ("F9F9F9F9F9F9F9F9F9F9F9C9", "99999999999I"),
        ("F9F9F9F9F9F9F9F9F9F9F9D9", "99999999999R"),
    ];
    for ((theirs, text), (hex_, ascii)) in got.iter().zip(expected) {
        assert_eq!(theirs.to_uppercase(), hex_);
        assert_eq!(text, ascii);
    }
}
