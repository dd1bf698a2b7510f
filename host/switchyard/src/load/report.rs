//! The end of a load run: the figures as text for people and as one JSON
//! object for machines (the shape the benchmark report reads).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use serde::Serialize;
use switchyard_engine::rc;

use super::stats::{Collected, Point};
use super::{LoadArgs, Mode};
use crate::send::Target;

/// Latency percentiles of a run, µs.
#[derive(Debug, Clone, Copy, Default)]
pub struct Percentiles {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p99_9: f64,
    pub max: f64,
}

impl Percentiles {
    /// Of a histogram in ns; all 0 when it is empty.
    fn of(h: &hdrhistogram::Histogram<u64>) -> Percentiles {
        if h.is_empty() {
            return Percentiles::default();
        }
        let us = |ns: u64| (ns as f64 / 10.0).round() / 100.0;
        Percentiles {
            p50: us(h.value_at_quantile(0.5)),
            p90: us(h.value_at_quantile(0.9)),
            p99: us(h.value_at_quantile(0.99)),
            p99_9: us(h.value_at_quantile(0.999)),
            max: us(h.max()),
        }
    }
}

/// What a load run measured.
#[derive(Debug, Clone)]
pub struct Summary {
    /// `closed` or `open`.
    pub mode: &'static str,
    pub connections: u32,
    /// Closed loop: requests in flight per connection; open loop: the cap
    /// of outstanding requests per connection.
    pub in_flight: u32,
    pub rate: Option<u64>,
    pub target: String,
    pub spec: String,
    pub framing: String,
    pub warmup_s: f64,
    /// The measured time (after the warm-up).
    pub duration_s: f64,
    pub sent: u64,
    pub received: u64,
    pub latency_us: Percentiles,
    /// Open loop: how late requests left after their due time, µs (the
    /// generator's own lag, part of every latency above).
    pub lag_us: Option<Percentiles>,
    pub rc: BTreeMap<String, u64>,
    pub mismatches: u64,
    pub timeouts: u64,
    pub errors: u64,
    /// The first few connection errors, said.
    pub error_messages: Vec<String>,
    /// Per second of the run: p50, p99, max (ms).
    pub(crate) points: Vec<Point>,
}

impl Summary {
    pub(crate) fn new(
        args: &LoadArgs,
        target: &Target,
        mode: Mode,
        measured: Duration,
        c: Collected,
    ) -> Summary {
        let latency_us = Percentiles::of(&c.latency);
        let lag_us = (!c.lag.is_empty()).then(|| Percentiles::of(&c.lag));
        let (mode_name, in_flight, rate) = match mode {
            Mode::Closed { in_flight } => ("closed", in_flight, None),
            Mode::Open { rate, cap } => ("open", cap, Some(rate)),
        };
        Summary {
            mode: mode_name,
            connections: args.connections,
            in_flight,
            rate,
            target: target.addr.to_string(),
            spec: target.wire.spec.name().to_owned(),
            framing: target.wire.framing.to_string(),
            warmup_s: c.warmup_s,
            duration_s: (measured.as_secs_f64() * 1e3).round() / 1e3,
            sent: c.counts.sent,
            received: c.counts.received,
            latency_us,
            lag_us,
            rc: c.counts.rc,
            mismatches: c.counts.mismatches,
            timeouts: c.counts.timeouts,
            errors: c.counts.errors,
            error_messages: c.errors,
            points: c.points,
        }
    }

    /// Responses per second over the measured time.
    pub fn throughput_per_s(&self) -> f64 {
        (self.received as f64 / self.duration_s.max(1e-3) * 10.0).round() / 10.0
    }

    /// The `--json` object, its keys in the documented order.
    pub fn json(&self) -> String {
        let l = &self.latency_us;
        let doc = JsonSummary {
            mode: self.mode,
            connections: self.connections,
            in_flight: self.in_flight,
            rate: self.rate,
            duration_s: self.duration_s,
            sent: self.sent,
            received: self.received,
            throughput_per_s: self.throughput_per_s(),
            latency_us: JsonLatency {
                p50: l.p50,
                p90: l.p90,
                p99: l.p99,
                p99_9: l.p99_9,
                max: l.max,
            },
            rc: &self.rc,
            mismatches: self.mismatches,
            timeouts: self.timeouts,
            errors: self.errors,
        };
        serde_json::to_string(&doc).expect("a summary always serializes")
    }

    /// Whether every response code is one of `expected` and nothing was
    /// lost (always, when `expected` is empty).
    pub fn meets(&self, expected: &[String]) -> bool {
        expected.is_empty()
            || (self.rc.keys().all(|k| expected.contains(k))
                && self.mismatches + self.timeouts + self.errors == 0)
    }

    /// The report for people.
    pub fn text(&self) -> String {
        let mut out = String::new();
        let shape = match self.rate {
            Some(rate) => format!(
                "open loop: {rate}/s on {} connection(s) (at most {} outstanding on each)",
                self.connections, self.in_flight
            ),
            None => format!(
                "closed loop: {} connection(s) × {} in flight",
                self.connections, self.in_flight
            ),
        };
        let _ = writeln!(
            out,
            "{shape} to {} ({}, {}): {} s measured{}",
            self.target,
            self.spec,
            self.framing,
            self.duration_s,
            if self.warmup_s > 0.0 {
                format!(" after {} s of warm-up", self.warmup_s)
            } else {
                String::new()
            }
        );
        let _ = writeln!(
            out,
            "  sent {}  received {}  throughput {:.1}/s",
            self.sent,
            self.received,
            self.throughput_per_s()
        );
        let l = &self.latency_us;
        let ms = |us: f64| us / 1e3;
        let _ = writeln!(
            out,
            "  latency ms ({}): p50 {:.3}  p90 {:.3}  p99 {:.3}  p99.9 {:.3}  max {:.3}",
            if self.rate.is_some() {
                "from the scheduled send"
            } else {
                "from the send"
            },
            ms(l.p50),
            ms(l.p90),
            ms(l.p99),
            ms(l.p99_9),
            ms(l.max)
        );
        if let Some(lag) = &self.lag_us {
            let _ = writeln!(
                out,
                "  timetable: requests left p50 {:.3}  p99 {:.3}  max {:.3} ms after their due time",
                ms(lag.p50),
                ms(lag.p99),
                ms(lag.max)
            );
        }
        for (code, n) in &self.rc {
            let meaning = rc::meaning(code).unwrap_or("(no meaning known)");
            let _ = writeln!(out, "  rc {code} {meaning:<40} {n}");
        }
        let _ = writeln!(
            out,
            "  mismatches {}  timeouts {}  errors {}",
            self.mismatches, self.timeouts, self.errors
        );
        for e in &self.error_messages {
            let _ = writeln!(out, "  error: {e}");
        }
        out
    }
}

/// `--json`: one object, keys in this order (the benchmark report reads it).
#[derive(Serialize)]
struct JsonSummary<'a> {
    mode: &'static str,
    connections: u32,
    in_flight: u32,
    rate: Option<u64>,
    duration_s: f64,
    sent: u64,
    received: u64,
    throughput_per_s: f64,
    latency_us: JsonLatency,
    rc: &'a BTreeMap<String, u64>,
    mismatches: u64,
    timeouts: u64,
    errors: u64,
}

#[derive(Serialize)]
struct JsonLatency {
    p50: f64,
    p90: f64,
    p99: f64,
    p99_9: f64,
    max: f64,
}
