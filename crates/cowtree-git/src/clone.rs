//! One tracked file cloned from SRC through a single open descriptor: the same `fstat` that
//! proves SRC's file clean (see [`crate::trust`]) is taken on the descriptor the clone reads,
//! and a second `fstat` on it after the clone shows that nothing wrote to the file meanwhile.
//! Nine system calls per file, all but the two opens on descriptors.
//!
//! The clone-or-copy policy is cowtree-fs's: its errno table ([`classify_clone_errno`]) and
//! copy ([`copy_fd_remembering`], which keeps holes); a filesystem pair that cannot clone is
//! not asked again in this run.

use std::ffi::OsStr;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::OnceLock;

use cowtree_fs::UnsupportedCause;
use cowtree_fs::classify::{CloneErrno, classify_clone_errno};
use cowtree_fs::copy::{CopyRange, copy_fd_remembering};
use cowtree_fs::dir::Dir;
use gix::ObjectId;
use rustix::fs::{Mode, OFlags, Stat, Timestamps, fstat, futimens, openat};

/// Whether this run still tries to clone: not after the filesystem pair said it cannot.
#[derive(Debug, Default)]
pub struct CloneState {
    /// Set by the first clone that finds the pair cannot clone; every later file copies and
    /// reports this cause (not a guess), whichever worker gets there first.
    refused: OnceLock<UnsupportedCause>,
}

/// SRC's file, open, with the `fstat` the verdict is made on.
pub struct SrcFile {
    fd: OwnedFd,
    /// Its `fstat`.
    pub stat: Stat,
}

/// Opens SRC's `name` without following a symlink; `None` when it is not a regular file that
/// can be opened (the caller then falls back to `lstat` and the object database).
pub fn open_src(dir: &Dir, name: &OsStr) -> Option<SrcFile> {
    let fd = openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK | OFlags::NOCTTY,
        Mode::empty(),
    )
    .ok()?;
    let stat = fstat(&fd).ok()?;
    (rustix::fs::FileType::from_raw_mode(stat.st_mode) == rustix::fs::FileType::RegularFile)
        .then_some(SrcFile { fd, stat })
}

#[path = "clone/cloned.rs"]
mod cloned;
pub use cloned::Cloned;

fn same_content_stat(a: &Stat, b: &Stat) -> bool {
    a.st_ino == b.st_ino
        && a.st_dev == b.st_dev
        && a.st_size == b.st_size
        && a.st_mtime == b.st_mtime
        && a.st_mtime_nsec == b.st_mtime_nsec
        && a.st_ctime == b.st_ctime
        && a.st_ctime_nsec == b.st_ctime_nsec
}

/// Creates `name` in `dst_dir` (`O_EXCL`, no symlink followed, permission bits `mode`) with
/// `src`'s data and times; with `expect`, the copy is then read back and kept only when it
/// hashes to that blob (DST is this run's own, so what was hashed is what stays). Errors are
/// I/O errors; a DST this call created is removed on any outcome but [`Cloned::Done`].
pub fn clone_checked(
    src: &SrcFile,
    dst_dir: &Dir,
    name: &OsStr,
    mode: u32,
    strict: bool,
    state: &CloneState,
    expect: Option<&ObjectId>,
) -> std::io::Result<Cloned> {
    let access = if expect.is_some() {
        OFlags::RDWR
    } else {
        OFlags::WRONLY
    };
    let dst = openat(
        dst_dir,
        name,
        access | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        cowtree_fs::sys::mode(mode),
    )?;
    let r = fill(src, &dst, strict, state);
    match r {
        Ok(Cloned::Done { bytes, because, .. }) => {
            let st = &src.stat;
            let (last_access, last_modification) = cowtree_fs::sys::stat_times(st);
            futimens(
                &dst,
                &Timestamps {
                    last_access,
                    last_modification,
                },
            )?;
            // The clone holds what SRC held when it ran; SRC's stat data unchanged since the
            // verdict means that was the blob the verdict proved.
            if !same_content_stat(&fstat(&src.fd)?, &src.stat) {
                drop(dst);
                dst_dir.remove_file(name)?;
                return Ok(Cloned::Changed);
            }
            if let Some(want) = expect
                && !crate::blob_hash::holds_blob(&dst, st.st_size as u64, want)?
            {
                drop(dst);
                dst_dir.remove_file(name)?;
                return Ok(Cloned::Mismatch);
            }
            Ok(Cloned::Done {
                stat: fstat(&dst)?,
                bytes,
                because,
            })
        }
        other => {
            drop(dst);
            let _ = dst_dir.remove_file(name);
            other
        }
    }
}

fn fill(src: &SrcFile, dst: &OwnedFd, strict: bool, state: &CloneState) -> std::io::Result<Cloned> {
    let bytes = src.stat.st_size as u64;
    let mut because = state.refused.get().copied();
    if because.is_none() {
        let mut retried = false;
        loop {
            match cowtree_fs::sys::ficlone(dst.as_fd(), src.fd.as_fd()) {
                Ok(()) => {
                    return Ok(Cloned::Done {
                        stat: src.stat,
                        bytes,
                        because: None,
                    });
                }
                Err(e) => match classify_clone_errno(e.raw_os_error()) {
                    CloneErrno::Retry if !retried => retried = true,
                    CloneErrno::Retry => {
                        because = Some(UnsupportedCause::Busy);
                        break;
                    }
                    CloneErrno::Unsupported(cause) => {
                        because = Some(cause);
                        if !cause.is_per_file() {
                            because = Some(*state.refused.get_or_init(|| cause));
                        }
                        break;
                    }
                    CloneErrno::MaybeVanished | CloneErrno::Exists | CloneErrno::Fatal => {
                        return Err(e.into());
                    }
                },
            }
        }
    }
    let cause = because.unwrap_or(UnsupportedCause::Filesystem);
    if strict {
        return Ok(Cloned::Refused(cause));
    }
    let bytes = copy_fd_remembering(&src.fd, &src.stat, dst, &CopyRange::new())?;
    Ok(Cloned::Done {
        stat: src.stat,
        bytes,
        because: Some(cause),
    })
}
