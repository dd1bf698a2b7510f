//! The accounts' pages and JSON API: sign-in (password, TOTP), sign-out,
//! password change, TOTP enrolment; users, roles and API clients.
//!
//! Tenant scoping: a principal bound to a tenant sees and manages only the
//! users and API clients of that tenant (another tenant's name answers 404
//! as an unknown one does), creates them only in its tenant, grants only
//! roles whose permissions it holds itself, and cannot create roles.
//! Every sign-in, failure, lockout, sign-out, enrolment, password change
//! and user, role or client change is audited.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Path, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Form, Json, Router};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::extract::url_encode;
use super::sessions::{clear_cookie, session_token, set_cookie};
use super::{AccountsError, Login, TotpLogin, now_ms};
use crate::audit::{AuditEvent, Outcome};
use crate::pages::layout::{esc, page};
use crate::{AppState, Permission, Principal, PrincipalKind, RouteSpec};

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

const VIEW: Option<Permission> = Some(Permission::UsersView);
const MANAGE: Option<Permission> = Some(Permission::UsersManage);

/// The accounts' routes, for the permission and tenant tests.
pub const ROUTES: &[RouteSpec] = &[
    spec("GET", "/login", None, false),
    spec("POST", "/login", None, false),
    spec("GET", "/login/totp", None, false),
    spec("POST", "/login/totp", None, false),
    spec("POST", "/logout", None, false),
    spec("GET", "/password", None, false),
    spec("POST", "/password", None, false),
    spec("GET", "/account/totp", None, false),
    spec("POST", "/account/totp", None, false),
    spec("GET", "/users", VIEW, true),
    spec("POST", "/users", MANAGE, true),
    spec("POST", "/users/{name}/role", MANAGE, true),
    spec("POST", "/users/{name}/disable", MANAGE, true),
    spec("POST", "/users/{name}/enable", MANAGE, true),
    spec("POST", "/users/{name}/unlock", MANAGE, true),
    spec("POST", "/users/{name}/reset", MANAGE, true),
    spec("GET", "/roles", VIEW, false),
    spec("POST", "/roles", MANAGE, false),
    spec("GET", "/clients", VIEW, true),
    spec("POST", "/clients", MANAGE, true),
    spec("POST", "/clients/{name}/revoke", MANAGE, true),
    spec("GET", "/api/users", VIEW, true),
    spec("POST", "/api/users", MANAGE, true),
    spec("POST", "/api/users/{name}/unlock", MANAGE, true),
    spec("GET", "/api/clients", VIEW, true),
    spec("POST", "/api/clients", MANAGE, true),
    spec("DELETE", "/api/clients/{name}", MANAGE, true),
    spec("GET", "/api/roles", VIEW, false),
    spec("POST", "/api/roles", MANAGE, false),
];

/// The accounts' pages and API.
pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/login", get(login_form).post(login))
        .route("/login/totp", get(totp_form).post(totp_submit))
        .route("/logout", post(logout))
        .route("/password", get(password_form).post(password_submit))
        .route("/account/totp", get(enrol_form).post(enrol_submit))
        .route("/users", get(users_page).post(users_add))
        .route("/users/{name}/{action}", post(users_action))
        .route("/roles", get(roles_page).post(roles_add))
        .route("/clients", get(clients_page).post(clients_add))
        .route("/clients/{name}/revoke", post(clients_revoke))
        .route("/api/users", get(api_users).post(api_users_add))
        .route("/api/users/{name}/unlock", post(api_users_unlock))
        .route("/api/clients", get(api_clients).post(api_clients_add))
        .route("/api/clients/{name}", delete(api_clients_revoke))
        .route("/api/roles", get(api_roles).post(api_roles_add))
}

/// The request's origin (the connection's peer; 0.0.0.0 without one).
#[derive(Debug, Clone, Copy)]
pub struct Origin(pub IpAddr);

impl<S: Send + Sync> FromRequestParts<S> for Origin {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Origin, Self::Rejection> {
        Ok(Origin(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip()),
        ))
    }
}

/// Records one audit event (a failure to record is logged).
#[allow(clippy::too_many_arguments)]
fn audit(
    state: &AppState,
    actor: &str,
    event: &str,
    outcome: Outcome,
    origin: IpAddr,
    resource: &str,
    tenant: Option<&str>,
    detail: &str,
) {
    let e = AuditEvent {
        actor,
        event,
        outcome,
        origin: Some(origin),
        resource,
        tenant,
        detail,
    };
    if let Err(err) = state.audit.record(&e) {
        tracing::error!(error = %err, event, actor, "recording an audit event");
    }
}

fn audit_by(
    state: &AppState,
    p: &Principal,
    event: &str,
    ok: bool,
    resource: &str,
    tenant: Option<&str>,
    detail: &str,
) {
    let outcome = if ok {
        Outcome::Success
    } else {
        Outcome::Failure
    };
    audit(
        state, &p.name, event, outcome, p.origin, resource, tenant, detail,
    );
}

/// `2026-12-01 18:23 UTC` for ms since the epoch.
pub fn when(ms: i64) -> String {
    let t = switchyard_iso8583::UtcTime::from_unix(ms.div_euclid(1000));
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02} UTC",
        t.year, t.month, t.day, t.hour, t.minute
    )
}

fn redirect(location: &str) -> Response {
    let mut res = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = location.parse() {
        res.headers_mut().insert(header::LOCATION, v);
    }
    res
}

/// A local path to go to after sign-in (never another site).
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.contains('\\') => n.to_owned(),
        _ => "/".to_owned(),
    }
}

fn csrf_input(p: &Principal) -> String {
    format!(
        "<input type=\"hidden\" name=\"csrf\" value=\"{}\">",
        esc(p.csrf.as_deref().unwrap_or(""))
    )
}

fn error_html(msg: &str) -> String {
    if msg.is_empty() {
        String::new()
    } else {
        format!("<p class=\"error\" role=\"alert\">{}</p>", esc(msg))
    }
}

// ---- sign-in -------------------------------------------------------------

/// `?next=`.
#[derive(Debug, Deserialize)]
pub struct NextQuery {
    next: Option<String>,
}

fn login_page(next: &str, msg: &str, status: StatusCode) -> Response {
    let body = format!(
        "{}<form method=\"post\" action=\"/login\" class=\"login\">\
         <input type=\"hidden\" name=\"next\" value=\"{}\">\
         <label>Name <input name=\"name\" autocomplete=\"username\" required autofocus></label>\
         <label>Password <input name=\"password\" type=\"password\" autocomplete=\"current-password\" required></label>\
         <button type=\"submit\">Sign in</button></form>",
        error_html(msg),
        esc(next)
    );
    (status, page("Sign in", None, &body)).into_response()
}

async fn login_form(Query(q): Query<NextQuery>) -> Response {
    login_page(&safe_next(q.next.as_deref()), "", StatusCode::OK)
}

/// The sign-in form.
#[derive(Debug, Deserialize)]
pub struct LoginForm {
    name: String,
    password: String,
    next: Option<String>,
}

async fn login(
    State(state): State<Arc<AppState>>,
    Origin(origin): Origin,
    Form(f): Form<LoginForm>,
) -> Response {
    let next = safe_next(f.next.as_deref());
    let outcome = state.accounts.login(&f.name, &f.password, origin, now_ms());
    let tenant = state
        .accounts
        .get_user(&f.name, 0)
        .ok()
        .flatten()
        .and_then(|u| u.tenant);
    let tenant = tenant.as_deref();
    state.metrics.admin_login(match &outcome {
        Ok(Login::Ok { .. }) => "success",
        Ok(Login::Failed { .. }) | Err(_) => "failure",
        Ok(Login::Locked(_)) => "locked",
    });
    match outcome {
        Ok(Login::Ok { token, gate }) => {
            audit(
                &state,
                &f.name,
                "login",
                Outcome::Success,
                origin,
                &f.name,
                tenant,
                "password accepted",
            );
            let mut res = redirect(gate.map_or(next.as_str(), |g| g.path()));
            res.headers_mut()
                .insert(header::SET_COOKIE, set_cookie(&token));
            res
        }
        Ok(Login::Failed { locked_now }) => {
            audit(
                &state,
                &f.name,
                "login.failed",
                Outcome::Failure,
                origin,
                &f.name,
                tenant,
                "wrong name or password",
            );
            if locked_now {
                audit(
                    &state,
                    &f.name,
                    "user.locked_out",
                    Outcome::Success,
                    origin,
                    &f.name,
                    tenant,
                    "too many failed sign-ins",
                );
            }
            login_page(&next, "Wrong name or password.", StatusCode::UNAUTHORIZED)
        }
        Ok(Login::Locked(until)) => {
            audit(
                &state,
                &f.name,
                "login.failed",
                Outcome::Failure,
                origin,
                &f.name,
                tenant,
                "locked",
            );
            let msg = format!("This account is locked until {}.", when(until));
            login_page(&next, &msg, StatusCode::UNAUTHORIZED)
        }
        Err(e) => {
            tracing::error!(error = %e, "sign-in");
            login_page(
                &next,
                "Sign-in failed: see the switch's log.",
                StatusCode::INTERNAL_SERVER_ERROR,
            )
        }
    }
}

fn totp_page(p: &Principal, msg: &str, status: StatusCode) -> Response {
    let body = format!(
        "{}<p>Enter the 6-digit code of your authenticator app.</p>\
         <form method=\"post\" action=\"/login/totp\">{}\
         <label>Code <input name=\"code\" inputmode=\"numeric\" pattern=\"[0-9]{{6}}\" autocomplete=\"one-time-code\" required autofocus></label>\
         <button type=\"submit\">Continue</button></form>",
        error_html(msg),
        csrf_input(p)
    );
    (status, page("Second factor", None, &body)).into_response()
}

async fn totp_form(p: Principal) -> Response {
    totp_page(&p, "", StatusCode::OK)
}

/// A TOTP code.
#[derive(Debug, Deserialize)]
pub struct CodeForm {
    code: String,
}

async fn totp_submit(
    State(state): State<Arc<AppState>>,
    p: Principal,
    headers: HeaderMap,
    Form(f): Form<CodeForm>,
) -> Response {
    let Some(token) = session_token(&headers) else {
        return redirect("/login");
    };
    let tenant = p.tenant.as_deref();
    match state
        .accounts
        .login_totp(&token, &f.code, p.origin, now_ms())
    {
        Ok(TotpLogin::Ok(gate)) => {
            audit_by(
                &state,
                &p,
                "login.totp",
                true,
                &p.name,
                tenant,
                "second factor accepted",
            );
            redirect(gate.map_or("/", |g| g.path()))
        }
        Ok(TotpLogin::Failed { locked_now }) => {
            audit_by(
                &state,
                &p,
                "login.failed",
                false,
                &p.name,
                tenant,
                "wrong or reused TOTP code",
            );
            if locked_now {
                audit_by(
                    &state,
                    &p,
                    "user.locked_out",
                    true,
                    &p.name,
                    tenant,
                    "too many failed sign-ins",
                );
                let mut res = redirect("/login");
                res.headers_mut().insert(header::SET_COOKIE, clear_cookie());
                return res;
            }
            totp_page(
                &p,
                "Wrong code, or a code already used.",
                StatusCode::UNAUTHORIZED,
            )
        }
        // Not waiting for a code (already passed): go on.
        Err(AccountsError::NotFound { .. }) => redirect("/"),
        Err(e) => {
            tracing::error!(error = %e, "second factor");
            totp_page(
                &p,
                "The code could not be checked: see the switch's log.",
                StatusCode::INTERNAL_SERVER_ERROR,
            )
        }
    }
}

async fn logout(
    State(state): State<Arc<AppState>>,
    Origin(origin): Origin,
    headers: HeaderMap,
) -> Response {
    if let Some(token) = session_token(&headers) {
        match state.accounts.logout(&token) {
            Ok(Some(user)) => audit(
                &state,
                &user,
                "logout",
                Outcome::Success,
                origin,
                &user,
                None,
                "",
            ),
            Ok(None) => {}
            Err(e) => tracing::error!(error = %e, "sign-out"),
        }
    }
    let mut res = redirect("/login");
    res.headers_mut().insert(header::SET_COOKIE, clear_cookie());
    res
}

// ---- password, TOTP enrolment --------------------------------------------

fn users_only(p: &Principal) -> Option<Response> {
    (p.kind != PrincipalKind::User).then(|| {
        (
            StatusCode::FORBIDDEN,
            Json(serde_json::json!({"error": "for signed-in users only"})),
        )
            .into_response()
    })
}

fn password_page(state: &AppState, p: &Principal, msg: &str, status: StatusCode) -> Response {
    let policy = state.accounts.policy();
    let forced = state
        .accounts
        .get_user(&p.name, now_ms())
        .ok()
        .flatten()
        .is_some_and(|u| u.must_change);
    let why = if forced {
        "<p class=\"notice\">Your password expired or was reset: choose a new one to go on.</p>"
    } else {
        ""
    };
    let body = format!(
        "{why}{}<p>At least {} characters{}, not one of your last {} passwords.</p>\
         <form method=\"post\" action=\"/password\">{}\
         <label>Current password <input name=\"current\" type=\"password\" autocomplete=\"current-password\" required></label>\
         <label>New password <input name=\"new\" type=\"password\" autocomplete=\"new-password\" required></label>\
         <label>New password again <input name=\"repeat\" type=\"password\" autocomplete=\"new-password\" required></label>\
         <button type=\"submit\">Change password</button></form>",
        error_html(msg),
        policy.min_length,
        if policy.letters_and_digits {
            " with letters and digits"
        } else {
            ""
        },
        policy.history,
        csrf_input(p)
    );
    let who = (!forced && p.csrf.is_some() && !p.permissions.is_empty()).then_some(p);
    (status, page("Change password", who, &body)).into_response()
}

async fn password_form(State(state): State<Arc<AppState>>, p: Principal) -> Response {
    if let Some(r) = users_only(&p) {
        return r;
    }
    password_page(&state, &p, "", StatusCode::OK)
}

/// The password change form.
#[derive(Debug, Deserialize)]
pub struct PasswordForm {
    current: String,
    new: String,
    repeat: String,
}

async fn password_submit(
    State(state): State<Arc<AppState>>,
    p: Principal,
    Form(f): Form<PasswordForm>,
) -> Response {
    if let Some(r) = users_only(&p) {
        return r;
    }
    if f.new != f.repeat {
        return password_page(
            &state,
            &p,
            "The new passwords differ.",
            StatusCode::BAD_REQUEST,
        );
    }
    let tenant = p.tenant.as_deref();
    match state
        .accounts
        .change_password(&p.name, &f.current, &f.new, now_ms())
    {
        Ok(()) => {
            audit_by(&state, &p, "password.changed", true, &p.name, tenant, "");
            redirect("/")
        }
        Err(e) => {
            audit_by(
                &state,
                &p,
                "password.changed",
                false,
                &p.name,
                tenant,
                &e.to_string(),
            );
            password_page(&state, &p, &e.to_string(), status_of(&e))
        }
    }
}

fn enrol_page(state: &AppState, p: &Principal, msg: &str, status: StatusCode) -> Response {
    let enrolled = state
        .accounts
        .get_user(&p.name, now_ms())
        .ok()
        .flatten()
        .is_some_and(|u| u.totp);
    let body = if enrolled {
        "<p>Two-factor sign-in (TOTP) is on for your account.</p>".to_owned()
    } else {
        match state.accounts.begin_totp(&p.name) {
            Ok((uri, secret)) => format!(
                "{}<p>Scan this code with an authenticator app (or type the secret in), \
                 then enter the 6-digit code it shows. TOTP is on only once a code is accepted.</p>\
                 <div class=\"qr\">{}</div><p>Secret: <code>{}</code></p>\
                 <p class=\"uri\"><code>{}</code></p>\
                 <form method=\"post\" action=\"/account/totp\">{}\
                 <label>Code <input name=\"code\" inputmode=\"numeric\" pattern=\"[0-9]{{6}}\" autocomplete=\"one-time-code\" required></label>\
                 <button type=\"submit\">Turn on</button></form>",
                error_html(msg),
                super::totp::qr_svg(&uri),
                esc(&secret),
                esc(&uri),
                csrf_input(p)
            ),
            Err(e) => error_html(&e.to_string()),
        }
    };
    let who = (!p.permissions.is_empty()).then_some(p);
    (status, page("Two-factor sign-in", who, &body)).into_response()
}

async fn enrol_form(State(state): State<Arc<AppState>>, p: Principal) -> Response {
    if let Some(r) = users_only(&p) {
        return r;
    }
    enrol_page(&state, &p, "", StatusCode::OK)
}

async fn enrol_submit(
    State(state): State<Arc<AppState>>,
    p: Principal,
    headers: HeaderMap,
    Form(f): Form<CodeForm>,
) -> Response {
    if let Some(r) = users_only(&p) {
        return r;
    }
    let tenant = p.tenant.as_deref();
    match state.accounts.confirm_totp(&p.name, &f.code, now_ms()) {
        Ok(()) => {
            if let Some(token) = session_token(&headers) {
                let _ = state.accounts.mark_totp_passed(&token);
            }
            audit_by(&state, &p, "totp.enrolled", true, &p.name, tenant, "");
            redirect("/")
        }
        Err(e) => {
            audit_by(
                &state,
                &p,
                "totp.enrolled",
                false,
                &p.name,
                tenant,
                &e.to_string(),
            );
            enrol_page(&state, &p, &e.to_string(), status_of(&e))
        }
    }
}

// ---- errors and scoping ----------------------------------------------------

/// A form body, parsed after the permission check (400 when malformed).
async fn form_of<T: DeserializeOwned>(req: Request) -> Result<T, Response> {
    Form::<T>::from_request(req, &())
        .await
        .map(|Form(v)| v)
        .map_err(|e| (StatusCode::BAD_REQUEST, e.body_text()).into_response())
}

/// A JSON body, parsed after the permission check (400 when malformed).
async fn json_of<T: DeserializeOwned>(req: Request) -> Result<T, Response> {
    Json::<T>::from_request(req, &())
        .await
        .map(|Json(v)| v)
        .map_err(|e| api_error(StatusCode::BAD_REQUEST, &e.body_text()))
}

fn status_of(e: &AccountsError) -> StatusCode {
    match e {
        AccountsError::Exists { .. } | AccountsError::Builtin(_) => StatusCode::CONFLICT,
        AccountsError::NotFound { .. } => StatusCode::NOT_FOUND,
        AccountsError::Db(_) | AccountsError::Unseal => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::BAD_REQUEST,
    }
}

fn api_error(status: StatusCode, msg: &str) -> Response {
    (status, Json(serde_json::json!({ "error": msg }))).into_response()
}

fn api_err(e: &AccountsError) -> Response {
    api_error(status_of(e), &e.to_string())
}

fn forbidden(p: Permission) -> String {
    format!("needs permission {}", p.name())
}

/// Refuses a principal without `perm`: JSON 403 under `/api/`, a page
/// otherwise.
fn deny(p: &Principal, perm: Permission, api: bool) -> Option<Response> {
    if p.can(perm) {
        None
    } else if api {
        Some(api_error(StatusCode::FORBIDDEN, &forbidden(perm)))
    } else {
        Some(
            (
                StatusCode::FORBIDDEN,
                page("Forbidden", Some(p), &error_html(&forbidden(perm))),
            )
                .into_response(),
        )
    }
}

/// Whether `p` sees a row of `tenant` (`None`: an untenanted row, which
/// only untenanted principals see).
fn visible(p: &Principal, tenant: Option<&str>) -> bool {
    match (&p.tenant, tenant) {
        (None, _) => true,
        (Some(mine), Some(t)) => mine == t,
        (Some(_), None) => false,
    }
}

/// The tenant a new user or client of `p` gets: its own when bound; an
/// error when it asks for another.
fn tenant_for(p: &Principal, asked: Option<&str>) -> Result<Option<String>, String> {
    let asked = asked.map(str::trim).filter(|t| !t.is_empty());
    match (&p.tenant, asked) {
        (None, a) => Ok(a.map(str::to_owned)),
        (Some(mine), None) => Ok(Some(mine.clone())),
        (Some(mine), Some(a)) if a == mine => Ok(Some(mine.clone())),
        (Some(_), Some(a)) => Err(format!("no tenant named {a}")),
    }
}

/// Whether `p` may grant `role`: untenanted managers any; tenant-bound
/// ones only roles within their own permissions.
fn may_grant(state: &AppState, p: &Principal, role: &str) -> Result<(), AccountsError> {
    let perms = state.accounts.permissions_of(role)?;
    if p.tenant.is_none() || perms.iter().all(|x| p.can(*x)) {
        Ok(())
    } else {
        Err(AccountsError::NotFound {
            kind: "role you may grant",
            name: role.to_owned(),
        })
    }
}

/// The user `name` if `p` sees it (else `NotFound`, as for an unknown one).
fn scoped_user(
    state: &AppState,
    p: &Principal,
    name: &str,
) -> Result<super::UserView, AccountsError> {
    match state.accounts.get_user(name, now_ms())? {
        Some(u) if visible(p, u.tenant.as_deref()) => Ok(u),
        _ => Err(AccountsError::NotFound {
            kind: "user",
            name: name.to_owned(),
        }),
    }
}

/// The client `name`'s tenant if `p` sees it.
fn scoped_client(
    state: &AppState,
    p: &Principal,
    name: &str,
) -> Result<Option<String>, AccountsError> {
    match state.accounts.client_tenant(name) {
        Ok(t) if visible(p, t.as_deref()) => Ok(t),
        Ok(_) => Err(AccountsError::NotFound {
            kind: "API client",
            name: name.to_owned(),
        }),
        Err(e) => Err(e),
    }
}

// ---- users -----------------------------------------------------------------

fn role_options(state: &AppState, p: &Principal, selected: &str) -> String {
    let roles = state.accounts.list_roles().unwrap_or_default();
    let mut out = String::new();
    for r in roles
        .iter()
        .filter(|r| may_grant(state, p, &r.name).is_ok())
    {
        let sel = if r.name == selected { " selected" } else { "" };
        let _ = write!(out, "<option{sel}>{}</option>", esc(&r.name));
    }
    out
}

fn user_row(state: &AppState, p: &Principal, u: &super::UserView, manage: bool) -> String {
    let name = esc(&u.name);
    let locked = u.locked_until_ms.map_or_else(|| "—".to_owned(), when);
    let mut row = format!(
        "<tr><td>{name}</td><td>{}</td><td>{}</td><td>{}</td><td>{locked}</td><td>{}</td><td>{}</td>",
        esc(&u.role),
        esc(u.tenant.as_deref().unwrap_or("all")),
        if u.totp { "yes" } else { "no" },
        when(u.password_changed_ms),
        if u.disabled {
            "disabled"
        } else if u.must_change {
            "must change password"
        } else {
            "active"
        },
    );
    if manage {
        let csrf = csrf_input(p);
        let path = format!("/users/{}", url_encode(&u.name));
        let _ = write!(
            row,
            "<td><form method=\"post\" action=\"{path}/role\">{csrf}<select name=\"role\">{}</select><button>Set role</button></form>\
             <form method=\"post\" action=\"{path}/{}\">{csrf}<button>{}</button></form>\
             <form method=\"post\" action=\"{path}/unlock\">{csrf}<button>Unlock</button></form>\
             <form method=\"post\" action=\"{path}/reset\">{csrf}<input name=\"password\" type=\"password\" placeholder=\"temporary password\" autocomplete=\"new-password\" required>\
             <label><input type=\"checkbox\" name=\"totp\" value=\"1\"> also reset TOTP</label><button>Reset password</button></form></td>",
            role_options(state, p, &u.role),
            if u.disabled { "enable" } else { "disable" },
            if u.disabled { "Enable" } else { "Disable" },
        );
    }
    row.push_str("</tr>");
    row
}

fn users_html(state: &AppState, p: &Principal, msg: &str, status: StatusCode) -> Response {
    let manage = p.can(Permission::UsersManage);
    let users = state.accounts.list_users(now_ms()).unwrap_or_default();
    let mut rows = String::new();
    for u in users.iter().filter(|u| visible(p, u.tenant.as_deref())) {
        rows.push_str(&user_row(state, p, u, manage));
    }
    let add = if manage {
        format!(
            "<h2>Add a user</h2><form method=\"post\" action=\"/users\">{}\
             <label>Name <input name=\"name\" required></label>\
             <label>Password <input name=\"password\" type=\"password\" autocomplete=\"new-password\" required></label>\
             <label>Role <select name=\"role\">{}</select></label>\
             <label>Tenant <input name=\"tenant\" value=\"{}\" placeholder=\"all tenants\"></label>\
             <label><input type=\"checkbox\" name=\"must_change\" value=\"1\" checked> must change at first sign-in</label>\
             <button>Add user</button></form>",
            csrf_input(p),
            role_options(state, p, "viewer"),
            esc(p.tenant.as_deref().unwrap_or(""))
        )
    } else {
        String::new()
    };
    let body = format!(
        "{}<p><a href=\"/roles\">Roles</a> · <a href=\"/clients\">API clients</a></p>\
         <table><thead><tr><th>Name</th><th>Role</th><th>Tenant</th><th>TOTP</th><th>Locked until</th>\
         <th>Password changed</th><th>State</th>{}</tr></thead><tbody>{rows}</tbody></table>{add}",
        error_html(msg),
        if manage { "<th>Manage</th>" } else { "" }
    );
    (status, page("Users", Some(p), &body)).into_response()
}

async fn users_page(State(state): State<Arc<AppState>>, p: Principal) -> Response {
    if let Some(r) = deny(&p, Permission::UsersView, false) {
        return r;
    }
    users_html(&state, &p, "", StatusCode::OK)
}

/// A new user (form or JSON).
#[derive(Debug, Deserialize)]
pub struct NewUser {
    name: String,
    password: String,
    role: String,
    #[serde(default)]
    tenant: Option<String>,
    #[serde(default, deserialize_with = "flag")]
    must_change: bool,
}

fn flag<'de, D: serde::Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Flag {
        B(bool),
        S(String),
    }
    Ok(match Flag::deserialize(d)? {
        Flag::B(b) => b,
        Flag::S(s) => matches!(s.as_str(), "1" | "on" | "true" | "yes"),
    })
}

/// Adds a user for `p`, audited; the new user's view.
fn add_user(
    state: &AppState,
    p: &Principal,
    u: &NewUser,
) -> Result<super::UserView, AccountsError> {
    let result = (|| {
        let tenant = tenant_for(p, u.tenant.as_deref()).map_err(|_| AccountsError::NotFound {
            kind: "tenant",
            name: u.tenant.clone().unwrap_or_default(),
        })?;
        may_grant(state, p, &u.role)?;
        let now = now_ms();
        state.accounts.add_user(
            &u.name,
            &u.password,
            &u.role,
            tenant.as_deref(),
            u.must_change,
            now,
        )?;
        scoped_user(state, p, &u.name)
    })();
    let detail = match &result {
        Ok(v) => format!("role {}", v.role),
        Err(e) => e.to_string(),
    };
    let tenant = result.as_ref().ok().and_then(|v| v.tenant.clone());
    audit_by(
        state,
        p,
        "user.created",
        result.is_ok(),
        &u.name,
        tenant.as_deref(),
        &detail,
    );
    result
}

async fn users_add(State(state): State<Arc<AppState>>, p: Principal, req: Request) -> Response {
    if let Some(r) = deny(&p, Permission::UsersManage, false) {
        return r;
    }
    let u: NewUser = match form_of(req).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    match add_user(&state, &p, &u) {
        Ok(_) => redirect("/users"),
        Err(e) => users_html(&state, &p, &e.to_string(), status_of(&e)),
    }
}

/// A user action's form fields.
#[derive(Debug, Deserialize)]
pub struct ActionForm {
    #[serde(default)]
    role: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    totp: Option<String>,
}

/// Runs one user action for `p` (role, disable, enable, unlock, reset),
/// audited.
fn user_action(
    state: &AppState,
    p: &Principal,
    name: &str,
    action: &str,
    f: &ActionForm,
) -> Result<(), AccountsError> {
    let target = scoped_user(state, p, name)?;
    let a = &state.accounts;
    let (event, result) = match action {
        "role" => {
            let role = f.role.as_deref().unwrap_or("");
            let r = may_grant(state, p, role).and_then(|()| a.set_role(name, role));
            ("user.role_changed", r.map(|()| format!("role {role}")))
        }
        "disable" => (
            "user.disabled",
            a.set_disabled(name, true).map(|()| String::new()),
        ),
        "enable" => (
            "user.enabled",
            a.set_disabled(name, false).map(|()| String::new()),
        ),
        "unlock" => ("user.unlocked", a.unlock(name).map(|()| String::new())),
        "reset" => {
            let pw = f.password.as_deref().unwrap_or("");
            let mut r = a
                .reset_password(name, pw, now_ms())
                .map(|()| "must change".to_owned());
            if r.is_ok() && f.totp.as_deref().is_some_and(|t| !t.is_empty()) {
                r = a
                    .clear_totp(name)
                    .map(|()| "must change; TOTP reset".to_owned());
            }
            ("user.password_reset", r)
        }
        _ => {
            return Err(AccountsError::NotFound {
                kind: "user action",
                name: action.to_owned(),
            });
        }
    };
    let detail = match &result {
        Ok(d) => d.clone(),
        Err(e) => e.to_string(),
    };
    audit_by(
        state,
        p,
        event,
        result.is_ok(),
        name,
        target.tenant.as_deref(),
        &detail,
    );
    result.map(|_| ())
}

async fn users_action(
    State(state): State<Arc<AppState>>,
    p: Principal,
    Path((name, action)): Path<(String, String)>,
    req: Request,
) -> Response {
    if let Some(r) = deny(&p, Permission::UsersManage, false) {
        return r;
    }
    let f: ActionForm = match form_of(req).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    match user_action(&state, &p, &name, &action, &f) {
        Ok(()) => redirect("/users"),
        Err(e) => users_html(&state, &p, &e.to_string(), status_of(&e)),
    }
}

async fn api_users(State(state): State<Arc<AppState>>, p: Principal) -> Response {
    if let Some(r) = deny(&p, Permission::UsersView, true) {
        return r;
    }
    match state.accounts.list_users(now_ms()) {
        Ok(users) => {
            let users: Vec<_> = users
                .into_iter()
                .filter(|u| visible(&p, u.tenant.as_deref()))
                .collect();
            Json(serde_json::json!({ "users": users })).into_response()
        }
        Err(e) => api_err(&e),
    }
}

async fn api_users_add(State(state): State<Arc<AppState>>, p: Principal, req: Request) -> Response {
    if let Some(r) = deny(&p, Permission::UsersManage, true) {
        return r;
    }
    let u: NewUser = match json_of(req).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    match add_user(&state, &p, &u) {
        Ok(v) => (StatusCode::CREATED, Json(serde_json::json!({ "user": v }))).into_response(),
        Err(e) => api_err(&e),
    }
}

async fn api_users_unlock(
    State(state): State<Arc<AppState>>,
    p: Principal,
    Path(name): Path<String>,
) -> Response {
    if let Some(r) = deny(&p, Permission::UsersManage, true) {
        return r;
    }
    let none = ActionForm {
        role: None,
        password: None,
        totp: None,
    };
    match user_action(&state, &p, &name, "unlock", &none) {
        Ok(()) => Json(serde_json::json!({ "unlocked": name })).into_response(),
        Err(e) => api_err(&e),
    }
}

// ---- roles -----------------------------------------------------------------

fn roles_html(state: &AppState, p: &Principal, msg: &str, status: StatusCode) -> Response {
    let roles = state.accounts.list_roles().unwrap_or_default();
    let mut rows = String::new();
    for r in &roles {
        let perms: Vec<&str> = r.permissions.iter().map(|x| x.name()).collect();
        let _ = write!(
            rows,
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&r.name),
            if r.builtin { "built in" } else { "custom" },
            esc(&perms.join(", "))
        );
    }
    let add = if p.can(Permission::UsersManage) && p.tenant.is_none() {
        let mut boxes = String::new();
        for perm in Permission::ALL {
            let _ = write!(
                boxes,
                "<label><input type=\"checkbox\" name=\"p.{0}\" value=\"1\"> {0}</label> ",
                perm.name()
            );
        }
        format!(
            "<h2>Add a role</h2><form method=\"post\" action=\"/roles\">{}\
             <label>Name <input name=\"name\" required pattern=\"[a-z0-9_.-]+\"></label>\
             <fieldset><legend>Permissions</legend>{boxes}</fieldset><button>Add role</button></form>",
            csrf_input(p)
        )
    } else {
        String::new()
    };
    let body = format!(
        "{}<table><thead><tr><th>Role</th><th>Kind</th><th>Permissions</th></tr></thead>\
         <tbody>{rows}</tbody></table>{add}",
        error_html(msg)
    );
    (status, page("Roles", Some(p), &body)).into_response()
}

async fn roles_page(State(state): State<Arc<AppState>>, p: Principal) -> Response {
    if let Some(r) = deny(&p, Permission::UsersView, false) {
        return r;
    }
    roles_html(&state, &p, "", StatusCode::OK)
}

/// Adds a role for `p` (untenanted managers only), audited.
fn add_role(
    state: &AppState,
    p: &Principal,
    name: &str,
    perms: &[String],
) -> Result<Vec<Permission>, AccountsError> {
    let result = if p.tenant.is_some() {
        Err(AccountsError::NotFound {
            kind: "permission to create roles for tenant",
            name: p.tenant.clone().unwrap_or_default(),
        })
    } else {
        state.accounts.add_role(name, perms)
    };
    let detail = match &result {
        Ok(v) => v.iter().map(|x| x.name()).collect::<Vec<_>>().join(","),
        Err(e) => e.to_string(),
    };
    audit_by(
        state,
        p,
        "role.created",
        result.is_ok(),
        name,
        None,
        &detail,
    );
    result
}

async fn roles_add(State(state): State<Arc<AppState>>, p: Principal, req: Request) -> Response {
    if let Some(r) = deny(&p, Permission::UsersManage, false) {
        return r;
    }
    let f: HashMap<String, String> = match form_of(req).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let name = f.get("name").cloned().unwrap_or_default();
    let perms: Vec<String> = f
        .keys()
        .filter_map(|k| k.strip_prefix("p."))
        .map(str::to_owned)
        .collect();
    match add_role(&state, &p, name.trim(), &perms) {
        Ok(_) => redirect("/roles"),
        Err(e) => roles_html(&state, &p, &e.to_string(), status_of(&e)),
    }
}

async fn api_roles(State(state): State<Arc<AppState>>, p: Principal) -> Response {
    if let Some(r) = deny(&p, Permission::UsersView, true) {
        return r;
    }
    match state.accounts.list_roles() {
        Ok(roles) => Json(serde_json::json!({ "roles": roles })).into_response(),
        Err(e) => api_err(&e),
    }
}

/// A new role (JSON).
#[derive(Debug, Deserialize)]
pub struct NewRole {
    name: String,
    permissions: Vec<String>,
}

async fn api_roles_add(State(state): State<Arc<AppState>>, p: Principal, req: Request) -> Response {
    if let Some(res) = deny(&p, Permission::UsersManage, true) {
        return res;
    }
    let r: NewRole = match json_of(req).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    match add_role(&state, &p, &r.name, &r.permissions) {
        Ok(perms) => (
            StatusCode::CREATED,
            Json(serde_json::json!({ "role": { "name": r.name, "permissions": perms, "builtin": false } })),
        )
            .into_response(),
        Err(e) => api_err(&e),
    }
}

// ---- API clients -------------------------------------------------------------

fn clients_html(
    state: &AppState,
    p: &Principal,
    notice: &str,
    msg: &str,
    status: StatusCode,
) -> Response {
    let manage = p.can(Permission::UsersManage);
    let clients = state.accounts.list_clients().unwrap_or_default();
    let mut rows = String::new();
    for c in clients.iter().filter(|c| visible(p, c.tenant.as_deref())) {
        let revoke = if manage && !c.revoked {
            format!(
                "<form method=\"post\" action=\"/clients/{}/revoke\">{}<button>Revoke</button></form>",
                url_encode(&c.name),
                csrf_input(p)
            )
        } else {
            String::new()
        };
        let _ = write!(
            rows,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{revoke}</td></tr>",
            esc(&c.name),
            esc(&c.role),
            esc(c.tenant.as_deref().unwrap_or("all")),
            when(c.created_ms),
            c.last_used_ms.map_or_else(|| "never".to_owned(), when),
            if c.revoked { "revoked" } else { "active" },
        );
    }
    let add = if manage {
        format!(
            "<h2>Add an API client</h2><form method=\"post\" action=\"/clients\">{}\
             <label>Name <input name=\"name\" required></label>\
             <label>Role <select name=\"role\">{}</select></label>\
             <label>Tenant <input name=\"tenant\" value=\"{}\" placeholder=\"all tenants\"></label>\
             <button>Add client</button></form>",
            csrf_input(p),
            role_options(state, p, "viewer"),
            esc(p.tenant.as_deref().unwrap_or(""))
        )
    } else {
        String::new()
    };
    let body = format!(
        "{notice}{}<table><thead><tr><th>Name</th><th>Role</th><th>Tenant</th><th>Created</th>\
         <th>Last used</th><th>State</th><th></th></tr></thead><tbody>{rows}</tbody></table>{add}",
        error_html(msg)
    );
    (status, page("API clients", Some(p), &body)).into_response()
}

async fn clients_page(State(state): State<Arc<AppState>>, p: Principal) -> Response {
    if let Some(r) = deny(&p, Permission::UsersView, false) {
        return r;
    }
    clients_html(&state, &p, "", "", StatusCode::OK)
}

/// A new API client (form or JSON).
#[derive(Debug, Deserialize)]
pub struct NewClient {
    name: String,
    role: String,
    #[serde(default)]
    tenant: Option<String>,
}

/// Adds a client for `p`, audited: its token (shown once) and tenant.
fn add_client(
    state: &AppState,
    p: &Principal,
    c: &NewClient,
) -> Result<(String, Option<String>), AccountsError> {
    let result = (|| -> Result<(String, Option<String>), AccountsError> {
        let tenant = tenant_for(p, c.tenant.as_deref()).map_err(|_| AccountsError::NotFound {
            kind: "tenant",
            name: c.tenant.clone().unwrap_or_default(),
        })?;
        may_grant(state, p, &c.role)?;
        let token = state
            .accounts
            .add_client(&c.name, &c.role, tenant.as_deref(), now_ms())?;
        Ok((token, tenant))
    })();
    let (detail, tenant) = match &result {
        Ok((_, t)) => (format!("role {}", c.role), t.clone()),
        Err(e) => (e.to_string(), None),
    };
    audit_by(
        state,
        p,
        "client.created",
        result.is_ok(),
        &c.name,
        tenant.as_deref(),
        &detail,
    );
    result
}

async fn clients_add(State(state): State<Arc<AppState>>, p: Principal, req: Request) -> Response {
    if let Some(r) = deny(&p, Permission::UsersManage, false) {
        return r;
    }
    let c: NewClient = match form_of(req).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    match add_client(&state, &p, &c) {
        Ok((token, _)) => {
            let notice = format!(
                "<div class=\"notice\"><p>API client {} added. Its token is shown only now: \
                 copy it.</p><p><code class=\"token\">{}</code></p></div>",
                esc(&c.name),
                esc(&token)
            );
            clients_html(&state, &p, &notice, "", StatusCode::CREATED)
        }
        Err(e) => clients_html(&state, &p, "", &e.to_string(), status_of(&e)),
    }
}

/// Revokes a client for `p`, audited.
fn revoke_client(state: &AppState, p: &Principal, name: &str) -> Result<(), AccountsError> {
    let tenant = scoped_client(state, p, name)?;
    let result = state.accounts.revoke_client(name);
    let detail = result
        .as_ref()
        .err()
        .map(ToString::to_string)
        .unwrap_or_default();
    audit_by(
        state,
        p,
        "client.revoked",
        result.is_ok(),
        name,
        tenant.as_deref(),
        &detail,
    );
    result
}

async fn clients_revoke(
    State(state): State<Arc<AppState>>,
    p: Principal,
    Path(name): Path<String>,
) -> Response {
    if let Some(r) = deny(&p, Permission::UsersManage, false) {
        return r;
    }
    match revoke_client(&state, &p, &name) {
        Ok(()) => redirect("/clients"),
        Err(e) => clients_html(&state, &p, "", &e.to_string(), status_of(&e)),
    }
}

async fn api_clients(State(state): State<Arc<AppState>>, p: Principal) -> Response {
    if let Some(r) = deny(&p, Permission::UsersView, true) {
        return r;
    }
    match state.accounts.list_clients() {
        Ok(list) => {
            let list: Vec<_> = list
                .into_iter()
                .filter(|c| visible(&p, c.tenant.as_deref()))
                .collect();
            Json(serde_json::json!({ "clients": list })).into_response()
        }
        Err(e) => api_err(&e),
    }
}

async fn api_clients_add(
    State(state): State<Arc<AppState>>,
    p: Principal,
    req: Request,
) -> Response {
    if let Some(r) = deny(&p, Permission::UsersManage, true) {
        return r;
    }
    let c: NewClient = match json_of(req).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    match add_client(&state, &p, &c) {
        Ok((token, tenant)) => (
            StatusCode::CREATED,
            Json(serde_json::json!({ "name": c.name, "role": c.role, "tenant": tenant, "token": token })),
        )
            .into_response(),
        Err(e) => api_err(&e),
    }
}

async fn api_clients_revoke(
    State(state): State<Arc<AppState>>,
    p: Principal,
    Path(name): Path<String>,
) -> Response {
    if let Some(r) = deny(&p, Permission::UsersManage, true) {
        return r;
    }
    match revoke_client(&state, &p, &name) {
        Ok(()) => Json(serde_json::json!({ "revoked": name })).into_response(),
        Err(e) => api_err(&e),
    }
}
