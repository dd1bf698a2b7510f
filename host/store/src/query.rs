//! Reading the tranlog (rows as operators see them, the stored messages)
//! and purging old rows.

use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, Row, params};
use switchyard_engine::iso8583::Message;
use switchyard_engine::ports::{Columns, TxId, TxKind, TxQuery, TxRecord, TxState, Upstream};

use crate::error::SqlContext;
use crate::store::SqliteStore;
use crate::tranlog::identity;
use crate::writer::Batch;
use crate::{StoreError, ids};

const RECORD: &str = "id, tenant, listener, node, kind, mti, processing_code, amount, currency,
    stan, transmitted, rrn, terminal, merchant, acquirer, pan_masked, state, rc, approval,
    endpoint, upstream, received_ms, total_us, external_us, original_id, reversal_id,
    completion_id, participants, late_rc, late_ms, key_id, trace";

/// The kind named `name` in a row.
pub(crate) fn kind(name: &str) -> Result<TxKind, StoreError> {
    TxKind::parse(name).ok_or_else(|| StoreError::Corrupt(format!("tranlog kind {name:?}")))
}

/// The state named `name` in a row.
pub(crate) fn state(name: &str) -> Result<TxState, StoreError> {
    TxState::parse(name).ok_or_else(|| StoreError::Corrupt(format!("tranlog state {name:?}")))
}

/// Participants as stored: names joined by commas.
pub(crate) fn join_participants(names: &[String]) -> Result<Option<String>, StoreError> {
    if names.is_empty() {
        return Ok(None);
    }
    if let Some(bad) = names.iter().find(|n| n.contains(',') || n.is_empty()) {
        return Err(StoreError::Invalid(format!("participant name {bad:?}")));
    }
    Ok(Some(names.join(",")))
}

fn conversion(e: StoreError) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
}

fn record(r: &Row<'_>) -> rusqlite::Result<TxRecord> {
    let kind_name: String = r.get(4)?;
    let state_name: String = r.get(16)?;
    let upstream: Option<String> = r.get(20)?;
    let participants: Option<String> = r.get(27)?;
    let late_ms: Option<i64> = r.get(29)?;
    Ok(TxRecord {
        id: r.get(0)?,
        tenant: r.get(1)?,
        listener: r.get(2)?,
        node: r.get(3)?,
        kind: kind(&kind_name).map_err(conversion)?,
        mti: r.get(5)?,
        columns: Columns {
            processing_code: r.get(6)?,
            amount: r.get(7)?,
            currency: r.get(8)?,
            stan: r.get(9)?,
            transmitted: r.get(10)?,
            rrn: r.get(11)?,
            terminal: r.get(12)?,
            merchant: r.get(13)?,
            acquirer: r.get(14)?,
        },
        pan_masked: r.get(15)?,
        state: state(&state_name).map_err(conversion)?,
        rc: r.get(17)?,
        approval: r.get(18)?,
        endpoint: r.get(19)?,
        upstream: match upstream {
            Some(u) => Some(Upstream::parse(&u).ok_or_else(|| {
                conversion(StoreError::Corrupt(format!("tranlog upstream {u:?}")))
            })?),
            None => None,
        },
        received_ms: r.get(21)?,
        total_us: r.get(22)?,
        external_us: r.get(23)?,
        original: r.get(24)?,
        reversal: r.get(25)?,
        completion: r.get(26)?,
        participants: participants
            .map(|p| p.split(',').map(str::to_string).collect())
            .unwrap_or_default(),
        late_reply: late_ms.map(|ms| (r.get::<_, Option<String>>(28).ok().flatten(), ms)),
        key_id: r.get(30)?,
        trace: r.get(31)?,
    })
}

impl SqliteStore {
    pub(crate) fn open_message(&self, blob: &[u8], identity: &[u8]) -> Result<Message, StoreError> {
        crate::codec::decode(&self.keyring.open(blob, identity)?)
    }

    pub(crate) fn messages_now(&self, id: TxId) -> Result<(Message, Option<Message>), StoreError> {
        self.read(|conn| {
            let (tenant, request, response): (String, Option<Vec<u8>>, Option<Vec<u8>>) = conn
                .prepare_cached("SELECT tenant, request, response FROM tranlog WHERE id = ?1")
                .and_then(|mut s| {
                    s.query_row([id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                        .optional()
                })
                .what("reading a transaction's messages")?
                .ok_or_else(|| StoreError::Invalid(format!("no tranlog row {id}")))?;
            let request = request
                .ok_or_else(|| StoreError::Corrupt(format!("tranlog row {id} has no request")))?;
            let request = self.open_message(&request, &identity("request", &tenant, id))?;
            let response = response
                .map(|b| self.open_message(&b, &identity("response", &tenant, id)))
                .transpose()?;
            Ok((request, response))
        })
    }

    pub(crate) fn get_now(&self, id: TxId) -> Result<Option<TxRecord>, StoreError> {
        self.read(|conn| {
            conn.prepare_cached(&format!("SELECT {RECORD} FROM tranlog WHERE id = ?1"))
                .and_then(|mut s| s.query_row([id], record).optional())
                .what("reading a tranlog row")
        })
    }

    pub(crate) fn linked_now(&self, id: TxId) -> Result<Vec<TxRecord>, StoreError> {
        self.read(|conn| {
            conn.prepare_cached(&format!(
                "SELECT {RECORD} FROM tranlog WHERE original_id = ?1 ORDER BY id"
            ))
            .and_then(|mut s| s.query_map([id], record)?.collect())
            .what("reading linked tranlog rows")
        })
    }

    pub(crate) fn search_now(&self, q: &TxQuery) -> Result<Vec<TxRecord>, StoreError> {
        let mut sql = format!("SELECT {RECORD} FROM tranlog WHERE 1 = 1");
        let mut values: Vec<Value> = Vec::new();
        let mut add = |clause: &str, v: Value| {
            values.push(v);
            sql.push_str(&format!(" AND {clause} ?{}", values.len()));
        };
        for (column, v) in [
            ("tenant =", &q.tenant),
            ("stan =", &q.stan),
            ("rrn =", &q.rrn),
            ("terminal =", &q.terminal),
            ("merchant =", &q.merchant),
            ("substr(pan_masked, -4) =", &q.pan_last4),
        ] {
            if let Some(v) = v {
                add(column, Value::Text(v.clone()));
            }
        }
        if let Some(from) = q.from_ms {
            // Ids are time-ordered: a row received at `from` or later has an
            // id at or above its floor (the primary key bounds the scan).
            add("id >=", Value::Integer(ids::floor_of(from)));
            add("received_ms >=", Value::Integer(from));
        }
        if let Some(to) = q.to_ms {
            add("received_ms <", Value::Integer(to));
        }
        sql.push_str(" ORDER BY id DESC");
        if q.limit > 0 {
            sql.push_str(&format!(" LIMIT {}", q.limit));
        }
        self.read(|conn: &Connection| {
            conn.prepare_cached(&sql)
                .and_then(|mut s| {
                    s.query_map(rusqlite::params_from_iter(values.iter()), record)?
                        .collect()
                })
                .what("searching the tranlog")
        })
    }
}

/// Deletes up to `limit` rows received before `cutoff_ms` that no pending
/// store-and-forward entry needs, and the acknowledged entries of before
/// the cutoff.
pub(crate) fn purge(b: &mut Batch<'_>, cutoff_ms: i64, limit: usize) -> Result<u64, StoreError> {
    // Ids are time-ordered; allow a minute between reception and admission.
    let bound = ids::floor_of(cutoff_ms.saturating_add(60_000));
    let n = b
        .conn
        .prepare_cached(
            "DELETE FROM tranlog WHERE id IN (
                SELECT t.id FROM tranlog t
                WHERE t.id < ?1 AND t.received_ms < ?2
                  AND NOT EXISTS (SELECT 1 FROM saf s WHERE s.state = 'pending'
                                  AND (s.source = t.id OR s.original = t.id))
                ORDER BY t.id LIMIT ?3)",
        )
        .and_then(|mut s| s.execute(params![bound, cutoff_ms, limit as i64]))
        .what("purging the tranlog")?;
    b.wrote(n);
    let done = b
        .conn
        .prepare_cached("DELETE FROM saf WHERE state = 'done' AND created_ms < ?1")
        .and_then(|mut s| s.execute([cutoff_ms]))
        .what("purging acknowledged store-and-forward entries")?;
    b.wrote(done);
    if n > 0 {
        tracing::info!(
            rows = n,
            saf_entries = done,
            cutoff_ms,
            "purged the tranlog"
        );
    }
    Ok(n as u64)
}
