//! `switchyard admin audit …`: the audit trail of a data directory, read
//! from its database directly (the switch need not run).

use std::path::PathBuf;

use anyhow::{Context, anyhow, bail};
use clap::Subcommand;
use switchyard_admin::audit::{Audit, AuditFilter, AuditRow};

use crate::config::Config;

/// `switchyard admin audit …`.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check the hash chain and its checkpoints: exit 0 when intact, 1
    /// naming the first bad seq and why (changed, deleted, reordered,
    /// truncated).
    #[command(after_help = "Examples:
  switchyard admin audit verify
  switchyard admin audit verify --config switch.toml")]
    Verify {
        /// The switch's configuration (default: the embedded one): its data_dir.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Print the latest entries, newest first.
    #[command(after_help = "Examples:
  switchyard admin audit list --limit 20
  switchyard admin audit list --event login.failed --json")]
    List {
        /// The switch's configuration (default: the embedded one): its data_dir.
        #[arg(long)]
        config: Option<PathBuf>,
        /// At most this many entries.
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// Only this actor's.
        #[arg(long)]
        actor: Option<String>,
        /// Only this event type.
        #[arg(long)]
        event: Option<String>,
        /// Only this tenant's.
        #[arg(long)]
        tenant: Option<String>,
        /// A JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },
}

/// Runs a `switchyard admin audit` command.
pub async fn audit(command: AuditCommand) -> anyhow::Result<()> {
    match command {
        AuditCommand::Verify { config } => verify(&open(config)?),
        AuditCommand::List {
            config,
            limit,
            actor,
            event,
            tenant,
            json,
        } => {
            let filter = AuditFilter {
                tenant,
                actor,
                event,
                limit: Some(limit),
                ..AuditFilter::default()
            };
            let rows = open(config)?.list(&filter)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                print_table(&rows);
            }
            Ok(())
        }
    }
}

/// The trail of the config's data directory.
fn open(config: Option<PathBuf>) -> anyhow::Result<Audit> {
    let config = Config::load_or_default(config.as_deref()).map_err(|e| anyhow!("{e}"))?;
    let db = crate::state::open_operator_db(&config)?;
    let keys = config.data_dir().join("keys");
    Audit::open(&db, &keys, Vec::new())
        .with_context(|| format!("opening the audit trail in {}", db.label))
}

fn verify(audit: &Audit) -> anyhow::Result<()> {
    let report = audit.verify()?;
    if let Some((seq, why)) = &report.first_bad {
        bail!(
            "audit trail broken at seq {seq}: {why} ({} rows read)",
            report.rows
        );
    }
    match &report.head {
        Some((seq, hash)) => println!(
            "audit trail intact: {} rows, head seq {seq} {hash}",
            report.rows
        ),
        None => println!("audit trail intact: 0 rows"),
    }
    Ok(())
}

fn print_table(rows: &[AuditRow]) {
    println!(
        "{:>6}  {:<24}  {:<16}  {:<22}  {:<7}  {:<15}  {:<10}  resource / detail",
        "seq", "time (UTC)", "actor", "event", "outcome", "origin", "tenant"
    );
    for r in rows {
        println!(
            "{:>6}  {:<24}  {:<16}  {:<22}  {:<7}  {:<15}  {:<10}  {} {}",
            r.seq,
            switchyard_admin::webhooks::sign::rfc3339(r.at_ms),
            r.actor,
            r.event,
            r.outcome,
            r.origin.as_deref().unwrap_or("-"),
            r.tenant.as_deref().unwrap_or("-"),
            r.resource,
            r.detail
        );
    }
}
