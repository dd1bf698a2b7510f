//! The webhooks' outbox on PostgreSQL: an event row written in the same
//! transaction as the state change it reports (as on SQLite); any node's
//! dispatcher fans it out, once (`webhook_events.fanned`).

use tokio_postgres::GenericClient;

use crate::StoreError;
use crate::error::SqlContext;

/// Writes one event (`payload`: its JSON `data`) in the caller's
/// transaction (or alone); returns its id (`msg_…`, the `webhook-id`).
pub(crate) async fn insert_event<C: GenericClient + Sync>(
    client: &C,
    tenant: &str,
    event_type: &str,
    payload: &str,
) -> Result<String, StoreError> {
    let mut raw = [0u8; 16];
    getrandom::getrandom(&mut raw)
        .map_err(|e| StoreError::Invalid(format!("no randomness for an event id: {e}")))?;
    let id = format!("msg_{}", hex::encode(raw));
    client
        .execute(
            "INSERT INTO webhook_events (id, tenant, event_type, payload, created_ms)
             VALUES ($1, $2, $3, $4, $5)",
            &[&id, &tenant, &event_type, &payload, &crate::now_ms()],
        )
        .await
        .what("writing a webhook event")?;
    Ok(id)
}
