//! The operator plane's ports ([`crate::operator`]) on PostgreSQL: the
//! accounts, the audit trail and the webhooks' outbox in the database the
//! nodes share, with the same meanings as on SQLite.
//!
//! What holds across nodes:
//! - a failed sign-in that locks a user reads and writes the user's row
//!   under `FOR UPDATE` (two nodes never both count the same failure);
//! - audit appends are serialized by an advisory transaction lock
//!   ([`AUDIT_LOCK`]): one chain, no two rows with one seq;
//! - a fan-out claims its events with `FOR UPDATE SKIP LOCKED` and marks
//!   them `fanned` in the same transaction: each event is fanned out once;
//! - a claim of due deliveries moves their due time to the lease in one
//!   statement over rows locked with `SKIP LOCKED`: no two nodes claim one
//!   delivery at once;
//! - the config's subscriptions are written under an advisory lock
//!   ([`SYNC_LOCK`]): two nodes starting together do not clash.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use super::PgStore;
use crate::StoreError;
use crate::error::SqlContext;
use crate::operator::OpResult;

/// Owned statement parameters, moved onto the store's runtime.
type Args = Vec<Box<dyn ToSql + Sync + Send>>;

/// [`Args`] of owned values.
macro_rules! args {
    ($($v:expr),* $(,)?) => {
        vec![$(Box::new($v) as Box<dyn tokio_postgres::types::ToSql + Sync + Send>),*]
    };
}

mod accounts;
mod audit;
mod outbox;

/// The advisory transaction lock audit appends take (every node's appends
/// are one chain). Distinct from the locks of [`super::schema`].
pub(crate) const AUDIT_LOCK: i64 = 0x7379_2d61_7564_6974;

/// The advisory transaction lock of writing the config's webhook
/// subscriptions.
pub(crate) const SYNC_LOCK: i64 = 0x7379_2d77_6873_796e;

/// The accounts, audit trail and outbox in the shared database.
pub(crate) struct PgOperator {
    store: Arc<PgStore>,
}

impl PgOperator {
    pub(crate) fn new(store: Arc<PgStore>) -> PgOperator {
        PgOperator { store }
    }

    /// Runs `f` on the store's runtime and waits for it, keeping its
    /// [`StoreError`] (a closed store: [`StoreError::Closed`]).
    pub(crate) fn wait<T, F, Fut>(&self, f: F) -> OpResult<T>
    where
        T: Send + 'static,
        F: FnOnce(Arc<PgStore>) -> Fut,
        Fut: Future<Output = Result<T, StoreError>> + Send + 'static,
    {
        wait(&self.store, f)
    }

    /// Runs one statement; the rows it changed.
    fn execute(&self, what: &'static str, sql: impl Into<String>, args: Args) -> OpResult<u64> {
        let sql = sql.into();
        self.wait(move |s| async move {
            let client = s.client().await?;
            client.execute(sql.as_str(), &refs(&args)).await.what(what)
        })
    }

    /// Runs one query; its rows.
    fn query(&self, what: &'static str, sql: impl Into<String>, args: Args) -> OpResult<Vec<Row>> {
        let sql = sql.into();
        self.wait(move |s| async move {
            let client = s.client().await?;
            client.query(sql.as_str(), &refs(&args)).await.what(what)
        })
    }

    /// Runs one query; its row, if any.
    fn query_opt(
        &self,
        what: &'static str,
        sql: impl Into<String>,
        args: Args,
    ) -> OpResult<Option<Row>> {
        let sql = sql.into();
        self.wait(move |s| async move {
            let client = s.client().await?;
            client
                .query_opt(sql.as_str(), &refs(&args))
                .await
                .what(what)
        })
    }
}

/// [`PgStore::blocking`] keeping the store's error: runs `f` on the
/// store's runtime and waits for it.
pub(crate) fn wait<T, F, Fut>(store: &PgStore, f: F) -> OpResult<T>
where
    T: Send + 'static,
    F: FnOnce(Arc<PgStore>) -> Fut,
    Fut: Future<Output = Result<T, StoreError>> + Send + 'static,
{
    let me = match store.me.upgrade() {
        Some(me) if !store.closed.load(Ordering::Relaxed) => me,
        _ => return Err(StoreError::Closed),
    };
    let handle = store.handle.spawn(f(me));
    match futures::executor::block_on(handle) {
        Ok(r) => r,
        Err(e) if e.is_panic() => Err(StoreError::Postgres {
            what: format!("a query on {}", store.label),
            detail: format!("it panicked: {e}"),
        }),
        Err(_) => Err(StoreError::Closed),
    }
}

/// The parameters as the driver takes them.
fn refs(args: &Args) -> Vec<&(dyn ToSql + Sync)> {
    args.iter().map(|a| &**a as &(dyn ToSql + Sync)).collect()
}
