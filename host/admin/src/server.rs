//! The operator plane of a running switch: the HTTPS server (axum over
//! rustls), the deploy watcher and the swap thread; all stop when the
//! [`Admin`] is stopped or dropped.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use axum::Router;
use axum::extract::{ConnectInfo, Request};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt as _;

use crate::AppState;
use crate::deploy::DeployWatcher;
use crate::swapper::Swapper;

/// Most admin connections served at once; more wait in the kernel's
/// backlog.
const MAX_CONNECTIONS: usize = 256;
/// How long a client has for its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a client has to send a request's headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(30);

/// The operator plane's settings, validated from `[admin]`.
#[derive(Debug, Clone)]
pub struct AdminPlan {
    /// Where the server listens.
    pub bind: SocketAddr,
    /// The switch's data directory (keys, the self-signed certificate).
    pub data_dir: PathBuf,
    /// The CLI's bearer token (API client `cli`, role `admin`).
    pub token_path: PathBuf,
    /// The configured certificate and key; `None`: self-signed.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// The deploy directory, if any.
    pub deploy_dir: Option<PathBuf>,
    /// How often it is scanned.
    pub deploy_poll: Duration,
    /// Largest component a swap may carry, bytes.
    pub max_upload: usize,
    /// Password, lockout, session and TOTP rules.
    pub policy: crate::accounts::Policy,
    /// Webhook subscriptions and retry schedule.
    pub webhooks: crate::webhooks::Settings,
    /// Audit events that also become webhooks.
    pub alerts: Vec<crate::audit::AlertRule>,
    /// This node's id.
    pub node: String,
}

/// What the switch hands the operator plane: its running parts.
pub struct Parts {
    /// The plugins.
    pub registry: Arc<switchyard_runtime::Registry>,
    /// The tranlog, SAF, keys and kv tools.
    pub ops: Option<crate::ops::Ops>,
    /// The endpoints.
    pub endpoints: Vec<Arc<switchyard_net::Endpoint>>,
    /// The listeners' write counters.
    pub listeners: crate::state::ListenerCounters,
    /// TLS reload.
    pub tls_reload: crate::state::TlsReload,
    /// The switch's metrics.
    pub metrics: Arc<switchyard_metrics::Metrics>,
    /// Users, sessions, audit and webhooks: the node's SQLite file, or the
    /// PostgreSQL database the nodes share.
    pub db: switchyard_store::operator::OperatorDb,
}

/// The operator plane of a running switch.
pub struct Admin {
    addr: SocketAddr,
    token_path: PathBuf,
    cert_path: PathBuf,
    fingerprint: String,
    deploy_dir: Option<PathBuf>,
    state: Arc<AppState>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
}

impl Admin {
    /// Makes the certificate and the CLI's token if needed, opens the
    /// accounts, audit trail and webhook outbox, binds the server and
    /// starts serving it and watching the deploy directory.
    pub async fn start(plan: AdminPlan, parts: Parts) -> anyhow::Result<Admin> {
        let shutdown = CancellationToken::new();
        let tracker = TaskTracker::new();
        let files = crate::tls::cert_files(
            plan.tls.clone(),
            &plan.data_dir.join("admin"),
            plan.bind.ip(),
        )
        .context("admin.tls_cert / admin.tls_key")?;
        let (tls, fingerprint) = crate::tls::server_config(&files).context("admin TLS")?;
        let listener = TcpListener::bind(plan.bind)
            .await
            .with_context(|| format!("admin.bind: binding the admin server on {}", plan.bind))?;
        let addr = listener.local_addr()?;
        if !addr.ip().is_loopback() {
            tracing::warn!(%addr, "the admin server listens beyond this machine");
        }
        let state = Arc::new(state_of(&plan, parts, &shutdown, &tracker)?);
        let router = crate::router(state.clone(), plan.max_upload);
        tracker.spawn(serve(
            listener,
            TlsAcceptor::from(tls),
            router,
            shutdown.clone(),
            tracker.clone(),
        ));
        tracing::info!(%addr, url = %format!("https://{addr}/"), cert = %files.cert.display(),
            token_file = %plan.token_path.display(), sha256 = %fingerprint, generated = files.generated, "admin API listening (HTTPS)");
        tracker.spawn(crate::watch::endpoints(state.clone(), shutdown.clone()));
        if let Some(dir) = &plan.deploy_dir {
            let watcher = DeployWatcher::new(dir.clone(), state.registry.clone())
                .with_context(|| format!("admin.deploy_dir: creating {}", dir.display()))?;
            tracker.spawn(watcher.run(state.swapper.clone(), plan.deploy_poll, shutdown.clone()));
            tracing::info!(dir = %dir.display(), "deploy directory watched");
        }
        Ok(Admin {
            addr,
            token_path: plan.token_path,
            cert_path: files.cert,
            fingerprint,
            deploy_dir: plan.deploy_dir,
            state,
            shutdown,
            tracker,
        })
    }

    /// The address the server is bound to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The CLI token's file.
    pub fn token_path(&self) -> &Path {
        &self.token_path
    }

    /// The server's certificate (PEM), what clients pin.
    pub fn cert_path(&self) -> &Path {
        &self.cert_path
    }

    /// The certificate's SHA-256 fingerprint.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// The deploy directory watched, if any.
    pub fn deploy_dir(&self) -> Option<&Path> {
        self.deploy_dir.as_deref()
    }

    /// The shared state (the switch's wiring emits webhooks through it).
    pub fn state(&self) -> &Arc<AppState> {
        &self.state
    }

    /// Stops serving and watching; waits (a few seconds at most) for a
    /// request or swap under way to finish.
    pub async fn stop(&self) {
        self.shutdown.cancel();
        self.tracker.close();
        if tokio::time::timeout(Duration::from_secs(5), self.tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!("admin server: a request was still running at shutdown");
        }
    }
}

impl Drop for Admin {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// The API client of this node's CLI token: `cli`, or `cli@<node id>`
/// when several nodes share the database (each node has a token file of
/// its own, and one would replace another's).
pub fn cli_client_name(db: &switchyard_store::operator::OperatorDb, node: &str) -> String {
    if db.shared {
        format!("cli@{node}")
    } else {
        "cli".to_owned()
    }
}

/// Opens what the state holds beyond the switch's parts.
fn state_of(
    plan: &AdminPlan,
    parts: Parts,
    shutdown: &CancellationToken,
    tracker: &TaskTracker,
) -> anyhow::Result<AppState> {
    let token = crate::token::load_or_create(&plan.token_path)
        .with_context(|| format!("admin.token_file ({})", plan.token_path.display()))?;
    let keys = plan.data_dir.join("keys");
    let accounts = crate::accounts::Accounts::open(&parts.db, &keys, plan.policy.clone())
        .context("opening the operator accounts")?;
    accounts
        .ensure_cli_client(&cli_client_name(&parts.db, &plan.node), &token)
        .context("registering the CLI's API client")?;
    let audit = crate::audit::Audit::open(&parts.db, &keys, plan.alerts.clone())
        .context("opening the audit trail")?;
    let webhooks = crate::webhooks::Webhooks::start(
        &parts.db,
        &keys,
        plan.webhooks.clone(),
        shutdown.clone(),
        tracker,
    )
    .context("starting webhook delivery")?;
    Ok(AppState {
        accounts,
        audit,
        webhooks,
        metrics: parts.metrics,
        registry: parts.registry,
        swapper: Swapper::spawn().context("starting the swap thread")?,
        ops: parts.ops,
        endpoints: parts.endpoints,
        listeners: parts.listeners,
        tls_reload: parts.tls_reload,
        deploy_dir: plan.deploy_dir.clone(),
        node: plan.node.clone(),
    })
}

/// Security headers on every answer: no framing, no sniffing, no caching,
/// HTTPS only, scripts and styles from this origin only.
pub async fn security_headers(req: Request, next: Next) -> Response {
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    for (name, value) in [
        ("strict-transport-security", "max-age=31536000"),
        ("x-content-type-options", "nosniff"),
        ("x-frame-options", "DENY"),
        ("referrer-policy", "no-referrer"),
        ("cache-control", "no-store"),
        (
            "content-security-policy",
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'; form-action 'self'",
        ),
    ] {
        h.insert(name, HeaderValue::from_static(value));
    }
    res
}

/// Accepts connections until `shutdown`: TLS, then HTTP/1.1 on `router`;
/// open connections finish their request and close.
async fn serve(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    router: Router,
    shutdown: CancellationToken,
    tracker: TaskTracker,
) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok(permit) = slots.clone().acquire_owned().await else {
            break;
        };
        let (stream, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "admin server: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let conn = connection(
            stream,
            peer,
            acceptor.clone(),
            router.clone(),
            shutdown.clone(),
        );
        tracker.spawn(async move {
            conn.await;
            drop(permit);
        });
    }
}

/// One connection: the handshake (bounded in time), then requests.
async fn connection(
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    acceptor: TlsAcceptor,
    router: Router,
    shutdown: CancellationToken,
) {
    let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            tracing::debug!(%peer, error = %e, "admin server: TLS handshake failed");
            return;
        }
        Err(_) => {
            tracing::debug!(%peer, "admin server: TLS handshake timed out");
            return;
        }
    };
    let service = router.map_request(move |mut req: hyper::Request<hyper::body::Incoming>| {
        req.extensions_mut().insert(ConnectInfo(peer));
        req
    });
    let service = TowerToHyperService::new(service);
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT);
    let conn = builder.serve_connection(TokioIo::new(tls), service);
    let mut conn = std::pin::pin!(conn);
    tokio::select! {
        r = conn.as_mut() => {
            if let Err(e) = r {
                tracing::debug!(%peer, error = %e, "admin connection ended");
            }
        }
        _ = shutdown.cancelled() => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}
