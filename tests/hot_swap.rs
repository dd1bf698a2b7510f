//! Hot swap end to end: the real switch on free ports, real TCP, plugin
//! `tag` (two versions, `test-tag-a` and `test-tag-b`, each appending its
//! letter to DE44) wired TWICE into the pipeline. A response tagged `AB` or
//! `BA` would be a transaction that saw two versions; pinned generations
//! make it `AA` or `BB`, and the version must be one that was live at some
//! moment between the request's sending and its response.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::{Method, StatusCode};
use switchyard::admin::client::AdminClient;
use switchyard::admin::views::SwapEntry;
use switchyard::client::{Connection, RequestSpec};
use switchyard_tests::{
    RESPONSE_TIMEOUT, TEST_PAN, TestSwitch, shared_data_dir, tag_config, tag_wasm,
};
use tokio::sync::Semaphore;

/// Connections of the steady load, and requests in flight on each.
const CONNECTIONS: u32 = 4;
const WINDOW: usize = 4;
/// Swaps during the load (A → B → A …).
const SWAPS: usize = 100;

fn admin_client(sw: &TestSwitch) -> AdminClient {
    let admin = sw.switch.admin().expect("the admin API runs");
    let token = switchyard::admin::token::read(admin.token_path()).unwrap();
    AdminClient::new(
        &format!("https://{}", admin.addr()),
        token,
        admin.token_path().display().to_string(),
        admin.cert_path(),
    )
    .unwrap()
}

fn purchase(stan: u32) -> RequestSpec {
    RequestSpec::financial("0200", TEST_PAN, 1_000, stan)
}

/// One transaction on its own connection; its DE39 and DE44.
async fn probe(sw: &TestSwitch, stan: u32) -> (String, String) {
    let r = sw.exchange(5001, &purchase(stan)).await;
    (
        r.get_str(39).unwrap_or("").to_owned(),
        r.get_str(44).unwrap_or("").to_owned(),
    )
}

/// A response of the load.
#[derive(Debug)]
struct Answered {
    sent: Instant,
    received: Instant,
    rc: String,
    tags: String,
}

/// Steady load on one connection: `WINDOW` requests in flight until `stop`,
/// then every response read. Returns the answered requests and how many
/// were sent.
async fn load(conn: Connection, c: u32, stop: Arc<AtomicBool>) -> (Vec<Answered>, u64) {
    let (mut requests, mut responses) = conn.split();
    let window = Arc::new(Semaphore::new(WINDOW));
    let in_flight: Arc<in_flight::Map> = Arc::default();
    let sent = Arc::new(AtomicU64::new(0));
    let writer = {
        let (window, in_flight, sent) = (window.clone(), in_flight.clone(), sent.clone());
        tokio::spawn(async move {
            let mut i = 0u32;
            while !stop.load(Ordering::Relaxed) {
                let permit = window.clone().acquire_owned().await.unwrap();
                permit.forget();
                let stan = c * 100_000 + i % 100_000;
                i += 1;
                in_flight.insert(stan, Instant::now());
                requests
                    .send(&purchase(stan).build().unwrap())
                    .await
                    .unwrap();
                sent.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    let mut answered = Vec::new();
    let mut progress = Instant::now();
    loop {
        let outstanding = sent
            .load(Ordering::Relaxed)
            .saturating_sub(answered.len() as u64);
        if writer.is_finished() && outstanding == 0 {
            break;
        }
        // Wake up now and then to see whether the writer has stopped.
        let wait = responses.receive(RESPONSE_TIMEOUT);
        let r = match tokio::time::timeout(Duration::from_millis(200), wait).await {
            Ok(r) => r.expect("every request is answered"),
            Err(_) => {
                assert!(
                    outstanding == 0 || progress.elapsed() < RESPONSE_TIMEOUT,
                    "connection {c}: {outstanding} request(s) unanswered"
                );
                continue;
            }
        };
        progress = Instant::now();
        let stan: u32 = r.get_str(11).unwrap().parse().unwrap();
        let sent_at = in_flight
            .remove(stan)
            .expect("a response to a request in flight");
        answered.push(Answered {
            sent: sent_at,
            received: Instant::now(),
            rc: r.get_str(39).unwrap_or("").to_owned(),
            tags: r.get_str(44).unwrap_or("").to_owned(),
        });
        window.add_permits(1);
    }
    writer.await.unwrap();
    let total = sent.load(Ordering::Relaxed);
    (answered, total)
}

/// STAN → send time, shared by a connection's writer and reader.
mod in_flight {
    use std::collections::HashMap;
    use std::sync::Mutex;
    use std::time::Instant;

    #[derive(Default)]
    pub struct Map(Mutex<HashMap<u32, Instant>>);

    impl Map {
        pub fn insert(&self, stan: u32, at: Instant) {
            assert!(
                self.0.lock().unwrap().insert(stan, at).is_none(),
                "STAN {stan} reused in flight"
            );
        }
        pub fn remove(&self, stan: u32) -> Option<Instant> {
            self.0.lock().unwrap().remove(&stan)
        }
    }
}

/// A swap: asked at `asked`, answered at `done`, making `version` live.
#[derive(Debug, Clone, Copy)]
struct Swap {
    asked: Instant,
    done: Instant,
    version: char,
}

/// Whether `version` was live at some moment in `[from, to]`: swap k's
/// version is live from (at the earliest) its asking to (at the latest) the
/// answer of swap k+1.
fn live_between(swaps: &[Swap], version: char, from: Instant, to: Instant) -> bool {
    swaps.iter().enumerate().any(|(k, s)| {
        s.version == version
            && s.asked <= to
            && swaps.get(k + 1).is_none_or(|next| next.done >= from)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_swaps_under_load_lose_nothing_and_never_mix_versions() {
    let sw = TestSwitch::start(tag_config(&shared_data_dir(), None)).await;
    let client = admin_client(&sw);
    let wasm: HashMap<char, Vec<u8>> = ['A', 'B']
        .into_iter()
        .map(|v| (v, std::fs::read(tag_wasm(v)).unwrap()))
        .collect();
    assert_eq!(probe(&sw, 1).await, ("00".into(), "AA".into()));

    // Version A is live from before the first request of the load.
    let start = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let mut loads = Vec::new();
    for c in 1..=CONNECTIONS {
        let conn = sw.connect(5001).await;
        loads.push(tokio::spawn(load(conn, c, stop.clone())));
    }

    let mut swaps = vec![Swap {
        asked: start,
        done: start,
        version: 'A',
    }];
    for k in 0..SWAPS {
        let version = if k % 2 == 0 { 'B' } else { 'A' };
        let asked = Instant::now();
        let result = client
            .swap("tag", wasm[&version].clone(), Some("hot-swap-test"))
            .await
            .expect("the swap is accepted");
        let done = Instant::now();
        assert!(result.changed, "swap {k}: {result:?}");
        swaps.push(Swap {
            asked,
            done,
            version,
        });
        // A transaction that starts after the swap answered runs the new version.
        let (rc, tags) = probe(&sw, 900_000 + k as u32).await;
        assert_eq!(
            (rc.as_str(), tags.as_str()),
            ("00", &*format!("{version}{version}")),
            "after swap {k}"
        );
    }
    stop.store(true, Ordering::Relaxed);

    let mut total_sent = 0;
    let mut answered = Vec::new();
    for l in loads {
        let (a, sent) = l.await.unwrap();
        total_sent += sent;
        answered.extend(a);
    }
    assert_eq!(answered.len() as u64, total_sent, "every request answered");
    let mut by_tags: HashMap<&str, usize> = HashMap::new();
    for a in &answered {
        assert_eq!(a.rc, "00", "{a:?}");
        let version = match a.tags.as_str() {
            "AA" => 'A',
            "BB" => 'B',
            other => panic!("a transaction saw versions {other:?}: {a:?}"),
        };
        assert!(
            live_between(&swaps, version, a.sent, a.received),
            "version {version} was not live while {a:?} ran"
        );
        *by_tags.entry(a.tags.as_str()).or_default() += 1;
    }
    assert!(
        by_tags.len() == 2,
        "both versions served the load: {by_tags:?}"
    );
    eprintln!(
        "{} transactions over {SWAPS} swaps in {:.1} s: {by_tags:?}",
        answered.len(),
        start.elapsed().as_secs_f64()
    );

    // The registry recorded every swap, with who asked.
    let history = client.history(1000).await.unwrap();
    let ours = history
        .iter()
        .filter(|e| e.actor == "hot-swap-test")
        .count();
    assert!(ours >= SWAPS, "{ours} swaps recorded");
    let list = client.list().await.unwrap();
    let tag = list.plugins.iter().find(|p| p.name == "tag").unwrap();
    assert!(
        !tag.previous.is_empty(),
        "versions kept for rollback: {tag:?}"
    );
    assert!(tag.metrics.calls >= 2 * answered.len() as u64);
    assert_eq!(tag.metrics.failures, 0);
    sw.switch.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_api_needs_the_token_and_refuses_a_bad_component_changing_nothing() {
    let sw = TestSwitch::start(tag_config(&shared_data_dir(), None)).await;
    let client = admin_client(&sw);
    let url = client.url().to_owned();

    // Without the token, or with another one: 401 on every route.
    let cert = sw.switch.admin().unwrap().cert_path().to_owned();
    let stranger = AdminClient::new(&url, "not-the-token".into(), "test".into(), &cert).unwrap();
    for (method, path) in [
        (Method::GET, "/health"),
        (Method::GET, "/plugins"),
        (Method::GET, "/metrics"),
        (Method::GET, "/swaps"),
        (Method::POST, "/plugins/tag/rollback"),
        (Method::POST, "/plugins/tag/swap"),
    ] {
        let (status, _) = stranger
            .request(method.clone(), path, Bytes::from_static(b"\0asm"), None)
            .await
            .unwrap();
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {path}");
    }
    let refused = stranger.list().await.unwrap_err().to_string();
    assert!(refused.contains("refused the admin token"), "{refused}");

    let (status, body) = client
        .request(Method::GET, "/health", Bytes::new(), None)
        .await
        .unwrap();
    assert_eq!(status, StatusCode::OK);
    assert!(String::from_utf8_lossy(&body).contains("\"ok\""));

    // What runs now.
    probe(&sw, 1).await;
    let list = client.list().await.unwrap();
    let tag = list.plugins.iter().find(|p| p.name == "tag").unwrap();
    let a_version = tag.version.clone();
    assert_eq!(tag.roles, vec!["participant"]);
    assert_eq!(tag.limits.deadline_ms, 50);
    assert_eq!(tag.instances, "reuse");
    assert!(tag.metrics.calls >= 2, "{tag:?}");
    assert!(tag.metrics.latency_p50_us.is_some());
    assert!(tag.previous.is_empty());

    // Not a component, an unknown plugin, a formatter where a participant is
    // needed: refused with the load error, nothing changes.
    let err = client
        .swap("tag", b"not wasm".to_vec(), None)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("swap refused") && err.contains("not a valid WebAssembly component"),
        "{err}"
    );
    let err = client
        .swap("nowhere", std::fs::read(tag_wasm('B')).unwrap(), None)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("no plugin nowhere is configured"), "{err}");
    let formatter = switchyard_bundled_plugins::get("formatter-xxx")
        .unwrap()
        .to_vec();
    let err = client
        .swap("tag", formatter, None)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("cannot act as a participant"), "{err}");
    let err = client.rollback("tag", None).await.unwrap_err().to_string();
    assert!(err.contains("no earlier version"), "{err}");
    assert_eq!(probe(&sw, 2).await.1, "AA");

    // Swap (actor defaults to the token's holder), the same bytes again, rollback.
    let swapped = client
        .swap("tag", std::fs::read(tag_wasm('B')).unwrap(), None)
        .await
        .unwrap();
    assert!(swapped.changed);
    assert_eq!(swapped.actor, "cli"); // the token file is API client `cli`
    assert_eq!(swapped.old_version, a_version);
    assert_eq!(probe(&sw, 3).await.1, "BB");
    let again = client
        .swap("tag", std::fs::read(tag_wasm('B')).unwrap(), Some("ops"))
        .await
        .unwrap();
    assert!(!again.changed);
    let back = client.rollback("tag", Some("ops")).await.unwrap();
    assert_eq!(
        (back.action.as_str(), back.new_version.as_str()),
        ("rollback", a_version.as_str())
    );
    assert_eq!(probe(&sw, 4).await.1, "AA");

    // History and metrics.
    // (The store is shared with the other tests: look at this test's entries.)
    let history = client.history(1000).await.unwrap();
    let ours: Vec<_> = history.iter().filter(|e| e.actor == "ops").collect();
    let last = ours.last().unwrap();
    assert_eq!(
        (last.plugin.as_str(), last.action.as_str()),
        ("tag", "rollback")
    );
    assert_eq!(ours[ours.len() - 2].action, "swap (unchanged)");
    let (status, metrics) = client
        .request(Method::GET, "/metrics", Bytes::new(), None)
        .await
        .unwrap();
    assert_eq!(status, StatusCode::OK);
    let metrics = String::from_utf8(metrics.to_vec()).unwrap();
    for needle in [
        "# TYPE switchyard_plugin_calls counter",
        "switchyard_plugin_failures_total{plugin=\"tag\"} 0",
        "switchyard_plugin_call_duration_seconds_bucket{le=\"+Inf\",plugin=\"tag\"}",
        &format!("switchyard_plugin_info{{plugin=\"tag\",version=\"{a_version}\"}} 1"),
    ] {
        assert!(
            metrics.contains(needle),
            "{needle} missing from:\n{metrics}"
        );
    }
    let (status, _) = client
        .request(Method::GET, "/nowhere", Bytes::new(), None)
        .await
        .unwrap();
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = client
        .request(Method::DELETE, "/plugins", Bytes::new(), None)
        .await
        .unwrap();
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);

    // Shut down: the API stops answering.
    let addr = sw.switch.admin_addr().unwrap();
    sw.switch.shutdown().await.unwrap();
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

/// Polls `check` every 100 ms for up to a minute (the deploy directory is
/// scanned every 100 ms in these tests; a file is taken on its second scan).
async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
    for _ in 0..600 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{what}: still not so after a minute");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_deploy_directory_swaps_in_what_is_dropped_and_renames_what_fails() {
    let started_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let deploy = tempfile::tempdir().unwrap();
    let mut config = tag_config(&shared_data_dir(), Some(deploy.path()));
    config.admin.deploy_poll_ms = 100;
    let sw = TestSwitch::start(config).await;
    let client = admin_client(&sw);
    let dir = deploy.path();

    // Dropped as tag.wasm (written elsewhere, renamed in): swapped in.
    std::fs::write(dir.join(".tag.tmp"), std::fs::read(tag_wasm('B')).unwrap()).unwrap();
    std::fs::rename(dir.join(".tag.tmp"), dir.join("tag.wasm")).unwrap();
    eventually("tag.wasm is live", async || probe(&sw, 1).await.1 == "BB").await;
    // (The store is shared with the other tests: look at this test's entries.)
    let deployed = async || -> Vec<SwapEntry> {
        let history = client.history(1000).await.unwrap();
        history
            .into_iter()
            .filter(|e| e.actor == "deploy-dir" && e.at_ms >= started_ms)
            .collect()
    };
    let entries = deployed().await;
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(
        (entries[0].plugin.as_str(), entries[0].action.as_str()),
        ("tag", "swap")
    );
    assert!(dir.join("tag.wasm").exists(), "an applied file stays");

    // A rollback through the API is not undone by the file still there.
    client.rollback("tag", None).await.unwrap();
    for stan in 2..6 {
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert_eq!(probe(&sw, stan).await.1, "AA");
    }

    // Not a component: renamed .bad, the reason beside it, nothing changes.
    std::fs::write(dir.join("tag.wasm"), b"definitely not wasm").unwrap();
    eventually("tag.wasm.bad appears", async || {
        dir.join("tag.wasm.bad").exists()
    })
    .await;
    assert!(!dir.join("tag.wasm").exists());
    let reason = std::fs::read_to_string(dir.join("tag.wasm.bad.txt")).unwrap();
    assert!(
        reason.contains("not a valid WebAssembly component"),
        "{reason}"
    );
    assert_eq!(probe(&sw, 7).await.1, "AA");

    // A plugin that is not configured: refused too.
    std::fs::write(
        dir.join("stranger.wasm"),
        std::fs::read(tag_wasm('B')).unwrap(),
    )
    .unwrap();
    eventually("stranger.wasm.bad appears", async || {
        dir.join("stranger.wasm.bad").exists()
    })
    .await;
    let reason = std::fs::read_to_string(dir.join("stranger.wasm.bad.txt")).unwrap();
    assert!(
        reason.contains("no plugin stranger is configured"),
        "{reason}"
    );

    // The version already live: nothing recorded.
    std::fs::write(dir.join("tag.wasm"), std::fs::read(tag_wasm('A')).unwrap()).unwrap();
    std::fs::write(
        dir.join("validate.wasm"),
        switchyard_bundled_plugins::get("validate").unwrap(),
    )
    .unwrap();
    // A file dropped after these two is handled in the same scan or a later
    // one; one dropped after that is handled once that scan is over.
    for marker in ["marker-1", "marker-2"] {
        let file = dir.join(format!("{marker}.wasm"));
        std::fs::write(&file, b"x").unwrap();
        let bad = file.with_extension("wasm.bad");
        eventually("a marker is refused", async || bad.exists()).await;
    }
    let entries = deployed().await;
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(probe(&sw, 8).await.1, "AA");
    sw.switch.shutdown().await.unwrap();
}
