//! `cowtree.Linker` and `cowtree.link_tree`: the session and its one-call form. Every call
//! converts its arguments first, then runs the link with the interpreter released.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::Duration;

use cowtree_link::{EntryKind, FileEntry, LinkError, LinkOptions, LinkReport, PathMap};
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyTuple;

use crate::sources::Source;
use crate::{errors, option_names, path_args, report_class};

/// A linking session: options chosen once, fallback decisions kept across calls.
#[pyclass(frozen, module = "cowtree")]
pub struct Linker {
    inner: cowtree_link::Linker,
}

/// The options named by a string (parsed, with a `ValueError` naming the choices); the
/// caller sets the others by struct update.
fn named_options(mode: &str, on_existing: &str, hash: Option<&str>) -> PyResult<LinkOptions> {
    Ok(LinkOptions {
        mode: option_names::mode(mode)?,
        on_existing: option_names::on_existing(on_existing)?,
        hash: option_names::hash(hash)?,
        ..LinkOptions::default()
    })
}

/// How often a waiting call looks for a signal (Ctrl-C) to handle.
const SIGNAL_POLL: Duration = Duration::from_millis(50);

/// Runs `work` (a call of `linker`) on a thread of its own with the interpreter released,
/// and turns its outcome into Python's. Meanwhile the calling thread wakes every
/// [`SIGNAL_POLL`] to run Python's signal handlers: when one raises (Ctrl-C's
/// `KeyboardInterrupt`), the link is cancelled through the Linker's cancel handle, its
/// undoing awaited (a new destination is not created, a merge is rolled back), and that
/// exception raised. The Linker stays cancelled: later calls raise `CancelledError`.
fn run(
    py: Python<'_>,
    linker: &cowtree_link::Linker,
    sources: usize,
    work: impl FnOnce() -> Result<LinkReport, LinkError> + Send,
) -> PyResult<report_class::Report> {
    let (tx, rx) = mpsc::channel();
    // In a Mutex only to be Sync, as `detach` asks of what its closure borrows.
    let rx = Mutex::new(rx);
    let recv = |timeout: Option<Duration>| {
        let rx = rx.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        match timeout {
            Some(t) => rx.recv_timeout(t),
            None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
        }
    };
    let outcome = std::thread::scope(|scope| {
        scope.spawn(move || {
            // The receiver outlives this thread: the scope joins it before returning.
            let _ = tx.send(work());
        });
        loop {
            match py.detach(|| recv(Some(SIGNAL_POLL))) {
                Ok(outcome) => return Ok(outcome),
                Err(RecvTimeoutError::Timeout) => {
                    if let Err(interrupt) = py.check_signals() {
                        linker.cancel_handle().cancel();
                        // The outcome (most likely `Cancelled`) gives way to the signal's
                        // exception, once the destination is put back.
                        let _ = py.detach(|| recv(None));
                        return Err(interrupt);
                    }
                }
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(PyRuntimeError::new_err(
                        "the link thread ended without an outcome (it panicked)",
                    ));
                }
            }
        }
    })?;
    match outcome {
        Ok(r) => report_class::to_py(py, r, sources),
        Err(e) => Err(errors::to_py(py, &e)),
    }
}

#[pymethods]
impl Linker {
    #[new]
    #[pyo3(signature = (
        mode = "auto", on_existing = "fail", strict = false, *, record = false, hash = None,
        jobs = 0, preserve_times = true, skip_special = false, sync = false,
        hardlink_sizes = true, wait = true, preserve = None, archive = false
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        mode: &str,
        on_existing: &str,
        strict: bool,
        record: bool,
        hash: Option<&str>,
        jobs: usize,
        preserve_times: bool,
        skip_special: bool,
        sync: bool,
        hardlink_sizes: bool,
        wait: bool,
        preserve: Option<&Bound<'_, PyAny>>,
        archive: bool,
    ) -> PyResult<Linker> {
        let opts = LinkOptions {
            strict,
            record,
            jobs,
            preserve_times,
            skip_special,
            sync,
            hardlink_sizes,
            wait,
            preserve: option_names::preserve(preserve, archive)?,
            ..named_options(mode, on_existing, hash)?
        };
        Ok(Linker {
            inner: cowtree_link::Linker::new(opts),
        })
    }

    /// `"auto"`, `"clone"`, `"copy"`, `"hardlink"` or `"symlink"`.
    #[getter]
    fn mode(&self) -> &'static str {
        option_names::mode_name(self.inner.options().mode)
    }

    /// `"fail"`, `"overwrite"` or `"skip"`.
    #[getter]
    fn on_existing(&self) -> &'static str {
        option_names::on_existing_name(self.inner.options().on_existing)
    }

    #[getter]
    fn strict(&self) -> bool {
        self.inner.options().strict
    }

    /// Whether a merge waits for another merge into the same destination to finish (else
    /// it raises `DestinationBusyError`).
    #[getter]
    fn wait(&self) -> bool {
        self.inner.options().wait
    }

    /// What is kept beyond data, permission bits and times (`preserve`, `archive`): a tuple
    /// of `"ownership"`, `"xattr"`, `"acl"`, `"links"`, `"special"`; empty by default.
    #[getter]
    fn preserve<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        PyTuple::new(
            py,
            option_names::preserve_names(self.inner.options().preserve),
        )
    }

    /// Worker threads each call uses.
    #[getter]
    fn jobs(&self) -> usize {
        self.inner.jobs()
    }

    /// Links the tree (or file) `src` to `dst`.
    fn link_tree(
        &self,
        py: Python<'_>,
        #[pyo3(from_py_with = path_args::arg)] src: PathBuf,
        #[pyo3(from_py_with = path_args::arg)] dst: PathBuf,
    ) -> PyResult<report_class::Report> {
        run(py, &self.inner, 1, || self.inner.link_tree(&src, &dst))
    }

    /// Links several trees (paths or `Source`s, each with its own mapping rules) into `dst`
    /// in one pass.
    fn link_trees(
        &self,
        py: Python<'_>,
        sources: &Bound<'_, PyAny>,
        #[pyo3(from_py_with = path_args::arg)] dst: PathBuf,
    ) -> PyResult<report_class::Report> {
        let sources = sources
            .try_iter()?
            .map(|s| Source::from_any(&s?))
            .collect::<PyResult<Vec<_>>>()?;
        let maps: Vec<_> = sources
            .iter()
            .map(|s| move |rel: &Path, kind: EntryKind| s.rules.map(rel, kind))
            .collect();
        run(py, &self.inner, sources.len(), || {
            let linked: Vec<cowtree_link::Source<'_>> = sources
                .iter()
                .zip(&maps)
                .map(|(s, m)| {
                    if s.rules.is_empty() {
                        cowtree_link::Source::new(&s.path)
                    } else {
                        let map: PathMap<'_> = m;
                        cowtree_link::Source::mapped(&s.path, map)
                    }
                })
                .collect();
            self.inner.link_sources(&linked, &dst)
        })
    }

    /// Links a list of files, each `(src, dst_relative)` or `(src, dst_relative, mode)`, into
    /// `dst` (missing parent directories are made).
    fn link_files(
        &self,
        py: Python<'_>,
        entries: &Bound<'_, PyAny>,
        #[pyo3(from_py_with = path_args::arg)] dst: PathBuf,
    ) -> PyResult<report_class::Report> {
        let mut list = Vec::new();
        for item in entries.try_iter()? {
            let item = item?;
            let t = item.cast::<PyTuple>().map_err(|_| {
                PyValueError::new_err("each file entry is a (src, dst) or (src, dst, mode) tuple")
            })?;
            let mode = match t.len() {
                2 => None,
                3 => t.get_item(2)?.extract::<Option<u32>>()?,
                _ => {
                    return Err(PyValueError::new_err(
                        "each file entry is a (src, dst) or (src, dst, mode) tuple",
                    ));
                }
            };
            list.push(FileEntry {
                src: path_args::extract(&t.get_item(0)?)?,
                dst: path_args::extract(&t.get_item(1)?)?,
                mode,
            });
        }
        run(py, &self.inner, list.len(), || {
            self.inner.link_files(&list, &dst)
        })
    }

    /// Stops the session's running and later calls (from another thread, a signal handler,
    /// a timer): a running call stops soon, undoes its work and raises `CancelledError`;
    /// later calls raise it at once. Ctrl-C during a call does the same and raises
    /// `KeyboardInterrupt`.
    fn cancel(&self) {
        self.inner.cancel_handle().cancel();
    }

    /// True once the session was cancelled.
    #[getter]
    fn cancelled(&self) -> bool {
        self.inner.cancel_handle().is_cancelled()
    }

    /// Finishes merges into `dst` that a killed process left half done; returns how many.
    fn recover(
        &self,
        py: Python<'_>,
        #[pyo3(from_py_with = path_args::arg)] dst: PathBuf,
    ) -> PyResult<usize> {
        py.detach(|| self.inner.recover(&dst))
            .map_err(|e| errors::to_py(py, &e))
    }

    fn __repr__(&self) -> String {
        format!(
            "Linker(mode={:?}, on_existing={:?}, strict={}, jobs={})",
            self.mode(),
            self.on_existing(),
            self.strict(),
            self.jobs()
        )
    }
}

/// Links the tree (or file) `src` to `dst` with a one-call session.
#[pyfunction]
#[pyo3(signature = (
    src, dst, mode = "auto", on_existing = "fail", strict = false, *, record = false,
    hash = None, jobs = 0, preserve_times = true, skip_special = false, sync = false,
    wait = true, preserve = None, archive = false
))]
#[allow(clippy::too_many_arguments)]
pub fn link_tree(
    py: Python<'_>,
    #[pyo3(from_py_with = path_args::arg)] src: PathBuf,
    #[pyo3(from_py_with = path_args::arg)] dst: PathBuf,
    mode: &str,
    on_existing: &str,
    strict: bool,
    record: bool,
    hash: Option<&str>,
    jobs: usize,
    preserve_times: bool,
    skip_special: bool,
    sync: bool,
    wait: bool,
    preserve: Option<&Bound<'_, PyAny>>,
    archive: bool,
) -> PyResult<report_class::Report> {
    let opts = LinkOptions {
        strict,
        record,
        jobs,
        preserve_times,
        skip_special,
        sync,
        wait,
        preserve: option_names::preserve(preserve, archive)?,
        ..named_options(mode, on_existing, hash)?
    };
    let linker = cowtree_link::Linker::new(opts);
    run(py, &linker, 1, || linker.link_tree(&src, &dst))
}
