//! Where a link pass goes: a new destination is built in a staging directory beside it and
//! renamed into place; an existing one is merged into as a transaction (its lock held, a
//! journal written, the new entries published at the end or all of them taken back).

use std::ffi::OsStr;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use cowtree_fs::creation::CreationMask;
use cowtree_fs::dir::Dir;

use crate::engine::Engine;
use crate::error::LinkError;
use crate::link_staging::{Staging, remove_stale};
use crate::options::OnExisting;
use crate::pass::{Outcome, Run};
use crate::plan::{Plan, TreeSrc};
use crate::report::LinkReport;
use crate::txn::{self, Journal};

/// DST's final name, its parent's path (`.` for a bare name) and the parent opened.
pub(crate) fn open_parent(dst: &Path) -> Result<(&OsStr, &Path, Dir), LinkError> {
    let dst_name = dst
        .file_name()
        .ok_or_else(|| LinkError::InvalidDestination(dst.to_path_buf()))?;
    let parent_path = match dst.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let parent = Dir::open(parent_path)
        .map_err(|e| LinkError::io("open the destination's parent directory", parent_path, e))?;
    Ok((dst_name, parent_path, parent))
}

/// Links `plan` (built from `trees` and listed files) to `dst`: into a staging directory
/// renamed into place when `dst` does not exist, as a merge transaction when it does.
pub(crate) fn run_plan(
    engine: &Engine,
    plan: &Plan,
    trees: &[Arc<TreeSrc>],
    dst: &Path,
    started: Instant,
) -> Result<LinkReport, LinkError> {
    let (dst_name, parent_path, parent) = open_parent(dst)?;
    if let Some(p) = &engine.opts.progress {
        p.scanned(&plan.totals);
    }
    // A destination that another run creates while this one builds it anew is merged into
    // when a merge was asked for (two installs into one new environment): the second pass
    // finds it existing. Bounded: each pass sees DST absent and then present.
    let mut passes = 0;
    let outcome = loop {
        passes += 1;
        let existing = parent
            .try_stat(dst_name)
            .map_err(|e| LinkError::io("stat", dst, e))?;
        let Some(st) = existing else {
            match link_new(engine, plan, trees, (&parent, parent_path, dst_name), dst) {
                Err(LinkError::DestinationExists(_))
                    if engine.opts.on_existing != OnExisting::Fail && passes < 3 =>
                {
                    continue;
                }
                result => break result?,
            }
        };
        let ft = cowtree_fs::sys::stat_file_type(&st);
        match engine.opts.on_existing {
            OnExisting::Fail => return Err(LinkError::DestinationExists(dst.to_path_buf())),
            _ if ft.is_symlink() => {
                return Err(LinkError::DestinationIsSymlink(dst.to_path_buf()));
            }
            _ if !ft.is_dir() => {
                return Err(LinkError::DestinationNotDirectory(dst.to_path_buf()));
            }
            _ => {}
        }
        let dst_root = parent
            .open_dir(dst_name)
            .map_err(|e| LinkError::io("open", dst, e))?;
        break merge(engine, plan, trees, &dst_root, dst)?;
    };
    let mut report = outcome
        .tally
        .into_report(dst.to_path_buf(), started.elapsed());
    report.skipped += plan.skipped;
    report.dropped = plan.dropped;
    report.collisions = plan.collisions.clone();
    report.record = outcome.record;
    Ok(report)
}

/// Links `plan` into a staging directory beside the new destination `dst` (`dst_name` in
/// `parent`, at `parent_path`) and renames it into place.
fn link_new(
    engine: &Engine,
    plan: &Plan,
    trees: &[Arc<TreeSrc>],
    (parent, parent_path, dst_name): (&Dir, &Path, &OsStr),
    dst: &Path,
) -> Result<Outcome, LinkError> {
    // Staging left by runs of this same destination that died; best effort.
    let _ = remove_stale(parent, dst_name);
    let staging = Staging::create(parent, parent_path, dst_name)?;
    // Read for each call: the caller may change its umask between calls. The mask only
    // saves reading modes back: where it cannot be had (any error of the statfs or the
    // ACL read), there is none and modes are read back.
    let mask =
        CreationMask::of_dir(&staging.dir, cowtree_fs::creation::process_umask()).unwrap_or(None);
    let run = Run::new(engine, plan, trees, &staging.dir, dst, None, mask);
    let outcome = run.link_all(true)?;
    if engine.opts.sync {
        staging
            .dir
            .sync_filesystem()
            .map_err(|e| LinkError::io("sync", &staging.path(), e))?;
    }
    // Past this point a cancel changes nothing: the new tree is in place.
    engine.check_cancel(dst)?;
    staging.commit(dst_name)?;
    if engine.opts.sync {
        parent
            .sync()
            .map_err(|e| LinkError::io("sync", parent_path, e))?;
    }
    Ok(outcome)
}

/// Merges `plan` into the existing destination `dst_root` (at `dst`) as a transaction,
/// holding the destination's lock (see [`lock_destination`]) from before it finishes an
/// interrupted merge until it has published.
fn merge(
    engine: &Engine,
    plan: &Plan,
    trees: &[Arc<TreeSrc>],
    dst_root: &Dir,
    dst: &Path,
) -> Result<Outcome, LinkError> {
    let _lock = lock_destination(engine, dst_root, dst)?;
    txn::recover(dst_root).map_err(|e| LinkError::io("finish an interrupted merge in", dst, e))?;
    let journal = Journal::create(dst_root, dst, engine.opts.sync)?;
    let result = Run::new(engine, plan, trees, dst_root, dst, Some(&journal), None).link_all(false);
    let outcome = match result {
        Ok(outcome) => outcome,
        Err(e) => return Err(journal.abort(e)),
    };
    if engine.opts.sync
        && let Err(e) = dst_root.sync_filesystem()
    {
        return Err(journal.abort(LinkError::io("sync", dst, e)));
    }
    journal.publish(&outcome.ops, &engine.cancel)?;
    if engine.opts.sync {
        dst_root
            .sync_filesystem()
            .map_err(|e| LinkError::io("sync", dst, e))?;
    }
    Ok(outcome)
}

/// Takes the lock of a merge into the existing destination `dir` (at `dst`): an exclusive
/// `flock` on the directory itself, held through `dir` until it is closed. Two merges into
/// one destination (two installs into one environment) so run one after the other, as a
/// package manager locks an environment; without the lock, both could find an entry absent
/// and the second's publication would fail on the first's. When another process holds it,
/// waits (telling [`crate::Progress::waiting`] once), or with [`crate::LinkOptions::wait`]
/// false fails at once with [`LinkError::DestinationBusy`]. A cancel ends the wait.
///
/// On Windows, where a directory cannot be locked, the lock is a named mutex of the
/// directory's volume and file id (`Global\cowtree-merge-<volume>-<id>`, so it follows the
/// directory, not its path, as `flock` does), held by this thread until the returned guard is
/// dropped, and released by the system if the process dies.
pub(crate) fn lock_destination(
    engine: &Engine,
    dir: &Dir,
    dst: &Path,
) -> Result<DestinationLock, LinkError> {
    #[cfg(windows)]
    let name = {
        let st = dir.stat_self().map_err(|e| LinkError::io("stat", dst, e))?;
        format!(
            "Global\\cowtree-merge-{:016x}-{:016x}",
            cowtree_fs::sys::stat_dev(&st),
            cowtree_fs::sys::stat_ino(&st)
        )
    };
    let mut pause = std::time::Duration::from_millis(2);
    let mut told = false;
    loop {
        #[cfg(unix)]
        let held = dir
            .try_lock_exclusive()
            .map_err(|e| LinkError::io("lock", dst, e))?
            .then_some(DestinationLock);
        #[cfg(windows)]
        let held = cowtree_fs::file_lock::try_lock_named(&name)
            .map_err(|e| LinkError::io("lock", dst, e))?;
        if let Some(held) = held {
            return Ok(held);
        }
        if !engine.opts.wait {
            return Err(LinkError::DestinationBusy(dst.to_path_buf()));
        }
        if !told {
            told = true;
            if let Some(p) = &engine.opts.progress {
                p.waiting(dst);
            }
        }
        engine.check_cancel(dst)?;
        // A poll rather than a blocking flock, so that a cancel is seen: at most 100 ms late.
        std::thread::sleep(pause);
        pause = (pause * 2).min(std::time::Duration::from_millis(100));
    }
}

/// A held [`lock_destination`]: on unix the lock is the directory's own `flock`, held
/// through its open handle, and this says only that it was taken.
#[cfg(unix)]
pub(crate) struct DestinationLock;

#[cfg(windows)]
pub(crate) type DestinationLock = cowtree_fs::file_lock::NamedLock;
