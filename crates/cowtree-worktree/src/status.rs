//! Status, registration after checkout, and removal of a worktree.

use std::path::Path;

use cowtree_fs::dir::Dir;
use cowtree_fs::progress::Progress;
use cowtree_store::{Hash, Store};

use crate::base::Base;
use crate::cache::StatCache;
use crate::error::{Error, Result};
use crate::registry::{self, Worktree};
use crate::scan::{self, Mode, Scan, show_change};

/// The refusal for a worktree (of `store`) whose switch was interrupted.
pub fn pending_error(store: &Store, wt: &Worktree) -> Option<Error> {
    wt.pending.map(|p| Error::Interrupted {
        store: store.root().to_path_buf(),
        worktree: wt.path.clone(),
        to: p.to,
    })
}

/// Compares the worktree with its base snapshot. Files whose stat matches the stat cache
/// (and are not racy) are not read. When some files had to be read, or directories were
/// listed that can now have a record (after a switch or reset changed them), the stat cache
/// is rewritten with what was learnt, so the next status does not read or list them again.
pub fn status(store: &Store, wt: &mut Worktree) -> Result<Scan> {
    status_with_progress(store, wt, &Progress::default())
}

/// [`status`], counting into `progress` each file, symlink or other non-directory entry
/// found in the worktree and the bytes of the files read (see
/// [`scan::scan_with_progress`]); no total is set.
pub fn status_with_progress(store: &Store, wt: &mut Worktree, progress: &Progress) -> Result<Scan> {
    if let Some(e) = pending_error(store, wt) {
        return Err(e);
    }
    let t = std::time::Instant::now();
    let (base, cache) = rayon::join(
        || Base::load(store, &wt.base),
        || registry::load_cache(store, wt),
    );
    let base = base?;
    let t_loaded = t.elapsed();
    let scan = scan::scan_with_progress(&wt.path, &base, &cache, Mode::Status, progress)?;
    if std::env::var_os("COWTREE_TIMING").is_some() {
        eprintln!(
            "timing: manifest and cache {:?}, walk {:?}, hashed {}",
            t_loaded,
            t.elapsed() - t_loaded,
            scan.hashed
        );
    }
    if scan.hashed > 0 || scan.new_dir_recs > 0 {
        // Only when no switch, reset or snapshot is changing the worktree, and the record is
        // still the one this status compared with: the refresh must never undo their record.
        if let Some(_held) = registry::try_lock(store, wt) {
            let mut now = wt.clone();
            registry::reload(store, &mut now)?;
            if now.base == wt.base && now.pending.is_none() {
                // The refreshed cache keeps the old one's time when that is later (a switch
                // or reset dates its cache just after its own writes, up to the fine
                // granularity ahead): with this status's start instead, the files written
                // in the last moments before it would turn racy and be read again by the
                // next command. The records this status learnt are smudged where racy
                // against its start, so that the later time does not make them trusted.
                // Written as it is merged: the old cache and the new one are never both
                // in memory (on a worktree of 2,000,000 files, a quarter of a gigabyte each).
                registry::write_cache_with(store, &now, |w| {
                    cache.write_merged(
                        w,
                        scan.started_ns.max(cache.written_ns),
                        |_| true,
                        crate::cache::smudge_racy(scan.started_ns, scan.recs.clone()),
                        |_| true,
                        crate::cache::smudge_racy(scan.started_ns, scan.dir_recs.clone()),
                    )
                })?;
                registry::save(store, &mut now, None)?;
            }
        }
    }
    Ok(scan)
}

/// Registers a worktree that was just checked out from `base` at `dir`: records its root's
/// device and inode and a stat cache of what was written (files of the base's size and kind
/// take the base's hashes without being read).
pub fn adopt(store: &Store, dir: &Path, base: &Hash) -> Result<Worktree> {
    let m = Base::load(store, base)?;
    // Files written in the last tick before the cache's time would be racy (reread by every
    // status until a refresh); waiting out the granularity once makes none of them racy.
    std::thread::sleep(std::time::Duration::from_nanos(
        crate::cache::FINE_GRANULARITY_NS as u64 + 5_000_000,
    ));
    let scan = scan::scan(dir, &m, &StatCache::default(), Mode::Adopt)?;
    // Every file record is of a file holding the base's content: the base's blobs hold it.
    let cache =
        StatCache::with_dirs(scan.started_ns, scan.recs, scan.dir_recs).with_blobs_of(*base);
    registry::register(store, dir, base, &cache)
}

/// Deletes the worktree directory and its record. Refuses when it has changes against its
/// base (listing them), unless `force`. A worktree already gone only loses its record.
pub fn remove(store: &Store, wt: &mut Worktree, force: bool) -> Result<()> {
    remove_reporting(store, wt, force).map(|_| ())
}

/// [`remove`], saying how the tree was deleted: `Some` when it was a btrfs subvolume (a
/// checkout on btrfs makes one), deleted in one ioctl where the kernel permits, else by
/// removing its entries; `None` for a plain directory, or a worktree already gone.
pub fn remove_reporting(
    store: &Store,
    wt: &mut Worktree,
    force: bool,
) -> Result<Option<cowtree_fs::subvolume::Deleted>> {
    let mut how = None;
    if wt.path.symlink_metadata().is_ok() {
        let _held = registry::lock(store, wt)?;
        registry::reload(store, wt)?;
        if !force {
            if let Some(e) = pending_error(store, wt) {
                return Err(e);
            }
            let s = status(store, wt)?;
            if s.dirty() {
                return Err(Error::Dirty {
                    worktree: wt.path.clone(),
                    changes: s.changes.iter().take(20).map(show_change).collect(),
                    total: s.changes.len(),
                });
            }
        }
        let name = wt
            .path
            .file_name()
            .ok_or_else(|| Error::msg(format!("{}: cannot remove", wt.path.display())))?;
        let parent = wt.path.parent().unwrap_or(Path::new("/"));
        let pdir = Dir::open(parent).map_err(Error::Io)?;
        how = remove_tree_or_subvolume(&pdir, parent, name, &wt.path)?;
        // The removal durable before the record goes: a power loss must not leave a worktree
        // on disk that no record pins.
        sync_removal(&pdir).map_err(|e| Error::io_at("sync", parent, e))?;
    }
    registry::forget(store, wt)?;
    Ok(how)
}

/// Makes the removal of an entry of `parent` durable: a sync of its filesystem (the tree's
/// entries went with it).
#[cfg(unix)]
fn sync_removal(parent: &Dir) -> std::io::Result<()> {
    parent.sync_filesystem()
}

/// Makes the removal of an entry of `parent` durable: a flush of `parent` (Windows lets only
/// administrators flush a volume; the entry's name gone from its parent is what must last).
#[cfg(windows)]
fn sync_removal(parent: &Dir) -> std::io::Result<()> {
    parent.sync()
}

/// Removes the directory `name` of `parent` (at `parent_path`; `path` names it in errors):
/// a btrfs subvolume's root with [`cowtree_fs::subvolume::delete`] (O(1) where the kernel
/// permits, else its entries removed; nested subvolumes too), anything else entry by entry.
#[cfg(unix)]
fn remove_tree_or_subvolume(
    parent: &Dir,
    parent_path: &Path,
    name: &std::ffi::OsStr,
    path: &Path,
) -> Result<Option<cowtree_fs::subvolume::Deleted>> {
    use cowtree_fs::subvolume::{self, At};
    let io = |e: std::io::Error| Error::io_at("remove", path, e);
    // Not a directory (or gone): removed as it is.
    let root = parent.open_dir(name).ok();
    let is_subvolume = match &root {
        Some(d) => subvolume::is_root(At::new(d, path)).map_err(|e| io(e.into()))?,
        None => false,
    };
    if !is_subvolume {
        parent.remove_tree(name).map_err(io)?;
        return Ok(None);
    }
    subvolume::delete(At::new(parent, parent_path), name)
        .map(Some)
        .map_err(|e| io(e.into()))
}

/// Removes the directory `name` of `parent` (`path` names it in errors), entry by entry:
/// Windows has no subvolumes.
#[cfg(windows)]
fn remove_tree_or_subvolume(
    parent: &Dir,
    _parent_path: &Path,
    name: &std::ffi::OsStr,
    path: &Path,
) -> Result<Option<cowtree_fs::subvolume::Deleted>> {
    parent
        .remove_tree(name)
        .map_err(|e| Error::io_at("remove", path, e))?;
    Ok(None)
}
