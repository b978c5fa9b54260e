//! The whole-tree way: the store's tree subvolume of the snapshot (built first from the blobs
//! when there is none), snapshotted writable at the staging name in one call.
//!
//! Windows has no btrfs subvolumes: its plan is always per file (`plan.rs`), and the
//! whole-tree way, should anything reach it there, is refused in one line
//! ([`NO_SUBVOLUMES`]). [`stats_of`] builds on both.

use std::path::Path;

use cowtree_fs::dir::Dir;
#[cfg(unix)]
use cowtree_fs::staging::{Staging, unless_stopping};
#[cfg(unix)]
use cowtree_fs::subvolume::At;
use cowtree_fs::whole_tree::NotUsed;
#[cfg(unix)]
use cowtree_fs::whole_tree::{Request, WholeTree};
use rayon::prelude::*;

use crate::compact::CompactManifest;
use crate::error::{Error, Result};
use crate::manifest::Kind;
use crate::pools;
use crate::trees;
use crate::util::path_of;

use super::dest::Dest;
use super::job::{Job, Lazy};
use super::per_file::ROOT;
#[cfg(unix)]
use super::per_file::fill;
use super::report::{CheckoutReport, EntryStat, Written};
use super::stage::Stage;

/// Why the whole-tree way is refused on Windows, in one line.
#[cfg(windows)]
pub(super) const NO_SUBVOLUMES: &str = "btrfs subvolumes do not exist on Windows";

#[cfg(windows)]
impl Job<'_> {
    /// The whole-tree way on Windows: refused ([`NO_SUBVOLUMES`]), nothing made.
    pub(super) fn subvolume<'s>(
        &self,
        _dest: &'s Dest,
        _stage: &mut Stage<'s>,
        _manifest: &mut Lazy<'_>,
        _tree: Option<trees::Tree>,
    ) -> Result<std::result::Result<(CheckoutReport, Written), NotUsed>> {
        Err(Error::msg(NO_SUBVOLUMES))
    }
}

#[cfg(unix)]
impl Job<'_> {
    /// The whole-tree method: the store's tree subvolume of the snapshot (built now from the
    /// blobs when there is none), snapshotted writable at the staging name through the seam
    /// ([`cowtree_fs::whole_tree`]). Says why not, having made nothing in staging, where it
    /// does not apply.
    pub(super) fn subvolume<'s>(
        &self,
        dest: &'s Dest,
        stage: &mut Stage<'s>,
        manifest: &mut Lazy<'_>,
        tree: Option<trees::Tree>,
    ) -> Result<std::result::Result<(CheckoutReport, Written), NotUsed>> {
        let (tree, built) = match tree {
            Some(tree) => (tree, None),
            None => match self.build_tree(manifest.get()?)? {
                Ok((tree, made)) => (tree, Some(made)),
                Err(reason) => return Ok(Err(reason)),
            },
        };
        let req = Request {
            src: tree.at(),
            parent: At::new(&dest.parent, &dest.parent_path),
            name: &stage.name,
            read_only: false,
        };
        // Registered for undo first, then made through the gate that a signal handler closes
        // before it undoes (see `cowtree_fs::undo`).
        let reserved = Staging::reserve(&dest.parent, stage.name.clone())
            .map_err(|e| Error::io_at("", &stage.path, e))?;
        let mut outcome = None;
        unless_stopping(|| {
            outcome = Some(cowtree_fs::whole_tree::try_whole_tree(&req, None));
            Ok(())
        })
        .map_err(|e| Error::io_at("create staging directory in", &dest.parent_path, e))?;
        let outcome = outcome.ok_or_else(|| Error::internal("the snapshot did not run"))?;
        let method = match outcome? {
            WholeTree::Done(method) => method,
            WholeTree::NotUsed(reason) => return Ok(Err(reason)),
        };
        let staging = reserved
            .adopt()
            .map_err(|e| Error::io_at("", &stage.path, e))?;
        stage.made(staging)?;
        let tree_built = built.is_some();
        let (mut report, mut written) = match built {
            Some(made) => made,
            // No stat cache kept with the tree yet (a tree made by a snapshot of a subvolume,
            // or its cache lost): the stats of the tree's entries, which the snapshot keeps,
            // for the caller to make one.
            None if self.hooks.is_some() && trees::cache(self.store, self.id).is_none() => (
                CheckoutReport::default(),
                stats_of(&tree.dir, &tree.path, manifest.get()?)?,
            ),
            None => Default::default(),
        };
        written.from_tree = true;
        report.tree_built = tree_built;
        let counts = match trees::counts(self.store, self.id) {
            Some(c) => c,
            None => {
                // Kept for the next checkout (best effort: it would count again).
                let c = trees::Counts::of_compact(manifest.get()?);
                let _ = trees::set_counts(self.store, self.id, &c);
                c
            }
        };
        report.files = counts.files;
        report.symlinks = counts.symlinks;
        report.dirs = counts.dirs;
        report.bytes = counts.bytes;
        report.method = method;
        if !tree_built {
            self.progress
                .add(counts.files + counts.symlinks, counts.bytes);
        }
        Ok(Ok((report, written)))
    }

    /// Builds the store's tree subvolume of the snapshot from its blobs (per file, into a new
    /// subvolume), then publishes it read-only ([`trees::Pending::publish`]); returns
    /// it with what was written into it. Says why not where no subvolume can be made there.
    #[allow(clippy::type_complexity)]
    fn build_tree(
        &self,
        manifest: &CompactManifest,
    ) -> Result<std::result::Result<(trees::Tree, (CheckoutReport, Written)), NotUsed>> {
        let pending = match trees::create(self.store)? {
            Ok(p) => p,
            Err(reason) => return Ok(Err(reason)),
        };
        let made = fill(
            self.store,
            manifest,
            pending.dir(),
            pending.path(),
            self.opts,
            self.progress,
            self.hooks.is_some(),
            None,
        )?;
        let tree = pending.publish(self.id)?;
        // Best effort: a checkout counts from the manifest when these are missing.
        let counts = trees::Counts::of_compact(manifest);
        let _ = trees::set_counts(self.store, self.id, &counts);
        Ok(Ok((tree, made)))
    }
}

/// The stat of every entry of `manifest`'s tree at `root` (each file and symlink `lstat`ed,
/// each directory but the root `stat`ed, in parallel), as [`Written`] holds them: what a
/// stat cache of a tree made without writing it (a snapshot of a tree subvolume) is made of.
/// `root` must hold exactly that tree and not change (a read-only tree subvolume): an entry
/// that is not there, or of another type, is an error.
pub fn stats_of(root: &Dir, root_path: &Path, manifest: &CompactManifest) -> Result<Written> {
    let stat = |rel: &[u8]| -> Result<EntryStat> {
        stat_beneath(root, rel)
            .map(|st| EntryStat::of(&st))
            .map_err(|e| Error::io_at("", root_path.join(path_of(rel)), e))
    };
    let (stats, dirs) = pools::install(pools::Pool::Checkout, || {
        rayon::join(
            || {
                (0..manifest.len())
                    .into_par_iter()
                    .map_init(Vec::new, |path, i| match manifest.get(i) {
                        Some(e) if e.kind != Kind::Dir => {
                            manifest.path_into(i, path);
                            stat(path).map(Some)
                        }
                        _ => Ok(None),
                    })
                    .collect::<Result<Vec<_>>>()
            },
            || {
                (ROOT + 1..manifest.dirs())
                    .into_par_iter()
                    .map(|d| {
                        let path = manifest.dir_path(d);
                        Ok((path.to_vec(), stat(path)?))
                    })
                    .collect::<Result<Vec<_>>>()
            },
        )
    });
    Ok(Written {
        stats: stats?,
        dirs: dirs?,
        from_tree: true,
        ..Written::default()
    })
}

/// The `lstat` of the relative path `rel` beneath `root`.
#[cfg(unix)]
fn stat_beneath(root: &Dir, rel: &[u8]) -> std::io::Result<cowtree_fs::dir::Stat> {
    Ok(rustix::fs::statat(
        root,
        path_of(rel),
        rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
    )?)
}

/// What the relative path `rel` beneath `root` is, never following a reparse point: its
/// directory opened one component at a time, then the entry described itself.
#[cfg(windows)]
fn stat_beneath(root: &Dir, rel: &[u8]) -> std::io::Result<cowtree_fs::dir::Stat> {
    let (parent, name) = crate::util::split(rel);
    let name = super::entry::os_name(name)?;
    if parent.is_empty() {
        root.stat(&name)
    } else {
        root.open_dir_beneath(&path_of(parent))?.stat(&name)
    }
}
