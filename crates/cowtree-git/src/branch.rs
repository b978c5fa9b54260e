//! The branch a new worktree gets, made by git's own `branch` command as `git worktree add`
//! makes it (`git branch [--force] [--quiet] NAME START [--track[=MODE]|--no-track]`), so that
//! tracking (`branch.autoSetupMerge`, `--track`), the reflog and git's refusals are git's.

use std::path::Path;
use std::process::{Command, Stdio};

use crate::Track;
use crate::error::{Error, Result};
use crate::resolve::NewBranch;

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

/// Creates (or with `-B` resets) `b` in the repository of the worktree `dir`. What git prints
/// (e.g. "branch 'x' set up to track 'origin/x'.") goes to `said`, never to stdout.
pub fn make(dir: &Path, b: &NewBranch, track: &Track, quiet: bool) -> Result<Vec<String>> {
    let mut cmd = git(dir);
    cmd.arg("branch");
    if b.reset {
        cmd.arg("--force");
    }
    if quiet {
        cmd.arg("--quiet");
    }
    cmd.arg(&b.name).arg(&b.start);
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
        return Err(Error::GitFailed {
            command: format!("git branch {} {}", b.name, b.start),
            message,
        });
    }
    Ok(said)
}
