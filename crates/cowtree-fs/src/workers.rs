//! Worker threads for every parallel job of cowtree: how many ([`budget`], the one rule), a
//! [`Pool`] of that many (a rayon pool for parallel iterators, kept for as long as its owner
//! wants it), and a work queue run on as many threads of its own ([`Pool::run`]: items may push
//! more items, the first error stops everyone, a panic is re-raised, each worker keeps its own
//! state).
//!
//! [`crate::walk`] runs a directory walk on this queue; callers whose work is not a walk of a
//! directory tree (linking a planned tree, checking out a manifest) use the queue directly.

use std::sync::{Condvar, Mutex, OnceLock, PoisonError};

/// Descriptors the process keeps for itself (standard streams, the store's lock, the caller's
/// own files) before any worker is counted against the open-file limit.
pub const RESERVED_FDS: usize = 64;

/// What one kind of work asks of [`budget`]: how many workers per core it wants when the caller
/// does not say, within which bounds, and how many descriptors one worker holds at most.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Demand {
    /// Workers per core (see [`crate::parallel::cores`]) when the caller asks for no count.
    pub per_core: usize,
    /// Fewest workers when the caller asks for no count.
    pub min: usize,
    /// Most workers when the caller asks for no count.
    pub max: usize,
    /// Descriptors one worker may hold at once (a walk's own included: see
    /// [`crate::walk::FDS_PER_WORKER`]). All workers together stay under the open-file limit.
    pub fds_per_worker: usize,
}

impl Demand {
    /// `per_core` workers per core, at least 1, at most 64, each holding at most
    /// `fds_per_worker` descriptors.
    pub const fn per_core(per_core: usize, fds_per_worker: usize) -> Demand {
        Demand {
            per_core,
            min: 1,
            max: 64,
            fds_per_worker,
        }
    }
}

/// The number of workers for `demand`: `requested` when the caller gave one (a `--jobs N`;
/// 0 means "decide"), else `per_core` per core within `min..=max`; in both cases few enough that
/// each can hold its `fds_per_worker` descriptors under the process's open-file limit (less
/// [`RESERVED_FDS`]), and at least 1.
pub fn budget(requested: usize, demand: Demand) -> usize {
    let open_files = open_file_limit();
    budget_for(requested, demand, crate::parallel::cores(), open_files)
}

/// [`budget`] with the core count and the open-file limit given: the rule itself.
pub fn budget_for(requested: usize, demand: Demand, cores: usize, open_files: usize) -> usize {
    let want = if requested == 0 {
        cores
            .saturating_mul(demand.per_core)
            .min(demand.max)
            .max(demand.min)
    } else {
        requested
    };
    let by_fds = open_files.saturating_sub(RESERVED_FDS) / demand.fds_per_worker.max(1);
    want.min(by_fds).max(1)
}

/// Sizes every pool built from now on for `n` cores (0: the machine's): the caller's `--jobs`.
/// Sets [`crate::parallel::set_cores`], and sizes rayon's global pool (which runs the parallel
/// iterators called outside any [`Pool`]) to `n` threads if nothing has run on it yet.
pub fn limit_cores(n: usize) {
    crate::parallel::set_cores(n);
    if n > 0 {
        // Fails only when the global pool is already built; it then keeps its size.
        let _ = rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build_global();
    }
}

/// The number of workers of the queue run ([`Pool::run`], [`run`]) or pool (see
/// [`Pool::install`]) the caller runs on; outside both, of rayon's global pool.
pub fn current_workers() -> usize {
    match WORKER.get() {
        Some(w) => w.count,
        None => rayon::current_num_threads(),
    }
}

/// The caller's index among the workers of the queue run or pool it runs on; `None` outside
/// both.
pub fn worker_index() -> Option<usize> {
    match WORKER.get() {
        Some(w) => Some(w.index),
        None => rayon::current_thread_index(),
    }
}

/// Which queue run the calling thread is a worker of, and which worker it is.
#[derive(Debug, Clone, Copy)]
struct Worker {
    /// The address of the run's queue.
    queue: usize,
    index: usize,
    count: usize,
}

thread_local! {
    static WORKER: std::cell::Cell<Option<Worker>> = const { std::cell::Cell::new(None) };
}

/// The soft limit on open files (`RLIMIT_NOFILE`), 1024 when it cannot be read.
#[cfg(unix)]
pub fn open_file_limit() -> usize {
    rustix::process::getrlimit(rustix::process::Resource::Nofile)
        .current
        .map_or(1024, |n| usize::try_from(n).unwrap_or(usize::MAX))
}

/// Handles the budget lets all workers hold on Windows. A process has no open-file limit
/// there (its handle table grows to about 16 million); this keeps the bound on held handles
/// that the walk and its callers promise, at a size no worker count comes near.
#[cfg(windows)]
pub fn open_file_limit() -> usize {
    1 << 16
}

/// The workers of one kind of work: how many ([`Pool::jobs`]), the queue runs on them
/// ([`Pool::run`]) and a rayon pool of that many threads for parallel iterators
/// ([`Pool::install`]), started on first use and kept until the pool is dropped.
///
/// A queue run's workers are threads of their own, never jobs of a rayon pool: a rayon
/// thread waiting in a `join` (BLAKE3 hashing a large read with `update_rayon`, a parallel
/// iterator inside an item) runs other jobs of its pool meanwhile, and a queue worker run that
/// way on top of an unfinished item of its own queue would wait for that item forever. Starting
/// a run's threads costs tens of microseconds each, next to runs that take milliseconds at
/// least.
pub struct Pool {
    rayon: OnceLock<Option<rayon::ThreadPool>>,
    name: &'static str,
    jobs: usize,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("name", &self.name)
            .field("jobs", &self.jobs)
            .finish()
    }
}

impl Pool {
    /// `jobs` workers (threads named `<name>-<i>`).
    pub fn new(jobs: usize, name: &'static str) -> Pool {
        Pool {
            rayon: OnceLock::new(),
            name,
            jobs: jobs.max(1),
        }
    }

    /// The number of workers.
    pub fn jobs(&self) -> usize {
        self.jobs
    }

    /// The rayon pool of `jobs` threads, started on first use; `None` if its threads cannot
    /// be started.
    fn rayon(&self) -> Option<&rayon::ThreadPool> {
        let name = self.name;
        self.rayon
            .get_or_init(|| {
                rayon::ThreadPoolBuilder::new()
                    .num_threads(self.jobs)
                    .thread_name(move |i| format!("{name}-{i}"))
                    .build()
                    .ok()
            })
            .as_ref()
    }

    /// Runs `f` inside the pool, so that rayon's parallel iterators (and [`worker_index`],
    /// [`current_workers`]) in it use the pool's `jobs` threads, one for a pool of one; on
    /// the caller's thread if the threads cannot be started.
    pub fn install<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        match self.rayon() {
            Some(pool) => pool.install(f),
            None => f(),
        }
    }

    /// Sorts `v` (unstably) on the pool's threads.
    pub fn sort_unstable_by<T: Send>(
        &self,
        v: &mut [T],
        cmp: impl Fn(&T, &T) -> std::cmp::Ordering + Sync + Send,
    ) {
        use rayon::slice::ParallelSliceMut as _;
        match self.rayon().filter(|_| self.jobs > 1) {
            Some(pool) => pool.install(|| v.par_sort_unstable_by(cmp)),
            None => v.sort_unstable_by(cmp),
        }
    }

    /// Runs `work` over `initial` and every item it pushes, on at most `jobs` workers (and
    /// the pool's count). Each worker starts with `make_local()` and works on that state; the
    /// states of all workers are returned, or the first error (no new item starts after an
    /// error). A panic in `work` stops the run and is re-raised. Items should carry no open
    /// descriptors (or a bounded number: see [`crate::walk`]), so that a long queue does not
    /// run into the open-file limit.
    pub fn run<T, W, E>(
        &self,
        jobs: usize,
        initial: Vec<T>,
        make_local: impl Fn() -> W + Sync,
        work: impl Fn(&mut W, T, &mut Vec<T>) -> Result<(), E> + Sync,
    ) -> Result<Vec<W>, E>
    where
        T: Send,
        W: Send,
        E: Send,
    {
        self.run_publishing(jobs, initial, make_local, collect_then_publish(work))
    }

    /// [`Pool::run`] whose `work` hands the items it pushes to `publish` (which moves them
    /// out of the vector), so that other workers can start on them while it goes on.
    pub fn run_publishing<T, W, E>(
        &self,
        jobs: usize,
        initial: Vec<T>,
        make_local: impl Fn() -> W + Sync,
        work: impl Fn(&mut W, T, &Publish<'_, T>) -> Result<(), E> + Sync,
    ) -> Result<Vec<W>, E>
    where
        T: Send,
        W: Send,
        E: Send,
    {
        run_on_threads(jobs.min(self.jobs), self.name, initial, make_local, work)
    }
}

/// Hands items a work function pushed to the queue (moving them out of the vector).
pub type Publish<'a, T> = dyn Fn(&mut Vec<T>) + 'a;

/// A [`Pool::run`] work function as one that publishes what it pushed when it is done (and
/// nothing when it fails).
fn collect_then_publish<T, W, E>(
    work: impl Fn(&mut W, T, &mut Vec<T>) -> Result<(), E> + Sync,
) -> impl Fn(&mut W, T, &Publish<'_, T>) -> Result<(), E> + Sync {
    move |local, item, publish| {
        let mut pushed = Vec::new();
        work(local, item, &mut pushed)?;
        publish(&mut pushed);
        Ok(())
    }
}

/// [`Pool::run`] on `jobs` threads started for this run alone (inline on the caller's thread
/// when `jobs` is 1).
pub fn run<T, W, E>(
    jobs: usize,
    initial: Vec<T>,
    make_local: impl Fn() -> W + Sync,
    work: impl Fn(&mut W, T, &mut Vec<T>) -> Result<(), E> + Sync,
) -> Result<Vec<W>, E>
where
    T: Send,
    W: Send,
    E: Send,
{
    run_publishing(jobs, initial, make_local, collect_then_publish(work))
}

/// [`run`] with a publishing work function, as [`Pool::run_publishing`].
pub(crate) fn run_publishing<T, W, E>(
    jobs: usize,
    initial: Vec<T>,
    make_local: impl Fn() -> W + Sync,
    work: impl Fn(&mut W, T, &Publish<'_, T>) -> Result<(), E> + Sync,
) -> Result<Vec<W>, E>
where
    T: Send,
    W: Send,
    E: Send,
{
    run_on_threads(jobs, "cowtree-worker", initial, make_local, work)
}

/// [`run_publishing`] on `jobs` threads named `<name>-<i>` started for this run (inline on the
/// caller's thread when `jobs` is 1, or when no thread can be started).
fn run_on_threads<T, W, E>(
    jobs: usize,
    name: &str,
    initial: Vec<T>,
    make_local: impl Fn() -> W + Sync,
    work: impl Fn(&mut W, T, &Publish<'_, T>) -> Result<(), E> + Sync,
) -> Result<Vec<W>, E>
where
    T: Send,
    W: Send,
    E: Send,
{
    if jobs <= 1 {
        let mut local = make_local();
        let stack = std::cell::RefCell::new(initial);
        loop {
            let Some(item) = stack.borrow_mut().pop() else {
                break;
            };
            work(&mut local, item, &|pushed: &mut Vec<T>| {
                stack.borrow_mut().append(pushed)
            })?;
        }
        return Ok(vec![local]);
    }
    let queue = Queue::new(initial);
    let locals = std::thread::scope(|scope| {
        // A thread that cannot be started is one worker fewer; with none at all, the caller's
        // thread is the only worker.
        let (queue, make_local, work) = (&queue, &make_local, &work);
        let handles: Vec<_> = (0..jobs)
            .map_while(|index| {
                std::thread::Builder::new()
                    .name(format!("{name}-{index}"))
                    .spawn_scoped(scope, move || queue.worker(index, jobs, make_local, work))
                    .ok()
            })
            .collect();
        if handles.is_empty() {
            return vec![queue.worker(0, 1, make_local, work)];
        }
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect::<Vec<W>>()
    });
    queue.finish().map(|()| locals)
}

/// The shared queue of one run: pending items (last pushed runs first, which keeps a walk
/// close to depth-first and the pending list short), how many workers are busy, and the
/// first error.
struct Queue<T, E> {
    shared: Mutex<Shared<T, E>>,
    wake: Condvar,
}

struct Shared<T, E> {
    items: Vec<T>,
    /// Workers currently running an item (and so maybe about to push more).
    active: usize,
    error: Option<E>,
    /// A worker's item panicked: everyone stops, and the run re-raises the panic.
    panicked: bool,
}

impl<T, E> Queue<T, E> {
    fn new(items: Vec<T>) -> Self {
        Queue {
            shared: Mutex::new(Shared {
                items,
                active: 0,
                error: None,
                panicked: false,
            }),
            wake: Condvar::new(),
        }
    }

    fn finish(self) -> Result<(), E> {
        let shared = self
            .shared
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner);
        match shared.error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Adds `pushed` to the queue (emptying it) and wakes workers for them, unless the run
    /// has failed.
    fn publish(&self, pushed: &mut Vec<T>) {
        let n = pushed.len();
        if n == 0 {
            return;
        }
        let mut guard = self.shared.lock().unwrap_or_else(PoisonError::into_inner);
        if guard.error.is_some() {
            pushed.clear();
            return;
        }
        guard.items.append(pushed);
        drop(guard);
        if n > 1 {
            self.wake.notify_all();
        } else {
            self.wake.notify_one();
        }
    }

    /// Worker `index` of `count`: takes items until the queue is empty and no one is busy,
    /// or the run failed. On a thread that already is a worker of this queue (which would wait
    /// for its own unfinished item forever), takes no item and returns at once.
    fn worker<W>(
        &self,
        index: usize,
        count: usize,
        make_local: &(impl Fn() -> W + Sync),
        work: &(impl Fn(&mut W, T, &Publish<'_, T>) -> Result<(), E> + Sync),
    ) -> W {
        let id = std::ptr::from_ref(self) as usize;
        if WORKER.get().is_some_and(|w| w.queue == id) {
            return make_local();
        }
        let outer = WORKER.replace(Some(Worker {
            queue: id,
            index,
            count,
        }));
        struct Restore(Option<Worker>);
        impl Drop for Restore {
            fn drop(&mut self) {
                WORKER.set(self.0);
            }
        }
        let _restore = Restore(outer);
        let mut local = make_local();
        let publish = |pushed: &mut Vec<T>| self.publish(pushed);
        // A poisoned lock means another worker panicked; its panic is re-raised by the run, so
        // carrying on with the data is fine here.
        let mut guard = self.shared.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            if guard.error.is_some() || guard.panicked {
                break;
            }
            let Some(item) = guard.items.pop() else {
                if guard.active == 0 {
                    break;
                }
                guard = self
                    .wake
                    .wait(guard)
                    .unwrap_or_else(PoisonError::into_inner);
                continue;
            };
            guard.active += 1;
            drop(guard);
            let unwind = Unwind(self);
            let result = work(&mut local, item, &publish);
            std::mem::forget(unwind);
            guard = self.shared.lock().unwrap_or_else(PoisonError::into_inner);
            guard.active -= 1;
            if let Err(e) = result
                && guard.error.is_none()
            {
                guard.error = Some(e);
            }
            if guard.error.is_some() || (guard.active == 0 && guard.items.is_empty()) {
                self.wake.notify_all();
            }
        }
        // Items left after an error are dropped outside the lock.
        let left = if guard.error.is_some() || guard.panicked {
            std::mem::take(&mut guard.items)
        } else {
            Vec::new()
        };
        drop(guard);
        drop(left);
        self.wake.notify_all();
        local
    }
}

/// Armed while a worker runs an item: if the item panics, takes the worker out of the busy
/// count, stops the run and wakes the others, so that they return instead of waiting for
/// it forever, and the run re-raises the panic.
struct Unwind<'a, T, E>(&'a Queue<T, E>);

impl<T, E> Drop for Unwind<'_, T, E> {
    fn drop(&mut self) {
        let mut guard = self.0.shared.lock().unwrap_or_else(PoisonError::into_inner);
        guard.active -= 1;
        guard.panicked = true;
        let left = std::mem::take(&mut guard.items);
        drop(guard);
        self.0.wake.notify_all();
        drop(left);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count_tree(jobs: usize, depth: u32, fail_at: Option<u32>) -> Result<u64, String> {
        // Each item n < depth pushes two items n + 1: 2^(depth+1) - 1 items in all.
        let locals = run(
            jobs,
            vec![0u32],
            || 0u64,
            |count, n, push| {
                if Some(n) == fail_at {
                    return Err(format!("failed at depth {n}"));
                }
                *count += 1;
                if n < depth {
                    push.push(n + 1);
                    push.push(n + 1);
                }
                Ok(())
            },
        )?;
        Ok(locals.into_iter().sum())
    }

    #[test]
    fn every_pushed_item_runs_exactly_once_at_any_job_count() {
        for jobs in [1, 2, 3, 8] {
            assert_eq!(count_tree(jobs, 10, None), Ok(2047), "jobs {jobs}");
        }
    }

    #[test]
    fn a_kept_pool_runs_every_item_once_per_run_and_stops_at_the_first_error() {
        let pool = Pool::new(3, "test");
        for _ in 0..3 {
            let locals = pool
                .run(
                    3,
                    vec![0u32],
                    || 0u64,
                    |count, n, push| {
                        *count += 1;
                        if n < 10 {
                            push.push(n + 1);
                            push.push(n + 1);
                        }
                        Ok::<(), String>(())
                    },
                )
                .unwrap();
            assert_eq!(locals.iter().sum::<u64>(), 2047);
        }
        let err = pool.run(
            3,
            vec![0u32],
            || (),
            |_, n, push| {
                if n == 5 {
                    return Err(format!("failed at depth {n}"));
                }
                push.push(n + 1);
                push.push(n + 1);
                Ok(())
            },
        );
        assert_eq!(err.unwrap_err(), "failed at depth 5");
    }

    #[test]
    fn the_first_error_stops_the_run_and_is_returned() {
        for jobs in [1, 4] {
            assert_eq!(
                count_tree(jobs, 10, Some(5)),
                Err("failed at depth 5".to_string()),
                "jobs {jobs}"
            );
        }
    }

    #[test]
    fn a_panicking_item_among_many_is_re_raised_and_the_other_workers_return() {
        let pool = Pool::new(4, "test");
        for kept in [false, true] {
            let ran = std::sync::atomic::AtomicUsize::new(0);
            let work = |_: &mut (), n: u32, push: &mut Vec<u32>| {
                ran.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if n == 0 {
                    push.extend(1..2000);
                }
                if n == 700 {
                    panic!("item 700 panics");
                }
                Ok::<(), String>(())
            };
            let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                if kept {
                    pool.run(4, vec![0u32], || (), work)
                } else {
                    run(4, vec![0u32], || (), work)
                }
            }));
            let panic = caught.expect_err("the panic is re-raised");
            assert_eq!(panic.downcast_ref::<&str>(), Some(&"item 700 panics"));
            assert!(ran.load(std::sync::atomic::Ordering::Relaxed) <= 2000);
        }
    }

    // Hashes with `crate::read`, which is unix only.
    #[cfg(unix)]
    #[test]
    fn queue_workers_are_no_rayon_jobs_and_know_their_index_and_count() {
        let tmp = tempfile::tempdir().unwrap();
        let big = tmp.path().join("big");
        std::fs::write(&big, vec![7u8; 3 << 20]).unwrap();
        let pool = Pool::new(4, "test");
        let want = blake3::hash(&vec![7u8; 3 << 20]);
        // Items hash a file large enough for BLAKE3's rayon joins: a worker run as a job of a
        // rayon pool could be taken up by a joining thread on top of its own unfinished item.
        let locals = pool
            .install(|| {
                pool.run(
                    4,
                    (0..32).collect(),
                    || (None, Vec::new()),
                    |(me, seen): &mut (Option<usize>, Vec<bool>), _: u32, _| {
                        assert_eq!(rayon::current_thread_index(), None, "a rayon job");
                        assert_eq!(current_workers(), 4);
                        let i = worker_index().expect("a worker knows its index");
                        assert!(me.is_none_or(|m| m == i));
                        *me = Some(i);
                        let f = std::fs::File::open(&big).map_err(|e| e.to_string())?;
                        let (n, h) =
                            crate::read::hash_fd(&f, |_| Ok(())).map_err(|e| e.to_string())?;
                        seen.push(n == 3 << 20 && h == want);
                        Ok::<(), String>(())
                    },
                )
            })
            .unwrap();
        assert_eq!(locals.len(), 4);
        let mut indexes: Vec<usize> = locals.iter().filter_map(|l| l.0).collect();
        indexes.sort_unstable();
        indexes.dedup();
        assert!(indexes.iter().all(|&i| i < 4));
        let seen: Vec<bool> = locals.into_iter().flat_map(|l| l.1).collect();
        assert_eq!(seen.len(), 32);
        assert!(seen.iter().all(|&ok| ok));
        assert_eq!(
            worker_index(),
            None,
            "the caller is no worker after the run"
        );
    }

    #[test]
    fn a_worker_started_inside_a_worker_of_its_own_queue_takes_nothing() {
        let queue: Queue<u32, String> = Queue::new((0..10).collect());
        let nested = std::sync::atomic::AtomicUsize::new(0);
        let ran = std::sync::atomic::AtomicUsize::new(0);
        let work = |_: &mut (), _: u32, _: &Publish<'_, u32>| -> Result<(), String> {
            ran.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            // Would wait for this unfinished item forever if it took part in the run.
            queue.worker(1, 2, &|| (), &|_: &mut (), _: u32, _: &Publish<'_, u32>| {
                nested.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                Ok(())
            });
            Ok(())
        };
        queue.worker(0, 1, &|| (), &work);
        assert_eq!(ran.load(std::sync::atomic::Ordering::Relaxed), 10);
        assert_eq!(nested.load(std::sync::atomic::Ordering::Relaxed), 0);
        assert!(queue.finish().is_ok());
    }

    #[test]
    fn install_runs_parallel_iterators_on_the_pools_threads() {
        use rayon::prelude::*;
        let pool = Pool::new(3, "test");
        let threads = pool.install(rayon::current_num_threads);
        assert_eq!(threads, 3);
        let sum: u64 = pool.install(|| (1..=1000u64).into_par_iter().sum());
        assert_eq!(sum, 500_500);
        let mut v: Vec<u32> = (0..10_000).rev().collect();
        pool.sort_unstable_by(&mut v, |a, b| a.cmp(b));
        assert!(v.windows(2).all(|w| w[0] <= w[1]));
        assert!(pool.install(worker_index).is_some_and(|i| i < 3));
        assert_eq!(pool.install(current_workers), 3);
        // A pool of one runs its parallel iterators on one thread of its own, not on rayon's
        // global pool.
        let single = Pool::new(1, "test");
        assert_eq!(single.install(worker_index), Some(0));
        assert_eq!(single.install(current_workers), 1);
        let caller = std::thread::current().id();
        let threads: std::collections::HashSet<_> = single.install(|| {
            (0..1000)
                .into_par_iter()
                .map(|_| std::thread::current().id())
                .collect()
        });
        assert_eq!(threads.len(), 1);
        assert!(!threads.contains(&caller));
    }

    #[test]
    fn the_budget_takes_the_callers_count_else_cores_within_bounds_and_fits_the_fd_limit() {
        let d = Demand {
            per_core: 2,
            min: 4,
            max: 16,
            fds_per_worker: 8,
        };
        // (requested, cores, open-file limit) -> workers
        let table = [
            ((0, 1, 1024), 4),      // 2 per core, raised to the minimum
            ((0, 4, 1024), 8),      // 2 per core
            ((0, 32, 1 << 20), 16), // capped at the maximum
            ((3, 32, 1024), 3),     // the caller's count wins over cores and bounds
            ((200, 2, 1024), 120),  // ...but not over the fd limit: (1024 - 64) / 8
            ((0, 8, 64), 1),        // no room at all still gives one worker
            ((0, 8, 64 + 3 * 8), 3),
        ];
        for ((requested, cores, fds), want) in table {
            assert_eq!(
                budget_for(requested, d, cores, fds),
                want,
                "requested {requested}, {cores} cores, {fds} files"
            );
        }
        assert!(budget(0, Demand::per_core(1, 4)) >= 1);
    }
}
