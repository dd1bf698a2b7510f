//! The store-and-forward queue on PostgreSQL: claims take due entries
//! with `FOR UPDATE SKIP LOCKED` and lease them, so that no entry is ever
//! held by two nodes (or two workers) at once; an expired lease (its
//! holder died) makes the entry claimable again.
//!
//! An attempt's webhook event (`reversal.escalated`, then
//! `reversal.acknowledged`) commits in the attempt's transaction, written
//! once per entry: by the attempt whose update changed the pending row.

use std::time::Duration;

use switchyard_engine::ports::{
    Attempt, PortFuture, SafEntry, SafFilter, SafId, SafKind, SafQueue, SafState, SafStats, TxId,
};
use tokio_postgres::Row;

use super::PgStore;
use crate::error::SqlContext;
use crate::saf::Outboxed;
use crate::{StoreError, now_ms};

const COLUMNS: &str = "id, tenant, kind, endpoint, source, original, reason, state, attempts,
    created_ms, next_ms, last_attempt_ms, last_result, escalated, acked_ms, lease_owner,
    lease_until";

fn entry(r: &Row) -> Result<SafEntry, StoreError> {
    let kind: String = r.get(2);
    let state: String = r.get(7);
    let attempts: i32 = r.get(8);
    let owner: Option<String> = r.get(15);
    let until: Option<i64> = r.get(16);
    Ok(SafEntry {
        id: r.get(0),
        tenant: r.get(1),
        kind: SafKind::parse(&kind)
            .ok_or_else(|| StoreError::Corrupt(format!("store-and-forward kind {kind:?}")))?,
        endpoint: r.get(3),
        source: r.get(4),
        original: r.get(5),
        reason: r.get(6),
        state: match state.as_str() {
            "pending" => SafState::Pending,
            "done" => SafState::Done,
            _ => {
                return Err(StoreError::Corrupt(format!(
                    "store-and-forward state {state:?}"
                )));
            }
        },
        attempts: attempts.max(0) as u32,
        created_ms: r.get(9),
        next_ms: r.get(10),
        last_attempt_ms: r.get(11),
        last_result: r.get(12),
        escalated: r.get(13),
        acked_ms: r.get(14),
        lease: owner.zip(until),
    })
}

fn entries(rows: &[Row]) -> Result<Vec<SafEntry>, StoreError> {
    rows.iter().map(entry).collect()
}

impl PgStore {
    /// Records an attempt in one transaction that holds the entry's row:
    /// the webhook event it causes (issue 11: the escalation, and the
    /// acknowledgement after it) commits with it, written only by the
    /// attempt whose update changed a pending entry. A second node's
    /// attempt on the same entry (its lease lost, the entry claimed again
    /// elsewhere) waits for the row, then finds it done, or escalated
    /// already, and writes nothing.
    async fn attempted_async(&self, id: SafId, attempt: Attempt) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client
            .transaction()
            .await
            .what("recording a delivery attempt")?;
        let found = tx
            .query_opt(
                "SELECT kind, original, state, tenant, endpoint, escalated FROM saf
                 WHERE id = $1 FOR UPDATE",
                &[&id],
            )
            .await
            .what("reading a store-and-forward entry")?
            .ok_or_else(|| StoreError::Invalid(format!("no store-and-forward entry {id}")))?;
        let (kind, original, state): (String, TxId, String) =
            (found.get(0), found.get(1), found.get(2));
        let outboxed = Outboxed {
            tenant: found.get(3),
            endpoint: found.get(4),
            escalated: found.get(5),
        };
        if state == "done" {
            // Acknowledged before: never reopened.
            return Ok(());
        }
        match attempt {
            Attempt::Acked(rc) => {
                let changed = tx
                    .execute(
                        "UPDATE saf SET state = 'done', acked_ms = $2, last_result = $3,
                            lease_owner = NULL, lease_until = NULL
                         WHERE id = $1 AND state = 'pending'",
                        &[&id, &now_ms(), &rc],
                    )
                    .await
                    .what("recording an acknowledgement")?;
                if changed == 1 && outboxed.escalated {
                    let event = "reversal.acknowledged";
                    outbox_event(&tx, &outboxed, event, id, &kind, original, &rc).await?;
                }
                if kind != SafKind::Advice.name() {
                    tx.execute(
                        "UPDATE tranlog SET state = 'reversed' WHERE id = $1 AND NOT EXISTS (
                            SELECT 1 FROM saf WHERE original = $1 AND state = 'pending'
                              AND kind IN ('reversal', 'local-reversal'))",
                        &[&original],
                    )
                    .await
                    .what("marking a transaction reversed")?;
                }
            }
            Attempt::Failed {
                result,
                next_ms,
                escalate,
            } => {
                let changed = tx
                    .execute(
                        "UPDATE saf SET last_result = $2, next_ms = $3,
                            escalated = escalated OR $4, lease_owner = NULL, lease_until = NULL
                         WHERE id = $1 AND state = 'pending'",
                        &[&id, &result, &next_ms, &escalate],
                    )
                    .await
                    .what("recording a failed attempt")?;
                if changed == 1 && escalate && !outboxed.escalated {
                    let event = "reversal.escalated";
                    outbox_event(&tx, &outboxed, event, id, &kind, original, &result).await?;
                }
            }
        }
        tx.commit().await.what("recording a delivery attempt")
    }
}

/// Writes the webhook event of an entry in the attempt's transaction.
async fn outbox_event(
    tx: &tokio_postgres::Transaction<'_>,
    o: &Outboxed,
    event_type: &str,
    id: SafId,
    kind: &str,
    original: TxId,
    result: &str,
) -> Result<(), StoreError> {
    let data = o.data(id, kind, original, result);
    super::outbox::insert_event(tx, &o.tenant, event_type, &data).await?;
    Ok(())
}

impl SafQueue for PgStore {
    fn claim(
        &self,
        endpoint: &str,
        owner: &str,
        now_ms: i64,
        lease: Duration,
        limit: usize,
    ) -> PortFuture<Vec<SafEntry>> {
        let (endpoint, owner) = (endpoint.to_string(), owner.to_string());
        let until = now_ms.saturating_add(lease.as_millis() as i64);
        let limit = limit as i64;
        self.task(move |me| async move {
            let client = me.client().await?;
            let rows = client
                .query(
                    &format!(
                        "UPDATE saf SET lease_owner = $2, lease_until = $4,
                            attempts = attempts + 1, last_attempt_ms = $3
                         WHERE id IN (
                            SELECT id FROM saf
                            WHERE endpoint = $1 AND state = 'pending' AND next_ms <= $3
                              AND (lease_owner IS NULL OR lease_until <= $3)
                            ORDER BY id LIMIT $5
                            FOR UPDATE SKIP LOCKED)
                         RETURNING {COLUMNS}"
                    ),
                    &[&endpoint, &owner, &now_ms, &until, &limit],
                )
                .await
                .what("claiming store-and-forward entries")?;
            let mut out = entries(&rows)?;
            out.sort_by_key(|e| e.id);
            Ok(out)
        })
    }

    fn attempted(&self, id: SafId, attempt: Attempt) -> PortFuture<()> {
        self.task(move |me| async move { me.attempted_async(id, attempt).await })
    }

    fn next_due(&self, endpoint: &str) -> PortFuture<Option<i64>> {
        let endpoint = endpoint.to_string();
        self.task(move |me| async move {
            let client = me.client().await?;
            Ok(client
                .query_one(
                    "SELECT min(CASE WHEN lease_until > next_ms THEN lease_until ELSE next_ms END)
                     FROM saf WHERE endpoint = $1 AND state = 'pending'",
                    &[&endpoint],
                )
                .await
                .what("reading the next due entry")?
                .get(0))
        })
    }

    fn retry_now(&self, id: SafId) -> PortFuture<bool> {
        self.task(move |me| async move {
            let client = me.client().await?;
            let n = client
                .execute(
                    "UPDATE saf SET next_ms = $2 WHERE id = $1 AND state = 'pending'",
                    &[&id, &now_ms()],
                )
                .await
                .what("making an entry due now")?;
            Ok(n > 0)
        })
    }

    fn entry(&self, id: SafId) -> PortFuture<Option<SafEntry>> {
        self.task(move |me| async move {
            let client = me.client().await?;
            client
                .query_opt(&format!("SELECT {COLUMNS} FROM saf WHERE id = $1"), &[&id])
                .await
                .what("reading a store-and-forward entry")?
                .map(|r| entry(&r))
                .transpose()
        })
    }

    fn entries_of(&self, original: TxId) -> PortFuture<Vec<SafEntry>> {
        self.task(move |me| async move {
            let client = me.client().await?;
            let rows = client
                .query(
                    &format!("SELECT {COLUMNS} FROM saf WHERE original = $1 ORDER BY id"),
                    &[&original],
                )
                .await
                .what("reading a transaction's store-and-forward entries")?;
            entries(&rows)
        })
    }

    fn list(&self, filter: SafFilter) -> PortFuture<Vec<SafEntry>> {
        self.task(move |me| async move {
            let client = me.client().await?;
            let limit = if filter.limit == 0 {
                i64::MAX
            } else {
                filter.limit as i64
            };
            let rows = client
                .query(
                    &format!(
                        "SELECT {COLUMNS} FROM saf
                         WHERE ($1::TEXT IS NULL OR endpoint = $1) AND ($2 OR state = 'pending')
                         ORDER BY id LIMIT $3"
                    ),
                    &[&filter.endpoint, &filter.include_done, &limit],
                )
                .await
                .what("listing store-and-forward entries")?;
            entries(&rows)
        })
    }

    fn stats(&self) -> PortFuture<Vec<(String, SafStats)>> {
        self.task(|me| async move {
            let client = me.client().await?;
            let rows = client
                .query(
                    "SELECT endpoint, count(*), count(*) FILTER (WHERE escalated), min(created_ms)
                     FROM saf WHERE state = 'pending' GROUP BY endpoint ORDER BY endpoint",
                    &[],
                )
                .await
                .what("reading the queue's depth")?;
            Ok(rows
                .iter()
                .map(|r| {
                    (
                        r.get::<_, String>(0),
                        SafStats {
                            pending: r.get::<_, i64>(1) as u64,
                            escalated: r.get::<_, i64>(2) as u64,
                            oldest_ms: r.get(3),
                        },
                    )
                })
                .collect())
        })
    }
}
