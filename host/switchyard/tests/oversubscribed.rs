//! No false RC 96 under CPU oversubscription (issue 10, item 5), against
//! the real binary over TCP.
//!
//! A plugin call's deadline is measured on a wall-clock tick counter, but a
//! call is only stopped at its deadline once it used a good share of it in
//! CPU time (host/runtime/src/deadline.rs). One test, in phases:
//!
//! 1. Busy loops off: a looping plugin (`test-faulty`, mode `loop`, in
//!    front of 5005's pipeline) answers RC 96 within its deadline + 5 ms
//!    (the bound the issue names; the median of the samples is asserted,
//!    the figures are printed).
//! 2. Busy loops on (2 × the cores, `sh -c 'while :; do :; done'`, killed at
//!    the end and bounded by `timeout`): 60 s of healthy load on 5001 (the
//!    default pipeline: validate, case-switch, local-auth), 4 connections ×
//!    4 in flight → exactly 0 RC 96, and a good number of transactions; the
//!    looping plugin on 5005 meanwhile still answers RC 96 (its time to RC
//!    96 is printed, not asserted).
//!
//! `OVERSUBSCRIBED_HEALTHY_DEADLINE_MS=5` gives the healthy plugins of 5001
//! (validate, case-switch, local-auth) that deadline instead of the
//! default 50 ms: a stricter run, where a descheduled call overruns its
//! deadline far more often (with a deadline that is plain wall time, such a
//! run answers RC 96 to hundreds of healthy transactions a minute).

mod common;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use switchyard::client::{Connection, RequestSpec};

const VISA: &str = "4761739001010119";
const DEADLINE_MS: u64 = 50;
/// How long the healthy load runs under oversubscription.
const LOAD: Duration = Duration::from_secs(60);
const CONNECTIONS: usize = 4;
const IN_FLIGHT: usize = 4;

/// The default config on free ports, with `test-faulty` (mode `loop`, DE4
/// ending in 13, no breaker) as participant `faulty` in front of 5005's
/// pipeline. 5001's pipeline is the default one.
fn config() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("oversubscribed");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let wasm = switchyard_bundled_plugins::plugin_path("test-faulty")
        .display()
        .to_string();
    let mut text = common::free_ports_config("127.0.0.1:0");
    if let Ok(ms) = std::env::var("OVERSUBSCRIBED_HEALTHY_DEADLINE_MS") {
        let ms: u64 = ms.parse().expect("OVERSUBSCRIBED_HEALTHY_DEADLINE_MS: ms");
        text = text.replace("deadline_ms = 50\n", "\n");
        for plugin in ["validate", "local-auth", "case-switch"] {
            let file = format!("file = \"builtin:{plugin}\"\n");
            assert!(text.contains(&file), "the default config changed");
            text = text.replace(&file, &format!("{file}deadline_ms = {ms}\n"));
        }
        println!("healthy plugins' deadline: {ms} ms");
    }
    let group = "\"case 5005\" = \"query-yyy close send\"";
    assert!(text.contains(group), "the default config changed");
    text = text.replace(group, "\"case 5005\" = \"faulty query-yyy close send\"");
    let at = text.find("[participants.validate]").unwrap();
    text.insert_str(
        at,
        &format!(
            "[plugins.test-faulty]\nfile = {wasm:?}\ndeadline_ms = {DEADLINE_MS}\n\
             breaker_failures = 0\n\
             config = {{ mode = \"loop\", trigger_suffix = \"13\" }}\n\n\
             [participants.faulty]\nplugin = \"test-faulty\"\n\n"
        ),
    );
    let path = dir.join("switchyard.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// The addresses of listeners 5001 and 5005, from the log.
fn addresses(log: &mpsc::Receiver<String>, lines: &mut Vec<String>) -> (SocketAddr, SocketAddr) {
    let addrs = common::listener_addrs(log, lines, &[5001, 5005]);
    (addrs[0], addrs[1])
}

/// `2 × cores` busy-loop processes, each bounded by `timeout` (in case
/// this test is killed); killed when dropped.
struct BusyLoops(Vec<Child>);

impl BusyLoops {
    fn start(limit: Duration) -> BusyLoops {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let children = (0..2 * cores)
            .map(|_| {
                Command::new("timeout")
                    .arg(limit.as_secs().to_string())
                    .args(["sh", "-c", "while :; do :; done"])
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .expect("spawning a busy loop")
            })
            .collect();
        BusyLoops(children)
    }
}

impl Drop for BusyLoops {
    fn drop(&mut self) {
        for child in &mut self.0 {
            // `timeout` passes the signal on to its child.
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
        }
        for child in &mut self.0 {
            let _ = child.wait();
        }
    }
}

static STAN: AtomicU32 = AtomicU32::new(1);

fn stan() -> u32 {
    STAN.fetch_add(1, Ordering::Relaxed) % 999_999 + 1
}

fn request(amount_minor: u64) -> switchyard_iso8583::Message {
    RequestSpec::financial("0200", VISA, amount_minor, stan())
        .build()
        .unwrap()
}

/// What the healthy load saw: response codes and round trips.
#[derive(Default)]
struct Tally {
    codes: BTreeMap<String, u64>,
    times: Vec<Duration>,
}

/// Healthy transactions (DE4 10.00) on one connection, `IN_FLIGHT` at a
/// time, for `time`.
async fn healthy_load(addr: SocketAddr, time: Duration) -> Tally {
    let mut conn = Connection::connect(addr).await.unwrap();
    let mut tally = Tally::default();
    let mut sent = HashMap::new();
    let until = Instant::now() + time;
    let send = async |conn: &mut Connection, sent: &mut HashMap<String, Instant>| {
        let m = request(1_000);
        sent.insert(m.get_str(11).unwrap_or("").to_owned(), Instant::now());
        conn.send(&m).await.unwrap();
    };
    for _ in 0..IN_FLIGHT {
        send(&mut conn, &mut sent).await;
    }
    while !sent.is_empty() {
        let Ok(m) = conn.receive(Duration::from_secs(30)).await else {
            // Counted as "no response"; this connection is done.
            *tally.codes.entry("no response".into()).or_default() += sent.len() as u64;
            break;
        };
        let rc = m.get_str(39).unwrap_or("none").to_owned();
        *tally.codes.entry(rc).or_default() += 1;
        let t0 = sent
            .remove(m.get_str(11).unwrap_or(""))
            .expect("a response to a request");
        tally.times.push(t0.elapsed());
        if Instant::now() < until {
            send(&mut conn, &mut sent).await;
        }
    }
    tally
}

/// Looping transactions on 5005, one at a time (`pause` between them),
/// until `stop` or `max` of them: each one's time to its response, which
/// must be RC 96.
async fn looping(
    addr: SocketAddr,
    max: usize,
    pause: Duration,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> Vec<Duration> {
    let mut conn = Connection::connect(addr).await.unwrap();
    let mut times = Vec::new();
    while times.len() < max && !stop.load(Ordering::Relaxed) {
        let m = request(1_013);
        let t0 = Instant::now();
        let r = conn.exchange(&m, Duration::from_secs(30)).await.unwrap();
        let t = t0.elapsed();
        assert_eq!(r.get_str(39), Some("96"), "a looping transaction");
        times.push(t);
        tokio::time::sleep(pause).await;
    }
    times
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Prints n, min, p50, p90, max of `d`; returns the median and the max.
fn summary(what: &str, mut d: Vec<Duration>) -> (Duration, Duration) {
    d.sort();
    let q = |q: f64| d[((d.len() as f64 * q).ceil() as usize).clamp(1, d.len()) - 1];
    println!(
        "{what}: n={} min={:.2} ms p50={:.2} ms p90={:.2} ms max={:.2} ms",
        d.len(),
        ms(d[0]),
        ms(q(0.5)),
        ms(q(0.9)),
        ms(q(1.0)),
    );
    (q(0.5), q(1.0))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_false_rc_96_under_oversubscription_and_a_looping_plugin_is_still_stopped() {
    let config = config();
    let (child, log) = common::spawn_run(&config);
    let mut run = Running(child);
    let mut lines = Vec::new();
    let (local, looper) = addresses(&log, &mut lines);

    // Warm up (instances), then the looping plugin with the machine idle.
    healthy_load(local, Duration::from_millis(500)).await;
    let never = Arc::new(std::sync::atomic::AtomicBool::new(false));
    looping(looper, 3, Duration::from_millis(20), never.clone()).await;
    let idle = looping(looper, 30, Duration::from_millis(20), never).await;

    // 2× oversubscribed: healthy load on 5001, a looping transaction on
    // 5005 every 200 ms beside it.
    let busy = BusyLoops::start(LOAD + Duration::from_secs(120));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let loops = tokio::spawn(looping(
        looper,
        usize::MAX,
        Duration::from_millis(200),
        stop.clone(),
    ));
    let started = Instant::now();
    let load: Vec<_> = (0..CONNECTIONS)
        .map(|_| tokio::spawn(healthy_load(local, LOAD)))
        .collect();
    let (mut codes, mut times) = (BTreeMap::<String, u64>::new(), Vec::new());
    for l in load {
        let tally = l.await.unwrap();
        for (rc, n) in tally.codes {
            *codes.entry(rc).or_default() += n;
        }
        times.extend(tally.times);
    }
    let elapsed = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    let busy_loops = loops.await.unwrap();
    drop(busy);
    run.stop();
    lines.extend(log.try_iter());

    let total: u64 = codes.values().sum();
    println!(
        "2x oversubscribed ({} busy loops), {CONNECTIONS} connections x {IN_FLIGHT} in flight \
         for {:.1} s: {total} transactions ({:.0}/s), codes {codes:?}",
        2 * std::thread::available_parallelism().map_or(2, |n| n.get()),
        elapsed.as_secs_f64(),
        total as f64 / elapsed.as_secs_f64()
    );
    summary("healthy 5001, 2x oversubscribed, round trip", times);
    let (idle_p50, _) = summary(
        &format!("looping plugin, machine idle, time to RC 96 (deadline {DEADLINE_MS} ms)"),
        idle,
    );
    summary(
        "looping plugin, 2x oversubscribed, time to RC 96",
        busy_loops,
    );
    let healthy_failures = lines
        .iter()
        .filter(|l| l.contains("plugin failed") && !l.contains("test-faulty"))
        .cloned()
        .collect::<Vec<_>>();

    println!(
        "healthy plugins' failures logged: {}; the first: {:#?}",
        healthy_failures.len(),
        &healthy_failures[..healthy_failures.len().min(3)]
    );
    assert_eq!(codes.get("96"), None, "RC 96 from healthy plugins");
    assert_eq!(
        codes.get("no response"),
        None,
        "healthy transactions unanswered"
    );
    assert!(
        healthy_failures.is_empty(),
        "healthy plugins failed: {healthy_failures:#?}"
    );
    assert!(total >= 10_000, "too few transactions got through: {total}");
    // The bound the issue names (deadline + 5 ms), on the median: a single
    // sample on a shared machine can be delayed by anything.
    assert!(
        idle_p50 <= Duration::from_millis(DEADLINE_MS + 5),
        "a looping plugin stopped late: p50 {idle_p50:?}"
    );
}

/// The switch; SIGTERM, then killed, when stopped or dropped.
struct Running(Child);

impl Running {
    fn stop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if self.0.try_wait().ok().flatten().is_none() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}
