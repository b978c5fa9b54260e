//! A store's staging directories under `tmp/` (see [`crate::Store::staging`]).

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use cowtree_fs::dir::Dir;
#[cfg(unix)]
use rustix::fs::{FlockOperation, flock};

use crate::error::{Error, Result};
use crate::util::unique_suffix;

/// A staging directory under `tmp/`, flocked by this process for as long as it lives, so that
/// `gc` can tell live staging from leftovers of a killed process. Removed on drop. Windows
/// cannot `flock` a directory: there the lock is its own handle, open from the call that made
/// it (so never unlocked) until it is dropped, which gc's open of it for itself alone
/// (`Dir::open_dir_exclusive`) fails against, as `cowtree_fs::staging`'s.
#[derive(Debug)]
pub struct Staging {
    dir: Dir,
    path: PathBuf,
    /// Its entry in the process's undo registry (`cowtree_fs::undo`).
    undo: Option<cowtree_fs::undo::Registration>,
}

impl Staging {
    /// Creates `<purpose>-<pid>-<n>-<t>/` in the store's `tmp/` (`tmp`, at `tmp_path`),
    /// registered for undo before it is made and flocked until dropped.
    pub(crate) fn make(tmp: &Dir, tmp_path: &Path, purpose: &str) -> Result<Staging> {
        let name = OsString::from(format!("{purpose}-{}", unique_suffix()));
        let undo = cowtree_fs::undo::Registration::tree(tmp, &name)
            .map_err(|e| Error::io_at("", tmp_path, e))?;
        let dir = cowtree_fs::staging::unless_stopping(|| tmp.create_dir_open(&name, 0o700))
            .map_err(|e| Error::io_at("", tmp_path, e))?;
        let staging = Staging {
            dir,
            path: tmp_path.join(&name),
            undo: Some(undo),
        };
        #[cfg(unix)]
        flock(&staging.dir, FlockOperation::NonBlockingLockExclusive)
            .map_err(|e| Error::io_at("lock staging in", tmp_path, e.into()))?;
        Ok(staging)
    }

    /// The staging directory.
    pub fn dir(&self) -> &Dir {
        &self.dir
    }

    /// Its path, for messages.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        // The same removal as a signal handler's (`cowtree_fs::undo::undo_all`).
        if let Some(undo) = self.undo.take() {
            let _ = undo.undo();
        }
    }
}
