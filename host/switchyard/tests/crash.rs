//! Crash safety, tested: the real `switchyard` binary with ≥ 100
//! transactions in flight to a silent endpoint is killed with SIGKILL at
//! random points (a different window each run: before the timeouts fire,
//! while they fire, while the reversals drain — half of them need a
//! retransmission — and once also during the recovery that follows),
//! restarted on the same data directory, and then every original the
//! endpoint received must have been reversed, no original sent twice, and
//! no reversal may reach the endpoint after the switch recorded its
//! acknowledgement.

mod common;

#[path = "../../../tests/support/fake_endpoint.rs"]
mod fake_endpoint;

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::process::Child;
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use fake_endpoint::{FakeEndpoint, Reply, assert_no_card_data};

const PAN: &str = common::TEST_PAN;
const ORIGINALS: u32 = 150;
const CONNECTIONS: u32 = 10;

/// Starts `run --config`; the address of listener 5002.
fn start(config: &Path) -> (Child, std::net::SocketAddr, mpsc::Receiver<String>) {
    let (child, log) = common::spawn_run(config);
    let until = Instant::now() + Duration::from_secs(120);
    while Instant::now() < until {
        let line = log
            .recv_timeout(Duration::from_secs(120))
            .expect("the switch logs its listeners");
        if line.contains("serving") && line.contains("port=5002") {
            let addr = common::field(&line, "addr=").unwrap().parse().unwrap();
            return (child, addr, log);
        }
    }
    panic!("no listener 5002");
}

/// One run: load, SIGKILL after `kill_after`, restart (SIGKILL once more
/// during recovery when `kill_recovery`), drain, check.
async fn crash_run(name: &str, base: u32, kill_after: Duration, kill_recovery: Option<Duration>) {
    // Originals: silence. Reversals of even STANs: the first attempt gets
    // no answer (so the queue retransmits after its backoff), others and
    // retransmissions are acknowledged.
    let mut attempts: BTreeMap<String, u32> = BTreeMap::new();
    let fake = FakeEndpoint::start(Box::new(move |m, _| {
        if m.mti_str().starts_with("02") {
            return Reply::Silence;
        }
        let stan = m.get_str(11).unwrap_or("").to_owned();
        let n = attempts.entry(stan.clone()).or_default();
        *n += 1;
        let even = stan
            .bytes()
            .last()
            .is_some_and(|d| (d - b'0').is_multiple_of(2));
        if even && *n == 1 {
            Reply::Silence
        } else {
            Reply::Code("00")
        }
    }))
    .await;
    let data = common::test_dir("crash-tests", name);
    let cfg = common::fake_endpoint_config(&data, fake.addr, &[]);
    let (mut child, addr, _log) = start(&cfg);
    let (sent, conns) = common::send_originals(&[addr], base, ORIGINALS, CONNECTIONS).await;
    assert!(sent >= 100, "{sent} transactions in flight");
    tokio::time::sleep(kill_after).await;
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    drop(conns);
    let killed_at = Instant::now();

    // What the switch had recorded as acknowledged when it died.
    let acked_before: HashSet<String> = common::states(&cfg)
        .into_iter()
        .filter(|(_, s)| s == "reversed")
        .map(|(s, _)| s)
        .collect();

    if let Some(after) = kill_recovery {
        let (mut child, _, _log) = start(&cfg);
        tokio::time::sleep(after).await;
        child.kill().unwrap();
        child.wait().unwrap();
    }
    let acked_before_last: HashSet<String> = common::states(&cfg)
        .into_iter()
        .filter(|(_, s)| s == "reversed")
        .map(|(s, _)| s)
        .collect();
    let restarted_at = Instant::now();
    let (mut child, _, _log) = start(&cfg);
    let originals: HashSet<String> = fake
        .received()
        .iter()
        .filter(|r| !common::is_reversal(&r.message))
        .map(|r| common::stan(&r.message))
        .collect();
    // Until the fake has acknowledged a reversal of every original: odd
    // STANs at the first attempt, even ones at the second.
    let drained = fake
        .wait_for(Duration::from_secs(60), |rs| {
            let mut sends: BTreeMap<String, usize> = BTreeMap::new();
            for r in rs.iter().filter(|r| common::is_reversal(&r.message)) {
                *sends.entry(common::stan(&r.message)).or_default() += 1;
            }
            originals.iter().all(|s| {
                let needed = if s.ends_with(['0', '2', '4', '6', '8']) {
                    2
                } else {
                    1
                };
                sends.get(s).copied().unwrap_or(0) >= needed
            })
        })
        .await;
    // Let the last acknowledgements be recorded, then stop gracefully.
    tokio::time::sleep(Duration::from_millis(500)).await;
    common::terminate(&mut child);
    let end = common::states(&cfg);
    let received = fake.received();
    println!(
        "{name}: killed {kill_after:?} after sending {sent}; endpoint got {} originals; \
         {} reversed before the kill, {} before the last restart",
        originals.len(),
        acked_before.len(),
        acked_before_last.len()
    );
    assert!(
        drained,
        "{name}: not every original the endpoint received was reversed"
    );
    for s in &originals {
        assert_eq!(
            end.get(s).map(String::as_str),
            Some("reversed"),
            "{name}: original {s} the endpoint received"
        );
    }
    let mut per_stan: BTreeMap<String, usize> = BTreeMap::new();
    for r in received.iter().filter(|r| !common::is_reversal(&r.message)) {
        *per_stan.entry(common::stan(&r.message)).or_default() += 1;
    }
    assert!(
        per_stan.values().all(|n| *n == 1),
        "{name}: an original sent twice"
    );
    let after_restart = |since: Instant, acked: &HashSet<String>| {
        received
            .iter()
            .filter(|r| {
                common::is_reversal(&r.message)
                    && r.at > since
                    && acked.contains(&common::stan(&r.message))
            })
            .count()
    };
    assert_eq!(
        after_restart(killed_at, &acked_before),
        0,
        "{name}: reversals sent again after their acknowledgement was recorded"
    );
    assert_eq!(after_restart(restarted_at, &acked_before_last), 0, "{name}");
    assert_no_card_data(&data, PAN);
}

/// A pseudo-random point in `window` (ms), different on every run.
fn point(window: (u64, u64)) -> Duration {
    let seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64;
    Duration::from_millis(window.0 + seed % (window.1 - window.0))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_random_points_loses_no_reversal_and_sends_none_after_its_ack() {
    // Before any timeout fired; while they fire and reversals start; while
    // the queue drains; and once more during the recovery after a kill.
    crash_run("before-timeouts", 10_000, point((0, 800)), None).await;
    crash_run("at-timeouts", 20_000, point((900, 1_400)), None).await;
    crash_run("draining", 30_000, point((1_400, 3_500)), None).await;
    crash_run(
        "recovery",
        40_000,
        point((900, 2_500)),
        Some(point((200, 2_500))),
    )
    .await;
}
