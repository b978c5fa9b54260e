//! How one entry is written: a symlink made, a file cloned from its blob (or copied, as the
//! batch's clone-or-copy state says), with its mode by kind, and counted.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

use cowtree_fs::dir::Dir;
use cowtree_fs::place::{Placed, place_at};
use cowtree_fs::progress::Progress;
use cowtree_fs::{CopyRange, Method};
use cowtree_link::{Attempt, Decision, Failure};
use rustix::fs::Stat;

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
    pub(super) range: &'a CopyRange,
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

/// Makes the symlink `name` in `dir` with target `target`, and counts it; its stat when
/// `ctx.record` asks for it.
fn write_symlink(
    ctx: &Ctx<'_>,
    dir: &Dir,
    name: &OsStr,
    target: &[u8],
) -> std::io::Result<Option<Stat>> {
    dir.symlink(OsStr::from_bytes(target), name)?;
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
    let name = OsStr::from_bytes(e.name);
    // Its path in the tree, for messages (made only for one).
    let path = || {
        let mut p = dir_path.to_vec();
        if !p.is_empty() {
            p.push(b'/');
        }
        p.extend_from_slice(e.name);
        show(&p)
    };
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
    let blob = Store::blob_rel(&hash);
    let poisoned = || Error::internal("a worker panicked");
    let mut attempt = ctx.state.attempt()?;
    let mut reason: Option<&'static str> = None;
    loop {
        let method = match attempt {
            Attempt::Clone => Method::Clone,
            _ => Method::Copy,
        };
        let placed = place_at(ctx.store.blobs(), &blob, dir, name, mode, method, ctx.range)
            .map_err(|source| Error::FromBlob {
                path: path().into(),
                blob: ctx.store.blob_path(&hash),
                source,
            })?;
        let st = match placed {
            Placed::Cloned(st) => {
                ctx.state.succeeded(Attempt::Clone)?;
                c.cloned.fetch_add(1, Ordering::Relaxed);
                c.bytes.fetch_add(st.st_size as u64, Ordering::Relaxed);
                st
            }
            Placed::Copied(st, _) => {
                c.copied.fetch_add(1, Ordering::Relaxed);
                c.bytes.fetch_add(st.st_size as u64, Ordering::Relaxed);
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
            Placed::SourceVanished => {
                return Err(Corrupt::MissingBlob {
                    store: ctx.store.root().to_path_buf(),
                    hash,
                    needed_for: path().into(),
                }
                .into());
            }
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
