//! The PostgreSQL schema and its migrations: run at every start (and by
//! `switchyard db migrate`) under an advisory lock, so that nodes starting
//! together migrate once. Each migration is one transaction.
//!
//! - v1: `meta`, `nodes`, `data_keys`, `tranlog`, `saf`, `kv`, `counters`,
//!   `swaps`.
//! - v2: `plugin_versions`, the components swapped to (and loaded at
//!   start), by SHA-256: what the other nodes load when they follow a swap.
//! - v3: the operator plane, shared by every node: `roles`, `users`,
//!   `sessions`, `api_clients`, `audit` (append-only: a trigger refuses
//!   updates and deletes), `webhook_events` (with `fanned`: fanned out
//!   once, whichever node writes or reads it), `webhook_subscriptions`,
//!   `webhook_deliveries`.

use tokio_postgres::Client;

use crate::StoreError;
use crate::error::SqlContext;

/// The version this code writes.
pub const PG_SCHEMA_VERSION: i32 = 3;

/// The advisory lock key of migrations and node registration ("sy-mig").
pub(crate) const MIGRATION_LOCK: i64 = 0x7379_2d6d_6967;
/// The advisory lock key of key creation ("sy-keys").
pub(crate) const KEYS_LOCK: i64 = 0x0073_792d_6b65_7973;

const V1: &str = "
CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE nodes (
    id            TEXT PRIMARY KEY,
    ordinal       INTEGER NOT NULL UNIQUE CHECK (ordinal BETWEEN 0 AND 1023),
    instance      TEXT NOT NULL,
    state         TEXT NOT NULL,
    host          TEXT NOT NULL,
    pid           INTEGER NOT NULL,
    started_ms    BIGINT NOT NULL,
    heartbeat_ms  BIGINT NOT NULL,
    lease_ms      BIGINT NOT NULL,
    taken_over_by TEXT,
    taken_over_ms BIGINT
);
CREATE TABLE data_keys (
    id           BIGSERIAL PRIMARY KEY,
    tenant       TEXT NOT NULL,
    purpose      TEXT NOT NULL,
    state        TEXT NOT NULL,
    created_ms   BIGINT NOT NULL,
    retired_ms   BIGINT,
    destroyed_ms BIGINT,
    kek          TEXT NOT NULL,
    wrapped      BYTEA
);
CREATE UNIQUE INDEX data_keys_active ON data_keys (tenant, purpose) WHERE state = 'active';
CREATE TABLE tranlog (
    id              BIGINT PRIMARY KEY,
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
    match_hash      BIGINT,
    pan_token       BYTEA,
    pan_masked      TEXT,
    state           TEXT NOT NULL,
    rc              TEXT,
    approval        TEXT,
    endpoint        TEXT,
    upstream        TEXT,
    received_ms     BIGINT NOT NULL,
    total_us        BIGINT,
    external_us     BIGINT,
    original_id     BIGINT,
    reversal_id     BIGINT,
    completion_id   BIGINT,
    participants    TEXT,
    late_rc         TEXT,
    late_ms         BIGINT,
    key_id          BIGINT,
    request         BYTEA,
    response        BYTEA,
    trace           TEXT
);
CREATE INDEX tranlog_match ON tranlog (match_hash, received_ms) WHERE match_hash IS NOT NULL;
CREATE INDEX tranlog_stan ON tranlog (stan);
CREATE INDEX tranlog_received ON tranlog (received_ms);
CREATE INDEX tranlog_in_flight ON tranlog (node, state) WHERE state IN ('received', 'sent');
CREATE INDEX tranlog_original ON tranlog (original_id) WHERE original_id IS NOT NULL;
CREATE INDEX tranlog_key ON tranlog (key_id);
CREATE TABLE saf (
    id              BIGSERIAL PRIMARY KEY,
    tenant          TEXT NOT NULL,
    kind            TEXT NOT NULL,
    endpoint        TEXT NOT NULL,
    source          BIGINT NOT NULL,
    original        BIGINT NOT NULL,
    reason          TEXT NOT NULL,
    state           TEXT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    created_ms      BIGINT NOT NULL,
    next_ms         BIGINT NOT NULL,
    last_attempt_ms BIGINT,
    last_result     TEXT,
    escalated       BOOLEAN NOT NULL DEFAULT false,
    acked_ms        BIGINT,
    lease_owner     TEXT,
    lease_until     BIGINT,
    UNIQUE (original, kind, endpoint)
);
CREATE INDEX saf_due ON saf (endpoint, next_ms) WHERE state = 'pending';
CREATE INDEX saf_source ON saf (source) WHERE state = 'pending';
CREATE INDEX saf_lease ON saf (lease_owner) WHERE lease_owner IS NOT NULL;
CREATE TABLE kv (
    tenant   TEXT NOT NULL,
    plugin   TEXT NOT NULL,
    key_hash BYTEA NOT NULL,
    value    BYTEA NOT NULL,
    updated  BIGINT NOT NULL,
    key_id   BIGINT NOT NULL,
    PRIMARY KEY (tenant, plugin, key_hash)
);
CREATE INDEX kv_key ON kv (key_id);
CREATE TABLE counters (
    counter  BYTEA NOT NULL,
    bucket   BIGINT NOT NULL,
    tenant   TEXT NOT NULL,
    plugin   TEXT NOT NULL,
    width_s  BIGINT NOT NULL,
    window_s BIGINT NOT NULL,
    expires  BIGINT NOT NULL,
    total    BIGINT NOT NULL,
    PRIMARY KEY (counter, bucket)
);
CREATE INDEX counters_expires ON counters (expires);
CREATE TABLE swaps (
    id       BIGSERIAL PRIMARY KEY,
    at_ms    BIGINT NOT NULL,
    plugin   TEXT NOT NULL,
    action   TEXT NOT NULL,
    old_hash TEXT NOT NULL,
    new_hash TEXT NOT NULL,
    actor    TEXT NOT NULL,
    node     TEXT NOT NULL
);
";

const V2: &str = "
CREATE TABLE plugin_versions (
    digest TEXT PRIMARY KEY,
    wasm   BYTEA NOT NULL,
    at_ms  BIGINT NOT NULL
);
CREATE INDEX swaps_plugin ON swaps (plugin, id);
";

const V3: &str = "
CREATE TABLE roles (
    name        TEXT PRIMARY KEY,
    permissions TEXT NOT NULL,
    builtin     BOOLEAN NOT NULL DEFAULT false
);
CREATE TABLE users (
    name                TEXT PRIMARY KEY,
    password_hash       TEXT NOT NULL,
    password_changed_ms BIGINT NOT NULL,
    history             TEXT NOT NULL DEFAULT '[]',
    role                TEXT NOT NULL,
    tenant              TEXT,
    totp_secret         BYTEA,
    totp_pending        BYTEA,
    totp_last_step      BIGINT NOT NULL DEFAULT 0,
    failed_logins       BIGINT NOT NULL DEFAULT 0,
    locked_until_ms     BIGINT NOT NULL DEFAULT 0,
    disabled            BOOLEAN NOT NULL DEFAULT false,
    must_change         BOOLEAN NOT NULL DEFAULT false,
    created_ms          BIGINT NOT NULL
);
CREATE TABLE sessions (
    token_hash   TEXT PRIMARY KEY,
    user_name    TEXT NOT NULL,
    csrf         TEXT NOT NULL,
    created_ms   BIGINT NOT NULL,
    last_seen_ms BIGINT NOT NULL,
    stage        TEXT NOT NULL,
    origin       TEXT NOT NULL
);
CREATE INDEX sessions_user ON sessions (user_name);
CREATE TABLE api_clients (
    name         TEXT PRIMARY KEY,
    token_hash   TEXT NOT NULL UNIQUE,
    role         TEXT NOT NULL,
    tenant       TEXT,
    created_ms   BIGINT NOT NULL,
    last_used_ms BIGINT NOT NULL DEFAULT 0,
    disabled     BOOLEAN NOT NULL DEFAULT false
);
CREATE TABLE audit (
    seq        BIGINT PRIMARY KEY,
    at_ms      BIGINT NOT NULL,
    actor      TEXT NOT NULL,
    actor_kind TEXT NOT NULL,
    event      TEXT NOT NULL,
    outcome    TEXT NOT NULL,
    origin     TEXT,
    resource   TEXT NOT NULL,
    tenant     TEXT,
    detail     TEXT NOT NULL,
    prev_hash  TEXT NOT NULL,
    hash       TEXT NOT NULL
);
CREATE INDEX audit_tenant ON audit (tenant, seq);
CREATE INDEX audit_at ON audit (at_ms);
CREATE FUNCTION sy_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit rows are append-only';
END $$;
CREATE TRIGGER audit_append_only BEFORE UPDATE OR DELETE ON audit
    FOR EACH ROW EXECUTE FUNCTION sy_audit_append_only();
CREATE TRIGGER audit_no_truncate BEFORE TRUNCATE ON audit
    FOR EACH STATEMENT EXECUTE FUNCTION sy_audit_append_only();
CREATE TABLE webhook_events (
    seq        BIGSERIAL PRIMARY KEY,
    id         TEXT NOT NULL UNIQUE,
    tenant     TEXT NOT NULL,
    event_type TEXT NOT NULL,
    payload    TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    fanned     BOOLEAN NOT NULL DEFAULT false
);
CREATE INDEX webhook_events_unfanned ON webhook_events (seq) WHERE NOT fanned;
CREATE TABLE webhook_subscriptions (
    id         BIGSERIAL PRIMARY KEY,
    name       TEXT NOT NULL,
    url        TEXT NOT NULL,
    secret     TEXT NOT NULL,
    tenant     TEXT NOT NULL,
    events     TEXT NOT NULL,
    source     TEXT NOT NULL,
    disabled   BOOLEAN NOT NULL DEFAULT false,
    created_ms BIGINT NOT NULL,
    UNIQUE (source, name)
);
CREATE TABLE webhook_deliveries (
    id           BIGSERIAL PRIMARY KEY,
    event_id     TEXT NOT NULL,
    subscription BIGINT NOT NULL,
    attempts     BIGINT NOT NULL DEFAULT 0,
    next_ms      BIGINT NOT NULL,
    state        TEXT NOT NULL,
    last_status  BIGINT,
    last_error   TEXT,
    updated_ms   BIGINT NOT NULL,
    UNIQUE (event_id, subscription)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_ms) WHERE state = 'pending';
CREATE INDEX webhook_deliveries_sub ON webhook_deliveries (subscription, id);
";

/// The migrations, in order: migration `i` brings the schema to `i + 1`.
const MIGRATIONS: [&str; PG_SCHEMA_VERSION as usize] = [V1, V2, V3];

/// The schema's version (0: empty database).
pub(crate) async fn version(client: &Client) -> Result<i32, StoreError> {
    let exists: bool = client
        .query_one("SELECT to_regclass('sy_schema_version') IS NOT NULL", &[])
        .await
        .what("reading the schema version")?
        .get(0);
    if !exists {
        return Ok(0);
    }
    let row = client
        .query_one(
            "SELECT coalesce(max(version), 0) FROM sy_schema_version",
            &[],
        )
        .await
        .what("reading the schema version")?;
    Ok(row.get(0))
}

/// Runs the migrations this database lacks; returns (from, to).
pub(crate) async fn migrate(client: &mut Client) -> Result<(i32, i32), StoreError> {
    // Waiting for another node's migration, and a migration's index
    // builds, may take longer than the statement timeout of the pool.
    client
        .batch_execute("SET statement_timeout = 0")
        .await
        .what("lifting the statement timeout for the migrations")?;
    let result = migrate_unbounded(client).await;
    let reset = client
        .batch_execute("RESET statement_timeout")
        .await
        .what("restoring the statement timeout after the migrations");
    let versions = result?;
    reset?;
    Ok(versions)
}

async fn migrate_unbounded(client: &mut Client) -> Result<(i32, i32), StoreError> {
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
        .await
        .what("waiting for the migration lock")?;
    let result = migrate_locked(client).await;
    let unlocked = client
        .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
        .await
        .what("releasing the migration lock");
    let versions = result?;
    unlocked?;
    Ok(versions)
}

async fn migrate_locked(client: &mut Client) -> Result<(i32, i32), StoreError> {
    let from = version(client).await?;
    if from > PG_SCHEMA_VERSION {
        return Err(StoreError::Migration {
            from: i64::from(from),
            reason: format!(
                "the database was written by a newer version (schema v{from}; this one knows v{PG_SCHEMA_VERSION})"
            ),
        });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(from as usize) {
        let to = i as i32 + 1;
        let tx = client.transaction().await.what("starting a migration")?;
        if to == 1 {
            tx.batch_execute("CREATE TABLE sy_schema_version (version INTEGER NOT NULL)")
                .await
                .what("creating the schema version table")?;
        }
        tx.batch_execute(sql)
            .await
            .map_err(|e| StoreError::Migration {
                from: i64::from(to - 1),
                reason: crate::error::pg_detail(&e),
            })?;
        tx.execute(
            "INSERT INTO sy_schema_version (version) VALUES ($1)",
            &[&to],
        )
        .await
        .what("recording the schema version")?;
        tx.commit().await.what("committing a migration")?;
        tracing::info!(from = to - 1, to, "migrated the PostgreSQL schema");
    }
    Ok((from, PG_SCHEMA_VERSION))
}

/// A value of `meta`.
pub(crate) async fn meta(client: &Client, name: &str) -> Result<Option<String>, StoreError> {
    Ok(client
        .query_opt("SELECT value FROM meta WHERE name = $1", &[&name])
        .await
        .what("reading the store's metadata")?
        .map(|r| r.get(0)))
}
