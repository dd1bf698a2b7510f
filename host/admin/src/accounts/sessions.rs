//! The session cookie and the CSRF layer.
//!
//! A session is a random 32-byte token in cookie `sy_session` (`Secure;
//! HttpOnly; SameSite=Strict; Path=/`); the tables hold only its SHA-256.
//! Every cookie-authenticated `POST`/`PUT`/`PATCH`/`DELETE` must carry the
//! session's CSRF token: header `x-csrf-token`, or form field `csrf` of an
//! `application/x-www-form-urlencoded` body (read up to 64 KiB), or — for
//! multipart forms, whose bodies this layer does not read — `?csrf=` in
//! the form's `action` URL. Bearer requests (API clients) and the sign-in
//! form itself (`POST /login`, before any session) skip the check.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::ct_eq;
use crate::AppState;

/// The session cookie's name.
pub const COOKIE: &str = "sy_session";
/// The CSRF header.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// The CSRF form field (and query parameter).
pub const CSRF_FIELD: &str = "csrf";
/// Largest form body the layer reads for its `csrf` field.
pub const MAX_FORM_BYTES: usize = 64 * 1024;

/// The `Set-Cookie` value that starts a session.
pub fn set_cookie(token: &str) -> HeaderValue {
    HeaderValue::from_str(&format!(
        "{COOKIE}={token}; Secure; HttpOnly; SameSite=Strict; Path=/"
    ))
    .expect("a hex token is a valid header value")
}

/// The `Set-Cookie` value that removes the session cookie.
pub fn clear_cookie() -> HeaderValue {
    HeaderValue::from_static("sy_session=; Max-Age=0; Secure; HttpOnly; SameSite=Strict; Path=/")
}

/// The session token of the request's `sy_session` cookie, if any.
pub fn session_token(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, v)| *k == COOKIE && !v.is_empty())
        .map(|(_, v)| v.to_owned())
}

/// The bearer token of `Authorization: Bearer …`, if any.
pub fn bearer_token(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    (scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty())
        .then(|| token.trim().to_owned())
}

/// Decodes one `application/x-www-form-urlencoded` component.
pub fn form_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("zz");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The value of field `name` in a urlencoded string (a query or a form).
pub fn form_field(encoded: &str, name: &str) -> Option<String> {
    encoded
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| form_decode(k) == name)
        .map(|(_, v)| form_decode(v))
}

fn refuse(api: bool, why: &str) -> Response {
    if api {
        (
            StatusCode::FORBIDDEN,
            axum::Json(serde_json::json!({ "error": why })),
        )
            .into_response()
    } else {
        (StatusCode::FORBIDDEN, why.to_owned()).into_response()
    }
}

fn state_changing(method: &Method) -> bool {
    [Method::POST, Method::PUT, Method::PATCH, Method::DELETE].contains(method)
}

/// The CSRF layer: `axum::middleware::from_fn_with_state(state,
/// csrf_layer)` over the whole router. A cookie-authenticated state
/// change without the session's CSRF token is refused with 403.
pub async fn csrf_layer(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    if !state_changing(req.method())
        || bearer_token(req.headers()).is_some()
        || req.uri().path() == "/login"
    {
        return next.run(req).await;
    }
    let Some(token) = session_token(req.headers()) else {
        return next.run(req).await;
    };
    let Some(expected) = state.accounts.session_csrf(&token) else {
        // No such session: the extractor refuses the request.
        return next.run(req).await;
    };
    let api = req.uri().path().starts_with("/api/");
    let presented = req
        .headers()
        .get(CSRF_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| req.uri().query().and_then(|q| form_field(q, CSRF_FIELD)));
    if let Some(p) = presented {
        return if ct_eq(p.as_bytes(), expected.as_bytes()) {
            next.run(req).await
        } else {
            refuse(api, "CSRF token wrong")
        };
    }
    let is_form = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if !is_form {
        return refuse(
            api,
            "CSRF token missing (header x-csrf-token or form field csrf)",
        );
    }
    let (parts, body) = req.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, MAX_FORM_BYTES).await else {
        return (StatusCode::PAYLOAD_TOO_LARGE, "form too large").into_response();
    };
    let field = form_field(&String::from_utf8_lossy(&bytes), CSRF_FIELD);
    match field {
        Some(p) if ct_eq(p.as_bytes(), expected.as_bytes()) => {
            next.run(Request::from_parts(parts, Body::from(bytes)))
                .await
        }
        Some(_) => refuse(api, "CSRF token wrong"),
        None => refuse(api, "CSRF token missing (form field csrf)"),
    }
}
