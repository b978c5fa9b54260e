//! The names this store last saw on a remote (`remote-cache/<remote>/names/<name>`): the
//! version a conditional name update expects, so that a push never overwrites a name another
//! host moved since.

use std::ffi::OsStr;

use cowtree_store::{Hash, Store};
use object_store::UpdateVersion;
use serde::{Deserialize, Serialize};

use crate::config::{RemoteConfig, cache_dir};
use crate::error::{Error, Result};

#[derive(Debug, Serialize, Deserialize)]
struct Record {
    id: String,
    e_tag: Option<String>,
    version: Option<String>,
}

/// The id and version of `name` on `remote` as this store last saw them.
pub fn get(
    store: &Store,
    remote: &RemoteConfig,
    name: &str,
) -> Result<Option<(Hash, UpdateVersion)>> {
    let (dir, path) = cache_dir(store, remote)?;
    let names = dir.open_dir(OsStr::new("names")).map_err(|e| Error::Io {
        path: path.join("names"),
        source: e,
    })?;
    let bytes = match crate::os::read_if_exists(&names, OsStr::new(name)) {
        Ok(Some(b)) => b,
        Ok(None) => return Ok(None),
        Err(e) => {
            return Err(Error::Io {
                path: path.join("names").join(name),
                source: e,
            });
        }
    };
    // A record that does not parse is treated as never seen: the next push then refuses to
    // overwrite the remote name without --force, which is the safe side.
    let Ok(r) = serde_json::from_slice::<Record>(&bytes) else {
        return Ok(None);
    };
    let Some(id) = Hash::from_hex(&r.id) else {
        return Ok(None);
    };
    Ok(Some((
        id,
        UpdateVersion {
            e_tag: r.e_tag,
            version: r.version,
        },
    )))
}

/// Records that `name` on `remote` is `id` at version `v`.
pub fn set(
    store: &Store,
    remote: &RemoteConfig,
    name: &str,
    id: &Hash,
    v: &UpdateVersion,
) -> Result<()> {
    let (dir, path) = cache_dir(store, remote)?;
    let names = dir.open_dir(OsStr::new("names")).map_err(|e| Error::Io {
        path: path.join("names"),
        source: e,
    })?;
    let r = Record {
        id: id.to_hex(),
        e_tag: v.e_tag.clone(),
        version: v.version.clone(),
    };
    let bytes = serde_json::to_vec(&r).expect("strings serialize");
    cowtree_fs::atomic_file::write_atomic(&names, OsStr::new(name), &bytes, 0o644, true).map_err(
        |e| Error::Io {
            path: path.join("names").join(name),
            source: e,
        },
    )
}
