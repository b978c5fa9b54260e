//! Making a worktree: the one public way to check a snapshot out as a worktree, doing exactly
//! what `cowtree checkout` does.
//!
//! [`cowtree_store::checkout`] is the raw materializer underneath: it builds the tree beside
//! its destination, registers it (with its root's device and inode) and renames it into place.
//! [`checkout`] adds what makes the tree a worktree the other commands work with at full
//! speed: the store marker on its root (so that commands run inside it find its store with no
//! flag) and a stat cache of what was written (so that the first status reads no file).

use std::path::Path;

use cowtree_fs::Progress;
use cowtree_store::checkout::{CheckoutOptions, CheckoutReport, checkout_with_progress};
use cowtree_store::{Hash, Store, discover};

use crate::error::{Error, Result};
use crate::registry::Worktree;

/// A worktree made by [`checkout`].
#[derive(Debug)]
pub struct CheckedOut {
    /// What the checkout wrote.
    pub report: CheckoutReport,
    /// The worktree, registered; `None` when only its stat cache could not be recorded (see
    /// [`CheckedOut::cache_error`]).
    pub worktree: Option<Worktree>,
    /// Why no stat cache was recorded. The worktree is complete and registered either way;
    /// without the cache its first status reads every file once.
    pub cache_error: Option<Error>,
    /// Why the store marker could not be set (the filesystem keeps no user extended
    /// attributes, for instance). The worktree is then found through the stores this user has
    /// used ([`discover::known_stores`]).
    pub marker_error: Option<std::io::Error>,
}

/// Checks out snapshot `id` of `store` as a new worktree at `dst` (absent, or an empty
/// directory), counting into `progress` as [`checkout_with_progress`] does. `warn` receives
/// warnings (the store on another filesystem) before work starts.
///
/// The tree is whole or absent when this returns an error; once the tree is in place, failing
/// to set the marker or to record the stat cache is reported in [`CheckedOut`], not as an
/// error.
pub fn checkout(
    store: &Store,
    id: &Hash,
    dst: &Path,
    opts: CheckoutOptions,
    warn: &dyn Fn(&str),
    progress: &Progress,
) -> Result<CheckedOut> {
    let report = checkout_with_progress(store, id, dst, opts, warn, progress)?;
    // Before the stat cache: setting the marker changes the root directory's ctime.
    let marker_error = discover::mark_worktree(&report.path, store.root()).err();
    let (worktree, cache_error) = match crate::status::adopt(store, &report.path, id) {
        Ok(wt) => (Some(wt), None),
        Err(e) => (None, Some(e)),
    };
    Ok(CheckedOut {
        report,
        worktree,
        cache_error,
        marker_error,
    })
}
