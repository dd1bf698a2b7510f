//! The operator plane's wiring: `[admin]` mapped onto the admin crate's
//! settings ([`switchyard_admin`]), and the client `switchyard plugin
//! list/swap/rollback` and the life-cycle commands use ([`client`]).

pub mod client;

pub use switchyard_admin::{Admin, token, views};

use crate::config::AdminSection;

/// `[admin]`'s password, lockout, session and TOTP rules.
pub fn policy_of(a: &AdminSection) -> switchyard_admin::accounts::Policy {
    switchyard_admin::accounts::Policy {
        require_totp: a.require_totp,
        idle_minutes: a.session_idle_minutes as u32,
        max_age_days: a.password_max_age_days as u32,
        lockout_failures: a.lockout_failures,
        lockout_minutes: a.lockout_minutes as u32,
        ..Default::default()
    }
}

/// `[admin]`'s webhook subscriptions and retry schedule.
pub fn webhook_settings(a: &AdminSection) -> switchyard_admin::webhooks::Settings {
    use switchyard_admin::webhooks::{Settings, SubscriptionConfig};
    let subscriptions = a
        .webhooks
        .iter()
        .map(|w| SubscriptionConfig {
            name: w.name.clone(),
            url: w.url.clone(),
            secret: w.secret.clone(),
            tenant: w.tenant.clone(),
            events: w.events.clone(),
        })
        .collect();
    Settings {
        subscriptions,
        retry_schedule: a
            .webhook_retry_seconds
            .iter()
            .map(|&s| std::time::Duration::from_secs(s))
            .collect(),
        ..Settings::default()
    }
}

/// `[[admin.alerts]]` (validated by the config: an outcome is `success`
/// or `failure`).
pub fn alert_rules(a: &AdminSection) -> Vec<switchyard_admin::audit::AlertRule> {
    use switchyard_admin::audit::{AlertRule, Outcome};
    a.alerts
        .iter()
        .map(|r| AlertRule {
            events: r.events.clone(),
            outcome: r.outcome.as_deref().map(|o| match o {
                "failure" => Outcome::Failure,
                _ => Outcome::Success,
            }),
            tenant: r.tenant.clone(),
        })
        .collect()
}
