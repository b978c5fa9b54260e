//! A regular file as the source, linked like `cp` does: to a new path, over an existing file,
//! or into an existing directory under its own name; made in a staging directory of its own
//! beside the target and renamed into place.

use std::ffi::OsStr;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Instant;

use cowtree_fs::dir::Dir;
use cowtree_fs::dir::{FileType, Stat};
use cowtree_fs::sys::{AsFd, EntryFd, Ino, open_entry};

use crate::destination::open_parent;
use crate::engine::Engine;
use crate::error::LinkError;
use crate::file_link::{FileLinker, FileSrc, LinkedFile, hash_file, record_kind};
use crate::keep::{ModeStep, Src, check_made, keep};
use crate::link_staging::Staging;
use crate::options::OnExisting;
use crate::report::{Digest, LinkReport, RecordEntry, Tally};
use crate::state::Attempt;

/// Where the file goes: `name` in the directory `dir`, at `dir_path`.
#[derive(Clone, Copy)]
struct Target<'a> {
    dir: &'a Dir,
    dir_path: &'a Path,
    name: &'a OsStr,
}

/// The file linked in its staging directory, not yet in place.
struct Staged<'a> {
    staging: Staging<'a>,
    method: Attempt,
    bytes: Option<u64>,
    /// Its content hash, when the record asks for one.
    hash: Option<Digest>,
}

/// A regular file as the source: like `cp`. `dst` may be a new file path or an existing
/// directory (the file goes inside it, under its own name).
pub(crate) fn link_single_file(
    engine: &Engine,
    src_canon: &Path,
    src_id: (u64, Ino),
    dst: &Path,
    started: Instant,
) -> Result<LinkReport, LinkError> {
    let opts = &engine.opts;
    let (dst_name, parent_path, parent) = open_parent(dst)?;
    let src_name = src_canon
        .file_name()
        .ok_or_else(|| LinkError::SourceNotLinkable(src_canon.to_path_buf(), "root directory"))?;
    let src_parent = src_canon.parent().unwrap_or(Path::new("/"));
    let src_dir = Dir::open(src_parent).map_err(|e| LinkError::io("open", src_parent, e))?;

    let into_dir = std::fs::metadata(dst).map(|m| m.is_dir()).unwrap_or(false);
    let opened;
    let at = if into_dir {
        opened = Dir::open(dst).map_err(|e| LinkError::io("open", dst, e))?;
        Target {
            dir: &opened,
            dir_path: dst,
            name: src_name,
        }
    } else {
        Target {
            dir: &parent,
            dir_path: parent_path,
            name: dst_name,
        }
    };
    let target = at.dir_path.join(at.name);
    let existing = at
        .dir
        .try_stat(at.name)
        .map_err(|e| LinkError::io("stat", &target, e))?;
    if let Some(st) = &existing
        && let Some(skipped) = meet_existing(engine, st, src_id, &target, started)?
    {
        return Ok(skipped);
    }
    let src = FileSrc {
        dir: src_dir.as_fd(),
        name: src_name,
        mode: None,
        opened: None,
    };
    let mut tally = Tally::default();
    let staged = link_in_staging(engine, &src, (src_canon, src_id.0), at, &target, &mut tally)?;
    let Staged {
        staging,
        method,
        bytes,
        hash,
    } = staged;
    place(engine, staging, at, &target, existing.is_some())?;
    if existing.is_some() {
        tally.replaced += 1;
    }
    let mut report = tally.into_report(target, started.elapsed());
    if opts.record || opts.hash.is_some() {
        let (kind, size) = record_kind(method, bytes, || src_canon.as_os_str().len());
        report.record.push(RecordEntry {
            path: PathBuf::from(at.name),
            kind,
            size,
            method: Some(method),
            hash,
            source: 0,
            from: Some(src_canon.to_path_buf()),
        });
    }
    Ok(report)
}

/// What the entry `st` already at `target` means: an error (it is the source itself, or a
/// directory in the way, or [`OnExisting::Fail`]), the report of a skip
/// ([`OnExisting::Skip`]), or `None`: it is replaced.
fn meet_existing(
    engine: &Engine,
    st: &Stat,
    src_id: (u64, Ino),
    target: &Path,
    started: Instant,
) -> Result<Option<LinkReport>, LinkError> {
    if (cowtree_fs::sys::stat_dev(st), cowtree_fs::sys::stat_ino(st)) == src_id {
        return Err(LinkError::SameSourceAndDestination(target.to_path_buf()));
    }
    match engine.opts.on_existing {
        OnExisting::Fail => Err(LinkError::DestinationExists(target.to_path_buf())),
        OnExisting::Skip => {
            let tally = Tally {
                skipped: 1,
                ..Tally::default()
            };
            Ok(Some(
                tally.into_report(target.to_path_buf(), started.elapsed()),
            ))
        }
        OnExisting::Overwrite if cowtree_fs::sys::stat_file_type(st).is_dir() => {
            Err(LinkError::directory_in_the_way(target))
        }
        OnExisting::Overwrite => Ok(None),
    }
}

/// Links `src` (the file at `src_canon`, on device `src_dev`) under `at`'s name in a staging
/// directory of its own beside `at`, and hashes it when the record asks for that.
fn link_in_staging<'a>(
    engine: &Engine,
    src: &FileSrc<'_>,
    (src_canon, src_dev): (&Path, u64),
    at: Target<'a>,
    target: &Path,
    tally: &mut Tally,
) -> Result<Staged<'a>, LinkError> {
    let dst_dev = at
        .dir
        .stat_self()
        .map(|st| cowtree_fs::sys::stat_dev(&st))
        .map_err(|e| LinkError::io("stat", at.dir_path, e))?;
    let mut files = FileLinker::new(engine, (src_dev, dst_dev), None);
    // Made in a staging directory of its own beside the target (named and locked like a
    // tree's, see `crate::link_staging`), then renamed out over the target: the staging
    // directory is created and the rename made only while the process is not stopping (see
    // `cowtree_fs::staging::stop_staging`), so a signal handler that lists this process's
    // staging finds the file's too, and never sees the target appear after it looked. Stale
    // staging of a killed run is not looked for here: that would list the whole directory for
    // every file (`cowtree clone F1 ... FN DIR` into a big DIR); one left is recognisable by
    // its name and free lock, as a temporary file left before this was.
    let staging = Staging::create(at.dir, at.dir_path, at.name)?;
    let linked = files.link_file(
        src,
        &staging.dir,
        at.name,
        &|| src_canon.to_path_buf(),
        &|| target.to_path_buf(),
        tally,
    )?;
    let Some(LinkedFile { method, bytes, .. }) = linked else {
        return Err(LinkError::SourceMissing(src_canon.to_path_buf()));
    };
    if matches!(method, Attempt::Clone | Attempt::Copy) {
        keep_file(engine, src, (&staging.dir, at.name), tally)
            .map_err(|e| LinkError::io("keep owner and attributes of", target, e))?;
    }
    let hash = match engine.opts.hash {
        Some(algo) if method != Attempt::Symlink => Some(
            hash_file(&staging.dir, at.name, algo).map_err(|e| LinkError::io("hash", target, e))?,
        ),
        _ => None,
    };
    Ok(Staged {
        staging,
        method,
        bytes,
        hash,
    })
}

/// Gives the file `name` just made in `dir` what [`crate::Preserve`] asks of `src` (see
/// [`crate::keep`]); nothing in hardlink and symlink modes, which share the source's inode or
/// point at it.
fn keep_file(
    engine: &Engine,
    src: &FileSrc<'_>,
    (dir, name): (&Dir, &OsStr),
    tally: &mut Tally,
) -> io::Result<()> {
    let preserve = engine.opts.preserve;
    if !preserve.metadata() {
        return Ok(());
    }
    let src_fd = open_entry(src.dir, src.name)?;
    let st = cowtree_fs::sys::fstat(src_fd.as_fd())?;
    let dst = open_entry(dir.as_fd(), name)?;
    let made = check_made(dst.as_fd(), FileType::is_file)?;
    keep(
        preserve,
        Src::of(EntryFd::Path(src_fd.as_fd()), &st),
        (EntryFd::Path(dst.as_fd()), Some(made)),
        ModeStep::SetId,
        &mut tally.not_kept,
    )?;
    Ok(())
}

/// Renames the file in `staging` into place at `at` (over the entry there when `replace`),
/// unless the session was cancelled, and removes the staging directory.
fn place(
    engine: &Engine,
    staging: Staging<'_>,
    at: Target<'_>,
    target: &Path,
    replace: bool,
) -> Result<(), LinkError> {
    let opts = &engine.opts;
    if opts.sync {
        at.dir
            .sync_filesystem()
            .map_err(|e| LinkError::io("sync", target, e))?;
    }
    engine.check_cancel(target)?;
    let placed = cowtree_fs::staging::unless_stopping(|| {
        if replace {
            staging.dir.rename(at.name, at.dir, at.name)
        } else {
            staging.dir.rename_noreplace(at.name, at.dir, at.name)
        }
    });
    if let Err(e) = placed {
        if e.kind() == io::ErrorKind::AlreadyExists {
            return Err(LinkError::DestinationExists(target.to_path_buf()));
        }
        return Err(LinkError::io("rename into place", target, e));
    }
    if opts.sync {
        at.dir
            .sync()
            .map_err(|e| LinkError::io("sync", at.dir_path, e))?;
    }
    // The staging directory goes when dropped, empty (in hardlink mode, a rename of a link
    // over another link of the same inode does nothing and leaves the name in it); best
    // effort: one left is recognisable, and the next run removes it.
    drop(staging);
    Ok(())
}
