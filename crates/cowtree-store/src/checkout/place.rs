//! The last step: the tree made in staging made durable, the worktree registered, and the
//! tree renamed to DST, in that order.

#[cfg(unix)]
use cowtree_fs::whole_tree::Method as WholeMethod;

use crate::compact::CompactManifest;
use crate::error::{Error, Result};

use super::dest::{Dest, dst_still_free, taken};
use super::job::Job;
use super::report::{CheckoutReport, Written};
use super::stage::Stage;

/// How far the placing step got, for the cleanup after a failure.
#[derive(Default)]
pub(super) struct Placing {
    /// The worktree's registry id, once registered.
    pub(super) registered: Option<String>,
    /// The tree is at DST: nothing is undone any more.
    pub(super) placed: bool,
}

impl Job<'_> {
    /// Makes the tree in staging durable, registers the worktree and renames the tree to
    /// DST (see the comments for the order); `placing` says how far it got.
    pub(super) fn place(
        &self,
        dest: &Dest,
        stage: &mut Stage<'_>,
        manifest: CompactManifest,
        (report, mut written): (CheckoutReport, Written),
        placing: &mut Placing,
    ) -> Result<(CheckoutReport, Written)> {
        let staging = (stage.made.as_mut())
            .ok_or_else(|| Error::internal("no tree made in staging to place"))?;
        // The whole tree durable, then its record (the staging root keeps its inode through
        // the rename), then the rename, also durable: after a power loss DST is either
        // absent or whole and registered (docs/store.md, "Durability"). A record whose path
        // never appeared pins nothing and gc drops it.
        let before_placing = self.hooks.map(|h| h.before_placing);
        // Windows lets only administrators flush a volume: each file was flushed as it was
        // written (`entry.rs`), and each directory is now.
        #[cfg(windows)]
        super::per_file::sync_dirs(&staging.dir, &stage.path, &manifest)?;
        if self.hooks.is_some() {
            written.manifest = manifest;
        }
        let hook = || {
            if let Some(f) = before_placing {
                f(&written);
            }
        };
        // A snapshot is committed (durable) when the ioctl returns: nothing to sync, and
        // nothing to run beside the hook (starting the thread pool for it costs more than the
        // whole snapshot).
        #[cfg(unix)]
        if report.method == WholeMethod::PerFile {
            let (synced, ()) = rayon::join(|| staging.dir.sync_filesystem(), hook);
            synced.map_err(|e| Error::io_at("sync the checkout in", &stage.path, e))?;
        } else {
            hook();
        }
        #[cfg(windows)]
        hook();
        let root = (staging.dir.stat_self()).map_err(|e| Error::io_at("", &stage.path, e))?;
        let root_id = crate::util::file_id(&root);
        written.root = root_id;
        // One checkout at a time registers and renames to this path, and only while the path
        // is still free: a second checkout to the same DST must not overwrite the record of
        // the first and then, failing its rename, remove it.
        let _claim = crate::worktree_records::claim(self.store)?;
        if !dst_still_free(&dest.parent, &dest.name, dest.replace_empty)? {
            return Err(taken(self.dst, "was taken while the checkout ran"));
        }
        placing.registered = Some(match self.hooks {
            Some(h) => crate::worktree_records::register_root_with(
                self.store, &dest.abs, self.id, root_id, h.record,
            )?,
            None => {
                crate::worktree_records::register_root(self.store, &dest.abs, self.id, root_id)?
            }
        });
        staging
            .commit(&dest.name, dest.replace_empty)
            .map_err(|e| Error::io_at("move the checkout into", self.dst, e))?;
        placing.placed = true;
        dest.parent.sync().map_err(|source| Error::NotDurable {
            path: self.dst.to_path_buf(),
            source,
        })?;
        Ok((report, written))
    }
}
