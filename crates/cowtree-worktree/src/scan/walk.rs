//! The traversal behind every worktree scan, and nothing of what is done per entry.
//!
//! One rayon task per directory; each directory is opened relative to its parent's handle (one
//! component, `O_NOFOLLOW|O_DIRECTORY`, the root beneath which nothing is followed), and its
//! entries are `lstat`ed relative to it, so symlinks are seen as symlinks and never followed.
//! A directory whose stat equals its stat cache record (see [`crate::cache`]) is not listed:
//! its entries are taken from the records beneath it. Each directory's entries, in name order,
//! go to a [`Visitor`], which decides what each one is worth and which subdirectories to
//! enter, handing each one a context of its own; the first error stops the walk.

use std::borrow::Cow;
use std::ffi::OsStr;
use std::io;
use std::ops::Range;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use cowtree_fs::dir::Dir;
use cowtree_fs::progress::Progress;
use cowtree_store::Hash;
use rustix::fs::{AtFlags, FileType, Stat, statat};
use rustix::io::Errno;

use crate::cache::{self, StatCache, StatKey};
use crate::error::{Error, Result};
use crate::paths::{path_of, split};

/// Filesystems on which creating, removing or renaming an entry always updates the
/// directory's mtime and ctime, so that directory records can be trusted. Network, FUSE and
/// overlay filesystems are left out: their directory times may come from elsewhere.
pub fn keeps_dir_times(fs: &str) -> bool {
    matches!(fs, "xfs" | "btrfs" | "ext4" | "tmpfs" | "f2fs" | "bcachefs")
}

/// What is done with the entries the walk finds. One visitor serves every worker; the state
/// of one directory's visit is its [`Visitor::Dir`], from [`Visitor::enter`] to
/// [`Visitor::leave`] (on one thread).
pub(crate) trait Visitor<'c>: Sync {
    /// What the visit of a directory hands the visit of each subdirectory it enters.
    type Ctx: Send;
    /// The state of one directory's visit.
    type Dir;

    /// Starts the visit of directory `at` (listed, not yet visited).
    fn enter(&self, at: &DirAt<'_>, ctx: Self::Ctx) -> Self::Dir;

    /// Visits one entry of `at` (in name order). For a subdirectory, `Some` enters it with
    /// that context. An error stops the walk.
    fn entry(
        &self,
        at: &mut DirAt<'_>,
        dir: &mut Self::Dir,
        e: Found<'c, '_>,
    ) -> Result<Option<Self::Ctx>>;

    /// Ends the visit of `at` (not called when the walk stopped during it).
    fn leave(&self, at: &DirAt<'_>, dir: Self::Dir) -> Result<()>;
}

/// One directory being visited.
pub(crate) struct DirAt<'w> {
    /// Its path relative to the root (empty for the root).
    pub rel: &'w [u8],
    /// Its handle, to read the entries relative to it.
    pub dir: &'w Arc<Dir>,
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

    /// `rel` as a full path, for messages.
    pub fn full(&self, rel: &[u8]) -> String {
        self.root_path.join(path_of(rel)).display().to_string()
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
}

/// What a directory task needs besides its path.
struct Task<C> {
    /// The parent directory (none for the root).
    parent: Option<Arc<Dir>>,
    /// The range of the directory's records in the stat cache.
    crange: Range<usize>,
    /// The parent's entries came from the stat cache: this directory most likely has not
    /// changed either, so it is opened as an `O_PATH` handle (listed only if it did change).
    unchanged: bool,
    ctx: C,
}

/// A walk of one worktree.
pub(crate) struct Walker<'a> {
    root: Dir,
    root_path: &'a Path,
    cache: &'a StatCache,
    /// Directory records are used and made (the root's filesystem keeps directory times
    /// as [`crate::cache`] needs).
    dir_records: bool,
    /// The root's device: directory records only for directories on it.
    root_dev: u64,
    /// (device, inode) of a directory never entered.
    skip: Option<(u64, u64)>,
    error: Mutex<Option<Error>>,
    stop: AtomicBool,
    /// Directories listed.
    listed: AtomicU64,
    /// Counts each file, symlink or other non-directory entry found.
    progress: &'a Progress,
}

impl<'a> Walker<'a> {
    /// A walk of the worktree at `root_path` with its stat cache `cache`.
    pub fn new(root_path: &'a Path, cache: &'a StatCache, progress: &'a Progress) -> Result<Self> {
        let root = Dir::open(root_path).map_err(|e| Error::msg(format!("worktree: {e}")))?;
        let root_dev = cowtree_fs::sys::stat_dev(
            &root
                .stat_self()
                .map_err(|e| Error::msg(format!("stat {}: {e}", root_path.display())))?,
        );
        let dir_records =
            cowtree_fs::fstype::fs_type(&root).is_ok_and(|t| keeps_dir_times(t.name()));
        Ok(Walker {
            root,
            root_path,
            cache,
            dir_records,
            root_dev,
            skip: None,
            error: Mutex::new(None),
            stop: AtomicBool::new(false),
            listed: AtomicU64::new(0),
            progress,
        })
    }

    /// Leaves out the directory at `path` (by device and inode) if the walk finds it.
    pub fn skipping(mut self, path: &Path) -> Self {
        self.skip = rustix::fs::stat(path)
            .ok()
            .map(|st| (cowtree_fs::sys::stat_dev(&st), st.st_ino));
        self
    }

    /// Walks the tree with `visitor`, the root's visit starting with `ctx`; returns the
    /// number of directories listed (the others' entries came from their stat cache records).
    pub fn run<V: Visitor<'a>>(self, visitor: &V, ctx: V::Ctx) -> Result<u64> {
        // The walk is bound by lstat and getdents, not by the CPU: with more threads than
        // cores, more of them are in flight while some wait (a cold inode cache, a lock), so
        // the pool is twice the cores (at least 4, at most 16).
        let threads = (cowtree_fs::parallel::cores() * 2).clamp(4, 16);
        let root = Task {
            parent: None,
            crange: 0..self.cache.len(),
            unchanged: false,
            ctx,
        };
        let me = &self;
        match rayon::ThreadPoolBuilder::new().num_threads(threads).build() {
            Ok(pool) => pool.scope(|s| me.dir_task(s, visitor, Vec::new(), root)),
            Err(_) => rayon::scope(|s| me.dir_task(s, visitor, Vec::new(), root)),
        }
        if let Some(e) = self.error.lock().map(|mut g| g.take()).unwrap_or(None) {
            return Err(e);
        }
        Ok(self.listed.load(Ordering::Relaxed))
    }

    fn dir_task<'s, V: Visitor<'a>>(
        &'s self,
        s: &rayon::Scope<'s>,
        visitor: &'s V,
        rel: Vec<u8>,
        task: Task<V::Ctx>,
    ) {
        if self.stop.load(Ordering::Relaxed) {
            return;
        }
        if let Err(e) = self.walk_dir(s, visitor, &rel, task) {
            self.stop.store(true, Ordering::Relaxed);
            if let Ok(mut g) = self.error.lock() {
                g.get_or_insert(e);
            }
        }
    }

    fn full(&self, rel: &[u8]) -> String {
        self.root_path.join(path_of(rel)).display().to_string()
    }

    /// `lstat` of `name` in `dir` (at `path`); `None` when it is gone.
    ///
    /// Always inlined: it runs once per file, and a build of this code that called it measured
    /// 22-30 ms more CPU per walk of the 80,000-file bench tree, counted mostly as system time
    /// with the same syscalls in the same numbers (`perf stat -r 10`: clean status 106.4 vs
    /// 93.3 ms, snapshot with no change 129.7 vs 113.4 ms). A build of earlier code that
    /// called it was not slower, so the cost depends on the build; its cause was not found.
    #[inline(always)]
    fn lstat(&self, dir: &Dir, name: &OsStr, path: &[u8]) -> Result<Option<Stat>> {
        match statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => Ok(Some(st)),
            Err(Errno::NOENT) => Ok(None),
            Err(e) => Err(Error::msg(format!(
                "stat {}: {}",
                self.full(path),
                io::Error::from(e)
            ))),
        }
    }

    fn walk_dir<'s, V: Visitor<'a>>(
        &'s self,
        s: &rayon::Scope<'s>,
        visitor: &'s V,
        rel: &[u8],
        task: Task<V::Ctx>,
    ) -> Result<()> {
        // Each directory is opened relative to its parent's handle (one component,
        // O_NOFOLLOW|O_DIRECTORY), so a symlink swapped in is never followed.
        let dir = match &task.parent {
            None => Ok(self.root.try_clone()?),
            Some(p) if task.unchanged => p.open_dir_path(OsStr::from_bytes(split(rel).1)),
            Some(p) => p.open_dir(OsStr::from_bytes(split(rel).1)),
        };
        let dir = match dir {
            Ok(d) => d,
            // Removed or replaced while we walked: what was there is simply not seen.
            Err(e) if crate::paths::gone(&e) => return Ok(()),
            Err(e) => return Err(Error::msg(format!("{}: {e}", self.full(rel)))),
        };
        // The directory's own stat: for its record (taken before it is listed, so that a
        // change made while it is listed shows in the next stat), and to find the directory
        // left out.
        let skip_here = self.skip.filter(|_| !rel.is_empty());
        let dst = if self.dir_records || skip_here.is_some() {
            Some(
                dir.stat_self()
                    .map_err(|e| Error::msg(format!("stat {}: {e}", self.full(rel))))?,
            )
        } else {
            None
        };
        if let (Some(skip), Some(st)) = (skip_here, &dst)
            && (cowtree_fs::sys::stat_dev(st), st.st_ino) == skip
        {
            return Ok(());
        }
        // Directory records only on the root's filesystem (a filesystem mounted beneath may
        // not keep directory times).
        let key = dst
            .filter(|st| self.dir_records && cowtree_fs::sys::stat_dev(st) == self.root_dev)
            .map(|st| StatKey::of(&st));
        let crange = task.crange;
        let prefix = if rel.is_empty() { 0 } else { rel.len() + 1 };
        let cached = key
            .as_ref()
            .and_then(|k| self.cache.children(rel, k, crange.clone()));
        let mut dir = dir;
        // The names' hash when they came from the cache (the same names hash the same).
        let names_hash = cached.as_ref().map(|c| c.hash);
        let mut list: Vec<Ent<'a>> = match cached {
            Some(cache::Children { files, dirs, .. }) => {
                let mut list = Vec::with_capacity(files.len() + dirs.len());
                list.extend(files.into_iter().map(|i| Ent {
                    name: Cow::Borrowed(self.cache.name_at(i, prefix)),
                    ft: FileType::Unknown,
                    rec: Some(i),
                }));
                list.extend(dirs.into_iter().map(|n| Ent {
                    name: Cow::Borrowed(n),
                    ft: FileType::Directory,
                    rec: None,
                }));
                list
            }
            None => {
                if task.unchanged {
                    // Opened to be looked into only: a handle that can list it.
                    dir = dir
                        .reopen()
                        .map_err(|e| Error::msg(format!("{}: {e}", self.full(rel))))?;
                }
                self.listed.fetch_add(1, Ordering::Relaxed);
                dir.read_entries()
                    .map_err(|e| Error::msg(format!("read directory {}: {e}", self.full(rel))))?
                    .into_iter()
                    .map(|e| Ent {
                        name: Cow::Owned(e.name.into_vec()),
                        ft: e.file_type,
                        rec: None,
                    })
                    .collect()
            }
        };
        let from_cache = names_hash.is_some();
        // In name order, so that the base and the cache are searched forward (see
        // `cowtree_store::manifest::find_child_from`).
        list.sort_unstable_by(|a, b| a.name.cmp(&b.name));
        let dir = Arc::new(dir);
        let mut at = DirAt {
            rel,
            dir: &dir,
            listed: list.len(),
            key,
            names_hash,
            cache: self.cache,
            ccur: crange.start,
            crange,
            root_path: self.root_path,
        };
        let mut state = visitor.enter(&at, task.ctx);
        // The path of the entry at hand: `rel/name`.
        let mut path = Vec::with_capacity(prefix + 64);
        path.extend_from_slice(rel);
        if !rel.is_empty() {
            path.push(b'/');
        }
        for ent in list {
            if self.stop.load(Ordering::Relaxed) {
                return Ok(());
            }
            path.truncate(prefix);
            path.extend_from_slice(&ent.name);
            let mut ft = ent.ft;
            let mut st = None;
            if ft != FileType::Directory {
                match self.lstat(&dir, OsStr::from_bytes(&ent.name), &path)? {
                    Some(x) => {
                        self.progress.add(1, 0);
                        ft = FileType::from_raw_mode(x.st_mode);
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
            if let Some(ctx) = visitor.entry(&mut at, &mut state, found)? {
                let child = Task {
                    parent: Some(Arc::clone(&dir)),
                    crange: self.cache.range_in(at.crange.clone(), &path),
                    unchanged: from_cache,
                    ctx,
                };
                let p = path.clone();
                s.spawn(move |s| self.dir_task(s, visitor, p, child));
            }
        }
        visitor.leave(&at, state)
    }
}
