//! Snapshot names (`refs/<name>`) and resolving what a user typed to a snapshot id.

use std::ffi::OsStr;

use crate::error::{Error, Result};
use crate::hash::{Hash, is_hex};
use crate::store::Store;
use crate::util::{read_at, write_atomic};

/// Shortest id prefix accepted.
pub const MIN_PREFIX: usize = 8;

/// Checks a snapshot name: one path component, UTF-8, not starting with `.` or `-`, no
/// whitespace or control characters.
pub fn validate_name(name: &str) -> Result<()> {
    let bad = |why: &str| Err(Error::msg(format!("invalid snapshot name {name:?}: {why}")));
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
    .map_err(|e| {
        Error::msg(format!(
            "write {}: {e}",
            store.root().join("refs").join(name).display()
        ))
    })
}

/// The id `name` points at, if the name exists.
pub fn get(store: &Store, name: &str) -> Result<Option<Hash>> {
    if validate_name(name).is_err() {
        return Ok(None);
    }
    let Some(bytes) = read_at(store.refs_dir(), OsStr::new(name))? else {
        return Ok(None);
    };
    let text = String::from_utf8_lossy(&bytes);
    Hash::from_hex(text.trim())
        .map(Some)
        .ok_or_else(|| Error::msg(format!("ref {name:?} is corrupt: {:?}", text.trim())))
}

/// Removes the name, durably.
pub fn remove(store: &Store, name: &str) -> Result<()> {
    let dir = || store.root().join("refs");
    store
        .refs_dir()
        .remove_file(OsStr::new(name))
        .map_err(|e| Error::msg(format!("{}: {e}", dir().display())))?;
    store
        .refs_dir()
        .sync()
        .map_err(|e| Error::msg(format!("sync {}: {e}", dir().display())))
}

/// Every (name, id), sorted by name. Unreadable refs are skipped.
pub fn list(store: &Store) -> Result<Vec<(String, Hash)>> {
    let mut out = Vec::new();
    for e in store.refs_dir().entries()? {
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

/// Resolves a full id, a name, or a unique id prefix of at least [`MIN_PREFIX`] hex digits.
/// An ambiguous prefix is an error listing every candidate.
pub fn resolve(store: &Store, what: &str) -> Result<Hash> {
    if let Some(id) = Hash::from_hex(what)
        && store.has_snapshot(&id)?
    {
        return Ok(id);
    }
    if let Some(id) = get(store, what)? {
        if !store.has_snapshot(&id)? {
            return Err(Error::msg(format!(
                "name {what:?} points at snapshot {id}, which does not exist"
            )));
        }
        return Ok(id);
    }
    if is_hex(what) && what.len() >= MIN_PREFIX {
        let lower = what.to_ascii_lowercase();
        let found: Vec<Hash> = store
            .snapshot_ids()?
            .into_iter()
            .filter(|id| id.to_hex().starts_with(&lower))
            .collect();
        return match found.as_slice() {
            [one] => Ok(*one),
            [] => Err(Error::msg(format!("no snapshot id starts with {what}"))),
            many => Err(Error::msg(format!(
                "snapshot prefix {what} is ambiguous; it matches:\n  {}",
                many.iter()
                    .map(Hash::to_hex)
                    .collect::<Vec<_>>()
                    .join("\n  ")
            ))),
        };
    }
    let hint = if is_hex(what) && what.len() < MIN_PREFIX {
        format!(" (an id prefix needs at least {MIN_PREFIX} hex digits)")
    } else {
        String::new()
    };
    Err(Error::msg(format!(
        "no snapshot named {what:?} and no snapshot with that id{hint}"
    )))
}
