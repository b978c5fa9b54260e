//! Refs, read and written the way the repository keeps them ([`crate::facts::RefStorage`]):
//! through gitoxide for loose and packed files, through git's own plumbing for reftable,
//! which gitoxide cannot read (it would see `.git/HEAD`'s stub `ref: refs/heads/.invalid` and
//! take the repository for one without commits). Every ref the run reads goes through
//! [`Refs`]; the new worktree's HEAD, its reflog and `ORIG_HEAD` are written by [`HeadWriter`].
//!
//! With reftable, reads cost git processes: one `git for-each-ref` (every ref and the current
//! HEAD, read once and kept), and a `git rev-parse` for a commit-ish that names no ref.

use std::cell::OnceCell;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use gix::ObjectId;

use crate::error::{Error, Result};
use crate::facts::RefStorage;

/// The run's way to the repository's refs.
pub enum Refs<'r> {
    /// Loose and packed refs, read by gitoxide.
    Files(&'r gix::Repository),
    /// Reftable, read through git run in `dir` (SRC's worktree, or the bare repository).
    Git {
        /// Where git runs.
        dir: PathBuf,
        /// The repository's objects (for peeling and parsing ids).
        repo: &'r gix::Repository,
        /// `refname -> (id, peeled id)`, and HEAD's target; read once.
        snapshot: OnceCell<Snapshot>,
    },
}

/// Every ref of the repository as `git for-each-ref` lists it, and HEAD.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// Full name to the id it points at, and the commit (or other object) it peels to.
    refs: HashMap<String, (ObjectId, Option<ObjectId>)>,
    /// HEAD's commit, when it has one.
    head: Option<ObjectId>,
}

impl<'r> Refs<'r> {
    /// The refs of `repo`, kept as `storage`; git runs in `dir`.
    pub fn new(repo: &'r gix::Repository, storage: RefStorage, dir: &Path) -> Refs<'r> {
        match storage {
            RefStorage::Files => Refs::Files(repo),
            RefStorage::Reftable => Refs::Git {
                dir: dir.to_owned(),
                repo,
                snapshot: OnceCell::new(),
            },
        }
    }

    fn snapshot(&self) -> Result<&Snapshot> {
        let Refs::Git {
            dir,
            repo,
            snapshot,
        } = self
        else {
            unreachable!("a snapshot is read only for reftable");
        };
        if let Some(s) = snapshot.get() {
            return Ok(s);
        }
        let out = git_output(
            dir,
            &[
                "for-each-ref",
                "--format=%(objectname) %(*objectname) %(refname)",
            ],
        )?;
        let mut refs = HashMap::new();
        for line in out.lines() {
            let mut parts = line.splitn(3, ' ');
            let (Some(id), Some(peeled), Some(name)) = (parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            let Ok(id) = ObjectId::from_hex(id.as_bytes()) else {
                continue;
            };
            let peeled = ObjectId::from_hex(peeled.as_bytes()).ok();
            refs.insert(name.to_owned(), (id, peeled));
        }
        let head = rev_parse(dir, "HEAD^{commit}")?;
        let _ = repo;
        Ok(snapshot.get_or_init(|| Snapshot { refs, head }))
    }

    /// The commit `refs/heads/NAME` points to (peeled), if the branch exists.
    pub fn branch_tip(&self, full: &str) -> Result<Option<ObjectId>> {
        match self {
            Refs::Files(repo) => {
                let r = repo
                    .try_find_reference(full)
                    .map_err(Error::git("read reference", PathBuf::from(full)))?;
                match r {
                    None => Ok(None),
                    Some(mut r) => Ok(Some(
                        r.peel_to_id()
                            .map_err(Error::git("peel reference", PathBuf::from(full)))?
                            .detach(),
                    )),
                }
            }
            Refs::Git { .. } => Ok(self
                .snapshot()?
                .refs
                .get(full)
                .map(|(id, peeled)| peeled.unwrap_or(*id))),
        }
    }

    /// Whether the ref `full` exists.
    pub fn exists(&self, full: &str) -> bool {
        match self {
            Refs::Files(repo) => matches!(repo.try_find_reference(full), Ok(Some(_))),
            Refs::Git { .. } => self.snapshot().is_ok_and(|s| s.refs.contains_key(full)),
        }
    }

    /// Whether some ref exists below `prefix` (`refs/heads/`, `refs/remotes/`).
    pub fn any_below(&self, prefix: &str) -> bool {
        match self {
            Refs::Files(repo) => repo
                .references()
                .ok()
                .and_then(|r| r.prefixed(prefix).ok().map(|mut it| it.next().is_some()))
                .unwrap_or(false),
            Refs::Git { .. } => self
                .snapshot()
                .is_ok_and(|s| s.refs.keys().any(|k| k.starts_with(prefix))),
        }
    }

    /// HEAD's commit (of the worktree the command runs in), when it has one.
    pub fn head_commit(&self) -> Option<ObjectId> {
        match self {
            Refs::Files(repo) => repo.head_id().ok().map(|id| id.detach()),
            Refs::Git { .. } => self.snapshot().ok().and_then(|s| s.head),
        }
    }

    /// The commit `spec` names (a ref, an id, any revision git reads), if it names one.
    pub fn commit_of(&self, spec: &str) -> Option<ObjectId> {
        match self {
            Refs::Files(repo) => {
                let id = repo.rev_parse_single(spec).ok()?;
                let commit = id.object().ok()?.peel_to_commit().ok()?;
                Some(commit.id)
            }
            Refs::Git { dir, .. } => {
                if spec == "HEAD" {
                    return self.head_commit();
                }
                rev_parse(dir, &format!("{spec}^{{commit}}")).ok().flatten()
            }
        }
    }

    /// The branch `@{-N}` names (the N-th branch checked out before the current one).
    pub fn previous_branch(&self, spec: &str) -> Option<String> {
        let n: usize = spec.strip_prefix("@{-")?.strip_suffix('}')?.parse().ok()?;
        match self {
            Refs::Files(repo) => {
                let head = repo.head().ok()?;
                let list = head.prior_checked_out_branches().ok()??;
                let (name, _) = list.iter().rev().nth(n.checked_sub(1)?)?;
                Some(name.to_string())
            }
            Refs::Git { dir, .. } => {
                let out = git_output(dir, &["rev-parse", "--symbolic-full-name", spec]).ok()?;
                out.trim().strip_prefix("refs/heads/").map(str::to_owned)
            }
        }
    }

    /// The worktree that has `refs/heads/<branch>` checked out, if any: the main worktree (not
    /// in a bare repository) or a linked one.
    pub fn checked_out_at(&self, common_dir: &Path, branch: &str, bare: bool) -> Option<PathBuf> {
        match self {
            Refs::Files(_) => crate::register::branch_checked_out_at(common_dir, branch, bare),
            Refs::Git { dir, .. } => {
                // HEADs from git (they are in each worktree's reftable stack), the rest of the
                // state from each worktree's git directory, as for files.
                let out = git_output(dir, &["worktree", "list", "--porcelain", "-z"]).ok()?;
                let heads = heads_in_porcelain(out.as_bytes());
                crate::register::worktrees(common_dir, bare)
                    .into_iter()
                    .find(|(gitdir, path)| {
                        let canon = crate::portable::canonical(path);
                        let head = heads
                            .iter()
                            .find(|(p, _)| *p == canon || p == path)
                            .map(|(_, h)| crate::register::Head {
                                symref: h.clone(),
                                detached: h.is_none(),
                            })
                            .unwrap_or(crate::register::Head {
                                symref: None,
                                detached: false,
                            });
                        crate::register::branch_busy_in(gitdir, &head, branch)
                    })
                    .map(|(_, path)| path)
            }
        }
    }
}

/// Each worktree of `git worktree list --porcelain -z` output and the branch its HEAD names
/// (`None`: detached, or a bare entry).
fn heads_in_porcelain(out: &[u8]) -> Vec<(PathBuf, Option<String>)> {
    let mut list: Vec<(PathBuf, Option<String>)> = Vec::new();
    for field in out.split(|&b| b == 0) {
        if let Some(p) = field.strip_prefix(b"worktree ") {
            list.push((crate::portable::path(p).to_path_buf(), None));
        } else if let Some(b) = field.strip_prefix(b"branch ")
            && let Some(last) = list.last_mut()
        {
            last.1 = Some(String::from_utf8_lossy(b).into_owned());
        }
    }
    list
}

/// git run in `dir` with `args`; its stdout, or the error with its message.
fn git_output(dir: &Path, args: &[&str]) -> Result<String> {
    let out = crate::branch::git(dir)
        .args(args)
        .output()
        .map_err(Error::io("run git in", dir))?;
    if !out.status.success() {
        return Err(Error::GitFailed {
            command: format!("git {}", args.join(" ")),
            message: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `git rev-parse --verify -q --end-of-options SPEC`: the id, or `None` when SPEC names none.
fn rev_parse(dir: &Path, spec: &str) -> Result<Option<ObjectId>> {
    let out = crate::branch::git(dir)
        .args(["rev-parse", "--verify", "-q", "--end-of-options", spec])
        .output()
        .map_err(Error::io("run git rev-parse in", dir))?;
    if !out.status.success() {
        return Ok(None);
    }
    Ok(ObjectId::from_hex(String::from_utf8_lossy(&out.stdout).trim().as_bytes()).ok())
}

/// Writes the new worktree's HEAD, its reflog and `ORIG_HEAD` as `git worktree add` leaves
/// them, into a reftable registration: through git run on the registration directory (the
/// worktree's own ref store), so that git's own logging rules apply. Files registrations are
/// written by [`crate::register`] and the crate's `admin` module directly.
pub struct HeadWriter<'a> {
    /// The registration directory (`$GIT_COMMON_DIR/worktrees/<id>`).
    pub admin: &'a Path,
}

impl HeadWriter<'_> {
    /// git on the registration, as a repository with the work tree `work_tree` (`None`: as a
    /// bare one, which `git worktree add` run in a bare repository is while it sets HEAD).
    fn git(&self, args: &[&str], stdin: Option<&str>, work_tree: Option<&Path>) -> Result<()> {
        let mut cmd = std::process::Command::new("git");
        cmd.env("GIT_DIR", self.admin)
            .env_remove("GIT_INDEX_FILE")
            .env_remove("GIT_COMMON_DIR")
            .current_dir(self.admin)
            .args(args);
        match work_tree {
            Some(w) => cmd.env("GIT_WORK_TREE", w),
            None => cmd.env_remove("GIT_WORK_TREE"),
        };
        cmd.stdin(if stdin.is_some() {
            std::process::Stdio::piped()
        } else {
            std::process::Stdio::null()
        })
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
        let mut child = cmd.spawn().map_err(Error::io("run git in", self.admin))?;
        let written = match (stdin, child.stdin.take()) {
            (Some(text), Some(mut w)) => std::io::Write::write_all(&mut w, text.as_bytes()),
            _ => Ok(()),
        };
        // Waited for whatever the write did (git may have ended early; its status says why).
        let out = child
            .wait_with_output()
            .map_err(Error::io("run git in", self.admin))?;
        if out.status.success() {
            written.map_err(Error::io("write to git in", self.admin))?;
        }
        if out.status.success() {
            return Ok(());
        }
        Err(Error::GitFailed {
            command: format!("git {}", args.join(" ")),
            message: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        })
    }

    /// Sets HEAD to `head_line` (`ref: refs/heads/NAME`, or a commit id), as `git worktree
    /// add`'s `refs_update_symref`/`refs_update_ref` set it (no reflog message): first the
    /// HEAD the registration had while it was made goes, unlogged, so that git logs a HEAD
    /// made from nothing, as git's own is.
    /// With `bare` (`git worktree add` ran as in a bare repository, where git's
    /// `core.logAllRefUpdates` defaults to false), no reflog entry unless the configuration
    /// asks for one.
    pub fn set_head(&self, head_line: &str, bare: bool, work_tree: &Path) -> Result<()> {
        let work_tree = (!bare).then_some(work_tree);
        self.git(
            &[
                "-c",
                "core.logAllRefUpdates=false",
                "update-ref",
                "--no-deref",
                "-d",
                "HEAD",
            ],
            None,
            None,
        )?;
        // git's default where it runs as a bare repository: no reflog, unless configured.
        let quiet_default = bare && self.configured_log_all().is_none();
        let mut args: Vec<&str> = Vec::new();
        if quiet_default {
            args.extend(["-c", "core.logAllRefUpdates=false"]);
        }
        match head_line.strip_prefix("ref: ") {
            Some(target) => args.extend(["symbolic-ref", "HEAD", target]),
            None => args.extend(["update-ref", "--no-deref", "HEAD", head_line]),
        }
        self.git(&args, None, work_tree)
    }

    /// `core.logAllRefUpdates` as the registration's configuration sets it, if it does.
    fn configured_log_all(&self) -> Option<String> {
        let out = std::process::Command::new("git")
            .env("GIT_DIR", self.admin)
            .current_dir(self.admin)
            .args(["config", "core.logAllRefUpdates"])
            .stdin(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }

    /// Sets HEAD to `head_line` while the worktree is made, with no reflog entry (the final
    /// [`HeadWriter::set_head`] replaces it and writes the entry git writes).
    pub fn set_head_unlogged(&self, head_line: &str) -> Result<()> {
        let args: Vec<&str> = match head_line.strip_prefix("ref: ") {
            Some(target) => vec![
                "-c",
                "core.logAllRefUpdates=false",
                "symbolic-ref",
                "HEAD",
                target,
            ],
            None => vec![
                "-c",
                "core.logAllRefUpdates=false",
                "update-ref",
                "--no-deref",
                "HEAD",
                head_line,
            ],
        };
        self.git(&args, None, None)
    }

    /// What `git reset --hard` in the new worktree `work_tree` leaves: `ORIG_HEAD` at
    /// `commit` and HEAD updated to it (one transaction, as git's reset makes them), so that
    /// the reflog gets `reset: moving to HEAD` where git's backend writes it (reftable: on a
    /// detached HEAD too, which the files backend leaves unlogged).
    pub fn reset_logs(&self, commit: ObjectId, work_tree: &Path) -> Result<()> {
        let text = format!("update ORIG_HEAD {commit}\nupdate HEAD {commit}\n");
        self.git(
            &["update-ref", "-m", "reset: moving to HEAD", "--stdin"],
            Some(&text),
            Some(work_tree),
        )
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn each_worktree_s_branch_is_read_from_gits_listing() {
        let out = b"worktree /r\0HEAD 1111111111111111111111111111111111111111\0branch refs/heads/main\0\0\
worktree /w\0HEAD 2222222222222222222222222222222222222222\0branch refs/heads/topic\0\0\
worktree /d\0HEAD 3333333333333333333333333333333333333333\0detached\0\0";
        assert_eq!(
            heads_in_porcelain(out),
            vec![
                (PathBuf::from("/r"), Some("refs/heads/main".to_owned())),
                (PathBuf::from("/w"), Some("refs/heads/topic".to_owned())),
                (PathBuf::from("/d"), None),
            ]
        );
    }
}
