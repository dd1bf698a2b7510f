//! Who asks: a signed-in user or an API client, with its role's
//! permissions and its tenant.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

/// One thing a route lets a principal do; roles are sets of these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Permission {
    /// The dashboard and the latency chart.
    #[serde(rename = "dashboard.view")]
    DashboardView,
    /// Transaction search (masked PANs only).
    #[serde(rename = "transactions.view")]
    TransactionsView,
    /// A transaction's detail page (audited at every view).
    #[serde(rename = "transactions.detail")]
    TransactionsDetail,
    /// The SAF queue.
    #[serde(rename = "saf.view")]
    SafView,
    /// SAF retry.
    #[serde(rename = "saf.retry")]
    SafRetry,
    /// Plugins, their versions, metrics, the swap history.
    #[serde(rename = "plugins.view")]
    PluginsView,
    /// Plugin swap and rollback.
    #[serde(rename = "plugins.swap")]
    PluginsSwap,
    /// Endpoint links.
    #[serde(rename = "endpoints.view")]
    EndpointsView,
    /// `/api/metrics`.
    #[serde(rename = "metrics.view")]
    MetricsView,
    /// TLS reload (the config the switch re-reads while it runs).
    #[serde(rename = "config.reload")]
    ConfigReload,
    /// The internal hosts' data (loyalty credit, coupons issue).
    #[serde(rename = "hosts.manage")]
    HostsManage,
    /// Key status.
    #[serde(rename = "keys.view")]
    KeysView,
    /// Key rotation.
    #[serde(rename = "keys.rotate")]
    KeysRotate,
    /// Users, roles and API clients: read.
    #[serde(rename = "users.view")]
    UsersView,
    /// Users, roles and API clients: create, change, disable, unlock.
    #[serde(rename = "users.manage")]
    UsersManage,
    /// The audit trail.
    #[serde(rename = "audit.view")]
    AuditView,
    /// Webhook subscriptions and deliveries.
    #[serde(rename = "webhooks.manage")]
    WebhooksManage,
}

/// Whether a user signed in through the pages or an API client with a
/// bearer token asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PrincipalKind {
    /// A user with a session cookie.
    User,
    /// A named API client with a bearer token.
    ApiClient,
}

/// Who asks, resolved from a session cookie or a bearer token.
#[derive(Debug, Clone)]
pub struct Principal {
    /// The user's or API client's name.
    pub name: String,
    /// User or API client.
    pub kind: PrincipalKind,
    /// The role's name.
    pub role: String,
    /// The role's permissions.
    pub permissions: Vec<Permission>,
    /// The tenant it is bound to; `None` sees every tenant.
    pub tenant: Option<String>,
    /// Where the request came from (the audit trail's origin).
    pub origin: IpAddr,
    /// The session's CSRF token (users only): every form carries it.
    pub csrf: Option<String>,
}

impl Principal {
    /// Whether its role grants `p`.
    pub fn can(&self, p: Permission) -> bool {
        self.permissions.contains(&p)
    }

    /// Whether it may see rows of `tenant`.
    pub fn sees_tenant(&self, tenant: &str) -> bool {
        self.tenant.as_deref().is_none_or(|t| t == tenant)
    }
}

impl Permission {
    /// Every permission (the built-in `admin` role has them all).
    pub const ALL: &'static [Permission] = &[
        Permission::DashboardView,
        Permission::TransactionsView,
        Permission::TransactionsDetail,
        Permission::SafView,
        Permission::SafRetry,
        Permission::PluginsView,
        Permission::PluginsSwap,
        Permission::EndpointsView,
        Permission::MetricsView,
        Permission::ConfigReload,
        Permission::HostsManage,
        Permission::KeysView,
        Permission::KeysRotate,
        Permission::UsersView,
        Permission::UsersManage,
        Permission::AuditView,
        Permission::WebhooksManage,
    ];

    /// Its name, as in roles and the API (`transactions.view`).
    pub fn name(self) -> &'static str {
        match self {
            Permission::DashboardView => "dashboard.view",
            Permission::TransactionsView => "transactions.view",
            Permission::TransactionsDetail => "transactions.detail",
            Permission::SafView => "saf.view",
            Permission::SafRetry => "saf.retry",
            Permission::PluginsView => "plugins.view",
            Permission::PluginsSwap => "plugins.swap",
            Permission::EndpointsView => "endpoints.view",
            Permission::MetricsView => "metrics.view",
            Permission::ConfigReload => "config.reload",
            Permission::HostsManage => "hosts.manage",
            Permission::KeysView => "keys.view",
            Permission::KeysRotate => "keys.rotate",
            Permission::UsersView => "users.view",
            Permission::UsersManage => "users.manage",
            Permission::AuditView => "audit.view",
            Permission::WebhooksManage => "webhooks.manage",
        }
    }

    /// The permission named `name`, if any.
    pub fn parse(name: &str) -> Option<Permission> {
        Permission::ALL.iter().copied().find(|p| p.name() == name)
    }
}
