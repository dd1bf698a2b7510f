//! The operator plane's HTTPS certificate: the configured one, or a
//! self-signed one made on first start (`<data_dir>/admin/cert.pem`,
//! `key.pem` mode 0600) for `localhost` and the bind address.

use std::io::Write as _;
use std::net::IpAddr;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context as _, anyhow};
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest as _, Sha256};

/// Where the certificate and key are, and whether they were just made.
#[derive(Debug, Clone)]
pub struct CertFiles {
    /// The certificate chain (PEM).
    pub cert: PathBuf,
    /// The private key (PEM).
    pub key: PathBuf,
    /// Made on this start (self-signed).
    pub generated: bool,
}

/// The configured pair, or the self-signed pair under `dir` (made when
/// missing, for `localhost`, 127.0.0.1, ::1 and `bind_ip`).
pub fn cert_files(
    configured: Option<(PathBuf, PathBuf)>,
    dir: &Path,
    bind_ip: IpAddr,
) -> anyhow::Result<CertFiles> {
    if let Some((cert, key)) = configured {
        return Ok(CertFiles {
            cert,
            key,
            generated: false,
        });
    }
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    if cert.exists() && key.exists() {
        return Ok(CertFiles {
            cert,
            key,
            generated: false,
        });
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut names = vec![
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
    ];
    if !bind_ip.is_unspecified() && !bind_ip.is_loopback() {
        names.push(bind_ip.to_string());
    }
    let made = rcgen::generate_simple_self_signed(names)
        .map_err(|e| anyhow!("making a self-signed certificate: {e}"))?;
    write_new(&key, made.signing_key.serialize_pem().as_bytes(), 0o600)?;
    write_new(&cert, made.cert.pem().as_bytes(), 0o644)?;
    Ok(CertFiles {
        cert,
        key,
        generated: true,
    })
}

fn write_new(path: &Path, bytes: &[u8], mode: u32) -> anyhow::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .with_context(|| format!("writing {}", path.display()))
}

/// The certificate chain in `path`.
pub fn read_certs(path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let certs: Vec<_> = CertificateDer::pem_file_iter(path)
        .with_context(|| format!("reading {}", path.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("{}: not a PEM certificate", path.display()))?;
    if certs.is_empty() {
        anyhow::bail!("{}: no certificate in it", path.display());
    }
    Ok(certs)
}

/// The SHA-256 fingerprint of `cert`, as colon-separated hex pairs (what
/// browsers and `openssl x509 -fingerprint -sha256` show).
pub fn fingerprint(cert: &CertificateDer<'_>) -> String {
    let digest = Sha256::digest(cert.as_ref());
    let hex: Vec<String> = digest.iter().map(|b| format!("{b:02X}")).collect();
    hex.join(":")
}

/// The rustls server config of `files` (TLS 1.2 and 1.3, HTTP/1.1), and
/// the leaf certificate's fingerprint.
pub fn server_config(files: &CertFiles) -> anyhow::Result<(Arc<ServerConfig>, String)> {
    let certs = read_certs(&files.cert)?;
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .with_context(|| format!("{}: not a PEM private key", files.key.display()))?;
    let print = fingerprint(&certs[0]);
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS versions")?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .with_context(|| {
            format!(
                "{} and {} are not a matching certificate and key",
                files.cert.display(),
                files.key.display()
            )
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok((Arc::new(config), print))
}
