//! The operator plane (issue 11): the HTTPS web UI and API of a running
//! switch, its users, sessions, TOTP and API clients ([`accounts`]), roles
//! and tenant scoping, the hash-chained audit trail ([`audit`]), signed
//! webhooks to client systems ([`webhooks`]), the Prometheus exposition
//! ([`exposition`]) and the server-rendered pages ([`pages`]).
#![forbid(unsafe_code)]

pub mod accounts;
pub mod audit;
pub mod exposition;
pub mod pages;
pub mod state;
pub mod webhooks;

pub use accounts::principal::{Permission, Principal, PrincipalKind};
pub use state::AppState;
