//! The circuit breaker of a loaded plugin version: a plugin that keeps
//! failing is short-circuited for a cool-down instead of costing every
//! transaction its deadline.
//!
//! Closed (the normal state) costs one atomic load per call. Only failures,
//! and calls while the breaker is not closed, take its lock.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::options::BreakerOptions;

const CLOSED: u8 = 0;
const OPEN: u8 = 1;
const HALF_OPEN: u8 = 2;

/// The state of a breaker, as metrics show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Calls run.
    Closed,
    /// Calls are refused until the cool-down is over.
    Open,
    /// The cool-down is over: one trial call runs, the others are refused.
    HalfOpen,
}

impl BreakerState {
    /// The state as a number for a gauge: 0 closed, 1 open, 2 half-open.
    pub const fn gauge(self) -> u8 {
        match self {
            BreakerState::Closed => 0,
            BreakerState::Open => 1,
            BreakerState::HalfOpen => 2,
        }
    }

    /// The state's name in logs and metrics.
    pub const fn name(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half-open",
        }
    }
}

/// What the breaker says of a call about to be made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admission {
    /// Run it.
    Call,
    /// Run it as the half-open trial: its outcome closes or re-opens.
    Trial,
    /// Refuse it: the breaker is open (or a trial is in flight); it may be
    /// tried again in about `retry_in`.
    Refused {
        /// Time left of the cool-down (zero while a trial is in flight).
        retry_in: Duration,
    },
}

/// A change of state the caller logs (once per change, not per call).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Transition {
    /// Closed → open: `failures` failures within the window.
    Opened {
        /// Failures counted in the window.
        failures: u32,
    },
    /// Half-open → open: the trial call failed.
    Reopened,
    /// Half-open → closed: the trial call succeeded.
    Closed,
}

#[derive(Debug)]
enum Inner {
    Closed { failures: VecDeque<Instant> },
    Open { until: Instant },
    HalfOpen { trial_in_flight: bool },
}

/// A circuit breaker (see [`BreakerOptions`]).
#[derive(Debug)]
pub(crate) struct Breaker {
    options: BreakerOptions,
    /// `CLOSED`, `OPEN` or `HALF_OPEN`: the lock-free fast path.
    state: AtomicU8,
    inner: Mutex<Inner>,
}

impl Breaker {
    pub(crate) fn new(options: BreakerOptions) -> Breaker {
        Breaker {
            options,
            state: AtomicU8::new(CLOSED),
            inner: Mutex::new(Inner::Closed {
                failures: VecDeque::new(),
            }),
        }
    }

    /// Its state now (an open breaker whose cool-down is over reads
    /// half-open only once a call asked).
    pub(crate) fn state(&self) -> BreakerState {
        match self.state.load(Ordering::Relaxed) {
            CLOSED => BreakerState::Closed,
            OPEN => BreakerState::Open,
            _ => BreakerState::HalfOpen,
        }
    }

    /// Whether a call may run now.
    #[inline]
    pub(crate) fn admit(&self) -> Admission {
        if self.state.load(Ordering::Acquire) == CLOSED {
            return Admission::Call;
        }
        self.admit_slow(Instant::now())
    }

    #[cold]
    fn admit_slow(&self, now: Instant) -> Admission {
        let mut inner = self.inner.lock();
        match &mut *inner {
            Inner::Closed { .. } => Admission::Call,
            Inner::Open { until } if now < *until => Admission::Refused {
                retry_in: *until - now,
            },
            Inner::Open { .. } => {
                *inner = Inner::HalfOpen {
                    trial_in_flight: true,
                };
                self.state.store(HALF_OPEN, Ordering::Release);
                Admission::Trial
            }
            Inner::HalfOpen { trial_in_flight } if *trial_in_flight => Admission::Refused {
                retry_in: Duration::ZERO,
            },
            Inner::HalfOpen { trial_in_flight } => {
                *trial_in_flight = true;
                Admission::Trial
            }
        }
    }

    /// The outcome of an admitted call: `failed` when it failed in a way
    /// that counts (trap, deadline, memory cap, fuel).
    #[inline]
    pub(crate) fn settle(&self, admission: Admission, failed: bool) -> Option<Transition> {
        match (admission, failed) {
            (Admission::Call, false) | (Admission::Refused { .. }, _) => None,
            _ => self.settle_slow(admission, failed, Instant::now()),
        }
    }

    #[cold]
    fn settle_slow(&self, admission: Admission, failed: bool, now: Instant) -> Option<Transition> {
        let limit = self.options.failures;
        if limit == 0 {
            return None;
        }
        let mut inner = self.inner.lock();
        match (&mut *inner, admission) {
            (Inner::HalfOpen { .. }, Admission::Trial) if failed => {
                *inner = Inner::Open {
                    until: now + self.options.cooldown,
                };
                self.state.store(OPEN, Ordering::Release);
                Some(Transition::Reopened)
            }
            (Inner::HalfOpen { .. }, Admission::Trial) => {
                *inner = Inner::Closed {
                    failures: VecDeque::new(),
                };
                self.state.store(CLOSED, Ordering::Release);
                Some(Transition::Closed)
            }
            (Inner::Closed { failures }, _) if failed => {
                let window = self.options.window;
                while failures
                    .front()
                    .is_some_and(|t| now.saturating_duration_since(*t) >= window)
                {
                    failures.pop_front();
                }
                failures.push_back(now);
                if failures.len() >= limit as usize {
                    let counted = failures.len() as u32;
                    *inner = Inner::Open {
                        until: now + self.options.cooldown,
                    };
                    self.state.store(OPEN, Ordering::Release);
                    Some(Transition::Opened { failures: counted })
                } else {
                    None
                }
            }
            // A call admitted while closed that ended after the breaker
            // opened: already accounted for.
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker(failures: u32, window_ms: u64, cooldown_ms: u64) -> Breaker {
        Breaker::new(BreakerOptions {
            failures,
            window: Duration::from_millis(window_ms),
            cooldown: Duration::from_millis(cooldown_ms),
        })
    }

    #[test]
    fn opens_after_n_failures_in_the_window() {
        let b = breaker(3, 1_000, 5_000);
        let t = Instant::now();
        assert_eq!(b.settle_slow(Admission::Call, true, t), None);
        assert_eq!(b.settle_slow(Admission::Call, true, t), None);
        // Successes in between do not reset the count.
        assert_eq!(b.settle(Admission::Call, false), None);
        assert_eq!(b.state(), BreakerState::Closed);
        assert_eq!(
            b.settle_slow(Admission::Call, true, t + Duration::from_millis(10)),
            Some(Transition::Opened { failures: 3 })
        );
        assert_eq!(b.state(), BreakerState::Open);
        match b.admit_slow(t + Duration::from_millis(1_010)) {
            Admission::Refused { retry_in } => assert_eq!(retry_in, Duration::from_secs(4)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn failures_outside_the_window_do_not_count() {
        let b = breaker(3, 1_000, 5_000);
        let t = Instant::now();
        b.settle_slow(Admission::Call, true, t);
        b.settle_slow(Admission::Call, true, t + Duration::from_millis(500));
        // The first one has left the window by now.
        assert_eq!(
            b.settle_slow(Admission::Call, true, t + Duration::from_millis(1_200)),
            None
        );
        assert_eq!(b.state(), BreakerState::Closed);
        assert_eq!(
            b.settle_slow(Admission::Call, true, t + Duration::from_millis(1_300)),
            Some(Transition::Opened { failures: 3 })
        );
    }

    #[test]
    fn half_open_trial_closes_on_success() {
        let b = breaker(1, 1_000, 100);
        let t = Instant::now();
        assert_eq!(
            b.settle_slow(Admission::Call, true, t),
            Some(Transition::Opened { failures: 1 })
        );
        let after = t + Duration::from_millis(150);
        assert_eq!(b.admit_slow(after), Admission::Trial);
        assert_eq!(b.state(), BreakerState::HalfOpen);
        // Only one trial at a time.
        assert_eq!(
            b.admit_slow(after),
            Admission::Refused {
                retry_in: Duration::ZERO
            }
        );
        assert_eq!(
            b.settle_slow(Admission::Trial, false, after),
            Some(Transition::Closed)
        );
        assert_eq!(b.state(), BreakerState::Closed);
        assert_eq!(b.admit(), Admission::Call);
    }

    #[test]
    fn half_open_trial_reopens_on_failure() {
        let b = breaker(1, 1_000, 100);
        let t = Instant::now();
        b.settle_slow(Admission::Call, true, t);
        let after = t + Duration::from_millis(150);
        assert_eq!(b.admit_slow(after), Admission::Trial);
        assert_eq!(
            b.settle_slow(Admission::Trial, true, after),
            Some(Transition::Reopened)
        );
        assert_eq!(b.state(), BreakerState::Open);
        assert!(matches!(
            b.admit_slow(after + Duration::from_millis(50)),
            Admission::Refused { .. }
        ));
        assert_eq!(
            b.admit_slow(after + Duration::from_millis(100)),
            Admission::Trial
        );
    }

    #[test]
    fn late_failures_of_calls_admitted_before_opening_are_ignored() {
        let b = breaker(1, 1_000, 100);
        let t = Instant::now();
        b.settle_slow(Admission::Call, true, t);
        assert_eq!(b.settle_slow(Admission::Call, true, t), None);
        assert_eq!(b.state(), BreakerState::Open);
    }

    #[test]
    fn zero_failures_turns_it_off() {
        let b = breaker(0, 1_000, 100);
        let t = Instant::now();
        for _ in 0..100 {
            assert_eq!(b.settle_slow(Admission::Call, true, t), None);
        }
        assert_eq!(b.admit(), Admission::Call);
    }
}
