//! `switchyard admin audit …`.

use clap::Subcommand;

/// `switchyard admin audit …`.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// (placeholder)
    Verify,
}

/// Runs a `switchyard admin audit` command.
pub async fn audit(_command: AuditCommand) -> anyhow::Result<()> {
    anyhow::bail!("not built yet")
}
