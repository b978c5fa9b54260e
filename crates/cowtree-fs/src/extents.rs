//! File extent maps (FIEMAP): where a file's data lives and which extents are shared with other
//! files. Used by tests to prove a clone really shares data, and by `cowtree du`.

use std::io;
use std::os::fd::AsFd;

/// One extent of a file, as FIEMAP reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Extent {
    /// Offset in the file.
    pub logical: u64,
    /// Byte address on the device.
    pub physical: u64,
    /// Length in bytes.
    pub length: u64,
    /// `FIEMAP_EXTENT_*` flags.
    pub flags: u32,
}

/// FIEMAP_EXTENT_LAST: the last extent of the file.
pub const EXTENT_LAST: u32 = 0x1;
/// FIEMAP_EXTENT_UNKNOWN: the location is not known yet.
pub const EXTENT_UNKNOWN: u32 = 0x2;
/// FIEMAP_EXTENT_DELALLOC: delayed allocation, not on disk yet.
pub const EXTENT_DELALLOC: u32 = 0x4;
/// FIEMAP_EXTENT_DATA_INLINE: data stored inside metadata.
pub const EXTENT_DATA_INLINE: u32 = 0x200;
/// FIEMAP_EXTENT_UNWRITTEN: allocated but not written (reads as zeros).
pub const EXTENT_UNWRITTEN: u32 = 0x800;
/// FIEMAP_EXTENT_SHARED: the extent is shared with another file (or snapshot).
pub const EXTENT_SHARED: u32 = 0x2000;

impl Extent {
    /// Whether the filesystem marks this extent as shared.
    pub fn is_shared(&self) -> bool {
        self.flags & EXTENT_SHARED != 0
    }
}

/// A summary of a file's extents.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExtentSummary {
    /// Number of extents.
    pub extents: u64,
    /// Number of shared extents.
    pub shared_extents: u64,
    /// Bytes covered by extents.
    pub bytes: u64,
    /// Bytes covered by shared extents.
    pub shared_bytes: u64,
}

impl ExtentSummary {
    /// True when the file has data and every extent of it is shared.
    pub fn fully_shared(&self) -> bool {
        self.extents > 0 && self.shared_extents == self.extents
    }
}

/// Summarises extents.
pub fn summarize(extents: &[Extent]) -> ExtentSummary {
    let mut s = ExtentSummary::default();
    for e in extents {
        s.extents += 1;
        s.bytes += e.length;
        if e.is_shared() {
            s.shared_extents += 1;
            s.shared_bytes += e.length;
        }
    }
    s
}

#[cfg(target_os = "linux")]
mod linux {
    use super::*;

    const FS_IOC_FIEMAP: rustix::ioctl::Opcode = 0xC020_660B;
    const FIEMAP_FLAG_SYNC: u32 = 0x1;
    const BATCH: usize = 128;

    #[repr(C)]
    #[derive(Clone, Copy, Default)]
    struct RawExtent {
        fe_logical: u64,
        fe_physical: u64,
        fe_length: u64,
        fe_reserved64: [u64; 2],
        fe_flags: u32,
        fe_reserved: [u32; 3],
    }

    #[repr(C)]
    struct Request<const N: usize> {
        fm_start: u64,
        fm_length: u64,
        fm_flags: u32,
        fm_mapped_extents: u32,
        fm_extent_count: u32,
        fm_reserved: u32,
        fm_extents: [RawExtent; N],
    }

    /// Extents asked for by the first call: most files have one or a few, and a small
    /// buffer is cheaper to set up and copy.
    const FIRST_BATCH: usize = 8;

    /// All extents of the open file `fd`, flushing delayed allocations first so that physical
    /// addresses are real. Filesystems without FIEMAP (tmpfs, some FUSE) give an error of kind
    /// [`io::ErrorKind::Unsupported`].
    pub fn fiemap(fd: impl AsFd) -> io::Result<Vec<Extent>> {
        let mut out = Vec::new();
        fiemap_into(fd, true, &mut out)?;
        Ok(out)
    }

    /// Appends the extents of the open file `fd` to `out` (left as it was on error). With
    /// `sync`, delayed allocations are flushed first so that every physical address is real;
    /// without it, data not written back yet comes as extents flagged
    /// [`EXTENT_DELALLOC`](super::EXTENT_DELALLOC) with no address, and the call is cheaper.
    pub fn fiemap_into(fd: impl AsFd, sync: bool, out: &mut Vec<Extent>) -> io::Result<()> {
        fiemap_range_into(fd, sync, 0, u64::MAX, out)
    }

    /// Like [`fiemap_into`], for the extents that overlap the `len` bytes from `start` only.
    /// Cheaper than the whole file when the range ends at the last extent: a filesystem then
    /// need not look past it (XFS otherwise maps the hole after end of file as one more
    /// step). An extent that crosses either end of the range may come trimmed to it (XFS) or
    /// whole (btrfs), so a caller that continues from the end of what it got neither misses
    /// nor repeats bytes.
    pub fn fiemap_range_into(
        fd: impl AsFd,
        sync: bool,
        start: u64,
        len: u64,
        out: &mut Vec<Extent>,
    ) -> io::Result<()> {
        let fd = fd.as_fd();
        let flags = if sync { FIEMAP_FLAG_SYNC } else { 0 };
        let end = start.saturating_add(len);
        let len0 = out.len();
        let (n, more) = match fiemap_call::<FIRST_BATCH>(fd, start, end, flags, out) {
            Ok(r) => r,
            Err(e) => {
                out.truncate(len0);
                return Err(e);
            }
        };
        if !more || n == 0 {
            return Ok(());
        }
        loop {
            let tail = out[out.len() - 1];
            let from = tail.logical.saturating_add(tail.length);
            if from >= end {
                return Ok(());
            }
            match fiemap_call::<BATCH>(fd, from, end, flags, out) {
                Ok((n, more)) if more && n > 0 => {}
                Ok(_) => return Ok(()),
                Err(e) => {
                    out.truncate(len0);
                    return Err(e);
                }
            }
        }
    }

    /// One FIEMAP call for `[start, end)`: appends what it returns; gives how many extents
    /// came and whether there may be more.
    fn fiemap_call<const N: usize>(
        fd: std::os::fd::BorrowedFd<'_>,
        start: u64,
        end: u64,
        flags: u32,
        out: &mut Vec<Extent>,
    ) -> io::Result<(usize, bool)> {
        let mut req = Request::<N> {
            fm_start: start,
            fm_length: end.saturating_sub(start),
            fm_flags: flags,
            fm_mapped_extents: 0,
            fm_extent_count: N as u32,
            fm_reserved: 0,
            fm_extents: [RawExtent::default(); N],
        };
        // SAFETY: FS_IOC_FIEMAP reads and writes a `struct fiemap` followed by
        // `fm_extent_count` `struct fiemap_extent`s; `Request` has exactly that C layout
        // with room for `N` extents, and lives for the whole call.
        unsafe {
            let ctl = rustix::ioctl::Updater::<FS_IOC_FIEMAP, Request<N>>::new(&mut req);
            rustix::ioctl::ioctl(fd, ctl).map_err(|e| match e {
                rustix::io::Errno::OPNOTSUPP | rustix::io::Errno::NOTTY => io::Error::new(
                    io::ErrorKind::Unsupported,
                    "FIEMAP is not supported on this filesystem",
                ),
                e => e.into(),
            })?;
        }
        let n = (req.fm_mapped_extents as usize).min(N);
        let mut last = false;
        for raw in &req.fm_extents[..n] {
            out.push(Extent {
                logical: raw.fe_logical,
                physical: raw.fe_physical,
                length: raw.fe_length,
                flags: raw.fe_flags,
            });
            last |= raw.fe_flags & EXTENT_LAST != 0;
        }
        Ok((n, !last && n == N))
    }

    /// The extent summary of the file at `path` (not following a final symlink).
    pub fn extent_summary(path: &std::path::Path) -> io::Result<ExtentSummary> {
        use rustix::fs::{Mode, OFlags};
        let fd = rustix::fs::open(
            path,
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK,
            Mode::empty(),
        )
        .map_err(|e| crate::error::at_path("open", path, e.into()))?;
        let extents = fiemap(&fd).map_err(|e| crate::error::at_path("fiemap", path, e))?;
        Ok(summarize(&extents))
    }
}

#[cfg(target_os = "linux")]
pub use linux::{extent_summary, fiemap, fiemap_into, fiemap_range_into};

/// Platforms without FIEMAP (macOS): every call fails with
/// [`Unavailable`](crate::sys::Unavailable) ("FIEMAP extent maps"), kind
/// [`io::ErrorKind::Unsupported`], so `cowtree du` reports sharing as unknown.
#[cfg(not(target_os = "linux"))]
mod unavailable {
    use super::*;

    fn error() -> io::Error {
        crate::sys::Unavailable::error(FEATURE)
    }

    /// See the Linux version: unavailable here.
    pub fn fiemap(_fd: impl AsFd) -> io::Result<Vec<Extent>> {
        Err(error())
    }

    /// See the Linux version: unavailable here.
    pub fn fiemap_into(_fd: impl AsFd, _sync: bool, _out: &mut Vec<Extent>) -> io::Result<()> {
        Err(error())
    }

    /// See the Linux version: unavailable here.
    pub fn fiemap_range_into(
        _fd: impl AsFd,
        _sync: bool,
        _start: u64,
        _len: u64,
        _out: &mut Vec<Extent>,
    ) -> io::Result<()> {
        Err(error())
    }

    /// See the Linux version: unavailable here.
    pub fn extent_summary(path: &std::path::Path) -> io::Result<ExtentSummary> {
        Err(crate::error::at_path("fiemap", path, error()))
    }
}

#[cfg(not(target_os = "linux"))]
pub use unavailable::{extent_summary, fiemap, fiemap_into, fiemap_range_into};

/// The name [`crate::sys::Unavailable`] gives extent maps where the platform has none.
pub const FEATURE: &str = "FIEMAP extent maps";

/// Whether this platform has FIEMAP: where it does not (macOS), [`fiemap`] and its siblings
/// fail with [`crate::sys::Unavailable`].
pub const AVAILABLE: bool = cfg!(target_os = "linux");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_counts_shared_bytes_only_for_shared_extents() {
        let e = |len, flags| Extent {
            logical: 0,
            physical: 0,
            length: len,
            flags,
        };
        let s = summarize(&[
            e(4096, EXTENT_SHARED),
            e(8192, 0),
            e(100, EXTENT_SHARED | EXTENT_LAST),
        ]);
        assert_eq!(s.extents, 3);
        assert_eq!(s.shared_extents, 2);
        assert_eq!(s.bytes, 12388);
        assert_eq!(s.shared_bytes, 4196);
        assert!(!s.fully_shared());
        assert!(!summarize(&[]).fully_shared());
    }
}
