//! The errno policy for clone and hardlink failures, as pure functions.
//!
//! This is the table in docs/architecture.md ("errno table for Linux FICLONE") in code form. It
//! is kept apart from the syscalls so that every row has a unit test.
//!
//! Windows has its own table for the Win32 errors of block cloning
//! ([`classify_win32_clone_error`]), mapped onto the same [`CloneErrno`] and
//! [`UnsupportedCause`] so that callers act on both platforms alike. It is plain numbers, built
//! and tested on every platform.

/// Why a clone could not share data, and how far that finding reaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UnsupportedCause {
    /// Source and destination are on different filesystems (EXDEV). Holds for the device pair.
    CrossDevice,
    /// The filesystem (or kernel) has no clone support (EOPNOTSUPP, ENOSYS, ENOTTY, EINVAL).
    /// Holds for the device pair.
    Filesystem,
    /// The clone call itself was refused for this file (EPERM: immutable or append-only file,
    /// seccomp filter). Holds for this file only; report it.
    NotPermitted,
    /// The filesystem asked to try again (EAGAIN, e.g. ZFS with blocks not yet written out) and
    /// the one retry failed the same way. Holds for this file only.
    Busy,
}

/// A clone that did not fail outright but made nothing: what callers act on (a real error
/// is an `io::Error` beside it).
#[cfg(unix)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CloneFailure {
    /// Unsupported, for the pair or for this file (see [`UnsupportedCause::is_per_file`]).
    Unsupported(UnsupportedCause),
    /// The source was gone.
    Vanished,
}

impl UnsupportedCause {
    /// True when the cause belongs to this one file, so a batch should keep trying to clone
    /// other files on the same device pair.
    pub fn is_per_file(self) -> bool {
        matches!(self, Self::NotPermitted | Self::Busy)
    }

    /// A short stable name, used in reports and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::CrossDevice => "cross-device",
            Self::Filesystem => "filesystem-cannot-reflink",
            Self::NotPermitted => "clone-not-permitted",
            Self::Busy => "clone-busy",
        }
    }

    /// A sentence for people.
    pub fn describe(self) -> &'static str {
        match self {
            Self::CrossDevice => "source and destination are on different filesystems",
            Self::Filesystem => "the filesystem does not support reflinks",
            Self::NotPermitted => "the clone call was not permitted for this file",
            Self::Busy => "the filesystem asked to retry the clone and the retry failed",
        }
    }
}

/// What to do with an errno returned by FICLONE (or clonefile).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloneErrno {
    /// The pair (or file, per the cause) cannot clone.
    Unsupported(UnsupportedCause),
    /// Try the same call once more (EAGAIN).
    Retry,
    /// The source may have vanished: check whether it is still there (ENOENT).
    MaybeVanished,
    /// The destination exists: the caller's overwrite policy decides (EEXIST).
    Exists,
    /// A real error, surfaced as is and never retried another way (ENOSPC, EDQUOT, EIO, ...).
    Fatal,
}

/// Classifies an errno from the FICLONE ioctl.
#[cfg(unix)]
pub fn classify_clone_errno(errno: i32) -> CloneErrno {
    match errno {
        libc_consts::EOPNOTSUPP
        | libc_consts::ENOSYS
        | libc_consts::ENOTTY
        | libc_consts::EINVAL => CloneErrno::Unsupported(UnsupportedCause::Filesystem),
        libc_consts::EXDEV => CloneErrno::Unsupported(UnsupportedCause::CrossDevice),
        libc_consts::EPERM => CloneErrno::Unsupported(UnsupportedCause::NotPermitted),
        libc_consts::EAGAIN => CloneErrno::Retry,
        libc_consts::ENOENT => CloneErrno::MaybeVanished,
        libc_consts::EEXIST => CloneErrno::Exists,
        e if e == libc_consts::ENOTSUP => CloneErrno::Unsupported(UnsupportedCause::Filesystem),
        _ => CloneErrno::Fatal,
    }
}

/// Why a hardlink could not be made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HardlinkRefusal {
    /// Different filesystems (EXDEV). Holds for the device pair.
    CrossDevice,
    /// Not permitted (EPERM: the filesystem has no hardlinks, or protected_hardlinks).
    /// Holds for the device pair.
    NotPermitted,
    /// The source already has the maximum number of links (EMLINK). Holds for this file.
    TooManyLinks,
}

impl HardlinkRefusal {
    /// True when only this file is affected.
    pub fn is_per_file(self) -> bool {
        matches!(self, Self::TooManyLinks)
    }

    /// A short stable name, used in reports and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::CrossDevice => "hardlink-cross-device",
            Self::NotPermitted => "hardlink-not-permitted",
            Self::TooManyLinks => "hardlink-too-many-links",
        }
    }
}

/// Classifies an errno from linkat: `Some(refusal)` for the cases a caller falls back on,
/// `None` for a real error.
#[cfg(unix)]
pub fn classify_link_errno(errno: i32) -> Option<HardlinkRefusal> {
    match errno {
        libc_consts::EXDEV => Some(HardlinkRefusal::CrossDevice),
        libc_consts::EPERM | libc_consts::EOPNOTSUPP => Some(HardlinkRefusal::NotPermitted),
        libc_consts::EMLINK => Some(HardlinkRefusal::TooManyLinks),
        _ => None,
    }
}

/// errno values of the platform being built for (Linux's on Linux, macOS's on macOS), as
/// plain numbers so that the policy stays plain code.
#[cfg(unix)]
#[allow(missing_docs)]
pub mod libc_consts {
    use rustix::io::Errno;
    pub const EPERM: i32 = Errno::PERM.raw_os_error();
    pub const ENOENT: i32 = Errno::NOENT.raw_os_error();
    pub const EIO: i32 = Errno::IO.raw_os_error();
    pub const EAGAIN: i32 = Errno::AGAIN.raw_os_error();
    pub const EACCES: i32 = Errno::ACCESS.raw_os_error();
    pub const EEXIST: i32 = Errno::EXIST.raw_os_error();
    pub const EXDEV: i32 = Errno::XDEV.raw_os_error();
    pub const EINVAL: i32 = Errno::INVAL.raw_os_error();
    pub const EMFILE: i32 = Errno::MFILE.raw_os_error();
    pub const ENOTTY: i32 = Errno::NOTTY.raw_os_error();
    pub const EFBIG: i32 = Errno::FBIG.raw_os_error();
    pub const ENOSPC: i32 = Errno::NOSPC.raw_os_error();
    pub const EMLINK: i32 = Errno::MLINK.raw_os_error();
    pub const ENOSYS: i32 = Errno::NOSYS.raw_os_error();
    pub const EOPNOTSUPP: i32 = Errno::OPNOTSUPP.raw_os_error();
    /// The same number as [`EOPNOTSUPP`] on Linux; a different one on macOS, where
    /// `clonefile` answers `ENOTSUP` on a filesystem without clones.
    pub const ENOTSUP: i32 = Errno::NOTSUP.raw_os_error();
    pub const EDQUOT: i32 = Errno::DQUOT.raw_os_error();
}

/// Classifies the Win32 error of a step of a Windows block clone
/// (`FSCTL_DUPLICATE_EXTENTS_TO_FILE` and the calls that prepare it, see `reflink/windows.rs`).
///
/// | Win32 error | outcome | why |
/// |---|---|---|
/// | `ERROR_INVALID_FUNCTION` | Unsupported (filesystem) | `STATUS_INVALID_DEVICE_REQUEST`: the filesystem has no block cloning (NTFS, FAT, Wine's drives) |
/// | `ERROR_NOT_SUPPORTED` | Unsupported (filesystem) | `STATUS_NOT_SUPPORTED`: ReFS without block cloning (v1), or a range rule broken |
/// | `ERROR_INVALID_PARAMETER` | Unsupported (filesystem) | as `EINVAL` on Linux; the other volume case is caught before the call |
/// | `ERROR_NOT_SAME_DEVICE` | Unsupported (cross-device) | the two files are on different volumes |
/// | `ERROR_BLOCK_TOO_MANY_REFERENCES` | Unsupported (not permitted, per file) | this source's clusters are shared the most ReFS allows; other files still clone |
/// | `ERROR_FILE_NOT_FOUND`, `ERROR_PATH_NOT_FOUND` | maybe vanished | the caller checks the source |
/// | `ERROR_FILE_EXISTS`, `ERROR_ALREADY_EXISTS` | exists | the destination is never replaced |
/// | anything else (`ERROR_DISK_FULL`, `ERROR_ACCESS_DENIED`, `ERROR_WRITE_PROTECT`, ...) | fatal | surfaced as is |
///
/// Windows has no `EAGAIN` analogue here, so [`CloneErrno::Retry`] never comes back.
pub fn classify_win32_clone_error(code: u32) -> CloneErrno {
    use win32::*;
    match code {
        ERROR_INVALID_FUNCTION | ERROR_NOT_SUPPORTED | ERROR_INVALID_PARAMETER => {
            CloneErrno::Unsupported(UnsupportedCause::Filesystem)
        }
        ERROR_NOT_SAME_DEVICE => CloneErrno::Unsupported(UnsupportedCause::CrossDevice),
        // A per-file limit, reported like the per-file EPERM: copy this file, keep cloning.
        ERROR_BLOCK_TOO_MANY_REFERENCES => CloneErrno::Unsupported(UnsupportedCause::NotPermitted),
        ERROR_FILE_NOT_FOUND | ERROR_PATH_NOT_FOUND => CloneErrno::MaybeVanished,
        ERROR_FILE_EXISTS | ERROR_ALREADY_EXISTS => CloneErrno::Exists,
        _ => CloneErrno::Fatal,
    }
}

/// Classifies the Win32 error of a Windows hardlink (`FileLinkInformation` relative to a
/// directory handle, see [`crate::hardlink_at`]) as the refusals a caller falls back on, as
/// [`classify_link_errno`] does on unix; `None`: a real error.
///
/// | Win32 error | refusal | why |
/// |---|---|---|
/// | `ERROR_NOT_SAME_DEVICE` | cross-device | as `EXDEV` |
/// | `ERROR_INVALID_FUNCTION`, `ERROR_NOT_SUPPORTED` | not permitted | the filesystem has no hardlinks (FAT, exFAT), as `EPERM`/`EOPNOTSUPP` |
/// | `ERROR_TOO_MANY_LINKS` | too many links (this file) | NTFS allows 1024 links per file, as `EMLINK` |
/// | anything else (`ERROR_ACCESS_DENIED`, `ERROR_ALREADY_EXISTS`, ...) | none: an error | access denied is not the filesystem's verdict on hardlinks |
pub fn classify_win32_link_error(code: u32) -> Option<HardlinkRefusal> {
    use win32::*;
    match code {
        ERROR_NOT_SAME_DEVICE => Some(HardlinkRefusal::CrossDevice),
        ERROR_INVALID_FUNCTION | ERROR_NOT_SUPPORTED => Some(HardlinkRefusal::NotPermitted),
        ERROR_TOO_MANY_LINKS => Some(HardlinkRefusal::TooManyLinks),
        _ => None,
    }
}

/// The Win32 error codes the Windows policy names, as plain numbers (they are fixed by the
/// Win32 ABI; a Windows test checks them against windows-sys).
#[allow(missing_docs)]
pub mod win32 {
    pub const ERROR_INVALID_FUNCTION: u32 = 1;
    pub const ERROR_FILE_NOT_FOUND: u32 = 2;
    pub const ERROR_PATH_NOT_FOUND: u32 = 3;
    pub const ERROR_ACCESS_DENIED: u32 = 5;
    pub const ERROR_NOT_SAME_DEVICE: u32 = 17;
    pub const ERROR_WRITE_PROTECT: u32 = 19;
    pub const ERROR_SHARING_VIOLATION: u32 = 32;
    pub const ERROR_HANDLE_DISK_FULL: u32 = 39;
    pub const ERROR_NOT_SUPPORTED: u32 = 50;
    pub const ERROR_FILE_EXISTS: u32 = 80;
    pub const ERROR_INVALID_PARAMETER: u32 = 87;
    pub const ERROR_DISK_FULL: u32 = 112;
    pub const ERROR_ALREADY_EXISTS: u32 = 183;
    pub const ERROR_BLOCK_TOO_MANY_REFERENCES: u32 = 347;
    pub const ERROR_TOO_MANY_LINKS: u32 = 1142;
}

#[cfg(test)]
mod win32_tests {
    use super::win32::*;
    use super::*;

    #[test]
    fn win32_clone_error_table() {
        let fs = CloneErrno::Unsupported(UnsupportedCause::Filesystem);
        let table = [
            (ERROR_INVALID_FUNCTION, fs),
            (ERROR_NOT_SUPPORTED, fs),
            (ERROR_INVALID_PARAMETER, fs),
            (
                ERROR_NOT_SAME_DEVICE,
                CloneErrno::Unsupported(UnsupportedCause::CrossDevice),
            ),
            (
                ERROR_BLOCK_TOO_MANY_REFERENCES,
                CloneErrno::Unsupported(UnsupportedCause::NotPermitted),
            ),
            (ERROR_FILE_NOT_FOUND, CloneErrno::MaybeVanished),
            (ERROR_PATH_NOT_FOUND, CloneErrno::MaybeVanished),
            (ERROR_FILE_EXISTS, CloneErrno::Exists),
            (ERROR_ALREADY_EXISTS, CloneErrno::Exists),
            (ERROR_ACCESS_DENIED, CloneErrno::Fatal),
            (ERROR_WRITE_PROTECT, CloneErrno::Fatal),
            (ERROR_SHARING_VIOLATION, CloneErrno::Fatal),
            (ERROR_HANDLE_DISK_FULL, CloneErrno::Fatal),
            (ERROR_DISK_FULL, CloneErrno::Fatal),
        ];
        for (code, want) in table {
            assert_eq!(classify_win32_clone_error(code), want, "Win32 error {code}");
        }
    }

    #[test]
    fn win32_too_many_references_holds_for_one_file_only() {
        match classify_win32_clone_error(ERROR_BLOCK_TOO_MANY_REFERENCES) {
            CloneErrno::Unsupported(cause) => assert!(cause.is_per_file()),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn win32_link_error_table() {
        let table = [
            (ERROR_NOT_SAME_DEVICE, Some(HardlinkRefusal::CrossDevice)),
            (ERROR_INVALID_FUNCTION, Some(HardlinkRefusal::NotPermitted)),
            (ERROR_NOT_SUPPORTED, Some(HardlinkRefusal::NotPermitted)),
            (ERROR_TOO_MANY_LINKS, Some(HardlinkRefusal::TooManyLinks)),
            (ERROR_ACCESS_DENIED, None),
            (ERROR_ALREADY_EXISTS, None),
            (ERROR_FILE_EXISTS, None),
            (ERROR_DISK_FULL, None),
        ];
        for (code, want) in table {
            assert_eq!(classify_win32_link_error(code), want, "Win32 error {code}");
        }
        assert!(HardlinkRefusal::TooManyLinks.is_per_file());
    }

    /// The plain numbers are the ones Windows' headers define.
    #[cfg(windows)]
    #[test]
    fn win32_numbers_are_the_windows_sys_numbers() {
        use windows_sys::Win32::Foundation as F;
        let want = [
            (ERROR_INVALID_FUNCTION, F::ERROR_INVALID_FUNCTION),
            (ERROR_FILE_NOT_FOUND, F::ERROR_FILE_NOT_FOUND),
            (ERROR_PATH_NOT_FOUND, F::ERROR_PATH_NOT_FOUND),
            (ERROR_ACCESS_DENIED, F::ERROR_ACCESS_DENIED),
            (ERROR_NOT_SAME_DEVICE, F::ERROR_NOT_SAME_DEVICE),
            (ERROR_WRITE_PROTECT, F::ERROR_WRITE_PROTECT),
            (ERROR_SHARING_VIOLATION, F::ERROR_SHARING_VIOLATION),
            (ERROR_HANDLE_DISK_FULL, F::ERROR_HANDLE_DISK_FULL),
            (ERROR_NOT_SUPPORTED, F::ERROR_NOT_SUPPORTED),
            (ERROR_FILE_EXISTS, F::ERROR_FILE_EXISTS),
            (ERROR_INVALID_PARAMETER, F::ERROR_INVALID_PARAMETER),
            (ERROR_DISK_FULL, F::ERROR_DISK_FULL),
            (ERROR_ALREADY_EXISTS, F::ERROR_ALREADY_EXISTS),
            (
                ERROR_BLOCK_TOO_MANY_REFERENCES,
                F::ERROR_BLOCK_TOO_MANY_REFERENCES,
            ),
            (ERROR_TOO_MANY_LINKS, F::ERROR_TOO_MANY_LINKS),
        ];
        for (ours, theirs) in want {
            assert_eq!(ours, theirs);
        }
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::libc_consts::*;
    use super::*;

    #[test]
    fn clone_errno_table_matches_design() {
        let table = [
            (
                EOPNOTSUPP,
                CloneErrno::Unsupported(UnsupportedCause::Filesystem),
            ),
            (
                ENOSYS,
                CloneErrno::Unsupported(UnsupportedCause::Filesystem),
            ),
            (
                ENOTTY,
                CloneErrno::Unsupported(UnsupportedCause::Filesystem),
            ),
            (
                EINVAL,
                CloneErrno::Unsupported(UnsupportedCause::Filesystem),
            ),
            (
                EXDEV,
                CloneErrno::Unsupported(UnsupportedCause::CrossDevice),
            ),
            (
                EPERM,
                CloneErrno::Unsupported(UnsupportedCause::NotPermitted),
            ),
            (EAGAIN, CloneErrno::Retry),
            (ENOENT, CloneErrno::MaybeVanished),
            (EEXIST, CloneErrno::Exists),
            (ENOSPC, CloneErrno::Fatal),
            (EDQUOT, CloneErrno::Fatal),
            (EIO, CloneErrno::Fatal),
            (EFBIG, CloneErrno::Fatal),
            (EMFILE, CloneErrno::Fatal),
            (EACCES, CloneErrno::Fatal),
        ];
        for (errno, want) in table {
            assert_eq!(classify_clone_errno(errno), want, "errno {errno}");
        }
    }

    #[test]
    fn enotsup_from_clonefile_means_the_filesystem_cannot_clone() {
        assert_eq!(
            classify_clone_errno(ENOTSUP),
            CloneErrno::Unsupported(UnsupportedCause::Filesystem)
        );
    }

    /// The policy's numbers come from rustix; on Linux they must be the kernel's (the same on
    /// every architecture cowtree builds for), as they were when written out by hand.
    #[cfg(target_os = "linux")]
    #[test]
    fn errno_numbers_on_linux_are_the_kernel_numbers() {
        let want = [
            (EPERM, 1),
            (ENOENT, 2),
            (EIO, 5),
            (EAGAIN, 11),
            (EACCES, 13),
            (EEXIST, 17),
            (EXDEV, 18),
            (EINVAL, 22),
            (EMFILE, 24),
            (ENOTTY, 25),
            (EFBIG, 27),
            (ENOSPC, 28),
            (EMLINK, 31),
            (ENOSYS, 38),
            (EOPNOTSUPP, 95),
            (ENOTSUP, 95),
            (EDQUOT, 122),
        ];
        for (got, number) in want {
            assert_eq!(got, number);
        }
    }

    #[test]
    fn fatal_errors_are_never_unsupported() {
        for errno in [ENOSPC, EDQUOT, EIO, EFBIG] {
            assert!(!matches!(
                classify_clone_errno(errno),
                CloneErrno::Unsupported(_)
            ));
        }
    }

    #[test]
    fn only_permission_and_busy_are_per_file() {
        assert!(UnsupportedCause::NotPermitted.is_per_file());
        assert!(UnsupportedCause::Busy.is_per_file());
        assert!(!UnsupportedCause::CrossDevice.is_per_file());
        assert!(!UnsupportedCause::Filesystem.is_per_file());
    }

    #[test]
    fn link_errno_table() {
        assert_eq!(
            classify_link_errno(EXDEV),
            Some(HardlinkRefusal::CrossDevice)
        );
        assert_eq!(
            classify_link_errno(EPERM),
            Some(HardlinkRefusal::NotPermitted)
        );
        assert_eq!(
            classify_link_errno(EMLINK),
            Some(HardlinkRefusal::TooManyLinks)
        );
        assert_eq!(classify_link_errno(ENOSPC), None);
        assert!(HardlinkRefusal::TooManyLinks.is_per_file());
        assert!(!HardlinkRefusal::CrossDevice.is_per_file());
    }
}
