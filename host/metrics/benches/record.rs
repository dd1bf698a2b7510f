//! What recording one transaction's metrics costs the listener (criterion;
//! `cargo bench -p switchyard-metrics --bench record`), in ns per
//! transaction:
//! - `transaction`: [`ListenerMetrics::transaction`] as the listener calls
//!   it (counter by MTI class × result code from the fixed table, duration
//!   histogram), with a mix of codes;
//! - `transaction+external`: the same plus an endpoint's external duration
//!   (a switched-out transaction);
//! - `family_get_or_create`: the counter looked up in prometheus-client's
//!   `Family` map per transaction instead (hash + read lock), to compare;
//! - `prometheus_client_histogram`: prometheus-client's own `Histogram`
//!   (a write lock per observation), to compare with the atomic one.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use switchyard_metrics::{DURATION_BUCKETS, Metrics};

const CODES: [(&str, Option<&str>); 4] = [
    ("0200", Some("00")),
    ("0100", Some("00")),
    ("0200", Some("51")),
    ("0420", Some("00")),
];

fn record(c: &mut Criterion) {
    let metrics = Metrics::new();
    let listener = metrics.listener("acq-5001");
    let endpoint = metrics.endpoint("xxx");
    let mut i = 0usize;
    c.bench_function("transaction", |b| {
        b.iter(|| {
            let (mti, rc) = CODES[i & 3];
            i = i.wrapping_add(1);
            listener.transaction(
                black_box(mti),
                black_box(rc),
                black_box(Duration::from_micros(420)),
            );
        })
    });
    c.bench_function("transaction+external", |b| {
        b.iter(|| {
            let (mti, rc) = CODES[i & 3];
            i = i.wrapping_add(1);
            listener.transaction(
                black_box(mti),
                black_box(rc),
                black_box(Duration::from_micros(900)),
            );
            endpoint.external(black_box(Duration::from_micros(480)));
        })
    });
    let family: Family<Vec<(&'static str, String)>, Counter> = Family::default();
    c.bench_function("family_get_or_create", |b| {
        b.iter(|| {
            let (mti, rc) = CODES[i & 3];
            i = i.wrapping_add(1);
            let labels = vec![
                ("listener", "acq-5001".to_owned()),
                ("mti_class", mti.to_owned()),
                ("rc", rc.unwrap_or("none").to_owned()),
            ];
            family.get_or_create(black_box(&labels)).inc();
        })
    });
    let histogram = Histogram::new(DURATION_BUCKETS);
    c.bench_function("prometheus_client_histogram", |b| {
        b.iter(|| histogram.observe(black_box(0.00042)))
    });
}

criterion_group!(benches, record);
criterion_main!(benches);
