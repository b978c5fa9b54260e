//! The tree linker: checks, scan, staging, the parallel link pass, directory metadata, commit.

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::io;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::Instant;

use cowtree_fs::dir::Dir;
use cowtree_fs::{HardlinkOutcome, Method, Transfer, TransferOptions, hardlink_at, transfer_at};
use rustix::fs::{AtFlags, FileType, Stat, Timespec, readlinkat, statat, symlinkat, utimensat};
use rustix::io::Errno;

use crate::error::LinkError;
use crate::options::{LinkOptions, OnExisting};
use crate::pool;
use crate::report::{LinkReport, Tally};
use crate::scan::{DirMeta, Kind, Node, Tree, open_rel, scan};
use crate::staging::{Staging, random_u64, remove_stale};
use crate::state::{Attempt, Decision, Failure, LinkMode, LinkState};

/// Entries of one directory handled per work item; big directories are split so that
/// several workers share them.
const CHUNK: usize = 256;

/// Links the tree (or file) `src` to `dst`; see the crate documentation for the contract.
pub fn link_tree(src: &Path, dst: &Path, opts: &LinkOptions) -> Result<LinkReport, LinkError> {
    let started = Instant::now();
    let src_meta = match std::fs::metadata(src) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(LinkError::SourceMissing(src.to_path_buf()));
        }
        Err(e) => return Err(LinkError::io("stat", src, e)),
    };
    let src_canon = std::fs::canonicalize(src).map_err(|e| LinkError::io("resolve", src, e))?;
    let dst_name = dst
        .file_name()
        .ok_or_else(|| LinkError::InvalidDestination(dst.to_path_buf()))?;
    let parent_path = match dst.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let parent = Dir::open(parent_path)
        .map_err(|e| LinkError::io("open the destination's parent directory", parent_path, e))?;
    let src_id = (src_meta.dev(), src_meta.ino());

    if src_meta.is_file() {
        return link_single_file(
            &src_canon,
            src_id,
            dst,
            &parent,
            parent_path,
            dst_name,
            opts,
        )
        .map(|mut r| {
            r.elapsed = started.elapsed();
            r
        });
    }
    if !src_meta.is_dir() {
        return Err(LinkError::SourceNotLinkable(
            src.to_path_buf(),
            type_name(FileType::from_raw_mode(src_meta.mode())),
        ));
    }

    // Refusals before any work.
    let parent_canon =
        std::fs::canonicalize(parent_path).map_err(|e| LinkError::io("resolve", parent_path, e))?;
    if has_ancestor(&parent_canon, src_id) {
        return Err(LinkError::DestinationInsideSource {
            src: src.to_path_buf(),
            dst: dst.to_path_buf(),
        });
    }
    let existing = parent
        .try_stat(dst_name)
        .map_err(|e| LinkError::io("stat", dst, e))?;
    let merge = match existing {
        None => false,
        Some(st) => {
            if (st.st_dev, st.st_ino) == src_id {
                return Err(LinkError::SameSourceAndDestination(src.to_path_buf()));
            }
            let ft = FileType::from_raw_mode(st.st_mode);
            match opts.on_existing {
                OnExisting::Fail => return Err(LinkError::DestinationExists(dst.to_path_buf())),
                _ if ft == FileType::Symlink => {
                    return Err(LinkError::DestinationIsSymlink(dst.to_path_buf()));
                }
                _ if ft != FileType::Directory => {
                    return Err(LinkError::DestinationNotDirectory(dst.to_path_buf()));
                }
                _ => {}
            }
            if has_ancestor(&src_canon, (st.st_dev, st.st_ino)) {
                return Err(LinkError::SourceInsideDestination {
                    src: src.to_path_buf(),
                    dst: dst.to_path_buf(),
                });
            }
            true
        }
    };

    let src_root = Dir::open(&src_canon).map_err(|e| LinkError::io("open", src, e))?;
    let jobs = effective_jobs(opts.jobs);
    let tree = scan(&src_root, &src_canon, jobs)?;
    if !tree.special.is_empty() && !opts.skip_special {
        return Err(LinkError::SpecialFiles {
            src: src.to_path_buf(),
            paths: tree.special.iter().map(|p| src.join(p)).collect(),
        });
    }
    if let Some(p) = &opts.progress {
        p.scanned(&tree.totals);
    }

    let linker = Linker::new(opts, &src_canon, dst);
    let tally = if merge {
        let dst_root = parent
            .open_dir(dst_name)
            .map_err(|e| LinkError::io("open", dst, e))?;
        let run = TreeRun::new(&linker, &tree, &src_root, &dst_root, jobs);
        run.link_all(false)?
    } else {
        // Staging left by runs of this same destination that died; best effort.
        let _ = remove_stale(&parent, dst_name);
        let staging = Staging::create(&parent, parent_path, dst_name)?;
        let run = TreeRun::new(&linker, &tree, &src_root, &staging.dir, jobs);
        let tally = run.link_all(true)?;
        staging.commit(dst_name)?;
        tally
    };
    Ok(tally.into_report(dst.to_path_buf(), started.elapsed()))
}

/// Workers per core when the caller does not say. Cloning a tree is kernel work on
/// filesystem metadata (inode allocation, directory entries, the refcount btree, the log),
/// guarded by locks and mutexes that spin while their holder runs: with more runnable workers
/// than cores, a holder is preempted and the others wait behind it. Measured on XFS with the
/// 80,000-file bench tree on 2 cores (warm and cold cache alike): 1 per core 2.3-2.4 s,
/// 1.5 per core 2.7 s, 2 per core 2.8 s, 4 per core 3.3 s (`cp -a --reflink=always`: 5.5 s).
/// Copying to a slow disk can want more: `--jobs`.
const JOBS_PER_CORE: usize = 1;
/// Upper bound for the default number of workers.
const MAX_DEFAULT_JOBS: usize = 64;

/// Worker threads to use: as asked (0 = [`JOBS_PER_CORE`] per core), and few enough that each
/// can hold its four descriptors (source and destination directory, source and destination
/// file) under the process's open-file limit, with room for the caller's own.
pub(crate) fn effective_jobs(requested: usize) -> usize {
    let want = if requested == 0 {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        (cores * JOBS_PER_CORE).min(MAX_DEFAULT_JOBS)
    } else {
        requested
    };
    let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile)
        .current
        .unwrap_or(1024);
    let by_fds = (limit.saturating_sub(24) / 4).max(1);
    want.min(usize::try_from(by_fds).unwrap_or(usize::MAX))
        .max(1)
}

/// True when `path` or one of its ancestors is the directory `id` (device, inode). Comparing
/// inodes rather than strings also catches bind mounts and different spellings of one path.
fn has_ancestor(path: &Path, id: (u64, u64)) -> bool {
    path.ancestors().any(|a| {
        std::fs::metadata(a)
            .map(|m| (m.dev(), m.ino()) == id)
            .unwrap_or(false)
    })
}

fn type_name(ft: FileType) -> &'static str {
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

/// The fallback state of one (source device, destination device) pair, plus the failure
/// that moved it (every file linked after that is a fallback for that cause).
#[derive(Debug, Clone, Copy)]
struct Pair {
    state: LinkState,
    moved_because: Option<Failure>,
}

/// What a file link did.
enum Linked {
    /// Linked by `Attempt`, `bytes` of data.
    Done(Attempt, u64),
    /// The source file was gone.
    Vanished,
}

/// State shared by every worker of one run: options, paths for messages, pair states.
struct Linker<'a> {
    opts: &'a LinkOptions,
    /// The canonical source root (also the base of symlink-mode targets).
    src_path: &'a Path,
    /// The destination as the caller named it.
    dst_path: &'a Path,
    pairs: Mutex<HashMap<(u64, u64), Pair>>,
}

impl<'a> Linker<'a> {
    fn new(opts: &'a LinkOptions, src_path: &'a Path, dst_path: &'a Path) -> Self {
        Self {
            opts,
            src_path,
            dst_path,
            pairs: Mutex::new(HashMap::new()),
        }
    }

    fn with_pair<R>(&self, key: (u64, u64), f: impl FnOnce(&mut Pair) -> R) -> R {
        // Pair updates are single assignments of small Copy values, so a poisoned lock still
        // holds consistent data.
        let mut pairs = self.pairs.lock().unwrap_or_else(PoisonError::into_inner);
        let pair = pairs.entry(key).or_insert_with(|| Pair {
            state: LinkState::new(self.opts.mode, self.opts.strict),
            moved_because: None,
        });
        f(pair)
    }

    fn file_linker(&self, key: (u64, u64)) -> FileLinker<'_, 'a> {
        let pair = self.with_pair(key, |p| *p);
        FileLinker {
            linker: self,
            key,
            attempt: pair.state.attempt(),
            batch_because: pair.moved_because,
            worked: pair.state.has_worked(),
        }
    }
}

/// Links files of one directory (or one file) for one device pair, keeping a snapshot of the
/// pair's method so that the shared state is locked only on failures and the first success.
struct FileLinker<'l, 'a> {
    linker: &'l Linker<'a>,
    key: (u64, u64),
    attempt: Attempt,
    batch_because: Option<Failure>,
    worked: bool,
}

impl FileLinker<'_, '_> {
    /// Links the regular file `name` in `src_dir` to `dst_name` in `dst_dir` (which must not
    /// exist). `rel` and `name` are for messages.
    #[allow(clippy::too_many_arguments)]
    fn link_file(
        &mut self,
        src_dir: &Dir,
        dst_dir: &Dir,
        rel: &Path,
        name: &OsStr,
        dst_name: &OsStr,
        tally: &mut Tally,
    ) -> Result<(), LinkError> {
        let linker = self.linker;
        let src_full = || linker.src_path.join(rel).join(name);
        let dst_full = || linker.dst_path.join(rel).join(name);
        let mut attempt = self.attempt;
        // Set when this one file falls back; the batch's own cause is `batch_because`.
        let mut because: Option<Failure> = None;
        loop {
            let outcome = self
                .try_once(attempt, src_dir, dst_dir, rel, name, dst_name)
                .map_err(|e| LinkError::link("link", &src_full(), &dst_full(), e))?;
            let failure = match outcome {
                Ok(Linked::Done(method, bytes)) => {
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
                            linker.with_pair(self.key, |p| p.state.succeeded(method));
                        }
                    }
                    return Ok(());
                }
                Ok(Linked::Vanished) => {
                    tally.vanished += 1;
                    tally.fallback(Failure::SourceVanished, 0, src_full);
                    return Ok(());
                }
                Err(failure) => failure,
            };
            let (decision, now, moved_because) = linker.with_pair(self.key, |p| {
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
                Decision::Fail if linker.opts.strict => {
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
        src_dir: &Dir,
        dst_dir: &Dir,
        rel: &Path,
        name: &OsStr,
        dst_name: &OsStr,
    ) -> io::Result<Result<Linked, Failure>> {
        let opts = self.linker.opts;
        let transfer = |method| {
            let mut t = TransferOptions::new(method);
            t.preserve_times = opts.preserve_times;
            transfer_at(src_dir, name, dst_dir, dst_name, &t)
        };
        Ok(match attempt {
            Attempt::Clone => match transfer(Method::Clone)? {
                Transfer::Cloned { bytes } => Ok(Linked::Done(Attempt::Clone, bytes)),
                Transfer::Unsupported(cause) => Err(Failure::Clone(cause)),
                Transfer::SourceVanished => Err(Failure::SourceVanished),
                Transfer::Copied { bytes, .. } => Ok(Linked::Done(Attempt::Copy, bytes)),
            },
            Attempt::Copy => match transfer(Method::Copy)? {
                Transfer::Copied { bytes, .. } => Ok(Linked::Done(Attempt::Copy, bytes)),
                Transfer::Cloned { bytes } => Ok(Linked::Done(Attempt::Clone, bytes)),
                Transfer::SourceVanished => Ok(Linked::Vanished),
                Transfer::Unsupported(_) => {
                    return Err(io::Error::other("copy reported an unsupported clone"));
                }
            },
            Attempt::Hardlink => match hardlink_at(src_dir, name, dst_dir, dst_name)? {
                HardlinkOutcome::Linked => {
                    let st = statat(dst_dir, dst_name, AtFlags::SYMLINK_NOFOLLOW)?;
                    Ok(Linked::Done(Attempt::Hardlink, st.st_size as u64))
                }
                HardlinkOutcome::Refused(r) => Err(Failure::Hardlink(r)),
                HardlinkOutcome::SourceVanished => Err(Failure::SourceVanished),
            },
            Attempt::Symlink => {
                let st = match statat(src_dir, name, AtFlags::SYMLINK_NOFOLLOW) {
                    Ok(st) => st,
                    Err(Errno::NOENT) => return Ok(Ok(Linked::Vanished)),
                    Err(e) => return Err(e.into()),
                };
                let target = self.linker.src_path.join(rel).join(name);
                symlinkat(&target, dst_dir, dst_name)?;
                Ok(Linked::Done(Attempt::Symlink, st.st_size as u64))
            }
        })
    }
}

/// One unit of the link pass: entries `start..end` of directory `node`.
struct Item {
    node: usize,
    start: usize,
    end: usize,
    /// The destination directory was created by this run (so it is empty but for what this
    /// run puts there, and nothing needs checking before creating an entry).
    fresh: bool,
    /// The destination directory's device, when known without a stat.
    dst_dev: Option<u64>,
}

#[derive(Default)]
struct Local {
    tally: Tally,
    /// Directories this run created, which get the source's mode and times at the end.
    created: Vec<usize>,
}

/// One tree link into `dst_root` (a staging directory or an existing destination).
struct TreeRun<'r, 'a> {
    linker: &'r Linker<'a>,
    tree: &'r Tree,
    src_root: &'r Dir,
    dst_root: &'r Dir,
    jobs: usize,
}

impl<'r, 'a> TreeRun<'r, 'a> {
    fn new(
        linker: &'r Linker<'a>,
        tree: &'r Tree,
        src_root: &'r Dir,
        dst_root: &'r Dir,
        jobs: usize,
    ) -> Self {
        Self {
            linker,
            tree,
            src_root,
            dst_root,
            jobs,
        }
    }

    fn dst_full(&self, rel: &Path) -> PathBuf {
        self.linker.dst_path.join(rel)
    }

    fn src_full(&self, rel: &Path) -> PathBuf {
        self.linker.src_path.join(rel)
    }

    /// Links every entry, then gives the directories this run created their mode and times.
    /// `root_fresh`: the destination root was created by this run.
    fn link_all(&self, root_fresh: bool) -> Result<Tally, LinkError> {
        let mut first = Vec::new();
        let root_dev = if root_fresh {
            Some(
                self.dst_root
                    .stat_self()
                    .map_err(|e| LinkError::io("stat", self.linker.dst_path, e))?
                    .st_dev,
            )
        } else {
            None
        };
        push_items(&self.tree.nodes, 0, root_fresh, root_dev, &mut first);
        let locals = pool::run(self.jobs, first, Local::default, |local, item, push| {
            self.link_item(local, item, push)
        })?;
        let mut tally = Tally::default();
        let mut created = Vec::new();
        if root_fresh {
            created.push(0);
        }
        for local in locals {
            tally.merge(local.tally);
            created.extend(local.created);
        }
        self.finish_dirs(created)?;
        Ok(tally)
    }

    fn link_item(
        &self,
        local: &mut Local,
        item: Item,
        push: &mut Vec<Item>,
    ) -> Result<(), LinkError> {
        let node = &self.tree.nodes[item.node];
        let rel = node.rel.as_path();
        let src_dir = open_rel(self.src_root, rel)
            .map_err(|e| LinkError::io("open directory", &self.src_full(rel), e))?;
        let dst_dir = open_rel(self.dst_root, rel)
            .map_err(|e| LinkError::io("open directory", &self.dst_full(rel), e))?;
        let dst_dev = match item.dst_dev {
            Some(d) => d,
            None => {
                dst_dir
                    .stat_self()
                    .map_err(|e| LinkError::io("stat", &self.dst_full(rel), e))?
                    .st_dev
            }
        };
        let mut files = self.linker.file_linker((node.meta.dev, dst_dev));
        let bytes_before =
            local.tally.bytes_cloned + local.tally.bytes_copied + local.tally.bytes_other;
        let mut done = 0u64;
        for entry in &node.entries[item.start..item.end] {
            done += 1;
            let name: &OsStr = &entry.name;
            let existing = if item.fresh {
                None
            } else {
                dst_dir
                    .try_stat(name)
                    .map_err(|e| LinkError::io("stat", &self.dst_full(rel).join(name), e))?
            };
            match entry.kind {
                Kind::File => self.file_entry(
                    &mut files,
                    &src_dir,
                    &dst_dir,
                    rel,
                    name,
                    existing,
                    &mut local.tally,
                )?,
                Kind::Symlink => {
                    self.symlink_entry(&src_dir, &dst_dir, rel, name, existing, &mut local.tally)?
                }
                Kind::Dir(child) => {
                    self.dir_entry(&dst_dir, rel, name, child, existing, dst_dev, local, push)?
                }
                Kind::Special => local.tally.special += 1,
            }
        }
        if let Some(p) = &self.linker.opts.progress {
            let bytes =
                local.tally.bytes_cloned + local.tally.bytes_copied + local.tally.bytes_other;
            p.advanced(done, bytes - bytes_before);
        }
        Ok(())
    }

    /// Runs `make(tmp)` to create the new entry under a temporary name, then puts it in
    /// place of the existing entry `name`: renamed over it when both are non-directories,
    /// exchanged with it when a directory replaces a file (rename(2) cannot put a directory
    /// over a file), after which the old entry, now under the temporary name, is removed. A
    /// directory is never replaced by a non-directory: that is an error naming the path.
    /// `make` returns false when it created nothing (the source vanished).
    fn replace(
        &self,
        dst_dir: &Dir,
        rel: &Path,
        name: &OsStr,
        existing: &Stat,
        new_is_dir: bool,
        make: impl FnOnce(&OsStr) -> Result<bool, LinkError>,
    ) -> Result<(), LinkError> {
        let full = || self.dst_full(rel).join(name);
        // A directory holds entries the source may not have: replacing it by a file or a
        // symlink would delete them. Refuse, as `cp` does, before creating anything.
        if is_dir(existing) && !new_is_dir {
            return Err(directory_in_the_way(&full()));
        }
        let tmp = temp_name(name);
        if !make(&tmp)? {
            return Ok(());
        }
        let placed = if is_dir(existing) || new_is_dir {
            dst_dir
                .rename_exchange(&tmp, dst_dir, name)
                .and_then(|()| dst_dir.remove_tree(&tmp))
        } else {
            dst_dir.rename(&tmp, dst_dir, name).and_then(|()| {
                // rename(2) does nothing when both names are links to one inode (a hardlink
                // of the source already there); then the temporary name is still present.
                if self.linker.opts.mode == LinkMode::Hardlink {
                    dst_dir.remove_tree(&tmp)
                } else {
                    Ok(())
                }
            })
        };
        placed.map_err(|e| {
            let _ = dst_dir.remove_tree(&tmp);
            LinkError::io("replace", &full(), e)
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn file_entry(
        &self,
        files: &mut FileLinker<'_, '_>,
        src_dir: &Dir,
        dst_dir: &Dir,
        rel: &Path,
        name: &OsStr,
        existing: Option<Stat>,
        tally: &mut Tally,
    ) -> Result<(), LinkError> {
        match existing {
            None => files.link_file(src_dir, dst_dir, rel, name, name, tally),
            Some(st) => match self.linker.opts.on_existing {
                OnExisting::Skip => {
                    tally.skipped += 1;
                    Ok(())
                }
                OnExisting::Fail => {
                    Err(LinkError::DestinationExists(self.dst_full(rel).join(name)))
                }
                OnExisting::Overwrite => self.replace(dst_dir, rel, name, &st, false, |tmp| {
                    let vanished = tally.vanished;
                    files.link_file(src_dir, dst_dir, rel, name, tmp, tally)?;
                    Ok(tally.vanished == vanished)
                }),
            },
        }
    }

    fn symlink_entry(
        &self,
        src_dir: &Dir,
        dst_dir: &Dir,
        rel: &Path,
        name: &OsStr,
        existing: Option<Stat>,
        tally: &mut Tally,
    ) -> Result<(), LinkError> {
        if existing.is_some() && self.linker.opts.on_existing == OnExisting::Skip {
            tally.skipped += 1;
            return Ok(());
        }
        let src_full = || self.src_full(rel).join(name);
        let target = match readlinkat(src_dir, name, Vec::new()) {
            Ok(t) => OsString::from_vec(t.into_bytes()),
            Err(Errno::NOENT) => {
                tally.vanished += 1;
                tally.fallback(Failure::SourceVanished, 0, src_full);
                return Ok(());
            }
            Err(e) => return Err(LinkError::io("read symlink", &src_full(), e.into())),
        };
        let times = if self.linker.opts.preserve_times {
            let st = statat(src_dir, name, AtFlags::SYMLINK_NOFOLLOW)
                .map_err(|e| LinkError::io("stat", &src_full(), e.into()))?;
            Some(timespec_pair(&st))
        } else {
            None
        };
        let make = |at: &OsStr| -> Result<bool, LinkError> {
            let dst_full = || self.dst_full(rel).join(name);
            symlinkat(target.as_os_str(), dst_dir, at).map_err(|e| {
                LinkError::link("create symlink", &src_full(), &dst_full(), e.into())
            })?;
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
            Ok(true)
        };
        match existing {
            None => {
                make(name)?;
            }
            Some(st) => match self.linker.opts.on_existing {
                OnExisting::Fail => {
                    return Err(LinkError::DestinationExists(self.dst_full(rel).join(name)));
                }
                _ => self.replace(dst_dir, rel, name, &st, false, make)?,
            },
        }
        tally.symlinks += 1;
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn dir_entry(
        &self,
        dst_dir: &Dir,
        rel: &Path,
        name: &OsStr,
        child: usize,
        existing: Option<Stat>,
        dst_dev: u64,
        local: &mut Local,
        push: &mut Vec<Item>,
    ) -> Result<(), LinkError> {
        let full = || self.dst_full(rel).join(name);
        let nodes = &self.tree.nodes;
        match existing {
            None => {
                dst_dir
                    .create_dir(name, fill_mode(nodes[child].meta.mode))
                    .map_err(|e| LinkError::io("create directory", &full(), e))?;
                local.created.push(child);
                push_items(nodes, child, true, Some(dst_dev), push);
            }
            Some(st) if is_dir(&st) => {
                // Merge into it; its own mode and times stay as they are.
                push_items(nodes, child, false, None, push);
            }
            Some(st) => match self.linker.opts.on_existing {
                OnExisting::Skip => {
                    let below = nodes[child].subtree_entries(nodes);
                    local.tally.skipped += 1 + below;
                    if let Some(p) = &self.linker.opts.progress {
                        p.advanced(below, 0);
                    }
                    return Ok(());
                }
                OnExisting::Fail => return Err(LinkError::DestinationExists(full())),
                OnExisting::Overwrite => {
                    self.replace(dst_dir, rel, name, &st, true, |tmp| {
                        dst_dir
                            .create_dir(tmp, fill_mode(nodes[child].meta.mode))
                            .map_err(|e| LinkError::io("create directory", &full(), e))?;
                        Ok(true)
                    })?;
                    local.created.push(child);
                    push_items(nodes, child, true, Some(dst_dev), push);
                }
            },
        }
        local.tally.dirs += 1;
        Ok(())
    }

    /// Gives every directory this run created the source's permission bits and (unless
    /// asked not to) times. Runs after all entries exist, deepest directories first so that
    /// a directory made unwritable or unsearchable is not needed afterwards.
    fn finish_dirs(&self, mut created: Vec<usize>) -> Result<(), LinkError> {
        let nodes = &self.tree.nodes;
        let depth = |id: usize| nodes[id].rel.components().count();
        created.sort_by_key(|&id| std::cmp::Reverse(depth(id)));
        let preserve = self.linker.opts.preserve_times;
        let mut rest = created.as_slice();
        while let Some(&first) = rest.first() {
            let d = depth(first);
            let level_len = rest.iter().take_while(|&&id| depth(id) == d).count();
            let (level, tail) = rest.split_at(level_len);
            rest = tail;
            let items: Vec<&[usize]> = level.chunks(64).collect();
            pool::run(
                self.jobs.min(items.len()),
                items,
                || (),
                |_, ids, _| {
                    for &id in ids {
                        let node: &Node = &nodes[id];
                        let full = || self.dst_full(&node.rel);
                        let dir = open_rel(self.dst_root, &node.rel)
                            .map_err(|e| LinkError::io("open directory", &full(), e))?;
                        // Usually the directory was created with its final bits already; an
                        // fstat costs no metadata transaction, a chmod does.
                        let now = dir
                            .stat_self()
                            .map_err(|e| LinkError::io("stat", &full(), e))?;
                        if now.st_mode & 0o7777 != node.meta.mode {
                            dir.set_mode(node.meta.mode)
                                .map_err(|e| LinkError::io("set mode of", &full(), e))?;
                        }
                        if preserve {
                            dir.set_own_times(node.meta.atime, node.meta.mtime)
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

/// The mode a directory is created with: its final permission bits, plus owner
/// read/write/search so that this run can fill it (the final bits are set afterwards).
fn fill_mode(mode: u32) -> u32 {
    (mode | 0o700) & 0o777
}

fn push_items(
    nodes: &[Node],
    node: usize,
    fresh: bool,
    dst_dev: Option<u64>,
    push: &mut Vec<Item>,
) {
    let len = nodes[node].entries.len();
    let mut start = 0;
    while start < len {
        let end = (start + CHUNK).min(len);
        push.push(Item {
            node,
            start,
            end,
            fresh,
            dst_dev,
        });
        start = end;
    }
}

/// A regular file as the source: like `cp`. `dst` may be a new file path or an existing
/// directory (the file goes inside it, under its own name).
fn link_single_file(
    src_canon: &Path,
    src_id: (u64, u64),
    dst: &Path,
    parent: &Dir,
    parent_path: &Path,
    dst_name: &OsStr,
    opts: &LinkOptions,
) -> Result<LinkReport, LinkError> {
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
        (parent, parent_path, dst_name)
    };
    let target = target_dir_path.join(name);
    let existing = target_dir
        .try_stat(name)
        .map_err(|e| LinkError::io("stat", &target, e))?;
    if let Some(st) = &existing {
        if (st.st_dev, st.st_ino) == src_id {
            return Err(LinkError::SameSourceAndDestination(target));
        }
        match opts.on_existing {
            OnExisting::Fail => return Err(LinkError::DestinationExists(target)),
            OnExisting::Skip => {
                let tally = Tally {
                    skipped: 1,
                    ..Tally::default()
                };
                return Ok(tally.into_report(target, Default::default()));
            }
            OnExisting::Overwrite if is_dir(st) => return Err(directory_in_the_way(&target)),
            OnExisting::Overwrite => {}
        }
    }
    let dst_dev = target_dir
        .stat_self()
        .map_err(|e| LinkError::io("stat", target_dir_path, e))?
        .st_dev;
    let linker = Linker::new(opts, src_parent, target_dir_path);
    let mut files = linker.file_linker((src_id.0, dst_dev));
    let mut tally = Tally::default();
    let tmp = temp_name(name);
    files.link_file(
        &src_dir,
        target_dir,
        Path::new(""),
        src_name,
        &tmp,
        &mut tally,
    )?;
    if tally.vanished > 0 {
        return Err(LinkError::SourceMissing(src_canon.to_path_buf()));
    }
    let placed = if existing.is_some() {
        target_dir.rename(&tmp, target_dir, name)
    } else {
        target_dir.rename_noreplace(&tmp, target_dir, name)
    };
    if let Err(e) = placed {
        let _ = target_dir.remove_tree(&tmp);
        if e.kind() == io::ErrorKind::AlreadyExists {
            return Err(LinkError::DestinationExists(target));
        }
        return Err(LinkError::io("rename into place", &target, e));
    }
    if opts.mode == LinkMode::Hardlink {
        let _ = target_dir.remove_tree(&tmp);
    }
    Ok(tally.into_report(target, Default::default()))
}

/// The refusal to replace an existing directory by a file or symlink: the directory may hold
/// entries the source does not have, and overwriting must never delete them.
fn directory_in_the_way(path: &Path) -> LinkError {
    LinkError::io(
        "replace",
        path,
        io::Error::new(
            io::ErrorKind::IsADirectory,
            "a directory is there; cowtree does not replace a directory with a file or symlink \
             (remove it first)",
        ),
    )
}
