//! The keyring in memory and in the `data_keys` table: per-tenant data keys
//! (DEKs) that encrypt rows, per-tenant lookup keys that hash PANs and kv
//! keys, all stored only wrapped by the KEK.
//!
//! A row's ciphertext is `version (1) ‖ key id (u32 BE) ‖ nonce (12) ‖
//! ciphertext ‖ tag`, AES-256-GCM under the tenant's active data key, with
//! the header and the row's identity as associated data. Lookup keys are
//! never rotated by [`Keyring::rotate`] (their tokens would change); only
//! the KEK that wraps them rotates.
//!
//! Only the writer thread changes the keyring (it creates, rotates,
//! destroys keys inside its transactions); readers use it to decrypt. A
//! failed group commit reloads it from the database.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use parking_lot::RwLock;
use rusqlite::{Connection, params};
use switchyard_engine::ports::KeyState;

use crate::error::SqlContext;
use crate::kek::Kek;
use crate::secret::{Secret, random_key};
use crate::{StoreError, now_ms};

const VERSION: u8 = 1;
const HEADER_LEN: usize = 5;
const NONCE_LEN: usize = 12;

/// What a key in `data_keys` is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Purpose {
    /// Encrypts rows (rotated).
    Data,
    /// Keys the PAN token.
    Pan,
    /// Hashes plugin kv keys.
    Kv,
    /// Hashes counter keys (one, tenant "").
    Counters,
}

impl Purpose {
    pub(crate) const fn name(self) -> &'static str {
        match self {
            Purpose::Data => "data",
            Purpose::Pan => "pan-lookup",
            Purpose::Kv => "kv-lookup",
            Purpose::Counters => "counter-lookup",
        }
    }

    pub(crate) fn parse(name: &str) -> Option<Purpose> {
        [Purpose::Data, Purpose::Pan, Purpose::Kv, Purpose::Counters]
            .into_iter()
            .find(|p| p.name() == name)
    }
}

/// The keys a tenant needs before its first row.
pub(crate) const TENANT_KEYS: [Purpose; 3] = [Purpose::Data, Purpose::Pan, Purpose::Kv];

struct DataKey {
    tenant: String,
    state: KeyState,
    cipher: Aes256Gcm,
}

struct Lookup {
    secret: Secret,
    /// Committed: callers may use it (the writer may use it before).
    durable: bool,
}

#[derive(Default)]
struct Table {
    data: HashMap<i64, Arc<DataKey>>,
    destroyed: HashSet<i64>,
    active: HashMap<String, i64>,
    lookups: HashMap<(String, Purpose), Lookup>,
    next_id: i64,
}

/// One row of `data_keys` as stored.
pub(crate) struct KeyRow {
    pub(crate) id: i64,
    pub(crate) tenant: String,
    pub(crate) purpose: String,
    pub(crate) state: String,
    pub(crate) wrapped: Option<Vec<u8>>,
}

/// The store's keys.
pub(crate) struct Keyring {
    kek: RwLock<Arc<Kek>>,
    table: RwLock<Table>,
}

/// Length-prefixed concatenation of `parts` (associated data, hash input).
pub(crate) fn aad(parts: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::with_capacity(parts.iter().map(|p| p.len() + 4).sum());
    for p in parts {
        out.extend_from_slice(&(p.len() as u32).to_be_bytes());
        out.extend_from_slice(p);
    }
    out
}

impl Keyring {
    /// A keyring with no keys yet (a database without `data_keys`).
    pub(crate) fn empty(kek: Kek) -> Keyring {
        Keyring {
            kek: RwLock::new(Arc::new(kek)),
            table: RwLock::new(Table {
                next_id: 1,
                ..Table::default()
            }),
        }
    }

    /// Reads every key again, as `conn` sees them (after a failed job or
    /// group commit). Lookup keys not durable before stay so.
    pub(crate) fn reload(&self, conn: &Connection) -> Result<(), StoreError> {
        let mut stmt = conn
            .prepare("SELECT id, tenant, purpose, state, wrapped FROM data_keys ORDER BY id")
            .what("reading the data keys")?;
        let rows = stmt
            .query_map([], |r| {
                Ok(KeyRow {
                    id: r.get(0)?,
                    tenant: r.get(1)?,
                    purpose: r.get(2)?,
                    state: r.get(3)?,
                    wrapped: r.get(4)?,
                })
            })
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
            .what("reading the data keys")?;
        self.load(rows)
    }

    /// Replaces the keys in memory with `rows` (every row of `data_keys`,
    /// unwrapped with the KEK in use). Lookup keys not durable before stay
    /// so.
    pub(crate) fn load(&self, rows: Vec<KeyRow>) -> Result<(), StoreError> {
        let kek = self.kek();
        let not_durable: HashSet<(String, Purpose)> = self
            .table
            .read()
            .lookups
            .iter()
            .filter(|(_, l)| !l.durable)
            .map(|(k, _)| k.clone())
            .collect();
        let mut table = Table::default();
        for KeyRow {
            id,
            tenant,
            purpose,
            state,
            wrapped,
        } in rows
        {
            table.next_id = table.next_id.max(id + 1);
            let purpose = Purpose::parse(&purpose)
                .ok_or_else(|| StoreError::Corrupt(format!("data key {id}: purpose {purpose}")))?;
            let state = parse_state(&state)
                .ok_or_else(|| StoreError::Corrupt(format!("data key {id}: state {state}")))?;
            if state == KeyState::Destroyed {
                table.destroyed.insert(id);
                continue;
            }
            let wrapped = wrapped
                .ok_or_else(|| StoreError::Corrupt(format!("data key {id}: no material")))?;
            let material = kek.unwrap(id, &tenant, purpose.name(), &wrapped)?;
            let durable = !not_durable.contains(&(tenant.clone(), purpose));
            table.insert(id, tenant, purpose, state, &material, durable);
        }
        table.next_id = table.next_id.max(1);
        *self.table.write() = table;
        Ok(())
    }

    /// New key material for key `id` and its wrapping by the KEK in use
    /// (the caller stores it): (material, wrapped, KEK fingerprint).
    pub(crate) fn new_wrapped(
        &self,
        id: i64,
        tenant: &str,
        purpose: Purpose,
    ) -> Result<([u8; 32], Vec<u8>, String), StoreError> {
        if !(1..=i64::from(u32::MAX)).contains(&id) {
            return Err(StoreError::Invalid("data key ids exhausted".into()));
        }
        let material = random_key();
        let kek = self.kek();
        let wrapped = kek.wrap(id, tenant, purpose.name(), &material);
        Ok((material, wrapped, kek.fingerprint.clone()))
    }

    /// The KEK in use.
    pub(crate) fn kek(&self) -> Arc<Kek> {
        self.kek.read().clone()
    }

    /// Replaces the KEK in use (after the re-wrap committed).
    pub(crate) fn set_kek(&self, kek: Arc<Kek>) {
        *self.kek.write() = kek;
    }

    /// Creates a key (`material` given: imported) in `conn`'s transaction.
    pub(crate) fn create(
        &self,
        conn: &Connection,
        tenant: &str,
        purpose: Purpose,
        material: Option<[u8; 32]>,
    ) -> Result<i64, StoreError> {
        let material = material.unwrap_or_else(random_key);
        let kek = self.kek();
        let id = self.table.read().next_id;
        if id > i64::from(u32::MAX) {
            return Err(StoreError::Invalid("data key ids exhausted".into()));
        }
        let wrapped = kek.wrap(id, tenant, purpose.name(), &material);
        conn.prepare_cached(
            "INSERT INTO data_keys (id, tenant, purpose, state, created_ms, kek, wrapped)
             VALUES (?1, ?2, ?3, 'active', ?4, ?5, ?6)",
        )
        .and_then(|mut s| {
            s.execute(params![
                id,
                tenant,
                purpose.name(),
                now_ms(),
                kek.fingerprint,
                wrapped
            ])
        })
        .what("creating a data key")?;
        let mut table = self.table.write();
        table.next_id = id + 1;
        table.insert(
            id,
            tenant.to_string(),
            purpose,
            KeyState::Active,
            &material,
            false,
        );
        tracing::info!(key = id, tenant, purpose = purpose.name(), "created a key");
        Ok(id)
    }

    /// Whether `tenant` has every key of [`TENANT_KEYS`], durable.
    pub(crate) fn tenant_ready(&self, tenant: &str) -> bool {
        let table = self.table.read();
        table.active.contains_key(tenant)
            && [Purpose::Pan, Purpose::Kv].iter().all(|p| {
                table
                    .lookups
                    .get(&(tenant.to_string(), *p))
                    .is_some_and(|l| l.durable)
            })
    }

    /// Creates the keys `tenant` lacks; returns whether it created any.
    pub(crate) fn ensure_tenant(
        &self,
        conn: &Connection,
        tenant: &str,
    ) -> Result<bool, StoreError> {
        let mut created = false;
        for purpose in TENANT_KEYS {
            let exists = {
                let table = self.table.read();
                match purpose {
                    Purpose::Data => table.active.contains_key(tenant),
                    p => table.lookups.contains_key(&(tenant.to_string(), p)),
                }
            };
            if !exists {
                self.create(conn, tenant, purpose, None)?;
                created = true;
            }
        }
        Ok(created)
    }

    /// Marks `tenant`'s lookup keys (or the counters key) durable.
    pub(crate) fn mark_durable(&self, tenant: &str) {
        let mut table = self.table.write();
        for ((t, _), l) in table.lookups.iter_mut() {
            if t == tenant {
                l.durable = true;
            }
        }
    }

    /// Marks every lookup key durable (at open: everything is committed).
    pub(crate) fn mark_all_durable(&self) {
        for l in self.table.write().lookups.values_mut() {
            l.durable = true;
        }
    }

    /// The durable lookup key of `tenant` for `purpose`.
    pub(crate) fn lookup(&self, tenant: &str, purpose: Purpose) -> Option<Secret> {
        self.table
            .read()
            .lookups
            .get(&(tenant.to_string(), purpose))
            .filter(|l| l.durable)
            .map(|l| l.secret.clone())
    }

    /// The lookup key of `tenant` for `purpose`, durable or not (the writer).
    pub(crate) fn lookup_any(&self, tenant: &str, purpose: Purpose) -> Option<Secret> {
        self.table
            .read()
            .lookups
            .get(&(tenant.to_string(), purpose))
            .map(|l| l.secret.clone())
    }

    /// Retires `tenant`'s active data key and creates a new active one.
    pub(crate) fn rotate(&self, conn: &Connection, tenant: &str) -> Result<i64, StoreError> {
        let old = self.table.read().active.get(tenant).copied();
        conn.prepare_cached(
            "UPDATE data_keys SET state = 'retired', retired_ms = ?2
             WHERE tenant = ?1 AND purpose = 'data' AND state = 'active'",
        )
        .and_then(|mut s| s.execute(params![tenant, now_ms()]))
        .what("retiring a data key")?;
        let new = self.create(conn, tenant, Purpose::Data, None)?;
        if let Some(old) = old {
            let mut table = self.table.write();
            if let Some(k) = table.data.get(&old).cloned() {
                table.data.insert(
                    old,
                    Arc::new(DataKey {
                        tenant: k.tenant.clone(),
                        state: KeyState::Retired,
                        cipher: k.cipher.clone(),
                    }),
                );
            }
        }
        tracing::info!(tenant, retired = ?old, active = new, "rotated a data key");
        Ok(new)
    }

    /// Destroys a retired data key: its wrapped material is removed.
    pub(crate) fn destroy(&self, conn: &Connection, id: i64) -> Result<(), StoreError> {
        conn.prepare_cached(
            "UPDATE data_keys SET state = 'destroyed', wrapped = NULL, destroyed_ms = ?2
             WHERE id = ?1 AND state = 'retired'",
        )
        .and_then(|mut s| s.execute(params![id, now_ms()]))
        .what("destroying a data key")?;
        let mut table = self.table.write();
        table.data.remove(&id);
        table.destroyed.insert(id);
        tracing::info!(key = id, "destroyed a retired data key");
        Ok(())
    }

    /// Re-wraps every key with `new` and records its fingerprint, in
    /// `conn`'s transaction (the KEK in use changes after the commit).
    pub(crate) fn rewrap_all(&self, conn: &Connection, new: &Kek) -> Result<u64, StoreError> {
        let old = self.kek();
        let keys: Vec<(i64, String, String, Vec<u8>)> = conn
            .prepare("SELECT id, tenant, purpose, wrapped FROM data_keys WHERE wrapped IS NOT NULL")
            .and_then(|mut s| {
                s.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
                    .collect()
            })
            .what("reading the data keys")?;
        for (id, tenant, purpose, wrapped) in &keys {
            let material = old.unwrap(*id, tenant, purpose, wrapped)?;
            conn.prepare_cached("UPDATE data_keys SET wrapped = ?2, kek = ?3 WHERE id = ?1")
                .and_then(|mut s| {
                    s.execute(params![
                        id,
                        new.wrap(*id, tenant, purpose, &material),
                        new.fingerprint
                    ])
                })
                .what("re-wrapping a data key")?;
        }
        crate::schema::set_meta(conn, "kek_fingerprint", &new.fingerprint)?;
        crate::schema::set_meta(conn, "kek_created_ms", &now_ms().to_string())?;
        Ok(keys.len() as u64)
    }

    /// Encrypts `plain` for `tenant` under its active data key; `identity`
    /// is the row's identity (associated data). Returns the key id and the
    /// ciphertext.
    pub(crate) fn seal(
        &self,
        tenant: &str,
        identity: &[u8],
        plain: &[u8],
    ) -> Result<(i64, Vec<u8>), StoreError> {
        let (id, key) = {
            let table = self.table.read();
            let id = *table
                .active
                .get(tenant)
                .ok_or_else(|| StoreError::Invalid(format!("tenant {tenant} has no data key")))?;
            (id, table.data[&id].clone())
        };
        let mut out = Vec::with_capacity(HEADER_LEN + NONCE_LEN + plain.len() + 16);
        out.push(VERSION);
        out.extend_from_slice(&(id as u32).to_be_bytes());
        let nonce = crate::secret::random_nonce();
        let nonce = Nonce::from_slice(&nonce);
        let mut full_aad = out.clone();
        full_aad.extend_from_slice(identity);
        let sealed = key
            .cipher
            .encrypt(
                nonce,
                Payload {
                    msg: plain,
                    aad: &full_aad,
                },
            )
            .expect("in-memory encryption does not fail");
        out.extend_from_slice(nonce);
        out.extend_from_slice(&sealed);
        Ok((id, out))
    }

    /// The key id a ciphertext names.
    pub(crate) fn key_of(sealed: &[u8]) -> Option<i64> {
        (sealed.len() >= HEADER_LEN && sealed[0] == VERSION).then(|| {
            i64::from(u32::from_be_bytes([
                sealed[1], sealed[2], sealed[3], sealed[4],
            ]))
        })
    }

    /// Decrypts what [`Keyring::seal`] produced with the same identity.
    pub(crate) fn open(&self, sealed: &[u8], identity: &[u8]) -> Result<Vec<u8>, StoreError> {
        let id = Keyring::key_of(sealed)
            .filter(|_| sealed.len() >= HEADER_LEN + NONCE_LEN + 16)
            .ok_or_else(|| StoreError::Decrypt("malformed ciphertext".into()))?;
        let key = {
            let table = self.table.read();
            match table.data.get(&id) {
                Some(k) => k.clone(),
                None if table.destroyed.contains(&id) => return Err(StoreError::KeyDestroyed(id)),
                None => return Err(StoreError::UnknownKey(id)),
            }
        };
        let (header, rest) = sealed.split_at(HEADER_LEN);
        let (nonce, body) = rest.split_at(NONCE_LEN);
        let mut full_aad = header.to_vec();
        full_aad.extend_from_slice(identity);
        key.cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: body,
                    aad: &full_aad,
                },
            )
            .map_err(|_| {
                StoreError::Decrypt(format!(
                    "a value under data key {id} does not decrypt for this row (tampered or moved)"
                ))
            })
    }

    /// Retired data keys as (id, tenant).
    pub(crate) fn retired(&self) -> Vec<(i64, String)> {
        let table = self.table.read();
        let mut out: Vec<_> = table
            .data
            .iter()
            .filter(|(_, k)| k.state == KeyState::Retired)
            .map(|(id, k)| (*id, k.tenant.clone()))
            .collect();
        out.sort();
        out
    }

    /// The id the next key created gets: above every key loaded.
    pub(crate) fn next_id(&self) -> i64 {
        self.table.read().next_id
    }

    /// Tenants with a data key.
    pub(crate) fn tenants(&self) -> Vec<String> {
        let mut out: Vec<String> = self.table.read().active.keys().cloned().collect();
        out.sort();
        out
    }
}

impl Table {
    fn insert(
        &mut self,
        id: i64,
        tenant: String,
        purpose: Purpose,
        state: KeyState,
        material: &[u8; 32],
        durable: bool,
    ) {
        match purpose {
            Purpose::Data => {
                if state == KeyState::Active {
                    self.active.insert(tenant.clone(), id);
                }
                self.data.insert(
                    id,
                    Arc::new(DataKey {
                        tenant,
                        state,
                        cipher: Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(material)),
                    }),
                );
            }
            p => {
                self.lookups.insert(
                    (tenant, p),
                    Lookup {
                        secret: Secret::from_key(material),
                        durable,
                    },
                );
            }
        }
    }
}

/// The state named `name`.
pub(crate) fn parse_state(name: &str) -> Option<KeyState> {
    [KeyState::Active, KeyState::Retired, KeyState::Destroyed]
        .into_iter()
        .find(|s| s.name() == name)
}
