//! One checkout's inputs ([`Job`]), handed down its steps, and the snapshot's manifest, read
//! when a step first needs it ([`Lazy`]).

use std::path::Path;

use cowtree_fs::progress::{Progress, Total};

use crate::compact::CompactManifest;
use crate::error::{Error, Result};
use crate::hash::Hash;
use crate::store::Store;

use super::options::{Arriving, CheckoutOptions, Hooks};

/// One checkout's inputs, handed down its steps.
pub(super) struct Job<'a> {
    pub(super) store: &'a Store,
    pub(super) id: &'a Hash,
    pub(super) dst: &'a Path,
    pub(super) opts: CheckoutOptions,
    pub(super) warn: &'a dyn Fn(&str),
    pub(super) progress: &'a Progress,
    pub(super) hooks: Option<&'a Hooks<'a>>,
    /// The snapshot is still arriving: its manifest and blobs come from here.
    pub(super) arriving: Option<&'a Arriving<'a>>,
}

impl<'a> Job<'a> {
    /// A checkout of snapshot `id` into `dst`: no hooks, nothing arriving.
    pub(super) fn new(
        store: &'a Store,
        id: &'a Hash,
        dst: &'a Path,
        opts: CheckoutOptions,
        warn: &'a dyn Fn(&str),
        progress: &'a Progress,
    ) -> Job<'a> {
        Job {
            store,
            id,
            dst,
            opts,
            warn,
            progress,
            hooks: None,
            arriving: None,
        }
    }

    /// The snapshot's manifest, its total counted into the progress.
    fn load(&self) -> Result<CompactManifest> {
        let manifest = match self.arriving {
            Some(a) => decode_arriving(self.id, a.manifest)?,
            None => self.store.load_compact(self.id)?,
        };
        self.progress.set_total(Total {
            entries: manifest.files() + manifest.symlinks(),
            bytes: Some(manifest.bytes()),
        });
        Ok(manifest)
    }
}

/// The manifest of a snapshot still arriving: its bytes must hash to `id` and decode.
fn decode_arriving(id: &Hash, bytes: &[u8]) -> Result<CompactManifest> {
    let (hash, decoded) = CompactManifest::read(bytes, bytes.len() as u64)?;
    let refused = |detail: String| Error::SnapshotArriving {
        id: *id,
        why: detail,
    };
    if hash != *id {
        return Err(refused(format!("the manifest handed over is {hash}")));
    }
    decoded.map_err(|e| refused(format!("its manifest does not decode: {e}")))
}

/// The snapshot's manifest, read when first needed: a checkout of a tree whose counts (and,
/// for a worktree, stat cache) the store keeps needs none.
pub(super) struct Lazy<'j> {
    job: &'j Job<'j>,
    manifest: Option<CompactManifest>,
}

impl<'j> Lazy<'j> {
    /// Nothing read yet.
    pub(super) fn new(job: &'j Job<'j>) -> Lazy<'j> {
        Lazy {
            job,
            manifest: None,
        }
    }

    /// The manifest, read (and its total counted into the progress) on the first call.
    pub(super) fn get(&mut self) -> Result<&CompactManifest> {
        let manifest = match self.manifest.take() {
            Some(m) => m,
            None => self.job.load()?,
        };
        Ok(self.manifest.insert(manifest))
    }

    /// The manifest if it was read, else an empty one.
    pub(super) fn take(self) -> CompactManifest {
        self.manifest.unwrap_or_default()
    }
}
