//! `cowtree worktrees`: list registered worktrees.

use std::path::Path;

use cowtree_worktree::registry;
use serde_json::json;

use crate::cmd::{open_store, print_json};
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
pub struct Args {
    /// Print one JSON object: {"worktrees": [{id, path, base, state, pending}]}.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args, store: Option<&Path>) -> CmdResult {
    let store = open_store(store)?;
    let rows = registry::list(&store)?;
    if args.json {
        let list: Vec<_> = rows
            .iter()
            .map(|(id, r, p)| {
                json!({
                    "id": id,
                    "path": r.path_buf(),
                    "base": r.snapshot,
                    "state": p.as_str(),
                    "pending": r.extra.get("pending").and_then(|v| v.get("to")).cloned(),
                })
            })
            .collect();
        print_json(&json!({ "worktrees": list }))?;
    } else {
        for (_, r, p) in rows {
            let path = r
                .path_buf()
                .map(|p| p.display().to_string())
                .unwrap_or_default();
            let pending = if r.extra.contains_key("pending") {
                "  (interrupted switch)"
            } else {
                ""
            };
            println!(
                "{:<8}  {}  {path}{pending}",
                p.as_str(),
                r.snapshot.get(..12).unwrap_or(&r.snapshot)
            );
        }
    }
    Ok(Exit::Ok)
}
