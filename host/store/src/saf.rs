//! The store-and-forward queue: reversals and advices, delivered until
//! acknowledged, never deleted or expired while pending.
//!
//! Leases: `claim` is one conditional `UPDATE … WHERE id IN (SELECT … due
//! and not leased, or its lease expired) RETURNING`, run
//! by the single writer, so two workers can never hold one entry at once.
//! On PostgreSQL the same statement with `FOR UPDATE SKIP LOCKED` in the
//! subquery keeps that true across nodes. A claim counts the attempt and
//! is durable before it resolves: after a crash the next send is known to
//! be a retransmission. An unexpired lease excludes its own holder too (a
//! worker claiming again gets the next entries, never a second copy of one
//! it is sending); a lease ends with `attempted`, at expiry, or when
//! `recover` releases the node's leases at start-up. Owners are the node
//! id, or `node/worker`.

use rusqlite::{OptionalExtension, Row, params};
use switchyard_engine::ports::{
    Attempt, NewSaf, PortFuture, SafEntry, SafFilter, SafId, SafKind, SafQueue, SafState, SafStats,
    TxId,
};

use crate::error::SqlContext;
use crate::store::SqliteStore;
use crate::writer::Batch;
use crate::{StoreError, now_ms};

const COLUMNS: &str = "id, tenant, kind, endpoint, source, original, reason, state, attempts,
    created_ms, next_ms, last_attempt_ms, last_result, escalated, acked_ms, lease_owner,
    lease_until";

fn entry(r: &Row<'_>) -> rusqlite::Result<SafEntry> {
    let kind: String = r.get(2)?;
    let state: String = r.get(7)?;
    let bad = |what: &str, v: &str| {
        rusqlite::Error::FromSqlConversionFailure(
            0,
            rusqlite::types::Type::Text,
            format!("store-and-forward entry: {what} {v:?}").into(),
        )
    };
    let owner: Option<String> = r.get(15)?;
    let until: Option<i64> = r.get(16)?;
    Ok(SafEntry {
        id: r.get(0)?,
        tenant: r.get(1)?,
        kind: SafKind::parse(&kind).ok_or_else(|| bad("kind", &kind))?,
        endpoint: r.get(3)?,
        source: r.get(4)?,
        original: r.get(5)?,
        reason: r.get(6)?,
        state: match state.as_str() {
            "pending" => SafState::Pending,
            "done" => SafState::Done,
            _ => return Err(bad("state", &state)),
        },
        attempts: r.get(8)?,
        created_ms: r.get(9)?,
        next_ms: r.get(10)?,
        last_attempt_ms: r.get(11)?,
        last_result: r.get(12)?,
        escalated: r.get::<_, i64>(13)? != 0,
        acked_ms: r.get(14)?,
        lease: owner.zip(until),
    })
}

/// Queues `saf` for `tenant` unless an entry of the same kind, endpoint and
/// original exists (then returns that one): a reversal is never queued
/// twice.
pub(crate) fn queue_once(
    b: &mut Batch<'_>,
    tenant: &str,
    saf: &NewSaf,
) -> Result<SafId, StoreError> {
    let existing: Option<SafId> = b
        .conn
        .prepare_cached(
            "SELECT id FROM saf WHERE original = ?1 AND kind = ?2 AND endpoint = ?3
             ORDER BY id LIMIT 1",
        )
        .and_then(|mut s| {
            s.query_row(params![saf.original, saf.kind.name(), saf.endpoint], |r| {
                r.get(0)
            })
            .optional()
        })
        .what("looking for a queued store-and-forward entry")?;
    if let Some(id) = existing {
        return Ok(id);
    }
    let now = now_ms();
    b.conn
        .prepare_cached(
            "INSERT INTO saf (tenant, kind, endpoint, source, original, reason, state, attempts,
                created_ms, next_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'pending', 0, ?7, ?7)",
        )
        .and_then(|mut s| {
            s.execute(params![
                tenant,
                saf.kind.name(),
                saf.endpoint,
                saf.source,
                saf.original,
                saf.reason,
                now
            ])
        })
        .what("queueing a store-and-forward entry")?;
    b.wrote(1);
    let id = b.conn.last_insert_rowid();
    tracing::info!(saf = id, kind = saf.kind.name(), endpoint = %saf.endpoint, original = saf.original, "queued");
    Ok(id)
}

/// Whether a reversal (to an endpoint or local) of `original` is queued or
/// was delivered.
pub(crate) fn has_reversal(b: &Batch<'_>, original: TxId) -> Result<bool, StoreError> {
    b.conn
        .prepare_cached(
            "SELECT count(*) FROM saf WHERE original = ?1 AND kind IN ('reversal', 'local-reversal')",
        )
        .and_then(|mut s| s.query_row([original], |r| r.get::<_, i64>(0)))
        .map(|n| n > 0)
        .what("looking for a queued reversal")
}

/// Releases the leases of `node` (and its workers, `node/…`).
pub(crate) fn release_leases(b: &mut Batch<'_>, node: &str) -> Result<u64, StoreError> {
    let n = b
        .conn
        .prepare_cached(
            "UPDATE saf SET lease_owner = NULL, lease_until = NULL
             WHERE lease_owner = ?1 OR substr(lease_owner, 1, length(?1) + 1) = ?1 || '/'",
        )
        .and_then(|mut s| s.execute([node]))
        .what("releasing store-and-forward leases")?;
    b.wrote(n);
    Ok(n as u64)
}

fn claim(
    b: &mut Batch<'_>,
    endpoint: &str,
    owner: &str,
    now: i64,
    until: i64,
    limit: usize,
) -> Result<Vec<SafEntry>, StoreError> {
    let mut entries: Vec<SafEntry> = b
        .conn
        .prepare_cached(&format!(
            "UPDATE saf SET lease_owner = ?2, lease_until = ?4, attempts = attempts + 1,
                last_attempt_ms = ?3
             WHERE id IN (
                SELECT id FROM saf
                WHERE endpoint = ?1 AND state = 'pending' AND next_ms <= ?3
                  AND (lease_owner IS NULL OR lease_until <= ?3)
                ORDER BY id LIMIT ?5)
             RETURNING {COLUMNS}"
        ))
        .and_then(|mut s| {
            s.query_map(params![endpoint, owner, now, until, limit as i64], entry)?
                .collect()
        })
        .what("claiming store-and-forward entries")?;
    b.wrote(entries.len());
    entries.sort_by_key(|e| e.id);
    Ok(entries)
}

fn attempted(b: &mut Batch<'_>, id: SafId, attempt: Attempt) -> Result<(), StoreError> {
    let found: Option<(String, TxId, String, Outboxed)> = b
        .conn
        .prepare_cached(
            "SELECT kind, original, state, tenant, endpoint, escalated FROM saf WHERE id = ?1",
        )
        .and_then(|mut s| {
            s.query_row([id], |r| {
                let o = Outboxed {
                    tenant: r.get(3)?,
                    endpoint: r.get(4)?,
                    escalated: r.get::<_, i64>(5)? != 0,
                };
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, o))
            })
            .optional()
        })
        .what("reading a store-and-forward entry")?;
    let (kind, original, state, outboxed) =
        found.ok_or_else(|| StoreError::Invalid(format!("no store-and-forward entry {id}")))?;
    if state == "done" {
        // Acknowledged before: never reopened.
        return Ok(());
    }
    match attempt {
        Attempt::Acked(rc) => {
            let n = b
                .conn
                .prepare_cached(
                    "UPDATE saf SET state = 'done', acked_ms = ?2, last_result = ?3,
                        lease_owner = NULL, lease_until = NULL
                     WHERE id = ?1",
                )
                .and_then(|mut s| s.execute(params![id, now_ms(), rc]))
                .what("recording an acknowledgement")?;
            b.wrote(n);
            if outboxed.escalated {
                outboxed.event(b, "reversal.acknowledged", id, &kind, original, &rc)?;
            }
            if kind != SafKind::Advice.name() {
                // Reversed once no reversal of it is still pending.
                let n = b
                    .conn
                    .prepare_cached(
                        "UPDATE tranlog SET state = 'reversed' WHERE id = ?1 AND NOT EXISTS (
                            SELECT 1 FROM saf WHERE original = ?1 AND state = 'pending'
                              AND kind IN ('reversal', 'local-reversal'))",
                    )
                    .and_then(|mut s| s.execute([original]))
                    .what("marking a transaction reversed")?;
                b.wrote(n);
            }
        }
        Attempt::Failed {
            result,
            next_ms,
            escalate,
        } => {
            let n = b
                .conn
                .prepare_cached(
                    "UPDATE saf SET last_result = ?2, next_ms = ?3, escalated = max(escalated, ?4),
                        lease_owner = NULL, lease_until = NULL
                     WHERE id = ?1",
                )
                .and_then(|mut s| s.execute(params![id, result, next_ms, escalate as i64]))
                .what("recording a failed attempt")?;
            b.wrote(n);
            if escalate && !outboxed.escalated {
                outboxed.event(b, "reversal.escalated", id, &kind, original, &result)?;
            }
        }
    }
    Ok(())
}

/// What a webhook event of an entry says (issue 11: escalation and the
/// acknowledgement after it, in the attempt's own transaction); both
/// backends write the same `data`.
pub(crate) struct Outboxed {
    pub(crate) tenant: String,
    pub(crate) endpoint: String,
    pub(crate) escalated: bool,
}

impl Outboxed {
    /// The event's `data`.
    pub(crate) fn data(&self, id: SafId, kind: &str, original: TxId, result: &str) -> String {
        format!(
            "{{\"saf_id\":{id},\"kind\":{},\"endpoint\":{},\"original\":{original},\"result\":{}}}",
            crate::outbox::json_str(kind),
            crate::outbox::json_str(&self.endpoint),
            crate::outbox::json_str(result)
        )
    }

    fn event(
        &self,
        b: &mut Batch<'_>,
        event_type: &str,
        id: SafId,
        kind: &str,
        original: TxId,
        result: &str,
    ) -> Result<(), StoreError> {
        let data = self.data(id, kind, original, result);
        crate::outbox::insert_event(b.conn, &self.tenant, event_type, &data)
            .what("writing a webhook event")?;
        b.wrote(1);
        Ok(())
    }
}

impl SqliteStore {
    fn saf_read<T>(
        &self,
        f: impl FnMut(&rusqlite::Connection) -> Result<T, StoreError>,
    ) -> PortFuture<T>
    where
        T: Send + 'static,
    {
        self.ready(self.read(f))
    }
}

fn limit_of(limit: usize) -> i64 {
    if limit == 0 { -1 } else { limit as i64 }
}

impl SafQueue for SqliteStore {
    fn claim(
        &self,
        endpoint: &str,
        owner: &str,
        now_ms: i64,
        lease: std::time::Duration,
        limit: usize,
    ) -> PortFuture<Vec<SafEntry>> {
        let (endpoint, owner) = (endpoint.to_string(), owner.to_string());
        let until = now_ms.saturating_add(lease.as_millis() as i64);
        self.durable(false, move |b| {
            claim(b, &endpoint, &owner, now_ms, until, limit)
        })
    }

    fn attempted(&self, id: SafId, attempt: Attempt) -> PortFuture<()> {
        self.durable(true, move |b| attempted(b, id, attempt))
    }

    fn next_due(&self, endpoint: &str) -> PortFuture<Option<i64>> {
        let endpoint = endpoint.to_string();
        self.saf_read(move |conn| {
            conn.prepare_cached(
                "SELECT min(CASE WHEN lease_until > next_ms THEN lease_until ELSE next_ms END)
                 FROM saf WHERE endpoint = ?1 AND state = 'pending'",
            )
            .and_then(|mut s| s.query_row([&endpoint], |r| r.get(0)))
            .what("reading the next due entry")
        })
    }

    fn retry_now(&self, id: SafId) -> PortFuture<bool> {
        self.durable(false, move |b| {
            let n = b
                .conn
                .prepare_cached("UPDATE saf SET next_ms = ?2 WHERE id = ?1 AND state = 'pending'")
                .and_then(|mut s| s.execute(params![id, now_ms()]))
                .what("making an entry due now")?;
            b.wrote(n);
            Ok(n > 0)
        })
    }

    fn entry(&self, id: SafId) -> PortFuture<Option<SafEntry>> {
        self.saf_read(move |conn| {
            conn.prepare_cached(&format!("SELECT {COLUMNS} FROM saf WHERE id = ?1"))
                .and_then(|mut s| s.query_row([id], entry).optional())
                .what("reading a store-and-forward entry")
        })
    }

    fn entries_of(&self, original: TxId) -> PortFuture<Vec<SafEntry>> {
        self.saf_read(move |conn| {
            conn.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM saf WHERE original = ?1 ORDER BY id"
            ))
            .and_then(|mut s| s.query_map([original], entry)?.collect())
            .what("reading a transaction's store-and-forward entries")
        })
    }

    fn list(&self, filter: SafFilter) -> PortFuture<Vec<SafEntry>> {
        self.saf_read(move |conn| {
            conn.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM saf
                 WHERE (?1 IS NULL OR endpoint = ?1) AND (?2 OR state = 'pending')
                 ORDER BY id LIMIT ?3"
            ))
            .and_then(|mut s| {
                s.query_map(
                    params![filter.endpoint, filter.include_done, limit_of(filter.limit)],
                    entry,
                )?
                .collect()
            })
            .what("listing store-and-forward entries")
        })
    }

    fn stats(&self) -> PortFuture<Vec<(String, SafStats)>> {
        self.saf_read(|conn| {
            conn.prepare_cached(
                "SELECT endpoint, count(*), sum(escalated), min(created_ms) FROM saf
                 WHERE state = 'pending' GROUP BY endpoint ORDER BY endpoint",
            )
            .and_then(|mut s| {
                s.query_map([], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        SafStats {
                            pending: r.get::<_, i64>(1)? as u64,
                            escalated: r.get::<_, i64>(2)? as u64,
                            oldest_ms: r.get(3)?,
                        },
                    ))
                })?
                .collect()
            })
            .what("reading the queue's depth")
        })
    }
}
