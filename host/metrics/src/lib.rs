//! The switch's Prometheus metrics (issue 11, item 6), on prometheus-client.
//!
//! One [`Metrics`] per switch holds the families recorded as traffic flows:
//! transactions by listener, MTI class and result code, transaction and
//! external durations, connections, store-and-forward attempts, escalated
//! reversals and admin logins. What is read at scrape time (plugin figures,
//! link state, SAF depth) is not kept here: the admin plane's exposition
//! encodes it beside [`Metrics::encode`].
//!
//! The hot path takes no lock and hashes nothing: a listener resolves its
//! handles once ([`Metrics::listener`]); per transaction
//! [`ListenerMetrics::transaction`] finds its counter in a fixed table by
//! MTI class × result code (a two-digit code or none; any other code falls
//! back to the family's map) and adds to a lock-free
//! [`DurationHistogram`]. Labels never carry a PAN, a STAN, a terminal or a
//! merchant: only names from the config, the MTI class and the code.
#![forbid(unsafe_code)]

pub mod histogram;

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode_registry;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

pub use histogram::{ConstHistogram, DURATION_BUCKETS, DurationHistogram};
/// prometheus-client, for the exposition's scrape-time collector.
pub use prometheus_client;

/// The HTTP `Content-Type` of what [`Metrics::encode`] and the scrape-time
/// families make once the `# EOF` line ends them: OpenMetrics text 1.0.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The MTI classes of `switchyard_transactions_total{mti_class}`: the
/// MTI's second digit (`x1xx` authorization … `x8xx` network), `other`
/// for anything else.
pub const MTI_CLASSES: [&str; 9] = [
    "authorization",
    "financial",
    "file_action",
    "reversal",
    "reconciliation",
    "administrative",
    "fee",
    "network",
    "other",
];

/// The index in [`MTI_CLASSES`] of an MTI (`0200` → `financial`).
pub fn mti_class(mti: &str) -> usize {
    match mti.as_bytes() {
        [_, c @ b'1'..=b'8', _, _] => usize::from(c - b'1'),
        _ => MTI_CLASSES.len() - 1,
    }
}

/// Result-code slots of the fixed table: `00`–`99`, then none.
const RC_SLOTS: usize = 101;
const RC_NONE: usize = 100;

/// The slot of a result code in the fixed table; `None`: not a two-digit
/// code (the family's map counts it).
fn rc_slot(rc: Option<&str>) -> Option<usize> {
    match rc.map(str::as_bytes) {
        None => Some(RC_NONE),
        Some([a @ b'0'..=b'9', b @ b'0'..=b'9']) => {
            Some(usize::from(a - b'0') * 10 + usize::from(b - b'0'))
        }
        Some(_) => None,
    }
}

/// The `rc` label of a result code: the code itself when it is one to
/// three letters or digits, `none` without one, `other` otherwise (a
/// label never carries arbitrary bytes from the wire).
pub fn rc_label(rc: Option<&str>) -> String {
    match rc {
        None => "none".into(),
        Some(c) if (1..=3).contains(&c.len()) && c.bytes().all(|b| b.is_ascii_alphanumeric()) => {
            c.into()
        }
        Some(_) => "other".into(),
    }
}

/// A label value escaped for the text format (prometheus-client writes
/// label values as they are).
pub fn escape_label(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// `{listener, mti_class, rc}`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TxLabels {
    listener: Arc<str>,
    mti_class: &'static str,
    rc: String,
}

/// `{listener}`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ListenerLabels {
    listener: Arc<str>,
}

/// `{endpoint}`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EndpointLabels {
    endpoint: Arc<str>,
}

/// `{outcome}`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

/// The outcomes of `switchyard_admin_logins_total`.
pub const LOGIN_OUTCOMES: [&str; 3] = ["success", "failure", "locked"];

/// Every metric family the switch records as it runs, in one registry.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    transactions: Family<TxLabels, Counter>,
    transaction_duration: Family<ListenerLabels, DurationHistogram>,
    external_duration: Family<EndpointLabels, DurationHistogram>,
    connections_open: Family<ListenerLabels, Gauge>,
    connections: Family<ListenerLabels, Counter>,
    saf_attempts: Family<EndpointLabels, Counter>,
    reversals_escalated: Counter,
    admin_logins: Family<OutcomeLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics::new()
    }
}

impl Metrics {
    /// Every family registered, none recorded yet.
    pub fn new() -> Metrics {
        let m = Metrics {
            registry: Registry::default(),
            transactions: Family::default(),
            transaction_duration: Family::default(),
            external_duration: Family::default(),
            connections_open: Family::default(),
            connections: Family::default(),
            saf_attempts: Family::default(),
            reversals_escalated: Counter::default(),
            admin_logins: Family::default(),
        };
        for outcome in LOGIN_OUTCOMES {
            drop(m.admin_logins.get_or_create(&OutcomeLabels { outcome }));
        }
        m.registered()
    }

    fn registered(mut self) -> Metrics {
        let r = &mut self.registry;
        r.register(
            "switchyard_transactions",
            "Transactions answered (or ended), by listener, MTI class of the request and result code",
            self.transactions.clone(),
        );
        r.register(
            "switchyard_transaction_duration_seconds",
            "Time of a transaction in the switch, from its frame read to its end",
            self.transaction_duration.clone(),
        );
        r.register(
            "switchyard_external_duration_seconds",
            "Time a transaction spent at the endpoint (sent to reply, timeout or drop)",
            self.external_duration.clone(),
        );
        r.register(
            "switchyard_connections_open",
            "Acquirer connections open now",
            self.connections_open.clone(),
        );
        r.register(
            "switchyard_connections",
            "Acquirer connections accepted (admitted) since start",
            self.connections.clone(),
        );
        r.register(
            "switchyard_saf_attempts",
            "Store-and-forward delivery attempts made by this node since start",
            self.saf_attempts.clone(),
        );
        r.register(
            "switchyard_reversals_escalated",
            "Reversals escalated after too many unacknowledged attempts, since start",
            self.reversals_escalated.clone(),
        );
        r.register(
            "switchyard_admin_logins",
            "Admin logins by outcome (success, failure, locked)",
            self.admin_logins.clone(),
        );
        self
    }

    /// The handles of listener `name`, resolved once (its duration
    /// histogram and connection families appear at once, at zero).
    pub fn listener(&self, name: &str) -> ListenerMetrics {
        let listener: Arc<str> = escape_label(name).into();
        let labels = ListenerLabels {
            listener: listener.clone(),
        };
        ListenerMetrics {
            inner: Arc::new(ListenerInner {
                family: self.transactions.clone(),
                slots: (0..MTI_CLASSES.len() * RC_SLOTS)
                    .map(|_| OnceLock::new())
                    .collect(),
                duration: self.transaction_duration.get_or_create_owned(&labels),
                open: self.connections_open.get_or_create_owned(&labels),
                accepted: self.connections.get_or_create_owned(&labels),
                listener,
            }),
        }
    }

    /// The handles of endpoint `name`.
    pub fn endpoint(&self, name: &str) -> EndpointMetrics {
        let labels = EndpointLabels {
            endpoint: escape_label(name).into(),
        };
        EndpointMetrics {
            external: self.external_duration.get_or_create_owned(&labels),
        }
    }

    /// The handles of the store-and-forward forwarder of `endpoint`.
    pub fn forwarder(&self, endpoint: &str) -> SafMetrics {
        let labels = EndpointLabels {
            endpoint: escape_label(endpoint).into(),
        };
        SafMetrics {
            attempts: self.saf_attempts.get_or_create_owned(&labels),
            reversals_escalated: self.reversals_escalated.clone(),
        }
    }

    /// Counts an admin login: `outcome` is `success`, `failure` or
    /// `locked` (anything else is counted as `failure`).
    pub fn admin_login(&self, outcome: &str) {
        let outcome = LOGIN_OUTCOMES
            .into_iter()
            .find(|o| *o == outcome)
            .unwrap_or("failure");
        self.admin_logins
            .get_or_create(&OutcomeLabels { outcome })
            .inc();
    }

    /// Appends every family recorded here in the OpenMetrics text format,
    /// without the closing `# EOF` (the exposition adds its scrape-time
    /// families, then the EOF).
    pub fn encode(&self, out: &mut String) -> std::fmt::Result {
        encode_registry(out, &self.registry)
    }
}

/// One listener's handles: what a transaction and a connection record.
/// Cheap to clone (shared).
#[derive(Clone)]
pub struct ListenerMetrics {
    inner: Arc<ListenerInner>,
}

impl std::fmt::Debug for ListenerMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ListenerMetrics")
            .field("listener", &self.inner.listener)
            .finish_non_exhaustive()
    }
}

struct ListenerInner {
    listener: Arc<str>,
    family: Family<TxLabels, Counter>,
    /// The counters of (MTI class, result-code slot), made on first use.
    slots: Box<[OnceLock<Counter>]>,
    duration: DurationHistogram,
    open: Gauge,
    accepted: Counter,
}

impl ListenerMetrics {
    /// Records one transaction: the request's MTI, its result code (if
    /// any) and its time in the switch.
    #[inline]
    pub fn transaction(&self, mti: &str, rc: Option<&str>, total: Duration) {
        let class = mti_class(mti);
        let inner = &*self.inner;
        match rc_slot(rc) {
            Some(slot) => inner.slots[class * RC_SLOTS + slot]
                .get_or_init(|| inner.family.get_or_create_owned(&self.labels(class, rc)))
                .inc(),
            None => inner.family.get_or_create(&self.labels(class, rc)).inc(),
        };
        inner.duration.observe(total);
    }

    fn labels(&self, class: usize, rc: Option<&str>) -> TxLabels {
        TxLabels {
            listener: self.inner.listener.clone(),
            mti_class: MTI_CLASSES[class],
            rc: rc_label(rc),
        }
    }

    /// Counts a connection accepted and open until the guard drops.
    pub fn connection_opened(&self) -> OpenConnection {
        self.inner.accepted.inc();
        self.inner.open.inc();
        OpenConnection {
            open: self.inner.open.clone(),
        }
    }
}

/// An open connection, counted in `switchyard_connections_open` until it
/// drops.
#[derive(Debug)]
pub struct OpenConnection {
    open: Gauge,
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.open.dec();
    }
}

/// One endpoint's handles.
#[derive(Debug, Clone)]
pub struct EndpointMetrics {
    external: DurationHistogram,
}

impl EndpointMetrics {
    /// Records the time a transaction spent at the endpoint.
    #[inline]
    pub fn external(&self, d: Duration) {
        self.external.observe(d);
    }
}

/// One store-and-forward forwarder's handles.
#[derive(Debug, Clone)]
pub struct SafMetrics {
    attempts: Counter,
    reversals_escalated: Counter,
}

impl SafMetrics {
    /// Counts one delivery attempt.
    pub fn attempt(&self) {
        self.attempts.inc();
    }

    /// Counts a reversal escalated.
    pub fn reversal_escalated(&self) {
        self.reversals_escalated.inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(m: &Metrics) -> String {
        let mut out = String::new();
        m.encode(&mut out).unwrap();
        out
    }

    #[test]
    fn mti_classes_follow_the_second_digit() {
        let class = |m| MTI_CLASSES[mti_class(m)];
        assert_eq!(class("0100"), "authorization");
        assert_eq!(class("0200"), "financial");
        assert_eq!(class("1304"), "file_action");
        assert_eq!(class("0420"), "reversal");
        assert_eq!(class("0500"), "reconciliation");
        assert_eq!(class("0600"), "administrative");
        assert_eq!(class("0700"), "fee");
        assert_eq!(class("0800"), "network");
        assert_eq!(class("0900"), "other");
        assert_eq!(class("0000"), "other");
        assert_eq!(class("02"), "other");
    }

    #[test]
    fn rc_labels_are_short_codes_only() {
        assert_eq!(rc_label(Some("00")), "00");
        assert_eq!(rc_label(Some("N7")), "N7");
        assert_eq!(rc_label(Some("116")), "116");
        assert_eq!(rc_label(None), "none");
        assert_eq!(rc_label(Some("4761739001010119")), "other");
        assert_eq!(rc_label(Some("a\"b")), "other");
        assert_eq!(rc_slot(Some("51")), Some(51));
        assert_eq!(rc_slot(None), Some(RC_NONE));
        assert_eq!(rc_slot(Some("N7")), None);
    }

    #[test]
    fn transactions_are_counted_by_listener_class_and_code() {
        let m = Metrics::new();
        let l = m.listener("acq-5001");
        for _ in 0..3 {
            l.transaction("0200", Some("00"), Duration::from_micros(300));
        }
        l.transaction("0100", Some("51"), Duration::from_millis(2));
        l.transaction("0420", Some("N7"), Duration::from_millis(2));
        l.transaction("0800", None, Duration::from_millis(2));
        let t = text(&m);
        for line in [
            "switchyard_transactions_total{listener=\"acq-5001\",mti_class=\"financial\",rc=\"00\"} 3",
            "switchyard_transactions_total{listener=\"acq-5001\",mti_class=\"authorization\",rc=\"51\"} 1",
            "switchyard_transactions_total{listener=\"acq-5001\",mti_class=\"reversal\",rc=\"N7\"} 1",
            "switchyard_transactions_total{listener=\"acq-5001\",mti_class=\"network\",rc=\"none\"} 1",
            "switchyard_transaction_duration_seconds_count{listener=\"acq-5001\"} 6",
            "switchyard_transaction_duration_seconds_bucket{le=\"0.0005\",listener=\"acq-5001\"} 3",
            "switchyard_transaction_duration_seconds_bucket{le=\"+Inf\",listener=\"acq-5001\"} 6",
            "switchyard_connections_open{listener=\"acq-5001\"} 0",
            "switchyard_reversals_escalated_total 0",
            "switchyard_admin_logins_total{outcome=\"locked\"} 0",
        ] {
            assert!(t.contains(line), "{line} missing in\n{t}");
        }
    }

    #[test]
    fn connections_logins_saf_and_endpoints_are_counted() {
        let m = Metrics::new();
        let l = m.listener("a\"b");
        let first = l.connection_opened();
        let second = l.connection_opened();
        drop(first);
        m.admin_login("success");
        m.admin_login("locked");
        m.admin_login("bogus");
        let saf = m.forwarder("xxx");
        saf.attempt();
        saf.attempt();
        saf.reversal_escalated();
        m.endpoint("xxx").external(Duration::from_millis(7));
        let t = text(&m);
        for line in [
            "switchyard_connections_open{listener=\"a\\\"b\"} 1",
            "switchyard_connections_total{listener=\"a\\\"b\"} 2",
            "switchyard_admin_logins_total{outcome=\"success\"} 1",
            "switchyard_admin_logins_total{outcome=\"failure\"} 1",
            "switchyard_admin_logins_total{outcome=\"locked\"} 1",
            "switchyard_saf_attempts_total{endpoint=\"xxx\"} 2",
            "switchyard_reversals_escalated_total 1",
            "switchyard_external_duration_seconds_bucket{le=\"0.01\",endpoint=\"xxx\"} 1",
            "switchyard_external_duration_seconds_sum{endpoint=\"xxx\"} 0.007",
        ] {
            assert!(t.contains(line), "{line} missing in\n{t}");
        }
        drop(second);
        assert!(text(&m).contains("switchyard_connections_open{listener=\"a\\\"b\"} 0"));
    }
}
