//! The dispatcher task: fan-out of new events, then the due deliveries.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use switchyard_store::operator::OutboxDb;
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

/// The dispatcher's state.
pub(super) struct Dispatcher {
    db: Arc<dyn OutboxDb>,
    settings: Settings,
    audit: Audit,
    notify: Arc<Notify>,
}

impl Dispatcher {
    pub(super) fn new(
        db: Arc<dyn OutboxDb>,
        settings: Settings,
        audit: Audit,
        notify: Arc<Notify>,
    ) -> Dispatcher {
        Dispatcher {
            db,
            settings,
            audit,
            notify,
        }
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
        match self.db.next_due() {
            Ok(Some(at)) => {
                Duration::from_millis((at - now_ms()).clamp(0, poll.as_millis() as i64) as u64)
            }
            _ => poll,
        }
    }

    /// One round; `true` when a batch was full (go on at once).
    async fn round(&mut self) -> anyhow::Result<bool> {
        let first = self.settings.retry_schedule[0].as_millis() as i64;
        let fanned = self
            .db
            .fan_out(BATCH, first)
            .context("fanning out webhook events")?;
        let now = now_ms();
        let lease = now + self.settings.attempt_timeout.as_millis() as i64 + 5_000;
        let claimed: Vec<Claimed> = self
            .db
            .claim_due(now, lease, BATCH)
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

    /// The request of a claimed delivery; `None` when its subscription or
    /// event is gone or the subscription disabled.
    fn prepare(&self, c: &Claimed) -> anyhow::Result<Option<Prepared>> {
        let Some(sub) = self.db.subscription_by_id(c.subscription)? else {
            return Ok(None);
        };
        let Some(event) = self.db.event(&c.event_id)? else {
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
                self.db
                    .record_attempt(c.id, "delivered", now, Some(s), None)?;
                tracing::debug!(delivery = c.id, event = %c.event_id, status = s, "webhook delivered");
            }
            Verdict::Disable(0) => {
                // Its subscription is gone or disabled.
                self.db.record_attempt(c.id, "disabled", now, None, None)?;
            }
            Verdict::Disable(s) => self.disable(c, s)?,
            Verdict::Retry(status, error) => {
                let n = c.attempts as usize + 1;
                let (state, next) = match self.settings.retry_schedule.get(n) {
                    Some(d) => ("pending", now + d.as_millis() as i64),
                    None => ("failed", now),
                };
                self.db
                    .record_attempt(c.id, state, next, status, Some(&error))?;
                tracing::warn!(delivery = c.id, event = %c.event_id, attempt = n, state,
                    error = %error, "webhook attempt failed");
            }
        }
        Ok(())
    }

    /// The receiver answered 410: no more deliveries to it.
    fn disable(&mut self, c: &Claimed, status: u16) -> anyhow::Result<()> {
        let sub = self.db.disable_after(c.id, c.subscription, status)?;
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
