//! `cowtree worktree list|rm`: the registered worktrees.

use std::path::{Path, PathBuf};

use cowtree_worktree::status;
use serde_json::json;

use crate::cmd::{StoreOpt, find_worktree, print_json, store_here};
use crate::exit::{CliError, CmdResult, Exit};

/// Manage registered worktrees.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  cowtree worktree list              # every worktree of the store, and whether it still exists
  cowtree worktree rm /work/app-a    # delete a worktree that has no local changes")]
pub struct Args {
    #[command(subcommand)]
    command: Sub,
}

#[derive(Debug, clap::Subcommand)]
enum Sub {
    List(crate::cmd::worktrees::Args),
    Rm(RmArgs),
}

/// Delete a worktree directory and its record in the store.
///
/// Refuses, listing the changes, when the worktree differs from its base snapshot (modified,
/// added, deleted, type- or mode-changed paths), unless --force. A worktree already deleted by
/// hand only loses its record.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  cowtree worktree rm /work/app-a           # refused if it has local changes
  cowtree worktree rm --force /work/app-a   # delete it anyway")]
struct RmArgs {
    /// The worktree.
    dst: PathBuf,
    /// Delete it even with local changes.
    #[arg(long)]
    force: bool,
    /// Print one JSON object: path, removed ("worktree" or "record"), subvolume (how a
    /// worktree that is a btrfs subvolume was deleted: "ioctl", or "removed-tree" where the
    /// kernel permits no O(1) delete; null for a plain directory).
    #[arg(long)]
    json: bool,
    /// Print nothing but errors.
    #[arg(long, short = 'q')]
    quiet: bool,
    #[command(flatten)]
    store: StoreOpt,
}

pub fn run(args: Args, top: Option<&Path>) -> CmdResult {
    let a = match args.command {
        Sub::List(l) => return crate::cmd::worktrees::run(l, top),
        Sub::Rm(a) => a,
    };
    let opt = a.store.clone().or(top);
    let say = |path: &Path, what: &str, how: Option<cowtree_fs::subvolume::Deleted>| -> CmdResult {
        if a.json {
            print_json(&json!({
                "path": path,
                "removed": what,
                "subvolume": how.map(|h| h.as_str()),
            }))?;
        } else if !a.quiet {
            if what == "record" {
                println!("removed the record of {} (already deleted)", path.display());
            } else {
                let how = match how {
                    Some(cowtree_fs::subvolume::Deleted::Ioctl) => {
                        " (a btrfs subvolume, deleted in one call)".to_string()
                    }
                    Some(cowtree_fs::subvolume::Deleted::RemovedTree { because }) => format!(
                        " (a btrfs subvolume, deleted entry by entry: {})",
                        because.describe()
                    ),
                    None => String::new(),
                };
                println!("removed worktree {}{how}", path.display());
            }
        }
        Ok(Exit::Ok)
    };
    if a.dst.symlink_metadata().is_err() {
        // Gone already: drop the record that names this path, if any.
        let store = store_here(&opt)?;
        let abs = std::path::absolute(&a.dst)?;
        let id = cowtree_store::worktree_records::worktree_id(&abs);
        if !cowtree_store::worktree_records::exists(&store, &id)? {
            return Err(CliError::new(format!(
                "{} does not exist and is not a registered worktree",
                a.dst.display()
            )));
        }
        cowtree_store::worktree_records::remove(&store, &id)?;
        return say(&a.dst, "record", None);
    }
    let (store, mut wt) = find_worktree(&opt, &a.dst, true)?;
    let how = status::remove_reporting(&store, &mut wt, a.force)?;
    say(&wt.path, "worktree", how)
}
