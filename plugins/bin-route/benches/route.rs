//! `bin-route` with 10,000 BIN ranges: `prepare` + `select` through the
//! SDK's mock host, and the bare table lookup. The bound is 1 µs per
//! transaction inside the plugin.
//!
//! `cargo bench -p bin-route --bench route` (native). The mock host's own
//! costs — its `BTreeMap` fields, the variable's `String`, the groups'
//! clone — are in `prepare+select`; `mock host calls alone` measures them
//! by themselves.

use std::hint::black_box;

use std::borrow::Cow;

use bin_route::{BinRange, BinRoute, BinTable, Plan, RouteId};
use criterion::{BatchSize, Criterion};
use switchyard_sdk::mock::{MockEnv, MockTransaction};
use switchyard_sdk::{
    Clock, Config, Counters, Kv, Level, Log, MapConfig, Outcome, Participant, Selector, Transaction,
};

const ENTRIES: usize = 10_000;
const ROUTES: u64 = 20;

/// xorshift64*: deterministic inputs.
struct XorShift(u64);

impl XorShift {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n
    }
}

/// 10,000 non-overlapping entries: nine tenths of 4 to 9 digits, a tenth of
/// 10 to `longest`.
fn ranges(rng: &mut XorShift, longest: u64) -> Vec<BinRange> {
    let mut ranges: Vec<BinRange> = Vec::with_capacity(ENTRIES);
    while ranges.len() < ENTRIES {
        let digits = match rng.below(10) {
            0 => 10 + rng.below(longest - 9) as u32,
            _ => 4 + rng.below(6) as u32,
        };
        let top = 10u64.pow(digits);
        let lo = rng.below(top);
        let hi = (lo + rng.below(top / 10_000 + 1)).min(top - 1);
        let width = digits as usize;
        let Ok(range) = BinRange::parse(&format!("{lo:0width$}..{hi:0width$}")) else {
            continue;
        };
        if !ranges.iter().any(|r| r.overlaps(&range)) {
            ranges.push(range);
        }
    }
    ranges
}

/// The mock host's settings, with a log that drops messages (as a host
/// does below its log level) so that a run of millions of transactions
/// does not keep millions of messages.
struct BenchEnv(MapConfig);

impl Config for BenchEnv {
    fn get(&self, key: &str) -> Option<Cow<'_, str>> {
        self.0.get(key)
    }
    fn entries(&self) -> Vec<(String, String)> {
        self.0.entries()
    }
}

impl Log for BenchEnv {
    fn log(&self, _level: Level, message: &str) {
        black_box(message);
    }
}

impl Clock for BenchEnv {
    fn now_unix_millis(&self) -> i64 {
        MockEnv::DEFAULT_NOW
    }
    fn monotonic_nanos(&self) -> u64 {
        0
    }
}

impl Counters for BenchEnv {}
impl Kv for BenchEnv {}

/// The ranges as `bin` settings, with their routes.
fn settings(ranges: &[BinRange]) -> BenchEnv {
    let mut config: MapConfig = ranges
        .iter()
        .enumerate()
        .map(|(i, range)| (format!("bin {range}"), format!("r{}", i as u64 % ROUTES)))
        .collect();
    for r in 0..ROUTES {
        config.set(format!("route r{r}"), format!("query-{r} close send"));
    }
    BenchEnv(config)
}

/// 1,024 16-digit PANs, every other one inside an entry.
fn pans(rng: &mut XorShift, ranges: &[BinRange]) -> Vec<String> {
    (0..1024)
        .map(|i| {
            let mut pan = String::new();
            if i % 2 == 0 {
                let range = ranges[rng.below(ranges.len() as u64) as usize];
                let (lo, hi) = range.bounds();
                let width = range.digits();
                pan = format!("{:0width$}", lo + rng.below(hi - lo + 1));
            }
            while pan.len() < 16 {
                pan.push(char::from(b'0' + rng.below(10) as u8));
            }
            pan
        })
        .collect()
}

fn table(ranges: &[BinRange]) -> BinTable {
    let entries: Vec<(BinRange, RouteId)> = ranges
        .iter()
        .enumerate()
        .map(|(i, &r)| (r, RouteId(i as u32)))
        .collect();
    BinTable::build(&entries).expect("no overlaps")
}

/// Lookups of `pans` in turn, and of one PAN outside every entry.
fn bench_lookups(c: &mut Criterion, name: &str, table: &BinTable, pans: &[String]) {
    let mut at = 0;
    c.bench_function(&format!("bin-route lookup, {name}"), |b| {
        b.iter(|| {
            at = (at + 1) % pans.len();
            table.lookup(black_box(pans[at].as_bytes()))
        })
    });
    let miss = pans
        .iter()
        .find(|pan| table.lookup(pan.as_bytes()).is_none())
        .expect("a PAN outside every entry");
    c.bench_function(&format!("bin-route lookup miss, {name}"), |b| {
        b.iter(|| table.lookup(black_box(miss.as_bytes())))
    });
}

/// A purchase with this card, as the listener would have decoded it.
fn purchase(pan: &str) -> MockTransaction {
    MockTransaction::new("0200")
        .with_field(2, pan)
        .with_field(3, "000000")
        .with_field(4, "000000001000")
        .with_field(11, "000123")
}

/// `prepare` and, when it routed, `select`, on PANs in turn.
fn bench_transactions(
    c: &mut Criterion,
    name: &str,
    plugin: &mut BinRoute,
    env: &BenchEnv,
    pans: &[&String],
) {
    let mut at = 0;
    c.bench_function(name, |b| {
        b.iter_batched(
            || {
                at = (at + 1) % pans.len();
                purchase(pans[at])
            },
            |mut tx| {
                let groups = match plugin.prepare(&mut tx, env) {
                    Outcome::NoJoin => plugin.select(&mut tx, env),
                    _ => Vec::new(),
                };
                (tx, groups)
            },
            BatchSize::SmallInput,
        )
    });
}

fn bench(c: &mut Criterion) {
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    // Entries of 4 to 12 digits, PANs of 16: the segment search.
    let short = ranges(&mut rng, 12);
    let env = settings(&short);
    let pans_short = pans(&mut rng, &short);
    let mut plugin = BinRoute::default();
    assert!(plugin.check_settings(&env).is_empty(), "good settings");
    let (hits, misses): (Vec<&String>, Vec<&String>) = pans_short.iter().partition(|pan| {
        let plan = plugin.plan().expect("a plan");
        plan.route_for(None, None, Some(pan.as_bytes())).is_some()
    });

    bench_transactions(
        c,
        "bin-route prepare+select, routed, 10k ranges (mock host)",
        &mut plugin,
        &env,
        &hits,
    );
    bench_transactions(
        c,
        "bin-route prepare, no match (15), 10k ranges (mock host)",
        &mut plugin,
        &env,
        &misses,
    );
    // What the mock host's calls cost by themselves: read the request, set
    // the variable, hand over three groups.
    let groups = vec!["query-1".to_owned(), "close".to_owned(), "send".to_owned()];
    let mut at = 0;
    c.bench_function("mock host calls alone (baseline)", |b| {
        b.iter_batched(
            || {
                at = (at + 1) % hits.len();
                purchase(hits[at])
            },
            |mut tx| {
                let found = tx.request_values(&[0, 2, 3, 35]).get(1).is_some();
                tx.set_var("ROUTE", "r1");
                (tx, found, groups.clone())
            },
            BatchSize::SmallInput,
        )
    });
    bench_lookups(c, "10k ranges of 4-12 digits", &table(&short), &pans_short);

    // Entries up to 19 digits, PANs of 16: the search by length.
    let long = ranges(&mut rng, 19);
    let pans_long = pans(&mut rng, &long);
    bench_lookups(c, "10k ranges of 4-19 digits", &table(&long), &pans_long);

    // Once per instance: the settings read and the plan built.
    let entries = env.entries();
    let mut group = c.benchmark_group("bin-route settings");
    group.sample_size(10);
    group.bench_function("parse 10k ranges", |b| {
        b.iter(|| Plan::from_entries(black_box(&entries)).is_ok())
    });
    group.finish();
}

// `criterion_group!` would add an undocumented `pub fn`: the same by hand.
fn main() {
    let mut c = Criterion::default().configure_from_args();
    bench(&mut c);
    c.final_summary();
}
