//! Acquirer reversals and completions matched to their originals, and
//! recovery at start-up. Both run as one writer job (one transaction).

use rusqlite::{OptionalExtension, params};
use switchyard_engine::ports::{
    FollowUp, FollowUpOutcome, LOCAL_ENDPOINT, NewSaf, OriginalRef, Recovered, SafKind, TxId,
    TxKind, Upstream,
};

use crate::error::SqlContext;
use crate::writer::Batch;
use crate::{StoreError, codec, saf};

struct Original {
    id: TxId,
    rc: Option<String>,
    endpoint: Option<String>,
    upstream: Option<String>,
    participants: Option<String>,
    reversal_id: Option<TxId>,
    completion_id: Option<TxId>,
}

/// The newest original `reference` names.
fn find(
    b: &Batch<'_>,
    tenant: &str,
    reference: &OriginalRef,
) -> Result<Option<Original>, StoreError> {
    const COLUMNS: &str =
        "id, rc, endpoint, upstream, participants, reversal_id, completion_id FROM tranlog";
    let map = |r: &rusqlite::Row<'_>| {
        Ok(Original {
            id: r.get(0)?,
            rc: r.get(1)?,
            endpoint: r.get(2)?,
            upstream: r.get(3)?,
            participants: r.get(4)?,
            reversal_id: r.get(5)?,
            completion_id: r.get(6)?,
        })
    };
    let found = match reference {
        OriginalRef::De90 {
            mti,
            stan,
            transmitted,
            acquirer,
        } => b
            .conn
            .prepare_cached(&format!(
                "SELECT {COLUMNS} WHERE kind = 'original' AND stan = ?1 AND tenant = ?2
                   AND class = ?3 AND transmitted = ?4
                   AND ltrim(coalesce(acquirer, ''), '0') = ltrim(?5, '0')
                 ORDER BY id DESC LIMIT 1"
            ))
            .and_then(|mut s| {
                s.query_row(
                    params![stan, tenant, codec::class(mti), transmitted, acquirer],
                    map,
                )
                .optional()
            }),
        OriginalRef::StanTerminalRrn {
            stan,
            terminal,
            rrn,
        } => b
            .conn
            .prepare_cached(&format!(
                "SELECT {COLUMNS} WHERE kind = 'original' AND stan = ?1 AND tenant = ?2
                   AND terminal = ?3 AND (?4 = '' OR rrn = ?4)
                 ORDER BY id DESC LIMIT 1"
            ))
            .and_then(|mut s| {
                s.query_row(params![stan, tenant, terminal, rrn], map)
                    .optional()
            }),
    };
    found.what("looking for the original of a reversal or completion")
}

fn switched_out(o: &Original) -> bool {
    o.endpoint.is_some() && o.upstream.as_deref() != Some(Upstream::NotSent.name())
}

fn update(b: &mut Batch<'_>, sql: &str, params: impl rusqlite::Params) -> Result<(), StoreError> {
    let n = b
        .conn
        .prepare_cached(sql)
        .and_then(|mut s| s.execute(params))
        .what("linking a reversal or completion to its original")?;
    b.wrote(n);
    Ok(())
}

/// Matches the acquirer's reversal or completion `id` and queues what it
/// needs, once.
pub(crate) fn follow_up(
    b: &mut Batch<'_>,
    id: TxId,
    f: FollowUp,
) -> Result<FollowUpOutcome, StoreError> {
    if !matches!(f.kind, TxKind::Reversal | TxKind::Completion) {
        return Err(StoreError::Invalid(format!(
            "a follow-up is a reversal or a completion, not {}",
            f.kind
        )));
    }
    let none = FollowUpOutcome {
        original: None,
        first: false,
        queued: Vec::new(),
    };
    let Some(o) = find(b, &f.tenant, &f.original)? else {
        return Ok(none);
    };
    update(
        b,
        "UPDATE tranlog SET original_id = ?2 WHERE id = ?1",
        params![id, o.id],
    )?;
    let mut outcome = FollowUpOutcome {
        original: Some(o.id),
        first: false,
        queued: Vec::new(),
    };
    let queue = |b: &mut Batch<'_>, kind, endpoint: &str, source| {
        saf::queue_once(
            b,
            &f.tenant,
            &NewSaf {
                kind,
                endpoint: endpoint.to_string(),
                source,
                original: o.id,
                reason: f.reason.clone(),
            },
        )
    };
    if f.kind == TxKind::Reversal {
        if o.reversal_id.is_some() {
            // Processed before (this very follow-up again after a crash, or
            // another reversal): it took effect once.
            return Ok(outcome);
        }
        update(
            b,
            "UPDATE tranlog SET reversal_id = ?2 WHERE id = ?1",
            params![o.id, id],
        )?;
        if saf::has_reversal(b, o.id)? {
            // The switch's own reversal (timeout, crash) is already queued.
            return Ok(outcome);
        }
        outcome.first = true;
        if switched_out(&o) {
            let endpoint = o.endpoint.clone().expect("switched out");
            outcome
                .queued
                .push(queue(b, SafKind::Reversal, &endpoint, o.id)?);
        }
        let participants = o.participants.as_deref().is_some_and(|p| !p.is_empty());
        if o.rc.as_deref() == Some("00") && participants {
            outcome
                .queued
                .push(queue(b, SafKind::LocalReversal, LOCAL_ENDPOINT, o.id)?);
        }
        let state = if outcome.queued.is_empty() {
            "reversed"
        } else {
            "reversal-queued"
        };
        update(
            b,
            "UPDATE tranlog SET state = ?2 WHERE id = ?1",
            params![o.id, state],
        )?;
    } else {
        if o.completion_id.is_some() {
            return Ok(outcome);
        }
        update(
            b,
            "UPDATE tranlog SET completion_id = ?2 WHERE id = ?1",
            params![o.id, id],
        )?;
        outcome.first = true;
        if switched_out(&o) {
            let endpoint = o.endpoint.clone().expect("switched out");
            outcome
                .queued
                .push(queue(b, SafKind::Advice, &endpoint, id)?);
        }
    }
    tracing::info!(
        follow_up = id,
        original = o.id,
        kind = %f.kind,
        queued = outcome.queued.len(),
        "matched a follow-up to its original"
    );
    Ok(outcome)
}

/// Recovery of `node` at start-up. (The queries repeat the predicate of the
/// partial index of rows in flight, so that SQLite uses it.)
pub(crate) fn recover(b: &mut Batch<'_>, node: &str) -> Result<Recovered, StoreError> {
    let sent: Vec<(TxId, String, Option<String>)> = b
        .conn
        .prepare_cached(
            "SELECT id, tenant, endpoint FROM tranlog
             WHERE node = ?1 AND state IN ('received', 'sent') AND state = 'sent'",
        )
        .and_then(|mut s| {
            s.query_map([node], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                .collect()
        })
        .what("finding transactions in flight")?;
    let mut recovered = Recovered::default();
    for (id, tenant, endpoint) in sent {
        match endpoint {
            Some(endpoint) if !saf::has_reversal(b, id)? => {
                saf::queue_once(
                    b,
                    &tenant,
                    &NewSaf {
                        kind: SafKind::Reversal,
                        endpoint,
                        source: id,
                        original: id,
                        reason: "68".into(),
                    },
                )?;
                recovered.reversals_queued += 1;
            }
            Some(_) => {}
            None => tracing::error!(id, "a transaction marked sent has no endpoint"),
        }
        update(
            b,
            "UPDATE tranlog SET state = 'reversal-queued', upstream = 'interrupted' WHERE id = ?1",
            [id],
        )?;
    }
    let n = b
        .conn
        .prepare_cached(
            "UPDATE tranlog SET state = 'interrupted'
             WHERE node = ?1 AND state IN ('received', 'sent') AND state = 'received'",
        )
        .and_then(|mut s| s.execute([node]))
        .what("marking interrupted transactions")?;
    b.wrote(n);
    recovered.interrupted = n as u64;
    recovered.leases_released = saf::release_leases(b, node)?;
    tracing::info!(
        node,
        reversals_queued = recovered.reversals_queued,
        interrupted = recovered.interrupted,
        leases_released = recovered.leases_released,
        "recovered"
    );
    Ok(recovered)
}
