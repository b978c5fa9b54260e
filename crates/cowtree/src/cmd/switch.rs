//! `cowtree switch`: move a worktree to another snapshot.

use std::path::{Path, PathBuf};

use cowtree_worktree::switch;
use serde_json::json;

use crate::cmd::{open_store, print_json, worktree_at};
use crate::exit::{CmdResult, Exit};

/// Move a worktree to another snapshot, touching only the entries that differ.
///
/// The two manifests are compared; entries the target lacks are removed, new and changed
/// files and symlinks are cloned from the store under a temp name and renamed into place,
/// directories are created or removed, file/directory/symlink transitions and executable-bit
/// changes are applied. Other files are not touched (same inode, same times).
///
/// Before changing anything, switch refuses (listing the paths) when a path it must touch
/// has local changes, or an untracked file is where the target needs an entry; --force
/// overwrites those changes and removes those files.
///
/// The switch is journaled in the store first: if it is interrupted (even by kill -9), no
/// file is left with partial content under its final name, and running the same command
/// again (or reset, or snapshot of the worktree) finishes it.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The worktree.
    dst: PathBuf,
    /// Snapshot id, id prefix (8+ hex digits) or name.
    snapshot: String,
    /// Overwrite local changes and untracked files in the way.
    #[arg(long)]
    force: bool,
    /// Print one JSON object: from, to, changed, written, removed, dirs_created,
    /// finished_interrupted, elapsed_ms.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args, store: Option<&Path>) -> CmdResult {
    let store = open_store(store)?;
    let to = cowtree_store::refs::resolve(&store, &args.snapshot)?;
    let mut wt = worktree_at(&store, Some(&args.dst))?;
    let r = switch::switch(&store, &mut wt, &to, args.force)?;
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
            "elapsed_ms": r.elapsed_ms,
        }))?;
    } else {
        if r.finished_interrupted {
            eprintln!("finished an interrupted switch first");
        }
        println!(
            "switched {} to {}: {} entries differed ({} written, {} removed, {} dirs created) \
             in {} ms",
            wt.path.display(),
            &to.to_hex()[..12],
            r.changed,
            r.written,
            r.removed,
            r.dirs_created,
            r.elapsed_ms
        );
    }
    Ok(Exit::Ok)
}
