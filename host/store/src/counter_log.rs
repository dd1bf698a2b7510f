//! The counters' durable copy: every non-zero add is written to SQLite
//! (table `counters`, schema v4), and the in-memory buckets are rebuilt
//! from it at open. [`SqliteStore`] is the engine's `CounterStore` through
//! this module.
//!
//! The in-memory [`Counters`] stay the authority for add-and-sum (one
//! shard mutex covers both, so two concurrent adds at a limit are exact).
//! What is written is each bucket's *delta* — `INSERT … ON CONFLICT (id)
//! DO UPDATE SET total = total + excluded.total`, keyed by the bucket's row
//! id — so the order in which two threads' writes reach the writer does not
//! matter. One row per bucket (at most about 61 per counter). A bucket's row
//! id is allocated when the bucket is created in memory and ids only grow,
//! so new rows append at the table's right edge (an index of random keys
//! would dirty one page per write in every group commit). A row carries the
//! tenant and plugin (scope, purge), the counter's keyed hash (never the
//! key: it may be a PAN), the bucket's index and width, the window, the
//! total and the second it expires.
//!
//! # When an add is durable
//! `counter_add` does not wait for a commit: it applies the add in memory
//! and puts the delta in the *unwritten* map (deltas of one bucket add up
//! there). It does not wake the writer either (a wake-up costs the caller
//! a few µs): a flusher thread queues a flush job every
//! [`FLUSH_EVERY`] while deltas wait, and an add queues one at once when
//! [`FLUSH_AT`] deltas wait. That bounds how long an add stays in memory
//! only; it is not what makes it durable in time. The money rule is that an add that influenced an approval is on disk before
//! the approval leaves. The approval leaves after the tranlog's `finish` of
//! its transaction is durable (the engine awaits it before writing the
//! response), and every counter add of the transaction was made before
//! `finish` was called (its participants ran before). FIFO order on the
//! writer's channel does **not** give that for free:
//! - a local transaction's `finish` usually rides on its row's INSERT,
//!   which was queued at admission, *before* the counter add (see
//!   `staging`). The writer usually drains the later flush into the same
//!   batch, but a batch cut at `MAX_BATCH` jobs can put the INSERT in batch
//!   N and the flush in N + 1, and the response would leave after N's
//!   fsync, with the add not yet on disk;
//! - a flush whose batch failed (disk full, I/O error) puts its deltas back
//!   in the map, and a later batch holding the `finish` may commit.
//!
//! So once this store has counted anything, the tranlog's writes flush
//! too: a `finish` that is its own job writes every unwritten delta before
//! its UPDATE; the INSERT that a staged `finish` rides on does the same
//! when it runs — and it runs after the transaction's counter adds (the
//! row is still staged when `finish` adds the outcome, so the writer has
//! not taken it yet). Either way the write the response waits for runs
//! after the adds, takes every delta still unwritten (a failed job's
//! deltas are back in the map before the next job runs, a failed batch's
//! before the next batch), and is answered only once its batch is fsynced,
//! which also covers every earlier commit. If that flush fails, the write
//! fails and so does `finish` (RC 96, no row): a transaction is never
//! approved with its counts unwritten, and no extra job or fsync is spent
//! on it. Without the tranlog (no life cycle) there is no such point: an
//! add is then durable within a group commit or so. Deltas put back after
//! a failure are written by the next flush or tranlog write, or at close.
//!
//! # Expiry
//! At open only rows whose window has not passed are read back. Expired
//! rows are deleted by flush jobs (at most [`PURGE_BATCH`] rows a job, once
//! a second unless a backlog remains) and by
//! [`SqliteStore::purge_counters`].
//!
//! Only one process may add counters to a database (row ids are allocated
//! per process).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use rusqlite::{Connection, params};
use switchyard_engine::ports::{CounterStore, PortError};

use crate::StoreError;
use crate::counters::{Counters, Delta, MAX_WINDOW_SECONDS, now_s};
use crate::error::SqlContext;
use crate::store::SqliteStore;
use crate::writer::Batch;

/// How often the flusher writes what waits.
pub(crate) const FLUSH_EVERY: Duration = Duration::from_millis(50);

/// Deltas waiting that make an add queue a flush at once.
pub(crate) const FLUSH_AT: usize = 4096;

/// Most expired rows one flush job deletes.
pub(crate) const PURGE_BATCH: usize = 1024;

/// A bucket's change not written yet.
struct Unwritten {
    /// (tenant, plugin), an index into [`Pending::scopes`].
    scope: u32,
    delta: Delta,
    /// What to add to the row (deltas of this bucket added up).
    total: i128,
}

/// What waits to be written.
#[derive(Default)]
struct Pending {
    /// By bucket row.
    deltas: HashMap<i64, Unwritten>,
    /// Every (tenant, plugin) seen, never removed (there are few), so that
    /// a delta does not allocate its scope.
    scopes: Vec<Arc<(String, String)>>,
    scope_ids: HashMap<String, HashMap<String, u32>>,
}

impl Pending {
    fn scope_id(&mut self, scope: (&str, &str)) -> u32 {
        if let Some(id) = self.scope_ids.get(scope.0).and_then(|p| p.get(scope.1)) {
            return *id;
        }
        let id = self.scopes.len() as u32;
        self.scopes
            .push(Arc::new((scope.0.to_string(), scope.1.to_string())));
        self.scope_ids
            .entry(scope.0.to_string())
            .or_default()
            .insert(scope.1.to_string(), id);
        id
    }
}

/// Its own cache line: the adding threads and the writer each write
/// what is in it.
#[derive(Default)]
#[repr(align(64))]
struct Line<T>(T);

impl<T> std::ops::Deref for Line<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

/// The deltas on their way to the database.
#[derive(Default)]
pub(crate) struct CounterLog {
    unwritten: Line<Mutex<Pending>>,
    /// A flush job is queued (it clears this when it starts).
    flush_queued: Line<AtomicBool>,
    /// Something was counted since the store opened (read by every
    /// tranlog write, written once).
    used: Line<AtomicBool>,
    /// The second from which the next purge may run.
    next_purge: AtomicU64,
    /// The flusher thread was started.
    flusher: AtomicBool,
}

impl CounterLog {
    /// Whether this store has counted anything (then `finish` flushes).
    pub(crate) fn used(&self) -> bool {
        self.used.load(Ordering::Acquire)
    }

    /// Whether deltas wait to be written.
    pub(crate) fn pending(&self) -> bool {
        !self.unwritten.lock().deltas.is_empty()
    }

    /// Adds `d` to what waits; returns how many deltas wait.
    fn push(&self, scope: (&str, &str), d: &Delta) -> usize {
        if !self.used.load(Ordering::Relaxed) {
            self.used.store(true, Ordering::Release);
        }
        let mut pending = self.unwritten.lock();
        if let Some(u) = pending.deltas.get_mut(&d.row) {
            u.total += i128::from(d.delta);
            return pending.deltas.len();
        }
        let scope = pending.scope_id(scope);
        pending.deltas.insert(
            d.row,
            Unwritten {
                scope,
                delta: d.clone(),
                total: i128::from(d.delta),
            },
        );
        pending.deltas.len()
    }

    /// Takes back a delta [`CounterLog::push`] added (it was not queued).
    fn forget(&self, d: &Delta) {
        if let Some(u) = self.unwritten.lock().deltas.get_mut(&d.row) {
            u.total -= i128::from(d.delta);
        }
    }

    /// Puts deltas that did not commit back to be written again.
    fn put_back(&self, deltas: Vec<Unwritten>) {
        let map = &mut self.unwritten.lock().deltas;
        for u in deltas {
            map.entry(u.delta.row)
                .and_modify(|m| m.total += u.total)
                .or_insert(u);
        }
    }

    /// Writes every unwritten delta in `b`'s job (in a savepoint of its
    /// own: all or none). If they do not commit after all (an atomic job
    /// fails later, or the batch does), they are put back. Returns the rows
    /// written.
    pub(crate) fn flush(self: &Arc<Self>, b: &mut Batch<'_>) -> Result<usize, StoreError> {
        let (taken, scopes) = {
            let mut pending = self.unwritten.lock();
            if pending.deltas.is_empty() {
                return Ok(0);
            }
            // The next batch's deltas are about as many: no regrowing.
            let capacity = pending.deltas.len();
            let taken = std::mem::replace(&mut pending.deltas, HashMap::with_capacity(capacity));
            (taken, pending.scopes.clone())
        };
        let mut taken: Vec<Unwritten> = taken.into_values().filter(|u| u.total != 0).collect();
        taken.sort_unstable_by_key(|u| u.delta.row);
        let written = savepoint(b.conn, "SAVEPOINT counters").and_then(|()| {
            let n = write(b, &taken, &scopes);
            let end = match &n {
                Ok(_) => "RELEASE counters",
                Err(_) => "ROLLBACK TO counters",
            };
            savepoint(b.conn, end)?;
            if n.is_err() {
                savepoint(b.conn, "RELEASE counters")?;
            }
            n
        });
        match written {
            Ok(n) => {
                let log = Arc::clone(self);
                b.on_failure(move || {
                    tracing::error!(
                        buckets = taken.len(),
                        "counter changes did not commit: kept to be written again"
                    );
                    log.put_back(taken);
                });
                Ok(n)
            }
            Err(e) => {
                tracing::error!(error = %e, "writing counter changes: kept to be written again");
                self.put_back(taken);
                Err(e)
            }
        }
    }

    /// Claims the right to queue the flush job (none is queued).
    fn claim(&self) -> bool {
        !self.flush_queued.swap(true, Ordering::SeqCst)
    }

    /// The flush job queued by the flusher or a full map: writes, then
    /// purges when due.
    fn flush_job(self: &Arc<Self>, b: &mut Batch<'_>) -> Result<usize, StoreError> {
        self.flush_queued.store(false, Ordering::SeqCst);
        let n = self.flush(b)?;
        let now = now_s();
        if now >= self.next_purge.load(Ordering::Relaxed) {
            let purged = purge(b, now, PURGE_BATCH)?;
            if purged < PURGE_BATCH {
                self.next_purge.store(now + 1, Ordering::Relaxed);
            }
        }
        Ok(n)
    }
}

fn savepoint(conn: &Connection, sql: &str) -> Result<(), StoreError> {
    conn.prepare_cached(sql)
        .and_then(|mut s| s.execute([]))
        .map(drop)
        .what("a savepoint of counter changes")
}

fn write(
    b: &mut Batch<'_>,
    deltas: &[Unwritten],
    scopes: &[Arc<(String, String)>],
) -> Result<usize, StoreError> {
    let mut statement = b
        .conn
        .prepare_cached(
            "INSERT INTO counters (id, tenant, plugin, counter, bucket, width_s, window_s,
                expires, total)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
             ON CONFLICT (id) DO UPDATE SET total = total + excluded.total",
        )
        .what("writing a counter")?;
    let mut n = 0;
    for u in deltas {
        let d = &u.delta;
        let (tenant, plugin) = &*scopes[u.scope as usize];
        // A bucket's deltas added up fit in an i64 unless some were put
        // back out of order: then in several steps.
        let mut left = u.total;
        while left != 0 {
            let step = left.clamp(i128::from(i64::MIN), i128::from(i64::MAX));
            left -= step;
            n += statement
                .execute(params![
                    d.row,
                    tenant,
                    plugin,
                    &d.counter[..],
                    d.bucket as i64,
                    d.width as i64,
                    d.window as i64,
                    d.expires() as i64,
                    step as i64,
                ])
                .what("writing a counter")?;
        }
    }
    b.wrote(n);
    Ok(n)
}

/// Deletes at most `limit` rows expired at `now` (seconds).
fn purge(b: &mut Batch<'_>, now: u64, limit: usize) -> Result<usize, StoreError> {
    let n = b
        .conn
        .prepare_cached(
            "DELETE FROM counters WHERE id IN
                (SELECT id FROM counters WHERE expires <= ?1 ORDER BY expires LIMIT ?2)",
        )
        .and_then(|mut s| s.execute(params![now as i64, limit.min(1 << 32) as i64]))
        .what("deleting expired counters")?;
    b.wrote(n);
    Ok(n)
}

/// Rebuilds `counters` from the rows whose window has not passed at `now`
/// (at open); returns the buckets read. A row this version cannot use is
/// skipped with a warning.
pub(crate) fn restore(conn: &Connection, counters: &Counters, now: u64) -> Result<u64, StoreError> {
    let max: i64 = conn
        .query_row("SELECT coalesce(max(id), 0) FROM counters", [], |r| {
            r.get(0)
        })
        .what("reading the counters")?;
    counters.rows_from(max + 1);
    let mut statement = conn
        .prepare(
            "SELECT id, counter, bucket, width_s, window_s, total FROM counters NOT INDEXED
             WHERE expires > ?1",
        )
        .what("reading the counters")?;
    let mut rows = statement.query([now as i64]).what("reading the counters")?;
    let (mut read, mut skipped) = (0u64, 0u64);
    while let Some(r) = rows.next().what("reading the counters")? {
        let row = (|| -> Result<Option<Delta>, rusqlite::Error> {
            let counter: Vec<u8> = r.get(1)?;
            let (bucket, width, window): (i64, i64, i64) = (r.get(2)?, r.get(3)?, r.get(4)?);
            let (row, total): (i64, i64) = (r.get(0)?, r.get(5)?);
            let in_range = bucket >= 0
                && width >= 1
                && (1..=i64::from(MAX_WINDOW_SECONDS)).contains(&window)
                && bucket
                    .checked_add(1)
                    .and_then(|b| b.checked_mul(width))
                    .and_then(|e| e.checked_add(window))
                    .is_some();
            let Ok(counter) = <[u8; 32]>::try_from(counter.as_slice()) else {
                return Ok(None);
            };
            Ok(in_range.then_some(Delta {
                row,
                counter,
                bucket: bucket as u64,
                width: width as u64,
                window: window as u64,
                delta: total,
            }))
        })();
        match row {
            Ok(Some(d)) if counters.restore(&d) => read += 1,
            _ => skipped += 1,
        }
    }
    if skipped > 0 {
        tracing::warn!(
            skipped,
            "counter rows this version cannot read back were skipped"
        );
    }
    Ok(read)
}

impl SqliteStore {
    fn count(
        &self,
        now: u64,
        scope: (&str, &str),
        name: &str,
        key: &str,
        delta: i64,
        window: u32,
    ) -> Result<i64, PortError> {
        if self.writer.is_closed() {
            return Err(PortError::Closed);
        }
        let (sum, change) = self
            .counters
            .apply(now, scope, name, key, delta, window)
            .map_err(|e| PortError::Invalid(e.to_string()))?;
        let Some(d) = change else {
            return Ok(sum);
        };
        let log = &self.counter_log;
        let waiting = log.push(scope, &d);
        if !log.flusher.load(Ordering::Relaxed) && !log.flusher.swap(true, Ordering::AcqRel) {
            self.start_counter_flusher();
        }
        if waiting >= FLUSH_AT
            && log.claim()
            && let Err(e) = self.queue_flush_job()
        {
            log.forget(&d);
            self.counters.undo(&d);
            return Err(self.port(e));
        }
        Ok(sum)
    }

    /// Queues the flush job (the caller claimed it).
    fn queue_flush_job(&self) -> Result<(), StoreError> {
        let job = Arc::clone(&self.counter_log);
        self.writer
            .submit(true, move |b| job.flush_job(b), None)
            .map(drop)
            .inspect_err(|_| self.counter_log.flush_queued.store(false, Ordering::SeqCst))
    }

    /// Starts the thread that queues a flush every [`FLUSH_EVERY`] while
    /// deltas wait; it ends with the store.
    fn start_counter_flusher(&self) {
        let store = self.me.clone();
        let spawned = std::thread::Builder::new()
            .name("store-counters".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(FLUSH_EVERY);
                    let Some(store) = store.upgrade() else { break };
                    if store.writer.is_closed() {
                        break;
                    }
                    if store.counter_log.pending() && store.counter_log.claim() {
                        let _ = store.queue_flush_job();
                    }
                }
            });
        if let Err(e) = spawned {
            // Adds still reach the disk: with every tranlog write, at
            // FLUSH_AT waiting, at close.
            tracing::error!(error = %e, "starting the counters' flusher thread");
        }
    }

    /// [`CounterStore::counter_add`] at `now` (seconds since the epoch).
    pub fn counter_add_at(
        &self,
        now: u64,
        scope: (&str, &str),
        name: &str,
        key: &str,
        delta: i64,
        window_seconds: u32,
    ) -> Result<i64, PortError> {
        self.count(now, scope, name, key, delta, window_seconds)
    }

    /// Blocks until every counter change made before the call is durable
    /// (and expired rows are purged, when due, as a flush job does).
    pub fn flush_counters(&self) -> Result<(), PortError> {
        let log = Arc::clone(&self.counter_log);
        self.writer
            .run_blocking(true, move |b| log.flush_job(b).map(drop))
            .map_err(|e| self.port(e))
    }

    /// Deletes at most `limit` counter rows whose window has passed;
    /// returns how many (fewer than `limit`: none is left).
    pub fn purge_counters(&self, limit: usize) -> Result<u64, PortError> {
        self.writer
            .run_blocking(true, move |b| purge(b, now_s(), limit).map(|n| n as u64))
            .map_err(|e| self.port(e))
    }

    /// Queues the write of what is unwritten (at close).
    pub(crate) fn queue_counter_flush(&self) {
        if self.counter_log.pending() {
            let log = Arc::clone(&self.counter_log);
            let _ = self
                .writer
                .submit(true, move |b| log.flush(b).map(drop), None);
        }
    }
}

/// Durable counters: see the module's documentation.
impl CounterStore for SqliteStore {
    fn counter_add(
        &self,
        scope: (&str, &str),
        name: &str,
        key: &str,
        delta: i64,
        window_seconds: u32,
    ) -> Result<i64, PortError> {
        self.count(now_s(), scope, name, key, delta, window_seconds)
    }

    fn counter_sum(
        &self,
        scope: (&str, &str),
        name: &str,
        key: &str,
        window_seconds: u32,
    ) -> Result<i64, PortError> {
        self.count(now_s(), scope, name, key, 0, window_seconds)
    }
}
