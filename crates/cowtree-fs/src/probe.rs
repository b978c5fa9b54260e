//! Capability probes: can this (source directory, destination directory) pair reflink or
//! hardlink? Can this user snapshot and delete btrfs subvolumes here ([`SubvolumeProbe`])?
//!
//! A probe is one raw clone (or link) between two scratch files, with no fallback inside: a probe
//! that quietly copies would report "supported" on filesystems that cannot clone, and every file
//! after it would be copied under a false flag. Results are cached per (source device,
//! destination device), since clone support is a property of the pair; the cache counts the
//! syscalls it really made so that tests can see it probes each pair once.

use std::collections::BTreeMap;
use std::io;
use std::os::fd::AsFd;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::classify::{HardlinkRefusal, UnsupportedCause};

/// What a probe found for a pair of directories.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbeReport {
    /// `Ok(())` if a clone from the first to the second directory worked, else why not.
    pub reflink: Result<(), UnsupportedCause>,
    /// `Ok(())` if a hardlink worked, else why not.
    pub hardlink: Result<(), HardlinkRefusal>,
    /// Whether both directories are on the same device.
    pub same_device: bool,
}

/// A per-process cache of reflink probe results keyed by (source device, destination device).
/// A second cache, [`ProbeCache::subvolumes`], keeps what this user may do with btrfs
/// subvolumes, per (filesystem UUID, effective uid).
#[derive(Debug, Default)]
pub struct ProbeCache {
    results: Mutex<BTreeMap<(u64, u64), Result<(), UnsupportedCause>>>,
    subvolumes: Mutex<BTreeMap<([u8; 16], u32), SubvolumeProbe>>,
    syscalls: AtomicU64,
}

static GLOBAL: ProbeCache = ProbeCache {
    results: Mutex::new(BTreeMap::new()),
    subvolumes: Mutex::new(BTreeMap::new()),
    syscalls: AtomicU64::new(0),
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

    /// How many probes (clone syscalls, subvolume probes) this cache has made.
    pub fn syscalls(&self) -> u64 {
        self.syscalls.load(Ordering::Relaxed)
    }

    /// Whether files in `src_dir` can be cloned into `dst_dir`, probing at most once per device
    /// pair. Both must be writable directories (the probe makes and removes a scratch file in
    /// each).
    pub fn reflink(
        &self,
        src_dir: &Path,
        dst_dir: &Path,
    ) -> io::Result<Result<(), UnsupportedCause>> {
        let key = (dev_of(src_dir)?, dev_of(dst_dir)?);
        if let Some(found) = self
            .results
            .lock()
            .map_err(|_| io::Error::other("probe cache poisoned"))?
            .get(&key)
        {
            return Ok(*found);
        }
        self.syscalls.fetch_add(1, Ordering::Relaxed);
        let found = probe_reflink_raw(src_dir, dst_dir)?;
        self.results
            .lock()
            .map_err(|_| io::Error::other("probe cache poisoned"))?
            .insert(key, found);
        Ok(found)
    }
}

impl ProbeCache {
    /// What this user may do with btrfs subvolumes on the filesystem of `dir` (a writable
    /// directory there: the probe makes and removes scratch subvolumes in it), probing at most
    /// once per (filesystem, effective uid). `Ok(None)` when `dir` is not on btrfs.
    pub fn subvolumes(&self, dir: &Path) -> io::Result<Option<SubvolumeProbe>> {
        use crate::subvolume::{At, filesystem_id, is_btrfs};
        let d = crate::dir::Dir::open(dir)?;
        let at = At::new(&d, dir);
        if !is_btrfs(at)? {
            return Ok(None);
        }
        let key = (filesystem_id(at)?, rustix::process::geteuid().as_raw());
        let poisoned = || io::Error::other("probe cache poisoned");
        if let Some(found) = self.subvolumes.lock().map_err(|_| poisoned())?.get(&key) {
            return Ok(Some(*found));
        }
        self.syscalls.fetch_add(1, Ordering::Relaxed);
        let found = probe_subvolumes_raw(at)?;
        self.subvolumes
            .lock()
            .map_err(|_| poisoned())?
            .insert(key, found);
        Ok(Some(found))
    }
}

/// What a user may do with btrfs subvolumes on one filesystem, found by doing it: a scratch
/// subvolume is created, snapshotted and deleted, never guessed from the uid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubvolumeProbe {
    /// `Ok(())` when this user could create a subvolume and take a writable snapshot of it
    /// (so can snapshot the subvolumes it owns here), else the cause.
    pub snapshot: Result<(), crate::subvolume::Cause>,
    /// `Ok(())` when the kernel deleted a subvolume in one ioctl (O(1): root or
    /// `CAP_SYS_ADMIN`, or the `user_subvol_rm_allowed` mount option), else why not (then
    /// [`crate::subvolume::delete`] clears `ro` and removes the tree, O(entries)).
    pub fast_delete: Result<(), crate::subvolume::Cause>,
}

/// The probe behind [`ProbeCache::subvolumes`], uncached, in the btrfs directory `dir`:
/// creates `.cowtree-probe-subvol-<pid>-<n>`, snapshots it to `.cowtree-probe-snap-<pid>-<n>`,
/// deletes the snapshot with the ioctl (else with `rmdir`, which deletes an empty subvolume),
/// then the scratch subvolume. A cause the probe answers with (EPERM, EACCES, EROFS, ...) is
/// a finding; ENOSPC, EDQUOT and I/O errors are errors.
pub fn probe_subvolumes_raw(dir: crate::subvolume::At<'_>) -> io::Result<SubvolumeProbe> {
    use crate::subvolume::{At, Cause, create, snapshot};
    use std::sync::atomic::AtomicU32;
    static SEQ: AtomicU32 = AtomicU32::new(0);
    let n = SEQ.fetch_add(1, Ordering::Relaxed);
    let pid = std::process::id();
    let scratch = std::ffi::OsString::from(format!(".cowtree-probe-subvol-{pid}-{n}"));
    let snap = std::ffi::OsString::from(format!(".cowtree-probe-snap-{pid}-{n}"));
    let finding = |c: Cause| {
        matches!(
            c,
            Cause::NotPermitted
                | Cause::AccessDenied
                | Cause::ReadOnly
                | Cause::NotBtrfs
                | Cause::Busy
        )
    };
    if let Err(e) = create(dir, &scratch) {
        return if finding(e.cause) {
            Ok(SubvolumeProbe {
                snapshot: Err(e.cause),
                fast_delete: Err(e.cause),
            })
        } else {
            Err(e.into())
        };
    }
    let scratch_path = dir.path.join(&scratch);
    let result = (|| -> io::Result<SubvolumeProbe> {
        let root = dir.dir.open_dir(&scratch)?;
        let snapped = match snapshot(At::new(&root, &scratch_path), dir, &snap, false) {
            Ok(()) => Ok(()),
            Err(e) if finding(e.cause) => Err(e.cause),
            Err(e) => return Err(e.into()),
        };
        drop(root);
        // The O(1) delete is tried on the snapshot, or on the scratch subvolume itself.
        let victim = if snapped.is_ok() { &snap } else { &scratch };
        let fast_delete = match crate::sys::btrfs_subvolume_delete(dir.dir.as_fd(), victim) {
            Ok(()) => Ok(()),
            Err(e) => {
                let cause =
                    crate::subvolume::classify(crate::subvolume::Op::Delete, e.raw_os_error());
                if !finding(cause) {
                    return Err(crate::error::at_path(
                        "probe subvolume delete in",
                        dir.path,
                        e.into(),
                    ));
                }
                // Empty, so `rmdir` deletes it without privilege.
                dir.dir.remove_dir(victim)?;
                Err(cause)
            }
        };
        Ok(SubvolumeProbe {
            snapshot: snapped,
            fast_delete,
        })
    })();
    // The scratch subvolume, unless the delete probe took it.
    if dir.dir.try_stat(&scratch).ok().flatten().is_some() {
        let _ = crate::sys::btrfs_subvolume_delete(dir.dir.as_fd(), &scratch).or_else(|_| {
            dir.dir
                .remove_dir(&scratch)
                .map_err(|_| rustix::io::Errno::IO)
        });
    }
    if dir.dir.try_stat(&snap).ok().flatten().is_some() {
        let _ = crate::sys::btrfs_subvolume_delete(dir.dir.as_fd(), &snap)
            .or_else(|_| dir.dir.remove_dir(&snap).map_err(|_| rustix::io::Errno::IO));
    }
    result
}

fn dev_of(dir: &Path) -> io::Result<u64> {
    rustix::fs::stat(dir)
        .map(|st| crate::sys::stat_dev(&st))
        .map_err(|e| crate::error::at_path("stat", dir, e.into()))
}

/// A scratch file that removes itself.
struct Scratch {
    dir: std::os::fd::OwnedFd,
    name: std::ffi::OsString,
}

impl Scratch {
    fn create(dir_path: &Path, data: &[u8]) -> io::Result<(Scratch, std::os::fd::OwnedFd)> {
        use rustix::fs::{Mode, OFlags, openat};
        use std::sync::atomic::AtomicU32;
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let dir = rustix::fs::open(
            dir_path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| crate::error::at_path("open directory", dir_path, e.into()))?;
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let name = std::ffi::OsString::from(format!(
            ".cowtree-probe-{}-{}-{nanos:x}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        let fd = openat(
            &dir,
            &name,
            OFlags::RDWR | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        )
        .map_err(|e| crate::error::at_path("create probe file in", dir_path, e.into()))?;
        let scratch = Scratch { dir, name };
        let mut off = 0;
        while off < data.len() {
            off += rustix::io::write(&fd, &data[off..])
                .map_err(|e| crate::error::at_path("write probe file in", dir_path, e.into()))?;
        }
        Ok((scratch, fd))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = rustix::fs::unlinkat(&self.dir, &self.name, rustix::fs::AtFlags::empty());
    }
}

/// One raw clone from a scratch file in `src_dir` to one in `dst_dir`, uncached. Errors such as
/// a missing or unwritable directory, or ENOSPC, are errors; only the errno table's
/// "unsupported" rows give `Ok(Err(cause))`.
pub fn probe_reflink_raw(
    src_dir: &Path,
    dst_dir: &Path,
) -> io::Result<Result<(), UnsupportedCause>> {
    use crate::classify::CloneFailure;
    use crate::reflink::clone_fds;
    use crate::sys::WholeClone;
    use std::os::fd::AsFd;
    let (_src, src_fd) = Scratch::create(src_dir, &[0x5a; 4096])?;
    let (dst, dst_fd) = Scratch::create(dst_dir, &[])?;
    let cloned = if crate::sys::CLONE_CREATES_DESTINATION {
        // The clone makes the file itself: free the scratch name for it (the guard still
        // removes it afterwards).
        rustix::fs::unlinkat(&dst.dir, &dst.name, rustix::fs::AtFlags::empty())?;
        match crate::sys::clone_new(src_fd.as_fd(), dst.dir.as_fd(), &dst.name) {
            Ok(WholeClone::Cloned(_)) => Ok(Ok(())),
            Ok(WholeClone::Failed(failure)) => Ok(Err(failure)),
            Ok(WholeClone::ByDescriptor) => clone_fds(&src_fd, &dst_fd),
            Err(e) => Err(e),
        }
    } else {
        clone_fds(&src_fd, &dst_fd)
    };
    match cloned.map_err(|e| crate::error::at_paths("probe clone", src_dir, dst_dir, e))? {
        Ok(()) => Ok(Ok(())),
        Err(CloneFailure::Unsupported(cause)) => Ok(Err(cause)),
        Err(CloneFailure::Vanished) => Err(io::Error::other(format!(
            "probe clone {} -> {}: scratch file vanished during the probe",
            src_dir.display(),
            dst_dir.display()
        ))),
    }
}

/// One raw hardlink from a scratch file in `src_dir` into `dst_dir`, uncached.
pub fn probe_hardlink_raw(
    src_dir: &Path,
    dst_dir: &Path,
) -> io::Result<Result<(), HardlinkRefusal>> {
    use crate::hardlink::{HardlinkOutcome, hardlink_at};
    let (src, _fd) = Scratch::create(src_dir, b"cowtree")?;
    let (dst, _dfd) = Scratch::create(dst_dir, &[])?;
    // Free the destination name for the link; the guard still removes it afterwards.
    rustix::fs::unlinkat(&dst.dir, &dst.name, rustix::fs::AtFlags::empty())?;
    match hardlink_at(&src.dir, &src.name, &dst.dir, &dst.name)
        .map_err(|e| crate::error::at_paths("probe hardlink", src_dir, dst_dir, e))?
    {
        HardlinkOutcome::Linked => Ok(Ok(())),
        HardlinkOutcome::Refused(r) => Ok(Err(r)),
        HardlinkOutcome::SourceVanished => Err(io::Error::other(format!(
            "probe hardlink {} -> {}: scratch file vanished during the probe",
            src_dir.display(),
            dst_dir.display()
        ))),
    }
}

/// Probes both reflink (through `cache`) and hardlink (uncached) between two directories.
pub fn probe(cache: &ProbeCache, src_dir: &Path, dst_dir: &Path) -> io::Result<ProbeReport> {
    let same_device = dev_of(src_dir)? == dev_of(dst_dir)?;
    Ok(ProbeReport {
        reflink: cache.reflink(src_dir, dst_dir)?,
        hardlink: probe_hardlink_raw(src_dir, dst_dir)?,
        same_device,
    })
}
