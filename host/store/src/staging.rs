//! Rows admitted whose INSERT has not run yet.
//!
//! Admission does not wait for the writer: it queues the row's INSERT and
//! returns. Until the writer runs that INSERT, the row is *staged* here,
//! and what the transaction records next — that it goes upstream
//! (`mark_sent`), how it ended (`finish`) — is added to the staged row
//! instead of becoming a write of its own. The INSERT then writes the row
//! as it stands, and the caller waits for that INSERT's commit. A local
//! transaction is usually answered before the writer gets to its INSERT
//! (the writer is busy with the previous batch's fsync), so its row is
//! written once, in its final state: one statement instead of an INSERT,
//! a SELECT and an UPDATE, and no passing through the in-flight index.
//!
//! Once the writer took a row (under the shard's lock), later calls update
//! it in the database as usual.

use std::collections::HashMap;

use futures::channel::oneshot;
use parking_lot::Mutex;
use switchyard_engine::ports::{Finished, SafId, TxId};

use crate::StoreError;

const SHARDS: usize = 16;

/// What the row's INSERT answers: the store-and-forward entry it queued.
pub(crate) type InsertReply = oneshot::Receiver<Result<Option<SafId>, StoreError>>;

/// What is added to a staged row before it is written.
#[derive(Default)]
pub(crate) struct Additions {
    /// The endpoint it is about to be sent to.
    pub(crate) sent: Option<String>,
    /// How it ended.
    pub(crate) finished: Option<Finished>,
}

struct Staged {
    additions: Additions,
    /// The INSERT's reply, until a caller takes it to wait on.
    reply: Option<InsertReply>,
}

/// The staged rows, sharded by id.
pub(crate) struct Staging {
    shards: Vec<Mutex<HashMap<TxId, Staged>>>,
}

impl Staging {
    pub(crate) fn new() -> Staging {
        Staging {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
        }
    }

    fn shard(&self, id: TxId) -> &Mutex<HashMap<TxId, Staged>> {
        &self.shards[(id as u64 % SHARDS as u64) as usize]
    }

    /// Stages row `id` before its INSERT is queued.
    pub(crate) fn stage(&self, id: TxId) {
        self.shard(id).lock().insert(
            id,
            Staged {
                additions: Additions::default(),
                reply: None,
            },
        );
    }

    /// Gives staged row `id` its INSERT's reply, once queued (if the writer
    /// took the row in between, the reply is not needed).
    pub(crate) fn arm(&self, id: TxId, reply: InsertReply) {
        if let Some(staged) = self.shard(id).lock().get_mut(&id) {
            staged.reply = Some(reply);
        }
    }

    /// Adds to row `id` while it is staged and no one waits on its INSERT
    /// yet; returns the INSERT's reply to wait on, or `None` when the
    /// writer already took the row (then write it as usual).
    pub(crate) fn add(&self, id: TxId, add: impl FnOnce(&mut Additions)) -> Option<InsertReply> {
        let mut shard = self.shard(id).lock();
        let staged = shard.get_mut(&id)?;
        let reply = staged.reply.take()?;
        add(&mut staged.additions);
        Some(reply)
    }

    /// The writer takes row `id` to INSERT it, with what was added.
    pub(crate) fn take(&self, id: TxId) -> Additions {
        self.shard(id)
            .lock()
            .remove(&id)
            .map(|s| s.additions)
            .unwrap_or_default()
    }

    /// Rows staged (tests).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().len()).sum()
    }
}
