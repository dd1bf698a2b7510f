//! A small pool of read-only connections (WAL: readers never wait for the
//! writer, and see every committed transaction).

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use parking_lot::{Mutex, MutexGuard};
use rusqlite::{Connection, OpenFlags};

use crate::StoreError;
use crate::error::SqlContext;

/// Connections in the pool.
pub(crate) const READERS: usize = 4;

/// The pool.
pub(crate) struct Readers {
    conns: Vec<Mutex<Connection>>,
    next: AtomicUsize,
}

impl Readers {
    /// Opens [`READERS`] connections on `path`.
    pub(crate) fn open(path: &Path) -> Result<Readers, StoreError> {
        let mut conns = Vec::with_capacity(READERS);
        for _ in 0..READERS {
            let conn = Connection::open_with_flags(
                path,
                OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )
            .what("opening a read connection")?;
            conn.busy_timeout(Duration::from_secs(5))
                .what("opening a read connection")?;
            conn.pragma_update(None, "query_only", "ON")
                .what("opening a read connection")?;
            conn.pragma_update(None, "cache_size", -16384)
                .what("opening a read connection")?;
            // Pages of the database file through a memory map: after every
            // commit a reader's page cache is discarded, and the map makes
            // reading them again cheap (no read() of each page).
            conn.pragma_update(None, "mmap_size", 1i64 << 30)
                .what("opening a read connection")?;
            conn.set_prepared_statement_cache_capacity(64);
            conns.push(Mutex::new(conn));
        }
        Ok(Readers {
            conns,
            next: AtomicUsize::new(0),
        })
    }

    /// A free connection (or the next one, waiting for it).
    pub(crate) fn get(&self) -> MutexGuard<'_, Connection> {
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        for i in 0..self.conns.len() {
            if let Some(conn) = self.conns[(start + i) % self.conns.len()].try_lock() {
                return conn;
            }
        }
        self.conns[start % self.conns.len()].lock()
    }
}
