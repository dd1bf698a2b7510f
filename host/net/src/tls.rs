//! TLS on acquirer listeners and endpoint links (rustls, ring provider,
//! TLS 1.2 and 1.3 only).
//!
//! - [`ServerTls`]: a listener's certificate chain and key, and optionally
//!   a client-CA file: then every client must present a certificate that
//!   CA signed (mutual TLS), and [`ServerTls::accept`] returns the verified
//!   client's subject (`CN=terminal-17, O=Acme`) for the transaction's
//!   `TLS_CLIENT_SUBJECT` variable.
//! - [`ClientTls`]: an endpoint link's pinned CA (only that file's roots,
//!   never the system store), optional client certificate and key, and the
//!   server name to verify (default: the host part of the address).
//!   [`connect`] opens a link, plain or TLS.
//!
//! Both hold their rustls configuration behind a lock so that
//! [`ServerTls::reload`] / [`ClientTls::reload`] re-read the files and swap
//! the configuration for *new* connections; open connections keep the one
//! they were made with. A reload whose files are bad keeps the old
//! configuration and returns the error.
//!
//! This module reads files and sockets only; it knows nothing of ISO 8583.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::RwLock;
use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::{TlsAcceptor, TlsConnector};

/// The protocol versions every link accepts: TLS 1.3 and 1.2, nothing older.
static VERSIONS: &[&rustls::SupportedProtocolVersion] =
    &[&rustls::version::TLS13, &rustls::version::TLS12];

/// Why a TLS configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A file could not be read.
    #[error("{}: cannot read: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// A certificate (or CA) file holds no usable PEM certificate.
    #[error("{}: no PEM certificate: {reason}", path.display())]
    Certificate {
        /// The file.
        path: PathBuf,
        /// What was wrong with it.
        reason: String,
    },
    /// A key file holds no usable PEM private key.
    #[error("{}: no PEM private key: {reason}", path.display())]
    Key {
        /// The file.
        path: PathBuf,
        /// What was wrong with it.
        reason: String,
    },
    /// A client certificate without its key, or a key without its certificate.
    #[error("a client certificate and its key go together: set both or neither")]
    CertWithoutKey,
    /// The server name to verify is neither a DNS name nor an IP address.
    #[error("server name {0:?} is not a DNS name or an IP address")]
    ServerName(String),
    /// rustls refused the configuration (e.g. a key that does not match its
    /// certificate, a CA that is not a CA).
    #[error("{context}: {reason}")]
    Rejected {
        /// Which files.
        context: String,
        /// rustls's reason.
        reason: String,
    },
}

/// The files of a listener's TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerTlsFiles {
    /// PEM certificate chain, leaf first.
    pub cert: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// PEM CA certificates that sign client certificates; set → mutual TLS
    /// (a client certificate is required).
    pub client_ca: Option<PathBuf>,
}

/// A listener's TLS: reloadable server configuration.
pub struct ServerTls {
    files: ServerTlsFiles,
    current: RwLock<Loaded<ServerConfig>>,
    failures: parking_lot::Mutex<FailureLog>,
}

/// How often a listener logs failed handshakes: at most one line per
/// [`FAILURE_LOG_EVERY`], which counts those it did not log.
const FAILURE_LOG_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

#[derive(Default)]
struct FailureLog {
    last: Option<std::time::Instant>,
    suppressed: u64,
}

/// A configuration and what it was loaded from, for reload reports.
struct Loaded<C> {
    config: Arc<C>,
    summary: String,
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTls")
            .field("files", &self.files)
            .field("certificate", &self.current.read().summary)
            .finish()
    }
}

/// A server-side TLS stream over `S`.
pub type ServerStream<S> = tokio_rustls::server::TlsStream<S>;

impl ServerTls {
    /// Loads `files`.
    pub fn load(files: ServerTlsFiles) -> Result<ServerTls, TlsError> {
        let current = load_server(&files)?;
        Ok(ServerTls {
            files,
            current: RwLock::new(current),
            failures: parking_lot::Mutex::default(),
        })
    }

    /// The files it loads.
    pub fn files(&self) -> &ServerTlsFiles {
        &self.files
    }

    /// Whether clients must present a certificate (mutual TLS).
    pub fn mutual(&self) -> bool {
        self.files.client_ca.is_some()
    }

    /// The certificate served now: its subject and end of validity.
    pub fn summary(&self) -> String {
        self.current.read().summary.clone()
    }

    /// Re-reads the files: new connections get the new configuration, open
    /// ones keep theirs. On error the old configuration stays.
    pub fn reload(&self) -> Result<String, TlsError> {
        let loaded = load_server(&self.files)?;
        let summary = loaded.summary.clone();
        *self.current.write() = loaded;
        Ok(summary)
    }

    /// Notes a failed handshake; `Some(n)` when it is to be logged now,
    /// with `n` failures not logged since the last line (rate limit).
    pub fn failed_handshake(&self) -> Option<u64> {
        let mut log = self.failures.lock();
        let now = std::time::Instant::now();
        if log
            .last
            .is_some_and(|at| now.duration_since(at) < FAILURE_LOG_EVERY)
        {
            log.suppressed += 1;
            return None;
        }
        log.last = Some(now);
        Some(std::mem::take(&mut log.suppressed))
    }

    /// The configuration new connections get.
    pub fn config(&self) -> Arc<ServerConfig> {
        self.current.read().config.clone()
    }

    /// The TLS handshake on an accepted connection. Returns the stream and,
    /// with mutual TLS, the verified client certificate's subject.
    pub async fn accept<S>(&self, stream: S) -> io::Result<(ServerStream<S>, Option<Arc<str>>)>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let tls = TlsAcceptor::from(self.config()).accept(stream).await?;
        let subject = tls
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|chain| chain.first())
            .and_then(|leaf| subject(leaf))
            .map(Arc::from);
        Ok((tls, subject))
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn load_server(files: &ServerTlsFiles) -> Result<Loaded<ServerConfig>, TlsError> {
    let chain = certificates(&files.cert)?;
    let key = private_key(&files.key)?;
    let provider = provider();
    let rejected = |context: &str, e: &dyn std::fmt::Display| TlsError::Rejected {
        context: context.to_owned(),
        reason: e.to_string(),
    };
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(VERSIONS)
        .map_err(|e| rejected("protocol versions", &e))?;
    let builder = match &files.client_ca {
        Some(ca) => {
            let roots = roots(ca)?;
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| rejected(&ca.display().to_string(), &e))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let summary = describe(&chain[0]);
    let config = builder.with_single_cert(chain, key).map_err(|e| {
        rejected(
            &format!("{} with {}", files.cert.display(), files.key.display()),
            &e,
        )
    })?;
    Ok(Loaded {
        config: Arc::new(config),
        summary,
    })
}

/// The files and name of an endpoint link's TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientTlsFiles {
    /// PEM CA certificates the endpoint's certificate must chain to (the
    /// only roots trusted: the system store is not used).
    pub ca: PathBuf,
    /// PEM client certificate chain to present, if the endpoint asks.
    pub cert: Option<PathBuf>,
    /// Its PEM private key.
    pub key: Option<PathBuf>,
    /// The name to verify the endpoint's certificate against; `None`: the
    /// host part of the endpoint's address.
    pub server_name: Option<String>,
}

/// An endpoint link's TLS: reloadable client configuration.
pub struct ClientTls {
    files: ClientTlsFiles,
    server_name: Option<ServerName<'static>>,
    current: RwLock<Loaded<ClientConfig>>,
}

impl std::fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientTls")
            .field("files", &self.files)
            .field("loaded", &self.current.read().summary)
            .finish()
    }
}

impl ClientTls {
    /// Loads `files`.
    pub fn load(files: ClientTlsFiles) -> Result<ClientTls, TlsError> {
        let server_name = match &files.server_name {
            Some(name) => Some(server_name(name)?),
            None => None,
        };
        let current = load_client(&files)?;
        Ok(ClientTls {
            files,
            server_name,
            current: RwLock::new(current),
        })
    }

    /// The files it loads.
    pub fn files(&self) -> &ClientTlsFiles {
        &self.files
    }

    /// What is loaded now: the pinned CA and the client certificate.
    pub fn summary(&self) -> String {
        self.current.read().summary.clone()
    }

    /// Re-reads the files: new links get the new configuration, an open
    /// link keeps its own. On error the old configuration stays.
    pub fn reload(&self) -> Result<String, TlsError> {
        let loaded = load_client(&self.files)?;
        let summary = loaded.summary.clone();
        *self.current.write() = loaded;
        Ok(summary)
    }

    /// The configuration new links get.
    pub fn config(&self) -> Arc<ClientConfig> {
        self.current.read().config.clone()
    }

    /// The name verified for a link to `address`.
    pub fn server_name_for(&self, address: &str) -> io::Result<ServerName<'static>> {
        match &self.server_name {
            Some(name) => Ok(name.clone()),
            None => server_name(host_of(address))
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e)),
        }
    }
}

fn load_client(files: &ClientTlsFiles) -> Result<Loaded<ClientConfig>, TlsError> {
    let roots = roots(&files.ca)?;
    let builder = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(VERSIONS)
        .map_err(|e| TlsError::Rejected {
            context: "protocol versions".into(),
            reason: e.to_string(),
        })?
        .with_root_certificates(roots);
    let mut summary = format!("CA {}", files.ca.display());
    let config = match (&files.cert, &files.key) {
        (Some(cert), Some(key)) => {
            let chain = certificates(cert)?;
            summary.push_str(&format!("; client certificate {}", describe(&chain[0])));
            builder
                .with_client_auth_cert(chain, private_key(key)?)
                .map_err(|e| TlsError::Rejected {
                    context: format!("{} with {}", cert.display(), key.display()),
                    reason: e.to_string(),
                })?
        }
        (None, None) => builder.with_no_client_auth(),
        _ => return Err(TlsError::CertWithoutKey),
    };
    Ok(Loaded {
        config: Arc::new(config),
        summary,
    })
}

/// The read half of a link, plain or TLS.
pub type LinkRead = Box<dyn AsyncRead + Send + Unpin>;
/// The write half of a link, plain or TLS.
pub type LinkWrite = Box<dyn AsyncWrite + Send + Unpin>;

/// Opens a link to `address` (`host:port`): plain TCP, or TLS per `tls`
/// (handshake done, the endpoint's certificate verified against the pinned
/// CA). A failed handshake is an error whose text names the TLS reason
/// (`invalid peer certificate: Expired`, `UnknownIssuer`, …).
pub async fn connect(address: &str, tls: Option<&ClientTls>) -> io::Result<(LinkRead, LinkWrite)> {
    let stream = TcpStream::connect(address).await?;
    let _ = stream.set_nodelay(true);
    let Some(tls) = tls else {
        let (read, write) = stream.into_split();
        return Ok((Box::new(read), Box::new(write)));
    };
    let name = tls.server_name_for(address)?;
    let stream = TlsConnector::from(tls.config())
        .connect(name, stream)
        .await
        .map_err(|e| io::Error::new(e.kind(), format!("TLS handshake with {address}: {e}")))?;
    let (read, write) = tokio::io::split(stream);
    Ok((Box::new(read), Box::new(write)))
}

/// The host part of `host:port` or `[v6]:port`.
fn host_of(address: &str) -> &str {
    if let Some(rest) = address.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    address.rsplit_once(':').map_or(address, |(host, _)| host)
}

fn server_name(name: &str) -> Result<ServerName<'static>, TlsError> {
    ServerName::try_from(name.to_owned()).map_err(|_| TlsError::ServerName(name.to_owned()))
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_owned(),
        source,
    })
}

/// Every PEM certificate of `path`, at least one.
fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = read(path)?;
    let bad = |reason: String| TlsError::Certificate {
        path: path.to_owned(),
        reason,
    };
    let chain = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(e.to_string()))?;
    if chain.is_empty() {
        return Err(bad("the file holds no CERTIFICATE block".into()));
    }
    for cert in &chain {
        if x509_parser::parse_x509_certificate(cert).is_err() {
            return Err(bad(
                "a CERTIFICATE block is not a valid X.509 certificate".into()
            ));
        }
    }
    Ok(chain)
}

fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let bytes = read(path)?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| TlsError::Key {
        path: path.to_owned(),
        reason: match e {
            rustls_pki_types::pem::Error::NoItemsFound => {
                "the file holds no PRIVATE KEY block".into()
            }
            e => e.to_string(),
        },
    })
}

fn roots(path: &Path) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in certificates(path)? {
        roots.add(cert).map_err(|e| TlsError::Certificate {
            path: path.to_owned(),
            reason: format!("not usable as a CA: {e}"),
        })?;
    }
    Ok(roots)
}

/// A certificate's subject, e.g. `CN=terminal-17, O=Acme`.
pub fn subject(cert: &CertificateDer<'_>) -> Option<String> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert).ok()?;
    Some(parsed.subject().to_string())
}

/// A certificate's subject and end of validity, for logs and reload reports.
fn describe(cert: &CertificateDer<'_>) -> String {
    match x509_parser::parse_x509_certificate(cert) {
        Ok((_, parsed)) => format!(
            "{} (valid until {})",
            parsed.subject(),
            parsed.validity().not_after
        ),
        Err(_) => "an unreadable certificate".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{
        BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, date_time_ymd,
    };
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    struct Dir(PathBuf);

    impl Dir {
        fn new(tag: &str) -> Dir {
            let p = std::env::temp_dir().join(format!("sy-tls-{tag}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&p);
            std::fs::create_dir_all(&p).unwrap();
            Dir(p)
        }
        fn write(&self, name: &str, text: &str) -> PathBuf {
            let p = self.0.join(name);
            std::fs::write(&p, text).unwrap();
            p
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.distinguished_name.push(DnType::CommonName, name);
        CertifiedIssuer::self_signed(p, KeyPair::generate().unwrap()).unwrap()
    }

    /// (certificate PEM, key PEM) signed by `ca`.
    fn leaf(ca: &CertifiedIssuer<'static, KeyPair>, cn: &str, expired: bool) -> (String, String) {
        let mut p =
            CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
        p.distinguished_name.push(DnType::CommonName, cn);
        p.distinguished_name.push(DnType::OrganizationName, "Acme");
        if expired {
            p.not_before = date_time_ymd(2020, 1, 1);
            p.not_after = date_time_ymd(2021, 1, 1);
        }
        let key = KeyPair::generate().unwrap();
        let cert = p.signed_by(&key, ca).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    fn server_files(dir: &Dir, (cert, key): &(String, String), ca: Option<&str>) -> ServerTlsFiles {
        ServerTlsFiles {
            cert: dir.write("server.pem", cert),
            key: dir.write("server.key", key),
            client_ca: ca.map(|pem| dir.write("client-ca.pem", pem)),
        }
    }

    fn client_files(dir: &Dir, ca: &str, cert: Option<&(String, String)>) -> ClientTlsFiles {
        ClientTlsFiles {
            ca: dir.write("ca.pem", ca),
            cert: cert.map(|(c, _)| dir.write("client.pem", c)),
            key: cert.map(|(_, k)| dir.write("client.key", k)),
            server_name: None,
        }
    }

    /// Serves one connection: echoes 4 bytes; returns the client subject
    /// or the handshake error.
    async fn serve_one(
        tls: Arc<ServerTls>,
    ) -> (
        String,
        tokio::task::JoinHandle<Result<Option<Arc<str>>, String>>,
    ) {
        let socket = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = socket.local_addr().unwrap().to_string();
        let task = tokio::spawn(async move {
            let (stream, _) = socket.accept().await.unwrap();
            let (mut s, subject) = tls.accept(stream).await.map_err(|e| e.to_string())?;
            let mut buf = [0u8; 4];
            s.read_exact(&mut buf).await.map_err(|e| e.to_string())?;
            s.write_all(&buf).await.map_err(|e| e.to_string())?;
            s.flush().await.map_err(|e| e.to_string())?;
            Ok(subject)
        });
        (addr, task)
    }

    async fn echo(addr: &str, client: &ClientTls) -> io::Result<Vec<u8>> {
        let (mut r, mut w) = connect(addr, Some(client)).await?;
        w.write_all(b"ping").await?;
        w.flush().await?;
        let mut buf = vec![0u8; 4];
        r.read_exact(&mut buf).await?;
        Ok(buf)
    }

    #[tokio::test]
    async fn mutual_tls_round_trip_gives_the_client_subject() {
        let dir = Dir::new("mtls");
        let ca = ca("Test CA");
        let server = ServerTls::load(server_files(
            &dir,
            &leaf(&ca, "switch", false),
            Some(&ca.pem()),
        ))
        .unwrap();
        assert!(server.mutual());
        let client = ClientTls::load(client_files(
            &dir,
            &ca.pem(),
            Some(&leaf(&ca, "terminal-17", false)),
        ))
        .unwrap();
        let (addr, task) = serve_one(Arc::new(server)).await;
        assert_eq!(echo(&addr, &client).await.unwrap(), b"ping");
        let subject = task.await.unwrap().unwrap();
        assert_eq!(subject.as_deref(), Some("CN=terminal-17, O=Acme"));
    }

    #[tokio::test]
    async fn mutual_tls_refuses_a_missing_or_foreign_client_certificate() {
        let dir = Dir::new("mtls-refused");
        let ca = ca("Test CA");
        let other = ca_other();
        let server = Arc::new(
            ServerTls::load(server_files(
                &dir,
                &leaf(&ca, "switch", false),
                Some(&ca.pem()),
            ))
            .unwrap(),
        );
        for cert in [None, Some(leaf(&other, "terminal-17", false))] {
            let client = ClientTls::load(client_files(&dir, &ca.pem(), cert.as_ref())).unwrap();
            let (addr, task) = serve_one(server.clone()).await;
            assert!(echo(&addr, &client).await.is_err());
            let err = task.await.unwrap().unwrap_err();
            assert!(
                err.contains("certificate") || err.contains("Certificate"),
                "{err}"
            );
        }
    }

    fn ca_other() -> CertifiedIssuer<'static, KeyPair> {
        ca("Other CA")
    }

    #[tokio::test]
    async fn a_client_refuses_an_expired_or_unpinned_server_certificate() {
        let dir = Dir::new("client-refuses");
        let ca = ca("Test CA");
        for (server_cert, reason) in [
            (leaf(&ca, "switch", true), "expired"),
            (leaf(&ca_other(), "switch", false), "issuer"),
        ] {
            let server = Arc::new(ServerTls::load(server_files(&dir, &server_cert, None)).unwrap());
            let client = ClientTls::load(client_files(&dir, &ca.pem(), None)).unwrap();
            let (addr, _task) = serve_one(server).await;
            let err = echo(&addr, &client).await.unwrap_err().to_string();
            assert!(err.to_lowercase().contains(reason), "{err}");
            assert!(err.starts_with("TLS handshake with"), "{err}");
        }
    }

    #[test]
    fn load_errors_name_the_file_and_the_reason() {
        let dir = Dir::new("errors");
        let ca = ca("Test CA");
        let (cert, key) = leaf(&ca, "switch", false);
        let missing = dir.0.join("missing.pem");
        let files = |cert: PathBuf, key: PathBuf| ServerTlsFiles {
            cert,
            key,
            client_ca: None,
        };
        let e = ServerTls::load(files(missing.clone(), dir.write("k", &key))).unwrap_err();
        assert!(
            matches!(&e, TlsError::Read { path, .. } if *path == missing),
            "{e}"
        );
        assert!(e.to_string().contains("cannot read"), "{e}");
        let e =
            ServerTls::load(files(dir.write("c", "not pem"), dir.write("k", &key))).unwrap_err();
        assert!(matches!(e, TlsError::Certificate { .. }), "{e}");
        let e = ServerTls::load(files(dir.write("c", &cert), dir.write("k2", &cert))).unwrap_err();
        assert!(matches!(e, TlsError::Key { .. }), "{e}");
        let (_, other_key) = leaf(&ca, "other", false);
        let e =
            ServerTls::load(files(dir.write("c", &cert), dir.write("k3", &other_key))).unwrap_err();
        assert!(matches!(e, TlsError::Rejected { .. }), "{e}");
        let mut client = client_files(&dir, &ca.pem(), Some(&(cert.clone(), key.clone())));
        client.key = None;
        assert!(matches!(
            ClientTls::load(client).unwrap_err(),
            TlsError::CertWithoutKey
        ));
        let mut client = client_files(&dir, &ca.pem(), None);
        client.server_name = Some("not a name!".into());
        assert!(matches!(
            ClientTls::load(client).unwrap_err(),
            TlsError::ServerName(_)
        ));
    }

    #[tokio::test]
    async fn a_bad_reload_keeps_the_old_configuration_and_a_good_one_swaps_it() {
        let dir = Dir::new("reload");
        let ca = ca("Test CA");
        let server = Arc::new(
            ServerTls::load(server_files(&dir, &leaf(&ca, "first", false), None)).unwrap(),
        );
        assert!(
            server.summary().contains("CN=first"),
            "{}",
            server.summary()
        );
        dir.write("server.pem", "garbage");
        assert!(server.reload().is_err());
        assert!(server.summary().contains("CN=first"));
        let client = ClientTls::load(client_files(&dir, &ca.pem(), None)).unwrap();
        let (addr, _task) = serve_one(server.clone()).await;
        assert_eq!(echo(&addr, &client).await.unwrap(), b"ping");
        let (cert, key) = leaf(&ca, "second", false);
        dir.write("server.pem", &cert);
        dir.write("server.key", &key);
        assert!(server.reload().unwrap().contains("CN=second"));
        let (addr, _task) = serve_one(server.clone()).await;
        assert_eq!(echo(&addr, &client).await.unwrap(), b"ping");
    }

    #[test]
    fn the_default_server_name_is_the_host_of_the_address() {
        assert_eq!(host_of("127.0.0.1:9000"), "127.0.0.1");
        assert_eq!(host_of("[::1]:9000"), "::1");
        assert_eq!(host_of("bank.example:443"), "bank.example");
    }
}
