//! Users, passwords, TOTP, sessions, CSRF, API clients and roles.

pub mod principal;

/// The accounts of the operator plane (users, sessions, API clients,
/// roles) over the store's tables.
#[derive(Debug, Default)]
pub struct Accounts {}
