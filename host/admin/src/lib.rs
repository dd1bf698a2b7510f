//! The operator plane (issue 11): the HTTPS web UI and API of a running
//! switch, its users, sessions, TOTP and API clients ([`accounts`]), roles
//! and tenant scoping, the hash-chained audit trail ([`audit`]), signed
//! webhooks to client systems ([`webhooks`]), the Prometheus exposition
//! ([`exposition`]) and the server-rendered pages ([`pages`]).
#![forbid(unsafe_code)]

pub mod accounts;
pub mod api;
pub mod audit;
pub mod deploy;
pub mod exposition;
pub mod ops;
pub mod pages;
pub mod server;
pub mod state;
pub mod swapper;
pub mod tls;
pub mod token;
pub mod views;
pub mod watch;
pub mod webhooks;

use std::sync::Arc;

pub use accounts::principal::{Permission, Principal, PrincipalKind};
pub use server::{Admin, AdminPlan, Parts};
pub use state::AppState;

/// One route of the operator plane, for the permission and tenant tests
/// (each module lists its routes in a `ROUTES` table).
#[derive(Debug, Clone, Copy)]
pub struct RouteSpec {
    /// `GET`, `POST`, …
    pub method: &'static str,
    /// The axum path, e.g. `/api/tranlog/{id}`.
    pub path: &'static str,
    /// What it needs; `None`: open to any signed-in principal (or to
    /// anyone, for the login pages).
    pub permission: Option<Permission>,
    /// Whether it reads or changes one tenant's rows.
    pub tenant_scoped: bool,
}

/// Every route of every module, for the permission and tenant tests.
pub fn all_routes() -> Vec<RouteSpec> {
    [
        api::ROUTES,
        accounts::pages::ROUTES,
        pages::ROUTES,
        audit::ROUTES,
        webhooks::pages::ROUTES,
    ]
    .concat()
}

/// The whole operator plane's router on `state`: the pages, the API, the
/// CSRF check of cookie sessions, the security headers.
pub fn router(state: Arc<AppState>, max_upload: usize) -> axum::Router {
    axum::Router::new()
        .merge(api::routes(max_upload))
        .merge(accounts::pages::routes())
        .merge(pages::routes(max_upload))
        .merge(audit::routes())
        .merge(webhooks::pages::routes())
        .fallback(pages::not_found)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            accounts::sessions::csrf_layer,
        ))
        .layer(axum::middleware::from_fn(server::security_headers))
        .with_state(state)
}
