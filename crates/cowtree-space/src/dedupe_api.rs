//! What `dedupe` takes and gives, on every platform: its options and progress, its report and
//! its refusals. The work is in [`crate::dedupe_files`] (FIDEDUPERANGE on Linux; on Windows a
//! refusal).

use std::io;
use std::path::PathBuf;

use serde::Serialize;

/// Receives progress; the CLI draws a bar with it. Every method has a default that does
/// nothing. Phases: "scan" (no total), "dedupe" (total: bytes to hash), "measure".
pub trait Progress: Sync {
    /// A phase starts, with its total in bytes when known.
    fn phase(&self, _name: &'static str, _total_bytes: Option<u64>) {}
    /// `bytes` more of the current phase are done.
    fn advance(&self, _bytes: u64) {}
}

/// Progress that goes nowhere.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProgress;
impl Progress for NoProgress {}

/// How to deduplicate.
pub struct DedupeOptions<'a> {
    /// Find and report, change nothing.
    pub dry_run: bool,
    /// Files smaller than this are left alone.
    pub min_size: u64,
    /// Where progress goes.
    pub progress: &'a dyn Progress,
    /// Called for each set of files found equal by hash, after hashing them and before their
    /// FIDEDUPERANGE. For tests that change a file between the two phases.
    pub after_hash: Option<&'a (dyn Fn() + Sync)>,
}

impl Default for DedupeOptions<'_> {
    fn default() -> Self {
        Self {
            dry_run: false,
            min_size: DEFAULT_MIN_SIZE,
            progress: &NoProgress,
            after_hash: None,
        }
    }
}

/// The default `min_size`: 4096 bytes, one block on most filesystems (the `cowtree dedupe`
/// command uses the block size of the filesystem it works on). Smaller files cannot share a
/// whole block (and btrfs often stores them inline, where nothing can be shared). Most of a
/// typical source tree's files are between one block and 64 KiB: leaving them out left three
/// plain copies of a source directory at 2.33x one copy after dedupe, against 1.23x with
/// them (1,125 files in 0.1 s). Each file costs the kernel a locked comparison and a
/// filesystem transaction, so a larger `min_size` trades space for time on big trees.
pub const DEFAULT_MIN_SIZE: u64 = 4096;

/// A file that was not deduplicated, and why.
#[derive(Debug, Clone, Serialize)]
pub struct Skipped {
    /// The file.
    #[serde(serialize_with = "crate::path_lossy")]
    pub path: PathBuf,
    /// Why.
    pub reason: String,
}

/// What `dedupe` did (or, with `dry_run`, would do).
#[derive(Debug, Clone, Default, Serialize)]
pub struct DedupeReport {
    /// Nothing was changed.
    pub dry_run: bool,
    /// Regular files of at least `min_size` bytes that the walk found (hardlinks once).
    pub files_scanned: u64,
    /// Files with the same size as at least one other (the ones hashed or matched by layout).
    pub candidates: u64,
    /// Bytes read to hash.
    pub bytes_hashed: u64,
    /// Sets of two or more identical files.
    pub groups: u64,
    /// Files now sharing all their data with their group's source (dry run: would be).
    pub files_deduped: u64,
    /// Bytes the kernel deduplicated (dry run: would be asked to).
    pub bytes_deduped: u64,
    /// Files that already shared all their data with their group's source: left alone.
    pub already_shared_files: u64,
    /// Their bytes.
    pub already_shared_bytes: u64,
    /// Files not deduplicated, with the reason.
    pub skipped: Vec<Skipped>,
    /// `du` unique physical bytes of the paths before.
    pub unique_physical_before: Option<u64>,
    /// `du` unique physical bytes after (the same as before in a dry run or when nothing
    /// changed).
    pub unique_physical_after: Option<u64>,
    /// Before minus after: the disk space given back, as `du` measures it.
    pub reclaimed: Option<i64>,
    /// Free space of the filesystem after minus before (`statvfs`), after a `syncfs`; other
    /// writers on the same filesystem make this noisy.
    pub df_freed: Option<i64>,
    /// Errors met on the way (each names its path).
    pub errors: Vec<String>,
}

/// Why `dedupe` refused to run; nothing was changed.
#[derive(Debug, thiserror::Error)]
pub enum DedupeError {
    /// A path could not be examined.
    #[error("{0}")]
    Io(#[from] io::Error),
    /// The paths are on different filesystems.
    #[error(
        "{a} and {b} are on different filesystems: deduplication shares blocks within one \
         filesystem only; run dedupe separately for each (nothing was changed)"
    )]
    CrossDevice {
        /// A path on one device.
        a: PathBuf,
        /// A path on another.
        b: PathBuf,
    },
    /// The filesystem cannot share data between files.
    #[error(
        "{path} is on {fs_type}, which cannot share data between files ({why}); nothing was \
         changed"
    )]
    Unsupported {
        /// The path.
        path: PathBuf,
        /// Its filesystem type.
        fs_type: &'static str,
        /// What told us.
        why: String,
    },
    /// This platform has no deduplication call (FIDEDUPERANGE is Linux's).
    #[error("{0}; nothing was changed")]
    Unavailable(cowtree_fs::sys::Unavailable),
    /// Windows: no call there compares and shares in one (see `dedupe_windows.rs`).
    #[cfg(windows)]
    #[error("dedupe needs FIDEDUPERANGE (Linux); not available on Windows (nothing was changed)")]
    Windows,
}
