//! cowtree-link: links source trees (or lists of files) into a destination by clone, copy,
//! hardlink or symlink, one method per pair of filesystems with a fallback that tells the
//! truth about what ran.
//!
//! The entry point is a [`Linker`] session, built once with [`LinkOptions`] and kept for
//! everything the caller links: it remembers per (source device, destination device) pair
//! whether cloning (or hardlinking) and `copy_file_range` work, so a package manager linking
//! thirty packages into an environment on another filesystem fails one clone, not thirty.
//! Its methods:
//!
//! - [`Linker::link_tree`]: one tree (or file) into a destination ([`link_tree`] is this
//!   with a one-call session);
//! - [`Linker::link_trees`] / [`Linker::link_sources`]: several trees merged into one
//!   destination in one parallel pass, each with an optional path mapping ([`PathMap`]) that
//!   renames or drops entries; two sources with an entry at one path are a
//!   [`Collision`], decided by [`OnExisting`] and listed in the report;
//! - [`Linker::link_files`]: a list of (source file, destination path, mode) entries: the
//!   content-addressed store case, where blobs are not laid out as a tree.
//!
//! Each returns a [`LinkReport`]: counts by the method that really ran, every fallback with
//! its cause, collisions, and (with [`LinkOptions::record`] or [`LinkOptions::hash`]) a
//! [`RecordEntry`] for every entry written, with its SHA-256 or BLAKE3 when asked.
//!
//! Installing unpacked wheels into a virtual environment, the way
//! `examples/wheel_install.rs` does (it also writes each package's `RECORD` from the
//! record):
//!
//! ```no_run
//! use cowtree_link::{EntryKind, HashAlgo, LinkOptions, Linker, OnExisting, Source};
//! use std::path::{Path, PathBuf};
//!
//! let site = Path::new("lib/python3.12/site-packages");
//! // `<name>.data/scripts/*` to bin/, `<name>.data/data/*` to the prefix, the rest to
//! // site-packages; the wheel's own RECORD is rewritten by the installer.
//! let wheel_map = |rel: &Path, _: EntryKind| -> Option<PathBuf> {
//!     let s = rel.to_str()?;
//!     if let Some((_, rest)) = s.split_once(".data/scripts/") {
//!         return Some(Path::new("bin").join(rest));
//!     }
//!     if let Some((_, rest)) = s.split_once(".data/data/") {
//!         return Some(PathBuf::from(rest));
//!     }
//!     if s.contains(".data") || s.ends_with(".dist-info/RECORD") {
//!         return None;
//!     }
//!     Some(site.join(rel))
//! };
//! let linker = Linker::new(LinkOptions {
//!     on_existing: OnExisting::Overwrite,
//!     hash: Some(HashAlgo::Sha256),
//!     ..LinkOptions::default()
//! });
//! let wheels = [Path::new("cache/six-1.17.0"), Path::new("cache/idna-3.10")];
//! let sources: Vec<Source> = wheels.iter().map(|w| Source::mapped(w, &wheel_map)).collect();
//! let report = linker.link_sources(&sources, Path::new(".venv"))?;
//! for e in &report.record {
//!     // e.source: which wheel; e.path, e.size, e.hash: a RECORD line.
//!     println!("{} {} {:?}", e.source, e.path.display(), e.hash.as_ref().map(|h| h.to_hex()));
//! }
//! for c in &report.collisions {
//!     eprintln!("{} is in both {} and {}", c.path.display(), c.sources[0].display(), c.sources[1].display());
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
//!   method has worked for a pair, a pair-wide failure is an error. A [`Linker`] keeps the
//!   state for its whole life, across calls (with several workers, each may try the first
//!   file of a new pair before the pair's state is known). Every fallback is counted
//!   in [`LinkReport::fallbacks`] with its cause. `strict` makes any fallback an error
//!   ([`LinkError::StrictFallback`]). There is no separate probe: the first real file is the
//!   probe, so a read-only source works and nothing is written to it.
//! - **A new destination appears whole or not at all.** It is built in a staging directory
//!   beside it (`.<name>.cowtree-staging.<pid>.<random>`, locked with `flock` while in use)
//!   and renamed into place (`RENAME_NOREPLACE`) at the end. On error the staging directory is
//!   removed; if the process dies, the next run for the same destination removes it.
//! - **An existing destination** is refused ([`OnExisting::Fail`], the default), merged into
//!   with every entry replaced ([`OnExisting::Overwrite`]; an existing inode is never written
//!   through, a symlink in the way is replaced and never followed), or merged into keeping
//!   what is there ([`OnExisting::Skip`]).
//! - **A merge is a transaction.** New entries are built under temporary names beside their
//!   final ones (`.<name>.cowtree-tmp.<pid>.<random>`) and published at the end by rename
//!   (or by exchange with the entry they replace, which is kept aside until everything is
//!   published). On any error or strict refusal, what was published is put back and every
//!   temporary entry removed, so the destination is as it was
//!   ([`LinkError::destination_unchanged`] says whether that held). A merge killed midway
//!   leaves a journal (`.cowtree-txn.<pid>.<random>` in the destination) that the next merge
//!   into the same destination (or [`Linker::recover`]) uses to finish it: undone if it had
//!   not started publishing, completed if it had. Directories that
//!   already exist keep their own mode and times, so that caches keyed on directory mtimes
//!   (e.g. Python's import system) see the new entries.
//! - **Preserved:** permission bits of files and directories (not set-user/group-ID bits of
//!   files), symlinks as symlinks with the exact target bytes, empty directories, access and
//!   modification times of files, symlinks and directories (unless `preserve_times` is false),
//!   names byte for byte (non-UTF-8 included). By default ownership, extended attributes,
//!   ACLs and hardlinks between files of the source are not kept: the new tree belongs to
//!   whoever runs the link. [`LinkOptions::preserve`] ([`Preserve`], `cp --preserve`'s
//!   items) keeps them: owner and group where the caller may (else counted in
//!   [`LinkReport::not_kept`]) with set-ID bits only where they were kept, attributes and
//!   ACLs the caller may write, hardlinks inside the source as hardlinks
//!   ([`LinkReport::hardlinks`]), and special files made again.
//! - **Refused before anything is written:** a missing source, a destination inside the source
//!   (checked by device and inode of every ancestor, so bind mounts count), source and
//!   destination being the same, and special files (FIFOs, sockets, devices) unless
//!   `skip_special` or [`Preserve::special`]. A regular file as the source is linked like
//!   `cp` does.
//! - **Safety of the destination side:** every operation is relative to directory handles
//!   opened with `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)` or `O_NOFOLLOW`; the source
//!   path itself may be reached through symlinks, nothing below it is followed. A directory
//!   this run created may stay open for the work on its entries (opened by name in its
//!   parent's handle, `O_NOFOLLOW`); a new destination's staging directory and each new entry
//!   of a merge are put in place only if what is at their staging or temporary name is still
//!   what this run made (else the run fails); an existing directory of a merge is reopened
//!   beneath the root for each piece of work, so one swapped for a symlink fails the merge:
//!   undone if nothing was made in it yet, else a [`LinkError::UndoFailed`] (the temporary
//!   entries made in the moved directory stay there; all else reachable is put back).
//!   What [`LinkOptions::preserve`] keeps is given through a handle of the entry itself
//!   (`O_PATH | O_NOFOLLOW`), checked first to be what this run made (its type, one link,
//!   the caller's): an entry swapped in at the name is never given an owner, set-ID bits or
//!   attributes, and a later name of a hardlinked file is linked only to the inode this run
//!   made for the first.
//! - **Parallel with bounded descriptors:** `jobs` workers (default: one per core), each holding
//!   a bounded number of open descriptors while linking (the source and destination directory
//!   and file at hand, and with [`LinkOptions::preserve`] the source entry: five) and at most [`cowtree_fs::walk::FDS_PER_WORKER`] while reading
//!   the source; besides them, directories held open for queued work (one pool of at most
//!   four per worker, less where the open-file limit is tight) and one per source root; no
//!   more workers than the open-file limit allows.
//!
//! - **Two merges into one destination take turns.** A merge holds an exclusive `flock` on
//!   the destination directory from before it finishes a dead merge's journal until it has
//!   published; another merge into it (in this process or another) waits, telling
//!   [`Progress::waiting`], or with [`LinkOptions::wait`] false fails at once with
//!   [`LinkError::DestinationBusy`]. Two calls that both create a destination that did not
//!   exist, with [`OnExisting::Overwrite`] or [`OnExisting::Skip`], both succeed: the second
//!   to finish merges into what the first put there.
//! - **Cancellation:** [`Linker::cancel_handle`] gives a [`CancelHandle`] that any thread may
//!   cancel: the calls in progress stop their workers and leave the destination as it was
//!   (as on any error: a new destination's staging is removed, a merge is rolled back), and
//!   return [`LinkError::Cancelled`]; later calls of that session are refused.
//!
//! Hardlink mode ([`LinkMode::Hardlink`]) makes the destination share inodes with the source:
//! a write through either reaches both. Use it only where nothing writes.
//!
//! Linux is the tested platform: the tree linker uses `openat2`, `getdents` and FICLONE, and is
//! tested on real XFS, btrfs, ext4 and tmpfs mounts. macOS is type-checked, not run.
//!
//! Windows builds the engine for new destinations (block cloning by handle on ReFS and Dev
//! Drives, a copy elsewhere; its tests run under Wine, the copy). Refused there before
//! anything is written, with [`LinkError::Unsupported`] ([`options::unsupported_here`]):
//! [`LinkOptions::whole_tree`], [`LinkMode::Symlink`], and the [`Preserve`] items (owners,
//! attributes, ACLs, hardlinks, special files). No permission bits are kept there;
//! `to_subvolume` is unix only. A merge into an existing destination works there with one
//! difference: a replacement is published by three renames through a third name, not one
//! atomic exchange (see the `txn` module), and [`LinkOptions::sync`] needs a volume flush,
//! which Windows allows administrators only.

#![warn(missing_docs)]

mod cancel_handle;
mod destination;
mod dir_finish;
mod engine;
mod entry;
#[cfg(unix)]
mod entry_special;
pub mod error;
mod file_link;
mod keep;
mod link_map;
mod link_staging;
pub mod options;
mod pass;
mod plan;
mod publication;
pub mod report;
mod scan;
mod session;
mod single_file;
pub mod state;
#[cfg(unix)]
pub mod to_subvolume;
mod txn;
mod whole;
mod work_items;

pub use cancel_handle::CancelHandle;
pub use error::LinkError;
pub use keep::{ModeStep, keep_recorded, keeps_attribute};
pub use link_staging::NAMING as STAGING_NAMING;
pub use options::{
    EntryKind, HashAlgo, LinkOptions, OnExisting, Preserve, Progress, ProgressCounters, ScanTotals,
};
pub use plan::PathMap;
pub use report::{
    Collision, CollisionAction, Digest, FallbackCount, LinkReport, NotKept, RecordEntry,
};
pub use session::{FileEntry, Linker, Source};
pub use state::{Attempt, Decision, Failure, LinkMode, LinkState};
/// [`to_subvolume`] by its earlier name, which the `cowtree` binary still uses.
#[cfg(unix)]
pub use to_subvolume as convert;

/// Links the tree (or file) `src` to `dst` with a one-call [`Linker`]; see the crate
/// documentation for the contract. A caller linking many things should keep one [`Linker`]
/// and call its methods instead, so that fallback decisions are made once.
pub fn link_tree(
    src: &std::path::Path,
    dst: &std::path::Path,
    opts: &LinkOptions,
) -> Result<LinkReport, LinkError> {
    Linker::new(opts.clone()).link_tree(src, dst)
}
