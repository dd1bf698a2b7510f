//! The plugins' key/value data on the keyring, and the swap history.
//!
//! Keys are stored only as keyed hashes (HMAC-SHA-256 under the tenant's
//! kv lookup key over tenant, plugin and key), values encrypted with the
//! tenant's data key, bound to (tenant, plugin, key hash). Writes go
//! through the writer and block until committed (plugin host calls are
//! synchronous); compare-and-set runs as one writer job, so it is atomic.
//! Values are never cached in memory: a read sees every committed write,
//! another process's included (see `writer` for the keyring).

use rusqlite::{OptionalExtension, params};
use switchyard_engine::ports::{KvStore, PortError, SwapHistory, SwapRecord};

use crate::error::SqlContext;
use crate::keyring::{Purpose, aad};
use crate::store::SqliteStore;
use crate::writer::Batch;
use crate::{StoreError, now_ms};

/// Largest plugin value.
pub const MAX_VALUE_LEN: usize = 64 * 1024;

/// The identity (associated data) of a kv value.
pub(crate) fn identity(tenant: &str, plugin: &str, key_hash: &[u8]) -> Vec<u8> {
    aad(&[
        b"kv",
        b"value",
        tenant.as_bytes(),
        plugin.as_bytes(),
        key_hash,
    ])
}

pub(crate) fn too_large(value: &[u8]) -> Result<(), StoreError> {
    if value.len() > MAX_VALUE_LEN {
        return Err(StoreError::Invalid(format!(
            "value of {} bytes is over the {MAX_VALUE_LEN}-byte limit",
            value.len()
        )));
    }
    Ok(())
}

fn upsert(
    b: &mut Batch<'_>,
    tenant: &str,
    plugin: &str,
    key_hash: &[u8],
    value: &[u8],
) -> Result<(), StoreError> {
    let (key_id, sealed) = b
        .keyring
        .seal(tenant, &identity(tenant, plugin, key_hash), value)?;
    let n = b
        .conn
        .prepare_cached(
            "INSERT INTO kv (tenant, plugin, key_hash, value, updated, key_id)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (tenant, plugin, key_hash) DO UPDATE SET
                value = excluded.value, updated = excluded.updated, key_id = excluded.key_id",
        )
        .and_then(|mut s| s.execute(params![tenant, plugin, key_hash, sealed, now_ms(), key_id]))
        .what("writing a plugin value")?;
    b.wrote(n);
    Ok(())
}

fn current(
    b: &Batch<'_>,
    tenant: &str,
    plugin: &str,
    key_hash: &[u8],
) -> Result<Option<Vec<u8>>, StoreError> {
    let sealed: Option<Vec<u8>> = b
        .conn
        .prepare_cached("SELECT value FROM kv WHERE tenant = ?1 AND plugin = ?2 AND key_hash = ?3")
        .and_then(|mut s| {
            s.query_row(params![tenant, plugin, key_hash], |r| r.get(0))
                .optional()
        })
        .what("reading a plugin value")?;
    sealed
        .map(|s| b.keyring.open(&s, &identity(tenant, plugin, key_hash)))
        .transpose()
}

impl SqliteStore {
    /// The hash of a kv key; `None` when the tenant has no kv lookup key
    /// yet (and so no values), unless `create`.
    fn key_hash(
        &self,
        tenant: &str,
        plugin: &str,
        key: &str,
        create: bool,
    ) -> Result<Option<[u8; 32]>, StoreError> {
        if create {
            self.ensure_tenant(tenant)?;
        }
        // Not yet durable is fine for a read: no value exists under a key
        // that is not committed.
        Ok(self
            .keyring
            .lookup_any(tenant, Purpose::Kv)
            .map(|s| s.hash(&[tenant.as_bytes(), plugin.as_bytes(), key.as_bytes()])))
    }

    fn kv_get_now(
        &self,
        tenant: &str,
        plugin: &str,
        key: &str,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        if self.writer.is_closed() {
            return Err(StoreError::Closed);
        }
        let hash = match self.key_hash(tenant, plugin, key, false)? {
            Some(hash) => hash,
            // Another process may have created the tenant's keys.
            None if self.keys_created_elsewhere()? => {
                self.refresh_keys()?;
                match self.key_hash(tenant, plugin, key, false)? {
                    Some(hash) => hash,
                    None => return Ok(None),
                }
            }
            None => return Ok(None),
        };
        self.read(|conn| {
            let sealed: Option<Vec<u8>> = conn
                .prepare_cached(
                    "SELECT value FROM kv WHERE tenant = ?1 AND plugin = ?2 AND key_hash = ?3",
                )
                .and_then(|mut s| {
                    s.query_row(params![tenant, plugin, &hash[..]], |r| r.get(0))
                        .optional()
                })
                .what("reading a plugin value")?;
            sealed
                .map(|s| self.keyring.open(&s, &identity(tenant, plugin, &hash)))
                .transpose()
        })
    }

    /// Every value `plugin` stored for `tenant`, decrypted, in no
    /// particular order (keys are stored only as hashes, so only values
    /// come back). Read through the read pool, one snapshot.
    pub fn kv_values(&self, tenant: &str, plugin: &str) -> Result<Vec<Vec<u8>>, StoreError> {
        if self.writer.is_closed() {
            return Err(StoreError::Closed);
        }
        self.read(|conn| {
            let rows: Vec<(Vec<u8>, Vec<u8>)> = conn
                .prepare_cached("SELECT key_hash, value FROM kv WHERE tenant = ?1 AND plugin = ?2")
                .and_then(|mut s| {
                    s.query_map(params![tenant, plugin], |r| Ok((r.get(0)?, r.get(1)?)))?
                        .collect()
                })
                .what("reading a plugin's values")?;
            rows.iter()
                .map(|(hash, sealed)| self.keyring.open(sealed, &identity(tenant, plugin, hash)))
                .collect()
        })
    }

    fn kv_write<T: Send + 'static>(
        &self,
        tenant: &str,
        plugin: &str,
        key: &str,
        atomic: bool,
        work: impl FnOnce(&mut Batch<'_>, &str, &str, &[u8]) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, PortError> {
        let hash = self
            .key_hash(tenant, plugin, key, true)
            .and_then(|h| {
                h.ok_or_else(|| StoreError::Invalid(format!("tenant {tenant} has no kv key")))
            })
            .map_err(|e| self.port(e))?;
        let (tenant, plugin) = (tenant.to_string(), plugin.to_string());
        self.writer
            .run_blocking(atomic, move |b| work(b, &tenant, &plugin, &hash))
            .map_err(|e| self.port(e))
    }
}

impl KvStore for SqliteStore {
    fn kv_get(&self, tenant: &str, plugin: &str, key: &str) -> Result<Option<Vec<u8>>, PortError> {
        self.kv_get_now(tenant, plugin, key)
            .map_err(|e| self.port(e))
    }

    fn kv_set(&self, tenant: &str, plugin: &str, key: &str, value: &[u8]) -> Result<(), PortError> {
        too_large(value).map_err(|e| self.port(e))?;
        let value = value.to_vec();
        self.kv_write(tenant, plugin, key, false, move |b, t, p, h| {
            upsert(b, t, p, h, &value)
        })
    }

    fn kv_delete(&self, tenant: &str, plugin: &str, key: &str) -> Result<bool, PortError> {
        if self.keyring.lookup_any(tenant, Purpose::Kv).is_none()
            && !self.writer.is_closed()
            && !self.keys_created_elsewhere().map_err(|e| self.port(e))?
        {
            return Ok(false);
        }
        self.kv_write(tenant, plugin, key, false, |b, t, p, h| {
            let n = b
                .conn
                .prepare_cached(
                    "DELETE FROM kv WHERE tenant = ?1 AND plugin = ?2 AND key_hash = ?3",
                )
                .and_then(|mut s| s.execute(params![t, p, h]))
                .what("removing a plugin value")?;
            b.wrote(n);
            Ok(n > 0)
        })
    }

    fn kv_compare_and_set(
        &self,
        tenant: &str,
        plugin: &str,
        key: &str,
        expected: Option<&[u8]>,
        value: &[u8],
    ) -> Result<bool, PortError> {
        too_large(value).map_err(|e| self.port(e))?;
        let (expected, value) = (expected.map(<[u8]>::to_vec), value.to_vec());
        self.kv_write(tenant, plugin, key, true, move |b, t, p, h| {
            if current(b, t, p, h)? != expected {
                return Ok(false);
            }
            upsert(b, t, p, h, &value)?;
            Ok(true)
        })
    }

    fn kv_values(&self, tenant: &str, plugin: &str) -> Result<Vec<Vec<u8>>, PortError> {
        SqliteStore::kv_values(self, tenant, plugin).map_err(|e| self.port(e))
    }
}

impl SwapHistory for SqliteStore {
    fn record_swap(&self, record: &SwapRecord) -> Result<(), PortError> {
        let r = record.clone();
        self.writer
            .run_blocking(false, move |b| {
                let n = b
                    .conn
                    .prepare_cached(
                        "INSERT INTO swaps (at_ms, plugin, action, old_hash, new_hash, actor)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    )
                    .and_then(|mut s| {
                        s.execute(params![
                            r.at_ms, r.plugin, r.action, r.old_hash, r.new_hash, r.actor
                        ])
                    })
                    .what("recording a plugin swap")?;
                b.wrote(n);
                if let Some(event_type) = crate::outbox::swap_event_type(&r.action) {
                    let data = crate::outbox::swap_payload(&r);
                    crate::outbox::insert_event(
                        b.conn,
                        crate::outbox::SWITCH_TENANT,
                        event_type,
                        &data,
                    )
                    .what("writing a webhook event")?;
                }
                Ok(())
            })
            .map_err(|e| self.port(e))
    }

    fn swaps(&self, limit: usize) -> Result<Vec<SwapRecord>, PortError> {
        let mut out: Vec<SwapRecord> = self
            .read(|conn| {
                conn.prepare_cached(
                    "SELECT at_ms, plugin, action, old_hash, new_hash, actor FROM swaps
                     ORDER BY id DESC LIMIT ?1",
                )
                .and_then(|mut s| {
                    s.query_map([limit as i64], |r| {
                        Ok(SwapRecord {
                            at_ms: r.get(0)?,
                            plugin: r.get(1)?,
                            action: r.get(2)?,
                            old_hash: r.get(3)?,
                            new_hash: r.get(4)?,
                            actor: r.get(5)?,
                        })
                    })?
                    .collect()
                })
                .what("reading the swap history")
            })
            .map_err(|e| self.port(e))?;
        out.reverse();
        Ok(out)
    }
}
