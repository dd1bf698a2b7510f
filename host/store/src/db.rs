//! The SQLite database: plugin key/value data and swap history.

use std::path::Path;

use parking_lot::Mutex;
use rusqlite::{Connection, OptionalExtension, params};

use crate::StoreError;
use crate::crypto::Secret;
pub use switchyard_engine::ports::SwapRecord;
use switchyard_engine::ports::{KvStore, PortError, SwapHistory};

/// Largest plugin value.
pub const MAX_VALUE_LEN: usize = 64 * 1024;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS kv (
    tenant   TEXT NOT NULL,
    plugin   TEXT NOT NULL,
    key_hash BLOB NOT NULL,
    value    BLOB NOT NULL,
    updated  INTEGER NOT NULL,
    PRIMARY KEY (tenant, plugin, key_hash)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS swaps (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    at_ms    INTEGER NOT NULL,
    plugin   TEXT NOT NULL,
    action   TEXT NOT NULL,
    old_hash TEXT NOT NULL,
    new_hash TEXT NOT NULL,
    actor    TEXT NOT NULL
);
";

/// The switch's database.
pub struct Store {
    conn: Mutex<Connection>,
    secret: Secret,
    path: String,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish()
    }
}

impl Store {
    /// Opens (creating if needed) the database at `path`, with the secret in
    /// `key_path`.
    pub fn open(path: &Path, key_path: &Path) -> Result<Store, StoreError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| StoreError::KeyFile {
                path: dir.display().to_string(),
                reason: e.to_string(),
            })?;
        }
        let secret = Secret::load_or_create(key_path)?;
        let conn = Connection::open(path).map_err(|source| StoreError::Database {
            path: path.display().to_string(),
            source,
        })?;
        Store::init(conn, secret, path.display().to_string())
    }

    /// A store in memory with a random secret (tests, benches).
    pub fn in_memory() -> Store {
        let conn = Connection::open_in_memory().expect("SQLite opens in memory");
        Store::init(conn, Secret::random(), ":memory:".into()).expect("schema applies")
    }

    fn init(conn: Connection, secret: Secret, path: String) -> Result<Store, StoreError> {
        let db = |source| StoreError::Database {
            path: path.clone(),
            source,
        };
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(db)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(db)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(db)?;
        conn.execute_batch(SCHEMA).map_err(db)?;
        Ok(Store {
            conn: Mutex::new(conn),
            secret,
            path,
        })
    }

    /// The store's secret (counters hash their keys with it too).
    pub fn secret(&self) -> &Secret {
        &self.secret
    }

    fn db_err(&self, source: rusqlite::Error) -> StoreError {
        StoreError::Database {
            path: self.path.clone(),
            source,
        }
    }

    fn row_key(&self, tenant: &str, plugin: &str, key: &str) -> [u8; 32] {
        self.secret
            .hash(&[tenant.as_bytes(), plugin.as_bytes(), key.as_bytes()])
    }

    fn aad(tenant: &str, plugin: &str, key_hash: &[u8]) -> Vec<u8> {
        let mut aad = Vec::with_capacity(tenant.len() + plugin.len() + 34);
        aad.extend_from_slice(tenant.as_bytes());
        aad.push(0);
        aad.extend_from_slice(plugin.as_bytes());
        aad.push(0);
        aad.extend_from_slice(key_hash);
        aad
    }

    /// A plugin's value.
    pub fn kv_get(
        &self,
        tenant: &str,
        plugin: &str,
        key: &str,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let key_hash = self.row_key(tenant, plugin, key);
        let sealed: Option<Vec<u8>> = self
            .conn
            .lock()
            .query_row(
                "SELECT value FROM kv WHERE tenant = ?1 AND plugin = ?2 AND key_hash = ?3",
                params![tenant, plugin, &key_hash[..]],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.db_err(e))?;
        sealed
            .map(|s| self.secret.open(&s, &Store::aad(tenant, plugin, &key_hash)))
            .transpose()
    }

    /// Stores a plugin's value.
    pub fn kv_set(
        &self,
        tenant: &str,
        plugin: &str,
        key: &str,
        value: &[u8],
    ) -> Result<(), StoreError> {
        if value.len() > MAX_VALUE_LEN {
            return Err(StoreError::ValueTooLarge(value.len()));
        }
        let key_hash = self.row_key(tenant, plugin, key);
        let sealed = self
            .secret
            .seal(value, &Store::aad(tenant, plugin, &key_hash));
        self.conn
            .lock()
            .execute(
                "INSERT INTO kv (tenant, plugin, key_hash, value, updated) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (tenant, plugin, key_hash) DO UPDATE SET value = excluded.value, updated = excluded.updated",
                params![tenant, plugin, &key_hash[..], sealed, now_ms()],
            )
            .map_err(|e| self.db_err(e))?;
        Ok(())
    }

    /// Removes a plugin's value; true when it existed.
    pub fn kv_delete(&self, tenant: &str, plugin: &str, key: &str) -> Result<bool, StoreError> {
        let key_hash = self.row_key(tenant, plugin, key);
        let n = self
            .conn
            .lock()
            .execute(
                "DELETE FROM kv WHERE tenant = ?1 AND plugin = ?2 AND key_hash = ?3",
                params![tenant, plugin, &key_hash[..]],
            )
            .map_err(|e| self.db_err(e))?;
        Ok(n > 0)
    }

    /// Stores `value` when the current value equals `expected` (`None`: the
    /// key must be absent), atomically. True when stored.
    pub fn kv_compare_and_set(
        &self,
        tenant: &str,
        plugin: &str,
        key: &str,
        expected: Option<&[u8]>,
        value: &[u8],
    ) -> Result<bool, StoreError> {
        if value.len() > MAX_VALUE_LEN {
            return Err(StoreError::ValueTooLarge(value.len()));
        }
        let key_hash = self.row_key(tenant, plugin, key);
        let aad = Store::aad(tenant, plugin, &key_hash);
        let mut conn = self.conn.lock();
        let tx = conn.transaction().map_err(|e| self.db_err(e))?;
        let current: Option<Vec<u8>> = tx
            .query_row(
                "SELECT value FROM kv WHERE tenant = ?1 AND plugin = ?2 AND key_hash = ?3",
                params![tenant, plugin, &key_hash[..]],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.db_err(e))?;
        let current = current.map(|s| self.secret.open(&s, &aad)).transpose()?;
        if current.as_deref() != expected {
            return Ok(false);
        }
        tx.execute(
            "INSERT INTO kv (tenant, plugin, key_hash, value, updated) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (tenant, plugin, key_hash) DO UPDATE SET value = excluded.value, updated = excluded.updated",
            params![tenant, plugin, &key_hash[..], self.secret.seal(value, &aad), now_ms()],
        )
        .map_err(|e| self.db_err(e))?;
        tx.commit().map_err(|e| self.db_err(e))?;
        Ok(true)
    }

    /// Records a swap or rollback.
    pub fn record_swap(&self, record: &SwapRecord) -> Result<(), StoreError> {
        self.conn
            .lock()
            .execute(
                "INSERT INTO swaps (at_ms, plugin, action, old_hash, new_hash, actor) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    record.at_ms,
                    record.plugin,
                    record.action,
                    record.old_hash,
                    record.new_hash,
                    record.actor
                ],
            )
            .map_err(|e| self.db_err(e))?;
        Ok(())
    }

    /// The latest `limit` swaps, newest last.
    pub fn swaps(&self, limit: usize) -> Result<Vec<SwapRecord>, StoreError> {
        let conn = self.conn.lock();
        let mut stmt = conn
            .prepare(
                "SELECT at_ms, plugin, action, old_hash, new_hash, actor FROM swaps ORDER BY id DESC LIMIT ?1",
            )
            .map_err(|e| self.db_err(e))?;
        let rows = stmt
            .query_map(params![limit as i64], |r| {
                Ok(SwapRecord {
                    at_ms: r.get(0)?,
                    plugin: r.get(1)?,
                    action: r.get(2)?,
                    old_hash: r.get(3)?,
                    new_hash: r.get(4)?,
                    actor: r.get(5)?,
                })
            })
            .map_err(|e| self.db_err(e))?;
        let mut out: Vec<SwapRecord> =
            rows.collect::<Result<_, _>>().map_err(|e| self.db_err(e))?;
        out.reverse();
        Ok(out)
    }
}

fn port_error(e: StoreError) -> PortError {
    match e {
        StoreError::Decrypt => PortError::Decrypt(e.to_string()),
        StoreError::ValueTooLarge(_) => PortError::Invalid(e.to_string()),
        other => PortError::Database(other.to_string()),
    }
}

impl KvStore for Store {
    fn kv_get(&self, tenant: &str, plugin: &str, key: &str) -> Result<Option<Vec<u8>>, PortError> {
        Store::kv_get(self, tenant, plugin, key).map_err(port_error)
    }
    fn kv_set(&self, tenant: &str, plugin: &str, key: &str, value: &[u8]) -> Result<(), PortError> {
        Store::kv_set(self, tenant, plugin, key, value).map_err(port_error)
    }
    fn kv_delete(&self, tenant: &str, plugin: &str, key: &str) -> Result<bool, PortError> {
        Store::kv_delete(self, tenant, plugin, key).map_err(port_error)
    }
    fn kv_compare_and_set(
        &self,
        tenant: &str,
        plugin: &str,
        key: &str,
        expected: Option<&[u8]>,
        value: &[u8],
    ) -> Result<bool, PortError> {
        Store::kv_compare_and_set(self, tenant, plugin, key, expected, value).map_err(port_error)
    }
}

impl SwapHistory for Store {
    fn record_swap(&self, record: &SwapRecord) -> Result<(), PortError> {
        Store::record_swap(self, record).map_err(port_error)
    }
    fn swaps(&self, limit: usize) -> Result<Vec<SwapRecord>, PortError> {
        Store::swaps(self, limit).map_err(port_error)
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kv_is_scoped_by_tenant_and_plugin_and_durable() {
        let dir = tempfile::tempdir().unwrap();
        let (db, key) = (dir.path().join("s.db"), dir.path().join("s.key"));
        {
            let s = Store::open(&db, &key).unwrap();
            s.kv_set("acme", "loyalty", "4761739001010119", b"120")
                .unwrap();
            assert_eq!(
                s.kv_get("acme", "loyalty", "4761739001010119").unwrap(),
                Some(b"120".to_vec())
            );
            assert_eq!(
                s.kv_get("other", "loyalty", "4761739001010119").unwrap(),
                None
            );
            assert_eq!(
                s.kv_get("acme", "coupons", "4761739001010119").unwrap(),
                None
            );
        }
        let s = Store::open(&db, &key).unwrap();
        assert_eq!(
            s.kv_get("acme", "loyalty", "4761739001010119").unwrap(),
            Some(b"120".to_vec())
        );
        assert!(s.kv_delete("acme", "loyalty", "4761739001010119").unwrap());
        assert!(!s.kv_delete("acme", "loyalty", "4761739001010119").unwrap());
        drop(s);
        // Nothing of the key or the value rests in plaintext.
        let mut raw = std::fs::read(&db).unwrap();
        raw.extend(std::fs::read(dir.path().join("s.db-wal")).unwrap_or_default());
        assert!(!raw.windows(16).any(|w| w == b"4761739001010119"));
    }

    #[test]
    fn compare_and_set_is_atomic_per_expectation() {
        let s = Store::in_memory();
        assert!(s.kv_compare_and_set("t", "p", "k", None, b"1").unwrap());
        assert!(!s.kv_compare_and_set("t", "p", "k", None, b"2").unwrap());
        assert!(
            !s.kv_compare_and_set("t", "p", "k", Some(b"0"), b"2")
                .unwrap()
        );
        assert!(
            s.kv_compare_and_set("t", "p", "k", Some(b"1"), b"2")
                .unwrap()
        );
        assert_eq!(s.kv_get("t", "p", "k").unwrap(), Some(b"2".to_vec()));
        assert!(matches!(
            s.kv_set("t", "p", "k", &vec![0; MAX_VALUE_LEN + 1]),
            Err(StoreError::ValueTooLarge(_))
        ));
    }

    #[test]
    fn swaps_are_recorded_in_order() {
        let s = Store::in_memory();
        for (i, action) in ["swap", "rollback"].iter().enumerate() {
            s.record_swap(&SwapRecord {
                at_ms: i as i64,
                plugin: "validate".into(),
                action: action.to_string(),
                old_hash: "a".into(),
                new_hash: "b".into(),
                actor: "ops".into(),
            })
            .unwrap();
        }
        let all = s.swaps(10).unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all[1].action, "rollback");
        assert_eq!(s.swaps(1).unwrap()[0].action, "rollback");
    }
}
