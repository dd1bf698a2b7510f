//! Per-call deadlines, and getting a slow call off the async workers.
//!
//! Every call starts with a short epoch slice ([`SLICE_TICKS`]). A call that
//! ends within it (nearly all of them) costs nothing more than today's
//! deadline trap. When the slice runs out, wasmtime calls
//! [`on_epoch`]: the call is slow, so it hands its tokio worker off
//! ([`hand_off_worker`]) — the worker's core (its task queue, I/O driver
//! and timers) moves to another thread while this thread goes on running
//! the plugin as a plain blocking thread — and then the call goes on, one
//! tick at a time and at half duty (it sleeps half of every tick, leaving
//! the CPU to the workers), until its deadline, measured on the runtime's tick
//! counter (which follows wall time: the ticker catches up after it was
//! descheduled), where it traps with [`wasmtime::Trap::Interrupt`] as the
//! plain deadline trap did.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::runtime::{Handle, RuntimeFlavor};
use wasmtime::UpdateDeadline;

use crate::runtime::EPOCH_TICK;

/// Epoch ticks a call runs before it counts as slow and gives up its
/// worker: 2 ticks = 1–2 ms.
pub(crate) const SLICE_TICKS: u64 = 2;

/// How long one hand-off attempt waits for the worker's core to be picked
/// up by another thread (sleeping, so that thread gets this CPU).
const HANDOFF_POLL: Duration = Duration::from_micros(100);

/// Polls per hand-off attempt (at most about 2 ms asleep).
const HANDOFF_POLLS: u32 = 20;

/// Hand-off attempts per call; after that the call runs where it is (a
/// thread that is not a worker has nothing to hand off).
const HANDOFF_ATTEMPTS: u8 = 3;

/// How long a slow call, once off the workers, sleeps every tick.
const SLOW_CALL_PAUSE: Duration = Duration::from_micros(500);

/// The deadline of the call a store is running (in its host state).
#[derive(Debug, Default)]
pub(crate) struct CallClock {
    /// The tick counter when the call started.
    started: u64,
    /// Ticks the call may use.
    budget: u64,
    /// The call gave up its worker (or there was none to give up).
    handed_off: bool,
    /// Hand-off attempts so far.
    attempts: u8,
    /// Set by a probe task once a thread that runs tasks has polled it.
    probe: Option<Arc<AtomicBool>>,
}

impl CallClock {
    /// A call starts at tick `now` with `budget` ticks.
    #[inline]
    pub(crate) fn start(&mut self, now: u64, budget: u64) {
        self.started = now;
        self.budget = budget;
        self.handed_off = false;
        self.attempts = 0;
        self.probe = None;
    }
}

/// The epoch callback of every store: trap at the deadline, else hand the
/// worker off (once) and go on for another tick.
pub(crate) fn on_epoch(clock: &mut CallClock, ticks: &Ticks) -> UpdateDeadline {
    // The call started somewhere in tick `started`: it has run at least
    // `budget` ticks once the counter passed `started + budget`.
    let used = ticks.now().saturating_sub(clock.started);
    if used > clock.budget {
        return UpdateDeadline::Interrupt;
    }
    if used == clock.budget && clock.handed_off {
        // The last tick, off the workers: sleep to the deadline itself and
        // stop there. A thread waking from a sleep is scheduled sooner than
        // one spinning on a busy machine, and the ticker's next wake-up
        // does not matter.
        let end = ticks.instant_of(clock.started + clock.budget + 1);
        let left = end.saturating_duration_since(Instant::now());
        std::thread::sleep(left.min(2 * EPOCH_TICK));
        return UpdateDeadline::Interrupt;
    }
    if clock.handed_off {
        // Off the workers, a slow call runs at half duty: on a machine with
        // few cores, calls spinning to their deadline would otherwise take
        // the CPU from the workers (and everything they serve).
        std::thread::sleep(SLOW_CALL_PAUSE);
    } else if clock.attempts < HANDOFF_ATTEMPTS {
        clock.attempts += 1;
        clock.handed_off = hand_off_worker(&mut clock.probe);
    }
    UpdateDeadline::Continue(1)
}

/// Moves the current tokio worker's core to another thread, so that the
/// other transactions, listeners and timers of this worker go on while the
/// slow call runs here. True once that is done (or there is no worker to
/// hand off: not on a multi-thread runtime).
///
/// `block_in_place` puts the worker's core where a new thread takes it and
/// runs the closure; when the closure returns, the core comes back to this
/// thread *unless* the new thread took it already. The closure therefore
/// sleeps until a probe task (spawned first, onto this worker's queue) has
/// run — proof that a thread runs tasks again. The probe only sets a flag
/// and ends at its first poll, so it needs no tracking: at shutdown an
/// unpolled probe is dropped.
fn hand_off_worker(probe: &mut Option<Arc<AtomicBool>>) -> bool {
    let Ok(handle) = Handle::try_current() else {
        return true;
    };
    // On a current-thread runtime `block_in_place` panics, and there is no
    // other thread to give the runtime to.
    if handle.runtime_flavor() != RuntimeFlavor::MultiThread {
        return true;
    }
    let seen = probe
        .get_or_insert_with(|| {
            let seen = Arc::new(AtomicBool::new(false));
            let flag = seen.clone();
            drop(handle.spawn(async move { flag.store(true, Ordering::Release) }));
            seen
        })
        .clone();
    tokio::task::block_in_place(|| {
        for _ in 0..HANDOFF_POLLS {
            if seen.load(Ordering::Acquire) {
                return;
            }
            std::thread::sleep(HANDOFF_POLL);
        }
    });
    seen.load(Ordering::Acquire)
}

/// The runtime's tick counter: epoch ticks since `origin`, following wall
/// time (tick `k` is due at `origin + k * EPOCH_TICK`).
#[derive(Debug)]
pub(crate) struct Ticks {
    origin: Instant,
    count: AtomicU64,
}

impl Ticks {
    /// A counter at 0 from now.
    pub(crate) fn new() -> Ticks {
        Ticks {
            origin: Instant::now(),
            count: AtomicU64::new(0),
        }
    }

    /// Ticks so far.
    #[inline]
    pub(crate) fn now(&self) -> u64 {
        self.count.load(Ordering::Acquire)
    }

    /// When tick `tick` is due.
    pub(crate) fn instant_of(&self, tick: u64) -> Instant {
        let us = u64::try_from(EPOCH_TICK.as_micros()).unwrap_or(1000);
        self.origin + Duration::from_micros(tick.saturating_mul(us))
    }

    /// Ticks due by now (what the count should be).
    pub(crate) fn due(&self) -> u64 {
        let us = EPOCH_TICK.as_micros().max(1);
        u64::try_from(self.origin.elapsed().as_micros() / us).unwrap_or(u64::MAX)
    }

    /// Sets the count (the ticker only).
    pub(crate) fn set(&self, ticks: u64) {
        self.count.store(ticks, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traps_only_past_the_budget() {
        let ticks = Ticks::new();
        let mut clock = CallClock::default();
        clock.start(100, 50);
        // Off any runtime: nothing to hand off.
        ticks.set(102);
        assert!(matches!(
            on_epoch(&mut clock, &ticks),
            UpdateDeadline::Continue(1)
        ));
        assert!(clock.handed_off);
        ticks.set(149);
        assert!(matches!(
            on_epoch(&mut clock, &ticks),
            UpdateDeadline::Continue(1)
        ));
        // The last tick: stops at the deadline (sleeping at most 2 ticks).
        ticks.set(150);
        let t = Instant::now();
        assert!(matches!(
            on_epoch(&mut clock, &ticks),
            UpdateDeadline::Interrupt
        ));
        assert!(t.elapsed() < Duration::from_secs(1));
        ticks.set(151);
        assert!(matches!(
            on_epoch(&mut clock, &ticks),
            UpdateDeadline::Interrupt
        ));
    }

    #[test]
    fn hands_off_on_a_multi_thread_runtime_and_not_on_a_current_thread_one() {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .build()
            .unwrap();
        let handed_off = rt.block_on(async {
            tokio::spawn(async {
                let ticks = Ticks::new();
                ticks.set(2);
                let mut clock = CallClock::default();
                clock.start(0, 50);
                on_epoch(&mut clock, &ticks);
                clock.handed_off
            })
            .await
            .unwrap()
        });
        assert!(handed_off);
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async {
            let ticks = Ticks::new();
            ticks.set(2);
            let mut clock = CallClock::default();
            clock.start(0, 50);
            assert!(matches!(
                on_epoch(&mut clock, &ticks),
                UpdateDeadline::Continue(1)
            ));
            assert!(clock.handed_off);
        });
    }
}
