//! Copying file data between open files: in-kernel `copy_file_range` where it works,
//! read/write otherwise.
//!
//! Note for honest reporting: on XFS and btrfs the kernel may satisfy `copy_file_range` by
//! sharing extents. cowtree only copies where a clone was not possible or was not asked for,
//! and reports the bytes as copied.

use std::io;
use std::os::fd::AsFd;

/// Chunks stay well under 2 GiB: some glibc and kernel versions mishandled larger ranges.
const MAX_CHUNK: usize = 1 << 30;
const BUF: usize = 256 * 1024;

/// Copies everything from the current offset of `src` to end of file into `dst`, returning the
/// number of bytes written. Errors (ENOSPC, EIO, ...) are returned as they are.
#[cfg(target_os = "linux")]
pub fn copy_fd(src: impl AsFd, dst: impl AsFd) -> io::Result<u64> {
    use rustix::io::Errno;
    let (src, dst) = (src.as_fd(), dst.as_fd());
    let mut total = 0u64;
    loop {
        match rustix::fs::copy_file_range(src, None, dst, None, MAX_CHUNK) {
            Ok(0) => return Ok(total),
            Ok(n) => total += n as u64,
            // Not available for this pair (old kernel, special files, some filesystems):
            // carry on with read/write from where the kernel stopped.
            Err(Errno::XDEV | Errno::NOSYS | Errno::OPNOTSUPP | Errno::INVAL | Errno::PERM)
                if total == 0 =>
            {
                return copy_rw(src, dst).map(|n| total + n);
            }
            Err(Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

#[cfg(target_os = "linux")]
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
