//! Removing a whole store (`cowtree stores rm`): its blobs, snapshots, registry and, on btrfs,
//! its read-only tree subvolumes, which `rm -rf` cannot remove ("Read-only file system").
//!
//! A removal is made restartable before anything is deleted: [`Removal::mark`] writes the
//! marker file `removing` into the store's root and then unlinks `format`, durably. From then
//! on [`Store::open`] refuses the store ([`Error::BeingRemoved`], saying how to finish), so no
//! command adds to a store that is half gone, and [`examine`] recognises what is left as a store
//! being removed. [`Removal::finish`] then deletes every subvolume below the root (deepest
//! first; each in one ioctl where the kernel permits, else by clearing `ro` and removing its
//! files: see [`cowtree_fs::subvolume::delete`]), every other entry, the marker last, and the
//! root itself. Interrupted at any point, running the removal again finishes it.
//!
//! What may be removed, so that a mistyped path never loses a user's files ([`examine`]):
//!
//! | what is at the path | [`State`] | removed |
//! |---|---|---|
//! | a store (a `format` file) | `Store` | yes, once no registered worktree needs it (or forced), under the store's exclusive lock |
//! | the `removing` marker | `BeingRemoved` | yes: what an interrupted removal left |
//! | only names a store has ([`STORE_NAMES`], `.tmp-*`), no `format` | `Remains` | yes: what `rm -rf` (or a store's interrupted creation) left |
//! | an empty directory | `Empty` | yes |
//! | anything else | refused ([`Refused::NotAStore`]) | nothing |
//!
//! On Windows there are no subvolumes: [`Removal::finish`] removes every entry (clearing the
//! read-only attribute of blobs), the store's lock last but the marker, having released it
//! (Windows removes a file still open elsewhere only at its last close, and a directory
//! holding it could not go). The lock is `LockFileEx`'s, as the store's own.

use std::ffi::OsStr;
use std::io;
#[cfg(unix)]
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use cowtree_fs::dir::Dir;
use cowtree_fs::subvolume::Deleted;
#[cfg(unix)]
use cowtree_fs::subvolume::{self, At, Cause};
use cowtree_fs::sys::AsFd;
#[cfg(unix)]
use rustix::fs::{FlockOperation, Mode, OFlags, flock, openat};
#[cfg(unix)]
use rustix::io::Errno;

pub use crate::error::Refused;
use crate::error::{Error, Result};
pub use crate::store::MARKER;
use crate::store::Store;

/// What the marker says to a person who finds it.
const MARKER_TEXT: &str = "this cowtree store is being removed; cowtree stores rm with this \
                           directory finishes removing it\n";

/// Every name a store's root can hold (besides `.tmp-*` names): what [`examine`] accepts as
/// what is left of a store without its `format` file. A name added to the store's root must be
/// added here, or a store left half removed by `rm -rf` with that name in it is refused.
pub const STORE_NAMES: [&str; 12] = [
    "format",
    "lock",
    "blobs",
    "snapshots",
    "refs",
    "worktrees",
    "tmp",
    "trees",
    "history",
    "remotes.json",
    "remote-cache",
    MARKER,
];

/// What [`examine`] found at a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// A store (its `format` file is there).
    Store,
    /// A store whose removal began and did not finish (the marker is there).
    BeingRemoved,
    /// What is left of a store without its `format` file: only names a store has.
    Remains,
    /// An empty directory.
    Empty,
}

impl State {
    /// `store`, `being-removed`, `remains`, `empty`.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Store => "store",
            State::BeingRemoved => "being-removed",
            State::Remains => "remains",
            State::Empty => "empty",
        }
    }
}

/// A removal, examined and not begun: see [`examine`].
#[derive(Debug)]
pub struct Removal {
    root: PathBuf,
    dir: Dir,
    state: State,
    /// The store's lock, held exclusively from [`examine`] on (when the store has a lock file);
    /// released by hand only on Windows (see [`Removal::finish`]).
    #[cfg_attr(unix, allow(dead_code))]
    lock: Option<HeldLock>,
    worktrees: Vec<PathBuf>,
}

/// What [`Removal::finish`] did.
#[derive(Debug, Default)]
pub struct Removed {
    /// Each subvolume deleted below the store's root (its path) and how.
    pub subvolumes: Vec<(PathBuf, Deleted)>,
}

fn io_at(op: &'static str, path: &Path, e: io::Error) -> Error {
    Error::io_at(op, path, e)
}

/// Looks at what is at `root` and prepares its removal, changing nothing: refuses a directory
/// that is not a store nor what is left of one, and a store another process has locked (its
/// lock is then held until the [`Removal`] is dropped). A missing `root` is
/// [`crate::error::NotFound::Directory`].
///
/// For a store, [`Removal::worktrees`] lists the registered worktrees that exist; the caller
/// decides whether they stop the removal.
pub fn examine(root: &Path) -> Result<Removal> {
    let dir = match Dir::open(root) {
        Ok(d) => d,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(Error::NotFound(crate::error::NotFound::Directory(
                root.to_path_buf(),
            )));
        }
        Err(e) => return Err(io_at("open", root, e)),
    };
    let entries = dir.entries().map_err(|e| io_at("read", root, e))?;
    let has = |n: &str| {
        entries
            .iter()
            .any(|e| e.name.as_encoded_bytes() == n.as_bytes())
    };
    let state = if has(MARKER) {
        State::BeingRemoved
    } else if has("format") {
        State::Store
    } else if entries.is_empty() {
        State::Empty
    } else {
        if let Some(e) = entries.iter().find(|e| !store_name(&e.name)) {
            return Err(Error::RemoveRefused(Refused::NotAStore {
                path: root.to_path_buf(),
                entry: e.name.clone(),
            }));
        }
        State::Remains
    };
    let mut worktrees = Vec::new();
    if state == State::Store {
        // Opening it checks the format (a store of another version is refused, as by every
        // command) and finds the registry, in the store or kept outside a read-only one.
        let store = Store::open(root)?;
        worktrees = crate::worktree_records::pins(&store)?
            .into_iter()
            .filter_map(|p| p.path)
            .filter(|p| p.symlink_metadata().is_ok_and(|m| m.is_dir()))
            .collect();
        worktrees.sort();
        worktrees.dedup();
    }
    let lock = lock(&dir, root)?;
    Ok(Removal {
        root: root.to_path_buf(),
        dir,
        state,
        lock,
        worktrees,
    })
}

/// For a `root` without a store's `format` file: the error a command that needs an existing
/// store gives instead of "no store", when something is there: [`Error::BeingRemoved`] for a
/// store whose removal stopped partway, [`Error::NotAStore`] for a directory that is not empty
/// (both say how to remove it). `None` when nothing, or an empty directory, is there.
pub fn leftover(root: &Path) -> Option<Error> {
    if root.join(MARKER).symlink_metadata().is_ok() {
        return Some(Error::BeingRemoved {
            path: root.to_path_buf(),
        });
    }
    let mut entries = std::fs::read_dir(root).ok()?;
    entries.next().is_some().then(|| Error::NotAStore {
        path: root.to_path_buf(),
    })
}

/// A name a store's root can hold.
fn store_name(name: &OsStr) -> bool {
    let n = name.as_encoded_bytes();
    STORE_NAMES.iter().any(|s| s.as_bytes() == n) || n.starts_with(b".tmp-")
}

/// The store's lock, held.
#[cfg(unix)]
type HeldLock = OwnedFd;
/// The store's lock, held.
#[cfg(windows)]
type HeldLock = crate::lock::Held;

/// The store's lock taken exclusively without waiting, as gc takes it (every command that
/// writes the store takes it shared); `None` where there is no lock file.
#[cfg(unix)]
fn lock(dir: &Dir, root: &Path) -> Result<Option<OwnedFd>> {
    let path = root.join("lock");
    let fd = match openat(
        dir,
        "lock",
        OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOFOLLOW,
        Mode::empty(),
    ) {
        Ok(fd) => fd,
        Err(Errno::NOENT) => return Ok(None),
        Err(e) => return Err(io_at("open", &path, e.into())),
    };
    match flock(&fd, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(Some(fd)),
        Err(Errno::WOULDBLOCK) => Err(Error::RemoveRefused(Refused::InUse {
            path: root.to_path_buf(),
        })),
        Err(e) => Err(io_at("lock", &path, e.into())),
    }
}

/// The store's lock taken exclusively without waiting (`LockFileEx`, as the store's own);
/// `None` where there is no lock file.
#[cfg(windows)]
fn lock(dir: &Dir, root: &Path) -> Result<Option<HeldLock>> {
    let path = root.join("lock");
    let file = match dir.open_file(OsStr::new("lock")) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_at("open", &path, e)),
    };
    match crate::lock::try_lock(file, true) {
        Ok(Ok(held)) => Ok(Some(held)),
        Ok(Err(_)) => Err(Error::RemoveRefused(Refused::InUse {
            path: root.to_path_buf(),
        })),
        Err(e) => Err(io_at("lock", &path, e)),
    }
}

impl Removal {
    /// What is at the path.
    pub fn state(&self) -> State {
        self.state
    }

    /// The path.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// For a [`State::Store`]: its registered worktrees that exist, sorted.
    pub fn worktrees(&self) -> &[PathBuf] {
        &self.worktrees
    }

    /// The refusal to give when worktrees need the store (see [`Removal::worktrees`]), if any.
    pub fn refusal(&self) -> Option<Error> {
        (!self.worktrees.is_empty()).then(|| {
            Error::RemoveRefused(Refused::Worktrees {
                path: self.root.clone(),
                worktrees: self.worktrees.clone(),
            })
        })
    }

    /// Makes a store unusable and its removal restartable: writes the marker, then unlinks
    /// `format`, each durably. Nothing else is changed. For what is not a whole store it only
    /// writes the marker (for [`State::Empty`]: nothing).
    pub fn mark(&mut self) -> Result<()> {
        if self.state == State::Empty {
            return Ok(());
        }
        if self.state != State::BeingRemoved {
            cowtree_fs::atomic_file::write_atomic(
                self.dir.as_fd(),
                OsStr::new(MARKER),
                MARKER_TEXT.as_bytes(),
                0o444,
                true,
            )
            .map_err(|e| io_at("write", &self.root.join(MARKER), e))?;
        }
        match self.dir.remove_file(OsStr::new("format")) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_at("remove", &self.root.join("format"), e)),
        }
        self.dir.sync().map_err(|e| io_at("sync", &self.root, e))?;
        self.state = State::BeingRemoved;
        Ok(())
    }

    /// Deletes everything: the subvolumes below the root (deepest first), the other entries,
    /// the marker, then the root (itself deleted as a subvolume if it is one). Call
    /// [`Removal::mark`] first: an error here leaves the removal to be finished by running it
    /// again.
    #[cfg(unix)]
    pub fn finish(self) -> Result<Removed> {
        let mut out = Removed::default();
        let root = self.root.clone();
        // Subvolumes first: their files cannot be removed while they are read-only, and a
        // whole subvolume goes in one call where the kernel permits.
        let mut nested = subvolume::below(At::new(&self.dir, &root)).map_err(sub_err)?;
        nested.sort_by(|a, b| a.path.cmp(&b.path));
        for n in nested.iter().rev() {
            let Some(name) = n.path.file_name() else {
                continue;
            };
            let parent_rel = n.path.parent().unwrap_or(Path::new(""));
            let parent_path = root.join(parent_rel);
            let parent = if parent_rel.as_os_str().is_empty() {
                self.dir.try_clone()
            } else {
                self.dir.open_dir_deep(parent_rel)
            };
            let parent = match parent {
                Ok(p) => p,
                // Gone with a subvolume deleted before it.
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io_at("open", &parent_path, e)),
            };
            match subvolume::delete(At::new(&parent, &parent_path), name) {
                Ok(how) => out.subvolumes.push((root.join(&n.path), how)),
                Err(e) if e.cause == Cause::NotFound => {}
                Err(e) => return Err(sub_err(e)),
            }
        }
        let entries = self.dir.entries().map_err(|e| io_at("read", &root, e))?;
        for e in entries
            .iter()
            .filter(|e| e.name.as_encoded_bytes() != MARKER.as_bytes())
        {
            self.dir
                .remove_tree(&e.name)
                .map_err(|err| io_at("remove", &root.join(&e.name), err))?;
        }
        match self.dir.remove_file(OsStr::new(MARKER)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_at("remove", &root.join(MARKER), e)),
        }
        remove_root(&self.dir, &root)?;
        drop(self);
        Ok(out)
    }

    /// Deletes everything (see the unix one; no subvolumes on Windows): every entry but the
    /// marker and the lock, then the lock once released, the marker, and the root. Call
    /// [`Removal::mark`] first: an error here leaves the removal to be finished by running it
    /// again.
    #[cfg(windows)]
    pub fn finish(mut self) -> Result<Removed> {
        let root = self.root.clone();
        let entries = self.dir.entries().map_err(|e| io_at("read", &root, e))?;
        for e in entries
            .iter()
            .filter(|e| e.name != MARKER && e.name != "lock")
        {
            self.dir
                .remove_tree(&e.name)
                .map_err(|err| io_at("remove", &root.join(&e.name), err))?;
        }
        // Released and closed first: a file open elsewhere stays until its last close.
        drop(self.lock.take());
        for name in ["lock", MARKER] {
            match self.dir.remove_tree(OsStr::new(name)) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_at("remove", &root.join(name), e)),
            }
        }
        remove_root(&self.dir, &root)?;
        drop(self);
        Ok(Removed::default())
    }
}

/// Removes the emptied root: as a subvolume when it is one (`rmdir` cannot remove a
/// subvolume's root without privilege on older kernels), else with `rmdir`.
#[cfg(unix)]
fn remove_root(dir: &Dir, root: &Path) -> Result<()> {
    let (Some(parent_path), Some(name)) = (root.parent(), root.file_name()) else {
        return Err(Error::Msg(format!(
            "{}: cannot remove a directory without a parent",
            root.display()
        )));
    };
    let parent_path = if parent_path.as_os_str().is_empty() {
        Path::new(".")
    } else {
        parent_path
    };
    let parent = Dir::open(parent_path).map_err(|e| io_at("open", parent_path, e))?;
    if subvolume::is_root(At::new(dir, root)).unwrap_or(false) {
        subvolume::delete(At::new(&parent, parent_path), name).map_err(sub_err)?;
    } else {
        parent
            .remove_dir(name)
            .map_err(|e| io_at("remove directory", root, e))?;
    }
    parent.sync().map_err(|e| io_at("sync", parent_path, e))
}

/// Removes the emptied root (its handle `dir`, open, is closed by the caller, when Windows
/// removes it).
#[cfg(windows)]
fn remove_root(_dir: &Dir, root: &Path) -> Result<()> {
    let (Some(parent_path), Some(name)) = (root.parent(), root.file_name()) else {
        return Err(Error::Msg(format!(
            "{}: cannot remove a directory without a parent",
            root.display()
        )));
    };
    let parent_path = if parent_path.as_os_str().is_empty() {
        Path::new(".")
    } else {
        parent_path
    };
    let parent = Dir::open(parent_path).map_err(|e| io_at("open", parent_path, e))?;
    parent
        .remove_dir(name)
        .map_err(|e| io_at("remove directory", root, e))?;
    parent.sync().map_err(|e| io_at("sync", parent_path, e))
}

#[cfg(unix)]
fn sub_err(e: subvolume::SubvolumeError) -> Error {
    Error::Io(e.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_names_are_the_layout_and_the_files_a_store_root_holds() {
        for n in ["blobs", "format", "lock", "trees", MARKER, ".tmp-123-abc"] {
            assert!(store_name(OsStr::new(n)), "{n}");
        }
        for n in ["Documents", ".bashrc", "blob", "tmp2", ".tmp"] {
            assert!(!store_name(OsStr::new(n)), "{n}");
        }
    }

    #[test]
    fn a_directory_with_a_name_no_store_has_is_refused_and_left_alone() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("blobs")).unwrap();
        std::fs::write(d.path().join("notes.txt"), b"mine").unwrap();
        let e = examine(d.path()).unwrap_err();
        assert!(
            matches!(&e, Error::RemoveRefused(Refused::NotAStore { entry, .. }) if entry == "notes.txt"),
            "{e}"
        );
        assert!(e.to_string().contains("notes.txt"), "{e}");
        assert!(d.path().join("notes.txt").exists());
    }

    #[test]
    fn a_store_marked_for_removal_is_refused_by_open_and_finished_by_a_second_removal() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("store");
        Store::open(&root).unwrap();
        let mut r = examine(&root).unwrap();
        assert_eq!(r.state(), State::Store);
        r.mark().unwrap();
        drop(r);
        assert!(!root.join("format").exists());
        let e = Store::open(&root).unwrap_err();
        assert!(matches!(e, Error::BeingRemoved { .. }), "{e}");
        assert!(e.to_string().contains("cowtree stores rm"), "{e}");
        let r = examine(&root).unwrap();
        assert_eq!(r.state(), State::BeingRemoved);
        r.finish().unwrap();
        assert!(!root.exists());
    }

    #[test]
    fn what_is_left_of_a_store_without_its_format_file_is_removed() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("store");
        Store::open(&root).unwrap();
        std::fs::remove_file(root.join("format")).unwrap();
        std::fs::remove_dir_all(root.join("blobs")).unwrap();
        let mut r = examine(&root).unwrap();
        assert_eq!(r.state(), State::Remains);
        r.mark().unwrap();
        r.finish().unwrap();
        assert!(!root.exists());
    }

    #[test]
    fn a_missing_path_is_not_found() {
        let d = tempfile::tempdir().unwrap();
        let e = examine(&d.path().join("nothing")).unwrap_err();
        assert!(matches!(e, Error::NotFound(_)), "{e}");
    }
}
