//! A set of byte ranges whose union length is what `du` calls unique physical bytes.
//!
//! Inserts are buffered and merged in batches (sort, then coalesce), so memory stays about the
//! size of the union itself plus one batch: ten clones of a tree add ten times the ranges but
//! keep one tree's worth after each merge.

/// Half-open byte ranges `[start, end)`; overlapping and touching ranges are merged.
#[derive(Debug, Default, Clone)]
pub struct IntervalSet {
    /// Sorted, disjoint, non-touching ranges.
    merged: Vec<(u64, u64)>,
    /// Inserted since the last merge, in any order.
    pending: Vec<(u64, u64)>,
}

/// Pending ranges that trigger a merge, at least (more when the merged set is larger, which
/// keeps the total work `O(n log n)`).
const MERGE_BATCH: usize = 1 << 16;

impl IntervalSet {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `[start, start + len)`. A zero length adds nothing.
    pub fn insert(&mut self, start: u64, len: u64) {
        if len == 0 {
            return;
        }
        self.pending.push((start, start.saturating_add(len)));
        if self.pending.len() >= MERGE_BATCH.max(self.merged.len()) {
            self.merge();
        }
    }

    /// Adds every range of `other`.
    pub fn absorb(&mut self, mut other: IntervalSet) {
        other.merge();
        self.pending.extend(other.merged);
        self.merge();
    }

    /// The length of the union of all ranges.
    pub fn total(&mut self) -> u64 {
        self.merge();
        self.merged.iter().map(|(s, e)| e - s).sum()
    }

    /// The number of disjoint ranges in the union.
    pub fn ranges(&mut self) -> usize {
        self.merge();
        self.merged.len()
    }

    fn merge(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let mut all = std::mem::take(&mut self.pending);
        all.extend_from_slice(&self.merged);
        all.sort_unstable();
        let mut out: Vec<(u64, u64)> = Vec::with_capacity(all.len().min(self.merged.len() + 16));
        for (s, e) in all {
            match out.last_mut() {
                Some(last) if s <= last.1 => last.1 = last.1.max(e),
                _ => out.push((s, e)),
            }
        }
        out.shrink_to_fit();
        self.merged = out;
        self.pending = Vec::new();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn union_length_counts_overlaps_once() {
        let cases: &[(&[(u64, u64)], u64)] = &[
            (&[], 0),
            (&[(0, 10)], 10),
            (&[(0, 10), (0, 10)], 10),
            // partial overlap
            (&[(0, 10), (5, 10)], 15),
            // contained
            (&[(0, 100), (10, 5), (50, 50)], 100),
            // touching
            (&[(0, 10), (10, 10)], 20),
            // disjoint, unsorted
            (&[(100, 10), (0, 10), (50, 1)], 21),
            // zero length
            (&[(5, 0)], 0),
            // spanning two earlier ranges
            (&[(0, 10), (20, 10), (5, 20)], 30),
        ];
        for (ranges, want) in cases {
            let mut set = IntervalSet::new();
            for &(s, l) in *ranges {
                set.insert(s, l);
            }
            assert_eq!(set.total(), *want, "{ranges:?}");
        }
    }

    #[test]
    fn many_copies_of_the_same_ranges_stay_one_copy_in_memory() {
        let mut set = IntervalSet::new();
        for _clone in 0..10 {
            for i in 0..100_000u64 {
                set.insert(i * 8192, 4096);
            }
        }
        assert_eq!(set.total(), 100_000 * 4096);
        assert_eq!(set.ranges(), 100_000);
        assert!(set.pending.capacity() == 0);
    }

    #[test]
    fn absorbing_another_set_unions_them() {
        let mut a = IntervalSet::new();
        a.insert(0, 10);
        let mut b = IntervalSet::new();
        b.insert(5, 10);
        b.insert(100, 1);
        a.absorb(b);
        assert_eq!(a.total(), 16);
    }
}
