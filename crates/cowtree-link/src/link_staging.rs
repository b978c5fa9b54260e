//! A new destination is built in a staging directory beside it and renamed into place at the
//! end, so the destination appears whole or not at all ([`cowtree_fs::staging`], which also
//! holds the lock that tells a live run's staging from a dead one's).
//!
//! The staging directory is named `.<dst name>.cowtree-staging.<pid>.<random>` ([`NAMING`]),
//! so a person who finds one can tell what it is; the next run for the same destination
//! removes those left by runs that died. This module adds the linker's errors.

use std::ffi::OsStr;
use std::io;
use std::ops::Deref;
use std::path::{Path, PathBuf};

use cowtree_fs::dir::Dir;
use cowtree_fs::staging::Naming;
pub(crate) use cowtree_fs::staging::random_u64;
use cowtree_fs::sys::stat_dev;

use crate::error::LinkError;

/// How the linker names its staging directories: `.<dst name, at most 200 bytes>`
/// `.cowtree-staging.<pid>.<random>`.
pub const NAMING: Naming = cowtree_fs::staging::TREE;

/// A staging directory in use by this run (its `dir` field is the open directory). Dropping
/// it without [`Staging::commit`] removes it.
pub(crate) struct Staging<'a> {
    parent: &'a Dir,
    parent_path: PathBuf,
    inner: cowtree_fs::staging::Staging<'a>,
}

impl<'a> Staging<'a> {
    /// Creates and locks a fresh staging directory for `dst_name` in `parent`.
    pub fn create(
        parent: &'a Dir,
        parent_path: &Path,
        dst_name: &OsStr,
    ) -> Result<Self, LinkError> {
        let name = NAMING.name(dst_name, &format!("{:016x}", random_u64()));
        let path = parent_path.join(&name);
        let inner = cowtree_fs::staging::Staging::create(parent, name, 0o700)
            .map_err(|e| LinkError::io("create staging directory", &path, e))?;
        Ok(Staging {
            parent,
            parent_path: parent_path.to_path_buf(),
            inner,
        })
    }

    /// The staging directory's full path.
    pub fn path(&self) -> PathBuf {
        self.parent_path.join(self.inner.name())
    }

    /// Renames the staging directory to `dst_name`, failing (and removing the staging
    /// directory) if something appeared there in the meantime, or if what has the staging
    /// name is no longer the directory this run filled (moved away, and something else put
    /// there: that is not renamed into place).
    pub fn commit(mut self, dst_name: &OsStr) -> Result<(), LinkError> {
        let dst = self.parent_path.join(dst_name);
        let ours = self
            .inner
            .dir
            .stat_self()
            .map_err(|e| LinkError::io("stat", &self.path(), e))?;
        let here = self
            .parent
            .try_stat(self.inner.name())
            .map_err(|e| LinkError::io("stat", &self.path(), e))?;
        let same = here.is_some_and(|st| {
            cowtree_fs::sys::stat_file_type(&st).is_dir()
                && cowtree_fs::sys::stat_ino(&st) == cowtree_fs::sys::stat_ino(&ours)
                && stat_dev(&st) == stat_dev(&ours)
        });
        if !same {
            return Err(LinkError::io(
                "commit",
                &self.path(),
                io::Error::other("the staging directory was moved or replaced"),
            ));
        }
        match self.inner.commit(dst_name, false) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                Err(LinkError::DestinationExists(dst))
            }
            Err(e) => Err(LinkError::link("rename", &self.path(), &dst, e)),
        }
    }
}

impl<'a> Deref for Staging<'a> {
    type Target = cowtree_fs::staging::Staging<'a>;

    fn deref(&self) -> &Self::Target {
        &self.inner
    }
}

/// Removes staging directories for `dst_name` in `parent` left by runs that died. Returns how
/// many were removed. A staging directory whose run is alive is locked and left alone.
pub(crate) fn remove_stale(parent: &Dir, dst_name: &OsStr) -> io::Result<usize> {
    cowtree_fs::staging::remove_stale(parent, &NAMING.prefix(dst_name))
}
