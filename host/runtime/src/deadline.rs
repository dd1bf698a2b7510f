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
//! descheduled).
//!
//! At the deadline the call traps with [`wasmtime::Trap::Interrupt`] (RC 96)
//! only if it *used* the CPU: at least a sixteenth ([`CPU_SHARE`]) of its
//! deadline in thread CPU time since its slice ended (at least
//! [`CPU_MIN`]): 3.1 ms for the default 50 ms. On an oversubscribed machine a
//! call that needs microseconds can be descheduled past its deadline; it
//! wakes up to one epoch callback with the counter far past its budget, has
//! used next to no CPU, and goes on (it ends microseconds later). A looping
//! call has used half of every tick (half duty) and stops at its deadline.
//! A call that has not used its share goes on until it has, or until the
//! wall-clock backstop ([`backstop_ticks`]: deadline + max(deadline,
//! 200 ms)), where it is stopped whatever it used. Time a call waits in a
//! host import (key/value store, counters: a lock, the disk) uses no CPU
//! and counts as not running, so the backstop bounds it; CPU a host import
//! spends on the call's thread counts.
//!
//! The thread CPU time is read (one `clock_gettime`) only inside the epoch
//! callback, i.e. once per tick of a call that outlived its slice: nothing
//! is added to a call that ends within its slice.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::runtime::{Handle, RuntimeFlavor};
use wasmtime::UpdateDeadline;

use crate::runtime::EPOCH_TICK;

/// Epoch ticks a call runs before it counts as slow and gives up its
/// worker: 2 ticks = 1–2 ms.
pub(crate) const SLICE_TICKS: u64 = 2;

/// The share of its deadline (in thread CPU time, after its slice) a call
/// must have used to be stopped at the deadline: a sixteenth. A looping
/// call off the workers uses half of every tick (half duty) on an idle
/// machine, and far less on a 2× oversubscribed one, where it waits for
/// the CPU after every half-duty sleep (a quarter stopped it a median 80 ms
/// past a 50 ms deadline there, a sixteenth 12 ms); a healthy call that was
/// descheduled used microseconds.
const CPU_SHARE: u32 = 16;

/// The least CPU time that counts as a share (short deadlines).
const CPU_MIN: Duration = Duration::from_micros(500);

/// The least extra wall time past its deadline a call that used little CPU
/// gets before the backstop stops it anyway.
const BACKSTOP_MIN: Duration = Duration::from_millis(200);

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
    /// The thread's CPU time at the call's first epoch callback (the end
    /// of its slice). Set there, not in [`CallClock::start`]: a call that
    /// ends within its slice pays nothing for it.
    cpu_base: Duration,
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

/// The tick past which a call of `budget` ticks is stopped whatever CPU it
/// used: deadline + max(deadline, [`BACKSTOP_MIN`]).
pub(crate) fn backstop_ticks(budget: u64) -> u64 {
    let min =
        u64::try_from(BACKSTOP_MIN.as_micros() / EPOCH_TICK.as_micros().max(1)).unwrap_or(u64::MAX);
    budget.saturating_add(budget.max(min))
}

/// The calling thread's CPU time (`CLOCK_THREAD_CPUTIME_ID` through libc,
/// which valgrind understands; zero where it cannot be read, which makes a
/// call count as not running, so the backstop bounds it).
fn thread_cpu_time() -> Duration {
    cpu_time::ThreadTime::try_now()
        .map(|t| t.as_duration())
        .unwrap_or_default()
}

/// The epoch callback of every store: trap at the deadline if the call
/// used its share of the CPU (or at the backstop), else hand the worker off
/// (once) and go on for another tick.
pub(crate) fn on_epoch(clock: &mut CallClock, ticks: &Ticks) -> UpdateDeadline {
    on_epoch_with(clock, ticks, thread_cpu_time)
}

/// [`on_epoch`] with the thread CPU clock `cpu` (a fake one in tests).
fn on_epoch_with(
    clock: &mut CallClock,
    ticks: &Ticks,
    cpu: impl FnOnce() -> Duration,
) -> UpdateDeadline {
    // The call started somewhere in tick `started`: it has run at least
    // `budget` ticks once the counter passed `started + budget`.
    let used = ticks.now().saturating_sub(clock.started);
    let now_cpu = cpu();
    // The first callback of a call (every later one finds an attempt made
    // or the worker handed off).
    if clock.attempts == 0 && !clock.handed_off {
        clock.cpu_base = now_cpu;
    }
    let ran = now_cpu.saturating_sub(clock.cpu_base);
    let share = (EPOCH_TICK.saturating_mul(u32::try_from(clock.budget).unwrap_or(u32::MAX))
        / CPU_SHARE)
        .max(CPU_MIN);
    let busy = ran >= share;
    if used > clock.budget && (busy || used > backstop_ticks(clock.budget)) {
        return UpdateDeadline::Interrupt;
    }
    if used == clock.budget && clock.handed_off && busy {
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

    const MS: Duration = Duration::from_millis(1);

    /// One callback at tick `at` with the thread's CPU clock at `cpu`.
    fn callback(clock: &mut CallClock, ticks: &Ticks, at: u64, cpu: Duration) -> UpdateDeadline {
        ticks.set(at);
        on_epoch_with(clock, ticks, || cpu)
    }

    fn interrupts(u: UpdateDeadline) -> bool {
        matches!(u, UpdateDeadline::Interrupt)
    }

    #[test]
    fn a_looping_call_stops_at_its_deadline() {
        let ticks = Ticks::new();
        let mut clock = CallClock::default();
        clock.start(100, 50);
        // The slice ends: off any runtime, nothing to hand off.
        assert!(!interrupts(callback(&mut clock, &ticks, 102, 5 * MS)));
        assert!(clock.handed_off);
        // Half duty: half of every tick on the CPU since the slice.
        assert!(!interrupts(callback(
            &mut clock,
            &ticks,
            149,
            5 * MS + 23 * MS
        )));
        // The last tick: stops at the deadline (sleeping at most 2 ticks).
        let t = Instant::now();
        assert!(interrupts(callback(
            &mut clock,
            &ticks,
            150,
            5 * MS + 24 * MS
        )));
        assert!(t.elapsed() < Duration::from_secs(1));
        assert!(interrupts(callback(
            &mut clock,
            &ticks,
            151,
            5 * MS + 24 * MS
        )));
    }

    #[test]
    fn a_descheduled_call_that_used_little_cpu_goes_on_to_the_backstop() {
        let ticks = Ticks::new();
        let mut clock = CallClock::default();
        clock.start(100, 50);
        // Descheduled in its slice for 60 ms: one callback, far past the
        // deadline, a few microseconds of CPU.
        let cpu = Duration::from_micros(40);
        assert!(!interrupts(callback(&mut clock, &ticks, 160, cpu)));
        // Descheduled again, and blocked in a host import: still going.
        let cpu = cpu + Duration::from_micros(30);
        assert!(!interrupts(callback(&mut clock, &ticks, 240, cpu)));
        assert!(!interrupts(callback(&mut clock, &ticks, 350, cpu)));
        // Past the backstop (deadline + 200 ms) it is stopped anyway.
        assert_eq!(backstop_ticks(50), 250);
        assert!(interrupts(callback(&mut clock, &ticks, 351, cpu)));
    }

    #[test]
    fn a_descheduled_call_that_then_loops_stops_once_it_used_its_share() {
        let ticks = Ticks::new();
        let mut clock = CallClock::default();
        clock.start(0, 40);
        assert!(!interrupts(callback(&mut clock, &ticks, 70, MS)));
        // A sixteenth of 40 ms is 2.5 ms of CPU since the first callback.
        let cpu = |us| MS + Duration::from_micros(us);
        assert!(!interrupts(callback(&mut clock, &ticks, 80, cpu(2_400))));
        assert!(interrupts(callback(&mut clock, &ticks, 81, cpu(2_500))));
        // A short deadline: at least 0.5 ms of CPU.
        clock.start(0, 2);
        assert!(!interrupts(callback(&mut clock, &ticks, 3, MS)));
        assert!(!interrupts(callback(&mut clock, &ticks, 4, cpu(400))));
        assert!(interrupts(callback(&mut clock, &ticks, 5, cpu(500))));
    }

    #[test]
    fn the_backstop_is_the_deadline_plus_the_larger_of_it_and_200_ms() {
        assert_eq!(backstop_ticks(1), 201);
        assert_eq!(backstop_ticks(50), 250);
        assert_eq!(backstop_ticks(200), 400);
        assert_eq!(backstop_ticks(5_000), 10_000);
        assert_eq!(backstop_ticks(u64::MAX), u64::MAX);
    }

    #[test]
    fn the_thread_cpu_clock_counts_running_not_sleeping() {
        let t0 = thread_cpu_time();
        std::thread::sleep(Duration::from_millis(30));
        let slept = thread_cpu_time() - t0;
        assert!(slept < Duration::from_millis(15), "{slept:?}");
        // Spin (bounded) until the clock shows 5 ms of CPU.
        let t0 = thread_cpu_time();
        let until = Instant::now() + Duration::from_secs(20);
        while thread_cpu_time() - t0 < Duration::from_millis(5) && Instant::now() < until {}
        assert!(thread_cpu_time() - t0 >= Duration::from_millis(5));
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
