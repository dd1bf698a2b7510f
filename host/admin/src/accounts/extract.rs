//! Resolving the [`Principal`] of a request: a bearer token (API client)
//! or a session cookie (user), and refusing it otherwise.
//!
//! `Authorization: Bearer …` names an API client by its token's hash;
//! otherwise the `sy_session` cookie names a session. A session with a
//! second step pending (TOTP code, TOTP enrolment required by the policy,
//! an expired or reset password) reaches only that step's page and
//! `/logout` (see [`GATE_PATHS`]), with no permissions; the steps come in
//! that order. Refusals: under `/api/` a 401 with `{"error": …}`; pages a
//! 303 to `/login?next=PATH` (or to the pending step's page).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRequestParts, OriginalUri};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::principal::{Principal, PrincipalKind};
use super::sessions::{bearer_token, clear_cookie, session_token};
use super::{SessionEnd, now_ms};
use crate::AppState;

/// The paths a session with a pending second step may reach: only the
/// page of that step ([`super::Gate::path`]) and `/logout`.
pub const GATE_PATHS: &[&str] = &["/login/totp", "/password", "/account/totp", "/logout"];

/// Why a request has no principal.
#[derive(Debug)]
pub enum Unauthenticated {
    /// An API request: 401 with this reason.
    Api(&'static str),
    /// A page: 303 to this location (clearing a dead session cookie).
    Redirect {
        /// Where to.
        location: String,
        /// Remove the `sy_session` cookie.
        clear: bool,
    },
}

impl IntoResponse for Unauthenticated {
    fn into_response(self) -> Response {
        match self {
            Unauthenticated::Api(why) => (
                StatusCode::UNAUTHORIZED,
                axum::Json(serde_json::json!({ "error": why })),
            )
                .into_response(),
            Unauthenticated::Redirect { location, clear } => {
                let mut res = StatusCode::SEE_OTHER.into_response();
                if let Ok(v) = HeaderValue::from_str(&location) {
                    res.headers_mut().insert(header::LOCATION, v);
                }
                if clear {
                    res.headers_mut().insert(header::SET_COOKIE, clear_cookie());
                }
                res
            }
        }
    }
}

/// Percent-encodes `s` for a query value.
pub fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The request's origin address: the connection's peer (`ConnectInfo`), or
/// 0.0.0.0 when the server did not record it.
pub fn origin_of(parts: &Parts) -> IpAddr {
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip())
}

/// The path (and query) the request asked for, before any nesting.
fn asked_path(parts: &Parts) -> String {
    let uri = parts
        .extensions
        .get::<OriginalUri>()
        .map_or(&parts.uri, |o| &o.0);
    uri.path_and_query()
        .map_or_else(|| uri.path().to_owned(), |pq| pq.as_str().to_owned())
}

fn refuse(parts: &Parts, why: &'static str, clear: bool) -> Unauthenticated {
    let asked = asked_path(parts);
    if asked.starts_with("/api/") {
        Unauthenticated::Api(why)
    } else {
        Unauthenticated::Redirect {
            location: format!("/login?next={}", url_encode(&asked)),
            clear,
        }
    }
}

impl FromRequestParts<Arc<AppState>> for Principal {
    type Rejection = Unauthenticated;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Principal, Unauthenticated> {
        let origin = origin_of(parts);
        let now = now_ms();
        if let Some(token) = bearer_token(&parts.headers) {
            let Some((name, role, permissions, tenant)) =
                state.accounts.client_of_token(&token, now)
            else {
                return Err(Unauthenticated::Api("unknown or revoked API token"));
            };
            return Ok(Principal {
                name,
                kind: PrincipalKind::ApiClient,
                role,
                permissions,
                tenant,
                origin,
                csrf: None,
            });
        }
        let Some(token) = session_token(&parts.headers) else {
            return Err(refuse(parts, "sign in first", false));
        };
        let info = match state.accounts.session(&token, now) {
            Ok(info) => info,
            Err(SessionEnd::Expired) => {
                return Err(refuse(parts, "the session expired: sign in again", true));
            }
            Err(SessionEnd::Unknown) => return Err(refuse(parts, "sign in first", true)),
        };
        if let Some(gate) = info.gate {
            let path = parts.uri.path();
            if path != gate.path() && path != "/logout" {
                return Err(if path.starts_with("/api/") {
                    Unauthenticated::Api(
                        "finish signing in first (second factor or password change)",
                    )
                } else {
                    Unauthenticated::Redirect {
                        location: gate.path().to_owned(),
                        clear: false,
                    }
                });
            }
        }
        Ok(Principal {
            name: info.user,
            kind: PrincipalKind::User,
            role: info.role,
            permissions: info.permissions,
            tenant: info.tenant,
            origin,
            csrf: Some(info.csrf),
        })
    }
}
