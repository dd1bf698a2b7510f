//! The caller's cost of one counter add, the hot path of a velocity check
//! (criterion; `cargo bench -p switchyard-store --bench counters`):
//! - `memory`: [`Counters::add`], in memory only (what the switch did
//!   before counters were durable);
//! - `durable`: the store's `counter_add` (the same add, plus the delta
//!   queued for the writer; it does not wait for the disk);
//! - `*_paced`: the same with 10 µs of other work between adds (about the
//!   rate of a busy switch): saturated, `durable` also measures the cache
//!   lines the caller and the writer pass back and forth at every flush;
//! - `durable+wait`: an add followed by waiting until it is durable (what a
//!   `counter_add` that waited for its commit would cost: one group commit
//!   and an fsync);
//! - `restore`: reopening a store whose database holds 100,000 buckets
//!   (and, to compare, one without counters).
//!
//! Keys cycle over 10,000 cards, two counters (count and amount) each. The
//! database is a real file in `SWITCHYARD_BENCH_DIR` (default `.`).
//! `memory` and `durable` report the calling thread's CPU time (Linux), not
//! wall time: the writer thread runs beside the caller and, on a small
//! machine, would otherwise be counted as the caller's; the paced runs
//! report the wall time of the adds alone. After the
//! `durable` run the writer's own CPU time per add is printed.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use switchyard_engine::ports::CounterStore;
use switchyard_store::{Counters, Secret, SqliteStore, StoreOptions};

const CARDS: usize = 10_000;
const SCOPE: (&str, &str) = ("acme", "velocity");
const DAY: u32 = 86_400;
/// Other work between two adds in the paced runs (about 100,000 adds a
/// second: 50,000 transactions a second, two counters each).
const PACE: Duration = Duration::from_micros(10);

/// CPU time of the calling thread (Linux; zero elsewhere). The kernel
/// updates it at scheduler ticks: measure long runs only.
fn thread_cpu() -> Duration {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .map(Duration::from_nanos)
        .unwrap_or_default()
}

/// The calling thread's CPU time for `iters` calls of `f`, measured over
/// at least 200,000 calls (the clock's resolution is a scheduler tick).
fn cpu_per(iters: u64, mut f: impl FnMut()) -> Duration {
    let n = iters.max(200_000);
    let start = thread_cpu();
    for _ in 0..n {
        f();
    }
    (thread_cpu() - start).mul_f64(iters as f64 / n as f64)
}

fn cards() -> Vec<String> {
    // Luhn-valid numbers are not needed: keys are only hashed.
    (0..CARDS).map(|i| format!("600649{i:010}")).collect()
}

fn options(dir: &std::path::Path) -> StoreOptions {
    StoreOptions {
        db_path: dir.join("switchyard.db"),
        kek_path: dir.join("keys/kek.key"),
        node: "node-1".into(),
        duplicate_filter_mib: 4,
    }
}

fn bench_dir() -> tempfile::TempDir {
    tempfile::tempdir_in(std::env::var("SWITCHYARD_BENCH_DIR").unwrap_or_else(|_| ".".into()))
        .unwrap()
}

/// Spins for `d` (the rest of a transaction's work between two adds).
fn spin(d: Duration) {
    let start = Instant::now();
    while start.elapsed() < d {
        std::hint::spin_loop();
    }
}

/// The wall time of the `iters` calls of `f` alone, with `PACE` of other
/// work between them.
fn paced(iters: u64, mut f: impl FnMut()) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        spin(PACE);
        let start = Instant::now();
        f();
        total += start.elapsed();
    }
    total
}

fn add(c: &mut Criterion) {
    let cards = cards();
    let mut group = c.benchmark_group("counter_add");
    let mut i = 0usize;
    let mut next = move || {
        i = (i + 1) % (2 * CARDS);
        (
            if i.is_multiple_of(2) {
                "count"
            } else {
                "amount"
            },
            i / 2,
        )
    };

    let memory = Counters::new(Secret::random());
    group.bench_function("memory", |b| {
        b.iter_custom(|iters| {
            cpu_per(iters, || {
                let (name, card) = next();
                black_box(memory.add(SCOPE, name, &cards[card], 1, DAY).unwrap());
            })
        })
    });
    group.bench_function("memory_paced", |b| {
        b.iter_custom(|iters| {
            paced(iters, || {
                let (name, card) = next();
                black_box(memory.add(SCOPE, name, &cards[card], 1, DAY).unwrap());
            })
        })
    });

    let dir = bench_dir();
    let store = SqliteStore::open(options(dir.path())).unwrap();
    let before = store.writer_stats();
    let mut adds = 0u64;
    group.bench_function("durable", |b| {
        b.iter_custom(|iters| {
            cpu_per(iters, || {
                let (name, card) = next();
                adds += 1;
                black_box(
                    store
                        .counter_add(SCOPE, name, &cards[card], 1, DAY)
                        .unwrap(),
                );
            })
        })
    });
    store.flush_counters().unwrap();
    let after = store.writer_stats();
    println!(
        "durable: writer CPU {:.2} µs per add ({} adds, {} commits, {} rows)",
        (after.cpu - before.cpu).as_secs_f64() * 1e6 / adds.max(1) as f64,
        adds,
        after.commits - before.commits,
        after.rows - before.rows,
    );
    group.bench_function("durable_paced", |b| {
        b.iter_custom(|iters| {
            paced(iters, || {
                let (name, card) = next();
                black_box(
                    store
                        .counter_add(SCOPE, name, &cards[card], 1, DAY)
                        .unwrap(),
                );
            })
        })
    });

    group.sample_size(10);
    group.measurement_time(Duration::from_secs(3));
    group.bench_function("durable+wait", |b| {
        b.iter(|| {
            let (name, card) = next();
            black_box(
                store
                    .counter_add(SCOPE, name, &cards[card], 1, DAY)
                    .unwrap(),
            );
            store.flush_counters().unwrap();
        })
    });
    group.finish();
    store.close();
}

fn restore(c: &mut Criterion) {
    let dir = bench_dir();
    {
        let store = SqliteStore::open(options(dir.path())).unwrap();
        // 100,000 buckets: 50,000 counters of 2 buckets each.
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        for k in 0..50_000 {
            let key = format!("k{k}");
            for t in [now - 3_600, now] {
                store
                    .counter_add_at(t, SCOPE, "count", &key, 1, DAY)
                    .unwrap();
            }
        }
        store.flush_counters().unwrap();
    }
    let empty = bench_dir();
    drop(SqliteStore::open(options(empty.path())).unwrap());
    let mut group = c.benchmark_group("counters_restore");
    group.sample_size(10);
    group.bench_function("open_no_counters", |b| {
        b.iter(|| SqliteStore::open(options(empty.path())).unwrap().close())
    });
    group.bench_function("open_100k_buckets", |b| {
        b.iter(|| {
            let store: Arc<SqliteStore> = SqliteStore::open(options(dir.path())).unwrap();
            black_box(store.counter_sum(SCOPE, "count", "k1", DAY).unwrap());
            store.close();
        })
    });
    group.finish();
}

criterion_group!(benches, add, restore);
criterion_main!(benches);
