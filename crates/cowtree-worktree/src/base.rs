//! The base snapshot a worktree is compared with, read in place: the store's
//! [`ManifestView`] of its manifest, so that status loads a snapshot of 80,000 entries
//! without 80,000 allocations. The store checks the bytes against the snapshot id and
//! validates every entry as [`cowtree_store::Manifest::decode`] does; the manifest's format
//! is known to the store only.

use std::ops::Deref;

use cowtree_store::manifest::ManifestView;
use cowtree_store::{Hash, Manifest, Store};

use crate::error::{Error, Result};

/// A base snapshot's manifest; its entries and lookups are the [`ManifestView`]'s.
#[derive(Debug, Default)]
pub struct Base(ManifestView);

impl Base {
    /// A view of no entries.
    pub fn empty() -> Base {
        Base::default()
    }

    /// Reads snapshot `id` from the store, checking that its bytes hash to `id` and that
    /// they are a valid manifest.
    pub fn load(store: &Store, id: &Hash) -> Result<Base> {
        let bytes = store.read_snapshot(id)?;
        ManifestView::parse(bytes)
            .map(Base)
            .map_err(|source| Error::Manifest {
                context: format!("snapshot {}", id.to_hex()),
                source,
            })
    }

    /// The view of a decoded manifest.
    pub fn from_manifest(m: &Manifest) -> Result<Base> {
        ManifestView::of(m)
            .map(Base)
            .map_err(|source| Error::Manifest {
                context: "base snapshot".to_string(),
                source,
            })
    }
}

impl Deref for Base {
    type Target = ManifestView;

    fn deref(&self) -> &ManifestView {
        &self.0
    }
}
