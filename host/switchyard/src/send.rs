//! `switchyard send`: one message (or many) to a listener or a host, in any
//! spec and framing the switch speaks, printed for people (fields by name,
//! each response code with its meaning, card data masked) or as JSON.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, bail};
use bytes::Bytes;
use serde_json::{Value, json};
use switchyard_engine::rc;
use switchyard_iso8583::tpdu::Tpdu;
use switchyard_iso8583::{Message, Spec};
use switchyard_net::Framing;

use crate::Config;
use crate::client::{
    Connection, RequestSpec, Wire, parse_amount, repeat_of, reversal_of, shown, summary,
};
use crate::config::ListenerConfig;
use crate::hexdump;

/// Examples shown by `switchyard send --help`.
pub const EXAMPLES: &str = "Examples:
  switchyard send --port 5001 --amount 25.00                 # one 0200, the response by field name
  switchyard send --port 5002 --amount 100.51                # declined by the simulator: rc 51
  switchyard send --amount 10.00 --repeat --reverse          # the original, its repeat (0201), its reversal (0420)
  switchyard send --omit 14 --field 37=000000000042          # leave out the expiry, add an RRN
  switchyard send --spec iso87-binary --framing 2b+tpdu --port 7002 --hex
  switchyard send --config my.toml --listener pos            # that listener's address, spec and framing
  switchyard send --count 1000 --concurrency 8 --json        # many; a summary with latency percentiles

Exit status: 0 when every request got its response, 1 otherwise.";

/// `switchyard send`.
#[derive(Debug, Clone, clap::Args)]
#[command(after_help = EXAMPLES)]
pub struct SendArgs {
    /// Where to send, in what spec and framing.
    #[command(flatten)]
    pub target: TargetArgs,
    /// The request's fields.
    #[command(flatten)]
    pub message: MessageArgs,
    /// STAN (DE11); default: from the clock. With --count, the first of consecutive ones.
    #[arg(long)]
    pub stan: Option<u32>,
    /// After the response, send the same message again as its repeat (0200 → 0201).
    #[arg(long)]
    pub repeat: bool,
    /// Then send the reversal (0420, naming the original in DE90) of the original.
    #[arg(long)]
    pub reverse: bool,
    /// How many transactions to send (each with its own STAN).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub count: u32,
    /// Connections sending at once, one transaction in flight on each.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub concurrency: u32,
    /// Print the frames as they go over the wire, in hex (card data masked).
    #[arg(long)]
    pub hex: bool,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// How long to wait for each response, ms.
    #[arg(long, default_value_t = 5000)]
    pub timeout_ms: u64,
}

/// Where `send` and `load` send: an address, or a listener of a config, with
/// its spec, framing and TPDU.
#[derive(Debug, Clone, clap::Args)]
pub struct TargetArgs {
    /// Configuration whose `[specs]` and listeners `--spec` and `--listener` may name.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// With --config: the listener to send to (or load) (its address, spec and framing;
    /// --host, --port, --spec and --framing still override them).
    #[arg(long)]
    pub listener: Option<String>,
    /// Host to send to.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Port to send to (default 5001, or the listener's).
    #[arg(long)]
    pub port: Option<u16>,
    /// Message spec: a built-in name (iso87-ascii, iso87-binary, iso93-ascii, …), a
    /// `[specs.NAME]` of --config, or a spec file (.toml).
    #[arg(long)]
    pub spec: Option<String>,
    /// Length framing: nac/2b, 3b, 4b, 2a, 3a, 4a, 2bcd, visa; then +self and/or +tpdu.
    #[arg(long)]
    pub framing: Option<String>,
    /// The TPDU of each request when the framing has +tpdu (10 hex digits).
    #[arg(long, default_value = "6000010000")]
    pub tpdu: String,
}

/// The fields of a request built from the command line (`send`, `plugin test`).
#[derive(Debug, Clone, clap::Args)]
pub struct MessageArgs {
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
    /// Terminal id (DE41).
    #[arg(long, default_value = "TERM0001")]
    pub terminal: String,
    /// Extra or overriding field, N=VALUE (repeatable).
    #[arg(long = "field", value_name = "N=VALUE")]
    pub fields: Vec<String>,
    /// A default field to leave out, e.g. --omit 14 (repeatable).
    #[arg(long = "omit", value_name = "N")]
    pub omit: Vec<u16>,
}

impl MessageArgs {
    /// `--field` values, parsed.
    pub fn parsed_fields(&self) -> anyhow::Result<Vec<(u16, String)>> {
        self.fields
            .iter()
            .map(|f| {
                let (n, v) = f
                    .split_once('=')
                    .ok_or_else(|| anyhow!("--field {f:?}: expected N=VALUE"))?;
                let n: u16 = n
                    .parse()
                    .with_context(|| format!("--field {f:?}: bad field number"))?;
                Ok((n, v.to_owned()))
            })
            .collect()
    }

    /// The request these arguments describe, with STAN `stan`.
    pub fn request_spec(&self, stan: u32) -> anyhow::Result<RequestSpec> {
        let amount = parse_amount(&self.amount).context("--amount")?;
        let mut r = RequestSpec::financial(&self.mti, &self.pan, amount, stan);
        if let Some(e) = &self.expiry {
            r.expiry = Some(e.clone());
        }
        r.terminal = Some(self.terminal.clone());
        r.fields = self.parsed_fields()?;
        r.omit = self.omit.clone();
        Ok(r)
    }
}

/// `writeln!` into a `String` (which cannot fail).
macro_rules! say {
    ($out:expr, $($arg:tt)*) => {{
        let _ = writeln!($out, $($arg)*);
    }};
}

/// Where to send and how (also `switchyard load`'s target).
pub(crate) struct Target {
    pub(crate) addr: SocketAddr,
    pub(crate) wire: Arc<Wire>,
}

/// One request and what came back.
struct Exchange {
    kind: &'static str,
    request: Message,
    sent: Bytes,
    /// The response frame body and message, or why there is none.
    response: Result<(Bytes, Message), String>,
    /// Responses read that were not this request's (late ones).
    mismatched: u32,
    elapsed: Duration,
}

/// Runs `switchyard send`.
pub async fn run(args: SendArgs) -> anyhow::Result<ExitCode> {
    if args.hex && args.count > 1 {
        bail!("--hex prints single exchanges; leave out --count or --hex");
    }
    let target = target(&args.target).await?;
    let base_stan = args.stan.unwrap_or_else(|| {
        (std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis())
            % 1_000_000) as u32
    });
    // Refuse a request the spec cannot carry before connecting.
    let first = request(&args, &target.wire.spec, base_stan)?;
    target.wire.body(&first)?;
    if args.count == 1 {
        single(&args, &target, base_stan).await
    } else {
        many(&args, &target, base_stan).await
    }
}

/// The address and wire of `--host`/`--port` or `--config --listener`,
/// with `--spec`, `--framing` and `--tpdu` applied.
pub(crate) async fn target(args: &TargetArgs) -> anyhow::Result<Target> {
    let config = Config::load_or_default(args.config.as_deref()).map_err(|e| anyhow!("{e}"))?;
    let listener = listener(args, &config)?;
    let spec_name = args
        .spec
        .clone()
        .or_else(|| listener.map(|l| l.spec.clone()))
        .unwrap_or_else(|| "iso87-ascii".into());
    let spec = config
        .find_spec(&spec_name)
        .map_err(|e| anyhow!("--spec: {e}"))?;
    let framing_name = args
        .framing
        .clone()
        .or_else(|| listener.map(|l| l.framing.clone()))
        .unwrap_or_else(|| "nac".into());
    let framing = framing_named(&framing_name)?;
    let tpdu = Tpdu::from_hex(&args.tpdu)
        .ok_or_else(|| anyhow!("--tpdu {:?}: expected 10 hex digits", args.tpdu))?;
    let addr = match (listener, args.port) {
        (Some(l), None) => {
            let mut a =
                Config::listener_bind(l).map_err(|e| anyhow!("listener {}: {e}", l.name))?;
            if a.port() == 0 {
                bail!(
                    "listener {} binds port 0 (a free port chosen at start): give --port \
                     (the switch logs \"serving listener={} … addr=…\")",
                    l.name,
                    l.name
                );
            }
            if a.ip().is_unspecified() {
                a.set_ip([127, 0, 0, 1].into());
            }
            a
        }
        (_, port) => resolve(&args.host, port.unwrap_or(5001)).await?,
    };
    Ok(Target {
        addr,
        wire: Arc::new(Wire {
            spec,
            framing,
            tpdu,
            max_frame: 65_535,
        }),
    })
}

/// The framing `--framing` names.
pub(crate) fn framing_named(name: &str) -> anyhow::Result<Framing> {
    Framing::parse(name).ok_or_else(|| {
        anyhow!(
            "--framing {name:?}: unknown (known: {}; each may take +self and/or +tpdu)",
            Framing::NAMES.join(", ")
        )
    })
}

/// The listener `--listener` names in `--config`.
fn listener<'c>(
    args: &TargetArgs,
    config: &'c Config,
) -> anyhow::Result<Option<&'c ListenerConfig>> {
    let Some(name) = &args.listener else {
        return Ok(None);
    };
    if args.config.is_none() {
        bail!("--listener {name:?} needs --config FILE (the configuration that defines it)");
    }
    let found = config.listeners.iter().find(|l| &l.name == name);
    found.map(Some).ok_or_else(|| {
        anyhow!(
            "--listener {name:?}: no such listener (defined: {})",
            config
                .listeners
                .iter()
                .map(|l| l.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )
    })
}

async fn resolve(host: &str, port: u16) -> anyhow::Result<SocketAddr> {
    tokio::net::lookup_host((host, port))
        .await
        .with_context(|| format!("resolving {host}"))?
        .next()
        .ok_or_else(|| anyhow!("{host} has no address"))
}

/// A connection to the target; when it cannot be made, what to check.
async fn connect(target: &Target) -> anyhow::Result<Connection> {
    Connection::connect_with(target.addr, target.wire.clone())
        .await
        .map_err(|e| {
            anyhow!(
                "{e:#}: is a switch (switchyard run) or a host (switchyard simulate) listening \
                 there? --host, --port or --config with --listener say where to send"
            )
        })
}

/// The original request of transaction `stan`.
fn request(args: &SendArgs, spec: &Spec, stan: u32) -> anyhow::Result<Message> {
    args.message.request_spec(stan)?.build_for(spec)
}

/// The original, then its repeat and reversal if asked for, on one connection.
async fn transaction(
    args: &SendArgs,
    conn: &mut Connection,
    spec: &Spec,
    stan: u32,
) -> anyhow::Result<Vec<Exchange>> {
    let timeout = Duration::from_millis(args.timeout_ms);
    let original = request(args, spec, stan)?;
    let mut done = vec![exchange(conn, "original", original.clone(), timeout).await?];
    if args.repeat {
        let repeat = repeat_of(&original)?;
        done.push(exchange(conn, "repeat", repeat, timeout).await?);
    }
    if args.reverse {
        let reversal = reversal_of(&original, stan.wrapping_add(args.count), spec)?;
        done.push(exchange(conn, "reversal", reversal, timeout).await?);
    }
    Ok(done)
}

/// Sends `request` and reads until its response (same STAN, response MTI),
/// skipping late responses to earlier requests.
async fn exchange(
    conn: &mut Connection,
    kind: &'static str,
    request: Message,
    timeout: Duration,
) -> anyhow::Result<Exchange> {
    let started = Instant::now();
    let sent = conn.send(&request).await?;
    let mut mismatched = 0;
    let response = loop {
        let left = timeout.saturating_sub(started.elapsed());
        match conn.receive_frame(left).await {
            Ok((body, m)) if answers(&request, &m) => break Ok((body, m)),
            Ok(_) => mismatched += 1,
            Err(e) => break Err(format!("{e:#}")),
        }
    };
    Ok(Exchange {
        kind,
        request,
        sent,
        response,
        mismatched,
        elapsed: started.elapsed(),
    })
}

/// Whether `response` answers `request`: the MTI's function digit one up
/// (0200 → 0210, 0201 → 0210, 0421 → 0430) and the same STAN.
fn answers(request: &Message, response: &Message) -> bool {
    let (q, r) = (*request.mti().as_bytes(), *response.mti().as_bytes());
    q[..2] == r[..2] && r[2] == q[2] + 1 && request.get(11) == response.get(11)
}

async fn single(args: &SendArgs, target: &Target, stan: u32) -> anyhow::Result<ExitCode> {
    let mut out = String::new();
    let mut conn = connect(target).await?;
    let exchanges = transaction(args, &mut conn, &target.wire.spec, stan).await?;
    if args.json {
        let doc = json!({
            "target": target.addr.to_string(),
            "spec": target.wire.spec.name(),
            "framing": target.wire.framing.to_string(),
            "exchanges": exchanges.iter().map(|x| exchange_json(x, &target.wire, args.hex)).collect::<Vec<_>>(),
        });
        say!(out, "{}", serde_json::to_string_pretty(&doc)?);
    } else {
        say!(
            out,
            "to {} ({}, {})",
            target.addr,
            target.wire.spec.name(),
            target.wire.framing
        );
        for x in &exchanges {
            print_exchange(&mut out, x, &target.wire, args.hex);
        }
    }
    crate::emit(&out)?;
    Ok(if exchanges.iter().all(|x| x.response.is_ok()) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn print_exchange(out: &mut String, x: &Exchange, wire: &Wire, hex: bool) {
    say!(out, "→ {}  {}", x.kind, summary(&x.request));
    if hex {
        for line in frame_dump(wire, &x.request, &x.sent) {
            say!(out, "    {line}");
        }
    }
    match &x.response {
        Ok((body, m)) => {
            let code = m.get_str(39).unwrap_or("");
            say!(
                out,
                "← {}  ({:.1} ms){}",
                summary(m),
                x.elapsed.as_secs_f64() * 1000.0,
                late_note(x.mismatched)
            );
            if !code.is_empty() {
                say!(
                    out,
                    "    rc {code}: {}",
                    rc::meaning(code).unwrap_or("(no meaning known)")
                );
            }
            if hex {
                for line in frame_dump(wire, m, body) {
                    say!(out, "    {line}");
                }
            }
            for line in named_fields(m, &wire.spec) {
                say!(out, "    {line}");
            }
        }
        Err(e) => say!(out, "← nothing: {e}{}", late_note(x.mismatched)),
    }
}

fn late_note(mismatched: u32) -> String {
    if mismatched == 0 {
        String::new()
    } else {
        format!(" [{mismatched} late response(s) to earlier requests skipped]")
    }
}

/// The frame as it went over the wire (length header, TPDU, message), card
/// data masked; nothing of it when its card data cannot be located.
fn frame_dump(wire: &Wire, m: &Message, body: &Bytes) -> Vec<String> {
    let Ok(bytes) = wire.on_the_wire(body) else {
        return vec!["(cannot be framed)".into()];
    };
    let skip = wire.preamble_len();
    let encoded = &bytes[skip.min(bytes.len())..];
    match hexdump::secret_bytes(&wire.spec, m, encoded) {
        Some(secret) => hexdump::dump(&bytes, &secret, skip),
        None => vec!["(not shown: its card data could not be located)".into()],
    }
}

/// Every field of `m`, one a line: number, the spec's name of it, the value
/// (PAN and expiry masked, as the tranlog shows them; track, PIN and chip
/// data never shown).
pub fn named_fields(m: &Message, spec: &Spec) -> Vec<String> {
    m.fields()
        .map(|(f, v)| {
            let name = spec.field(f).map_or("", |s| s.description());
            format!("DE{f:03} {name:<38} {}", shown(f, v))
        })
        .collect()
}

fn message_json(m: &Message) -> Value {
    let fields: serde_json::Map<String, Value> = m
        .fields()
        .map(|(f, v)| (format!("{f:03}"), Value::String(shown(f, v))))
        .collect();
    json!({ "mti": m.mti_str(), "fields": fields })
}

fn exchange_json(x: &Exchange, wire: &Wire, hex: bool) -> Value {
    let mut doc = json!({
        "kind": x.kind,
        "request": message_json(&x.request),
        "ms": (x.elapsed.as_secs_f64() * 1e6).round() / 1e3,
        "late_responses_skipped": x.mismatched,
    });
    if hex {
        doc["request_hex"] = json!(frame_dump(wire, &x.request, &x.sent));
    }
    match &x.response {
        Ok((body, m)) => {
            let code = m.get_str(39).unwrap_or("");
            doc["response"] = message_json(m);
            doc["rc"] = json!(code);
            doc["meaning"] = json!(rc::meaning(code));
            if hex {
                doc["response_hex"] = json!(frame_dump(wire, m, body));
            }
        }
        Err(e) => {
            doc["response"] = Value::Null;
            doc["error"] = json!(e);
        }
    }
    doc
}

/// What many transactions came to.
#[derive(Default)]
struct Tally {
    codes: BTreeMap<String, u64>,
    failed: BTreeMap<String, u64>,
    mismatched: u64,
    latencies: Vec<Duration>,
}

async fn many(args: &SendArgs, target: &Target, base: u32) -> anyhow::Result<ExitCode> {
    let args = Arc::new(args.clone());
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for worker in 0..args.concurrency.min(args.count) {
        let (args, wire, addr) = (args.clone(), target.wire.clone(), target.addr);
        tasks.spawn(async move {
            let mut tally = Tally::default();
            let mut conn = connect(&Target {
                addr,
                wire: wire.clone(),
            })
            .await?;
            let mut i = worker;
            while i < args.count {
                let stan = (base + i) % 1_000_000;
                for x in transaction(&args, &mut conn, &wire.spec, stan).await? {
                    tally.add(&x);
                }
                i += args.concurrency;
            }
            anyhow::Ok(tally)
        });
    }
    let mut total = Tally::default();
    while let Some(joined) = tasks.join_next().await {
        total.merge(joined.context("a sending task failed")??);
    }
    let elapsed = started.elapsed();
    let summary = total.summary(&args, target, elapsed);
    let mut out = String::new();
    if args.json {
        say!(out, "{}", serde_json::to_string_pretty(&summary)?);
    } else {
        total.print(&mut out, &summary);
    }
    crate::emit(&out)?;
    Ok(if total.failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

impl Tally {
    fn add(&mut self, x: &Exchange) {
        self.mismatched += u64::from(x.mismatched);
        match &x.response {
            Ok((_, m)) => {
                *self
                    .codes
                    .entry(m.get_str(39).unwrap_or("none").to_owned())
                    .or_default() += 1;
                self.latencies.push(x.elapsed);
            }
            Err(e) => {
                let reason = if e.starts_with("no response within") {
                    "timeout"
                } else {
                    "error"
                };
                *self.failed.entry(reason.into()).or_default() += 1;
            }
        }
    }

    fn merge(&mut self, other: Tally) {
        for (k, v) in other.codes {
            *self.codes.entry(k).or_default() += v;
        }
        for (k, v) in other.failed {
            *self.failed.entry(k).or_default() += v;
        }
        self.mismatched += other.mismatched;
        self.latencies.extend(other.latencies);
    }

    fn summary(&mut self, args: &SendArgs, target: &Target, elapsed: Duration) -> Value {
        self.latencies.sort_unstable();
        let ms = |q: f64| -> f64 {
            if self.latencies.is_empty() {
                return 0.0;
            }
            let i =
                ((self.latencies.len() as f64 * q).ceil() as usize).clamp(1, self.latencies.len());
            (self.latencies[i - 1].as_secs_f64() * 1e6).round() / 1e3
        };
        let exchanges: u64 = self.codes.values().chain(self.failed.values()).sum();
        json!({
            "target": target.addr.to_string(),
            "spec": target.wire.spec.name(),
            "framing": target.wire.framing.to_string(),
            "transactions": args.count,
            "exchanges": exchanges,
            "connections": args.concurrency.min(args.count),
            "seconds": (elapsed.as_secs_f64() * 1e3).round() / 1e3,
            "per_second": (exchanges as f64 / elapsed.as_secs_f64().max(1e-9)).round(),
            "codes": self.codes,
            "timeouts": self.failed.get("timeout").copied().unwrap_or(0),
            "errors": self.failed.get("error").copied().unwrap_or(0),
            "late_responses_skipped": self.mismatched,
            "latency_ms": { "p50": ms(0.5), "p90": ms(0.9), "p99": ms(0.99), "max": ms(1.0) },
        })
    }

    fn print(&self, out: &mut String, s: &Value) {
        say!(
            out,
            "{} transactions ({} exchanges) to {} ({}, {}) on {} connection(s) in {} s: {}/s",
            s["transactions"],
            s["exchanges"],
            target_text(s),
            s["spec"].as_str().unwrap_or(""),
            s["framing"].as_str().unwrap_or(""),
            s["connections"],
            s["seconds"],
            s["per_second"]
        );
        for (code, n) in &self.codes {
            say!(
                out,
                "  rc {code} {:<40} {n}",
                rc::meaning(code).unwrap_or("(no meaning known)")
            );
        }
        say!(
            out,
            "  timeouts {}, errors {}, late responses skipped {}",
            s["timeouts"],
            s["errors"],
            s["late_responses_skipped"]
        );
        let l = &s["latency_ms"];
        say!(
            out,
            "  latency ms: p50 {}  p90 {}  p99 {}  max {}",
            l["p50"],
            l["p90"],
            l["p99"],
            l["max"]
        );
    }
}

fn target_text(s: &Value) -> &str {
    s["target"].as_str().unwrap_or("")
}
