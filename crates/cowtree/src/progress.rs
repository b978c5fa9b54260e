//! A spinner with the elapsed time for commands whose libraries report no progress: drawn on
//! stderr only when it is a terminal, only once the command has run for a second, and cleared
//! when the command ends, so that a long snapshot, checkout or verify is never silent and a
//! quick one never flickers.

use std::io::IsTerminal;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How long a command runs before the spinner appears.
const DELAY: Duration = Duration::from_secs(1);

/// A running spinner; cleared on drop.
pub struct Activity {
    done: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Activity {
    /// Shows `label` with a spinner and the elapsed time after [`DELAY`], unless `quiet` or
    /// stderr is not a terminal.
    pub fn start(label: String, quiet: bool) -> Activity {
        if quiet || !std::io::stderr().is_terminal() {
            return Activity {
                done: None,
                thread: None,
            };
        }
        let (tx, rx) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("cowtree-progress".into())
            .spawn(move || {
                if rx.recv_timeout(DELAY) != Err(mpsc::RecvTimeoutError::Timeout) {
                    return;
                }
                let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
                if let Ok(style) = ProgressStyle::with_template("{spinner} {msg} ({elapsed})") {
                    bar.set_style(style);
                }
                bar.set_message(label);
                bar.enable_steady_tick(Duration::from_millis(100));
                let _ = rx.recv();
                bar.finish_and_clear();
            })
            .ok();
        Activity {
            done: Some(tx),
            thread,
        }
    }
}

impl Drop for Activity {
    fn drop(&mut self) {
        drop(self.done.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
