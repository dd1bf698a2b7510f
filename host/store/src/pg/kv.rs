//! Plugin key/value data, velocity counters, the swap history and the
//! keyring's operations on PostgreSQL.
//!
//! - kv: keys only as keyed hashes, values sealed under the tenant's data
//!   key; compare-and-set reads the current value `FOR UPDATE` (or inserts
//!   with `ON CONFLICT DO NOTHING` when it expects none), so two nodes'
//!   compare-and-sets of one key serialize and exactly one of two that
//!   expect the same value wins;
//! - counters: one row per (counter, bucket); an add is one upsert that
//!   returns the bucket's new total plus the window's other buckets, so
//!   concurrent adds on any nodes each see all the adds committed before
//!   theirs. Counter changes commit with `synchronous_commit = off`: the
//!   outcome of the transaction that made them is a durable commit after
//!   them, and flushes them (the WAL is flushed in order);
//! - keys: rotation retires the active key and creates one under the key
//!   lock; every node reloads its keys when `meta.keys_changed` moves (its
//!   heartbeat reads it) or when it meets a key it has not loaded; a
//!   retired key is destroyed once no row needs it and it has been retired
//!   a minute (every node has stopped sealing with it by then).
//! - webhook events (as on SQLite): a swap or rollback record and its
//!   `plugin.swapped` / `plugin.rolled_back`, a data-key rotation and its
//!   `key.rotated` per tenant, commit in one transaction.

use switchyard_engine::ports::{
    CounterStore, DataKeyStatus, Keyring, KeyringStatus, KvStore, PortError, PortFuture,
    SwapHistory, SwapRecord,
};

use super::PgStore;
use crate::error::SqlContext;
use crate::keyring::{Purpose, parse_state};
use crate::kv::{identity, too_large};
use crate::tranlog::identity as tx_identity;
use crate::{StoreError, counters, now_ms};

/// How long a retired key stays before it may be destroyed.
const DESTROY_AFTER_MS: i64 = 60_000;

impl PgStore {
    async fn kv_hash(&self, tenant: &str, plugin: &str, key: &str) -> Result<[u8; 32], StoreError> {
        self.ensure_tenant(tenant).await?;
        let secret = self
            .keyring
            .lookup(tenant, Purpose::Kv)
            .ok_or_else(|| StoreError::Invalid(format!("tenant {tenant} has no kv key")))?;
        Ok(secret.hash(&[tenant.as_bytes(), plugin.as_bytes(), key.as_bytes()]))
    }

    fn seal_kv(
        &self,
        tenant: &str,
        plugin: &str,
        hash: &[u8],
        value: &[u8],
    ) -> Result<(i64, Vec<u8>), StoreError> {
        self.keyring
            .seal(tenant, &identity(tenant, plugin, hash), value)
    }

    async fn kv_cas(
        &self,
        tenant: String,
        plugin: String,
        key: String,
        expected: Option<Vec<u8>>,
        value: Vec<u8>,
    ) -> Result<bool, StoreError> {
        too_large(&value)?;
        let hash = self.kv_hash(&tenant, &plugin, &key).await?;
        let (key_id, sealed) = self.seal_kv(&tenant, &plugin, &hash, &value)?;
        let mut client = self.client().await?;
        let tx = client
            .transaction()
            .await
            .what("compare-and-set of a plugin value")?;
        let current = tx
            .query_opt(
                "SELECT value FROM kv WHERE tenant = $1 AND plugin = $2 AND key_hash = $3 FOR UPDATE",
                &[&tenant, &plugin, &&hash[..]],
            )
            .await
            .what("reading a plugin value")?;
        let stored = match (current, &expected) {
            (None, None) => {
                tx.execute(
                    "INSERT INTO kv (tenant, plugin, key_hash, value, updated, key_id)
                     VALUES ($1, $2, $3, $4, $5, $6)
                     ON CONFLICT (tenant, plugin, key_hash) DO NOTHING",
                    &[&tenant, &plugin, &&hash[..], &sealed, &now_ms(), &key_id],
                )
                .await
                .what("writing a plugin value")?
                    == 1
            }
            (Some(row), Some(expected)) => {
                let blob: Vec<u8> = row.get(0);
                let current = self
                    .open_sealed(&blob, &identity(&tenant, &plugin, &hash))
                    .await?;
                if &current != expected {
                    false
                } else {
                    tx.execute(
                        "UPDATE kv SET value = $4, updated = $5, key_id = $6
                         WHERE tenant = $1 AND plugin = $2 AND key_hash = $3",
                        &[&tenant, &plugin, &&hash[..], &sealed, &now_ms(), &key_id],
                    )
                    .await
                    .what("writing a plugin value")?;
                    true
                }
            }
            _ => false,
        };
        tx.commit()
            .await
            .what("compare-and-set of a plugin value")?;
        Ok(stored)
    }

    async fn count(
        &self,
        scope: (String, String),
        name: String,
        key: String,
        delta: i64,
        window: u32,
    ) -> Result<i64, StoreError> {
        if window == 0 || window > counters::MAX_WINDOW_SECONDS {
            return Err(StoreError::Invalid(
                counters::CounterError::Window(window).to_string(),
            ));
        }
        let scoped = (scope.0.as_str(), scope.1.as_str());
        let counter = counters::counter_id(&self.counters_secret, scoped, &name, &key, window);
        let now = counters::now_s();
        let width = counters::bucket_width(window);
        let bucket = now / width;
        let expires = counters::expires(bucket, width, u64::from(window)) as i64;
        let (now, width, bucket, window) =
            (now as i64, width as i64, bucket as i64, i64::from(window));
        let client = self.client().await?;
        if delta == 0 {
            return Ok(client
                .query_one(
                    "SELECT coalesce(sum(total), 0)::BIGINT FROM counters WHERE counter = $1 AND expires > $2",
                    &[&&counter[..], &now],
                )
                .await
                .what("summing a counter")?
                .get(0));
        }
        let add = client
            .prepare_cached(
                "WITH up AS (
                    INSERT INTO counters (counter, bucket, tenant, plugin, width_s, window_s,
                        expires, total)
                    VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                    ON CONFLICT (counter, bucket) DO UPDATE SET total = counters.total + EXCLUDED.total
                    RETURNING total)
                 SELECT (SELECT total FROM up) + coalesce((SELECT sum(total) FROM counters
                     WHERE counter = $1 AND bucket <> $2 AND expires > $9), 0)::BIGINT",
            )
            .await
            .what("preparing the counter's upsert")?;
        let counter = &counter[..];
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 9] = [
            &counter, &bucket, &scope.0, &scope.1, &width, &window, &expires, &delta, &now,
        ];
        let (b, sum, end) = futures::join!(
            client.batch_execute("BEGIN; SET LOCAL synchronous_commit TO OFF"),
            client.query_one(&add, &params),
            client.batch_execute("COMMIT")
        );
        match b.and(end).and(sum) {
            Ok(row) => Ok(row.get(0)),
            Err(e) => {
                let _ = client.batch_execute("ROLLBACK").await;
                Err(e).what("adding to a counter")
            }
        }
    }

    /// Deletes up to `limit` counter buckets whose window has passed.
    pub fn purge_counters(&self, limit: usize) -> Result<u64, PortError> {
        let limit = limit as i64;
        self.blocking(move |me| async move {
            let client = me.client().await?;
            client
                .execute(
                    "DELETE FROM counters WHERE ctid IN (
                        SELECT ctid FROM counters WHERE expires <= $1 LIMIT $2)",
                    &[&(counters::now_s() as i64), &limit],
                )
                .await
                .what("purging expired counters")
        })
    }

    async fn rotate_async(&self, tenant: Option<String>) -> Result<Vec<i64>, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.what("rotating data keys")?;
        tx.execute(
            "SELECT pg_advisory_xact_lock($1)",
            &[&super::schema::KEYS_LOCK],
        )
        .await
        .what("waiting for the key lock")?;
        let tenants: Vec<String> = match tenant {
            Some(t) => vec![t],
            None => tx
                .query(
                    "SELECT DISTINCT tenant FROM data_keys WHERE purpose = 'data' AND state = 'active'
                     ORDER BY tenant",
                    &[],
                )
                .await
                .what("reading the tenants")?
                .iter()
                .map(|r| r.get(0))
                .collect(),
        };
        let mut out = Vec::new();
        for t in &tenants {
            tx.execute(
                "UPDATE data_keys SET state = 'retired', retired_ms = $2
                 WHERE tenant = $1 AND purpose = 'data' AND state = 'active'",
                &[t, &now_ms()],
            )
            .await
            .what("retiring a data key")?;
            let id = super::insert_key(&tx, &self.keyring, t, Purpose::Data).await?;
            // As on SQLite: one event per tenant, in the rotation's transaction.
            let data = format!(
                "{{\"key\":\"data\",\"tenant\":{},\"key_id\":{id}}}",
                crate::outbox::json_str(t)
            );
            super::outbox::insert_event(&*tx, t, "key.rotated", &data).await?;
            out.push(id);
        }
        keys_changed(&tx).await?;
        tx.commit().await.what("rotating data keys")?;
        drop(client);
        self.reload_keys().await?;
        tracing::info!(keys = ?out, "rotated data keys");
        Ok(out)
    }

    /// Re-encrypts up to `limit` rows under retired keys; destroys retired
    /// keys no row needs.
    async fn reencrypt_async(&self, limit: usize) -> Result<u64, StoreError> {
        let retired = self.keyring.retired();
        let mut done = 0u64;
        for (key, tenant) in retired {
            if done as usize >= limit {
                break;
            }
            let left = (limit - done as usize) as i64;
            let client = self.client().await?;
            let rows = client
                .query(
                    "SELECT id, request, response FROM tranlog WHERE key_id = $1 LIMIT $2",
                    &[&key, &left],
                )
                .await
                .what("reading rows under a retired key")?;
            for r in &rows {
                let id: i64 = r.get(0);
                let mut key_id = None;
                let mut reseal =
                    |column: &str, blob: Option<Vec<u8>>| -> Result<Option<Vec<u8>>, StoreError> {
                        match blob {
                            Some(b) => {
                                let identity = tx_identity(column, &tenant, id);
                                let plain = self.keyring.open(&b, &identity)?;
                                let (k, sealed) = self.keyring.seal(&tenant, &identity, &plain)?;
                                key_id = Some(k);
                                Ok(Some(sealed))
                            }
                            None => Ok(None),
                        }
                    };
                let request = reseal("request", r.get(1))?;
                let response = reseal("response", r.get(2))?;
                client
                    .execute(
                        "UPDATE tranlog SET request = coalesce($2, request),
                            response = coalesce($3, response), key_id = $4 WHERE id = $1",
                        &[&id, &request, &response, &key_id],
                    )
                    .await
                    .what("re-encrypting a tranlog row")?;
                done += 1;
            }
            let kv = client
                .query(
                    "SELECT plugin, key_hash, value FROM kv WHERE key_id = $1 LIMIT $2",
                    &[&key, &left],
                )
                .await
                .what("reading values under a retired key")?;
            for r in &kv {
                let (plugin, hash, blob): (String, Vec<u8>, Vec<u8>) =
                    (r.get(0), r.get(1), r.get(2));
                let identity = identity(&tenant, &plugin, &hash);
                let plain = self.keyring.open(&blob, &identity)?;
                let (k, sealed) = self.keyring.seal(&tenant, &identity, &plain)?;
                client
                    .execute(
                        "UPDATE kv SET value = $4, key_id = $5
                         WHERE tenant = $1 AND plugin = $2 AND key_hash = $3 AND key_id = $6",
                        &[&tenant, &plugin, &hash, &sealed, &k, &key],
                    )
                    .await
                    .what("re-encrypting a plugin value")?;
                done += 1;
            }
            if rows.is_empty() && kv.is_empty() {
                let destroyed = client
                    .execute(
                        "UPDATE data_keys SET state = 'destroyed', wrapped = NULL, destroyed_ms = $2
                         WHERE id = $1 AND state = 'retired' AND retired_ms < $2 - $3
                           AND NOT EXISTS (SELECT 1 FROM tranlog WHERE key_id = $1)
                           AND NOT EXISTS (SELECT 1 FROM kv WHERE key_id = $1)",
                        &[&key, &now_ms(), &DESTROY_AFTER_MS],
                    )
                    .await
                    .what("destroying a retired data key")?;
                if destroyed > 0 {
                    keys_changed(&client).await?;
                    tracing::info!(key, "destroyed a retired data key");
                    drop(client);
                    self.reload_keys().await?;
                }
            }
        }
        Ok(done)
    }

    async fn status_async(&self) -> Result<KeyringStatus, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT k.id, k.tenant, k.state, k.created_ms, k.kek,
                    (SELECT count(*) FROM tranlog t WHERE t.key_id = k.id)
                    + (SELECT count(*) FROM kv v WHERE v.key_id = k.id)
                 FROM data_keys k WHERE k.purpose = 'data' ORDER BY k.id",
                &[],
            )
            .await
            .what("reading the data keys")?;
        let data_keys = rows
            .iter()
            .map(|r| {
                let state: String = r.get(2);
                Ok(DataKeyStatus {
                    id: r.get(0),
                    tenant: r.get(1),
                    state: parse_state(&state)
                        .ok_or_else(|| StoreError::Corrupt(format!("data key state {state}")))?,
                    created_ms: r.get(3),
                    kek: r.get(4),
                    rows: r.get::<_, i64>(5) as u64,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let created = super::schema::meta(&client, "kek_created_ms")
            .await?
            .and_then(|v| v.parse().ok());
        Ok(KeyringStatus {
            kek: self.keyring.kek().fingerprint.clone(),
            kek_source: format!("{} (the same file on every node)", self.kek_path.display()),
            kek_created_ms: created,
            data_keys,
        })
    }

    /// Reloads the keys when another node changed them since `seen`;
    /// returns the value now (the heartbeat calls it).
    pub(crate) async fn follow_keys(
        &self,
        seen: Option<String>,
    ) -> Result<Option<String>, StoreError> {
        let now = {
            let client = self.client().await?;
            super::schema::meta(&client, "keys_changed").await?
        };
        if now != seen && seen.is_some() {
            self.reload_keys().await?;
        }
        Ok(now)
    }
}

/// Records that the keys changed (every node reloads them).
async fn keys_changed<C: deadpool_postgres::GenericClient>(c: &C) -> Result<(), StoreError> {
    c.execute(
        "INSERT INTO meta (name, value) VALUES ('keys_changed', $1)
         ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value",
        &[&format!(
            "{}-{}",
            now_ms(),
            hex::encode(crate::secret::random_nonce())
        )],
    )
    .await
    .what("recording a key change")?;
    Ok(())
}

impl KvStore for PgStore {
    fn kv_get(&self, tenant: &str, plugin: &str, key: &str) -> Result<Option<Vec<u8>>, PortError> {
        let (tenant, plugin, key) = (tenant.to_string(), plugin.to_string(), key.to_string());
        self.blocking(move |me| async move {
            let hash = me.kv_hash(&tenant, &plugin, &key).await?;
            let client = me.client().await?;
            let row = client
                .query_opt(
                    "SELECT value FROM kv WHERE tenant = $1 AND plugin = $2 AND key_hash = $3",
                    &[&tenant, &plugin, &&hash[..]],
                )
                .await
                .what("reading a plugin value")?;
            match row {
                Some(r) => {
                    let blob: Vec<u8> = r.get(0);
                    Ok(Some(
                        me.open_sealed(&blob, &identity(&tenant, &plugin, &hash))
                            .await?,
                    ))
                }
                None => Ok(None),
            }
        })
    }

    fn kv_set(&self, tenant: &str, plugin: &str, key: &str, value: &[u8]) -> Result<(), PortError> {
        let (tenant, plugin, key, value) = (
            tenant.to_string(),
            plugin.to_string(),
            key.to_string(),
            value.to_vec(),
        );
        self.blocking(move |me| async move {
            too_large(&value)?;
            let hash = me.kv_hash(&tenant, &plugin, &key).await?;
            let (key_id, sealed) = me.seal_kv(&tenant, &plugin, &hash, &value)?;
            let client = me.client().await?;
            client
                .execute(
                    "INSERT INTO kv (tenant, plugin, key_hash, value, updated, key_id)
                     VALUES ($1, $2, $3, $4, $5, $6)
                     ON CONFLICT (tenant, plugin, key_hash) DO UPDATE SET
                        value = EXCLUDED.value, updated = EXCLUDED.updated, key_id = EXCLUDED.key_id",
                    &[&tenant, &plugin, &&hash[..], &sealed, &now_ms(), &key_id],
                )
                .await
                .what("writing a plugin value")?;
            Ok(())
        })
    }

    fn kv_delete(&self, tenant: &str, plugin: &str, key: &str) -> Result<bool, PortError> {
        let (tenant, plugin, key) = (tenant.to_string(), plugin.to_string(), key.to_string());
        self.blocking(move |me| async move {
            let hash = me.kv_hash(&tenant, &plugin, &key).await?;
            let client = me.client().await?;
            let n = client
                .execute(
                    "DELETE FROM kv WHERE tenant = $1 AND plugin = $2 AND key_hash = $3",
                    &[&tenant, &plugin, &&hash[..]],
                )
                .await
                .what("removing a plugin value")?;
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
        let (tenant, plugin, key) = (tenant.to_string(), plugin.to_string(), key.to_string());
        let (expected, value) = (expected.map(<[u8]>::to_vec), value.to_vec());
        self.blocking(
            move |me| async move { me.kv_cas(tenant, plugin, key, expected, value).await },
        )
    }

    fn kv_values(&self, tenant: &str, plugin: &str) -> Result<Vec<Vec<u8>>, PortError> {
        let (tenant, plugin) = (tenant.to_string(), plugin.to_string());
        self.blocking(move |me| async move {
            let client = me.client().await?;
            let rows = client
                .query(
                    "SELECT key_hash, value FROM kv WHERE tenant = $1 AND plugin = $2",
                    &[&tenant, &plugin],
                )
                .await
                .what("reading a plugin's values")?;
            let mut out = Vec::with_capacity(rows.len());
            for r in &rows {
                let (hash, blob): (Vec<u8>, Vec<u8>) = (r.get(0), r.get(1));
                out.push(
                    me.open_sealed(&blob, &identity(&tenant, &plugin, &hash))
                        .await?,
                );
            }
            Ok(out)
        })
    }
}

impl CounterStore for PgStore {
    fn counter_add(
        &self,
        scope: (&str, &str),
        name: &str,
        key: &str,
        delta: i64,
        window_seconds: u32,
    ) -> Result<i64, PortError> {
        let scope = (scope.0.to_string(), scope.1.to_string());
        let (name, key) = (name.to_string(), key.to_string());
        self.blocking(
            move |me| async move { me.count(scope, name, key, delta, window_seconds).await },
        )
    }

    fn counter_sum(
        &self,
        scope: (&str, &str),
        name: &str,
        key: &str,
        window_seconds: u32,
    ) -> Result<i64, PortError> {
        self.counter_add(scope, name, key, 0, window_seconds)
    }
}

/// A swap or rollback as the shared history has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedSwap {
    /// Its row (increasing).
    pub id: i64,
    /// The plugin.
    pub plugin: String,
    /// `swap`, `rollback`, `swap (unchanged)`.
    pub action: String,
    /// SHA-256 of the version now live.
    pub new_hash: String,
    /// Who asked.
    pub actor: String,
    /// The node it was made on.
    pub node: String,
}

fn shared_swap(r: &tokio_postgres::Row) -> SharedSwap {
    SharedSwap {
        id: r.get(0),
        plugin: r.get(1),
        action: r.get(2),
        new_hash: r.get(3),
        actor: r.get(4),
        node: r.get(5),
    }
}

impl PgStore {
    /// The latest swap of each plugin, and the highest swap id (a node
    /// catching up at start).
    pub fn latest_swaps(&self) -> PortFuture<(i64, Vec<SharedSwap>)> {
        self.task(|me| async move {
            let client = me.client().await?;
            let latest = client
                .query(
                    "SELECT DISTINCT ON (plugin) id, plugin, action, new_hash, actor, node
                     FROM swaps WHERE action NOT LIKE '%(unchanged)'
                     ORDER BY plugin, id DESC",
                    &[],
                )
                .await
                .what("reading the latest swaps")?;
            let max: i64 = client
                .query_one("SELECT coalesce(max(id), 0) FROM swaps", &[])
                .await
                .what("reading the latest swaps")?
                .get(0);
            Ok((max, latest.iter().map(shared_swap).collect()))
        })
    }

    /// Swaps and rollbacks recorded after swap `after`, oldest first.
    pub fn swaps_after(&self, after: i64) -> PortFuture<Vec<SharedSwap>> {
        self.task(move |me| async move {
            let client = me.client().await?;
            let rows = client
                .query(
                    "SELECT id, plugin, action, new_hash, actor, node FROM swaps
                     WHERE id > $1 ORDER BY id LIMIT 1000",
                    &[&after],
                )
                .await
                .what("reading new swaps")?;
            Ok(rows.iter().map(shared_swap).collect())
        })
    }

    /// The component kept under `digest`.
    pub fn plugin_version(&self, digest: &str) -> PortFuture<Option<Vec<u8>>> {
        let digest = digest.to_string();
        self.task(move |me| async move {
            let client = me.client().await?;
            Ok(client
                .query_opt(
                    "SELECT wasm FROM plugin_versions WHERE digest = $1",
                    &[&digest],
                )
                .await
                .what("reading a plugin version")?
                .map(|r| r.get(0)))
        })
    }
}

impl SwapHistory for PgStore {
    fn keep_version(&self, digest: &str, wasm: &[u8]) -> Result<(), PortError> {
        let (digest, wasm) = (digest.to_string(), wasm.to_vec());
        self.blocking(move |me| async move {
            let client = me.client().await?;
            client
                .execute(
                    "INSERT INTO plugin_versions (digest, wasm, at_ms) VALUES ($1, $2, $3)
                     ON CONFLICT (digest) DO NOTHING",
                    &[&digest, &wasm, &now_ms()],
                )
                .await
                .what("keeping a plugin version")?;
            Ok(())
        })
    }

    fn record_swap(&self, record: &SwapRecord) -> Result<(), PortError> {
        let r = record.clone();
        self.blocking(move |me| async move {
            let mut client = me.client().await?;
            // The record and its webhook event (as on SQLite) commit together.
            let tx = client.transaction().await.what("recording a plugin swap")?;
            tx.execute(
                "INSERT INTO swaps (at_ms, plugin, action, old_hash, new_hash, actor, node)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
                &[
                    &r.at_ms,
                    &r.plugin,
                    &r.action,
                    &r.old_hash,
                    &r.new_hash,
                    &r.actor,
                    &me.node,
                ],
            )
            .await
            .what("recording a plugin swap")?;
            if let Some(event_type) = crate::outbox::swap_event_type(&r.action) {
                let data = crate::outbox::swap_payload(&r);
                super::outbox::insert_event(&*tx, crate::outbox::SWITCH_TENANT, event_type, &data)
                    .await?;
            }
            tx.commit().await.what("recording a plugin swap")
        })
    }

    fn swaps(&self, limit: usize) -> Result<Vec<SwapRecord>, PortError> {
        let limit = limit as i64;
        self.blocking(move |me| async move {
            let client = me.client().await?;
            let rows = client
                .query(
                    "SELECT at_ms, plugin, action, old_hash, new_hash, actor FROM swaps
                     ORDER BY id DESC LIMIT $1",
                    &[&limit],
                )
                .await
                .what("reading the swap history")?;
            let mut out: Vec<SwapRecord> = rows
                .iter()
                .map(|r| SwapRecord {
                    at_ms: r.get(0),
                    plugin: r.get(1),
                    action: r.get(2),
                    old_hash: r.get(3),
                    new_hash: r.get(4),
                    actor: r.get(5),
                })
                .collect();
            out.reverse();
            Ok(out)
        })
    }
}

impl Keyring for PgStore {
    fn rotate(&self, tenant: Option<String>) -> PortFuture<Vec<i64>> {
        self.task(move |me| async move { me.rotate_async(tenant).await })
    }

    fn rotate_kek(&self) -> PortFuture<String> {
        Box::pin(std::future::ready(Err(PortError::Invalid(
            "on PostgreSQL the key-encryption key is one file shared by every node: \
             rotating it from one node is not supported yet (see docs/deployment.md)"
                .into(),
        ))))
    }

    fn reencrypt(&self, limit: usize) -> PortFuture<u64> {
        self.task(move |me| async move { me.reencrypt_async(limit).await })
    }

    fn status(&self) -> PortFuture<KeyringStatus> {
        self.task(|me| async move { me.status_async().await })
    }

    fn pan_token(&self, tenant: &str, pan: &str) -> Result<[u8; 32], PortError> {
        let (tenant, pan) = (tenant.to_string(), pan.to_string());
        self.blocking(move |me| async move { me.pan_token_of(&tenant, &pan).await })
    }
}
