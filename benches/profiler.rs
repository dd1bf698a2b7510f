//! Profiler cost per transaction: recording the checkpoints of a default 5001 transaction
//! (open, parse-request, 9 steps, end), rendering its log line (the seed's form) and its
//! tranlog form (compact) — beside, in the same run, the previous way (checkpoints in a
//! `Vec`, times as `f64` milliseconds formatted with `{:.3}`), with the ratio.
//!
//! `cargo bench -p switchyard-benches --bench profiler`

use std::fmt::Write as _;
use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group};
use switchyard_engine::{Label, Profiler};

/// The checkpoints of the default 5001 transaction after `open`.
const STEPS: [&str; 10] = [
    "parse-request",
    "validate",
    "by-mti",
    "by-port",
    "local-auth",
    "close",
    "send",
    "commit:local-auth",
    "commit:close",
    "commit:send",
];

fn record() -> Profiler {
    let mut p = Profiler::start();
    for s in STEPS {
        p.checkpoint(Label::Fixed(s));
    }
    p.end();
    p
}

/// The previous profiler, for the side-by-side figure.
mod previous {
    use std::fmt;
    use std::time::{Duration, Instant};

    pub struct Checkpoint {
        name: &'static str,
        partial: Duration,
        total: Duration,
    }

    pub struct Profiler {
        start: Instant,
        last: Instant,
        checkpoints: Vec<Checkpoint>,
    }

    impl Profiler {
        pub fn start() -> Profiler {
            let now = Instant::now();
            let mut checkpoints = Vec::with_capacity(12);
            checkpoints.push(Checkpoint {
                name: "open",
                partial: Duration::ZERO,
                total: Duration::ZERO,
            });
            Profiler {
                start: now,
                last: now,
                checkpoints,
            }
        }

        pub fn checkpoint(&mut self, name: &'static str) {
            let now = Instant::now();
            self.checkpoints.push(Checkpoint {
                name,
                partial: now - self.last,
                total: now - self.start,
            });
            self.last = now;
        }

        pub fn end(&mut self) {
            let total = self.last.max(Instant::now()) - self.start;
            self.checkpoints.push(Checkpoint {
                name: "end",
                partial: total,
                total,
            });
        }
    }

    fn ms(d: Duration) -> f64 {
        d.as_secs_f64() * 1000.0
    }

    impl fmt::Display for Profiler {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            for (i, c) in self.checkpoints.iter().enumerate() {
                if i > 0 {
                    f.write_str(" ")?;
                }
                f.write_str(c.name)?;
                write!(f, " [{:.3}/{:.3}]", ms(c.partial), ms(c.total))?;
            }
            Ok(())
        }
    }
}

fn record_previous() -> previous::Profiler {
    let mut p = previous::Profiler::start();
    for s in STEPS {
        p.checkpoint(s);
    }
    p.end();
    p
}

fn profiler(c: &mut Criterion) {
    let mut g = c.benchmark_group("profiler/5001");
    g.bench_function("record", |b| b.iter(|| black_box(record())));
    g.bench_function("record (previous: Vec)", |b| {
        b.iter(|| black_box(record_previous()))
    });
    let p = record();
    let old = record_previous();
    let mut line = String::with_capacity(512);
    g.bench_function("log line", |b| {
        b.iter(|| {
            line.clear();
            write!(line, "{}", black_box(&p).trace(None, None)).unwrap();
        })
    });
    g.bench_function("log line (previous: f64)", |b| {
        b.iter(|| {
            line.clear();
            write!(line, "{}", black_box(&old)).unwrap();
        })
    });
    g.bench_function("tranlog trace", |b| {
        b.iter(|| {
            line.clear();
            write!(line, "{}", black_box(&p).compact(None, None)).unwrap();
        })
    });
    g.finish();
}

/// ns per call of `f`, best of 5 runs of `n`.
fn best_ns(n: u32, mut f: impl FnMut()) -> f64 {
    (0..5)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..n {
                f();
            }
            t.elapsed().as_nanos() as f64 / f64::from(n)
        })
        .fold(f64::INFINITY, f64::min)
}

/// The side-by-side figure: record + log line, now and before, in one run.
fn side_by_side() {
    let mut line = String::with_capacity(512);
    let now = best_ns(200_000, || {
        let p = record();
        line.clear();
        write!(line, "{}", p.trace(None, Some(Duration::ZERO))).unwrap();
        black_box(&line);
    });
    let before = best_ns(200_000, || {
        let p = record_previous();
        line.clear();
        write!(line, "{p}").unwrap();
        black_box(&line);
    });
    let record_now = best_ns(200_000, || {
        black_box(record());
    });
    let record_before = best_ns(200_000, || {
        black_box(record_previous());
    });
    println!(
        "profiler per 5001 transaction (12 checkpoints): record {record_now:.0} ns vs {record_before:.0} ns before \
         ({:.2}x); record + log line {now:.0} ns vs {before:.0} ns before ({:.2}x)",
        record_before / record_now,
        before / now
    );
}

criterion_group!(benches, profiler);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    side_by_side();
}
