//! Reflink (FICLONE) with classified outcomes, and clone-or-copy built on it.
//!
//! The hazard this module exists for: a hardlink makes two names for one inode, so a tool that
//! hands out hardlinked worktrees lets one writer (`chmod +w f && echo x > f`) change every other
//! copy. A reflink gives the destination its own inode that shares data blocks with the source
//! until either side writes; the filesystem copies on write.
//!
//! A clone attempt ends in one of three outcomes that callers act on differently
//! ([`ReflinkOutcome`]), or in an error that names both paths. The destination is always created
//! by the call itself (`O_CREAT|O_EXCL`, never following a symlink), given the source's permission
//! bits (FICLONE copies data only), and removed again if the clone fails. An existing destination
//! is never truncated or written through: it is reported as [`io::ErrorKind::AlreadyExists`].
//!
//! | platform | mechanism | tested here |
//! |---|---|---|
//! | Linux (XFS, btrfs, bcachefs, OCFS2, ...) | `ioctl(FICLONE)` | yes, on real XFS, btrfs, ext4 and tmpfs mounts |
//! | macOS (APFS) | `fclonefileat(CLONE_NOFOLLOW)`, see [`crate::sys`] | no: type-checked only |
//! | Windows (ReFS, Dev Drive) | `FSCTL_DUPLICATE_EXTENTS_TO_FILE` into a new file, see `reflink/windows.rs` | the copy fallback, refusals and classification under Wine; the clone itself only compiled (no ReFS under Wine) |
//!
//! On Windows the path-based [`try_reflink`] and [`clone_or_copy`] and the directory-relative
//! [`transfer_at`], [`try_reflink_at`] and [`transfer_at_open`] exist (over
//! [`crate::dir::Dir`] handles; `transfer_at_open` there takes no copy-range memory and no
//! creation mask); `transfer_at_remembering` and `transfer_at_masked` are unix only.

use std::ffi::OsStr;
use std::io;
use std::path::Path;

use crate::classify::UnsupportedCause;
#[cfg(unix)]
use crate::creation::CreationMask;

/// The outcome of one clone attempt that did not fail outright.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReflinkOutcome {
    /// The destination exists as its own inode and shares its data blocks with the source.
    Cloned,
    /// No clone was made and no destination is left behind. The cause says whether this holds
    /// for the whole (source device, destination device) pair or for this one file
    /// ([`UnsupportedCause::is_per_file`]).
    Unsupported(UnsupportedCause),
    /// The source was not there (gone before the call, or removed during it). A race on one
    /// file; it says nothing about whether the filesystems can clone. No destination is left.
    SourceVanished,
}

/// Which method [`transfer_at`] should use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// Clone only; an unsupported clone is returned as [`Transfer::Unsupported`].
    Clone,
    /// Clone, and copy into the same new destination when the clone is unsupported (with
    /// `copy_file_range` where it works: nothing can be shared where a clone cannot be).
    CloneOrCopy,
    /// Copy only, into data blocks of the destination's own, never shared with the source
    /// (see [`crate::copy::copy_fd_unshared`]).
    Copy,
}

/// Options for [`transfer_at`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TransferOptions {
    /// The method to use.
    pub method: Method,
    /// Permission bits to give the destination; `None` takes the source's (without the
    /// set-user-ID and set-group-ID bits, since the copy belongs to whoever makes it).
    pub mode: Option<u32>,
    /// Give the destination the source's access and modification times.
    pub preserve_times: bool,
}

impl TransferOptions {
    /// Options for `method`, taking the source's permission bits and not its times.
    pub fn new(method: Method) -> Self {
        Self {
            method,
            mode: None,
            preserve_times: false,
        }
    }
}

/// What [`transfer_at`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transfer {
    /// Cloned; `bytes` is the source's size, now shared.
    Cloned {
        /// Bytes shared with the source.
        bytes: u64,
    },
    /// Copied. `because` is the clone failure that led to the copy, or `None` when
    /// [`Method::Copy`] was asked for.
    Copied {
        /// Bytes written.
        bytes: u64,
        /// Why the clone was not used.
        because: Option<UnsupportedCause>,
    },
    /// [`Method::Clone`] only: the clone is unsupported; no destination is left.
    Unsupported(UnsupportedCause),
    /// The source was gone; no destination is left.
    SourceVanished,
}

/// Which method [`clone_or_copy`] used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CopyMethod {
    /// The destination shares the source's data blocks.
    Cloned {
        /// Bytes shared.
        bytes: u64,
    },
    /// The destination got its own copy of the data.
    Copied {
        /// Bytes written.
        bytes: u64,
        /// Why cloning was not possible.
        because: UnsupportedCause,
    },
}

#[cfg(unix)]
pub use imp::{
    OpenSource, clone_or_copy, transfer_at, transfer_at_masked, transfer_at_open,
    transfer_at_remembering, try_reflink, try_reflink_at,
};
#[cfg(unix)]
pub(crate) use imp::{clone_fds, open_source, remove_created, source_gone};

#[cfg(windows)]
mod windows;
#[cfg(windows)]
pub use windows::{
    OpenSource, clone_or_copy, transfer_at, transfer_at_open, try_reflink, try_reflink_at,
};

/// Permission bits a new file gets from a source mode: the rwx bits and the sticky bit; the
/// set-user-ID and set-group-ID bits are dropped because the new file belongs to its maker.
pub fn creation_mode(src_mode: u32) -> u32 {
    src_mode & 0o1777
}

/// The error for a source that is not a regular file, naming it.
pub(crate) fn invalid_source(name: &OsStr) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!(
            "{}: not a regular file (only regular files can be cloned)",
            Path::new(name).display()
        ),
    )
}

/// What `clone_or_copy` reports of `transfer`, a transfer of `src` to `dst` made with
/// [`Method::CloneOrCopy`] (on every platform): the method that ran, a vanished source as a
/// [`io::ErrorKind::NotFound`] error naming it. `Unsupported`, which that method never gives,
/// is an error rather than a panic.
pub(crate) fn clone_or_copy_outcome(
    transfer: Transfer,
    src: &Path,
    dst: &Path,
) -> io::Result<CopyMethod> {
    use crate::error::at_path;
    match transfer {
        Transfer::Cloned { bytes } => Ok(CopyMethod::Cloned { bytes }),
        Transfer::Copied { bytes, because } => Ok(CopyMethod::Copied {
            bytes,
            because: because.unwrap_or(UnsupportedCause::Filesystem),
        }),
        Transfer::SourceVanished => Err(at_path(
            "clone",
            src,
            io::Error::from(io::ErrorKind::NotFound),
        )),
        Transfer::Unsupported(_) => Err(broken_promise(src, dst)),
    }
}

/// A transfer that copied when told not to, or did not when told to: an error naming both
/// paths rather than a panic, if it ever happened.
pub(crate) fn broken_promise(src: &Path, dst: &Path) -> io::Error {
    crate::error::at_paths(
        "clone",
        src,
        dst,
        io::Error::other("internal error: the transfer's copy rule was broken"),
    )
}

#[cfg(unix)]
mod imp {
    use super::*;
    use crate::classify::{CloneErrno, CloneFailure, classify_clone_errno};
    use crate::copy::{CopyRange, copy_fd_remembering, copy_fd_unshared};
    use crate::error::{at_path, at_paths};
    use crate::sys::{WholeClone, stat_mode};
    use rustix::fs::{
        AtFlags, CWD, FileType, Mode, OFlags, Stat, Timestamps, fchmod, fstat, futimens, openat,
        statat, unlinkat,
    };
    use rustix::io::Errno;
    use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

    /// Tries to clone `src` to the new file `dst` (paths resolved from the current directory;
    /// `dst` itself must not exist and is never followed if it is a symlink).
    ///
    /// Errors name both paths. An existing `dst` gives [`io::ErrorKind::AlreadyExists`] and is
    /// left byte-for-byte as it was. ENOSPC, EDQUOT, EIO and friends are errors, never
    /// [`ReflinkOutcome::Unsupported`].
    pub fn try_reflink(src: &Path, dst: &Path) -> io::Result<ReflinkOutcome> {
        try_reflink_at(CWD, src.as_os_str(), CWD, dst.as_os_str()).map_err(|e| rewrap(e, src, dst))
    }

    /// [`try_reflink`] relative to directory handles: `src_name` under `src_dir`, `dst_name`
    /// under `dst_dir`. Neither final component is followed if it is a symlink. Errors name
    /// the two names; callers that know the full paths should add them.
    pub fn try_reflink_at(
        src_dir: impl AsFd,
        src_name: &OsStr,
        dst_dir: impl AsFd,
        dst_name: &OsStr,
    ) -> io::Result<ReflinkOutcome> {
        let opts = TransferOptions::new(Method::Clone);
        Ok(
            match transfer_at(src_dir, src_name, dst_dir, dst_name, &opts)? {
                Transfer::Cloned { .. } => ReflinkOutcome::Cloned,
                Transfer::Unsupported(cause) => ReflinkOutcome::Unsupported(cause),
                Transfer::SourceVanished => ReflinkOutcome::SourceVanished,
                Transfer::Copied { .. } => unreachable!("Method::Clone never copies"),
            },
        )
    }

    /// Clones `src` to the new file `dst`, or copies it when this pair cannot clone, and says
    /// which ran. A source that vanished is a [`io::ErrorKind::NotFound`] error naming it.
    pub fn clone_or_copy(src: &Path, dst: &Path) -> io::Result<CopyMethod> {
        let opts = TransferOptions::new(Method::CloneOrCopy);
        let t = transfer_at(CWD, src.as_os_str(), CWD, dst.as_os_str(), &opts)
            .map_err(|e| rewrap(e, src, dst))?;
        clone_or_copy_outcome(t, src, dst)
    }

    /// The directory-relative primitive behind every file transfer in cowtree.
    ///
    /// Opens `src_name` under `src_dir` without following a symlink, creates `dst_name` under
    /// `dst_dir` with `O_CREAT|O_EXCL|O_NOFOLLOW`, then clones and/or copies per `opts`. The new
    /// file gets `opts.mode` or the source's permission bits, and the source's times when asked.
    /// On any failure the file this call created is removed (if it is still the same inode).
    pub fn transfer_at(
        src_dir: impl AsFd,
        src_name: &OsStr,
        dst_dir: impl AsFd,
        dst_name: &OsStr,
        opts: &TransferOptions,
    ) -> io::Result<Transfer> {
        transfer_at_remembering(
            src_dir,
            src_name,
            dst_dir,
            dst_name,
            opts,
            &CopyRange::new(),
        )
    }

    /// [`transfer_at`] for a caller that links many files between the same two filesystems:
    /// a copy skips `copy_file_range` once `range` says the pair refuses it (see
    /// [`CopyRange`]).
    pub fn transfer_at_remembering(
        src_dir: impl AsFd,
        src_name: &OsStr,
        dst_dir: impl AsFd,
        dst_name: &OsStr,
        opts: &TransferOptions,
        range: &CopyRange,
    ) -> io::Result<Transfer> {
        transfer_at_masked(src_dir, src_name, dst_dir, dst_name, opts, range, None)
    }

    /// [`transfer_at_remembering`] for a caller that knows what creation does to permission
    /// bits in `dst_dir` (`mask`, see [`CreationMask::of_dir`]): where the new file is sure to
    /// get exactly its bits when it is created, they are not read back (one `fstat` fewer per
    /// file). With `None` it is [`transfer_at_remembering`].
    pub fn transfer_at_masked(
        src_dir: impl AsFd,
        src_name: &OsStr,
        dst_dir: impl AsFd,
        dst_name: &OsStr,
        opts: &TransferOptions,
        range: &CopyRange,
        mask: Option<CreationMask>,
    ) -> io::Result<Transfer> {
        let src_dir = src_dir.as_fd();
        let Some(src) = OpenSource::open(src_dir, src_name)? else {
            return Ok(Transfer::SourceVanished);
        };
        let (done, _dst) = transfer_at_open(
            &src,
            (src_dir, src_name),
            (dst_dir.as_fd(), dst_name),
            opts,
            range,
            mask,
        )?;
        Ok(done)
    }

    /// A source file opened for [`transfer_at_open`]: its descriptor and its `fstat`, which the
    /// caller may read (its owner, its links) before the transfer and keep using after it
    /// (its attributes), with no second open or `stat`.
    pub struct OpenSource {
        /// Open for reading, without following a symlink (see [`OpenSource::open`]).
        pub fd: OwnedFd,
        /// Its `fstat`, taken right after the open.
        pub stat: Stat,
    }

    impl OpenSource {
        /// Opens `name` under `dir` as [`transfer_at`] opens a source: read-only, never
        /// following a symlink (one is refused as not a regular file), without blocking on a
        /// FIFO, and `fstat`s it; `None` when it is absent. Its type is not checked here:
        /// [`transfer_at_open`] refuses anything but a regular file before any read. Errors name
        /// `name`.
        pub fn open(dir: impl AsFd, name: &OsStr) -> io::Result<Option<OpenSource>> {
            let Some(fd) = open_source(dir.as_fd(), name)? else {
                return Ok(None);
            };
            let stat = fstat(&fd).map_err(|e| at_path("stat", Path::new(name), e.into()))?;
            Ok(Some(OpenSource { fd, stat }))
        }
    }

    /// [`transfer_at_masked`] from a source the caller opened ([`OpenSource::open`] of `src_name`
    /// under `src_dir`: the name a clone's ENOENT is checked against), handing back the new
    /// file still open for writing (`None` when no file is left: the clone was unsupported
    /// or the source vanished), so that the caller can give it more through that descriptor
    /// (owner, attributes, times) with no second open. What the new file gets here is what
    /// [`transfer_at`] gives it: its data, its permission bits, and the source's times when
    /// `opts.preserve_times` (a caller that gives more and wants the times given last passes
    /// false and sets them itself). Errors name the two names.
    pub fn transfer_at_open(
        src: &OpenSource,
        (src_dir, src_name): (BorrowedFd<'_>, &OsStr),
        (dst_dir, dst_name): (BorrowedFd<'_>, &OsStr),
        opts: &TransferOptions,
        range: &CopyRange,
        mask: Option<CreationMask>,
    ) -> io::Result<(Transfer, Option<OwnedFd>)> {
        let (src_fd, st) = (&src.fd, &src.stat);
        // The open does not block on a FIFO; this refuses it, and anything but a regular file.
        if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
            return Err(invalid_source(src_name));
        }
        let mode = opts.mode.unwrap_or_else(|| creation_mode(stat_mode(st)));
        // Where a clone creates its destination (macOS) it runs here, before anything is
        // created; on Linux the destination is created first and cloned into by descriptor
        // in `fill`.
        let whole = match opts.method {
            Method::Copy => WholeClone::ByDescriptor,
            Method::Clone | Method::CloneOrCopy => {
                crate::sys::clone_new(src_fd.as_fd(), dst_dir, dst_name)
                    .map_err(|e| at_paths("clone", Path::new(src_name), Path::new(dst_name), e))?
            }
        };
        let (made, already) = match whole {
            WholeClone::ByDescriptor => (None, None),
            WholeClone::Cloned(fd) => (Some(fd), Some(Ok(()))),
            WholeClone::Failed(CloneFailure::Vanished) => {
                source_gone(src_dir, src_name, dst_name)?;
                return Ok((Transfer::SourceVanished, None));
            }
            WholeClone::Failed(CloneFailure::Unsupported(cause)) => {
                if opts.method == Method::Clone {
                    return Ok((Transfer::Unsupported(cause), None));
                }
                (None, Some(Err(cause)))
            }
        };
        // A clone that made the file itself (macOS) gave it the source's bits, not ours.
        let exact = made.is_none() && mask.is_some_and(|m| m.file_exact(mode));
        let dst_fd = match made {
            Some(fd) => fd,
            None => openat(
                dst_dir,
                dst_name,
                OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                // The final permission bits already: when the umask strips none of them, no
                // chmod (a metadata transaction on XFS and btrfs) is needed afterwards. The
                // new descriptor is writable whatever the bits say.
                crate::sys::mode(mode & 0o777),
            )
            .map_err(|e| at_path("create", Path::new(dst_name), e.into()))?,
        };

        let result = fill(src_fd, &dst_fd, st, (mode, exact), opts, range, already);
        match result {
            Ok(Filled::Done(t)) => Ok((t, Some(dst_fd))),
            Ok(Filled::Abandon(t)) => {
                let removed = remove_created(dst_dir, dst_name, &dst_fd);
                // A source that is not really gone is the error to report, whatever the
                // cleanup did.
                if t == Transfer::SourceVanished {
                    source_gone(src_dir, src_name, dst_name)?;
                }
                removed?;
                Ok((t, None))
            }
            Err(e) => {
                // The original error matters more than a failed cleanup.
                let _ = remove_created(dst_dir, dst_name, &dst_fd);
                Err(at_paths(
                    "transfer",
                    Path::new(src_name),
                    Path::new(dst_name),
                    e,
                ))
            }
        }
    }

    /// Opens the source `src_name` under `src_dir` for reading, never following a symlink (a
    /// symlink is refused as not a regular file); `None` when it is absent. O_NONBLOCK: a FIFO
    /// in the source's place cannot block the open (the caller refuses it before any read);
    /// reads of a regular file ignore the flag.
    pub(crate) fn open_source(
        src_dir: BorrowedFd<'_>,
        src_name: &OsStr,
    ) -> io::Result<Option<OwnedFd>> {
        match openat(
            src_dir,
            src_name,
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK | OFlags::NOCTTY,
            Mode::empty(),
        ) {
            Ok(fd) => Ok(Some(fd)),
            Err(Errno::NOENT) => Ok(None),
            Err(Errno::LOOP) => Err(invalid_source(src_name)),
            Err(e) => Err(at_path("open", Path::new(src_name), e.into())),
        }
    }

    /// A clone saw ENOENT: that is a vanished source only when the source is really gone
    /// (`Ok`); otherwise the ENOENT is an error naming both names.
    pub(crate) fn source_gone(
        src_dir: BorrowedFd<'_>,
        src_name: &OsStr,
        dst_name: &OsStr,
    ) -> io::Result<()> {
        match statat(src_dir, src_name, AtFlags::SYMLINK_NOFOLLOW) {
            Err(Errno::NOENT) => Ok(()),
            _ => Err(at_paths(
                "clone",
                Path::new(src_name),
                Path::new(dst_name),
                Errno::NOENT.into(),
            )),
        }
    }

    enum Filled {
        Done(Transfer),
        Abandon(Transfer),
    }

    /// Fills the new file `dst_fd` and gives it `mode` (`exact`: it was created with exactly
    /// those bits, nothing to check). `already` is the outcome of a clone that made `dst_fd`
    /// itself (macOS), `None` where the clone is still to be done by descriptor (Linux).
    fn fill(
        src_fd: &OwnedFd,
        dst_fd: &OwnedFd,
        st: &Stat,
        (mode, exact): (u32, bool),
        opts: &TransferOptions,
        range: &CopyRange,
        already: Option<Result<(), UnsupportedCause>>,
    ) -> io::Result<Filled> {
        let size = st.st_size as u64;
        let cloned = match already {
            Some(done) => Ok(done.map_err(CloneFailure::Unsupported)),
            None if opts.method == Method::Copy => Ok(Ok(())),
            None => clone_fds(src_fd, dst_fd),
        };
        let done = match opts.method {
            Method::Copy => Transfer::Copied {
                bytes: copy_fd_unshared(src_fd, st, dst_fd)?,
                because: None,
            },
            Method::Clone | Method::CloneOrCopy => match cloned? {
                Ok(()) => Transfer::Cloned { bytes: size },
                Err(CloneFailure::Vanished) => {
                    return Ok(Filled::Abandon(Transfer::SourceVanished));
                }
                Err(CloneFailure::Unsupported(cause)) => {
                    if opts.method == Method::Clone {
                        return Ok(Filled::Abandon(Transfer::Unsupported(cause)));
                    }
                    Transfer::Copied {
                        bytes: copy_fd_remembering(src_fd, st, dst_fd, range)?,
                        because: Some(cause),
                    }
                }
            },
        };
        // The umask (or a default ACL) may have removed bits at creation, and the sticky bit
        // is not set by it; fstat is cheap (no transaction), fchmod only when needed.
        if !exact && stat_mode(&fstat(dst_fd)?) & 0o7777 != mode {
            fchmod(dst_fd, crate::sys::mode(mode))?;
        }
        if opts.preserve_times {
            futimens(
                dst_fd,
                &Timestamps {
                    last_access: rustix::fs::Timespec {
                        tv_sec: st.st_atime as _,
                        tv_nsec: st.st_atime_nsec as _,
                    },
                    last_modification: rustix::fs::Timespec {
                        tv_sec: st.st_mtime as _,
                        tv_nsec: st.st_mtime_nsec as _,
                    },
                },
            )?;
        }
        Ok(Filled::Done(done))
    }

    /// One FICLONE between open files, with the single EAGAIN retry of the errno table.
    /// `Ok(Err(_))` is a classified non-error outcome; `Err` is a real error.
    pub(crate) fn clone_fds(
        src: impl AsFd,
        dst: impl AsFd,
    ) -> io::Result<Result<(), CloneFailure>> {
        let (src, dst) = (src.as_fd(), dst.as_fd());
        let mut retried = false;
        loop {
            match crate::sys::ficlone(dst, src) {
                Ok(()) => return Ok(Ok(())),
                Err(errno) => match classify_clone_errno(errno.raw_os_error()) {
                    CloneErrno::Retry if !retried => retried = true,
                    CloneErrno::Retry => {
                        return Ok(Err(CloneFailure::Unsupported(UnsupportedCause::Busy)));
                    }
                    CloneErrno::Unsupported(cause) => {
                        return Ok(Err(CloneFailure::Unsupported(cause)));
                    }
                    CloneErrno::MaybeVanished => return Ok(Err(CloneFailure::Vanished)),
                    CloneErrno::Exists | CloneErrno::Fatal => return Err(errno.into()),
                },
            }
        }
    }

    /// Removes `name` under `dir` if it is still the inode open as `fd`, so that a file some
    /// other process put there in the meantime is left alone.
    pub(crate) fn remove_created(
        dir: BorrowedFd<'_>,
        name: &OsStr,
        fd: &OwnedFd,
    ) -> io::Result<()> {
        let ours = fstat(fd)?;
        match statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(now) if now.st_ino == ours.st_ino && now.st_dev == ours.st_dev => {
                unlinkat(dir, name, AtFlags::empty())?;
                Ok(())
            }
            Ok(_) | Err(Errno::NOENT) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Replaces the name-only context of an error from the `*_at` functions by the full paths.
    fn rewrap(err: io::Error, src: &Path, dst: &Path) -> io::Error {
        match crate::error::raw_errno(&err) {
            Some(code) if err.kind() != io::ErrorKind::InvalidInput => {
                let op = err
                    .get_ref()
                    .and_then(|e| e.downcast_ref::<crate::error::PathError>())
                    .map(|pe| pe.op)
                    .unwrap_or("clone");
                at_paths(op, src, dst, io::Error::from_raw_os_error(code))
            }
            _ => err,
        }
    }
}
