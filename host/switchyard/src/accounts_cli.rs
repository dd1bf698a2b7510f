//! `switchyard admin user …` and `switchyard admin client …`: the operator
//! plane's users and API clients from the command line.
//!
//! They open `<data_dir>/switchyard.db` directly (SQLite in WAL mode: this
//! works while the switch runs) and audit every change with actor
//! `cli:<unix user>`. Before the first start there is no database: the
//! store is created first (as `switchyard run` would), so the first users
//! can exist before the switch ever ran.

use std::io::{BufRead as _, Write as _};
use std::path::{Path, PathBuf};

use anyhow::{Context as _, anyhow, bail};
use clap::{Args, Subcommand};
use switchyard_admin::accounts::{Accounts, UserView, now_ms};
use switchyard_admin::audit::{Audit, AuditEvent, Outcome};

use crate::config::Config;

/// Which switch's accounts: its configuration.
#[derive(Debug, Clone, Args)]
pub struct StoreArgs {
    /// The switch's configuration (default: the embedded one): its
    /// `[switch] data_dir` holds the accounts.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

/// `switchyard admin user …`.
#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Adds a user (asks for the password twice, or reads one line from
    /// standard input with --password-stdin).
    #[command(after_help = "Examples:
  switchyard admin user add alice --role admin
  echo 'a long passphrase 42' | switchyard admin user add bob --role viewer --tenant acme --password-stdin")]
    Add {
        /// The sign-in name (1–64 of a-z, A-Z, 0-9, _ . - @).
        name: String,
        /// The role: viewer, operator, security, admin, or a custom one.
        #[arg(long)]
        role: String,
        /// Bind the user to one tenant (default: every tenant).
        #[arg(long)]
        tenant: Option<String>,
        /// Read the password from standard input (one line).
        #[arg(long)]
        password_stdin: bool,
        /// The user must change the password at the first sign-in.
        #[arg(long)]
        must_change: bool,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Lists the users.
    #[command(after_help = "Examples:
  switchyard admin user list
  switchyard admin user list --json --config switch.toml")]
    List {
        /// JSON instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Lifts a user's lockout.
    #[command(after_help = "Examples:
  switchyard admin user unlock bob")]
    Unlock {
        /// The user.
        name: String,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Disables a user (its sessions end).
    #[command(after_help = "Examples:
  switchyard admin user disable bob")]
    Disable {
        /// The user.
        name: String,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Enables a disabled user again.
    #[command(after_help = "Examples:
  switchyard admin user enable bob")]
    Enable {
        /// The user.
        name: String,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Sets a temporary password the user must change at the next sign-in
    /// (unlocks it, ends its sessions).
    #[command(after_help = "Examples:
  switchyard admin user reset bob
  echo 'a new passphrase 42' | switchyard admin user reset bob --totp --password-stdin")]
    Reset {
        /// The user.
        name: String,
        /// Read the temporary password from standard input (one line).
        #[arg(long)]
        password_stdin: bool,
        /// Also remove the TOTP enrolment (the user enrols again).
        #[arg(long)]
        totp: bool,
        #[command(flatten)]
        store: StoreArgs,
    },
}

/// `switchyard admin client …`.
#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Adds an API client and prints its bearer token (shown only now; the
    /// switch keeps its SHA-256).
    #[command(after_help = "Examples:
  switchyard admin client add prometheus --role viewer
  switchyard admin client add acme-portal --role operator --tenant acme")]
    Add {
        /// The client's name.
        name: String,
        /// Its role.
        #[arg(long)]
        role: String,
        /// Bind it to one tenant (default: every tenant).
        #[arg(long)]
        tenant: Option<String>,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Lists the API clients.
    #[command(after_help = "Examples:
  switchyard admin client list
  switchyard admin client list --json")]
    List {
        /// JSON instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Revokes an API client.
    #[command(after_help = "Examples:
  switchyard admin client revoke prometheus")]
    Revoke {
        /// The client.
        name: String,
        #[command(flatten)]
        store: StoreArgs,
    },
}

/// The accounts and audit trail of one switch, opened for a CLI command.
struct Opened {
    accounts: Accounts,
    audit: Audit,
    actor: String,
}

impl Opened {
    fn open(store: &StoreArgs) -> anyhow::Result<Opened> {
        let config =
            Config::load_or_default(store.config.as_deref()).map_err(|e| anyhow!("{e}"))?;
        if config.store.url.is_none() {
            ensure_store(&config, &config.db_path())?;
        }
        let db = crate::state::open_operator_db(&config)?;
        let keys = config.data_dir().join("keys");
        let accounts = Accounts::open(&db, &keys, crate::admin::policy_of(&config.admin))
            .with_context(|| format!("opening the accounts in {}", db.label))?;
        let audit = Audit::open(&db, &keys, Vec::new())
            .with_context(|| format!("opening the audit trail in {}", db.label))?;
        Ok(Opened {
            accounts,
            audit,
            actor: format!("cli:{}", unix_user()),
        })
    }

    fn record(&self, event: &str, ok: bool, resource: &str, tenant: Option<&str>, detail: &str) {
        let e = AuditEvent {
            actor: &self.actor,
            event,
            outcome: if ok {
                Outcome::Success
            } else {
                Outcome::Failure
            },
            origin: None,
            resource,
            tenant,
            detail,
        };
        if let Err(err) = self.audit.record(&e) {
            eprintln!("warning: the audit trail did not record {event}: {err:#}");
        }
    }

    /// Audits `result` of `event` on `resource` and turns it into the
    /// command's result.
    fn audited<T>(
        &self,
        event: &str,
        resource: &str,
        tenant: Option<&str>,
        result: Result<T, switchyard_admin::accounts::AccountsError>,
    ) -> anyhow::Result<T> {
        let detail = result
            .as_ref()
            .err()
            .map(ToString::to_string)
            .unwrap_or_default();
        self.record(event, result.is_ok(), resource, tenant, &detail);
        result.map_err(|e| anyhow!("{e}"))
    }

    fn tenant_of(&self, user: &str) -> anyhow::Result<Option<String>> {
        match self.accounts.get_user(user, now_ms()) {
            Ok(Some(u)) => Ok(u.tenant),
            Ok(None) => bail!("no user named {user}"),
            Err(e) => Err(anyhow!("{e}")),
        }
    }
}

/// Creates the store when there is none yet (no switch ran here), holding
/// the data directory's lock meanwhile.
fn ensure_store(config: &Config, db: &Path) -> anyhow::Result<()> {
    if db.exists() {
        return Ok(());
    }
    let lock = crate::state::DataDirLock::try_acquire(&config.data_dir())?;
    if lock.is_some() && !db.exists() {
        drop(crate::state::open_store_offline(config)?);
    }
    Ok(())
}

/// The Unix user running the command.
fn unix_user() -> String {
    ["USER", "LOGNAME"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|s| !s.is_empty()))
        .unwrap_or_else(|| "unknown".to_owned())
}

/// One line of standard input, without its line end.
fn password_from_stdin() -> anyhow::Result<String> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("reading the password from standard input")?;
    let pw = line.trim_end_matches(['\n', '\r']).to_owned();
    if pw.is_empty() {
        bail!("no password on standard input");
    }
    Ok(pw)
}

/// Sets the terminal's echo on or off (`stty`, on /dev/tty).
fn echo(tty: &std::fs::File, on: bool) -> anyhow::Result<()> {
    let status = std::process::Command::new("stty")
        .arg(if on { "echo" } else { "-echo" })
        .stdin(tty.try_clone()?)
        .status()
        .context("running stty")?;
    if !status.success() {
        bail!("stty failed");
    }
    Ok(())
}

/// Asks for a password on the terminal, echo off.
fn prompt(tty: &std::fs::File, label: &str) -> anyhow::Result<String> {
    let mut out = tty.try_clone()?;
    write!(out, "{label}: ")?;
    out.flush()?;
    echo(tty, false)?;
    let mut line = String::new();
    let read = std::io::BufReader::new(tty.try_clone()?).read_line(&mut line);
    let _ = echo(tty, true);
    writeln!(out)?;
    read.context("reading the password")?;
    Ok(line.trim_end_matches(['\n', '\r']).to_owned())
}

/// The new password: from standard input, or asked twice on the terminal.
fn new_password(stdin: bool) -> anyhow::Result<String> {
    if stdin {
        return password_from_stdin();
    }
    let tty = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")
        .context("no terminal to ask for the password on: give --password-stdin")?;
    let first = prompt(&tty, "Password")?;
    let second = prompt(&tty, "Password again")?;
    if first != second {
        bail!("the two passwords differ");
    }
    Ok(first)
}

/// `2026-12-01 18:23 UTC`, or `-`.
fn when(ms: Option<i64>) -> String {
    ms.map_or_else(|| "-".to_owned(), switchyard_admin::accounts::pages::when)
}

fn print_users(users: &[UserView], json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(&users)?);
        return Ok(());
    }
    println!(
        "{:<20} {:<10} {:<10} {:<4} {:<20} {:<20} STATE",
        "NAME", "ROLE", "TENANT", "TOTP", "LOCKED UNTIL", "PASSWORD CHANGED"
    );
    for u in users {
        let state = if u.disabled {
            "disabled"
        } else if u.must_change {
            "must-change"
        } else {
            "active"
        };
        println!(
            "{:<20} {:<10} {:<10} {:<4} {:<20} {:<20} {state}",
            u.name,
            u.role,
            u.tenant.as_deref().unwrap_or("*"),
            if u.totp { "yes" } else { "no" },
            when(u.locked_until_ms),
            when(Some(u.password_changed_ms)),
        );
    }
    Ok(())
}

/// Runs a `switchyard admin user` command.
pub async fn user(command: UserCommand) -> anyhow::Result<()> {
    tokio::task::spawn_blocking(move || user_blocking(command)).await?
}

fn user_blocking(command: UserCommand) -> anyhow::Result<()> {
    match command {
        UserCommand::Add {
            name,
            role,
            tenant,
            password_stdin,
            must_change,
            store,
        } => {
            let o = Opened::open(&store)?;
            let pw = new_password(password_stdin)?;
            let r =
                o.accounts
                    .add_user(&name, &pw, &role, tenant.as_deref(), must_change, now_ms());
            o.audited("user.created", &name, tenant.as_deref(), r)?;
            println!(
                "user {name} added: role {role}, tenant {}{}",
                tenant.as_deref().unwrap_or("* (every tenant)"),
                if must_change {
                    ", must change the password at the first sign-in"
                } else {
                    ""
                }
            );
        }
        UserCommand::List { json, store } => {
            let o = Opened::open(&store)?;
            let users = o
                .accounts
                .list_users(now_ms())
                .map_err(|e| anyhow!("{e}"))?;
            print_users(&users, json)?;
        }
        UserCommand::Unlock { name, store } => {
            let o = Opened::open(&store)?;
            let tenant = o.tenant_of(&name)?;
            o.audited(
                "user.unlocked",
                &name,
                tenant.as_deref(),
                o.accounts.unlock(&name),
            )?;
            println!("user {name} unlocked");
        }
        UserCommand::Disable { name, store } => set_disabled(&name, &store, true)?,
        UserCommand::Enable { name, store } => set_disabled(&name, &store, false)?,
        UserCommand::Reset {
            name,
            password_stdin,
            totp,
            store,
        } => {
            let o = Opened::open(&store)?;
            let tenant = o.tenant_of(&name)?;
            let pw = new_password(password_stdin)?;
            let mut r = o.accounts.reset_password(&name, &pw, now_ms());
            if r.is_ok() && totp {
                r = o.accounts.clear_totp(&name);
            }
            o.audited("user.password_reset", &name, tenant.as_deref(), r)?;
            println!(
                "user {name}: temporary password set, to be changed at the next sign-in{}",
                if totp { "; TOTP enrolment removed" } else { "" }
            );
        }
    }
    Ok(())
}

fn set_disabled(name: &str, store: &StoreArgs, disabled: bool) -> anyhow::Result<()> {
    let o = Opened::open(store)?;
    let tenant = o.tenant_of(name)?;
    let event = if disabled {
        "user.disabled"
    } else {
        "user.enabled"
    };
    let r = o.accounts.set_disabled(name, disabled);
    o.audited(event, name, tenant.as_deref(), r)?;
    println!(
        "user {name} {}",
        if disabled { "disabled" } else { "enabled" }
    );
    Ok(())
}

/// Runs a `switchyard admin client` command.
pub async fn client(command: ClientCommand) -> anyhow::Result<()> {
    tokio::task::spawn_blocking(move || client_blocking(command)).await?
}

fn client_blocking(command: ClientCommand) -> anyhow::Result<()> {
    match command {
        ClientCommand::Add {
            name,
            role,
            tenant,
            store,
        } => {
            let o = Opened::open(&store)?;
            let r = o
                .accounts
                .add_client(&name, &role, tenant.as_deref(), now_ms());
            let token = o.audited("client.created", &name, tenant.as_deref(), r)?;
            eprintln!(
                "API client {name} added: role {role}, tenant {}. Its bearer token (shown only now):",
                tenant.as_deref().unwrap_or("* (every tenant)")
            );
            println!("{token}");
        }
        ClientCommand::List { json, store } => {
            let o = Opened::open(&store)?;
            let clients = o.accounts.list_clients().map_err(|e| anyhow!("{e}"))?;
            if json {
                println!("{}", serde_json::to_string_pretty(&clients)?);
                return Ok(());
            }
            println!(
                "{:<20} {:<10} {:<10} {:<20} {:<20} STATE",
                "NAME", "ROLE", "TENANT", "CREATED", "LAST USED"
            );
            for c in clients {
                println!(
                    "{:<20} {:<10} {:<10} {:<20} {:<20} {}",
                    c.name,
                    c.role,
                    c.tenant.as_deref().unwrap_or("*"),
                    when(Some(c.created_ms)),
                    when(c.last_used_ms),
                    if c.revoked { "revoked" } else { "active" }
                );
            }
        }
        ClientCommand::Revoke { name, store } => {
            let o = Opened::open(&store)?;
            let tenant = o
                .accounts
                .client_tenant(&name)
                .map_err(|e| anyhow!("{e}"))?;
            o.audited(
                "client.revoked",
                &name,
                tenant.as_deref(),
                o.accounts.revoke_client(&name),
            )?;
            println!("API client {name} revoked");
        }
    }
    Ok(())
}
