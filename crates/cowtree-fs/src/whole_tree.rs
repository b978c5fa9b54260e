//! The seam between the two ways to make a copy of a directory tree: **per file** (every
//! entry created and its data cloned or copied on its own; every filesystem; the
//! materializers of cowtree-link, cowtree-store and cowtree-git) and **whole tree** (one call
//! copies the hierarchy: a btrfs snapshot of a subvolume; on macOS, `clonefile` of a
//! directory on APFS).
//!
//! A caller states what it wants ([`Request`]) and, if its own options need per-file work (a
//! merge into an existing destination, a path mapping, a record of every entry...), why
//! ([`NotUsed::Requested`]). [`try_whole_tree`] then either makes the tree and says how
//! ([`WholeTree::Done`]), or makes nothing and says why not ([`WholeTree::NotUsed`], a typed
//! [`NotUsed`] with a stable [`NotUsed::code`] for `--json`'s `"reason"`); the caller then
//! runs its per-file implementation, and reports `"method": "subvolume"` (or `"clonefile"`)
//! or `"per-file"` with the reason. Whether a command's summary says that reason to people is
//! decided here too, once for every command ([`NotUsed::worth_telling`]).
//!
//! This is the one place the rules live. A caller whose source does not exist yet (the store,
//! which builds a tree subvolume from its blobs the first time) applies the same rules to
//! where the source will be ([`filesystem_rule`], [`owner_rule`]) before it builds; a caller
//! that can fill holes asks [`preflight`] (below). A third method (a pool of pre-made trees,
//! another platform's directory clone) is one more arm of [`try_whole_tree`] and
//! [`preflight`], and one more [`Method`].
//!
//! The whole-tree method is used only where its result is the per-file result, entry for
//! entry, with the differences a snapshot has by nature, which callers document: on btrfs
//! every entry keeps its owner, group, extended attributes, set-ID bits, inode flags and
//! hardlinks, and special files are copied (a per-file copy makes every entry the caller's
//! and drops the rest); inode numbers and times are kept. It is not used (and nothing is
//! written) where:
//!
//! | case | [`NotUsed`] |
//! |---|---|
//! | the caller's options need per-file work | `Requested` |
//! | the source's filesystem has no whole-tree copy (XFS, ext4, tmpfs, ...) | `Filesystem` |
//! | the destination is on another filesystem (another btrfs too; `subvol=` mounts of one btrfs are one filesystem) | `CrossFilesystem` |
//! | the source is a directory inside a subvolume, not its root | `NotSubvolumeRoot` |
//! | the caller is not root and does not own the source's root (the kernel allows snapshots of one's own subvolumes only) | `NotOwner` |
//! | subvolumes are nested below the source (a snapshot would hold empty directories there) | `NestedSubvolumes` |
//! | a filesystem is mounted below the source (a snapshot would hold the directory under it) | `MountPoints` |
//! | a read-only result where the platform cannot make one (APFS) | `ReadOnlyUnavailable` |
//! | the kernel refused the call (EPERM: a seccomp filter, a user namespace) | `NotPermitted` |
//!
//! Any other failure of the call (ENOSPC, EDQUOT, EEXIST, EACCES on the parent, EROFS) is an
//! error: a per-file copy would fail the same way, and nothing was made.
//!
//! A caller that can make a tree with holes whole again (nested subvolumes and mount points
//! are empty directories in a snapshot; `cowtree git worktree add` removes nested worktrees
//! anyway) asks [`preflight`] instead, which applies every other rule, writes nothing, and
//! lists the [`Holes`]; it then calls [`snapshot_prepared`] and fills or removes them.
//!
//! The snapshot is made directly at the destination name: the kernel creates it in one
//! transaction and commits it before returning, so the destination appears whole or not at
//! all, and once the call returned it survives a power loss.
//!
//! macOS: `clonefile(2)` of a directory on APFS is implemented ([`crate::sys`]) and
//! type-checked, **not run** by cowtree's CI; mount points below the source are not checked
//! there.

#[cfg(unix)]
use std::ffi::OsStr;
use std::fmt;
#[cfg(unix)]
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use crate::subvolume::Cause;
#[cfg(unix)]
use crate::subvolume::{At, Op, SubvolumeError};

/// How a tree was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Method {
    /// A writable (or read-only) btrfs snapshot of the source subvolume: one ioctl.
    Subvolume,
    /// `clonefile(2)` of the source directory on APFS: one call (macOS; not run by CI).
    DirectoryClone,
    /// Every entry on its own (the caller's implementation).
    #[default]
    PerFile,
}

impl Method {
    /// `subvolume`, `clonefile` or `per-file`: what `--json` reports as `"method"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Subvolume => "subvolume",
            Method::DirectoryClone => "clonefile",
            Method::PerFile => "per-file",
        }
    }
}

/// Why the whole-tree method was not used (nothing was written when it was not).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotUsed {
    /// The caller needs per-file work: `code` is a stable name (e.g. `merge`,
    /// `path-mapping`, `mode`, `record`, `per-file-asked`), `why` a phrase for people.
    Requested {
        /// Stable name.
        code: &'static str,
        /// For people, e.g. "a merge into an existing destination".
        why: &'static str,
    },
    /// The source's filesystem has no whole-tree copy.
    Filesystem {
        /// Its name, e.g. "xfs" ([`crate::fstype::FsType::name`]).
        fs: &'static str,
    },
    /// The destination is on another filesystem than the source.
    CrossFilesystem,
    /// The source is a directory inside a btrfs subvolume, not its root.
    NotSubvolumeRoot,
    /// The caller is not root and does not own the source's root directory.
    NotOwner {
        /// The uid that owns it.
        owner: u32,
    },
    /// Subvolumes are nested below the source.
    NestedSubvolumes {
        /// The first one, relative to the source.
        path: PathBuf,
        /// How many there are (at any depth).
        count: usize,
    },
    /// A filesystem is mounted below the source.
    MountPoints {
        /// The first mount point, relative to the source.
        path: PathBuf,
    },
    /// A read-only result was asked for where the platform cannot make one.
    ReadOnlyUnavailable,
    /// The kernel refused the whole-tree call for lack of privilege (EPERM).
    NotPermitted {
        /// The errno's classification.
        cause: Cause,
    },
}

/// What a command does with the tree, for [`NotUsed::worth_telling`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// It makes a copy of the tree (clone, checkout, `git worktree add`).
    Copy,
    /// It reads the tree where it is (a snapshot into the store, which a read-only snapshot
    /// would make a point in time).
    Read,
}

impl NotUsed {
    /// Whether a command's summary should say why the tree was made per file: the one rule
    /// every command follows.
    ///
    /// | reason | told? |
    /// |---|---|
    /// | the source's filesystem has no whole-tree copy | no: nothing to learn (most filesystems) |
    /// | the user asked for per-file work (`per-file-asked`, `mode`, `file`) | no: they know |
    /// | other options that need it (`merge`, `record`, `path-mapping`, ...) | yes |
    /// | the kernel refused (EPERM) | no: the caller warns once, as a warning |
    /// | the source is a directory in a subvolume, reading it | no: the usual case |
    /// | anything else | yes: it tells what to change (a subvolume root, one filesystem) |
    pub fn worth_telling(&self, purpose: Purpose) -> bool {
        match self {
            NotUsed::Filesystem { .. } | NotUsed::NotPermitted { .. } => false,
            NotUsed::Requested { code, .. } => !matches!(*code, "per-file-asked" | "mode" | "file"),
            NotUsed::NotSubvolumeRoot => purpose == Purpose::Copy,
            _ => true,
        }
    }

    /// Whether every command gives this reason as a warning, once, whatever its summary says:
    /// the kernel refused the whole-tree copy (EPERM), which the user may not expect and may
    /// be able to change (the privilege table in docs/subvolumes.md).
    pub fn warns(&self) -> bool {
        matches!(self, NotUsed::NotPermitted { .. })
    }

    /// A stable name for `--json`'s `"reason"`.
    pub fn code(&self) -> &'static str {
        match self {
            NotUsed::Requested { code, .. } => code,
            NotUsed::Filesystem { .. } => "filesystem",
            NotUsed::CrossFilesystem => "cross-filesystem",
            NotUsed::NotSubvolumeRoot => "not-a-subvolume-root",
            NotUsed::NotOwner { .. } => "not-owner",
            NotUsed::NestedSubvolumes { .. } => "nested-subvolumes",
            NotUsed::MountPoints { .. } => "mount-points",
            NotUsed::ReadOnlyUnavailable => "read-only-unavailable",
            NotUsed::NotPermitted { .. } => "not-permitted",
        }
    }
}

impl fmt::Display for NotUsed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NotUsed::Requested { why, .. } => write!(f, "{why} needs per-file work"),
            NotUsed::Filesystem { fs } => {
                write!(f, "the source's filesystem ({fs}) cannot copy a whole tree")
            }
            NotUsed::CrossFilesystem => {
                write!(
                    f,
                    "the destination is on another filesystem than the source"
                )
            }
            NotUsed::NotSubvolumeRoot => {
                write!(f, "the source is not the root of a btrfs subvolume")
            }
            NotUsed::NotOwner { owner } => write!(
                f,
                "the source subvolume belongs to uid {owner} (only its owner or root may snapshot it)"
            ),
            NotUsed::NestedSubvolumes { path, count } => write!(
                f,
                "the source holds {count} nested subvolume{} (e.g. {}), which a snapshot would leave empty",
                if *count == 1 { "" } else { "s" },
                path.display()
            ),
            NotUsed::MountPoints { path } => write!(
                f,
                "a filesystem is mounted below the source (at {}), which a snapshot would not include",
                path.display()
            ),
            NotUsed::ReadOnlyUnavailable => {
                write!(f, "a read-only copy cannot be made in one call here")
            }
            NotUsed::NotPermitted { cause } => {
                write!(f, "the kernel refused the snapshot ({})", cause.describe())
            }
        }
    }
}

/// What the caller wants: a copy of the directory `src` as the new entry `name` of
/// `parent` (which must not exist).
#[cfg(unix)]
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// The source directory.
    pub src: At<'a>,
    /// The directory the copy goes in.
    pub parent: At<'a>,
    /// The copy's name there.
    pub name: &'a OsStr,
    /// Make the copy read-only (a read-only snapshot).
    pub read_only: bool,
}

/// What [`try_whole_tree`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WholeTree {
    /// The tree is at the destination, made by this method.
    Done(Method),
    /// Nothing was written; the caller makes the tree per file.
    NotUsed(NotUsed),
}

/// Makes the tree in one call where the filesystem, the tree and the caller allow it
/// (see the module documentation); otherwise writes nothing and says why. `requested`,
/// when given, is the caller's own reason for per-file work, and is answered at once.
/// An error means nothing was made either, and a per-file copy would fail the same way.
#[cfg(unix)]
pub fn try_whole_tree(
    req: &Request<'_>,
    requested: Option<NotUsed>,
) -> Result<WholeTree, SubvolumeError> {
    if let Some(reason) = requested {
        return Ok(WholeTree::NotUsed(reason));
    }
    let lookup = |e: std::io::Error| SubvolumeError {
        op: Op::Lookup,
        path: req.src.path.to_path_buf(),
        cause: Cause::Other,
        source: e,
    };
    let src_fs = crate::fstype::fs_type(req.src.dir.as_fd()).map_err(lookup)?;
    match src_fs.name() {
        "btrfs" => btrfs(req),
        "apfs" => apfs(req),
        fs => Ok(WholeTree::NotUsed(NotUsed::Filesystem { fs })),
    }
}

#[cfg(unix)]
fn btrfs(req: &Request<'_>) -> Result<WholeTree, SubvolumeError> {
    match btrfs_preflight(req)? {
        Preflight::NotUsed(reason) => Ok(WholeTree::NotUsed(reason)),
        Preflight::Ready(holes) => match holes.refusal() {
            Some(reason) => Ok(WholeTree::NotUsed(reason)),
            None => snapshot_prepared(req),
        },
    }
}

/// What [`preflight`] found: the whole-tree method cannot be used (and why), or it can, with
/// the places where the copy would hold an empty directory instead of the source's content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Preflight {
    /// Not usable; nothing was written.
    NotUsed(NotUsed),
    /// Usable: the source is a subvolume root on the destination's filesystem that the caller
    /// may snapshot. A snapshot's [`Holes`] are empty directories where the source has other
    /// content.
    Ready(Holes),
}

/// Where a snapshot of a source differs from it: each path (relative to the source) is an
/// empty directory in the snapshot.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Holes {
    /// Subvolumes nested below the source ([`crate::subvolume::below`]): a snapshot holds
    /// an empty directory (inode 2) at each.
    pub nested: Vec<PathBuf>,
    /// Filesystems mounted below the source: a snapshot holds the directory under each mount.
    pub mount_points: Vec<PathBuf>,
}

impl Holes {
    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.nested.is_empty() && self.mount_points.is_empty()
    }

    /// Every hole, nested subvolumes first.
    pub fn paths(&self) -> impl Iterator<Item = &Path> {
        self.nested
            .iter()
            .chain(&self.mount_points)
            .map(PathBuf::as_path)
    }

    /// The reason [`try_whole_tree`] gives for holes: it never returns a tree with holes.
    pub fn refusal(&self) -> Option<NotUsed> {
        if let Some(first) = self.nested.first() {
            return Some(NotUsed::NestedSubvolumes {
                path: first.clone(),
                count: self.nested.len(),
            });
        }
        self.mount_points
            .first()
            .map(|path| NotUsed::MountPoints { path: path.clone() })
    }
}

/// Every rule of [`try_whole_tree`] but the holes, without writing anything: for a caller that
/// can make a tree with holes whole again (it knows what belongs there, as `cowtree git
/// worktree add` does, which drops nested worktrees anyway). It then calls
/// [`snapshot_prepared`]. Only btrfs: elsewhere [`NotUsed::Filesystem`], and a read-only copy
/// on APFS [`NotUsed::ReadOnlyUnavailable`].
#[cfg(unix)]
pub fn preflight(req: &Request<'_>) -> Result<Preflight, SubvolumeError> {
    let src_fs = crate::fstype::fs_type(req.src.dir.as_fd()).map_err(|e| SubvolumeError {
        op: Op::Lookup,
        path: req.src.path.to_path_buf(),
        cause: Cause::Other,
        source: e,
    })?;
    match src_fs.name() {
        "btrfs" => btrfs_preflight(req),
        fs => Ok(Preflight::NotUsed(NotUsed::Filesystem { fs })),
    }
}

/// The filesystem rule for a snapshot of a subvolume at (or, for a source made later, in the
/// directory) `src` into `parent`: both on one btrfs. `None` where it holds, else why not:
/// [`NotUsed::Filesystem`] where `parent` is not on btrfs, [`NotUsed::CrossFilesystem`] where
/// the two are on different filesystems.
#[cfg(unix)]
pub fn filesystem_rule(src: At<'_>, parent: At<'_>) -> Result<Option<NotUsed>, SubvolumeError> {
    use crate::subvolume::{filesystem_id, is_btrfs};
    if !is_btrfs(parent)? {
        let fs = crate::fstype::fs_type(parent.dir.as_fd()).map_or("unknown", |t| t.name());
        return Ok(Some(NotUsed::Filesystem { fs }));
    }
    if !is_btrfs(src)? || filesystem_id(src)? != filesystem_id(parent)? {
        return Ok(Some(NotUsed::CrossFilesystem));
    }
    Ok(None)
}

/// The owner rule for a snapshot of a subvolume whose root belongs to `owner`: the kernel lets
/// a user snapshot only their own subvolumes, root any. `None` where it holds.
#[cfg(unix)]
pub fn owner_rule(owner: u32) -> Option<NotUsed> {
    let euid = rustix::process::geteuid();
    (!euid.is_root() && euid.as_raw() != owner).then_some(NotUsed::NotOwner { owner })
}

#[cfg(unix)]
fn btrfs_preflight(req: &Request<'_>) -> Result<Preflight, SubvolumeError> {
    use crate::subvolume::{below, is_root};
    let not_used = |r| Ok(Preflight::NotUsed(r));
    if let Some(r) = filesystem_rule(req.src, req.parent)? {
        // The source is on btrfs: another filesystem at the parent is another filesystem.
        return not_used(match r {
            NotUsed::Filesystem { .. } => NotUsed::CrossFilesystem,
            r => r,
        });
    }
    if !is_root(req.src)? {
        return not_used(NotUsed::NotSubvolumeRoot);
    }
    let st = rustix::fs::fstat(req.src.dir).map_err(|e| SubvolumeError {
        op: Op::Lookup,
        path: req.src.path.to_path_buf(),
        cause: Cause::Other,
        source: e.into(),
    })?;
    if let Some(r) = owner_rule(st.st_uid) {
        return not_used(r);
    }
    let nested = below(req.src)?.into_iter().map(|n| n.path).collect();
    let mount_points = mount_points_below(req.src.path)?;
    Ok(Preflight::Ready(Holes {
        nested,
        mount_points,
    }))
}

/// The snapshot itself, after [`preflight`] said [`Preflight::Ready`]: a kernel refusal for
/// lack of privilege (EPERM) is [`WholeTree::NotUsed`] (nothing was made), any other failure
/// an error (nothing was made either).
#[cfg(unix)]
pub fn snapshot_prepared(req: &Request<'_>) -> Result<WholeTree, SubvolumeError> {
    let not_used = |r| Ok(WholeTree::NotUsed(r));
    match crate::subvolume::snapshot(req.src, req.parent, req.name, req.read_only) {
        Ok(()) => Ok(WholeTree::Done(Method::Subvolume)),
        Err(e) if e.cause == Cause::NotPermitted => {
            not_used(NotUsed::NotPermitted { cause: e.cause })
        }
        Err(e) if e.cause == Cause::CrossFilesystem => not_used(NotUsed::CrossFilesystem),
        Err(e) if e.cause == Cause::NotBtrfs => not_used(NotUsed::Filesystem { fs: "btrfs" }),
        Err(e) => Err(e),
    }
}

#[cfg(unix)]
fn apfs(req: &Request<'_>) -> Result<WholeTree, SubvolumeError> {
    if req.read_only {
        return Ok(WholeTree::NotUsed(NotUsed::ReadOnlyUnavailable));
    }
    let dev = |at: At<'_>| {
        rustix::fs::fstat(at.dir)
            .map(|st| crate::sys::stat_dev(&st))
            .map_err(|e| SubvolumeError {
                op: Op::Lookup,
                path: at.path.to_path_buf(),
                cause: Cause::Other,
                source: e.into(),
            })
    };
    if dev(req.src)? != dev(req.parent)? {
        return Ok(WholeTree::NotUsed(NotUsed::CrossFilesystem));
    }
    let path = req.parent.path.join(req.name);
    crate::dir::check_name(req.name).map_err(|e| SubvolumeError {
        op: Op::CloneDirectory,
        path: path.clone(),
        cause: Cause::Other,
        source: e,
    })?;
    match crate::sys::clone_directory(req.src.dir.as_fd(), req.parent.dir.as_fd(), req.name) {
        Ok(()) => Ok(WholeTree::Done(Method::DirectoryClone)),
        Err(e) => {
            let cause = crate::subvolume::classify(Op::CloneDirectory, e.raw_os_error());
            match cause {
                Cause::NotBtrfs => Ok(WholeTree::NotUsed(NotUsed::Filesystem { fs: "apfs" })),
                Cause::CrossFilesystem => Ok(WholeTree::NotUsed(NotUsed::CrossFilesystem)),
                Cause::NotPermitted => Ok(WholeTree::NotUsed(NotUsed::NotPermitted { cause })),
                _ => Err(SubvolumeError {
                    op: Op::CloneDirectory,
                    path,
                    cause,
                    source: e.into(),
                }),
            }
        }
    }
}

/// Every mount point strictly below `src` (relative to it, sorted), from the mount table;
/// none where the platform has no mount table to read.
#[cfg(unix)]
fn mount_points_below(src: &Path) -> Result<Vec<PathBuf>, SubvolumeError> {
    let canon = std::fs::canonicalize(src).map_err(|e| SubvolumeError {
        op: Op::Lookup,
        path: src.to_path_buf(),
        cause: Cause::Other,
        source: e,
    })?;
    let points = match crate::sys::mount_points() {
        Ok(p) => p,
        Err(e) if crate::sys::Unavailable::find(&e).is_some() => return Ok(Vec::new()),
        Err(e) => {
            return Err(SubvolumeError {
                op: Op::Lookup,
                path: src.to_path_buf(),
                cause: Cause::Other,
                source: e,
            });
        }
    };
    Ok(all_below(&canon, &points))
}

/// Those of `points` strictly below `root`, relative to it, sorted (pure, for tests).
#[cfg(unix)]
fn all_below(root: &Path, points: &[PathBuf]) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = points
        .iter()
        .filter_map(|p| p.strip_prefix(root).ok())
        .filter(|rel| !rel.as_os_str().is_empty())
        .map(Path::to_path_buf)
        .collect();
    found.sort();
    found.dedup();
    found
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn a_reason_is_told_where_it_says_what_to_change() {
        use Purpose::{Copy, Read};
        let asked = |code| NotUsed::Requested { code, why: "x" };
        let rows = [
            (NotUsed::Filesystem { fs: "xfs" }, Copy, false),
            (asked("per-file-asked"), Copy, false),
            (asked("mode"), Copy, false),
            (asked("file"), Copy, false),
            (asked("merge"), Copy, true),
            (asked("record"), Copy, true),
            (
                NotUsed::NotPermitted {
                    cause: Cause::NotPermitted,
                },
                Copy,
                false,
            ),
            (NotUsed::NotSubvolumeRoot, Copy, true),
            (NotUsed::NotSubvolumeRoot, Read, false),
            (NotUsed::CrossFilesystem, Copy, true),
            (NotUsed::NotOwner { owner: 7 }, Copy, true),
            (NotUsed::ReadOnlyUnavailable, Read, true),
        ];
        for (reason, purpose, told) in rows {
            assert_eq!(
                reason.worth_telling(purpose),
                told,
                "{reason:?} {purpose:?}"
            );
            // The kernel's refusal, and only it, is a warning; never also in the summary.
            let refused = matches!(reason, NotUsed::NotPermitted { .. });
            assert_eq!(reason.warns(), refused, "{reason:?}");
            assert!(
                !(reason.warns() && reason.worth_telling(purpose)),
                "{reason:?}"
            );
        }
    }

    #[test]
    fn mount_points_strictly_below_the_root_only() {
        let points: Vec<PathBuf> = ["/", "/m", "/m/src", "/m/src/b/mnt", "/m/src/a", "/m/srcx"]
            .iter()
            .map(PathBuf::from)
            .collect();
        assert_eq!(
            all_below(Path::new("/m/src"), &points),
            vec![PathBuf::from("a"), PathBuf::from("b/mnt")]
        );
        assert!(all_below(Path::new("/m/srcx"), &points).is_empty());
        assert!(all_below(Path::new("/other"), &points).is_empty());
    }

    #[test]
    fn holes_are_refused_nested_subvolumes_first() {
        let none = Holes::default();
        assert!(none.is_empty());
        assert_eq!(none.refusal(), None);
        let both = Holes {
            nested: vec![PathBuf::from("a/b"), PathBuf::from("c")],
            mount_points: vec![PathBuf::from("m")],
        };
        assert_eq!(
            both.refusal(),
            Some(NotUsed::NestedSubvolumes {
                path: PathBuf::from("a/b"),
                count: 2
            })
        );
        assert_eq!(both.paths().count(), 3);
        let mounts = Holes {
            nested: vec![],
            mount_points: vec![PathBuf::from("m")],
        };
        assert_eq!(
            mounts.refusal(),
            Some(NotUsed::MountPoints {
                path: PathBuf::from("m")
            })
        );
    }

    #[test]
    fn every_reason_has_a_code_and_a_sentence() {
        let all = [
            NotUsed::Requested {
                code: "merge",
                why: "a merge into an existing destination",
            },
            NotUsed::Filesystem { fs: "xfs" },
            NotUsed::CrossFilesystem,
            NotUsed::NotSubvolumeRoot,
            NotUsed::NotOwner { owner: 1000 },
            NotUsed::NestedSubvolumes {
                path: PathBuf::from("a/b"),
                count: 2,
            },
            NotUsed::MountPoints {
                path: PathBuf::from("m"),
            },
            NotUsed::ReadOnlyUnavailable,
            NotUsed::NotPermitted {
                cause: Cause::NotPermitted,
            },
        ];
        let mut codes = std::collections::BTreeSet::new();
        for r in &all {
            assert!(codes.insert(r.code()), "duplicate code {}", r.code());
            assert!(!r.to_string().is_empty());
        }
        assert_eq!(
            all[5].to_string(),
            "the source holds 2 nested subvolumes (e.g. a/b), which a snapshot would leave empty"
        );
        assert_eq!(Method::default(), Method::PerFile);
        assert_eq!(Method::Subvolume.as_str(), "subvolume");
    }
}
