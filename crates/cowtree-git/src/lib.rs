//! cowtree-git: a new git linked worktree made by reflinking a source worktree's files.
//!
//! [`add`] does what `git worktree add` does (registers a linked worktree of SRC's repository
//! at DST, checks out a commit or a branch, writes DST's index), with git's options and
//! refusals ([`AddOptions`], [`resolve`]), but takes each tracked file from SRC by reflink when
//! SRC's index proves, by git's own stat rules, that SRC's file holds the target commit's blob
//! ([`trust`]); only the others are written from the object database. DST's index carries the
//! stat data of DST's files, so the first `git status` in DST reads no file. Ignored files
//! that SRC's `.worktreeinclude` names, or that [`AddOptions::ignored`] asks for, are cloned
//! too.
//!
//! # Contract
//! - SRC's files, its index and its repository's objects are never written. The only writes
//!   outside DST are git's own registration files (`$GIT_COMMON_DIR/worktrees/<id>/`, see
//!   [`register`]), DST's missing parent directories and, with a new (or `-B` reset) branch,
//!   what `git branch` writes (the ref, its reflog, its tracking configuration).
//! - DST must not exist, or be an empty directory (as git). It is built in a staging
//!   directory beside it and renamed into place after its index and registration are
//!   written: it appears whole or not at all. On an error, or a signal handled through
//!   [`run::abort_all`], everything the run made is taken back: the staging directory, the
//!   registration, the branch it created (or moved with `-B`), the parents it created. A run
//!   killed at any point leaves a journal in its registration, from which the next run in the
//!   repository ([`register::clean_stale`]) or `cowtree gc` ([`run::clean_killed_runs`])
//!   takes it all back.
//! - Where the filesystems cannot reflink, files are copied and [`AddReport::fallback`] says
//!   why; with [`AddOptions::strict`] that is an error instead.
//! - Submodules are not handled: they are left as empty directories, as git leaves them.
//!   A sparse checkout in the worktree the command runs in is copied and applied as git
//!   applies it ([`sparse`]): entries it leaves out are skip-worktree and never written.
//! - A repository state cowtree does not make exactly as git would is made by `git worktree
//!   add` itself, and the report says why ([`facts`], [`handover`]).
//! - A file that git's checkout filters would change (`.gitattributes` `filter=`, `ident`,
//!   `working-tree-encoding`, CRLF line endings; see [`filters`]) is never cloned: it is
//!   written from the object database through gitoxide's filter pipeline.
//! - With [`AddOptions::sync`], once [`add`] returns the worktree, its index and git's
//!   registration of it survive a power loss.

//!
//! # Windows
//! The crate builds for `x86_64-pc-windows-gnu` and [`add`] makes the worktree Git for
//! Windows makes, per file (block clones on ReFS and Dev Drives, copies elsewhere), with
//! paths in git's files as Git for Windows writes them; trees NTFS cannot hold as git names
//! them go to `git worktree add` (`windows_names`). The pool (`pool`) and the snapshot way
//! (`by_snapshot`) are unix only; `--subvolume`, `--sync` and `working-tree-encoding` are
//! refused there. docs/git.md, "Windows", says what ran under Wine.

#![warn(missing_docs)]

mod add;
mod admin;
pub mod blob_hash;
pub mod branch;
pub mod build;
#[cfg(unix)]
pub mod by_snapshot;
pub mod cache_tree;
#[cfg(unix)]
pub mod clone;
/// One tracked file cloned from SRC on Windows (the same API as the unix one).
#[cfg(windows)]
#[path = "clone_windows.rs"]
pub mod clone;
pub mod conversion;
#[cfg(unix)]
pub mod cost;
pub mod donor;
pub mod error;
pub mod facts;
pub mod filters;
pub mod handover;
pub mod ignored;
pub mod index_file;
pub mod journal;
pub mod keep;
pub mod method;
pub mod options;
#[cfg(unix)]
pub mod pool;
#[cfg(windows)]
mod pool_windows;
mod post_checkout;
pub mod promisor;
pub mod refs;
pub mod register;
pub mod resolve;
pub mod run;
pub mod sizes;
pub mod sparse;
mod steps;
pub mod tree;
pub mod trust;
pub mod way;

pub(crate) mod portable;
#[cfg_attr(unix, allow(dead_code))]
mod windows_names;
pub use add::add;
pub use build::Made;
pub use error::{Error, Result};
pub use ignored::IgnoredReport;
pub use method::{Method, MethodChoice, PerFileReason};
pub use options::{AddCounts, AddOptions, AddReport, BranchChoice, HeadReport, Ignored, Track};
pub use run::{KilledRuns, abort_all, clean_killed_runs};

/// Runs git in `dir` for a unit test, away from the machine's and the user's configuration,
/// and returns its standard output; a failure fails the test.
#[cfg(all(test, unix))]
pub(crate) fn test_git(dir: &std::path::Path, args: &[&str]) -> String {
    let out = branch::git(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@t")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@t")
        .args(args)
        .output()
        .expect("run git");
    assert!(out.status.success(), "git {args:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}
