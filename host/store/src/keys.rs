//! The [`Keyring`] port: data key rotation and background re-encryption,
//! KEK rotation, status, the PAN token.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use rusqlite::params;
use switchyard_engine::ports::{DataKeyStatus, Keyring, KeyringStatus, PortError, PortFuture};

use crate::error::SqlContext;
use crate::kek::{self, Kek, KekStep};
use crate::keyring::parse_state;
use crate::store::SqliteStore;
use crate::writer::Batch;
use crate::{StoreError, schema, tranlog};

/// A tranlog blob column.
type Blob = Option<Vec<u8>>;

/// Rows one re-encryption job rewrites (keeps each transaction short).
const CHUNK: usize = 128;

/// Re-encrypts up to `max` rows under retired keys with their tenant's
/// active key; destroys retired keys no row needs any more.
fn reencrypt_chunk(b: &mut Batch<'_>, max: usize) -> Result<u64, StoreError> {
    let retired = b.keyring.retired();
    let mut done = 0usize;
    for (key, tenant) in &retired {
        if done >= max {
            break;
        }
        let rows: Vec<(i64, Blob, Blob)> = b
            .conn
            .prepare_cached("SELECT id, request, response FROM tranlog WHERE key_id = ?1 LIMIT ?2")
            .and_then(|mut s| {
                s.query_map(params![key, (max - done) as i64], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })?
                .collect()
            })
            .what("finding rows under a retired key")?;
        for (id, request, response) in rows {
            let mut active = None;
            let mut reseal = |column: &str, blob: Option<Vec<u8>>| -> Result<_, StoreError> {
                let Some(blob) = blob else { return Ok(None) };
                let identity = tranlog::identity(column, tenant, id);
                let plain = b.keyring.open(&blob, &identity)?;
                let (k, sealed) = b.keyring.seal(tenant, &identity, &plain)?;
                active = Some(k);
                Ok(Some(sealed))
            };
            let request = reseal("request", request)?;
            let response = reseal("response", response)?;
            let n = b
                .conn
                .prepare_cached(
                    "UPDATE tranlog SET request = ?2, response = ?3, key_id = ?4 WHERE id = ?1",
                )
                .and_then(|mut s| s.execute(params![id, request, response, active]))
                .what("re-encrypting a tranlog row")?;
            b.wrote(n);
            done += 1;
        }
        if done >= max {
            break;
        }
        let values: Vec<(String, Vec<u8>, Vec<u8>)> = b
            .conn
            .prepare_cached("SELECT plugin, key_hash, value FROM kv WHERE key_id = ?1 LIMIT ?2")
            .and_then(|mut s| {
                s.query_map(params![key, (max - done) as i64], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })?
                .collect()
            })
            .what("finding plugin values under a retired key")?;
        for (plugin, key_hash, value) in values {
            let identity = crate::kv::identity(tenant, &plugin, &key_hash);
            let plain = b.keyring.open(&value, &identity)?;
            let (k, sealed) = b.keyring.seal(tenant, &identity, &plain)?;
            let n = b
                .conn
                .prepare_cached(
                    "UPDATE kv SET value = ?4, key_id = ?5
                     WHERE tenant = ?1 AND plugin = ?2 AND key_hash = ?3",
                )
                .and_then(|mut s| s.execute(params![tenant, plugin, key_hash, sealed, k]))
                .what("re-encrypting a plugin value")?;
            b.wrote(n);
            done += 1;
        }
    }
    if done < max {
        // A row's key_id is the oldest key its blobs use: a tenant with no
        // row under any retired key needs none of them.
        let mut tenants: Vec<&String> = retired.iter().map(|(_, t)| t).collect();
        tenants.dedup();
        for tenant in tenants {
            let keys: Vec<i64> = retired
                .iter()
                .filter(|(_, t)| t == tenant)
                .map(|(k, _)| *k)
                .collect();
            let mut used = false;
            for key in &keys {
                used |= rows_under(b.conn, *key)? > 0;
            }
            if !used {
                for key in keys {
                    b.keyring.destroy(b.conn, key)?;
                }
            }
        }
    }
    Ok(done as u64)
}

/// Rows whose blobs a data key encrypts.
fn rows_under(conn: &rusqlite::Connection, key: i64) -> Result<u64, StoreError> {
    let count = |sql: &str| -> Result<u64, StoreError> {
        conn.prepare_cached(sql)
            .and_then(|mut s| s.query_row([key], |r| r.get::<_, i64>(0)))
            .map(|n| n as u64)
            .what("counting rows under a data key")
    };
    Ok(count("SELECT count(*) FROM tranlog WHERE key_id = ?1")?
        + count("SELECT count(*) FROM kv WHERE key_id = ?1")?)
}

impl SqliteStore {
    /// Rotates the KEK, stopping after `stop` (tests simulate crashes).
    pub(crate) fn rotate_kek_until(&self, stop: KekStep) -> Result<String, StoreError> {
        if self.writer.is_closed() {
            return Err(StoreError::Closed);
        }
        let _one_at_a_time = self.kek_rotation.lock();
        let new = Arc::new(Kek::generate());
        let fingerprint = new.fingerprint.clone();
        kek::write_next(&self.kek_path, &new)?;
        if stop == KekStep::NextWritten {
            return Ok(fingerprint);
        }
        let keyring = self.keyring.clone();
        let rewrapped = self.writer.run_blocking(true, move |b| {
            let n = b.keyring.rewrap_all(b.conn, &new)?;
            let data = format!(
                "{{\"key\":\"kek\",\"fingerprint\":{}}}",
                crate::outbox::json_str(&new.fingerprint)
            );
            crate::outbox::insert_event(b.conn, crate::outbox::SWITCH_TENANT, "key.rotated", &data)
                .what("writing a webhook event")?;
            b.on_commit(move || keyring.set_kek(new));
            Ok(n)
        })?;
        if stop == KekStep::Rewrapped {
            return Ok(fingerprint);
        }
        kek::install_next(&self.kek_path)?;
        tracing::info!(kek = %fingerprint, keys = rewrapped, "rotated the key-encryption key");
        Ok(fingerprint)
    }

    /// Re-encrypts in the background until no row is under a retired key.
    pub(crate) fn start_reencryption(&self) {
        if self.reencrypting.swap(true, Ordering::AcqRel) {
            return;
        }
        let weak = self.me.clone();
        let flag = self.reencrypting.clone();
        let spawned = std::thread::Builder::new()
            .name("store-reencrypt".into())
            .spawn(move || {
                loop {
                    let Some(store) = weak.upgrade() else { break };
                    if store.writer.is_closed() {
                        break;
                    }
                    match futures::executor::block_on(store.reencrypt(CHUNK * 4)) {
                        Ok(0) => {
                            flag.store(false, Ordering::Release);
                            // A rotation in between would have found the flag set.
                            if store.keyring.retired().is_empty()
                                || flag.swap(true, Ordering::AcqRel)
                            {
                                return;
                            }
                        }
                        Ok(_) => {}
                        Err(e) => {
                            tracing::warn!(error = %e, "background re-encryption stopped");
                            break;
                        }
                    }
                    drop(store);
                    // Leave the writer to the traffic between chunks.
                    std::thread::sleep(Duration::from_millis(2));
                }
                flag.store(false, Ordering::Release);
            });
        if spawned.is_err() {
            self.reencrypting.store(false, Ordering::Release);
        }
    }

    fn status_now(&self) -> Result<KeyringStatus, StoreError> {
        let kek = self.keyring.kek();
        self.read(|conn| {
            let created: Option<i64> =
                schema::meta(conn, "kek_created_ms")?.and_then(|v| v.parse().ok());
            let keys: Vec<(i64, String, String, i64, String)> = conn
                .prepare_cached(
                    "SELECT id, tenant, state, created_ms, kek FROM data_keys
                     WHERE purpose = 'data' ORDER BY id",
                )
                .and_then(|mut s| {
                    s.query_map([], |r| {
                        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
                    })?
                    .collect()
                })
                .what("reading the data keys")?;
            let mut data_keys = Vec::with_capacity(keys.len());
            for (id, tenant, state, created_ms, kek) in keys {
                data_keys.push(DataKeyStatus {
                    id,
                    tenant,
                    state: parse_state(&state).ok_or_else(|| {
                        StoreError::Corrupt(format!("data key {id}: state {state}"))
                    })?,
                    created_ms,
                    kek,
                    rows: rows_under(conn, id)?,
                });
            }
            Ok(KeyringStatus {
                kek: kek.fingerprint.clone(),
                kek_source: self.kek_path.display().to_string(),
                kek_created_ms: created,
                data_keys,
            })
        })
    }
}

impl Keyring for SqliteStore {
    fn rotate(&self, tenant: Option<String>) -> PortFuture<Vec<i64>> {
        let keyring = self.keyring.clone();
        let work = self.writer.submit(
            true,
            move |b| {
                let tenants = match tenant {
                    Some(t) => vec![t],
                    None => b.keyring.tenants(),
                };
                let mut ids = Vec::with_capacity(tenants.len());
                for t in &tenants {
                    if b.keyring.ensure_tenant(b.conn, t)? {
                        let keyring = keyring.clone();
                        let t = t.clone();
                        b.on_commit(move || keyring.mark_durable(&t));
                    }
                    let id = b.keyring.rotate(b.conn, t)?;
                    let data = format!(
                        "{{\"key\":\"data\",\"tenant\":{},\"key_id\":{id}}}",
                        crate::outbox::json_str(t)
                    );
                    crate::outbox::insert_event(b.conn, t, "key.rotated", &data)
                        .what("writing a webhook event")?;
                    ids.push(id);
                }
                Ok(ids)
            },
            None,
        );
        let db = self.db.clone();
        let me = self.me.clone();
        Box::pin(async move {
            let ids = match work {
                Ok(rx) => rx.await.unwrap_or(Err(StoreError::Closed)),
                Err(e) => Err(e),
            }
            .map_err(|e| e.into_port(&db))?;
            if let Some(store) = me.upgrade() {
                store.start_reencryption();
            }
            Ok(ids)
        })
    }

    fn rotate_kek(&self) -> PortFuture<String> {
        self.ready(self.rotate_kek_until(KekStep::Renamed))
    }

    fn reencrypt(&self, limit: usize) -> PortFuture<u64> {
        let writer_jobs = self.me.clone();
        let db = self.db.clone();
        Box::pin(async move {
            let mut total = 0u64;
            loop {
                let want = (limit as u64 - total).min(CHUNK as u64) as usize;
                let store = writer_jobs.upgrade().ok_or(PortError::Closed)?;
                let rx = store
                    .writer
                    .submit(true, move |b| reencrypt_chunk(b, want.max(1)), None)
                    .map_err(|e| e.into_port(&db))?;
                drop(store);
                let n = rx
                    .await
                    .unwrap_or(Err(StoreError::Closed))
                    .map_err(|e| e.into_port(&db))?;
                total += n;
                if n == 0 || total >= limit as u64 {
                    return Ok(total);
                }
            }
        })
    }

    fn status(&self) -> PortFuture<KeyringStatus> {
        self.ready(self.status_now())
    }

    fn pan_token(&self, tenant: &str, pan: &str) -> Result<[u8; 32], PortError> {
        self.pan_token_of(tenant, pan).map_err(|e| self.port(e))
    }
}
