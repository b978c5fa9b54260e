//! The one directory walker of cowtree: parallel, directory-relative, never following a
//! symlink, with a bounded number of open descriptors, and with the traversal kept apart from
//! what is done per directory.
//!
//! The shape is ripgrep's parallel walker: [`Walk::run`] takes a factory that builds one
//! [`Visitor`] per worker thread; the walk calls the visitor for each directory it opens, and
//! hands every visitor back at the end, so that per-worker state (counts, entries found) needs
//! no lock while the walk runs. A visitor decides everything about the tree's shape:
//!
//! - [`Visitor::visit_dir`] gets the directory open ([`DirVisit::dir`]), lists it when it wants
//!   to ([`DirVisit::entries`]: a visitor that knows the names from elsewhere need not), and
//!   says which subdirectories to walk ([`DirVisit::descend`]), each with a context value of its
//!   own that the child's visit receives (the destination directory to create into, "this
//!   subtree is unchanged", a slot for the child's output...).
//! - [`DirVisit::spawn`] splits the work of a big directory: each job runs later, on whichever
//!   worker is free, with the directory's handle ([`Visitor::visit_job`]).
//! - The first error a visitor returns stops the walk: no directory or job starts after it,
//!   and [`Walk::run`] returns it. Visitors looping over many entries can look at
//!   [`DirVisit::stopped`] to stop sooner.
//!
//! Safety: a root is opened by the caller (the user named it); every directory below is
//! opened beneath an open directory with `O_NOFOLLOW|O_DIRECTORY`: its parent's handle while
//! that is held, else the root's with `openat2(RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS)` (a walk
//! per component where the kernel lacks it, and on macOS; see [`crate::dir::Dir`]). A symlink
//! swapped in for a directory makes that open fail; it is never followed.
//! On Windows the same walk runs over NT handles: each directory is opened relative to its
//! parent's handle (or component by component from the root) with `FILE_OPEN_REPARSE_POINT`,
//! and a symlink or junction found there is refused, never followed; a listing gives a
//! reparse point as `dir::FileType::ReparsePoint`, which a visitor does not descend.
//! Relative paths ([`DirVisit::rel`]) are the names' `OsStr` encoded bytes (WTF-8 there)
//! joined by `/`.
//!
//! Descriptors: a queued directory or job holds its parent's handle only while fewer than
//! [`HELD_PER_WORKER`] per worker are held (beyond that, a directory is opened from the root
//! by its path, and a job runs on the worker that spawned it, right after the visit), so a
//! walk holds at most [`FDS_PER_WORKER`] descriptors per worker, whatever the tree's shape,
//! plus what the visitors open themselves.
//!
//! Threads: a [`Walk`] runs with the worker count of a [`Pool`] ([`Walk::on`]) or its own
//! ([`Walk::new`]), on threads started for the walk (see [`Pool`] for why not rayon's); its
//! worker count comes from [`crate::workers::budget`].

use std::ffi::OsStr;
use std::io;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use crate::dir::{Dir, DirEntry};
use crate::progress::Progress;
use crate::workers::{Pool, Publish};

/// Parent handles queued work may hold, per worker.
pub const HELD_PER_WORKER: usize = 6;

/// Descriptors a walk holds per worker at most: the directory being visited, its reopened
/// listing handle, and [`HELD_PER_WORKER`] held by queued work. Count it into
/// [`crate::workers::Demand::fds_per_worker`] with the visitor's own.
pub const FDS_PER_WORKER: usize = HELD_PER_WORKER + 2;

/// What a walk does in each directory, one instance per worker thread (built by the factory
/// given to [`Walk::run`], returned by it at the end).
pub trait Visitor: Send {
    /// The value a directory is visited with: given with the root ([`Walk::run`]) and with
    /// each [`DirVisit::descend`].
    type Ctx: Send;
    /// Work on a directory's entries deferred with [`DirVisit::spawn`]; a visitor that never
    /// spawns can use [`std::convert::Infallible`].
    type Job: Send;
    /// The visitor's error; the first one stops the walk.
    type Error: Send;

    /// Visits one directory, open in `dir`, with the value its parent (or the root) gave.
    fn visit_dir(
        &mut self,
        dir: &mut DirVisit<'_, Self::Ctx, Self::Job>,
        ctx: Self::Ctx,
    ) -> Result<(), Self::Error>;

    /// Runs a job that a visit of the directory `job.dir()` spawned.
    fn visit_job(&mut self, dir: &JobVisit<'_>, job: Self::Job) -> Result<(), Self::Error>;

    /// A directory to be visited could not be opened (`error` names it relative to its root:
    /// gone, replaced by a symlink or a file, no permission...). `Ok` skips it; an error stops
    /// the walk.
    fn open_failed(
        &mut self,
        at: &Failed<'_>,
        ctx: Self::Ctx,
        error: io::Error,
    ) -> Result<(), Self::Error>;
}

/// A directory that could not be opened: see [`Visitor::open_failed`].
#[derive(Debug)]
pub struct Failed<'a> {
    /// Which root it is under (its index in the roots given to [`Walk::run`]).
    pub root: usize,
    /// Its path relative to that root (raw bytes, `/`-separated; empty for the root).
    pub rel: &'a [u8],
}

/// How a subdirectory is opened for its visit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Open {
    /// A handle that can list it.
    List,
    /// An `O_PATH` handle where the platform has one (cheaper; enough to look entries up,
    /// `stat` and open them); [`DirVisit::entries`] reopens it to list.
    PathOnly,
}

/// A directory handle held by queued work, counted once against the walk's bound however
/// many queued items share it (all the subdirectories and jobs one visit queues share one:
/// the bound is on descriptors, not on items).
struct Held<'w> {
    dir: Arc<Dir>,
    count: &'w AtomicUsize,
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        self.count.fetch_sub(1, Ordering::Relaxed);
    }
}

/// One unit of a walk's queue.
enum Item<'w, C, J> {
    Dir {
        root: usize,
        rel: Vec<u8>,
        ctx: C,
        open: Open,
        /// The parent's handle, when one could be held (else: opened from the root).
        parent: Option<Arc<Held<'w>>>,
    },
    Job {
        root: usize,
        rel: Arc<[u8]>,
        held: Arc<Held<'w>>,
        job: J,
    },
}

/// What a walk shares between its workers.
struct Shared<'w> {
    roots: &'w [&'w Dir],
    held: AtomicUsize,
    max_held: usize,
    stop: AtomicBool,
    progress: &'w Progress,
}

impl<'w> Shared<'w> {
    fn hold(&'w self, dir: &Arc<Dir>) -> Option<Held<'w>> {
        let mut n = self.held.load(Ordering::Relaxed);
        loop {
            if n >= self.max_held {
                return None;
            }
            match self
                .held
                .compare_exchange_weak(n, n + 1, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => {
                    return Some(Held {
                        dir: Arc::clone(dir),
                        count: &self.held,
                    });
                }
                Err(now) => n = now,
            }
        }
    }
}

/// One directory being visited: its open handle, where it is, and the means to walk on.
pub struct DirVisit<'v, C, J> {
    shared: &'v Shared<'v>,
    root: usize,
    rel: Arc<[u8]>,
    dir: Arc<Dir>,
    path_only: bool,
    /// The handle of [`DirVisit::dir`] held for the items this visit queues, once one is.
    held: Option<Arc<Held<'v>>>,
    /// Directories and jobs queued by this visit, added to the walk's queue after it.
    pushed: Vec<Item<'v, C, J>>,
    /// Jobs that found no handle to hold: run by this worker after the visit.
    inline_jobs: Vec<J>,
}

impl<'v, C, J> DirVisit<'v, C, J> {
    /// The directory, open. When it was reached with [`DirVisit::descend_path_only`] it may
    /// be an `O_PATH` handle, which cannot be listed or read through: see
    /// [`DirVisit::entries`].
    pub fn dir(&self) -> &Dir {
        &self.dir
    }

    /// Which root the directory is under (its index in the roots given to [`Walk::run`]).
    pub fn root(&self) -> usize {
        self.root
    }

    /// Its path relative to its root: raw bytes (on Windows the names' WTF-8, as
    /// `OsStr::as_encoded_bytes` gives them), `/`-separated, empty for the root itself.
    pub fn rel(&self) -> &[u8] {
        &self.rel
    }

    /// [`DirVisit::rel`] as a path.
    pub fn rel_path(&self) -> &Path {
        Path::new(rel_os_str(&self.rel))
    }

    /// The path of the entry `name` in this directory, relative to the root.
    pub fn child_rel(&self, name: &[u8]) -> Vec<u8> {
        join(&self.rel, name)
    }

    /// The walk's progress counters ([`Walk::progress`]), for the visitor to count what it
    /// does; the walk itself counts nothing there.
    pub fn progress(&self) -> &Progress {
        self.shared.progress
    }

    /// True once a worker has failed: the walk is stopping, and the rest of this visit's work
    /// will be thrown away.
    pub fn stopped(&self) -> bool {
        self.shared.stop.load(Ordering::Relaxed)
    }

    /// The directory's entries except `.` and `..`, in the order the filesystem returns
    /// them. A directory opened path-only is reopened first (and stays so for the rest of the
    /// visit and for the subdirectories and jobs queued after this call).
    pub fn entries(&mut self) -> io::Result<Vec<DirEntry>> {
        if self.path_only {
            self.dir = Arc::new(self.dir.reopen()?);
            self.path_only = false;
            // Items queued from now on hold the new handle.
            self.held = None;
        }
        match Arc::get_mut(&mut self.dir) {
            // The walk's own handle, used by no one else: read through its own offset.
            Some(dir) => dir.read_entries(),
            None => self.dir.entries(),
        }
    }

    /// Walks into the subdirectory `name` (an entry of this directory): it is visited with
    /// `ctx`. It is opened when its visit starts, never following a symlink: if something
    /// else is there by then, [`Visitor::open_failed`] says so.
    pub fn descend(&mut self, name: &OsStr, ctx: C) {
        self.push_dir(name, ctx, Open::List);
    }

    /// [`DirVisit::descend`] with an `O_PATH` handle where the platform has one: for a visit
    /// that most likely will not list the directory (its names are known from elsewhere).
    pub fn descend_path_only(&mut self, name: &OsStr, ctx: C) {
        self.push_dir(name, ctx, Open::PathOnly);
    }

    /// The directory's handle held for a queued item: the one this visit holds already,
    /// else a new hold if the walk's bound has room.
    fn hold(&mut self) -> Option<Arc<Held<'v>>> {
        if self.held.is_none() {
            self.held = self.shared.hold(&self.dir).map(Arc::new);
        }
        self.held.clone()
    }

    fn push_dir(&mut self, name: &OsStr, ctx: C, open: Open) {
        let parent = self.hold();
        self.pushed.push(Item::Dir {
            root: self.root,
            rel: join(&self.rel, name.as_encoded_bytes()),
            ctx,
            open,
            parent,
        });
    }

    /// Defers `job` on this directory's entries, to run on any free worker with the
    /// directory's handle ([`Visitor::visit_job`]): for a directory too big for one worker.
    /// When no more handles may be held, the job runs on this worker right after this visit.
    pub fn spawn(&mut self, job: J) {
        match self.hold() {
            Some(held) => self.pushed.push(Item::Job {
                root: self.root,
                rel: Arc::clone(&self.rel),
                held,
                job,
            }),
            None => self.inline_jobs.push(job),
        }
    }
}

/// The directory a job runs on: see [`Visitor::visit_job`].
pub struct JobVisit<'v> {
    shared: &'v Shared<'v>,
    root: usize,
    rel: &'v [u8],
    dir: &'v Dir,
}

impl JobVisit<'_> {
    /// The directory, open as it was for its visit.
    pub fn dir(&self) -> &Dir {
        self.dir
    }

    /// Which root the directory is under.
    pub fn root(&self) -> usize {
        self.root
    }

    /// Its path relative to its root (empty for the root).
    pub fn rel(&self) -> &[u8] {
        self.rel
    }

    /// The path of the entry `name` in this directory, relative to the root.
    pub fn child_rel(&self, name: &[u8]) -> Vec<u8> {
        join(self.rel, name)
    }

    /// The walk's progress counters.
    pub fn progress(&self) -> &Progress {
        self.shared.progress
    }

    /// True once a worker has failed.
    pub fn stopped(&self) -> bool {
        self.shared.stop.load(Ordering::Relaxed)
    }
}

/// A walk's settings: where it runs, on how many workers, and its progress counters.
#[derive(Debug, Clone, Copy)]
pub struct Walk<'a> {
    pool: Option<&'a Pool>,
    jobs: usize,
    progress: Option<&'a Progress>,
}

impl<'a> Walk<'a> {
    /// A walk on `jobs` threads started for it (on the caller's thread alone when 1).
    pub fn new(jobs: usize) -> Walk<'a> {
        Walk {
            pool: None,
            jobs: jobs.max(1),
            progress: None,
        }
    }

    /// A walk with `pool`'s worker count (see [`Pool::run`]), unless [`Walk::jobs`] says fewer.
    pub fn on(pool: &'a Pool) -> Walk<'a> {
        Walk {
            pool: Some(pool),
            jobs: pool.jobs(),
            progress: None,
        }
    }

    /// At most `jobs` workers (on a pool, at most the pool's).
    pub fn jobs(mut self, jobs: usize) -> Walk<'a> {
        self.jobs = jobs.max(1);
        self
    }

    /// The counters visitors count into ([`DirVisit::progress`]).
    pub fn progress(mut self, progress: &'a Progress) -> Walk<'a> {
        self.progress = Some(progress);
        self
    }

    /// Walks from `roots` (each an open directory and the value its visit gets), with one
    /// visitor per worker made by `make_visitor`. Returns every visitor, or the first error.
    ///
    /// A root's own handle is not read: its visit gets a new one (`openat(root, ".")`).
    pub fn run<V, F>(&self, roots: Vec<(&Dir, V::Ctx)>, make_visitor: F) -> Result<Vec<V>, V::Error>
    where
        V: Visitor,
        F: Fn() -> V + Sync,
    {
        let (dirs, ctxs): (Vec<&Dir>, Vec<V::Ctx>) = roots.into_iter().unzip();
        let default_progress;
        let progress = match self.progress {
            Some(p) => p,
            None => {
                default_progress = Progress::default();
                &default_progress
            }
        };
        let jobs = match self.pool {
            Some(pool) => self.jobs.min(pool.jobs()),
            None => self.jobs,
        };
        let shared = Shared {
            roots: &dirs,
            held: AtomicUsize::new(0),
            max_held: jobs * HELD_PER_WORKER,
            stop: AtomicBool::new(false),
            progress,
        };
        // The first root is visited first (the queue runs the last pushed item first).
        let initial: Vec<Item<'_, V::Ctx, V::Job>> = ctxs
            .into_iter()
            .enumerate()
            .map(|(root, ctx)| Item::Dir {
                root,
                rel: Vec::new(),
                ctx,
                open: Open::List,
                parent: None,
            })
            .rev()
            .collect();
        let shared = &shared;
        match self.pool {
            Some(pool) => {
                pool.run_publishing(jobs, initial, make_visitor, |v, i, p| step(shared, v, i, p))
            }
            None => crate::workers::run_publishing(jobs, initial, make_visitor, |v, i, p| {
                step(shared, v, i, p)
            }),
        }
    }
}

/// A queue item of a walk by visitor `V`.
type ItemOf<'w, V> = Item<'w, <V as Visitor>::Ctx, <V as Visitor>::Job>;

/// Runs one queue item, and marks the walk stopped on its error.
fn step<'w, V: Visitor>(
    shared: &'w Shared<'w>,
    visitor: &mut V,
    item: ItemOf<'w, V>,
    publish: &Publish<'_, ItemOf<'w, V>>,
) -> Result<(), V::Error> {
    let result = run_item(shared, visitor, item, publish);
    if result.is_err() {
        shared.stop.store(true, Ordering::Relaxed);
    }
    result
}

fn run_item<'w, V: Visitor>(
    shared: &'w Shared<'w>,
    visitor: &mut V,
    item: ItemOf<'w, V>,
    publish: &Publish<'_, ItemOf<'w, V>>,
) -> Result<(), V::Error> {
    match item {
        Item::Job {
            root,
            rel,
            held,
            job,
        } => {
            let at = JobVisit {
                shared,
                root,
                rel: &rel,
                dir: &held.dir,
            };
            visitor.visit_job(&at, job)
        }
        Item::Dir {
            root,
            rel,
            ctx,
            open,
            parent,
        } => {
            let opened = open_dir(shared.roots[root], &rel, parent, open);
            let dir = match opened {
                Ok(dir) => dir,
                Err(e) => return visitor.open_failed(&Failed { root, rel: &rel }, ctx, e),
            };
            let path_only = open == Open::PathOnly && HAS_PATH_ONLY;
            let mut visit = DirVisit {
                shared,
                root,
                rel: Arc::from(rel),
                dir: Arc::new(dir),
                path_only,
                held: None,
                pushed: Vec::new(),
                inline_jobs: Vec::new(),
            };
            visitor.visit_dir(&mut visit, ctx)?;
            let DirVisit {
                rel,
                dir,
                inline_jobs,
                mut pushed,
                ..
            } = visit;
            // Other workers can start on the subdirectories and jobs while this one runs the
            // jobs it could not queue.
            publish(&mut pushed);
            if !inline_jobs.is_empty() {
                let at = JobVisit {
                    shared,
                    root,
                    rel: &rel,
                    dir: &dir,
                };
                for job in inline_jobs {
                    visitor.visit_job(&at, job)?;
                }
            }
            Ok(())
        }
    }
}

/// Opens a queued directory: beneath its parent's handle when one was held, else beneath the
/// root by its relative path; the root itself is reopened (a handle of the walk's own).
fn open_dir(root: &Dir, rel: &[u8], parent: Option<Arc<Held<'_>>>, open: Open) -> io::Result<Dir> {
    if rel.is_empty() {
        return root.reopen();
    }
    match parent {
        Some(held) => {
            let name = rel_os_str(rel.rsplit(|&b| b == b'/').next().unwrap_or(rel));
            match open {
                Open::List => held.dir.open_dir(name),
                Open::PathOnly => held.dir.open_dir_path(name),
            }
        }
        None => root.open_dir_deep(Path::new(rel_os_str(rel))),
    }
}

/// True where a directory can be opened for lookups only (`O_PATH` on Linux), so that a
/// path-only visit must reopen it to list it.
#[cfg(unix)]
const HAS_PATH_ONLY: bool = !crate::sys::PATH_ONLY.is_empty();
/// Windows has no lookup-only handle: every directory is opened able to list.
#[cfg(windows)]
const HAS_PATH_ONLY: bool = false;

/// A walk's relative path (or a piece of one cut at `/`) as the `OsStr` it was made from.
#[cfg(unix)]
fn rel_os_str(rel: &[u8]) -> &OsStr {
    std::os::unix::ffi::OsStrExt::from_bytes(rel)
}

/// A walk's relative path (or a piece of one cut at `/`) as the `OsStr` it was made from.
#[cfg(windows)]
fn rel_os_str(rel: &[u8]) -> &OsStr {
    // SAFETY: every relative path of a walk is made by `join` from the encoded bytes of
    // `OsStr` names (`DirVisit::push_dir`) and `/`, and is only ever cut at `/`: pieces of
    // `as_encoded_bytes` split at an ASCII byte, which `from_encoded_bytes_unchecked` accepts.
    unsafe { OsStr::from_encoded_bytes_unchecked(rel) }
}

fn join(rel: &[u8], name: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(rel.len() + 1 + name.len());
    v.extend_from_slice(rel);
    if !rel.is_empty() {
        v.push(b'/');
    }
    v.extend_from_slice(name);
    v
}

#[cfg(all(test, unix))]
#[path = "walk_tests.rs"]
mod tests;
