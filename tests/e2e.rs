//! End-to-end tests: the real switch (bundled WASM plugins, in-process
//! endpoint simulator) on free ports, spoken to over real TCP.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use switchyard::client::{Connection, RequestSpec};
use switchyard::demo::{Script, cases, malformed_frame};
use switchyard_tests::{
    BAD_LUHN_PAN, RESPONSE_TIMEOUT, TEST_PAN, TestSwitch, default_config, shared_data_dir,
    with_faulty_plugin, with_loyalty_plugin,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn fin(amount: u64, stan: u32) -> RequestSpec {
    RequestSpec::financial("0200", TEST_PAN, amount, stan)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_response_code_of_the_default_contract() {
    let sw = TestSwitch::start(default_config(&shared_data_dir())).await;
    switchyard::demo::seed_internal_hosts(&sw.switch).unwrap();
    let mut sent = Vec::new();
    for case in cases() {
        let mut conn = sw.connect(case.port).await;
        let message = case.request.message(&sent).unwrap();
        sent.push(message.clone());
        let (request, response) = match (&case.request, message) {
            (_, Some(request)) => {
                let response = conn.exchange(&request, RESPONSE_TIMEOUT).await.unwrap();
                (Some(request), response)
            }
            (Script::Malformed { stan }, None) => {
                conn.send_raw(malformed_frame(*stan)).await.unwrap();
                (None, conn.receive(RESPONSE_TIMEOUT).await.unwrap())
            }
            (_, None) => unreachable!(),
        };
        let rc = response.get_str(39);
        assert_eq!(rc, Some(case.expect), "{}: {:?}", case.title, response);
        if let Some(request) = request {
            assert_eq!(
                Some(response.mti()),
                request.mti().response(),
                "{}",
                case.title
            );
            for f in [3, 4, 7, 11, 12, 13, 37, 41, 42, 49] {
                assert_eq!(response.get(f), request.get(f), "{}: DE{f}", case.title);
            }
        }
        for f in [2, 14, 35, 45, 52] {
            assert!(!response.contains(f), "{}: DE{f} returned", case.title);
        }
        match response.get(38) {
            Some(auth) if case.expect == "00" => assert_eq!(auth.len(), 6, "{}", case.title),
            Some(_) => panic!("{}: DE38 on a decline", case.title),
            // Approvals of authorizations and purchases carry DE38; echo
            // tests and reversal acknowledgements do not.
            None => assert!(
                case.expect != "00" || !matches!(response.mti().as_str(), "0110" | "0210"),
                "{}: approval without DE38",
                case.title
            ),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_connections_twenty_requests_each_matched_by_stan() {
    let sw = TestSwitch::start(default_config(&shared_data_dir())).await;
    let mut tasks = Vec::new();
    for c in 0..50u32 {
        let port = if c % 5 == 0 { 5002 } else { 5001 };
        let addr = sw.addr(port);
        tasks.push(tokio::spawn(async move {
            let mut conn = Connection::connect(addr).await.unwrap();
            let mut expected = HashMap::new();
            // All twenty in flight before reading any response.
            for i in 0..20u32 {
                let stan = c * 100 + i + 1;
                let (amount, rc) = match (port, i % 4) {
                    (5001, 3) => (600_000, "61"),
                    (5002, 3) => (10_051, "51"),
                    _ => (1_000 + 100 * u64::from(i), "00"),
                };
                conn.send(&fin(amount, stan).build().unwrap())
                    .await
                    .unwrap();
                expected.insert(format!("{stan:06}"), rc);
            }
            let mut seen = HashSet::new();
            for _ in 0..20 {
                let r = conn.receive(RESPONSE_TIMEOUT).await.unwrap();
                let stan = r.get_str(11).unwrap().to_owned();
                assert_eq!(
                    r.get_str(39),
                    Some(expected[&stan]),
                    "connection {c} stan {stan}"
                );
                assert!(seen.insert(stan), "connection {c}: a STAN answered twice");
            }
            assert_eq!(seen.len(), 20);
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_frames_then_a_good_one_on_the_same_connection() {
    let sw = TestSwitch::start(default_config(&shared_data_dir())).await;
    let mut conn = sw.connect(5001).await;
    // Readable MTI and STAN: answered with 30.
    conn.send_raw(malformed_frame(42)).await.unwrap();
    let r = conn.receive(RESPONSE_TIMEOUT).await.unwrap();
    assert_eq!(r.get_str(39), Some("30"));
    assert_eq!(r.get_str(11), Some("000042"));
    assert_eq!(r.mti().as_str(), "0210");
    // Garbage without a readable MTI: dropped, connection stays up.
    conn.send_raw(Bytes::from_static(b"\xff\xfe garbage"))
        .await
        .unwrap();
    conn.send_raw(Bytes::from_static(b"02")).await.unwrap();
    // A keep-alive (empty frame) is ignored.
    conn.send_raw(Bytes::new()).await.unwrap();
    let good = fin(1_000, 43).build().unwrap();
    let r = conn.exchange(&good, RESPONSE_TIMEOUT).await.unwrap();
    assert_eq!(r.get_str(11), Some("000043"));
    assert_eq!(r.get_str(39), Some("00"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversize_length_header_closes_only_that_connection() {
    let sw = TestSwitch::start(default_config(&shared_data_dir())).await;
    let mut raw = TcpStream::connect(sw.addr(5001)).await.unwrap();
    let mut header = BytesMut::new();
    header.put_u16(60_000); // over max_frame (8192)
    raw.write_all(&header).await.unwrap();
    raw.write_all(&[0u8; 64]).await.unwrap();
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(RESPONSE_TIMEOUT, raw.read(&mut buf))
        .await
        .expect("the switch closes the connection")
        .unwrap_or(0);
    assert_eq!(n, 0, "connection closed without a response");
    // The switch keeps serving.
    let r = sw.exchange(5001, &fin(1_000, 44)).await;
    assert_eq!(r.get_str(39), Some("00"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_plugins_abort_with_96_and_the_next_transaction_is_fine() {
    for mode in ["trap", "panic", "loop", "oom", "recurse"] {
        let config = with_faulty_plugin(default_config(&shared_data_dir()), mode);
        let sw = TestSwitch::start(config).await;
        let mut conn = sw.connect(5001).await;
        for round in 0..3u32 {
            let bad = conn
                .exchange(&fin(1_013, 100 + round).build().unwrap(), RESPONSE_TIMEOUT)
                .await
                .unwrap();
            assert_eq!(bad.get_str(39), Some("96"), "mode {mode}");
            let good = conn
                .exchange(&fin(1_000, 200 + round).build().unwrap(), RESPONSE_TIMEOUT)
                .await
                .unwrap();
            assert_eq!(good.get_str(39), Some("00"), "mode {mode}: after a failure");
        }
        let status = sw
            .switch
            .registry()
            .list()
            .into_iter()
            .find(|p| p.name == "test-faulty")
            .unwrap();
        let failures = status
            .plugin
            .stats()
            .failures
            .load(std::sync::atomic::Ordering::Relaxed);
        assert_eq!(failures, 3, "mode {mode}");
        sw.switch.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn profiler_traces_have_the_seed_form_and_external_time() {
    let sw = TestSwitch::start(default_config(&shared_data_dir())).await;
    let local = sw.exchange(5001, &fin(1_000, 51)).await;
    assert_eq!(local.get_str(39), Some("00"));
    let switched = sw.exchange(5002, &fin(1_077, 52)).await;
    assert_eq!(switched.get_str(39), Some("00"));
    tokio::time::sleep(Duration::from_millis(50)).await;
    let traces = sw.traces.lock().unwrap().clone();
    let local = traces
        .iter()
        .find(|c| c.stan.as_deref() == Some("000051"))
        .unwrap();
    assert!(
        local
            .trace
            .starts_with("open [0.000/0.000] parse-request ["),
        "{}",
        local.trace
    );
    for name in [
        "validate [",
        "by-mti [",
        "by-port [",
        "local-auth [",
        "commit:send [",
        " end [",
    ] {
        assert!(
            local.trace.contains(name),
            "{name} missing: {}",
            local.trace
        );
    }
    assert!(!local.trace.contains("external"), "{}", local.trace);
    let switched = traces
        .iter()
        .find(|c| c.stan.as_deref() == Some("000052"))
        .unwrap();
    assert!(switched.trace.contains("query-xxx ["), "{}", switched.trace);
    let external: f64 = switched
        .trace
        .rsplit_once("external [")
        .and_then(|(_, r)| r.strip_suffix(']'))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no external time: {}", switched.trace));
    assert!(
        external >= 250.0,
        "the 77 rule waits 250 ms: {}",
        switched.trace
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_endpoint_answers_91() {
    let mut config = default_config(&shared_data_dir());
    let xxx = config.endpoints.get_mut("xxx").unwrap();
    xxx.simulator = false;
    // Nothing listens on a port we just bound and released.
    let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    xxx.address = probe.local_addr().unwrap().to_string();
    drop(probe);
    let sw = TestSwitch::start(config).await;
    let started = std::time::Instant::now();
    let r = sw.exchange(5002, &fin(1_000, 61)).await;
    assert_eq!(r.get_str(39), Some("91"));
    assert!(started.elapsed() < Duration::from_secs(5));
    // Validation still runs before switching out.
    let mut bad = fin(1_000, 62);
    bad.pan = Some(BAD_LUHN_PAN.into());
    assert_eq!(sw.exchange(5002, &bad).await.get_str(39), Some("14"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_finishes_in_flight_transactions() {
    let sw = TestSwitch::start(default_config(&shared_data_dir())).await;
    let mut conn = sw.connect(5002).await;
    // The simulator answers ...77 after 250 ms.
    conn.send(&fin(1_077, 71).build().unwrap()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let addr = sw.addr(5001);
    let stopping = tokio::spawn(sw.switch.shutdown());
    let r = conn.receive(RESPONSE_TIMEOUT).await.unwrap();
    assert_eq!(r.get_str(39), Some("00"));
    stopping.await.unwrap().unwrap();
    // And it no longer accepts.
    assert!(TcpStream::connect(addr).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn granted_capabilities_work_end_to_end_and_kv_survives_a_restart() {
    let data_dir = shared_data_dir().join(format!("capabilities-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data_dir);
    let config = || with_loyalty_plugin(default_config(&data_dir));
    let sw = TestSwitch::start(config()).await;
    for (stan, expected) in [(81, "n=1;p=10"), (82, "n=2;p=20")] {
        let r = sw.exchange(5001, &fin(1_000, stan)).await;
        assert_eq!(r.get_str(39), Some("00"));
        assert_eq!(r.get_str(44), Some(expected));
    }
    sw.switch.shutdown().await.unwrap();

    // Balances are in the store (encrypted, keyed by a hash of the PAN),
    // and so are counters: both survive the restart.
    let sw = TestSwitch::start(config()).await;
    let r = sw.exchange(5001, &fin(1_000, 83)).await;
    assert_eq!(r.get_str(44), Some("n=3;p=30"));
    sw.switch.shutdown().await.unwrap();
    let db = std::fs::read(data_dir.join("switchyard.db")).unwrap();
    assert!(!db.windows(TEST_PAN.len()).any(|w| w == TEST_PAN.as_bytes()));

    // Without the grant, the switch refuses to start and says why.
    let mut ungranted = config();
    ungranted.plugins.get_mut("loyalty").unwrap().grants = vec![
        "transaction".into(),
        "config".into(),
        "log".into(),
        "clock".into(),
    ];
    let err = switchyard::Switch::start(ungranted, Default::default())
        .await
        .err()
        .expect("refused");
    let text = format!("{err:#}");
    assert!(text.contains("plugins.loyalty"), "{text}");
    assert!(text.contains("capability \"kv\" is not granted"), "{text}");
    let _ = std::fs::remove_dir_all(&data_dir);
}
