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

#![warn(missing_docs)]

pub mod atomic_file;
pub mod block_clone;
pub mod classify;
pub mod copy;
pub mod creation;
pub mod dedupe;
pub mod dir;
pub mod error;
pub mod extents;
pub mod fstype;
#[cfg(unix)]
pub mod hardlink;
pub mod name;
pub mod parallel;
pub mod place;
pub mod probe;
pub mod process;
pub mod progress;
pub mod read;
pub mod reflink;
pub mod staging;
pub mod subvolume;
pub mod sys;
pub mod undo;
pub mod walk;
pub mod whole_tree;
pub mod workers;

pub use classify::{HardlinkRefusal, UnsupportedCause};
pub use copy::CopyRange;
pub use error::raw_errno;
#[cfg(unix)]
pub use hardlink::{HardlinkOutcome, hardlink, hardlink_at};
pub use progress::Progress;
pub use reflink::{
    CopyMethod, Method, ReflinkOutcome, Transfer, TransferOptions, clone_or_copy, try_reflink,
};
pub use reflink::{
    transfer_at, transfer_at_masked, transfer_at_open, transfer_at_remembering, try_reflink_at,
};
