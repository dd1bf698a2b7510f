//! The durable store-and-forward forwarder: delivers the queued reversals
//! and advices of one endpoint (or the local reversals), each entry on its
//! own — no head-of-line blocking — until acknowledged.
//!
//! An entry is claimed with a lease (so no two workers ever send it at
//! once), sent at once when queued, then retried after 1 s, 2 s, 4 s …
//! capped at 60 s; never dropped, never expired. After
//! [`ESCALATE_AFTER`] attempts it is escalated — an error line with
//! `event = "saf.escalated"`, a metric — and goes on at the cap. The first
//! send of a reversal is an 0420, each retransmission an 0421 (the
//! formatter builds them); an answer with an acknowledgement code (00, 21,
//! 25 by default) makes it final. At shutdown the attempts in flight finish
//! and the rest waits for the next start.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::StreamExt;
use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use switchyard_engine::ports::{Attempt, SafEntry, SafKind, SafQueue, Tranlog};
use switchyard_engine::saf::{Deliver, Delivery, ESCALATE_AFTER, backoff};
use switchyard_engine::{Context, SafMessage};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::endpoint::Endpoint;

/// The acknowledgement codes of DESIGN.md for endpoint `xxx`.
pub const DEFAULT_ACK_CODES: [&str; 3] = ["00", "21", "25"];

/// How a forwarder works.
#[derive(Debug, Clone)]
pub struct ForwarderOptions {
    /// The endpoint whose entries it delivers.
    pub endpoint: String,
    /// Who holds the leases (the node id).
    pub owner: String,
    /// Most attempts in flight at once.
    pub concurrency: usize,
    /// How long a claim is held before another worker may take the entry
    /// (longer than one attempt can take).
    pub lease: Duration,
    /// Longest sleep between looks at the queue.
    pub poll: Duration,
}

/// What a forwarder counts (for metrics and tests).
#[derive(Debug, Default)]
pub struct ForwarderStats {
    /// Attempts made.
    pub attempts: AtomicU64,
    /// Entries acknowledged.
    pub acked: AtomicU64,
    /// Entries escalated.
    pub escalated: AtomicU64,
}

/// The forwarder of one endpoint.
pub struct Forwarder {
    queue: Arc<dyn SafQueue>,
    deliver: Arc<dyn Deliver>,
    options: ForwarderOptions,
    wake: Arc<Notify>,
    stats: Arc<ForwarderStats>,
    /// Attempts and escalated reversals, in the switch's Prometheus metrics.
    metrics: Option<switchyard_metrics::SafMetrics>,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl Forwarder {
    /// A forwarder of `options.endpoint`'s entries in `queue`, delivered by
    /// `deliver`; `wake` is notified when an entry is queued (it is then
    /// sent at once).
    pub fn new(
        queue: Arc<dyn SafQueue>,
        deliver: Arc<dyn Deliver>,
        options: ForwarderOptions,
        wake: Arc<Notify>,
    ) -> Forwarder {
        Forwarder {
            queue,
            deliver,
            options,
            wake,
            stats: Arc::default(),
            metrics: None,
        }
    }

    /// Also counts its attempts and escalated reversals in `metrics`.
    pub fn with_metrics(mut self, metrics: switchyard_metrics::SafMetrics) -> Forwarder {
        self.metrics = Some(metrics);
        self
    }

    /// Its counters.
    pub fn stats(&self) -> Arc<ForwarderStats> {
        self.stats.clone()
    }

    /// Delivers until `shutdown`, then lets the attempts in flight finish.
    pub async fn run(self, shutdown: CancellationToken) {
        let endpoint = self.options.endpoint.clone();
        tracing::info!(endpoint = %endpoint, "store-and-forward forwarder started");
        let mut in_flight = FuturesUnordered::new();
        loop {
            if shutdown.is_cancelled() {
                break;
            }
            let free = self.options.concurrency.saturating_sub(in_flight.len());
            if free > 0 {
                for entry in self.claim(free).await {
                    in_flight.push(self.attempt(entry));
                }
            }
            let pause = self
                .pause(in_flight.len() >= self.options.concurrency)
                .await;
            tokio::select! {
                _ = shutdown.cancelled() => break,
                Some(()) = in_flight.next(), if !in_flight.is_empty() => {}
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(pause) => {}
            }
        }
        if !in_flight.is_empty() {
            tracing::info!(endpoint = %endpoint, attempts = in_flight.len(),
                "store-and-forward: finishing the attempts in flight");
        }
        while in_flight.next().await.is_some() {}
        tracing::info!(endpoint = %endpoint, "store-and-forward forwarder stopped");
    }

    async fn claim(&self, limit: usize) -> Vec<SafEntry> {
        let o = &self.options;
        match self
            .queue
            .claim(&o.endpoint, &o.owner, now_ms(), o.lease, limit)
            .await
        {
            Ok(entries) => entries,
            Err(e) => {
                tracing::error!(endpoint = %o.endpoint, error = %e, "store-and-forward: claiming entries failed");
                Vec::new()
            }
        }
    }

    /// How long to sleep before looking at the queue again.
    async fn pause(&self, busy: bool) -> Duration {
        if busy {
            return self.options.poll;
        }
        match self.queue.next_due(&self.options.endpoint).await {
            Ok(Some(due)) => {
                let wait = u64::try_from(due - now_ms()).unwrap_or(0);
                Duration::from_millis(wait).clamp(Duration::from_millis(20), self.options.poll)
            }
            _ => self.options.poll,
        }
    }

    fn attempt(&self, entry: SafEntry) -> BoxFuture<'static, ()> {
        let queue = self.queue.clone();
        let deliver = self.deliver.clone();
        let stats = self.stats.clone();
        let metrics = self.metrics.clone();
        Box::pin(async move {
            stats.attempts.fetch_add(1, Ordering::Relaxed);
            if let Some(m) = &metrics {
                m.attempt();
            }
            let delivery = deliver.deliver(&entry).await;
            let attempt = record(&entry, delivery, now_ms());
            match &attempt {
                Attempt::Acked(code) => {
                    stats.acked.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(endpoint = %entry.endpoint, saf = entry.id, kind = entry.kind.name(),
                        original = entry.original, attempts = entry.attempts, rc = %code, "store-and-forward entry acknowledged");
                }
                Attempt::Failed {
                    result,
                    escalate: true,
                    ..
                } => {
                    stats.escalated.fetch_add(1, Ordering::Relaxed);
                    if let Some(m) = &metrics
                        && matches!(entry.kind, SafKind::Reversal | SafKind::LocalReversal)
                    {
                        m.reversal_escalated();
                    }
                    tracing::error!(target: "switchyard::saf", event = "saf.escalated",
                        endpoint = %entry.endpoint, saf = entry.id, kind = entry.kind.name(),
                        original = entry.original, attempts = entry.attempts, last = %result,
                        "store-and-forward entry still unacknowledged after {ESCALATE_AFTER} attempts: escalated; it goes on every {} s",
                        backoff(u32::MAX).as_secs());
                }
                Attempt::Failed { result, .. } => {
                    tracing::warn!(endpoint = %entry.endpoint, saf = entry.id, kind = entry.kind.name(),
                        attempts = entry.attempts, result = %result, "store-and-forward attempt not acknowledged; retried");
                }
            }
            if let Err(e) = queue.attempted(entry.id, attempt).await {
                tracing::error!(endpoint = %entry.endpoint, saf = entry.id, error = %e,
                    "store-and-forward: recording an attempt failed (its lease will lapse and it is retried)");
            }
        })
    }
}

/// What an attempt of `entry` (its `attempts` sends counted, this one
/// included) at `now_ms` records: done when acknowledged; otherwise due
/// again after the backoff of that many failures, escalated once when it
/// reaches [`ESCALATE_AFTER`].
pub fn record(entry: &SafEntry, delivery: Delivery, now_ms: i64) -> Attempt {
    match delivery {
        Delivery::Acked(code) => Attempt::Acked(code),
        Delivery::Failed(result) => Attempt::Failed {
            result,
            next_ms: now_ms + backoff(entry.attempts).as_millis() as i64,
            escalate: !entry.escalated && entry.attempts >= ESCALATE_AFTER,
        },
    }
}

/// Delivers reversals and advices to an endpoint: the formatter builds the
/// message from the stored request, the link carries it, the formatter
/// reads the reply, an acknowledgement code makes it final.
pub struct EndpointDelivery {
    endpoint: Arc<Endpoint>,
    tranlog: Arc<dyn Tranlog>,
    ack_codes: Vec<String>,
}

impl EndpointDelivery {
    /// Delivery to `endpoint` of messages built from rows of `tranlog`;
    /// `ack_codes` make an entry final.
    pub fn new(
        endpoint: Arc<Endpoint>,
        tranlog: Arc<dyn Tranlog>,
        ack_codes: Vec<String>,
    ) -> EndpointDelivery {
        EndpointDelivery {
            endpoint,
            tranlog,
            ack_codes,
        }
    }

    async fn attempt(&self, entry: &SafEntry) -> Result<String, String> {
        let (request, response) = self
            .tranlog
            .messages(entry.source)
            .await
            .map_err(|e| format!("reading transaction {}: {e}", entry.source))?;
        let mut ctx = Context::new(
            entry.tenant.as_str().into(),
            "store-and-forward".into(),
            0,
            request,
        );
        ctx.response = response.unwrap_or_default();
        ctx.tranlog_id = Some(entry.original);
        let message = SafMessage {
            kind: entry.kind,
            retransmission: entry.attempts > 1,
            reason: entry.reason.clone(),
        };
        let outbound = self
            .endpoint
            .formatter()
            .format_saf(&mut ctx, &message)
            .map_err(|f| format!("building the {}: {f}", entry.kind.name()))?;
        let reply = self
            .endpoint
            .exchange(outbound)
            .await
            .map_err(|e| e.to_string())?;
        self.endpoint
            .formatter()
            .parse_response(&mut ctx, &reply)
            .map_err(|f| format!("reading the reply: {f}"))?;
        let code = ctx.result_code().unwrap_or("").to_owned();
        if self.ack_codes.contains(&code) {
            Ok(code)
        } else {
            Err(format!("answered {code:?}, not an acknowledgement"))
        }
    }
}

impl Deliver for EndpointDelivery {
    fn deliver<'a>(&'a self, entry: &'a SafEntry) -> BoxFuture<'a, Delivery> {
        Box::pin(async move {
            if entry.kind == SafKind::LocalReversal {
                return Delivery::Failed("a local reversal is not an endpoint's".into());
            }
            match self.attempt(entry).await {
                Ok(code) => Delivery::Acked(code),
                Err(why) => Delivery::Failed(why),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_engine::ports::SafState;

    fn entry(attempts: u32, escalated: bool) -> SafEntry {
        SafEntry {
            id: 1,
            tenant: "default".into(),
            kind: SafKind::Reversal,
            endpoint: "xxx".into(),
            source: 7,
            original: 7,
            reason: "68".into(),
            state: SafState::Pending,
            attempts,
            created_ms: 0,
            next_ms: 0,
            last_attempt_ms: None,
            last_result: None,
            escalated,
            acked_ms: None,
            lease: None,
        }
    }

    fn failed(attempts: u32, escalated: bool) -> (i64, bool) {
        match record(
            &entry(attempts, escalated),
            Delivery::Failed("silence".into()),
            0,
        ) {
            Attempt::Failed {
                next_ms, escalate, ..
            } => (next_ms, escalate),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn retried_after_1_2_4_s_capped_at_60_and_escalated_once_at_the_tenth() {
        let schedule: Vec<(i64, bool)> = (1..=12).map(|n| failed(n, n > 10)).collect();
        assert_eq!(
            schedule,
            [
                (1_000, false),
                (2_000, false),
                (4_000, false),
                (8_000, false),
                (16_000, false),
                (32_000, false),
                (60_000, false),
                (60_000, false),
                (60_000, false),
                (60_000, true),
                (60_000, false),
                (60_000, false),
            ]
        );
        // Not escalated again once it is.
        assert!(!failed(10, true).1);
        assert_eq!(
            record(&entry(3, false), Delivery::Acked("21".into()), 5),
            Attempt::Acked("21".into())
        );
    }
}
