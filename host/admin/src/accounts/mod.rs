//! Users, passwords, TOTP, sessions, CSRF, API clients and roles.
//!
//! [`Accounts`] works over the store's operator ports
//! ([`switchyard_store::operator::AccountsDb`]: the node's SQLite file, or
//! the PostgreSQL database every node shares, so that a session made on
//! one node is valid on the others) and holds the admin key that seals
//! TOTP secrets: `<data_dir>/keys/admin.key` (32 random bytes, mode 0600,
//! created when missing; its fingerprint is recorded in the database, and
//! a replaced file is refused), or on PostgreSQL the key the database
//! keeps wrapped by the key-encryption key every node shares (the first
//! node's file becomes it), so that a TOTP secret sealed on one node opens
//! on every other. Every decision takes the time as `now_ms`, so tests inject the
//! clock. Auditing is the callers' (pages, CLI): these methods say what
//! happened; a lockout's `user.locked_out` webhook event is written here,
//! in the same transaction as the users-row update.

pub mod extract;
pub mod pages;
pub mod password;
pub mod principal;
pub mod roles;
pub mod sessions;
pub mod totp;

use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

use sha2::{Digest, Sha256};
use switchyard_store::accounts as db;
use switchyard_store::operator::{AccountsDb, OperatorDb};

pub use pages::{ROUTES, routes};
pub use password::{HashCost, Rule};
use principal::Permission;
pub use sessions::{COOKIE, csrf_layer};

/// Milliseconds per minute.
const MINUTE_MS: i64 = 60_000;

/// The password, lockout, session and TOTP rules (`[admin]` maps onto it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// Shortest password, characters.
    pub min_length: usize,
    /// A password needs letters and digits.
    pub letters_and_digits: bool,
    /// A new password may not be one of this many last ones.
    pub history: usize,
    /// A password expires after this many days (forced change at the next
    /// sign-in); 0: never.
    pub max_age_days: u32,
    /// Consecutive failures that lock a user.
    pub lockout_failures: u32,
    /// How long a lock lasts, minutes.
    pub lockout_minutes: u32,
    /// A session idle this long ends (sign in again), minutes.
    pub idle_minutes: u32,
    /// Every user must enrol TOTP at the first sign-in.
    pub require_totp: bool,
    /// A session ends this long after sign-in, hours.
    pub session_max_hours: u32,
    /// The Argon2id cost of new password hashes.
    pub hash_cost: HashCost,
}

impl Default for Policy {
    fn default() -> Policy {
        Policy {
            min_length: 12,
            letters_and_digits: true,
            history: 4,
            max_age_days: 90,
            lockout_failures: 10,
            lockout_minutes: 30,
            idle_minutes: 15,
            require_totp: false,
            session_max_hours: 12,
            hash_cost: HashCost::default(),
        }
    }
}

/// Why an accounts operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum AccountsError {
    /// The password breaks rules of the policy (every one is listed).
    #[error("the password breaks the policy: it needs {}", list(.0))]
    Policy(Vec<Rule>),
    /// The name is taken.
    #[error("{kind} {name} already exists")]
    Exists {
        /// `user`, `API client` or `role`.
        kind: &'static str,
        /// The name.
        name: String,
    },
    /// No such user, client or role.
    #[error("no {kind} named {name}")]
    NotFound {
        /// `user`, `API client` or `role`.
        kind: &'static str,
        /// The name.
        name: String,
    },
    /// A malformed name.
    #[error("{0:?}: a name is 1–64 characters of a-z, A-Z, 0-9, _ . - @")]
    BadName(String),
    /// A built-in role cannot be changed.
    #[error("role {0} is built in and cannot be changed")]
    Builtin(String),
    /// Permission names that do not exist.
    #[error("unknown permissions: {}", .0.join(", "))]
    UnknownPermissions(Vec<String>),
    /// The current password given at a change is wrong.
    #[error("the current password is wrong")]
    WrongPassword,
    /// A TOTP code that is wrong, or was already used.
    #[error("the code is wrong or was already used")]
    WrongCode,
    /// No TOTP enrolment is pending.
    #[error("no TOTP enrolment is pending: open the enrolment page first")]
    NoEnrolment,
    /// The storage failed.
    #[error("the accounts' storage: {0}")]
    Db(#[from] switchyard_store::StoreError),
    /// A sealed secret did not open (another admin key?).
    #[error("a TOTP secret did not open: is keys/admin.key the one it was sealed with?")]
    Unseal,
}

fn list(rules: &[Rule]) -> String {
    rules
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The wall clock, ms since the epoch (callers pass it as `now_ms`).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Constant-time equality of two byte strings (the length is not secret).
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// SHA-256 of a token, hex: what the tables store instead of the token.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// `n` random bytes, hex.
fn random_hex(n: usize) -> String {
    let mut raw = vec![0u8; n];
    getrandom::getrandom(&mut raw).expect("the OS has randomness");
    hex::encode(raw)
}

/// Whether `name` is a valid user, client or tenant name.
pub fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-@".contains(&b))
}

/// A user as the pages, the API and the CLI show it (no secrets).
#[derive(Debug, Clone, serde::Serialize)]
pub struct UserView {
    /// The sign-in name.
    pub name: String,
    /// The role.
    pub role: String,
    /// The tenant; `None`: every tenant.
    pub tenant: Option<String>,
    /// TOTP enrolled.
    pub totp: bool,
    /// Locked until, ms since the epoch (`None`: not locked now).
    pub locked_until_ms: Option<i64>,
    /// Consecutive failed sign-ins.
    pub failed_logins: i64,
    /// Disabled.
    pub disabled: bool,
    /// Must change the password at the next sign-in (reset, or expired).
    pub must_change: bool,
    /// When the password was last set, ms since the epoch.
    pub password_changed_ms: i64,
    /// When the user was created, ms since the epoch.
    pub created_ms: i64,
}

/// An API client as shown (never its token).
#[derive(Debug, Clone, serde::Serialize)]
pub struct ClientView {
    /// The name.
    pub name: String,
    /// The role.
    pub role: String,
    /// The tenant; `None`: every tenant.
    pub tenant: Option<String>,
    /// When it was made, ms since the epoch.
    pub created_ms: i64,
    /// Its last request, ms since the epoch (`None`: never).
    pub last_used_ms: Option<i64>,
    /// Revoked.
    pub revoked: bool,
}

/// A role as shown.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RoleView {
    /// The name.
    pub name: String,
    /// Its permissions.
    pub permissions: Vec<Permission>,
    /// Built in (not editable).
    pub builtin: bool,
}

/// What a sign-in with name and password came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Login {
    /// Signed in: the cookie's token (shown once) and what is still to do
    /// before the session reaches everything.
    Ok {
        /// The session token for the `sy_session` cookie.
        token: String,
        /// What the user must do first, if anything.
        gate: Option<Gate>,
    },
    /// Wrong name or password, or a disabled user (one answer for all).
    Failed {
        /// This failure locked the user (audit `user.locked_out`).
        locked_now: bool,
    },
    /// The user is locked until then (ms since the epoch).
    Locked(i64),
}

/// A second step a session in stage `password` must pass first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    /// Enter a TOTP code (`/login/totp`).
    Totp,
    /// Enrol TOTP (`/account/totp`), required by the policy.
    Enrol,
    /// Change the password (`/password`): expired or reset.
    Password,
}

impl Gate {
    /// The page that passes it.
    pub fn path(self) -> &'static str {
        match self {
            Gate::Totp => "/login/totp",
            Gate::Enrol => "/account/totp",
            Gate::Password => "/password",
        }
    }
}

/// A resolved session: the user's principal parts and its gate.
#[derive(Debug, Clone)]
pub struct SessionInfo {
    /// The user.
    pub user: String,
    /// The role.
    pub role: String,
    /// The role's permissions (empty while a gate is pending).
    pub permissions: Vec<Permission>,
    /// The tenant.
    pub tenant: Option<String>,
    /// The CSRF token.
    pub csrf: String,
    /// What is still to do, if anything.
    pub gate: Option<Gate>,
}

/// Why a session cookie does not resolve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionEnd {
    /// No such session (logged out, or never).
    Unknown,
    /// Idle too long, or past its absolute maximum: it was ended now.
    Expired,
}

/// What a second factor came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TotpLogin {
    /// Accepted; the gate still pending, if any.
    Ok(Option<Gate>),
    /// Wrong or replayed code.
    Failed {
        /// This failure locked the user (the session was ended).
        locked_now: bool,
    },
}

/// The accounts of the operator plane (users, sessions, API clients,
/// roles) over the store's tables.
pub struct Accounts {
    db: Arc<dyn AccountsDb>,
    key: [u8; 32],
    policy: Policy,
    /// A hash of nothing, verified when the user is unknown (no timing
    /// oracle).
    dummy: String,
}

impl std::fmt::Debug for Accounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Accounts")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

/// Reads the admin key in `keys_dir/admin.key`, creating it (32 random
/// bytes, mode 0600, the directory 0700) when missing.
pub fn load_or_create_key(keys_dir: &Path) -> anyhow::Result<[u8; 32]> {
    use anyhow::Context as _;
    let path = keys_dir.join("admin.key");
    match std::fs::read(&path) {
        Ok(raw) => {
            return raw.as_slice().try_into().map_err(|_| {
                anyhow::anyhow!(
                    "{} is not 32 bytes long ({} bytes)",
                    path.display(),
                    raw.len()
                )
            });
        }
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(e).with_context(|| format!("reading {}", path.display()));
        }
        Err(_) => {}
    }
    std::fs::create_dir_all(keys_dir)
        .with_context(|| format!("creating {}", keys_dir.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let _ = std::fs::set_permissions(keys_dir, std::fs::Permissions::from_mode(0o700));
    }
    let mut key = [0u8; 32];
    getrandom::getrandom(&mut key).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    match options.open(&path) {
        Ok(mut file) => {
            use std::io::Write as _;
            file.write_all(&key)
                .and_then(|()| file.sync_all())
                .with_context(|| format!("writing {}", path.display()))?;
            tracing::info!(file = %path.display(), "admin key created");
            Ok(key)
        }
        // Someone else (the switch, or another CLI) made it first.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => load_or_create_key(keys_dir),
        Err(e) => Err(e).with_context(|| format!("creating {}", path.display())),
    }
}

impl Accounts {
    /// Opens the accounts over `store`'s tables (seeding the built-in
    /// roles) with the TOTP sealing key in `keys_dir`, which must be the
    /// key the database first recorded (every node shares one).
    pub fn open(store: &OperatorDb, keys_dir: &Path, policy: Policy) -> anyhow::Result<Accounts> {
        use anyhow::Context as _;
        let db = store.accounts.clone();
        for name in roles::BUILTIN {
            let perms = roles::builtin(name).expect("a built-in role");
            db.upsert_builtin_role(name, &roles::to_json(&perms))
                .context("seeding the built-in roles")?;
        }
        let local = load_or_create_key(keys_dir)?;
        let key = crate::audit::operator_key(store, "admin", &keys_dir.join("admin.key"), local)?;
        let dummy = password::hash(&policy.hash_cost, "no such user, no such password");
        Ok(Accounts {
            db,
            key,
            policy,
            dummy,
        })
    }

    /// The policy in force.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    fn role_permissions(&self, role: &str) -> Result<Vec<Permission>, AccountsError> {
        match self.db.get_role(role)? {
            Some(r) => Ok(roles::from_json(&r.permissions)),
            None => Err(AccountsError::NotFound {
                kind: "role",
                name: role.to_owned(),
            }),
        }
    }

    /// The permissions of `role`.
    pub fn permissions_of(&self, role: &str) -> Result<Vec<Permission>, AccountsError> {
        self.role_permissions(role)
    }

    fn check_new_password(&self, password: &str) -> Result<(), AccountsError> {
        let broken = password::check_strength(&self.policy, password);
        if broken.is_empty() {
            Ok(())
        } else {
            Err(AccountsError::Policy(broken))
        }
    }

    /// Adds a user with `password` (checked against the policy); with
    /// `must_change` the user changes it at the first sign-in.
    pub fn add_user(
        &self,
        name: &str,
        password: &str,
        role: &str,
        tenant: Option<&str>,
        must_change: bool,
        now_ms: i64,
    ) -> Result<(), AccountsError> {
        if !valid_name(name) {
            return Err(AccountsError::BadName(name.to_owned()));
        }
        if let Some(t) = tenant.filter(|t| !valid_name(t)) {
            return Err(AccountsError::BadName(t.to_owned()));
        }
        self.check_new_password(password)?;
        self.permissions_of(role)?;
        let hash = password::hash(&self.policy.hash_cost, password);
        let row = db::UserRow {
            name: name.to_owned(),
            history: serde_json::to_string(&[&hash]).expect("strings serialise"),
            password_hash: hash,
            password_changed_ms: now_ms,
            role: role.to_owned(),
            tenant: tenant.map(str::to_owned),
            totp_secret: None,
            totp_pending: None,
            totp_last_step: 0,
            failed_logins: 0,
            locked_until_ms: 0,
            disabled: false,
            must_change,
            created_ms: now_ms,
        };
        if self.db.insert_user(&row)? {
            Ok(())
        } else {
            Err(AccountsError::Exists {
                kind: "user",
                name: name.to_owned(),
            })
        }
    }

    fn user(&self, name: &str) -> Result<db::UserRow, AccountsError> {
        self.db
            .get_user(name)?
            .ok_or_else(|| AccountsError::NotFound {
                kind: "user",
                name: name.to_owned(),
            })
    }

    /// One user as shown.
    pub fn get_user(&self, name: &str, now_ms: i64) -> Result<Option<UserView>, AccountsError> {
        Ok(self.db.get_user(name)?.map(|u| self.view_of(u, now_ms)))
    }

    fn view_of(&self, u: db::UserRow, now_ms: i64) -> UserView {
        UserView {
            must_change: u.must_change || self.expired(&u, now_ms),
            name: u.name,
            role: u.role,
            tenant: u.tenant,
            totp: u.totp_secret.is_some(),
            locked_until_ms: (u.locked_until_ms > now_ms).then_some(u.locked_until_ms),
            failed_logins: u.failed_logins,
            disabled: u.disabled,
            password_changed_ms: u.password_changed_ms,
            created_ms: u.created_ms,
        }
    }

    /// Every user as shown, by name.
    pub fn list_users(&self, now_ms: i64) -> Result<Vec<UserView>, AccountsError> {
        let rows = self.db.list_users()?;
        Ok(rows.into_iter().map(|u| self.view_of(u, now_ms)).collect())
    }

    fn expired(&self, u: &db::UserRow, now_ms: i64) -> bool {
        self.policy.max_age_days > 0
            && now_ms - u.password_changed_ms > i64::from(self.policy.max_age_days) * 86_400_000
    }

    /// What a user must still do before a session reaches everything
    /// (the TOTP code itself aside).
    fn account_gate(&self, u: &db::UserRow, now_ms: i64) -> Option<Gate> {
        if self.policy.require_totp && u.totp_secret.is_none() {
            Some(Gate::Enrol)
        } else if u.must_change || self.expired(u, now_ms) {
            Some(Gate::Password)
        } else {
            None
        }
    }

    /// Signs in with name and password from `origin`: a session, or a
    /// failure counted towards the lockout. An unknown name still costs
    /// one hash.
    pub fn login(
        &self,
        name: &str,
        password: &str,
        origin: IpAddr,
        now_ms: i64,
    ) -> Result<Login, AccountsError> {
        // Housekeeping: sessions that expired unseen go at every sign-in.
        self.purge_sessions(now_ms)?;
        let Some(u) = self.db.get_user(name)? else {
            password::verify(&self.dummy, password);
            return Ok(Login::Failed { locked_now: false });
        };
        let ok = password::verify(&u.password_hash, password);
        if u.locked_until_ms > now_ms {
            return Ok(Login::Locked(u.locked_until_ms));
        }
        if !ok || u.disabled {
            let locked_now = self.count_failure(&u, origin, now_ms)?;
            return Ok(Login::Failed { locked_now });
        }
        self.db.set_failures(name, 0, 0)?;
        let gate = if u.totp_secret.is_some() {
            Some(Gate::Totp)
        } else {
            self.account_gate(&u, now_ms)
        };
        let token = self.new_session(name, gate.is_none(), origin, now_ms)?;
        Ok(Login::Ok { token, gate })
    }

    /// Counts one failure of `u`; at the policy's limit locks it, ends
    /// its sessions and writes the `user.locked_out` event, in one
    /// transaction. Returns whether it locked now.
    fn count_failure(
        &self,
        u: &db::UserRow,
        origin: IpAddr,
        now_ms: i64,
    ) -> Result<bool, AccountsError> {
        let until = now_ms + i64::from(self.policy.lockout_minutes) * MINUTE_MS;
        let limit = i64::from(self.policy.lockout_failures.max(1));
        Ok(self
            .db
            .record_failure(&u.name, limit, until, &origin.to_string())?)
    }

    fn new_session(
        &self,
        user: &str,
        full: bool,
        origin: IpAddr,
        now_ms: i64,
    ) -> Result<String, AccountsError> {
        let token = random_hex(32);
        let row = db::SessionRow {
            token_hash: token_hash(&token),
            user: user.to_owned(),
            csrf: random_hex(32),
            created_ms: now_ms,
            last_seen_ms: now_ms,
            stage: if full { "full" } else { "password" }.to_owned(),
            origin: origin.to_string(),
        };
        self.db.insert_session(&row)?;
        Ok(token)
    }

    /// Resolves a session cookie's token at `now_ms`: ends it (and says so)
    /// when idle longer than the policy allows or past its maximum age;
    /// otherwise records the request.
    pub fn session(&self, token: &str, now_ms: i64) -> Result<SessionInfo, SessionEnd> {
        self.session_inner(token, now_ms).unwrap_or_else(|e| {
            tracing::warn!(error = %e, "resolving a session");
            Err(SessionEnd::Unknown)
        })
    }

    fn session_inner(
        &self,
        token: &str,
        now_ms: i64,
    ) -> Result<Result<SessionInfo, SessionEnd>, AccountsError> {
        let hash = token_hash(token);
        let Some(s) = self.db.get_session(&hash)? else {
            return Ok(Err(SessionEnd::Unknown));
        };
        let idle = now_ms - s.last_seen_ms > i64::from(self.policy.idle_minutes) * MINUTE_MS;
        let old = now_ms - s.created_ms > i64::from(self.policy.session_max_hours) * 60 * MINUTE_MS;
        let user = self.db.get_user(&s.user)?;
        let Some(u) = user.filter(|u| !u.disabled && u.locked_until_ms <= now_ms) else {
            self.db.delete_session(&hash)?;
            return Ok(Err(SessionEnd::Unknown));
        };
        if idle || old {
            self.db.delete_session(&hash)?;
            return Ok(Err(SessionEnd::Expired));
        }
        self.db.touch_session(&hash, now_ms)?;
        let gate = if s.stage == "full" {
            None
        } else if u.totp_secret.is_some() && s.stage == "password" {
            Some(Gate::Totp)
        } else {
            self.account_gate(&u, now_ms)
        };
        if gate.is_none() && s.stage != "full" {
            self.db.set_session_stage(&hash, "full")?;
        }
        let permissions = match gate {
            Some(_) => Vec::new(),
            None => self.role_permissions(&u.role).unwrap_or_default(),
        };
        Ok(Ok(SessionInfo {
            user: u.name,
            role: u.role,
            permissions,
            tenant: u.tenant,
            csrf: s.csrf,
            gate,
        }))
    }

    /// The CSRF token of a session (without touching or expiring it), for
    /// the CSRF layer.
    pub fn session_csrf(&self, token: &str) -> Option<String> {
        self.db
            .get_session(&token_hash(token))
            .ok()
            .flatten()
            .map(|s| s.csrf)
    }

    /// Whether `presented` is the CSRF token of the session `token`
    /// (constant-time comparison).
    pub fn check_csrf(&self, token: &str, presented: &str) -> bool {
        self.session_csrf(token)
            .is_some_and(|csrf| ct_eq(csrf.as_bytes(), presented.as_bytes()))
    }

    /// Ends a session (sign-out); returns its user when there was one.
    pub fn logout(&self, token: &str) -> Result<Option<String>, AccountsError> {
        let hash = token_hash(token);
        let user = self.db.get_session(&hash)?.map(|s| s.user);
        self.db.delete_session(&hash)?;
        Ok(user)
    }

    /// Checks the second factor of a session in stage `password`.
    pub fn login_totp(
        &self,
        token: &str,
        code: &str,
        origin: IpAddr,
        now_ms: i64,
    ) -> Result<TotpLogin, AccountsError> {
        let hash = token_hash(token);
        let session = self.db.get_session(&hash)?;
        let Some(s) = session.filter(|s| s.stage == "password") else {
            return Err(AccountsError::NotFound {
                kind: "session waiting for a code",
                name: "this".into(),
            });
        };
        let u = self.user(&s.user)?;
        let Some(sealed) = u.totp_secret.as_deref() else {
            return Ok(TotpLogin::Ok(self.account_gate(&u, now_ms)));
        };
        let secret = self.unseal_totp(&u.name, sealed)?;
        let accepted = totp::accept(&secret, code, now_ms, u.totp_last_step).filter(|step| {
            self.db
                .advance_totp_step(&u.name, *step as i64)
                .unwrap_or(false)
        });
        if accepted.is_none() {
            let locked_now = self.count_failure(&u, origin, now_ms)?;
            return Ok(TotpLogin::Failed { locked_now });
        }
        let gate = self.account_gate(&u, now_ms);
        self.db.set_failures(&u.name, 0, 0)?;
        self.db
            .set_session_stage(&hash, if gate.is_none() { "full" } else { "totp" })?;
        Ok(TotpLogin::Ok(gate))
    }

    fn totp_aad(user: &str) -> Vec<u8> {
        format!("switchyard totp\0{user}").into_bytes()
    }

    fn unseal_totp(&self, user: &str, sealed: &[u8]) -> Result<Vec<u8>, AccountsError> {
        db::unseal(&self.key, &Accounts::totp_aad(user), sealed).map_err(|_| AccountsError::Unseal)
    }

    /// Starts (or shows again) a TOTP enrolment: the pending secret, sealed
    /// at rest, active only once [`Accounts::confirm_totp`] accepts a code.
    /// Returns the `otpauth://` URI and the base32 secret.
    pub fn begin_totp(&self, user: &str) -> Result<(String, String), AccountsError> {
        let u = self.user(user)?;
        let secret = match u.totp_pending.as_deref() {
            Some(sealed) => self.unseal_totp(user, sealed)?,
            None => {
                let secret = totp::new_secret();
                let sealed = db::seal(&self.key, &Accounts::totp_aad(user), &secret);
                self.db.set_totp_pending(user, &sealed)?;
                secret
            }
        };
        Ok((totp::uri(&secret, user), totp::base32(&secret)))
    }

    /// Confirms a pending enrolment with a correct code; the step used is
    /// recorded (it cannot be used again to sign in).
    pub fn confirm_totp(&self, user: &str, code: &str, now_ms: i64) -> Result<(), AccountsError> {
        let u = self.user(user)?;
        let Some(sealed) = u.totp_pending.as_deref() else {
            return Err(AccountsError::NoEnrolment);
        };
        let secret = self.unseal_totp(user, sealed)?;
        let step = totp::accept(&secret, code, now_ms, u.totp_last_step)
            .ok_or(AccountsError::WrongCode)?;
        if self.db.activate_totp(user, step as i64)? {
            Ok(())
        } else {
            Err(AccountsError::NoEnrolment)
        }
    }

    /// Records that the session `token` passed its second factor (a user
    /// who just enrolled needs no second code): stage `password` → `totp`.
    pub fn mark_totp_passed(&self, token: &str) -> Result<(), AccountsError> {
        let hash = token_hash(token);
        if self
            .db
            .get_session(&hash)?
            .is_some_and(|s| s.stage == "password")
        {
            self.db.set_session_stage(&hash, "totp")?;
        }
        Ok(())
    }

    /// Removes a user's TOTP enrolment (an administrator's reset: the user
    /// enrols again).
    pub fn clear_totp(&self, user: &str) -> Result<(), AccountsError> {
        self.found("user", user, self.db.clear_totp(user)?)
    }

    fn found(&self, kind: &'static str, name: &str, hit: bool) -> Result<(), AccountsError> {
        if hit {
            Ok(())
        } else {
            Err(AccountsError::NotFound {
                kind,
                name: name.to_owned(),
            })
        }
    }

    /// The user's own change: the current password, then a new one that
    /// passes the policy and is none of the last ones.
    pub fn change_password(
        &self,
        user: &str,
        current: &str,
        new: &str,
        now_ms: i64,
    ) -> Result<(), AccountsError> {
        let u = self.user(user)?;
        if !password::verify(&u.password_hash, current) {
            return Err(AccountsError::WrongPassword);
        }
        let mut broken = password::check_strength(&self.policy, new);
        let history: Vec<String> = serde_json::from_str(&u.history).unwrap_or_default();
        if password::matches_any(&history, new) || password::verify(&u.password_hash, new) {
            broken.push(Rule::Reused(self.policy.history));
        }
        if !broken.is_empty() {
            return Err(AccountsError::Policy(broken));
        }
        self.store_password(&u, new, false, now_ms, history)
    }

    fn store_password(
        &self,
        u: &db::UserRow,
        new: &str,
        must_change: bool,
        now_ms: i64,
        mut history: Vec<String>,
    ) -> Result<(), AccountsError> {
        let hash = password::hash(&self.policy.hash_cost, new);
        history.push(hash.clone());
        let keep = self.policy.history.max(1);
        if history.len() > keep {
            history.drain(..history.len() - keep);
        }
        let history = serde_json::to_string(&history).expect("strings serialise");
        self.db
            .set_password(&u.name, &hash, &history, now_ms, must_change)?;
        Ok(())
    }

    /// An administrator's reset: a new (temporary) password that passes the
    /// strength rules, to be changed at the next sign-in; unlocks the user
    /// and ends its sessions.
    pub fn reset_password(
        &self,
        user: &str,
        temporary: &str,
        now_ms: i64,
    ) -> Result<(), AccountsError> {
        let u = self.user(user)?;
        self.check_new_password(temporary)?;
        let history: Vec<String> = serde_json::from_str(&u.history).unwrap_or_default();
        self.store_password(&u, temporary, true, now_ms, history)?;
        self.db.delete_user_sessions(user)?;
        Ok(())
    }

    /// Lifts a lock and clears the failure count.
    pub fn unlock(&self, user: &str) -> Result<(), AccountsError> {
        self.found("user", user, self.db.set_failures(user, 0, 0)?)
    }

    /// Disables (or enables again) a user; disabling ends its sessions.
    pub fn set_disabled(&self, user: &str, disabled: bool) -> Result<(), AccountsError> {
        let hit = self.db.set_disabled(user, disabled)?;
        if disabled {
            self.db.delete_user_sessions(user)?;
        }
        self.found("user", user, hit)
    }

    /// Gives a user another role (existing).
    pub fn set_role(&self, user: &str, role: &str) -> Result<(), AccountsError> {
        self.permissions_of(role)?;
        self.found("user", user, self.db.set_role(user, role)?)
    }

    /// Adds an API client: returns its bearer token (`sy_…`, shown once;
    /// only its SHA-256 is stored).
    pub fn add_client(
        &self,
        name: &str,
        role: &str,
        tenant: Option<&str>,
        now_ms: i64,
    ) -> Result<String, AccountsError> {
        if !valid_name(name) {
            return Err(AccountsError::BadName(name.to_owned()));
        }
        if let Some(t) = tenant.filter(|t| !valid_name(t)) {
            return Err(AccountsError::BadName(t.to_owned()));
        }
        self.permissions_of(role)?;
        let token = format!("sy_{}", random_hex(32));
        let row = db::ClientRow {
            name: name.to_owned(),
            token_hash: token_hash(&token),
            role: role.to_owned(),
            tenant: tenant.map(str::to_owned),
            created_ms: now_ms,
            last_used_ms: 0,
            disabled: false,
        };
        if self.db.insert_client(&row)? {
            Ok(token)
        } else {
            Err(AccountsError::Exists {
                kind: "API client",
                name: name.to_owned(),
            })
        }
    }

    /// Registers `token` (the CLI's token file) as API client `name` with
    /// role `admin`, replacing an earlier token of that name.
    pub fn ensure_cli_client(&self, name: &str, token: &str) -> Result<(), AccountsError> {
        let row = db::ClientRow {
            name: name.to_owned(),
            token_hash: token_hash(token),
            role: "admin".to_owned(),
            tenant: None,
            created_ms: now_ms(),
            last_used_ms: 0,
            disabled: false,
        };
        self.db.upsert_client(&row)?;
        Ok(())
    }

    /// The API client of a bearer token: name, role, its permissions,
    /// tenant. `None` for an unknown or revoked token.
    pub fn client_of_token(
        &self,
        token: &str,
        now_ms: i64,
    ) -> Option<(String, String, Vec<Permission>, Option<String>)> {
        let c = self
            .db
            .client_by_token_hash(&token_hash(token))
            .ok()
            .flatten()?;
        if c.disabled {
            return None;
        }
        let _ = self.db.touch_client(&c.name, now_ms);
        let perms = self.role_permissions(&c.role).unwrap_or_default();
        Some((c.name, c.role, perms, c.tenant))
    }

    /// Every API client as shown, by name.
    pub fn list_clients(&self) -> Result<Vec<ClientView>, AccountsError> {
        let rows = self.db.list_clients()?;
        Ok(rows
            .into_iter()
            .map(|c| ClientView {
                name: c.name,
                role: c.role,
                tenant: c.tenant,
                created_ms: c.created_ms,
                last_used_ms: (c.last_used_ms > 0).then_some(c.last_used_ms),
                revoked: c.disabled,
            })
            .collect())
    }

    /// One API client's tenant (`Ok(None)` when it has none); `NotFound`
    /// when there is no such client.
    pub fn client_tenant(&self, name: &str) -> Result<Option<String>, AccountsError> {
        match self.db.get_client(name)? {
            Some(c) => Ok(c.tenant),
            None => Err(AccountsError::NotFound {
                kind: "API client",
                name: name.to_owned(),
            }),
        }
    }

    /// Revokes an API client.
    pub fn revoke_client(&self, name: &str) -> Result<(), AccountsError> {
        self.found("API client", name, self.db.revoke_client(name)?)
    }

    /// Every role, built-ins first.
    pub fn list_roles(&self) -> Result<Vec<RoleView>, AccountsError> {
        let rows = self.db.list_roles()?;
        Ok(rows
            .into_iter()
            .map(|r| RoleView {
                permissions: roles::from_json(&r.permissions),
                name: r.name,
                builtin: r.builtin,
            })
            .collect())
    }

    /// Adds a custom role made of the permissions named.
    pub fn add_role<S: AsRef<str>>(
        &self,
        name: &str,
        permissions: &[S],
    ) -> Result<Vec<Permission>, AccountsError> {
        if roles::BUILTIN.contains(&name) {
            return Err(AccountsError::Builtin(name.to_owned()));
        }
        if !roles::valid_name(name) {
            return Err(AccountsError::BadName(name.to_owned()));
        }
        let perms = roles::parse_names(permissions).map_err(AccountsError::UnknownPermissions)?;
        if self.db.insert_role(name, &roles::to_json(&perms))? {
            Ok(perms)
        } else {
            Err(AccountsError::Exists {
                kind: "role",
                name: name.to_owned(),
            })
        }
    }

    /// Ends sessions idle or older than the policy allows (housekeeping;
    /// expiry is also checked at every request).
    pub fn purge_sessions(&self, now_ms: i64) -> Result<usize, AccountsError> {
        let idle = now_ms - i64::from(self.policy.idle_minutes) * MINUTE_MS;
        let old = now_ms - i64::from(self.policy.session_max_hours) * 60 * MINUTE_MS;
        Ok(self.db.purge_sessions(idle, old)?)
    }
}
