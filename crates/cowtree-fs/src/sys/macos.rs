//! macOS: `fclonefileat`, `F_FULLFSYNC`, and the per-component walk instead of `openat2`. Not
//! run by cowtree's CI, only type-checked (`scripts/check-macos.sh`).

use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use rustix::fs::{CloneFlags, Mode, OFlags, Stat, Timestamps};
use rustix::io::Errno;

use crate::classify::CloneFailure;
use crate::classify::{CloneErrno, classify_clone_errno};
use crate::dir::DirEntry;

/// No `O_PATH` here: a lookup handle is a plain read-only open.
pub const PATH_ONLY: OFlags = OFlags::empty();

/// `fclonefileat` creates its destination: callers must not create it first.
pub const CLONE_CREATES_DESTINATION: bool = true;

/// The permission and type bits of `st` (`mode_t` is 16 bits here).
pub fn stat_mode(st: &Stat) -> u32 {
    u32::from(st.st_mode)
}

/// `bits` (permission bits, from a 32-bit mode) as a [`Mode`] (`mode_t` is 16 bits here; the
/// permission bits fit).
pub fn mode(bits: u32) -> Mode {
    Mode::from_raw_mode((bits & 0o7777) as u16)
}

/// The file type in the mode bits `mode` (`mode_t` is 16 bits here; the type bits fit).
pub fn file_type(mode: u32) -> rustix::fs::FileType {
    rustix::fs::FileType::from_raw_mode((mode & 0o170000) as u16)
}

/// The bits of `mode` (`mode_t` is 16 bits here).
pub fn mode_bits(mode: Mode) -> u32 {
    u32::from(mode.bits())
}

/// The device of `st` (`dev_t` is a signed 32-bit number here).
pub fn stat_dev(st: &Stat) -> u64 {
    st.st_dev as u32 as u64
}

/// No `openat2` here: always `ENOSYS`, so callers walk with [`super::walk_beneath`].
pub fn open_beneath(_dir: BorrowedFd<'_>, _rel: &Path, _flags: OFlags) -> Result<OwnedFd, Errno> {
    Err(Errno::NOSYS)
}

/// No `syncfs` here: `sync` schedules every dirty buffer, then `F_FULLFSYNC` on `fd` makes
/// the volume commit and the drive flush its cache.
pub fn sync_filesystem(fd: impl AsFd) -> Result<(), Errno> {
    rustix::fs::sync();
    fsync(fd.as_fd())
}

/// `fcntl(F_FULLFSYNC)`: a plain `fsync` on macOS leaves the data in the drive's cache. A
/// filesystem that refuses it (some network filesystems) gets a plain `fsync`.
pub fn fsync(fd: BorrowedFd<'_>) -> Result<(), Errno> {
    match rustix::fs::fcntl_fullfsync(fd) {
        Err(Errno::NOTSUP | Errno::OPNOTSUPP | Errno::INVAL | Errno::NOTTY) => {
            rustix::fs::fsync(fd)
        }
        r => r,
    }
}

/// No clone between two open files here (`clonefile` makes a new file): `ENOTSUP`.
pub fn ficlone(_dst: impl AsFd, _src: impl AsFd) -> Result<(), Errno> {
    Err(Errno::NOTSUP)
}

/// Creates `dst_name` under `dst_dir` as a clone of the open file `src` with
/// `fclonefileat(CLONE_NOFOLLOW | CLONE_NOOWNERCOPY)`, then opens it for writing. `clonefile`
/// copies the source's times too; they are reset to now, as for any new file (the caller
/// sets the source's when asked to keep them).
pub(crate) fn clone_new(
    src: BorrowedFd<'_>,
    dst_dir: BorrowedFd<'_>,
    dst_name: &OsStr,
) -> io::Result<super::WholeClone> {
    let mut retried = false;
    loop {
        match rustix::fs::fclonefileat(
            src,
            dst_dir,
            dst_name,
            CloneFlags::NOFOLLOW | CloneFlags::NOOWNERCOPY,
        ) {
            Ok(()) => break,
            Err(e) => match classify_clone_errno(e.raw_os_error()) {
                CloneErrno::Retry if !retried => retried = true,
                CloneErrno::Retry => {
                    return Ok(super::WholeClone::Failed(CloneFailure::Unsupported(
                        crate::classify::UnsupportedCause::Busy,
                    )));
                }
                CloneErrno::Unsupported(cause) => {
                    return Ok(super::WholeClone::Failed(CloneFailure::Unsupported(cause)));
                }
                CloneErrno::MaybeVanished => {
                    return Ok(super::WholeClone::Failed(CloneFailure::Vanished));
                }
                CloneErrno::Exists | CloneErrno::Fatal => return Err(e.into()),
            },
        }
    }
    let fd = rustix::fs::openat(
        dst_dir,
        dst_name,
        OFlags::WRONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let now = rustix::fs::Timespec {
        tv_sec: 0,
        tv_nsec: rustix::fs::UTIME_NOW,
    };
    rustix::fs::futimens(
        &fd,
        &Timestamps {
            last_access: now,
            last_modification: now,
        },
    )?;
    Ok(super::WholeClone::Cloned(fd))
}

/// No `O_TMPFILE` here: `EOPNOTSUPP`, so callers stage under a name and rename.
pub fn open_unnamed(_dir: impl AsFd, _flags: OFlags, _mode: Mode) -> Result<OwnedFd, Errno> {
    Err(Errno::OPNOTSUPP)
}

/// No unnamed files to link here: `EOPNOTSUPP`.
pub fn link_unnamed(
    _fd: impl AsFd,
    _dir: impl AsFd,
    _rel: impl rustix::path::Arg,
) -> Result<(), Errno> {
    Err(Errno::OPNOTSUPP)
}

/// No `copy_file_range` here: `ENOSYS`, so callers read and write.
pub fn copy_file_range(
    _src: BorrowedFd<'_>,
    _dst: BorrowedFd<'_>,
    _len: usize,
) -> Result<usize, Errno> {
    Err(Errno::NOSYS)
}

/// No `sendfile` between files here: `ENOSYS`, so callers read and write.
pub fn sendfile(_src: BorrowedFd<'_>, _dst: BorrowedFd<'_>, _len: usize) -> Result<usize, Errno> {
    Err(Errno::NOSYS)
}

/// No `copy_file_range` here: `ENOSYS`, so callers read and write.
pub fn copy_file_range_at(
    _src: BorrowedFd<'_>,
    _src_off: &mut u64,
    _dst: BorrowedFd<'_>,
    _dst_off: &mut u64,
    _len: usize,
) -> Result<usize, Errno> {
    Err(Errno::NOSYS)
}

/// No `sendfile` between files here: `ENOSYS`, so callers read and write.
pub fn sendfile_from(
    _src: BorrowedFd<'_>,
    _src_off: &mut u64,
    _dst: BorrowedFd<'_>,
    _len: usize,
) -> Result<usize, Errno> {
    Err(Errno::NOSYS)
}

/// The filesystem's type as a number made from its name (`statfs.f_fstypename`), see
/// [`FsType::from_type_name`](crate::fstype::FsType::from_type_name).
pub fn fs_magic(fd: BorrowedFd<'_>) -> io::Result<u64> {
    let st = rustix::fs::fstatfs(fd)?;
    let name: Vec<u8> = st.f_fstypename.iter().map(|&c| c as u8).collect();
    Ok(crate::fstype::FsType::from_type_name(&name).magic)
}

/// Reads the entries of the directory `fd`: macOS has no `getdents64`, so this is
/// [`Dir::entries`](crate::dir::Dir::entries)' `readdir` on a duplicate.
pub(crate) fn read_entries(fd: BorrowedFd<'_>) -> io::Result<Vec<DirEntry>> {
    crate::dir::entries_of(fd)
}

/// Not known here (ACL inheritance on APFS is not modelled): `None`, so callers read new
/// entries' modes back.
pub fn has_default_acl(_dir: BorrowedFd<'_>) -> io::Result<Option<bool>> {
    Ok(None)
}

/// `BTRFS_FIRST_FREE_OBJECTID` (no btrfs here; kept so portable code compiles).
pub const SUBVOLUME_ROOT_INO: u64 = 256;
/// `BTRFS_SUPER_MAGIC` (no btrfs here).
pub const BTRFS_MAGIC: u64 = 0x9123_683e;

/// A subvolume directly inside another (no btrfs here: never made).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RootRef {
    /// The child subvolume's id.
    pub id: u64,
    /// The inode number of the directory the child's root is in.
    pub dirid: u64,
}

/// No btrfs here: `ENOTSUP`.
pub fn btrfs_subvolume_create(_parent: BorrowedFd<'_>, _name: &OsStr) -> Result<(), Errno> {
    Err(Errno::NOTSUP)
}

/// No btrfs here: `ENOTSUP`.
pub fn btrfs_snapshot(
    _src: BorrowedFd<'_>,
    _parent: BorrowedFd<'_>,
    _name: &OsStr,
    _read_only: bool,
) -> Result<(), Errno> {
    Err(Errno::NOTSUP)
}

/// No btrfs here: `ENOTSUP`.
pub fn btrfs_read_only(_root: BorrowedFd<'_>) -> Result<bool, Errno> {
    Err(Errno::NOTSUP)
}

/// No btrfs here: `ENOTSUP`.
pub fn btrfs_set_read_only(_root: BorrowedFd<'_>, _read_only: bool) -> Result<(), Errno> {
    Err(Errno::NOTSUP)
}

/// No btrfs here: `ENOTSUP`.
pub fn btrfs_subvolume_delete(_parent: BorrowedFd<'_>, _name: &OsStr) -> Result<(), Errno> {
    Err(Errno::NOTSUP)
}

/// No btrfs here: `ENOTSUP`.
pub fn btrfs_subvolume_id(_fd: BorrowedFd<'_>) -> Result<u64, Errno> {
    Err(Errno::NOTSUP)
}

/// No btrfs here: `ENOTSUP`.
pub fn btrfs_child_subvolumes(_fd: BorrowedFd<'_>) -> Result<Vec<RootRef>, Errno> {
    Err(Errno::NOTSUP)
}

/// No btrfs here: `ENOTSUP`.
pub fn btrfs_child_path(_fd: BorrowedFd<'_>, _child: RootRef) -> Result<(Vec<u8>, Vec<u8>), Errno> {
    Err(Errno::NOTSUP)
}

/// No btrfs here: `ENOTSUP`.
pub fn btrfs_filesystem_id(_fd: BorrowedFd<'_>) -> Result<[u8; 16], Errno> {
    Err(Errno::NOTSUP)
}

/// Clones the directory open as `src`, with everything beneath it, to `name` in `parent`
/// in one call: `fclonefileat(CLONE_NOFOLLOW | CLONE_NOOWNERCOPY)`, which APFS does for a
/// whole hierarchy (every entry its own inode sharing data, owned by the caller; times and
/// modes kept). `ENOTSUP` where the volume cannot, `EXDEV` across volumes, `EEXIST` when
/// `name` exists. Type-checked, not run, by cowtree's CI.
pub fn clone_directory(
    src: BorrowedFd<'_>,
    parent: BorrowedFd<'_>,
    name: &OsStr,
) -> Result<(), Errno> {
    rustix::fs::fclonefileat(
        src,
        parent,
        name,
        CloneFlags::NOFOLLOW | CloneFlags::NOOWNERCOPY,
    )
}

/// No `/proc/self/mountinfo` here: [`super::Unavailable`] (callers then cannot tell mount
/// points below a directory).
pub fn mount_points() -> io::Result<Vec<std::path::PathBuf>> {
    Err(super::Unavailable::error("the mount table"))
}

/// Not implemented here: [`super::Unavailable`] (`cowtree subvolume convert` is btrfs-only).
pub fn copy_xattrs(_src: BorrowedFd<'_>, _dst: BorrowedFd<'_>) -> io::Result<()> {
    Err(super::Unavailable::error("copying extended attributes"))
}

/// Not implemented here (`ENOTSUP`): keeping owners and attributes per entry
/// (`cowtree_link::Preserve`) is Linux-only.
pub fn open_entry(_dir: BorrowedFd<'_>, _name: &std::ffi::OsStr) -> Result<OwnedFd, Errno> {
    Err(Errno::NOTSUP)
}

/// Not implemented here (`ENOTSUP`), see [`open_entry`].
pub fn chown_entry(
    _fd: super::EntryFd<'_>,
    _uid: Option<u32>,
    _gid: Option<u32>,
) -> Result<(), Errno> {
    Err(Errno::NOTSUP)
}

/// Not implemented here (`ENOTSUP`), see [`open_entry`].
pub fn chmod_entry(_fd: super::EntryFd<'_>, _mode: u32) -> Result<(), Errno> {
    Err(Errno::NOTSUP)
}

/// Not implemented here, see [`open_entry`].
pub fn xattr_list(_fd: super::EntryFd<'_>) -> io::Result<Vec<Vec<u8>>> {
    Err(super::Unavailable::error("extended attributes per entry"))
}

/// Not implemented here, see [`open_entry`].
pub fn xattr_get(_fd: super::EntryFd<'_>, _name: &[u8]) -> io::Result<Option<Vec<u8>>> {
    Err(super::Unavailable::error("extended attributes per entry"))
}

/// Not implemented here (`ENOTSUP`), see [`open_entry`].
pub fn xattr_set(_fd: super::EntryFd<'_>, _name: &[u8], _value: &[u8]) -> Result<(), Errno> {
    Err(Errno::NOTSUP)
}

/// Not implemented here (`ENOTSUP`), see [`open_entry`]: rustix has no `mknodat` for macOS.
pub fn make_node(
    _dir: BorrowedFd<'_>,
    _name: &std::ffi::OsStr,
    _kind: rustix::fs::FileType,
    _mode: u32,
    _rdev: u64,
) -> Result<(), Errno> {
    Err(Errno::NOTSUP)
}

/// The path of the open directory `fd` (`F_GETPATH`), for messages; `None` where it cannot be
/// read.
pub fn dir_path(fd: BorrowedFd<'_>) -> Option<std::path::PathBuf> {
    use std::os::unix::ffi::OsStringExt;
    rustix::fs::getpath(fd)
        .ok()
        .map(|c| std::path::PathBuf::from(std::ffi::OsString::from_vec(c.into_bytes())))
}

/// When process `pid` started, in microseconds since the epoch (`proc_pidinfo`'s
/// `PROC_PIDTBSDINFO`); `None` when there is no such process or it cannot be looked at.
pub fn process_start(pid: u32) -> Option<u64> {
    let pid = i32::try_from(pid).ok()?;
    // SAFETY: proc_bsdinfo is plain data, zeroed is a valid value; proc_pidinfo writes at
    // most `size` bytes into it and returns how many it wrote.
    let mut info: libc::proc_bsdinfo = unsafe { std::mem::zeroed() };
    let size = std::mem::size_of::<libc::proc_bsdinfo>() as i32;
    let n = unsafe {
        libc::proc_pidinfo(
            pid,
            libc::PROC_PIDTBSDINFO,
            0,
            (&mut info as *mut libc::proc_bsdinfo).cast(),
            size,
        )
    };
    (n == size).then(|| info.pbi_start_tvsec * 1_000_000 + info.pbi_start_tvusec)
}
