//! `cowtree git worktree pool`: spare worktrees made ahead of time, which `git worktree add`
//! (and the Claude Code hook) claim instead of making a tree; and the refill after a claim.

use std::path::PathBuf;
use std::time::Duration;

use crate::exit::CmdResult;

/// Keep spare worktrees of this repository, so that `cowtree git worktree add` waits for
/// almost nothing.
///
/// A spare is a complete tree of one commit with its index, made as `add` makes a tree (files
/// reflinked where the filesystem can), kept in `$GIT_COMMON_DIR/cowtree/pool/` and not
/// registered: `git worktree list` does not show it and it holds no branch. `add` claims one
/// when it checks out a commit plainly (no --orphan, --no-checkout, --with-changes,
/// --sparse, --verify, --per-file, --subvolume) on the pool's filesystem, and the
/// configuration that decides a checkout's bytes is what it was: the spare is renamed away
/// (two claims never get the same one), every file and directory in it is checked to have
/// the stat data recorded when it was made (a spare anything touched is removed, not used),
/// a spare of another commit is moved to the target as `git checkout` moves a worktree (only
/// the entries that differ are written), then it is renamed into place and registered as git
/// registers a worktree. Ignored files
/// that `.worktreeinclude` or --ignored select are cloned from the source at the claim.
/// Otherwise `add` makes the tree as it always does, and --json says why no spare was used.
///
/// After each `add` in a repository with a pool, a fill runs in the background at the
/// lowest CPU and I/O priority (one at a time per repository), at the commit that `add`
/// checked out.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  cowtree git worktree pool set 4              # keep 4 spares; the first fill starts now
  cowtree git worktree pool status             # spares: commit, age, blocks not shared
  cowtree git worktree pool fill               # make the missing spares now, with progress
  cowtree git worktree pool set 0              # no pool: every spare removed")]
pub struct Args {
    /// A path in the repository (default: the current directory).
    #[arg(long, short = 'C', value_name = "PATH", global = true)]
    repo: Option<PathBuf>,
    #[command(subcommand)]
    command: PoolCommand,
}

#[derive(Debug, clap::Subcommand)]
enum PoolCommand {
    /// Keep N spares (0: no pool, every spare removed); a fill starts in the background
    /// unless --no-fill.
    Set {
        /// Spares to keep.
        n: u32,
        /// Remove spares older than this instead of using them (90s, 30m, 36h, 7d; default
        /// 1d).
        #[arg(long, value_name = "DURATION", value_parser = crate::cmd::remote::parse_duration)]
        max_age: Option<Duration>,
        /// Do not start a fill.
        #[arg(long)]
        no_fill: bool,
    },
    /// The spares: commit, age, entries, and their blocks not shared with any other file
    /// (allocated less FIEMAP-shared, directories and symlinks included).
    Status {
        /// Print one JSON object: {size, max_age_seconds, wanted, last_fill, spares: [{id,
        /// commit, age_seconds, entries, copied, allocated, shared, not_shared}]} (bytes;
        /// not_shared: allocated less shared, null without FIEMAP).
        #[arg(long)]
        json: bool,
    },
    /// Make the missing spares now (waiting for a fill already running).
    Fill {
        /// Run as the refill after a claim: at the lowest CPU and I/O priority, silently,
        /// holding the fill lock its starter took (the open descriptor FD; on Windows, where
        /// no lock is handed down, taking it itself).
        #[arg(long, hide = true, value_name = "FD")]
        background: Option<i32>,
    },
    /// Remove every spare (the setting stays; the next `add` refills).
    Drain,
}

impl Args {
    /// Whether the command only reads (`status`).
    pub fn changes_nothing(&self) -> bool {
        matches!(self.command, PoolCommand::Status { .. })
    }
}

/// Linux and macOS: the pool. Windows: none (its claim renames a whole tree, which Windows
/// refuses while any handle is open beneath it, and proves a spare untouched by unix stat
/// data); the command says so in one line.
pub fn run(args: Args) -> CmdResult {
    #[cfg(unix)]
    return imp::run(args);
    #[cfg(windows)]
    {
        let _ = args;
        Err(crate::exit::CliError::unsupported(
            "the pool of spare worktrees is not available on Windows (a claim renames a whole \
             tree, which Windows refuses while a handle is open in it); git worktree add makes \
             each tree per file there",
        ))
    }
}

/// After an `add` in a repository with a pool: a refill in the background, from the worktree
/// that lent the files (else `src`). Nothing on Windows, which has no pool.
pub fn refill_after(report: &cowtree_git::AddReport, src: &std::path::Path) {
    #[cfg(unix)]
    imp::refill_after(report, src);
    #[cfg(windows)]
    let _ = (report, src);
}

#[cfg(unix)]
mod imp {
    use std::ffi::OsString;
    use std::path::{Path, PathBuf};
    use std::process::{Command, Stdio};

    use cowtree_git::pool::{DEFAULT_MAX_AGE, Pool};
    use serde_json::json;

    use crate::exit::{CliError, CmdResult, Exit, Kind};
    use crate::units::bytes;

    use super::{Args, PoolCommand};

    fn where_(args: &Args) -> Result<PathBuf, CliError> {
        Ok(match &args.repo {
            Some(p) => p.clone(),
            None => std::env::current_dir()?,
        })
    }

    fn git_err(e: cowtree_git::Error) -> CliError {
        crate::cmd::git_error::git_error(e)
    }

    pub(super) fn run(args: Args) -> CmdResult {
        let at = where_(&args)?;
        match args.command {
            PoolCommand::Set {
                n,
                max_age,
                no_fill,
            } => {
                let pool = Pool::discover(&at).map_err(git_err)?;
                // A damaged setting is what `set` writes anew: its max age is then the default.
                let max_age = match max_age {
                    Some(a) => a,
                    None => pool
                        .settings()
                        .ok()
                        .flatten()
                        .map_or(DEFAULT_MAX_AGE, |s| s.max_age),
                };
                let removed = pool.set(n, max_age).map_err(git_err)?;
                if n == 0 {
                    println!("no pool; {removed} spares removed");
                } else {
                    println!(
                        "pool of {n} spares (max age {} s){}",
                        max_age.as_secs(),
                        if removed > 0 {
                            format!("; {removed} spares beyond it removed")
                        } else {
                            String::new()
                        }
                    );
                    if !no_fill {
                        spawn_fill(&pool, &at);
                        println!(
                            "filling in the background; `cowtree git worktree pool status` shows it"
                        );
                    }
                }
                Ok(Exit::Ok)
            }
            PoolCommand::Status { json } => status(&at, json),
            PoolCommand::Fill { background } => fill(&at, background),

            PoolCommand::Drain => {
                let pool = Pool::discover(&at).map_err(git_err)?;
                let removed = pool.drain().map_err(git_err)?;
                println!("{removed} spares removed");
                Ok(Exit::Ok)
            }
        }
    }

    fn status(at: &Path, as_json: bool) -> CmdResult {
        let pool = Pool::discover(at).map_err(git_err)?;
        let settings = pool.settings().map_err(git_err)?;
        let spares = pool.spares().map_err(git_err)?;
        let rows: Vec<_> = spares
            .iter()
            .map(|s| {
                let du = cowtree_space::du(std::slice::from_ref(&s.tree), &Default::default());
                (s, du)
            })
            .collect();
        if as_json {
            let list: Vec<_> = rows
                .iter()
                .map(|(s, du)| {
                    json!({
                        "id": s.id,
                        "commit": s.commit.to_string(),
                        "age_seconds": s.age().as_secs(),
                        "entries": s.entries,
                        "copied": s.copied,
                        "allocated": du.allocated,
                        "shared": du.shared,
                        "not_shared": du.shared.map(|sh| du.allocated.saturating_sub(sh)),
                    })
                })
                .collect();
            crate::cmd::print_json(&json!({
                "size": settings.map_or(0, |s| s.size),
                "max_age_seconds": settings.map(|s| s.max_age.as_secs()),
                "wanted": pool.wanted().map(|c| c.to_string()),
                "last_fill": pool.last_fill(),
                "spares": list,
            }))?;
            return Ok(Exit::Ok);
        }
        match settings {
            None => println!("no pool ({} spares left)", spares.len()),
            Some(s) => println!(
                "pool of {} spares, max age {} s: {} there",
                s.size,
                s.max_age.as_secs(),
                spares.len()
            ),
        }
        if let Some(w) = pool.wanted() {
            println!("made at: {w} (the commit the last add checked out)");
        }
        if let Some(last) = pool.last_fill() {
            let (secs, what) = last.split_once(' ').unwrap_or(("0", last.as_str()));
            let when = secs.parse().map(crate::units::date).unwrap_or_default();
            println!("last fill: {when}: {what}");
        }
        for (s, du) in rows {
            let own = match du.shared {
                Some(sh) => bytes(du.allocated.saturating_sub(sh)),
                None => "unknown (no FIEMAP)".into(),
            };
            println!(
                "{}  {}  {:>6} s old  {} entries  {own} not shared of {} allocated{}",
                s.id,
                &s.commit.to_string()[..12],
                s.age().as_secs(),
                s.entries,
                bytes(du.allocated),
                if s.copied {
                    "  (copied, not reflinked)"
                } else {
                    ""
                }
            );
        }
        Ok(Exit::Ok)
    }

    fn fill(at: &Path, lock_fd: Option<i32>) -> CmdResult {
        let background = lock_fd.is_some();
        let started = std::time::Instant::now();
        let mut progress = |there: u32, wanted: u32| {
            if !background {
                eprintln!(
                    "cowtree: {there} of {wanted} spares ready ({:.1} s)",
                    started.elapsed().as_secs_f64()
                );
            }
        };
        let report = match lock_fd {
            Some(fd) => {
                crate::os::lower_priority();
                let Some(lock) = inherited(fd) else {
                    return Ok(Exit::Ok);
                };
                // Nobody reads it: the pool's `last-fill` says how it ended.
                let _ = cowtree_git::pool::fill_holding(at, lock, &mut progress);
                return Ok(Exit::Ok);
            }
            None => cowtree_git::pool::fill(at, true, &mut progress).map_err(git_err)?,
        };
        for (id, why) in &report.removed {
            println!("removed spare {id}: {why}");
        }
        if report.cleaned > 0 {
            println!(
                "removed {} entries killed fills or claims left",
                report.cleaned
            );
        }
        let at_commit = report
            .commit
            .map(|c| c.to_string()[..12].to_owned())
            .unwrap_or_default();
        println!(
            "{} spares made, {} kept, at {at_commit}",
            report.made.len(),
            report.kept
        );
        if let Some(why) = &report.stopped {
            return Err(
                CliError::new(format!("the fill stopped, the pool is smaller: {why}"))
                    .kind(Kind::Io),
            );
        }
        Ok(Exit::Ok)
    }

    /// The fill lock the starter of a background fill handed down as descriptor `fd`: an open
    /// regular file, which this process then owns.
    fn inherited(fd: i32) -> Option<std::fs::File> {
        use std::os::fd::{BorrowedFd, FromRawFd as _};
        if fd < 3 {
            return None;
        }
        // SAFETY: only borrowed for the check; `fcntl_getfd` fails on a descriptor not open.
        let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
        rustix::io::fcntl_getfd(borrowed).ok()?;
        let st = rustix::fs::fstat(borrowed).ok()?;
        if rustix::fs::FileType::from_raw_mode(st.st_mode) != rustix::fs::FileType::RegularFile {
            return None;
        }
        // SAFETY: the descriptor is open (checked above), was handed to this process for it
        // alone by its starter (`spawn_fill`), and nothing else here owns it.
        Some(unsafe { std::fs::File::from_raw_fd(fd) })
    }

    /// Takes the pool's fill lock and starts `cowtree git worktree pool fill` in the repository
    /// `at` holding it, in the background: detached (its own process group), no standard streams
    /// (a hook runner that reads our output to its end does not wait for it). When a fill is
    /// running, nothing is started. Best effort: the pool is an optimisation.
    fn spawn_fill(pool: &Pool, at: &Path) {
        use std::os::fd::AsRawFd as _;
        use std::os::unix::process::CommandExt as _;
        let (Ok(exe), Ok(Some(lock))) = (std::env::current_exe(), pool.lock_fill(false)) else {
            return;
        };
        // The child inherits this descriptor, and with it the lock (one open file description).
        if rustix::io::fcntl_setfd(&lock, rustix::io::FdFlags::empty()).is_err() {
            return;
        }
        let _ = fill_command(exe, at, lock.as_raw_fd())
            .process_group(0)
            .spawn();
        // This process's copy is closed here; the child's holds the lock until it ends.
        drop(lock);
    }

    /// `EXE git worktree pool -C AT fill --background=FD`, with no standard streams.
    fn fill_command(exe: std::path::PathBuf, at: &Path, fd: i32) -> Command {
        let mut args: Vec<OsString> = ["git", "worktree", "pool", "-C"]
            .iter()
            .map(OsString::from)
            .collect();
        args.push(at.as_os_str().to_owned());
        args.push("fill".into());
        args.push(format!("--background={fd}").into());
        let mut cmd = Command::new(exe);
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        cmd
    }

    pub(super) fn refill_after(report: &cowtree_git::AddReport, src: &Path) {
        let Some(common) = report.admin_dir.parent().and_then(Path::parent) else {
            return;
        };
        if report.made_by_git.is_some() {
            return;
        }
        let pool = Pool::of(common);
        if matches!(pool.settings(), Ok(Some(_))) {
            spawn_fill(&pool, report.src.as_deref().unwrap_or(src));
        }
    }
}
