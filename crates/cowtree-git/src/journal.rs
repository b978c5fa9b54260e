//! The write-ahead journal of a `git worktree add` run, kept in its registration directory
//! (files `cowtree-*`): what the run made outside its staging directory (the staging directory
//! itself, DST's missing parents, a branch created or reset, the `--lock` text), written down
//! before it is made, and how each is taken back ([`BranchUndo`], `remove_killed_staging`).
//! [`crate::run`] writes it; [`crate::register::clean_stale`] reads it after a run was killed.

use std::path::{Path, PathBuf};

use cowtree_fs::dir::Dir;
use gix::ObjectId;

/// Journal file: the staging directory's absolute path.
pub(crate) const J_STAGING: &str = "cowtree-staging";
/// Journal file: the parents of DST this run created, NUL-separated, outermost first.
pub(crate) const J_PARENTS: &str = "cowtree-parents";
/// Journal file: `created NAME NEW` or `reset NAME PREVIOUS NEW`.
pub(crate) const J_BRANCH: &str = "cowtree-branch";
/// Journal file: the text `locked` gets when the worktree is complete (`--lock`).
pub(crate) const J_LOCK: &str = "cowtree-lock";

/// A branch this run created or reset, and how to put it back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BranchUndo {
    /// The branch.
    pub name: String,
    /// Its commit after this run.
    pub new: ObjectId,
    /// Its commit before (`None`: this run created it).
    pub previous: Option<ObjectId>,
}

impl BranchUndo {
    pub(crate) fn to_line(&self) -> String {
        match self.previous {
            None => format!("created {} {}\n", self.name, self.new),
            Some(p) => format!("reset {} {} {}\n", self.name, p, self.new),
        }
    }

    pub(crate) fn parse(text: &[u8]) -> Option<BranchUndo> {
        let text = std::str::from_utf8(text).ok()?;
        let w: Vec<&str> = text.split_whitespace().collect();
        let id = |s: &str| ObjectId::from_hex(s.as_bytes()).ok();
        match w.as_slice() {
            ["created", name, new] => Some(BranchUndo {
                name: (*name).to_owned(),
                new: id(new)?,
                previous: None,
            }),
            ["reset", name, prev, new] => Some(BranchUndo {
                name: (*name).to_owned(),
                new: id(new)?,
                previous: Some(id(prev)?),
            }),
            _ => None,
        }
    }

    /// Deletes the branch (created) or moves it back (reset), only where it is still at
    /// `new`: `git update-ref` compares and swaps under git's own ref lock. A created branch
    /// also loses its `branch.NAME` configuration (the tracking `git branch` set up). Returns
    /// a sentence saying what was done, or `None` when the branch had moved on (or was never
    /// made).
    pub(crate) fn undo(&self, repo_dir: &Path) -> Option<String> {
        let full = format!("refs/heads/{}", self.name);
        let update = || {
            let mut cmd = crate::branch::git(repo_dir);
            cmd.args(["update-ref", "-m", "cowtree git worktree add: rolled back"]);
            match self.previous {
                None => cmd.args(["-d", &full, &self.new.to_string()]),
                Some(p) => cmd.args([&full, &p.to_string(), &self.new.to_string()]),
            };
            cmd.stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        };
        // A power loss right after `git branch` wrote the ref (git does not sync it) can leave
        // its loose file empty: git then refuses to update or delete a "broken" ref, and the
        // next add of that branch fails reading it. The journal says this run made that ref,
        // and a broken ref holds no commit: its file is removed, and the update tried again
        // (a reset branch then goes back to its previous commit).
        if !update() {
            if !self.remove_broken_ref(repo_dir) {
                return None;
            }
            // Without its loose file the ref is gone, or back at its packed value.
            let git_ok = |args: &[&str]| {
                crate::branch::git(repo_dir)
                    .args(args)
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success())
            };
            let still = git_ok(&["show-ref", "--verify", "--quiet", &full]);
            let done = match self.previous {
                None => !still || update(),
                Some(p) => git_ok(&[
                    "update-ref",
                    "-m",
                    "cowtree git worktree add: rolled back",
                    &full,
                    &p.to_string(),
                ]),
            };
            if !done {
                return None;
            }
        }
        match self.previous {
            None => {
                let _ = crate::branch::git(repo_dir)
                    .args([
                        "config",
                        "--remove-section",
                        &format!("branch.{}", self.name),
                    ])
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::null())
                    .status();
                Some(format!("deleted the branch '{}' it created", self.name))
            }
            Some(p) => Some(format!(
                "moved the branch '{}' back to {}",
                self.name,
                &p.to_string()[..12]
            )),
        }
    }
}

impl BranchUndo {
    /// Removes the branch's loose ref file when it exists and git cannot read it (empty or not
    /// an object id): what a crash can leave of a ref written without a sync. True when removed.
    fn remove_broken_ref(&self, repo_dir: &Path) -> bool {
        let valid_name = self
            .name
            .split('/')
            .all(|c| !c.is_empty() && c != "." && c != "..");
        if !valid_name {
            return false;
        }
        let Ok(out) = crate::branch::git(repo_dir)
            .args(["rev-parse", "--git-common-dir"])
            .stderr(std::process::Stdio::null())
            .output()
        else {
            return false;
        };
        let common = String::from_utf8_lossy(&out.stdout).trim_end().to_owned();
        if !out.status.success() || common.is_empty() {
            return false;
        }
        let file = repo_dir.join(common).join("refs/heads").join(&self.name);
        let Ok(meta) = std::fs::symlink_metadata(&file) else {
            return false;
        };
        if !meta.is_file() || meta.len() > 4096 {
            return false;
        }
        let Ok(bytes) = std::fs::read(&file) else {
            return false;
        };
        let text = String::from_utf8_lossy(&bytes);
        let text = text.trim();
        let readable = text.starts_with("ref: ") || ObjectId::from_hex(text.as_bytes()).is_ok();
        !readable && std::fs::remove_file(&file).is_ok()
    }
}

/// The staging path and created parents a killed run journaled in its registration directory
/// `dir`.
pub(crate) fn journaled_paths(dir: &Path) -> (Option<PathBuf>, Vec<PathBuf>) {
    let read = |name: &str| std::fs::read(dir.join(name)).ok();
    let staging = read(J_STAGING)
        .filter(|b| !b.is_empty())
        .map(|b| crate::portable::path(&b).to_path_buf());
    let parents = read(J_PARENTS)
        .map(|b| {
            b.split(|&c| c == 0)
                .filter(|p| !p.is_empty())
                .map(|p| crate::portable::path(p).to_path_buf())
                .collect()
        })
        .unwrap_or_default();
    (staging, parents)
}

/// What [`remove_killed_staging`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KilledStaging {
    /// It was there, and is removed.
    Removed,
    /// There was nothing.
    Absent,
    /// A live run holds its lock (it may still be writing into it): left alone.
    Live,
}

/// Removes a killed run's staging directory at `path` when no live run holds its lock.
pub(crate) fn remove_killed_staging(path: &Path) -> std::io::Result<KilledStaging> {
    #[cfg(windows)]
    return remove_killed_staging_windows(path);
    #[cfg(unix)]
    match Dir::open(path) {
        Ok(d) => {
            if !d.try_lock_exclusive()? {
                return Ok(KilledStaging::Live);
            }
            // Held while removing: nobody else owns it.
            let r = remove_dir_tree(path);
            drop(d);
            r.map(|removed| {
                if removed {
                    KilledStaging::Removed
                } else {
                    KilledStaging::Absent
                }
            })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(KilledStaging::Absent),
        Err(e) => Err(e),
    }
}

/// [`remove_killed_staging`] on Windows, where a staging directory's lock is its run's open
/// handle on it (`cowtree_fs::staging`): taken with an open that shares nothing
/// ([`Dir::open_dir_exclusive`]), which fails while any run holds one, and removed through it.
#[cfg(windows)]
fn remove_killed_staging_windows(path: &Path) -> std::io::Result<KilledStaging> {
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
        return Ok(KilledStaging::Absent);
    };
    let parent = match Dir::open(parent) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(KilledStaging::Absent),
        Err(e) => return Err(e),
    };
    match parent.open_dir_exclusive(name) {
        Ok(Some(d)) => d.remove_self_tree().map(|()| KilledStaging::Removed),
        Ok(None) => Ok(KilledStaging::Live),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(KilledStaging::Absent),
        Err(e) => Err(e),
    }
}

/// Removes the directory tree at `path` (a staging directory a worker may still be adding to:
/// again until it is gone; a subvolume by [`cowtree_fs::subvolume::delete`]). `Ok(false)` when
/// there was nothing.
pub(crate) fn remove_dir_tree(path: &Path) -> std::io::Result<bool> {
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
        return Ok(false);
    };
    let dir = match Dir::open(parent) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    };
    if dir.try_stat(name)?.is_none() {
        return Ok(false);
    }
    let mut result = Ok(());
    // Once the directory itself is unlinked, nothing more can be created in it. A staging
    // made by a snapshot is a subvolume: deleted in one ioctl where the kernel permits.
    for _ in 0..100 {
        result = cowtree_fs::staging::remove_dir_or_subvolume(&dir, name);
        if result.is_ok() || dir.try_stat(name).ok().flatten().is_none() {
            return Ok(true);
        }
    }
    result.map(|()| true)
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    fn git_ok(dir: &Path, args: &[&str]) -> String {
        let out = crate::branch::git(dir)
            .args(args)
            .output()
            .expect("run git");
        assert!(out.status.success(), "git {args:?}: {out:?}");
        String::from_utf8(out.stdout).expect("utf-8")
    }

    /// What a power loss right after `git branch` can leave: the branch's loose ref empty.
    /// Undoing the journaled creation removes it, so the next add can make the branch again;
    /// a ref that git can read and that moved on is left alone.
    #[test]
    fn undo_removes_a_created_branch_whose_ref_a_crash_left_empty() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let repo = tmp.path().join("repo");
        std::fs::create_dir(&repo).expect("mkdir");
        git_ok(&repo, &["init", "-q", "-b", "main"]);
        git_ok(
            &repo,
            &[
                "-c",
                "user.name=t",
                "-c",
                "user.email=t@t",
                "commit",
                "-q",
                "--allow-empty",
                "-m",
                "x",
            ],
        );
        let head = ObjectId::from_hex(git_ok(&repo, &["rev-parse", "HEAD"]).trim().as_bytes())
            .expect("oid");
        git_ok(&repo, &["branch", "wt"]);
        let file = repo.join(".git/refs/heads/wt");
        std::fs::write(&file, b"").expect("truncate the ref");
        let undo = BranchUndo {
            name: "wt".into(),
            new: head,
            previous: None,
        };
        assert_eq!(
            undo.undo(&repo).as_deref(),
            Some("deleted the branch 'wt' it created")
        );
        assert!(!file.exists(), "the broken ref is gone");
        assert_eq!(git_ok(&repo, &["for-each-ref", "refs/heads/wt"]), "");
        git_ok(&repo, &["branch", "wt"]);

        // A readable ref at another commit: not this run's any more, kept.
        let other =
            ObjectId::from_hex(b"1111111111111111111111111111111111111111").expect("hex id");
        let moved = BranchUndo {
            name: "wt".into(),
            new: other,
            previous: None,
        };
        assert_eq!(moved.undo(&repo), None);
        assert!(file.exists());
    }

    #[test]
    fn branch_journal_lines_read_back() {
        let a = ObjectId::from_hex(b"1111111111111111111111111111111111111111").expect("hex id");
        let b = ObjectId::from_hex(b"2222222222222222222222222222222222222222").expect("hex id");
        for u in [
            BranchUndo {
                name: "feature/x".into(),
                new: a,
                previous: None,
            },
            BranchUndo {
                name: "main".into(),
                new: a,
                previous: Some(b),
            },
        ] {
            assert_eq!(BranchUndo::parse(u.to_line().as_bytes()), Some(u));
        }
        assert_eq!(BranchUndo::parse(b"deleted x y"), None);
        assert_eq!(BranchUndo::parse(b"created x nothex"), None);
    }
}
