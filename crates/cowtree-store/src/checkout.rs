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

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Instant;

use cowtree_fs::dir::Dir;
use cowtree_fs::place::{Placed, place_at};
use cowtree_fs::progress::{Progress, Total};
use cowtree_fs::staging::{Staging, unless_stopping};
use cowtree_fs::subvolume::{self, At};
use cowtree_fs::whole_tree::{self, Method as WholeMethod, NotUsed, Request, WholeTree};
use cowtree_fs::workers::Publish;
use cowtree_fs::{CopyRange, Method};
use cowtree_link::{Attempt, Decision, Failure, LinkMode, LinkState};
use rayon::prelude::*;
use rustix::fs::Stat;

use crate::compact::{CompactEntry, CompactManifest};
use crate::error::{Corrupt, Error, Result};
use crate::hash::Hash;
use crate::manifest::{DataRef, Kind, show};
use crate::registry::Registration;
use crate::store::Store;
use crate::util::{path_of, split, unique_suffix};

/// How file data gets into the worktree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckoutMode {
    /// Clone where the filesystems can, copy where they cannot (the default).
    Auto,
    /// Clone; copy with a reported fallback where the filesystems cannot.
    Clone,
    /// Always copy, into data blocks of the worktree's own, never shared with the store
    /// ([`cowtree_fs::Method::Copy`]).
    Copy,
}

/// Options for [`checkout`].
#[derive(Debug, Clone, Copy)]
pub struct CheckoutOptions {
    /// The method.
    pub mode: CheckoutMode,
    /// Refuse every fallback (and a cross-device store) instead of copying.
    pub strict: bool,
}

/// What a checkout did.
#[derive(Debug, Clone, Default)]
pub struct CheckoutReport {
    /// Regular files written.
    pub files: u64,
    /// Directories created (not counting the root).
    pub dirs: u64,
    /// Symlinks created.
    pub symlinks: u64,
    /// Files cloned from their blobs.
    pub cloned: u64,
    /// Files copied.
    pub copied: u64,
    /// Bytes of file data (cloned or copied).
    pub bytes: u64,
    /// Each fallback reason and how many files it affected.
    pub fallbacks: Vec<(String, u64)>,
    /// The store is on another filesystem than the destination.
    pub cross_device: bool,
    /// The destination's absolute path.
    pub path: PathBuf,
    /// The worktree's registry id.
    pub worktree_id: String,
    /// Milliseconds from start to the tree being in place and registered.
    pub elapsed_ms: u64,
    /// How the tree was made: one writable snapshot of the store's tree subvolume
    /// ([`WholeMethod::Subvolume`]), or per file.
    pub method: WholeMethod,
    /// Why the tree was made per file (see [`cowtree_fs::whole_tree::NotUsed`]).
    pub reason: Option<NotUsed>,
    /// The store's tree subvolume of the snapshot was built by this checkout (its first on
    /// this btrfs): `cloned` and `copied` count the files written into it.
    pub tree_built: bool,
}

/// The stat of everything a checkout wrote, each taken once the entry was complete: what a
/// stat cache of the new tree is made of, without walking the tree again
/// ([`checkout_recording`]).
#[derive(Debug, Default)]
pub struct Written {
    /// The snapshot's manifest, in its compact form.
    pub manifest: CompactManifest,
    /// `stats[i]` is the stat of `manifest.get(i)` as written: of each file after its
    /// data and mode were set, of each symlink after it was made; `None` for a directory.
    pub stats: Vec<Option<EntryStat>>,
    /// Every directory but the root, by path (sorted), with its stat taken after its last
    /// entry was made. The root's is not final here: the rename into place changes its
    /// ctime, and so does a caller's marker on it.
    pub dirs: Vec<(Vec<u8>, EntryStat)>,
    /// The root's (device, inode), as registered: what a caller opening the root by its path
    /// afterwards checks that it found.
    pub root: (u64, u64),
    /// The tree is a writable snapshot of the store's tree subvolume of the snapshot
    /// ([`crate::trees`]), which keeps every inode number and time of that tree: its stat
    /// cache ([`crate::trees::cache`]) describes this tree too. `stats` and `dirs` are then
    /// filled only when this checkout built that tree (they are its entries' stats).
    pub from_tree: bool,
}

/// What a stat cache compares of an entry's stat: all that [`Written`] keeps of each entry
/// (40 bytes, where a whole `Stat` is 144 on x86-64 Linux, for every entry of the tree).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryStat {
    /// Size in bytes.
    pub size: u64,
    /// Modification time, ns since the epoch.
    pub mtime_ns: i64,
    /// Change time, ns since the epoch.
    pub ctime_ns: i64,
    /// Inode number.
    pub ino: u64,
    /// `st_mode` (type and permission bits).
    pub mode: u32,
}

impl EntryStat {
    /// The parts of `st` a stat cache compares.
    pub fn of(st: &Stat) -> EntryStat {
        EntryStat {
            size: st.st_size as u64,
            mtime_ns: st.st_mtime.saturating_mul(1_000_000_000) + st.st_mtime_nsec as i64,
            ctime_ns: st.st_ctime.saturating_mul(1_000_000_000) + st.st_ctime_nsec as i64,
            ino: st.st_ino,
            mode: cowtree_fs::sys::stat_mode(st),
        }
    }
}

struct Counters {
    files: AtomicU64,
    symlinks: AtomicU64,
    cloned: AtomicU64,
    copied: AtomicU64,
    bytes: AtomicU64,
    fallbacks: Mutex<HashMap<&'static str, u64>>,
    /// Copy was asked for: copies are not fallbacks.
    copy_requested: bool,
}

/// Files per parallel work item; a huge directory is split into several items.
const CHUNK: usize = 256;

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
    run(&Job {
        store,
        id,
        dst,
        opts,
        warn,
        progress,
        hooks: None,
    })
    .map(|(report, _)| report)
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
/// in place of a bare [`Registration`], so that the caller does not write (and sync) the
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
        store,
        id,
        dst,
        opts,
        warn,
        progress,
        hooks: Some(hooks),
    })
}

/// What a recording checkout ([`checkout_recording`]) hands to its caller on the way.
pub struct Hooks<'a> {
    /// Runs once the tree is complete, beside the sync that makes it durable, before the tree
    /// is renamed into place.
    pub before_placing: &'a (dyn Fn(&Written) + Sync),
    /// The bytes of the worktree's record, made from its registration (path, base, root).
    pub record: &'a dyn Fn(&Registration) -> Vec<u8>,
}

/// One checkout's inputs, handed down its steps.
struct Job<'a> {
    store: &'a Store,
    id: &'a Hash,
    dst: &'a Path,
    opts: CheckoutOptions,
    warn: &'a dyn Fn(&str),
    progress: &'a Progress,
    hooks: Option<&'a Hooks<'a>>,
}

/// Where the tree goes: DST split into its open parent and its name.
struct Dest {
    parent_path: PathBuf,
    parent: Dir,
    name: OsString,
    /// DST's absolute path (its parent canonical).
    abs: PathBuf,
    /// DST is an empty directory, which the tree replaces.
    replace_empty: bool,
}

/// The staging directory beside DST, and its registration in the store (see
/// [`crate::dest_staging`]): registered before it exists, removed with the registration when
/// the checkout fails, renamed to DST when it succeeds.
struct Stage<'a> {
    /// The store (for the command a warning prints).
    store: &'a Store,
    registration: crate::dest_staging::Registration<'a>,
    name: OsString,
    /// Its path (DST's parent as given, joined with `name`), for messages.
    path: PathBuf,
    /// The directory, once made.
    made: Option<Staging<'a>>,
}

/// How far the placing step got, for the cleanup after a failure.
#[derive(Default)]
struct Placing {
    /// The worktree's registry id, once registered.
    registered: Option<String>,
    /// The tree is at DST: nothing is undone any more.
    placed: bool,
}

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
    // A snapshot of a tree whose counts (and, for a worktree, stat cache) are kept needs no
    // manifest: only that the snapshot exists.
    let mut manifest = Lazy {
        job,
        manifest: None,
    };
    let kept = match &plan {
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
    lap("loaded");
    // A snapshot's root is inode 256: registered with it, the staging is removable by gc from
    // the moment the snapshot exists (see `crate::dest_staging::register_expecting`).
    let expect =
        matches!(plan, Plan::Subvolume(_)).then_some((0, cowtree_fs::sys::SUBVOLUME_ROOT_INO));
    let mut stage = Stage::begin(job.store, &dest, expect)?;
    lap("registered staging");
    let mut placing = Placing::default();
    let result = job
        .make(&dest, &mut stage, &mut manifest, plan)
        .and_then(|made| {
            lap("made");
            job.place(&dest, &mut stage, manifest.take(), made, &mut placing)
        });
    lap("placed");
    let (mut report, written) = match result {
        Ok(r) => r,
        Err(e) if placing.placed => return Err(e),
        Err(e) => {
            stage.abandon(job.warn);
            if let Some(wid) = placing.registered
                && let Err(cleanup) = crate::registry::remove(job.store, &wid)
            {
                (job.warn)(&format!(
                    "warning: could not remove the record of the failed checkout: {cleanup}"
                ));
            }
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

/// The snapshot's manifest, read when first needed (see [`run`]).
struct Lazy<'j> {
    job: &'j Job<'j>,
    manifest: Option<CompactManifest>,
}

impl Lazy<'_> {
    fn get(&mut self) -> Result<&CompactManifest> {
        if self.manifest.is_none() {
            self.manifest = Some(self.job.load()?);
        }
        self.manifest
            .as_ref()
            .ok_or_else(|| Error::msg("internal error: no manifest"))
    }

    /// The manifest if it was read, else an empty one.
    fn take(self) -> CompactManifest {
        self.manifest.unwrap_or_default()
    }
}

/// How a checkout will make its tree, decided before any work ([`Job::plan`]).
enum Plan {
    /// One writable snapshot of the store's tree subvolume of the snapshot (built first when
    /// the store has none yet).
    Subvolume(Option<crate::trees::Tree>),
    /// Per file, for this reason. `btrfs`: DST is on btrfs, where its root is made a
    /// subvolume all the same, so that it can be snapshotted in turn.
    PerFile { reason: NotUsed, btrfs: bool },
}

impl Job<'_> {
    /// The snapshot's manifest, its total counted into the progress.
    fn load(&self) -> Result<CompactManifest> {
        let manifest = self.store.load_compact(self.id)?;
        self.progress.set_total(Total {
            entries: manifest.files() + manifest.symlinks(),
            bytes: Some(manifest.bytes()),
        });
        Ok(manifest)
    }

    /// Whether the store is on another filesystem than DST (warned about, or refused under
    /// `strict`, unless copying was asked for).
    fn cross_device(&self, dest: &Dest) -> Result<bool> {
        // Different st_dev usually means different filesystems, but btrfs subvolumes of one
        // filesystem differ too and can clone between them: a raw probe (cached per device
        // pair) settles it.
        let parent_dev = cowtree_fs::sys::stat_dev(
            &dest
                .parent
                .stat_self()
                .map_err(|e| Error::io_at("", &dest.parent_path, e))?,
        );
        let cross_device = parent_dev != self.store.blobs_dev()?
            && !matches!(
                cowtree_fs::probe::ProbeCache::global()
                    .reflink(&self.store.root().join("tmp"), &dest.parent_path),
                Ok(Ok(()))
            );
        if cross_device && self.opts.mode != CheckoutMode::Copy {
            if self.opts.strict {
                return Err(Error::CrossDevice {
                    store: self.store.root().to_path_buf(),
                    destination: self.dst.to_path_buf(),
                });
            }
            (self.warn)(&format!(
                "warning: {}",
                crate::error::cross_device_message(self.store.root(), self.dst)
            ));
        }
        Ok(cross_device)
    }

    /// Decides how the tree is made: one snapshot of the store's tree subvolume where the
    /// store and DST are on one btrfs and the store's tree can be used (or made) by this
    /// user, else per file, with the reason. Cheap where it says no (XFS, ext4, tmpfs: two
    /// `fstatfs`).
    fn plan(&self, dest: &Dest, cross_device: bool) -> Result<Plan> {
        let dst_at = At::new(&dest.parent, &dest.parent_path);
        let btrfs = subvolume::is_btrfs(dst_at).map_err(sub_err)?;
        let per_file = |reason| Ok(Plan::PerFile { reason, btrfs });
        // The seam's rules (cowtree_fs::whole_tree), applied to where the tree subvolume is
        // or will be made: the store's blobs directory.
        let blobs_path = self.store.root().join("blobs");
        let blobs_at = At::new(self.store.blobs(), &blobs_path);
        match whole_tree::filesystem_rule(blobs_at, dst_at).map_err(sub_err)? {
            Some(reason @ NotUsed::Filesystem { .. }) => return per_file(reason),
            _ if self.opts.mode == CheckoutMode::Copy => {
                return per_file(NotUsed::Requested {
                    code: "mode",
                    why: "--mode copy",
                });
            }
            Some(reason) => return per_file(reason),
            None if cross_device => return per_file(NotUsed::CrossFilesystem),
            None => {}
        }
        match crate::trees::open(self.store, self.id)? {
            // A snapshot keeps every owner: another user's tree would give another user's
            // files, where a per-file checkout makes them the caller's.
            Some(tree) if tree.owner != rustix::process::geteuid().as_raw() => {
                per_file(NotUsed::NotOwner { owner: tree.owner })
            }
            Some(tree) => Ok(Plan::Subvolume(Some(tree))),
            None if self.store.is_read_only() => per_file(crate::trees::STORE_NOT_WRITABLE),
            None if crate::trees::exists(self.store, self.id)? => {
                per_file(crate::trees::NOT_TRUSTED)
            }
            None => Ok(Plan::Subvolume(None)),
        }
    }

    /// Makes the tree in staging by the method `plan` chose: where the whole-tree method
    /// turns out not to apply, per file, with the reason.
    fn make<'s>(
        &self,
        dest: &'s Dest,
        stage: &mut Stage<'s>,
        manifest: &mut Lazy<'_>,
        plan: Plan,
    ) -> Result<(CheckoutReport, Written)> {
        let (reason, btrfs) = match plan {
            Plan::PerFile { reason, btrfs } => (reason, btrfs),
            Plan::Subvolume(tree) => match self.subvolume(dest, stage, manifest, tree)? {
                Ok(made) => return Ok(made),
                Err(reason) => (reason, true),
            },
        };
        let (mut report, written) = self.per_file(dest, stage, manifest.get()?, btrfs)?;
        report.reason = Some(reason);
        Ok((report, written))
    }

    /// The whole-tree method: the store's tree subvolume of the snapshot (built now from the
    /// blobs when there is none), snapshotted writable at the staging name through the seam
    /// ([`cowtree_fs::whole_tree`]). Says why not, having made nothing in staging, where it
    /// does not apply.
    fn subvolume<'s>(
        &self,
        dest: &'s Dest,
        stage: &mut Stage<'s>,
        manifest: &mut Lazy<'_>,
        tree: Option<crate::trees::Tree>,
    ) -> Result<std::result::Result<(CheckoutReport, Written), NotUsed>> {
        let (tree, built) = match tree {
            Some(tree) => (tree, None),
            None => match self.build_tree(manifest.get()?)? {
                Ok((tree, made)) => (tree, Some(made)),
                Err(reason) => return Ok(Err(reason)),
            },
        };
        let req = Request {
            src: tree.at(),
            parent: At::new(&dest.parent, &dest.parent_path),
            name: &stage.name,
            read_only: false,
        };
        // Registered for undo first, then made through the gate that a signal handler closes
        // before it undoes (see `cowtree_fs::undo`).
        let reserved = Staging::reserve(&dest.parent, stage.name.clone())
            .map_err(|e| Error::io_at("", &stage.path, e))?;
        let mut outcome = None;
        unless_stopping(|| {
            outcome = Some(cowtree_fs::whole_tree::try_whole_tree(&req, None));
            Ok(())
        })
        .map_err(|e| Error::io_at("create staging directory in", &dest.parent_path, e))?;
        let outcome =
            outcome.ok_or_else(|| Error::msg("internal error: the snapshot did not run"))?;
        let method = match outcome.map_err(sub_err)? {
            WholeTree::Done(method) => method,
            WholeTree::NotUsed(reason) => return Ok(Err(reason)),
        };
        let staging = reserved
            .adopt()
            .map_err(|e| Error::io_at("", &stage.path, e))?;
        stage.made(staging)?;
        let tree_built = built.is_some();
        let (mut report, mut written) = match built {
            Some(made) => made,
            // No stat cache kept with the tree yet (a tree made by a snapshot of a subvolume,
            // or its cache lost): the stats of the tree's entries, which the snapshot keeps,
            // for the caller to make one.
            None if self.hooks.is_some() && crate::trees::cache(self.store, self.id).is_none() => (
                CheckoutReport::default(),
                stats_of(&tree.dir, &tree.path, manifest.get()?)?,
            ),
            None => Default::default(),
        };
        written.from_tree = true;
        report.tree_built = tree_built;
        let counts = match crate::trees::counts(self.store, self.id) {
            Some(c) => c,
            None => {
                // Kept for the next checkout (best effort: it would count again).
                let c = crate::trees::Counts::of_compact(manifest.get()?);
                let _ = crate::trees::set_counts(self.store, self.id, &c);
                c
            }
        };
        report.files = counts.files;
        report.symlinks = counts.symlinks;
        report.dirs = counts.dirs;
        report.bytes = counts.bytes;
        report.method = method;
        if !tree_built {
            self.progress
                .add(counts.files + counts.symlinks, counts.bytes);
        }
        Ok(Ok((report, written)))
    }

    /// Builds the store's tree subvolume of the snapshot from its blobs (per file, into a new
    /// subvolume), then publishes it read-only ([`crate::trees::Pending::publish`]); returns
    /// it with what was written into it. Says why not where no subvolume can be made there.
    #[allow(clippy::type_complexity)]
    fn build_tree(
        &self,
        manifest: &CompactManifest,
    ) -> Result<std::result::Result<(crate::trees::Tree, (CheckoutReport, Written)), NotUsed>> {
        let pending = match crate::trees::create(self.store)? {
            Ok(p) => p,
            Err(reason) => return Ok(Err(reason)),
        };
        let made = fill(
            self.store,
            manifest,
            pending.dir(),
            pending.path(),
            self.opts,
            self.progress,
            self.hooks.is_some(),
        )?;
        let tree = pending.publish(self.id)?;
        // Best effort: a checkout counts from the manifest when these are missing.
        let counts = crate::trees::Counts::of_compact(manifest);
        let _ = crate::trees::set_counts(self.store, self.id, &counts);
        Ok(Ok((tree, made)))
    }

    /// The per-file method: an empty staging directory (a subvolume on btrfs), every entry
    /// written into it from its blob.
    fn per_file<'s>(
        &self,
        dest: &'s Dest,
        stage: &mut Stage<'s>,
        manifest: &CompactManifest,
        btrfs: bool,
    ) -> Result<(CheckoutReport, Written)> {
        let made = if btrfs {
            self.subvolume_staging(dest, &stage.name)?
        } else {
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
        )
    }

    /// An empty subvolume at the staging name (a worktree on btrfs is a subvolume, so that it
    /// can be the source of a snapshot in turn); `None` where the kernel refuses one (EPERM)
    /// and a plain directory is made instead.
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

    /// Makes the tree in staging durable, registers the worktree and renames the tree to
    /// DST (see the comments for the order); `placing` says how far it got.
    fn place(
        &self,
        dest: &Dest,
        stage: &mut Stage<'_>,
        manifest: CompactManifest,
        (report, mut written): (CheckoutReport, Written),
        placing: &mut Placing,
    ) -> Result<(CheckoutReport, Written)> {
        let staging = (stage.made.as_mut())
            .ok_or_else(|| Error::msg("internal error: no tree made in staging to place"))?;
        // The whole tree durable, then its record (the staging root keeps its inode through
        // the rename), then the rename, also durable: after a power loss DST is either
        // absent or whole and registered (docs/store.md, "Durability"). A record whose path
        // never appeared pins nothing and gc drops it.
        let before_placing = self.hooks.map(|h| h.before_placing);
        if self.hooks.is_some() {
            written.manifest = manifest;
        }
        let hook = || {
            if let Some(f) = before_placing {
                f(&written);
            }
        };
        // A snapshot is committed (durable) when the ioctl returns: nothing to sync, and
        // nothing to run beside the hook (starting the thread pool for it costs more than the
        // whole snapshot).
        if report.method == WholeMethod::PerFile {
            let (synced, ()) = rayon::join(|| staging.dir.sync_filesystem(), hook);
            synced.map_err(|e| Error::io_at("sync the checkout in", &stage.path, e))?;
        } else {
            hook();
        }
        let root = (staging.dir.stat_self()).map_err(|e| Error::io_at("", &stage.path, e))?;
        let root_id = (cowtree_fs::sys::stat_dev(&root), root.st_ino);
        written.root = root_id;
        // One checkout at a time registers and renames to this path, and only while the path
        // is still free: a second checkout to the same DST must not overwrite the record of
        // the first and then, failing its rename, remove it.
        let _claim = crate::registry::claim(self.store)?;
        if !dst_still_free(&dest.parent, &dest.name, dest.replace_empty)? {
            return Err(Error::AlreadyExists {
                what: "checkout destination",
                path: self.dst.to_path_buf(),
                how: "was taken while the checkout ran",
            });
        }
        placing.registered = Some(match self.hooks {
            Some(h) => crate::registry::register_root_with(
                self.store, &dest.abs, self.id, root_id, h.record,
            )?,
            None => crate::registry::register_root(self.store, &dest.abs, self.id, root_id)?,
        });
        staging
            .commit(&dest.name, dest.replace_empty)
            .map_err(|e| Error::io_at("move the checkout into", self.dst, e))?;
        placing.placed = true;
        dest.parent.sync().map_err(|source| Error::NotDurable {
            path: self.dst.to_path_buf(),
            source,
        })?;
        Ok((report, written))
    }
}

impl Dest {
    /// Opens DST's parent and checks DST: absent, or an empty directory.
    fn resolve(dst: &Path) -> Result<Dest> {
        let (parent_path, name) = split_dst(dst)?;
        // The error names the directory ("open directory PARENT: ...").
        let parent = Dir::open(&parent_path).map_err(|e| Error::Context {
            context: "checkout destination",
            source: Box::new(Error::Io(e)),
        })?;
        let abs = std::fs::canonicalize(&parent_path)
            .map_err(|e| Error::io_at("", &parent_path, e))?
            .join(&name);
        let replace_empty = match parent
            .try_stat(&name)
            .map_err(|e| Error::io_at("", dst, e))?
        {
            None => false,
            Some(st) if rustix::fs::FileType::from_raw_mode(st.st_mode).is_dir() => {
                let d = parent
                    .open_dir(&name)
                    .map_err(|e| Error::io_at("", dst, e))?;
                let entries = d.entries().map_err(|e| Error::io_at("", dst, e))?;
                if !entries.is_empty() {
                    return Err(Error::AlreadyExists {
                        what: "checkout destination",
                        path: dst.to_path_buf(),
                        how: "exists and is not empty",
                    });
                }
                true
            }
            Some(_) => {
                return Err(Error::AlreadyExists {
                    what: "checkout destination",
                    path: dst.to_path_buf(),
                    how: "exists and is not a directory",
                });
            }
        };
        Ok(Dest {
            parent_path,
            parent,
            name,
            abs,
            replace_empty,
        })
    }
}

impl<'a> Stage<'a> {
    /// Removes staging left beside DST by checkouts of it that died (best effort), then
    /// registers (durably) a new staging name, so that gc can remove the directory if this
    /// process is killed once it exists.
    fn begin(store: &'a Store, dest: &Dest, expect: Option<(u64, u64)>) -> Result<Stage<'a>> {
        let _ = cowtree_fs::staging::remove_stale(&dest.parent, &STAGING.prefix(&dest.name));
        // `unique_suffix` starts with the pid, as the naming wants.
        let mut name = STAGING.prefix(&dest.name);
        name.push(unique_suffix());
        let registration = crate::dest_staging::register_expecting(
            store,
            &dest.abs.with_file_name(&name),
            expect,
        )?;
        Ok(Stage {
            store,
            registration,
            path: dest.parent_path.join(&name),
            name,
            made: None,
        })
    }

    /// Takes the staging directory just made at the registered name (its lock is held until
    /// the process ends: a staging directory whose lock can be taken belongs to a checkout
    /// that died), and records its device and inode in the registration. Returns the
    /// directory and its path.
    fn made(&mut self, staging: Staging<'a>) -> Result<(&Dir, &Path)> {
        let recorded = staging
            .dir
            .stat_self()
            .map_err(|e| Error::io_at("", &self.path, e))
            .and_then(|st| (self.registration).created(cowtree_fs::sys::stat_dev(&st), st.st_ino));
        let staging = self.made.insert(staging);
        recorded?;
        Ok((&staging.dir, &self.path))
    }

    /// Removes the staging directory after a failure, with its registration; a directory
    /// that cannot be removed is warned about and its registration kept for gc.
    fn abandon(self, warn: &dyn Fn(&str)) {
        let Some(staging) = self.made else {
            return;
        };
        // A subvolume (a snapshot, or the per-file method's root on btrfs) goes in O(1) where
        // the kernel permits; `remove` then finds nothing left.
        if subvolume::is_root(At::new(&staging.dir, &self.path)).unwrap_or(false)
            && let (Some(parent), Some(name)) = (self.path.parent(), self.path.file_name())
            && let Ok(pdir) = Dir::open(if parent.as_os_str().is_empty() {
                Path::new(".")
            } else {
                parent
            })
        {
            let _ = subvolume::delete(At::new(&pdir, parent), name);
        }
        if let Err(cleanup) = staging.remove() {
            warn(&format!(
                "warning: could not remove staging {} (`{}` removes it): {cleanup}",
                self.path.display(),
                crate::error::command(self.store.root(), &["gc"], Path::new(""))
            ));
            self.registration.keep();
        }
    }
}

/// The stat of every entry of `manifest`'s tree at `root` (each file and symlink `lstat`ed,
/// each directory but the root `stat`ed, in parallel), as [`Written`] holds them: what a
/// stat cache of a tree made without writing it (a snapshot of a tree subvolume) is made of.
/// `root` must hold exactly that tree and not change (a read-only tree subvolume): an entry
/// that is not there, or of another type, is an error.
pub fn stats_of(root: &Dir, root_path: &Path, manifest: &CompactManifest) -> Result<Written> {
    let stat = |rel: &[u8]| -> Result<EntryStat> {
        rustix::fs::statat(root, path_of(rel), rustix::fs::AtFlags::SYMLINK_NOFOLLOW)
            .map(|st| EntryStat::of(&st))
            .map_err(|e| Error::io_at("", root_path.join(path_of(rel)), e.into()))
    };
    let (stats, dirs) = crate::workers::install(crate::workers::Pool::Checkout, || {
        rayon::join(
            || {
                (0..manifest.len())
                    .into_par_iter()
                    .map_init(Vec::new, |path, i| match manifest.get(i) {
                        Some(e) if e.kind != Kind::Dir => {
                            manifest.path_into(i, path);
                            stat(path).map(Some)
                        }
                        _ => Ok(None),
                    })
                    .collect::<Result<Vec<_>>>()
            },
            || {
                (ROOT + 1..manifest.dirs())
                    .into_par_iter()
                    .map(|d| {
                        let path = manifest.dir_path(d);
                        Ok((path.to_vec(), stat(path)?))
                    })
                    .collect::<Result<Vec<_>>>()
            },
        )
    });
    Ok(Written {
        stats: stats?,
        dirs: dirs?,
        from_tree: true,
        ..Written::default()
    })
}

fn sub_err(e: subvolume::SubvolumeError) -> Error {
    Error::Io(e.into())
}

/// DST is still what the checkout may take: absent, or (`replace_empty`) an empty directory.
fn dst_still_free(parent: &Dir, name: &OsStr, replace_empty: bool) -> Result<bool> {
    match parent
        .try_stat(name)
        .map_err(|e| Error::io_at("", name, e))?
    {
        None => Ok(true),
        Some(_) if !replace_empty => Ok(false),
        Some(_) => Ok(parent
            .open_dir(name)
            .and_then(|d| d.entries())
            .is_ok_and(|e| e.is_empty())),
    }
}

/// Splits DST into its parent directory and final name, refusing `/`, `.`, `..` and the like.
fn split_dst(dst: &Path) -> Result<(PathBuf, OsString)> {
    let mut bytes = dst.as_os_str().as_bytes();
    while bytes.len() > 1 && bytes.ends_with(b"/") {
        bytes = &bytes[..bytes.len() - 1];
    }
    let (parent, name) = match bytes.iter().rposition(|&b| b == b'/') {
        Some(0) => (&b"/"[..], &bytes[1..]),
        Some(i) => (&bytes[..i], &bytes[i + 1..]),
        None => (&b"."[..], bytes),
    };
    if matches!(name, b"" | b"." | b"..") || name.contains(&b'/') {
        return Err(Error::BadDestination {
            path: dst.to_path_buf(),
        });
    }
    Ok((
        PathBuf::from(OsStr::from_bytes(parent)),
        OsStr::from_bytes(name).to_owned(),
    ))
}

/// How a checkout names its staging directory beside DST (defined with the registrations of
/// those directories, in [`crate::dest_staging`]).
pub use crate::dest_staging::STAGING;

#[allow(clippy::too_many_arguments)]
fn fill(
    store: &Store,
    manifest: &CompactManifest,
    stage: &Dir,
    stage_path: &Path,
    opts: CheckoutOptions,
    progress: &Progress,
    record: bool,
) -> Result<(CheckoutReport, Written)> {
    let tree = Tree::of(manifest)?;

    let link_mode = match opts.mode {
        CheckoutMode::Auto => LinkMode::Auto,
        CheckoutMode::Clone => LinkMode::Clone,
        CheckoutMode::Copy => LinkMode::Copy,
    };
    let state = Batch::new(LinkState::new(link_mode, opts.strict));
    let counters = Counters {
        files: AtomicU64::new(0),
        symlinks: AtomicU64::new(0),
        cloned: AtomicU64::new(0),
        copied: AtomicU64::new(0),
        bytes: AtomicU64::new(0),
        fallbacks: Mutex::new(HashMap::new()),
        copy_requested: opts.mode == CheckoutMode::Copy,
    };
    let range = CopyRange::new();
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
        range: &range,
        record,
        stats: &stats,
    };
    // Set by a failed item, so that the others stop between two entries (the queue starts no
    // new item after an error).
    let stop = AtomicBool::new(false);
    let pool = crate::workers::pool(crate::workers::Pool::Checkout);
    let recorded = pool.run_publishing(
        pool.jobs(),
        vec![Work::Dir(ROOT)],
        Recorded::default,
        |out, work, publish| {
            let r = tree.make(&ctx, stage, stage_path, work, out, publish, &stop);
            if r.is_err() {
                stop.store(true, Ordering::Relaxed);
            }
            r
        },
    )?;

    let mut written = Written::default();
    if record {
        // (Collected in place: a `OnceLock<EntryStat>` is the size of an `Option` of one.)
        written.stats = stats.into_iter().map(OnceLock::into_inner).collect();
        let mut dir_stats: Vec<Option<EntryStat>> = vec![None; tree.dirs.len()];
        for out in recorded {
            for (d, st) in out.dirs {
                dir_stats[d] = Some(st);
            }
        }
        // The directories no single item saw whole (more than one item's worth of entries):
        // their stat now, every entry being made. Not the root (see `Written::dirs`).
        let rest: Vec<usize> = (ROOT + 1..tree.dirs.len())
            .filter(|&d| dir_stats[d].is_none())
            .collect();
        let more = crate::workers::install(crate::workers::Pool::Checkout, || {
            rest.par_iter()
                .map(|&d| {
                    let path = tree.dirs[d].path;
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
        // `tree.dirs` after the root is sorted by path, as `Written::dirs` wants.
        written.dirs = (ROOT + 1..tree.dirs.len())
            .filter_map(|d| Some((tree.dirs[d].path.to_vec(), dir_stats[d]?)))
            .collect();
    }

    let mut fallbacks: Vec<(String, u64)> = counters
        .fallbacks
        .into_inner()
        .map_err(|_| Error::msg("internal error: a worker panicked"))?
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    fallbacks.sort();
    let report = CheckoutReport {
        files: counters.files.into_inner(),
        dirs: (tree.dirs.len() - 1) as u64,
        symlinks: counters.symlinks.into_inner(),
        cloned: counters.cloned.into_inner(),
        copied: counters.copied.into_inner(),
        bytes: counters.bytes.into_inner(),
        fallbacks,
        ..Default::default()
    };
    Ok((report, written))
}

/// Why a checkout refuses a tree whose entries or directories [`Tree`] cannot number in 32 bits.
const TOO_BIG: &str = "a snapshot of 2^32 entries or directories or more is too large to check out";

/// The index of the staging root in [`Tree::dirs`].
const ROOT: usize = 0;

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
            return Err(Error::msg(TOO_BIG));
        }
        for d in ROOT + 1..dirs.len() {
            let parent = (manifest.dir_parent(d))
                .filter(|&p| p < dirs.len())
                .ok_or_else(|| {
                    Error::msg(format!(
                        "internal error: no directory for the parent of {}",
                        show(manifest.dir_path(d))
                    ))
                })?;
            dirs[parent].subdirs.push(d);
        }
        // Each directory's count of files and symlinks, so that each list is allocated once
        // at its size (grown by doubling, they held up to twice the tree).
        let mut counts = vec![0usize; dirs.len()];
        for e in manifest.iter().filter(|e| e.kind != Kind::Dir) {
            *counts.get_mut(e.dir).ok_or_else(|| Error::msg(TOO_BIG))? += 1;
        }
        for (d, n) in dirs.iter_mut().zip(counts) {
            d.leaves = Vec::with_capacity(n);
        }
        for (i, e) in manifest.iter().enumerate() {
            if e.kind != Kind::Dir {
                let i = u32::try_from(i).map_err(|_| Error::msg(TOO_BIG))?;
                dirs[e.dir].leaves.push(i);
            }
        }
        Ok(Tree { dirs, manifest })
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
                dir.create_dir(OsStr::from_bytes(name), 0o755)
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
        for &i in chunk {
            let i = i as usize;
            let e = self.manifest.get(i).ok_or_else(|| {
                Error::msg(format!("internal error: no entry {i} in the manifest"))
            })?;
            if stop.load(Ordering::Relaxed) {
                return Ok(());
            }
            if let Some(st) = place(ctx, &dir, td.path, e)? {
                let slot = ctx.stats.get(i).ok_or_else(|| {
                    Error::msg(format!("internal error: no stat slot for entry {i}"))
                })?;
                // (Each entry is in one item: the slot is empty.)
                let _ = slot.set(EntryStat::of(&st));
            }
        }
        // This item made every entry of its directory (not the root, whose stat changes
        // later): the directory's stat now is final.
        if ctx.record && d != ROOT && td.leaves.len() <= CHUNK {
            let st = dir
                .stat_self()
                .map_err(|e| Error::io_at("", stage_path.join(path_of(td.path)), e))?;
            out.dirs.push((d, EntryStat::of(&st)));
        }
        Ok(())
    }
}

/// What every call of [`place`] shares.
struct Ctx<'a> {
    store: &'a Store,
    state: &'a Batch,
    strict: bool,
    counters: &'a Counters,
    progress: &'a Progress,
    range: &'a CopyRange,
    /// Return each entry's stat.
    record: bool,
    /// Where each entry's stat goes when the checkout records (by manifest index; empty
    /// when it does not): set by the one item that writes the entry, so that no worker
    /// keeps a list of its own to be merged (that held the stats of the tree twice).
    stats: &'a [OnceLock<EntryStat>],
}

/// The batch's clone-or-copy state ([`LinkState`]), with a lock-free path for the common case.
/// A [`LinkState`] is settled once its attempt is `Copy` (no transition leaves it) or once a
/// clone has worked (every later clone failure is then per-file or an error, neither of
/// which changes it): from then on, [`LinkState::attempt`] is constant and
/// [`LinkState::succeeded`] changes nothing, so workers read the settled attempt from an
/// atomic and take the lock only for a failure, exactly as they would have under it.
///
/// Why the batch moved from clone to copy is kept under the same lock and set before the
/// settled copy is published, so that a worker which sees the batch settled on copy also
/// sees why.
struct Batch {
    state: Mutex<BatchState>,
    /// [`UNSETTLED`], [`SETTLED_CLONE`] or [`SETTLED_COPY`].
    settled: AtomicU8,
}

struct BatchState {
    link: LinkState,
    /// Why the batch moved from clone to copy, once it has.
    reason: Option<&'static str>,
}

const UNSETTLED: u8 = 0;
const SETTLED_CLONE: u8 = 1;
const SETTLED_COPY: u8 = 2;

impl Batch {
    fn new(state: LinkState) -> Batch {
        let b = Batch {
            state: Mutex::new(BatchState {
                link: state,
                reason: None,
            }),
            settled: AtomicU8::new(UNSETTLED),
        };
        b.settle(&state);
        b
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, BatchState>> {
        self.state
            .lock()
            .map_err(|_| Error::msg("internal error: a worker panicked"))
    }

    /// Publishes `state` as settled when it is (call with the lock held, after a change).
    fn settle(&self, state: &LinkState) {
        let settled = match state.attempt() {
            Attempt::Copy => SETTLED_COPY,
            Attempt::Clone if state.has_worked() => SETTLED_CLONE,
            _ => return,
        };
        self.settled.store(settled, Ordering::Release);
    }

    /// The attempt for the next file.
    fn attempt(&self) -> Result<Attempt> {
        match self.settled.load(Ordering::Acquire) {
            SETTLED_CLONE => Ok(Attempt::Clone),
            SETTLED_COPY => Ok(Attempt::Copy),
            _ => Ok(self.lock()?.link.attempt()),
        }
    }

    /// [`LinkState::succeeded`].
    fn succeeded(&self, attempt: Attempt) -> Result<()> {
        if self.settled.load(Ordering::Acquire) != UNSETTLED {
            return Ok(());
        }
        let mut state = self.lock()?;
        state.link.succeeded(attempt);
        self.settle(&state.link);
        Ok(())
    }

    /// [`LinkState::failed`]; when the batch moves to copy, `failure` becomes its reason
    /// ([`Batch::reason`]) before the move is published.
    fn failed(&self, tried: Attempt, failure: Failure) -> Result<Decision> {
        let mut state = self.lock()?;
        let decision = state.link.failed(tried, failure);
        if let Decision::Fallback {
            batch_moved: true, ..
        } = decision
        {
            state.reason = Some(failure.as_str());
        }
        self.settle(&state.link);
        Ok(decision)
    }

    /// Why the batch moved from clone to copy; `None` when it has not (it copies because
    /// no clone was to be attempted).
    fn reason(&self) -> Result<Option<&'static str>> {
        Ok(self.lock()?.reason)
    }
}

fn open_beneath(stage: &Dir, stage_path: &Path, rel: &[u8]) -> Result<Dir> {
    if rel.is_empty() {
        return stage
            .try_clone()
            .map_err(|e| Error::io_at("", stage_path, e));
    }
    stage
        .open_dir_beneath(path_of(rel))
        .map_err(|e| Error::io_at("", stage_path.join(path_of(rel)), e))
}

/// Writes entry `e` into `dir`, the directory at `dir_path` (its path in the tree, which
/// errors name); returns its stat when `ctx.record` asks for it.
fn place(ctx: &Ctx<'_>, dir: &Dir, dir_path: &[u8], e: CompactEntry<'_>) -> Result<Option<Stat>> {
    let c = ctx.counters;
    let name = OsStr::from_bytes(e.name);
    // Its path in the tree, for messages (made only for one).
    let path = || {
        let mut p = dir_path.to_vec();
        if !p.is_empty() {
            p.push(b'/');
        }
        p.extend_from_slice(e.name);
        show(&p)
    };
    let hash = match e.data {
        DataRef::Target(t) => {
            dir.symlink(OsStr::from_bytes(t), name)
                .map_err(|err| Error::io_at("", path(), err))?;
            let st = if ctx.record {
                Some(
                    dir.stat(name)
                        .map_err(|err| Error::io_at("", path(), err))?,
                )
            } else {
                None
            };
            c.symlinks.fetch_add(1, Ordering::Relaxed);
            ctx.progress.add(1, 0);
            return Ok(st);
        }
        DataRef::Blob { hash, .. } => hash,
        DataRef::None => return Ok(None),
    };
    let mode = if e.kind == Kind::Executable {
        0o755
    } else {
        0o644
    };
    let blob = Store::blob_rel(&hash);
    let poisoned = || Error::msg("internal error: a worker panicked");
    let mut attempt = ctx.state.attempt()?;
    let mut reason: Option<&'static str> = None;
    loop {
        let method = match attempt {
            Attempt::Clone => Method::Clone,
            _ => Method::Copy,
        };
        let placed = place_at(ctx.store.blobs(), &blob, dir, name, mode, method, ctx.range)
            .map_err(|source| Error::FromBlob {
                path: path().into(),
                blob: ctx.store.blob_path(&hash),
                source,
            })?;
        let st = match placed {
            Placed::Cloned(st) => {
                ctx.state.succeeded(Attempt::Clone)?;
                c.cloned.fetch_add(1, Ordering::Relaxed);
                c.bytes.fetch_add(st.st_size as u64, Ordering::Relaxed);
                st
            }
            Placed::Copied(st, _) => {
                c.copied.fetch_add(1, Ordering::Relaxed);
                c.bytes.fetch_add(st.st_size as u64, Ordering::Relaxed);
                if !c.copy_requested {
                    let why = match reason {
                        Some(r) => Some(r),
                        None => ctx.state.reason()?,
                    };
                    let why = why.unwrap_or("clone-not-attempted");
                    *c.fallbacks
                        .lock()
                        .map_err(|_| poisoned())?
                        .entry(why)
                        .or_default() += 1;
                }
                st
            }
            Placed::SourceVanished => {
                return Err(Corrupt::MissingBlob {
                    store: ctx.store.root().to_path_buf(),
                    hash,
                    needed_for: path().into(),
                }
                .into());
            }
            Placed::Unsupported(cause) => {
                let failure = Failure::Clone(cause);
                match ctx.state.failed(Attempt::Clone, failure)? {
                    Decision::Fallback { attempt: next, .. } => {
                        reason = Some(failure.as_str());
                        attempt = next;
                        continue;
                    }
                    Decision::Fail if ctx.strict => {
                        return Err(Error::Strict(format!(
                            "a clone was required (--mode clone, --strict): cannot clone {} \
                             from the store ({}: {}); refusing to copy",
                            path(),
                            cause.as_str(),
                            cause.describe()
                        )));
                    }
                    Decision::Fail => {
                        return Err(Error::CloneFailedAfterSuccess {
                            path: path().into(),
                            reason: cause.as_str(),
                        });
                    }
                }
            }
        };
        c.files.fetch_add(1, Ordering::Relaxed);
        ctx.progress.add(1, e.size());
        return Ok(ctx.record.then_some(st));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_settled_on_copy_already_knows_why() {
        let fs = Failure::Clone(cowtree_fs::UnsupportedCause::Filesystem);
        let b = Batch::new(LinkState::new(LinkMode::Auto, false));
        assert_eq!(b.reason().unwrap(), None);
        assert!(matches!(
            b.failed(Attempt::Clone, fs).unwrap(),
            Decision::Fallback {
                attempt: Attempt::Copy,
                batch_moved: true
            }
        ));
        // What a worker reading the settled state without the lock sees, then the reason.
        assert_eq!(b.settled.load(Ordering::Acquire), SETTLED_COPY);
        assert!(matches!(b.attempt().unwrap(), Attempt::Copy));
        assert_eq!(b.reason().unwrap(), Some("filesystem-cannot-reflink"));

        // Copy asked for: settled from the start, with no reason (no clone was attempted).
        let b = Batch::new(LinkState::new(LinkMode::Copy, false));
        assert_eq!(b.settled.load(Ordering::Acquire), SETTLED_COPY);
        assert_eq!(b.reason().unwrap(), None);
    }

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

    #[test]
    fn split_dst_table() {
        let ok = [
            ("wt", ".", "wt"),
            ("a/wt", "a", "wt"),
            ("a/wt/", "a", "wt"),
            ("/wt", "/", "wt"),
            ("rel.", ".", "rel."),
            ("a/..x", "a", "..x"),
        ];
        for (input, parent, name) in ok {
            let (p, n) = split_dst(Path::new(input)).unwrap();
            assert_eq!(
                (p.to_str().unwrap(), n.to_str().unwrap()),
                (parent, name),
                "{input}"
            );
        }
        for bad in [".", "..", "a/.", "a/..", "/", ""] {
            assert!(split_dst(Path::new(bad)).is_err(), "{bad}");
        }
    }
}
