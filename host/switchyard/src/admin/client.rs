//! The admin API's client, for `switchyard plugin list/swap/rollback/history`
//! and the life-cycle commands: requests over HTTPS (HTTP/1.1, the
//! server's certificate pinned: only the certificate in the switch's
//! `<data_dir>/admin/cert.pem`, or the configured one, is trusted) and
//! readable output.

use std::fmt::Write as _;
use std::time::Duration;

use anyhow::{Context as _, anyhow, bail};
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde::de::DeserializeOwned;

use std::path::Path;
use std::sync::Arc;

use rustls_pki_types::ServerName;
use switchyard_admin::api::ACTOR_HEADER;
use switchyard_admin::views::{ErrorBody, PluginList, PluginView, SwapEntry, SwapResult};
use tokio_rustls::TlsConnector;

/// The content type of a component upload.
const WASM: &str = "application/wasm";
/// The content type of a JSON request body.
const JSON: &str = "application/json";
/// Longest wait to connect.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest wait for an answer (a swap compiles the component first).
const ANSWER_TIMEOUT: Duration = Duration::from_secs(300);

/// A client of one switch's admin API.
#[derive(Clone)]
pub struct AdminClient {
    url: String,
    authority: String,
    server_name: ServerName<'static>,
    tls: TlsConnector,
    token: String,
    token_source: String,
}

impl std::fmt::Debug for AdminClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminClient")
            .field("url", &self.url)
            .field("token_source", &self.token_source)
            .finish_non_exhaustive()
    }
}

impl AdminClient {
    /// A client of the API at `url` (`https://HOST:PORT`), trusting only
    /// the certificate(s) in `cert` (PEM) and presenting `token` (read from
    /// `token_source`, named in errors).
    pub fn new(
        url: &str,
        token: String,
        token_source: String,
        cert: &Path,
    ) -> anyhow::Result<AdminClient> {
        let authority = authority_of(url)?;
        let host = match authority.rsplit_once(':') {
            Some((h, _)) => h.trim_start_matches('[').trim_end_matches(']'),
            None => authority,
        };
        let server_name = ServerName::try_from(host.to_owned())
            .map_err(|e| anyhow!("--url {url:?}: {host:?} is not a host name: {e}"))?;
        let mut roots = rustls::RootCertStore::empty();
        let certs = switchyard_admin::tls::read_certs(cert).with_context(|| {
            format!(
                "the admin server's certificate (the switch makes {} on its first start; \
                 give --cert FILE for another)",
                cert.display()
            )
        })?;
        for c in certs {
            roots
                .add(c)
                .with_context(|| format!("{}: not a usable certificate", cert.display()))?;
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .context("TLS versions")?
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(AdminClient {
            url: format!("https://{authority}"),
            authority: authority.to_owned(),
            server_name,
            tls: TlsConnector::from(Arc::new(config)),
            token,
            token_source,
        })
    }

    /// The API's URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// `GET /plugins`.
    pub async fn list(&self) -> anyhow::Result<PluginList> {
        self.call(Method::GET, "/plugins", Bytes::new(), None).await
    }

    /// `POST /plugins/NAME/swap` with `wasm`.
    pub async fn swap(
        &self,
        name: &str,
        wasm: Vec<u8>,
        actor: Option<&str>,
    ) -> anyhow::Result<SwapResult> {
        self.call(
            Method::POST,
            &format!("/plugins/{name}/swap"),
            Bytes::from(wasm),
            actor,
        )
        .await
    }

    /// `POST /plugins/NAME/rollback`.
    pub async fn rollback(&self, name: &str, actor: Option<&str>) -> anyhow::Result<SwapResult> {
        self.call(
            Method::POST,
            &format!("/plugins/{name}/rollback"),
            Bytes::new(),
            actor,
        )
        .await
    }

    /// `GET /swaps?limit=N`.
    pub async fn history(&self, limit: usize) -> anyhow::Result<Vec<SwapEntry>> {
        self.call(
            Method::GET,
            &format!("/swaps?limit={limit}"),
            Bytes::new(),
            None,
        )
        .await
    }

    /// `GET path`, its JSON answer.
    pub async fn get_json<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        self.call(Method::GET, path, Bytes::new(), None).await
    }

    /// `POST path` without a body, its JSON answer.
    pub async fn post_json<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        self.call(Method::POST, path, Bytes::new(), None).await
    }

    /// `POST path` with `body` as JSON, its JSON answer (for what must not
    /// travel in a URL: card numbers).
    pub async fn post_body_json<T: DeserializeOwned, B: serde::Serialize>(
        &self,
        path: &str,
        body: &B,
    ) -> anyhow::Result<T> {
        let body = Bytes::from(serde_json::to_vec(body).context("encoding the request")?);
        self.call_with(Method::POST, path, body, JSON, None).await
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Bytes,
        actor: Option<&str>,
    ) -> anyhow::Result<T> {
        self.call_with(method, path, body, WASM, actor).await
    }

    async fn call_with<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Bytes,
        content_type: &str,
        actor: Option<&str>,
    ) -> anyhow::Result<T> {
        let (status, answer) = self
            .send(method.clone(), path, body, content_type, actor)
            .await?;
        if status.is_success() {
            return serde_json::from_slice(&answer)
                .with_context(|| format!("{method} {path}: unexpected answer from {}", self.url));
        }
        let reason = serde_json::from_slice::<ErrorBody>(&answer)
            .map(|e| e.error)
            .unwrap_or_else(|_| String::from_utf8_lossy(&answer).trim().to_owned());
        match status {
            StatusCode::UNAUTHORIZED => bail!(
                "the switch at {} refused the admin token from {} (401): is it this switch's token file?",
                self.url,
                self.token_source
            ),
            StatusCode::UNPROCESSABLE_ENTITY => bail!("swap refused, nothing changed: {reason}"),
            _ => bail!("{method} {path}: {status}: {reason}"),
        }
    }

    /// One request; the status and body of the answer.
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        body: Bytes,
        actor: Option<&str>,
    ) -> anyhow::Result<(StatusCode, Bytes)> {
        self.send(method, path, body, WASM, actor).await
    }

    /// One request whose body (if any) is of `content_type`.
    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Bytes,
        content_type: &str,
        actor: Option<&str>,
    ) -> anyhow::Result<(StatusCode, Bytes)> {
        let unreachable = |e: &dyn std::fmt::Display| {
            anyhow!(
                "cannot reach the switch's admin API at {} (token file {}): {e}. Is the switch \
                 running, with [admin] enabled? Start it (switchyard run [--config FILE]), or point \
                 at the one that runs: --config FILE (its [admin] bind and token file), or --url and \
                 --token-file",
                self.url,
                self.token_source
            )
        };
        let stream = tokio::time::timeout(
            CONNECT_TIMEOUT,
            tokio::net::TcpStream::connect(&self.authority),
        )
        .await
        .map_err(|_| unreachable(&"timed out connecting"))?
        .map_err(|e| unreachable(&e))?;
        let stream = tokio::time::timeout(
            CONNECT_TIMEOUT,
            self.tls.connect(self.server_name.clone(), stream),
        )
        .await
        .map_err(|_| unreachable(&"timed out in the TLS handshake"))?
        .map_err(|e| unreachable(&format!("TLS: {e} (is --cert the switch's certificate?)")))?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| unreachable(&e))?;
        let driver = tokio::spawn(conn);
        let mut req = Request::builder()
            .method(method)
            .uri(format!("/api{path}"))
            .header(HOST, &self.authority)
            .header(AUTHORIZATION, format!("Bearer {}", self.token));
        if !body.is_empty() {
            req = req.header(CONTENT_TYPE, content_type);
        }
        if let Some(a) = actor {
            req = req.header(ACTOR_HEADER, a);
        }
        let req = req.body(Full::new(body)).context("building the request")?;
        let exchange = async {
            let answer = sender.send_request(req).await?;
            let status = answer.status();
            let body = answer.into_body().collect().await?.to_bytes();
            Ok::<_, hyper::Error>((status, body))
        };
        let result = tokio::time::timeout(ANSWER_TIMEOUT, exchange)
            .await
            .map_err(|_| anyhow!("{}: no answer within {ANSWER_TIMEOUT:?}", self.url))?
            .map_err(|e| anyhow!("{}: {e}", self.url));
        driver.abort();
        result
    }
}

/// `plugin list`: one block per plugin.
pub fn format_list(list: &PluginList) -> String {
    let mut out = format!(
        "generation {}, {} plugin(s)\n",
        list.generation,
        list.plugins.len()
    );
    for p in &list.plugins {
        out.push('\n');
        out.push_str(&format_plugin(p));
    }
    out
}

/// One plugin's block.
pub fn format_plugin(p: &PluginView) -> String {
    let mut out = String::new();
    let roles = if p.roles.is_empty() {
        "(unused)".to_owned()
    } else {
        p.roles.join(", ")
    };
    let _ = writeln!(out, "{}  {}  {roles}", p.name, p.version);
    let l = &p.limits;
    let instances = match (p.max_calls, p.recycle_memory_bytes) {
        (Some(calls), Some(mem)) => {
            format!("reuse (retired after {calls} calls or {})", bytes_text(mem))
        }
        _ => p.instances.clone(),
    };
    let _ = writeln!(
        out,
        "  limits     memory {}, deadline {} ms, fuel {}, stack {}; instances {instances}; failure {}",
        bytes_text(l.memory_bytes),
        l.deadline_ms,
        l.fuel.map_or("unmetered".to_owned(), |f| f.to_string()),
        bytes_text(l.stack_bytes),
        p.failure
    );
    let _ = writeln!(out, "  grants     {}", p.grants.join(", "));
    let m = &p.metrics;
    let _ = writeln!(
        out,
        "  calls      {} (failures {}: traps {}, deadline {}, memory cap {}, fuel {})",
        m.calls, m.failures, m.traps, m.deadline_overruns, m.memory_cap_hits, m.fuel_exhausted
    );
    let _ = writeln!(
        out,
        "  latency    p50 {}, p99 {}; peak memory {}; instances {} created, {} recycled",
        latency_text(m.latency_p50_us),
        latency_text(m.latency_p99_us),
        bytes_text(m.peak_memory_bytes),
        m.instantiations,
        m.recycled
    );
    let _ = writeln!(
        out,
        "  previous   {}",
        if p.previous.is_empty() {
            "(none)".to_owned()
        } else {
            p.previous.join(", ")
        }
    );
    out
}

/// `plugin swap` / `plugin rollback`.
pub fn format_swap(r: &SwapResult) -> String {
    if !r.changed {
        return format!(
            "{}: {} is already live; nothing changed (generation {})",
            r.plugin, r.new_version, r.generation
        );
    }
    let verb = if r.action == "rollback" {
        "rolled back"
    } else {
        "swapped"
    };
    format!(
        "{}: {verb} {} → {} (generation {}, by {}); transactions in flight finish on {}",
        r.plugin, r.old_version, r.new_version, r.generation, r.actor, r.old_version
    )
}

/// `plugin history`.
pub fn format_history(entries: &[SwapEntry]) -> String {
    if entries.is_empty() {
        return "no swap recorded\n".into();
    }
    let mut out = String::new();
    for e in entries {
        let _ = writeln!(
            out,
            "{}  {:<16} {:<18} {} → {}  by {}",
            utc(e.at_ms),
            e.plugin,
            e.action,
            e.old_sha256.get(..12).unwrap_or(&e.old_sha256),
            e.new_sha256.get(..12).unwrap_or(&e.new_sha256),
            e.actor
        );
    }
    out
}

fn latency_text(us: Option<u64>) -> String {
    match us {
        None => "-".into(),
        Some(u64::MAX) => "> 33 s".into(),
        Some(us) if us >= 10_000 => format!("≤ {} ms", us / 1000),
        Some(us) => format!("≤ {us} µs"),
    }
}

fn bytes_text(n: u64) -> String {
    if n >= 1 << 20 {
        format!("{:.1} MiB", n as f64 / (1u64 << 20) as f64)
    } else if n >= 1 << 10 {
        format!("{} KiB", n >> 10)
    } else {
        format!("{n} B")
    }
}

/// `YYYY-MM-DD HH:MM:SS` UTC from ms since the epoch.
fn utc(ms: i64) -> String {
    let t = crate::client::UtcTime::from_unix(ms.div_euclid(1000));
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
        t.year, t.month, t.day, t.hour, t.minute, t.second
    )
}

/// `HOST:PORT` of an `https://HOST:PORT` URL.
fn authority_of(url: &str) -> anyhow::Result<&str> {
    if let Some(rest) = url.strip_prefix("http://") {
        bail!(
            "--url {url:?}: the admin server speaks HTTPS only (https://{})",
            rest.trim_end_matches('/')
        );
    }
    let authority = url
        .strip_prefix("https://")
        .ok_or_else(|| anyhow!("--url {url:?}: expected https://HOST:PORT"))?
        .trim_end_matches('/');
    if authority.is_empty() || authority.contains('/') || !authority.contains(':') {
        bail!("--url {url:?}: expected https://HOST:PORT");
    }
    Ok(authority)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_dates() {
        assert_eq!(utc(0), "1970-01-01 00:00:00");
        assert_eq!(utc(951_782_400_000), "2000-02-29 00:00:00");
        assert_eq!(utc(1_767_225_599_000), "2025-12-31 23:59:59");
    }

    #[test]
    fn urls() {
        assert_eq!(
            authority_of("https://127.0.0.1:5080/").unwrap(),
            "127.0.0.1:5080"
        );
        let e = authority_of("http://127.0.0.1:5080")
            .unwrap_err()
            .to_string();
        assert!(e.contains("HTTPS only"), "{e}");
        assert!(authority_of("https://127.0.0.1").is_err());
    }
}
