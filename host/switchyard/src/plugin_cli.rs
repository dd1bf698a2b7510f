//! `switchyard plugin …`: authoring (`new`, `test`) and operations on a
//! running switch (`list`, `swap`, `rollback`). Each subcommand's
//! implementation lives in its own module.

use std::process::ExitCode;

use clap::Subcommand;

/// The `plugin` subcommands.
#[derive(Debug, Subcommand)]
pub enum PluginCommand {}

/// Runs a `plugin` subcommand.
pub async fn run(command: PluginCommand) -> anyhow::Result<ExitCode> {
    match command {}
}
