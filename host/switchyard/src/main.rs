//! `switchyard`: the payment switch's command line.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow};
use clap::{Parser, Subcommand};
use switchyard::client::{Connection, RequestSpec, field_lines, parse_amount, summary};
use switchyard::{Config, StartOptions, Switch};
use switchyard_iso8583::Spec;
use switchyard_net::{Framing, Simulator, SimulatorOptions};
use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;

/// mimalloc: the tranlog's writer thread frees what the transaction tasks
/// allocated, which glibc's arenas handle slowly.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "switchyard",
    version,
    about = "Switchyard: an ISO 8583 payment switch with WebAssembly participants"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve until SIGINT/SIGTERM (default config: 127.0.0.1:5001 and :5002).
    Run {
        /// Configuration file (default: the embedded config/switchyard.toml).
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Start the switch on free ports, send a scripted set of transactions
    /// covering every response path, print each with its profiler trace.
    #[command(
        after_help = "Example: switchyard demo\n\nThe demo's state (tranlog, keys) lives in a temporary directory removed at exit, \
unless --data-dir names one to keep; compiled plugins are cached in $XDG_CACHE_HOME/switchyard (or ~/.cache/switchyard)."
    )]
    Demo {
        /// Configuration file (default: the embedded one).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Keep the demo's state in this directory (default: a temporary one, removed at exit).
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Send one message to a running switch and print the decoded response.
    Send {
        /// Listener port.
        #[arg(long, default_value_t = 5001)]
        port: u16,
        /// Listener host.
        #[arg(long, default_value = "127.0.0.1")]
        host: String,
        /// Message type.
        #[arg(long, default_value = "0200")]
        mti: String,
        /// Card number (DE2).
        #[arg(long, default_value = "4761739001010119")]
        pan: String,
        /// Amount in major units, e.g. 100.00 (DE4 in minor units).
        #[arg(long, default_value = "10.00")]
        amount: String,
        /// STAN (DE11); default: from the clock.
        #[arg(long)]
        stan: Option<u32>,
        /// Expiry YYMM (DE14); default: two years ahead.
        #[arg(long)]
        expiry: Option<String>,
        /// Terminal id (DE41).
        #[arg(long, default_value = "TERM0001")]
        terminal: String,
        /// Extra or overriding field, N=VALUE (repeatable).
        #[arg(long = "field", value_name = "N=VALUE")]
        fields: Vec<String>,
        /// How long to wait for the response, ms.
        #[arg(long, default_value_t = 5000)]
        timeout_ms: u64,
    },
    /// Run the endpoint simulator of the default wire contract alone.
    Simulate {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:7002")]
        bind: SocketAddr,
        /// Messages carry no 5-byte TPDU header.
        #[arg(long)]
        no_tpdu: bool,
    },
    /// Plugin authoring (new, test) and operations on a running switch
    /// (list, swap, rollback).
    Plugin {
        #[command(subcommand)]
        command: switchyard::plugin_cli::PluginCommand,
    },
    /// The transaction log: search it, show one transaction's life cycle.
    Tranlog {
        #[command(subcommand)]
        command: switchyard::operate::cli::TranlogCommand,
    },
    /// The store-and-forward queue (reversals, advices): list, retry.
    Saf {
        #[command(subcommand)]
        command: switchyard::operate::cli::SafCommand,
    },
    /// Encryption keys at rest: status, rotation.
    Keys {
        #[command(subcommand)]
        command: switchyard::operate::cli::KeysCommand,
    },
    /// Validate a configuration file and load its plugins, then exit.
    Check {
        /// Configuration file (default: the embedded one).
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

fn init_tracing(default: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
}

fn load_config(path: Option<&PathBuf>) -> anyhow::Result<Config> {
    match path {
        Some(p) => Config::load(p).map_err(|e| anyhow!("{e}")),
        None => Ok(Config::default_config()),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let default_level = match cli.command {
        Command::Run { .. } | Command::Simulate { .. } => "info",
        _ => "warn",
    };
    init_tracing(default_level);
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
    match runtime.block_on(dispatch(cli.command)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn dispatch(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Run { config } => {
            let config = load_config(config.as_ref())?;
            let switch = Switch::start(config, StartOptions::default()).await?;
            for (name, port, addr) in switch.listeners() {
                tracing::info!(listener = %name, port, %addr, "serving");
            }
            wait_for_signal().await?;
            tracing::info!("shutting down: no new connections; finishing in-flight transactions");
            switch.shutdown().await?;
            tracing::info!("stopped");
            Ok(ExitCode::SUCCESS)
        }
        Command::Demo { config, data_dir } => {
            let mut config = load_config(config.as_ref())?;
            let temporary = match data_dir {
                Some(d) => {
                    config.switch.data_dir = std::path::absolute(&d)?;
                    None
                }
                None => {
                    let t = std::env::temp_dir()
                        .join(format!("switchyard-demo-{}", std::process::id()));
                    config.switch.data_dir = t.clone();
                    if let Some(cache) = user_cache_dir() {
                        config.switch.cache_dir = cache;
                    }
                    Some(t)
                }
            };
            println!(
                "state in {}{}; compiled plugins cached in {}",
                config.data_dir().display(),
                if temporary.is_some() {
                    " (removed at exit)"
                } else {
                    ""
                },
                config.cache_path().display()
            );
            let ok = switchyard::demo::run(config).await;
            if let Some(t) = temporary {
                let _ = std::fs::remove_dir_all(t);
            }
            Ok(if ok? {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Send {
            port,
            host,
            mti,
            pan,
            amount,
            stan,
            expiry,
            terminal,
            fields,
            timeout_ms,
        } => {
            let addr: SocketAddr = tokio::net::lookup_host((host.as_str(), port))
                .await
                .with_context(|| format!("resolving {host}"))?
                .next()
                .ok_or_else(|| anyhow!("{host} has no address"))?;
            let stan = stan.unwrap_or_else(|| {
                (std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis())
                    % 1_000_000) as u32
            });
            let mut spec = RequestSpec::financial(&mti, &pan, parse_amount(&amount)?, stan);
            if let Some(e) = expiry {
                spec.expiry = Some(e);
            }
            spec.terminal = Some(terminal);
            for f in fields {
                let (n, v) = f
                    .split_once('=')
                    .ok_or_else(|| anyhow!("--field {f:?}: expected N=VALUE"))?;
                let n: u16 = n
                    .parse()
                    .with_context(|| format!("--field {f:?}: bad field number"))?;
                spec.fields.push((n, v.to_owned()));
            }
            let request = spec.build()?;
            println!("→ {addr}  {}", summary(&request));
            let mut conn = Connection::connect(addr).await?;
            let started = Instant::now();
            let response = conn
                .exchange(&request, Duration::from_millis(timeout_ms))
                .await?;
            println!(
                "← {}  ({:.1} ms)",
                summary(&response),
                started.elapsed().as_secs_f64() * 1000.0
            );
            for line in field_lines(&response) {
                println!("    {line}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Simulate { bind, no_tpdu } => {
            let sim = Simulator::bind(SimulatorOptions {
                bind,
                framing: Framing::Nac,
                tpdu: !no_tpdu,
                spec: Arc::new(Spec::iso87_ascii()),
                max_frame: 8192,
                slow_delay: Duration::from_millis(250),
            })
            .await
            .with_context(|| format!("binding {bind}"))?;
            let token = CancellationToken::new();
            let serving = tokio::spawn(sim.serve(token.clone()));
            wait_for_signal().await?;
            token.cancel();
            let _ = serving.await;
            Ok(ExitCode::SUCCESS)
        }
        Command::Plugin { command } => switchyard::plugin_cli::run(command).await,
        Command::Tranlog { command } => switchyard::operate::cli::tranlog(command).await,
        Command::Saf { command } => switchyard::operate::cli::saf(command).await,
        Command::Keys { command } => switchyard::operate::cli::keys(command).await,
        Command::Check { config } => {
            let config = load_config(config.as_ref())?;
            let mut config = config;
            // Bind nothing and touch no state: only prove that every plugin
            // loads and wires (the compiled plugins go to the config's cache).
            for l in &mut config.listeners {
                l.bind = Some("127.0.0.1:0".into());
            }
            config.admin.enabled = false;
            config.switch.cache_dir = std::path::absolute(config.cache_path())?;
            let scratch =
                std::env::temp_dir().join(format!("switchyard-check-{}", std::process::id()));
            config.switch.data_dir = scratch.clone();
            let _cleanup = RemoveOnDrop(scratch);
            let switch = Switch::start(
                config,
                StartOptions {
                    ephemeral_ports: true,
                    ..StartOptions::default()
                },
            )
            .await?;
            for status in switch.registry().list() {
                println!("plugin {}: version {} ok", status.name, status.version);
            }
            switch.shutdown().await?;
            println!("configuration ok");
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The user's cache directory for compiled plugins:
/// `$XDG_CACHE_HOME/switchyard`, else `~/.cache/switchyard`.
fn user_cache_dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("switchyard"))
}

/// Removes a scratch directory when dropped.
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn wait_for_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r.context("waiting for SIGINT")?,
        _ = term.recv() => {}
    }
    Ok(())
}
