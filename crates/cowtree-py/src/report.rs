//! `cowtree.Report` and what it holds: cowtree-link's [`LinkReport`] as read-only Python
//! objects. Paths are `str` (relative to the destination in the record and collisions).

use cowtree_link::LinkReport;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyString, PyTuple};

use crate::options::{attempt_name, hash_name, kind_name};
use crate::paths;

/// What a link call did: entries by the method that really ran, every fallback with its
/// cause, collisions between sources, and (when asked) a record of every entry written.
#[pyclass(frozen, get_all, module = "cowtree")]
pub struct Report {
    /// The path that now holds the tree (or the file).
    destination: Py<PyString>,
    files: u64,
    dirs: u64,
    symlinks: u64,
    cloned: u64,
    copied: u64,
    hardlinked: u64,
    symlinked: u64,
    bytes: u64,
    bytes_cloned: u64,
    bytes_copied: u64,
    fallbacks: Py<PyList>,
    skipped: u64,
    special: u64,
    vanished: u64,
    dropped: u64,
    replaced: u64,
    collisions: Py<PyList>,
    record: Py<PyList>,
    /// Seconds.
    elapsed: f64,
}

#[pymethods]
impl Report {
    fn __repr__(&self) -> String {
        format!(
            "Report(files={}, cloned={}, copied={}, hardlinked={}, symlinked={}, dirs={}, symlinks={}, fallbacks={})",
            self.files,
            self.cloned,
            self.copied,
            self.hardlinked,
            self.symlinked,
            self.dirs,
            self.symlinks,
            Python::attach(|py| self.fallbacks.bind(py).len()),
        )
    }
}

/// One cause of fallback: files copied instead of cloned or hardlinked, and why.
#[pyclass(frozen, get_all, module = "cowtree")]
pub struct Fallback {
    reason: &'static str,
    description: &'static str,
    per_file: bool,
    count: u64,
    bytes: u64,
    example: Py<PyString>,
}

#[pymethods]
impl Fallback {
    fn __repr__(&self) -> String {
        format!("Fallback({:?}, count={})", self.reason, self.count)
    }
}

/// Two sources of one call gave an entry at the same destination path.
#[pyclass(frozen, get_all, module = "cowtree")]
pub struct Collision {
    path: Py<PyString>,
    sources: Py<PyTuple>,
    /// `"replaced"` (on_existing="overwrite") or `"kept"` ("skip").
    action: &'static str,
}

#[pymethods]
impl Collision {
    fn __repr__(&self) -> String {
        Python::attach(|py| format!("Collision({}, {})", self.path.bind(py), self.action))
    }
}

/// One entry a link call wrote (`record=True` or `hash=...`).
#[pyclass(frozen, get_all, module = "cowtree")]
pub struct RecordEntry {
    /// Relative to the destination.
    path: Py<PyString>,
    /// `"file"`, `"dir"` or `"symlink"`: what is at the path now.
    kind: &'static str,
    size: Option<u64>,
    /// `"clone"`, `"copy"`, `"hardlink"`, `"symlink"`, or None (directories, source symlinks).
    method: Option<&'static str>,
    /// The raw digest of a file when a hash was asked for.
    hash: Option<Py<PyBytes>>,
    /// `"sha256"` or `"blake3"` with `hash`.
    hash_algo: Option<&'static str>,
    /// The index of the source (or file entry) in the call's list.
    source: usize,
    /// The path it came from, relative to its source tree (before any mapping); None for
    /// directories.
    from_path: Option<Py<PyString>>,
}

#[pymethods]
impl RecordEntry {
    fn __repr__(&self) -> String {
        Python::attach(|py| format!("RecordEntry({}, {})", self.path.bind(py), self.kind))
    }
}

/// The Python report of `r`.
pub fn to_py(py: Python<'_>, r: LinkReport) -> PyResult<Report> {
    let fallbacks = r
        .fallbacks
        .iter()
        .map(|f| {
            Py::new(
                py,
                Fallback {
                    reason: f.reason,
                    description: f.description,
                    per_file: f.per_file,
                    count: f.count,
                    bytes: f.bytes,
                    example: paths::to_str(py, &f.example).unbind(),
                },
            )
        })
        .collect::<PyResult<Vec<_>>>()?;
    let collisions = r
        .collisions
        .iter()
        .map(|c| {
            let sources = PyTuple::new(
                py,
                [
                    paths::to_str(py, &c.sources[0]),
                    paths::to_str(py, &c.sources[1]),
                ],
            )?;
            Py::new(
                py,
                Collision {
                    path: paths::to_str(py, &c.path).unbind(),
                    sources: sources.unbind(),
                    action: c.action.as_str(),
                },
            )
        })
        .collect::<PyResult<Vec<_>>>()?;
    let record = r
        .record
        .iter()
        .map(|e| {
            Py::new(
                py,
                RecordEntry {
                    path: paths::to_str(py, &e.path).unbind(),
                    kind: kind_name(e.kind),
                    size: e.size,
                    method: e.method.map(attempt_name),
                    hash: e.hash.as_ref().map(|d| PyBytes::new(py, &d.bytes).unbind()),
                    hash_algo: e.hash.as_ref().map(|d| hash_name(d.algo)),
                    source: e.source,
                    from_path: e.from.as_deref().map(|p| paths::to_str(py, p).unbind()),
                },
            )
        })
        .collect::<PyResult<Vec<_>>>()?;
    Ok(Report {
        destination: paths::to_str(py, &r.destination).unbind(),
        files: r.files,
        dirs: r.dirs,
        symlinks: r.symlinks,
        cloned: r.cloned,
        copied: r.copied,
        hardlinked: r.hardlinked,
        symlinked: r.symlinked,
        bytes: r.bytes,
        bytes_cloned: r.bytes_cloned,
        bytes_copied: r.bytes_copied,
        fallbacks: PyList::new(py, fallbacks)?.unbind(),
        skipped: r.skipped,
        special: r.special,
        vanished: r.vanished,
        dropped: r.dropped,
        replaced: r.replaced,
        collisions: PyList::new(py, collisions)?.unbind(),
        record: PyList::new(py, record)?.unbind(),
        elapsed: r.elapsed.as_secs_f64(),
    })
}
