//! The switch's state on disk: the data directory (mode 0700) and its lock
//! (one switch per data directory; the operator tools open the directory
//! only when no switch holds it), and the store in it.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use switchyard_store::{SqliteStore, StoreOptions};

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

/// Opens the store of `config`'s data directory.
pub fn open_store(config: &Config) -> anyhow::Result<Arc<SqliteStore>> {
    let options = StoreOptions {
        db_path: config.db_path(),
        kek_path: config.kek_path(),
        node: config.switch.node_id.clone(),
        duplicate_filter_mib: config.tranlog.duplicate_filter_mib,
    };
    SqliteStore::open(options).with_context(|| {
        format!(
            "opening the store in {} (key-encryption key {})",
            config.data_dir().display(),
            config.kek_path().display()
        )
    })
}

/// The operator tools over `store`.
pub fn ops_of(store: &Arc<SqliteStore>) -> Ops {
    Ops::of_store(store)
}
