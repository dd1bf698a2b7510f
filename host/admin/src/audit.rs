//! The audit trail (PCI DSS 10.2): append-only, hash-chained.

use std::net::IpAddr;

/// Whether an audited action succeeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// It was done.
    Success,
    /// It was refused or failed.
    Failure,
}

/// One audited event, as a caller reports it.
#[derive(Debug, Clone)]
pub struct AuditEvent<'a> {
    /// The user or API client (or `system`, or the name tried at a failed
    /// login).
    pub actor: &'a str,
    /// The event type, e.g. `login`, `login.failed`, `user.locked`,
    /// `user.created`, `role.changed`, `plugin.swap`, `plugin.rollback`,
    /// `saf.retry`, `keys.rotate`, `config.reload`, `transaction.view`.
    pub event: &'a str,
    /// Success or failure.
    pub outcome: Outcome,
    /// Where the request came from.
    pub origin: Option<IpAddr>,
    /// The affected resource (a user name, plugin name, transaction id …).
    pub resource: &'a str,
    /// The tenant the resource belongs to, if any.
    pub tenant: Option<&'a str>,
    /// Free text (never card data).
    pub detail: &'a str,
}

/// The audit trail over the store's table.
#[derive(Debug, Default)]
pub struct Audit {}

impl Audit {
    /// Appends `event` (placeholder: the audit owner replaces this body).
    pub fn record(&self, event: &AuditEvent<'_>) -> anyhow::Result<()> {
        tracing::info!(actor = event.actor, event = event.event, outcome = ?event.outcome, resource = event.resource, "audit");
        Ok(())
    }
}
