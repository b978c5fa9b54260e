//! The signals an interrupt is, on unix: SIGINT, SIGTERM and SIGHUP, blocked in every thread
//! and taken by one thread with `sigwait`.

/// The blocked signals, waited for by the handler thread.
pub(super) struct Source(libc::sigset_t);

fn signals() -> libc::sigset_t {
    // SAFETY: sigemptyset/sigaddset initialise and fill the set they are given.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::sigaddset(&mut set, libc::SIGHUP);
        set
    }
}

impl Source {
    /// Blocks the signals in this thread, and so in every thread started after it (call
    /// before any other thread exists). `None` when the mask could not be set.
    pub(super) fn take() -> Option<Source> {
        let set = signals();
        // SAFETY: changes only this thread's signal mask; called before other threads start,
        // so every thread started later inherits it.
        if unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) } != 0 {
            return None;
        }
        Some(Source(set))
    }

    /// Waits for one of the signals and returns its number.
    pub(super) fn wait(&self) -> i32 {
        let mut sig = 0;
        // SAFETY: `self.0` is a valid signal set and `sig` a valid out-pointer.
        while unsafe { libc::sigwait(&self.0, &mut sig) } != 0 {}
        sig
    }

    /// One of the signals that is pending, taken (so it does not act again), if any.
    /// `sigpending` and `sigwait` rather than `sigtimedwait`, which macOS does not have.
    pub(super) fn take_pending(&self) -> Option<i32> {
        // SAFETY: sigemptyset initialises `pending`; sigpending fills it.
        let pending = unsafe {
            let mut pending: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut pending);
            if libc::sigpending(&mut pending) != 0 {
                return None;
            }
            pending
        };
        for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
            // SAFETY: both sets are initialised; `sig` is a valid signal number.
            if unsafe {
                libc::sigismember(&pending, sig) == 1 && libc::sigismember(&self.0, sig) == 1
            } {
                let mut got = 0;
                // SAFETY: `self.0` is a valid signal set and `got` a valid out-pointer; a
                // signal of it is pending (and blocked in every thread), so this returns at once.
                if unsafe { libc::sigwait(&self.0, &mut got) } == 0 {
                    return Some(got);
                }
            }
        }
        None
    }
}

/// Unblocks the signals again (no handler thread could be started): they act as they would
/// have.
pub(super) fn restore() {
    let set = signals();
    // SAFETY: changes only this thread's signal mask.
    unsafe { libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut()) };
}

/// The signal's name, for the one line.
pub(super) fn name(sig: i32) -> &'static str {
    match sig {
        libc::SIGTERM => "SIGTERM",
        libc::SIGHUP => "SIGHUP",
        _ => "SIGINT",
    }
}

/// Ends the process at once with `code` (`_exit`: no destructors, no atexit handlers).
pub(super) fn exit_now(code: i32) -> ! {
    // SAFETY: _exit ends the process at once.
    unsafe { libc::_exit(code) }
}
