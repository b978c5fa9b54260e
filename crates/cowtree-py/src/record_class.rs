//! `cowtree.Record`: the entries a link call wrote, handed to Python as one object that
//! keeps them in Rust. An installer's record has an entry per file (tens of thousands for a
//! large environment); building a Python object for each, when most are only passed on to
//! the RECORD writer (`record_lines`, [`crate::record_file`]), cost more than the link's own
//! bookkeeping. A `RecordEntry` is made when an entry is read (indexing, iteration), and
//! `by_source` splits the record per source without making any.

use std::path::Path;
use std::sync::Arc;

use cowtree_link::RecordEntry as Entry;
use pyo3::exceptions::{PyIndexError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PySlice, PyString};

use crate::option_names::{attempt_name, hash_name, kind_name};
use crate::path_args;

/// What a [`Record`] shows of a call's entries: all of them, or some (by index), in order.
#[derive(Clone)]
enum Rows {
    All,
    Some(Arc<[u32]>),
}

/// The entries a call wrote (`record=True` or a `hash`), sorted by path: a read-only
/// sequence of `RecordEntry`, each made when read.
#[pyclass(frozen, sequence, module = "cowtree")]
#[derive(Clone)]
pub struct Record {
    /// The call's entries, moved in as they were (an `Arc<[Entry]>` would copy them).
    entries: Arc<Vec<Entry>>,
    rows: Rows,
    /// The call's destination, which every entry's path is relative to.
    destination: Arc<Path>,
    /// How many sources (or file entries) the call was given.
    sources: usize,
}

impl Record {
    pub fn new(entries: Vec<Entry>, destination: &Path, sources: usize) -> Record {
        Record {
            entries: Arc::new(entries),
            rows: Rows::All,
            destination: destination.into(),
            sources,
        }
    }

    /// The call's destination.
    pub fn destination(&self) -> &Path {
        &self.destination
    }

    pub fn len(&self) -> usize {
        match &self.rows {
            Rows::All => self.entries.len(),
            Rows::Some(rows) => rows.len(),
        }
    }

    /// The entries shown, in order.
    pub fn iter(&self) -> impl Iterator<Item = &Entry> {
        (0..self.len()).map(|i| self.get(i))
    }

    fn get(&self, i: usize) -> &Entry {
        match &self.rows {
            Rows::All => &self.entries[i],
            Rows::Some(rows) => &self.entries[rows[i] as usize],
        }
    }

    /// A record of the same entries showing `rows` (indexes into `entries`).
    fn with_rows(&self, rows: Vec<u32>) -> Record {
        Record {
            rows: Rows::Some(rows.into()),
            ..self.clone()
        }
    }

    /// The index into `entries` of the `i`th entry shown.
    fn row(&self, i: usize) -> u32 {
        match &self.rows {
            // A record's length fits in u32: `by_source` and slices index it so (asserted
            // where they are made, in `rows_fit`).
            Rows::All => i as u32,
            Rows::Some(rows) => rows[i],
        }
    }
}

/// Records are indexed by `u32`: four billion entries are beyond any call's memory (each
/// entry holds a path), so a larger one is a bug, not an input.
fn rows_fit(len: usize) -> PyResult<()> {
    if u32::try_from(len).is_err() {
        return Err(PyIndexError::new_err("a record of more than 2**32 entries"));
    }
    Ok(())
}

/// The Python object of one entry.
fn entry_to_py(py: Python<'_>, e: &Entry) -> PyResult<Py<RecordEntry>> {
    Py::new(
        py,
        RecordEntry {
            path: path_args::to_str(py, &e.path).unbind(),
            kind: kind_name(e.kind),
            size: e.size,
            method: e.method.map(attempt_name),
            hash: e.hash.as_ref().map(|d| PyBytes::new(py, &d.bytes).unbind()),
            hash_algo: e.hash.as_ref().map(|d| hash_name(d.algo)),
            source: e.source,
            from_path: e.from.as_deref().map(|p| path_args::to_str(py, p).unbind()),
        },
    )
}

#[pymethods]
impl Record {
    fn __len__(&self) -> usize {
        self.len()
    }

    fn __getitem__(&self, py: Python<'_>, index: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        let len = self.len();
        if let Ok(slice) = index.cast::<PySlice>() {
            let s = slice.indices(len as isize)?;
            rows_fit(self.entries.len())?;
            let rows: Vec<u32> = (0..s.slicelength)
                .map(|k| self.row((s.start + k as isize * s.step) as usize))
                .collect();
            return Ok(Py::new(py, self.with_rows(rows))?.into_any());
        }
        let i: isize = index.extract().map_err(|_| {
            PyTypeError::new_err(format!(
                "record indices must be integers or slices, not {}",
                index
                    .get_type()
                    .name()
                    .map_or("?".into(), |n| n.to_string())
            ))
        })?;
        let at = if i < 0 { i + len as isize } else { i };
        if at < 0 || at as usize >= len {
            return Err(PyIndexError::new_err("record index out of range"));
        }
        Ok(entry_to_py(py, self.get(at as usize))?.into_any())
    }

    /// The position of the first entry equal to `value` in `[start, stop)` (as
    /// `list.index`); each entry compared is made as a `RecordEntry` for it.
    #[pyo3(signature = (value, start = 0, stop = isize::MAX))]
    fn index(
        &self,
        py: Python<'_>,
        value: &Bound<'_, PyAny>,
        start: isize,
        stop: isize,
    ) -> PyResult<usize> {
        let len = self.len() as isize;
        let clamp = |i: isize| if i < 0 { (i + len).max(0) } else { i.min(len) } as usize;
        for i in clamp(start)..clamp(stop) {
            if entry_to_py(py, self.get(i))?.bind(py).eq(value)? {
                return Ok(i);
            }
        }
        Err(PyValueError::new_err("RecordEntry is not in the record"))
    }

    /// How many entries equal `value`.
    fn count(&self, py: Python<'_>, value: &Bound<'_, PyAny>) -> PyResult<usize> {
        let mut n = 0;
        for e in self.iter() {
            if entry_to_py(py, e)?.bind(py).eq(value)? {
                n += 1;
            }
        }
        Ok(n)
    }

    fn __contains__(&self, py: Python<'_>, value: &Bound<'_, PyAny>) -> PyResult<bool> {
        Ok(self.count(py, value)? > 0)
    }

    fn __iter__(slf: PyRef<'_, Self>) -> RecordIter {
        RecordIter {
            record: slf.clone(),
            next: 0,
        }
    }

    /// The entries of each source, in the order the call was given them: one `Record` per
    /// source (or file entry), empty for a source that wrote nothing. A directory counts
    /// for the first source that has it.
    fn by_source(&self, py: Python<'_>) -> PyResult<Py<PyList>> {
        rows_fit(self.entries.len())?;
        let parts = py.detach(|| {
            let count = self
                .iter()
                .map(|e| e.source + 1)
                .max()
                .unwrap_or(0)
                .max(self.sources);
            let mut parts: Vec<Vec<u32>> = vec![Vec::new(); count];
            for i in 0..self.len() {
                let row = self.row(i);
                parts[self.entries[row as usize].source].push(row);
            }
            parts
        });
        let parts = parts
            .into_iter()
            .map(|rows| Py::new(py, self.with_rows(rows)))
            .collect::<PyResult<Vec<_>>>()?;
        Ok(PyList::new(py, parts)?.unbind())
    }

    fn __repr__(&self) -> String {
        let files = self
            .iter()
            .filter(|e| e.kind != cowtree_link::EntryKind::Dir);
        format!(
            "Record({} entries, {} files and symlinks)",
            self.len(),
            files.count()
        )
    }
}

/// Iterates a [`Record`], making each `RecordEntry` as it is reached.
#[pyclass(module = "cowtree")]
pub struct RecordIter {
    record: Record,
    next: usize,
}

#[pymethods]
impl RecordIter {
    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__(mut slf: PyRefMut<'_, Self>) -> PyResult<Option<Py<RecordEntry>>> {
        if slf.next >= slf.record.len() {
            return Ok(None);
        }
        let i = slf.next;
        slf.next += 1;
        entry_to_py(slf.py(), slf.record.get(i)).map(Some)
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

    /// Entries are equal when every attribute is (each read of a record makes a new object).
    fn __eq__(&self, py: Python<'_>, other: PyRef<'_, RecordEntry>) -> PyResult<bool> {
        let same = |a: &Option<Py<PyAny>>, b: &Option<Py<PyAny>>| -> PyResult<bool> {
            match (a, b) {
                (None, None) => Ok(true),
                (Some(a), Some(b)) => a.bind(py).eq(b),
                _ => Ok(false),
            }
        };
        let any = |o: &Option<Py<PyBytes>>| o.as_ref().map(|b| b.clone_ref(py).into_any());
        let anys = |o: &Option<Py<PyString>>| o.as_ref().map(|s| s.clone_ref(py).into_any());
        Ok(self.kind == other.kind
            && self.size == other.size
            && self.method == other.method
            && self.hash_algo == other.hash_algo
            && self.source == other.source
            && self.path.bind(py).as_any().eq(other.path.bind(py))?
            && same(&any(&self.hash), &any(&other.hash))?
            && same(&anys(&self.from_path), &anys(&other.from_path))?)
    }

    fn __hash__(&self, py: Python<'_>) -> PyResult<isize> {
        self.path.bind(py).hash()
    }
}
