//! Windowed counters for velocity checks ("how much did this card spend in
//! the last hour?"), scoped by tenant and plugin.
//!
//! Each counter keeps at most about 60 buckets across its window (a bucket is
//! `window / 60` seconds wide, at least one second), so a sum is exact to
//! within one bucket at the window's far edge. Counters whose window has
//! passed are evicted. Keys are held only as keyed hashes.
//!
//! They live in memory for now: a restart forgets them.

use std::collections::{HashMap, VecDeque};
use std::time::{SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;

use crate::secret::Secret;

/// Longest window: one day.
pub const MAX_WINDOW_SECONDS: u32 = 86_400;
const BUCKETS_PER_WINDOW: u32 = 60;
const SHARDS: usize = 16;
const SWEEP_EVERY: u32 = 4096;

/// A bad counter request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CounterError {
    /// The window is 0 or over [`MAX_WINDOW_SECONDS`].
    #[error("window of {0} seconds is outside 1..={MAX_WINDOW_SECONDS}")]
    Window(u32),
    /// The sum overflowed.
    #[error("counter overflow")]
    Overflow,
}

#[derive(Debug)]
struct Window {
    width: u64,
    window: u64,
    /// (bucket index, sum), oldest first.
    buckets: VecDeque<(u64, i64)>,
}

impl Window {
    /// Drops buckets entirely before the window.
    fn expire(&mut self, now: u64) {
        // The window is the `window` whole seconds ending with this one.
        let start = (now + 1).saturating_sub(self.window);
        while self
            .buckets
            .front()
            .is_some_and(|(b, _)| (b + 1) * self.width <= start)
        {
            self.buckets.pop_front();
        }
    }

    fn sum(&self) -> Result<i64, CounterError> {
        self.buckets
            .iter()
            .try_fold(0i64, |acc, (_, v)| acc.checked_add(*v))
            .ok_or(CounterError::Overflow)
    }
}

#[derive(Default)]
struct Shard {
    counters: HashMap<[u8; 32], Window>,
    adds: u32,
}

/// The switch's counters.
pub struct Counters {
    shards: Vec<Mutex<Shard>>,
    secret: Secret,
}

impl std::fmt::Debug for Counters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Counters").finish_non_exhaustive()
    }
}

impl Counters {
    /// Counters whose keys are hashed with `secret`.
    pub fn new(secret: Secret) -> Counters {
        Counters {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            secret,
        }
    }

    fn key(&self, scope: (&str, &str), name: &str, key: &str, window: u32) -> [u8; 32] {
        self.secret.hash(&[
            scope.0.as_bytes(),
            scope.1.as_bytes(),
            name.as_bytes(),
            key.as_bytes(),
            &window.to_be_bytes(),
        ])
    }

    /// Adds `delta` now and returns the sum over the last `window` seconds.
    /// `scope` is (tenant, plugin).
    pub fn add(
        &self,
        scope: (&str, &str),
        name: &str,
        key: &str,
        delta: i64,
        window: u32,
    ) -> Result<i64, CounterError> {
        self.add_at(now_s(), scope, name, key, delta, window)
    }

    /// The sum over the last `window` seconds.
    pub fn sum(
        &self,
        scope: (&str, &str),
        name: &str,
        key: &str,
        window: u32,
    ) -> Result<i64, CounterError> {
        self.add_at(now_s(), scope, name, key, 0, window)
    }

    /// [`Counters::add`] at time `now` (seconds since the epoch).
    pub fn add_at(
        &self,
        now: u64,
        scope: (&str, &str),
        name: &str,
        key: &str,
        delta: i64,
        window: u32,
    ) -> Result<i64, CounterError> {
        if window == 0 || window > MAX_WINDOW_SECONDS {
            return Err(CounterError::Window(window));
        }
        let id = self.key(scope, name, key, window);
        let shard = &self.shards[id[0] as usize % SHARDS];
        let mut shard = shard.lock();
        shard.adds = shard.adds.wrapping_add(1);
        if shard.adds.is_multiple_of(SWEEP_EVERY) {
            shard.counters.retain(|_, w| {
                w.expire(now);
                !w.buckets.is_empty()
            });
        }
        let w = shard.counters.entry(id).or_insert_with(|| Window {
            width: u64::from((window / BUCKETS_PER_WINDOW).max(1)),
            window: u64::from(window),
            buckets: VecDeque::new(),
        });
        w.expire(now);
        if delta != 0 {
            let bucket = now / w.width;
            match w.buckets.back_mut() {
                Some((b, v)) if *b == bucket => {
                    *v = v.checked_add(delta).ok_or(CounterError::Overflow)?
                }
                _ => w.buckets.push_back((bucket, delta)),
            }
        }
        let sum = w.sum();
        if w.buckets.is_empty() {
            shard.counters.remove(&id);
        }
        sum
    }
}

impl switchyard_engine::ports::CounterStore for Counters {
    fn counter_add(
        &self,
        scope: (&str, &str),
        name: &str,
        key: &str,
        delta: i64,
        window_seconds: u32,
    ) -> Result<i64, switchyard_engine::ports::PortError> {
        self.add(scope, name, key, delta, window_seconds)
            .map_err(|e| switchyard_engine::ports::PortError::Invalid(e.to_string()))
    }

    fn counter_sum(
        &self,
        scope: (&str, &str),
        name: &str,
        key: &str,
        window_seconds: u32,
    ) -> Result<i64, switchyard_engine::ports::PortError> {
        self.sum(scope, name, key, window_seconds)
            .map_err(|e| switchyard_engine::ports::PortError::Invalid(e.to_string()))
    }
}

fn now_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_over_the_window_and_forgets_what_is_older() {
        let c = Counters::new(Secret::random());
        let s = ("acme", "velocity");
        let t = 1_000_000;
        assert_eq!(c.add_at(t, s, "amount", "card", 100, 60).unwrap(), 100);
        assert_eq!(c.add_at(t + 30, s, "amount", "card", 50, 60).unwrap(), 150);
        assert_eq!(c.add_at(t + 59, s, "amount", "card", 0, 60).unwrap(), 150);
        assert_eq!(c.add_at(t + 60, s, "amount", "card", 0, 60).unwrap(), 50);
        assert_eq!(c.add_at(t + 200, s, "amount", "card", 0, 60).unwrap(), 0);
    }

    #[test]
    fn counters_are_scoped() {
        let c = Counters::new(Secret::random());
        let t = 5_000;
        c.add_at(t, ("a", "p"), "n", "k", 1, 10).unwrap();
        assert_eq!(c.add_at(t, ("b", "p"), "n", "k", 0, 10).unwrap(), 0);
        assert_eq!(c.add_at(t, ("a", "q"), "n", "k", 0, 10).unwrap(), 0);
        assert_eq!(c.add_at(t, ("a", "p"), "n", "k2", 0, 10).unwrap(), 0);
        // Another window is another counter.
        assert_eq!(c.add_at(t, ("a", "p"), "n", "k", 0, 20).unwrap(), 0);
        assert_eq!(c.add_at(t, ("a", "p"), "n", "k", 0, 10).unwrap(), 1);
    }

    #[test]
    fn bad_windows_and_overflow_are_errors() {
        let c = Counters::new(Secret::random());
        assert_eq!(
            c.add_at(1, ("a", "p"), "n", "k", 1, 0),
            Err(CounterError::Window(0))
        );
        assert!(
            c.add_at(1, ("a", "p"), "n", "k", 1, MAX_WINDOW_SECONDS + 1)
                .is_err()
        );
        c.add_at(1, ("a", "p"), "n", "k", i64::MAX, 10).unwrap();
        assert_eq!(
            c.add_at(1, ("a", "p"), "n", "k", 1, 10),
            Err(CounterError::Overflow)
        );
    }

    #[test]
    fn long_windows_use_wide_buckets() {
        let c = Counters::new(Secret::random());
        let t = 10_000_000;
        for i in 0..3600 {
            c.add_at(t + i, ("a", "p"), "n", "k", 1, 3600).unwrap();
        }
        assert_eq!(
            c.add_at(t + 3599, ("a", "p"), "n", "k", 0, 3600).unwrap(),
            3600
        );
        let shard_sizes: usize = c
            .shards
            .iter()
            .map(|s| {
                s.lock()
                    .counters
                    .values()
                    .map(|w| w.buckets.len())
                    .sum::<usize>()
            })
            .sum();
        assert!(shard_sizes <= 61, "{shard_sizes} buckets");
    }
}
