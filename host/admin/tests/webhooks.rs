//! Webhook delivery over a real store in a temporary data directory, to
//! `webhook_receiver.py`, which verifies each request with PyPI's
//! `standardwebhooks` (an independent implementation of the signature):
//! a 500 then a 200 is retried and delivered once; a 410 disables the
//! subscription; a second dispatcher does not redeliver what the first
//! delivered; the store's producers write their events in their own
//! transaction.
//!
//! Needs `$SWITCHYARD_PYTHON` (scripts/test sets it) with
//! `standardwebhooks`; skipped with a message when it is unset.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use switchyard_admin::audit::{Audit, AuditFilter};
use switchyard_admin::webhooks::{Settings, SubscriptionConfig, Webhooks, sign};
use switchyard_store::operator::OperatorDb;
use switchyard_store::outbox::DeliveryRow;
use switchyard_store::{SqliteStore, StoreOptions};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The longest any wait in these tests may take (a bound, not a timing
/// assertion).
const PATIENCE: Duration = Duration::from_secs(60);

fn python() -> Option<String> {
    match std::env::var("SWITCHYARD_PYTHON") {
        Ok(p) if !p.is_empty() => Some(p),
        _ => {
            eprintln!("SKIPPED: $SWITCHYARD_PYTHON is unset (scripts/test sets it)");
            None
        }
    }
}

struct Receiver {
    child: Child,
    out: PathBuf,
    url: String,
}

impl Receiver {
    fn start(python: &str, dir: &Path, secret: &str, script: &str) -> Receiver {
        let out = dir.join(format!("received-{script}.jsonl"));
        let mut child = Command::new(python)
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/webhook_receiver.py"
            ))
            .args([secret, script, out.to_str().unwrap()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("starting the receiver");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .trim()
            .strip_prefix("listening ")
            .unwrap_or_else(|| panic!("the receiver said {line:?}"));
        Receiver {
            child,
            out,
            url: format!("http://127.0.0.1:{port}/hook"),
        }
    }

    /// The requests received so far.
    fn received(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(&self.out)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

struct Setup {
    dir: tempfile::TempDir,
    db: PathBuf,
    store: Arc<SqliteStore>,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("switchyard.db");
    let store = SqliteStore::open(StoreOptions {
        db_path: db.clone(),
        kek_path: dir.path().join("keys").join("kek.key"),
        node: "test".into(),
        duplicate_filter_mib: 1,
    })
    .unwrap();
    Setup { dir, db, store }
}

fn settings(url: &str, secret: &str, events: &[&str]) -> Settings {
    Settings {
        subscriptions: vec![SubscriptionConfig {
            name: "client".into(),
            url: url.into(),
            secret: secret.into(),
            tenant: "default".into(),
            events: events.iter().map(|e| (*e).to_owned()).collect(),
        }],
        retry_schedule: vec![
            Duration::ZERO,
            Duration::from_millis(50),
            Duration::from_millis(50),
        ],
        attempt_timeout: Duration::from_secs(5),
        poll: Duration::from_millis(50),
    }
}

struct Running {
    webhooks: Webhooks,
    shutdown: CancellationToken,
    tracker: TaskTracker,
}

fn start(db: &Path, settings: Settings) -> Running {
    let shutdown = CancellationToken::new();
    let tracker = TaskTracker::new();
    let store = OperatorDb::sqlite(db).unwrap();
    let keys = db.parent().unwrap().join("keys");
    let webhooks = Webhooks::start(&store, &keys, settings, shutdown.clone(), &tracker).unwrap();
    Running {
        webhooks,
        shutdown,
        tracker,
    }
}

impl Running {
    async fn stop(self) {
        self.shutdown.cancel();
        self.tracker.close();
        tokio::time::timeout(PATIENCE, self.tracker.wait())
            .await
            .expect("the dispatcher stops");
    }

    /// Waits until `done` holds for the deliveries (bounded).
    async fn until(&self, what: &str, done: impl Fn(&[DeliveryRow]) -> bool) -> Vec<DeliveryRow> {
        let start = Instant::now();
        loop {
            let rows = self.webhooks.deliveries(None, 100).unwrap();
            if done(&rows) {
                return rows;
            }
            assert!(start.elapsed() < PATIENCE, "never {what}: {rows:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_500_then_a_200_is_retried_and_delivered_once_with_a_valid_signature() {
    let Some(python) = python() else { return };
    let s = setup();
    let secret = sign::new_secret();
    let rx = Receiver::start(&python, s.dir.path(), &secret, "500,200");
    let run = start(&s.db, settings(&rx.url, &secret, &["endpoint.down"]));
    let id = run
        .webhooks
        .emit(
            "default",
            "endpoint.down",
            r#"{"endpoint":"issuer-a","status":"down"}"#,
        )
        .expect("the event is written");
    // An event of another type or tenant is not for this subscription.
    run.webhooks.emit("default", "endpoint.up", "{}");
    run.webhooks.emit("acme", "endpoint.down", "{}");
    let rows = run
        .until("delivered", |r| r.iter().any(|d| d.state == "delivered"))
        .await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!((rows[0].attempts, rows[0].last_status), (2, Some(200)));
    assert_eq!(rows[0].event_id, id);
    // Some more dispatcher rounds: nothing is sent again.
    tokio::time::sleep(Duration::from_millis(300)).await;
    run.stop().await;
    let got = rx.received();
    assert_eq!(got.len(), 2, "{got:?}");
    for r in &got {
        assert_eq!(r["verified"], true, "{r}");
        assert_eq!(r["id"], id.as_str());
        assert_eq!(r["type"], "endpoint.down");
        assert_eq!(r["data"]["endpoint"], "issuer-a");
        assert_eq!(r["content_type"], "application/json");
        assert!(r["event_time"].as_str().unwrap().ends_with('Z'));
    }
    assert_eq!(
        (got[0]["status"].as_i64(), got[1]["status"].as_i64()),
        (Some(500), Some(200))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_secret_fails_the_independent_verification() {
    let Some(python) = python() else { return };
    let s = setup();
    let rx = Receiver::start(&python, s.dir.path(), &sign::new_secret(), "200");
    let mut settings = settings(&rx.url, &sign::new_secret(), &["*"]);
    settings.retry_schedule = vec![Duration::ZERO];
    let run = start(&s.db, settings);
    run.webhooks.emit("default", "key.rotated", "{}");
    let rows = run
        .until("failed", |r| r.iter().any(|d| d.state == "failed"))
        .await;
    assert_eq!(rows[0].last_status, Some(400));
    run.stop().await;
    let got = rx.received();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0]["verified"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_410_disables_the_subscription() {
    let Some(python) = python() else { return };
    let s = setup();
    let secret = sign::new_secret();
    let rx = Receiver::start(&python, s.dir.path(), &secret, "410");
    let run = start(&s.db, settings(&rx.url, &secret, &["*"]));
    run.webhooks.emit("default", "endpoint.down", "{}");
    run.until("disabled", |r| r.iter().any(|d| d.state == "disabled"))
        .await;
    let subs = run.webhooks.subscriptions().unwrap();
    assert!(subs[0].disabled, "{subs:?}");
    // Later events are not delivered to it.
    run.webhooks.emit("default", "endpoint.up", "{}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let rows = run.webhooks.deliveries(None, 100).unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    run.stop().await;
    assert_eq!(rx.received().len(), 1);
    // Audited.
    let store = OperatorDb::sqlite(&s.db).unwrap();
    let audit = Audit::open(&store, &s.dir.path().join("keys"), Vec::new()).unwrap();
    let rows = audit
        .list(&AuditFilter {
            event: Some("webhook.disabled".into()),
            ..AuditFilter::default()
        })
        .unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].resource, "client");
    assert!(audit.verify().unwrap().ok);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_dispatcher_does_not_redeliver() {
    let Some(python) = python() else { return };
    let s = setup();
    let secret = sign::new_secret();
    let rx = Receiver::start(&python, s.dir.path(), &secret, "200");
    let run = start(&s.db, settings(&rx.url, &secret, &["*"]));
    let first = run.webhooks.emit("default", "endpoint.down", "{}").unwrap();
    run.until("delivered", |r| r.iter().any(|d| d.state == "delivered"))
        .await;
    run.stop().await;

    let run = start(&s.db, settings(&rx.url, &secret, &["*"]));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let second = run.webhooks.emit("default", "endpoint.up", "{}").unwrap();
    run.until("both delivered", |r| {
        r.len() == 2 && r.iter().all(|d| d.state == "delivered")
    })
    .await;
    run.stop().await;
    let ids: Vec<String> = rx
        .received()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids, [first, second]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stores_producers_write_events_in_their_transaction() {
    use switchyard_engine::ports::{Attempt, Keyring, SafQueue, SwapHistory, SwapRecord};
    let s = setup();
    s.store.rotate(Some("acme".into())).await.unwrap();
    let swap = |action: &str| SwapRecord {
        at_ms: 1,
        plugin: "tag".into(),
        action: action.into(),
        old_hash: "aa".into(),
        new_hash: "bb".into(),
        actor: "alice".into(),
    };
    s.store.record_swap(&swap("swap")).unwrap();
    s.store.record_swap(&swap("rollback")).unwrap();
    s.store.record_swap(&swap("swap (unchanged)")).unwrap();
    // A reversal queued for an endpoint: two failed attempts (the first
    // escalates), then its acknowledgement.
    let c = rusqlite::Connection::open(&s.db).unwrap();
    c.busy_timeout(Duration::from_secs(5)).unwrap();
    c.execute(
        "INSERT INTO saf (tenant, kind, endpoint, source, original, reason, state, attempts,
            created_ms, next_ms) VALUES ('acme', 'reversal', 'issuer-a', 1, 1, '68', 'pending', 0, 0, 0)",
        [],
    )
    .unwrap();
    let saf = c.last_insert_rowid();
    for _ in 0..2 {
        let failed = Attempt::Failed {
            result: "no answer".into(),
            next_ms: 0,
            escalate: true,
        };
        s.store.attempted(saf, failed).await.unwrap();
    }
    s.store
        .attempted(saf, Attempt::Acked("00".into()))
        .await
        .unwrap();
    let events: Vec<(String, String, String)> = c
        .prepare("SELECT tenant, event_type, payload FROM webhook_events ORDER BY rowid")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let kinds: Vec<(&str, &str)> = events
        .iter()
        .map(|(t, e, _)| (t.as_str(), e.as_str()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("acme", "key.rotated"),
            ("default", "plugin.swapped"),
            ("default", "plugin.rolled_back"),
            ("acme", "reversal.escalated"),
            ("acme", "reversal.acknowledged"),
        ]
    );
    for (_, _, payload) in &events {
        serde_json::from_str::<serde_json::Value>(payload).unwrap();
    }
    let acked: serde_json::Value = serde_json::from_str(&events[4].2).unwrap();
    assert_eq!(
        (acked["saf_id"].as_i64(), acked["result"].as_str()),
        (Some(saf), Some("00"))
    );
}
