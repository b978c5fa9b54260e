//! What a checkout that runs beside its pull waits on ([`Arrivals`]): the snapshot's
//! manifest, each blob as the pull places it in the store, and the end of the pull.
//!
//! The pull ([`crate::pull::pull_watched`]) tells an [`Arrivals`] which blobs are coming and
//! as each arrives; the caller tells it when the pull returned ([`Arrivals::end`]). A
//! checkout ([`cowtree_store::checkout::Arriving`]) blocks in [`Arrivals::blob`] only on
//! blobs still coming, and in [`Arrivals::recorded`] until the pull has recorded the
//! snapshot. When the pull fails, every wait returns at once with the failure, so the
//! checkout stops and takes back what it made; the pull cleans up only once the caller says
//! it let go of the store ([`Arrivals::released`]).

use std::collections::HashSet;
use std::sync::{Condvar, Mutex, MutexGuard};

use cowtree_store::Hash;

use crate::pull::Watch;

/// The state of one pull, as a checkout beside it sees it.
#[derive(Default)]
pub struct Arrivals {
    state: Mutex<State>,
    changed: Condvar,
}

#[derive(Default)]
struct State {
    /// The first snapshot the pull fetched, and its encoded manifest.
    manifest: Option<(Hash, bytes::Bytes)>,
    /// Blobs the pull is still to place.
    coming: HashSet<Hash>,
    /// The pull returned: `Ok` when it recorded its snapshots, else its error (for people).
    ended: Option<Result<(), String>>,
    /// The caller no longer uses the store beside the pull ([`Arrivals::released`]).
    released: bool,
}

/// Why a wait on [`Arrivals`] ended without what it waited for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Stopped {
    /// The pull failed (its error, for people).
    #[error("the pull failed: {0}")]
    Failed(String),
    /// The pull ended with the blob still missing (a pull never does that; said rather than
    /// waited on forever).
    #[error("the pull ended without blob {0}")]
    Never(Hash),
}

impl Arrivals {
    /// A pull that has not started.
    pub fn new() -> Arrivals {
        Arrivals::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while the lock was held left nothing half-changed (each change is one
        // assignment or one set operation).
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits until `done` says the state has what is waited for.
    fn wait_until<T>(&self, mut done: impl FnMut(&State) -> Option<T>) -> T {
        let mut st = self.lock();
        loop {
            if let Some(t) = done(&st) {
                return t;
            }
            st = self.changed.wait(st).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// The pull returned: `Ok(())` when it recorded its snapshots, else its error. Wakes every
    /// wait.
    pub fn end(&self, result: Result<(), String>) {
        self.lock().ended = Some(result);
        self.changed.notify_all();
    }

    /// The first snapshot the pull fetched and its manifest, once fetched and checked; `None`
    /// when the pull ended without fetching one (the store had it already, or the pull
    /// failed first: [`Arrivals::recorded`] says which).
    pub fn manifest(&self) -> Option<(Hash, bytes::Bytes)> {
        self.wait_until(|st| match (&st.manifest, &st.ended) {
            (Some(m), _) => Some(Some(m.clone())),
            (None, Some(_)) => Some(None),
            (None, None) => None,
        })
    }

    /// Returns once blob `hash` is in the store's `blobs/`: at once for a blob the pull is
    /// not fetching (the store had it).
    pub fn blob(&self, hash: &Hash) -> Result<(), Stopped> {
        self.wait_until(|st| match &st.ended {
            _ if !st.coming.contains(hash) => Some(Ok(())),
            Some(Err(e)) => Some(Err(Stopped::Failed(e.clone()))),
            Some(Ok(())) => Some(Err(Stopped::Never(*hash))),
            None => None,
        })
    }

    /// The caller's use of the store beside the pull is over (its checkout returned, or never
    /// started): a failed pull waits for this before it cleans up ([`Watch::stopped`]).
    pub fn released(&self) {
        self.lock().released = true;
        self.changed.notify_all();
    }

    /// Returns once the pull has ended: `Ok` when it recorded its snapshots.
    pub fn recorded(&self) -> Result<(), Stopped> {
        self.wait_until(|st| {
            st.ended
                .as_ref()
                .map(|r| r.clone().map_err(Stopped::Failed))
        })
    }
}

impl Watch for Arrivals {
    fn fetching(&self, manifests: &[(Hash, bytes::Bytes)], coming: &[Hash]) {
        let mut st = self.lock();
        if st.manifest.is_none() {
            st.manifest = manifests.first().cloned();
        }
        st.coming.extend(coming.iter().copied());
        drop(st);
        self.changed.notify_all();
    }

    fn arrived(&self, hash: &Hash) {
        if self.lock().coming.remove(hash) {
            self.changed.notify_all();
        }
    }

    fn stopped(&self, error: &str) {
        self.lock()
            .ended
            .get_or_insert_with(|| Err(error.to_string()));
        self.changed.notify_all();
        self.wait_until(|st| st.released.then_some(()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(n: u8) -> Hash {
        Hash::of(&[n])
    }

    #[test]
    fn a_blob_waits_until_it_arrives_and_one_not_coming_does_not_wait() {
        let a = Arrivals::new();
        let m = (h(0), bytes::Bytes::from_static(b"m"));
        a.fetching(std::slice::from_ref(&m), &[h(1), h(2)]);
        assert_eq!(a.manifest(), Some(m));
        assert_eq!(a.blob(&h(3)), Ok(()), "a blob the store had");
        std::thread::scope(|s| {
            let waiter = s.spawn(|| a.blob(&h(1)));
            std::thread::sleep(std::time::Duration::from_millis(50));
            assert!(!waiter.is_finished(), "returned before the blob arrived");
            a.arrived(&h(1));
            assert_eq!(waiter.join().unwrap(), Ok(()));
        });
        a.end(Ok(()));
        assert_eq!(a.recorded(), Ok(()));
        assert_eq!(a.blob(&h(2)), Err(Stopped::Never(h(2))));
    }

    #[test]
    fn a_failed_pull_ends_every_wait_with_its_error() {
        let a = Arrivals::new();
        a.fetching(&[(h(0), bytes::Bytes::new())], &[h(1)]);
        std::thread::scope(|s| {
            let blob = s.spawn(|| a.blob(&h(1)));
            let recorded = s.spawn(|| a.recorded());
            std::thread::sleep(std::time::Duration::from_millis(50));
            assert!(!blob.is_finished() && !recorded.is_finished());
            a.end(Err("boom".into()));
            let failed = Err(Stopped::Failed("boom".into()));
            assert_eq!(blob.join().unwrap(), failed);
            assert_eq!(recorded.join().unwrap(), failed);
        });
    }

    #[test]
    fn a_failed_pull_ends_the_waits_then_waits_until_the_store_is_released() {
        let a = Arrivals::new();
        a.fetching(&[(h(0), bytes::Bytes::new())], &[h(1)]);
        std::thread::scope(|s| {
            let pull = s.spawn(|| a.stopped("disk full"));
            assert_eq!(a.blob(&h(1)), Err(Stopped::Failed("disk full".into())));
            std::thread::sleep(std::time::Duration::from_millis(50));
            assert!(!pull.is_finished(), "went on while the store was held");
            a.released();
            pull.join().unwrap();
        });
    }

    #[test]
    fn a_pull_that_fetched_no_manifest_gives_none() {
        let a = Arrivals::new();
        a.end(Ok(()));
        assert_eq!(a.manifest(), None);
        assert_eq!(a.recorded(), Ok(()));
    }
}
