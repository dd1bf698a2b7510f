//! The operator plane's storage ports: accounts (roles, users, sessions,
//! API clients), the audit trail and the webhooks' outbox, with two
//! implementations — the node's SQLite file ([`OperatorDb::sqlite`]) and
//! the PostgreSQL database the nodes share ([`OperatorDb::postgres`]), so
//! that a session made on one node is valid on every other, the audit
//! trail is one chain, and a webhook event is fanned out and delivered
//! once whichever node wrote it.
//!
//! The admin crate decides policy (passwords, lockouts, gates, retries);
//! these traits are the reads and writes, plus the few that must be one
//! transaction: a failed sign-in that locks the user (with its
//! `user.locked_out` event), an audit append (with its chain head and its
//! `audit.alert` event), a fan-out (events to deliveries, exactly once),
//! and a 410's disabling of a subscription.
//!
//! Every method is synchronous: the SQLite implementation holds one
//! connection under a mutex, the PostgreSQL one waits for its query on the
//! store's own runtime (callers on an async runtime use `spawn_blocking`
//! where a wait could be long, as they did with SQLite).

mod sqlite;

use std::sync::Arc;

use crate::StoreError;
use crate::accounts::{ClientRow, RoleRow, SessionRow, UserRow};
use crate::audit::{AuditRecord, ListFilter, NewRow, VerifyReport};
use crate::outbox::{DeliveryRow, EventRow, SubscriptionRow};

pub use sqlite::SqliteOperator;

/// What the operator ports answer.
pub type OpResult<T> = Result<T, StoreError>;

/// Roles, users, sessions and API clients.
pub trait AccountsDb: Send + Sync {
    /// Inserts or refreshes a built-in role.
    fn upsert_builtin_role(&self, name: &str, permissions: &str) -> OpResult<()>;
    /// Inserts a custom role; `false` when the name is taken.
    fn insert_role(&self, name: &str, permissions: &str) -> OpResult<bool>;
    /// One role.
    fn get_role(&self, name: &str) -> OpResult<Option<RoleRow>>;
    /// Every role, built-ins first, then by name.
    fn list_roles(&self) -> OpResult<Vec<RoleRow>>;

    /// Inserts a user; `false` when the name is taken.
    fn insert_user(&self, user: &UserRow) -> OpResult<bool>;
    /// One user.
    fn get_user(&self, name: &str) -> OpResult<Option<UserRow>>;
    /// Every user, by name.
    fn list_users(&self) -> OpResult<Vec<UserRow>>;
    /// Sets the password (hash, history, when, must-change); whether the
    /// user exists.
    fn set_password(
        &self,
        name: &str,
        hash: &str,
        history: &str,
        changed_ms: i64,
        must_change: bool,
    ) -> OpResult<bool>;
    /// Sets the failure count and the lock; whether the user exists.
    fn set_failures(&self, name: &str, failures: i64, locked_until_ms: i64) -> OpResult<bool>;
    /// Counts one failed sign-in of `name` from `origin`, in one
    /// transaction: at `limit` failures the user is locked until
    /// `lock_until_ms`, its sessions end and a `user.locked_out` event is
    /// written. Returns whether it locked now.
    fn record_failure(
        &self,
        name: &str,
        limit: i64,
        lock_until_ms: i64,
        origin: &str,
    ) -> OpResult<bool>;
    /// Gives a user another role; whether the user exists.
    fn set_role(&self, name: &str, role: &str) -> OpResult<bool>;
    /// Disables or enables a user; whether the user exists.
    fn set_disabled(&self, name: &str, disabled: bool) -> OpResult<bool>;
    /// Stores a pending (sealed) TOTP secret; whether the user exists.
    fn set_totp_pending(&self, name: &str, sealed: &[u8]) -> OpResult<bool>;
    /// Makes the pending secret the active one, with the step used.
    fn activate_totp(&self, name: &str, step: i64) -> OpResult<bool>;
    /// Removes the TOTP enrolment.
    fn clear_totp(&self, name: &str) -> OpResult<bool>;
    /// Records `step` as used, only when it is later than the last one
    /// (one statement: a code is accepted once, across nodes too).
    fn advance_totp_step(&self, name: &str, step: i64) -> OpResult<bool>;

    /// Inserts a session.
    fn insert_session(&self, s: &SessionRow) -> OpResult<()>;
    /// One session by its token's hash.
    fn get_session(&self, token_hash: &str) -> OpResult<Option<SessionRow>>;
    /// Records a request of the session.
    fn touch_session(&self, token_hash: &str, now_ms: i64) -> OpResult<()>;
    /// Moves a session to `stage`.
    fn set_session_stage(&self, token_hash: &str, stage: &str) -> OpResult<()>;
    /// Ends a session; whether it existed.
    fn delete_session(&self, token_hash: &str) -> OpResult<bool>;
    /// Ends every session of a user.
    fn delete_user_sessions(&self, user: &str) -> OpResult<usize>;
    /// Ends sessions last seen before `idle_before_ms` or created before
    /// `created_before_ms`.
    fn purge_sessions(&self, idle_before_ms: i64, created_before_ms: i64) -> OpResult<usize>;

    /// Inserts an API client; `false` when the name is taken.
    fn insert_client(&self, c: &ClientRow) -> OpResult<bool>;
    /// Inserts or replaces (token, role, tenant) the client `c.name`.
    fn upsert_client(&self, c: &ClientRow) -> OpResult<()>;
    /// The client of a token's hash.
    fn client_by_token_hash(&self, hash: &str) -> OpResult<Option<ClientRow>>;
    /// One client.
    fn get_client(&self, name: &str) -> OpResult<Option<ClientRow>>;
    /// Every client, by name.
    fn list_clients(&self) -> OpResult<Vec<ClientRow>>;
    /// Records a request of the client.
    fn touch_client(&self, name: &str, now_ms: i64) -> OpResult<()>;
    /// Revokes a client; whether it was live.
    fn revoke_client(&self, name: &str) -> OpResult<bool>;
}

/// The audit trail's hash chain.
pub trait AuditDb: Send + Sync {
    /// The number of rows.
    fn count(&self) -> OpResult<i64>;
    /// `user`, `api_client`, `system` or `unknown`.
    fn actor_kind(&self, actor: &str) -> OpResult<&'static str>;
    /// Appends `row` after the recorded head under `key` (appends of every
    /// process and node are serialized) and moves the head; with
    /// `alert_tenant`, an `audit.alert` event of that tenant carrying the
    /// row ([`alert_payload`]) is written in the same transaction.
    fn append(
        &self,
        key: &[u8; 32],
        row: &NewRow<'_>,
        alert_tenant: Option<&str>,
    ) -> OpResult<AuditRecord>;
    /// The rows `filter` selects, newest first.
    fn list(&self, filter: &ListFilter) -> OpResult<Vec<AuditRecord>>;
    /// Walks the chain under `key` against the database's checkpoint and
    /// `outside` (see [`crate::audit::verify`]).
    fn verify(&self, key: &[u8; 32], outside: Option<(i64, String)>) -> OpResult<VerifyReport>;
    /// The fingerprint recorded for the key `name` (`admin`, `audit`), or
    /// `fingerprint` recorded now when none was (a check that a key file
    /// was not replaced).
    fn claim_key_fingerprint(&self, name: &str, fingerprint: &str) -> OpResult<String>;
    /// The operator key `name` (`admin`: seals TOTP secrets; `audit`: the
    /// chain's HMAC key) when the database holds it for every process that
    /// shares it: on PostgreSQL, wrapped by the key-encryption key every
    /// node already shares (`candidate` recorded when none is yet), so
    /// that a TOTP secret sealed on one node opens on another and every
    /// node extends one chain. `None`: the key is the process's key file
    /// (SQLite, one node).
    fn shared_key(&self, name: &str, candidate: &[u8; 32]) -> OpResult<Option<[u8; 32]>> {
        let _ = (name, candidate);
        Ok(None)
    }
}

/// The webhooks' outbox: events, subscriptions, deliveries.
pub trait OutboxDb: Send + Sync {
    /// Writes an event without a state change of its own; returns its id.
    fn insert_event(&self, tenant: &str, event_type: &str, payload: &str) -> OpResult<String>;
    /// One event.
    fn event(&self, id: &str) -> OpResult<Option<EventRow>>;
    /// Every subscription, by id.
    fn subscriptions(&self) -> OpResult<Vec<SubscriptionRow>>;
    /// One subscription.
    fn subscription_by_id(&self, id: i64) -> OpResult<Option<SubscriptionRow>>;
    /// Inserts or updates the subscription `(source, name)` (a changed URL
    /// or secret enables it again); returns its id.
    fn upsert_subscription(&self, s: &SubscriptionRow) -> OpResult<i64>;
    /// Deletes a subscription (its pending deliveries become `disabled`);
    /// whether it existed.
    fn delete_subscription(&self, id: i64) -> OpResult<bool>;
    /// In one transaction: upserts `rows` (source `config`) and deletes the
    /// `config` subscriptions not among them.
    fn sync_config(&self, rows: &[SubscriptionRow]) -> OpResult<()>;
    /// Fans out up to `limit` events not fanned out yet, oldest first: one
    /// delivery per matching subscription ([`matches`]), due at the later
    /// of the event's time and now, plus `first_delay_ms`. Each event is
    /// fanned out once, whichever process or node runs this. Returns the
    /// events fanned out.
    fn fan_out(&self, limit: usize, first_delay_ms: i64) -> OpResult<usize>;
    /// Claims up to `limit` pending deliveries due at `now` by moving their
    /// due time to `lease_until` (no two processes claim one at once);
    /// returns (id, event id, subscription, attempts).
    fn claim_due(
        &self,
        now: i64,
        lease_until: i64,
        limit: usize,
    ) -> OpResult<Vec<(i64, String, i64, i64)>>;
    /// The earliest due time of a pending delivery.
    fn next_due(&self) -> OpResult<Option<i64>>;
    /// Records an attempt: the new state, next due time, status, error.
    fn record_attempt(
        &self,
        id: i64,
        state: &str,
        next_ms: i64,
        status: Option<u16>,
        error: Option<&str>,
    ) -> OpResult<()>;
    /// The receiver of delivery `id` answered `status` (410): in one
    /// transaction the delivery becomes `disabled` and its subscription
    /// with its pending deliveries; returns the subscription.
    fn disable_after(
        &self,
        id: i64,
        subscription: i64,
        status: u16,
    ) -> OpResult<Option<SubscriptionRow>>;
    /// The latest deliveries, newest first: of one subscription, or all.
    fn deliveries(&self, subscription: Option<i64>, limit: usize) -> OpResult<Vec<DeliveryRow>>;
}

/// The three operator ports over one database.
#[derive(Clone)]
pub struct OperatorDb {
    /// Roles, users, sessions, API clients.
    pub accounts: Arc<dyn AccountsDb>,
    /// The audit trail.
    pub audit: Arc<dyn AuditDb>,
    /// The webhooks' outbox.
    pub outbox: Arc<dyn OutboxDb>,
    /// Where it is, for errors and logs.
    pub label: String,
    /// Whether several nodes share it (PostgreSQL).
    pub shared: bool,
}

impl std::fmt::Debug for OperatorDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OperatorDb")
            .field("label", &self.label)
            .field("shared", &self.shared)
            .finish_non_exhaustive()
    }
}

impl OperatorDb {
    /// The operator tables in the SQLite file `db_path` (created when
    /// missing), on one connection: WAL, a 5 s busy timeout.
    pub fn sqlite(db_path: &std::path::Path) -> OpResult<OperatorDb> {
        let db = Arc::new(SqliteOperator::open(db_path)?);
        Ok(OperatorDb {
            accounts: db.clone(),
            audit: db.clone(),
            outbox: db,
            label: db_path.display().to_string(),
            shared: false,
        })
    }

    /// The operator tables of the PostgreSQL database `store` is on.
    pub fn postgres(store: &Arc<crate::PgStore>) -> OperatorDb {
        let db = Arc::new(crate::pg::PgOperator::new(store.clone()));
        OperatorDb {
            accounts: db.clone(),
            audit: db.clone(),
            outbox: db,
            label: store.label().to_string(),
            shared: true,
        }
    }
}

/// The `data` of a `user.locked_out` event.
pub fn lockout_payload(
    user: &str,
    tenant: Option<&str>,
    failures: i64,
    locked_until_ms: i64,
    origin: &str,
) -> String {
    serde_json::json!({
        "user": user,
        "tenant": tenant,
        "failures": failures,
        "locked_until_ms": locked_until_ms,
        "origin": origin,
    })
    .to_string()
}

/// The audit `actor_kind` of a table the actor's name was found in
/// (`users`, `api_clients`, or none), as both backends give it.
pub(crate) fn actor_kind_of(found_in: Option<&str>) -> &'static str {
    match found_in {
        Some("user") => "user",
        Some("api_client") => "api_client",
        _ => "unknown",
    }
}

/// The `data` of an `audit.alert` event: the row as the audit API shows
/// it (every column but `prev_hash`).
pub fn alert_payload(r: &AuditRecord) -> String {
    serde_json::json!({
        "seq": r.seq,
        "at_ms": r.at_ms,
        "actor": r.actor,
        "actor_kind": r.actor_kind,
        "event": r.event,
        "outcome": r.outcome,
        "origin": r.origin,
        "resource": r.resource,
        "tenant": r.tenant,
        "detail": r.detail,
        "hash": r.hash,
    })
    .to_string()
}

/// Whether `sub` gets `event_type` of `tenant`: enabled, of the tenant
/// (or `*`), and naming the type (or `*`) in its JSON array of types.
pub fn matches(sub: &SubscriptionRow, tenant: &str, event_type: &str) -> bool {
    let events: Vec<String> = serde_json::from_str(&sub.events).unwrap_or_default();
    !sub.disabled
        && (sub.tenant == "*" || sub.tenant == tenant)
        && events.iter().any(|e| e == "*" || e == event_type)
}

/// The fingerprint of a 32-byte key file's key: the first 16 hex digits of
/// its SHA-256 (names the key, reveals nothing of it).
pub fn key_fingerprint(key: &[u8; 32]) -> String {
    use sha2::Digest as _;
    hex::encode(&sha2::Sha256::digest(key)[..8])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lockout_payload_is_json() {
        let p: serde_json::Value =
            serde_json::from_str(&lockout_payload("ann", None, 10, 5, "127.0.0.1")).unwrap();
        assert_eq!(p["user"], "ann");
        assert!(p["tenant"].is_null());
        assert_eq!(p["failures"], 10);
    }
}
