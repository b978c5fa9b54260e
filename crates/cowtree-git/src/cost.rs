//! The cost rule: whether one snapshot of SRC, made into DST, is cheaper than making DST per
//! file.
//!
//! Both ways do the same for the tracked files SRC's index cannot prove clean (written from
//! objects) and both `lstat` every tracked file once. What differs:
//! - per file, every entry of DST is created: each tracked file and symlink, each directory,
//!   each ignored entry brought along (open, create, clone, close, and the checks around them;
//!   docs/git.md);
//! - by snapshot, nothing is created, but every entry of SRC that DST must not hold is
//!   removed from the snapshot: SRC's `.git` (the whole repository when SRC is the main
//!   worktree), untracked files, ignored entries not selected, nested repositories, the
//!   contents of submodules.
//!
//! Removing an entry from a fresh snapshot costs about what creating and cloning one costs
//! (both change metadata the snapshot still shares with SRC, a b-tree leaf at a time). So the snapshot is taken when it removes no more
//! entries than the per-file way creates ([`snapshot_pays`]). The count of entries to remove
//! is made on SRC before the snapshot, and stops as soon as it passes that limit
//! ([`limit`]), so a huge untracked tree costs no more to look at than the per-file way would
//! create. Ignored entries brought along are not counted on the per-file side (the snapshot
//! keeps them for nothing): the rule leans to per-file.

/// The most entries a snapshot may have to remove when the per-file way would create
/// `create` entries.
pub fn limit(create: u64) -> u64 {
    create
}

/// Whether the snapshot is the cheaper way: `remove` entries to remove from it, against
/// `create` entries the per-file way creates.
pub fn snapshot_pays(remove: u64, create: u64) -> bool {
    remove <= limit(create)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_pays_while_it_removes_no_more_than_per_file_creates() {
        // A packed main worktree: `.git` holds a few dozen entries.
        assert!(snapshot_pays(45, 40_000));
        // Untracked node_modules/ of 21,000 entries beside 40,000 tracked files.
        assert!(snapshot_pays(21_045, 40_000));
        assert!(snapshot_pays(40_000, 40_000));
        // 200,000 untracked entries beside 40,000 tracked ones: per file.
        assert!(!snapshot_pays(200_000, 40_000));
        assert!(!snapshot_pays(40_001, 40_000));
        // An empty tree: only a snapshot with nothing to remove.
        assert!(snapshot_pays(0, 0));
        assert!(!snapshot_pays(1, 0));
    }
}
