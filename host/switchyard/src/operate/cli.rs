//! `switchyard tranlog …`, `switchyard saf …`, `switchyard keys …`: they ask
//! the running switch (its admin API) when one holds the data directory,
//! and otherwise open the data directory of the stopped switch directly.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, anyhow, bail};
use clap::{Args, Subcommand};
use serde::Serialize;
use serde::de::DeserializeOwned;
use switchyard_engine::ports::{SafFilter, TxQuery};

use super::Ops;
use super::views::{
    KeysView, RetryResult, RotationView, SafList, TxLife, TxView, format_keys, format_life,
    format_rows, format_saf,
};
use crate::admin::client::AdminClient;
use crate::config::Config;
use crate::plugin_cli::AdminArgs;

/// Which switch: its config (data directory, admin API), or the API itself.
#[derive(Debug, Args)]
pub struct Target {
    #[command(flatten)]
    pub(super) admin: AdminArgs,
    /// The data directory of a stopped switch (instead of the config's).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Print JSON.
    #[arg(long)]
    pub(super) json: bool,
}

/// `switchyard tranlog …`.
#[derive(Debug, Subcommand)]
pub enum TranlogCommand {
    /// Transactions matching every criterion given, newest first (PAN
    /// masked).
    #[command(
        after_help = "Example: switchyard tranlog search --terminal TERM0001 --last4 0119 --from 2026-12-01"
    )]
    Search {
        /// DE11.
        #[arg(long)]
        stan: Option<String>,
        /// DE37.
        #[arg(long)]
        rrn: Option<String>,
        /// DE41.
        #[arg(long)]
        terminal: Option<String>,
        /// DE42.
        #[arg(long)]
        merchant: Option<String>,
        /// The PAN's last four digits.
        #[arg(long)]
        last4: Option<String>,
        /// Received at or after: YYYY-MM-DD or YYYY-MM-DDThh:mm:ss (UTC).
        #[arg(long)]
        from: Option<String>,
        /// Received before: YYYY-MM-DD (the whole day included) or YYYY-MM-DDThh:mm:ss (UTC).
        #[arg(long)]
        to: Option<String>,
        /// Tenant.
        #[arg(long)]
        tenant: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 50)]
        limit: usize,
        #[command(flatten)]
        target: Target,
    },
    /// One transaction's life cycle: request and response (masked), its
    /// repeats, reversals and completions, its store-and-forward attempts.
    #[command(after_help = "Example: switchyard tranlog show 7401823476318208")]
    Show {
        /// The transaction's id (from `tranlog search`).
        id: i64,
        #[command(flatten)]
        target: Target,
    },
}

/// `switchyard saf …`.
#[derive(Debug, Subcommand)]
pub enum SafCommand {
    /// Queue depth per endpoint, oldest age, and the entries: attempts,
    /// next attempt, last result.
    #[command(after_help = "Example: switchyard saf list --endpoint xxx")]
    List {
        /// Only this endpoint.
        #[arg(long)]
        endpoint: Option<String>,
        /// Acknowledged entries too.
        #[arg(long)]
        all: bool,
        /// At most this many entries.
        #[arg(long, default_value_t = 100)]
        limit: usize,
        #[command(flatten)]
        target: Target,
    },
    /// Make entry ID due now (after fixing what made it fail).
    #[command(after_help = "Example: switchyard saf retry 42")]
    Retry {
        /// The entry's id (from `saf list`).
        id: i64,
        #[command(flatten)]
        target: Target,
    },
}

/// `switchyard keys …`.
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// The key-encryption key, every data key: ids, ages, rows per key.
    #[command(after_help = "Example: switchyard keys status")]
    Status {
        #[command(flatten)]
        target: Target,
    },
    /// Start a new data key (old rows are re-encrypted in the background
    /// while traffic runs), or with --kek a new key-encryption key (every
    /// data key re-wrapped).
    #[command(
        after_help = "Examples: switchyard keys rotate --tenant acme\n          switchyard keys rotate --kek"
    )]
    Rotate {
        /// Only this tenant's data key (default: every tenant's).
        #[arg(long, conflicts_with = "kek")]
        tenant: Option<String>,
        /// Rotate the key-encryption key instead.
        #[arg(long)]
        kek: bool,
        #[command(flatten)]
        target: Target,
    },
}

/// Where the answers come from.
pub(super) enum Backend {
    /// The running switch's admin API.
    Remote(AdminClient),
    /// The stopped switch's data directory (its lock held while we work).
    Direct(Ops, crate::state::DataDirLock),
}

impl Target {
    pub(super) async fn backend(&self) -> anyhow::Result<Backend> {
        if self.admin.url.is_some() {
            return Ok(Backend::Remote(self.admin.client()?));
        }
        let mut config =
            Config::load_or_default(self.admin.config.as_deref()).map_err(|e| anyhow!("{e}"))?;
        if let Some(d) = &self.data_dir {
            config.switch.data_dir = d.clone();
            config.base_dir = std::env::current_dir()?;
        }
        let data_dir = config.data_dir();
        match crate::state::DataDirLock::try_acquire(&data_dir)? {
            Some(lock) => {
                if config.store.url.is_none() && !config.db_path().exists() {
                    bail!(
                        "{} holds no switch database (switchyard.db): give --config with the switch's config, or --data-dir",
                        data_dir.display()
                    );
                }
                let store = crate::state::open_store_offline(&config)?;
                Ok(Backend::Direct(crate::state::ops_of(&store), lock))
            }
            None => Ok(Backend::Remote(self.admin.client().with_context(|| {
                format!(
                    "a running switch holds {}; asking it through its admin API",
                    data_dir.display()
                )
            })?)),
        }
    }
}

pub(super) fn print<T: Serialize>(
    json: bool,
    value: &T,
    text: impl FnOnce(&T) -> String,
) -> anyhow::Result<()> {
    if json {
        crate::emit(&(serde_json::to_string_pretty(value)? + "\n"))?;
    } else {
        crate::emit(&format!("{}\n", text(value).trim_end()))?;
    }
    Ok(())
}

async fn get<T: DeserializeOwned>(client: &AdminClient, path: &str) -> anyhow::Result<T> {
    client.get_json(path).await
}

/// Percent-encodes a query value.
pub(super) fn q(v: &str) -> String {
    v.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The query string of a search.
pub fn search_query(query: &TxQuery) -> String {
    let mut parts = Vec::new();
    let mut add = |k: &str, v: &Option<String>| {
        if let Some(v) = v {
            parts.push(format!("{k}={}", q(v)));
        }
    };
    add("tenant", &query.tenant);
    add("stan", &query.stan);
    add("rrn", &query.rrn);
    add("terminal", &query.terminal);
    add("merchant", &query.merchant);
    add("last4", &query.pan_last4);
    add("from_ms", &query.from_ms.map(|v| v.to_string()));
    add("to_ms", &query.to_ms.map(|v| v.to_string()));
    parts.push(format!("limit={}", query.limit));
    parts.join("&")
}

/// A UTC date (`YYYY-MM-DD`) or time (`YYYY-MM-DDThh:mm[:ss]`) as ms since
/// the Unix epoch; a bare date ends the day when `end_of_day`.
pub fn parse_time(text: &str, end_of_day: bool) -> anyhow::Result<i64> {
    let bad = || anyhow!("{text:?} is not YYYY-MM-DD or YYYY-MM-DDThh:mm[:ss] (UTC)");
    let (date, time) = match text.split_once(['T', ' ']) {
        Some((d, t)) => (d, Some(t.trim_end_matches('Z'))),
        None => (text, None),
    };
    let d: Vec<&str> = date.split('-').collect();
    let [y, m, day] = d[..] else {
        return Err(bad());
    };
    let (y, m, day): (i64, i64, i64) = (
        y.parse().map_err(|_| bad())?,
        m.parse().map_err(|_| bad())?,
        day.parse().map_err(|_| bad())?,
    );
    if !(1..=12).contains(&m) || !(1..=31).contains(&day) {
        return Err(bad());
    }
    let secs_of_day = match time {
        None if end_of_day => 86_400,
        None => 0,
        Some(t) => {
            let p: Vec<i64> = t
                .split(':')
                .map(|x| x.parse().map_err(|_| bad()))
                .collect::<Result<_, _>>()?;
            match p[..] {
                [h, mi] if h < 24 && mi < 60 => h * 3600 + mi * 60,
                [h, mi, s] if h < 24 && mi < 60 && s < 60 => h * 3600 + mi * 60 + s,
                _ => return Err(bad()),
            }
        }
    };
    // Howard Hinnant's days-from-civil.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Ok((days * 86_400 + secs_of_day) * 1000)
}

/// Runs a `tranlog` subcommand.
pub async fn tranlog(command: TranlogCommand) -> anyhow::Result<ExitCode> {
    match command {
        TranlogCommand::Search {
            stan,
            rrn,
            terminal,
            merchant,
            last4,
            from,
            to,
            tenant,
            limit,
            target,
        } => {
            if let Some(l) = &last4
                && (l.len() != 4 || !l.bytes().all(|b| b.is_ascii_digit()))
            {
                bail!("--last4 {l:?}: four digits");
            }
            let query = TxQuery {
                tenant,
                stan,
                rrn,
                terminal,
                merchant,
                pan_last4: last4,
                from_ms: from.as_deref().map(|t| parse_time(t, false)).transpose()?,
                to_ms: to.as_deref().map(|t| parse_time(t, true)).transpose()?,
                limit,
            };
            let rows: Vec<TxView> = match target.backend().await? {
                Backend::Remote(c) => {
                    get(&c, &format!("/tranlog?{}", search_query(&query))).await?
                }
                Backend::Direct(ops, _lock) => ops.search(query).await?,
            };
            print(target.json, &rows, |r| format_rows(r))?;
            Ok(ExitCode::SUCCESS)
        }
        TranlogCommand::Show { id, target } => {
            let life: Option<TxLife> = match target.backend().await? {
                Backend::Remote(c) => Some(get(&c, &format!("/tranlog/{id}")).await?),
                Backend::Direct(ops, _lock) => ops.show(id).await?,
            };
            let Some(life) = life else {
                bail!("no transaction {id} in the tranlog");
            };
            print(target.json, &life, format_life)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Runs a `saf` subcommand.
pub async fn saf(command: SafCommand) -> anyhow::Result<ExitCode> {
    match command {
        SafCommand::List {
            endpoint,
            all,
            limit,
            target,
        } => {
            let filter = SafFilter {
                endpoint: endpoint.clone(),
                include_done: all,
                limit,
            };
            let list: SafList = match target.backend().await? {
                Backend::Remote(c) => {
                    let mut path = format!("/saf?limit={limit}&all={all}");
                    if let Some(e) = &endpoint {
                        path.push_str(&format!("&endpoint={}", q(e)));
                    }
                    get(&c, &path).await?
                }
                Backend::Direct(ops, _lock) => ops.saf_list(filter).await?,
            };
            print(target.json, &list, format_saf)?;
            Ok(ExitCode::SUCCESS)
        }
        SafCommand::Retry { id, target } => {
            let result: RetryResult = match target.backend().await? {
                Backend::Remote(c) => c.post_json(&format!("/saf/{id}/retry")).await?,
                Backend::Direct(ops, _lock) => ops.saf_retry(id).await?,
            };
            print(target.json, &result, |r| {
                if r.retried {
                    format!("entry {} is due now", r.id)
                } else {
                    format!(
                        "entry {} is unknown or already acknowledged: nothing to retry",
                        r.id
                    )
                }
            })?;
            Ok(if result.retried {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
    }
}

/// Runs a `keys` subcommand.
pub async fn keys(command: KeysCommand) -> anyhow::Result<ExitCode> {
    match command {
        KeysCommand::Status { target } => {
            let keys: KeysView = match target.backend().await? {
                Backend::Remote(c) => get(&c, "/keys").await?,
                Backend::Direct(ops, _lock) => ops.keys().await?,
            };
            print(target.json, &keys, format_keys)?;
            Ok(ExitCode::SUCCESS)
        }
        KeysCommand::Rotate {
            tenant,
            kek,
            target,
        } => {
            let result: RotationView = match target.backend().await? {
                Backend::Remote(c) => {
                    let path = match (&tenant, kek) {
                        (_, true) => "/keys/rotate?kek=true".to_owned(),
                        (Some(t), false) => format!("/keys/rotate?tenant={}", q(t)),
                        (None, false) => "/keys/rotate".to_owned(),
                    };
                    c.post_json(&path).await?
                }
                Backend::Direct(ops, _lock) => {
                    let r = ops.rotate(tenant, kek).await?;
                    if !kek {
                        // No switch runs to re-encrypt in the background: do it now.
                        while ops.keyring.reencrypt(1000).await? > 0 {}
                    }
                    r
                }
            };
            print(target.json, &result, |r| match &r.new_kek {
                Some(k) => format!("new key-encryption key {k}; every data key re-wrapped"),
                None => format!(
                    "new data key(s) {:?}; older rows are re-encrypted under them",
                    r.new_data_keys
                ),
            })?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_times_in_utc() {
        assert_eq!(parse_time("1970-01-01", false).unwrap(), 0);
        assert_eq!(parse_time("1970-01-01", true).unwrap(), 86_400_000);
        assert_eq!(
            parse_time("2026-11-23T08:00:00", false).unwrap(),
            1_795_420_800_000
        );
        assert_eq!(
            parse_time("2026-11-23T08:00", false).unwrap(),
            1_795_420_800_000
        );
        for bad in ["2026-13-01", "yesterday", "2026-11-23T25:00"] {
            assert!(parse_time(bad, false).is_err(), "{bad}");
        }
    }

    #[test]
    fn search_queries_are_encoded() {
        let q = TxQuery {
            terminal: Some("TERM 01&".into()),
            limit: 5,
            ..TxQuery::default()
        };
        assert_eq!(search_query(&q), "terminal=TERM%2001%26&limit=5");
    }
}
