//! The Switchyard binary's library: configuration loading and validation,
//! wiring a running [`Switch`] from it, the acquirer [`client`] behind
//! `switchyard send` ([`send`], with masked hex dumps from [`hexdump`]), the
//! load generator `switchyard load` ([`load`]), the
//! fake host of `switchyard simulate` ([`simulate`]), the scripted [`demo`],
//! plugin [`authoring`]
//! (`switchyard plugin new`, `switchyard plugin test`), and hot swap for
//! operators ([`admin`]: the admin API, the deploy directory,
//! `switchyard plugin list/swap/rollback`).
//!
//! Everything that touches the outside world lives in the crates this one
//! wires together (`switchyard-net`, `switchyard-runtime`); this crate owns
//! only the edges: config, CLI, tracing set-up.
#![forbid(unsafe_code)]

pub mod accounts_cli;
pub mod admin;
pub mod admin_cli;
pub mod audit_cli;
pub mod authoring;
pub mod client;
pub mod config;
pub mod db_cli;
pub mod demo;
pub mod follow;
pub mod hexdump;
pub mod load;
pub mod operate;
pub mod owed;
pub mod plan;
pub mod plugin_cli;
pub mod plugin_settings;
pub mod send;
pub mod simulate;
pub mod state;
pub mod switch;
pub mod tls_config;

pub use config::{Config, ConfigErrors};
pub use switch::{StartOptions, Switch};

/// Waits for SIGINT or SIGTERM.
pub async fn wait_for_signal() -> anyhow::Result<()> {
    use anyhow::Context as _;
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r.context("waiting for SIGINT")?,
        _ = term.recv() => {}
    }
    Ok(())
}

/// Writes `text` to stdout; a reader that went away (`… | head`) is no
/// error (`println!` would panic).
pub fn emit(text: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(anyhow::Error::new(e).context("writing to stdout"))
        }
        _ => Ok(()),
    }
}
