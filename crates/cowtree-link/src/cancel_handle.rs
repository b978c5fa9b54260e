//! Stopping a [`crate::Linker`]'s calls from another thread, as an interrupt does.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// A handle that cancels the calls of one [`crate::Linker`] (see
/// [`crate::Linker::cancel_handle`]). Cheap to clone, `Send + Sync`, and cheap to check: the
/// workers look at it before each entry they link and each directory they read.
///
/// A call that sees it stops its workers and returns [`crate::LinkError::Cancelled`] with the
/// destination as it was: a new destination's staging directory is removed (nothing appears
/// at the destination), a merge is rolled back (every entry it published is put back, every
/// temporary entry removed). A file being cloned or copied is finished first, so the call
/// returns within the time of one file. A call that had finished publishing returns its
/// report: cancelling it then changes nothing.
///
/// Cancellation is for good: once cancelled, every later call of the session returns
/// [`crate::LinkError::Cancelled`] before writing anything. Make a new [`crate::Linker`] to
/// link again.
#[derive(Debug, Clone, Default)]
pub struct CancelHandle(Arc<AtomicBool>);

impl CancelHandle {
    /// A handle that has not been cancelled.
    pub fn new() -> CancelHandle {
        CancelHandle::default()
    }

    /// Cancels every call in progress and every later one. Returns at once; the calls in
    /// progress return when their rollback is done.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::Release);
    }

    /// True once [`CancelHandle::cancel`] was called.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clone_of_the_handle_sees_the_cancel_and_it_stays() {
        let h = CancelHandle::new();
        let other = h.clone();
        assert!(!other.is_cancelled());
        h.cancel();
        assert!(other.is_cancelled());
        h.cancel();
        assert!(h.is_cancelled());
    }

    #[test]
    fn the_handle_can_be_sent_and_shared() {
        fn send_sync<T: Send + Sync + Clone>() {}
        send_sync::<CancelHandle>();
    }
}
