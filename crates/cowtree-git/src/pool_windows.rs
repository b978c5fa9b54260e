//! What [`crate::tree::make`] says on Windows in place of the pool's claim and the snapshot's
//! attempt, which are unix only: the pool of spare worktrees (its claim renames a whole tree,
//! which Windows refuses while any handle is open beneath it, and proves a spare untouched by
//! unix stat data), and btrfs snapshots. Every tree is made per file there.

use crate::way::{Input, PerFileReason};

/// Why no spare was claimed: where the repository has a pool (its settings file, which a
/// unix machine sharing the repository may have written), one line saying it is not used on
/// Windows; else nothing, as for a repository without a pool.
pub(crate) fn note(input: &Input<'_>) -> Option<String> {
    input
        .repo
        .common_dir()
        .join("cowtree/pool/settings")
        .exists()
        .then(|| "the pool of spare worktrees is not used on Windows".to_owned())
}

/// Why the tree is made per file: `--per-file` asked for it, a sparse checkout, no worktree to
/// lend files; else Windows has no whole-tree copy (no btrfs snapshot).
pub(crate) fn per_file_reason(input: &Input<'_>) -> PerFileReason {
    if input.opts.method == crate::MethodChoice::PerFile {
        PerFileReason::Asked
    } else if input.facts.sparse.is_some() {
        PerFileReason::Sparse
    } else {
        PerFileReason::Seam(cowtree_fs::whole_tree::NotUsed::Filesystem {
            fs: "a Windows volume",
        })
    }
}
