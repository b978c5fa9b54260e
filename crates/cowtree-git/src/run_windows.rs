//! What a killed run left, on Windows: cowtree makes no registration, staging directory or
//! journal of its own there ([`crate::add`] hands every worktree to `git worktree add`), so
//! there is never anything to take back.

use std::path::Path;

use crate::error::Result;

/// What [`clean_killed_runs`] found (see the unix one).
#[derive(Debug, Default, Clone)]
pub struct KilledRuns {
    /// Records of killed runs removed.
    pub records: u64,
    /// What was taken back or finished in their repositories.
    pub cleaned: Vec<String>,
    /// Killed runs whose staging could not be removed.
    pub left: usize,
}

/// Nothing to take back on Windows (no run of cowtree's own is in progress there).
pub fn abort_all() -> Vec<String> {
    Vec::new()
}

/// Nothing to clean on Windows: no run there leaves a record.
pub fn clean_killed_runs(_registry: &Path) -> Result<KilledRuns> {
    Ok(KilledRuns::default())
}
