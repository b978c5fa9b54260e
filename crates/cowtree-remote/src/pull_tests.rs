//! Unit tests of pull.rs: how the blobs of a pack are joined into ranged reads.

use super::*;

fn need(size: u64) -> Need {
    Need {
        hash: Hash::of(&size.to_le_bytes()),
        size,
        snapshot: 0,
    }
}

/// (start, end, first, blobs) of each read.
fn reads(blobs: &[(u64, u64, usize)]) -> Vec<(u64, u64, usize, usize)> {
    let blobs = blobs.iter().map(|&(off, size, at)| (need(size), off, at));
    join(blobs.collect())
        .iter()
        .map(|r| (r.start, r.end, r.first, r.blobs.len()))
        .collect()
}

#[test]
fn adjacent_blobs_join_up_to_the_largest_read() {
    // A full pull: every blob of the pack, back to back, 3 MiB each.
    let mb = 1 << 20;
    let blobs: Vec<_> = (0..5)
        .map(|i| (i * 3 * mb, 3 * mb, 4 - i as usize))
        .collect();
    assert_eq!(
        reads(&blobs),
        [
            (0, 6 * mb, 3, 2),
            (6 * mb, 12 * mb, 1, 2),
            (12 * mb, 15 * mb, 0, 1)
        ]
    );
}

#[test]
fn neighbours_closer_than_the_gap_join_with_what_lies_between() {
    // 10 KiB blobs 100 KiB apart: one read, the gaps read with them.
    let k = 1 << 10;
    let blobs: Vec<_> = (0..4).map(|i| (i * 110 * k, 10 * k, i as usize)).collect();
    assert_eq!(reads(&blobs), [(0, 340 * k, 0, 4)]);
}

#[test]
fn a_gap_past_the_limit_starts_a_new_read() {
    let mb = 1 << 20;
    let blobs = [(0, 4 * mb, 0), (4 * mb + GAP + 1, 4 * mb, 1)];
    assert_eq!(reads(&blobs).len(), 2);
}
