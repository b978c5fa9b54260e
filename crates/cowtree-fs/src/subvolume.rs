//! btrfs subvolumes: create one, snapshot one (writable or read-only), read and set its
//! read-only flag, delete one (in O(1) where the kernel permits, else by clearing `ro` and
//! removing the tree), tell whether a directory is a subvolume's root, and list the
//! subvolumes below a directory.
//!
//! A subvolume is a directory tree with its own inode space: its root directory has inode
//! number 256 and its own `st_dev`. A snapshot copies a whole subvolume in one transaction,
//! keeping every inode number, owner, mode, time and extended attribute; only `st_dev`
//! differs. It does not include subvolumes nested inside: they appear in the snapshot as
//! empty directories, so [`below`] finds them first.
//!
//! Every call is relative to an open directory ([`At`]: a [`Dir`] and the path it was reached
//! by, which only names it in errors) and takes a single validated name; nothing follows a
//! symlink. Every failure is a [`SubvolumeError`] naming the path, with a [`Cause`]
//! classified from the errno by [`classify`] (pure, one test per row).
//!
//! What needs privilege (Linux 6.x):
//!
//! | operation | as root | as the owner of the subvolume (unprivileged) |
//! |---|---|---|
//! | [`create`] | yes | yes, where the user may write the parent |
//! | [`snapshot`], writable or read-only | yes | yes, of a subvolume whose root the user owns |
//! | [`set_read_only`] | yes | yes, on a root the user owns |
//! | [`delete`] in O(1) (`BTRFS_IOC_SNAP_DESTROY_V2`) | yes | only on a filesystem mounted with `user_subvol_rm_allowed` (and a writable subvolume) |
//! | [`delete`] by removing the tree | — | yes: `ro` cleared, every entry removed, then the empty root with `rmdir` (Linux 4.18+) |
//! | [`is_root`], [`read_only`], [`below`], [`filesystem_id`] | yes | yes |
//!
//! On macOS every call fails with [`Cause::NotBtrfs`] (see [`crate::sys`]).

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::io;
use std::os::fd::AsFd;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use rustix::io::Errno;

use crate::dir::{Dir, check_name};

mod cause;
mod deleted;
pub use cause::Cause;
pub use deleted::Deleted;

/// An open directory and the path it was reached by. Calls are made relative to `dir`;
/// `path` only names it (and entries in it) in errors.
#[derive(Debug, Clone, Copy)]
pub struct At<'a> {
    /// The open directory.
    pub dir: &'a Dir,
    /// Its path, for messages.
    pub path: &'a Path,
}

impl<'a> At<'a> {
    /// `dir`, known by `path`.
    pub fn new(dir: &'a Dir, path: &'a Path) -> At<'a> {
        At { dir, path }
    }

    fn join(&self, name: &OsStr) -> PathBuf {
        self.path.join(name)
    }
}

/// Which subvolume operation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    /// Creating an empty subvolume.
    Create,
    /// Taking a snapshot.
    Snapshot,
    /// Reading the read-only flag.
    ReadFlags,
    /// Setting or clearing the read-only flag.
    SetReadOnly,
    /// Deleting a subvolume (either way).
    Delete,
    /// Looking up a subvolume's id, children or filesystem.
    Lookup,
    /// Cloning a directory hierarchy in one call (macOS `clonefile`).
    CloneDirectory,
}

impl Op {
    /// A short verb phrase for messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Create => "create subvolume",
            Op::Snapshot => "snapshot",
            Op::ReadFlags => "read the flags of subvolume",
            Op::SetReadOnly => "set the read-only flag of subvolume",
            Op::Delete => "delete subvolume",
            Op::Lookup => "look up subvolumes of",
            Op::CloneDirectory => "clone directory",
        }
    }
}

/// The [`Cause`] of `errno` from operation `op`: the errno policy of this module, kept pure so
/// that every row has a test.
pub fn classify(op: Op, errno: i32) -> Cause {
    let e = Errno::from_raw_os_error(errno);
    match e {
        Errno::NOTTY | Errno::OPNOTSUPP | Errno::NOSYS => Cause::NotBtrfs,
        Errno::PERM => Cause::NotPermitted,
        Errno::ACCESS => Cause::AccessDenied,
        Errno::XDEV => Cause::CrossFilesystem,
        Errno::ROFS => Cause::ReadOnly,
        Errno::DQUOT => Cause::QuotaExceeded,
        Errno::NOSPC => Cause::NoSpace,
        Errno::EXIST => Cause::Exists,
        Errno::NOENT => Cause::NotFound,
        Errno::NOTEMPTY if op == Op::Delete => Cause::HasNested,
        Errno::BUSY | Errno::TXTBSY => Cause::Busy,
        // The same number as EOPNOTSUPP on Linux; macOS's answer for "no such thing here".
        e if e == Errno::NOTSUP => Cause::NotBtrfs,
        // GETFLAGS, SETFLAGS and DESTROY answer EINVAL for a directory that is not a root.
        Errno::INVAL if matches!(op, Op::ReadFlags | Op::SetReadOnly | Op::Delete) => {
            Cause::NotSubvolumeRoot
        }
        _ => Cause::Other,
    }
}

/// A failed subvolume operation: what was done, to which path, why.
#[derive(Debug)]
pub struct SubvolumeError {
    /// The operation.
    pub op: Op,
    /// The path it was about (the subvolume, or the new one's path).
    pub path: PathBuf,
    /// The classified cause.
    pub cause: Cause,
    /// The OS error.
    pub source: io::Error,
}

impl SubvolumeError {
    fn new(op: Op, path: PathBuf, errno: Errno) -> SubvolumeError {
        SubvolumeError {
            op,
            path,
            cause: classify(op, errno.raw_os_error()),
            source: errno.into(),
        }
    }

    fn io(op: Op, path: PathBuf, source: io::Error) -> SubvolumeError {
        let cause = source
            .raw_os_error()
            .or_else(|| crate::error::raw_errno(&source))
            .map_or(Cause::Other, |e| classify(op, e));
        SubvolumeError {
            op,
            path,
            cause,
            source,
        }
    }

    /// The OS error number, if there is one.
    pub fn raw_errno(&self) -> Option<i32> {
        crate::error::raw_errno(&self.source)
    }
}

impl fmt::Display for SubvolumeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.op.as_str(),
            self.path.display(),
            self.source
        )
    }
}

impl std::error::Error for SubvolumeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

impl From<SubvolumeError> for io::Error {
    fn from(e: SubvolumeError) -> io::Error {
        io::Error::new(e.source.kind(), e)
    }
}

fn name_error(op: Op, path: PathBuf, e: io::Error) -> SubvolumeError {
    SubvolumeError {
        op,
        path,
        cause: Cause::Other,
        source: e,
    }
}

/// Whether `dir` is the root directory of a btrfs subvolume (inode 256 on btrfs; the top
/// level's root counts).
pub fn is_root(dir: At<'_>) -> Result<bool, SubvolumeError> {
    let st = rustix::fs::fstat(dir.dir)
        .map_err(|e| SubvolumeError::new(Op::Lookup, dir.path.to_path_buf(), e))?;
    if st.st_ino as u64 != crate::sys::SUBVOLUME_ROOT_INO {
        return Ok(false);
    }
    let magic = crate::sys::fs_magic(dir.dir.as_fd())
        .map_err(|e| SubvolumeError::io(Op::Lookup, dir.path.to_path_buf(), e))?;
    Ok(magic == crate::sys::BTRFS_MAGIC)
}

/// Whether `dir` is on btrfs.
pub fn is_btrfs(dir: At<'_>) -> Result<bool, SubvolumeError> {
    let magic = crate::sys::fs_magic(dir.dir.as_fd())
        .map_err(|e| SubvolumeError::io(Op::Lookup, dir.path.to_path_buf(), e))?;
    Ok(magic == crate::sys::BTRFS_MAGIC)
}

/// The UUID of the btrfs filesystem `dir` is on: equal for two directories exactly when a
/// snapshot can go from one to the other's filesystem (every subvolume and every `subvol=`
/// mount of one filesystem has its own `st_dev`, so devices cannot tell).
pub fn filesystem_id(dir: At<'_>) -> Result<[u8; 16], SubvolumeError> {
    crate::sys::btrfs_filesystem_id(dir.dir.as_fd())
        .map_err(|e| SubvolumeError::new(Op::Lookup, dir.path.to_path_buf(), e))
}

/// The id of the subvolume `dir` is in (5 for the top level).
pub fn id(dir: At<'_>) -> Result<u64, SubvolumeError> {
    crate::sys::btrfs_subvolume_id(dir.dir.as_fd())
        .map_err(|e| SubvolumeError::new(Op::Lookup, dir.path.to_path_buf(), e))
}

/// Creates the empty subvolume `name` in `parent` (mode 0755 less nothing: the kernel gives
/// a new subvolume's root 0755 and the caller as owner).
pub fn create(parent: At<'_>, name: &OsStr) -> Result<(), SubvolumeError> {
    let path = parent.join(name);
    check_name(name).map_err(|e| name_error(Op::Create, path.clone(), e))?;
    crate::sys::btrfs_subvolume_create(parent.dir.as_fd(), name)
        .map_err(|e| SubvolumeError::new(Op::Create, path, e))
}

/// Snapshots the subvolume whose root is `src` to the new `name` in `parent`, writable or
/// read-only. `src` must be a subvolume's root ([`Cause::NotSubvolumeRoot`] otherwise: the
/// kernel would snapshot the whole subvolume containing it). The snapshot is committed when
/// this returns (the kernel commits its transaction), so it survives a power loss.
pub fn snapshot(
    src: At<'_>,
    parent: At<'_>,
    name: &OsStr,
    read_only: bool,
) -> Result<(), SubvolumeError> {
    let path = parent.join(name);
    check_name(name).map_err(|e| name_error(Op::Snapshot, path.clone(), e))?;
    if !is_root(src)? {
        return Err(SubvolumeError {
            op: Op::Snapshot,
            path: src.path.to_path_buf(),
            cause: Cause::NotSubvolumeRoot,
            source: io::Error::new(
                io::ErrorKind::InvalidInput,
                "not the root directory of a btrfs subvolume",
            ),
        });
    }
    crate::sys::btrfs_snapshot(src.dir.as_fd(), parent.dir.as_fd(), name, read_only)
        .map_err(|e| SubvolumeError::new(Op::Snapshot, path, e))
}

/// Whether the subvolume whose root is `root` is read-only.
pub fn read_only(root: At<'_>) -> Result<bool, SubvolumeError> {
    crate::sys::btrfs_read_only(root.dir.as_fd())
        .map_err(|e| SubvolumeError::new(Op::ReadFlags, root.path.to_path_buf(), e))
}

/// Makes the subvolume whose root is `root` read-only or writable (the owner of the root may;
/// a snapshot being sent cannot be made writable).
pub fn set_read_only(root: At<'_>, read_only: bool) -> Result<(), SubvolumeError> {
    crate::sys::btrfs_set_read_only(root.dir.as_fd(), read_only)
        .map_err(|e| SubvolumeError::new(Op::SetReadOnly, root.path.to_path_buf(), e))
}

/// Deletes the subvolume `name` in `parent`, with everything in it, nested subvolumes
/// included: in one ioctl where the kernel permits, else by clearing `ro` and removing the
/// tree (directory-relative, never following a symlink). Says which ran. `name` must be a
/// subvolume's root ([`Cause::NotSubvolumeRoot`] otherwise, nothing removed). A missing
/// `name` is [`Cause::NotFound`].
pub fn delete(parent: At<'_>, name: &OsStr) -> Result<Deleted, SubvolumeError> {
    let path = parent.join(name);
    check_name(name).map_err(|e| name_error(Op::Delete, path.clone(), e))?;
    let root = parent
        .dir
        .open_dir(name)
        .map_err(|e| SubvolumeError::io(Op::Delete, path.clone(), e))?;
    let at = At::new(&root, &path);
    if !is_root(at)? {
        return Err(SubvolumeError {
            op: Op::Delete,
            path,
            cause: Cause::NotSubvolumeRoot,
            source: io::Error::new(
                io::ErrorKind::InvalidInput,
                "not the root directory of a btrfs subvolume",
            ),
        });
    }
    let mut cleared_ro = false;
    let mut nested_done = false;
    loop {
        let errno = match crate::sys::btrfs_subvolume_delete(parent.dir.as_fd(), name) {
            Ok(()) => return Ok(Deleted::Ioctl),
            Err(e) => e,
        };
        match classify(Op::Delete, errno.raw_os_error()) {
            // Unprivileged with `user_subvol_rm_allowed`: a read-only root fails the write
            // check. Clearing `ro` (as its owner) is O(1) too.
            Cause::ReadOnly if !cleared_ro => {
                set_read_only(at, false)?;
                cleared_ro = true;
            }
            // The kernel deletes only subvolumes without nested ones: those go first.
            Cause::HasNested if !nested_done => {
                delete_nested(at)?;
                nested_done = true;
            }
            because @ (Cause::NotPermitted | Cause::ReadOnly) => {
                remove_tree(parent, name, at)?;
                return Ok(Deleted::RemovedTree { because });
            }
            _ => return Err(SubvolumeError::new(Op::Delete, path, errno)),
        }
    }
}

/// Deletes every subvolume below `root` (deepest first), each by [`delete`].
fn delete_nested(root: At<'_>) -> Result<(), SubvolumeError> {
    let mut nested = below(root)?;
    // Deeper paths sort after their parents: delete from the end.
    nested.sort_by(|a, b| a.path.cmp(&b.path));
    for n in nested.iter().rev() {
        let parent_rel = n.path.parent().unwrap_or(Path::new(""));
        let name = n.path.file_name().ok_or_else(|| SubvolumeError {
            op: Op::Delete,
            path: root.path.join(&n.path),
            cause: Cause::Other,
            source: io::Error::other("a nested subvolume without a name"),
        })?;
        let parent_path = root.path.join(parent_rel);
        let parent_dir = if parent_rel.as_os_str().is_empty() {
            root.dir.try_clone()
        } else {
            root.dir.open_dir_deep(parent_rel)
        }
        .map_err(|e| SubvolumeError::io(Op::Delete, parent_path.clone(), e))?;
        match delete(At::new(&parent_dir, &parent_path), name) {
            Ok(_) => {}
            // Already gone with a subvolume deleted before it.
            Err(e) if e.cause == Cause::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// The unprivileged delete: nested subvolumes first, `ro` cleared, the tree removed, the
/// (then empty) root last with `rmdir`, which deletes an empty subvolume.
fn remove_tree(parent: At<'_>, name: &OsStr, root: At<'_>) -> Result<(), SubvolumeError> {
    delete_nested(root)?;
    if read_only(root)? {
        set_read_only(root, false)?;
    }
    parent
        .dir
        .remove_tree(name)
        .map_err(|e| SubvolumeError::io(Op::Delete, root.path.to_path_buf(), e))
}

/// A subvolume found below a directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nested {
    /// Its root's path relative to the directory searched.
    pub path: PathBuf,
    /// Its subvolume id.
    pub id: u64,
}

/// Every subvolume below `dir`, at any depth (nested ones inside nested ones too), with its
/// path relative to `dir`; `dir`'s own subvolume is not listed. Unprivileged
/// (`BTRFS_IOC_GET_SUBVOL_ROOTREF` and `BTRFS_IOC_INO_LOOKUP_USER`).
///
/// Below a subvolume's root this is exact: a child the caller may not reach (a directory on
/// the way it cannot read and search) is an error ([`Cause::AccessDenied`]). Below another
/// directory, the kernel answers the same `EACCES` for a child elsewhere in the subvolume
/// and for one behind such a directory, so those are left out. Not on btrfs: empty.
pub fn below(dir: At<'_>) -> Result<Vec<Nested>, SubvolumeError> {
    if !is_btrfs(dir)? {
        return Ok(Vec::new());
    }
    let exact = is_root(dir)?;
    let children = crate::sys::btrfs_child_subvolumes(dir.dir.as_fd())
        .map_err(|e| SubvolumeError::new(Op::Lookup, dir.path.to_path_buf(), e))?;
    let mut out = Vec::new();
    for child in children {
        let (rel_dir, name) = match crate::sys::btrfs_child_path(dir.dir.as_fd(), child) {
            Ok(found) => found,
            Err(Errno::ACCESS) if !exact => continue,
            // Deleted since the list was read.
            Err(Errno::NOENT) => continue,
            Err(e) => return Err(SubvolumeError::new(Op::Lookup, dir.path.to_path_buf(), e)),
        };
        let rel_dir = PathBuf::from(OsString::from_vec(rel_dir));
        let rel = rel_dir.join(OsStr::from_bytes(&name));
        let child_path = dir.path.join(&rel);
        let child_dir = match dir.dir.open_dir_deep(&rel) {
            Ok(d) => d,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(SubvolumeError::io(Op::Lookup, child_path, e)),
        };
        for n in below(At::new(&child_dir, &child_path))? {
            out.push(Nested {
                path: rel.join(&n.path),
                id: n.id,
            });
        }
        out.push(Nested {
            path: rel,
            id: child.id,
        });
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classify_table() {
        use Cause::*;
        let rows: &[(Op, Errno, Cause)] = &[
            (Op::Snapshot, Errno::NOTTY, NotBtrfs),
            (Op::Create, Errno::OPNOTSUPP, NotBtrfs),
            (Op::Delete, Errno::NOSYS, NotBtrfs),
            (Op::Snapshot, Errno::PERM, NotPermitted),
            (Op::Delete, Errno::PERM, NotPermitted),
            (Op::Create, Errno::ACCESS, AccessDenied),
            (Op::Snapshot, Errno::XDEV, CrossFilesystem),
            (Op::Delete, Errno::ROFS, ReadOnly),
            (Op::Snapshot, Errno::DQUOT, QuotaExceeded),
            (Op::Create, Errno::NOSPC, NoSpace),
            (Op::Snapshot, Errno::EXIST, Exists),
            (Op::Delete, Errno::NOENT, NotFound),
            (Op::Delete, Errno::NOTEMPTY, HasNested),
            (Op::Create, Errno::NOTEMPTY, Other),
            (Op::Delete, Errno::BUSY, Busy),
            (Op::Snapshot, Errno::TXTBSY, Busy),
            (Op::ReadFlags, Errno::INVAL, NotSubvolumeRoot),
            (Op::SetReadOnly, Errno::INVAL, NotSubvolumeRoot),
            (Op::Delete, Errno::INVAL, NotSubvolumeRoot),
            (Op::Snapshot, Errno::INVAL, Other),
            (Op::Create, Errno::IO, Other),
        ];
        for &(op, errno, want) in rows {
            assert_eq!(classify(op, errno.raw_os_error()), want, "{op:?} {errno:?}");
        }
    }

    #[test]
    fn an_error_names_its_path_and_keeps_kind_and_errno() {
        let e = SubvolumeError::new(Op::Snapshot, PathBuf::from("/m/dst"), Errno::DQUOT);
        assert_eq!(e.cause, Cause::QuotaExceeded);
        let msg = e.to_string();
        assert!(msg.starts_with("snapshot /m/dst: "), "{msg}");
        let io: io::Error = e.into();
        assert_eq!(
            crate::error::raw_errno(&io),
            Some(Errno::DQUOT.raw_os_error())
        );
        assert!(io.to_string().contains("/m/dst"), "{io}");
    }
}
