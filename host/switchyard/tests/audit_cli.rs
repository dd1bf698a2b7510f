//! `switchyard admin audit verify` and `list` on a real data directory:
//! exit 0 on an intact trail, exit 1 naming the first bad seq and why
//! after a row was changed (with the triggers dropped, as someone with
//! write access to the database file could), and after the newest rows
//! were deleted.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use switchyard_admin::audit::{Audit, AuditEvent, Outcome};
use switchyard_store::{SqliteStore, StoreOptions};

/// A data directory with a store and `n` audit rows, and a config file
/// naming it.
fn data_dir(n: usize) -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("var");
    let db = data.join("switchyard.db");
    let store = SqliteStore::open(StoreOptions {
        db_path: db.clone(),
        kek_path: data.join("keys").join("kek.key"),
        node: "test".into(),
        duplicate_filter_mib: 1,
    })
    .unwrap();
    drop(store);
    let store = switchyard_store::operator::OperatorDb::sqlite(&db).unwrap();
    let audit = Audit::open(&store, &data.join("keys"), Vec::new()).unwrap();
    for i in 0..n {
        let resource = format!("plugin-{i}");
        audit
            .record(&AuditEvent {
                actor: "alice",
                event: "plugin.swap",
                outcome: Outcome::Success,
                origin: None,
                resource: &resource,
                tenant: Some("acme"),
                detail: "",
            })
            .unwrap();
    }
    let default = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../config/switchyard.toml"
    ))
    .unwrap();
    assert!(default.contains("data_dir = \"var\""));
    let config = dir.path().join("switch.toml");
    std::fs::write(&config, default).unwrap();
    (dir, config, db)
}

fn switchyard(args: &[&str], config: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(args)
        .arg("--config")
        .arg(config)
        .output()
        .unwrap()
}

/// Runs `sql` on the database after dropping the append-only triggers
/// (Python's sqlite3: this crate does not link rusqlite); `false` when
/// `$SWITCHYARD_PYTHON` is unset (the test is skipped).
fn tamper(db: &Path, sql: &str) -> bool {
    let Some(python) = std::env::var_os("SWITCHYARD_PYTHON").filter(|p| !p.is_empty()) else {
        eprintln!("SKIPPED: $SWITCHYARD_PYTHON is unset (scripts/test sets it)");
        return false;
    };
    let script = "import sqlite3, sys\n\
                  c = sqlite3.connect(sys.argv[1])\n\
                  c.executescript(sys.argv[2])\n\
                  c.commit()\n";
    let all = format!("DROP TRIGGER audit_no_update; DROP TRIGGER audit_no_delete; {sql}");
    let out = Command::new(python)
        .args(["-c", script])
        .arg(db)
        .arg(all)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    true
}

#[test]
fn verify_an_intact_trail() {
    let (_dir, config, _) = data_dir(4);
    let out = switchyard(&["admin", "audit", "verify"], &config);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("audit trail intact: 4 rows, head seq 4"),
        "{stdout}"
    );
}

#[test]
fn verify_names_a_changed_row() {
    let (_dir, config, db) = data_dir(4);
    if !tamper(&db, "UPDATE audit SET actor = 'mallory' WHERE seq = 2;") {
        return;
    }
    let out = switchyard(&["admin", "audit", "verify"], &config);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("seq 2: changed"), "{stderr}");
}

#[test]
fn verify_names_deleted_newest_rows() {
    let (_dir, config, db) = data_dir(4);
    if !tamper(&db, "DELETE FROM audit WHERE seq = 4;") {
        return;
    }
    let out = switchyard(&["admin", "audit", "verify"], &config);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("seq 4: truncated"), "{stderr}");
}

#[test]
fn list_as_json() {
    let (_dir, config, _) = data_dir(3);
    let out = switchyard(
        &["admin", "audit", "list", "--limit", "2", "--json"],
        &config,
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let seqs: Vec<i64> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["seq"].as_i64().unwrap())
        .collect();
    assert_eq!(seqs, [3, 2]);
    assert_eq!(rows[0]["actor"], "alice");
    let table = switchyard(&["admin", "audit", "list"], &config);
    assert!(String::from_utf8_lossy(&table.stdout).contains("plugin.swap"));
}
