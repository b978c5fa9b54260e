//! The `cowtree` command.

// cowtree_store::Error passes clippy's 128-byte limit on Windows only, where `PathBuf` is a
// word larger (see cowtree-store's lib.rs): the results that carry it here too.
#![cfg_attr(windows, allow(clippy::result_large_err))]

mod cmd;
mod complete;
mod exit;
mod interrupt;
mod os;
mod progress;
mod units;

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

use crate::exit::CliError;

/// Copy-on-write clones of directory trees.
///
/// cowtree shares file data through reflinks (FICLONE on Linux XFS and btrfs) so that copies of
/// a tree cost almost no time and no extra disk, and says plainly when a filesystem cannot and it
/// copied instead.
///
/// Exit status: 0 success, 1 error (the message names the path), 2 bad usage, 3 a clone was
/// required and not possible, 4 a check found problems, 5 a remote name conflict, 6 remote
/// access denied or no such bucket, 7 corrupt or missing remote data, 8 the snapshot asked for
/// does not exist (in the stores searched, or on the remote), 129, 130, 143 interrupted by
/// SIGHUP, SIGINT, SIGTERM.
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
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

/// The options every command takes, before or after its name (`cowtree --json ls` and
/// `cowtree ls --json` are the same). A command that defines one of them itself documents what
/// it does there; [`globalize`] makes every definition global.
#[derive(Debug, clap::Args)]
struct Global {
    /// The store directory, for the commands that use one. Default: $COWTREE_STORE, else the
    /// store that holds the worktree, else one on the tree's filesystem (see `cowtree stores`).
    #[arg(long, value_name = "PATH", global = true)]
    store: Option<std::path::PathBuf>,
    /// Print one JSON object on stdout: the result, or on failure
    /// {"error": {"kind", "message", "path"?}, "exit": N} (docs/json.md).
    #[arg(long, global = true)]
    json: bool,
    /// Print less: no progress, notes or warnings (a listing a command was asked for is still
    /// printed).
    #[arg(long, short = 'q', global = true)]
    quiet: bool,
    /// Size the worker pools for N cores (default, or 0: all cores).
    #[arg(long, short = 'j', value_name = "N", global = true)]
    jobs: Option<usize>,
}

/// The ids of the options in [`Global`].
const GLOBAL_IDS: [&str; 4] = ["store", "json", "quiet", "jobs"];

/// Makes every definition of a global option (the top-level one, and a command's own, which
/// takes precedence in that command) global, with its short name, so that it is accepted before
/// or after any command and subcommand, and its value reaches both the command and [`Global`].
fn globalize(mut cmd: clap::Command) -> clap::Command {
    for id in GLOBAL_IDS {
        if cmd.get_arguments().any(|a| a.get_id() == id) {
            cmd = cmd.mut_arg(id, |a| {
                let a = a.global(true);
                match id {
                    "quiet" => a.short('q'),
                    "jobs" => a.short('j'),
                    _ => a,
                }
            });
        }
    }
    let names: Vec<String> = cmd
        .get_subcommands()
        .map(|s| s.get_name().to_owned())
        .collect();
    for n in names {
        cmd = cmd.mut_subcommand(n, globalize);
    }
    cmd
}

#[derive(Debug, Subcommand)]
enum Command {
    #[command(after_help = "Examples:
  cowtree clone ~/src/linux /work/linux-copy       # a copy sharing data with the source
  cowtree clone --mode clone --strict src dst      # clone every file or fail (exit 3)
  cowtree clone --json --quiet src dst             # the report as JSON, nothing else
  cowtree clone --per-file subvol dst              # file by file, even where one snapshot could do")]
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
    Hook(cmd::hook::Args),
    Subvolume(cmd::subvolume::Args),
    Completions(cmd::completions::Args),
    Man(cmd::man::Args),
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
        Command::Git(_) => "git worktree add",
        Command::Hook(_) => "hook",
        Command::Subvolume(_) => "subvolume",
        Command::Completions(_) => "completions",
        Command::Man(_) => "man",
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
        Command::Hook(_) => Some("hook"),
        Command::Subvolume(_) => Some("subvolume"),
        Command::Completions(_) => Some("completions"),
        Command::Man(_) => Some("man"),
        _ => None,
    }
}

/// The whole command line interface, as parsed, completed and documented (man pages).
fn full_command() -> clap::Command {
    globalize(Cli::command())
}

fn main() -> ExitCode {
    keep_freed_memory();
    // A shell's completion script asking what to complete (COWTREE_COMPLETE set): answered,
    // and the process ends, before anything else runs.
    complete::run_if_asked(full_command);
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    // `cowtree git worktree list ...` and the others git runs itself take their arguments
    // verbatim, before any of them could be read as one of cowtree's options.
    if let Some((json, sub, rest)) = cmd::git::passthrough(&args[1..]) {
        return cmd::git::run_git_worktree(sub, rest, json);
    }
    let mut command = full_command();
    let cli = match command
        .try_get_matches_from_mut(&args)
        .and_then(|m| Cli::from_arg_matches(&m))
    {
        Ok(cli) => cli,
        Err(e) => {
            let path = command_path(&command, &args);
            return usage_error(e, wants_json(&args), path);
        }
    };
    os::raise_fd_limit();
    let json = cli.global.json;
    interrupt::set_json(json);
    if let Some(n) = cli.global.jobs.filter(|&n| n > 0) {
        cowtree_fs::workers::limit_cores(n);
    }
    // What each command says about its result if interrupted, as far as its arguments tell,
    // is known before a signal can be handled: one that comes before the work starts says it
    // too. (What it staged, the libraries register as they stage it: `cowtree_fs::undo`.)
    match &cli.command {
        Command::Clone(args) => cmd::clone::tell_interrupt(args),
        Command::Checkout(args) => cmd::checkout::tell_interrupt(args),
        Command::Snapshot(_) => cmd::snapshot::tell_interrupt(),
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
            | Command::Completions(_)
            | Command::Man(_)
    ) || matches!(&cli.command, Command::Git(g) if g.changes_nothing())
    {
        os::die_quietly_on_closed_pipe();
    }
    if let Some(p) = &cli.global.store
        && let Some(name) = storeless(&cli.command)
    {
        return report(
            &CliError::with_code(
                format!("--store {}: `cowtree {name}` uses no store", p.display()),
                2,
            ),
            json,
        );
    }
    let top = cli.global.store.as_deref();
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
        Command::Hook(args) => cmd::hook::run(args),
        Command::Subvolume(args) => cmd::subvolume::run(args),
        Command::Completions(args) => cmd::completions::run(args),
        Command::Man(args) => cmd::man::run(args, full_command()),
    };
    interrupt::hold_if_stopping(result.is_ok());
    match result {
        Ok(code) => code.into(),
        Err(err) => report(&err, json),
    }
}

/// Prints a failed command's error: one line on stderr, and with `--json` the JSON error object
/// on stdout. Returns its exit code.
fn report(err: &CliError, json: bool) -> ExitCode {
    eprintln!("cowtree: {err}");
    if json {
        println!("{}", err.to_json());
    }
    err.exit_code().into()
}

/// True when `--json` is among the arguments (before a `--`): used when they could not be
/// parsed, to report that in JSON too.
fn wants_json(args: &[std::ffi::OsString]) -> bool {
    args.iter()
        .skip(1)
        .take_while(|a| *a != "--")
        .any(|a| a == "--json")
}

/// Reports a command line clap could not parse (or `--help`, `--version`). An unknown option
/// is one line naming it and the command it was given to, never clap's advice to put it after
/// `--` (which would make it a file name); other usage errors are clap's own message.
fn usage_error(e: clap::Error, json: bool, fallback_path: String) -> ExitCode {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    match e.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        _ => {}
    }
    let text = |k| match e.get(k) {
        Some(ContextValue::String(s)) => Some(s.clone()),
        Some(ContextValue::Strings(v)) => v.first().cloned(),
        Some(ContextValue::StyledStr(s)) => Some(s.to_string()),
        _ => None,
    };
    let command = text(ContextKind::Usage)
        .map(|u| usage_path(&u))
        .unwrap_or(fallback_path);
    let prefix = match command.strip_prefix("cowtree ") {
        Some(sub) => format!("{sub}: "),
        None => String::new(),
    };
    let err = if e.kind() == ErrorKind::UnknownArgument {
        let arg = text(ContextKind::InvalidArg).unwrap_or_default();
        let what = if arg.starts_with('-') {
            "unknown option"
        } else {
            "unexpected argument"
        };
        let mut hint = match text(ContextKind::SuggestedArg) {
            Some(s) => format!(" (did you mean '{s}'?)"),
            None => format!(" (see `{command} --help`)"),
        };
        if command == "cowtree git worktree add" && arg.starts_with('-') {
            hint.push_str("; if it is an option of `git worktree add`, run `git worktree add`");
        }
        CliError::with_code(format!("{prefix}{what} '{arg}'{hint}"), 2)
    } else {
        // clap's message, without its "error: " and the usage and help lines that follow.
        let rendered = e.render().to_string();
        let body: Vec<&str> = rendered
            .lines()
            .take_while(|l| !l.starts_with("Usage:") && !l.starts_with("For more information"))
            .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with("tip:"))
            .collect();
        let msg = body.join(" ");
        let msg = msg.strip_prefix("error: ").unwrap_or(&msg);
        let msg = msg.split_whitespace().collect::<Vec<_>>().join(" ");
        if matches!(
            e.kind(),
            ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
        ) && !json
        {
            let _ = e.print();
            return ExitCode::from(2);
        }
        CliError::with_code(format!("{prefix}{msg} (see `{command} --help`)"), 2)
    };
    report(&err, json)
}

/// The command named by `args` (`cowtree git worktree add`), by following subcommand names.
fn command_path(cmd: &clap::Command, args: &[std::ffi::OsString]) -> String {
    let mut path = vec!["cowtree".to_string()];
    let mut cur = cmd;
    for a in args.iter().skip(1) {
        let Some(a) = a.to_str() else { break };
        if let Some(sub) = cur.find_subcommand(a) {
            path.push(sub.get_name().to_owned());
            cur = sub;
        }
    }
    path.join(" ")
}

/// The command path of a clap usage line (`Usage: cowtree git worktree add [OPTIONS] <DST>`
/// gives `cowtree git worktree add`).
fn usage_path(usage: &str) -> String {
    let first = usage.lines().next().unwrap_or_default();
    let rest = first.trim().strip_prefix("Usage:").unwrap_or(first).trim();
    rest.split_whitespace()
        .take_while(|w| !w.starts_with(['[', '<', '-']) && *w != "|")
        .collect::<Vec<_>>()
        .join(" ")
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
