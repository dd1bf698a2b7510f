//! `switchyard db …`: the shared PostgreSQL database of several nodes —
//! run its migrations, list its nodes.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, anyhow, bail};
use clap::Subcommand;

use crate::config::Config;

/// `switchyard db …`.
#[derive(Debug, Subcommand)]
pub enum DbCommand {
    /// Runs the schema migrations the database lacks, then exits (every
    /// `switchyard run` also runs them at start).
    #[command(after_help = "Example: switchyard db migrate --config node-a.toml")]
    Migrate {
        /// The config whose `[store] url` names the database.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// The nodes of the database: id, state (live, stopped, dead, or
    /// lapsed when its heartbeat is older than its lease), heartbeat age,
    /// and who took over a dead node.
    #[command(after_help = "Example: switchyard db nodes --config node-a.toml")]
    Nodes {
        /// The config whose `[store] url` names the database.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

fn url_of(config: Option<&PathBuf>) -> anyhow::Result<(String, Option<PathBuf>)> {
    let config =
        Config::load_or_default(config.map(PathBuf::as_path)).map_err(|e| anyhow!("{e}"))?;
    let ca_file = config.ca_path();
    match config.store.url {
        Some(url) => Ok((url, ca_file)),
        None => bail!(
            "the config has no [store] url: the embedded SQLite database migrates itself at start"
        ),
    }
}

/// Runs `switchyard db …`.
pub fn run(command: DbCommand) -> anyhow::Result<ExitCode> {
    match command {
        DbCommand::Migrate { config } => {
            let (url, ca_file) = url_of(config.as_ref())?;
            let shown = switchyard_store::describe_url(&url);
            let (from, to) = switchyard_store::migrate_url(&url, ca_file.as_deref())
                .with_context(|| format!("migrating {shown}"))?;
            if from == to {
                println!("{shown}: schema v{to}, nothing to migrate");
            } else {
                println!("{shown}: migrated from schema v{from} to v{to}");
            }
            Ok(ExitCode::SUCCESS)
        }
        DbCommand::Nodes { config, json } => {
            let (url, ca_file) = url_of(config.as_ref())?;
            let shown = switchyard_store::describe_url(&url);
            let nodes = switchyard_store::nodes_of_url(&url, ca_file.as_deref())
                .with_context(|| format!("listing the nodes of {shown}"))?;
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as i64);
            let state = |n: &switchyard_store::NodeInfo| {
                if n.state == "live" && !n.live_at(now) {
                    "lapsed".to_string()
                } else {
                    n.state.clone()
                }
            };
            if json {
                let rows: Vec<serde_json::Value> = nodes
                    .iter()
                    .map(|n| {
                        serde_json::json!({
                            "id": n.id, "ordinal": n.ordinal, "state": state(n),
                            "host": n.host, "pid": n.pid, "started_ms": n.started_ms,
                            "heartbeat_ms": n.heartbeat_ms, "lease_ms": n.lease_ms,
                            "taken_over_by": n.taken_over_by,
                        })
                    })
                    .collect();
                println!("{}", serde_json::to_string_pretty(&rows)?);
                return Ok(ExitCode::SUCCESS);
            }
            println!(
                "{:<20} {:>7} {:<8} {:>12} {:<24} taken over by",
                "node", "ordinal", "state", "heartbeat", "host/pid"
            );
            for n in &nodes {
                println!(
                    "{:<20} {:>7} {:<8} {:>10}ms {:<24} {}",
                    n.id,
                    n.ordinal,
                    state(n),
                    now - n.heartbeat_ms,
                    format!("{}/{}", n.host, n.pid),
                    n.taken_over_by.as_deref().unwrap_or("-")
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
