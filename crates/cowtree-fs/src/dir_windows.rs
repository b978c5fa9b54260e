//! Directory handles for destination-side work on Windows: the same [`Dir`] as on unix (see
//! `dir.rs`), every operation relative to an open directory handle and never following a
//! reparse point in the names it is given.
//!
//! Destination contents are untrusted: another process may have planted a symlink or a
//! junction where a directory is expected, or swap one in while cowtree runs. Each name is
//! opened with `NtCreateFile` relative to the directory's handle (`RootDirectory`) with
//! `FILE_OPEN_REPARSE_POINT`, so the reparse point itself is what gets opened; an open that
//! expects a directory or a file then refuses it (`crate::sys` `at.rs`). A path beneath a
//! directory is opened one component at a time the same way: Windows has no `openat2`, and a
//! per-component walk needs no `\\?\` prefix however long the path is.
//!
//! Names are checked with [`crate::name::windows::validate_native_component`] (every
//! platform's rules, Windows' device names, characters and trailing dots, and Windows' length
//! limit in UTF-16 code units) before any call sees them.
//!
//! What is here and what is not yet (the unix `Dir` has more): open, list and `stat`
//! directories and entries, create files and directories exclusively, remove an entry. Not
//! yet: rename, symlinks, times, permission bits, `fsync`, locks. Directory handles are shared
//! for reading, writing and deletion, as unix descriptors are: a directory held open can still
//! be renamed or removed by others, and the handle keeps reaching it (or fails) rather than
//! resolving its old path again.

use std::ffi::{OsStr, OsString};
use std::fs::{File, OpenOptions};
use std::io;
use std::os::windows::ffi::{OsStrExt, OsStringExt};
use std::os::windows::fs::OpenOptionsExt;
use std::os::windows::io::{AsHandle, BorrowedHandle, OwnedHandle};
use std::path::Path;

use windows_sys::Win32::Foundation::{GENERIC_READ, GENERIC_WRITE};
use windows_sys::Win32::Storage::FileSystem::{
    DELETE, FILE_ADD_FILE, FILE_ADD_SUBDIRECTORY, FILE_ATTRIBUTE_DIRECTORY,
    FILE_ATTRIBUTE_REPARSE_POINT, FILE_FLAG_BACKUP_SEMANTICS, FILE_LIST_DIRECTORY,
    FILE_READ_ATTRIBUTES, FILE_SHARE_DELETE, FILE_SHARE_READ, FILE_SHARE_WRITE, FILE_TRAVERSE,
    FILE_WRITE_ATTRIBUTES, SYNCHRONIZE,
};
use windows_sys::Win32::System::SystemServices::{
    IO_REPARSE_TAG_MOUNT_POINT, IO_REPARSE_TAG_SYMLINK,
};

use crate::error::at_path;
use crate::name::NameError;
use crate::name::windows::validate_native_component;
use crate::sys::at::{self, Disposition, Expect};

/// What a directory handle is opened with: enough to list it, open and create entries
/// relative to it and read its attributes; nothing that writes to the directory's own data.
/// (A relative open needs no particular right on the directory it is relative to; these are
/// for listing and `stat`.)
const DIR_ACCESS: u32 = FILE_LIST_DIRECTORY | FILE_TRAVERSE | FILE_READ_ATTRIBUTES | SYNCHRONIZE;

/// An open directory; the handle every destination-side operation goes through.
#[derive(Debug)]
pub struct Dir {
    handle: OwnedHandle,
}

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

/// One entry read from a directory.
#[derive(Debug, Clone)]
pub struct DirEntry {
    /// The entry's name (never `.` or `..`).
    pub name: OsString,
    /// The type from the listing's attributes and reparse tag (no extra call).
    pub file_type: FileType,
    /// The 64-bit file id from the listing (`FileId`): [`Stat::ino`] on NTFS; on ReFS, whose
    /// ids are 128 bits, not unique (compare [`Stat::ino`] there); 0 where the filesystem has
    /// none (FAT).
    pub ino: u64,
    /// The entry's attributes (`FILE_ATTRIBUTE_*`) from the listing.
    pub attributes: u32,
}

/// What [`Dir::stat`] says of an entry: the fields of unix's `stat` that Windows has, from
/// the entry's own handle (a reparse point is described itself, never its target).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    /// Size in bytes (0 for a directory).
    pub size: u64,
    /// `FILE_ATTRIBUTE_*`.
    pub attributes: u32,
    /// The reparse tag, 0 unless [`Stat::attributes`] has `FILE_ATTRIBUTE_REPARSE_POINT`.
    pub reparse_tag: u32,
    /// The volume serial number (`FileIdInfo`'s 64-bit one): what `st_dev` is on unix.
    pub dev: u64,
    /// The file id (`FileIdInfo`, 128 bits: ReFS uses them all; on NTFS it is the 64-bit
    /// file index that [`DirEntry::ino`] gives): with [`Stat::dev`], what `st_ino` is on unix.
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

    fn of(handle: BorrowedHandle<'_>) -> io::Result<Stat> {
        let raw = at::stat_handle(handle)?;
        let (basic, standard) = (raw.basic, raw.standard);
        Ok(Stat {
            size: u64::try_from(standard.EndOfFile).unwrap_or(0),
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

fn name_err(name: &OsStr, e: NameError) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("invalid name {:?}: {e}", Path::new(name)),
    )
}

/// Refuses a name that is not a single valid component that Windows can hold.
pub fn check_name(name: &OsStr) -> io::Result<()> {
    validate_native_component(name.as_encoded_bytes()).map_err(|e| name_err(name, e))
}

/// The components of the relative path `rel` (`/`-separated, as the walk and the unix side
/// give them), each checked with [`check_name`]; an empty or absolute path is refused.
fn components(rel: &Path) -> io::Result<Vec<&OsStr>> {
    let bytes = rel.as_os_str().as_encoded_bytes();
    if bytes.is_empty() {
        return Err(name_err(rel.as_os_str(), NameError::Empty));
    }
    if bytes[0] == b'/' {
        return Err(name_err(rel.as_os_str(), NameError::Absolute));
    }
    bytes
        .split(|&b| b == b'/')
        .map(|part| {
            // SAFETY: `part` is a piece of an `OsStr`'s encoded bytes cut only at the ASCII
            // byte `/`, which is how `from_encoded_bytes_unchecked` allows them to be split.
            let part = unsafe { OsStr::from_encoded_bytes_unchecked(part) };
            check_name(part).map(|()| part)
        })
        .collect()
}

impl Dir {
    /// Opens the directory at `path`, following reparse points in `path` itself (the root the
    /// user named is trusted, as on unix); everything under it is reached without following.
    /// The path is made absolute and opened in its `\\?\` form, so its length is not limited
    /// to `MAX_PATH`.
    pub fn open(path: &Path) -> io::Result<Dir> {
        let open = || -> io::Result<Dir> {
            let abs = std::path::absolute(path)?;
            let wide: Vec<u16> = abs.as_os_str().encode_wide().collect();
            let verbatim = OsString::from_wide(&at::verbatim(&wide));
            let file = OpenOptions::new()
                .read(true)
                .access_mode(DIR_ACCESS)
                .share_mode(FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE)
                .custom_flags(FILE_FLAG_BACKUP_SEMANTICS)
                .open(Path::new(&verbatim))?;
            let handle = OwnedHandle::from(file);
            let (attributes, _) = at::attribute_tag(handle.as_handle())?;
            if attributes & FILE_ATTRIBUTE_DIRECTORY == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::NotADirectory,
                    "not a directory",
                ));
            }
            Ok(Dir { handle })
        };
        open().map_err(|e| at_path("open directory", path, e))
    }

    /// Wraps an open directory handle.
    pub fn from_handle(handle: OwnedHandle) -> Dir {
        Dir { handle }
    }

    /// The open directory handle.
    pub fn into_handle(self) -> OwnedHandle {
        self.handle
    }

    /// Another handle to the same directory (`DuplicateHandle`: it shares this one's listing
    /// position; [`Dir::reopen`] makes one with its own).
    pub fn try_clone(&self) -> io::Result<Dir> {
        Ok(Dir {
            handle: self.handle.try_clone()?,
        })
    }

    /// Opens the subdirectory `name`. A reparse point (symlink, junction) or anything not a
    /// directory there is an error, never followed.
    pub fn open_dir(&self, name: &OsStr) -> io::Result<Dir> {
        check_name(name)?;
        at::open_at(
            self.handle.as_handle(),
            &at::wide(name),
            DIR_ACCESS,
            Disposition::Open,
            Expect::Directory,
        )
        .map(|handle| Dir { handle })
        .map_err(|e| at_path("open directory", Path::new(name), e))
    }

    /// [`Dir::open_dir`]: Windows has no cheaper lookup-only handle (unix's `O_PATH`).
    pub fn open_dir_path(&self, name: &OsStr) -> io::Result<Dir> {
        self.open_dir(name)
    }

    /// A new handle on this same directory, with a listing position of its own (an open of
    /// the empty name relative to this handle, as `ReOpenFile` does).
    pub fn reopen(&self) -> io::Result<Dir> {
        at::open_at(
            self.handle.as_handle(),
            &[],
            DIR_ACCESS,
            Disposition::Open,
            Expect::Directory,
        )
        .map(|handle| Dir { handle })
    }

    /// Opens the directory at the relative path `rel` (`/`-separated) beneath this one, one
    /// component at a time, refusing a reparse point in every component; every component is
    /// checked before the first open, so `..`, an absolute path or a name Windows cannot hold
    /// never reaches a call.
    pub fn open_dir_beneath(&self, rel: &Path) -> io::Result<Dir> {
        let parts = components(rel)?;
        let open = || -> io::Result<Dir> {
            let mut dir: Option<Dir> = None;
            for part in parts {
                let at = dir.as_ref().unwrap_or(self);
                let next = at::open_at(
                    at.handle.as_handle(),
                    &at::wide(part),
                    DIR_ACCESS,
                    Disposition::Open,
                    Expect::Directory,
                )?;
                dir = Some(Dir { handle: next });
            }
            dir.ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "empty path"))
        };
        open().map_err(|e| at_path("open directory", rel, e))
    }

    /// [`Dir::open_dir_beneath`], which has no length limit on Windows (one component per
    /// call).
    pub fn open_dir_deep(&self, rel: &Path) -> io::Result<Dir> {
        self.open_dir_beneath(rel)
    }

    /// Opens the file `name` for reading. A reparse point or a directory there is an error.
    pub fn open_file(&self, name: &OsStr) -> io::Result<File> {
        check_name(name)?;
        at::open_at(
            self.handle.as_handle(),
            &at::wide(name),
            GENERIC_READ,
            Disposition::Open,
            Expect::File,
        )
        .map(File::from)
        .map_err(|e| at_path("open", Path::new(name), e))
    }

    /// Creates the new file `name` (`FILE_CREATE`: anything already there, a reparse point
    /// included, makes it fail with [`io::ErrorKind::AlreadyExists`] and is left untouched),
    /// open for reading, writing and deletion.
    pub fn create_file(&self, name: &OsStr) -> io::Result<File> {
        check_name(name)?;
        at::open_at(
            self.handle.as_handle(),
            &at::wide(name),
            GENERIC_READ | GENERIC_WRITE | DELETE,
            Disposition::Create,
            Expect::File,
        )
        .map(File::from)
        .map_err(|e| at_path("create", Path::new(name), e))
    }

    /// Creates the subdirectory `name`, failing if anything exists there. `mode` is the unix
    /// side's permission bits and is ignored: a new directory inherits its parent's ACL.
    pub fn create_dir(&self, name: &OsStr, mode: u32) -> io::Result<()> {
        self.create_dir_open(name, mode).map(drop)
    }

    /// Creates the subdirectory `name` and opens it, in one call (`FILE_CREATE` with
    /// `FILE_DIRECTORY_FILE`: the handle is on the directory this call made, whatever
    /// happens to the name afterwards). `mode` is ignored, as in [`Dir::create_dir`].
    pub fn create_dir_open(&self, name: &OsStr, _mode: u32) -> io::Result<Dir> {
        check_name(name)?;
        at::open_at(
            self.handle.as_handle(),
            &at::wide(name),
            DIR_ACCESS | FILE_ADD_FILE | FILE_ADD_SUBDIRECTORY | FILE_WRITE_ATTRIBUTES,
            Disposition::Create,
            Expect::Directory,
        )
        .map(|handle| Dir { handle })
        .map_err(|e| at_path("create directory", Path::new(name), e))
    }

    /// What `name` is, never following a reparse point (the reparse point itself is
    /// described, like unix's `lstat`).
    pub fn stat(&self, name: &OsStr) -> io::Result<Stat> {
        check_name(name)?;
        self.stat_name(name)
            .map_err(|e| at_path("stat", Path::new(name), e))
    }

    /// [`Dir::stat`], with `None` when nothing is there.
    pub fn try_stat(&self, name: &OsStr) -> io::Result<Option<Stat>> {
        check_name(name)?;
        match self.stat_name(name) {
            Ok(st) => Ok(Some(st)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(at_path("stat", Path::new(name), e)),
        }
    }

    fn stat_name(&self, name: &OsStr) -> io::Result<Stat> {
        let handle = at::open_at(
            self.handle.as_handle(),
            &at::wide(name),
            0,
            Disposition::Open,
            Expect::Any,
        )?;
        Stat::of(handle.as_handle())
    }

    /// What this directory is.
    pub fn stat_self(&self) -> io::Result<Stat> {
        Stat::of(self.handle.as_handle())
    }

    /// Removes the non-directory `name` (a reparse point, a directory symlink or junction
    /// included, is removed itself, not followed). The entry is opened, checked and then
    /// marked for deletion through that handle, so what is removed is what was checked.
    pub fn remove_file(&self, name: &OsStr) -> io::Result<()> {
        check_name(name)?;
        self.remove(name, false)
            .map_err(|e| at_path("remove", Path::new(name), e))
    }

    /// Removes the empty directory `name` (a junction or directory symlink there is an error:
    /// [`Dir::remove_file`] removes those).
    pub fn remove_dir(&self, name: &OsStr) -> io::Result<()> {
        check_name(name)?;
        self.remove(name, true)
            .map_err(|e| at_path("remove directory", Path::new(name), e))
    }

    fn remove(&self, name: &OsStr, directory: bool) -> io::Result<()> {
        let handle = at::open_at(
            self.handle.as_handle(),
            &at::wide(name),
            DELETE,
            Disposition::Open,
            if directory {
                Expect::Directory
            } else {
                Expect::Any
            },
        )?;
        if !directory {
            let (attributes, _) = at::attribute_tag(handle.as_handle())?;
            if at::is_plain_directory(attributes) {
                return Err(io::Error::new(
                    io::ErrorKind::IsADirectory,
                    "is a directory",
                ));
            }
        }
        crate::sys::delete_by_handle(&File::from(handle))
    }

    /// All entries except `.` and `..`, in the order the filesystem returns them, read
    /// through a new handle on this directory ([`Dir::reopen`]), so that several threads may
    /// list one [`Dir`] at once.
    pub fn entries(&self) -> io::Result<Vec<DirEntry>> {
        self.reopen()?.read_entries()
    }

    /// The same as [`Dir::entries`], read through this handle's own listing position
    /// (restarted first), with no second open. It takes `&mut self` because the position is
    /// state: nothing else may list this handle, or a [`Dir::try_clone`] of it, meanwhile.
    pub fn read_entries(&mut self) -> io::Result<Vec<DirEntry>> {
        let mut out = Vec::new();
        at::list(self.handle.as_handle(), true, |r| {
            out.push(DirEntry {
                name: OsString::from_wide(r.name),
                file_type: FileType::from_attributes(r.attributes, r.tag),
                ino: r.file_id,
                attributes: r.attributes,
            })
        })?;
        Ok(out)
    }
}

impl AsHandle for Dir {
    fn as_handle(&self) -> BorrowedHandle<'_> {
        self.handle.as_handle()
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
    fn a_relative_path_is_checked_whole_before_any_call() {
        let ok = components(Path::new("a/caf\u{e9}/b")).expect("valid");
        assert_eq!(
            ok,
            [OsStr::new("a"), OsStr::new("caf\u{e9}"), OsStr::new("b")]
        );
        for bad in [
            "", "/a", "a//b", "a/../b", "a/CON/b", "a/x./b", "a/b:c", "a\\b", "a/",
        ] {
            let e = components(Path::new(bad)).expect_err(bad);
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{bad}");
        }
    }
}
