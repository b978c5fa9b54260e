//! The one registry of what this process has staged and how to take it back.
//!
//! Every library call that makes something a run must take back if it does not finish
//! registers it here before making it, and gets a [`Registration`]:
//!
//! - a **tree** ([`Registration::tree`]): a staging directory or subvolume beside a
//!   destination, a store's `tmp/` staging, a tree subvolume being made in a store;
//! - a **file** ([`Registration::file`]): a temporary file about to be renamed over its final
//!   name ([`crate::atomic_file::AtomicFile`]), or a record that describes a tree (a store's
//!   registration of a staging directory), removed only once every tree is gone, so that
//!   what could not be removed stays described for gc;
//! - a **call** ([`Registration::call`]): a library's own way to take back a run (`cowtree git
//!   worktree add` puts back a registered worktree, a branch, a finished destination; `cowtree
//!   subvolume convert` puts back the directory it was converting). It says what it did.
//!
//! The owner of a registration takes it back when it drops without finishing (an error, a
//! Python exception, a dropped handle) with [`Registration::undo`], and forgets it when the
//! thing is in place ([`Registration::forget`]): the same removal either way. A signal
//! handler calls [`undo_all`], which first closes the staging gate
//! ([`stop_staging`]: nothing new is made or moved into place from then on),
//! then runs the calls, removes the trees, then the files, and returns what it did, for the
//! handler to print. Nothing here prints.
//!
//! Registering comes before making (inside the gate a maker goes through), so that a tree a
//! signal handler does not find was never made; a registered name with nothing there (not
//! made yet, or already renamed into place) is skipped without a word.
//!
//! gc recognises what a killed process left by the same names the registrations carry
//! ([`crate::staging::Naming`], a store's `tmp/<purpose>-<pid>-*`, `trees/.tmp-<pid>-*`,
//! `.tmp-<pid>-*` temporary files): a process killed outright runs no undo, and its staging
//! is found by name and lock.

use std::ffi::{OsStr, OsString};
use std::io;
#[cfg(unix)]
use std::os::fd::AsFd;
#[cfg(windows)]
// The one trait bound `Registration::file` takes: a descriptor on unix, a handle on Windows.
use std::os::windows::io::AsHandle as AsFd;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

use crate::dir::Dir;

/// A library's own undo: called once, from the signal handler; returns one phrase for each
/// thing it did (empty: it had made nothing).
pub type Call = Arc<dyn Fn() -> Vec<String> + Send + Sync>;

enum Action {
    Tree {
        parent: Dir,
        name: OsString,
    },
    File {
        parent: Dir,
        name: OsString,
        describes_trees: bool,
    },
    Call(Call),
}

struct Entry {
    id: u64,
    action: Arc<Action>,
}

static REGISTRY: Mutex<(u64, Vec<Entry>)> = Mutex::new((0, Vec::new()));

fn add(action: Action) -> Registration {
    let mut reg = REGISTRY.lock().unwrap_or_else(PoisonError::into_inner);
    reg.0 += 1;
    let id = reg.0;
    let action = Arc::new(action);
    reg.1.push(Entry {
        id,
        action: Arc::clone(&action),
    });
    Registration {
        id,
        action: Some(action),
    }
}

fn remove(id: u64) {
    let mut reg = REGISTRY.lock().unwrap_or_else(PoisonError::into_inner);
    reg.1.retain(|e| e.id != id);
}

/// Something registered as staged by this process. Dropping it forgets it (the owner decides:
/// [`Registration::undo`] takes it back first).
#[must_use = "dropping a registration forgets it at once"]
pub struct Registration {
    id: u64,
    action: Option<Arc<Action>>,
}

impl std::fmt::Debug for Registration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registration")
            .field("id", &self.id)
            .finish()
    }
}

impl Registration {
    /// The directory or subvolume `name` in `parent`, about to be made as staging.
    pub fn tree(parent: &Dir, name: &OsStr) -> io::Result<Registration> {
        Ok(add(Action::Tree {
            parent: parent.try_clone()?,
            name: name.to_owned(),
        }))
    }

    /// The file `name` in `parent` (a directory file descriptor), about to be made.
    /// `describes_trees`: a record of staging (removed only when every tree was removed).
    pub fn file(
        parent: impl AsFd,
        name: &OsStr,
        describes_trees: bool,
    ) -> io::Result<Registration> {
        #[cfg(unix)]
        let parent = Dir::from_fd(parent.as_fd().try_clone_to_owned()?);
        #[cfg(windows)]
        let parent = Dir::from_handle(parent.as_handle().try_clone_to_owned()?);
        Ok(add(Action::File {
            parent,
            name: name.to_owned(),
            describes_trees,
        }))
    }

    /// A library's own undo, for as long as the registration lives.
    pub fn call(f: Call) -> Registration {
        add(Action::Call(f))
    }

    /// Takes it back now (removes the tree or the file; a call is not run: its owner undoes
    /// its own way) and forgets it. Nothing there is no error.
    pub fn undo(mut self) -> io::Result<()> {
        let result = match self.action.take().as_deref() {
            Some(Action::Tree { parent, name }) => remove_tree(parent, name).map(|_| ()),
            Some(Action::File { parent, name, .. }) => remove_file(parent, name).map(|_| ()),
            Some(Action::Call(_)) | None => Ok(()),
        };
        remove(self.id);
        result
    }

    /// It is in place (or its owner keeps it for gc): forgets it without removing anything.
    pub fn forget(self) {}
}

impl Drop for Registration {
    fn drop(&mut self) {
        remove(self.id);
    }
}

/// Removes the directory `name` in `parent` with everything in it: a btrfs subvolume's root
/// (a staging made by a snapshot) by [`crate::subvolume::delete`] (one ioctl where the kernel
/// permits, else `ro` cleared and the tree removed), anything else by [`Dir::remove_tree`].
/// Nothing there is not an error.
/// Windows has no subvolumes: there it is [`Dir::remove_tree`].
pub fn remove_dir_or_subvolume(parent: &Dir, name: &OsStr) -> io::Result<()> {
    #[cfg(windows)]
    return parent.remove_tree(name);
    #[cfg(unix)]
    remove_subvolume_or_tree(parent, name)
}

#[cfg(unix)]
fn remove_subvolume_or_tree(parent: &Dir, name: &OsStr) -> io::Result<()> {
    use crate::subvolume::{At, Cause, delete, is_root};
    let here = std::path::Path::new("");
    let is_subvolume = match parent.open_dir(name) {
        Ok(d) => is_root(At::new(&d, &here.join(name))).unwrap_or(false),
        Err(_) => false,
    };
    if is_subvolume {
        return match delete(At::new(parent, here), name) {
            Ok(_) => Ok(()),
            Err(e) if e.cause == Cause::NotFound => Ok(()),
            Err(e) => Err(e.into()),
        };
    }
    parent.remove_tree(name)
}

/// False once [`stop_staging`] ran; locked across every [`unless_stopping`].
static OPEN: Mutex<bool> = Mutex::new(true);

/// Runs `f`, which creates staging (or its bookkeeping) or renames it into place, unless
/// [`stop_staging`] ran: then it fails with [`io::ErrorKind::Interrupted`] and `f` is not
/// run. The gate is held while `f` runs, so `stop_staging` waits for it to end. It is not
/// reentrant: `f` must not call anything gated ([`crate::staging::Staging::create`], [`crate::staging::Staging::commit`],
/// this function), or its thread waits for itself.
pub fn unless_stopping<T>(f: impl FnOnce() -> io::Result<T>) -> io::Result<T> {
    let open = OPEN.lock().unwrap_or_else(PoisonError::into_inner);
    if !*open {
        return Err(io::Error::new(
            io::ErrorKind::Interrupted,
            "not done: the process is stopping",
        ));
    }
    f()
}

/// Makes every later [`crate::staging::Staging::create`], [`crate::staging::Staging::commit`] and [`unless_stopping`] in this
/// process fail (doing nothing) and waits for one in progress to end. A signal handler calls
/// it before it lists and removes this process's staging: afterwards nothing made through
/// this gate appears that a later listing misses, no staging directory moves into place under
/// it (half emptied), and whether the destination exists says whether the command had
/// finished.
pub fn stop_staging() {
    *OPEN.lock().unwrap_or_else(PoisonError::into_inner) = false;
}

/// What [`undo_all`] did.
#[derive(Debug, Default)]
pub struct Report {
    /// What each call said, in the order they were registered (an empty list: that call had
    /// made nothing yet).
    pub calls: Vec<Vec<String>>,
    /// The trees removed.
    pub removed: Vec<PathBuf>,
    /// The trees that could not be removed, with why (their records are kept for gc).
    pub failed: Vec<(PathBuf, io::Error)>,
}

impl Report {
    /// True when nothing was registered: the process had staged nothing.
    pub fn is_empty(&self) -> bool {
        self.calls.is_empty() && self.removed.is_empty() && self.failed.is_empty()
    }
}

/// Takes back everything this process has registered, for a signal handler: closes the
/// staging gate first (waiting for a creation or rename in progress), then runs the calls,
/// removes the trees, then the temporary files and, when every tree is gone, the records
/// that described them. Afterwards the process is expected to exit: nothing registered later
/// is undone.
pub fn undo_all() -> Report {
    stop_staging();
    let entries: Vec<Arc<Action>> = {
        let reg = REGISTRY.lock().unwrap_or_else(PoisonError::into_inner);
        reg.1.iter().map(|e| Arc::clone(&e.action)).collect()
    };
    let mut report = Report::default();
    for a in &entries {
        if let Action::Call(f) = &**a {
            report.calls.push(f());
        }
    }
    for a in &entries {
        if let Action::Tree { parent, name } = &**a {
            // A worker may add an entry between the removal of the contents and the rmdir;
            // the next round removes it. Once the directory itself is gone, nothing can be
            // added.
            let mut result = remove_tree(parent, name);
            for _ in 0..100 {
                if result.is_ok() {
                    break;
                }
                result = remove_tree(parent, name);
            }
            match result {
                Ok(false) => {}
                Ok(true) => report.removed.push(shown(parent, name)),
                Err(e) => report.failed.push((shown(parent, name), e)),
            }
        }
    }
    for a in &entries {
        if let Action::File {
            parent,
            name,
            describes_trees,
        } = &**a
            && (!*describes_trees || report.failed.is_empty())
        {
            let _ = remove_file(parent, name);
        }
    }
    report
}

/// Removes the tree `name` of `parent` (see [`remove_dir_or_subvolume`]);
/// whether it was there.
fn remove_tree(parent: &Dir, name: &OsStr) -> io::Result<bool> {
    if parent.try_stat(name)?.is_none() {
        return Ok(false);
    }
    remove_dir_or_subvolume(parent, name)?;
    Ok(true)
}

fn remove_file(parent: &Dir, name: &OsStr) -> io::Result<bool> {
    match parent.remove_file(name) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// `name` in `parent`, as a path for a message (the name alone where the directory's path
/// cannot be read).
fn shown(parent: &Dir, name: &OsStr) -> PathBuf {
    #[cfg(unix)]
    let path = crate::sys::dir_path(parent.as_fd());
    #[cfg(windows)]
    let path = crate::sys::dir_path(parent.as_handle());
    path.map(|p| p.join(name))
        .unwrap_or_else(|| PathBuf::from(name))
}
