//! The Python names of the Linker's choices (`mode="clone"`, `on_existing="skip"`,
//! `hash="sha256"`), parsed into cowtree-link's types; an unknown name is a `ValueError`
//! that lists the known ones.

use cowtree_link::{Attempt, EntryKind, HashAlgo, LinkMode, OnExisting};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

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

pub fn attempt_name(a: Attempt) -> &'static str {
    cowtree_link::error::attempt_name(a)
}

pub fn kind_name(k: EntryKind) -> &'static str {
    k.as_str()
}
