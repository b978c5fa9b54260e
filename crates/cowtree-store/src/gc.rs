//! Garbage collection: blobs no snapshot references, staging nobody holds (in the store's
//! `tmp/`, and beside destinations of checkouts that were killed), registry records of
//! worktrees that no longer exist.
//!
//! gc takes the store lock exclusively, so it waits for every running snapshot and checkout
//! (they hold it shared): a blob that a snapshot in progress has placed but not yet recorded in
//! a manifest is never seen by gc. A manifest that does not decode stops gc before it deletes
//! anything, since its blobs cannot be known.

use std::collections::HashSet;
use std::path::Path;
use std::time::{Duration, SystemTime};

use cowtree_fs::progress::Progress;
#[cfg(unix)]
use rustix::fs::{FlockOperation, flock};
#[cfg(unix)]
use rustix::io::Errno;

use crate::error::{Error, Result};
use crate::hash::Hash;
use crate::store::Store;

/// Staging entries that are not lockable directories are garbage once this old.
pub const STAGING_GRACE: Duration = Duration::from_secs(3600);

/// What gc removed (or, with `dry_run`, would remove).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcReport {
    /// Unreferenced blobs.
    pub blobs_removed: u64,
    /// Their total size.
    pub bytes_freed: u64,
    /// Blobs still referenced.
    pub blobs_kept: u64,
    /// Stale staging entries under `tmp/`, and temporary files a killed writer (or a power
    /// loss) left in `snapshots/`, `refs/` and `worktrees/`.
    pub staging_removed: u64,
    /// Staging directories beside destinations that killed checkouts left (see
    /// [`crate::dest_staging`]), removed (or, with `dry_run`, to remove); each also counts
    /// in `staging_removed`.
    pub staging_beside: Vec<std::path::PathBuf>,
    /// Staging directories beside destinations that could not be looked at or removed, with
    /// the reason; their registrations are kept for the next gc.
    pub staging_kept: Vec<(std::path::PathBuf, String)>,
    /// Registry records whose worktree no longer exists.
    pub worktrees_pruned: u64,
    /// Tree subvolumes removed (or, with `dry_run`, to remove): of snapshots that are gone,
    /// and those a killed command left half made ([`crate::trees::collect`]); with how each
    /// was deleted (`ioctl`, `removed-tree`).
    pub trees_removed: Vec<(std::path::PathBuf, &'static str)>,
    /// Nothing was deleted.
    pub dry_run: bool,
}

/// Runs gc.
pub fn gc(store: &Store, dry_run: bool) -> Result<GcReport> {
    gc_with(store, dry_run, &mut |_| Ok(0), &Progress::default())
}

/// [`gc`], first running `prune` under the same exclusive lock (so that no checkout is
/// between registering a worktree and renaming it into place): the caller's pass over the
/// registry (e.g. dropping records whose path now holds another directory), which returns
/// how many records it dropped (or, with `dry_run`, would drop); they count as pruned.
/// `progress` counts one entry per blob looked at, with the bytes of those removed; the total
/// is not known in advance.
pub fn gc_with(
    store: &Store,
    dry_run: bool,
    prune: &mut dyn FnMut(&Store) -> Result<u64>,
    progress: &Progress,
) -> Result<GcReport> {
    let _lock = store.lock_exclusive()?;
    let mut report = GcReport {
        dry_run,
        ..Default::default()
    };
    report.worktrees_pruned += prune(store)?;
    let snapshots = store.snapshot_ids()?;
    let referenced = referenced_blobs(store, &snapshots)?;
    remove_unreferenced_blobs(store, &referenced, dry_run, progress, &mut report)?;
    let now = SystemTime::now();
    remove_stale_staging(store, now, dry_run, &mut report)?;
    remove_dead_trees(store, snapshots, dry_run, &mut report)?;
    remove_staging_beside(store, dry_run, &mut report)?;
    remove_snapshot_temporaries(store, dry_run, &mut report)?;
    remove_unlocked_temporaries(store, now, dry_run, &mut report)?;
    prune_gone_worktrees(store, dry_run, &mut report)?;
    if !dry_run
        && (report.blobs_removed
            + report.staging_removed
            + report.worktrees_pruned
            + report.trees_removed.len() as u64)
            > 0
    {
        // What gc reports as removed stays removed after a power loss.
        store.sync_filesystem()?;
    }
    Ok(report)
}

/// An I/O error at `p`, with no operation named.
fn at(p: &Path, e: std::io::Error) -> Error {
    Error::io_at("", p, e)
}

/// Every blob some snapshot references.
fn referenced_blobs(store: &Store, snapshots: &[Hash]) -> Result<HashSet<Hash>> {
    let mut referenced: HashSet<Hash> = HashSet::new();
    for id in snapshots {
        // Each entry's blob as the manifest is read: no entry is held.
        store
            .each_entry(id, |e| referenced.extend(e.hash()))
            .map_err(|e| Error::Context {
                context: "gc stopped before deleting anything",
                source: Box::new(e),
            })?;
    }
    Ok(referenced)
}

/// Removes (or counts) the blobs not in `referenced`.
fn remove_unreferenced_blobs(
    store: &Store,
    referenced: &HashSet<Hash>,
    dry_run: bool,
    progress: &Progress,
    report: &mut GcReport,
) -> Result<()> {
    // The fan-out directories blobs were removed from: flushed on Windows, where the store's
    // volume flush may be refused (see `Store::sync_filesystem`).
    #[cfg(windows)]
    let mut touched: std::collections::BTreeSet<String> = std::collections::BTreeSet::new();
    store.each_blob_file(|fan_dir, fan_path, prefix, name| {
        let Some(hash) = name
            .to_str()
            .and_then(|rest| Hash::from_hex(&format!("{prefix}{rest}")))
        else {
            return Ok(());
        };
        if referenced.contains(&hash) {
            progress.add(1, 0);
            report.blobs_kept += 1;
            return Ok(());
        }
        let size = match fan_dir
            .try_stat(&name)
            .map_err(|e| at(&fan_path.join(&name), e))?
        {
            Some(st) => cowtree_fs::sys::stat_size(&st),
            None => return Ok(()),
        };
        if !dry_run {
            remove_blob(fan_dir, &name)
                .map_err(|e| Error::io_at("remove", store.blob_path(&hash), e))?;
            #[cfg(windows)]
            touched.insert(prefix.to_string());
        }
        progress.add(1, size);
        report.blobs_removed += 1;
        report.bytes_freed += size;
        Ok(())
    })?;
    #[cfg(windows)]
    for prefix in touched {
        let path = store.root().join("blobs").join(&prefix);
        (store.blobs().open_dir(std::ffi::OsStr::new(&prefix)))
            .and_then(|d| d.sync())
            .map_err(|e| Error::io_at("sync", &path, e))?;
    }
    Ok(())
}

/// Removes the blob `name` from its fan-out directory.
#[cfg(unix)]
fn remove_blob(fan_dir: &cowtree_fs::dir::Dir, name: &std::ffi::OsStr) -> std::io::Result<()> {
    fan_dir.remove_file(name)
}

/// Removes the blob `name` from its fan-out directory: a blob is read-only
/// (`FILE_ATTRIBUTE_READONLY`), which stops a plain removal on Windows, and `remove_tree`
/// clears it first.
#[cfg(windows)]
fn remove_blob(fan_dir: &cowtree_fs::dir::Dir, name: &std::ffi::OsStr) -> std::io::Result<()> {
    match fan_dir.try_stat(name)? {
        Some(st) if cowtree_fs::sys::stat_file_type(&st).is_dir() => Err(std::io::Error::new(
            std::io::ErrorKind::IsADirectory,
            "a directory where a blob is expected",
        )),
        Some(_) => fan_dir.remove_tree(name),
        None => Err(std::io::ErrorKind::NotFound.into()),
    }
}

/// Whether the staging directory `name` in `tmp/` is free, held by no live writer: each
/// holds an `flock` on its own until it finishes.
#[cfg(unix)]
fn staging_free(tmp: &cowtree_fs::dir::Dir, name: &std::ffi::OsStr) -> std::io::Result<bool> {
    let d = tmp.open_dir(name)?;
    match flock(&d, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(true),
        Err(Errno::WOULDBLOCK) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Whether the staging directory `name` in `tmp/` is free, held by no live writer: on
/// Windows each keeps its own handle on it open until it finishes, so it is free when it
/// opens for this handle alone (`Dir::open_dir_exclusive`).
#[cfg(windows)]
fn staging_free(tmp: &cowtree_fs::dir::Dir, name: &std::ffi::OsStr) -> std::io::Result<bool> {
    Ok(tmp.open_dir_exclusive(name)?.is_some())
}

/// Removes (or counts) the entries of `tmp/` nobody holds: directories whose writer's flock is
/// free, other entries older than [`STAGING_GRACE`].
fn remove_stale_staging(
    store: &Store,
    now: SystemTime,
    dry_run: bool,
    report: &mut GcReport,
) -> Result<()> {
    let tmp_path = store.root().join("tmp");
    for t in store.tmp_dir().entries().map_err(|e| at(&tmp_path, e))? {
        let Some(st) = store
            .tmp_dir()
            .try_stat(&t.name)
            .map_err(|e| at(&tmp_path.join(&t.name), e))?
        else {
            continue;
        };
        let stale = if cowtree_fs::sys::stat_file_type(&st).is_dir() {
            // Each writer holds an flock on its own staging directory until it finishes.
            staging_free(store.tmp_dir(), &t.name).map_err(|e| at(&tmp_path.join(&t.name), e))?
        } else {
            now.duration_since(whole_seconds(crate::util::mtime(&st)))
                .unwrap_or_default()
                > STAGING_GRACE
        };
        if stale {
            if !dry_run {
                store
                    .tmp_dir()
                    .remove_tree(&t.name)
                    .map_err(|e| Error::io_at("remove staging", tmp_path.join(&t.name), e))?;
            }
            report.staging_removed += 1;
        }
    }
    Ok(())
}

/// Tree subvolumes of snapshots that are gone (an `rm` cut short), and those a command
/// killed while making one left in `trees/`.
fn remove_dead_trees(
    store: &Store,
    snapshots: Vec<Hash>,
    dry_run: bool,
    report: &mut GcReport,
) -> Result<()> {
    let live: HashSet<Hash> = snapshots.into_iter().collect();
    let trees = crate::trees::collect(store, &live, dry_run)?;
    report.staging_removed += trees.caches_removed;
    report.trees_removed = trees.removed;
    Ok(())
}

/// Staging directories that killed checkouts left beside their destinations.
fn remove_staging_beside(store: &Store, dry_run: bool, report: &mut GcReport) -> Result<()> {
    for outcome in crate::dest_staging::collect(store, dry_run, STAGING_GRACE)? {
        match outcome {
            crate::dest_staging::Outcome::Removed(path) => {
                report.staging_removed += 1;
                report.staging_beside.push(path);
            }
            crate::dest_staging::Outcome::Kept { path, error } => {
                report.staging_kept.push((path, error));
            }
            _ => {}
        }
    }
    Ok(())
}

/// A manifest is written to `snapshots/.tmp-*` and renamed to its id; a writer killed
/// before the rename leaves the temporary file. Every writer holds the store lock shared,
/// and gc holds it exclusively, so any such file now belongs to a writer that is gone.
fn remove_snapshot_temporaries(store: &Store, dry_run: bool, report: &mut GcReport) -> Result<()> {
    let snaps_path = store.root().join("snapshots");
    for t in store
        .snapshots_dir()
        .entries()
        .map_err(|e| at(&snaps_path, e))?
    {
        if !t.name.as_encoded_bytes().starts_with(b".tmp-") || !t.file_type.is_file() {
            continue;
        }
        if !dry_run {
            store
                .snapshots_dir()
                .remove_file(&t.name)
                .map_err(|e| at(&snaps_path.join(&t.name), e))?;
        }
        report.staging_removed += 1;
    }
    Ok(())
}

/// `refs/` and `worktrees/` are written without the store lock (tag, status), so a
/// temporary file there may belong to a live writer: it is garbage once it predates this
/// boot (left by a power loss) or is older than the grace period (left by a kill).
fn remove_unlocked_temporaries(
    store: &Store,
    now: SystemTime,
    dry_run: bool,
    report: &mut GcReport,
) -> Result<()> {
    let boot = boot_time();
    for (sub_path, dir) in [
        (store.root().join("refs"), store.refs_dir()),
        (store.worktrees_path().to_path_buf(), store.worktrees_dir()),
    ] {
        for t in dir.entries().map_err(|e| at(&sub_path, e))? {
            if !t.name.as_encoded_bytes().starts_with(b".tmp-") {
                continue;
            }
            let Some(st) = dir
                .try_stat(&t.name)
                .map_err(|e| at(&sub_path.join(&t.name), e))?
            else {
                continue;
            };
            if !cowtree_fs::sys::stat_file_type(&st).is_file() {
                continue;
            }
            let mtime = whole_seconds(crate::util::mtime(&st));
            let stale = boot.is_some_and(|b| mtime < b)
                || now.duration_since(mtime).unwrap_or_default() > STAGING_GRACE;
            if !stale {
                continue;
            }
            if !dry_run {
                dir.remove_file(&t.name)
                    .map_err(|e| at(&sub_path.join(&t.name), e))?;
            }
            report.staging_removed += 1;
        }
    }
    Ok(())
}

/// Drops the registry records of worktrees whose path is gone.
fn prune_gone_worktrees(store: &Store, dry_run: bool, report: &mut GcReport) -> Result<()> {
    for pin in crate::worktree_records::pins(store)? {
        // Only a path that is really gone un-pins the worktree's snapshot: an error such as
        // EACCES or EIO says nothing about whether the worktree still exists.
        let gone = pin.path.is_none_or(|p| {
            p.symlink_metadata()
                .is_err_and(|e| e.kind() == std::io::ErrorKind::NotFound)
        });
        if gone {
            if !dry_run {
                crate::worktree_records::remove(store, &pin.id)?;
            }
            report.worktrees_pruned += 1;
        }
    }
    Ok(())
}

/// What [`remove_unused`] removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Removed {
    /// Blobs removed.
    pub blobs: u64,
    /// Their bytes.
    pub bytes: u64,
}

/// Removes those of `blobs` that no snapshot names: for a writer that placed them since
/// `since` and then failed (a pull that filled the disk), and that holds no lock on the
/// store now. Only when the store lock can be taken exclusively at once (no snapshot,
/// checkout or gc is running); `None` when it cannot (the blobs stay for gc). A snapshot that
/// names one of them was recorded after it was placed, so only manifests written since
/// `since` (less a margin for the clock's granularity) are read.
pub fn remove_unused(store: &Store, blobs: &[Hash], since: SystemTime) -> Result<Option<Removed>> {
    let Some(_lock) = store.try_lock_exclusive()? else {
        return Ok(None);
    };
    let since = since - Duration::from_secs(2);
    let snaps_path = store.root().join("snapshots");
    let mut referenced: HashSet<Hash> = HashSet::new();
    for id in store.snapshot_ids()? {
        let name = std::ffi::OsString::from(id.to_hex());
        let Some(st) = store
            .snapshots_dir()
            .try_stat(&name)
            .map_err(|e| Error::io_at("", snaps_path.join(&name), e))?
        else {
            continue;
        };
        let mtime = crate::util::mtime(&st).max(SystemTime::UNIX_EPOCH);
        if mtime < since {
            continue;
        }
        store.each_entry(&id, |e| referenced.extend(e.hash()))?;
    }
    let mut removed = Removed::default();
    for h in blobs.iter().filter(|h| !referenced.contains(h)) {
        if let Some(bytes) = remove_blob_by_hash(store, h)? {
            removed.blobs += 1;
            removed.bytes += bytes;
        }
    }
    if removed.blobs > 0 {
        store.sync_filesystem()?;
    }
    Ok(Some(removed))
}

/// Removes the blob `h`; its size, or `None` when it was not there.
#[cfg(unix)]
fn remove_blob_by_hash(store: &Store, h: &Hash) -> Result<Option<u64>> {
    let rel = Store::blob_rel(h);
    let st = match rustix::fs::statat(store.blobs(), &rel, rustix::fs::AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => st,
        Err(Errno::NOENT) => return Ok(None),
        Err(e) => return Err(Error::io_at("", store.blob_path(h), e.into())),
    };
    rustix::fs::unlinkat(store.blobs(), &rel, rustix::fs::AtFlags::empty())
        .map_err(|e| Error::io_at("remove", store.blob_path(h), e.into()))?;
    Ok(Some(st.st_size as u64))
}

/// Removes the blob `h` (relative to its fan-out directory: Windows opens one component at a
/// time); its size, or `None` when it was not there.
#[cfg(windows)]
fn remove_blob_by_hash(store: &Store, h: &Hash) -> Result<Option<u64>> {
    let at = |e| Error::io_at("", store.blob_path(h), e);
    let (fan_dir, name) = match store.blob_fanout(h) {
        Ok(found) => found,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(at(e)),
    };
    let Some(st) = fan_dir.try_stat(&name).map_err(at)? else {
        return Ok(None);
    };
    remove_blob(&fan_dir, &name).map_err(|e| Error::io_at("remove", store.blob_path(h), e))?;
    // Durable here: the store's volume flush may be refused (see `Store::sync_filesystem`).
    fan_dir.sync().map_err(at)?;
    Ok(Some(cowtree_fs::sys::stat_size(&st)))
}

/// A time cut to its whole seconds (not before the epoch), as gc compares the ages of
/// temporary files.
fn whole_seconds(t: SystemTime) -> SystemTime {
    let secs = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
}

/// When the system booted, from `/proc/stat` (`btime`); `None` where it cannot be read
/// (Windows: there the grace period alone tells an old temporary file).
fn boot_time() -> Option<SystemTime> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let secs: u64 = stat
        .lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()?;
    Some(SystemTime::UNIX_EPOCH + Duration::from_secs(secs))
}
