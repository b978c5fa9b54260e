//! What a checkout of a `cowtree snapshot --archive` gives the tree once it is made, before it
//! is placed ([`restore`]): of what the manifest's archive recorded
//! ([`crate::manifest::Archive`]), what the caller asked for
//! ([`super::CheckoutOptions::preserve`]: `checkout --archive` or `--preserve=LIST`), in
//! `cp -a`'s order. Nothing unless asked: a snapshot from elsewhere (a remote) makes no device
//! node, set-user-ID file or file of another owner by being checked out as root. The tree was
//! made as for any snapshot (files cloned from their blobs, 0644 or 0755), per file or as a
//! snapshot of the store's tree subvolume; then, with anything asked for:
//!
//! 1. (`special`) the special files are made (`mknodat`; a device node needs root: counted as not kept
//!    otherwise);
//! 2. (`links`) each later name of a group of hardlinks is replaced by a link to the group's first
//!    name (a link to a temporary name, renamed over the file the checkout made; a refused
//!    link leaves that file, counted as not kept, with the group's metadata);
//! 3. every entry and special file is given its owner and group (`ownership`), then its
//!    mode (set-ID bits only where owner and group were kept), then its attributes and ACLs
//!    (`xattr`, `acl`) ([`cowtree_link::keep_recorded`], the calls
//!    `clone --archive` makes);
//! 4. then each directory the same way, deepest first, the root last (so that a directory's
//!    mode or default ACL is set once everything in it is made).
//!
//! What the caller may not do (not root) is counted in [`NotKept`] and warned about, one
//! line per kind, as `clone` does; it is not an error.
//!
//! On Windows none of it is done: owners and groups are SIDs there, modes and extended
//! attributes do not exist, and special files neither. A checkout that asks for any of it
//! is refused in one line ([`ARCHIVE_UNAVAILABLE`]) before anything is made (`plan.rs`); one
//! that asks for nothing checks out a version 2 snapshot's tree as any other and reports
//! what the snapshot recorded.

#[cfg(unix)]
use std::ffi::OsStr;
#[cfg(unix)]
use std::os::fd::AsFd;
#[cfg(unix)]
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use cowtree_fs::dir::Dir;
#[cfg(unix)]
use cowtree_fs::hardlink::{HardlinkOutcome, hardlink_at};
#[cfg(unix)]
use cowtree_fs::sys::{EntryFd, make_node, open_entry};
#[cfg(unix)]
use cowtree_link::{ModeStep, keep_recorded};
use cowtree_link::{NotKept, Preserve};
#[cfg(unix)]
use rustix::fs::FileType;
#[cfg(unix)]
use rustix::io::Errno;

use crate::error::{Error, Result};
use crate::hash::Hash;
use crate::manifest::ExtraKind;
#[cfg(unix)]
use crate::manifest::{Archive, Kind, Link, Manifest, Meta};
use crate::store::Store;

/// Why a checkout that asks to restore a `snapshot --archive`'s records is refused on
/// Windows, in one line.
#[cfg(windows)]
pub(super) const ARCHIVE_UNAVAILABLE: &str = "checkout --archive and --preserve (owners, \
     groups, modes, extended attributes and ACLs, hardlinks, special files) are not available \
     on Windows";

/// What [`restore`] gave the tree of a version 2 snapshot.
pub(super) struct Restored {
    /// What the snapshot records beside its entries.
    pub recorded: Preserve,
    /// What the tree was given: asked and recorded.
    pub restored: Preserve,
    /// Special files recorded and not made: `special` was not asked for.
    pub special_not_made: u64,
    /// What was given and could not be kept.
    pub not_kept: NotKept,
}

/// Gives the tree at `root` (`root_path` for messages), made from snapshot `id`, what
/// `asked` asks of what the snapshot's archive recorded; `None` for a snapshot without one
/// (version 1). With nothing both asked and recorded the tree is left as it was made (as
/// for a version 1 snapshot). Otherwise each entry and directory also gets its recorded
/// permission bits (as `cp` keeps the mode whatever it is asked to preserve; set-ID bits
/// only where its owner and group were kept, and so only with `ownership`).
pub(super) fn restore(
    store: &Store,
    id: &Hash,
    root: &Dir,
    root_path: &Path,
    asked: Preserve,
) -> Result<Option<Restored>> {
    if !store.has_archive(id)? {
        return Ok(None);
    }
    let m = store.load(id)?;
    let Some(a) = m.archive() else {
        return Ok(None);
    };
    let preserve = asked.and(a.preserve);
    let special_not_made = if preserve.special {
        0
    } else {
        a.extras.iter().filter(|x| x.kind != ExtraKind::Dir).count() as u64
    };
    let not_kept = give(root, root_path, preserve, &m, a)?;
    Ok(Some(Restored {
        recorded: a.preserve,
        restored: preserve,
        special_not_made,
        not_kept,
    }))
}

/// Gives the tree at `root` what `preserve` asks of the archive `a` of manifest `m`
/// (nothing when it asks for nothing); what could not be kept.
#[cfg(unix)]
fn give(
    root: &Dir,
    root_path: &Path,
    preserve: Preserve,
    m: &Manifest,
    a: &Archive,
) -> Result<NotKept> {
    let mut r = Restore {
        root,
        root_path,
        preserve,
        not_kept: NotKept::default(),
        parent: None,
    };
    if !preserve.is_none() {
        if preserve.special {
            r.specials(a)?;
        }
        if preserve.links {
            r.links(m, a)?;
        }
        r.entries(m, a)?;
        r.dirs(a)?;
    }
    Ok(r.not_kept)
}

/// On Windows nothing is given: asking for anything is refused (before the tree was made,
/// by the plan; this is the same refusal, should any other way reach here).
#[cfg(windows)]
fn give(
    _root: &Dir,
    _root_path: &Path,
    preserve: Preserve,
    _m: &crate::manifest::Manifest,
    _a: &crate::manifest::Archive,
) -> Result<NotKept> {
    if preserve.is_none() {
        Ok(NotKept::default())
    } else {
        Err(Error::msg(ARCHIVE_UNAVAILABLE))
    }
}

#[cfg(unix)]
struct Restore<'a> {
    root: &'a Dir,
    root_path: &'a Path,
    preserve: Preserve,
    not_kept: NotKept,
    /// The directory last opened, by its path (entries come in path order: those of one
    /// directory mostly one after another).
    parent: Option<(Vec<u8>, Dir)>,
}

/// The directory part and the name of a manifest path.
#[cfg(unix)]
fn split(path: &[u8]) -> (&[u8], &OsStr) {
    match path.iter().rposition(|&b| b == b'/') {
        Some(i) => (&path[..i], OsStr::from_bytes(&path[i + 1..])),
        None => (&[], OsStr::from_bytes(path)),
    }
}

#[cfg(unix)]
impl Restore<'_> {
    fn full(&self, path: &[u8]) -> std::path::PathBuf {
        self.root_path.join(OsStr::from_bytes(path))
    }

    /// The directory `dir` of the tree (the root for an empty path), opened beneath the
    /// root, never through a symlink.
    fn dir(&mut self, dir: &[u8]) -> Result<&Dir> {
        if dir.is_empty() {
            return Ok(self.root);
        }
        if self.parent.as_ref().is_none_or(|(p, _)| p != dir) {
            let d = (self.root)
                .open_dir_deep(Path::new(OsStr::from_bytes(dir)))
                .map_err(|e| Error::io_at("open", self.full(dir), e))?;
            self.parent = Some((dir.to_vec(), d));
        }
        match &self.parent {
            Some((_, d)) => Ok(d),
            None => Err(Error::internal("no directory opened")),
        }
    }

    fn specials(&mut self, a: &Archive) -> Result<()> {
        for x in &a.extras {
            let (ft, rdev) = match x.kind {
                ExtraKind::Dir => continue,
                ExtraKind::Fifo => (FileType::Fifo, 0),
                ExtraKind::Socket => (FileType::Socket, 0),
                ExtraKind::CharDevice(r) => (FileType::CharacterDevice, r),
                ExtraKind::BlockDevice(r) => (FileType::BlockDevice, r),
            };
            // (Its directory is in the tree: the manifest's check says so.)
            let (dir, name) = split(&x.path);
            let full = self.full(&x.path);
            let d = self.dir(dir)?;
            // The umask applies here: the exact bits are given with the rest (below).
            match make_node(d.as_fd(), name, ft, x.meta.mode & 0o777, rdev) {
                Ok(()) => {}
                Err(Errno::PERM)
                    if matches!(ft, FileType::CharacterDevice | FileType::BlockDevice) =>
                {
                    self.not_kept.special += 1;
                    continue;
                }
                Err(e) => return Err(Error::io_at("make special file", full, e.into())),
            }
            self.keep(&x.path, &x.meta, ModeStep::Always)?;
        }
        Ok(())
    }

    /// Replaces each later name of a group of hardlinks by a link to its first name.
    fn links(&mut self, m: &Manifest, a: &Archive) -> Result<()> {
        for (i, em) in a.entries.iter().enumerate() {
            let Link::Of(first) = em.link else { continue };
            let (Some(e), Some(f)) = (m.entries().get(i), m.entries().get(first as usize)) else {
                continue;
            };
            let (fdir, fname) = split(&f.path);
            let fd = self
                .dir(fdir)?
                .try_clone()
                .map_err(|e| Error::io_at("open", self.full(fdir), e))?;
            let (dir, name) = split(&e.path);
            let full = self.full(&e.path);
            let d = self.dir(dir)?;
            // A temporary name beside it, of a fixed length (the entry's own name may be as
            // long as a name can be); an entry of the same name in the tree would make the
            // link fail, and the checkout with it, naming the path: never overwritten.
            let tmp = format!(".cowtree-link-{}", std::process::id());
            let tmp = OsStr::new(&tmp);
            match hardlink_at(&fd, fname, d, tmp).map_err(|e| Error::io_at("link", &full, e))? {
                HardlinkOutcome::Linked => d
                    .rename(tmp, d, name)
                    .map_err(|e| Error::io_at("rename a hardlink over", &full, e))?,
                HardlinkOutcome::Refused(_) | HardlinkOutcome::SourceVanished => {
                    // A file of its own: it gets the group's metadata.
                    self.not_kept.links += 1;
                    if let Some(meta) = a.entries.get(first as usize).and_then(|g| g.meta.as_ref())
                    {
                        self.keep(&e.path, meta, ModeStep::Always)?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Each entry's record; a later name of a hardlink group not linked (`links` not
    /// asked for) is a file of its own, given the group's.
    fn entries(&mut self, m: &Manifest, a: &Archive) -> Result<()> {
        for (e, em) in m.entries().iter().zip(&a.entries) {
            let meta = match (&em.meta, em.link) {
                (Some(meta), _) => meta,
                (None, Link::Of(first)) if !self.preserve.links => {
                    match a.entries.get(first as usize).and_then(|g| g.meta.as_ref()) {
                        Some(meta) => meta,
                        None => continue,
                    }
                }
                (None, _) => continue,
            };
            let step = match e.kind {
                Kind::Symlink => ModeStep::Leave,
                _ => ModeStep::Always,
            };
            self.keep(&e.path, meta, step)?;
        }
        Ok(())
    }

    /// The directories' records, deepest first, the root last.
    fn dirs(&mut self, a: &Archive) -> Result<()> {
        self.parent = None;
        for x in a.extras.iter().rev() {
            if x.kind != ExtraKind::Dir {
                continue;
            }
            let d;
            let dir = if x.path.is_empty() {
                self.root
            } else {
                d = (self.root)
                    .open_dir_deep(Path::new(OsStr::from_bytes(&x.path)))
                    .map_err(|e| Error::io_at("open", self.full(&x.path), e))?;
                &d
            };
            keep_recorded(
                self.preserve,
                self.preserve.ownership.then_some((x.meta.uid, x.meta.gid)),
                x.meta.mode,
                &x.meta.xattrs,
                EntryFd::Open(dir.as_fd()),
                ModeStep::Always,
                &mut self.not_kept,
            )
            .map_err(|e| {
                Error::io_at(
                    "give its recorded owner, mode and attributes to",
                    self.full(&x.path),
                    e,
                )
            })?;
        }
        Ok(())
    }

    /// Gives the entry at `path` its recorded `meta`.
    fn keep(&mut self, path: &[u8], meta: &Meta, step: ModeStep) -> Result<()> {
        let (dir, name) = split(path);
        let full = self.full(path);
        let preserve = self.preserve;
        let d = self.dir(dir)?;
        let fd = open_entry(d.as_fd(), name).map_err(|e| Error::io_at("open", &full, e.into()))?;
        let mut not_kept = NotKept::default();
        keep_recorded(
            preserve,
            preserve.ownership.then_some((meta.uid, meta.gid)),
            meta.mode,
            &meta.xattrs,
            EntryFd::Path(fd.as_fd()),
            step,
            &mut not_kept,
        )
        .map_err(|e| Error::io_at("give its recorded owner, mode and attributes to", &full, e))?;
        self.not_kept.add(&not_kept);
        Ok(())
    }
}
