//! The worker pools that ingest and checkout run on, sized by [`cowtree_fs::workers::budget`].
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
//! Each worker holds a bounded number of descriptors (see [`CHECKOUT_FDS_PER_WORKER`] and
//! [`INGEST_FDS_PER_WORKER`]), and the counts are capped so that all of them fit under the
//! open-file limit. A pool is started on first
//! use and kept for the process's life.

use std::sync::OnceLock;

use cowtree_fs::workers::{Demand, budget};

/// Which pool.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Pool {
    /// Checkout: one worker per core.
    Checkout,
    /// Ingest: two workers per core.
    Ingest,
}

/// Descriptors one checkout worker may hold at once, with room to spare: a walk's worth (see
/// [`cowtree_fs::walk::FDS_PER_WORKER`]), a source file, a staged clone or destination file.
const CHECKOUT_FDS_PER_WORKER: usize = cowtree_fs::walk::FDS_PER_WORKER + 4;

/// Descriptors one ingest worker may hold at once: a checkout worker's (ingest walks the source
/// with [`cowtree_fs::walk`]), and the sources it opens ahead (see `ingest::LOOKAHEAD`), which
/// only ingest does.
const INGEST_FDS_PER_WORKER: usize = CHECKOUT_FDS_PER_WORKER + crate::ingest::LOOKAHEAD;

/// The pool `which` (started on first use).
pub(crate) fn pool(which: Pool) -> &'static cowtree_fs::workers::Pool {
    static CHECKOUT: OnceLock<cowtree_fs::workers::Pool> = OnceLock::new();
    static INGEST: OnceLock<cowtree_fs::workers::Pool> = OnceLock::new();
    let (cell, per_core, fds, name) = match which {
        Pool::Checkout => (&CHECKOUT, 1, CHECKOUT_FDS_PER_WORKER, "cowtree-checkout"),
        Pool::Ingest => (&INGEST, 2, INGEST_FDS_PER_WORKER, "cowtree-ingest"),
    };
    cell.get_or_init(|| {
        let jobs = budget(0, Demand::per_core(per_core, fds));
        cowtree_fs::workers::Pool::new(jobs, name)
    })
}

/// Runs `f` on pool `which`: rayon's parallel iterators in it use the pool's workers.
pub(crate) fn install<R: Send>(which: Pool, f: impl FnOnce() -> R + Send) -> R {
    pool(which).install(f)
}
