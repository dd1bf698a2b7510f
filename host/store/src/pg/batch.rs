//! Group commits on PostgreSQL: the writes of concurrent transactions
//! (admissions, sends, outcomes) collected into one statement and one
//! commit per batch, as the SQLite writer does. A batch is whatever queued
//! while the previous batches ran (no timer: an idle switch's write goes
//! out at once); a few batches run at once on their own connections.

use std::future::Future;
use std::sync::Arc;

use tokio::sync::{Semaphore, mpsc, oneshot};

use crate::StoreError;

type Reply<O> = oneshot::Sender<Result<O, StoreError>>;

/// Sends items to a batch runner; each resolves with its own result.
pub(crate) struct Batcher<I, O> {
    tx: mpsc::UnboundedSender<(I, Reply<O>)>,
}

impl<I: Send + 'static, O: Send + 'static> Batcher<I, O> {
    /// Starts the collector on `handle`: up to `lanes` batches of at most
    /// `max` items in flight; `run` answers a batch with one result per
    /// item, in order (or fails the whole batch).
    pub(crate) fn start<F, Fut>(
        handle: &tokio::runtime::Handle,
        lanes: usize,
        max: usize,
        run: F,
    ) -> Batcher<I, O>
    where
        F: Fn(Vec<I>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Vec<Result<O, StoreError>>, StoreError>> + Send + 'static,
    {
        let (tx, mut rx) = mpsc::unbounded_channel::<(I, Reply<O>)>();
        let run = Arc::new(run);
        handle.spawn(async move {
            let lanes = Arc::new(Semaphore::new(lanes.max(1)));
            while let Some(first) = rx.recv().await {
                let Ok(permit) = lanes.clone().acquire_owned().await else {
                    return;
                };
                let mut batch = vec![first];
                while batch.len() < max {
                    match rx.try_recv() {
                        Ok(item) => batch.push(item),
                        Err(_) => break,
                    }
                }
                let run = run.clone();
                tokio::spawn(async move {
                    let (items, replies): (Vec<I>, Vec<Reply<O>>) = batch.into_iter().unzip();
                    let n = items.len();
                    match run(items).await {
                        Ok(results) if results.len() == n => {
                            for (reply, r) in replies.into_iter().zip(results) {
                                let _ = reply.send(r);
                            }
                        }
                        Ok(results) => {
                            let why = format!("a batch of {n} got {} results", results.len());
                            for reply in replies {
                                let _ = reply.send(Err(StoreError::Batch(why.clone())));
                            }
                        }
                        Err(e) => {
                            let why = e.to_string();
                            for reply in replies {
                                let _ = reply.send(Err(StoreError::Batch(why.clone())));
                            }
                        }
                    }
                    drop(permit);
                });
            }
        });
        Batcher { tx }
    }

    /// Queues `item`; resolves with its result.
    pub(crate) async fn submit(&self, item: I) -> Result<O, StoreError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send((item, reply))
            .map_err(|_| StoreError::Closed)?;
        rx.await.unwrap_or(Err(StoreError::Closed))
    }
}
