//! The `cowtree` command.

mod cmd;
mod exit;
mod interrupt;
mod progress;
mod units;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Copy-on-write clones of directory trees.
///
/// cowtree shares file data through reflinks (FICLONE on Linux XFS and btrfs) so that copies of
/// a tree cost almost no time and no extra disk, and says plainly when a filesystem cannot and it
/// copied instead.
#[derive(Debug, Parser)]
#[command(
    name = "cowtree",
    version,
    propagate_version = true,
    max_term_width = 100,
    after_help = "Examples:
  cowtree clone ~/src/linux /work/linux-copy     # a copy that shares data with the source
  cowtree snapshot ~/src/app --name v1           # record a tree in the store
  cowtree checkout v1 /work/app-a                # a worktree from it (again for app-b, ...)
  cd /work/app-a && cowtree status               # what changed since the checkout"
)]
struct Cli {
    /// The store directory, for the commands that use one (the same as their own --store).
    /// Default: $COWTREE_STORE, else the store that holds the worktree, else one on the
    /// tree's filesystem (see `cowtree stores`).
    #[arg(long, value_name = "PATH")]
    store: Option<std::path::PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    #[command(after_help = "Examples:
  cowtree clone ~/src/linux /work/linux-copy       # a copy sharing data with the source
  cowtree clone --mode clone --strict src dst      # clone every file or fail (exit 3)
  cowtree clone --json --quiet src dst             # the report as JSON, nothing else")]
    Clone(cmd::clone::Args),
    Probe(cmd::probe::Args),
    Snapshot(cmd::snapshot::Args),
    Checkout(cmd::checkout::Args),
    Ls(cmd::ls::Args),
    Show(cmd::show::Args),
    Tag(cmd::tag::Args),
    Rm(cmd::rm::Args),
    Gc(cmd::gc::Args),
    Verify(cmd::verify::Args),
    Du(cmd::du::Args),
    Dedupe(cmd::dedupe::Args),
    Status(cmd::status::Args),
    Switch(cmd::switch::Args),
    Reset(cmd::reset::Args),
    Worktree(cmd::worktree::Args),
    /// List registered worktrees (the same as `cowtree worktree list`).
    Worktrees(cmd::worktrees::Args),
    Stores(cmd::stores::Args),
    Remote(cmd::remote::Args),
    Push(cmd::push::Args),
    Pull(cmd::pull::Args),
    Git(cmd::git::Args),
}

/// The command's name, for messages.
fn name(c: &Command) -> &'static str {
    match c {
        Command::Clone(_) => "clone",
        Command::Probe(_) => "probe",
        Command::Snapshot(_) => "snapshot",
        Command::Checkout(_) => "checkout",
        Command::Ls(_) => "ls",
        Command::Show(_) => "show",
        Command::Tag(_) => "tag",
        Command::Rm(_) => "rm",
        Command::Gc(_) => "gc",
        Command::Verify(_) => "verify",
        Command::Du(_) => "du",
        Command::Dedupe(_) => "dedupe",
        Command::Status(_) => "status",
        Command::Switch(_) => "switch",
        Command::Reset(_) => "reset",
        Command::Worktree(_) => "worktree",
        Command::Worktrees(_) => "worktrees",
        Command::Stores(_) => "stores",
        Command::Remote(_) => "remote",
        Command::Push(_) => "push",
        Command::Pull(_) => "pull",
        Command::Git(_) => "git",
    }
}

/// The name of a command that uses no store (so `cowtree --store P` before it is a mistake).
fn storeless(c: &Command) -> Option<&'static str> {
    match c {
        Command::Clone(_) => Some("clone"),
        Command::Probe(_) => Some("probe"),
        Command::Du(_) => Some("du"),
        Command::Dedupe(_) => Some("dedupe"),
        Command::Stores(_) => Some("stores"),
        Command::Git(_) => Some("git"),
        _ => None,
    }
}

/// Parallel walks keep a directory fd per work item; allow what the hard limit allows.
fn raise_fd_limit() {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut lim = getrlimit(Resource::Nofile);
    if lim.current < lim.maximum {
        lim.current = lim.maximum;
        let _ = setrlimit(Resource::Nofile, lim);
    }
}

fn main() -> ExitCode {
    keep_freed_memory();
    let cli = Cli::parse();
    raise_fd_limit();
    // What each command leaves if interrupted, as far as its arguments tell, is known before
    // a signal can be handled: one that comes before the work starts says it too.
    match &cli.command {
        Command::Clone(args) => cmd::clone::expect_interrupt(args),
        Command::Checkout(args) => cmd::checkout::expect_interrupt(args),
        Command::Snapshot(_) => cmd::snapshot::expect_interrupt(),
        _ => {}
    }
    interrupt::install(name(&cli.command));
    if matches!(
        cli.command,
        Command::Probe(_)
            | Command::Ls(_)
            | Command::Show(_)
            | Command::Verify(_)
            | Command::Du(_)
            | Command::Status(_)
            | Command::Worktrees(_)
            | Command::Stores(_)
    ) {
        die_quietly_on_closed_pipe();
    }
    if let Some(p) = &cli.store
        && let Some(name) = storeless(&cli.command)
    {
        eprintln!(
            "cowtree: --store {}: `cowtree {name}` uses no store",
            p.display()
        );
        return ExitCode::from(2);
    }
    let top = cli.store.as_deref();
    let result = match cli.command {
        Command::Clone(args) => cmd::clone::run(args),
        Command::Probe(args) => cmd::probe::run(args),
        Command::Snapshot(args) => cmd::snapshot::run(args, top),
        Command::Checkout(args) => cmd::checkout::run(args, top),
        Command::Ls(args) => cmd::ls::run(args, top),
        Command::Show(args) => cmd::show::run(args, top),
        Command::Tag(args) => cmd::tag::run(args, top),
        Command::Rm(args) => cmd::rm::run(args, top),
        Command::Gc(args) => cmd::gc::run(args, top),
        Command::Verify(args) => cmd::verify::run(args, top),
        Command::Du(args) => cmd::du::run(args),
        Command::Dedupe(args) => cmd::dedupe::run(args),
        Command::Status(args) => cmd::status::run(args, top),
        Command::Switch(args) => cmd::switch::run(args, top),
        Command::Reset(args) => cmd::reset::run(args, top),
        Command::Worktree(args) => cmd::worktree::run(args, top),
        Command::Worktrees(args) => cmd::worktrees::run(args, top),
        Command::Stores(args) => cmd::stores::run(args),
        Command::Remote(args) => cmd::remote::run(args, top),
        Command::Push(args) => cmd::push::run(args, top),
        Command::Pull(args) => cmd::pull::run(args, top),
        Command::Git(args) => cmd::git::run(args),
    };
    interrupt::hold_if_stopping();
    match result {
        Ok(code) => code.into(),
        Err(err) => {
            eprintln!("cowtree: {err}");
            err.exit_code().into()
        }
    }
}

/// A walk's worker threads allocate and free small buffers per directory; glibc's default
/// gives each thread's heap back to the kernel as soon as 128 KiB at its top are free and
/// grows it again a little at a time, each step an `mprotect` and fresh pages to fault in
/// (1,700 calls in an incremental snapshot of 80,000 files; 21 with these settings, and 3%
/// less CPU). A command runs for seconds at most: keep the heaps' freed memory, and grow them
/// 16 MiB at a time (untouched pages cost no memory). Setting these also fixes glibc's mmap
/// threshold at 128 KiB: larger blocks still come from and go back to the kernel each time
/// (setting that threshold higher as well measured no better).
fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes the allocator's tuning; it runs at start-up, before any
    // other thread exists. A refused setting (return value 0) leaves the default.
    unsafe {
        libc::mallopt(libc::M_TRIM_THRESHOLD, 256 << 20);
        libc::mallopt(libc::M_TOP_PAD, 16 << 20);
    }
}

/// Lets a closed output pipe end the process quietly, as it ends `ls` or `git status`
/// (`cowtree status | head`), instead of the write failing with EPIPE and the print panicking.
/// Only for the commands that change nothing: one that writes to a filesystem keeps ignoring
/// SIGPIPE, so that a reader going away cannot kill it halfway through its work.
fn die_quietly_on_closed_pipe() {
    // SAFETY: resetting SIGPIPE to its default disposition installs no handler; it runs at
    // start-up, before any other thread exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}
