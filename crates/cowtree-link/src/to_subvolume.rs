//! Turning a directory into a btrfs subvolume in place ([`convert`]), so that it can be
//! copied whole, in one snapshot, from then on (`cowtree clone`, checkouts, worktrees).
//!
//! The kernel cannot make an existing directory a subvolume. So a new subvolume is made beside
//! it (`.<name>.cowtree-convert.<pid>.<random>`), the directory's contents are cloned into it
//! (per file, sharing all data: no file data is written), every entry is given the source's
//! owner, group, mode, times, extended attributes (ACLs included) and hardlinks, and the two
//! are swapped with one `renameat2(RENAME_EXCHANGE)`; then the old tree is removed. Refused
//! (and nothing changed) where:
//!
//! - the directory is not on btrfs, or is a symlink;
//! - a subvolume or a mount point is below it (it would have to be taken apart), or a special
//!   file (FIFO, socket, device) is in it;
//! - an entry belongs to another user and the caller is not root (it could not keep its
//!   owner);
//! - anything in it changed during the copy (every entry's inode, type, mode, owner, size,
//!   times and link count are compared before and after): the original stays in place until
//!   the swap, so nothing is lost.
//!
//! After the swap the old tree is compared once more before it is removed; a change that
//! slipped in between the last check and the swap keeps it (at its hidden name) and is an
//! error naming it. A directory already a subvolume's root is left alone. What changes: every
//! entry's inode number and change time (a stat cache, git's index, sees them as touched once).
//!
//! Crash safety: the copy is made durable (`syncfs`) before the swap and the swap (the parent
//! `fsync`ed) before the old tree is removed, so after a crash or a kill the directory is either
//! the original or the whole copy; what is left under the hidden name is garbage in either case
//! and the next conversion of the same directory removes it.

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use cowtree_fs::dir::Dir;
use cowtree_fs::staging::Naming;
use cowtree_fs::subvolume::{self, At, SubvolumeError};
use rustix::fs::{AtFlags, FileType, Mode, OFlags, Stat, Timespec};

use crate::{LinkError, LinkMode, LinkOptions, Linker, OnExisting};

/// The naming of the subvolume a conversion builds beside its directory (and of the old tree
/// after the swap): `.<name>.cowtree-convert.<pid>.<unique>`.
pub const NAMING: Naming = Naming {
    infix: ".cowtree-convert.",
    keep: 200,
    separator: ".",
};

/// Why a conversion was refused or failed. Unless said otherwise, the directory is as it was.
#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    /// Not a btrfs filesystem.
    #[error("{path} is on {fs}, not btrfs: only btrfs has subvolumes")]
    NotBtrfs {
        /// The directory.
        path: PathBuf,
        /// Its filesystem.
        fs: &'static str,
    },
    /// Not a directory (a symlink is not followed).
    #[error("{0} is not a directory (a symlink is not followed)")]
    NotADirectory(PathBuf),
    /// A subvolume or a mount point is below the directory.
    #[error(
        "{path} is {what}: a directory with a subvolume or a filesystem below it cannot be converted (nothing was changed)"
    )]
    Nested {
        /// Where.
        path: PathBuf,
        /// "a subvolume" or "a mount point".
        what: &'static str,
    },
    /// A special file is in the directory.
    #[error(
        "{0} is a special file (FIFO, socket or device); convert copies directories, files and symlinks only (nothing was changed)"
    )]
    Special(PathBuf),
    /// An entry belongs to another user and the caller cannot keep that.
    #[error(
        "{path} belongs to uid {uid}: only root can convert a directory holding files of other users (nothing was changed)"
    )]
    ForeignOwner {
        /// The entry.
        path: PathBuf,
        /// Its owner.
        uid: u32,
    },
    /// Something changed during the copy.
    #[error(
        "{0} changed while it was being copied: nothing was changed; convert again when nothing writes to the directory"
    )]
    Changed(PathBuf),
    /// Something changed between the last check and the swap: the directory holds the copy, the
    /// original with the change is kept.
    #[error(
        "{changed} changed just before the swap: {dir} now holds the converted copy, and the original, with that change, is kept at {kept}; compare them, then remove one"
    )]
    ChangedAtSwap {
        /// The directory.
        dir: PathBuf,
        /// The entry that changed (in the original).
        changed: PathBuf,
        /// Where the original is.
        kept: PathBuf,
    },
    /// Copying failed.
    #[error("{0}")]
    Link(#[from] LinkError),
    /// A subvolume operation failed.
    #[error("{0}")]
    Subvolume(#[from] SubvolumeError),
    /// Another I/O error.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was done.
        op: &'static str,
        /// To what.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

fn io<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> ConvertError + 'a {
    move |source| ConvertError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// What a conversion did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConvertReport {
    /// The directory, now a subvolume's root.
    pub path: PathBuf,
    /// It was one already: nothing was done.
    pub already: bool,
    /// Entries below it (files, directories, symlinks; not itself).
    pub entries: u64,
    /// Files cloned (sharing data with the original) and copied.
    pub cloned: u64,
    /// Files copied instead of cloned (none on btrfs unless the kernel refused a clone).
    pub copied: u64,
    /// How long it took.
    pub elapsed: Duration,
}

/// The state of a conversion in progress, for [`abort_all`].
struct Active {
    parent: PathBuf,
    tmp: OsString,
    /// The swap happened: the directory holds the copy, `tmp` the original.
    swapped: bool,
    /// Finished (or failed with both trees reported): nothing to abort.
    done: bool,
}

static ACTIVE: Mutex<Option<Active>> = Mutex::new(None);

fn set_active(a: Option<Active>) {
    *ACTIVE.lock().unwrap_or_else(PoisonError::into_inner) = a;
}

/// Registers [`abort_all`] as the process's undo of a conversion (`cowtree_fs::undo`), once,
/// for the process's life: a signal handler's `undo_all` then takes back the one in progress.
fn register_undo() {
    static UNDO: std::sync::OnceLock<cowtree_fs::undo::Registration> = std::sync::OnceLock::new();
    UNDO.get_or_init(|| cowtree_fs::undo::Registration::call(std::sync::Arc::new(abort_all)));
}

/// Takes back a conversion in progress, for an interrupt handler (it runs while the
/// conversion may still be working): before the swap, the new subvolume is deleted and the
/// directory is as it was; after it, the directory holds the whole copy and the original
/// (at the hidden name) is removed. Says what it did; empty when nothing was in progress.
pub fn abort_all() -> Vec<String> {
    let mut guard = ACTIVE.lock().unwrap_or_else(PoisonError::into_inner);
    let Some(a) = guard.as_mut() else {
        return Vec::new();
    };
    if a.done {
        return Vec::new();
    }
    a.done = true;
    let left = a.parent.join(&a.tmp);
    let Ok(parent) = Dir::open(&a.parent) else {
        return vec![format!(
            "{} is left; the next convert removes it",
            left.display()
        )];
    };
    let removed = if a.swapped {
        parent.remove_tree(&a.tmp).is_ok()
    } else {
        subvolume::delete(At::new(&parent, &a.parent), &a.tmp).is_ok()
    };
    let mut said = Vec::new();
    said.push(if a.swapped {
        "the directory was already converted".to_string()
    } else {
        "the directory is as it was".to_string()
    });
    if !removed {
        said.push(format!(
            "{} is left; the next convert of the directory removes it",
            left.display()
        ));
    }
    said
}

/// Converts the directory `dir` into a btrfs subvolume in place (see the module
/// documentation), cloning with `jobs` workers (0: one per core).
pub fn convert(dir: &Path, jobs: usize) -> Result<ConvertReport, ConvertError> {
    let started = Instant::now();
    register_undo();
    let place = Place::open(dir)?;
    let root_at = At::new(&place.root, dir);
    if !subvolume::is_btrfs(root_at)? {
        let fs = cowtree_fs::fstype::fs_type(&place.root)
            .map(|t| t.name())
            .unwrap_or("unknown");
        return Err(ConvertError::NotBtrfs {
            path: dir.to_path_buf(),
            fs,
        });
    }
    remove_stale(&place.parent, &place.parent_path, &place.name);
    if subvolume::is_root(root_at)? {
        return Ok(ConvertReport {
            path: dir.to_path_buf(),
            already: true,
            entries: 0,
            cloned: 0,
            copied: 0,
            elapsed: started.elapsed(),
        });
    }
    let before = Tree::read(&place.root, dir)?;
    refuse_foreign_owner(&before, dir)?;
    let tmp = NAMING.name(
        &place.name,
        &format!("{:016x}", cowtree_fs::staging::random_u64()),
    );
    let tmp_path = place.parent_path.join(&tmp);
    let (copy, report) = copy_beside(&place, dir, &before, (&tmp, &tmp_path), jobs)?;
    swap(&place, &tmp, dir)?;
    drop(copy);
    // The swap sets the moved root's modification time: give it the original's again.
    let root_meta = before.entries[Path::new("")];
    place
        .parent
        .set_times(&place.name, ts(root_meta.atime), ts(root_meta.mtime))
        .map_err(io("set the times of", dir))?;
    place
        .parent
        .sync()
        .map_err(io("sync", &place.parent_path))?;
    remove_original(&place, dir, &before, (&tmp, tmp_path))?;
    Ok(ConvertReport {
        path: dir.to_path_buf(),
        already: false,
        entries: before.entries.len() as u64 - 1,
        cloned: report.cloned,
        copied: report.copied,
        elapsed: started.elapsed(),
    })
}

/// The directory to convert: its name in its parent, the parent (open, and its path) and
/// the directory itself, open.
struct Place {
    name: OsString,
    parent_path: PathBuf,
    parent: Dir,
    root: Dir,
}

impl Place {
    /// Opens `dir` (never following a symlink) and its parent.
    fn open(dir: &Path) -> Result<Place, ConvertError> {
        let name = dir
            .file_name()
            .filter(|n| *n != OsStr::new("..") && *n != OsStr::new("."))
            .ok_or_else(|| ConvertError::NotADirectory(dir.to_path_buf()))?
            .to_os_string();
        let parent_path = match dir.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let parent = Dir::open(&parent_path).map_err(io("open", &parent_path))?;
        let st = parent.stat(&name).map_err(io("stat", dir))?;
        if cowtree_fs::sys::file_type(cowtree_fs::sys::stat_mode(&st)) != FileType::Directory {
            return Err(ConvertError::NotADirectory(dir.to_path_buf()));
        }
        let root = parent.open_dir(&name).map_err(io("open", dir))?;
        Ok(Place {
            name,
            parent_path,
            parent,
            root,
        })
    }

    fn parent_at(&self) -> At<'_> {
        At::new(&self.parent, &self.parent_path)
    }
}

/// Refuses a tree holding an entry of another user unless the caller is root (it could not
/// give the copy that owner).
fn refuse_foreign_owner(before: &Tree, dir: &Path) -> Result<(), ConvertError> {
    let euid = rustix::process::geteuid();
    if !euid.is_root()
        && let Some((path, m)) = before.entries.iter().find(|(_, m)| m.uid != euid.as_raw())
    {
        return Err(ConvertError::ForeignOwner {
            path: dir.join(path),
            uid: m.uid,
        });
    }
    Ok(())
}

/// Makes the subvolume `tmp` (at `tmp_path`) beside the directory and fills it with a copy
/// of the tree as it was read (`before`): cloned, every entry given the original's
/// metadata and hardlinks, the original checked unchanged, the copy made durable. Returns
/// the copy, open and locked, and what the linker did; on error the subvolume is deleted.
fn copy_beside(
    place: &Place,
    dir: &Path,
    before: &Tree,
    (tmp, tmp_path): (&OsStr, &Path),
    jobs: usize,
) -> Result<(Dir, crate::LinkReport), ConvertError> {
    subvolume::create(place.parent_at(), tmp)?;
    set_active(Some(Active {
        parent: place.parent_path.clone(),
        tmp: tmp.to_os_string(),
        swapped: false,
        done: false,
    }));
    let made = (|| -> Result<(Dir, crate::LinkReport), ConvertError> {
        let copy = place.parent.open_dir(tmp).map_err(io("open", tmp_path))?;
        let linker = Linker::new(LinkOptions {
            mode: LinkMode::Clone,
            on_existing: OnExisting::Overwrite,
            jobs,
            ..LinkOptions::default()
        });
        // The merge holds the copy's lock (an flock on the directory) while it runs; this
        // run holds it from then on: a conversion whose lock can be taken died. (Before the
        // merge the copy is empty: one removed as stale then fails this run, and loses
        // nothing.)
        let report = linker.link_tree(dir, tmp_path)?;
        let _ = copy.try_lock_exclusive();
        fix_up(before, &place.root, dir, &copy, tmp_path)?;
        let now = Tree::read(&place.root, dir)?;
        if let Some(changed) = before.first_difference(&now, false) {
            return Err(ConvertError::Changed(dir.join(changed)));
        }
        copy.sync_filesystem().map_err(io("sync", tmp_path))?;
        Ok((copy, report))
    })();
    if made.is_err() {
        let _ = subvolume::delete(place.parent_at(), tmp);
        set_active(None);
    }
    made
}

/// Swaps the copy `tmp` with the directory in one `renameat2(RENAME_EXCHANGE)`, unless an
/// interrupt took the copy back (then this thread waits for the handler to end the process).
fn swap(place: &Place, tmp: &OsStr, dir: &Path) -> Result<(), ConvertError> {
    let mut active = ACTIVE.lock().unwrap_or_else(PoisonError::into_inner);
    while active.as_ref().is_some_and(|a| a.done) {
        // Interrupted: the handler took the copy back and ends the process.
        drop(active);
        std::thread::park();
        active = ACTIVE.lock().unwrap_or_else(PoisonError::into_inner);
    }
    place
        .parent
        .rename_exchange(tmp, &place.parent, &place.name)
        .map_err(io("swap", dir))?;
    if let Some(a) = active.as_mut() {
        a.swapped = true;
    }
    Ok(())
}

/// Compares the original, now at `tmp`, with its reading before the copy once more and
/// removes it; a change that slipped in keeps it, and is an error naming it.
fn remove_original(
    place: &Place,
    dir: &Path,
    before: &Tree,
    (tmp, tmp_path): (&OsStr, PathBuf),
) -> Result<(), ConvertError> {
    let old = place.parent.open_dir(tmp).map_err(io("open", &tmp_path))?;
    let after = Tree::read(&old, &tmp_path)?;
    drop(old);
    if let Some(changed) = before.first_difference(&after, true) {
        set_active(None);
        return Err(ConvertError::ChangedAtSwap {
            dir: dir.to_path_buf(),
            changed: dir.join(changed),
            kept: tmp_path,
        });
    }
    place
        .parent
        .remove_tree(tmp)
        .map_err(io("remove", &tmp_path))?;
    set_active(None);
    Ok(())
}

/// A (seconds, nanoseconds) time as a [`Timespec`].
fn ts((sec, nsec): (i64, i64)) -> Timespec {
    Timespec {
        tv_sec: sec as _,
        tv_nsec: nsec as _,
    }
}

/// Removes what killed conversions of `name` left in `parent` (their lock can be taken):
/// an unswapped copy (a subvolume) or a swapped-out original (a directory); either is
/// garbage, the directory being whole in both cases.
fn remove_stale(parent: &Dir, parent_path: &Path, name: &OsStr) {
    let prefix = NAMING.prefix(name);
    let Ok(entries) = parent.entries() else {
        return;
    };
    for e in entries {
        if !e.name.as_bytes().starts_with(prefix.as_bytes()) {
            continue;
        }
        let Ok(d) = parent.open_dir(&e.name) else {
            continue;
        };
        if !d.try_lock_exclusive().unwrap_or(false) {
            continue; // a live conversion
        }
        let path = parent_path.join(&e.name);
        let is_sub = subvolume::is_root(At::new(&d, &path)).unwrap_or(false);
        drop(d);
        if is_sub {
            let _ = subvolume::delete(At::new(parent, parent_path), &e.name);
        } else {
            let _ = parent.remove_tree(&e.name);
        }
    }
}

/// What is compared of an entry before and after.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Meta {
    ino: u64,
    mode: u32,
    uid: u32,
    gid: u32,
    nlink: u64,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
    atime: (i64, i64),
}

impl Meta {
    // `st_nlink` is a u64 here and a u16 on macOS.
    #[allow(clippy::useless_conversion)]
    fn of(st: &Stat) -> Meta {
        Meta {
            ino: st.st_ino,
            mode: cowtree_fs::sys::stat_mode(st),
            uid: st.st_uid,
            gid: st.st_gid,
            nlink: u64::from(st.st_nlink),
            size: st.st_size as u64,
            mtime: (st.st_mtime, st.st_mtime_nsec as i64),
            ctime: (st.st_ctime, st.st_ctime_nsec as i64),
            atime: (st.st_atime, st.st_atime_nsec as i64),
        }
    }

    /// Equal for this purpose: all but the access time (reading updates it), and, for the
    /// root after the swap, but its change time (the rename sets it).
    fn same(&self, other: &Meta, ignore_ctime: bool) -> bool {
        Meta {
            atime: (0, 0),
            ctime: if ignore_ctime { (0, 0) } else { self.ctime },
            ..*self
        } == Meta {
            atime: (0, 0),
            ctime: if ignore_ctime { (0, 0) } else { other.ctime },
            ..*other
        }
    }

    fn kind(&self) -> FileType {
        cowtree_fs::sys::file_type(self.mode)
    }
}

/// Every entry of a tree by relative path (the root as the empty path).
struct Tree {
    entries: BTreeMap<PathBuf, Meta>,
}

impl Tree {
    /// Reads the tree at `root` (reached at `path`), refusing what cannot be converted.
    /// Directories are opened beneath `root` when their turn comes (a descriptor each at a
    /// time, whatever the tree's width).
    fn read(root: &Dir, path: &Path) -> Result<Tree, ConvertError> {
        let st = root.stat_self().map_err(io("stat", path))?;
        let dev = cowtree_fs::sys::stat_dev(&st);
        let mut entries = BTreeMap::new();
        entries.insert(PathBuf::new(), Meta::of(&st));
        let mut stack = vec![PathBuf::new()];
        while let Some(rel) = stack.pop() {
            let here = path.join(&rel);
            let dir = if rel.as_os_str().is_empty() {
                root.try_clone()
            } else {
                root.open_dir_deep(&rel)
            }
            .map_err(io("open", &here))?;
            let dst = dir.stat_self().map_err(io("stat", &here))?;
            if cowtree_fs::sys::stat_dev(&dst) != dev {
                let is_sub = subvolume::is_root(At::new(&dir, &here)).unwrap_or(false);
                return Err(ConvertError::Nested {
                    path: here,
                    what: if is_sub {
                        "a subvolume"
                    } else {
                        "a mount point"
                    },
                });
            }
            for e in dir.entries().map_err(io("list", &here))? {
                let st = dir.stat(&e.name).map_err(io("stat", &here.join(&e.name)))?;
                let child = rel.join(&e.name);
                let m = Meta::of(&st);
                match m.kind() {
                    FileType::Directory => stack.push(child.clone()),
                    FileType::RegularFile | FileType::Symlink => {}
                    _ => return Err(ConvertError::Special(path.join(&child))),
                }
                entries.insert(child, m);
            }
        }
        Ok(Tree { entries })
    }

    /// The first path whose entry differs between the two readings (added, removed or
    /// changed); with `swapped`, the root's change time is not compared.
    fn first_difference(&self, other: &Tree, swapped: bool) -> Option<PathBuf> {
        for (p, a) in &self.entries {
            match other.entries.get(p) {
                Some(b) if a.same(b, swapped && p.as_os_str().is_empty()) => {}
                _ => return Some(p.clone()),
            }
        }
        other
            .entries
            .keys()
            .find(|p| !self.entries.contains_key(*p))
            .cloned()
    }
}

/// Gives every entry of the copy the original's owner, group, mode, extended attributes and
/// times, and its hardlinks (the clone made each path a file of its own).
fn fix_up(
    before: &Tree,
    src_root: &Dir,
    src_path: &Path,
    copy_root: &Dir,
    copy_path: &Path,
) -> Result<(), ConvertError> {
    // Hardlinks: every path of a source inode after the first becomes a link to the first.
    let mut by_ino: BTreeMap<u64, Vec<&PathBuf>> = BTreeMap::new();
    for (p, m) in &before.entries {
        if m.kind() == FileType::RegularFile && m.nlink > 1 {
            by_ino.entry(m.ino).or_default().push(p);
        }
    }
    for paths in by_ino.values().filter(|v| v.len() > 1) {
        let (first_dir, first_name) = open_parent(copy_root, copy_path, paths[0])?;
        for p in &paths[1..] {
            let (d, n) = open_parent(copy_root, copy_path, p)?;
            let tmp = OsString::from(format!(".cowtree-convert-link.{}", std::process::id()));
            rustix::fs::linkat(&first_dir, &first_name, &d, &tmp, AtFlags::empty())
                .map_err(|e| io("link", &copy_path.join(p))(e.into()))?;
            d.rename(&tmp, &d, &n)
                .map_err(io("link", &copy_path.join(p)))?;
        }
    }
    // Deepest first, so a directory's times are set after everything in it.
    for (rel, m) in before.entries.iter().rev() {
        let (sd, sn, cd, cn) = if rel.as_os_str().is_empty() {
            (
                src_root.try_clone().map_err(io("open", src_path))?,
                None,
                copy_root.try_clone().map_err(io("open", copy_path))?,
                None,
            )
        } else {
            let (sd, sn) = open_parent(src_root, src_path, rel)?;
            let (cd, cn) = open_parent(copy_root, copy_path, rel)?;
            (sd, Some(sn), cd, Some(cn))
        };
        fix_entry(
            m,
            (&sd, sn.as_deref()),
            (&cd, cn.as_deref()),
            &copy_path.join(rel),
        )?;
    }
    Ok(())
}

/// The directory holding `rel` below `root`, opened beneath it, and `rel`'s last name.
fn open_parent(root: &Dir, root_path: &Path, rel: &Path) -> Result<(Dir, OsString), ConvertError> {
    let name = rel
        .file_name()
        .ok_or_else(|| ConvertError::NotADirectory(root_path.join(rel)))?
        .to_os_string();
    let dir = match rel.parent() {
        Some(p) if !p.as_os_str().is_empty() => root.open_dir_deep(p),
        _ => root.try_clone(),
    }
    .map_err(io("open", &root_path.join(rel)))?;
    Ok((dir, name))
}

/// One entry (`name` in its directory; `None`: the directory itself): owner, mode, extended
/// attributes, then times.
fn fix_entry(
    m: &Meta,
    src: (&Dir, Option<&OsStr>),
    copy: (&Dir, Option<&OsStr>),
    shown: &Path,
) -> Result<(), ConvertError> {
    // A handle to look at the entry itself (never a symlink's target).
    let handle = |(d, n): (&Dir, Option<&OsStr>)| -> std::io::Result<std::os::fd::OwnedFd> {
        let flags = cowtree_fs::sys::PATH_ONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        Ok(rustix::fs::openat(
            d,
            n.unwrap_or(OsStr::new(".")),
            flags,
            Mode::empty(),
        )?)
    };
    let s = handle(src).map_err(io("open", shown))?;
    let c = handle(copy).map_err(io("open", shown))?;
    let (cd, cn) = (copy.0, copy.1.unwrap_or(OsStr::new(".")));
    let cst = rustix::fs::fstat(&c).map_err(|e| io("stat", shown)(e.into()))?;
    if (cst.st_uid, cst.st_gid) != (m.uid, m.gid) {
        rustix::fs::chownat(
            cd,
            cn,
            Some(rustix::fs::Uid::from_raw(m.uid)),
            Some(rustix::fs::Gid::from_raw(m.gid)),
            AtFlags::SYMLINK_NOFOLLOW,
        )
        .map_err(|e| match e {
            rustix::io::Errno::PERM => ConvertError::ForeignOwner {
                path: shown.to_path_buf(),
                uid: m.uid,
            },
            e => io("chown", shown)(e.into()),
        })?;
    }
    let cst = rustix::fs::fstat(&c).map_err(|e| io("stat", shown)(e.into()))?;
    if m.kind() != FileType::Symlink && cowtree_fs::sys::stat_mode(&cst) & 0o7777 != m.mode & 0o7777
    {
        // After the chown, which clears set-ID bits. Not a symlink (checked above, in a
        // directory this run made), so following the name is following nothing.
        rustix::fs::chmodat(
            cd,
            cn,
            cowtree_fs::sys::mode(m.mode & 0o7777),
            AtFlags::empty(),
        )
        .map_err(|e| io("chmod", shown)(e.into()))?;
    }
    cowtree_fs::sys::copy_xattrs(s.as_fd(), c.as_fd())
        .map_err(io("copy the extended attributes of", shown))?;
    match copy.1 {
        Some(n) => copy.0.set_times(n, ts(m.atime), ts(m.mtime)),
        None => copy.0.set_own_times(ts(m.atime), ts(m.mtime)),
    }
    .map_err(io("set the times of", shown))
}
