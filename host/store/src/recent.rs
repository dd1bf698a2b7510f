//! Which match keys the tranlog may hold from the last 24 hours: a blocked
//! Bloom filter per six hours of arrivals, so that admission reads the
//! database only when an earlier row of the key may exist.
//!
//! Nearly every original is new: without the filter, each one costs a
//! database read (a reader's page cache is discarded after every commit of
//! the writer, so the read goes back to the WAL), more than the whole WASM
//! pipeline of a local authorization. With it, a new key costs a handful
//! of cache lines. The filter never says "absent" for a key it was given,
//! so duplicates and repeats are always found; a false "maybe" only costs
//! the read it saves otherwise. It is filled at open from the rows of the
//! last 24 hours and by every admission; its memory is fixed
//! (`[tranlog] duplicate_filter_mib`): past about one million keys per
//! six hours per 10 MiB, false positives — database reads — grow, and
//! correctness does not change. Size 0 turns it off.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::RwLock;

/// Arrivals one filter covers.
pub(crate) const BUCKET_MS: i64 = 6 * 60 * 60 * 1000;
/// Filters kept: the 24-hour window plus the one being filled.
const BUCKETS: usize = 5;
/// Bits set per key, all in one 512-bit block (one cache line).
const BITS_PER_KEY: u32 = 7;
const BLOCK_WORDS: usize = 8;

struct Bucket {
    /// Arrival time this filter starts at (a multiple of [`BUCKET_MS`]).
    start_ms: i64,
    words: Box<[AtomicU64]>,
}

impl Bucket {
    fn new(start_ms: i64, words: usize) -> Bucket {
        Bucket {
            start_ms,
            words: (0..words).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// The block of `hash` and its bits (word index within the block, mask).
    fn bits(&self, hash: i64) -> (usize, [(usize, u64); BITS_PER_KEY as usize]) {
        let blocks = self.words.len() / BLOCK_WORDS;
        let h = splitmix(hash as u64);
        let block = ((h >> 32) as usize % blocks) * BLOCK_WORDS;
        let mut x = splitmix(h);
        let mut out = [(0, 0); BITS_PER_KEY as usize];
        for o in &mut out {
            let bit = (x & 511) as usize;
            *o = (bit / 64, 1u64 << (bit % 64));
            x >>= 9;
        }
        (block, out)
    }

    fn insert(&self, hash: i64) {
        let (block, bits) = self.bits(hash);
        for (w, mask) in bits {
            self.words[block + w].fetch_or(mask, Ordering::Relaxed);
        }
    }

    fn may_contain(&self, hash: i64) -> bool {
        let (block, bits) = self.bits(hash);
        bits.iter()
            .all(|&(w, mask)| self.words[block + w].load(Ordering::Relaxed) & mask != 0)
    }
}

/// SplitMix64's finalizer.
fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// The filters. Callers serialise the insertion and the lookups of one key
/// (the admission's shard lock), so a key inserted is seen.
pub(crate) struct RecentKeys {
    /// Words per filter; 0: off (every lookup says "maybe").
    words: usize,
    buckets: RwLock<VecDeque<Arc<Bucket>>>,
}

impl RecentKeys {
    /// Filters of `mib` MiB in all (0: none).
    pub(crate) fn new(mib: usize) -> RecentKeys {
        let words = (mib << 20) / 8 / BUCKETS / BLOCK_WORDS * BLOCK_WORDS;
        RecentKeys {
            words,
            buckets: RwLock::default(),
        }
    }

    /// Whether the filters are on.
    pub(crate) fn enabled(&self) -> bool {
        self.words > 0
    }

    /// Records `hash`, of a key that arrived at `received_ms`.
    pub(crate) fn insert(&self, hash: i64, received_ms: i64) {
        if !self.enabled() {
            return;
        }
        let start = received_ms.div_euclid(BUCKET_MS) * BUCKET_MS;
        if let Some(b) = self.buckets.read().iter().find(|b| b.start_ms == start) {
            b.insert(hash);
            return;
        }
        let mut buckets = self.buckets.write();
        if let Some(b) = buckets.iter().find(|b| b.start_ms == start) {
            b.insert(hash);
            return;
        }
        let bucket = Arc::new(Bucket::new(start, self.words));
        bucket.insert(hash);
        buckets.push_back(bucket);
        buckets.make_contiguous().sort_by_key(|b| b.start_ms);
        while buckets.len() > BUCKETS {
            buckets.pop_front();
        }
    }

    /// Whether a key of `hash` may have arrived in the last 24 hours
    /// (always true when the filters are off).
    pub(crate) fn may_contain(&self, hash: i64) -> bool {
        !self.enabled() || self.buckets.read().iter().any(|b| b.may_contain(hash))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_given_is_never_absent_and_few_others_are_present() {
        let f = RecentKeys::new(1);
        let now = 1_800_000_000_000;
        for h in 0..20_000i64 {
            f.insert(h.wrapping_mul(0x9E37_79B9), now + h);
        }
        for h in 0..20_000i64 {
            assert!(f.may_contain(h.wrapping_mul(0x9E37_79B9)));
        }
        let false_positives = (1_000_000..1_100_000i64)
            .filter(|h| f.may_contain(h.wrapping_mul(0x9E37_79B9)))
            .count();
        assert!(false_positives < 2_000, "{false_positives} of 100,000");
    }

    #[test]
    fn old_filters_are_dropped_and_off_means_maybe() {
        let f = RecentKeys::new(1);
        f.insert(42, 0);
        for i in 1..=BUCKETS as i64 {
            f.insert(7, i * BUCKET_MS);
        }
        assert!(!f.may_contain(42), "the filter of that time was dropped");
        assert!(f.may_contain(7));
        let off = RecentKeys::new(0);
        off.insert(1, 0);
        assert!(off.may_contain(99));
    }
}
