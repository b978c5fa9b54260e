//! `cowtree rm`: remove a snapshot.

use std::path::Path;

use crate::cmd::open_store;
use crate::exit::{CliError, CmdResult, Exit};

/// Remove a snapshot and the names pointing at it.
///
/// Its blobs are freed by `cowtree gc`.
/// Refuses while a registered worktree that still exists was checked out from it, unless
/// --force.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Snapshot id, id prefix (8+ hex digits) or name.
    snapshot: String,
    /// Remove it even if worktrees were checked out from it.
    #[arg(long)]
    force: bool,
}

pub fn run(args: Args, store: Option<&Path>) -> CmdResult {
    let store = open_store(store)?;
    let _lock = store.lock_shared()?;
    let id = cowtree_store::refs::resolve(&store, &args.snapshot)?;
    let users = cowtree_store::registry::live_users(&store, &id)?;
    if !users.is_empty() && !args.force {
        let list: Vec<String> = users.iter().map(|p| p.display().to_string()).collect();
        return Err(CliError::new(format!(
            "snapshot {id} is in use by worktree(s):\n  {}\n(remove them first, or use --force)",
            list.join("\n  ")
        )));
    }
    for (name, target) in cowtree_store::refs::list(&store)? {
        if target == id {
            cowtree_store::refs::remove(&store, &name)?;
            eprintln!("removed name {name}");
        }
    }
    store.remove_snapshot(&id)?;
    println!("removed snapshot {id} (run `cowtree gc` to free its blobs)");
    Ok(Exit::Ok)
}
