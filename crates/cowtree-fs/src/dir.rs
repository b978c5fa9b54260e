//! Directory handles for destination-side work: every operation is relative to an open
//! directory and never follows a symlink in the names it is given.
//!
//! Destination contents are untrusted: another process may have planted a symlink where a
//! directory is expected, or may swap one in while cowtree runs. Opening through a [`Dir`] with
//! `O_NOFOLLOW|O_DIRECTORY` (and `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)` for multi-component
//! paths, with a component-by-component walk where the kernel lacks it and on macOS: see
//! [`crate::sys`]) means such a plant makes the operation fail instead of writing somewhere else.

use std::ffi::{OsStr, OsString};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use rustix::fs::{
    AtFlags, Mode, OFlags, RenameFlags, Timestamps, fchmod, mkdirat, openat, readlinkat,
    renameat_with, statat, symlinkat, unlinkat, utimensat,
};
use rustix::io::Errno;

use crate::error::at_path;
use crate::name::{NameError, PATH_MAX, check_relative_path, validate_component};

/// The time [`Dir::set_times`] takes (rustix's); Windows' `dir` has one with the same fields.
pub use rustix::fs::Timespec;
/// What [`Dir::stat`] gives and what an entry is (rustix's): Windows' `dir` has its own, with
/// `is_file`, `is_dir` and `is_symlink` as here; read a `Stat` through the `stat_*` calls of
/// [`crate::sys`] to build on both.
pub use rustix::fs::{FileType, Stat};

/// An open directory; the handle every destination-side operation goes through.
#[derive(Debug)]
pub struct Dir {
    fd: OwnedFd,
}

/// One entry read from a directory.
#[derive(Debug, Clone)]
pub struct DirEntry {
    /// The entry's name (raw bytes, never `.` or `..`).
    pub name: OsString,
    /// The type from `d_type`; `Unknown` on filesystems that do not fill it in.
    pub file_type: FileType,
    /// The inode number from `d_ino`.
    pub ino: u64,
}

impl DirEntry {
    /// The entry for a raw directory record; `None` for `.` and `..`.
    pub(crate) fn from_raw(name: &[u8], file_type: FileType, ino: u64) -> Option<DirEntry> {
        (name != b"." && name != b"..").then(|| DirEntry {
            name: OsStr::from_bytes(name).to_owned(),
            file_type,
            ino,
        })
    }
}

/// The entries of the directory `fd` except `.` and `..` (`readdir` on a duplicate of `fd`,
/// rewound first).
pub(crate) fn entries_of(fd: BorrowedFd<'_>) -> io::Result<Vec<DirEntry>> {
    let mut out = Vec::new();
    let mut dir = rustix::fs::Dir::read_from(fd)?;
    dir.rewind();
    for entry in dir {
        let entry = entry?;
        out.extend(DirEntry::from_raw(
            entry.file_name().to_bytes(),
            entry.file_type(),
            entry.ino(),
        ));
    }
    Ok(out)
}

fn name_err(name: &OsStr, e: NameError) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("invalid name {:?}: {e}", Path::new(name)),
    )
}

/// Refuses a name that is not a single valid component.
pub fn check_name(name: &OsStr) -> io::Result<()> {
    validate_component(name.as_bytes()).map_err(|e| name_err(name, e))
}

const DIR_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);

impl Dir {
    /// Opens the directory at `path`, following symlinks in `path` itself (the root the user
    /// named is trusted); everything under it is reached without following.
    pub fn open(path: &Path) -> io::Result<Dir> {
        let fd = rustix::fs::open(
            path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| at_path("open directory", path, e.into()))?;
        Ok(Dir { fd })
    }

    /// Wraps an open directory fd.
    pub fn from_fd(fd: OwnedFd) -> Dir {
        Dir { fd }
    }

    /// The open directory fd, for callers that read it with other tools (e.g.
    /// `rustix::fs::Dir::new`, which then needs no second open).
    pub fn into_fd(self) -> OwnedFd {
        self.fd
    }

    /// Tries to take an exclusive `flock` on this directory without waiting: `Ok(true)` when
    /// taken (it is held until every handle to this open directory is closed), `Ok(false)` when
    /// another open file description holds it.
    pub fn try_lock_exclusive(&self) -> io::Result<bool> {
        match rustix::fs::flock(
            &self.fd,
            rustix::fs::FlockOperation::NonBlockingLockExclusive,
        ) {
            Ok(()) => Ok(true),
            Err(Errno::WOULDBLOCK) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// `fsync`s the directory itself, so that entries created, renamed or removed in it
    /// survive a power loss (a rename is durable only once its directory is synced).
    pub fn sync(&self) -> io::Result<()> {
        sync_dir(self.fd.as_fd())
    }

    /// `syncfs` of the whole filesystem this directory is on: every file's data and every
    /// metadata change on it reach stable storage. On btrfs an `fsync` commits only the file
    /// it is given (through its log tree); this is the one call that commits everything else
    /// that was written there (clones, links, directories) in one transaction. macOS has no
    /// `syncfs`: `sync` and then `F_FULLFSYNC` on this directory (see [`crate::sys`]).
    pub fn sync_filesystem(&self) -> io::Result<()> {
        loop {
            match crate::sys::sync_filesystem(self.fd.as_fd()) {
                Err(Errno::INTR) => continue,
                r => return r.map_err(io::Error::from),
            }
        }
    }

    /// Another handle to the same directory.
    pub fn try_clone(&self) -> io::Result<Dir> {
        Ok(Dir {
            fd: self.fd.try_clone()?,
        })
    }

    /// Opens the subdirectory `name`. A symlink (or anything not a directory) there is an
    /// error, never followed.
    pub fn open_dir(&self, name: &OsStr) -> io::Result<Dir> {
        self.open_sub(name, DIR_FLAGS)
    }

    /// [`Dir::open_dir`] as an `O_PATH` handle: enough to look entries up, `stat` them and
    /// open them (relative to it), and to `stat` the directory itself, at less cost; not to
    /// list it (see [`Dir::reopen`]). macOS has no `O_PATH`: there it is a plain open.
    pub fn open_dir_path(&self, name: &OsStr) -> io::Result<Dir> {
        self.open_sub(name, DIR_FLAGS | crate::sys::PATH_ONLY)
    }

    fn open_sub(&self, name: &OsStr, flags: OFlags) -> io::Result<Dir> {
        check_name(name)?;
        let fd = openat(&self.fd, name, flags, Mode::empty())
            .map_err(|e| at_path("open directory", Path::new(name), nofollow_err(e)))?;
        Ok(Dir { fd })
    }

    /// A new handle on this same directory (its `.`) that can list it: for one opened with
    /// [`Dir::open_dir_path`].
    pub fn reopen(&self) -> io::Result<Dir> {
        let fd = openat(&self.fd, ".", DIR_FLAGS, Mode::empty())?;
        Ok(Dir { fd })
    }

    /// Opens the directory at the relative path `rel` beneath this one, refusing symlinks in
    /// every component and any path that would leave this directory. Uses `openat2` with
    /// `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS`; where the kernel lacks
    /// `openat2` (and on macOS), walks component by component with `O_NOFOLLOW`.
    pub fn open_dir_beneath(&self, rel: &Path) -> io::Result<Dir> {
        let bytes = rel.as_os_str().as_bytes();
        check_relative_path(bytes).map_err(|e| name_err(rel.as_os_str(), e))?;
        let fd = match crate::sys::open_beneath(self.fd.as_fd(), rel, DIR_FLAGS) {
            Err(Errno::NOSYS) => crate::sys::walk_beneath(self.fd.as_fd(), bytes, DIR_FLAGS),
            r => r,
        };
        match fd {
            Ok(fd) => Ok(Dir { fd }),
            Err(e) => Err(at_path("open directory", rel, nofollow_err(e))),
        }
    }

    /// Like [`Dir::open_dir_beneath`] for a relative path of any length: every component is
    /// validated, and a path too long for one system call (PATH_MAX) is opened in pieces,
    /// each beneath the directory the previous piece opened, so a tree deeper than PATH_MAX
    /// can still be walked without following a symlink anywhere.
    pub fn open_dir_deep(&self, rel: &Path) -> io::Result<Dir> {
        let bytes = rel.as_os_str().as_bytes();
        if bytes.len() < PATH_MAX {
            return self.open_dir_beneath(rel);
        }
        if bytes.first() == Some(&b'/') {
            return Err(name_err(rel.as_os_str(), NameError::Absolute));
        }
        let parts: Vec<&[u8]> = bytes.split(|&b| b == b'/').collect();
        for part in &parts {
            validate_component(part).map_err(|e| name_err(rel.as_os_str(), e))?;
        }
        let mut dir = self.try_clone()?;
        let mut piece: Vec<u8> = Vec::with_capacity(PATH_MAX);
        for part in parts {
            if !piece.is_empty() && piece.len() + 1 + part.len() >= PATH_MAX {
                dir = dir.open_dir_beneath(Path::new(OsStr::from_bytes(&piece)))?;
                piece.clear();
            }
            if !piece.is_empty() {
                piece.push(b'/');
            }
            piece.extend_from_slice(part);
        }
        dir.open_dir_beneath(Path::new(OsStr::from_bytes(&piece)))
    }

    /// Creates the subdirectory `name` with `mode` (before umask), failing if anything exists
    /// there.
    pub fn create_dir(&self, name: &OsStr, mode: u32) -> io::Result<()> {
        check_name(name)?;
        mkdirat(&self.fd, name, crate::sys::mode(mode))
            .map_err(|e| at_path("create directory", Path::new(name), e.into()))
    }

    /// Creates the subdirectory `name` and opens it.
    pub fn create_dir_open(&self, name: &OsStr, mode: u32) -> io::Result<Dir> {
        self.create_dir(name, mode)?;
        self.open_dir(name)
    }

    /// Creates a symlink `name` whose target is the exact bytes `target`.
    pub fn symlink(&self, target: &OsStr, name: &OsStr) -> io::Result<()> {
        check_name(name)?;
        symlinkat(target, &self.fd, name)
            .map_err(|e| at_path("create symlink", Path::new(name), e.into()))
    }

    /// Reads the target of the symlink `name`.
    pub fn read_link(&self, name: &OsStr) -> io::Result<OsString> {
        check_name(name)?;
        let target = readlinkat(&self.fd, name, Vec::new())
            .map_err(|e| at_path("read symlink", Path::new(name), e.into()))?;
        Ok(OsString::from_vec_compat(target.into_bytes()))
    }

    /// `lstat` of `name`.
    pub fn stat(&self, name: &OsStr) -> io::Result<Stat> {
        check_name(name)?;
        statat(&self.fd, name, AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|e| at_path("stat", Path::new(name), e.into()))
    }

    /// `lstat` of `name`, with `None` when nothing is there.
    pub fn try_stat(&self, name: &OsStr) -> io::Result<Option<Stat>> {
        check_name(name)?;
        match statat(&self.fd, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => Ok(Some(st)),
            Err(Errno::NOENT) => Ok(None),
            Err(e) => Err(at_path("stat", Path::new(name), e.into())),
        }
    }

    /// `fstat` of this directory.
    pub fn stat_self(&self) -> io::Result<Stat> {
        Ok(rustix::fs::fstat(&self.fd)?)
    }

    /// Removes the non-directory `name` (a symlink is removed, not followed).
    pub fn remove_file(&self, name: &OsStr) -> io::Result<()> {
        check_name(name)?;
        unlinkat(&self.fd, name, AtFlags::empty())
            .map_err(|e| at_path("remove", Path::new(name), e.into()))
    }

    /// Removes the empty directory `name`.
    pub fn remove_dir(&self, name: &OsStr) -> io::Result<()> {
        check_name(name)?;
        unlinkat(&self.fd, name, AtFlags::REMOVEDIR)
            .map_err(|e| at_path("remove directory", Path::new(name), e.into()))
    }

    /// Removes `name` and, if it is a directory, everything beneath it, never following a
    /// symlink. Nothing there is not an error.
    pub fn remove_tree(&self, name: &OsStr) -> io::Result<()> {
        check_name(name)?;
        let st = match statat(&self.fd, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            Err(Errno::NOENT) => return Ok(()),
            Err(e) => return Err(at_path("stat", Path::new(name), e.into())),
        };
        if FileType::from_raw_mode(st.st_mode) != FileType::Directory {
            return match unlinkat(&self.fd, name, AtFlags::empty()) {
                Ok(()) | Err(Errno::NOENT) => Ok(()),
                Err(e) => Err(at_path("remove", Path::new(name), e.into())),
            };
        }
        // Iterative depth-first removal. Only the directories on the current path are open
        // (one descriptor per level, never one per pending sibling, so a wide tree does not
        // run into the open-file limit); the names still to visit are kept with their parent.
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
            // Read-only directories cannot have entries removed; make ours writable.
            let _ = fchmod(&dir.fd, Mode::from_raw_mode(0o700));
            let mut pending = Vec::new();
            for entry in dir.entries()? {
                let is_dir = match entry.file_type {
                    FileType::Directory => true,
                    FileType::Unknown => {
                        FileType::from_raw_mode(dir.stat(&entry.name)?.st_mode)
                            == FileType::Directory
                    }
                    _ => false,
                };
                if is_dir {
                    pending.push(entry.name);
                } else {
                    dir.remove_file_quiet(&entry.name)?;
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
            let done = frames
                .pop()
                .expect("the loop only runs while a frame is there");
            drop(done.dir);
            let parent = frames.last().map_or(self, |f| &f.dir);
            match unlinkat(&parent.fd, &done.name, AtFlags::REMOVEDIR) {
                Ok(()) | Err(Errno::NOENT) => {}
                Err(e) => {
                    return Err(at_path("remove directory", Path::new(&done.name), e.into()));
                }
            }
        }
        Ok(())
    }

    fn remove_file_quiet(&self, name: &OsStr) -> io::Result<()> {
        match unlinkat(&self.fd, name, AtFlags::empty()) {
            Ok(()) | Err(Errno::NOENT) => Ok(()),
            Err(e) => Err(at_path("remove", Path::new(name), e.into())),
        }
    }

    /// Renames `from` in this directory to `to` in `to_dir`, replacing a non-directory or an
    /// empty directory there (plain `rename(2)` semantics).
    pub fn rename(&self, from: &OsStr, to_dir: &Dir, to: &OsStr) -> io::Result<()> {
        self.rename_with(from, to_dir, to, RenameFlags::empty())
    }

    /// Renames `from` to `to`, failing with [`io::ErrorKind::AlreadyExists`] if `to` exists.
    pub fn rename_noreplace(&self, from: &OsStr, to_dir: &Dir, to: &OsStr) -> io::Result<()> {
        self.rename_with(from, to_dir, to, RenameFlags::NOREPLACE)
    }

    /// Atomically swaps `from` and `to`; both must exist.
    pub fn rename_exchange(&self, from: &OsStr, to_dir: &Dir, to: &OsStr) -> io::Result<()> {
        self.rename_with(from, to_dir, to, RenameFlags::EXCHANGE)
    }

    fn rename_with(
        &self,
        from: &OsStr,
        to_dir: &Dir,
        to: &OsStr,
        flags: RenameFlags,
    ) -> io::Result<()> {
        check_name(from)?;
        check_name(to)?;
        renameat_with(&self.fd, from, &to_dir.fd, to, flags)
            .map_err(|e| crate::error::at_paths("rename", Path::new(from), Path::new(to), e.into()))
    }

    /// Sets this directory's permission bits.
    pub fn set_mode(&self, mode: u32) -> io::Result<()> {
        Ok(fchmod(&self.fd, crate::sys::mode(mode))?)
    }

    /// Sets the access and modification times of `name` without following a symlink (a
    /// symlink's own times are set).
    pub fn set_times(&self, name: &OsStr, atime: Timespec, mtime: Timespec) -> io::Result<()> {
        check_name(name)?;
        utimensat(
            &self.fd,
            name,
            &Timestamps {
                last_access: atime,
                last_modification: mtime,
            },
            AtFlags::SYMLINK_NOFOLLOW,
        )
        .map_err(|e| at_path("set times of", Path::new(name), e.into()))
    }

    /// Sets this directory's own access and modification times.
    pub fn set_own_times(&self, atime: Timespec, mtime: Timespec) -> io::Result<()> {
        Ok(rustix::fs::futimens(
            &self.fd,
            &Timestamps {
                last_access: atime,
                last_modification: mtime,
            },
        )?)
    }

    /// All entries except `.` and `..`, in the order the filesystem returns them.
    pub fn entries(&self) -> io::Result<Vec<DirEntry>> {
        entries_of(self.fd.as_fd())
    }

    /// The same as [`Dir::entries`], read with `getdents64` through this handle's own file
    /// offset (rewound first) rather than through a second open of the directory, and without
    /// an allocation per name beyond the returned one: for a walk of many small directories
    /// that is three system calls fewer per directory (`fcntl`, `openat`, `close`). On macOS
    /// it is [`Dir::entries`].
    ///
    /// It takes `&mut self` because the file offset is state: the caller must not read the
    /// same directory through a duplicate of this descriptor ([`Dir::try_clone`]) at the same
    /// time, which [`Dir::entries`] allows.
    pub fn read_entries(&mut self) -> io::Result<Vec<DirEntry>> {
        crate::sys::read_entries(self.fd.as_fd())
    }
}

impl AsFd for Dir {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// `fsync` of an open directory (retried on EINTR); `F_FULLFSYNC` on macOS.
pub fn sync_dir(dir: BorrowedFd<'_>) -> io::Result<()> {
    loop {
        match crate::sys::fsync(dir) {
            Err(Errno::INTR) => continue,
            r => return r.map_err(io::Error::from),
        }
    }
}

/// ELOOP from an `O_NOFOLLOW` open (and ENOTDIR from `O_DIRECTORY`) means something other
/// than a directory sits there; say so plainly.
fn nofollow_err(e: Errno) -> io::Error {
    match e {
        Errno::LOOP | Errno::XDEV => io::Error::new(
            io::ErrorKind::InvalidInput,
            "a symlink is in the way (cowtree never follows symlinks in a destination)",
        ),
        Errno::NOTDIR => io::Error::new(io::ErrorKind::NotADirectory, "not a directory"),
        e => e.into(),
    }
}

trait FromVecCompat {
    fn from_vec_compat(v: Vec<u8>) -> Self;
}

impl FromVecCompat for OsString {
    fn from_vec_compat(v: Vec<u8>) -> Self {
        use std::os::unix::ffi::OsStringExt;
        OsString::from_vec(v)
    }
}
