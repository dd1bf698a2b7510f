//! The tranlog on PostgreSQL.
//!
//! Writes go in group commits (see `batch`). An admission batch is one
//! round trip: `BEGIN`, advisory locks on the match keys' hashes, the
//! lookup of the earlier rows with those keys, the insert and `COMMIT` go
//! out pipelined. The lock makes the lookup and the insert one step for
//! every node: of two identical requests on two nodes, the second
//! to take the lock sees the first's row (each statement of a read-committed
//! transaction reads what committed before it). Admission commits with
//! `synchronous_commit = off` — visible to every node at once, made durable
//! by the next durable write of the same transaction (`mark_sent`, the
//! outcome: PostgreSQL's WAL is flushed in order) — as on SQLite, where the
//! row is staged until then.

use std::time::Duration;

use deadpool_postgres::GenericClient;
use switchyard_engine::iso8583::Message;
use switchyard_engine::ports::{
    Admitted, Columns, Finished, FollowUp, FollowUpOutcome, LOCAL_ENDPOINT, NewSaf, OriginalRef,
    PortFuture, Received, Recorded, Recovered, SafId, SafKind, Tranlog, TxId, TxKind, TxQuery,
    TxRecord, TxState, Upstream,
};
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use super::PgStore;
use crate::error::SqlContext;
use crate::query::{join_participants, kind, state};
use crate::tranlog::{MATCH_WINDOW_MS, identity, keyed, match_hash};
use crate::{StoreError, codec, now_ms};

/// Tenants of rows admitted and not finished kept in memory, at most.
const MAX_REMEMBERED: usize = 1 << 20;

const RECORD: &str = "id, tenant, listener, node, kind, mti, processing_code, amount, currency,
    stan, transmitted, rrn, terminal, merchant, acquirer, pan_masked, state, rc, approval,
    endpoint, upstream, received_ms, total_us, external_us, original_id, reversal_id,
    completion_id, participants, late_rc, late_ms, key_id, trace";

const FINISH: &str = "UPDATE tranlog SET
    state = CASE WHEN state IN ('reversal-queued', 'reversed') THEN state ELSE $2 END,
    rc = $3, approval = $4, response = coalesce($5, response), endpoint = coalesce($6, endpoint),
    upstream = $7, total_us = $8, external_us = $9, participants = $10, trace = $11,
    kind = coalesce($12, kind), original_id = coalesce($13, original_id),
    key_id = CASE WHEN $14::BIGINT IS NULL THEN key_id ELSE least(coalesce(key_id, $14), $14) END
    WHERE id = $1";

fn record(r: &Row) -> Result<TxRecord, StoreError> {
    let upstream: Option<String> = r.get(20);
    let participants: Option<String> = r.get(27);
    let late_ms: Option<i64> = r.get(29);
    Ok(TxRecord {
        id: r.get(0),
        tenant: r.get(1),
        listener: r.get(2),
        node: r.get(3),
        kind: kind(r.get(4))?,
        mti: r.get(5),
        columns: Columns {
            processing_code: r.get(6),
            amount: r.get(7),
            currency: r.get(8),
            stan: r.get(9),
            transmitted: r.get(10),
            rrn: r.get(11),
            terminal: r.get(12),
            merchant: r.get(13),
            acquirer: r.get(14),
        },
        pan_masked: r.get(15),
        state: state(r.get(16))?,
        rc: r.get(17),
        approval: r.get(18),
        endpoint: r.get(19),
        upstream: match upstream {
            Some(u) => Some(
                Upstream::parse(&u)
                    .ok_or_else(|| StoreError::Corrupt(format!("tranlog upstream {u:?}")))?,
            ),
            None => None,
        },
        received_ms: r.get(21),
        total_us: r.get(22),
        external_us: r.get(23),
        original: r.get(24),
        reversal: r.get(25),
        completion: r.get(26),
        participants: participants
            .map(|p| p.split(',').map(str::to_string).collect())
            .unwrap_or_default(),
        late_reply: late_ms.map(|ms| (r.get::<_, Option<String>>(28), ms)),
        key_id: r.get(30),
        trace: r.get(31),
    })
}

/// A request ready to insert.
pub(crate) struct NewRow {
    id: TxId,
    tenant: String,
    listener: String,
    kind: TxKind,
    mti: String,
    class: String,
    columns: Columns,
    key: Option<(String, i64)>,
    pan: Option<(Vec<u8>, String)>,
    received_ms: i64,
    key_id: i64,
    request: Vec<u8>,
}

/// An outcome ready to write (no reversal with it).
pub(crate) struct Outcome {
    id: TxId,
    state: &'static str,
    rc: Option<String>,
    approval: Option<String>,
    response: Option<Vec<u8>>,
    endpoint: Option<String>,
    upstream: &'static str,
    total_us: i64,
    external_us: Option<i64>,
    participants: Option<String>,
    trace: Option<String>,
    kind: Option<&'static str>,
    original: Option<TxId>,
    key_id: Option<i64>,
}

/// What the earlier row of a key is, before its response is decrypted.
pub(crate) struct Found {
    id: TxId,
    kind: String,
    state: String,
    node: String,
    rc: Option<String>,
    response: Option<Vec<u8>>,
    received_ms: i64,
}

const INSERT_BATCH: &str = "INSERT INTO tranlog (id, tenant, listener, node, kind, mti, class,
    processing_code, amount, currency, stan, transmitted, rrn, terminal, merchant, acquirer,
    match_key, match_hash, pan_token, pan_masked, received_ms, key_id, request, state)
    SELECT *, 'received' FROM unnest($1::INT8[], $2::TEXT[], $3::TEXT[], $4::TEXT[], $5::TEXT[],
        $6::TEXT[], $7::TEXT[], $8::TEXT[], $9::TEXT[], $10::TEXT[], $11::TEXT[], $12::TEXT[],
        $13::TEXT[], $14::TEXT[], $15::TEXT[], $16::TEXT[], $17::TEXT[], $18::INT8[],
        $19::BYTEA[], $20::TEXT[], $21::INT8[], $22::INT8[], $23::BYTEA[])";

const LOCK_BATCH: &str = "SELECT count(pg_advisory_xact_lock(h)) FROM unnest($1::INT8[]) AS h";

const MATCH_BATCH: &str = "SELECT DISTINCT ON (match_hash, tenant, match_key)
        match_hash, tenant, match_key, id, kind, state, node, rc, response, received_ms
    FROM tranlog
    WHERE match_hash = ANY($1::INT8[]) AND received_ms >= $2
      AND kind IN ('original', 'reversal', 'completion')
    ORDER BY match_hash, tenant, match_key, id DESC";

const FINISH_BATCH: &str = "UPDATE tranlog t SET
    state = CASE WHEN t.state IN ('reversal-queued', 'reversed') THEN t.state ELSE v.state END,
    rc = v.rc, approval = v.approval, response = coalesce(v.response, t.response),
    endpoint = coalesce(v.endpoint, t.endpoint), upstream = v.upstream, total_us = v.total_us,
    external_us = v.external_us, participants = v.participants, trace = v.trace,
    kind = coalesce(v.kind, t.kind), original_id = coalesce(v.original_id, t.original_id),
    key_id = CASE WHEN v.key_id IS NULL THEN t.key_id
                  ELSE least(coalesce(t.key_id, v.key_id), v.key_id) END
    FROM unnest($1::INT8[], $2::TEXT[], $3::TEXT[], $4::TEXT[], $5::BYTEA[], $6::TEXT[],
        $7::TEXT[], $8::INT8[], $9::INT8[], $10::TEXT[], $11::TEXT[], $12::TEXT[], $13::INT8[],
        $14::INT8[])
        AS v(id, state, rc, approval, response, endpoint, upstream, total_us, external_us,
             participants, trace, kind, original_id, key_id)
    WHERE t.id = v.id
    RETURNING t.id";

const SENT_BATCH: &str = "UPDATE tranlog t SET endpoint = v.endpoint,
        state = CASE WHEN t.state = 'received' THEN 'sent' ELSE t.state END
    FROM unnest($1::INT8[], $2::TEXT[]) AS v(id, endpoint)
    WHERE t.id = v.id
    RETURNING t.id";

/// Admits a batch in one transaction (committed without waiting for the
/// disk, see the module): the locks of its keys in ascending order (no
/// deadlock between batches or nodes), the newest earlier row of each key,
/// the inserts. A row also matches an earlier row of its own batch.
pub(crate) async fn admit_batch(
    store: &PgStore,
    rows: Vec<NewRow>,
) -> Result<Vec<Result<Option<Found>, StoreError>>, StoreError> {
    let client = store.client().await?;
    let prepare = |sql: &'static str| client.prepare_cached(sql);
    let (insert, lock, matching) = futures::try_join!(
        prepare(INSERT_BATCH),
        prepare(LOCK_BATCH),
        prepare(MATCH_BATCH)
    )
    .what("preparing the tranlog's batch statements")?;
    let mut hashes: Vec<i64> = rows
        .iter()
        .filter_map(|r| r.key.as_ref().map(|k| k.1))
        .collect();
    hashes.sort_unstable();
    hashes.dedup();
    let since = rows.iter().map(|r| r.received_ms).min().unwrap_or(0) - MATCH_WINDOW_MS;
    let c = |f: fn(&Columns) -> &Option<String>| {
        rows.iter()
            .map(|r| f(&r.columns).clone())
            .collect::<Vec<_>>()
    };
    let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
    let tenants: Vec<&str> = rows.iter().map(|r| r.tenant.as_str()).collect();
    let listeners: Vec<&str> = rows.iter().map(|r| r.listener.as_str()).collect();
    let node: Vec<&str> = rows.iter().map(|_| store.node.as_str()).collect();
    let kinds: Vec<&str> = rows.iter().map(|r| r.kind.name()).collect();
    let mtis: Vec<&str> = rows.iter().map(|r| r.mti.as_str()).collect();
    let classes: Vec<&str> = rows.iter().map(|r| r.class.as_str()).collect();
    let (pc, amount, currency, stan) = (
        c(|c| &c.processing_code),
        c(|c| &c.amount),
        c(|c| &c.currency),
        c(|c| &c.stan),
    );
    let (transmitted, rrn, terminal, merchant, acquirer) = (
        c(|c| &c.transmitted),
        c(|c| &c.rrn),
        c(|c| &c.terminal),
        c(|c| &c.merchant),
        c(|c| &c.acquirer),
    );
    let keys: Vec<Option<&str>> = rows
        .iter()
        .map(|r| r.key.as_ref().map(|k| k.0.as_str()))
        .collect();
    let key_hashes: Vec<Option<i64>> = rows.iter().map(|r| r.key.as_ref().map(|k| k.1)).collect();
    let pan_tokens: Vec<Option<&[u8]>> = rows
        .iter()
        .map(|r| r.pan.as_ref().map(|p| p.0.as_slice()))
        .collect();
    let pan_masked: Vec<Option<&str>> = rows
        .iter()
        .map(|r| r.pan.as_ref().map(|p| p.1.as_str()))
        .collect();
    let received: Vec<i64> = rows.iter().map(|r| r.received_ms).collect();
    let key_ids: Vec<i64> = rows.iter().map(|r| r.key_id).collect();
    let requests: Vec<&[u8]> = rows.iter().map(|r| r.request.as_slice()).collect();
    let params: [&(dyn ToSql + Sync); 23] = [
        &ids,
        &tenants,
        &listeners,
        &node,
        &kinds,
        &mtis,
        &classes,
        &pc,
        &amount,
        &currency,
        &stan,
        &transmitted,
        &rrn,
        &terminal,
        &merchant,
        &acquirer,
        &keys,
        &key_hashes,
        &pan_tokens,
        &pan_masked,
        &received,
        &key_ids,
        &requests,
    ];
    let lock_params: [&(dyn ToSql + Sync); 1] = [&hashes];
    let match_params: [&(dyn ToSql + Sync); 2] = [&hashes, &since];
    let (b, l, m, i, end) = futures::join!(
        client.batch_execute("BEGIN; SET LOCAL synchronous_commit TO OFF"),
        client.query_one(&lock, &lock_params),
        client.query(&matching, &match_params),
        client.execute(&insert, &params),
        client.batch_execute("COMMIT")
    );
    let found = match b.and(l.map(|_| ())).and(i.map(|_| ())).and(end).and(m) {
        Ok(found) => found,
        Err(e) => {
            let _ = client.batch_execute("ROLLBACK").await;
            return Err(e).what("recording requests in the tranlog");
        }
    };
    drop(client);
    let mut out = Vec::with_capacity(rows.len());
    for (n, row) in rows.iter().enumerate() {
        let Some((key, hash)) = &row.key else {
            out.push(Ok(None));
            continue;
        };
        let since = row.received_ms - MATCH_WINDOW_MS;
        // An earlier row of the same batch is newer than any in the table.
        let in_batch = rows[..n].iter().rev().find(|p| {
            crate::tranlog::candidate(p.kind)
                && p.key.as_ref().is_some_and(|k| &k.0 == key)
                && p.tenant == row.tenant
                && p.received_ms >= since
        });
        if let Some(p) = in_batch {
            out.push(Ok(Some(Found {
                id: p.id,
                kind: p.kind.name().into(),
                state: TxState::Received.name().into(),
                node: store.node.clone(),
                rc: None,
                response: None,
                received_ms: p.received_ms,
            })));
            continue;
        }
        let hit = found.iter().find(|r| {
            r.get::<_, i64>(0) == *hash
                && r.get::<_, &str>(1) == row.tenant
                && r.get::<_, Option<&str>>(2) == Some(key.as_str())
                && r.get::<_, i64>(9) >= since
        });
        out.push(Ok(hit.map(|r| Found {
            id: r.get(3),
            kind: r.get(4),
            state: r.get(5),
            node: r.get(6),
            rc: r.get(7),
            response: r.get(8),
            received_ms: r.get(9),
        })));
    }
    Ok(out)
}

/// Writes a batch of outcomes in one statement and one (durable) commit.
pub(crate) async fn finish_batch(
    store: &PgStore,
    items: Vec<Outcome>,
) -> Result<Vec<Result<(), StoreError>>, StoreError> {
    let client = store.client().await?;
    let statement = client
        .prepare_cached(FINISH_BATCH)
        .await
        .what("preparing the outcomes' update")?;
    let ids: Vec<i64> = items.iter().map(|o| o.id).collect();
    let states: Vec<&str> = items.iter().map(|o| o.state).collect();
    let rcs: Vec<Option<&str>> = items.iter().map(|o| o.rc.as_deref()).collect();
    let approvals: Vec<Option<&str>> = items.iter().map(|o| o.approval.as_deref()).collect();
    let responses: Vec<Option<&[u8]>> = items.iter().map(|o| o.response.as_deref()).collect();
    let endpoints: Vec<Option<&str>> = items.iter().map(|o| o.endpoint.as_deref()).collect();
    let upstreams: Vec<&str> = items.iter().map(|o| o.upstream).collect();
    let totals: Vec<i64> = items.iter().map(|o| o.total_us).collect();
    let externals: Vec<Option<i64>> = items.iter().map(|o| o.external_us).collect();
    let participants: Vec<Option<&str>> = items.iter().map(|o| o.participants.as_deref()).collect();
    let traces: Vec<Option<&str>> = items.iter().map(|o| o.trace.as_deref()).collect();
    let kinds: Vec<Option<&str>> = items.iter().map(|o| o.kind).collect();
    let originals: Vec<Option<i64>> = items.iter().map(|o| o.original).collect();
    let key_ids: Vec<Option<i64>> = items.iter().map(|o| o.key_id).collect();
    let params: [&(dyn ToSql + Sync); 14] = [
        &ids,
        &states,
        &rcs,
        &approvals,
        &responses,
        &endpoints,
        &upstreams,
        &totals,
        &externals,
        &participants,
        &traces,
        &kinds,
        &originals,
        &key_ids,
    ];
    let updated = client
        .query(&statement, &params)
        .await
        .what("recording transactions' outcomes")?;
    Ok(each_updated(&ids, &updated))
}

/// Records a batch of requests about to go upstream (durable).
pub(crate) async fn sent_batch(
    store: &PgStore,
    items: Vec<(TxId, String)>,
) -> Result<Vec<Result<(), StoreError>>, StoreError> {
    let client = store.client().await?;
    let statement = client
        .prepare_cached(SENT_BATCH)
        .await
        .what("preparing the sends' update")?;
    let ids: Vec<i64> = items.iter().map(|i| i.0).collect();
    let endpoints: Vec<&str> = items.iter().map(|i| i.1.as_str()).collect();
    let updated = client
        .query(&statement, &[&ids, &endpoints])
        .await
        .what("recording requests sent upstream")?;
    Ok(each_updated(&ids, &updated))
}

/// Each row's result of a batch update that returned the ids it updated.
fn each_updated(ids: &[TxId], returned: &[Row]) -> Vec<Result<(), StoreError>> {
    let updated: std::collections::HashSet<i64> = returned.iter().map(|r| r.get(0)).collect();
    ids.iter()
        .map(|id| {
            if updated.contains(id) {
                Ok(())
            } else {
                Err(StoreError::Invalid(format!("no tranlog row {id}")))
            }
        })
        .collect()
}

impl PgStore {
    async fn admit_async(&self, r: Received) -> Result<Admitted, StoreError> {
        self.ensure_tenant(&r.tenant).await?;
        let pan = match &r.pan {
            Some(pan) => Some((
                self.pan_token_of(&r.tenant, pan).await?.to_vec(),
                codec::mask_pan(pan),
            )),
            None => None,
        };
        let (plain, stripped) = codec::encode(&r.request);
        if stripped {
            tracing::warn!(tenant = %r.tenant, listener = %r.listener, mti = %r.mti,
                "a request given to the tranlog carried track, PIN or chip data: not stored");
        }
        let key = match (&r.key, keyed(r.kind)) {
            (Some(k), true) => Some((k.0.clone(), match_hash(&k.0))),
            _ => None,
        };
        let id = self.ids.next();
        let (key_id, request) =
            self.keyring
                .seal(&r.tenant, &identity("request", &r.tenant, id), &plain)?;
        let tenant = r.tenant.clone();
        let row = NewRow {
            id,
            class: codec::class(&r.mti),
            tenant: r.tenant,
            listener: r.listener,
            kind: r.kind,
            mti: r.mti,
            columns: r.columns,
            key,
            pan,
            received_ms: r.received_ms,
            key_id,
            request,
        };
        let found = self.batches().admits.submit(row).await?;
        let matched = match found {
            Some(found) => Some(self.recorded(&tenant, found).await?),
            None => None,
        };
        let mut tenants = self.tenants.lock();
        if tenants.len() >= MAX_REMEMBERED {
            // Rows never finished (none should be): the outcome reads the
            // tenant from the row instead.
            tenants.clear();
        }
        tenants.insert(id, tenant);
        Ok(Admitted { id, matched })
    }

    async fn recorded(&self, tenant: &str, f: Found) -> Result<Recorded, StoreError> {
        let response = match f.response {
            Some(blob) => Some(
                self.open_message(&blob, &identity("response", tenant, f.id))
                    .await?,
            ),
            None => None,
        };
        Ok(Recorded {
            id: f.id,
            kind: kind(&f.kind)?,
            state: state(&f.state)?,
            node: f.node,
            rc: f.rc,
            response,
            received_ms: f.received_ms,
        })
    }

    pub(crate) async fn open_message(
        &self,
        blob: &[u8],
        identity: &[u8],
    ) -> Result<Message, StoreError> {
        codec::decode(&self.open_sealed(blob, identity).await?)
    }

    async fn tenant_of(&self, id: TxId) -> Result<String, StoreError> {
        if let Some(t) = self.tenants.lock().get(&id) {
            return Ok(t.clone());
        }
        let client = self.client().await?;
        client
            .query_opt("SELECT tenant FROM tranlog WHERE id = $1", &[&id])
            .await
            .what("reading a tranlog row")?
            .map(|r| r.get(0))
            .ok_or_else(|| StoreError::Invalid(format!("no tranlog row {id}")))
    }

    async fn finish_async(&self, id: TxId, f: Finished) -> Result<Option<SafId>, StoreError> {
        let tenant = self.tenant_of(id).await?;
        let (key_id, response) = match &f.response {
            Some(m) => {
                let (k, blob) = self.keyring.seal(
                    &tenant,
                    &identity("response", &tenant, id),
                    &codec::encode(m).0,
                )?;
                (Some(k), Some(blob))
            }
            None => (None, None),
        };
        let outcome = Outcome {
            id,
            state: f.state.name(),
            rc: f.rc,
            approval: f.approval,
            response,
            endpoint: f.endpoint,
            upstream: f.upstream.name(),
            total_us: f.total.as_micros() as i64,
            external_us: f.external.map(|d| d.as_micros() as i64),
            participants: join_participants(&f.participants)?,
            trace: f.trace,
            kind: f.kind.map(TxKind::name),
            original: f.original,
            key_id,
        };
        let queued = match &f.reversal {
            None => {
                self.batches().finishes.submit(outcome).await?;
                None
            }
            Some(reversal) => Some(
                self.finish_with_reversal(&tenant, outcome, reversal)
                    .await?,
            ),
        };
        self.tenants.lock().remove(&id);
        Ok(queued)
    }

    /// An outcome with the reversal it queues, in one transaction.
    async fn finish_with_reversal(
        &self,
        tenant: &str,
        o: Outcome,
        reversal: &NewSaf,
    ) -> Result<SafId, StoreError> {
        let mut client = self.client().await?;
        let statement = client
            .prepare_cached(FINISH)
            .await
            .what("preparing the outcome's update")?;
        let params: [&(dyn ToSql + Sync); 14] = [
            &o.id,
            &o.state,
            &o.rc,
            &o.approval,
            &o.response,
            &o.endpoint,
            &o.upstream,
            &o.total_us,
            &o.external_us,
            &o.participants,
            &o.trace,
            &o.kind,
            &o.original,
            &o.key_id,
        ];
        let tx = client
            .transaction()
            .await
            .what("recording a transaction's outcome")?;
        let n = tx
            .execute(&statement, &params)
            .await
            .what("recording a transaction's outcome")?;
        if n == 0 {
            return Err(StoreError::Invalid(format!("no tranlog row {}", o.id)));
        }
        let saf = queue_once(&tx, tenant, reversal).await?;
        tx.commit()
            .await
            .what("recording a transaction's outcome")?;
        Ok(saf)
    }
}

/// Queues `saf` unless an entry of the same original, kind and endpoint
/// exists; its id either way.
pub(crate) async fn queue_once<C: GenericClient>(
    c: &C,
    tenant: &str,
    saf: &NewSaf,
) -> Result<SafId, StoreError> {
    let now = now_ms();
    let inserted = c
        .query_opt(
            "INSERT INTO saf (tenant, kind, endpoint, source, original, reason, state, attempts,
                created_ms, next_ms)
             VALUES ($1, $2, $3, $4, $5, $6, 'pending', 0, $7, $7)
             ON CONFLICT (original, kind, endpoint) DO NOTHING
             RETURNING id",
            &[
                &tenant,
                &saf.kind.name(),
                &saf.endpoint,
                &saf.source,
                &saf.original,
                &saf.reason,
                &now,
            ],
        )
        .await
        .what("queueing a store-and-forward entry")?;
    if let Some(r) = inserted {
        let id: i64 = r.get(0);
        tracing::info!(saf = id, kind = saf.kind.name(), endpoint = %saf.endpoint,
            original = saf.original, "queued");
        return Ok(id);
    }
    Ok(c.query_one(
        "SELECT id FROM saf WHERE original = $1 AND kind = $2 AND endpoint = $3",
        &[&saf.original, &saf.kind.name(), &saf.endpoint],
    )
    .await
    .what("looking for a queued store-and-forward entry")?
    .get(0))
}

async fn has_reversal<C: GenericClient>(c: &C, original: TxId) -> Result<bool, StoreError> {
    Ok(c.query_one(
        "SELECT EXISTS (SELECT 1 FROM saf WHERE original = $1
                AND kind IN ('reversal', 'local-reversal'))",
        &[&original],
    )
    .await
    .what("looking for a queued reversal")?
    .get(0))
}

/// Recovery of `node` (its own, at start-up, or a takeover): in the
/// caller's transaction.
pub(crate) async fn recover_node<C: GenericClient>(
    c: &C,
    node: &str,
) -> Result<Recovered, StoreError> {
    let now = now_ms();
    // Lock the rows first: a node finishing one of them waits, then keeps
    // the reversal-queued state (see FINISH).
    c.query(
        "SELECT id FROM tranlog WHERE node = $1 AND state IN ('received', 'sent') FOR UPDATE",
        &[&node],
    )
    .await
    .what("finding transactions in flight")?;
    let queued = c
        .execute(
            "INSERT INTO saf (tenant, kind, endpoint, source, original, reason, state, attempts,
                created_ms, next_ms)
             SELECT t.tenant, 'reversal', t.endpoint, t.id, t.id, '68', 'pending', 0, $2, $2
             FROM tranlog t
             WHERE t.node = $1 AND t.state IN ('received', 'sent') AND t.state = 'sent'
               AND t.endpoint IS NOT NULL
               AND NOT EXISTS (SELECT 1 FROM saf s WHERE s.original = t.id
                               AND s.kind IN ('reversal', 'local-reversal'))
             ON CONFLICT (original, kind, endpoint) DO NOTHING",
            &[&node, &now],
        )
        .await
        .what("queueing the reversals of transactions in flight")?;
    c.execute(
        "UPDATE tranlog SET state = 'reversal-queued', upstream = 'interrupted'
         WHERE node = $1 AND state IN ('received', 'sent') AND state = 'sent'",
        &[&node],
    )
    .await
    .what("marking transactions in flight")?;
    let interrupted = c
        .execute(
            "UPDATE tranlog SET state = 'interrupted'
             WHERE node = $1 AND state IN ('received', 'sent') AND state = 'received'",
            &[&node],
        )
        .await
        .what("marking interrupted transactions")?;
    let released = c
        .execute(
            "UPDATE saf SET lease_owner = NULL, lease_until = NULL
             WHERE lease_owner = $1 OR left(lease_owner, length($1) + 1) = $1 || '/'",
            &[&node],
        )
        .await
        .what("releasing store-and-forward leases")?;
    let recovered = Recovered {
        reversals_queued: queued,
        interrupted,
        leases_released: released,
    };
    tracing::info!(
        node,
        reversals_queued = queued,
        interrupted,
        leases_released = released,
        "recovered"
    );
    Ok(recovered)
}

struct Original {
    id: TxId,
    rc: Option<String>,
    endpoint: Option<String>,
    upstream: Option<String>,
    participants: Option<String>,
    reversal_id: Option<TxId>,
    completion_id: Option<TxId>,
}

/// The newest original `reference` names, locked.
async fn find<C: GenericClient>(
    c: &C,
    tenant: &str,
    reference: &OriginalRef,
) -> Result<Option<Original>, StoreError> {
    const COLUMNS: &str =
        "id, rc, endpoint, upstream, participants, reversal_id, completion_id FROM tranlog";
    let row = match reference {
        OriginalRef::De90 {
            mti,
            stan,
            transmitted,
            acquirer,
        } => {
            c.query_opt(
                &format!(
                    "SELECT {COLUMNS} WHERE kind = 'original' AND stan = $1 AND tenant = $2
                       AND class = $3 AND transmitted = $4
                       AND ltrim(coalesce(acquirer, ''), '0') = ltrim($5, '0')
                     ORDER BY id DESC LIMIT 1 FOR UPDATE"
                ),
                &[stan, &tenant, &codec::class(mti), transmitted, acquirer],
            )
            .await
        }
        OriginalRef::StanTerminalRrn {
            stan,
            terminal,
            rrn,
        } => {
            c.query_opt(
                &format!(
                    "SELECT {COLUMNS} WHERE kind = 'original' AND stan = $1 AND tenant = $2
                       AND terminal = $3 AND ($4 = '' OR rrn = $4)
                     ORDER BY id DESC LIMIT 1 FOR UPDATE"
                ),
                &[stan, &tenant, terminal, rrn],
            )
            .await
        }
    }
    .what("looking for the original of a reversal or completion")?;
    Ok(row.map(|r| Original {
        id: r.get(0),
        rc: r.get(1),
        endpoint: r.get(2),
        upstream: r.get(3),
        participants: r.get(4),
        reversal_id: r.get(5),
        completion_id: r.get(6),
    }))
}

fn switched_out(o: &Original) -> bool {
    o.endpoint.is_some() && o.upstream.as_deref() != Some(Upstream::NotSent.name())
}

async fn set<C: GenericClient>(
    c: &C,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<(), StoreError> {
    c.execute(sql, params)
        .await
        .what("linking a reversal or completion to its original")?;
    Ok(())
}

/// Matches the acquirer's reversal or completion `id` and queues what it
/// needs, once (the original's row lock serializes two nodes).
async fn follow_up<C: GenericClient>(
    c: &C,
    id: TxId,
    f: FollowUp,
) -> Result<FollowUpOutcome, StoreError> {
    if !matches!(f.kind, TxKind::Reversal | TxKind::Completion) {
        return Err(StoreError::Invalid(format!(
            "a follow-up is a reversal or a completion, not {}",
            f.kind
        )));
    }
    let Some(o) = find(c, &f.tenant, &f.original).await? else {
        return Ok(FollowUpOutcome {
            original: None,
            first: false,
            queued: Vec::new(),
        });
    };
    set(
        c,
        "UPDATE tranlog SET original_id = $2 WHERE id = $1",
        &[&id, &o.id],
    )
    .await?;
    let mut outcome = FollowUpOutcome {
        original: Some(o.id),
        first: false,
        queued: Vec::new(),
    };
    let entry = |kind, endpoint: &str, source| NewSaf {
        kind,
        endpoint: endpoint.to_string(),
        source,
        original: o.id,
        reason: f.reason.clone(),
    };
    if f.kind == TxKind::Reversal {
        if o.reversal_id.is_some() {
            return Ok(outcome);
        }
        set(
            c,
            "UPDATE tranlog SET reversal_id = $2 WHERE id = $1",
            &[&o.id, &id],
        )
        .await?;
        if has_reversal(c, o.id).await? {
            return Ok(outcome);
        }
        outcome.first = true;
        if switched_out(&o) {
            let endpoint = o.endpoint.clone().expect("switched out");
            let e = entry(SafKind::Reversal, &endpoint, o.id);
            outcome.queued.push(queue_once(c, &f.tenant, &e).await?);
        }
        let participants = o.participants.as_deref().is_some_and(|p| !p.is_empty());
        if o.rc.as_deref() == Some("00") && participants {
            let e = entry(SafKind::LocalReversal, LOCAL_ENDPOINT, o.id);
            outcome.queued.push(queue_once(c, &f.tenant, &e).await?);
        }
        let state = if outcome.queued.is_empty() {
            "reversed"
        } else {
            "reversal-queued"
        };
        set(
            c,
            "UPDATE tranlog SET state = $2 WHERE id = $1",
            &[&o.id, &state],
        )
        .await?;
    } else {
        if o.completion_id.is_some() {
            return Ok(outcome);
        }
        set(
            c,
            "UPDATE tranlog SET completion_id = $2 WHERE id = $1",
            &[&o.id, &id],
        )
        .await?;
        outcome.first = true;
        if switched_out(&o) {
            let endpoint = o.endpoint.clone().expect("switched out");
            let e = entry(SafKind::Advice, &endpoint, id);
            outcome.queued.push(queue_once(c, &f.tenant, &e).await?);
        }
    }
    tracing::info!(follow_up = id, original = o.id, kind = %f.kind,
        queued = outcome.queued.len(), "matched a follow-up to its original");
    Ok(outcome)
}

/// The request and response row `id` keeps, decrypted.
async fn read_messages(me: &PgStore, id: TxId) -> Result<(Message, Option<Message>), StoreError> {
    let client = me.client().await?;
    let r = client
        .query_opt(
            "SELECT tenant, request, response FROM tranlog WHERE id = $1",
            &[&id],
        )
        .await
        .what("reading a transaction's messages")?
        .ok_or_else(|| StoreError::Invalid(format!("no tranlog row {id}")))?;
    let tenant: String = r.get(0);
    let request: Option<Vec<u8>> = r.get(1);
    let response: Option<Vec<u8>> = r.get(2);
    let request =
        request.ok_or_else(|| StoreError::Corrupt(format!("tranlog row {id} has no request")))?;
    let request = me
        .open_message(&request, &identity("request", &tenant, id))
        .await?;
    let response = match response {
        Some(b) => Some(
            me.open_message(&b, &identity("response", &tenant, id))
                .await?,
        ),
        None => None,
    };
    Ok((request, response))
}

/// Waits while row `id` is in flight (received or sent) on another node:
/// until that node records its outcome, or its lease lapses and a takeover
/// settles it, at most two leases. Polls with a backoff of 10 to 100 ms.
async fn settle(me: &PgStore, id: TxId) -> Result<(), StoreError> {
    let deadline = tokio::time::Instant::now() + me.lease * 2;
    let mut wait = Duration::from_millis(10);
    loop {
        let row = me
            .client()
            .await?
            .query_opt("SELECT state, node FROM tranlog WHERE id = $1", &[&id])
            .await
            .what("reading a tranlog row's state")?;
        let Some(row) = row else { return Ok(()) };
        let (state, node): (String, String) = (row.get(0), row.get(1));
        let in_flight = state == TxState::Received.name() || state == TxState::Sent.name();
        if !in_flight || node == me.node || tokio::time::Instant::now() >= deadline {
            return Ok(());
        }
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(Duration::from_millis(100));
    }
}

impl Tranlog for PgStore {
    fn admit(&self, request: Received) -> PortFuture<Admitted> {
        self.task(|me| async move { me.admit_async(request).await })
    }

    fn mark_sent(&self, id: TxId, endpoint: &str) -> PortFuture<()> {
        let endpoint = endpoint.to_string();
        self.task(|me| async move { me.batches().sends.submit((id, endpoint)).await })
    }

    fn finish(&self, id: TxId, finished: Finished) -> PortFuture<Option<SafId>> {
        self.task(|me| async move { me.finish_async(id, finished).await })
    }

    fn late_reply(&self, id: TxId, rc: Option<String>, at_ms: i64) -> PortFuture<()> {
        self.task(|me| async move {
            let client = me.client().await?;
            let n = client
                .execute(
                    "UPDATE tranlog SET late_rc = $2, late_ms = $3 WHERE id = $1",
                    &[&id, &rc, &at_ms],
                )
                .await
                .what("recording a late reply")?;
            if n == 0 {
                return Err(StoreError::Invalid(format!("no tranlog row {id}")));
            }
            Ok(())
        })
    }

    fn follow_up(&self, id: TxId, f: FollowUp) -> PortFuture<FollowUpOutcome> {
        self.task(|me| async move {
            let mut client = me.client().await?;
            let tx = client.transaction().await.what("matching a follow-up")?;
            let outcome = follow_up(&tx, id, f).await?;
            tx.commit().await.what("matching a follow-up")?;
            Ok(outcome)
        })
    }

    fn recover(&self) -> PortFuture<Recovered> {
        self.task(|me| async move {
            let mut client = me.client().await?;
            let tx = client.transaction().await.what("recovering")?;
            let recovered = recover_node(&tx, &me.node).await?;
            tx.commit().await.what("recovering")?;
            Ok(recovered)
        })
    }

    fn messages(&self, id: TxId) -> PortFuture<(Message, Option<Message>)> {
        self.task(|me| async move { read_messages(&me, id).await })
    }

    fn settled_messages(&self, id: TxId) -> PortFuture<(Message, Option<Message>)> {
        self.task(|me| async move {
            settle(&me, id).await?;
            read_messages(&me, id).await
        })
    }

    fn get(&self, id: TxId) -> PortFuture<Option<TxRecord>> {
        self.task(|me| async move {
            let client = me.client().await?;
            client
                .query_opt(
                    &format!("SELECT {RECORD} FROM tranlog WHERE id = $1"),
                    &[&id],
                )
                .await
                .what("reading a tranlog row")?
                .map(|r| record(&r))
                .transpose()
        })
    }

    fn linked(&self, id: TxId) -> PortFuture<Vec<TxRecord>> {
        self.task(|me| async move {
            let client = me.client().await?;
            client
                .query(
                    &format!("SELECT {RECORD} FROM tranlog WHERE original_id = $1 ORDER BY id"),
                    &[&id],
                )
                .await
                .what("reading linked tranlog rows")?
                .iter()
                .map(record)
                .collect()
        })
    }

    fn search(&self, q: TxQuery) -> PortFuture<Vec<TxRecord>> {
        self.task(|me| async move {
            let mut sql = format!("SELECT {RECORD} FROM tranlog WHERE true");
            let mut texts: Vec<String> = Vec::new();
            let mut clauses: Vec<&str> = Vec::new();
            for (column, v) in [
                ("tenant =", &q.tenant),
                ("stan =", &q.stan),
                ("rrn =", &q.rrn),
                ("terminal =", &q.terminal),
                ("merchant =", &q.merchant),
                ("right(pan_masked, 4) =", &q.pan_last4),
            ] {
                if let Some(v) = v {
                    texts.push(v.clone());
                    clauses.push(column);
                }
            }
            let mut params: Vec<&(dyn ToSql + Sync)> = Vec::new();
            for (i, (clause, v)) in clauses.iter().zip(&texts).enumerate() {
                sql.push_str(&format!(" AND {clause} ${}", i + 1));
                params.push(v);
            }
            if let Some(from) = &q.from_ms {
                params.push(from);
                sql.push_str(&format!(" AND received_ms >= ${}", params.len()));
            }
            if let Some(to) = &q.to_ms {
                params.push(to);
                sql.push_str(&format!(" AND received_ms < ${}", params.len()));
            }
            sql.push_str(" ORDER BY id DESC");
            if q.limit > 0 {
                sql.push_str(&format!(" LIMIT {}", q.limit));
            }
            let client = me.client().await?;
            client
                .query(&sql, &params)
                .await
                .what("searching the tranlog")?
                .iter()
                .map(record)
                .collect()
        })
    }

    fn purge(&self, cutoff_ms: i64, limit: usize) -> PortFuture<u64> {
        self.task(move |me| async move {
            let client = me.client().await?;
            let limit = limit as i64;
            let n = client
                .execute(
                    "DELETE FROM tranlog WHERE id IN (
                        SELECT t.id FROM tranlog t
                        WHERE t.received_ms < $1
                          AND NOT EXISTS (SELECT 1 FROM saf s WHERE s.state = 'pending'
                                          AND (s.source = t.id OR s.original = t.id))
                        ORDER BY t.received_ms LIMIT $2)",
                    &[&cutoff_ms, &limit],
                )
                .await
                .what("purging the tranlog")?;
            let done = client
                .execute(
                    "DELETE FROM saf WHERE state = 'done' AND created_ms < $1",
                    &[&cutoff_ms],
                )
                .await
                .what("purging acknowledged store-and-forward entries")?;
            if n > 0 {
                tracing::info!(
                    rows = n,
                    saf_entries = done,
                    cutoff_ms,
                    "purged the tranlog"
                );
            }
            Ok(n)
        })
    }
}
