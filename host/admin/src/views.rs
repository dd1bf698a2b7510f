//! What the admin API says, as JSON documents (served by the API, read back
//! by `switchyard plugin …`) and as Prometheus text.

use std::sync::atomic::Ordering;

use serde::{Deserialize, Serialize};
use switchyard_engine::ports::SwapRecord;
use switchyard_runtime::{FailurePolicy, InstancePolicy, PluginStats, PluginStatus, SwapOutcome};

/// `GET /plugins`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PluginList {
    /// The live generation (one more with every swap or rollback).
    pub generation: u64,
    /// Every plugin, by name.
    pub plugins: Vec<PluginView>,
}

/// One plugin: what runs now, its settings and its metrics.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PluginView {
    /// Name in the config.
    pub name: String,
    /// The live version (12 hex digits of its SHA-256).
    pub version: String,
    /// Its full SHA-256.
    pub sha256: String,
    /// Earlier versions kept for rollback, newest first.
    pub previous: Vec<String>,
    /// The roles pipelines use it in.
    pub roles: Vec<String>,
    /// Sandbox limits.
    pub limits: LimitsView,
    /// `reuse` or `fresh`.
    pub instances: String,
    /// `reuse`: calls before an instance is retired.
    pub max_calls: Option<u64>,
    /// `reuse`: linear memory past which an instance is retired, bytes.
    pub recycle_memory_bytes: Option<u64>,
    /// `required` or `optional`.
    pub failure: String,
    /// Capabilities it may import.
    pub grants: Vec<String>,
    /// Counters across its versions.
    pub metrics: MetricsView,
}

/// A plugin's limits.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LimitsView {
    /// Linear memory cap per instance, bytes.
    pub memory_bytes: u64,
    /// Per-call deadline, ms.
    pub deadline_ms: u64,
    /// Fuel per call (`None`: not metered).
    pub fuel: Option<u64>,
    /// Wasm stack per call, bytes.
    pub stack_bytes: u64,
    /// Table elements per instance.
    pub table_elements: u64,
    /// Core instances, tables and memories per component instance.
    pub instances: u64,
}

/// A plugin's metrics (all its versions).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MetricsView {
    /// Calls made.
    pub calls: u64,
    /// Calls that failed.
    pub failures: u64,
    /// Of those, traps.
    pub traps: u64,
    /// Of those, deadline overruns.
    pub deadline_overruns: u64,
    /// Of those, memory cap hits.
    pub memory_cap_hits: u64,
    /// Of those, fuel exhausted.
    pub fuel_exhausted: u64,
    /// Largest linear memory an instance reached, bytes.
    pub peak_memory_bytes: u64,
    /// Instances created.
    pub instantiations: u64,
    /// Instances retired by policy.
    pub recycled: u64,
    /// Times the circuit breaker opened.
    #[serde(default)]
    pub breaker_opens: u64,
    /// Calls refused because the circuit breaker was open.
    #[serde(default)]
    pub breaker_refused: u64,
    /// Median call time: the upper bound of its histogram bucket, µs
    /// (`None` before the first call).
    pub latency_p50_us: Option<u64>,
    /// 99th percentile, likewise.
    pub latency_p99_us: Option<u64>,
}

/// A swap or rollback, as `POST /plugins/NAME/swap|rollback` answers it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SwapResult {
    /// The plugin.
    pub plugin: String,
    /// `swap`, `rollback`, or `swap (unchanged)`.
    pub action: String,
    /// The version replaced.
    pub old_version: String,
    /// The version now live.
    pub new_version: String,
    /// The generation now live.
    pub generation: u64,
    /// False when the bytes were already live.
    pub changed: bool,
    /// Who asked.
    pub actor: String,
}

/// One entry of `GET /swaps`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SwapEntry {
    /// When, ms since the Unix epoch.
    pub at_ms: i64,
    /// The plugin.
    pub plugin: String,
    /// `swap`, `rollback`, `swap (unchanged)`.
    pub action: String,
    /// SHA-256 of the version replaced.
    pub old_sha256: String,
    /// SHA-256 of the version made live.
    pub new_sha256: String,
    /// Who asked.
    pub actor: String,
}

/// `GET /health`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Health {
    /// `ok`.
    pub status: String,
    /// The live generation.
    pub generation: u64,
    /// Plugins configured.
    pub plugins: usize,
    /// The deploy directory watched, if any.
    pub deploy_dir: Option<String>,
}

/// An error answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorBody {
    /// What went wrong, for a person.
    pub error: String,
}

impl From<&PluginStatus> for PluginView {
    fn from(s: &PluginStatus) -> PluginView {
        let o = &s.options;
        let (instances, max_calls, recycle) = match o.policy {
            InstancePolicy::Reuse {
                max_calls,
                recycle_memory_bytes,
            } => ("reuse", Some(max_calls), Some(recycle_memory_bytes as u64)),
            InstancePolicy::Fresh => ("fresh", None, None),
        };
        PluginView {
            name: s.name.clone(),
            version: s.version.clone(),
            sha256: s.digest.clone(),
            previous: s.previous.clone(),
            roles: s.roles.iter().map(|r| r.name().to_owned()).collect(),
            limits: LimitsView {
                memory_bytes: o.limits.memory_bytes as u64,
                deadline_ms: o.limits.deadline.as_millis() as u64,
                fuel: o.limits.fuel,
                stack_bytes: o.limits.stack_bytes as u64,
                table_elements: o.limits.table_elements as u64,
                instances: o.limits.instances as u64,
            },
            instances: instances.into(),
            max_calls,
            recycle_memory_bytes: recycle,
            failure: match o.failure {
                FailurePolicy::Required => "required",
                FailurePolicy::Optional => "optional",
            }
            .into(),
            grants: o.grants.iter().map(|g| g.name().to_owned()).collect(),
            metrics: MetricsView::from(s.plugin.stats()),
        }
    }
}

impl From<&PluginStats> for MetricsView {
    fn from(st: &PluginStats) -> MetricsView {
        let n = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
        let calls = n(&st.calls);
        let q = |q| (calls > 0).then(|| st.latency.quantile_us(q));
        MetricsView {
            calls,
            failures: n(&st.failures),
            traps: n(&st.traps),
            deadline_overruns: n(&st.deadline_overruns),
            memory_cap_hits: n(&st.memory_cap_hits),
            fuel_exhausted: n(&st.fuel_exhausted),
            peak_memory_bytes: n(&st.peak_memory),
            instantiations: n(&st.instantiations),
            recycled: n(&st.recycled),
            breaker_opens: n(&st.breaker_opens),
            breaker_refused: n(&st.breaker_refused),
            latency_p50_us: q(0.5),
            latency_p99_us: q(0.99),
        }
    }
}

impl SwapResult {
    /// From the registry's outcome.
    pub fn new(outcome: &SwapOutcome) -> SwapResult {
        let r = &outcome.record;
        SwapResult {
            plugin: r.plugin.clone(),
            action: r.action.clone(),
            old_version: r.old_hash.chars().take(12).collect(),
            new_version: r.new_hash.chars().take(12).collect(),
            generation: outcome.generation,
            changed: outcome.changed,
            actor: r.actor.clone(),
        }
    }
}

impl From<&SwapRecord> for SwapEntry {
    fn from(r: &SwapRecord) -> SwapEntry {
        SwapEntry {
            at_ms: r.at_ms,
            plugin: r.plugin.clone(),
            action: r.action.clone(),
            old_sha256: r.old_hash.clone(),
            new_sha256: r.new_hash.clone(),
            actor: r.actor.clone(),
        }
    }
}

/// `GET /api/endpoints`: every endpoint's link.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EndpointList {
    /// By name.
    pub endpoints: Vec<EndpointView>,
}

impl EndpointList {
    /// The links of `endpoints`.
    pub fn of(endpoints: &[std::sync::Arc<switchyard_net::Endpoint>]) -> EndpointList {
        EndpointList {
            endpoints: endpoints.iter().map(|e| EndpointView::of(e)).collect(),
        }
    }
}

/// One endpoint's link state ([`switchyard_net::EndpointState`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EndpointView {
    /// The endpoint's name.
    pub name: String,
    /// `host:port`.
    pub address: String,
    /// `idle` (never opened: it opens on first use), `connecting`, `up`
    /// or `down` (reconnecting in the background; requests get RC 91 at
    /// once).
    pub status: String,
    /// When it last came up or went down, ms since the Unix epoch.
    pub since_ms: u64,
    /// Why it last went down or failed to connect.
    pub last_error: Option<String>,
    /// Times the link came up.
    pub connects: u64,
    /// Failed attempts to connect since it was last up.
    pub failed_attempts: u32,
    /// Echoes (0800, DE70 301) sent and answered.
    pub echoes_sent: u64,
    /// Echoes answered.
    pub echoes_answered: u64,
}

impl EndpointView {
    /// The view of one endpoint's link now.
    pub fn of(e: &switchyard_net::Endpoint) -> EndpointView {
        let s = e.state();
        EndpointView {
            name: e.name().to_owned(),
            address: e.options().address.clone(),
            status: s.status.to_string(),
            since_ms: s.since_unix_ms(),
            last_error: s.last_error.clone(),
            connects: s.connects,
            failed_attempts: s.failed_attempts,
            echoes_sent: s.echoes_sent,
            echoes_answered: s.echoes_answered,
        }
    }
}

/// The whole `/api/metrics` text ([`crate::exposition::render`]): the
/// families recorded as the switch runs and those read at scrape time.
pub async fn metrics_text(state: &crate::AppState) -> String {
    let saf = match &state.ops {
        Some(ops) => ops.saf.stats().await.ok(),
        None => None,
    };
    let plugins = state.registry.list();
    crate::exposition::render(&crate::exposition::ScrapeInputs {
        metrics: &state.metrics,
        generation: state.registry.current().number,
        plugins: &plugins,
        saf: saf.as_deref(),
        endpoints: &state.endpoints,
        listeners: &state.listeners,
        now_ms: crate::exposition::unix_ms_now(),
    })
}
