//! `switchyard plugin test`: one plugin, in the real runtime, against one
//! message, without a switch.
//!
//! [`run`] loads the component with `switchyard-runtime` (default limits
//! unless told otherwise, no precompiled cache), builds the transaction
//! context a listener would build for the request, and calls the plugin the
//! way the pipeline does:
//!
//! - a participant: `prepare`, then `commit` or `abort` when it joined;
//! - a group selector: `prepare`, `select` after a successful prepare, then
//!   `commit` or `abort` when it joined;
//! - a formatter: `format-request`, then, when it exports
//!   `store-and-forward` (contract 1.2.0), `format-saf` for the reversal of
//!   the same request (reason 68), as an endpoint asks after a timeout; as
//!   [`Role::EndpointFormatter`] it must export it.
//!
//! The [`Report`] says what the plugin did: the outcome, the result code,
//! the response fields and variables it set, the groups it selected, what
//! it logged, how long each call took, and any failure (trap, deadline,
//! memory cap) with its message. A failure is part of the report, not an
//! error: [`HarnessError`] is for plugins that cannot be run at all.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use switchyard_engine::ports::SafKind;
use switchyard_engine::{
    Context, Failure, FailureKind, Formatter, HostVar, Outcome, Participant, SafMessage,
};
use switchyard_iso8583::{Message, Spec};
use switchyard_runtime::{
    Capability, Limits, LoadError, Plugin, PluginOptions, Registry, RegistryBuilder, Role, Runtime,
    RuntimeOptions, Settings, SlotId, WasmFormatter, WasmParticipant,
};
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::SubscriberExt as _;

/// Where a plugin's bytes come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A `.wasm` component on disk.
    File(PathBuf),
    /// A plugin bundled in this binary (`builtin:validate`).
    Builtin(String),
}

impl Source {
    /// `builtin:NAME`, or else a path.
    pub fn parse(text: &str) -> Source {
        match text.strip_prefix("builtin:") {
            Some(name) => Source::Builtin(name.to_owned()),
            None => Source::File(PathBuf::from(text)),
        }
    }

    /// The plugin's name in the report and in its log lines: the file's
    /// stem, or the bundled name.
    pub fn plugin_name(&self) -> String {
        match self {
            Source::File(path) => path
                .file_stem()
                .map_or_else(|| "plugin".to_owned(), |s| s.to_string_lossy().into_owned()),
            Source::Builtin(name) => name.clone(),
        }
    }
}

/// One plugin, one message: what to run.
#[derive(Debug, Clone)]
pub struct Trial {
    /// The plugin.
    pub source: Source,
    /// The role to run it in; `None`: a selector if it exports
    /// `group-selector`, else a participant if it exports `participant`,
    /// else a formatter.
    pub role: Option<Role>,
    /// Its settings (`config = { … }` in a switch's config).
    pub settings: Settings,
    /// The request, as the listener's spec decoded it.
    pub request: Message,
    /// The listener's spec: which fields a response may carry.
    pub spec: Arc<Spec>,
    /// The `TENANT` variable.
    pub tenant: String,
    /// The `LISTENER` variable.
    pub listener: String,
    /// The `PORT` variable.
    pub port: u16,
    /// Variables an earlier participant would have set.
    pub vars: Vec<(String, String)>,
    /// The sandbox limits.
    pub limits: Limits,
    /// How many times to run the transaction (at least once); the runs
    /// after the first reuse the instance and measure the steady state.
    pub repeat: u32,
}

/// Why a plugin could not be run at all.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HarnessError {
    /// `builtin:NAME` names no bundled plugin.
    #[error("{name:?} is not a bundled plugin (bundled: {bundled})")]
    UnknownBuiltin {
        /// The name given.
        name: String,
        /// The bundled names.
        bundled: String,
    },
    /// The runtime refused the plugin: unreadable, not a component, wrong
    /// imports or exports, or it traps when instantiated.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// A variable the host owns was given as a variable.
    #[error("variable {0} is set by the host: give it with --port, --tenant, --listener or --mti")]
    HostVariable(String),
}

/// A call into the plugin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// `participant.prepare`.
    Prepare,
    /// `group-selector.select`.
    Select,
    /// `participant.commit`.
    Commit,
    /// `participant.abort`.
    Abort,
    /// `formatter.format-request`.
    FormatRequest,
    /// `store-and-forward.format-saf`.
    FormatSaf,
}

impl Step {
    /// The call's name as the contract spells it.
    pub const fn name(self) -> &'static str {
        match self {
            Step::Prepare => "prepare",
            Step::Select => "select",
            Step::Commit => "commit",
            Step::Abort => "abort",
            Step::FormatRequest => "format-request",
            Step::FormatSaf => "format-saf",
        }
    }
}

/// One call and how it went.
#[derive(Debug, Clone)]
pub struct Call {
    /// Which call.
    pub step: Step,
    /// Wall-clock time of the call, host side included (the first call of
    /// a run also instantiates the plugin).
    pub elapsed: Duration,
    /// Why it failed, if it did.
    pub failure: Option<Failure>,
}

/// What a formatter built (the payload's bytes are not kept: they carry
/// card data).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundSummary {
    /// Size of the payload, in bytes, without the link's framing.
    pub bytes: usize,
    /// The key the endpoint's reply must carry.
    pub key: String,
}

/// A line the plugin (or the host, about the plugin) logged during the run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// Its level.
    pub level: tracing::Level,
    /// The message, card numbers masked by the host; other fields of the
    /// event appended as `key=value`.
    pub message: String,
}

/// What the plugin did with the message.
#[derive(Debug)]
pub struct Report {
    /// Its name.
    pub plugin: String,
    /// Its version: the first 12 hex digits of its SHA-256.
    pub version: String,
    /// How long loading took (compiling and checking; no cache).
    pub load: Duration,
    /// The role it ran in.
    pub role: Role,
    /// The calls of the first run, in order.
    pub calls: Vec<Call>,
    /// What `prepare` returned, when it returned.
    pub outcome: Option<Outcome>,
    /// The groups `select` named, for a selector that got that far.
    pub groups: Option<Vec<String>>,
    /// What `format-request` built, for a formatter.
    pub outbound: Option<OutboundSummary>,
    /// What `format-saf` built for the reversal of the request, for a
    /// formatter that exports `store-and-forward`.
    pub reversal: Option<OutboundSummary>,
    /// Whether the plugin exports `store-and-forward` (contract 1.2.0): an
    /// endpoint needs it.
    pub store_and_forward: bool,
    /// The result code at the end.
    pub result_code: Option<String>,
    /// Whether the host decided the result code (96: the plugin failed, or
    /// aborted without setting one), as the pipeline does.
    pub result_code_by_host: bool,
    /// The response fields set (the response is otherwise built by the
    /// `close` step, which does not run here).
    pub response: Message,
    /// The variables set, in the order first set (those given included).
    pub vars: Vec<(String, String)>,
    /// The first failure of the run.
    pub failure: Option<Failure>,
    /// What was logged during the first run.
    pub logs: Vec<LogLine>,
    /// `prepare` (or `format-request`) times of the runs after the first.
    pub repeats: Vec<Duration>,
}

impl Report {
    /// Whether the plugin failed: trapped, overran its deadline or memory
    /// cap, or could not be called. A formatter refusing a request with a
    /// reason is an answer, not a failure.
    pub fn failed(&self) -> bool {
        self.failure
            .as_ref()
            .is_some_and(|f| f.kind != FailureKind::Rejected)
    }
}

/// The variables the host sets for every transaction.
const HOST_VARIABLES: [HostVar; 4] = [
    HostVar::Port,
    HostVar::Tenant,
    HostVar::Listener,
    HostVar::Mti,
];

/// Runs a trial.
pub fn run(trial: &Trial) -> Result<Report, HarnessError> {
    for (name, _) in &trial.vars {
        if HOST_VARIABLES.iter().any(|v| v.name() == name) {
            return Err(HarnessError::HostVariable(name.clone()));
        }
    }
    let runtime = Runtime::new(RuntimeOptions {
        counters: Some(Arc::new(switchyard_store::Counters::new(
            switchyard_store::Secret::random(),
        ))),
        ..RuntimeOptions::default()
    })?;
    let name = trial.source.plugin_name();
    let started = Instant::now();
    let options = PluginOptions {
        limits: trial.limits.clone(),
        grants: Capability::ALL.to_vec(),
        ..PluginOptions::default()
    };
    let mut registry = RegistryBuilder::new(runtime, None);
    let slot = match &trial.source {
        Source::File(path) => {
            let bytes = std::fs::read(path).map_err(|e| LoadError::Read {
                plugin: name.clone(),
                path: path.clone(),
                reason: e.to_string(),
            })?;
            registry.load(&name, &bytes, options)?
        }
        Source::Builtin(builtin) => {
            let bytes = switchyard_bundled_plugins::get(builtin).ok_or_else(|| {
                HarnessError::UnknownBuiltin {
                    name: builtin.clone(),
                    bundled: switchyard_bundled_plugins::names()
                        .collect::<Vec<_>>()
                        .join(", "),
                }
            })?;
            registry.load(&name, bytes, options)?
        }
    };
    let registry = registry.build();
    let plugin = registry.current().plugin(slot).clone();
    let load = started.elapsed();
    let role = match trial.role {
        Some(role) => {
            plugin.check_role(role)?;
            role
        }
        None => detect_role(&plugin),
    };
    let mut report = Report {
        plugin: name,
        version: plugin.version().to_owned(),
        load,
        store_and_forward: plugin.exports_store_and_forward(),
        ..Report::empty(role)
    };
    let mut driver = Driver::new(registry, slot, role, trial.settings.clone())?;
    let logs = Arc::new(Mutex::new(Vec::new()));
    let capture = tracing_subscriber::registry().with(Capture(logs.clone()));
    let mut ctx = context(trial);
    tracing::subscriber::with_default(capture, || driver.run(&mut ctx, &mut report));
    report.logs = logs.lock().map(|l| l.clone()).unwrap_or_default();
    report.result_code = ctx.result_code().map(str::to_owned);
    report.vars = ctx
        .vars()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    report.response = std::mem::take(&mut ctx.response);

    if report.failure.is_none() {
        for _ in 1..trial.repeat {
            let mut again = Report::empty(role);
            let mut ctx = context(trial);
            // Logged lines of the repeats are dropped: the first run's show.
            let quiet = tracing_subscriber::registry();
            tracing::subscriber::with_default(quiet, || driver.run(&mut ctx, &mut again));
            if let Some(first) = again.calls.first() {
                report.repeats.push(first.elapsed);
            }
            if again.failure.is_some() {
                report.failure = again.failure;
                break;
            }
        }
    }
    Ok(report)
}

impl Report {
    fn empty(role: Role) -> Report {
        Report {
            plugin: String::new(),
            version: String::new(),
            load: Duration::ZERO,
            role,
            calls: Vec::new(),
            outcome: None,
            groups: None,
            outbound: None,
            reversal: None,
            store_and_forward: false,
            result_code: None,
            result_code_by_host: false,
            response: Message::default(),
            vars: Vec::new(),
            failure: None,
            logs: Vec::new(),
            repeats: Vec::new(),
        }
    }
}

/// The role a plugin plays when none is asked for.
fn detect_role(plugin: &Plugin) -> Role {
    [Role::Selector, Role::Participant]
        .into_iter()
        .find(|&r| plugin.check_role(r).is_ok())
        .unwrap_or(Role::Formatter)
}

/// The context a listener builds for the request.
fn context(trial: &Trial) -> Context {
    let mut ctx = Context::new(
        trial.tenant.as_str().into(),
        trial.listener.as_str().into(),
        trial.port,
        trial.request.clone(),
    );
    ctx.spec = Some(trial.spec.clone());
    for (name, value) in &trial.vars {
        // The host sets this one from the verified client certificate; a
        // trial stands in for a mutual-TLS listener.
        if name == "TLS_CLIENT_SUBJECT" {
            ctx.tls_client_subject = Some(value.as_str().into());
        } else {
            ctx.set_var(name, value.clone());
        }
    }
    ctx
}

/// The plugin as a pipeline step.
enum Driver {
    Participant {
        step: WasmParticipant,
        selector: bool,
    },
    Formatter {
        formatter: WasmFormatter,
        /// It exports `store-and-forward`: build the reversal too.
        reverses: bool,
    },
}

/// The reversal `plugin test` asks a formatter for: the first one after a
/// timeout.
fn timeout_reversal() -> SafMessage {
    SafMessage {
        kind: SafKind::Reversal,
        retransmission: false,
        reason: "68".into(),
    }
}

impl Driver {
    fn new(
        registry: Arc<Registry>,
        slot: SlotId,
        role: Role,
        settings: Settings,
    ) -> Result<Driver, LoadError> {
        Ok(match role {
            Role::Participant | Role::Selector => Driver::Participant {
                step: WasmParticipant::new(registry, slot, role, settings)?,
                selector: role == Role::Selector,
            },
            Role::Formatter => Driver::Formatter {
                reverses: registry.current().plugin(slot).exports_store_and_forward(),
                formatter: WasmFormatter::new(registry, slot, settings)?,
            },
            Role::EndpointFormatter => Driver::Formatter {
                formatter: WasmFormatter::for_endpoint(registry, slot, settings)?,
                reverses: true,
            },
        })
    }

    /// One transaction, with the pipeline's semantics for a pipeline of one.
    fn run(&mut self, ctx: &mut Context, report: &mut Report) {
        match self {
            Driver::Participant { step, selector } => {
                let prepared = timed(report, Step::Prepare, || step.prepare(ctx));
                let outcome = prepared.unwrap_or(Outcome::ABORTED);
                report.outcome = prepared;
                let mut aborting = !outcome.is_prepared();
                if *selector && !aborting {
                    let selected = timed(report, Step::Select, || {
                        step.select(ctx).unwrap_or_else(|| Ok(Vec::new()))
                    });
                    report.groups = selected.clone();
                    aborting = selected.is_none();
                }
                if aborting && (report.failure.is_some() || ctx.result_code().is_none()) {
                    ctx.set_result_code(switchyard_engine::rc::SYSTEM_ERROR);
                    report.result_code_by_host = true;
                }
                if outcome.joins() {
                    if aborting {
                        timed(report, Step::Abort, || step.abort(ctx));
                    } else {
                        timed(report, Step::Commit, || step.commit(ctx));
                    }
                }
            }
            Driver::Formatter {
                formatter,
                reverses,
            } => {
                let summary = |o: switchyard_engine::Outbound| OutboundSummary {
                    bytes: o.payload.len(),
                    key: o.key,
                };
                let out = timed(report, Step::FormatRequest, || {
                    formatter.format_request(ctx)
                });
                report.outbound = out.map(summary);
                if *reverses {
                    let reversal = timed(report, Step::FormatSaf, || {
                        formatter.format_saf(ctx, &timeout_reversal())
                    });
                    report.reversal = reversal.map(summary);
                }
            }
        }
    }
}

/// Times `call`, records it, and keeps the first failure.
fn timed<T>(
    report: &mut Report,
    step: Step,
    call: impl FnOnce() -> Result<T, Failure>,
) -> Option<T> {
    let started = Instant::now();
    let result = call();
    let elapsed = started.elapsed();
    let (value, failure) = match result {
        Ok(v) => (Some(v), None),
        Err(f) => (None, Some(f)),
    };
    if report.failure.is_none() {
        report.failure.clone_from(&failure);
    }
    report.calls.push(Call {
        step,
        elapsed,
        failure,
    });
    value
}

/// Collects the events of a run.
struct Capture(Arc<Mutex<Vec<LogLine>>>);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Capture {
    fn on_event(
        &self,
        event: &tracing::Event<'_>,
        _ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        let mut line = LineVisitor::default();
        event.record(&mut line);
        let mut message = line.message;
        for (k, v) in line.fields {
            message.push_str(&format!(" {k}={v}"));
        }
        if let Ok(mut logs) = self.0.lock() {
            logs.push(LogLine {
                level: *event.metadata().level(),
                message,
            });
        }
    }
}

/// An event's message and fields, less those that identify the plugin
/// (the report does).
#[derive(Default)]
struct LineVisitor {
    message: String,
    fields: Vec<(&'static str, String)>,
}

impl Visit for LineVisitor {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.record_str(field, &format!("{value:?}"));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "message" => self.message = value.to_owned(),
            "plugin" | "tenant" | "stan" => {}
            name => self.fields.push((name, value.to_owned())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::RequestSpec;

    const TEST_PAN: &str = "4761739001010119";

    fn trial(source: &str, request: Message) -> Trial {
        Trial {
            source: Source::parse(source),
            role: None,
            settings: Settings::default(),
            request,
            spec: Arc::new(Spec::iso87_ascii()),
            tenant: "default".into(),
            listener: "test".into(),
            port: 5001,
            vars: Vec::new(),
            limits: Limits::default(),
            repeat: 1,
        }
    }

    fn purchase(amount_minor: u64) -> Message {
        RequestSpec::financial("0200", TEST_PAN, amount_minor, 1)
            .build()
            .unwrap()
    }

    #[test]
    fn a_participant_that_approves_joins_and_is_committed() {
        let report = run(&trial("builtin:local-auth", purchase(1_000))).unwrap();
        assert_eq!(report.role, Role::Participant);
        assert_eq!(report.outcome, Some(Outcome::PREPARED));
        let steps: Vec<Step> = report.calls.iter().map(|c| c.step).collect();
        assert_eq!(steps, [Step::Prepare, Step::Commit]);
        assert_eq!(report.result_code.as_deref(), Some("00"));
        assert_eq!(report.response.get(38).map(<[u8]>::len), Some(6));
        assert!(!report.failed() && !report.result_code_by_host);
    }

    #[test]
    fn a_participant_that_declines_gets_abort_and_keeps_its_code() {
        let report = run(&trial("builtin:local-auth", purchase(600_000))).unwrap();
        assert_eq!(report.outcome, Some(Outcome::ABORTED));
        let steps: Vec<Step> = report.calls.iter().map(|c| c.step).collect();
        assert_eq!(steps, [Step::Prepare, Step::Abort]);
        assert_eq!(report.result_code.as_deref(), Some("61"));
        assert!(!report.result_code_by_host);
    }

    #[test]
    fn a_selector_reports_its_groups() {
        let mut t = trial("builtin:case-switch", purchase(1_000));
        t.settings = Settings(vec![("case 5001".into(), "local-auth close send".into())]);
        let report = run(&t).unwrap();
        assert_eq!(report.role, Role::Selector);
        assert_eq!(
            report.groups.as_deref(),
            Some(&["local-auth".to_owned(), "close".into(), "send".into()][..])
        );
        // Asked to be a plain participant, it is not asked to select.
        t.role = Some(Role::Participant);
        assert_eq!(run(&t).unwrap().groups, None);
    }

    #[test]
    fn a_formatter_reports_size_and_key_only() {
        let report = run(&trial("builtin:formatter-xxx", purchase(1_000))).unwrap();
        assert_eq!(report.role, Role::Formatter);
        assert!(!report.failed());
        let out = report.outbound.as_ref().unwrap();
        assert_eq!(out.key, "0210|000001|TERM0001");
        assert!(out.bytes > 5);
        // It exports store-and-forward: the reversal is built too.
        let steps: Vec<Step> = report.calls.iter().map(|c| c.step).collect();
        assert_eq!(steps, [Step::FormatRequest, Step::FormatSaf]);
        assert!(report.store_and_forward);
        let reversal = report.reversal.as_ref().unwrap();
        assert_eq!(reversal.key, "0430|000001|TERM0001");
        assert!(reversal.bytes > out.bytes, "DE7, DE39 and DE90 added");
    }

    #[test]
    fn an_endpoint_formatter_must_build_reversals() {
        let mut t = trial("builtin:formatter-xxx", purchase(1_000));
        t.role = Some(Role::EndpointFormatter);
        let report = run(&t).unwrap();
        assert_eq!(report.role, Role::EndpointFormatter);
        assert!(report.reversal.is_some());
        // A 1.1.0 formatter is one, but not an endpoint's.
        let v11 = switchyard_bundled_plugins::plugin_path("test-v1-1");
        let mut t = trial(v11.to_str().unwrap(), purchase(1_000));
        let report = run(&t).unwrap();
        assert_eq!(report.role, Role::Formatter);
        assert!(!report.store_and_forward && report.reversal.is_none());
        let steps: Vec<Step> = report.calls.iter().map(|c| c.step).collect();
        assert_eq!(steps, [Step::FormatRequest]);
        t.role = Some(Role::EndpointFormatter);
        let err = run(&t).unwrap_err();
        assert!(
            err.to_string()
                .contains("does not export switchyard:participant/store-and-forward@1.3.0"),
            "{err}"
        );
    }

    #[test]
    fn repeats_are_timed() {
        let mut t = trial("builtin:validate", purchase(1_000));
        t.repeat = 4;
        let report = run(&t).unwrap();
        // validate returns PREPARED|NO_JOIN (0x41).
        assert_eq!(report.outcome, Some(Outcome::from_bits(0x41)));
        assert_eq!(report.repeats.len(), 3);
    }

    #[test]
    fn host_variables_cannot_be_given_as_variables() {
        let mut t = trial("builtin:validate", purchase(1_000));
        t.vars = vec![("PORT".into(), "5002".into())];
        let err = run(&t).unwrap_err();
        assert!(err.to_string().contains("--port"), "{err}");
    }

    #[test]
    fn unknown_bundled_plugins_and_wrong_roles_are_errors() {
        let err = run(&trial("builtin:nothing", purchase(1))).unwrap_err();
        assert!(err.to_string().contains("validate"), "{err}");
        let mut t = trial("builtin:validate", purchase(1));
        t.role = Some(Role::Formatter);
        assert!(matches!(run(&t).unwrap_err(), HarnessError::Load(_)));
    }
}
