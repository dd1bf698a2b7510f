//! `switchyard admin user …` and `switchyard admin client …`.

use clap::Subcommand;

/// `switchyard admin user …`.
#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// (placeholder)
    List,
}

/// `switchyard admin client …`.
#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// (placeholder)
    List,
}

/// Runs a `switchyard admin user` command.
pub async fn user(_command: UserCommand) -> anyhow::Result<()> {
    anyhow::bail!("not built yet")
}

/// Runs a `switchyard admin client` command.
pub async fn client(_command: ClientCommand) -> anyhow::Result<()> {
    anyhow::bail!("not built yet")
}
