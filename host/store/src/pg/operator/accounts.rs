//! [`AccountsDb`] on PostgreSQL: roles, users, sessions, API clients.

use tokio_postgres::Row;

use super::PgOperator;
use crate::accounts::{ClientRow, RoleRow, SessionRow, UserRow};
use crate::error::SqlContext;
use crate::operator::{AccountsDb, OpResult, lockout_payload};

const USER_COLUMNS: &str = "name, password_hash, password_changed_ms, history, role, tenant, \
     totp_secret, totp_pending, totp_last_step, failed_logins, locked_until_ms, disabled, \
     must_change, created_ms";

const SESSION_COLUMNS: &str =
    "token_hash, user_name, csrf, created_ms, last_seen_ms, stage, origin";

const CLIENT_COLUMNS: &str = "name, token_hash, role, tenant, created_ms, last_used_ms, disabled";

fn role_of(r: &Row) -> RoleRow {
    RoleRow {
        name: r.get(0),
        permissions: r.get(1),
        builtin: r.get(2),
    }
}

fn user_of(r: &Row) -> UserRow {
    UserRow {
        name: r.get(0),
        password_hash: r.get(1),
        password_changed_ms: r.get(2),
        history: r.get(3),
        role: r.get(4),
        tenant: r.get(5),
        totp_secret: r.get(6),
        totp_pending: r.get(7),
        totp_last_step: r.get(8),
        failed_logins: r.get(9),
        locked_until_ms: r.get(10),
        disabled: r.get(11),
        must_change: r.get(12),
        created_ms: r.get(13),
    }
}

fn session_of(r: &Row) -> SessionRow {
    SessionRow {
        token_hash: r.get(0),
        user: r.get(1),
        csrf: r.get(2),
        created_ms: r.get(3),
        last_seen_ms: r.get(4),
        stage: r.get(5),
        origin: r.get(6),
    }
}

fn client_of(r: &Row) -> ClientRow {
    ClientRow {
        name: r.get(0),
        token_hash: r.get(1),
        role: r.get(2),
        tenant: r.get(3),
        created_ms: r.get(4),
        last_used_ms: r.get(5),
        disabled: r.get(6),
    }
}

fn client_args(c: &ClientRow) -> super::Args {
    args![
        c.name.clone(),
        c.token_hash.clone(),
        c.role.clone(),
        c.tenant.clone(),
        c.created_ms,
        c.last_used_ms,
        c.disabled,
    ]
}

impl AccountsDb for PgOperator {
    fn upsert_builtin_role(&self, name: &str, permissions: &str) -> OpResult<()> {
        self.execute(
            "seeding a built-in role",
            "INSERT INTO roles (name, permissions, builtin) VALUES ($1, $2, true)
             ON CONFLICT (name) DO UPDATE SET permissions = EXCLUDED.permissions, builtin = true",
            args![name.to_owned(), permissions.to_owned()],
        )?;
        Ok(())
    }

    fn insert_role(&self, name: &str, permissions: &str) -> OpResult<bool> {
        let n = self.execute(
            "adding a role",
            "INSERT INTO roles (name, permissions, builtin) VALUES ($1, $2, false)
             ON CONFLICT DO NOTHING",
            args![name.to_owned(), permissions.to_owned()],
        )?;
        Ok(n == 1)
    }

    fn get_role(&self, name: &str) -> OpResult<Option<RoleRow>> {
        let row = self.query_opt(
            "reading a role",
            "SELECT name, permissions, builtin FROM roles WHERE name = $1",
            args![name.to_owned()],
        )?;
        Ok(row.as_ref().map(role_of))
    }

    fn list_roles(&self) -> OpResult<Vec<RoleRow>> {
        let rows = self.query(
            "listing the roles",
            "SELECT name, permissions, builtin FROM roles ORDER BY builtin DESC, name",
            args![],
        )?;
        Ok(rows.iter().map(role_of).collect())
    }

    fn insert_user(&self, u: &UserRow) -> OpResult<bool> {
        let n = self.execute(
            "adding a user",
            format!(
                "INSERT INTO users ({USER_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, \
                 $10, $11, $12, $13, $14) ON CONFLICT DO NOTHING"
            ),
            args![
                u.name.clone(),
                u.password_hash.clone(),
                u.password_changed_ms,
                u.history.clone(),
                u.role.clone(),
                u.tenant.clone(),
                u.totp_secret.clone(),
                u.totp_pending.clone(),
                u.totp_last_step,
                u.failed_logins,
                u.locked_until_ms,
                u.disabled,
                u.must_change,
                u.created_ms,
            ],
        )?;
        Ok(n == 1)
    }

    fn get_user(&self, name: &str) -> OpResult<Option<UserRow>> {
        let row = self.query_opt(
            "reading a user",
            format!("SELECT {USER_COLUMNS} FROM users WHERE name = $1"),
            args![name.to_owned()],
        )?;
        Ok(row.as_ref().map(user_of))
    }

    fn list_users(&self) -> OpResult<Vec<UserRow>> {
        let rows = self.query(
            "listing the users",
            format!("SELECT {USER_COLUMNS} FROM users ORDER BY name"),
            args![],
        )?;
        Ok(rows.iter().map(user_of).collect())
    }

    fn set_password(
        &self,
        name: &str,
        hash: &str,
        history: &str,
        changed_ms: i64,
        must_change: bool,
    ) -> OpResult<bool> {
        let n = self.execute(
            "setting a password",
            "UPDATE users SET password_hash = $2, history = $3, password_changed_ms = $4,
             must_change = $5, failed_logins = 0, locked_until_ms = 0 WHERE name = $1",
            args![
                name.to_owned(),
                hash.to_owned(),
                history.to_owned(),
                changed_ms,
                must_change,
            ],
        )?;
        Ok(n == 1)
    }

    fn set_failures(&self, name: &str, failures: i64, locked_until_ms: i64) -> OpResult<bool> {
        let n = self.execute(
            "setting a user's failures",
            "UPDATE users SET failed_logins = $2, locked_until_ms = $3 WHERE name = $1",
            args![name.to_owned(), failures, locked_until_ms],
        )?;
        Ok(n == 1)
    }

    fn record_failure(
        &self,
        name: &str,
        limit: i64,
        lock_until_ms: i64,
        origin: &str,
    ) -> OpResult<bool> {
        let what = "counting a failed sign-in";
        let (name, origin) = (name.to_owned(), origin.to_owned());
        self.wait(move |s| async move {
            let mut client = s.client().await?;
            let tx = client.transaction().await.what(what)?;
            let Some(row) = tx
                .query_opt(
                    "SELECT failed_logins, tenant FROM users WHERE name = $1 FOR UPDATE",
                    &[&name],
                )
                .await
                .what(what)?
            else {
                return Ok(false);
            };
            let failures = row.get::<_, i64>(0) + 1;
            let tenant: Option<String> = row.get(1);
            if failures < limit.max(1) {
                tx.execute(
                    "UPDATE users SET failed_logins = $2, locked_until_ms = 0 WHERE name = $1",
                    &[&name, &failures],
                )
                .await
                .what(what)?;
                tx.commit().await.what(what)?;
                return Ok(false);
            }
            tx.execute(
                "UPDATE users SET failed_logins = 0, locked_until_ms = $2 WHERE name = $1",
                &[&name, &lock_until_ms],
            )
            .await
            .what(what)?;
            tx.execute("DELETE FROM sessions WHERE user_name = $1", &[&name])
                .await
                .what(what)?;
            let payload =
                lockout_payload(&name, tenant.as_deref(), failures, lock_until_ms, &origin);
            let tenant = tenant.as_deref().unwrap_or(crate::outbox::SWITCH_TENANT);
            crate::pg::outbox::insert_event(&*tx, tenant, "user.locked_out", &payload).await?;
            tx.commit().await.what(what)?;
            Ok(true)
        })
    }

    fn set_role(&self, name: &str, role: &str) -> OpResult<bool> {
        let n = self.execute(
            "setting a user's role",
            "UPDATE users SET role = $2 WHERE name = $1",
            args![name.to_owned(), role.to_owned()],
        )?;
        Ok(n == 1)
    }

    fn set_disabled(&self, name: &str, disabled: bool) -> OpResult<bool> {
        let n = self.execute(
            "disabling a user",
            "UPDATE users SET disabled = $2 WHERE name = $1",
            args![name.to_owned(), disabled],
        )?;
        Ok(n == 1)
    }

    fn set_totp_pending(&self, name: &str, sealed: &[u8]) -> OpResult<bool> {
        let n = self.execute(
            "starting a TOTP enrolment",
            "UPDATE users SET totp_pending = $2 WHERE name = $1",
            args![name.to_owned(), sealed.to_vec()],
        )?;
        Ok(n == 1)
    }

    fn activate_totp(&self, name: &str, step: i64) -> OpResult<bool> {
        let n = self.execute(
            "confirming a TOTP enrolment",
            "UPDATE users SET totp_secret = totp_pending, totp_pending = NULL, totp_last_step = $2
             WHERE name = $1 AND totp_pending IS NOT NULL",
            args![name.to_owned(), step],
        )?;
        Ok(n == 1)
    }

    fn clear_totp(&self, name: &str) -> OpResult<bool> {
        let n = self.execute(
            "removing a TOTP enrolment",
            "UPDATE users SET totp_secret = NULL, totp_pending = NULL, totp_last_step = 0
             WHERE name = $1",
            args![name.to_owned()],
        )?;
        Ok(n == 1)
    }

    fn advance_totp_step(&self, name: &str, step: i64) -> OpResult<bool> {
        let n = self.execute(
            "recording a TOTP code",
            "UPDATE users SET totp_last_step = $2 WHERE name = $1 AND totp_last_step < $2",
            args![name.to_owned(), step],
        )?;
        Ok(n == 1)
    }

    fn insert_session(&self, s: &SessionRow) -> OpResult<()> {
        self.execute(
            "starting a session",
            format!("INSERT INTO sessions ({SESSION_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7)"),
            args![
                s.token_hash.clone(),
                s.user.clone(),
                s.csrf.clone(),
                s.created_ms,
                s.last_seen_ms,
                s.stage.clone(),
                s.origin.clone(),
            ],
        )?;
        Ok(())
    }

    fn get_session(&self, token_hash: &str) -> OpResult<Option<SessionRow>> {
        let row = self.query_opt(
            "reading a session",
            format!("SELECT {SESSION_COLUMNS} FROM sessions WHERE token_hash = $1"),
            args![token_hash.to_owned()],
        )?;
        Ok(row.as_ref().map(session_of))
    }

    fn touch_session(&self, token_hash: &str, now_ms: i64) -> OpResult<()> {
        self.execute(
            "recording a session's request",
            "UPDATE sessions SET last_seen_ms = $2 WHERE token_hash = $1",
            args![token_hash.to_owned(), now_ms],
        )?;
        Ok(())
    }

    fn set_session_stage(&self, token_hash: &str, stage: &str) -> OpResult<()> {
        self.execute(
            "moving a session on",
            "UPDATE sessions SET stage = $2 WHERE token_hash = $1",
            args![token_hash.to_owned(), stage.to_owned()],
        )?;
        Ok(())
    }

    fn delete_session(&self, token_hash: &str) -> OpResult<bool> {
        let n = self.execute(
            "ending a session",
            "DELETE FROM sessions WHERE token_hash = $1",
            args![token_hash.to_owned()],
        )?;
        Ok(n == 1)
    }

    fn delete_user_sessions(&self, user: &str) -> OpResult<usize> {
        let n = self.execute(
            "ending a user's sessions",
            "DELETE FROM sessions WHERE user_name = $1",
            args![user.to_owned()],
        )?;
        Ok(n as usize)
    }

    fn purge_sessions(&self, idle_before_ms: i64, created_before_ms: i64) -> OpResult<usize> {
        let n = self.execute(
            "ending expired sessions",
            "DELETE FROM sessions WHERE last_seen_ms < $1 OR created_ms < $2",
            args![idle_before_ms, created_before_ms],
        )?;
        Ok(n as usize)
    }

    fn insert_client(&self, c: &ClientRow) -> OpResult<bool> {
        let n = self.execute(
            "adding an API client",
            format!(
                "INSERT INTO api_clients ({CLIENT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7)
                 ON CONFLICT DO NOTHING"
            ),
            client_args(c),
        )?;
        Ok(n == 1)
    }

    fn upsert_client(&self, c: &ClientRow) -> OpResult<()> {
        self.execute(
            "registering an API client",
            format!(
                "INSERT INTO api_clients ({CLIENT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7)
                 ON CONFLICT (name) DO UPDATE SET token_hash = EXCLUDED.token_hash,
                 role = EXCLUDED.role, tenant = EXCLUDED.tenant, disabled = false"
            ),
            client_args(c),
        )?;
        Ok(())
    }

    fn client_by_token_hash(&self, hash: &str) -> OpResult<Option<ClientRow>> {
        let row = self.query_opt(
            "reading an API client",
            format!("SELECT {CLIENT_COLUMNS} FROM api_clients WHERE token_hash = $1"),
            args![hash.to_owned()],
        )?;
        Ok(row.as_ref().map(client_of))
    }

    fn get_client(&self, name: &str) -> OpResult<Option<ClientRow>> {
        let row = self.query_opt(
            "reading an API client",
            format!("SELECT {CLIENT_COLUMNS} FROM api_clients WHERE name = $1"),
            args![name.to_owned()],
        )?;
        Ok(row.as_ref().map(client_of))
    }

    fn list_clients(&self) -> OpResult<Vec<ClientRow>> {
        let rows = self.query(
            "listing the API clients",
            format!("SELECT {CLIENT_COLUMNS} FROM api_clients ORDER BY name"),
            args![],
        )?;
        Ok(rows.iter().map(client_of).collect())
    }

    fn touch_client(&self, name: &str, now_ms: i64) -> OpResult<()> {
        self.execute(
            "recording an API client's request",
            "UPDATE api_clients SET last_used_ms = $2 WHERE name = $1",
            args![name.to_owned(), now_ms],
        )?;
        Ok(())
    }

    fn revoke_client(&self, name: &str) -> OpResult<bool> {
        let n = self.execute(
            "revoking an API client",
            "UPDATE api_clients SET disabled = true WHERE name = $1 AND NOT disabled",
            args![name.to_owned()],
        )?;
        Ok(n == 1)
    }
}
