//! What a checkout that runs beside its pull waits on ([`Arrivals`]): the snapshot's
//! manifest, each blob as the pull places it in the store, and the end of the pull.
//!
//! The pull ([`crate::pull::pull_watched`]) tells an [`Arrivals`] which blobs are coming and
//! as each arrives; the caller tells it when the pull returned ([`Arrivals::end`]). A
//! checkout ([`cowtree_store::checkout::Arriving`]) asks which blobs are still coming
//! ([`Arrivals::coming`]), takes the blobs as they arrive ([`Arrivals::next`]) and waits in
//! [`Arrivals::recorded`] until the pull has recorded the snapshot. When the pull fails,
//! every wait returns at once with the failure, so the checkout stops and takes back what it
//! made; the pull cleans up only once the caller says it let go of the store
//! ([`Arrivals::released`]).

use std::collections::{HashSet, VecDeque};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use cowtree_store::Hash;

use crate::pull::Watch;

/// The state of one pull, as a checkout beside it sees it.
#[derive(Default)]
pub struct Arrivals {
    state: Mutex<State>,
    changed: Condvar,
    /// Told one waiter at a time as each blob arrives ([`Arrivals::next`]); every waiter at
    /// the last blob, after each round of the settler, and when the pull ends.
    came: Condvar,
    /// Told the settler ([`Arrivals::settle`]) when blobs arrive and when the pull ends.
    unsettled: Condvar,
}

/// The most blobs one [`Arrivals::next`] hands out.
const BATCH: usize = 64;

/// The least time between the starts of two rounds of [`Arrivals::settle`] that
/// `checkout --pull` uses.
pub const SETTLE_PACE: Duration = Duration::from_millis(500);

#[derive(Default)]
struct State {
    /// The first snapshot the pull fetched, and its encoded manifest.
    manifest: Option<(Hash, bytes::Bytes)>,
    /// Blobs the pull is still to place.
    coming: HashSet<Hash>,
    /// Blobs placed that [`Arrivals::next`] has not handed out yet.
    arrived: VecDeque<Hash>,
    /// A settler runs ([`Arrivals::settle`]): blobs placed wait in `unsettled` until it has
    /// written them back, and only then go to `arrived`.
    settling: bool,
    /// Blobs placed that the settler has not written back yet.
    unsettled: Vec<Hash>,
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

    /// A pull that has not started, whose blobs are handed out only once written back: the
    /// caller runs [`Arrivals::settle`] beside the pull (or no blob is handed out until the
    /// pull ends).
    pub fn settled() -> Arrivals {
        let a = Arrivals::default();
        a.lock().settling = true;
        a
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
        self.came.notify_all();
        self.unsettled.notify_all();
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

    /// For each of `hashes`, whether the pull is still to place it in the store's `blobs/`, or
    /// placed it and a settler has not written it back yet (`false`: the store had it, or it
    /// has arrived).
    pub fn coming(&self, hashes: &[Hash]) -> Vec<bool> {
        let st = self.lock();
        // Placed but not written back yet ([`Arrivals::settle`]): still to come.
        let held: HashSet<&Hash> = st.unsettled.iter().collect();
        hashes
            .iter()
            .map(|h| st.coming.contains(h) || held.contains(h))
            .collect()
    }

    /// Blocks until blobs have arrived that no call returned yet, and adds them (at most 64)
    /// to `out`: each blob the pull places is handed out once, whichever thread asks.
    /// `Ok(false)` once the pull placed every blob it was to fetch and all were handed out;
    /// the pull's failure at once when it failed.
    pub fn next(&self, out: &mut Vec<Hash>) -> Result<bool, Stopped> {
        let mut st = self.lock();
        loop {
            if let Some(Err(e)) = &st.ended {
                return Err(Stopped::Failed(e.clone()));
            }
            // The pull recorded its snapshot: its own `syncfs` wrote back every blob, whether
            // or not a settler ([`Arrivals::settle`]) still runs.
            if st.ended.is_some() && !st.unsettled.is_empty() {
                let rest = std::mem::take(&mut st.unsettled);
                st.arrived.extend(rest);
            }
            if !st.arrived.is_empty() {
                let n = st.arrived.len().min(BATCH);
                out.extend(st.arrived.drain(..n));
                let more = !st.arrived.is_empty();
                drop(st);
                if more {
                    self.came.notify_one();
                }
                return Ok(true);
            }
            if st.coming.is_empty() && st.unsettled.is_empty() {
                return Ok(false);
            }
            if let (Some(Ok(())), Some(missing)) = (&st.ended, st.coming.iter().next()) {
                return Err(Stopped::Never(*missing));
            }
            st = self.came.wait(st).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// The caller's use of the store beside the pull is over (its checkout returned, or never
    /// started): a failed pull waits for this before it cleans up ([`Watch::stopped`]).
    pub fn released(&self) {
        self.lock().released = true;
        self.changed.notify_all();
        self.unsettled.notify_all();
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

impl Arrivals {
    /// Runs until the pull has placed every blob, or ended, or the checkout let go of the
    /// store ([`Arrivals::released`]): writes back the blobs placed since its last round with
    /// `write_back` (a `syncfs` of the store's filesystem), and only then hands them to
    /// [`Arrivals::next`]. Rounds start at least `pace` apart (the last at once), each
    /// writing back everything placed since the one before ([`SETTLE_PACE`] for
    /// `checkout --pull`).
    ///
    /// Why: a clone of a file whose data is not on the device yet first writes that data out
    /// (XFS and btrfs do), one small write per file. A checkout that cloned each blob as it
    /// arrived made one write per blob: 33,000-54,000 writes to the device for the 46,835
    /// files of /usr/share, against 2,700-5,000 for a pull with its `syncfs` and a checkout
    /// after it, and it took longer than those two one after the other. Rounds with no pause
    /// between them each wrote a few dozen blobs (10,000-21,000 writes).
    ///
    /// A failed `write_back` only costs time: the blobs of that round, and every blob after
    /// it, are handed out as they are (the pull's own `syncfs` reports the failure).
    pub fn settle(&self, pace: Duration, write_back: impl Fn() -> std::io::Result<()>) {
        let timing = std::env::var_os("COWTREE_TIMING").is_some();
        let (mut rounds, mut blobs, mut spent) = (0u32, 0usize, Duration::ZERO);
        let mut last_round: Option<Instant> = None;
        let mut st = self.lock();
        st.settling = true;
        loop {
            // The pull ended (its own `syncfs` wrote back what it placed), or placed every
            // blob and all went to `arrived`, or nobody takes them any more.
            if st.ended.is_some()
                || st.released
                || (st.manifest.is_some() && st.coming.is_empty() && st.unsettled.is_empty())
            {
                break;
            }
            let pause = last_round.map_or(Duration::ZERO, |t| pace.saturating_sub(t.elapsed()));
            if st.unsettled.is_empty() {
                st = self.unsettled.wait(st).unwrap_or_else(|p| p.into_inner());
                continue;
            }
            if !pause.is_zero() && !st.coming.is_empty() {
                st = match self.unsettled.wait_timeout(st, pause) {
                    Ok((st, _)) => st,
                    Err(p) => p.into_inner().0,
                };
                continue;
            }
            // Left in `unsettled` meanwhile: `next` does not end while they are there (and
            // hands them out itself once the pull has ended).
            let n = st.unsettled.len();
            drop(st);
            let started = Instant::now();
            last_round = Some(started);
            let written = write_back().is_ok();
            if written {
                spent += started.elapsed();
                rounds += 1;
                blobs += n;
            }
            st = self.lock();
            let n = n.min(st.unsettled.len());
            let round: Vec<Hash> = st.unsettled.drain(..n).collect();
            st.arrived.extend(round);
            if !written || st.ended.is_some() {
                break;
            }
            drop(st);
            self.came.notify_all();
            st = self.lock();
        }
        // From now on, as they are placed.
        let rest = std::mem::take(&mut st.unsettled);
        st.arrived.extend(rest);
        st.settling = false;
        drop(st);
        self.came.notify_all();
        if timing {
            eprintln!("timing: settle: {blobs} blobs written back in {rounds} rounds, {spent:?}");
        }
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
        let mut st = self.lock();
        if !st.coming.remove(hash) {
            return;
        }
        if st.settling {
            st.unsettled.push(*hash);
            // The settler waits for the first blob of a round, or for the last one.
            let wake = st.unsettled.len() == 1 || st.coming.is_empty();
            drop(st);
            if wake {
                self.unsettled.notify_one();
            }
            return;
        }
        st.arrived.push_back(*hash);
        let last = st.coming.is_empty();
        drop(st);
        // The last one: every waiter, for each `next` now returns (with it, or `false`).
        if last {
            self.came.notify_all();
        } else {
            self.came.notify_one();
        }
    }

    fn stopped(&self, error: &str) {
        self.lock()
            .ended
            .get_or_insert_with(|| Err(error.to_string()));
        self.changed.notify_all();
        self.came.notify_all();
        self.unsettled.notify_all();
        self.wait_until(|st| st.released.then_some(()));
    }
}
