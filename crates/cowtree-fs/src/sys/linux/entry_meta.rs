//! Owner, mode and extended attributes of one directory entry, through a handle of the entry
//! itself (`O_PATH | O_NOFOLLOW`): a symlink found at the name is worked on as a symlink,
//! never followed. Calls that take no descriptor (`chmod`, the `*xattr` calls) go through
//! `/proc/self/fd/N`, which reaches exactly the handle's inode (glibc emulates
//! `fchmodat(AT_SYMLINK_NOFOLLOW)` the same way).

use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};

use rustix::fs::{AtFlags, Gid, Mode, OFlags, Uid, XattrFlags};
use rustix::io::Errno;

/// Opens the entry `name` of `dir` as a handle for [`chown_entry`], [`chmod_entry`] and the
/// attribute calls (`O_PATH | O_NOFOLLOW`: no data access, a FIFO does not block, a symlink
/// is the symlink).
pub fn open_entry(dir: BorrowedFd<'_>, name: &OsStr) -> Result<OwnedFd, Errno> {
    rustix::fs::openat(
        dir,
        name,
        OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
}

/// Sets the owner and/or group of the entry `fd` (from [`open_entry`]; `None` leaves one as
/// it is): `fchownat(fd, "", AT_EMPTY_PATH)`, which works on the handle's inode itself.
pub fn chown_entry(fd: BorrowedFd<'_>, uid: Option<u32>, gid: Option<u32>) -> Result<(), Errno> {
    rustix::fs::chownat(
        fd,
        "",
        uid.map(Uid::from_raw_unchecked),
        gid.map(Gid::from_raw_unchecked),
        AtFlags::EMPTY_PATH,
    )
}

/// Sets the mode bits (`0o7777`) of the entry `fd` (from [`open_entry`]; a symlink refuses
/// with `EOPNOTSUPP`).
pub fn chmod_entry(fd: BorrowedFd<'_>, mode: u32) -> Result<(), Errno> {
    rustix::fs::chmod(proc_path(fd), Mode::from_raw_mode(mode & 0o7777))
}

/// The names of the extended attributes of the entry `fd` that the caller may see (none where
/// the filesystem has no attributes).
pub fn xattr_list(fd: BorrowedFd<'_>) -> io::Result<Vec<Vec<u8>>> {
    super::xattr_names(&proc_path(fd))
}

/// The value of the attribute `name` of the entry `fd`; `None` when it has none (any more).
pub fn xattr_get(fd: BorrowedFd<'_>, name: &[u8]) -> io::Result<Option<Vec<u8>>> {
    super::xattr_value(&proc_path(fd), name)
}

/// Sets the attribute `name` of the entry `fd` to `value`.
pub fn xattr_set(fd: BorrowedFd<'_>, name: &[u8], value: &[u8]) -> Result<(), Errno> {
    rustix::fs::setxattr(proc_path(fd), name, value, XattrFlags::empty())
}

/// Makes the special file `name` in `dir` (`mknodat`): a FIFO, a socket, or (with `rdev`)
/// a character or block device, with the permission bits `mode` (less the umask).
pub fn make_node(
    dir: BorrowedFd<'_>,
    name: &OsStr,
    kind: rustix::fs::FileType,
    mode: u32,
    rdev: u64,
) -> Result<(), Errno> {
    rustix::fs::mknodat(dir, name, kind, Mode::from_raw_mode(mode & 0o7777), rdev)
}

fn proc_path(fd: BorrowedFd<'_>) -> String {
    format!("/proc/self/fd/{}", fd.as_raw_fd())
}
