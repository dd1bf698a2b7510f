//! A quick timing of encode + decode of a 16-field 0200 with the default spec.
//! `cargo run --release -p switchyard-iso8583 --example codec_timing`
//! (criterion benches live in `benches/`).

use std::hint::black_box;
use std::time::Instant;

use switchyard_iso8583::{BytesMut, Message, Mti, Spec};

fn main() {
    let spec = Spec::iso87_ascii();
    let mut m = Message::new(Mti::new("0200").unwrap());
    for (n, v) in [
        (2, &b"4761739001010119"[..]),
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
    ] {
        m.set(n, v);
    }
    let frame = spec.encode(&m).unwrap();
    let n = 2_000_000u32;
    let mut out = BytesMut::with_capacity(512);

    let t = Instant::now();
    for _ in 0..n {
        out.clear();
        spec.encode_into(black_box(&m), &mut out).unwrap();
        black_box(&out);
    }
    let encode = t.elapsed() / n;

    let t = Instant::now();
    for _ in 0..n {
        black_box(spec.decode(black_box(frame.clone())).unwrap());
    }
    let decode = t.elapsed() / n;

    let t = Instant::now();
    for _ in 0..n {
        let wire = spec.encode(black_box(&m)).unwrap();
        black_box(spec.decode(wire).unwrap());
    }
    let both = t.elapsed() / n;

    println!(
        "{} bytes, 16 fields: encode_into {encode:?}, decode {decode:?}, \
         encode (fresh buffer) + decode {both:?}",
        frame.len()
    );
}
