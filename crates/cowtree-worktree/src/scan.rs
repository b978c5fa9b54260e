//! The worktree walk behind status, incremental snapshot and registration.
//!
//! One rayon task per directory (as in the store's ingest); each directory is opened beneath
//! the root with `openat2(RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS)` and its entries are `lstat`ed
//! relative to it, so symlinks are seen as symlinks and never followed. A file whose stat
//! equals its stat cache record (and is not racy, see [`crate::cache`]) takes the cached
//! content hash; only the others are read.

use std::ffi::OsStr;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use cowtree_fs::dir::Dir;
use cowtree_store::{Entry, Hash, Kind, Store};
use rustix::fs::{AtFlags, FileType, statat};
use rustix::io::Errno;

use crate::base::{Base, BaseEntry};
use crate::blob;
use crate::cache::{Rec, StatCache, StatKey};
use crate::error::{Error, Result};
use crate::paths::{join, path_of, show, split};

/// What a change is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ChangeKind {
    /// Content (or symlink target) differs from the base.
    Modified,
    /// Not in the base (untracked). A directory holding nothing of the base is one entry.
    Added,
    /// In the base, absent here.
    Deleted,
    /// File, directory and symlink swapped for one another.
    TypeChanged,
    /// The executable bit differs from the base.
    ModeChanged,
}

impl ChangeKind {
    /// `modified`, `added`, `deleted`, `type_changed`, `mode_changed`.
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Modified => "modified",
            ChangeKind::Added => "added",
            ChangeKind::Deleted => "deleted",
            ChangeKind::TypeChanged => "type_changed",
            ChangeKind::ModeChanged => "mode_changed",
        }
    }
}

/// One change against the base.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Change {
    /// Path relative to the worktree root (an untracked directory: without a trailing `/`).
    pub path: Vec<u8>,
    /// What changed.
    pub kind: ChangeKind,
    /// For `Added`: the path is a directory reported as one entry.
    pub is_dir: bool,
}

/// What the walk does with what it finds.
pub enum Mode<'a> {
    /// Compare with the base; hash files whose stat changed.
    Status,
    /// Just written from the base: take the base's hashes for files of the right size and
    /// kind, without reading them.
    Adopt,
    /// Also build a manifest of the tree, putting files not yet in the store into it.
    Snapshot {
        /// The store.
        store: &'a Store,
        /// A staging directory in it.
        staging: &'a Dir,
    },
}

/// What a walk found.
#[derive(Debug, Default)]
pub struct Scan {
    /// Changes against the base, sorted by path (empty in snapshot mode).
    pub changes: Vec<Change>,
    /// Stat cache records for every file and symlink whose content hash is known.
    pub recs: Vec<Rec>,
    /// Files and symlinks read because their stat did not prove them unchanged.
    pub hashed: u64,
    /// Snapshot mode: the tree's manifest entries.
    pub entries: Vec<Entry>,
    /// Snapshot mode: blobs that were not in the store.
    pub new_blobs: u64,
    /// Snapshot mode: their bytes.
    pub new_bytes: u64,
    /// Clock before the walk started: the time of a cache built from `recs`.
    pub started_ns: i64,
}

impl Scan {
    /// True when there is any change.
    pub fn dirty(&self) -> bool {
        !self.changes.is_empty()
    }
}

struct Walk<'a> {
    root: Dir,
    root_path: &'a Path,
    base: &'a Base,
    cache: &'a StatCache,
    mode: Mode<'a>,
    seen: Vec<AtomicBool>,
    out: Mutex<Scan>,
    error: Mutex<Option<Error>>,
    stop: AtomicBool,
    counter: AtomicU64,
    /// Snapshot mode: (device, inode) of the store's root, left out if found in the tree.
    skip_dir: Option<(u64, u64)>,
}

/// Index of the base entry at `path`.
pub fn find(m: &cowtree_store::Manifest, path: &[u8]) -> Option<usize> {
    m.entries()
        .binary_search_by(|e| e.path.as_slice().cmp(path))
        .ok()
}

/// True when the base has an entry strictly beneath directory `path`.
pub fn has_beneath(m: &cowtree_store::Manifest, path: &[u8]) -> bool {
    let mut prefix = path.to_vec();
    prefix.push(b'/');
    let i = m
        .entries()
        .partition_point(|e| e.path.as_slice() < prefix.as_slice());
    m.entries()
        .get(i)
        .is_some_and(|e| e.path.starts_with(&prefix))
}

/// Walks the worktree at `root_path` against `base`.
pub fn scan(root_path: &Path, base: &Base, cache: &StatCache, mode: Mode<'_>) -> Result<Scan> {
    let started_ns = crate::cache::now_ns();
    let root = Dir::open(root_path).map_err(|e| Error::msg(format!("worktree: {e}")))?;
    let skip_dir = match &mode {
        Mode::Snapshot { store, .. } => rustix::fs::stat(store.root())
            .ok()
            .map(|st| (st.st_dev, st.st_ino)),
        _ => None,
    };
    let walk = Walk {
        root,
        root_path,
        base,
        cache,
        mode,
        seen: (0..base.len()).map(|_| AtomicBool::new(false)).collect(),
        out: Mutex::new(Scan::default()),
        error: Mutex::new(None),
        stop: AtomicBool::new(false),
        counter: AtomicU64::new(0),
        skip_dir,
    };
    // The walk is bound by lstat and getdents, not by the CPU: with more threads than cores,
    // more of them are in flight while some wait (a cold inode cache, a lock), so the pool is
    // twice the cores (at least 4, at most 16).
    let threads = std::thread::available_parallelism()
        .map(|n| n.get() * 2)
        .unwrap_or(4)
        .clamp(4, 16);
    match rayon::ThreadPoolBuilder::new().num_threads(threads).build() {
        Ok(pool) => pool.scope(|s| walk.dir_task(s, None, Vec::new())),
        Err(_) => rayon::scope(|s| walk.dir_task(s, None, Vec::new())),
    }
    if let Some(e) = walk.error.lock().map(|mut g| g.take()).unwrap_or(None) {
        return Err(e);
    }
    let mut out = walk
        .out
        .into_inner()
        .map_err(|_| Error::msg("internal error: a worker panicked"))?;
    out.started_ns = started_ns;
    if !matches!(walk.mode, Mode::Snapshot { .. }) {
        for (i, seen) in walk.seen.iter().enumerate() {
            if !seen.load(Ordering::Relaxed) {
                out.changes.push(Change {
                    path: base.get(i).path.to_vec(),
                    kind: ChangeKind::Deleted,
                    is_dir: false,
                });
            }
        }
        out.changes.sort();
    }
    Ok(out)
}

impl<'a> Walk<'a> {
    fn fail(&self, e: Error) {
        self.stop.store(true, Ordering::Relaxed);
        if let Ok(mut g) = self.error.lock() {
            g.get_or_insert(e);
        }
    }

    fn full(&self, rel: &[u8]) -> String {
        self.root_path.join(path_of(rel)).display().to_string()
    }

    fn dir_task<'s>(&'s self, s: &rayon::Scope<'s>, parent: Option<Arc<Dir>>, rel: Vec<u8>) {
        if self.stop.load(Ordering::Relaxed) {
            return;
        }
        if let Err(e) = self.walk_dir(s, parent, &rel) {
            self.fail(e);
        }
    }

    /// Whether `recs` must hold every known file (a cache built from scratch) or only what
    /// was learnt now (status merges it into the old cache).
    fn keep_all(&self) -> bool {
        !matches!(self.mode, Mode::Status)
    }

    fn snapshot(&self) -> bool {
        matches!(self.mode, Mode::Snapshot { .. })
    }

    fn walk_dir<'s>(
        &'s self,
        s: &rayon::Scope<'s>,
        parent: Option<Arc<Dir>>,
        rel: &[u8],
    ) -> Result<()> {
        // Each directory is opened relative to its parent's handle (one component,
        // O_NOFOLLOW|O_DIRECTORY), so a symlink swapped in is never followed.
        let dir = match parent {
            None => self.root.try_clone()?,
            Some(p) => match p.open_dir(OsStr::from_bytes(split(rel).1)) {
                Ok(d) => d,
                // Removed or replaced while we walked: what was there is simply not seen.
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::NotFound
                            | io::ErrorKind::NotADirectory
                            | io::ErrorKind::InvalidInput
                    ) =>
                {
                    return Ok(());
                }
                Err(e) => return Err(Error::msg(format!("{}: {e}", self.full(rel)))),
            },
        };
        if let (Some(skip), false) = (self.skip_dir, rel.is_empty()) {
            let st = dir
                .stat_self()
                .map_err(|e| Error::msg(format!("stat {}: {e}", self.full(rel))))?;
            if (st.st_dev, st.st_ino) == skip {
                // The store itself, inside the tree being recorded: never recorded into itself.
                return Ok(());
            }
        }
        let dir = Arc::new(dir);
        let list = dir
            .entries()
            .map_err(|e| Error::msg(format!("read directory {}: {e}", self.full(rel))))?;
        let mut scan = Scan::default();
        let brange = self.base.range(rel);
        let crange = self.cache.range(rel);
        if list.is_empty() && !rel.is_empty() && self.snapshot() {
            scan.entries.push(Entry::dir(rel.to_vec()));
        }
        for ent in list {
            if self.stop.load(Ordering::Relaxed) {
                return Ok(());
            }
            let path = join(rel, ent.name.as_bytes());
            let idx = self.base.find_child(&brange, rel, ent.name.as_bytes());
            let base = idx.map(|i| self.base.get(i));
            let mut ft = ent.file_type;
            let mut st = None;
            if ft != FileType::Directory {
                match statat(&*dir, &ent.name, AtFlags::SYMLINK_NOFOLLOW) {
                    Ok(x) => {
                        ft = FileType::from_raw_mode(x.st_mode);
                        st = Some(x);
                    }
                    Err(Errno::NOENT) => continue,
                    Err(e) => {
                        return Err(Error::msg(format!(
                            "stat {}: {}",
                            self.full(&path),
                            io::Error::from(e)
                        )));
                    }
                }
            }
            if let Some(i) = idx {
                self.seen[i].store(true, Ordering::Relaxed);
            }
            let change = |kind| Change {
                path: path.clone(),
                kind,
                is_dir: false,
            };
            match (ft, st) {
                (FileType::Directory, _) => {
                    if self.snapshot() {
                        {
                            let parent = Arc::clone(&dir);
                            s.spawn(move |s| self.dir_task(s, Some(parent), path))
                        };
                        continue;
                    }
                    match base {
                        Some(e) if e.kind != Kind::Dir => {
                            scan.changes.push(change(ChangeKind::TypeChanged));
                        }
                        Some(_) => {
                            let parent = Arc::clone(&dir);
                            s.spawn(move |s| self.dir_task(s, Some(parent), path))
                        }
                        None if self.base.has_beneath(&path) => {
                            let parent = Arc::clone(&dir);
                            s.spawn(move |s| self.dir_task(s, Some(parent), path))
                        }
                        None => {
                            if !matches!(self.mode, Mode::Adopt) {
                                scan.changes.push(Change {
                                    path,
                                    kind: ChangeKind::Added,
                                    is_dir: true,
                                });
                            }
                        }
                    }
                }
                (FileType::RegularFile, Some(st)) => {
                    let key = StatKey::of(&st);
                    let exec = st.st_mode & 0o111 != 0;
                    if let Mode::Snapshot { store, staging } = self.mode {
                        let known =
                            self.cache
                                .trusted_child(&crange, rel, ent.name.as_bytes(), &key);
                        if let Some((size, hash)) = self
                            .file_blob(store, staging, &dir, &ent.name, &path, &key, base, known)?
                        {
                            scan.entries
                                .push(Entry::blob(path.clone(), exec, size, hash));
                            scan.recs.push(Rec { path, key, hash });
                        }
                        continue;
                    }
                    let Some(e) = base else {
                        if !matches!(self.mode, Mode::Adopt) {
                            scan.changes.push(change(ChangeKind::Added));
                        }
                        continue;
                    };
                    let (size, want) = match (e.kind, e.hash) {
                        (Kind::File | Kind::Executable, Some(h)) => (e.size, h),
                        _ => {
                            scan.changes.push(change(ChangeKind::TypeChanged));
                            continue;
                        }
                    };
                    if exec != (e.kind == Kind::Executable) {
                        scan.changes.push(change(ChangeKind::ModeChanged));
                    }
                    // (hash, learnt now rather than taken from the cache)
                    let have =
                        match self
                            .cache
                            .trusted_child(&crange, rel, ent.name.as_bytes(), &key)
                        {
                            Some(h) => Some((h, false)),
                            None if matches!(self.mode, Mode::Adopt) && key.size == size => {
                                Some((want, true))
                            }
                            None if key.size != size => None,
                            None => {
                                scan.hashed += 1;
                                blob::hash_at(&*dir, &ent.name)
                                    .map_err(|err| {
                                        Error::msg(format!("read {}: {err}", self.full(&path)))
                                    })?
                                    .map(|(_, h)| (h, true))
                            }
                        };
                    match have {
                        Some((h, fresh)) => {
                            if h != want {
                                scan.changes.push(change(ChangeKind::Modified));
                            }
                            if fresh || self.keep_all() {
                                scan.recs.push(Rec { path, key, hash: h });
                            }
                        }
                        None => scan.changes.push(change(ChangeKind::Modified)),
                    }
                }
                (FileType::Symlink, Some(st)) => {
                    let key = StatKey::of(&st);
                    let target =
                        match self
                            .cache
                            .trusted_child(&crange, rel, ent.name.as_bytes(), &key)
                        {
                            Some(h) => Ok(h),
                            None => match dir.read_link(&ent.name) {
                                Ok(t) => Err(t.as_bytes().to_vec()),
                                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                                Err(e) => {
                                    return Err(Error::msg(format!("{}: {e}", self.full(&path))));
                                }
                            },
                        };
                    if self.snapshot() {
                        let t = match target {
                            Err(t) => t,
                            // The manifest needs the target bytes themselves.
                            Ok(_) => dir
                                .read_link(&ent.name)
                                .map_err(|e| Error::msg(format!("{}: {e}", self.full(&path))))?
                                .as_bytes()
                                .to_vec(),
                        };
                        scan.recs.push(Rec {
                            path: path.clone(),
                            key,
                            hash: Hash::of(&t),
                        });
                        scan.entries.push(Entry::symlink(path, t));
                        continue;
                    }
                    let (hash, fresh) = match target {
                        Ok(h) => (h, false),
                        Err(t) => {
                            scan.hashed += 1;
                            (Hash::of(&t), true)
                        }
                    };
                    match base {
                        None => {
                            if !matches!(self.mode, Mode::Adopt) {
                                scan.changes.push(change(ChangeKind::Added));
                            }
                        }
                        Some(e) if e.kind == Kind::Symlink => {
                            if Hash::of(e.target) != hash {
                                scan.changes.push(change(ChangeKind::Modified));
                            }
                            if fresh || self.keep_all() {
                                scan.recs.push(Rec { path, key, hash });
                            }
                        }
                        Some(_) => scan.changes.push(change(ChangeKind::TypeChanged)),
                    }
                }
                (other, _) => {
                    if self.snapshot() {
                        return Err(Error::msg(format!(
                            "{}: is a special file ({other:?}); only files, directories and \
                             symlinks can be recorded",
                            self.full(&path)
                        )));
                    }
                    let kind = if base.is_some() {
                        ChangeKind::TypeChanged
                    } else {
                        ChangeKind::Added
                    };
                    scan.changes.push(change(kind));
                }
            }
        }
        let mut out = self
            .out
            .lock()
            .map_err(|_| Error::msg("internal error: a worker panicked"))?;
        out.changes.append(&mut scan.changes);
        out.recs.append(&mut scan.recs);
        out.entries.append(&mut scan.entries);
        out.hashed += scan.hashed;
        out.new_blobs += scan.new_blobs;
        out.new_bytes += scan.new_bytes;
        Ok(())
    }

    /// Snapshot mode: the size and blob of one file, from the stat cache when it proves the
    /// content known and the blob is in the store, else by putting the file into the store.
    #[allow(clippy::too_many_arguments)]
    fn file_blob(
        &self,
        store: &Store,
        staging: &Dir,
        dir: &Dir,
        name: &OsStr,
        path: &[u8],
        key: &StatKey,
        base: Option<BaseEntry<'_>>,
        known: Option<Hash>,
    ) -> Result<Option<(u64, Hash)>> {
        if let Some(h) = known {
            // A blob the base references is kept by the base (gc waits for our shared lock);
            // any other one is looked up.
            let in_base = base.and_then(|b| b.hash) == Some(h);
            if in_base || blob::has_blob(store, &h, key.size) {
                return Ok(Some((key.size, h)));
            }
        }
        let r = blob::ingest_at(store, staging, &self.counter, dir, name)
            .map_err(|e| Error::msg(format!("{}: {e}", self.full(path))))?;
        Ok(r.map(|(size, hash, new)| {
            if let Ok(mut o) = self.out.lock() {
                o.hashed += 1;
                if new {
                    o.new_blobs += 1;
                    o.new_bytes += size;
                }
            }
            (size, hash)
        }))
    }
}

/// Shows a change's path for people (`dir/` for an untracked directory).
pub fn show_change(c: &Change) -> String {
    let mut s = show(&c.path);
    if c.is_dir {
        s.insert(s.len() - 1, '/');
    }
    s
}
