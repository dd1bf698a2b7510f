//! Standard Webhooks 1.0 to client systems: subscriptions, the outbox,
//! delivery with retry.
//!
//! An event is a row of the store's outbox (`webhook_events`), written in
//! the same transaction as the state change it reports, or by
//! [`Webhooks::emit`] for an event without one (endpoint down/up). The
//! dispatcher ([`Webhooks::start`]) fans new events out to the enabled
//! subscriptions of the event's tenant (a subscription of tenant `*` gets
//! every tenant's) in one transaction that also marks them fanned out,
//! then POSTs each due delivery. The outbox is the store's operator port
//! ([`switchyard_store::operator::OutboxDb`]): on PostgreSQL every node
//! runs a dispatcher over the one shared outbox, and an event is fanned
//! out once (rows locked with `SKIP LOCKED`) and each delivery claimed by
//! one node at a time (a lease), so a receiver gets an event once per
//! subscription, not once per node:
//!
//! - body `{"type": …, "timestamp": RFC 3339, "data": …}`;
//! - headers `webhook-id` (the event id, the same at every attempt),
//!   `webhook-timestamp` (Unix seconds of the attempt), `webhook-signature:
//!   v1,<base64 HMAC-SHA256(secret, "id.timestamp.body")>` ([`sign`]);
//! - 2xx → `delivered` (only after the answer: at least once); 410 → the
//!   subscription is disabled (audited `webhook.disabled`); anything else,
//!   a timeout or a connection error → the next attempt per
//!   [`Settings::retry_schedule`], `failed` after the last.
//!
//! HTTP: hyper over TCP; `http://` only to a loopback address, `https://`
//! anywhere over rustls with the system's roots (the PEM bundle at
//! `$SSL_CERT_FILE` or `/etc/ssl/certs/ca-certificates.crt`).
//!
//! Events never carry card data: their producers put ids, names, states
//! and hashes in them, nothing from a message.

mod client;
mod dispatch;
pub mod pages;
pub mod sign;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use serde::Deserialize;
use switchyard_store::operator::{OperatorDb, OutboxDb};
use switchyard_store::outbox::{self, SubscriptionRow};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use pages::{ROUTES, routes};
pub use switchyard_store::operator::matches;

/// One subscription of the config (`[[admin.webhooks]]`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubscriptionConfig {
    /// Its name (unique among the config's).
    pub name: String,
    /// Where deliveries are POSTed (`https://…`, or `http://` to loopback).
    pub url: String,
    /// `whsec_<base64>`.
    pub secret: String,
    /// The tenant whose events it gets (`*`: every tenant's).
    #[serde(default = "default_tenant")]
    pub tenant: String,
    /// The event types (`["endpoint.down", …]`; `["*"]`: all).
    pub events: Vec<String>,
}

fn default_tenant() -> String {
    "default".into()
}

/// Webhook delivery's settings.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The config's subscriptions (kept in the database as source
    /// `config`; those removed from the config are deleted at start).
    pub subscriptions: Vec<SubscriptionConfig>,
    /// The delay before each attempt: the first (after the event), then
    /// after each failure; after the last, the delivery is `failed`.
    pub retry_schedule: Vec<Duration>,
    /// How long one attempt may take (connect, send, answer).
    pub attempt_timeout: Duration,
    /// How often the outbox is read for events other processes wrote.
    pub poll: Duration,
}

impl Default for Settings {
    fn default() -> Settings {
        let m = |n: u64| Duration::from_secs(60 * n);
        Settings {
            subscriptions: Vec::new(),
            retry_schedule: vec![
                Duration::ZERO,
                Duration::from_secs(5),
                m(5),
                m(30),
                m(120),
                m(300),
                m(600),
                m(600),
            ],
            attempt_timeout: Duration::from_secs(10),
            poll: Duration::from_secs(1),
        }
    }
}

/// Why a subscription is refused.
#[derive(Debug, thiserror::Error)]
pub enum SubscriptionError {
    /// The URL is not `https://…` nor `http://` to a loopback address.
    #[error("url {0:?}: must be https://…, or http:// to a loopback address")]
    Url(String),
    /// The secret is not `whsec_` and base64.
    #[error("the secret must be whsec_ followed by base64")]
    Secret,
    /// No event types, or an empty name.
    #[error("{0}")]
    Invalid(String),
}

/// Checks a subscription's fields.
pub fn check(
    name: &str,
    url: &str,
    secret: &str,
    events: &[String],
) -> Result<(), SubscriptionError> {
    if name.trim().is_empty() || name.len() > 100 {
        return Err(SubscriptionError::Invalid(
            "the name must be 1 to 100 characters".into(),
        ));
    }
    if events.is_empty() || events.iter().any(|e| e.is_empty()) {
        return Err(SubscriptionError::Invalid(
            "name at least one event type (or \"*\")".into(),
        ));
    }
    client::Target::parse(url).map_err(|_| SubscriptionError::Url(url.into()))?;
    sign::secret_key(secret).ok_or(SubscriptionError::Secret)?;
    Ok(())
}

/// The webhook dispatcher's handle.
pub struct Webhooks {
    db: Arc<dyn OutboxDb>,
    notify: Arc<Notify>,
}

impl std::fmt::Debug for Webhooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhooks").finish_non_exhaustive()
    }
}

impl Webhooks {
    /// Opens the outbox in `store`'s tables, brings the config's
    /// subscriptions into it, and starts the dispatcher on `tracker` until
    /// `shutdown`. A `webhook.disabled` is audited with the audit key in
    /// `keys_dir`.
    pub fn start(
        store: &OperatorDb,
        keys_dir: &Path,
        settings: Settings,
        shutdown: CancellationToken,
        tracker: &TaskTracker,
    ) -> anyhow::Result<Webhooks> {
        anyhow::ensure!(
            !settings.retry_schedule.is_empty(),
            "the webhook retry schedule needs at least one delay"
        );
        let db = store.outbox.clone();
        sync_config(db.as_ref(), &settings.subscriptions)?;
        let audit = crate::audit::Audit::open(store, keys_dir, Vec::new())
            .context("opening the audit trail for webhook delivery")?;
        let notify = Arc::new(Notify::new());
        let dispatcher = dispatch::Dispatcher::new(db.clone(), settings, audit, notify.clone());
        tracker.spawn(dispatcher.run(shutdown));
        Ok(Webhooks { db, notify })
    }

    /// Writes an event without a state change of its own (endpoint down or
    /// up; `payload_json`: its JSON `data`, never card data) and wakes the
    /// dispatcher; returns its id, or `None` when it could not be written
    /// (logged).
    pub fn emit(&self, tenant: &str, event_type: &str, payload_json: &str) -> Option<String> {
        if let Err(e) = serde_json::from_str::<serde_json::Value>(payload_json) {
            tracing::error!(event_type, error = %e, "webhook event refused: its data is not JSON");
            return None;
        }
        match self.db.insert_event(tenant, event_type, payload_json) {
            Ok(id) => {
                self.notify.notify_one();
                Some(id)
            }
            Err(e) => {
                tracing::error!(event_type, tenant, error = %e, "could not write a webhook event");
                None
            }
        }
    }

    /// Wakes the dispatcher (after a transaction that wrote an event).
    pub fn wake(&self) {
        self.notify.notify_one();
    }

    /// Every subscription (secrets included: callers show none).
    pub fn subscriptions(&self) -> anyhow::Result<Vec<SubscriptionRow>> {
        self.db
            .subscriptions()
            .context("reading the webhook subscriptions")
    }

    /// Creates a subscription (source `api`) with a new secret; returns
    /// its id and the secret (shown once).
    pub fn create(
        &self,
        name: &str,
        url: &str,
        tenant: &str,
        events: &[String],
    ) -> Result<(i64, String), CreateError> {
        let secret = sign::new_secret();
        check(name, url, &secret, events)?;
        let taken = self
            .db
            .subscriptions()?
            .iter()
            .any(|s| s.source == "api" && s.name == name);
        if taken {
            return Err(CreateError::Taken(name.into()));
        }
        let row = SubscriptionRow {
            id: 0,
            name: name.into(),
            url: url.into(),
            secret: secret.clone(),
            tenant: tenant.into(),
            events: serde_json::to_string(events).unwrap_or_else(|_| "[]".into()),
            source: "api".into(),
            disabled: false,
            created_ms: 0,
        };
        let id = self.db.upsert_subscription(&row)?;
        Ok((id, secret))
    }

    /// Deletes subscription `id` (only one made through the API or the
    /// page: the config's stay while they are in the config).
    pub fn delete(&self, id: i64) -> Result<bool, CreateError> {
        match self.db.subscription_by_id(id)? {
            None => Ok(false),
            Some(s) if s.source == "config" => Err(CreateError::FromConfig(s.name)),
            Some(_) => Ok(self.db.delete_subscription(id)?),
        }
    }

    /// The latest deliveries (of one subscription, or of all), newest
    /// first.
    pub fn deliveries(
        &self,
        subscription: Option<i64>,
        limit: usize,
    ) -> anyhow::Result<Vec<outbox::DeliveryRow>> {
        self.db
            .deliveries(subscription, limit.min(1000))
            .context("reading the webhook deliveries")
    }
}

/// Why a subscription could not be created or deleted.
#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    /// Its fields are refused.
    #[error(transparent)]
    Invalid(#[from] SubscriptionError),
    /// The name is taken.
    #[error("a subscription named {0:?} exists")]
    Taken(String),
    /// It comes from the config.
    #[error("subscription {0:?} comes from the config: remove it there")]
    FromConfig(String),
    /// The database failed.
    #[error("the webhook tables: {0}")]
    Db(#[from] switchyard_store::StoreError),
}

/// Brings the config's subscriptions into the table (one transaction).
fn sync_config(db: &dyn OutboxDb, subs: &[SubscriptionConfig]) -> anyhow::Result<()> {
    let mut rows = Vec::with_capacity(subs.len());
    for s in subs {
        check(&s.name, &s.url, &s.secret, &s.events)
            .with_context(|| format!("admin.webhooks {:?}", s.name))?;
        rows.push(SubscriptionRow {
            id: 0,
            name: s.name.clone(),
            url: s.url.clone(),
            secret: s.secret.clone(),
            tenant: s.tenant.clone(),
            events: serde_json::to_string(&s.events)?,
            source: "config".into(),
            disabled: false,
            created_ms: 0,
        });
    }
    db.sync_config(&rows)
        .context("recording the config's webhook subscriptions")
}
