//! The operator ports on the node's SQLite file: one connection (WAL, a
//! 5 s busy timeout) under a mutex, over the row functions of
//! [`crate::accounts`], [`crate::audit`] and [`crate::outbox`]. Writes
//! that must be one transaction take `BEGIN IMMEDIATE`: the switch's
//! writer thread and the CLI write the same file.

use std::path::Path;

use parking_lot::Mutex;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use super::{AccountsDb, AuditDb, OpResult, OutboxDb};
use crate::accounts::{self as acc, ClientRow, RoleRow, SessionRow, UserRow};
use crate::audit::{self, AuditRecord, ListFilter, NewRow, VerifyReport};
use crate::error::SqlContext;
use crate::outbox::{self, DeliveryRow, EventRow, SubscriptionRow};
use crate::{StoreError, now_ms};

/// The operator tables of one SQLite file.
pub struct SqliteOperator {
    conn: Mutex<Connection>,
}

impl std::fmt::Debug for SqliteOperator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteOperator").finish_non_exhaustive()
    }
}

impl SqliteOperator {
    /// Opens `db_path` (created when missing) and makes the operator
    /// tables.
    pub fn open(db_path: &Path) -> OpResult<SqliteOperator> {
        let at = |what: &str| format!("{what} {}", db_path.display());
        let conn = Connection::open(db_path).what(&at("opening"))?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .what(&at("setting the busy timeout of"))?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .what(&at("switching to WAL"))?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);",
        )
        .what(&at("creating the metadata table of"))?;
        for (schema, what) in [
            (acc::SCHEMA, "creating the accounts' tables in"),
            (audit::SCHEMA, "creating the audit trail's table in"),
            (outbox::SCHEMA, "creating the webhooks' outbox in"),
        ] {
            conn.execute_batch(schema).what(&at(what))?;
        }
        Ok(SqliteOperator {
            conn: Mutex::new(conn),
        })
    }

    /// Runs `f` on the connection, naming `what` in its error.
    fn with<T>(
        &self,
        what: &str,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> OpResult<T> {
        f(&self.conn.lock()).what(what)
    }

    /// Runs `f` in a `BEGIN IMMEDIATE` transaction, committed when it
    /// succeeds.
    fn immediate<T>(
        &self,
        what: &str,
        f: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> OpResult<T> {
        let mut conn = self.conn.lock();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .what(what)?;
        let out = f(&tx)?;
        tx.commit().what(what)?;
        Ok(out)
    }
}

impl AccountsDb for SqliteOperator {
    fn upsert_builtin_role(&self, name: &str, permissions: &str) -> OpResult<()> {
        self.with("seeding a built-in role", |c| {
            acc::upsert_builtin_role(c, name, permissions)
        })
    }

    fn insert_role(&self, name: &str, permissions: &str) -> OpResult<bool> {
        self.with("adding a role", |c| acc::insert_role(c, name, permissions))
    }

    fn get_role(&self, name: &str) -> OpResult<Option<RoleRow>> {
        self.with("reading a role", |c| acc::get_role(c, name))
    }

    fn list_roles(&self) -> OpResult<Vec<RoleRow>> {
        self.with("listing the roles", acc::list_roles)
    }

    fn insert_user(&self, user: &UserRow) -> OpResult<bool> {
        self.with("adding a user", |c| acc::insert_user(c, user))
    }

    fn get_user(&self, name: &str) -> OpResult<Option<UserRow>> {
        self.with("reading a user", |c| acc::get_user(c, name))
    }

    fn list_users(&self) -> OpResult<Vec<UserRow>> {
        self.with("listing the users", acc::list_users)
    }

    fn set_password(
        &self,
        name: &str,
        hash: &str,
        history: &str,
        changed_ms: i64,
        must_change: bool,
    ) -> OpResult<bool> {
        self.with("setting a password", |c| {
            acc::set_password(c, name, hash, history, changed_ms, must_change)
        })
    }

    fn set_failures(&self, name: &str, failures: i64, locked_until_ms: i64) -> OpResult<bool> {
        self.with("setting a user's failures", |c| {
            acc::set_failures(c, name, failures, locked_until_ms)
        })
    }

    fn record_failure(
        &self,
        name: &str,
        limit: i64,
        lock_until_ms: i64,
        origin: &str,
    ) -> OpResult<bool> {
        let what = "counting a failed sign-in";
        self.immediate(what, |tx| {
            let Some(u) = acc::get_user(tx, name).what(what)? else {
                return Ok(false);
            };
            let failures = u.failed_logins + 1;
            if failures < limit.max(1) {
                acc::set_failures(tx, name, failures, 0).what(what)?;
                return Ok(false);
            }
            acc::set_failures(tx, name, 0, lock_until_ms).what(what)?;
            acc::delete_user_sessions(tx, name).what(what)?;
            let payload =
                super::lockout_payload(name, u.tenant.as_deref(), failures, lock_until_ms, origin);
            let tenant = u.tenant.as_deref().unwrap_or(outbox::SWITCH_TENANT);
            outbox::insert_event(tx, tenant, "user.locked_out", &payload).what(what)?;
            Ok(true)
        })
    }

    fn set_role(&self, name: &str, role: &str) -> OpResult<bool> {
        self.with("setting a user's role", |c| acc::set_role(c, name, role))
    }

    fn set_disabled(&self, name: &str, disabled: bool) -> OpResult<bool> {
        self.with("disabling a user", |c| acc::set_disabled(c, name, disabled))
    }

    fn set_totp_pending(&self, name: &str, sealed: &[u8]) -> OpResult<bool> {
        self.with("starting a TOTP enrolment", |c| {
            acc::set_totp_pending(c, name, sealed)
        })
    }

    fn activate_totp(&self, name: &str, step: i64) -> OpResult<bool> {
        self.with("confirming a TOTP enrolment", |c| {
            acc::activate_totp(c, name, step)
        })
    }

    fn clear_totp(&self, name: &str) -> OpResult<bool> {
        self.with("removing a TOTP enrolment", |c| acc::clear_totp(c, name))
    }

    fn advance_totp_step(&self, name: &str, step: i64) -> OpResult<bool> {
        self.with("recording a TOTP code", |c| {
            acc::advance_totp_step(c, name, step)
        })
    }

    fn insert_session(&self, s: &SessionRow) -> OpResult<()> {
        self.with("starting a session", |c| acc::insert_session(c, s))
    }

    fn get_session(&self, token_hash: &str) -> OpResult<Option<SessionRow>> {
        self.with("reading a session", |c| acc::get_session(c, token_hash))
    }

    fn touch_session(&self, token_hash: &str, now_ms: i64) -> OpResult<()> {
        self.with("recording a session's request", |c| {
            acc::touch_session(c, token_hash, now_ms)
        })
    }

    fn set_session_stage(&self, token_hash: &str, stage: &str) -> OpResult<()> {
        self.with("moving a session on", |c| {
            acc::set_session_stage(c, token_hash, stage)
        })
    }

    fn delete_session(&self, token_hash: &str) -> OpResult<bool> {
        self.with("ending a session", |c| acc::delete_session(c, token_hash))
    }

    fn delete_user_sessions(&self, user: &str) -> OpResult<usize> {
        self.with("ending a user's sessions", |c| {
            acc::delete_user_sessions(c, user)
        })
    }

    fn purge_sessions(&self, idle_before_ms: i64, created_before_ms: i64) -> OpResult<usize> {
        self.with("ending expired sessions", |c| {
            acc::purge_sessions(c, idle_before_ms, created_before_ms)
        })
    }

    fn insert_client(&self, client: &ClientRow) -> OpResult<bool> {
        self.with("adding an API client", |c| acc::insert_client(c, client))
    }

    fn upsert_client(&self, client: &ClientRow) -> OpResult<()> {
        self.with("registering an API client", |c| {
            acc::upsert_client(c, client)
        })
    }

    fn client_by_token_hash(&self, hash: &str) -> OpResult<Option<ClientRow>> {
        self.with("reading an API client", |c| {
            acc::client_by_token_hash(c, hash)
        })
    }

    fn get_client(&self, name: &str) -> OpResult<Option<ClientRow>> {
        self.with("reading an API client", |c| acc::get_client(c, name))
    }

    fn list_clients(&self) -> OpResult<Vec<ClientRow>> {
        self.with("listing the API clients", acc::list_clients)
    }

    fn touch_client(&self, name: &str, now_ms: i64) -> OpResult<()> {
        self.with("recording an API client's request", |c| {
            acc::touch_client(c, name, now_ms)
        })
    }

    fn revoke_client(&self, name: &str) -> OpResult<bool> {
        self.with("revoking an API client", |c| acc::revoke_client(c, name))
    }
}

impl AuditDb for SqliteOperator {
    fn count(&self) -> OpResult<i64> {
        self.with("counting the audit rows", audit::count)
    }

    fn actor_kind(&self, actor: &str) -> OpResult<&'static str> {
        if actor == "system" {
            return Ok("system");
        }
        let found: Option<String> = self.with("reading an audit actor", |c| {
            c.query_row(
                "SELECT 'user' FROM users WHERE name = ?1
                 UNION ALL SELECT 'api_client' FROM api_clients WHERE name = ?1 LIMIT 1",
                [actor],
                |r| r.get(0),
            )
            .optional()
        })?;
        Ok(super::actor_kind_of(found.as_deref()))
    }

    fn append(
        &self,
        key: &[u8; 32],
        row: &NewRow<'_>,
        alert_tenant: Option<&str>,
    ) -> OpResult<AuditRecord> {
        let what = "appending an audit row";
        self.immediate(what, |tx| {
            let rec = audit::append(tx, key, row).what(what)?;
            if let Some(tenant) = alert_tenant {
                let data = super::alert_payload(&rec);
                outbox::insert_event(tx, tenant, "audit.alert", &data)
                    .what("writing an audit alert")?;
            }
            Ok(rec)
        })
    }

    fn list(&self, filter: &ListFilter) -> OpResult<Vec<AuditRecord>> {
        self.with("reading the audit trail", |c| audit::list(c, filter))
    }

    fn verify(&self, key: &[u8; 32], outside: Option<(i64, String)>) -> OpResult<VerifyReport> {
        self.with("verifying the audit trail", |c| {
            audit::verify(c, key, outside)
        })
    }

    fn claim_key_fingerprint(&self, name: &str, fingerprint: &str) -> OpResult<String> {
        let row = format!("{name}_key_fingerprint");
        self.with("recording a key's fingerprint", |c| {
            c.execute(
                "INSERT INTO meta (name, value) VALUES (?1, ?2) ON CONFLICT (name) DO NOTHING",
                params![row, fingerprint],
            )?;
            c.query_row("SELECT value FROM meta WHERE name = ?1", [&row], |r| {
                r.get(0)
            })
        })
    }
}

impl OutboxDb for SqliteOperator {
    fn insert_event(&self, tenant: &str, event_type: &str, payload: &str) -> OpResult<String> {
        self.with("writing a webhook event", |c| {
            outbox::insert_event(c, tenant, event_type, payload)
        })
    }

    fn event(&self, id: &str) -> OpResult<Option<EventRow>> {
        self.with("reading a webhook event", |c| outbox::event(c, id))
    }

    fn subscriptions(&self) -> OpResult<Vec<SubscriptionRow>> {
        self.with("reading the webhook subscriptions", outbox::subscriptions)
    }

    fn subscription_by_id(&self, id: i64) -> OpResult<Option<SubscriptionRow>> {
        self.with("reading a webhook subscription", |c| {
            outbox::subscription_by_id(c, id)
        })
    }

    fn upsert_subscription(&self, s: &SubscriptionRow) -> OpResult<i64> {
        self.with("writing a webhook subscription", |c| {
            outbox::upsert_subscription(c, s)
        })
    }

    fn delete_subscription(&self, id: i64) -> OpResult<bool> {
        self.immediate("deleting a webhook subscription", |tx| {
            outbox::delete_subscription(tx, id).what("deleting a webhook subscription")
        })
    }

    fn sync_config(&self, rows: &[SubscriptionRow]) -> OpResult<()> {
        let what = "recording the config's webhook subscriptions";
        self.immediate(what, |tx| {
            for row in rows {
                outbox::upsert_subscription(tx, row).what(what)?;
            }
            for old in outbox::subscriptions(tx).what(what)? {
                if old.source == "config" && !rows.iter().any(|s| s.name == old.name) {
                    outbox::delete_subscription(tx, old.id).what(what)?;
                }
            }
            Ok(())
        })
    }

    fn fan_out(&self, limit: usize, first_delay_ms: i64) -> OpResult<usize> {
        let what = "fanning out webhook events";
        self.immediate(what, |tx| {
            let events = outbox::events_after_cursor(tx, limit).what(what)?;
            let Some(last) = events.last().map(|e| e.seq) else {
                return Ok(0);
            };
            let subs = outbox::subscriptions(tx).what(what)?;
            for e in &events {
                let due = e.created_ms.max(now_ms()) + first_delay_ms;
                for s in subs
                    .iter()
                    .filter(|s| super::matches(s, &e.tenant, &e.event_type))
                {
                    outbox::insert_delivery(tx, &e.id, s.id, due).what(what)?;
                }
            }
            outbox::set_cursor(tx, last).what(what)?;
            Ok(events.len())
        })
    }

    fn claim_due(
        &self,
        now: i64,
        lease_until: i64,
        limit: usize,
    ) -> OpResult<Vec<(i64, String, i64, i64)>> {
        self.with("claiming due webhook deliveries", |c| {
            outbox::claim_due(c, now, lease_until, limit)
        })
    }

    fn next_due(&self) -> OpResult<Option<i64>> {
        self.with("reading the next webhook delivery", outbox::next_due)
    }

    fn record_attempt(
        &self,
        id: i64,
        state: &str,
        next_ms: i64,
        status: Option<u16>,
        error: Option<&str>,
    ) -> OpResult<()> {
        self.with("recording a webhook attempt", |c| {
            outbox::record_attempt(c, id, state, next_ms, status, error)
        })
    }

    fn disable_after(
        &self,
        id: i64,
        subscription: i64,
        status: u16,
    ) -> OpResult<Option<SubscriptionRow>> {
        let what = "disabling a webhook subscription";
        let error = format!("HTTP {status}");
        self.immediate(what, |tx| {
            outbox::record_attempt(tx, id, "disabled", now_ms(), Some(status), Some(&error))
                .what(what)?;
            outbox::disable_subscription(tx, subscription).what(what)?;
            outbox::subscription_by_id(tx, subscription).what(what)
        })
    }

    fn deliveries(&self, subscription: Option<i64>, limit: usize) -> OpResult<Vec<DeliveryRow>> {
        self.with("reading the webhook deliveries", |c| {
            outbox::deliveries(c, subscription, limit)
        })
    }
}
