//! The worktree walk behind status, incremental snapshot and registration.
//!
//! One rayon task per directory (as in the store's ingest); each directory is opened beneath
//! the root with `openat2(RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS)` and its entries are `lstat`ed
//! relative to it, so symlinks are seen as symlinks and never followed. A file whose stat
//! equals its stat cache record (and is not racy, see [`crate::cache`]) takes the cached
//! content hash; only the others are read.

use std::borrow::Cow;
use std::cmp::Ordering as Order;
use std::convert::Infallible;
use std::ffi::{OsStr, OsString};
use std::io;
use std::ops::Range;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use cowtree_fs::dir::Dir;
use cowtree_fs::progress::Progress;
use cowtree_store::ingest::Putter;
use cowtree_store::manifest::{
    DataRef, EntryRef, encode_blob, encode_dir, encode_symlink, encoded_len,
};
use cowtree_store::{Hash, Kind, Store};
use rustix::fs::{AtFlags, FileType, Stat, statat};
use rustix::io::Errno;

use crate::base::Base;
use crate::blob;
use crate::cache::{self, Rec, StatCache, StatKey};
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
        /// The content of every file record of the stat cache is in the store (its
        /// [`StatCache::blobs_of`] is there): a trusted file needs no lookup.
        stored: bool,
    },
}

/// What a walk found.
#[derive(Debug, Default)]
pub struct Scan {
    /// Changes against the base, sorted by path (empty in snapshot mode).
    pub changes: Vec<Change>,
    /// Stat cache records for every file and symlink whose content hash is known (status
    /// and adopt modes; snapshot mode encodes them in `tree`).
    pub recs: Vec<Rec>,
    /// Status and adopt modes: directory records of the directories listed now whose every
    /// entry has a record (see [`crate::cache`]).
    pub dir_recs: Vec<Rec>,
    /// Files and symlinks read because their stat did not prove them unchanged.
    pub hashed: u64,
    /// Directories listed (the others' entries came from their stat cache records).
    pub listed: u64,
    /// Status and adopt modes: directories listed that got a record in `dir_recs` (a cache
    /// written with it spares the next walk listing them).
    pub new_dir_recs: u64,
    /// Snapshot mode: the tree's manifest and the stat cache of its files and symlinks
    /// (taken at `started_ns`), encoded in pieces; the manifest is not checked yet (see
    /// [`cowtree_store::store::ManifestWriter`]).
    pub tree: Tree,
    /// Snapshot mode: file entries.
    pub files: u64,
    /// Snapshot mode: their bytes.
    pub bytes: u64,
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
    /// Snapshot mode: (device, inode) of the store's root, left out if found in the tree.
    skip_dir: Option<(u64, u64)>,
    /// Snapshot mode: puts changed files into the store.
    putter: Option<Putter<'a>>,
    /// Snapshot mode: the next directory's slot in `dirs`.
    next_slot: AtomicU32,
    /// Snapshot mode: each directory's part of the manifest and cache, by slot.
    dirs: Mutex<Vec<(u32, DirOut)>>,
    /// Directory records are used and made (the root's filesystem keeps directory times
    /// as [`crate::cache`] needs).
    dir_records: bool,
    /// The root's device: directory records only for directories on it.
    root_dev: u64,
    /// Directories listed.
    listed: AtomicU64,
    /// Counts each file, symlink or other non-directory entry found, and the bytes of the
    /// files read.
    progress: &'a Progress,
}

/// Filesystems on which creating, removing or renaming an entry always updates the
/// directory's mtime and ctime, so that directory records can be trusted. Network, FUSE and
/// overlay filesystems are left out: their directory times may come from elsewhere.
pub fn keeps_dir_times(fs: &str) -> bool {
    matches!(fs, "xfs" | "btrfs" | "ext4" | "tmpfs" | "f2fs" | "bcachefs")
}

/// One entry of a directory being walked: from its listing, or from the stat cache when the
/// directory's record proves the listing unchanged.
struct Ent<'c> {
    name: Cow<'c, [u8]>,
    /// From `d_type` when listed; `Directory` for a subdirectory with a record, `Unknown`
    /// for a file or symlink taken from the cache (its `lstat` tells).
    ft: FileType,
    /// The stat cache record of a file or symlink taken from the cache.
    rec: Option<usize>,
}

/// Snapshot mode: one directory's part of the manifest and the stat cache.
#[derive(Debug, Default)]
struct DirOut {
    /// The directory's entries in manifest order: files and symlinks, and subdirectories
    /// (whose own entries go where they are).
    items: Vec<Item>,
    /// Encoded manifest entries of the files and symlinks (or of this directory, when
    /// `empty`), at the items' ranges.
    man: Vec<u8>,
    /// The stat of each file and symlink, for its cache record (made from the entry, which
    /// has the path and the hash, and this).
    keys: Vec<StatKey>,
    /// The names of the subdirectories.
    sub_names: Vec<OsString>,
    /// Where this directory's path ends and its entries' names start in their paths.
    prefix: usize,
    /// The directory was empty: it is itself an entry (in `man`) and has no items.
    empty: bool,
    /// The directory's record for the stat cache, when every entry has a record.
    rec: Option<Rec>,
    files: u64,
    bytes: u64,
    hashed: u64,
}

#[derive(Debug, Clone)]
enum Item {
    /// A file or symlink: its manifest entry and its stat in `DirOut::keys`.
    Leaf { man: Range<u32>, key: u32 },
    /// A subdirectory: its slot, and its name in `DirOut::sub_names`.
    Sub { slot: u32, name: u32 },
}

impl DirOut {
    /// The name an item is sorted by, and whether it sorts as a directory (`name/`).
    fn key(&self, item: &Item, empty: &[bool]) -> (&[u8], bool) {
        match item {
            Item::Leaf { man, .. } => {
                // (Were the entry not one, the order would be wrong and the manifest refused:
                // no panic here.)
                let name = self
                    .man
                    .get(man.start as usize..man.end as usize)
                    .and_then(|e| EntryRef::decode_one(e).ok())
                    .and_then(|e| e.path.get(self.prefix..));
                (name.unwrap_or_default(), false)
            }
            Item::Sub { slot, name } => (
                self.sub_names[*name as usize].as_bytes(),
                !empty[*slot as usize],
            ),
        }
    }
}

/// Manifest order among the entries of one directory: paths are compared as bytes, and
/// every path beneath subdirectory `d` starts with `d/`, so a subdirectory sorts as its name
/// followed by `/` (an empty one, itself an entry, as its name).
fn manifest_order(a: &[u8], a_sub: bool, b: &[u8], b_sub: bool) -> Order {
    let a = a.iter().chain(if a_sub { &b"/"[..] } else { &[] });
    let b = b.iter().chain(if b_sub { &b"/"[..] } else { &[] });
    a.cmp(b)
}

/// What snapshot mode found for one directory entry before it is encoded.
enum Found {
    File {
        exec: bool,
        size: u64,
        hash: Hash,
        key: StatKey,
    },
    Symlink {
        target: Vec<u8>,
        key: StatKey,
    },
    Sub(u32),
}

/// What a directory task needs besides its path.
struct Task {
    /// The parent directory (none for the root).
    parent: Option<Arc<Dir>>,
    /// Snapshot mode: where the directory's part goes in `Walk::dirs`.
    slot: u32,
    /// The ranges of the directory in the base and the stat cache, when the parent knew them.
    ranges: Option<(Range<usize>, Range<usize>)>,
    /// The parent's entries came from the stat cache: this directory most likely has not
    /// changed either, so it is opened as an `O_PATH` handle (listed only if it did change).
    unchanged: bool,
}

impl Task {
    fn root() -> Task {
        Task {
            parent: None,
            slot: 0,
            ranges: None,
            unchanged: false,
        }
    }

    fn child(parent: Arc<Dir>, unchanged: bool) -> Task {
        Task {
            parent: Some(parent),
            slot: 0,
            ranges: None,
            unchanged,
        }
    }
}

/// Walks the worktree at `root_path` against `base`.
pub fn scan(root_path: &Path, base: &Base, cache: &StatCache, mode: Mode<'_>) -> Result<Scan> {
    scan_with_progress(root_path, base, cache, mode, &Progress::default())
}

/// [`scan`], counting into `progress` one entry for each file, symlink or other
/// non-directory found in the worktree (in the directories walked: not beneath a directory
/// reported as added), and the bytes of the files read because their stat did not prove
/// them unchanged. No total is set: the walk does not know how many entries it will find.
pub fn scan_with_progress(
    root_path: &Path,
    base: &Base,
    cache: &StatCache,
    mode: Mode<'_>,
    progress: &Progress,
) -> Result<Scan> {
    let started_ns = crate::cache::now_ns();
    let root = Dir::open(root_path).map_err(|e| Error::msg(format!("worktree: {e}")))?;
    let root_dev = cowtree_fs::sys::stat_dev(
        &root
            .stat_self()
            .map_err(|e| Error::msg(format!("stat {}: {e}", root_path.display())))?,
    );
    let dir_records = cowtree_fs::fstype::fs_type(&root).is_ok_and(|t| keeps_dir_times(t.name()));
    let skip_dir = match &mode {
        Mode::Snapshot { store, .. } => rustix::fs::stat(store.root())
            .ok()
            .map(|st| (cowtree_fs::sys::stat_dev(&st), st.st_ino)),
        _ => None,
    };
    let putter = match &mode {
        Mode::Snapshot { store, staging, .. } => Some(Putter::new(store, staging)),
        _ => None,
    };
    let dirs_room = if matches!(mode, Mode::Snapshot { .. }) {
        cache.dir_count() + 1
    } else {
        0
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
        skip_dir,
        putter,
        next_slot: AtomicU32::new(1),
        // Snapshot mode: room for every directory the cache knows (no regrowth, which moves
        // them all).
        dirs: Mutex::new(Vec::with_capacity(dirs_room)),
        dir_records,
        root_dev,
        listed: AtomicU64::new(0),
        progress,
    };
    // The walk is bound by lstat and getdents, not by the CPU: with more threads than cores,
    // more of them are in flight while some wait (a cold inode cache, a lock), so the pool is
    // twice the cores (at least 4, at most 16).
    let threads = (cowtree_fs::parallel::cores() * 2).clamp(4, 16);
    match rayon::ThreadPoolBuilder::new().num_threads(threads).build() {
        Ok(pool) => pool.scope(|s| walk.dir_task(s, Vec::new(), Task::root())),
        Err(_) => rayon::scope(|s| walk.dir_task(s, Vec::new(), Task::root())),
    }
    if let Some(e) = walk.error.lock().map(|mut g| g.take()).unwrap_or(None) {
        return Err(e);
    }
    let mut out = walk
        .out
        .into_inner()
        .map_err(|_| Error::msg("internal error: a worker panicked"))?;
    out.started_ns = started_ns;
    out.listed = walk.listed.load(Ordering::Relaxed);
    if let Some(p) = &walk.putter {
        out.new_blobs = p.new_blobs();
        out.new_bytes = p.new_bytes();
        let dirs = walk
            .dirs
            .into_inner()
            .map_err(|_| Error::msg("internal error: a worker panicked"))?;
        for (_, d) in &dirs {
            out.files += d.files;
            out.bytes += d.bytes;
            out.hashed += d.hashed;
        }
        out.tree = Tree::new(dirs, walk.next_slot.load(Ordering::Relaxed));
    }
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

/// Snapshot mode: the tree's manifest entries and stat cache records, encoded, in pieces (one
/// per directory walked), and the order that joins them.
#[derive(Debug, Default)]
pub struct Tree {
    /// By slot; the root is slot 0.
    dirs: Vec<Option<DirOut>>,
    entries: u64,
    records: u64,
    /// Directory records, in no particular order.
    dir_recs: Vec<Rec>,
}

impl Tree {
    fn new(dirs: Vec<(u32, DirOut)>, slots: u32) -> Tree {
        let mut table: Vec<Option<DirOut>> = (0..slots).map(|_| None).collect();
        let mut dir_recs = Vec::new();
        for (slot, mut d) in dirs {
            dir_recs.extend(d.rec.take());
            if let Some(t) = table.get_mut(slot as usize) {
                *t = Some(d);
            }
        }
        // A subdirectory was placed as `name/`; one that turned out empty is an entry of its
        // own and sorts as `name` (before siblings like `name-x`): reorder where that matters.
        let empty: Vec<bool> = table
            .iter()
            .map(|d| d.as_ref().is_some_and(|d| d.empty))
            .collect();
        for d in table.iter_mut().flatten() {
            let has_empty_sub = d
                .items
                .iter()
                .any(|i| matches!(i, Item::Sub { slot, .. } if empty[*slot as usize]));
            if has_empty_sub {
                let mut items = d.items.clone();
                items.sort_by(|a, b| {
                    let (a, a_sub) = d.key(a, &empty);
                    let (b, b_sub) = d.key(b, &empty);
                    manifest_order(a, a_sub, b, b_sub)
                });
                d.items = items;
            }
        }
        // Counted from the pieces rather than by a walk of the tree: each file or symlink is
        // one item with its stat, each empty directory one entry of its own (the root never
        // is one). Every piece is reachable from the root: a directory is walked only when
        // its parent has placed it, and a parent that stops early fails the whole walk.
        let records: usize = table.iter().flatten().map(|d| d.keys.len()).sum();
        let empties = table.iter().flatten().filter(|d| d.empty).count();
        let tree = Tree {
            dirs: table,
            entries: (records + empties) as u64,
            records: records as u64,
            dir_recs,
        };
        debug_assert_eq!(
            {
                let (mut entries, mut records) = (0, 0);
                let _ = tree.for_each(|_, key| -> std::result::Result<(), Infallible> {
                    entries += 1;
                    records += u64::from(key.is_some());
                    Ok(())
                });
                (entries, records)
            },
            (tree.entries, tree.records)
        );
        tree
    }

    /// Manifest entries.
    pub fn entries(&self) -> u64 {
        self.entries
    }

    /// Stat cache records of files and symlinks.
    pub fn records(&self) -> u64 {
        self.records
    }

    /// Stat cache records of directories, sorted by path (sorted here, on the thread that
    /// writes the cache, rather than when the tree is put together).
    pub fn dir_records(&self) -> Vec<&Rec> {
        let mut recs: Vec<&Rec> = self.dir_recs.iter().collect();
        recs.sort_unstable_by(|a, b| a.path.cmp(&b.path));
        recs
    }

    /// Calls `f` with each encoded manifest entry in order (a depth-first walk from the root,
    /// each directory in its items' order) and, for a file or symlink, its stat for the cache
    /// record ([`cache_record`]). Stops at `f`'s first error.
    pub fn for_each<E>(
        &self,
        mut f: impl FnMut(&[u8], Option<&StatKey>) -> std::result::Result<(), E>,
    ) -> std::result::Result<(), E> {
        // (slot, next item)
        let mut stack: Vec<(u32, usize)> = vec![(0, 0)];
        while let Some(top) = stack.last_mut() {
            let Some(d) = self.dirs.get(top.0 as usize).and_then(Option::as_ref) else {
                stack.pop();
                continue;
            };
            if d.empty {
                f(&d.man, None)?;
                stack.pop();
                continue;
            }
            let Some(item) = d.items.get(top.1) else {
                stack.pop();
                continue;
            };
            top.1 += 1;
            match item {
                Item::Sub { slot, .. } => stack.push((*slot, 0)),
                Item::Leaf { man, key } => f(
                    &d.man[man.start as usize..man.end as usize],
                    d.keys.get(*key as usize),
                )?,
            }
        }
        Ok(())
    }
}

/// Appends to `out` the stat cache record of the file or symlink whose manifest entry is
/// `entry` (its path, and its blob hash or the hash of its target) and whose stat is `key`.
/// False, appending nothing, when `entry` is not one encoded file or symlink entry.
pub fn cache_record(entry: &[u8], key: &StatKey, out: &mut Vec<u8>) -> bool {
    let Ok(e) = EntryRef::decode_one(entry) else {
        return false;
    };
    let hash = match e.data {
        DataRef::Blob { hash, .. } => hash,
        DataRef::Target(t) => Hash::of(t),
        DataRef::None => return false,
    };
    cache::encode_rec(out, e.path, key, &hash);
    true
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

    fn dir_task<'s>(&'s self, s: &rayon::Scope<'s>, rel: Vec<u8>, task: Task) {
        if self.stop.load(Ordering::Relaxed) {
            return;
        }
        if let Err(e) = self.walk_dir(s, &rel, task) {
            self.fail(e);
        }
    }

    /// Whether `recs` must hold every known file (a cache built from scratch) or only what
    /// was learnt now (status merges it into the old cache).
    fn keep_all(&self) -> bool {
        !matches!(self.mode, Mode::Status)
    }

    /// Snapshot mode: records one directory (already listed) into `self.dirs`: each file's
    /// blob, from the stat cache when it proves the content known and the blob is in the
    /// store, else by putting the file into the store; each symlink's target; each
    /// subdirectory as a task of its own.
    #[allow(clippy::too_many_arguments)]
    fn snapshot_dir<'s>(
        &'s self,
        s: &rayon::Scope<'s>,
        (store, stored): (&Store, bool),
        putter: &Putter<'_>,
        dir: Arc<Dir>,
        rel: &[u8],
        slot: u32,
        (brange, crange): (Range<usize>, Range<usize>),
        dkey: Option<(StatKey, Option<Hash>)>,
        list: Vec<Ent<'a>>,
    ) -> Result<()> {
        let from_cache = matches!(dkey, Some((_, Some(_))));
        let prefix = if rel.is_empty() { 0 } else { rel.len() + 1 };
        let mut out = DirOut {
            prefix,
            ..DirOut::default()
        };
        let listed = list.len();
        let dir_rec = |found: &[(Cow<'_, [u8]>, Found)]| {
            let (key, known) = dkey.filter(|_| found.len() == listed)?;
            let is_sub = |f: &Found| matches!(f, Found::Sub(_));
            // Every entry listed (or taken from the cache) was found, so the names are the
            // ones listed; from the cache, their hash is known.
            let hash = known.unwrap_or_else(|| {
                cache::names_hash(
                    found
                        .iter()
                        .filter(|(_, f)| !is_sub(f))
                        .map(|(n, _)| &n[..]),
                    found.iter().filter(|(_, f)| is_sub(f)).map(|(n, _)| &n[..]),
                )
            });
            Some(Rec {
                path: rel.to_vec(),
                key,
                hash,
            })
        };
        if list.is_empty() {
            if !rel.is_empty() {
                out.empty = true;
                encode_dir(&mut out.man, rel);
            }
            out.rec = dir_rec(&[]);
            return self.deposit(slot, out);
        }
        let mut found: Vec<(Cow<'a, [u8]>, Found)> = Vec::with_capacity(list.len());
        // Cursors of the in-order lookups of the entries (sorted by name) in the base and
        // the stat cache.
        let (mut bcur, mut ccur) = (brange.start, crange.start);
        // The path of the entry at hand: `rel/name`.
        let mut path = Vec::with_capacity(rel.len() + 64);
        for ent in list {
            if self.stop.load(Ordering::Relaxed) {
                return Ok(());
            }
            let name: &[u8] = &ent.name;
            let os_name = OsStr::from_bytes(name);
            path.clear();
            if !rel.is_empty() {
                path.extend_from_slice(rel);
                path.push(b'/');
            }
            path.extend_from_slice(name);
            let st = match ent.ft {
                FileType::Directory => None,
                _ => match self.lstat(&dir, os_name, &path)? {
                    Some(st) => {
                        self.progress.add(1, 0);
                        Some(st)
                    }
                    None => continue,
                },
            };
            let ft = st.map_or(FileType::Directory, |st| {
                FileType::from_raw_mode(st.st_mode)
            });
            let what = match (ft, st) {
                (FileType::Directory, _) => {
                    let child = Task {
                        unchanged: from_cache,
                        parent: Some(Arc::clone(&dir)),
                        slot: self.next_slot.fetch_add(1, Ordering::Relaxed),
                        ranges: Some((
                            self.base.range_in(brange.clone(), &path),
                            self.cache.range_in(crange.clone(), &path),
                        )),
                    };
                    let slot = child.slot;
                    let p = path.clone();
                    s.spawn(move |s| self.dir_task(s, p, child));
                    Found::Sub(slot)
                }
                (FileType::RegularFile, Some(st)) => {
                    let key = StatKey::of(&st);
                    let exec = st.st_mode & 0o111 != 0;
                    let known = self
                        .trusted(&ent, (&crange, &mut ccur), rel, &key)
                        .filter(|h| {
                            // A blob of the snapshot the cache names, or of the base, is kept by
                            // that snapshot (gc waits for our shared lock); any other one is
                            // looked up.
                            stored || {
                                let base = self.base.find_child_from(&brange, &mut bcur, rel, name);
                                base.and_then(|i| self.base.get(i).hash()) == Some(*h)
                                    || blob::has_blob(store, h, key.size)
                            }
                        });
                    let (size, hash) = match known {
                        Some(h) => (key.size, h),
                        None => {
                            out.hashed += 1;
                            match putter
                                .put(&dir, cowtree_fs::sys::stat_dev(&st), os_name)
                                .map_err(|e| Error::msg(format!("{}: {e}", self.full(&path))))?
                            {
                                Some(p) => {
                                    self.progress.add(0, p.size);
                                    (p.size, p.hash)
                                }
                                None => continue,
                            }
                        }
                    };
                    Found::File {
                        exec,
                        size,
                        hash,
                        key,
                    }
                }
                (FileType::Symlink, Some(st)) => {
                    let key = StatKey::of(&st);
                    // The manifest needs the target itself: the base's, when the stat cache
                    // proves it unchanged and it is the base's; else read. (When the cache's
                    // snapshot is stored, the base is not loaded at all: every symlink's
                    // target is read, one readlink each, rather than the whole base for them.)
                    let known = self.trusted(&ent, (&crange, &mut ccur), rel, &key);
                    let from_base = known.and_then(|h| {
                        let i = self.base.find_child_from(&brange, &mut bcur, rel, name)?;
                        let e = self.base.get(i);
                        let t = e.target()?;
                        (Hash::of(t) == h).then(|| t.to_vec())
                    });
                    let target = match from_base {
                        Some(t) => t,
                        None => match dir.read_link(os_name) {
                            Ok(t) => t.into_vec(),
                            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                            Err(e) => {
                                return Err(Error::msg(format!("{}: {e}", self.full(&path))));
                            }
                        },
                    };
                    Found::Symlink { target, key }
                }
                (other, _) => {
                    return Err(Error::msg(format!(
                        "{}: is a special file ({other:?}); only files, directories and \
                         symlinks can be recorded",
                        self.full(&path)
                    )));
                }
            };
            found.push((ent.name, what));
        }
        out.rec = dir_rec(&found);
        // Names are unique: no need for a stable sort (which allocates).
        found.sort_unstable_by(|(a, fa), (b, fb)| {
            manifest_order(
                a,
                matches!(fa, Found::Sub(_)),
                b,
                matches!(fb, Found::Sub(_)),
            )
        });
        // Reserve the exact sizes (see the manifest encoding): no regrowth.
        let mut man_len = 0;
        let mut leaves = 0;
        for (name, what) in &found {
            let path_len = prefix + name.len();
            man_len += match what {
                Found::File { .. } => encoded_len(Kind::File, path_len, 0),
                Found::Symlink { target, .. } => encoded_len(Kind::Symlink, path_len, target.len()),
                Found::Sub(_) => continue,
            };
            leaves += 1;
        }
        // Items address this directory's encoding and lists with u32 offsets.
        if out.man.len() + man_len > u32::MAX as usize
            || out.keys.len() + found.len() > u32::MAX as usize
        {
            return Err(Error::msg(format!(
                "{}: directory too large to record incrementally ({} entries, {man_len} bytes \
                 of manifest); use --full",
                self.full(rel),
                found.len()
            )));
        }
        out.man.reserve_exact(man_len);
        out.keys.reserve_exact(leaves);
        out.items.reserve_exact(found.len());
        for (name, what) in found {
            path.clear();
            if !rel.is_empty() {
                path.extend_from_slice(rel);
                path.push(b'/');
            }
            path.extend_from_slice(&name);
            let m0 = out.man.len() as u32;
            let key = match what {
                Found::File {
                    exec,
                    size,
                    hash,
                    key,
                } => {
                    encode_blob(&mut out.man, &path, exec, size, &hash);
                    out.files += 1;
                    out.bytes += size;
                    key
                }
                Found::Symlink { target, key } => {
                    encode_symlink(&mut out.man, &path, &target);
                    key
                }
                Found::Sub(slot) => {
                    out.sub_names.push(OsString::from_vec(name.into_owned()));
                    out.items.push(Item::Sub {
                        slot,
                        name: (out.sub_names.len() - 1) as u32,
                    });
                    continue;
                }
            };
            out.keys.push(key);
            out.items.push(Item::Leaf {
                man: m0..out.man.len() as u32,
                key: (out.keys.len() - 1) as u32,
            });
        }
        self.deposit(slot, out)
    }

    /// The content hash the stat cache proves for entry `ent` of directory `rel` at stat
    /// `key`: from its record when the entry came from the cache, else found by the forward
    /// search through `crange` from `ccur`.
    fn trusted(
        &self,
        ent: &Ent<'_>,
        (crange, ccur): (&Range<usize>, &mut usize),
        rel: &[u8],
        key: &StatKey,
    ) -> Option<Hash> {
        match ent.rec {
            Some(i) => self.cache.trusted_at(i, key),
            None => self
                .cache
                .trusted_child_from(crange, ccur, rel, &ent.name, key),
        }
    }

    fn deposit(&self, slot: u32, out: DirOut) -> Result<()> {
        self.dirs
            .lock()
            .map_err(|_| Error::msg("internal error: a worker panicked"))?
            .push((slot, out));
        Ok(())
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

    fn walk_dir<'s>(&'s self, s: &rayon::Scope<'s>, rel: &[u8], task: Task) -> Result<()> {
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
        // change made while it is listed shows in the next stat), and to find the store.
        let skip_here = self.skip_dir.filter(|_| !rel.is_empty());
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
            // The store itself, inside the tree being recorded: never recorded into itself.
            return Ok(());
        }
        // Directory records only on the root's filesystem (a filesystem mounted beneath may
        // not keep directory times).
        let dkey = dst
            .filter(|st| self.dir_records && cowtree_fs::sys::stat_dev(st) == self.root_dev)
            .map(|st| StatKey::of(&st));
        let (brange, crange) = task
            .ranges
            .unwrap_or_else(|| (self.base.range(rel), self.cache.range(rel)));
        let prefix = if rel.is_empty() { 0 } else { rel.len() + 1 };
        let cached = dkey
            .as_ref()
            .and_then(|k| self.cache.children(rel, k, crange.clone()));
        let mut dir = dir;
        // The names' hash when they came from the cache (the same names hash the same).
        let known_hash = cached.as_ref().map(|c| c.hash);
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
        let from_cache = known_hash.is_some();
        // In name order, so that the base and the cache are searched forward (see
        // `find_child_from`).
        list.sort_unstable_by(|a, b| a.name.cmp(&b.name));
        let dir = Arc::new(dir);
        if let (Mode::Snapshot { store, stored, .. }, Some(putter)) = (&self.mode, &self.putter) {
            return self.snapshot_dir(
                s,
                (store, *stored),
                putter,
                dir,
                rel,
                task.slot,
                (brange, crange),
                dkey.map(|k| (k, known_hash)),
                list,
            );
        }
        let mut scan = Scan::default();
        let (mut bcur, mut ccur) = (brange.start, crange.start);
        // Names of the entries that will have a record in the cache (files and symlinks) and
        // of the subdirectories: the directory gets a record when every entry listed is one.
        let mut leaves: Vec<&[u8]> = Vec::with_capacity(list.len());
        let mut subdirs: Vec<&[u8]> = Vec::new();
        for ent in &list {
            if self.stop.load(Ordering::Relaxed) {
                return Ok(());
            }
            let name: &[u8] = &ent.name;
            let os_name = OsStr::from_bytes(name);
            let path = join(rel, name);
            let idx = self.base.find_child_from(&brange, &mut bcur, rel, name);
            let base = idx.map(|i| self.base.get(i));
            let mut ft = ent.ft;
            let mut st = None;
            if ft != FileType::Directory {
                match self.lstat(&dir, os_name, &path)? {
                    Some(x) => {
                        self.progress.add(1, 0);
                        ft = FileType::from_raw_mode(x.st_mode);
                        st = Some(x);
                    }
                    // Gone: not listed in the record either.
                    None => continue,
                }
            }
            if let Some(i) = idx {
                self.seen[i].store(true, Ordering::Relaxed);
            }
            if ft == FileType::Directory {
                subdirs.push(name);
            }
            // A file or symlink gets a record only where found so below.
            let mut recorded = || leaves.push(name);
            let change = |kind| Change {
                path: path.clone(),
                kind,
                is_dir: false,
            };
            match (ft, st) {
                (FileType::Directory, _) => match base {
                    Some(e) if e.kind != Kind::Dir => {
                        scan.changes.push(change(ChangeKind::TypeChanged));
                    }
                    Some(_) => {
                        let task = Task::child(Arc::clone(&dir), from_cache);
                        s.spawn(move |s| self.dir_task(s, path, task))
                    }
                    None if self.base.has_beneath(&path) => {
                        let task = Task::child(Arc::clone(&dir), from_cache);
                        s.spawn(move |s| self.dir_task(s, path, task))
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
                },
                (FileType::RegularFile, Some(st)) => {
                    let key = StatKey::of(&st);
                    let exec = st.st_mode & 0o111 != 0;
                    let Some(e) = base else {
                        if !matches!(self.mode, Mode::Adopt) {
                            scan.changes.push(change(ChangeKind::Added));
                        }
                        continue;
                    };
                    let (size, want) = match e.data {
                        DataRef::Blob { size, hash } => (size, hash),
                        _ => {
                            scan.changes.push(change(ChangeKind::TypeChanged));
                            continue;
                        }
                    };
                    if exec != (e.kind == Kind::Executable) {
                        scan.changes.push(change(ChangeKind::ModeChanged));
                    }
                    // (hash, learnt now rather than taken from the cache)
                    let trusted = self.trusted(ent, (&crange, &mut ccur), rel, &key);
                    let have = match trusted {
                        Some(h) => Some((h, false)),
                        None if matches!(self.mode, Mode::Adopt) && key.size == size => {
                            Some((want, true))
                        }
                        None if key.size != size => None,
                        None => {
                            scan.hashed += 1;
                            blob::hash_at(&*dir, os_name)
                                .map_err(|err| {
                                    Error::msg(format!("read {}: {err}", self.full(&path)))
                                })?
                                .map(|(n, h)| {
                                    self.progress.add(0, n);
                                    (h, true)
                                })
                        }
                    };
                    match have {
                        Some((h, fresh)) => {
                            if h != want {
                                scan.changes.push(change(ChangeKind::Modified));
                            }
                            // Learnt now, or carried over from the old cache by the caller.
                            recorded();
                            if fresh || self.keep_all() {
                                scan.recs.push(Rec { path, key, hash: h });
                            }
                        }
                        None => scan.changes.push(change(ChangeKind::Modified)),
                    }
                }
                (FileType::Symlink, Some(st)) => {
                    let key = StatKey::of(&st);
                    let trusted = self.trusted(ent, (&crange, &mut ccur), rel, &key);
                    let target = match trusted {
                        Some(h) => Ok(h),
                        None => match dir.read_link(os_name) {
                            Ok(t) => Err(t.as_bytes().to_vec()),
                            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                            Err(e) => {
                                return Err(Error::msg(format!("{}: {e}", self.full(&path))));
                            }
                        },
                    };
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
                        Some(EntryRef {
                            data: DataRef::Target(target),
                            ..
                        }) => {
                            if Hash::of(target) != hash {
                                scan.changes.push(change(ChangeKind::Modified));
                            }
                            recorded();
                            if fresh || self.keep_all() {
                                scan.recs.push(Rec { path, key, hash });
                            }
                        }
                        Some(_) => scan.changes.push(change(ChangeKind::TypeChanged)),
                    }
                }
                (_, _) => {
                    let kind = if base.is_some() {
                        ChangeKind::TypeChanged
                    } else {
                        ChangeKind::Added
                    };
                    scan.changes.push(change(kind));
                }
            }
        }
        if let Some(key) = dkey.filter(|_| leaves.len() + subdirs.len() == list.len()) {
            scan.new_dir_recs += u64::from(known_hash.is_none());
            scan.dir_recs.push(Rec {
                path: rel.to_vec(),
                key,
                // Every entry accounted for: when they came from the cache, these are its
                // names, whose hash its record holds.
                hash: known_hash.unwrap_or_else(|| cache::names_hash(leaves, subdirs)),
            });
        }
        let mut out = self
            .out
            .lock()
            .map_err(|_| Error::msg("internal error: a worker panicked"))?;
        out.changes.append(&mut scan.changes);
        out.recs.append(&mut scan.recs);
        out.dir_recs.append(&mut scan.dir_recs);
        out.hashed += scan.hashed;
        out.new_dir_recs += scan.new_dir_recs;
        Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_record_from_an_entry_is_the_record_encoded_directly() {
        let key = StatKey {
            size: 5,
            mtime_ns: 1,
            ctime_ns: 2,
            ino: 3,
            mode: 0o100644,
        };
        let h = Hash::of(b"x");
        for (entry, path, hash) in [
            {
                let mut e = Vec::new();
                encode_blob(&mut e, b"d/f", true, 5, &h);
                (e, &b"d/f"[..], h)
            },
            {
                let mut e = Vec::new();
                encode_symlink(&mut e, b"l", b"../t");
                (e, &b"l"[..], Hash::of(b"../t"))
            },
        ] {
            let mut got = Vec::new();
            assert!(cache_record(&entry, &key, &mut got));
            let mut want = Vec::new();
            cache::encode_rec(&mut want, path, &key, &hash);
            assert_eq!(got, want);
            // Anything but exactly one file or symlink entry is refused.
            let mut out = Vec::new();
            assert!(!cache_record(&entry[..entry.len() - 1], &key, &mut out));
            assert!(!cache_record(&[&entry[..], b"x"].concat(), &key, &mut out));
            assert!(out.is_empty());
        }
        let mut dir = Vec::new();
        encode_dir(&mut dir, b"e");
        assert!(!cache_record(&dir, &key, &mut Vec::new()));
        assert!(!cache_record(&[], &key, &mut Vec::new()));
    }

    #[test]
    fn a_subdirectory_sorts_as_its_name_and_a_slash() {
        // "a-b" < "a/..." since '-' < '/', but "a" < "a-b".
        assert_eq!(manifest_order(b"a", true, b"a-b", false), Order::Greater);
        assert_eq!(manifest_order(b"a", false, b"a-b", false), Order::Less);
        assert_eq!(manifest_order(b"a", true, b"a0", false), Order::Less);
        assert_eq!(manifest_order(b"ab", true, b"a", true), Order::Greater);
    }
}
