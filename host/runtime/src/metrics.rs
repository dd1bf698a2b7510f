//! Per-plugin metrics: counters, peak memory and a call latency histogram,
//! kept across the plugin's versions.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Buckets of the latency histogram: bucket `i` counts calls under `2^i` µs
/// (the last one everything longer).
pub const LATENCY_BUCKETS: usize = 26;

/// A lock-free latency histogram with power-of-two microsecond buckets.
#[derive(Debug)]
pub struct Histogram {
    buckets: [AtomicU64; LATENCY_BUCKETS],
}

impl Default for Histogram {
    fn default() -> Histogram {
        Histogram {
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

impl Histogram {
    /// Records one call.
    pub fn record(&self, d: Duration) {
        let us = d.as_micros() as u64;
        let i = (u64::BITS - us.leading_zeros()) as usize;
        self.buckets[i.min(LATENCY_BUCKETS - 1)].fetch_add(1, Ordering::Relaxed);
    }

    /// (upper bound in µs, count) per bucket; the last bound is `u64::MAX`.
    pub fn snapshot(&self) -> Vec<(u64, u64)> {
        self.buckets
            .iter()
            .enumerate()
            .map(|(i, b)| {
                let bound = if i == LATENCY_BUCKETS - 1 {
                    u64::MAX
                } else {
                    1u64 << i
                };
                (bound, b.load(Ordering::Relaxed))
            })
            .collect()
    }

    /// The upper bound (µs) of the bucket holding quantile `q` (0..=1), or 0
    /// when nothing was recorded.
    pub fn quantile_us(&self, q: f64) -> u64 {
        let snap = self.snapshot();
        let total: u64 = snap.iter().map(|(_, c)| c).sum();
        if total == 0 {
            return 0;
        }
        let rank = ((total as f64) * q.clamp(0.0, 1.0)).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (bound, count) in snap {
            seen += count;
            if seen >= rank {
                return bound;
            }
        }
        u64::MAX
    }
}

/// Counters of one plugin (all its versions).
#[derive(Debug, Default)]
pub struct PluginStats {
    /// Calls made.
    pub calls: AtomicU64,
    /// Calls that failed (trap, deadline, memory, fuel).
    pub failures: AtomicU64,
    /// Of those, traps (panic, unreachable, stack overflow, …).
    pub traps: AtomicU64,
    /// Of those, calls stopped at their deadline.
    pub deadline_overruns: AtomicU64,
    /// Of those, calls that hit the memory cap.
    pub memory_cap_hits: AtomicU64,
    /// Of those, calls that ran out of fuel.
    pub fuel_exhausted: AtomicU64,
    /// Instances created.
    pub instantiations: AtomicU64,
    /// Instances retired by policy (call count or memory high-water mark).
    pub recycled: AtomicU64,
    /// Times the circuit breaker opened (re-openings after a failed trial
    /// included).
    pub breaker_opens: AtomicU64,
    /// Calls refused because the circuit breaker was open.
    pub breaker_refused: AtomicU64,
    /// Largest linear memory any instance reached, in bytes.
    pub peak_memory: AtomicU64,
    /// Call latency.
    pub latency: Histogram,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_and_quantiles() {
        let h = Histogram::default();
        for _ in 0..98 {
            h.record(Duration::from_nanos(1500)); // 1 µs → bucket < 2 µs
        }
        h.record(Duration::from_millis(3));
        h.record(Duration::from_secs(1000));
        assert_eq!(h.quantile_us(0.5), 2);
        assert_eq!(h.quantile_us(0.99), 4096);
        assert_eq!(h.quantile_us(1.0), u64::MAX);
        assert_eq!(h.snapshot().iter().map(|(_, c)| c).sum::<u64>(), 100);
    }
}
