//! Reversals owed by a running node: a request went upstream, then the
//! store failed to record its outcome (a database outage shorter than the
//! node's lease, a full disk). The acquirer was answered 96, so whatever
//! the endpoint did must be reversed; the row is still `sent`. The life
//! cycle hands the outcome (96, reversal queued) to [`hook`], which records
//! it in a background task, retrying with a capped backoff until the store
//! works again. If the switch stops first, the row stays `sent` and the
//! next start's recovery (or another node's takeover) queues the reversal:
//! it is owed either way, and queued once (the store's `queue_once`).

use std::sync::Arc;
use std::time::Duration;

use switchyard_engine::lifecycle::{OwedReversal, SafWaker};
use switchyard_engine::ports::{Finished, PortError, Tranlog, TxId};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The wait before the first retry.
pub const FIRST_RETRY: Duration = Duration::from_millis(100);
/// The longest wait between two retries.
pub const MAX_RETRY: Duration = Duration::from_secs(5);

/// The life cycle's [`OwedReversal`] hook: each owed outcome is recorded by
/// [`record`] in a task of `tasks` (stopped with the switch's background
/// tasks, before the store closes).
pub fn hook(
    tranlog: Arc<dyn Tranlog>,
    wake: SafWaker,
    (stop, tracker): &(CancellationToken, TaskTracker),
) -> OwedReversal {
    let (stop, tracker) = (stop.clone(), tracker.clone());
    Arc::new(move |id, finished| {
        tracker.spawn(record(
            tranlog.clone(),
            wake.clone(),
            stop.clone(),
            id,
            finished,
        ));
    })
}

/// Records `finished` (with the reversal it queues) for row `id`, retrying
/// until it commits, the store is closed, or `stop` is cancelled (then one
/// last try). Wakes the endpoint's forwarder once it is queued. Whether it
/// was recorded.
pub async fn record(
    tranlog: Arc<dyn Tranlog>,
    wake: SafWaker,
    stop: CancellationToken,
    id: TxId,
    finished: Finished,
) -> bool {
    let endpoint = finished
        .reversal
        .as_ref()
        .map(|r| r.endpoint.clone())
        .unwrap_or_default();
    let mut wait = FIRST_RETRY;
    let mut attempts = 0u32;
    loop {
        let stopping = tokio::select! {
            biased;
            () = stop.cancelled() => true,
            () = tokio::time::sleep(wait) => false,
        };
        attempts += 1;
        match tranlog.finish(id, finished.clone()).await {
            Ok(saf) => {
                tracing::warn!(id, saf = ?saf, endpoint = %endpoint, attempts,
                    "the owed reversal is recorded and queued");
                wake(&endpoint);
                return true;
            }
            Err(PortError::Closed) => break,
            Err(e) if stopping => {
                tracing::debug!(id, error = %e, "the last try at the owed reversal failed");
                break;
            }
            Err(e) => {
                if attempts.is_power_of_two() {
                    tracing::warn!(id, endpoint = %endpoint, attempts, error = %e,
                        "recording an owed reversal failed again; retrying");
                }
                wait = (wait * 2).min(MAX_RETRY);
            }
        }
    }
    tracing::error!(id, endpoint = %endpoint, attempts,
        "the owed reversal is not recorded: the row stays sent, and the next start's recovery (or another node's takeover) queues its reversal");
    false
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicU32, Ordering};

    use switchyard_engine::ports::{
        Admitted, Columns, FollowUp, FollowUpOutcome, NewSaf, PortFuture, Received, Recovered,
        SafId, SafKind, SafQueue, TxKind, TxQuery, TxRecord, TxState, Upstream,
    };
    use switchyard_iso8583::{Message, Mti};
    use switchyard_store::SqliteStore;

    use super::*;

    /// A SQLite tranlog whose next `failures` outcome writes fail.
    struct Flaky {
        store: Arc<SqliteStore>,
        failures: AtomicU32,
    }

    impl Tranlog for Flaky {
        fn admit(&self, r: Received) -> PortFuture<Admitted> {
            self.store.admit(r)
        }
        fn mark_sent(&self, id: TxId, endpoint: &str) -> PortFuture<()> {
            self.store.mark_sent(id, endpoint)
        }
        fn finish(&self, id: TxId, f: Finished) -> PortFuture<Option<SafId>> {
            let left = self.failures.load(Ordering::SeqCst);
            if left > 0 {
                self.failures.store(left - 1, Ordering::SeqCst);
                return Box::pin(async { Err(PortError::Database("connection lost".into())) });
            }
            self.store.finish(id, f)
        }
        fn late_reply(&self, id: TxId, rc: Option<String>, at: i64) -> PortFuture<()> {
            self.store.late_reply(id, rc, at)
        }
        fn follow_up(&self, id: TxId, f: FollowUp) -> PortFuture<FollowUpOutcome> {
            self.store.follow_up(id, f)
        }
        fn recover(&self) -> PortFuture<Recovered> {
            self.store.recover()
        }
        fn messages(&self, id: TxId) -> PortFuture<(Message, Option<Message>)> {
            self.store.messages(id)
        }
        fn get(&self, id: TxId) -> PortFuture<Option<TxRecord>> {
            self.store.get(id)
        }
        fn linked(&self, id: TxId) -> PortFuture<Vec<TxRecord>> {
            self.store.linked(id)
        }
        fn search(&self, q: TxQuery) -> PortFuture<Vec<TxRecord>> {
            self.store.search(q)
        }
        fn purge(&self, cutoff_ms: i64, limit: usize) -> PortFuture<u64> {
            self.store.purge(cutoff_ms, limit)
        }
    }

    /// A sent original of `store` and the outcome the life cycle owes it.
    async fn sent(store: &SqliteStore) -> (TxId, Finished) {
        let request = Message::new(Mti::new("0200").unwrap());
        let admitted = store
            .admit(Received {
                tenant: "acme".into(),
                listener: "l5001".into(),
                kind: TxKind::Original,
                mti: "0200".into(),
                columns: Columns::default(),
                pan: None,
                key: None,
                request,
                received_ms: 1,
            })
            .await
            .unwrap();
        store.mark_sent(admitted.id, "xxx").await.unwrap();
        let finished = Finished {
            state: TxState::ReversalQueued,
            kind: None,
            rc: Some("96".into()),
            approval: None,
            response: None,
            endpoint: Some("xxx".into()),
            upstream: Upstream::Answered,
            total: Duration::ZERO,
            external: None,
            participants: Vec::new(),
            original: None,
            reversal: Some(NewSaf {
                kind: SafKind::Reversal,
                endpoint: "xxx".into(),
                source: admitted.id,
                original: admitted.id,
                reason: "68".into(),
            }),
            trace: None,
        };
        (admitted.id, finished)
    }

    fn woken() -> (SafWaker, Arc<Mutex<Vec<String>>>) {
        let woken: Arc<Mutex<Vec<String>>> = Arc::default();
        let w = woken.clone();
        (
            Arc::new(move |e: &str| w.lock().unwrap().push(e.into())),
            woken,
        )
    }

    #[tokio::test]
    async fn an_owed_reversal_is_recorded_once_the_store_works_again() {
        let store = SqliteStore::in_memory("node-1");
        let (id, finished) = sent(&store).await;
        let flaky = Arc::new(Flaky {
            store: store.clone(),
            failures: AtomicU32::new(3),
        });
        let (wake, woken) = woken();
        let recorded = record(flaky, wake, CancellationToken::new(), id, finished).await;
        assert!(recorded);
        let row = store.get(id).await.unwrap().unwrap();
        assert_eq!(row.state, TxState::ReversalQueued);
        assert_eq!(row.rc.as_deref(), Some("96"));
        let entries = store.entries_of(id).await.unwrap();
        assert_eq!(entries.len(), 1, "one reversal queued");
        assert_eq!(entries[0].endpoint, "xxx");
        assert_eq!(*woken.lock().unwrap(), ["xxx"]);
    }

    #[tokio::test]
    async fn a_stopping_switch_tries_once_more_then_leaves_the_row_to_recovery() {
        let store = SqliteStore::in_memory("node-1");
        let (id, finished) = sent(&store).await;
        let flaky = Arc::new(Flaky {
            store: store.clone(),
            failures: AtomicU32::new(u32::MAX),
        });
        let (wake, woken) = woken();
        let stop = CancellationToken::new();
        stop.cancel();
        let recorded = record(flaky, wake, stop, id, finished).await;
        assert!(!recorded);
        assert_eq!(store.get(id).await.unwrap().unwrap().state, TxState::Sent);
        assert!(woken.lock().unwrap().is_empty());
        // The next start's recovery queues it.
        let recovered = store.recover().await.unwrap();
        assert_eq!(recovered.reversals_queued, 1, "{recovered:?}");
    }
}
