//! The errno policy for clone and hardlink failures, as pure functions.
//!
//! This is the table in docs/architecture.md ("errno table for Linux FICLONE") in code form. It
//! is kept apart from the syscalls so that every row has a unit test.

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

#[cfg(test)]
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
