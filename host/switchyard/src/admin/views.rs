//! What the admin API says, as JSON documents (served by the API, read back
//! by `switchyard plugin …`) and as Prometheus text.

use std::fmt::Write as _;
use std::sync::atomic::Ordering;

use serde::{Deserialize, Serialize};
use switchyard_engine::ports::SwapRecord;
use switchyard_runtime::{
    FailurePolicy, InstancePolicy, LATENCY_BUCKETS, PluginStats, PluginStatus, SwapOutcome,
};

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

/// The store-and-forward queue's depth per endpoint, as Prometheus text.
pub fn saf_prometheus(queues: &[(String, switchyard_engine::ports::SafStats)]) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let mut out = String::new();
    out.push_str("# HELP switchyard_saf_pending Store-and-forward entries not yet acknowledged.\n");
    out.push_str("# TYPE switchyard_saf_pending gauge\n");
    for (e, s) in queues {
        let _ = writeln!(
            out,
            "switchyard_saf_pending{{endpoint=\"{e}\"}} {}",
            s.pending
        );
    }
    out.push_str(
        "# HELP switchyard_saf_escalated Pending entries escalated after too many attempts.\n",
    );
    out.push_str("# TYPE switchyard_saf_escalated gauge\n");
    for (e, s) in queues {
        let _ = writeln!(
            out,
            "switchyard_saf_escalated{{endpoint=\"{e}\"}} {}",
            s.escalated
        );
    }
    out.push_str("# HELP switchyard_saf_oldest_age_seconds Age of the oldest pending entry.\n");
    out.push_str("# TYPE switchyard_saf_oldest_age_seconds gauge\n");
    for (e, s) in queues {
        let age = s.oldest_ms.map_or(0, |o| (now - o).max(0) / 1000);
        let _ = writeln!(
            out,
            "switchyard_saf_oldest_age_seconds{{endpoint=\"{e}\"}} {age}"
        );
    }
    out
}

/// Each listener's writes and response frames written, in the Prometheus
/// text format: frames / writes is how many responses leave per write.
pub fn listener_prometheus(listeners: &super::ListenerCounters) -> String {
    let mut out = String::new();
    for (name, help, value) in [
        (
            "writes_total",
            "Writes of responses to acquirer connections.",
            switchyard_net::ListenerStats::writes as fn(&switchyard_net::ListenerStats) -> u64,
        ),
        (
            "frames_written_total",
            "Response frames written to acquirer connections.",
            switchyard_net::ListenerStats::frames_written,
        ),
    ] {
        let _ = writeln!(
            out,
            "# HELP switchyard_listener_{name} {help}\n# TYPE switchyard_listener_{name} counter"
        );
        for (listener, stats) in listeners {
            let _ = writeln!(
                out,
                "switchyard_listener_{name}{{listener=\"{listener}\"}} {}",
                value(stats)
            );
        }
    }
    out
}

/// The per-plugin metrics in the Prometheus text format (version 0.0.4).
pub fn prometheus(generation: u64, plugins: &[PluginStatus]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# HELP switchyard_plugin_generation Live plugin generation (one more per swap or rollback).\n\
         # TYPE switchyard_plugin_generation gauge\nswitchyard_plugin_generation {generation}"
    );
    let _ = writeln!(
        out,
        "# HELP switchyard_plugin_info The live version of each plugin.\n# TYPE switchyard_plugin_info gauge"
    );
    for p in plugins {
        let _ = writeln!(
            out,
            "switchyard_plugin_info{{plugin=\"{}\",version=\"{}\"}} 1",
            label(&p.name),
            p.version
        );
    }
    type Get = fn(&PluginStats) -> &std::sync::atomic::AtomicU64;
    let families: [(&str, &str, &str, Get); 11] = [
        (
            "calls_total",
            "counter",
            "Calls into the plugin (all versions).",
            |s| &s.calls,
        ),
        (
            "failures_total",
            "counter",
            "Calls that failed: trap, deadline, memory cap or fuel.",
            |s| &s.failures,
        ),
        ("traps_total", "counter", "Calls that trapped.", |s| {
            &s.traps
        }),
        (
            "deadline_overruns_total",
            "counter",
            "Calls stopped at their deadline.",
            |s| &s.deadline_overruns,
        ),
        (
            "memory_cap_hits_total",
            "counter",
            "Calls that reached the memory cap.",
            |s| &s.memory_cap_hits,
        ),
        (
            "fuel_exhausted_total",
            "counter",
            "Calls that ran out of fuel.",
            |s| &s.fuel_exhausted,
        ),
        (
            "instantiations_total",
            "counter",
            "Instances created.",
            |s| &s.instantiations,
        ),
        (
            "recycled_total",
            "counter",
            "Instances retired by the instance policy.",
            |s| &s.recycled,
        ),
        (
            "peak_memory_bytes",
            "gauge",
            "Largest linear memory an instance reached.",
            |s| &s.peak_memory,
        ),
        (
            "breaker_opens_total",
            "counter",
            "Times the circuit breaker opened (after a failed trial too).",
            |s| &s.breaker_opens,
        ),
        (
            "breaker_refused_total",
            "counter",
            "Calls refused at once because the circuit breaker was open.",
            |s| &s.breaker_refused,
        ),
    ];
    for (name, kind, help, get) in families {
        let _ = writeln!(
            out,
            "# HELP switchyard_plugin_{name} {help}\n# TYPE switchyard_plugin_{name} {kind}"
        );
        for p in plugins {
            let _ = writeln!(
                out,
                "switchyard_plugin_{name}{{plugin=\"{}\"}} {}",
                label(&p.name),
                get(p.plugin.stats()).load(Ordering::Relaxed)
            );
        }
    }
    let _ = writeln!(
        out,
        "# HELP switchyard_plugin_breaker_state Circuit breaker of the live version: 0 closed, 1 open, 2 half-open.\n\
         # TYPE switchyard_plugin_breaker_state gauge"
    );
    for p in plugins {
        let _ = writeln!(
            out,
            "switchyard_plugin_breaker_state{{plugin=\"{}\"}} {}",
            label(&p.name),
            p.plugin.breaker_state().gauge()
        );
    }
    let _ = writeln!(
        out,
        "# HELP switchyard_plugin_call_duration_seconds Time of one call into the plugin (no _sum: buckets only).\n\
         # TYPE switchyard_plugin_call_duration_seconds histogram"
    );
    for p in plugins {
        let name = label(&p.name);
        let mut cumulative = 0;
        for (i, (bound_us, count)) in p.plugin.stats().latency.snapshot().into_iter().enumerate() {
            cumulative += count;
            let le = if i == LATENCY_BUCKETS - 1 {
                "+Inf".to_owned()
            } else {
                format!("{}", bound_us as f64 / 1e6)
            };
            let _ = writeln!(
                out,
                "switchyard_plugin_call_duration_seconds_bucket{{plugin=\"{name}\",le=\"{le}\"}} {cumulative}"
            );
        }
        let _ = writeln!(
            out,
            "switchyard_plugin_call_duration_seconds_count{{plugin=\"{name}\"}} {cumulative}"
        );
    }
    out
}

/// A label value escaped for the text format.
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
