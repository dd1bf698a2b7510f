//! The audit trail (PCI DSS 10.2): append-only, hash-chained.
//!
//! Every row names who (`actor`, `actor_kind`), what (`event`), when
//! (`at_ms`), whether it succeeded (`outcome`), from where (`origin`) and
//! on what (`resource`, `tenant`). Rows are appended through the store's
//! operator port ([`switchyard_store::operator::AuditDb`]: serialized by
//! SQLite's write lock, or on PostgreSQL by an advisory lock, so that the
//! nodes sharing a database append to one chain) and chained by
//! HMAC-SHA256 under the audit key: `<data_dir>/keys/audit.key` (32
//! random bytes, 0600, made when missing; the database records its
//! fingerprint and refuses a replaced file), or on PostgreSQL a key the
//! database keeps wrapped by the key-encryption key every node shares (so
//! that every node extends and verifies one chain, and someone who can
//! only read the database cannot forge it); see [`switchyard_store::audit`]
//! for the encoding.
//!
//! The head (seq, hash) is checkpointed twice: in the database's `meta`
//! row `audit_head` (same transaction) and in `<data_dir>/keys/audit.head`
//! (after the commit; on several nodes each file holds the newest row its
//! node appended, a lower bound of the head). [`Audit::verify`] detects:
//! - a changed row (its HMAC no longer matches), a deleted or inserted
//!   row in the middle (a seq gap, or a broken `prev_hash` link), rows
//!   moved between seqs (the seq is under the HMAC);
//! - deleted newest rows (the checkpoints name a later head), even when
//!   the `meta` row was rewritten too (the key directory's copy).
//!
//! It does not detect: a rewrite by someone who can read the audit key
//! (they can re-forge the whole chain and both checkpoints); the loss of
//! the newest rows appended after the last `audit.head` write when the
//! `meta` checkpoint was rewritten too (the file lags only if a crash came
//! between the commit and the file write); a database restored together
//! with a matching older `audit.head`.
//!
//! Alert rules ([`AlertRule`], config `[[admin.alerts]]`) turn matching
//! rows into `audit.alert` webhook events in the row's own transaction.

use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use axum::Json;
use axum::Router;
use axum::extract::{Query, State};
use axum::routing::get;
use serde::{Deserialize, Serialize};
use switchyard_store::audit::{self as table, AuditRecord, ListFilter, NewRow};
use switchyard_store::operator::{AuditDb, OperatorDb};

use crate::api::{ApiError, need};
use crate::{AppState, Permission, Principal, RouteSpec};

pub use switchyard_store::audit::VerifyReport;

/// The audit key's file name in the keys directory.
pub const KEY_FILE: &str = "audit.key";
/// The head checkpoint's file name in the keys directory.
pub const HEAD_FILE: &str = "audit.head";
/// Most rows one [`Audit::list`] returns.
pub const MAX_LIST: usize = 10_000;

/// Whether an audited action succeeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// It was done.
    Success,
    /// It was refused or failed.
    Failure,
}

impl Outcome {
    /// `success` or `failure`.
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
        }
    }
}

/// One audited event, as a caller reports it.
#[derive(Debug, Clone)]
pub struct AuditEvent<'a> {
    /// The user or API client (or `system`, or the name tried at a failed
    /// login).
    pub actor: &'a str,
    /// The event type, e.g. `login`, `login.failed`, `user.locked`,
    /// `user.created`, `role.changed`, `plugin.swap`, `plugin.rollback`,
    /// `saf.retry`, `keys.rotate`, `config.reload`, `transaction.view`.
    pub event: &'a str,
    /// Success or failure.
    pub outcome: Outcome,
    /// Where the request came from.
    pub origin: Option<IpAddr>,
    /// The affected resource (a user name, plugin name, transaction id …).
    pub resource: &'a str,
    /// The tenant the resource belongs to, if any.
    pub tenant: Option<&'a str>,
    /// Free text (never card data).
    pub detail: &'a str,
}

/// An alert rule (`[[admin.alerts]]`): a row matching every given field
/// also becomes an `audit.alert` webhook event.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertRule {
    /// The event types (`["login.failed", "user.locked_out"]`; `"*"`: any).
    pub events: Vec<String>,
    /// Only this outcome.
    #[serde(default)]
    pub outcome: Option<Outcome>,
    /// Only rows of this tenant.
    #[serde(default)]
    pub tenant: Option<String>,
}

impl AlertRule {
    /// Whether `e` matches.
    pub fn matches(&self, e: &AuditEvent<'_>) -> bool {
        self.events.iter().any(|x| x == "*" || x == e.event)
            && self.outcome.is_none_or(|o| o == e.outcome)
            && self.tenant.as_deref().is_none_or(|t| Some(t) == e.tenant)
    }
}

/// One stored row, as the API and the pages show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditRow {
    /// Its place in the chain, from 1.
    pub seq: i64,
    /// When, ms since the epoch.
    pub at_ms: i64,
    /// Who.
    pub actor: String,
    /// `user`, `api_client`, `system` or `unknown`.
    pub actor_kind: String,
    /// The event type.
    pub event: String,
    /// `success` or `failure`.
    pub outcome: String,
    /// The origin address.
    pub origin: Option<String>,
    /// The affected resource.
    pub resource: String,
    /// The tenant.
    pub tenant: Option<String>,
    /// Free text.
    pub detail: String,
    /// This row's chain hash (hex).
    pub hash: String,
}

impl From<AuditRecord> for AuditRow {
    fn from(r: AuditRecord) -> AuditRow {
        AuditRow {
            seq: r.seq,
            at_ms: r.at_ms,
            actor: r.actor,
            actor_kind: r.actor_kind,
            event: r.event,
            outcome: r.outcome,
            origin: r.origin,
            resource: r.resource,
            tenant: r.tenant,
            detail: r.detail,
            hash: r.hash,
        }
    }
}

/// What [`Audit::list`] selects; every field narrows.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct AuditFilter {
    /// Only this tenant's rows.
    pub tenant: Option<String>,
    /// Only this actor's rows.
    pub actor: Option<String>,
    /// Only this event type.
    pub event: Option<String>,
    /// From this time, ms since the epoch (inclusive).
    pub from_ms: Option<i64>,
    /// Until this time, ms (exclusive).
    pub to_ms: Option<i64>,
    /// At most this many rows, newest first (default 100, at most
    /// [`MAX_LIST`]).
    pub limit: Option<usize>,
}

/// The audit trail over the store's table.
pub struct Audit {
    db: Arc<dyn AuditDb>,
    key: [u8; 32],
    head_file: PathBuf,
    alerts: Vec<AlertRule>,
}

impl std::fmt::Debug for Audit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Audit")
            .field("head_file", &self.head_file)
            .field("alerts", &self.alerts)
            .finish_non_exhaustive()
    }
}

/// The operator key `name` (`admin`, `audit`) of `store`: the one the
/// database keeps for every node (PostgreSQL), else `local` (the key file
/// at `path`), whose fingerprint the database records so that a replaced
/// key file is refused.
pub(crate) fn operator_key(
    store: &OperatorDb,
    name: &str,
    path: &Path,
    local: [u8; 32],
) -> anyhow::Result<[u8; 32]> {
    if let Some(shared) = store
        .audit
        .shared_key(name, &local)
        .with_context(|| format!("reading the shared {name} key in {}", store.label))?
    {
        return Ok(shared);
    }
    let mine = switchyard_store::operator::key_fingerprint(&local);
    let recorded = store
        .audit
        .claim_key_fingerprint(name, &mine)
        .with_context(|| format!("recording the {name} key's fingerprint"))?;
    anyhow::ensure!(
        recorded == mine,
        "{}: holds {name} key {mine}, but {} recorded {name} key {recorded}: restore the key file \
         the database was used with",
        path.display(),
        store.label
    );
    Ok(local)
}

impl Audit {
    /// Opens the trail in `store`'s tables, with the audit key in
    /// `keys_dir` (made when missing, unless rows exist: then the key was
    /// lost, or belongs on this node, and nothing could be verified) and
    /// `alerts`.
    pub fn open(
        store: &OperatorDb,
        keys_dir: &Path,
        alerts: Vec<AlertRule>,
    ) -> anyhow::Result<Audit> {
        let db = store.audit.clone();
        let path = keys_dir.join(KEY_FILE);
        let key = if store.shared {
            // Every node's appends chain under the database's key.
            let mut candidate = [0u8; 32];
            getrandom::getrandom(&mut candidate).map_err(|e| anyhow::anyhow!("random key: {e}"))?;
            operator_key(store, "audit", &path, candidate)?
        } else {
            let rows = db.count().context("counting the audit rows")?;
            operator_key(store, "audit", &path, load_or_create_key(&path, rows)?)?
        };
        Ok(Audit {
            db,
            key,
            head_file: keys_dir.join(HEAD_FILE),
            alerts,
        })
    }

    /// Appends `event`; an alert rule it matches writes an `audit.alert`
    /// webhook event in the same transaction.
    pub fn record(&self, event: &AuditEvent<'_>) -> anyhow::Result<()> {
        let origin = event.origin.map(|o| o.to_string());
        let appended = {
            let kind = self.db.actor_kind(event.actor).unwrap_or("unknown");
            let row = NewRow {
                at_ms: now_ms(),
                actor: event.actor,
                actor_kind: kind,
                event: event.event,
                outcome: event.outcome.name(),
                origin: origin.as_deref(),
                resource: event.resource,
                tenant: event.tenant,
                detail: event.detail,
            };
            let alert = self.alerts.iter().any(|a| a.matches(event)).then(|| {
                event
                    .tenant
                    .unwrap_or(switchyard_store::outbox::SWITCH_TENANT)
            });
            self.db
                .append(&self.key, &row, alert)
                .context("appending an audit row")?
        };
        tracing::info!(
            seq = appended.seq,
            actor = event.actor,
            event = event.event,
            outcome = event.outcome.name(),
            resource = event.resource,
            "audit"
        );
        if let Err(e) = self.write_head(appended.seq, &appended.hash) {
            tracing::warn!(error = %format!("{e:#}"), "could not write the audit head checkpoint");
        }
        Ok(())
    }

    /// The rows `filter` selects, newest first.
    pub fn list(&self, filter: &AuditFilter) -> anyhow::Result<Vec<AuditRow>> {
        let f = ListFilter {
            tenant: filter.tenant.clone(),
            actor: filter.actor.clone(),
            event: filter.event.clone(),
            from_ms: filter.from_ms,
            to_ms: filter.to_ms,
            limit: filter.limit.unwrap_or(100).min(MAX_LIST),
        };
        let rows = self.db.list(&f).context("reading the audit trail")?;
        Ok(rows.into_iter().map(AuditRow::from).collect())
    }

    /// Walks the whole chain and checks both checkpoints.
    pub fn verify(&self) -> anyhow::Result<VerifyReport> {
        let outside = read_head(&self.head_file)?;
        self.db
            .verify(&self.key, outside)
            .context("verifying the audit trail")
    }

    fn write_head(&self, seq: i64, hash: &str) -> anyhow::Result<()> {
        if read_head(&self.head_file)?.is_some_and(|(s, _)| s >= seq) {
            return Ok(());
        }
        let tmp = self.head_file.with_extension("head.tmp");
        write_private(&tmp, format!("{seq} {hash}\n").as_bytes())?;
        std::fs::rename(&tmp, &self.head_file)
            .with_context(|| format!("renaming {}", tmp.display()))
    }
}

fn read_head(path: &Path) -> anyhow::Result<Option<(i64, String)>> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(table::parse_head(&text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

fn load_or_create_key(path: &Path, rows: i64) -> anyhow::Result<[u8; 32]> {
    match std::fs::read(path) {
        Ok(bytes) => bytes
            .try_into()
            .map_err(|_| anyhow::anyhow!("{}: the audit key must be 32 bytes", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if rows > 0 {
                anyhow::bail!(
                    "{}: the audit key is missing but the trail has {rows} rows (restore the key)",
                    path.display()
                );
            }
            let mut key = [0u8; 32];
            getrandom::getrandom(&mut key).map_err(|e| anyhow::anyhow!("random key: {e}"))?;
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("creating {}", dir.display()))?;
            }
            write_private(path, &key)?;
            Ok(key)
        }
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// Writes `bytes` to a new file readable by its owner only.
pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut f = options
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .with_context(|| format!("writing {}", path.display()))
}

pub(crate) use crate::accounts::now_ms;

/// The audit trail's routes, for the permission and tenant tests.
pub const ROUTES: &[RouteSpec] = &[RouteSpec {
    method: "GET",
    path: "/api/audit",
    permission: Some(Permission::AuditView),
    tenant_scoped: true,
}];

/// `GET /api/audit?actor=&event=&from_ms=&to_ms=&limit=&tenant=`.
pub fn routes() -> Router<Arc<AppState>> {
    Router::new().route("/api/audit", get(audit_list))
}

/// The filter a principal may use: one bound to a tenant sees only rows
/// of its tenant (whatever it asked for).
pub fn scoped(who: &Principal, mut filter: AuditFilter) -> AuditFilter {
    if let Some(t) = &who.tenant {
        filter.tenant = Some(t.clone());
    }
    filter
}

async fn audit_list(
    State(state): State<Arc<AppState>>,
    who: Principal,
    Query(filter): Query<AuditFilter>,
) -> Result<Json<Vec<AuditRow>>, ApiError> {
    need(&who, Permission::AuditView)?;
    let filter = scoped(&who, filter);
    let rows = tokio::task::spawn_blocking(move || state.audit.list(&filter))
        .await
        .map_err(|e| internal(anyhow::anyhow!("{e}")))?
        .map_err(internal)?;
    Ok(Json(rows))
}

fn internal(e: anyhow::Error) -> ApiError {
    tracing::warn!(error = %format!("{e:#}"), "audit API: request failed");
    ApiError(
        axum::http::StatusCode::INTERNAL_SERVER_ERROR,
        "reading the audit trail failed".into(),
    )
}
