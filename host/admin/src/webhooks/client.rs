//! One webhook POST: hyper over TCP, rustls for `https://`.

use std::net::IpAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper::Uri;
use hyper_util::rt::TokioIo;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, ServerName};

/// Where a delivery goes.
#[derive(Debug, Clone)]
pub struct Target {
    https: bool,
    host: String,
    port: u16,
    path: String,
    authority: String,
}

/// Why a URL is refused.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BadUrl(String);

impl Target {
    /// Parses `url`: `https://…`, or `http://` to a loopback address.
    pub fn parse(url: &str) -> Result<Target, BadUrl> {
        let uri: Uri = url.parse().map_err(|e| BadUrl(format!("{e}")))?;
        let https = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => return Err(BadUrl("the scheme must be https or http".into())),
        };
        let host = uri.host().ok_or_else(|| BadUrl("no host".into()))?;
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        if !https && !is_loopback(&host) {
            return Err(BadUrl("http:// only to a loopback address".into()));
        }
        let authority = uri.authority().map(|a| a.to_string()).unwrap_or_default();
        if authority.contains('@') {
            return Err(BadUrl("no user information in the URL".into()));
        }
        Ok(Target {
            https,
            port: uri.port_u16().unwrap_or(if https { 443 } else { 80 }),
            path: uri
                .path_and_query()
                .map_or_else(|| "/".to_owned(), |p| p.to_string()),
            host,
            authority,
        })
    }
}

fn is_loopback(host: &str) -> bool {
    host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// What an attempt got: the HTTP status, or why there is none.
pub type Answer = Result<u16, String>;

/// POSTs `body` with `headers` to `target` within `timeout`.
pub async fn post(
    target: &Target,
    headers: &[(&str, String)],
    body: Bytes,
    timeout: Duration,
) -> Answer {
    match tokio::time::timeout(timeout, attempt(target, headers, body)).await {
        Ok(answer) => answer,
        Err(_) => Err(format!("no answer within {} ms", timeout.as_millis())),
    }
}

async fn attempt(target: &Target, headers: &[(&str, String)], body: Bytes) -> Answer {
    let tcp = tokio::net::TcpStream::connect((target.host.as_str(), target.port))
        .await
        .map_err(|e| format!("connecting to {}:{}: {e}", target.host, target.port))?;
    let _ = tcp.set_nodelay(true);
    let mut req = Request::post(target.path.as_str()).header("host", target.authority.as_str());
    for (name, value) in headers {
        req = req.header(*name, value.as_str());
    }
    let req = req
        .header("content-length", body.len())
        .body(Full::new(body))
        .map_err(|e| format!("building the request: {e}"))?;
    if target.https {
        let name = ServerName::try_from(target.host.clone())
            .map_err(|e| format!("server name {:?}: {e}", target.host))?;
        let tls = tokio_rustls::TlsConnector::from(tls_config()?)
            .connect(name, tcp)
            .await
            .map_err(|e| format!("TLS with {}: {e}", target.host))?;
        exchange(TokioIo::new(tls), req).await
    } else {
        exchange(TokioIo::new(tcp), req).await
    }
}

async fn exchange<T>(io: T, req: Request<Full<Bytes>>) -> Answer
where
    T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| format!("HTTP handshake: {e}"))?;
    let driver = tokio::spawn(async move {
        let _ = conn.await;
    });
    let answer = match sender.send_request(req).await {
        Ok(res) => {
            let status = res.status().as_u16();
            // Read (and drop) a bounded body so the receiver sees its
            // answer taken.
            let _ = http_body_util::Limited::new(res.into_body(), 64 * 1024)
                .collect()
                .await;
            Ok(status)
        }
        Err(e) => Err(format!("sending: {e}")),
    };
    driver.abort();
    answer
}

/// The client TLS config with the system's roots (read once).
fn tls_config() -> Result<Arc<rustls::ClientConfig>, String> {
    static CONFIG: OnceLock<Result<Arc<rustls::ClientConfig>, String>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let path = std::env::var_os("SSL_CERT_FILE")
                .map(std::path::PathBuf::from)
                .unwrap_or_else(|| "/etc/ssl/certs/ca-certificates.crt".into());
            let mut roots = rustls::RootCertStore::empty();
            let certs = CertificateDer::pem_file_iter(&path)
                .map_err(|e| format!("the system's roots {}: {e}", path.display()))?;
            for cert in certs.flatten() {
                let _ = roots.add(cert);
            }
            if roots.is_empty() {
                return Err(format!("no root certificates in {}", path.display()));
            }
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let config = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map_err(|e| format!("TLS versions: {e}"))?
                .with_root_certificates(roots)
                .with_no_client_auth();
            Ok(Arc::new(config))
        })
        .clone()
}
