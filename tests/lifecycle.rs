//! The money-safe life cycle end to end: the real switch over TCP, a fake
//! endpoint written here (not the simulator), each rule of DESIGN.md's
//! "The money-safe life cycle".

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use switchyard::client::{Connection, RequestSpec};
use switchyard::config::Config;
use switchyard_engine::ports::{SafFilter, TxQuery};
use switchyard_iso8583::Message;
use switchyard_tests::fake_endpoint::{
    FAKE_APPROVAL, FakeEndpoint, PIN_BLOCK, Reply, assert_no_card_data,
};
use switchyard_tests::{
    RESPONSE_TIMEOUT, TEST_PAN, TestSwitch, default_config, shared_data_dir, with_loyalty_plugin,
};

/// The endpoint timeout of these tests.
const TIMEOUT_MS: u64 = 300;

/// A data directory of its own (fresh), sharing the plugin cache.
fn data_dir(name: &str) -> PathBuf {
    shared_data_dir().join(name)
}

fn config(dir: &std::path::Path, endpoint: SocketAddr) -> Config {
    let mut c = default_config(dir);
    let xxx = c.endpoints.get_mut("xxx").unwrap();
    xxx.simulator = false;
    xxx.address = endpoint.to_string();
    xxx.timeout_ms = TIMEOUT_MS;
    c
}

fn fin(amount: u64, stan: u32) -> RequestSpec {
    let mut r = RequestSpec::financial("0200", TEST_PAN, amount, stan);
    r.fields.push((37, format!("RRN{stan:09}")));
    r.fields.push((32, "123456".into()));
    r
}

/// A request with track 2 and a PIN block: neither may rest anywhere.
fn with_card_data(mut r: RequestSpec) -> Message {
    r.fields.push((35, format!("{TEST_PAN}=27121010000000000")));
    let mut m = r.build().unwrap();
    m.set(52, PIN_BLOCK.to_vec());
    m
}

async fn exchange(sw: &TestSwitch, m: &Message) -> Message {
    let mut conn = sw.connect(5002).await;
    conn.exchange(m, RESPONSE_TIMEOUT).await.unwrap()
}

/// The request the reversal of `original` names in DE90.
fn de90(original: &Message) -> String {
    format!(
        "{}{}{}{:0>11}{:0>11}",
        original.mti().as_str(),
        original.get_str(11).unwrap(),
        original.get_str(7).unwrap(),
        original.get_str(32).unwrap_or(""),
        original.get_str(33).unwrap_or("")
    )
}

/// Every store-and-forward entry, acknowledged ones too.
async fn entries(sw: &TestSwitch) -> Vec<switchyard::operate::views::SafView> {
    let ops = sw.switch.ops().expect("a tranlog");
    let filter = SafFilter {
        include_done: true,
        limit: 100,
        ..SafFilter::default()
    };
    ops.saf_list(filter).await.unwrap().entries
}

/// Waits until the tranlog row of STAN `stan` is in `state`.
async fn wait_state(sw: &TestSwitch, stan: &str, state: &str) -> bool {
    let ops = sw.switch.ops().expect("a tranlog");
    let until = Instant::now() + Duration::from_secs(20);
    while Instant::now() < until {
        let rows = ops
            .search(TxQuery {
                stan: Some(stan.into()),
                limit: 10,
                ..TxQuery::default()
            })
            .await
            .unwrap();
        if rows
            .iter()
            .any(|r| r.kind == "original" && r.state == state)
        {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timeout_is_reversed_0420_then_0421_with_backoff_until_acknowledged() {
    // Originals: silence. Reversals: silence, then 96 (no ack), then 00.
    let fake = FakeEndpoint::start(Box::new(|m, n| match (m.mti().as_str(), n) {
        ("0200", _) => Reply::Silence,
        (_, 1) => Reply::Silence,
        (_, 2) => Reply::Code("96"),
        _ => Reply::Code("00"),
    }))
    .await;
    let dir = data_dir("timeout");
    let sw = TestSwitch::start(config(&dir, fake.addr)).await;
    let original = with_card_data(fin(1_000, 101));
    let r = exchange(&sw, &original).await;
    assert_eq!(r.get_str(39), Some("91"));
    // Durably queued before the 91 was written.
    let queued = entries(&sw).await;
    assert_eq!(queued.len(), 1, "{queued:?}");
    assert_eq!(queued[0].kind, "reversal");
    assert!(
        fake.wait_for(Duration::from_secs(20), |r| r
            .iter()
            .filter(|x| x.message.mti().as_str().starts_with("042"))
            .count()
            >= 3)
            .await,
        "three reversal attempts"
    );
    assert!(wait_state(&sw, "000101", "reversed").await);
    let reversals: Vec<_> = fake
        .received()
        .into_iter()
        .filter(|x| x.message.mti().as_str().starts_with("042"))
        .collect();
    let mtis: Vec<&str> = reversals.iter().map(|x| x.message.mti_str()).collect();
    assert_eq!(mtis, ["0420", "0421", "0421"]);
    // 1 s after the first failed attempt (which waited out the timeout),
    // then 2 s after the second.
    let gap = |a: usize, b: usize| reversals[b].at - reversals[a].at;
    assert!(
        gap(0, 1) >= Duration::from_millis(1_000 + TIMEOUT_MS - 50),
        "{:?}",
        gap(0, 1)
    );
    assert!(gap(1, 2) >= Duration::from_millis(1_950), "{:?}", gap(1, 2));
    let first = &reversals[0].message;
    for f in [2, 3, 4, 11, 12, 13, 14, 37, 41, 42, 49] {
        assert_eq!(first.get(f), original.get(f), "DE{f} of the original");
    }
    assert_eq!(first.get_str(39), Some("68"));
    assert_eq!(first.get_str(90), Some(de90(&original).as_str()));
    assert!(
        !first.contains(35) && !first.contains(52),
        "no track or PIN data in a reversal"
    );
    // Nothing more once acknowledged.
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    assert_eq!(
        fake.received()
            .iter()
            .filter(|x| x.message.mti().as_str().starts_with("042"))
            .count(),
        3
    );
    sw.switch.shutdown().await.unwrap();
    assert_no_card_data(&dir, TEST_PAN);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codes_21_and_25_acknowledge_a_reversal_and_others_do_not() {
    for (code, attempts) in [("21", 1), ("25", 1), ("05", 2)] {
        let fake = FakeEndpoint::start(Box::new(move |m, n| match m.mti().as_str() {
            "0200" => Reply::Silence,
            _ if n == 1 => Reply::Code(code),
            _ => Reply::Code("00"),
        }))
        .await;
        let dir = data_dir(&format!("ack-{code}"));
        let sw = TestSwitch::start(config(&dir, fake.addr)).await;
        let r = exchange(&sw, &fin(1_000, 201).build().unwrap()).await;
        assert_eq!(r.get_str(39), Some("91"));
        assert!(wait_state(&sw, "000201", "reversed").await, "{code}");
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        let sent = fake
            .received()
            .iter()
            .filter(|x| x.message.mti().as_str().starts_with("042"))
            .count();
        assert_eq!(sent, attempts, "answered {code}");
        sw.switch.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_approval_is_recorded_never_forwarded_and_still_reversed() {
    let late = Duration::from_millis(TIMEOUT_MS * 2);
    let fake = FakeEndpoint::start(Box::new(move |m, _| match m.mti().as_str() {
        "0200" => Reply::Later(late, "00"),
        _ => Reply::Code("00"),
    }))
    .await;
    let dir = data_dir("late");
    let sw = TestSwitch::start(config(&dir, fake.addr)).await;
    let mut conn = sw.connect(5002).await;
    let r = conn
        .exchange(&fin(1_000, 301).build().unwrap(), RESPONSE_TIMEOUT)
        .await
        .unwrap();
    assert_eq!(r.get_str(39), Some("91"));
    assert!(wait_state(&sw, "000301", "reversed").await);
    // The late approval never reaches the acquirer.
    assert!(
        conn.receive(Duration::from_millis(TIMEOUT_MS * 3))
            .await
            .is_err()
    );
    let ops = sw.switch.ops().unwrap();
    let row = ops
        .search(TxQuery {
            stan: Some("000301".into()),
            limit: 5,
            ..TxQuery::default()
        })
        .await
        .unwrap()
        .into_iter()
        .find(|r| r.kind == "original")
        .unwrap();
    assert_eq!(row.late_rc.as_deref(), Some("00"), "{row:?}");
    assert_eq!(row.rc.as_deref(), Some("91"));
    assert_eq!(fake.with_mti("0420").len(), 1);
    sw.switch.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_dropped_with_waiters_reverses_each_of_them() {
    let fake = FakeEndpoint::start(Box::new(|m, n| match m.mti().as_str() {
        "0200" if n < 5 => Reply::Silence,
        "0200" => Reply::Close,
        _ => Reply::Code("00"),
    }))
    .await;
    let dir = data_dir("link-drop");
    let mut c = config(&dir, fake.addr);
    // Far above the answers' wait (RESPONSE_TIMEOUT): only the dropped link
    // can answer them in time, however loaded the machine.
    c.endpoints.get_mut("xxx").unwrap().timeout_ms = 30_000;
    let sw = TestSwitch::start(c).await;
    let mut conn = sw.connect(5002).await;
    let started = Instant::now();
    for stan in 401..=405 {
        conn.send(&fin(1_000, stan).build().unwrap()).await.unwrap();
    }
    for _ in 0..5 {
        let r = conn.receive(RESPONSE_TIMEOUT).await.unwrap();
        assert_eq!(r.get_str(39), Some("91"));
    }
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "answered when the link dropped, not at the 30 s timeout"
    );
    for stan in 401..=405 {
        assert!(
            wait_state(&sw, &format!("{stan:06}"), "reversed").await,
            "{stan}"
        );
    }
    assert_eq!(fake.with_mti("0420").len(), 5);
    sw.switch.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_endpoint_is_answered_91_with_nothing_to_reverse() {
    let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let nowhere = probe.local_addr().unwrap();
    drop(probe);
    let dir = data_dir("unreachable");
    let sw = TestSwitch::start(config(&dir, nowhere)).await;
    let r = exchange(&sw, &fin(1_000, 501).build().unwrap()).await;
    assert_eq!(r.get_str(39), Some("91"));
    assert!(entries(&sw).await.is_empty());
    let ops = sw.switch.ops().unwrap();
    let rows = ops
        .search(TxQuery {
            stan: Some("000501".into()),
            limit: 5,
            ..TxQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(rows[0].upstream.as_deref(), Some("not-sent"));
    assert_eq!(rows[0].state, "answered");
    sw.switch.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeats_are_answered_from_the_record_even_in_flight_and_duplicates_get_94() {
    let fake = FakeEndpoint::start(Box::new(|m, _| match m.get_str(4) {
        Some(a) if a.ends_with("77") => Reply::Later(Duration::from_millis(250), "00"),
        _ => Reply::Code("00"),
    }))
    .await;
    let dir = data_dir("repeats");
    let sw = TestSwitch::start(config(&dir, fake.addr)).await;

    // Answered, then repeated: the recorded answer, nothing sent again.
    let original = fin(1_000, 601).build().unwrap();
    let first = exchange(&sw, &original).await;
    assert_eq!(first.get_str(39), Some("00"));
    assert_eq!(first.get_str(38), Some(FAKE_APPROVAL));
    let mut repeat = original.clone();
    repeat.set_mti(switchyard_iso8583::Mti::new("0201").unwrap());
    let again = exchange(&sw, &repeat).await;
    assert_eq!(again.mti().as_str(), "0210");
    assert_eq!(again.get_str(38), first.get_str(38));
    assert_eq!(again.get_str(39), Some("00"));
    // The same original again: a duplicate.
    let dup = exchange(&sw, &original).await;
    assert_eq!(dup.get_str(39), Some("94"));
    assert!(!dup.contains(38));
    assert_eq!(fake.with_mti("0200").len(), 1, "one upstream send");

    // A repeat while the original still waits for the endpoint.
    let slow = fin(1_077, 602).build().unwrap();
    let mut slow_repeat = slow.clone();
    slow_repeat.set_mti(switchyard_iso8583::Mti::new("0201").unwrap());
    let addr = sw.addr(5002);
    let first = tokio::spawn(async move {
        let mut c = Connection::connect(addr).await.unwrap();
        c.exchange(&slow, RESPONSE_TIMEOUT).await.unwrap()
    });
    tokio::time::sleep(Duration::from_millis(60)).await;
    let second = exchange(&sw, &slow_repeat).await;
    let first = first.await.unwrap();
    assert_eq!(first.get_str(39), Some("00"));
    assert_eq!(second.get_str(39), Some("00"));
    assert_eq!(second.get_str(38), first.get_str(38));
    assert_eq!(fake.with_mti("0200").len(), 2, "the repeat sent nothing");
    sw.switch.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acquirer_reversals_found_not_found_and_twice_and_completions() {
    let fake = FakeEndpoint::start(Box::new(|_, _| Reply::Code("00"))).await;
    let dir = data_dir("acquirer");
    let sw = TestSwitch::start(config(&dir, fake.addr)).await;
    let original = fin(2_500, 701).build().unwrap();
    assert_eq!(exchange(&sw, &original).await.get_str(39), Some("00"));

    // By DE90: found, forwarded as a reversal of the original.
    let mut reversal = fin(2_500, 702).build().unwrap();
    reversal.set_mti(switchyard_iso8583::Mti::new("0420").unwrap());
    reversal.set(90, de90(&original).into_bytes());
    let r = exchange(&sw, &reversal).await;
    assert_eq!((r.mti().as_str(), r.get_str(39)), ("0430", Some("00")));
    assert!(wait_state(&sw, "000701", "reversed").await);
    let forwarded = fake.with_mti("0420");
    assert_eq!(forwarded.len(), 1);
    assert_eq!(forwarded[0].message.get_str(11), Some("000701"));
    assert_eq!(
        forwarded[0].message.get_str(90),
        Some(de90(&original).as_str())
    );
    // Twice (a retransmission 0421, and a new 0420 for the same original):
    // 00 again, nothing more sent.
    let mut retransmitted = reversal.clone();
    retransmitted.set_mti(switchyard_iso8583::Mti::new("0421").unwrap());
    assert_eq!(exchange(&sw, &retransmitted).await.get_str(39), Some("00"));
    let mut another = fin(2_500, 703).build().unwrap();
    another.set_mti(switchyard_iso8583::Mti::new("0420").unwrap());
    another.set(90, de90(&original).into_bytes());
    assert_eq!(exchange(&sw, &another).await.get_str(39), Some("00"));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(fake.with_mti("0420").len() + fake.with_mti("0421").len(), 1);

    // Not found: 25.
    let mut unknown = fin(2_500, 704).build().unwrap();
    unknown.set_mti(switchyard_iso8583::Mti::new("0400").unwrap());
    unknown.set(
        90,
        format!("0200999999{}{:0>22}", original.get_str(7).unwrap(), "").into_bytes(),
    );
    let r = exchange(&sw, &unknown).await;
    assert_eq!((r.mti().as_str(), r.get_str(39)), ("0410", Some("25")));

    // Without DE90: by DE11 + DE41 + DE37.
    let second = fin(3_000, 705).build().unwrap();
    assert_eq!(exchange(&sw, &second).await.get_str(39), Some("00"));
    let mut by_stan = second.clone();
    by_stan.set_mti(switchyard_iso8583::Mti::new("0400").unwrap());
    by_stan.set(7, &b"1231235959"[..]);
    assert_eq!(exchange(&sw, &by_stan).await.get_str(39), Some("00"));
    assert!(wait_state(&sw, "000705", "reversed").await);

    // A completion: matched, answered 0230 00, forwarded as an advice.
    let third = fin(4_000, 706).build().unwrap();
    assert_eq!(exchange(&sw, &third).await.get_str(39), Some("00"));
    let mut completion = fin(3_500, 707).build().unwrap();
    completion.set_mti(switchyard_iso8583::Mti::new("0220").unwrap());
    completion.set(90, de90(&third).into_bytes());
    let r = exchange(&sw, &completion).await;
    assert_eq!((r.mti().as_str(), r.get_str(39)), ("0230", Some("00")));
    assert!(
        fake.wait_for(Duration::from_secs(10), |r| r.iter().any(|x| x
            .message
            .mti()
            .as_str()
            == "0220"))
            .await
    );
    let advice = &fake.with_mti("0220")[0].message;
    assert_eq!(advice.get_str(11), Some("000707"));
    assert_eq!(advice.get_str(4), Some("000000003500"));
    sw.switch.shutdown().await.unwrap();
    assert_no_card_data(&dir, TEST_PAN);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_reversal_undoes_the_local_effect() {
    let dir = data_dir("local");
    let fake = FakeEndpoint::start(Box::new(|_, _| Reply::Code("00"))).await;
    let sw = TestSwitch::start(with_loyalty_plugin(config(&dir, fake.addr))).await;
    let first = fin(1_000, 801).build().unwrap();
    let mut conn = sw.connect(5001).await;
    let r = conn.exchange(&first, RESPONSE_TIMEOUT).await.unwrap();
    assert_eq!(r.get_str(44), Some("n=1;p=10"));
    let mut reversal = fin(1_000, 802).build().unwrap();
    reversal.set_mti(switchyard_iso8583::Mti::new("0420").unwrap());
    reversal.set(90, de90(&first).into_bytes());
    let r = conn.exchange(&reversal, RESPONSE_TIMEOUT).await.unwrap();
    assert_eq!(r.get_str(39), Some("00"));
    assert!(wait_state(&sw, "000801", "reversed").await);
    // The 10 points of the reversed purchase were given back.
    let r = sw.exchange(5001, &fin(1_000, 803)).await;
    assert_eq!(r.get_str(44), Some("n=2;p=10"));
    assert!(
        fake.received().is_empty(),
        "a local original sends nothing upstream"
    );
    sw.switch.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn saf_retry_sends_at_once_and_a_graceful_stop_keeps_the_queue_for_the_next_start() {
    // Nothing is ever acknowledged until the switch restarts.
    let fake = FakeEndpoint::start(Box::new(|_, _| Reply::Silence)).await;
    let dir = data_dir("retry");
    let sw = TestSwitch::start(config(&dir, fake.addr)).await;
    assert_eq!(
        exchange(&sw, &fin(1_000, 901).build().unwrap())
            .await
            .get_str(39),
        Some("91")
    );
    let ops = sw.switch.ops().unwrap().clone();
    let pending = |min_attempts: u32| {
        let ops = ops.clone();
        async move {
            let until = Instant::now() + Duration::from_secs(20);
            loop {
                let list = ops
                    .saf_list(SafFilter {
                        limit: 10,
                        ..SafFilter::default()
                    })
                    .await
                    .unwrap();
                let e = list.entries[0].clone();
                // Settled: the attempt's failure is recorded (next attempt due).
                if e.attempts >= min_attempts && e.leased_by.is_none() || Instant::now() > until {
                    return e;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    // 0420, then 0421 a second later; the next is due 2 s after that.
    let second = pending(2).await;
    assert_eq!(second.attempts, 2, "{second:?}");
    let asked = Instant::now();
    let retried = ops.saf_retry(second.id).await.unwrap();
    assert!(retried.retried);
    assert!(
        fake.wait_for(Duration::from_millis(1_500), |r| r.len() >= 4)
            .await,
        "the retried attempt goes at once, not at its 2 s backoff: {:?} after asking",
        asked.elapsed()
    );
    // Stopped gracefully: the entry stays pending for the next start.
    sw.switch.shutdown().await.unwrap();
    fake.script(Box::new(|m, _| {
        if m.mti_str().starts_with("042") {
            Reply::Code("00")
        } else {
            Reply::Silence
        }
    }));
    let sw = TestSwitch::start(config(&dir, fake.addr)).await;
    assert!(
        wait_state(&sw, "000901", "reversed").await,
        "acknowledged after the restart"
    );
    let mtis: Vec<String> = fake
        .received()
        .iter()
        .map(|r| r.message.mti_str().to_owned())
        .collect();
    assert_eq!(mtis[0], "0200");
    assert!(
        mtis[1..].iter().all(|m| m == "0420" || m == "0421"),
        "{mtis:?}"
    );
    assert_eq!(mtis[1], "0420");
    assert!(
        mtis[2..].iter().all(|m| m == "0421"),
        "retransmissions are 0421: {mtis:?}"
    );
    sw.switch.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_rotate_while_traffic_runs_with_no_decrypt_failure() {
    let dir = data_dir("rotate");
    let sw = TestSwitch::start(default_config(&dir)).await;
    let ops = sw.switch.ops().unwrap().clone();
    let addr = sw.addr(5001);
    let mut load = Vec::new();
    for c in 0..4u32 {
        load.push(tokio::spawn(async move {
            let mut conn = Connection::connect(addr).await.unwrap();
            let mut codes = Vec::new();
            for i in 0..150u32 {
                let r = conn
                    .exchange(
                        &fin(1_000, 10_000 + c * 1_000 + i).build().unwrap(),
                        RESPONSE_TIMEOUT,
                    )
                    .await
                    .unwrap();
                codes.push(r.get_str(39).unwrap().to_owned());
            }
            codes
        }));
    }
    // Two rotations while the load runs.
    for _ in 0..2 {
        tokio::time::sleep(Duration::from_millis(150)).await;
        let r = ops.rotate(None, false).await.unwrap();
        assert_eq!(r.new_data_keys.len(), 1);
    }
    for l in load {
        assert!(
            l.await.unwrap().iter().all(|c| c == "00"),
            "every request approved"
        );
    }
    // Re-encrypted in the background: the retired keys end destroyed.
    let until = Instant::now() + Duration::from_secs(30);
    let keys = loop {
        let keys = ops.keys().await.unwrap();
        let left: u64 = keys
            .data_keys
            .iter()
            .filter(|k| k.state != "active")
            .map(|k| k.rows)
            .sum();
        if left == 0 || Instant::now() > until {
            break keys;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        keys.data_keys
            .iter()
            .filter(|k| k.state != "active")
            .all(|k| k.state == "destroyed" && k.rows == 0),
        "{keys:?}"
    );
    // Every row decrypts.
    let rows = ops
        .search(TxQuery {
            limit: 10_000,
            ..TxQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(rows.len(), 600);
    for r in &rows {
        let life = ops.show(r.id).await.unwrap().expect("the row");
        assert!(life.response.is_some(), "row {} decrypts", r.id);
    }
    sw.switch.shutdown().await.unwrap();
    assert_no_card_data(&dir, TEST_PAN);
}
