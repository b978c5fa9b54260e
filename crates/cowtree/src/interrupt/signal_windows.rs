//! The signals an interrupt is, on Windows: the console's control events, each standing for
//! the unix signal a user of the command knows (its exit status is 128 + that number): Ctrl-C
//! and Ctrl-Break for SIGINT (2), closing the console for SIGHUP (1), logoff and shutdown for
//! SIGTERM (15). A console control handler (`SetConsoleCtrlHandler`) runs on a thread the
//! system starts for each event; it hands the event to the handler thread through a channel,
//! so that the undo runs on one thread, in order, as on unix.

use std::sync::Mutex;
use std::sync::mpsc::{Receiver, Sender, channel};

use windows_sys::Win32::Foundation::{FALSE, TRUE};
use windows_sys::Win32::System::Console::{
    CTRL_BREAK_EVENT, CTRL_C_EVENT, CTRL_CLOSE_EVENT, CTRL_LOGOFF_EVENT, CTRL_SHUTDOWN_EVENT,
    SetConsoleCtrlHandler,
};
use windows_sys::Win32::System::Threading::{GetCurrentProcess, TerminateProcess};
use windows_sys::core::BOOL;

const SIGHUP: i32 = 1;
const SIGINT: i32 = 2;
const SIGTERM: i32 = 15;

/// Where the console handler sends the events it takes.
static SENDER: Mutex<Option<Sender<i32>>> = Mutex::new(None);

/// The events, received by the handler thread.
pub(super) struct Source(Receiver<i32>);

/// The console control handler: hands the event on and says it is handled. For a closing
/// console, a logoff or a shutdown the system ends the process when this returns, so it waits
/// instead: the handler thread ends the process once its undo is done (the system allows a
/// few seconds).
unsafe extern "system" fn on_event(event: u32) -> BOOL {
    let sig = match event {
        CTRL_C_EVENT | CTRL_BREAK_EVENT => SIGINT,
        CTRL_CLOSE_EVENT => SIGHUP,
        CTRL_LOGOFF_EVENT | CTRL_SHUTDOWN_EVENT => SIGTERM,
        _ => return FALSE,
    };
    let sent = SENDER
        .lock()
        .ok()
        .and_then(|s| s.as_ref().map(|tx| tx.send(sig).is_ok()))
        .unwrap_or(false);
    if !sent {
        // No handler thread: the default handler ends the process.
        return FALSE;
    }
    if sig != SIGINT {
        loop {
            std::thread::park();
        }
    }
    TRUE
}

impl Source {
    /// Installs the console control handler. `None` when it could not be.
    pub(super) fn take() -> Option<Source> {
        let (tx, rx) = channel();
        *SENDER.lock().ok()? = Some(tx);
        // SAFETY: `on_event` is a valid handler for the life of the process.
        if unsafe { SetConsoleCtrlHandler(Some(on_event), TRUE) } == 0 {
            return None;
        }
        Some(Source(rx))
    }

    /// Waits for one event and returns the signal number it stands for.
    pub(super) fn wait(&self) -> i32 {
        // The sender lives in a static: it is never dropped, so `recv` only returns events.
        self.0.recv().unwrap_or(SIGINT)
    }

    /// An event that came and was not yet taken, if any.
    pub(super) fn take_pending(&self) -> Option<i32> {
        self.0.try_recv().ok()
    }
}

/// Removes the handler (no handler thread could be started): the events act as they would
/// have.
pub(super) fn restore() {
    if let Ok(mut s) = SENDER.lock() {
        *s = None;
    }
    // SAFETY: removes the handler installed by `Source::take`.
    unsafe { SetConsoleCtrlHandler(Some(on_event), FALSE) };
}

/// The signal's name, for the one line.
pub(super) fn name(sig: i32) -> &'static str {
    match sig {
        SIGTERM => "SIGTERM",
        SIGHUP => "SIGHUP",
        _ => "SIGINT",
    }
}

/// Ends the process at once with `code` (`TerminateProcess`: no destructors, as `_exit`).
pub(super) fn exit_now(code: i32) -> ! {
    // SAFETY: ends this process; the pseudo handle of the current process is always valid.
    unsafe { TerminateProcess(GetCurrentProcess(), code as u32) };
    // TerminateProcess of the current process does not return; should it, exit all the same.
    std::process::exit(code)
}
