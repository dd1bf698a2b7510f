//! The cost of the durable tranlog, over TCP, side by side in one run.
//!
//! The real switch runs in-process on free ports (bundled plugins, the
//! default config); a load client on the same runtime and machine:
//! 1. **closed loop** on 5001 (local authorization): `CONNECTIONS` ×
//!    `WINDOW` requests in flight for `SECONDS`, with the tranlog off (a
//!    bench-only start option) and on — throughput, p50, p99;
//! 2. **open loop** on 5001 at `RATE` requests/s, with the tranlog off
//!    and on: throughput and p50/p99/max latency;
//! 3. **timeout → reversal**: requests on 5002 to an endpoint that never
//!    answers originals (timeout `TIMEOUT_MS`) and acknowledges reversals
//!    at once — how long after its deadline the 91 reaches the acquirer
//!    (the reversal is durably queued first), and how soon after the 91 the
//!    reversal is acknowledged.
//!
//! `cargo bench -p switchyard-benches --bench tranlog_load`; environment
//! `TRANLOG_BENCH_SECONDS` (default 5), `TRANLOG_BENCH_CONNECTIONS` (8),
//! `TRANLOG_BENCH_WINDOW` (8), `TRANLOG_BENCH_RATE` (20000);
//! `TRANLOG_BENCH_ONLY=on|off` runs one closed loop alone (for a profiler).

#[path = "../tests/support/fake_endpoint.rs"]
mod fake_endpoint;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use switchyard::client::{Connection, RequestSpec};
use switchyard::{StartOptions, Switch};
use switchyard_engine::ports::TxQuery;
use switchyard_tests::{TEST_PAN, default_config, shared_data_dir};

use fake_endpoint::{FakeEndpoint, Reply};

/// The binary's allocator (see `host/switchyard/src/main.rs`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const TIMEOUT_MS: u64 = 100;

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// STANs unique across the whole run (the tranlog would answer a reused
/// key within the same second 94), in a scattered order: the STAN index
/// takes inserts all over, as it does from thousands of terminals.
static NEXT_STAN: AtomicU32 = AtomicU32::new(1);

fn request(terminal: &str, amount: u64) -> switchyard_iso8583::Message {
    // A permutation of 1..=999_983 (a prime modulus, a multiplier prime to it).
    let n = u64::from(NEXT_STAN.fetch_add(1, Ordering::Relaxed));
    let stan = ((n * 387_421) % 999_983 + 1) as u32;
    let mut r = RequestSpec::financial("0200", TEST_PAN, amount, stan);
    r.terminal = Some(terminal.into());
    r.build().unwrap()
}

#[derive(Default)]
struct Outcome {
    latencies: Vec<Duration>,
    codes: HashMap<String, u64>,
    seconds: f64,
}

impl Outcome {
    fn merge(&mut self, other: Outcome) {
        self.latencies.extend(other.latencies);
        for (k, v) in other.codes {
            *self.codes.entry(k).or_default() += v;
        }
    }
    fn tps(&self) -> f64 {
        self.latencies.len() as f64 / self.seconds
    }
    fn q(&mut self, q: f64) -> Duration {
        self.latencies.sort_unstable();
        let n = self.latencies.len();
        if n == 0 {
            return Duration::ZERO;
        }
        self.latencies[((n as f64 * q).ceil() as usize).clamp(1, n) - 1]
    }
}

/// One connection: `window` requests in flight (closed loop), or one every
/// `interval` (open loop), until `stop`.
async fn connection(
    addr: std::net::SocketAddr,
    c: u32,
    window: usize,
    interval: Option<Duration>,
    stop: Arc<AtomicBool>,
) -> Outcome {
    let (mut requests, mut responses) = Connection::connect(addr).await.unwrap().split();
    let permits = Arc::new(tokio::sync::Semaphore::new(window));
    let sent_at: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let terminal = format!("TERM{c:04}");
    let writer = {
        let (permits, sent_at) = (permits.clone(), sent_at.clone());
        tokio::spawn(async move {
            let mut sent = 0u64;
            let mut next = tokio::time::Instant::now();
            while !stop.load(Ordering::Relaxed) {
                match interval {
                    Some(i) => {
                        next += i;
                        tokio::time::sleep_until(next).await;
                    }
                    None => permits.acquire().await.unwrap().forget(),
                }
                let m = request(&terminal, 1_000);
                sent_at
                    .lock()
                    .insert(m.get_str(11).unwrap().to_owned(), Instant::now());
                requests.send(&m).await.unwrap();
                sent += 1;
            }
            sent
        })
    };
    let mut out = Outcome::default();
    loop {
        let next = responses.receive(Duration::from_secs(10));
        let response = match tokio::time::timeout(Duration::from_millis(200), next).await {
            Ok(r) => r.expect("a response"),
            Err(_) if writer.is_finished() && sent_at.lock().is_empty() => break,
            Err(_) => continue,
        };
        let at = sent_at
            .lock()
            .remove(response.get_str(11).unwrap())
            .expect("in flight");
        out.latencies.push(at.elapsed());
        *out.codes
            .entry(response.get_str(39).unwrap_or("-").to_owned())
            .or_default() += 1;
        if interval.is_none() {
            permits.add_permits(1);
        }
    }
    let sent = writer.await.unwrap();
    assert_eq!(out.latencies.len() as u64, sent, "every request answered");
    out
}

async fn load(
    addr: std::net::SocketAddr,
    connections: u32,
    window: usize,
    rate: Option<u64>,
    seconds: u64,
) -> Outcome {
    let stop = Arc::new(AtomicBool::new(false));
    let interval = rate.map(|r| Duration::from_secs_f64(f64::from(connections) / r as f64));
    let tasks: Vec<_> = (0..connections)
        .map(|c| tokio::spawn(connection(addr, c, window, interval, stop.clone())))
        .collect();
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    let mut all = Outcome::default();
    for t in tasks {
        all.merge(t.await.unwrap());
    }
    all.seconds = started.elapsed().as_secs_f64();
    all
}

fn ms(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64() * 1000.0)
}

async fn start(without_tranlog: bool, endpoint: Option<std::net::SocketAddr>) -> Switch {
    let mut config = default_config(&shared_data_dir());
    if let Some(addr) = endpoint {
        let xxx = config.endpoints.get_mut("xxx").unwrap();
        xxx.simulator = false;
        xxx.address = addr.to_string();
        xxx.timeout_ms = TIMEOUT_MS;
    }
    Switch::start(
        config,
        StartOptions {
            ephemeral_ports: true,
            without_tranlog,
            ..StartOptions::default()
        },
    )
    .await
    .expect("the switch starts")
}

fn row(name: &str, o: &mut Outcome) {
    let mut codes: Vec<_> = o.codes.iter().map(|(k, v)| format!("{k}:{v}")).collect();
    codes.sort();
    println!(
        "{name:<34} {:>9} {:>10.0} {:>9} {:>9} {:>9}  {}",
        o.latencies.len(),
        o.tps(),
        ms(o.q(0.5)),
        ms(o.q(0.99)),
        ms(o.latencies.last().copied().unwrap_or_default()),
        codes.join(" ")
    );
}

/// Timeouts reversed: how late the 91 is after the deadline, and how soon
/// the reversal is acknowledged after it.
async fn timeouts(count: u32) {
    let fake = FakeEndpoint::start(Box::new(|m, _| {
        if m.mti().as_str().starts_with("02") {
            Reply::Silence
        } else {
            Reply::Code("00")
        }
    }))
    .await;
    let switch = start(false, Some(fake.addr)).await;
    let addr = switch.addr_of_port(5002).unwrap();
    let mut late = Vec::new();
    let mut answered_at = Vec::new();
    let mut conn = Connection::connect(addr).await.unwrap();
    for _ in 0..count {
        let m = request("TERMTIME", 1_000);
        let t = Instant::now();
        let r = conn.exchange(&m, Duration::from_secs(10)).await.unwrap();
        assert_eq!(r.get_str(39), Some("91"));
        late.push(
            t.elapsed()
                .saturating_sub(Duration::from_millis(TIMEOUT_MS)),
        );
        answered_at.push((m.get_str(11).unwrap().to_owned(), Instant::now()));
    }
    let ok = fake
        .wait_for(Duration::from_secs(30), |r| {
            r.iter().filter(|x| x.message.mti_str() == "0420").count() >= count as usize
        })
        .await;
    assert!(ok, "every timeout reversed");
    let reversals: HashMap<String, Instant> = fake
        .with_mti("0420")
        .into_iter()
        .map(|r| (r.message.get_str(11).unwrap().to_owned(), r.at))
        .collect();
    let mut to_reversal: Vec<Duration> = answered_at
        .iter()
        .map(|(s, at)| reversals[s].saturating_duration_since(*at))
        .collect();
    late.sort();
    to_reversal.sort();
    let q =
        |v: &[Duration], q: f64| v[((v.len() as f64 * q).ceil() as usize).clamp(1, v.len()) - 1];
    println!(
        "timeout → reversal ({count} sequential, timeout {TIMEOUT_MS} ms): 91 after the deadline p50 {} p99 {} ms; \
         reversal at the endpoint after the 91 p50 {} p99 {} ms",
        ms(q(&late, 0.5)),
        ms(q(&late, 0.99)),
        ms(q(&to_reversal, 0.5)),
        ms(q(&to_reversal, 0.99)),
    );
    let ops = switch.ops().unwrap();
    let rows = ops
        .search(TxQuery {
            terminal: Some("TERMTIME".into()),
            limit: count as usize + 10,
            ..TxQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(rows.len(), count as usize);
    switch.shutdown().await.unwrap();
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` runs it once, quickly.
    let quick = !std::env::args().any(|a| a == "--bench");
    let seconds = if quick {
        1
    } else {
        env("TRANLOG_BENCH_SECONDS", 5)
    };
    let connections = env("TRANLOG_BENCH_CONNECTIONS", 8) as u32;
    let window = env("TRANLOG_BENCH_WINDOW", 8) as usize;
    let rate = env("TRANLOG_BENCH_RATE", 20_000);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        println!(
            "tranlog_load: 5001 (local authorization), {connections} connections, {seconds} s per phase, {} cores, client in the same process",
            std::thread::available_parallelism().map_or(0, |n| n.get())
        );
        println!(
            "{:<34} {:>9} {:>10} {:>9} {:>9} {:>9}  codes",
            "phase", "tx", "tx/s", "p50 ms", "p99 ms", "max ms"
        );
        // TRANLOG_BENCH_ONLY=on|off runs one closed loop alone (profiling).
        let only = std::env::var("TRANLOG_BENCH_ONLY").ok();
        for (name, off) in [("closed loop, tranlog off", true), ("closed loop, tranlog on", false)] {
            if only.as_deref().is_some_and(|o| o != if off { "off" } else { "on" }) {
                continue;
            }
            let switch = start(off, None).await;
            let addr = switch.addr_of_port(5001).unwrap();
            let _warm = load(addr, connections, window, None, 1).await;
            let before = switch.store().sqlite().expect("the SQLite store").writer_stats();
            let mut o = load(addr, connections, window, None, seconds).await;
            row(&format!("{name} ({window} in flight)"), &mut o);
            if !off {
                let after = switch.store().sqlite().expect("the SQLite store").writer_stats();
                let commits = after.commits - before.commits;
                println!(
                    "  writer: {commits} commits ({:.1} per s), {:.1} rows each; busy {:.0}%, cpu {:.0}% of the phase; {:.1} µs cpu per row",
                    commits as f64 / o.seconds,
                    (after.rows - before.rows) as f64 / commits.max(1) as f64,
                    (after.busy - before.busy).as_secs_f64() / o.seconds * 100.0,
                    (after.cpu - before.cpu).as_secs_f64() / o.seconds * 100.0,
                    (after.cpu - before.cpu).as_secs_f64() * 1e6 / (after.rows - before.rows).max(1) as f64,
                );
            }
            switch.shutdown().await.unwrap();
        }
        if only.is_some() {
            return;
        }
        // The same open loop without the tranlog first: the tail the machine
        // and the client have anyway.
        let open_loop = async |off: bool| {
            let switch = start(off, None).await;
            let addr = switch.addr_of_port(5001).unwrap();
            let _warm = load(addr, connections, window, None, 1).await;
            let mut o = load(addr, connections, 1 << 20, Some(rate), seconds).await;
            let state = if off { "off" } else { "on" };
            row(&format!("open loop {rate}/s, tranlog {state}"), &mut o);
            switch
        };
        open_loop(true).await.shutdown().await.unwrap();
        let switch = open_loop(false).await;
        let stats = switch.store().sqlite().expect("the SQLite store").writer_stats();
        println!(
            "group commit: {} rows in {} commits ({:.1} rows per commit), largest batch {}",
            stats.rows,
            stats.commits,
            stats.rows as f64 / stats.commits.max(1) as f64,
            stats.largest_batch
        );
        switch.shutdown().await.unwrap();
        timeouts(if quick { 20 } else { 200 }).await;
    });
}
