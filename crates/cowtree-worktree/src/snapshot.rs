//! Incremental snapshot of a registered worktree.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use cowtree_fs::progress::Progress;
use cowtree_store::{Hash, Store};

use crate::base::Base;
use crate::cache;
use crate::cache::StatCache;
use crate::error::{Error, Result};
use crate::registry::{self, Worktree};
use crate::scan::{self, Mode};

/// What an incremental snapshot did.
#[derive(Debug, Clone)]
pub struct SnapshotReport {
    /// The snapshot id (equal to a fresh snapshot's of the same tree).
    pub id: Hash,
    /// File entries.
    pub files: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Files read because the stat cache did not prove them known.
    pub read: u64,
    /// Directories listed because the stat cache did not prove their entries known.
    pub listed: u64,
    /// Blobs new to the store.
    pub new_blobs: u64,
    /// Their bytes.
    pub new_bytes: u64,
    /// The worktree's base moved to this snapshot.
    pub base_updated: bool,
    /// Milliseconds.
    pub elapsed_ms: u64,
    /// The worktree was read from a read-only snapshot of it (a btrfs subvolume), kept since
    /// as the store's tree of the snapshot.
    pub frozen: bool,
    /// Why it was read in place where it is on btrfs (see [`cowtree_fs::whole_tree::NotUsed`]).
    pub reason: Option<cowtree_fs::whole_tree::NotUsed>,
}

/// Records the worktree as a snapshot, reading only files whose stat changed since their
/// content hash was last learnt. The stat cache is refreshed; the base moves to the new
/// snapshot only when `update_base`.
pub fn snapshot(
    store: &Store,
    wt: &mut Worktree,
    name: Option<&str>,
    update_base: bool,
) -> Result<SnapshotReport> {
    snapshot_with_progress(store, wt, name, update_base, &Progress::default())
}

/// [`snapshot`], counting into `progress` each file, symlink or other non-directory entry
/// found in the worktree and the bytes of the files read and put into the store (see
/// [`scan::scan_with_progress`]); no total is set.
pub fn snapshot_with_progress(
    store: &Store,
    wt: &mut Worktree,
    name: Option<&str>,
    update_base: bool,
    progress: &Progress,
) -> Result<SnapshotReport> {
    let started = Instant::now();
    if let Some(n) = name {
        cowtree_store::refs::validate_name(n)?;
    }
    let _held = registry::lock(store, wt)?;
    registry::reload(store, wt)?;
    crate::switch::finish_pending(store, wt)?;
    let _lock = store.lock_shared()?;
    let (base, cache, stored) = load_base_and_cache(store, wt)?;
    let staging = store.staging("ingest")?;
    // A worktree that is a btrfs subvolume (a checkout on btrfs makes one) is read from a
    // read-only snapshot of it: a point in time no writer can change, which keeps every inode
    // and time (so the stat cache applies to it) and then stays as the snapshot's tree.
    let (frozen, frozen_at, reason) = freeze(store, &wt.path)?;
    let mut scan = scan::scan_with_progress(
        &wt.path,
        &base,
        &cache,
        Mode::Snapshot {
            store,
            staging: staging.dir(),
            stored,
            frozen: frozen.as_ref().map(|p| (p.path(), frozen_at)),
        },
        progress,
    )?;
    // The cache and the base, no longer needed, are freed with the tree (below).
    let read = (cache, base);
    let t_walk = started.elapsed();
    let tree = std::mem::take(&mut scan.tree);
    let id = save_manifest_and_cache(store, wt, tree, read, scan.started_ns)?;
    // Kept as the snapshot's tree, with the stat cache just written, which describes it
    // (derived data: a failure loses nothing, and the read-only snapshot is removed).
    let frozen = match frozen {
        Some(p) => match p.publish(&id) {
            Ok(_) => {
                registry::share_cache_with_tree(store, wt, &id);
                true
            }
            Err(_) => false,
        },
        None => false,
    };
    let t_saved = started.elapsed();
    if let Some(n) = name {
        cowtree_store::refs::set(store, n, &id)?;
    }
    if update_base {
        wt.base = id;
    }
    registry::save(store, wt, None)?;
    if std::env::var_os("COWTREE_TIMING").is_some() {
        eprintln!(
            "timing: walk {t_walk:?}, manifest and cache saved {t_saved:?}, record {:?}",
            started.elapsed()
        );
    }
    Ok(SnapshotReport {
        id,
        files: scan.files,
        bytes: scan.bytes,
        read: scan.hashed,
        listed: scan.listed,
        new_blobs: scan.new_blobs,
        new_bytes: scan.new_bytes,
        base_updated: update_base,
        elapsed_ms: started.elapsed().as_millis() as u64,
        frozen,
        reason,
    })
}

/// The worktree's base and stat cache, and whether the cache's file records are known to be
/// stored.
///
/// A stat cache written by a snapshot (or a checkout) names that snapshot: while it is in
/// the store (gc waits for our shared lock), so is the content of every file record, and
/// the base is not needed to tell that a trusted file's blob is stored. Otherwise the base
/// is read, at once with the cache (it is checked against its id).
fn load_base_and_cache(store: &Store, wt: &Worktree) -> Result<(Base, StatCache, bool)> {
    let claim =
        registry::cache_blobs_of(store, wt).filter(|id| store.has_snapshot(id).unwrap_or(false));
    let (base, cache) = std::thread::scope(|s| {
        let cache = s.spawn(|| registry::load_cache(store, wt));
        let base = match claim {
            Some(_) => Ok(Base::empty()),
            None => Base::load(store, &wt.base),
        };
        (base, cache.join())
    });
    let cache = cache.map_err(|_| Error::internal("a thread panicked"))?;
    // (The worktree lock keeps the cache as it was when its trailer was read; should it
    // differ all the same, the base is read now.)
    let stored = claim.is_some() && cache.blobs_of == claim;
    let base = if claim.is_some() && !stored {
        Base::load(store, &wt.base)?
    } else {
        base?
    };
    Ok((base, cache, stored))
}

/// Writes the snapshot's manifest and the worktree's stat cache from the walk's `tree`;
/// frees `tree` and `read` on the way; returns the snapshot id.
///
/// The manifest (checked, hashed, written durably) and the stat cache (written) are
/// independent: write them at once, each streamed from the walk's pieces. The record,
/// which may name the new base, is written after both. Should the manifest be refused
/// (say, a directory listed the same name twice while it changed), the cache written
/// beside it may be one that does not decode, which only means that the next command
/// reads every file again.
fn save_manifest_and_cache(
    store: &Store,
    wt: &Worktree,
    tree: scan::Tree,
    read: (StatCache, Base),
    started_ns: i64,
) -> Result<Hash> {
    let context = format!("snapshot of {}", wt.path.display());
    // Shared by the two writers; whichever is done with it last frees it, the manifest's
    // writer while its file is synced.
    let tree = Arc::new(tree);
    let cache_tree = Arc::clone(&tree);
    // The cache's trailer names the snapshot written beside it, known once its manifest is.
    let (id_tx, id_rx) = std::sync::mpsc::channel::<Hash>();
    let (saved, cached) = std::thread::scope(|s| {
        let cached = s.spawn(move || {
            registry::write_cache_with(store, wt, |w| {
                write_cache_records(w, cache_tree, started_ns, id_rx)
            })
        });
        let saved = (|| -> Result<Hash> {
            let mut m = store.manifest_writer(tree.entries(), &context)?;
            tree.for_each(|entry, _| m.push(entry))?;
            // Freeing the walk's output takes a few milliseconds of the CPU, which waits
            // for the disk while the manifest is synced: do both at once (or one after the
            // other when no thread can be started: the closure, and the tree, are dropped).
            let freed = std::thread::Builder::new().spawn_scoped(s, move || drop((tree, read)));
            let id = m.finish();
            let joined = freed.map(|f| f.join());
            let id = id?;
            if let Ok(Err(_)) = joined {
                return Err(Error::internal("a thread panicked"));
            }
            Ok(id)
        })();
        if let Ok(id) = &saved {
            // A cache thread that failed has dropped the receiver: nothing to tell.
            let _ = id_tx.send(*id);
        }
        drop(id_tx);
        (saved, cached.join())
    });
    let id = saved?;
    cached.map_err(|_| Error::internal("a thread panicked"))??;
    Ok(id)
}

/// Writes the stat cache of `tree` to `w`: header, file and symlink records, directory
/// records, then the trailer naming the snapshot id `id_rx` brings (none if it closes).
fn write_cache_records(
    w: &mut dyn std::io::Write,
    tree: Arc<scan::Tree>,
    started_ns: i64,
    id_rx: std::sync::mpsc::Receiver<Hash>,
) -> std::io::Result<()> {
    let mut rec = Vec::with_capacity(24 + 256);
    let dirs = tree.dir_records();
    cache::encode_header(&mut rec, started_ns, tree.records(), dirs.len() as u64);
    w.write_all(&rec)?;
    tree.for_each(|entry, key| {
        let Some(key) = key else { return Ok(()) };
        rec.clear();
        if !scan::cache_record(entry, key, &mut rec) {
            return Err(std::io::Error::other("internal error: a bad entry"));
        }
        w.write_all(&rec)
    })?;
    for d in dirs {
        rec.clear();
        cache::encode_rec(&mut rec, &d.path, &d.key, &d.hash);
        w.write_all(&rec)?;
    }
    drop(tree);
    // No id (the manifest was refused): the channel is closed, and none is named.
    let id = id_rx.recv().ok();
    w.write_all(&cache::encode_trailer(id.as_ref()))
}

/// A read-only snapshot of the worktree at `path` taken in the store
/// ([`cowtree_store::trees::freeze`]), with the clock read before it was taken; `None` and
/// why where the worktree is no btrfs subvolume this user may snapshot there (no reason on
/// other filesystems).
#[cfg(unix)]
fn freeze<'s>(
    store: &'s Store,
    path: &Path,
) -> Result<(
    Option<cowtree_store::trees::Pending<'s>>,
    i64,
    Option<cowtree_fs::whole_tree::NotUsed>,
)> {
    let root = cowtree_fs::dir::Dir::open(path).map_err(Error::Io)?;
    let taken_ns = crate::cache::now_ns();
    let at = cowtree_fs::subvolume::At::new(&root, path);
    Ok(match cowtree_store::trees::freeze(store, at)? {
        Ok(p) => (Some(p), taken_ns, None),
        Err(cowtree_fs::whole_tree::NotUsed::Filesystem { .. }) => (None, 0, None),
        Err(why) => (None, 0, Some(why)),
    })
}

/// A read-only snapshot of the worktree: none on Windows, which has no subvolumes (the
/// worktree is read in place, as on any filesystem but btrfs).
#[cfg(windows)]
fn freeze<'s>(
    _store: &'s Store,
    _path: &Path,
) -> Result<(
    Option<cowtree_store::trees::Pending<'s>>,
    i64,
    Option<cowtree_fs::whole_tree::NotUsed>,
)> {
    Ok((None, 0, None))
}

/// What [`plan`] is asked to record.
#[derive(Debug)]
pub enum Target {
    /// A directory: recorded incrementally when it is the root of a worktree registered in
    /// the store, else by reading every file.
    Dir(PathBuf),
    /// A worktree already found in the store.
    Worktree(Box<Worktree>),
    /// A directory the caller already found to be no worktree it can record incrementally:
    /// recorded by reading every file, with no lookup in the registry.
    Tree(PathBuf),
}

/// How a snapshot is recorded, beside what is recorded.
#[derive(Debug, Clone, Copy, Default)]
pub struct RecordOptions<'a> {
    /// Also name the snapshot (validated before any work; an existing name is moved).
    pub name: Option<&'a str>,
    /// For a worktree, leave its base where it was (status keeps showing the work as changes).
    pub keep_base: bool,
    /// Read every file even when the target is a registered worktree: a fresh snapshot, with
    /// the same id, that leaves the worktree's record (base and stat cache) alone.
    pub full: bool,
    /// Record a tree that is on another filesystem than the store by reading every file,
    /// although its data is then copied into the store instead of shared with it. Without it
    /// [`plan`] refuses such a tree ([`cowtree_store::Error::WouldCopy`]).
    pub copy_across: bool,
}

/// The way a snapshot will be recorded, decided by [`plan`] before any work, so that a caller
/// can say what is about to happen (a progress line) and then [`Plan::run`] it.
#[derive(Debug)]
pub enum Plan {
    /// An incremental snapshot of a registered worktree ([`snapshot_with_progress`]).
    Incremental {
        /// The worktree.
        worktree: Box<Worktree>,
        /// Whether its base moves to the new snapshot.
        update_base: bool,
    },
    /// A snapshot that reads every file of the tree at this path
    /// ([`cowtree_store::ingest::snapshot_dir_with_progress`]).
    Full(PathBuf),
}

/// Why a snapshot that read every file had to copy data into the store instead of sharing it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CopyCause {
    /// The tree is on another filesystem than the store's blobs: a store on the tree's
    /// filesystem would share the data.
    OtherFilesystem,
    /// The tree's filesystem (named) cannot share data between files.
    NoReflink(&'static str),
}

/// What [`Plan::run`] recorded.
#[derive(Debug)]
pub enum Recorded {
    /// An incremental snapshot of a worktree; its record is saved.
    Incremental {
        /// The worktree, with its new base when that moved.
        worktree: Box<Worktree>,
        /// What the snapshot did.
        report: SnapshotReport,
    },
    /// A snapshot that read every file.
    Full {
        /// The recorded tree, as given.
        dir: PathBuf,
        /// What the snapshot did.
        report: cowtree_store::ingest::IngestReport,
        /// Why data was copied, when `report.copied_bytes` is not zero.
        copied: Option<CopyCause>,
    },
}

/// What a recording did, and whether noting it in the store's history failed (the snapshot is
/// recorded all the same; the error is only worth a warning).
#[derive(Debug)]
pub struct Recording {
    /// The snapshot and how it was recorded.
    pub recorded: Recorded,
    /// Noting the snapshot's source in the store's history failed.
    pub history_error: Option<cowtree_store::Error>,
}

impl Recorded {
    /// The snapshot id.
    pub fn id(&self) -> Hash {
        match self {
            Recorded::Incremental { report, .. } => report.id,
            Recorded::Full { report, .. } => report.id,
        }
    }
}

/// Decides how `target` is recorded in `store`: incrementally when it is a worktree
/// registered in `store` (a [`Target::Dir`] is looked up by its root) and not `opts.full`;
/// else by reading every file. Fails when looking up a [`Target::Dir`] fails, and refuses
/// ([`cowtree_store::Error::WouldCopy`]) to read every file of a tree on another filesystem
/// than the store's blobs unless `opts.copy_across`: its data would be copied into the store.
/// (An incremental snapshot of a worktree is not refused: it was checked out from this store,
/// across filesystems or not, and reads only what changed.)
pub fn plan(store: &Store, target: Target, opts: &RecordOptions<'_>) -> Result<Plan> {
    let plan = decide(store, target, opts)?;
    if let Plan::Full(dir) = &plan
        && !opts.copy_across
        && crate::os::stat(dir).is_ok()
        && let Ok(false) =
            cowtree_store::discover::same_filesystem(dir, &store.root().join("blobs"))
    {
        return Err(cowtree_store::Error::WouldCopy {
            store: store.root().to_path_buf(),
            tree: dir.clone(),
        });
    }
    Ok(plan)
}

fn decide(store: &Store, target: Target, opts: &RecordOptions<'_>) -> Result<Plan> {
    let update_base = !opts.keep_base;
    Ok(match target {
        Target::Worktree(wt) if opts.full => Plan::Full(wt.path),
        Target::Worktree(worktree) => Plan::Incremental {
            worktree,
            update_base,
        },
        Target::Dir(dir) | Target::Tree(dir) if opts.full => Plan::Full(dir),
        Target::Tree(dir) => Plan::Full(dir),
        Target::Dir(dir) => match registry::lookup(store, &dir)? {
            Some(worktree) => Plan::Incremental {
                worktree: Box::new(worktree),
                update_base,
            },
            None => Plan::Full(dir),
        },
    })
}

impl Plan {
    /// The tree this plan records.
    pub fn path(&self) -> &Path {
        match self {
            Plan::Incremental { worktree, .. } => &worktree.path,
            Plan::Full(dir) => dir,
        }
    }

    /// Records the snapshot, names it `name` when given, and notes its source in the store's
    /// history. `progress` counts entries (incremental) or files (full) as they are found.
    pub fn run(self, store: &Store, name: Option<&str>, progress: &Progress) -> Result<Recording> {
        self.run_preserving(store, name, progress, None)
    }

    /// [`Plan::run`], recording also what `archive` keeps of the tree (`cowtree snapshot
    /// --archive`: [`cowtree_store::ingest::snapshot_dir_preserving`]). Such a snapshot reads
    /// every file (a worktree is recorded as any tree: its record, base and stat cache stay
    /// as they are).
    pub fn run_preserving(
        self,
        store: &Store,
        name: Option<&str>,
        progress: &Progress,
        archive: Option<cowtree_store::Preserve>,
    ) -> Result<Recording> {
        let plan = match self {
            Plan::Incremental { worktree, .. } if archive.is_some() => Plan::Full(worktree.path),
            p => p,
        };
        let (recorded, source) = match plan {
            Plan::Incremental {
                mut worktree,
                update_base,
            } => {
                let report =
                    snapshot_with_progress(store, &mut worktree, name, update_base, progress)?;
                let source = worktree.path.clone();
                (Recorded::Incremental { worktree, report }, source)
            }
            Plan::Full(dir) => {
                let report = cowtree_store::ingest::snapshot_dir_preserving(
                    store, &dir, name, progress, archive,
                )?;
                let copied = (report.copied_bytes > 0).then(|| copy_cause(store, &dir));
                let source = cowtree_store::discover::absolute(&dir).unwrap_or(dir.clone());
                let recorded = Recorded::Full {
                    dir,
                    report,
                    copied,
                };
                (recorded, source)
            }
        };
        let history_error =
            cowtree_store::history::record(store, &recorded.id(), Some(&source)).err();
        Ok(Recording {
            recorded,
            history_error,
        })
    }
}

/// Records `target` in `store` in one call: [`plan`], then [`Plan::run`].
pub fn record(
    store: &Store,
    target: Target,
    opts: &RecordOptions<'_>,
    progress: &Progress,
) -> Result<Recording> {
    plan(store, target, opts)?.run(store, opts.name, progress)
}

/// Why the snapshot of `dir` copied data into `store`.
fn copy_cause(store: &Store, dir: &Path) -> CopyCause {
    let dev = |p: &Path| {
        crate::os::stat(p)
            .map(|s| cowtree_fs::sys::stat_dev(&s))
            .ok()
    };
    if dev(dir) != dev(&store.root().join("blobs")) {
        return CopyCause::OtherFilesystem;
    }
    CopyCause::NoReflink(crate::os::fs_name(dir))
}
