//! The writer thread: the one connection that writes, and group commit.
//!
//! Every write is a job on a channel. The thread takes the first job,
//! drains what else is queued (at most [`MAX_BATCH`]), runs them all in one
//! `BEGIN IMMEDIATE … COMMIT` (one fsync for all of them), then answers
//! every job. A job that fails rolls back only its own writes: a job of
//! several statements runs inside a savepoint; a one-statement job relies
//! on SQLite rolling back the failed statement alone. If SQLite rolled the
//! whole transaction back (disk full, I/O error), or the commit fails,
//! every job of the batch fails and the keyring is reloaded.
//!
//! Durability: the connection runs `synchronous = NORMAL` (a commit does
//! not fsync) and the writer's *syncer* thread makes each commit durable —
//! `fdatasync` of the WAL after the commit returned — before any job of
//! it is answered. So the fsync of batch N overlaps with running batch
//! N+1, and one fsync often covers several commits; no job hears back
//! before its writes are on disk (an fsync'd equivalent of `synchronous =
//! FULL`, as DESIGN.md asks). A checkpoint still syncs the WAL before and
//! the database after it, as NORMAL does.
//!
//! A job waits at most for the commit in progress when it arrives plus
//! its own batch's and its fsync. Its hooks (the pending-row map, key
//! durability) run on the writer thread right after the commit; its caller
//! is woken by the syncer, so that waking 64 callers does not delay the
//! next batch. A job's failure hooks run when its writes did not commit:
//! at once (before the next job runs) when an atomic job failed (its
//! savepoint rolled back), after the batch when the batch failed.
//!
//! Another process (an operator tool) may open the same database: SQLite
//! serializes the two writers (`BEGIN IMMEDIATE`, a 5 s busy timeout), and
//! each batch begins by checking `PRAGMA data_version`; when another
//! process committed since the last batch, the keyring is read again
//! inside the batch's transaction, so this writer never seals with a key
//! the other process retired, nor creates a key the other one created.
//! At close the WAL is checkpointed without waiting for anyone (busy
//! timeout 0): a checkpoint that waited would block the other process's
//! writes meanwhile.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use futures::channel::oneshot;
use parking_lot::Mutex;
use rusqlite::Connection;

use crate::StoreError;
use crate::keyring::Keyring;

/// Most jobs in one transaction.
pub const MAX_BATCH: usize = 1024;

type Hook = Box<dyn FnOnce() + Send>;

/// What a job sees while it runs: the writer's connection inside the
/// batch's transaction.
pub(crate) struct Batch<'a> {
    /// The write connection.
    pub(crate) conn: &'a Connection,
    /// The keyring.
    pub(crate) keyring: &'a Keyring,
    hooks: Vec<Hook>,
    fail_hooks: Vec<Hook>,
    rows: u64,
}

impl Batch<'_> {
    /// Runs `hook` after the batch committed, if this job succeeded.
    pub(crate) fn on_commit(&mut self, hook: impl FnOnce() + Send + 'static) {
        self.hooks.push(Box::new(hook));
    }

    /// Runs `hook` if what this job wrote so far does not commit: at once
    /// when an atomic job fails (its savepoint rolled back), after the
    /// batch when the batch fails. (A non-atomic job that fails later
    /// keeps its earlier statements: SQLite rolls back the failed one.)
    pub(crate) fn on_failure(&mut self, hook: impl FnOnce() + Send + 'static) {
        self.fail_hooks.push(Box::new(hook));
    }

    /// Counts rows written (stats).
    pub(crate) fn wrote(&mut self, rows: usize) {
        self.rows += rows as u64;
    }
}

trait Job: Send {
    /// Runs inside the batch's transaction.
    fn run(&mut self, batch: &mut Batch<'_>);
    /// Settles the job once the batch committed (`Ok`) or failed: runs its
    /// hooks (on the writer thread, before the next batch).
    fn settle(&mut self, batch: Result<(), &str>);
    /// Answers the caller (on the syncer thread, once durable).
    fn reply(self: Box<Self>);
    /// Whether its work failed (stats).
    fn failed(&self) -> bool;
    /// Its commit could not be made durable: it fails.
    fn fail_durability(&mut self, reason: &str);
}

struct Task<T, F> {
    work: Option<F>,
    atomic: bool,
    outcome: Option<Result<T, StoreError>>,
    hooks: Vec<Hook>,
    fail_hooks: Vec<Hook>,
    always: Option<Hook>,
    reply: Option<oneshot::Sender<Result<T, StoreError>>>,
}

fn savepoint(conn: &Connection, sql: &str) -> Result<(), StoreError> {
    conn.prepare_cached(sql)
        .and_then(|mut s| s.execute([]))
        .map(drop)
        .map_err(StoreError::sqlite("a job's savepoint"))
}

impl<T, F> Job for Task<T, F>
where
    T: Send,
    F: FnOnce(&mut Batch<'_>) -> Result<T, StoreError> + Send,
{
    fn run(&mut self, batch: &mut Batch<'_>) {
        let Some(work) = self.work.take() else {
            return;
        };
        if self.atomic
            && let Err(e) = savepoint(batch.conn, "SAVEPOINT job")
        {
            self.outcome = Some(Err(e));
            return;
        }
        let rows = batch.rows;
        let outcome = work(batch);
        let hooks = std::mem::take(&mut batch.hooks);
        let fail_hooks = std::mem::take(&mut batch.fail_hooks);
        match &outcome {
            Ok(_) => {
                if self.atomic {
                    let _ = savepoint(batch.conn, "RELEASE job");
                }
                self.hooks = hooks;
                self.fail_hooks = fail_hooks;
            }
            Err(_) => {
                batch.rows = rows;
                if self.atomic && !batch.conn.is_autocommit() {
                    let _ = savepoint(batch.conn, "ROLLBACK TO job");
                    let _ = savepoint(batch.conn, "RELEASE job");
                    // The job may have changed keys in memory before it
                    // failed: read them back as the transaction has them.
                    if let Err(e) = batch.keyring.reload(batch.conn) {
                        tracing::error!(error = %e, "reloading the keyring after a failed job");
                    }
                }
                if self.atomic {
                    for hook in fail_hooks {
                        hook();
                    }
                } else {
                    self.fail_hooks = fail_hooks;
                }
            }
        }
        self.outcome = Some(outcome);
    }

    fn settle(&mut self, batch: Result<(), &str>) {
        // What the job wrote is gone with the batch.
        let fail_hooks = std::mem::take(&mut self.fail_hooks);
        if batch.is_err() {
            for hook in fail_hooks {
                hook();
            }
        }
        let outcome = match (batch, self.outcome.take()) {
            (Err(e), _) => Err(StoreError::Batch(e.to_string())),
            (Ok(()), Some(outcome)) => outcome,
            (Ok(()), None) => Err(StoreError::Batch("the job did not run".into())),
        };
        if outcome.is_ok() {
            for hook in self.hooks.drain(..) {
                hook();
            }
        } else {
            self.hooks.clear();
        }
        if let Some(always) = self.always.take() {
            always();
        }
        self.outcome = Some(outcome);
    }

    fn reply(mut self: Box<Self>) {
        if let (Some(reply), Some(outcome)) = (self.reply.take(), self.outcome.take()) {
            let _ = reply.send(outcome);
        }
    }

    fn failed(&self) -> bool {
        matches!(self.outcome, Some(Err(_)))
    }

    fn fail_durability(&mut self, reason: &str) {
        self.outcome = Some(Err(StoreError::Batch(format!(
            "committed but not made durable (fsync of the WAL: {reason})"
        ))));
    }
}

enum Msg {
    Job(Box<dyn Job>),
    /// The syncer made the last commit durable.
    Synced,
    Close,
}

/// The group commit's counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriterStats {
    /// Transactions committed.
    pub commits: u64,
    /// Jobs run (committed or failed).
    pub jobs: u64,
    /// Jobs whose own work failed (their savepoint rolled back).
    pub failed_jobs: u64,
    /// Rows inserted, updated or deleted by committed jobs.
    pub rows: u64,
    /// The most jobs in one transaction.
    pub largest_batch: u64,
    /// Wall time the writer spent on batches (running, committing, fsync).
    pub busy: Duration,
    /// CPU time of the writer thread (Linux; zero elsewhere).
    pub cpu: Duration,
}

#[derive(Default)]
struct Counters {
    commits: AtomicU64,
    jobs: AtomicU64,
    failed_jobs: AtomicU64,
    rows: AtomicU64,
    largest_batch: AtomicU64,
    busy_ns: AtomicU64,
}

/// The handle on the writer thread.
pub(crate) struct Writer {
    tx: mpsc::Sender<Msg>,
    closed: AtomicBool,
    thread: Mutex<Option<JoinHandle<()>>>,
    counters: Arc<Counters>,
    cpu_path: Arc<Mutex<Option<PathBuf>>>,
}

impl Writer {
    /// Starts the writer thread on `conn` (the database at `path`).
    pub(crate) fn start(
        conn: Connection,
        path: PathBuf,
        keyring: Arc<Keyring>,
        db: Arc<str>,
    ) -> Writer {
        let (tx, rx) = mpsc::channel();
        let counters = Arc::new(Counters::default());
        let cpu_path = Arc::new(Mutex::new(None));
        let thread = {
            let counters = counters.clone();
            let cpu_path = cpu_path.clone();
            let syncer_tx = tx.clone();
            std::thread::Builder::new()
                .name("store-writer".into())
                .spawn(move || {
                    *cpu_path.lock() = std::fs::read_link("/proc/thread-self")
                        .ok()
                        .map(|p| PathBuf::from("/proc").join(p).join("schedstat"));
                    run(conn, &path, syncer_tx, rx, &keyring, &counters, &db);
                })
                .expect("spawning the store's writer thread")
        };
        Writer {
            tx,
            closed: AtomicBool::new(false),
            thread: Mutex::new(Some(thread)),
            counters,
            cpu_path,
        }
    }

    /// Queues `work`; the receiver answers after the commit. `atomic`: the
    /// work has more than one statement (it runs in a savepoint). `always`
    /// runs after the batch, committed or not.
    pub(crate) fn submit<T, F>(
        &self,
        atomic: bool,
        work: F,
        always: Option<Hook>,
    ) -> Result<oneshot::Receiver<Result<T, StoreError>>, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Batch<'_>) -> Result<T, StoreError> + Send + 'static,
    {
        let (reply, rx) = oneshot::channel();
        let task = Task {
            work: Some(work),
            atomic,
            outcome: None,
            hooks: Vec::new(),
            fail_hooks: Vec::new(),
            always,
            reply: Some(reply),
        };
        if self.closed.load(Ordering::Acquire) {
            if let Some(always) = task.always {
                always();
            }
            return Err(StoreError::Closed);
        }
        self.tx
            .send(Msg::Job(Box::new(task)))
            .map_err(|mpsc::SendError(msg)| {
                if let Msg::Job(mut job) = msg {
                    job.settle(Err("the store is closed"));
                    job.reply();
                }
                StoreError::Closed
            })?;
        Ok(rx)
    }

    /// Queues `work` and blocks until it committed.
    pub(crate) fn run_blocking<T, F>(&self, atomic: bool, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Batch<'_>) -> Result<T, StoreError> + Send + 'static,
    {
        let rx = self.submit(atomic, work, None)?;
        futures::executor::block_on(rx).unwrap_or(Err(StoreError::Closed))
    }

    /// Whether [`Writer::close`] was called.
    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Runs what is queued, checkpoints, stops the thread and waits for it.
    pub(crate) fn close(&self) {
        if self.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        let _ = self.tx.send(Msg::Close);
        if let Some(thread) = self.thread.lock().take() {
            let _ = thread.join();
        }
    }

    /// The counters so far.
    pub(crate) fn stats(&self) -> WriterStats {
        let c = &self.counters;
        let cpu = self
            .cpu_path
            .lock()
            .as_ref()
            .and_then(|p| std::fs::read_to_string(p).ok())
            .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok())
            .map(Duration::from_nanos)
            .unwrap_or_default();
        WriterStats {
            commits: c.commits.load(Ordering::Relaxed),
            jobs: c.jobs.load(Ordering::Relaxed),
            failed_jobs: c.failed_jobs.load(Ordering::Relaxed),
            rows: c.rows.load(Ordering::Relaxed),
            largest_batch: c.largest_batch.load(Ordering::Relaxed),
            busy: Duration::from_nanos(c.busy_ns.load(Ordering::Relaxed)),
            cpu,
        }
    }
}

/// Makes committed batches durable, then answers their jobs: every batch
/// that arrived while the previous fsync ran shares the next one.
fn sync_and_reply(
    answered: mpsc::Receiver<Vec<Box<dyn Job>>>,
    writer: mpsc::Sender<Msg>,
    wal: PathBuf,
    db: Arc<str>,
) {
    let mut file: Option<std::fs::File> = None;
    while let Ok(first) = answered.recv() {
        let mut batches = vec![first];
        while let Ok(more) = answered.try_recv() {
            batches.push(more);
        }
        if file.is_none() {
            file = std::fs::File::open(&wal).ok();
        }
        let synced = match &file {
            Some(f) => f.sync_data(),
            None => Err(std::io::Error::other("the WAL file is missing")),
        };
        if let Err(e) = synced {
            // Answer nothing as durable that may not be: fail the jobs.
            tracing::error!(db = %db, wal = %wal.display(), error = %e, "fsync of the WAL failed");
            for job in batches.iter_mut().flatten() {
                job.fail_durability(&e.to_string());
            }
            file = None;
        }
        // The writer may commit its next batch now.
        let _ = writer.send(Msg::Synced);
        for job in batches.into_iter().flatten() {
            job.reply();
        }
    }
}

fn run(
    conn: Connection,
    path: &std::path::Path,
    tx: mpsc::Sender<Msg>,
    rx: mpsc::Receiver<Msg>,
    keyring: &Keyring,
    counters: &Counters,
    db: &str,
) {
    // Making commits durable and waking the callers (a futex call each)
    // happen on another thread; while it fsyncs one commit, the next batch
    // runs and grows here, and commits when the fsync is done.
    let (replies, answered) = mpsc::channel::<Vec<Box<dyn Job>>>();
    let wal = crate::files::with_suffix(path, "-wal");
    let db_name: Arc<str> = db.into();
    let syncer = std::thread::Builder::new()
        .name("store-syncer".into())
        .spawn(move || sync_and_reply(answered, tx, wal, db_name))
        .expect("spawning the store's syncer thread");
    let mut syncing = false;
    let mut closing = false;
    let mut seen = data_version(&conn).unwrap_or(0);
    while !closing {
        let first = match rx.recv() {
            Ok(Msg::Job(job)) => job,
            Ok(Msg::Synced) => {
                syncing = false;
                continue;
            }
            Ok(Msg::Close) | Err(_) => break,
        };
        let mut open = OpenBatch::begin(&conn, keyring, &mut seen, db);
        open.run(first);
        // Gather more while the previous commit is being made durable.
        while !open.full() {
            let next = if syncing {
                let waiting = Instant::now();
                let next = rx.recv().map_err(|_| ());
                open.waited += waiting.elapsed();
                next
            } else {
                rx.try_recv().map_err(|_| ())
            };
            match next {
                Ok(Msg::Job(job)) => open.run(job),
                Ok(Msg::Synced) => syncing = false,
                Ok(Msg::Close) => {
                    closing = true;
                    break;
                }
                Err(()) => break,
            }
        }
        let jobs = open.commit(keyring, counters, db);
        syncing = true;
        if let Err(mpsc::SendError(batch)) = replies.send(jobs) {
            batch.into_iter().for_each(|job| job.reply());
        }
    }
    drop(replies);
    let _ = syncer.join();
    // Without waiting: another process may be using the database.
    let _ = conn.busy_timeout(Duration::ZERO);
    match conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
        r.get::<_, i64>(0)
    }) {
        Ok(0) => {}
        Ok(_) => tracing::debug!(db, "checkpoint at close: the database is in use elsewhere"),
        Err(e) => tracing::warn!(db, error = %e, "checkpoint at close"),
    }
    if let Err((_, e)) = conn.close() {
        tracing::warn!(db, error = %e, "closing the write connection");
    }
}

/// A batch being run: the writer's transaction and its jobs so far.
struct OpenBatch<'a> {
    batch: Batch<'a>,
    jobs: Vec<Box<dyn Job>>,
    /// Why the transaction is gone (its start failed, or SQLite rolled it
    /// back): every job of the batch fails.
    broken: Option<String>,
    started: Instant,
    /// Time spent waiting for jobs (not busy).
    waited: Duration,
}

/// The database's `data_version`: it changes when another connection
/// (another process) committed.
fn data_version(conn: &Connection) -> Result<i64, rusqlite::Error> {
    conn.prepare_cached("PRAGMA data_version")?
        .query_row([], |r| r.get(0))
}

impl<'a> OpenBatch<'a> {
    /// Begins the batch's transaction; reads the keyring again when another
    /// process committed since the last batch (`seen`: the data version
    /// then).
    fn begin(
        conn: &'a Connection,
        keyring: &'a Keyring,
        seen: &mut i64,
        db: &str,
    ) -> OpenBatch<'a> {
        let started = Instant::now();
        let broken = conn
            .execute_batch("BEGIN IMMEDIATE")
            .err()
            .map(|e| format!("starting the transaction: {e}"));
        if broken.is_none() {
            match data_version(conn) {
                Ok(v) if v != *seen => {
                    *seen = v;
                    match keyring.reload(conn) {
                        Ok(()) => tracing::debug!(db, "another process wrote: keyring read again"),
                        Err(e) => {
                            tracing::error!(db, error = %e, "reading the keyring another process changed");
                        }
                    }
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(db, error = %e, "reading the data version"),
            }
        }
        OpenBatch {
            batch: Batch {
                conn,
                keyring,
                hooks: Vec::new(),
                fail_hooks: Vec::new(),
                rows: 0,
            },
            jobs: Vec::with_capacity(64),
            broken,
            started,
            waited: Duration::ZERO,
        }
    }

    fn full(&self) -> bool {
        self.broken.is_some() || self.jobs.len() >= MAX_BATCH
    }

    fn run(&mut self, mut job: Box<dyn Job>) {
        if self.broken.is_none() {
            job.run(&mut self.batch);
            if self.batch.conn.is_autocommit() {
                self.broken =
                    Some("SQLite rolled the transaction back (disk full or I/O error?)".into());
            }
        }
        self.jobs.push(job);
    }

    /// Commits; settles every job (their hooks run) and returns them to
    /// be answered once durable.
    fn commit(mut self, keyring: &Keyring, counters: &Counters, db: &str) -> Vec<Box<dyn Job>> {
        let conn = self.batch.conn;
        let outcome = match self.broken.take() {
            Some(e) => Err(e),
            None => conn.execute_batch("COMMIT").map_err(|e| {
                let _ = conn.execute_batch("ROLLBACK");
                format!("committing: {e}")
            }),
        };
        let n = self.jobs.len() as u64;
        if let Err(e) = &outcome {
            tracing::error!(db, jobs = n, error = %e, "group commit failed");
            if let Err(e) = keyring.reload(conn) {
                tracing::error!(db, error = %e, "reloading the keyring after a failed commit");
            }
        }
        let failed = self.jobs.iter().filter(|j| j.failed()).count() as u64;
        for job in &mut self.jobs {
            job.settle(outcome.as_ref().map(|_| ()).map_err(String::as_str));
        }
        // Counted before the callers hear back, so they see their batch.
        let rows = self.batch.rows;
        if outcome.is_ok() {
            counters.commits.fetch_add(1, Ordering::Relaxed);
            counters.rows.fetch_add(rows, Ordering::Relaxed);
        }
        counters.jobs.fetch_add(n, Ordering::Relaxed);
        counters.failed_jobs.fetch_add(failed, Ordering::Relaxed);
        counters.largest_batch.fetch_max(n, Ordering::Relaxed);
        let busy = self.started.elapsed().saturating_sub(self.waited);
        counters
            .busy_ns
            .fetch_add(busy.as_nanos() as u64, Ordering::Relaxed);
        tracing::trace!(
            db,
            jobs = n,
            failed,
            rows,
            busy_us = busy.as_micros() as u64,
            "group commit"
        );
        self.jobs
    }
}
