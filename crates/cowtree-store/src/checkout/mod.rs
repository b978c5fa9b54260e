//! Checkout: materialize a snapshot as a new directory tree.
//!
//! This is the raw materializer: it builds, registers and places the tree. To make a worktree
//! (with the store marker and the stat cache the other commands rely on), use
//! `cowtree_worktree::checkout::checkout`, which calls this and is what `cowtree checkout`
//! runs.
//!
//! The tree is built in a staging directory beside the destination, named
//! `.<name>.cowtree-checkout-<pid>-...` so a person who finds one after a crash can tell what it
//! is, then renamed into place: the destination is either absent (or the empty directory it
//! was) or complete. The checkout holds an `flock` on its staging directory while it runs; the
//! next checkout to the same destination removes staging whose lock it can take (left by a
//! checkout that was killed), and so does `gc`, which finds it through the registration the
//! checkout writes in the store before creating it ([`crate::dest_staging`]). Files are cloned
//! from their blobs in parallel with modes 0644/0755 by kind (never the blob's 0444), symlinks
//! are recreated with their exact targets. Every destination-side call is relative to a
//! directory fd opened beneath the staging root.
//!
//! The clone/copy decision follows [`cowtree_link::LinkState`] for the one (store device,
//! destination device) pair: the first unsupported clone moves the batch to copy, reported as a
//! fallback; `strict` makes that an error. A store on another filesystem than the destination
//! is detected before any work and reported through the warning callback (or refused under
//! `strict`).
//!
//! On Windows a checkout is always per file (btrfs subvolumes do not exist there): each file is
//! block-cloned (ReFS, Dev Drive) or copied from its blob through handles and flushed through
//! the handle that wrote it, then every directory is flushed (Windows lets only administrators
//! flush a volume). An executable entry is written as a plain file (Windows has no executable
//! bit; the manifest keeps what it was), a symlink as a file symlink with the manifest's
//! target, and a name Windows cannot hold (a colon, a device name, a trailing dot, bytes that
//! are no UTF-8) fails the checkout naming it, before the tree is placed. Restoring a
//! `snapshot --archive`'s owners, modes, attributes, hardlinks and special files
//! (`preserve`) is refused in one line before anything is made.

mod archive;
mod batch;
mod dest;
mod entry;
mod job;
mod options;
mod per_file;
mod place;
mod plan;
mod report;
mod stage;
mod subvolume;

use std::path::Path;
use std::time::Instant;

use cowtree_fs::progress::{Progress, Total};

use crate::error::Result;
use crate::hash::Hash;
use crate::store::Store;

use dest::Dest;
use job::{Job, Lazy};
use place::Placing;
use plan::Plan;
use stage::Stage;

/// How a checkout names its staging directory beside DST (defined with the registrations of
/// those directories, in [`crate::dest_staging`]).
pub use crate::dest_staging::STAGING;
pub use options::{Arriving, CheckoutMode, CheckoutOptions, Hooks, NextArrived, StillComing};
pub use report::{CheckoutReport, EntryStat, Written};
pub use subvolume::stats_of;

/// Checks out snapshot `id` into `dst`, which must not exist or be an empty directory, and
/// registers the worktree. `warn` receives warnings (the cross-device case) before work starts.
pub fn checkout(
    store: &Store,
    id: &Hash,
    dst: &Path,
    opts: CheckoutOptions,
    warn: &dyn Fn(&str),
) -> Result<CheckoutReport> {
    checkout_with_progress(store, id, dst, opts, warn, &Progress::default())
}

/// [`checkout`], counting into `progress` as it goes: the total (files and symlinks, bytes of
/// file data) once the snapshot is loaded, then one entry per file or symlink placed, with
/// the file's bytes.
pub fn checkout_with_progress(
    store: &Store,
    id: &Hash,
    dst: &Path,
    opts: CheckoutOptions,
    warn: &dyn Fn(&str),
    progress: &Progress,
) -> Result<CheckoutReport> {
    run(&Job::new(store, id, dst, opts, warn, progress)).map(|(report, _)| report)
}

/// [`checkout_with_progress`], also returning the stat of every entry it wrote
/// ([`Written`]), taken as it wrote them: one `fstat` of each file it has open anyway, an
/// `lstat` of each symlink, and one `fstat` of each directory.
///
/// `hooks.before_placing` sees those stats (and the manifest) once the tree is complete, while
/// the sync that makes it durable runs, and before it is renamed into place (and so before
/// anyone else can reach it by the destination's path): a stat cache builds its records there,
/// on a core the sync leaves idle, and waits for the clock to pass the times it records.
/// `hooks.record` gives the bytes of the worktree's whole record, which the checkout registers
/// in place of a bare [`Registration`](crate::worktree_records::Registration), so that the caller does not write (and sync) the
/// record a second time.
pub fn checkout_recording(
    store: &Store,
    id: &Hash,
    dst: &Path,
    opts: CheckoutOptions,
    warn: &dyn Fn(&str),
    progress: &Progress,
    hooks: &Hooks<'_>,
) -> Result<(CheckoutReport, Written)> {
    run(&Job {
        hooks: Some(hooks),
        ..Job::new(store, id, dst, opts, warn, progress)
    })
}

/// [`checkout_recording`] of a snapshot that is still arriving in the store ([`Arriving`]:
/// a pull running beside it), per file: each file is written as soon as its blob has
/// arrived, and the tree is placed once the snapshot is recorded. `hooks`, when given, as
/// [`checkout_recording`] takes them.
#[allow(clippy::too_many_arguments)]
pub fn checkout_arriving(
    store: &Store,
    id: &Hash,
    dst: &Path,
    opts: CheckoutOptions,
    warn: &dyn Fn(&str),
    progress: &Progress,
    hooks: Option<&Hooks<'_>>,
    arriving: &Arriving<'_>,
) -> Result<(CheckoutReport, Written)> {
    run(&Job {
        hooks,
        arriving: Some(arriving),
        ..Job::new(store, id, dst, opts, warn, progress)
    })
}
/// A checkout, step by step: resolve DST, plan how the tree is made, register the staging
/// beside DST, make the tree there, place it (durable, registered, renamed to DST); after a
/// failure before it is placed, take back what was made.
fn run(job: &Job<'_>) -> Result<(CheckoutReport, Written)> {
    let started = Instant::now();
    let timing = std::env::var_os("COWTREE_TIMING").is_some();
    let lap = |what: &str| {
        if timing {
            eprintln!("timing: {what} {:?}", started.elapsed());
        }
    };
    let _lock = job.store.lock_shared()?;
    let dest = Dest::resolve(job.dst)?;
    let cross_device = job.cross_device(&dest)?;
    lap("cross-device checked");
    let plan = job.plan(&dest, cross_device)?;
    lap("planned");
    let mut manifest = Lazy::new(job);
    count_total(job, &plan, &mut manifest)?;
    lap("loaded");
    // A snapshot's root is inode 256: registered with it, the staging is removable by gc from
    // the moment the snapshot exists (see `crate::dest_staging::register_expecting`).
    #[cfg(unix)]
    let expect =
        matches!(plan, Plan::Subvolume(_)).then_some((0, cowtree_fs::sys::SUBVOLUME_ROOT_INO));
    // (No subvolumes on Windows: see `plan.rs`.)
    #[cfg(windows)]
    let expect = None;
    let mut stage = Stage::begin(job.store, &dest, expect)?;
    lap("registered staging");
    let mut placing = Placing::default();
    let result = make(job, &dest, &mut stage, &mut manifest, plan).and_then(|mut made| {
        lap("made");
        // A snapshot still arriving: the worktree's base recorded before the worktree is.
        if let Some(arriving) = job.arriving {
            (arriving.recorded)()?;
            lap("snapshot recorded");
        }
        let asked = job.opts.preserve;
        made.0.not_recorded = asked;
        if let Some(staging) = stage.made.as_ref()
            && let Some(r) = archive::restore(job.store, job.id, &staging.dir, &stage.path, asked)?
        {
            made.0.archive = !r.restored.is_none();
            made.0.recorded = Some(r.recorded);
            made.0.restored = r.restored;
            made.0.not_recorded = asked.without(r.recorded);
            made.0.special_not_made = r.special_not_made;
            made.0.not_kept = r.not_kept;
            // The restore changed what it gave owners, modes and attributes to (their ctime
            // at least): the stat cache is made of the tree as it is now, never of the stats
            // taken as it was written (status would read every such file again, each time,
            // and fail on one its owner may not read), nor shared with the store's tree.
            if made.0.archive && job.hooks.is_some() {
                let now = stats_of(&staging.dir, &stage.path, manifest.get()?)?;
                made.1.stats = now.stats;
                made.1.dirs = now.dirs;
                made.1.from_tree = false;
            }
            // (A per-file tree is synced when it is placed; a snapshot was committed before
            // this changed it.)
            if made.0.archive && made.0.method != cowtree_fs::whole_tree::Method::PerFile {
                (staging.dir.sync_filesystem()).map_err(|e| {
                    crate::error::Error::io_at("sync the checkout in", &stage.path, e)
                })?;
            }
            lap("archive restored");
        }
        job.place(&dest, &mut stage, manifest.take(), made, &mut placing)
    });
    lap("placed");
    let (mut report, written) = match result {
        Ok(r) => r,
        Err(e) if placing.placed => return Err(e),
        Err(e) => {
            undo(job, stage, placing);
            return Err(e);
        }
    };
    drop(stage);
    report.cross_device = cross_device;
    report.worktree_id = placing.registered.unwrap_or_default();
    report.path = dest.abs;
    report.elapsed_ms = started.elapsed().as_millis() as u64;
    Ok((report, written))
}

/// Sets the progress's total: from the counts the store keeps beside the tree a snapshot of
/// it will give (which then needs no manifest: only that the snapshot exists), else from the
/// manifest, read now.
fn count_total(job: &Job<'_>, plan: &Plan, manifest: &mut Lazy<'_>) -> Result<()> {
    let kept = match plan {
        Plan::Subvolume(Some(_))
            if job.hooks.is_none() || crate::trees::cache(job.store, job.id).is_some() =>
        {
            crate::trees::counts(job.store, job.id)
        }
        _ => None,
    };
    match kept {
        Some(c) if job.store.has_snapshot(job.id)? => job.progress.set_total(Total {
            entries: c.files + c.symlinks,
            bytes: Some(c.bytes),
        }),
        _ => {
            manifest.get()?;
        }
    }
    Ok(())
}

/// Makes the tree in staging by the method `plan` chose: where the whole-tree method turns
/// out not to apply, per file, with the reason.
fn make<'s>(
    job: &Job<'_>,
    dest: &'s Dest,
    stage: &mut Stage<'s>,
    manifest: &mut Lazy<'_>,
    plan: Plan,
) -> Result<(CheckoutReport, Written)> {
    let (reason, btrfs) = match plan {
        Plan::PerFile { reason, btrfs } => (reason, btrfs),
        Plan::Subvolume(tree) => match job.subvolume(dest, stage, manifest, tree)? {
            Ok(made) => return Ok(made),
            Err(reason) => (reason, true),
        },
    };
    let (mut report, written) = job.per_file(dest, stage, manifest.get()?, btrfs)?;
    report.reason = Some(reason);
    Ok((report, written))
}

/// After a failure before the tree was placed: the staging directory removed with its
/// registration, and the worktree's record when it was made (each warned about when it
/// cannot be).
fn undo(job: &Job<'_>, stage: Stage<'_>, placing: Placing) {
    stage.abandon(job.warn);
    if let Some(wid) = placing.registered
        && let Err(cleanup) = crate::worktree_records::remove(job.store, &wid)
    {
        (job.warn)(&format!(
            "warning: could not remove the record of the failed checkout: {cleanup}"
        ));
    }
}
