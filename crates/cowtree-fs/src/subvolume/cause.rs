//! Why a subvolume operation failed: pure, so that it also builds where there are no
//! subvolumes (Windows, for [`crate::whole_tree::NotUsed`]).

/// Why a subvolume operation failed, as far as a caller acts on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Cause {
    /// Not a btrfs filesystem (or no such ioctl: ENOTTY, EOPNOTSUPP, ENOSYS).
    NotBtrfs,
    /// The directory is not a subvolume's root (EINVAL from a call that needs one).
    NotSubvolumeRoot,
    /// The kernel refused for lack of privilege (EPERM): a snapshot of a subvolume the caller
    /// does not own, an O(1) delete without `CAP_SYS_ADMIN` or `user_subvol_rm_allowed`.
    NotPermitted,
    /// A permission check on a directory failed (EACCES).
    AccessDenied,
    /// Source and destination are on different filesystems (EXDEV).
    CrossFilesystem,
    /// A read-only subvolume or mount is in the way (EROFS).
    ReadOnly,
    /// A qgroup limit was reached (EDQUOT).
    QuotaExceeded,
    /// The filesystem is full (ENOSPC).
    NoSpace,
    /// The name is taken (EEXIST).
    Exists,
    /// Nothing is there (ENOENT).
    NotFound,
    /// The subvolume holds other subvolumes (ENOTEMPTY from a delete).
    HasNested,
    /// In use: a mount point, the default subvolume, an active swap file (EBUSY, ETXTBSY).
    Busy,
    /// Anything else (EIO, ENOMEM, ...): report it.
    Other,
}

impl Cause {
    /// A short stable name for reports and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Cause::NotBtrfs => "not-btrfs",
            Cause::NotSubvolumeRoot => "not-a-subvolume-root",
            Cause::NotPermitted => "not-permitted",
            Cause::AccessDenied => "access-denied",
            Cause::CrossFilesystem => "cross-filesystem",
            Cause::ReadOnly => "read-only",
            Cause::QuotaExceeded => "quota-exceeded",
            Cause::NoSpace => "no-space",
            Cause::Exists => "exists",
            Cause::NotFound => "not-found",
            Cause::HasNested => "has-nested-subvolumes",
            Cause::Busy => "busy",
            Cause::Other => "other",
        }
    }

    /// A phrase for people.
    pub fn describe(self) -> &'static str {
        match self {
            Cause::NotBtrfs => "not on btrfs",
            Cause::NotSubvolumeRoot => "not a subvolume's root directory",
            Cause::NotPermitted => "not permitted for this user",
            Cause::AccessDenied => "permission denied",
            Cause::CrossFilesystem => "on different filesystems",
            Cause::ReadOnly => "read-only",
            Cause::QuotaExceeded => "quota exceeded",
            Cause::NoSpace => "no space left",
            Cause::Exists => "already exists",
            Cause::NotFound => "not found",
            Cause::HasNested => "it holds other subvolumes",
            Cause::Busy => "in use",
            Cause::Other => "failed",
        }
    }
}
