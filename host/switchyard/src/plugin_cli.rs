//! `switchyard plugin …`: authoring (`new`, `test`) and operations on a
//! running switch (`list`, `swap`, `rollback`, `history`) through its admin
//! API. Each subcommand's implementation lives in its own module.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, anyhow, bail};
use clap::{Args, Subcommand};

use crate::admin::client::{AdminClient, format_history, format_list, format_swap};
use crate::admin::token;
use crate::authoring;
use crate::config::Config;

/// The `plugin` subcommands.
#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// Create a plugin crate (participant, selector or formatter) that builds
    /// anywhere and has a passing test.
    #[command(after_help = "Examples:
  switchyard plugin new no-refunds                   # a participant in ./no-refunds
  switchyard plugin new by-amount --kind selector
  switchyard plugin new my-host --kind formatter --dir plugins-of-mine/my-host")]
    New(authoring::cli::NewArgs),
    /// Run one plugin against one message in the real runtime, without a
    /// switch, and print what it did (exit 2 if it trapped).
    #[command(after_help = "Examples:
  switchyard plugin test builtin:local-auth --amount 6000.00 --config limit=5000.00
  switchyard plugin test target/wasm32-wasip2/release/no_refunds.wasm --field 3=200000
  switchyard plugin test builtin:validate --spec iso93-ascii --omit 14
  switchyard plugin test my.wasm --message @request.bin --repeat 1000")]
    Test(Box<authoring::cli::TestArgs>),
    /// What a running switch's plugins run now: version, roles, limits,
    /// metrics, earlier versions.
    #[command(after_help = "Examples:
  switchyard plugin list
  switchyard plugin list --config my.toml --json
  switchyard plugin list --url https://127.0.0.1:5080 --cert var/admin/cert.pem --token-file var/admin.token")]
    List {
        #[command(flatten)]
        admin: AdminArgs,
        /// Print the API's JSON instead.
        #[arg(long)]
        json: bool,
    },
    /// Replace plugin NAME of a running switch with FILE: checked and
    /// compiled off the transaction path; transactions in flight finish on
    /// the version they started with.
    #[command(after_help = "Examples:
  switchyard plugin swap local-auth target/wasm32-wasip2/release/my_auth.wasm
  switchyard plugin swap validate v2.wasm --config my.toml --actor alice")]
    Swap {
        /// The plugin's name in the switch's config.
        name: String,
        /// The new version's .wasm component.
        file: PathBuf,
        /// Who asks, in the swap history (default: $USER).
        #[arg(long)]
        actor: Option<String>,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Return plugin NAME of a running switch to its previous version.
    #[command(after_help = "Example: switchyard plugin rollback local-auth --actor alice")]
    Rollback {
        /// The plugin's name in the switch's config.
        name: String,
        /// Who asks, in the swap history (default: $USER).
        #[arg(long)]
        actor: Option<String>,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// The latest swaps and rollbacks of a running switch (who, when, from
    /// which version to which).
    #[command(after_help = "Example: switchyard plugin history --limit 50")]
    History {
        /// How many.
        #[arg(long, default_value_t = 20)]
        limit: usize,
        #[command(flatten)]
        admin: AdminArgs,
    },
}

/// Where the running switch's admin API is and its credential.
#[derive(Debug, Args)]
pub struct AdminArgs {
    /// The running switch's configuration (default: the embedded one): its
    /// [admin] bind and token file.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// The admin API, e.g. https://127.0.0.1:5080 (instead of the config's).
    #[arg(long)]
    pub url: Option<String>,
    /// The admin token file (instead of the config's).
    #[arg(long)]
    pub token_file: Option<PathBuf>,
    /// The admin server's certificate to trust (default: the config's
    /// `[admin] tls_cert`, else `<data_dir>/admin/cert.pem`; with --url and
    /// --token-file and no --config, `admin/cert.pem` beside the token file).
    #[arg(long)]
    pub cert: Option<PathBuf>,
}

impl AdminArgs {
    /// A client of the switch these arguments point at.
    pub fn client(&self) -> anyhow::Result<AdminClient> {
        let config = if self.url.is_some() && self.token_file.is_some() {
            None
        } else {
            Some(Config::load_or_default(self.config.as_deref()).map_err(|e| anyhow!("{e}"))?)
        };
        let url = match (&self.url, &config) {
            (Some(u), _) => u.clone(),
            (None, Some(c)) => {
                if !c.admin.enabled {
                    bail!(
                        "the config's [admin] section has enabled = false: the switch serves no admin API"
                    );
                }
                let mut addr = c
                    .admin
                    .bind_addr()
                    .map_err(|e| anyhow!("admin.bind: {e}"))?;
                if addr.port() == 0 {
                    bail!(
                        "the config binds the admin API to port 0 (a free port chosen at start): \
                         give --url (the switch logs \"admin API listening addr=…\")"
                    );
                }
                if addr.ip().is_unspecified() {
                    addr.set_ip(if addr.is_ipv4() {
                        [127, 0, 0, 1].into()
                    } else {
                        std::net::Ipv6Addr::LOCALHOST.into()
                    });
                }
                format!("https://{addr}")
            }
            (None, None) => unreachable!("config loaded when --url is missing"),
        };
        let path = match (&self.token_file, &config) {
            (Some(p), _) => p.clone(),
            (None, Some(c)) => c.admin_token_path(),
            (None, None) => unreachable!("config loaded when --token-file is missing"),
        };
        let token = token::read(&path).with_context(|| {
            format!(
                "tried the admin API at {url} with the token file {}: the switch creates that file \
                 on its first start, so either no switch has run with this configuration yet \
                 (start it: switchyard run{}), or it runs with another one (give --config FILE, \
                 or --url and --token-file)",
                path.display(),
                self.config
                    .as_ref()
                    .map(|c| format!(" --config {}", c.display()))
                    .unwrap_or_default()
            )
        })?;
        let cert = match (&self.cert, &config) {
            (Some(c), _) => c.clone(),
            (None, Some(c)) => c.admin_cert_path(),
            (None, None) => path
                .parent()
                .unwrap_or(std::path::Path::new("."))
                .join("admin/cert.pem"),
        };
        AdminClient::new(&url, token, path.display().to_string(), &cert)
    }
}

/// The actor recorded for a swap from the command line.
fn actor(given: Option<String>) -> Option<String> {
    given.or_else(|| std::env::var("USER").ok().filter(|u| !u.is_empty()))
}

/// Runs a `plugin` subcommand.
pub async fn run(command: PluginCommand) -> anyhow::Result<ExitCode> {
    match command {
        PluginCommand::New(args) => authoring::cli::new(args),
        PluginCommand::Test(args) => authoring::cli::test(*args),
        PluginCommand::List { admin, json } => {
            let list = admin.client()?.list().await?;
            if json {
                crate::emit(&(serde_json::to_string_pretty(&list)? + "\n"))?;
            } else {
                crate::emit(&format_list(&list))?;
            }
            Ok(ExitCode::SUCCESS)
        }
        PluginCommand::Swap {
            name,
            file,
            actor: who,
            admin,
        } => {
            let wasm =
                std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
            let client = admin.client()?;
            let result = client.swap(&name, wasm, actor(who).as_deref()).await?;
            crate::emit(&format!("{}\n", format_swap(&result)))?;
            Ok(ExitCode::SUCCESS)
        }
        PluginCommand::Rollback {
            name,
            actor: who,
            admin,
        } => {
            let result = admin
                .client()?
                .rollback(&name, actor(who).as_deref())
                .await?;
            crate::emit(&format!("{}\n", format_swap(&result)))?;
            Ok(ExitCode::SUCCESS)
        }
        PluginCommand::History { limit, admin } => {
            let history = admin.client()?.history(limit).await?;
            crate::emit(&format_history(&history))?;
            Ok(ExitCode::SUCCESS)
        }
    }
}
