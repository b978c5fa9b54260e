//! The staging directory beside DST ([`Stage`]): registered in the store before it exists
//! (so that gc can remove what a killed checkout left), removed with its registration when the
//! checkout fails, renamed to DST when it succeeds.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use cowtree_fs::dir::Dir;
use cowtree_fs::staging::Staging;
#[cfg(unix)]
use cowtree_fs::subvolume::{self, At};

use crate::dest_staging::{self, STAGING};
use crate::error::{Error, Result};
use crate::store::Store;
use crate::util::unique_suffix;

use super::dest::Dest;

/// The staging directory beside DST, and its registration in the store (see
/// [`crate::dest_staging`]): registered before it exists, removed with the registration when
/// the checkout fails, renamed to DST when it succeeds.
pub(super) struct Stage<'a> {
    /// The store (for the command a warning prints).
    store: &'a Store,
    registration: dest_staging::Registration<'a>,
    pub(super) name: OsString,
    /// Its path (DST's parent as given, joined with `name`), for messages.
    pub(super) path: PathBuf,
    /// The directory, once made.
    pub(super) made: Option<Staging<'a>>,
}

impl<'a> Stage<'a> {
    /// Removes staging left beside DST by checkouts of it that died (best effort), then
    /// registers (durably) a new staging name, so that gc can remove the directory if this
    /// process is killed once it exists.
    pub(super) fn begin(
        store: &'a Store,
        dest: &Dest,
        expect: Option<(u64, u64)>,
    ) -> Result<Stage<'a>> {
        let _ = cowtree_fs::staging::remove_stale(&dest.parent, &STAGING.prefix(&dest.name));
        // `unique_suffix` starts with the process's stamp, as the naming wants.
        let mut name = STAGING.prefix(&dest.name);
        name.push(unique_suffix());
        let registration =
            dest_staging::register_expecting(store, &dest.abs.with_file_name(&name), expect)?;
        Ok(Stage {
            store,
            registration,
            path: dest.parent_path.join(&name),
            name,
            made: None,
        })
    }

    /// Takes the staging directory just made at the registered name (its lock is held until
    /// the process ends: a staging directory whose lock can be taken belongs to a checkout
    /// that died), and records its device and inode in the registration. Returns the
    /// directory and its path.
    pub(super) fn made(&mut self, staging: Staging<'a>) -> Result<(&Dir, &Path)> {
        let recorded = staging
            .dir
            .stat_self()
            .map_err(|e| Error::io_at("", &self.path, e))
            .and_then(|st| {
                let (dev, ino) = crate::util::file_id(&st);
                (self.registration).created(dev, ino)
            });
        let staging = self.made.insert(staging);
        recorded?;
        Ok((&staging.dir, &self.path))
    }

    /// Removes the staging directory after a failure, with its registration; a directory
    /// that cannot be removed is warned about and its registration kept for gc.
    pub(super) fn abandon(self, warn: &dyn Fn(&str)) {
        let Some(staging) = self.made else {
            return;
        };
        // A subvolume (a snapshot, or the per-file method's root on btrfs) goes in O(1) where
        // the kernel permits; `remove` then finds nothing left.
        #[cfg(unix)]
        if subvolume::is_root(At::new(&staging.dir, &self.path)).unwrap_or(false)
            && let (Some(parent), Some(name)) = (self.path.parent(), self.path.file_name())
            && let Ok(pdir) = Dir::open(if parent.as_os_str().is_empty() {
                Path::new(".")
            } else {
                parent
            })
        {
            let _ = subvolume::delete(At::new(&pdir, parent), name);
        }
        if let Err(cleanup) = staging.remove() {
            warn(&format!(
                "warning: could not remove staging {} (`{}` removes it): {cleanup}",
                self.path.display(),
                crate::error::command(self.store.root(), &["gc"], Path::new(""))
            ));
            self.registration.keep();
        }
    }
}
