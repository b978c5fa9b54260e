//! The range arithmetic of Windows block cloning (`FSCTL_DUPLICATE_EXTENTS_TO_FILE`), as pure
//! functions built and tested on every platform; the calls themselves are in
//! `reflink/windows.rs`.
//!
//! What Microsoft documents, and what follows from it here:
//! - "The source and destination region must begin and end at a cluster boundary" (Block
//!   cloning on ReFS; MS-FSCC 2.3.7.1: offsets and `ByteCount` "MUST be aligned to a logical
//!   cluster boundary"): every range starts at a multiple of the cluster size and is a whole
//!   number of clusters long.
//! - "The cloned region must be less than 4GB in length": one call clones at most
//!   [`max_bytes_per_call`], the largest whole number of clusters under 4 GiB (4 GiB minus one
//!   cluster, for the power-of-two cluster sizes volumes have).
//! - The file's last, partial cluster: the limit on the source side is its allocation size,
//!   not its end (MS-FSCC 2.3.8 lists "the source range is beyond the source file's
//!   allocation size" among the refusals), and allocation is whole clusters, so the tail is
//!   cloned as one whole cluster, rounded up. The destination's size is set to the source's
//!   first ("The destination region must not extend past the end of the file ... it must first
//!   call SetEndOfFile"), which allocates its last cluster too; the bytes past the end are not
//!   part of the file.

use std::fmt;

/// The limit of one call: a region must be *less than* 4 GiB.
pub const CLONE_LIMIT: u64 = 1 << 32;

/// One `FSCTL_DUPLICATE_EXTENTS_TO_FILE` call: the same offset in source and destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CloneRange {
    /// Where the range starts, in both files; a multiple of the cluster size.
    pub offset: u64,
    /// How many bytes; a whole number of clusters, at most [`max_bytes_per_call`].
    pub len: u64,
}

/// Why no plan could be made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlanError {
    /// The cluster size is 0, not a power of two, or not under [`CLONE_LIMIT`] (no volume has
    /// such clusters; the value did not come from one).
    BadCluster(u64),
    /// The file is too large to address: rounded up to a cluster it would pass `i64::MAX`,
    /// the largest offset the call takes.
    TooLarge(u64),
}

impl fmt::Display for PlanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BadCluster(c) => write!(f, "cluster size {c} is not a power of two under 4 GiB"),
            Self::TooLarge(s) => write!(f, "a file of {s} bytes is too large to clone"),
        }
    }
}

impl std::error::Error for PlanError {}

/// The most bytes one call clones with clusters of `cluster` bytes: the largest multiple of
/// `cluster` under 4 GiB. `cluster` must be valid (see [`clone_ranges`]).
pub fn max_bytes_per_call(cluster: u64) -> u64 {
    (CLONE_LIMIT - 1) / cluster * cluster
}

/// The calls that clone a whole file of `size` bytes on a volume with clusters of `cluster`
/// bytes, in order: consecutive, cluster-aligned, each at most [`max_bytes_per_call`], the
/// last one rounded up to a whole cluster. No calls for an empty file.
pub fn clone_ranges(size: u64, cluster: u64) -> Result<CloneRanges, PlanError> {
    if cluster == 0 || !cluster.is_power_of_two() || cluster >= CLONE_LIMIT {
        return Err(PlanError::BadCluster(cluster));
    }
    let end = size
        .checked_next_multiple_of(cluster)
        .filter(|&end| end <= i64::MAX as u64)
        .ok_or(PlanError::TooLarge(size))?;
    Ok(CloneRanges {
        next: 0,
        end,
        step: max_bytes_per_call(cluster),
    })
}

/// The calls [`clone_ranges`] plans, one by one.
#[derive(Debug, Clone)]
pub struct CloneRanges {
    next: u64,
    end: u64,
    step: u64,
}

impl Iterator for CloneRanges {
    type Item = CloneRange;

    fn next(&mut self) -> Option<CloneRange> {
        if self.next >= self.end {
            return None;
        }
        let len = self.step.min(self.end - self.next);
        let range = CloneRange {
            offset: self.next,
            len,
        };
        self.next += len;
        Some(range)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = (self.end - self.next).div_ceil(self.step);
        let left = usize::try_from(left).unwrap_or(usize::MAX);
        (left, Some(left))
    }
}

impl ExactSizeIterator for CloneRanges {}

#[cfg(test)]
mod tests {
    use super::*;

    const KIB: u64 = 1024;
    const GIB: u64 = 1 << 30;

    fn plan(size: u64, cluster: u64) -> Vec<(u64, u64)> {
        clone_ranges(size, cluster)
            .expect("valid plan")
            .map(|r| (r.offset, r.len))
            .collect()
    }

    #[test]
    fn an_empty_file_needs_no_call() {
        assert_eq!(plan(0, 4 * KIB), []);
    }

    #[test]
    fn less_than_a_cluster_is_one_whole_cluster() {
        assert_eq!(plan(1, 4 * KIB), [(0, 4 * KIB)]);
        assert_eq!(plan(4 * KIB - 1, 4 * KIB), [(0, 4 * KIB)]);
        assert_eq!(plan(100, 64 * KIB), [(0, 64 * KIB)]);
    }

    #[test]
    fn exact_multiples_are_not_rounded() {
        assert_eq!(plan(4 * KIB, 4 * KIB), [(0, 4 * KIB)]);
        assert_eq!(plan(12 * KIB, 4 * KIB), [(0, 12 * KIB)]);
        assert_eq!(plan(4 * KIB + 1, 4 * KIB), [(0, 8 * KIB)]);
    }

    #[test]
    fn one_call_stays_under_4_gib_by_one_cluster() {
        assert_eq!(max_bytes_per_call(4 * KIB), 4 * GIB - 4 * KIB);
        assert_eq!(max_bytes_per_call(64 * KIB), 4 * GIB - 64 * KIB);
        assert_eq!(max_bytes_per_call(512), 4 * GIB - 512);
        // The largest file one call can do, and one byte more.
        assert_eq!(plan(4 * GIB - 4 * KIB, 4 * KIB), [(0, 4 * GIB - 4 * KIB)]);
        assert_eq!(
            plan(4 * GIB - 4 * KIB + 1, 4 * KIB),
            [(0, 4 * GIB - 4 * KIB), (4 * GIB - 4 * KIB, 4 * KIB)]
        );
    }

    #[test]
    fn a_file_over_4_gib_is_split_into_aligned_calls_under_the_limit() {
        let step = 4 * GIB - 4 * KIB;
        assert_eq!(
            plan(4 * GIB, 4 * KIB),
            [(0, step), (step, 4 * KIB)],
            "exactly 4 GiB"
        );
        assert_eq!(
            plan(10 * GIB + 5, 4 * KIB),
            [
                (0, step),
                (step, step),
                (2 * step, 10 * GIB + 4 * KIB - 2 * step)
            ]
        );
        for (size, cluster) in [
            (10 * GIB + 5, 4 * KIB),
            (9 * GIB, 64 * KIB),
            (123_456_789_012, 4 * KIB),
            (8 * GIB + 1, 512),
        ] {
            let ranges = plan(size, cluster);
            let mut at = 0;
            for &(offset, len) in &ranges {
                assert_eq!(offset, at, "consecutive");
                assert_eq!(offset % cluster, 0, "offset aligned");
                assert_eq!(len % cluster, 0, "length aligned");
                assert!(len > 0 && len < CLONE_LIMIT, "{len}");
                at += len;
            }
            assert!(at >= size && at - size < cluster, "covers {size} with {at}");
            let it = clone_ranges(size, cluster).expect("plan");
            assert_eq!(it.len(), ranges.len());
        }
    }

    #[test]
    fn impossible_cluster_sizes_are_refused_not_panicked_on() {
        for cluster in [0, 3, 4097, CLONE_LIMIT, 1 << 40] {
            assert_eq!(
                clone_ranges(1, cluster).unwrap_err(),
                PlanError::BadCluster(cluster)
            );
        }
    }

    #[test]
    fn a_size_past_the_largest_offset_is_refused() {
        assert_eq!(
            clone_ranges(u64::MAX, 4 * KIB).unwrap_err(),
            PlanError::TooLarge(u64::MAX)
        );
        assert_eq!(
            clone_ranges(i64::MAX as u64, 4 * KIB).unwrap_err(),
            PlanError::TooLarge(i64::MAX as u64)
        );
        let last = (i64::MAX as u64) / (4 * KIB) * (4 * KIB);
        assert!(clone_ranges(last, 4 * KIB).is_ok());
    }
}
