//! `cowtree switch`: move a worktree to another snapshot.

use std::path::{Path, PathBuf};

use cowtree_worktree::switch;
use serde_json::json;

use crate::cmd::{StoreOpt, print_json, worktree_arg};
use crate::exit::{CmdResult, Exit};
use crate::units::{count, secs};

/// Move a worktree to another snapshot, touching only the entries that differ.
///
/// The worktree is DST, or the one named by -C, or the one containing the current directory.
/// The two manifests are compared; entries the target lacks are removed, new and changed
/// files and symlinks are cloned from the store under a temp name and renamed into place,
/// directories are created or removed, file/directory/symlink transitions and executable-bit
/// changes are applied. Other files are not touched (same inode, same times).
///
/// Before changing anything, switch refuses (listing the paths) when a path it must touch
/// has local changes, or an untracked file is where the target needs an entry. `cowtree
/// snapshot` records those changes and makes them the base (then switch proceeds; the work
/// stays in that snapshot), `cowtree reset --hard` discards them, and --force overwrites them.
///
/// Entries are written as a plain checkout writes them: of a snapshot made with --archive,
/// the owners, set-ID bits, attributes and hardlinks it records are not given (a warning says
/// how many entries; `cowtree checkout --archive` makes a worktree with them).
///
/// The switch is journaled in the store first: if it is interrupted (even by kill -9), no
/// file is left with partial content under its final name, and running the same command
/// again (or reset, or snapshot of the worktree) finishes it.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  cd /work/app-a && cowtree switch v2       # move the worktree you are in to snapshot v2
  cowtree switch v2 /work/app-b             # name the worktree
  cowtree switch -C /work/app-b --force v1  # overwrite local changes in the way")]
pub struct Args {
    /// Snapshot id, id prefix (8+ hex digits) or name.
    snapshot: String,
    /// The worktree (default: the one containing the current directory).
    #[arg(conflicts_with = "worktree")]
    dst: Option<PathBuf>,
    /// The worktree (the same as DST).
    #[arg(short = 'C', long, value_name = "DIR")]
    worktree: Option<PathBuf>,
    /// Overwrite local changes and untracked files in the way.
    #[arg(long)]
    force: bool,
    /// Print one JSON object: path, from, to, changed, written, removed, dirs_created,
    /// finished_interrupted, archive_not_given, elapsed_ms.
    #[arg(long)]
    json: bool,
    /// Print nothing but errors.
    #[arg(long, short = 'q')]
    quiet: bool,
    #[command(flatten)]
    store: StoreOpt,
    #[command(flatten)]
    jobs: crate::cmd::JobsOpt,
}

pub fn run(args: Args, top: Option<&Path>) -> CmdResult {
    args.jobs.apply();
    let opt = args.store.clone().or(top);
    let (store, mut wt) = worktree_arg(&opt, args.dst.as_deref().or(args.worktree.as_deref()))?;
    let to = cowtree_store::refs::resolve(&store, &args.snapshot)?;
    crate::interrupt::tell(crate::interrupt::Tell::Switch {
        store: store.root().to_path_buf(),
        worktree: wt.path.clone(),
        to,
        journaled: format!(
            "the switch is journaled in the store: `{}` (this command again) finishes it, as do \
             a reset and a snapshot of the worktree; until then status refuses",
            crate::interrupt::same_command()
        ),
    });
    let spinner = crate::progress::Activity::counting(
        format!("switching {} to {}", wt.path.display(), args.snapshot),
        args.quiet || args.json,
        ("entry", "entries"),
    );
    let r = switch::switch_with_progress(&store, &mut wt, &to, args.force, spinner.progress());
    drop(spinner);
    let r = r?;
    crate::interrupt::finished();
    if args.json {
        print_json(&json!({
            "path": wt.path,
            "from": r.from.map(|h| h.to_hex()),
            "to": to.to_hex(),
            "changed": r.changed,
            "written": r.written,
            "removed": r.removed,
            "dirs_created": r.dirs_created,
            "finished_interrupted": r.finished_interrupted,
            "archive_not_given": r.archive_not_given,
            "elapsed_ms": r.elapsed_ms,
        }))?;
    } else if !args.quiet {
        if r.finished_interrupted {
            eprintln!("finished an interrupted switch first");
        }
        println!(
            "switched {} to {}: {} differed ({} written, {} removed, {} created) in {}",
            wt.path.display(),
            &to.to_hex()[..12],
            count(r.changed, "entry", "entries"),
            r.written,
            r.removed,
            count(r.dirs_created, "dir", "dirs"),
            secs(r.elapsed_ms)
        );
    }
    if !args.quiet {
        crate::cmd::warn_archive_not_given(
            "switch",
            r.archive_not_given,
            store.root(),
            &to,
            &wt.path,
        );
    }
    Ok(Exit::Ok)
}
