//! [`PgStore`]: the engine's ports on PostgreSQL, for several switch nodes
//! sharing one database (tokio-postgres with a deadpool connection pool).
//!
//! Why tokio-postgres + deadpool: the ports that matter (tranlog, queue)
//! are futures, and tokio-postgres pipelines the statements of one
//! transaction in one round trip (admission sends `BEGIN`, its lock, its
//! lookup, its insert and `COMMIT` together); it needs no database at build
//! time (sqlx's checked queries do) and is the driver of the PostgreSQL
//! Rust ecosystem's own `postgres` crate. The store runs its connections on
//! a small runtime of its own, so that the synchronous ports (kv, counters,
//! plugin host calls) can wait for a query from any thread, the switch's
//! runtime included, without starving it.
//!
//! What each table does across nodes:
//! - `nodes`: one row per node id, with its heartbeat; a node refuses a
//!   node id another live node holds, and a live node takes over a dead
//!   one (see `nodes`);
//! - `tranlog`: ids are Snowflake ids with the node's ordinal; admission
//!   takes an advisory lock on the match key's hash, so that of two
//!   identical requests on two nodes exactly one matches the other;
//! - `saf`: claimed with `FOR UPDATE SKIP LOCKED` and a lease;
//! - `counters`: one row per bucket, added with an upsert: exact across
//!   nodes;
//! - `kv`: compare-and-set under the row's lock;
//! - `data_keys`: created under an advisory lock, one active key per tenant
//!   and purpose (a unique index), wrapped by the KEK every node shares.

mod batch;
mod kv;
mod nodes;
mod operator;
pub(crate) mod outbox;
mod saf;
pub(crate) mod schema;
pub(crate) mod shared_keys;
mod tranlog;

use std::collections::HashMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use parking_lot::Mutex;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject as _;
use switchyard_engine::ports::{PortError, PortFuture, TxId};
use tokio_postgres::NoTls;
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::error::SqlContext;
use crate::ids::IdGen;
use crate::keyring::{KeyRow, Keyring, Purpose, TENANT_KEYS};
use crate::secret::Secret;
use crate::{StoreError, kek, now_ms};

pub use kv::SharedSwap;
pub use nodes::{Beat, NodeInfo};
pub(crate) use operator::PgOperator;
pub use schema::PG_SCHEMA_VERSION;

/// Where a PostgreSQL store is and who this node is.
#[derive(Debug, Clone)]
pub struct PgOptions {
    /// `postgres://user[:password]@host:port/dbname`.
    pub url: String,
    /// The key-encryption key's file: the same on every node.
    pub kek_path: PathBuf,
    /// This node's id, unique among the nodes of the database.
    pub node: String,
    /// Connections in the pool.
    pub pool_size: usize,
    /// A node whose heartbeat is older than this is dead.
    pub node_lease: Duration,
    /// Register as the node (a switch); false for operator tools that open
    /// a stopped node's store (they take no node id, send nothing).
    pub register: bool,
    /// The PEM certificates of the CA(s) the server's certificate must
    /// chain to: connections use TLS (rustls, the server's name or IP
    /// checked against the url's host). None: plain TCP, and
    /// `sslmode=require` is refused.
    pub ca_file: Option<PathBuf>,
}

/// The default pool size.
pub const DEFAULT_POOL_SIZE: usize = 16;
/// The default node lease.
pub const DEFAULT_NODE_LEASE: Duration = Duration::from_secs(10);

/// The PostgreSQL implementation of the engine's ports.
pub struct PgStore {
    pub(crate) pool: Pool,
    runtime: Mutex<Option<tokio::runtime::Runtime>>,
    handle: tokio::runtime::Handle,
    /// The database, without credentials (errors and logs).
    pub(crate) label: Arc<str>,
    pub(crate) node: String,
    /// This start of the node (its heartbeat row names it).
    pub(crate) instance: String,
    pub(crate) lease: Duration,
    pub(crate) kek_path: PathBuf,
    pub(crate) keyring: Arc<Keyring>,
    pub(crate) ids: IdGen,
    /// The tenant of each row admitted here and not finished yet.
    pub(crate) tenants: Mutex<HashMap<TxId, String>>,
    pub(crate) counters_secret: Secret,
    /// `meta.keys_changed` as this node last saw it.
    pub(crate) keys_seen: Mutex<Option<String>>,
    batches: Batches,
    closed: AtomicBool,
    me: Weak<PgStore>,
}

/// The group commits of the tranlog's writes.
pub(crate) struct Batches {
    pub(crate) admits: batch::Batcher<tranlog::NewRow, Option<tranlog::Found>>,
    pub(crate) sends: batch::Batcher<(TxId, String), ()>,
    pub(crate) finishes: batch::Batcher<tranlog::Outcome, ()>,
}

/// Batches of at most this many writes.
const MAX_BATCH: usize = 256;

/// Batches of each kind in flight at once. One: measured on 2 cores with
/// 64 transactions in flight, 1 lane gave 9.1k authorizations/s, 2 lanes
/// 7.7k, 4 lanes 5.8k (fewer, larger commits cost PostgreSQL less).
const LANES: usize = 1;

impl Batches {
    fn start(handle: &tokio::runtime::Handle, me: &Weak<PgStore>, lanes: usize) -> Batches {
        macro_rules! batcher {
            ($run:path) => {{
                let me = me.clone();
                batch::Batcher::start(handle, lanes, MAX_BATCH, move |items| {
                    let me = me.upgrade();
                    async move {
                        match me {
                            Some(me) => $run(&me, items).await,
                            None => Err(StoreError::Closed),
                        }
                    }
                })
            }};
        }
        Batches {
            admits: batcher!(tranlog::admit_batch),
            sends: batcher!(tranlog::sent_batch),
            finishes: batcher!(tranlog::finish_batch),
        }
    }
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("db", &self.label)
            .field("node", &self.node)
            .finish_non_exhaustive()
    }
}

/// The database `url` names, without its credentials.
pub fn describe_url(url: &str) -> String {
    match url.parse::<tokio_postgres::Config>() {
        Ok(c) => {
            let host = c
                .get_hosts()
                .first()
                .map(|h| match h {
                    tokio_postgres::config::Host::Tcp(h) => h.clone(),
                    tokio_postgres::config::Host::Unix(p) => p.display().to_string(),
                })
                .unwrap_or_else(|| "localhost".into());
            let port = c.get_ports().first().copied().unwrap_or(5432);
            let db = c.get_dbname().unwrap_or("");
            format!("postgres://{host}:{port}/{db}")
        }
        Err(_) => "postgres://(unparsable url)".into(),
    }
}

/// Whether `url` is a PostgreSQL URL the driver accepts (the reason when
/// not, without the URL's credentials).
pub fn check_url(url: &str) -> Result<(), String> {
    url.parse::<tokio_postgres::Config>()
        .map(|_| ())
        .map_err(|e| crate::error::pg_detail(&e))
}

fn runtime() -> Result<tokio::runtime::Runtime, StoreError> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("store-pg")
        .enable_all()
        .build()
        .map_err(|e| StoreError::Invalid(format!("starting the PostgreSQL store's runtime: {e}")))
}

/// Runs `f` on a runtime of its own and waits (the CLI's `db migrate`).
fn run_blocking<T: Send + 'static>(
    f: impl Future<Output = Result<T, StoreError>> + Send + 'static,
) -> Result<T, StoreError> {
    let rt = runtime()?;
    let handle = rt.spawn(f);
    let result = futures::executor::block_on(handle)
        .unwrap_or_else(|e| Err(StoreError::Invalid(format!("a store task failed: {e}"))));
    rt.shutdown_background();
    result
}

/// A statement that runs longer fails (the transaction is answered 96)
/// instead of holding a connection: a lock wait behind a stalled node, a
/// runaway query. Unless the url's `options` set `statement_timeout`.
pub const STATEMENT_TIMEOUT: &str = "5s";

/// Bounds how long a connection can hang on a database or network that
/// stopped answering: TCP keepalives on idle connections (a dead peer is
/// found in about 25 s), a TCP user timeout on unacknowledged writes
/// (10 s), and [`STATEMENT_TIMEOUT`] on every statement.
fn guard_connections(config: &mut tokio_postgres::Config) {
    config
        .keepalives(true)
        .keepalives_idle(Duration::from_secs(10))
        .keepalives_interval(Duration::from_secs(5))
        .keepalives_retries(3)
        .tcp_user_timeout(Duration::from_secs(10));
    let options = config.get_options().unwrap_or("").to_string();
    if !options.contains("statement_timeout") {
        let timeout = format!("-c statement_timeout={STATEMENT_TIMEOUT}");
        let options = if options.is_empty() {
            timeout
        } else {
            format!("{options} {timeout}")
        };
        config.options(options);
    }
}

/// The TLS connector of `config`'s connections, if any: with a CA file,
/// TLS is required (a `prefer` url does not fall back to plain TCP);
/// without one, `sslmode=require` is refused and the rest is plain TCP.
fn tls_of(
    config: &mut tokio_postgres::Config,
    ca_file: Option<&Path>,
    label: &str,
) -> Result<Option<MakeRustlsConnect>, StoreError> {
    use tokio_postgres::config::SslMode;
    let mode = config.get_ssl_mode();
    let Some(ca_file) = ca_file.filter(|_| mode != SslMode::Disable) else {
        if mode == SslMode::Require {
            return Err(StoreError::Invalid(format!(
                "store.url {label}: sslmode=require needs store.ca_file, the PEM certificates of the CA that signed the server's certificate"
            )));
        }
        return Ok(None);
    };
    config.ssl_mode(SslMode::Require);
    let bad = |e: &dyn std::fmt::Display| {
        StoreError::Invalid(format!("store.ca_file {}: {e}", ca_file.display()))
    };
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca_file).map_err(|e| bad(&e))? {
        roots.add(cert.map_err(|e| bad(&e))?).map_err(|e| bad(&e))?;
    }
    if roots.is_empty() {
        return Err(bad(&"no certificate in the file"));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| bad(&e))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Some(MakeRustlsConnect::new(tls)))
}

fn pool_of(
    url: &str,
    size: usize,
    label: &str,
    ca_file: Option<&Path>,
) -> Result<Pool, StoreError> {
    let mut config: tokio_postgres::Config = url.parse().map_err(|e| {
        StoreError::Invalid(format!(
            "store.url {label}: {}",
            crate::error::pg_detail(&e)
        ))
    })?;
    if config.get_application_name().is_none() {
        config.application_name("switchyard");
    }
    config.connect_timeout(Duration::from_secs(10));
    guard_connections(&mut config);
    let manager_config = ManagerConfig {
        recycling_method: RecyclingMethod::Fast,
    };
    let manager = match tls_of(&mut config, ca_file, label)? {
        Some(tls) => Manager::from_config(config, tls, manager_config),
        None => Manager::from_config(config, NoTls, manager_config),
    };
    Pool::builder(manager)
        .max_size(size.max(1))
        .runtime(deadpool_postgres::Runtime::Tokio1)
        .wait_timeout(Some(Duration::from_secs(30)))
        .create_timeout(Some(Duration::from_secs(10)))
        .build()
        .map_err(|e| StoreError::Invalid(format!("store.url {label}: {e}")))
}

/// Runs the migrations of the database at `url` (`switchyard db
/// migrate`); returns (from, to) versions.
pub fn migrate_url(url: &str, ca_file: Option<&Path>) -> Result<(i32, i32), StoreError> {
    let label = describe_url(url);
    let pool = pool_of(url, 1, &label, ca_file)?;
    run_blocking(async move {
        let mut client = pool.get().await.what(&format!("connecting to {label}"))?;
        schema::migrate(&mut client).await
    })
}

/// The nodes of the database at `url` (`switchyard db nodes`).
pub fn nodes_of_url(url: &str, ca_file: Option<&Path>) -> Result<Vec<NodeInfo>, StoreError> {
    let label = describe_url(url);
    let pool = pool_of(url, 1, &label, ca_file)?;
    run_blocking(async move {
        let client = pool.get().await.what(&format!("connecting to {label}"))?;
        nodes::list(&client).await
    })
}

impl PgStore {
    /// Connects, migrates, registers this node (refused while another live
    /// node holds its id) and loads the keys.
    pub fn open(options: PgOptions) -> Result<Arc<PgStore>, StoreError> {
        let label: Arc<str> = describe_url(&options.url).into();
        if let Some(dir) = options
            .kek_path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
        {
            crate::files::private_dir(dir)?;
        }
        let rt = runtime()?;
        let handle = rt.handle().clone();
        let pool = pool_of(
            &options.url,
            options.pool_size,
            &label,
            options.ca_file.as_deref(),
        )?;
        let instance = hex::encode(crate::secret::random_nonce());
        let opened = {
            let (pool, label, options, instance) = (
                pool.clone(),
                label.clone(),
                options.clone(),
                instance.clone(),
            );
            futures::executor::block_on(
                handle.spawn(async move { open_async(&pool, &label, &options, &instance).await }),
            )
            .unwrap_or_else(|e| Err(StoreError::Invalid(format!("opening the store: {e}"))))
        };
        let (keyring, ordinal, floor, keys_seen) = match opened {
            Ok(v) => v,
            Err(e) => {
                rt.shutdown_background();
                return Err(e);
            }
        };
        let keyring = Arc::new(keyring);
        let counters_secret = keyring
            .lookup("", Purpose::Counters)
            .ok_or_else(|| StoreError::Corrupt("the counters' lookup key is missing".into()))?;
        tracing::info!(db = %label, node = %options.node, ordinal,
            kek = %keyring.kek().fingerprint, "store open (PostgreSQL)");
        Ok(Arc::new_cyclic(|me| PgStore {
            pool,
            runtime: Mutex::new(Some(rt)),
            handle: handle.clone(),
            label,
            node: options.node,
            instance,
            lease: options.node_lease,
            kek_path: options.kek_path,
            keyring,
            ids: IdGen::new(ordinal, floor),
            tenants: Mutex::default(),
            counters_secret,
            keys_seen: Mutex::new(keys_seen),
            batches: Batches::start(&handle, me, LANES),
            closed: AtomicBool::new(false),
            me: me.clone(),
        }))
    }

    /// The database, without credentials.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// This node's id.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// The key counters hash their keys with.
    pub fn lookup_secret(&self) -> Secret {
        self.counters_secret.clone()
    }

    /// Marks this node stopped (a clean shutdown: nothing to take over),
    /// closes the pool and stops the store's runtime. Idempotent.
    pub fn close(&self) {
        if self.closed.swap(true, Ordering::SeqCst) {
            return;
        }
        if let Some(me) = self.me.upgrade() {
            let stopped = futures::executor::block_on(
                self.handle.spawn(async move { nodes::stopped(&me).await }),
            );
            if let Ok(Err(e)) = stopped {
                tracing::warn!(db = %self.label, node = %self.node, error = %e,
                    "marking the node stopped");
            }
        }
        self.pool.close();
        if let Some(rt) = self.runtime.lock().take() {
            rt.shutdown_background();
        }
    }

    /// Runs `f` on the store's runtime; resolves with its result.
    pub(crate) fn task<T, F, Fut>(&self, f: F) -> PortFuture<T>
    where
        T: Send + 'static,
        F: FnOnce(Arc<PgStore>) -> Fut,
        Fut: Future<Output = Result<T, StoreError>> + Send + 'static,
    {
        let label = self.label.clone();
        let me = match self.me.upgrade() {
            Some(me) if !self.closed.load(Ordering::Relaxed) => me,
            _ => return Box::pin(std::future::ready(Err(PortError::Closed))),
        };
        let handle = self.handle.spawn(f(me));
        Box::pin(async move {
            match handle.await {
                Ok(r) => r.map_err(|e| e.into_port(&label)),
                Err(_) => Err(PortError::Closed),
            }
        })
    }

    /// [`PgStore::task`], waited for here (the synchronous ports).
    pub(crate) fn blocking<T, F, Fut>(&self, f: F) -> Result<T, PortError>
    where
        T: Send + 'static,
        F: FnOnce(Arc<PgStore>) -> Fut,
        Fut: Future<Output = Result<T, StoreError>> + Send + 'static,
    {
        futures::executor::block_on(self.task(f))
    }

    pub(crate) fn batches(&self) -> &Batches {
        &self.batches
    }

    /// A pooled connection.
    pub(crate) async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.pool
            .get()
            .await
            .what(&format!("connecting to {}", self.label))
    }

    /// Reads every key again (after another node created or rotated one).
    pub(crate) async fn reload_keys(&self) -> Result<(), StoreError> {
        let client = self.client().await?;
        let rows = read_keys(&client).await?;
        self.keyring.load(rows)?;
        self.keyring.mark_all_durable();
        Ok(())
    }

    /// Creates `tenant`'s keys on its first use (under the key lock: one
    /// node creates them, the others load them).
    pub(crate) async fn ensure_tenant(&self, tenant: &str) -> Result<(), StoreError> {
        if self.keyring.tenant_ready(tenant) {
            return Ok(());
        }
        let mut client = self.client().await?;
        create_keys(&mut client, &self.keyring, tenant, &TENANT_KEYS).await?;
        let rows = read_keys(&client).await?;
        self.keyring.load(rows)?;
        self.keyring.mark_all_durable();
        Ok(())
    }

    /// Decrypts `sealed`; reads the keys again once when it names a key
    /// this node has not loaded (another node created it).
    pub(crate) async fn open_sealed(
        &self,
        sealed: &[u8],
        identity: &[u8],
    ) -> Result<Vec<u8>, StoreError> {
        match self.keyring.open(sealed, identity) {
            Err(StoreError::UnknownKey(_)) => {
                self.reload_keys().await?;
                self.keyring.open(sealed, identity)
            }
            other => other,
        }
    }

    /// The PAN token of `pan` for `tenant`.
    pub(crate) async fn pan_token_of(
        &self,
        tenant: &str,
        pan: &str,
    ) -> Result<[u8; 32], StoreError> {
        self.ensure_tenant(tenant).await?;
        let key = self
            .keyring
            .lookup(tenant, Purpose::Pan)
            .ok_or_else(|| StoreError::Invalid(format!("tenant {tenant} has no PAN lookup key")))?;
        Ok(key.mac(pan.as_bytes()))
    }
}

impl Drop for PgStore {
    fn drop(&mut self) {
        self.close();
    }
}

/// What opening finds: the keyring, this node's ordinal and the highest
/// tranlog id.
type Opened = (Keyring, u16, i64, Option<String>);

async fn open_async(
    pool: &Pool,
    label: &str,
    options: &PgOptions,
    instance: &str,
) -> Result<Opened, StoreError> {
    let mut client = pool.get().await.what(&format!("connecting to {label}"))?;
    let (from, to) = schema::migrate(&mut client).await?;
    if from != to {
        tracing::info!(db = %label, from, to, "PostgreSQL schema migrated");
    }
    let recorded = schema::meta(&client, "kek_fingerprint").await?;
    let (kek, _) = kek::open(&options.kek_path, recorded.as_deref())?;
    if recorded.is_none() {
        client
            .execute(
                "INSERT INTO meta (name, value) VALUES ('kek_fingerprint', $1), ('kek_created_ms', $2)
                 ON CONFLICT (name) DO NOTHING",
                &[&kek.fingerprint, &now_ms().to_string()],
            )
            .await
            .what("recording the key-encryption key")?;
        let now = schema::meta(&client, "kek_fingerprint").await?;
        if now.as_deref() != Some(kek.fingerprint.as_str()) {
            return Err(StoreError::KeyFile {
                path: options.kek_path.display().to_string(),
                reason: format!(
                    "holds key-encryption key {}, but another node first recorded {} in {label}: \
                     copy that node's key file here",
                    kek.fingerprint,
                    now.unwrap_or_default()
                ),
            });
        }
    }
    let ordinal = if options.register {
        nodes::register(&mut client, options, instance).await?
    } else {
        0
    };
    // The counters' lookup key (tenant ""), once for the whole database.
    let keyring = Keyring::empty(kek);
    keyring.load(read_keys(&client).await?)?;
    create_keys(&mut client, &keyring, "", &[Purpose::Counters]).await?;
    keyring.load(read_keys(&client).await?)?;
    keyring.mark_all_durable();
    let floor: i64 = client
        .query_one("SELECT coalesce(max(id), 0) FROM tranlog", &[])
        .await
        .what("reading the last tranlog id")?
        .get(0);
    let keys_seen = schema::meta(&client, "keys_changed").await?;
    Ok((keyring, ordinal, floor, keys_seen))
}

async fn read_keys(client: &tokio_postgres::Client) -> Result<Vec<KeyRow>, StoreError> {
    let rows = client
        .query(
            "SELECT id, tenant, purpose, state, wrapped FROM data_keys ORDER BY id",
            &[],
        )
        .await
        .what("reading the data keys")?;
    Ok(rows
        .iter()
        .map(|r| KeyRow {
            id: r.get(0),
            tenant: r.get(1),
            purpose: r.get(2),
            state: r.get(3),
            wrapped: r.get(4),
        })
        .collect())
}

/// Creates the keys of `purposes` `tenant` lacks, under the key lock.
async fn create_keys(
    client: &mut tokio_postgres::Client,
    keyring: &Keyring,
    tenant: &str,
    purposes: &[Purpose],
) -> Result<(), StoreError> {
    let tx = client.transaction().await.what("creating keys")?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&schema::KEYS_LOCK])
        .await
        .what("waiting for the key lock")?;
    let have: Vec<String> = tx
        .query(
            "SELECT purpose FROM data_keys WHERE tenant = $1 AND state = 'active'",
            &[&tenant],
        )
        .await
        .what("reading a tenant's keys")?
        .iter()
        .map(|r| r.get(0))
        .collect();
    for purpose in purposes {
        if have.iter().any(|p| p == purpose.name()) {
            continue;
        }
        insert_key(&tx, keyring, tenant, *purpose).await?;
    }
    tx.commit().await.what("creating keys")
}

/// Inserts a new active key (the caller retired the old one).
pub(crate) async fn insert_key(
    tx: &tokio_postgres::Transaction<'_>,
    keyring: &Keyring,
    tenant: &str,
    purpose: Purpose,
) -> Result<i64, StoreError> {
    let id: i64 = tx
        .query_one("SELECT nextval('data_keys_id_seq')", &[])
        .await
        .what("allocating a key id")?
        .get(0);
    let (_material, wrapped, kek) = keyring.new_wrapped(id, tenant, purpose)?;
    tx.execute(
        "INSERT INTO data_keys (id, tenant, purpose, state, created_ms, kek, wrapped)
         VALUES ($1, $2, $3, 'active', $4, $5, $6)",
        &[&id, &tenant, &purpose.name(), &now_ms(), &kek, &wrapped],
    )
    .await
    .what("creating a data key")?;
    tracing::info!(key = id, tenant, purpose = purpose.name(), "created a key");
    Ok(id)
}
