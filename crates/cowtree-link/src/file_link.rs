//! Linking one regular file for one (source device, destination device) pair: the attempt
//! the pair's [`crate::LinkState`] says, and on a failure the fallback it decides, with what
//! ran counted in the run's [`Tally`].

use std::ffi::OsStr;
use std::io;
use std::path::PathBuf;

use cowtree_fs::creation::CreationMask;
use cowtree_fs::dir::Dir;
use cowtree_fs::reflink::OpenSource;
use cowtree_fs::sys::{AsFd, BorrowedFd, OwnedFd};
#[cfg(unix)]
use cowtree_fs::{CopyRange, transfer_at_masked};
use cowtree_fs::{
    HardlinkOutcome, Method, Transfer, TransferOptions, hardlink_at, transfer_at_open,
};
#[cfg(unix)]
use rustix::fs::{AtFlags, Mode, OFlags, openat, statat, symlinkat};
#[cfg(unix)]
use rustix::io::Errno;

use crate::engine::Engine;
use crate::error::LinkError;
use crate::options::{EntryKind, HashAlgo};
use crate::report::{Digest, Tally};
use crate::state::{Attempt, Decision, Failure};

/// What a file link did.
enum Linked {
    /// Linked: see [`LinkedFile`].
    Done(LinkedFile),
    /// The source file was gone.
    Vanished,
}

/// A file [`FileLinker::link_file`] linked.
pub(crate) struct LinkedFile {
    /// How.
    pub method: Attempt,
    /// The bytes of data (`None`: a hardlink whose size was not asked for, see
    /// [`crate::LinkOptions::hardlink_sizes`]).
    pub bytes: Option<u64>,
    /// The new file, still open for writing, where the source came open
    /// ([`FileSrc::opened`]) and the file was cloned or copied: its times are then not given
    /// yet, but the caller's to give, after whatever else it gives the file.
    pub dst: Option<OwnedFd>,
}

impl LinkedFile {
    fn new(method: Attempt, bytes: Option<u64>) -> LinkedFile {
        LinkedFile {
            method,
            bytes,
            dst: None,
        }
    }
}

/// A file's source: a directory handle and a name in it (the current directory and a path
/// for a file named by path), and the permission bits to give the copy (`None`: the
/// source's).
pub(crate) struct FileSrc<'a> {
    pub dir: BorrowedFd<'a>,
    pub name: &'a OsStr,
    pub mode: Option<u32>,
    /// The source, already opened at that name by the caller (to read its owner, links and
    /// attributes), for a clone or copy to use rather than open it again. The caller then
    /// gets the new file back open ([`LinkedFile::dst`]) and gives it its times.
    pub opened: Option<&'a OpenSource>,
}

/// Links files for one device pair, keeping a snapshot of the pair's method so that the
/// shared state is locked only on failures and the first success.
pub(crate) struct FileLinker<'l> {
    engine: &'l Engine,
    /// The (source device, destination device) pair.
    pub key: (u64, u64),
    attempt: Attempt,
    batch_because: Option<Failure>,
    worked: bool,
    /// What creation does to permission bits where this linker creates files (none on
    /// Windows, which gives a new file no bits).
    #[cfg_attr(windows, allow(dead_code))]
    mask: Option<CreationMask>,
}

impl<'l> FileLinker<'l> {
    /// The linker of files for device pair `key` into directories where creation does
    /// `mask` to permission bits (see [`CreationMask`]; `None`: read them back).
    pub fn new(engine: &'l Engine, key: (u64, u64), mask: Option<CreationMask>) -> FileLinker<'l> {
        let pair = engine
            .pairs
            .with_pair(key, engine.opts.mode, engine.opts.strict, |p| *p);
        FileLinker {
            engine,
            key,
            attempt: pair.state.attempt(),
            batch_because: pair.moved_because,
            worked: pair.state.has_worked(),
            mask,
        }
    }
}

impl FileLinker<'_> {
    /// Links the regular file `src` to `dst_name` in `dst_dir` (which must not exist).
    /// Returns what was done, or `None` when the source vanished. `src_full` and
    /// `dst_full` name the entries in messages (and `src_full` is a symlink's target).
    pub fn link_file(
        &mut self,
        src: &FileSrc<'_>,
        dst_dir: &Dir,
        dst_name: &OsStr,
        src_full: &dyn Fn() -> PathBuf,
        dst_full: &dyn Fn() -> PathBuf,
        tally: &mut Tally,
    ) -> Result<Option<LinkedFile>, LinkError> {
        let mut attempt = self.attempt;
        // Set when this one file falls back; the batch's own cause is `batch_because`.
        let mut because: Option<Failure> = None;
        loop {
            let outcome = self
                .try_once(attempt, src, dst_dir, dst_name, src_full)
                .map_err(|e| LinkError::link("link", &src_full(), &dst_full(), e))?;
            let failure = match outcome {
                Ok(Linked::Done(linked)) => {
                    let bytes = linked.bytes.unwrap_or(0);
                    self.count(linked.method, bytes, because, src_full, tally);
                    return Ok(Some(linked));
                }
                Ok(Linked::Vanished) => {
                    tally.vanished += 1;
                    tally.fallback(Failure::SourceVanished, 0, src_full);
                    return Ok(None);
                }
                Err(failure) => failure,
            };
            (attempt, because) = self.fall_back(attempt, failure, src_full, dst_full)?;
        }
    }

    /// Counts a file linked by `method`, `bytes` of data, as a fallback for `because` (this
    /// file's own) or for the pair's cause, and tells the pair the first time its method
    /// works.
    fn count(
        &mut self,
        method: Attempt,
        bytes: u64,
        because: Option<Failure>,
        src_full: &dyn Fn() -> PathBuf,
        tally: &mut Tally,
    ) {
        tally.linked(method, bytes);
        if let Some(f) = because {
            tally.fallback(f, bytes, src_full);
        } else if method == self.attempt {
            if let Some(f) = self.batch_because {
                tally.fallback(f, bytes, src_full);
            }
            if !self.worked {
                self.worked = true;
                let opts = &self.engine.opts;
                self.engine
                    .pairs
                    .with_pair(self.key, opts.mode, opts.strict, |p| {
                        p.state.succeeded(method)
                    });
            }
        }
    }

    /// After `attempt` failed with `failure`: the next attempt and this file's own cause of
    /// falling back (`None`: the pair moved, in this worker or another, and this and later
    /// files use the pair's method and are reported under the pair's cause), or the error
    /// when the pair's state allows no fallback.
    fn fall_back(
        &mut self,
        attempt: Attempt,
        failure: Failure,
        src_full: &dyn Fn() -> PathBuf,
        dst_full: &dyn Fn() -> PathBuf,
    ) -> Result<(Attempt, Option<Failure>), LinkError> {
        let opts = &self.engine.opts;
        let (decision, now, moved_because) =
            self.engine
                .pairs
                .with_pair(self.key, opts.mode, opts.strict, |p| {
                    let d = p.state.failed(attempt, failure);
                    if let Decision::Fallback {
                        batch_moved: true, ..
                    } = d
                    {
                        p.moved_because = Some(failure);
                    }
                    (d, p.state.attempt(), p.moved_because)
                });
        match decision {
            Decision::Fail if opts.strict => Err(LinkError::StrictFallback {
                src: src_full(),
                dst: dst_full(),
                attempt,
                failure,
            }),
            Decision::Fail => Err(LinkError::FailedAfterSuccess {
                src: src_full(),
                dst: dst_full(),
                attempt,
                failure,
            }),
            // This file only; reported under its own cause.
            Decision::Fallback { attempt: next, .. } if failure.is_per_file() => {
                Ok((next, Some(failure)))
            }
            Decision::Fallback { attempt: next, .. } => {
                self.attempt = now;
                self.batch_because = moved_because;
                self.worked = false;
                Ok((next, None))
            }
        }
    }

    fn try_once(
        &self,
        attempt: Attempt,
        src: &FileSrc<'_>,
        dst_dir: &Dir,
        dst_name: &OsStr,
        src_full: &dyn Fn() -> PathBuf,
    ) -> io::Result<Result<Linked, Failure>> {
        let opts = &self.engine.opts;
        #[cfg(unix)]
        let transfer = |method| {
            let mut t = TransferOptions::new(method);
            t.mode = src.mode;
            // Neither Clone nor Copy uses `copy_file_range`: no memo to keep.
            let range = CopyRange::new();
            match src.opened {
                // The caller gives the times, last.
                Some(open) => transfer_at_open(
                    open,
                    (src.dir, src.name),
                    (dst_dir.as_fd(), dst_name),
                    &t,
                    &range,
                    self.mask,
                ),
                None => {
                    t.preserve_times = opts.preserve_times;
                    transfer_at_masked(src.dir, src.name, dst_dir, dst_name, &t, &range, self.mask)
                        .map(|done| (done, None))
                }
            }
        };
        // Windows applies no permission bits (no mask) and copies through the two handles
        // (no in-kernel copy to remember a refusal of).
        #[cfg(windows)]
        let transfer = |method| {
            let mut t = TransferOptions::new(method);
            t.mode = src.mode;
            match src.opened {
                // The caller gives the times, last.
                Some(open) => {
                    transfer_at_open(open, (src.dir, src.name), (dst_dir.as_fd(), dst_name), &t)
                        .map(|(done, dst)| (done, dst.map(OwnedFd::from)))
                }
                None => {
                    t.preserve_times = opts.preserve_times;
                    cowtree_fs::transfer_at(src.dir, src.name, dst_dir, dst_name, &t)
                        .map(|done| (done, None))
                }
            }
        };
        let done = |method, bytes, dst| {
            Ok(Linked::Done(LinkedFile {
                method,
                bytes: Some(bytes),
                dst,
            }))
        };
        Ok(match attempt {
            Attempt::Clone => match transfer(Method::Clone)? {
                (Transfer::Cloned { bytes }, dst) => done(Attempt::Clone, bytes, dst),
                (Transfer::Unsupported(cause), _) => Err(Failure::Clone(cause)),
                (Transfer::SourceVanished, _) => Err(Failure::SourceVanished),
                (Transfer::Copied { bytes, .. }, dst) => done(Attempt::Copy, bytes, dst),
            },
            Attempt::Copy => match transfer(Method::Copy)? {
                (Transfer::Copied { bytes, .. }, dst) => done(Attempt::Copy, bytes, dst),
                (Transfer::Cloned { bytes }, dst) => done(Attempt::Clone, bytes, dst),
                (Transfer::SourceVanished, _) => Ok(Linked::Vanished),
                (Transfer::Unsupported(_), _) => {
                    return Err(io::Error::other("copy reported an unsupported clone"));
                }
            },
            Attempt::Hardlink => match hardlink_at(src.dir, src.name, dst_dir, dst_name)? {
                HardlinkOutcome::Linked if opts.hardlink_sizes => {
                    #[cfg(unix)]
                    let st = statat(dst_dir, dst_name, AtFlags::SYMLINK_NOFOLLOW)?;
                    #[cfg(windows)]
                    let st = dst_dir.stat(dst_name)?;
                    let size = Some(cowtree_fs::sys::stat_size(&st));
                    Ok(Linked::Done(LinkedFile::new(Attempt::Hardlink, size)))
                }
                // A link writes no data: the size is the inode's, which the caller did not
                // ask for (it knows its files' sizes already).
                HardlinkOutcome::Linked => {
                    Ok(Linked::Done(LinkedFile::new(Attempt::Hardlink, None)))
                }
                HardlinkOutcome::Refused(r) => Err(Failure::Hardlink(r)),
                HardlinkOutcome::SourceVanished => Err(Failure::SourceVanished),
            },
            #[cfg(unix)]
            Attempt::Symlink => {
                let st = match statat(src.dir, src.name, AtFlags::SYMLINK_NOFOLLOW) {
                    Ok(st) => st,
                    Err(Errno::NOENT) => return Ok(Ok(Linked::Vanished)),
                    Err(e) => return Err(e.into()),
                };
                symlinkat(src_full(), dst_dir, dst_name)?;
                let size = Some(st.st_size as u64);
                Ok(Linked::Done(LinkedFile::new(Attempt::Symlink, size)))
            }
            // Refused before any work ([`crate::options::unsupported_here`]).
            #[cfg(windows)]
            Attempt::Symlink => {
                return Err(io::Error::new(
                    io::ErrorKind::Unsupported,
                    format!(
                        "symlink mode is not available on Windows ({})",
                        src_full().display()
                    ),
                ));
            }
        })
    }
}

/// What a record says of a file linked by `method` with `bytes` of data: in symlink mode a
/// symlink whose size is its target's length (the source's full path), else a file.
pub(crate) fn record_kind(
    method: Attempt,
    bytes: Option<u64>,
    src_full_len: impl FnOnce() -> usize,
) -> (EntryKind, Option<u64>) {
    if method == Attempt::Symlink {
        (EntryKind::Symlink, Some(src_full_len() as u64))
    } else {
        (EntryKind::File, bytes)
    }
}

/// The content hash of the file `name` in `dir`, read through a new descriptor with
/// [`cowtree_fs::read::hash_fd`], or for SHA-256 [`cowtree_fs::read::read_chunks`] (the same
/// per-thread buffer, no BLAKE3 computed beside it).
pub(crate) fn hash_file(dir: &Dir, name: &OsStr, algo: HashAlgo) -> io::Result<Digest> {
    use sha2::Digest as _;
    #[cfg(unix)]
    let fd = openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    // Relative to the directory's handle, a reparse point refused, as `O_NOFOLLOW` does.
    #[cfg(windows)]
    let fd = dir.open_file(name)?;
    let bytes = match algo {
        HashAlgo::Blake3 => {
            let (_, hash) = cowtree_fs::read::hash_fd(&fd, |_| Ok(()))?;
            hash.as_bytes().to_vec()
        }
        HashAlgo::Sha256 => {
            let mut sha = sha2::Sha256::new();
            cowtree_fs::read::read_chunks(&fd, |chunk| {
                sha.update(chunk);
                Ok(())
            })?;
            sha.finalize().to_vec()
        }
    };
    Ok(Digest { algo, bytes })
}
