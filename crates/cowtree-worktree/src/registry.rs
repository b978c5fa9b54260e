//! The worktree side of the store's registry: finding the record of a worktree (also after
//! it was moved), its stat cache sidecar, and the journal of an unfinished switch.
//!
//! Each worktree has one [`Record`] (see [`crate::record`]): what the checkout registered
//! (path, base, the device and inode of the root directory), the name of the stat cache
//! sidecar `worktrees/<id>.stat` (see [`crate::cache`]), and `pending` while a switch runs.
//!
//! A worktree is found by its canonical path. When no record has that path, a record whose
//! `dev`+`ino` equal the directory's is taken to be the same worktree moved by hand: the
//! record is re-keyed to the new path (its stat cache stays valid, since moving a directory
//! changes no inode or time beneath it).

use std::ffi::{OsStr, OsString};
use std::io;
use std::path::{Path, PathBuf};

use cowtree_fs::file_lock::{self, LockKind};
use cowtree_fs::sys::AsFd;
use cowtree_store::worktree_records::{self, Registration};
use cowtree_store::{Hash, Store};

use crate::cache::StatCache;
use crate::error::{Error, NotFound, Result};
use crate::record::Record;

/// An operation recorded before it starts, so that an interrupted one can be finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pending {
    /// The base before the switch.
    pub from: Hash,
    /// The snapshot being switched to.
    pub to: Hash,
}

/// A registered worktree.
#[derive(Debug, Clone)]
pub struct Worktree {
    /// Registry id (from the path).
    pub id: String,
    /// Canonical absolute path.
    pub path: PathBuf,
    /// The base snapshot.
    pub base: Hash,
    /// Device of the root directory.
    pub dev: u64,
    /// Inode of the root directory.
    pub ino: u64,
    /// An unfinished switch.
    pub pending: Option<Pending>,
    record: Record,
    /// The record as last read from or written to `worktrees/<id>`, with that id: a save
    /// that would write the same again is skipped.
    stored: Option<(String, Record)>,
}

/// Where a registered worktree is now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presence {
    /// Its path is a directory with the recorded device and inode.
    Present,
    /// Its path holds something else (another directory, or a file): the worktree was moved
    /// or deleted and the path reused.
    Replaced,
    /// Nothing is at its path.
    Missing,
}

impl Presence {
    /// `present`, `replaced` or `missing`.
    pub fn as_str(self) -> &'static str {
        match self {
            Presence::Present => "present",
            Presence::Replaced => "replaced",
            Presence::Missing => "missing",
        }
    }
}

fn dev_ino(path: &Path) -> Option<(u64, u64)> {
    let st = crate::os::lstat(path).ok()?;
    cowtree_fs::sys::stat_file_type(&st)
        .is_dir()
        .then_some((cowtree_fs::sys::stat_dev(&st), crate::os::ino(&st)))
}

/// Where the worktree of record `r` is.
pub fn presence(r: &Record) -> Presence {
    let Some(p) = r.registration.path_buf() else {
        return Presence::Missing;
    };
    match crate::os::lstat(&p) {
        Err(_) => Presence::Missing,
        // At its own path the inode alone tells: the device number of a filesystem can change
        // from one mount to the next (loop devices, btrfs's per-mount anonymous devices), its
        // inode numbers do not.
        Ok(st)
            if cowtree_fs::sys::stat_file_type(&st).is_dir()
                && crate::os::ino(&st) == r.registration.ino =>
        {
            Presence::Present
        }
        Ok(_) => Presence::Replaced,
    }
}

/// Reads record `id`, migrating one of an older version from the directory at its path (see
/// [`crate::record`]); the flag says it was, so that the caller writes it back.
fn read(store: &Store, id: &str) -> Result<Option<(Record, bool)>> {
    Record::read(store, id, dev_ino)
}

/// The worktree of record `id`. `migrated` says the record on disk is not `record` yet.
fn from_record(id: String, record: Record, migrated: bool) -> Worktree {
    let reg = &record.registration;
    Worktree {
        // `Record::decode` refuses a record that names no path.
        path: reg.path_buf().unwrap_or_default(),
        base: reg.snapshot,
        dev: reg.dev,
        ino: reg.ino,
        pending: record.pending.map(|p| Pending {
            from: p.from,
            to: p.to,
        }),
        stored: (!migrated).then(|| (id.clone(), record.clone())),
        id,
        record,
    }
}

fn canonical(path: &Path) -> Result<PathBuf> {
    std::fs::canonicalize(path).map_err(|e| Error::io_at("", path, e))
}

/// The worktree whose root is `dir` (any path naming it), or `None` when it is not
/// registered. A worktree moved by hand is found by device and inode and re-keyed.
pub fn lookup(store: &Store, dir: &Path) -> Result<Option<Worktree>> {
    let abs = canonical(dir)?;
    let Some((dev, ino)) = dev_ino(&abs) else {
        return Err(NotFound::Directory(dir.to_path_buf()).into());
    };
    let id = worktree_records::worktree_id(&abs);
    if let Some((r, migrated)) = read(store, &id)? {
        let (known_dev, known_ino) = (r.registration.dev, r.registration.ino);
        // The same directory, perhaps on a filesystem mounted again with another device
        // number (see `presence`): take the new number. A migrated record is written back
        // at once, so that no later reader (gc, `worktrees`) takes it for one of a replaced
        // worktree.
        if known_ino == ino {
            let mut wt = from_record(id, r, migrated);
            // Written back only under the worktree's lock, with the record read again: a
            // switch holding it writes its journal and pins, which a rewrite from the record
            // read above would undo. When another command holds it, the rewrite is left to a
            // later read.
            if known_dev != dev || migrated {
                match try_lock(store, &wt) {
                    Some(_lock) => {
                        reload(store, &mut wt)?;
                        if wt.ino == ino {
                            wt.dev = dev;
                            save(store, &mut wt, None)?;
                        }
                    }
                    None => wt.dev = dev,
                }
            }
            return Ok(Some(wt));
        }
    }
    for old_id in worktree_records::ids(store)? {
        if old_id == id {
            continue;
        }
        let Ok(Some((r, migrated))) = read(store, &old_id) else {
            continue;
        };
        if (r.registration.dev, r.registration.ino) != (dev, ino) {
            continue;
        }
        if r.registration.path_buf().and_then(|p| dev_ino(&p)) == Some((dev, ino)) {
            // The recorded path still is this very directory, device and inode alike (a bind
            // mount or hard-to-see alias): use it as it is.
            return Ok(Some(from_record(old_id, r, migrated)));
        }
        // Moved by hand: re-key the record (and its stat cache) to the new path.
        let mut wt = from_record(old_id.clone(), r, migrated);
        let cache = load_cache(store, &wt);
        wt.id = id;
        wt.path = abs;
        save(store, &mut wt, Some(&cache))?;
        worktree_records::remove(store, &old_id)?;
        return Ok(Some(wt));
    }
    Ok(None)
}

/// Like [`lookup`], with a message when `dir` is not a registered worktree.
pub fn open(store: &Store, dir: &Path) -> Result<Worktree> {
    lookup(store, dir)?.ok_or_else(|| {
        NotFound::Worktree {
            path: dir.to_path_buf(),
            store: store.root().to_path_buf(),
            inside: false,
        }
        .into()
    })
}

/// The registered worktree containing `dir` (the directory itself or an ancestor).
pub fn containing(store: &Store, dir: &Path) -> Result<Worktree> {
    let abs = canonical(dir)?;
    for a in abs.ancestors() {
        if let Some(wt) = lookup(store, a)? {
            return Ok(wt);
        }
    }
    Err(NotFound::Worktree {
        path: dir.to_path_buf(),
        store: store.root().to_path_buf(),
        inside: true,
    }
    .into())
}

/// Registers (or re-registers) the worktree at `dir` with base `base` and stat cache `cache`.
pub fn register(store: &Store, dir: &Path, base: &Hash, cache: &StatCache) -> Result<Worktree> {
    register_writing(store, dir, base, |store, wt| write_cache(store, wt, cache))
}

/// [`register`], with a stat cache that `write` encodes piece by piece
/// ([`crate::cache::encode_header`]), never held whole in memory.
pub fn register_encoding(
    store: &Store,
    dir: &Path,
    base: &Hash,
    write: impl FnOnce(&mut dyn io::Write) -> io::Result<()>,
) -> Result<Worktree> {
    register_writing(store, dir, base, |store, wt| {
        write_cache_with(store, wt, write)
    })
}

/// [`register`], with a copy of the encoded stat cache in the file `cache` (the store's tree's,
/// see [`cowtree_store::trees::cache`]).
pub fn register_with_cache_file(
    store: &Store,
    dir: &Path,
    base: &Hash,
    cache: &std::fs::File,
) -> Result<Worktree> {
    register_writing(store, dir, base, |store, wt| {
        cowtree_store::trees::copy_atomic(store.worktrees_dir(), &cache_name(&wt.id), cache)
            .map_err(|e| Error::io_at("write stat cache in", store.worktrees_path(), e))
    })
}

/// Keeps a copy of the stat cache of `wt`, a checkout that is a snapshot of the store's tree of
/// snapshot `id`, with that tree (best effort: a tree without one only costs its next checkout
/// a `stat` of every entry).
pub fn share_cache_with_tree(store: &Store, wt: &Worktree, id: &Hash) {
    let Ok(f) = open_cache(store, &wt.id) else {
        return;
    };
    let _ = cowtree_store::trees::set_cache(store, id, &f);
}

fn register_writing(
    store: &Store,
    dir: &Path,
    base: &Hash,
    write_cache: impl FnOnce(&Store, &Worktree) -> Result<()>,
) -> Result<Worktree> {
    let abs = canonical(dir)?;
    let (dev, ino) = dev_ino(&abs).ok_or_else(|| NotFound::Directory(dir.to_path_buf()))?;
    let id = worktree_records::worktree_id(&abs);
    // A damaged record is replaced: this registers the directory anew.
    let found = match read(store, &id) {
        Err(e) if e.is_corrupt() => None,
        found => found?,
    };
    let stored = match &found {
        Some((r, false)) => Some((id.clone(), r.clone())),
        _ => None,
    };
    let record = match found {
        Some((r, _)) => r,
        None => Record::new(&abs, base, (dev, ino)),
    };
    let mut wt = Worktree {
        id,
        path: abs,
        base: *base,
        dev,
        ino,
        pending: None,
        record,
        stored,
    };
    write_cache(store, &wt)?;
    save(store, &mut wt, None)?;
    Ok(wt)
}

/// The bytes of the record a checkout registers for `reg` ([`cowtree_store::checkout::Hooks`]):
/// the record [`register`] would then write, so that it finds it already written.
pub fn checkout_record(reg: &Registration) -> Vec<u8> {
    let mut record = Record {
        registration: reg.clone(),
        stat_cache: None,
        pending: None,
    };
    if let Some(path) = reg.path_buf() {
        record.stat_cache = Some(format!("{}.stat", worktree_records::worktree_id(&path)));
    }
    record.set_pending(None);
    record.encode()
}

fn cache_name(id: &str) -> OsString {
    OsString::from(format!("{id}.stat"))
}

/// Opens the stat cache sidecar of worktree `id` for reading, never following a symlink.
#[cfg(unix)]
fn open_cache(store: &Store, id: &str) -> io::Result<std::fs::File> {
    use rustix::fs::{Mode, OFlags, openat};
    let fd = openat(
        store.worktrees_dir(),
        cache_name(id),
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    Ok(std::fs::File::from(fd))
}

/// Opens the stat cache sidecar of worktree `id` for reading, never following a reparse point.
#[cfg(windows)]
fn open_cache(store: &Store, id: &str) -> io::Result<std::fs::File> {
    store.worktrees_dir().open_file(&cache_name(id))
}

/// The worktree's stat cache; empty when missing or unreadable (everything is then rehashed).
pub fn load_cache(store: &Store, wt: &Worktree) -> StatCache {
    let Ok(f) = open_cache(store, &wt.id) else {
        return StatCache::default();
    };
    let Ok(st) = cowtree_fs::sys::fstat(f.as_fd()) else {
        return StatCache::default();
    };
    // Read a buffer at a time into the cache's compact form, never held whole as encoded.
    StatCache::read(f, cowtree_fs::sys::stat_size(&st))
        .ok()
        .flatten()
        .unwrap_or_default()
}

/// The [`StatCache::blobs_of`] of the worktree's stat cache, read from its trailer alone
/// (before the whole cache is loaded); `None` when it names none or cannot be read.
pub fn cache_blobs_of(store: &Store, wt: &Worktree) -> Option<Hash> {
    let f = open_cache(store, &wt.id).ok()?;
    let size = cowtree_fs::sys::stat_size(&cowtree_fs::sys::fstat(f.as_fd()).ok()?);
    let at = size.checked_sub(crate::cache::TRAILER as u64)?;
    let mut b = [0u8; crate::cache::TRAILER];
    let n = read_at(&f, &mut b, at).ok()?;
    if n != b.len() {
        return None;
    }
    crate::cache::decode_trailer(&b)
}

/// `pread`: reads into `buf` from offset `at` of `f`, without moving its offset.
#[cfg(unix)]
fn read_at(f: &std::fs::File, buf: &mut [u8], at: u64) -> io::Result<usize> {
    Ok(rustix::io::pread(f, buf, at)?)
}

/// Reads into `buf` from offset `at` of `f` (`ReadFile` at that offset: it moves the handle's
/// offset, which nothing else uses here).
#[cfg(windows)]
fn read_at(f: &std::fs::File, buf: &mut [u8], at: u64) -> io::Result<usize> {
    std::os::windows::fs::FileExt::seek_read(f, buf, at)
}

/// Writes the worktree's stat cache sidecar only (the record names it by convention, and
/// [`save`] sets the name).
pub fn write_cache(store: &Store, wt: &Worktree, cache: &StatCache) -> Result<()> {
    write_cache_with(store, wt, |w| cache.write_encoding(w))
}

/// [`write_cache`] of an encoded cache that `write` writes piece by piece (see
/// [`crate::cache::encode_header`]), through a buffer.
pub fn write_cache_with(
    store: &Store,
    wt: &Worktree,
    write: impl FnOnce(&mut dyn io::Write) -> io::Result<()>,
) -> Result<()> {
    let res = (|| -> io::Result<()> {
        let mut f =
            cowtree_fs::atomic_file::AtomicFile::create(store.worktrees_dir().as_fd(), 0o644)?;
        let mut w = io::BufWriter::with_capacity(1 << 20, f.file());
        write(&mut w)?;
        io::Write::flush(&mut w)?;
        drop(w);
        // No fsync: a cache lost in a crash decodes as nothing and is simply rebuilt.
        f.commit(&cache_name(&wt.id), false)
    })();
    res.map_err(|e| Error::io_at("write stat cache in", store.root().join("worktrees"), e))
}

/// Writes the stat cache (when given) and then the record: path, base, dev/ino, pending. The
/// record is not written again when it is what was last read or written under the same id.
pub fn save(store: &Store, wt: &mut Worktree, cache: Option<&StatCache>) -> Result<()> {
    if let Some(c) = cache {
        write_cache(store, wt, c)?;
    }
    if !refresh_record(wt) {
        return Ok(());
    }
    worktree_records::write(store, &wt.id, &wt.record.encode())?;
    wt.stored = Some((wt.id.clone(), wt.record.clone()));
    Ok(())
}

/// Sets the record from the worktree's fields; false when that is what was last read or
/// written under the same id (nothing to write).
fn refresh_record(wt: &mut Worktree) -> bool {
    wt.record.stat_cache = Some(format!("{}.stat", wt.id));
    let reg = &mut wt.record.registration;
    reg.set_path(&wt.path);
    reg.snapshot = wt.base;
    reg.dev = wt.dev;
    reg.ino = wt.ino;
    wt.record.set_pending(wt.pending.map(|p| (p.from, p.to)));
    !wt.stored
        .as_ref()
        .is_some_and(|(id, r)| *id == wt.id && *r == wt.record)
}

/// A worktree's record written under a temporary name in `worktrees/`, not yet in place
/// ([`stage`]): [`Staged::publish`] renames it over the record and syncs the directory. It
/// lets a command get the record's bytes to disk while it does other work ([`Staged::sync_data`]
/// on another thread, or a `syncfs` of the store's filesystem that it needs anyway), so that
/// only the rename and one directory sync are left to wait for when the record must be
/// published. Dropped unpublished, the temporary file is removed and the record is unchanged.
#[derive(Debug)]
pub struct Staged<'s> {
    /// The temporary file; `None` when the record on disk already says the same.
    file: Option<cowtree_fs::atomic_file::AtomicFile<'s>>,
    store: &'s Store,
    id: String,
    record: Record,
}

/// Writes what [`save`] would write for `wt` as it is now (without a stat cache) under a
/// temporary name, unsynced; see [`Staged`].
pub fn stage<'s>(store: &'s Store, wt: &mut Worktree) -> Result<Staged<'s>> {
    let changed = refresh_record(wt);
    let file = if changed {
        let mut f =
            cowtree_fs::atomic_file::AtomicFile::create(store.worktrees_dir().as_fd(), 0o644)
                .map_err(|e| {
                    Error::io_at("write", worktree_records::record_path(store, &wt.id), e)
                })?;
        io::Write::write_all(f.file(), &wt.record.encode())
            .map_err(|e| Error::io_at("write", worktree_records::record_path(store, &wt.id), e))?;
        Some(f)
    } else {
        None
    };
    Ok(Staged {
        file,
        store,
        id: wt.id.clone(),
        record: wt.record.clone(),
    })
}

impl Staged<'_> {
    /// `fdatasync`s the staged bytes (not needed when a `syncfs` of the store's filesystem
    /// ran after [`stage`]).
    pub fn sync_data(&mut self) -> Result<()> {
        match &mut self.file {
            Some(f) => f.file().sync_data().map_err(|e| {
                Error::io_at(
                    "sync",
                    worktree_records::record_path(self.store, &self.id),
                    e,
                )
            }),
            None => Ok(()),
        }
    }

    /// Renames the staged record over `wt`'s record and `fsync`s `worktrees/`. Durable once
    /// this returns, provided the staged bytes were made durable first (see
    /// [`Staged::sync_data`]): the rename must never reach the disk before the bytes it names.
    /// `wt` must be the worktree this was staged for, its fields unchanged since.
    pub fn publish(self, wt: &mut Worktree) -> Result<()> {
        let Some(f) = self.file else {
            return Ok(());
        };
        let at = || worktree_records::record_path(self.store, &self.id);
        f.commit(OsStr::new(&self.id), false)
            .map_err(|e| Error::io_at("write", at(), e))?;
        cowtree_fs::dir::sync_dir(self.store.worktrees_dir().as_fd())
            .map_err(|e| Error::io_at("sync the directory of", at(), e))?;
        wt.stored = Some((self.id, self.record));
        Ok(())
    }
}

/// An exclusive hold on a worktree, so that two commands that change the same worktree run
/// one after the other. Released on drop. On unix it is an `flock` on the worktree's root
/// directory. Windows cannot lock a directory: there it is a lock on the file
/// `worktrees/<id>.lock` in the store (made on first use and left there, empty).
#[derive(Debug)]
pub struct WorktreeLock {
    #[cfg(unix)]
    _held: cowtree_fs::dir::Dir,
    #[cfg(windows)]
    _held: std::fs::File,
}

/// What the worktree's lock is taken on: its root directory.
#[cfg(unix)]
fn lock_target(_store: &Store, wt: &Worktree) -> Result<WorktreeLock> {
    let dir = cowtree_fs::dir::Dir::open(&wt.path).map_err(Error::Io)?;
    Ok(WorktreeLock { _held: dir })
}

/// What the worktree's lock is taken on: `worktrees/<id>.lock` in the store, opened (made
/// when missing) relative to `worktrees/`.
#[cfg(windows)]
fn lock_target(store: &Store, wt: &Worktree) -> Result<WorktreeLock> {
    let name = OsString::from(format!("{}.lock", wt.id));
    let d = store.worktrees_dir();
    let at = || store.worktrees_path().join(&name);
    let file = match d.open_file(&name) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => match d.create_file(&name) {
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => d.open_file(&name),
            r => r,
        },
        r => r,
    }
    .map_err(|e| Error::io_at("lock worktree", at(), e))?;
    Ok(WorktreeLock { _held: file })
}

/// Takes the worktree's lock, waiting (with a message) while another cowtree holds it.
pub fn lock(store: &Store, wt: &Worktree) -> Result<WorktreeLock> {
    let held = lock_target(store, wt)?;
    let ctx = |e: io::Error| Error::io_at("lock worktree", &wt.path, e);
    if !file_lock::try_lock(&held._held, LockKind::Exclusive).map_err(ctx)? {
        eprintln!(
            "cowtree: waiting for worktree {} (another cowtree is changing it)",
            wt.path.display()
        );
        file_lock::lock(&held._held, LockKind::Exclusive).map_err(ctx)?;
    }
    Ok(held)
}

/// Takes the worktree's lock if nobody holds it.
pub fn try_lock(store: &Store, wt: &Worktree) -> Option<WorktreeLock> {
    let held = lock_target(store, wt).ok()?;
    file_lock::try_lock(&held._held, LockKind::Exclusive)
        .ok()?
        .then_some(held)
}

/// Reads the record again (after waiting for the lock, another command may have changed it).
pub fn reload(store: &Store, wt: &mut Worktree) -> Result<()> {
    if let Some((r, migrated)) = read(store, &wt.id)? {
        *wt = from_record(wt.id.clone(), r, migrated);
    }
    Ok(())
}

/// Every record with where its worktree is now, sorted by id. A record of an older version
/// whose path holds no directory to migrate it from is listed as it is (its device and inode
/// 0 and 0, which no directory has), so replaced or missing by what its path holds now, and
/// never written back. Records that cannot be read otherwise are left out.
pub fn list(store: &Store) -> Result<Vec<(String, Record, Presence)>> {
    Ok(worktree_records::ids(store)?
        .into_iter()
        .filter_map(|id| {
            let (r, _) = match read(store, &id) {
                Ok(r) => r?,
                // Only a record that failed to migrate reads this way: any other fault fails
                // again.
                Err(_) => Record::read(store, &id, |_| Some((0, 0))).ok()??,
            };
            let p = presence(&r);
            Some((id, r, p))
        })
        .collect())
}

/// Removes a worktree's record and stat cache.
pub fn forget(store: &Store, wt: &Worktree) -> Result<()> {
    worktree_records::remove(store, &wt.id)
}
