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

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};

use crate::error::{Error, Result};
use crate::journal::{BranchUndo, J_BRANCH, J_PARENTS, J_STAGING, remove_dir_tree};
use crate::register::Registration;

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
    /// parents, registration, registry record. Returns what was done, one phrase each, and
    /// whether everything was taken back.
    ///
    /// Where the staging cannot be removed, nothing more is: the registration (whose journal
    /// names the staging, the branch and the parents) and the run's record stay, so that
    /// `cowtree gc` finds the run as it finds a killed one and takes all of it back.
    fn undo(&mut self) -> (Vec<String>, bool) {
        let mut said = Vec::new();
        if let Some(st) = self.staging.take() {
            match remove_dir_tree(&st) {
                Ok(true) => said.push(format!("removed its partial worktree {}", st.display())),
                Ok(false) => {}
                Err(e) => {
                    said.push(format!(
                        "could not remove its partial worktree {} ({e}); `cowtree gc` removes \
                         it and the rest of what this run made",
                        st.display()
                    ));
                    // The registration and the run's record (gc's way to it) stay, and stay
                    // open, their locks held until this process ends: no gc takes the run back
                    // while a worker may still be writing into the staging.
                    if let Some(reg) = self.reg.as_mut() {
                        reg.leave_for_gc();
                    }
                    self.branch = None;
                    self.parents.clear();
                    return (said, false);
                }
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
        (said, true)
    }
}

/// The runs of this process, and whether [`abort_all`] was called: a run that would begin
/// after it (a signal handled while `add` had not yet begun its run) does not.
struct Active {
    runs: Vec<Weak<Mutex<State>>>,
    aborted: bool,
}

static ACTIVE: Mutex<Active> = Mutex::new(Active {
    runs: Vec::new(),
    aborted: false,
});

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Takes back every [`crate::add`] in progress in this process (each after the step it is in
/// has ended), and finishes one that had already put DST in place. For a signal handler: the
/// runs fail with [`Error::Interrupted`] from their next step, and every run begun after this,
/// for the rest of the process, fails at once (the process is about to end). Returns one
/// phrase for each thing done, and last what is left.
pub fn abort_all() -> Vec<String> {
    let runs: Vec<Arc<Mutex<State>>> = {
        let mut active = ACTIVE.lock().unwrap_or_else(PoisonError::into_inner);
        active.aborted = true;
        active.runs.iter().filter_map(Weak::upgrade).collect()
    };
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
            let (undone, all) = s.undo();
            said.extend(undone);
            if all {
                said.push("nothing else is left".into());
            }
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
        let state = Arc::new(Mutex::new(State {
            aborted: false,
            published: false,
            finished: false,
            repo_dir: repo_dir.to_owned(),
            reg: None,
            parents: Vec::new(),
            staging: None,
            branch: None,
            record: None,
            dst: dst.to_owned(),
        }));
        {
            let mut active = ACTIVE.lock().unwrap_or_else(PoisonError::into_inner);
            if active.aborted {
                return Err(Error::Interrupted);
            }
            active.runs.retain(|w| w.strong_count() > 0);
            active.runs.push(Arc::downgrade(&state));
        }
        // The process's undo (a signal handler's `cowtree_fs::undo::undo_all`) takes back
        // every run in progress: registered once, with the first run, for the process's life.
        static UNDO: std::sync::OnceLock<cowtree_fs::undo::Registration> =
            std::sync::OnceLock::new();
        UNDO.get_or_init(|| cowtree_fs::undo::Registration::call(Arc::new(abort_all)));
        let run = Run { state };
        // Made as a step of a run [`abort_all`] already sees, as everything after it: a signal
        // that comes while it is made is handled once it is, and takes it back.
        if let Some(r) = registry {
            run.step(|s| {
                s.record = Some(new_record(r, common)?);
                Ok(())
            })?;
        }
        Ok(run)
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

    /// Creates the run's registration (its journal) with `create`, as one step: a signal
    /// that comes while it is created takes it back once it exists, and none is created once
    /// the run was aborted. Returns its path.
    pub fn register(&self, create: impl FnOnce() -> Result<Registration>) -> Result<PathBuf> {
        self.step(|s| {
            let reg = create()?;
            let path = reg.path();
            s.reg = Some(reg);
            Ok(path)
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
                    bytes.extend_from_slice(crate::portable::bytes(p.as_os_str()));
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
                .write(J_STAGING, crate::portable::bytes(path.as_os_str()))?;
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

/// Creates a record `<stamp>-<random>` (the process's pid and start time, see
/// `cowtree_fs::process`) in `registry` naming `common`, locked by this process.
fn new_record(registry: &Path, common: &Path) -> Result<(std::fs::File, PathBuf)> {
    std::fs::create_dir_all(registry).map_err(Error::io("create directory", registry))?;
    let path = registry.join(format!(
        "{}-{:016x}",
        cowtree_fs::process::Stamp::current(),
        cowtree_fs::staging::random_u64()
    ));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
        .map_err(Error::io("create", &path))?;
    if !crate::portable::try_lock_file(&f, None).map_err(Error::io("lock", &path))? {
        return Err(Error::io("lock", &path)(
            std::io::ErrorKind::WouldBlock.into(),
        ));
    }
    f.write_all(crate::portable::bytes(common.as_os_str()))
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
    /// Killed runs whose staging could not be removed: left, with their records, for the
    /// next gc.
    pub left: usize,
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
        let owner =
            cowtree_fs::process::Stamp::parse_prefix(crate::portable::bytes(&entry.file_name()))
                .map(|(s, _)| s);
        if !lock_record(&f, owner.as_ref(), crate::register::ORPHANS_WAIT) {
            if owner.is_some_and(|s| !s.is_alive()) {
                out.cleaned.push(format!(
                    "left {}: processes its killed run started still hold it after {} s",
                    path.display(),
                    crate::register::ORPHANS_WAIT.as_secs()
                ));
                out.left += 1;
            }
            continue;
        }
        let mut bytes = Vec::new();
        f.read_to_end(&mut bytes)
            .map_err(Error::io("read", &path))?;
        let common = crate::portable::path(&bytes).to_path_buf();
        if common.is_dir() {
            let stale = crate::register::clean_stale_reporting(&common)?;
            out.cleaned.extend(stale.said);
            if stale.left > 0 {
                // What could not be removed is tried again by the next gc: the record stays.
                out.left += stale.left;
                continue;
            }
        }
        std::fs::remove_file(&path).map_err(Error::io("remove", &path))?;
        out.records += 1;
    }
    Ok(out)
}

/// Takes the lock of a run's record `f`. A run that is alive holds it; so, for a moment, does
/// a process a killed run was starting (between its fork and its exec it holds the run's
/// descriptors, and on a loaded machine that moment can last): while `owner` (the run the
/// record names) is dead, waits up to `wait` for them to let go.
fn lock_record(
    f: &std::fs::File,
    owner: Option<&cowtree_fs::process::Stamp>,
    wait: std::time::Duration,
) -> bool {
    let until = std::time::Instant::now() + wait;
    loop {
        if matches!(crate::portable::try_lock_file(f, owner), Ok(true)) {
            return true;
        }
        if owner.is_none_or(|s| s.is_alive()) || std::time::Instant::now() >= until {
            return false;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

#[cfg(all(test, unix))]
mod tests {
    // The only tests in this crate that make runs: `abort_all` aborts every run of the process.
    use super::*;
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    use std::sync::mpsc;
    use std::time::Duration;

    /// Held by each test here: `abort_all` in one would abort the other's run.
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

    /// Takes the lock above and undoes an earlier test's `abort_all`.
    fn alone() -> MutexGuard<'static, ()> {
        let one = ONE_AT_A_TIME.lock().unwrap_or_else(PoisonError::into_inner);
        ACTIVE
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .aborted = false;
        one
    }

    fn create(common: &Path, dst: &Path) -> Result<Registration> {
        Registration::create(
            common,
            OsStr::new("wt"),
            &dst.join(".git"),
            "0000000000000000000000000000000000000000",
            None,
            false,
        )
    }

    /// A signal that comes while the registration is being created (the window a
    /// `git worktree add` interrupted 5 ms after it started fell into) is handled once it
    /// exists, and takes it back, with the run's record.
    #[test]
    fn an_abort_while_the_registration_is_created_takes_it_back() {
        let _one = alone();
        let tmp = tempfile::tempdir().unwrap();
        let (common, dst, registry) = (
            tmp.path().join("common"),
            tmp.path().join("wt"),
            tmp.path().join("registry"),
        );
        std::fs::create_dir(&common).unwrap();
        let run = Run::begin(tmp.path(), &common, &dst, Some(&registry)).unwrap();
        assert_eq!(std::fs::read_dir(&registry).unwrap().count(), 1);
        let (inside, told) = mpsc::channel();
        let (registered, said) = std::thread::scope(|scope| {
            let (run, common, dst) = (&run, &common, &dst);
            // The sender moves into the worker: if it ends without sending, `recv` fails.
            let worker = scope.spawn(move || {
                run.register(move || {
                    inside.send(()).unwrap();
                    std::thread::sleep(Duration::from_millis(200));
                    create(common, dst)
                })
            });
            told.recv().expect("the worker registers");
            let said = abort_all();
            (worker.join().unwrap(), said)
        });
        let path = registered.unwrap();
        assert_eq!(path, common.join("worktrees/wt"));
        assert!(!path.exists(), "the registration was left: {said:?}");
        assert!(
            said.iter().any(|s| s.contains("removed its registration")),
            "{said:?}"
        );
        assert_eq!(
            std::fs::read_dir(&registry).unwrap().count(),
            0,
            "record left"
        );
        assert!(matches!(
            run.staging(&tmp.path().join("staging")),
            Err(Error::Interrupted)
        ));
    }

    /// Once the run was aborted, no registration is created.
    #[test]
    fn after_an_abort_no_registration_is_created() {
        let _one = alone();
        let tmp = tempfile::tempdir().unwrap();
        let (common, dst) = (tmp.path().join("common"), tmp.path().join("wt"));
        std::fs::create_dir(&common).unwrap();
        let run = Run::begin(tmp.path(), &common, &dst, None).unwrap();
        abort_all();
        let mut called = false;
        let r = run.register(|| {
            called = true;
            create(&common, &dst)
        });
        assert!(matches!(r, Err(Error::Interrupted)), "{:?}", r.map(|_| ()));
        assert!(!called);
        assert!(!common.join("worktrees").exists());
    }

    /// A signal handled before `add` began its run (while it resolved its arguments): the
    /// run does not begin, so nothing is made after the handler said nothing was.
    #[test]
    fn a_run_begun_after_an_abort_is_refused() {
        let _one = alone();
        let tmp = tempfile::tempdir().unwrap();
        let registry = tmp.path().join("registry");
        abort_all();
        let r = Run::begin(
            tmp.path(),
            tmp.path(),
            &tmp.path().join("wt"),
            Some(&registry),
        );
        assert!(matches!(r, Err(Error::Interrupted)), "{:?}", r.map(|_| ()));
        assert!(!registry.exists(), "no record made");
    }

    /// A killed run's record still locked by a process it was starting is taken once that
    /// process lets go (gc waits for it), not skipped; a live run's record is left at once.
    #[test]
    fn a_killed_runs_record_held_by_its_last_child_is_cleaned_when_the_child_lets_go()
    -> std::result::Result<(), Box<dyn std::error::Error>> {
        let tmp = tempfile::tempdir()?;
        let reg = tmp.path().join("registry");
        std::fs::create_dir(&reg)?;
        // A run that has ended: a process that exited.
        let mut gone = std::process::Command::new("true").spawn()?;
        let pid = gone.id();
        gone.wait()?;
        let dead = reg.join(format!("{pid}t1-0123456789abcdef"));
        std::fs::write(
            &dead,
            tmp.path().join("no-such-repository").as_os_str().as_bytes(),
        )?;
        // Its "child": holds the record's lock for 300 ms.
        let mut holder = std::process::Command::new("flock")
            .arg(&dead)
            .args(["sleep", "0.3"])
            .spawn()?;
        let t = std::time::Instant::now();
        while std::fs::File::open(&dead).is_ok_and(|f| {
            rustix::fs::flock(&f, rustix::fs::FlockOperation::NonBlockingLockExclusive).is_ok()
        }) {
            if t.elapsed() > std::time::Duration::from_secs(5) {
                return Err("flock(1) did not take the lock".into());
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let out = clean_killed_runs(&reg)?;
        holder.wait()?;
        assert_eq!(out.records, 1, "{out:?}");
        assert!(!dead.exists());
        // A live run (this process) holding its record: left at once, not waited for.
        let me = cowtree_fs::process::Stamp::current();
        let live = reg.join(format!("{}-0123456789abcdef", me.token()));
        std::fs::write(&live, tmp.path().as_os_str().as_bytes())?;
        let held = std::fs::File::open(&live)?;
        rustix::fs::flock(&held, rustix::fs::FlockOperation::NonBlockingLockExclusive)?;
        let t = std::time::Instant::now();
        let out = clean_killed_runs(&reg)?;
        assert!(t.elapsed() < std::time::Duration::from_secs(5));
        assert_eq!((out.records, out.left), (0, 0), "{out:?}");
        assert!(live.exists());
        Ok(())
    }
}
