//! What a long command draws while it works: counts (entries and bytes done, as a bar out of
//! the total when the library knows it, from a [`cowtree_fs::Progress`] the library bumps)
//! and the elapsed time. Drawn on stderr only when
//! it is a terminal, only once the command has run for a second, and cleared when the command
//! ends, so that a long snapshot, checkout or verify is never silent and a quick one never
//! flickers.

use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use cowtree_fs::Progress;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::units::bytes;

/// How long a command runs before anything is drawn.
const DELAY: Duration = Duration::from_secs(1);
/// How often the counts are redrawn.
const REDRAW: Duration = Duration::from_millis(100);

/// What the entries of a [`Progress`] are, in the singular and the plural ("file", "files").
pub type Noun = (&'static str, &'static str);

/// A running display; cleared on drop.
pub struct Activity {
    done: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
    /// The counters the library bumps; shared with the drawing thread.
    progress: Arc<Progress>,
}

impl Activity {
    /// Shows `label` with the counts of [`Activity::progress`] (in `noun`s and bytes, as a bar
    /// once the total is known) after [`DELAY`], unless `quiet` or stderr is not a terminal.
    pub fn counting(label: String, quiet: bool, noun: Noun) -> Activity {
        let progress = Arc::new(Progress::default());
        if quiet || !std::io::stderr().is_terminal() {
            return Activity {
                done: None,
                thread: None,
                progress,
            };
        }
        let (tx, rx) = mpsc::channel::<()>();
        let counters = Arc::clone(&progress);
        let thread = std::thread::Builder::new()
            .name("cowtree-progress".into())
            .spawn(move || draw(&rx, &label, &counters, noun))
            .ok();
        Activity {
            done: Some(tx),
            thread,
            progress,
        }
    }

    /// The counters to hand to the library.
    pub fn progress(&self) -> &Progress {
        &self.progress
    }

    /// The counters, shared, when something is drawn from them (for a library that takes
    /// its progress as an option and can skip work when there is none).
    pub fn shared(&self) -> Option<Arc<Progress>> {
        self.thread.is_some().then(|| Arc::clone(&self.progress))
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

/// The drawing thread: waits [`DELAY`], then redraws every [`REDRAW`] until `done` closes.
fn draw(done: &mpsc::Receiver<()>, label: &str, progress: &Progress, noun: Noun) {
    if done.recv_timeout(DELAY) != Err(mpsc::RecvTimeoutError::Timeout) {
        return;
    }
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    let style = |template: &str| ProgressStyle::with_template(template).ok();
    if let Some(s) = style("{spinner} {msg} ({elapsed})") {
        bar.set_style(s);
    }
    bar.enable_steady_tick(REDRAW);
    let mut with_total = style("{spinner} {prefix} {wide_bar} {msg} ({elapsed})");
    bar.set_prefix(label.to_string());
    loop {
        let total = progress.total();
        if let Some(t) = total {
            // Once: the bar appears when the total becomes known.
            if let Some(s) = with_total.take() {
                bar.set_style(s);
            }
            bar.set_length(t.entries);
            bar.set_position(progress.entries());
        }
        bar.set_message(counts_line(label, progress, total, noun));
        if done.recv_timeout(REDRAW) != Err(mpsc::RecvTimeoutError::Timeout) {
            break;
        }
    }
    bar.finish_and_clear();
}

/// `12/40 files, 1.2 MiB/3.0 MiB` when the total is known (the label is then the bar's
/// prefix), else `LABEL: 12 files, 1.2 MiB`.
fn counts_line(
    label: &str,
    progress: &Progress,
    total: Option<cowtree_fs::progress::Total>,
    (one, many): Noun,
) -> String {
    let n = progress.entries();
    let done = bytes(progress.bytes());
    match total {
        Some(t) => {
            let noun = if t.entries == 1 { one } else { many };
            match t.bytes {
                Some(b) => format!("{n}/{} {noun}, {done}/{}", t.entries, bytes(b)),
                None => format!("{n}/{} {noun}, {done}", t.entries),
            }
        }
        None => format!("{label}: {n} {}, {done}", if n == 1 { one } else { many }),
    }
}
