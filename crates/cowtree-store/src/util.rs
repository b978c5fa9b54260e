//! Small directory-relative file helpers for the store's own files.

use std::ffi::OsStr;
use std::io;
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicU64, Ordering};

use rustix::fs::{Mode, OFlags, openat};
use rustix::io::Errno;

/// A name no other process or call will pick: pid, a per-process counter and the clock.
pub fn unique_suffix() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{}-{n}-{nanos:08x}", std::process::id())
}

/// Reads the whole file `name` under `dir` (not following a final symlink); `None` if absent.
pub fn read_at(dir: impl AsFd, name: &OsStr) -> io::Result<Option<Vec<u8>>> {
    let fd = match openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK,
        Mode::empty(),
    ) {
        Ok(fd) => fd,
        Err(Errno::NOENT) => return Ok(None),
        Err(e) => return Err(io::Error::from(e)),
    };
    cowtree_fs::read::read_whole(&fd).map(Some)
}

/// Writes `bytes` to `name` under `dir` atomically and durably (see
/// [`cowtree_fs::dir::write_atomic`]).
pub fn write_atomic(dir: impl AsFd, name: &OsStr, bytes: &[u8], mode: u32) -> io::Result<()> {
    cowtree_fs::dir::write_atomic(dir, name, bytes, mode, true)
}

pub use cowtree_fs::name::{join, path_of, split};
