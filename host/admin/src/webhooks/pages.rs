//! The webhooks' API and the `/webhooks` page (permission
//! `webhooks.manage`; a principal bound to a tenant sees and changes only
//! subscriptions of its tenant, another tenant's id answers 404).
//!
//! | route | answer |
//! |---|---|
//! | `GET /api/webhooks` | [`SubscriptionView`]s (never a secret) |
//! | `POST /api/webhooks` (JSON [`NewSubscription`]) | [`Created`]: the secret, shown once |
//! | `DELETE /api/webhooks/{id}` | 204; 409 for one of the config's |
//! | `GET /api/webhooks/deliveries?subscription=&limit=` | [`DeliveryView`]s, newest first |
//! | `GET /webhooks` | the page: subscriptions, their recent deliveries, add, delete |
//! | `POST /webhooks` (form `name, url, tenant, events, csrf`) | adds, shows the secret once |
//! | `POST /webhooks/{id}/delete` (form `csrf`) | deletes, back to the page |

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{delete, get, post};
use axum::{Form, Json, Router};
use serde::{Deserialize, Serialize};
use switchyard_store::outbox::{DeliveryRow, SubscriptionRow};

use super::CreateError;
use crate::api::{ApiError, need};
use crate::audit::Outcome;
use crate::pages::layout::{esc, page};
use crate::{AppState, Permission, Principal, RouteSpec};

const fn route(method: &'static str, path: &'static str) -> RouteSpec {
    RouteSpec {
        method,
        path,
        permission: Some(Permission::WebhooksManage),
        tenant_scoped: true,
    }
}

/// The webhooks' routes, for the permission and tenant tests.
pub const ROUTES: &[RouteSpec] = &[
    route("GET", "/api/webhooks"),
    route("POST", "/api/webhooks"),
    route("DELETE", "/api/webhooks/{id}"),
    route("GET", "/api/webhooks/deliveries"),
    route("GET", "/webhooks"),
    route("POST", "/webhooks"),
    route("POST", "/webhooks/{id}/delete"),
];

/// The webhooks' router.
pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/api/webhooks", get(api_list).post(api_create))
        .route("/api/webhooks/{id}", delete(api_delete))
        .route("/api/webhooks/deliveries", get(api_deliveries))
        .route("/webhooks", get(page_list).post(page_create))
        .route("/webhooks/{id}/delete", post(page_delete))
}

/// A subscription as the API shows it (no secret).
#[derive(Debug, Clone, Serialize)]
pub struct SubscriptionView {
    /// Its id.
    pub id: i64,
    /// Its name.
    pub name: String,
    /// Where deliveries go.
    pub url: String,
    /// Its tenant (`*`: every tenant's events).
    pub tenant: String,
    /// The event types.
    pub events: Vec<String>,
    /// `config` or `api`.
    pub source: String,
    /// Disabled (the receiver answered 410).
    pub disabled: bool,
}

impl From<&SubscriptionRow> for SubscriptionView {
    fn from(s: &SubscriptionRow) -> SubscriptionView {
        SubscriptionView {
            id: s.id,
            name: s.name.clone(),
            url: s.url.clone(),
            tenant: s.tenant.clone(),
            events: serde_json::from_str(&s.events).unwrap_or_default(),
            source: s.source.clone(),
            disabled: s.disabled,
        }
    }
}

/// A delivery as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct DeliveryView {
    /// Its id.
    pub id: i64,
    /// The event (`msg_…`).
    pub event_id: String,
    /// The event type.
    pub event_type: String,
    /// The subscription.
    pub subscription: i64,
    /// Attempts made.
    pub attempts: i64,
    /// `pending`, `delivered`, `failed` or `disabled`.
    pub state: String,
    /// When the next attempt is due (pending), ms.
    pub next_ms: i64,
    /// The last HTTP status.
    pub last_status: Option<i64>,
    /// The last error.
    pub last_error: Option<String>,
    /// When it last changed, ms.
    pub updated_ms: i64,
}

impl From<DeliveryRow> for DeliveryView {
    fn from(d: DeliveryRow) -> DeliveryView {
        DeliveryView {
            id: d.id,
            event_id: d.event_id,
            event_type: d.event_type,
            subscription: d.subscription,
            attempts: d.attempts,
            state: d.state,
            next_ms: d.next_ms,
            last_status: d.last_status,
            last_error: d.last_error,
            updated_ms: d.updated_ms,
        }
    }
}

/// `POST /api/webhooks`'s body.
#[derive(Debug, Clone, Deserialize)]
pub struct NewSubscription {
    /// Its name.
    pub name: String,
    /// Where deliveries go.
    pub url: String,
    /// Its tenant (default: the principal's, else `default`).
    #[serde(default)]
    pub tenant: Option<String>,
    /// The event types (`["*"]`: all).
    pub events: Vec<String>,
}

/// `POST /api/webhooks`'s answer.
#[derive(Debug, Clone, Serialize)]
pub struct Created {
    /// The new subscription.
    pub subscription: SubscriptionView,
    /// Its secret (`whsec_…`): shown this once, never again.
    pub secret: String,
}

/// `GET /api/webhooks/deliveries`'s query.
#[derive(Debug, Clone, Deserialize)]
pub struct DeliveryQuery {
    /// Only this subscription's.
    pub subscription: Option<i64>,
    /// At most this many (default 100).
    pub limit: Option<usize>,
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    tracing::warn!(error = %e, "webhooks API: request failed");
    ApiError(
        StatusCode::INTERNAL_SERVER_ERROR,
        "the webhook tables failed".into(),
    )
}

fn not_found(id: i64) -> ApiError {
    ApiError(
        StatusCode::NOT_FOUND,
        format!("no webhook subscription {id}"),
    )
}

/// The subscriptions `who` sees.
fn visible(state: &AppState, who: &Principal) -> Result<Vec<SubscriptionRow>, ApiError> {
    Ok(state
        .webhooks
        .subscriptions()
        .map_err(internal)?
        .into_iter()
        .filter(|s| who.sees_tenant(&s.tenant))
        .collect())
}

fn audit(
    state: &AppState,
    who: &Principal,
    event: &str,
    outcome: Outcome,
    resource: &str,
    tenant: &str,
    detail: &str,
) {
    crate::api::audit(
        state,
        who,
        event,
        outcome,
        resource,
        Some(tenant).filter(|t| *t != "*"),
        detail,
    );
}

async fn api_list(
    State(state): State<Arc<AppState>>,
    who: Principal,
) -> Result<Json<Vec<SubscriptionView>>, ApiError> {
    need(&who, Permission::WebhooksManage)?;
    Ok(Json(
        visible(&state, &who)?
            .iter()
            .map(SubscriptionView::from)
            .collect(),
    ))
}

/// Creates `new` for `who`.
fn create(state: &AppState, who: &Principal, new: &NewSubscription) -> Result<Created, ApiError> {
    let tenant = match (&who.tenant, &new.tenant) {
        (Some(own), Some(t)) if t != own => {
            return Err(ApiError(
                StatusCode::FORBIDDEN,
                format!("you may subscribe to tenant {own}'s events only"),
            ));
        }
        (Some(own), _) => own.clone(),
        (None, Some(t)) if !t.is_empty() => t.clone(),
        (None, _) => "default".into(),
    };
    let created = state
        .webhooks
        .create(new.name.trim(), new.url.trim(), &tenant, &new.events);
    let (id, secret) = match created {
        Ok(c) => c,
        Err(e) => {
            audit(
                state,
                who,
                "webhook.created",
                Outcome::Failure,
                &new.name,
                &tenant,
                &e.to_string(),
            );
            return Err(match e {
                CreateError::Db(e) => internal(e),
                CreateError::Taken(_) => ApiError(StatusCode::CONFLICT, e.to_string()),
                e => ApiError(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()),
            });
        }
    };
    let detail = format!("{} → {}", new.events.join(","), new.url);
    audit(
        state,
        who,
        "webhook.created",
        Outcome::Success,
        &new.name,
        &tenant,
        &detail,
    );
    let subscription = SubscriptionView {
        id,
        name: new.name.trim().into(),
        url: new.url.trim().into(),
        tenant,
        events: new.events.clone(),
        source: "api".into(),
        disabled: false,
    };
    Ok(Created {
        subscription,
        secret,
    })
}

async fn api_create(
    State(state): State<Arc<AppState>>,
    who: Principal,
    new: Result<Json<NewSubscription>, axum::extract::rejection::JsonRejection>,
) -> Result<(StatusCode, Json<Created>), ApiError> {
    // The permission first: a principal without it learns nothing of the
    // body's form.
    need(&who, Permission::WebhooksManage)?;
    let Json(new) = new.map_err(|e| ApiError(StatusCode::UNPROCESSABLE_ENTITY, e.body_text()))?;
    Ok((StatusCode::CREATED, Json(create(&state, &who, &new)?)))
}

/// Deletes subscription `id` for `who` (another tenant's: 404).
fn remove(state: &AppState, who: &Principal, id: i64) -> Result<(), ApiError> {
    let Some(sub) = visible(state, who)?.into_iter().find(|s| s.id == id) else {
        return Err(not_found(id));
    };
    match state.webhooks.delete(id) {
        Ok(true) => {
            audit(
                state,
                who,
                "webhook.deleted",
                Outcome::Success,
                &sub.name,
                &sub.tenant,
                &sub.url,
            );
            Ok(())
        }
        Ok(false) => Err(not_found(id)),
        Err(CreateError::FromConfig(name)) => {
            audit(
                state,
                who,
                "webhook.deleted",
                Outcome::Failure,
                &name,
                &sub.tenant,
                "from the config",
            );
            Err(ApiError(
                StatusCode::CONFLICT,
                format!("subscription {name:?} comes from the config: remove it there"),
            ))
        }
        Err(e) => Err(internal(e)),
    }
}

async fn api_delete(
    State(state): State<Arc<AppState>>,
    who: Principal,
    Path(id): Path<i64>,
) -> Result<StatusCode, ApiError> {
    need(&who, Permission::WebhooksManage)?;
    remove(&state, &who, id)?;
    Ok(StatusCode::NO_CONTENT)
}

/// The latest deliveries `who` sees.
fn deliveries_of(
    state: &AppState,
    who: &Principal,
    subscription: Option<i64>,
    limit: usize,
) -> Result<Vec<DeliveryView>, ApiError> {
    let subs = visible(state, who)?;
    if let Some(id) = subscription
        && !subs.iter().any(|s| s.id == id)
    {
        return Err(not_found(id));
    }
    let rows = state
        .webhooks
        .deliveries(subscription, limit)
        .map_err(internal)?;
    Ok(rows
        .into_iter()
        .filter(|d| subs.iter().any(|s| s.id == d.subscription))
        .map(DeliveryView::from)
        .collect())
}

async fn api_deliveries(
    State(state): State<Arc<AppState>>,
    who: Principal,
    Query(q): Query<DeliveryQuery>,
) -> Result<Json<Vec<DeliveryView>>, ApiError> {
    need(&who, Permission::WebhooksManage)?;
    Ok(Json(deliveries_of(
        &state,
        &who,
        q.subscription,
        q.limit.unwrap_or(100),
    )?))
}

/// The page's add form.
#[derive(Debug, Clone, Deserialize)]
pub struct AddForm {
    /// The name.
    pub name: String,
    /// The URL.
    pub url: String,
    /// The tenant (ignored for a tenant-bound principal).
    #[serde(default)]
    pub tenant: String,
    /// Event types, comma- or space-separated.
    pub events: String,
}

fn forbidden_page(who: &Principal) -> Response {
    let body = "<p>Your role does not grant <code>webhooks.manage</code>.</p>";
    (StatusCode::FORBIDDEN, page("Webhooks", Some(who), body)).into_response()
}

async fn page_list(State(state): State<Arc<AppState>>, who: Principal) -> Response {
    if !who.can(Permission::WebhooksManage) {
        return forbidden_page(&who);
    }
    render(&state, &who, None).into_response()
}

async fn page_create(
    State(state): State<Arc<AppState>>,
    who: Principal,
    form: Result<Form<AddForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    if !who.can(Permission::WebhooksManage) {
        return forbidden_page(&who);
    }
    let Form(form) = match form {
        Ok(f) => f,
        Err(e) => return (StatusCode::BAD_REQUEST, e.body_text()).into_response(),
    };
    let new = NewSubscription {
        name: form.name,
        url: form.url,
        tenant: Some(form.tenant.trim().to_owned()).filter(|t| !t.is_empty()),
        events: form
            .events
            .split([',', ' '])
            .filter(|e| !e.is_empty())
            .map(str::to_owned)
            .collect(),
    };
    let note = match create(&state, &who, &new) {
        Ok(c) => format!(
            "<p class=\"ok\">Subscription {} added. Its secret, shown this once: \
             <code id=\"secret\">{}</code></p>",
            esc(&c.subscription.name),
            esc(&c.secret)
        ),
        Err(ApiError(_, msg)) => format!("<p class=\"error\">{}</p>", esc(&msg)),
    };
    render(&state, &who, Some(&note)).into_response()
}

async fn page_delete(
    State(state): State<Arc<AppState>>,
    who: Principal,
    Path(id): Path<i64>,
) -> Response {
    if !who.can(Permission::WebhooksManage) {
        return forbidden_page(&who);
    }
    match remove(&state, &who, id) {
        Ok(()) => Redirect::to("/webhooks").into_response(),
        Err(ApiError(status, msg)) => {
            let note = format!("<p class=\"error\">{}</p>", esc(&msg));
            (status, render(&state, &who, Some(&note))).into_response()
        }
    }
}

/// The page: a note (after an action), the subscriptions with their
/// latest deliveries, the add form.
fn render(state: &AppState, who: &Principal, note: Option<&str>) -> Html<String> {
    let csrf = esc(who.csrf.as_deref().unwrap_or(""));
    let mut body = note.unwrap_or("").to_owned();
    let subs = visible(state, who).unwrap_or_default();
    if subs.is_empty() {
        body.push_str("<p>No subscriptions.</p>");
    }
    for s in &subs {
        body.push_str(&subscription_html(state, who, s, &csrf));
    }
    body.push_str(&format!(
        "<h2>Add a subscription</h2><form method=\"post\" action=\"/webhooks\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
         <label>Name <input name=\"name\" required maxlength=\"100\"></label> \
         <label>URL <input name=\"url\" required placeholder=\"https://client.example/hooks\"></label> \
         <label>Tenant <input name=\"tenant\" value=\"{}\"></label> \
         <label>Events <input name=\"events\" required value=\"*\" \
         title=\"comma-separated: reversal.escalated, endpoint.down, … or *\"></label> \
         <button>Add</button></form>",
        esc(who.tenant.as_deref().unwrap_or("default"))
    ));
    page("Webhooks", Some(who), &body)
}

fn subscription_html(state: &AppState, who: &Principal, s: &SubscriptionRow, csrf: &str) -> String {
    let v = SubscriptionView::from(s);
    let status = if v.disabled { "disabled" } else { "enabled" };
    let delete = if v.source == "api" {
        format!(
            "<form method=\"post\" action=\"/webhooks/{}/delete\">\
             <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\"><button>Delete</button></form>",
            v.id
        )
    } else {
        "<p><small>From the config.</small></p>".to_owned()
    };
    let mut rows = String::new();
    for d in deliveries_of(state, who, Some(s.id), 10).unwrap_or_default() {
        rows.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&d.event_id),
            esc(&d.event_type),
            esc(&d.state),
            d.attempts,
            d.last_status.map_or_else(String::new, |s| s.to_string()),
            esc(d.last_error.as_deref().unwrap_or(""))
        ));
    }
    format!(
        "<section class=\"webhook\"><h2>{}</h2><p><code>{}</code> · tenant {} · {} · {}</p>\
         <p>Events: {}</p>{delete}<table><thead><tr><th>Event</th><th>Type</th><th>State</th>\
         <th>Attempts</th><th>Status</th><th>Error</th></tr></thead><tbody>{rows}</tbody></table></section>",
        esc(&v.name),
        esc(&v.url),
        esc(&v.tenant),
        esc(&v.source),
        status,
        esc(&v.events.join(", "))
    )
}
