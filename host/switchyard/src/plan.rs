//! The plan: a validated [`Config`] resolved into typed values — bound
//! addresses, framings, specs, durations, plugin sources, participants as
//! plugin or host steps — that wiring reads without parsing anything again.
//!
//! [`Plan::from_config`] collects every problem at once, each at its path
//! in the file, in one syntax: the file's keys joined by `.`, an array
//! element as `[i]`, a key that is not bare quoted (`listener[0].pipeline`,
//! `endpoints.xxx.framing`, `plugins.validate.deadline_ms`,
//! `pipelines.main.participants[2]`,
//! `participants.by-port.config."case 5001"`).
//!
//! Beyond what [`Config::parse`] checks, the plan proves what would
//! otherwise show only at the first transaction: that each listener's spec
//! can encode the responses the switch writes (DE39 for every result code
//! and message class, DE38 on approvals) inside the listener's frame.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use switchyard_iso8583::{Message, Mti, Spec};
use switchyard_net::{Framing, TransactionLog};
use switchyard_runtime::PluginOptions;

use crate::config::{
    Config, ConfigErrors, EndpointConfig, ListenerConfig, PluginConfig, SimulatorFormat, settings,
};

/// A configuration resolved for wiring.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The configuration it was resolved from: the serde layer, for
    /// settings whose owners read them from there.
    pub config: Config,
    /// The state directory.
    pub data_dir: PathBuf,
    /// The precompiled plugin cache.
    pub cache_dir: PathBuf,
    /// This node's id.
    pub node_id: String,
    /// Longest wait for in-flight transactions at shutdown.
    pub shutdown_grace: Duration,
    /// `[store]`.
    pub store: StorePlan,
    /// `[tranlog]`.
    pub tranlog: TranlogPlan,
    /// `[saf]`.
    pub saf: SafPlan,
    /// `[log]`: which transactions get the INFO profiler line.
    pub log: TransactionLog,
    /// `[admin]`, unless disabled.
    pub admin: Option<AdminPlan>,
    /// `[[listener]]`, in file order.
    pub listeners: Vec<ListenerPlan>,
    /// `[endpoints.NAME]`.
    pub endpoints: BTreeMap<String, EndpointPlan>,
    /// `[plugins.NAME]`.
    pub plugins: BTreeMap<String, PluginPlan>,
    /// `[participants.NAME]`.
    pub participants: BTreeMap<String, Step>,
    /// `[pipelines.NAME]`.
    pub pipelines: BTreeMap<String, PipelinePlan>,
}

/// `[store]`: where the database and its key-encryption key live.
#[derive(Debug, Clone)]
pub struct StorePlan {
    /// The database file.
    pub db_path: PathBuf,
    /// The key-encryption key's file.
    pub kek_path: PathBuf,
}

/// `[tranlog]`.
#[derive(Debug, Clone)]
pub struct TranlogPlan {
    /// Rows older than this are purged.
    pub retention: Duration,
    /// Memory of the duplicate filter, MiB (0: off).
    pub duplicate_filter_mib: usize,
}

/// `[saf]`.
#[derive(Debug, Clone)]
pub struct SafPlan {
    /// Deliveries in flight per endpoint.
    pub concurrency: usize,
    /// How long a claimed entry is held.
    pub lease: Duration,
}

/// `[admin]`: the operator plane's own typed plan.
pub use switchyard_admin::AdminPlan;

/// One `[[listener]]`.
#[derive(Debug, Clone)]
pub struct ListenerPlan {
    /// Its path in the file: `listener[i]`.
    pub at: String,
    /// Its name.
    pub name: String,
    /// The `PORT` variable.
    pub port: u16,
    /// The address it binds.
    pub bind: SocketAddr,
    /// Tenant of its transactions.
    pub tenant: String,
    /// The pipeline its requests run through (a key of [`Plan::pipelines`]).
    pub pipeline: String,
    /// Its length framing.
    pub framing: Framing,
    /// Its message spec.
    pub spec: Arc<Spec>,
    /// Largest frame, bytes.
    pub max_frame: usize,
    /// Idle connections are closed after this long.
    pub idle_timeout: Duration,
    /// Most requests in flight per connection.
    pub max_in_flight: usize,
    /// Most connections at once.
    pub max_connections: usize,
    /// The file's values, for settings resolved where they are used (TLS,
    /// admission limits).
    pub config: ListenerConfig,
}

/// One `[endpoints.NAME]`.
#[derive(Debug, Clone)]
pub struct EndpointPlan {
    /// `host:port` it connects to (a simulator's actual address replaces it
    /// at start).
    pub address: String,
    /// Its length framing.
    pub framing: Framing,
    /// Longest wait for a reply.
    pub timeout: Duration,
    /// Largest reply frame, bytes.
    pub max_frame: usize,
    /// The formatter plugin (a key of [`Plan::plugins`]).
    pub formatter: String,
    /// The formatter's settings: the plugin's `config` overridden by the
    /// endpoint's `formatter_config`.
    pub formatter_settings: Vec<(String, String)>,
    /// The in-process simulator, when it runs one.
    pub simulator: Option<SimulatorPlan>,
    /// Response codes that acknowledge a reversal or advice.
    pub ack_codes: Vec<String>,
    /// The file's values, for settings resolved where they are used (TLS,
    /// echo).
    pub config: EndpointConfig,
}

/// An in-process endpoint simulator.
#[derive(Debug, Clone, Copy)]
pub struct SimulatorPlan {
    /// Where it listens (unless ports are ephemeral).
    pub bind: SocketAddr,
    /// What it speaks.
    pub format: SimulatorFormat,
}

/// Where a plugin's component comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PluginSource {
    /// Bundled in the binary (`builtin:NAME`).
    Bundled(String),
    /// A `.wasm` file (absolute).
    File(PathBuf),
}

impl std::fmt::Display for PluginSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PluginSource::Bundled(name) => write!(f, "builtin:{name}"),
            PluginSource::File(path) => write!(f, "{}", path.display()),
        }
    }
}

/// One `[plugins.NAME]`.
#[derive(Debug, Clone)]
pub struct PluginPlan {
    /// Its component.
    pub source: PluginSource,
    /// Limits, instance and failure policies, grants.
    pub options: PluginOptions,
    /// The file's values.
    pub config: PluginConfig,
}

/// A participant: a plugin or a host step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// A plugin (participant or selector).
    Plugin {
        /// The plugin (a key of [`Plan::plugins`]).
        plugin: String,
        /// Its settings: the plugin's `config` overridden by the
        /// participant's own.
        settings: Vec<(String, String)>,
    },
    /// A step of the host.
    Host(HostStep),
}

/// The host's own steps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostStep {
    /// `close`: builds the response.
    Close,
    /// `send`: writes the response to the acquirer.
    Send,
    /// `log`: one summary line.
    Log,
    /// `query-endpoint`: the request goes to an endpoint (a key of
    /// [`Plan::endpoints`]).
    QueryEndpoint {
        /// The endpoint.
        endpoint: String,
    },
}

/// One `[pipelines.NAME]`.
#[derive(Debug, Clone)]
pub struct PipelinePlan {
    /// The main list (keys of [`Plan::participants`]).
    pub participants: Vec<String>,
    /// Groups selectors may choose.
    pub groups: BTreeMap<String, Vec<String>>,
}

impl PipelinePlan {
    /// Every participant it may run: the main list, then every group's.
    pub fn members(&self) -> impl Iterator<Item = &str> {
        self.participants
            .iter()
            .chain(self.groups.values().flatten())
            .map(String::as_str)
    }

    /// Whether a selector of this pipeline may select `name`: one of its
    /// groups, or a participant (a name that is no group selects the
    /// participant of that name).
    pub fn selects(&self, name: &str, plan: &Plan) -> bool {
        self.groups.contains_key(name) || plan.participants.contains_key(name)
    }
}

/// Result codes the switch itself writes into a response (the default
/// contract's, the life cycle's, the internal hosts').
const RESULT_CODES: &[&str] = &[
    "00", "05", "12", "13", "14", "15", "25", "30", "51", "54", "61", "65", "91", "94", "96",
];

/// One request of every class a listener answers, ISO 8583:1987 and :1993.
const REQUEST_CLASSES: &[&str] = &[
    "0100", "0200", "0220", "0400", "0420", "0800", "1100", "1200", "1220", "1420", "1804",
];

impl Plan {
    /// Resolves `config`; every problem at once when it cannot be.
    pub fn from_config(config: &Config) -> Result<Plan, ConfigErrors> {
        let mut problems = Vec::new();
        match Plan::resolve(config, &mut problems) {
            Some(plan) if problems.is_empty() => Ok(plan),
            _ => Err(ConfigErrors {
                source: if config.source.is_empty() {
                    "the configuration".into()
                } else {
                    config.source.clone()
                },
                problems,
            }),
        }
    }

    /// The problems [`Plan::from_config`] finds, added to `problems` except
    /// those at a path `problems` already names (what [`Config::parse`]
    /// found first is not said twice).
    pub(crate) fn add_problems(config: &Config, problems: &mut Vec<String>) {
        let mut found = Vec::new();
        let _ = Plan::resolve(config, &mut found);
        let known: Vec<String> = problems.iter().map(|p| path_of(p).to_owned()).collect();
        for p in found {
            if !known.iter().any(|k| related(k, path_of(&p))) {
                problems.push(p);
            }
        }
    }

    /// Resolves every section; `None` when one could not be.
    fn resolve(config: &Config, problems: &mut Vec<String>) -> Option<Plan> {
        let before = problems.len();
        let plugins = resolve_plugins(config, problems);
        let endpoints = resolve_endpoints(config, problems);
        let participants = resolve_participants(config, problems);
        let pipelines = resolve_pipelines(config, &participants, problems);
        let listeners = resolve_listeners(config, &pipelines, problems);
        let admin = resolve_admin(config, problems);
        let plan = Plan {
            config: config.clone(),
            data_dir: config.data_dir(),
            cache_dir: config.cache_path(),
            node_id: config.switch.node_id.clone(),
            shutdown_grace: Duration::from_millis(config.switch.shutdown_grace_ms),
            store: StorePlan {
                db_path: config.db_path(),
                kek_path: config.kek_path(),
            },
            tranlog: TranlogPlan {
                retention: Duration::from_secs(u64::from(config.tranlog.retention_days) * 86_400),
                duplicate_filter_mib: config.tranlog.duplicate_filter_mib,
            },
            saf: SafPlan {
                concurrency: config.saf.concurrency,
                lease: Duration::from_millis(config.saf.lease_ms),
            },
            log: TransactionLog {
                slow: Duration::from_millis(config.log.slow_ms),
                every_transaction: config.log.every_transaction,
            },
            admin,
            listeners,
            endpoints,
            plugins,
            participants,
            pipelines,
        };
        (problems.len() == before).then_some(plan)
    }

    /// The pipeline `listener` runs.
    pub fn pipeline_of(&self, listener: &ListenerPlan) -> Option<&PipelinePlan> {
        self.pipelines.get(&listener.pipeline)
    }
}

/// Whether two paths name the same place, or one lies inside the other
/// (`listener[0]` and `listener[0].spec`).
fn related(a: &str, b: &str) -> bool {
    let inside = |long: &str, short: &str| {
        long.strip_prefix(short)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with(['.', '[']))
    };
    inside(a, b) || inside(b, a)
}

/// The path of a problem: the text before its first `": "`.
pub fn path_of(problem: &str) -> &str {
    problem.split_once(": ").map_or(problem, |(p, _)| p)
}

fn resolve_plugins(config: &Config, problems: &mut Vec<String>) -> BTreeMap<String, PluginPlan> {
    let mut out = BTreeMap::new();
    for (name, p) in &config.plugins {
        let at = format!("plugins.{}", toml_key(name));
        let source = match p.file.strip_prefix("builtin:") {
            Some(b) if switchyard_bundled_plugins::get(b).is_some() => {
                PluginSource::Bundled(b.to_owned())
            }
            Some(b) => {
                problems.push(format!(
                    "{at}.file: no bundled plugin {b:?} (bundled: {})",
                    switchyard_bundled_plugins::names()
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
                continue;
            }
            None => {
                let path = config.resolve(Path::new(&p.file));
                let path = std::path::absolute(&path).unwrap_or(path);
                if !path.is_file() {
                    problems.push(format!("{at}.file: {} does not exist", path.display()));
                    continue;
                }
                PluginSource::File(path)
            }
        };
        let plan = PluginPlan {
            source,
            options: p.options(),
            config: p.clone(),
        };
        out.insert(name.clone(), plan);
    }
    out
}

fn resolve_endpoints(
    config: &Config,
    problems: &mut Vec<String>,
) -> BTreeMap<String, EndpointPlan> {
    let mut out = BTreeMap::new();
    for (name, e) in &config.endpoints {
        let at = format!("endpoints.{}", toml_key(name));
        let framing = Framing::parse(&e.framing);
        if framing.is_none() {
            problems.push(unknown_framing(&format!("{at}.framing"), &e.framing));
        }
        let Some(formatter) = config.plugins.get(&e.formatter) else {
            problems.push(format!(
                "{at}.formatter: plugin {:?} is not defined (defined: {})",
                e.formatter,
                crate::config::list(config.plugins.keys())
            ));
            continue;
        };
        let simulator = match e.simulator {
            false => None,
            true => match e.address.parse::<SocketAddr>() {
                Ok(bind) => Some(SimulatorPlan {
                    bind,
                    format: e.simulator_format,
                }),
                Err(_) => {
                    problems.push(format!(
                        "{at}.address: the in-process simulator needs an ip:port address, not {:?}",
                        e.address
                    ));
                    continue;
                }
            },
        };
        let Some(framing) = framing else { continue };
        out.insert(
            name.clone(),
            EndpointPlan {
                address: e.address.clone(),
                framing,
                timeout: Duration::from_millis(e.timeout_ms),
                max_frame: e.max_frame,
                formatter: e.formatter.clone(),
                formatter_settings: settings(&[&formatter.config, &e.formatter_config]),
                simulator,
                ack_codes: e.ack_codes.clone(),
                config: e.clone(),
            },
        );
    }
    out
}

fn resolve_participants(config: &Config, problems: &mut Vec<String>) -> BTreeMap<String, Step> {
    let mut out = BTreeMap::new();
    for (name, p) in &config.participants {
        let at = format!("participants.{}", toml_key(name));
        let step = match (&p.plugin, p.step.as_deref(), &p.endpoint) {
            (Some(plugin), None, _) => match config.plugins.get(plugin) {
                Some(pc) => Step::Plugin {
                    plugin: plugin.clone(),
                    settings: settings(&[&pc.config, &p.config]),
                },
                None => {
                    problems.push(format!(
                        "{at}.plugin: plugin {plugin:?} is not defined (defined: {})",
                        crate::config::list(config.plugins.keys())
                    ));
                    continue;
                }
            },
            (None, Some("close"), None) => Step::Host(HostStep::Close),
            (None, Some("send"), None) => Step::Host(HostStep::Send),
            (None, Some("log"), None) => Step::Host(HostStep::Log),
            (None, Some("query-endpoint"), Some(e)) if config.endpoints.contains_key(e) => {
                Step::Host(HostStep::QueryEndpoint {
                    endpoint: e.clone(),
                })
            }
            (None, Some("query-endpoint"), Some(e)) => {
                problems.push(format!(
                    "{at}.endpoint: endpoint {e:?} is not defined (defined: {})",
                    crate::config::list(config.endpoints.keys())
                ));
                continue;
            }
            _ => {
                problems.push(format!(
                    "{at}: set plugin, or step (one of {}; endpoint only with query-endpoint)",
                    crate::config::STEPS.join(", ")
                ));
                continue;
            }
        };
        out.insert(name.clone(), step);
    }
    out
}

fn resolve_pipelines(
    config: &Config,
    participants: &BTreeMap<String, Step>,
    problems: &mut Vec<String>,
) -> BTreeMap<String, PipelinePlan> {
    let mut out = BTreeMap::new();
    for (name, p) in &config.pipelines {
        let at = format!("pipelines.{}", toml_key(name));
        let mut ok = true;
        let mut check = |path: String, members: &[String]| {
            for (i, m) in members.iter().enumerate() {
                if !config.participants.contains_key(m) {
                    ok = false;
                    problems.push(format!(
                        "{path}[{i}]: participant {m:?} is not defined (defined: {})",
                        crate::config::list(config.participants.keys())
                    ));
                } else if !participants.contains_key(m) {
                    ok = false; // its own problem is reported at participants.NAME
                }
            }
        };
        check(format!("{at}.participants"), &p.participants);
        for (g, members) in &p.groups {
            check(format!("{at}.groups.{}", toml_key(g)), members);
        }
        if p.participants.is_empty() {
            problems.push(format!("{at}.participants: must not be empty"));
            ok = false;
        }
        if ok {
            let plan = PipelinePlan {
                participants: p.participants.clone(),
                groups: p.groups.clone(),
            };
            out.insert(name.clone(), plan);
        }
    }
    out
}

fn resolve_listeners(
    config: &Config,
    pipelines: &BTreeMap<String, PipelinePlan>,
    problems: &mut Vec<String>,
) -> Vec<ListenerPlan> {
    let mut out = Vec::new();
    for (i, l) in config.listeners.iter().enumerate() {
        let at = format!("listener[{i}]");
        let before = problems.len();
        let bind = Config::listener_bind(l)
            .map_err(|e| problems.push(format!("{at}.bind: {e}")))
            .ok();
        let framing = Framing::parse(&l.framing);
        if framing.is_none() {
            problems.push(unknown_framing(&format!("{at}.framing"), &l.framing));
        }
        let spec = match config.listener_spec(l) {
            Some(s) => Some(s),
            None => match config.find_spec(&l.spec) {
                Ok(s) => Some(s),
                Err(e) => {
                    problems.push(format!("{at}.spec: {e}"));
                    None
                }
            },
        };
        if !config.pipelines.contains_key(&l.pipeline) {
            problems.push(format!(
                "{at}.pipeline: pipeline {:?} is not defined (defined: {})",
                l.pipeline,
                crate::config::list(config.pipelines.keys())
            ));
        }
        let (Some(bind), Some(framing), Some(spec), true) =
            (bind, framing, spec, problems.len() == before)
        else {
            continue;
        };
        let spec = Arc::new(spec);
        responses_encode(&at, l, &spec, framing, problems);
        if !pipelines.contains_key(&l.pipeline) {
            continue; // its problem is reported at pipelines.NAME
        }
        out.push(ListenerPlan {
            at,
            name: l.name.clone(),
            port: l.port,
            bind,
            tenant: l.tenant.clone(),
            pipeline: l.pipeline.clone(),
            framing,
            spec,
            max_frame: l.max_frame,
            idle_timeout: Duration::from_millis(l.idle_timeout_ms),
            max_in_flight: l.max_in_flight,
            max_connections: l.max_connections,
            config: l.clone(),
        });
    }
    out
}

fn resolve_admin(config: &Config, problems: &mut Vec<String>) -> Option<AdminPlan> {
    let a = &config.admin;
    let bind = a
        .bind_addr()
        .map_err(|e| problems.push(format!("admin.bind: {e}")))
        .ok()?;
    let data_dir = config.data_dir();
    let tls = (!a.tls_cert.as_os_str().is_empty())
        .then(|| (data_dir.join(&a.tls_cert), data_dir.join(&a.tls_key)));
    a.enabled.then(|| AdminPlan {
        bind,
        token_path: config.admin_token_path(),
        tls,
        deploy_dir: config.deploy_dir(),
        deploy_poll: Duration::from_millis(a.deploy_poll_ms),
        max_upload: (a.max_upload_mib << 20) as usize,
        policy: crate::admin::policy_of(a),
        webhooks: crate::admin::webhook_settings(a),
        alerts: crate::admin::alert_rules(a),
        node: config.switch.node_id.clone(),
        data_dir,
    })
}

/// Proves that `spec` carries the responses the switch writes on this
/// listener: for each request class and result code, the response (MTI,
/// DE39 — the 1993 action code where the spec's DE39 has three digits —
/// and DE38 on approvals) encodes, and fits `max_frame` and the framing.
fn responses_encode(
    at: &str,
    l: &ListenerConfig,
    spec: &Spec,
    framing: Framing,
    problems: &mut Vec<String>,
) {
    let name = &l.name;
    let field = |n: u16, why: &str| {
        format!(
            "{at}.spec: spec {:?} of listener {name:?} has no DE{n} ({why}): its responses cannot be encoded",
            l.spec
        )
    };
    if !spec.defines(39) {
        problems.push(field(39, "response code"));
        return;
    }
    if !spec.defines(38) {
        problems.push(field(38, "approval code, set on approvals"));
        return;
    }
    let limit = l.max_frame.min(framing.max_expressible());
    let tpdu = if framing.tpdu() { 5 } else { 0 };
    for class in REQUEST_CLASSES {
        let Some(mti) = Mti::new(class).ok().and_then(|m| m.response()) else {
            continue;
        };
        for code in RESULT_CODES {
            let mut response = Message::new(mti);
            response.set(39, Bytes::from_static(code.as_bytes()));
            if *code == "00" {
                response.set(38, Bytes::from_static(b"A1B2C3"));
            }
            let response =
                switchyard_net::listener::action_code(spec, &response).unwrap_or(response);
            let de39 = response.get_str(39).unwrap_or("").to_owned();
            match spec.encode(&response) {
                Err(e) => {
                    problems.push(format!(
                        "{at}.spec: listener {name:?} cannot encode its own {} response with DE39 {de39:?} in spec {:?}: {e}",
                        mti.as_str(),
                        l.spec
                    ));
                    return;
                }
                Ok(bytes) if bytes.len() + tpdu > limit => {
                    problems.push(format!(
                        "{at}.max_frame: a {} response of listener {name:?} takes {} bytes, over the frame's limit of {limit}",
                        mti.as_str(),
                        bytes.len() + tpdu
                    ));
                    return;
                }
                Ok(_) => {}
            }
        }
    }
}

fn unknown_framing(at: &str, name: &str) -> String {
    format!(
        "{at}: unknown framing {name:?} (known: {}; each may take +self and/or +tpdu)",
        Framing::NAMES.join(", ")
    )
}

/// `key` as it is written in a dotted path: bare when it can be, quoted
/// otherwise.
pub fn toml_key(key: &str) -> String {
    let bare = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if bare {
        key.to_owned()
    } else {
        format!("{key:?}")
    }
}

/// A serde path (`serde_ignored`) in the plan's syntax: `listener[0].prot`,
/// not `listener.0.prot`.
pub fn serde_path(path: &serde_ignored::Path<'_>) -> String {
    use serde_ignored::Path as P;
    match path {
        P::Root => String::new(),
        P::Seq { parent, index } => format!("{}[{index}]", serde_path(parent)),
        P::Map { parent, key } => {
            let parent = serde_path(parent);
            if parent.is_empty() {
                toml_key(key)
            } else {
                format!("{parent}.{}", toml_key(key))
            }
        }
        P::Some { parent } | P::NewtypeStruct { parent } | P::NewtypeVariant { parent } => {
            serde_path(parent)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DEFAULT_CONFIG;

    fn plan(text: &str) -> Result<Plan, ConfigErrors> {
        let config = Config::parse(text, "t.toml", Path::new("."))?;
        Plan::from_config(&config)
    }

    /// Every problem of `text`, which must have some.
    fn problems(text: &str) -> String {
        match plan(text) {
            Ok(_) => panic!("the configuration resolved"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn the_default_config_resolves() {
        let p = plan(DEFAULT_CONFIG).unwrap();
        assert_eq!(p.listeners.len(), 4);
        assert_eq!(p.listeners[0].bind, "127.0.0.1:5001".parse().unwrap());
        assert_eq!(p.listeners[0].framing, Framing::Nac);
        assert_eq!(p.listeners[0].spec.name(), "iso87-ascii");
        assert_eq!(p.listeners[0].idle_timeout, Duration::from_secs(300));
        assert_eq!(p.endpoints["yyy"].framing, Framing::Rdw);
        assert_eq!(p.endpoints["xxx"].timeout, Duration::from_secs(1));
        assert!(p.endpoints["xxx"].simulator.is_some());
        assert_eq!(
            p.plugins["validate"].source,
            PluginSource::Bundled("validate".into())
        );
        assert_eq!(
            p.participants["query-xxx"],
            Step::Host(HostStep::QueryEndpoint {
                endpoint: "xxx".into()
            })
        );
        assert_eq!(p.participants["close"], Step::Host(HostStep::Close));
        assert!(matches!(
            &p.participants["local-auth"],
            Step::Plugin { plugin, settings } if plugin == "local-auth"
                && settings == &[("limit".to_owned(), "5000.00".to_owned())]
        ));
        assert_eq!(p.admin.unwrap().bind.port(), 5080);
        assert_eq!(p.saf.lease, Duration::from_secs(30));
    }

    /// The default config with `[specs.bad]` for listener `local`.
    fn with_spec(spec: &str) -> String {
        DEFAULT_CONFIG.replacen("spec = \"iso87-ascii\"", "spec = \"bad\"", 1)
            + "\n[specs.bad]\n"
            + spec
    }

    #[test]
    fn a_spec_without_de39_cannot_answer() {
        let text = with_spec("extends = \"iso87-ascii\"\nremove = [39]\n");
        let all = problems(&text);
        assert!(
            all.contains("listener[0].spec: spec \"bad\" of listener \"local\" has no DE39"),
            "{all}"
        );
    }

    #[test]
    fn a_de39_too_short_for_action_codes_is_found() {
        let text = with_spec(
            "extends = \"iso93-ascii\"\n[specs.bad.fields.39]\nlength = \"fixed\"\nlen = 2\ncontent = \"an\"\n",
        );
        match plan(&text) {
            // A two-character DE39 on a 1993 spec: codes stay two characters, it encodes.
            Ok(_) => {}
            Err(e) => panic!("{e}"),
        }
        let text = with_spec(
            "extends = \"iso87-ascii\"\n[specs.bad.fields.39]\nlength = \"fixed\"\nlen = 1\ncontent = \"an\"\n",
        );
        let all = problems(&text);
        assert!(
            all.contains("listener[0].spec: listener \"local\" cannot encode its own 0110 response with DE39 \"00\""),
            "{all}"
        );
    }

    #[test]
    fn a_frame_too_small_for_a_response_is_found() {
        let text = DEFAULT_CONFIG.replacen("max_frame = 8192", "max_frame = 16", 1);
        let all = problems(&text);
        assert!(
            all.contains("listener[0].max_frame: a 0110 response of listener \"local\" takes"),
            "{all}"
        );
    }

    #[test]
    fn serde_paths_use_brackets_for_array_elements() {
        let text = DEFAULT_CONFIG.replacen("port = 5001", "port = 5001\nprot = 1", 1);
        let all = Config::parse(&text, "t", Path::new("."))
            .unwrap_err()
            .to_string();
        assert!(all.contains("listener[0].prot: unknown key"), "{all}");
        assert!(!all.contains("listener.0"), "{all}");
    }

    #[test]
    fn keys_are_quoted_only_when_they_must_be() {
        assert_eq!(toml_key("limit"), "limit");
        assert_eq!(toml_key("case 5001"), "\"case 5001\"");
        assert_eq!(path_of("a.b[1]: no: really"), "a.b[1]");
    }
}
