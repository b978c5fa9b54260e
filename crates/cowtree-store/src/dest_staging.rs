//! Staging directories built beside a destination (a checkout's `.<name>.cowtree-checkout-*`),
//! registered in the store so that `gc` finds and removes those left by a process that was
//! killed outright (`kill -9`, the OOM killer), which runs no cleanup of its own.
//!
//! A registration is a small JSON file `worktrees/staging-<pid>-<n>-<time>` (format version 1):
//!
//! ```json
//! {"version":1,"path":"/abs/.wt.cowtree-checkout-123t4567-0-1a2b3c4d","path_hex":null,
//!  "pid":123,"start":4567,"boot_id":"6c1f...","created_unix":1700000000,"dev":2049,"ino":131}
//! ```
//! - `path` (or `path_hex` when the path is not UTF-8) is the staging directory's absolute
//!   path, whose parent was canonical when it was written.
//! - `pid`, `start` (its start time, see `cowtree_fs::process`; absent in registrations of
//!   older versions) and `boot_id` (`/proc/sys/kernel/random/boot_id`) name the process that
//!   made it: a pid alone would name whichever process holds it now.
//! - `dev` and `ino` are the staging directory's device and inode, recorded once it exists
//!   (null before): gc removes only the directory at `path` that still has that inode (the
//!   device number may change between mounts; see docs/store.md).
//!
//! The order is what makes it safe: the registration is written durably before the
//! directory is created (so no staging directory exists that no registration names, even
//! after a power loss), then rewritten with `dev`/`ino` (not synced; see
//! [`Registration::created`]), and removed once the staging directory has been renamed into place
//! or removed. gc holds the store lock exclusively,
//! while every checkout holds it shared for as long as it runs, so a registration gc sees
//! belongs to a process that is gone; gc checks anyway, by the staging directory's `flock`
//! (held by a live checkout) and, where the filesystem has no `flock`, by pid, start time and
//! boot id.
//!
//! A process killed between creating the directory and recording its `dev`/`ino` (a window of
//! one `mkdir`), or a power loss after the `mkdir` reached the disk and before the rewrite
//! did, leaves a registration without them: gc drops it and removes nothing, and the next
//! checkout to the same destination removes that staging directory.
//!
//! On Windows `dev` and `ino` are the volume serial and the file id
//! (`util::file_id`), the path is opened from its volume's root one component at a
//! time, never following a reparse point, and a live checkout is told by its own handle on
//! its staging directory, open for as long as it runs (Windows cannot `flock` a directory):
//! gc removes the directory only through a handle it could open for itself alone
//! (`Dir::open_dir_exclusive`), which fails while the checkout's is open. There is no boot
//! id, and no owner to compare (an owner is a SID there).

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use cowtree_fs::dir::Dir;
use cowtree_fs::process::Stamp;
#[cfg(unix)]
use rustix::fs::FileType;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::store::Store;
use crate::util::{read_at, unique_suffix};

/// Registration format version.
pub const VERSION: u32 = 1;

/// How a checkout names its staging directory beside DST `name`:
/// `.<name, at most 180 bytes>.cowtree-checkout-<stamp>-<n>-<nanos>` (stamp: pid and start
/// time, `cowtree_fs::process::Stamp`). gc removes only
/// directories named so (see [`collect`]).
pub const STAGING: cowtree_fs::staging::Naming = cowtree_fs::staging::Naming {
    infix: ".cowtree-checkout-",
    keep: 180,
    separator: "-",
};

/// How every registration's name in `worktrees/` starts.
pub const PREFIX: &str = "staging-";

/// One registration (see the module doc).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// [`VERSION`].
    pub version: u32,
    /// The staging directory's absolute path when UTF-8.
    pub path: Option<String>,
    /// Hex of the path bytes when the path is not UTF-8.
    #[serde(default)]
    pub path_hex: Option<String>,
    /// The creating process.
    pub pid: u32,
    /// When the creating process started (`cowtree_fs::process::Stamp::start`); `None` in
    /// registrations of versions that did not record it, or where it could not be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<u64>,
    /// The boot the creating process ran in; `None` where it could not be read.
    pub boot_id: Option<String>,
    /// When the registration was first written (seconds since the epoch).
    pub created_unix: u64,
    /// The staging directory's device, once it exists.
    pub dev: Option<u64>,
    /// The staging directory's inode, once it exists.
    pub ino: Option<u64>,
}

impl Record {
    /// The staging directory's path.
    pub fn path_buf(&self) -> Option<PathBuf> {
        if let Some(p) = &self.path {
            return Some(PathBuf::from(p));
        }
        let bytes = crate::interchange::from_hex(self.path_hex.as_ref()?)?;
        crate::worktree_records::path_from_bytes(bytes)
    }
}

/// A registration of this process; removed when dropped (see [`Registration::keep`]).
#[derive(Debug)]
pub struct Registration<'a> {
    store: &'a Store,
    name: OsString,
    record: Record,
    /// The record's entry in the process's undo registry (`cowtree_fs::undo`): removed by a
    /// signal handler only once the staging it describes is gone.
    undo: Option<cowtree_fs::undo::Registration>,
}

/// Registers, durably, that this process is about to create the staging directory `path`
/// (absolute, its parent canonical). Call before creating it.
pub fn register<'a>(store: &'a Store, path: &Path) -> Result<Registration<'a>> {
    register_expecting(store, path, None)
}

/// [`register`], naming the inode the directory will have when the caller knows it before
/// making it: a btrfs subvolume's root is always inode 256, and a subvolume snapshot is made
/// in one call, so that the registration that makes it removable by gc is durable before it
/// exists (`dev` is then 0: a subvolume's device number is given when it is made, and gc
/// compares inodes only). [`Registration::created`] records the real device afterwards.
pub fn register_expecting<'a>(
    store: &'a Store,
    path: &Path,
    expect: Option<(u64, u64)>,
) -> Result<Registration<'a>> {
    let (p, hex) = match path.to_str() {
        Some(s) => (Some(s.to_string()), None),
        None => (
            None,
            Some(crate::interchange::to_hex(
                path.as_os_str().as_encoded_bytes(),
            )),
        ),
    };
    let name = OsString::from(format!("{PREFIX}{}", unique_suffix()));
    let undo = cowtree_fs::undo::Registration::file(store.worktrees_dir(), &name, true)
        .map_err(|e| Error::io_at("register staging", path, e))?;
    let reg = Registration {
        store,
        name,
        record: Record {
            version: VERSION,
            path: p,
            path_hex: hex,
            pid: std::process::id(),
            start: Stamp::current().start,
            boot_id: boot_id(),
            created_unix: unix_now(),
            dev: expect.map(|e| e.0),
            ino: expect.map(|e| e.1),
        },
        undo: Some(undo),
    };
    reg.write(true)?;
    Ok(reg)
}

impl Registration<'_> {
    /// Records the device and inode of the staging directory just created. Not synced: a
    /// checkout into the store's filesystem makes it durable with its tree (the `syncfs`
    /// before the worktree is registered), and a power loss before it reaches the disk leaves
    /// at worst a registration without them, which names nothing gc may remove (see the
    /// module doc).
    pub fn created(&mut self, dev: u64, ino: u64) -> Result<()> {
        self.record.dev = Some(dev);
        self.record.ino = Some(ino);
        self.write(false)
    }

    /// Leaves the registration in the store for gc (the staging directory could not be
    /// removed).
    pub fn keep(mut self) {
        if let Some(undo) = self.undo.take() {
            undo.forget();
        }
    }

    fn write(&self, sync: bool) -> Result<()> {
        let json =
            serde_json::to_vec(&self.record).expect("a record of strings and integers serializes");
        let dir = self.store.worktrees_dir();
        // "register staging PATH: in STORE/worktrees: <OS error>", its kind kept.
        // Not once the process is stopping: its signal handler may have listed the
        // registrations already (see `cowtree_fs::staging::stop_staging`).
        cowtree_fs::staging::unless_stopping(|| {
            cowtree_fs::atomic_file::write_atomic(dir, &self.name, &json, 0o644, sync)
        })
        .map_err(|e| {
            let at = self.store.worktrees_path();
            Error::io_at(
                "register staging",
                self.record.path_buf().unwrap_or_default(),
                std::io::Error::new(e.kind(), format!("in {}: {e}", at.display())),
            )
        })
    }
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        // Not synced: a removal lost to a power loss leaves a registration whose directory
        // is gone (renamed into place or removed), which gc drops.
        if let Some(undo) = self.undo.take() {
            let _ = undo.undo();
        }
    }
}

/// What [`collect`] did with one registration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The staging directory was removed (or, with `dry_run`, would be).
    Removed(PathBuf),
    /// Its owner is alive: left alone.
    Live(PathBuf),
    /// The directory is gone or is not the one registered: only the registration was
    /// dropped.
    Dropped,
    /// Looking at or removing the directory failed: the registration is kept for the next gc.
    Kept {
        /// The registered staging directory.
        path: PathBuf,
        /// What failed.
        error: String,
    },
}

/// gc's pass over the registrations (call with the store lock held exclusively): removes
/// staging directories whose owner is gone, each only if the directory at the registered path
/// is still the registered one (its inode, opened without following a symlink in any
/// component), its contents through that open directory and then the empty directory by name.
/// Registrations that name nothing left to remove are dropped. `grace` is how long a
/// registration that cannot be read, or whose owner cannot be told dead, is kept.
pub fn collect(store: &Store, dry_run: bool, grace: Duration) -> Result<Vec<Outcome>> {
    let wt_path = store.worktrees_path();
    let dir = store.worktrees_dir();
    let mut out = Vec::new();
    let io = |name: &OsStr, e| Error::io_at("", wt_path.join(name), e);
    for e in dir.entries().map_err(|e| Error::io_at("", wt_path, e))? {
        if !e.name.as_encoded_bytes().starts_with(PREFIX.as_bytes()) {
            continue;
        }
        let Some(bytes) = read_at(dir, &e.name).map_err(|err| io(&e.name, err))? else {
            continue;
        };
        // The staging directory must belong to whoever wrote the registration.
        let owner = (dir.try_stat(&e.name))
            .map_err(|err| io(&e.name, err))?
            .and_then(|st| cowtree_fs::sys::stat_owner(&st))
            .map(|(uid, _)| uid);
        let outcome = match serde_json::from_slice::<Record>(&bytes) {
            Ok(rec) if rec.version == VERSION => match settle(&rec, owner, dry_run, grace) {
                Ok(outcome) => outcome,
                // One registration that cannot be settled does not stop gc.
                Err(err) => Outcome::Kept {
                    path: rec.path_buf().unwrap_or_default(),
                    error: err.to_string(),
                },
            },
            // A registration this code cannot read names nothing it may remove.
            _ => {
                let st = dir.try_stat(&e.name).map_err(|err| io(&e.name, err))?;
                let old = st.is_some_and(|st| {
                    let mtime = crate::util::mtime(&st);
                    SystemTime::now().duration_since(mtime).unwrap_or_default() > grace
                });
                if !old {
                    continue;
                }
                Outcome::Dropped
            }
        };
        if !matches!(outcome, Outcome::Live(_) | Outcome::Kept { .. }) && !dry_run {
            dir.remove_file(&e.name).map_err(|err| io(&e.name, err))?;
        }
        out.push(outcome);
    }
    Ok(out)
}

/// Decides one registration, written by user `owner`, removing its directory when its
/// creator is gone.
fn settle(rec: &Record, owner: Option<u32>, dry_run: bool, grace: Duration) -> Result<Outcome> {
    let Some(path) = rec.path_buf() else {
        return Ok(Outcome::Dropped);
    };
    // Only what a checkout names its staging (`.<name>.cowtree-checkout-<stamp>-...`) is ever
    // removed: a registration naming anything else is not one this code wrote.
    let ours = path.file_name().is_some_and(|n| {
        let n = n.as_encoded_bytes();
        let infix = format!("{}{}{}", STAGING.infix, rec.stamp(), STAGING.separator);
        n.starts_with(b".") && n.windows(infix.len()).any(|w| w == infix.as_bytes())
    });
    if !ours {
        return Ok(Outcome::Dropped);
    }
    let owner_gone = || owner_gone(rec, grace);
    let (Some(_), Some(ino)) = (rec.dev, rec.ino) else {
        // Killed before the directory was recorded: nothing here may be removed.
        return Ok(if owner_gone() {
            Outcome::Dropped
        } else {
            Outcome::Live(path)
        });
    };
    let (Some(parent_path), Some(name)) = (path.parent(), path.file_name()) else {
        return Ok(Outcome::Dropped);
    };
    let Some((root_path, rel)) = split_root(parent_path) else {
        return Ok(Outcome::Dropped);
    };
    // No symlink in any component: the parent was canonical when registered, and one that
    // is a symlink now leads somewhere that was not registered.
    let root = Dir::open(&root_path).map_err(Error::Io)?;
    let parent = if rel.as_os_str().is_empty() {
        Ok(root)
    } else {
        root.open_dir_deep(&rel)
    };
    let parent = match parent {
        Ok(p) => p,
        // The parent is gone (or is a symlink now): nothing registered can be there.
        Err(e) if gone_from_path(&e) => {
            return Ok(if owner_gone() {
                Outcome::Dropped
            } else {
                Outcome::Live(path)
            });
        }
        Err(e) => return Err(Error::io_at("", parent_path, e)),
    };
    let at = |e: std::io::Error| Error::io_at("", &path, e);
    let staging = match parent.open_dir(name) {
        Ok(d) => d,
        // Gone, or not a directory there now: nothing registered is left to remove. Any
        // other failure keeps the registration for the next gc.
        Err(e) if gone_from_path(&e) => return Ok(Outcome::Dropped),
        Err(e) => return Err(at(e)),
    };
    // At its own (unique) path the directory is recognised by its inode, as a worktree is
    // (docs/store.md): the device number of a filesystem can change from one mount to the
    // next (loop devices, btrfs's anonymous devices).
    let st = staging.stat_self().map_err(at)?;
    if !is_registered(&st, ino, owner) {
        return Ok(Outcome::Dropped);
    }
    #[cfg(unix)]
    {
        // A live checkout holds an flock on its staging directory for as long as it runs.
        let gone = match staging.try_lock_exclusive() {
            Ok(taken) => taken,
            Err(_) => owner_gone(),
        };
        if !gone {
            return Ok(Outcome::Live(path));
        }
    }
    // A live checkout keeps its own handle on its staging directory open for as long as it
    // runs: only a handle for this one alone says it is gone, and the removal goes through
    // it (still the registered directory: it was open all along).
    #[cfg(windows)]
    let staging = {
        drop(staging);
        match parent.open_dir_exclusive(name) {
            Ok(Some(d)) if d.stat_self().is_ok_and(|s| is_registered(&s, ino, owner)) => d,
            Ok(Some(_)) => return Ok(Outcome::Dropped),
            Ok(None) => return Ok(Outcome::Live(path)),
            Err(e) if gone_from_path(&e) => return Ok(Outcome::Dropped),
            Err(e) => return Err(at(e)),
        }
    };
    if !dry_run {
        // Through the directory just checked, then the (now empty) directory by name: a
        // directory put at the name meanwhile is not emptied, and rmdir refuses it unless
        // it is empty.
        #[cfg(unix)]
        {
            for e in staging.entries().map_err(at)? {
                staging.remove_tree(&e.name).map_err(at)?;
            }
            parent.remove_dir(name).map_err(at)?;
        }
        // Windows: everything through the handle held alone, the directory itself with it.
        #[cfg(windows)]
        staging.remove_self_tree().map_err(at)?;
        parent.sync().map_err(at)?;
    }
    Ok(Outcome::Removed(path))
}

/// Whether `st` is the staging directory registered with inode `ino` by the user `owner`.
#[cfg(unix)]
fn is_registered(st: &cowtree_fs::dir::Stat, ino: u64, owner: Option<u32>) -> bool {
    st.st_ino == ino
        && FileType::from_raw_mode(st.st_mode) == FileType::Directory
        && owner.is_none_or(|uid| uid == st.st_uid)
}

/// Whether `st` is the staging directory registered with file id `ino` (folded:
/// [`crate::util::file_id`]); Windows has no owner to compare.
#[cfg(windows)]
fn is_registered(st: &cowtree_fs::dir::Stat, ino: u64, _owner: Option<u32>) -> bool {
    crate::util::file_id(st).1 == ino && cowtree_fs::sys::stat_file_type(st).is_dir()
}

/// The root `parent` is opened from and the relative path beneath it: `/` on unix.
#[cfg(unix)]
fn split_root(parent: &Path) -> Option<(PathBuf, PathBuf)> {
    let rel = parent.strip_prefix("/").ok()?;
    Some((PathBuf::from("/"), rel.to_path_buf()))
}

/// The root `parent` is opened from and the relative path beneath it, `/`-separated as
/// `Dir::open_dir_deep` takes it: the volume's root (`C:\`, `\\server\share\`).
#[cfg(windows)]
fn split_root(parent: &Path) -> Option<(PathBuf, PathBuf)> {
    use std::path::Component;
    let mut root = PathBuf::new();
    let mut rel: Vec<&str> = Vec::new();
    for c in parent.components() {
        match c {
            Component::Prefix(_) | Component::RootDir if rel.is_empty() => root.push(c),
            Component::Normal(n) => rel.push(n.to_str()?),
            _ => return None,
        }
    }
    if !root.has_root() {
        return None;
    }
    Some((root, PathBuf::from(rel.join("/"))))
}

/// The error of an open that found nothing (or a symlink) at the path: not a reason to keep a
/// registration, unlike a failure to look (EACCES, EMFILE, EIO). `Dir` reports a symlink in
/// the way as `InvalidInput` and `ENOTDIR` as `NotADirectory`.
fn gone_from_path(e: &std::io::Error) -> bool {
    use std::io::ErrorKind;
    matches!(
        e.kind(),
        ErrorKind::NotFound | ErrorKind::NotADirectory | ErrorKind::InvalidInput
    )
}

/// The registering process is gone: another boot, no such process (its pid and start time:
/// a pid another process was given since is not it), or registered longer ago than `grace`
/// (a registration of an older version has no start time; a live checkout's staging is still
/// kept by its `flock`).
fn owner_gone(rec: &Record, grace: Duration) -> bool {
    let other_boot = match (&rec.boot_id, boot_id()) {
        (Some(a), Some(b)) => *a != b,
        _ => false,
    };
    let old = unix_now().saturating_sub(rec.created_unix) > grace.as_secs();
    other_boot || old || !rec.stamp().is_alive()
}

impl Record {
    /// The registering process.
    pub fn stamp(&self) -> Stamp {
        Stamp {
            pid: self.pid,
            start: self.start,
        }
    }
}

/// This boot's id, from `/proc/sys/kernel/random/boot_id`.
fn boot_id() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
