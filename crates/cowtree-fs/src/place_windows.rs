//! Placing a file from a source whose owner vouches for it (a content store's own blob) into a
//! new destination file, and handing back the destination's stat, on Windows: the same
//! [`place_at`] as on unix (`place.rs`), made of [`crate::transfer_at_open`] and one `stat` of
//! the new file through its own handle, which the caller keeps as its record of what it wrote.
//!
//! The contract is [`crate::transfer_at`]'s on Windows: the source is opened relative to its
//! directory's handle without following a reparse point (a reparse point or a directory is
//! refused as not a regular file), the destination is created `FILE_CREATE` relative to its
//! directory's (anything there is [`io::ErrorKind::AlreadyExists`] and left alone), a block
//! clone where the volume can, else a copy per the [`Method`], and a destination this call
//! created is deleted through its own handle when it fails.
//!
//! Windows has no permission bits: of `mode`, only whether it has a write bit counts. A mode
//! with none (`0o444`, `0o555`) makes the file read-only (`FILE_ATTRIBUTE_READONLY`, what
//! std's `set_readonly` sets); otherwise the file is as created, with its directory's ACL.
//! Unix's `place_at` takes a `CopyRange` to remember an in-kernel copy's refusal;
//! Windows copies by reading and writing, so there is none to take.

use std::ffi::OsStr;
use std::fs::File;
use std::io;
use std::os::windows::io::AsHandle;
use std::path::Path;

use windows_sys::Win32::Storage::FileSystem::FILE_ATTRIBUTE_READONLY;

use crate::classify::UnsupportedCause;
use crate::dir::Stat;
use crate::error::at_paths;
use crate::reflink::{Method, OpenSource, Transfer, TransferOptions, transfer_at_open};
use crate::sys::at;

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

/// Places `src_name` (under `src_dir`) as the new file `dst_name` under `dst_dir` by
/// `method`, read-only when `mode` has no write bit, and returns the new file's stat taken
/// after its last change. See the module doc. Errors name the two names.
pub fn place_at(
    src_dir: impl AsHandle,
    src_name: &OsStr,
    dst_dir: impl AsHandle,
    dst_name: &OsStr,
    mode: u32,
    method: Method,
) -> io::Result<Placed> {
    let (src_dir, dst_dir) = (src_dir.as_handle(), dst_dir.as_handle());
    let Some(src) = OpenSource::open(src_dir, src_name)? else {
        return Ok(Placed::SourceVanished);
    };
    let opts = TransferOptions {
        method,
        mode: Some(mode),
        preserve_times: false,
    };
    let (done, dst) = transfer_at_open(&src, (src_dir, src_name), (dst_dir, dst_name), &opts)?;
    let finish = |dst: Option<File>| -> io::Result<Stat> {
        let dst = dst.ok_or_else(|| {
            io::Error::other("internal error: a transfer that made a file handed back none")
        })?;
        finish(&dst, mode).map_err(|e| {
            // The original error matters more than a failed cleanup.
            let _ = crate::sys::delete_by_handle(&dst);
            at_paths("place", Path::new(src_name), Path::new(dst_name), e)
        })
    };
    Ok(match done {
        Transfer::Cloned { .. } => Placed::Cloned(finish(dst)?),
        Transfer::Copied { because, .. } => Placed::Copied(finish(dst)?, because),
        Transfer::Unsupported(cause) => Placed::Unsupported(cause),
        Transfer::SourceVanished => Placed::SourceVanished,
    })
}

/// The new file's stat once it is read-only if `mode` has no write bit.
fn finish(dst: &File, mode: u32) -> io::Result<Stat> {
    let st = Stat::of(dst.as_handle())?;
    if mode & 0o222 != 0 || st.attributes & FILE_ATTRIBUTE_READONLY != 0 {
        return Ok(st);
    }
    at::set_attributes(dst.as_handle(), st.attributes | FILE_ATTRIBUTE_READONLY)?;
    // The change of attributes changed the change time the caller records.
    Stat::of(dst.as_handle())
}
