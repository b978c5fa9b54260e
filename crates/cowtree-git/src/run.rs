//! One [`crate::add`] in progress, and what it has made outside its staging directory: the
//! registration directory, DST's missing parents, the staging directory itself and a branch
//! created or reset. Each is written down in the registration directory before it is made
//! (a write-ahead journal, files `cowtree-*`), so that it is taken back:
//! - on an error, when the run is dropped before it was published;
//! - on a signal, by [`abort_all`], which a signal handler calls (it waits for a step in
//!   progress, such as `git branch`, to end, so that it sees everything that step made);
//! - after `kill -9` or a power loss, by the next run in the repository
//!   ([`crate::register::clean_stale`]) or by [`clean_killed_runs`] (`cowtree gc`), which
//!   finds the repository through a record in a registry directory (the CLI keeps it under
//!   `$XDG_STATE_HOME/cowtree/git-worktree-add/`).

use std::ffi::{OsStr, OsString};
use std::io::{Read, Write};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};

use cowtree_fs::dir::Dir;
use gix::ObjectId;

use crate::error::{Error, Result};
use crate::register::Registration;

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
    fn to_line(&self) -> String {
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

/// What a run has made so far; shared between the run and [`abort_all`].
struct State {
    aborted: bool,
    /// DST is in place: nothing is taken back any more.
    published: bool,
    finished: bool,
    /// SRC's worktree, where git commands run.
    repo_dir: PathBuf,
    reg: Option<Registration>,
    parents: Vec<PathBuf>,
    staging: Option<PathBuf>,
    branch: Option<BranchUndo>,
    record: Option<(std::fs::File, PathBuf)>,
    /// DST, for the sentence said when the run was complete.
    dst: PathBuf,
}

impl State {
    /// Takes back everything, in the order that keeps the journal last: staging, branch,
    /// parents, registration, registry record. Returns what was done, one phrase each.
    fn undo(&mut self) -> Vec<String> {
        let mut said = Vec::new();
        if let Some(st) = self.staging.take() {
            match remove_dir_tree(&st) {
                Ok(true) => said.push(format!("removed its partial worktree {}", st.display())),
                Ok(false) => {}
                Err(e) => said.push(format!(
                    "could not remove its partial worktree {} ({e}); `cowtree gc` removes it",
                    st.display()
                )),
            }
        }
        if let Some(b) = self.branch.take()
            && let Some(s) = b.undo(&self.repo_dir)
        {
            said.push(s);
        }
        for p in std::mem::take(&mut self.parents).iter().rev() {
            let _ = std::fs::remove_dir(p);
        }
        if let Some(reg) = self.reg.take() {
            let path = reg.path();
            drop(reg);
            said.push(format!("removed its registration {}", path.display()));
        }
        if let Some((_, path)) = self.record.take() {
            let _ = std::fs::remove_file(path);
        }
        said
    }
}

/// Removes the directory tree at `path` (a staging directory a worker may still be adding to:
/// again until it is gone; a subvolume by [`cowtree_fs::subvolume::delete`]). `Ok(false)` when
/// there was nothing.
fn remove_dir_tree(path: &Path) -> std::io::Result<bool> {
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

static ACTIVE: Mutex<Vec<Weak<Mutex<State>>>> = Mutex::new(Vec::new());

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Takes back every [`crate::add`] in progress in this process (each after the step it is in
/// has ended), and finishes one that had already put DST in place. For a signal handler: the
/// runs fail with [`Error::Interrupted`] from their next step. Returns one phrase for each
/// thing done, and last what is left.
pub fn abort_all() -> Vec<String> {
    let runs: Vec<Arc<Mutex<State>>> = ACTIVE
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .iter()
        .filter_map(Weak::upgrade)
        .collect();
    let mut said = Vec::new();
    for run in runs {
        let mut s = lock(&run);
        if s.aborted || s.finished {
            continue;
        }
        s.aborted = true;
        if s.published {
            let dst = s.dst.clone();
            match finish_state(&mut s, false) {
                Ok(()) => said.push(format!("the worktree {} is complete", dst.display())),
                Err(e) => said.push(format!("the worktree {} is in place ({e})", dst.display())),
            }
        } else {
            said.extend(s.undo());
            said.push("nothing else is left".into());
        }
    }
    said
}

/// Writes `locked`'s final text (or removes it), then the journal: the last step of a run.
fn finish_state(s: &mut State, sync: bool) -> Result<()> {
    s.finished = true;
    let Some(reg) = s.reg.take() else {
        return Ok(());
    };
    for j in [J_STAGING, J_PARENTS, J_BRANCH] {
        reg.remove(j)?;
    }
    reg.finish(sync)?;
    if let Some((_, path)) = s.record.take() {
        let _ = std::fs::remove_file(path);
    }
    Ok(())
}

/// One run. Dropped before [`Run::finish`] (an error), it takes back what it made.
pub(crate) struct Run {
    state: Arc<Mutex<State>>,
}

impl Run {
    /// Starts a run in SRC's worktree `repo_dir` of the repository whose common directory is
    /// `common`, for DST `dst`; with `registry`, leaves a record there (locked while it runs)
    /// for [`clean_killed_runs`].
    pub fn begin(
        repo_dir: &Path,
        common: &Path,
        dst: &Path,
        registry: Option<&Path>,
    ) -> Result<Run> {
        let record = registry.map(|r| new_record(r, common)).transpose()?;
        let state = Arc::new(Mutex::new(State {
            aborted: false,
            published: false,
            finished: false,
            repo_dir: repo_dir.to_owned(),
            reg: None,
            parents: Vec::new(),
            staging: None,
            branch: None,
            record,
            dst: dst.to_owned(),
        }));
        let mut active = ACTIVE.lock().unwrap_or_else(PoisonError::into_inner);
        active.retain(|w| w.strong_count() > 0);
        active.push(Arc::downgrade(&state));
        Ok(Run { state })
    }

    /// Runs `f` as one step: not at all once the run was aborted ([`Error::Interrupted`]),
    /// and [`abort_all`] waits for it to end.
    fn step<T>(&self, f: impl FnOnce(&mut State) -> Result<T>) -> Result<T> {
        let mut s = lock(&self.state);
        if s.aborted {
            return Err(Error::Interrupted);
        }
        f(&mut s)
    }

    /// Makes `reg` (just created, locked) the run's registration: its journal.
    pub fn registered(&self, reg: Registration) -> Result<()> {
        self.step(|s| {
            s.reg = Some(reg);
            Ok(())
        })
    }

    /// Calls `f` with the registration.
    pub fn with_registration<T>(&self, f: impl FnOnce(&Registration) -> Result<T>) -> Result<T> {
        self.step(|s| f(s.reg.as_ref().expect("registered before use")))
    }

    /// Creates the missing directories above `dst` (as git's `safe_create_leading_directories`,
    /// mode 0777 less the umask), each journaled first.
    pub fn create_parents(&self, dst: &Path) -> Result<()> {
        let mut missing = Vec::new();
        let mut p = dst.parent();
        while let Some(dir) = p {
            if dir.as_os_str().is_empty() || std::fs::symlink_metadata(dir).is_ok() {
                break;
            }
            missing.push(dir.to_path_buf());
            p = dir.parent();
        }
        for dir in missing.into_iter().rev() {
            self.step(|s| {
                s.parents.push(dir.clone());
                let mut bytes = Vec::new();
                for p in &s.parents {
                    bytes.extend_from_slice(p.as_os_str().as_bytes());
                    bytes.push(0);
                }
                s.reg
                    .as_ref()
                    .expect("registered first")
                    .write(J_PARENTS, &bytes)?;
                match std::fs::create_dir(&dir) {
                    Ok(()) => Ok(()),
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && dir.is_dir() => {
                        // Made by someone else meanwhile: not this run's to remove.
                        s.parents.pop();
                        Ok(())
                    }
                    Err(e) => {
                        s.parents.pop();
                        Err(Error::io("create directory", &dir)(e))
                    }
                }
            })?;
        }
        Ok(())
    }

    /// Journals the staging directory `path` (before it is created).
    pub fn staging(&self, path: &Path) -> Result<()> {
        self.step(|s| {
            s.reg
                .as_ref()
                .expect("registered first")
                .write(J_STAGING, path.as_os_str().as_bytes())?;
            s.staging = Some(path.to_owned());
            Ok(())
        })
    }

    /// Runs `make` (which creates or resets the branch) as one step, journaled first as `undo`.
    pub fn branch(&self, undo: BranchUndo, make: impl FnOnce() -> Result<()>) -> Result<()> {
        self.step(|s| {
            s.reg
                .as_ref()
                .expect("registered first")
                .write(J_BRANCH, undo.to_line().as_bytes())?;
            s.branch = Some(undo);
            make()
        })
    }

    /// Puts DST in place through `rename` (the staging directory's rename), as one step.
    pub fn publish(&self, rename: impl FnOnce() -> Result<()>) -> Result<()> {
        self.step(|s| {
            rename()?;
            s.published = true;
            s.staging = None;
            Ok(())
        })
    }

    /// The last step: `locked` gets its final text (or goes), the journal and the record go.
    /// With `sync`, the registration directory is synced afterwards.
    pub fn finish(self, sync: bool) -> Result<()> {
        let mut s = lock(&self.state);
        if s.finished {
            return Ok(());
        }
        finish_state(&mut s, sync)
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        let mut s = lock(&self.state);
        if !s.published && !s.aborted {
            s.aborted = true;
            s.undo();
        }
    }
}

/// Creates a record `<pid>-<random>` in `registry` naming `common`, locked by this process.
fn new_record(registry: &Path, common: &Path) -> Result<(std::fs::File, PathBuf)> {
    std::fs::create_dir_all(registry).map_err(Error::io("create directory", registry))?;
    let path = registry.join(format!(
        "{}-{:016x}",
        std::process::id(),
        cowtree_fs::staging::random_u64()
    ));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
        .map_err(Error::io("create", &path))?;
    rustix::fs::flock(&f, rustix::fs::FlockOperation::NonBlockingLockExclusive)
        .map_err(|e| Error::io("lock", &path)(e.into()))?;
    f.write_all(common.as_os_str().as_bytes())
        .map_err(Error::io("write", &path))?;
    Ok((f, path))
}

/// What [`clean_killed_runs`] found.
#[derive(Debug, Default, Clone)]
pub struct KilledRuns {
    /// Records of killed runs removed.
    pub records: u64,
    /// What was taken back or finished in their repositories (see
    /// [`crate::register::clean_stale`]).
    pub cleaned: Vec<String>,
}

/// Cleans up after the runs recorded in `registry` that were killed (their record is not
/// locked): in each one's repository, [`crate::register::clean_stale`] takes back what they
/// left (staging, branch, created parents, registration) or finishes a worktree that was
/// complete; the record then goes. A repository that no longer exists only loses its record.
pub fn clean_killed_runs(registry: &Path) -> Result<KilledRuns> {
    let mut out = KilledRuns::default();
    let list = match std::fs::read_dir(registry) {
        Ok(l) => l,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(Error::io("list", registry)(e)),
    };
    for entry in list {
        let entry = entry.map_err(Error::io("list", registry))?;
        let path = entry.path();
        let Ok(mut f) = std::fs::File::open(&path) else {
            continue;
        };
        if rustix::fs::flock(&f, rustix::fs::FlockOperation::NonBlockingLockExclusive).is_err() {
            continue;
        }
        let mut bytes = Vec::new();
        f.read_to_end(&mut bytes)
            .map_err(Error::io("read", &path))?;
        let common = PathBuf::from(OsString::from_vec(bytes));
        if common.is_dir() {
            out.cleaned.extend(crate::register::clean_stale(&common)?);
        }
        std::fs::remove_file(&path).map_err(Error::io("remove", &path))?;
        out.records += 1;
    }
    Ok(out)
}

/// The staging path and created parents a killed run journaled in its registration directory
/// `dir`.
pub(crate) fn journaled_paths(dir: &Path) -> (Option<PathBuf>, Vec<PathBuf>) {
    let read = |name: &str| std::fs::read(dir.join(name)).ok();
    let staging = read(J_STAGING)
        .filter(|b| !b.is_empty())
        .map(|b| PathBuf::from(OsString::from_vec(b)));
    let parents = read(J_PARENTS)
        .map(|b| {
            b.split(|&c| c == 0)
                .filter(|p| !p.is_empty())
                .map(|p| PathBuf::from(OsStr::from_bytes(p)))
                .collect()
        })
        .unwrap_or_default();
    (staging, parents)
}

/// Removes a killed run's staging directory at `path` when no live run holds its lock.
pub(crate) fn remove_killed_staging(path: &Path) -> std::io::Result<bool> {
    match Dir::open(path) {
        Ok(d) => {
            if !d.try_lock_exclusive()? {
                return Ok(false);
            }
            // Held while removing: nobody else owns it.
            let r = remove_dir_tree(path);
            drop(d);
            r
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
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
        let other = ObjectId::from_hex(b"1111111111111111111111111111111111111111").unwrap();
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
        let a = ObjectId::from_hex(b"1111111111111111111111111111111111111111").unwrap();
        let b = ObjectId::from_hex(b"2222222222222222222222222222222222222222").unwrap();
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
