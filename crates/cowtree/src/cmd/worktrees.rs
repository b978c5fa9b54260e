//! `cowtree worktree list` (also `cowtree worktrees`): list registered worktrees.

use std::path::Path;

use cowtree_worktree::registry;
use serde_json::json;

use crate::cmd::{StoreOpt, print_json, store_here};
use crate::exit::{CmdResult, Exit};

/// List the worktrees registered in the store, with whether each still exists.
///
/// `present`: its path is the directory that was checked out (same device and inode).
/// `replaced`: something else is at its path now. `missing`: nothing is. A worktree moved by
/// hand shows as missing at its old path until a command names its new path (status, switch,
/// reset, snapshot): the record is then found by the root's device and inode and moved to the
/// new path. `cowtree gc` drops records of missing and replaced worktrees, so they no longer
/// keep `cowtree rm` from removing their snapshots.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  cowtree worktree list                  # the store of this directory's worktree or filesystem
  cowtree worktree list --json           # with ids, bases and interrupted switches
  cowtree worktrees --store /mnt/xfs/.cowtree-store")]
pub struct Args {
    /// Print one JSON object: {"worktrees": [{id, path, base, state, pending}]}.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    store: StoreOpt,
}

pub fn run(args: Args, top: Option<&Path>) -> CmdResult {
    let store = store_here(&args.store.clone().or(top))?;
    let rows = registry::list(&store)?;
    if args.json {
        let list: Vec<_> = rows
            .iter()
            .map(|(id, r, p)| {
                json!({
                    "id": id,
                    "path": r.registration.path_buf(),
                    "base": r.registration.snapshot.to_hex(),
                    "state": p.as_str(),
                    "pending": r.pending.map(|s| s.to.to_hex()),
                })
            })
            .collect();
        print_json(&json!({ "worktrees": list }))?;
    } else if rows.is_empty() {
        println!(
            "no worktrees registered in the store {}",
            store.root().display()
        );
    } else {
        for (_, r, p) in rows {
            let path = (r.registration.path_buf())
                .map(|p| p.display().to_string())
                .unwrap_or_default();
            let pending = if r.pending.is_some() {
                "  (interrupted switch)"
            } else {
                ""
            };
            println!(
                "{:<8}  {}  {path}{pending}",
                p.as_str(),
                &r.registration.snapshot.to_hex()[..12]
            );
        }
    }
    Ok(Exit::Ok)
}
