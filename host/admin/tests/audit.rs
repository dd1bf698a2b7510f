//! The audit trail over a real store in a temporary data directory:
//! append, list, verify; the append-only triggers; with the triggers
//! dropped (someone with write access to the file), a changed row, a
//! deleted middle row and deleted newest rows are each detected with
//! their seq; alert rules write `audit.alert` webhook events.

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use rusqlite::Connection;
use switchyard_admin::audit::{AlertRule, Audit, AuditEvent, AuditFilter, Outcome};
use switchyard_store::operator::OperatorDb;
use switchyard_store::{SqliteStore, StoreOptions};

struct Trail {
    _dir: tempfile::TempDir,
    db: PathBuf,
    keys: PathBuf,
    audit: Audit,
}

/// A data directory with a real store and `n` audit rows (seq 1..=n).
fn trail(n: usize, alerts: Vec<AlertRule>) -> Trail {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("switchyard.db");
    let keys = dir.path().join("keys");
    let store = SqliteStore::open(StoreOptions {
        db_path: db.clone(),
        kek_path: keys.join("kek.key"),
        node: "test".into(),
        duplicate_filter_mib: 1,
    })
    .unwrap();
    drop(store);
    let audit = Audit::open(&OperatorDb::sqlite(&db).unwrap(), &keys, alerts).unwrap();
    for i in 0..n {
        let resource = format!("resource-{i}");
        let tenant = if i % 2 == 0 { "acme" } else { "globex" };
        audit
            .record(&AuditEvent {
                actor: if i == 0 { "system" } else { "alice" },
                event: if i % 3 == 0 {
                    "login.failed"
                } else {
                    "plugin.swap"
                },
                outcome: if i % 3 == 0 {
                    Outcome::Failure
                } else {
                    Outcome::Success
                },
                origin: Some(IpAddr::V4(Ipv4Addr::LOCALHOST)),
                resource: &resource,
                tenant: Some(tenant),
                detail: "test",
            })
            .unwrap();
    }
    Trail {
        _dir: dir,
        db,
        keys,
        audit,
    }
}

fn raw(db: &Path) -> Connection {
    Connection::open(db).unwrap()
}

fn drop_triggers(db: &Path) -> Connection {
    let c = raw(db);
    c.execute_batch("DROP TRIGGER audit_no_update; DROP TRIGGER audit_no_delete;")
        .unwrap();
    c
}

fn first_bad(t: &Trail) -> (i64, String) {
    let report = t.audit.verify().unwrap();
    assert!(!report.ok, "tampering went unnoticed: {report:?}");
    report.first_bad.unwrap()
}

#[test]
fn append_list_and_verify() {
    let t = trail(6, Vec::new());
    let report = t.audit.verify().unwrap();
    assert!(report.ok, "{report:?}");
    assert_eq!(report.rows, 6);
    assert_eq!(report.head.as_ref().map(|h| h.0), Some(6));

    let all = t.audit.list(&AuditFilter::default()).unwrap();
    assert_eq!(
        all.iter().map(|r| r.seq).collect::<Vec<_>>(),
        [6, 5, 4, 3, 2, 1]
    );
    assert_eq!(all[5].actor_kind, "system");
    assert_eq!(all[0].actor_kind, "unknown");
    assert_eq!(all[0].origin.as_deref(), Some("127.0.0.1"));

    let acme = AuditFilter {
        tenant: Some("acme".into()),
        ..AuditFilter::default()
    };
    let rows = t.audit.list(&acme).unwrap();
    assert_eq!(rows.len(), 3);
    assert!(rows.iter().all(|r| r.tenant.as_deref() == Some("acme")));

    let failed = AuditFilter {
        event: Some("login.failed".into()),
        limit: Some(1),
        ..AuditFilter::default()
    };
    let rows = t.audit.list(&failed).unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!((rows[0].seq, rows[0].outcome.as_str()), (4, "failure"));

    // A second handle (another process) appends after the first's rows.
    let other = Audit::open(&OperatorDb::sqlite(&t.db).unwrap(), &t.keys, Vec::new()).unwrap();
    other
        .record(&AuditEvent {
            actor: "cli",
            event: "user.created",
            outcome: Outcome::Success,
            origin: None,
            resource: "bob",
            tenant: None,
            detail: "",
        })
        .unwrap();
    let report = t.audit.verify().unwrap();
    assert!(report.ok, "{report:?}");
    assert_eq!(report.rows, 7);
}

#[test]
fn the_triggers_refuse_update_and_delete() {
    let t = trail(3, Vec::new());
    let c = raw(&t.db);
    let e = c
        .execute("UPDATE audit SET detail = 'forged' WHERE seq = 2", [])
        .unwrap_err();
    assert!(e.to_string().contains("append-only"), "{e}");
    let e = c
        .execute("DELETE FROM audit WHERE seq = 3", [])
        .unwrap_err();
    assert!(e.to_string().contains("append-only"), "{e}");
    assert!(t.audit.verify().unwrap().ok);
}

#[test]
fn a_changed_row_is_detected() {
    let t = trail(5, Vec::new());
    drop_triggers(&t.db)
        .execute("UPDATE audit SET outcome = 'success' WHERE seq = 4", [])
        .unwrap();
    let (seq, why) = first_bad(&t);
    assert_eq!(seq, 4, "{why}");
    assert!(why.starts_with("changed"), "{why}");
}

#[test]
fn rows_moved_between_seqs_are_detected() {
    let t = trail(5, Vec::new());
    let c = drop_triggers(&t.db);
    // Swap every column of rows 2 and 3 but their seq.
    c.execute_batch(
        "UPDATE audit SET seq = -2 WHERE seq = 2;
         UPDATE audit SET seq = 2 WHERE seq = 3;
         UPDATE audit SET seq = 3 WHERE seq = -2;",
    )
    .unwrap();
    let (seq, why) = first_bad(&t);
    assert_eq!(seq, 2, "{why}");
}

#[test]
fn a_deleted_middle_row_is_detected() {
    let t = trail(5, Vec::new());
    drop_triggers(&t.db)
        .execute("DELETE FROM audit WHERE seq = 3", [])
        .unwrap();
    let (seq, why) = first_bad(&t);
    assert_eq!(seq, 3, "{why}");
    assert!(why.starts_with("deleted"), "{why}");
}

#[test]
fn deleted_newest_rows_are_detected() {
    let t = trail(5, Vec::new());
    drop_triggers(&t.db)
        .execute("DELETE FROM audit WHERE seq >= 4", [])
        .unwrap();
    let (seq, why) = first_bad(&t);
    assert_eq!(seq, 4, "{why}");
    assert!(why.starts_with("truncated"), "{why}");
}

#[test]
fn deleted_newest_rows_with_a_rewritten_checkpoint_are_detected() {
    let t = trail(5, Vec::new());
    let c = drop_triggers(&t.db);
    let hash3: String = c
        .query_row("SELECT hash FROM audit WHERE seq = 3", [], |r| r.get(0))
        .unwrap();
    c.execute("DELETE FROM audit WHERE seq >= 4", []).unwrap();
    c.execute(
        "UPDATE meta SET value = ?1 WHERE name = 'audit_head'",
        [format!("3 {hash3}")],
    )
    .unwrap();
    // The key directory's copy still names seq 5.
    let (seq, why) = first_bad(&t);
    assert_eq!(seq, 4, "{why}");
    assert!(why.starts_with("truncated"), "{why}");
}

#[test]
fn an_append_after_truncation_leaves_the_gap_visible() {
    let t = trail(5, Vec::new());
    drop_triggers(&t.db)
        .execute("DELETE FROM audit WHERE seq = 5", [])
        .unwrap();
    t.audit
        .record(&AuditEvent {
            actor: "alice",
            event: "saf.retry",
            outcome: Outcome::Success,
            origin: None,
            resource: "7",
            tenant: None,
            detail: "",
        })
        .unwrap();
    let (seq, why) = first_bad(&t);
    assert_eq!(seq, 5, "{why}");
    assert!(why.starts_with("deleted"), "{why}");
}

#[test]
fn a_forged_row_without_the_key_is_detected() {
    let t = trail(3, Vec::new());
    let c = drop_triggers(&t.db);
    // Recompute with a guessed key: the attacker does not have audit.key.
    let forged = switchyard_store::audit::chain_hash(
        &[7u8; 32],
        switchyard_store::audit::GENESIS,
        1,
        &switchyard_store::audit::NewRow {
            at_ms: 0,
            actor: "mallory",
            actor_kind: "user",
            event: "login",
            outcome: "success",
            origin: None,
            resource: "",
            tenant: None,
            detail: "",
        },
    );
    c.execute(
        "UPDATE audit SET actor = 'mallory', hash = ?1 WHERE seq = 1",
        [forged],
    )
    .unwrap();
    assert_eq!(first_bad(&t).0, 1);
}

#[test]
fn a_lost_key_with_rows_is_refused() {
    let t = trail(2, Vec::new());
    std::fs::remove_file(t.keys.join("audit.key")).unwrap();
    let e = Audit::open(&OperatorDb::sqlite(&t.db).unwrap(), &t.keys, Vec::new()).unwrap_err();
    assert!(format!("{e:#}").contains("missing"), "{e:#}");
}

#[test]
fn the_key_file_is_private() {
    let t = trail(1, Vec::new());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(t.keys.join("audit.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(std::fs::read(t.keys.join("audit.key")).unwrap().len(), 32);
    }
}

#[test]
fn an_alert_rule_writes_a_webhook_event_in_the_same_transaction() {
    let rule = AlertRule {
        events: vec!["login.failed".into()],
        outcome: Some(Outcome::Failure),
        tenant: Some("acme".into()),
    };
    // Rows 1 and 4 are failed logins; only row 1 is of tenant acme.
    let t = trail(6, vec![rule]);
    let c = raw(&t.db);
    let alerts: Vec<(String, String)> = c
        .prepare("SELECT tenant, payload FROM webhook_events WHERE event_type = 'audit.alert'")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(alerts[0].0, "acme");
    let data: serde_json::Value = serde_json::from_str(&alerts[0].1).unwrap();
    assert_eq!(data["seq"], 1);
    assert_eq!(data["event"], "login.failed");
}
