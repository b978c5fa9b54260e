//! The worktree walk behind status, incremental snapshot and registration.
//!
//! The traversal (`walker.rs`) is one piece, on the one walker of cowtree
//! ([`cowtree_fs::walk`]): it opens each directory relative to its parent, lists it (or
//! takes its entries from the stat cache when the directory's record proves them unchanged)
//! and `lstat`s each entry, never following a symlink. What is done with each entry is a
//! visitor's: status and adopt (`compare.rs`) compare the tree with its base, the incremental
//! snapshot (`incremental.rs`) records it into the store. A file whose stat equals its stat cache
//! record (and is not racy, see [`crate::cache`]) takes the cached content hash; only the
//! others are read.

mod compare;
mod incremental;
mod walker;

use std::path::Path;

use cowtree_fs::dir::Dir;
use cowtree_fs::progress::Progress;
use cowtree_store::Store;

pub use incremental::{Tree, cache_record};
pub(crate) use walker::dir_records_on;
pub use walker::keeps_dir_times;

use crate::base::Base;
use crate::cache::{Rec, StatCache};
use crate::error::Result;
use crate::paths::show;
use walker::Walker;

/// What a change is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ChangeKind {
    /// Content (or symlink target) differs from the base.
    Modified,
    /// Not in the base (untracked). A directory holding nothing of the base is one entry.
    Added,
    /// In the base, absent here.
    Deleted,
    /// File, directory and symlink swapped for one another.
    TypeChanged,
    /// The executable bit differs from the base.
    ModeChanged,
}

impl ChangeKind {
    /// `modified`, `added`, `deleted`, `type_changed`, `mode_changed`.
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Modified => "modified",
            ChangeKind::Added => "added",
            ChangeKind::Deleted => "deleted",
            ChangeKind::TypeChanged => "type_changed",
            ChangeKind::ModeChanged => "mode_changed",
        }
    }
}

/// One change against the base.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Change {
    /// Path relative to the worktree root (an untracked directory: without a trailing `/`).
    pub path: Vec<u8>,
    /// What changed.
    pub kind: ChangeKind,
    /// For `Added`: the path is a directory reported as one entry.
    pub is_dir: bool,
}

/// What the walk does with what it finds.
pub enum Mode<'a> {
    /// Compare with the base; hash files whose stat changed.
    Status,
    /// Just written from the base: take the base's hashes for files of the right size and
    /// kind, without reading them.
    Adopt,
    /// Also build a manifest of the tree, putting files not yet in the store into it.
    Snapshot {
        /// The store.
        store: &'a Store,
        /// A staging directory in it.
        staging: &'a Dir,
        /// The content of every file record of the stat cache is in the store (its
        /// [`StatCache::blobs_of`] is there): a trusted file needs no lookup.
        stored: bool,
        /// Walk this read-only snapshot of the worktree instead (a btrfs snapshot, which
        /// keeps every inode number and time, so the stat cache applies to it), taken when
        /// the coarse clock read the given time (ns): the cache made of the walk is dated
        /// then, since the worktree may have changed after.
        frozen: Option<(&'a Path, i64)>,
    },
}

/// What a walk found.
#[derive(Debug, Default)]
pub struct Scan {
    /// Status: changes against the base, sorted by path (adopt and snapshot report none).
    pub changes: Vec<Change>,
    /// Stat cache records for every file and symlink whose content hash is known (status
    /// and adopt modes; snapshot mode encodes them in `tree`).
    pub recs: Vec<Rec>,
    /// Status and adopt modes: directory records of the directories listed now whose every
    /// entry has a record (see [`crate::cache`]).
    pub dir_recs: Vec<Rec>,
    /// Files and symlinks read because their stat did not prove them unchanged.
    pub hashed: u64,
    /// Directories listed (the others' entries came from their stat cache records).
    pub listed: u64,
    /// Status and adopt modes: directories listed that got a record in `dir_recs` (a cache
    /// written with it spares the next walk listing them).
    pub new_dir_recs: u64,
    /// Snapshot mode: the tree's manifest and the stat cache of its files and symlinks
    /// (taken at `started_ns`), encoded in pieces; the manifest is not checked yet (see
    /// [`cowtree_store::store::ManifestWriter`]).
    pub tree: Tree,
    /// Snapshot mode: file entries.
    pub files: u64,
    /// Snapshot mode: their bytes.
    pub bytes: u64,
    /// Snapshot mode: blobs that were not in the store.
    pub new_blobs: u64,
    /// Snapshot mode: their bytes.
    pub new_bytes: u64,
    /// Clock before the walk started: the time of a cache built from `recs`.
    pub started_ns: i64,
}

impl Scan {
    /// True when there is any change.
    pub fn dirty(&self) -> bool {
        !self.changes.is_empty()
    }
}

/// Walks the worktree at `root_path` against `base`.
pub fn scan(root_path: &Path, base: &Base, cache: &StatCache, mode: Mode<'_>) -> Result<Scan> {
    scan_with_progress(root_path, base, cache, mode, &Progress::default())
}

/// [`scan`], counting into `progress` one entry for each file, symlink or other
/// non-directory found in the worktree (in the directories walked: not beneath a directory
/// reported as added), and the bytes of the files read because their stat did not prove
/// them unchanged. No total is set: the walk does not know how many entries it will find.
pub fn scan_with_progress(
    root_path: &Path,
    base: &Base,
    cache: &StatCache,
    mode: Mode<'_>,
    progress: &Progress,
) -> Result<Scan> {
    let mut started_ns = crate::cache::now_ns();
    let walker = match &mode {
        Mode::Snapshot {
            frozen: Some((at, taken_ns)),
            ..
        } => {
            started_ns = started_ns.min(*taken_ns);
            Walker::new_at(at, root_path, cache, progress)?
        }
        _ => Walker::new(root_path, cache, progress)?,
    };
    let (listed, mut out) = match mode {
        Mode::Status => {
            let shared = compare::StatusShared::new(base, progress);
            let (workers, listed) = walker.run(|| shared.visitor(), shared.root())?;
            (listed, shared.finish(workers))
        }
        Mode::Adopt => {
            let (workers, listed) = walker.run(|| compare::Adopt::new(base), 0..base.len())?;
            (listed, compare::Adopt::finish(workers))
        }
        Mode::Snapshot {
            store,
            staging,
            stored,
            frozen: _,
        } => {
            let shared = incremental::SnapshotShared::new(store, staging, stored, base, progress);
            // The store itself, inside the tree being recorded, is never recorded into
            // itself.
            let (workers, listed) = walker
                .skipping(store.root())
                .run(|| shared.visitor(), shared.root())?;
            (listed, shared.finish(workers))
        }
    };
    out.started_ns = started_ns;
    out.listed = listed;
    Ok(out)
}

/// Shows a change's path for people (`dir/` for an untracked directory).
pub fn show_change(c: &Change) -> String {
    let mut s = show(&c.path);
    if c.is_dir {
        s.insert(s.len() - 1, '/');
    }
    s
}
