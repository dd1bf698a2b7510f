//! `switchyard load`: a load generator for people at a terminal and for CI.
//!
//! Closed loop (`--connections C --in-flight N`: every connection keeps N
//! requests outstanding, pipelined on one TCP connection) or open loop
//! (`--rate R`: requests on a fixed timetable, latency measured from each
//! request's *scheduled* send time, so a slow switch cannot hide its latency
//! by slowing the sender down — no coordinated omission). Any listener, spec,
//! framing and TPDU `switchyard send` can reach. A progress line a second on
//! stderr; at the end throughput, HDR latency percentiles, response codes,
//! mismatches, timeouts and connection errors, as text, `--json`, and a
//! latency-over-time chart with `--plot FILE.svg`.
//!
//! It runs on its own tokio runtime ([`runtime`], one worker thread unless
//! `--threads`), so that on a small machine the switch keeps its cores.

mod conn;
mod pace;
mod report;
mod stats;
mod svg;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, bail};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use crate::send::{MessageArgs, TargetArgs};

pub use report::Summary;

/// Examples shown by `switchyard load --help`.
pub const EXAMPLES: &str = "Examples:
  switchyard load                                            # 8 connections × 8 in flight to 5001 for 10 s
  switchyard load --connections 4 --in-flight 16 --duration 30s --warmup 2s
  switchyard load --rate 5000 --duration 20s                 # open loop: 5,000 requests/s on a fixed timetable
  switchyard load --count 100000 --json                      # one JSON object on stdout
  switchyard load --port 5002 --amount 10.00 --plot latency.svg
  switchyard load --config my.toml --listener pos --expect-rc 00

Latency is measured from the send (closed loop) or from the scheduled send time (open loop).
Exit status: 0 when the run completed (whatever the response codes, unless --expect-rc),
1 when the target cannot be reached or a flag is wrong.";

/// `switchyard load`.
#[derive(Debug, Clone, clap::Args)]
#[command(after_help = EXAMPLES)]
pub struct LoadArgs {
    /// Where to send, in what spec and framing.
    #[command(flatten)]
    pub target: TargetArgs,
    /// TCP connections.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub connections: u32,
    /// Closed loop: requests kept outstanding on each connection.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub in_flight: u32,
    /// Open loop: requests per second across all connections, on a fixed
    /// timetable (latency counted from each request's scheduled send time).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    pub rate: Option<u64>,
    /// Open loop: at most this many requests outstanding across all
    /// connections; a request due while the cap is reached waits (and its
    /// wait counts in its latency).
    #[arg(long, default_value_t = 4096, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub max_outstanding: u32,
    /// How long to send after the warm-up: `10s`, `500ms`, `2m`, `1h` or
    /// seconds (default 10s unless --count).
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Send this many requests after the warm-up (stops earlier if
    /// --duration is given and ends first).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=1_000_000_000))]
    pub count: Option<u64>,
    /// Load sent first and left out of every figure.
    #[arg(long, default_value = "0s", value_parser = parse_duration)]
    pub warmup: Duration,
    /// A request with no response after this many ms counts as a timeout.
    #[arg(long, default_value_t = 5000, value_parser = clap::value_parser!(u64).range(1..=600_000))]
    pub timeout_ms: u64,
    /// Message type.
    #[arg(long, default_value = "0200")]
    pub mti: String,
    /// Card number (DE2; default: the Visa test card 476173******0119).
    #[arg(long, default_value = "4761739001010119", hide_default_value = true)]
    pub pan: String,
    /// Amount in major units, e.g. 100.00 (DE4 in minor units).
    #[arg(long, default_value = "10.00")]
    pub amount: String,
    /// Expiry YYMM (DE14); default: two years ahead.
    #[arg(long)]
    pub expiry: Option<String>,
    /// Terminal id prefix (DE41): connection i sends as PREFIX + i, zero-padded
    /// to 8 characters (LOAD0001, LOAD0002, …), so STANs never collide.
    #[arg(long, default_value = "LOAD")]
    pub terminal: String,
    /// Extra or overriding field, N=VALUE (repeatable).
    #[arg(long = "field", value_name = "N=VALUE")]
    pub fields: Vec<String>,
    /// A default field to leave out, e.g. --omit 14 (repeatable).
    #[arg(long = "omit", value_name = "N")]
    pub omit: Vec<u16>,
    /// No progress line on stderr.
    #[arg(long)]
    pub quiet: bool,
    /// Print one JSON object on stdout instead of text.
    #[arg(long)]
    pub json: bool,
    /// Write a latency-over-time chart (per second: p50, p99, max) to this SVG file.
    #[arg(long, value_name = "FILE.svg")]
    pub plot: Option<PathBuf>,
    /// Exit 1 when any response code is not one of these (repeatable), or a
    /// request timed out, failed or got a mismatched response.
    #[arg(long, value_name = "RC")]
    pub expect_rc: Vec<String>,
    /// Worker threads of the load generator's runtime.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub threads: u16,
}

/// The runtime `switchyard load` runs on: `--threads` workers (default 1).
pub fn runtime(args: &LoadArgs) -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(usize::from(args.threads))
        .enable_all()
        .build()
}

/// Parses `10s`, `500ms`, `2m`, `1h`, `1.5s` or plain seconds (`10`).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{text:?}: expected a duration such as 10s, 500ms, 2m or 1h"))?;
    let seconds = match unit.trim() {
        "" | "s" | "sec" | "secs" => value,
        "ms" => value / 1e3,
        "us" | "µs" => value / 1e6,
        "m" | "min" => value * 60.0,
        "h" => value * 3600.0,
        other => return Err(format!("{text:?}: unknown unit {other:?} (ms, s, m, h)")),
    };
    if !(0.0..=86_400.0).contains(&seconds) {
        return Err(format!("{text:?}: at most 24 h"));
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// Closed or open loop, as the flags say.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Mode {
    /// Every connection keeps `in_flight` requests outstanding.
    Closed { in_flight: u32 },
    /// `rate` requests/s across all connections; at most `cap` outstanding
    /// on each.
    Open { rate: u64, cap: u32 },
}

/// What every connection of a run shares.
pub(crate) struct Plan {
    pub(crate) wire: Arc<crate::client::Wire>,
    pub(crate) mode: Mode,
    pub(crate) connections: u32,
    pub(crate) timeout: Duration,
    /// When sending started (after every connection was made).
    pub(crate) start: Instant,
    /// Requests sent (or scheduled) from here on are measured.
    pub(crate) measure_from: Instant,
    /// No request is sent (scheduled) at or after this.
    pub(crate) end: Option<Instant>,
    /// The first six digits of every request's RRN (DE37), different for
    /// runs that start in the same second: the duplicate-detection key
    /// includes DE37, so one run's requests never repeat another's.
    pub(crate) run_tag: u32,
}

/// Six digits from the start time's milliseconds and the process id.
fn run_tag() -> u32 {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_millis());
    ms * 1000 + std::process::id() % 1000
}

/// Runs `switchyard load`.
pub async fn run(args: LoadArgs) -> anyhow::Result<ExitCode> {
    check_args(&args)?;
    let target = crate::send::target(&args.target).await?;
    let messages = (0..args.connections)
        .map(|i| connection_message(&args, i))
        .collect::<anyhow::Result<Vec<_>>>()?;
    // Refuse a request the spec cannot carry before connecting.
    target
        .wire
        .body(&messages[0].request_spec(1)?.build_for(&target.wire.spec)?)?;
    let streams = connect_all(target.addr, args.connections).await?;
    let summary = drive(&args, &target, messages, streams).await?;
    if let Some(path) = &args.plot {
        std::fs::write(path, svg::chart(&summary))
            .with_context(|| format!("writing the chart to {}", path.display()))?;
    }
    let text = if args.json {
        format!("{}\n", summary.json())
    } else {
        summary.text()
    };
    crate::emit(&text)?;
    Ok(if summary.meets(&args.expect_rc) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn check_args(args: &LoadArgs) -> anyhow::Result<()> {
    if args.count.is_some() && args.duration.is_some_and(|d| d.is_zero()) {
        bail!("--duration 0 with --count sends nothing");
    }
    let width = 8usize.saturating_sub(args.terminal.len());
    let ids = 10u64.saturating_pow(width as u32);
    if args.terminal.len() > 8 || (width == 0 && args.connections > 1) {
        bail!(
            "--terminal {:?}: a prefix of at most 7 characters (8 with one connection): \
             each connection appends its number",
            args.terminal
        );
    }
    if width > 0 && u64::from(args.connections) >= ids {
        bail!(
            "--terminal {:?} leaves {width} digit(s) for the connection number: too few for \
             {} connections",
            args.terminal,
            args.connections
        );
    }
    if let Some(path) = &args.plot
        && path.extension().is_none_or(|e| e != "svg")
    {
        bail!(
            "--plot {}: the chart is SVG, name a .svg file",
            path.display()
        );
    }
    Ok(())
}

fn connection_args(args: &LoadArgs, terminal: String) -> MessageArgs {
    MessageArgs {
        mti: args.mti.clone(),
        pan: args.pan.clone(),
        amount: args.amount.clone(),
        expiry: args.expiry.clone(),
        terminal,
        fields: args.fields.clone(),
        omit: args.omit.clone(),
    }
}

/// The message fields of connection `index` (0-based): its own terminal id.
fn connection_message(args: &LoadArgs, index: u32) -> anyhow::Result<MessageArgs> {
    let width = 8usize.saturating_sub(args.terminal.len());
    let terminal = if width == 0 {
        args.terminal.clone()
    } else {
        format!("{}{:0width$}", args.terminal, index + 1)
    };
    let m = connection_args(args, terminal);
    m.parsed_fields()?;
    Ok(m)
}

/// Every connection, made before the clock starts; the first failure ends
/// the run with what to check.
async fn connect_all(addr: std::net::SocketAddr, n: u32) -> anyhow::Result<Vec<TcpStream>> {
    let mut streams = Vec::with_capacity(n as usize);
    for i in 0..n {
        let stream = tokio::time::timeout(Duration::from_secs(10), TcpStream::connect(addr))
            .await
            .map_err(|_| anyhow!("connecting to {addr}: no answer within 10 s"))
            .and_then(|r| r.with_context(|| format!("connecting to {addr}")))
            .map_err(|e| {
                anyhow!(
                    "connection {} of {n}: {e:#}: is a switch (switchyard run) listening there? \
                     --host, --port or --config with --listener say where to send",
                    i + 1
                )
            })?;
        stream.set_nodelay(true).context("TCP_NODELAY")?;
        streams.push(stream);
    }
    Ok(streams)
}

/// Sends the load on every connection, collects what came back; Ctrl-C
/// stops sending early and reports what was measured.
async fn drive(
    args: &LoadArgs,
    target: &crate::send::Target,
    messages: Vec<MessageArgs>,
    streams: Vec<TcpStream>,
) -> anyhow::Result<Summary> {
    let start = Instant::now();
    let measure_from = start + args.warmup;
    let duration = match (args.duration, args.count) {
        (Some(d), _) => Some(d),
        (None, Some(_)) => None,
        (None, None) => Some(Duration::from_secs(10)),
    };
    let mode = match args.rate {
        Some(rate) => Mode::Open {
            rate,
            cap: args.max_outstanding.div_ceil(args.connections).max(1),
        },
        None => Mode::Closed {
            in_flight: args.in_flight,
        },
    };
    let plan = Arc::new(Plan {
        wire: target.wire.clone(),
        mode,
        connections: args.connections,
        timeout: Duration::from_millis(args.timeout_ms),
        start,
        measure_from,
        end: duration.map(|d| measure_from + d),
        run_tag: run_tag(),
    });
    let stop = CancellationToken::new();
    let (reports, incoming) = tokio::sync::mpsc::channel(1024);
    let mut tasks = tokio::task::JoinSet::new();
    for (i, (stream, message)) in streams.into_iter().zip(messages).enumerate() {
        let quota = args.count.map(|n| share(n, args.connections, i as u32));
        let setup = conn::Setup {
            index: i as u32,
            message,
            quota,
        };
        tasks.spawn(conn::run(
            plan.clone(),
            setup,
            stream,
            reports.clone(),
            stop.clone(),
        ));
    }
    drop(reports);
    let progress = !args.quiet;
    let collector = stats::collect(plan.clone(), incoming, progress);
    let signal = async {
        let _ = tokio::signal::ctrl_c().await;
        stop.cancel();
        std::future::pending::<()>().await
    };
    let collected = tokio::select! {
        c = collector => c,
        () = signal => unreachable!("the signal arm never completes"),
    };
    while let Some(joined) = tasks.join_next().await {
        joined.context("a connection task failed")?;
    }
    let measured = match duration {
        Some(d) => d.min(collected.last_event.saturating_duration_since(measure_from)),
        None => collected.last_event.saturating_duration_since(measure_from),
    };
    Ok(Summary::new(args, target, mode, measured, collected))
}

/// Connection `i`'s share of `n` requests over `c` connections.
fn share(n: u64, c: u32, i: u32) -> u64 {
    n / u64::from(c) + u64::from(u64::from(i) < n % u64::from(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("10"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("10x").is_err());
        assert!(parse_duration("s").is_err());
        assert!(parse_duration("2d").is_err());
    }

    #[test]
    fn shares_add_up() {
        for (n, c) in [(10, 3), (2000, 8), (5, 8), (1, 1)] {
            assert_eq!((0..c).map(|i| share(n, c, i)).sum::<u64>(), n);
        }
    }
}
