//! How a subvolume was deleted: pure, so that it also builds where there are no subvolumes
//! (Windows, for the reports of a store's removal, which name how each went).

use super::Cause;

/// How `delete` removed a subvolume.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deleted {
    /// One ioctl (`BTRFS_IOC_SNAP_DESTROY_V2`): O(1) for the caller, the space freed in the
    /// background.
    Ioctl,
    /// The kernel refused the O(1) delete (the cause, e.g. [`Cause::NotPermitted`] without
    /// `CAP_SYS_ADMIN` or `user_subvol_rm_allowed`), so `ro` was cleared where set and every
    /// entry removed, the root last (an empty subvolume's root goes with `rmdir`): O(entries).
    RemovedTree {
        /// Why the ioctl was not enough.
        because: Cause,
    },
}

impl Deleted {
    /// `ioctl` or `removed-tree`.
    pub fn as_str(self) -> &'static str {
        match self {
            Deleted::Ioctl => "ioctl",
            Deleted::RemovedTree { .. } => "removed-tree",
        }
    }
}
