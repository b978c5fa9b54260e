//! A merge into an existing destination is a transaction: either everything is published or
//! the destination is put back as it was.
//!
//! Every new entry the merge puts in an existing directory of the destination (a file, a
//! symlink, or a new directory with everything beneath it) is built under a temporary name
//! beside its final one (`.<name>.cowtree-tmp.<pid>.<random>`). Nothing at a final name changes
//! until all of them are built. Then each is published: renamed into place
//! (`RENAME_NOREPLACE`) where nothing was, or exchanged with the entry it replaces
//! (`RENAME_EXCHANGE`), which keeps the replaced entry aside under the temporary name. Only
//! when every entry is published are the replaced ones removed. An error before or during
//! publishing undoes what was published (exchanging back, renaming back) and removes every
//! temporary entry, carrying on past what it cannot undo (a directory moved away cannot be
//! reached by its path) and then saying so. Publishing renames only the entry this merge made
//! (same device, inode and type) from a temporary name: anything else found there (the made
//! directory moved away, a symlink put in its place) fails the merge.
//!
//! A process that dies (kill -9) cannot undo anything, so the merge keeps a journal in the
//! destination root, `.cowtree-txn.<pid>.<random>`, locked with `flock` while the merge runs:
//! each temporary name is written to it before the entry is created, and before publishing
//! starts, the list of publications (with the inode of each new entry) followed by a `go`
//! line. The next merge into the same destination (or [`crate::Linker::recover`]) finds a
//! journal whose lock is free and finishes its work: without `go`, it removes the temporary
//! entries (the destination is as before); with `go`, it completes the publication (the
//! destination is as after). A merge that fails once `go` is written appends `undo` (flushed
//! with [`crate::LinkOptions::sync`]) before it puts anything back; a journal it leaves (its
//! undo could not reach everything) is then undone by the next run, never completed.
//!
//! Without [`crate::LinkOptions::sync`], nothing is flushed: this covers a killed process,
//! not a power loss. With it, the merge syncs the filesystem once every new entry is built
//! (entries, their data and the journal's temporary names are then on disk), flushes the
//! journal after its `go` line and before the first rename, and syncs the filesystem again
//! after the last one. A power loss once publishing has started then leaves what a kill
//! would (recovery finishes the publication); one before it leaves DST's names as they were,
//! but may leave temporary entries (marked by their names) that the journal does not list.
//!
//! Journal lines (names as lower-case hex of their bytes, `-` for the empty root path):
//! `t <dir> <tmp>`, `c <n|r> <dir> <tmp> <name> <inode>`, `go`, `undo`.
//!
//! **Windows** has no atomic exchange of two names, and no `flock` of a directory. There the
//! journal (`.cowtree-txn-w16.<pid>.<random>`) is locked with `LockFileEx`
//! (`cowtree_fs::file_lock`), its names are hex of their UTF-16 units, and an exchange of `a` and `b` is three renames through a third name beside
//! `a` (`<a>.swap`: `b` to it, `a` to `b`, it to `a`), each refusing to replace anything. A
//! process killed between two of them leaves the third name, which the next run settles
//! before anything else (the swap undone if `b`'s name is still free, else finished), so the
//! journal's states are the unix ones again. An undo that finds a third name it cannot settle
//! keeps the journal rather than remove a temporary entry that may hold a replaced one. The
//! window the exchange closes on unix stays open on Windows: while a replaced entry is being
//! swapped, another process may find its name empty for an instant.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::ffi::{OsStr, OsString};
use std::fmt::Write as _;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use cowtree_fs::dir::Dir;
use cowtree_fs::file_lock::{LockKind, try_lock};
use cowtree_fs::sys::{Ino, stat_file_type, stat_ino};

use crate::cancel_handle::CancelHandle;
use crate::error::LinkError;
use crate::link_staging::random_u64;
use crate::scan::open_rel;

/// Every journal's name starts so: on unix `.cowtree-txn.`, on Windows `.cowtree-txn-w16.`
/// (its names are written in another encoding). Each platform finishes only its own journals,
/// and refuses to merge where the other's is left (a drive both reach: WSL, a share).
const PREFIX: &str = if cfg!(windows) {
    ".cowtree-txn-w16."
} else {
    ".cowtree-txn."
};

/// The other platform's [`PREFIX`].
const FOREIGN: &str = if cfg!(windows) {
    ".cowtree-txn."
} else {
    ".cowtree-txn-w16."
};

pub(crate) use crate::publication::Op;

/// The journal of a merge in progress.
pub(crate) struct Journal<'a> {
    root: &'a Dir,
    root_path: &'a Path,
    name: OsString,
    file: std::fs::File,
    /// Every temporary name noted, to remove on failure.
    temps: Mutex<Vec<(PathBuf, OsString)>>,
    /// Make the list of publications durable before the first rename.
    sync: bool,
    /// The `go` line is written: a failure from then on writes `undo` before undoing.
    go: bool,
}

fn hex(bytes: &[u8]) -> String {
    if bytes.is_empty() {
        return "-".to_string();
    }
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if s == "-" {
        return Some(Vec::new());
    }
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

impl<'a> Journal<'a> {
    /// Creates and locks a new journal in the destination root. With `sync`, the journal
    /// is flushed to disk before publishing starts (see [`Journal::publish`]).
    pub fn create(
        root: &'a Dir,
        root_path: &'a Path,
        sync: bool,
    ) -> Result<Journal<'a>, LinkError> {
        let name = OsString::from(format!(
            "{PREFIX}{}.{:016x}",
            std::process::id(),
            random_u64()
        ));
        let file = os::create_journal(root, &name)
            .map_err(|e| LinkError::io("create merge journal", &root_path.join(&name), e))?;
        // Nobody else knows the name yet, so the lock is free; without lock support a stale
        // journal is still found by name, and a live one could then be recovered under a
        // running merge: refuse instead.
        let locked = try_lock(&file, LockKind::Exclusive)
            .and_then(|free| free.then_some(()).ok_or(io::ErrorKind::WouldBlock.into()));
        if let Err(e) = locked {
            let _ = root.remove_file(&name);
            return Err(LinkError::io(
                "lock merge journal",
                &root_path.join(&name),
                e,
            ));
        }
        Ok(Journal {
            root,
            root_path,
            name,
            file,
            temps: Mutex::new(Vec::new()),
            sync,
            go: false,
        })
    }

    fn path(&self) -> PathBuf {
        self.root_path.join(&self.name)
    }

    fn write(&self, text: &str) -> Result<(), LinkError> {
        // O_APPEND on unix: each line is one write(2) at the end, so lines from several
        // workers never interleave. On Windows the workers' lines are written one at a time
        // (see note_temp).
        (&self.file)
            .write_all(text.as_bytes())
            .map_err(|e| LinkError::io("write merge journal", &self.path(), e))
    }

    /// Notes the temporary name `tmp` in destination directory `dir` before it is created.
    pub fn note_temp(&self, dir: &Path, tmp: &OsStr) -> Result<(), LinkError> {
        let line = format!(
            "t {} {}\n",
            hex(&name_bytes(dir.as_os_str())),
            hex(&name_bytes(tmp))
        );
        #[cfg(unix)]
        self.write(&line)?;
        let mut temps = self.temps.lock().unwrap_or_else(PoisonError::into_inner);
        // Windows writes through the file position, and an append-only handle did not keep
        // four threads' lines whole under Wine (200 of 202 lines): the lock of `temps` makes
        // the workers' writes one at a time there.
        #[cfg(windows)]
        self.write(&line)?;
        temps.push((dir.to_path_buf(), tmp.to_owned()));
        Ok(())
    }

    /// Removes every temporary entry and the journal: the destination is as before.
    /// `error` is what stopped the merge.
    pub fn abort(self, error: LinkError) -> LinkError {
        self.remove_temps(error, &[], None)
    }

    /// Removes every temporary entry but those of `keep` (which hold entries that could not
    /// be put back), carrying on past failures: a directory moved away or swapped for a
    /// symlink cannot be reached by its path, but the others still are. Returns `error`, or
    /// [`LinkError::UndoFailed`] with the first failure (`undo`, if already one) when anything
    /// could not be undone; the journal then stays for the next run.
    fn remove_temps(
        mut self,
        error: LinkError,
        keep: &[&Op],
        mut undo: Option<io::Error>,
    ) -> LinkError {
        self.mark_undo();
        let temps = std::mem::take(&mut *self.temps.lock().unwrap_or_else(PoisonError::into_inner));
        let keep: HashSet<(&Path, &OsStr)> = keep
            .iter()
            .map(|op| (op.dir.as_path(), op.tmp.as_os_str()))
            .collect();
        let mut dirs = DirCache::new(self.root);
        for (dir, tmp) in &temps {
            if keep.contains(&(dir.as_path(), tmp.as_os_str())) {
                continue;
            }
            // (Windows) an exchange cut short: the temporary entry may hold a replaced one,
            // which only the journal's next run (knowing its final name) can put back.
            let removed = dirs.get(dir).and_then(|d| match os::swap_left(d, tmp)? {
                Some(left) => Err(io::Error::other(format!(
                    "{}: an exchange with {} was cut short; left for the next run",
                    left.display(),
                    Path::new(tmp).display()
                ))),
                None => d.remove_tree(tmp),
            });
            if let Err(e) = removed {
                undo.get_or_insert(e);
            }
        }
        match undo {
            Some(undo) => self.undo_failed(error, undo),
            None => {
                self.remove();
                error
            }
        }
    }

    fn undo_failed(self, error: LinkError, undo: io::Error) -> LinkError {
        // The journal stays (unlocked once this process is done with it), so the next run
        // finishes the cleanup.
        LinkError::UndoFailed {
            error: Box::new(error),
            dst: self.root_path.to_path_buf(),
            undo,
        }
    }

    fn remove(self) {
        // Best effort: a journal left behind is found and finished by the next run.
        let _ = self.root.remove_file(&self.name);
    }

    /// Writes the `undo` line once the `go` line is written, before anything is undone: a
    /// journal left by an undo that failed (or was killed) is then undone by the next run,
    /// not completed. Best effort: an undo that succeeds removes the journal anyway; only
    /// when this line cannot be written (or flushed) and the undo fails too does the next run
    /// complete the merge instead (the error already says part of it may be there).
    fn mark_undo(&mut self) {
        if !std::mem::take(&mut self.go) {
            return;
        }
        if (&self.file).write_all(b"undo\n").is_ok() && self.sync {
            let _ = self.file.sync_data();
        }
    }

    /// Publishes `ops`. On failure, or once `cancel` is cancelled before the last rename,
    /// puts back what was published and removes every temporary entry, so the destination is
    /// as before (or says it could not).
    pub fn publish(mut self, ops: &[Op], cancel: &CancelHandle) -> Result<(), LinkError> {
        if cancel.is_cancelled() {
            let error = LinkError::Cancelled(self.root_path.to_path_buf());
            return Err(self.abort(error));
        }
        let mut text = String::new();
        for op in ops {
            let _ = writeln!(
                text,
                "c {} {} {} {} {}",
                if op.replace { 'r' } else { 'n' },
                hex(&name_bytes(op.dir.as_os_str())),
                hex(&name_bytes(&op.tmp)),
                hex(&name_bytes(&op.name)),
                op.ino
            );
        }
        if let Err(e) = self.write(&text) {
            return Err(self.abort(e));
        }
        // A separate write: a journal whose `c` lines were cut short has no `go`.
        if let Err(e) = self.write("go\n") {
            // Maybe written in part or whole: undo as if it was.
            self.go = true;
            return Err(self.abort(e));
        }
        self.go = true;
        // Durable merges: the renames below are metadata the filesystem may write out before
        // the journal's data. After a power loss in the middle of them, recovery must find
        // the `go` line and the list, or it would undo nothing and leave DST half merged.
        if self.sync
            && let Err(e) = self.file.sync_data()
        {
            let error = LinkError::io("sync merge journal", &self.path(), e);
            return Err(self.abort(error));
        }
        let mut dirs = DirCache::new(self.root);
        for (done, op) in ops.iter().enumerate() {
            if cancel.is_cancelled() {
                let error = LinkError::Cancelled(self.root_path.to_path_buf());
                return Err(self.unpublish(&ops[..done], &mut dirs, error));
            }
            let d = match dirs.get(&op.dir) {
                Ok(d) => d,
                Err(e) => {
                    let full = self.root_path.join(&op.dir).join(&op.name);
                    let error = LinkError::io("publish", &full, e);
                    return Err(self.unpublish(&ops[..done], &mut dirs, error));
                }
            };
            // Only the entry this merge made is published: one moved away from its temporary
            // name and replaced (by a symlink, say) meanwhile fails the merge. Checked again
            // at the final name once renamed, for a swap between the check and the rename.
            if let Err(error) = self.check_made(d, op, &op.tmp) {
                return Err(self.unpublish(&ops[..done], &mut dirs, error));
            }
            let placed = if op.replace {
                os::swap(d, &op.tmp, &op.name)
            } else {
                d.rename_noreplace(&op.tmp, d, &op.name)
            };
            if placed.is_ok()
                && let Err(error) = self.check_made(d, op, &op.name)
            {
                return Err(self.unpublish(&ops[..=done], &mut dirs, error));
            }
            if let Err(e) = placed {
                let full = self.root_path.join(&op.dir).join(&op.name);
                let error = if e.kind() == io::ErrorKind::AlreadyExists {
                    LinkError::DestinationExists(full)
                } else {
                    LinkError::io("publish", &full, e)
                };
                return Err(self.unpublish(&ops[..done], &mut dirs, error));
            }
        }
        // Everything is in place; what was replaced now sits under the temporary names.
        for op in ops.iter().filter(|op| op.replace) {
            if dirs
                .get(&op.dir)
                .and_then(|d| d.remove_tree(&op.tmp))
                .is_err()
            {
                // The merge is complete; the journal stays, and the next run removes the rest.
                return Ok(());
            }
        }
        self.remove();
        Ok(())
    }

    /// Checks that what is at `at` (`op.tmp`, or `op.name` once renamed) in `d` is the
    /// entry this merge made as `op.tmp`.
    fn check_made(&self, d: &Dir, op: &Op, at: &OsStr) -> Result<(), LinkError> {
        let full = || self.root_path.join(&op.dir).join(at);
        let st = d
            .try_stat(at)
            .map_err(|e| LinkError::io("publish", &full(), e))?;
        let same = st.is_some_and(|st| {
            stat_ino(&st) == op.ino
                && op.made.is_none_or(|(dev, kind)| {
                    cowtree_fs::sys::stat_dev(&st) == dev && stat_file_type(&st) == kind
                })
        });
        if same {
            Ok(())
        } else {
            Err(LinkError::io(
                "publish",
                &full(),
                io::Error::other("not the entry this merge made: it was moved or replaced"),
            ))
        }
    }

    /// Puts back what was published, carrying on past failures (an entry that cannot be put
    /// back keeps its temporary name's contents, so a replaced entry is never removed), then
    /// removes the temporary entries.
    fn unpublish(
        mut self,
        published: &[Op],
        dirs: &mut DirCache<'_>,
        error: LinkError,
    ) -> LinkError {
        self.mark_undo();
        let mut stuck = Vec::new();
        let mut undo = None;
        for op in published.iter().rev() {
            let back = dirs.get(&op.dir).and_then(|d| {
                if op.replace {
                    os::swap(d, &op.tmp, &op.name)
                } else {
                    d.rename_noreplace(&op.name, d, &op.tmp)
                }
            });
            if let Err(e) = back {
                undo.get_or_insert(e);
                stuck.push(op);
            }
        }
        self.remove_temps(error, &stuck, undo)
    }
}

/// Destination directories opened by their path relative to the root, each once.
struct DirCache<'a> {
    root: &'a Dir,
    open: HashMap<PathBuf, Dir>,
}

impl<'a> DirCache<'a> {
    fn new(root: &'a Dir) -> Self {
        DirCache {
            root,
            open: HashMap::new(),
        }
    }

    fn get(&mut self, rel: &Path) -> io::Result<&Dir> {
        if rel.as_os_str().is_empty() {
            return Ok(self.root);
        }
        if !self.open.contains_key(rel) {
            let d = open_rel(self.root, rel)?;
            self.open.insert(rel.to_path_buf(), d);
        }
        Ok(&self.open[rel])
    }
}

/// Finishes the journals in the destination root `root` left by merges whose process died:
/// returns how many. The caller holds the destination's lock ([`crate::destination`]'s
/// `lock_destination`), so no merge that could own a journal is running: a journal still
/// locked is a dead merge's whose lock is not yet released (Windows releases a dead process's
/// file locks when it closes its handles, which "may take a while", after its named mutex is
/// free; on unix a child forked elsewhere in the process holds a copy of the descriptor until
/// it execs). It is waited for, up to [`LINGER`], then an error: skipped, the new merge would
/// run over its half-done state. A journal of the other platform is an error (its names
/// cannot be read here), and it is kept.
pub(crate) fn recover(root: &Dir) -> io::Result<usize> {
    let mut n = 0;
    for entry in root.entries()? {
        let name = entry.name.as_encoded_bytes();
        if name.starts_with(FOREIGN.as_bytes()) {
            return Err(io::Error::other(format!(
                "{}: the journal of a merge {} left unfinished; the next merge into this \
                 directory there finishes it",
                entry.name.display(),
                if cfg!(windows) {
                    "on Linux or macOS"
                } else {
                    "on Windows"
                }
            )));
        }
        if !name.starts_with(PREFIX.as_bytes()) || !os::may_be_file(entry.file_type) {
            continue;
        }
        let file = match os::open_journal(root, &entry.name) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        lock_journal(&file, &entry.name)?;
        let mut text = String::new();
        (&file).read_to_string(&mut text)?;
        finish(root, &text)?;
        match root.remove_file(&entry.name) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        n += 1;
    }
    Ok(n)
}

/// How long a dead merge's journal may stay locked once the destination's lock is free (see
/// [`recover`]).
const LINGER: Duration = Duration::from_secs(10);

/// Takes the lock of the journal `file` (`name`), waiting up to [`LINGER`] (see [`recover`]).
fn lock_journal(file: &std::fs::File, name: &OsStr) -> io::Result<()> {
    let waited = Instant::now();
    while !try_lock(file, LockKind::Exclusive)? {
        if waited.elapsed() >= LINGER {
            return Err(io::Error::other(format!(
                "{}: the journal of an interrupted merge is still locked {} s after the \
                 destination's lock was free",
                name.display(),
                LINGER.as_secs()
            )));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

/// Does what a dead merge's journal says is left to do: without `go`, remove its temporary
/// entries; with `go`, complete its publication; with `go` then `undo`, finish its undo.
fn finish(root: &Dir, text: &str) -> io::Result<()> {
    let mut temps = Vec::new();
    let mut ops = Vec::new();
    let (mut go, mut undo) = (false, false);
    for line in text.lines() {
        let f: Vec<&str> = line.split(' ').collect();
        let path = |s: &str| unhex(s).and_then(name_from).map(PathBuf::from);
        let name = |s: &str| unhex(s).and_then(name_from);
        match f.as_slice() {
            ["t", dir, tmp] => {
                if let (Some(dir), Some(tmp)) = (path(dir), name(tmp)) {
                    temps.push((dir, tmp));
                }
            }
            ["c", kind, dir, tmp, nm, ino] => {
                if let (Some(dir), Some(tmp), Some(nm), Ok(ino)) =
                    (path(dir), name(tmp), name(nm), ino.parse::<Ino>())
                {
                    ops.push(Op {
                        dir,
                        tmp,
                        name: nm,
                        replace: *kind == "r",
                        ino,
                        made: None,
                    });
                }
            }
            ["go"] => go = true,
            ["undo"] => undo = true,
            _ => {}
        }
    }
    let mut dirs = DirCache::new(root);
    // (Windows) an exchange a killed process cut short is first undone or finished, so the
    // names are as one of the unix states below.
    if go {
        for op in ops.iter().filter(|op| op.replace) {
            if let Ok(d) = dirs.get(&op.dir) {
                os::settle_swap(d, &op.tmp, &op.name)?;
            }
        }
    }
    if go && undo {
        // The merge failed while publishing, and its undo did not finish: put back what is
        // still published, last first, as the undo does. An entry that cannot be put back
        // keeps this journal for a later run, and its temporary name is not touched.
        for op in ops.iter().rev() {
            let Ok(d) = dirs.get(&op.dir) else { continue };
            if d.try_stat(&op.name)?
                .is_none_or(|st| stat_ino(&st) != op.ino)
            {
                continue; // Not published, or put back already.
            }
            let back = if op.replace {
                os::swap(d, &op.tmp, &op.name)
            } else {
                Err(io::ErrorKind::NotFound.into())
            };
            match back {
                Ok(()) => {}
                // Nothing to exchange with (what it replaced was removed since): the new entry
                // goes back to its temporary name, and is removed below with the others.
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    d.rename_noreplace(&op.name, d, &op.tmp)?
                }
                Err(e) => return Err(e),
            }
        }
    } else if go {
        for op in &ops {
            let Ok(d) = dirs.get(&op.dir) else { continue };
            let at_name = d.try_stat(&op.name)?;
            if at_name.is_some_and(|st| stat_ino(&st) == op.ino) {
                continue; // Published; what it replaced (if anything) is removed below.
            }
            let at_tmp = d.try_stat(&op.tmp)?;
            if at_tmp.is_some_and(|st| stat_ino(&st) == op.ino) {
                let placed = if at_name.is_some() && op.replace {
                    os::swap(d, &op.tmp, &op.name)
                } else {
                    d.rename_noreplace(&op.tmp, d, &op.name)
                };
                match placed {
                    Ok(()) => {}
                    // Someone else put an entry there since: theirs stays.
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                    Err(e) => return Err(e),
                }
            }
        }
    }
    // Every temporary name now holds a replaced entry or an unpublished new one (or nothing).
    for (dir, tmp) in &temps {
        if let Ok(d) = dirs.get(dir) {
            d.remove_tree(tmp)?;
        }
    }
    Ok(())
}

/// A name's bytes for the journal: its bytes on unix, its UTF-16 units (little-endian) on
/// Windows, so that any name the system gives round-trips through [`name_from`].
fn name_bytes(name: &OsStr) -> Cow<'_, [u8]> {
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        Cow::Borrowed(name.as_bytes())
    }
    #[cfg(windows)]
    {
        use std::os::windows::ffi::OsStrExt;
        Cow::Owned(name.encode_wide().flat_map(u16::to_le_bytes).collect())
    }
}

/// The name [`name_bytes`] gave `bytes` (`None` for an odd count of bytes on Windows).
fn name_from(bytes: Vec<u8>) -> Option<OsString> {
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStringExt;
        Some(OsString::from_vec(bytes))
    }
    #[cfg(windows)]
    {
        use std::os::windows::ffi::OsStringExt;
        if !bytes.len().is_multiple_of(2) {
            return None;
        }
        let units: Vec<u16> = bytes
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect();
        Some(OsString::from_wide(&units))
    }
}

/// What differs between the platforms: the journal's file, and the exchange of two names.
#[cfg(unix)]
mod os {
    use std::ffi::OsStr;
    use std::fs::File;
    use std::io;
    use std::path::PathBuf;

    use cowtree_fs::dir::{Dir, FileType};
    use rustix::fs::{Mode, OFlags, openat};

    /// A directory entry of this type may be a journal (a file; unknown until opened).
    pub(super) fn may_be_file(ft: FileType) -> bool {
        matches!(ft, FileType::RegularFile | FileType::Unknown)
    }

    /// Creates the new journal `name` in `root`, for appending.
    pub(super) fn create_journal(root: &Dir, name: &OsStr) -> io::Result<File> {
        let fd = openat(
            root,
            name,
            OFlags::WRONLY
                | OFlags::CREATE
                | OFlags::EXCL
                | OFlags::APPEND
                | OFlags::NOFOLLOW
                | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        )?;
        Ok(File::from(fd))
    }

    /// Opens the journal `name` in `root` for reading (never a FIFO's wait, never a symlink).
    pub(super) fn open_journal(root: &Dir, name: &OsStr) -> io::Result<File> {
        let fd = openat(
            root,
            name,
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK,
            Mode::empty(),
        )?;
        Ok(File::from(fd))
    }

    /// Exchanges the names `a` and `b` in `d`, atomically (`renameat2(RENAME_EXCHANGE)`).
    pub(super) fn swap(d: &Dir, a: &OsStr, b: &OsStr) -> io::Result<()> {
        d.rename_exchange(a, d, b)
    }

    /// Nothing to settle: an exchange is one call.
    pub(super) fn settle_swap(_d: &Dir, _a: &OsStr, _b: &OsStr) -> io::Result<()> {
        Ok(())
    }

    /// Never: an exchange is one call.
    pub(super) fn swap_left(_d: &Dir, _a: &OsStr) -> io::Result<Option<PathBuf>> {
        Ok(None)
    }
}

#[cfg(windows)]
mod os {
    use std::ffi::{OsStr, OsString};
    use std::fs::File;
    use std::io;
    use std::path::PathBuf;

    use cowtree_fs::dir::{Dir, FileType};

    /// A directory entry of this type may be a journal (a file, not a reparse point).
    pub(super) fn may_be_file(ft: FileType) -> bool {
        ft == FileType::RegularFile
    }

    /// Creates the new journal `name` in `root` (nothing there may be replaced). Written
    /// through its file position, one writer at a time (see `Journal::note_temp`).
    pub(super) fn create_journal(root: &Dir, name: &OsStr) -> io::Result<File> {
        root.create_file(name)
    }

    /// Opens the journal `name` in `root` for reading (a reparse point there is an error).
    pub(super) fn open_journal(root: &Dir, name: &OsStr) -> io::Result<File> {
        root.open_file(name)
    }

    /// The third name of an exchange of `a` with another: `<a>.swap`.
    fn aside(a: &OsStr) -> OsString {
        let mut s = a.to_owned();
        s.push(".swap");
        s
    }

    /// Exchanges the names `a` and `b` in `d` through a third name (see the module
    /// documentation), none of the three renames replacing anything. A failure puts back what
    /// it can; what it cannot stays for [`settle_swap`]. `b` absent: [`io::ErrorKind::NotFound`]
    /// and nothing renamed, as unix's exchange.
    pub(super) fn swap(d: &Dir, a: &OsStr, b: &OsStr) -> io::Result<()> {
        let s = aside(a);
        d.rename_noreplace(b, d, &s)?;
        if let Err(e) = d.rename_noreplace(a, d, b) {
            return match d.rename_noreplace(&s, d, b) {
                // Put back: nothing renamed, as unix's failed exchange.
                Ok(()) => Err(e),
                Err(back) => Err(cut_short(&s, e, back)),
            };
        }
        if let Err(e) = d.rename_noreplace(&s, d, a) {
            return match d
                .rename_noreplace(b, d, a)
                .and_then(|()| d.rename_noreplace(&s, d, b))
            {
                Ok(()) => Err(e),
                Err(back) => Err(cut_short(&s, e, back)),
            };
        }
        Ok(())
    }

    /// The error of an exchange that could not be put back: never one a caller takes for
    /// "nothing there" or "taken" (the journal must stay for [`settle_swap`]).
    fn cut_short(s: &OsStr, e: io::Error, back: io::Error) -> io::Error {
        io::Error::other(format!(
            "an exchange was cut short and could not be put back ({e}; then {back}); {} \
             holds one of the two entries until the next run settles it",
            s.display()
        ))
    }

    /// Undoes or finishes an exchange of `a` and `b` that was cut short: with `b` still free
    /// (only its first rename made), its entry goes back to `b`; with `a` free (the first two
    /// made), it goes to `a`. Both taken: an error, and nothing renamed.
    pub(super) fn settle_swap(d: &Dir, a: &OsStr, b: &OsStr) -> io::Result<()> {
        let s = aside(a);
        if d.try_stat(&s)?.is_none() {
            return Ok(());
        }
        if d.try_stat(b)?.is_none() {
            return d.rename_noreplace(&s, d, b);
        }
        if d.try_stat(a)?.is_none() {
            return d.rename_noreplace(&s, d, a);
        }
        Err(io::Error::other(format!(
            "{}: left by an exchange of {} and {} that was cut short, and both names are taken",
            s.display(),
            a.display(),
            b.display()
        )))
    }

    /// The third name of an exchange with `a` that was cut short, if one is in `d`.
    pub(super) fn swap_left(d: &Dir, a: &OsStr) -> io::Result<Option<PathBuf>> {
        let s = aside(a);
        Ok(d.try_stat(&s)?.map(|_| PathBuf::from(s)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips_any_bytes_and_the_empty_path() {
        for b in [&b""[..], b"a", b"\xff\x00/x y\n"] {
            assert_eq!(unhex(&hex(b)).as_deref(), Some(b));
        }
        assert_eq!(unhex("abc"), None);
        assert_eq!(unhex("zz"), None);
    }
}
