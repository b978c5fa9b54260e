//! Small directory-relative file helpers for the store's own files.

use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};

use rustix::fs::{Mode, OFlags, openat};
use rustix::io::Errno;

/// A name no other process or call will pick: the process's stamp (pid and start time,
/// `cowtree_fs::process::Stamp`), a per-process counter and the clock.
pub fn unique_suffix() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{}-{n}-{nanos:08x}", cowtree_fs::process::Stamp::current())
}

/// Opens the file `name` under `dir` for reading (not following a final symlink, never
/// waiting on a FIFO); `None` if absent.
pub fn open_at(dir: impl AsFd, name: &OsStr) -> io::Result<Option<OwnedFd>> {
    match openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK,
        Mode::empty(),
    ) {
        Ok(fd) => Ok(Some(fd)),
        Err(Errno::NOENT) => Ok(None),
        Err(e) => Err(io::Error::from(e)),
    }
}

/// Reads the whole file `name` under `dir` ([`open_at`]); `None` if absent.
pub fn read_at(dir: impl AsFd, name: &OsStr) -> io::Result<Option<Vec<u8>>> {
    match open_at(dir, name)? {
        Some(fd) => cowtree_fs::read::read_whole(&fd).map(Some),
        None => Ok(None),
    }
}

/// Writes `bytes` to `name` under `dir` atomically and durably (see
/// [`cowtree_fs::atomic_file::write_atomic`]).
pub fn write_atomic(dir: impl AsFd, name: &OsStr, bytes: &[u8], mode: u32) -> io::Result<()> {
    cowtree_fs::atomic_file::write_atomic(dir, name, bytes, mode, true)
}

pub use cowtree_fs::name::{join, path_of, split};
