//! The platform seam: every system call that exists on one platform only is reached through
//! this module, so the rest of cowtree builds for Linux and macOS from the same source, and a
//! subset of cowtree-fs for Windows.
//!
//! | need | Linux (`linux.rs`) | macOS (`macos.rs`) | Windows (`windows.rs`) |
//! |---|---|---|---|
//! | open a path beneath a directory, no symlinks | `openat2(RESOLVE_BENEATH \| RESOLVE_NO_SYMLINKS)` | [`walk_beneath`]: `openat(O_NOFOLLOW)` per component | `NtCreateFile` relative to the directory's handle (`RootDirectory`) per component, with `FILE_OPEN_REPARSE_POINT`, a reparse point where a directory or file is expected refused (`windows/at.rs`); the path-based clone opens its last component with `FILE_FLAG_OPEN_REPARSE_POINT` |
//! | create a file or directory exclusively, relative to a directory | `openat(O_CREAT \| O_EXCL)`, `mkdirat` | the same | `NtCreateFile(FILE_CREATE)` relative to the handle (a directory is created and opened in one call) |
//! | `stat` of a handle | `fstat` | `fstat` | `FileBasicInfo`, `FileStandardInfo`, `FileIdInfo` (volume serial and 128-bit file id as `st_dev`/`st_ino`), `FileAttributeTagInfo` for a reparse point |
//! | clone into a new file | create `O_EXCL`, then `ioctl(FICLONE)` | `fclonefileat(CLONE_NOFOLLOW \| CLONE_NOOWNERCOPY)` | `CREATE_NEW` with `FILE_FLAG_OPEN_REPARSE_POINT`, integrity and sparse matched, size set, then `FSCTL_DUPLICATE_EXTENTS_TO_FILE` per [`crate::block_clone`] range (`reflink/windows.rs`) |
//! | clone between two open files | `ioctl(FICLONE)` | unavailable (`ENOTSUP`) | not built |
//! | unnamed staging file | `O_TMPFILE`, then `linkat(AT_EMPTY_PATH)` | unavailable: callers use a named file and a rename | not built |
//! | in-kernel copy (from the offsets, or at given ones: `copy_file_range_at`) | `copy_file_range` | unavailable (`ENOSYS`): read/write | read/write through the two handles (not `CopyFileExW`, see `reflink/windows.rs`) |
//! | in-kernel copy that never shares extents (`sendfile`, `sendfile_from`) | `sendfile` | unavailable (`ENOSYS`): read/write | the same read/write |
//! | remove a file this call created | `unlinkat` after checking it is still the same inode | the same | `SetFileInformationByHandle(FileDispositionInfo)` on its own handle |
//! | durable `fsync` | `fsync` | `fcntl(F_FULLFSYNC)` (plain `fsync` leaves data in the drive's cache) | `FlushFileBuffers` (a directory through a new handle on it that may add entries) |
//! | commit a whole filesystem | `syncfs` | `sync` then `F_FULLFSYNC` | `FlushFileBuffers` of the volume's handle (administrators only) |
//! | rename, hardlink relative to directories | `renameat2` (`RENAME_NOREPLACE`, `RENAME_EXCHANGE`), `linkat` | `renameatx_np`, `linkat` | `NtSetInformationFile` (`FileRenameInformation`, `FileLinkInformation`) on the entry's own handle with `RootDirectory`; no exchange (`windows/at.rs`) |
//! | make and read a symlink relative to a directory | `symlinkat`, `readlinkat` | the same | create the entry exclusively, then `FSCTL_SET_REPARSE_POINT` on its handle; `FSCTL_GET_REPARSE_POINT` (`windows/reparse.rs`) |
//! | handle for lookups only | `O_PATH` | a read-only open | a directory handle that can list (no cheaper kind) |
//! | read a directory | `getdents64` through the handle's offset | `readdir` on a duplicate | `NtQueryDirectoryFile(FileIdBothDirectoryInformation)` through the handle's own position (restarted), or through a new handle on it (an open of the empty name relative to it) |
//! | filesystem type | `statfs.f_type` (magic) | `statfs.f_fstypename` | `GetVolumeInformationByHandleW` (name, flags, serial); cluster size from `GetDiskFreeSpaceW` or `FSCTL_GET_INTEGRITY_INFORMATION` |
//! | extent maps, dedupe (`cowtree du`, `cowtree dedupe`) | `FIEMAP`, `FIDEDUPERANGE` | unavailable: [`Unavailable`] | not built |
//! | btrfs subvolumes (`btrfs_*`: create, snapshot, read-only flag, delete, id, children and their paths, filesystem UUID) | the btrfs ioctls through `rustix::ioctl` (`linux/btrfs.rs`) | `ENOTSUP` | not built |
//! | copy a directory hierarchy in one call ([`clone_directory`]) | `ENOTSUP` (btrfs does it with a snapshot) | `fclonefileat` of the directory | not built |
//! | owner, mode and attributes of one entry, never following a symlink ([`open_entry`], [`chown_entry`], [`chmod_entry`], `xattr_*`, through an [`EntryFd`]) | an open descriptor: `fchown`, `fchmod`, `f*xattr`; an `O_PATH` handle: `fchownat(AT_EMPTY_PATH)`, the rest through `/proc/self/fd/N` | `ENOTSUP` | `NtCreateFile` relative to the directory, `FILE_OPEN_REPARSE_POINT`, attribute rights only; the kept attributes and times by `FileBasicInfo` (`set_entry_attributes`, `set_entry_times`); owners, mode bits and xattrs: [`Unavailable`] (`windows/entry_meta.rs`) |
//! | a process's start time ([`process_start`]), whether it runs | `/proc/PID/stat` field 22, `kill(pid, 0)` | `proc_pidinfo`, `kill(pid, 0)` | `GetProcessTimes`' creation time; `OpenProcess` and a zero-timeout wait (`windows/process.rs`) |
//! | lock a staging directory | `flock` on its descriptor | the same | its own open handle; taken from a dead run with a share-mode-0 open (`Dir::open_dir_exclusive`, Windows only) |
//! | mount points ([`mount_points`]) | `/proc/self/mountinfo` | unavailable: [`Unavailable`] | not built |
//!
//! Linux is the tested platform. The macOS side is type-checked in CI
//! (`scripts/check-macos.sh`), not run: the walk in [`walk_beneath`] is portable and is
//! tested on Linux too.
//!
//! Windows builds a subset of the crate ("not built" above: every other module built on unix
//! descriptors is `cfg(unix)`): [`crate::reflink::try_reflink`] and
//! [`crate::reflink::clone_or_copy`] by path, [`crate::transfer_at`] and its family relative
//! to directory handles, [`crate::hardlink_at`], [`crate::probe`] per volume pair, the
//! outcome types, [`crate::name::windows`], [`crate::block_clone`], [`crate::dir`] (its own
//! `dir_windows.rs` over `windows/at.rs`), [`crate::atomic_file`], [`crate::undo`],
//! [`crate::walk`] and [`crate::workers`] over it, [`crate::read`], [`crate::process`],
//! [`crate::staging`], [`crate::creation`], [`crate::place`] (`place_windows.rs`), the
//! entry calls above, and the reads of a `Stat` every platform has ([`stat_ino`],
//! [`stat_size`], [`stat_allocated`], [`stat_nlink`], [`stat_file_type`], [`stat_owner`],
//! [`fstat`]; on Windows also `stat_mode`, `stat_times` and `path_id`, a path's volume serial
//! and file id).
//! `scripts/windows.sh` builds it for `x86_64-pc-windows-gnu` and runs its tests under Wine 8,
//! which has no ReFS and makes no reparse points: the copy fallback, the refusals (existing
//! destination, names, a directory as the source), a vanished source, the volume queries,
//! the refused `FSCTL_DUPLICATE_EXTENTS_TO_FILE` and `FSCTL_GET_INTEGRITY_INFORMATION` calls,
//! the walk, relative exclusive creation, listing and `stat` run there; a successful block
//! clone (integrity and sparse matching, the clone calls) is only compiled, and the symlink
//! and junction tests do not run (Wine 8 creates no symlinks and refuses
//! `FSCTL_SET_REPARSE_POINT`).

use std::fmt;
use std::io;
#[cfg(unix)]
use std::os::unix::ffi::OsStrExt;

#[cfg(unix)]
use rustix::fs::{Mode, OFlags, openat};
#[cfg(unix)]
use rustix::io::Errno;

#[cfg(target_os = "linux")]
mod linux;
#[cfg(target_os = "linux")]
pub use linux::*;

#[cfg(target_os = "macos")]
mod macos;
#[cfg(target_os = "macos")]
pub use macos::*;

#[cfg(windows)]
mod windows;
#[cfg(windows)]
pub use windows::*;

#[cfg(not(any(target_os = "linux", target_os = "macos", windows)))]
compile_error!("cowtree-fs supports Linux, macOS and (a subset) Windows (see cowtree_fs::sys)");

/// A descriptor, borrowed or owned, and what lends one, under the same names on every
/// platform: std's unix types on unix, so code written over descriptors (`dir.as_fd()`,
/// `BorrowedFd<'_>`) reads the same on Windows, where they are handles.
#[cfg(unix)]
pub use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

/// A borrowed handle, under the unix name (see [`AsFd`]).
#[cfg(windows)]
pub type BorrowedFd<'a> = std::os::windows::io::BorrowedHandle<'a>;

/// An owned handle, under the unix name (see [`AsFd`]).
#[cfg(windows)]
pub type OwnedFd = std::os::windows::io::OwnedHandle;

/// What lends a handle ([`std::os::windows::io::AsHandle`]) under the unix name and method:
/// `x.as_fd()` is `x.as_handle()`, so code over descriptors builds on Windows unchanged.
#[cfg(windows)]
pub trait AsFd {
    /// The handle, borrowed.
    fn as_fd(&self) -> BorrowedFd<'_>;
}

#[cfg(windows)]
impl<T: std::os::windows::io::AsHandle + ?Sized> AsFd for T {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.as_handle()
    }
}

/// A file's number on its device, as [`stat_ino`] gives it: `st_ino` on unix; on Windows
/// the 128-bit file id (`FileIdInfo`), which ReFS fills in whole.
#[cfg(unix)]
pub type Ino = u64;

/// A file's number on its device, as [`stat_ino`] gives it (see the unix one).
#[cfg(windows)]
pub type Ino = u128;

/// The file number of `st` (with [`stat_dev`], what tells two entries apart).
#[cfg(unix)]
// `ino_t` is `u64` on Linux and macOS; the cast keeps this one line for both.
#[allow(clippy::unnecessary_cast)]
pub fn stat_ino(st: &rustix::fs::Stat) -> Ino {
    st.st_ino as u64
}

/// The file number of `st` (see the unix one).
#[cfg(windows)]
pub fn stat_ino(st: &windows::Stat) -> Ino {
    st.ino
}

/// The file number of `st` in 64 bits, as records keep it (the store's worktree records and
/// staging registrations, the stat cache): [`stat_ino`] itself on unix. One rule, so that
/// every record agrees.
#[cfg(unix)]
#[inline]
pub fn stat_ino64(st: &rustix::fs::Stat) -> u64 {
    stat_ino(st)
}

/// The file number of `st` in 64 bits, as records keep it: Windows' file ids are 128 bits,
/// and the two halves are exclusive-or'ed (NTFS's ids fit in the low 64, so there it is the
/// id itself; ReFS uses all 128).
#[cfg(windows)]
pub fn stat_ino64(st: &windows::Stat) -> u64 {
    let id = stat_ino(st);
    (id as u64) ^ ((id >> 64) as u64)
}

/// The size in bytes of `st`.
#[cfg(unix)]
pub fn stat_size(st: &rustix::fs::Stat) -> u64 {
    st.st_size as u64
}

/// The size in bytes of `st`.
#[cfg(windows)]
pub fn stat_size(st: &windows::Stat) -> u64 {
    st.size
}

/// The bytes allocated for `st`'s data: `st_blocks * 512` (what `du` counts).
#[cfg(unix)]
// `blkcnt_t` is not the same integer type on every unix.
#[allow(clippy::unnecessary_cast)]
pub fn stat_allocated(st: &rustix::fs::Stat) -> u64 {
    st.st_blocks as u64 * 512
}

/// The bytes allocated for `st`'s data (`FileStandardInfo`'s `AllocationSize`).
#[cfg(windows)]
pub fn stat_allocated(st: &windows::Stat) -> u64 {
    st.allocated
}

/// The number of names (hardlinks) of `st`.
#[cfg(unix)]
// `nlink_t` is `u64` on Linux x86_64, narrower elsewhere.
#[allow(clippy::unnecessary_cast)]
pub fn stat_nlink(st: &rustix::fs::Stat) -> u64 {
    st.st_nlink as u64
}

/// The number of names (hardlinks) of `st`.
#[cfg(windows)]
pub fn stat_nlink(st: &windows::Stat) -> u64 {
    u64::from(st.nlink)
}

/// What `st` is, as [`crate::dir::FileType`] (rustix's on unix): test it with `is_file`,
/// `is_dir` and `is_symlink`, which both platforms' types have.
#[cfg(unix)]
pub fn stat_file_type(st: &rustix::fs::Stat) -> rustix::fs::FileType {
    rustix::fs::FileType::from_raw_mode(st.st_mode)
}

/// What `st` is: a file, a directory or a reparse point (a symlink or a junction among them).
#[cfg(windows)]
pub fn stat_file_type(st: &windows::Stat) -> windows::FileType {
    st.file_type()
}

/// What the open file or directory `fd` is (`fstat`; on Windows its attributes, ids and
/// times by handle).
#[cfg(unix)]
pub fn fstat(fd: BorrowedFd<'_>) -> io::Result<rustix::fs::Stat> {
    Ok(rustix::fs::fstat(fd)?)
}

/// What the open file or directory `fd` is (see the unix one).
#[cfg(windows)]
pub fn fstat(fd: BorrowedFd<'_>) -> io::Result<windows::Stat> {
    windows::Stat::of(fd)
}

/// The owner and group of `st`.
#[cfg(unix)]
pub fn stat_owner(st: &rustix::fs::Stat) -> Option<(u32, u32)> {
    Some((st.st_uid, st.st_gid))
}

/// The owner and group of `st`: none on Windows, where an owner is a SID in the security
/// descriptor, not a number in the entry's metadata.
#[cfg(windows)]
pub fn stat_owner(_st: &windows::Stat) -> Option<(u32, u32)> {
    None
}

/// The access and modification times of `st`, as `utimensat` takes them.
#[cfg(unix)]
pub fn stat_times(st: &rustix::fs::Stat) -> (rustix::fs::Timespec, rustix::fs::Timespec) {
    (
        rustix::fs::Timespec {
            tv_sec: st.st_atime as _,
            tv_nsec: st.st_atime_nsec as _,
        },
        rustix::fs::Timespec {
            tv_sec: st.st_mtime as _,
            tv_nsec: st.st_mtime_nsec as _,
        },
    )
}

/// A handle of one entry as the owner, mode and attribute calls take it ([`chown_entry`],
/// [`chmod_entry`], `xattr_*`). Which kind it is decides how each call reaches the entry;
/// both reach exactly the handle's inode, never following a symlink.
#[cfg(unix)]
#[derive(Debug, Clone, Copy)]
pub enum EntryFd<'a> {
    /// An open file or directory (for reading or writing; not `O_PATH`): each call takes the
    /// descriptor itself (`fchmod`, `flistxattr`, `fgetxattr`, `fsetxattr`), with no path to
    /// resolve. A file or directory the caller opened, or made, and still holds.
    Open(BorrowedFd<'a>),
    /// A handle from [`open_entry`] (`O_PATH` on Linux: a symlink, a FIFO or a device node
    /// opened without touching it), which the `f*` calls refuse on Linux: they go through
    /// `/proc/self/fd/N` instead.
    Path(BorrowedFd<'a>),
}

#[cfg(unix)]
impl<'a> EntryFd<'a> {
    /// The descriptor, whichever kind it is.
    pub fn fd(self) -> BorrowedFd<'a> {
        match self {
            EntryFd::Open(fd) | EntryFd::Path(fd) => fd,
        }
    }
}

/// A handle of one entry as the attribute and time calls take it on Windows
/// ([`set_entry_attributes`], [`set_entry_times`]; [`chown_entry`], [`chmod_entry`] and
/// `xattr_*` say they are unavailable). The same two kinds as on unix so that callers name
/// them alike; on Windows every call works through the handle itself either way.
#[cfg(windows)]
#[derive(Debug, Clone, Copy)]
pub enum EntryFd<'a> {
    /// A file or directory the caller opened, or made, and still holds (it needs
    /// `FILE_WRITE_ATTRIBUTES` to be changed).
    Open(std::os::windows::io::BorrowedHandle<'a>),
    /// A handle from [`open_entry`].
    Path(std::os::windows::io::BorrowedHandle<'a>),
}

#[cfg(windows)]
impl<'a> EntryFd<'a> {
    /// The handle, whichever kind it is.
    pub fn fd(self) -> std::os::windows::io::BorrowedHandle<'a> {
        match self {
            EntryFd::Open(h) | EntryFd::Path(h) => h,
        }
    }
}

/// A feature this platform does not have, such as extent maps or deduplication on macOS.
/// Returned inside an [`io::Error`] of kind [`io::ErrorKind::Unsupported`]; find it with
/// [`Unavailable::find`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unavailable {
    /// What is missing, e.g. "FIEMAP extent maps".
    pub feature: &'static str,
}

impl Unavailable {
    /// The error to return for `feature`.
    pub fn error(feature: &'static str) -> io::Error {
        io::Error::new(io::ErrorKind::Unsupported, Unavailable { feature })
    }

    /// The [`Unavailable`] inside `err`, if that is what it is.
    pub fn find(err: &io::Error) -> Option<Unavailable> {
        err.get_ref()?.downcast_ref::<Unavailable>().copied()
    }
}

impl fmt::Display for Unavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} unavailable on this platform ({})",
            self.feature,
            std::env::consts::OS
        )
    }
}

impl std::error::Error for Unavailable {}

/// What [`clone_new`] did.
#[cfg(unix)]
// Linux clones by descriptor only, so it never makes the first two.
#[cfg_attr(target_os = "linux", allow(dead_code))]
pub(crate) enum WholeClone {
    /// The destination was created as a clone of the source; here it is, open for writing.
    Cloned(OwnedFd),
    /// No destination was created: the clone is unsupported or the source vanished.
    Failed(crate::classify::CloneFailure),
    /// This platform clones by descriptor: create the destination, then [`ficlone`] into it.
    ByDescriptor,
}

#[cfg(unix)]
const WALK_DIR: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);

/// Opens the relative path `rel` beneath `dir` one component at a time, each with
/// `openat(O_NOFOLLOW)`: every directory on the way is opened with `O_DIRECTORY` and the last
/// component with `flags | O_NOFOLLOW`. A symlink anywhere fails with `ELOOP` (or `ENOTDIR`),
/// never followed; an empty, absolute, `.` or `..` component is refused with `EINVAL` before
/// any call, so the result is always inside `dir`.
///
/// This is how macOS opens beneath a directory, and Linux's fallback where `openat2` is
/// missing.
#[cfg(unix)]
pub fn walk_beneath(dir: BorrowedFd<'_>, rel: &[u8], flags: OFlags) -> Result<OwnedFd, Errno> {
    let parts = crate::name::validate_relative_path(rel).map_err(|_| Errno::INVAL)?;
    let (last, middle) = parts.split_last().ok_or(Errno::INVAL)?;
    let mut held: Option<OwnedFd> = None;
    for part in middle {
        let at = held.as_ref().map_or(dir, |fd| std::os::fd::AsFd::as_fd(fd));
        let next = openat(
            at,
            std::ffi::OsStr::from_bytes(part),
            WALK_DIR,
            Mode::empty(),
        )?;
        held = Some(next);
    }
    let at = held.as_ref().map_or(dir, |fd| std::os::fd::AsFd::as_fd(fd));
    openat(
        at,
        std::ffi::OsStr::from_bytes(last),
        flags | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    fn tree() -> tempfile::TempDir {
        let t = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(t.path().join("root/a/b")).expect("mkdir");
        std::fs::create_dir_all(t.path().join("outside")).expect("mkdir");
        std::fs::write(t.path().join("root/a/b/file"), b"inside").expect("write");
        std::fs::write(t.path().join("outside/secret"), b"outside").expect("write");
        std::os::unix::fs::symlink("../../outside", t.path().join("root/a/up")).expect("ln");
        std::os::unix::fs::symlink("b", t.path().join("root/a/inner")).expect("ln");
        std::os::unix::fs::symlink("b/file", t.path().join("root/a/filelink")).expect("ln");
        t
    }

    fn root(t: &tempfile::TempDir) -> OwnedFd {
        rustix::fs::open(
            t.path().join("root"),
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .expect("open root")
    }

    fn read(fd: OwnedFd) -> Vec<u8> {
        std::fs::read(format!(
            "/proc/self/fd/{}",
            std::os::fd::AsRawFd::as_raw_fd(&fd)
        ))
        .expect("read through fd")
    }

    #[test]
    fn walk_beneath_opens_a_nested_file_and_directory() {
        let t = tree();
        let r = root(&t);
        let f = walk_beneath(r.as_fd(), b"a/b/file", OFlags::RDONLY).expect("open file");
        assert_eq!(read(f), b"inside");
        let d = walk_beneath(r.as_fd(), b"a/b", WALK_DIR).expect("open dir");
        let st = rustix::fs::fstat(&d).expect("fstat");
        assert_eq!(
            rustix::fs::FileType::from_raw_mode(st.st_mode),
            rustix::fs::FileType::Directory
        );
    }

    #[test]
    fn walk_beneath_refuses_a_symlink_in_the_middle_that_points_outside() {
        let t = tree();
        let r = root(&t);
        let e = walk_beneath(r.as_fd(), b"a/up/secret", OFlags::RDONLY).unwrap_err();
        assert!(matches!(e, Errno::LOOP | Errno::NOTDIR), "{e:?}");
    }

    #[test]
    fn walk_beneath_refuses_a_symlink_in_the_middle_even_when_it_stays_inside() {
        let t = tree();
        let r = root(&t);
        let e = walk_beneath(r.as_fd(), b"a/inner/file", OFlags::RDONLY).unwrap_err();
        assert!(matches!(e, Errno::LOOP | Errno::NOTDIR), "{e:?}");
    }

    #[test]
    fn walk_beneath_refuses_a_symlink_as_the_last_component() {
        let t = tree();
        let r = root(&t);
        let e = walk_beneath(r.as_fd(), b"a/filelink", OFlags::RDONLY).unwrap_err();
        assert_eq!(e, Errno::LOOP);
        let e = walk_beneath(r.as_fd(), b"a/up", WALK_DIR).unwrap_err();
        assert!(matches!(e, Errno::LOOP | Errno::NOTDIR), "{e:?}");
    }

    #[test]
    fn walk_beneath_refuses_dotdot_absolute_and_empty_components_before_any_call() {
        let t = tree();
        let r = root(&t);
        for rel in [
            &b"../outside/secret"[..],
            b"a/../../outside/secret",
            b"a/b/..",
            b"/etc/passwd",
            b"a//b/file",
            b"a/./b/file",
            b"",
            b"a/b/",
        ] {
            assert_eq!(
                walk_beneath(r.as_fd(), rel, OFlags::RDONLY).unwrap_err(),
                Errno::INVAL,
                "{:?}",
                String::from_utf8_lossy(rel)
            );
        }
    }

    #[test]
    fn walk_beneath_reports_a_missing_component_as_enoent() {
        let t = tree();
        let r = root(&t);
        assert_eq!(
            walk_beneath(r.as_fd(), b"a/nope/file", OFlags::RDONLY).unwrap_err(),
            Errno::NOENT
        );
    }

    #[test]
    fn unavailable_is_found_inside_the_io_error_and_names_the_feature() {
        let e = Unavailable::error("FIEMAP extent maps");
        assert_eq!(e.kind(), io::ErrorKind::Unsupported);
        assert_eq!(
            Unavailable::find(&e),
            Some(Unavailable {
                feature: "FIEMAP extent maps"
            })
        );
        assert!(
            e.to_string().contains("FIEMAP extent maps unavailable"),
            "{e}"
        );
        assert_eq!(Unavailable::find(&io::Error::other("x")), None);
    }
}
