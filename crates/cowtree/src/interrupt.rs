//! Ctrl-C (SIGINT), SIGTERM and SIGHUP: remove what the interrupted command was building, say in
//! one line what is left, and exit 128 + the signal (130, 143, 129). Under `--json` the same
//! line is also printed on stdout as the JSON error object (kind `interrupted`).
//!
//! The signals are blocked in every thread (the mask is set before any other thread starts and
//! is inherited), and one thread waits for them with `sigwait`, so a signal never interrupts a
//! worker in the middle of a system call. When one arrives, that thread removes the staging the
//! running command registered with [`expect`] and ends the process with `_exit`, which stops
//! the workers. A staging directory is removed by removing its entries and then the directory
//! itself, again until the directory is gone: a worker still adding entries can only make the
//! final `rmdir` fail for one round, and once the directory is unlinked nothing more can be
//! created in it. Before listing anything the handler stops staging directories and their
//! registrations from being created or renamed into place
//! ([`cowtree_fs::staging::stop_staging`], which also waits for one in progress), so the
//! listing misses none of those it lists, and a destination that exists afterwards is whole.
//! A command that registered nothing is journaled or changes nothing halfway (switch, reset,
//! dedupe, gc, reads), and just stops.
//!
//! A command that can stop its own work cleanly registers how with [`cancel_with`] (`cowtree
//! clone`: its linker's cancellation handle). The first signal then cancels it and lets the
//! command return, so that its own error path undoes its work (a merge into an existing
//! destination is rolled back, a new destination's staging removed) before the process exits
//! with the same one line; a second signal while it does stops at once, as above.
//!
//! What its arguments tell (the staging beside a new destination, the sentences to print) a
//! command registers before the handler starts, so that a signal that comes before its work
//! begins still gets the whole message; what it learns later (where its store is) it
//! registers then, before it creates anything there.
//!
//! `cowtree git worktree add` registers [`Leftover::Call`] with `cowtree_git::abort_all`: the
//! library knows what each of its runs made (staging, registration, branch, parents) and takes
//! it back, after the step in progress has ended.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

/// What an interrupted command leaves, and what to do about it.
#[derive(Debug, Clone)]
pub enum Leftover {
    /// Staging directories in `dir` whose names start with `prefix` (this process's own:
    /// the prefix holds its pid), removed on interrupt.
    Staging { dir: PathBuf, prefix: OsString },
    /// Bookkeeping files in `dir` whose names start with `prefix` (this process's own), removed
    /// on interrupt without a word: the registrations of staging directories (put after the
    /// [`Leftover::Staging`] they describe, so that they go only once it is gone).
    Records { dir: PathBuf, prefix: OsString },
    /// This process's temporary files in `dir` whose names start with `prefix` (e.g. a
    /// manifest being written), removed on interrupt without a word, whatever else was left.
    Temp { dir: PathBuf, prefix: OsString },
    /// Nothing to remove; this sentence is printed (e.g. how to finish a journaled switch).
    /// Sentences come after every removal, whenever they were registered.
    Note(String),
    /// A function that takes back what a library's work in progress made and says what it
    /// did (e.g. `cowtree_git::abort_all`); called first, after staging is stopped.
    Call(fn() -> Vec<String>),
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

static PLAN: Mutex<Vec<Leftover>> = Mutex::new(Vec::new());
static STOPPING: AtomicBool = AtomicBool::new(false);
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
    if STOPPING.load(Ordering::Acquire)
        && let Ok(mut returned) = RETURNED.lock()
    {
        *returned = Some(ok);
    }
    while STOPPING.load(Ordering::Acquire) {
        std::thread::park_timeout(std::time::Duration::from_secs(1));
    }
}

/// Registers how the command stops its own work: on the first signal the handler calls
/// `cancel` and waits for the command to return (see the module doc).
pub fn cancel_with(cancel: impl Fn() + Send + 'static) {
    if let Ok(mut c) = CANCEL.lock() {
        *c = Some(Box::new(cancel));
    }
}

/// Registers what to clean up (or say) if the command is interrupted from now on.
pub fn expect(what: Leftover) {
    if let Ok(mut plan) = PLAN.lock() {
        plan.push(what);
    }
}

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

/// Blocks SIGINT, SIGTERM and SIGHUP and starts the thread that handles them. Call at start-up,
/// before any other thread exists.
pub fn install(command: &'static str) {
    let set = signals();
    // SAFETY: changes only this thread's signal mask; called before other threads start, so
    // every thread started later inherits it.
    if unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) } != 0 {
        return;
    }
    let spawned = std::thread::Builder::new()
        .name("cowtree-signals".into())
        .spawn(move || {
            let mut sig = 0;
            // SAFETY: `set` is a valid signal set and `sig` a valid out-pointer.
            while unsafe { libc::sigwait(&set, &mut sig) } != 0 {}
            let cancel = CANCEL.lock().ok().and_then(|mut c| c.take());
            match cancel {
                Some(cancel) => cancel_then_stop(command, sig, &set, cancel),
                None => stop(command, sig, None),
            }
        });
    if spawned.is_err() {
        // No handler thread: let the signals act as they would have.
        // SAFETY: as above.
        unsafe { libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut()) };
    }
}

/// Cancels the command and waits for it to return, then stops with what it left; a second
/// signal meanwhile stops at once.
fn cancel_then_stop(command: &str, sig: i32, set: &libc::sigset_t, cancel: Cancel) -> ! {
    STOPPING.store(true, Ordering::Release);
    // No new destination appears from now on (one being renamed into place is waited for).
    cowtree_fs::staging::stop_staging();
    cancel();
    let started = std::time::Instant::now();
    let mut told = false;
    loop {
        if let Some(ok) = RETURNED.lock().ok().and_then(|r| *r) {
            stop(command, sig, Some(ok));
        }
        if let Some(again) = take_pending(set) {
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

/// One of the signals of `set` that is pending, taken (so it does not act again), if any.
/// `sigpending` and `sigwait` rather than `sigtimedwait`, which macOS does not have.
fn take_pending(set: &libc::sigset_t) -> Option<i32> {
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
        if unsafe { libc::sigismember(&pending, sig) == 1 && libc::sigismember(set, sig) == 1 } {
            let mut got = 0;
            // SAFETY: `set` is a valid signal set and `got` a valid out-pointer; a signal of it
            // is pending (and blocked in every thread), so this returns at once.
            if unsafe { libc::sigwait(set, &mut got) } == 0 {
                return Some(got);
            }
        }
    }
    None
}

/// Removes what the plan says, prints the one line, and exits. `returned`: the command had
/// returned (cancelled, or done), and whether it succeeded.
fn stop(command: &str, sig: i32, returned: Option<bool>) -> ! {
    STOPPING.store(true, Ordering::Release);
    // From here on no staging directory or registration is created, and none moves into
    // place: the listings below miss nothing, what is removed cannot be renamed to DST half
    // emptied, and DST's existence below says the command had finished.
    cowtree_fs::staging::stop_staging();
    let plan = PLAN.lock().map(|p| p.clone()).unwrap_or_default();
    let mut said = Vec::new();
    // Some staging could not be removed: its registration stays, for gc.
    let mut staging_left = false;
    // First what is removed, then what is said about the rest: a command registers its
    // sentences as early as it can (a signal may come before it has opened its store), its
    // staging once it knows where that goes, and `Exists` must look after the removal.
    for what in &plan {
        if let Leftover::Call(f) = what {
            let done = f();
            if done.is_empty() {
                said.push("it had made nothing yet: nothing is left".into());
            }
            said.extend(done);
        }
    }
    for what in &plan {
        match what {
            Leftover::Call(_) => {}
            Leftover::Staging { dir, prefix } => {
                let removed = remove_staging(dir, prefix);
                if removed.is_empty() {
                    continue;
                }
                let failed: Vec<String> = removed
                    .iter()
                    .filter_map(|(p, r)| r.as_ref().err().map(|e| format!("{}: {e}", p.display())))
                    .collect();
                if failed.is_empty() {
                    let names: Vec<String> = removed
                        .iter()
                        .map(|(p, _)| p.display().to_string())
                        .collect();
                    said.push(format!("removed its partial work {}", names.join(", ")));
                } else {
                    staging_left = true;
                    said.push(format!(
                        "could not remove its partial work ({}); remove it by hand",
                        failed.join("; ")
                    ));
                }
            }
            Leftover::Records { dir, prefix } => {
                if !staging_left {
                    remove_staging(dir, prefix);
                }
            }
            Leftover::Temp { dir, prefix } => {
                remove_staging(dir, prefix);
            }
            Leftover::Note(_)
            | Leftover::Exists { .. }
            | Leftover::Merge { .. }
            | Leftover::Switch { .. } => {}
        }
    }
    for what in &plan {
        match what {
            Leftover::Note(text) => said.push(text.clone()),
            Leftover::Exists { path, yes, no } => said.push(if path.symlink_metadata().is_ok() {
                yes.clone()
            } else {
                no.clone()
            }),
            Leftover::Merge { dst } => said.push(merge_state(dst, returned)),
            Leftover::Switch {
                store,
                worktree,
                to,
                journaled,
            } => said.push(switch_state(store, worktree, to, journaled)),
            Leftover::Staging { .. }
            | Leftover::Records { .. }
            | Leftover::Temp { .. }
            | Leftover::Call(_) => {}
        }
    }
    let name = match sig {
        libc::SIGTERM => "SIGTERM",
        libc::SIGHUP => "SIGHUP",
        _ => "SIGINT",
    };
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
    // SAFETY: _exit ends the process at once (no destructors run while workers still hold
    // the state they would tear down).
    unsafe { libc::_exit(128 + sig) }
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
                .any(|e| e.name.as_bytes().starts_with(prefix.as_bytes()))
        })
        // Unreadable: say what to do, to be safe.
        .unwrap_or(true)
}

/// Removes every entry of `dir` whose name starts with `prefix`; each with its result.
fn remove_staging(dir: &Path, prefix: &OsStr) -> Vec<(PathBuf, std::io::Result<()>)> {
    let Ok(parent) = cowtree_fs::dir::Dir::open(dir) else {
        return Vec::new();
    };
    // Listed through the directory opened above, so the names removed are from the same one.
    let Ok(entries) = parent.entries() else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for e in entries {
        let name = e.name;
        if !name.as_bytes().starts_with(prefix.as_bytes()) {
            continue;
        }
        // A btrfs subvolume (a checkout's snapshot, a tree being made in the store) goes in
        // one ioctl where the kernel permits, read-only or not.
        if let Ok(d) = parent.open_dir(&name)
            && cowtree_fs::subvolume::is_root(cowtree_fs::subvolume::At::new(&d, dir))
                .unwrap_or(false)
        {
            let at = cowtree_fs::subvolume::At::new(&parent, dir);
            if cowtree_fs::subvolume::delete(at, &name).is_ok() {
                out.push((dir.join(&name), Ok(())));
                continue;
            }
        }
        let mut result = Ok(());
        // A worker may add an entry between the removal of the contents and the rmdir; the
        // next round removes it. Once the directory itself is gone, nothing can be added.
        for _ in 0..100 {
            result = parent.remove_tree(&name);
            if result.is_ok() {
                break;
            }
        }
        out.push((dir.join(&name), result));
    }
    out
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

/// The staging prefix of this process for a new destination `dst` built beside it by
/// `cowtree clone` ([`cowtree_link::STAGING_NAMING`]).
pub fn clone_staging(dst: &Path) -> Option<Leftover> {
    beside(dst, &cowtree_link::STAGING_NAMING)
}

/// The staging prefix of this process for a new destination `dst` built beside it by
/// `cowtree checkout` ([`cowtree_store::dest_staging::STAGING`]).
pub fn checkout_staging(dst: &Path) -> Option<Leftover> {
    beside(dst, &cowtree_store::dest_staging::STAGING)
}

fn beside(dst: &Path, naming: &cowtree_fs::staging::Naming) -> Option<Leftover> {
    let abs = std::path::absolute(dst).ok()?;
    Some(Leftover::Staging {
        prefix: naming.process_prefix(abs.file_name()?),
        dir: abs.parent()?.to_path_buf(),
    })
}

/// The registrations in a store's registry `registry` (`Store::worktrees_path`) of this
/// process's staging beside destinations (`staging-<pid>-...`, see
/// `cowtree_store::dest_staging`).
pub fn staging_records(registry: &Path) -> Leftover {
    Leftover::Records {
        dir: registry.to_path_buf(),
        prefix: OsString::from(format!(
            "{}{}-",
            cowtree_store::dest_staging::PREFIX,
            std::process::id()
        )),
    }
}

/// The tree subvolumes this process is making in a store (`trees/.tmp-<pid>-...`, see
/// `cowtree_store::trees`): a checkout building one, a snapshot reading from one.
pub fn store_trees(store_root: &Path) -> Leftover {
    Leftover::Staging {
        dir: store_root.join(cowtree_store::trees::DIR),
        prefix: OsString::from(format!(
            "{}{}-",
            cowtree_store::trees::TMP_PREFIX,
            std::process::id()
        )),
    }
}

/// This process's manifest being written in a store's `snapshots/` (`.tmp-<pid>-...`, see
/// `cowtree_fs::dir::AtomicFile`): a snapshot of a big tree writes it for seconds.
pub fn store_manifest_tmp(store_root: &Path) -> Leftover {
    Leftover::Temp {
        dir: store_root.join("snapshots"),
        prefix: OsString::from(format!(".tmp-{}-", std::process::id())),
    }
}

/// The staging of this process in a store's `tmp/` for `purpose` (`<purpose>-<pid>-...`, see
/// `cowtree_store::Store::staging`): `ingest` for a snapshot, `pull` for a pull.
pub fn store_staging(store_root: &Path, purpose: &str) -> Leftover {
    Leftover::Staging {
        dir: store_root.join("tmp"),
        prefix: OsString::from(format!("{purpose}-{}-", std::process::id())),
    }
}
