//! The registration git keeps for a linked worktree, written as `git worktree add` writes it:
//! `$GIT_COMMON_DIR/worktrees/<id>/` with `gitdir`, `commondir`, `HEAD` and `index`, and a
//! `.git` file in the worktree that points back to it.
//!
//! While a run works, the directory holds a `locked` file (as git's own `worktree add` does,
//! so that a concurrent `git worktree prune` leaves it alone) whose text starts with
//! [`LOCK_MARK`] and the run's [`Stamp`] (pid and start time), and the run holds an `flock` on
//! the directory. A directory with that mark whose lock is free belongs to a run that was
//! killed: the next run removes it (or, when the worktree it names is in place, only the
//! `locked` file, which was the last step left).
//!
//! The lock is also held by every process the run starts (`git branch`, hooks, filters): the
//! run keeps a duplicate of the directory's descriptor without close-on-exec, so its children
//! inherit it. A run killed outright does not kill them, and one of them may still be writing
//! (a `git branch` that creates the branch after the run died, which cleanup would then leave
//! behind); while any is alive the lock stays taken. Cleanup that finds the lock taken and the
//! run itself dead ([`Stamp::is_alive`], not fooled by a reused pid) waits for them to end
//! ([`ORPHANS_WAIT`]) before it takes the run back.

use std::ffi::OsStr;
use std::io::Write;
use std::path::{Path, PathBuf};

use cowtree_fs::atomic_file::write_atomic;
use cowtree_fs::dir::Dir;
use cowtree_fs::process::Stamp;

use crate::error::{Error, Result};
use crate::journal::KilledStaging;

/// The start of the `locked` file of a registration this crate is still building; the whole
/// text is `initializing (cowtree git worktree add, pid STAMP)` ([`Stamp::token`]).
pub const LOCK_MARK: &str = "initializing (cowtree git worktree add";

/// How a registration directory is named while it is made, before its rename to its id
/// (`.cowtree-new.<stamp>.<random>`, see [`Registration::create`]).
pub const NEW_PREFIX: &str = ".cowtree-new.";

/// `ENOTEMPTY`: what some filesystems return for a rename over an existing directory even with
/// `RENAME_NOREPLACE`.
#[cfg(unix)]
fn libc_enotempty() -> i32 {
    rustix::io::Errno::NOTEMPTY.raw_os_error()
}

/// `ERROR_DIR_NOT_EMPTY`, Windows' answer in the same case.
#[cfg(windows)]
fn libc_enotempty() -> i32 {
    145
}

/// How long cleanup waits for the processes a killed run started to end (see the module doc)
/// before it leaves the run to a later try.
pub const ORPHANS_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// The run that wrote a `locked` text starting with [`LOCK_MARK`], when the text names it.
fn lock_owner(text: &[u8]) -> Option<Stamp> {
    let at = text.windows(4).position(|w| w == b"pid ")?;
    Stamp::parse_prefix(&text[at + 4..]).map(|(s, _)| s)
}

/// Takes the lock of the registration directory `dir` of a run that may be dead: at once when
/// it is free; when it is taken by the processes a dead run started (see the module doc),
/// once they have ended, waiting up to `wait`. `Ok(false)`: a live run holds it, or its
/// processes outlasted the wait.
fn lock_dead_run(dir: &Dir, path: &Path, locked: &[u8], wait: std::time::Duration) -> Result<bool> {
    let until = std::time::Instant::now() + wait;
    loop {
        if crate::portable::try_lock_dir(dir, lock_owner(locked))
            .map_err(Error::io("lock", path))?
        {
            return Ok(true);
        }
        // A run that is alive (or that the text does not name) holds it: not ours to take.
        if lock_owner(locked).is_none_or(|s| s.is_alive()) || std::time::Instant::now() >= until {
            return Ok(false);
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// How git's refname rules treat a byte (refs.c, `refname_disposition`): 0 fine, 1 ends the
/// component, 2 `.`, 3 `{`, 4 not allowed, 5 `*`.
fn disposition(b: u8) -> u8 {
    match b {
        0 | b'/' => 1,
        b'.' => 2,
        b'{' => 3,
        b'*' => 5,
        1..=0x1f | 0x7f | b' ' | b':' | b'?' | b'[' | b'\\' | b'^' | b'~' => 4,
        _ => 0,
    }
}

/// The worktree id git derives from the destination's name: its `sanitize_refname_component`
/// (refs.c, `check_refname_component` with a buffer), byte for byte: a character a ref name
/// cannot hold becomes `-` (as does a `{` after `@`), `..` becomes `.`, a leading `.` becomes
/// `-`, `.lock` suffixes go. A name left empty is `worktree` (git's `BUG` never reached: a
/// name has at least one byte).
pub fn worktree_id(dst_name: &OsStr) -> String {
    let name = crate::portable::bytes(dst_name);
    let mut out: Vec<u8> = Vec::with_capacity(name.len());
    let mut last = 0u8;
    for &ch in name {
        let disp = disposition(ch);
        if disp == 1 {
            break;
        }
        out.push(ch);
        match disp {
            2 if last == b'.' => {
                out.pop();
            }
            3..=5 if disp != 3 || last == b'@' => {
                let n = out.len();
                out[n - 1] = b'-';
            }
            _ => {}
        }
        last = ch;
    }
    if name.first() == Some(&b'.') && !out.is_empty() {
        out[0] = b'-';
    }
    if name.ends_with(b".lock") {
        while out.ends_with(b".lock") {
            out.truncate(out.len() - 5);
        }
    }
    if out.is_empty() {
        return "worktree".into();
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `core.logAllRefUpdates`, as git reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogRefs {
    /// Not set: git logs in a repository that is not bare.
    Unset,
    /// `false`.
    Never,
    /// `true` or `always`.
    Yes,
}

/// The lines `git worktree add` leaves in the new worktree's `logs/HEAD`, as (old, new,
/// message): its `update-ref`/`symbolic-ref` of HEAD (run as a repository that is bare when
/// the common repository is) logs the checkout's commit; its `git reset --hard` in the new
/// worktree logs `reset: moving to HEAD` where HEAD is a branch. An unborn branch logs
/// nothing.
pub fn head_log(
    commit: Option<gix::ObjectId>,
    on_branch: bool,
    checkout: bool,
    log: LogRefs,
    bare: bool,
) -> Vec<(gix::ObjectId, gix::ObjectId, &'static str)> {
    let Some(c) = commit else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let first = match log {
        LogRefs::Yes => true,
        LogRefs::Never => false,
        LogRefs::Unset => !bare,
    };
    if first {
        out.push((gix::ObjectId::null(c.kind()), c, ""));
    }
    if checkout && on_branch && log != LogRefs::Never {
        out.push((c, c, "reset: moving to HEAD"));
    }
    out
}

/// A registration directory being built; [`Registration::finish`] makes it final, dropping it
/// unfinished removes it.
pub struct Registration {
    worktrees: Dir,
    worktrees_path: PathBuf,
    id: String,
    /// The directory; its open description holds the run's `flock`.
    pub dir: Dir,
    /// A duplicate of `dir`'s descriptor without close-on-exec: the processes the run starts
    /// inherit it, and with it the lock (see the module doc). Not on Windows, whose lock is
    /// the run itself (`portable::try_lock_dir`).
    #[cfg(unix)]
    _inherited: std::os::fd::OwnedFd,
    finished: bool,
    sync: bool,
}

impl Registration {
    /// `$GIT_COMMON_DIR/worktrees/<id>`.
    pub fn path(&self) -> PathBuf {
        self.worktrees_path.join(&self.id)
    }

    /// The worktree id (the directory's name).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Creates `worktrees/<id>` (or `<id>1`, `<id>2`, ... as git does when taken), locks it
    /// and writes `locked`, `commondir`, `gitdir` (naming `dst_git_file`) and `HEAD`.
    /// `lock`: the text `locked` keeps once the worktree is complete (`--lock`), journaled
    /// here until then. With `sync`, the directory and every file written in it (the
    /// journal included) are made durable as they are written.
    pub fn create(
        common_dir: &Path,
        dst_name: &OsStr,
        dst_git_file: &Path,
        head: &str,
        lock: Option<&str>,
        sync: bool,
    ) -> Result<Registration> {
        let worktrees_path = common_dir.join("worktrees");
        match std::fs::create_dir(&worktrees_path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(Error::io("create directory", &worktrees_path)(e)),
        }
        let worktrees = Dir::open(&worktrees_path).map_err(Error::io("open", &worktrees_path))?;
        // Made under a name of this run's own (`.cowtree-new.<stamp>.<random>`), locked and
        // marked there, then renamed to its id: a run killed before the mark leaves only a
        // directory whose name says whose it was ([`clean_stale`] removes it once that run is
        // dead), never an unmarked `worktrees/<id>` nobody can tell from git's own.
        let new_name = format!(
            "{NEW_PREFIX}{}.{:016x}",
            Stamp::current(),
            cowtree_fs::staging::random_u64()
        );
        let new_path = worktrees_path.join(&new_name);
        worktrees
            .create_dir(OsStr::new(&new_name), 0o777)
            .map_err(Error::io("create directory", &new_path))?;
        let made = (|| {
            let dir = worktrees
                .open_dir(OsStr::new(&new_name))
                .map_err(Error::io("open", &new_path))?;
            // Shares `dir`'s open description, so the lock taken below on one is held by both.
            #[cfg(unix)]
            let inherited = rustix::io::dup(&dir)
                .map_err(|e| Error::io("duplicate the descriptor of", &new_path)(e.into()))?;
            #[cfg(windows)]
            let inherited = ();
            crate::portable::try_lock_dir(&dir, None).map_err(Error::io("lock", &new_path))?;
            let me = Stamp::current();
            write_atomic(
                &dir,
                OsStr::new("locked"),
                format!("{LOCK_MARK}, pid {me})\n").as_bytes(),
                0o666,
                sync,
            )
            .map_err(Error::io("write", new_path.join("locked")))?;
            let base = worktree_id(dst_name);
            let mut counter = 0u32;
            let id = loop {
                let id = if counter == 0 {
                    base.clone()
                } else {
                    format!("{base}{counter}")
                };
                match worktrees.rename_noreplace(OsStr::new(&new_name), &worktrees, OsStr::new(&id))
                {
                    Ok(()) => break id,
                    Err(e)
                        if e.kind() == std::io::ErrorKind::AlreadyExists
                            || e.raw_os_error() == Some(libc_enotempty()) =>
                    {
                        if counter >= 100_000 {
                            return Err(Error::io("rename", worktrees_path.join(&id))(e));
                        }
                        counter += 1;
                    }
                    Err(e) => return Err(Error::io("rename", worktrees_path.join(&id))(e)),
                }
            };
            // Windows: the directory opened again under its id, as Wine (8) resolves a handle
            // by the name it was opened with: a rename relative to one whose directory was
            // renamed since fails there ("invalid handle"). The lock is not this handle there
            // (`portable::try_lock_dir`).
            #[cfg(windows)]
            let dir = worktrees
                .open_dir(OsStr::new(&id))
                .map_err(Error::io("open", worktrees_path.join(&id)))?;
            Ok((id, dir, inherited))
        })();
        let (id, dir, inherited) = match made {
            Ok(m) => m,
            Err(e) => {
                let _ = worktrees.remove_tree(OsStr::new(&new_name));
                return Err(e);
            }
        };
        #[cfg(windows)]
        let () = inherited;
        let path = worktrees_path.join(&id);
        let reg = Registration {
            worktrees,
            worktrees_path,
            id,
            dir,
            #[cfg(unix)]
            _inherited: inherited,
            finished: false,
            sync,
        };
        debug_assert_eq!(reg.path(), path);
        if sync {
            reg.worktrees
                .sync()
                .map_err(Error::io("sync", &reg.worktrees_path))?;
        }
        reg.dir
            .create_dir(OsStr::new("refs"), 0o777)
            .map_err(Error::io("create directory", reg.path().join("refs")))?;
        reg.write("commondir", b"../..\n")?;
        let mut gitdir = crate::portable::git_path_text(dst_git_file);
        gitdir.push(b'\n');
        reg.write("gitdir", &gitdir)?;
        reg.write("HEAD", format!("{head}\n").as_bytes())?;
        if let Some(text) = lock {
            // As git's `write_file`: the text and a newline (none for an empty text).
            let line = if text.is_empty() {
                String::new()
            } else {
                format!("{text}\n")
            };
            reg.write(crate::journal::J_LOCK, line.as_bytes())?;
        }
        Ok(reg)
    }

    /// Lays the registration out for a reftable repository, as git's
    /// `reftable_be_create_on_disk` lays out a worktree's ref store: `HEAD` the stub `ref:
    /// refs/heads/.invalid` (old readers see no branch), `refs/heads` a file saying why, an
    /// empty `reftable/` stack. HEAD itself is then set in the stack
    /// ([`crate::refs::HeadWriter`]).
    pub fn make_reftable_store(&self) -> Result<()> {
        self.write("HEAD", b"ref: refs/heads/.invalid\n")?;
        let refs = Dir::open(&self.path().join("refs"))
            .map_err(Error::io("open", self.path().join("refs")))?;
        write_atomic(
            &refs,
            OsStr::new("heads"),
            b"this repository uses the reftable format\n",
            0o666,
            self.sync,
        )
        .map_err(Error::io("write", self.path().join("refs/heads")))?;
        match self.dir.create_dir(OsStr::new("reftable"), 0o777) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
            Err(e) => Err(Error::io("create directory", self.path().join("reftable"))(
                e,
            )),
        }
    }

    /// Writes the file `name` in the registration directory (replacing it atomically).
    pub fn write(&self, name: &str, bytes: &[u8]) -> Result<()> {
        write_atomic(&self.dir, OsStr::new(name), bytes, 0o666, self.sync)
            .map_err(Error::io("write", self.path().join(name)))
    }

    /// Writes the file `name` in the subdirectory `sub` of the registration directory (made
    /// if missing, as git's `safe_create_leading_directories`), replacing it atomically.
    pub fn write_in(&self, sub: &str, name: &str, bytes: &[u8]) -> Result<()> {
        let at = self.path().join(sub);
        match self.dir.create_dir(OsStr::new(sub), 0o777) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(Error::io("create directory", &at)(e)),
        }
        let d = self
            .dir
            .open_dir(OsStr::new(sub))
            .map_err(Error::io("open", &at))?;
        write_atomic(&d, OsStr::new(name), bytes, 0o666, self.sync)
            .map_err(Error::io("write", at.join(name)))
    }

    /// Writes the index through `fill` into a temporary file, renamed to `index` when done.
    /// Returns the index file's mtime (seconds, nanoseconds) after the rename.
    pub fn write_index(
        &self,
        fill: impl FnOnce(&mut std::io::BufWriter<&mut std::fs::File>) -> std::io::Result<()>,
    ) -> Result<(i64, u32)> {
        let path = self.path().join("index");
        let mut tmp = cowtree_fs::atomic_file::AtomicFile::create(
            cowtree_fs::sys::AsFd::as_fd(&self.dir),
            0o666,
        )
        .map_err(Error::io("create", &path))?;
        {
            let mut w = std::io::BufWriter::with_capacity(1 << 20, tmp.file());
            fill(&mut w).map_err(Error::io("write", &path))?;
            w.flush().map_err(Error::io("write", &path))?;
        }
        let mtime = tmp
            .file()
            .metadata()
            .map_err(Error::io("stat", &path))
            .map(|m| crate::portable::file_mtime(&m))?;
        tmp.commit(OsStr::new("index"), false)
            .map_err(Error::io("rename", &path))?;
        Ok(mtime)
    }

    /// Writes `logs/HEAD` with `lines` (old, new, message) signed by `ident` (`Name <email>
    /// seconds +zone`), as git's files backend writes a reflog; nothing when there are none.
    pub fn write_head_log(
        &self,
        lines: &[(gix::ObjectId, gix::ObjectId, &str)],
        ident: &[u8],
    ) -> Result<()> {
        if lines.is_empty() {
            return Ok(());
        }
        let logs = self.path().join("logs");
        match self.dir.create_dir(OsStr::new("logs"), 0o777) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(Error::io("create directory", &logs)(e)),
        }
        let dir = self
            .dir
            .open_dir(OsStr::new("logs"))
            .map_err(Error::io("open", &logs))?;
        let mut text = Vec::new();
        for (old, new, msg) in lines {
            text.extend_from_slice(format!("{old} {new} ").as_bytes());
            text.extend_from_slice(ident);
            if !msg.is_empty() {
                text.push(b'\t');
                text.extend_from_slice(msg.as_bytes());
            }
            text.push(b'\n');
        }
        write_atomic(&dir, OsStr::new("HEAD"), &text, 0o666, self.sync)
            .map_err(Error::io("write", logs.join("HEAD")))
    }

    /// Removes the file `name` if it is there.
    pub fn remove(&self, name: &str) -> Result<()> {
        match self.dir.remove_file(OsStr::new(name)) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io("remove", self.path().join(name))(e)),
        }
    }

    /// Leaves the registration as it is, journal and `locked` mark included, for `cowtree gc`
    /// ([`clean_stale`]) to take back with what it journals: dropping it then removes nothing
    /// (it stays locked until then).
    pub fn leave_for_gc(&mut self) {
        self.finished = true;
    }

    /// The worktree is complete: `locked` goes (git's own commands may now prune or remove
    /// it), or with `--lock` keeps the journaled reason as its text. With `sync`, the
    /// directory is synced afterwards.
    pub fn finish(mut self, sync: bool) -> Result<()> {
        self.finished = true;
        finish_dir(&self.dir, &self.path())?;
        if sync {
            self.dir.sync().map_err(Error::io("sync", self.path()))?;
        }
        Ok(())
    }
}

/// `locked` gets the journaled `--lock` text (then the journal file goes), or goes.
fn finish_dir(dir: &Dir, path: &Path) -> Result<()> {
    let lock = crate::journal::J_LOCK;
    match std::fs::read(path.join(lock)) {
        Ok(text) => {
            write_atomic(dir, OsStr::new("locked"), &text, 0o666, false)
                .map_err(Error::io("write", path.join("locked")))?;
            dir.remove_file(OsStr::new(lock))
                .map_err(Error::io("remove", path.join(lock)))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => dir
            .remove_file(OsStr::new("locked"))
            .map_err(Error::io("remove", path.join("locked"))),
        Err(e) => Err(Error::io("read", path.join(lock))(e)),
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        if !self.finished {
            let _ = remove_registration(&self.worktrees, OsStr::new(&self.id));
        }
    }
}

/// Removes the registration directory `name` in `worktrees` so that a process killed while it
/// removes it (a signal handler's exit cuts off a `cowtree gc` or an `add`'s cleanup in
/// another thread; `kill -9`) never leaves a registration without its `locked` mark, which
/// nothing would ever take back: it is renamed first to a name of this process's own
/// ([`NEW_PREFIX`] and its [`Stamp`], as one being made), its `locked` removed, then the rest.
/// Cut off before `locked` went, the renamed directory is still a killed run's to
/// [`clean_stale`]; after, it is a dead process's unmarked new directory, which
/// [`clean_stale`] removes too.
fn remove_registration(worktrees: &Dir, name: &OsStr) -> std::io::Result<()> {
    let gone = format!(
        "{NEW_PREFIX}{}.{:016x}",
        Stamp::current(),
        cowtree_fs::staging::random_u64()
    );
    let gone = OsStr::new(&gone);
    match worktrees.rename_noreplace(name, worktrees, gone) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    }
    if let Ok(dir) = worktrees.open_dir(gone) {
        match dir.remove_file(OsStr::new("locked")) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    worktrees.remove_tree(gone)
}

/// Cleans up after killed runs in `$GIT_COMMON_DIR/worktrees`: registrations still marked
/// [`LOCK_MARK`] whose lock is free. When DST is in place and points back to it (the run was
/// killed in its last step) the worktree is finished: `locked` gets its `--lock` text or goes.
/// Otherwise what the run journaled is taken back (see [`crate::run`]): its staging directory
/// (unless a live run holds it), a branch it created or reset (where it still is where the run
/// put it), the parents of DST it created (when empty), then the registration itself. Returns
/// one phrase for each thing done.
pub fn clean_stale(common_dir: &Path) -> Result<Vec<String>> {
    clean_stale_reporting(common_dir).map(|s| s.said)
}

/// What [`clean_stale_reporting`] did.
#[derive(Debug, Default, Clone)]
pub struct Stale {
    /// One phrase for each thing done (or that could not be).
    pub said: Vec<String>,
    /// Registrations of killed runs left for a later try: their staging could not be removed.
    pub left: usize,
}

/// [`clean_stale`], also counting the killed runs it had to leave (see [`Stale::left`]).
pub fn clean_stale_reporting(common_dir: &Path) -> Result<Stale> {
    let worktrees_path = common_dir.join("worktrees");
    let worktrees = match Dir::open(&worktrees_path) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Stale::default()),
        Err(e) => return Err(Error::io("open", &worktrees_path)(e)),
    };
    let mut cleaned = Vec::new();
    let mut left = 0;
    for entry in worktrees
        .entries()
        .map_err(Error::io("list", &worktrees_path))?
    {
        let path = worktrees_path.join(&entry.name);
        if let Some(rest) = crate::portable::bytes(&entry.name).strip_prefix(NEW_PREFIX.as_bytes())
            && std::fs::symlink_metadata(path.join("locked")).is_err()
        {
            // Killed between making its registration directory and marking it: nothing
            // else of the run exists yet (see `Registration::create`).
            let owner = Stamp::parse_prefix(rest).map(|(s, _)| s);
            let dead = owner.is_some_and(|s| !s.is_alive());
            if dead
                && let Ok(d) = worktrees.open_dir(&entry.name)
                && crate::portable::try_lock_dir(&d, owner).unwrap_or(false)
            {
                worktrees
                    .remove_tree(&entry.name)
                    .map_err(Error::io("remove", &path))?;
                cleaned.push(format!("removed {}", path.display()));
            }
            continue;
        }
        let Ok(lock) = std::fs::read(path.join("locked")) else {
            continue;
        };
        if !lock.starts_with(LOCK_MARK.as_bytes()) {
            continue;
        }
        let Ok(dir) = worktrees.open_dir(&entry.name) else {
            continue;
        };
        if !lock_dead_run(&dir, &path, &lock, ORPHANS_WAIT)? {
            if lock_owner(&lock).is_some_and(|s| !s.is_alive()) {
                cleaned.push(format!(
                    "left {}: processes its killed run started still hold it after {} s",
                    path.display(),
                    ORPHANS_WAIT.as_secs()
                ));
                left += 1;
            }
            continue;
        }
        // Locked after a wait, the directory may no longer be the one its name gives: another
        // cleanup took the killed run back meanwhile, and a new run's registration may have
        // the name now. Only the directory locked here is this cleanup's (while it holds the
        // lock, no cowtree run or `git worktree prune` moves it: it is marked `locked`).
        let still = |d: &Dir| -> Option<bool> {
            let (a, b) = (d.stat_self().ok()?, worktrees.try_stat(&entry.name).ok()??);
            Some(crate::portable::same_entry(&a, &b))
        };
        if still(&dir) != Some(true) {
            continue;
        }
        // Nor may it still be the killed run's: a run alive when its `locked` was read above
        // may have finished since (its `locked` gone or given its `--lock` text, then its lock
        // let go), and a finished worktree is not a cleanup's.
        if std::fs::read(path.join("locked")).ok().as_deref() != Some(lock.as_slice()) {
            continue;
        }
        let complete = std::fs::read(path.join("gitdir"))
            .ok()
            .and_then(|g| {
                let g = g.strip_suffix(b"\n").unwrap_or(&g).to_vec();
                std::fs::read(crate::portable::path(&g)).ok()
            })
            .is_some_and(|dotgit| {
                #[cfg(unix)]
                let want = format!("gitdir: {}\n", path.display()).into_bytes();
                // As the run wrote it (`portable::git_path_text`: forward slashes).
                #[cfg(windows)]
                let want = [
                    &b"gitdir: "[..],
                    &crate::portable::git_path_text(&path),
                    b"\n",
                ]
                .concat();
                dotgit == want
            });
        let (staging, parents) = crate::journal::journaled_paths(&path);
        if complete {
            for j in [
                crate::journal::J_STAGING,
                crate::journal::J_PARENTS,
                crate::journal::J_BRANCH,
            ] {
                let _ = dir.remove_file(OsStr::new(j));
            }
            finish_dir(&dir, &path)?;
            cleaned.push(format!(
                "finished the worktree registered in {} (complete, killed in its last step)",
                path.display()
            ));
            continue;
        }
        if let Some(st) = &staging {
            match crate::journal::remove_killed_staging(st) {
                Ok(KilledStaging::Removed) => cleaned.push(format!("removed {}", st.display())),
                Ok(KilledStaging::Absent) => {}
                // Its lock is taken though the run's is free (every process of the run holds
                // both): left, registration and record with it, for the next try.
                Ok(KilledStaging::Live) => {
                    cleaned.push(format!("left {}: its lock is taken", st.display()));
                    left += 1;
                    continue;
                }
                Err(e) => {
                    // Still there: the registration (and its journal) stays for the next try.
                    cleaned.push(format!("could not remove {}: {e}", st.display()));
                    left += 1;
                    continue;
                }
            }
        }
        if let Ok(line) = std::fs::read(path.join(crate::journal::J_BRANCH))
            && let Some(b) = crate::journal::BranchUndo::parse(&line)
            // git run in the common directory finds the repository (bare or not).
            && let Some(said) = b.undo(common_dir)
        {
            cleaned.push(said);
        }
        for p in parents.iter().rev() {
            let _ = std::fs::remove_dir(p);
        }
        // Removed while its lock is still held (the lock is the open directory's: renamed,
        // it stays held), so that no other cleanup starts on it meanwhile.
        remove_registration(&worktrees, &entry.name).map_err(Error::io("remove", &path))?;
        drop(dir);
        cleaned.push(format!("removed the registration {}", path.display()));
    }
    Ok(Stale {
        said: cleaned,
        left,
    })
}

/// git's `check_candidate_path`: refuses a DST that git has registered as a worktree whose
/// directory is missing (or empty), unless `force` (twice when it is locked); forced, the old
/// registration is removed. A registration a live cowtree run is building is always refused.
pub fn check_candidate(common_dir: &Path, dst: &Path, given: &str, force: u8) -> Result<()> {
    let worktrees_path = common_dir.join("worktrees");
    let Ok(list) = std::fs::read_dir(&worktrees_path) else {
        return Ok(());
    };
    for entry in list.flatten() {
        let path = entry.path();
        let Ok(gitdir) = std::fs::read(path.join("gitdir")) else {
            continue;
        };
        let gitdir = crate::portable::path(gitdir.trim_ascii_end()).to_path_buf();
        if gitdir.parent() != Some(dst) {
            continue;
        }
        let lock = std::fs::read(path.join("locked")).ok();
        if lock
            .as_deref()
            .is_some_and(|l| l.starts_with(LOCK_MARK.as_bytes()))
        {
            let owner = lock.as_deref().and_then(lock_owner);
            let busy = Dir::open(&path)
                .and_then(|d| crate::portable::try_lock_dir(&d, owner))
                .map(|free| !free)
                .unwrap_or(false);
            if busy {
                return Err(Error::BeingAdded {
                    path: dst.to_owned(),
                });
            }
        }
        let locked = lock.is_some();
        if (!locked && force >= 1) || (locked && force >= 2) {
            std::fs::remove_dir_all(&path).map_err(Error::io("remove", &path))?;
            return Ok(());
        }
        return Err(Error::RegisteredMissing {
            path: dst.to_owned(),
            given: given.to_owned(),
            locked,
        });
    }
    Ok(())
}

/// The worktrees of the repository whose common directory is `common_dir`: each one's git
/// directory and path, as git's `get_worktrees` finds them: the main one first (not in a
/// `bare` repository; its path is the common directory without a final `/.git`), then each
/// registration whose `gitdir` file names its `.git`.
pub fn worktrees(common_dir: &Path, bare: bool) -> Vec<(PathBuf, PathBuf)> {
    let common = crate::portable::canonical(common_dir);
    let mut out = Vec::new();
    if !bare {
        let main = match common.file_name() {
            Some(n) if n == ".git" => common.parent().unwrap_or(&common).to_path_buf(),
            _ => common.clone(),
        };
        out.push((common.clone(), main));
    }
    let Ok(list) = std::fs::read_dir(common.join("worktrees")) else {
        return out;
    };
    let mut entries: Vec<PathBuf> = list.flatten().map(|e| e.path()).collect();
    entries.sort();
    for p in entries {
        let Ok(gitdir) = std::fs::read(p.join("gitdir")) else {
            continue;
        };
        let g = crate::portable::path(gitdir.trim_ascii_end());
        let g = if g.is_absolute() {
            g.to_path_buf()
        } else {
            p.join(g)
        };
        let path = match g.file_name() {
            Some(n) if n == ".git" => g.parent().unwrap_or(&g).to_path_buf(),
            _ => g.clone(),
        };
        out.push((p, path));
    }
    out
}

/// What a worktree's HEAD is, for [`branch_busy_in`]: the branch it names (`None`: detached
/// or unreadable), and whether it is detached.
pub struct Head {
    /// `refs/heads/...` HEAD points to.
    pub symref: Option<String>,
    /// HEAD names a commit.
    pub detached: bool,
}

/// HEAD of the worktree whose git directory is `gitdir`, read from the files backend: a
/// `ref: ` line, a symbolic link (an old form git still reads), or an id.
pub fn files_head(gitdir: &Path) -> Head {
    let head = gitdir.join("HEAD");
    if let Ok(target) = std::fs::read_link(&head) {
        let t = target.to_string_lossy().into_owned();
        let symref = t.find("refs/heads/").map(|at| t[at..].to_owned());
        return Head {
            symref,
            detached: false,
        };
    }
    match std::fs::read(&head) {
        Ok(b) => {
            let line = String::from_utf8_lossy(b.trim_ascii_end()).into_owned();
            match line.strip_prefix("ref: ") {
                Some(r) => Head {
                    symref: Some(r.trim().to_owned()),
                    detached: false,
                },
                None => Head {
                    symref: None,
                    detached: !line.is_empty(),
                },
            }
        }
        Err(_) => Head {
            symref: None,
            detached: false,
        },
    }
}

/// Whether the worktree whose git directory is `gitdir` and whose HEAD is `head` has
/// `refs/heads/<branch>` checked out as git's `is_shared_symref` tells it: HEAD names it, or
/// HEAD is detached while a rebase of it (`rebase-merge/head-name`,
/// `rebase-apply/head-name`) or a bisect started from it (`BISECT_START`) is in progress.
pub fn branch_busy_in(gitdir: &Path, head: &Head, branch: &str) -> bool {
    let full = format!("refs/heads/{branch}");
    if head.symref.as_deref() == Some(full.as_str()) {
        return true;
    }
    if !head.detached {
        return false;
    }
    let read = |rel: &str| {
        std::fs::read(gitdir.join(rel))
            .ok()
            .map(|b| String::from_utf8_lossy(b.trim_ascii_end()).into_owned())
    };
    ["rebase-merge/head-name", "rebase-apply/head-name"]
        .iter()
        .any(|f| read(f).as_deref() == Some(full.as_str()))
        || read("BISECT_START").as_deref() == Some(branch)
}

/// The worktree that has `refs/heads/<branch>` checked out, if any ([`branch_busy_in`]), in a
/// repository keeping its refs in files.
pub fn branch_checked_out_at(common_dir: &Path, branch: &str, bare: bool) -> Option<PathBuf> {
    worktrees(common_dir, bare)
        .into_iter()
        .find(|(gitdir, _)| branch_busy_in(gitdir, &files_head(gitdir), branch))
        .map(|(_, path)| path)
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    /// A registration `name` in `common`, of the worktree whose `.git` is `dot_git`, HEAD
    /// detached at the null id.
    fn register(common: &Path, name: &str, dot_git: &Path) -> Registration {
        Registration::create(
            common,
            OsStr::new(name),
            dot_git,
            "0000000000000000000000000000000000000000",
            None,
            false,
        )
        .expect("create")
    }

    /// A run killed between making its registration directory and writing `locked` leaves
    /// a directory named for it, with nothing in it: taken back once that run is dead, a live
    /// run's left alone.
    #[test]
    fn an_unmarked_new_registration_of_a_dead_run_is_removed() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let wt = tmp.path().join("worktrees");
        std::fs::create_dir(&wt).expect("mkdir");
        // pid 1 exists everywhere; it did not start at tick 1 (unless /proc cannot tell).
        let dead = wt.join(format!("{NEW_PREFIX}1t1.00ff"));
        let live = wt.join(format!("{NEW_PREFIX}{}.00ee", Stamp::current()));
        std::fs::create_dir(&dead).expect("mkdir");
        std::fs::create_dir(&live).expect("mkdir");
        let said = clean_stale(tmp.path()).expect("clean");
        assert!(live.is_dir(), "a live run's new registration was removed");
        let init_reused = Stamp {
            pid: 1,
            start: Some(1),
        };
        if init_reused.is_alive() {
            assert!(dead.is_dir());
        } else {
            assert!(!dead.exists(), "{said:?}");
            assert_eq!(said, vec![format!("removed {}", dead.display())]);
        }
    }

    /// What a cleanup cut off while it removes a killed run's registration leaves (renamed
    /// with its `locked` mark, or with the mark already gone), the next cleanup takes back:
    /// never a registration without its mark under a name git lists for good.
    #[test]
    fn a_registration_whose_removal_was_cut_off_is_removed_by_the_next_cleanup() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let wt = tmp.path().join("worktrees");
        std::fs::create_dir(&wt).expect("mkdir");
        let worktrees = Dir::open(&wt).expect("open");
        let dead = Stamp {
            pid: 1,
            start: Some(1),
        };
        if dead.is_alive() {
            return; // /proc cannot tell a dead run here
        }
        let make = |name: &str, locked: bool| {
            let d = wt.join(name);
            std::fs::create_dir(&d).expect("mkdir");
            std::fs::write(d.join("gitdir"), b"/nonexistent/wt/.git\n").expect("gitdir");
            std::fs::write(
                d.join("HEAD"),
                b"0000000000000000000000000000000000000000\n",
            )
            .expect("HEAD");
            if locked {
                std::fs::write(d.join("locked"), format!("{LOCK_MARK}, pid {dead})\n"))
                    .expect("locked");
            }
            d
        };
        // Renamed by a cleanup (this process), `locked` still there.
        let renamed = make(&format!("{NEW_PREFIX}{}.00aa", Stamp::current()), true);
        // Renamed by a cleanup that died, `locked` gone.
        let unmarked = make(&format!("{NEW_PREFIX}{dead}.00bb"), false);
        // And one whose removal is done whole.
        let whole = make("wt", true);
        remove_registration(&worktrees, OsStr::new("wt")).expect("remove");
        assert!(!whole.exists());
        let said = clean_stale(tmp.path()).expect("clean");
        assert!(!renamed.exists(), "{said:?}");
        assert!(!unmarked.exists(), "{said:?}");
        let left: Vec<_> = std::fs::read_dir(&wt).expect("list").collect();
        assert!(left.is_empty(), "{left:?}");
    }

    /// Two cleanups of one killed run's registration (an `add`'s and a `cowtree gc`'s): the
    /// one that waited for the lock while the other took the run back must not then remove,
    /// by its name, the registration a new run has made under that name meanwhile.
    #[test]
    fn a_cleanup_that_waited_leaves_a_new_registration_under_the_same_name_alone() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let wt = tmp.path().join("worktrees");
        let killed = wt.join("dst");
        std::fs::create_dir_all(&killed).expect("mkdir");
        let dead = Stamp {
            pid: 1,
            start: Some(1),
        };
        if dead.is_alive() {
            return; // /proc cannot tell a dead run here
        }
        std::fs::write(killed.join("locked"), format!("{LOCK_MARK}, pid {dead})\n"))
            .expect("locked");
        std::fs::write(killed.join("gitdir"), b"/nonexistent/dst/.git\n").expect("gitdir");
        // The first cleanup holds the killed run's lock...
        let first = Dir::open(&killed).expect("open");
        assert!(first.try_lock_exclusive().expect("lock"));
        // ... while the second starts, and waits for it.
        let common = tmp.path().to_owned();
        let second = std::thread::spawn(move || clean_stale(&common));
        std::thread::sleep(std::time::Duration::from_millis(300));
        // The first takes the run back, and a new run registers under the same name.
        let worktrees = Dir::open(&wt).expect("open");
        remove_registration(&worktrees, OsStr::new("dst")).expect("remove");
        let new = register(tmp.path(), "dst", &tmp.path().join("elsewhere/dst/.git"));
        assert_eq!(new.id(), "dst");
        drop(first);
        let said = second.join().expect("join").expect("clean");
        assert!(
            new.path().join("locked").exists() && new.path().join("gitdir").exists(),
            "the new run's registration was removed: {said:?}"
        );
    }

    /// A run that finishes (its `locked` gone, then its lock let go) while a cleanup, which
    /// read its mark before, waits for the lock: the cleanup must leave the finished worktree
    /// alone, not fail on the mark it no longer finds (eight concurrent claims: one's cleanup
    /// saw another's registration a moment before it finished).
    #[test]
    fn a_run_that_finishes_while_a_cleanup_waits_is_left_to_itself() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let wt = tmp.path().join("worktrees");
        let reg = wt.join("dst");
        std::fs::create_dir_all(&reg).expect("mkdir");
        let dead = Stamp {
            pid: 1,
            start: Some(1),
        };
        if dead.is_alive() {
            return; // /proc cannot tell a dead run here
        }
        std::fs::write(reg.join("locked"), format!("{LOCK_MARK}, pid {dead})\n")).expect("locked");
        // Complete: DST in place, pointing back (as when the run is in its last step).
        let dst = tmp.path().join("dst");
        std::fs::create_dir(&dst).expect("mkdir");
        std::fs::write(dst.join(".git"), format!("gitdir: {}\n", reg.display())).expect(".git");
        std::fs::write(
            reg.join("gitdir"),
            format!("{}\n", dst.join(".git").display()),
        )
        .expect("gitdir");
        // The run holds its lock while a cleanup starts, reads the mark, and waits.
        let run = Dir::open(&reg).expect("open");
        assert!(run.try_lock_exclusive().expect("lock"));
        let common = tmp.path().to_owned();
        let cleanup = std::thread::spawn(move || clean_stale(&common));
        std::thread::sleep(std::time::Duration::from_millis(300));
        // The run finishes: `locked` goes, then the lock.
        std::fs::remove_file(reg.join("locked")).expect("unlock");
        drop(run);
        let said = cleanup
            .join()
            .expect("join")
            .expect("the cleanup failed on a run that finished meanwhile");
        assert!(said.is_empty(), "{said:?}");
        assert!(reg.join("gitdir").exists() && !reg.join("locked").exists());
    }

    #[test]
    fn a_registration_is_made_under_its_new_name_and_renamed_to_its_id() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let reg = register(tmp.path(), "wt", &tmp.path().join("wt/.git"));
        assert_eq!(reg.id(), "wt");
        let names: Vec<_> = std::fs::read_dir(tmp.path().join("worktrees"))
            .expect("list")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("wt")]);
        let locked = std::fs::read(reg.path().join("locked")).expect("locked");
        assert_eq!(lock_owner(&locked), Some(Stamp::current()));
        // Taken: the next one is `wt1`, as git numbers them.
        let again = register(tmp.path(), "wt", &tmp.path().join("x/wt/.git"));
        assert_eq!(again.id(), "wt1");
    }

    #[test]
    fn the_run_is_read_back_from_its_locked_text() {
        let me = Stamp::current();
        let text = format!("{LOCK_MARK}, pid {me})\n");
        assert_eq!(lock_owner(text.as_bytes()), Some(me));
        let old = format!("{LOCK_MARK}, pid 4242)\n");
        assert_eq!(
            lock_owner(old.as_bytes()),
            Some(Stamp {
                pid: 4242,
                start: None
            })
        );
        assert_eq!(lock_owner(b"initializing"), None);
    }

    /// The ids git itself gives: `git worktree add --detach` of each name, in a scratch
    /// repository, against [`worktree_id`].
    #[test]
    fn worktree_ids_are_the_ones_git_gives() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let repo = tmp.path().join("repo");
        std::fs::create_dir(&repo).expect("mkdir");
        let git = |dir: &Path, args: &[&str]| {
            crate::test_git(dir, args);
        };
        git(&repo, &["init", "-q", "-b", "main"]);
        git(&repo, &["commit", "-q", "--allow-empty", "-m", "x"]);
        for (n, name) in [
            "feature-1",
            "a_b.c",
            "a b:c",
            "..hidden",
            "x.lock",
            "...",
            ".  weird*..?.lock.lock",
            "a@{b",
            "t~1^2[x]\\y",
            "end.",
            "uni\u{e9}code",
        ]
        .iter()
        .enumerate()
        {
            let parent = tmp.path().join(format!("p{n}"));
            std::fs::create_dir(&parent).expect("mkdir");
            git(
                &repo,
                &[
                    "worktree",
                    "add",
                    "-q",
                    "--detach",
                    parent.join(name).to_str().expect("utf-8"),
                ],
            );
            let ids: Vec<String> = std::fs::read_dir(repo.join(".git/worktrees"))
                .expect("list")
                .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
                .collect();
            let want = worktree_id(OsStr::new(name));
            assert!(
                ids.contains(&want),
                "{name:?}: git's ids {ids:?}, ours {want:?}"
            );
            git(
                &repo,
                &[
                    "worktree",
                    "remove",
                    "--force",
                    parent.join(name).to_str().expect("utf-8"),
                ],
            );
        }
    }

    #[test]
    fn head_log_has_the_lines_git_worktree_add_writes() {
        let c = gix::ObjectId::from_bytes_or_panic(&[1; 20]);
        let z = gix::ObjectId::null(gix::hash::Kind::Sha1);
        let first = (z, c, "");
        let reset = (c, c, "reset: moving to HEAD");
        // (on a branch, checkout, core.logAllRefUpdates, bare) and what git leaves, as seen
        // from git 2.47's `git worktree add` in each case.
        let rows = [
            (true, true, LogRefs::Unset, false, vec![first, reset]),
            (false, true, LogRefs::Unset, false, vec![first]),
            (true, false, LogRefs::Unset, false, vec![first]),
            (true, true, LogRefs::Unset, true, vec![reset]),
            (false, true, LogRefs::Unset, true, vec![]),
            (true, false, LogRefs::Unset, true, vec![]),
            (true, true, LogRefs::Yes, true, vec![first, reset]),
            (false, true, LogRefs::Yes, false, vec![first]),
            (true, true, LogRefs::Never, false, vec![]),
        ];
        for (branch, checkout, log, bare, want) in rows {
            assert_eq!(
                head_log(Some(c), branch, checkout, log, bare),
                want,
                "branch {branch} checkout {checkout} {log:?} bare {bare}"
            );
        }
        assert!(head_log(None, true, true, LogRefs::Yes, false).is_empty());
    }
}
