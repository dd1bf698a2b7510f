//! Hot swap for operators: the admin HTTP API ([`api`]), the deploy
//! directory ([`deploy`]), the low-priority thread every swap compiles on
//! ([`swapper`]), the API's credential ([`token`]) and the client
//! `switchyard plugin list/swap/rollback` use ([`client`]).
//!
//! The registry (`switchyard-runtime`) owns what a swap is — checks, pinned
//! generations, rollback, the record in the store; this module owns only the
//! ways an operator reaches it while the switch runs.

pub mod api;
pub mod client;
pub mod deploy;
pub mod swapper;
pub mod token;
pub mod views;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use switchyard_runtime::Registry;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Config;
use swapper::Swapper;

/// Each listener's write counters, by name (`/metrics`).
pub type ListenerCounters = Vec<(String, Arc<switchyard_net::ListenerStats>)>;

/// The admin API and the deploy watcher of a running switch; both stop when
/// this is stopped or dropped.
pub struct Admin {
    addr: SocketAddr,
    token_path: PathBuf,
    deploy_dir: Option<PathBuf>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
}

impl Admin {
    /// Creates the token file if needed, binds the API (on 127.0.0.1:0 when
    /// `ephemeral`) and starts serving it and watching the deploy directory.
    pub async fn start(
        registry: Arc<Registry>,
        config: &Config,
        ephemeral: bool,
        ops: Option<crate::operate::Ops>,
        endpoints: Vec<Arc<switchyard_net::Endpoint>>,
        tls: crate::tls_config::TlsReloader,
        listeners: ListenerCounters,
    ) -> anyhow::Result<Admin> {
        let section = &config.admin;
        let token_path = config.admin_token_path();
        let token = token::load_or_create(&token_path)
            .with_context(|| format!("admin.token_file ({})", token_path.display()))?;
        let bind = if ephemeral {
            SocketAddr::from(([127, 0, 0, 1], 0))
        } else {
            section
                .bind_addr()
                .map_err(|e| anyhow::anyhow!("admin.bind: {e}"))?
        };
        let listener = tokio::net::TcpListener::bind(bind)
            .await
            .with_context(|| format!("admin.bind: binding the admin API on {bind}"))?;
        let addr = listener.local_addr()?;
        if !addr.ip().is_loopback() {
            tracing::warn!(%addr, "the admin API listens beyond this machine, over plain HTTP");
        }
        let swapper = Swapper::spawn().context("starting the swap thread")?;
        let shutdown = CancellationToken::new();
        let tracker = TaskTracker::new();
        let deploy_dir = config.deploy_dir();
        let state = Arc::new(api::AdminState {
            registry: registry.clone(),
            swapper: swapper.clone(),
            token,
            max_upload: (section.max_upload_mib as usize) << 20,
            deploy_dir: deploy_dir.clone(),
            ops,
            endpoints,
            tls,
            listeners,
        });
        tracker.spawn(api::serve(
            listener,
            state,
            shutdown.clone(),
            tracker.clone(),
        ));
        tracing::info!(%addr, token_file = %token_path.display(), "admin API listening");
        if let Some(dir) = &deploy_dir {
            let watcher = deploy::DeployWatcher::new(dir.clone(), registry)
                .with_context(|| format!("admin.deploy_dir: creating {}", dir.display()))?;
            tracker.spawn(watcher.run(
                swapper,
                Duration::from_millis(section.deploy_poll_ms),
                shutdown.clone(),
            ));
            tracing::info!(dir = %dir.display(), "deploy directory watched");
        }
        Ok(Admin {
            addr,
            token_path,
            deploy_dir,
            shutdown,
            tracker,
        })
    }

    /// The address the API is bound to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The token's file.
    pub fn token_path(&self) -> &std::path::Path {
        &self.token_path
    }

    /// The deploy directory watched, if any.
    pub fn deploy_dir(&self) -> Option<&std::path::Path> {
        self.deploy_dir.as_deref()
    }

    /// Stops serving and watching; waits (a few seconds at most) for a swap
    /// under way to finish.
    pub async fn stop(&self) {
        self.shutdown.cancel();
        self.tracker.close();
        if tokio::time::timeout(Duration::from_secs(5), self.tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!("admin API: a request was still running at shutdown");
        }
    }
}

impl Drop for Admin {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}
