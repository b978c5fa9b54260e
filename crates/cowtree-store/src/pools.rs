//! The worker pools that ingest and checkout run on, sized by [`cowtree_fs::workers::budget`].
//!
//! Both are kernel work on filesystem metadata guarded by locks that spin while their holder
//! runs, so more runnable workers than cores mostly queue behind preempted lock holders.
//! Checkout (create, clone, close) gets one worker per core. Ingest also hashes what it
//! records and waits for reads (a source whose pages or inode are not cached is read from the
//! device; so is a clone whose source changed lately), so it gets two per core, and a [`Gate`]
//! lets only one per core clone at a time (the `FICLONE` into an unnamed staging file; where
//! the store has no `O_TMPFILE`, the whole named-staging transfer: create, clone, mode).
//! Measured on XFS with the 80,000-file bench tree on 2 cores: checkout 2.9-3.2 s with 1 per
//! core, 3.5 s with 2 or 4 per core; snapshot 5.8-6.6 s with 2 per core, 6.4-6.6 s with 1,
//! 7.3 s with 4 (when each clone was read back to be hashed). For the gate, see [`Gate`].
//!
//! Each worker holds a bounded number of descriptors (see [`CHECKOUT_FDS_PER_WORKER`] and
//! [`INGEST_FDS_PER_WORKER`]), and the counts are capped so that all of them fit under the
//! open-file limit. A pool is started on first
//! use and kept for the process's life.

use std::sync::{Condvar, Mutex, MutexGuard, OnceLock, PoisonError};

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

/// Files an ingest worker opens ahead of the one it records, their reads started (see
/// `readahead.rs`): enough to keep reads of cold sources in flight beside the clone, hash and
/// link of the current file; each holds a descriptor (counted below).
pub(crate) const LOOKAHEAD: usize = 2;

/// Descriptors one ingest worker may hold at once: a checkout worker's (ingest walks the source
/// with [`cowtree_fs::walk`]), and the sources it opens ahead ([`LOOKAHEAD`]), which only
/// ingest does.
const INGEST_FDS_PER_WORKER: usize = CHECKOUT_FDS_PER_WORKER + LOOKAHEAD;

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

/// At most a fixed number of holders at once: a counting semaphore for a step that runs
/// best with fewer workers than the pool has.
///
/// Ingest's `FICLONE` is such a step. On XFS a clone updates the reference counts of the
/// source's extents under the lock of their allocation group's free-space header (AGF); the
/// files of one directory share a group, so two per core cloning at once mostly queue on one
/// such lock, which sleeps rather than spins, and the cores idle. Measured on XFS (4 groups)
/// on 2 cores, snapshots into an empty store, 3-6 interleaved rounds (the three choices in
/// the same order in every round, so not alternated), medians (`perf lock contention`: 2.42 s
/// of waits on that lock with 4 workers, 0.09 s with 2):
///
/// | tree, page cache | 4 workers | 2 workers | 4 workers, 2 in `FICLONE` |
/// |---|---|---|---|
/// | bench tree, pages cached | 2.65 s | 2.37 s | 2.40 s |
/// | bench tree, data pages dropped | 4.96 s | 5.18 s | 4.80 s |
/// | bench tree, inodes dropped too | 5.58 s | 6.07 s | 5.55 s |
/// | vendored crates, pages cached | 0.505 s | 0.505 s | 0.47 s |
/// | vendored crates, data pages dropped | 0.93 s | 1.095 s | 0.96 s |
///
/// Two workers per core keep the cores busy while some wait for the device (opening a cold
/// inode, reading cold pages to hash them); the gate keeps them from queueing on the clone's
/// lock. A clone also writes back the source's dirty pages first, so a tree written moments
/// ago holds places while that happens; the first snapshot of a freshly generated bench tree
/// took 5.1 s with the gate and 6.8 s without it (one run each, bench/README).
///
/// Each [`crate::ingest::Putter`] has its own gate, so two snapshots running in one process
/// let in one clone per core each. Above the pools' caps (64 ingest workers, 16 for a
/// worktree scan) a gate of one place per core admits every worker, and with `--jobs 1` a
/// scan's minimum of workers share one place.
pub(crate) struct Gate {
    free: Mutex<usize>,
    freed: Condvar,
}

impl Gate {
    /// A gate for `holders` at once (at least one).
    pub(crate) fn new(holders: usize) -> Gate {
        Gate {
            free: Mutex::new(holders.max(1)),
            freed: Condvar::new(),
        }
    }

    /// A gate for one holder per core the pools are sized for ([`cowtree_fs::parallel::cores`]).
    pub(crate) fn per_core() -> Gate {
        Gate::new(cowtree_fs::parallel::cores())
    }

    /// Waits for a free place and holds it until the pass is dropped.
    pub(crate) fn enter(&self) -> Pass<'_> {
        let mut free = self.lock();
        while *free == 0 {
            free = self
                .freed
                .wait(free)
                .unwrap_or_else(PoisonError::into_inner);
        }
        *free -= 1;
        Pass(self)
    }

    /// The count of free places. Poisoning is ignored: the count is changed only by a
    /// decrement or an increment, each done whole under the lock.
    fn lock(&self) -> MutexGuard<'_, usize> {
        self.free.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A place held in a [`Gate`], given back when dropped.
pub(crate) struct Pass<'g>(&'g Gate);

impl Drop for Pass<'_> {
    fn drop(&mut self) {
        *self.0.lock() += 1;
        self.0.freed.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::Gate;

    #[test]
    fn a_gate_never_holds_more_than_its_places_and_lets_every_caller_through() {
        for places in [1, 2, 3] {
            let gate = Gate::new(places);
            let inside = AtomicUsize::new(0);
            let most = AtomicUsize::new(0);
            let passed = AtomicUsize::new(0);
            std::thread::scope(|s| {
                for _ in 0..8 {
                    s.spawn(|| {
                        for _ in 0..20 {
                            let _pass = gate.enter();
                            let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
                            most.fetch_max(now, Ordering::SeqCst);
                            std::thread::sleep(Duration::from_micros(200));
                            inside.fetch_sub(1, Ordering::SeqCst);
                            passed.fetch_add(1, Ordering::SeqCst);
                        }
                    });
                }
            });
            assert_eq!(passed.load(Ordering::SeqCst), 8 * 20);
            // Eight threads sleeping inside fill every place, and never more than that.
            assert_eq!(most.load(Ordering::SeqCst), places, "{places} places");
        }
        // Zero places would block forever: it is one.
        let gate = Gate::new(0);
        drop(gate.enter());
        drop(gate.enter());
    }
}
