//! What every route of the operator plane reads.

use std::sync::Arc;

/// The operator plane's shared state.
pub struct AppState {
    /// Users, sessions, API clients, roles.
    pub accounts: crate::accounts::Accounts,
    /// The audit trail.
    pub audit: crate::audit::Audit,
    /// Webhook delivery.
    pub webhooks: crate::webhooks::Webhooks,
    /// The switch's metrics.
    pub metrics: Arc<switchyard_metrics::Metrics>,
}
