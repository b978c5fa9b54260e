//! What a link run did: entries by the method that really ran, bytes, and every fallback
//! with its cause.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use crate::options::{EntryKind, HashAlgo};
use crate::state::{Attempt, Failure};

/// Adds each named counter of `$from` to the same counter of `$to`.
macro_rules! add_counts {
    ($to:ident += $from:ident: $($field:ident)+) => {
        $($to.$field += $from.$field;)+
    };
}

/// One entry a link call wrote, as listed in [`LinkReport::record`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordEntry {
    /// The path relative to the destination.
    pub path: PathBuf,
    /// What is at the path now (a file linked in symlink mode is a symlink).
    pub kind: EntryKind,
    /// Bytes of a file's data, of a symlink's target; 0 for a directory. `None` only for a
    /// hardlinked file when [`crate::LinkOptions::hardlink_sizes`] is false (the link was
    /// made without looking at the inode it shares).
    pub size: Option<u64>,
    /// How a file's data got there; `None` for directories and symlinks from the source.
    pub method: Option<Attempt>,
    /// The content hash of a regular file, when [`crate::LinkOptions::hash`] asked for one.
    pub hash: Option<Digest>,
    /// Which source wrote it: the index in the list of sources (or of list entries) given
    /// to the call; for a directory, the first source that has it.
    pub source: usize,
    /// The file or symlink it was linked from: its path relative to its source tree (before
    /// any mapping), or the path given for a file source or list entry; `None` for a
    /// directory.
    pub from: Option<PathBuf>,
}

/// A content hash of a file written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digest {
    /// Which function.
    pub algo: HashAlgo,
    /// The raw digest bytes (32 for both).
    pub bytes: Vec<u8>,
}

impl Digest {
    /// Lower-case hexadecimal.
    pub fn to_hex(&self) -> String {
        use std::fmt::Write as _;
        let mut s = String::with_capacity(self.bytes.len() * 2);
        for b in &self.bytes {
            let _ = write!(s, "{b:02x}");
        }
        s
    }
}

/// Two sources of one call gave an entry at the same destination path (two packages
/// shipping one file). Directories present in both are merged and are not collisions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Collision {
    /// The path relative to the destination.
    pub path: PathBuf,
    /// The entry that was there first (from an earlier source), then the later one.
    pub sources: [PathBuf; 2],
    /// What was done.
    pub action: CollisionAction,
}

/// What happened to a [`Collision`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CollisionAction {
    /// [`crate::OnExisting::Overwrite`]: the later source's entry is the one linked.
    Replaced,
    /// [`crate::OnExisting::Skip`]: the earlier source's entry is kept, the later one skipped.
    Kept,
}

impl CollisionAction {
    /// `replaced` or `kept`.
    pub fn as_str(self) -> &'static str {
        match self {
            CollisionAction::Replaced => "replaced",
            CollisionAction::Kept => "kept",
        }
    }
}

/// One cause of fallback and how many files it affected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FallbackCount {
    /// A short stable name (e.g. `cross-device`, `filesystem-cannot-reflink`,
    /// `source-vanished`), from [`Failure::as_str`].
    pub reason: &'static str,
    /// A sentence for people saying what happened.
    pub description: &'static str,
    /// True when the cause holds for each file on its own, false when it held for a whole
    /// (source filesystem, destination filesystem) pair.
    pub per_file: bool,
    /// Files affected: copied instead of cloned or hardlinked (or, for `source-vanished`,
    /// not linked at all because the source file was gone).
    pub count: u64,
    /// Bytes of those files.
    pub bytes: u64,
    /// The first affected source file seen.
    pub example: PathBuf,
}

impl FallbackCount {
    /// Adds the files and bytes of `other` (of the same cause) to these.
    fn add(&mut self, other: &FallbackCount) {
        self.count += other.count;
        self.bytes += other.bytes;
    }
}

/// What [`crate::link_tree`] did. Counts are of source entries; `cloned + copied +
/// hardlinked + symlinked` is the number of regular files linked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LinkReport {
    /// The path that now holds the tree (or the file, for a single-file source).
    pub destination: PathBuf,
    /// Regular files linked (by any method).
    pub files: u64,
    /// Directories below the top one, created or merged into.
    pub dirs: u64,
    /// Symlinks from the source, recreated as symlinks with the same target bytes.
    pub symlinks: u64,
    /// Files cloned (sharing data with the source).
    pub cloned: u64,
    /// Files copied.
    pub copied: u64,
    /// Files hardlinked to the source.
    pub hardlinked: u64,
    /// Files made symlinks to the source ([`crate::LinkMode::Symlink`]).
    pub symlinked: u64,
    /// Bytes of all files linked. A hardlink counts its file's size only with
    /// [`crate::LinkOptions::hardlink_sizes`] (the default); without it, 0.
    pub bytes: u64,
    /// Bytes shared with the source by cloning.
    pub bytes_cloned: u64,
    /// Bytes written by copying.
    pub bytes_copied: u64,
    /// Every fallback, one entry per cause, sorted by reason.
    pub fallbacks: Vec<FallbackCount>,
    /// Source entries not linked because an entry was already there
    /// ([`crate::OnExisting::Skip`]), counting everything under a skipped directory.
    pub skipped: u64,
    /// Special files (FIFO, socket, device) skipped under `skip_special`.
    pub special: u64,
    /// Special files made again under [`crate::Preserve::special`].
    pub special_made: u64,
    /// Names made as hardlinks of an earlier name of the same source file
    /// ([`crate::Preserve::links`]); not counted in `files`, which counts inodes linked.
    pub hardlinks: u64,
    /// What [`crate::LinkOptions::preserve`] asked for and could not be kept, per entry.
    pub not_kept: NotKept,
    /// Files that vanished from the source during the run (also listed in `fallbacks`).
    pub vanished: u64,
    /// Source entries that a path mapping dropped.
    pub dropped: u64,
    /// Existing destination entries (files, symlinks) that were replaced.
    pub replaced: u64,
    /// Collisions between the sources of this call, in the order they were found.
    pub collisions: Vec<Collision>,
    /// Every entry written, sorted by path, when [`crate::LinkOptions::record`] or
    /// [`crate::LinkOptions::hash`] asked for it (empty otherwise).
    pub record: Vec<RecordEntry>,
    /// Wall-clock time of the whole run.
    pub elapsed: Duration,
    /// How the tree was made: per file (everything above counts what was linked), or whole
    /// in one call (a btrfs snapshot, with [`crate::LinkOptions::whole_tree`]; nothing was
    /// visited, so the counts above are zero).
    pub method: cowtree_fs::whole_tree::Method,
    /// Why the tree was made per file where [`crate::LinkOptions::whole_tree`] asked for the
    /// whole-tree method (`None` when that method ran or was not asked for).
    pub per_file_reason: Option<cowtree_fs::whole_tree::NotUsed>,
}

impl LinkReport {
    /// Adds the counts, fallbacks, collisions and record of `other` (a later call of the same
    /// session) to this report; `destination` stays this report's. Where the two were made
    /// by different methods, [`LinkReport::method`] becomes per-file.
    pub fn absorb(&mut self, other: LinkReport) {
        add_counts!(self += other: files dirs symlinks cloned copied hardlinked symlinked bytes
            bytes_cloned bytes_copied skipped special special_made hardlinks vanished dropped
            replaced);
        self.not_kept.add(&other.not_kept);
        for fb in other.fallbacks {
            match self.fallbacks.iter_mut().find(|f| f.reason == fb.reason) {
                Some(mine) => mine.add(&fb),
                None => self.fallbacks.push(fb),
            }
        }
        self.fallbacks.sort_by_key(|f| f.reason);
        self.collisions.extend(other.collisions);
        self.record.extend(other.record);
        self.elapsed += other.elapsed;
        // A mix of methods is per-file work with the first reason given.
        if other.method != self.method {
            self.method = cowtree_fs::whole_tree::Method::PerFile;
        }
        if self.per_file_reason.is_none() {
            self.per_file_reason = other.per_file_reason;
        }
    }
}

/// Entries of which something [`crate::LinkOptions::preserve`] asked for could not be kept
/// (the caller may not, or the destination filesystem cannot); each counts an entry once.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NotKept {
    /// Entries whose owner (and maybe group) could not be set: the caller is not root.
    pub ownership: u64,
    /// Entries with an extended attribute that could not be set (a namespace the caller may
    /// not write, e.g. `trusted.*` or `security.*` without root, or no support).
    pub xattr: u64,
    /// Entries with an ACL that could not be set.
    pub acl: u64,
    /// Names of a hardlinked source file made as a file of their own (the link was refused:
    /// too many links, another filesystem).
    pub links: u64,
    /// Device nodes not made: only root may.
    pub special: u64,
}

impl NotKept {
    /// Adds the counts of `other`.
    pub fn add(&mut self, other: &NotKept) {
        add_counts!(self += other: ownership xattr acl links special);
    }

    /// True when everything asked for was kept.
    pub fn is_empty(&self) -> bool {
        *self == NotKept::default()
    }
}

/// Per-worker tallies, merged into a [`LinkReport`] at the end.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    pub files: u64,
    pub dirs: u64,
    pub symlinks: u64,
    pub cloned: u64,
    pub copied: u64,
    pub hardlinked: u64,
    pub symlinked: u64,
    pub bytes_cloned: u64,
    pub bytes_copied: u64,
    pub bytes_other: u64,
    pub skipped: u64,
    pub special: u64,
    pub special_made: u64,
    pub hardlinks: u64,
    pub not_kept: NotKept,
    pub vanished: u64,
    pub replaced: u64,
    pub fallbacks: BTreeMap<&'static str, FallbackCount>,
}

impl Tally {
    /// Counts one file linked by `method`, `bytes` of data.
    pub fn linked(&mut self, method: Attempt, bytes: u64) {
        self.files += 1;
        match method {
            Attempt::Clone => {
                self.cloned += 1;
                self.bytes_cloned += bytes;
            }
            Attempt::Copy => {
                self.copied += 1;
                self.bytes_copied += bytes;
            }
            Attempt::Hardlink => {
                self.hardlinked += 1;
                self.bytes_other += bytes;
            }
            Attempt::Symlink => {
                self.symlinked += 1;
                self.bytes_other += bytes;
            }
        }
    }

    pub fn fallback(&mut self, failure: Failure, bytes: u64, example: impl FnOnce() -> PathBuf) {
        let entry = self
            .fallbacks
            .entry(failure.as_str())
            .or_insert_with(|| FallbackCount {
                reason: failure.as_str(),
                description: describe(failure),
                per_file: failure.is_per_file(),
                count: 0,
                bytes: 0,
                example: example(),
            });
        entry.count += 1;
        entry.bytes += bytes;
    }

    pub fn merge(&mut self, other: Tally) {
        add_counts!(self += other: files dirs symlinks cloned copied hardlinked symlinked
            bytes_cloned bytes_copied bytes_other skipped special special_made hardlinks vanished
            replaced);
        self.not_kept.add(&other.not_kept);
        for (reason, fb) in other.fallbacks {
            match self.fallbacks.get_mut(reason) {
                Some(mine) => mine.add(&fb),
                None => {
                    self.fallbacks.insert(reason, fb);
                }
            }
        }
    }

    pub fn into_report(self, destination: PathBuf, elapsed: Duration) -> LinkReport {
        LinkReport {
            destination,
            files: self.files,
            dirs: self.dirs,
            symlinks: self.symlinks,
            cloned: self.cloned,
            copied: self.copied,
            hardlinked: self.hardlinked,
            symlinked: self.symlinked,
            bytes: self.bytes_cloned + self.bytes_copied + self.bytes_other,
            bytes_cloned: self.bytes_cloned,
            bytes_copied: self.bytes_copied,
            fallbacks: self.fallbacks.into_values().collect(),
            skipped: self.skipped,
            special: self.special,
            special_made: self.special_made,
            hardlinks: self.hardlinks,
            not_kept: self.not_kept,
            vanished: self.vanished,
            dropped: 0,
            replaced: self.replaced,
            collisions: Vec::new(),
            record: Vec::new(),
            elapsed,
            method: cowtree_fs::whole_tree::Method::PerFile,
            per_file_reason: None,
        }
    }
}

/// A sentence for a failure that caused a fallback.
pub fn describe(failure: Failure) -> &'static str {
    use cowtree_fs::HardlinkRefusal;
    match failure {
        Failure::Clone(cause) => cause.describe(),
        Failure::Hardlink(HardlinkRefusal::CrossDevice) => {
            "source and destination are on different filesystems, so hardlinks are impossible"
        }
        Failure::Hardlink(HardlinkRefusal::NotPermitted) => {
            "the filesystem refused hardlinks (no hardlink support, or protected_hardlinks)"
        }
        Failure::Hardlink(HardlinkRefusal::TooManyLinks) => {
            "the source file already has the most hardlinks its filesystem allows"
        }
        Failure::SourceVanished => "the source file was removed while cowtree was running",
    }
}
