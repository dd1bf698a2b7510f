//! `switchyard-twin`: the real switch — listeners, framing, tranlog,
//! endpoints, the same configuration — with the bundled plugins on the
//! default 5001 path (`validate`, `case-switch`, `local-auth`) replaced by
//! their *native twins* (the same plugin source compiled for the host, see
//! the crate docs), so the sandbox's cost is measured end to end over TCP
//! side by side with nothing else different. A bench harness, not a way to
//! run a switch: a native step has no sandbox, no deadline and no hot swap.
//!
//! ```sh
//! switchyard-twin --native [--config FILE] [--no-tranlog]   # native twins
//! switchyard-twin --wasm   [--config FILE] [--no-tranlog]   # the same binary, WASM plugins
//! ```
//!
//! It serves until SIGINT/SIGTERM, like `switchyard run`, and prints
//! `serving NAME PORT ADDR` for every listener on stdout once it serves.
//! `scripts/bench-report` drives it.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context as _, anyhow};
use clap::Parser;
use switchyard::switch::NativeSteps;
use switchyard::{Config, StartOptions, Switch};
use switchyard_benches::native_twin;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "switchyard-twin",
    about = "The switch with the native twins of its bundled plugins (bench harness)"
)]
struct Args {
    /// Native twins of validate, case-switch and local-auth.
    #[arg(long, conflicts_with = "wasm")]
    native: bool,
    /// The WASM plugins, as `switchyard run` (the other side of the comparison).
    #[arg(long)]
    wasm: bool,
    /// The configuration (default: the embedded one).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Run requests straight through their pipelines, unrecorded (the
    /// tranlog's cost measured apart).
    #[arg(long)]
    no_tranlog: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(args: Args) -> anyhow::Result<()> {
    if !args.native && !args.wasm {
        return Err(anyhow!("say --native or --wasm"));
    }
    let config = Config::load_or_default(args.config.as_deref()).map_err(|e| anyhow!("{e}"))?;
    let native_steps: Option<NativeSteps> =
        args.native.then(|| Arc::new(native_twin) as NativeSteps);
    let options = StartOptions {
        native_steps,
        without_tranlog: args.no_tranlog,
        ..StartOptions::default()
    };
    let switch = Switch::start(config, options)
        .await
        .context("starting the switch")?;
    for (name, port, addr) in switch.listeners() {
        println!("serving {name} {port} {addr}");
    }
    switchyard::wait_for_signal().await?;
    switch.shutdown().await
}
