//! The `cowtree` command.

mod cmd;
mod exit;
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
    max_term_width = 100
)]
struct Cli {
    /// The store directory (default: $COWTREE_STORE, else $XDG_DATA_HOME/cowtree, else
    /// ~/.local/share/cowtree). Created on first use.
    #[arg(long, global = true, value_name = "PATH")]
    store: Option<std::path::PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
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
    Worktrees(cmd::worktrees::Args),
    Worktree(cmd::worktree::Args),
    Git(cmd::git::Args),
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
    if matches!(
        cli.command,
        Command::Probe(_)
            | Command::Ls(_)
            | Command::Show(_)
            | Command::Verify(_)
            | Command::Du(_)
            | Command::Status(_)
            | Command::Worktrees(_)
    ) {
        die_quietly_on_closed_pipe();
    }
    let result = match cli.command {
        Command::Clone(args) => cmd::clone::run(args),
        Command::Probe(args) => cmd::probe::run(args),
        Command::Snapshot(args) => cmd::snapshot::run(args, cli.store.as_deref()),
        Command::Checkout(args) => cmd::checkout::run(args, cli.store.as_deref()),
        Command::Ls(args) => cmd::ls::run(args, cli.store.as_deref()),
        Command::Show(args) => cmd::show::run(args, cli.store.as_deref()),
        Command::Tag(args) => cmd::tag::run(args, cli.store.as_deref()),
        Command::Rm(args) => cmd::rm::run(args, cli.store.as_deref()),
        Command::Gc(args) => cmd::gc::run(args, cli.store.as_deref()),
        Command::Verify(args) => cmd::verify::run(args, cli.store.as_deref()),
        Command::Du(args) => cmd::du::run(args),
        Command::Dedupe(args) => cmd::dedupe::run(args),
        Command::Status(args) => cmd::status::run(args, cli.store.as_deref()),
        Command::Switch(args) => cmd::switch::run(args, cli.store.as_deref()),
        Command::Reset(args) => cmd::reset::run(args, cli.store.as_deref()),
        Command::Worktrees(args) => cmd::worktrees::run(args, cli.store.as_deref()),
        Command::Worktree(args) => cmd::worktree::run(args, cli.store.as_deref()),
        Command::Git(args) => cmd::git::run(args),
    };
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
