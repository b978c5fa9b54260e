//! The metadata of one directory entry on Windows, through a handle of the entry itself
//! ([`EntryFd`]): what a Windows copy keeps of an entry is its attributes (read-only, hidden,
//! system, archive, not content indexed: [`KEPT_ATTRIBUTES`]) and its times. [`open_entry`]
//! opens the entry relative to its directory with `FILE_OPEN_REPARSE_POINT` (a symlink or
//! junction is worked on itself, never followed) and only the rights to read and write
//! attributes, so it never touches the entry's data and opens whatever is there.
//!
//! Unix owners, permission bits and extended attributes have no meaning here: a new entry
//! takes its directory's ACL. [`chown_entry`], [`chmod_entry`] and `xattr_*` keep their unix
//! names and say so with an [`Unavailable`] error ([`std::io::ErrorKind::Unsupported`]); they
//! never pretend to have done it.

use std::ffi::OsStr;
use std::io;
use std::os::windows::io::{BorrowedHandle, OwnedHandle};

use windows_sys::Win32::Storage::FileSystem::{
    FILE_ATTRIBUTE_ARCHIVE, FILE_ATTRIBUTE_HIDDEN, FILE_ATTRIBUTE_NORMAL,
    FILE_ATTRIBUTE_NOT_CONTENT_INDEXED, FILE_ATTRIBUTE_READONLY, FILE_ATTRIBUTE_SYSTEM,
    FILE_WRITE_ATTRIBUTES,
};

use super::Timespec;
use super::at::{self, Disposition, Expect};
use crate::sys::EntryFd;
use crate::sys::Unavailable;

/// The attributes a copy carries from its source to its destination; the others
/// (directory, reparse point, sparse, compressed, encrypted, ...) say what the entry is or
/// how it is stored, and are made by making it so, not by setting them.
pub const KEPT_ATTRIBUTES: u32 = FILE_ATTRIBUTE_READONLY
    | FILE_ATTRIBUTE_HIDDEN
    | FILE_ATTRIBUTE_SYSTEM
    | FILE_ATTRIBUTE_ARCHIVE
    | FILE_ATTRIBUTE_NOT_CONTENT_INDEXED;

/// Opens the entry `name` of `dir` as a handle for the calls here, as an [`EntryFd::Path`]:
/// relative to the directory's handle, `FILE_OPEN_REPARSE_POINT` (a reparse point is the
/// entry itself), with the rights to read and write its attributes and times only. `name` is
/// checked as [`crate::dir::check_name`] checks names.
pub fn open_entry(dir: BorrowedHandle<'_>, name: &OsStr) -> io::Result<OwnedHandle> {
    crate::dir::check_name(name)?;
    at::open_at(
        dir,
        &at::wide(name),
        FILE_WRITE_ATTRIBUTES,
        Disposition::Open,
        Expect::Any,
    )
}

/// The attributes (`FILE_ATTRIBUTE_*`) of the entry `fd`, all of them (mask with
/// [`KEPT_ATTRIBUTES`] for what a copy keeps).
pub fn entry_attributes(fd: EntryFd<'_>) -> io::Result<u32> {
    Ok(at::attribute_tag(fd.fd())?.0)
}

/// Gives the entry `fd` the [`KEPT_ATTRIBUTES`] of `attributes` (those bits are set or
/// cleared as `attributes` has them; the entry's other attributes stay). The handle needs
/// `FILE_WRITE_ATTRIBUTES` ([`open_entry`]'s, or a file the caller created). Setting
/// read-only last is the caller's business: times can still be set through this handle
/// afterwards.
pub fn set_entry_attributes(fd: EntryFd<'_>, attributes: u32) -> io::Result<()> {
    let now = entry_attributes(fd)?;
    let want = (now & !KEPT_ATTRIBUTES) | (attributes & KEPT_ATTRIBUTES);
    if want == now {
        return Ok(());
    }
    at::set_attributes(
        fd.fd(),
        if want == 0 {
            FILE_ATTRIBUTE_NORMAL
        } else {
            want
        },
    )
}

/// Sets the last access and last write times of the entry `fd` (a reparse point's own).
/// Times Windows cannot hold (before 1601) are an [`io::ErrorKind::InvalidInput`] error;
/// finer than 100 ns is dropped.
pub fn set_entry_times(fd: EntryFd<'_>, atime: Timespec, mtime: Timespec) -> io::Result<()> {
    at::set_times(fd.fd(), atime.to_filetime()?, mtime.to_filetime()?)
}

/// Unix owners do not exist on Windows: always [`Unavailable`] ("unix owners (chown)").
pub fn chown_entry(_fd: EntryFd<'_>, _uid: Option<u32>, _gid: Option<u32>) -> io::Result<()> {
    Err(Unavailable::error("unix owners (chown)"))
}

/// Unix permission bits do not exist on Windows (a new entry takes its directory's ACL):
/// always [`Unavailable`] ("unix permission bits (chmod)"). The read-only attribute is
/// [`set_entry_attributes`]'s.
pub fn chmod_entry(_fd: EntryFd<'_>, _mode: u32) -> io::Result<()> {
    Err(Unavailable::error("unix permission bits (chmod)"))
}

/// Extended attributes in the unix sense are not kept on Windows: always [`Unavailable`].
pub fn xattr_list(_fd: EntryFd<'_>) -> io::Result<Vec<Vec<u8>>> {
    Err(Unavailable::error("extended attributes per entry"))
}

/// See [`xattr_list`].
pub fn xattr_get(_fd: EntryFd<'_>, _name: &[u8]) -> io::Result<Option<Vec<u8>>> {
    Err(Unavailable::error("extended attributes per entry"))
}

/// See [`xattr_list`].
pub fn xattr_set(_fd: EntryFd<'_>, _name: &[u8], _value: &[u8]) -> io::Result<()> {
    Err(Unavailable::error("extended attributes per entry"))
}
