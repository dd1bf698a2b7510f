//! Codec benches: decode (unpack), encode (pack), and both, of the 16-field 0200 in every
//! built-in spec; then, in the same run, pack + unpack of the default spec against pyiso8583
//! (`.venv`, created by `scripts/test`) on the same message, with the ratio.
//!
//! `cargo bench -p switchyard-benches --bench codec`

use std::hint::black_box;
use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use criterion::{Criterion, criterion_group};
use switchyard_benches::sample_0200;
use switchyard_iso8583::{Bytes, BytesMut, Message, Mti, Spec};

/// The bench message for `spec`: the 0200 of the default wire contract; for the 1993 specs,
/// a 1200 with DE12, DE22 and DE25 in their 1993 formats.
fn sample(spec: &Spec) -> Message {
    let mut m = sample_0200();
    if spec.name().starts_with("iso93") {
        m.set_mti(Mti::new("1200").unwrap());
        m.set(12, Bytes::from_static(b"261123101010"));
        m.set(22, Bytes::from_static(b"A1B2C3D4E5F6"));
        m.set(25, Bytes::from_static(b"1508"));
    }
    m
}

fn codec(c: &mut Criterion) {
    for name in Spec::builtin_names() {
        let spec = Spec::builtin(name).unwrap();
        let msg = sample(&spec);
        let frame = spec.encode(&msg).unwrap();
        let mut g = c.benchmark_group(format!("codec/{name}/0200x16"));
        g.bench_function("decode", |b| {
            b.iter(|| spec.decode(black_box(frame.clone())).unwrap())
        });
        let mut out = BytesMut::with_capacity(512);
        g.bench_function("encode", |b| {
            b.iter(|| {
                out.clear();
                spec.encode_into(black_box(&msg), &mut out).unwrap();
            })
        });
        g.bench_function("decode+encode", |b| {
            b.iter(|| {
                let m = spec.decode(black_box(frame.clone())).unwrap();
                out.clear();
                spec.encode_into(&m, &mut out).unwrap();
            })
        });
        g.finish();
    }
}

/// Ours: ns per encode + decode of the default-spec 0200 (best of 5 runs of 200,000).
fn ours_ns() -> f64 {
    let spec = Spec::iso87_ascii();
    let msg = sample_0200();
    let mut out = BytesMut::with_capacity(512);
    let n = 200_000;
    (0..5)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..n {
                out.clear();
                spec.encode_into(black_box(&msg), &mut out).unwrap();
                let frame = out.split().freeze();
                black_box(spec.decode(frame).unwrap());
            }
            t.elapsed().as_nanos() as f64 / n as f64
        })
        .fold(f64::INFINITY, f64::min)
}

fn compare_with_pyiso8583() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let python = std::env::var_os("SWITCHYARD_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join(".venv/bin/python"));
    let ours = ours_ns();
    println!("\npack+unpack, iso87-ascii 0200x16: switchyard {ours:.0} ns");
    match Command::new(&python)
        .arg(root.join("benches/pyiso_timing.py"))
        .output()
    {
        Ok(out) if out.status.success() => {
            let theirs: f64 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
            println!(
                "pack+unpack, same message: pyiso8583 4.0.1 {theirs:.0} ns; switchyard is {:.0}x faster",
                theirs / ours
            );
        }
        _ => println!(
            "pyiso8583 not available at {} (run scripts/test to create .venv): no comparison",
            python.display()
        ),
    }
}

criterion_group!(benches, codec);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    compare_with_pyiso8583();
}
