//! Listing a remote: its snapshots and names.

use std::collections::BTreeMap;

use cowtree_store::Hash;

use crate::error::{Error, Result};
use crate::remote::Remote;

/// A snapshot on the remote and the remote names pointing at it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteSnapshot {
    /// The id.
    pub id: Hash,
    /// Its manifest's size in bytes.
    pub manifest_bytes: u64,
    /// Remote names pointing at it, sorted.
    pub names: Vec<String>,
}

/// Every snapshot on the remote (sorted by id) with its names. A name pointing at a snapshot
/// the remote lacks is listed too, with `manifest_bytes` 0.
pub fn list(remote: &Remote) -> Result<Vec<RemoteSnapshot>> {
    remote.rt.block_on(async {
        let mut out: BTreeMap<Hash, RemoteSnapshot> = BTreeMap::new();
        if !remote.check_version(false).await? {
            return Ok(Vec::new());
        }
        for (key, size) in remote.list("snapshots/").await? {
            if let Some(id) = key.strip_prefix("snapshots/").and_then(Hash::from_hex) {
                out.insert(
                    id,
                    RemoteSnapshot {
                        id,
                        manifest_bytes: size,
                        names: Vec::new(),
                    },
                );
            }
        }
        for (name, id) in names(remote).await? {
            out.entry(id)
                .or_insert(RemoteSnapshot {
                    id,
                    manifest_bytes: 0,
                    names: Vec::new(),
                })
                .names
                .push(name);
        }
        let mut v: Vec<_> = out.into_values().collect();
        for s in &mut v {
            s.names.sort();
        }
        Ok(v)
    })
}

/// Every valid remote name with the snapshot it points at (a name whose object is gone by the
/// time it is read is skipped; one that holds no snapshot id is corrupt).
pub(crate) async fn names(remote: &Remote) -> Result<Vec<(String, Hash)>> {
    let mut out = Vec::new();
    for (key, _) in remote.list("names/").await? {
        let Some(name) = key.strip_prefix("names/") else {
            continue;
        };
        if cowtree_store::refs::validate_name(name).is_err() {
            continue;
        }
        let Some(state) = remote.get_name(&key).await? else {
            continue;
        };
        let id = Hash::from_hex(state.body.trim()).ok_or_else(|| Error::Corrupt {
            remote: remote.name().to_string(),
            key: remote.key(&key).to_string(),
            detail: format!("not a snapshot id: {:?}", state.body.trim()),
        })?;
        out.push((name.to_string(), id));
    }
    Ok(out)
}
