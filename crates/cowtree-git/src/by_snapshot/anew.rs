//! Entries made anew in the snapshot: a clean entry of another owner made the caller's, SRC's
//! changed file carried over anew, an entry kept only once its copy hashes to the target blob;
//! and the permission bits set where the per-file way would give others.

use std::path::Path;

use cowtree_fs::dir::Dir;
use gix::bstr::BStr;
use rustix::fs::{AtFlags, FileType};

use super::decide::{AnewStat, Hashed, Written, written};
use super::{open_in, os, path_of, split};
use crate::error::{Error, Result};
use crate::trust::stat_of;

/// An [`Act::Hash`] entry at `path` (named in `dst_dir`): kept (its bits set to `chmod`)
/// when the snapshot's copy hashes to `id`; `None` when it is another blob and was removed, to
/// be written from objects.
pub(super) fn hash_kept(
    (staging, staging_path): (&Dir, &Path),
    dst_dir: &Dir,
    path: &BStr,
    id: &gix::ObjectId,
    size: u64,
    chmod: Option<u32>,
) -> Result<Option<Written>> {
    let here = staging_path.join(path_of(path));
    let name = os(split(path).1);
    let fd = rustix::fs::openat(
        dst_dir,
        name,
        rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .map_err(|e| Error::io("open", &here)(e.into()))?;
    let same = crate::blob_hash::holds_blob(&fd, size, id).map_err(Error::io("read", &here))?;
    drop(fd);
    if !same {
        dst_dir
            .remove_file(name)
            .map_err(Error::io("remove", &here))?;
        return Ok(None);
    }
    if let Some(bits) = chmod {
        chmod_in(staging, staging_path, path, bits)?;
    }
    let now = dst_dir.stat(name).map_err(Error::io("stat", &here))?;
    Ok(Some(Written {
        i: 0,
        stat: Some(stat_of(&now)),
        bytes: size,
        hashed: Hashed::Kept,
    }))
}

/// Sets the permission bits of `rel` in the tree `root` (at `root_path`).
pub(super) fn chmod_in(root: &Dir, root_path: &Path, rel: &BStr, bits: u32) -> Result<()> {
    let here = root_path.join(path_of(rel));
    let (parent, name) = split(rel);
    let d = open_in(root, parent).map_err(Error::io("open", &here))?;
    rustix::fs::chmodat(
        &d,
        os(name),
        rustix::fs::Mode::from_raw_mode(bits as _),
        AtFlags::empty(),
    )
    .map_err(|e| Error::io("set mode of", &here)(e.into()))
}

/// What [`carry_anew`] needs (none of it tied to one thread).
pub(super) struct Anew<'a> {
    pub(super) src_dir: &'a Dir,
    pub(super) src_root: &'a Path,
    pub(super) staging_path: &'a Path,
    pub(super) strict: bool,
}

/// SRC's file or symlink at `path` (named `name`, in the target directory `rel`, open in
/// the snapshot as `dst_dir`) made anew there, as the per-file way carries it: a file
/// reflinked (copied where it cannot be) with its permission bits and times, a symlink
/// made with its target; nothing when SRC has neither there now.
pub(super) fn carry_anew(
    anew: &Anew<'_>,
    rel: &BStr,
    dst_dir: &Dir,
    path: &BStr,
    name: &std::ffi::OsStr,
    i: usize,
) -> Result<Written> {
    use cowtree_fs::{Method as CopyMethod, Transfer, TransferOptions};
    let src_path = anew.src_root.join(path_of(path));
    let Ok(src_dir) = open_in(anew.src_dir, rel) else {
        return Ok(written(i, None, 0));
    };
    let st = match src_dir
        .try_stat(name)
        .map_err(Error::io("stat", &src_path))?
    {
        Some(st) => st,
        None => return Ok(written(i, None, 0)),
    };
    match FileType::from_raw_mode(st.st_mode) {
        FileType::RegularFile => {
            let opts = TransferOptions {
                method: if anew.strict {
                    CopyMethod::Clone
                } else {
                    CopyMethod::CloneOrCopy
                },
                mode: Some(cowtree_fs::sys::stat_mode(&st) & 0o777),
                preserve_times: true,
            };
            match cowtree_fs::transfer_at(&src_dir, name, dst_dir, name, &opts)
                .map_err(Error::io("clone", &src_path))?
            {
                Transfer::Cloned { bytes } | Transfer::Copied { bytes, .. } => {
                    Ok(written(i, None, bytes))
                }
                Transfer::Unsupported(cause) => Err(Error::strict(src_path, cause)),
                Transfer::SourceVanished => Ok(written(i, None, 0)),
            }
        }
        FileType::Symlink => {
            let target = src_dir
                .read_link(name)
                .map_err(Error::io("read symlink", &src_path))?;
            dst_dir.symlink(&target, name).map_err(Error::io(
                "create symlink",
                anew.staging_path.join(path_of(path)),
            ))?;
            Ok(written(i, None, 0))
        }
        _ => Ok(written(i, None, 0)),
    }
}

/// A clean entry of another owner or group made anew, the caller's, as the per-file way makes
/// it: a file reflinked from the snapshot's own (the same content: the verdict is clean) into
/// a new name with the commit's permission bits `mode`, renamed over it; a symlink written
/// from its blob; either with the times of `st`. DST's stat data for the index.
#[allow(clippy::too_many_arguments)]
pub(super) fn keep_anew(
    anew: &Anew<'_>,
    repo: &gix::Repository,
    target: &gix::index::State,
    entry: &gix::index::Entry,
    dst_dir: &Dir,
    name: &std::ffi::OsStr,
    (st, mode): (AnewStat, u32),
    i: usize,
) -> Result<Written> {
    use cowtree_fs::{Method as CopyMethod, Transfer, TransferOptions};
    let path = entry.path_in(target.path_backing());
    let here = anew.staging_path.join(path_of(path));
    let times = (st.atime, st.mtime);
    if st.symlink {
        dst_dir
            .remove_file(name)
            .map_err(Error::io("remove", &here))?;
        crate::build::write_blob(
            repo,
            None,
            target,
            entry,
            dst_dir,
            anew.staging_path,
            name,
            mode,
            false,
        )?;
    } else {
        let mut tmp = std::ffi::OsString::from(".");
        tmp.push(name);
        tmp.push(".cowtree-own");
        let opts = TransferOptions {
            method: if anew.strict {
                CopyMethod::Clone
            } else {
                CopyMethod::CloneOrCopy
            },
            mode: Some(mode),
            preserve_times: true,
        };
        match cowtree_fs::transfer_at(dst_dir, name, dst_dir, &tmp, &opts)
            .map_err(Error::io("clone", &here))?
        {
            Transfer::Cloned { .. } | Transfer::Copied { .. } => {}
            Transfer::Unsupported(cause) => return Err(Error::strict(here, cause)),
            Transfer::SourceVanished => {
                return Err(Error::io("clone", &here)(
                    std::io::ErrorKind::NotFound.into(),
                ));
            }
        }
        dst_dir
            .rename(&tmp, dst_dir, name)
            .map_err(Error::io("rename into", &here))?;
    }
    dst_dir
        .set_times(name, times.0, times.1)
        .map_err(Error::io("set times of", &here))?;
    let now = dst_dir.stat(name).map_err(Error::io("stat", &here))?;
    Ok(written(i, Some(stat_of(&now)), 0))
}
