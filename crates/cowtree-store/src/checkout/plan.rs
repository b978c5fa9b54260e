//! The plan: how a checkout makes its tree, decided before any work (one writable snapshot of
//! the store's tree subvolume, or per file with the reason), and whether the store is on
//! another filesystem than DST.

#[cfg(unix)]
use cowtree_fs::subvolume::{self, At};
#[cfg(unix)]
use cowtree_fs::whole_tree;
use cowtree_fs::whole_tree::NotUsed;

use crate::error::{Error, Result, cross_device_message};
use crate::trees;

use super::dest::Dest;
use super::job::Job;
use super::options::CheckoutMode;

/// How a checkout will make its tree, decided before any work ([`Job::plan`]).
pub(super) enum Plan {
    /// One writable snapshot of the store's tree subvolume of the snapshot (built first when
    /// the store has none yet).
    // Never on Windows, which has no subvolumes (see `Job::plan` there).
    #[cfg_attr(windows, allow(dead_code))]
    Subvolume(Option<trees::Tree>),
    /// Per file, for this reason. `btrfs`: DST is on btrfs, where its root is made a
    /// subvolume all the same, so that it can be snapshotted in turn.
    PerFile { reason: NotUsed, btrfs: bool },
}

impl Job<'_> {
    /// Whether the store is on another filesystem than DST (warned about, or refused under
    /// `strict`, unless copying was asked for).
    pub(super) fn cross_device(&self, dest: &Dest) -> Result<bool> {
        // Different st_dev usually means different filesystems, but btrfs subvolumes of one
        // filesystem differ too and can clone between them: a raw probe (cached per device
        // pair) settles it.
        let parent_dev = cowtree_fs::sys::stat_dev(
            &dest
                .parent
                .stat_self()
                .map_err(|e| Error::io_at("", &dest.parent_path, e))?,
        );
        let cross_device = parent_dev != self.store.blobs_dev()?
            && !matches!(
                cowtree_fs::probe::ProbeCache::global()
                    .reflink(&self.store.root().join("tmp"), &dest.parent_path),
                Ok(Ok(()))
            );
        if cross_device && self.opts.mode != CheckoutMode::Copy {
            if self.opts.strict {
                return Err(Error::CrossDevice {
                    store: self.store.root().to_path_buf(),
                    destination: self.dst.to_path_buf(),
                });
            }
            (self.warn)(&format!(
                "warning: {}",
                cross_device_message(self.store.root(), self.dst)
            ));
        }
        Ok(cross_device)
    }

    /// Decides how the tree is made: one snapshot of the store's tree subvolume where the
    /// store and DST are on one btrfs and the store's tree can be used (or made) by this
    /// user, else per file, with the reason. Cheap where it says no (XFS, ext4, tmpfs: two
    /// `fstatfs`).
    #[cfg(unix)]
    pub(super) fn plan(&self, dest: &Dest, cross_device: bool) -> Result<Plan> {
        let dst_at = At::new(&dest.parent, &dest.parent_path);
        let btrfs = subvolume::is_btrfs(dst_at)?;
        let per_file = |reason| Ok(Plan::PerFile { reason, btrfs });
        // The seam's rules (cowtree_fs::whole_tree), applied to where the tree subvolume is
        // or will be made: the store's blobs directory.
        let blobs_path = self.store.root().join("blobs");
        let blobs_at = At::new(self.store.blobs(), &blobs_path);
        match whole_tree::filesystem_rule(blobs_at, dst_at)? {
            Some(reason @ NotUsed::Filesystem { .. }) => return per_file(reason),
            _ if self.opts.mode == CheckoutMode::Copy => {
                return per_file(NotUsed::Requested {
                    code: "mode",
                    why: "--mode copy",
                });
            }
            Some(reason) => return per_file(reason),
            None if cross_device => return per_file(NotUsed::CrossFilesystem),
            None => {}
        }
        // No tree of a snapshot still arriving can be taken whole: it goes per file, each
        // file written as its blob arrives.
        if self.arriving.is_some() {
            return per_file(NotUsed::Requested {
                code: "arriving",
                why: "the snapshot was still arriving from a remote",
            });
        }
        match trees::open(self.store, self.id)? {
            // A snapshot keeps every owner: another user's tree would give another user's
            // files, where a per-file checkout makes them the caller's.
            Some(tree) if tree.owner != rustix::process::geteuid().as_raw() => {
                per_file(NotUsed::NotOwner { owner: tree.owner })
            }
            Some(tree) => Ok(Plan::Subvolume(Some(tree))),
            None if self.store.is_read_only() => per_file(trees::STORE_NOT_WRITABLE),
            None if trees::exists(self.store, self.id)? => per_file(trees::NOT_TRUSTED),
            None => Ok(Plan::Subvolume(None)),
        }
    }

    /// The plan on Windows: always per file (btrfs subvolumes do not exist there; the tree
    /// is made file by file, each block-cloned or copied from its blob). What has no
    /// Windows meaning is refused here, in one line, before anything is made: restoring a
    /// `snapshot --archive`'s owners, modes, extended attributes, hardlinks and special files
    /// (`checkout --archive`, `--preserve=LIST`).
    #[cfg(windows)]
    pub(super) fn plan(&self, _dest: &Dest, _cross_device: bool) -> Result<Plan> {
        if !self.opts.preserve.is_none() {
            return Err(Error::msg(super::archive::ARCHIVE_UNAVAILABLE));
        }
        let reason = match self.opts.mode {
            CheckoutMode::Copy => NotUsed::Requested {
                code: "mode",
                why: "--mode copy",
            },
            _ => NotUsed::Filesystem { fs: "windows" },
        };
        Ok(Plan::PerFile {
            reason,
            btrfs: false,
        })
    }
}
