//! A small work queue run by a fixed number of scoped threads: items may push more items, the
//! first error stops everyone, and each worker keeps its own state (tallies) that the caller
//! gets back at the end. Items carry no open file descriptors, so open fds are bounded by
//! what one worker holds at a time times the number of workers.

use std::sync::{Condvar, Mutex, PoisonError};

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
