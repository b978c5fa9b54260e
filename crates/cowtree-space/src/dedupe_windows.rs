//! `dedupe` on Windows: refused, in one line, before any path is looked at.
//!
//! cowtree's dedupe hands the byte comparison to the kernel (Linux's FIDEDUPERANGE locks both
//! files and compares them itself, so a file changed after hashing is never altered). Windows
//! has no such call: `FSCTL_DUPLICATE_EXTENTS_TO_FILE` (ReFS, Dev Drives) clones ranges
//! without comparing them, so deduplicating with it would need cowtree to compare the bytes
//! and keep writers out itself. That is not built; [`dedupe`] says so instead of pretending.

use std::path::PathBuf;

pub use crate::dedupe_api::{
    DEFAULT_MIN_SIZE, DedupeError, DedupeOptions, DedupeReport, NoProgress, Progress, Skipped,
};

/// Refuses with [`DedupeError::Windows`] ("dedupe needs FIDEDUPERANGE (Linux); not available
/// on Windows"), even for a dry run, before anything is opened.
pub fn dedupe(_paths: &[PathBuf], _opts: &DedupeOptions<'_>) -> Result<DedupeReport, DedupeError> {
    Err(DedupeError::Windows)
}
