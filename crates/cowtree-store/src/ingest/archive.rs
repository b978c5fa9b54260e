//! `cowtree snapshot --archive`: besides the tree, what `cp -a` keeps (a version 2 manifest,
//! [`crate::manifest::Archive`]): each entry's mode, owner and group, extended attributes and
//! ACLs, which files are one inode, each directory's metadata, and the special files.
//!
//! The files are recorded as every snapshot records them (the walk of the module above, with
//! special files left out instead of refused); then a second walk of the tree reads each
//! entry's metadata (`lstat`, and the attributes through a handle of the entry itself, never
//! following a symlink: a symlink's are its own) and finds the special files and the directories. A tree that changes
//! between the two walks (an entry gone, of another type, size or executable bit, a group of
//! hardlinks whose names now hold different data) is refused, naming the path: the snapshot
//! is then taken again. The metadata is that of the second walk.
//!
//! The whole manifest is held while it is built (its entries and their metadata), unlike a
//! snapshot without `--archive`, which writes its manifest entry by entry.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use cowtree_fs::dir::Dir;
use cowtree_fs::sys::{EntryFd, open_entry, stat_dev, stat_mode, xattr_get, xattr_list};
use cowtree_link::{Preserve, keeps_attribute};
use rustix::fs::{AtFlags, FileType, Stat, statat};
use rustix::io::Errno;

use crate::error::{Error, Result};
use crate::found::Found;
use crate::hash::Hash;
use crate::manifest::{EntryRef, Extra, ExtraKind, Kind, Manifest, Meta, show};
use crate::store::Store;
use crate::util::{join, path_of};

/// What the second walk found of one path.
struct Seen {
    kind: FileType,
    meta: Meta,
    size: u64,
    /// (device, inode) of a regular file with several links, when links are kept.
    inode: Option<(u64, u64)>,
}

/// Builds and records the version 2 manifest of the tree at `src` (open as `root`) whose
/// files the walk recorded in `found` (their blobs placed; made durable before the manifest
/// by [`Store::save`]),
/// keeping what `preserve` asks. Returns the snapshot id and the manifest.
pub(super) fn record(
    store: &Store,
    root: &Dir,
    src: &Path,
    store_id: (u64, u64),
    found: &Found,
    preserve: Preserve,
) -> Result<(Hash, Manifest)> {
    let mut entries = Vec::with_capacity(usize::try_from(found.entries()).unwrap_or(0));
    found.write(|bytes| {
        EntryRef::decode_one(bytes)
            .map(|e| entries.push(e.to_entry()))
            .map_err(|source| Error::Manifest {
                context: format!("snapshot of {}", src.display()),
                source,
            })
    })?;
    let mut seen = HashMap::new();
    let mut extras = Vec::new();
    walk(root, src, store_id, preserve, &mut seen, &mut extras)?;
    let changed = |path: &[u8], what: &str| {
        Error::msg(format!(
            "snapshot of {}: {} changed while it was read ({what}); take the snapshot again",
            src.display(),
            show(path)
        ))
    };
    let mut groups: HashMap<(u64, u64), u64> = HashMap::new();
    let mut with_meta = Vec::with_capacity(entries.len());
    for e in entries {
        let Some(s) = seen.remove(&e.path) else {
            return Err(changed(&e.path, "it is gone"));
        };
        let same = match e.kind {
            Kind::File | Kind::Executable => {
                s.kind == FileType::RegularFile
                    && s.size == e.size()
                    && (s.meta.mode & 0o111 != 0) == (e.kind == Kind::Executable)
            }
            Kind::Symlink => s.kind == FileType::Symlink,
            Kind::Dir => s.kind == FileType::Directory,
        };
        if !same {
            return Err(changed(&e.path, "its type, size or mode differ"));
        }
        let next = groups.len() as u64;
        let group = s.inode.map(|i| *groups.entry(i).or_insert(next));
        with_meta.push((e, s.meta, group));
    }
    // The directories that are not entries (empty directories are) are records; anything
    // else the first walk did not see is new.
    for (path, s) in seen {
        if s.kind != FileType::Directory {
            return Err(changed(&path, "it is new"));
        }
        extras.push(Extra {
            path,
            kind: ExtraKind::Dir,
            meta: s.meta,
        });
    }
    let root_st = root.stat_self().map_err(|e| Error::io_at("stat", src, e))?;
    // A directory with nothing recorded beneath it (it holds only the store, or only such
    // directories) is not in the tree the first walk recorded: no record of it either.
    fn dirs_above(p: &[u8]) -> impl Iterator<Item = &[u8]> {
        p.iter()
            .enumerate()
            .filter(|&(_, &b)| b == b'/')
            .map(move |(i, _)| &p[..i])
    }
    let specials: Vec<Vec<u8>> = extras
        .iter()
        .filter(|x| x.kind != ExtraKind::Dir)
        .map(|x| x.path.clone())
        .collect();
    let holding: std::collections::HashSet<&[u8]> = with_meta
        .iter()
        .map(|(e, _, _)| e.path.as_slice())
        .chain(specials.iter().map(Vec::as_slice))
        .flat_map(dirs_above)
        .collect();
    extras.retain(|x| x.kind != ExtraKind::Dir || holding.contains(x.path.as_slice()));
    // (A worktree's marker is not read: see `meta_read`.)
    let root_meta = meta_of(root.as_fd(), &root_st, preserve, false)
        .map_err(|e| Error::io_at("read the attributes of", src, e))?;
    extras.push(Extra {
        path: Vec::new(),
        kind: ExtraKind::Dir,
        meta: root_meta,
    });
    let manifest =
        Manifest::with_archive(preserve, with_meta, extras).map_err(|source| Error::Manifest {
            context: format!(
                "snapshot of {} (if the tree changed while it was read, take the snapshot again)",
                src.display()
            ),
            source,
        })?;
    let id = store.save(&manifest)?;
    Ok((id, manifest))
}

/// The second walk: every entry beneath `root` but the store, by path, with its metadata;
/// special files (where kept) into `extras`.
fn walk(
    root: &Dir,
    src: &Path,
    store_id: (u64, u64),
    preserve: Preserve,
    seen: &mut HashMap<Vec<u8>, Seen>,
    extras: &mut Vec<Extra>,
) -> Result<()> {
    let full = |rel: &[u8]| src.join(path_of(rel));
    let mut stack = vec![(
        root.try_clone().map_err(|e| Error::io_at("open", src, e))?,
        Vec::new(),
    )];
    while let Some((dir, rel)) = stack.pop() {
        let list = dir
            .entries()
            .map_err(|e| Error::io_at("read directory", full(&rel), e))?;
        for ent in list {
            let path = join(&rel, ent.name.as_bytes());
            let st = match statat(&dir, &ent.name, AtFlags::SYMLINK_NOFOLLOW) {
                Ok(st) => st,
                Err(Errno::NOENT) => continue,
                Err(e) => return Err(Error::io_at("stat", full(&path), e.into())),
            };
            let kind = FileType::from_raw_mode(st.st_mode);
            if kind == FileType::Directory && (stat_dev(&st), st.st_ino) == store_id {
                continue;
            }
            let meta = entry_meta(&dir, &ent.name, &st, preserve, kind)
                .map_err(|e| Error::io_at("read the attributes of", full(&path), e))?;
            let special = match kind {
                FileType::Fifo => Some(ExtraKind::Fifo),
                FileType::Socket => Some(ExtraKind::Socket),
                FileType::CharacterDevice => Some(ExtraKind::CharDevice(st.st_rdev as u64)),
                FileType::BlockDevice => Some(ExtraKind::BlockDevice(st.st_rdev as u64)),
                _ => None,
            };
            if let Some(kind) = special {
                // (Left out by the first walk only where special files are kept.)
                extras.push(Extra { path, kind, meta });
                continue;
            }
            if kind == FileType::Directory {
                let sub = dir
                    .open_dir(&ent.name)
                    .map_err(|e| Error::io_at("open", full(&path), e))?;
                stack.push((sub, path.clone()));
            }
            let inode = (preserve.links && kind == FileType::RegularFile && st.st_nlink > 1)
                .then(|| (stat_dev(&st), st.st_ino));
            seen.insert(
                path,
                Seen {
                    kind,
                    meta,
                    size: st.st_size as u64,
                    inode,
                },
            );
        }
    }
    Ok(())
}

/// The metadata of the entry `name` of `dir`, whose `lstat` is `st`.
fn entry_meta(
    dir: &Dir,
    name: &OsStr,
    st: &Stat,
    preserve: Preserve,
    kind: FileType,
) -> io::Result<Meta> {
    let symlink = kind == FileType::Symlink;
    if !(preserve.xattr || preserve.acl) {
        // No attributes to read: the directory's handle is not read.
        return meta_read(dir.as_fd(), st, preserve, symlink, false);
    }
    // A handle of the entry itself (`O_PATH`, never following a symlink): a symlink's
    // attributes are its own, as `clone --archive` keeps them.
    let fd = open_entry(dir.as_fd(), name)?;
    meta_of(fd.as_fd(), st, preserve, symlink)
}

/// What a version 2 manifest records of the entry `fd` (a handle of the entry itself) whose
/// `lstat` is `st`, under `preserve`: the mode (none for a symlink), owner and group, and
/// the attributes `preserve` keeps (read only when it keeps some; a symlink's own).
fn meta_of(fd: BorrowedFd<'_>, st: &Stat, preserve: Preserve, symlink: bool) -> io::Result<Meta> {
    meta_read(fd, st, preserve, symlink, true)
}

fn meta_read(
    fd: BorrowedFd<'_>,
    st: &Stat,
    preserve: Preserve,
    symlink: bool,
    fd_is_entry: bool,
) -> io::Result<Meta> {
    let mut mode = if symlink { 0 } else { stat_mode(st) & 0o7777 };
    let (mut uid, mut gid) = (0, 0);
    if preserve.ownership {
        (uid, gid) = (st.st_uid, st.st_gid);
    } else {
        mode &= !0o6000;
    }
    let mut xattrs = Vec::new();
    if (preserve.xattr || preserve.acl) && fd_is_entry {
        for name in xattr_list(EntryFd::Path(fd))? {
            // A worktree's marker (its root's, or a nested worktree's) names a store of this
            // machine: a checkout sets its own, and a manifest holding one is refused.
            if !keeps_attribute(preserve, &name)
                || name.as_slice() == crate::discover::MARKER_XATTR.as_bytes()
            {
                continue;
            }
            if let Some(value) = xattr_get(EntryFd::Path(fd), &name)? {
                xattrs.push((name, value));
            }
        }
    }
    Ok(Meta {
        mode,
        uid,
        gid,
        xattrs,
    })
}
