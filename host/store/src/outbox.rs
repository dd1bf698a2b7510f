//! The webhooks' outbox (issue 11, item 7): an event row written in the
//! same SQLite transaction as the state change it reports; the admin
//! crate's dispatcher delivers it.

use rusqlite::{Connection, params};

/// The tables of this module (schema v6), created idempotently.
pub const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS webhook_events (
    id TEXT PRIMARY KEY,
    tenant TEXT NOT NULL,
    event_type TEXT NOT NULL,
    payload TEXT NOT NULL,
    created_ms INTEGER NOT NULL
);
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
    getrandom::getrandom(&mut raw)
        .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
    let id = format!("msg_{}", hex::encode(raw));
    conn.execute(
        "INSERT INTO webhook_events (id, tenant, event_type, payload, created_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![id, tenant, event_type, payload, crate::now_ms()],
    )?;
    Ok(id)
}
