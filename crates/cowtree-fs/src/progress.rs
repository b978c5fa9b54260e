//! Progress of a long operation as a handful of atomic counters: worker threads bump them with
//! one relaxed add per entry, and a display (a progress bar on another thread) reads them
//! whenever it redraws.
//!
//! A caller that does not watch passes `&Progress::default()`: the counters still move, which
//! costs one uncontended atomic add per entry and nothing else. The counters only ever say
//! how far the work got; they never decide anything, so a reader may see them a little stale.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Entries and bytes done so far, and the totals once the operation knows them.
///
/// What an entry is depends on the operation and is documented where the operation takes a
/// `&Progress` (files checked out, blobs verified, files recorded, ...).
#[derive(Debug, Default)]
pub struct Progress {
    entries: AtomicU64,
    bytes: AtomicU64,
    total_entries: AtomicU64,
    total_bytes: AtomicU64,
    /// Set (with release ordering) after the totals are stored.
    total_known: AtomicBool,
}

/// The work an operation has counted up front.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Total {
    /// Entries to do.
    pub entries: u64,
    /// Bytes to do, when the operation knows them.
    pub bytes: Option<u64>,
}

impl Progress {
    /// `entries` more entries and `bytes` more bytes are done.
    #[inline]
    pub fn add(&self, entries: u64, bytes: u64) {
        self.entries.fetch_add(entries, Ordering::Relaxed);
        if bytes != 0 {
            self.bytes.fetch_add(bytes, Ordering::Relaxed);
        }
    }

    /// The operation now knows how much work there is; a display can show a fraction.
    pub fn set_total(&self, total: Total) {
        self.total_entries.store(total.entries, Ordering::Relaxed);
        self.total_bytes
            .store(total.bytes.unwrap_or(u64::MAX), Ordering::Relaxed);
        self.total_known.store(true, Ordering::Release);
    }

    /// Entries done so far.
    pub fn entries(&self) -> u64 {
        self.entries.load(Ordering::Relaxed)
    }

    /// Bytes done so far.
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    /// The totals, once [`Progress::set_total`] has been called.
    pub fn total(&self) -> Option<Total> {
        self.total_known.load(Ordering::Acquire).then(|| Total {
            entries: self.total_entries.load(Ordering::Relaxed),
            bytes: Some(self.total_bytes.load(Ordering::Relaxed)).filter(|&b| b != u64::MAX),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_from_many_threads_add_up_and_the_total_appears_once_set() {
        let p = Progress::default();
        assert_eq!(p.total(), None);
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..1000 {
                        p.add(1, 3);
                    }
                });
            }
        });
        assert_eq!((p.entries(), p.bytes()), (4000, 12000));
        let total = Total {
            entries: 4000,
            bytes: Some(12000),
        };
        p.set_total(total);
        assert_eq!(p.total(), Some(total));
        let unknown_bytes = Total {
            entries: 7,
            bytes: None,
        };
        p.set_total(unknown_bytes);
        assert_eq!(p.total(), Some(unknown_bytes));
    }
}
