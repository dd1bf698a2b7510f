//! Histograms in seconds with explicit buckets: [`DurationHistogram`],
//! recorded with atomics only (prometheus-client's own `Histogram` takes a
//! write lock per observation), and [`ConstHistogram`], a snapshot encoded
//! at scrape time.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::{MetricType, TypedMetric};

/// The upper bounds of every duration histogram of the switch, in seconds
/// (the `+Inf` bucket comes after them).
pub const DURATION_BUCKETS: [f64; 16] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

/// Buckets including `+Inf`.
const SLOTS: usize = DURATION_BUCKETS.len() + 1;

/// The bounds in nanoseconds, so that an observation compares integers.
const BOUNDS_NS: [u64; DURATION_BUCKETS.len()] = {
    let mut out = [0u64; DURATION_BUCKETS.len()];
    let mut i = 0;
    while i < out.len() {
        // Exact for these bounds: each is a whole number of nanoseconds.
        out[i] = (DURATION_BUCKETS[i] * 1e9 + 0.5) as u64;
        i += 1;
    }
    out
};

/// A histogram of durations over [`DURATION_BUCKETS`]: one relaxed atomic
/// add for the bucket and one for the sum per observation, no lock. Clones
/// share the counts (a handle resolved once is recorded into for ever).
#[derive(Debug, Clone, Default)]
pub struct DurationHistogram {
    inner: Arc<Counts>,
}

#[derive(Debug, Default)]
struct Counts {
    /// Observations per bucket (not cumulative); the last is `+Inf`.
    buckets: [AtomicU64; SLOTS],
    /// Sum of the observations, nanoseconds.
    sum_ns: AtomicU64,
}

impl DurationHistogram {
    /// An empty histogram.
    pub fn new() -> DurationHistogram {
        DurationHistogram::default()
    }

    /// Records one duration.
    #[inline]
    pub fn observe(&self, d: Duration) {
        let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        // The first bound at or above `ns` (Prometheus' `le`).
        let slot = BOUNDS_NS.partition_point(|&b| b < ns);
        self.inner.buckets[slot].fetch_add(1, Ordering::Relaxed);
        self.inner.sum_ns.fetch_add(ns, Ordering::Relaxed);
    }

    /// Observations so far.
    pub fn count(&self) -> u64 {
        self.inner
            .buckets
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .sum()
    }

    /// Sum of the observations, seconds.
    pub fn sum_seconds(&self) -> f64 {
        self.inner.sum_ns.load(Ordering::Relaxed) as f64 / 1e9
    }

    /// The counts now, as (upper bound in seconds, observations in that
    /// bucket alone); the last bound is `f64::MAX` (`+Inf`).
    pub fn snapshot(&self) -> ConstHistogram {
        let mut buckets = Vec::with_capacity(SLOTS);
        for (i, b) in self.inner.buckets.iter().enumerate() {
            let bound = DURATION_BUCKETS.get(i).copied().unwrap_or(f64::MAX);
            buckets.push((bound, b.load(Ordering::Relaxed)));
        }
        ConstHistogram::new(self.sum_seconds(), buckets)
    }
}

impl TypedMetric for DurationHistogram {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for DurationHistogram {
    fn encode(&self, encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        self.snapshot().encode(encoder)
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

/// A histogram's values taken at scrape time: its sum, and per bucket its
/// upper bound and the observations in that bucket alone (the encoder
/// writes them cumulative). The last bound should be `f64::MAX`: `+Inf`.
#[derive(Debug, Clone, PartialEq)]
pub struct ConstHistogram {
    sum: f64,
    count: u64,
    buckets: Vec<(f64, u64)>,
}

impl ConstHistogram {
    /// From a sum and per-bucket counts (OpenMetrics parsers refuse a
    /// `NaN` sum).
    pub fn new(sum: f64, buckets: Vec<(f64, u64)>) -> ConstHistogram {
        let count = buckets.iter().map(|(_, c)| c).sum();
        ConstHistogram {
            sum,
            count,
            buckets,
        }
    }

    /// Observations in all buckets.
    pub fn count(&self) -> u64 {
        self.count
    }
}

impl TypedMetric for ConstHistogram {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for ConstHistogram {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        encoder.encode_histogram::<NoLabelSet>(self.sum, self.count, &self.buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_are_whole_nanoseconds_and_rising() {
        assert_eq!(BOUNDS_NS[0], 100_000);
        assert_eq!(BOUNDS_NS[1], 250_000);
        assert_eq!(BOUNDS_NS[15], 10_000_000_000);
        assert!(BOUNDS_NS.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn an_observation_lands_in_the_first_bucket_at_or_above_it() {
        let h = DurationHistogram::new();
        h.observe(Duration::from_micros(100)); // exactly 0.0001: le="0.0001"
        h.observe(Duration::from_micros(101)); // le="0.00025"
        h.observe(Duration::from_millis(3)); // le="0.005"
        h.observe(Duration::from_secs(11)); // +Inf
        let snap = h.snapshot();
        let counts: Vec<u64> = snap.buckets.iter().map(|(_, c)| *c).collect();
        assert_eq!(counts[0], 1);
        assert_eq!(counts[1], 1);
        assert_eq!(counts[5], 1);
        assert_eq!(counts[16], 1);
        assert_eq!(snap.count(), 4);
        assert_eq!(h.count(), 4);
        assert!((h.sum_seconds() - 11.003201).abs() < 1e-9);
        assert_eq!(snap.buckets[16].0, f64::MAX);
    }
}
