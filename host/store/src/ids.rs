//! Tranlog row ids: Snowflake-like, unique across nodes, increasing.
//!
//! `id = ms since 2025-01-01T00:00:00Z << 22 | node ordinal << 12 | sequence`
//! (41 bits of milliseconds last until 2094; 10 bits of node ordinal; 12 bits
//! of sequence, 4,096 ids per millisecond per node). The node ordinal is 0
//! for now: one SQLite database has one node. PostgreSQL nodes will each be
//! given an ordinal. More than 4,096 ids in one millisecond borrow from the
//! next millisecond, so ids never repeat nor decrease, even if the clock
//! steps back.

use std::sync::atomic::{AtomicI64, Ordering};

/// The ids' epoch: 2025-01-01T00:00:00Z, ms since the Unix epoch.
pub(crate) const EPOCH_MS: i64 = 1_735_689_600_000;
const NODE_BITS: u32 = 10;
const SEQ_BITS: u32 = 12;
const MS_SHIFT: u32 = NODE_BITS + SEQ_BITS;

/// Hands out row ids.
pub(crate) struct IdGen {
    last: AtomicI64,
    node: i64,
}

impl IdGen {
    /// Ids of node `ordinal` (0..1024), all greater than `floor`.
    pub(crate) fn new(ordinal: u16, floor: i64) -> IdGen {
        assert!(
            u32::from(ordinal) < 1 << NODE_BITS,
            "node ordinal over 10 bits"
        );
        IdGen {
            last: AtomicI64::new(floor),
            node: i64::from(ordinal) << SEQ_BITS,
        }
    }

    /// The next id at `now_ms` (ms since the Unix epoch).
    pub(crate) fn next_at(&self, now_ms: i64) -> i64 {
        let base = ((now_ms - EPOCH_MS).max(0) << MS_SHIFT) | self.node;
        let mut last = self.last.load(Ordering::Relaxed);
        loop {
            let next = if base > last {
                base
            } else if (last & ((1 << SEQ_BITS) - 1)) == (1 << SEQ_BITS) - 1 {
                // Sequence exhausted in this millisecond: borrow the next.
                (((last >> MS_SHIFT) + 1) << MS_SHIFT) | self.node
            } else if (last & !((1 << SEQ_BITS) - 1))
                == ((last >> MS_SHIFT) << MS_SHIFT) | self.node
            {
                last + 1
            } else {
                // `last` came from another node's ordinal (the floor at
                // open): move past it within our own ordinal.
                (((last >> MS_SHIFT) + 1) << MS_SHIFT) | self.node
            };
            match self
                .last
                .compare_exchange_weak(last, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return next,
                Err(seen) => last = seen,
            }
        }
    }

    /// The next id now.
    pub(crate) fn next(&self) -> i64 {
        self.next_at(crate::now_ms())
    }
}

/// The smallest id of a row admitted at or after `ms`.
pub(crate) fn floor_of(ms: i64) -> i64 {
    (ms - EPOCH_MS).max(0) << MS_SHIFT
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn increasing_within_a_millisecond_and_across_clock_steps() {
        let g = IdGen::new(0, 0);
        let t = EPOCH_MS + 1_000;
        let a = g.next_at(t);
        let b = g.next_at(t);
        assert_eq!(b, a + 1);
        let c = g.next_at(t - 500); // clock stepped back
        assert!(c > b);
        let mut last = c;
        for _ in 0..10_000 {
            let n = g.next_at(t);
            assert!(n > last);
            assert_eq!((n >> SEQ_BITS) & ((1 << NODE_BITS) - 1), 0, "ordinal kept");
            last = n;
        }
        assert!(g.next_at(t + 60_000) >= floor_of(t + 60_000));
    }

    #[test]
    fn above_the_floor_and_keeps_its_ordinal() {
        let foreign = floor_of(EPOCH_MS + 5_000) | (3 << SEQ_BITS) | 7;
        let g = IdGen::new(1, foreign);
        let n = g.next_at(EPOCH_MS + 1_000);
        assert!(n > foreign);
        assert_eq!((n >> SEQ_BITS) & ((1 << NODE_BITS) - 1), 1);
        let mut all: Vec<i64> = std::thread::scope(|s| {
            let threads: Vec<_> = (0..4)
                .map(|_| s.spawn(|| (0..1000).map(|_| g.next()).collect::<Vec<_>>()))
                .collect();
            threads
                .into_iter()
                .flat_map(|t| t.join().unwrap())
                .collect()
        });
        let n = all.len();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), n);
    }
}
