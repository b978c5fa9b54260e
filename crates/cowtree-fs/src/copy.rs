//! Copying file data between open files, two ways:
//!
//! - [`copy_fd_unshared`]: the destination gets data blocks of its own, never shared with the
//!   source: what a caller asking for a copy wants (a later `dedupe` or a write to one file
//!   must find two independent files). `sendfile` on Linux (an in-kernel copy through the page
//!   cache), read/write where that is refused and on macOS.
//! - [`copy_fd`] / [`copy_fd_remembering`]: in-kernel `copy_file_range` where it works,
//!   read/write otherwise. On XFS and btrfs the kernel may satisfy `copy_file_range` by
//!   sharing extents (a reflink inside the kernel: `filefrag` shows them shared), so this is
//!   for a copy made because a clone was impossible (another filesystem, one that cannot
//!   reflink), where nothing can be shared anyway.

use std::io;
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicU8, Ordering};

/// Chunks stay well under 2 GiB: some glibc and kernel versions mishandled larger ranges.
const MAX_CHUNK: usize = 1 << 30;
const BUF: usize = 256 * 1024;

/// Copies everything from the current offset of `src` to end of file into `dst`, returning the
/// number of bytes written. Errors (ENOSPC, EIO, ...) are returned as they are.
pub fn copy_fd(src: impl AsFd, dst: impl AsFd) -> io::Result<u64> {
    copy_fd_remembering(src, dst, &CopyRange::new())
}

/// Whether `copy_file_range` works for one (source filesystem, destination filesystem) pair.
/// A caller copying many files between the same two filesystems keeps one and passes it to
/// [`copy_fd_remembering`]: after the first file for which the kernel refuses the call for the
/// pair (EXDEV, ENOSYS, EOPNOTSUPP), later files go straight to read/write instead of failing
/// the call again for every file.
#[derive(Debug, Default)]
pub struct CopyRange(AtomicU8);

const RANGE_UNKNOWN: u8 = 0;
const RANGE_WORKS: u8 = 1;
const RANGE_REFUSED: u8 = 2;

impl CopyRange {
    /// Not tried yet.
    pub fn new() -> CopyRange {
        CopyRange(AtomicU8::new(RANGE_UNKNOWN))
    }

    /// True once the kernel refused `copy_file_range` for the pair.
    pub fn refused(&self) -> bool {
        self.0.load(Ordering::Relaxed) == RANGE_REFUSED
    }

    /// True once `copy_file_range` has copied data for the pair.
    pub fn works(&self) -> bool {
        self.0.load(Ordering::Relaxed) == RANGE_WORKS
    }
}

/// [`copy_fd`], skipping `copy_file_range` when `memo` says the pair refuses it, and telling
/// `memo` what the kernel said. Only pair-wide refusals are remembered: EINVAL and EPERM may
/// be about one file (e.g. a file opened for append, an immutable file) and are retried for
/// the next.
pub fn copy_fd_remembering(src: impl AsFd, dst: impl AsFd, memo: &CopyRange) -> io::Result<u64> {
    use rustix::io::Errno;
    let (src, dst) = (src.as_fd(), dst.as_fd());
    if memo.refused() {
        return copy_rw(src, dst);
    }
    let mut total = 0u64;
    loop {
        match crate::sys::copy_file_range(src, dst, MAX_CHUNK) {
            Ok(0) => return Ok(total),
            Ok(n) => {
                if total == 0 && !memo.works() {
                    memo.0.store(RANGE_WORKS, Ordering::Relaxed);
                }
                total += n as u64;
            }
            // Not available for this pair (old kernel, another filesystem type, some
            // filesystems): carry on with read/write from where the kernel stopped.
            Err(
                e @ (Errno::XDEV | Errno::NOSYS | Errno::OPNOTSUPP | Errno::INVAL | Errno::PERM),
            ) if total == 0 => {
                if matches!(e, Errno::XDEV | Errno::NOSYS | Errno::OPNOTSUPP) {
                    memo.0.store(RANGE_REFUSED, Ordering::Relaxed);
                }
                return copy_rw(src, dst).map(|n| total + n);
            }
            Err(Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// Copies everything from the current offset of `src` to end of file into `dst` as new data
/// (see the module doc): `sendfile` in chunks, or read/write when the kernel refuses it for
/// this pair (EINVAL, ENOSYS, EOPNOTSUPP before anything was copied) and on macOS. Returns the
/// number of bytes written; other errors (ENOSPC, EIO, ...) are returned as they are.
pub fn copy_fd_unshared(src: impl AsFd, dst: impl AsFd) -> io::Result<u64> {
    use rustix::io::Errno;
    let (src, dst) = (src.as_fd(), dst.as_fd());
    let mut total = 0u64;
    loop {
        match crate::sys::sendfile(src, dst, MAX_CHUNK) {
            Ok(0) => return Ok(total),
            Ok(n) => total += n as u64,
            Err(Errno::INVAL | Errno::NOSYS | Errno::OPNOTSUPP) if total == 0 => {
                return copy_rw(src, dst);
            }
            Err(Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

fn copy_rw(src: std::os::fd::BorrowedFd<'_>, dst: std::os::fd::BorrowedFd<'_>) -> io::Result<u64> {
    use rustix::io::{Errno, read, write};
    let mut buf = vec![0u8; BUF];
    let mut total = 0u64;
    loop {
        let n = match read(src, &mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        };
        let mut off = 0;
        while off < n {
            match write(dst, &buf[off..n]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(w) => off += w,
                Err(Errno::INTR) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        total += n as u64;
    }
}
