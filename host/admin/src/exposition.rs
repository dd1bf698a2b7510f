//! The Prometheus exposition of `/api/metrics`: OpenMetrics text 1.0
//! ([`CONTENT_TYPE`]) made by prometheus-client.
//!
//! Two parts, then `# EOF`: the families the switch records as it runs
//! (`switchyard_metrics::Metrics`: transactions, durations, connections,
//! SAF attempts, escalated reversals, admin logins), and the families read
//! at scrape time by a prometheus-client `Collector` over a snapshot of
//! what the handler passes in [`ScrapeInputs`]: plugin generation, info,
//! counters, breaker state and call duration; SAF pending, escalated and
//! oldest age; endpoint link state and connects; listener writes. The
//! plugin and SAF families keep the names and labels of the hand-written
//! exposition they replace, so dashboards keep working.
//!
//! No label carries a PAN, a STAN, a terminal or a merchant: only names
//! from the config (listener, endpoint, plugin), a plugin version, the MTI
//! class and the result code.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use switchyard_engine::ports::SafStats;
use switchyard_metrics::prometheus_client::collector::Collector;
use switchyard_metrics::prometheus_client::encoding::text::{encode_eof, encode_registry};
use switchyard_metrics::prometheus_client::encoding::{
    DescriptorEncoder, EncodeLabelSet, EncodeMetric,
};
use switchyard_metrics::prometheus_client::metrics::MetricType;
use switchyard_metrics::prometheus_client::metrics::counter::ConstCounter;
use switchyard_metrics::prometheus_client::metrics::gauge::ConstGauge;
use switchyard_metrics::prometheus_client::registry::Registry;
use switchyard_metrics::{ConstHistogram, Metrics, escape_label};
use switchyard_net::{Endpoint, LinkStatus, ListenerStats};
use switchyard_runtime::{LATENCY_BUCKETS, PluginStats, PluginStatus};

pub use switchyard_metrics::CONTENT_TYPE;

/// What one scrape reads: references to the running switch's parts.
pub struct ScrapeInputs<'a> {
    /// The families recorded as the switch runs.
    pub metrics: &'a Metrics,
    /// The live plugin generation (`Registry::current().number`).
    pub generation: u64,
    /// Every plugin (`Registry::list()`).
    pub plugins: &'a [PluginStatus],
    /// The store-and-forward queues with pending entries
    /// (`SafQueue::stats()`); every endpoint not listed is at zero. `None`
    /// (no store, or reading it failed): no SAF families.
    pub saf: Option<&'a [(String, SafStats)]>,
    /// The endpoints, for their link state.
    pub endpoints: &'a [Arc<Endpoint>],
    /// Each listener's write counters, by name.
    pub listeners: &'a [(String, Arc<ListenerStats>)],
    /// Now, ms since the Unix epoch (the SAF's oldest age): [`unix_ms_now`].
    pub now_ms: i64,
}

/// Now, in ms since the Unix epoch.
pub fn unix_ms_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// The whole `/api/metrics` text (serve it as [`CONTENT_TYPE`]).
pub fn render(inputs: &ScrapeInputs<'_>) -> String {
    let mut out = String::new();
    // Writing into a String does not fail.
    let _ = inputs.metrics.encode(&mut out);
    let mut scrape = Registry::default();
    scrape.register_collector(Box::new(Snapshot::take(inputs)));
    let _ = encode_registry(&mut out, &scrape);
    let _ = encode_eof(&mut out);
    out
}

/// [`render`] of a running operator plane's state (the `/api/metrics`
/// handler's body).
pub async fn scrape(state: &crate::AppState) -> String {
    let plugins = state.registry.list();
    let mut saf = None;
    if let Some(ops) = &state.ops {
        match ops.saf.stats().await {
            Ok(queues) => saf = Some(queues),
            Err(e) => tracing::warn!(error = %e, "metrics: reading the SAF queue's depth failed"),
        }
    }
    render(&ScrapeInputs {
        metrics: &state.metrics,
        generation: state.registry.current().number,
        plugins: &plugins,
        saf: saf.as_deref(),
        endpoints: &state.endpoints,
        listeners: &state.listeners,
        now_ms: unix_ms_now(),
    })
}

/// The per-plugin counter and gauge families: name (after
/// `switchyard_plugin_`), counter or gauge, help, the value.
type PluginFamily = (
    &'static str,
    bool,
    &'static str,
    fn(&PluginStats) -> &AtomicU64,
);

const PLUGIN_FAMILIES: [PluginFamily; 11] = [
    ("calls", true, "Calls into the plugin (all versions)", |s| {
        &s.calls
    }),
    (
        "failures",
        true,
        "Calls that failed: trap, deadline, memory cap or fuel",
        |s| &s.failures,
    ),
    ("traps", true, "Calls that trapped", |s| &s.traps),
    (
        "deadline_overruns",
        true,
        "Calls stopped at their deadline",
        |s| &s.deadline_overruns,
    ),
    (
        "memory_cap_hits",
        true,
        "Calls that reached the memory cap",
        |s| &s.memory_cap_hits,
    ),
    ("fuel_exhausted", true, "Calls that ran out of fuel", |s| {
        &s.fuel_exhausted
    }),
    ("instantiations", true, "Instances created", |s| {
        &s.instantiations
    }),
    (
        "recycled",
        true,
        "Instances retired by the instance policy",
        |s| &s.recycled,
    ),
    (
        "peak_memory_bytes",
        false,
        "Largest linear memory an instance reached",
        |s| &s.peak_memory,
    ),
    (
        "breaker_opens",
        true,
        "Times the circuit breaker opened (after a failed trial too)",
        |s| &s.breaker_opens,
    ),
    (
        "breaker_refused",
        true,
        "Calls refused at once because the circuit breaker was open",
        |s| &s.breaker_refused,
    ),
];

/// One plugin at scrape time (names escaped).
#[derive(Debug)]
struct PluginSnap {
    name: String,
    version: String,
    values: [u64; PLUGIN_FAMILIES.len()],
    breaker: u8,
    latency: ConstHistogram,
}

/// One endpoint's SAF queue at scrape time.
#[derive(Debug)]
struct SafSnap {
    endpoint: String,
    pending: u64,
    escalated: u64,
    oldest_age_seconds: f64,
}

/// What one scrape reads, owned (a collector outlives the borrow).
#[derive(Debug)]
struct Snapshot {
    generation: u64,
    plugins: Vec<PluginSnap>,
    saf: Vec<SafSnap>,
    /// (endpoint, up, connects).
    endpoints: Vec<(String, bool, u64)>,
    /// (listener, writes, frames written).
    listeners: Vec<(String, u64, u64)>,
}

impl Snapshot {
    fn take(inputs: &ScrapeInputs<'_>) -> Snapshot {
        let plugins = inputs
            .plugins
            .iter()
            .map(|p| {
                let stats = p.plugin.stats();
                PluginSnap {
                    name: escape_label(&p.name),
                    version: escape_label(&p.version),
                    values: PLUGIN_FAMILIES
                        .map(|(_, _, _, get)| get(stats).load(Ordering::Relaxed)),
                    breaker: p.plugin.breaker_state().gauge(),
                    latency: plugin_latency(stats),
                }
            })
            .collect();
        let saf = inputs
            .saf
            .map_or_else(Vec::new, |queues| saf_rows(queues, inputs));
        let endpoints = inputs
            .endpoints
            .iter()
            .map(|e| {
                let state = e.state();
                (
                    escape_label(e.name()),
                    state.status == LinkStatus::Up,
                    state.connects,
                )
            })
            .collect();
        let listeners = inputs
            .listeners
            .iter()
            .map(|(name, s)| (escape_label(name), s.writes(), s.frames_written()))
            .collect();
        Snapshot {
            generation: inputs.generation,
            plugins,
            saf,
            endpoints,
            listeners,
        }
    }
}

/// The SAF rows: the queues listed, then every other endpoint at zero (the
/// store lists only queues with pending entries).
fn saf_rows(queues: &[(String, SafStats)], inputs: &ScrapeInputs<'_>) -> Vec<SafSnap> {
    let empty = SafStats {
        pending: 0,
        escalated: 0,
        oldest_ms: None,
    };
    let idle = inputs
        .endpoints
        .iter()
        .filter(|e| !queues.iter().any(|(name, _)| name == e.name()))
        .map(|e| (e.name(), &empty));
    queues
        .iter()
        .map(|(name, s)| (name.as_str(), s))
        .chain(idle)
        .map(|(endpoint, s)| SafSnap {
            endpoint: escape_label(endpoint),
            pending: s.pending,
            escalated: s.escalated,
            oldest_age_seconds: s
                .oldest_ms
                .map_or(0.0, |o| (inputs.now_ms - o).max(0) as f64 / 1000.0),
        })
        .collect()
}

/// A plugin's call-duration histogram: power-of-two µs buckets. The
/// runtime keeps no sum, and OpenMetrics parsers refuse a `NaN` one, so the
/// sum is estimated from the buckets: each call at three quarters of its
/// bucket's bound (the middle of `[bound/2, bound)`), the overflow bucket's
/// at its lower bound. Quantiles from the buckets are exact to the bucket.
fn plugin_latency(stats: &PluginStats) -> ConstHistogram {
    let mut sum = 0.0;
    let buckets = stats
        .latency
        .snapshot()
        .into_iter()
        .enumerate()
        .map(|(i, (bound_us, count))| {
            let bound = if i == LATENCY_BUCKETS - 1 {
                f64::MAX
            } else {
                bound_us as f64 / 1e6
            };
            let typical_s = match i {
                0 => 0.5e-6,
                _ if i == LATENCY_BUCKETS - 1 => (1u64 << (i - 1)) as f64 / 1e6,
                _ => 0.75 * bound_us as f64 / 1e6,
            };
            sum += typical_s * count as f64;
            (bound, count)
        })
        .collect();
    ConstHistogram::new(sum, buckets)
}

/// Writes one family: its descriptor, then each labelled sample. A family
/// without samples is left out (as prometheus-client's registry does).
fn family<L: EncodeLabelSet, M: EncodeMetric>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    kind: MetricType,
    samples: impl IntoIterator<Item = (L, M)>,
) -> Result<(), std::fmt::Error> {
    let mut samples = samples.into_iter().peekable();
    if samples.peek().is_none() {
        return Ok(());
    }
    let mut metric = encoder.encode_descriptor(name, help, None, kind)?;
    for (labels, value) in samples {
        value.encode(metric.encode_family(&labels)?)?;
    }
    Ok(())
}

impl Snapshot {
    fn encode_plugins(&self, e: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let gen_metric = ConstGauge::new(self.generation);
        gen_metric.encode(e.encode_descriptor(
            "switchyard_plugin_generation",
            "Live plugin generation (one more per swap or rollback)",
            None,
            MetricType::Gauge,
        )?)?;
        let by_plugin = |p: &PluginSnap| [("plugin", p.name.clone())];
        family(
            e,
            "switchyard_plugin_info",
            "The live version of each plugin",
            MetricType::Gauge,
            self.plugins.iter().map(|p| {
                let labels = [("plugin", p.name.clone()), ("version", p.version.clone())];
                (labels, ConstGauge::new(1i64))
            }),
        )?;
        for (i, (name, counter, help, _)) in PLUGIN_FAMILIES.iter().enumerate() {
            let name = format!("switchyard_plugin_{name}");
            let values = self.plugins.iter().map(|p| (by_plugin(p), p.values[i]));
            if *counter {
                let samples = values.map(|(l, v)| (l, ConstCounter::new(v)));
                family(e, &name, help, MetricType::Counter, samples)?;
            } else {
                let samples = values.map(|(l, v)| (l, ConstGauge::new(v)));
                family(e, &name, help, MetricType::Gauge, samples)?;
            }
        }
        family(
            e,
            "switchyard_plugin_breaker_state",
            "Circuit breaker of the live version: 0 closed, 1 open, 2 half-open",
            MetricType::Gauge,
            self.plugins
                .iter()
                .map(|p| (by_plugin(p), ConstGauge::new(u32::from(p.breaker)))),
        )?;
        family(
            e,
            "switchyard_plugin_call_duration_seconds",
            "Time of one call into the plugin (one call in four is timed; power-of-two microsecond buckets; _sum estimated from them)",
            MetricType::Histogram,
            self.plugins
                .iter()
                .map(|p| (by_plugin(p), p.latency.clone())),
        )
    }

    fn encode_saf(&self, e: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let by_endpoint = |s: &SafSnap| [("endpoint", s.endpoint.clone())];
        family(
            e,
            "switchyard_saf_pending",
            "Store-and-forward entries not yet acknowledged",
            MetricType::Gauge,
            self.saf
                .iter()
                .map(|s| (by_endpoint(s), ConstGauge::new(s.pending))),
        )?;
        family(
            e,
            "switchyard_saf_escalated",
            "Pending entries escalated after too many attempts",
            MetricType::Gauge,
            self.saf
                .iter()
                .map(|s| (by_endpoint(s), ConstGauge::new(s.escalated))),
        )?;
        family(
            e,
            "switchyard_saf_oldest_age_seconds",
            "Age of the oldest pending entry (0 when none)",
            MetricType::Gauge,
            self.saf
                .iter()
                .map(|s| (by_endpoint(s), ConstGauge::new(s.oldest_age_seconds))),
        )
    }

    fn encode_links(&self, e: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        family(
            e,
            "switchyard_endpoint_up",
            "Whether the endpoint's link is up (1) or not (0: down, connecting, never opened)",
            MetricType::Gauge,
            self.endpoints
                .iter()
                .map(|(n, up, _)| ([("endpoint", n.clone())], ConstGauge::new(i64::from(*up)))),
        )?;
        family(
            e,
            "switchyard_endpoint_connects",
            "Times the endpoint's link came up",
            MetricType::Counter,
            self.endpoints
                .iter()
                .map(|(n, _, c)| ([("endpoint", n.clone())], ConstCounter::new(*c))),
        )?;
        family(
            e,
            "switchyard_listener_writes",
            "Writes of responses to acquirer connections",
            MetricType::Counter,
            self.listeners
                .iter()
                .map(|(n, w, _)| ([("listener", n.clone())], ConstCounter::new(*w))),
        )?;
        family(
            e,
            "switchyard_listener_frames_written",
            "Response frames written to acquirer connections",
            MetricType::Counter,
            self.listeners
                .iter()
                .map(|(n, _, f)| ([("listener", n.clone())], ConstCounter::new(*f))),
        )
    }
}

impl Collector for Snapshot {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        self.encode_plugins(&mut encoder)?;
        self.encode_saf(&mut encoder)?;
        self.encode_links(&mut encoder)
    }
}
