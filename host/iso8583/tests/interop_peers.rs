//! Interop, byte for byte and field by field, with independent implementations installed from
//! PyPI by `scripts/test` into `.venv` (pyiso8583 4.0.1, iso8583sim 1.6.0, py8583 1.3, and the
//! `ebcdic` codecs for cp1047). For every built-in spec, messages covering every field are
//! encoded by the peer and decoded by us, and encoded by us and decoded by the peer.
//!
//! Where implementations disagree, a spec attribute selects each behaviour, and both are shown:
//! - odd-length variable BCD (DE2, DE32, DE35, …): jPOS pads right with 0 (our `iso87-binary`
//!   default, `pad = "right-0"`), iso8583sim and py8583 pad left with 0 (`pad = "left-0"`),
//!   iso8583sim's `bcd_odd_padding="right"` pads right with F (`pad = "right-f"`);
//! - DE49 (and DE39): ASCII in jPOS ISO87B and py8583 (our default), BCD in iso8583sim
//!   (`content = "n"`, `encoding = "bcd"`).

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use switchyard_iso8583::{
    Bytes, ContentType, DataEncoding, FieldSpec, LengthCounts, LengthKind, Message, Mti, Pad, Spec,
};

/// The Python with the peers: `SWITCHYARD_PYTHON`, or the repository's `.venv`.
fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("SWITCHYARD_PYTHON") {
        return p.into();
    }
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/python");
    assert!(
        venv.exists(),
        "interop tests need pyiso8583, iso8583sim, py8583 and ebcdic in .venv: run scripts/test \
         (it creates .venv), or set SWITCHYARD_PYTHON"
    );
    venv
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn fields_line(m: &Message) -> String {
    let mut parts = vec![format!("t={}", hex(m.mti().as_bytes()))];
    parts.extend(m.fields().map(|(n, v)| format!("{n}={}", hex(v))));
    parts.join(";")
}

fn parse_fields(s: &str) -> Message {
    let mut m = Message::default();
    for item in s.split(';').filter(|i| !i.is_empty()) {
        let (k, v) = item.split_once('=').unwrap();
        let v = unhex(v);
        if k == "t" {
            m.set_mti(Mti::try_from_bytes(&v).unwrap());
        } else {
            m.set(k.parse().unwrap(), v);
        }
    }
    m
}

/// Sends `messages` through a peer; for each, checks that the peer's bytes equal ours, that we
/// decode the peer's bytes to the same message and that the peer decodes ours to it.
fn exchange(peer: &[&str], spec: &Spec, messages: &[Message]) {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/interop/peers.py");
    let mut child = Command::new(python())
        .arg(script)
        .args(peer)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python starts");
    let mut input = String::new();
    let mut ours = Vec::new();
    for m in messages {
        let wire = spec
            .encode(m)
            .unwrap_or_else(|e| panic!("{peer:?}: we encode: {e}"));
        input.push_str(&format!("{} {}\n", hex(&wire), fields_line(m)));
        ours.push(wire);
    }
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    // The peers' errors name fields, never values; keep only the last line.
    assert!(
        out.status.success(),
        "{peer:?} failed: {}",
        stderr.lines().last().unwrap_or("")
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), messages.len(), "{peer:?}");
    for (i, (line, m)) in lines.iter().zip(messages).enumerate() {
        let (theirs, decoded) = line.split_once(' ').unwrap_or((line, ""));
        let theirs = Bytes::from(unhex(theirs));
        let fields: Vec<u16> = m.field_numbers().collect();
        if theirs != ours[i] {
            let at = theirs.iter().zip(&ours[i][..]).position(|(a, b)| a != b);
            panic!(
                "{peer:?} message {i} ({} fields {fields:?}): their bytes differ from ours at \
                 offset {at:?} (lengths {} and {})",
                m.mti(),
                theirs.len(),
                ours[i].len()
            );
        }
        assert_eq!(
            &spec.decode(theirs).unwrap(),
            m,
            "{peer:?} message {i}: we decode theirs"
        );
        assert_eq!(
            &parse_fields(decoded),
            m,
            "{peer:?} message {i}: they decode ours"
        );
    }
}

/// A small deterministic generator (xorshift), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick(&mut self, chars: &[u8]) -> u8 {
        chars[self.below(chars.len())]
    }
}

const TEST_PANS: [&str; 2] = ["4761739001010119", "4222222222222"];

/// A valid value of `len` units for field `n`.
fn value(rng: &mut Rng, n: u16, fs: &FieldSpec, len: usize) -> Vec<u8> {
    if matches!(n, 2 | 34) {
        return TEST_PANS[rng.below(2)].as_bytes().to_vec();
    }
    let chars: &[u8] = match fs.content() {
        ContentType::N => b"0123456789",
        ContentType::A => b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
        ContentType::An => b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
        ContentType::Ans => b" !\"#$%&'()*+,-./0123456789:;<=>?@AZ[\\]^_`az{|}~",
        // Test data shaped like track 2, from the test PAN (digits and the separator).
        ContentType::Z if fs.encoding() == DataEncoding::Bcd => b"0123456789D",
        ContentType::Z => b"0123456789=",
        ContentType::B => return (0..len).map(|_| rng.next() as u8).collect(),
    };
    (0..len).map(|_| rng.pick(chars)).collect()
}

/// Random messages covering every field of `spec` (each field in several messages, with odd
/// and even lengths, empty and full variable fields), and one with every field at once.
fn messages(spec: &Spec, seed: u64, mtis: &[&str]) -> Vec<Message> {
    let mut rng = Rng(seed);
    let numbers: Vec<u16> = spec
        .fields()
        .map(|(n, _)| n)
        .filter(|&n| n <= 128)
        .collect();
    let mut out = Vec::new();
    for i in 0..40 {
        let mut m = Message::new(Mti::new(mtis[i % mtis.len()]).unwrap());
        let count = if i == 0 {
            numbers.len()
        } else {
            1 + rng.below(20)
        };
        for _ in 0..count {
            let n = if i == 0 {
                numbers[m.len()]
            } else {
                numbers[rng.below(numbers.len())]
            };
            let fs = spec.field(n).unwrap();
            let len = if fs.length() == LengthKind::Fixed {
                fs.max_len() as usize
            } else {
                let mut max = fs.max_len() as usize;
                if fs.length_counts() == LengthCounts::Wire && fs.encoding() == DataEncoding::Hex {
                    max /= 2;
                }
                match rng.below(4) {
                    0 => 0,
                    1 => max.min(60),
                    _ => rng.below(max.min(40) + 1),
                }
            };
            m.set(n, value(&mut rng, n, fs, len));
        }
        out.push(m);
    }
    out
}

#[test]
fn pyiso8583_agrees_on_every_builtin_spec() {
    for (i, name) in Spec::builtin_names().iter().enumerate() {
        let spec = Spec::builtin(name).unwrap();
        let mtis: &[&str] = if name.starts_with("iso93") {
            &["1100", "1200", "1210", "1420", "1804"]
        } else {
            &["0100", "0200", "0210", "0420", "0800"]
        };
        exchange(
            &["pyiso", name],
            &spec,
            &messages(&spec, 0x5eed + i as u64, mtis),
        );
    }
}

/// `spec` with every BCD variable n/z field padded per `pad`.
fn with_variable_pad(spec: &Spec, pad: Pad) -> Spec {
    let mut out = spec.clone();
    for (n, f) in spec.fields() {
        if f.encoding() == DataEncoding::Bcd && f.length() != LengthKind::Fixed {
            out = out.with_field(n, f.clone().with_pad(pad)).unwrap();
        }
    }
    out
}

#[test]
fn bcd_padding_is_a_spec_attribute_and_each_peer_is_matched() {
    let jpos = Spec::builtin("iso87-binary").unwrap();
    // jPOS: right, 0 (the built-in), shown against pyiso8583 set up the same way.
    exchange(
        &["pyiso", "iso87-binary"],
        &jpos,
        &messages(&jpos, 7, &["0200"]),
    );
    // iso8583sim and py8583: left, 0 — from a config file, as an operator would write it.
    let left = Spec::from_toml_str(
        r#"
        extends = "iso87-binary"
        [fields.2]
        length = "LL"
        max_len = 19
        content = "n"
        encoding = "bcd"
        length_encoding = "bcd"
        pad = "left-0"
        "#,
    )
    .unwrap();
    assert_eq!(left.field(2).unwrap().pad(), Pad::LeftZero);
    let left = with_variable_pad(&left, Pad::LeftZero);
    let right_f = with_variable_pad(&jpos, Pad::RightF);
    exchange(
        &["pyiso", "iso87-binary", "pad=left-0"],
        &left,
        &messages(&left, 8, &["0200"]),
    );
    exchange(
        &["pyiso", "iso87-binary", "pad=right-f"],
        &right_f,
        &messages(&right_f, 9, &["0200"]),
    );

    // The odd-length test PAN, three ways on the wire.
    let mut m = Message::new(Mti::new("0100").unwrap());
    m.set(2, "4222222222222");
    let pan = |s: &Spec| s.encode(&m).unwrap()[10..].to_vec();
    assert_eq!(pan(&jpos), [0x13, 0x42, 0x22, 0x22, 0x22, 0x22, 0x22, 0x20]);
    assert_eq!(pan(&left), [0x13, 0x04, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22]);
    assert_eq!(
        pan(&right_f),
        [0x13, 0x42, 0x22, 0x22, 0x22, 0x22, 0x22, 0x2f]
    );
}

/// What iso8583sim defines the same way we do, with values its validator accepts.
fn sim_messages() -> Vec<Message> {
    let mut a = Message::new(Mti::new("0200").unwrap());
    for (n, v) in [
        (2, "4761739001010119"),
        (3, "000000"),
        (4, "000000001000"),
        (7, "1123101010"),
        (11, "000001"),
        (12, "101010"),
        (13, "1123"),
        (14, "2812"),
        (18, "5999"),
        (22, "051"),
        (25, "00"),
        (32, "12345"),
        (35, "4761739001010119D2812101"),
        (37, "ABC123456789"),
        (38, "A1B2C3"),
        (39, "00"),
        (41, "TERM0001"),
        (42, "MERCHANT0000001"),
        (43, "SWITCHYARD TEST MERCHANT   AMSTERDAM  NL"),
        (48, "PRIVATE DATA 123"),
        (49, "978"),
        (53, "0000000000000000"),
        (54, "1002978C000000001000"),
        (70, "301"),
        (90, "020000000100000000000000000000000000000000"),
        (100, "123"),
        (102, "ACCOUNT1"),
    ] {
        a.set(n, v);
    }
    a.set(52, &[0x11u8; 8][..]);
    a.set(
        55,
        &[
            0x9f, 0x02, 0x06, 0, 0, 0, 0, 0x10, 0, 0x82, 0x02, 0x19, 0x80,
        ][..],
    );
    a.set(64, &[0x22u8; 8][..]);
    a.set(128, &[0x33u8; 8][..]);
    let mut b = Message::new(Mti::new("0800").unwrap());
    b.set(7, "1123101010");
    b.set(11, "000002");
    b.set(70, "301");
    let mut c = Message::new(Mti::new("0100").unwrap());
    c.set(2, "4222222222222");
    c.set(4, "000000000505");
    c.set(11, "000003");
    c.set(35, "4222222222222D281210");
    c.set(41, "TERM0002");
    c.set(49, "840");
    vec![a, b, c]
}

/// `spec` with DE39 and DE49 as n in BCD (iso8583sim's `bcd` preset packs them).
fn with_bcd_codes(spec: &Spec) -> Spec {
    [39u16, 49].into_iter().fold(spec.clone(), |s, n| {
        let len = spec.field(n).unwrap().max_len();
        s.with_field(
            n,
            FieldSpec::fixed(len, ContentType::N).with_encoding(DataEncoding::Bcd),
        )
        .unwrap()
    })
}

#[test]
fn iso8583sim_presets_agree() {
    let msgs = sim_messages();
    for (preset, name) in [
        ("ascii-binary", "iso87-ascii"),
        ("ascii-hex", "iso87-ascii-hex"),
        ("ebcdic", "iso87-ebcdic"),
    ] {
        let spec = Spec::builtin(name).unwrap();
        // Track data in ASCII/EBCDIC has `=`, as iso8583sim writes it.
        let msgs: Vec<Message> = msgs
            .iter()
            .map(|m| {
                let mut m = m.clone();
                if let Some(t) = m.get(35).map(|t| t.to_vec()) {
                    let t: Vec<u8> = t
                        .iter()
                        .map(|&b| if b == b'D' { b'=' } else { b })
                        .collect();
                    m.set(35, t);
                }
                m
            })
            .collect();
        exchange(&["sim", preset], &spec, &msgs);
    }
    let binary = Spec::builtin("iso87-binary").unwrap();
    let left = with_bcd_codes(&with_variable_pad(&binary, Pad::LeftZero));
    exchange(&["sim", "bcd"], &left, &msgs);
    let right_f = with_bcd_codes(&with_variable_pad(&binary, Pad::RightF));
    exchange(&["sim", "bcd", "right"], &right_f, &msgs);
    // And the default (jPOS) iso87-binary is *not* what iso8583sim writes: the attributes matter.
    assert_ne!(
        binary.encode(&msgs[2]).unwrap(),
        left.encode(&msgs[2]).unwrap()
    );
}

#[test]
fn py8583_bcd_agrees() {
    // py8583's IsoSpec1987BCD: BCD numbers padded left with 0, track 2 padded right with F,
    // text in ASCII, the 999-long private fields binary.
    let binary = Spec::builtin("iso87-binary").unwrap();
    let mut spec = with_variable_pad(&binary, Pad::LeftZero);
    spec = spec
        .with_field(35, binary.field(35).unwrap().clone().with_pad(Pad::RightF))
        .unwrap();
    let mut a = Message::new(Mti::new("0200").unwrap());
    for (n, v) in [
        (2, "4222222222222"),
        (3, "000000"),
        (4, "000000001000"),
        (11, "000001"),
        (22, "051"),
        (32, "12345"),
        (35, "4222222222222D281210"),
        (37, "ABC123456789"),
        (41, "TERM0001"),
        (49, "978"),
        (70, "301"),
    ] {
        a.set(n, v);
    }
    a.set(64, &[0x44u8; 8][..]);
    let mut b = Message::new(Mti::new("0800").unwrap());
    b.set(7, "1123101010");
    b.set(11, "000002");
    b.set(70, "301");
    exchange(&["py8583"], &spec, &[a, b]);
}
