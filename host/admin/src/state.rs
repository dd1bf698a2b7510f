//! What every route of the operator plane reads.

use std::path::PathBuf;
use std::sync::Arc;

use switchyard_runtime::Registry;

use crate::ops::Ops;
use crate::swapper::Swapper;

/// Each listener's write counters, by name (`/api/metrics`).
pub type ListenerCounters = Vec<(String, Arc<switchyard_net::ListenerStats>)>;

/// Reloads every listener's and endpoint's TLS: whether all succeeded, and
/// each one's result as JSON.
pub type TlsReload = Arc<dyn Fn() -> (bool, serde_json::Value) + Send + Sync>;

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
    /// The plugins: what runs, swap, rollback, history.
    pub registry: Arc<Registry>,
    /// The low-priority thread swaps compile on.
    pub swapper: Swapper,
    /// The life cycle's operator tools (tranlog, SAF, keys, kv); `None`
    /// on a switch without a store.
    pub ops: Option<Ops>,
    /// The endpoints, for their link state.
    pub endpoints: Vec<Arc<switchyard_net::Endpoint>>,
    /// Each listener's write counters.
    pub listeners: ListenerCounters,
    /// Reloads TLS (`POST /api/tls/reload`).
    pub tls_reload: TlsReload,
    /// The deploy directory watched, if any.
    pub deploy_dir: Option<PathBuf>,
    /// This node's id.
    pub node: String,
}
