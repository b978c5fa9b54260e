//! Errors that name the paths they are about, while keeping the OS error code reachable.
//!
//! Every public function in this crate returns `std::io::Result`. When the failure concerns a
//! path, the `io::Error` wraps a [`PathError`] so that its message names the path(s) and the
//! operation, its `kind()` is the kind of the underlying error, and [`raw_errno`] still finds the
//! original errno for callers that classify by it.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

/// An I/O error with the operation and the paths it concerned.
#[derive(Debug)]
pub struct PathError {
    /// What was being done, e.g. "clone" or "create".
    pub op: &'static str,
    /// The first path (the source, or the only path).
    pub path: PathBuf,
    /// The second path (the destination), when there is one.
    pub dest: Option<PathBuf>,
    /// The underlying OS error.
    pub source: io::Error,
}

impl fmt::Display for PathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.dest {
            Some(dest) => write!(
                f,
                "{} {} -> {}: {}",
                self.op,
                self.path.display(),
                dest.display(),
                self.source
            ),
            None => write!(f, "{} {}: {}", self.op, self.path.display(), self.source),
        }
    }
}

impl std::error::Error for PathError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

/// Wraps `err` so that its message names `path` and the operation.
pub fn at_path(op: &'static str, path: &Path, err: io::Error) -> io::Error {
    let kind = err.kind();
    io::Error::new(
        kind,
        PathError {
            op,
            path: path.to_path_buf(),
            dest: None,
            source: err,
        },
    )
}

/// Wraps `err` so that its message names both paths and the operation.
pub fn at_paths(op: &'static str, src: &Path, dst: &Path, err: io::Error) -> io::Error {
    let kind = err.kind();
    io::Error::new(
        kind,
        PathError {
            op,
            path: src.to_path_buf(),
            dest: Some(dst.to_path_buf()),
            source: err,
        },
    )
}

/// The OS error number behind `err`, looking through [`PathError`] wrappers.
pub fn raw_errno(err: &io::Error) -> Option<i32> {
    if let Some(code) = err.raw_os_error() {
        return Some(code);
    }
    let inner = err.get_ref()?;
    if let Some(pe) = inner.downcast_ref::<PathError>() {
        return raw_errno(&pe.source);
    }
    let mut cur: &(dyn std::error::Error + 'static) = inner;
    loop {
        if let Some(ioe) = cur.downcast_ref::<io::Error>() {
            return raw_errno(ioe);
        }
        if let Some(pe) = cur.downcast_ref::<PathError>() {
            return raw_errno(&pe.source);
        }
        cur = cur.source()?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrapped_error_keeps_kind_errno_and_names_both_paths() {
        // "No space left": ENOSPC on unix, ERROR_DISK_FULL on Windows.
        let full = if cfg!(windows) { 112 } else { 28 };
        let err = at_paths(
            "clone",
            Path::new("/a/src"),
            Path::new("/b/dst"),
            io::Error::from_raw_os_error(full),
        );
        assert_eq!(raw_errno(&err), Some(full));
        assert_eq!(err.kind(), io::ErrorKind::StorageFull);
        let msg = err.to_string();
        assert!(msg.contains("/a/src") && msg.contains("/b/dst"), "{msg}");
    }

    #[test]
    fn doubly_wrapped_error_still_finds_errno() {
        let inner = at_path("open", Path::new("/x"), io::Error::from_raw_os_error(2));
        let outer = at_path("walk", Path::new("/y"), inner);
        assert_eq!(raw_errno(&outer), Some(2));
    }

    #[test]
    fn error_without_errno_has_none() {
        let err = io::Error::other("plain");
        assert_eq!(raw_errno(&err), None);
    }
}
