//! Windowed counters for velocity checks ("how much did this card spend in
//! the last hour?"), scoped by tenant and plugin.
//!
//! Each counter keeps at most about 60 buckets across its window (a bucket is
//! `window / 60` seconds wide, at least one second), so a sum is exact to
//! within one bucket at the window's far edge. Counters whose window has
//! passed are evicted. Keys are held only as keyed hashes.
//!
//! This is the in-memory half, and the authority for add-and-sum: one
//! shard's mutex covers the add and the sum, so two concurrent adds at a
//! limit see each other. [`Counters`] alone forgets everything at a
//! restart (the authoring harness and tests use it so); the store's
//! counters (`SqliteStore` as the engine's `CounterStore`, see
//! `counter_log`) also write every change to SQLite and rebuild these
//! buckets at open. Each bucket carries the id of its database row for
//! that.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;

use crate::secret::Secret;

/// Longest window: 31 days (N-day and calendar-month velocity profiles).
pub const MAX_WINDOW_SECONDS: u32 = 2_678_400;
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

/// The width in seconds of the buckets of a `window`-second counter.
/// A counter's id: the keyed hash of (tenant, plugin, name, key, window),
/// never the key itself (both backends store only this).
pub(crate) fn counter_id(
    secret: &Secret,
    scope: (&str, &str),
    name: &str,
    key: &str,
    window: u32,
) -> [u8; 32] {
    secret.hash(&[
        scope.0.as_bytes(),
        scope.1.as_bytes(),
        name.as_bytes(),
        key.as_bytes(),
        &window.to_be_bytes(),
    ])
}

pub(crate) fn bucket_width(window: u32) -> u64 {
    u64::from((window / BUCKETS_PER_WINDOW).max(1))
}

/// The first second at which bucket `bucket` (of `width` seconds) is
/// outside a `window`-second window.
pub(crate) fn expires(bucket: u64, width: u64, window: u64) -> u64 {
    (bucket + 1) * width + window - 1
}

/// One change to one bucket, to be made durable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Delta {
    /// The bucket's database row.
    pub(crate) row: i64,
    /// The counter's keyed hash.
    pub(crate) counter: [u8; 32],
    /// The bucket's index (its first second / `width`).
    pub(crate) bucket: u64,
    /// Bucket width, seconds.
    pub(crate) width: u64,
    /// The counter's window, seconds.
    pub(crate) window: u64,
    /// What was added.
    pub(crate) delta: i64,
}

impl Delta {
    /// The first second at which the bucket is outside its window.
    pub(crate) fn expires(&self) -> u64 {
        expires(self.bucket, self.width, self.window)
    }
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    index: u64,
    sum: i64,
    row: i64,
}

#[derive(Debug)]
struct Window {
    width: u64,
    window: u64,
    /// Oldest first.
    buckets: VecDeque<Bucket>,
}

impl Window {
    /// Drops buckets entirely before the window.
    fn expire(&mut self, now: u64) {
        while self
            .buckets
            .front()
            .is_some_and(|b| expires(b.index, self.width, self.window) <= now)
        {
            self.buckets.pop_front();
        }
    }

    fn sum(&self) -> Result<i64, CounterError> {
        self.buckets
            .iter()
            .try_fold(0i64, |acc, b| acc.checked_add(b.sum))
            .ok_or(CounterError::Overflow)
    }
}

#[derive(Default)]
struct Shard {
    counters: HashMap<[u8; 32], Window>,
    adds: u32,
}

/// The switch's counters (in memory).
pub struct Counters {
    shards: Vec<Mutex<Shard>>,
    secret: Secret,
    /// The next bucket's row id (ids only grow, across restarts too).
    next_row: AtomicI64,
}

impl std::fmt::Debug for Counters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Counters").finish_non_exhaustive()
    }
}

impl Counters {
    /// Counters whose keys are hashed with `secret`, kept in memory only.
    pub fn new(secret: Secret) -> Counters {
        Counters {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            secret,
            next_row: AtomicI64::new(1),
        }
    }

    fn key(&self, scope: (&str, &str), name: &str, key: &str, window: u32) -> [u8; 32] {
        counter_id(&self.secret, scope, name, key, window)
    }

    fn shard(&self, id: &[u8; 32]) -> &Mutex<Shard> {
        &self.shards[id[0] as usize % SHARDS]
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

    /// [`Counters::add`] at time `now` (seconds since the epoch). An error
    /// changes nothing.
    pub fn add_at(
        &self,
        now: u64,
        scope: (&str, &str),
        name: &str,
        key: &str,
        delta: i64,
        window: u32,
    ) -> Result<i64, CounterError> {
        self.apply(now, scope, name, key, delta, window)
            .map(|(sum, _)| sum)
    }

    /// [`Counters::add_at`], returning also the bucket change to make
    /// durable (`None` when `delta` is 0).
    pub(crate) fn apply(
        &self,
        now: u64,
        scope: (&str, &str),
        name: &str,
        key: &str,
        delta: i64,
        window: u32,
    ) -> Result<(i64, Option<Delta>), CounterError> {
        if window == 0 || window > MAX_WINDOW_SECONDS {
            return Err(CounterError::Window(window));
        }
        let id = self.key(scope, name, key, window);
        let mut shard = self.shard(&id).lock();
        shard.adds = shard.adds.wrapping_add(1);
        if shard.adds.is_multiple_of(SWEEP_EVERY) {
            shard.counters.retain(|_, w| {
                w.expire(now);
                !w.buckets.is_empty()
            });
        }
        let w = shard.counters.entry(id).or_insert_with(|| Window {
            width: bucket_width(window),
            window: u64::from(window),
            buckets: VecDeque::new(),
        });
        w.expire(now);
        let sum = w
            .sum()
            .and_then(|s| s.checked_add(delta).ok_or(CounterError::Overflow));
        let change = match sum {
            Ok(_) if delta != 0 => {
                let index = now / w.width;
                let row = match w.buckets.back_mut() {
                    Some(b) if b.index == index => {
                        // The sum fits but this bucket would not: refused.
                        b.sum = b.sum.checked_add(delta).ok_or(CounterError::Overflow)?;
                        b.row
                    }
                    _ => {
                        let row = self.next_row.fetch_add(1, Ordering::Relaxed);
                        w.buckets.push_back(Bucket {
                            index,
                            sum: delta,
                            row,
                        });
                        row
                    }
                };
                Some(Delta {
                    row,
                    counter: id,
                    bucket: index,
                    width: w.width,
                    window: w.window,
                    delta,
                })
            }
            _ => None,
        };
        if w.buckets.is_empty() {
            shard.counters.remove(&id);
        }
        sum.map(|s| (s, change))
    }

    /// Takes back a change [`Counters::apply`] made (it could not be
    /// queued for writing).
    pub(crate) fn undo(&self, d: &Delta) {
        let mut shard = self.shard(&d.counter).lock();
        if let Some(w) = shard.counters.get_mut(&d.counter)
            && let Some(b) = w.buckets.iter_mut().find(|b| b.row == d.row)
        {
            b.sum = b.sum.saturating_sub(d.delta);
        }
    }

    /// Puts back a bucket read from the database (at open). Two rows of one
    /// bucket add up; a row whose width does not match its counter's other
    /// buckets, or whose sum would overflow, is refused (`false`).
    pub(crate) fn restore(&self, d: &Delta) -> bool {
        self.next_row.fetch_max(d.row + 1, Ordering::Relaxed);
        let mut shard = self.shard(&d.counter).lock();
        let w = shard.counters.entry(d.counter).or_insert_with(|| Window {
            width: d.width,
            window: d.window,
            buckets: VecDeque::new(),
        });
        if w.width != d.width || w.window != d.window {
            return false;
        }
        match w.buckets.binary_search_by_key(&d.bucket, |b| b.index) {
            Ok(i) => match w.buckets[i].sum.checked_add(d.delta) {
                Some(v) => w.buckets[i].sum = v,
                None => return false,
            },
            Err(i) => w.buckets.insert(
                i,
                Bucket {
                    index: d.bucket,
                    sum: d.delta,
                    row: d.row,
                },
            ),
        }
        true
    }

    /// Row ids from `next` on (at open: above every stored row).
    pub(crate) fn rows_from(&self, next: i64) {
        self.next_row.fetch_max(next, Ordering::Relaxed);
    }

    /// Buckets held (tests).
    #[cfg(test)]
    pub(crate) fn buckets(&self) -> usize {
        self.shards
            .iter()
            .map(|s| {
                s.lock()
                    .counters
                    .values()
                    .map(|w| w.buckets.len())
                    .sum::<usize>()
            })
            .sum()
    }
}

/// In memory only: a restart forgets them.
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

/// Now, in seconds since the Unix epoch.
pub(crate) fn now_s() -> u64 {
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
    fn bad_windows_and_overflow_are_errors_that_change_nothing() {
        let c = Counters::new(Secret::random());
        assert_eq!(
            c.add_at(1, ("a", "p"), "n", "k", 1, 0),
            Err(CounterError::Window(0))
        );
        assert_eq!(
            c.add_at(1, ("a", "p"), "n", "k", 1, MAX_WINDOW_SECONDS + 1),
            Err(CounterError::Window(MAX_WINDOW_SECONDS + 1))
        );
        c.add_at(1, ("a", "p"), "n", "k", i64::MAX, 10).unwrap();
        assert_eq!(
            c.add_at(1, ("a", "p"), "n", "k", 1, 10),
            Err(CounterError::Overflow)
        );
        assert_eq!(c.add_at(1, ("a", "p"), "n", "k", 0, 10), Ok(i64::MAX));
        // A later bucket: the sum would overflow, nothing is added.
        assert_eq!(
            c.add_at(2, ("a", "p"), "n", "k", 1, 10),
            Err(CounterError::Overflow)
        );
        assert_eq!(c.add_at(2, ("a", "p"), "n", "k", -1, 10), Ok(i64::MAX - 1));
        assert_eq!(c.buckets(), 2);
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
        assert!(c.buckets() <= 61, "{} buckets", c.buckets());
    }

    #[test]
    fn a_31_day_window_keeps_about_60_buckets_and_counts_what_is_inside() {
        let c = Counters::new(Secret::random());
        let s = ("a", "velocity");
        let day = 86_400;
        let window = MAX_WINDOW_SECONDS;
        assert_eq!(bucket_width(window), 44_640);
        // Aligned to a bucket so the far edge is exact.
        let t = 44_640 * 40_000;
        for d in 0..31 {
            for h in 0..24 {
                c.add_at(t + d * day + h * 3600, s, "count", "card", 1, window)
                    .unwrap();
            }
        }
        let last = t + 31 * day - 1;
        assert_eq!(c.add_at(last, s, "count", "card", 0, window), Ok(31 * 24));
        assert!(c.buckets() <= 61, "{} buckets", c.buckets());
        // One bucket (12.4 h) later the first bucket, day 0's first 13
        // hours, has left the window: exact to within one bucket.
        assert_eq!(
            c.add_at(last + 44_639, s, "count", "card", 0, window),
            Ok(31 * 24)
        );
        assert_eq!(
            c.add_at(last + 44_640, s, "count", "card", 0, window),
            Ok(31 * 24 - 13)
        );
        // A 7-day window is its own counter.
        assert_eq!(c.add_at(last, s, "count", "card", 0, 7 * 86_400), Ok(0));
    }

    #[test]
    fn changes_name_their_bucket_row_and_restore_rebuilds_them() {
        let c = Counters::new(Secret::random());
        let s = ("a", "p");
        let (_, first) = c.apply(100, s, "n", "k", 5, 60).unwrap();
        let (_, same) = c.apply(100, s, "n", "k", 2, 60).unwrap();
        let (_, next) = c.apply(101, s, "n", "k", 1, 60).unwrap();
        let (_, none) = c.apply(101, s, "n", "k", 0, 60).unwrap();
        let (first, same, next) = (first.unwrap(), same.unwrap(), next.unwrap());
        assert!(none.is_none());
        assert_eq!(first.row, same.row);
        assert_ne!(first.row, next.row);
        assert_eq!((first.bucket, first.width, first.window), (100, 1, 60));
        assert_eq!(first.expires(), 160);

        let rebuilt = Counters::new(c.secret.clone());
        for d in [&first, &same, &next] {
            assert!(rebuilt.restore(d));
        }
        assert_eq!(rebuilt.add_at(101, s, "n", "k", 0, 60), Ok(8));
        // New buckets get rows above the restored ones.
        let (_, later) = rebuilt.apply(102, s, "n", "k", 1, 60).unwrap();
        assert!(later.unwrap().row > next.row);
        // A row of another width for the same counter is refused.
        assert!(!rebuilt.restore(&Delta {
            width: 2,
            ..first.clone()
        }));

        c.undo(&next);
        assert_eq!(c.add_at(101, s, "n", "k", 0, 60), Ok(7));
    }
}
