//! The few things this crate asks of the platform that [`cowtree_fs`] does not give by name:
//! the stat of a path (the worktree's root, a path a user gave), the file number the registry
//! and the stat cache keep, a name's bytes as the OS takes them, and what a stat says of the
//! executable bit. Linux and macOS are one arm (the same calls as ever); Windows the other.

use std::ffi::OsStr;
use std::io;
use std::path::Path;

pub use cowtree_fs::dir::{FileType, Stat};

/// `lstat` of `path`: a final symlink (on Windows, any reparse point) is described itself.
#[cfg(unix)]
pub fn lstat(path: &Path) -> io::Result<Stat> {
    Ok(rustix::fs::lstat(path)?)
}

/// `stat` of `path`, following a final symlink.
#[cfg(unix)]
pub fn stat(path: &Path) -> io::Result<Stat> {
    Ok(rustix::fs::stat(path)?)
}

/// `lstat` of `path` (see the unix one): the entry opened for its attributes alone, shared
/// with every other opener, a final reparse point opened itself.
#[cfg(windows)]
pub fn lstat(path: &Path) -> io::Result<Stat> {
    stat_opened(path, false)
}

/// `stat` of `path`, following a final reparse point.
#[cfg(windows)]
pub fn stat(path: &Path) -> io::Result<Stat> {
    stat_opened(path, true)
}

#[cfg(windows)]
fn stat_opened(path: &Path, follow: bool) -> io::Result<Stat> {
    use std::os::windows::fs::OpenOptionsExt;
    use std::os::windows::io::AsHandle;
    use windows_sys::Win32::Storage::FileSystem::{
        FILE_FLAG_BACKUP_SEMANTICS, FILE_FLAG_OPEN_REPARSE_POINT, FILE_READ_ATTRIBUTES,
        FILE_SHARE_DELETE, FILE_SHARE_READ, FILE_SHARE_WRITE,
    };
    let reparse = if follow {
        0
    } else {
        FILE_FLAG_OPEN_REPARSE_POINT
    };
    let file = std::fs::OpenOptions::new()
        .access_mode(FILE_READ_ATTRIBUTES)
        .share_mode(FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE)
        .custom_flags(FILE_FLAG_BACKUP_SEMANTICS | reparse)
        .open(path)?;
    cowtree_fs::sys::fstat(file.as_handle())
}

/// The file number of `st` as the registry and the stat cache keep it: 64 bits, by the
/// store's rule ([`cowtree_fs::sys::stat_ino64`]: on Windows the 128-bit id folded).
#[inline]
pub fn ino(st: &Stat) -> u64 {
    cowtree_fs::sys::stat_ino64(st)
}

/// A name or relative path of the worktree, as bytes (from a listing, a manifest or the stat
/// cache), as the OS takes it: any bytes on unix.
#[cfg(unix)]
#[inline]
pub fn name(bytes: &[u8]) -> io::Result<&OsStr> {
    use std::os::unix::ffi::OsStrExt;
    Ok(OsStr::from_bytes(bytes))
}

/// A name or relative path of the worktree as the OS takes it: on Windows only UTF-8 (every
/// name Windows lists converts to it but one holding an unpaired surrogate, which NTFS
/// allows), anything else an [`io::ErrorKind::InvalidData`] error naming the bytes.
#[cfg(windows)]
pub fn name(bytes: &[u8]) -> io::Result<&OsStr> {
    std::str::from_utf8(bytes).map(OsStr::new).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "the name {:?} is not Unicode, which Windows names are",
                String::from_utf8_lossy(bytes)
            ),
        )
    })
}

/// What the mode of a regular file says of its executable bit: `Some` on unix; `None` on
/// Windows, which has no such bit (the snapshot's kind is kept, as git does with
/// `core.fileMode` false).
#[cfg(unix)]
#[inline]
pub fn exec_bit(mode: u32) -> Option<bool> {
    Some(mode & 0o111 != 0)
}

/// What the mode of a regular file says of its executable bit: nothing on Windows (see the
/// unix one).
#[cfg(windows)]
pub fn exec_bit(_mode: u32) -> Option<bool> {
    None
}

/// The type a stat cache's or checkout's mode (a unix `st_mode`, which
/// [`cowtree_fs::sys::stat_mode`] makes up on Windows) says.
#[cfg(unix)]
#[inline]
pub fn type_of_mode(mode: u32) -> FileType {
    cowtree_fs::sys::file_type(mode)
}

/// The type a stat cache's or checkout's mode says (see the unix one): a directory, a
/// symlink, else a file, the three kinds [`cowtree_fs::sys::stat_mode`] makes.
#[cfg(windows)]
pub fn type_of_mode(mode: u32) -> FileType {
    use windows_sys::Win32::System::SystemServices::IO_REPARSE_TAG_SYMLINK;
    match mode & 0o170_000 {
        0o040_000 => FileType::Directory,
        0o120_000 => FileType::ReparsePoint(IO_REPARSE_TAG_SYMLINK),
        _ => FileType::RegularFile,
    }
}

/// The name of the filesystem the directory `dir` is on (`xfs`, `ext4`, ...), `unknown` when
/// it cannot be told.
#[cfg(unix)]
pub fn fs_name(dir: &Path) -> &'static str {
    cowtree_fs::dir::Dir::open(dir)
        .and_then(cowtree_fs::fstype::fs_type)
        .map(|t| t.name())
        .unwrap_or("unknown")
}

/// The name of the filesystem the directory `dir` is on, as its volume says it (`NTFS`,
/// `ReFS`, `FAT32`, `exFAT`), `unknown` for any other or when it cannot be told.
#[cfg(windows)]
pub fn fs_name(dir: &Path) -> &'static str {
    let v = cowtree_fs::dir::Dir::open(dir)
        .map(|d| std::fs::File::from(d.into_handle()))
        .and_then(|f| cowtree_fs::sys::volume_of(&f));
    match v.as_ref().map(|v| v.filesystem.as_str()) {
        Ok("NTFS") => "NTFS",
        Ok("ReFS") => "ReFS",
        Ok("FAT32") => "FAT32",
        Ok("exFAT") => "exFAT",
        _ => "unknown",
    }
}

/// True for a fifo, socket or device node (what `snapshot --archive` records as a special
/// file).
#[cfg(unix)]
#[inline]
pub fn is_special(ft: FileType) -> bool {
    matches!(
        ft,
        FileType::Fifo | FileType::Socket | FileType::CharacterDevice | FileType::BlockDevice
    )
}

/// True for a fifo, socket or device node: Windows has none in a directory.
#[cfg(windows)]
pub fn is_special(_ft: FileType) -> bool {
    false
}

/// A listed entry's type, when the listing told it (unix's `d_type` may be unknown; Windows'
/// listings always tell).
#[cfg(unix)]
#[inline]
pub fn listed_type(ft: FileType) -> Option<FileType> {
    (ft != FileType::Unknown).then_some(ft)
}

/// A listed entry's type, when the listing told it (see the unix one).
#[cfg(windows)]
pub fn listed_type(ft: FileType) -> Option<FileType> {
    Some(ft)
}

/// A type for an entry whose stat is yet to tell it (any type but a directory's: the walk
/// stats every entry that is not one).
#[cfg(unix)]
pub const UNKNOWN_TYPE: FileType = FileType::Unknown;

/// A type for an entry whose stat is yet to tell it (see the unix one; Windows' types have no
/// "unknown", and this one is replaced by the stat's).
#[cfg(windows)]
pub const UNKNOWN_TYPE: FileType = FileType::RegularFile;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_stats_as_one_with_its_number_whether_followed_or_not() {
        let t = tempfile::tempdir().expect("tempdir");
        let a = lstat(t.path()).expect("lstat");
        let b = stat(t.path()).expect("stat");
        assert!(cowtree_fs::sys::stat_file_type(&a).is_dir());
        assert_eq!(ino(&a), ino(&b));
        let f = t.path().join("f");
        std::fs::write(&f, b"x").expect("write");
        let s = lstat(&f).expect("lstat file");
        assert!(cowtree_fs::sys::stat_file_type(&s).is_file());
        assert_ne!(ino(&s), ino(&a));
        assert_eq!(
            lstat(&t.path().join("missing"))
                .expect_err("missing")
                .kind(),
            io::ErrorKind::NotFound
        );
    }

    #[test]
    fn modes_give_the_three_kinds() {
        assert!(type_of_mode(0o100_644).is_file());
        assert!(type_of_mode(0o040_755).is_dir());
        assert!(type_of_mode(0o120_777).is_symlink());
    }
}
