//! The per-file way: an empty staging directory (a subvolume on btrfs), every entry of the
//! snapshot written into it from its blob by the checkout pool's workers, a directory's
//! entries in chunks ([`Tree`]), each entry as [`super::entry`] writes it.

use std::collections::HashMap;
use std::collections::hash_map::Entry as Slot;
#[cfg(unix)]
use std::ffi::OsStr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};

#[cfg(unix)]
use cowtree_fs::CopyRange;
use cowtree_fs::dir::{Dir, Stat};
use cowtree_fs::progress::Progress;
use cowtree_fs::staging::Staging;
#[cfg(unix)]
use cowtree_fs::staging::unless_stopping;
#[cfg(unix)]
use cowtree_fs::subvolume::{self, At};
use cowtree_fs::workers::Publish;
use cowtree_link::{LinkMode, LinkState};
use rayon::prelude::*;

use crate::compact::CompactManifest;
use crate::error::{Error, Result};
use crate::hash::Hash;
use crate::manifest::{DataRef, Kind, show};
use crate::pools;
use crate::store::Store;
use crate::util::{path_of, split};

use super::batch::Batch;
use super::dest::Dest;
use super::entry::{Counters, Ctx, os_name, write_entry};
use super::job::Job;
use super::options::{Arriving, CheckoutMode, CheckoutOptions, NextArrived, StillComing};
use super::report::{CheckoutReport, EntryStat, Written};
use super::stage::Stage;

/// Files per parallel work item; a huge directory is split into several items.
const CHUNK: usize = 256;

impl Job<'_> {
    /// The per-file method: an empty staging directory (a subvolume on btrfs), every entry
    /// written into it from its blob.
    pub(super) fn per_file<'s>(
        &self,
        dest: &'s Dest,
        stage: &mut Stage<'s>,
        manifest: &CompactManifest,
        btrfs: bool,
    ) -> Result<(CheckoutReport, Written)> {
        #[cfg(unix)]
        let made = if btrfs {
            self.subvolume_staging(dest, &stage.name)?
        } else {
            None
        };
        // (No subvolumes on Windows: `btrfs` is never set there.)
        #[cfg(windows)]
        let made = {
            let _ = btrfs;
            None
        };
        let made = match made {
            Some(made) => made,
            None => Staging::create(&dest.parent, stage.name.clone(), 0o755)
                .map_err(|e| Error::io_at("create staging directory in", &dest.parent_path, e))?,
        };
        let (dir, path) = stage.made(made)?;
        fill(
            self.store,
            manifest,
            dir,
            path,
            self.opts,
            self.progress,
            self.hooks.is_some(),
            self.arriving,
        )
    }

    /// An empty subvolume at the staging name (a worktree on btrfs is a subvolume, so that it
    /// can be the source of a snapshot in turn); `None` where the kernel refuses one (EPERM)
    /// and a plain directory is made instead.
    #[cfg(unix)]
    fn subvolume_staging<'s>(&self, dest: &'s Dest, name: &OsStr) -> Result<Option<Staging<'s>>> {
        let parent = At::new(&dest.parent, &dest.parent_path);
        let reserved = Staging::reserve(&dest.parent, name.to_owned())
            .map_err(|e| Error::io_at("", dest.parent_path.join(name), e))?;
        let made =
            unless_stopping(|| subvolume::create(parent, name).map_err(std::io::Error::from));
        match made {
            Ok(()) => reserved
                .adopt()
                .map(Some)
                .map_err(|e| Error::io_at("", dest.parent_path.join(name), e)),
            Err(e) => match e
                .get_ref()
                .and_then(|i| i.downcast_ref::<subvolume::SubvolumeError>())
                .map(|s| s.cause)
            {
                Some(subvolume::Cause::NotPermitted | subvolume::Cause::NotBtrfs) => Ok(None),
                _ => Err(Error::io_at(
                    "create staging directory in",
                    &dest.parent_path,
                    e,
                )),
            },
        }
    }
}

/// Writes every entry of `manifest` into the empty directory `stage` (at `stage_path`), in
/// parallel on the checkout pool; with `record`, also the stat of everything written; with
/// `arriving`, each file whose blob is not in the store yet as that blob arrives
/// ([`Waiting`]).
#[allow(clippy::too_many_arguments)]
pub(super) fn fill(
    store: &Store,
    manifest: &CompactManifest,
    stage: &Dir,
    stage_path: &Path,
    opts: CheckoutOptions,
    progress: &Progress,
    record: bool,
    arriving: Option<&Arriving<'_>>,
) -> Result<(CheckoutReport, Written)> {
    let tree = Tree::of(manifest)?;
    let waiting = match arriving {
        Some(a) => Waiting::of(manifest, a.coming)?,
        None => Waiting::default(),
    };
    let link_mode = match opts.mode {
        CheckoutMode::Auto => LinkMode::Auto,
        CheckoutMode::Clone => LinkMode::Clone,
        CheckoutMode::Copy => LinkMode::Copy,
    };
    let state = Batch::new(LinkState::new(link_mode, opts.strict));
    let counters = Counters::new(opts.mode == CheckoutMode::Copy);
    #[cfg(unix)]
    let range = CopyRange::new();
    #[cfg(windows)]
    let blobs = crate::ingest::BlobDirs::new(store);
    let stats: Vec<OnceLock<EntryStat>> = if record {
        (0..manifest.len()).map(|_| OnceLock::new()).collect()
    } else {
        Vec::new()
    };
    let ctx = Ctx {
        store,
        state: &state,
        strict: opts.strict,
        counters: &counters,
        progress,
        #[cfg(unix)]
        range: &range,
        #[cfg(windows)]
        blobs: &blobs,
        record,
        stats: &stats,
        deferred: &waiting.deferred,
    };
    let recorded = tree.make_all(&ctx, stage, stage_path)?;
    if let Some(a) = arriving {
        tree.make_arriving(&ctx, stage, stage_path, &waiting, a.next)?;
    }
    let written = if record {
        tree.written(stats, recorded, stage, stage_path)?
    } else {
        Written::default()
    };
    let report = counters.report((tree.dirs.len() - 1) as u64)?;
    Ok((report, written))
}

/// Why a checkout refuses a tree whose entries or directories [`Tree`] cannot number in 32 bits.
const TOO_BIG: &str = "a snapshot of 2^32 entries or directories or more is too large to check out";

/// The files of a snapshot still arriving ([`Arriving`]) whose blobs were not in the store
/// when the checkout began. The walk of the tree leaves them out; they are written as their
/// blobs arrive, in that order ([`Tree::make_arriving`]): a pull fetches blobs in the order
/// of the remote's packs, which is not the tree's, and a walk that waited on each file in
/// turn wrote almost nothing until the last blobs came.
#[derive(Default)]
struct Waiting {
    /// By manifest index: the file waits for its blob (empty when none does).
    deferred: Vec<bool>,
    /// Each file waiting, as its blob and manifest index, sorted by blob (36 bytes a file, not
    /// a map's hundred), the index [`TAKEN`] once its blob has arrived; and how many are not
    /// taken yet.
    files: Mutex<(Vec<(Hash, u32)>, usize)>,
}

/// The index of a [`Waiting`] file whose blob has arrived (no manifest index: [`Waiting::of`]
/// refuses a manifest that long).
const TAKEN: u32 = u32::MAX;

impl Waiting {
    /// Asks `coming` once which files' blobs are still to arrive.
    fn of(manifest: &CompactManifest, coming: &StillComing<'_>) -> Result<Waiting> {
        if manifest.len() >= TAKEN as usize {
            return Err(Error::TooLarge(TOO_BIG.into()));
        }
        let mut files = Vec::new();
        let mut hashes = Vec::new();
        for (i, e) in manifest.iter().enumerate() {
            if let DataRef::Blob { hash, .. } = e.data {
                files.push(i as u32);
                hashes.push(hash);
            }
        }
        let coming = coming(&hashes);
        if coming.len() != hashes.len() {
            return Err(Error::internal(format!(
                "asked whether {} blobs are still to arrive, got {} answers",
                hashes.len(),
                coming.len()
            )));
        }
        let mut waiting: Vec<(Hash, u32)> = hashes
            .into_iter()
            .zip(files)
            .zip(coming)
            .filter_map(|(file, c)| c.then_some(file))
            .collect();
        waiting.sort_unstable();
        let mut deferred = Vec::new();
        if !waiting.is_empty() {
            deferred = vec![false; manifest.len()];
            for &(_, i) in &waiting {
                deferred[i as usize] = true;
            }
        }
        let left = waiting.len();
        Ok(Waiting {
            deferred,
            files: Mutex::new((waiting, left)),
        })
    }

    /// The files blobs `arrived` are for (each handed out once; none for a blob no file
    /// waits for).
    fn take(&self, arrived: &[Hash]) -> Vec<u32> {
        let mut guard = self.files.lock().unwrap_or_else(|p| p.into_inner());
        let (files, left) = &mut *guard;
        let mut out = Vec::new();
        for h in arrived {
            let from = files.partition_point(|(b, _)| b < h);
            for (b, i) in files[from..].iter_mut() {
                if b != h {
                    break;
                }
                if *i != TAKEN {
                    out.push(*i);
                    *i = TAKEN;
                    *left -= 1;
                }
            }
        }
        out
    }

    /// How many files still wait for their blobs.
    fn left(&self) -> usize {
        self.files.lock().unwrap_or_else(|p| p.into_inner()).1
    }
}

/// Directories a worker of [`Tree::make_arriving`] keeps open at most (then it closes them
/// all and starts again): a walk's worth, what the pool's open-file budget counts per worker
/// for the walk this part of the checkout does not do (`pools::CHECKOUT_FDS_PER_WORKER`).
const OPEN_DIRS: usize = cowtree_fs::walk::FDS_PER_WORKER;

/// The index of the staging root in [`Tree::dirs`].
pub(super) const ROOT: usize = 0;

/// The tree a checkout makes, as its work queue takes it: every directory with the
/// subdirectories and the files and symlinks it holds.
///
/// One work item makes a directory's subdirectories, hands them to the queue at once, then
/// writes the directory's files and symlinks (a directory of more than [`CHUNK`] of them is
/// split into several items). Directories are so made as the walk reaches them, beside the
/// files of others, and no item writes more than a chunk of files and symlinks: workers take
/// items one at a time from a shared queue, so none waits while another still has a long run
/// of work it cannot share.
struct Tree<'a> {
    /// The root (empty path) at [`ROOT`], then every directory sorted by path: each one's
    /// ancestors, and the empty directories of the manifest (the manifest's directories,
    /// by the same index).
    dirs: Vec<TreeDir<'a>>,
    /// The manifest.
    manifest: &'a CompactManifest,
}

struct TreeDir<'a> {
    path: &'a [u8],
    /// Indexes of its subdirectories in [`Tree::dirs`].
    subdirs: Vec<usize>,
    /// Its files and symlinks, by index in the manifest (4 bytes a file, each list
    /// allocated at its size: this is held for every file of the tree).
    leaves: Vec<u32>,
}

/// A work item of [`Tree::make`].
enum Work {
    /// Make the subdirectories of directory `.0` (which exists), then its first chunk of files
    /// and symlinks.
    Dir(usize),
    /// Make the files and symlinks of directory `dir` from `from` on, one chunk of them.
    Leaves { dir: usize, from: usize },
}

/// What one worker recorded when the checkout records ([`Ctx::record`]) besides its entries'
/// stats ([`Ctx::stats`]): the stat of each directory whose entries it made all of, by index
/// in [`Tree::dirs`].
#[derive(Default)]
struct Recorded {
    dirs: Vec<(usize, EntryStat)>,
}

impl<'a> Tree<'a> {
    fn of(manifest: &'a CompactManifest) -> Result<Tree<'a>> {
        // Every directory, as the manifest numbers them (the root first, then sorted by path).
        let mut dirs: Vec<TreeDir<'a>> = (0..manifest.dirs())
            .map(|d| TreeDir {
                path: manifest.dir_path(d),
                subdirs: Vec::new(),
                leaves: Vec::new(),
            })
            .collect();
        if dirs.is_empty() || u32::try_from(dirs.len()).is_err() {
            return Err(Error::TooLarge(TOO_BIG.into()));
        }
        for d in ROOT + 1..dirs.len() {
            let parent = (manifest.dir_parent(d))
                .filter(|&p| p < dirs.len())
                .ok_or_else(|| {
                    Error::internal(format!(
                        "no directory for the parent of {}",
                        show(manifest.dir_path(d))
                    ))
                })?;
            dirs[parent].subdirs.push(d);
        }
        // Each directory's count of files and symlinks, so that each list is allocated once
        // at its size (grown by doubling, they held up to twice the tree).
        let mut counts = vec![0usize; dirs.len()];
        for e in manifest.iter().filter(|e| e.kind != Kind::Dir) {
            *counts
                .get_mut(e.dir)
                .ok_or_else(|| Error::TooLarge(TOO_BIG.into()))? += 1;
        }
        for (d, n) in dirs.iter_mut().zip(counts) {
            d.leaves = Vec::with_capacity(n);
        }
        for (i, e) in manifest.iter().enumerate() {
            if e.kind != Kind::Dir {
                let i = u32::try_from(i).map_err(|_| Error::TooLarge(TOO_BIG.into()))?;
                dirs[e.dir].leaves.push(i);
            }
        }
        Ok(Tree { dirs, manifest })
    }

    /// Runs every work item on the checkout pool, from the root on; returns what each worker
    /// recorded.
    fn make_all(&self, ctx: &Ctx<'_>, stage: &Dir, stage_path: &Path) -> Result<Vec<Recorded>> {
        on_pool(
            vec![Work::Dir(ROOT)],
            Recorded::default,
            |out, work, publish, stop| self.make(ctx, stage, stage_path, work, out, publish, stop),
        )
    }

    /// The stat of everything written ([`Written`]): each entry's from `stats`, each
    /// directory's from what the workers `recorded`, or, for a directory no single item saw
    /// whole, taken now.
    fn written(
        &self,
        stats: Vec<OnceLock<EntryStat>>,
        recorded: Vec<Recorded>,
        stage: &Dir,
        stage_path: &Path,
    ) -> Result<Written> {
        let mut dir_stats: Vec<Option<EntryStat>> = vec![None; self.dirs.len()];
        for out in recorded {
            for (d, st) in out.dirs {
                dir_stats[d] = Some(st);
            }
        }
        // The directories no single item saw whole (more than one item's worth of entries):
        // their stat now, every entry being made. Not the root (see `Written::dirs`).
        let rest: Vec<usize> = (ROOT + 1..self.dirs.len())
            .filter(|&d| dir_stats[d].is_none())
            .collect();
        let more = pools::install(pools::Pool::Checkout, || {
            rest.par_iter()
                .map(|&d| {
                    let path = self.dirs[d].path;
                    let st = open_beneath(stage, stage_path, path)?
                        .stat_self()
                        .map_err(|e| Error::io_at("", stage_path.join(path_of(path)), e))?;
                    Ok((d, EntryStat::of(&st)))
                })
                .collect::<Result<Vec<(usize, EntryStat)>>>()
        })?;
        for (d, st) in more {
            dir_stats[d] = Some(st);
        }
        Ok(Written {
            // (Collected in place: a `OnceLock<EntryStat>` is the size of an `Option` of one.)
            stats: stats.into_iter().map(OnceLock::into_inner).collect(),
            // `self.dirs` after the root is sorted by path, as `Written::dirs` wants.
            dirs: (ROOT + 1..self.dirs.len())
                .filter_map(|d| Some((self.dirs[d].path.to_vec(), dir_stats[d]?)))
                .collect(),
            ..Written::default()
        })
    }

    /// Writes the files `waiting` holds back as `next` hands out their blobs, on every worker
    /// of the checkout pool at once (each directory exists: [`Tree::make_all`] made them).
    fn make_arriving(
        &self,
        ctx: &Ctx<'_>,
        stage: &Dir,
        stage_path: &Path,
        waiting: &Waiting,
        next: &NextArrived<'_>,
    ) -> Result<()> {
        if waiting.left() == 0 {
            return Ok(());
        }
        let workers = pools::pool(pools::Pool::Checkout).jobs();
        on_pool(
            vec![(); workers],
            || (),
            |_, (), _, stop| self.write_arrived(ctx, stage, stage_path, waiting, next, stop),
        )?;
        match waiting.left() {
            0 => Ok(()),
            n => Err(Error::internal(format!(
                "{n} files waited for blobs that were never handed out"
            ))),
        }
    }

    /// One worker of [`Tree::make_arriving`]: until `next` says every blob has come (or
    /// another worker failed), writes the files of the blobs it hands out.
    fn write_arrived(
        &self,
        ctx: &Ctx<'_>,
        stage: &Dir,
        stage_path: &Path,
        waiting: &Waiting,
        next: &NextArrived<'_>,
        stop: &AtomicBool,
    ) -> Result<()> {
        let mut arrived = Vec::new();
        let mut open: HashMap<usize, Dir> = HashMap::new();
        loop {
            arrived.clear();
            if stop.load(Ordering::Relaxed) || !next(&mut arrived)? {
                return Ok(());
            }
            for i in waiting.take(&arrived) {
                let i = i as usize;
                if stop.load(Ordering::Relaxed) {
                    return Ok(());
                }
                let e = self
                    .manifest
                    .get(i)
                    .ok_or_else(|| Error::internal(format!("no entry {i} in the manifest")))?;
                let td = self.dirs.get(e.dir).ok_or_else(|| {
                    Error::internal(format!("no directory {} for entry {i}", e.dir))
                })?;
                if open.len() >= OPEN_DIRS && !open.contains_key(&e.dir) {
                    open.clear();
                }
                let dir = match open.entry(e.dir) {
                    Slot::Occupied(o) => o.into_mut(),
                    Slot::Vacant(v) => v.insert(open_beneath(stage, stage_path, td.path)?),
                };
                if let Some(st) = write_entry(ctx, dir, td.path, e)? {
                    keep_stat(ctx, i, &st)?;
                }
            }
        }
    }

    /// Runs one work item, adding what it records to `out` and handing the items it makes to
    /// `publish`.
    #[allow(clippy::too_many_arguments)]
    fn make(
        &self,
        ctx: &Ctx<'_>,
        stage: &Dir,
        stage_path: &Path,
        work: Work,
        out: &mut Recorded,
        publish: &Publish<'_, Work>,
        stop: &AtomicBool,
    ) -> Result<()> {
        if stop.load(Ordering::Relaxed) {
            return Ok(());
        }
        let (d, from) = match work {
            Work::Dir(d) => (d, 0),
            Work::Leaves { dir, from } => (dir, from),
        };
        let td = &self.dirs[d];
        let dir = open_beneath(stage, stage_path, td.path)?;
        if from == 0 {
            for &s in &td.subdirs {
                let name = split(self.dirs[s].path).1;
                os_name(name)
                    .and_then(|name| dir.create_dir(&name, 0o755))
                    .map_err(|e| {
                        Error::io_at("", stage_path.join(path_of(self.dirs[s].path)), e)
                    })?;
            }
            let mut pushed: Vec<Work> = td.subdirs.iter().map(|&s| Work::Dir(s)).collect();
            pushed.extend(
                (CHUNK..td.leaves.len())
                    .step_by(CHUNK)
                    .map(|from| Work::Leaves { dir: d, from }),
            );
            publish(&mut pushed);
        }
        let chunk = &td.leaves[from.min(td.leaves.len())..(from + CHUNK).min(td.leaves.len())];
        // Files left to wait for their blobs ([`Waiting`]).
        let mut deferred = false;
        for &i in chunk {
            let i = i as usize;
            if ctx.deferred.get(i) == Some(&true) {
                deferred = true;
                continue;
            }
            let e = self
                .manifest
                .get(i)
                .ok_or_else(|| Error::internal(format!("no entry {i} in the manifest")))?;
            if stop.load(Ordering::Relaxed) {
                return Ok(());
            }
            if let Some(st) = write_entry(ctx, &dir, td.path, e)? {
                keep_stat(ctx, i, &st)?;
            }
        }
        // This item made every entry of its directory (not the root, whose stat changes
        // later): the directory's stat now is final.
        if ctx.record && d != ROOT && td.leaves.len() <= CHUNK && !deferred {
            let st = dir
                .stat_self()
                .map_err(|e| Error::io_at("", stage_path.join(path_of(td.path)), e))?;
            out.dirs.push((d, EntryStat::of(&st)));
        }
        Ok(())
    }
}

/// Runs `work` over `initial` and every item it publishes on the checkout pool, each worker
/// with its `make_local()` state; returns those states, or the first error. A failed item
/// sets the flag `work` is handed, so that the others stop between two entries (the queue
/// starts no new item after an error).
fn on_pool<T: Send, W: Send>(
    initial: Vec<T>,
    make_local: impl Fn() -> W + Sync,
    work: impl Fn(&mut W, T, &Publish<'_, T>, &AtomicBool) -> Result<()> + Sync,
) -> Result<Vec<W>> {
    let stop = AtomicBool::new(false);
    let pool = pools::pool(pools::Pool::Checkout);
    pool.run_publishing(pool.jobs(), initial, make_local, |out, item, publish| {
        let r = work(out, item, publish, &stop);
        if r.is_err() {
            stop.store(true, Ordering::Relaxed);
        }
        r
    })
}

/// Keeps the stat of manifest entry `i` as written, when the checkout records
/// ([`Ctx::stats`]; each entry is written once, so its slot is empty).
fn keep_stat(ctx: &Ctx<'_>, i: usize, st: &Stat) -> Result<()> {
    let slot = ctx
        .stats
        .get(i)
        .ok_or_else(|| Error::internal(format!("no stat slot for entry {i}")))?;
    let _ = slot.set(EntryStat::of(st));
    Ok(())
}

/// Flushes every directory of `manifest`'s tree made at `stage` (at `stage_path`), the root
/// last: on Windows, where only administrators may flush a whole volume, what makes the
/// tree's entries durable once each file was flushed as it was written (`entry.rs`).
#[cfg(windows)]
pub(super) fn sync_dirs(stage: &Dir, stage_path: &Path, manifest: &CompactManifest) -> Result<()> {
    pools::install(pools::Pool::Checkout, || {
        (ROOT + 1..manifest.dirs())
            .into_par_iter()
            .try_for_each(|d| {
                let path = manifest.dir_path(d);
                open_beneath(stage, stage_path, path)?
                    .sync()
                    .map_err(|e| Error::io_at("sync", stage_path.join(path_of(path)), e))
            })
    })?;
    stage
        .sync()
        .map_err(|e| Error::io_at("sync", stage_path, e))
}

// (`path_of` gives a `&Path` on unix, a `Cow<Path>` on Windows: one borrow serves both.)
#[cfg_attr(unix, allow(clippy::needless_borrow))]
fn open_beneath(stage: &Dir, stage_path: &Path, rel: &[u8]) -> Result<Dir> {
    if rel.is_empty() {
        return stage
            .try_clone()
            .map_err(|e| Error::io_at("", stage_path, e));
    }
    stage
        .open_dir_beneath(&path_of(rel))
        .map_err(|e| Error::io_at("", stage_path.join(path_of(rel)), e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::Hash;

    #[test]
    fn the_plan_puts_every_entry_in_its_own_directory_once() {
        let h = Hash::of(b"x");
        let file = |p: &str| crate::Entry::blob(p.as_bytes().to_vec(), false, 1, h);
        let dir = |p: &str| crate::Entry::dir(p.as_bytes().to_vec());
        // Sorted by path bytes, as a manifest is: "a-b" sorts between "a" and "a/..."
        // ('-' < '/'), so a directory's entries are not contiguous.
        let entries = vec![
            file("a-b"),
            file("a/c/d/e"),
            file("a/x"),
            dir("empty"),
            file("top"),
            dir("z/only-dirs/inner"),
        ];
        let manifest = CompactManifest::of(&crate::Manifest::new(entries).unwrap()).unwrap();
        let tree = Tree::of(&manifest).unwrap();
        let paths: Vec<&[u8]> = tree.dirs.iter().map(|d| d.path).collect();
        let want: Vec<&[u8]> = vec![
            b"",
            b"a",
            b"a/c",
            b"a/c/d",
            b"empty",
            b"z",
            b"z/only-dirs",
            b"z/only-dirs/inner",
        ];
        assert_eq!(paths, want, "the root, then every directory sorted by path");
        let at = |p: &[u8]| paths.iter().position(|q| *q == p).unwrap();
        let leaves = |p: &[u8]| -> Vec<usize> {
            tree.dirs[at(p)]
                .leaves
                .iter()
                .map(|&i| i as usize)
                .collect()
        };
        let subdirs = |p: &[u8]| -> Vec<&[u8]> {
            tree.dirs[at(p)].subdirs.iter().map(|&s| paths[s]).collect()
        };
        assert_eq!(leaves(b""), vec![0, 4]);
        assert_eq!(leaves(b"a"), vec![2]);
        assert_eq!(leaves(b"a/c/d"), vec![1]);
        assert!(leaves(b"a/c").is_empty() && leaves(b"empty").is_empty());
        assert_eq!(subdirs(b""), vec![&b"a"[..], b"empty", b"z"]);
        assert_eq!(subdirs(b"a"), vec![&b"a/c"[..]]);
        assert_eq!(subdirs(b"z/only-dirs"), vec![&b"z/only-dirs/inner"[..]]);
        let placed: usize = tree.dirs.iter().map(|d| d.leaves.len()).sum();
        assert_eq!(placed, 4, "each file and symlink once, no directory entry");
    }
}
