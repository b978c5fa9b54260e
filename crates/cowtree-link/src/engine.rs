//! What every call of one linking session shares: the options, the worker count and pool,
//! the fallback state per (source device, destination device) pair, and the cancellation
//! handle. [`crate::Linker`] is the public face of an [`Engine`]; the link passes
//! ([`crate::pass`]) run on one.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use crate::cancel_handle::CancelHandle;
use crate::error::LinkError;
use crate::options::LinkOptions;
use crate::state::{Failure, LinkMode, LinkState};

/// Workers per core when the caller does not say. Cloning a tree is kernel work on
/// filesystem metadata (inode allocation, directory entries, the refcount btree, the log),
/// guarded by locks and mutexes that spin while their holder runs: with more runnable workers
/// than cores, a holder is preempted and the others wait behind it. Measured on XFS with the
/// 80,000-file bench tree on 2 cores (warm and cold cache alike): 1 per core 2.3-2.4 s,
/// 1.5 per core 2.7 s, 2 per core 2.8 s, 4 per core 3.3 s (`cp -a --reflink=always`: 5.5 s).
/// Copying to a slow disk can want more: `--jobs`.
const JOBS_PER_CORE: usize = 1;
/// Upper bound for the default number of workers.
const MAX_DEFAULT_JOBS: usize = 64;

/// Directories queued work may hold open, per worker, at most (a destination directory and
/// its source count two). With [`FDS_WHILE_LINKING`], a worker holds no more descriptors
/// than [`effective_jobs`] allows it.
pub(crate) const HELD_PER_WORKER: usize = 4;

/// Descriptors a worker of the link pass holds itself: the source and destination directory
/// and file of the entry at hand, and (with [`crate::LinkOptions::preserve`]) a handle of the
/// source entry kept for its owner and attributes while the file is linked.
pub(crate) const FDS_WHILE_LINKING: usize = 5;

/// Worker threads to use: as asked (0 = [`JOBS_PER_CORE`] per core, at most
/// [`MAX_DEFAULT_JOBS`]), and few enough that each can hold its descriptors under the process's
/// open-file limit: while linking, [`FDS_WHILE_LINKING`] of its own and [`HELD_PER_WORKER`]
/// held for queued work; while reading the source, the walk's.
pub(crate) fn effective_jobs(requested: usize) -> usize {
    cowtree_fs::workers::budget(
        requested,
        cowtree_fs::workers::Demand {
            per_core: JOBS_PER_CORE,
            min: 1,
            max: MAX_DEFAULT_JOBS,
            fds_per_worker: cowtree_fs::walk::FDS_PER_WORKER
                .max(FDS_WHILE_LINKING + HELD_PER_WORKER),
        },
    )
}

/// The state one session keeps for all its calls.
pub(crate) struct Engine {
    pub opts: LinkOptions,
    pub jobs: usize,
    pub pairs: Pairs,
    pub workers: cowtree_fs::workers::Pool,
    pub cancel: CancelHandle,
}

impl Engine {
    pub fn new(opts: LinkOptions, cancel: CancelHandle) -> Engine {
        let jobs = effective_jobs(opts.jobs);
        Engine {
            opts,
            jobs,
            pairs: Pairs::default(),
            workers: cowtree_fs::workers::Pool::new(jobs, "cowtree-link"),
            cancel,
        }
    }

    /// [`LinkError::Cancelled`] (for the destination `dst`) once the session is cancelled.
    pub fn check_cancel(&self, dst: &std::path::Path) -> Result<(), LinkError> {
        if self.cancel.is_cancelled() {
            return Err(LinkError::Cancelled(dst.to_path_buf()));
        }
        Ok(())
    }
}

/// The fallback state of one (source device, destination device) pair, plus the failure
/// that moved it (every file linked after that is a fallback for that cause).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Pair {
    pub state: LinkState,
    pub moved_because: Option<Failure>,
}

/// Per (source device, destination device) pair: the fallback state. Kept by an [`Engine`]
/// for its whole life.
#[derive(Debug, Default)]
pub(crate) struct Pairs {
    states: Mutex<HashMap<(u64, u64), Pair>>,
}

impl Pairs {
    pub fn with_pair<R>(
        &self,
        key: (u64, u64),
        mode: LinkMode,
        strict: bool,
        f: impl FnOnce(&mut Pair) -> R,
    ) -> R {
        // Pair updates are single assignments of small Copy values, so a poisoned lock still
        // holds consistent data.
        let mut pairs = self.states.lock().unwrap_or_else(PoisonError::into_inner);
        let pair = pairs.entry(key).or_insert_with(|| Pair {
            state: LinkState::new(mode, strict),
            moved_because: None,
        });
        f(pair)
    }
}
