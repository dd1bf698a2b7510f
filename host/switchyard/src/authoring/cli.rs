//! The arguments and output of `switchyard plugin new` and `switchyard
//! plugin test`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, anyhow};
use switchyard_iso8583::{Message, Spec};
use switchyard_runtime::{Limits, Role, Settings};

use super::harness::{self, Source, Trial};
use super::scaffold::{self, Kind};
use crate::client::summary;

/// Exit status of `plugin test` when the plugin failed (trap, deadline,
/// memory cap); 1 is for errors (the plugin cannot be loaded, bad arguments).
pub const EXIT_PLUGIN_FAILED: u8 = 2;

/// `switchyard plugin new`.
#[derive(Debug, clap::Args)]
pub struct NewArgs {
    /// The plugin's name: lowercase letters, digits and dashes (`no-refunds`).
    pub name: String,
    /// The crate's directory (default: ./NAME). Must not exist, or be empty.
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// What to create.
    #[arg(long, value_enum, default_value_t = Kind::Participant)]
    pub kind: Kind,
}

/// Creates a plugin crate and says what to do next.
pub fn new(args: NewArgs) -> anyhow::Result<ExitCode> {
    let dir = args.dir.unwrap_or_else(|| PathBuf::from(&args.name));
    let created = scaffold::create(&args.name, &dir, args.kind)?;
    println!(
        "created {} `{}` in {}",
        created.kind,
        created.name,
        created.dir.display()
    );
    println!(
        "  src/lib.rs               the {} and its unit tests",
        created.kind
    );
    println!("  vendor/switchyard-sdk/   the guest SDK (vendored)");
    println!("  wit/                     the WIT contract (vendored)");
    println!("next:");
    println!("  cd {}", created.dir.display());
    println!("  cargo test                                     # native unit tests");
    println!("  cargo build --release --target wasm32-wasip2   # the component");
    println!("  switchyard plugin test {}", created.component);
    Ok(ExitCode::SUCCESS)
}

/// The role given on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RoleArg {
    /// `prepare`, then `commit` or `abort`.
    Participant,
    /// `prepare`, `select`, then `commit` or `abort`.
    Selector,
    /// `format-request`, and `format-saf` (a reversal) when it exports
    /// `store-and-forward`.
    Formatter,
    /// `format-request` and `format-saf` (a reversal): it must export
    /// `store-and-forward`, as an endpoint's formatter must.
    EndpointFormatter,
}

impl From<RoleArg> for Role {
    fn from(role: RoleArg) -> Role {
        match role {
            RoleArg::Participant => Role::Participant,
            RoleArg::Selector => Role::Selector,
            RoleArg::Formatter => Role::Formatter,
            RoleArg::EndpointFormatter => Role::EndpointFormatter,
        }
    }
}

/// `switchyard plugin test`.
#[derive(Debug, clap::Args)]
pub struct TestArgs {
    /// The component: a .wasm file, or builtin:NAME for a bundled plugin.
    pub file: String,
    /// The request as one ISO 8583 message in `--spec` (no length header):
    /// hex digits, or @FILE with the raw bytes. Replaces the message built
    /// from --mti, --pan, --amount, --stan, --expiry, --terminal; --field
    /// and --omit still apply on top.
    #[arg(long, value_name = "HEX|@FILE")]
    pub message: Option<String>,
    /// The request's fields.
    #[command(flatten)]
    pub request: crate::send::MessageArgs,
    /// STAN (DE11).
    #[arg(long, default_value_t = 1)]
    pub stan: u32,
    /// The plugin's setting, KEY=VALUE (repeatable).
    #[arg(long = "config", value_name = "KEY=VALUE")]
    pub config: Vec<String>,
    /// Role to run it in (default: what it exports; a selector if it can).
    #[arg(long, value_enum)]
    pub role: Option<RoleArg>,
    /// The TENANT variable.
    #[arg(long, default_value = "default")]
    pub tenant: String,
    /// The PORT variable (the listener's port).
    #[arg(long, default_value_t = 5001)]
    pub port: u16,
    /// The LISTENER variable.
    #[arg(long, default_value = "test")]
    pub listener: String,
    /// A variable an earlier participant would have set, NAME=VALUE (repeatable).
    #[arg(long = "var", value_name = "NAME=VALUE")]
    pub vars: Vec<String>,
    /// The listener's message spec (a built-in name).
    #[arg(long, default_value = "iso87-ascii")]
    pub spec: String,
    /// Linear memory cap of the instance, MiB.
    #[arg(long, default_value_t = 16)]
    pub memory_mib: u32,
    /// Longest one call may run, ms.
    #[arg(long, default_value_t = 50)]
    pub deadline_ms: u64,
    /// Run the transaction this many times and report the steady-state
    /// time of the first call.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub repeat: u32,
}

/// The message of `--message`: hex digits (spaces and newlines ignored) or
/// `@FILE` with the raw bytes, decoded with `spec`.
fn given_message(spec: &Spec, given: &str) -> anyhow::Result<Message> {
    let bytes = match given.strip_prefix('@') {
        Some(path) => {
            std::fs::read(path).with_context(|| format!("--message: cannot read {path}"))?
        }
        None => {
            let digits: String = given.chars().filter(|c| !c.is_whitespace()).collect();
            hex::decode(&digits).map_err(|e| {
                anyhow!("--message: not hex ({e}); give the message as hex digits or @FILE")
            })?
        }
    };
    spec.decode(bytes::Bytes::from(bytes)).with_context(|| {
        format!(
            "--message: not a message in spec {} (--spec names another)",
            spec.name()
        )
    })
}

/// Splits `KEY=VALUE`.
fn pair<'a>(option: &str, text: &'a str) -> anyhow::Result<(&'a str, &'a str)> {
    text.split_once('=')
        .filter(|(k, _)| !k.is_empty())
        .ok_or_else(|| anyhow!("{option} {text:?}: expected KEY=VALUE"))
}

impl TestArgs {
    /// The trial these arguments describe: the request is built, encoded
    /// with the spec and decoded again, as a listener would hand it over.
    pub fn trial(&self) -> anyhow::Result<Trial> {
        let spec = Spec::builtin(&self.spec).ok_or_else(|| {
            anyhow!(
                "--spec {:?}: unknown spec (built in: {})",
                self.spec,
                Spec::builtin_names().join(", ")
            )
        })?;
        let mut message = match &self.message {
            Some(given) => {
                let mut message = given_message(&spec, given)?;
                for (n, value) in self.request.parsed_fields()? {
                    message
                        .try_set(n, value.into_bytes())
                        .with_context(|| format!("--field {n}"))?;
                }
                message
            }
            None => self.request.request_spec(self.stan)?.build_for(&spec)?,
        };
        for &n in &self.request.omit {
            message.remove(n);
        }
        let frame = spec
            .encode(&message)
            .with_context(|| format!("the request does not encode with spec {}", spec.name()))?;
        let request = spec
            .decode(frame)
            .with_context(|| format!("the request does not decode with spec {}", spec.name()))?;
        let settings = self
            .config
            .iter()
            .map(|c| pair("--config", c).map(|(k, v)| (k.to_owned(), v.to_owned())))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let vars = self
            .vars
            .iter()
            .map(|c| pair("--var", c).map(|(k, v)| (k.to_owned(), v.to_owned())))
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Trial {
            source: Source::parse(&self.file),
            role: self.role.map(Role::from),
            settings: Settings(settings),
            request,
            spec: Arc::new(spec),
            tenant: self.tenant.clone(),
            listener: self.listener.clone(),
            port: self.port,
            vars,
            limits: Limits {
                memory_bytes: (self.memory_mib as usize) << 20,
                deadline: Duration::from_millis(self.deadline_ms),
                ..Limits::default()
            },
            repeat: self.repeat,
        })
    }
}

/// Runs one plugin against one message and prints the report. Exit 0 when
/// the plugin ran, whatever it decided; [`EXIT_PLUGIN_FAILED`] when it
/// failed; an error when it cannot be loaded.
pub fn test(args: TestArgs) -> anyhow::Result<ExitCode> {
    let trial = args.trial()?;
    let report = harness::run(&trial).with_context(|| format!("plugin {}", args.file))?;
    println!("{:10} {}", "request", summary(&trial.request));
    let settings: Vec<String> = trial
        .settings
        .0
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    println!(
        "{:10} {}",
        "config",
        if settings.is_empty() {
            "(none)".to_owned()
        } else {
            settings.join(", ")
        }
    );
    print!("{report}");
    Ok(if report.failed() {
        ExitCode::from(EXIT_PLUGIN_FAILED)
    } else {
        ExitCode::SUCCESS
    })
}
