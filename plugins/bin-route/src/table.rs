//! The BIN table: card-number prefixes and ranges of 1–19 digits, each naming
//! a route; the most specific (longest) matching entry wins.
//!
//! Built once per instance into two indexes:
//! - **levels**: one per prefix length present, longest first, each sorted
//!   non-overlapping `lo`/`hi` bounds searched by bisection;
//! - **segments**: the entries of up to 12 digits (the shortest PAN),
//!   scaled to 12 digits (`51..55` becomes `510000000000..559999999999`),
//!   cut into disjoint segments that each hold the route of the most
//!   specific entry covering them: at most two segments per entry.
//!
//! A lookup searches the levels longer than 12 digits (that the PAN is long
//! enough for), longest first, then the segments once: with entries of up
//! to 12 digits, one binary search (15 steps for 10,000 entries) whatever
//! the number of lengths. A PAN shorter than 12 digits searches every level
//! it is long enough for.
//!
//! A lookup reads the PAN's digits once and allocates nothing.

use std::fmt;

/// The most digits of a BIN entry (and of a PAN, ISO/IEC 7812): 19 digits
/// always fit in a `u64`.
pub const MAX_DIGITS: usize = 19;

/// The index of a route in its [`Plan`](crate::Plan).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RouteId(pub u32);

/// One BIN entry: a PAN matches when its first `len` digits, read as a
/// number, are within `lo..=hi`. A prefix is the range with `lo == hi`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BinRange {
    len: u8,
    lo: u64,
    hi: u64,
}

/// Why a `bin` pattern is not a prefix or a range.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PatternError {
    /// No digits (or an empty bound of a range).
    Empty,
    /// A character that is not an ASCII digit.
    NotDigits,
    /// More than [`MAX_DIGITS`] digits.
    TooLong(usize),
    /// `lo..hi` with bounds of different lengths.
    UnequalLengths(usize, usize),
    /// `lo..hi` with `lo` above `hi`.
    Reversed,
}

impl fmt::Display for PatternError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PatternError::Empty => write!(
                f,
                "no digits; expected a prefix of 1 to {MAX_DIGITS} digits or a range `lo..hi`"
            ),
            PatternError::NotDigits => write!(
                f,
                "a character that is not a digit; expected a prefix of 1 to {MAX_DIGITS} \
                 digits (0-9) or a range `lo..hi`"
            ),
            PatternError::TooLong(len) => write!(
                f,
                "{len} digits; a prefix or range bound has 1 to {MAX_DIGITS}"
            ),
            PatternError::UnequalLengths(lo, hi) => write!(
                f,
                "range bounds of {lo} and {hi} digits; both bounds need the same number of digits"
            ),
            PatternError::Reversed => {
                f.write_str("a low bound above the high bound; expected `lo..hi` with lo <= hi")
            }
        }
    }
}

impl std::error::Error for PatternError {}

/// The value of 1 to [`MAX_DIGITS`] ASCII digits.
fn digits_value(digits: &str) -> Result<u64, PatternError> {
    if digits.is_empty() {
        return Err(PatternError::Empty);
    }
    if !digits.bytes().all(|c| c.is_ascii_digit()) {
        return Err(PatternError::NotDigits);
    }
    if digits.len() > MAX_DIGITS {
        return Err(PatternError::TooLong(digits.len()));
    }
    Ok(digits.bytes().fold(0, |v, c| v * 10 + u64::from(c - b'0')))
}

impl BinRange {
    /// Parses a `bin` pattern: `<prefix>` or `<lo>..<hi>`, 1 to
    /// [`MAX_DIGITS`] digits, bounds of equal length, `lo <= hi`.
    pub fn parse(pattern: &str) -> Result<BinRange, PatternError> {
        let (lo, hi) = pattern.split_once("..").unwrap_or((pattern, pattern));
        let (lo_value, hi_value) = (digits_value(lo)?, digits_value(hi)?);
        if lo.len() != hi.len() {
            return Err(PatternError::UnequalLengths(lo.len(), hi.len()));
        }
        if lo_value > hi_value {
            return Err(PatternError::Reversed);
        }
        Ok(BinRange {
            // At most MAX_DIGITS (19), checked by `digits_value`.
            len: lo.len() as u8,
            lo: lo_value,
            hi: hi_value,
        })
    }

    /// The number of digits compared: the entry's specificity.
    pub fn digits(&self) -> usize {
        usize::from(self.len)
    }

    /// The low and high bounds, as numbers of [`digits`](Self::digits) digits.
    pub fn bounds(&self) -> (u64, u64) {
        (self.lo, self.hi)
    }

    /// Whether two entries of the same length share a prefix.
    pub fn overlaps(&self, other: &BinRange) -> bool {
        self.len == other.len && self.lo <= other.hi && other.lo <= self.hi
    }

    /// Whether `pan` (ASCII digits) matches: it has at least [`digits`](Self::digits)
    /// digits and its first ones are within the range. The straightforward
    /// check, for tests; [`BinTable::lookup`] answers for a whole table.
    pub fn matches(&self, pan: &[u8]) -> bool {
        let Some(head) = pan.get(..self.digits()) else {
            return false;
        };
        head.iter()
            .try_fold(0u64, |v, &c| {
                c.is_ascii_digit().then(|| v * 10 + u64::from(c - b'0'))
            })
            .is_some_and(|v| (self.lo..=self.hi).contains(&v))
    }
}

/// As in the settings: `600649` or `51..55`, leading zeros kept.
impl fmt::Display for BinRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let width = self.digits();
        if self.lo == self.hi {
            write!(f, "{:0width$}", self.lo)
        } else {
            write!(f, "{:0width$}..{:0width$}", self.lo, self.hi)
        }
    }
}

/// The entries of one prefix length, sorted by `lo`, not overlapping.
#[derive(Clone, Debug, Default)]
struct Level {
    len: usize,
    los: Vec<u64>,
    his: Vec<u64>,
    routes: Vec<RouteId>,
}

/// A BIN table ready for lookups.
#[derive(Clone, Debug, Default)]
pub struct BinTable {
    /// One level per length present, longest first.
    levels: Vec<Level>,
    /// Where each segment of the 12-digit line starts, ascending; the first
    /// is 0.
    segment_starts: Vec<u64>,
    /// The route of each segment, `None` where no entry covers it.
    segment_routes: Vec<Option<RouteId>>,
    entries: usize,
}

/// The entries of up to this many digits (the shortest PAN, ISO/IEC 7812)
/// are in the segments.
pub const SEGMENT_DIGITS: usize = 12;

/// `10^n` for `n` in `0..=MAX_DIGITS`.
const fn pow10(n: usize) -> u64 {
    let mut p = 1u64;
    let mut i = 0;
    while i < n {
        p *= 10;
        i += 1;
    }
    p
}

/// The segments of the 12-digit line ([`SEGMENT_DIGITS`]) made by the
/// levels of up to 12 digits: each start, and the route of the longest
/// entry covering it. `levels` must not overlap within a level.
fn segments(levels: &[Level]) -> (Vec<u64>, Vec<Option<RouteId>>) {
    // (position, starts, length, route): an entry covers [start, end).
    let mut events: Vec<(u64, bool, usize, RouteId)> = Vec::new();
    for level in levels.iter().filter(|level| level.len <= SEGMENT_DIGITS) {
        let scale = pow10(SEGMENT_DIGITS - level.len);
        for ((&lo, &hi), &route) in level.los.iter().zip(&level.his).zip(&level.routes) {
            // (hi + 1) * scale <= 10^12.
            events.push((lo * scale, true, level.len, route));
            events.push(((hi + 1) * scale, false, level.len, route));
        }
    }
    // At one position, an entry ends before its same-length neighbour
    // starts.
    events.sort_unstable_by_key(|&(at, starts, len, _)| (at, starts, len));
    // The entry covering the position, by length (at most one per length).
    let mut active: [Option<RouteId>; MAX_DIGITS + 1] = [None; MAX_DIGITS + 1];
    let (mut starts, mut routes) = (vec![0], vec![None]);
    for group in events.chunk_by(|a, b| a.0 == b.0) {
        for &(_, opens, len, route) in group {
            active[len] = opens.then_some(route);
        }
        let at = group[0].0;
        let winner = active.iter().rev().find_map(|route| *route);
        if routes.last() == Some(&winner) {
            continue;
        }
        if starts.last() == Some(&at) {
            // Replaces the segment starting here (only position 0).
            routes.pop();
            starts.pop();
            if routes.last() == Some(&winner) {
                continue;
            }
        }
        starts.push(at);
        routes.push(winner);
    }
    (starts, routes)
}

/// Two entries of a table's input that overlap at the same length: indexes
/// into the slice given to [`BinTable::build`], `first < second` in the
/// table's order (by low bound).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Overlap {
    /// One entry.
    pub first: usize,
    /// An entry overlapping it.
    pub second: usize,
}

impl BinTable {
    /// Builds the table from `(range, route)` entries. Entries of the same
    /// length must not overlap (which would leave the most specific entry
    /// undecided); otherwise every entry that overlaps another is reported
    /// at least once, with one entry it overlaps.
    pub fn build(entries: &[(BinRange, RouteId)]) -> Result<BinTable, Vec<Overlap>> {
        // Longest first, then by bounds; the entries' indexes.
        let mut keyed: Vec<(std::cmp::Reverse<u8>, u64, u64, usize)> = entries
            .iter()
            .enumerate()
            .map(|(i, (r, _))| (std::cmp::Reverse(r.len), r.lo, r.hi, i))
            .collect();
        keyed.sort_unstable();
        let order: Vec<usize> = keyed.into_iter().map(|(.., i)| i).collect();
        let mut overlaps = Vec::new();
        let mut levels = Vec::new();
        for group in order.chunk_by(|&a, &b| entries[a].0.len == entries[b].0.len) {
            let mut level = Level::default();
            // The entry of this level reaching highest so far.
            let mut reach: Option<usize> = None;
            for &i in group {
                let (range, route) = entries[i];
                level.len = range.digits();
                match reach {
                    Some(r) if range.lo <= entries[r].0.hi => overlaps.push(Overlap {
                        first: r,
                        second: i,
                    }),
                    _ => {}
                }
                if reach.is_none_or(|r| range.hi > entries[r].0.hi) {
                    reach = Some(i);
                }
                level.los.push(range.lo);
                level.his.push(range.hi);
                level.routes.push(route);
            }
            levels.push(level);
        }
        if !overlaps.is_empty() {
            return Err(overlaps);
        }
        let (segment_starts, segment_routes) = segments(&levels);
        Ok(BinTable {
            levels,
            segment_starts,
            segment_routes,
            entries: entries.len(),
        })
    }

    /// The number of entries.
    pub fn len(&self) -> usize {
        self.entries
    }

    /// Whether the table has no entries.
    pub fn is_empty(&self) -> bool {
        self.entries == 0
    }

    /// The route of the most specific entry matching `pan`, or `None` when
    /// no entry matches or `pan` is empty or not all ASCII digits. A PAN
    /// shorter than an entry does not match it. Allocates nothing.
    pub fn lookup(&self, pan: &[u8]) -> Option<RouteId> {
        if pan.is_empty() || !pan.iter().all(u8::is_ascii_digit) {
            return None;
        }
        // prefix[n]: the value of the first n digits.
        let mut prefix = [0u64; MAX_DIGITS + 1];
        let digits = pan.len().min(MAX_DIGITS);
        for (n, &c) in pan[..digits].iter().enumerate() {
            prefix[n + 1] = prefix[n] * 10 + u64::from(c - b'0');
        }
        for level in &self.levels {
            if level.len > digits {
                continue;
            }
            if level.len <= SEGMENT_DIGITS && digits >= SEGMENT_DIGITS {
                // The segments answer for this level and every shorter one.
                let value = prefix[SEGMENT_DIGITS];
                let at = self.segment_starts.partition_point(|&start| start <= value);
                return at
                    .checked_sub(1)
                    .and_then(|i| self.segment_routes.get(i).copied().flatten());
            }
            let value = prefix[level.len];
            let at = level.los.partition_point(|&lo| lo <= value);
            if at > 0 && value <= level.his[at - 1] {
                return Some(level.routes[at - 1]);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(pattern: &str) -> BinRange {
        BinRange::parse(pattern).unwrap()
    }

    #[test]
    fn parses_prefixes_and_ranges() {
        assert_eq!(
            range("4"),
            BinRange {
                len: 1,
                lo: 4,
                hi: 4
            }
        );
        assert_eq!(
            range("2221..2720"),
            BinRange {
                len: 4,
                lo: 2221,
                hi: 2720
            }
        );
        assert_eq!(range("0049").to_string(), "0049");
        assert_eq!(range("01..09").to_string(), "01..09");
        assert_eq!(range("51..51").to_string(), "51");
        let longest = "9".repeat(MAX_DIGITS);
        assert_eq!(range(&longest).lo, 9_999_999_999_999_999_999);
    }

    #[test]
    fn refuses_bad_patterns() {
        for (pattern, error) in [
            ("", PatternError::Empty),
            ("..5", PatternError::Empty),
            ("5..", PatternError::Empty),
            ("4x", PatternError::NotDigits),
            (" 4", PatternError::NotDigits),
            ("1..2..3", PatternError::NotDigits),
            ("-1", PatternError::NotDigits),
            ("12345678901234567890", PatternError::TooLong(20)),
            ("51..550", PatternError::UnequalLengths(2, 3)),
            ("55..51", PatternError::Reversed),
        ] {
            assert_eq!(BinRange::parse(pattern), Err(error), "{pattern:?}");
            assert!(!error.to_string().is_empty());
        }
    }

    #[test]
    fn matches_the_first_digits_only() {
        let mastercard = range("2221..2720");
        assert!(mastercard.matches(b"2223000048410010"));
        assert!(mastercard.matches(b"2720"));
        assert!(!mastercard.matches(b"2721000000000000"));
        assert!(!mastercard.matches(b"222"), "shorter than the entry");
        assert!(!mastercard.matches(b"22x3000048410010"));
    }

    #[test]
    fn the_longest_entry_wins() {
        let table = BinTable::build(&[
            (range("4"), RouteId(0)),
            (range("476173"), RouteId(1)),
            (range("4761739001010119"), RouteId(2)),
            (range("51..55"), RouteId(3)),
        ])
        .unwrap();
        assert_eq!(table.len(), 4);
        assert_eq!(table.lookup(b"4111111111111111"), Some(RouteId(0)));
        assert_eq!(table.lookup(b"4761730000000000"), Some(RouteId(1)));
        assert_eq!(table.lookup(b"4761739001010119"), Some(RouteId(2)));
        assert_eq!(table.lookup(b"5413330089010509"), Some(RouteId(3)));
        assert_eq!(table.lookup(b"5613330089010509"), None);
        assert_eq!(table.lookup(b"47617"), Some(RouteId(0)), "short PAN");
        assert_eq!(table.lookup(b""), None);
        assert_eq!(table.lookup(b"476173900101011X"), None);
        // More than 19 digits: the first 19 count.
        assert_eq!(table.lookup(b"47617390010101190000"), Some(RouteId(2)));
    }

    #[test]
    fn a_pan_shorter_than_an_entry_does_not_match_it() {
        let table = BinTable::build(&[
            (range("4"), RouteId(0)),
            (range("47617390010101191"), RouteId(1)),
            (
                range("4761739001010119000..4761739001010119999"),
                RouteId(2),
            ),
        ])
        .unwrap();
        assert_eq!(table.lookup(b"4761739001010119"), Some(RouteId(0)));
        assert_eq!(table.lookup(b"47617390010101191"), Some(RouteId(1)));
        assert_eq!(table.lookup(b"476173900101011912"), Some(RouteId(1)));
        assert_eq!(table.lookup(b"4761739001010119123"), Some(RouteId(2)));
        assert_eq!(table.lookup(b"4761739001010118123"), Some(RouteId(0)));
    }

    #[test]
    fn segments_follow_nested_and_adjacent_entries() {
        let table = BinTable::build(&[
            (range("0"), RouteId(0)),
            (range("5"), RouteId(1)),
            (range("51..55"), RouteId(2)),
            (range("56..59"), RouteId(2)),
            (range("555"), RouteId(3)),
            (range("9999999999999999999"), RouteId(4)),
        ])
        .unwrap();
        for (pan, route) in [
            (&b"0000000000000000000"[..], Some(0)),
            (b"0999999999999999999", Some(0)),
            (b"1000000000000000000", None),
            (b"4999999999999999999", None),
            (b"5000000000000000000", Some(1)),
            (b"5099999999999999999", Some(1)),
            (b"5100000000000000000", Some(2)),
            (b"5549999999999999999", Some(2)),
            (b"5550000000000000000", Some(3)),
            (b"5559999999999999999", Some(3)),
            (b"5560000000000000000", Some(2)),
            (b"5999999999999999999", Some(2)),
            (b"6000000000000000000", None),
            (b"9999999999999999998", None),
            (b"9999999999999999999", Some(4)),
        ] {
            let text = std::str::from_utf8(pan).unwrap();
            assert_eq!(table.lookup(pan), route.map(RouteId), "{text}");
        }
        // 51..55 and 56..59 (same route) make one segment after 555; the
        // 19-digit entry is not in the segments.
        assert_eq!(table.segment_routes.len(), table.segment_starts.len());
        assert_eq!(table.segment_starts.len(), 7);
        assert!(BinTable::default().lookup(b"4761739001010119").is_none());
        let empty = BinTable::build(&[]).unwrap();
        assert!(empty.is_empty() && empty.lookup(b"4761739001010119").is_none());
    }

    #[test]
    fn equal_lengths_must_not_overlap() {
        let entries = [
            (range("51..55"), RouteId(0)),
            (range("4"), RouteId(1)),
            (range("55"), RouteId(2)),
            (range("4..4"), RouteId(3)),
            (range("56..58"), RouteId(4)),
            (range("600649"), RouteId(5)),
        ];
        let overlaps = BinTable::build(&entries).unwrap_err();
        assert_eq!(
            overlaps,
            [
                Overlap {
                    first: 0,
                    second: 2
                },
                Overlap {
                    first: 1,
                    second: 3
                }
            ]
        );
        // Touching is not overlapping; a longer entry inside is fine.
        let entries = [
            (range("51..55"), RouteId(0)),
            (range("56..58"), RouteId(1)),
            (range("555"), RouteId(2)),
        ];
        assert!(BinTable::build(&entries).is_ok());
    }

    #[test]
    fn an_entry_overlapping_an_earlier_wide_one_is_found() {
        // 10..90 reaches past 20..30; 40 overlaps 10..90, not 20..30.
        let entries = [
            (range("10..90"), RouteId(0)),
            (range("20..30"), RouteId(1)),
            (range("40"), RouteId(2)),
        ];
        let overlaps = BinTable::build(&entries).unwrap_err();
        assert_eq!(
            overlaps,
            [
                Overlap {
                    first: 0,
                    second: 1
                },
                Overlap {
                    first: 0,
                    second: 2
                }
            ]
        );
    }
}
