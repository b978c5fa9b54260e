//! Files replaced whole: written under a temporary name in their directory, then renamed over
//! the final name ([`write_atomic`], [`AtomicFile`]). The temporary name is registered for undo
//! (`crate::undo`) before it is made.

use std::ffi::{OsStr, OsString};
use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::Path;

use rustix::fs::{OFlags, RenameFlags, openat, renameat_with};

use crate::dir::{check_name, sync_dir};
use crate::error::at_path;

/// Writes `bytes` to the file `name` under `dir` atomically: a new temporary file in the same
/// directory (`O_CREAT|O_EXCL|O_NOFOLLOW`, permission bits `mode`), then renamed over `name`;
/// with `sync`, durably (see [`AtomicFile::commit`]). Readers see the old content or the new, never a part; a symlink at
/// `name` is replaced, never followed. The temporary file is removed if anything fails.
pub fn write_atomic(
    dir: impl AsFd,
    name: &OsStr,
    bytes: &[u8],
    mode: u32,
    sync: bool,
) -> io::Result<()> {
    check_name(name)?;
    let mut f = AtomicFile::create(dir.as_fd(), mode)?;
    io::Write::write_all(f.file(), bytes)?;
    f.commit(name, sync)
}

/// A file written under a temporary name in a directory and then renamed over its final name
/// ([`AtomicFile::commit`]), for content written piece by piece; see [`write_atomic`]. Dropped
/// without a commit, the temporary file is removed.
#[derive(Debug)]
pub struct AtomicFile<'a> {
    dir: BorrowedFd<'a>,
    tmp: OsString,
    file: std::fs::File,
    /// The temporary file's entry in the process's undo registry (`crate::undo`).
    undo: Option<crate::undo::Registration>,
}

impl<'a> AtomicFile<'a> {
    /// Creates the temporary file (`.tmp-<pid>-<n>-<ns>`, `O_CREAT|O_EXCL|O_NOFOLLOW`,
    /// permission bits `mode`) in `dir`.
    pub fn create(dir: BorrowedFd<'a>, mode: u32) -> io::Result<AtomicFile<'a>> {
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
        let fd = openat(
            dir,
            &tmp,
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            crate::sys::mode(mode),
        )
        .map_err(|e| at_path("create", Path::new(&tmp), e.into()))?;
        Ok(AtomicFile {
            dir,
            tmp,
            file: std::fs::File::from(fd),
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
        renameat_with(self.dir, &self.tmp, self.dir, name, RenameFlags::empty())
            .map_err(|e| at_path("rename into", Path::new(name), e.into()))?;
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

impl Drop for AtomicFile<'_> {
    fn drop(&mut self) {
        // Not renamed into place: removed, as a signal handler's undo removes it.
        if let Some(undo) = self.undo.take() {
            let _ = undo.undo();
        }
    }
}
