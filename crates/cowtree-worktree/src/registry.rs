//! The worktree side of the store's registry: finding the record of a worktree (also after
//! it was moved), its stat cache sidecar, and the journal of an unfinished switch.
//!
//! The store's record (`cowtree_store::registry::Record`) is extended through fields it keeps
//! for us: `stat_cache` names the sidecar `worktrees/<id>.stat` (see [`crate::cache`]), and
//! `extra` holds `dev` and `ino` (the device and inode of the worktree's root directory) and
//! `pending` (`{"op":"switch","from":<hex>,"to":<hex>}` while a switch runs).
//!
//! A worktree is found by its canonical path. When no record has that path, a record whose
//! `dev`+`ino` equal the directory's is taken to be the same worktree moved by hand: the
//! record is re-keyed to the new path (its stat cache stays valid, since moving a directory
//! changes no inode or time beneath it).

use std::ffi::{OsStr, OsString};
use std::io;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use cowtree_store::registry::{self, RECORD_VERSION, Record};
use cowtree_store::{Hash, Store};
use rustix::fs::{Mode, OFlags, openat};
use serde_json::{Value, json};

use crate::cache::StatCache;
use crate::error::{Error, NotFound, Result};

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

fn u64_field(r: &Record, k: &str) -> Option<u64> {
    r.extra.get(k).and_then(Value::as_u64)
}

/// The record's root device and inode, when it has them. No directory has inode 0: a record
/// that says `"dev":0,"ino":0` (written by older versions from a record that lacked them)
/// knows nothing either.
fn known_dev_ino(r: &Record) -> Option<(u64, u64)> {
    match (u64_field(r, "dev"), u64_field(r, "ino")) {
        (Some(dev), Some(ino)) if ino != 0 => Some((dev, ino)),
        _ => None,
    }
}

fn dev_ino(path: &Path) -> Option<(u64, u64)> {
    let st = rustix::fs::lstat(path).ok()?;
    (rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::Directory)
        .then_some((cowtree_fs::sys::stat_dev(&st), st.st_ino))
}

/// Where the worktree of record `r` is.
pub fn presence(r: &Record) -> Presence {
    let Some(p) = r.path_buf() else {
        return Presence::Missing;
    };
    match (rustix::fs::lstat(&p), known_dev_ino(r)) {
        (Err(_), _) => Presence::Missing,
        (Ok(st), Some((_, ino))) => {
            // At its own path the inode alone tells: the device number of a filesystem can
            // change from one mount to the next (loop devices, btrfs's per-mount anonymous
            // devices), its inode numbers do not.
            if rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::Directory
                && st.st_ino == ino
            {
                Presence::Present
            } else {
                Presence::Replaced
            }
        }
        (Ok(st), None) => {
            if rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::Directory {
                Presence::Present
            } else {
                Presence::Replaced
            }
        }
    }
}

fn from_record(id: String, record: Record) -> Result<Worktree> {
    let path = record
        .path_buf()
        .ok_or_else(|| Error::msg(format!("worktree record {id} has no path")))?;
    let base = record
        .snapshot_id()
        .ok_or_else(|| Error::msg(format!("worktree record {id} has no valid snapshot")))?;
    let pending = record.extra.get("pending").and_then(|p| {
        Some(Pending {
            from: Hash::from_hex(p.get("from")?.as_str()?)?,
            to: Hash::from_hex(p.get("to")?.as_str()?)?,
        })
    });
    // A record without its root's device and inode (one written before they were, or cut
    // short by a crash in an older version) is repaired from the directory at its path; the
    // next save writes them.
    let (dev, ino) = match known_dev_ino(&record) {
        Some(known) => known,
        None => dev_ino(&path).ok_or_else(|| {
            Error::msg(format!(
                "worktree record {id} lacks its root's device and inode, and {} is not a \
                 directory to take them from",
                path.display()
            ))
        })?,
    };
    Ok(Worktree {
        dev,
        ino,
        stored: Some((id.clone(), record.clone())),
        id,
        path,
        base,
        pending,
        record,
    })
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
    let id = registry::worktree_id(&abs);
    if let Some(r) = registry::get(store, &id)? {
        match known_dev_ino(&r) {
            Some(known) if known == (dev, ino) => return from_record(id, r).map(Some),
            // The same directory on a filesystem mounted again with another device number
            // (see `presence`): take the new number.
            Some((_, known_ino)) if known_ino == ino => {
                let mut wt = from_record(id, r)?;
                wt.dev = dev;
                save(store, &mut wt, None)?;
                return Ok(Some(wt));
            }
            Some(_) => {}
            None => {
                // Repaired from this directory, and written back at once so that no later
                // reader (gc, `worktrees`) takes the record for one of a replaced worktree.
                let mut wt = from_record(id, r)?;
                save(store, &mut wt, None)?;
                return Ok(Some(wt));
            }
        }
    }
    for (old_id, r) in registry::list(store)? {
        if old_id == id || known_dev_ino(&r) != Some((dev, ino)) {
            continue;
        }
        if r.path_buf().and_then(|p| dev_ino(&p)) == Some((dev, ino)) {
            // The recorded path still is this very directory, device and inode alike (a bind
            // mount or hard-to-see alias): use it as it is.
            return from_record(old_id, r).map(Some);
        }
        // Moved by hand: re-key the record (and its stat cache) to the new path.
        let mut wt = from_record(old_id.clone(), r)?;
        let cache = load_cache(store, &wt);
        wt.id = id;
        wt.path = abs;
        save(store, &mut wt, Some(&cache))?;
        registry::remove(store, &old_id)?;
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
    let abs = canonical(dir)?;
    let (dev, ino) = dev_ino(&abs).ok_or_else(|| NotFound::Directory(dir.to_path_buf()))?;
    let id = registry::worktree_id(&abs);
    let found = registry::get(store, &id)?;
    let stored = found.clone().map(|r| (id.clone(), r));
    let record = match found {
        Some(r) => r,
        None => Record {
            version: RECORD_VERSION,
            path: None,
            path_hex: None,
            snapshot: String::new(),
            created_unix: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
            stat_cache: None,
            extra: Default::default(),
        },
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
    save(store, &mut wt, Some(cache))?;
    Ok(wt)
}

fn cache_name(id: &str) -> OsString {
    OsString::from(format!("{id}.stat"))
}

/// The worktree's stat cache; empty when missing or unreadable (everything is then rehashed).
pub fn load_cache(store: &Store, wt: &Worktree) -> StatCache {
    let name = cache_name(&wt.id);
    let Ok(fd) = openat(
        store.worktrees_dir(),
        &name,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    ) else {
        return StatCache::default();
    };
    let Ok(bytes) = cowtree_fs::read::read_whole(&fd) else {
        return StatCache::default();
    };
    StatCache::decode_owned(bytes).unwrap_or_default()
}

/// The [`StatCache::blobs_of`] of the worktree's stat cache, read from its trailer alone
/// (before the whole cache is loaded); `None` when it names none or cannot be read.
pub fn cache_blobs_of(store: &Store, wt: &Worktree) -> Option<Hash> {
    let fd = openat(
        store.worktrees_dir(),
        cache_name(&wt.id),
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .ok()?;
    let size = rustix::fs::fstat(&fd).ok()?.st_size as u64;
    let at = size.checked_sub(crate::cache::TRAILER as u64)?;
    let mut b = [0u8; crate::cache::TRAILER];
    let n = rustix::io::pread(&fd, &mut b, at).ok()?;
    if n != b.len() {
        return None;
    }
    crate::cache::decode_trailer(&b)
}

/// Writes the worktree's stat cache sidecar only (the record names it by convention, and
/// [`save`] sets the name).
pub fn write_cache(store: &Store, wt: &Worktree, cache: &StatCache) -> Result<()> {
    write_cache_bytes(store, wt, &cache.encode())
}

/// [`write_cache`] of an encoded cache that `write` writes piece by piece (see
/// [`crate::cache::encode_header`]), through a buffer.
pub fn write_cache_with(
    store: &Store,
    wt: &Worktree,
    write: impl FnOnce(&mut dyn io::Write) -> io::Result<()>,
) -> Result<()> {
    let res = (|| -> io::Result<()> {
        let mut f = cowtree_fs::dir::AtomicFile::create(store.worktrees_dir().as_fd(), 0o644)?;
        let mut w = io::BufWriter::with_capacity(1 << 20, f.file());
        write(&mut w)?;
        io::Write::flush(&mut w)?;
        drop(w);
        // No fsync: a cache lost in a crash decodes as nothing and is simply rebuilt.
        f.commit(&cache_name(&wt.id), false)
    })();
    res.map_err(|e| Error::io_at("write stat cache in", store.root().join("worktrees"), e))
}

fn write_cache_bytes(store: &Store, wt: &Worktree, bytes: &[u8]) -> Result<()> {
    // No fsync: a cache lost in a crash decodes as nothing and is simply rebuilt.
    write_atomic(store.worktrees_dir(), &cache_name(&wt.id), bytes, false)
        .map_err(|e| Error::io_at("write stat cache in", store.root().join("worktrees"), e))
}

/// Writes the stat cache (when given) and then the record: path, base, dev/ino, pending. The
/// record is not written again when it is what was last read or written under the same id.
pub fn save(store: &Store, wt: &mut Worktree, cache: Option<&StatCache>) -> Result<()> {
    let dir = store.worktrees_dir();
    if let Some(c) = cache {
        write_cache(store, wt, c)?;
    }
    wt.record.stat_cache = Some(format!("{}.stat", wt.id));
    match wt.path.to_str() {
        Some(s) => {
            wt.record.path = Some(s.to_string());
            wt.record.path_hex = None;
        }
        None => {
            use std::os::unix::ffi::OsStrExt;
            wt.record.path = None;
            wt.record.path_hex = Some(cowtree_store::interchange::to_hex(
                wt.path.as_os_str().as_bytes(),
            ));
        }
    }
    wt.record.snapshot = wt.base.to_hex();
    wt.record.extra.insert("dev".into(), json!(wt.dev));
    wt.record.extra.insert("ino".into(), json!(wt.ino));
    match &wt.pending {
        Some(p) => {
            wt.record.extra.insert(
                "pending".into(),
                json!({"op": "switch", "from": p.from.to_hex(), "to": p.to.to_hex()}),
            );
        }
        None => {
            wt.record.extra.remove("pending");
        }
    }
    if wt
        .stored
        .as_ref()
        .is_some_and(|(id, r)| *id == wt.id && *r == wt.record)
    {
        return Ok(());
    }
    let bytes = serde_json::to_vec(&wt.record).map_err(|e| Error::msg(e.to_string()))?;
    write_atomic(dir, OsStr::new(&wt.id), &bytes, true).map_err(|e| {
        Error::io_at(
            "write worktree record in",
            store.root().join("worktrees"),
            e,
        )
    })?;
    wt.stored = Some((wt.id.clone(), wt.record.clone()));
    Ok(())
}

/// An exclusive hold on a worktree (an flock on its root directory), so that two commands
/// that change the same worktree run one after the other. Released on drop.
#[derive(Debug)]
pub struct WorktreeLock {
    _dir: cowtree_fs::dir::Dir,
}

/// Takes the worktree's lock, waiting (with a message) while another cowtree holds it.
pub fn lock(wt: &Worktree) -> Result<WorktreeLock> {
    use rustix::fs::{FlockOperation, flock};
    let dir = (cowtree_fs::dir::Dir::open(&wt.path))
        .map_err(|e| Error::io_at("worktree", &wt.path, e))?;
    let ctx = |e: rustix::io::Errno| Error::io_at("lock worktree", &wt.path, e.into());
    match flock(&dir, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => {}
        Err(rustix::io::Errno::WOULDBLOCK) => {
            eprintln!(
                "cowtree: waiting for worktree {} (another cowtree is changing it)",
                wt.path.display()
            );
            loop {
                match flock(&dir, FlockOperation::LockExclusive) {
                    Ok(()) => break,
                    Err(rustix::io::Errno::INTR) => continue,
                    Err(e) => return Err(ctx(e)),
                }
            }
        }
        Err(e) => return Err(ctx(e)),
    }
    Ok(WorktreeLock { _dir: dir })
}

/// Takes the worktree's lock if nobody holds it.
pub fn try_lock(wt: &Worktree) -> Option<WorktreeLock> {
    use rustix::fs::{FlockOperation, flock};
    let dir = cowtree_fs::dir::Dir::open(&wt.path).ok()?;
    flock(&dir, FlockOperation::NonBlockingLockExclusive).ok()?;
    Some(WorktreeLock { _dir: dir })
}

/// Reads the record again (after waiting for the lock, another command may have changed it).
pub fn reload(store: &Store, wt: &mut Worktree) -> Result<()> {
    if let Some(r) = registry::get(store, &wt.id)? {
        *wt = from_record(wt.id.clone(), r)?;
    }
    Ok(())
}

/// Every record with where its worktree is now.
pub fn list(store: &Store) -> Result<Vec<(String, Record, Presence)>> {
    Ok(registry::list(store)?
        .into_iter()
        .map(|(id, r)| {
            let p = presence(&r);
            (id, r, p)
        })
        .collect())
}

/// Removes a worktree's record and stat cache.
pub fn forget(store: &Store, wt: &Worktree) -> Result<()> {
    registry::remove(store, &wt.id)
}

fn write_atomic(dir: impl AsFd, name: &OsStr, bytes: &[u8], sync: bool) -> io::Result<()> {
    cowtree_fs::dir::write_atomic(dir, name, bytes, 0o644, sync)
}
