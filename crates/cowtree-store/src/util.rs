//! Small directory-relative file helpers for the store's own files.

use std::ffi::OsStr;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};

use cowtree_fs::sys::{AsFd, OwnedFd};
#[cfg(unix)]
use rustix::fs::{Mode, OFlags, openat};
#[cfg(unix)]
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
#[cfg(unix)]
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

/// Opens the file `name` under `dir` for reading, relative to the directory's handle and
/// never following a reparse point (one there, or a directory, is refused); `None` if absent.
#[cfg(windows)]
pub fn open_at(dir: &cowtree_fs::dir::Dir, name: &OsStr) -> io::Result<Option<OwnedFd>> {
    match dir.open_file(name) {
        Ok(f) => Ok(Some(OwnedFd::from(f))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Reads the whole file `name` under `dir` ([`open_at`]); `None` if absent.
#[cfg(unix)]
pub fn read_at(dir: impl AsFd, name: &OsStr) -> io::Result<Option<Vec<u8>>> {
    match open_at(dir, name)? {
        Some(fd) => cowtree_fs::read::read_whole(&fd).map(Some),
        None => Ok(None),
    }
}

/// Reads the whole file `name` under `dir` ([`open_at`]); `None` if absent.
#[cfg(windows)]
pub fn read_at(dir: &cowtree_fs::dir::Dir, name: &OsStr) -> io::Result<Option<Vec<u8>>> {
    match open_at(dir, name)? {
        Some(fd) => cowtree_fs::read::read_whole(&fd).map(Some),
        None => Ok(None),
    }
}

/// Writes `bytes` to `name` under `dir` atomically and durably (see
/// [`cowtree_fs::atomic_file::write_atomic`]).
pub fn write_atomic(dir: impl AsFd, name: &OsStr, bytes: &[u8], mode: u32) -> io::Result<()> {
    cowtree_fs::atomic_file::write_atomic(dir.as_fd(), name, bytes, mode, true)
}

pub use cowtree_fs::name::{join, split};

/// The manifest path `bytes` as a path, for messages and relative opens.
#[cfg(unix)]
pub use cowtree_fs::name::path_of;

/// The manifest path `bytes` as a path, for messages and relative opens: borrowed when the
/// bytes are UTF-8 (which an `OsStr`'s encoding on Windows holds as they are), else with
/// U+FFFD for what is not. `/` stays: Windows takes it as a separator.
#[cfg(windows)]
pub fn path_of(bytes: &[u8]) -> std::borrow::Cow<'_, std::path::Path> {
    match String::from_utf8_lossy(bytes) {
        std::borrow::Cow::Borrowed(s) => std::borrow::Cow::Borrowed(std::path::Path::new(s)),
        std::borrow::Cow::Owned(s) => std::borrow::Cow::Owned(std::path::PathBuf::from(s)),
    }
}

/// The identity of the entry `st` describes as the store records it (worktree records,
/// staging registrations): its device (on Windows the volume serial) and its file number in
/// 64 bits ([`cowtree_fs::sys::stat_ino64`]).
pub fn file_id(st: &cowtree_fs::dir::Stat) -> (u64, u64) {
    (
        cowtree_fs::sys::stat_dev(st),
        cowtree_fs::sys::stat_ino64(st),
    )
}

/// The modification time of `st`.
pub fn mtime(st: &cowtree_fs::dir::Stat) -> std::time::SystemTime {
    let t = cowtree_fs::sys::stat_times(st).1;
    let since = |secs: i64, nsecs: i64| {
        std::time::Duration::new(secs.unsigned_abs(), nsecs.clamp(0, 999_999_999) as u32)
    };
    #[allow(clippy::unnecessary_cast)]
    let (secs, nsecs) = (t.tv_sec as i64, t.tv_nsec as i64);
    if secs >= 0 {
        std::time::UNIX_EPOCH + since(secs, nsecs)
    } else {
        std::time::UNIX_EPOCH - since(secs, 0)
    }
}

/// Whether this process may add entries to the directory `dir` (what `access(W_OK | X_OK)`
/// answers on unix): an open of it asking for the right to add files and subdirectories,
/// which Windows checks against its ACL, and refuses on a write-protected volume. Writes
/// nothing. `Ok(false)` when refused; a missing directory and other failures are errors.
#[cfg(windows)]
pub fn writable(dir: &std::path::Path) -> io::Result<bool> {
    use std::os::windows::fs::OpenOptionsExt;
    use windows_sys::Win32::Foundation::{ERROR_ACCESS_DENIED, ERROR_WRITE_PROTECT};
    use windows_sys::Win32::Storage::FileSystem::{
        FILE_ADD_FILE, FILE_ADD_SUBDIRECTORY, FILE_FLAG_BACKUP_SEMANTICS,
        FILE_FLAG_OPEN_REPARSE_POINT, FILE_SHARE_DELETE, FILE_SHARE_READ, FILE_SHARE_WRITE,
    };
    let opened = std::fs::OpenOptions::new()
        .access_mode(FILE_ADD_FILE | FILE_ADD_SUBDIRECTORY)
        .share_mode(FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE)
        .custom_flags(FILE_FLAG_BACKUP_SEMANTICS | FILE_FLAG_OPEN_REPARSE_POINT)
        .open(dir);
    match opened {
        Ok(_) => Ok(true),
        Err(e)
            if e.raw_os_error().is_some_and(|n| {
                n == ERROR_ACCESS_DENIED as i32 || n == ERROR_WRITE_PROTECT as i32
            }) =>
        {
            Ok(false)
        }
        Err(e) => Err(e),
    }
}
