//! [`OutboxDb`] on PostgreSQL: events fanned out once (`fanned`, rows
//! claimed with `SKIP LOCKED`), deliveries claimed with a lease.

use tokio_postgres::{GenericClient, Row};

use super::{PgOperator, SYNC_LOCK};
use crate::error::SqlContext;
use crate::operator::{OpResult, OutboxDb, matches};
use crate::outbox::{DeliveryRow, EventRow, SubscriptionRow};
use crate::{StoreError, now_ms};

const SUB_COLUMNS: &str = "id, name, url, secret, tenant, events, source, disabled, created_ms";

fn subscription_of(r: &Row) -> SubscriptionRow {
    SubscriptionRow {
        id: r.get(0),
        name: r.get(1),
        url: r.get(2),
        secret: r.get(3),
        tenant: r.get(4),
        events: r.get(5),
        source: r.get(6),
        disabled: r.get(7),
        created_ms: r.get(8),
    }
}

async fn subscriptions<C: GenericClient + Sync>(
    c: &C,
    what: &str,
) -> Result<Vec<SubscriptionRow>, StoreError> {
    let rows = c
        .query(
            &format!("SELECT {SUB_COLUMNS} FROM webhook_subscriptions ORDER BY id"),
            &[],
        )
        .await
        .what(what)?;
    Ok(rows.iter().map(subscription_of).collect())
}

async fn subscription_by_id<C: GenericClient + Sync>(
    c: &C,
    id: i64,
    what: &str,
) -> Result<Option<SubscriptionRow>, StoreError> {
    let row = c
        .query_opt(
            &format!("SELECT {SUB_COLUMNS} FROM webhook_subscriptions WHERE id = $1"),
            &[&id],
        )
        .await
        .what(what)?;
    Ok(row.as_ref().map(subscription_of))
}

/// Inserts or updates `(source, name)`; a changed URL or secret enables
/// it again.
async fn upsert_subscription<C: GenericClient + Sync>(
    c: &C,
    s: &SubscriptionRow,
    what: &str,
) -> Result<i64, StoreError> {
    let row = c
        .query_one(
            "INSERT INTO webhook_subscriptions AS s
                (name, url, secret, tenant, events, source, disabled, created_ms)
             VALUES ($1, $2, $3, $4, $5, $6, false, $7)
             ON CONFLICT (source, name) DO UPDATE SET
                disabled = CASE WHEN s.url = EXCLUDED.url AND s.secret = EXCLUDED.secret
                                THEN s.disabled ELSE false END,
                url = EXCLUDED.url, secret = EXCLUDED.secret, tenant = EXCLUDED.tenant,
                events = EXCLUDED.events
             RETURNING id",
            &[
                &s.name,
                &s.url,
                &s.secret,
                &s.tenant,
                &s.events,
                &s.source,
                &now_ms(),
            ],
        )
        .await
        .what(what)?;
    Ok(row.get(0))
}

/// Deletes subscription `id`; its pending deliveries become `disabled`.
async fn delete_subscription<C: GenericClient + Sync>(
    c: &C,
    id: i64,
    what: &str,
) -> Result<bool, StoreError> {
    c.execute(
        "UPDATE webhook_deliveries SET state = 'disabled', updated_ms = $2
         WHERE subscription = $1 AND state = 'pending'",
        &[&id, &now_ms()],
    )
    .await
    .what(what)?;
    let n = c
        .execute("DELETE FROM webhook_subscriptions WHERE id = $1", &[&id])
        .await
        .what(what)?;
    Ok(n > 0)
}

async fn record_attempt<C: GenericClient + Sync>(
    c: &C,
    (id, state, next_ms): (i64, &str, i64),
    status: Option<u16>,
    error: Option<&str>,
    what: &str,
) -> Result<(), StoreError> {
    c.execute(
        "UPDATE webhook_deliveries SET attempts = attempts + 1, state = $2, next_ms = $3,
            last_status = $4, last_error = $5, updated_ms = $6
         WHERE id = $1",
        &[
            &id,
            &state,
            &next_ms,
            &status.map(i64::from),
            &error,
            &now_ms(),
        ],
    )
    .await
    .what(what)?;
    Ok(())
}

fn limit_of(limit: usize) -> i64 {
    limit.min(i64::MAX as usize) as i64
}

impl OutboxDb for PgOperator {
    fn insert_event(&self, tenant: &str, event_type: &str, payload: &str) -> OpResult<String> {
        let (tenant, event_type, payload) =
            (tenant.to_owned(), event_type.to_owned(), payload.to_owned());
        self.wait(move |s| async move {
            let client = s.client().await?;
            crate::pg::outbox::insert_event(&**client, &tenant, &event_type, &payload).await
        })
    }

    fn event(&self, id: &str) -> OpResult<Option<EventRow>> {
        let row = self.query_opt(
            "reading a webhook event",
            "SELECT seq, id, tenant, event_type, payload, created_ms FROM webhook_events
             WHERE id = $1",
            args![id.to_owned()],
        )?;
        Ok(row.map(|r| EventRow {
            seq: r.get(0),
            id: r.get(1),
            tenant: r.get(2),
            event_type: r.get(3),
            payload: r.get(4),
            created_ms: r.get(5),
        }))
    }

    fn subscriptions(&self) -> OpResult<Vec<SubscriptionRow>> {
        self.wait(move |s| async move {
            let client = s.client().await?;
            subscriptions(&**client, "reading the webhook subscriptions").await
        })
    }

    fn subscription_by_id(&self, id: i64) -> OpResult<Option<SubscriptionRow>> {
        self.wait(move |s| async move {
            let client = s.client().await?;
            subscription_by_id(&**client, id, "reading a webhook subscription").await
        })
    }

    fn upsert_subscription(&self, sub: &SubscriptionRow) -> OpResult<i64> {
        let sub = sub.clone();
        self.wait(move |s| async move {
            let client = s.client().await?;
            upsert_subscription(&**client, &sub, "writing a webhook subscription").await
        })
    }

    fn delete_subscription(&self, id: i64) -> OpResult<bool> {
        let what = "deleting a webhook subscription";
        self.wait(move |s| async move {
            let mut client = s.client().await?;
            let tx = client.transaction().await.what(what)?;
            let existed = delete_subscription(&*tx, id, what).await?;
            tx.commit().await.what(what)?;
            Ok(existed)
        })
    }

    fn sync_config(&self, rows: &[SubscriptionRow]) -> OpResult<()> {
        let what = "recording the config's webhook subscriptions";
        let rows = rows.to_vec();
        self.wait(move |s| async move {
            let mut client = s.client().await?;
            let tx = client.transaction().await.what(what)?;
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&SYNC_LOCK])
                .await
                .what("waiting for the webhook subscriptions' lock")?;
            for row in &rows {
                upsert_subscription(&*tx, row, what).await?;
            }
            for old in subscriptions(&*tx, what).await? {
                if old.source == "config" && !rows.iter().any(|s| s.name == old.name) {
                    delete_subscription(&*tx, old.id, what).await?;
                }
            }
            tx.commit().await.what(what)
        })
    }

    fn fan_out(&self, limit: usize, first_delay_ms: i64) -> OpResult<usize> {
        let what = "fanning out webhook events";
        let limit = limit_of(limit);
        self.wait(move |s| async move {
            let mut client = s.client().await?;
            let tx = client.transaction().await.what(what)?;
            let events = tx
                .query(
                    "SELECT seq, id, tenant, event_type, created_ms FROM webhook_events
                     WHERE NOT fanned ORDER BY seq LIMIT $1 FOR UPDATE SKIP LOCKED",
                    &[&limit],
                )
                .await
                .what(what)?;
            if events.is_empty() {
                return Ok(0);
            }
            let subs = subscriptions(&*tx, what).await?;
            let now = now_ms();
            let (mut ids, mut targets, mut due) = (Vec::new(), Vec::new(), Vec::new());
            let mut seqs = Vec::with_capacity(events.len());
            for e in &events {
                let (seq, id, tenant, event_type, created_ms): (i64, String, String, String, i64) =
                    (e.get(0), e.get(1), e.get(2), e.get(3), e.get(4));
                seqs.push(seq);
                for sub in subs.iter().filter(|s| matches(s, &tenant, &event_type)) {
                    ids.push(id.clone());
                    targets.push(sub.id);
                    due.push(created_ms.max(now) + first_delay_ms);
                }
            }
            if !ids.is_empty() {
                tx.execute(
                    "INSERT INTO webhook_deliveries (event_id, subscription, next_ms, state, updated_ms)
                     SELECT event_id, subscription, next_ms, 'pending', $4
                     FROM unnest($1::TEXT[], $2::BIGINT[], $3::BIGINT[])
                          AS t (event_id, subscription, next_ms)
                     ON CONFLICT (event_id, subscription) DO NOTHING",
                    &[&ids, &targets, &due, &now],
                )
                .await
                .what(what)?;
            }
            tx.execute(
                "UPDATE webhook_events SET fanned = true WHERE seq = ANY($1)",
                &[&seqs],
            )
            .await
            .what(what)?;
            tx.commit().await.what(what)?;
            Ok(events.len())
        })
    }

    fn claim_due(
        &self,
        now: i64,
        lease_until: i64,
        limit: usize,
    ) -> OpResult<Vec<(i64, String, i64, i64)>> {
        // The due rows are locked (skipping those another node is claiming)
        // and materialized once, then moved to the lease in one statement.
        let rows = self.query(
            "claiming due webhook deliveries",
            "WITH due AS MATERIALIZED (
                 SELECT id FROM webhook_deliveries
                 WHERE state = 'pending' AND next_ms <= $1
                 ORDER BY next_ms LIMIT $3 FOR UPDATE SKIP LOCKED)
             UPDATE webhook_deliveries d SET next_ms = $2 FROM due WHERE d.id = due.id
             RETURNING d.id, d.event_id, d.subscription, d.attempts",
            args![now, lease_until, limit_of(limit)],
        )?;
        Ok(rows
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
            .collect())
    }

    fn next_due(&self) -> OpResult<Option<i64>> {
        let row = self.query_opt(
            "reading the next webhook delivery",
            "SELECT min(next_ms) FROM webhook_deliveries WHERE state = 'pending'",
            args![],
        )?;
        Ok(row.and_then(|r| r.get(0)))
    }

    fn record_attempt(
        &self,
        id: i64,
        state: &str,
        next_ms: i64,
        status: Option<u16>,
        error: Option<&str>,
    ) -> OpResult<()> {
        let what = "recording a webhook attempt";
        let (state, error) = (state.to_owned(), error.map(str::to_owned));
        self.wait(move |s| async move {
            let client = s.client().await?;
            record_attempt(
                &**client,
                (id, &state, next_ms),
                status,
                error.as_deref(),
                what,
            )
            .await
        })
    }

    fn disable_after(
        &self,
        id: i64,
        subscription: i64,
        status: u16,
    ) -> OpResult<Option<SubscriptionRow>> {
        let what = "disabling a webhook subscription";
        self.wait(move |s| async move {
            let mut client = s.client().await?;
            let tx = client.transaction().await.what(what)?;
            let error = format!("HTTP {status}");
            record_attempt(
                &*tx,
                (id, "disabled", now_ms()),
                Some(status),
                Some(&error),
                what,
            )
            .await?;
            tx.execute(
                "UPDATE webhook_subscriptions SET disabled = true WHERE id = $1",
                &[&subscription],
            )
            .await
            .what(what)?;
            tx.execute(
                "UPDATE webhook_deliveries SET state = 'disabled', updated_ms = $2
                 WHERE subscription = $1 AND state = 'pending'",
                &[&subscription, &now_ms()],
            )
            .await
            .what(what)?;
            let sub = subscription_by_id(&*tx, subscription, what).await?;
            tx.commit().await.what(what)?;
            Ok(sub)
        })
    }

    fn deliveries(&self, subscription: Option<i64>, limit: usize) -> OpResult<Vec<DeliveryRow>> {
        let rows = self.query(
            "reading the webhook deliveries",
            "SELECT d.id, d.event_id, coalesce(e.event_type, ''), d.subscription,
                    coalesce(s.tenant, e.tenant, ''), d.attempts, d.next_ms, d.state,
                    d.last_status, d.last_error, d.updated_ms
             FROM webhook_deliveries d
             LEFT JOIN webhook_events e ON e.id = d.event_id
             LEFT JOIN webhook_subscriptions s ON s.id = d.subscription
             WHERE $1::BIGINT IS NULL OR d.subscription = $1
             ORDER BY d.id DESC LIMIT $2",
            args![subscription, limit_of(limit)],
        )?;
        Ok(rows
            .iter()
            .map(|r| DeliveryRow {
                id: r.get(0),
                event_id: r.get(1),
                event_type: r.get(2),
                subscription: r.get(3),
                tenant: r.get(4),
                attempts: r.get(5),
                next_ms: r.get(6),
                state: r.get(7),
                last_status: r.get(8),
                last_error: r.get(9),
                updated_ms: r.get(10),
            })
            .collect())
    }
}
