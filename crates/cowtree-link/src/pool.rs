//! A small work queue run by a fixed number of workers: items may push more items, the
//! first error stops everyone, and each worker keeps its own state (tallies) that the caller
//! gets back at the end. Items carry no open file descriptors, so open fds are bounded by
//! what one worker holds at a time times the number of workers.
//!
//! [`Workers`] keeps the threads for a whole [`crate::Linker`] session, so that a caller
//! linking many small packages does not start and stop threads for every call and phase.

use std::sync::{Condvar, Mutex, PoisonError};

/// The worker threads of one session.
pub(crate) struct Workers {
    /// `None` when the session uses one worker (everything runs on the caller's thread).
    pool: Option<rayon::ThreadPool>,
    jobs: usize,
}

impl Workers {
    /// `jobs` threads, started now and kept until dropped. If the threads cannot be started,
    /// each run starts its own (as [`run`] does).
    pub fn new(jobs: usize) -> Workers {
        let pool = (jobs > 1)
            .then(|| {
                rayon::ThreadPoolBuilder::new()
                    .num_threads(jobs)
                    .thread_name(|i| format!("cowtree-link-{i}"))
                    .build()
                    .ok()
            })
            .flatten();
        Workers { pool, jobs }
    }

    /// The number of workers.
    pub fn jobs(&self) -> usize {
        self.jobs
    }

    /// Sorts `v` (unstably) on this session's threads.
    pub fn sort_unstable_by<T: Send>(
        &self,
        v: &mut [T],
        cmp: impl Fn(&T, &T) -> std::cmp::Ordering + Sync + Send,
    ) {
        use rayon::slice::ParallelSliceMut as _;
        match &self.pool {
            Some(pool) => pool.install(|| v.par_sort_unstable_by(cmp)),
            None => v.sort_unstable_by(cmp),
        }
    }

    /// [`run`] on this session's threads, with at most `jobs` of them.
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
        let jobs = jobs.min(self.jobs);
        let Some(pool) = self.pool.as_ref().filter(|_| jobs > 1) else {
            return run(jobs, initial, make_local, work);
        };
        let shared = Mutex::new(Shared {
            items: initial,
            active: 0,
            error: None,
        });
        let wake = Condvar::new();
        let locals = Mutex::new(Vec::with_capacity(jobs));
        // Each worker blocks while the queue is empty and others are busy, so exactly `jobs`
        // of them run at once: the pool has at least that many threads, and the thread that
        // waits for the scope runs one of them itself.
        pool.scope(|scope| {
            for _ in 0..jobs {
                scope.spawn(|_| {
                    let local = worker(&shared, &wake, &make_local, &work);
                    locals
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .push(local);
                });
            }
        });
        let shared = shared.into_inner().unwrap_or_else(PoisonError::into_inner);
        match shared.error {
            Some(e) => Err(e),
            None => Ok(locals.into_inner().unwrap_or_else(PoisonError::into_inner)),
        }
    }
}

struct Shared<T, E> {
    items: Vec<T>,
    /// Workers currently running an item (and so maybe about to push more).
    active: usize,
    error: Option<E>,
}

/// Runs `work` over `initial` and everything it pushes, on `jobs` threads (inline when 1).
/// Returns every worker's local state, or the first error.
pub(crate) fn run<T, W, E>(
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
    if jobs <= 1 {
        let mut local = make_local();
        let mut stack = initial;
        let mut pushed = Vec::new();
        while let Some(item) = stack.pop() {
            work(&mut local, item, &mut pushed)?;
            stack.append(&mut pushed);
        }
        return Ok(vec![local]);
    }
    let shared = Mutex::new(Shared {
        items: initial,
        active: 0,
        error: None,
    });
    let wake = Condvar::new();
    let locals = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..jobs)
            .map(|_| scope.spawn(|| worker(&shared, &wake, &make_local, &work)))
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect::<Vec<W>>()
    });
    let shared = shared.into_inner().unwrap_or_else(PoisonError::into_inner);
    match shared.error {
        Some(e) => Err(e),
        None => Ok(locals),
    }
}

fn worker<T, W, E>(
    shared: &Mutex<Shared<T, E>>,
    wake: &Condvar,
    make_local: &(impl Fn() -> W + Sync),
    work: &(impl Fn(&mut W, T, &mut Vec<T>) -> Result<(), E> + Sync),
) -> W {
    let mut local = make_local();
    let mut pushed = Vec::new();
    // A poisoned lock means another worker panicked; its panic is re-raised by `run`, so
    // carrying on with the data is fine here.
    let mut guard = shared.lock().unwrap_or_else(PoisonError::into_inner);
    loop {
        if guard.error.is_some() {
            break;
        }
        let Some(item) = guard.items.pop() else {
            if guard.active == 0 {
                break;
            }
            guard = wake.wait(guard).unwrap_or_else(PoisonError::into_inner);
            continue;
        };
        guard.active += 1;
        drop(guard);
        let result = work(&mut local, item, &mut pushed);
        guard = shared.lock().unwrap_or_else(PoisonError::into_inner);
        guard.active -= 1;
        match result {
            Ok(()) => {
                let n = pushed.len();
                guard.items.append(&mut pushed);
                if n > 1 {
                    wake.notify_all();
                } else if n == 1 {
                    wake.notify_one();
                }
            }
            Err(e) => {
                pushed.clear();
                if guard.error.is_none() {
                    guard.error = Some(e);
                }
            }
        }
        if guard.error.is_some() || (guard.active == 0 && guard.items.is_empty()) {
            wake.notify_all();
        }
    }
    drop(guard);
    wake.notify_all();
    local
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
    fn session_workers_run_every_item_once_and_stop_at_the_first_error() {
        let workers = Workers::new(3);
        for _ in 0..3 {
            let locals = workers
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
        let err = workers.run(
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
}
