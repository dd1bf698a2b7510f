//! `switchyard plugin …`: authoring (`new`, `test`) and operations on a
//! running switch (`list`, `swap`, `rollback`). Each subcommand's
//! implementation lives in its own module.

use std::process::ExitCode;

use clap::Subcommand;

use crate::authoring;

/// The `plugin` subcommands.
#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// Create a plugin crate (participant, selector or formatter) that builds
    /// anywhere and has a passing test.
    New(authoring::cli::NewArgs),
    /// Run one plugin against one message in the real runtime, without a
    /// switch, and print what it did (exit 2 if it trapped).
    Test(Box<authoring::cli::TestArgs>),
}

/// Runs a `plugin` subcommand.
pub async fn run(command: PluginCommand) -> anyhow::Result<ExitCode> {
    match command {
        PluginCommand::New(args) => authoring::cli::new(args),
        PluginCommand::Test(args) => authoring::cli::test(*args),
    }
}
