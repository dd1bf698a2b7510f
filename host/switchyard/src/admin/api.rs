//! The admin HTTP/1.1 API: routes, the bearer-token check, and the swap and
//! rollback calls handed to the swap thread.
//!
//! | route | answer |
//! |---|---|
//! | `GET /health` | [`Health`] |
//! | `GET /endpoints` | [`EndpointList`]: each endpoint's link (up/down/connecting, since, last error, echoes) |
//! | `GET /plugins` | [`PluginList`]: what runs now, settings, metrics |
//! | `GET /plugins/NAME` | one [`PluginView`] |
//! | `POST /plugins/NAME/swap` (body: the component) | [`SwapResult`]; 422 with the load error when refused |
//! | `POST /plugins/NAME/rollback` | [`SwapResult`]; 409 when there is no earlier version |
//! | `GET /swaps[?limit=N]` | the latest [`SwapEntry`]s, oldest first |
//! | `GET /metrics` | Prometheus text |
//! | `GET /tranlog?stan=&rrn=&terminal=&merchant=&last4=&tenant=&from_ms=&to_ms=&limit=` | the matching [`TxView`](crate::operate::views::TxView)s, newest first |
//! | `GET /tranlog/ID` | one transaction's [`TxLife`](crate::operate::views::TxLife); 404 when unknown |
//! | `GET /saf?endpoint=&all=&limit=` | [`SafList`](crate::operate::views::SafList): depth per endpoint, entries |
//! | `POST /saf/ID/retry` | [`RetryResult`](crate::operate::views::RetryResult) |
//! | `GET /keys` | [`KeysView`](crate::operate::views::KeysView) |
//! | `POST /keys/rotate[?tenant=T][?kek=true]` | [`RotationView`](crate::operate::views::RotationView) |
//! | `POST /loyalty/credit` (body: `{"tenant", "plugin", "card", "points"}`) | [`LoyaltyView`](crate::operate::hosts::LoyaltyView): the new balance |
//! | `POST /loyalty/balance` (body: `{"tenant", "plugin", "card"}`) | [`LoyaltyView`](crate::operate::hosts::LoyaltyView) |
//! | `POST /coupons/issue` (body: `{"tenant", "plugin", "value_minor", "expires", "count"}`) | [`IssuedCoupons`](crate::operate::hosts::IssuedCoupons): the numbers in full |
//! | `GET /coupons?tenant=&plugin=` | [`CouponList`](crate::operate::hosts::CouponList): numbers masked |
//!
//! The internal hosts' bodies are JSON of at most
//! [`MAX_BODY`](crate::operate::hosts::MAX_BODY) bytes (413 beyond; 400
//! naming the field when one is missing, unknown or wrong); `tenant`
//! defaults to `default`, `plugin` to `loyalty` / `coupon`, `count` to 1.
//! Card numbers travel only in bodies, never in a URL.
//!
//! Every request needs `Authorization: Bearer TOKEN` (401 otherwise);
//! `X-Switchyard-Actor` names who asks (default `admin`) in the swap history.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue, WWW_AUTHENTICATE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use serde::Serialize;
use switchyard_runtime::{LoadError, Registry};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::swapper::Swapper;
use super::token;
use super::views::{ErrorBody, Health, PluginList, PluginView, SwapEntry, SwapResult, prometheus};
use crate::operate::Ops;
use crate::operate::hosts::{self, HostsError};

/// The header naming who asks for a swap or rollback.
pub const ACTOR_HEADER: &str = "x-switchyard-actor";
/// The actor recorded when a request names none: the token's holder.
pub const DEFAULT_ACTOR: &str = "admin";
/// Most entries `GET /swaps` returns.
const MAX_HISTORY: usize = 1000;

/// What the API serves.
pub(crate) struct AdminState {
    pub registry: Arc<Registry>,
    pub swapper: Swapper,
    pub token: String,
    pub max_upload: usize,
    pub deploy_dir: Option<PathBuf>,
    /// The life cycle's operator tools (tranlog, SAF, keys).
    pub ops: Option<Ops>,
    /// The endpoints, for their link state.
    pub endpoints: Vec<Arc<switchyard_net::Endpoint>>,
    /// Every listener's and endpoint's TLS, for `POST /tls/reload`.
    pub tls: crate::tls_config::TlsReloader,
    /// Each listener's write counters.
    pub listeners: super::ListenerCounters,
}

/// `GET /endpoints`: every endpoint's link.
#[derive(Debug, Clone, Serialize)]
pub struct EndpointList {
    /// By name.
    pub endpoints: Vec<EndpointView>,
}

/// One endpoint's link state ([`switchyard_net::EndpointState`]).
#[derive(Debug, Clone, Serialize)]
pub struct EndpointView {
    /// The endpoint's name.
    pub name: String,
    /// `host:port`.
    pub address: String,
    /// `idle` (never opened: it opens on first use), `connecting`, `up`
    /// or `down` (reconnecting in the background; requests get RC 91 at
    /// once).
    pub status: String,
    /// When it last came up or went down, ms since the Unix epoch.
    pub since_ms: u64,
    /// Why it last went down or failed to connect.
    pub last_error: Option<String>,
    /// Times the link came up.
    pub connects: u64,
    /// Failed attempts to connect since it was last up.
    pub failed_attempts: u32,
    /// Echoes (0800, DE70 301) sent and answered.
    pub echoes_sent: u64,
    /// Echoes answered.
    pub echoes_answered: u64,
}

impl EndpointView {
    fn of(e: &switchyard_net::Endpoint) -> EndpointView {
        let s = e.state();
        EndpointView {
            name: e.name().to_owned(),
            address: e.options().address.clone(),
            status: s.status.to_string(),
            since_ms: s.since_unix_ms(),
            last_error: s.last_error.clone(),
            connects: s.connects,
            failed_attempts: s.failed_attempts,
            echoes_sent: s.echoes_sent,
            echoes_answered: s.echoes_answered,
        }
    }
}

type Answer = Response<Full<Bytes>>;

/// Serves `listener` until `shutdown`; open connections finish their
/// request and close.
pub(crate) async fn serve(
    listener: TcpListener,
    state: Arc<AdminState>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
) {
    loop {
        let (stream, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "admin API: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let state = state.clone();
        let shutdown = shutdown.clone();
        tracker.spawn(async move {
            let service = service_fn(move |req| {
                let state = state.clone();
                async move { Ok::<_, Infallible>(handle(&state, peer, req).await) }
            });
            let mut builder = http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(Duration::from_secs(30));
            let conn = builder.serve_connection(TokioIo::new(stream), service);
            let mut conn = std::pin::pin!(conn);
            tokio::select! {
                r = conn.as_mut() => {
                    if let Err(e) = r {
                        tracing::debug!(%peer, error = %e, "admin API connection ended");
                    }
                }
                _ = shutdown.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
        });
    }
}

async fn handle(state: &AdminState, peer: SocketAddr, req: Request<Incoming>) -> Answer {
    if !authorized(state, &req) {
        tracing::warn!(%peer, method = %req.method(), path = req.uri().path(),
            "admin API: request without the right token refused");
        let mut answer = error(
            StatusCode::UNAUTHORIZED,
            "missing or wrong bearer token (Authorization: Bearer TOKEN, from the switch's admin token file)",
        );
        answer.headers_mut().insert(
            WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"switchyard\""),
        );
        return answer;
    }
    let path: Vec<String> = req
        .uri()
        .path()
        .split('/')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    let segments: Vec<&str> = path.iter().map(String::as_str).collect();
    match (req.method().clone(), segments.as_slice()) {
        (Method::GET, ["health"]) => {
            let generation = state.registry.current().number;
            json(
                StatusCode::OK,
                &Health {
                    status: "ok".into(),
                    generation,
                    plugins: state.registry.list().len(),
                    deploy_dir: state.deploy_dir.as_ref().map(|d| d.display().to_string()),
                },
            )
        }
        (Method::POST, ["tls", "reload"]) => {
            let reloaded = state.tls.reload();
            let status = match reloaded.iter().all(|r| r.ok) {
                true => StatusCode::OK,
                false => StatusCode::UNPROCESSABLE_ENTITY,
            };
            json(status, &serde_json::json!({ "reloaded": reloaded }))
        }
        (Method::GET, ["endpoints"]) => json(
            StatusCode::OK,
            &EndpointList {
                endpoints: state
                    .endpoints
                    .iter()
                    .map(|e| EndpointView::of(e))
                    .collect(),
            },
        ),
        (Method::GET, ["plugins"]) => {
            let generation = state.registry.current().number;
            let plugins = state.registry.list().iter().map(PluginView::from).collect();
            json(
                StatusCode::OK,
                &PluginList {
                    generation,
                    plugins,
                },
            )
        }
        (Method::GET, ["plugins", name]) => {
            match state.registry.list().iter().find(|p| p.name == *name) {
                Some(p) => json(StatusCode::OK, &PluginView::from(p)),
                None => error(
                    StatusCode::NOT_FOUND,
                    &LoadError::UnknownPlugin((*name).into()).to_string(),
                ),
            }
        }
        (Method::POST, ["plugins", name, "swap"]) => {
            let name = (*name).to_owned();
            let actor = match actor(&req) {
                Ok(a) => a,
                Err(e) => return error(StatusCode::BAD_REQUEST, &e),
            };
            let body = match Limited::new(req.into_body(), state.max_upload)
                .collect()
                .await
            {
                Ok(b) => b.to_bytes(),
                Err(e) => {
                    return if e.is::<http_body_util::LengthLimitError>() {
                        error(
                            StatusCode::PAYLOAD_TOO_LARGE,
                            &format!(
                                "the component is larger than {} bytes (admin.max_upload_mib)",
                                state.max_upload
                            ),
                        )
                    } else {
                        error(StatusCode::BAD_REQUEST, &format!("reading the body: {e}"))
                    };
                }
            };
            if body.is_empty() {
                return error(
                    StatusCode::BAD_REQUEST,
                    "the body must be the new version's .wasm component",
                );
            }
            tracing::info!(plugin = %name, %actor, %peer, bytes = body.len(), "admin API: swap asked");
            let registry = state.registry.clone();
            let result = state
                .swapper
                .run(move || registry.swap(&name, &body, &actor))
                .await;
            swapped(result)
        }
        (Method::POST, ["plugins", name, "rollback"]) => {
            let name = (*name).to_owned();
            let actor = match actor(&req) {
                Ok(a) => a,
                Err(e) => return error(StatusCode::BAD_REQUEST, &e),
            };
            tracing::info!(plugin = %name, %actor, %peer, "admin API: rollback asked");
            let registry = state.registry.clone();
            let result = state
                .swapper
                .run(move || registry.rollback(&name, &actor))
                .await;
            swapped(result)
        }
        (Method::GET, ["swaps"]) => {
            let limit = req
                .uri()
                .query()
                .into_iter()
                .flat_map(|q| q.split('&'))
                .find_map(|kv| kv.strip_prefix("limit="))
                .and_then(|v| v.parse::<usize>().ok())
                .unwrap_or(100)
                .min(MAX_HISTORY);
            let history: Vec<SwapEntry> = state
                .registry
                .history(limit)
                .iter()
                .map(SwapEntry::from)
                .collect();
            json(StatusCode::OK, &history)
        }
        (method, ["tranlog" | "saf" | "keys", ..]) => {
            let query = query_params(&req);
            operations(state, method, &segments, &query).await
        }
        (_, ["loyalty" | "coupons", ..]) => internal_hosts(state, req, &segments).await,
        (Method::GET, ["metrics"]) => {
            let mut text = prometheus(state.registry.current().number, &state.registry.list());
            if let Some(ops) = &state.ops
                && let Ok(queues) = ops.saf.stats().await
            {
                text.push_str(&super::views::saf_prometheus(&queues));
            }
            text.push_str(&super::views::listener_prometheus(&state.listeners));
            let mut answer = Response::new(Full::new(Bytes::from(text)));
            answer.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            answer
        }
        (_, ["health" | "plugins" | "swaps" | "metrics" | "endpoints"])
        | (_, ["plugins", _])
        | (_, ["plugins", _, "swap" | "rollback"]) => error(
            StatusCode::METHOD_NOT_ALLOWED,
            &format!("{} is not allowed on {}", req.method(), req.uri().path()),
        ),
        _ => error(
            StatusCode::NOT_FOUND,
            &format!(
                "no route {} (routes: GET /health, /endpoints, /plugins, /plugins/NAME, /swaps, /metrics, \
                 /tranlog, /tranlog/ID, /saf, /keys, /coupons; POST /plugins/NAME/swap, \
                 /plugins/NAME/rollback, /saf/ID/retry, /keys/rotate, /loyalty/credit, \
                 /loyalty/balance, /coupons/issue)",
                req.uri().path()
            ),
        ),
    }
}

/// The query string's parameters, percent-decoded.
fn query_params(req: &Request<Incoming>) -> std::collections::HashMap<String, String> {
    let decode = |s: &str| {
        let bytes = s.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'%' if i + 2 < bytes.len() => {
                    let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                    match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                        Some(b) => {
                            out.push(b);
                            i += 3;
                            continue;
                        }
                        None => out.push(b'%'),
                    }
                }
                b'+' => out.push(b' '),
                b => out.push(b),
            }
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    };
    req.uri()
        .query()
        .into_iter()
        .flat_map(|q| q.split('&'))
        .filter_map(|kv| kv.split_once('=').or(Some((kv, ""))))
        .filter(|(k, _)| !k.is_empty())
        .map(|(k, v)| (decode(k), decode(v)))
        .collect()
}

/// The life cycle's routes: `/tranlog`, `/saf`, `/keys`.
async fn operations(
    state: &AdminState,
    method: Method,
    segments: &[&str],
    query: &std::collections::HashMap<String, String>,
) -> Answer {
    let Some(ops) = &state.ops else {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "this switch runs without a tranlog",
        );
    };
    let text = |k: &str| query.get(k).filter(|v| !v.is_empty()).cloned();
    let number = |k: &str| query.get(k).and_then(|v| v.parse::<i64>().ok());
    let limit = number("limit").map_or(100, |l| l.max(1) as usize);
    let result: anyhow::Result<Answer> = async {
        Ok(match (method, segments) {
            (Method::GET, ["tranlog"]) => {
                let q = switchyard_engine::ports::TxQuery {
                    tenant: text("tenant"),
                    stan: text("stan"),
                    rrn: text("rrn"),
                    terminal: text("terminal"),
                    merchant: text("merchant"),
                    pan_last4: text("last4"),
                    from_ms: number("from_ms"),
                    to_ms: number("to_ms"),
                    limit,
                };
                json(StatusCode::OK, &ops.search(q).await?)
            }
            (Method::GET, ["tranlog", id]) => match id.parse::<i64>() {
                Err(_) => error(
                    StatusCode::BAD_REQUEST,
                    &format!("{id:?} is not a transaction id"),
                ),
                Ok(id) => match ops.show(id).await? {
                    Some(life) => json(StatusCode::OK, &life),
                    None => error(
                        StatusCode::NOT_FOUND,
                        &format!("no transaction {id} in the tranlog"),
                    ),
                },
            },
            (Method::GET, ["saf"]) => {
                let filter = switchyard_engine::ports::SafFilter {
                    endpoint: text("endpoint"),
                    include_done: text("all").as_deref() == Some("true"),
                    limit,
                };
                json(StatusCode::OK, &ops.saf_list(filter).await?)
            }
            (Method::POST, ["saf", id, "retry"]) => match id.parse::<i64>() {
                Err(_) => error(
                    StatusCode::BAD_REQUEST,
                    &format!("{id:?} is not an entry id"),
                ),
                Ok(id) => json(StatusCode::OK, &ops.saf_retry(id).await?),
            },
            (Method::GET, ["keys"]) => json(StatusCode::OK, &ops.keys().await?),
            (Method::POST, ["keys", "rotate"]) => {
                let kek = text("kek").as_deref() == Some("true");
                json(StatusCode::OK, &ops.rotate(text("tenant"), kek).await?)
            }
            (m, path) => error(
                StatusCode::NOT_FOUND,
                &format!("no route {m} /{}", path.join("/")),
            ),
        })
    }
    .await;
    result.unwrap_or_else(|e| error(StatusCode::INTERNAL_SERVER_ERROR, &format!("{e:#}")))
}

/// The internal hosts' routes: `/loyalty/credit`, `/loyalty/balance`,
/// `/coupons/issue`, `/coupons`.
async fn internal_hosts(state: &AdminState, req: Request<Incoming>, segments: &[&str]) -> Answer {
    let Some(ops) = &state.ops else {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "this switch runs without a store",
        );
    };
    let method = req.method().clone();
    let result = match (&method, segments) {
        (&Method::GET, ["coupons"]) => {
            let query = query_params(&req);
            let text = |k: &str, default: &str| {
                query
                    .get(k)
                    .filter(|v| !v.is_empty())
                    .map_or_else(|| default.to_owned(), Clone::clone)
            };
            let scope = hosts::Scope {
                tenant: text("tenant", hosts::DEFAULT_TENANT),
                plugin: text("plugin", hosts::DEFAULT_COUPON_PLUGIN),
            };
            ops.list_coupons(scope)
                .await
                .map(|v| json(StatusCode::OK, &v))
        }
        (&Method::POST, ["loyalty", action @ ("credit" | "balance")]) => {
            let credit = *action == "credit";
            let body = match json_body(req).await {
                Ok(b) => b,
                Err(answer) => return answer,
            };
            match hosts::CardRequest::from_json(&body, credit) {
                Ok(r) if credit => ops.loyalty_credit(r).await,
                Ok(r) => ops.loyalty_balance(r).await,
                Err(e) => Err(e),
            }
            .map(|v| json(StatusCode::OK, &v))
        }
        (&Method::POST, ["coupons", "issue"]) => {
            let body = match json_body(req).await {
                Ok(b) => b,
                Err(answer) => return answer,
            };
            match hosts::IssueRequest::from_json(&body) {
                Ok(r) => ops.issue_coupons(r).await.map(|v| json(StatusCode::OK, &v)),
                Err(e) => Err(e),
            }
        }
        (_, ["coupons"] | ["coupons", "issue"] | ["loyalty", "credit" | "balance"]) => {
            return error(
                StatusCode::METHOD_NOT_ALLOWED,
                &format!("{method} is not allowed on /{}", segments.join("/")),
            );
        }
        _ => {
            return error(
                StatusCode::NOT_FOUND,
                &format!(
                    "no route {method} /{} (POST /loyalty/credit, /loyalty/balance, \
                     /coupons/issue; GET /coupons)",
                    segments.join("/")
                ),
            );
        }
    };
    result.unwrap_or_else(|e| hosts_error(&e))
}

/// A JSON request body of at most [`hosts::MAX_BODY`] bytes.
async fn json_body(req: Request<Incoming>) -> Result<Bytes, Answer> {
    match Limited::new(req.into_body(), hosts::MAX_BODY)
        .collect()
        .await
    {
        Ok(b) => Ok(b.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(error(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!("the request body is larger than {} bytes", hosts::MAX_BODY),
        )),
        Err(e) => Err(error(
            StatusCode::BAD_REQUEST,
            &format!("reading the body: {e}"),
        )),
    }
}

/// The answer to a failed internal-host operation (no card data in it).
fn hosts_error(e: &HostsError) -> Answer {
    let status = match e {
        HostsError::Invalid { .. } => StatusCode::BAD_REQUEST,
        HostsError::Contended(_) => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    if status.is_server_error() {
        tracing::warn!(error = %e, "admin API: internal host operation failed");
    }
    error(status, &e.to_string())
}

fn authorized(state: &AdminState, req: &Request<Incoming>) -> bool {
    req.headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|t| token::matches(t.trim().as_bytes(), state.token.as_bytes()))
}

/// The request's actor: printable, at most 64 characters.
fn actor(req: &Request<Incoming>) -> Result<String, String> {
    let Some(value) = req.headers().get(ACTOR_HEADER) else {
        return Ok(DEFAULT_ACTOR.into());
    };
    let text = value
        .to_str()
        .map_err(|_| format!("{ACTOR_HEADER}: must be printable ASCII"))?
        .trim();
    if text.is_empty() || text.len() > 64 || text.chars().any(|c| c.is_control()) {
        return Err(format!("{ACTOR_HEADER}: 1 to 64 printable characters"));
    }
    Ok(text.to_owned())
}

fn swapped(
    result: Result<Result<switchyard_runtime::SwapOutcome, LoadError>, super::swapper::SwapperGone>,
) -> Answer {
    match result {
        Ok(Ok(outcome)) => json(StatusCode::OK, &SwapResult::new(&outcome)),
        Ok(Err(e @ LoadError::UnknownPlugin(_))) => error(StatusCode::NOT_FOUND, &e.to_string()),
        Ok(Err(e @ LoadError::NoEarlierVersion(_))) => error(StatusCode::CONFLICT, &e.to_string()),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "admin API: swap refused; nothing changed");
            error(StatusCode::UNPROCESSABLE_ENTITY, &e.to_string())
        }
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
    }
}

fn json<T: Serialize>(status: StatusCode, value: &T) -> Answer {
    let body = serde_json::to_vec_pretty(value).unwrap_or_else(|e| {
        format!("{{\"error\": \"cannot encode the answer: {e}\"}}").into_bytes()
    });
    let mut answer = Response::new(Full::new(Bytes::from(body)));
    *answer.status_mut() = status;
    answer
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    answer
}

fn error(status: StatusCode, message: &str) -> Answer {
    json(
        status,
        &ErrorBody {
            error: message.to_owned(),
        },
    )
}
