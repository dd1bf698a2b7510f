//! The webhooks' outbox (issue 11, item 7): an event row written in the
//! same SQLite transaction as the state change it reports; the admin
//! crate's dispatcher delivers it.

use rusqlite::{Connection, OptionalExtension, params};

/// The tables of this module (schema v6), created idempotently: the
/// events, the subscriptions (from the config or the UI) and one delivery
/// row per event and matching subscription.
pub const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS webhook_events (
    id TEXT PRIMARY KEY,
    tenant TEXT NOT NULL,
    event_type TEXT NOT NULL,
    payload TEXT NOT NULL,
    created_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS webhook_subscriptions (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    name       TEXT NOT NULL,
    url        TEXT NOT NULL,
    secret     TEXT NOT NULL,
    tenant     TEXT NOT NULL,
    events     TEXT NOT NULL,
    source     TEXT NOT NULL,
    disabled   INTEGER NOT NULL DEFAULT 0,
    created_ms INTEGER NOT NULL,
    UNIQUE (source, name)
);
CREATE TABLE IF NOT EXISTS webhook_deliveries (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id     TEXT NOT NULL,
    subscription INTEGER NOT NULL,
    attempts     INTEGER NOT NULL DEFAULT 0,
    next_ms      INTEGER NOT NULL,
    state        TEXT NOT NULL,
    last_status  INTEGER,
    last_error   TEXT,
    updated_ms   INTEGER NOT NULL,
    UNIQUE (event_id, subscription)
);
CREATE INDEX IF NOT EXISTS webhook_deliveries_due ON webhook_deliveries (next_ms)
    WHERE state = 'pending';
CREATE INDEX IF NOT EXISTS webhook_deliveries_sub ON webhook_deliveries (subscription, id);
";

/// Writes one event (`payload`: its JSON `data`) inside the caller's
/// transaction; returns its id (`msg_…`, the `webhook-id`).
pub fn insert_event(
    conn: &Connection,
    tenant: &str,
    event_type: &str,
    payload: &str,
) -> rusqlite::Result<String> {
    let mut raw = [0u8; 16];
    getrandom::getrandom(&mut raw).map_err(|e| {
        rusqlite::Error::ToSqlConversionFailure(Box::new(std::io::Error::other(e.to_string())))
    })?;
    let id = format!("msg_{}", hex::encode(raw));
    conn.execute(
        "INSERT INTO webhook_events (id, tenant, event_type, payload, created_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![id, tenant, event_type, payload, crate::now_ms()],
    )?;
    Ok(id)
}

/// The `meta` row holding the rowid of the last event fanned out.
const CURSOR: &str = "webhook_cursor";

/// One event row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRow {
    /// Its rowid (the fan-out cursor's order).
    pub seq: i64,
    /// `msg_…`, the `webhook-id`.
    pub id: String,
    /// The tenant it concerns.
    pub tenant: String,
    /// `reversal.escalated`, …
    pub event_type: String,
    /// Its JSON `data`.
    pub payload: String,
    /// When it was written, ms since the epoch.
    pub created_ms: i64,
}

/// One subscription row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionRow {
    /// Its id.
    pub id: i64,
    /// Its name (unique per source).
    pub name: String,
    /// Where deliveries are POSTed.
    pub url: String,
    /// `whsec_<base64>`.
    pub secret: String,
    /// The tenant whose events it gets (`*`: every tenant's).
    pub tenant: String,
    /// The event types it gets, a JSON array (`["*"]`: all).
    pub events: String,
    /// `config` or `api`.
    pub source: String,
    /// Disabled (the receiver answered 410, or it left the config).
    pub disabled: bool,
    /// When it was created, ms.
    pub created_ms: i64,
}

/// One delivery row, with its event's type and its subscription's name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryRow {
    /// Its id.
    pub id: i64,
    /// The event (`msg_…`).
    pub event_id: String,
    /// The event's type.
    pub event_type: String,
    /// The subscription's id.
    pub subscription: i64,
    /// The subscription's tenant.
    pub tenant: String,
    /// Attempts made.
    pub attempts: i64,
    /// When the next attempt is due, ms.
    pub next_ms: i64,
    /// `pending`, `delivered`, `failed` or `disabled`.
    pub state: String,
    /// The last HTTP status, if any.
    pub last_status: Option<i64>,
    /// The last error, if any.
    pub last_error: Option<String>,
    /// When it last changed, ms.
    pub updated_ms: i64,
}

const SUB_COLUMNS: &str = "id, name, url, secret, tenant, events, source, disabled, created_ms";

fn subscription(r: &rusqlite::Row<'_>) -> rusqlite::Result<SubscriptionRow> {
    Ok(SubscriptionRow {
        id: r.get(0)?,
        name: r.get(1)?,
        url: r.get(2)?,
        secret: r.get(3)?,
        tenant: r.get(4)?,
        events: r.get(5)?,
        source: r.get(6)?,
        disabled: r.get::<_, i64>(7)? != 0,
        created_ms: r.get(8)?,
    })
}

/// Every subscription, by id.
pub fn subscriptions(conn: &Connection) -> rusqlite::Result<Vec<SubscriptionRow>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {SUB_COLUMNS} FROM webhook_subscriptions ORDER BY id"
    ))?;
    stmt.query_map([], subscription)?.collect()
}

/// One subscription.
pub fn subscription_by_id(conn: &Connection, id: i64) -> rusqlite::Result<Option<SubscriptionRow>> {
    conn.query_row(
        &format!("SELECT {SUB_COLUMNS} FROM webhook_subscriptions WHERE id = ?1"),
        [id],
        subscription,
    )
    .optional()
}

/// Inserts or updates the subscription `(source, name)`; a changed URL or
/// secret enables it again. Returns its id.
pub fn upsert_subscription(conn: &Connection, s: &SubscriptionRow) -> rusqlite::Result<i64> {
    conn.query_row(
        "INSERT INTO webhook_subscriptions (name, url, secret, tenant, events, source, disabled, created_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, 0, ?7)
         ON CONFLICT (source, name) DO UPDATE SET
            disabled = CASE WHEN url = excluded.url AND secret = excluded.secret
                            THEN disabled ELSE 0 END,
            url = excluded.url, secret = excluded.secret, tenant = excluded.tenant,
            events = excluded.events
         RETURNING id",
        params![s.name, s.url, s.secret, s.tenant, s.events, s.source, crate::now_ms()],
        |r| r.get(0),
    )
}

/// Deletes subscription `id`; its undelivered deliveries become
/// `disabled`. Whether it existed.
pub fn delete_subscription(conn: &Connection, id: i64) -> rusqlite::Result<bool> {
    conn.execute(
        "UPDATE webhook_deliveries SET state = 'disabled', updated_ms = ?2
         WHERE subscription = ?1 AND state = 'pending'",
        params![id, crate::now_ms()],
    )?;
    Ok(conn.execute("DELETE FROM webhook_subscriptions WHERE id = ?1", [id])? > 0)
}

/// Disables subscription `id` and its undelivered deliveries.
pub fn disable_subscription(conn: &Connection, id: i64) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE webhook_subscriptions SET disabled = 1 WHERE id = ?1",
        [id],
    )?;
    conn.execute(
        "UPDATE webhook_deliveries SET state = 'disabled', updated_ms = ?2
         WHERE subscription = ?1 AND state = 'pending'",
        params![id, crate::now_ms()],
    )?;
    Ok(())
}

/// The events after the fan-out cursor, oldest first, at most `limit`.
pub fn events_after_cursor(conn: &Connection, limit: usize) -> rusqlite::Result<Vec<EventRow>> {
    let cursor: i64 = conn
        .query_row("SELECT value FROM meta WHERE name = ?1", [CURSOR], |r| {
            r.get::<_, String>(0)
        })
        .optional()?
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut stmt = conn.prepare_cached(
        "SELECT rowid, id, tenant, event_type, payload, created_ms FROM webhook_events
         WHERE rowid > ?1 ORDER BY rowid LIMIT ?2",
    )?;
    stmt.query_map(params![cursor, limit as i64], |r| {
        Ok(EventRow {
            seq: r.get(0)?,
            id: r.get(1)?,
            tenant: r.get(2)?,
            event_type: r.get(3)?,
            payload: r.get(4)?,
            created_ms: r.get(5)?,
        })
    })?
    .collect()
}

/// Moves the fan-out cursor to event rowid `seq`.
pub fn set_cursor(conn: &Connection, seq: i64) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO meta (name, value) VALUES (?1, ?2)
         ON CONFLICT (name) DO UPDATE SET value = excluded.value",
        params![CURSOR, seq.to_string()],
    )?;
    Ok(())
}

/// One event by id.
pub fn event(conn: &Connection, id: &str) -> rusqlite::Result<Option<EventRow>> {
    conn.query_row(
        "SELECT rowid, id, tenant, event_type, payload, created_ms FROM webhook_events WHERE id = ?1",
        [id],
        |r| {
            Ok(EventRow {
                seq: r.get(0)?,
                id: r.get(1)?,
                tenant: r.get(2)?,
                event_type: r.get(3)?,
                payload: r.get(4)?,
                created_ms: r.get(5)?,
            })
        },
    )
    .optional()
}

/// Queues a delivery of `event_id` to `subscription`, due at `next_ms`
/// (once: a second call changes nothing).
pub fn insert_delivery(
    conn: &Connection,
    event_id: &str,
    subscription: i64,
    next_ms: i64,
) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT OR IGNORE INTO webhook_deliveries (event_id, subscription, next_ms, state, updated_ms)
         VALUES (?1, ?2, ?3, 'pending', ?4)",
        params![event_id, subscription, next_ms, crate::now_ms()],
    )?;
    Ok(())
}

/// Claims up to `limit` pending deliveries due at `now` by moving their
/// `next_ms` to `lease_until` (one statement: two dispatchers never claim
/// one delivery at once); returns (id, event id, subscription, attempts).
pub fn claim_due(
    conn: &Connection,
    now: i64,
    lease_until: i64,
    limit: usize,
) -> rusqlite::Result<Vec<(i64, String, i64, i64)>> {
    let mut stmt = conn.prepare_cached(
        "UPDATE webhook_deliveries SET next_ms = ?2
         WHERE id IN (SELECT id FROM webhook_deliveries
                      WHERE state = 'pending' AND next_ms <= ?1 ORDER BY next_ms LIMIT ?3)
         RETURNING id, event_id, subscription, attempts",
    )?;
    stmt.query_map(params![now, lease_until, limit as i64], |r| {
        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
    })?
    .collect()
}

/// The earliest `next_ms` of a pending delivery.
pub fn next_due(conn: &Connection) -> rusqlite::Result<Option<i64>> {
    conn.query_row(
        "SELECT min(next_ms) FROM webhook_deliveries WHERE state = 'pending'",
        [],
        |r| r.get(0),
    )
}

/// Records an attempt of delivery `id`: its new state, next due time,
/// status and error; counts the attempt.
pub fn record_attempt(
    conn: &Connection,
    id: i64,
    state: &str,
    next_ms: i64,
    status: Option<u16>,
    error: Option<&str>,
) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE webhook_deliveries SET attempts = attempts + 1, state = ?2, next_ms = ?3,
            last_status = ?4, last_error = ?5, updated_ms = ?6
         WHERE id = ?1",
        params![id, state, next_ms, status, error, crate::now_ms()],
    )?;
    Ok(())
}

/// The latest deliveries, newest first: of one subscription, or of all.
pub fn deliveries(
    conn: &Connection,
    subscription: Option<i64>,
    limit: usize,
) -> rusqlite::Result<Vec<DeliveryRow>> {
    let mut stmt = conn.prepare_cached(
        "SELECT d.id, d.event_id, coalesce(e.event_type, ''), d.subscription,
                coalesce(s.tenant, e.tenant, ''), d.attempts, d.next_ms, d.state,
                d.last_status, d.last_error, d.updated_ms
         FROM webhook_deliveries d
         LEFT JOIN webhook_events e ON e.id = d.event_id
         LEFT JOIN webhook_subscriptions s ON s.id = d.subscription
         WHERE ?1 IS NULL OR d.subscription = ?1
         ORDER BY d.id DESC LIMIT ?2",
    )?;
    stmt.query_map(params![subscription, limit as i64], |r| {
        Ok(DeliveryRow {
            id: r.get(0)?,
            event_id: r.get(1)?,
            event_type: r.get(2)?,
            subscription: r.get(3)?,
            tenant: r.get(4)?,
            attempts: r.get(5)?,
            next_ms: r.get(6)?,
            state: r.get(7)?,
            last_status: r.get(8)?,
            last_error: r.get(9)?,
            updated_ms: r.get(10)?,
        })
    })?
    .collect()
}

/// `s` as a JSON string.
pub fn json_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The tenant of the switch's own events (plugin swaps, the KEK's
/// rotation, audit alerts without a tenant): the default tenant.
pub const SWITCH_TENANT: &str = "default";

/// The webhook event of a swap history record's action: `swap` →
/// `plugin.swapped`, `rollback` → `plugin.rolled_back`; `None` for a
/// version that did not change (`swap (unchanged)`). Refused swaps leave
/// no record: the admin crate emits `plugin.refused`.
pub fn swap_event_type(action: &str) -> Option<&'static str> {
    match action {
        "swap" => Some("plugin.swapped"),
        "rollback" => Some("plugin.rolled_back"),
        _ => None,
    }
}

/// The `data` of a swap's webhook event.
pub fn swap_payload(r: &switchyard_engine::ports::SwapRecord) -> String {
    format!(
        "{{\"plugin\":{},\"action\":{},\"old_hash\":{},\"new_hash\":{},\"actor\":{},\"at_ms\":{}}}",
        json_str(&r.plugin),
        json_str(&r.action),
        json_str(&r.old_hash),
        json_str(&r.new_hash),
        json_str(&r.actor),
        r.at_ms
    )
}
