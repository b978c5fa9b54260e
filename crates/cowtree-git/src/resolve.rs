//! What `git worktree add` checks out, decided as git decides it (git's `builtin/worktree.c`,
//! `add` and `add_worktree`) before anything is written: which options go together, the branch
//! to create, reset or check out, the commit, and the refusals (an invalid reference, a branch
//! checked out in another worktree).

use std::ffi::OsStr;
use std::path::Path;

use gix::ObjectId;

use crate::branch::NewBranch;
use crate::error::{Error, Result};
use crate::options::{AddOptions, BranchChoice, HeadReport, Track};
use crate::refs::Refs;

/// What the new worktree gets.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The commit checked out; `None` for a new unborn branch (`--orphan`).
    pub commit: Option<ObjectId>,
    /// The line of the worktree's `HEAD` file (`ref: refs/heads/NAME` or a commit id).
    pub head_line: String,
    /// HEAD, as reported.
    pub head: HeadReport,
    /// The branch to create first, if any.
    pub new_branch: Option<NewBranch>,
    /// What git says on the way (`No possible source branch, inferring '--orphan'`).
    pub notes: Vec<String>,
}

/// `refs/heads/NAME` when NAME is a valid branch name (as git's `check_branch_ref`).
fn branch_refname(name: &str) -> Option<String> {
    if name.starts_with('-') || name == "HEAD" {
        return None;
    }
    let full = format!("refs/heads/{name}");
    gix::refs::FullName::try_from(full.as_str()).ok()?;
    Some(full)
}

/// Refuses a name git's `branch` would refuse.
pub fn check_branch_name(name: &str) -> Result<String> {
    branch_refname(name).ok_or_else(|| Error::BadBranchName {
        name: name.to_owned(),
        source: "not a valid branch name".into(),
    })
}

/// The commit `refs/heads/NAME` points to, if it exists.
pub fn branch_tip(refs: &Refs<'_>, name: &str) -> Result<Option<ObjectId>> {
    let Some(full) = branch_refname(name) else {
        return Ok(None);
    };
    refs.branch_tip(&full)
}

/// The branch name `spec` stands for, when it names an existing local branch (`@{-1}`
/// expanded, as git expands it for `worktree add ... -`).
fn existing_branch(refs: &Refs<'_>, spec: &str) -> Result<Option<(String, ObjectId)>> {
    let name = refs
        .previous_branch(spec)
        .unwrap_or_else(|| spec.to_owned());
    Ok(branch_tip(refs, &name)?.map(|tip| (name, tip)))
}

/// The remote-tracking branch `refs/remotes/R/NAME` when exactly one remote R has one for
/// `name` (or several do and `checkout.defaultRemote` names one of them): git's
/// `unique_tracking_name`, with each remote's default fetch refspec.
fn unique_tracking_name(repo: &gix::Repository, refs: &Refs<'_>, name: &str) -> Option<String> {
    branch_refname(name)?;
    let found: Vec<(String, String)> = repo
        .remote_names()
        .into_iter()
        .filter_map(|r| {
            let full = format!("refs/remotes/{r}/{name}");
            refs.exists(&full).then(|| (r.to_string(), full))
        })
        .collect();
    match found.len() {
        0 => None,
        1 => Some(found[0].1.clone()),
        _ => {
            let default = repo
                .config_snapshot()
                .string("checkout.defaultRemote")
                .map(|s| s.to_string())?;
            found
                .into_iter()
                .find(|(r, _)| *r == default)
                .map(|(_, full)| full)
        }
    }
}

/// git's `can_use_local_refs`: HEAD names a commit, or some branch exists.
fn can_use_local_refs(refs: &Refs<'_>) -> bool {
    refs.head_commit().is_some() || refs.any_below("refs/heads/")
}

/// Whether some remote-tracking branch exists.
fn has_remote_refs(refs: &Refs<'_>) -> bool {
    refs.any_below("refs/remotes/")
}

/// git's `dwim_orphan`: with neither a valid HEAD nor any branch (a repository without
/// commits), `add` makes an unborn branch instead of failing.
fn dwim_orphan(
    repo: &gix::Repository,
    refs: &Refs<'_>,
    opts: &AddOptions,
    guess_remote: bool,
    remote: bool,
    notes: &mut Vec<String>,
) -> Result<bool> {
    if can_use_local_refs(refs) {
        return Ok(false);
    }
    if remote && guess_remote {
        if has_remote_refs(refs) {
            return Ok(false);
        }
        if opts.force == 0 && !repo.remote_names().is_empty() {
            return Err(Error::NoRefsWithRemote);
        }
    }
    notes.push("No possible source branch, inferring '--orphan'".into());
    if opts.track != Track::Default {
        return Err(Error::Incompatible("--orphan", "--track"));
    }
    if !opts.checkout {
        return Err(Error::Incompatible("--orphan", "--no-checkout"));
    }
    Ok(true)
}

pub use crate::options::check_options;

/// Decides what `git worktree add` with `opts` would check out in SRC's repository `repo`;
/// `dst_name` is DST's last component (git's default branch name). Refuses what git refuses
/// before anything is written. Two steps: which branch and start point
/// (`choose_branch`), then the plan they make (`plan_of`).
pub fn resolve(
    repo: &gix::Repository,
    refs: &Refs<'_>,
    opts: &AddOptions,
    dst_name: &OsStr,
    src_root: &Path,
) -> Result<Plan> {
    check_options(opts)?;
    let choice = choose_branch(repo, refs, opts, dst_name)?;
    plan_of(repo, refs, opts, src_root, choice)
}

/// The branch `git worktree add` makes or checks out, and where it starts.
struct Choice {
    /// The start point as given (`HEAD` without one, `@{-1}` for `-`).
    start: String,
    /// A branch to create (or reset).
    new_branch: Option<String>,
    /// `-B`.
    reset: bool,
    /// An unborn branch (`--orphan`, or inferred).
    orphan: bool,
    /// What git would say on the way.
    notes: Vec<String>,
}

/// Refuses `name` where another worktree has it checked out, unless forced (`reset`: for
/// `-B`, whose refusal names no `-f`).
fn refuse_checked_out(
    repo: &gix::Repository,
    refs: &Refs<'_>,
    opts: &AddOptions,
    name: &str,
    reset: bool,
) -> Result<()> {
    let bare = repo.config_snapshot().boolean("core.bare").unwrap_or(false);
    match refs.checked_out_at(repo.common_dir(), name, bare) {
        Some(wt) if opts.force == 0 => Err(Error::BranchCheckedOut {
            name: name.to_owned(),
            worktree: wt,
            reset,
        }),
        _ => Ok(()),
    }
}

/// git's choice of branch and start point for `opts` (its `-b`, `-B`, `--orphan`, the branch
/// named after DST, a remote-tracking branch guessed).
fn choose_branch(
    repo: &gix::Repository,
    refs: &Refs<'_>,
    opts: &AddOptions,
    dst_name: &OsStr,
) -> Result<Choice> {
    let guess_remote = opts.guess_remote.unwrap_or_else(|| {
        repo.config_snapshot()
            .boolean("worktree.guessRemote")
            .unwrap_or(false)
    });
    let mut notes = Vec::new();
    let given = opts.commit.is_some();
    let mut start = match opts.commit.as_deref() {
        None => "HEAD".to_owned(),
        Some("-") => "@{-1}".to_owned(),
        Some(s) => s.to_owned(),
    };
    let basename = || -> Result<String> {
        dst_name
            .to_str()
            .map(str::to_owned)
            .ok_or_else(|| Error::BadBranchName {
                name: dst_name.to_string_lossy().into_owned(),
                source: "not UTF-8; use -b or --detach".into(),
            })
    };
    let (mut new_branch, reset, mut orphan) = match &opts.branch {
        BranchChoice::New(n) => (Some(n.clone()), false, false),
        BranchChoice::Reset(n) => {
            if branch_tip(refs, n)?.is_some() {
                refuse_checked_out(repo, refs, opts, n, true)?;
            }
            (Some(n.clone()), true, false)
        }
        BranchChoice::Orphan(n) => (Some(n.clone().map_or_else(basename, Ok)?), false, true),
        BranchChoice::Detach | BranchChoice::Auto => (None, false, false),
    };
    match &opts.branch {
        BranchChoice::Orphan(_) | BranchChoice::Detach => {}
        BranchChoice::New(_) | BranchChoice::Reset(_) if !given => {
            orphan = dwim_orphan(repo, refs, opts, guess_remote, false, &mut notes)?;
        }
        BranchChoice::Auto if !given => {
            let name = basename()?;
            let found = if branch_tip(refs, &name)?.is_some() {
                Some(name)
            } else {
                new_branch = Some(name.clone());
                if guess_remote {
                    unique_tracking_name(repo, refs, &name)
                } else {
                    None
                }
            };
            match found {
                Some(s) => start = s,
                None => orphan = dwim_orphan(repo, refs, opts, guess_remote, true, &mut notes)?,
            }
        }
        BranchChoice::Auto => {
            if refs.commit_of(&start).is_none()
                && let Some(remote) = unique_tracking_name(repo, refs, &start)
            {
                new_branch = Some(std::mem::replace(&mut start, remote));
            }
        }
        BranchChoice::New(_) | BranchChoice::Reset(_) => {}
    }
    Ok(Choice {
        start,
        new_branch,
        reset,
        orphan,
        notes,
    })
}

/// The plan `choice` makes: an unborn branch, a new (or reset) branch at the start point's
/// commit, an existing branch checked out, or a detached HEAD; refusing an invalid start point,
/// an existing branch for `-b`, `--track` without a new branch, a branch checked out elsewhere.
fn plan_of(
    repo: &gix::Repository,
    refs: &Refs<'_>,
    opts: &AddOptions,
    src_root: &Path,
    choice: Choice,
) -> Result<Plan> {
    let Choice {
        start,
        new_branch,
        reset,
        orphan,
        notes,
    } = choice;
    if orphan {
        let name = new_branch.ok_or_else(|| Error::BadBranchName {
            name: String::new(),
            source: "an unborn branch needs a name".into(),
        })?;
        check_branch_name(&name)?;
        if branch_tip(refs, &name)?.is_some() {
            return Err(Error::OrphanBranchExists(name));
        }
        return Ok(Plan {
            commit: None,
            head_line: format!("ref: refs/heads/{name}"),
            head: HeadReport::Unborn { name },
            new_branch: None,
            notes,
        });
    }
    let commit = refs
        .commit_of(&start)
        .ok_or_else(|| Error::InvalidReference {
            spec: start.clone(),
            repo: src_root.to_owned(),
        })?;
    if let Some(name) = new_branch {
        check_branch_name(&name)?;
        let previous = branch_tip(refs, &name)?;
        if previous.is_some() && !reset {
            return Err(Error::BranchExists(name));
        }
        return Ok(Plan {
            commit: Some(commit),
            head_line: format!("ref: refs/heads/{name}"),
            head: HeadReport::Branch {
                name: name.clone(),
                created: previous.is_none(),
            },
            new_branch: Some(NewBranch {
                name,
                start,
                reset,
                previous,
            }),
            notes,
        });
    }
    if opts.track != Track::Default {
        return Err(Error::TrackWithoutNewBranch);
    }
    if opts.branch != BranchChoice::Detach
        && let Some((name, tip)) = existing_branch(refs, &start)?
    {
        refuse_checked_out(repo, refs, opts, &name, false)?;
        return Ok(Plan {
            commit: Some(tip),
            head_line: format!("ref: refs/heads/{name}"),
            head: HeadReport::Branch {
                name,
                created: false,
            },
            new_branch: None,
            notes,
        });
    }
    Ok(Plan {
        commit: Some(commit),
        head_line: commit.to_string(),
        head: HeadReport::Detached,
        new_branch: None,
        notes,
    })
}
