//! TLS in the configuration: `[listener.tls]`, `plaintext` and
//! `[endpoints.NAME.tls]`, their validation (every problem with its path),
//! the builders into `switchyard-net`'s [`ServerTls`] / [`ClientTls`], and
//! [`TlsReloader`], which reloads all of them (SIGHUP, `POST /tls/reload`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;
use switchyard_net::tls::{ClientTls, ClientTlsFiles, ServerTls, ServerTlsFiles, TlsError};

use crate::config::{Config, EndpointConfig, ListenerConfig};
use crate::plan::Plan;

/// `[listener.tls]`: the listener speaks TLS 1.2 / 1.3 only.
#[derive(Debug, Clone, Deserialize)]
pub struct ListenerTls {
    /// PEM certificate chain, leaf first (relative paths: to the config file).
    pub cert: PathBuf,
    /// PEM private key of the leaf.
    pub key: PathBuf,
    /// PEM CA certificate(s) that sign client certificates: set → mutual
    /// TLS, every client must present a certificate it signed.
    #[serde(default)]
    pub client_ca: Option<PathBuf>,
}

/// `[endpoints.NAME.tls]`: the link speaks TLS 1.2 / 1.3 only.
#[derive(Debug, Clone, Deserialize)]
pub struct EndpointTls {
    /// PEM CA certificate(s) the endpoint's certificate must chain to: the
    /// only trusted roots (the system store is not used).
    pub ca: PathBuf,
    /// PEM client certificate chain, presented when the endpoint asks.
    #[serde(default)]
    pub cert: Option<PathBuf>,
    /// Its PEM private key.
    #[serde(default)]
    pub key: Option<PathBuf>,
    /// The name the endpoint's certificate must carry; default: the host
    /// part of `address`.
    #[serde(default)]
    pub server_name: Option<String>,
}

fn server_files(config: &Config, tls: &ListenerTls) -> ServerTlsFiles {
    ServerTlsFiles {
        cert: config.resolve(&tls.cert),
        key: config.resolve(&tls.key),
        client_ca: tls.client_ca.as_deref().map(|p| config.resolve(p)),
    }
}

fn client_files(config: &Config, tls: &EndpointTls) -> ClientTlsFiles {
    ClientTlsFiles {
        ca: config.resolve(&tls.ca),
        cert: tls.cert.as_deref().map(|p| config.resolve(p)),
        key: tls.key.as_deref().map(|p| config.resolve(p)),
        server_name: tls.server_name.clone(),
    }
}

/// `path: problem` for a TLS load error, the path naming the key of the
/// file at fault (`listener[2].tls.cert: /etc/…/cert.pem: cannot read: …`).
fn problem(at: &str, files: &[(&str, Option<&Path>)], e: &TlsError) -> String {
    let file = match e {
        TlsError::Read { path, .. }
        | TlsError::Certificate { path, .. }
        | TlsError::Key { path, .. } => Some(path.as_path()),
        _ => None,
    };
    let key = match e {
        TlsError::ServerName(_) => Some("server_name"),
        _ => file.and_then(|f| files.iter().find(|(_, p)| *p == Some(f)).map(|(k, _)| *k)),
    };
    match key {
        Some(key) => format!("{at}.tls.{key}: {e}"),
        None => format!("{at}.tls: {e}"),
    }
}

/// Checks listener `at`'s TLS (its files load) and the plaintext rule: a
/// listener bound to a non-loopback address needs `tls` or `plaintext = true`.
pub fn validate_listener(
    config: &Config,
    at: &str,
    l: &ListenerConfig,
    problems: &mut Vec<String>,
) {
    match (&l.tls, l.plaintext) {
        (Some(_), true) => problems.push(format!(
            "{at}.plaintext: set with [listener.tls]; choose one"
        )),
        (None, false) => {
            if let Ok(bind) = Config::listener_bind(l)
                && !bind.ip().is_loopback()
            {
                problems.push(format!(
                    "{at}.plaintext: the listener binds {bind}, not a loopback address, without TLS: \
                     add [listener.tls] or set plaintext = true"
                ));
            }
        }
        _ => {}
    }
    if let Some(tls) = &l.tls {
        let files = server_files(config, tls);
        if let Err(e) = ServerTls::load(files.clone()) {
            let keys = [
                ("cert", Some(files.cert.as_path())),
                ("key", Some(files.key.as_path())),
                ("client_ca", files.client_ca.as_deref()),
            ];
            problems.push(problem(at, &keys, &e));
        }
    }
}

/// Checks endpoint `at`'s TLS: its files load, cert and key go together,
/// and the server name (given or taken from the address) is usable.
pub fn validate_endpoint(
    config: &Config,
    at: &str,
    e: &EndpointConfig,
    problems: &mut Vec<String>,
) {
    let Some(tls) = &e.tls else { return };
    match (&tls.cert, &tls.key) {
        (Some(_), None) => {
            problems.push(format!("{at}.tls.key: a client certificate needs its key"));
            return;
        }
        (None, Some(_)) => {
            problems.push(format!("{at}.tls.cert: a client key needs its certificate"));
            return;
        }
        _ => {}
    }
    let files = client_files(config, tls);
    match ClientTls::load(files.clone()) {
        Ok(client) => {
            if let Err(err) = client.server_name_for(&e.address) {
                problems.push(format!(
                    "{at}.tls.server_name: the address's host is no server name ({err}); set server_name"
                ));
            }
        }
        Err(err) => {
            let keys = [
                ("ca", Some(files.ca.as_path())),
                ("cert", files.cert.as_deref()),
                ("key", files.key.as_deref()),
            ];
            problems.push(problem(at, &keys, &err));
        }
    }
}

/// Listener `name`'s TLS, loaded; `None` for plain TCP (warned about when
/// the listener binds a non-loopback address with `plaintext = true`).
pub fn listener_tls(
    config: &Config,
    l: &ListenerConfig,
    bind: SocketAddr,
) -> anyhow::Result<Option<Arc<ServerTls>>> {
    let Some(tls) = &l.tls else {
        if l.plaintext && !bind.ip().is_loopback() {
            tracing::warn!(listener = %l.name, %bind,
                "plaintext = true: this listener serves card data without TLS on a non-loopback address");
        }
        return Ok(None);
    };
    let tls = ServerTls::load(server_files(config, tls))
        .map_err(|e| anyhow::anyhow!("listener {}: TLS: {e}", l.name))?;
    tracing::info!(listener = %l.name, mutual = tls.mutual(), certificate = %tls.summary(), "TLS on");
    Ok(Some(Arc::new(tls)))
}

/// Endpoint `name`'s TLS, loaded; `None` for plain TCP.
pub fn endpoint_tls(
    config: &Config,
    name: &str,
    e: &EndpointConfig,
) -> anyhow::Result<Option<Arc<ClientTls>>> {
    let Some(tls) = &e.tls else { return Ok(None) };
    let tls = ClientTls::load(client_files(config, tls))
        .map_err(|err| anyhow::anyhow!("endpoint {name}: TLS: {err}"))?;
    tracing::info!(endpoint = %name, loaded = %tls.summary(), "TLS on");
    Ok(Some(Arc::new(tls)))
}

/// Every listener's and endpoint's TLS, shared with the links and
/// listeners that use it, for reloads.
#[derive(Debug, Default, Clone)]
pub struct TlsReloader {
    listeners: Vec<(String, Arc<ServerTls>)>,
    endpoints: Vec<(String, Arc<ClientTls>)>,
}

impl TlsReloader {
    /// Loads the TLS of every listener and endpoint of `plan` (and warns
    /// about each non-loopback plaintext listener).
    pub fn load(plan: &Plan, ephemeral_ports: bool) -> anyhow::Result<TlsReloader> {
        let mut all = TlsReloader::default();
        for lp in &plan.listeners {
            let bind = if ephemeral_ports {
                SocketAddr::from(([127, 0, 0, 1], 0))
            } else {
                lp.bind
            };
            if let Some(tls) = listener_tls(&plan.config, &lp.config, bind)? {
                all.listener(&lp.config.name, &tls);
            }
        }
        for (name, ep) in &plan.endpoints {
            if let Some(tls) = endpoint_tls(&plan.config, name, &ep.config)? {
                all.endpoint(name, &tls);
            }
        }
        Ok(all)
    }

    /// Listener `name`'s TLS, if it has some.
    pub fn for_listener(&self, name: &str) -> Option<Arc<ServerTls>> {
        self.listeners
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, t)| t.clone())
    }

    /// Endpoint `name`'s TLS, if it has some.
    pub fn for_endpoint(&self, name: &str) -> Option<Arc<ClientTls>> {
        self.endpoints
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, t)| t.clone())
    }

    /// Waits for SIGINT or SIGTERM (`switchyard run`), reloading every
    /// certificate and key on each SIGHUP meanwhile.
    pub async fn serve_until_signal(&self) -> anyhow::Result<()> {
        use anyhow::Context as _;
        use tokio::signal::unix::{SignalKind, signal};
        let mut hup = signal(SignalKind::hangup()).context("installing the SIGHUP handler")?;
        loop {
            tokio::select! {
                r = crate::wait_for_signal() => return r,
                _ = hup.recv() => {
                    tracing::info!("SIGHUP: reloading TLS certificates and keys");
                    self.reload();
                }
            }
        }
    }
}

/// What became of one reload.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Reloaded {
    /// `listener` or `endpoint`.
    pub kind: &'static str,
    /// Its name.
    pub name: String,
    /// Whether the new files are in use (else the old configuration stays).
    pub ok: bool,
    /// What is loaded now, or why the reload failed.
    pub detail: String,
}

impl TlsReloader {
    /// Adds listener `name`'s TLS.
    pub fn listener(&mut self, name: &str, tls: &Arc<ServerTls>) {
        self.listeners.push((name.to_owned(), tls.clone()));
    }

    /// Adds endpoint `name`'s TLS.
    pub fn endpoint(&mut self, name: &str, tls: &Arc<ClientTls>) {
        self.endpoints.push((name.to_owned(), tls.clone()));
    }

    /// Re-reads every certificate and key: new connections get them, open
    /// ones keep theirs; one whose files are bad keeps its old
    /// configuration. Each outcome is logged.
    pub fn reload(&self) -> Vec<Reloaded> {
        let listeners = self
            .listeners
            .iter()
            .map(|(name, tls)| outcome("listener", name, tls.reload()));
        let endpoints = self
            .endpoints
            .iter()
            .map(|(name, tls)| outcome("endpoint", name, tls.reload()));
        listeners.chain(endpoints).collect()
    }
}

fn outcome(kind: &'static str, name: &str, r: Result<String, TlsError>) -> Reloaded {
    match r {
        Ok(detail) => {
            tracing::info!(kind, name, loaded = %detail, "TLS reloaded");
            Reloaded {
                kind,
                name: name.to_owned(),
                ok: true,
                detail,
            }
        }
        Err(e) => {
            tracing::error!(kind, name, error = %e, "TLS reload failed; the old certificate stays");
            Reloaded {
                kind,
                name: name.to_owned(),
                ok: false,
                detail: e.to_string(),
            }
        }
    }
}
