//! A new destination is built in a staging directory beside it and renamed into place at the
//! end, so the destination appears whole or not at all.
//!
//! The staging directory is named `.<dst name>.cowtree-staging.<pid>.<random>`, so a person who
//! finds one can tell what it is. While a run uses it, the run holds an exclusive `flock` on
//! the directory itself; a staging directory whose lock can be taken belongs to a run that
//! died (killed, power loss), and the next run for the same destination removes it.

use std::collections::hash_map::RandomState;
use std::ffi::{OsStr, OsString};
use std::hash::{BuildHasher, Hasher};
use std::io;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use cowtree_fs::dir::Dir;
use rustix::fs::FileType;

use crate::error::LinkError;

/// Longest part of the destination name kept in a staging name, so the whole name stays
/// under NAME_MAX (255 bytes).
const NAME_KEEP: usize = 200;

/// `.<dst name>.cowtree-staging.`: every staging directory for `dst_name` starts so.
pub(crate) fn staging_prefix(dst_name: &OsStr) -> OsString {
    let name = dst_name.as_bytes();
    let mut v = Vec::with_capacity(NAME_KEEP + 20);
    v.push(b'.');
    v.extend_from_slice(&name[..name.len().min(NAME_KEEP)]);
    v.extend_from_slice(b".cowtree-staging.");
    OsString::from_vec(v)
}

/// A random 64-bit number from the standard library's per-process random hash keys.
pub(crate) fn random_u64() -> u64 {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let mut h = RandomState::new().build_hasher();
    h.write_u64(SEQ.fetch_add(1, Ordering::Relaxed));
    h.write_u32(std::process::id());
    if let Ok(d) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        h.write_u128(d.as_nanos());
    }
    h.finish()
}

/// A staging directory in use by this run. Dropping it without [`Staging::commit`] removes it.
pub(crate) struct Staging<'a> {
    parent: &'a Dir,
    parent_path: PathBuf,
    name: OsString,
    /// The staging directory; its open description holds the flock.
    pub dir: Dir,
    committed: bool,
}

impl<'a> Staging<'a> {
    /// Creates and locks a fresh staging directory for `dst_name` in `parent`.
    pub fn create(
        parent: &'a Dir,
        parent_path: &Path,
        dst_name: &OsStr,
    ) -> Result<Self, LinkError> {
        let mut name = staging_prefix(dst_name);
        name.push(format!("{}.{:016x}", std::process::id(), random_u64()));
        let path = parent_path.join(&name);
        let dir = parent
            .create_dir_open(&name, 0o700)
            .map_err(|e| LinkError::io("create staging directory", &path, e))?;
        let staging = Staging {
            parent,
            parent_path: parent_path.to_path_buf(),
            name,
            dir,
            committed: false,
        };
        // Nobody else knows this name yet, so the lock is free; a failure here means the
        // filesystem has no flock, and then a stale directory is still recognisable by name.
        let _ = staging.dir.try_lock_exclusive();
        Ok(staging)
    }

    /// The staging directory's full path.
    pub fn path(&self) -> PathBuf {
        self.parent_path.join(&self.name)
    }

    /// Renames the staging directory to `dst_name`, failing (and removing the staging
    /// directory) if something appeared there in the meantime.
    pub fn commit(mut self, dst_name: &OsStr) -> Result<(), LinkError> {
        let dst = self.parent_path.join(dst_name);
        match self
            .parent
            .rename_noreplace(&self.name, self.parent, dst_name)
        {
            Ok(()) => {
                self.committed = true;
                Ok(())
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                Err(LinkError::DestinationExists(dst))
            }
            Err(e) => Err(LinkError::link("rename", &self.path(), &dst, e)),
        }
    }
}

impl Drop for Staging<'_> {
    fn drop(&mut self) {
        if !self.committed {
            // Best effort: what is left is recognisable and removed by the next run.
            let _ = self.parent.remove_tree(&self.name);
        }
    }
}

/// Removes staging directories for `dst_name` in `parent` left by runs that died. Returns how
/// many were removed. A staging directory whose run is alive is locked and left alone.
pub(crate) fn remove_stale(parent: &Dir, dst_name: &OsStr) -> io::Result<usize> {
    let prefix = staging_prefix(dst_name);
    let mut removed = 0;
    for entry in parent.entries()? {
        if !entry.name.as_bytes().starts_with(prefix.as_bytes()) {
            continue;
        }
        if !matches!(entry.file_type, FileType::Directory | FileType::Unknown) {
            continue;
        }
        let Ok(dir) = parent.open_dir(&entry.name) else {
            continue;
        };
        if dir.try_lock_exclusive()? {
            // Hold the lock (keep `dir` open) while removing.
            parent.remove_tree(&entry.name)?;
            removed += 1;
        }
        drop(dir);
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn staging_names_say_what_they_are_and_fit_name_max() {
        let p = staging_prefix(OsStr::new("out"));
        assert_eq!(p, OsStr::new(".out.cowtree-staging."));
        let long = OsString::from_vec(vec![b'x'; 255]);
        let mut p = staging_prefix(&long);
        p.push(format!("{}.{:016x}", u32::MAX, u64::MAX));
        assert!(p.len() <= 255, "{}", p.len());
    }

    #[test]
    fn random_numbers_differ() {
        assert_ne!(random_u64(), random_u64());
    }
}
