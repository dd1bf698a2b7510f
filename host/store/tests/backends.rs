//! The life cycle on both backends — the embedded SQLite store and
//! PostgreSQL — through the engine's ports only, so that no difference a
//! life-cycle test can see goes unnoticed; then what only several nodes
//! on one PostgreSQL database can show: repeats matched across nodes,
//! identical requests on two nodes at once, exact counters and kv
//! compare-and-set across nodes, store-and-forward claims never held by
//! two nodes, a dead node taken over, a live node's id refused.
//!
//! PostgreSQL: `SWITCHYARD_TEST_PG` names a server where the test may
//! create databases (scripts/test starts one); without it the PostgreSQL
//! half is skipped, unless `SWITCHYARD_PG_TESTS=required`.

use std::collections::HashSet;
use std::time::Duration;

use switchyard_engine::iso8583::{Message, Mti};
use switchyard_engine::ports::{
    Attempt, CounterStore, Finished, FollowUp, Keyring, KvStore, NewSaf, OriginalRef, Received,
    SafFilter, SafKind, SafQueue, SafState, SwapHistory, SwapRecord, Tranlog, TxKind, TxQuery,
    TxState, Upstream,
};
use switchyard_store::{Beat, PgOptions, PgStore, SqliteStore};

mod common;
use common::{Nodes, Session, TEST_PAN, now_ms, wait};

trait Ports: Tranlog + SafQueue + KvStore + CounterStore + Keyring + SwapHistory {}
impl<T: Tranlog + SafQueue + KvStore + CounterStore + Keyring + SwapHistory> Ports for T {}

/// A request of `mti` with STAN `stan` on terminal `terminal`.
fn request(mti: &str, stan: &str, terminal: &str) -> Received {
    common::request("default", mti, stan, terminal)
}

fn answered(rc: &str, endpoint: Option<&str>) -> Finished {
    let mut response = Message::new(Mti::new("0210").unwrap());
    response.set(39, rc.as_bytes().to_vec());
    Finished {
        state: TxState::Answered,
        kind: None,
        rc: Some(rc.into()),
        approval: Some("AB1234".into()),
        response: Some(response),
        endpoint: endpoint.map(str::to_string),
        upstream: if endpoint.is_some() {
            Upstream::Answered
        } else {
            Upstream::Local
        },
        total: Duration::from_micros(1500),
        external: endpoint.map(|_| Duration::from_micros(900)),
        participants: Vec::new(),
        original: None,
        reversal: None,
        trace: Some("parse-request=12 end=100".into()),
    }
}

/// The life cycle through the ports: what both backends must do alike.
fn life_cycle(s: &dyn Ports, terminal: &str) {
    // An original, sent and answered; its repeat and a duplicate match it.
    let a = wait(s.admit(request("0200", "000001", terminal)));
    assert!(a.matched.is_none());
    wait(s.mark_sent(a.id, "xxx"));
    assert_eq!(wait(s.get(a.id)).unwrap().state, TxState::Sent);
    assert_eq!(wait(s.finish(a.id, answered("00", Some("xxx")))), None);
    let row = wait(s.get(a.id)).unwrap();
    assert_eq!(
        (row.state, row.rc.as_deref(), row.endpoint.as_deref()),
        (TxState::Answered, Some("00"), Some("xxx"))
    );
    assert_eq!(row.pan_masked.as_deref(), Some("476173******0119"));
    assert_eq!(row.trace.as_deref(), Some("parse-request=12 end=100"));
    let (req, resp) = wait(s.messages(a.id));
    assert!(req.get(35).is_none(), "track data is never stored");
    assert_eq!(req.get(11).map(|v| v.to_vec()), Some(b"000001".to_vec()));
    assert_eq!(
        resp.unwrap().get(39).map(|v| v.to_vec()),
        Some(b"00".to_vec())
    );
    let repeat = wait(s.admit(request("0201", "000001", terminal)));
    let m = repeat.matched.expect("the repeat finds its original");
    assert_eq!((m.id, m.rc.as_deref()), (a.id, Some("00")));
    assert!(m.response.is_some());
    let mut of_repeat = answered("00", None);
    of_repeat.kind = Some(TxKind::Repeat);
    of_repeat.original = Some(a.id);
    wait(s.finish(repeat.id, of_repeat));
    let dup = wait(s.admit(request("0200", "000001", terminal)));
    assert_eq!(dup.matched.map(|m| m.id), Some(a.id));
    let mut of_dup = answered("94", None);
    of_dup.kind = Some(TxKind::Duplicate);
    of_dup.original = Some(a.id);
    wait(s.finish(dup.id, of_dup));
    assert_eq!(wait(s.linked(a.id)).len(), 2);
    let found = wait(s.search(TxQuery {
        terminal: Some(terminal.into()),
        pan_last4: Some("0119".into()),
        limit: 10,
        ..TxQuery::default()
    }));
    assert_eq!(found.len(), 3, "newest first: {found:?}");
    assert_eq!(found.last().unwrap().id, a.id);

    // A timeout: the outcome queues its reversal; claimed once, acked.
    let t = wait(s.admit(request("0200", "000002", terminal)));
    wait(s.mark_sent(t.id, "xxx"));
    let mut timeout = answered("68", Some("xxx"));
    timeout.state = TxState::ReversalQueued;
    timeout.upstream = Upstream::Timeout;
    timeout.reversal = Some(NewSaf {
        kind: SafKind::Reversal,
        endpoint: "xxx".into(),
        source: t.id,
        original: t.id,
        reason: "68".into(),
    });
    let saf = wait(s.finish(t.id, timeout)).expect("a reversal queued");
    let now = now_ms() + 1;
    let claimed = wait(s.claim("xxx", "node/w1", now, Duration::from_secs(30), 10));
    let ours: Vec<_> = claimed.iter().filter(|e| e.original == t.id).collect();
    assert_eq!(ours.len(), 1);
    assert_eq!((ours[0].id, ours[0].attempts), (saf, 1));
    let again = wait(s.claim("xxx", "node/w2", now, Duration::from_secs(30), 10));
    assert!(
        again.iter().all(|e| e.id != saf),
        "a leased entry is not claimed twice"
    );
    for e in &claimed {
        wait(s.attempted(e.id, Attempt::Acked("00".into())));
    }
    assert_eq!(wait(s.entry(saf)).unwrap().state, SafState::Done);
    assert_eq!(wait(s.get(t.id)).unwrap().state, TxState::Reversed);
    assert_eq!(wait(s.entries_of(t.id)).len(), 1);

    // An acquirer reversal of the answered original: its reversal queued
    // once; the same reversal again takes no effect.
    let rev = wait(s.admit(request("0420", "000003", terminal)));
    let follow = FollowUp {
        kind: TxKind::Reversal,
        tenant: "default".into(),
        original: OriginalRef::De90 {
            mti: "0200".into(),
            stan: "000001".into(),
            transmitted: "0101120000".into(),
            acquirer: "123".into(),
        },
        reason: "17".into(),
    };
    let out = wait(s.follow_up(rev.id, follow.clone()));
    assert_eq!(
        (out.original, out.first, out.queued.len()),
        (Some(a.id), true, 1)
    );
    assert_eq!(wait(s.get(a.id)).unwrap().state, TxState::ReversalQueued);
    let rev2 = wait(s.admit(request("0421", "000004", terminal)));
    let out2 = wait(s.follow_up(rev2.id, follow));
    assert!(!out2.first && out2.queued.is_empty());
    let pending = wait(s.list(SafFilter {
        endpoint: Some("xxx".into()),
        include_done: false,
        limit: 0,
    }));
    assert!(pending.iter().any(|e| e.original == a.id));
    let stats = wait(s.stats());
    assert!(stats.iter().any(|(e, st)| e == "xxx" && st.pending >= 1));

    // A crash with one request sent and one only received.
    let sent = wait(s.admit(request("0200", "000005", terminal)));
    wait(s.mark_sent(sent.id, "xxx"));
    let received = wait(s.admit(request("0200", "000006", terminal)));
    let r = wait(s.recover());
    assert!(r.reversals_queued >= 1 && r.interrupted >= 1, "{r:?}");
    assert_eq!(wait(s.get(sent.id)).unwrap().state, TxState::ReversalQueued);
    assert_eq!(
        wait(s.get(received.id)).unwrap().state,
        TxState::Interrupted
    );
    assert_eq!(wait(s.entries_of(sent.id)).len(), 1);

    // Plugin data, counters, swaps, keys.
    let key = format!("points:{terminal}");
    assert_eq!(s.kv_get("default", "loyalty", &key).unwrap(), None);
    assert!(
        s.kv_compare_and_set("default", "loyalty", &key, None, b"10")
            .unwrap()
    );
    assert!(
        !s.kv_compare_and_set("default", "loyalty", &key, None, b"11")
            .unwrap()
    );
    assert!(
        s.kv_compare_and_set("default", "loyalty", &key, Some(b"10"), b"12")
            .unwrap()
    );
    assert_eq!(
        s.kv_get("default", "loyalty", &key).unwrap(),
        Some(b"12".to_vec())
    );
    s.kv_set("default", "loyalty", &key, b"13").unwrap();
    assert!(
        s.kv_values("default", "loyalty")
            .unwrap()
            .contains(&b"13".to_vec())
    );
    assert!(s.kv_delete("default", "loyalty", &key).unwrap());
    assert!(!s.kv_delete("default", "loyalty", &key).unwrap());
    let scope = ("default", "velocity");
    assert_eq!(
        s.counter_add(scope, "amount", terminal, 5, 3600).unwrap(),
        5
    );
    assert_eq!(
        s.counter_add(scope, "amount", terminal, 7, 3600).unwrap(),
        12
    );
    assert_eq!(s.counter_sum(scope, "amount", terminal, 3600).unwrap(), 12);
    assert_eq!(s.counter_sum(scope, "amount", terminal, 60).unwrap(), 0);
    assert!(s.counter_add(scope, "amount", terminal, 1, 0).is_err());
    let swap = SwapRecord {
        at_ms: now_ms(),
        plugin: "validate".into(),
        action: "swap".into(),
        old_hash: "a".repeat(64),
        new_hash: "b".repeat(64),
        actor: "test".into(),
    };
    s.record_swap(&swap).unwrap();
    assert_eq!(s.swaps(1).unwrap(), vec![swap]);
    let token = s.pan_token("default", TEST_PAN).unwrap();
    assert_eq!(token, s.pan_token("default", TEST_PAN).unwrap());
    let before = wait(s.status());
    let rotated = wait(s.rotate(Some("default".into())));
    assert_eq!(rotated.len(), 1);
    let re = wait(s.reencrypt(10_000));
    assert!(re > 0, "rows under the retired key are re-encrypted");
    let after = wait(s.status());
    assert!(after.data_keys.len() > before.data_keys.len());
    let (req, _) = wait(s.messages(a.id));
    assert_eq!(req.get(11).map(|v| v.to_vec()), Some(b"000001".to_vec()));
}

#[test]
fn the_life_cycle_on_sqlite() {
    let store = SqliteStore::in_memory("node-1");
    life_cycle(&*store, "T-SQLITE");
}

#[test]
fn the_life_cycle_on_postgres() {
    let Some(nodes) = Nodes::new("life_cycle") else {
        return;
    };
    let store = nodes.open_leased("node-a", 10_000).unwrap();
    life_cycle(&*store, "T-PG");
    // A second node sees the first one's keys and rows.
    let b = nodes.open_leased("node-b", 10_000).unwrap();
    let found = wait(b.search(TxQuery {
        terminal: Some("T-PG".into()),
        limit: 100,
        ..TxQuery::default()
    }));
    assert!(found.len() >= 6);
    let (req, _) = wait(b.messages(found.last().unwrap().id));
    assert!(req.get(11).is_some());
    b.close();
    store.close();
}

#[test]
fn several_nodes_share_one_postgres_database() {
    let Some(nodes) = Nodes::new("nodes") else {
        return;
    };
    let a = nodes.open_leased("node-a", 60_000).unwrap();
    let b = nodes.open_leased("node-b", 60_000).unwrap();

    // A repeat on node B for an original on node A gets A's response.
    let o = wait(a.admit(request("0200", "100001", "T-X")));
    wait(a.finish(o.id, answered("00", None)));
    let r = wait(b.admit(request("0201", "100001", "T-X")));
    let m = r.matched.expect("matched across nodes");
    assert_eq!(
        (m.id, m.node.as_str(), m.rc.as_deref()),
        (o.id, "node-a", Some("00"))
    );
    assert_ne!(o.id, r.id);

    // Identical originals on both nodes at once: exactly one of each pair
    // is matched by the other.
    for i in 0..20 {
        let stan = format!("2{i:05}");
        let (ra, rb) = std::thread::scope(|sc| {
            let ha = sc.spawn(|| wait(a.admit(request("0200", &stan, "T-D"))));
            let hb = sc.spawn(|| wait(b.admit(request("0200", &stan, "T-D"))));
            (ha.join().unwrap(), hb.join().unwrap())
        });
        let matched = [&ra, &rb].iter().filter(|x| x.matched.is_some()).count();
        assert_eq!(matched, 1, "pair {i}: {ra:?} {rb:?}");
    }

    // Counters: 2 nodes x 4 threads x 100 adds, each sum distinct, the
    // total exact.
    let sums: Vec<i64> = std::thread::scope(|sc| {
        let handles: Vec<_> = (0..8)
            .map(|t| {
                let s = if t % 2 == 0 { a.clone() } else { b.clone() };
                sc.spawn(move || {
                    (0..100)
                        .map(|_| {
                            s.counter_add(("default", "velocity"), "count", "card", 1, 3600)
                                .unwrap()
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    let distinct: HashSet<i64> = sums.iter().copied().collect();
    assert_eq!(distinct.len(), 800, "every add saw every add before it");
    assert_eq!(
        a.counter_sum(("default", "velocity"), "count", "card", 3600)
            .unwrap(),
        800
    );

    // kv compare-and-set across nodes: one winner per key.
    for k in 0..30 {
        let key = format!("coupon:{k}");
        let wins = std::thread::scope(|sc| {
            let ha = sc.spawn(|| {
                a.kv_compare_and_set("default", "coupon", &key, None, b"a")
                    .unwrap()
            });
            let hb = sc.spawn(|| {
                b.kv_compare_and_set("default", "coupon", &key, None, b"b")
                    .unwrap()
            });
            [ha.join().unwrap(), hb.join().unwrap()]
        });
        assert_eq!(wins.iter().filter(|w| **w).count(), 1, "key {k}");
    }

    // Store-and-forward: 120 entries claimed by both nodes at once, in
    // small batches: no entry held by both.
    for i in 0..120 {
        let t = wait(a.admit(request("0200", &format!("3{i:05}"), "T-S")));
        wait(a.mark_sent(t.id, "yyy"));
        let mut f = answered("68", Some("yyy"));
        f.state = TxState::ReversalQueued;
        f.upstream = Upstream::Timeout;
        f.reversal = Some(NewSaf {
            kind: SafKind::Reversal,
            endpoint: "yyy".into(),
            source: t.id,
            original: t.id,
            reason: "68".into(),
        });
        wait(a.finish(t.id, f));
    }
    let claimed: Vec<i64> = std::thread::scope(|sc| {
        let handles: Vec<_> = [a.clone(), b.clone(), a.clone(), b.clone()]
            .into_iter()
            .map(|s| {
                sc.spawn(move || {
                    let mut ids = Vec::new();
                    for _ in 0..200 {
                        let got =
                            wait(s.claim("yyy", s.node(), now_ms(), Duration::from_secs(60), 3));
                        if got.is_empty() {
                            break;
                        }
                        ids.extend(got.iter().map(|e| e.id));
                    }
                    ids
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    let unique: HashSet<i64> = claimed.iter().copied().collect();
    assert_eq!(claimed.len(), 120, "every entry claimed once");
    assert_eq!(unique.len(), 120, "no entry claimed by two nodes");

    // A dead node (its heartbeat lapses) is taken over: its sent
    // transaction's reversal queued, its received one interrupted.
    let c = nodes.open_leased("node-c", 600).unwrap();
    let sent = wait(c.admit(request("0200", "400001", "T-C")));
    wait(c.mark_sent(sent.id, "zzz"));
    let received = wait(c.admit(request("0200", "400002", "T-C")));
    std::thread::sleep(Duration::from_millis(900));
    let beat = wait(a.beat());
    let Beat::Alive(taken) = beat else {
        panic!("node-a is alive: {beat:?}")
    };
    assert_eq!(taken.len(), 1, "{taken:?}");
    assert_eq!(taken[0].0, "node-c");
    assert_eq!(
        (taken[0].1.reversals_queued, taken[0].1.interrupted),
        (1, 1)
    );
    assert_eq!(wait(a.get(sent.id)).unwrap().state, TxState::ReversalQueued);
    assert_eq!(
        wait(a.get(received.id)).unwrap().state,
        TxState::Interrupted
    );
    let entries = wait(b.entries_of(sent.id));
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].endpoint, "zzz");
    // Taken over once: node-b finds nothing more to do.
    let Beat::Alive(none) = wait(b.beat()) else {
        panic!("node-b is alive")
    };
    assert!(none.is_empty());
    // node-c, waking up, is fenced.
    assert!(matches!(wait(c.beat()), Beat::Fenced(_)));
    drop(c);

    // node-a's id is refused while node-a heartbeats.
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|sc| {
        sc.spawn(|| {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let _ = wait(a.beat());
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        let second = nodes.open_leased("node-a", 60_000);
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let e = second.expect_err("a live node's id is refused").to_string();
        assert!(e.contains("is held by a live node"), "{e}");
    });
    a.close();
    b.close();
}

#[test]
fn a_statement_held_by_a_lock_fails_after_the_statement_timeout() {
    let Some(nodes) = Nodes::new("timeout") else {
        return;
    };
    let a = nodes.open_leased("node-a", 60_000).unwrap();
    a.kv_set("default", "coupon", "held", b"1").unwrap();
    // Another session holds the row (a stalled node, a long manual query).
    let other = Session::new(&nodes.url);
    other.sql("BEGIN; SELECT 1 FROM kv WHERE plugin = 'coupon' FOR UPDATE");
    let e = a
        .kv_set("default", "coupon", "held", b"2")
        .expect_err("the write waits for the lock, then times out");
    assert!(e.to_string().contains("statement timeout"), "{e}");
    other.sql("ROLLBACK");
    a.kv_set("default", "coupon", "held", b"3").unwrap();
    assert_eq!(
        a.kv_get("default", "coupon", "held").unwrap().as_deref(),
        Some(&b"3"[..])
    );
    a.close();
}

#[test]
fn a_v1_database_is_migrated_to_the_latest_version_with_its_data() {
    let Some(nodes) = Nodes::new("v1") else {
        return;
    };
    let a = nodes.open_leased("node-a", 60_000).unwrap();
    a.kv_set("default", "loyalty", "points", b"42").unwrap();
    a.close();
    let session = Session::new(&nodes.url);
    let sql = |statements: &str| session.sql(statements);
    // Back to what v1 wrote: no plugin_versions, no swaps_plugin index
    // (v2), no operator tables (v3).
    sql("DROP TABLE plugin_versions; DROP INDEX swaps_plugin;
         DROP TABLE roles, users, sessions, api_clients, audit, webhook_events,
             webhook_subscriptions, webhook_deliveries;
         DROP FUNCTION sy_audit_append_only() CASCADE;
         DELETE FROM sy_schema_version WHERE version > 1");
    let b = nodes.open_leased("node-b", 60_000).unwrap();
    assert_eq!(
        sql("SELECT max(version) FROM sy_schema_version"),
        [switchyard_store::PG_SCHEMA_VERSION.to_string()]
    );
    assert_eq!(switchyard_store::PG_SCHEMA_VERSION, 3);
    assert_eq!(
        sql("SELECT count(*) FROM users; SELECT count(*) FROM webhook_events"),
        ["0", "0"],
        "v3's tables are made again"
    );
    assert_eq!(
        b.kv_get("default", "loyalty", "points").unwrap().as_deref(),
        Some(&b"42"[..]),
        "v1's rows are kept"
    );
    b.keep_version("d1", b"\0asm").unwrap();
    assert_eq!(wait(b.plugin_version("d1")).as_deref(), Some(&b"\0asm"[..]));
    b.close();
}

#[test]
fn a_repeat_on_another_node_waits_for_the_original_in_flight() {
    let Some(nodes) = Nodes::new("in_flight") else {
        return;
    };
    let a = nodes.open_leased("node-a", 60_000).unwrap();
    let b = nodes.open_leased("node-b", 60_000).unwrap();
    let o = wait(a.admit(request("0200", "300001", "T-F")));
    wait(a.mark_sent(o.id, "xxx"));
    let r = wait(b.admit(request("0201", "300001", "T-F")));
    let m = r.matched.expect("matched across nodes");
    assert_eq!(
        (m.id, m.state, m.node.as_str()),
        (o.id, TxState::Sent, "node-a")
    );
    let (_, response) = std::thread::scope(|sc| {
        sc.spawn(|| {
            std::thread::sleep(Duration::from_millis(300));
            wait(a.finish(o.id, answered("00", Some("xxx"))));
        });
        // Waits for node A's answer instead of answering 91.
        wait(b.settled_messages(m.id))
    });
    let response = response.expect("node A's response");
    assert_eq!(response.get(39).map(|v| v.to_vec()), Some(b"00".to_vec()));
    // A settled row is read at once; so is one of this node.
    assert!(wait(b.settled_messages(m.id)).1.is_some());
    let own = wait(b.admit(request("0200", "300002", "T-F")));
    wait(b.mark_sent(own.id, "xxx"));
    assert!(wait(b.settled_messages(own.id)).1.is_none());
    a.close();
    b.close();
}

/// The test server's CA (`scripts/pg-server` makes it with openssl), or
/// `None` (skipped).
fn test_ca() -> Option<std::path::PathBuf> {
    match std::env::var("SWITCHYARD_TEST_PG_CA") {
        Ok(path) if !path.is_empty() => Some(path.into()),
        _ => {
            eprintln!("skipped: SWITCHYARD_TEST_PG_CA not set (no openssl for the test server)");
            None
        }
    }
}

#[test]
fn tls_to_postgres_checks_the_servers_certificate() {
    let Some(nodes) = Nodes::new("tls") else {
        return;
    };
    let Some(ca) = test_ca() else {
        return;
    };
    let options = |url: String, ca_file: Option<std::path::PathBuf>| PgOptions {
        url,
        kek_path: nodes.dir.path().join("keys").join("kek.key"),
        node: "node-t".into(),
        pool_size: 2,
        node_lease: Duration::from_millis(60_000),
        register: true,
        ca_file,
    };
    let require = format!("{}?sslmode=require", nodes.url);
    // sslmode=require without a CA file is refused before connecting.
    let e = PgStore::open(options(require.clone(), None)).expect_err("refused");
    assert!(e.to_string().contains("needs store.ca_file"), "{e}");
    // Another CA: the server's certificate does not verify.
    let other = nodes.dir.path().join("other-ca.crt");
    let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into()]).unwrap();
    std::fs::write(&other, cert.cert.pem()).unwrap();
    let e = PgStore::open(options(require.clone(), Some(other))).expect_err("unknown CA");
    assert!(
        format!("{e:#}").to_lowercase().contains("certificate"),
        "{e:#}"
    );
    // The right CA: TLS, seen by the server.
    let store = PgStore::open(options(require, Some(ca))).unwrap();
    store.kv_set("default", "coupon", "over-tls", b"1").unwrap();
    let encrypted: i64 = Session::new(&nodes.url).sql(
        "SELECT count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid)
         WHERE a.datname = current_database() AND a.application_name = 'switchyard'
           AND s.ssl",
    )[0]
    .parse()
    .unwrap();
    assert!(encrypted >= 1, "the store's connections use TLS");
    store.close();
}
