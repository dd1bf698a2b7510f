//! The operator plane's accounts (issue 11, items 2–3): roles, users,
//! sessions and API clients, as rows over a [`rusqlite::Connection`] the
//! admin crate opens on the store's file. Nothing here decides policy
//! (the admin crate's `accounts` module does); these are the table's
//! reads and writes, plus the sealing of TOTP secrets at rest
//! (ChaCha20-Poly1305 under the admin key, [`seal`] / [`unseal`]).
//!
//! Secrets never stored in the clear: passwords are Argon2id PHC strings,
//! session and API-client tokens SHA-256 hashes, TOTP secrets sealed.

use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use rusqlite::{Connection, OptionalExtension, Row, params};

/// The tables of this module (schema v6), created idempotently.
pub const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS roles (
    name TEXT PRIMARY KEY,
    permissions TEXT NOT NULL,
    builtin INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS users (
    name TEXT PRIMARY KEY,
    password_hash TEXT NOT NULL,
    password_changed_ms INTEGER NOT NULL,
    history TEXT NOT NULL DEFAULT '[]',
    role TEXT NOT NULL,
    tenant TEXT,
    totp_secret BLOB,
    totp_pending BLOB,
    totp_last_step INTEGER NOT NULL DEFAULT 0,
    failed_logins INTEGER NOT NULL DEFAULT 0,
    locked_until_ms INTEGER NOT NULL DEFAULT 0,
    disabled INTEGER NOT NULL DEFAULT 0,
    must_change INTEGER NOT NULL DEFAULT 0,
    created_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS sessions (
    token_hash TEXT PRIMARY KEY,
    user TEXT NOT NULL,
    csrf TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    last_seen_ms INTEGER NOT NULL,
    stage TEXT NOT NULL,
    origin TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS sessions_user ON sessions (user);
CREATE TABLE IF NOT EXISTS api_clients (
    name TEXT PRIMARY KEY,
    token_hash TEXT NOT NULL UNIQUE,
    role TEXT NOT NULL,
    tenant TEXT,
    created_ms INTEGER NOT NULL,
    last_used_ms INTEGER NOT NULL DEFAULT 0,
    disabled INTEGER NOT NULL DEFAULT 0
);
";

/// One row of `roles`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleRow {
    /// The role's name.
    pub name: String,
    /// Its permissions, a JSON array of names (`["saf.view", …]`).
    pub permissions: String,
    /// A built-in role (seeded at open, not editable).
    pub builtin: bool,
}

/// One row of `users`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRow {
    /// The sign-in name.
    pub name: String,
    /// The Argon2id PHC string of the current password.
    pub password_hash: String,
    /// When the password was set, ms since the epoch.
    pub password_changed_ms: i64,
    /// The PHC strings of the last passwords (newest last), JSON.
    pub history: String,
    /// The role's name.
    pub role: String,
    /// The tenant it is bound to; `None`: every tenant.
    pub tenant: Option<String>,
    /// The TOTP secret, sealed ([`seal`]); `None`: not enrolled.
    pub totp_secret: Option<Vec<u8>>,
    /// A TOTP secret shown at enrolment and not yet confirmed, sealed.
    pub totp_pending: Option<Vec<u8>>,
    /// The last TOTP time step accepted (a code is never accepted twice).
    pub totp_last_step: i64,
    /// Consecutive failed sign-ins.
    pub failed_logins: i64,
    /// Locked until this time, ms since the epoch (0: not locked).
    pub locked_until_ms: i64,
    /// Disabled by an administrator.
    pub disabled: bool,
    /// The password must be changed at the next sign-in.
    pub must_change: bool,
    /// When the user was created, ms since the epoch.
    pub created_ms: i64,
}

/// One row of `sessions` (the token itself is never stored).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRow {
    /// SHA-256 of the cookie's token, hex.
    pub token_hash: String,
    /// The user's name.
    pub user: String,
    /// The session's CSRF token.
    pub csrf: String,
    /// When it was created, ms since the epoch.
    pub created_ms: i64,
    /// Its last request, ms since the epoch.
    pub last_seen_ms: i64,
    /// `password` (a second step pending) or `full`.
    pub stage: String,
    /// The address it signed in from.
    pub origin: String,
}

/// One row of `api_clients`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientRow {
    /// The client's name.
    pub name: String,
    /// SHA-256 of its bearer token, hex.
    pub token_hash: String,
    /// The role's name.
    pub role: String,
    /// The tenant it is bound to; `None`: every tenant.
    pub tenant: Option<String>,
    /// When it was created, ms since the epoch.
    pub created_ms: i64,
    /// Its last request, ms since the epoch (0: never).
    pub last_used_ms: i64,
    /// Revoked.
    pub disabled: bool,
}

const USER_COLUMNS: &str = "name, password_hash, password_changed_ms, history, role, tenant, \
     totp_secret, totp_pending, totp_last_step, failed_logins, locked_until_ms, disabled, \
     must_change, created_ms";

fn user_of(r: &Row<'_>) -> rusqlite::Result<UserRow> {
    Ok(UserRow {
        name: r.get(0)?,
        password_hash: r.get(1)?,
        password_changed_ms: r.get(2)?,
        history: r.get(3)?,
        role: r.get(4)?,
        tenant: r.get(5)?,
        totp_secret: r.get(6)?,
        totp_pending: r.get(7)?,
        totp_last_step: r.get(8)?,
        failed_logins: r.get(9)?,
        locked_until_ms: r.get(10)?,
        disabled: r.get(11)?,
        must_change: r.get(12)?,
        created_ms: r.get(13)?,
    })
}

/// Inserts or replaces a built-in role (seeded at every open).
pub fn upsert_builtin_role(
    conn: &Connection,
    name: &str,
    permissions: &str,
) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO roles (name, permissions, builtin) VALUES (?1, ?2, 1)
         ON CONFLICT (name) DO UPDATE SET permissions = excluded.permissions, builtin = 1",
        params![name, permissions],
    )?;
    Ok(())
}

/// Inserts a custom role; `Ok(false)` when the name is taken.
pub fn insert_role(conn: &Connection, name: &str, permissions: &str) -> rusqlite::Result<bool> {
    let n = conn.execute(
        "INSERT INTO roles (name, permissions, builtin) VALUES (?1, ?2, 0) ON CONFLICT DO NOTHING",
        params![name, permissions],
    )?;
    Ok(n == 1)
}

/// One role by name.
pub fn get_role(conn: &Connection, name: &str) -> rusqlite::Result<Option<RoleRow>> {
    conn.query_row(
        "SELECT name, permissions, builtin FROM roles WHERE name = ?1",
        [name],
        |r| {
            Ok(RoleRow {
                name: r.get(0)?,
                permissions: r.get(1)?,
                builtin: r.get(2)?,
            })
        },
    )
    .optional()
}

/// Every role, built-ins first, then by name.
pub fn list_roles(conn: &Connection) -> rusqlite::Result<Vec<RoleRow>> {
    let mut stmt =
        conn.prepare("SELECT name, permissions, builtin FROM roles ORDER BY builtin DESC, name")?;
    let rows = stmt.query_map([], |r| {
        Ok(RoleRow {
            name: r.get(0)?,
            permissions: r.get(1)?,
            builtin: r.get(2)?,
        })
    })?;
    rows.collect()
}

/// Inserts a user; `Ok(false)` when the name is taken.
pub fn insert_user(conn: &Connection, user: &UserRow) -> rusqlite::Result<bool> {
    let n = conn.execute(
        &format!(
            "INSERT INTO users ({USER_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, \
             ?11, ?12, ?13, ?14) ON CONFLICT DO NOTHING"
        ),
        params![
            user.name,
            user.password_hash,
            user.password_changed_ms,
            user.history,
            user.role,
            user.tenant,
            user.totp_secret,
            user.totp_pending,
            user.totp_last_step,
            user.failed_logins,
            user.locked_until_ms,
            user.disabled,
            user.must_change,
            user.created_ms
        ],
    )?;
    Ok(n == 1)
}

/// One user by name.
pub fn get_user(conn: &Connection, name: &str) -> rusqlite::Result<Option<UserRow>> {
    conn.query_row(
        &format!("SELECT {USER_COLUMNS} FROM users WHERE name = ?1"),
        [name],
        user_of,
    )
    .optional()
}

/// Every user by name.
pub fn list_users(conn: &Connection) -> rusqlite::Result<Vec<UserRow>> {
    let mut stmt = conn.prepare(&format!("SELECT {USER_COLUMNS} FROM users ORDER BY name"))?;
    let rows = stmt.query_map([], user_of)?;
    rows.collect()
}

/// Sets a new password (and its history); clears failures and the lock.
/// Returns whether the user exists.
pub fn set_password(
    conn: &Connection,
    name: &str,
    hash: &str,
    history: &str,
    changed_ms: i64,
    must_change: bool,
) -> rusqlite::Result<bool> {
    let n = conn.execute(
        "UPDATE users SET password_hash = ?2, history = ?3, password_changed_ms = ?4,
         must_change = ?5, failed_logins = 0, locked_until_ms = 0 WHERE name = ?1",
        params![name, hash, history, changed_ms, must_change],
    )?;
    Ok(n == 1)
}

/// Records the failure count and lock of a user after a sign-in attempt.
pub fn set_failures(
    conn: &Connection,
    name: &str,
    failed_logins: i64,
    locked_until_ms: i64,
) -> rusqlite::Result<bool> {
    let n = conn.execute(
        "UPDATE users SET failed_logins = ?2, locked_until_ms = ?3 WHERE name = ?1",
        params![name, failed_logins, locked_until_ms],
    )?;
    Ok(n == 1)
}

/// Changes a user's role; returns whether the user exists.
pub fn set_role(conn: &Connection, name: &str, role: &str) -> rusqlite::Result<bool> {
    let n = conn.execute(
        "UPDATE users SET role = ?2 WHERE name = ?1",
        params![name, role],
    )?;
    Ok(n == 1)
}

/// Disables or enables a user; returns whether the user exists.
pub fn set_disabled(conn: &Connection, name: &str, disabled: bool) -> rusqlite::Result<bool> {
    let n = conn.execute(
        "UPDATE users SET disabled = ?2 WHERE name = ?1",
        params![name, disabled],
    )?;
    Ok(n == 1)
}

/// Stores a pending (shown, not yet confirmed) TOTP secret, sealed.
pub fn set_totp_pending(conn: &Connection, name: &str, sealed: &[u8]) -> rusqlite::Result<bool> {
    let n = conn.execute(
        "UPDATE users SET totp_pending = ?2 WHERE name = ?1",
        params![name, sealed],
    )?;
    Ok(n == 1)
}

/// Makes the pending secret the active one, with the step just accepted.
pub fn activate_totp(conn: &Connection, name: &str, step: i64) -> rusqlite::Result<bool> {
    let n = conn.execute(
        "UPDATE users SET totp_secret = totp_pending, totp_pending = NULL, totp_last_step = ?2
         WHERE name = ?1 AND totp_pending IS NOT NULL",
        params![name, step],
    )?;
    Ok(n == 1)
}

/// Removes a user's TOTP enrolment (an administrator's reset).
pub fn clear_totp(conn: &Connection, name: &str) -> rusqlite::Result<bool> {
    let n = conn.execute(
        "UPDATE users SET totp_secret = NULL, totp_pending = NULL, totp_last_step = 0
         WHERE name = ?1",
        params![name],
    )?;
    Ok(n == 1)
}

/// Records an accepted TOTP step, only when it is later than the last one
/// (so two requests with the same code cannot both pass); returns whether
/// it was recorded.
pub fn advance_totp_step(conn: &Connection, name: &str, step: i64) -> rusqlite::Result<bool> {
    let n = conn.execute(
        "UPDATE users SET totp_last_step = ?2 WHERE name = ?1 AND totp_last_step < ?2",
        params![name, step],
    )?;
    Ok(n == 1)
}

fn session_of(r: &Row<'_>) -> rusqlite::Result<SessionRow> {
    Ok(SessionRow {
        token_hash: r.get(0)?,
        user: r.get(1)?,
        csrf: r.get(2)?,
        created_ms: r.get(3)?,
        last_seen_ms: r.get(4)?,
        stage: r.get(5)?,
        origin: r.get(6)?,
    })
}

/// Inserts a session.
pub fn insert_session(conn: &Connection, s: &SessionRow) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO sessions (token_hash, user, csrf, created_ms, last_seen_ms, stage, origin)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            s.token_hash,
            s.user,
            s.csrf,
            s.created_ms,
            s.last_seen_ms,
            s.stage,
            s.origin
        ],
    )?;
    Ok(())
}

/// One session by its token's hash.
pub fn get_session(conn: &Connection, token_hash: &str) -> rusqlite::Result<Option<SessionRow>> {
    conn.query_row(
        "SELECT token_hash, user, csrf, created_ms, last_seen_ms, stage, origin
         FROM sessions WHERE token_hash = ?1",
        [token_hash],
        session_of,
    )
    .optional()
}

/// Records a session's latest request.
pub fn touch_session(conn: &Connection, token_hash: &str, now_ms: i64) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE sessions SET last_seen_ms = ?2 WHERE token_hash = ?1",
        params![token_hash, now_ms],
    )?;
    Ok(())
}

/// Sets a session's stage (`password` or `full`).
pub fn set_session_stage(conn: &Connection, token_hash: &str, stage: &str) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE sessions SET stage = ?2 WHERE token_hash = ?1",
        params![token_hash, stage],
    )?;
    Ok(())
}

/// Ends a session.
pub fn delete_session(conn: &Connection, token_hash: &str) -> rusqlite::Result<bool> {
    let n = conn.execute("DELETE FROM sessions WHERE token_hash = ?1", [token_hash])?;
    Ok(n == 1)
}

/// Ends every session of a user (disabled, locked, password reset).
pub fn delete_user_sessions(conn: &Connection, user: &str) -> rusqlite::Result<usize> {
    conn.execute("DELETE FROM sessions WHERE user = ?1", [user])
}

/// Ends every session idle since before `idle_before_ms` or created before
/// `created_before_ms`.
pub fn purge_sessions(
    conn: &Connection,
    idle_before_ms: i64,
    created_before_ms: i64,
) -> rusqlite::Result<usize> {
    conn.execute(
        "DELETE FROM sessions WHERE last_seen_ms < ?1 OR created_ms < ?2",
        params![idle_before_ms, created_before_ms],
    )
}

const CLIENT_COLUMNS: &str = "name, token_hash, role, tenant, created_ms, last_used_ms, disabled";

fn client_of(r: &Row<'_>) -> rusqlite::Result<ClientRow> {
    Ok(ClientRow {
        name: r.get(0)?,
        token_hash: r.get(1)?,
        role: r.get(2)?,
        tenant: r.get(3)?,
        created_ms: r.get(4)?,
        last_used_ms: r.get(5)?,
        disabled: r.get(6)?,
    })
}

/// Inserts an API client; `Ok(false)` when the name is taken.
pub fn insert_client(conn: &Connection, c: &ClientRow) -> rusqlite::Result<bool> {
    let n = conn.execute(
        &format!(
            "INSERT INTO api_clients ({CLIENT_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
             ON CONFLICT DO NOTHING"
        ),
        params![
            c.name,
            c.token_hash,
            c.role,
            c.tenant,
            c.created_ms,
            c.last_used_ms,
            c.disabled
        ],
    )?;
    Ok(n == 1)
}

/// Inserts or replaces an API client (the CLI's own, from its token file).
pub fn upsert_client(conn: &Connection, c: &ClientRow) -> rusqlite::Result<()> {
    conn.execute(
        &format!(
            "INSERT INTO api_clients ({CLIENT_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
             ON CONFLICT (name) DO UPDATE SET token_hash = excluded.token_hash,
             role = excluded.role, tenant = excluded.tenant, disabled = 0"
        ),
        params![
            c.name,
            c.token_hash,
            c.role,
            c.tenant,
            c.created_ms,
            c.last_used_ms,
            c.disabled
        ],
    )?;
    Ok(())
}

/// One API client by its token's hash.
pub fn client_by_token_hash(conn: &Connection, hash: &str) -> rusqlite::Result<Option<ClientRow>> {
    conn.query_row(
        &format!("SELECT {CLIENT_COLUMNS} FROM api_clients WHERE token_hash = ?1"),
        [hash],
        client_of,
    )
    .optional()
}

/// One API client by name.
pub fn get_client(conn: &Connection, name: &str) -> rusqlite::Result<Option<ClientRow>> {
    conn.query_row(
        &format!("SELECT {CLIENT_COLUMNS} FROM api_clients WHERE name = ?1"),
        [name],
        client_of,
    )
    .optional()
}

/// Every API client by name.
pub fn list_clients(conn: &Connection) -> rusqlite::Result<Vec<ClientRow>> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {CLIENT_COLUMNS} FROM api_clients ORDER BY name"
    ))?;
    let rows = stmt.query_map([], client_of)?;
    rows.collect()
}

/// Records an API client's latest request.
pub fn touch_client(conn: &Connection, name: &str, now_ms: i64) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE api_clients SET last_used_ms = ?2 WHERE name = ?1",
        params![name, now_ms],
    )?;
    Ok(())
}

/// Revokes an API client (its row stays, disabled); returns whether it
/// existed and was active.
pub fn revoke_client(conn: &Connection, name: &str) -> rusqlite::Result<bool> {
    let n = conn.execute(
        "UPDATE api_clients SET disabled = 1 WHERE name = ?1 AND disabled = 0",
        [name],
    )?;
    Ok(n == 1)
}

/// Why a sealed value did not open.
#[derive(Debug, thiserror::Error)]
#[error("a sealed value did not open (wrong key, or bound to another owner)")]
pub struct UnsealError;

const NONCE_LEN: usize = 12;

/// Seals `plain` under `key` (ChaCha20-Poly1305, random nonce), bound to
/// `aad` (e.g. `totp\0alice`): `nonce ‖ ciphertext ‖ tag`.
pub fn seal(key: &[u8; 32], aad: &[u8], plain: &[u8]) -> Vec<u8> {
    let cipher = ChaCha20Poly1305::new(Key::from_slice(key));
    let nonce = ChaCha20Poly1305::generate_nonce(&mut OsRng);
    let sealed = cipher
        .encrypt(&nonce, Payload { msg: plain, aad })
        .expect("in-memory encryption does not fail");
    let mut out = nonce.to_vec();
    out.extend_from_slice(&sealed);
    out
}

/// Opens what [`seal`] sealed with the same `key` and `aad`.
pub fn unseal(key: &[u8; 32], aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, UnsealError> {
    if sealed.len() < NONCE_LEN {
        return Err(UnsealError);
    }
    let (nonce, body) = sealed.split_at(NONCE_LEN);
    let cipher = ChaCha20Poly1305::new(Key::from_slice(key));
    cipher
        .decrypt(Nonce::from_slice(nonce), Payload { msg: body, aad })
        .map_err(|_| UnsealError)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_only_with_their_key_and_owner() {
        let key = [7u8; 32];
        let sealed = seal(&key, b"totp\0alice", b"secret");
        assert_eq!(unseal(&key, b"totp\0alice", &sealed).unwrap(), b"secret");
        assert!(unseal(&key, b"totp\0bob", &sealed).is_err());
        assert!(unseal(&[8u8; 32], b"totp\0alice", &sealed).is_err());
    }
}
