//! The store's file locks on Windows, where unix takes an `flock` (the store's `lock`, the
//! registration lock, the list of known stores): `LockFileEx` on one byte of the open file,
//! shared or exclusive, held until [`Held`] is dropped (unlocked then, and closed).
//!
//! Windows' byte-range locks are mandatory: a shared lock on a range stops every writer to
//! it, its holder included, and an exclusive one every other reader. The byte locked is
//! therefore one no one reads or writes, far past the end of any of these small files
//! ([`LOCK_OFFSET`]): the lock then says only what `flock` says (shared beside shared,
//! exclusive alone), and a file's contents stay readable and writable under it, as
//! `discover::remember` appends under a shared lock. As with `flock`, two handles conflict
//! even within one process.
//!
//! (std's `File::lock` makes the same call over the whole file, and needs Rust 1.89; the
//! workspace builds with 1.88.)

use std::ffi::OsStr;
use std::fs::File;
use std::io;
use std::os::windows::io::AsRawHandle;

use cowtree_fs::dir::Dir;

use windows_sys::Win32::Foundation::{ERROR_IO_PENDING, ERROR_LOCK_VIOLATION};
use windows_sys::Win32::Storage::FileSystem::{
    LOCKFILE_EXCLUSIVE_LOCK, LOCKFILE_FAIL_IMMEDIATELY, LockFileEx, UnlockFileEx,
};
use windows_sys::Win32::System::IO::OVERLAPPED;

/// The byte locked: far past the end of any file the store locks, below the largest offset
/// (2^63 - 1) Windows accepts.
const LOCK_OFFSET: u64 = 1 << 62;

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
        let mut ov = overlapped();
        // SAFETY: the handle is open for the life of `self.file`; `ov` is a valid OVERLAPPED
        // that outlives the call (synchronous: the file was not opened for overlapped I/O).
        // A failure leaves the lock to the close that follows, which releases it too.
        unsafe { UnlockFileEx(self.file.as_raw_handle(), 0, 1, 0, &mut ov) };
    }
}

fn overlapped() -> OVERLAPPED {
    // SAFETY: OVERLAPPED is plain data; all zeroes is a valid value.
    let mut ov: OVERLAPPED = unsafe { std::mem::zeroed() };
    ov.Anonymous.Anonymous.Offset = LOCK_OFFSET as u32;
    ov.Anonymous.Anonymous.OffsetHigh = (LOCK_OFFSET >> 32) as u32;
    ov
}

/// `LockFileEx` of the lock byte of `file`: `Ok(false)` when `wait` is false and another
/// handle holds a lock that conflicts.
fn lock_file(file: &File, exclusive: bool, wait: bool) -> io::Result<bool> {
    let mut flags = 0;
    if exclusive {
        flags |= LOCKFILE_EXCLUSIVE_LOCK;
    }
    if !wait {
        flags |= LOCKFILE_FAIL_IMMEDIATELY;
    }
    let mut ov = overlapped();
    // SAFETY: the handle is open for the life of `file`; `ov` is a valid OVERLAPPED that
    // outlives the call, which is synchronous for a handle not opened for overlapped I/O.
    let ok = unsafe { LockFileEx(file.as_raw_handle(), flags, 0, 1, 0, &mut ov) };
    if ok != 0 {
        return Ok(true);
    }
    let e = io::Error::last_os_error();
    match e.raw_os_error() {
        Some(n) if !wait && (n == ERROR_LOCK_VIOLATION as i32 || n == ERROR_IO_PENDING as i32) => {
            Ok(false)
        }
        _ => Err(e),
    }
}

/// Takes the lock on `file` without waiting: `Err(file)` back when another handle holds a
/// lock that conflicts.
pub(crate) fn try_lock(file: File, exclusive: bool) -> io::Result<Result<Held, File>> {
    if lock_file(&file, exclusive, false)? {
        Ok(Ok(Held { file }))
    } else {
        Ok(Err(file))
    }
}

/// Takes the lock on `file`, waiting while another handle holds one that conflicts.
pub(crate) fn lock(file: File, exclusive: bool) -> io::Result<Held> {
    lock_file(&file, exclusive, true)?;
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
