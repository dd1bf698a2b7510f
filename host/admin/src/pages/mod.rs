//! The server-rendered pages of the web UI: the dashboard, transaction
//! search and detail, the SAF queue, the plugins, the latency chart, the
//! audit log, the 403 and 404 pages, and the static files they use.
//!
//! Every page checks its [`Permission`] (a 403 page in the frame
//! otherwise); a principal bound to a tenant sees only its tenant's rows
//! (another tenant's id answers the 404 page, as an unknown one does).
//! PANs appear masked only (the tranlog's views mask them). Forms that
//! change state are `POST`s carrying the session's CSRF token.

pub mod assets;
pub mod audit;
pub mod chart;
pub mod dashboard;
pub mod latency;
pub mod layout;
pub mod plugins;
pub mod saf;
pub mod transactions;

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use crate::accounts::extract::Unauthenticated;
use crate::api::ApiError;
use crate::{AppState, Permission, Principal, RouteSpec};
use layout::{esc, page};

const fn spec(
    method: &'static str,
    path: &'static str,
    permission: Option<Permission>,
    tenant_scoped: bool,
) -> RouteSpec {
    RouteSpec {
        method,
        path,
        permission,
        tenant_scoped,
    }
}

/// The pages' routes, for the permission and tenant tests.
pub const ROUTES: &[RouteSpec] = &[
    spec("GET", "/", Some(Permission::DashboardView), true),
    spec(
        "GET",
        "/transactions",
        Some(Permission::TransactionsView),
        true,
    ),
    spec(
        "GET",
        "/transactions/{id}",
        Some(Permission::TransactionsDetail),
        true,
    ),
    spec("GET", "/saf", Some(Permission::SafView), true),
    spec("POST", "/saf/{id}/retry", Some(Permission::SafRetry), true),
    spec("GET", "/plugins", Some(Permission::PluginsView), false),
    spec(
        "POST",
        "/plugins/{name}/swap",
        Some(Permission::PluginsSwap),
        false,
    ),
    spec(
        "POST",
        "/plugins/{name}/rollback",
        Some(Permission::PluginsSwap),
        false,
    ),
    spec("GET", "/latency", Some(Permission::DashboardView), true),
    spec("GET", "/audit", Some(Permission::AuditView), true),
    spec("GET", "/static/style.css", None, false),
    spec("GET", "/static/app.js", None, false),
    spec("GET", "/static/favicon.svg", None, false),
];

/// The pages' router; `max_upload` bounds a plugin upload.
pub fn routes(max_upload: usize) -> Router<Arc<AppState>> {
    Router::new()
        .route("/", get(dashboard::show))
        .route("/transactions", get(transactions::search))
        .route("/transactions/{id}", get(transactions::detail))
        .route("/saf", get(saf::show))
        .route("/saf/{id}/retry", post(saf::retry))
        .route("/plugins", get(plugins::show))
        .route(
            "/plugins/{name}/swap",
            post(plugins::swap).layer(axum::extract::DefaultBodyLimit::max(max_upload + 64 * 1024)),
        )
        .route("/plugins/{name}/rollback", post(plugins::rollback))
        .route("/latency", get(latency::show))
        .route("/audit", get(audit::show))
        .merge(assets::routes())
}

/// A page's query string as text parameters.
pub type Params = HashMap<String, String>;

/// Parameter `k`, trimmed, when not empty.
pub fn param(q: &Params, k: &str) -> Option<String> {
    q.get(k)
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

/// The 403 page: `who` lacks `p`.
pub fn forbidden(who: &Principal, p: Permission) -> Response {
    let body = format!(
        "<p class=\"error\" role=\"alert\">This page needs permission <code>{}</code>, which role \
         <code>{}</code> does not grant.</p><p><a href=\"/\">Back</a></p>",
        p.name(),
        esc(&who.role)
    );
    (StatusCode::FORBIDDEN, page("Forbidden", Some(who), &body)).into_response()
}

/// The 404 page, in the frame of `who` when signed in.
pub fn not_found_page(who: Option<&Principal>, what: &str) -> Response {
    let body = format!(
        "<p class=\"error\" role=\"alert\">{}</p><p><a href=\"/\">Dashboard</a></p>",
        esc(what)
    );
    (StatusCode::NOT_FOUND, page("Not found", who, &body)).into_response()
}

/// The router's fallback: JSON under `/api/`, the 404 page elsewhere (in
/// the frame when the request carries a live session).
pub async fn not_found(who: Result<Principal, Unauthenticated>, uri: Uri) -> Response {
    if uri.path().starts_with("/api/") || uri.path() == "/api" {
        return crate::api::no_route(&uri).into_response();
    }
    not_found_page(
        who.as_ref().ok(),
        &format!("There is no page at {}.", uri.path()),
    )
}

/// An API failure as a page: 403 and 404 in the frame, others with the
/// message.
pub fn error_page(who: &Principal, e: ApiError) -> Response {
    let ApiError(status, msg) = e;
    if status == StatusCode::NOT_FOUND {
        return not_found_page(Some(who), &msg);
    }
    let title = match status {
        StatusCode::FORBIDDEN => "Forbidden",
        StatusCode::SERVICE_UNAVAILABLE => "Unavailable",
        _ => "Error",
    };
    let body = format!("<p class=\"error\" role=\"alert\">{}</p>", esc(&msg));
    (status, page(title, Some(who), &body)).into_response()
}

/// The hidden CSRF field of `who`'s forms.
pub fn csrf_input(who: &Principal) -> String {
    format!(
        "<input type=\"hidden\" name=\"csrf\" value=\"{}\">",
        esc(who.csrf.as_deref().unwrap_or(""))
    )
}

/// A 303 to `location`.
pub fn redirect(location: &str) -> Response {
    let mut res = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = location.parse() {
        res.headers_mut().insert(header::LOCATION, v);
    }
    res
}

/// A notice (`ok`) or an error line from `?msg=`/`?err=`.
pub fn notice(q: &Params) -> String {
    let mut out = String::new();
    if let Some(m) = param(q, "msg") {
        out.push_str(&format!("<p class=\"ok\" role=\"status\">{}</p>", esc(&m)));
    }
    if let Some(m) = param(q, "err") {
        out.push_str(&format!(
            "<p class=\"error\" role=\"alert\">{}</p>",
            esc(&m)
        ));
    }
    out
}

pub use crate::accounts::now_ms;

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// A `datetime-local` value (`2026-12-02T18:43`, seconds optional), read
/// as UTC: ms since the Unix epoch.
pub fn parse_local(s: &str) -> Option<i64> {
    let (date, time) = s.trim().split_once('T')?;
    let mut d = date.split('-').map(|p| p.parse::<i64>().ok());
    let (y, mo, da) = (d.next()??, d.next()??, d.next()??);
    let mut t = time.trim_end_matches('Z').split(':');
    let h = t.next()?.parse::<i64>().ok()?;
    let mi = t.next()?.parse::<i64>().ok()?;
    let sec = t.next().map_or(Some(0.0), |s| s.parse::<f64>().ok())?;
    let valid = (1..=12).contains(&mo)
        && (1..=31).contains(&da)
        && (0..24).contains(&h)
        && (0..60).contains(&mi)
        && (0.0..61.0).contains(&sec);
    valid.then(|| {
        (days_from_civil(y, mo, da) * 86_400 + h * 3600 + mi * 60) * 1000 + (sec * 1000.0) as i64
    })
}

/// ms since the epoch as a `datetime-local` value (UTC, minutes).
pub fn local_value(ms: i64) -> String {
    let t = switchyard_iso8583::UtcTime::from_unix(ms.div_euclid(1000));
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}",
        t.year, t.month, t.day, t.hour, t.minute
    )
}

/// A period from `from`/`to` (`datetime-local`, UTC); `default_ms` back
/// from now when `from` is absent, now when `to` is. An unreadable value
/// is an error naming it.
pub fn period(q: &Params, default_ms: i64) -> Result<(i64, i64), String> {
    let read = |k: &str| match param(q, k) {
        None => Ok(None),
        Some(v) => parse_local(&v)
            .map(Some)
            .ok_or_else(|| format!("{k}: {v:?} is not a date and time (YYYY-MM-DDTHH:MM)")),
    };
    let to = read("to")?.unwrap_or_else(now_ms);
    let from = read("from")?.unwrap_or(to - default_ms);
    if from >= to {
        return Err("from must be before to".into());
    }
    Ok((from, to))
}

/// An optional number as text (`-` when absent).
pub fn ms_text(v: Option<f64>) -> String {
    v.map_or_else(|| "-".into(), |v| format!("{v:.1}"))
}

/// An optional text, escaped (`-` when absent).
pub fn opt(v: &Option<String>) -> String {
    v.as_deref().map_or_else(|| "-".into(), esc)
}

/// Percent-encodes `s` for a query value.
pub fn enc(s: &str) -> String {
    crate::accounts::extract::url_encode(s).replace('/', "%2F")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datetime_local_values_read_as_utc() {
        assert_eq!(parse_local("1970-01-01T00:00"), Some(0));
        assert_eq!(
            parse_local("2026-11-23T08:00:00.123"),
            Some(1_795_420_800_123)
        );
        assert_eq!(parse_local("2026-11-23T08:00"), Some(1_795_420_800_000));
        assert_eq!(local_value(1_795_420_800_123), "2026-11-23T08:00");
        assert_eq!(parse_local("2026-13-01T00:00"), None);
        assert_eq!(parse_local("yesterday"), None);
    }

    #[test]
    fn a_period_defaults_to_the_last_stretch() {
        let mut q = Params::new();
        q.insert("from".into(), "2026-11-23T08:00".into());
        q.insert("to".into(), "2026-11-23T09:00".into());
        assert_eq!(
            period(&q, 1).unwrap(),
            (1_795_420_800_000, 1_795_424_400_000)
        );
        q.insert("to".into(), "2026-11-23T07:00".into());
        assert!(period(&q, 1).is_err());
        let (from, to) = period(&Params::new(), 3_600_000).unwrap();
        assert_eq!(to - from, 3_600_000);
    }
}
