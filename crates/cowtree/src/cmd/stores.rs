//! `cowtree stores`: the stores this user's commands have used.

use std::path::PathBuf;

use cowtree_store::discover;
use serde_json::json;

use crate::cmd::print_json;
use crate::exit::{CmdResult, Exit};
use crate::units::count;

/// List the stores cowtree knows: every store a command has created or used, and the default
/// location.
///
/// A store serves the trees on its own filesystem (only there can it share data with them):
/// without --store or COWTREE_STORE, a command uses the store that holds the worktree it acts
/// on, else the default location ($XDG_DATA_HOME/cowtree, else ~/.local/share/cowtree) when it
/// is on the tree's filesystem, else `<mount point>/.cowtree-store` on the tree's filesystem
/// (or, where the mount point is not writable, `.cowtree-store` in the highest writable
/// directory on the tree's path), created on first use. The list is kept in
/// $XDG_STATE_HOME/cowtree/stores (else ~/.local/state/cowtree/stores).
///
/// A listed store that no longer exists (deleted, or on a filesystem not mounted now) is marked
/// `missing`; --prune drops those from the list. `cowtree stores rm PATH` deletes a store (its
/// btrfs tree subvolumes too, which `rm -rf` cannot) and drops it from the list.
#[derive(Debug, clap::Args)]
#[command(
    args_conflicts_with_subcommands = true,
    after_help = "Examples:
  cowtree stores                    # path, filesystem, snapshots and worktrees of each store
  cowtree stores --prune            # forget the stores that no longer exist
  cowtree stores rm /mnt/btrfs/.cowtree-store   # delete a store
  cowtree stores --json"
)]
pub struct Args {
    #[command(subcommand)]
    command: Option<Sub>,
    /// Print one JSON object: {"stores": [{path, exists, default, fs_type, snapshots,
    /// worktrees}], "pruned": [path...] (with --prune)}.
    #[arg(long)]
    json: bool,
    /// First remove the stores that no longer exist from the list (a store that is only on a
    /// filesystem not mounted now is removed too; the next command that uses it lists it
    /// again).
    #[arg(long)]
    prune: bool,
}

#[derive(Debug, clap::Subcommand)]
enum Sub {
    Rm(crate::cmd::stores_rm::Args),
}

pub fn run(args: Args) -> CmdResult {
    if let Some(Sub::Rm(a)) = args.command {
        return crate::cmd::stores_rm::run(a);
    }
    let pruned = if args.prune {
        discover::forget_missing().map_err(|e| {
            let file = discover::known_stores_file().unwrap_or_default();
            crate::exit::CliError::new(format!("prune {}: {e}", file.display()))
                .kind(crate::exit::Kind::Io)
                .path(file)
        })?
    } else {
        Vec::new()
    };
    let default = discover::default_location().ok();
    let mut paths: Vec<PathBuf> = discover::known_stores();
    if let Some(d) = &default {
        let d = discover::absolute(d).unwrap_or(d.clone());
        if !paths.contains(&d) {
            paths.insert(0, d);
        }
    }
    let default_abs = default
        .as_ref()
        .map(|d| discover::absolute(d).unwrap_or(d.clone()));
    let mut rows = Vec::new();
    for p in paths {
        let exists = discover::exists(&p);
        let fs = crate::os::fs_name(&p);
        let count = |sub: &str, len: Option<usize>| -> Option<usize> {
            let rd = std::fs::read_dir(p.join(sub)).ok()?;
            Some(
                rd.filter_map(|e| e.ok())
                    .filter(|e| len.is_none_or(|l| e.file_name().len() == l))
                    .count(),
            )
        };
        let snapshots = exists.then(|| count("snapshots", Some(64))).flatten();
        let worktrees = exists.then(|| count("worktrees", Some(32))).flatten();
        rows.push((
            default_abs.as_ref() == Some(&p),
            p,
            exists,
            fs,
            snapshots,
            worktrees,
        ));
    }
    if args.json {
        let list: Vec<_> = rows
            .iter()
            .map(|(def, p, exists, fs, snaps, wts)| {
                json!({"path": p, "exists": exists, "default": def, "fs_type": fs,
                       "snapshots": snaps, "worktrees": wts})
            })
            .collect();
        let mut out = json!({ "stores": list });
        if args.prune {
            out["pruned"] = json!(pruned);
        }
        print_json(&out)?;
        return Ok(Exit::Ok);
    }
    for p in &pruned {
        println!("{}  (no longer exists: removed from the list)", p.display());
    }
    let mut missing = 0;
    for (def, p, exists, fs, snaps, wts) in rows {
        let what = if exists {
            format!(
                "{}, {}, {}",
                fs.as_deref().unwrap_or("unknown"),
                count(snaps.unwrap_or(0) as u64, "snapshot", "snapshots"),
                count(wts.unwrap_or(0) as u64, "worktree", "worktrees")
            )
        } else if def {
            "not created yet".to_string()
        } else {
            missing += 1;
            "missing: deleted, or its filesystem is not mounted".to_string()
        };
        println!(
            "{}{}  ({what})",
            p.display(),
            if def { "  [default]" } else { "" }
        );
    }
    if missing > 0 {
        println!(
            "{} listed no longer {}; `cowtree stores --prune` removes {} from the list",
            count(missing, "store", "stores"),
            if missing == 1 { "exists" } else { "exist" },
            if missing == 1 { "it" } else { "them" }
        );
    }
    Ok(Exit::Ok)
}
