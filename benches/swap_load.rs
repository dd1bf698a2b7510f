//! Latency and throughput while plugins are hot-swapped, against the same
//! load with no swap, from one run.
//!
//! The real switch runs in-process (bundled plugins, plugin `tag` twice in
//! the pipeline of port 5001, admin API on a free port); `CONNECTIONS`
//! connections each keep `WINDOW` requests in flight over real TCP for
//! `SECONDS` per phase:
//! 1. steady — no swap;
//! 2. swapping, cached — `tag` swapped A ↔ B through the admin API every
//!    ~50 ms (both versions' compiled artifacts are in the cache: a swap
//!    loads, checks and instantiates);
//! 3. swapping, compiling — every swap is a version never seen before (the
//!    component with a unique custom section), so each one is compiled from
//!    scratch on the swap thread while the load runs.
//!
//! `cargo bench -p switchyard-benches --bench swap_load`; environment
//! `SWAP_BENCH_SECONDS` (default 4), `SWAP_BENCH_CONNECTIONS` (8),
//! `SWAP_BENCH_WINDOW` (8).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use switchyard::admin::client::AdminClient;
use switchyard::client::{Connection, RequestSpec};
use switchyard::{StartOptions, Switch};
use switchyard_tests::{tag_config, tag_wasm};
use tokio::sync::Semaphore;

use switchyard_tests::TEST_PAN;
const SWAP_EVERY: Duration = Duration::from_millis(50);

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn tag_bytes(version: char) -> Vec<u8> {
    std::fs::read(tag_wasm(version))
        .expect("plugins/ built (the bundled-plugins build script builds test-tag-a and -b)")
}

/// A component made new by a custom section (name `bench`, `payload`)
/// appended at its end: same behaviour, another SHA-256, so not cached.
fn with_custom_section(component: &[u8], payload: &[u8]) -> Vec<u8> {
    fn leb(mut n: usize, out: &mut Vec<u8>) {
        loop {
            let byte = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                out.push(byte);
                return;
            }
            out.push(byte | 0x80);
        }
    }
    let name = b"bench";
    let mut body = Vec::new();
    leb(name.len(), &mut body);
    body.extend_from_slice(name);
    body.extend_from_slice(payload);
    let mut out = component.to_vec();
    out.push(0);
    leb(body.len(), &mut out);
    out.extend_from_slice(&body);
    out
}

/// Latencies of one connection's load until `stop`.
async fn load(conn: Connection, c: u32, window: usize, stop: Arc<AtomicBool>) -> Vec<Duration> {
    let (mut requests, mut responses) = conn.split();
    let permits = Arc::new(Semaphore::new(window));
    let sent_at: Arc<Mutex<Vec<Option<Instant>>>> = Arc::new(Mutex::new(vec![None; 100_000]));
    let writer = {
        let (permits, sent_at) = (permits.clone(), sent_at.clone());
        tokio::spawn(async move {
            let mut sent = 0u64;
            let mut i = 0u32;
            while !stop.load(Ordering::Relaxed) {
                permits.acquire().await.unwrap().forget();
                let stan = i % 100_000;
                i += 1;
                let request = RequestSpec::financial("0200", TEST_PAN, 1_000, c * 100_000 + stan)
                    .build()
                    .unwrap();
                sent_at.lock()[stan as usize] = Some(Instant::now());
                requests.send(&request).await.unwrap();
                sent += 1;
            }
            sent
        })
    };
    let mut latencies = Vec::new();
    loop {
        let next = responses.receive(Duration::from_secs(10));
        let response = match tokio::time::timeout(Duration::from_millis(100), next).await {
            Ok(r) => r.expect("a response"),
            Err(_) if writer.is_finished() => break,
            Err(_) => continue,
        };
        let stan: u32 = response.get_str(11).unwrap().parse().unwrap();
        let at = sent_at.lock()[(stan % 100_000) as usize]
            .take()
            .expect("in flight");
        latencies.push(at.elapsed());
        assert_eq!(response.get_str(39), Some("00"));
        let tags = response.get_str(44).unwrap_or("");
        assert!(tags == "AA" || tags == "BB", "{tags:?}");
        permits.add_permits(1);
    }
    let sent = writer.await.unwrap();
    assert_eq!(latencies.len() as u64, sent, "every request answered");
    latencies
}

#[derive(Clone, Copy, PartialEq)]
enum Swaps {
    None,
    Cached,
    Compiling,
}

struct Phase {
    name: &'static str,
    transactions: usize,
    seconds: f64,
    latencies: Vec<Duration>,
    swaps: Vec<Duration>,
}

async fn phase(
    name: &'static str,
    switch: &Switch,
    client: &AdminClient,
    swaps: Swaps,
    seconds: u64,
    connections: u32,
    window: usize,
) -> Phase {
    let stop = Arc::new(AtomicBool::new(false));
    let addr = switch.addr_of_port(5001).unwrap();
    let mut loads = Vec::new();
    for c in 0..connections {
        let conn = Connection::connect(addr).await.unwrap();
        loads.push(tokio::spawn(load(conn, c, window, stop.clone())));
    }
    let started = Instant::now();
    let versions = [tag_bytes('B'), tag_bytes('A')];
    let mut swap_times = Vec::new();
    let mut k = 0usize;
    while started.elapsed() < Duration::from_secs(seconds) {
        let tick = Instant::now();
        if swaps != Swaps::None {
            let base = &versions[k % 2];
            let wasm = match swaps {
                Swaps::Compiling => with_custom_section(
                    base,
                    format!("{name}-{k}-{:?}", std::time::SystemTime::now()).as_bytes(),
                ),
                _ => base.clone(),
            };
            let t = Instant::now();
            let r = client.swap("tag", wasm, Some("bench")).await.unwrap();
            swap_times.push(t.elapsed());
            assert!(r.changed);
            k += 1;
        }
        tokio::time::sleep(SWAP_EVERY.saturating_sub(tick.elapsed())).await;
    }
    stop.store(true, Ordering::Relaxed);
    let mut latencies = Vec::new();
    for l in loads {
        latencies.extend(l.await.unwrap());
    }
    let seconds = started.elapsed().as_secs_f64();
    latencies.sort();
    swap_times.sort();
    Phase {
        name,
        transactions: latencies.len(),
        seconds,
        latencies,
        swaps: swap_times,
    }
}

fn quantile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1]
}

fn ms(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64() * 1000.0)
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` runs it once, quickly.
    let quick = !std::env::args().any(|a| a == "--bench");
    let seconds = if quick {
        1
    } else {
        env("SWAP_BENCH_SECONDS", 4)
    };
    let connections = env("SWAP_BENCH_CONNECTIONS", 8) as u32;
    let window = env("SWAP_BENCH_WINDOW", 8) as usize;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let data = std::env::temp_dir().join(format!("switchyard-swap-bench-{}", std::process::id()));
    runtime.block_on(async {
        let switch = Switch::start(
            tag_config(&data, None),
            StartOptions {
                ephemeral_ports: true,
                ..StartOptions::default()
            },
        )
        .await
        .expect("the switch starts");
        let admin = switch.admin().unwrap();
        let client = AdminClient::new(
            &format!("https://{}", admin.addr()),
            switchyard::admin::token::read(admin.token_path()).unwrap(),
            admin.token_path().display().to_string(),
            admin.cert_path(),
        )
        .unwrap();
        // Both versions compiled and cached before measuring; back on A.
        client
            .swap("tag", tag_bytes('B'), Some("bench"))
            .await
            .unwrap();
        client
            .swap("tag", tag_bytes('A'), Some("bench"))
            .await
            .unwrap();
        let _warm = phase(
            "warm-up",
            &switch,
            &client,
            Swaps::None,
            1,
            connections,
            window,
        )
        .await;

        let mut phases = Vec::new();
        for (name, swaps) in [
            ("steady", Swaps::None),
            ("swapping, cached", Swaps::Cached),
            ("swapping, compiling", Swaps::Compiling),
        ] {
            phases.push(phase(name, &switch, &client, swaps, seconds, connections, window).await);
        }
        println!(
            "swap_load: {connections} connections x {window} in flight, {seconds} s per phase, \
             swap every {} ms, {} cores",
            SWAP_EVERY.as_millis(),
            std::thread::available_parallelism().map_or(0, |n| n.get())
        );
        println!(
            "{:<22} {:>10} {:>10} {:>9} {:>9} {:>9} {:>7} {:>11} {:>11}",
            "phase", "tx", "tx/s", "p50 ms", "p99 ms", "max ms", "swaps", "swap p50", "swap max"
        );
        for p in &phases {
            println!(
                "{:<22} {:>10} {:>10.0} {:>9} {:>9} {:>9} {:>7} {:>11} {:>11}",
                p.name,
                p.transactions,
                p.transactions as f64 / p.seconds,
                ms(quantile(&p.latencies, 0.5)),
                ms(quantile(&p.latencies, 0.99)),
                ms(p.latencies.last().copied().unwrap_or_default()),
                p.swaps.len(),
                if p.swaps.is_empty() {
                    "-".into()
                } else {
                    ms(quantile(&p.swaps, 0.5))
                },
                if p.swaps.is_empty() {
                    "-".into()
                } else {
                    ms(*p.swaps.last().unwrap())
                },
            );
        }
        switch.shutdown().await.unwrap();
    });
    let _ = std::fs::remove_dir_all(&data);
}
