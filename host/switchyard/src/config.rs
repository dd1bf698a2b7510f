//! The switch's configuration file: parsing and validation.
//!
//! Every problem is reported at once, each with its path in the file
//! (`listener[1].pipeline`, `participants.by-port.plugin`, …). Unknown keys
//! are errors, not silently ignored.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use switchyard_iso8583::Spec;
use switchyard_net::Framing;
use switchyard_runtime::{
    BreakerOptions, Capability, FailurePolicy, InstancePolicy, Limits, PluginOptions,
};

/// The embedded default configuration (`config/switchyard.toml`).
pub const DEFAULT_CONFIG: &str = include_str!("../../../config/switchyard.toml");

/// The whole configuration.
#[derive(Debug, Clone, Deserialize)]
pub struct Config {
    /// Switch-wide settings.
    #[serde(default)]
    pub switch: SwitchSection,
    /// Acquirer listeners.
    #[serde(default, rename = "listener")]
    pub listeners: Vec<ListenerConfig>,
    /// WebAssembly plugins, by name.
    #[serde(default)]
    pub plugins: BTreeMap<String, PluginConfig>,
    /// Pipeline participants, by name.
    #[serde(default)]
    pub participants: BTreeMap<String, ParticipantConfig>,
    /// Pipelines, by name.
    #[serde(default)]
    pub pipelines: BTreeMap<String, PipelineConfig>,
    /// Endpoints, by name.
    #[serde(default)]
    pub endpoints: BTreeMap<String, EndpointConfig>,
    /// Message specs, by name: an inline spec table (the format of `docs/codec.md`), or
    /// `file = "PATH"` naming a spec file. Listeners use them by name.
    #[serde(default)]
    pub specs: BTreeMap<String, toml::Table>,
    /// Where relative paths in the file are resolved from.
    #[serde(skip)]
    pub base_dir: PathBuf,
    /// Where the configuration came from (a file's path), for messages.
    #[serde(skip)]
    pub source: String,
    /// Every spec a listener names, loaded and validated (by the listener's `spec` value).
    #[serde(skip)]
    pub loaded_specs: BTreeMap<String, Spec>,
    /// The admin API and the deploy directory.
    #[serde(default)]
    pub admin: AdminSection,
    /// The database and its keys.
    #[serde(default)]
    pub store: StoreSection,
    /// The transaction log.
    #[serde(default)]
    pub tranlog: TranlogSection,
    /// The store-and-forward queue's forwarders.
    #[serde(default)]
    pub saf: SafSection,
    /// Which transactions get the INFO profiler line.
    #[serde(default)]
    pub log: LogSection,
}

/// `[log]`: which transactions get the `switchyard::profiler` INFO line
/// (every transaction's trace is in its tranlog row either way).
#[derive(Debug, Clone, Deserialize)]
pub struct LogSection {
    /// A transaction at least this long in the switch (ms) gets the line;
    /// 0: every transaction.
    #[serde(default = "default_slow_ms")]
    pub slow_ms: u64,
    /// Every transaction gets the line, whatever its time and result.
    #[serde(default)]
    pub every_transaction: bool,
}

impl Default for LogSection {
    fn default() -> LogSection {
        LogSection {
            slow_ms: default_slow_ms(),
            every_transaction: false,
        }
    }
}

fn default_slow_ms() -> u64 {
    100
}

/// Longest `[log] slow_ms`: one hour.
const MAX_SLOW_MS: u64 = 3_600_000;

impl LogSection {
    fn validate(&self, problems: &mut Vec<String>) {
        if self.slow_ms > MAX_SLOW_MS {
            problems.push(format!(
                "log.slow_ms: {} is more than {MAX_SLOW_MS} (one hour)",
                self.slow_ms
            ));
        }
    }
}

/// `[store]`: the embedded SQLite database in `data_dir` (the default), or
/// a PostgreSQL database several nodes share; and the keys.
#[derive(Debug, Clone, Deserialize)]
pub struct StoreSection {
    /// The key-encryption key's file (32 bytes, mode 0600), created on
    /// first start; relative paths are under `data_dir`. On PostgreSQL
    /// every node needs the same file.
    #[serde(default = "default_kek_file")]
    pub kek_file: PathBuf,
    /// `postgres://user[:password]@host:port/dbname`: the shared database
    /// (absent: SQLite in `data_dir`).
    #[serde(default)]
    pub url: Option<String>,
    /// Connections to PostgreSQL per node.
    #[serde(default = "default_pool_size")]
    pub pool_size: usize,
    /// PostgreSQL: a node whose heartbeat is older than this is dead and
    /// taken over by another node (its in-flight transactions reversed).
    #[serde(default = "default_node_lease_ms")]
    pub node_lease_ms: u64,
    /// PostgreSQL over TLS: the PEM certificates of the CA that signed the
    /// server's certificate (relative paths are under the config file's
    /// directory). Set, every connection uses TLS and checks the server's
    /// certificate against the url's host; `sslmode=require` needs it.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
}

impl Default for StoreSection {
    fn default() -> StoreSection {
        StoreSection {
            kek_file: default_kek_file(),
            url: None,
            pool_size: default_pool_size(),
            node_lease_ms: default_node_lease_ms(),
            ca_file: None,
        }
    }
}

fn default_pool_size() -> usize {
    switchyard_store::DEFAULT_POOL_SIZE
}

fn default_node_lease_ms() -> u64 {
    switchyard_store::DEFAULT_NODE_LEASE.as_millis() as u64
}

fn default_kek_file() -> PathBuf {
    PathBuf::from("keys/kek.key")
}

/// `[tranlog]`.
#[derive(Debug, Clone, Deserialize)]
pub struct TranlogSection {
    /// Rows older than this are purged (a row a pending store-and-forward
    /// entry needs is kept).
    #[serde(default = "default_retention_days")]
    pub retention_days: u32,
    /// Memory of the filter that spares each new original a database read
    /// (duplicate and repeat detection), MiB; 0 turns it off. It stays
    /// exact at any size; past about a million new keys per six hours per
    /// 10 MiB it saves fewer reads.
    #[serde(default = "default_duplicate_filter_mib")]
    pub duplicate_filter_mib: usize,
}

impl Default for TranlogSection {
    fn default() -> TranlogSection {
        TranlogSection {
            retention_days: default_retention_days(),
            duplicate_filter_mib: default_duplicate_filter_mib(),
        }
    }
}

fn default_duplicate_filter_mib() -> usize {
    switchyard_store::DEFAULT_DUPLICATE_FILTER_MIB
}

fn default_retention_days() -> u32 {
    400
}

/// `[saf]`: how reversals and advices are delivered.
#[derive(Debug, Clone, Deserialize)]
pub struct SafSection {
    /// Most deliveries in flight at once, per endpoint.
    #[serde(default = "default_saf_concurrency")]
    pub concurrency: usize,
    /// How long a claimed entry is held before another worker may take it,
    /// ms; longer than the longest endpoint timeout.
    #[serde(default = "default_saf_lease_ms")]
    pub lease_ms: u64,
}

impl Default for SafSection {
    fn default() -> SafSection {
        SafSection {
            concurrency: default_saf_concurrency(),
            lease_ms: default_saf_lease_ms(),
        }
    }
}

fn default_saf_concurrency() -> usize {
    16
}
fn default_saf_lease_ms() -> u64 {
    30_000
}

/// `[switch]`.
#[derive(Debug, Clone, Deserialize)]
pub struct SwitchSection {
    /// Directory for state: the precompiled plugin cache (`cache/`).
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// Longest wait for in-flight transactions at shutdown.
    #[serde(default = "default_grace_ms")]
    pub shutdown_grace_ms: u64,
    /// This node's id: recorded on every tranlog row, owner of its
    /// store-and-forward leases.
    #[serde(default = "default_node_id")]
    pub node_id: String,
    /// The precompiled plugin cache; relative paths are under `data_dir`.
    #[serde(default = "default_cache_dir")]
    pub cache_dir: PathBuf,
}

impl Default for SwitchSection {
    fn default() -> SwitchSection {
        SwitchSection {
            data_dir: default_data_dir(),
            shutdown_grace_ms: default_grace_ms(),
            node_id: default_node_id(),
            cache_dir: default_cache_dir(),
        }
    }
}

fn default_cache_dir() -> PathBuf {
    PathBuf::from("cache")
}

fn default_node_id() -> String {
    "node-1".into()
}

fn default_data_dir() -> PathBuf {
    PathBuf::from("var")
}
fn default_grace_ms() -> u64 {
    10_000
}

/// `[admin]`: the admin HTTP API (`switchyard plugin list/swap/rollback`
/// talk to it) and the deploy directory the switch watches.
#[derive(Debug, Clone, Deserialize)]
pub struct AdminSection {
    /// Serve the admin API and watch the deploy directory.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Address of the admin API (`ip:port`; port 0 picks a free one).
    #[serde(default = "default_admin_bind")]
    pub bind: String,
    /// The bearer token's file, created (mode 0600) on first start;
    /// relative paths are under `data_dir`.
    #[serde(default = "default_token_file")]
    pub token_file: PathBuf,
    /// The deploy directory (`NAME.wasm` dropped there swaps plugin NAME);
    /// relative paths are under `data_dir`; empty disables it.
    #[serde(default = "default_deploy_dir")]
    pub deploy_dir: PathBuf,
    /// How often the deploy directory is scanned, ms.
    #[serde(default = "default_deploy_poll_ms")]
    pub deploy_poll_ms: u64,
    /// Largest component a swap request may carry, MiB.
    #[serde(default = "default_max_upload_mib")]
    pub max_upload_mib: u64,
    /// The HTTPS certificate chain (PEM); with `tls_key`. Both empty: a
    /// self-signed pair made on first start in `<data_dir>/admin/`.
    #[serde(default)]
    pub tls_cert: PathBuf,
    /// The HTTPS private key (PEM).
    #[serde(default)]
    pub tls_key: PathBuf,
    /// Every user must enrol TOTP two-factor at first sign-in.
    #[serde(default)]
    pub require_totp: bool,
    /// Minutes idle after which a session must sign in again.
    #[serde(default = "default_session_idle_minutes")]
    pub session_idle_minutes: u64,
    /// Days after which a password must be changed at the next sign-in.
    #[serde(default = "default_password_max_age_days")]
    pub password_max_age_days: u64,
    /// Failed sign-ins in a row that lock an account.
    #[serde(default = "default_lockout_failures")]
    pub lockout_failures: u32,
    /// How long a locked account stays locked, minutes.
    #[serde(default = "default_lockout_minutes")]
    pub lockout_minutes: u64,
    /// Seconds between webhook delivery attempts: the first is the wait
    /// before the first attempt; after the last the delivery has failed.
    #[serde(default = "default_webhook_retry_seconds")]
    pub webhook_retry_seconds: Vec<u64>,
    /// `[[admin.webhooks]]`: subscriptions of client systems.
    #[serde(default)]
    pub webhooks: Vec<WebhookConfig>,
    /// `[[admin.alerts]]`: audit events that also become webhooks.
    #[serde(default)]
    pub alerts: Vec<AlertConfig>,
}

/// One `[[admin.webhooks]]` subscription.
#[derive(Debug, Clone, Deserialize)]
pub struct WebhookConfig {
    /// Its name (unique).
    pub name: String,
    /// Where events are POSTed.
    pub url: String,
    /// The signing secret, `whsec_` and base64.
    pub secret: String,
    /// Whose events (default `default`).
    #[serde(default = "default_tenant")]
    pub tenant: String,
    /// Event types, or `["*"]` for all.
    pub events: Vec<String>,
}

/// One `[[admin.alerts]]` rule.
#[derive(Debug, Clone, Deserialize)]
pub struct AlertConfig {
    /// Audit event types it matches (e.g. `login.failed`).
    pub events: Vec<String>,
    /// Only this outcome (`success` or `failure`); absent: both.
    #[serde(default)]
    pub outcome: Option<String>,
    /// Only this tenant's events; absent: all.
    #[serde(default)]
    pub tenant: Option<String>,
}

fn default_session_idle_minutes() -> u64 {
    15
}
fn default_password_max_age_days() -> u64 {
    90
}
fn default_lockout_failures() -> u32 {
    10
}
fn default_lockout_minutes() -> u64 {
    30
}
fn default_webhook_retry_seconds() -> Vec<u64> {
    vec![0, 5, 300, 1800, 7200, 18000, 36000, 36000]
}

impl Default for AdminSection {
    fn default() -> AdminSection {
        AdminSection {
            enabled: true,
            bind: default_admin_bind(),
            token_file: default_token_file(),
            deploy_dir: default_deploy_dir(),
            deploy_poll_ms: default_deploy_poll_ms(),
            max_upload_mib: default_max_upload_mib(),
            tls_cert: PathBuf::new(),
            tls_key: PathBuf::new(),
            require_totp: false,
            session_idle_minutes: default_session_idle_minutes(),
            password_max_age_days: default_password_max_age_days(),
            lockout_failures: default_lockout_failures(),
            lockout_minutes: default_lockout_minutes(),
            webhook_retry_seconds: default_webhook_retry_seconds(),
            webhooks: Vec::new(),
            alerts: Vec::new(),
        }
    }
}

fn default_true() -> bool {
    true
}
fn default_admin_bind() -> String {
    "127.0.0.1:5080".into()
}
fn default_token_file() -> PathBuf {
    PathBuf::from("admin.token")
}
fn default_deploy_dir() -> PathBuf {
    PathBuf::from("deploy")
}
fn default_deploy_poll_ms() -> u64 {
    1000
}
fn default_max_upload_mib() -> u64 {
    32
}

impl AdminSection {
    /// The address the admin API binds.
    pub fn bind_addr(&self) -> Result<SocketAddr, String> {
        self.bind
            .parse()
            .map_err(|e| format!("{:?} is not an address (ip:port): {e}", self.bind))
    }

    fn validate(&self, problems: &mut Vec<String>) {
        if let Err(e) = self.bind_addr() {
            problems.push(format!("admin.bind: {e}"));
        }
        if self.token_file.as_os_str().is_empty() {
            problems.push("admin.token_file: must not be empty".into());
        }
        if !(100..=60_000).contains(&self.deploy_poll_ms) {
            problems.push("admin.deploy_poll_ms: must be 100..=60000".into());
        }
        if self.max_upload_mib == 0 || self.max_upload_mib > 1024 {
            problems.push("admin.max_upload_mib: must be 1..=1024".into());
        }
        if self.tls_cert.as_os_str().is_empty() != self.tls_key.as_os_str().is_empty() {
            problems.push("admin.tls_cert, admin.tls_key: give both or neither".into());
        }
        if !(1..=1440).contains(&self.session_idle_minutes) {
            problems.push("admin.session_idle_minutes: must be 1..=1440".into());
        }
        if !(1..=365).contains(&self.password_max_age_days) {
            problems.push("admin.password_max_age_days: must be 1..=365".into());
        }
        if !(1..=100).contains(&self.lockout_failures) {
            problems.push("admin.lockout_failures: must be 1..=100".into());
        }
        if !(1..=1440).contains(&self.lockout_minutes) {
            problems.push("admin.lockout_minutes: must be 1..=1440".into());
        }
        if self.webhook_retry_seconds.is_empty()
            || self.webhook_retry_seconds.len() > 32
            || self.webhook_retry_seconds.iter().any(|&s| s > 86_400)
        {
            problems
                .push("admin.webhook_retry_seconds: 1 to 32 waits of at most 86400 s each".into());
        }
        self.validate_webhooks(problems);
        for (i, a) in self.alerts.iter().enumerate() {
            if a.events.is_empty() {
                problems.push(format!("admin.alerts[{i}].events: name at least one event"));
            }
            if let Some(o) = &a.outcome
                && o != "success"
                && o != "failure"
            {
                problems.push(format!(
                    "admin.alerts[{i}].outcome: {o:?} is not success or failure"
                ));
            }
        }
    }

    fn validate_webhooks(&self, problems: &mut Vec<String>) {
        let mut names = std::collections::HashSet::new();
        for (i, w) in self.webhooks.iter().enumerate() {
            let at = format!("admin.webhooks[{i}]");
            if w.name.is_empty() || !names.insert(w.name.as_str()) {
                problems.push(format!("{at}.name: {:?} is empty or used twice", w.name));
            }
            if !(w.url.starts_with("https://") || w.url.starts_with("http://")) {
                problems.push(format!("{at}.url: {:?} is not an http(s) URL", w.url));
            }
            let key = w.secret.strip_prefix("whsec_").unwrap_or("");
            if key.len() < 24 {
                problems.push(format!(
                    "{at}.secret: must be whsec_ followed by base64 (at least 18 bytes)"
                ));
            }
            if w.events.is_empty() {
                problems.push(format!("{at}.events: name at least one event, or \"*\""));
            }
        }
    }
}

/// `[[listener]]`.
#[derive(Debug, Clone, Deserialize)]
pub struct ListenerConfig {
    /// Unique name.
    pub name: String,
    /// The port: the `PORT` variable, and the bound port unless `bind` says otherwise.
    pub port: u16,
    /// Address to bind; default `127.0.0.1:<port>`.
    pub bind: Option<String>,
    /// Tenant of its transactions.
    #[serde(default = "default_tenant")]
    pub tenant: String,
    /// Pipeline its requests run through.
    pub pipeline: String,
    /// Length framing: a header (`nac`/`2b`, `3b`, `4b`, `2a`, `3a`, `4a`, `2bcd`, `visa`),
    /// then `+self` (the header counts itself) and/or `+tpdu` (a 5-byte TPDU follows it,
    /// swapped in responses).
    #[serde(default = "default_framing")]
    pub framing: String,
    /// Message spec: a built-in name, the name of a `[specs.NAME]` table, or the path of a
    /// spec file (ending in `.toml`).
    #[serde(default = "default_spec")]
    pub spec: String,
    /// Largest frame in bytes.
    #[serde(default = "default_max_frame")]
    pub max_frame: usize,
    /// Idle connections are closed after this long.
    #[serde(default = "default_idle_ms")]
    pub idle_timeout_ms: u64,
    /// Most requests in flight per connection.
    #[serde(default = "default_in_flight")]
    pub max_in_flight: usize,
    /// Most connections at once; one more is accepted and closed at once.
    #[serde(default = "default_connections")]
    pub max_connections: usize,
    /// A connection without one complete frame this long after it opened
    /// is closed (at most `idle_timeout_ms`).
    #[serde(default = "default_first_frame_ms")]
    pub first_frame_ms: u64,
    /// Most connections at once from one IP address; 0: no limit.
    #[serde(default = "default_connections_per_peer")]
    pub max_connections_per_peer: usize,
    /// `[listener.tls]`: TLS (mutual TLS with `client_ca`); see `tls_config`.
    #[serde(default)]
    pub tls: Option<crate::tls_config::ListenerTls>,
    /// Serve plain TCP on a non-loopback address (needed there without `tls`).
    #[serde(default)]
    pub plaintext: bool,
}

fn default_tenant() -> String {
    "default".into()
}
fn default_framing() -> String {
    "nac".into()
}
fn default_spec() -> String {
    "iso87-ascii".into()
}
fn default_max_frame() -> usize {
    8192
}
fn default_idle_ms() -> u64 {
    300_000
}
fn default_in_flight() -> usize {
    128
}
fn default_connections() -> usize {
    1024
}
fn default_first_frame_ms() -> u64 {
    10_000
}
fn default_connections_per_peer() -> usize {
    64
}

/// `[plugins.NAME]`.
#[derive(Debug, Clone, Deserialize)]
pub struct PluginConfig {
    /// `builtin:NAME` or a path to a `.wasm` component.
    pub file: String,
    /// Memory cap per instance, MiB.
    #[serde(default = "default_memory_mib")]
    pub memory_mib: u64,
    /// Per-call deadline, ms.
    #[serde(default = "default_deadline_ms")]
    pub deadline_ms: u64,
    /// Fuel per call (roughly, wasm instructions); unset meters nothing.
    pub fuel: Option<u64>,
    /// Wasm stack limit per call, KiB.
    #[serde(default = "default_stack_kib")]
    pub stack_kib: u64,
    /// Largest table per instance, elements.
    #[serde(default = "default_table_elements")]
    pub table_elements: u64,
    /// Most core instances, tables and memories per component instance.
    #[serde(default = "default_max_instances")]
    pub max_instances: u64,
    /// `reuse` (long-lived instances per tenant) or `fresh` (one per transaction).
    #[serde(default = "default_instance_policy")]
    pub instances: String,
    /// `reuse`: calls before an instance is retired.
    #[serde(default = "default_max_calls")]
    pub max_calls: u64,
    /// `reuse`: linear memory (MiB) past which an instance is retired;
    /// default three quarters of `memory_mib`.
    pub recycle_memory_mib: Option<u64>,
    /// `required` (a failure aborts with 96) or `optional` (logged, skipped).
    #[serde(default = "default_failure")]
    pub failure: String,
    /// Host capabilities it may import.
    #[serde(default = "default_grants")]
    pub grants: Vec<String>,
    /// Circuit breaker: failed calls (trap, deadline, memory, fuel) within
    /// `breaker_window_ms` that open it; 0 turns it off.
    #[serde(default = "default_breaker_failures")]
    pub breaker_failures: u32,
    /// Circuit breaker: the window of `breaker_failures`, ms.
    #[serde(default = "default_breaker_window_ms")]
    pub breaker_window_ms: u64,
    /// Circuit breaker: how long an open breaker refuses calls, ms.
    #[serde(default = "default_breaker_cooldown_ms")]
    pub breaker_cooldown_ms: u64,
    /// Settings every participant of this plugin gets (a participant's own
    /// `config` overrides them key by key).
    #[serde(default)]
    pub config: toml::Table,
}

fn default_memory_mib() -> u64 {
    16
}
fn default_deadline_ms() -> u64 {
    50
}
fn default_stack_kib() -> u64 {
    512
}
fn default_table_elements() -> u64 {
    10_000
}
fn default_max_instances() -> u64 {
    64
}
fn default_instance_policy() -> String {
    "reuse".into()
}
fn default_max_calls() -> u64 {
    1_000_000
}
fn default_failure() -> String {
    "required".into()
}
fn default_breaker_failures() -> u32 {
    BreakerOptions::default().failures
}
fn default_breaker_window_ms() -> u64 {
    BreakerOptions::default().window.as_millis() as u64
}
fn default_breaker_cooldown_ms() -> u64 {
    BreakerOptions::default().cooldown.as_millis() as u64
}
fn default_grants() -> Vec<String> {
    ["transaction", "config", "log", "clock"]
        .map(String::from)
        .to_vec()
}

impl PluginConfig {
    /// The runtime's view of these settings (validated first).
    pub fn options(&self) -> PluginOptions {
        let limits = Limits {
            memory_bytes: (self.memory_mib as usize) << 20,
            deadline: std::time::Duration::from_millis(self.deadline_ms),
            fuel: self.fuel,
            stack_bytes: (self.stack_kib as usize) << 10,
            table_elements: self.table_elements as usize,
            instances: self.max_instances as usize,
        };
        let policy = match self.instances.as_str() {
            "fresh" => InstancePolicy::Fresh,
            _ => InstancePolicy::Reuse {
                max_calls: self.max_calls,
                recycle_memory_bytes: self
                    .recycle_memory_mib
                    .map_or(limits.memory_bytes / 4 * 3, |m| (m as usize) << 20),
            },
        };
        PluginOptions {
            limits,
            policy,
            failure: if self.failure == "optional" {
                FailurePolicy::Optional
            } else {
                FailurePolicy::Required
            },
            grants: self
                .grants
                .iter()
                .filter_map(|g| Capability::parse(g))
                .collect(),
            breaker: BreakerOptions {
                failures: self.breaker_failures,
                window: std::time::Duration::from_millis(self.breaker_window_ms),
                cooldown: std::time::Duration::from_millis(self.breaker_cooldown_ms),
            },
        }
    }

    fn validate(&self, at: &str, problems: &mut Vec<String>) {
        if self.memory_mib == 0 || self.memory_mib > 4096 {
            problems.push(format!("{at}.memory_mib: must be 1..=4096"));
        }
        if self.deadline_ms == 0 || self.deadline_ms > 60_000 {
            problems.push(format!("{at}.deadline_ms: must be 1..=60000"));
        }
        if self.fuel == Some(0) {
            problems.push(format!("{at}.fuel: must be above 0 (or unset)"));
        }
        if !(64..=65_536).contains(&self.stack_kib) {
            problems.push(format!("{at}.stack_kib: must be 64..=65536"));
        }
        if self.table_elements == 0 || self.table_elements > 1_000_000 {
            problems.push(format!("{at}.table_elements: must be 1..=1000000"));
        }
        if self.max_instances == 0 || self.max_instances > 10_000 {
            problems.push(format!("{at}.max_instances: must be 1..=10000"));
        }
        if !["reuse", "fresh"].contains(&self.instances.as_str()) {
            problems.push(format!(
                "{at}.instances: {:?} is neither \"reuse\" nor \"fresh\"",
                self.instances
            ));
        }
        if self.max_calls == 0 {
            problems.push(format!("{at}.max_calls: must be above 0"));
        }
        if let Some(m) = self.recycle_memory_mib
            && (m == 0 || m > self.memory_mib)
        {
            problems.push(format!(
                "{at}.recycle_memory_mib: must be 1..=memory_mib ({})",
                self.memory_mib
            ));
        }
        if !["required", "optional"].contains(&self.failure.as_str()) {
            problems.push(format!(
                "{at}.failure: {:?} is neither \"required\" nor \"optional\"",
                self.failure
            ));
        }
        if self.breaker_failures > 10_000 {
            problems.push(format!("{at}.breaker_failures: must be 0..=10000 (0: off)"));
        }
        for (key, ms) in [
            ("breaker_window_ms", self.breaker_window_ms),
            ("breaker_cooldown_ms", self.breaker_cooldown_ms),
        ] {
            if ms == 0 || ms > 86_400_000 {
                problems.push(format!("{at}.{key}: must be 1..=86400000"));
            }
        }
        for g in &self.grants {
            if Capability::parse(g).is_none() {
                problems.push(format!(
                    "{at}.grants: unknown capability {g:?} (capabilities: {})",
                    Capability::ALL.map(Capability::name).join(", ")
                ));
            }
        }
    }
}

/// `[participants.NAME]`: a plugin, or a host step.
#[derive(Debug, Clone, Deserialize)]
pub struct ParticipantConfig {
    /// The plugin this participant runs.
    pub plugin: Option<String>,
    /// Or a host step: `close`, `send`, `log`, `query-endpoint`.
    pub step: Option<String>,
    /// For `query-endpoint`: the endpoint.
    pub endpoint: Option<String>,
    /// The participant's own settings (plugins only).
    #[serde(default)]
    pub config: toml::Table,
}

/// `[pipelines.NAME]`.
#[derive(Debug, Clone, Deserialize)]
pub struct PipelineConfig {
    /// The main list.
    pub participants: Vec<String>,
    /// Groups selectors may choose; a name that is no group selects the
    /// participant of that name alone.
    #[serde(default)]
    pub groups: BTreeMap<String, Vec<String>>,
}

/// `[endpoints.NAME]`.
#[derive(Debug, Clone, Deserialize)]
pub struct EndpointConfig {
    /// `host:port`.
    pub address: String,
    /// Longest wait for a reply, ms.
    #[serde(default = "default_endpoint_timeout")]
    pub timeout_ms: u64,
    /// The formatter plugin.
    pub formatter: String,
    /// The formatter's settings.
    #[serde(default)]
    pub formatter_config: toml::Table,
    /// Length framing of the link (a listener's names; no `+tpdu`: an endpoint's TPDU is
    /// written by its formatter).
    #[serde(default = "default_framing")]
    pub framing: String,
    /// Largest reply frame.
    #[serde(default = "default_max_frame")]
    pub max_frame: usize,
    /// Start the endpoint simulator in-process on `address`.
    #[serde(default)]
    pub simulator: bool,
    /// What the simulator speaks: `iso8583` (endpoint `xxx`'s ISO 8583:1987
    /// behind a TPDU) or `mainframe` (endpoint `yyy`'s EBCDIC records,
    /// docs/mainframe.md).
    #[serde(default)]
    pub simulator_format: SimulatorFormat,
    /// Response codes that acknowledge a reversal or advice (anything else
    /// is retried).
    #[serde(default = "default_ack_codes")]
    pub ack_codes: Vec<String>,
    /// A network-management echo (0800, DE70 301) after this long without
    /// a frame from the endpoint, ms; 0: none. Unanswered within
    /// `timeout_ms`: the link is declared down.
    #[serde(default = "default_echo_ms")]
    pub echo_ms: u64,
    /// First wait before reconnecting a dropped link, ms (doubled each
    /// attempt, with jitter).
    #[serde(default = "default_reconnect_ms")]
    pub reconnect_ms: u64,
    /// Longest wait between reconnect attempts, ms.
    #[serde(default = "default_reconnect_max_ms")]
    pub reconnect_max_ms: u64,
    /// `[endpoints.NAME.tls]`: TLS on the link (pinned CA); see `tls_config`.
    #[serde(default)]
    pub tls: Option<crate::tls_config::EndpointTls>,
}

fn default_echo_ms() -> u64 {
    30_000
}
fn default_reconnect_ms() -> u64 {
    100
}
fn default_reconnect_max_ms() -> u64 {
    30_000
}

/// The wire an in-process (or `switchyard simulate`) endpoint simulator
/// speaks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SimulatorFormat {
    /// ISO 8583:1987, ASCII, behind a 5-byte TPDU (endpoint `xxx`).
    #[default]
    Iso8583,
    /// EBCDIC fixed-position records of docs/mainframe.md (endpoint `yyy`).
    Mainframe,
}

fn default_ack_codes() -> Vec<String> {
    switchyard_net::DEFAULT_ACK_CODES.map(String::from).to_vec()
}

fn default_endpoint_timeout() -> u64 {
    1000
}

/// Host steps a participant may name.
pub const STEPS: &[&str] = &["close", "send", "log", "query-endpoint"];

/// Every problem found in a configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors {
    /// Where the configuration came from.
    pub source: String,
    /// `path: problem`, one per problem.
    pub problems: Vec<String>,
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{} has {} problem(s):", self.source, self.problems.len())?;
        for p in &self.problems {
            writeln!(f, "  - {p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

impl Config {
    /// The embedded default configuration.
    pub fn default_config() -> Config {
        Config::parse(
            DEFAULT_CONFIG,
            "the embedded default config",
            Path::new("."),
        )
        .expect("the embedded default config is valid")
    }

    /// The configuration file at `path`, or the embedded default when none is given.
    pub fn load_or_default(path: Option<&Path>) -> Result<Config, ConfigErrors> {
        match path {
            Some(p) => Config::load(p),
            None => Ok(Config::default_config()),
        }
    }

    /// Reads and validates a configuration file; relative paths in it are
    /// resolved from the file's directory.
    pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigErrors {
            source: path.display().to_string(),
            problems: vec![format!("cannot read the file: {e}")],
        })?;
        let base = path.parent().unwrap_or(Path::new(".")).to_owned();
        Config::parse(&text, &path.display().to_string(), &base)
    }

    /// Parses and validates configuration text.
    pub fn parse(text: &str, source: &str, base_dir: &Path) -> Result<Config, ConfigErrors> {
        let mut problems = Vec::new();
        let de = toml::Deserializer::parse(text).map_err(|e| ConfigErrors {
            source: source.into(),
            problems: vec![e.to_string().trim().to_owned()],
        })?;
        let mut config: Config = serde_ignored::deserialize(de, |path| {
            problems.push(format!("{}: unknown key", crate::plan::serde_path(&path)));
        })
        .map_err(|e| ConfigErrors {
            source: source.into(),
            problems: vec![e.to_string().trim().to_owned()],
        })?;
        config.base_dir = base_dir.to_owned();
        config.source = source.to_owned();
        config.validate(&mut problems);
        config.loaded_specs = config.load_specs(&mut problems);
        // What only the resolved plan shows (responses a spec cannot encode, …).
        crate::plan::Plan::add_problems(&config, &mut problems);
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(ConfigErrors {
                source: source.into(),
                problems,
            })
        }
    }

    /// Resolves a path from the file against its directory.
    pub fn resolve(&self, path: &Path) -> PathBuf {
        if path.is_absolute() {
            path.to_owned()
        } else {
            self.base_dir.join(path)
        }
    }

    /// The state directory (`[switch] data_dir`, resolved).
    pub fn data_dir(&self) -> PathBuf {
        self.resolve(&self.switch.data_dir)
    }

    /// The admin server's certificate: `[admin] tls_cert`, else the
    /// self-signed one in `<data_dir>/admin/cert.pem`.
    pub fn admin_cert_path(&self) -> PathBuf {
        match self.admin.tls_cert.as_os_str().is_empty() {
            true => self.data_dir().join("admin/cert.pem"),
            false => self.data_dir().join(&self.admin.tls_cert),
        }
    }

    /// The admin token's file (`[admin] token_file`, under `data_dir` when relative).
    pub fn admin_token_path(&self) -> PathBuf {
        self.data_dir().join(&self.admin.token_file)
    }

    /// The deploy directory (`[admin] deploy_dir`, under `data_dir` when
    /// relative), or `None` when it is disabled.
    pub fn deploy_dir(&self) -> Option<PathBuf> {
        (!self.admin.deploy_dir.as_os_str().is_empty())
            .then(|| self.data_dir().join(&self.admin.deploy_dir))
    }

    /// The spec a listener speaks (loaded and validated by [`Config::parse`]).
    pub fn listener_spec(&self, listener: &ListenerConfig) -> Option<Spec> {
        self.loaded_specs
            .get(&listener.spec)
            .cloned()
            .or_else(|| Spec::builtin(&listener.spec))
    }

    /// Loads every spec a listener names, and every `[specs.NAME]` table; problems are
    /// reported with their path.
    fn load_specs(&self, problems: &mut Vec<String>) -> BTreeMap<String, Spec> {
        let mut loaded = BTreeMap::new();
        let mut tables = BTreeMap::new();
        for (name, table) in &self.specs {
            let at = format!("specs.{name}");
            if Spec::builtin(name).is_some() {
                problems.push(format!(
                    "{at}: {name:?} is the name of a built-in spec; choose another"
                ));
                continue;
            }
            match self.load_spec_table(&at, table) {
                Ok(spec) => {
                    tables.insert(name.clone(), spec.with_name(name.clone()));
                }
                Err(p) => problems.extend(p),
            }
        }
        for (i, l) in self.listeners.iter().enumerate() {
            let at = format!("listener[{i}].spec");
            if loaded.contains_key(&l.spec) {
                continue;
            }
            if let Some(spec) = tables.get(&l.spec) {
                loaded.insert(l.spec.clone(), spec.clone());
            } else if let Some(spec) = Spec::builtin(&l.spec) {
                loaded.insert(l.spec.clone(), spec);
            } else if l.spec.ends_with(".toml") {
                let path = self.resolve(Path::new(&l.spec));
                match self.load_spec_file(&path, &at) {
                    Ok(spec) => {
                        loaded.insert(l.spec.clone(), spec);
                    }
                    Err(p) => problems.extend(p),
                }
            } else {
                problems.push(format!(
                    "{at}: unknown spec {:?} (built in: {}; defined: {})",
                    l.spec,
                    Spec::builtin_names().join(", "),
                    list(self.specs.keys())
                ));
            }
        }
        loaded
    }

    /// A `[specs.NAME]` table: inline, or `file = "PATH"`.
    fn load_spec_table(&self, at: &str, table: &toml::Table) -> Result<Spec, Vec<String>> {
        match table.get("file") {
            Some(toml::Value::String(file)) if table.len() == 1 => {
                let path = self.resolve(Path::new(file));
                self.load_spec_file(&path, &format!("{at}.file"))
            }
            Some(_) if table.len() == 1 => {
                Err(vec![format!("{at}.file: must be a path (a string)")])
            }
            _ => Spec::deserialize(toml::Value::Table(table.clone()))
                .map_err(|e| vec![format!("{at}: {}", e.message().trim())]),
        }
    }

    /// The spec called `name` as a listener would name it: a built-in name,
    /// a `[specs.NAME]` table of this configuration, or the path of a spec
    /// file (ending in `.toml`, relative to the configuration's directory).
    pub fn find_spec(&self, name: &str) -> Result<Spec, String> {
        if let Some(spec) = self.loaded_specs.get(name) {
            return Ok(spec.clone());
        }
        if let Some(spec) = Spec::builtin(name) {
            return Ok(spec);
        }
        let found = if let Some(table) = self.specs.get(name) {
            self.load_spec_table(&format!("specs.{name}"), table)
                .map(|s| s.with_name(name.to_owned()))
        } else if name.ends_with(".toml") {
            self.load_spec_file(&self.resolve(Path::new(name)), name)
        } else {
            return Err(format!(
                "unknown spec {name:?} (built in: {}; defined: {})",
                Spec::builtin_names().join(", "),
                list(self.specs.keys())
            ));
        };
        found.map_err(|problems| problems.join("; "))
    }

    fn load_spec_file(&self, path: &Path, at: &str) -> Result<Spec, Vec<String>> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| vec![format!("{at}: cannot read {}: {e}", path.display())])?;
        Spec::from_toml_str(&text).map_err(|e| {
            e.problems()
                .iter()
                .map(|p| format!("{at} ({}): {p}", path.display()))
                .collect()
        })
    }

    /// The address a listener binds.
    pub fn listener_bind(listener: &ListenerConfig) -> Result<SocketAddr, String> {
        match &listener.bind {
            Some(b) => b
                .parse()
                .map_err(|e| format!("{b:?} is not an address (ip:port): {e}")),
            None => Ok(SocketAddr::from(([127, 0, 0, 1], listener.port))),
        }
    }

    fn validate(&self, problems: &mut Vec<String>) {
        self.admin.validate(problems);
        self.log.validate(problems);
        self.validate_state(problems);
        if self.listeners.is_empty() {
            problems.push("listener: no listener is configured".into());
        }
        let mut names = HashSet::new();
        let mut binds = HashSet::new();
        for (i, l) in self.listeners.iter().enumerate() {
            let at = format!("listener[{i}]");
            if !names.insert(&l.name) {
                problems.push(format!("{at}.name: listener {:?} is defined twice", l.name));
            }
            match Config::listener_bind(l) {
                Ok(addr) => {
                    if addr.port() != 0 && !binds.insert(addr) {
                        problems.push(format!("{at}.bind: {addr} is used by another listener"));
                    }
                }
                Err(e) => problems.push(format!("{at}.bind: {e}")),
            }
            if !self.pipelines.contains_key(&l.pipeline) {
                problems.push(format!(
                    "{at}.pipeline: pipeline {:?} is not defined (defined: {})",
                    l.pipeline,
                    list(self.pipelines.keys())
                ));
            }
            check_framing(&format!("{at}.framing"), &l.framing, l.max_frame, problems);
            if l.idle_timeout_ms == 0 {
                problems.push(format!("{at}.idle_timeout_ms: must be above 0"));
            }
            if l.max_in_flight == 0 {
                problems.push(format!("{at}.max_in_flight: must be above 0"));
            }
            if l.max_connections == 0 {
                problems.push(format!("{at}.max_connections: must be above 0"));
            }
            if l.first_frame_ms == 0 {
                problems.push(format!("{at}.first_frame_ms: must be above 0"));
            } else if l.first_frame_ms > l.idle_timeout_ms && l.idle_timeout_ms > 0 {
                problems.push(format!(
                    "{at}.first_frame_ms: {} is above idle_timeout_ms ({})",
                    l.first_frame_ms, l.idle_timeout_ms
                ));
            }
            if l.tenant.is_empty() {
                problems.push(format!("{at}.tenant: must not be empty"));
            }
            crate::tls_config::validate_listener(self, &at, l, problems);
        }
        for (name, p) in &self.plugins {
            let at = format!("plugins.{name}");
            match p.file.strip_prefix("builtin:") {
                Some(b) => {
                    if switchyard_bundled_plugins::get(b).is_none() {
                        problems.push(format!(
                            "{at}.file: no bundled plugin {b:?} (bundled: {})",
                            list(switchyard_bundled_plugins::names())
                        ));
                    }
                }
                None => {
                    let path = self.resolve(Path::new(&p.file));
                    if !path.is_file() {
                        problems.push(format!("{at}.file: {} does not exist", path.display()));
                    }
                }
            }
            p.validate(&at, problems);
            check_settings(&format!("{at}.config"), &p.config, problems);
        }
        for (name, p) in &self.participants {
            let at = format!("participants.{name}");
            match (&p.plugin, &p.step) {
                (Some(_), Some(_)) => {
                    problems.push(format!("{at}: set either plugin or step, not both"))
                }
                (None, None) => problems.push(format!("{at}: set plugin or step")),
                (Some(plugin), None) => {
                    if !self.plugins.contains_key(plugin) {
                        problems.push(format!(
                            "{at}.plugin: plugin {plugin:?} is not defined (defined: {})",
                            list(self.plugins.keys())
                        ));
                    }
                    if p.endpoint.is_some() {
                        problems.push(format!("{at}.endpoint: only for step = \"query-endpoint\""));
                    }
                }
                (None, Some(step)) => {
                    if !STEPS.contains(&step.as_str()) {
                        problems.push(format!(
                            "{at}.step: unknown step {step:?} (steps: {})",
                            STEPS.join(", ")
                        ));
                    }
                    match (step.as_str(), &p.endpoint) {
                        ("query-endpoint", None) => problems
                            .push(format!("{at}.endpoint: query-endpoint needs an endpoint")),
                        ("query-endpoint", Some(e)) if !self.endpoints.contains_key(e) => problems
                            .push(format!(
                                "{at}.endpoint: endpoint {e:?} is not defined (defined: {})",
                                list(self.endpoints.keys())
                            )),
                        ("query-endpoint", Some(_)) => {}
                        (_, Some(_)) => problems
                            .push(format!("{at}.endpoint: only for step = \"query-endpoint\"")),
                        _ => {}
                    }
                    if !p.config.is_empty() {
                        problems.push(format!("{at}.config: host steps take no config"));
                    }
                }
            }
            check_settings(&format!("{at}.config"), &p.config, problems);
        }
        for (name, p) in &self.pipelines {
            let at = format!("pipelines.{name}");
            if p.participants.is_empty() {
                problems.push(format!("{at}.participants: must not be empty"));
            }
            let mut check = |path: String, names: &[String]| {
                for (i, n) in names.iter().enumerate() {
                    if !self.participants.contains_key(n) {
                        problems.push(format!(
                            "{path}[{i}]: participant {n:?} is not defined (defined: {})",
                            list(self.participants.keys())
                        ));
                    }
                }
            };
            check(format!("{at}.participants"), &p.participants);
            for (g, members) in &p.groups {
                check(format!("{at}.groups.{g}"), members);
            }
        }
        for (name, e) in &self.endpoints {
            let at = format!("endpoints.{name}");
            crate::tls_config::validate_endpoint(self, &at, e, problems);
            if e.address.parse::<SocketAddr>().is_err()
                && e.address
                    .rsplit_once(':')
                    .is_none_or(|(_, p)| p.parse::<u16>().is_err())
            {
                problems.push(format!("{at}.address: {:?} is not host:port", e.address));
            }
            if e.simulator && e.address.parse::<SocketAddr>().is_err() {
                problems.push(format!(
                    "{at}.address: the in-process simulator needs an ip:port address, not {:?}",
                    e.address
                ));
            }
            if e.timeout_ms == 0 {
                problems.push(format!("{at}.timeout_ms: must be above 0"));
            }
            if e.reconnect_ms == 0 {
                problems.push(format!("{at}.reconnect_ms: must be above 0"));
            } else if e.reconnect_max_ms < e.reconnect_ms {
                problems.push(format!(
                    "{at}.reconnect_max_ms: {} is below reconnect_ms ({})",
                    e.reconnect_max_ms, e.reconnect_ms
                ));
            }
            if !self.plugins.contains_key(&e.formatter) {
                problems.push(format!(
                    "{at}.formatter: plugin {:?} is not defined (defined: {})",
                    e.formatter,
                    list(self.plugins.keys())
                ));
            }
            check_framing(&format!("{at}.framing"), &e.framing, e.max_frame, problems);
            if Framing::parse(&e.framing).is_some_and(|f| f.tpdu()) {
                problems.push(format!(
                    "{at}.framing: +tpdu is for listeners; an endpoint's TPDU is written by its formatter"
                ));
            }
            check_settings(
                &format!("{at}.formatter_config"),
                &e.formatter_config,
                problems,
            );
        }
    }
}

impl Config {
    /// `[switch] node_id`, `[store]`, `[tranlog]`, `[saf]`.
    fn validate_state(&self, problems: &mut Vec<String>) {
        let node = &self.switch.node_id;
        if node.is_empty()
            || node.len() > 64
            || !node
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        {
            problems.push(format!(
                "switch.node_id: {node:?} must be 1 to 64 letters, digits, '-', '_' or '.'"
            ));
        }
        if self.store.kek_file.as_os_str().is_empty() {
            problems.push("store.kek_file: must not be empty".into());
        }
        self.validate_store_url(problems);
        if !(1..=36_500).contains(&self.tranlog.retention_days) {
            problems.push("tranlog.retention_days: must be 1..=36500".into());
        }
        if self.tranlog.duplicate_filter_mib > 16_384 {
            problems.push("tranlog.duplicate_filter_mib: must be 0..=16384".into());
        }
        if !(1..=1024).contains(&self.saf.concurrency) {
            problems.push("saf.concurrency: must be 1..=1024".into());
        }
        let longest = self
            .endpoints
            .values()
            .map(|e| e.timeout_ms)
            .max()
            .unwrap_or(0);
        if self.saf.lease_ms <= longest || self.saf.lease_ms > 3_600_000 {
            problems.push(format!(
                "saf.lease_ms: must be above the longest endpoint timeout ({longest} ms) and at most 3600000"
            ));
        }
        for (name, e) in &self.endpoints {
            if e.ack_codes.is_empty() || e.ack_codes.iter().any(|c| c.is_empty() || c.len() > 3) {
                problems.push(format!(
                    "endpoints.{name}.ack_codes: one or more response codes of 1 to 3 characters"
                ));
            }
        }
    }

    /// `[store] url`, `ca_file`, `pool_size`, `node_lease_ms`.
    fn validate_store_url(&self, problems: &mut Vec<String>) {
        let s = &self.store;
        if let Some(url) = &s.url {
            let shown = switchyard_store::describe_url(url);
            if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
                problems.push(format!(
                    "store.url: {shown}: must be postgres://user[:password]@host:port/dbname"
                ));
            } else if let Err(e) = switchyard_store::check_url(url) {
                problems.push(format!("store.url: {shown}: {e}"));
            }
        }
        if let Some(ca) = &s.ca_file {
            let path = self.resolve(ca);
            if s.url.is_none() {
                problems.push(format!(
                    "store.ca_file: {}: set without store.url (TLS is for PostgreSQL)",
                    ca.display()
                ));
            } else if !path.is_file() {
                problems.push(format!("store.ca_file: {}: no such file", path.display()));
            }
        }
        if !(1..=256).contains(&s.pool_size) {
            problems.push(format!("store.pool_size: {} must be 1..=256", s.pool_size));
        }
        if !(500..=600_000).contains(&s.node_lease_ms) {
            problems.push(format!(
                "store.node_lease_ms: {} must be 500..=600000",
                s.node_lease_ms
            ));
        }
    }

    /// The PostgreSQL server's CA file (`[store] ca_file`, under the config
    /// file's directory when relative).
    pub fn ca_path(&self) -> Option<PathBuf> {
        self.store.ca_file.as_deref().map(|p| self.resolve(p))
    }

    /// The key-encryption key's file (`[store] kek_file`, under `data_dir`
    /// when relative).
    pub fn kek_path(&self) -> PathBuf {
        self.data_dir().join(&self.store.kek_file)
    }

    /// The precompiled plugin cache (`[switch] cache_dir`, under
    /// `data_dir` when relative).
    pub fn cache_path(&self) -> PathBuf {
        self.data_dir().join(&self.switch.cache_dir)
    }

    /// The database file.
    pub fn db_path(&self) -> PathBuf {
        self.data_dir().join("switchyard.db")
    }
}

fn check_framing(at: &str, name: &str, max_frame: usize, problems: &mut Vec<String>) {
    match Framing::parse(name) {
        None => problems.push(format!(
            "{at}: unknown framing {name:?} (known: {}; each may take +self and/or +tpdu)",
            Framing::NAMES.join(", ")
        )),
        Some(f) => {
            if max_frame == 0 || max_frame > f.max_expressible() {
                problems.push(format!(
                    "{}: max_frame must be 1..={} for framing {name}",
                    at.trim_end_matches(".framing"),
                    f.max_expressible()
                ));
            }
        }
    }
}

/// Participant settings are flat: strings, numbers or booleans.
fn check_settings(at: &str, table: &toml::Table, problems: &mut Vec<String>) {
    for (k, v) in table {
        if matches!(
            v,
            toml::Value::Array(_) | toml::Value::Table(_) | toml::Value::Datetime(_)
        ) {
            problems.push(format!(
                "{at}.{k}: settings are strings, numbers or booleans, not {}",
                v.type_str()
            ));
        }
    }
}

/// Turns a settings table into the key/value pairs plugins read.
pub fn settings(tables: &[&toml::Table]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for table in tables {
        for (k, v) in table.iter() {
            let value = match v {
                toml::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            match out.iter_mut().find(|(key, _)| key == k) {
                Some((_, old)) => *old = value,
                None => out.push((k.clone(), value)),
            }
        }
    }
    out
}

pub(crate) fn list<'a>(names: impl Iterator<Item = &'a (impl AsRef<str> + 'a + ?Sized)>) -> String {
    let v: Vec<&str> = names.map(AsRef::as_ref).collect();
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_config_is_valid() {
        let c = Config::default_config();
        assert_eq!(c.listeners.len(), 4);
        assert_eq!(c.listeners[0].port, 5001);
    }

    #[test]
    fn the_log_section_has_defaults_and_a_bounded_slow_ms() {
        let c = Config::default_config();
        assert_eq!((c.log.slow_ms, c.log.every_transaction), (100, false));
        let plan = crate::plan::Plan::from_config(&c).unwrap();
        assert_eq!(plan.log, switchyard_net::TransactionLog::default());
        let without = DEFAULT_CONFIG
            .replace("[log]\nslow_ms = 100", "# [log]\n# slow_ms = 100")
            .replace("every_transaction = false", "# every_transaction = false");
        assert!(!without.contains("\n[log]"));
        let c = Config::parse(&without, "t", Path::new("/nonexistent")).unwrap();
        assert_eq!((c.log.slow_ms, c.log.every_transaction), (100, false));
        let every = DEFAULT_CONFIG
            .replace("slow_ms = 100 ", "slow_ms = 0 ")
            .replace("every_transaction = false", "every_transaction = true");
        let c = Config::parse(&every, "t", Path::new("/nonexistent")).unwrap();
        assert_eq!((c.log.slow_ms, c.log.every_transaction), (0, true));
        let bad = DEFAULT_CONFIG.replace("slow_ms = 100 ", "slow_ms = 3600001 ");
        let err = Config::parse(&bad, "t", Path::new("/nonexistent"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("log.slow_ms: 3600001 is more than 3600000 (one hour)"),
            "{err}"
        );
    }

    #[test]
    fn the_store_ca_file_needs_a_url_and_an_existing_file() {
        let parse = |store: &str| {
            let text = DEFAULT_CONFIG.replacen("[store]\n", &format!("[store]\n{store}\n"), 1);
            Config::parse(&text, "t", Path::new("/nonexistent")).map(|c| c.ca_path())
        };
        let err = parse("ca_file = \"pg-ca.crt\"").unwrap_err().to_string();
        assert!(
            err.contains("store.ca_file: pg-ca.crt: set without store.url"),
            "{err}"
        );
        let url = "url = \"postgres://sy@127.0.0.1:5432/sy?sslmode=require\"";
        let err = parse(&format!("{url}\nca_file = \"pg-ca.crt\""))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("store.ca_file: /nonexistent/pg-ca.crt: no such file"),
            "{err}"
        );
        assert_eq!(parse(url).unwrap(), None);
    }

    #[test]
    fn admission_and_link_settings_are_checked() {
        let text = crate::config::DEFAULT_CONFIG
            .replacen(
                "idle_timeout_ms = 300000",
                "idle_timeout_ms = 300000\nfirst_frame_ms = 400000\nmax_connections_per_peer = 0",
                1,
            )
            .replacen(
                "timeout_ms = 1000",
                "timeout_ms = 1000\necho_ms = 0\nreconnect_ms = 500\nreconnect_max_ms = 100",
                1,
            );
        let err = Config::parse(&text, "t", Path::new("/nonexistent"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("listener[0].first_frame_ms: 400000 is above idle_timeout_ms (300000)"),
            "{err}"
        );
        assert!(
            err.contains("endpoints.xxx.reconnect_max_ms: 100 is below reconnect_ms (500)"),
            "{err}"
        );
        let c = Config::default_config();
        assert_eq!(
            (
                c.listeners[0].first_frame_ms,
                c.listeners[0].max_connections_per_peer
            ),
            (10_000, 64)
        );
        let xxx = &c.endpoints["xxx"];
        assert_eq!(
            (xxx.echo_ms, xxx.reconnect_ms, xxx.reconnect_max_ms),
            (30_000, 100, 30_000)
        );
    }

    #[test]
    fn every_problem_is_reported_with_its_path() {
        let text = r#"
[[listener]]
name = "a"
port = 5001
pipeline = "nope"
prot = 1
spec = "martian"

[plugins.p]
file = "builtin:nothing"
memory_mib = 0

[participants.x]
plugin = "q"

[participants.y]
step = "teleport"

[pipelines.main]
participants = ["x", "z"]
colour = "red"
"#;
        let err = Config::parse(text, "test.toml", Path::new(".")).unwrap_err();
        let all = err.to_string();
        for needle in [
            "listener[0].prot: unknown key",
            "pipelines.main.colour: unknown key",
            "listener[0].pipeline: pipeline \"nope\" is not defined",
            "listener[0].spec: unknown spec \"martian\"",
            "plugins.p.file: no bundled plugin \"nothing\"",
            "plugins.p.memory_mib",
            "participants.x.plugin: plugin \"q\" is not defined",
            "participants.y.step: unknown step \"teleport\"",
            "pipelines.main.participants[1]: participant \"z\" is not defined",
        ] {
            assert!(all.contains(needle), "missing {needle:?} in:\n{all}");
        }
    }

    /// The default config with its listeners' framing and spec replaced, and `extra` appended.
    fn with_listener(framing: &str, spec: &str, extra: &str) -> String {
        DEFAULT_CONFIG
            .replace("framing = \"nac\"", &format!("framing = {framing:?}"))
            .replace("spec = \"iso87-ascii\"", &format!("spec = {spec:?}"))
            + extra
    }

    #[test]
    fn specs_by_name_inline_or_from_a_file() {
        let dir = std::env::temp_dir().join(format!("switchyard-spec-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("acme.toml"),
            "extends = \"iso87-binary\"\n[fields.2]\nlength = \"LL\"\nmax_len = 19\ncontent = \"n\"\nencoding = \"bcd\"\nlength_encoding = \"bcd\"\npad = \"left-0\"\n",
        )
        .unwrap();
        let inline = "\n[specs.host]\nextends = \"iso93-ascii\"\nbitmap = \"hex\"\n";
        let c = Config::parse(&with_listener("2b+tpdu", "host", inline), "t", &dir).unwrap();
        let spec = c.listener_spec(&c.listeners[0]).unwrap();
        assert_eq!(spec.name(), "host");
        assert_eq!(spec.field(12).unwrap().max_len(), 12);
        assert!(Framing::parse(&c.listeners[0].framing).unwrap().tpdu());

        let by_file = "\n[specs.acme]\nfile = \"acme.toml\"\n";
        let c = Config::parse(&with_listener("4a", "acme", by_file), "t", &dir).unwrap();
        let spec = c.listener_spec(&c.listeners[0]).unwrap();
        assert_eq!(
            spec.field(2).unwrap().pad(),
            switchyard_iso8583::Pad::LeftZero
        );
        let c = Config::parse(&with_listener("visa", "acme.toml", ""), "t", &dir).unwrap();
        assert!(c.listener_spec(&c.listeners[0]).is_some());
        let c = Config::parse(&with_listener("nac", "iso87b", ""), "t", &dir).unwrap();
        assert_eq!(
            c.listener_spec(&c.listeners[0]).unwrap().name(),
            "iso87-binary"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn spec_and_framing_problems_are_reported_with_their_path() {
        let extra = "\n[specs.bad]\nextends = \"iso87-ascii\"\nbitmap = \"octal\"\n\
                     \n[specs.worse]\nfile = \"missing.toml\"\n\
                     \n[specs.fields]\n[specs.fields.fields.2]\nlength = \"LL\"\nmax_len = 120\ncontent = \"n\"\n";
        let text = with_listener("2b+crc", "nowhere", extra)
            .replace("[endpoints.xxx]", "[endpoints.xxx]\nframing = \"4a+tpdu\"");
        let err = Config::parse(&text, "t", Path::new("/nonexistent")).unwrap_err();
        let all = err.to_string();
        for needle in [
            "listener[0].framing: unknown framing \"2b+crc\"",
            "listener[0].spec: unknown spec \"nowhere\" (built in: iso87-ascii, iso87-ascii-hex",
            "specs.bad: unknown variant `octal`",
            "specs.worse.file: cannot read /nonexistent/missing.toml",
            "specs.fields: fields.2: maximum length 120 does not fit a LL ascii length prefix",
            "endpoints.xxx.framing: +tpdu is for listeners",
        ] {
            assert!(all.contains(needle), "missing {needle:?} in:\n{all}");
        }
    }

    #[test]
    fn plugin_policies_and_grants_are_checked() {
        let text = r#"
[[listener]]
name = "a"
port = 5001
pipeline = "main"

[plugins.p]
file = "builtin:validate"
instances = "sometimes"
failure = "maybe"
grants = ["kv", "teleport"]
stack_kib = 1
fuel = 0

[participants.x]
plugin = "p"

[pipelines.main]
participants = ["x"]
"#;
        let all = Config::parse(text, "t.toml", Path::new("."))
            .unwrap_err()
            .to_string();
        for needle in [
            "plugins.p.instances: \"sometimes\" is neither \"reuse\" nor \"fresh\"",
            "plugins.p.failure: \"maybe\" is neither",
            "plugins.p.grants: unknown capability \"teleport\"",
            "plugins.p.stack_kib: must be 64..=65536",
            "plugins.p.fuel: must be above 0",
        ] {
            assert!(all.contains(needle), "missing {needle:?} in:\n{all}");
        }
        let ok = text
            .replace("\"sometimes\"", "\"fresh\"")
            .replace("\"maybe\"", "\"optional\"")
            .replace(", \"teleport\"", "")
            .replace("stack_kib = 1", "stack_kib = 256")
            .replace("fuel = 0", "fuel = 1000000");
        let c = Config::parse(&ok, "t.toml", Path::new(".")).unwrap();
        let o = c.plugins["p"].options();
        assert_eq!(o.policy, InstancePolicy::Fresh);
        assert_eq!(o.failure, FailurePolicy::Optional);
        assert_eq!(o.grants, vec![Capability::Kv]);
        assert_eq!(o.limits.stack_bytes, 256 << 10);
        assert_eq!(o.limits.fuel, Some(1_000_000));
    }

    #[test]
    fn admin_section_defaults_paths_and_problems() {
        let c = Config::parse(DEFAULT_CONFIG, "t", Path::new("/etc/sy")).unwrap();
        assert!(c.admin.enabled);
        assert_eq!(c.admin.bind_addr().unwrap().port(), 5080);
        assert_eq!(c.admin_token_path(), Path::new("/etc/sy/var/admin.token"));
        assert_eq!(c.deploy_dir().unwrap(), Path::new("/etc/sy/var/deploy"));
        let off = DEFAULT_CONFIG.replace("deploy_dir = \"deploy\"", "deploy_dir = \"\"");
        assert_eq!(
            Config::parse(&off, "t", Path::new("."))
                .unwrap()
                .deploy_dir(),
            None
        );

        let bad = DEFAULT_CONFIG
            .replace(
                "bind = \"127.0.0.1:5080\"",
                "bind = \"localhost\"\ncolour = 1",
            )
            .replace(
                "token_file = \"admin.token\"",
                "token_file = \"\"\ndeploy_poll_ms = 5",
            );
        let all = Config::parse(&bad, "t", Path::new("."))
            .unwrap_err()
            .to_string();
        for needle in [
            "admin.bind: \"localhost\" is not an address",
            "admin.colour: unknown key",
            "admin.token_file: must not be empty",
            "admin.deploy_poll_ms: must be 100..=60000",
        ] {
            assert!(all.contains(needle), "missing {needle:?} in:\n{all}");
        }
    }

    #[test]
    fn syntax_errors_name_the_line() {
        let err = Config::parse("[[listener]\nname=", "bad.toml", Path::new(".")).unwrap_err();
        assert!(err.to_string().contains("line 1"), "{err}");
    }

    #[test]
    fn settings_are_flattened_and_overridden_in_order() {
        let a: toml::Table = toml::from_str("limit = \"5000.00\"\ncount = 3\n").unwrap();
        let b: toml::Table = toml::from_str("count = 4\nflag = true\n").unwrap();
        assert_eq!(
            settings(&[&a, &b]),
            vec![
                ("limit".into(), "5000.00".into()),
                ("count".into(), "4".into()),
                ("flag".into(), "true".into())
            ]
        );
    }
}
