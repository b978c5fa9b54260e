//! How one entry is written: a symlink made, a file cloned from its blob (or copied, as the
//! batch's clone-or-copy state says), with its mode by kind, and counted.
//!
//! On Windows: a file is block-cloned or copied from its blob through handles, and flushed
//! through the handle that wrote it (Windows lets only administrators flush a whole volume,
//! so a checkout there makes each file durable itself; `place.rs` then flushes each
//! directory). Windows has no executable bit: an executable entry is written as a plain file
//! (0755 and 0644 both leave it writable, the one permission Windows keeps), as git for
//! Windows checks out a mode-755 file; the manifest still says what it was. A symlink is
//! made as a file symlink (`Dir::symlink`: the manifest does not say whether its target is a
//! directory), with the manifest's target as it is. A name that is no valid UTF-8 (a
//! snapshot taken on unix can hold one) is refused, naming it: Windows cannot hold it.

use std::borrow::Cow;
use std::collections::HashMap;
use std::ffi::OsStr;
#[cfg(unix)]
use std::os::unix::ffi::OsStrExt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

#[cfg(unix)]
use cowtree_fs::CopyRange;
use cowtree_fs::Method;
use cowtree_fs::dir::{Dir, Stat};
use cowtree_fs::place::Placed;
#[cfg(unix)]
use cowtree_fs::place::place_at;
use cowtree_fs::progress::Progress;
use cowtree_link::{Attempt, Decision, Failure};

use crate::compact::CompactEntry;
use crate::error::{Corrupt, Error, Result};
use crate::manifest::{DataRef, Kind, show};
use crate::store::Store;

use super::batch::Batch;
use super::report::{CheckoutReport, EntryStat};

/// What the entries written count up to, for the [`CheckoutReport`].
pub(super) struct Counters {
    files: AtomicU64,
    symlinks: AtomicU64,
    cloned: AtomicU64,
    copied: AtomicU64,
    bytes: AtomicU64,
    fallbacks: Mutex<HashMap<&'static str, u64>>,
    /// Copy was asked for: copies are not fallbacks.
    copy_requested: bool,
}

impl Counters {
    /// Nothing counted yet; `copy_requested`: copies are what was asked for, not fallbacks.
    pub(super) fn new(copy_requested: bool) -> Counters {
        Counters {
            files: AtomicU64::new(0),
            symlinks: AtomicU64::new(0),
            cloned: AtomicU64::new(0),
            copied: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            fallbacks: Mutex::new(HashMap::new()),
            copy_requested,
        }
    }

    /// What was counted, as the report of a tree of `dirs` directories (not counting the
    /// root); each fallback reason in order.
    pub(super) fn report(self, dirs: u64) -> Result<CheckoutReport> {
        let mut fallbacks: Vec<(String, u64)> = self
            .fallbacks
            .into_inner()
            .map_err(|_| Error::internal("a worker panicked"))?
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        fallbacks.sort();
        Ok(CheckoutReport {
            files: self.files.into_inner(),
            dirs,
            symlinks: self.symlinks.into_inner(),
            cloned: self.cloned.into_inner(),
            copied: self.copied.into_inner(),
            bytes: self.bytes.into_inner(),
            fallbacks,
            ..Default::default()
        })
    }
}

/// What every call of [`write_entry`] shares.
pub(super) struct Ctx<'a> {
    pub(super) store: &'a Store,
    pub(super) state: &'a Batch,
    pub(super) strict: bool,
    pub(super) counters: &'a Counters,
    pub(super) progress: &'a Progress,
    #[cfg(unix)]
    pub(super) range: &'a CopyRange,
    /// `blobs/`'s fan-out directories, opened once (Windows opens one component at a time).
    #[cfg(windows)]
    pub(super) blobs: &'a crate::ingest::BlobDirs<'a>,
    /// Return each entry's stat.
    pub(super) record: bool,
    /// By manifest index, the files whose blobs were still to arrive when the checkout began
    /// (empty when none were: [`super::Arriving`]); written as their blobs arrive, not in the
    /// walk of the tree.
    pub(super) deferred: &'a [bool],
    /// Where each entry's stat goes when the checkout records (by manifest index; empty
    /// when it does not): set by the one item that writes the entry, so that no worker
    /// keeps a list of its own to be merged (that held the stats of the tree twice).
    pub(super) stats: &'a [OnceLock<EntryStat>],
}

/// A name (or a symlink's target: [`os_target`]) of the manifest as the OS takes it: its
/// bytes on unix; on Windows its UTF-8, checked to be a name Windows can hold
/// ([`cowtree_fs::dir::check_name`]: no `:`, no device name, no trailing dot...), and an
/// error before anything is made for one that is not.
#[cfg(unix)]
pub(super) fn os_name(bytes: &[u8]) -> std::io::Result<Cow<'_, OsStr>> {
    Ok(Cow::Borrowed(OsStr::from_bytes(bytes)))
}

/// A name of the manifest as Windows takes it (see the unix one).
#[cfg(windows)]
pub(super) fn os_name(bytes: &[u8]) -> std::io::Result<Cow<'_, OsStr>> {
    let name = os_target(bytes)?;
    cowtree_fs::dir::check_name(&name)?;
    Ok(name)
}

/// A symlink's target of the manifest as the OS takes it: its bytes on unix.
#[cfg(unix)]
fn os_target(bytes: &[u8]) -> std::io::Result<Cow<'_, OsStr>> {
    Ok(Cow::Borrowed(OsStr::from_bytes(bytes)))
}

/// A symlink's target (or a name) of the manifest as Windows takes it: its UTF-8, and an
/// error for bytes that are not (Windows cannot hold them).
#[cfg(windows)]
fn os_target(bytes: &[u8]) -> std::io::Result<Cow<'_, OsStr>> {
    std::str::from_utf8(bytes)
        .map(|s| Cow::Borrowed(OsStr::new(s)))
        .map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "the name is not valid UTF-8: Windows cannot hold it",
            )
        })
}

/// Makes the symlink `name` in `dir` with target `target`, and counts it; its stat when
/// `ctx.record` asks for it.
fn write_symlink(
    ctx: &Ctx<'_>,
    dir: &Dir,
    name: &OsStr,
    target: &[u8],
) -> std::io::Result<Option<Stat>> {
    dir.symlink(&os_target(target)?, name)?;
    let st = if ctx.record {
        Some(dir.stat(name)?)
    } else {
        None
    };
    ctx.counters.symlinks.fetch_add(1, Ordering::Relaxed);
    ctx.progress.add(1, 0);
    Ok(st)
}

/// Writes entry `e` into `dir`, the directory at `dir_path` (its path in the tree, which
/// errors name); returns its stat when `ctx.record` asks for it.
pub(super) fn write_entry(
    ctx: &Ctx<'_>,
    dir: &Dir,
    dir_path: &[u8],
    e: CompactEntry<'_>,
) -> Result<Option<Stat>> {
    let c = ctx.counters;
    // Its path in the tree, for messages (made only for one).
    let path = || {
        let mut p = dir_path.to_vec();
        if !p.is_empty() {
            p.push(b'/');
        }
        p.extend_from_slice(e.name);
        show(&p)
    };
    let name = os_name(e.name).map_err(|err| Error::io_at("", path(), err))?;
    let name = &*name;
    let hash = match e.data {
        DataRef::Target(t) => {
            return write_symlink(ctx, dir, name, t).map_err(|err| Error::io_at("", path(), err));
        }
        DataRef::Blob { hash, .. } => hash,
        DataRef::None => return Ok(None),
    };
    let mode = if e.kind == Kind::Executable {
        0o755
    } else {
        0o644
    };
    #[cfg(unix)]
    let blob = Store::blob_rel(&hash);
    #[cfg(windows)]
    let blob = match ctx.blobs.get(&hash, false) {
        Ok(found) => found,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            return Err(missing(ctx, hash, path()));
        }
        Err(source) => {
            return Err(Error::FromBlob {
                path: path().into(),
                blob: ctx.store.blob_path(&hash),
                source,
            });
        }
    };
    let poisoned = || Error::internal("a worker panicked");
    let mut attempt = ctx.state.attempt()?;
    let mut reason: Option<&'static str> = None;
    loop {
        let method = match attempt {
            Attempt::Clone => Method::Clone,
            _ => Method::Copy,
        };
        #[cfg(unix)]
        let placed = place_at(ctx.store.blobs(), &blob, dir, name, mode, method, ctx.range);
        #[cfg(windows)]
        let placed = place_durably((blob.0, &blob.1), dir, name, mode, method);
        let placed = placed.map_err(|source| Error::FromBlob {
            path: path().into(),
            blob: ctx.store.blob_path(&hash),
            source,
        })?;
        let st = match placed {
            Placed::Cloned(st) => {
                ctx.state.succeeded(Attempt::Clone)?;
                c.cloned.fetch_add(1, Ordering::Relaxed);
                c.bytes
                    .fetch_add(cowtree_fs::sys::stat_size(&st), Ordering::Relaxed);
                st
            }
            Placed::Copied(st, _) => {
                c.copied.fetch_add(1, Ordering::Relaxed);
                c.bytes
                    .fetch_add(cowtree_fs::sys::stat_size(&st), Ordering::Relaxed);
                if !c.copy_requested {
                    let why = match reason {
                        Some(r) => Some(r),
                        None => ctx.state.reason()?,
                    };
                    let why = why.unwrap_or("clone-not-attempted");
                    *c.fallbacks
                        .lock()
                        .map_err(|_| poisoned())?
                        .entry(why)
                        .or_default() += 1;
                }
                st
            }
            Placed::SourceVanished => return Err(missing(ctx, hash, path())),
            Placed::Unsupported(cause) => {
                let failure = Failure::Clone(cause);
                match ctx.state.failed(Attempt::Clone, failure)? {
                    Decision::Fallback { attempt: next, .. } => {
                        reason = Some(failure.as_str());
                        attempt = next;
                        continue;
                    }
                    Decision::Fail if ctx.strict => {
                        return Err(Error::Strict(format!(
                            "a clone was required (--mode clone, --strict): cannot clone {} \
                             from the store ({}: {}); refusing to copy",
                            path(),
                            cause.as_str(),
                            cause.describe()
                        )));
                    }
                    Decision::Fail => {
                        return Err(Error::CloneFailedAfterSuccess {
                            path: path().into(),
                            reason: cause.as_str(),
                        });
                    }
                }
            }
        };
        c.files.fetch_add(1, Ordering::Relaxed);
        ctx.progress.add(1, e.size());
        return Ok(ctx.record.then_some(st));
    }
}

/// The store lacks the blob `hash` that the entry at `path` needs.
fn missing(ctx: &Ctx<'_>, hash: crate::hash::Hash, path: String) -> Error {
    Corrupt::MissingBlob {
        store: ctx.store.root().to_path_buf(),
        hash,
        needed_for: path.into(),
    }
    .into()
}

/// [`cowtree_fs::place::place_at`] on Windows, made durable: the blob `src` (its fan-out
/// directory and name) block-cloned or copied by `method` to the new file `name` in `dir`,
/// flushed through the handle that wrote it (see the module doc), and its stat taken then.
#[cfg(windows)]
fn place_durably(
    (src_dir, src_name): (&Dir, &OsStr),
    dir: &Dir,
    name: &OsStr,
    mode: u32,
    method: Method,
) -> std::io::Result<Placed> {
    use std::os::windows::io::AsHandle;

    use cowtree_fs::reflink::OpenSource;
    use cowtree_fs::{Transfer, TransferOptions, transfer_at_open};

    let Some(src) = OpenSource::open(src_dir, src_name)? else {
        return Ok(Placed::SourceVanished);
    };
    let opts = TransferOptions {
        method,
        mode: Some(mode),
        preserve_times: false,
    };
    let (done, file) = transfer_at_open(
        &src,
        (src_dir.as_handle(), src_name),
        (dir.as_handle(), name),
        &opts,
    )?;
    let finish = |file: Option<std::fs::File>| -> std::io::Result<Stat> {
        let file = file.ok_or_else(|| {
            std::io::Error::other("internal error: a transfer that made a file handed back none")
        })?;
        file.sync_all()?;
        cowtree_fs::sys::fstat(file.as_handle())
    };
    Ok(match done {
        Transfer::Cloned { .. } => Placed::Cloned(finish(file)?),
        Transfer::Copied { because, .. } => Placed::Copied(finish(file)?, because),
        Transfer::Unsupported(cause) => Placed::Unsupported(cause),
        Transfer::SourceVanished => Placed::SourceVanished,
    })
}
