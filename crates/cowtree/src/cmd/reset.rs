//! `cowtree reset`: restore a worktree's entries to its base snapshot.

use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use cowtree_worktree::reset;
use serde_json::json;

use crate::cmd::{open_store, print_json, worktree_at};
use crate::exit::{CliError, CmdResult, Exit};

/// Restore modified, deleted, type-changed and mode-changed entries to the base snapshot.
///
/// With PATHs (relative to the worktree root, or absolute inside it), only entries at or
/// beneath them. Untracked files are kept unless --hard, which removes them too (and is
/// needed when an untracked file or directory is in the way of a restored entry). Content
/// is cloned from the store under a temp name and renamed into place, so an interrupted reset
/// never leaves a partial file, and running it again finishes it.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The worktree.
    dst: PathBuf,
    /// Only these paths.
    paths: Vec<PathBuf>,
    /// Also remove untracked files and directories.
    #[arg(long)]
    hard: bool,
    /// Print one JSON object: restored, removed, finished_interrupted, elapsed_ms.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args, store: Option<&Path>) -> CmdResult {
    let store = open_store(store)?;
    let mut wt = worktree_at(&store, Some(&args.dst))?;
    let mut rels = Vec::new();
    for p in &args.paths {
        let rel = if p.is_absolute() {
            p.strip_prefix(&wt.path)
                .map_err(|_| {
                    CliError::new(format!(
                        "{} is not inside the worktree {}",
                        p.display(),
                        wt.path.display()
                    ))
                })?
                .to_path_buf()
        } else {
            p.clone()
        };
        let bytes = rel.as_os_str().as_bytes();
        let bytes = bytes.strip_suffix(b"/").unwrap_or(bytes);
        if cowtree_fs::name::validate_relative_path(bytes).is_err() {
            return Err(CliError::with_code(
                format!("{}: not a path inside the worktree", p.display()),
                2,
            ));
        }
        rels.push(bytes.to_vec());
    }
    let r = reset::reset(&store, &mut wt, &rels, args.hard)?;
    if args.json {
        print_json(&json!({
            "path": wt.path,
            "restored": r.restored,
            "removed": r.removed,
            "finished_interrupted": r.finished_interrupted,
            "elapsed_ms": r.elapsed_ms,
        }))?;
    } else {
        println!(
            "reset {}: {} entries restored, {} untracked removed in {} ms",
            wt.path.display(),
            r.restored,
            r.removed,
            r.elapsed_ms
        );
    }
    Ok(Exit::Ok)
}
