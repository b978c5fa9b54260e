//! The branch a new worktree gets, made by git's own `branch` command as `git worktree add`
//! makes it (`git branch [--force] [--quiet] NAME START [--track[=MODE]|--no-track]`), so that
//! tracking (`branch.autoSetupMerge`, `--track`), the reflog and git's refusals are git's.

use std::path::Path;
use std::process::{Command, Stdio};

use gix::ObjectId;

use crate::error::{Error, Result};
use crate::options::Track;

/// A branch `git branch` creates (or, for `-B`, resets) before the worktree is made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewBranch {
    /// Its name.
    pub name: String,
    /// The start point as git's `branch` command gets it (what the user named, a
    /// remote-tracking branch git found for the name, or `HEAD`), so that git sets up tracking
    /// (`branch.autoSetupMerge`, `--track`) and writes its reflog as `git worktree add` does.
    pub start: String,
    /// `-B`: reset the branch if it exists.
    pub reset: bool,
    /// Where the branch was before this run (`-B` of an existing branch), to put it back.
    pub previous: Option<ObjectId>,
}

/// `git` run in `dir`, with a clean environment for it: no `GIT_DIR`, `GIT_WORK_TREE` or
/// `GIT_INDEX_FILE` of the caller's (SRC is found from `dir`, as `add` found it).
pub fn git(dir: &Path) -> Command {
    let mut c = Command::new("git");
    c.current_dir(dir)
        .env_remove("GIT_DIR")
        .env_remove("GIT_WORK_TREE")
        .env_remove("GIT_INDEX_FILE")
        .stdin(Stdio::null());
    c
}

/// The start point to give `git branch` for `b`: the name as given (`HEAD` without one,
/// `@{-1}` for `-`), as `git worktree add` gives it, so that tracking and the branch's reflog
/// (`branch: Created from HEAD`) are git's. A start point that moved meanwhile (`HEAD` while
/// someone commits) is caught after `git branch` ran: the branch must be at the commit
/// checked out, else the run fails and takes the branch back ([`crate::add`]).
pub fn start_point(b: &NewBranch) -> String {
    b.start.clone()
}

/// Creates (or with `-B` resets) `b` at `start` (see [`start_point`]) in the repository of
/// the worktree `dir`. What git prints (e.g. "branch 'x' set up to track 'origin/x'.") goes to
/// `said`, never to stdout.
pub fn make(
    dir: &Path,
    b: &NewBranch,
    start: &str,
    track: &Track,
    quiet: bool,
) -> Result<Vec<String>> {
    let mut cmd = git(dir);
    cmd.arg("branch");
    if b.reset {
        cmd.arg("--force");
    }
    if quiet {
        cmd.arg("--quiet");
    }
    cmd.arg(&b.name).arg(start);
    match track {
        Track::Default => {}
        Track::Track => {
            cmd.arg("--track");
        }
        Track::NoTrack => {
            cmd.arg("--no-track");
        }
    }
    let out = cmd
        .output()
        .map_err(|e| Error::io("run git branch in", dir)(e))?;
    let mut said: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .chain(String::from_utf8_lossy(&out.stderr).lines())
        .filter(|l| !l.trim().is_empty())
        .map(str::to_owned)
        .collect();
    if !out.status.success() {
        let message = said
            .iter()
            .find_map(|l| {
                l.strip_prefix("fatal: ")
                    .or_else(|| l.strip_prefix("error: "))
            })
            .map(str::to_owned)
            .or_else(|| said.pop())
            .unwrap_or_else(|| format!("exited with {}", out.status));
        return Err(Error::BranchFailed {
            command: format!("git branch {} {start}", b.name),
            message,
        });
    }
    Ok(said)
}
