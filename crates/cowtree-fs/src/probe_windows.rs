//! Capability probes on Windows: which filesystem a directory is on, its cluster size, and
//! whether a real block clone works from one directory into another.
//!
//! As on unix, the clone probe is one raw clone ([`crate::reflink::try_reflink`], no fallback)
//! between scratch files: a volume's `FILE_SUPPORTS_BLOCK_REFCOUNTING` flag is what it
//! claims, the clone is what it does. Results are cached per (source volume serial,
//! destination volume serial), since block cloning is a property of the volume pair.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use crate::classify::UnsupportedCause;
use crate::reflink::{ReflinkOutcome, try_reflink};
use crate::sys::{cluster_size_of, create_new_no_follow, delete_by_handle, open_no_follow};

/// What one volume is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeReport {
    /// The volume serial number (the cache key).
    pub serial: u32,
    /// The filesystem's name (`NTFS`, `ReFS`, ...).
    pub filesystem: String,
    /// The cluster size in bytes, the unit block cloning works in.
    pub cluster_size: u64,
    /// Whether the volume reports block cloning (`FILE_SUPPORTS_BLOCK_REFCOUNTING`).
    pub reports_block_cloning: bool,
}

/// What a probe found for a pair of directories.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeReport {
    /// The source directory's volume.
    pub src: VolumeReport,
    /// The destination directory's volume.
    pub dst: VolumeReport,
    /// `Ok(())` if a block clone from the source to the destination directory worked, else
    /// why not.
    pub reflink: Result<(), UnsupportedCause>,
}

impl ProbeReport {
    /// Whether both directories are on the same volume.
    pub fn same_volume(&self) -> bool {
        self.src.serial == self.dst.serial
    }
}

/// A per-process cache of probe results keyed by (source volume serial, destination volume
/// serial).
#[derive(Debug, Default)]
pub struct ProbeCache {
    results: Mutex<BTreeMap<(u32, u32), ProbeReport>>,
    probes: AtomicU64,
}

static GLOBAL: ProbeCache = ProbeCache {
    results: Mutex::new(BTreeMap::new()),
    probes: AtomicU64::new(0),
};

impl ProbeCache {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// The process-wide cache.
    pub fn global() -> &'static ProbeCache {
        &GLOBAL
    }

    /// How many clone probes this cache has made.
    pub fn syscalls(&self) -> u64 {
        self.probes.load(Ordering::Relaxed)
    }

    /// Whether files in `src_dir` can be block-cloned into `dst_dir`, probing at most once
    /// per volume pair. Both must be writable directories (the probe makes and removes a
    /// scratch file in each).
    pub fn reflink(
        &self,
        src_dir: &Path,
        dst_dir: &Path,
    ) -> io::Result<Result<(), UnsupportedCause>> {
        Ok(self.probe(src_dir, dst_dir)?.reflink)
    }

    /// The volumes of `src_dir` and `dst_dir` and whether a block clone works between them,
    /// probing at most once per volume pair.
    pub fn probe(&self, src_dir: &Path, dst_dir: &Path) -> io::Result<ProbeReport> {
        let poisoned = || io::Error::other("probe cache poisoned");
        let src = volume(src_dir)?;
        let dst = volume(dst_dir)?;
        let key = (src.serial, dst.serial);
        if let Some(found) = self.results.lock().map_err(|_| poisoned())?.get(&key) {
            return Ok(found.clone());
        }
        self.probes.fetch_add(1, Ordering::Relaxed);
        let report = ProbeReport {
            reflink: probe_reflink_raw(src_dir, dst_dir)?,
            src,
            dst,
        };
        self.results
            .lock()
            .map_err(|_| poisoned())?
            .insert(key, report.clone());
        Ok(report)
    }
}

/// What the volume of the directory `dir` is (not cached).
pub fn volume(dir: &Path) -> io::Result<VolumeReport> {
    let at = |e| crate::error::at_path("volume of", dir, e);
    let handle = open_no_follow(dir).map_err(at)?;
    let v = crate::sys::volume_of(&handle).map_err(at)?;
    Ok(VolumeReport {
        serial: v.serial,
        filesystem: v.filesystem.clone(),
        cluster_size: cluster_size_of(dir).map_err(at)?,
        reports_block_cloning: v.reports_block_cloning(),
    })
}

/// The probe behind [`ProbeCache::reflink`], uncached: writes a small scratch file
/// `.cowtree-probe-<pid>-<n>` in `src_dir`, block-clones it to `.cowtree-probe-<pid>-<n>.clone`
/// in `dst_dir` with no fallback, and removes both.
pub fn probe_reflink_raw(
    src_dir: &Path,
    dst_dir: &Path,
) -> io::Result<Result<(), UnsupportedCause>> {
    static SEQ: AtomicU32 = AtomicU32::new(0);
    let n = SEQ.fetch_add(1, Ordering::Relaxed);
    let name = format!(".cowtree-probe-{}-{n}", std::process::id());
    let src = src_dir.join(&name);
    let dst = dst_dir.join(format!("{name}.clone"));
    let at = |e| crate::error::at_path("probe", &src, e);
    let mut scratch = create_new_no_follow(&src).map_err(at)?;
    let result = (|| {
        scratch.write_all(b"cowtree block clone probe\n")?;
        try_reflink(&src, &dst)
    })();
    let removed = delete_by_handle(&scratch);
    drop(scratch);
    let found = match result.map_err(at)? {
        ReflinkOutcome::Cloned => {
            std::fs::remove_file(&dst).map_err(|e| crate::error::at_path("remove", &dst, e))?;
            Ok(())
        }
        ReflinkOutcome::Unsupported(cause) => Err(cause),
        ReflinkOutcome::SourceVanished => {
            return Err(at(io::Error::other("the probe's scratch file vanished")));
        }
    };
    removed.map_err(|e| crate::error::at_path("remove", &src, e))?;
    Ok(found)
}
