//! [`SqliteStore`]: opening the data directory (modes, schema, migration,
//! KEK), the writer thread and the read pool, and the helpers every port
//! uses.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Weak};
use std::time::Duration;

use parking_lot::Mutex;
use rusqlite::Connection;
use switchyard_engine::ports::{PortError, PortFuture};

use crate::error::SqlContext;
use crate::ids::IdGen;
use crate::keyring::{Keyring, Purpose};
use crate::legacy::LegacySecret;
use crate::readers::Readers;
use crate::schema::{self, Found};
use crate::secret::Secret;
use crate::tranlog::Pending;
use crate::writer::{Batch, Writer, WriterStats};
use crate::{StoreError, files, kek};

/// Where the store keeps its data.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// The SQLite database (`<data_dir>/switchyard.db`).
    pub db_path: PathBuf,
    /// The key-encryption key (`<data_dir>/keys/kek.key`).
    pub kek_path: PathBuf,
    /// This node's id (`node-1`): rows it handles and leases it holds.
    pub node: String,
    /// Memory of the filter that spares admission a database read for a
    /// key never seen (see `recent`), MiB; 0 turns it off.
    pub duplicate_filter_mib: usize,
}

/// The default size of the duplicate filter, MiB.
pub const DEFAULT_DUPLICATE_FILTER_MIB: usize = 64;

/// The SQLite implementation of the engine's ports: [`Tranlog`],
/// [`SafQueue`], [`Keyring`], [`KvStore`], [`CounterStore`],
/// [`SwapHistory`].
///
/// [`CounterStore`]: switchyard_engine::ports::CounterStore
/// [`Tranlog`]: switchyard_engine::ports::Tranlog
/// [`SafQueue`]: switchyard_engine::ports::SafQueue
/// [`Keyring`]: switchyard_engine::ports::Keyring
/// [`KvStore`]: switchyard_engine::ports::KvStore
/// [`SwapHistory`]: switchyard_engine::ports::SwapHistory
pub struct SqliteStore {
    pub(crate) db: Arc<str>,
    pub(crate) kek_path: PathBuf,
    pub(crate) node: String,
    pub(crate) writer: Writer,
    pub(crate) readers: Readers,
    pub(crate) keyring: Arc<Keyring>,
    pub(crate) pending: Arc<Pending>,
    pub(crate) staging: Arc<crate::staging::Staging>,
    pub(crate) recent: crate::recent::RecentKeys,
    pub(crate) ids: IdGen,
    pub(crate) kek_rotation: Mutex<()>,
    pub(crate) reencrypting: Arc<AtomicBool>,
    pub(crate) me: Weak<SqliteStore>,
    /// The counters in memory (the authority for add-and-sum).
    pub(crate) counters: crate::Counters,
    /// Their changes on the way to the database.
    pub(crate) counter_log: Arc<crate::counter_log::CounterLog>,
    counters_secret: Secret,
    _temp: Option<tempfile::TempDir>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("db", &self.db)
            .field("node", &self.node)
            .finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens (creating, or migrating from the v1 layout) the store.
    pub fn open(options: StoreOptions) -> Result<Arc<SqliteStore>, StoreError> {
        SqliteStore::open_with(options, None)
    }

    /// A store in a temporary directory, removed when it is dropped (tests
    /// and benches). Panics if the directory cannot be created.
    pub fn in_memory(node: &str) -> Arc<SqliteStore> {
        let dir = tempfile::tempdir().expect("creating a temporary directory for the store");
        let options = StoreOptions {
            db_path: dir.path().join("switchyard.db"),
            kek_path: dir.path().join("keys").join("kek.key"),
            node: node.to_string(),
            duplicate_filter_mib: 4,
        };
        SqliteStore::open_with(options, Some(dir))
            .expect("opening a store in a temporary directory")
    }

    fn open_with(
        options: StoreOptions,
        temp: Option<tempfile::TempDir>,
    ) -> Result<Arc<SqliteStore>, StoreError> {
        let StoreOptions {
            db_path,
            kek_path,
            node,
            duplicate_filter_mib,
        } = options;
        for path in [&db_path, &kek_path] {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                files::private_dir(dir)?;
            }
        }
        files::private_file(&db_path)?;
        for suffix in ["-wal", "-shm", "-journal"] {
            files::tighten_if_present(&files::with_suffix(&db_path, suffix))?;
        }
        let db: Arc<str> = db_path.display().to_string().into();
        let at = |e: StoreError| match e {
            StoreError::Sqlite { what, source } => StoreError::Sqlite {
                what: format!("database {db}: {what}"),
                source,
            },
            other => other,
        };
        let mut conn = Connection::open(&db_path).what("opening").map_err(at)?;
        configure(&conn).map_err(at)?;
        let found = schema::detect(&conn).map_err(at)?;
        if let Found::Version(v) = found
            && v > schema::CURRENT
        {
            return Err(StoreError::Migration {
                from: v,
                reason: format!("{db} was written by a newer version (schema v{v})"),
            });
        }
        let recorded = schema::recorded_kek(&conn, found).map_err(at)?;
        let (kek, _) = kek::open(&kek_path, recorded.as_deref())?;
        let keyring = Arc::new(Keyring::empty(kek));
        let legacy_path = kek_path.with_file_name("store.key");
        match found {
            Found::Empty => schema::create(&mut conn, &keyring).map_err(at)?,
            Found::V1 => {
                let legacy = match std::fs::read(&legacy_path) {
                    Ok(bytes) => Some(LegacySecret::from_master(
                        bytes
                            .as_slice()
                            .try_into()
                            .map_err(|_| StoreError::KeyFile {
                                path: legacy_path.display().to_string(),
                                reason: format!("expected 32 bytes, found {}", bytes.len()),
                            })?,
                    )),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                    Err(e) => {
                        return Err(StoreError::io(&legacy_path, "reading the v1 key file")(e));
                    }
                };
                let values =
                    schema::migrate_v1(&mut conn, &keyring, legacy.as_ref()).map_err(at)?;
                tracing::info!(db = %db, kv_values = values, "migrated the store from schema v1");
            }
            Found::Version(v) if v < schema::CURRENT => {
                schema::migrate(&mut conn, v).map_err(at)?;
                tracing::info!(db = %db, from = v, to = schema::CURRENT, "migrated the store's schema");
            }
            Found::Version(_) => {}
        }
        keyring.reload(&conn).map_err(at)?;
        if legacy_path.exists() {
            // Migrated (now, or before a crash): the v1 secret is not needed.
            files::remove_synced(&legacy_path)?;
            tracing::info!(path = %legacy_path.display(), "removed the v1 key file");
        }
        if keyring.lookup("", Purpose::Counters).is_none() {
            let tx = conn
                .transaction()
                .what("creating the counters key")
                .map_err(at)?;
            keyring
                .create(&tx, "", Purpose::Counters, None)
                .map_err(at)?;
            tx.commit().what("creating the counters key").map_err(at)?;
        }
        keyring.mark_all_durable();
        let counters_secret = keyring
            .lookup("", Purpose::Counters)
            .expect("created above");
        let counters = crate::Counters::new(counters_secret.clone());
        let buckets =
            crate::counter_log::restore(&conn, &counters, crate::counters::now_s()).map_err(at)?;
        let max_id: i64 = conn
            .query_row("SELECT coalesce(max(id), 0) FROM tranlog", [], |r| r.get(0))
            .what("reading the last tranlog id")
            .map_err(at)?;
        let recent = crate::recent::RecentKeys::new(duplicate_filter_mib);
        crate::tranlog::fill_recent(&conn, &recent).map_err(at)?;
        let readers = Readers::open(&db_path).map_err(at)?;
        for suffix in ["-wal", "-shm"] {
            files::tighten_if_present(&files::with_suffix(&db_path, suffix))?;
        }
        // From here on the writer's syncer makes every commit durable (an
        // fdatasync of the WAL) before anyone hears of it.
        conn.pragma_update(None, "synchronous", "NORMAL")
            .what("setting synchronous = NORMAL")
            .map_err(at)?;
        let writer = Writer::start(conn, db_path.clone(), keyring.clone(), db.clone());
        tracing::info!(db = %db, node = %node, kek = %keyring.kek().fingerprint,
            counter_buckets = buckets, "store open");
        Ok(Arc::new_cyclic(|me| SqliteStore {
            db,
            kek_path,
            node,
            writer,
            readers,
            keyring,
            pending: Arc::new(Pending::new()),
            staging: Arc::new(crate::staging::Staging::new()),
            recent,
            ids: IdGen::new(0, max_id),
            kek_rotation: Mutex::new(()),
            reencrypting: Arc::new(AtomicBool::new(false)),
            me: me.clone(),
            counters,
            counter_log: Arc::default(),
            counters_secret,
            _temp: temp,
        }))
    }

    /// Runs what is queued (counter changes not written yet included),
    /// checkpoints and stops the writer thread. Later calls fail with
    /// [`PortError::Closed`]. Idempotent.
    pub fn close(&self) {
        if !self.writer.is_closed() {
            self.queue_counter_flush();
        }
        self.writer.close();
    }

    /// The key counters hash their keys with (stored wrapped like every
    /// key; the same across restarts). The store is itself the durable
    /// `CounterStore`; a [`Counters`](crate::Counters) built on this key
    /// is in memory only.
    pub fn lookup_secret(&self) -> Secret {
        self.counters_secret.clone()
    }

    /// The group commit's counters.
    pub fn writer_stats(&self) -> WriterStats {
        self.writer.stats()
    }

    /// The database file.
    pub fn path(&self) -> &str {
        &self.db
    }

    /// The port error of a store error.
    pub(crate) fn port(&self, e: StoreError) -> PortError {
        e.into_port(&self.db)
    }

    /// A future already resolved.
    pub(crate) fn ready<T: Send + 'static>(&self, r: Result<T, StoreError>) -> PortFuture<T> {
        let r = r.map_err(|e| self.port(e));
        Box::pin(std::future::ready(r))
    }

    /// Queues `work` on the writer; resolves after its commit.
    pub(crate) fn durable<T, F>(&self, atomic: bool, work: F) -> PortFuture<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Batch<'_>) -> Result<T, StoreError> + Send + 'static,
    {
        let db = self.db.clone();
        match self.writer.submit(atomic, work, None) {
            Ok(rx) => Box::pin(async move {
                rx.await
                    .unwrap_or(Err(StoreError::Closed))
                    .map_err(|e| e.into_port(&db))
            }),
            Err(e) => self.ready(Err(e)),
        }
    }

    /// Runs a read on a pooled connection; retries when a data key was
    /// destroyed under an older snapshot (its rows were re-encrypted), and
    /// after reading the keyring again when a value names a key another
    /// process created.
    pub(crate) fn read<T>(
        &self,
        mut f: impl FnMut(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        if self.writer.is_closed() {
            return Err(StoreError::Closed);
        }
        let mut tries = 0;
        loop {
            let result = f(&self.readers.get());
            match result {
                Err(StoreError::KeyDestroyed(_)) if tries < 3 => tries += 1,
                Err(StoreError::UnknownKey(_)) if tries < 3 && !on_writer_thread() => {
                    tries += 1;
                    self.refresh_keys()?;
                }
                other => return other,
            }
        }
    }

    /// Reads the keyring again if another process changed the database
    /// (waits for one batch of the writer: each batch checks).
    pub(crate) fn refresh_keys(&self) -> Result<(), StoreError> {
        self.writer.run_blocking(false, |_| Ok(()))
    }

    /// Whether the database holds keys this process has not loaded
    /// (another process created them).
    pub(crate) fn keys_created_elsewhere(&self) -> Result<bool, StoreError> {
        let next = self.keyring.next_id();
        let max: i64 = self.read(|conn| {
            conn.prepare_cached("SELECT coalesce(max(id), 0) FROM data_keys")
                .and_then(|mut s| s.query_row([], |r| r.get(0)))
                .what("reading the data keys")
        })?;
        Ok(max >= next)
    }

    /// Creates `tenant`'s keys on its first use (waits for one commit,
    /// once per tenant).
    pub(crate) fn ensure_tenant(&self, tenant: &str) -> Result<(), StoreError> {
        if self.keyring.tenant_ready(tenant) {
            return Ok(());
        }
        let keyring = self.keyring.clone();
        let t = tenant.to_string();
        self.writer.run_blocking(true, move |b| {
            b.keyring.ensure_tenant(b.conn, &t)?;
            b.on_commit(move || keyring.mark_durable(&t));
            Ok(())
        })
    }
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        self.close();
    }
}

/// Whether this is the writer thread (which must not wait for itself).
fn on_writer_thread() -> bool {
    std::thread::current().name() == Some("store-writer")
}

fn configure(conn: &Connection) -> Result<(), StoreError> {
    let mode: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
        .what("enabling WAL")?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Invalid(format!("journal mode {mode}, not WAL")));
    }
    // FULL while the store opens (migrations, an interrupted key rotation
    // settled, keys created: each commit fsynced before the next step);
    // the writer then runs NORMAL behind its syncer (see `writer`).
    conn.pragma_update(None, "synchronous", "FULL")
        .what("setting synchronous = FULL")?;
    conn.busy_timeout(Duration::from_secs(5))
        .what("setting the busy timeout")?;
    // Checkpoints every 16 MiB of WAL rather than 4 MiB: fewer fsyncs of
    // the database file on the writer's path.
    conn.pragma_update(None, "wal_autocheckpoint", 4096)
        .what("setting the checkpoint interval")?;
    conn.pragma_update(None, "journal_size_limit", 64 * 1024 * 1024)
        .what("setting the WAL size limit")?;
    // 16 MiB of page cache. Not more: at every commit SQLite walks the
    // page cache's hash table (`pcache1TruncateUnsafe`, 11% of the writer's
    // time at 64 MiB in a profile of the tranlog bench); a page that misses
    // comes from the OS page cache.
    conn.pragma_update(None, "cache_size", -16384)
        .what("setting the page cache size")?;
    conn.set_prepared_statement_cache_capacity(128);
    Ok(())
}
