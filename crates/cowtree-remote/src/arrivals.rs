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
