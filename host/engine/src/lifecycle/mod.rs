//! The money-safe life cycle (DESIGN.md): every decoded request gets a
//! tranlog row before anything goes upstream and before its response is
//! written; repeats are answered from the record and cause no second
//! upstream send (also while the original is still in flight); a second
//! original with the same key gets RC 94; the acquirer's reversals and
//! completions are matched to their original and durably queued; a
//! transaction that may have reached its endpoint without an answer gets
//! its reversal queued before RC 91 is written.
//!
//! [`Lifecycle`] is what a listener calls around the pipeline:
//! [`Lifecycle::admit`] before it (which may answer the request itself),
//! [`Lifecycle::finish`] after it, before the response is written. The
//! endpoint step calls [`Lifecycle::before_upstream`] before it sends.
//! Storage is the [`Tranlog`] port; delivery of what is queued is the
//! store-and-forward forwarder's (see [`crate::saf`]).

pub mod classify;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use futures::channel::oneshot;
use switchyard_iso8583::Message;

use crate::context::Context;
use crate::participant::{Failure, FailureKind};
use crate::pipeline::{Disposition, Pipeline};
use crate::ports::{
    Finished, FollowUp, NewSaf, PortError, Received, Recorded, SafKind, Tranlog, TxId, TxKind,
    TxState, Upstream,
};
use crate::rc;
use crate::steps::complete_response;
use classify::{columns, kind_of, match_key, original_ref, storable};

/// DE39 of the reversal the switch sends after a timeout: "response
/// received too late".
pub const TIMEOUT_REVERSAL_REASON: &str = "68";

/// RC of a duplicate transmission.
pub const DUPLICATE: &str = "94";

/// RC of a reversal or completion whose original is not found.
pub const ORIGINAL_NOT_FOUND: &str = "25";

/// What [`Lifecycle::admit`] decided.
#[derive(Debug)]
pub enum Admission {
    /// Run the pipeline, then call [`Lifecycle::finish`].
    Run,
    /// Answered without the pipeline (a repeat, a duplicate, a reversal,
    /// a completion): write this response, already recorded.
    Respond(Message),
}

/// Wakes the store-and-forward forwarder of an endpoint when something
/// was queued for it.
pub type SafWaker = Arc<dyn Fn(&str) + Send + Sync>;

/// Takes over the outcome of a transaction the store failed to record
/// after its request went upstream: the host records it (the reversal
/// queued with it) once the store works again. Without one, the row is
/// left `sent` for the next start's recovery (or another node's takeover).
pub type OwedReversal = Arc<dyn Fn(TxId, Finished) + Send + Sync>;

/// The answer a repeat waits for while its original is in flight.
type Waiters = Vec<oneshot::Sender<Option<Message>>>;

/// The money-safe life cycle of the transactions of one switch.
pub struct Lifecycle {
    tranlog: Arc<dyn Tranlog>,
    wake: SafWaker,
    owed: Option<OwedReversal>,
    /// Transactions in flight here, with the repeats waiting for them.
    in_flight: Mutex<HashMap<TxId, Waiters>>,
}

impl std::fmt::Debug for Lifecycle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lifecycle").finish_non_exhaustive()
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn store_failure(what: &str, e: PortError) -> Failure {
    Failure::new(FailureKind::Host, format!("tranlog: {what}: {e}"))
}

impl Lifecycle {
    /// A life cycle recording in `tranlog`; `wake` is told the endpoint of
    /// every store-and-forward entry queued.
    pub fn new(tranlog: Arc<dyn Tranlog>, wake: SafWaker) -> Lifecycle {
        Lifecycle {
            tranlog,
            wake,
            owed: None,
            in_flight: Mutex::default(),
        }
    }

    /// The same life cycle, handing the outcomes it could not record after
    /// an upstream send to `owed` (see [`OwedReversal`]).
    pub fn with_owed_reversals(self, owed: OwedReversal) -> Lifecycle {
        Lifecycle {
            owed: Some(owed),
            ..self
        }
    }

    /// The tranlog.
    pub fn tranlog(&self) -> &Arc<dyn Tranlog> {
        &self.tranlog
    }

    /// Records the request of `ctx` and decides what happens to it: the
    /// pipeline runs (originals, network management, anything new), or the
    /// request is answered from the record (repeats, duplicates) or by the
    /// life cycle itself (reversals, completions). A store failure is
    /// answered with 96: nothing goes upstream unrecorded.
    pub async fn admit(&self, ctx: &mut Context) -> Admission {
        let kind = kind_of(ctx.request.mti());
        let keyed = !matches!(kind, TxKind::Network | TxKind::Other);
        let received = Received {
            tenant: ctx.tenant().to_string(),
            listener: ctx.listener().to_owned(),
            // A repeat is the original until one is found: recorded as one,
            // so that a second repeat in flight finds it.
            kind: if kind == TxKind::Repeat {
                TxKind::Original
            } else {
                kind
            },
            mti: ctx.request.mti_str().to_owned(),
            columns: columns(&ctx.request),
            pan: ctx.request.get_str(2).map(str::to_owned),
            key: keyed.then(|| match_key(ctx.tenant(), &ctx.request)),
            request: storable(&ctx.request),
            received_ms: now_ms(),
        };
        let admitted = match self.tranlog.admit(received).await {
            Ok(a) => a,
            Err(e) => return self.refuse(ctx, "recording the request", e),
        };
        ctx.tranlog_id = Some(admitted.id);
        if keyed {
            self.lock().insert(admitted.id, Vec::new());
        }
        match (kind, admitted.matched) {
            (TxKind::Original, Some(earlier)) => {
                tracing::warn!(tenant = %ctx.tenant(), listener = ctx.listener(), stan = ctx.request.get_str(11).unwrap_or(""),
                    original = earlier.id, "duplicate transmission of an original: answered 94");
                let response = self.answer(ctx, DUPLICATE);
                self.respond(ctx, TxKind::Duplicate, earlier.id, response)
                    .await
            }
            (TxKind::Repeat | TxKind::Reversal | TxKind::Completion, Some(earlier)) => {
                self.repeat(ctx, earlier).await
            }
            (TxKind::Reversal | TxKind::Completion, None) => self.follow_up(ctx, kind).await,
            _ => Admission::Run,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<TxId, Waiters>> {
        self.in_flight.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The response of the default contract for `ctx`'s request with `code`.
    fn answer(&self, ctx: &Context, code: &str) -> Message {
        let mut response = Message::default();
        complete_response(&ctx.request, code, &mut response);
        response
    }

    /// A store failure at admission: answered 96, unrecorded.
    fn refuse(&self, ctx: &mut Context, what: &str, e: PortError) -> Admission {
        tracing::error!(tenant = %ctx.tenant(), listener = ctx.listener(), error = %e,
            "tranlog: {what} failed; answering 96, nothing sent upstream");
        ctx.set_result_code(rc::SYSTEM_ERROR);
        Admission::Respond(self.answer(ctx, rc::SYSTEM_ERROR))
    }

    /// Records `response` as this row's answer (a `kind` linked to
    /// `original`) and answers with it.
    async fn respond(
        &self,
        ctx: &mut Context,
        kind: TxKind,
        original: TxId,
        response: Message,
    ) -> Admission {
        let code = response.get_str(39).unwrap_or(rc::SYSTEM_ERROR).to_owned();
        ctx.set_result_code(code.clone());
        let finished = Finished {
            state: TxState::Answered,
            kind: Some(kind),
            rc: Some(code),
            approval: None,
            response: Some(response.clone()),
            endpoint: None,
            upstream: Upstream::Local,
            total: ctx.profiler.elapsed(),
            external: None,
            participants: Vec::new(),
            original: Some(original),
            reversal: None,
            trace: None,
        };
        let id = ctx.tranlog_id.expect("admitted");
        let recorded = self.tranlog.finish(id, finished).await;
        self.settle(id, Some(&response));
        match recorded {
            Ok(_) => Admission::Respond(response),
            Err(e) => self.refuse(ctx, "recording the answer", e),
        }
    }

    /// A repeat (or a reversal/completion sent again): the earlier row's
    /// recorded answer, waited for while it is in flight here.
    async fn repeat(&self, ctx: &mut Context, earlier: Recorded) -> Admission {
        let waiting = {
            let mut in_flight = self.lock();
            in_flight.get_mut(&earlier.id).map(|waiters| {
                let (tx, rx) = oneshot::channel();
                waiters.push(tx);
                rx
            })
        };
        let response = match (waiting, earlier.response) {
            (_, Some(recorded)) => Some(recorded),
            (Some(rx), None) => rx.await.ok().flatten(),
            // Not in flight here: settled, or in flight on another node.
            (None, None) => match self.tranlog.settled_messages(earlier.id).await {
                Ok((_, response)) => response,
                Err(e) => return self.refuse(ctx, "reading the earlier answer", e),
            },
        };
        let kind = kind_of(ctx.request.mti());
        match response {
            Some(mut response) => {
                tracing::info!(tenant = %ctx.tenant(), listener = ctx.listener(), stan = ctx.request.get_str(11).unwrap_or(""),
                    original = earlier.id, "repeat answered from the tranlog; nothing sent upstream");
                // A response's MTI always ends in 0 (0201 → 0210).
                if let Some(mti) = ctx.request.mti().response() {
                    response.set_mti(mti);
                }
                self.respond(ctx, TxKind::Repeat, earlier.id, response)
                    .await
            }
            // A reversal or completion recorded but never answered (the
            // switch stopped in between): match it again, idempotently.
            None if matches!(kind, TxKind::Reversal | TxKind::Completion) => {
                self.follow_up(ctx, kind).await
            }
            None => {
                tracing::warn!(tenant = %ctx.tenant(), listener = ctx.listener(), original = earlier.id, state = %earlier.state,
                    "repeat of a transaction that was never answered: answered 91");
                let response = self.answer(ctx, rc::ISSUER_UNAVAILABLE);
                self.respond(ctx, TxKind::Repeat, earlier.id, response)
                    .await
            }
        }
    }

    /// An acquirer reversal or completion: matched to its original and
    /// queued (durably) before it is answered 00; 25 when not found.
    async fn follow_up(&self, ctx: &mut Context, kind: TxKind) -> Admission {
        let id = ctx.tranlog_id.expect("admitted");
        let original = match original_ref(&ctx.request) {
            Ok(o) => o,
            Err(bad) => {
                tracing::warn!(tenant = %ctx.tenant(), listener = ctx.listener(), stan = ctx.request.get_str(11).unwrap_or(""),
                    reason = %bad.0, "reversal or completion without a usable reference: answered 30");
                let response = self.answer(ctx, rc::FORMAT_ERROR);
                return self.respond(ctx, kind, id, response).await;
            }
        };
        let reason = ctx
            .request
            .get_str(39)
            .filter(|r| !r.is_empty())
            .unwrap_or(TIMEOUT_REVERSAL_REASON)
            .to_owned();
        let follow_up = FollowUp {
            kind,
            tenant: ctx.tenant().to_string(),
            original,
            reason,
        };
        let outcome = match self.tranlog.follow_up(id, follow_up).await {
            Ok(o) => o,
            Err(e) => return self.refuse(ctx, "matching the original", e),
        };
        let code = match outcome.original {
            Some(_) => rc::APPROVED,
            None => ORIGINAL_NOT_FOUND,
        };
        if !outcome.queued.is_empty() {
            (self.wake)("");
        }
        tracing::info!(tenant = %ctx.tenant(), listener = ctx.listener(), kind = %kind, original = ?outcome.original,
            first = outcome.first, queued = outcome.queued.len(), rc = code, "acquirer follow-up");
        let response = self.answer(ctx, code);
        let linked = outcome.original.unwrap_or(id);
        self.respond(ctx, kind, linked, response).await
    }

    /// Records that the transaction (its tranlog row `id`) is about to go
    /// to `endpoint`; returns once that is durable. A transaction without a
    /// tranlog row goes on.
    pub async fn before_upstream(&self, id: Option<TxId>, endpoint: &str) -> Result<(), Failure> {
        match id {
            Some(id) => self
                .tranlog
                .mark_sent(id, endpoint)
                .await
                .map_err(|e| store_failure("recording the send", e)),
            None => Ok(()),
        }
    }

    /// Records how the pipeline ended — and, when the transaction may have
    /// reached its endpoint without an answer, queues its reversal in the
    /// same durable write — before the response is written. On a store
    /// failure the response becomes 96.
    pub async fn finish(&self, ctx: &mut Context, disposition: &Disposition, pipeline: &Pipeline) {
        let Some(id) = ctx.tranlog_id else { return };
        let leg = ctx.upstream.clone();
        let reversal = leg
            .as_ref()
            .filter(|l| l.result.needs_reversal())
            .map(|l| NewSaf {
                kind: SafKind::Reversal,
                endpoint: l.endpoint.to_string(),
                source: id,
                original: id,
                reason: TIMEOUT_REVERSAL_REASON.into(),
            });
        let code = ctx.result_code().map(str::to_owned);
        let approval = ctx
            .response
            .get_str(38)
            .filter(|_| code.as_deref() == Some(rc::APPROVED))
            .map(str::to_owned);
        let participants = disposition
            .committed
            .iter()
            .filter_map(|&n| pipeline.node(n).map(|node| node.name().to_owned()))
            .collect();
        let repeat_as_original = kind_of(ctx.request.mti()) == TxKind::Repeat;
        let finished = Finished {
            state: if reversal.is_some() {
                TxState::ReversalQueued
            } else {
                TxState::Answered
            },
            kind: repeat_as_original.then_some(TxKind::Original),
            rc: code,
            approval,
            response: ctx.respond.then(|| ctx.response.clone()),
            endpoint: leg.as_ref().map(|l| l.endpoint.to_string()),
            upstream: leg.as_ref().map_or(Upstream::Local, |l| l.result),
            total: ctx.profiler.elapsed(),
            external: ctx.external,
            participants,
            original: None,
            reversal,
            trace: Some(
                ctx.profiler
                    .compact(Some(pipeline), ctx.external)
                    .to_string(),
            ),
        };
        let endpoint = finished.reversal.as_ref().map(|r| r.endpoint.clone());
        match self.tranlog.finish(id, finished).await {
            Ok(queued) => {
                if let (Some(saf), Some(endpoint)) = (queued, endpoint) {
                    tracing::warn!(tenant = %ctx.tenant(), listener = ctx.listener(), stan = ctx.request.get_str(11).unwrap_or(""),
                        endpoint = %endpoint, saf = saf, "no answer from the endpoint: reversal queued");
                    (self.wake)(&endpoint);
                }
                let response = ctx.respond.then_some(&ctx.response);
                self.settle(id, response);
            }
            Err(e) => {
                tracing::error!(tenant = %ctx.tenant(), listener = ctx.listener(), error = %e,
                    "tranlog: recording the outcome failed; answering 96");
                ctx.set_result_code(rc::SYSTEM_ERROR);
                let mut response = Message::default();
                complete_response(&ctx.request, rc::SYSTEM_ERROR, &mut response);
                ctx.response = response;
                self.owe_reversal(ctx, id);
                self.settle(id, None);
            }
        }
    }

    /// After a failed outcome write: a request that may have reached its
    /// endpoint (answered or not) is answered 96 here, so whatever the
    /// endpoint did must be reversed. The outcome — 96, reversal queued —
    /// goes to the [`OwedReversal`] hook to be recorded once the store
    /// works again.
    fn owe_reversal(&self, ctx: &Context, id: TxId) {
        let Some(leg) = ctx
            .upstream
            .as_ref()
            .filter(|l| !matches!(l.result, Upstream::Local | Upstream::NotSent))
        else {
            return;
        };
        let Some(owed) = &self.owed else {
            tracing::error!(tenant = %ctx.tenant(), listener = ctx.listener(), id, endpoint = %leg.endpoint,
                "the request went upstream and its outcome is unrecorded: its reversal is queued at the next start");
            return;
        };
        tracing::warn!(tenant = %ctx.tenant(), listener = ctx.listener(), id, endpoint = %leg.endpoint,
            "the request went upstream and was answered 96: its reversal is recorded once the store works again");
        let repeat_as_original = kind_of(ctx.request.mti()) == TxKind::Repeat;
        let finished = Finished {
            state: TxState::ReversalQueued,
            kind: repeat_as_original.then_some(TxKind::Original),
            rc: Some(rc::SYSTEM_ERROR.to_owned()),
            approval: None,
            response: ctx.respond.then(|| ctx.response.clone()),
            endpoint: Some(leg.endpoint.to_string()),
            upstream: leg.result,
            total: ctx.profiler.elapsed(),
            external: ctx.external,
            participants: Vec::new(),
            original: None,
            reversal: Some(NewSaf {
                kind: SafKind::Reversal,
                endpoint: leg.endpoint.to_string(),
                source: id,
                original: id,
                reason: TIMEOUT_REVERSAL_REASON.into(),
            }),
            trace: None,
        };
        owed(id, finished);
    }

    /// The transaction `id` is answered: wake the repeats waiting for it.
    fn settle(&self, id: TxId, response: Option<&Message>) {
        let waiters = self.lock().remove(&id);
        for w in waiters.into_iter().flatten() {
            let _ = w.send(response.cloned());
        }
    }

    /// Drops what is held for a transaction that ends without
    /// [`Lifecycle::finish`] (its task was cancelled): its waiting repeats
    /// read the tranlog instead.
    pub fn abandon(&self, id: TxId) {
        self.settle(id, None);
    }
}

#[cfg(test)]
mod tests;
