//! Linux: `openat2`, FICLONE, `O_TMPFILE`, `copy_file_range`, `syncfs`, `getdents64`, `O_PATH`,
//! and the btrfs subvolume ioctls (`linux/btrfs.rs`).

use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use rustix::fs::{AtFlags, Mode, OFlags, ResolveFlags, Stat};
use rustix::io::Errno;

use crate::dir::DirEntry;

mod btrfs;
pub use btrfs::*;
mod entry_meta;
pub use entry_meta::*;

/// Added to a directory open for a handle used only to look entries up and `stat` them.
pub const PATH_ONLY: OFlags = OFlags::PATH;

/// Whether a clone creates its destination itself (as macOS's `fclonefileat` does); on Linux
/// the destination is created first and cloned into by descriptor ([`ficlone`]).
pub const CLONE_CREATES_DESTINATION: bool = false;

/// The permission and type bits of `st`.
pub fn stat_mode(st: &Stat) -> u32 {
    st.st_mode
}

/// `bits` (permission bits, from a 32-bit mode) as a [`Mode`].
pub fn mode(bits: u32) -> Mode {
    Mode::from_raw_mode(bits)
}

/// The file type in the mode bits `mode`.
pub fn file_type(mode: u32) -> rustix::fs::FileType {
    rustix::fs::FileType::from_raw_mode(mode)
}

/// The bits of `mode`.
pub fn mode_bits(mode: Mode) -> u32 {
    mode.bits()
}

/// The device of `st`.
pub fn stat_dev(st: &Stat) -> u64 {
    st.st_dev
}

/// Opens `rel` beneath `dir` with `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS |
/// RESOLVE_NO_MAGICLINKS)`. `ENOSYS` (a kernel before 5.6): use [`super::walk_beneath`].
pub fn open_beneath(dir: BorrowedFd<'_>, rel: &Path, flags: OFlags) -> Result<OwnedFd, Errno> {
    rustix::fs::openat2(
        dir,
        rel,
        flags,
        Mode::empty(),
        ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS,
    )
}

/// `syncfs`: commits every change on `fd`'s filesystem.
pub fn sync_filesystem(fd: impl AsFd) -> Result<(), Errno> {
    rustix::fs::syncfs(fd)
}

/// `fsync`.
pub fn fsync(fd: BorrowedFd<'_>) -> Result<(), Errno> {
    rustix::fs::fsync(fd)
}

/// `ioctl(dst, FICLONE, src)`: `dst` (an open, writable file) shares all of `src`'s data.
pub fn ficlone(dst: impl AsFd, src: impl AsFd) -> Result<(), Errno> {
    rustix::fs::ioctl_ficlone(dst, src)
}

/// A clone that creates its destination. Never used on Linux: the caller creates the file and
/// clones into it by descriptor.
pub(crate) fn clone_new(
    _src: BorrowedFd<'_>,
    _dst_dir: BorrowedFd<'_>,
    _dst_name: &OsStr,
) -> io::Result<super::WholeClone> {
    Ok(super::WholeClone::ByDescriptor)
}

/// An unnamed file in `dir` (`O_TMPFILE`), to be named later with [`link_unnamed`].
pub fn open_unnamed(dir: impl AsFd, flags: OFlags, mode: Mode) -> Result<OwnedFd, Errno> {
    rustix::fs::openat(dir, ".", OFlags::TMPFILE | flags, mode)
}

/// Gives the unnamed file `fd` the name `rel` under `dir` (`linkat(AT_EMPTY_PATH)`; needs
/// `CAP_DAC_READ_SEARCH`, else `ENOENT`).
pub fn link_unnamed(
    fd: impl AsFd,
    dir: impl AsFd,
    rel: impl rustix::path::Arg,
) -> Result<(), Errno> {
    rustix::fs::linkat(fd, "", dir, rel, AtFlags::EMPTY_PATH)
}

/// `copy_file_range` from the current offsets.
pub fn copy_file_range(
    src: BorrowedFd<'_>,
    dst: BorrowedFd<'_>,
    len: usize,
) -> Result<usize, Errno> {
    rustix::fs::copy_file_range(src, None, dst, None, len)
}

/// `sendfile` from the current offset of `src` to that of `dst`: an in-kernel copy through
/// the page cache, which writes new data (it never shares extents, as `copy_file_range` may
/// on XFS and btrfs).
pub fn sendfile(src: BorrowedFd<'_>, dst: BorrowedFd<'_>, len: usize) -> Result<usize, Errno> {
    rustix::fs::sendfile(dst, src, None, len)
}

/// `copy_file_range` from `*src_off` of `src` to `*dst_off` of `dst`, advancing both; the
/// descriptors' own offsets are left as they are.
pub fn copy_file_range_at(
    src: BorrowedFd<'_>,
    src_off: &mut u64,
    dst: BorrowedFd<'_>,
    dst_off: &mut u64,
    len: usize,
) -> Result<usize, Errno> {
    rustix::fs::copy_file_range(src, Some(src_off), dst, Some(dst_off), len)
}

/// [`sendfile`] from `*src_off` of `src` (advanced; the descriptor's own offset is left as
/// it is) to the current offset of `dst`.
pub fn sendfile_from(
    src: BorrowedFd<'_>,
    src_off: &mut u64,
    dst: BorrowedFd<'_>,
    len: usize,
) -> Result<usize, Errno> {
    rustix::fs::sendfile(dst, src, Some(src_off), len)
}

/// Whether the directory `dir` has a default POSIX ACL (which, where present, decides the
/// permission bits of new entries instead of the umask): `Some(false)` when it has none or the
/// filesystem has no ACLs, `Some(true)` when it has one.
pub fn has_default_acl(dir: BorrowedFd<'_>) -> io::Result<Option<bool>> {
    match rustix::fs::fgetxattr_query(dir, "system.posix_acl_default") {
        Ok(_) => Ok(Some(true)),
        Err(Errno::NODATA | Errno::OPNOTSUPP) => Ok(Some(false)),
        Err(e) => Err(e.into()),
    }
}

/// The filesystem's magic number (`statfs.f_type`).
pub fn fs_magic(fd: BorrowedFd<'_>) -> io::Result<u64> {
    let st = rustix::fs::fstatfs(fd)?;
    Ok(st.f_type as u64)
}

/// Reads the entries of the directory `fd` with `getdents64` through its own file offset
/// (rewound first).
pub(crate) fn read_entries(fd: BorrowedFd<'_>) -> io::Result<Vec<DirEntry>> {
    use std::mem::MaybeUninit;
    rustix::fs::seek(fd, rustix::fs::SeekFrom::Start(0))?;
    let mut buf = [MaybeUninit::<u8>::uninit(); 16 * 1024];
    let mut raw = rustix::fs::RawDir::new(fd, &mut buf);
    let mut out = Vec::new();
    while let Some(entry) = raw.next() {
        let entry = entry?;
        out.extend(DirEntry::from_raw(
            entry.file_name().to_bytes(),
            entry.file_type(),
            entry.ino(),
        ));
    }
    Ok(out)
}

/// Every mount point of this process's mount namespace (`/proc/self/mountinfo`, field 5,
/// with the kernel's octal escapes of space, tab, newline and backslash undone).
pub fn mount_points() -> io::Result<Vec<std::path::PathBuf>> {
    let text = std::fs::read("/proc/self/mountinfo")
        .map_err(|e| crate::error::at_path("read", Path::new("/proc/self/mountinfo"), e))?;
    Ok(text
        .split(|&b| b == b'\n')
        .filter_map(|line| line.split(|&b| b == b' ').nth(4))
        .map(|field| {
            use std::os::unix::ffi::OsStringExt;
            std::path::PathBuf::from(std::ffi::OsString::from_vec(unescape_mount_field(field)))
        })
        .collect())
}

/// Undoes mountinfo's `\ooo` escapes.
pub(crate) fn unescape_mount_field(field: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(field.len());
    let mut i = 0;
    while i < field.len() {
        if field[i] == b'\\'
            && i + 3 < field.len()
            && field[i + 1..i + 4]
                .iter()
                .all(|b| (b'0'..=b'7').contains(b))
        {
            let v = field[i + 1..i + 4]
                .iter()
                .fold(0u32, |acc, b| acc * 8 + u32::from(b - b'0'));
            out.push(v as u8);
            i += 4;
        } else {
            out.push(field[i]);
            i += 1;
        }
    }
    out
}

/// Makes the extended attributes of `dst` exactly those of `src` (ACLs, `security.*`,
/// `user.*`, ...): sets each one `dst` lacks or holds another value of, removes each one
/// `src` lacks. Both are handles opened `O_PATH | O_NOFOLLOW`, so a symlink's own attributes
/// are meant, never its target's; the calls go through `/proc/self/fd/N` (no `*xattrat`
/// calls in older kernels), which reaches exactly the handle's inode.
pub fn copy_xattrs(src: BorrowedFd<'_>, dst: BorrowedFd<'_>) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let src_path = format!("/proc/self/fd/{}", src.as_raw_fd());
    let dst_path = format!("/proc/self/fd/{}", dst.as_raw_fd());
    let (sp, dp) = (XattrAt::Path(&src_path), XattrAt::Path(&dst_path));
    let want = xattr_names(sp)?;
    for name in &want {
        let value = xattr_value(sp, name)?;
        let Some(value) = value else { continue };
        if xattr_value(dp, name)?.as_deref() != Some(&value[..]) {
            dp.set(name, &value)?;
        }
    }
    for name in xattr_names(dp)? {
        if !want.contains(&name) {
            match rustix::fs::removexattr(&dst_path, name.as_slice()) {
                Ok(()) | Err(Errno::NODATA) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(())
}

/// Where the attribute calls go: an open descriptor (`f*xattr`: nothing to resolve), or a
/// path (`*xattr`; `/proc/self/fd/N` of an `O_PATH` handle reaches the handle's inode, the
/// only way to one before the `*xattrat` calls of Linux 6.13).
#[derive(Clone, Copy)]
enum XattrAt<'a> {
    Fd(BorrowedFd<'a>),
    Path(&'a str),
}

impl XattrAt<'_> {
    fn list(self, buf: &mut [u8]) -> Result<usize, Errno> {
        match self {
            XattrAt::Fd(fd) => rustix::fs::flistxattr(fd, buf),
            XattrAt::Path(p) => rustix::fs::listxattr(p, buf),
        }
    }

    fn list_size(self) -> Result<usize, Errno> {
        match self {
            XattrAt::Fd(fd) => rustix::fs::flistxattr_query(fd),
            XattrAt::Path(p) => rustix::fs::listxattr_query(p),
        }
    }

    fn get(self, name: &[u8], buf: &mut [u8]) -> Result<usize, Errno> {
        match self {
            XattrAt::Fd(fd) => rustix::fs::fgetxattr(fd, name, buf),
            XattrAt::Path(p) => rustix::fs::getxattr(p, name, buf),
        }
    }

    fn get_size(self, name: &[u8]) -> Result<usize, Errno> {
        match self {
            XattrAt::Fd(fd) => rustix::fs::fgetxattr_query(fd, name),
            XattrAt::Path(p) => rustix::fs::getxattr_query(p, name),
        }
    }

    fn set(self, name: &[u8], value: &[u8]) -> Result<(), Errno> {
        let flags = rustix::fs::XattrFlags::empty();
        match self {
            XattrAt::Fd(fd) => rustix::fs::fsetxattr(fd, name, value, flags),
            XattrAt::Path(p) => rustix::fs::setxattr(p, name, value, flags),
        }
    }
}

/// Attribute lists and values of this size or less (nearly all) are read in one call.
const XATTR_FIRST_TRY: usize = 1024;

fn xattr_names(at: XattrAt<'_>) -> io::Result<Vec<Vec<u8>>> {
    let mut first = [0u8; XATTR_FIRST_TRY];
    match at.list(&mut first[..]) {
        Ok(len) => return Ok(split_names(&first[..len])),
        Err(Errno::NOTSUP) => return Ok(Vec::new()),
        // Longer: its size asked first, as below.
        Err(Errno::RANGE) => {}
        Err(e) => return Err(e.into()),
    }
    loop {
        let n = match at.list_size() {
            Ok(n) => n,
            Err(Errno::NOTSUP) => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        };
        let mut buf = vec![0u8; n];
        match at.list(&mut buf[..]) {
            Ok(len) => return Ok(split_names(&buf[..len])),
            // Grew between the two calls.
            Err(Errno::RANGE) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// The names in a list `listxattr` filled (each ended by a NUL).
fn split_names(list: &[u8]) -> Vec<Vec<u8>> {
    list.split(|&b| b == 0)
        .filter(|n| !n.is_empty())
        .map(<[u8]>::to_vec)
        .collect()
}

fn xattr_value(at: XattrAt<'_>, name: &[u8]) -> io::Result<Option<Vec<u8>>> {
    let mut first = [0u8; XATTR_FIRST_TRY];
    match at.get(name, &mut first[..]) {
        Ok(len) => return Ok(Some(first[..len].to_vec())),
        Err(Errno::NODATA | Errno::NOTSUP) => return Ok(None),
        Err(Errno::RANGE) => {}
        Err(e) => return Err(e.into()),
    }
    loop {
        let n = match at.get_size(name) {
            Ok(n) => n,
            Err(Errno::NODATA | Errno::NOTSUP) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let mut buf = vec![0u8; n];
        match at.get(name, &mut buf[..]) {
            Ok(len) => {
                buf.truncate(len);
                return Ok(Some(buf));
            }
            Err(Errno::RANGE) => continue,
            Err(Errno::NODATA) => return Ok(None),
            Err(e) => return Err(e.into()),
        }
    }
}

/// The path of the open directory `fd` (`/proc/self/fd`), for messages; `None` where it
/// cannot be read.
pub fn dir_path(fd: BorrowedFd<'_>) -> Option<std::path::PathBuf> {
    use std::os::fd::AsRawFd;
    std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd())).ok()
}

/// When process `pid` started: field 22 of `/proc/PID/stat` (clock ticks since boot), read
/// after the command name's closing parenthesis (the name may hold spaces and parentheses).
/// `None` when there is no such process here or its file cannot be read.
pub fn process_start(pid: u32) -> Option<u64> {
    let stat = std::fs::read(format!("/proc/{pid}/stat")).ok()?;
    parse_stat_start(&stat)
}

/// [`process_start`]'s parser: the 20th field after the `)` that ends the command name (the
/// state is the first).
pub(crate) fn parse_stat_start(stat: &[u8]) -> Option<u64> {
    let close = stat.iter().rposition(|&b| b == b')')?;
    let rest = std::str::from_utf8(&stat[close + 1..]).ok()?;
    rest.split_ascii_whitespace().nth(19)?.parse().ok()
}

#[cfg(test)]
mod tests {
    #[test]
    fn mountinfo_escapes_are_undone() {
        assert_eq!(
            super::unescape_mount_field(br"/mnt/a\040b\011c\012d\134e"),
            b"/mnt/a b\tc\nd\\e"
        );
        assert_eq!(super::unescape_mount_field(br"/x\04"), br"/x\04");
        assert_eq!(super::unescape_mount_field(br"/x\999"), br"/x\999");
    }

    #[test]
    fn the_root_is_a_mount_point() {
        let points = super::mount_points().expect("read mountinfo");
        assert!(
            points.iter().any(|p| p == std::path::Path::new("/")),
            "{points:?}"
        );
    }
}
