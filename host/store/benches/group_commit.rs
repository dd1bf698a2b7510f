//! Group commit: admit+finish pairs per second with 64 concurrent callers
//! (each waits for its finish to be durable), and the caller's cost of
//! `admit`. A plain binary (`cargo bench -p switchyard-store`); the
//! database is a real file (WAL, synchronous = FULL: one fsync per batch).
//!
//! `SWITCHYARD_BENCH_SECONDS` (default 5) sets how long the pairs run.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use switchyard_engine::iso8583::{Message, Mti};
use switchyard_engine::ports::{
    Columns, Finished, MatchKey, Received, Tranlog, TxKind, TxState, Upstream,
};
use switchyard_store::{SqliteStore, StoreOptions};

const CALLERS: usize = 64;

fn request(stan: u64) -> Received {
    let stan = format!("{:06}", stan % 1_000_000);
    let mut m = Message::new(Mti::new("0200").unwrap());
    for (f, v) in [
        (2, "4761739001010119"),
        (3, "000000"),
        (4, "000000001000"),
        (7, "0101120000"),
        (11, stan.as_str()),
        (12, "120000"),
        (13, "0101"),
        (14, "2512"),
        (32, "00123"),
        (37, "RRN000000001"),
        (41, "TERM0001"),
        (42, "MERCHANT0000001"),
        (49, "978"),
    ] {
        m.set(f, v.as_bytes().to_vec());
    }
    Received {
        tenant: "acme".into(),
        listener: "l5002".into(),
        kind: TxKind::Original,
        mti: "0200".into(),
        columns: Columns {
            processing_code: Some("000000".into()),
            amount: Some("000000001000".into()),
            currency: Some("978".into()),
            stan: Some(stan.clone()),
            transmitted: Some("0101120000".into()),
            rrn: Some("RRN000000001".into()),
            terminal: Some("TERM0001".into()),
            merchant: Some("MERCHANT0000001".into()),
            acquirer: Some("00123".into()),
        },
        pan: Some("4761739001010119".into()),
        key: Some(MatchKey(format!(
            "acme|0200|00123|TERM0001|{stan}|0101120000|RRN000000001"
        ))),
        request: m,
        received_ms: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64,
    }
}

fn finished() -> Finished {
    let mut response = Message::new(Mti::new("0210").unwrap());
    for (f, v) in [(11, "000001"), (38, "AB1234"), (39, "00"), (41, "TERM0001")] {
        response.set(f, v.as_bytes().to_vec());
    }
    Finished {
        state: TxState::Answered,
        kind: None,
        rc: Some("00".into()),
        approval: Some("AB1234".into()),
        response: Some(response),
        endpoint: None,
        upstream: Upstream::Local,
        total: Duration::from_micros(800),
        external: None,
        participants: Vec::new(),
        original: None,
        reversal: None,
        trace: None,
    }
}

/// CPU time of the calling thread (Linux).
fn thread_cpu() -> Duration {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .map(Duration::from_nanos)
        .unwrap_or_default()
}

fn main() {
    let seconds: u64 = std::env::var("SWITCHYARD_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let dir =
        tempfile::tempdir_in(std::env::var("SWITCHYARD_BENCH_DIR").unwrap_or_else(|_| ".".into()))
            .unwrap();
    let store = SqliteStore::open(StoreOptions {
        db_path: dir.path().join("switchyard.db"),
        kek_path: dir.path().join("keys/kek.key"),
        node: "node-1".into(),
        duplicate_filter_mib: switchyard_store::DEFAULT_DUPLICATE_FILTER_MIB,
    })
    .unwrap();
    let warm = futures::executor::block_on(store.admit(request(0))).unwrap();
    futures::executor::block_on(store.finish(warm.id, finished())).unwrap();

    // 1. The caller's cost of admit (a miss in the pending map and the DB).
    let n = 20_000u64;
    let (cpu0, t0) = (thread_cpu(), Instant::now());
    let mut last = 0;
    for i in 0..n {
        last = futures::executor::block_on(store.admit(request(1_000_000 + i)))
            .unwrap()
            .id;
    }
    let (cpu, wall) = (thread_cpu() - cpu0, t0.elapsed());
    futures::executor::block_on(store.mark_sent(last, "xxx")).unwrap();
    println!(
        "admit: {:.1} µs wall, {:.1} µs CPU per call (single caller, {n} calls, writer running)",
        wall.as_secs_f64() * 1e6 / n as f64,
        cpu.as_secs_f64() * 1e6 / n as f64,
    );

    // 2. admit + durable finish pairs, 64 callers.
    let before = store.writer_stats();
    let stop = Arc::new(AtomicBool::new(false));
    let pairs = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let callers: Vec<_> = (0..CALLERS as u64)
        .map(|c| {
            let (store, stop, pairs) = (store.clone(), stop.clone(), pairs.clone());
            std::thread::spawn(move || {
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    i += 1;
                    let a = futures::executor::block_on(store.admit(request(c * 10_000_000 + i)))
                        .unwrap();
                    futures::executor::block_on(store.finish(a.id, finished())).unwrap();
                    pairs.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(seconds));
    stop.store(true, Ordering::Relaxed);
    for c in callers {
        c.join().unwrap();
    }
    let wall = start.elapsed();
    let after = store.writer_stats();
    let pairs = pairs.load(Ordering::Relaxed);
    let commits = after.commits - before.commits;
    let cpu = after.cpu - before.cpu;
    let busy = after.busy - before.busy;
    println!(
        "pairs: {pairs} in {:.2} s = {:.0} admit+finish pairs/s wall ({CALLERS} callers, 2 threads of work per pair)",
        wall.as_secs_f64(),
        pairs as f64 / wall.as_secs_f64()
    );
    println!(
        "writer: {commits} commits, {:.0} jobs/commit (largest {}), busy {:.0}% of wall, CPU {:.2} s = {:.0} pairs per writer-CPU-second",
        (after.jobs - before.jobs) as f64 / commits.max(1) as f64,
        after.largest_batch,
        busy.as_secs_f64() * 100.0 / wall.as_secs_f64(),
        cpu.as_secs_f64(),
        pairs as f64 / cpu.as_secs_f64().max(1e-9),
    );
    println!(
        "fsync: {:.2} ms average batch wall time",
        busy.as_secs_f64() * 1e3 / commits.max(1) as f64
    );
    store.close();
}
