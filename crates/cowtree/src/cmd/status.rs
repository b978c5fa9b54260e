//! `cowtree status`: what changed in a worktree against its base snapshot.

use std::path::{Path, PathBuf};

use cowtree_worktree::scan::show_change;
use cowtree_worktree::{ChangeKind, status};
use serde_json::json;

use crate::cmd::{StoreOpt, print_json, worktree_arg};
use crate::exit::{CmdResult, Exit};

/// Show the paths of a worktree that differ from its base snapshot.
///
/// Lists modified (M), added/untracked (A; a directory holding nothing of the base is one
/// entry, shown with a trailing /), deleted (D), type-changed (T: file, directory and symlink
/// swapped) and mode-changed (X: the executable bit) paths. A path can be both M and X.
/// Owners, other mode bits, extended attributes and hardlinks are not compared, also for a
/// snapshot taken with `snapshot --archive`; the special files such a snapshot records are
/// not shown as added.
///
/// Only files whose size, mtime, ctime, inode or mode differ from the stat cache kept in the
/// store are read and hashed; a file whose mtime is within the timestamp granularity of the
/// cache's time (50 ms, or 2 s on filesystems without sub-second times) is read too, since
/// it could have changed without its stat changing (git's "racy" rule). When files had to
/// be read, the stat cache is refreshed so the next status does not read them again.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  cd /work/app-a && cowtree status       # the worktree you are in
  cowtree status /work/app-b             # name one (or -C /work/app-b)
  cowtree status --exit-code --quiet     # exit 1 when anything changed, print nothing")]
pub struct Args {
    /// The worktree (default: the registered worktree containing the current directory).
    #[arg(conflicts_with = "worktree")]
    dst: Option<PathBuf>,
    /// The worktree (the same as DST).
    #[arg(short = 'C', long, value_name = "DIR")]
    worktree: Option<PathBuf>,
    /// Print nothing (with --exit-code, the exit status tells).
    #[arg(long, short = 'q')]
    quiet: bool,
    #[command(flatten)]
    store: StoreOpt,
    /// Print one JSON object: path, base, clean, modified, added, deleted, type_changed,
    /// mode_changed (lists of paths; untracked directories end in "/"), hashed.
    #[arg(long)]
    json: bool,
    /// Exit 1 when the worktree has any change (as `git diff --exit-code`).
    #[arg(long)]
    exit_code: bool,
    #[command(flatten)]
    jobs: crate::cmd::JobsOpt,
}

pub fn run(args: Args, top: Option<&Path>) -> CmdResult {
    args.jobs.apply();
    let opt = args.store.clone().or(top);
    let (store, mut wt) = worktree_arg(&opt, args.dst.as_deref().or(args.worktree.as_deref()))?;
    let spinner = crate::progress::Activity::counting(
        format!("comparing {}", wt.path.display()),
        args.quiet || args.json,
        ("entry", "entries"),
    );
    let scan = status::status_with_progress(&store, &mut wt, spinner.progress());
    drop(spinner);
    let scan = scan?;
    if args.json {
        let list = |k: ChangeKind| -> Vec<String> {
            scan.changes
                .iter()
                .filter(|c| c.kind == k)
                .map(|c| {
                    let mut p = String::from_utf8_lossy(&c.path).into_owned();
                    if c.is_dir {
                        p.push('/');
                    }
                    p
                })
                .collect()
        };
        print_json(&json!({
            "path": wt.path,
            "base": wt.base.to_hex(),
            "clean": !scan.dirty(),
            "modified": list(ChangeKind::Modified),
            "added": list(ChangeKind::Added),
            "deleted": list(ChangeKind::Deleted),
            "type_changed": list(ChangeKind::TypeChanged),
            "mode_changed": list(ChangeKind::ModeChanged),
            "hashed": scan.hashed,
        }))?;
    } else if !args.quiet {
        for c in &scan.changes {
            let tag = match c.kind {
                ChangeKind::Modified => "M",
                ChangeKind::Added => "A",
                ChangeKind::Deleted => "D",
                ChangeKind::TypeChanged => "T",
                ChangeKind::ModeChanged => "X",
            };
            let shown = show_change(c);
            println!("{tag} {}", &shown[1..shown.len() - 1]);
        }
        if !scan.dirty() {
            eprintln!(
                "clean: {} matches snapshot {}",
                wt.path.display(),
                &wt.base.to_hex()[..12]
            );
        }
    }
    if args.exit_code && scan.dirty() {
        return Ok(Exit::Code(1));
    }
    Ok(Exit::Ok)
}
