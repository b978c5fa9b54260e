//! The batch's clone-or-copy state for the one (store device, destination device) pair of a
//! checkout: [`cowtree_link::LinkState`] shared by the workers, read without a lock once it
//! is settled.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU8, Ordering};

use cowtree_link::{Attempt, Decision, Failure, LinkState};

use crate::error::{Error, Result};

/// The batch's clone-or-copy state ([`LinkState`]), with a lock-free path for the common case.
/// A [`LinkState`] is settled once its attempt is `Copy` (no transition leaves it) or once a
/// clone has worked (every later clone failure is then per-file or an error, neither of
/// which changes it): from then on, [`LinkState::attempt`] is constant and
/// [`LinkState::succeeded`] changes nothing, so workers read the settled attempt from an
/// atomic and take the lock only for a failure, exactly as they would have under it.
///
/// Why the batch moved from clone to copy is kept under the same lock and set before the
/// settled copy is published, so that a worker which sees the batch settled on copy also
/// sees why.
pub(super) struct Batch {
    state: Mutex<BatchState>,
    /// [`UNSETTLED`], [`SETTLED_CLONE`] or [`SETTLED_COPY`].
    settled: AtomicU8,
}

struct BatchState {
    link: LinkState,
    /// Why the batch moved from clone to copy, once it has.
    reason: Option<&'static str>,
}

const UNSETTLED: u8 = 0;
const SETTLED_CLONE: u8 = 1;
const SETTLED_COPY: u8 = 2;

impl Batch {
    pub(super) fn new(state: LinkState) -> Batch {
        let b = Batch {
            state: Mutex::new(BatchState {
                link: state,
                reason: None,
            }),
            settled: AtomicU8::new(UNSETTLED),
        };
        b.settle(&state);
        b
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, BatchState>> {
        self.state
            .lock()
            .map_err(|_| Error::internal("a worker panicked"))
    }

    /// Publishes `state` as settled when it is (call with the lock held, after a change).
    fn settle(&self, state: &LinkState) {
        let settled = match state.attempt() {
            Attempt::Copy => SETTLED_COPY,
            Attempt::Clone if state.has_worked() => SETTLED_CLONE,
            _ => return,
        };
        self.settled.store(settled, Ordering::Release);
    }

    /// The attempt for the next file.
    pub(super) fn attempt(&self) -> Result<Attempt> {
        match self.settled.load(Ordering::Acquire) {
            SETTLED_CLONE => Ok(Attempt::Clone),
            SETTLED_COPY => Ok(Attempt::Copy),
            _ => Ok(self.lock()?.link.attempt()),
        }
    }

    /// [`LinkState::succeeded`].
    pub(super) fn succeeded(&self, attempt: Attempt) -> Result<()> {
        if self.settled.load(Ordering::Acquire) != UNSETTLED {
            return Ok(());
        }
        let mut state = self.lock()?;
        state.link.succeeded(attempt);
        self.settle(&state.link);
        Ok(())
    }

    /// [`LinkState::failed`]; when the batch moves to copy, `failure` becomes its reason
    /// ([`Batch::reason`]) before the move is published.
    pub(super) fn failed(&self, tried: Attempt, failure: Failure) -> Result<Decision> {
        let mut state = self.lock()?;
        let decision = state.link.failed(tried, failure);
        if let Decision::Fallback {
            batch_moved: true, ..
        } = decision
        {
            state.reason = Some(failure.as_str());
        }
        self.settle(&state.link);
        Ok(decision)
    }

    /// Why the batch moved from clone to copy; `None` when it has not (it copies because
    /// no clone was to be attempted).
    pub(super) fn reason(&self) -> Result<Option<&'static str>> {
        Ok(self.lock()?.reason)
    }
}

#[cfg(test)]
mod tests {
    use cowtree_link::LinkMode;

    use super::*;

    #[test]
    fn a_batch_settled_on_copy_already_knows_why() {
        let fs = Failure::Clone(cowtree_fs::UnsupportedCause::Filesystem);
        let b = Batch::new(LinkState::new(LinkMode::Auto, false));
        assert_eq!(b.reason().unwrap(), None);
        assert!(matches!(
            b.failed(Attempt::Clone, fs).unwrap(),
            Decision::Fallback {
                attempt: Attempt::Copy,
                batch_moved: true
            }
        ));
        // What a worker reading the settled state without the lock sees, then the reason.
        assert_eq!(b.settled.load(Ordering::Acquire), SETTLED_COPY);
        assert!(matches!(b.attempt().unwrap(), Attempt::Copy));
        assert_eq!(b.reason().unwrap(), Some("filesystem-cannot-reflink"));

        // Copy asked for: settled from the start, with no reason (no clone was attempted).
        let b = Batch::new(LinkState::new(LinkMode::Copy, false));
        assert_eq!(b.settled.load(Ordering::Acquire), SETTLED_COPY);
        assert_eq!(b.reason().unwrap(), None);
    }
}
