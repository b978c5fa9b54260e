//! Paths across the crossing: any `str`, `bytes` or `os.PathLike` in, `str` out (decoded as
//! `os.fsdecode` does, so a name that is not UTF-8 comes back with surrogate escapes and
//! `os.fsencode` gives its bytes again).
//!
//! Paths relative to a source or the destination are handled as bytes with `/` between
//! components ([`slash_bytes`]): on unix a path's own bytes; on Windows its WTF-8 (as
//! `OsStr::as_encoded_bytes` gives it) with each `\` made `/` (the linker joins names with
//! `\` there, and neither is ever part of a name).

use std::borrow::Cow;
use std::ffi::OsString;
#[cfg(unix)]
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyString};

/// `os.fspath(obj)` as a path: a `str` is encoded as `os.fsencode` does, `bytes` taken as
/// they are (on Windows decoded as `os.fsdecode` does: UTF-8 there, PEP 529).
pub fn extract(obj: &Bound<'_, PyAny>) -> PyResult<PathBuf> {
    let os = obj.py().import("os")?;
    let p = os.getattr("fspath")?.call1((obj,))?;
    if let Ok(b) = p.cast::<PyBytes>() {
        #[cfg(unix)]
        return Ok(PathBuf::from(OsString::from_vec(b.as_bytes().to_vec())));
        #[cfg(windows)]
        return Ok(PathBuf::from(
            os.getattr("fsdecode")?.call1((b,))?.extract::<OsString>()?,
        ));
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

/// The relative path `p` as bytes with `/` between its components (see the module docs).
pub fn slash_bytes(p: &Path) -> Cow<'_, [u8]> {
    #[cfg(unix)]
    return Cow::Borrowed(p.as_os_str().as_bytes());
    #[cfg(windows)]
    {
        let b = p.as_os_str().as_encoded_bytes();
        if b.contains(&b'\\') {
            Cow::Owned(
                b.iter()
                    .map(|&c| if c == b'\\' { b'/' } else { c })
                    .collect(),
            )
        } else {
            Cow::Borrowed(b)
        }
    }
}
