//! Several nodes on one PostgreSQL database (issue 12), tested with the
//! real binary: two `switchyard run` nodes (`node-a`, `node-b`, their own
//! data directories, the same KEK) forward originals to a silent endpoint;
//! `node-a` is killed with SIGKILL while its originals are in flight.
//! `node-b` reverses its own originals after their timeout, and `node-a`'s
//! once `node-a`'s node lease has lapsed (takeover): every original the
//! endpoint received must be reversed, none sent twice, and no reversal may
//! reach the endpoint after a node recorded its acknowledgement. A second
//! process with a live node's id is refused.
//!
//! Needs `SWITCHYARD_TEST_PG` (a server where the test may create
//! databases; `scripts/test` starts one with `scripts/pg-server`); without
//! it the tests pass after printing "skipped", unless
//! `SWITCHYARD_PG_TESTS=required`.

mod common;

#[path = "../../../tests/support/fake_endpoint.rs"]
mod fake_endpoint;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{RunLog, private_dir, share_kek};
use fake_endpoint::{FakeEndpoint, Received, Reply, assert_no_card_data};

const ORIGINALS: u32 = 150;
const CONNECTIONS: u32 = 10;
const BASE: u32 = 50_000;
/// Long enough that `node-a` is killed before any of its own timeouts fire.
const ENDPOINT_TIMEOUT_MS: u64 = 20_000;
const NODE_LEASE_MS: u64 = 1_500;
/// Longest wait, from the kill, for every original to be reversed.
const DRAIN_LIMIT: Duration = Duration::from_secs(90);

/// Node `node`'s config: endpoints at the fake (timeout 20 s; the SAF
/// lease, 30 s by default, stays above it), state in `data`, the store on
/// database `db` with a 1.5 s node lease.
fn node_config(data: &Path, endpoint: SocketAddr, node: &str, db: &str) -> PathBuf {
    let node_id = format!("node_id = \"{node}\"");
    let store = format!("[store]\nurl = {db:?}\nnode_lease_ms = {NODE_LEASE_MS}\n");
    let timeout = format!("timeout_ms = {ENDPOINT_TIMEOUT_MS}");
    common::fake_endpoint_config(
        data,
        endpoint,
        &[
            ("node_id = \"node-1\"", &node_id),
            ("[store]\n", &store),
            ("timeout_ms = 1000", &timeout),
        ],
    )
}

/// A running node: its process (killed when dropped), listener 5002, and
/// its "admin API listening" log line.
struct Node {
    run: RunLog,
    addr: SocketAddr,
    admin: String,
}

fn start_node(config: &Path) -> Node {
    let (mut run, addr) = RunLog::spawn_serving(config, 5002);
    let is_admin = |l: &String| l.contains("admin API listening");
    let logged = run.wait_log(Duration::from_secs(30), |ls| ls.iter().any(is_admin));
    assert!(logged, "no admin API line; log: {:#?}", run.drain());
    let admin = run.drain().iter().find(|l| is_admin(l)).unwrap().clone();
    Node { run, addr, admin }
}

/// The originals whose acknowledged reversal `node` has recorded
/// (`state = reversed`), asked through its admin API.
fn recorded_reversed(node: &Node) -> BTreeSet<String> {
    let (status, body) =
        tokio::task::block_in_place(|| common::admin_get(&node.admin, "/tranlog?limit=10000"));
    assert_eq!(status, 200, "GET /api/tranlog: {body}");
    let rows: Vec<serde_json::Value> = serde_json::from_str(&body).unwrap();
    rows.iter()
        .filter(|r| r["kind"] == "original" && r["state"] == "reversed")
        .filter_map(|r| r["stan"].as_str().map(str::to_owned))
        .collect()
}

fn is_original(r: &Received) -> bool {
    r.message.mti().as_str() == "0200"
}

/// STAN → how many of the messages `keep` picks the endpoint received.
fn per_stan(rs: &[Received], keep: impl Fn(&Received) -> bool) -> BTreeMap<String, usize> {
    let mut n = BTreeMap::new();
    for r in rs.iter().filter(|r| keep(r)) {
        *n.entry(common::stan(&r.message)).or_default() += 1;
    }
    n
}

/// The node [`common::send_originals`] sent STAN `stan` to (connection `c`
/// to node `c % 2`): 0 is `node-a`.
fn sent_to(stan: u32) -> u32 {
    ((stan - BASE) / (ORIGINALS / CONNECTIONS)) % 2
}

/// Whether `line` has the field `node=<id>` (text log; quoted or not).
fn names_node(line: &str, id: &str) -> bool {
    line.split_whitespace().any(|t| {
        t.trim_end_matches(',')
            .strip_prefix("node=")
            .map(|v| v.trim_matches('"'))
            == Some(id)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_nodes_in_flight_originals_are_reversed_by_the_other_node() {
    let Some(db) = common::fresh_pg_database("two_nodes_kill") else {
        return;
    };
    // Originals: silence (they stay in flight). Reversals: acknowledged.
    let fake = FakeEndpoint::start(Box::new(|m, _| {
        if m.mti_str().starts_with("02") {
            Reply::Silence
        } else {
            Reply::Code("00")
        }
    }))
    .await;
    let root = common::test_dir("two-nodes", "kill");
    let (data_a, data_b) = (root.join("a"), root.join("b"));
    private_dir(&data_a);
    let cfg_a = node_config(&data_a, fake.addr, "node-a", &db);
    let cfg_b = node_config(&data_b, fake.addr, "node-b", &db);
    let mut a = start_node(&cfg_a);
    share_kek(&data_a, &data_b);
    let mut b = start_node(&cfg_b);

    let (sent, conns) =
        common::send_originals(&[a.addr, b.addr], BASE, ORIGINALS, CONNECTIONS).await;
    assert_eq!(sent, ORIGINALS, "originals written");
    let forwarded = fake
        .wait_for(Duration::from_secs(30), |rs| {
            per_stan(rs, is_original).len() >= sent as usize
        })
        .await;
    let got = per_stan(&fake.received(), is_original).len();
    assert!(forwarded, "the endpoint received {got} of {sent} originals");
    a.run.kill(); // SIGKILL, node-a's originals in flight
    let killed_at = Instant::now();
    let early = fake
        .received()
        .iter()
        .filter(|r| common::is_reversal(&r.message))
        .count();
    assert_eq!(
        early, 0,
        "reversals before the kill: it did not land while node-a's originals were in flight"
    );
    let originals: BTreeSet<String> = per_stan(&fake.received(), is_original)
        .into_keys()
        .collect();
    let of_a: BTreeSet<String> = originals
        .iter()
        .filter(|s| sent_to(s.parse().unwrap()) == 0)
        .cloned()
        .collect();
    assert!(!of_a.is_empty(), "node-a forwarded nothing");

    // Until every original got a reversal, noting now and then which
    // acknowledgements node-b has recorded (and when).
    let mut snapshots: Vec<(Instant, BTreeSet<String>)> = Vec::new();
    let mut last_snapshot = Instant::now();
    let mut reversed_a_at = None;
    let drained = loop {
        let reversed = per_stan(&fake.received(), |r| common::is_reversal(&r.message));
        if reversed_a_at.is_none() && of_a.iter().all(|s| reversed.contains_key(s)) {
            reversed_a_at = Some(killed_at.elapsed());
        }
        if originals.iter().all(|s| reversed.contains_key(s)) {
            break true;
        }
        if killed_at.elapsed() > DRAIN_LIMIT {
            break false;
        }
        if last_snapshot.elapsed() > Duration::from_secs(2) {
            let acked = recorded_reversed(&b);
            snapshots.push((Instant::now(), acked));
            last_snapshot = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // Let the last acknowledgements be recorded; then a while longer, in
    // which no acknowledged reversal may be sent again (a few node leases).
    tokio::time::sleep(Duration::from_millis(500)).await;
    let acked_end = recorded_reversed(&b);
    snapshots.push((Instant::now(), acked_end.clone()));
    tokio::time::sleep(Duration::from_millis(4 * NODE_LEASE_MS)).await;
    drop(conns);
    b.run.terminate();
    let received = fake.received();
    let reversals = per_stan(&received, |r| common::is_reversal(&r.message));
    let missing: Vec<&String> = originals
        .iter()
        .filter(|s| !reversals.contains_key(*s))
        .collect();
    println!(
        "two nodes: {sent} sent, the endpoint got {} originals ({} from node-a), \
         {} reversals; node-a's all reversed {reversed_a_at:?} after the kill; \
         {} acknowledged at the end, {} snapshots",
        originals.len(),
        of_a.len(),
        reversals.values().sum::<usize>(),
        acked_end.len(),
        snapshots.len(),
    );
    assert!(
        drained,
        "not every original was reversed within {DRAIN_LIMIT:?} of the kill: \
         {} without a reversal (first: {:?}); node-b's log: {:#?}",
        missing.len(),
        missing.first(),
        b.run.drain()
    );

    // No original forwarded twice (node-b must not resend node-a's).
    let twice: Vec<(String, usize)> = per_stan(&received, is_original)
        .into_iter()
        .filter(|(_, n)| *n > 1)
        .collect();
    assert!(twice.is_empty(), "originals sent twice: {twice:?}");
    // No reversal after its acknowledgement was recorded (retransmissions
    // before that are fine).
    for (at, acked) in &snapshots {
        let after: Vec<String> = received
            .iter()
            .filter(|r| common::is_reversal(&r.message) && r.at > *at)
            .map(|r| common::stan(&r.message))
            .filter(|s| acked.contains(s))
            .collect();
        assert!(
            after.is_empty(),
            "reversals sent again after their acknowledgement was recorded: {after:?}"
        );
    }

    // node-b says it took node-a over.
    let took_over = b
        .run
        .drain()
        .iter()
        .any(|l| l.contains("took over") && names_node(l, "node-a"));
    assert!(
        took_over,
        "node-b logged no \"took over … node=node-a\"; its log: {:#?}",
        b.run.drain()
    );

    // The database's view of the nodes (before any other command opens
    // the store): node-a dead and taken over by node-b, node-b stopped.
    let (out, nodes) =
        common::switchyard(&["db", "nodes", "--config", cfg_b.to_str().unwrap()], None);
    println!("db nodes:\n{nodes}");
    assert!(out.status.success(), "db nodes: {nodes}");
    let row = |id: &str| {
        nodes
            .lines()
            .find(|l| l.split_whitespace().next() == Some(id))
            .unwrap_or_else(|| panic!("db nodes lists no {id}: {nodes}"))
            .to_owned()
    };
    let (row_a, row_b) = (row("node-a"), row("node-b"));
    assert!(
        row_a.contains(" dead ") && row_a.trim_end().ends_with("node-b"),
        "db nodes: node-a dead, taken over by node-b: {nodes}"
    );
    assert!(
        row_b.contains(" stopped "),
        "db nodes: node-b stopped (it was stopped with SIGTERM): {nodes}"
    );

    // The tranlog (the CLI, node-b stopped): every original reversed,
    // recorded by the node that received it.
    let rows = common::tranlog_originals(&cfg_b);
    let by_stan: BTreeMap<String, &serde_json::Value> = rows
        .iter()
        .filter_map(|r| Some((r["stan"].as_str()?.to_owned(), r)))
        .collect();
    for s in &originals {
        let row = by_stan
            .get(s)
            .unwrap_or_else(|| panic!("original {s} is not in the tranlog"));
        assert_eq!(row["state"], "reversed", "original {s}");
        let node = if of_a.contains(s) { "node-a" } else { "node-b" };
        assert_eq!(row["node"], node, "original {s}");
    }
    // No card data at rest: in either data directory, nor in the database.
    common::pg_dump(&db, &root.join("database.sql"));
    assert_no_card_data(&root, common::TEST_PAN);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_process_with_a_live_nodes_id_is_refused() {
    let Some(db) = common::fresh_pg_database("two_nodes_same_id") else {
        return;
    };
    let fake = FakeEndpoint::start(Box::new(|_, _| Reply::Silence)).await;
    let root = common::test_dir("two-nodes", "same-id");
    let (data_a, data_c) = (root.join("a"), root.join("c"));
    private_dir(&data_a);
    let cfg_a = node_config(&data_a, fake.addr, "node-a", &db);
    let cfg_c = node_config(&data_c, fake.addr, "node-a", &db);
    let mut a = start_node(&cfg_a);
    // The same KEK: only the node id may be what is refused.
    share_kek(&data_a, &data_c);

    let mut c = RunLog::spawn(&cfg_c);
    let status = c.wait_exit(Duration::from_secs(60));
    let log = c.drain().join("\n");
    let status = status.unwrap_or_else(|| panic!("a second node-a kept running; its log:\n{log}"));
    assert!(
        !status.success(),
        "a second node-a exited {status}; its log:\n{log}"
    );
    assert!(
        log.lines()
            .any(|l| l.contains("is held by a live node") && l.contains("node-a")),
        "its log says why: {log}"
    );
    // The live node is unharmed.
    assert!(
        a.run.wait_exit(Duration::ZERO).is_none(),
        "node-a exited; its log: {:#?}",
        a.run.drain()
    );
    a.run.terminate();
}
