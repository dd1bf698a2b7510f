//! `switchyard`: the payment switch's command line.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, anyhow};
use clap::{CommandFactory as _, Parser, Subcommand};
use switchyard::{Config, StartOptions, Switch};
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
    /// How log lines on stderr look: `json` (one JSON object a line), `text`,
    /// or `auto`: JSON for `run` and `simulate` when stderr is not a
    /// terminal, text otherwise (no colour unless stderr is a terminal).
    /// Also `SWITCHYARD_LOG_FORMAT`; the flag wins.
    #[arg(long, global = true, value_enum, value_name = "FORMAT")]
    log_format: Option<LogFormat>,
    #[command(subcommand)]
    command: Command,
}

/// The `--log-format` choices.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    /// JSON for the serving commands when stderr is not a terminal, else text.
    Auto,
    /// One JSON object a line.
    Json,
    /// Human-readable lines.
    Text,
}

#[derive(Subcommand)]
enum Command {
    /// Serve until SIGINT/SIGTERM (default config: 127.0.0.1:5001 and :5002).
    #[command(after_help = "Examples:
  switchyard run                      # the embedded default config: 5001 local, 5002 via endpoint xxx
  switchyard run --config my.toml     # your own configuration
  RUST_LOG=warn switchyard run        # no per-transaction lines")]
    Run {
        /// Configuration file (default: the embedded config/switchyard.toml).
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Start the switch on free ports, send a scripted set of transactions
    /// covering every response path, print each with its profiler trace.
    #[command(after_help = "Examples:
  switchyard demo
  switchyard demo --data-dir ./demo-state   # keep the tranlog to look at it afterwards

The demo's state (tranlog, keys) lives in a temporary directory removed at exit, \
unless --data-dir names one to keep; compiled plugins are cached in $XDG_CACHE_HOME/switchyard (or ~/.cache/switchyard).")]
    Demo {
        /// Configuration file (default: the embedded one).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Keep the demo's state in this directory (default: a temporary one, removed at exit).
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Send a message (or many) to a listener or a host and print the
    /// decoded response: fields by name, the response code's meaning.
    Send(Box<switchyard::send::SendArgs>),
    /// Load a listener: closed loop (connections × in flight) or open loop
    /// (a rate on a fixed timetable); throughput, HDR latency percentiles,
    /// response codes, mismatches, timeouts; `--json`, `--plot FILE.svg`.
    Load(Box<switchyard::load::LoadArgs>),
    /// Stand up a fake host: the endpoint simulator, in any spec and framing,
    /// answering by the default contract or by a rules file.
    Simulate(switchyard::simulate::SimulateArgs),
    /// Plugin authoring (new, test) and operations on a running switch
    /// (list, swap, rollback).
    #[command(after_help = "Examples:
  switchyard plugin new no-refunds
  switchyard plugin test builtin:local-auth --amount 6000.00
  switchyard plugin swap local-auth target/wasm32-wasip2/release/my_auth.wasm")]
    Plugin {
        #[command(subcommand)]
        command: switchyard::plugin_cli::PluginCommand,
    },
    /// The operator plane's users, API clients and audit trail.
    #[command(after_help = "Examples:
  switchyard admin user add alice --role admin
  switchyard admin client add billing --role viewer
  switchyard admin audit verify")]
    Admin {
        #[command(subcommand)]
        command: switchyard::admin_cli::AdminCommand,
    },
    /// The transaction log: search it, show one transaction's life cycle.
    #[command(after_help = "Examples:
  switchyard tranlog search --last4 0119 --limit 10
  switchyard tranlog show 7401823476318208")]
    Tranlog {
        #[command(subcommand)]
        command: switchyard::operate::cli::TranlogCommand,
    },
    /// The store-and-forward queue (reversals, advices): list, retry.
    #[command(after_help = "Examples:
  switchyard saf list
  switchyard saf retry 42")]
    Saf {
        #[command(subcommand)]
        command: switchyard::operate::cli::SafCommand,
    },
    /// Encryption keys at rest: status, rotation.
    #[command(after_help = "Examples:
  switchyard keys status
  switchyard keys rotate --tenant default")]
    Keys {
        #[command(subcommand)]
        command: switchyard::operate::cli::KeysCommand,
    },
    /// The PostgreSQL database several nodes share: migrations, nodes.
    #[command(after_help = "Examples:
  switchyard db migrate --config node-a.toml
  switchyard db nodes --config node-a.toml")]
    Db {
        #[command(subcommand)]
        command: switchyard::db_cli::DbCommand,
    },
    /// The internal loyalty host's cards: credit points, show a balance.
    #[command(after_help = "Examples:
  switchyard loyalty credit 6006490000000004 1500     # 15.00 worth of points
  switchyard loyalty balance 6006490000000004 --json")]
    Loyalty {
        #[command(subcommand)]
        command: switchyard::operate::hosts::cli::LoyaltyCommand,
    },
    /// The internal coupon host's coupons: issue, list.
    #[command(after_help = "Examples:
  switchyard coupons issue --value 25.00 --expires 2027-06-30 --count 10
  switchyard coupons list")]
    Coupons {
        #[command(subcommand)]
        command: switchyard::operate::hosts::cli::CouponsCommand,
    },
    /// Prove a configuration: validate it, load its plugins (in memory) and
    /// have them check their settings, build its pipelines; bind nothing,
    /// write nothing.
    #[command(after_help = "Examples:
  switchyard check                    # the embedded default config
  switchyard check --config my.toml   # every problem at once, with its path")]
    Check {
        /// Configuration file (default: the embedded one).
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Print a shell completion script.
    #[command(after_help = "Examples:
  switchyard completions bash > ~/.local/share/bash-completion/completions/switchyard
  switchyard completions zsh > ~/.zfunc/_switchyard      # with fpath+=~/.zfunc in ~/.zshrc
  switchyard completions fish > ~/.config/fish/completions/switchyard.fish")]
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff), or write one page per command.
    #[command(after_help = "Examples:
  switchyard man | man -l -
  switchyard man --dir ~/.local/share/man/man1   # switchyard.1, switchyard-send.1, …")]
    Man {
        /// Write switchyard.1 and a page per subcommand into this directory.
        #[arg(long)]
        dir: Option<PathBuf>,
    },
}

/// The log format: the flag, else `SWITCHYARD_LOG_FORMAT`, else `auto`.
fn log_format(flag: Option<LogFormat>) -> Result<LogFormat, String> {
    use clap::ValueEnum as _;
    if let Some(f) = flag {
        return Ok(f);
    }
    match std::env::var("SWITCHYARD_LOG_FORMAT") {
        Ok(v) if !v.is_empty() => LogFormat::from_str(&v, true)
            .map_err(|_| format!("SWITCHYARD_LOG_FORMAT={v:?}: expected json, text or auto")),
        _ => Ok(LogFormat::Auto),
    }
}

/// The subscriber on stderr: JSON lines (event fields at the top level:
/// `timestamp`, `level`, `target`, `message`, `tenant`, `listener`, …) or
/// text, ANSI colour only on a terminal without `NO_COLOR`. `RUST_LOG`
/// filters, else `default`.
fn init_tracing(default: &str, format: LogFormat, serving: bool) {
    use std::io::IsTerminal as _;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let terminal = std::io::stderr().is_terminal();
    let json = match format {
        LogFormat::Json => true,
        LogFormat::Text => false,
        LogFormat::Auto => serving && !terminal,
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .init();
    } else {
        let colour = terminal && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
        builder.with_target(false).with_ansi(colour).init();
    }
}

/// Raises the soft limit of open files to the hard limit, so that the
/// switch can hold every connection its listeners admit.
fn raise_fd_limit() {
    let before = rlimit::Resource::NOFILE.get().map(|(soft, _)| soft);
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(now) => tracing::debug!(
            before = before.unwrap_or(0),
            now,
            "open-file limit (RLIMIT_NOFILE) raised to the hard limit"
        ),
        Err(e) => tracing::warn!(error = %e, "cannot raise the open-file limit (RLIMIT_NOFILE)"),
    }
}

fn load_config(path: Option<&PathBuf>) -> anyhow::Result<Config> {
    Config::load_or_default(path.map(PathBuf::as_path)).map_err(|e| anyhow!("{e}"))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let serving = matches!(cli.command, Command::Run { .. } | Command::Simulate(_));
    let default_level = if serving { "info" } else { "warn" };
    let format = match log_format(cli.log_format) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    init_tracing(default_level, format, serving);
    // `load` runs on its own runtime (one worker unless --threads), so that
    // the switch it loads keeps the other cores.
    let runtime = match &cli.command {
        Command::Load(args) => switchyard::load::runtime(args),
        _ => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build(),
    };
    let runtime = match runtime {
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
            raise_fd_limit();
            let config = load_config(config.as_ref())?;
            let switch = Switch::start(config, StartOptions::default()).await?;
            for (name, port, addr) in switch.listeners() {
                tracing::info!(listener = %name, port, %addr, "serving");
            }
            let fenced = switch.fenced();
            tokio::select! {
                r = switch.tls().serve_until_signal() => r?, // SIGHUP reloads TLS
                _ = fenced.cancelled() => {}
            }
            tracing::info!("shutting down: no new connections; finishing in-flight transactions");
            switch.shutdown().await?;
            tracing::info!("stopped");
            if fenced.is_cancelled() {
                anyhow::bail!("stopped: another node took this node's id over (see the log)");
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Demo { config, data_dir } => demo(config, data_dir).await,
        Command::Send(args) => switchyard::send::run(*args).await,
        Command::Load(args) => switchyard::load::run(*args).await,
        Command::Simulate(args) => switchyard::simulate::run(args).await,
        Command::Completions { shell } => {
            let mut cmd = Cli::command();
            clap_complete::generate(shell, &mut cmd, "switchyard", &mut std::io::stdout());
            Ok(ExitCode::SUCCESS)
        }
        Command::Man { dir } => man(dir),
        Command::Plugin { command } => switchyard::plugin_cli::run(command).await,
        Command::Admin { command } => switchyard::admin_cli::run(command)
            .await
            .map(|()| std::process::ExitCode::SUCCESS),
        Command::Tranlog { command } => switchyard::operate::cli::tranlog(command).await,
        Command::Saf { command } => switchyard::operate::cli::saf(command).await,
        Command::Keys { command } => switchyard::operate::cli::keys(command).await,
        Command::Db { command } => switchyard::db_cli::run(command),
        Command::Loyalty { command } => switchyard::operate::hosts::cli::loyalty(command).await,
        Command::Coupons { command } => switchyard::operate::hosts::cli::coupons(command).await,
        Command::Check { config } => {
            // Proves the configuration and binds nothing, opens no store and
            // writes nothing (plugins are compiled in memory).
            let config = load_config(config.as_ref())?;
            let plan = switchyard::plan::Plan::from_config(&config).map_err(|e| anyhow!("{e}"))?;
            let registry = switchyard::switch::check(&plan).await?;
            for status in registry.list() {
                println!("plugin {}: version {} ok", status.name, status.version);
            }
            println!(
                "configuration ok: {} listener(s), {} endpoint(s), {} pipeline(s)",
                plan.listeners.len(),
                plan.endpoints.len(),
                plan.pipelines.len()
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `switchyard demo`: in a temporary data directory unless `data_dir` is given.
async fn demo(config: Option<PathBuf>, data_dir: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let mut config = load_config(config.as_ref())?;
    let temporary = match data_dir {
        Some(d) => {
            config.switch.data_dir = std::path::absolute(&d)?;
            None
        }
        None => {
            let t = std::env::temp_dir().join(format!("switchyard-demo-{}", std::process::id()));
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
    // Interrupted (Ctrl-C, SIGTERM): the temporary directory goes too.
    let ok = tokio::select! {
        ok = switchyard::demo::run(config) => ok,
        signal = switchyard::wait_for_signal() => signal.and_then(|()| Err(anyhow!("interrupted"))),
    };
    if let Some(t) = temporary {
        let _ = std::fs::remove_dir_all(t);
    }
    Ok(if ok? {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// `switchyard man`: the page on stdout, or every page into `dir`.
fn man(dir: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let cmd = Cli::command();
    match dir {
        Some(dir) => {
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            clap_mangen::generate_to(cmd, &dir)
                .with_context(|| format!("writing the pages into {}", dir.display()))?;
            println!("manual pages written to {}", dir.display());
        }
        None => clap_mangen::Man::new(cmd)
            .render(&mut std::io::stdout())
            .context("writing the manual page")?,
    }
    Ok(ExitCode::SUCCESS)
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

#[cfg(test)]
mod tests {
    use super::*;

    /// `--help` of every command and subcommand ends with an example.
    #[test]
    fn every_command_shows_an_example() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for sub in cmd.get_subcommands() {
                let at = format!("{path} {}", sub.get_name());
                let help = sub
                    .get_after_help()
                    .map(|h| h.to_string())
                    .unwrap_or_default();
                if !help.contains("Example") {
                    missing.push(at.clone());
                }
                walk(sub, &at, missing);
            }
        }
        let mut missing = Vec::new();
        walk(&Cli::command(), "switchyard", &mut missing);
        assert!(missing.is_empty(), "no example in --help of: {missing:?}");
    }
}
