//! What the remote holds: every pack index (read through the local cache) and every large
//! blob, gathered into one map from blob hash to where it lies.

use std::collections::HashMap;
use std::ffi::OsStr;

use cowtree_store::{Hash, Store};
use futures::StreamExt;

use crate::config::cache_dir;
use crate::error::{Error, Result};
use crate::pack::PackIndex;
use crate::remote::Remote;

/// Where a blob lies on the remote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Loc {
    /// In pack `pack` at `offset`, `len` bytes.
    Packed {
        /// The pack's index in [`RemoteIndex::pack_ids`] (24 bytes a blob, not 56).
        pack: u32,
        /// Offset in the pack.
        offset: u64,
        /// Length.
        len: u64,
    },
    /// A single object `blobs/<hash>` of `len` bytes.
    Single {
        /// Length.
        len: u64,
    },
}

/// The remote's blobs.
#[derive(Debug, Default)]
pub struct RemoteIndex {
    /// Every blob the remote has, and where.
    pub blobs: HashMap<Hash, Loc>,
    /// The ids of the packs whose indexes were read, which [`Loc::Packed`] names by index.
    pub pack_ids: Vec<Hash>,
}

impl RemoteIndex {
    /// The id of the pack a [`Loc::Packed`] names.
    pub fn pack_id(&self, pack: u32) -> Option<Hash> {
        self.pack_ids.get(pack as usize).copied()
    }
}

/// Pack indexes read at once: each is one small GET (about 56 bytes a blob), so a pull whose
/// remote has many packs pays their latency once rather than once per 16 of them.
const INDEX_READS: usize = 64;

/// Pack key names.
pub fn pack_key(id: &Hash) -> String {
    format!("packs/{id}.pack")
}

/// Index key names.
pub fn idx_key(id: &Hash) -> String {
    format!("packs/{id}.idx")
}

/// Reads pack index `id`: from the local cache `idx_dir` when it holds it (checked against
/// its name), else from the remote (then kept in the cache). Checked: it hashes to its name
/// and decodes.
pub(crate) async fn read_index(
    remote: &Remote,
    idx_dir: Option<&cowtree_fs::dir::Dir>,
    id: &Hash,
) -> Result<PackIndex> {
    let name = id.to_hex();
    let cached = idx_dir
        .and_then(|d| crate::os::read_if_exists(d, std::ffi::OsStr::new(&name)).ok())
        .flatten()
        .filter(|b| Hash::of(b) == *id);
    let bytes = match cached {
        Some(b) => b,
        None => {
            let key = idx_key(id);
            let b = remote.get(&key).await?.ok_or_else(|| Error::Missing {
                remote: remote.name().to_string(),
                what: format!("pack index {} vanished while being read", remote.key(&key)),
            })?;
            if Hash::of(&b) != *id {
                return Err(Error::Corrupt {
                    remote: remote.name().to_string(),
                    key: remote.key(&key).to_string(),
                    detail: "the pack index does not hash to its name".into(),
                });
            }
            // The cache only saves requests: a failure to write it is not an error.
            if let Some(d) = idx_dir {
                let _ =
                    cowtree_fs::atomic_file::write_atomic(d, OsStr::new(&name), &b, 0o444, false);
            }
            b.to_vec()
        }
    };
    PackIndex::decode(&bytes).map_err(|e| Error::Corrupt {
        remote: remote.name().to_string(),
        key: remote.key(&idx_key(id)).to_string(),
        detail: format!("pack index refused: {e}"),
    })
}

/// Reads the remote's indexes. An index whose pack is absent or of another length is left
/// out (its blobs count as missing: a push sends them again, a pull reports them missing).
pub async fn load(store: &Store, remote: &Remote) -> Result<RemoteIndex> {
    let listing = remote.list("packs/").await?;
    let mut pack_sizes: HashMap<Hash, u64> = HashMap::new();
    let mut idx_ids = Vec::new();
    for (key, size) in &listing {
        let Some(file) = key.strip_prefix("packs/") else {
            continue;
        };
        if let Some(id) = file.strip_suffix(".pack").and_then(Hash::from_hex) {
            pack_sizes.insert(id, *size);
        } else if let Some(id) = file.strip_suffix(".idx").and_then(Hash::from_hex) {
            idx_ids.push(id);
        }
    }
    let (cache, cache_path) = cache_dir(store, remote.config())?;
    let idx_dir = cache.open_dir(OsStr::new("idx")).map_err(|e| Error::Io {
        path: cache_path.join("idx"),
        source: e,
    })?;
    let idx_dir = &idx_dir;
    let fetched: Vec<Result<(Hash, PackIndex)>> = futures::stream::iter(idx_ids)
        .map(|id| async move { Ok((id, read_index(remote, Some(idx_dir), &id).await?)) })
        .buffer_unordered(INDEX_READS)
        .collect()
        .await;
    let mut out = RemoteIndex::default();
    let fetched: Vec<(Hash, PackIndex)> = fetched
        .into_iter()
        .filter(|r| match r {
            Ok((id, idx)) => pack_sizes.get(id) == Some(&idx.pack_len),
            Err(_) => true,
        })
        .collect::<Result<_>>()?;
    // The map at the packs' size once: growing it by doubling would hold the old table beside
    // the new one, twice the index at its peak (the loose blobs, few, are added after).
    out.blobs
        .reserve(fetched.iter().map(|(_, idx)| idx.slots.len()).sum());
    for (id, idx) in fetched {
        let pack = u32::try_from(out.pack_ids.len()).map_err(|_| Error::Corrupt {
            remote: remote.name().to_string(),
            key: remote.key("packs/").to_string(),
            detail: "more than 2^32 packs".into(),
        })?;
        out.pack_ids.push(id);
        for s in idx.slots {
            out.blobs.insert(
                s.hash,
                Loc::Packed {
                    pack,
                    offset: s.offset,
                    len: s.len,
                },
            );
        }
    }
    for (key, size) in remote.list("blobs/").await? {
        if let Some(h) = key.strip_prefix("blobs/").and_then(Hash::from_hex) {
            out.blobs.entry(h).or_insert(Loc::Single { len: size });
        }
    }
    Ok(out)
}
