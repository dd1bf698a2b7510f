//! Store-and-forward delivery, the parts that need no I/O: what one
//! delivery attempt returns ([`Delivery`]), who makes it ([`Deliver`]),
//! the retry schedule ([`backoff`], [`ESCALATE_AFTER`]), and the delivery
//! of local reversals ([`LocalReversals`]: the participants that committed
//! a local original are told it was reversed).
//!
//! The forwarder that claims entries, runs attempts and records them is
//! `switchyard-net`'s (it owns timers and endpoint links).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;

use crate::context::Context;
use crate::pipeline::Pipeline;
use crate::ports::{SafEntry, Tranlog};

/// After this many attempts without an acknowledgement an entry is
/// escalated (error log, metric); it goes on at the longest interval.
pub const ESCALATE_AFTER: u32 = 10;

/// The longest wait between two attempts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// How long to wait after `failed` unacknowledged attempts before the
/// next: the first attempt goes at once, then 1 s, 2 s, 4 s … capped at
/// [`MAX_BACKOFF`].
pub fn backoff(failed: u32) -> Duration {
    match failed {
        0 => Duration::ZERO,
        n => Duration::from_secs(1u64 << (n - 1).min(6)).min(MAX_BACKOFF),
    }
}

/// What one delivery attempt got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// Acknowledged with this response code: done.
    Acked(String),
    /// Not acknowledged: why (silence, a code that is no acknowledgement,
    /// a failure). Retried later.
    Failed(String),
}

/// Delivers store-and-forward entries of one endpoint.
pub trait Deliver: Send + Sync {
    /// One attempt at delivering `entry`.
    fn deliver<'a>(&'a self, entry: &'a SafEntry) -> BoxFuture<'a, Delivery>;
}

/// A listener's pipeline and port, which a local reversal runs against.
#[derive(Clone)]
pub struct ListenerPipeline {
    /// The listener's configured port (the `PORT` variable).
    pub port: u16,
    /// Its pipeline.
    pub pipeline: Arc<Pipeline>,
}

/// Delivers local reversals: each participant that committed the original
/// (as the tranlog recorded them) gets [`crate::Participant::reverse`],
/// with the original request and response in the context and the
/// variables `TRANLOG_ID` (the original's row) and `REVERSAL_REASON`.
/// Delivery is at-least-once: after a crash a participant may be told
/// again, and uses `TRANLOG_ID` to do its part once.
pub struct LocalReversals {
    tranlog: Arc<dyn Tranlog>,
    listeners: HashMap<String, ListenerPipeline>,
}

impl LocalReversals {
    /// Local reversals of the transactions of `listeners` (by name).
    pub fn new(
        tranlog: Arc<dyn Tranlog>,
        listeners: HashMap<String, ListenerPipeline>,
    ) -> LocalReversals {
        LocalReversals { tranlog, listeners }
    }

    async fn reverse(&self, entry: &SafEntry) -> Result<(), String> {
        let original = self
            .tranlog
            .get(entry.original)
            .await
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("transaction {} is not in the tranlog", entry.original))?;
        let (request, response) = self
            .tranlog
            .messages(entry.source)
            .await
            .map_err(|e| e.to_string())?;
        let Some(listener) = self.listeners.get(&original.listener) else {
            return Err(format!(
                "listener {:?} of transaction {} is no longer configured",
                original.listener, original.id
            ));
        };
        let mut ctx = Context::new(
            original.tenant.as_str().into(),
            original.listener.as_str().into(),
            listener.port,
            request,
        );
        ctx.response = response.unwrap_or_default();
        ctx.tranlog_id = Some(original.id);
        ctx.set_var("REVERSAL_REASON", entry.reason.clone());
        let failures = listener.pipeline.reverse(&original.participants, &mut ctx);
        match failures.first() {
            None => Ok(()),
            Some((name, f)) => Err(format!("participant {name}: {f}")),
        }
    }
}

impl Deliver for LocalReversals {
    fn deliver<'a>(&'a self, entry: &'a SafEntry) -> BoxFuture<'a, Delivery> {
        Box::pin(async move {
            match self.reverse(entry).await {
                Ok(()) => Delivery::Acked(crate::rc::APPROVED.into()),
                Err(reason) => Delivery::Failed(reason),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_one_second_to_a_minute() {
        let secs: Vec<u64> = (0..12).map(|n| backoff(n).as_secs()).collect();
        assert_eq!(secs, [0, 1, 2, 4, 8, 16, 32, 60, 60, 60, 60, 60]);
    }
}
