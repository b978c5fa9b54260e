//! The one number every worker pool of cowtree is sized from: how many cores to use.
//!
//! Every pool is sized by [`crate::workers::budget`] from the core count [`cores`] gives (each
//! kind of work says how many workers per core it wants; see each pool's docs for the
//! measurements behind them), so that a caller (the CLI's `--jobs N`) can bound all of them at
//! once with [`set_cores`].

use std::sync::atomic::{AtomicUsize, Ordering};

static CORES: AtomicUsize = AtomicUsize::new(0);

/// Makes [`cores`] return `n` (0: the machine's, again). Pools built after the call use it;
/// a pool already built keeps its size.
pub fn set_cores(n: usize) {
    CORES.store(n, Ordering::Relaxed);
}

/// The cores worker pools are sized for: the count set by [`set_cores`], else
/// `std::thread::available_parallelism` (which honours CPU affinity and cgroup quotas), else 1.
pub fn cores() -> usize {
    match CORES.load(Ordering::Relaxed) {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_set_count_replaces_the_machines_until_reset() {
        let machine = super::cores();
        assert!(machine >= 1);
        super::set_cores(3);
        assert_eq!(super::cores(), 3);
        super::set_cores(0);
        assert_eq!(super::cores(), machine);
    }
}
