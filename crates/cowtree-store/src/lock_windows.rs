//! The store's file locks on Windows, where unix takes an `flock` (the store's `lock`, the
//! registration lock, the list of known stores): [`cowtree_fs::file_lock`] (`LockFileEx` of one
//! byte far past the end of the file, so that the file's contents stay readable and writable
//! under it, as `discover::remember` appends under a shared lock), held until [`Held`] is
//! dropped (unlocked then, and closed). As with `flock`, two handles conflict even within one
//! process.

use std::ffi::OsStr;
use std::fs::File;
use std::io;

use cowtree_fs::dir::Dir;
use cowtree_fs::file_lock::{self, LockKind};

/// A lock taken on a file; unlocked, and the file closed, when dropped.
#[derive(Debug)]
pub(crate) struct Held {
    file: File,
}

impl Held {
    /// The locked file.
    pub(crate) fn file(&self) -> &File {
        &self.file
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        // A failure leaves the lock to the close that follows, which releases it too.
        let _ = file_lock::unlock(&self.file);
    }
}

fn kind(exclusive: bool) -> LockKind {
    if exclusive {
        LockKind::Exclusive
    } else {
        LockKind::Shared
    }
}

/// Takes the lock on `file` without waiting: `Err(file)` back when another handle holds a
/// lock that conflicts.
pub(crate) fn try_lock(file: File, exclusive: bool) -> io::Result<Result<Held, File>> {
    if file_lock::try_lock(&file, kind(exclusive))? {
        Ok(Ok(Held { file }))
    } else {
        Ok(Err(file))
    }
}

/// Takes the lock on `file`, waiting while another handle holds one that conflicts.
pub(crate) fn lock(file: File, exclusive: bool) -> io::Result<Held> {
    file_lock::lock(&file, kind(exclusive))?;
    Ok(Held { file })
}

/// Opens the file `name` under `dir` to lock it, relative to the directory's handle and never
/// following a reparse point; with `create`, creating it when missing (and opening another
/// process's when it made it first). `None` when it is missing and not created.
pub(crate) fn open_file(dir: &Dir, name: &OsStr, create: bool) -> io::Result<Option<File>> {
    loop {
        match dir.open_file(name) {
            Ok(f) => return Ok(Some(f)),
            Err(e) if e.kind() == io::ErrorKind::NotFound && create => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        }
        match dir.create_file(name) {
            Ok(f) => return Ok(Some(f)),
            // Made by another process since: open theirs.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
    }
}
