//! cowtree-link: links a source tree into a destination by clone, copy, hardlink or symlink,
//! one method for the whole batch with a fallback that tells the truth about what ran.
//!
//! The entry point is [`link_tree`]. It is meant to be embedded: a package manager linking a
//! cached package into an existing environment calls it with [`OnExisting::Overwrite`]; a
//! tool handing out worktrees calls it with the defaults into a new directory.
//!
//! ```no_run
//! use cowtree_link::{LinkOptions, OnExisting, link_tree};
//! use std::path::Path;
//!
//! let opts = LinkOptions { on_existing: OnExisting::Overwrite, ..LinkOptions::default() };
//! let report = link_tree(Path::new("cache/pkg-1.0"), Path::new("env/site-packages"), &opts)?;
//! println!("{} cloned, {} copied", report.cloned, report.copied);
//! for f in &report.fallbacks {
//!     eprintln!("{} files copied because {}", f.count, f.description);
//! }
//! # Ok::<(), cowtree_link::LinkError>(())
//! ```
//!
//! # The contract
//!
//! - **Methods and fallback.** [`LinkMode::Auto`] (the default) clones, and copies where the
//!   filesystems cannot clone. The decision is kept per (source device, destination device)
//!   pair by [`LinkState`]: the first pair-wide "unsupported" (another filesystem, no reflink
//!   support, EXDEV/EPERM for hardlinks) moves that pair to copying; per-file cases (the source
//!   vanished, EAGAIN twice, EPERM from the clone call, EMLINK) copy that one file only; once a
//!   method has worked for a pair, a pair-wide failure is an error. Every fallback is counted
//!   in [`LinkReport::fallbacks`] with its cause. `strict` makes any fallback an error
//!   ([`LinkError::StrictFallback`]). There is no separate probe: the first real file is the
//!   probe, so a read-only source works and nothing is written to it.
//! - **A new destination appears whole or not at all.** It is built in a staging directory
//!   beside it (`.<name>.cowtree-staging.<pid>.<random>`, locked with `flock` while in use)
//!   and renamed into place (`RENAME_NOREPLACE`) at the end. On error the staging directory is
//!   removed; if the process dies, the next run for the same destination removes it.
//! - **An existing destination** is refused ([`OnExisting::Fail`], the default), merged into
//!   with every entry replaced by link-to-temporary-name-then-rename ([`OnExisting::Overwrite`];
//!   an existing inode is never written through, a symlink in the way is replaced and never
//!   followed), or merged into keeping what is there ([`OnExisting::Skip`]). Directories that
//!   already exist keep their own mode and times, so that caches keyed on directory mtimes
//!   (e.g. Python's import system) see the new entries.
//! - **Preserved:** permission bits of files and directories (not set-user/group-ID bits of
//!   files), symlinks as symlinks with the exact target bytes, empty directories, access and
//!   modification times of files, symlinks and directories (unless `preserve_times` is false),
//!   names byte for byte (non-UTF-8 included). Ownership and extended attributes are not
//!   copied: the new tree belongs to whoever runs the link.
//! - **Refused before anything is written:** a missing source, a destination inside the source
//!   (checked by device and inode of every ancestor, so bind mounts count), source and
//!   destination being the same, and special files (FIFOs, sockets, devices) unless
//!   `skip_special`. A regular file as the source is linked like `cp` does.
//! - **Safety of the destination side:** every operation is relative to directory handles
//!   opened with `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)` or `O_NOFOLLOW`; the source
//!   path itself may be reached through symlinks, nothing below it is followed.
//! - **Parallel with bounded descriptors:** `jobs` workers (default: one per core), each holding
//!   at most four open descriptors, and no more workers than the open-file limit allows.
//!
//! Hardlink mode ([`LinkMode::Hardlink`]) makes the destination share inodes with the source:
//! a write through either reaches both. Use it only where nothing writes.
//!
//! Linux only: the tree linker uses `openat2`, `getdents` and FICLONE. It is tested on real
//! XFS, btrfs, ext4 and tmpfs mounts.

#![warn(missing_docs)]

pub mod error;
#[cfg(target_os = "linux")]
mod link;
pub mod options;
#[cfg(target_os = "linux")]
mod plan;
#[cfg(target_os = "linux")]
mod pool;
pub mod report;
#[cfg(target_os = "linux")]
mod scan;
#[cfg(target_os = "linux")]
mod session;
#[cfg(target_os = "linux")]
mod staging;
pub mod state;
#[cfg(target_os = "linux")]
mod txn;

pub use error::LinkError;
pub use options::{
    EntryKind, HashAlgo, LinkOptions, OnExisting, Progress, ProgressCounters, ScanTotals,
};
#[cfg(target_os = "linux")]
pub use plan::PathMap;
pub use report::{Collision, CollisionAction, Digest, FallbackCount, LinkReport, RecordEntry};
#[cfg(target_os = "linux")]
pub use session::{FileEntry, Linker, Source};
pub use state::{Attempt, Decision, Failure, LinkMode, LinkState};

/// Links the tree (or file) `src` to `dst` with a one-call [`Linker`]; see the crate
/// documentation for the contract. A caller linking many things should keep one [`Linker`]
/// and call its methods instead, so that fallback decisions are made once.
#[cfg(target_os = "linux")]
pub fn link_tree(
    src: &std::path::Path,
    dst: &std::path::Path,
    opts: &LinkOptions,
) -> Result<LinkReport, LinkError> {
    Linker::new(opts.clone()).link_tree(src, dst)
}
