//! Owner, mode and extended attributes of one directory entry, through a handle of the entry
//! itself ([`EntryFd`]): an open file or directory, or a handle from [`open_entry`]
//! (`O_PATH | O_NOFOLLOW`), so that a symlink found at the name is worked on as a symlink,
//! never followed. An open descriptor takes the `f*` calls directly. An `O_PATH` handle is
//! refused by those (`EBADF`) except `fchownat(AT_EMPTY_PATH)`: `chmod` and the `*xattr`
//! calls go through `/proc/self/fd/N`, which reaches exactly the handle's inode (glibc
//! emulates `fchmodat(AT_SYMLINK_NOFOLLOW)` the same way), at the cost of resolving that path.

use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};

use rustix::fs::{AtFlags, Gid, Mode, OFlags, Uid};
use rustix::io::Errno;

use super::XattrAt;
use crate::sys::EntryFd;

/// Opens the entry `name` of `dir` as a handle for [`chown_entry`], [`chmod_entry`] and the
/// attribute calls, as an [`EntryFd::Path`] (`O_PATH | O_NOFOLLOW`: no data access, a FIFO
/// does not block, a symlink is the symlink).
pub fn open_entry(dir: BorrowedFd<'_>, name: &OsStr) -> Result<OwnedFd, Errno> {
    rustix::fs::openat(
        dir,
        name,
        OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
}

/// Sets the owner and/or group of the entry `fd` (`None` leaves one as it is):
/// `fchownat(fd, "", AT_EMPTY_PATH)`, which works on the handle's inode itself, whichever
/// kind of handle it is.
pub fn chown_entry(fd: EntryFd<'_>, uid: Option<u32>, gid: Option<u32>) -> Result<(), Errno> {
    rustix::fs::chownat(
        fd.fd(),
        "",
        uid.map(Uid::from_raw_unchecked),
        gid.map(Gid::from_raw_unchecked),
        AtFlags::EMPTY_PATH,
    )
}

/// Sets the mode bits (`0o7777`) of the entry `fd` (a symlink refuses with `EOPNOTSUPP`).
pub fn chmod_entry(fd: EntryFd<'_>, mode: u32) -> Result<(), Errno> {
    let mode = Mode::from_raw_mode(mode & 0o7777);
    by_fd_or_path(
        fd,
        |fd| rustix::fs::fchmod(fd, mode),
        |path| rustix::fs::chmod(path, mode),
    )
}

/// The names of the extended attributes of the entry `fd` that the caller may see (none where
/// the filesystem has no attributes).
pub fn xattr_list(fd: EntryFd<'_>) -> io::Result<Vec<Vec<u8>>> {
    by_fd_or_path(
        fd,
        |fd| super::xattr_names(XattrAt::Fd(fd)),
        |path| super::xattr_names(XattrAt::Path(path)),
    )
}

/// The value of the attribute `name` of the entry `fd`; `None` when it has none (any more).
pub fn xattr_get(fd: EntryFd<'_>, name: &[u8]) -> io::Result<Option<Vec<u8>>> {
    by_fd_or_path(
        fd,
        |fd| super::xattr_value(XattrAt::Fd(fd), name),
        |path| super::xattr_value(XattrAt::Path(path), name),
    )
}

/// Sets the attribute `name` of the entry `fd` to `value`.
pub fn xattr_set(fd: EntryFd<'_>, name: &[u8], value: &[u8]) -> Result<(), Errno> {
    by_fd_or_path(
        fd,
        |fd| XattrAt::Fd(fd).set(name, value),
        |path| XattrAt::Path(path).set(name, value),
    )
}

/// A call on the entry `fd`: `by_fd` on an open descriptor, `by_path` on the
/// `/proc/self/fd/N` path of an `O_PATH` handle. An `O_PATH` handle given as
/// [`EntryFd::Open`] by mistake is refused by the `f*` call (`EBADF`) and reached through the
/// path after all: one call more, never a failure.
fn by_fd_or_path<T, E: Refused>(
    fd: EntryFd<'_>,
    by_fd: impl FnOnce(BorrowedFd<'_>) -> Result<T, E>,
    by_path: impl FnOnce(&str) -> Result<T, E>,
) -> Result<T, E> {
    let fd = match fd {
        EntryFd::Open(fd) => match by_fd(fd) {
            Err(e) if e.is_bad_fd() => fd,
            done => return done,
        },
        EntryFd::Path(fd) => fd,
    };
    by_path(&proc_path(fd))
}

/// An error that may be `EBADF`: what an `f*` call says of an `O_PATH` handle.
trait Refused {
    fn is_bad_fd(&self) -> bool;
}

impl Refused for Errno {
    fn is_bad_fd(&self) -> bool {
        *self == Errno::BADF
    }
}

impl Refused for io::Error {
    fn is_bad_fd(&self) -> bool {
        self.raw_os_error() == Some(Errno::BADF.raw_os_error())
    }
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
