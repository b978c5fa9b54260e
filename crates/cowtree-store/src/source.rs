//! Where a checkout's snapshot comes from: the store of the destination's filesystem, another
//! store that has it, or a remote (pulled into the destination's store first).
//!
//! A store shares data only with trees on its own filesystem, so the store that serves a
//! checkout is chosen by the destination's filesystem, as [`crate::discover`] chooses the store
//! of a tree. [`checkout_source`] decides, in this order:
//! 1. A store named by the caller (`--store`, `COWTREE_STORE`): the snapshot comes from it, or,
//!    when it lacks the snapshot and a pull is allowed, is pulled into it.
//! 2. The destination's store, [`local_store`]: the store a worktree above the destination
//!    names (its marker) when that store is on the destination's filesystem, else the store of
//!    the destination's filesystem ([`crate::discover::store_for_tree`]). When it has the
//!    snapshot, from there.
//! 3. With a pull allowed: another existing store on the destination's filesystem that has the
//!    snapshot; else a pull into the destination's store, even when a store on another
//!    filesystem has the snapshot (a checkout from there would copy every file).
//! 4. Without a pull: the first other store searched ([`crate::discover::candidates`]) that has
//!    it, whichever its filesystem (a checkout from another filesystem copies, and says so).
//! 5. Nowhere: [`NotFound::InStores`] naming the stores searched (or the one store's own
//!    answer when only one was searched, or [`NotFound::NoStore`] when none exists).
//!
//! The store crate knows no remote: a [`Source::Pull`] is the caller's to carry out (the
//! command line pulls with cowtree-remote), before it checks out from that store.

use std::path::{Path, PathBuf};

use crate::discover::{self, Choice};
use crate::error::{Error, NotFound, Result};
use crate::hash::Hash;
use crate::store::Store;

/// Where a checkout's snapshot comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The existing store at `root` has the snapshot `id`.
    Store {
        /// The store's root.
        root: PathBuf,
        /// The snapshot.
        id: Hash,
        /// The store is on the destination's filesystem (else a checkout copies every file).
        same_filesystem: bool,
    },
    /// No store searched has it: pull it into the store at `into` first (which may not exist
    /// yet: the caller creates it).
    Pull {
        /// The store to pull into.
        into: PathBuf,
        /// Why that store, when it was not named by the caller: for the message a caller
        /// prints when it creates the store.
        choice: Option<Choice>,
    },
}

/// The store a pull for a checkout to `dst` goes into when no store is named, and why (see
/// the module doc, step 2). Nothing is created.
pub fn local_store(dst: &Path) -> Result<Choice> {
    discover::device_of(dst).map_err(|e| Error::io_at("", dst, e))?;
    if let Some((root, _)) = discover::marked_store(dst)
        && discover::exists(&root)
        && discover::same_filesystem(&root, dst).unwrap_or(false)
    {
        return Ok(Choice {
            root,
            reason: discover::Reason::Existing,
        });
    }
    discover::store_for_tree(dst)
}

/// Decides where the snapshot `snapshot` (a full id, a unique id prefix or a name) of a
/// checkout to `dst` comes from, by the rule in the module doc. `named` is a store the caller
/// named; `pull` allows a pull when no store that should serve the checkout has it. Stores
/// are only read (a missing store is never created). Errors: not found as described, or the
/// answer of a store that cannot tell (an ambiguous prefix, a damaged name, an I/O error).
pub fn checkout_source(
    named: Option<&Path>,
    dst: &Path,
    snapshot: &str,
    pull: bool,
) -> Result<Source> {
    discover::device_of(dst).map_err(|e| Error::io_at("", dst, e))?;
    let same = |root: &Path| discover::same_filesystem(root, dst).unwrap_or(false);
    if let Some(root) = named {
        if !discover::exists(root) {
            return match pull {
                true => Ok(Source::Pull {
                    into: root.to_path_buf(),
                    choice: None,
                }),
                false => Err(NotFound::NoStore {
                    dst: dst.to_path_buf(),
                    named: Some(root.to_path_buf()),
                }
                .into()),
            };
        }
        return match find(root, snapshot)? {
            Ok(id) => Ok(Source::Store {
                root: root.to_path_buf(),
                id,
                same_filesystem: same(root),
            }),
            Err(_) if pull => Ok(Source::Pull {
                into: root.to_path_buf(),
                choice: None,
            }),
            Err(miss) => Err(miss),
        };
    }
    let local = local_store(dst)?;
    let local_root = discover::absolute(&local.root).unwrap_or(local.root.clone());
    let mut searched: Vec<PathBuf> = Vec::new();
    // The one store's own answer, for when it was the only one searched.
    let mut first_miss = None;
    let mut candidates = vec![local_root.clone()];
    candidates.extend(
        discover::candidates(dst)
            .into_iter()
            .filter(|c| *c != local_root),
    );
    for root in candidates {
        let here = same(&root);
        // With a pull allowed, a store on another filesystem does not serve the checkout.
        if !discover::exists(&root) || (pull && !here && root != local_root) {
            continue;
        }
        searched.push(root.clone());
        match find(&root, snapshot)? {
            Ok(id) => {
                return Ok(Source::Store {
                    root,
                    id,
                    same_filesystem: here,
                });
            }
            Err(miss) => {
                first_miss.get_or_insert(miss);
            }
        }
    }
    if pull {
        return Ok(Source::Pull {
            into: local.root.clone(),
            choice: Some(local),
        });
    }
    Err(match (searched.len(), first_miss) {
        (1, Some(miss)) => miss,
        (0, _) => NotFound::NoStore {
            dst: dst.to_path_buf(),
            named: None,
        }
        .into(),
        _ => NotFound::InStores {
            given: snapshot.to_string(),
            stores: searched,
        }
        .into(),
    })
}

/// The snapshot `what` in the existing store at `root`: `Ok(Err(e))` when the store does not
/// have it, `e` saying so; any other failure is an error.
fn find(root: &Path, what: &str) -> Result<std::result::Result<Hash, Error>> {
    let store = Store::open(root)?;
    match crate::refs::resolve(&store, what) {
        Ok(id) => Ok(Ok(id)),
        Err(e) if e.is_not_found() => Ok(Err(e)),
        Err(e) => Err(e),
    }
}
