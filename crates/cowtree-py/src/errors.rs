//! Each [`LinkError`] variant as its own Python exception class, all beneath
//! `cowtree.LinkError` (an `OSError`), so that a caller catches what it acts on
//! (`except cowtree.DestinationExistsError`) and reads the facts as attributes, not out of
//! a message:
//!
//! - `kind`: the variant's name in snake case (`"destination_exists"`), stable;
//! - `path`: the path the error is about (see each class in the stubs);
//! - `src`, `dst` where the variant names both;
//! - `errno` where an OS error is behind it (`Io`, `Link`, and `UndoFailed` after one);
//! - `destination_unchanged`: false only when a failed merge could not be undone;
//! - per variant: `op`, `attempt` and `reason` (a fallback's stable name), `paths` (special
//!   files), `sources` (a collision), `cause` (the error an undo failed after; also
//!   `__cause__`).

use std::path::Path;

use cowtree_link::LinkError;
use pyo3::create_exception;
use pyo3::exceptions::PyOSError;
use pyo3::prelude::*;
use pyo3::types::{PyList, PyTuple};

use crate::option_names::attempt_name;
use crate::path_args;

create_exception!(
    cowtree,
    PyLinkError,
    PyOSError,
    "A link call failed; the subclass and `kind` say why."
);

macro_rules! classes {
    ($($class:ident $doc:literal;)*) => {
        $(create_exception!(cowtree, $class, PyLinkError, $doc);)*

        fn register_classes(m: &Bound<'_, PyModule>) -> PyResult<()> {
            let py = m.py();
            $(m.add(stringify!($class), py.get_type::<$class>())?;)*
            Ok(())
        }
    };
}

classes! {
    SourceMissingError "The source does not exist.";
    SourceNotLinkableError "The source is neither a directory nor a regular file.";
    SameSourceAndDestinationError "Source and destination are the same.";
    DestinationInsideSourceError "The destination lies inside the source.";
    SourceInsideDestinationError "The source lies inside the destination merged into.";
    DestinationExistsError "The destination exists and on_existing is \"fail\".";
    DestinationNotDirectoryError "The destination exists and is not a directory.";
    DestinationIsSymlinkError "The destination is a symlink (never followed).";
    InvalidDestinationError "The destination path has no final name.";
    SpecialFilesError "The source holds FIFOs, sockets or devices (see skip_special).";
    StrictFallbackError "strict=True refused a fallback from the requested mode.";
    FailedAfterSuccessError "A method that had worked failed for the whole filesystem pair.";
    InvalidDestinationPathError "A mapping or file entry gave an invalid relative path.";
    CollisionError "Two sources give one path and on_existing is \"fail\".";
    UndoFailedError "A merge failed and could not be undone: part of it may be there.";
    CancelledError "Linker.cancel() stopped the call; nothing was changed at the destination.";
    DestinationBusyError "Another merge holds the destination's lock (and waiting was not asked).";
    UnsupportedError "The call asks for what this platform cannot do; nothing was changed.";
    IoError "An OS error about one path.";
    LinkIoError "An OS error linking one entry.";
}

/// Adds `LinkError` and every class beneath it to the module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("LinkError", m.py().get_type::<PyLinkError>())?;
    register_classes(m)
}

fn path_attr(e: &Bound<'_, PyAny>, name: &str, p: &Path) -> PyResult<()> {
    e.setattr(name, path_args::to_str(e.py(), p))
}

/// The Python exception for `err`.
pub fn to_py(py: Python<'_>, err: &LinkError) -> PyErr {
    match build(py, err) {
        Ok(e) => e,
        Err(e) => e,
    }
}

fn build(py: Python<'_>, err: &LinkError) -> PyResult<PyErr> {
    let exc = exception(err, os_error_args(py, err)?);
    let e = exc.value(py).clone().into_any();
    let (kind, path, two) = facts(err);
    e.setattr("kind", kind)?;
    e.setattr("destination_unchanged", err.destination_unchanged())?;
    match path {
        Some(p) => path_attr(&e, "path", p)?,
        None => e.setattr("path", py.None())?,
    }
    if let Some((src, dst)) = two {
        path_attr(&e, "src", src)?;
        path_attr(&e, "dst", dst)?;
    }
    set_variant_attrs(py, &e, &exc, err)?;
    Ok(exc)
}

/// The exception's arguments: `OSError(errno, message)` for an OS error (`errno` set and
/// str() "[Errno N] message"); `OSError(message)` otherwise. `filename` stays unset, or str()
/// would be OSError's own format around it; the paths are in `path`, `src` and `dst`. On
/// Windows the code is a Windows error code: `OSError(errno, message, None, winerror)`, from
/// which Python sets `errno` and `winerror` (str() "[WinError N] message").
fn os_error_args(py: Python<'_>, err: &LinkError) -> PyResult<Py<PyTuple>> {
    let message = err.to_string();
    Ok(match err.raw_os_error() {
        #[cfg(windows)]
        Some(code) => PyTuple::new(
            py,
            [
                code.into_pyobject(py)?.into_any(),
                message.into_pyobject(py)?.into_any(),
                py.None().into_bound(py),
                code.into_pyobject(py)?.into_any(),
            ],
        )?,
        #[cfg(unix)]
        Some(code) => PyTuple::new(
            py,
            [
                code.into_pyobject(py)?.into_any(),
                message.into_pyobject(py)?.into_any(),
            ],
        )?,
        None => PyTuple::new(py, [message])?,
    }
    .unbind())
}

/// The exception of `err`'s class, made with `args`.
fn exception(err: &LinkError, args: Py<PyTuple>) -> PyErr {
    use LinkError as E;
    match err {
        E::SourceMissing(_) => SourceMissingError::new_err(args),
        E::SourceNotLinkable(..) => SourceNotLinkableError::new_err(args),
        E::SameSourceAndDestination(_) => SameSourceAndDestinationError::new_err(args),
        E::DestinationInsideSource { .. } => DestinationInsideSourceError::new_err(args),
        E::SourceInsideDestination { .. } => SourceInsideDestinationError::new_err(args),
        E::DestinationExists(_) => DestinationExistsError::new_err(args),
        E::DestinationNotDirectory(_) => DestinationNotDirectoryError::new_err(args),
        E::DestinationIsSymlink(_) => DestinationIsSymlinkError::new_err(args),
        E::InvalidDestination(_) => InvalidDestinationError::new_err(args),
        E::SpecialFiles { .. } => SpecialFilesError::new_err(args),
        E::StrictFallback { .. } => StrictFallbackError::new_err(args),
        E::FailedAfterSuccess { .. } => FailedAfterSuccessError::new_err(args),
        E::InvalidDestinationPath { .. } => InvalidDestinationPathError::new_err(args),
        E::Collision { .. } => CollisionError::new_err(args),
        E::UndoFailed { .. } => UndoFailedError::new_err(args),
        E::Cancelled(_) => CancelledError::new_err(args),
        E::DestinationBusy(_) => DestinationBusyError::new_err(args),
        E::Unsupported(_) => UnsupportedError::new_err(args),
        E::Io { .. } => IoError::new_err(args),
        E::Link { .. } => LinkIoError::new_err(args),
    }
}

/// An error's `kind`, its `path`, and its `src` and `dst` where it names both.
type Facts<'e> = (&'static str, Option<&'e Path>, Option<(&'e Path, &'e Path)>);

/// The [`Facts`] of `err`.
fn facts(err: &LinkError) -> Facts<'_> {
    use LinkError as E;
    match err {
        E::SourceMissing(p) => ("source_missing", Some(p), None),
        E::SourceNotLinkable(p, _) => ("source_not_linkable", Some(p), None),
        E::SameSourceAndDestination(p) => ("same_source_and_destination", Some(p), None),
        E::DestinationInsideSource { src, dst } => {
            ("destination_inside_source", Some(dst), Some((src, dst)))
        }
        E::SourceInsideDestination { src, dst } => {
            ("source_inside_destination", Some(src), Some((src, dst)))
        }
        E::DestinationExists(p) => ("destination_exists", Some(p), None),
        E::DestinationNotDirectory(p) => ("destination_not_directory", Some(p), None),
        E::DestinationIsSymlink(p) => ("destination_is_symlink", Some(p), None),
        E::InvalidDestination(p) => ("invalid_destination", Some(p), None),
        E::SpecialFiles { src, .. } => ("special_files", Some(src), None),
        E::StrictFallback { src, dst, .. } => ("strict_fallback", Some(src), Some((src, dst))),
        E::FailedAfterSuccess { src, dst, .. } => {
            ("failed_after_success", Some(src), Some((src, dst)))
        }
        E::InvalidDestinationPath { path, .. } => ("invalid_destination_path", Some(path), None),
        E::Collision { path, .. } => ("collision", Some(path), None),
        E::UndoFailed { dst, .. } => ("undo_failed", Some(dst), None),
        E::Cancelled(p) => ("cancelled", Some(p), None),
        E::DestinationBusy(p) => ("destination_busy", Some(p), None),
        E::Unsupported(_) => ("unsupported", None, None),
        E::Io { path, .. } => ("io", Some(path), None),
        E::Link { src, dst, .. } => ("link", Some(src), Some((src, dst))),
    }
}

/// The attributes only some variants have (see the module documentation).
fn set_variant_attrs(
    py: Python<'_>,
    e: &Bound<'_, PyAny>,
    exc: &PyErr,
    err: &LinkError,
) -> PyResult<()> {
    use LinkError as E;
    match err {
        E::SpecialFiles { paths: list, .. } => {
            let items: Vec<_> = list.iter().map(|p| path_args::to_str(py, p)).collect();
            e.setattr("paths", PyList::new(py, items)?)?;
        }
        E::StrictFallback {
            attempt, failure, ..
        }
        | E::FailedAfterSuccess {
            attempt, failure, ..
        } => {
            e.setattr("attempt", attempt_name(*attempt))?;
            e.setattr("reason", failure.as_str())?;
        }
        E::InvalidDestinationPath { src, why, .. } => {
            path_attr(e, "src", src)?;
            e.setattr("why", why.to_string())?;
        }
        E::Collision { sources, .. } => {
            let a = path_args::to_str(py, &sources[0]);
            let b = path_args::to_str(py, &sources[1]);
            e.setattr("sources", PyTuple::new(py, [a, b])?)?;
        }
        E::UndoFailed { error, undo, .. } => {
            let cause = to_py(py, error);
            e.setattr("cause", cause.value(py))?;
            exc.set_cause(py, Some(cause));
            e.setattr("undo_error", undo.to_string())?;
        }
        E::Io { op, .. } | E::Link { op, .. } => e.setattr("op", *op)?,
        _ => {}
    }
    Ok(())
}
