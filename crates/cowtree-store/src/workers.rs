//! The thread pools that ingest and checkout run on.
//!
//! Both are kernel work on filesystem metadata guarded by locks that spin while their holder
//! runs, so more runnable workers than cores mostly queue behind preempted lock holders.
//! Checkout (create, clone, close) gets one worker per core. Ingest also hashes what it
//! records and waits for reads (a clone whose source changed lately is read back from the
//! device; a source whose pages are not cached is read too), so it gets two per core.
//! Measured on XFS with the 80,000-file bench tree on 2 cores: checkout 2.9-3.2 s with 1 per
//! core, 3.5 s with 2 or 4 per core; snapshot 5.8-6.6 s with 2 per core, 6.4-6.6 s with 1,
//! 7.3 s with 4.
//!
//! Each worker holds a bounded number of descriptors (see [`FDS_PER_WORKER`]), and the counts
//! are capped so that all of them fit under the open-file limit.

use std::sync::OnceLock;

use crate::error::{Error, Result};

/// Which pool.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Pool {
    /// Checkout: one worker per core.
    Checkout,
    /// Ingest: two workers per core.
    Ingest,
}

/// Upper bound on workers.
const MAX_WORKERS: usize = 64;
/// Descriptors one worker may hold at once, with room to spare (a directory, a source file, a
/// staged clone or destination file): the pool is sized so that all workers together stay
/// under the open-file limit.
const FDS_PER_WORKER: usize = 8;

type Built = OnceLock<std::result::Result<rayon::ThreadPool, String>>;

/// Runs `f` on pool `which` (created on first use).
pub(crate) fn install<R: Send>(which: Pool, f: impl FnOnce() -> R + Send) -> Result<R> {
    static CHECKOUT: Built = OnceLock::new();
    static INGEST: Built = OnceLock::new();
    let (cell, per_core, name) = match which {
        Pool::Checkout => (&CHECKOUT, 1, "cowtree-checkout"),
        Pool::Ingest => (&INGEST, 2, "cowtree-ingest"),
    };
    let pool = cell.get_or_init(|| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(workers(per_core))
            .thread_name(move |i| format!("{name}-{i}"))
            .build()
            .map_err(|e| e.to_string())
    });
    match pool {
        Ok(p) => Ok(p.install(f)),
        Err(e) => Err(Error::msg(format!("cannot start worker threads: {e}"))),
    }
}

fn workers(per_core: usize) -> usize {
    let cores = cowtree_fs::parallel::cores();
    let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile)
        .current
        .unwrap_or(1024);
    let by_fds = usize::try_from(limit.saturating_sub(64)).unwrap_or(usize::MAX) / FDS_PER_WORKER;
    (cores * per_core).min(MAX_WORKERS).min(by_fds).max(1)
}
