//! The switch's state on disk: the data directory (mode 0700) and its lock
//! (one switch per data directory; the operator tools open the directory
//! only when no switch holds it), and the store in it.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use switchyard_engine::ports::{CounterStore, Keyring, KvStore, SafQueue, SwapHistory, Tranlog};
use switchyard_store::operator::OperatorDb;
use switchyard_store::{PgOptions, PgStore, SqliteStore, StoreOptions, describe_url};

use crate::config::Config;
use crate::operate::Ops;

/// The lock file in a data directory.
pub const LOCK_FILE: &str = "switchyard.lock";

/// An exclusive lock on a data directory, held while it is open.
#[derive(Debug)]
pub struct DataDirLock {
    _file: File,
    path: PathBuf,
}

impl DataDirLock {
    fn open(data_dir: &Path) -> anyhow::Result<(File, PathBuf)> {
        create_private_dir(data_dir)?;
        let path = data_dir.join(LOCK_FILE);
        let mut options = OpenOptions::new();
        options.create(true).truncate(false).write(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let file = options
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        Ok((file, path))
    }

    /// Locks `data_dir` (creating it, mode 0700), or fails saying another
    /// switch holds it.
    pub fn acquire(data_dir: &Path) -> anyhow::Result<DataDirLock> {
        match DataDirLock::try_acquire(data_dir)? {
            Some(lock) => Ok(lock),
            None => anyhow::bail!(
                "another switch runs on the data directory {} (it holds {LOCK_FILE}): \
                 one switch per data directory",
                data_dir.display()
            ),
        }
    }

    /// Locks `data_dir` if no one holds it; `None` when someone does.
    pub fn try_acquire(data_dir: &Path) -> anyhow::Result<Option<DataDirLock>> {
        let (file, path) = DataDirLock::open(data_dir)?;
        match file.try_lock() {
            Ok(()) => Ok(Some(DataDirLock { _file: file, path })),
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(e)) => {
                Err(e).with_context(|| format!("locking {}", path.display()))
            }
        }
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Creates `dir` (and its parents) and makes it mode 0700.
pub fn create_private_dir(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("making {} private (0700)", dir.display()))?;
    }
    Ok(())
}

/// The database behind a switch: the engine's ports, whichever backend
/// implements them.
#[derive(Clone)]
pub struct Store {
    /// The tranlog.
    pub tranlog: Arc<dyn Tranlog>,
    /// The store-and-forward queue.
    pub saf: Arc<dyn SafQueue>,
    /// The keyring.
    pub keyring: Arc<dyn Keyring>,
    /// The plugins' key/value data.
    pub kv: Arc<dyn KvStore>,
    /// The velocity counters.
    pub counters: Arc<dyn CounterStore>,
    /// The plugin swap history.
    pub history: Arc<dyn SwapHistory>,
    /// The backend itself.
    pub backend: Backend,
}

/// Which database a [`Store`] is.
#[derive(Clone, Debug)]
pub enum Backend {
    /// The embedded SQLite database in the data directory.
    Sqlite(Arc<SqliteStore>),
    /// A PostgreSQL database shared by several nodes.
    Postgres(Arc<PgStore>),
}

impl Store {
    fn of<S>(store: Arc<S>, backend: Backend) -> Store
    where
        S: Tranlog + SafQueue + Keyring + KvStore + CounterStore + SwapHistory + 'static,
    {
        Store {
            tranlog: store.clone(),
            saf: store.clone(),
            keyring: store.clone(),
            kv: store.clone(),
            counters: store.clone(),
            history: store,
            backend,
        }
    }

    /// The SQLite store, when it is one.
    pub fn sqlite(&self) -> Option<&Arc<SqliteStore>> {
        match &self.backend {
            Backend::Sqlite(s) => Some(s),
            Backend::Postgres(_) => None,
        }
    }

    /// The PostgreSQL store, when it is one.
    pub fn postgres(&self) -> Option<&Arc<PgStore>> {
        match &self.backend {
            Backend::Postgres(s) => Some(s),
            Backend::Sqlite(_) => None,
        }
    }

    /// Writes what is queued and closes the database (blocking).
    pub fn close(&self) {
        match &self.backend {
            Backend::Sqlite(s) => s.close(),
            Backend::Postgres(s) => s.close(),
        }
    }

    /// Deletes up to `limit` velocity counter buckets whose window passed.
    pub fn purge_counters(&self, limit: usize) -> anyhow::Result<u64> {
        Ok(match &self.backend {
            Backend::Sqlite(s) => s.purge_counters(limit)?,
            Backend::Postgres(s) => s.purge_counters(limit)?,
        })
    }

    /// What the store is, for logs: the SQLite file or the PostgreSQL
    /// database (without credentials).
    pub fn describe(&self) -> String {
        match &self.backend {
            Backend::Sqlite(s) => s.path().to_string(),
            Backend::Postgres(s) => s.label().to_string(),
        }
    }
}

/// Opens the store of `config` for a switch: PostgreSQL when `[store] url`
/// is set (registering as its node), else the SQLite database in its data
/// directory.
pub fn open_store(config: &Config) -> anyhow::Result<Store> {
    open_store_as(config, true)
}

/// Opens the store of a stopped switch's `config` for the operator tools:
/// on PostgreSQL they do not register as the node.
pub fn open_store_offline(config: &Config) -> anyhow::Result<Store> {
    open_store_as(config, false)
}

fn open_store_as(config: &Config, register: bool) -> anyhow::Result<Store> {
    if let Some(url) = &config.store.url {
        let options = PgOptions {
            url: url.clone(),
            kek_path: config.kek_path(),
            node: config.switch.node_id.clone(),
            pool_size: config.store.pool_size,
            node_lease: std::time::Duration::from_millis(config.store.node_lease_ms),
            register,
            ca_file: config.ca_path(),
        };
        let store = PgStore::open(options).with_context(|| {
            format!(
                "opening the PostgreSQL store {} as node {} (key-encryption key {})",
                describe_url(url),
                config.switch.node_id,
                config.kek_path().display()
            )
        })?;
        return Ok(Store::of(store.clone(), Backend::Postgres(store)));
    }
    let options = StoreOptions {
        db_path: config.db_path(),
        kek_path: config.kek_path(),
        node: config.switch.node_id.clone(),
        duplicate_filter_mib: config.tranlog.duplicate_filter_mib,
    };
    let store = SqliteStore::open(options).with_context(|| {
        format!(
            "opening the store in {} (key-encryption key {})",
            config.data_dir().display(),
            config.kek_path().display()
        )
    })?;
    Ok(Store::of(store.clone(), Backend::Sqlite(store)))
}

/// The operator plane's tables (users, sessions, API clients, audit,
/// webhooks) beside `store`'s: in the PostgreSQL database the nodes share,
/// or in the SQLite file of the data directory.
pub fn operator_db(config: &Config, store: &Store) -> anyhow::Result<OperatorDb> {
    match store.postgres() {
        Some(pg) => Ok(OperatorDb::postgres(pg)),
        None => {
            let db = config.db_path();
            OperatorDb::sqlite(&db)
                .with_context(|| format!("opening the operator tables in {}", db.display()))
        }
    }
}

/// The operator plane's tables of `config` for a CLI command, while the
/// switch may run: on PostgreSQL through a store that does not register
/// as the node; on SQLite the data directory's file (which must exist).
pub fn open_operator_db(config: &Config) -> anyhow::Result<OperatorDb> {
    if config.store.url.is_some() {
        let store = open_store_offline(config)?;
        return operator_db(config, &store);
    }
    let db = config.db_path();
    anyhow::ensure!(
        db.exists(),
        "no database at {} (has the switch run with this data_dir?)",
        db.display()
    );
    OperatorDb::sqlite(&db)
        .with_context(|| format!("opening the operator tables in {}", db.display()))
}

/// The operator tools over `store`.
pub fn ops_of(store: &Store) -> Ops {
    Ops {
        tranlog: store.tranlog.clone(),
        saf: store.saf.clone(),
        keyring: store.keyring.clone(),
        kv: store.kv.clone(),
        wake: None,
    }
}
