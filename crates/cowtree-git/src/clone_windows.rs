//! One tracked file cloned from SRC on Windows, through cowtree-fs's block clone
//! (`FSCTL_DUPLICATE_EXTENTS_TO_FILE` on ReFS and Dev Drives) or its copy elsewhere, by
//! handle: SRC's file is opened once, the verdict is made on what that handle reads
//! ([`crate::trust`]), the new file is made from the same handle, and the handle is read again
//! afterwards to see that nothing wrote to SRC's file meanwhile. The same API as the unix
//! `clone.rs`.

use std::ffi::{OsStr, OsString};
use std::sync::OnceLock;

use cowtree_fs::dir::{Dir, Stat};
use cowtree_fs::reflink::OpenSource;
use cowtree_fs::sys::AsFd;
use cowtree_fs::{Method, Transfer, TransferOptions, UnsupportedCause};
use gix::ObjectId;

/// Whether this run still tries to clone: not after the volume pair said it cannot.
#[derive(Debug, Default)]
pub struct CloneState {
    /// Set by the first clone that finds the pair cannot clone; every later file copies and
    /// reports this cause.
    refused: OnceLock<UnsupportedCause>,
}

/// SRC's file, open, with what the verdict is made on.
pub struct SrcFile {
    src: OpenSource,
    /// Its directory (a handle of its own) and name, which the clone checks a vanished source
    /// against.
    dir: Dir,
    name: OsString,
    /// What it is, read on the open handle.
    pub stat: Stat,
}

/// Opens SRC's `name` without following a reparse point; `None` when it is not a regular file
/// that can be opened (the caller then falls back to the object database).
pub fn open_src(dir: &Dir, name: &OsStr) -> Option<SrcFile> {
    let src = OpenSource::open(dir, name).ok()??;
    let stat = src.stat;
    stat.file_type().is_file().then_some(())?;
    Some(SrcFile {
        src,
        dir: dir.try_clone().ok()?,
        name: name.to_owned(),
        stat,
    })
}

#[path = "clone/cloned.rs"]
mod cloned;
pub use cloned::Cloned;

/// Whether two reads of one open file show the same content: the same file id, size, and
/// last-write and change times.
fn same_content_stat(a: &Stat, b: &Stat) -> bool {
    a.ino == b.ino
        && a.dev == b.dev
        && a.size == b.size
        && a.modified == b.modified
        && a.changed == b.changed
}

/// Creates `name` in `dst_dir` (exclusively, no reparse point followed; `mode`'s only meaning
/// on Windows is read-only when it has no write bit) with `src`'s data and times; with
/// `expect`, the copy is then read back and kept only when it hashes to that blob. A DST this
/// call created is removed on any outcome but [`Cloned::Done`].
pub fn clone_checked(
    src: &SrcFile,
    dst_dir: &Dir,
    name: &OsStr,
    mode: u32,
    strict: bool,
    state: &CloneState,
    expect: Option<&ObjectId>,
) -> std::io::Result<Cloned> {
    let refused = state.refused.get().copied();
    let method = match (refused, strict) {
        (Some(cause), true) => return Ok(Cloned::Refused(cause)),
        (Some(_), false) => Method::Copy,
        (None, true) => Method::Clone,
        (None, false) => Method::CloneOrCopy,
    };
    let opts = TransferOptions {
        method,
        mode: Some(mode),
        preserve_times: true,
    };
    let (done, dst) = cowtree_fs::transfer_at_open(
        &src.src,
        (src.dir.as_fd(), &src.name),
        (dst_dir.as_fd(), name),
        &opts,
    )?;
    let (bytes, because) = match done {
        Transfer::Cloned { bytes } => (bytes, None),
        Transfer::Copied { bytes, because } => {
            // A copy asked for after an earlier refusal says that refusal's cause.
            let cause = because.or(refused).unwrap_or(UnsupportedCause::Filesystem);
            if !cause.is_per_file() {
                state.refused.get_or_init(|| cause);
            }
            (bytes, Some(cause))
        }
        Transfer::Unsupported(cause) => {
            if !cause.is_per_file() {
                state.refused.get_or_init(|| cause);
            }
            return Ok(Cloned::Refused(cause));
        }
        Transfer::SourceVanished => return Ok(Cloned::Changed),
    };
    let Some(dst) = dst else {
        return Ok(Cloned::Changed);
    };
    let discard = |dst: std::fs::File| -> std::io::Result<()> {
        drop(dst);
        dst_dir.remove_file(name)
    };
    if !same_content_stat(&cowtree_fs::sys::fstat(src.src.fd.as_fd())?, &src.stat) {
        discard(dst)?;
        return Ok(Cloned::Changed);
    }
    if let Some(want) = expect
        && !crate::blob_hash::holds_blob(&dst, src.stat.size, want)?
    {
        discard(dst)?;
        return Ok(Cloned::Mismatch);
    }
    let stat = cowtree_fs::sys::fstat(dst.as_fd())?;
    Ok(Cloned::Done {
        stat,
        bytes,
        because,
    })
}
