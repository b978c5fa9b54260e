//! Small directory-relative file helpers for the store's own files.

use std::ffi::{OsStr, OsString};
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
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
    let mut f = std::fs::File::from(fd);
    let mut out = Vec::new();
    io::Read::read_to_end(&mut f, &mut out)?;
    Ok(Some(out))
}

/// Writes `bytes` to `name` under `dir` atomically: a temp file in the same directory, renamed
/// over `name`. Readers see the old content or the new, never a part.
pub fn write_atomic(dir: impl AsFd, name: &OsStr, bytes: &[u8], mode: u32) -> io::Result<()> {
    let dir = dir.as_fd();
    let tmp = OsString::from(format!(".tmp-{}", unique_suffix()));
    let fd: OwnedFd = openat(
        dir,
        &tmp,
        OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(mode),
    )?;
    let mut f = std::fs::File::from(fd);
    let res = io::Write::write_all(&mut f, bytes).and_then(|()| f.sync_data());
    drop(f);
    let res =
        res.and_then(|()| rustix::fs::renameat(dir, &tmp, dir, name).map_err(io::Error::from));
    if res.is_err() {
        let _ = rustix::fs::unlinkat(dir, &tmp, rustix::fs::AtFlags::empty());
    }
    res
}

/// Joins a relative parent path and a name with `/` (no leading `/` for the root).
pub fn join(parent: &[u8], name: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(parent.len() + 1 + name.len());
    if !parent.is_empty() {
        p.extend_from_slice(parent);
        p.push(b'/');
    }
    p.extend_from_slice(name);
    p
}

/// Splits a relative path into (parent, name); the parent of a top-level name is empty.
pub fn split(path: &[u8]) -> (&[u8], &[u8]) {
    match path.iter().rposition(|&b| b == b'/') {
        Some(i) => (&path[..i], &path[i + 1..]),
        None => (&[], path),
    }
}

/// A path made of raw bytes.
pub fn path_of(bytes: &[u8]) -> &Path {
    Path::new(OsStr::from_bytes(bytes))
}
