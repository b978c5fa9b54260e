//! The CLI error for an error of `cowtree git worktree` (cowtree-git's [`cowtree_git::Error`]):
//! the exit status git itself exits with for the same refusal, a kind and a path. Used by
//! `git worktree add`, its `pool`, the Claude Code hook and gc.

use crate::exit::{CliError, Kind};

/// Exit code when `--strict` refused a fallback.
const EXIT_STRICT: u8 = 3;

/// The exit status of a `die()` in git: what `git worktree add` exits with when it refuses.
pub(crate) const GIT_DIES: u8 = 128;
/// What `git worktree add` exits with when the `git branch` it runs fails (an invalid name, a
/// branch that exists): the child's failure, as git reports it.
const GIT_BRANCH_FAILED: u8 = 255;

/// The CLI error for a library error: exit 3 for --strict; git's own status (128, or 255 when
/// its `git branch` fails) for a refusal `git worktree add` makes too; else 1. Its kind and
/// path.
pub fn git_error(e: cowtree_git::Error) -> CliError {
    use cowtree_git::Error as E;
    let msg = e.to_string();
    match e {
        E::Strict { path, .. } => CliError::with_code(msg, EXIT_STRICT).path(path),
        E::DstExists { path, .. } => CliError::with_code(msg, GIT_DIES)
            .kind(Kind::Exists)
            .path(path),
        E::BadDst(p) | E::Bare { path: p } | E::Unborn { path: p } => {
            CliError::new(msg).kind(Kind::Refused).path(p)
        }
        E::NotAWorktree { path, .. } => CliError::new(msg).kind(Kind::NotFound).path(path),
        E::InvalidReference { .. } => CliError::with_code(msg, GIT_DIES).kind(Kind::NotFound),
        E::RegisteredMissing { path, .. } => CliError::with_code(msg, GIT_DIES)
            .kind(Kind::Refused)
            .path(path),
        E::BeingAdded { path } => CliError::new(msg).kind(Kind::Refused).path(path),
        E::BranchExists(_) | E::BadBranchName { .. } | E::BranchFailed { .. } => {
            CliError::with_code(msg, GIT_BRANCH_FAILED).kind(Kind::Refused)
        }
        E::BranchCheckedOut { .. }
        | E::OrphanBranchExists(_)
        | E::Incompatible(..)
        | E::OrphanWithCommit
        | E::TrackWithoutNewBranch
        | E::NoRefsWithRemote => CliError::with_code(msg, GIT_DIES).kind(Kind::Refused),
        E::GitFailed { .. } => CliError::new(msg).kind(Kind::Refused),
        E::SparseDir { .. } => CliError::with_code(msg, 2).kind(Kind::Usage),
        // git dies with 128 when no promisor remote gives the blob.
        E::PromisorFetch { .. } => CliError::with_code(msg, 128).kind(Kind::Refused),
        E::WithChangesOtherCommit { path, .. } | E::Conflicted { path } => {
            CliError::new(msg).kind(Kind::Refused).path(path)
        }
        E::Checkout { path, .. } | E::Pool { path, .. } => {
            CliError::new(msg).kind(Kind::Refused).path(path)
        }
        E::Io { path, .. } => CliError::new(msg).kind(Kind::Io).path(path),
        E::Interrupted => CliError::with_code(msg, 130).kind(Kind::Interrupted),
        E::Handover { what, .. } if what.starts_with("--strict") => {
            CliError::with_code(msg, EXIT_STRICT).kind(Kind::Refused)
        }
        E::Handover { .. } => CliError::new(msg).kind(Kind::Refused),
        // git's own refusal: its exit status (git's message is already on stderr).
        E::GitRefused { status, .. } => CliError::with_code(
            msg,
            u8::try_from(status).ok().filter(|c| *c != 0).unwrap_or(1),
        )
        .kind(Kind::Refused),
        E::Git { path, .. } => CliError::new(msg).path(path),
    }
}
