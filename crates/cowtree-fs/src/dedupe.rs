//! FIDEDUPERANGE: share data between files that already hold the same bytes.
//!
//! Unlike a clone, deduplication never changes what any file reads: the kernel locks the
//! source and each destination, compares the bytes of the ranges, and only when they are equal
//! points the destination's range at the source's blocks. A destination whose bytes differ
//! (for example because it was written after the caller hashed it) is reported as
//! [`RangeStatus::Differs`] and left alone. Content, inode, mode and mtime stay as they were.
//!
//! Kernels cap the length one call handles (16 MiB on btrfs and XFS) and may dedupe fewer bytes
//! than asked; [`dedupe_file`] loops over a whole file and reports per destination.
//!
//! Permission: the destination fd may be read-only when the caller owns the file, may write
//! it, or has `CAP_SYS_ADMIN` (Linux 4.19+); older kernels want it open for writing. The
//! kernel then reports the destination as failed with `EINVAL` or `EPERM`; callers may reopen
//! it for writing and retry (opening for writing changes nothing by itself).

use std::io;
use std::os::fd::BorrowedFd;

/// How many bytes one call asks for; kernels cap a call at about this (btrfs: 16 MiB).
pub const CHUNK: u64 = 16 << 20;

/// Destinations per call. The kernel accepts a request up to a page (127 destinations);
/// cowtree stays well below.
pub const MAX_DESTS: usize = 32;

/// `FILE_DEDUPE_RANGE_SAME`: the bytes were equal and the range is now shared.
#[cfg(target_os = "linux")]
const SAME: i32 = 0;
/// `FILE_DEDUPE_RANGE_DIFFERS`: the bytes differ; nothing was changed.
#[cfg(target_os = "linux")]
const DIFFERS: i32 = 1;

/// What happened to one destination range in one call.
#[derive(Debug)]
pub enum RangeStatus {
    /// The bytes were equal; `bytes_deduped` of them now share the source's blocks.
    Same,
    /// The bytes differ; this destination was not changed.
    Differs,
    /// The kernel refused this destination (for example `EXDEV`, `EPERM`, `EINVAL`).
    Error(io::Error),
}

/// The result for one destination of [`dedupe_range`].
#[derive(Debug)]
pub struct RangeResult {
    /// Bytes the kernel deduplicated (may be less than asked; then call again from there).
    pub bytes_deduped: u64,
    /// The status of this destination.
    pub status: RangeStatus,
}

/// How a whole-file deduplication ended for one destination.
#[derive(Debug)]
pub enum FileOutcome {
    /// Every byte of the destination now shares the source's blocks.
    Deduped,
    /// The bytes differ from offset `at` on; earlier ranges (if any) were deduplicated, which
    /// is harmless because they were equal.
    Differs {
        /// The file offset of the first range that differed.
        at: u64,
    },
    /// The kernel refused this destination at offset `at`.
    Failed {
        /// The file offset of the refused range.
        at: u64,
        /// The error.
        error: io::Error,
    },
}

/// The result for one destination of [`dedupe_file`].
#[derive(Debug)]
pub struct FileResult {
    /// Bytes deduplicated in total.
    pub bytes_deduped: u64,
    /// How it ended.
    pub outcome: FileOutcome,
}

#[cfg(target_os = "linux")]
mod linux {
    use super::*;
    use std::os::fd::AsRawFd;

    const FIDEDUPERANGE: rustix::ioctl::Opcode = 0xC018_9436;

    #[repr(C)]
    #[derive(Clone, Copy, Default)]
    struct Info {
        dest_fd: i64,
        dest_offset: u64,
        bytes_deduped: u64,
        status: i32,
        reserved: u32,
    }

    #[repr(C)]
    struct Request {
        src_offset: u64,
        src_length: u64,
        dest_count: u16,
        reserved1: u16,
        reserved2: u32,
        info: [Info; MAX_DESTS],
    }

    /// One FIDEDUPERANGE call: `len` bytes of `src` from `src_offset` against each
    /// `(fd, offset)` in `dests` (at most [`MAX_DESTS`]).
    ///
    /// The outer error is the call itself failing, for every destination alike: `EOPNOTSUPP`
    /// or `ENOTTY` (the filesystem cannot share data), `EINVAL` (bad range, or `src` is not a
    /// regular file), `EBADF` (`src` is not open for reading). Per-destination refusals come
    /// back inside the results.
    pub fn dedupe_range(
        src: BorrowedFd<'_>,
        src_offset: u64,
        len: u64,
        dests: &[(BorrowedFd<'_>, u64)],
    ) -> io::Result<Vec<RangeResult>> {
        if dests.len() > MAX_DESTS {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "FIDEDUPERANGE: {} destinations in one call (at most {MAX_DESTS})",
                    dests.len()
                ),
            ));
        }
        let mut req = Request {
            src_offset,
            src_length: len,
            dest_count: dests.len() as u16,
            reserved1: 0,
            reserved2: 0,
            info: [Info::default(); MAX_DESTS],
        };
        for (info, (fd, off)) in req.info.iter_mut().zip(dests) {
            info.dest_fd = i64::from(fd.as_raw_fd());
            info.dest_offset = *off;
        }
        // SAFETY: FIDEDUPERANGE reads a `struct file_dedupe_range` followed by `dest_count`
        // `struct file_dedupe_range_info`s and writes back their `bytes_deduped` and `status`.
        // `Request` has exactly that C layout (24-byte header, 32-byte entries) with room for
        // MAX_DESTS entries, `dest_count` is at most MAX_DESTS, and `req` outlives the call.
        // The destination fds are borrowed for the duration of the call, so they stay open.
        unsafe {
            let ctl = rustix::ioctl::Updater::<FIDEDUPERANGE, Request>::new(&mut req);
            rustix::ioctl::ioctl(src, ctl)?;
        }
        Ok(req.info[..dests.len()]
            .iter()
            .map(|info| RangeResult {
                bytes_deduped: info.bytes_deduped,
                status: match info.status {
                    SAME => RangeStatus::Same,
                    DIFFERS => RangeStatus::Differs,
                    s if s < 0 => RangeStatus::Error(io::Error::from_raw_os_error(-s)),
                    s => RangeStatus::Error(io::Error::other(format!(
                        "FIDEDUPERANGE: unknown status {s}"
                    ))),
                },
            })
            .collect())
    }

    /// Deduplicates the first `len` bytes of `src` into each of `dests` (same offsets), in
    /// [`CHUNK`]-sized calls, dropping a destination from later calls once it differs or
    /// fails. `len` is normally the common size of all the files.
    ///
    /// The outer error is a call failing as a whole (see [`dedupe_range`]); destinations
    /// finished before that keep their deduplicated ranges, which is harmless.
    pub fn dedupe_file(
        src: BorrowedFd<'_>,
        len: u64,
        dests: &[BorrowedFd<'_>],
    ) -> io::Result<Vec<FileResult>> {
        let mut results: Vec<FileResult> = dests
            .iter()
            .map(|_| FileResult {
                bytes_deduped: 0,
                outcome: FileOutcome::Deduped,
            })
            .collect();
        for (batch_fds, batch_res) in dests.chunks(MAX_DESTS).zip(results.chunks_mut(MAX_DESTS)) {
            // Each destination advances on its own: a short answer for one does not hold the
            // others back.
            let mut pos = vec![0u64; batch_fds.len()];
            let mut active: Vec<usize> = (0..batch_fds.len()).collect();
            while !active.is_empty() {
                // Destinations at the same offset go in one call; they normally all are.
                let off = active.iter().map(|&i| pos[i]).min().unwrap_or(len);
                let now: Vec<usize> = active.iter().copied().filter(|&i| pos[i] == off).collect();
                let want = (len - off).min(CHUNK);
                let args: Vec<(BorrowedFd<'_>, u64)> =
                    now.iter().map(|&i| (batch_fds[i], off)).collect();
                let answers = dedupe_range(src, off, want, &args)?;
                for (&i, answer) in now.iter().zip(answers) {
                    let res = &mut batch_res[i];
                    res.bytes_deduped += answer.bytes_deduped;
                    match answer.status {
                        RangeStatus::Same if answer.bytes_deduped > 0 => {
                            pos[i] = off + answer.bytes_deduped;
                        }
                        RangeStatus::Same => {
                            res.outcome = FileOutcome::Failed {
                                at: off,
                                error: io::Error::other(
                                    "FIDEDUPERANGE reported equal bytes but deduplicated none",
                                ),
                            };
                            pos[i] = len;
                        }
                        RangeStatus::Differs => {
                            res.outcome = FileOutcome::Differs { at: off };
                            pos[i] = len;
                        }
                        RangeStatus::Error(error) => {
                            res.outcome = FileOutcome::Failed { at: off, error };
                            pos[i] = len;
                        }
                    }
                }
                active.retain(|&i| pos[i] < len);
            }
        }
        Ok(results)
    }
}

#[cfg(target_os = "linux")]
pub use linux::{dedupe_file, dedupe_range};

/// The name [`crate::sys::Unavailable`] gives deduplication where the platform has none.
pub const FEATURE: &str = "FIDEDUPERANGE deduplication";

/// Whether this platform has FIDEDUPERANGE: where it does not (macOS), [`dedupe_range`] and
/// [`dedupe_file`] fail with [`crate::sys::Unavailable`].
pub const AVAILABLE: bool = cfg!(target_os = "linux");

/// Platforms without FIDEDUPERANGE (macOS): every call fails with
/// [`Unavailable`](crate::sys::Unavailable), kind [`io::ErrorKind::Unsupported`].
#[cfg(not(target_os = "linux"))]
mod unavailable {
    use super::*;

    /// See the Linux version: unavailable here.
    pub fn dedupe_range(
        _src: BorrowedFd<'_>,
        _src_offset: u64,
        _len: u64,
        _dests: &[(BorrowedFd<'_>, u64)],
    ) -> io::Result<Vec<RangeResult>> {
        Err(crate::sys::Unavailable::error(FEATURE))
    }

    /// See the Linux version: unavailable here.
    pub fn dedupe_file(
        _src: BorrowedFd<'_>,
        _len: u64,
        _dests: &[BorrowedFd<'_>],
    ) -> io::Result<Vec<FileResult>> {
        Err(crate::sys::Unavailable::error(FEATURE))
    }
}

#[cfg(not(target_os = "linux"))]
pub use unavailable::{dedupe_file, dedupe_range};

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use cowtree_testutil::{Fs, pattern, scratch};
    use std::fs::File;
    use std::os::fd::AsFd;

    fn same_file_pair(dir: &std::path::Path, len: usize) -> (File, File) {
        let data = pattern(len, 7);
        std::fs::write(dir.join("a"), &data).unwrap();
        std::fs::write(dir.join("b"), &data).unwrap();
        (
            File::open(dir.join("a")).unwrap(),
            File::open(dir.join("b")).unwrap(),
        )
    }

    #[test]
    fn dedupe_file_shares_equal_files_in_chunks_and_keeps_bytes_and_mtime() {
        for fs in Fs::COW {
            let Some(dir) = scratch(fs) else { continue };
            // Larger than one CHUNK, and not block-aligned: the tail is the EOF block.
            let len = (CHUNK + CHUNK / 2 + 123) as usize;
            let (a, b) = same_file_pair(dir.path(), len);
            let before = std::fs::metadata(dir.path().join("b")).unwrap();
            let res = dedupe_file(a.as_fd(), len as u64, &[b.as_fd()]).unwrap();
            assert!(
                matches!(res[0].outcome, FileOutcome::Deduped),
                "{fs:?}: {:?}",
                res[0]
            );
            assert_eq!(res[0].bytes_deduped, len as u64, "{fs:?}");
            let sum = crate::extents::extent_summary(&dir.path().join("b")).unwrap();
            assert!(sum.fully_shared(), "{fs:?}: {sum:?}");
            let after = std::fs::metadata(dir.path().join("b")).unwrap();
            use std::os::unix::fs::MetadataExt;
            assert_eq!(before.mtime(), after.mtime());
            assert_eq!(before.mtime_nsec(), after.mtime_nsec());
            assert_eq!(before.ino(), after.ino());
            assert_eq!(
                std::fs::read(dir.path().join("b")).unwrap(),
                pattern(len, 7)
            );
        }
    }

    #[test]
    fn dedupe_range_reports_differs_and_leaves_the_destination_alone() {
        for fs in Fs::COW {
            let Some(dir) = scratch(fs) else { continue };
            let len = 64 * 1024;
            let (a, _) = same_file_pair(dir.path(), len);
            let mut other = pattern(len, 7);
            other[len - 1] ^= 0xff;
            std::fs::write(dir.path().join("b"), &other).unwrap();
            let b = File::open(dir.path().join("b")).unwrap();
            let res = dedupe_file(a.as_fd(), len as u64, &[b.as_fd()]).unwrap();
            assert!(
                matches!(res[0].outcome, FileOutcome::Differs { .. }),
                "{fs:?}: {:?}",
                res[0]
            );
            assert_eq!(std::fs::read(dir.path().join("b")).unwrap(), other);
            let sum = crate::extents::extent_summary(&dir.path().join("b")).unwrap();
            assert_eq!(sum.shared_extents, 0, "{fs:?}: {sum:?}");
        }
    }

    #[test]
    fn dedupe_range_on_a_filesystem_without_sharing_is_an_error() {
        for fs in Fs::NO_COW {
            let Some(dir) = scratch(fs) else { continue };
            let (a, b) = same_file_pair(dir.path(), 8192);
            let err = dedupe_range(a.as_fd(), 0, 8192, &[(b.as_fd(), 0)]).unwrap_err();
            let errno = err.raw_os_error();
            assert!(
                matches!(
                    errno,
                    Some(libc_errno::EOPNOTSUPP | libc_errno::ENOTTY | libc_errno::EINVAL)
                ),
                "{fs:?}: {err}"
            );
        }
    }

    #[test]
    fn dedupe_range_refuses_more_destinations_than_one_call_holds() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = same_file_pair(dir.path(), 4096);
        let dests: Vec<_> = (0..=MAX_DESTS).map(|_| (b.as_fd(), 0)).collect();
        let err = dedupe_range(a.as_fd(), 0, 4096, &dests).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }

    mod libc_errno {
        pub const EOPNOTSUPP: i32 = 95;
        pub const ENOTTY: i32 = 25;
        pub const EINVAL: i32 = 22;
    }
}
