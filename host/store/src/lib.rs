//! Switchyard's storage.
//!
//! Owns what the switch keeps: the plugins' key/value data and the history of
//! plugin swaps in one embedded SQLite database (WAL), and the windowed
//! counters plugins use for velocity checks (in memory for now; they move to
//! the database with the tranlog). Everything is scoped by tenant and plugin.
//!
//! Card data never rests in plaintext: plugin keys (which may be card
//! numbers) are stored as keyed hashes (HMAC-SHA-256) and plugin values are
//! encrypted (ChaCha20-Poly1305, bound to their row). The secret lives in a
//! key file beside the database, created with mode 0600 on first start.
//!
//! Knows nothing of wasmtime or sockets.
#![forbid(unsafe_code)]

mod counters;
mod crypto;
mod db;

pub use counters::{CounterError, Counters, MAX_WINDOW_SECONDS};
pub use crypto::Secret;
pub use db::{MAX_VALUE_LEN, Store, SwapRecord};

/// Errors of the store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database failed.
    #[error("store database {path}: {source}")]
    Database {
        /// The database file.
        path: String,
        /// SQLite's error.
        source: rusqlite::Error,
    },
    /// The key file could not be read or created.
    #[error("store key file {path}: {reason}")]
    KeyFile {
        /// The key file.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// A stored value does not decrypt (tampered, or another key).
    #[error("a stored value does not decrypt with this switch's key")]
    Decrypt,
    /// A value over [`MAX_VALUE_LEN`].
    #[error("value of {0} bytes is over the {MAX_VALUE_LEN}-byte limit")]
    ValueTooLarge(usize),
}
