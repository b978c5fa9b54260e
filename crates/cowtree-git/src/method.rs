//! How DST's tree is made (by snapshot or per file), what the user asked for, and why a
//! snapshot was not used: the vocabulary the options and the report share.

use std::fmt;
use std::path::{Path, PathBuf};

use cowtree_fs::whole_tree::NotUsed;

/// How DST's tree was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Method {
    /// Each file created and cloned (or written) one by one: works on every filesystem.
    #[default]
    PerFile,
    /// One writable btrfs snapshot of SRC's worktree (a subvolume root), then made what the
    /// per-file way makes (see [`crate::by_snapshot`]).
    Subvolume,
    /// Nothing to check out (`--no-checkout`, `--orphan`).
    None,
    /// A spare of the repository's pool, made ahead of time, proven untouched and renamed
    /// into place ([`crate::pool`]).
    Spare,
    /// `git worktree add` made it ([`crate::handover`]); [`crate::AddReport::made_by_git`]
    /// says why.
    Git,
}

impl Method {
    /// The name reports use: `per-file`, `subvolume`, `spare`, `none`, `git`.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::PerFile => "per-file",
            Method::Subvolume => "subvolume",
            Method::None => "none",
            Method::Git => "git",
            Method::Spare => "spare",
        }
    }
}

/// Which way the caller lets [`crate::tree::make`] take.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MethodChoice {
    /// The snapshot where SRC allows it and the cost rule says it pays
    /// ([`crate::cost`]), else per file.
    #[default]
    Auto,
    /// Per file always (`--per-file`).
    PerFile,
    /// The snapshot wherever SRC allows it, whatever the cost rule says (`--subvolume`).
    Subvolume,
}

/// Why DST's tree was made per file, not by a snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PerFileReason {
    /// A rule of the whole-tree seam ([`cowtree_fs::whole_tree`]): the filesystem, another
    /// filesystem, not a subvolume root, not the owner, the kernel refused.
    Seam(NotUsed),
    /// The options asked for it (`--per-file`).
    Asked,
    /// A subvolume nested below SRC, or a filesystem mounted there, where DST must hold what
    /// SRC holds (a snapshot holds an empty directory there).
    Hole {
        /// The nested subvolume or mount point, relative to SRC.
        path: PathBuf,
        /// A mount point (else a nested subvolume).
        mount_point: bool,
    },
    /// An entry of SRC that DST keeps belongs to another user or group than the per-file way
    /// gives every entry it makes (this user's, the process's group), and a snapshot keeps
    /// owners; or DST's parent is set-group-ID, whose group (and bit) the per-file way gives.
    Owner {
        /// The directory, relative to SRC (empty: SRC itself); or DST's parent, absolute.
        path: PathBuf,
        /// Its owner.
        uid: u32,
        /// Its group.
        gid: u32,
    },
    /// No worktree of the repository lends its files (a bare repository without worktrees):
    /// there is nothing to snapshot.
    NoSource,
    /// The cost rule: making the snapshot into DST would remove more than the per-file way
    /// creates ([`crate::cost`]).
    Cost {
        /// Entries the snapshot way would remove (at least; counting stops past the limit).
        remove: u64,
        /// Entries the per-file way creates.
        create: u64,
    },
    /// A sparse checkout: the per-file way writes only what the patterns take, where a
    /// snapshot holds what SRC holds.
    Sparse,
}

impl PerFileReason {
    /// Whether the summary says why the tree was made per file: the seam's rule
    /// ([`NotUsed::worth_telling`]) for its reasons; not where `--per-file` asked for it; always
    /// for what only `git worktree add` checks (it says what to change).
    pub fn worth_telling(&self) -> bool {
        match self {
            PerFileReason::Seam(n) => n.worth_telling(cowtree_fs::whole_tree::Purpose::Copy),
            PerFileReason::Asked => false,
            _ => true,
        }
    }

    /// A stable name for `--json`'s `"reason"`: the seam's codes, `per-file-asked`,
    /// `nested-subvolumes`, `mount-points`, `owner`, `cost`.
    pub fn code(&self) -> &'static str {
        match self {
            PerFileReason::Seam(n) => n.code(),
            PerFileReason::Asked => "per-file-asked",
            PerFileReason::Hole {
                mount_point: false, ..
            } => "nested-subvolumes",
            PerFileReason::Hole {
                mount_point: true, ..
            } => "mount-points",
            PerFileReason::Owner { .. } => "owner",
            PerFileReason::NoSource => "no-source",
            PerFileReason::Cost { .. } => "cost",
            PerFileReason::Sparse => "sparse",
        }
    }
}

impl fmt::Display for PerFileReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PerFileReason::Seam(n) => write!(f, "{n}"),
            PerFileReason::Asked => write!(f, "--per-file asked for it"),
            PerFileReason::Hole {
                path,
                mount_point: false,
            } => write!(
                f,
                "the subvolume nested at {} holds what the new worktree needs, and a snapshot \
                 would leave it empty",
                path.display()
            ),
            PerFileReason::Hole {
                path,
                mount_point: true,
            } => write!(
                f,
                "a filesystem mounted at {} holds what the new worktree needs, and a snapshot \
                 would not include it",
                path.display()
            ),
            PerFileReason::Owner { path, uid, gid } => write!(
                f,
                "{} belongs to uid {uid} and gid {gid} (or is set-group-ID), which a snapshot \
                 keeps, where the per-file way makes every entry this user's and this process's \
                 group's",
                if path.as_os_str().is_empty() {
                    Path::new("SRC's worktree")
                } else {
                    path.as_path()
                }
                .display()
            ),
            PerFileReason::NoSource => write!(
                f,
                "no worktree of the repository can lend its files: every file is written from \
                 the object database"
            ),
            PerFileReason::Sparse => write!(
                f,
                "a sparse checkout: only the entries its patterns take are written"
            ),
            PerFileReason::Cost { remove, create } => write!(
                f,
                "a snapshot would leave at least {remove} entries to remove, more than the \
                 {create} the per-file way creates"
            ),
        }
    }
}
