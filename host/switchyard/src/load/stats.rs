//! What the connections measured, second by second, and what it adds up
//! to: each connection reports an [`Interval`] per second of the run; the
//! collector merges them, prints the progress line and keeps one
//! [`Point`] per second for the chart.

use std::collections::BTreeMap;
use std::io::{IsTerminal as _, Write as _};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use tokio::sync::mpsc;

use super::Plan;

/// Latencies in nanoseconds, 1 ns to 1 h, 3 significant digits.
pub(crate) fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000_000, 3).expect("valid histogram bounds")
}

/// The counts every interval and the whole run keep.
#[derive(Debug, Default, Clone)]
pub(crate) struct Counts {
    pub(crate) sent: u64,
    pub(crate) received: u64,
    pub(crate) rc: BTreeMap<String, u64>,
    pub(crate) mismatches: u64,
    pub(crate) timeouts: u64,
    pub(crate) errors: u64,
}

impl Counts {
    fn add(&mut self, other: &Counts) {
        self.sent += other.sent;
        self.received += other.received;
        for (k, v) in &other.rc {
            *self.rc.entry(k.clone()).or_default() += v;
        }
        self.mismatches += other.mismatches;
        self.timeouts += other.timeouts;
        self.errors += other.errors;
    }

    /// Responses whose code is not 00 (nor 000).
    fn declined(&self) -> u64 {
        self.rc
            .iter()
            .filter(|(k, _)| k.as_str() != "00" && k.as_str() != "000")
            .map(|(_, v)| v)
            .sum()
    }
}

/// What one connection measured in one second of the run (measured
/// requests only; `warm` counts the warm-up's responses, for the progress
/// line). Latencies travel as samples, so that a connection holds no
/// histogram of its own (a few hundred KB each): the collector records them.
pub(crate) struct Interval {
    /// Seconds since the run started.
    pub(crate) second: u64,
    /// Response latencies, ns.
    pub(crate) latency: Vec<u64>,
    /// Open loop: how late requests left after their due time, ns.
    pub(crate) lag: Vec<u64>,
    pub(crate) counts: Counts,
    pub(crate) warm: u64,
    /// When its last response, timeout or error happened.
    pub(crate) last_event: Option<Instant>,
    /// The first error of the connection, said once.
    pub(crate) error: Option<String>,
}

impl Interval {
    /// An empty interval, room for `room` samples.
    pub(crate) fn new(second: u64, room: usize) -> Interval {
        Interval {
            second,
            latency: Vec::with_capacity(room),
            lag: Vec::new(),
            counts: Counts::default(),
            warm: 0,
            last_event: None,
            error: None,
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.latency.is_empty()
            && self.counts.sent == 0
            && self.counts.mismatches + self.counts.timeouts + self.counts.errors == 0
            && self.warm == 0
            && self.error.is_none()
    }
}

/// One second of the chart, latencies in ms.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Point {
    pub(crate) second: u64,
    pub(crate) p50: f64,
    pub(crate) p99: f64,
    pub(crate) max: f64,
}

/// Everything the run measured.
pub(crate) struct Collected {
    pub(crate) latency: Histogram<u64>,
    /// Open loop: how late requests left after their due time, ns.
    pub(crate) lag: Histogram<u64>,
    pub(crate) counts: Counts,
    pub(crate) points: Vec<Point>,
    pub(crate) errors: Vec<String>,
    pub(crate) last_event: Instant,
    /// Seconds of warm-up at the start of the chart.
    pub(crate) warmup_s: f64,
}

/// The per-second histograms not yet turned into points.
struct Seconds {
    open: BTreeMap<u64, Histogram<u64>>,
    points: Vec<Point>,
}

impl Seconds {
    fn add(&mut self, second: u64, h: &Histogram<u64>) {
        if h.is_empty() || self.points.last().is_some_and(|p| p.second >= second) {
            return; // nothing, or a second already drawn
        }
        let _ = self.open.entry(second).or_insert_with(histogram).add(h);
    }

    /// Turns every second before `before` into its point.
    fn close(&mut self, before: u64) {
        while let Some(entry) = self.open.first_entry() {
            if *entry.key() >= before {
                break;
            }
            let (second, h) = entry.remove_entry();
            let ms = |ns: u64| ns as f64 / 1e6;
            self.points.push(Point {
                second,
                p50: ms(h.value_at_quantile(0.5)),
                p99: ms(h.value_at_quantile(0.99)),
                max: ms(h.max()),
            });
        }
    }
}

/// Merges the connections' reports until every connection is done;
/// prints a progress line a second on stderr when `progress`.
pub(crate) async fn collect(
    plan: Arc<Plan>,
    mut reports: mpsc::Receiver<Interval>,
    progress: bool,
) -> Collected {
    let mut total = Collected {
        latency: histogram(),
        lag: histogram(),
        counts: Counts::default(),
        points: Vec::new(),
        errors: Vec::new(),
        last_event: plan.measure_from,
        warmup_s: plan.measure_from.duration_since(plan.start).as_secs_f64(),
    };
    let mut seconds = Seconds {
        open: BTreeMap::new(),
        points: Vec::new(),
    };
    let mut line = Progress::new(progress);
    let mut tick = tokio::time::interval_at(
        tokio::time::Instant::from_std(plan.start + Duration::from_secs(1)),
        Duration::from_secs(1),
    );
    loop {
        tokio::select! {
            report = reports.recv() => match report {
                Some(r) => {
                    line.add(&r);
                    let this_second = total.add(&r);
                    seconds.add(r.second, &this_second);
                }
                None => break,
            },
            _ = tick.tick() => {
                let now = plan.start.elapsed().as_secs();
                // A connection reports a second within ~50 ms of its end.
                seconds.close(now.saturating_sub(1));
                line.print(&plan, &total);
            }
        }
    }
    line.finish();
    seconds.close(u64::MAX);
    total.points = seconds.points;
    total
}

impl Collected {
    /// Adds `r` to the totals; its latencies as a histogram.
    fn add(&mut self, r: &Interval) -> Histogram<u64> {
        let mut this_second = histogram();
        for ns in &r.latency {
            this_second.saturating_record(*ns);
        }
        let _ = self.latency.add(&this_second);
        for ns in &r.lag {
            self.lag.saturating_record(*ns);
        }
        self.counts.add(&r.counts);
        if let Some(t) = r.last_event {
            self.last_event = self.last_event.max(t);
        }
        if let Some(e) = &r.error
            && self.errors.len() < 5
        {
            self.errors.push(e.clone());
        }
        this_second
    }
}

/// The progress line: overwritten in place on a terminal, a plain line a
/// second otherwise.
struct Progress {
    on: bool,
    terminal: bool,
    /// Responses since the last line (warm-up included).
    responses: u64,
    last: Instant,
    printed: bool,
}

impl Progress {
    fn new(on: bool) -> Progress {
        Progress {
            on,
            terminal: std::io::stderr().is_terminal(),
            responses: 0,
            last: Instant::now(),
            printed: false,
        }
    }

    fn add(&mut self, r: &Interval) {
        self.responses += r.counts.received + r.warm;
    }

    fn print(&mut self, plan: &Plan, total: &Collected) {
        if !self.on {
            return;
        }
        let now = Instant::now();
        let rate = self.responses as f64 / now.duration_since(self.last).as_secs_f64().max(1e-3);
        (self.responses, self.last) = (0, now);
        let c = &total.counts;
        let phase = if now < plan.measure_from {
            "warm-up "
        } else {
            ""
        };
        let p99 = if total.latency.is_empty() {
            "-".to_owned()
        } else {
            format!("{:.2}", total.latency.value_at_quantile(0.99) as f64 / 1e6)
        };
        let text = format!(
            "[{:>4} s] {phase}{:>9.0}/s  p99 {p99} ms  sent {}  received {}  rc≠00 {}  \
             mismatches {}  timeouts {}  errors {}",
            plan.start.elapsed().as_secs(),
            rate,
            c.sent,
            c.received,
            c.declined(),
            c.mismatches,
            c.timeouts,
            c.errors
        );
        let mut err = std::io::stderr().lock();
        let _ = if self.terminal {
            write!(err, "\r\x1b[2K{text}")
        } else {
            writeln!(err, "{text}")
        };
        let _ = err.flush();
        self.printed = true;
    }

    fn finish(&self) {
        if self.on && self.terminal && self.printed {
            eprintln!();
        }
    }
}
