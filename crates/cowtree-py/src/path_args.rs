//! Paths across the crossing: any `str`, `bytes` or `os.PathLike` in, `str` out (decoded as
//! `os.fsdecode` does, so a name that is not UTF-8 comes back with surrogate escapes and
//! `os.fsencode` gives its bytes again).

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyString};

/// `os.fspath(obj)` as a path: a `str` is encoded as `os.fsencode` does, `bytes` taken as
/// they are.
pub fn extract(obj: &Bound<'_, PyAny>) -> PyResult<PathBuf> {
    let os = obj.py().import("os")?;
    let p = os.getattr("fspath")?.call1((obj,))?;
    if let Ok(b) = p.cast::<PyBytes>() {
        return Ok(PathBuf::from(OsString::from_vec(b.as_bytes().to_vec())));
    }
    Ok(PathBuf::from(p.extract::<OsString>()?))
}

/// The path as a Python `str` (`os.fsdecode` of its bytes).
pub fn to_str<'py>(py: Python<'py>, path: &Path) -> Bound<'py, PyString> {
    match path.as_os_str().into_pyobject(py) {
        Ok(s) => s,
        Err(never) => match never {},
    }
}

/// A `#[pyo3(from_py_with)]` adapter for path arguments.
pub fn arg(obj: &Bound<'_, PyAny>) -> PyResult<PathBuf> {
    extract(obj)
}
