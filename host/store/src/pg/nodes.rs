//! The nodes of one database: registration (a node id is held by one live
//! node at a time), heartbeats, and the takeover of a dead node.
//!
//! A node heartbeats its row every lease / 5. A node whose heartbeat is
//! older than its lease is dead: the first live node to see it takes it
//! over, in one transaction — every transaction it may have sent and not
//! answered gets its reversal queued (as its own recovery at start-up
//! would), the ones it never sent are marked interrupted, its
//! store-and-forward leases are released — and marks it `dead`. Any node's
//! forwarders then send those reversals. A node that finds its row taken
//! over (it stalled past its lease) is fenced: its heartbeat fails and the
//! switch stops, so that it never goes on as if it still owned its
//! transactions.

use std::time::Duration;

use switchyard_engine::ports::{PortFuture, Recovered};
use tokio_postgres::Client;

use super::schema::MIGRATION_LOCK;
use super::{PgOptions, PgStore};
use crate::error::SqlContext;
use crate::{StoreError, now_ms};

/// What a heartbeat found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Beat {
    /// This node holds its id; the dead nodes it took over, and what their
    /// recovery queued.
    Alive(Vec<(String, Recovered)>),
    /// Another node took this node's id over: stop serving.
    Fenced(String),
}

/// A node as `switchyard db nodes` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeInfo {
    /// Its id.
    pub id: String,
    /// Its ordinal (in its tranlog ids).
    pub ordinal: i32,
    /// `live`, `stopped` (clean shutdown) or `dead` (taken over).
    pub state: String,
    /// The host and process of its last start.
    pub host: String,
    /// Its process id.
    pub pid: i32,
    /// When it last started, ms since the Unix epoch.
    pub started_ms: i64,
    /// Its last heartbeat.
    pub heartbeat_ms: i64,
    /// Its lease.
    pub lease_ms: i64,
    /// The node that took it over, if it died.
    pub taken_over_by: Option<String>,
}

impl NodeInfo {
    /// Whether it is live at `now_ms`: marked live and its lease current.
    pub fn live_at(&self, now_ms: i64) -> bool {
        self.state == "live" && self.heartbeat_ms >= now_ms - self.lease_ms
    }
}

fn host_name() -> String {
    std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown".into())
}

/// Registers `options.node` as this instance; returns its ordinal. Waits
/// up to one lease for a previous instance's heartbeat to lapse (a restart
/// after a crash); refuses the id while another live node heartbeats it.
pub(crate) async fn register(
    client: &mut Client,
    options: &PgOptions,
    instance: &str,
) -> Result<u16, StoreError> {
    let lease = options.node_lease.as_millis() as i64;
    let mut first_seen: Option<i64> = None;
    let deadline = tokio::time::Instant::now() + options.node_lease + Duration::from_secs(1);
    loop {
        let tx = client.transaction().await.what("registering the node")?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .await
            .what("waiting for the node lock")?;
        let row = tx
            .query_opt(
                "SELECT ordinal, state, heartbeat_ms, lease_ms, host, pid FROM nodes WHERE id = $1",
                &[&options.node],
            )
            .await
            .what("reading the node's row")?;
        let now = now_ms();
        let ordinal = match row {
            None => {
                let ordinal: Option<i32> = tx
                    .query_one(
                        "SELECT min(o) FROM generate_series(0, 1023) o
                         WHERE o NOT IN (SELECT ordinal FROM nodes)",
                        &[],
                    )
                    .await
                    .what("allocating a node ordinal")?
                    .get(0);
                let ordinal = ordinal.ok_or_else(|| {
                    StoreError::Invalid(
                        "1024 node ids are registered in this database (db nodes lists them): no ordinal is free".into(),
                    )
                })?;
                tx.execute(
                    "INSERT INTO nodes (id, ordinal, instance, state, host, pid, started_ms,
                        heartbeat_ms, lease_ms)
                     VALUES ($1, $2, $3, 'live', $4, $5, $6, $6, $7)",
                    &[
                        &options.node,
                        &ordinal,
                        &instance,
                        &host_name(),
                        &(std::process::id() as i32),
                        &now,
                        &lease,
                    ],
                )
                .await
                .what("registering the node")?;
                ordinal
            }
            Some(r) => {
                let (ordinal, state, heartbeat, their_lease): (i32, String, i64, i64) =
                    (r.get(0), r.get(1), r.get(2), r.get(3));
                let live = state == "live" && heartbeat >= now - their_lease;
                let stalled = first_seen.is_some_and(|seen| seen == heartbeat);
                if live && !(stalled && tokio::time::Instant::now() >= deadline) {
                    if first_seen.is_some_and(|seen| seen != heartbeat) {
                        let (host, pid): (String, i32) = (r.get(4), r.get(5));
                        return Err(StoreError::Invalid(format!(
                            "node id {} is held by a live node (host {host}, pid {pid}, heartbeat {} ms ago): \
                             give every node its own [switch] node_id",
                            options.node,
                            now - heartbeat
                        )));
                    }
                    first_seen.get_or_insert(heartbeat);
                    tx.rollback().await.what("registering the node")?;
                    tracing::info!(node = %options.node,
                        "node id's previous heartbeat is recent: waiting for it to lapse or go on");
                    tokio::time::sleep(Duration::from_millis(
                        (their_lease / 5).clamp(50, 2000) as u64
                    ))
                    .await;
                    continue;
                }
                tx.execute(
                    "UPDATE nodes SET instance = $2, state = 'live', host = $3, pid = $4,
                        started_ms = $5, heartbeat_ms = $5, lease_ms = $6, taken_over_by = NULL,
                        taken_over_ms = NULL
                     WHERE id = $1",
                    &[
                        &options.node,
                        &instance,
                        &host_name(),
                        &(std::process::id() as i32),
                        &now,
                        &lease,
                    ],
                )
                .await
                .what("registering the node")?;
                ordinal
            }
        };
        tx.commit().await.what("registering the node")?;
        return u16::try_from(ordinal)
            .map_err(|_| StoreError::Corrupt(format!("node ordinal {ordinal}")));
    }
}

impl PgStore {
    /// One heartbeat: renews this node's lease, reloads the keys if another
    /// node changed them, takes over dead nodes.
    pub fn beat(&self) -> PortFuture<Beat> {
        self.task(|me| async move {
            if let Some(fenced) = me.heartbeat().await? {
                return Ok(Beat::Fenced(fenced));
            }
            let seen = me.keys_seen.lock().clone();
            let now = me.follow_keys(seen).await?;
            *me.keys_seen.lock() = now;
            Ok(Beat::Alive(me.take_over_dead().await?))
        })
    }

    /// Renews this node's heartbeat; `Some(why)` when another node took
    /// this node over (it stalled past its lease): the switch must stop.
    async fn heartbeat(&self) -> Result<Option<String>, StoreError> {
        let client = self.client().await?;
        let n = client
            .execute(
                "UPDATE nodes SET heartbeat_ms = $3 WHERE id = $1 AND instance = $2 AND state = 'live'",
                &[&self.node, &self.instance, &now_ms()],
            )
            .await
            .what("renewing the node's heartbeat")?;
        if n == 0 {
            let by: Option<Option<String>> = client
                .query_opt(
                    "SELECT taken_over_by FROM nodes WHERE id = $1",
                    &[&self.node],
                )
                .await
                .what("reading the node's row")?
                .map(|r| r.get(0));
            return Ok(Some(format!(
                "node {} lost its node id (taken over by {}): it stalled past its lease of {} ms",
                self.node,
                by.flatten().unwrap_or_else(|| "another start of it".into()),
                self.lease.as_millis()
            )));
        }
        Ok(None)
    }

    /// How often to heartbeat.
    pub fn heartbeat_every(&self) -> Duration {
        (self.lease / 5).max(Duration::from_millis(50))
    }

    /// Takes over every dead node (live, heartbeat older than its lease):
    /// queues the reversals of what it may have sent, marks what it never
    /// sent interrupted, releases its leases; returns what it did per
    /// node.
    async fn take_over_dead(&self) -> Result<Vec<(String, Recovered)>, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.what("taking over dead nodes")?;
        let now = now_ms();
        let dead: Vec<String> = tx
            .query(
                "SELECT id FROM nodes WHERE state = 'live' AND heartbeat_ms < $1 - lease_ms
                   AND id <> $2
                 FOR UPDATE SKIP LOCKED",
                &[&now, &self.node],
            )
            .await
            .what("looking for dead nodes")?
            .iter()
            .map(|r| r.get(0))
            .collect();
        let mut out = Vec::new();
        for node in dead {
            let recovered = super::tranlog::recover_node(&tx, &node).await?;
            tx.execute(
                "UPDATE nodes SET state = 'dead', taken_over_by = $2, taken_over_ms = $3 WHERE id = $1",
                &[&node, &self.node, &now],
            )
            .await
            .what("marking a node dead")?;
            out.push((node, recovered));
        }
        tx.commit().await.what("taking over dead nodes")?;
        for (node, r) in &out {
            tracing::warn!(node = %node, by = %self.node,
                reversals_queued = r.reversals_queued, interrupted = r.interrupted,
                leases_released = r.leases_released,
                "took over a dead node: its in-flight transactions' reversals are queued");
        }
        Ok(out)
    }
}

/// Marks this node stopped (clean shutdown).
pub(crate) async fn stopped(store: &PgStore) -> Result<(), StoreError> {
    let client = store.client().await?;
    client
        .execute(
            "UPDATE nodes SET state = 'stopped', heartbeat_ms = $3
             WHERE id = $1 AND instance = $2 AND state = 'live'",
            &[&store.node, &store.instance, &now_ms()],
        )
        .await
        .what("marking the node stopped")?;
    Ok(())
}

/// Every node.
pub(crate) async fn list(client: &Client) -> Result<Vec<NodeInfo>, StoreError> {
    let rows = client
        .query(
            "SELECT id, ordinal, state, host, pid, started_ms, heartbeat_ms, lease_ms, taken_over_by
             FROM nodes ORDER BY id",
            &[],
        )
        .await
        .what("listing the nodes")?;
    Ok(rows
        .iter()
        .map(|r| NodeInfo {
            id: r.get(0),
            ordinal: r.get(1),
            state: r.get(2),
            host: r.get(3),
            pid: r.get(4),
            started_ms: r.get(5),
            heartbeat_ms: r.get(6),
            lease_ms: r.get(7),
            taken_over_by: r.get(8),
        })
        .collect())
}
