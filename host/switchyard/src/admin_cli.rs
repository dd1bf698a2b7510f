//! `switchyard admin …`: the operator plane's accounts and audit trail
//! from the command line ([`crate::accounts_cli`]: users and API clients;
//! [`crate::audit_cli`]: the audit trail).

use clap::Subcommand;

/// `switchyard admin …`.
#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Operator users of the web UI: add, list, disable, unlock, reset.
    #[command(
        subcommand,
        after_help = "Examples:
  switchyard admin user add alice --role admin
  switchyard admin user list
  switchyard admin user unlock bob"
    )]
    User(crate::accounts_cli::UserCommand),
    /// API clients (bearer tokens with a role): add, list, revoke.
    #[command(
        subcommand,
        after_help = "Examples:
  switchyard admin client add prometheus --role viewer
  switchyard admin client list
  switchyard admin client revoke prometheus"
    )]
    Client(crate::accounts_cli::ClientCommand),
    /// The audit trail: verify its hash chain, list entries.
    #[command(
        subcommand,
        after_help = "Examples:
  switchyard admin audit verify
  switchyard admin audit list --limit 20"
    )]
    Audit(crate::audit_cli::AuditCommand),
}

/// Runs one `switchyard admin` command.
pub async fn run(command: AdminCommand) -> anyhow::Result<()> {
    match command {
        AdminCommand::User(c) => crate::accounts_cli::user(c).await,
        AdminCommand::Client(c) => crate::accounts_cli::client(c).await,
        AdminCommand::Audit(c) => crate::audit_cli::audit(c).await,
    }
}
