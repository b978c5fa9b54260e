//! Files replaced whole: written under a temporary name in their directory, then renamed over
//! the final name ([`write_atomic`], [`AtomicFile`]). The temporary name is registered for undo
//! (`crate::undo`) before it is made.
//!
//! On Windows the directory is a handle (`AsHandle`, `BorrowedHandle`) where unix has a
//! descriptor: the temporary file is created with `FILE_CREATE` relative to it and renamed
//! through its own handle (`FileRenameInformation` with `ReplaceIfExists`, relative to the
//! directory's handle); `sync` is `FlushFileBuffers` of the file and of the directory.

use std::ffi::{OsStr, OsString};
use std::io;
#[cfg(unix)]
use std::os::fd::{AsFd, BorrowedFd};
#[cfg(windows)]
use std::os::windows::io::{AsHandle, BorrowedHandle};
use std::path::Path;

#[cfg(unix)]
use rustix::fs::{OFlags, RenameFlags, openat, renameat_with};

use crate::dir::{check_name, sync_dir};
use crate::error::at_path;

/// The directory an [`AtomicFile`] lives in: a descriptor on unix, a handle on Windows.
#[cfg(unix)]
type DirRef<'a> = BorrowedFd<'a>;
#[cfg(windows)]
type DirRef<'a> = BorrowedHandle<'a>;

/// Writes `bytes` to the file `name` under `dir` atomically: a new temporary file in the same
/// directory (`O_CREAT|O_EXCL|O_NOFOLLOW`, permission bits `mode`), then renamed over `name`;
/// with `sync`, durably (see [`AtomicFile::commit`]). Readers see the old content or the new, never a part; a symlink at
/// `name` is replaced, never followed. The temporary file is removed if anything fails.
#[cfg(unix)]
pub fn write_atomic(
    dir: impl AsFd,
    name: &OsStr,
    bytes: &[u8],
    mode: u32,
    sync: bool,
) -> io::Result<()> {
    write_atomic_in(dir.as_fd(), name, bytes, mode, sync)
}

/// [`write_atomic`] on Windows: the same, relative to a directory handle; `mode` is ignored
/// (a new file takes its directory's ACL).
#[cfg(windows)]
pub fn write_atomic(
    dir: impl AsHandle,
    name: &OsStr,
    bytes: &[u8],
    mode: u32,
    sync: bool,
) -> io::Result<()> {
    write_atomic_in(dir.as_handle(), name, bytes, mode, sync)
}

/// [`write_atomic`] through the directory's own descriptor or handle.
fn write_atomic_in(
    dir: DirRef<'_>,
    name: &OsStr,
    bytes: &[u8],
    mode: u32,
    sync: bool,
) -> io::Result<()> {
    check_name(name)?;
    let mut f = AtomicFile::create(dir, mode)?;
    io::Write::write_all(f.file(), bytes)?;
    f.commit(name, sync)
}

/// A file written under a temporary name in a directory and then renamed over its final name
/// ([`AtomicFile::commit`]), for content written piece by piece; see [`write_atomic`]. Dropped
/// without a commit, the temporary file is removed.
#[derive(Debug)]
pub struct AtomicFile<'a> {
    dir: DirRef<'a>,
    tmp: OsString,
    file: std::fs::File,
    /// The temporary file's entry in the process's undo registry (`crate::undo`).
    undo: Option<crate::undo::Registration>,
}

impl<'a> AtomicFile<'a> {
    /// Creates the temporary file (`.tmp-<pid>-<n>-<ns>`, `O_CREAT|O_EXCL|O_NOFOLLOW`,
    /// permission bits `mode`) in `dir`. On Windows: `FILE_CREATE` relative to the directory's
    /// handle, `mode` ignored.
    pub fn create(dir: DirRef<'a>, mode: u32) -> io::Result<AtomicFile<'a>> {
        use std::sync::atomic::{AtomicU64, Ordering};
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let tmp = OsString::from(format!(
            ".tmp-{}-{}-{nanos:08x}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let undo = crate::undo::Registration::file(dir, &tmp, false)?;
        let file =
            create_tmp(dir, &tmp, mode).map_err(|e| at_path("create", Path::new(&tmp), e))?;
        Ok(AtomicFile {
            dir,
            tmp,
            file,
            undo: Some(undo),
        })
    }

    /// The file to write to.
    pub fn file(&mut self) -> &mut std::fs::File {
        &mut self.file
    }

    /// Renames the file over `name` (a symlink there is replaced, never followed). With
    /// `sync`, the file is `fdatasync`ed before the rename and the directory `fsync`ed after
    /// it, so that once this returns the new content survives a power loss under its name
    /// (on macOS both are `F_FULLFSYNC`: the standard library's `sync_data` uses it there).
    /// On failure before the rename the temporary file is removed.
    pub fn commit(mut self, name: &OsStr, sync: bool) -> io::Result<()> {
        check_name(name)?;
        if sync {
            self.file.sync_data()?;
        }
        rename_over(self.dir, &self.tmp, &self.file, name)
            .map_err(|e| at_path("rename into", Path::new(name), e))?;
        self.tmp.clear();
        if let Some(undo) = self.undo.take() {
            undo.forget();
        }
        if sync {
            sync_dir(self.dir).map_err(|e| at_path("sync the directory of", Path::new(name), e))?;
        }
        Ok(())
    }
}

/// Creates the temporary file `tmp` in `dir`, exclusively, never following a symlink there.
#[cfg(unix)]
fn create_tmp(dir: DirRef<'_>, tmp: &OsStr, mode: u32) -> io::Result<std::fs::File> {
    let fd = openat(
        dir,
        tmp,
        OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        crate::sys::mode(mode),
    )?;
    Ok(std::fs::File::from(fd))
}

#[cfg(windows)]
fn create_tmp(dir: DirRef<'_>, tmp: &OsStr, _mode: u32) -> io::Result<std::fs::File> {
    use crate::sys::at::{self, Disposition, Expect};
    use windows_sys::Win32::Foundation::{GENERIC_READ, GENERIC_WRITE};
    use windows_sys::Win32::Storage::FileSystem::DELETE;
    at::open_at(
        dir,
        &at::wide(tmp),
        GENERIC_READ | GENERIC_WRITE | DELETE,
        Disposition::Create,
        Expect::File,
    )
    .map(std::fs::File::from)
}

/// Renames `tmp` (open as `_file`) over `name` in `dir`; a symlink at `name` is replaced.
#[cfg(unix)]
fn rename_over(
    dir: DirRef<'_>,
    tmp: &OsStr,
    _file: &std::fs::File,
    name: &OsStr,
) -> io::Result<()> {
    Ok(renameat_with(dir, tmp, dir, name, RenameFlags::empty())?)
}

/// Renames the temporary file through its own handle (opened with `DELETE`), so what moves is
/// the file this process wrote, whatever now has its temporary name.
#[cfg(windows)]
fn rename_over(
    dir: DirRef<'_>,
    _tmp: &OsStr,
    file: &std::fs::File,
    name: &OsStr,
) -> io::Result<()> {
    use crate::sys::at::{self, NewName};
    at::set_name(
        file.as_handle(),
        dir,
        &at::wide(name),
        true,
        NewName::Rename,
    )
}

impl Drop for AtomicFile<'_> {
    fn drop(&mut self) {
        // Not renamed into place: removed, as a signal handler's undo removes it.
        if let Some(undo) = self.undo.take() {
            let _ = undo.undo();
        }
    }
}
