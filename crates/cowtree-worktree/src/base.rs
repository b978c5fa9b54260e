//! The base snapshot a worktree is compared with, held compactly: the store's
//! [`CompactManifest`] of its manifest (each entry as its directory's index and its name,
//! each directory's path once), read from the file a chunk at a time, so that status does not
//! hold every entry's path and loads a snapshot of 80,000 entries without 80,000 allocations. The store
//! checks the bytes against the snapshot id and validates every entry as
//! [`cowtree_store::Manifest::decode`] does; the manifest's format is known to the store only.

use std::ops::Deref;

use cowtree_store::compact::CompactManifest;
use cowtree_store::{Hash, Manifest, Store};

use crate::error::{Error, Result};

/// A base snapshot's manifest; its entries and lookups are the [`CompactManifest`]'s.
#[derive(Debug, Default)]
pub struct Base(CompactManifest);

impl Base {
    /// A manifest of no entries.
    pub fn empty() -> Base {
        Base::default()
    }

    /// Reads snapshot `id` from the store, checking that its bytes hash to `id` and that
    /// they are a valid manifest.
    pub fn load(store: &Store, id: &Hash) -> Result<Base> {
        Ok(Base(store.load_compact(id)?))
    }

    /// The compact form of a decoded manifest.
    pub fn from_manifest(m: &Manifest) -> Result<Base> {
        CompactManifest::of(m)
            .map(Base)
            .map_err(|source| Error::Manifest {
                context: "base snapshot".to_string(),
                source,
            })
    }
}

impl Deref for Base {
    type Target = CompactManifest;

    fn deref(&self) -> &CompactManifest {
        &self.0
    }
}
