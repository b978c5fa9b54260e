//! `cowtree worktree rm`: delete a worktree and its record.

use std::path::{Path, PathBuf};

use cowtree_worktree::{registry, status};

use crate::cmd::open_store;
use crate::exit::{CliError, CmdResult, Exit};

/// Manage registered worktrees.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Sub,
}

#[derive(Debug, clap::Subcommand)]
enum Sub {
    Rm(RmArgs),
}

/// Delete a worktree directory and its record in the store.
///
/// Refuses, listing the changes, when the worktree differs from its base snapshot (modified,
/// added, deleted, type- or mode-changed paths), unless --force. A worktree already deleted by
/// hand only loses its record.
#[derive(Debug, clap::Args)]
struct RmArgs {
    /// The worktree.
    dst: PathBuf,
    /// Delete it even with local changes.
    #[arg(long)]
    force: bool,
}

pub fn run(args: Args, store: Option<&Path>) -> CmdResult {
    let store = open_store(store)?;
    let Sub::Rm(a) = args.command;
    if a.dst.symlink_metadata().is_err() {
        // Gone already: drop the record that names this path, if any.
        let abs = std::path::absolute(&a.dst)?;
        let id = cowtree_store::registry::worktree_id(&abs);
        if cowtree_store::registry::get(&store, &id)?.is_none() {
            return Err(CliError::new(format!(
                "{} does not exist and is not a registered worktree",
                a.dst.display()
            )));
        }
        cowtree_store::registry::remove(&store, &id)?;
        println!(
            "removed the record of {} (already deleted)",
            a.dst.display()
        );
        return Ok(Exit::Ok);
    }
    let mut wt = registry::open(&store, &a.dst)?;
    status::remove(&store, &mut wt, a.force)?;
    println!("removed worktree {}", wt.path.display());
    Ok(Exit::Ok)
}
