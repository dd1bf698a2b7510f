//! The per-transaction profiler, printed in the seed's form:
//! `open [0.000/0.000] parse-request [0.012/0.012] validate [0.004/0.016] … end [0.100/0.100]`
//! — partial and total milliseconds at microsecond resolution.

use std::fmt;
use std::time::{Duration, Instant};

use crate::pipeline::{NodeId, Pipeline};

/// What a checkpoint is named after.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Label {
    /// A fixed name (`open`, `parse-request`, `end`, …).
    Fixed(&'static str),
    /// A participant's `prepare` (or `prepare_for_abort`).
    Prepare(NodeId),
    /// A participant's `commit`.
    Commit(NodeId),
    /// A participant's `abort`.
    Abort(NodeId),
}

#[derive(Debug, Clone, Copy)]
struct Checkpoint {
    label: Label,
    partial: Duration,
    total: Duration,
}

/// Checkpoints of one transaction.
#[derive(Debug, Clone)]
pub struct Profiler {
    start: Instant,
    last: Instant,
    checkpoints: Vec<Checkpoint>,
    ended: bool,
}

impl Default for Profiler {
    /// An idle profiler that allocates nothing (a placeholder); use
    /// [`Profiler::start`] for a real transaction.
    fn default() -> Profiler {
        let now = Instant::now();
        Profiler {
            start: now,
            last: now,
            checkpoints: Vec::new(),
            ended: false,
        }
    }
}

impl Profiler {
    /// Starts the clock now, with the `open` checkpoint.
    pub fn start() -> Profiler {
        Profiler::start_at(Instant::now())
    }

    /// Starts the clock at `start` (when the frame arrived).
    pub fn start_at(start: Instant) -> Profiler {
        let mut checkpoints = Vec::with_capacity(12);
        checkpoints.push(Checkpoint {
            label: Label::Fixed("open"),
            partial: Duration::ZERO,
            total: Duration::ZERO,
        });
        Profiler {
            start,
            last: start,
            checkpoints,
            ended: false,
        }
    }

    /// Records the time since the previous checkpoint under `label`.
    pub fn checkpoint(&mut self, label: Label) {
        let now = Instant::now();
        self.checkpoints.push(Checkpoint {
            label,
            partial: now - self.last,
            total: now - self.start,
        });
        self.last = now;
    }

    /// Closes the trace with `end [T/T]` (once).
    pub fn end(&mut self) {
        if !self.ended {
            self.ended = true;
            let total = self.last.max(Instant::now()) - self.start;
            self.checkpoints.push(Checkpoint {
                label: Label::Fixed("end"),
                partial: total,
                total,
            });
        }
    }

    /// Time since the start.
    pub fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }

    /// The total at `end`, if ended.
    pub fn total(&self) -> Option<Duration> {
        self.ended
            .then(|| self.checkpoints.last().map(|c| c.total))
            .flatten()
    }

    /// Renders the trace; participant names come from `pipeline`.
    pub fn trace<'a>(
        &'a self,
        pipeline: Option<&'a Pipeline>,
        external: Option<Duration>,
    ) -> Trace<'a> {
        Trace {
            profiler: self,
            pipeline,
            external,
        }
    }
}

/// A printable profiler trace.
pub struct Trace<'a> {
    profiler: &'a Profiler,
    pipeline: Option<&'a Pipeline>,
    external: Option<Duration>,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

impl fmt::Display for Trace<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, c) in self.profiler.checkpoints.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            let name = |id: NodeId| {
                self.pipeline
                    .and_then(|p| p.node(id))
                    .map_or("?", |n| n.name())
            };
            match c.label {
                Label::Fixed(s) => f.write_str(s)?,
                Label::Prepare(id) => f.write_str(name(id))?,
                Label::Commit(id) => write!(f, "commit:{}", name(id))?,
                Label::Abort(id) => write!(f, "abort:{}", name(id))?,
            }
            write!(f, " [{:.3}/{:.3}]", ms(c.partial), ms(c.total))?;
        }
        if let Some(ext) = self.external {
            write!(f, " external [{:.3}]", ms(ext))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trace_has_the_seed_form() {
        let mut p = Profiler::start();
        p.checkpoint(Label::Fixed("parse-request"));
        p.end();
        let s = p.trace(None, Some(Duration::from_micros(1500))).to_string();
        assert!(s.starts_with("open [0.000/0.000] parse-request ["), "{s}");
        assert!(s.contains(" end ["), "{s}");
        assert!(s.ends_with("external [1.500]"), "{s}");
        let end = p.total().unwrap();
        assert!(end >= Duration::ZERO);
    }
}
