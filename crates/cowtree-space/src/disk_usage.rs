//! `du` that answers "is it really sharing?": apparent, allocated, shared and unique physical
//! bytes of a set of paths.
//!
//! - **apparent**: sum of `st_size` of every inode reached (files, directories, symlinks).
//! - **allocated**: sum of `st_blocks * 512` of every inode reached, what `du` shows.
//! - **shared**: bytes of regular files' extents that FIEMAP marks shared (with another file,
//!   a clone or a snapshot, inside or outside the given paths).
//! - **unique physical**: the bytes of disk that the regular files' data occupies, each block
//!   counted once however many files or clones use it: the union of the extents' physical
//!   ranges per device (partial overlaps are merged).
//!
//! Hardlinks (an inode with several names) are counted once, by (device, inode). A path named
//! twice, or inside another named path, counts its other files twice in apparent and allocated
//! (as `du` does with `-l`); unique physical still counts every block once. Extents with
//! no real disk address (data stored inline in metadata on btrfs, delayed allocation that a
//! FIEMAP sync could not resolve, `UNKNOWN` locations) cannot be compared by address, so their
//! length is counted in unique physical once per inode and reported as `unaddressed`.
//! Compressed btrfs extents are reported by FIEMAP with their uncompressed length; unique
//! physical then counts that length. Directory and symlink blocks are metadata: they are in
//! allocated, not in shared or unique physical.
//!
//! Filesystems without FIEMAP (tmpfs, some FUSE) cannot say what is shared: their files are
//! counted in apparent and allocated, and listed as unmapped with the reason; shared and
//! unique physical are `None` when no file could be mapped.
//!
//! On Windows there is no FIEMAP: `du` reports apparent sizes and allocated sizes (each
//! file's `AllocationSize`), hardlinks counted once by (volume serial, file id), and the
//! counts; shared and unique physical are always `None` there, every regular file is
//! unmapped, and [`DuReport::unmapped_reason`] says so in one line (`WINDOWS_NOTE`).

use std::collections::{BTreeMap, HashMap, HashSet};
#[cfg(unix)]
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::Mutex;

use cowtree_fs::Progress;
use cowtree_fs::dir::{FileType, Stat};
#[cfg(unix)]
use cowtree_fs::extents::{
    EXTENT_DATA_INLINE, EXTENT_DELALLOC, EXTENT_UNKNOWN, Extent, fiemap_range_into,
};
use cowtree_fs::sys::{stat_allocated, stat_file_type, stat_ino, stat_nlink, stat_size};
use serde::Serialize;

use crate::interval::IntervalSet;
#[cfg(unix)]
use crate::usage_walk::At;
use crate::usage_walk::{Kind, Visit, walk};

/// FIEMAP_EXTENT_NOT_ALIGNED: comes with inline data; the address is not a block address.
#[cfg(unix)]
const EXTENT_NOT_ALIGNED: u32 = 0x100;

/// What `du` says on Windows in [`DuReport::unmapped_reason`] (and `cowtree du` after
/// "shared: unavailable"): what it reports there and what it cannot.
#[cfg(windows)]
pub const WINDOWS_NOTE: &str = "sharing is not measured on Windows (no FIEMAP extent maps): \
                                apparent and allocated sizes only";

/// What to do besides counting.
#[derive(Debug, Clone, Copy, Default)]
pub struct DuOptions {
    /// Also return every regular file of at least this size (for dedupe; none on Windows,
    /// where dedupe is refused).
    pub collect_min_size: Option<u64>,
}

/// One regular file found by the walk, for callers that asked with
/// [`DuOptions::collect_min_size`].
#[derive(Debug, Clone)]
pub struct FileInfo {
    /// Its path.
    pub path: PathBuf,
    /// `st_dev`.
    pub dev: u64,
    /// `st_ino` (on Windows the 128-bit file id).
    pub ino: cowtree_fs::sys::Ino,
    /// `st_size`.
    pub size: u64,
    /// A hash of where its data lives (logical offset, physical address and length of each
    /// extent): two files with the same value share all their blocks. `None` when the file
    /// could not be mapped or has extents without an address.
    pub layout: Option<u64>,
    /// Its extents as the walk found them (empty when it could not be mapped).
    #[cfg(unix)]
    pub extents: Vec<Extent>,
}

/// Figures for one device.
#[derive(Debug, Clone, Serialize)]
pub struct DeviceUsage {
    /// `st_dev` of the files.
    pub dev: u64,
    /// The filesystem type ("xfs", "btrfs", "tmpfs", ...).
    pub fs_type: &'static str,
    /// Whether FIEMAP worked there.
    pub fiemap_available: bool,
    /// Unique physical bytes of this device's files (`None` without FIEMAP).
    pub unique_physical: Option<u64>,
}

/// What `du` found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DuReport {
    /// Sum of `st_size`, hardlinks once.
    pub apparent: u64,
    /// Sum of `st_blocks * 512` (on Windows of `AllocationSize`), hardlinks once.
    pub allocated: u64,
    /// Bytes in extents FIEMAP marks shared (`None` when no file could be mapped).
    pub shared: Option<u64>,
    /// Physical bytes of file data counted once (`None` when no file could be mapped).
    pub unique_physical: Option<u64>,
    /// Whether every regular file with data could be mapped; when false, shared and unique
    /// physical leave out the `unmapped_files`.
    pub fiemap_available: bool,
    /// Regular files (hardlinks once).
    pub files: u64,
    /// Directories.
    pub dirs: u64,
    /// Symlinks.
    pub symlinks: u64,
    /// Sockets, FIFOs, devices.
    pub other: u64,
    /// Names skipped because their inode was already counted under another name.
    pub hardlinks_skipped: u64,
    /// Regular files whose extents could not be read.
    pub unmapped_files: u64,
    /// Allocated bytes of those files.
    pub unmapped_allocated: u64,
    /// Why they could not be mapped (the first reason seen, naming a path).
    pub unmapped_reason: Option<String>,
    /// Bytes in extents without a disk address, counted once per inode in unique physical.
    pub unaddressed: u64,
    /// Per device.
    pub devices: Vec<DeviceUsage>,
    /// Errors (each names its path); the walk went on past them.
    pub errors: Vec<String>,
    /// How many errors in all (`errors` keeps the first 100).
    pub error_count: u64,
    /// Files collected for [`DuOptions::collect_min_size`], sorted by path.
    #[serde(skip)]
    pub collected: Vec<FileInfo>,
    /// With [`DuOptions::collect_min_size`]: the physical ranges of every file that was not
    /// collected, per device, and their unaddressed bytes. With the collected files' extents
    /// they make up unique physical; see [`unique_physical_with`].
    #[serde(skip)]
    pub uncollected: HashMap<u64, IntervalSet>,
    /// See `uncollected`.
    #[serde(skip)]
    pub uncollected_unaddressed: u64,
}

/// Unique physical bytes of the walked paths if the collected files now had the extents
/// `extents_of` gives (per file, in the order of `report.collected`), everything else
/// unchanged: what a new [`du`] would say after changing only those files, without walking
/// again. `None` when the report has no unique physical figure.
#[cfg(unix)]
pub fn unique_physical_with<'a>(
    report: &DuReport,
    extents_of: impl Iterator<Item = &'a [Extent]>,
) -> Option<u64> {
    report.unique_physical?;
    let mut sets = report.uncollected.clone();
    let mut unaddressed = report.uncollected_unaddressed;
    for (f, extents) in report.collected.iter().zip(extents_of) {
        let set = sets.entry(f.dev).or_default();
        for e in extents {
            if is_unaddressed(e) {
                unaddressed += e.length;
            } else {
                set.insert(e.physical, e.length);
            }
        }
    }
    Some(sets.values_mut().map(|s| s.total()).sum::<u64>() + unaddressed)
}

#[derive(Default)]
struct Acc {
    apparent: u64,
    allocated: u64,
    shared: u64,
    files: u64,
    dirs: u64,
    symlinks: u64,
    other: u64,
    hardlinks_skipped: u64,
    mapped_files: u64,
    unmapped_files: u64,
    unmapped_allocated: u64,
    unmapped_reason: Option<String>,
    unaddressed: u64,
    sets: HashMap<u64, IntervalSet>,
    fiemap_failed_dev: HashSet<u64>,
    fs_types: HashMap<u64, &'static str>,
    errors: Vec<String>,
    error_count: u64,
    collected: Vec<FileInfo>,
    /// Reused for each file's extents.
    #[cfg(unix)]
    extents: Vec<Extent>,
    rest_sets: HashMap<u64, IntervalSet>,
    rest_unaddressed: u64,
}

#[cfg(unix)]
fn is_unaddressed(e: &Extent) -> bool {
    e.flags & (EXTENT_DATA_INLINE | EXTENT_UNKNOWN | EXTENT_DELALLOC | EXTENT_NOT_ALIGNED) != 0
}

/// The layout hash of a file's extents (see [`FileInfo::layout`]).
#[cfg(unix)]
pub fn layout_of(extents: &[Extent]) -> Option<u64> {
    if extents.is_empty() || extents.iter().any(is_unaddressed) {
        return None;
    }
    let mut h = blake3::Hasher::new();
    for e in extents {
        h.update(&e.logical.to_le_bytes());
        h.update(&e.physical.to_le_bytes());
        h.update(&e.length.to_le_bytes());
    }
    let bytes = h.finalize();
    Some(u64::from_le_bytes(
        bytes.as_bytes()[..8]
            .try_into()
            .expect("a BLAKE3 hash has 32 bytes"),
    ))
}

/// Walker threads for [`du`]: one per CPU, at most 16; each holds the walk's descriptors and
/// the file it maps.
const WALKERS: cowtree_fs::workers::Demand = cowtree_fs::workers::Demand {
    per_core: 1,
    min: 1,
    max: 16,
    fds_per_worker: cowtree_fs::walk::FDS_PER_WORKER + 1,
};

/// Counts `paths` (see the module docs). Errors on single entries are collected in the report
/// and the walk goes on; a root that does not exist is one such error.
pub fn du(paths: &[PathBuf], opts: &DuOptions) -> DuReport {
    du_with_progress(paths, opts, &Progress::default())
}

/// [`du`], counting into `progress` one entry per entry visited, with the apparent size of
/// each file. The total is not known in advance (the walk is the count).
pub fn du_with_progress(paths: &[PathBuf], opts: &DuOptions, progress: &Progress) -> DuReport {
    let seen_links: Mutex<HashSet<(u64, cowtree_fs::sys::Ino)>> = Mutex::new(HashSet::new());
    let visit = |acc: &mut Acc, v: Visit<'_>| {
        let size = match stat_file_type(v.stat) {
            FileType::RegularFile => stat_size(v.stat),
            _ => 0,
        };
        visit_entry(acc, v, &seen_links, opts);
        progress.add(1, size);
    };
    // One walker per CPU, not more: on XFS, FIEMAP of a reflinked file looks each extent up
    // in its allocation group's refcount btree under the AGF buffer lock, a sleeping lock
    // handed over to the next waiter. With more walkers than CPUs a holder gets preempted and
    // the others queue behind it: over 10 clones of the bench tree (2 CPUs, warm cache) 2
    // walkers took 3.1 s, 4 took 4.6 s and 8 took 6.4 s, with 20,000, 147,000 and 279,000
    // context switches. Over plain copies (no refcount lookups) the count made no difference.
    let walkers = cowtree_fs::workers::budget(0, WALKERS);
    let (states, errors) = walk::<Acc, _>(paths, walkers, &visit);
    let mut total = Acc::default();
    for s in states {
        merge(&mut total, s);
    }
    let mut report = DuReport {
        apparent: total.apparent,
        allocated: total.allocated,
        files: total.files,
        dirs: total.dirs,
        symlinks: total.symlinks,
        other: total.other,
        hardlinks_skipped: total.hardlinks_skipped,
        unmapped_files: total.unmapped_files,
        unmapped_allocated: total.unmapped_allocated,
        unmapped_reason: total.unmapped_reason,
        unaddressed: total.unaddressed,
        fiemap_available: total.unmapped_files == 0,
        ..Default::default()
    };
    let mut devs: BTreeMap<u64, &'static str> = BTreeMap::new();
    devs.extend(total.fs_types.iter().map(|(d, t)| (*d, *t)));
    let mut unique = 0u64;
    for (dev, fs_type) in devs {
        let set = total.sets.get_mut(&dev);
        let fiemap_ok = !total.fiemap_failed_dev.contains(&dev);
        let u = set.map(|s| s.total()).unwrap_or(0);
        unique += u;
        report.devices.push(DeviceUsage {
            dev,
            fs_type,
            fiemap_available: fiemap_ok,
            unique_physical: fiemap_ok.then_some(u),
        });
    }
    // With nothing mapped at all there is no figure to give, unless there was nothing to map.
    let nothing_mapped = total.mapped_files == 0 && total.unmapped_files > 0;
    if !nothing_mapped {
        report.shared = Some(total.shared);
        report.unique_physical = Some(unique + total.unaddressed);
    }
    report.errors = total.errors;
    report.errors.extend(errors.messages);
    report.error_count = total.error_count + errors.count;
    report.collected = total.collected;
    report.uncollected = total.rest_sets;
    report.uncollected_unaddressed = total.rest_unaddressed;
    report
        .collected
        .sort_unstable_by(|a, b| a.path.cmp(&b.path));
    // No extent maps on Windows: nothing is mapped, and that is no failure of the walk.
    #[cfg(windows)]
    {
        report.shared = None;
        report.unique_physical = None;
        report.fiemap_available = false;
        report.unmapped_reason = Some(WINDOWS_NOTE.to_string());
    }
    report
}

fn merge(total: &mut Acc, s: Acc) {
    total.apparent += s.apparent;
    total.allocated += s.allocated;
    total.shared += s.shared;
    total.files += s.files;
    total.dirs += s.dirs;
    total.symlinks += s.symlinks;
    total.other += s.other;
    total.hardlinks_skipped += s.hardlinks_skipped;
    total.mapped_files += s.mapped_files;
    total.unmapped_files += s.unmapped_files;
    total.unmapped_allocated += s.unmapped_allocated;
    if total.unmapped_reason.is_none() {
        total.unmapped_reason = s.unmapped_reason;
    }
    total.unaddressed += s.unaddressed;
    for (dev, set) in s.sets {
        total.sets.entry(dev).or_default().absorb(set);
    }
    total.fiemap_failed_dev.extend(s.fiemap_failed_dev);
    total.fs_types.extend(s.fs_types);
    total.errors.extend(s.errors);
    total.error_count += s.error_count;
    total.collected.extend(s.collected);
    for (dev, set) in s.rest_sets {
        total.rest_sets.entry(dev).or_default().absorb(set);
    }
    total.rest_unaddressed += s.rest_unaddressed;
}

fn visit_entry(
    acc: &mut Acc,
    v: Visit<'_>,
    seen_links: &Mutex<HashSet<(u64, cowtree_fs::sys::Ino)>>,
    opts: &DuOptions,
) {
    let st: &Stat = v.stat;
    let ft = stat_file_type(st);
    let (dev, ino) = (cowtree_fs::sys::stat_dev(st), stat_ino(st));
    if ft != FileType::Directory && stat_nlink(st) > 1 {
        let first = seen_links
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert((dev, ino));
        if !first {
            acc.hardlinks_skipped += 1;
            return;
        }
    }
    acc.apparent += stat_size(st);
    acc.allocated += stat_allocated(st);
    // Files are collected where they are mapped (unix): Windows maps none.
    #[cfg(windows)]
    let _ = opts;
    match (&v.kind, ft) {
        (Kind::Dir, _) => acc.dirs += 1,
        #[cfg(unix)]
        (Kind::File(fd), _) => {
            acc.files += 1;
            visit_file(acc, v.at, st, fd, opts);
        }
        (_, ft) if is_link(ft) => acc.symlinks += 1,
        (_, FileType::RegularFile) => {
            acc.files += 1;
            acc.unmapped_files += 1;
            acc.unmapped_allocated += stat_allocated(st);
        }
        _ => acc.other += 1,
    }
}

/// Whether `ft` counts as a symlink: on Windows a junction too (a link to a directory that
/// is never followed either); any other reparse point counts as other.
fn is_link(ft: FileType) -> bool {
    #[cfg(unix)]
    return ft == FileType::Symlink;
    #[cfg(windows)]
    return ft.is_symlink() || ft.is_junction();
}

/// Appends all extents of the open regular file `fd` (with stat `st`) to `out`, as
/// `fiemap_into(fd, true, out)` would, usually in one cheaper call: it first asks for the
/// extents up to the end of file only, so that the filesystem does not map the hole after it.
/// Only when those cover fewer bytes than the file has blocks allocated (`st_blocks`) can there
/// be more (preallocated past the end of file, or blocks that are metadata); then it asks for
/// the rest. FIEMAP never reports more extent bytes than a file has allocated, so stopping
/// when they reach `st_blocks` misses nothing.
#[cfg(unix)]
fn map_file(fd: &OwnedFd, st: &Stat, out: &mut Vec<Extent>) -> std::io::Result<()> {
    let size = st.st_size as u64;
    let allocated = st.st_blocks as u64 * 512;
    let len0 = out.len();
    if size == 0 {
        // FIEMAP refuses an empty range (EINVAL): an empty file with blocks allocated (kept
        // by `fallocate --keep-size`) is mapped whole.
        return fiemap_range_into(fd, true, 0, u64::MAX, out).inspect_err(|_| out.truncate(len0));
    }
    fiemap_range_into(fd, true, 0, size, out)?;
    let got = &out[len0..];
    if got.iter().map(|e| e.length).sum::<u64>() >= allocated {
        return Ok(());
    }
    let from = got
        .last()
        .map_or(size, |e| size.max(e.logical.saturating_add(e.length)));
    // Flushed already by the first call.
    if let Err(e) = fiemap_range_into(fd, false, from, u64::MAX - from, out) {
        out.truncate(len0);
        return Err(e);
    }
    Ok(())
}

#[cfg(unix)]
fn visit_file(acc: &mut Acc, at: At<'_>, st: &Stat, fd: &OwnedFd, opts: &DuOptions) {
    let dev = cowtree_fs::sys::stat_dev(st);
    acc.fs_types.entry(dev).or_insert_with(|| {
        cowtree_fs::fstype::fs_type(fd)
            .map(|t| t.name())
            .unwrap_or("unknown")
    });
    let size = st.st_size as u64;
    let collect = opts.collect_min_size.is_some_and(|min| size >= min);
    // An empty file has no extents: nothing to ask, and nothing to say about FIEMAP.
    if st.st_blocks == 0 && size == 0 {
        if collect {
            acc.collected.push(FileInfo {
                path: at.path(),
                dev,
                ino: st.st_ino,
                size,
                layout: None,
                extents: Vec::new(),
            });
        }
        return;
    }
    let mut extents = std::mem::take(&mut acc.extents);
    extents.clear();
    let layout = match map_file(fd, st, &mut extents) {
        Ok(()) => {
            acc.mapped_files += 1;
            let set = acc.sets.entry(dev).or_default();
            for e in &extents {
                if e.is_shared() {
                    acc.shared += e.length;
                }
                if is_unaddressed(e) {
                    acc.unaddressed += e.length;
                } else {
                    set.insert(e.physical, e.length);
                }
            }
            if opts.collect_min_size.is_some() && !collect {
                let rest = acc.rest_sets.entry(dev).or_default();
                for e in &extents {
                    if is_unaddressed(e) {
                        acc.rest_unaddressed += e.length;
                    } else {
                        rest.insert(e.physical, e.length);
                    }
                }
            }
            // Only dedupe uses the layout: du alone does not hash.
            if collect { layout_of(&extents) } else { None }
        }
        Err(e) if e.kind() == std::io::ErrorKind::Unsupported => {
            acc.unmapped_files += 1;
            acc.unmapped_allocated += st.st_blocks as u64 * 512;
            acc.fiemap_failed_dev.insert(dev);
            if acc.unmapped_reason.is_none() {
                acc.unmapped_reason = Some(match cowtree_fs::sys::Unavailable::find(&e) {
                    Some(unavailable) => unavailable.to_string(),
                    None => format!(
                        "FIEMAP is not supported on {} ({})",
                        acc.fs_types.get(&dev).copied().unwrap_or("unknown"),
                        at.path().display()
                    ),
                });
            }
            None
        }
        Err(e) => {
            acc.unmapped_files += 1;
            acc.unmapped_allocated += st.st_blocks as u64 * 512;
            acc.error_count += 1;
            if acc.errors.len() < 100 {
                acc.errors
                    .push(format!("fiemap {}: {e}", at.path().display()));
            }
            None
        }
    };
    if collect {
        acc.collected.push(FileInfo {
            path: at.path(),
            dev,
            ino: st.st_ino,
            size,
            layout,
            extents: extents.clone(),
        });
    }
    acc.extents = extents;
}
