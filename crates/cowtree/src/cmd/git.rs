//! `cowtree git worktree add`: a new git linked worktree whose clean tracked files (and,
//! on request, ignored files) are reflinked from a source worktree.

use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::Instant;

use cowtree_git::{
    AddOptions, AddReport, BranchChoice, HeadReport, Ignored, Method, MethodChoice, PerFileReason,
    Track,
};
use serde::Serialize;

use crate::exit::{CliError, CmdResult, Exit, Kind};

use crate::cmd::git_error::GIT_DIES;
use crate::cmd::git_error::git_error;

/// Git commands made copy-on-write.
#[derive(Debug, clap::Args)]
// A repeated option takes its last value, as git's option parser does (`-b x -b y` makes y).
#[command(
    args_override_self = true,
    after_help = "Examples:
  cowtree git worktree add ../task-42 -b task-42        # a new branch at HEAD, reflinked
  cowtree git worktree add --ignored ../wt main         # with node_modules/, target/, .env
  cowtree git worktree add --with-changes --detach ../try   # carry uncommitted edits"
)]
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
    Add(Box<AddArgs>),
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
    Pool(crate::cmd::pool::Args),
}

impl Args {
    /// Whether the command only reads (`pool status`): a closed output pipe may end it.
    pub fn changes_nothing(&self) -> bool {
        let GitCommand::Worktree(w) = &self.command;
        matches!(&w.command, WorktreeCommand::Pool(p) if p.changes_nothing())
    }
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
    if sub == "remove"
        && let Ok(here) = std::env::current_dir()
        && let Some(r) = remove_subvolume(&here, args)
    {
        return match r {
            Ok(()) => {
                if json {
                    println!("{}", passthrough_json(sub, b"", None));
                }
                0
            }
            Err(e) => {
                eprintln!("cowtree: {e}");
                if json {
                    println!("{}", e.to_json());
                }
                e.exit_code()
            }
        };
    }
    let mut cmd = Command::new("git");
    cmd.arg("worktree").arg(sub);
    // `list --json`: git's own machine-readable listing, read into the object.
    let listing = json && sub == "list";
    if listing {
        cmd.args(["--porcelain", "-z"])
            .args(args.iter().filter(|a| {
                !matches!(a.to_str(), Some("--porcelain" | "-z" | "-v" | "--verbose"))
            }));
    } else {
        cmd.args(args);
    }
    if !json {
        // Replaces this process: signals, exit status and terminal handling are git's own
        // (on Windows: runs git and exits with its status).
        let e = crate::os::exec(&mut cmd);
        return report_spawn_failure(sub, &e, json);
    }
    let out = match cmd.stderr(Stdio::piped()).output() {
        Ok(o) => o,
        Err(e) => return report_spawn_failure(sub, &e, json),
    };
    let _ = std::io::stderr().write_all(&out.stderr);
    let code = crate::os::status_code(out.status);
    if code != 0 {
        let text = String::from_utf8_lossy(&out.stderr);
        let message = git_message(&text)
            .unwrap_or_else(|| format!("`git worktree {sub}` exited with status {code}"));
        println!(
            "{}",
            crate::exit::error_json(Kind::Refused, &message, None, code as u8)
        );
    } else {
        let worktrees = listing.then(|| porcelain_worktrees(&out.stdout));
        println!("{}", passthrough_json(sub, &out.stdout, worktrees));
    }
    code as u8
}

/// The JSON object of a `git worktree SUB` that git ran and that succeeded: the command, its
/// exit status, what git printed on stdout, and for `list` the worktrees
/// ([`porcelain_worktrees`]).
fn passthrough_json(sub: &str, stdout: &[u8], worktrees: Option<serde_json::Value>) -> String {
    let mut v = serde_json::json!({
        "command": format!("git worktree {sub}"),
        "exit": 0,
    });
    match worktrees {
        Some(w) => v["worktrees"] = w,
        None => v["output"] = String::from_utf8_lossy(stdout).into(),
    }
    v.to_string()
}

/// `git worktree list --porcelain -z` as JSON: one object per worktree with `path`, `head`,
/// `branch` (or null), `bare`, `detached`, `locked` and `prunable` (null, or the reason, ""
/// when git gave none). Records are NUL-terminated lines, each worktree's ended by an empty
/// one.
fn porcelain_worktrees(out: &[u8]) -> serde_json::Value {
    let mut list = Vec::new();
    let mut cur: Option<serde_json::Value> = None;
    for line in out.split(|&b| b == 0) {
        let line = String::from_utf8_lossy(line);
        if line.is_empty() {
            list.extend(cur.take());
            continue;
        }
        let (key, rest) = match line.split_once(' ') {
            Some((k, r)) => (k, Some(r)),
            None => (line.as_ref(), None),
        };
        if key == "worktree" {
            list.extend(cur.take());
            cur = Some(serde_json::json!({
                "path": rest.unwrap_or_default(),
                "head": null,
                "branch": null,
                "bare": false,
                "detached": false,
                "locked": null,
                "prunable": null,
            }));
            continue;
        }
        let Some(w) = cur.as_mut() else { continue };
        match key {
            "HEAD" => w["head"] = rest.unwrap_or_default().into(),
            "branch" => w["branch"] = rest.unwrap_or_default().into(),
            "bare" | "detached" => w[key] = true.into(),
            "locked" | "prunable" => w[key] = rest.unwrap_or_default().into(),
            _ => {}
        }
    }
    list.extend(cur);
    list.into()
}

/// No subvolumes on Windows: git removes every worktree.
#[cfg(windows)]
fn remove_subvolume(_here: &Path, _args: &[OsString]) -> Option<Result<(), CliError>> {
    None
}

/// `git worktree remove ARGS...` run in `here`, as [`run_git_worktree`] runs it (a worktree
/// that is a btrfs subvolume is deleted in O(1) where permitted); its exit status.
pub fn remove_worktree(here: &Path, args: &[OsString]) -> Result<u8, CliError> {
    if let Some(r) = remove_subvolume(here, args) {
        return r.map(|()| 0);
    }
    let status = Command::new("git")
        .current_dir(here)
        .args(["worktree", "remove"])
        .args(args)
        .stdout(crate::os::stderr_for_child()?)
        .status()
        .map_err(|e| CliError::new(format!("cannot run `git worktree remove`: {e}")))?;
    Ok(crate::os::status_code(status) as u8)
}

/// `git worktree remove [-f]... WORKTREE` of a worktree whose directory is the root of a btrfs
/// subvolume, when git would remove it: the subvolume is deleted by the filesystem layer (one
/// ioctl where permitted, else its tree removed) and git's registration removed as git removes
/// it. `None` (git does it all) for any other case, and for every case git refuses (locked
/// without `-f -f`, changes or untracked files without `-f`, a submodule, the main worktree, an
/// inconsistent registration): git's own command then says why, as it would.
#[cfg(unix)]
fn remove_subvolume(here: &Path, args: &[OsString]) -> Option<Result<(), CliError>> {
    let mut force = 0;
    let mut target = None;
    let mut options_done = false;
    for a in args {
        let s = a.to_str()?;
        match s {
            "--" if !options_done => options_done = true,
            "-f" | "--force" if !options_done => force += 1,
            // `-ff` counts twice; any other option is git's to read.
            f if !options_done && f.len() > 2 && f[1..].bytes().all(|b| b == b'f') => {
                force += f.len() - 1
            }
            f if !options_done && f.len() > 1 && f.starts_with('-') => return None,
            p if target.is_none() => target = Some(PathBuf::from(p)),
            _ => return None,
        }
    }
    let path = here.join(target?).canonicalize().ok()?;
    let (parent, name) = (path.parent()?.to_path_buf(), path.file_name()?.to_owned());
    let parent_dir = cowtree_fs::dir::Dir::open(&parent).ok()?;
    let dir = parent_dir.open_dir(&name).ok()?;
    if !cowtree_fs::subvolume::is_root(cowtree_fs::subvolume::At::new(&dir, &path)).ok()? {
        return None;
    }
    // The registration this worktree's `.git` names, and that names it back.
    let dotgit = std::fs::read_to_string(path.join(".git")).ok()?;
    let admin = PathBuf::from(dotgit.strip_prefix("gitdir: ")?.trim_end_matches('\n'));
    let back = std::fs::read_to_string(admin.join("gitdir")).ok()?;
    if Path::new(back.trim_end_matches('\n')) != path.join(".git")
        || admin.join("locked").exists() && force < 2
    {
        return None;
    }
    let listed = cowtree_git::branch::git(here)
        .args(["worktree", "list", "--porcelain"])
        .output()
        .ok()?;
    let listed = String::from_utf8_lossy(&listed.stdout);
    let first = listed.lines().next()?.strip_prefix("worktree ")?;
    if Path::new(first) == path
        || !listed
            .lines()
            .any(|l| l.strip_prefix("worktree ").map(Path::new) == Some(&path))
    {
        return None;
    }
    if force == 0 {
        let gitlinks = cowtree_git::branch::git(&path)
            .args(["ls-files", "--stage"])
            .output()
            .ok()?;
        if !gitlinks.status.success()
            || String::from_utf8_lossy(&gitlinks.stdout)
                .lines()
                .any(|l| l.starts_with("160000 "))
        {
            return None;
        }
        let status = cowtree_git::branch::git(&path)
            .args(["status", "--porcelain", "--ignore-submodules=none"])
            .output()
            .ok()?;
        if !status.status.success() || !status.stdout.is_empty() {
            return None;
        }
    }
    drop(dir);
    let parent_at = cowtree_fs::subvolume::At::new(&parent_dir, &parent);
    Some(match cowtree_fs::subvolume::delete(parent_at, &name) {
        Ok(_) => std::fs::remove_dir_all(&admin)
            .map_err(|e| {
                CliError::new(format!("remove {}: {e}", admin.display()))
                    .kind(Kind::Io)
                    .path(&admin)
            })
            .map(|()| {
                // As git: the `worktrees` directory goes when it is empty.
                if let Some(w) = admin.parent() {
                    let _ = std::fs::remove_dir(w);
                }
            }),
        Err(e) => Err(CliError::new(e.to_string()).kind(Kind::Io).path(&path)),
    })
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

/// Add a git linked worktree at DST, as `git worktree add` does (the same options, the same
/// refusals), with files reflinked from SRC.
///
/// DST becomes a linked worktree of SRC's repository exactly as `git worktree add` makes one
/// (`git worktree list/remove/prune`, `git status` and `git fsck` treat it as their own), with
/// the same bytes in every tracked file. A tracked file is reflinked from SRC when SRC's copy
/// is shown to hold what git's checkout writes: SRC's index records COMMIT-ISH's blob with
/// stat data that proves the file unchanged, the file has the blob's size, and no configured
/// filter could have kept the size while changing the bytes; or, short of that, the copy is
/// hashed and kept only when it is the blob. Files git converts on checkout (eol, ident,
/// working-tree-encoding, filter drivers) are written from the object database through git's
/// own conversion rules. DST's index records DST's files, so the first `git status` there
/// reads none (but those written in the index's own second, as after git's checkout).
///
/// HEAD follows `git worktree add`: -b creates a branch, -B creates or resets one, --detach
/// detaches, --orphan makes an unborn branch; otherwise a COMMIT-ISH naming a local branch
/// checks it out (one that exists only on one remote is created from it, tracking it),
/// another COMMIT-ISH detaches, and no COMMIT-ISH checks out (or creates from SRC's HEAD) the
/// branch named after DST. DST's missing parent directories are created. Ignored files that
/// SRC's .worktreeinclude names (gitignore syntax) are cloned into DST.
///
/// Where SRC's worktree is the root of a btrfs subvolume (see `cowtree subvolume convert`),
/// DST starts as one writable snapshot of it, made into exactly what the per-file way makes
/// (SRC's .git, untracked and unselected ignored files removed, files SRC's index cannot
/// prove clean rewritten), when that removes no more entries than the per-file way would
/// create (docs/git.md, "By snapshot"). The summary and --json say which ran ("method":
/// "subvolume" or "per-file") and why not by snapshot ("reason"). --per-file and
/// --subvolume override the choice.
///
/// DST is built in a hidden staging directory beside it and appears whole or not at all.
/// Ctrl-C (or SIGTERM, SIGHUP) removes everything the run made, the branch it created
/// included; what a run killed outright left is removed by the next add in the repository
/// and by `cowtree gc`. Where reflinks are impossible (ext4, another filesystem) files are
/// copied and that is said once. Submodules are left as empty directories, as git leaves them.
///
/// Exit status: 0 done, 1 error (nothing is left), 2 bad usage, 3 --strict refused a copy.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  cowtree git worktree add ../task-42 -b task-42        # a new branch at HEAD, reflinked
  cowtree git worktree add -B review ../review origin/main   # create or reset 'review'
  cowtree git worktree add --ignored ../wt main         # with node_modules/, target/, .env
  cowtree git worktree add --sparse src/app,docs ../app -b app   # a sparse worktree, in one step
  cowtree git worktree add --with-changes --detach ../try   # carry uncommitted edits")]
struct AddArgs {
    /// The worktree to take files from, whatever the others hold (default: the worktree
    /// containing the current directory when its index holds the target tree, else the
    /// repository's worktree whose index holds most of it; in a bare repository, its
    /// worktrees').
    #[arg(long, value_name = "SRC")]
    from: Option<PathBuf>,
    /// Create the branch NEW_BRANCH at COMMIT-ISH and check it out (an existing branch is
    /// refused).
    #[arg(short = 'b', value_name = "NEW_BRANCH")]
    branch: Option<String>,
    /// Create NEW_BRANCH at COMMIT-ISH, or reset it there if it exists, and check it out.
    #[arg(short = 'B', value_name = "NEW_BRANCH")]
    reset_branch: Option<String>,
    /// Detach HEAD at COMMIT-ISH.
    #[arg(long, short = 'd')]
    detach: bool,
    /// Make a new unborn branch (NEW_BRANCH of -b, else named after DST) with an empty index
    /// and no files.
    #[arg(long)]
    orphan: bool,
    /// Check out a branch another worktree has checked out, and replace the registration of a
    /// missing worktree at DST; twice also when that registration is locked.
    #[arg(long, short = 'f', action = clap::ArgAction::Count)]
    force: u8,
    /// Keep the new worktree locked (`git worktree unlock` unlocks it).
    #[arg(long)]
    lock: bool,
    /// The reason for --lock.
    #[arg(long, value_name = "STRING", allow_hyphen_values = true)]
    reason: Option<String>,
    /// Make the start point the new branch's upstream (as `git branch --track`).
    #[arg(long, overrides_with = "no_track")]
    track: bool,
    /// Set up no upstream for the new branch.
    #[arg(long, overrides_with = "track")]
    no_track: bool,
    /// Without COMMIT-ISH, base a new branch named after DST on the remote-tracking branch
    /// of that name, if exactly one remote has one (default: worktree.guessRemote).
    #[arg(long, overrides_with = "no_guess_remote")]
    guess_remote: bool,
    /// Do not guess a remote-tracking branch.
    #[arg(long, overrides_with = "guess_remote")]
    no_guess_remote: bool,
    /// Populate the new worktree (the default).
    #[arg(long, overrides_with = "no_checkout")]
    checkout: bool,
    /// Leave the new worktree empty but for its .git file, with no index (as git).
    #[arg(long, overrides_with = "checkout")]
    no_checkout: bool,
    /// A sparse worktree of these directories (and the files at the top), in cone mode, made in
    /// one step: what `git worktree add --no-checkout`, then `git sparse-checkout set --cone
    /// DIR...` and `git checkout` in it make. Nothing outside them is written. Repeat it, or
    /// separate the directories with commas. Like `git sparse-checkout set`, it turns on
    /// extensions.worktreeConfig in the repository.
    #[arg(long, value_name = "DIR", action = clap::ArgAction::Append, value_delimiter = ',')]
    sparse: Vec<String>,
    /// Also clone SRC's ignored files and directories (node_modules/, target/, .env, ...):
    /// all of them, or with =PATTERN (repeatable) those whose name or path matches the glob;
    /// in addition to those SRC's .worktreeinclude names. Nested repositories and worktrees
    /// are never copied, nor untracked files that are not ignored.
    #[arg(long, value_name = "PATTERN", num_args = 0..=1, require_equals = true, action = clap::ArgAction::Append, default_missing_value = "")]
    ignored: Vec<String>,
    /// Clone no ignored file at all, not even those .worktreeinclude names.
    #[arg(long, conflicts_with = "ignored")]
    no_ignored: bool,
    /// Carry SRC's uncommitted changes to tracked files, staged and unstaged (DST's index is
    /// SRC's: `git status` and `git diff [--cached]` show in DST what they show in SRC). Only
    /// onto SRC's HEAD commit; refused while SRC's index has conflicts.
    #[arg(long)]
    with_changes: bool,
    /// Fail (exit 3) instead of copying a file that cannot be reflinked.
    #[arg(long)]
    strict: bool,
    /// Hash every file taken from SRC (its reflinked copy, as a git blob) instead of trusting
    /// SRC's stat data: catches the one change stat data and sizes cannot show (a filter in
    /// SRC's past that kept the size and is configured no more; docs/git.md).
    #[arg(long)]
    verify: bool,
    /// Make the tree file by file even where a snapshot of SRC could start it.
    #[arg(long, conflicts_with = "subvolume")]
    per_file: bool,
    /// Start from a snapshot of SRC wherever its filesystem allows, even where the cost rule
    /// would make it file by file.
    #[arg(long)]
    subvolume: bool,
    /// Make the worktree, its index and git's registration of it durable before returning
    /// (they survive a power loss), as `clone --sync`.
    #[arg(long)]
    sync: bool,
    /// Print one JSON object (see docs/git.md).
    #[arg(long)]
    json: bool,
    /// Print nothing but errors.
    #[arg(long, short = 'q')]
    quiet: bool,
    /// The new worktree (must not exist, or be an empty directory).
    dst: PathBuf,
    /// The commit to check out (default: SRC's HEAD; `-` is the previous branch).
    commit: Option<String>,
    /// More than git takes: git's usage, and its status 129.
    #[arg(hide = true, num_args = 0.., allow_hyphen_values = true)]
    extra: Vec<String>,
}

/// The success object of `git worktree add --json` (docs/git.md).
#[derive(Debug, Serialize)]
struct JsonReport {
    path: String,
    admin_dir: String,
    source: Option<String>,
    branch: Option<String>,
    branch_created: bool,
    detached: bool,
    unborn: bool,
    commit: Option<String>,
    method: &'static str,
    reason: Option<&'static str>,
    reason_description: Option<String>,
    locked: Option<String>,
    counts: JsonCounts,
    bytes: JsonBytes,
    submodules: Vec<String>,
    nested_repos_skipped: Vec<String>,
    fallback: Option<String>,
    notes: Vec<String>,
    cleaned: Vec<String>,
    /// `cowtree`, or `git` when `git worktree add` made it (docs/git.md, "Made by git").
    made_by: &'static str,
    /// Why git made it.
    made_by_reason: Option<String>,
    /// Why no spare of the repository's pool was claimed, when it has one.
    pool: Option<String>,
    seconds: f64,
}

#[derive(Debug, Serialize)]
struct JsonCounts {
    entries: u64,
    skipped: u64,
    cloned: u64,
    copied: u64,
    from_objects: u64,
    reused_on_stat: u64,
    reused_after_hash: u64,
    hash_mismatches: u64,
    carried: u64,
    kept: u64,
    removed: u64,
    index_stat_entries: u64,
    ignored_files: u64,
    ignored_symlinks: u64,
    ignored_dirs: u64,
}

#[derive(Debug, Serialize)]
struct JsonBytes {
    cloned: u64,
    written: u64,
    ignored: Option<u64>,
}

pub fn run(args: Args) -> CmdResult {
    match args.command {
        GitCommand::Worktree(w) => match w.command {
            WorktreeCommand::Add(a) => add(*a),
            // Reached only through clap (with an option before `git` that `passthrough` does
            // not skip): run git all the same.
            WorktreeCommand::List(g) => Ok(Exit::Code(git_worktree("list", &g.args, false))),
            WorktreeCommand::Remove(g) => Ok(Exit::Code(git_worktree("remove", &g.args, false))),
            WorktreeCommand::Prune(g) => Ok(Exit::Code(git_worktree("prune", &g.args, false))),
            WorktreeCommand::Lock(g) => Ok(Exit::Code(git_worktree("lock", &g.args, false))),
            WorktreeCommand::Unlock(g) => Ok(Exit::Code(git_worktree("unlock", &g.args, false))),
            WorktreeCommand::Move(g) => Ok(Exit::Code(git_worktree("move", &g.args, false))),
            WorktreeCommand::Repair(g) => Ok(Exit::Code(git_worktree("repair", &g.args, false))),
            WorktreeCommand::Pool(p) => crate::cmd::pool::run(p),
        },
    }
}

/// Where runs of `add` leave a record while they work, for `cowtree gc`:
/// `$XDG_STATE_HOME/cowtree/git-worktree-add` (else `~/.local/state/cowtree/...`).
pub fn run_registry() -> Option<PathBuf> {
    cowtree_store::discover::known_stores_file()
        .and_then(|f| f.parent().map(|p| p.join("git-worktree-add")))
}

/// git's own refusals of options that do not go together, in its order and words, with its
/// exit status (`die`: 128), before anything else is looked at.
fn refuse_as_git(args: &AddArgs) -> Result<(), CliError> {
    if !args.extra.is_empty() {
        // git prints its usage and exits 129: its own usage, as it prints it.
        let usage = Command::new("git")
            .args(["worktree", "add", "-h"])
            .stdin(Stdio::null())
            .output()
            .map(|o| o.stdout)
            .unwrap_or_default();
        let _ = std::io::stderr().write_all(&usage);
        return Err(CliError::with_code(
            format!(
                "git worktree add takes DST and one COMMIT-ISH; {:?} is one too many",
                args.extra[0]
            ),
            129,
        )
        .kind(Kind::Refused));
    }
    let refuse = |msg: String| Err(CliError::with_code(msg, GIT_DIES).kind(Kind::Refused));
    let heads = [
        args.detach,
        args.branch.is_some(),
        args.reset_branch.is_some(),
    ];
    if heads.iter().filter(|h| **h).count() > 1 {
        return refuse("options '-b', '-B', and '--detach' cannot be used together".into());
    }
    if args.detach && args.orphan {
        return refuse("options '--orphan' and '--detach' cannot be used together".into());
    }
    if args.reason.is_some() && !args.lock {
        return refuse("the option '--reason' requires '--lock'".into());
    }
    Ok(())
}

fn add(args: AddArgs) -> CmdResult {
    refuse_as_git(&args)?;
    let start = Instant::now();
    let src_fixed = args.from.is_some();
    let src = match args.from {
        Some(p) => p,
        None => std::env::current_dir()?,
    };
    let branch = match (args.branch, args.reset_branch, args.detach, args.orphan) {
        (name, reset, _, true) => BranchChoice::Orphan(name.or(reset)),
        (Some(b), _, _, _) => BranchChoice::New(b),
        (None, Some(b), _, _) => BranchChoice::Reset(b),
        (None, None, true, _) => BranchChoice::Detach,
        (None, None, false, _) => BranchChoice::Auto,
    };
    let ignored = if args.no_ignored {
        Ignored::none()
    } else {
        Ignored {
            worktreeinclude: true,
            all: args.ignored.iter().any(String::is_empty),
            patterns: args.ignored.into_iter().filter(|p| !p.is_empty()).collect(),
        }
    };
    let track = match (args.track, args.no_track) {
        (_, true) => Track::NoTrack,
        (true, false) => Track::Track,
        (false, false) => Track::Default,
    };
    let lock = args
        .lock
        .then(|| args.reason.unwrap_or_else(|| "added with --lock".into()));
    let opts = AddOptions {
        commit: args.commit,
        branch,
        force: args.force,
        lock,
        track,
        guess_remote: if args.guess_remote {
            Some(true)
        } else if args.no_guess_remote {
            Some(false)
        } else {
            None
        },
        checkout: !args.no_checkout,
        quiet: args.quiet,
        sparse: (!args.sparse.is_empty()).then_some(args.sparse),
        ignored,
        with_changes: args.with_changes,
        strict: args.strict,
        verify: args.verify,
        src_fixed,
        method: if args.per_file {
            MethodChoice::PerFile
        } else if args.subvolume {
            MethodChoice::Subvolume
        } else {
            MethodChoice::Auto
        },
        sync: args.sync,
        run_hooks: true,
        run_registry: run_registry(),
        ..AddOptions::new(src, args.dst)
    };
    let report = cowtree_git::add(&opts).map_err(git_error)?;
    let seconds = start.elapsed().as_secs_f64();
    crate::cmd::pool::refill_after(&report, &opts.src);
    if !args.quiet {
        for n in &report.notes {
            eprintln!("cowtree: {n}");
        }
        print_warnings(&report);
    }
    // A failed post-checkout hook: the worktree is made, and the command exits with the
    // hook's status, as git does; with --json the one object printed is that error.
    if let Some(code) = report.hook {
        if !args.json && !args.quiet {
            print_summary(&report, seconds);
        }
        return Err(CliError::with_code(
            format!(
                "the post-checkout hook failed (exit {code}); the worktree {} is in place",
                report.dst.display()
            ),
            u8::try_from(code).ok().filter(|c| *c != 0).unwrap_or(1),
        )
        .kind(Kind::Hook)
        .path(&report.dst));
    }
    if args.json {
        crate::cmd::print_json(&json(&report, seconds))?;
    } else if !args.quiet {
        print_summary(&report, seconds);
    }
    Ok(Exit::Ok)
}

fn json(r: &AddReport, seconds: f64) -> JsonReport {
    let (branch, branch_created, unborn) = match &r.head {
        HeadReport::Branch { name, created } => (Some(name.clone()), *created, false),
        HeadReport::Unborn { name } => (Some(name.clone()), false, true),
        HeadReport::Detached => (None, false, false),
    };
    let ig = r.ignored.clone().unwrap_or_default();
    JsonReport {
        path: r.dst.display().to_string(),
        admin_dir: r.admin_dir.display().to_string(),
        source: r.src.as_ref().map(|p| p.display().to_string()),
        commit: r.commit.map(|c| c.to_string()),
        detached: branch.is_none(),
        branch,
        branch_created,
        unborn,
        method: r.method.as_str(),
        reason: r.reason.as_ref().map(PerFileReason::code),
        reason_description: r.reason.as_ref().map(ToString::to_string),
        locked: r.locked.clone(),
        counts: JsonCounts {
            entries: r.counts.entries,
            skipped: r.counts.skipped,
            cloned: r.counts.cloned,
            copied: r.counts.copied,
            from_objects: r.counts.from_objects,
            reused_on_stat: r.counts.reused_on_stat,
            reused_after_hash: r.counts.reused_after_hash,
            hash_mismatches: r.counts.hash_mismatches,
            carried: r.counts.carried,
            kept: r.counts.kept,
            removed: r.counts.removed,
            index_stat_entries: r.index_stat_entries,
            ignored_files: ig.cloned + ig.copied,
            ignored_symlinks: ig.symlinks,
            ignored_dirs: ig.dirs,
        },
        bytes: JsonBytes {
            cloned: r.counts.bytes_cloned,
            written: r.counts.bytes_written,
            // A snapshot keeps ignored files without reading their size.
            ignored: (r.method != Method::Subvolume).then_some(ig.bytes),
        },
        submodules: r.submodules.clone(),
        nested_repos_skipped: ig.nested_repos,
        fallback: r.fallback.as_ref().map(|(c, _)| c.as_str().to_owned()),
        notes: r.notes.clone(),
        cleaned: r.cleaned.clone(),
        made_by: if r.made_by_git.is_some() {
            "git"
        } else {
            "cowtree"
        },
        made_by_reason: r.made_by_git.clone(),
        pool: r.pool.clone(),
        seconds: (seconds * 1000.0).round() / 1000.0,
    }
}

/// One line per cause: a copy instead of a reflink, a submodule, a nested repository, a
/// snapshot the kernel refused.
fn print_warnings(r: &AddReport) {
    if let Some(reason @ PerFileReason::Seam(seam)) = &r.reason
        && seam.warns()
    {
        eprintln!("cowtree: warning: {reason}: made the worktree per file instead");
    }
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

fn print_summary(r: &AddReport, seconds: f64) {
    let at = r
        .commit
        .map(|c| c.to_string()[..12].to_owned())
        .unwrap_or_default();
    let head = match &r.head {
        HeadReport::Branch {
            name,
            created: true,
        } => format!("new branch '{name}' at {at}"),
        HeadReport::Branch { name, .. } => format!("branch '{name}' at {at}"),
        HeadReport::Unborn { name } => format!("new unborn branch '{name}'"),
        HeadReport::Detached => format!("detached HEAD {at}"),
    };
    let lock = match &r.locked {
        Some(reason) => format!(", locked ({reason})"),
        None => String::new(),
    };
    if let Some(why) = &r.made_by_git {
        println!(
            "worktree {} ({head}{lock}): made by `git worktree add` ({why}), in {:.3} s",
            r.dst.display(),
            seconds
        );
        return;
    }
    if r.method == cowtree_git::Method::None {
        println!(
            "worktree {} ({head}{lock}): nothing checked out, in {:.3} s",
            r.dst.display(),
            seconds
        );
        return;
    }
    let how = how(r);
    let why = match &r.reason {
        Some(reason) if reason.worth_telling() => format!(" (per file: {reason})"),
        _ => String::new(),
    };
    let from = match &r.src {
        Some(src) if !r.src_is_current && r.method == Method::PerFile => {
            format!(" (files from the worktree {})", src.display())
        }
        _ => String::new(),
    };
    let hashed = if r.counts.reused_after_hash + r.counts.hash_mismatches > 0 {
        format!(
            ", {} shown by hash{}",
            r.counts.reused_after_hash,
            if r.counts.hash_mismatches > 0 {
                format!(" ({} differed)", r.counts.hash_mismatches)
            } else {
                String::new()
            }
        )
    } else {
        String::new()
    };
    println!(
        "worktree {} ({head}{lock}): {how}{hashed}{}, in {:.3} s{from}{why}",
        r.dst.display(),
        if r.counts.carried > 0 {
            format!(", {} carried with changes", r.counts.carried)
        } else {
            String::new()
        },
        seconds
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

/// How DST's tree was made, in a few words: the way, and its counts.
pub(crate) fn how(r: &cowtree_git::AddReport) -> String {
    let c = &r.counts;
    match r.method {
        Method::Subvolume => format!(
            "a snapshot of {}: {} entries, {} kept, {} from objects, {} removed",
            r.src.as_deref().unwrap_or(Path::new("?")).display(),
            c.entries,
            c.kept,
            c.from_objects,
            c.removed
        ),
        // Moved from another commit: what the move kept, removed and wrote.
        Method::Spare if c.removed + c.cloned + c.copied + c.from_objects > 0 => format!(
            "a spare of the pool, proven untouched and moved to the commit: {} entries, {} \
             kept, {} removed, {} cloned, {} copied, {} from objects",
            c.entries, c.kept, c.removed, c.cloned, c.copied, c.from_objects
        ),
        Method::Spare => format!(
            "a spare of the pool, proven untouched: {} entries",
            c.entries
        ),
        _ => format!(
            "{} entries, {} cloned, {} copied, {} from objects",
            c.entries, c.cloned, c.copied, c.from_objects
        ),
    }
}
