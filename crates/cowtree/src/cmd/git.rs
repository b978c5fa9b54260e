//! `cowtree git worktree add`: a new git linked worktree whose clean tracked files (and,
//! on request, ignored files) are reflinked from a source worktree.

use std::ffi::OsString;
use std::io::Write;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{Command, ExitCode, Stdio};
use std::time::Instant;

use cowtree_git::{AddOptions, AddReport, BranchChoice, HeadReport};
use serde::Serialize;

use crate::exit::{CliError, CmdResult, Exit, Kind};

/// Exit code when `--strict` refused a fallback.
const EXIT_STRICT: u8 = 3;

/// Git commands made copy-on-write.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  cowtree git worktree add ../task-42 -b task-42        # a new branch at HEAD, reflinked
  cowtree git worktree add --ignored ../wt main         # with node_modules/, target/, .env
  cowtree git worktree add --with-changes --detach ../try   # carry uncommitted edits")]
pub struct Args {
    #[command(subcommand)]
    command: GitCommand,
}

#[derive(Debug, clap::Subcommand)]
enum GitCommand {
    /// Git worktrees.
    Worktree(WorktreeArgs),
}

#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  cowtree git worktree add ../task-42 -b task-42        # a new branch at HEAD, reflinked
  cowtree git worktree add --ignored ../wt main         # with node_modules/, target/, .env
  cowtree git worktree add --with-changes --detach ../try   # carry uncommitted edits")]
struct WorktreeArgs {
    #[command(subcommand)]
    command: WorktreeCommand,
}

#[derive(Debug, clap::Subcommand)]
enum WorktreeCommand {
    Add(AddArgs),
    /// Runs `git worktree list ARGS...`.
    List(GitArgs),
    /// Runs `git worktree remove ARGS...`.
    Remove(GitArgs),
    /// Runs `git worktree prune ARGS...`.
    Prune(GitArgs),
    /// Runs `git worktree lock ARGS...`.
    Lock(GitArgs),
    /// Runs `git worktree unlock ARGS...`.
    Unlock(GitArgs),
    /// Runs `git worktree move ARGS...`.
    Move(GitArgs),
    /// Runs `git worktree repair ARGS...`.
    Repair(GitArgs),
}

/// The arguments of a `git worktree` subcommand git runs itself, passed as they are.
#[derive(Debug, clap::Args)]
#[command(disable_help_flag = true)]
struct GitArgs {
    /// Passed to git as they are.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, num_args = 0..)]
    args: Vec<OsString>,
}

/// The `git worktree` subcommands git runs itself.
const PASSTHROUGH: [&str; 7] = [
    "list", "remove", "prune", "lock", "unlock", "move", "repair",
];

/// When `args` (the command line after the program name) is `[--json] [-q] git worktree SUB
/// ARGS...` with SUB one that git runs itself: whether `--json` was given, SUB, and ARGS.
pub fn passthrough(args: &[OsString]) -> Option<(bool, &str, &[OsString])> {
    let mut json = false;
    let mut i = 0;
    while let Some(a) = args.get(i) {
        match a.to_str() {
            Some("--json") => json = true,
            Some("-q" | "--quiet") => {}
            Some("-j" | "--jobs") => i += 1,
            Some(j) if j.starts_with("--jobs=") || (j.starts_with("-j") && j.len() > 2) => {}
            _ => break,
        }
        i += 1;
    }
    match args.get(i..i + 3)? {
        [g, w, sub] if g == "git" && w == "worktree" => {
            let sub = PASSTHROUGH.iter().find(|s| **s == sub.as_os_str())?;
            Some((json, sub, &args[i + 3..]))
        }
        _ => None,
    }
}

/// Runs `git worktree SUB ARGS...` as git would run it: its output, its exit status. With
/// `json`, git's error output still goes to stderr and a failure is also reported as the JSON
/// error object on stdout.
pub fn run_git_worktree(sub: &str, args: &[OsString], json: bool) -> ExitCode {
    ExitCode::from(git_worktree(sub, args, json))
}

/// [`run_git_worktree`], returning the exit status.
fn git_worktree(sub: &str, args: &[OsString], json: bool) -> u8 {
    let mut cmd = Command::new("git");
    cmd.arg("worktree").arg(sub).args(args);
    if !json {
        use std::os::unix::process::CommandExt;
        // Replaces this process: signals, exit status and terminal handling are git's own.
        let e = cmd.exec();
        return report_spawn_failure(sub, &e, json);
    }
    let out = match cmd.stderr(Stdio::piped()).output() {
        Ok(o) => o,
        Err(e) => return report_spawn_failure(sub, &e, json),
    };
    let _ = std::io::stderr().write_all(&out.stderr);
    let code = out
        .status
        .code()
        .unwrap_or_else(|| 128 + out.status.signal().unwrap_or(0));
    if code != 0 {
        let text = String::from_utf8_lossy(&out.stderr);
        let message = git_message(&text)
            .unwrap_or_else(|| format!("`git worktree {sub}` exited with status {code}"));
        println!(
            "{}",
            crate::exit::error_json(Kind::Refused, &message, None, code as u8)
        );
    }
    code as u8
}

/// git's `fatal:` or `error:` line (its reason, without the prefix), else its last line.
pub fn git_message(stderr: &str) -> Option<String> {
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    let pick = lines
        .iter()
        .find_map(|l| {
            l.strip_prefix("fatal: ")
                .or_else(|| l.strip_prefix("error: "))
        })
        .or_else(|| lines.last().copied())?;
    Some(pick.trim().to_owned())
}

fn report_spawn_failure(sub: &str, e: &std::io::Error, json: bool) -> u8 {
    let err = CliError::new(format!("cannot run `git worktree {sub}`: {e}"));
    eprintln!("cowtree: {err}");
    if json {
        println!("{}", err.to_json());
    }
    err.exit_code()
}

/// Add a git linked worktree at DST, like `git worktree add`, with files reflinked from SRC.
///
/// DST becomes a linked worktree of SRC's repository exactly as `git worktree add` makes one
/// (`git worktree list/remove/prune`, `git status` and `git fsck` treat it as their own). Each
/// tracked file whose copy in SRC is proven by SRC's index (stat data unchanged, not racy) to
/// hold COMMIT-ISH's blob is reflinked from SRC; the others are written from the object
/// database. DST's index records DST's files, so the first `git status` there reads none.
///
/// Without -b or --detach, HEAD follows `git worktree add`: a COMMIT-ISH naming a local branch
/// checks it out, another COMMIT-ISH detaches, and no COMMIT-ISH checks out (or creates from
/// SRC's HEAD) the branch named after DST.
///
/// DST is built in a hidden staging directory beside it and appears whole or not at all.
/// Where reflinks are impossible (ext4, another filesystem) files are copied and that is said
/// once. Submodules are left as empty directories, as git leaves them.
///
/// Exit status: 0 done, 1 error (nothing is left at DST), 2 bad usage, 3 --strict refused a
/// copy.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  cowtree git worktree add ../task-42 -b task-42        # a new branch at HEAD, reflinked
  cowtree git worktree add --ignored ../wt main         # with node_modules/, target/, .env
  cowtree git worktree add --with-changes --detach ../try   # carry uncommitted edits")]
struct AddArgs {
    /// The source worktree (default: the worktree containing the current directory).
    #[arg(long, value_name = "SRC")]
    from: Option<PathBuf>,
    /// Create the branch NEW_BRANCH at COMMIT-ISH and check it out (an existing branch is
    /// refused).
    #[arg(short = 'b', value_name = "NEW_BRANCH", conflicts_with = "detach")]
    branch: Option<String>,
    /// Detach HEAD at COMMIT-ISH.
    #[arg(long)]
    detach: bool,
    /// Also clone SRC's ignored files and directories (node_modules/, target/, .env, ...):
    /// all of them, or with =PATTERN (repeatable) those whose name or path matches the glob.
    /// Nested repositories and worktrees are never copied, nor untracked files that are not
    /// ignored.
    #[arg(long, value_name = "PATTERN", num_args = 0..=1, require_equals = true, action = clap::ArgAction::Append, default_missing_value = "")]
    ignored: Vec<String>,
    /// Carry SRC's uncommitted changes to tracked files, staged and unstaged (DST's index is
    /// SRC's: `git status` and `git diff [--cached]` show in DST what they show in SRC). Only
    /// onto SRC's HEAD commit; refused while SRC's index has conflicts.
    #[arg(long)]
    with_changes: bool,
    /// Fail (exit 3) instead of copying a file that cannot be reflinked.
    #[arg(long)]
    strict: bool,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
    /// Print nothing but errors.
    #[arg(long, short = 'q')]
    quiet: bool,
    /// The new worktree (must not exist).
    dst: PathBuf,
    /// The commit to check out (default: SRC's HEAD).
    commit: Option<String>,
}

#[derive(Debug, Serialize)]
struct JsonReport {
    worktree: String,
    admin_dir: String,
    commit: String,
    branch: Option<String>,
    branch_created: bool,
    detached: bool,
    entries: u64,
    cloned: u64,
    copied: u64,
    from_objects: u64,
    carried: u64,
    bytes_cloned: u64,
    bytes_written: u64,
    index_stat_entries: u64,
    submodules: Vec<String>,
    ignored_files: u64,
    ignored_symlinks: u64,
    ignored_dirs: u64,
    ignored_bytes: u64,
    nested_repos_skipped: Vec<String>,
    fallback: Option<String>,
    elapsed_ms: u64,
}

pub fn run(args: Args) -> CmdResult {
    match args.command {
        GitCommand::Worktree(w) => match w.command {
            WorktreeCommand::Add(a) => add(a),
            // Reached only through clap (with an option before `git` that `passthrough` does
            // not skip): run git all the same.
            WorktreeCommand::List(g) => Ok(Exit::Code(git_worktree("list", &g.args, false))),
            WorktreeCommand::Remove(g) => Ok(Exit::Code(git_worktree("remove", &g.args, false))),
            WorktreeCommand::Prune(g) => Ok(Exit::Code(git_worktree("prune", &g.args, false))),
            WorktreeCommand::Lock(g) => Ok(Exit::Code(git_worktree("lock", &g.args, false))),
            WorktreeCommand::Unlock(g) => Ok(Exit::Code(git_worktree("unlock", &g.args, false))),
            WorktreeCommand::Move(g) => Ok(Exit::Code(git_worktree("move", &g.args, false))),
            WorktreeCommand::Repair(g) => Ok(Exit::Code(git_worktree("repair", &g.args, false))),
        },
    }
}

fn add(args: AddArgs) -> CmdResult {
    let start = Instant::now();
    let src = match args.from {
        Some(p) => p,
        None => std::env::current_dir()?,
    };
    let branch = match (args.branch, args.detach) {
        (Some(b), _) => BranchChoice::New(b),
        (None, true) => BranchChoice::Detach,
        (None, false) => BranchChoice::Auto,
    };
    let ignored = if args.ignored.is_empty() {
        None
    } else {
        Some(args.ignored.into_iter().filter(|p| !p.is_empty()).collect())
    };
    let opts = AddOptions {
        src,
        dst: args.dst,
        commit: args.commit,
        branch,
        ignored,
        with_changes: args.with_changes,
        strict: args.strict,
    };
    let report = cowtree_git::add(&opts).map_err(|e| match e {
        cowtree_git::Error::Strict { .. } => CliError::with_code(e.to_string(), EXIT_STRICT),
        e => CliError::new(e.to_string()),
    })?;
    let elapsed_ms = start.elapsed().as_millis() as u64;
    if !args.quiet {
        print_warnings(&report);
    }
    if args.json {
        crate::cmd::print_json(&json(&report, elapsed_ms))?;
    } else if !args.quiet {
        print_summary(&report, elapsed_ms);
    }
    Ok(Exit::Ok)
}

fn json(r: &AddReport, elapsed_ms: u64) -> JsonReport {
    let (branch, branch_created) = match &r.head {
        HeadReport::Branch { name, created } => (Some(name.clone()), *created),
        HeadReport::Detached => (None, false),
    };
    let ig = r.ignored.clone().unwrap_or_default();
    JsonReport {
        worktree: r.dst.display().to_string(),
        admin_dir: r.admin_dir.display().to_string(),
        commit: r.commit.to_string(),
        detached: branch.is_none(),
        branch,
        branch_created,
        entries: r.entries,
        cloned: r.cloned,
        copied: r.copied,
        from_objects: r.from_objects,
        carried: r.carried,
        bytes_cloned: r.bytes_cloned,
        bytes_written: r.bytes_written,
        index_stat_entries: r.index_stat_entries,
        submodules: r.submodules.clone(),
        ignored_files: ig.cloned + ig.copied,
        ignored_symlinks: ig.symlinks,
        ignored_dirs: ig.dirs,
        ignored_bytes: ig.bytes,
        nested_repos_skipped: ig.nested_repos,
        fallback: r.fallback.as_ref().map(|(c, _)| c.as_str().to_owned()),
        elapsed_ms,
    }
}

/// One line per cause: a copy instead of a reflink, a submodule, a nested repository.
fn print_warnings(r: &AddReport) {
    if let Some((cause, path)) = &r.fallback {
        eprintln!(
            "cowtree: files were copied, not reflinked: {} (first: {})",
            cause.describe(),
            path.display()
        );
    }
    for s in &r.submodules {
        eprintln!("cowtree: submodule {s} is not handled: left as an empty directory");
    }
    if let Some(ig) = &r.ignored {
        for n in &ig.nested_repos {
            eprintln!("cowtree: {n}: a nested repository or worktree, not copied");
        }
    }
}

fn print_summary(r: &AddReport, elapsed_ms: u64) {
    let short = &r.commit.to_string()[..12];
    let head = match &r.head {
        HeadReport::Branch {
            name,
            created: true,
        } => format!("new branch '{name}' at {short}"),
        HeadReport::Branch { name, .. } => format!("branch '{name}' at {short}"),
        HeadReport::Detached => format!("detached HEAD {short}"),
    };
    println!(
        "worktree {} ({head}): {} entries, {} cloned, {} copied, {} from objects{}, in {} ms",
        r.dst.display(),
        r.entries,
        r.cloned,
        r.copied,
        r.from_objects,
        if r.carried > 0 {
            format!(", {} carried with changes", r.carried)
        } else {
            String::new()
        },
        elapsed_ms
    );
    if let Some(ig) = &r.ignored {
        println!(
            "ignored: {} files ({} cloned, {} copied), {} symlinks, {} directories",
            ig.cloned + ig.copied,
            ig.cloned,
            ig.copied,
            ig.symlinks,
            ig.dirs
        );
    }
}
