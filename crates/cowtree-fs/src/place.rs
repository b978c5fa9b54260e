//! Placing a file from a source whose owner vouches for it (a content store's own blob) into a
//! new destination file with a mode the caller gives, and handing back the destination's stat.
//!
//! [`place_at`] is [`crate::transfer_at`] cut to what a store's checkout needs, one file of
//! many thousands at a time: open the source, create the destination, clone, and one `fstat`
//! of the destination, which the caller keeps as its record of what it wrote (a stat cache)
//! instead of statting every file again later. It does not `fstat` the source on the way
//! there: the caller gives the mode, and a successful FICLONE proves the source is a regular
//! file (the kernel refuses any other with `EISDIR` or `EINVAL`). The source's type is still
//! checked wherever it matters: before a copy (a FIFO or device would never end), and after a
//! clone refused as unsupported, so that a source of the wrong type is reported as such and
//! never taken for a filesystem that cannot clone.
//!
//! Everything else is [`crate::transfer_at`]'s contract: the destination is created with
//! `O_CREAT|O_EXCL|O_NOFOLLOW` (an existing entry is an error, never written through), the
//! source is opened without following a symlink, the errno table of [`crate::classify`]
//! decides each clone failure, and a destination this call created is removed again when it
//! fails.

use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use rustix::fs::{AtFlags, FileType, OFlags, Stat, fchmod, fstat, openat, statat};

use crate::classify::{CloneFailure, UnsupportedCause};
use crate::copy::{CopyRange, copy_fd_remembering, copy_fd_unshared};
use crate::error::{at_path, at_paths};
use crate::reflink::{
    Method, Transfer, TransferOptions, clone_fds, invalid_source, open_source, remove_created,
    source_gone,
};
use crate::sys::stat_mode;

/// What [`place_at`] did.
#[derive(Debug, Clone, Copy)]
pub enum Placed {
    /// Cloned; the destination's stat once complete (its size is the bytes shared).
    Cloned(Stat),
    /// Copied: [`Method::Copy`] was asked for, or (with [`Method::CloneOrCopy`]) the clone was
    /// unsupported for the cause given. The destination's stat once complete.
    Copied(Stat, Option<UnsupportedCause>),
    /// [`Method::Clone`] only: the clone is unsupported; no destination is left.
    Unsupported(UnsupportedCause),
    /// The source was gone; no destination is left.
    SourceVanished,
}

/// Places `src_name` (under `src_dir`) as the new file `dst_name` under `dst_dir` with the
/// permission bits `mode` exactly (whatever the umask), by `method`, and returns the new
/// file's `fstat` taken after its last change. See the module doc for what is and is not
/// checked. Errors name the two names.
pub fn place_at(
    src_dir: impl AsFd,
    src_name: &OsStr,
    dst_dir: impl AsFd,
    dst_name: &OsStr,
    mode: u32,
    method: Method,
    range: &CopyRange,
) -> io::Result<Placed> {
    let (src_dir, dst_dir) = (src_dir.as_fd(), dst_dir.as_fd());
    if crate::sys::CLONE_CREATES_DESTINATION {
        return place_by_transfer(src_dir, src_name, dst_dir, dst_name, mode, method, range);
    }
    // A FIFO in the source's place does not block the open; it is refused before any read.
    let Some(src) = open_source(src_dir, src_name)? else {
        return Ok(Placed::SourceVanished);
    };
    // A copy's source is `fstat`ed before it (its type, and whether it may have holes).
    let st = match method {
        Method::Copy => Some(check_regular(&src, src_name)?),
        Method::Clone | Method::CloneOrCopy => None,
    };
    let dst = openat(
        dst_dir,
        dst_name,
        OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        // The final bits already: unless the umask strips some, no chmod is needed.
        crate::sys::mode(mode & 0o777),
    )
    .map_err(|e| at_path("create", Path::new(dst_name), e.into()))?;
    match fill(&src, st, src_name, &dst, mode, method, range) {
        Ok(Filled::Done(placed)) => Ok(placed),
        Ok(Filled::NotRegular(e)) => {
            // The wrong source is the error to report, whatever the cleanup did.
            let _ = remove_created(dst_dir, dst_name, &dst);
            Err(e)
        }
        Ok(Filled::Abandon(placed)) => {
            let removed = remove_created(dst_dir, dst_name, &dst);
            // A source that is not really gone is the error to report, whatever the cleanup
            // did.
            if matches!(placed, Placed::SourceVanished) {
                source_gone(src_dir, src_name, dst_name)?;
            }
            removed?;
            Ok(placed)
        }
        Err(e) => {
            // The original error matters more than a failed cleanup.
            let _ = remove_created(dst_dir, dst_name, &dst);
            Err(at_paths(
                "transfer",
                Path::new(src_name),
                Path::new(dst_name),
                e,
            ))
        }
    }
}

enum Filled {
    Done(Placed),
    /// No file is left: the clone was unsupported ([`Method::Clone`]) or the source vanished.
    Abandon(Placed),
    /// The source is not a regular file (the error says so, naming it).
    NotRegular(io::Error),
}

/// Fills the new file `dst` (`st`: the source's `fstat`, where a copy was asked for).
fn fill(
    src: &OwnedFd,
    st: Option<Stat>,
    src_name: &OsStr,
    dst: &OwnedFd,
    mode: u32,
    method: Method,
    range: &CopyRange,
) -> io::Result<Filled> {
    let (st, because) = match (method, st) {
        (Method::Copy, Some(st)) => (st, None),
        _ => match clone_fds(src, dst)? {
            Ok(()) => return Ok(Filled::Done(Placed::Cloned(finish(dst, mode)?))),
            Err(CloneFailure::Vanished) => return Ok(Filled::Abandon(Placed::SourceVanished)),
            Err(CloneFailure::Unsupported(cause)) => {
                // EINVAL is also what FICLONE says of a source that is not a regular file:
                // that is an error, never a filesystem that cannot clone.
                let st = match check_regular(src, src_name) {
                    Ok(st) => st,
                    Err(e) => return Ok(Filled::NotRegular(e)),
                };
                if method == Method::Clone {
                    return Ok(Filled::Abandon(Placed::Unsupported(cause)));
                }
                (st, Some(cause))
            }
        },
    };
    if method == Method::Copy {
        copy_fd_unshared(src, &st, dst)?;
    } else {
        copy_fd_remembering(src, &st, dst, range)?;
    }
    Ok(Filled::Done(Placed::Copied(finish(dst, mode)?, because)))
}

/// The file's stat once its mode is exactly `mode` (the umask may have stripped bits at
/// creation; the sticky bit is never set by it).
fn finish(dst: &OwnedFd, mode: u32) -> io::Result<Stat> {
    let st = fstat(dst)?;
    if stat_mode(&st) & 0o7777 == mode {
        return Ok(st);
    }
    fchmod(dst, crate::sys::mode(mode))?;
    // The chmod changed the ctime the caller records.
    Ok(fstat(dst)?)
}

/// The `fstat` of `fd`, a regular file (else the error says it is not, naming `name`).
fn check_regular(fd: &OwnedFd, name: &OsStr) -> io::Result<Stat> {
    let st = fstat(fd).map_err(|e| at_path("stat", Path::new(name), e.into()))?;
    if crate::sys::file_type(stat_mode(&st)) != FileType::RegularFile {
        return Err(invalid_source(name));
    }
    Ok(st)
}

/// Where the clone creates its destination itself (macOS), [`crate::transfer_at`] and a stat
/// of what it made.
fn place_by_transfer(
    src_dir: BorrowedFd<'_>,
    src_name: &OsStr,
    dst_dir: BorrowedFd<'_>,
    dst_name: &OsStr,
    mode: u32,
    method: Method,
    range: &CopyRange,
) -> io::Result<Placed> {
    let opts = TransferOptions {
        method,
        mode: Some(mode),
        preserve_times: false,
    };
    let stat = || {
        statat(dst_dir, dst_name, AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|e| at_path("stat", Path::new(dst_name), e.into()))
    };
    Ok(
        match crate::reflink::transfer_at_remembering(
            src_dir, src_name, dst_dir, dst_name, &opts, range,
        )? {
            Transfer::Cloned { .. } => Placed::Cloned(stat()?),
            Transfer::Copied { because, .. } => Placed::Copied(stat()?, because),
            Transfer::Unsupported(cause) => Placed::Unsupported(cause),
            Transfer::SourceVanished => Placed::SourceVanished,
        },
    )
}
