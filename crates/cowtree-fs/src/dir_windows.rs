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
//! What is here: open, list and `stat` directories and entries, create files and directories
//! exclusively, remove an entry or a whole tree (never following a reparse point), rename
//! relative to two directory handles (replacing, or not: one call either way), set times,
//! flush a directory or a volume, make and read symlinks relative to the directory. Not here
//! (the unix `Dir` has them): an atomic exchange of two names (Windows has none:
//! [`Dir::rename_exchange`] says so), permission bits, `flock` (a directory cannot be locked;
//! [`Dir::open_dir_exclusive`] opens one for this handle alone, which is how a staging
//! directory's lock is taken). Directory handles are shared
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

use windows_sys::Win32::Foundation::{ERROR_SHARING_VIOLATION, GENERIC_READ, GENERIC_WRITE};
use windows_sys::Win32::Storage::FileSystem::{
    DELETE, FILE_ADD_FILE, FILE_ADD_SUBDIRECTORY, FILE_ATTRIBUTE_DIRECTORY, FILE_ATTRIBUTE_NORMAL,
    FILE_ATTRIBUTE_READONLY, FILE_ATTRIBUTE_REPARSE_POINT, FILE_FLAG_BACKUP_SEMANTICS,
    FILE_LIST_DIRECTORY, FILE_READ_ATTRIBUTES, FILE_SHARE_DELETE, FILE_SHARE_READ,
    FILE_SHARE_WRITE, FILE_TRAVERSE, FILE_WRITE_ATTRIBUTES, SYNCHRONIZE,
};
use windows_sys::Win32::System::SystemServices::IO_REPARSE_TAG_SYMLINK;

use crate::error::{at_path, at_paths};
use crate::name::NameError;
use crate::name::windows::validate_native_component;
use crate::sys::at::{self, Disposition, Expect, NewName};
use crate::sys::reparse::{self, Reparse};
pub use crate::sys::{FileType, Stat, Timespec};

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

/// Opens the entry `name` under the directory `dir` for reading, relative to the directory's
/// handle and never following a reparse point (the reparse point itself is opened: the caller
/// refuses what is not a file); `None` when there is none. `name` is checked first
/// ([`check_name`]). What `transfer_at` and `hash_at` open a source with.
pub(crate) fn open_existing(
    dir: BorrowedHandle<'_>,
    name: &OsStr,
) -> io::Result<Option<OwnedHandle>> {
    check_name(name)?;
    match at::open_at(
        dir,
        &at::wide(name),
        GENERIC_READ,
        Disposition::Open,
        Expect::Any,
    ) {
        Ok(h) => Ok(Some(h)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// The components of the relative path `rel` (`/`-separated, as the walk and the unix side
/// give them, or `\`-separated, as `Path::join` makes them here), each checked with
/// [`check_name`]; an empty or absolute path is refused.
fn components(rel: &Path) -> io::Result<Vec<&OsStr>> {
    let bytes = rel.as_os_str().as_encoded_bytes();
    if bytes.is_empty() {
        return Err(name_err(rel.as_os_str(), NameError::Empty));
    }
    let separator = |b: &u8| *b == b'/' || *b == b'\\';
    if separator(&bytes[0]) {
        return Err(name_err(rel.as_os_str(), NameError::Absolute));
    }
    bytes
        .split(separator)
        .map(|part| {
            // SAFETY: `part` is a piece of an `OsStr`'s encoded bytes cut only at the ASCII
            // bytes `/` and `\`, which is how `from_encoded_bytes_unchecked` allows them to be
            // split.
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

    /// Opens the subdirectory `name` as [`Dir::open_dir`] does, but for this handle alone
    /// (share mode 0) and with the right to delete it: `None` while any other handle that
    /// can list, read, write or delete it is open (`ERROR_SHARING_VIOLATION`), in this
    /// process or another. Windows cannot `flock` a directory; a handle held open on it is
    /// what says it is in use (see [`crate::staging`]), and while the returned one is open
    /// nobody else can open it so.
    pub fn open_dir_exclusive(&self, name: &OsStr) -> io::Result<Option<Dir>> {
        check_name(name)?;
        match at::open_at_shared(
            self.handle.as_handle(),
            &at::wide(name),
            DIR_ACCESS | DELETE,
            0,
            Disposition::Open,
            Expect::Directory,
        ) {
            Ok(handle) => Ok(Some(Dir { handle })),
            Err(e) if e.raw_os_error() == Some(ERROR_SHARING_VIOLATION as i32) => Ok(None),
            Err(e) => Err(at_path("open directory", Path::new(name), e)),
        }
    }

    /// Removes everything beneath this directory ([`Dir::remove_tree`] of each entry) and
    /// then the directory itself, through this handle: it must have been opened with the
    /// right to delete ([`Dir::open_dir_exclusive`]). The directory goes when the handle
    /// closes, here (Windows deletes at the last close; another handle on it delays that).
    pub fn remove_self_tree(mut self) -> io::Result<()> {
        // Listed through this handle: a second open (`Dir::entries`) would be refused while
        // an exclusive handle is open.
        for entry in self.read_entries()? {
            self.remove_tree(&entry.name)?;
        }
        crate::sys::delete_by_handle(&File::from(self.handle))
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

    /// Opens the directory at the relative path `rel` (`/`- or `\`-separated, as
    /// `Path::join` makes one on Windows) beneath this one, one component at a time, refusing
    /// a reparse point in every component; every component is checked before the first open,
    /// so `..`, an absolute path or a name Windows cannot hold never reaches a call.
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

    /// Removes `name` and, if it is a directory, everything beneath it, never following a
    /// reparse point: a symlink or junction anywhere in the tree is removed itself, and what
    /// it points to is left alone. Nothing there is not an error. A read-only file or
    /// directory in the tree has its read-only attribute cleared so that it can go (as the
    /// unix side makes read-only directories writable first).
    ///
    /// Depth first, with only the directories on the current path open (one handle per
    /// level); the names still to visit are kept with their parent.
    pub fn remove_tree(&self, name: &OsStr) -> io::Result<()> {
        check_name(name)?;
        let Some(st) = self.try_stat(name)? else {
            return Ok(());
        };
        if !st.file_type().is_dir() {
            return self
                .remove_forced(name, false)
                .map_err(|e| at_path("remove", Path::new(name), e));
        }
        struct Frame {
            dir: Dir,
            name: OsString,
            pending: Vec<OsString>,
        }
        let open_frame = |parent: &Dir, name: &OsStr| -> io::Result<Option<Frame>> {
            let dir = match parent.open_dir(name) {
                Ok(d) => d,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(e),
            };
            let mut pending = Vec::new();
            for entry in dir.entries()? {
                if entry.file_type.is_dir() {
                    pending.push(entry.name);
                } else {
                    // A file, or a reparse point of any kind (a directory junction or
                    // symlink included): removed itself, never descended.
                    dir.remove_forced(&entry.name, false)
                        .map_err(|e| at_path("remove", Path::new(&entry.name), e))?;
                }
            }
            Ok(Some(Frame {
                dir,
                name: name.to_owned(),
                pending,
            }))
        };
        let mut frames: Vec<Frame> = match open_frame(self, name)? {
            Some(f) => vec![f],
            None => return Ok(()),
        };
        while let Some(top) = frames.last_mut() {
            if let Some(sub) = top.pending.pop() {
                if let Some(f) = open_frame(&top.dir, &sub)? {
                    frames.push(f);
                }
                continue;
            }
            let Some(done) = frames.pop() else { break };
            // Its handle is closed first: a directory goes only once no handle is open on
            // it (Windows' deletion happens at the last close).
            drop(done.dir);
            let parent = frames.last().map_or(self, |f| &f.dir);
            parent
                .remove_forced(&done.name, true)
                .map_err(|e| at_path("remove directory", Path::new(&done.name), e))?;
        }
        Ok(())
    }

    /// Removes `name` (a directory when `directory`, which must be empty), clearing a
    /// read-only attribute that stops it; nothing there is no error.
    fn remove_forced(&self, name: &OsStr, directory: bool) -> io::Result<()> {
        let first = match self.remove(name, directory) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => e,
        };
        if first.kind() != io::ErrorKind::PermissionDenied {
            return Err(first);
        }
        let handle = match at::open_at(
            self.handle.as_handle(),
            &at::wide(name),
            FILE_WRITE_ATTRIBUTES,
            Disposition::Open,
            Expect::Any,
        ) {
            Ok(h) => h,
            Err(_) => return Err(first),
        };
        let (attributes, _) = at::attribute_tag(handle.as_handle())?;
        if attributes & FILE_ATTRIBUTE_READONLY == 0 {
            return Err(first);
        }
        let cleared = attributes & !FILE_ATTRIBUTE_READONLY;
        at::set_attributes(
            handle.as_handle(),
            if cleared == 0 {
                FILE_ATTRIBUTE_NORMAL
            } else {
                cleared
            },
        )?;
        drop(handle);
        match self.remove(name, directory) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            r => r,
        }
    }

    /// Renames `from` in this directory to `to` in `to_dir`, replacing a file or a reparse
    /// point there (the link itself, never what it points to) in the same call. An empty
    /// directory at `to`, which Windows does not replace by rename, is removed first and the
    /// rename then made without replacing: between the two the name is free, and if another
    /// process takes it the rename fails with [`io::ErrorKind::AlreadyExists`] (nothing is
    /// lost). A directory that is not empty is never replaced (an error, as on unix).
    pub fn rename(&self, from: &OsStr, to_dir: &Dir, to: &OsStr) -> io::Result<()> {
        check_name(from)?;
        check_name(to)?;
        let err = match self.rename_raw(from, to_dir, to, true) {
            Ok(()) => return Ok(()),
            Err(e) => e,
        };
        if err.kind() == io::ErrorKind::PermissionDenied
            && let Ok(Some(st)) = to_dir.try_stat(to)
            && st.file_type().is_dir()
            && self.try_stat(from)?.is_some_and(|s| s.file_type().is_dir())
        {
            to_dir
                .remove(to, true)
                .and_then(|()| self.rename_raw(from, to_dir, to, false))
                .map_err(|e| at_paths("rename", Path::new(from), Path::new(to), e))
        } else {
            Err(at_paths("rename", Path::new(from), Path::new(to), err))
        }
    }

    /// Renames `from` to `to`, failing with [`io::ErrorKind::AlreadyExists`] if anything
    /// (a reparse point included) is at `to`: one call, no window between check and rename
    /// (`FileRenameInformation` without `ReplaceIfExists`).
    pub fn rename_noreplace(&self, from: &OsStr, to_dir: &Dir, to: &OsStr) -> io::Result<()> {
        check_name(from)?;
        check_name(to)?;
        self.rename_raw(from, to_dir, to, false)
            .map_err(|e| at_paths("rename", Path::new(from), Path::new(to), e))
    }

    /// An atomic swap of two names, which Windows does not have: always an
    /// [`io::ErrorKind::Unsupported`] error, nothing renamed. Callers use two renames
    /// through a third name where they can accept the window.
    pub fn rename_exchange(&self, from: &OsStr, _to_dir: &Dir, to: &OsStr) -> io::Result<()> {
        check_name(from)?;
        check_name(to)?;
        Err(at_paths(
            "exchange",
            Path::new(from),
            Path::new(to),
            io::Error::new(
                io::ErrorKind::Unsupported,
                "Windows has no atomic exchange of two names",
            ),
        ))
    }

    /// Opens `from` itself (a reparse point is renamed, not followed) and gives it the name
    /// `to` relative to `to_dir`'s handle.
    fn rename_raw(&self, from: &OsStr, to_dir: &Dir, to: &OsStr, replace: bool) -> io::Result<()> {
        let handle = at::open_at(
            self.handle.as_handle(),
            &at::wide(from),
            DELETE,
            Disposition::Open,
            Expect::Any,
        )?;
        at::set_name(
            handle.as_handle(),
            to_dir.handle.as_handle(),
            &at::wide(to),
            replace,
            NewName::Rename,
        )
    }

    /// Sets the last access and last write times of `name` without following a reparse
    /// point (a symlink's own times are set). Times Windows cannot hold (before 1601) are an
    /// [`io::ErrorKind::InvalidInput`] error; finer than 100 ns is dropped.
    pub fn set_times(&self, name: &OsStr, atime: Timespec, mtime: Timespec) -> io::Result<()> {
        check_name(name)?;
        let set = || -> io::Result<()> {
            let (a, m) = (atime.to_filetime()?, mtime.to_filetime()?);
            let handle = at::open_at(
                self.handle.as_handle(),
                &at::wide(name),
                FILE_WRITE_ATTRIBUTES,
                Disposition::Open,
                Expect::Any,
            )?;
            at::set_times(handle.as_handle(), a, m)
        };
        set().map_err(|e| at_path("set times of", Path::new(name), e))
    }

    /// Sets this directory's own last access and last write times (through a new handle on
    /// it that may write attributes).
    pub fn set_own_times(&self, atime: Timespec, mtime: Timespec) -> io::Result<()> {
        let (a, m) = (atime.to_filetime()?, mtime.to_filetime()?);
        let handle = at::open_at(
            self.handle.as_handle(),
            &[],
            FILE_WRITE_ATTRIBUTES,
            Disposition::Open,
            Expect::Directory,
        )?;
        at::set_times(handle.as_handle(), a, m)
    }

    /// Flushes the directory itself (`FlushFileBuffers` on a new handle on it opened to add
    /// entries, which the call needs), so that entries created, renamed or removed in it reach
    /// the device.
    pub fn sync(&self) -> io::Result<()> {
        sync_dir(self.handle.as_handle())
    }

    /// Flushes the whole volume this directory is on (`FlushFileBuffers` on the volume's
    /// handle): every file's data and metadata there reach the device. Windows allows it to
    /// administrators only: for anyone else it is an [`io::ErrorKind::PermissionDenied`]
    /// error (Wine answers `ERROR_INVALID_FUNCTION`: it cannot flush a volume), and a caller that must be durable flushes each file it wrote (`File::sync_all`)
    /// and each directory ([`Dir::sync`]) instead.
    pub fn sync_filesystem(&self) -> io::Result<()> {
        let volume = || -> io::Result<()> {
            let path = at::final_path(self.handle.as_handle())?;
            let mut root = crate::sys::volume_root(&path)?;
            // `\\?\C:\` names the root directory; `\\?\C:` the volume itself.
            if root.last() == Some(&u16::from(b'\\')) {
                root.pop();
            }
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .share_mode(FILE_SHARE_READ | FILE_SHARE_WRITE)
                .open(Path::new(&OsString::from_wide(&root)))?;
            at::flush(file.as_handle())
        };
        // The path named is the volume's, where it could be read.
        volume().map_err(|e| {
            let shown = at::final_path(self.handle.as_handle())
                .and_then(|p| crate::sys::volume_root(&p))
                .map(|r| std::path::PathBuf::from(OsString::from_wide(&r)))
                .unwrap_or_default();
            at_path("flush the volume", &shown, e)
        })
    }

    /// Creates a symlink `name` to `target` (a file symlink; [`Dir::symlink_dir`] makes one
    /// for a directory: unix symlinks have no kind, Windows' do). The entry is created
    /// exclusively relative to this directory (anything at `name` is an
    /// [`io::ErrorKind::AlreadyExists`] error and left as it was) and made a symlink through
    /// its own handle (`FSCTL_SET_REPARSE_POINT`; `CreateSymbolicLinkW` takes a path). If that
    /// fails the new entry is removed through the same handle.
    ///
    /// `target` is kept as given, and is what [`Dir::read_link`] gives back; Windows
    /// resolves it with `/` read as `\`. An absolute target (`C:\x`, `\\server\share\x`) is
    /// stored in its NT form, anything else relative to this directory. Refused
    /// ([`io::ErrorKind::InvalidInput`], before anything is made): an empty target, or one
    /// relative to a drive's current directory (`C:x`) or the current drive's root (`\x`).
    /// Making a symlink needs the privilege to (`SeCreateSymbolicLinkPrivilege`: an
    /// administrator, or a user it was granted to); without it the error is
    /// `ERROR_PRIVILEGE_NOT_HELD`.
    pub fn symlink(&self, target: &OsStr, name: &OsStr) -> io::Result<()> {
        self.make_symlink(target, name, false)
    }

    /// [`Dir::symlink`] for a directory symlink (the entry is a directory reparse point, as
    /// `mklink /D` makes).
    pub fn symlink_dir(&self, target: &OsStr, name: &OsStr) -> io::Result<()> {
        self.make_symlink(target, name, true)
    }

    fn make_symlink(&self, target: &OsStr, name: &OsStr, directory: bool) -> io::Result<()> {
        check_name(name)?;
        let make = || -> io::Result<()> {
            let data = reparse::symlink_data(&at::wide(target))?;
            let access = if directory {
                DIR_ACCESS | FILE_ADD_FILE | FILE_WRITE_ATTRIBUTES | DELETE
            } else {
                GENERIC_READ | GENERIC_WRITE | DELETE
            };
            let handle = at::open_at(
                self.handle.as_handle(),
                &at::wide(name),
                access,
                Disposition::Create,
                if directory {
                    Expect::Directory
                } else {
                    Expect::File
                },
            )?;
            let file = File::from(handle);
            if let Err(e) = crate::sys::set_reparse_point(&file, &data) {
                return Err(match crate::sys::delete_by_handle(&file) {
                    Ok(()) => e,
                    Err(d) => io::Error::new(
                        e.kind(),
                        format!("{e} (and the new entry could not be removed: {d})"),
                    ),
                });
            }
            Ok(())
        };
        make().map_err(|e| at_path("create symlink", Path::new(name), e))
    }

    /// Reads the target of the symlink `name` (file or directory symlink), as it was given
    /// when the link was made (its print name). A junction or any other reparse point, or
    /// an entry that is not one, is an [`io::ErrorKind::InvalidInput`] error.
    pub fn read_link(&self, name: &OsStr) -> io::Result<OsString> {
        check_name(name)?;
        let read = || -> io::Result<OsString> {
            let handle = at::open_at(
                self.handle.as_handle(),
                &at::wide(name),
                0,
                Disposition::Open,
                Expect::Any,
            )?;
            let (attributes, tag) = at::attribute_tag(handle.as_handle())?;
            if attributes & FILE_ATTRIBUTE_REPARSE_POINT == 0 {
                return Err(io::Error::new(io::ErrorKind::InvalidInput, "not a symlink"));
            }
            if tag != IO_REPARSE_TAG_SYMLINK {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("a {}, not a symlink", at::reparse_kind(tag)),
                ));
            }
            let data = crate::sys::reparse_point(&File::from(handle))?;
            match reparse::parse(&data)? {
                Reparse::Symlink { target, .. } => Ok(OsString::from_wide(&target)),
                _ => Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "the reparse data is not a symlink's",
                )),
            }
        };
        read().map_err(|e| at_path("read symlink", Path::new(name), e))
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

/// Flushes the open directory `dir` (`FlushFileBuffers` needs a handle that may add entries:
/// a new one on it is opened for the call); the unix side's `sync_dir`.
pub fn sync_dir(dir: BorrowedHandle<'_>) -> io::Result<()> {
    let writable = at::open_at(
        dir,
        &[],
        FILE_ADD_FILE,
        Disposition::Open,
        Expect::Directory,
    )?;
    at::flush(writable.as_handle())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_relative_path_is_checked_whole_before_any_call() {
        let ok = components(Path::new("a/caf\u{e9}/b")).expect("valid");
        assert_eq!(
            ok,
            [OsStr::new("a"), OsStr::new("caf\u{e9}"), OsStr::new("b")]
        );
        // `\` separates as `/` does (Path::join's separator on Windows).
        assert_eq!(components(Path::new("a\\caf\u{e9}/b")).expect("valid"), ok);
        for bad in [
            "", "/a", "\\a", "a//b", "a\\\\b", "a/../b", "a\\..\\b", "a/CON/b", "a/x./b", "a/b:c",
            "C:\\a", "a/", "a\\",
        ] {
            let e = components(Path::new(bad)).expect_err(bad);
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{bad}");
        }
    }
}
