//! The traversal behind every worktree scan, and nothing of what is done per entry.
//!
//! It runs on the one walker of cowtree ([`cowtree_fs::walk`]): each directory is opened
//! beneath its parent, never following a symlink, and its entries are `lstat`ed relative to
//! it, so symlinks are seen as symlinks. A directory whose stat equals its stat cache record
//! (see [`crate::cache`]) is not listed: its entries are taken from the records beneath it,
//! and its subdirectories are opened path-only. Each directory's entries, in name order, go
//! to a [`Visitor`] (one per worker), which decides what each one is worth and which
//! subdirectories to enter, handing each one a context of its own; the first error stops
//! the walk.

use std::borrow::Cow;
use std::convert::Infallible;
use std::io;
use std::ops::Range;
use std::path::{Path, PathBuf};

use cowtree_fs::dir::Dir;
use cowtree_fs::progress::Progress;
use cowtree_fs::walk::{self, DirVisit, Failed, JobVisit, Walk};
use cowtree_fs::workers::{self, Demand};
use cowtree_store::Hash;

use crate::cache::{self, StatCache, StatKey};
use crate::error::{Error, Result};
use crate::os::{FileType, Stat};
use crate::paths::{join, path_of};

/// Filesystems on which creating, removing or renaming an entry always updates the
/// directory's mtime and ctime, so that directory records can be trusted. Network, FUSE and
/// overlay filesystems are left out: their directory times may come from elsewhere.
pub fn keeps_dir_times(fs: &str) -> bool {
    matches!(fs, "xfs" | "btrfs" | "ext4" | "tmpfs" | "f2fs" | "bcachefs")
}

/// Whether directory records are used and made in the tree at `root`: where its filesystem
/// keeps directory times ([`keeps_dir_times`]).
#[cfg(unix)]
pub(crate) fn dir_records_on(root: &Dir) -> bool {
    cowtree_fs::fstype::fs_type(root).is_ok_and(|t| keeps_dir_times(t.name()))
}

/// Whether directory records are used and made in the tree at `root`: never on Windows, where
/// the filesystem's type is not read and every directory is listed (NTFS does update a
/// directory's times on each change of its entries, but that is not relied on untested).
#[cfg(windows)]
pub(crate) fn dir_records_on(_root: &Dir) -> bool {
    false
}

/// What a scan asks of the worker budget. The walk is bound by lstat and getdents, not by the
/// CPU: with more workers than cores, more of them are in flight while some wait (a cold inode
/// cache, a lock), so twice the cores, at least 4, at most 16. Besides the walk's own
/// descriptors, a worker holds a file it reads or puts into the store and its staged copy.
const DEMAND: Demand = Demand {
    per_core: 2,
    min: 4,
    max: 16,
    fds_per_worker: walk::FDS_PER_WORKER + 2,
};

/// What is done with the entries the walk finds, one instance per worker. The state of one
/// directory's visit is its [`Visitor::Dir`], from [`Visitor::enter`] to [`Visitor::leave`].
pub(crate) trait Visitor<'c>: Send {
    /// What the visit of a directory hands the visit of each subdirectory it enters.
    type Ctx: Send;
    /// The state of one directory's visit.
    type Dir;

    /// Starts the visit of directory `at` (listed, not yet visited).
    fn enter(&mut self, at: &DirAt<'_>, ctx: Self::Ctx) -> Self::Dir;

    /// Visits one entry of `at` (in name order). For a subdirectory, `Some` enters it with
    /// that context. An error stops the walk.
    fn entry(
        &mut self,
        at: &mut DirAt<'_>,
        dir: &mut Self::Dir,
        e: Found<'c, '_>,
    ) -> Result<Option<Self::Ctx>>;

    /// Ends the visit of `at` (not called when the walk stopped during it).
    fn leave(&mut self, at: &DirAt<'_>, dir: Self::Dir) -> Result<()>;
}

/// One directory being visited.
pub(crate) struct DirAt<'w> {
    /// Its path relative to the root (empty for the root).
    pub rel: &'w [u8],
    /// Its handle, to read the entries relative to it.
    pub dir: &'w Dir,
    /// How many entries it has (listed, or taken from the stat cache); those gone before
    /// their `lstat` are not visited.
    pub listed: usize,
    /// Its stat for a directory record, when it can have one (see [`crate::cache`]).
    pub key: Option<StatKey>,
    /// Its entries came from the stat cache: the hash of their names, the directory record's.
    pub names_hash: Option<Hash>,
    cache: &'w StatCache,
    /// The range of its records in the stat cache, and the cursor of the in-order lookups.
    crange: Range<usize>,
    ccur: usize,
    /// Where the last subdirectory's records in the stat cache ended: the next one's are
    /// searched from there.
    cnear: usize,
    root_path: &'w Path,
}

impl DirAt<'_> {
    /// The content hash the stat cache proves for entry `e` at stat `key`.
    pub fn trusted(&mut self, e: &Found<'_, '_>, key: &StatKey) -> Option<Hash> {
        match e.rec {
            Some(i) => self.cache.trusted_at(i, key),
            None => {
                self.cache
                    .trusted_child_from(&self.crange, &mut self.ccur, self.rel, &e.name, key)
            }
        }
    }

    /// Where this directory's path ends and its entries' names start in their paths.
    pub fn prefix(&self) -> usize {
        if self.rel.is_empty() {
            0
        } else {
            self.rel.len() + 1
        }
    }

    /// `rel` as a full path, for errors.
    pub fn full(&self, rel: &[u8]) -> PathBuf {
        self.root_path.join(path_of(rel))
    }
}

/// One entry of the directory being visited.
pub(crate) struct Found<'c, 'p> {
    /// Its name.
    pub name: Cow<'c, [u8]>,
    /// Its path relative to the root.
    pub path: &'p [u8],
    /// `Directory`, or the type its `lstat` gave.
    pub ft: FileType,
    /// The `lstat` of anything but a directory.
    pub st: Option<Stat>,
    /// Its stat cache record, when the directory's entries came from the cache.
    rec: Option<usize>,
}

/// One entry of a directory being walked, before its `lstat`: from its listing, or from the
/// stat cache when the directory's record proves the listing unchanged.
struct Ent<'c> {
    name: Cow<'c, [u8]>,
    /// From `d_type` when listed; `Directory` for a subdirectory with a record, `Unknown`
    /// for a file or symlink taken from the cache (its `lstat` tells).
    ft: FileType,
    /// The stat cache record of a file or symlink taken from the cache.
    rec: Option<usize>,
    /// The stat cache directory record of a subdirectory taken from the cache.
    drec: Option<usize>,
}

/// What a directory's visit gets besides its handle.
pub(crate) struct Task<C> {
    /// The range of the directory's records in the stat cache.
    crange: Range<usize>,
    /// Its directory record in the stat cache, when its parent's entries came from there.
    drec: Option<usize>,
    ctx: C,
}

/// What every worker of a walk shares.
struct Common<'a> {
    root_path: &'a Path,
    cache: &'a StatCache,
    /// Directory records are used and made (the root's filesystem keeps directory times
    /// as [`crate::cache`] needs).
    dir_records: bool,
    /// The root's device: directory records only for directories on it.
    root_dev: u64,
    /// (device, inode) of a directory never entered.
    skip: Option<(u64, u64)>,
    /// Counts each file, symlink or other non-directory entry found.
    progress: &'a Progress,
}

impl Common<'_> {
    fn full(&self, rel: &[u8]) -> PathBuf {
        self.root_path.join(path_of(rel))
    }

    /// `lstat` of `name` in `dir` (at `path`); `None` when it is gone.
    ///
    /// Always inlined: it runs once per file, and a build of this code that called it measured
    /// 22-30 ms more CPU per walk of the 80,000-file bench tree, counted mostly as system time
    /// with the same syscalls in the same numbers (`perf stat -r 10`: clean status 106.4 vs
    /// 93.3 ms, snapshot with no change 129.7 vs 113.4 ms). A build of earlier code that
    /// called it was not slower, so the cost depends on the build; its cause was not found.
    #[cfg(unix)]
    #[inline(always)]
    fn lstat(&self, dir: &Dir, name: &[u8], path: &[u8]) -> Result<Option<Stat>> {
        use rustix::fs::{AtFlags, statat};
        use rustix::io::Errno;
        use std::ffi::OsStr;
        use std::os::unix::ffi::OsStrExt;
        match statat(dir, OsStr::from_bytes(name), AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => Ok(Some(st)),
            Err(Errno::NOENT) => Ok(None),
            Err(e) => Err(Error::io_at("stat", self.full(path), e.into())),
        }
    }

    /// `lstat` of `name` in `dir` (at `path`); `None` when it is gone. (Windows: the entry
    /// opened relative to `dir` for its attributes, a reparse point itself.)
    #[cfg(windows)]
    fn lstat(&self, dir: &Dir, name: &[u8], path: &[u8]) -> Result<Option<Stat>> {
        crate::os::name(name)
            .and_then(|n| dir.try_stat(n))
            .map_err(|e| Error::io_at("stat", self.full(path), e))
    }
}

/// A walk of one worktree.
pub(crate) struct Walker<'a> {
    root: Dir,
    common: Common<'a>,
}

impl<'a> Walker<'a> {
    /// A walk of the worktree at `root_path` with its stat cache `cache`.
    pub fn new(root_path: &'a Path, cache: &'a StatCache, progress: &'a Progress) -> Result<Self> {
        Walker::new_at(root_path, root_path, cache, progress)
    }

    /// [`Walker::new`], walking the tree at `open_path` (a read-only snapshot of the
    /// worktree) while naming its entries by `root_path` in errors.
    pub fn new_at(
        open_path: &Path,
        root_path: &'a Path,
        cache: &'a StatCache,
        progress: &'a Progress,
    ) -> Result<Self> {
        let root = Dir::open(open_path).map_err(Error::Io)?;
        let root_dev = cowtree_fs::sys::stat_dev(
            &root
                .stat_self()
                .map_err(|e| Error::io_at("stat", root_path, e))?,
        );
        let dir_records = dir_records_on(&root);
        Ok(Walker {
            root,
            common: Common {
                root_path,
                cache,
                dir_records,
                root_dev,
                skip: None,
                progress,
            },
        })
    }

    /// Leaves out the directory at `path` (by device and inode) if the walk finds it.
    pub fn skipping(mut self, path: &Path) -> Self {
        self.common.skip = crate::os::stat(path)
            .ok()
            .map(|st| (cowtree_fs::sys::stat_dev(&st), crate::os::ino(&st)));
        self
    }

    /// Walks the tree with one visitor per worker made by `make`, the root's visit starting
    /// with `ctx`. Returns the visitors and the number of directories listed (the others'
    /// entries came from their stat cache records).
    pub fn run<V, F>(self, make: F, ctx: V::Ctx) -> Result<(Vec<V>, u64)>
    where
        V: Visitor<'a>,
        F: Fn() -> V + Sync,
    {
        let common = &self.common;
        let root = Task {
            crange: 0..common.cache.len(),
            drec: None,
            ctx,
        };
        let workers =
            Walk::new(workers::budget(0, DEMAND)).run(vec![(&self.root, root)], || Worker {
                common,
                visitor: make(),
                listed: 0,
            })?;
        let listed = workers.iter().map(|w| w.listed).sum();
        Ok((workers.into_iter().map(|w| w.visitor).collect(), listed))
    }
}

impl<'a> Common<'a> {
    /// The directory's own stat, where needed: for its record (taken before it is listed, so
    /// that a change made while it is listed shows in the next stat), and to find the
    /// directory left out. `None` for the directory left out.
    fn own_stat(&self, dir: &Dir, rel: &[u8]) -> Result<Option<Option<Stat>>> {
        let skip_here = self.skip.filter(|_| !rel.is_empty());
        let dst = if self.dir_records || skip_here.is_some() {
            Some(
                dir.stat_self()
                    .map_err(|e| Error::io_at("stat", self.full(rel), e))?,
            )
        } else {
            None
        };
        if let (Some(skip), Some(st)) = (skip_here, &dst)
            && (cowtree_fs::sys::stat_dev(st), crate::os::ino(st)) == skip
        {
            return Ok(None);
        }
        Ok(Some(dst))
    }

    /// A directory's entries as the stat cache holds them (`prefix`: the length of the
    /// directory's path and its slash).
    fn cached_entries(&self, c: cache::Children<'a>, prefix: usize) -> Vec<Ent<'a>> {
        let cache::Children {
            files,
            dirs,
            dir_recs,
            ..
        } = c;
        let mut list = Vec::with_capacity(files.len() + dirs.len());
        list.extend(files.into_iter().map(|i| Ent {
            name: Cow::Borrowed(self.cache.name_at(i, prefix)),
            ft: crate::os::UNKNOWN_TYPE,
            rec: Some(i),
            drec: None,
        }));
        list.extend(dirs.into_iter().zip(dir_recs).map(|(n, j)| Ent {
            name: Cow::Borrowed(n),
            ft: FileType::Directory,
            rec: None,
            drec: Some(j),
        }));
        list
    }
}

/// A directory's entries as listed.
fn listed_entries<'a, C>(
    d: &mut DirVisit<'_, C, Infallible>,
    common: &Common<'_>,
    rel: &[u8],
) -> Result<Vec<Ent<'a>>> {
    Ok(d.entries()
        .map_err(|e| Error::io_at("read directory", common.full(rel), e))?
        .into_iter()
        .map(|e| Ent {
            name: Cow::Owned(e.name.into_encoded_bytes()),
            ft: e.file_type,
            rec: None,
            drec: None,
        })
        .collect())
}

/// One worker of a walk: its visitor, and the directories it listed.
struct Worker<'a, 'w, V> {
    common: &'w Common<'a>,
    visitor: V,
    listed: u64,
}

impl<'a, V: Visitor<'a>> walk::Visitor for Worker<'a, '_, V> {
    type Ctx = Task<V::Ctx>;
    type Job = Infallible;
    type Error = Error;

    fn visit_dir(
        &mut self,
        d: &mut DirVisit<'_, Self::Ctx, Infallible>,
        task: Self::Ctx,
    ) -> Result<()> {
        let common = self.common;
        let rel = d.rel().to_vec();
        let rel = &rel[..];
        let Some(dst) = common.own_stat(d.dir(), rel)? else {
            return Ok(());
        };
        // Directory records only on the root's filesystem (a filesystem mounted beneath may
        // not keep directory times).
        let key = dst
            .filter(|st| common.dir_records && cowtree_fs::sys::stat_dev(st) == common.root_dev)
            .map(|st| StatKey::of(&st));
        let crange = task.crange;
        let prefix = if rel.is_empty() { 0 } else { rel.len() + 1 };
        let cached = key
            .as_ref()
            .and_then(|k| common.cache.children(rel, k, crange.clone(), task.drec));
        // The names' hash when they came from the cache (the same names hash the same).
        let names_hash = cached.as_ref().map(|c| c.hash);
        let mut list: Vec<Ent<'a>> = match cached {
            Some(c) => common.cached_entries(c, prefix),
            None => {
                self.listed += 1;
                listed_entries(d, common, rel)?
            }
        };
        let from_cache = names_hash.is_some();
        // In name order, so that the base and the cache are searched forward (see
        // `cowtree_store::manifest::find_child_from`).
        list.sort_unstable_by(|a, b| a.name.cmp(&b.name));
        let mut at = DirAt {
            rel,
            dir: d.dir(),
            listed: list.len(),
            key,
            names_hash,
            cache: common.cache,
            ccur: crange.start,
            cnear: crange.start,
            crange,
            root_path: common.root_path,
        };
        let mut state = self.visitor.enter(&at, task.ctx);
        // The subdirectories to enter, queued once this visit is done (the walk starts them
        // after it anyway).
        let mut subdirs: Vec<(Vec<u8>, Task<V::Ctx>)> = Vec::new();
        // The path of the entry at hand: `rel/name`.
        let mut path = Vec::with_capacity(prefix + 64);
        path.extend_from_slice(rel);
        if !rel.is_empty() {
            path.push(b'/');
        }
        for ent in list {
            if d.stopped() {
                return Ok(());
            }
            path.truncate(prefix);
            path.extend_from_slice(&ent.name);
            let mut ft = ent.ft;
            let drec = ent.drec;
            let mut st = None;
            if ft != FileType::Directory {
                match common.lstat(at.dir, &ent.name, &path)? {
                    Some(x) => {
                        common.progress.add(1, 0);
                        ft = cowtree_fs::sys::stat_file_type(&x);
                        st = Some(x);
                    }
                    // Gone: not visited.
                    None => continue,
                }
            }
            let found = Found {
                name: ent.name,
                path: &path,
                ft,
                st,
                rec: ent.rec,
            };
            if let Some(ctx) = self.visitor.entry(&mut at, &mut state, found)? {
                let task = Task {
                    crange: common
                        .cache
                        .range_near(at.crange.clone(), &mut at.cnear, &path),
                    drec,
                    ctx,
                };
                subdirs.push((path[prefix..].to_vec(), task));
            }
        }
        self.visitor.leave(&at, state)?;
        for (name, task) in subdirs {
            let name = crate::os::name(&name)
                .map_err(|e| Error::io_at("", common.full(&join(rel, &name)), e))?;
            // The parent's entries came from the stat cache: this directory most likely has
            // not changed either, so it is opened path-only (and listed only if it did change).
            if from_cache {
                d.descend_path_only(name, task);
            } else {
                d.descend(name, task);
            }
        }
        Ok(())
    }

    fn visit_job(&mut self, _: &JobVisit<'_>, job: Infallible) -> Result<()> {
        match job {}
    }

    fn open_failed(&mut self, at: &Failed<'_>, _: Self::Ctx, e: io::Error) -> Result<()> {
        if crate::paths::gone(&e) {
            // Removed or replaced while we walked: what was there is simply not seen.
            Ok(())
        } else {
            Err(Error::io_at("", self.common.full(at.rel), e))
        }
    }
}
