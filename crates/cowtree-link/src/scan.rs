//! The first pass: read the whole source tree (names and types, from `getdents` `d_type`)
//! before anything is written, so that special files are refused before any work and the
//! second pass knows every directory without reading the source again.

use std::convert::Infallible;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, PoisonError};

use cowtree_fs::dir::{Dir, Stat, Timespec};
use cowtree_fs::walk::{DirVisit, Failed, JobVisit, Visitor, Walk};

use crate::engine::Engine;
use crate::error::LinkError;
use crate::options::ScanTotals;

/// A source directory's own metadata.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DirMeta {
    pub mode: u32,
    pub dev: u64,
    pub atime: Timespec,
    pub mtime: Timespec,
    /// Owner and group, kept under [`crate::Preserve::ownership`]; `None` for a directory
    /// that no source directory gives (it stays the caller's).
    pub owner: Option<(u32, u32)>,
    /// The source directory, as (tree, node) of the plan's trees, whose extended attributes
    /// and ACLs are kept under [`crate::Preserve`]; set when the tree is planned.
    pub src: Option<(u32, u32)>,
}

impl DirMeta {
    pub fn from_stat(st: &Stat) -> Self {
        let (atime, mtime) = cowtree_fs::sys::stat_times(st);
        Self {
            mode: cowtree_fs::sys::stat_mode(st) & 0o7777,
            dev: cowtree_fs::sys::stat_dev(st),
            atime,
            mtime,
            owner: cowtree_fs::sys::stat_owner(st),
            src: None,
        }
    }
}

/// What a source entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    File,
    /// A directory; the index of its [`Node`].
    Dir(usize),
    Symlink,
    Special,
}

#[derive(Debug)]
pub(crate) struct Entry {
    pub name: Box<OsStr>,
    pub kind: Kind,
}

/// One source directory.
#[derive(Debug)]
pub(crate) struct Node {
    /// Path relative to the source root; empty for the root.
    pub rel: PathBuf,
    pub meta: DirMeta,
    pub entries: Vec<Entry>,
}

impl Node {
    /// The number of entries in this directory's subtree, itself excluded.
    pub fn subtree_entries(&self, nodes: &[Node]) -> u64 {
        let mut n = 0;
        let mut stack = vec![self];
        while let Some(node) = stack.pop() {
            for e in &node.entries {
                n += 1;
                if let Kind::Dir(child) = e.kind {
                    stack.push(&nodes[child]);
                }
            }
        }
        n
    }
}

/// The whole source tree. `nodes[0]` is the root.
#[derive(Debug)]
pub(crate) struct Tree {
    pub nodes: Vec<Node>,
    pub totals: ScanTotals,
    /// Special files, relative to the root.
    pub special: Vec<PathBuf>,
}

/// What the scan found so far, per tree, shared by its workers and the caller that takes
/// each tree as soon as it is complete.
struct Found {
    trees: Vec<Part>,
    /// The walk has returned (after an error, some trees may never be complete).
    walk_done: bool,
}

#[derive(Default)]
struct Part {
    /// (node id, node), in the order they were read.
    nodes: Vec<(usize, Node)>,
    totals: ScanTotals,
    special: Vec<PathBuf>,
    /// Every directory of the tree has been read.
    complete: bool,
}

/// The scan's visitor (one per worker).
struct Local<'a> {
    /// The session, whose cancellation stops the scan, and the destination, for its error.
    engine: &'a Engine,
    dst: &'a Path,
    /// The roots' paths, for messages.
    paths: &'a [&'a Path],
    /// Per tree, the next directory's node id.
    next_id: &'a [AtomicUsize],
    /// Per tree, directories found and not yet read (the root counts from the start): the
    /// visit that brings it to 0 completes the tree.
    unread: &'a [AtomicUsize],
    found: &'a Mutex<Found>,
    wake: &'a Condvar,
}

impl Visitor for Local<'_> {
    /// The directory's node id.
    type Ctx = usize;
    type Job = Infallible;
    type Error = LinkError;

    fn visit_dir(
        &mut self,
        d: &mut DirVisit<'_, usize, Infallible>,
        id: usize,
    ) -> Result<(), LinkError> {
        self.engine.check_cancel(self.dst)?;
        let t = d.root();
        let rel = d.rel_path().to_path_buf();
        let full = || self.paths[t].join(&rel);
        let st = d
            .dir()
            .stat_self()
            .map_err(|e| LinkError::io("stat", &full(), e))?;
        let list = d
            .entries()
            .map_err(|e| LinkError::io("read directory", &full(), e))?;
        let mut entries = Vec::with_capacity(list.len());
        let mut totals = ScanTotals::default();
        let mut special = Vec::new();
        for entry in list {
            let name = entry.name;
            #[cfg_attr(windows, allow(unused_mut))]
            let mut ft = entry.file_type;
            #[cfg(unix)]
            if ft == cowtree_fs::dir::FileType::Unknown {
                // This filesystem does not fill in d_type.
                let st = d
                    .dir()
                    .stat(&name)
                    .map_err(|e| LinkError::io("stat", &full().join(&name), e))?;
                ft = cowtree_fs::sys::stat_file_type(&st);
            }
            // On Windows a reparse point other than a symlink (a junction, a mount point)
            // is special: it is neither followed nor made again.
            let kind = if ft.is_file() {
                totals.files += 1;
                Kind::File
            } else if ft.is_dir() {
                totals.dirs += 1;
                let child = self.next_id[t].fetch_add(1, Ordering::Relaxed);
                // Counted before it is queued: its visit may end before this one does.
                self.unread[t].fetch_add(1, Ordering::Relaxed);
                d.descend(&name, child);
                Kind::Dir(child)
            } else if ft.is_symlink() {
                totals.symlinks += 1;
                Kind::Symlink
            } else {
                totals.special += 1;
                special.push(rel.join(&name));
                Kind::Special
            };
            entries.push(Entry {
                name: name.into_boxed_os_str(),
                kind,
            });
        }
        let node = Node {
            rel,
            meta: DirMeta::from_stat(&st),
            entries,
        };
        // Under the lock, so that whoever sees the tree complete sees every node of it.
        let mut found = self.found.lock().unwrap_or_else(PoisonError::into_inner);
        let part = &mut found.trees[t];
        part.nodes.push((id, node));
        part.totals.files += totals.files;
        part.totals.dirs += totals.dirs;
        part.totals.symlinks += totals.symlinks;
        part.totals.special += totals.special;
        part.special.append(&mut special);
        if self.unread[t].fetch_sub(1, Ordering::AcqRel) == 1 {
            part.complete = true;
            drop(found);
            self.wake.notify_all();
        }
        Ok(())
    }

    fn visit_job(&mut self, _: &JobVisit<'_>, job: Infallible) -> Result<(), LinkError> {
        match job {}
    }

    fn open_failed(
        &mut self,
        at: &Failed<'_>,
        _: usize,
        e: std::io::Error,
    ) -> Result<(), LinkError> {
        #[cfg(unix)]
        let rel = cowtree_fs::name::path_of(at.rel);
        // For the message only: a name that is not UTF-8 shows with replacement characters.
        #[cfg(windows)]
        let rel = &PathBuf::from(String::from_utf8_lossy(at.rel).into_owned());
        Err(LinkError::io(
            "open directory",
            &self.paths[at.root].join(rel),
            e,
        ))
    }
}

/// Opens the directory at `rel` under `root` (the root itself when `rel` is empty), refusing
/// symlinks on the way.
pub(crate) fn open_rel(root: &Dir, rel: &Path) -> std::io::Result<Dir> {
    if rel.as_os_str().is_empty() {
        root.try_clone()
    } else {
        // A tree may be deeper than PATH_MAX; it is still walked beneath the root.
        root.open_dir_deep(rel)
    }
}

/// Reads the trees under `roots` (each an open directory and its path, for messages) with
/// the session's workers (stopping with [`LinkError::Cancelled`] for `dst` once the session
/// is cancelled), all in one parallel pass: many small trees (packages) keep every
/// worker busy, where one pass per tree would wait for the slowest directory of each.
///
/// Each tree is handed to `each`, in the order of `roots`, as soon as it and the trees before
/// it are read, while the workers go on reading the next ones: the caller's work on a tree
/// (planning where its entries go) overlaps the reading of the others. The first error of
/// `each` ends the calls to it, and is returned once the scan is over, unless the scan
/// itself failed: the scan's error comes first, as if every tree had been read before any
/// was handed over. Only the error is as if: `each` may already have run for the trees before
/// one whose read fails (their path mappings called, see [`crate::PathMap`]).
pub(crate) fn scan_each(
    roots: &[(&Dir, &Path)],
    engine: &Engine,
    dst: &Path,
    mut each: impl FnMut(usize, Tree) -> Result<(), LinkError>,
) -> Result<(), LinkError> {
    let n = roots.len();
    let next_id: Vec<AtomicUsize> = roots.iter().map(|_| AtomicUsize::new(1)).collect();
    let unread: Vec<AtomicUsize> = roots.iter().map(|_| AtomicUsize::new(1)).collect();
    let paths: Vec<&Path> = roots.iter().map(|(_, p)| *p).collect();
    let found = Mutex::new(Found {
        trees: (0..n).map(|_| Part::default()).collect(),
        walk_done: false,
    });
    let wake = Condvar::new();
    let run_walk = || {
        // Set when the walk ends, however it ends: a worker's panic re-raised by the walk
        // unwinds through here, and the caller waiting in `hand_over` must still wake.
        let _done = WalkDone {
            found: &found,
            wake: &wake,
        };
        Walk::on(&engine.workers)
            .run(
                roots.iter().map(|(dir, _)| (*dir, 0usize)).collect(),
                || Local {
                    engine,
                    dst,
                    paths: &paths,
                    next_id: &next_id,
                    unread: &unread,
                    found: &found,
                    wake: &wake,
                },
            )
            .map(drop)
    };
    // Shared: the thread runs it, or this one does when no thread can be started.
    let run_walk = &run_walk;
    let (scanned, handed) = std::thread::scope(|scope| {
        let spawned = std::thread::Builder::new()
            .name("cowtree-scan".into())
            .spawn_scoped(scope, run_walk);
        match spawned {
            Ok(walk) => {
                let handed = hand_over(n, &found, &wake, &next_id, &paths, &mut each);
                let scanned = walk
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
                (scanned, handed)
            }
            // No thread for the walk: it runs here, and the trees are handed over after it.
            Err(_) => {
                let scanned = run_walk();
                (
                    scanned,
                    hand_over(n, &found, &wake, &next_id, &paths, &mut each),
                )
            }
        }
    });
    scanned?;
    handed
}

/// Marks the walk as ended when dropped (see [`Found::walk_done`]), also while a panic
/// unwinds.
struct WalkDone<'a> {
    found: &'a Mutex<Found>,
    wake: &'a Condvar,
}

impl Drop for WalkDone<'_> {
    fn drop(&mut self) {
        self.found
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .walk_done = true;
        self.wake.notify_all();
    }
}

/// Hands each tree to `each` in order as it becomes complete (see [`scan_each`]); returns
/// when all are handed over, `each` failed, or the walk ended without completing the next
/// (an error naming that tree).
fn hand_over(
    n: usize,
    found: &Mutex<Found>,
    wake: &Condvar,
    next_id: &[AtomicUsize],
    paths: &[&Path],
    each: &mut impl FnMut(usize, Tree) -> Result<(), LinkError>,
) -> Result<(), LinkError> {
    for t in 0..n {
        let part = {
            let mut guard = found.lock().unwrap_or_else(PoisonError::into_inner);
            loop {
                if guard.trees[t].complete {
                    break std::mem::take(&mut guard.trees[t]);
                }
                if guard.walk_done {
                    // The walk ended before reading this tree whole. When it failed, its
                    // error is returned instead of this one (see `scan_each`); this one says
                    // what went wrong should the walk have ended without an error.
                    return Err(LinkError::io(
                        "scan",
                        paths[t],
                        std::io::Error::other("the scan ended before this tree was read whole"),
                    ));
                }
                guard = wake.wait(guard).unwrap_or_else(PoisonError::into_inner);
            }
        };
        // Complete: no worker touches this tree's counters any more.
        let count = next_id[t].load(Ordering::Acquire);
        each(t, assemble(part, count, paths[t])?)?;
    }
    Ok(())
}

/// The tree of `count` directories whose nodes were read as `part`.
fn assemble(part: Part, count: usize, src_path: &Path) -> Result<Tree, LinkError> {
    let mut slots: Vec<Option<Node>> = (0..count).map(|_| None).collect();
    for (id, node) in part.nodes {
        if let Some(slot) = slots.get_mut(id) {
            *slot = Some(node);
        }
    }
    let nodes = slots
        .into_iter()
        .enumerate()
        .map(|(id, n)| {
            n.ok_or_else(|| {
                LinkError::io(
                    "scan",
                    src_path,
                    std::io::Error::other(format!("directory #{id} was found but not read")),
                )
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut special = part.special;
    special.sort();
    Ok(Tree {
        nodes,
        totals: part.totals,
        special,
    })
}
