//! `cowtree rm`: remove a snapshot.

use std::path::Path;

use cowtree_store::error::command;
use serde_json::json;

use crate::cmd::{StoreOpt, print_json, store_here};
use crate::exit::{CliError, CmdResult, Exit};
use crate::units::count;

/// Remove a snapshot and the names pointing at it.
///
/// Its blobs are freed by `cowtree gc`.
/// Refuses while a registered worktree that still exists was checked out from it, unless
/// --force.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  cowtree rm v1 && cowtree gc      # remove a snapshot, then free its blobs
  cowtree rm --force 3f2a9c1e      # even though a worktree was checked out from it")]
pub struct Args {
    /// Snapshot id, id prefix (8+ hex digits) or name.
    snapshot: String,
    /// Remove it even if worktrees were checked out from it.
    #[arg(long)]
    force: bool,
    /// Print one JSON object: id, names_removed, tree_removed (how its tree subvolume was
    /// deleted: "ioctl" or "removed-tree"; null when it had none).
    #[arg(long)]
    json: bool,
    /// Print nothing but errors.
    #[arg(long, short = 'q')]
    quiet: bool,
    #[command(flatten)]
    store: StoreOpt,
}

pub fn run(args: Args, top: Option<&Path>) -> CmdResult {
    let store = store_here(&args.store.clone().or(top))?;
    let _lock = store.lock_shared()?;
    // A name whose snapshot is gone is what an rm cut short by a crash leaves (the manifest
    // goes first): removing it finishes that rm.
    if let Some(id) = cowtree_store::refs::get(&store, &args.snapshot)?
        && !store.has_snapshot(&id)?
    {
        let names = remove_names_of(&store, &id)?;
        if args.json {
            print_json(&json!({"id": id.to_hex(), "names_removed": names}))?;
        } else if !args.quiet {
            println!(
                "removed {} of snapshot {id}, which was already removed: {}",
                count(names.len() as u64, "name", "names"),
                names.join(" ")
            );
        }
        return Ok(Exit::Ok);
    }
    let id = cowtree_store::refs::resolve(&store, &args.snapshot)?;
    let users = cowtree_store::worktree_records::live_users(&store, &id)?;
    if !users.is_empty() && !args.force {
        // One command per worktree, each to run as printed.
        let list: Vec<String> = users
            .iter()
            .map(|p| {
                format!(
                    "{}   (`{}` removes it)",
                    p.display(),
                    command(store.root(), &["worktree", "rm"], p)
                )
            })
            .collect();
        return Err(CliError::new(format!(
            "snapshot {id} is in use by {}:\n  {}\n(remove them first, or use --force)",
            count(users.len() as u64, "worktree", "worktrees"),
            list.join("\n  ")
        )));
    }
    // The manifest first: interrupted after it, what is left is a name that resolves to
    // nothing, which the same `rm NAME` then removes (above).
    store.remove_snapshot(&id)?;
    // Its tree subvolume, if the store made one: derived data, which gc would remove too.
    let tree = match cowtree_store::trees::remove(&store, &id) {
        Ok(how) => how.map(|h| h.as_str()),
        Err(e) => {
            eprintln!(
                "cowtree: warning: could not remove the tree subvolume of snapshot {id} ({e}); \
                 gc removes it"
            );
            None
        }
    };
    let names = remove_names_of(&store, &id)?;
    if !args.quiet && !args.json {
        for name in &names {
            eprintln!("removed name {name}");
        }
    }
    if args.json {
        print_json(&json!({"id": id.to_hex(), "names_removed": names, "tree_removed": tree}))?;
    } else if !args.quiet {
        if tree.is_some() {
            eprintln!("removed its tree subvolume");
        }
        println!(
            "removed snapshot {id} (`{}` frees its blobs)",
            command(store.root(), &["gc"], Path::new(""))
        );
    }
    Ok(Exit::Ok)
}

/// Removes every name of snapshot `id`, durably; returns them.
fn remove_names_of(
    store: &cowtree_store::Store,
    id: &cowtree_store::Hash,
) -> Result<Vec<String>, CliError> {
    let mut names = Vec::new();
    for (name, target) in cowtree_store::refs::list(store)? {
        if target == *id {
            cowtree_store::refs::remove(store, &name)?;
            names.push(name);
        }
    }
    Ok(names)
}
