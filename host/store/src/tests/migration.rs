//! Opening a data directory of an older layout (v1, v2).

use rusqlite::{Connection, params};
use switchyard_engine::ports::{KvStore, SwapHistory};

use super::{TEST_PAN, options};
use crate::legacy::LegacySecret;
use crate::schema::{V1_SCHEMA, v1_key_hash};
use crate::{SqliteStore, StoreError};

/// Builds a v1 directory the way v1 wrote it; returns the legacy secret.
fn v1_directory(dir: &std::path::Path) -> LegacySecret {
    let data = dir.join("data");
    std::fs::create_dir_all(data.join("keys")).unwrap();
    let master = [5u8; 32];
    std::fs::write(data.join("keys/store.key"), master).unwrap();
    let legacy = LegacySecret::from_master(&master);
    let conn = Connection::open(data.join("switchyard.db")).unwrap();
    conn.pragma_update(None, "journal_mode", "WAL").unwrap();
    conn.execute_batch(V1_SCHEMA).unwrap();
    for (tenant, plugin, key, value) in [
        ("acme", "loyalty", TEST_PAN, &b"1200"[..]),
        ("acme", "coupons", "C1", &b"used"[..]),
        ("other", "loyalty", TEST_PAN, &b"7"[..]),
    ] {
        let hash = v1_key_hash(&legacy, tenant, plugin, key);
        let sealed = legacy.seal(value, &LegacySecret::aad(tenant, plugin, &hash));
        conn.execute(
            "INSERT INTO kv (tenant, plugin, key_hash, value, updated) VALUES (?1, ?2, ?3, ?4, 0)",
            params![tenant, plugin, &hash[..], sealed],
        )
        .unwrap();
    }
    conn.execute(
        "INSERT INTO swaps (at_ms, plugin, action, old_hash, new_hash, actor) VALUES (1, 'p', 'swap', 'a', 'b', 'ops')",
        [],
    )
    .unwrap();
    legacy
}

#[test]
fn a_v1_directory_opens_with_its_kv_data_and_loses_its_master_secret() {
    let dir = tempfile::tempdir().unwrap();
    v1_directory(dir.path());
    {
        let store = SqliteStore::open(options(dir.path())).unwrap();
        assert_eq!(
            store.kv_get("acme", "loyalty", TEST_PAN).unwrap(),
            Some(b"1200".to_vec())
        );
        assert_eq!(
            store.kv_get("acme", "coupons", "C1").unwrap(),
            Some(b"used".to_vec())
        );
        assert_eq!(
            store.kv_get("other", "loyalty", TEST_PAN).unwrap(),
            Some(b"7".to_vec())
        );
        assert_eq!(store.swaps(10).unwrap().len(), 1);
        // New writes to migrated tenants hash alike: the same row.
        store.kv_set("acme", "loyalty", TEST_PAN, b"1300").unwrap();
        store.kv_set("new", "loyalty", TEST_PAN, b"1").unwrap();
    }
    assert!(!dir.path().join("data/keys/store.key").exists());
    let conn = Connection::open(dir.path().join("data/switchyard.db")).unwrap();
    let version: i64 = conn
        .query_row("SELECT max(version) FROM schema_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, crate::schema::CURRENT);
    let rows: i64 = conn
        .query_row(
            "SELECT count(*) FROM kv WHERE key_id IS NOT NULL",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(rows, 4);
    let store = SqliteStore::open(options(dir.path())).unwrap();
    assert_eq!(
        store.kv_get("acme", "loyalty", TEST_PAN).unwrap(),
        Some(b"1300".to_vec())
    );
    assert_eq!(
        store.kv_get("new", "loyalty", TEST_PAN).unwrap(),
        Some(b"1".to_vec())
    );
}

#[test]
fn a_v1_directory_without_its_secret_is_refused_untouched() {
    let dir = tempfile::tempdir().unwrap();
    v1_directory(dir.path());
    std::fs::remove_file(dir.path().join("data/keys/store.key")).unwrap();
    let e = SqliteStore::open(options(dir.path())).unwrap_err();
    assert!(matches!(e, StoreError::Migration { from: 1, .. }), "{e}");
    let conn = Connection::open(dir.path().join("data/switchyard.db")).unwrap();
    let tables: i64 = conn
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE name = 'schema_version'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(tables, 0, "the migration rolled back");
}

#[test]
fn a_v2_database_gets_the_v3_indexes() {
    let dir = tempfile::tempdir().unwrap();
    drop(SqliteStore::open(options(dir.path())).unwrap());
    let db = dir.path().join("data/switchyard.db");
    let indexes = |conn: &Connection| -> Vec<String> {
        conn.prepare(
            "SELECT name || ' ' || sql FROM sqlite_master
             WHERE type = 'index' AND name IN ('tranlog_match', 'tranlog_stan') ORDER BY name",
        )
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
    };
    {
        // Back to the v2 layout.
        let conn = Connection::open(&db).unwrap();
        conn.execute_batch(
            "DROP INDEX tranlog_stan;
             DROP TABLE counters;
             CREATE INDEX tranlog_match ON tranlog (match_hash) WHERE match_hash IS NOT NULL;
             CREATE INDEX tranlog_stan ON tranlog (stan) WHERE kind = 'original';
             DELETE FROM schema_version;
             INSERT INTO schema_version (version) VALUES (2);",
        )
        .unwrap();
        assert_eq!(indexes(&conn).len(), 2);
    }
    drop(SqliteStore::open(options(dir.path())).unwrap());
    let conn = Connection::open(&db).unwrap();
    let version: i64 = conn
        .query_row("SELECT max(version) FROM schema_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, crate::schema::CURRENT);
    assert_eq!(
        indexes(&conn),
        ["tranlog_stan CREATE INDEX tranlog_stan ON tranlog (stan)"]
    );
}

#[test]
fn a_v3_database_gets_the_counters_table_and_keeps_its_data() {
    use switchyard_engine::ports::CounterStore;
    let dir = tempfile::tempdir().unwrap();
    {
        let s = SqliteStore::open(options(dir.path())).unwrap();
        s.kv_set("acme", "loyalty", TEST_PAN, b"1200").unwrap();
    }
    let db = dir.path().join("data/switchyard.db");
    {
        // Back to the v3 layout.
        let conn = Connection::open(&db).unwrap();
        conn.execute_batch(
            "DROP TABLE counters;
             DELETE FROM schema_version;
             INSERT INTO schema_version (version) VALUES (3);",
        )
        .unwrap();
    }
    {
        let s = SqliteStore::open(options(dir.path())).unwrap();
        assert_eq!(
            s.kv_get("acme", "loyalty", TEST_PAN).unwrap(),
            Some(b"1200".to_vec())
        );
        assert_eq!(
            s.counter_add(("acme", "velocity"), "count", TEST_PAN, 3, 86_400),
            Ok(3)
        );
    }
    let conn = Connection::open(&db).unwrap();
    let version: i64 = conn
        .query_row("SELECT max(version) FROM schema_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, crate::schema::CURRENT);
    let index: i64 = conn
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name = 'counters_expires'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(index, 1);
    drop(conn);
    let s = SqliteStore::open(options(dir.path())).unwrap();
    assert_eq!(
        s.counter_sum(("acme", "velocity"), "count", TEST_PAN, 86_400),
        Ok(3)
    );
}

#[test]
fn a_schema_this_version_cannot_migrate_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    drop(SqliteStore::open(options(dir.path())).unwrap());
    let conn = Connection::open(dir.path().join("data/switchyard.db")).unwrap();
    conn.execute_batch(
        "DELETE FROM schema_version; INSERT INTO schema_version (version) VALUES (1);",
    )
    .unwrap();
    drop(conn);
    let e = SqliteStore::open(options(dir.path())).unwrap_err();
    assert!(matches!(e, StoreError::Migration { from: 1, .. }), "{e}");
}

#[test]
fn a_v4_database_gets_the_trace_column_and_keeps_its_rows() {
    use switchyard_engine::ports::Tranlog;
    let dir = tempfile::tempdir().unwrap();
    let id = {
        let s = SqliteStore::open(options(dir.path())).unwrap();
        let a = super::wait(s.admit(super::request("acme", "0200", "000041"))).unwrap();
        super::wait(s.finish(a.id, super::answered("00", None))).unwrap();
        a.id
    };
    let db = dir.path().join("data/switchyard.db");
    {
        // Back to the v4 layout.
        let conn = Connection::open(&db).unwrap();
        conn.execute_batch(
            "ALTER TABLE tranlog DROP COLUMN trace;
             DELETE FROM schema_version;
             INSERT INTO schema_version (version) VALUES (4);",
        )
        .unwrap();
    }
    let s = SqliteStore::open(options(dir.path())).unwrap();
    let old = super::wait(s.get(id)).unwrap().unwrap();
    assert_eq!((old.rc.as_deref(), old.trace), (Some("00"), None));
    let b = super::wait(s.admit(super::request("acme", "0200", "000042"))).unwrap();
    let finished = switchyard_engine::ports::Finished {
        trace: Some("parse-request=3 end=9".into()),
        ..super::answered("00", None)
    };
    super::wait(s.finish(b.id, finished)).unwrap();
    let new = super::wait(s.get(b.id)).unwrap().unwrap();
    assert_eq!(new.trace.as_deref(), Some("parse-request=3 end=9"));
    drop(s);
    let conn = Connection::open(&db).unwrap();
    let version: i64 = conn
        .query_row("SELECT max(version) FROM schema_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, crate::schema::CURRENT);
}
