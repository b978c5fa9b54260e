//! [`add`] on Windows: every worktree is made by Git for Windows' own `git worktree add`
//! (`git.exe` found on `PATH`, as on unix), with cowtree's extras ([`crate::handover`]): the
//! ignored files that `.worktreeinclude` or `--ignored` select are cloned into it afterwards
//! (block clones on ReFS and Dev Drives, copies elsewhere). The result is Git for Windows'
//! worktree, whatever the repository's configuration (`core.autocrlf`, `core.symlinks`,
//! names that differ only in case, names Windows cannot hold): git decides each.
//!
//! cowtree's own way (the registration written here, its crash journal and `flock`s, the
//! staging directory renamed into place, the files reflinked from SRC) is not used on Windows
//! yet: its building blocks ([`crate::build`], [`crate::trust`], [`crate::conversion`],
//! [`crate::ignored`]) build and are tested there, the registration and its locks are not
//! ported. `--sync` is refused (flushing a volume needs an administrator there), as are
//! `--with-changes` and `--strict` (git can honour neither).

use crate::error::{Error, Result};
use crate::options::{AddOptions, AddReport};

/// Why every worktree is made by git on Windows (the report's `made_by_reason`).
pub const WINDOWS_REASON: &str =
    "Windows: cowtree's own registration and crash journal are not ported there yet";

/// Makes the worktree `opts` asks for with `git worktree add` (see the module doc).
pub fn add(opts: &AddOptions) -> Result<AddReport> {
    crate::options::check_options(opts)?;
    if opts.sync {
        return Err(Error::Handover {
            why: WINDOWS_REASON.to_owned(),
            what: "--sync (flushing a volume on Windows needs an administrator)",
        });
    }
    crate::handover::run(opts, WINDOWS_REASON)
}
