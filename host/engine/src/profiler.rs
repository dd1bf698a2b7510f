//! The per-transaction profiler, printed in the seed's form:
//! `open [0.000/0.000] parse-request [0.012/0.012] validate [0.004/0.016] … end [0.100/0.100]`
//! — partial and total milliseconds at microsecond resolution.
//!
//! Cheap on the hot path: checkpoints are integer microseconds in a fixed
//! inline array (no allocation, no floats); a transaction with more than
//! [`MAX_CHECKPOINTS`] checkpoints keeps the first ones and `end`, and
//! counts the others (shown as `(+N more)` before `end`).
//!
//! Two renderings: [`Trace`] (the log line, the seed's form) and
//! [`CompactTrace`] (the tranlog's `trace` column: `name=µs` pairs, e.g.
//! `parse-request=12 validate=4 local-auth=7 end=100 external=40`). Both
//! name only fixed steps and participants (pipeline names): never card data.

use std::fmt;
use std::time::{Duration, Instant};

use crate::pipeline::{NodeId, Pipeline};

/// Most checkpoints one transaction records (`open` and `end` included).
pub const MAX_CHECKPOINTS: usize = 32;

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
    /// Microseconds since the previous checkpoint (`end`: the total).
    partial_us: u32,
    /// Microseconds since the start.
    total_us: u32,
}

const EMPTY: Checkpoint = Checkpoint {
    label: Label::Fixed(""),
    partial_us: 0,
    total_us: 0,
};

/// Checkpoints of one transaction.
#[derive(Debug, Clone)]
pub struct Profiler {
    start: Instant,
    checkpoints: [Checkpoint; MAX_CHECKPOINTS],
    len: u8,
    /// Checkpoints not recorded for want of room.
    dropped: u16,
    ended: bool,
}

impl Default for Profiler {
    /// An idle profiler (a placeholder); use [`Profiler::start`] for a real
    /// transaction.
    fn default() -> Profiler {
        Profiler {
            start: Instant::now(),
            checkpoints: [EMPTY; MAX_CHECKPOINTS],
            len: 0,
            dropped: 0,
            ended: false,
        }
    }
}

/// Whole microseconds of `d`, saturated at `u32::MAX` (71 minutes).
fn micros(d: Duration) -> u32 {
    u32::try_from(d.as_micros()).unwrap_or(u32::MAX)
}

impl Profiler {
    /// Starts the clock now, with the `open` checkpoint.
    pub fn start() -> Profiler {
        Profiler::start_at(Instant::now())
    }

    /// Starts the clock at `start` (when the frame arrived).
    pub fn start_at(start: Instant) -> Profiler {
        let mut p = Profiler {
            start,
            ..Profiler::default()
        };
        p.checkpoints[0].label = Label::Fixed("open");
        p.len = 1;
        p
    }

    fn recorded(&self) -> &[Checkpoint] {
        &self.checkpoints[..usize::from(self.len)]
    }

    fn last_total_us(&self) -> u32 {
        self.recorded().last().map_or(0, |c| c.total_us)
    }

    /// Records the time since the previous checkpoint under `label`.
    pub fn checkpoint(&mut self, label: Label) {
        let total_us = micros(self.start.elapsed());
        // The last slot is kept for `end`.
        if usize::from(self.len) >= MAX_CHECKPOINTS - 1 || self.ended {
            self.dropped = self.dropped.saturating_add(1);
            return;
        }
        let partial_us = total_us.saturating_sub(self.last_total_us());
        self.checkpoints[usize::from(self.len)] = Checkpoint {
            label,
            partial_us,
            total_us,
        };
        self.len += 1;
    }

    /// Closes the trace with `end [T/T]` (once).
    pub fn end(&mut self) {
        if !self.ended {
            self.ended = true;
            let total_us = micros(self.start.elapsed()).max(self.last_total_us());
            self.checkpoints[usize::from(self.len)] = Checkpoint {
                label: Label::Fixed("end"),
                partial_us: total_us,
                total_us,
            };
            self.len += 1;
        }
    }

    /// Time since the start.
    pub fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }

    /// The total at `end`, if ended.
    pub fn total(&self) -> Option<Duration> {
        self.ended
            .then(|| self.recorded().last())
            .flatten()
            .map(|c| Duration::from_micros(u64::from(c.total_us)))
    }

    /// Checkpoints not recorded (more than [`MAX_CHECKPOINTS`]).
    pub fn dropped(&self) -> usize {
        usize::from(self.dropped)
    }

    /// Renders the trace in the seed's form; participant names come from
    /// `pipeline`.
    pub fn trace<'a>(
        &'a self,
        pipeline: Option<&'a Pipeline>,
        external: Option<Duration>,
    ) -> Trace<'a> {
        Trace(Rendering {
            profiler: self,
            pipeline,
            external,
        })
    }

    /// Renders the trace in the tranlog's compact form
    /// (`parse-request=12 validate=4 … end=100 external=40`, µs).
    pub fn compact<'a>(
        &'a self,
        pipeline: Option<&'a Pipeline>,
        external: Option<Duration>,
    ) -> CompactTrace<'a> {
        CompactTrace(Rendering {
            profiler: self,
            pipeline,
            external,
        })
    }
}

struct Rendering<'a> {
    profiler: &'a Profiler,
    pipeline: Option<&'a Pipeline>,
    external: Option<Duration>,
}

impl Rendering<'_> {
    /// Writes each checkpoint's name with `times` after it.
    fn each(
        &self,
        f: &mut fmt::Formatter<'_>,
        skip_open: bool,
        mut times: impl FnMut(&mut fmt::Formatter<'_>, &Checkpoint) -> fmt::Result,
    ) -> fmt::Result {
        let p = self.profiler;
        let mut first = true;
        for c in p.recorded() {
            if skip_open && c.label == Label::Fixed("open") {
                continue;
            }
            if !first {
                f.write_str(" ")?;
            }
            first = false;
            if p.dropped > 0 && c.label == Label::Fixed("end") {
                let mut n = Digits::new();
                n.int(u32::from(p.dropped));
                f.write_str("(+")?;
                f.write_str(n.text())?;
                f.write_str(" more) ")?;
            }
            let name = |id: NodeId| {
                self.pipeline
                    .and_then(|p| p.node(id))
                    .map_or("?", |n| n.name())
            };
            match c.label {
                Label::Fixed(s) => f.write_str(s)?,
                Label::Prepare(id) => f.write_str(name(id))?,
                Label::Commit(id) => {
                    f.write_str("commit:")?;
                    f.write_str(name(id))?;
                }
                Label::Abort(id) => {
                    f.write_str("abort:")?;
                    f.write_str(name(id))?;
                }
            }
            times(f, c)?;
        }
        Ok(())
    }
}

/// Text built right to left in a stack buffer: integers only, one
/// `write_str` per piece (the formatting machinery's padding is slower than
/// the digits themselves).
struct Digits {
    buf: [u8; 32],
    at: usize,
}

impl Digits {
    fn new() -> Digits {
        Digits {
            buf: [0; 32],
            at: 32,
        }
    }

    fn byte(&mut self, b: u8) -> &mut Digits {
        self.at -= 1;
        self.buf[self.at] = b;
        self
    }

    /// `n` in decimal.
    fn int(&mut self, mut n: u32) -> &mut Digits {
        loop {
            self.byte(b'0' + (n % 10) as u8);
            n /= 10;
            if n == 0 {
                return self;
            }
        }
    }

    /// Microseconds as milliseconds with three decimals: `1234.567`.
    fn ms(&mut self, us: u32) -> &mut Digits {
        let frac = us % 1000;
        self.byte(b'0' + (frac % 10) as u8)
            .byte(b'0' + (frac / 10 % 10) as u8)
            .byte(b'0' + (frac / 100) as u8)
            .byte(b'.')
            .int(us / 1000)
    }

    fn text(&self) -> &str {
        // Only ASCII digits, '.', ' ', '[', '/', ']' and '=' are written.
        std::str::from_utf8(&self.buf[self.at..]).unwrap_or("?")
    }
}

/// A printable profiler trace in the seed's form (the log line).
pub struct Trace<'a>(Rendering<'a>);

impl fmt::Display for Trace<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.each(f, false, |f, c| {
            let mut d = Digits::new();
            d.byte(b']')
                .ms(c.total_us)
                .byte(b'/')
                .ms(c.partial_us)
                .byte(b'[')
                .byte(b' ');
            f.write_str(d.text())
        })?;
        if let Some(ext) = self.0.external {
            let mut d = Digits::new();
            d.byte(b']').ms(micros(ext));
            f.write_str(" external [")?;
            f.write_str(d.text())?;
        }
        Ok(())
    }
}

/// A profiler trace in the tranlog's compact form: `name=µs` pairs of the
/// partial times, `end=` the total, `external=` the endpoint's time.
pub struct CompactTrace<'a>(Rendering<'a>);

impl fmt::Display for CompactTrace<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.each(f, true, |f, c| {
            let mut d = Digits::new();
            d.int(c.partial_us).byte(b'=');
            f.write_str(d.text())
        })?;
        if let Some(ext) = self.0.external {
            let mut d = Digits::new();
            d.int(micros(ext));
            f.write_str(" external=")?;
            f.write_str(d.text())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A profiler with the given (label, total µs) checkpoints, ended at `end_us`.
    fn fixed(steps: &[(&'static str, u32)], end_us: u32) -> Profiler {
        let mut p = Profiler::start();
        let mut last = 0;
        for &(name, total_us) in steps {
            p.checkpoints[usize::from(p.len)] = Checkpoint {
                label: Label::Fixed(name),
                partial_us: total_us - last,
                total_us,
            };
            p.len += 1;
            last = total_us;
        }
        p.checkpoints[usize::from(p.len)] = Checkpoint {
            label: Label::Fixed("end"),
            partial_us: end_us,
            total_us: end_us,
        };
        p.len += 1;
        p.ended = true;
        p
    }

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

    #[test]
    fn times_are_printed_from_integer_microseconds() {
        let p = fixed(
            &[("parse-request", 12), ("validate", 16), ("slow", 1_234_567)],
            1_234_600,
        );
        assert_eq!(
            p.trace(None, Some(Duration::from_micros(40))).to_string(),
            "open [0.000/0.000] parse-request [0.012/0.012] validate [0.004/0.016] \
             slow [1234.551/1234.567] end [1234.600/1234.600] external [0.040]"
        );
        assert_eq!(p.total(), Some(Duration::from_micros(1_234_600)));
    }

    #[test]
    fn milliseconds_have_three_decimals_at_every_size() {
        for (us, text) in [
            (0, "0.000"),
            (7, "0.007"),
            (999, "0.999"),
            (1_000, "1.000"),
            (1_010, "1.010"),
            (60_000_000, "60000.000"),
            (u32::MAX, "4294967.295"),
        ] {
            let mut d = Digits::new();
            d.ms(us);
            assert_eq!(d.text(), text);
            let mut d = Digits::new();
            d.int(us);
            assert_eq!(d.text(), us.to_string());
        }
    }

    #[test]
    fn the_compact_form_is_names_and_microseconds() {
        let p = fixed(&[("parse-request", 12), ("validate", 16)], 100);
        assert_eq!(
            p.compact(None, Some(Duration::from_micros(40))).to_string(),
            "parse-request=12 validate=4 end=100 external=40"
        );
        assert_eq!(
            p.compact(None, None).to_string(),
            "parse-request=12 validate=4 end=100"
        );
    }

    #[test]
    fn partials_add_up_to_the_total_and_end_is_last() {
        let mut p = Profiler::start();
        for _ in 0..5 {
            p.checkpoint(Label::Fixed("step"));
        }
        p.end();
        p.end();
        let sum: u32 = p.recorded()[..p.recorded().len() - 1]
            .iter()
            .map(|c| c.partial_us)
            .sum();
        let end = p.recorded().last().unwrap();
        assert_eq!(end.label, Label::Fixed("end"));
        assert_eq!(sum, p.recorded()[p.recorded().len() - 2].total_us);
        assert!(end.total_us >= sum);
        assert_eq!(p.recorded().len(), 7);
    }

    #[test]
    fn more_checkpoints_than_room_are_counted_and_end_is_kept() {
        let mut p = Profiler::start();
        for _ in 0..MAX_CHECKPOINTS + 3 {
            p.checkpoint(Label::Fixed("step"));
        }
        p.end();
        assert_eq!(p.recorded().len(), MAX_CHECKPOINTS);
        assert_eq!(p.dropped(), 5);
        let s = p.trace(None, None).to_string();
        assert!(s.contains(" (+5 more) end ["), "{s}");
        assert!(
            p.compact(None, None)
                .to_string()
                .contains(" (+5 more) end=")
        );
    }

    #[test]
    fn a_profiler_is_inline() {
        // No heap: the checkpoints live in the profiler itself.
        assert!(std::mem::size_of::<Profiler>() >= MAX_CHECKPOINTS * 8);
        let p = Profiler::default();
        assert_eq!(p.recorded().len(), 0);
        assert_eq!(p.total(), None);
    }
}
