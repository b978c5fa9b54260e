//! The Python names of the Linker's choices (`mode="clone"`, `on_existing="skip"`,
//! `hash="sha256"`, `preserve="all"`), parsed into cowtree-link's types; an unknown name is
//! a `ValueError` that lists the known ones.

use cowtree_link::{Attempt, EntryKind, HashAlgo, LinkMode, OnExisting, Preserve};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyString;

const MODES: &[(&str, LinkMode)] = &[
    ("auto", LinkMode::Auto),
    ("clone", LinkMode::Clone),
    ("copy", LinkMode::Copy),
    ("hardlink", LinkMode::Hardlink),
    ("symlink", LinkMode::Symlink),
];

const ON_EXISTING: &[(&str, OnExisting)] = &[
    ("fail", OnExisting::Fail),
    ("overwrite", OnExisting::Overwrite),
    ("skip", OnExisting::Skip),
];

const HASHES: &[(&str, HashAlgo)] = &[("sha256", HashAlgo::Sha256), ("blake3", HashAlgo::Blake3)];

fn lookup<T: Copy>(what: &str, table: &[(&str, T)], name: &str) -> PyResult<T> {
    table
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, v)| *v)
        .ok_or_else(|| {
            let known: Vec<&str> = table.iter().map(|(n, _)| *n).collect();
            PyValueError::new_err(format!(
                "unknown {what} {name:?}; expected one of {}",
                known.join(", ")
            ))
        })
}

fn name_of<T: PartialEq>(table: &[(&'static str, T)], value: &T) -> &'static str {
    table
        .iter()
        .find(|(_, v)| v == value)
        .map(|(n, _)| *n)
        .expect("every value of the enum is in its table")
}

pub fn mode(name: &str) -> PyResult<LinkMode> {
    lookup("mode", MODES, name)
}

pub fn mode_name(mode: LinkMode) -> &'static str {
    name_of(MODES, &mode)
}

pub fn on_existing(name: &str) -> PyResult<OnExisting> {
    lookup("on_existing", ON_EXISTING, name)
}

pub fn on_existing_name(v: OnExisting) -> &'static str {
    name_of(ON_EXISTING, &v)
}

pub fn hash(name: Option<&str>) -> PyResult<Option<HashAlgo>> {
    name.map(|n| lookup("hash", HASHES, n)).transpose()
}

pub fn hash_name(algo: HashAlgo) -> &'static str {
    name_of(HASHES, &algo)
}

/// The items `preserve` accepts, GNU cp's names as `cowtree clone --preserve` takes them;
/// `mode` and `timestamps` are accepted and change nothing (always kept, or dropped by
/// `preserve_times=False`).
const PRESERVE_ITEMS: &str =
    "ownership, xattr, acl, links, special, all (mode, timestamps: always kept)";

/// Adds the item `name` to `p`.
fn preserve_item(p: &mut Preserve, name: &str) -> PyResult<()> {
    match name {
        "ownership" => p.ownership = true,
        "xattr" => p.xattr = true,
        "acl" => p.acl = true,
        "links" => p.links = true,
        "special" => p.special = true,
        "all" => *p = Preserve::ALL,
        "mode" | "timestamps" => {}
        other => {
            return Err(PyValueError::new_err(format!(
                "unknown preserve item {other:?}; expected one of {PRESERVE_ITEMS}"
            )));
        }
    }
    Ok(())
}

/// What `preserve` (None, a string of comma-separated items as `cp --preserve` takes them,
/// or an iterable of item strings) and `archive` (`cp -a`: everything) ask to keep.
pub fn preserve(items: Option<&Bound<'_, PyAny>>, archive: bool) -> PyResult<Preserve> {
    let mut p = if archive {
        Preserve::ALL
    } else {
        Preserve::default()
    };
    let Some(items) = items else {
        return Ok(p);
    };
    let mut names = Vec::new();
    if let Ok(s) = items.cast::<PyString>() {
        names.extend(s.to_cow()?.split(',').map(|n| n.trim().to_owned()));
    } else {
        let iter = items.try_iter().map_err(|_| {
            PyTypeError::new_err(format!(
                "preserve is a string or an iterable of strings, not {}",
                items
                    .get_type()
                    .name()
                    .map_or_else(|_| "?".into(), |n| n.to_string())
            ))
        })?;
        for item in iter {
            let item = item?;
            let name = item.extract::<String>().map_err(|_| {
                PyTypeError::new_err(format!(
                    "each preserve item is a string, not {}",
                    item.repr().map_or_else(|_| "?".into(), |r| r.to_string())
                ))
            })?;
            names.push(name);
        }
    }
    for name in &names {
        preserve_item(&mut p, name)?;
    }
    Ok(p)
}

/// The items `p` keeps, in the order `cp` names them (`all` never: each item instead).
pub fn preserve_names(p: Preserve) -> Vec<&'static str> {
    [
        ("ownership", p.ownership),
        ("xattr", p.xattr),
        ("acl", p.acl),
        ("links", p.links),
        ("special", p.special),
    ]
    .into_iter()
    .filter_map(|(n, on)| on.then_some(n))
    .collect()
}

pub fn attempt_name(a: Attempt) -> &'static str {
    cowtree_link::error::attempt_name(a)
}

pub fn kind_name(k: EntryKind) -> &'static str {
    k.as_str()
}
