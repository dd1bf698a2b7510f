//! The schema, its version and the migrations.
//!
//! - v1 (no `schema_version` table): `kv` and `swaps`, kv values under
//!   ChaCha20-Poly1305 keys derived from `keys/store.key`;
//! - v2: `schema_version`, `meta`, `data_keys`, `tranlog`, `saf`, `kv` (with
//!   the data key of each value), `swaps`.
//! - v3: the tranlog's match lookups go through its STAN index (every row),
//!   not an index of the match hash: an index of random keys dirtied one
//!   page per row in every group commit (about half the writer's time).
//! - v4: `counters`, the durable copy of the velocity counters (one row per
//!   bucket, see `counter_log`).
//! - v5: `tranlog.trace`, each transaction's profiler trace in the compact
//!   form (`parse-request=12 validate=4 … end=100 external=40`, µs; step and
//!   participant names only, never card data).

use rusqlite::{Connection, OptionalExtension, params};

use crate::StoreError;
use crate::error::SqlContext;
use crate::keyring::{Keyring, Purpose};
use crate::legacy::LegacySecret;

/// The version this code writes.
pub(crate) const CURRENT: i64 = 6;

const TABLES: &str = "
CREATE TABLE schema_version (version INTEGER NOT NULL);
CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE data_keys (
    id           INTEGER PRIMARY KEY,
    tenant       TEXT NOT NULL,
    purpose      TEXT NOT NULL,
    state        TEXT NOT NULL,
    created_ms   INTEGER NOT NULL,
    retired_ms   INTEGER,
    destroyed_ms INTEGER,
    kek          TEXT NOT NULL,
    wrapped      BLOB
);
CREATE TABLE tranlog (
    id              INTEGER PRIMARY KEY,
    tenant          TEXT NOT NULL,
    listener        TEXT NOT NULL,
    node            TEXT NOT NULL,
    kind            TEXT NOT NULL,
    mti             TEXT NOT NULL,
    class           TEXT NOT NULL,
    processing_code TEXT,
    amount          TEXT,
    currency        TEXT,
    stan            TEXT,
    transmitted     TEXT,
    rrn             TEXT,
    terminal        TEXT,
    merchant        TEXT,
    acquirer        TEXT,
    match_key       TEXT,
    match_hash      INTEGER,
    pan_token       BLOB,
    pan_masked      TEXT,
    state           TEXT NOT NULL,
    rc              TEXT,
    approval        TEXT,
    endpoint        TEXT,
    upstream        TEXT,
    received_ms     INTEGER NOT NULL,
    total_us        INTEGER,
    external_us     INTEGER,
    original_id     INTEGER,
    reversal_id     INTEGER,
    completion_id   INTEGER,
    participants    TEXT,
    late_rc         TEXT,
    late_ms         INTEGER,
    key_id          INTEGER,
    request         BLOB,
    response        BLOB,
    trace           TEXT
);
CREATE INDEX tranlog_stan ON tranlog (stan);
CREATE INDEX tranlog_in_flight ON tranlog (node, state) WHERE state IN ('received', 'sent');
CREATE INDEX tranlog_original ON tranlog (original_id) WHERE original_id IS NOT NULL;
CREATE INDEX tranlog_key ON tranlog (key_id);
CREATE TABLE saf (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant          TEXT NOT NULL,
    kind            TEXT NOT NULL,
    endpoint        TEXT NOT NULL,
    source          INTEGER NOT NULL,
    original        INTEGER NOT NULL,
    reason          TEXT NOT NULL,
    state           TEXT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    created_ms      INTEGER NOT NULL,
    next_ms         INTEGER NOT NULL,
    last_attempt_ms INTEGER,
    last_result     TEXT,
    escalated       INTEGER NOT NULL DEFAULT 0,
    acked_ms        INTEGER,
    lease_owner     TEXT,
    lease_until     INTEGER
);
CREATE INDEX saf_due ON saf (endpoint, next_ms) WHERE state = 'pending';
CREATE INDEX saf_original ON saf (original);
CREATE INDEX saf_source ON saf (source) WHERE state = 'pending';
CREATE INDEX saf_lease ON saf (lease_owner) WHERE lease_owner IS NOT NULL;
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

/// The counters' buckets (v4). `id` is allocated in memory and only
/// grows, so new buckets append at the table's right edge; `counter` is
/// the keyed hash of (tenant, plugin, name, key, window), never the key;
/// `expires` is the first second (Unix) the bucket is outside its window.
pub(crate) const COUNTERS: &str = "
CREATE TABLE counters (
    id       INTEGER PRIMARY KEY,
    tenant   TEXT NOT NULL,
    plugin   TEXT NOT NULL,
    counter  BLOB NOT NULL,
    bucket   INTEGER NOT NULL,
    width_s  INTEGER NOT NULL,
    window_s INTEGER NOT NULL,
    expires  INTEGER NOT NULL,
    total    INTEGER NOT NULL
);
CREATE INDEX counters_expires ON counters (expires);
";

const KV_V2: &str = "
CREATE TABLE kv (
    tenant   TEXT NOT NULL,
    plugin   TEXT NOT NULL,
    key_hash BLOB NOT NULL,
    value    BLOB NOT NULL,
    updated  INTEGER NOT NULL,
    key_id   INTEGER,
    PRIMARY KEY (tenant, plugin, key_hash)
) WITHOUT ROWID;
";

const KV_INDEX: &str = "CREATE INDEX kv_key ON kv (key_id);";

/// What [`detect`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Found {
    /// An empty database.
    Empty,
    /// The v1 layout.
    V1,
    /// A versioned schema.
    Version(i64),
}

/// The schema of `conn`.
pub(crate) fn detect(conn: &Connection) -> Result<Found, StoreError> {
    let has = |table: &str| -> Result<bool, StoreError> {
        conn.query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?1",
            [table],
            |r| r.get::<_, i64>(0),
        )
        .map(|n| n > 0)
        .what("reading the schema")
    };
    if has("schema_version")? {
        let v = conn
            .query_row("SELECT max(version) FROM schema_version", [], |r| r.get(0))
            .what("reading the schema version")?;
        Ok(Found::Version(v))
    } else if has("kv")? || has("swaps")? {
        Ok(Found::V1)
    } else {
        Ok(Found::Empty)
    }
}

/// A `meta` value.
pub(crate) fn meta(conn: &Connection, name: &str) -> Result<Option<String>, StoreError> {
    conn.query_row("SELECT value FROM meta WHERE name = ?1", [name], |r| {
        r.get(0)
    })
    .optional()
    .what("reading the store's metadata")
}

/// Sets a `meta` value.
pub(crate) fn set_meta(conn: &Connection, name: &str, value: &str) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO meta (name, value) VALUES (?1, ?2)
         ON CONFLICT (name) DO UPDATE SET value = excluded.value",
    )
    .and_then(|mut s| s.execute(params![name, value]))
    .what("writing the store's metadata")?;
    Ok(())
}

/// The KEK fingerprint the database's keys are wrapped with (`None`
/// before v2).
pub(crate) fn recorded_kek(conn: &Connection, found: Found) -> Result<Option<String>, StoreError> {
    match found {
        Found::Version(_) => meta(conn, "kek_fingerprint"),
        _ => Ok(None),
    }
}

/// Creates the v2 tables (inside the caller's transaction).
fn create_v2(conn: &Connection, with_kv: bool) -> Result<(), StoreError> {
    conn.execute_batch(TABLES).what("creating the schema")?;
    conn.execute_batch(COUNTERS).what("creating the schema")?;
    if with_kv {
        conn.execute_batch(KV_V2).what("creating the schema")?;
    }
    conn.execute_batch(KV_INDEX).what("creating the schema")?;
    operator_tables(conn)?;
    conn.execute(
        "INSERT INTO schema_version (version) VALUES (?1)",
        [CURRENT],
    )
    .what("recording the schema version")?;
    Ok(())
}

/// Records the KEK in a new schema.
fn record_kek(conn: &Connection, keyring: &Keyring) -> Result<(), StoreError> {
    let kek = keyring.kek();
    set_meta(conn, "kek_fingerprint", &kek.fingerprint)?;
    set_meta(conn, "kek_created_ms", &crate::now_ms().to_string())
}

/// The operator plane's tables (schema v6): users, sessions and API
/// clients ([`crate::accounts`]), the audit trail ([`crate::audit`]) and
/// the webhooks' outbox ([`crate::outbox`]).
fn operator_tables(conn: &Connection) -> Result<(), StoreError> {
    conn.execute_batch(crate::accounts::SCHEMA)
        .what("creating the accounts' tables")?;
    conn.execute_batch(crate::audit::SCHEMA)
        .what("creating the audit trail's table")?;
    conn.execute_batch(crate::outbox::SCHEMA)
        .what("creating the webhooks' outbox")
}

/// Creates the schema of an empty database.
pub(crate) fn create(conn: &mut Connection, keyring: &Keyring) -> Result<(), StoreError> {
    let tx = conn.transaction().what("creating the schema")?;
    create_v2(&tx, true)?;
    record_kek(&tx, keyring)?;
    tx.commit().what("creating the schema")
}

/// Migrates a v2, v3 or v4 database to the current version, in one
/// transaction: v2 → v3 drops the match-hash index and indexes the STAN of
/// every row; v3 → v4 adds the counters' table; v4 → v5 adds the tranlog's
/// `trace` column.
pub(crate) fn migrate(conn: &mut Connection, from: i64) -> Result<(), StoreError> {
    if !(2..CURRENT).contains(&from) {
        return Err(StoreError::Migration {
            from,
            reason: format!("no migration from schema v{from} to v{CURRENT}"),
        });
    }
    let tx = conn.transaction().what("migrating the schema")?;
    if from < 3 {
        tx.execute_batch(
            "DROP INDEX IF EXISTS tranlog_match;
             DROP INDEX IF EXISTS tranlog_stan;
             CREATE INDEX tranlog_stan ON tranlog (stan);",
        )
        .what("migrating the tranlog's indexes")?;
    }
    if from < 4 {
        tx.execute_batch(COUNTERS)
            .what("creating the counters' table")?;
    }
    if from < 6 {
        operator_tables(&tx)?;
    }
    let has_trace = tx
        .query_row(
            "SELECT count(*) FROM pragma_table_info('tranlog') WHERE name = 'trace'",
            [],
            |r| r.get::<_, i64>(0),
        )
        .what("reading the tranlog's columns")?
        > 0;
    if !has_trace {
        tx.execute_batch("ALTER TABLE tranlog ADD COLUMN trace TEXT")
            .what("adding the tranlog's trace column")?;
    }
    tx.execute(
        "INSERT INTO schema_version (version) VALUES (?1)",
        [CURRENT],
    )
    .what("recording the schema version")?;
    tx.commit().what("migrating the schema")
}

/// Migrates a v1 database: v2 tables, the legacy key-hashing key imported
/// as the kv lookup key of every tenant with kv data (so key hashes stay
/// valid), every kv value re-encrypted under its tenant's data key. One
/// transaction.
pub(crate) fn migrate_v1(
    conn: &mut Connection,
    keyring: &Keyring,
    legacy: Option<&LegacySecret>,
) -> Result<u64, StoreError> {
    let fail = |reason: String| StoreError::Migration { from: 1, reason };
    let tx = conn.transaction().what("migrating the schema")?;
    let has_kv = tx
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'kv'",
            [],
            |r| r.get::<_, i64>(0),
        )
        .what("reading the schema")?
        > 0;
    if has_kv {
        tx.execute_batch("ALTER TABLE kv ADD COLUMN key_id INTEGER")
            .what("migrating the kv table")?;
    }
    create_v2(&tx, !has_kv)?;
    record_kek(&tx, keyring)?;
    let rows: Vec<(String, String, Vec<u8>, Vec<u8>)> = tx
        .prepare("SELECT tenant, plugin, key_hash, value FROM kv")
        .and_then(|mut s| {
            s.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
                .collect()
        })
        .what("reading the v1 kv values")?;
    if !rows.is_empty() && legacy.is_none() {
        return Err(fail(format!(
            "{} kv values need keys/store.key, which is missing",
            rows.len()
        )));
    }
    for (tenant, plugin, key_hash, value) in &rows {
        let legacy = legacy.expect("checked above");
        if keyring.lookup_any(tenant, Purpose::Kv).is_none() {
            keyring.create(&tx, tenant, Purpose::Kv, Some(legacy.mac_key))?;
        }
        keyring.ensure_tenant(&tx, tenant)?;
        let plain = legacy
            .open(value, &LegacySecret::aad(tenant, plugin, key_hash))
            .ok_or_else(|| {
                fail(format!(
                    "a kv value of tenant {tenant}, plugin {plugin} does not decrypt with keys/store.key"
                ))
            })?;
        let (key_id, sealed) = keyring.seal(
            tenant,
            &crate::kv::identity(tenant, plugin, key_hash),
            &plain,
        )?;
        tx.execute(
            "UPDATE kv SET value = ?4, key_id = ?5 WHERE tenant = ?1 AND plugin = ?2 AND key_hash = ?3",
            params![tenant, plugin, key_hash, sealed, key_id],
        )
        .what("re-encrypting a v1 kv value")?;
    }
    tx.commit().what("migrating the schema")?;
    Ok(rows.len() as u64)
}

/// The v1 key hash of a kv key (v1 and v2 hash alike, keyed per tenant).
#[cfg(test)]
pub(crate) fn v1_key_hash(
    legacy: &LegacySecret,
    tenant: &str,
    plugin: &str,
    key: &str,
) -> [u8; 32] {
    crate::secret::Secret::from_key(&legacy.mac_key).hash(&[
        tenant.as_bytes(),
        plugin.as_bytes(),
        key.as_bytes(),
    ])
}

/// The v1 schema (tests build v1 directories with it).
#[cfg(test)]
pub(crate) const V1_SCHEMA: &str = "
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
