//! Codec benches: decode, encode, and decode + encode of the 16-field 0200
//! in the default spec (ISO 8583:1987 ASCII, binary bitmap).

use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use switchyard_benches::sample_0200;
use switchyard_iso8583::{BytesMut, Spec};

fn codec(c: &mut Criterion) {
    let spec = Spec::iso87_ascii();
    let msg = sample_0200();
    let frame = spec.encode(&msg).unwrap();
    let mut g = c.benchmark_group("codec/iso87-ascii/0200x16");
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

criterion_group!(benches, codec);
criterion_main!(benches);
