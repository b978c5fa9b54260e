//! The link engine: runs a [`Plan`] into a destination (a staging directory for a new one, a
//! merge transaction for an existing one), file by file with the session's fallback state,
//! in parallel, then gives created directories their mode and times.

use std::ffi::{OsStr, OsString};
use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use cowtree_fs::creation::CreationMask;
use cowtree_fs::dir::Dir;
use cowtree_fs::{
    CopyRange, HardlinkOutcome, Method, Transfer, TransferOptions, hardlink_at, transfer_at_masked,
};
use rustix::fs::{
    AtFlags, CWD, FileType, Mode, OFlags, Stat, Timespec, openat, readlinkat, statat, symlinkat,
    utimensat,
};
use rustix::io::Errno;

use crate::engine::{Engine, FDS_WHILE_LINKING, HELD_PER_WORKER};
use crate::error::LinkError;
use crate::options::{EntryKind, HashAlgo, OnExisting};
use crate::plan::{PKind, Plan, SrcRef, TreeSrc};
use crate::report::{Digest, LinkReport, RecordEntry, Tally};
use crate::scan::{DirMeta, open_rel};
use crate::staging::{Staging, random_u64, remove_stale};
use crate::state::{Attempt, Decision, Failure};
use crate::txn::{self, Journal, Op};

/// Entries of one directory handled per work item; big directories are split so that
/// several workers can share them (see [`push_items`] for when they do).
const CHUNK: usize = 256;

/// True when `path` or one of its ancestors is the directory `id` (device, inode). Comparing
/// inodes rather than strings also catches bind mounts and different spellings of one path.
pub(crate) fn has_ancestor(path: &Path, id: (u64, u64)) -> bool {
    path.ancestors().any(|a| {
        std::fs::metadata(a)
            .map(|m| (m.dev(), m.ino()) == id)
            .unwrap_or(false)
    })
}

pub(crate) fn type_name(ft: FileType) -> &'static str {
    match ft {
        FileType::RegularFile => "regular file",
        FileType::Directory => "directory",
        FileType::Symlink => "symlink",
        FileType::Fifo => "FIFO",
        FileType::Socket => "socket",
        FileType::CharacterDevice => "character device",
        FileType::BlockDevice => "block device",
        FileType::Unknown => "file of unknown type",
    }
}

fn is_dir(st: &Stat) -> bool {
    FileType::from_raw_mode(st.st_mode) == FileType::Directory
}

/// A temporary name beside `name` for link-then-rename: `.<name>.cowtree-tmp.<pid>.<random>`.
fn temp_name(name: &OsStr) -> OsString {
    let bytes = name.as_bytes();
    let mut v = Vec::with_capacity(bytes.len().min(200) + 48);
    v.push(b'.');
    v.extend_from_slice(&bytes[..bytes.len().min(200)]);
    v.extend_from_slice(
        format!(
            ".cowtree-tmp.{}.{:08x}",
            std::process::id(),
            random_u64() as u32
        )
        .as_bytes(),
    );
    OsString::from_vec(v)
}

fn timespec_pair(st: &Stat) -> (Timespec, Timespec) {
    let m = DirMeta::from_stat(st);
    (m.atime, m.mtime)
}

/// What a file link did.
enum Linked {
    /// Linked by `Attempt`, `bytes` of data (`None`: a hardlink whose size was not asked
    /// for, see [`crate::LinkOptions::hardlink_sizes`]).
    Done(Attempt, Option<u64>),
    /// The source file was gone.
    Vanished,
}

impl<'l> FileLinker<'l> {
    /// The linker of files for device pair `key` into directories where creation does
    /// `mask` to permission bits (see [`CreationMask`]; `None`: read them back).
    fn new(engine: &'l Engine, key: (u64, u64), mask: Option<CreationMask>) -> FileLinker<'l> {
        let pair = engine
            .pairs
            .with_pair(key, engine.opts.mode, engine.opts.strict, |p| *p);
        FileLinker {
            engine,
            key,
            attempt: pair.state.attempt(),
            batch_because: pair.moved_because,
            worked: pair.state.has_worked(),
            mask,
        }
    }
}

/// A file's source: a directory handle and a name in it (the current directory and a path
/// for a file named by path), the permission bits to give the copy, and its full path.
struct FileSrc<'a> {
    dir: BorrowedFd<'a>,
    name: &'a OsStr,
    mode: Option<u32>,
}

/// Links files for one device pair, keeping a snapshot of the pair's method so that the
/// shared state is locked only on failures and the first success.
struct FileLinker<'l> {
    engine: &'l Engine,
    key: (u64, u64),
    attempt: Attempt,
    batch_because: Option<Failure>,
    worked: bool,
    /// What creation does to permission bits where this linker creates files.
    mask: Option<CreationMask>,
}

impl FileLinker<'_> {
    /// Links the regular file `src` to `dst_name` in `dst_dir` (which must not exist).
    /// Returns the method and bytes, or `None` when the source vanished. `src_full` and
    /// `dst_full` name the entries in messages (and `src_full` is a symlink's target).
    fn link_file(
        &mut self,
        src: &FileSrc<'_>,
        dst_dir: &Dir,
        dst_name: &OsStr,
        src_full: &dyn Fn() -> PathBuf,
        dst_full: &dyn Fn() -> PathBuf,
        tally: &mut Tally,
    ) -> Result<Option<(Attempt, Option<u64>)>, LinkError> {
        let engine = self.engine;
        let opts = &engine.opts;
        let mut attempt = self.attempt;
        // Set when this one file falls back; the batch's own cause is `batch_because`.
        let mut because: Option<Failure> = None;
        loop {
            let outcome = self
                .try_once(attempt, src, dst_dir, dst_name, src_full)
                .map_err(|e| LinkError::link("link", &src_full(), &dst_full(), e))?;
            let failure = match outcome {
                Ok(Linked::Done(method, size)) => {
                    let bytes = size.unwrap_or(0);
                    tally.files += 1;
                    match method {
                        Attempt::Clone => {
                            tally.cloned += 1;
                            tally.bytes_cloned += bytes;
                        }
                        Attempt::Copy => {
                            tally.copied += 1;
                            tally.bytes_copied += bytes;
                        }
                        Attempt::Hardlink => {
                            tally.hardlinked += 1;
                            tally.bytes_other += bytes;
                        }
                        Attempt::Symlink => {
                            tally.symlinked += 1;
                            tally.bytes_other += bytes;
                        }
                    }
                    if let Some(f) = because {
                        tally.fallback(f, bytes, src_full);
                    } else if method == self.attempt {
                        if let Some(f) = self.batch_because {
                            tally.fallback(f, bytes, src_full);
                        }
                        if !self.worked {
                            self.worked = true;
                            engine
                                .pairs
                                .with_pair(self.key, opts.mode, opts.strict, |p| {
                                    p.state.succeeded(method)
                                });
                        }
                    }
                    return Ok(Some((method, size)));
                }
                Ok(Linked::Vanished) => {
                    tally.vanished += 1;
                    tally.fallback(Failure::SourceVanished, 0, src_full);
                    return Ok(None);
                }
                Err(failure) => failure,
            };
            let (decision, now, moved_because) =
                engine
                    .pairs
                    .with_pair(self.key, opts.mode, opts.strict, |p| {
                        let d = p.state.failed(attempt, failure);
                        if let Decision::Fallback {
                            batch_moved: true, ..
                        } = d
                        {
                            p.moved_because = Some(failure);
                        }
                        (d, p.state.attempt(), p.moved_because)
                    });
            match decision {
                Decision::Fail if opts.strict => {
                    return Err(LinkError::StrictFallback {
                        src: src_full(),
                        dst: dst_full(),
                        attempt,
                        failure,
                    });
                }
                Decision::Fail => {
                    return Err(LinkError::FailedAfterSuccess {
                        src: src_full(),
                        dst: dst_full(),
                        attempt,
                        failure,
                    });
                }
                Decision::Fallback { attempt: next, .. } => {
                    if failure.is_per_file() {
                        // This file only; reported under its own cause.
                        because = Some(failure);
                    } else {
                        // The pair moved (in this worker or another): this and later files
                        // use the pair's method and are reported under the pair's cause.
                        self.attempt = now;
                        self.batch_because = moved_because;
                        self.worked = false;
                        because = None;
                    }
                    attempt = next;
                }
            }
        }
    }

    /// One attempt. `Ok(Err(failure))` is a classified failure for the fallback policy.
    fn try_once(
        &self,
        attempt: Attempt,
        src: &FileSrc<'_>,
        dst_dir: &Dir,
        dst_name: &OsStr,
        src_full: &dyn Fn() -> PathBuf,
    ) -> io::Result<Result<Linked, Failure>> {
        let opts = &self.engine.opts;
        let transfer = |method| {
            let mut t = TransferOptions::new(method);
            t.preserve_times = opts.preserve_times;
            t.mode = src.mode;
            transfer_at_masked(
                src.dir,
                src.name,
                dst_dir,
                dst_name,
                &t,
                // Neither Clone nor Copy uses `copy_file_range`: no memo to keep.
                &CopyRange::new(),
                self.mask,
            )
        };
        Ok(match attempt {
            Attempt::Clone => match transfer(Method::Clone)? {
                Transfer::Cloned { bytes } => Ok(Linked::Done(Attempt::Clone, Some(bytes))),
                Transfer::Unsupported(cause) => Err(Failure::Clone(cause)),
                Transfer::SourceVanished => Err(Failure::SourceVanished),
                Transfer::Copied { bytes, .. } => Ok(Linked::Done(Attempt::Copy, Some(bytes))),
            },
            Attempt::Copy => match transfer(Method::Copy)? {
                Transfer::Copied { bytes, .. } => Ok(Linked::Done(Attempt::Copy, Some(bytes))),
                Transfer::Cloned { bytes } => Ok(Linked::Done(Attempt::Clone, Some(bytes))),
                Transfer::SourceVanished => Ok(Linked::Vanished),
                Transfer::Unsupported(_) => {
                    return Err(io::Error::other("copy reported an unsupported clone"));
                }
            },
            Attempt::Hardlink => match hardlink_at(src.dir, src.name, dst_dir, dst_name)? {
                HardlinkOutcome::Linked if opts.hardlink_sizes => {
                    let st = statat(dst_dir, dst_name, AtFlags::SYMLINK_NOFOLLOW)?;
                    Ok(Linked::Done(Attempt::Hardlink, Some(st.st_size as u64)))
                }
                // A link writes no data: the size is the inode's, which the caller did not
                // ask for (it knows its files' sizes already).
                HardlinkOutcome::Linked => Ok(Linked::Done(Attempt::Hardlink, None)),
                HardlinkOutcome::Refused(r) => Err(Failure::Hardlink(r)),
                HardlinkOutcome::SourceVanished => Err(Failure::SourceVanished),
            },
            Attempt::Symlink => {
                let st = match statat(src.dir, src.name, AtFlags::SYMLINK_NOFOLLOW) {
                    Ok(st) => st,
                    Err(Errno::NOENT) => return Ok(Ok(Linked::Vanished)),
                    Err(e) => return Err(e.into()),
                };
                symlinkat(src_full(), dst_dir, dst_name)?;
                Ok(Linked::Done(Attempt::Symlink, Some(st.st_size as u64)))
            }
        })
    }
}

/// A destination directory opened once for the work items of its entries (see
/// [`Run::hold`]), counted against [`Run::max_held`] while any item holds it.
struct Held<'r> {
    dir: Dir,
    count: &'r AtomicUsize,
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        self.count.fetch_sub(1, Ordering::Relaxed);
    }
}

/// One unit of the link pass: entries `start..end` of plan directory `node`, which is at
/// `open` (relative to the destination root: its final path, or under a temporary name).
struct Item<'r> {
    node: usize,
    start: usize,
    end: usize,
    open: PathBuf,
    /// The directory at `open`, already open (by its name, never following a symlink, in its
    /// parent's handle); `None`: it is opened from the destination root by `open`.
    held: Option<Arc<Held<'r>>>,
    /// The source directory (tree, node) of its first file or symlink, already open (by
    /// name in its parent's handle, never following a symlink); `None`: each source
    /// directory is opened from its tree's root when an entry needs it.
    src: Option<((u32, u32), Arc<Held<'r>>)>,
    /// The destination directory was created by this run (so it is empty but for what this
    /// run puts there, and nothing needs checking before creating an entry).
    fresh: bool,
    /// The destination directory's device, when known without a stat.
    dev: Option<u64>,
}

/// Where a directory's work items are (see [`Item`]): its path under the destination root,
/// and the destination and source directories held open for them.
type HeldDirs<'r> = (
    PathBuf,
    Option<Arc<Held<'r>>>,
    Option<((u32, u32), Arc<Held<'r>>)>,
);

/// Queues the first [`CHUNK`] entries of plan directory `node` as a work item, and leaves
/// the rest in `tails` as work items for the next pass of the link run (see
/// [`Run::link_all`]); returns how many items there are in all. Only the first item holds
/// `held` and `src`: the later ones reopen their directories from the roots, as any item
/// that holds none.
///
/// Creating an entry takes its directory's lock for most of the call (a `linkat` for all of
/// it), so two workers in one directory mostly wait on each other, spinning (6% of the samples
/// in `perf`). Left for a later pass, a directory's other chunks run where no worker is,
/// interleaved with other directories' chunks, and share one directory only when nothing
/// else is left. Measured on XFS, 2 cores, installing 32 wheels (35,564 files, up to 1,221 in
/// one directory) in hardlink mode, medians of 9 interleaved runs: every chunk queued at once
/// 414 ms, only directories over 1,024 entries split 385 ms, the later chunks in later passes
/// 373 ms.
fn push_items<'r>(
    plan: &Plan,
    node: usize,
    (open, held, src): HeldDirs<'r>,
    fresh: bool,
    dev: Option<u64>,
    push: &mut Vec<Item<'r>>,
    tails: &mut Vec<Item<'r>>,
) -> usize {
    let len = plan.nodes[node].entries.len();
    if len == 0 {
        return 0;
    }
    let first = CHUNK.min(len);
    let mut start = first;
    while start < len {
        let end = (start + CHUNK).min(len);
        tails.push(Item {
            node,
            start,
            end,
            open: open.clone(),
            held: None,
            src: None,
            fresh,
            dev,
        });
        start = end;
    }
    push.push(Item {
        node,
        start: 0,
        end: first,
        open,
        held,
        src,
        fresh,
        dev,
    });
    len.div_ceil(CHUNK)
}

/// A source directory a worker has open: its own, or one held for the work items of a
/// destination directory whose entries come from it.
enum SrcDir<'r> {
    Own(Dir),
    Held(Arc<Held<'r>>),
}

impl SrcDir<'_> {
    fn dir(&self) -> &Dir {
        match self {
            SrcDir::Own(d) => d,
            SrcDir::Held(h) => &h.dir,
        }
    }
}

/// The source directory `key` (tree, node) of `t`: the one in `current` when it is that one,
/// else opened from the tree's root (never following a symlink) and kept in `current`.
fn src_dir<'c>(
    current: &'c mut Option<((u32, u32), SrcDir<'_>)>,
    t: &TreeSrc,
    key: (u32, u32),
) -> Result<&'c Dir, LinkError> {
    if current.as_ref().is_none_or(|(k, _)| *k != key) {
        let srel = &t.tree.nodes[key.1 as usize].rel;
        let d = open_rel(&t.root, srel)
            .map_err(|e| LinkError::io("open directory", &t.path.join(srel), e))?;
        *current = Some((key, SrcDir::Own(d)));
    }
    match current {
        Some((_, dir)) => Ok(dir.dir()),
        // Set just above.
        None => Err(LinkError::io(
            "open directory",
            &t.path,
            io::Error::other("no source directory open"),
        )),
    }
}

#[derive(Default)]
struct Local<'r> {
    tally: Tally,
    /// Directories this run created whose final mode lacks owner read, write or search
    /// (where they are now, their plan node): they get the source's mode and times at the
    /// end, deepest first. The others get theirs as soon as their last entry is made.
    created: Vec<(PathBuf, usize)>,
    ops: Vec<Op>,
    /// Each entry with its [`path_key`], made here so that the workers share that work.
    record: Vec<(Vec<u8>, RecordEntry)>,
    /// The source directory last opened: (tree, node) and its handle.
    src: Option<((u32, u32), SrcDir<'r>)>,
    /// Work items for the next pass (see [`push_items`]).
    tails: Vec<Item<'r>>,
}

impl Local<'_> {
    fn push_record(&mut self, entry: RecordEntry) {
        self.record.push((path_key(&entry.path), entry));
    }
}

/// What a link pass did.
pub(crate) struct Outcome {
    pub tally: Tally,
    pub ops: Vec<Op>,
    pub record: Vec<RecordEntry>,
}

/// One pass of a plan into `dst_root` (a staging directory or an existing destination).
pub(crate) struct Run<'r> {
    pub engine: &'r Engine,
    pub plan: &'r Plan,
    pub trees: &'r [Arc<TreeSrc>],
    pub dst_root: &'r Dir,
    /// The destination as the caller named it, for messages.
    pub dst_path: &'r Path,
    /// Set for a merge into an existing destination: new entries at existing directories
    /// are built under temporary names and noted here.
    pub journal: Option<&'r Journal<'r>>,
    /// What creation does to permission bits in the directories this run creates, when
    /// certain (a new destination only: in a merge, an existing directory may have a default
    /// ACL that new ones inherit).
    pub mask: Option<CreationMask>,
    /// Per plan directory created by this run and finished in the link pass, the number of
    /// its work items not done yet (0 for every other directory): the item that brings it
    /// to 0 gives the directory its mode and times.
    pub pending: Vec<AtomicUsize>,
    /// Directories held open by queued work items ([`Held`]: destination directories this
    /// run created and the source directories their entries come from), and the most there
    /// may be: [`HELD_PER_WORKER`] per worker, within what the open-file limit leaves beside
    /// the descriptors each worker holds itself and the source roots.
    held: AtomicUsize,
    max_held: usize,
}

impl<'r> Run<'r> {
    pub fn new(
        engine: &'r Engine,
        plan: &'r Plan,
        trees: &'r [Arc<TreeSrc>],
        dst_root: &'r Dir,
        dst_path: &'r Path,
        journal: Option<&'r Journal<'r>>,
        mask: Option<CreationMask>,
    ) -> Run<'r> {
        Run {
            engine,
            plan,
            trees,
            dst_root,
            dst_path,
            journal,
            mask,
            pending: plan.nodes.iter().map(|_| AtomicUsize::new(0)).collect(),
            held: AtomicUsize::new(0),
            max_held: {
                let jobs = engine.jobs.max(1);
                // Each source root stays open for the whole pass.
                let spare = cowtree_fs::workers::open_file_limit()
                    .saturating_sub(cowtree_fs::workers::RESERVED_FDS)
                    .saturating_sub(trees.len() + jobs * FDS_WHILE_LINKING);
                spare.min(HELD_PER_WORKER * jobs)
            },
        }
    }

    /// The directory `name` of `parent`, opened for the work items of its entries: by name
    /// in its parent's handle, never following a symlink, which costs less than a path
    /// resolved from the root. `None` when enough directories are held already, or when the
    /// open fails (the items then open it from the root, and report what that finds).
    ///
    /// Held destination directories are only those this run created (filled by this run
    /// alone; in a merge, under a temporary name the journal notes): an existing directory
    /// of a merge is opened from the root by each item (see [`Run::link_item`]).
    fn hold(&self, parent: &Dir, name: &OsStr) -> Option<Arc<Held<'_>>> {
        if self.held.fetch_add(1, Ordering::Relaxed) >= self.max_held {
            self.held.fetch_sub(1, Ordering::Relaxed);
            return None;
        }
        match parent.open_dir(name) {
            Ok(dir) => Some(Arc::new(Held {
                dir,
                count: &self.held,
            })),
            Err(_) => {
                self.held.fetch_sub(1, Ordering::Relaxed);
                None
            }
        }
    }

    /// Where `src` is, as the record names it.
    fn src_rel(&self, src: &SrcRef) -> PathBuf {
        match src {
            SrcRef::Tree { tree, node, entry } => {
                let t = &self.trees[*tree as usize];
                t.tree.nodes[*node as usize].rel.join(t.name(*node, *entry))
            }
            SrcRef::Path { path, .. } => path.clone(),
        }
    }

    fn recording(&self) -> bool {
        self.engine.opts.record || self.engine.opts.hash.is_some()
    }

    /// Links every entry, then gives the directories this run created their mode and times.
    /// `root_fresh`: the destination root was created by this run.
    pub fn link_all(&self, root_fresh: bool) -> Result<Outcome, LinkError> {
        let mut first = Vec::new();
        let root_dev = if root_fresh {
            Some(
                self.dst_root
                    .stat_self()
                    .map(|st| cowtree_fs::sys::stat_dev(&st))
                    .map_err(|e| LinkError::io("stat", self.dst_path, e))?,
            )
        } else {
            None
        };
        let mut tails = Vec::new();
        push_items(
            self.plan,
            0,
            (PathBuf::new(), None, None),
            root_fresh,
            root_dev,
            &mut first,
            &mut tails,
        );
        let mut tally = Tally::default();
        let mut created = Vec::new();
        if root_fresh {
            created.push((PathBuf::new(), 0));
        }
        let mut ops = Vec::new();
        let mut record = Vec::new();
        // Passes: each runs the first chunk of every directory it reaches, and leaves the
        // other chunks of big ones to the next (see [`push_items`]).
        while !first.is_empty() {
            let locals = self.engine.workers.run(
                self.engine.jobs,
                first,
                Local::default,
                |local, item, push| self.link_item(local, item, push),
            )?;
            for local in locals {
                tally.merge(local.tally);
                created.extend(local.created);
                ops.extend(local.ops);
                record.extend(local.record);
                tails.extend(local.tails);
            }
            // The queue runs the last item first: ordered so that the second chunks of all
            // directories run first, one directory after another, then the third chunks, and
            // so on, so that workers taking the next items are in different directories for
            // as long as there are several.
            tails.sort_by(|a, b| b.start.cmp(&a.start).then_with(|| a.node.cmp(&b.node)));
            first = std::mem::take(&mut tails);
        }
        self.finish_dirs(created)?;
        // Publication order: by directory, so that each is opened once.
        ops.sort_by(|a, b| a.dir.cmp(&b.dir).then_with(|| a.name.cmp(&b.name)));
        // Paths are unique: an unstable sort gives the one order.
        self.engine
            .workers
            .sort_unstable_by(&mut record, |a, b| a.0.cmp(&b.0));
        let record = record.into_iter().map(|(_, e)| e).collect();
        Ok(Outcome { tally, ops, record })
    }

    fn link_item<'s>(
        &'s self,
        local: &mut Local<'s>,
        mut item: Item<'s>,
        push: &mut Vec<Item<'s>>,
    ) -> Result<(), LinkError> {
        let opts = &self.engine.opts;
        if let Some((key, held)) = item.src.take() {
            local.src = Some((key, SrcDir::Held(held)));
        }
        let node = &self.plan.nodes[item.node];
        let opened;
        let dst_dir: &Dir = match &item.held {
            Some(held) => &held.dir,
            None => {
                opened = open_rel(self.dst_root, &item.open).map_err(|e| {
                    LinkError::io("open directory", &self.dst_path.join(&node.rel), e)
                })?;
                &opened
            }
        };
        let dst_dev = match item.dev {
            Some(d) => d,
            None => dst_dir
                .stat_self()
                .map(|st| cowtree_fs::sys::stat_dev(&st))
                .map_err(|e| LinkError::io("stat", &self.dst_path.join(&node.rel), e))?,
        };
        let bytes_before = bytes_of(&local.tally);
        let mut files: Vec<FileLinker<'_>> = Vec::new();
        // In a directory of an existing destination, creation may follow a default ACL.
        let mask = if item.fresh { self.mask } else { None };
        let mut done = 0u64;
        for entry in &node.entries[item.start..item.end] {
            // One relaxed load per entry: a cancelled call stops within one file.
            self.engine.check_cancel(self.dst_path)?;
            done += 1;
            let name: &OsStr = &entry.name;
            let dst_full = || self.dst_path.join(&node.rel).join(name);
            let existing = if item.fresh {
                None
            } else {
                dst_dir
                    .try_stat(name)
                    .map_err(|e| LinkError::io("stat", &dst_full(), e))?
            };
            let mut replace = false;
            if let Some(st) = &existing {
                match (&entry.kind, is_dir(st), opts.on_existing) {
                    (PKind::Dir(child), true, _) => {
                        // Merge into it; its own mode and times stay as they are.
                        local.tally.dirs += 1;
                        // An existing directory is never held: each of its items opens it
                        // from the root by its path, so one moved away and replaced by a
                        // symlink meanwhile makes the merge fail, and nothing more is made in
                        // it, wherever it went. The journal and the publication find its
                        // entries by that path: the undo removes what an earlier item made in
                        // it only while it is there (else the error says the undo failed).
                        let src = if self.plan.nodes[*child].entries.is_empty() {
                            None
                        } else {
                            self.hold_src(local, *child)
                        };
                        push_items(
                            self.plan,
                            *child,
                            (item.open.join(name), None, src),
                            false,
                            None,
                            push,
                            &mut local.tails,
                        );
                        continue;
                    }
                    (kind, _, OnExisting::Skip) => {
                        let below = match kind {
                            PKind::Dir(child) => self.plan.subtree_entries(*child),
                            _ => 0,
                        };
                        local.tally.skipped += 1 + below;
                        if let Some(p) = &opts.progress {
                            p.advanced(below, 0);
                        }
                        continue;
                    }
                    (_, _, OnExisting::Fail) => {
                        return Err(LinkError::DestinationExists(dst_full()));
                    }
                    (_, true, OnExisting::Overwrite) => {
                        // A directory holds entries the source may not have: replacing it by
                        // a file or a symlink would delete them. Refuse, as `cp` does.
                        return Err(LinkError::directory_in_the_way(&dst_full()));
                    }
                    (_, false, OnExisting::Overwrite) => replace = true,
                }
            }
            let tmp;
            let at: &OsStr = if item.fresh {
                name
            } else {
                tmp = temp_name(name);
                if let Some(j) = self.journal {
                    j.note_temp(&item.open, &tmp)?;
                }
                &tmp
            };
            // A new directory's identity, taken as soon as it is made (see below).
            let mut made_dir: Option<Stat> = None;
            let made = match &entry.kind {
                PKind::File(src) => self.file_entry(
                    local,
                    &mut files,
                    (dst_dir, mask),
                    dst_dev,
                    (name, at),
                    src,
                    &node.rel,
                    entry.origin,
                )?,
                PKind::Symlink(src) => {
                    self.symlink_entry(local, dst_dir, (name, at), src, &node.rel, entry.origin)?
                }
                PKind::Dir(child) => {
                    let child = *child;
                    let meta = self.plan.nodes[child].meta;
                    dst_dir
                        .create_dir(at, fill_mode(meta.map_or(0o755, |m| m.mode)))
                        .map_err(|e| LinkError::io("create directory", &dst_full(), e))?;
                    // In a merge, publication renames only the directory this run made:
                    // its identity is taken right after `mkdirat` (which gives no handle).
                    if !item.fresh {
                        made_dir = Some(
                            dst_dir
                                .stat(at)
                                .map_err(|e| LinkError::io("stat", &dst_full(), e))?,
                        );
                    }
                    let open = item.open.join(at);
                    let items = self.plan.nodes[child].entries.len().div_ceil(CHUNK);
                    match meta {
                        // Made 0755 less the umask, as documented; nothing to give it.
                        None => {}
                        // Its final bits would stop this run filling it or its subdirectories:
                        // set them at the end, deepest first.
                        Some(m) if m.mode & 0o700 != 0o700 => {
                            local.created.push((open.clone(), child));
                        }
                        // Nothing will be made in it: finish it now.
                        Some(m) if items == 0 => self
                            .finish_empty_dir(dst_dir, at, m)
                            .map_err(|e| LinkError::io("set mode and times of", &dst_full(), e))?,
                        // Its last work item finishes it.
                        Some(_) => self.pending[child].store(items, Ordering::Relaxed),
                    }
                    let (held, src) = if items > 0 {
                        (self.hold(dst_dir, at), self.hold_src(local, child))
                    } else {
                        (None, None)
                    };
                    // The handle its entries are made through must be that directory: one
                    // swapped in between would be filled while the one checked at
                    // publication stays empty.
                    if let (Some(h), Some(made)) = (&held, &made_dir) {
                        let st = h
                            .dir
                            .stat_self()
                            .map_err(|e| LinkError::io("stat", &dst_full(), e))?;
                        if (st.st_ino, st.st_dev) != (made.st_ino, made.st_dev) {
                            return Err(LinkError::io(
                                "create directory",
                                &dst_full(),
                                io::Error::other(
                                    "not the directory this merge made: it was moved or replaced",
                                ),
                            ));
                        }
                    }
                    push_items(
                        self.plan,
                        child,
                        (open, held, src),
                        true,
                        Some(dst_dev),
                        push,
                        &mut local.tails,
                    );
                    local.tally.dirs += 1;
                    if self.recording() {
                        local.push_record(RecordEntry {
                            path: node.rel.join(name),
                            kind: EntryKind::Dir,
                            size: Some(0),
                            method: None,
                            hash: None,
                            source: entry.origin as usize,
                            from: None,
                        });
                    }
                    true
                }
            };
            if made && !item.fresh {
                let st = match made_dir {
                    Some(st) => st,
                    None => dst_dir
                        .stat(at)
                        .map_err(|e| LinkError::io("stat", &dst_full(), e))?,
                };
                if replace {
                    local.tally.replaced += 1;
                }
                local.ops.push(Op {
                    dir: item.open.clone(),
                    tmp: at.to_owned(),
                    name: name.to_owned(),
                    replace,
                    ino: st.st_ino,
                    made: Some((
                        cowtree_fs::sys::stat_dev(&st),
                        FileType::from_raw_mode(st.st_mode),
                    )),
                });
            }
        }
        if let Some(p) = &opts.progress {
            p.advanced(done, bytes_of(&local.tally) - bytes_before);
        }
        // The last item of a directory finished in the link pass gives it its mode and times,
        // through the handle it has open, now that nothing more is made in it.
        let pending = &self.pending[item.node];
        if pending.load(Ordering::Relaxed) > 0 && pending.fetch_sub(1, Ordering::AcqRel) == 1 {
            // Only directories with metadata are counted, so `meta` is always there.
            if let Some(meta) = node.meta {
                self.finish_dir(dst_dir, meta).map_err(|e| {
                    LinkError::io("set mode and times of", &self.dst_path.join(&node.rel), e)
                })?;
            }
        }
        Ok(())
    }

    /// The source directory the entries of plan directory `child` come from (that of its
    /// first file or symlink), opened for the child's work items by name in the worker's
    /// current source directory when that is its parent (as for a tree linked as it is),
    /// never following a symlink; `None` otherwise, or when enough directories are held.
    fn hold_src<'s>(
        &'s self,
        local: &Local<'s>,
        child: usize,
    ) -> Option<((u32, u32), Arc<Held<'s>>)> {
        let (tree, node) = self.plan.nodes[child]
            .entries
            .iter()
            .find_map(|e| match &e.kind {
                PKind::File(SrcRef::Tree { tree, node, .. })
                | PKind::Symlink(SrcRef::Tree { tree, node, .. }) => Some((*tree, *node)),
                _ => None,
            })?;
        let ((parent_tree, parent_node), parent) = local.src.as_ref()?;
        if *parent_tree != tree {
            return None;
        }
        let nodes = &self.trees[tree as usize].tree.nodes;
        let rel = &nodes[node as usize].rel;
        if rel.parent()? != nodes[*parent_node as usize].rel.as_path() {
            return None;
        }
        let held = self.hold(parent.dir(), rel.file_name()?)?;
        Some(((tree, node), held))
    }

    /// True when a directory this run created with [`fill_mode`] is sure to have the final
    /// bits `mode` already.
    fn dir_exact(&self, mode: u32) -> bool {
        fill_mode(mode) == mode && self.mask.is_some_and(|m| m.dir_exact(mode))
    }

    /// Gives the directory `dir`, created by this run and complete, the source's mode
    /// `meta.mode` (which keeps owner read, write and search) and, unless asked not to, times.
    fn finish_dir(&self, dir: &Dir, meta: DirMeta) -> io::Result<()> {
        if !self.dir_exact(meta.mode) {
            // An fstat costs no metadata transaction, a chmod does.
            let now = dir.stat_self()?;
            if cowtree_fs::sys::stat_mode(&now) & 0o7777 != meta.mode {
                dir.set_mode(meta.mode)?;
            }
        }
        if self.engine.opts.preserve_times {
            dir.set_own_times(meta.atime, meta.mtime)?;
        }
        Ok(())
    }

    /// [`Run::finish_dir`] for the empty directory `name` in `parent`, just created: by name
    /// when only its times are due (never following a symlink put there), else opened.
    fn finish_empty_dir(&self, parent: &Dir, name: &OsStr, meta: DirMeta) -> io::Result<()> {
        if self.dir_exact(meta.mode) {
            if self.engine.opts.preserve_times {
                parent.set_times(name, meta.atime, meta.mtime)?;
            }
            return Ok(());
        }
        self.finish_dir(&parent.open_dir(name)?, meta)
    }

    /// Links one planned file to `at` in `dst_dir`; false when its source vanished.
    #[allow(clippy::too_many_arguments)]
    fn file_entry<'l>(
        &'l self,
        local: &mut Local,
        files: &mut Vec<FileLinker<'l>>,
        (dst_dir, mask): (&Dir, Option<CreationMask>),
        dst_dev: u64,
        (name, at): (&OsStr, &OsStr),
        src: &SrcRef,
        rel: &Path,
        origin: u32,
    ) -> Result<bool, LinkError> {
        let src_full = || crate::plan::src_path(self.trees, src);
        let dst_full = || self.dst_path.join(rel).join(name);
        let (src_dev, fsrc) = match src {
            SrcRef::Tree { tree, node, entry } => {
                let t = &self.trees[*tree as usize];
                let name = t.name(*node, *entry);
                let key = (*tree, *node);
                let dir = src_dir(&mut local.src, t, key)?;
                (
                    t.tree.nodes[*node as usize].meta.dev,
                    FileSrc {
                        dir: dir.as_fd(),
                        name,
                        mode: None,
                    },
                )
            }
            SrcRef::Path { path, dev, mode } => (
                *dev,
                FileSrc {
                    dir: CWD,
                    name: path.as_os_str(),
                    mode: *mode,
                },
            ),
        };
        let key = (src_dev, dst_dev);
        let idx = match files.iter().position(|f| f.key == key) {
            Some(i) => i,
            None => {
                files.push(FileLinker::new(self.engine, key, mask));
                files.len() - 1
            }
        };
        let Some((method, bytes)) =
            files[idx].link_file(&fsrc, dst_dir, at, &src_full, &dst_full, &mut local.tally)?
        else {
            return Ok(false);
        };
        if self.recording() {
            let (kind, size) = if method == Attempt::Symlink {
                (
                    EntryKind::Symlink,
                    Some(src_full().as_os_str().len() as u64),
                )
            } else {
                (EntryKind::File, bytes)
            };
            let hash = match self.engine.opts.hash {
                Some(algo) if kind == EntryKind::File => Some(
                    hash_file(dst_dir, at, algo)
                        .map_err(|e| LinkError::io("hash", &dst_full(), e))?,
                ),
                _ => None,
            };
            local.push_record(RecordEntry {
                path: rel.join(name),
                kind,
                size,
                method: Some(method),
                hash,
                source: origin as usize,
                from: Some(self.src_rel(src)),
            });
        }
        Ok(true)
    }

    /// Recreates one planned symlink at `at` in `dst_dir`; false when its source vanished.
    fn symlink_entry(
        &self,
        local: &mut Local,
        dst_dir: &Dir,
        (name, at): (&OsStr, &OsStr),
        src: &SrcRef,
        rel: &Path,
        origin: u32,
    ) -> Result<bool, LinkError> {
        let src_full = || crate::plan::src_path(self.trees, src);
        let dst_full = || self.dst_path.join(rel).join(name);
        let SrcRef::Tree { tree, node, entry } = src else {
            return Err(LinkError::SourceNotLinkable(src_full(), "symlink"));
        };
        let t = &self.trees[*tree as usize];
        let sname = t.name(*node, *entry);
        let key = (*tree, *node);
        let src_dir = src_dir(&mut local.src, t, key)?;
        let target = match readlinkat(src_dir, sname, Vec::new()) {
            Ok(t) => OsString::from_vec(t.into_bytes()),
            Err(Errno::NOENT) => {
                local.tally.vanished += 1;
                local.tally.fallback(Failure::SourceVanished, 0, src_full);
                return Ok(false);
            }
            Err(e) => return Err(LinkError::io("read symlink", &src_full(), e.into())),
        };
        let times = if self.engine.opts.preserve_times {
            let st = statat(src_dir, sname, AtFlags::SYMLINK_NOFOLLOW)
                .map_err(|e| LinkError::io("stat", &src_full(), e.into()))?;
            Some(timespec_pair(&st))
        } else {
            None
        };
        symlinkat(target.as_os_str(), dst_dir, at)
            .map_err(|e| LinkError::link("create symlink", &src_full(), &dst_full(), e.into()))?;
        if let Some((atime, mtime)) = times {
            utimensat(
                dst_dir,
                at,
                &rustix::fs::Timestamps {
                    last_access: atime,
                    last_modification: mtime,
                },
                AtFlags::SYMLINK_NOFOLLOW,
            )
            .map_err(|e| LinkError::io("set times of", &dst_full(), e.into()))?;
        }
        local.tally.symlinks += 1;
        if self.recording() {
            local.push_record(RecordEntry {
                path: rel.join(name),
                kind: EntryKind::Symlink,
                size: Some(target.len() as u64),
                method: None,
                hash: None,
                source: origin as usize,
                from: Some(self.src_rel(src)),
            });
        }
        Ok(true)
    }

    /// Gives the directories of `created` (the root when this run created it, and those whose
    /// final bits lack some of the owner's) the source's permission bits and (unless asked
    /// not to) times. Runs after all entries exist, deepest directories first so that a
    /// directory made unwritable or unsearchable is not needed afterwards.
    fn finish_dirs(&self, mut created: Vec<(PathBuf, usize)>) -> Result<(), LinkError> {
        let nodes = &self.plan.nodes;
        let preserve = self.engine.opts.preserve_times;
        // Only the root (the staging directory, created 0700) and directories whose final
        // bits lack some of the owner's are here: their mode is always set.
        created.retain(|(_, id)| nodes[*id].meta.is_some());
        let depth = |p: &Path| p.components().count();
        created.sort_by_key(|(p, _)| std::cmp::Reverse(depth(p)));
        let mut rest = created.as_slice();
        while let Some((first, _)) = rest.first() {
            let d = depth(first);
            let level_len = rest.iter().take_while(|(p, _)| depth(p) == d).count();
            let (level, tail) = rest.split_at(level_len);
            rest = tail;
            let items: Vec<&[(PathBuf, usize)]> = level.chunks(64).collect();
            self.engine.workers.run(
                self.engine.jobs.min(items.len()),
                items,
                || (),
                |_, dirs, _| {
                    for (open, id) in dirs {
                        self.engine.check_cancel(self.dst_path)?;
                        let node = &nodes[*id];
                        let meta = node.meta.expect("kept only directories with metadata");
                        let full = || self.dst_path.join(&node.rel);
                        let dir = open_rel(self.dst_root, open)
                            .map_err(|e| LinkError::io("open directory", &full(), e))?;
                        // The root may have its final bits already; an fstat costs no
                        // metadata transaction, a chmod does.
                        let now = dir
                            .stat_self()
                            .map_err(|e| LinkError::io("stat", &full(), e))?;
                        if cowtree_fs::sys::stat_mode(&now) & 0o7777 != meta.mode {
                            dir.set_mode(meta.mode)
                                .map_err(|e| LinkError::io("set mode of", &full(), e))?;
                        }
                        if preserve {
                            dir.set_own_times(meta.atime, meta.mtime)
                                .map_err(|e| LinkError::io("set times of", &full(), e))?;
                        }
                    }
                    Ok(())
                },
            )?;
        }
        Ok(())
    }
}

/// A key whose byte order is the order of [`Path`]'s `Ord` (component by component) for
/// normalized relative paths: the bytes, with the separator made to sort before every other
/// byte (names hold no NUL). Sorting by it compares with `memcmp` instead of parsing both
/// paths into components at every comparison.
fn path_key(p: &Path) -> Vec<u8> {
    p.as_os_str()
        .as_bytes()
        .iter()
        .map(|&c| if c == b'/' { 0 } else { c })
        .collect()
}

fn bytes_of(t: &Tally) -> u64 {
    t.bytes_cloned + t.bytes_copied + t.bytes_other
}

/// The content hash of the file `name` in `dir`, read through a new descriptor with
/// [`cowtree_fs::read::hash_fd`], or for SHA-256 [`cowtree_fs::read::read_chunks`] (the same
/// per-thread buffer, no BLAKE3 computed beside it).
fn hash_file(dir: &Dir, name: &OsStr, algo: HashAlgo) -> io::Result<Digest> {
    use sha2::Digest as _;
    let fd = openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let bytes = match algo {
        HashAlgo::Blake3 => {
            let (_, hash) = cowtree_fs::read::hash_fd(&fd, |_| Ok(()))?;
            hash.as_bytes().to_vec()
        }
        HashAlgo::Sha256 => {
            let mut sha = sha2::Sha256::new();
            cowtree_fs::read::read_chunks(&fd, |chunk| {
                sha.update(chunk);
                Ok(())
            })?;
            sha.finalize().to_vec()
        }
    };
    Ok(Digest { algo, bytes })
}

/// DST's final name, its parent's path (`.` for a bare name) and the parent opened.
fn open_parent(dst: &Path) -> Result<(&OsStr, &Path, Dir), LinkError> {
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
        let ft = FileType::from_raw_mode(st.st_mode);
        match engine.opts.on_existing {
            OnExisting::Fail => return Err(LinkError::DestinationExists(dst.to_path_buf())),
            _ if ft == FileType::Symlink => {
                return Err(LinkError::DestinationIsSymlink(dst.to_path_buf()));
            }
            _ if ft != FileType::Directory => {
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
    lock_destination(engine, dst_root, dst)?;
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
pub(crate) fn lock_destination(engine: &Engine, dir: &Dir, dst: &Path) -> Result<(), LinkError> {
    let mut pause = std::time::Duration::from_millis(2);
    let mut told = false;
    loop {
        if dir
            .try_lock_exclusive()
            .map_err(|e| LinkError::io("lock", dst, e))?
        {
            return Ok(());
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

/// The mode a directory is created with: its final permission bits, plus owner
/// read/write/search so that this run can fill it (the final bits are set afterwards).
fn fill_mode(mode: u32) -> u32 {
    (mode | 0o700) & 0o777
}

/// A regular file as the source: like `cp`. `dst` may be a new file path or an existing
/// directory (the file goes inside it, under its own name).
pub(crate) fn link_single_file(
    engine: &Engine,
    src_canon: &Path,
    src_id: (u64, u64),
    dst: &Path,
    started: Instant,
) -> Result<LinkReport, LinkError> {
    let opts = &engine.opts;
    let (dst_name, parent_path, parent) = open_parent(dst)?;
    let src_name = src_canon
        .file_name()
        .ok_or_else(|| LinkError::SourceNotLinkable(src_canon.to_path_buf(), "root directory"))?;
    let src_parent = src_canon.parent().unwrap_or(Path::new("/"));
    let src_dir = Dir::open(src_parent).map_err(|e| LinkError::io("open", src_parent, e))?;

    let into_dir = std::fs::metadata(dst).map(|m| m.is_dir()).unwrap_or(false);
    let opened;
    let (target_dir, target_dir_path, name): (&Dir, &Path, &OsStr) = if into_dir {
        opened = Dir::open(dst).map_err(|e| LinkError::io("open", dst, e))?;
        (&opened, dst, src_name)
    } else {
        (&parent, parent_path, dst_name)
    };
    let target = target_dir_path.join(name);
    let existing = target_dir
        .try_stat(name)
        .map_err(|e| LinkError::io("stat", &target, e))?;
    if let Some(st) = &existing {
        if (cowtree_fs::sys::stat_dev(st), st.st_ino) == src_id {
            return Err(LinkError::SameSourceAndDestination(target));
        }
        match opts.on_existing {
            OnExisting::Fail => return Err(LinkError::DestinationExists(target)),
            OnExisting::Skip => {
                let tally = Tally {
                    skipped: 1,
                    ..Tally::default()
                };
                return Ok(tally.into_report(target, started.elapsed()));
            }
            OnExisting::Overwrite if is_dir(st) => {
                return Err(LinkError::directory_in_the_way(&target));
            }
            OnExisting::Overwrite => {}
        }
    }
    let dst_dev = target_dir
        .stat_self()
        .map(|st| cowtree_fs::sys::stat_dev(&st))
        .map_err(|e| LinkError::io("stat", target_dir_path, e))?;
    let mut files = FileLinker::new(engine, (src_id.0, dst_dev), None);
    let mut tally = Tally::default();
    // Made in a staging directory of its own beside the target (named and locked like a
    // tree's, see `crate::staging`), then renamed out over the target: the staging directory
    // is created and the rename made only while the process is not stopping (see
    // `cowtree_fs::staging::stop_staging`), so a signal handler that lists this process's
    // staging finds the file's too, and never sees the target appear after it looked. Stale
    // staging of a killed run is not looked for here: that would list the whole directory for
    // every file (`cowtree clone F1 ... FN DIR` into a big DIR); one left is recognisable by
    // its name and free lock, as a temporary file left before this was.
    let staging = Staging::create(target_dir, target_dir_path, name)?;
    let src = FileSrc {
        dir: src_dir.as_fd(),
        name: src_name,
        mode: None,
    };
    let linked = files.link_file(
        &src,
        &staging.dir,
        name,
        &|| src_canon.to_path_buf(),
        &|| target.clone(),
        &mut tally,
    )?;
    let Some((method, bytes)) = linked else {
        return Err(LinkError::SourceMissing(src_canon.to_path_buf()));
    };
    let hash = match opts.hash {
        Some(algo) if method != Attempt::Symlink => Some(
            hash_file(&staging.dir, name, algo).map_err(|e| LinkError::io("hash", &target, e))?,
        ),
        _ => None,
    };
    if opts.sync {
        target_dir
            .sync_filesystem()
            .map_err(|e| LinkError::io("sync", &target, e))?;
    }
    engine.check_cancel(&target)?;
    let placed = cowtree_fs::staging::unless_stopping(|| {
        if existing.is_some() {
            staging.dir.rename(name, target_dir, name)
        } else {
            staging.dir.rename_noreplace(name, target_dir, name)
        }
    });
    if let Err(e) = placed {
        if e.kind() == io::ErrorKind::AlreadyExists {
            return Err(LinkError::DestinationExists(target));
        }
        return Err(LinkError::io("rename into place", &target, e));
    }
    if opts.sync {
        target_dir
            .sync()
            .map_err(|e| LinkError::io("sync", target_dir_path, e))?;
    }
    // The staging directory goes when dropped, empty (in hardlink mode, a rename of a link
    // over another link of the same inode does nothing and leaves the name in it); best
    // effort: one left is recognisable, and the next run removes it.
    drop(staging);
    if existing.is_some() {
        tally.replaced += 1;
    }
    let mut report = tally.into_report(target, started.elapsed());
    if opts.record || opts.hash.is_some() {
        let (kind, size) = if method == Attempt::Symlink {
            (EntryKind::Symlink, Some(src_canon.as_os_str().len() as u64))
        } else {
            (EntryKind::File, bytes)
        };
        report.record.push(RecordEntry {
            path: PathBuf::from(name),
            kind,
            size,
            method: Some(method),
            hash,
            source: 0,
            from: Some(src_canon.to_path_buf()),
        });
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_key_orders_as_path_components() {
        let paths = [
            "a",
            "a-b",
            "a/b",
            "a/b/c",
            "a/b-c",
            "a.b",
            "ab",
            "a0",
            "b",
            "a/a",
            "a/-",
            "a-/b",
            "\u{e9}",
            "a/\u{e9}/x",
            "a/\u{ff}",
        ];
        for x in paths {
            for y in paths {
                let (x, y) = (Path::new(x), Path::new(y));
                assert_eq!(path_key(x).cmp(&path_key(y)), x.cmp(y), "{x:?} vs {y:?}");
            }
        }
    }
}
