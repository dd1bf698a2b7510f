//! The webhook events PostgreSQL writes with the state changes they
//! report, as SQLite does: a reversal escalated and then acknowledged
//! (`reversal.escalated`, `reversal.acknowledged`), a plugin swapped or
//! rolled back (`plugin.swapped`, `plugin.rolled_back`), a tenant's data
//! key rotated (`key.rotated`) — each checked for its type, tenant and
//! `data`, and compared with what SQLite writes for the same change. Then
//! what only several nodes can show: an entry attempted by two nodes at
//! once, or by one whose lease was lost, has its event written once.
//!
//! PostgreSQL: `SWITCHYARD_TEST_PG` names a server where the test may
//! create databases (scripts/test starts one); without it the PostgreSQL
//! tests are skipped, unless `SWITCHYARD_PG_TESTS=required`.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Barrier};
use std::time::Duration;

use serde_json::{Value, json};
use switchyard_engine::ports::{
    Attempt, Finished, Keyring, NewSaf, Received, SafId, SafKind, SafQueue, SafState, SwapHistory,
    SwapRecord, Tranlog, TxId, TxState, Upstream,
};
use switchyard_engine::saf::ESCALATE_AFTER;
use switchyard_store::{SqliteStore, StoreOptions};

mod common;
use common::{Nodes, Session, now_ms, wait};

trait Ports: Tranlog + SafQueue + Keyring + SwapHistory {}
impl<T: Tranlog + SafQueue + Keyring + SwapHistory> Ports for T {}

/// One row of `webhook_events`, its payload parsed.
#[derive(Debug, Clone)]
struct Event {
    event_type: String,
    tenant: String,
    data: Value,
}

fn event(event_type: &str, tenant: &str, payload: &str) -> Event {
    Event {
        event_type: event_type.into(),
        tenant: tenant.into(),
        data: serde_json::from_str(payload)
            .unwrap_or_else(|e| panic!("a {event_type} payload that is not JSON ({e}): {payload}")),
    }
}

/// Where a test reads the events a backend wrote, oldest first.
trait Events {
    fn events(&self) -> Vec<Event>;
}

/// The events written since `before` of them were read.
fn since(events: &dyn Events, before: usize) -> Vec<Event> {
    events.events().split_off(before)
}

/// A SQLite store in a directory of the test's, whose database the test
/// reads with a connection of its own.
struct Sqlite {
    store: Arc<SqliteStore>,
    db: PathBuf,
    _dir: tempfile::TempDir,
}

impl Sqlite {
    fn open() -> Sqlite {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("switchyard.db");
        let store = SqliteStore::open(StoreOptions {
            db_path: db.clone(),
            kek_path: dir.path().join("keys").join("kek.key"),
            node: "node-1".into(),
            duplicate_filter_mib: 4,
        })
        .expect("opening a SQLite store");
        Sqlite {
            store,
            db,
            _dir: dir,
        }
    }
}

impl Events for Sqlite {
    fn events(&self) -> Vec<Event> {
        sqlite_events(&self.db)
    }
}

fn sqlite_events(db: &Path) -> Vec<Event> {
    let conn = rusqlite::Connection::open(db).expect("opening the store's database");
    let mut stmt = conn
        .prepare("SELECT event_type, tenant, payload FROM webhook_events ORDER BY rowid")
        .unwrap();
    stmt.query_map([], |r| {
        Ok(event(
            &r.get::<_, String>(0)?,
            &r.get::<_, String>(1)?,
            &r.get::<_, String>(2)?,
        ))
    })
    .unwrap()
    .collect::<Result<_, _>>()
    .unwrap()
}

impl Events for Session {
    fn events(&self) -> Vec<Event> {
        self.rows("SELECT event_type, tenant, payload FROM webhook_events ORDER BY seq")
            .iter()
            .map(|r| event(&r[0], &r[1], &r[2]))
            .collect()
    }
}

/// A request of `tenant` with STAN `stan` on terminal `terminal`.
fn request(tenant: &str, stan: &str, terminal: &str) -> Received {
    common::request(tenant, "0200", stan, terminal)
}

/// An original of `tenant` sent to `endpoint` that timed out: its
/// reversal is queued. Returns the original and the entry.
fn timed_out(s: &dyn Ports, tenant: &str, endpoint: &str, stan: &str) -> (TxId, SafId) {
    let t = wait(s.admit(request(tenant, stan, &format!("T-{endpoint}"))));
    wait(s.mark_sent(t.id, endpoint));
    let finished = Finished {
        state: TxState::ReversalQueued,
        kind: None,
        rc: Some("68".into()),
        approval: None,
        response: None,
        endpoint: Some(endpoint.into()),
        upstream: Upstream::Timeout,
        total: Duration::from_micros(1500),
        external: Some(Duration::from_micros(900)),
        participants: Vec::new(),
        original: None,
        reversal: Some(NewSaf {
            kind: SafKind::Reversal,
            endpoint: endpoint.into(),
            source: t.id,
            original: t.id,
            reason: "68".into(),
        }),
        trace: None,
    };
    let saf = wait(s.finish(t.id, finished)).expect("a reversal queued");
    (t.id, saf)
}

/// Moves the test's clock on: past the wall clock (what was queued is
/// due) and past every claim made so far.
fn tick(now: &mut i64) {
    *now = (*now).max(now_ms()) + 1;
}

/// Claims `endpoint`'s due entries at `now` for `owner`: they must be
/// exactly `expected`.
fn claim(s: &dyn Ports, endpoint: &str, owner: &str, now: i64, expected: &[SafId]) {
    let claimed = wait(s.claim(endpoint, owner, now, Duration::from_secs(30), 100));
    let ids: Vec<SafId> = claimed.iter().map(|e| e.id).collect();
    assert_eq!(ids, expected, "{owner} claims at {now}");
}

/// Fails the entries of `endpoint` (all due, none escalated) as the
/// forwarder does, until they reach `ESCALATE_AFTER` attempts and are
/// escalated; checks that no event comes before. `now` moves on.
fn fail_until_escalated(
    s: &dyn Ports,
    events: &dyn Events,
    endpoint: &str,
    safs: &[SafId],
    now: &mut i64,
) {
    let before = events.events().len();
    for round in 1..=ESCALATE_AFTER {
        tick(now);
        let claimed = wait(s.claim(endpoint, "node/w1", *now, Duration::from_secs(30), 100));
        assert_eq!(
            claimed.iter().map(|e| e.id).collect::<Vec<_>>(),
            safs,
            "round {round}"
        );
        for e in &claimed {
            assert!(!e.escalated, "round {round}: {e:?}");
            assert_eq!(e.attempts, round);
            let escalate = !e.escalated && e.attempts >= ESCALATE_AFTER;
            assert_eq!(escalate, round == ESCALATE_AFTER);
            wait(s.attempted(
                e.id,
                Attempt::Failed {
                    result: "timeout".into(),
                    next_ms: *now,
                    escalate,
                },
            ));
        }
        if round < ESCALATE_AFTER {
            assert!(
                since(events, before).is_empty(),
                "round {round}: no event before the escalation"
            );
        }
    }
    for saf in safs {
        assert!(wait(s.entry(*saf)).unwrap().escalated);
    }
}

/// What the events of `saf` (a reversal of `original` to `endpoint`)
/// must say.
fn reversal_event(
    event_type: &str,
    tenant: &str,
    saf: SafId,
    endpoint: &str,
    original: TxId,
    result: &str,
) -> Event {
    Event {
        event_type: event_type.into(),
        tenant: tenant.into(),
        data: json!({
            "saf_id": saf,
            "kind": "reversal",
            "endpoint": endpoint,
            "original": original,
            "result": result,
        }),
    }
}

fn assert_events(got: &[Event], want: &[Event], what: &str) {
    let show = |e: &[Event]| {
        e.iter()
            .map(|e| format!("{} {} {}", e.event_type, e.tenant, e.data))
            .collect::<Vec<_>>()
    };
    assert_eq!(show(got), show(want), "{what}");
}

/// The events of one backend, each step's apart.
struct Written {
    escalated: Vec<Event>,
    escalated_again: Vec<Event>,
    acknowledged: Vec<Event>,
    acked_quietly: Vec<Event>,
    swaps: Vec<Event>,
    rotated_one: Vec<Event>,
    rotated_all: Vec<Event>,
}

/// Every change that writes an event, through the ports, each step's
/// events checked; returns them to compare with the other backend's.
fn every_event(s: &dyn Ports, events: &dyn Events) -> Written {
    let mut now = now_ms() + 1;

    // A reversal escalated after ESCALATE_AFTER failed attempts: one
    // event, for the entry's tenant.
    let (original, saf) = timed_out(s, "acme", "esc", "000001");
    let mut before = events.events().len();
    fail_until_escalated(s, events, "esc", &[saf], &mut now);
    let escalated = since(events, before);
    assert_events(
        &escalated,
        &[reversal_event(
            "reversal.escalated",
            "acme",
            saf,
            "esc",
            original,
            "timeout",
        )],
        "the escalation",
    );
    // Failing on (even asking to escalate again) writes nothing more.
    before = events.events().len();
    tick(&mut now);
    claim(s, "esc", "node/w1", now, &[saf]);
    wait(s.attempted(
        saf,
        Attempt::Failed {
            result: "no answer".into(),
            next_ms: now,
            escalate: true,
        },
    ));
    let escalated_again = since(events, before);
    assert_events(&escalated_again, &[], "an escalated entry failing again");
    // Its acknowledgement: one event, with the response code.
    tick(&mut now);
    claim(s, "esc", "node/w1", now, &[saf]);
    wait(s.attempted(saf, Attempt::Acked("00".into())));
    assert_eq!(wait(s.entry(saf)).unwrap().state, SafState::Done);
    assert_eq!(wait(s.get(original)).unwrap().state, TxState::Reversed);
    let acknowledged = since(events, before);
    assert_events(
        &acknowledged,
        &[reversal_event(
            "reversal.acknowledged",
            "acme",
            saf,
            "esc",
            original,
            "00",
        )],
        "the acknowledgement",
    );
    // Acknowledged again (a late answer): nothing more.
    before = events.events().len();
    wait(s.attempted(saf, Attempt::Acked("05".into())));
    assert_events(&since(events, before), &[], "a late acknowledgement");
    assert_eq!(
        wait(s.entry(saf)).unwrap().last_result.as_deref(),
        Some("00")
    );
    // An entry acknowledged without having been escalated: no event.
    let (_, quiet) = timed_out(s, "acme", "quiet", "000002");
    tick(&mut now);
    claim(s, "quiet", "node/w1", now, &[quiet]);
    wait(s.attempted(
        quiet,
        Attempt::Failed {
            result: "timeout".into(),
            next_ms: now,
            escalate: false,
        },
    ));
    tick(&mut now);
    claim(s, "quiet", "node/w1", now, &[quiet]);
    wait(s.attempted(quiet, Attempt::Acked("00".into())));
    assert_eq!(wait(s.entry(quiet)).unwrap().state, SafState::Done);
    let acked_quietly = since(events, before);
    assert_events(&acked_quietly, &[], "an entry never escalated");

    // The swap history: a swap and a rollback, each one event for the
    // switch; a version that did not change, none.
    before = events.events().len();
    let swap = SwapRecord {
        at_ms: 1_700_000_000_123,
        plugin: "fraud \"rules\"".into(),
        action: "swap".into(),
        old_hash: "aa11".into(),
        new_hash: "bb22".into(),
        actor: "alice".into(),
    };
    let rollback = SwapRecord {
        at_ms: 1_700_000_000_456,
        action: "rollback".into(),
        old_hash: "bb22".into(),
        new_hash: "aa11".into(),
        actor: "bob".into(),
        ..swap.clone()
    };
    let unchanged = SwapRecord {
        at_ms: 1_700_000_000_789,
        action: "swap (unchanged)".into(),
        old_hash: "aa11".into(),
        ..rollback.clone()
    };
    for r in [&swap, &rollback, &unchanged] {
        s.record_swap(r).unwrap();
    }
    assert_eq!(s.swaps(10).unwrap(), [swap, rollback, unchanged.clone()]);
    let swaps = since(events, before);
    let swap_event =
        |event_type: &str, action: &str, old: &str, new: &str, actor: &str, at: i64| Event {
            event_type: event_type.into(),
            tenant: "default".into(),
            data: json!({
                "plugin": "fraud \"rules\"",
                "action": action,
                "old_hash": old,
                "new_hash": new,
                "actor": actor,
                "at_ms": at,
            }),
        };
    assert_events(
        &swaps,
        &[
            swap_event(
                "plugin.swapped",
                "swap",
                "aa11",
                "bb22",
                "alice",
                1_700_000_000_123,
            ),
            swap_event(
                "plugin.rolled_back",
                "rollback",
                "bb22",
                "aa11",
                "bob",
                1_700_000_000_456,
            ),
        ],
        "the swap history",
    );

    // A tenant's data key rotated: one event, for that tenant.
    before = events.events().len();
    let ids = wait(s.rotate(Some("acme".into())));
    assert_eq!(ids.len(), 1);
    let rotated_one = since(events, before);
    let key_event = |tenant: &str, id: i64| Event {
        event_type: "key.rotated".into(),
        tenant: tenant.into(),
        data: json!({"key": "data", "tenant": tenant, "key_id": id}),
    };
    assert_events(
        &rotated_one,
        &[key_event("acme", ids[0])],
        "one tenant's rotation",
    );
    // Every tenant's: one event each, for its tenant.
    timed_out(s, "globex", "other", "000003");
    before = events.events().len();
    let ids = wait(s.rotate(None));
    let rotated_all = since(events, before);
    assert_eq!(rotated_all.len(), ids.len(), "{rotated_all:?}");
    let tenants: BTreeSet<&str> = rotated_all.iter().map(|e| e.tenant.as_str()).collect();
    assert!(
        tenants.contains("acme") && tenants.contains("globex"),
        "{tenants:?}"
    );
    let want: Vec<Event> = rotated_all
        .iter()
        .zip(&ids)
        .map(|(e, id)| key_event(&e.tenant, *id))
        .collect();
    assert_events(&rotated_all, &want, "every tenant's rotation");

    Written {
        escalated,
        escalated_again,
        acknowledged,
        acked_quietly,
        swaps,
        rotated_one,
        rotated_all,
    }
}

/// The fields whose values are the backend's own ids.
const IDS: [&str; 3] = ["saf_id", "original", "key_id"];

/// Same types, tenants and fields; the same values but for ids, which
/// are integers on both.
fn same_shape(pg: &[Event], sqlite: &[Event], what: &str) {
    assert_eq!(pg.len(), sqlite.len(), "{what}: {pg:?} / {sqlite:?}");
    for (p, s) in pg.iter().zip(sqlite) {
        assert_eq!(
            (&p.event_type, &p.tenant),
            (&s.event_type, &s.tenant),
            "{what}"
        );
        let (Value::Object(p), Value::Object(s)) = (&p.data, &s.data) else {
            panic!("{what}: payloads that are not objects: {p:?} / {s:?}");
        };
        assert_eq!(
            p.keys().collect::<Vec<_>>(),
            s.keys().collect::<Vec<_>>(),
            "{what}"
        );
        for (k, v) in p {
            if IDS.contains(&k.as_str()) {
                assert!(v.is_i64() && s[k].is_i64(), "{what}: {k}: {v} / {}", s[k]);
            } else {
                assert_eq!(v, &s[k], "{what}: {k}");
            }
        }
    }
}

#[test]
fn sqlite_writes_every_event_with_its_change() {
    let s = Sqlite::open();
    every_event(&*s.store, &s);
    s.store.close();
}

#[test]
fn postgres_writes_the_events_sqlite_writes() {
    let Some(nodes) = Nodes::new("every") else {
        return;
    };
    let store = nodes.open("node-a");
    let session = nodes.session();
    let pg = every_event(&*store, &session);
    store.close();
    let sqlite = Sqlite::open();
    let lite = every_event(&*sqlite.store, &sqlite);
    sqlite.store.close();
    for (p, s, what) in [
        (&pg.escalated, &lite.escalated, "escalated"),
        (
            &pg.escalated_again,
            &lite.escalated_again,
            "escalated again",
        ),
        (&pg.acknowledged, &lite.acknowledged, "acknowledged"),
        (
            &pg.acked_quietly,
            &lite.acked_quietly,
            "acked, never escalated",
        ),
        (&pg.swaps, &lite.swaps, "swaps"),
        (&pg.rotated_one, &lite.rotated_one, "one tenant's rotation"),
    ] {
        same_shape(p, s, what);
    }
    // Every tenant's rotation: the same tenants (in either order).
    let by_tenant = |e: &[Event]| {
        let mut e = e.to_vec();
        e.sort_by(|a, b| a.tenant.cmp(&b.tenant));
        e
    };
    same_shape(
        &by_tenant(&pg.rotated_all),
        &by_tenant(&lite.rotated_all),
        "every tenant's rotation",
    );
}

/// How many events of each type `saf` has.
fn counts_of(events: &[Event], saf: SafId) -> HashMap<String, usize> {
    let mut out = HashMap::new();
    for e in events {
        if e.data.get("saf_id").and_then(Value::as_i64) == Some(saf) {
            *out.entry(e.event_type.clone()).or_insert(0) += 1;
        }
    }
    out
}

#[test]
fn two_nodes_attempting_one_entry_write_its_event_once() {
    let Some(nodes) = Nodes::new("two_nodes") else {
        return;
    };
    let a = nodes.open("node-a");
    let b = nodes.open("node-b");
    let session = nodes.session();
    let mut now = now_ms() + 1;

    // A lost lease: node A claims an escalated entry, its lease lapses,
    // node B claims and acknowledges it, then A's late acknowledgement
    // comes: one event, B's.
    let (original, saf) = timed_out(&*a, "acme", "lost", "000001");
    fail_until_escalated(&*a, &session, "lost", &[saf], &mut now);
    tick(&mut now);
    claim(&*a, "lost", "node-a/w1", now, &[saf]);
    now += 31_000;
    claim(&*b, "lost", "node-b/w1", now, &[saf]);
    let before = session.events().len();
    wait(b.attempted(saf, Attempt::Acked("00".into())));
    wait(a.attempted(saf, Attempt::Acked("05".into())));
    let entry = wait(a.entry(saf)).unwrap();
    assert_eq!(
        (entry.state, entry.last_result.as_deref()),
        (SafState::Done, Some("00"))
    );
    assert_events(
        &since(&session, before),
        &[reversal_event(
            "reversal.acknowledged",
            "acme",
            saf,
            "lost",
            original,
            "00",
        )],
        "a lost lease's late acknowledgement",
    );

    // Both nodes at once, on many entries: escalating, then
    // acknowledging, each entry's event exactly once.
    const ENTRIES: usize = 16;
    let safs: Vec<SafId> = (0..ENTRIES)
        .map(|i| timed_out(&*a, "acme", "race", &format!("{:06}", 100 + i)).1)
        .collect();
    let both = |attempt: &(dyn Fn(SafId) -> Attempt + Sync)| {
        let barrier = Barrier::new(2);
        std::thread::scope(|scope| {
            for (node, reversed) in [(&a, false), (&b, true)] {
                let (barrier, safs) = (&barrier, &safs);
                scope.spawn(move || {
                    let mut order = safs.clone();
                    if reversed {
                        order.reverse();
                    }
                    barrier.wait();
                    for saf in order {
                        wait(node.attempted(saf, attempt(saf)));
                    }
                });
            }
        });
    };
    both(&|_| Attempt::Failed {
        result: "timeout".into(),
        next_ms: 0,
        escalate: true,
    });
    both(&|_| Attempt::Acked("00".into()));
    let events = session.events();
    for saf in &safs {
        let entry = wait(b.entry(*saf)).unwrap();
        assert_eq!(entry.state, SafState::Done);
        assert!(entry.escalated);
        let counts = counts_of(&events, *saf);
        assert_eq!(
            (
                counts.get("reversal.escalated"),
                counts.get("reversal.acknowledged"),
                counts.len()
            ),
            (Some(&1), Some(&1), 2),
            "entry {saf}"
        );
    }
    assert_eq!(
        session.sql("SELECT count(*) FROM webhook_events WHERE event_type LIKE 'reversal.%'"),
        [(2 * ENTRIES + 2).to_string()]
    );
    a.close();
    b.close();
}
