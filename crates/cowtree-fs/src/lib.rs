//! cowtree-fs: the file primitives cowtree is built on.
//!
//! - [`try_reflink`] / [`try_reflink_at`]: one copy-on-write clone with a classified outcome
//!   ([`ReflinkOutcome`]: cloned, unsupported for this device pair or file, or source vanished);
//!   [`clone_or_copy`] and [`transfer_at`] add the copy fallback and say which method ran.
//! - [`hardlink_at`]: hardlinks with EXDEV, EPERM and EMLINK kept apart from real errors.
//! - [`probe::ProbeCache`]: a raw clone probe, cached per (source device, destination device).
//! - [`extents`]: FIEMAP extent maps, to see whether data is really shared.
//! - [`dedupe`]: FIDEDUPERANGE, to share data between files that already hold equal bytes.
//! - [`Progress`]: counters a long operation bumps from its workers, for a progress display.
//! - [`walk`]: the parallel, directory-relative tree walker every crate walks with, and
//!   [`workers`]: the one rule for how many worker threads a job gets, the kept thread pools
//!   and the work queue the walk runs on.
//! - [`creation::CreationMask`]: which permission bits new entries get, known in advance where
//!   that is certain (so a caller need not read each one back).
//! - [`dir::Dir`] and [`name`]: directory-relative, symlink-refusing operations and name
//!   validation for everything written into a destination.
//! - [`whole_tree`]: the seam between making a tree per file and in one call (a btrfs
//!   snapshot; `clonefile` of a directory on macOS): the decision, and what a command reports.
//! - [`staging`]: a new directory built beside its destination and renamed into place.
//! - [`process`]: which process made something, by pid and start time (a reused pid is not it).
//! - [`subvolume`]: btrfs subvolumes through the kernel's ioctls (create, snapshot, the
//!   read-only flag, delete with a fallback where the O(1) delete is not permitted, the
//!   subvolumes below a directory); [`probe::ProbeCache::subvolumes`] says what this user may
//!   do with them on a filesystem.
//!
//! Nothing here knows about trees or stores. Linux is the tested platform (XFS, btrfs, ext4,
//! tmpfs on real mounts). Every platform-specific call sits in [`sys`], which has a Linux and a
//! macOS implementation (`fclonefileat`, a per-component `O_NOFOLLOW` walk, `F_FULLFSYNC`; no
//! extent maps or dedupe). macOS is **type-checked, not run** by cowtree's CI.
//!
//! Windows builds a subset: [`try_reflink`] and [`clone_or_copy`] by path and [`transfer_at`],
//! [`try_reflink_at`] and [`transfer_at_open`] relative to directory handles (block cloning
//! with `FSCTL_DUPLICATE_EXTENTS_TO_FILE` on ReFS and Dev Drives, a copy elsewhere),
//! [`hardlink_at`], [`probe`] per volume pair, [`name::windows`] and [`block_clone`],
//! [`dir::Dir`] (NT handles, names opened relative to a directory without following a reparse
//! point; rename, times, flushes, symlinks, `remove_tree`), [`atomic_file`], [`undo`], and
//! [`walk`] and [`workers`] over it; [`read`], [`process`], [`staging`] (locked by its own
//! open handle), [`sys::open_entry`] with an entry's attributes and times, [`creation`] and
//! [`place`], the `stat_*` accessors of [`sys`] and [`whole_tree`]'s types (not its calls).
//! Its tests **run under Wine** (no ReFS, no reparse points and no volume flush
//! there: the copy fallback, the refusals, rename, hardlinks, times, the walk, hashing,
//! staging and `place` run; a real block clone, a real symlink or junction and a volume flush
//! are **compiled, not run**); see [`sys`].

#![warn(missing_docs)]

// What builds on Windows is a subset (see `sys`, "Windows"): the outcome types, name
// validation, the block-clone arithmetic, clone-or-copy by path and by directory handle,
// hardlinks, the probe, directory handles (`dir`, its own file there), atomic files, undo,
// the walk and work queue over them, reading and hashing, process stamps, staging, creation
// and place (its own file there), whole_tree's types and subvolume's Cause. Everything else
// built on unix descriptors (rustix) is unix only.
pub mod atomic_file;
pub mod block_clone;
pub mod classify;
#[cfg(unix)]
pub mod copy;
pub mod creation;
#[cfg(unix)]
pub mod dedupe;
#[cfg(unix)]
pub mod dir;
/// Directory handles on Windows: the same [`dir::Dir`] over NT handles, relative opens that
/// never follow a reparse point.
#[cfg(windows)]
#[path = "dir_windows.rs"]
pub mod dir;
pub mod error;
#[cfg(unix)]
pub mod extents;
pub mod file_lock;
#[cfg(unix)]
pub mod fstype;
pub mod hardlink;
pub mod name;
pub mod parallel;
#[cfg(unix)]
pub mod place;
/// Placing a store's file into a new destination file on Windows: the same [`place::place_at`]
/// by handle.
#[cfg(windows)]
#[path = "place_windows.rs"]
pub mod place;
#[cfg(unix)]
pub mod probe;
/// Capability probes on Windows: what a volume is and whether it clones, cached per volume.
#[cfg(windows)]
#[path = "probe_windows.rs"]
pub mod probe;
pub mod process;
pub mod progress;
pub mod read;
pub mod reflink;
pub mod staging;
#[cfg(unix)]
pub mod subvolume;
/// Subvolumes on Windows: none; only the failure [`subvolume::Cause`] that
/// [`whole_tree::NotUsed`] names, and [`subvolume::Deleted`], which reports name.
#[cfg(windows)]
pub mod subvolume {
    mod cause;
    mod deleted;
    pub use cause::Cause;
    pub use deleted::Deleted;
}
pub mod sys;
pub mod undo;
pub mod walk;
pub mod whole_tree;
pub mod workers;

pub use classify::{HardlinkRefusal, UnsupportedCause};
#[cfg(unix)]
pub use copy::CopyRange;
pub use error::raw_errno;
#[cfg(unix)]
pub use hardlink::hardlink;
pub use hardlink::{HardlinkOutcome, hardlink_at};
pub use progress::Progress;
pub use reflink::{
    CopyMethod, Method, ReflinkOutcome, Transfer, TransferOptions, clone_or_copy, try_reflink,
};
pub use reflink::{transfer_at, transfer_at_open, try_reflink_at};
#[cfg(unix)]
pub use reflink::{transfer_at_masked, transfer_at_remembering};
