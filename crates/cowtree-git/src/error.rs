//! Errors of `worktree add`: each names the path, branch or revision it is about.

use std::io;
use std::path::PathBuf;

use cowtree_fs::UnsupportedCause;

/// A boxed error from gitoxide, kept as the source of an [`Error::Git`].
pub type GitError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why a worktree could not be added. Nothing is left at the destination when one is returned.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The source is not inside a git worktree.
    #[error("{path}: not a git worktree ({source})")]
    NotAWorktree {
        /// The source path as given.
        path: PathBuf,
        /// What discovery reported.
        source: GitError,
    },
    /// `--with-changes` run in a bare repository: there are no changes of its own to carry.
    #[error("{path}: a bare repository has no worktree whose changes --with-changes could carry")]
    Bare {
        /// The repository's git directory.
        path: PathBuf,
    },
    /// The source's HEAD names a branch without commits.
    #[error("{path}: HEAD has no commit yet (an unborn branch); name a COMMIT-ISH")]
    Unborn {
        /// The source worktree.
        path: PathBuf,
    },
    /// The destination exists and is not an empty directory (git's words: the path as given).
    #[error("'{given}' already exists")]
    DstExists {
        /// The destination, resolved.
        path: PathBuf,
        /// As given.
        given: String,
    },
    /// The destination has no usable parent directory or no final name.
    #[error("{0}: the parent directory must exist and the path must end in a name")]
    BadDst(PathBuf),
    /// `-b NAME` (or `--orphan`) names a branch that exists.
    #[error("a branch named '{0}' already exists (-B resets it)")]
    BranchExists(String),
    /// `--orphan` names a branch that exists: refused by `git worktree add` itself (not by the
    /// `git branch` it runs), as git words it.
    #[error("a branch named '{0}' already exists")]
    OrphanBranchExists(String),
    /// The branch to check out (or, `reset`, to reset with `-B`) is checked out in another
    /// worktree. `-f` checks it out anyway, but never resets it: git's `branch --force`
    /// refuses a branch that is checked out.
    #[error(
        "'{name}' is already used by worktree at '{worktree}'{}",
        if *reset { "" } else { " (-f checks it out anyway)" }
    )]
    BranchCheckedOut {
        /// The branch.
        name: String,
        /// The worktree that has it.
        worktree: PathBuf,
        /// It was to be reset (`-B`).
        reset: bool,
    },
    /// Not a valid branch name.
    #[error("'{name}' is not a valid branch name ({source})")]
    BadBranchName {
        /// The name as given.
        name: String,
        /// What validation reported.
        source: GitError,
    },
    /// `--strict`: a file would have been copied instead of cloned.
    #[error("{path}: cannot reflink ({cause}); --strict refuses to copy")]
    Strict {
        /// The file that could not be cloned.
        path: PathBuf,
        /// Why.
        cause: &'static str,
    },
    /// A blob of the target is in no promisor remote that could be reached (partial clone).
    #[error("could not fetch {id} from promisor remote")]
    PromisorFetch {
        /// The first blob missing.
        id: gix::ObjectId,
    },
    /// `--sparse` names something `git sparse-checkout set --cone` refuses.
    #[error("--sparse {dir}: {message}")]
    SparseDir {
        /// The directory as given.
        dir: String,
        /// git's message.
        message: String,
    },
    /// The worktree is to be made by `git worktree add` itself ([`crate::handover`]), and an
    /// option asks for what git cannot do.
    #[error("{what} cannot be honoured: this worktree is made by `git worktree add` ({why})")]
    Handover {
        /// Why git makes it.
        why: String,
        /// The option, and why git cannot honour it.
        what: &'static str,
    },
    /// `git worktree add`, run to make the worktree ([`crate::handover`]), failed: its
    /// message (already passed on) and exit status are the result.
    #[error("{message} (`git worktree add` ran because of {why})")]
    GitRefused {
        /// git's exit status.
        status: i32,
        /// git's last line of error output.
        message: String,
        /// Why git made it.
        why: String,
    },
    /// git's checkout of a file fails (and so would `git worktree add`): a required filter
    /// driver failed, or an attribute git refuses.
    #[error("{path}: {why}; git's checkout fails on it too")]
    Checkout {
        /// The file (repository-relative).
        path: PathBuf,
        /// What fails.
        why: String,
    },
    /// `--with-changes` with a COMMIT-ISH other than SRC's HEAD: SRC's changes are relative to
    /// its HEAD, and carrying them onto another commit would be a merge, which git's own
    /// `worktree add` does not do either.
    #[error(
        "{path}: --with-changes carries SRC's changes only onto SRC's HEAD ({head}), \
         but the new worktree would check out {commit}; drop --with-changes, or commit or \
         stash the changes and apply them in the new worktree"
    )]
    WithChangesOtherCommit {
        /// The source worktree.
        path: PathBuf,
        /// SRC's HEAD commit.
        head: String,
        /// The commit the new worktree would check out.
        commit: String,
    },
    /// `--with-changes` while SRC's index holds an unresolved conflict (a merge in progress),
    /// which a new worktree cannot carry.
    #[error(
        "{path}: unresolved conflict in SRC's index; --with-changes cannot carry a merge \
         in progress (resolve it first, or drop --with-changes)"
    )]
    Conflicted {
        /// The conflicted file (SRC's worktree path).
        path: PathBuf,
    },
    /// `-b`/`-B`/`--detach`/`--orphan` and the others: options git refuses together.
    #[error("options '{0}' and '{1}' cannot be used together")]
    Incompatible(&'static str, &'static str),
    /// `--orphan` with a COMMIT-ISH.
    #[error("option '--orphan' and commit-ish cannot be used together")]
    OrphanWithCommit,
    /// `--track`/`--no-track` without a branch to create.
    #[error("--[no-]track can only be used if a new branch is created")]
    TrackWithoutNewBranch,
    /// `--guess-remote` in a repository with remotes but no branch and no remote-tracking
    /// branch (git's refusal: probably not fetched yet).
    #[error(
        "No local or remote refs exist despite at least one remote present, stopping; use \
         'add -f' to override or fetch a remote first"
    )]
    NoRefsWithRemote,
    /// COMMIT-ISH (or HEAD) names no commit.
    #[error("invalid reference: {spec} (in {repo})")]
    InvalidReference {
        /// The revision as given.
        spec: String,
        /// The source worktree.
        repo: PathBuf,
    },
    /// DST is registered as a worktree whose directory is missing (git's words, on its two
    /// lines).
    #[error(
        "'{given}' is a missing but {} worktree;\nuse 'add -f{}' to override, or {}'prune' or \
         'remove' to clear",
        if *locked { "locked" } else { "already registered" },
        if *locked { " -f" } else { "" },
        if *locked { "'unlock' and " } else { "" }
    )]
    RegisteredMissing {
        /// DST.
        path: PathBuf,
        /// DST as given.
        given: String,
        /// Whether that registration is locked (two `-f` needed).
        locked: bool,
    },
    /// Another `cowtree git worktree add` is making a worktree at DST right now.
    #[error("{path}: another cowtree git worktree add is making this worktree right now")]
    BeingAdded {
        /// DST.
        path: PathBuf,
    },
    /// The `git branch` that makes (or resets) the new branch failed, as `git worktree add`'s
    /// own does (its status then: 255); its message.
    #[error("{command}: {message}")]
    BranchFailed {
        /// The command.
        command: String,
        /// git's reason.
        message: String,
    },
    /// A git command this one runs failed; its message.
    #[error("{command}: {message}")]
    GitFailed {
        /// The command.
        command: String,
        /// git's reason.
        message: String,
    },
    /// Stopped by a signal ([`crate::run::abort_all`]); what the run made was taken back.
    #[error("interrupted; what it had made was removed")]
    Interrupted,
    /// The pool of spare worktrees ([`crate::pool`]) cannot do what was asked.
    #[error("{path}: {message}")]
    Pool {
        /// The repository or the pool's file concerned.
        path: PathBuf,
        /// What is wrong, and what to do.
        message: String,
    },
    /// A filesystem operation failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The path it was done to.
        path: PathBuf,
        /// The system error.
        source: io::Error,
    },
    /// gitoxide failed to read or write repository data.
    #[error("{what} ({path}): {source}")]
    Git {
        /// What was being done.
        what: &'static str,
        /// The repository, object or file concerned.
        path: PathBuf,
        /// The gitoxide error.
        source: GitError,
    },
}

impl Error {
    pub(crate) fn io(
        op: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { op, path, source }
    }

    pub(crate) fn git<E: Into<GitError>>(
        what: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(E) -> Error {
        let path = path.into();
        move |e| Error::Git {
            what,
            path,
            source: e.into(),
        }
    }

    pub(crate) fn strict(path: PathBuf, cause: UnsupportedCause) -> Error {
        Error::Strict {
            path,
            cause: cause.describe(),
        }
    }
}

/// The result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_branch_checked_out_elsewhere_offers_force_only_where_force_helps() {
        let e = |reset| {
            Error::BranchCheckedOut {
                name: "main".into(),
                worktree: PathBuf::from("/r"),
                reset,
            }
            .to_string()
        };
        assert_eq!(
            e(false),
            "'main' is already used by worktree at '/r' (-f checks it out anyway)"
        );
        // `-B` of a checked-out branch: git's `branch --force` refuses it, -f or not.
        assert_eq!(e(true), "'main' is already used by worktree at '/r'");
    }
}
