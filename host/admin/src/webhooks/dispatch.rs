//! The dispatcher task: fan-out of new events, then the due deliveries.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use rusqlite::{Connection, TransactionBehavior};
use switchyard_store::outbox;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::client::{self, Target};
use super::{Settings, sign};
use crate::audit::{Audit, AuditEvent, Outcome, now_ms};

/// Most events one fan-out reads; most deliveries one round sends.
const BATCH: usize = 64;

/// One delivery claimed for an attempt.
struct Claimed {
    id: i64,
    event_id: String,
    subscription: i64,
    attempts: i64,
}

/// A request ready to send: where, its headers, its body.
type Prepared = (Target, Vec<(&'static str, String)>, Bytes);

/// One POST of a prepared delivery.
async fn send(prepared: anyhow::Result<Option<Prepared>>, timeout: Duration) -> Verdict {
    let (target, headers, body) = match prepared {
        Ok(Some(p)) => p,
        Ok(None) => return Verdict::Disable(0),
        Err(e) => return Verdict::Retry(None, format!("{e:#}")),
    };
    match client::post(&target, &headers, body, timeout).await {
        Ok(s) if (200..300).contains(&s) => Verdict::Delivered(s),
        Ok(410) => Verdict::Disable(410),
        Ok(s) => Verdict::Retry(Some(s), format!("HTTP {s}")),
        Err(e) => Verdict::Retry(None, e),
    }
}

/// What to do with a delivery after its attempt.
enum Verdict {
    Delivered(u16),
    Disable(u16),
    Retry(Option<u16>, String),
}

/// The dispatcher's state (one connection of its own).
pub(super) struct Dispatcher {
    conn: Connection,
    settings: Settings,
    audit: Audit,
    notify: Arc<Notify>,
}

impl Dispatcher {
    pub(super) fn new(
        conn: Connection,
        settings: Settings,
        audit: Audit,
        notify: Arc<Notify>,
    ) -> anyhow::Result<Dispatcher> {
        Ok(Dispatcher {
            conn,
            settings,
            audit,
            notify,
        })
    }

    /// Runs until `shutdown`: each round fans out, sends what is due, then
    /// sleeps until the next due delivery, a wake-up or the poll period.
    pub(super) async fn run(mut self, shutdown: CancellationToken) {
        tracing::info!(
            subscriptions = self.settings.subscriptions.len(),
            "webhook delivery started"
        );
        loop {
            // A shutdown abandons the attempts in flight: their deliveries
            // stay claimed until the lease ends, then are sent again.
            let round = tokio::select! {
                () = shutdown.cancelled() => break,
                r = self.round() => r,
            };
            let busy = match round {
                Ok(busy) => busy,
                Err(e) => {
                    tracing::warn!(error = %format!("{e:#}"), "webhook delivery round failed");
                    false
                }
            };
            if busy {
                if shutdown.is_cancelled() {
                    break;
                }
                continue;
            }
            let wait = self.wait();
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = self.notify.notified() => {}
                () = tokio::time::sleep(wait) => {}
            }
        }
        tracing::info!("webhook delivery stopped");
    }

    /// How long to sleep: until the next due delivery, at most `poll`.
    fn wait(&self) -> Duration {
        let poll = self.settings.poll;
        match outbox::next_due(&self.conn) {
            Ok(Some(at)) => {
                Duration::from_millis((at - now_ms()).clamp(0, poll.as_millis() as i64) as u64)
            }
            _ => poll,
        }
    }

    /// One round; `true` when a batch was full (go on at once).
    async fn round(&mut self) -> anyhow::Result<bool> {
        let fanned = self.fan_out()?;
        let now = now_ms();
        let lease = now + self.settings.attempt_timeout.as_millis() as i64 + 5_000;
        let claimed: Vec<Claimed> = outbox::claim_due(&self.conn, now, lease, BATCH)
            .context("claiming due webhook deliveries")?
            .into_iter()
            .map(|(id, event_id, subscription, attempts)| Claimed {
                id,
                event_id,
                subscription,
                attempts,
            })
            .collect();
        let timeout = self.settings.attempt_timeout;
        let sends: Vec<_> = claimed
            .iter()
            .map(|c| {
                let prepared = self.prepare(c);
                async move { send(prepared, timeout).await }
            })
            .collect();
        let verdicts = futures::future::join_all(sends).await;
        for (c, v) in claimed.iter().zip(verdicts) {
            self.settle(c, v)?;
        }
        Ok(fanned == BATCH || claimed.len() == BATCH)
    }

    /// Queues a delivery of each new event to each subscription it
    /// matches, and moves the cursor, in one transaction.
    fn fan_out(&mut self) -> anyhow::Result<usize> {
        let first = self.settings.retry_schedule[0].as_millis() as i64;
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .context("starting a webhook fan-out")?;
        let events = outbox::events_after_cursor(&tx, BATCH)?;
        let Some(last) = events.last().map(|e| e.seq) else {
            return Ok(0);
        };
        let subs = outbox::subscriptions(&tx)?;
        for e in &events {
            for s in subs
                .iter()
                .filter(|s| super::matches(s, &e.tenant, &e.event_type))
            {
                outbox::insert_delivery(&tx, &e.id, s.id, e.created_ms.max(now_ms()) + first)?;
            }
        }
        outbox::set_cursor(&tx, last)?;
        tx.commit().context("committing a webhook fan-out")?;
        Ok(events.len())
    }

    /// The request of a claimed delivery; `None` when its subscription or
    /// event is gone or the subscription disabled.
    fn prepare(&self, c: &Claimed) -> anyhow::Result<Option<Prepared>> {
        let Some(sub) = outbox::subscription_by_id(&self.conn, c.subscription)? else {
            return Ok(None);
        };
        let Some(event) = outbox::event(&self.conn, &c.event_id)? else {
            return Ok(None);
        };
        if sub.disabled {
            return Ok(None);
        }
        let target = Target::parse(&sub.url)?;
        let key = sign::secret_key(&sub.secret).context("the subscription's secret")?;
        let data: serde_json::Value = serde_json::from_str(&event.payload)?;
        let body = serde_json::json!({
            "type": event.event_type,
            "timestamp": sign::rfc3339(event.created_ms),
            "data": data,
        })
        .to_string();
        let ts = now_ms() / 1000;
        let headers = vec![
            ("content-type", "application/json".to_owned()),
            ("webhook-id", event.id.clone()),
            ("webhook-timestamp", ts.to_string()),
            (
                "webhook-signature",
                sign::signature(&key, &event.id, ts, body.as_bytes()),
            ),
            ("user-agent", "switchyard-webhooks/1".to_owned()),
        ];
        Ok(Some((target, headers, Bytes::from(body))))
    }

    /// Records the verdict of an attempt.
    fn settle(&mut self, c: &Claimed, v: Verdict) -> anyhow::Result<()> {
        let now = now_ms();
        match v {
            Verdict::Delivered(s) => {
                outbox::record_attempt(&self.conn, c.id, "delivered", now, Some(s), None)?;
                tracing::debug!(delivery = c.id, event = %c.event_id, status = s, "webhook delivered");
            }
            Verdict::Disable(0) => {
                // Its subscription is gone or disabled.
                outbox::record_attempt(&self.conn, c.id, "disabled", now, None, None)?;
            }
            Verdict::Disable(s) => self.disable(c, s)?,
            Verdict::Retry(status, error) => {
                let n = c.attempts as usize + 1;
                let (state, next) = match self.settings.retry_schedule.get(n) {
                    Some(d) => ("pending", now + d.as_millis() as i64),
                    None => ("failed", now),
                };
                outbox::record_attempt(&self.conn, c.id, state, next, status, Some(&error))?;
                tracing::warn!(delivery = c.id, event = %c.event_id, attempt = n, state,
                    error = %error, "webhook attempt failed");
            }
        }
        Ok(())
    }

    /// The receiver answered 410: no more deliveries to it.
    fn disable(&mut self, c: &Claimed, status: u16) -> anyhow::Result<()> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        outbox::record_attempt(
            &tx,
            c.id,
            "disabled",
            now_ms(),
            Some(status),
            Some("HTTP 410"),
        )?;
        outbox::disable_subscription(&tx, c.subscription)?;
        let sub = outbox::subscription_by_id(&tx, c.subscription)?;
        tx.commit()?;
        let (name, tenant) = sub.map_or_else(
            || (c.subscription.to_string(), None),
            |s| (s.name, Some(s.tenant)),
        );
        tracing::warn!(subscription = %name, "the webhook receiver answered 410: subscription disabled");
        let detail = format!("the receiver answered 410 to event {}", c.event_id);
        self.audit.record(&AuditEvent {
            actor: "system",
            event: "webhook.disabled",
            outcome: Outcome::Success,
            origin: None,
            resource: &name,
            tenant: tenant.as_deref().filter(|t| *t != "*"),
            detail: &detail,
        })
    }
}
