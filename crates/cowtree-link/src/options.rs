//! What a caller of [`crate::link_tree`] can ask for, and how it hears about progress.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::state::LinkMode;

/// What to do when the destination (or an entry inside it) already exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnExisting {
    /// Refuse before any work if the destination exists. The default: nothing that exists is
    /// ever touched.
    #[default]
    Fail,
    /// Merge into the existing destination. Every file, symlink or directory from the source
    /// replaces what is at its name: a file is linked to a temporary name in the same directory
    /// and renamed over the old entry, so an existing inode is never truncated or written
    /// through (a hardlink from the old entry to a file elsewhere leaves that file unchanged),
    /// and a symlink in the way is replaced, never followed. Existing directories are merged
    /// into; entries that are not in the source are kept.
    Overwrite,
    /// Merge into the existing destination, keeping every entry that is already there (and
    /// everything under an existing non-directory where the source has a directory).
    Skip,
}

/// Options for [`crate::link_tree`]. `LinkOptions::default()` clones where it can, copies
/// where it cannot, refuses an existing destination, preserves times and uses every core.
#[derive(Clone)]
pub struct LinkOptions {
    /// How files are linked (default: [`LinkMode::Auto`], clone else copy).
    pub mode: LinkMode,
    /// Turn every fallback (clone -> copy, hardlink -> copy, a per-file fallback) into
    /// [`crate::LinkError::StrictFallback`]. A new destination is then not created at all.
    pub strict: bool,
    /// What to do with an existing destination.
    pub on_existing: OnExisting,
    /// Give files, symlinks and new directories the source's access and modification times
    /// (directories get theirs after their contents are complete). Default true.
    pub preserve_times: bool,
    /// Worker threads; 0 (the default) means one per available core (at most 64 in all). The
    /// number actually used is also bounded so that open file descriptors (at most
    /// [`cowtree_fs::walk::FDS_PER_WORKER`] per worker) stay under the process limit
    /// (`ulimit -n`); see [`cowtree_fs::workers::budget`].
    pub jobs: usize,
    /// Skip FIFOs, sockets and device nodes (counted in [`crate::LinkReport::special`])
    /// instead of refusing the whole tree before any work.
    pub skip_special: bool,
    /// Told about progress; see [`Progress`] and [`ProgressCounters`].
    pub progress: Option<Arc<dyn Progress>>,
    /// List every entry written in [`crate::LinkReport::record`] (path, kind, size, method).
    pub record: bool,
    /// Also give each regular file's content hash in the record (implies `record`). The hash
    /// is of the destination file, read right after it was linked.
    pub hash: Option<HashAlgo>,
    /// Find the size of each hardlinked file (one `stat` of the new link after each `linkat`,
    /// which writes no data and so learns none), for the record's
    /// [`crate::RecordEntry::size`] and the report's byte counts. Default true. A caller that
    /// knows its sizes already (an installer, from the package's own file list) can turn it
    /// off: a hardlinked file's `size` is then `None` and its bytes are not counted. Cloned,
    /// copied and symlinked entries always have their size.
    pub hardlink_sizes: bool,
    /// Make what was written durable before it is published: a new destination's staging
    /// directory is synced (`syncfs` of its filesystem) before it is renamed into place and
    /// its parent after; a merge's new entries before they are renamed in, its journal before
    /// the first rename, and everything again after the last.
    /// Default false: like `cp`, nothing is synced unless asked.
    pub sync: bool,
    /// Make a new destination from one source tree in one call where the filesystem can (a
    /// btrfs snapshot of a subvolume root, see [`cowtree_fs::whole_tree`]) and nothing in the
    /// call needs per-file work (a merge, several sources, a mapping, a mode other than
    /// clone, a record, times not kept, special files skipped). The result then differs from
    /// the per-file one as a snapshot does: every entry keeps its owner, extended attributes,
    /// set-ID bits and hardlinks, and special files are copied (docs/subvolumes.md). The
    /// report says which ran ([`crate::LinkReport::method`]) and why per file
    /// ([`crate::LinkReport::per_file_reason`]). Default false: the per-file contract of the
    /// crate documentation holds unless asked.
    pub whole_tree: bool,
    /// What is kept of each entry beyond its data, permission bits and times (the per-file
    /// way only; a whole-tree snapshot keeps everything): see [`Preserve`]. Default: nothing
    /// more, the copy belongs to whoever runs the link.
    pub preserve: Preserve,
    /// A merge into an existing destination takes a lock on it (an exclusive `flock` on the
    /// destination directory) so that two merges into one destination run one after the
    /// other. With `wait` (the default), a merge that finds the lock held waits for it,
    /// telling [`Progress::waiting`]; without, it fails at once with
    /// [`crate::LinkError::DestinationBusy`], changing nothing.
    pub wait: bool,
}

/// What the per-file way keeps of each entry beyond its data, permission bits and times, as
/// GNU `cp --preserve` names it. What could not be kept (not permitted, not supported by the
/// destination) is counted in [`crate::LinkReport::not_kept`], never an error.
///
/// Metadata is applied to each entry this run makes in `cp`'s order: owner and group first
/// (a `chown` clears set-ID bits), then the mode with its set-ID bits, then extended
/// attributes and ACLs; none of these touches the access and modification times already
/// given, and a directory gets its times last, once its contents are complete. Destination
/// entries are reached through their directory's handle and never followed if a symlink.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Preserve {
    /// Owner and group (`chown`, never following symlinks) where the caller may: root (or
    /// `CAP_CHOWN`) keeps both; otherwise the group alone is set where the caller is a member,
    /// and the entry is counted in [`crate::NotKept::ownership`]. Set-user-ID and
    /// set-group-ID bits of files are kept only on entries whose owner and group were kept.
    pub ownership: bool,
    /// Extended attributes other than ACLs (`user.*`; `security.*` and `trusted.*` where the
    /// caller may write them). A symlink's own too (read and set through handles of the links,
    /// never their targets), as `cp -a` keeps them; Linux allows no `user.*` on one.
    pub xattr: bool,
    /// POSIX ACLs (the `system.posix_acl_access` and `system.posix_acl_default` attributes).
    /// A symlink has none.
    pub acl: bool,
    /// Regular files with several names inside the source get as many names of one inode in
    /// the destination (counted in [`crate::LinkReport::hardlinks`]), instead of one copy
    /// each.
    pub links: bool,
    /// FIFOs, sockets and (as root) device nodes are made again (`mknodat`) instead of
    /// refused or skipped; a device the caller may not make is counted in
    /// [`crate::NotKept::special`]. Trees given with a path mapping skip them.
    pub special: bool,
}

impl Preserve {
    /// Everything: what `cp -a` keeps.
    pub const ALL: Preserve = Preserve {
        ownership: true,
        xattr: true,
        acl: true,
        links: true,
        special: true,
    };

    /// Nothing beyond data, permission bits and times (the same as `Preserve::default()`,
    /// usable in a constant).
    pub const NONE: Preserve = Preserve {
        ownership: false,
        xattr: false,
        acl: false,
        links: false,
        special: false,
    };

    /// What both `self` and `other` ask for.
    pub fn and(self, other: Preserve) -> Preserve {
        Preserve {
            ownership: self.ownership && other.ownership,
            xattr: self.xattr && other.xattr,
            acl: self.acl && other.acl,
            links: self.links && other.links,
            special: self.special && other.special,
        }
    }

    /// What `self` asks for and `other` does not.
    pub fn without(self, other: Preserve) -> Preserve {
        Preserve {
            ownership: self.ownership && !other.ownership,
            xattr: self.xattr && !other.xattr,
            acl: self.acl && !other.acl,
            links: self.links && !other.links,
            special: self.special && !other.special,
        }
    }

    /// True when nothing is asked for.
    pub fn is_none(self) -> bool {
        self == Preserve::NONE
    }

    /// True when some metadata (owner, attributes, ACLs) is applied to each entry made.
    pub fn metadata(self) -> bool {
        self.ownership || self.xattr || self.acl
    }
}

/// What of `opts` this platform cannot do, for [`crate::LinkError::Unsupported`]: nothing on
/// unix. On Windows: a whole-tree copy (no subvolumes or directory clones there), symlink mode
/// (a symlink there needs a privilege, and a file's and a directory's differ: not ported
/// yet), and under
/// [`LinkOptions::preserve`] owners, extended attributes and ACLs (an owner is a SID and
/// attributes are streams: not kept, and not pretended), hardlinks inside the source kept as
/// hardlinks, and special files (Windows has none to make).
pub fn unsupported_here(opts: &LinkOptions) -> Option<&'static str> {
    if cfg!(windows) {
        let p = opts.preserve;
        if opts.whole_tree {
            return Some("a whole-tree copy (whole_tree)");
        }
        if opts.mode == crate::state::LinkMode::Symlink {
            return Some("symlink mode (LinkMode::Symlink)");
        }
        if p.ownership {
            return Some("keeping owners (preserve ownership)");
        }
        if p.xattr || p.acl {
            return Some("keeping extended attributes and ACLs (preserve xattr, acl)");
        }
        if p.links {
            return Some("keeping hardlinks inside the source (preserve links)");
        }
        if p.special {
            return Some("making special files (preserve special)");
        }
    }
    None
}

/// A content hash the record can carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HashAlgo {
    /// BLAKE3 (what cowtree's store names blobs by).
    Blake3,
    /// SHA-256 (what Python wheel RECORD files and most lockfiles use).
    Sha256,
}

/// What a source entry is, as a path mapping hook and the record see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EntryKind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symlink.
    Symlink,
}

impl EntryKind {
    /// `file`, `dir` or `symlink`.
    pub fn as_str(self) -> &'static str {
        match self {
            EntryKind::File => "file",
            EntryKind::Dir => "dir",
            EntryKind::Symlink => "symlink",
        }
    }
}

impl Default for LinkOptions {
    fn default() -> Self {
        Self {
            mode: LinkMode::Auto,
            strict: false,
            on_existing: OnExisting::Fail,
            preserve_times: true,
            jobs: 0,
            skip_special: false,
            progress: None,
            record: false,
            hash: None,
            hardlink_sizes: true,
            sync: false,
            whole_tree: false,
            preserve: Preserve::default(),
            wait: true,
        }
    }
}

impl fmt::Debug for LinkOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LinkOptions")
            .field("mode", &self.mode)
            .field("strict", &self.strict)
            .field("on_existing", &self.on_existing)
            .field("preserve_times", &self.preserve_times)
            .field("jobs", &self.jobs)
            .field("skip_special", &self.skip_special)
            .field("progress", &self.progress.is_some())
            .field("record", &self.record)
            .field("hash", &self.hash)
            .field("hardlink_sizes", &self.hardlink_sizes)
            .field("sync", &self.sync)
            .field("whole_tree", &self.whole_tree)
            .field("preserve", &self.preserve)
            .field("wait", &self.wait)
            .finish()
    }
}

/// What the source scan found, given to [`Progress::scanned`] before any destination work.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScanTotals {
    /// Regular files.
    pub files: u64,
    /// Directories below the top one.
    pub dirs: u64,
    /// Symlinks.
    pub symlinks: u64,
    /// FIFOs, sockets and device nodes.
    pub special: u64,
}

impl ScanTotals {
    /// Entries that will be linked (files, directories and symlinks).
    pub fn entries(&self) -> u64 {
        self.files + self.dirs + self.symlinks
    }
}

/// Receives progress from a running [`crate::link_tree`], from several worker threads at
/// once. Calls are cheap and frequent (about once per directory); keep them short.
pub trait Progress: Send + Sync {
    /// The source has been scanned; nothing has been written yet.
    fn scanned(&self, totals: &ScanTotals) {
        let _ = totals;
    }

    /// `entries` more entries (files, directories, symlinks, skipped entries) and `bytes`
    /// more bytes of file data are done.
    fn advanced(&self, entries: u64, bytes: u64) {
        let _ = (entries, bytes);
    }

    /// The call waits for another merge into the destination `dst` to finish (see
    /// [`LinkOptions::wait`]); called once per call, before it waits.
    fn waiting(&self, dst: &std::path::Path) {
        let _ = dst;
    }
}

/// A [`Progress`] made of atomic counters, for a caller that polls (e.g. a progress bar
/// redrawn from another thread).
#[derive(Debug, Default)]
pub struct ProgressCounters {
    /// Set once the scan is complete.
    pub scanned: AtomicBool,
    /// Entries to do, known once `scanned` is set.
    pub total: AtomicU64,
    /// Entries done so far.
    pub done: AtomicU64,
    /// Bytes of file data done so far.
    pub bytes: AtomicU64,
}

impl Progress for ProgressCounters {
    fn scanned(&self, totals: &ScanTotals) {
        self.total.store(totals.entries(), Ordering::Relaxed);
        self.scanned.store(true, Ordering::Release);
    }

    fn advanced(&self, entries: u64, bytes: u64) {
        self.done.fetch_add(entries, Ordering::Relaxed);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
    }
}

/// The shared counters of [`cowtree_fs::Progress`] (used by the store and worktree
/// operations too): the scan sets the total in entries, and each advance adds to the counts.
impl Progress for cowtree_fs::Progress {
    fn scanned(&self, totals: &ScanTotals) {
        self.set_total(cowtree_fs::progress::Total {
            entries: totals.entries(),
            bytes: None,
        });
    }

    fn advanced(&self, entries: u64, bytes: u64) {
        self.add(entries, bytes);
    }
}
