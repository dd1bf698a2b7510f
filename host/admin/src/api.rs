//! The machine API under `/api/` (JSON): plugins and hot swap, endpoints,
//! the tranlog, the SAF queue, keys, the internal hosts' data, TLS reload
//! and the metrics. Every route checks its [`Permission`]; a principal
//! bound to a tenant sees and changes only that tenant's rows (another
//! tenant's id answers 404, as an unknown one does).
//!
//! | route | permission | answer |
//! |---|---|---|
//! | `GET /api/health` | any | [`Health`] |
//! | `GET /api/endpoints` | `endpoints.view` | [`EndpointList`]: each endpoint's link |
//! | `GET /api/plugins` | `plugins.view` | [`PluginList`]: what runs now, settings, metrics |
//! | `GET /api/plugins/{name}` | `plugins.view` | one [`PluginView`] |
//! | `POST /api/plugins/{name}/swap` (body: the component) | `plugins.swap` | [`SwapResult`]; 422 with the load error when refused |
//! | `POST /api/plugins/{name}/rollback` | `plugins.swap` | [`SwapResult`]; 409 when there is no earlier version |
//! | `GET /api/swaps[?limit=N]` | `plugins.view` | the latest [`SwapEntry`]s, oldest first |
//! | `GET /api/metrics` | `metrics.view` | Prometheus text |
//! | `GET /api/tranlog?stan=&rrn=&terminal=&merchant=&last4=&tenant=&from_ms=&to_ms=&limit=` | `transactions.view` | [`TxView`](crate::ops::views::TxView)s, newest first |
//! | `GET /api/tranlog/{id}` | `transactions.detail` (audited) | [`TxLife`](crate::ops::views::TxLife) |
//! | `GET /api/saf?endpoint=&all=&limit=` | `saf.view` | [`SafList`](crate::ops::views::SafList) |
//! | `POST /api/saf/{id}/retry` | `saf.retry` | [`RetryResult`](crate::ops::views::RetryResult) |
//! | `GET /api/keys` | `keys.view` | [`KeysView`](crate::ops::views::KeysView) |
//! | `POST /api/keys/rotate[?tenant=T][&kek=true]` | `keys.rotate` | [`RotationView`](crate::ops::views::RotationView) |
//! | `POST /api/tls/reload` | `config.reload` | every listener's and endpoint's reload result |
//! | `POST /api/loyalty/credit`, `/api/loyalty/balance`, `/api/coupons/issue`; `GET /api/coupons` | `hosts.manage` | the internal hosts ([`crate::ops::hosts`]) |
//!
//! Swap, rollback, SAF retry, key rotation, TLS reload and every
//! transaction detail are written to the audit trail. `X-Switchyard-Actor`
//! names on whose behalf an API client asks (recorded in the swap history).

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Serialize;
use switchyard_runtime::{LoadError, SwapOutcome};

use crate::audit::{AuditEvent, Outcome};
use crate::ops::hosts::{self, HostsError};
use crate::views::{ErrorBody, Health, PluginList, PluginView, SwapEntry, SwapResult};
use crate::{AppState, Permission, Principal, PrincipalKind, RouteSpec};

/// The header naming on whose behalf a swap or rollback is asked.
pub const ACTOR_HEADER: &str = "x-switchyard-actor";
/// Most entries `GET /api/swaps` returns.
const MAX_HISTORY: usize = 1000;

/// The API's routes, for the permission and tenant tests.
pub const ROUTES: &[RouteSpec] = &[
    route("GET", "/api/health", None, false),
    route(
        "GET",
        "/api/endpoints",
        Some(Permission::EndpointsView),
        false,
    ),
    route("GET", "/api/plugins", Some(Permission::PluginsView), false),
    route(
        "GET",
        "/api/plugins/{name}",
        Some(Permission::PluginsView),
        false,
    ),
    route(
        "POST",
        "/api/plugins/{name}/swap",
        Some(Permission::PluginsSwap),
        false,
    ),
    route(
        "POST",
        "/api/plugins/{name}/rollback",
        Some(Permission::PluginsSwap),
        false,
    ),
    route("GET", "/api/swaps", Some(Permission::PluginsView), false),
    route("GET", "/api/metrics", Some(Permission::MetricsView), false),
    route(
        "GET",
        "/api/tranlog",
        Some(Permission::TransactionsView),
        true,
    ),
    route(
        "GET",
        "/api/tranlog/{id}",
        Some(Permission::TransactionsDetail),
        true,
    ),
    route("GET", "/api/saf", Some(Permission::SafView), true),
    route(
        "POST",
        "/api/saf/{id}/retry",
        Some(Permission::SafRetry),
        true,
    ),
    route("GET", "/api/keys", Some(Permission::KeysView), false),
    route(
        "POST",
        "/api/keys/rotate",
        Some(Permission::KeysRotate),
        true,
    ),
    route(
        "POST",
        "/api/tls/reload",
        Some(Permission::ConfigReload),
        false,
    ),
    route(
        "POST",
        "/api/loyalty/credit",
        Some(Permission::HostsManage),
        true,
    ),
    route(
        "POST",
        "/api/loyalty/balance",
        Some(Permission::HostsManage),
        true,
    ),
    route(
        "POST",
        "/api/coupons/issue",
        Some(Permission::HostsManage),
        true,
    ),
    route("GET", "/api/coupons", Some(Permission::HostsManage), true),
];

const fn route(
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

/// The API's router.
pub fn routes(max_upload: usize) -> Router<Arc<AppState>> {
    Router::new()
        .route("/api/health", get(health))
        .route("/api/endpoints", get(endpoints))
        .route("/api/plugins", get(plugins))
        .route("/api/plugins/{name}", get(plugin))
        .route(
            "/api/plugins/{name}/swap",
            post(swap).layer(DefaultBodyLimit::max(max_upload)),
        )
        .route("/api/plugins/{name}/rollback", post(rollback))
        .route("/api/swaps", get(swaps))
        .route("/api/metrics", get(metrics))
        .route("/api/tranlog", get(tranlog_search))
        .route("/api/tranlog/{id}", get(tranlog_show))
        .route("/api/saf", get(saf_list))
        .route("/api/saf/{id}/retry", post(saf_retry))
        .route("/api/keys", get(keys))
        .route("/api/keys/rotate", post(keys_rotate))
        .route("/api/tls/reload", post(tls_reload))
        .route("/api/loyalty/{action}", post(loyalty))
        .route("/api/coupons/issue", post(coupons_issue))
        .route("/api/coupons", get(coupons_list))
}

/// An API failure: a status and a message, answered as `{"error": …}`.
#[derive(Debug)]
pub struct ApiError(pub StatusCode, pub String);

impl ApiError {
    /// 403 for a principal without `p`.
    pub fn forbidden(p: Permission) -> ApiError {
        let name = serde_json::to_value(p)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        ApiError(
            StatusCode::FORBIDDEN,
            format!("this needs permission {name}, which your role does not grant"),
        )
    }

    fn internal(e: anyhow::Error) -> ApiError {
        tracing::warn!(error = %format!("{e:#}"), "admin API: request failed");
        ApiError(StatusCode::INTERNAL_SERVER_ERROR, format!("{e:#}"))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(ErrorBody { error: self.1 })).into_response()
    }
}

type Answer<T> = Result<Json<T>, ApiError>;

/// Refuses `who` unless its role grants `p`.
pub fn need(who: &Principal, p: Permission) -> Result<(), ApiError> {
    match who.can(p) {
        true => Ok(()),
        false => Err(ApiError::forbidden(p)),
    }
}

/// Records `event` by `who` on `resource` in the audit trail (a failure
/// to record is logged, never hidden).
pub fn audit(
    state: &AppState,
    who: &Principal,
    event: &str,
    outcome: Outcome,
    resource: &str,
    tenant: Option<&str>,
    detail: &str,
) {
    let e = AuditEvent {
        actor: &who.name,
        event,
        outcome,
        origin: Some(who.origin),
        resource,
        tenant,
        detail,
    };
    if let Err(err) = state.audit.record(&e) {
        tracing::error!(error = %format!("{err:#}"), event, resource, "the audit trail refused an event");
    }
}

fn ops(state: &AppState) -> Result<&crate::ops::Ops, ApiError> {
    state.ops.as_ref().ok_or_else(|| {
        ApiError(
            StatusCode::SERVICE_UNAVAILABLE,
            "this switch runs without a tranlog".into(),
        )
    })
}

/// The answer to a path no route serves under `/api/`.
pub fn no_route(uri: &axum::http::Uri) -> ApiError {
    ApiError(
        StatusCode::NOT_FOUND,
        format!(
            "no route {} (the API's routes are listed in docs/operator.md)",
            uri.path()
        ),
    )
}

async fn health(State(state): State<Arc<AppState>>, _who: Principal) -> Answer<Health> {
    Ok(Json(Health {
        status: "ok".into(),
        generation: state.registry.current().number,
        plugins: state.registry.list().len(),
        deploy_dir: state.deploy_dir.as_ref().map(|d| d.display().to_string()),
    }))
}

async fn endpoints(
    State(state): State<Arc<AppState>>,
    who: Principal,
) -> Answer<crate::views::EndpointList> {
    need(&who, Permission::EndpointsView)?;
    Ok(Json(crate::views::EndpointList::of(&state.endpoints)))
}

async fn plugins(State(state): State<Arc<AppState>>, who: Principal) -> Answer<PluginList> {
    need(&who, Permission::PluginsView)?;
    Ok(Json(PluginList {
        generation: state.registry.current().number,
        plugins: state.registry.list().iter().map(PluginView::from).collect(),
    }))
}

async fn plugin(
    State(state): State<Arc<AppState>>,
    who: Principal,
    Path(name): Path<String>,
) -> Answer<PluginView> {
    need(&who, Permission::PluginsView)?;
    match state.registry.list().iter().find(|p| p.name == name) {
        Some(p) => Ok(Json(PluginView::from(p))),
        None => Err(ApiError(
            StatusCode::NOT_FOUND,
            LoadError::UnknownPlugin(name).to_string(),
        )),
    }
}

/// The actor a swap is recorded under: the principal, and on whose behalf
/// an API client asks (`X-Switchyard-Actor`, printable, ≤ 64 characters).
fn actor(who: &Principal, headers: &HeaderMap) -> Result<String, ApiError> {
    let Some(value) = headers.get(ACTOR_HEADER) else {
        return Ok(who.name.clone());
    };
    let bad = || {
        ApiError(
            StatusCode::BAD_REQUEST,
            format!("{ACTOR_HEADER}: 1 to 64 printable characters"),
        )
    };
    let text = value.to_str().map_err(|_| bad())?.trim();
    if text.is_empty() || text.len() > 64 || text.chars().any(|c| c.is_control()) {
        return Err(bad());
    }
    Ok(match who.kind {
        PrincipalKind::ApiClient => text.to_owned(),
        PrincipalKind::User => who.name.clone(),
    })
}

/// Plugins are shared by every tenant: only a principal bound to none
/// may swap them.
fn global_only(who: &Principal) -> Result<(), ApiError> {
    match &who.tenant {
        None => Ok(()),
        Some(t) => Err(ApiError(
            StatusCode::FORBIDDEN,
            format!("plugins serve every tenant; a principal of tenant {t} cannot swap them"),
        )),
    }
}

async fn swap(
    State(state): State<Arc<AppState>>,
    who: Principal,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Answer<SwapResult> {
    need(&who, Permission::PluginsSwap)?;
    global_only(&who)?;
    let actor = actor(&who, &headers)?;
    if body.is_empty() {
        return Err(ApiError(
            StatusCode::BAD_REQUEST,
            "the body must be the new version's .wasm component".into(),
        ));
    }
    tracing::info!(plugin = %name, %actor, origin = %who.origin, bytes = body.len(), "admin API: swap asked");
    let registry = state.registry.clone();
    let plugin = name.clone();
    let result = state
        .swapper
        .run(move || registry.swap(&plugin, &body, &actor))
        .await;
    swapped(&state, &who, "plugin.swap", &name, result)
}

async fn rollback(
    State(state): State<Arc<AppState>>,
    who: Principal,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Answer<SwapResult> {
    need(&who, Permission::PluginsSwap)?;
    global_only(&who)?;
    let actor = actor(&who, &headers)?;
    tracing::info!(plugin = %name, %actor, origin = %who.origin, "admin API: rollback asked");
    let registry = state.registry.clone();
    let plugin = name.clone();
    let result = state
        .swapper
        .run(move || registry.rollback(&plugin, &actor))
        .await;
    swapped(&state, &who, "plugin.rollback", &name, result)
}

/// Runs a swap or rollback for the pages too: the answer, audited.
pub(crate) fn swapped(
    state: &AppState,
    who: &Principal,
    event: &str,
    plugin: &str,
    result: Result<Result<SwapOutcome, LoadError>, crate::swapper::SwapperGone>,
) -> Answer<SwapResult> {
    let answer = match result {
        Ok(Ok(outcome)) => Ok(Json(SwapResult::new(&outcome))),
        Ok(Err(e @ LoadError::UnknownPlugin(_))) => {
            Err(ApiError(StatusCode::NOT_FOUND, e.to_string()))
        }
        Ok(Err(e @ LoadError::NoEarlierVersion(_))) => {
            Err(ApiError(StatusCode::CONFLICT, e.to_string()))
        }
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "admin API: swap refused; nothing changed");
            Err(ApiError(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()))
        }
        Err(e) => Err(ApiError(StatusCode::SERVICE_UNAVAILABLE, e.to_string())),
    };
    let (outcome, detail) = match &answer {
        Ok(Json(r)) => (Outcome::Success, format!("now {}", r.new_version)),
        Err(ApiError(_, e)) => (Outcome::Failure, e.clone()),
    };
    audit(state, who, event, outcome, plugin, None, &detail);
    // plugin.swapped and plugin.rolled_back are written to the outbox by
    // the swap history's own transaction (the store); a refused swap
    // changes no state, so its event is emitted here.
    if answer.is_err() {
        let payload = serde_json::json!({ "plugin": plugin, "by": who.name, "detail": detail });
        state
            .webhooks
            .emit("default", "plugin.refused", &payload.to_string());
    }
    answer
}

#[derive(serde::Deserialize)]
struct Limit {
    limit: Option<usize>,
}

async fn swaps(
    State(state): State<Arc<AppState>>,
    who: Principal,
    Query(q): Query<Limit>,
) -> Answer<Vec<SwapEntry>> {
    need(&who, Permission::PluginsView)?;
    let limit = q.limit.unwrap_or(100).min(MAX_HISTORY);
    Ok(Json(
        state
            .registry
            .history(limit)
            .iter()
            .map(SwapEntry::from)
            .collect(),
    ))
}

async fn metrics(State(state): State<Arc<AppState>>, who: Principal) -> Result<Response, ApiError> {
    need(&who, Permission::MetricsView)?;
    let text = crate::views::metrics_text(&state).await;
    Ok(([(CONTENT_TYPE, crate::exposition::CONTENT_TYPE)], text).into_response())
}

/// The query string as text parameters (empty values dropped).
type Params = HashMap<String, String>;

fn text(q: &Params, k: &str) -> Option<String> {
    q.get(k).filter(|v| !v.is_empty()).cloned()
}

fn number(q: &Params, k: &str) -> Result<Option<i64>, ApiError> {
    match text(q, k) {
        None => Ok(None),
        Some(v) => v.parse::<i64>().map(Some).map_err(|_| {
            ApiError(
                StatusCode::BAD_REQUEST,
                format!("{k}: {v:?} is not a number"),
            )
        }),
    }
}

/// The tenant a query may read: the principal's own when it is bound to
/// one (asking for another gives nothing), else what it asked for.
fn tenant_of_query(who: &Principal, asked: Option<String>) -> Result<Option<String>, ()> {
    match (&who.tenant, asked) {
        (None, asked) => Ok(asked),
        (Some(own), None) => Ok(Some(own.clone())),
        (Some(own), Some(asked)) if *own == asked => Ok(Some(asked)),
        (Some(_), Some(_)) => Err(()),
    }
}

/// `GET /api/tranlog`'s query from its parameters.
pub(crate) fn tx_query(
    who: &Principal,
    q: &Params,
) -> Result<Option<switchyard_engine::ports::TxQuery>, ApiError> {
    let Ok(tenant) = tenant_of_query(who, text(q, "tenant")) else {
        return Ok(None);
    };
    Ok(Some(switchyard_engine::ports::TxQuery {
        tenant,
        stan: text(q, "stan"),
        rrn: text(q, "rrn"),
        terminal: text(q, "terminal"),
        merchant: text(q, "merchant"),
        pan_last4: text(q, "last4"),
        from_ms: number(q, "from_ms")?,
        to_ms: number(q, "to_ms")?,
        limit: number(q, "limit")?.map_or(100, |l| l.max(1) as usize),
    }))
}

async fn tranlog_search(
    State(state): State<Arc<AppState>>,
    who: Principal,
    Query(q): Query<Params>,
) -> Answer<Vec<crate::ops::views::TxView>> {
    need(&who, Permission::TransactionsView)?;
    let ops = ops(&state)?;
    match tx_query(&who, &q)? {
        None => Ok(Json(Vec::new())),
        Some(query) => Ok(Json(ops.search(query).await.map_err(ApiError::internal)?)),
    }
}

/// One transaction's life cycle for `who`: `None` when unknown or of a
/// tenant it does not see; every view is audited.
pub(crate) async fn transaction(
    state: &AppState,
    who: &Principal,
    id: &str,
) -> Result<crate::ops::views::TxLife, ApiError> {
    need(who, Permission::TransactionsDetail)?;
    let ops = ops(state)?;
    let unknown = || {
        ApiError(
            StatusCode::NOT_FOUND,
            format!("no transaction {id} in the tranlog"),
        )
    };
    let Ok(tx) = id.parse::<i64>() else {
        return Err(unknown());
    };
    let life = ops.show(tx).await.map_err(ApiError::internal)?;
    match life {
        Some(life) if who.sees_tenant(&life.transaction.tenant) => {
            let tenant = life.transaction.tenant.clone();
            audit(
                state,
                who,
                "transaction.view",
                Outcome::Success,
                id,
                Some(&tenant),
                "",
            );
            Ok(life)
        }
        _ => {
            audit(
                state,
                who,
                "transaction.view",
                Outcome::Failure,
                id,
                None,
                "unknown or not visible",
            );
            Err(unknown())
        }
    }
}

async fn tranlog_show(
    State(state): State<Arc<AppState>>,
    who: Principal,
    Path(id): Path<String>,
) -> Answer<crate::ops::views::TxLife> {
    Ok(Json(transaction(&state, &who, &id).await?))
}

/// The SAF queue as `who` may see it: a tenant-bound principal gets its
/// tenant's entries only, and no per-endpoint totals (they count every
/// tenant).
pub(crate) async fn saf_for(
    state: &AppState,
    who: &Principal,
    q: &Params,
) -> Result<crate::ops::views::SafList, ApiError> {
    need(who, Permission::SafView)?;
    let ops = ops(state)?;
    let filter = switchyard_engine::ports::SafFilter {
        endpoint: text(q, "endpoint"),
        include_done: text(q, "all").as_deref() == Some("true"),
        limit: number(q, "limit")?.map_or(100, |l| l.max(1) as usize),
    };
    let mut list = ops.saf_list(filter).await.map_err(ApiError::internal)?;
    if who.tenant.is_some() {
        list.entries.retain(|e| who.sees_tenant(&e.tenant));
        list.queues.clear();
    }
    Ok(list)
}

async fn saf_list(
    State(state): State<Arc<AppState>>,
    who: Principal,
    Query(q): Query<Params>,
) -> Answer<crate::ops::views::SafList> {
    Ok(Json(saf_for(&state, &who, &q).await?))
}

/// SAF retry for the API and the pages: audited.
pub(crate) async fn retry(
    state: &AppState,
    who: &Principal,
    id: &str,
) -> Result<crate::ops::views::RetryResult, ApiError> {
    need(who, Permission::SafRetry)?;
    let ops = ops(state)?;
    let unknown = || ApiError(StatusCode::NOT_FOUND, format!("no SAF entry {id}"));
    let Ok(n) = id.parse::<i64>() else {
        return Err(unknown());
    };
    let entry = ops
        .saf
        .entry(n)
        .await
        .map_err(|e| ApiError::internal(e.into()))?;
    let Some(entry) = entry.filter(|e| who.sees_tenant(&e.tenant)) else {
        audit(
            state,
            who,
            "saf.retry",
            Outcome::Failure,
            id,
            None,
            "unknown or not visible",
        );
        return Err(unknown());
    };
    let result = ops.saf_retry(n).await.map_err(ApiError::internal)?;
    let detail = if result.retried {
        "due now"
    } else {
        "not pending"
    };
    audit(
        state,
        who,
        "saf.retry",
        Outcome::Success,
        id,
        Some(&entry.tenant),
        detail,
    );
    Ok(result)
}

async fn saf_retry(
    State(state): State<Arc<AppState>>,
    who: Principal,
    Path(id): Path<String>,
) -> Answer<crate::ops::views::RetryResult> {
    Ok(Json(retry(&state, &who, &id).await?))
}

async fn keys(
    State(state): State<Arc<AppState>>,
    who: Principal,
) -> Answer<crate::ops::views::KeysView> {
    need(&who, Permission::KeysView)?;
    let mut view = ops(&state)?.keys().await.map_err(ApiError::internal)?;
    if who.tenant.is_some() {
        view.data_keys.retain(|k| who.sees_tenant(&k.tenant));
    }
    Ok(Json(view))
}

async fn keys_rotate(
    State(state): State<Arc<AppState>>,
    who: Principal,
    Query(q): Query<Params>,
) -> Answer<crate::ops::views::RotationView> {
    need(&who, Permission::KeysRotate)?;
    let kek = text(&q, "kek").as_deref() == Some("true");
    let tenant = match tenant_of_query(&who, text(&q, "tenant")) {
        Ok(t) if !(kek && who.tenant.is_some()) => t,
        _ => {
            audit(
                &state,
                &who,
                "keys.rotate",
                Outcome::Failure,
                "keys",
                None,
                "another tenant's keys",
            );
            return Err(ApiError(
                StatusCode::FORBIDDEN,
                "a principal bound to a tenant rotates only that tenant's data keys".into(),
            ));
        }
    };
    let result = ops(&state)?.rotate(tenant.clone(), kek).await;
    let resource = if kek { "kek" } else { "data keys" };
    match result {
        Ok(view) => {
            let detail = format!("{view:?}");
            audit(
                &state,
                &who,
                "keys.rotate",
                Outcome::Success,
                resource,
                tenant.as_deref(),
                &detail,
            );
            // key.rotated is written to the outbox by the keyring's own
            // transaction (the store).
            Ok(Json(view))
        }
        Err(e) => {
            audit(
                &state,
                &who,
                "keys.rotate",
                Outcome::Failure,
                resource,
                tenant.as_deref(),
                &format!("{e:#}"),
            );
            Err(ApiError::internal(e))
        }
    }
}

async fn tls_reload(
    State(state): State<Arc<AppState>>,
    who: Principal,
) -> Result<Response, ApiError> {
    need(&who, Permission::ConfigReload)?;
    global_only(&who)?;
    let (ok, reloaded) = (state.tls_reload)();
    let outcome = if ok {
        Outcome::Success
    } else {
        Outcome::Failure
    };
    audit(
        &state,
        &who,
        "config.reload",
        outcome,
        "tls",
        None,
        &reloaded.to_string(),
    );
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    Ok((status, Json(serde_json::json!({ "reloaded": reloaded }))).into_response())
}

fn hosts_error(e: &HostsError) -> ApiError {
    let status = match e {
        HostsError::Invalid { .. } => StatusCode::BAD_REQUEST,
        HostsError::Contended(_) => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    if status.is_server_error() {
        tracing::warn!(error = %e, "admin API: internal host operation failed");
    }
    ApiError(status, e.to_string())
}

/// A tenant-bound principal's body must name its own tenant.
fn own_tenant(who: &Principal, tenant: &str) -> Result<(), ApiError> {
    match who.sees_tenant(tenant) {
        true => Ok(()),
        false => Err(ApiError(
            StatusCode::NOT_FOUND,
            format!("no tenant {tenant} for this principal"),
        )),
    }
}

fn check_size(body: &Bytes) -> Result<(), ApiError> {
    match body.len() > hosts::MAX_BODY {
        true => Err(ApiError(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the request body is larger than {} bytes", hosts::MAX_BODY),
        )),
        false => Ok(()),
    }
}

async fn loyalty(
    State(state): State<Arc<AppState>>,
    who: Principal,
    Path(action): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    need(&who, Permission::HostsManage)?;
    let credit = match action.as_str() {
        "credit" => true,
        "balance" => false,
        other => {
            return Err(ApiError(
                StatusCode::NOT_FOUND,
                format!("no route /api/loyalty/{other} (credit, balance)"),
            ));
        }
    };
    check_size(&body)?;
    let ops = ops(&state)?;
    let request = hosts::CardRequest::from_json(&body, credit).map_err(|e| hosts_error(&e))?;
    own_tenant(&who, &request.scope.tenant)?;
    let view = match credit {
        true => ops.loyalty_credit(request).await,
        false => ops.loyalty_balance(request).await,
    }
    .map_err(|e| hosts_error(&e))?;
    Ok(Json(view).into_response())
}

async fn coupons_issue(
    State(state): State<Arc<AppState>>,
    who: Principal,
    body: Bytes,
) -> Answer<hosts::IssuedCoupons> {
    need(&who, Permission::HostsManage)?;
    check_size(&body)?;
    let ops = ops(&state)?;
    let request = hosts::IssueRequest::from_json(&body).map_err(|e| hosts_error(&e))?;
    own_tenant(&who, &request.scope.tenant)?;
    Ok(Json(
        ops.issue_coupons(request)
            .await
            .map_err(|e| hosts_error(&e))?,
    ))
}

async fn coupons_list(
    State(state): State<Arc<AppState>>,
    who: Principal,
    Query(q): Query<Params>,
) -> Answer<hosts::CouponList> {
    need(&who, Permission::HostsManage)?;
    let ops = ops(&state)?;
    let scope = hosts::Scope {
        tenant: text(&q, "tenant").unwrap_or_else(|| hosts::DEFAULT_TENANT.to_owned()),
        plugin: text(&q, "plugin").unwrap_or_else(|| hosts::DEFAULT_COUPON_PLUGIN.to_owned()),
    };
    own_tenant(&who, &scope.tenant)?;
    Ok(Json(
        ops.list_coupons(scope).await.map_err(|e| hosts_error(&e))?,
    ))
}

/// JSON of `value` with `status` (for callers outside axum's `Json`).
pub fn json<T: Serialize>(status: StatusCode, value: &T) -> Response {
    (status, Json(value)).into_response()
}
