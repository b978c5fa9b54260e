//! `dedupe`: make identical regular files share their data, without changing any of them.
//!
//! 1. Walk the paths (with [`crate::du()`], which also measures unique physical bytes before),
//!    keeping regular files of at least `min_size` bytes; a hardlinked inode is kept once.
//! 2. Group by (device, size); in groups of two or more, hash with BLAKE3 in parallel. Files
//!    whose extents are at the same physical addresses already hold the same bytes: one of
//!    them is hashed for all. Each size group goes straight on to step 3 once hashed, so the
//!    kernel's comparison finds the pages still cached.
//! 3. For each set of files with equal hashes, pick as source the file whose data layout the
//!    most members already share (so files already sharing with it are not redone), and ask
//!    the kernel to deduplicate the others against it with FIDEDUPERANGE. The kernel locks both
//!    files and compares the bytes itself: a file changed after hashing is reported as skipped,
//!    never altered. Content, inode, mode and mtime of every file stay as they were.
//! 4. Measure unique physical bytes again; the difference is what was reclaimed.
//!
//! Refuses (before changing anything) paths on different devices and filesystems that cannot
//! share data. Destinations are opened read-only; only when the kernel refuses a read-only
//! destination (older kernels) is it reopened for writing, which by itself changes nothing.

use std::collections::HashMap;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use cowtree_fs::dedupe::{FileOutcome, FileResult, dedupe_file};
use cowtree_fs::extents::{Extent, fiemap};
use rayon::prelude::*;
use rustix::fs::{Mode, OFlags, fstat};
use rustix::io::Errno;

pub use crate::dedupe_api::{
    DEFAULT_MIN_SIZE, DedupeError, DedupeOptions, DedupeReport, NoProgress, Progress, Skipped,
};
use crate::disk_usage::{DuOptions, FileInfo, du, layout_of, unique_physical_with};

/// One file of a candidate group.
struct Member<'a> {
    info: &'a FileInfo,
    hash: [u8; 32],
    /// The file, still open from hashing it (files that were matched by layout instead are
    /// opened when deduplicated).
    fd: Option<OwnedFd>,
}

fn open_checked(info: &FileInfo, write: bool) -> io::Result<OwnedFd> {
    let access = if write {
        OFlags::WRONLY
    } else {
        OFlags::RDONLY
    };
    let fd = rustix::fs::open(
        &info.path,
        access | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| cowtree_fs::error::at_path("open", &info.path, e.into()))?;
    let st = fstat(&fd).map_err(|e| cowtree_fs::error::at_path("stat", &info.path, e.into()))?;
    if cowtree_fs::sys::stat_dev(&st) != info.dev
        || st.st_ino != info.ino
        || st.st_size as u64 != info.size
    {
        return Err(io::Error::other(format!(
            "{}: changed since the scan (another file, or another size)",
            info.path.display()
        )));
    }
    Ok(fd)
}

/// A file's hash, and the file still open.
type Hashed = ([u8; 32], OwnedFd);

/// Hashes the file; returns the hash and the file, still open, so that deduplicating it
/// does not look its path up again.
fn hash_file(info: &FileInfo, progress: &dyn Progress) -> io::Result<Hashed> {
    let fd = open_checked(info, false)?;
    let (total, hash) = cowtree_fs::read::hash_fd(&fd, |chunk| {
        progress.advance(chunk.len() as u64);
        Ok(())
    })
    .map_err(|e| cowtree_fs::error::at_path("read", &info.path, e))?;
    if total != info.size {
        return Err(io::Error::other(format!(
            "{}: size changed while hashing",
            info.path.display()
        )));
    }
    Ok((*hash.as_bytes(), fd))
}

fn root_dev(path: &Path) -> Result<(u64, OwnedFd), DedupeError> {
    let meta =
        std::fs::symlink_metadata(path).map_err(|e| cowtree_fs::error::at_path("stat", path, e))?;
    let dir = if meta.is_dir() {
        path
    } else {
        path.parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
    };
    let fd = rustix::fs::open(
        dir,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| cowtree_fs::error::at_path("open directory", dir, e.into()))?;
    use std::os::unix::fs::MetadataExt;
    Ok((meta.dev(), fd))
}

fn free_bytes(fd: BorrowedFd<'_>) -> Option<u64> {
    let st = rustix::fs::fstatvfs(fd).ok()?;
    Some(st.f_bfree.saturating_mul(st.f_frsize))
}

/// The filesystem the paths are on, checked before any work: one device, a filesystem type
/// that can share data. Holds every root open (the first one is asked for free space).
struct Target<'p> {
    roots: Vec<(&'p PathBuf, (u64, OwnedFd))>,
    fs_type: cowtree_fs::fstype::FsType,
}

impl<'p> Target<'p> {
    /// The paths' filesystem, or the refusal; `None` for no paths.
    fn check(paths: &'p [PathBuf]) -> Result<Option<Target<'p>>, DedupeError> {
        if !cowtree_fs::dedupe::AVAILABLE {
            return Err(DedupeError::Unavailable(cowtree_fs::sys::Unavailable {
                feature: cowtree_fs::dedupe::FEATURE,
            }));
        }
        let mut roots = Vec::new();
        for p in paths {
            roots.push((p, root_dev(p)?));
        }
        if let Some(((a, (dev_a, _)), rest)) = roots.split_first()
            && let Some((b, _)) = rest.iter().find(|(_, (d, _))| d != dev_a)
        {
            return Err(DedupeError::CrossDevice {
                a: a.to_path_buf(),
                b: b.to_path_buf(),
            });
        }
        let Some((first, (_, root_fd))) = roots.first() else {
            return Ok(None);
        };
        let fs_type = cowtree_fs::fstype::fs_type(root_fd)?;
        if !fs_type.may_reflink() {
            return Err(DedupeError::Unsupported {
                path: first.to_path_buf(),
                fs_type: fs_type.name(),
                why: "no FIDEDUPERANGE on this filesystem type".into(),
            });
        }
        Ok(Some(Target { roots, fs_type }))
    }

    /// The first path, which refusals name.
    fn first(&self) -> &Path {
        self.roots[0].0
    }

    /// The first path's directory, open.
    fn root_fd(&self) -> BorrowedFd<'_> {
        self.roots[0].1.1.as_fd()
    }
}

/// Finds identical files under `paths` and deduplicates them (see the module docs).
pub fn dedupe(paths: &[PathBuf], opts: &DedupeOptions<'_>) -> Result<DedupeReport, DedupeError> {
    // Refusals first, before any work.
    let Some(target) = Target::check(paths)? else {
        return Ok(DedupeReport {
            dry_run: opts.dry_run,
            ..Default::default()
        });
    };
    let df_before = free_bytes(target.root_fd());

    opts.progress.phase("scan", None);
    let before = du(
        paths,
        &DuOptions {
            collect_min_size: Some(opts.min_size.max(1)),
        },
    );
    let mut report = DedupeReport {
        dry_run: opts.dry_run,
        files_scanned: before.collected.len() as u64,
        unique_physical_before: before.unique_physical,
        unique_physical_after: before.unique_physical,
        reclaimed: before.unique_physical.map(|_| 0),
        errors: before.errors.clone(),
        ..Default::default()
    };
    let size_groups = size_groups(&before.collected);
    report.candidates = size_groups.iter().map(|v| v.len() as u64).sum();
    let (done, refusal) = dedupe_size_groups(&size_groups, opts);
    let remapped = report.add(done);
    if let Some(why) = refusal
        && report.files_deduped == 0
    {
        return Err(DedupeError::Unsupported {
            path: target.first().to_path_buf(),
            fs_type: target.fs_type.name(),
            why,
        });
    }
    if !opts.dry_run && report.files_deduped > 0 {
        opts.progress.phase("measure", None);
        measure_after(&before, &remapped, &mut report);
    }
    if !opts.dry_run {
        let _ = cowtree_fs::sys::sync_filesystem(target.root_fd());
    }
    report.df_freed = match (df_before, free_bytes(target.root_fd())) {
        (Some(b), Some(a)) => Some(a as i64 - b as i64),
        _ => None,
    };
    Ok(report)
}

impl DedupeReport {
    /// Adds what the groups did; returns the extents of the files handed to the kernel,
    /// mapped again, by (device, inode).
    fn add(&mut self, done: GroupOutcome) -> HashMap<(u64, u64), Vec<Extent>> {
        self.bytes_hashed += done.bytes_hashed;
        self.groups += done.groups;
        self.files_deduped += done.files_deduped;
        self.bytes_deduped += done.bytes_deduped;
        self.already_shared_files += done.already_shared_files;
        self.already_shared_bytes += done.already_shared_bytes;
        self.skipped.extend(done.skipped);
        self.skipped.sort_by(|a, b| a.path.cmp(&b.path));
        done.remapped.into_iter().collect()
    }
}

/// The files that can be equal: same size on the same device, in groups of two or more,
/// biggest files first (better balance across threads).
fn size_groups(files: &[FileInfo]) -> Vec<Vec<&FileInfo>> {
    let mut by_size: HashMap<(u64, u64), Vec<&FileInfo>> = HashMap::new();
    for f in files {
        by_size.entry((f.dev, f.size)).or_default().push(f);
    }
    by_size.retain(|_, v| v.len() > 1);
    let mut size_groups: Vec<Vec<&FileInfo>> = by_size.into_values().collect();
    size_groups.sort_unstable_by(|a, b| b[0].size.cmp(&a[0].size));
    size_groups
}

/// Hashes and deduplicates every size group; returns what they did, summed, and why the
/// filesystem refused FIDEDUPERANGE if it did.
///
/// Each size group is hashed and then deduplicated at once, while its pages are still in
/// the cache: the kernel's comparison then reads memory, not disk. Groups run in parallel
/// on a pool wider than the CPU count, because hashing cold files waits on the disk.
fn dedupe_size_groups(
    size_groups: &[Vec<&FileInfo>],
    opts: &DedupeOptions<'_>,
) -> (GroupOutcome, Option<String>) {
    let hash_total: u64 = size_groups
        .iter()
        .flat_map(|g| layout_jobs(g))
        .map(|(rep, _)| rep.size)
        .sum();
    opts.progress.phase("dedupe", Some(hash_total));
    let refusal = Refusal::default();
    let pool = cowtree_fs::workers::Pool::new(
        cowtree_fs::workers::budget(0, IO_THREADS),
        "cowtree-dedupe",
    );
    // Half the descriptor limit, shared by the threads, for files kept open per group.
    let nofile = rustix::process::getrlimit(rustix::process::Resource::Nofile)
        .current
        .unwrap_or(1024);
    let keep_open_max = ((nofile / 2) as usize / pool.jobs()).min(KEEP_OPEN_MAX);
    let outcomes: Vec<GroupOutcome> = pool.install(|| {
        size_groups
            .par_iter()
            .map(|files| process_size_group(files, opts, keep_open_max, &refusal))
            .collect()
    });
    let mut total = GroupOutcome::default();
    for o in outcomes {
        total.add(o);
    }
    (total, refusal.into_reason())
}

/// Measures unique physical bytes after deduplication into `report`. Only the files handed
/// to the kernel can have changed: their extents were mapped again right after (`remapped`);
/// with the walk's extents of every other file, that is what a second walk would find,
/// without the walk.
fn measure_after(
    before: &crate::disk_usage::DuReport,
    remapped: &HashMap<(u64, u64), Vec<Extent>>,
    report: &mut DedupeReport,
) {
    let after = unique_physical_with(
        before,
        before.collected.iter().map(|f| {
            remapped
                .get(&(f.dev, f.ino))
                .map_or(f.extents.as_slice(), Vec::as_slice)
        }),
    );
    report.unique_physical_after = after;
    report.reclaimed = match (before.unique_physical, after) {
        (Some(b), Some(a)) => Some(b as i64 - a as i64),
        _ => None,
    };
}

/// Size groups up to this many files keep their files open from hashing to deduplication.
const KEEP_OPEN_MAX: usize = 256;

/// Threads for hashing and deduplicating: two per CPU and at least 8, because reading cold
/// files waits on the disk, so more requests in flight than CPUs pay off. Each holds the file
/// it hashes and the one it dedupes into (the files a group keeps open come out of the other
/// half of the limit: see `keep_open_max`).
const IO_THREADS: cowtree_fs::workers::Demand = cowtree_fs::workers::Demand {
    per_core: 2,
    min: 8,
    max: 64,
    fds_per_worker: 2,
};

/// One hash job per physical layout in a size group: files whose extents are at the same
/// addresses hold the same bytes, so one of them is hashed for all. Returns (file to hash,
/// every file it stands for).
fn layout_jobs<'a>(files: &[&'a FileInfo]) -> Vec<(&'a FileInfo, Vec<&'a FileInfo>)> {
    let mut jobs: Vec<(&FileInfo, Vec<&FileInfo>)> = Vec::new();
    let mut by_layout: HashMap<u64, usize> = HashMap::new();
    for &f in files {
        match f.layout {
            Some(l) => match by_layout.get(&l) {
                Some(&j) => jobs[j].1.push(f),
                None => {
                    by_layout.insert(l, jobs.len());
                    jobs.push((f, vec![f]));
                }
            },
            None => jobs.push((f, vec![f])),
        }
    }
    jobs
}

/// Hashes one size group, then deduplicates each set of equal files in it.
fn process_size_group(
    files: &[&FileInfo],
    opts: &DedupeOptions<'_>,
    keep_open_max: usize,
    refusal: &Refusal,
) -> GroupOutcome {
    let mut out = GroupOutcome::default();
    // Keep the hashed files open for the deduplication unless the group is so large that
    // it would take too many descriptors.
    let keep_open = files.len() <= keep_open_max;
    let hashed: Vec<(Vec<&FileInfo>, io::Result<Hashed>)> = layout_jobs(files)
        .into_par_iter()
        .map(|(rep, all)| {
            let h = hash_file(rep, opts.progress);
            (all, h)
        })
        .collect();
    let mut sets: HashMap<[u8; 32], Vec<Member<'_>>> = HashMap::new();
    for (all, h) in hashed {
        match h {
            Ok((hash, fd)) => {
                out.bytes_hashed += all[0].size;
                let mut fd = keep_open.then_some(fd);
                for info in all {
                    // The open file is the job's representative, the first of `all`.
                    let fd = fd.take();
                    sets.entry(hash)
                        .or_default()
                        .push(Member { info, hash, fd });
                }
            }
            Err(e) => {
                for info in all {
                    out.skipped.push(Skipped {
                        path: info.path.clone(),
                        reason: format!("could not hash: {e}"),
                    });
                }
            }
        }
    }
    for mut set in sets.into_values() {
        if set.len() < 2 {
            continue; // unique content: its descriptor closes here
        }
        set.sort_unstable_by(|a, b| a.info.path.cmp(&b.info.path));
        debug_assert!(set.iter().all(|m| m.hash == set[0].hash));
        out.groups += 1;
        if let Some(hook) = opts.after_hash {
            hook();
        }
        out.add(dedupe_group(&mut set, opts.dry_run, refusal));
    }
    out
}

#[derive(Default)]
struct GroupOutcome {
    bytes_hashed: u64,
    groups: u64,
    files_deduped: u64,
    bytes_deduped: u64,
    already_shared_files: u64,
    already_shared_bytes: u64,
    skipped: Vec<Skipped>,
    /// (device, inode) and extents, mapped again after FIDEDUPERANGE, of every file handed
    /// to it.
    remapped: Vec<((u64, u64), Vec<Extent>)>,
}

impl GroupOutcome {
    fn add(&mut self, o: GroupOutcome) {
        self.bytes_hashed += o.bytes_hashed;
        self.groups += o.groups;
        self.files_deduped += o.files_deduped;
        self.bytes_deduped += o.bytes_deduped;
        self.already_shared_files += o.already_shared_files;
        self.already_shared_bytes += o.already_shared_bytes;
        self.skipped.extend(o.skipped);
        self.remapped.extend(o.remapped);
    }
}

fn is_refusal(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error().map(Errno::from_raw_os_error),
        Some(Errno::OPNOTSUPP | Errno::NOTTY | Errno::NOSYS)
    )
}

fn is_permission(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error().map(Errno::from_raw_os_error),
        Some(Errno::INVAL | Errno::PERM | Errno::ACCESS | Errno::BADF)
    )
}

/// Whether the filesystem refused FIDEDUPERANGE (then no group asks again), and the first
/// refusal's words.
#[derive(Default)]
struct Refusal {
    refused: AtomicBool,
    why: Mutex<Option<String>>,
}

impl Refusal {
    fn is_refused(&self) -> bool {
        self.refused.load(Ordering::Relaxed)
    }

    fn note(&self, why: impl FnOnce() -> String) {
        self.refused.store(true, Ordering::Relaxed);
        let mut r = self.why.lock().unwrap_or_else(|p| p.into_inner());
        r.get_or_insert_with(why);
    }

    fn into_reason(self) -> Option<String> {
        self.why.into_inner().unwrap_or_else(|p| p.into_inner())
    }
}

/// A member of a set of equal files, open and mapped again.
struct Opened<'a> {
    info: &'a FileInfo,
    fd: OwnedFd,
    /// Its physical layout (see [`layout_of`]).
    layout: Option<u64>,
    /// Bytes of its extents shared with anything.
    shared_bytes: u64,
}

/// Deduplicates one set of files with equal hashes against the member chosen as source.
fn dedupe_group(group: &mut [Member<'_>], dry_run: bool, refusal: &Refusal) -> GroupOutcome {
    let mut out = GroupOutcome::default();
    let size = group[0].info.size;
    let open = open_members(group, &mut out);
    if open.len() < 2 {
        return out;
    }
    let src_idx = choose_source(&open);
    let (src, dests) = leave_already_shared(open, src_idx, size, &mut out);
    if dests.is_empty() {
        return out;
    }
    if dry_run {
        out.files_deduped += dests.len() as u64;
        out.bytes_deduped += size * dests.len() as u64;
        return out;
    }
    if refusal.is_refused() {
        for (info, _) in &dests {
            out.skipped.push(Skipped {
                path: info.path.clone(),
                reason: "not deduplicated: the filesystem refused FIDEDUPERANGE".into(),
            });
        }
        return out;
    }
    let src_path = &src.info.path;
    let fds: Vec<BorrowedFd<'_>> = dests.iter().map(|(_, fd)| fd.as_fd()).collect();
    let results = match dedupe_file(src.fd.as_fd(), size, &fds) {
        Ok(r) => r,
        Err(e) => {
            if is_refusal(&e) {
                refusal.note(|| format!("FIDEDUPERANGE on {}: {e}", src_path.display()));
            }
            for (info, _) in &dests {
                out.skipped.push(Skipped {
                    path: info.path.clone(),
                    reason: format!(
                        "not deduplicated: FIDEDUPERANGE with source {} failed: {e}",
                        src_path.display()
                    ),
                });
            }
            return out;
        }
    };
    for ((info, _), res) in dests.iter().zip(results) {
        let res = retry_writable(info, src.fd.as_fd(), size, res);
        count_result(info, res, src_path, &mut out);
    }
    // Map again whatever the kernel was given: a destination deduplicated in part (it
    // differed further on) has changed too. The source keeps its blocks, but map it as well.
    for (info, fd) in std::iter::once((src.info, &src.fd)).chain(dests.iter().map(|(i, f)| (*i, f)))
    {
        if let Ok(extents) = fiemap(fd) {
            out.remapped.push(((info.dev, info.ino), extents));
        }
    }
    out
}

/// Opens and maps every member now (the walk's layouts may be stale); one that cannot be
/// opened as it was scanned is skipped.
fn open_members<'a>(group: &mut [Member<'a>], out: &mut GroupOutcome) -> Vec<Opened<'a>> {
    let mut open = Vec::new();
    for m in group.iter_mut() {
        let fd = match m.fd.take() {
            Some(fd) => Ok(fd),
            None => open_checked(m.info, false),
        };
        match fd {
            Ok(fd) => {
                let extents = fiemap(&fd).unwrap_or_default();
                open.push(Opened {
                    info: m.info,
                    fd,
                    layout: layout_of(&extents),
                    shared_bytes: extents
                        .iter()
                        .filter(|e| e.is_shared())
                        .map(|e| e.length)
                        .sum(),
                });
            }
            Err(e) => out.skipped.push(Skipped {
                path: m.info.path.clone(),
                reason: format!("not deduplicated: {e}"),
            }),
        }
    }
    open
}

/// The index of the source: the member whose layout the most members share; then the one
/// with the most data shared with anything (a clone outside the paths keeps those blocks
/// alive anyway, so pointing the others at them is what frees space); then the first by path.
fn choose_source(open: &[Opened<'_>]) -> usize {
    let mut counts: HashMap<u64, usize> = HashMap::new();
    for o in open {
        if let Some(l) = o.layout {
            *counts.entry(l).or_default() += 1;
        }
    }
    (0..open.len())
        .max_by_key(|&i| {
            let c = open[i]
                .layout
                .and_then(|l| counts.get(&l).copied())
                .unwrap_or(1);
            (c, open[i].shared_bytes, std::cmp::Reverse(i))
        })
        .expect("a group has at least two members")
}

/// The source, and the members to deduplicate against it: the others, less those that share
/// its layout already (counted as already shared).
fn leave_already_shared<'a>(
    mut open: Vec<Opened<'a>>,
    src_idx: usize,
    size: u64,
    out: &mut GroupOutcome,
) -> (Opened<'a>, Vec<(&'a FileInfo, OwnedFd)>) {
    let src = open.remove(src_idx);
    let mut dests = Vec::new();
    for o in open {
        if o.layout.is_some() && o.layout == src.layout {
            out.already_shared_files += 1;
            out.already_shared_bytes += size;
        } else {
            dests.push((o.info, o.fd));
        }
    }
    (src, dests)
}

/// `res`, or where an older kernel refused a destination open read-only, the result of one
/// more try with the destination reopened for writing (which changes nothing by itself).
fn retry_writable(info: &FileInfo, src: BorrowedFd<'_>, size: u64, res: FileResult) -> FileResult {
    match res.outcome {
        FileOutcome::Failed { ref error, .. } if is_permission(error) => {
            match open_checked(info, true) {
                Ok(wfd) => match dedupe_file(src, size, &[wfd.as_fd()]) {
                    Ok(mut v) => v.pop().unwrap_or(res),
                    Err(_) => res,
                },
                Err(_) => res,
            }
        }
        _ => res,
    }
}

/// Counts the kernel's answer for the destination `info` (source at `src_path`).
fn count_result(info: &FileInfo, res: FileResult, src_path: &Path, out: &mut GroupOutcome) {
    match res.outcome {
        FileOutcome::Deduped => {
            out.files_deduped += 1;
            out.bytes_deduped += res.bytes_deduped;
        }
        FileOutcome::Differs { at } => out.skipped.push(Skipped {
            path: info.path.clone(),
            reason: format!(
                "not deduplicated: its bytes differ from {} at offset {at} (changed since \
                 hashing; the kernel compared them)",
                src_path.display()
            ),
        }),
        FileOutcome::Failed { at, error } => out.skipped.push(Skipped {
            path: info.path.clone(),
            reason: format!(
                "not deduplicated: the kernel refused it at offset {at} (source {}): {error}",
                src_path.display()
            ),
        }),
    }
}
