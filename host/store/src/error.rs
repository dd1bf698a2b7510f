//! The store's typed errors and their mapping to the engine's [`PortError`].

use switchyard_engine::ports::PortError;

/// What went wrong inside the store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// An SQLite statement failed.
    #[error("{what}: {source}")]
    Sqlite {
        /// What the store was doing.
        what: String,
        /// SQLite's error.
        #[source]
        source: rusqlite::Error,
    },
    /// The group commit that carried this write failed (the whole batch
    /// was rolled back).
    /// A PostgreSQL statement failed (the server's message and SQLSTATE,
    /// or why the connection failed).
    #[error("{what}: {detail}")]
    Postgres {
        /// What the store was doing.
        what: String,
        /// What the server or the driver said.
        detail: String,
    },
    #[error("{0}")]
    Batch(String),
    /// A file or directory could not be read, written or created.
    #[error("{path}: {what}: {source}")]
    Io {
        /// The file or directory.
        path: String,
        /// What the store was doing.
        what: &'static str,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A key file is missing, malformed or does not match the database.
    #[error("key file {path}: {reason}")]
    KeyFile {
        /// The key file.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// A stored value does not decrypt (tampered, moved to another row or
    /// tenant, or a key is missing).
    #[error("{0}")]
    Decrypt(String),
    /// The data key a value names was destroyed (a reader holding an older
    /// snapshot retries).
    #[error("data key {0} was destroyed")]
    KeyDestroyed(i64),
    /// A value names a data key this process has not loaded (another
    /// process created it: the keyring is read again and the read retried).
    #[error("unknown data key {0}")]
    UnknownKey(i64),
    /// A request the store refuses (unknown id, value too large, …).
    #[error("{0}")]
    Invalid(String),
    /// A stored row is not what this version writes.
    #[error("corrupt row: {0}")]
    Corrupt(String),
    /// Migrating an older database failed.
    #[error("migration from schema v{from}: {reason}")]
    Migration {
        /// The version found.
        from: i64,
        /// What went wrong.
        reason: String,
    },
    /// The store is closed.
    #[error("closed")]
    Closed,
}

impl StoreError {
    /// An SQLite failure while doing `what`.
    pub(crate) fn sqlite(what: impl Into<String>) -> impl FnOnce(rusqlite::Error) -> StoreError {
        let what = what.into();
        move |source| StoreError::Sqlite { what, source }
    }

    /// An I/O failure on `path` while doing `what`.
    pub(crate) fn io(
        path: &std::path::Path,
        what: &'static str,
    ) -> impl FnOnce(std::io::Error) -> StoreError {
        let path = path.display().to_string();
        move |source| StoreError::Io { path, what, source }
    }

    /// The port error for this failure of the database at `db`.
    pub(crate) fn into_port(self, db: &str) -> PortError {
        match self {
            StoreError::Decrypt(_) | StoreError::KeyDestroyed(_) | StoreError::UnknownKey(_) => {
                PortError::Decrypt(format!("database {db}: {self}"))
            }
            StoreError::Invalid(_) => PortError::Invalid(format!("database {db}: {self}")),
            StoreError::Closed => PortError::Closed,
            other => PortError::Database(format!("database {db}: {other}")),
        }
    }
}

/// `?` on rusqlite results, naming what the store was doing.
pub(crate) trait SqlContext<T> {
    /// Maps an SQLite error to [`StoreError::Sqlite`] with `what`.
    fn what(self, what: &str) -> Result<T, StoreError>;
}

impl<T> SqlContext<T> for Result<T, rusqlite::Error> {
    fn what(self, what: &str) -> Result<T, StoreError> {
        self.map_err(|source| StoreError::Sqlite {
            what: what.to_string(),
            source,
        })
    }
}

/// What a PostgreSQL error says: the server's message, SQLSTATE and detail
/// when it is a database error (the driver's `Display` is only "db
/// error"), the driver's text otherwise.
pub(crate) fn pg_detail(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => match db.detail() {
            Some(detail) => format!("{} (SQLSTATE {}; {detail})", db.message(), db.code().code()),
            None => format!("{} (SQLSTATE {})", db.message(), db.code().code()),
        },
        None => {
            let mut text = e.to_string();
            let mut source = std::error::Error::source(e);
            while let Some(s) = source {
                text.push_str(": ");
                text.push_str(&s.to_string());
                source = s.source();
            }
            text
        }
    }
}

impl<T> SqlContext<T> for Result<T, tokio_postgres::Error> {
    fn what(self, what: &str) -> Result<T, StoreError> {
        self.map_err(|e| StoreError::Postgres {
            what: what.to_string(),
            detail: pg_detail(&e),
        })
    }
}

impl<T> SqlContext<T> for Result<T, deadpool_postgres::PoolError> {
    fn what(self, what: &str) -> Result<T, StoreError> {
        self.map_err(|e| StoreError::Postgres {
            what: what.to_string(),
            detail: match &e {
                deadpool_postgres::PoolError::Backend(b) => pg_detail(b),
                other => other.to_string(),
            },
        })
    }
}
