//! The thread pool that ingest and checkout run on.
//!
//! A worker spends most of its time blocked in the filesystem (XFS allocation-group and log
//! locks, reads of freshly cloned blocks from the device), so a few workers per core keep the
//! cores busy, as `cowtree clone` found. Each worker holds a bounded number of descriptors
//! (see [`FDS_PER_WORKER`]), and the count is capped so they all fit under the open-file limit.

use std::sync::OnceLock;

use crate::error::{Error, Result};

/// Workers per core.
const PER_CORE: usize = 4;
/// Upper bound on workers.
const MAX_WORKERS: usize = 64;
/// Descriptors one worker may hold at once, with room to spare (a directory, a source file, a
/// staged clone or destination file): the pool is sized so that all workers together stay
/// under the open-file limit.
const FDS_PER_WORKER: usize = 8;

/// Runs `f` on the store's pool (created on first use).
pub(crate) fn install<R: Send>(f: impl FnOnce() -> R + Send) -> Result<R> {
    static POOL: OnceLock<std::result::Result<rayon::ThreadPool, String>> = OnceLock::new();
    let pool = POOL.get_or_init(|| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(workers())
            .thread_name(|i| format!("cowtree-store-{i}"))
            .build()
            .map_err(|e| e.to_string())
    });
    match pool {
        Ok(p) => Ok(p.install(f)),
        Err(e) => Err(Error::msg(format!("cannot start worker threads: {e}"))),
    }
}

fn workers() -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile)
        .current
        .unwrap_or(1024);
    let by_fds = usize::try_from(limit.saturating_sub(64)).unwrap_or(usize::MAX) / FDS_PER_WORKER;
    (cores * PER_CORE).min(MAX_WORKERS).min(by_fds).max(1)
}
