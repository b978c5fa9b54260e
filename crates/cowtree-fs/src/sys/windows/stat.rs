//! The Windows stat types: what an entry is ([`FileType`]), what a handle says of it
//! ([`Stat`], the fields of unix's `stat` that Windows has) and a time as the unix side takes
//! one ([`Timespec`]). They are to Windows what rustix's `Stat`, `FileType` and `Timespec`
//! are to unix: `dir` re-exports them, and the platform-neutral accessors of `sys`
//! (`stat_ino`, `stat_size`, ...) read them.

use std::io;
use std::os::windows::io::BorrowedHandle;

use windows_sys::Win32::Storage::FileSystem::{
    FILE_ATTRIBUTE_DIRECTORY, FILE_ATTRIBUTE_REPARSE_POINT,
};
use windows_sys::Win32::System::SystemServices::{
    IO_REPARSE_TAG_MOUNT_POINT, IO_REPARSE_TAG_SYMLINK,
};

use super::at;

/// What an entry is, from its attributes (and, for a reparse point, its tag).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileType {
    /// A file (no directory attribute, no reparse point).
    RegularFile,
    /// A directory that is not a reparse point.
    Directory,
    /// A reparse point: a symlink, a junction or another kind (its tag); never descended or
    /// followed. See [`FileType::is_symlink`] and [`FileType::is_junction`].
    ReparsePoint(u32),
}

impl FileType {
    /// The type of an entry with `attributes` and reparse `tag` (ignored unless the attributes
    /// have `FILE_ATTRIBUTE_REPARSE_POINT`).
    pub fn from_attributes(attributes: u32, tag: u32) -> FileType {
        if attributes & FILE_ATTRIBUTE_REPARSE_POINT != 0 {
            FileType::ReparsePoint(tag)
        } else if attributes & FILE_ATTRIBUTE_DIRECTORY != 0 {
            FileType::Directory
        } else {
            FileType::RegularFile
        }
    }

    /// True for a plain directory (not a junction or a directory symlink).
    pub fn is_dir(self) -> bool {
        self == FileType::Directory
    }

    /// True for a file that is not a reparse point.
    pub fn is_file(self) -> bool {
        self == FileType::RegularFile
    }

    /// True for a symlink (`IO_REPARSE_TAG_SYMLINK`), to a file or a directory.
    pub fn is_symlink(self) -> bool {
        self == FileType::ReparsePoint(IO_REPARSE_TAG_SYMLINK)
    }

    /// True for a junction (`IO_REPARSE_TAG_MOUNT_POINT`: a directory junction or a volume
    /// mount point).
    pub fn is_junction(self) -> bool {
        self == FileType::ReparsePoint(IO_REPARSE_TAG_MOUNT_POINT)
    }
}

/// What [`crate::dir::Dir::stat`] says of an entry: the fields of unix's `stat` that Windows has, from
/// the entry's own handle (a reparse point is described itself, never its target).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    /// Size in bytes (0 for a directory).
    pub size: u64,
    /// Bytes the filesystem has allocated for the data (`FileStandardInfo`'s
    /// `AllocationSize`): what `st_blocks * 512` is on unix.
    pub allocated: u64,
    /// `FILE_ATTRIBUTE_*`.
    pub attributes: u32,
    /// The reparse tag, 0 unless [`Stat::attributes`] has `FILE_ATTRIBUTE_REPARSE_POINT`.
    pub reparse_tag: u32,
    /// The volume serial number (`FileIdInfo`'s 64-bit one): what `st_dev` is on unix.
    pub dev: u64,
    /// The file id (`FileIdInfo`, 128 bits: ReFS uses them all; on NTFS it is the 64-bit
    /// file index that [`crate::dir::DirEntry::ino`] gives): with [`Stat::dev`], what `st_ino` is on unix.
    pub ino: u128,
    /// Hard links to the file.
    pub nlink: u32,
    /// Times in 100 ns units since 1601-01-01 UTC (`FILETIME`): creation,
    pub created: i64,
    /// last access,
    pub accessed: i64,
    /// last write of the data,
    pub modified: i64,
    /// and last change of data or metadata (what `st_ctime` is on unix).
    pub changed: i64,
}

impl Stat {
    /// The entry's type.
    pub fn file_type(&self) -> FileType {
        FileType::from_attributes(self.attributes, self.reparse_tag)
    }

    /// True when the entry is a directory, a directory symlink or a junction among them (its
    /// `FILE_ATTRIBUTE_DIRECTORY`): what a copy of a symlink needs to make the same kind.
    pub fn is_directory_entry(&self) -> bool {
        self.attributes & FILE_ATTRIBUTE_DIRECTORY != 0
    }

    /// The last access time as a [`Timespec`].
    pub fn atime(&self) -> Timespec {
        Timespec::from_filetime(self.accessed)
    }

    /// The last write time as a [`Timespec`].
    pub fn mtime(&self) -> Timespec {
        Timespec::from_filetime(self.modified)
    }

    pub(crate) fn of(handle: BorrowedHandle<'_>) -> io::Result<Stat> {
        let raw = at::stat_handle(handle)?;
        let (basic, standard) = (raw.basic, raw.standard);
        Ok(Stat {
            size: u64::try_from(standard.EndOfFile).unwrap_or(0),
            allocated: u64::try_from(standard.AllocationSize).unwrap_or(0),
            attributes: basic.FileAttributes,
            reparse_tag: raw.tag,
            dev: raw.id.VolumeSerialNumber,
            ino: u128::from_le_bytes(raw.id.FileId.Identifier),
            nlink: standard.NumberOfLinks,
            created: basic.CreationTime,
            accessed: basic.LastAccessTime,
            modified: basic.LastWriteTime,
            changed: basic.ChangeTime,
        })
    }
}

/// A point in time as the unix `dir` takes it (`rustix::fs::Timespec`, the same two fields):
/// seconds and nanoseconds since 1970-01-01 UTC. Windows keeps times in 100 ns units since
/// 1601 ([`Stat`]'s fields): [`Timespec::to_filetime`] and [`Timespec::from_filetime`]
/// convert, dropping what is finer than 100 ns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Timespec {
    /// Seconds since 1970-01-01 UTC (negative before).
    pub tv_sec: i64,
    /// Nanoseconds, `0..1_000_000_000`.
    pub tv_nsec: i64,
}

/// 1970-01-01 in `FILETIME` units (100 ns since 1601-01-01).
const UNIX_EPOCH_FILETIME: i64 = 116_444_736_000_000_000;

impl Timespec {
    /// This time in `FILETIME` units. A time before 1601-01-02 or after the year 30827, or
    /// nanoseconds out of range, is an [`io::ErrorKind::InvalidInput`] error (0 and
    /// negative values mean "leave unchanged" and "stop updating" to Windows).
    pub fn to_filetime(self) -> io::Result<i64> {
        let out_of_range = || {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("time {self:?} cannot be set on Windows"),
            )
        };
        if !(0..1_000_000_000).contains(&self.tv_nsec) {
            return Err(out_of_range());
        }
        let ft = self
            .tv_sec
            .checked_mul(10_000_000)
            .and_then(|t| t.checked_add(self.tv_nsec / 100))
            .and_then(|t| t.checked_add(UNIX_EPOCH_FILETIME))
            .ok_or_else(out_of_range)?;
        // Below one day after 1601 is refused: 0 and -1 are instructions, not times.
        if ft < 864_000_000_000 {
            return Err(out_of_range());
        }
        Ok(ft)
    }

    /// The time `ft` (`FILETIME` units, as in [`Stat`]).
    pub fn from_filetime(ft: i64) -> Timespec {
        let since = i128::from(ft) - i128::from(UNIX_EPOCH_FILETIME);
        Timespec {
            tv_sec: since.div_euclid(10_000_000) as i64,
            tv_nsec: (since.rem_euclid(10_000_000) * 100) as i64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_types_come_from_attributes_and_the_reparse_tag() {
        use windows_sys::Win32::Storage::FileSystem::{
            FILE_ATTRIBUTE_ARCHIVE, FILE_ATTRIBUTE_NORMAL,
        };
        let dir = FILE_ATTRIBUTE_DIRECTORY;
        let rp = FILE_ATTRIBUTE_REPARSE_POINT;
        let cases = [
            (FILE_ATTRIBUTE_NORMAL, 0, FileType::RegularFile),
            (FILE_ATTRIBUTE_ARCHIVE, 99, FileType::RegularFile),
            (dir, 0, FileType::Directory),
            (
                dir | rp,
                IO_REPARSE_TAG_MOUNT_POINT,
                FileType::ReparsePoint(IO_REPARSE_TAG_MOUNT_POINT),
            ),
            (
                dir | rp,
                IO_REPARSE_TAG_SYMLINK,
                FileType::ReparsePoint(IO_REPARSE_TAG_SYMLINK),
            ),
            (
                rp,
                IO_REPARSE_TAG_SYMLINK,
                FileType::ReparsePoint(IO_REPARSE_TAG_SYMLINK),
            ),
            (rp, 0x9000_001a, FileType::ReparsePoint(0x9000_001a)),
        ];
        for (attributes, tag, want) in cases {
            let got = FileType::from_attributes(attributes, tag);
            assert_eq!(got, want, "{attributes:#x} {tag:#x}");
            assert_eq!(got.is_dir(), want == FileType::Directory);
        }
        assert!(FileType::ReparsePoint(IO_REPARSE_TAG_SYMLINK).is_symlink());
        assert!(FileType::ReparsePoint(IO_REPARSE_TAG_MOUNT_POINT).is_junction());
        assert!(!FileType::ReparsePoint(IO_REPARSE_TAG_MOUNT_POINT).is_dir());
        assert!(!FileType::Directory.is_junction());
    }

    #[test]
    fn times_convert_to_filetime_and_back_at_100_ns() {
        let cases = [
            (0, 0, UNIX_EPOCH_FILETIME),
            (1, 100, UNIX_EPOCH_FILETIME + 10_000_001),
            (
                1_700_000_000,
                999_999_999,
                UNIX_EPOCH_FILETIME + 17_000_000_009_999_999,
            ),
            (-1, 0, UNIX_EPOCH_FILETIME - 10_000_000),
        ];
        for (sec, nsec, ft) in cases {
            let t = Timespec {
                tv_sec: sec,
                tv_nsec: nsec,
            };
            assert_eq!(t.to_filetime().expect("in range"), ft, "{t:?}");
            let back = Timespec::from_filetime(ft);
            assert_eq!(
                (back.tv_sec, back.tv_nsec),
                (sec, nsec / 100 * 100),
                "{t:?}"
            );
        }
        for bad in [
            (0, -1),
            (0, 1_000_000_000),
            (-11_644_473_600, 0), // 1601-01-01: FILETIME 0 means "unchanged"
            (i64::MAX, 0),
        ] {
            let t = Timespec {
                tv_sec: bad.0,
                tv_nsec: bad.1,
            };
            assert_eq!(
                t.to_filetime().expect_err("out of range").kind(),
                io::ErrorKind::InvalidInput
            );
        }
    }
}
