//! Switchyard's storage: the engine's ports on the embedded SQLite database
//! (the default, described here) and on PostgreSQL for several nodes
//! sharing one database ([`PgStore`], see its module).
//!
//! Owns what the switch keeps, in one embedded SQLite database (WAL,
//! `synchronous = FULL`):
//! - the **tranlog** ([`Tranlog`]): one row per decoded request, admitted
//!   without waiting for a disk write, matched to its earlier sends
//!   (repeats, duplicates), its outcome and its links to reversals and
//!   completions; recovery after a crash;
//! - the **store-and-forward queue** ([`SafQueue`]): reversals and advices
//!   with leases, attempts and escalation;
//! - the **keyring** ([`Keyring`]): envelope encryption — a key-encryption
//!   key in a 0600 file wraps per-tenant data keys (AES-256-GCM, rotated,
//!   re-encrypted in the background) and per-tenant lookup keys (the PAN
//!   token, kv key hashes; never rotated);
//! - the plugins' **key/value data** ([`KvStore`]) and the **swap history**
//!   ([`SwapHistory`]);
//! - windowed **counters** ([`CounterStore`]) for velocity checks, windows
//!   up to 31 days: added and summed in memory, every change written to
//!   SQLite and durable before the response of the transaction that made
//!   it (see `counter_log`), rebuilt at open; keys only as keyed hashes.
//!   [`Counters`] alone is the in-memory half (tests, the authoring
//!   harness).
//!
//! Every write goes through one writer thread that batches the writes of
//! concurrent transactions into group commits (one fsync for many rows);
//! durable operations resolve after their commit. Reads use a small pool of
//! read-only connections. Card data never rests in the clear: the PAN only
//! as a keyed token and masked, track/PIN/chip data never, the rest of a
//! request encrypted and bound to its row. Migrates data directories of the
//! v1 layout (`keys/store.key`).
//!
//! Knows nothing of wasmtime or sockets.
//!
//! [`Tranlog`]: switchyard_engine::ports::Tranlog
//! [`SafQueue`]: switchyard_engine::ports::SafQueue
//! [`Keyring`]: switchyard_engine::ports::Keyring
//! [`KvStore`]: switchyard_engine::ports::KvStore
//! [`CounterStore`]: switchyard_engine::ports::CounterStore
//! [`SwapHistory`]: switchyard_engine::ports::SwapHistory
#![forbid(unsafe_code)]

pub mod accounts;
pub mod audit;
mod codec;
mod counter_log;
mod counters;
mod error;
mod files;
mod followup;
mod ids;

mod kek;
mod keyring;
mod keys;
mod kv;
mod legacy;
pub mod operator;
pub mod outbox;
mod pg;
mod query;
mod readers;
mod recent;
mod saf;
mod schema;
mod secret;
mod staging;
mod store;
mod tranlog;
mod writer;

#[cfg(test)]
mod tests;

pub use counters::{CounterError, Counters, MAX_WINDOW_SECONDS};
pub use error::StoreError;
pub use kv::MAX_VALUE_LEN;
pub use pg::{
    Beat, DEFAULT_NODE_LEASE, DEFAULT_POOL_SIZE, NodeInfo, PG_SCHEMA_VERSION, PgOptions, PgStore,
    SharedSwap, check_url, describe_url, migrate_url, nodes_of_url,
};
pub use secret::Secret;
pub use store::{DEFAULT_DUPLICATE_FILTER_MIB, SqliteStore, StoreOptions};
pub use switchyard_engine::ports::SwapRecord;
pub use writer::{MAX_BATCH, WriterStats};

/// Now, in ms since the Unix epoch.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
