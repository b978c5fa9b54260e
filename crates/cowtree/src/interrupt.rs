//! Ctrl-C (SIGINT), SIGTERM and SIGHUP: take back what the interrupted command staged, say in
//! one line what is left, and exit 128 + the signal (130, 143, 129). Under `--json` the same
//! line is also printed on stdout as the JSON error object (kind `interrupted`).
//!
//! The signals are blocked in every thread (the mask is set before any other thread starts and
//! is inherited), and one thread waits for them with `sigwait`, so a signal never interrupts a
//! worker in the middle of a system call. When one arrives, that thread runs the libraries'
//! undo registry ([`cowtree_fs::undo::undo_all`]: every staging directory, tree being made,
//! temporary file and library run this process registered, taken back the way each one's own
//! error path takes it back), prints what it says it did, and ends the process with `_exit`,
//! which stops the workers. Nothing here knows what a command stages: the library calls
//! register it as they make it.
//!
//! On Windows the console's events stand for the signals (`interrupt/signal_windows.rs`):
//! Ctrl-C and Ctrl-Break for SIGINT (130), closing the console window for SIGHUP (129),
//! logoff and shutdown for SIGTERM (143). A console control handler hands each event to the
//! same thread, which does the same undo and ends the process with `TerminateProcess`.
//!
//! A command that can stop its own work cleanly registers how with [`cancel_with`] (`cowtree
//! clone`: its linker's cancellation handle). The first signal then cancels it and lets the
//! command return, so that its own error path undoes its work (a merge into an existing
//! destination is rolled back, a new destination's staging removed) before the process exits
//! with the same one line; a second signal while it does stops at once, as above.
//!
//! A command whose work is done and kept calls [`finished`] before it prints its result: a
//! signal from then on changes nothing (the result printed is the result, the exit status the
//! command's), and only a second one ends the process, at once. Without it, a signal between
//! a printed summary and the process's end would add "interrupted" to a run that had
//! succeeded.
//!
//! What a command can say about its own result beyond what was undone (whether DST exists, a
//! journaled switch or merge and how to finish it, blobs gc frees) it registers with
//! [`tell`]: sentences only, printed after the undo.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};

#[cfg(unix)]
#[path = "interrupt/signal_unix.rs"]
mod signal;
#[cfg(windows)]
#[path = "interrupt/signal_windows.rs"]
mod signal;

/// What an interrupted command says about its result, after the undo.
#[derive(Debug, Clone)]
pub enum Tell {
    /// This sentence (e.g. how to finish a journaled switch).
    Note(String),
    /// A merge into the existing directory `dst` (journaled): says whether it finished, was
    /// undone, or is left for the next merge (or `cowtree clone --recover`) to finish.
    Merge { dst: PathBuf },
    /// A switch of the worktree `worktree` (registered in the store at `store`) to `to`: says,
    /// from the worktree's record once the command stopped, whether the switch is journaled
    /// (`journaled`, the sentence that says how to finish it), done, or not begun.
    Switch {
        /// The store's root.
        store: PathBuf,
        /// The worktree.
        worktree: PathBuf,
        /// The snapshot switched to.
        to: cowtree_store::Hash,
        /// Printed when the record holds the switch's journal.
        journaled: String,
    },
    /// Says whether `path` exists (looked at after every removal): `yes` or `no`.
    Exists {
        /// The path.
        path: PathBuf,
        /// Printed when it exists.
        yes: String,
        /// Printed when it does not.
        no: String,
    },
}

static PLAN: Mutex<Vec<Tell>> = Mutex::new(Vec::new());
/// The command runs; a signal stops it.
const RUNNING: u8 = 0;
/// A signal is being handled: the handler ends the process.
const STOPPING: u8 = 1;
/// The command's work is done and its result is being printed ([`finished`]): a signal no
/// longer undoes or reports anything.
const FINISHED: u8 = 2;
static STATE: AtomicU8 = AtomicU8::new(RUNNING);
/// How the running command stops its work (see [`cancel_with`]).
type Cancel = Box<dyn Fn() + Send>;
static CANCEL: Mutex<Option<Cancel>> = Mutex::new(None);
/// Set by the main thread when the command returned while a signal was handled: whether it
/// succeeded.
static RETURNED: Mutex<Option<bool>> = Mutex::new(None);
static JSON: AtomicBool = AtomicBool::new(false);

/// Under `--json`, an interrupt is also reported as the JSON error object on stdout.
pub fn set_json(json: bool) {
    JSON.store(json, Ordering::Relaxed);
}

/// Called by the main thread before it reports the command's result: once a signal is being
/// handled, the result is moot (and an error may only be the handler removing the staging
/// under a worker), so the main thread waits for the handler to end the process.
/// `ok`: the command succeeded (a handler that cancelled the command says what it left from
/// that).
pub fn hold_if_stopping(ok: bool) {
    if STATE.load(Ordering::Acquire) == STOPPING
        && let Ok(mut returned) = RETURNED.lock()
    {
        *returned = Some(ok);
    }
    while STATE.load(Ordering::Acquire) == STOPPING {
        std::thread::park_timeout(std::time::Duration::from_secs(1));
    }
}

/// Called by a command once its work is done and kept, before it prints its result: from here
/// on a signal undoes nothing and prints nothing, so the result printed is the whole story and
/// the exit status the command's own (a second signal still ends the process at once, with
/// 128 + the signal and no further word). If a signal came first, its handler owns the
/// process: this waits for it to end the process, with the line that says what was done
/// (the command succeeded, so "DST was already complete" and the like).
pub fn finished() {
    if let Err(STOPPING) =
        STATE.compare_exchange(RUNNING, FINISHED, Ordering::AcqRel, Ordering::Acquire)
    {
        hold_if_stopping(true);
    }
}

/// Registers how the command stops its own work: on the first signal the handler calls
/// `cancel` and waits for the command to return (see the module doc).
pub fn cancel_with(cancel: impl Fn() + Send + 'static) {
    if let Ok(mut c) = CANCEL.lock() {
        *c = Some(Box::new(cancel));
    }
}

/// Registers what to say if the command is interrupted from now on.
pub fn tell(what: Tell) {
    if let Ok(mut plan) = PLAN.lock() {
        plan.push(what);
    }
}

/// Blocks SIGINT, SIGTERM and SIGHUP (on Windows: takes the console's Ctrl-C, Ctrl-Break and
/// close events) and starts the thread that handles them. Call at start-up, before any other
/// thread exists.
pub fn install(command: &'static str) {
    let Some(source) = signal::Source::take() else {
        return;
    };
    let spawned = std::thread::Builder::new()
        .name("cowtree-signals".into())
        .spawn(move || {
            let sig = source.wait();
            if STATE
                .compare_exchange(RUNNING, STOPPING, Ordering::AcqRel, Ordering::Acquire)
                .is_err()
            {
                // The command had finished its work and is printing its result (`finished`):
                // the result stands. A second signal ends the process at once.
                let again = source.wait();
                signal::exit_now(128 + again)
            }
            let cancel = CANCEL.lock().ok().and_then(|mut c| c.take());
            match cancel {
                Some(cancel) => cancel_then_stop(command, sig, &source, cancel),
                None => stop(command, sig, None),
            }
        });
    if spawned.is_err() {
        // No handler thread: let the signals act as they would have.
        signal::restore();
    }
}

/// Cancels the command and waits for it to return, then stops with what it left; a second
/// signal meanwhile stops at once.
fn cancel_then_stop(command: &str, sig: i32, source: &signal::Source, cancel: Cancel) -> ! {
    // No new destination appears from now on (one being renamed into place is waited for).
    cowtree_fs::staging::stop_staging();
    cancel();
    let started = std::time::Instant::now();
    let mut told = false;
    loop {
        if let Some(ok) = RETURNED.lock().ok().and_then(|r| *r) {
            stop(command, sig, Some(ok));
        }
        if let Some(again) = source.take_pending() {
            stop(command, again, None);
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
        // Undoing a big merge takes a while: say why nothing seems to happen (on a terminal
        // only: a program reading stderr gets its one line).
        if !told
            && started.elapsed() > std::time::Duration::from_secs(1)
            && std::io::IsTerminal::is_terminal(&std::io::stderr())
        {
            told = true;
            eprintln!(
                "\r\x1b[2Kcowtree: {command}: stopping, undoing its work (interrupt again to stop at once)"
            );
        }
    }
}

/// Removes what the plan says, prints the one line, and exits. `returned`: the command had
/// returned (cancelled, or done), and whether it succeeded.
fn stop(command: &str, sig: i32, returned: Option<bool>) -> ! {
    // Closes the staging gate first: from here on nothing is staged or moves into place, so
    // the undo misses nothing, what it removes cannot be renamed to DST half emptied, and
    // DST's existence below says the command had finished.
    let undone = cowtree_fs::undo::undo_all();
    let plan = PLAN.lock().map(|p| p.clone()).unwrap_or_default();
    let mut said = undone_sentences(&undone);
    if undone.is_empty() && plan.is_empty() {
        said.push("it had staged nothing: nothing is left to remove".into());
    }
    for what in &plan {
        said.push(match what {
            Tell::Note(text) => text.clone(),
            Tell::Exists { path, yes, no } => {
                if path.symlink_metadata().is_ok() {
                    yes.clone()
                } else {
                    no.clone()
                }
            }
            Tell::Merge { dst } => merge_state(dst, returned),
            Tell::Switch {
                store,
                worktree,
                to,
                journaled,
            } => switch_state(store, worktree, to, journaled),
        });
    }
    let name = signal::name(sig);
    let tail = if said.is_empty() {
        String::new()
    } else {
        format!("; {}", said.join("; "))
    };
    // A progress line may be on the terminal: start on a clean line.
    let clear = if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        "\r\x1b[2K"
    } else {
        ""
    };
    let line = format!("{command} interrupted by {name}{tail}");
    eprintln!("{clear}cowtree: {line}");
    if JSON.load(Ordering::Relaxed) {
        let code = (128 + sig) as u8;
        println!(
            "{}",
            crate::exit::error_json(crate::exit::Kind::Interrupted, &line, None, code)
        );
    }
    // At once: no destructors run while workers still hold the state they would tear down.
    signal::exit_now(128 + sig)
}

/// What an interrupted merge into `dst` left: finished (the command had returned with
/// success), undone (it returned and left no journal of this process), untouched or whole (it
/// was stopped at once and left no journal), or a journal that the next merge into `dst` or
/// `cowtree clone --recover` finishes.
fn merge_state(dst: &Path, returned: Option<bool>) -> String {
    let d = dst.display();
    match returned {
        Some(true) => format!("the merge into {d} had finished"),
        Some(false) if !own_journal_in(dst) => {
            format!("the merge into {d} was undone: it is as it was")
        }
        // Stopped at once, with no journal: the merge had not begun, or had ended.
        None if !own_journal_in(dst) => format!("{d} is as it was, or merged whole"),
        _ => format!(
            "the merge into {d} is finished or undone by the next clone into it, or now by \
             `cowtree clone --recover {}` (until then its temporary entries \
             .<name>.cowtree-tmp.* and its journal .cowtree-txn.* are there)",
            cowtree_store::error::shell_word(dst)
        ),
    }
}

/// What an interrupted switch left, from the worktree's record: its journal (`journaled`
/// says how to finish it), the new base (done), or the old one and no journal (not begun).
fn switch_state(
    store: &Path,
    worktree: &Path,
    to: &cowtree_store::Hash,
    journaled: &str,
) -> String {
    let wt = cowtree_store::Store::open(store).ok().and_then(|s| {
        cowtree_worktree::registry::lookup(&s, worktree)
            .ok()
            .flatten()
    });
    match wt {
        Some(wt) if wt.pending.is_some() => journaled.to_owned(),
        Some(wt) if wt.base == *to => format!("{} was switched", worktree.display()),
        Some(_) => format!("{} was not changed", worktree.display()),
        None => journaled.to_owned(),
    }
}

/// True when `dst` holds a merge journal of this process (`.cowtree-txn.<pid>.*`).
fn own_journal_in(dst: &Path) -> bool {
    let prefix = format!(".cowtree-txn.{}.", std::process::id());
    cowtree_fs::dir::Dir::open(dst)
        .and_then(|d| d.entries())
        .map(|entries| {
            entries
                .iter()
                .any(|e| e.name.as_encoded_bytes().starts_with(prefix.as_bytes()))
        })
        // Unreadable: say what to do, to be safe.
        .unwrap_or(true)
}

/// What the undo registry did, as sentences: each library run's own, then the staging
/// removed, then what could not be removed (its records are kept for gc).
fn undone_sentences(undone: &cowtree_fs::undo::Report) -> Vec<String> {
    let mut said = Vec::new();
    for call in &undone.calls {
        if call.is_empty() {
            said.push("it had made nothing yet: nothing is left".into());
        }
        said.extend(call.iter().cloned());
    }
    if !undone.removed.is_empty() {
        let names: Vec<String> = undone
            .removed
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        said.push(format!("removed its partial work {}", names.join(", ")));
    }
    if !undone.failed.is_empty() {
        let failed: Vec<String> = undone
            .failed
            .iter()
            .map(|(p, e)| format!("{}: {e}", p.display()))
            .collect();
        said.push(format!(
            "could not remove its partial work ({}); remove it by hand",
            failed.join("; ")
        ));
    }
    said
}

/// The command this process runs, as a shell would run it again (`cowtree` and its arguments,
/// each quoted as needed): for a message that says "run the same command again".
pub fn same_command() -> String {
    let mut c = String::from("cowtree");
    for a in std::env::args_os().skip(1) {
        c.push(' ');
        c.push_str(&cowtree_store::error::shell_word(&a));
    }
    c
}
