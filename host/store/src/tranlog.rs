//! The tranlog's write path: admission (row ids, the match of repeats and
//! duplicates without waiting for the writer), the request going upstream,
//! the outcome, late replies.
//!
//! Admission looks for the earlier row of the same key first among the rows
//! admitted but not committed yet (an in-memory map, sharded by the key's
//! hash), then in the database, all under the shard's lock; the writer
//! removes a row from the map only after its commit, under the same lock.
//! So of two identical requests admitted at once, exactly one is matched by
//! the other.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;
use rusqlite::{OptionalExtension, params};
use sha2::{Digest, Sha256};
use switchyard_engine::ports::{
    Admitted, Columns, Finished, PortFuture, Received, Recorded, SafId, Tranlog, TxId, TxKind,
    TxState,
};

use crate::error::SqlContext;
use crate::keyring::{Purpose, aad};
use crate::staging::{Additions, InsertReply};
use crate::store::SqliteStore;
use crate::writer::Batch;
use crate::{StoreError, codec, followup, query, saf};

/// How far back a repeat or duplicate finds its earlier row.
pub(crate) const MATCH_WINDOW_MS: i64 = 24 * 60 * 60 * 1000;
const SHARDS: usize = 64;

/// Whether rows of `kind` carry a match key.
pub(crate) fn keyed(kind: TxKind) -> bool {
    !matches!(kind, TxKind::Network | TxKind::Other)
}

/// Whether rows of `kind` can be matched by a later request.
pub(crate) fn candidate(kind: TxKind) -> bool {
    matches!(
        kind,
        TxKind::Original | TxKind::Reversal | TxKind::Completion
    )
}

/// Fills the duplicate filter with the keys of the last 24 hours' rows
/// that a request can match (at open, before any admission).
pub(crate) fn fill_recent(
    conn: &rusqlite::Connection,
    recent: &crate::recent::RecentKeys,
) -> Result<(), StoreError> {
    if !recent.enabled() {
        return Ok(());
    }
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
        - MATCH_WINDOW_MS;
    let mut statement = conn
        .prepare(
            "SELECT match_hash, received_ms FROM tranlog
             WHERE id >= ?1 AND match_hash IS NOT NULL
               AND kind IN ('original', 'reversal', 'completion')",
        )
        .what("reading the last day's keys")?;
    let mut rows = statement
        .query([crate::ids::floor_of(since)])
        .what("reading the last day's keys")?;
    let mut n = 0u64;
    while let Some(r) = rows.next().what("reading the last day's keys")? {
        recent.insert(
            r.get(0).what("reading the last day's keys")?,
            r.get(1).what("reading the last day's keys")?,
        );
        n += 1;
    }
    tracing::debug!(keys = n, "duplicate filter filled from the last 24 hours");
    Ok(())
}

/// The indexed hash of a match key: the first 8 bytes of its SHA-256.
pub(crate) fn match_hash(key: &str) -> i64 {
    let digest = Sha256::digest(key.as_bytes());
    i64::from_be_bytes(digest[..8].try_into().expect("8 bytes"))
}

/// The identity (associated data) of a tranlog blob.
pub(crate) fn identity(column: &str, tenant: &str, id: TxId) -> Vec<u8> {
    aad(&[
        b"tranlog",
        column.as_bytes(),
        tenant.as_bytes(),
        &id.to_be_bytes(),
    ])
}

struct PendingRow {
    id: TxId,
    tenant: String,
    key: String,
    kind: TxKind,
    received_ms: i64,
}

/// Rows admitted and not committed yet, by match hash.
pub(crate) struct Pending {
    shards: Vec<Mutex<HashMap<i64, Vec<PendingRow>>>>,
}

impl Pending {
    pub(crate) fn new() -> Pending {
        Pending {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
        }
    }

    fn shard(&self, hash: i64) -> &Mutex<HashMap<i64, Vec<PendingRow>>> {
        &self.shards[(hash as u64 % SHARDS as u64) as usize]
    }

    fn remove(&self, hash: i64, id: TxId) {
        let mut shard = self.shard(hash).lock();
        if let Some(rows) = shard.get_mut(&hash) {
            rows.retain(|r| r.id != id);
            if rows.is_empty() {
                shard.remove(&hash);
            }
        }
    }

    /// Rows waiting for their commit (tests).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().values().map(Vec::len).sum::<usize>())
            .sum()
    }
}

/// A row to insert.
struct NewRow {
    id: TxId,
    tenant: String,
    listener: String,
    node: String,
    kind: TxKind,
    mti: String,
    class: String,
    columns: Columns,
    key: Option<(String, i64)>,
    pan: Option<([u8; 32], String)>,
    received_ms: i64,
    request: Vec<u8>,
}

/// Writes an admitted row as it stands: as received, or with what its
/// transaction added while it was staged (the send, the outcome — and the
/// reversal queued with the outcome, in the same savepoint).
fn insert(b: &mut Batch<'_>, row: NewRow, add: Additions) -> Result<Option<SafId>, StoreError> {
    let reversal = add.finished.as_ref().and_then(|f| f.reversal.clone());
    if reversal.is_none() {
        return insert_row(b, &row, add).map(|()| None);
    }
    b.conn
        .execute_batch("SAVEPOINT staged")
        .what("recording a transaction")?;
    let written = insert_row(b, &row, add).and_then(|()| {
        saf::queue_once(b, &row.tenant, reversal.as_ref().expect("checked")).map(Some)
    });
    let end = match &written {
        Ok(_) => "RELEASE staged",
        Err(_) => "ROLLBACK TO staged; RELEASE staged",
    };
    b.conn.execute_batch(end).what("recording a transaction")?;
    written
}

fn insert_row(b: &mut Batch<'_>, row: &NewRow, add: Additions) -> Result<(), StoreError> {
    let (key_id, request) = b.keyring.seal(
        &row.tenant,
        &identity("request", &row.tenant, row.id),
        &row.request,
    )?;
    let f = add.finished;
    let response = match f.as_ref().and_then(|f| f.response.as_ref()) {
        Some(m) => Some(
            b.keyring
                .seal(
                    &row.tenant,
                    &identity("response", &row.tenant, row.id),
                    &codec::encode(m).0,
                )?
                .1,
        ),
        None => None,
    };
    let state = match (&f, &add.sent) {
        (Some(f), _) => f.state,
        (None, Some(_)) => TxState::Sent,
        (None, None) => TxState::Received,
    };
    let participants = match &f {
        Some(f) => query::join_participants(&f.participants)?,
        None => None,
    };
    let endpoint = f.as_ref().and_then(|f| f.endpoint.clone()).or(add.sent);
    let kind = f.as_ref().and_then(|f| f.kind).unwrap_or(row.kind);
    let c = &row.columns;
    let n = b
        .conn
        .prepare_cached(
            "INSERT INTO tranlog (id, tenant, listener, node, kind, mti, class, processing_code,
                amount, currency, stan, transmitted, rrn, terminal, merchant, acquirer, match_key,
                match_hash, pan_token, pan_masked, state, received_ms, key_id, request,
                rc, approval, response, endpoint, upstream, total_us, external_us, participants,
                original_id, trace)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17,
                ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26, ?27, ?28, ?29, ?30, ?31, ?32, ?33,
                ?34)",
        )
        .and_then(|mut s| {
            s.execute(params![
                row.id,
                row.tenant,
                row.listener,
                row.node,
                kind.name(),
                row.mti,
                row.class,
                c.processing_code,
                c.amount,
                c.currency,
                c.stan,
                c.transmitted,
                c.rrn,
                c.terminal,
                c.merchant,
                c.acquirer,
                row.key.as_ref().map(|k| &k.0),
                row.key.as_ref().map(|k| k.1),
                row.pan.as_ref().map(|p| &p.0[..]),
                row.pan.as_ref().map(|p| &p.1),
                state.name(),
                row.received_ms,
                key_id,
                request,
                f.as_ref().and_then(|f| f.rc.clone()),
                f.as_ref().and_then(|f| f.approval.clone()),
                response,
                endpoint,
                f.as_ref().map(|f| f.upstream.name()),
                f.as_ref().map(|f| f.total.as_micros() as i64),
                f.as_ref()
                    .and_then(|f| f.external.map(|d| d.as_micros() as i64)),
                participants,
                f.as_ref().and_then(|f| f.original),
                f.as_ref().and_then(|f| f.trace.as_deref()),
            ])
        })
        .what("recording a request in the tranlog")?;
    b.wrote(n);
    Ok(())
}

impl SqliteStore {
    fn admit_now(&self, r: Received) -> Result<Admitted, StoreError> {
        if self.writer.is_closed() {
            return Err(StoreError::Closed);
        }
        self.ensure_tenant(&r.tenant)?;
        let pan = match &r.pan {
            Some(pan) => Some((self.pan_token_of(&r.tenant, pan)?, codec::mask_pan(pan))),
            None => None,
        };
        let (request, stripped) = codec::encode(&r.request);
        if stripped {
            tracing::warn!(
                tenant = %r.tenant,
                listener = %r.listener,
                mti = %r.mti,
                "a request given to the tranlog carried track, PIN or chip data: not stored"
            );
        }
        let key = match (&r.key, keyed(r.kind)) {
            (Some(k), true) => Some((k.0.clone(), match_hash(&k.0))),
            _ => None,
        };
        let mut row = NewRow {
            id: 0,
            tenant: r.tenant,
            listener: r.listener,
            node: self.node.clone(),
            kind: r.kind,
            class: codec::class(&r.mti),
            mti: r.mti,
            columns: r.columns,
            key,
            pan,
            received_ms: r.received_ms,
            request,
        };
        let mut always: Option<Box<dyn FnOnce() + Send>> = None;
        let matched = match row.key.clone() {
            None => {
                row.id = self.ids.next();
                None
            }
            Some((key, hash)) => {
                let since = row.received_ms - MATCH_WINDOW_MS;
                let mut shard = self.pending.shard(hash).lock();
                row.id = self.ids.next();
                let pending = shard.get(&hash).and_then(|rows| {
                    rows.iter()
                        .filter(|p| {
                            p.tenant == row.tenant && p.key == key && p.received_ms >= since
                        })
                        .max_by_key(|p| p.id)
                        .map(|p| Recorded {
                            id: p.id,
                            kind: p.kind,
                            state: TxState::Received,
                            node: self.node.clone(),
                            rc: None,
                            response: None,
                            received_ms: p.received_ms,
                        })
                });
                let matched = match pending {
                    Some(m) => Some(m),
                    // Never seen in the last 24 hours: no read.
                    None if !self.recent.may_contain(hash) => None,
                    None => self.recorded(row.columns.stan.as_deref(), &row.tenant, &key, since)?,
                };
                if candidate(row.kind) {
                    self.recent.insert(hash, row.received_ms);
                    shard.entry(hash).or_default().push(PendingRow {
                        id: row.id,
                        tenant: row.tenant.clone(),
                        key,
                        kind: row.kind,
                        received_ms: row.received_ms,
                    });
                    let pending = Arc::clone(&self.pending);
                    let id = row.id;
                    always = Some(Box::new(move || pending.remove(hash, id)));
                }
                matched
            }
        };
        let id = row.id;
        let db = self.db.clone();
        // Not awaited: the next durable write of this transaction waits for
        // it (see `staging`).
        self.staging.stage(id);
        let staging = Arc::clone(&self.staging);
        let log = Arc::clone(&self.counter_log);
        let reply = self.writer.submit(
            false,
            move |b| {
                let add = staging.take(id);
                // Counter changes made before now are written first: a
                // transaction that finished while staged waits for this
                // INSERT only (see `counter_log`).
                if log.used()
                    && let Err(e) = log.flush(b)
                    && add.finished.is_some()
                {
                    tracing::error!(db = %db, id, error = %e, "writing counter changes before a tranlog row");
                    return Err(e);
                }
                insert(b, row, add).inspect_err(|e| {
                    tracing::error!(db = %db, id, error = %e, "recording a request in the tranlog");
                })
            },
            always,
        );
        match reply {
            Ok(reply) => self.staging.arm(id, reply),
            Err(e) => {
                self.staging.take(id);
                return Err(e);
            }
        }
        Ok(Admitted { id, matched })
    }

    /// The newest committed row of this key that a request can match,
    /// found through the STAN index (`stan`: the key's DE11).
    fn recorded(
        &self,
        stan: Option<&str>,
        tenant: &str,
        key: &str,
        since: i64,
    ) -> Result<Option<Recorded>, StoreError> {
        self.read(|conn| {
            let found = conn
                .prepare_cached(
                    "SELECT id, kind, state, node, rc, response, received_ms FROM tranlog
                     WHERE stan IS ?1 AND id >= ?5 AND tenant = ?2 AND match_key = ?3
                       AND kind IN ('original', 'reversal', 'completion') AND received_ms >= ?4
                     ORDER BY id DESC LIMIT 1",
                )
                .and_then(|mut s| {
                    // Ids grow with time: the window bounds the index range.
                    let floor = crate::ids::floor_of(since);
                    s.query_row(params![stan, tenant, key, since, floor], |r| {
                        Ok((
                            r.get::<_, i64>(0)?,
                            r.get::<_, String>(1)?,
                            r.get::<_, String>(2)?,
                            r.get::<_, String>(3)?,
                            r.get::<_, Option<String>>(4)?,
                            r.get::<_, Option<Vec<u8>>>(5)?,
                            r.get::<_, i64>(6)?,
                        ))
                    })
                    .optional()
                })
                .what("looking for an earlier request with the same key")?;
            let Some((id, kind, state, node, rc, response, received_ms)) = found else {
                return Ok(None);
            };
            let response = response
                .map(|blob| self.open_message(&blob, &identity("response", tenant, id)))
                .transpose()?;
            Ok(Some(Recorded {
                id,
                kind: query::kind(&kind)?,
                state: query::state(&state)?,
                node,
                rc,
                response,
                received_ms,
            }))
        })
    }

    /// The PAN token of `pan` for `tenant`.
    pub(crate) fn pan_token_of(&self, tenant: &str, pan: &str) -> Result<[u8; 32], StoreError> {
        if self.writer.is_closed() {
            return Err(StoreError::Closed);
        }
        self.ensure_tenant(tenant)?;
        let key = self
            .keyring
            .lookup(tenant, Purpose::Pan)
            .ok_or_else(|| StoreError::Invalid(format!("tenant {tenant} has no PAN lookup key")))?;
        Ok(key.mac(pan.as_bytes()))
    }
}

/// The outcome's UPDATE for each combination of the optional columns
/// (bit 0: kind, 1: original, 2: key id), built once.
fn finish_statements() -> &'static [String; 8] {
    static STATEMENTS: std::sync::OnceLock<[String; 8]> = std::sync::OnceLock::new();
    STATEMENTS.get_or_init(|| {
        std::array::from_fn(|variant| {
            let mut sql = String::from(
                "UPDATE tranlog SET state = ?2, rc = ?3, approval = ?4, response = ?5,
                    endpoint = coalesce(?6, endpoint), upstream = ?7, total_us = ?8,
                    external_us = ?9, participants = ?10, trace = ?11",
            );
            let mut n = 11;
            for (bit, column) in [(1, "kind"), (2, "original_id"), (4, "key_id")] {
                if variant & bit != 0 {
                    n += 1;
                    sql.push_str(&format!(", {column} = ?{n}"));
                }
            }
            sql.push_str(" WHERE id = ?1");
            sql
        })
    })
}

fn finish(b: &mut Batch<'_>, id: TxId, f: Finished) -> Result<Option<SafId>, StoreError> {
    let (tenant, state, key_id): (String, String, Option<i64>) = b
        .conn
        .prepare_cached("SELECT tenant, state, key_id FROM tranlog WHERE id = ?1")
        .and_then(|mut s| {
            s.query_row([id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .optional()
        })
        .what("reading a tranlog row")?
        .ok_or_else(|| StoreError::Invalid(format!("no tranlog row {id}")))?;
    let state = query::state(&state)?;
    let state = match state {
        TxState::ReversalQueued | TxState::Reversed => state,
        _ => f.state,
    };
    let old_key = key_id;
    let (key_id, response) = match &f.response {
        Some(m) => {
            let (k, blob) = b.keyring.seal(
                &tenant,
                &identity("response", &tenant, id),
                &codec::encode(m).0,
            )?;
            // A row's key_id is the oldest key any of its blobs uses.
            (Some(key_id.map_or(k, |old| old.min(k))), Some(blob))
        }
        None => (key_id, None),
    };
    let participants = query::join_participants(&f.participants)?;
    // Only the columns that change are set: an index whose columns (or
    // partial-index predicate) are not set is not touched.
    let mut extra: Vec<rusqlite::types::Value> = Vec::new();
    let mut variant = 0;
    if let Some(kind) = f.kind {
        extra.push(kind.name().to_string().into());
        variant |= 1;
    }
    if let Some(original) = f.original {
        extra.push(original.into());
        variant |= 2;
    }
    if key_id != old_key {
        extra.push(key_id.into());
        variant |= 4;
    }
    let sql = &finish_statements()[variant];
    let n = b
        .conn
        .prepare_cached(sql)
        .and_then(|mut s| {
            let base = params![
                id,
                state.name(),
                f.rc,
                f.approval,
                response,
                f.endpoint,
                f.upstream.name(),
                f.total.as_micros() as i64,
                f.external.map(|d| d.as_micros() as i64),
                participants,
                f.trace,
            ];
            for (i, p) in base.iter().enumerate() {
                s.raw_bind_parameter(i + 1, p)?;
            }
            for (i, v) in extra.iter().enumerate() {
                s.raw_bind_parameter(base.len() + i + 1, v)?;
            }
            s.raw_execute()
        })
        .what("recording a transaction's outcome")?;
    b.wrote(n);
    match &f.reversal {
        Some(reversal) => Ok(Some(saf::queue_once(b, &tenant, reversal)?)),
        None => Ok(None),
    }
}

impl SqliteStore {
    /// Resolves once a staged row's INSERT committed (with what was added).
    fn after_insert<T: Send + 'static>(
        &self,
        inserted: InsertReply,
        map: impl FnOnce(Option<SafId>) -> T + Send + 'static,
    ) -> PortFuture<T> {
        let db = self.db.clone();
        Box::pin(async move {
            inserted
                .await
                .unwrap_or(Err(StoreError::Closed))
                .map(map)
                .map_err(|e| e.into_port(&db))
        })
    }
}

impl Tranlog for SqliteStore {
    fn admit(&self, request: Received) -> PortFuture<Admitted> {
        let result = self.admit_now(request).map_err(|e| self.port(e));
        Box::pin(std::future::ready(result))
    }

    fn mark_sent(&self, id: TxId, endpoint: &str) -> PortFuture<()> {
        let endpoint = endpoint.to_string();
        if let Some(inserted) = self.staging.add(id, |a| a.sent = Some(endpoint.clone())) {
            return self.after_insert(inserted, |_| ());
        }
        self.durable(false, move |b| {
            let n = b
                .conn
                .prepare_cached(
                    "UPDATE tranlog SET endpoint = ?2,
                        state = CASE WHEN state = 'received' THEN 'sent' ELSE state END
                     WHERE id = ?1",
                )
                .and_then(|mut s| s.execute(params![id, endpoint]))
                .what("recording a request sent upstream")?;
            if n == 0 {
                return Err(StoreError::Invalid(format!("no tranlog row {id}")));
            }
            b.wrote(n);
            Ok(())
        })
    }

    fn finish(&self, id: TxId, finished: Finished) -> PortFuture<Option<SafId>> {
        // A participant list the row cannot hold fails here, leaving the
        // row as it was.
        if let Err(e) = query::join_participants(&finished.participants) {
            return self.ready(Err(e));
        }
        // Still staged: written with its INSERT, which also writes the
        // counter changes made before it runs (see `counter_log`).
        let mut finished = Some(finished);
        if let Some(inserted) = self.staging.add(id, |a| a.finished = finished.take()) {
            return self.after_insert(inserted, |saf| saf);
        }
        let finished = finished.expect("not taken");
        // One write statement unless a reversal is queued with it: only then
        // does it need a savepoint. Counter changes made before it are
        // written first: the response waits for this write.
        let atomic = finished.reversal.is_some();
        let log = Arc::clone(&self.counter_log);
        self.durable(atomic, move |b| {
            if log.used() {
                log.flush(b)?;
            }
            finish(b, id, finished)
        })
    }

    fn late_reply(&self, id: TxId, rc: Option<String>, at_ms: i64) -> PortFuture<()> {
        self.durable(false, move |b| {
            let n = b
                .conn
                .prepare_cached("UPDATE tranlog SET late_rc = ?2, late_ms = ?3 WHERE id = ?1")
                .and_then(|mut s| s.execute(params![id, rc, at_ms]))
                .what("recording a late reply")?;
            if n == 0 {
                return Err(StoreError::Invalid(format!("no tranlog row {id}")));
            }
            b.wrote(n);
            Ok(())
        })
    }

    fn follow_up(
        &self,
        id: TxId,
        follow_up: switchyard_engine::ports::FollowUp,
    ) -> PortFuture<switchyard_engine::ports::FollowUpOutcome> {
        self.durable(true, move |b| followup::follow_up(b, id, follow_up))
    }

    fn recover(&self) -> PortFuture<switchyard_engine::ports::Recovered> {
        let node = self.node.clone();
        self.durable(true, move |b| followup::recover(b, &node))
    }

    fn messages(
        &self,
        id: TxId,
    ) -> PortFuture<(
        switchyard_engine::iso8583::Message,
        Option<switchyard_engine::iso8583::Message>,
    )> {
        self.ready(self.messages_now(id))
    }

    fn get(&self, id: TxId) -> PortFuture<Option<switchyard_engine::ports::TxRecord>> {
        self.ready(self.get_now(id))
    }

    fn linked(&self, id: TxId) -> PortFuture<Vec<switchyard_engine::ports::TxRecord>> {
        self.ready(self.linked_now(id))
    }

    fn search(
        &self,
        query: switchyard_engine::ports::TxQuery,
    ) -> PortFuture<Vec<switchyard_engine::ports::TxRecord>> {
        self.ready(self.search_now(&query))
    }

    fn purge(&self, cutoff_ms: i64, limit: usize) -> PortFuture<u64> {
        self.durable(true, move |b| query::purge(b, cutoff_ms, limit))
    }
}
