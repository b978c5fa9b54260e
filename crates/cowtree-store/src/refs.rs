//! Snapshot names (`refs/<name>`) and resolving what a user typed to a snapshot id.

use std::ffi::OsStr;

use crate::error::{Corrupt, Error, NotFound, Result};
use crate::hash::{Hash, is_id_prefix};
use crate::store::Store;
use crate::util::{read_at, write_atomic};

/// Checks a snapshot name: one path component, UTF-8, not starting with `.` or `-`, no
/// whitespace or control characters.
pub fn validate_name(name: &str) -> Result<()> {
    let bad = |why: &str| {
        Err(Error::InvalidName {
            name: name.to_string(),
            why: why.to_string(),
        })
    };
    if let Err(e) = cowtree_fs::name::validate_component(name.as_bytes()) {
        return bad(&e.to_string());
    }
    if name.starts_with('.') || name.starts_with('-') {
        return bad("must not start with '.' or '-'");
    }
    if name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return bad("must not contain whitespace or control characters");
    }
    Ok(())
}

/// Points `name` at `id` (replacing what it pointed at), durably: once this returns, the name
/// survives a power loss.
pub fn set(store: &Store, name: &str, id: &Hash) -> Result<()> {
    validate_name(name)?;
    write_atomic(
        store.refs_dir(),
        OsStr::new(name),
        format!("{id}\n").as_bytes(),
        0o644,
    )
    .map_err(|e| Error::io_at("write", store.root().join("refs").join(name), e))
}

/// The id `name` points at, if the name exists.
pub fn get(store: &Store, name: &str) -> Result<Option<Hash>> {
    if validate_name(name).is_err() {
        return Ok(None);
    }
    let Some(bytes) = read_at(store.refs_dir(), OsStr::new(name))
        .map_err(|e| Error::io_at("read", store.root().join("refs").join(name), e))?
    else {
        return Ok(None);
    };
    let text = String::from_utf8_lossy(&bytes);
    Hash::from_hex(text.trim()).map(Some).ok_or_else(|| {
        Corrupt::Ref {
            name: name.to_string(),
            text: text.trim().to_string(),
        }
        .into()
    })
}

/// Removes the name, durably.
pub fn remove(store: &Store, name: &str) -> Result<()> {
    let dir = || store.root().join("refs");
    store
        .refs_dir()
        .remove_file(OsStr::new(name))
        .map_err(|e| Error::io_at("", dir(), e))?;
    store
        .refs_dir()
        .sync()
        .map_err(|e| Error::io_at("sync", dir(), e))
}

/// Every (name, id), sorted by name. Unreadable refs are skipped.
pub fn list(store: &Store) -> Result<Vec<(String, Hash)>> {
    let mut out = Vec::new();
    let entries =
        (store.refs_dir().entries()).map_err(|e| Error::io_at("", store.root().join("refs"), e))?;
    for e in entries {
        let Some(name) = e.name.to_str() else {
            continue;
        };
        if name.starts_with('.') {
            continue;
        }
        if let Ok(Some(id)) = get(store, name) {
            out.push((name.to_string(), id));
        }
    }
    out.sort();
    Ok(out)
}

/// Resolves a full id, a name, or a unique id prefix of at least
/// [`MIN_PREFIX`](crate::hash::MIN_PREFIX) hex digits.
/// An ambiguous prefix is an error listing every candidate.
pub fn resolve(store: &Store, what: &str) -> Result<Hash> {
    if let Some(id) = Hash::from_hex(what)
        && store.has_snapshot(&id)?
    {
        return Ok(id);
    }
    if let Some(id) = get(store, what)? {
        if !store.has_snapshot(&id)? {
            return Err(NotFound::NameTarget {
                name: what.to_string(),
                id,
            }
            .into());
        }
        return Ok(id);
    }
    if is_id_prefix(what) {
        let lower = what.to_ascii_lowercase();
        let found: Vec<Hash> = store
            .snapshot_ids()?
            .into_iter()
            .filter(|id| id.to_hex().starts_with(&lower))
            .collect();
        return match found.as_slice() {
            [one] => Ok(*one),
            [] => Err(NotFound::Prefix(what.to_string()).into()),
            many => Err(Error::AmbiguousPrefix {
                prefix: what.to_string(),
                matches: many.to_vec(),
            }),
        };
    }
    Err(NotFound::Snapshotish {
        given: what.to_string(),
    }
    .into())
}
