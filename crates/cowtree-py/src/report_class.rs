//! `cowtree.Report` and what it holds: cowtree-link's [`LinkReport`] as read-only Python
//! objects. Paths are `str` (relative to the destination in the record and collisions); the
//! record stays in Rust until read (see [`crate::record_class`]).

use cowtree_link::LinkReport;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString, PyTuple};

use crate::path_args;
use crate::record_class::Record;

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
    /// Special files made again (`preserve` with `special`).
    special_made: u64,
    /// Names made as hardlinks of an earlier name of the same source file (`preserve` with
    /// `links`); not counted in `files`.
    hardlinks: u64,
    /// Entries of which something `preserve` asked for could not be kept, per kind:
    /// `{"ownership", "xattr", "acl", "links", "special"}` (as `cowtree clone --json`).
    not_kept: Py<PyDict>,
    vanished: u64,
    dropped: u64,
    replaced: u64,
    collisions: Py<PyList>,
    /// Every entry written (see `Record`).
    record: Py<Record>,
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

/// The Python report of `r`, from a call given `sources` sources (or file entries).
pub fn to_py(py: Python<'_>, r: LinkReport, sources: usize) -> PyResult<Report> {
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
                    example: path_args::to_str(py, &f.example).unbind(),
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
                    path_args::to_str(py, &c.sources[0]),
                    path_args::to_str(py, &c.sources[1]),
                ],
            )?;
            Py::new(
                py,
                Collision {
                    path: path_args::to_str(py, &c.path).unbind(),
                    sources: sources.unbind(),
                    action: c.action.as_str(),
                },
            )
        })
        .collect::<PyResult<Vec<_>>>()?;
    let not_kept = PyDict::new(py);
    for (kind, count) in [
        ("ownership", r.not_kept.ownership),
        ("xattr", r.not_kept.xattr),
        ("acl", r.not_kept.acl),
        ("links", r.not_kept.links),
        ("special", r.not_kept.special),
    ] {
        not_kept.set_item(kind, count)?;
    }
    let record = Record::new(r.record, &r.destination, sources);
    Ok(Report {
        destination: path_args::to_str(py, &r.destination).unbind(),
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
        special_made: r.special_made,
        hardlinks: r.hardlinks,
        not_kept: not_kept.unbind(),
        vanished: r.vanished,
        dropped: r.dropped,
        replaced: r.replaced,
        collisions: PyList::new(py, collisions)?.unbind(),
        record: Py::new(py, record)?,
        elapsed: r.elapsed.as_secs_f64(),
    })
}
