//! Where a new worktree's branch starts when Claude Code's `worktree.baseRef` is `"fresh"`:
//! origin's default branch, kept current as Claude Code keeps it for the worktrees it makes
//! itself (code.claude.com/docs/en/worktrees, "Choose the base branch"): when the repository
//! has not been fetched in the last 24 hours, fetch the default branch, for at most five
//! seconds, and use the cached ref if that fails; with no remote `origin`, or no `origin/HEAD`
//! cached that can be fetched, the local `HEAD`.
//!
//! When the last fetch was is told by the modification time of the worktree's `FETCH_HEAD`,
//! which every fetch rewrites. When `origin/HEAD` is not cached, `git remote set-head origin
//! --auto` asks the remote for its default branch and records it (as `git clone` does), and
//! that branch is fetched. The network commands run with no terminal prompt, in a process group
//! of their own that is killed whole at the deadline (so a prompt on Claude Code's terminal, or
//! a remote that does not answer, cannot hold the hook), and none of their output reaches
//! stdout, which is Claude Code's.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime};

/// A repository fetched longer ago than this is fetched before a fresh branch is made.
pub const STALE_AFTER: Duration = Duration::from_secs(24 * 60 * 60);

/// The most the network may take, for one hook run.
pub const NETWORK_CAP: Duration = Duration::from_secs(5);

/// Where the branch starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Start {
    /// origin's default branch: its remote-tracking branch (`origin/main`) and the commit it
    /// was at when read (the branch is made at that commit, whatever a concurrent fetch does).
    Remote { name: String, commit: String },
    /// The local `HEAD` of the worktree the hook runs for.
    Head,
}

/// The start of a fresh branch, and what the user should know about how it was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fresh {
    pub start: Start,
    /// One line each, for stderr.
    pub notes: Vec<String>,
}

/// Whether to go to the network before branching: when `origin/HEAD` is not `cached`, or the
/// last fetch (`last`) is unknown or at least [`STALE_AFTER`] old. A last fetch in the future
/// (a clock set back) counts as recent.
pub fn refresh_due(cached: bool, last: Option<SystemTime>, now: SystemTime) -> bool {
    !cached || last.is_none_or(|t| now.duration_since(t).is_ok_and(|age| age >= STALE_AFTER))
}

/// The start of a fresh branch in the repository of the worktree at `dir`.
pub fn fresh(dir: &Path) -> Fresh {
    let mut notes = Vec::new();
    let head = |notes: Vec<String>| Fresh {
        start: Start::Head,
        notes,
    };
    if !has_origin(dir) {
        notes.push(
            "there is no remote \"origin\": the branch starts at HEAD, as Claude Code's own \
             worktrees do"
                .into(),
        );
        return head(notes);
    }
    let cached = origin_head(dir);
    if refresh_due(cached.is_some(), last_fetch(dir), SystemTime::now()) {
        let deadline = Instant::now() + NETWORK_CAP;
        match &cached {
            Some(branch) => {
                if let Err(why) = fetch(dir, branch, deadline) {
                    notes.push(format!(
                        "fetching {} from origin failed ({why}): the branch starts at the cached \
                         {}, as Claude Code's own worktrees do",
                        short(branch),
                        short(branch)
                    ));
                }
            }
            None => {
                let learned = network(dir, &["remote", "set-head", "origin", "--auto"], deadline)
                    .and_then(|()| {
                        origin_head(dir).ok_or_else(|| "origin names no default branch".into())
                    });
                match learned {
                    Ok(branch) => {
                        if let Err(why) = fetch(dir, &branch, deadline) {
                            notes.push(format!(
                                "fetching {} from origin failed ({why})",
                                short(&branch)
                            ));
                        }
                    }
                    Err(why) => {
                        notes.push(format!(
                            "origin/HEAD is not known here and asking origin for it failed \
                             ({why}): the branch starts at HEAD, as Claude Code's own worktrees do"
                        ));
                        return head(notes);
                    }
                }
            }
        }
    }
    let Some(branch) = origin_head(dir) else {
        notes.push(
            "origin/HEAD is not known here: the branch starts at HEAD, as Claude Code's own \
             worktrees do"
                .into(),
        );
        return head(notes);
    };
    match commit_of(dir, &branch) {
        Some(commit) => Fresh {
            start: Start::Remote {
                name: short(&branch).to_owned(),
                commit,
            },
            notes,
        },
        None => {
            notes.push(format!(
                "origin/HEAD names {}, which is not here: the branch starts at HEAD, as Claude \
                 Code's own worktrees do",
                short(&branch)
            ));
            head(notes)
        }
    }
}

/// `refs/remotes/origin/main` as `origin/main`.
fn short(full: &str) -> &str {
    full.strip_prefix("refs/remotes/").unwrap_or(full)
}

/// Whether the repository has a remote named `origin`.
fn has_origin(dir: &Path) -> bool {
    cowtree_git::branch::git(dir)
        .arg("remote")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .is_some_and(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .any(|l| l == "origin")
        })
}

/// The branch `refs/remotes/origin/HEAD` points to (`refs/remotes/origin/main`), if cached.
fn origin_head(dir: &Path) -> Option<String> {
    let out = cowtree_git::branch::git(dir)
        .args(["symbolic-ref", "--quiet", "refs/remotes/origin/HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())?;
    let s = String::from_utf8(out.stdout).ok()?;
    Some(s.trim_end_matches('\n').to_owned()).filter(|s| !s.is_empty())
}

/// The commit `reference` is at, in full hex.
fn commit_of(dir: &Path, reference: &str) -> Option<String> {
    let out = cowtree_git::branch::git(dir)
        .args(["rev-parse", "--verify", "--quiet"])
        .arg(format!("{reference}^{{commit}}"))
        .output()
        .ok()
        .filter(|o| o.status.success())?;
    let s = String::from_utf8(out.stdout).ok()?;
    Some(s.trim_end_matches('\n').to_owned()).filter(|s| !s.is_empty())
}

/// When the worktree at `dir` last fetched: its `FETCH_HEAD`'s modification time.
fn last_fetch(dir: &Path) -> Option<SystemTime> {
    let out = cowtree_git::branch::git(dir)
        .args(["rev-parse", "--git-path", "FETCH_HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())?;
    let s = String::from_utf8(out.stdout).ok()?;
    let p = PathBuf::from(s.trim_end_matches('\n'));
    dir.join(p).metadata().ok()?.modified().ok()
}

/// Fetches origin's `branch` (`refs/remotes/origin/main`) into it, by the deadline.
fn fetch(dir: &Path, branch: &str, deadline: Instant) -> Result<(), String> {
    let Some(name) = branch.strip_prefix("refs/remotes/origin/") else {
        return Err(format!("{branch} is not a branch of origin"));
    };
    let refspec = format!("+refs/heads/{name}:{branch}");
    network(
        dir,
        &["fetch", "--quiet", "--no-tags", "origin", &refspec],
        deadline,
    )
}

/// Runs `git ARGS` in `dir`, which may use the network, and waits for it until `deadline`;
/// then kills its process group. Err: why it failed, in a few words.
fn network(dir: &Path, args: &[&str], deadline: Instant) -> Result<(), String> {
    let mut cmd = cowtree_git::branch::git(dir);
    let mut child = crate::os::own_group(&mut cmd)
        .args(args)
        .env("GIT_TERMINAL_PROMPT", "0")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run git: {e}"))?;
    // Read on a thread: the pipe may be held open by a helper git started (ssh), and the wait
    // below must keep its deadline whatever the helper does.
    let (tx, rx) = mpsc::channel();
    if let Some(mut err) = child.stderr.take() {
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = err.read_to_string(&mut text);
            let _ = tx.send(text);
        });
    }
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => return Ok(()),
            Ok(Some(status)) => {
                let text = rx
                    .recv_timeout(Duration::from_millis(200))
                    .unwrap_or_default();
                return Err(crate::cmd::git::git_message(&text)
                    .unwrap_or_else(|| format!("git {} exited with {status}", args[0])));
            }
            Ok(None) if Instant::now() >= deadline => {
                crate::os::kill_group(&mut child);
                let _ = child.wait();
                return Err(format!("no answer within {} s", NETWORK_CAP.as_secs()));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => return Err(format!("waiting for git: {e}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_network_is_used_only_without_origin_head_or_after_a_day_without_a_fetch() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(10 * 86_400);
        let ago = |secs: u64| Some(now - Duration::from_secs(secs));
        // (origin/HEAD cached, last fetch) -> go to the network
        for (cached, last, due) in [
            (true, ago(60), false),
            (true, ago(86_399), false),
            (true, ago(86_400), true),
            (true, ago(3 * 86_400), true),
            (true, None, true),
            (true, Some(now + Duration::from_secs(3_600)), false),
            (false, ago(60), true),
            (false, None, true),
        ] {
            assert_eq!(refresh_due(cached, last, now), due, "{cached} {last:?}");
        }
    }

    #[test]
    fn short_names_drop_refs_remotes() {
        assert_eq!(short("refs/remotes/origin/main"), "origin/main");
        assert_eq!(short("refs/heads/x"), "refs/heads/x");
    }
}
