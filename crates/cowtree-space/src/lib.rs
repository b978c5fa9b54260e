//! cowtree-space: how much disk a set of trees really uses, and giving back what identical
//! files waste.
//!
//! - [`du()`]: apparent, allocated, shared and unique physical bytes (extents counted once by
//!   physical address per device, from FIEMAP), with hardlinks counted once.
//! - [`dedupe()`]: finds identical regular files (size, then BLAKE3) and shares their data with
//!   FIDEDUPERANGE, where the kernel compares the bytes under lock, so no file's content,
//!   inode, mode or mtime ever changes.
//!
//! Both walk with [`usage_walk`], which never follows a symlink below the paths it is given.
//!
//! Windows builds both: [`du()`] walks with NT handles and reports apparent and allocated
//! sizes, hardlinks once, and the counts; shared and unique physical are `None` there (no
//! FIEMAP: sharing is not measured on Windows). [`dedupe()`] is refused there in one line
//! before anything is opened (`DedupeError::Windows`: Windows has no call that compares
//! and shares in one). Tested under Wine (`tests/windows.rs`, `scripts/windows.sh`).

#![warn(missing_docs)]

mod dedupe_api;
#[cfg(unix)]
pub mod dedupe_files;
/// `dedupe` on Windows: refused (see the file).
#[cfg(windows)]
#[path = "dedupe_windows.rs"]
pub mod dedupe_files;
pub mod disk_usage;
pub mod interval;
pub mod usage_walk;

pub use dedupe_files::{
    DEFAULT_MIN_SIZE, DedupeError, DedupeOptions, DedupeReport, NoProgress, Progress, Skipped,
    dedupe,
};
pub use disk_usage::{DuOptions, DuReport, du, du_with_progress};

/// Serializes a path as a string, replacing bytes that are not UTF-8 (JSON has no other way).
pub(crate) fn path_lossy<S: serde::Serializer>(
    p: &std::path::Path,
    s: S,
) -> Result<S::Ok, S::Error> {
    s.serialize_str(&p.to_string_lossy())
}
