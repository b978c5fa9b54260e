//! `cowtree reset`: restore a worktree's entries to its base snapshot.

use std::path::{Component, Path, PathBuf};

use cowtree_store::discover::absolute;
use cowtree_worktree::reset;
use serde_json::json;

use crate::cmd::{StoreOpt, print_json, worktree_arg};
use crate::exit::{CliError, CmdResult, Exit};
use crate::units::{count, secs};

/// Restore modified, deleted, type-changed and mode-changed entries to the base snapshot.
///
/// The worktree is the one named by -C, or the one containing the current directory. With
/// PATHs (relative to the current directory when it is inside the worktree, else to the
/// worktree's root; or absolute), only entries at or beneath them; a PATH that is neither in
/// the worktree nor in its base snapshot is an error. Untracked files are kept unless --hard,
/// which removes them too (and is needed when an untracked file or directory is in the way of
/// a restored entry). Content is cloned from the store under a temp name and renamed into
/// place, so an interrupted reset never leaves a partial file, and running it again finishes
/// it.
///
/// Entries are restored as a plain checkout writes them: of a snapshot made with --archive,
/// the owners, set-ID bits, attributes and hardlinks it records are not given (a warning says
/// how many entries).
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  cd /work/app-a && cowtree reset src/main.rs   # restore one file
  cowtree reset -C /work/app-a --hard           # the whole worktree, untracked files removed
  cowtree reset --json docs                     # one directory, the report as JSON")]
pub struct Args {
    /// Only these paths.
    paths: Vec<PathBuf>,
    /// The worktree (default: the one containing the current directory).
    #[arg(short = 'C', long, value_name = "DIR")]
    worktree: Option<PathBuf>,
    /// Also remove untracked files and directories.
    #[arg(long)]
    hard: bool,
    /// Print one JSON object: path, restored, removed, finished_interrupted,
    /// archive_not_given, elapsed_ms.
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

/// `p` as a path relative to the worktree root `root`, resolved against `base`; `None` for
/// the root itself. The last component is kept as it is (a symlink is not followed).
fn relative_to(root: &Path, base: &Path, p: &Path) -> Result<Option<Vec<u8>>, CliError> {
    let joined = base.join(p);
    let bad = || {
        CliError::with_code(
            format!(
                "{}: not a path inside the worktree {}",
                p.display(),
                root.display()
            ),
            2,
        )
    };
    let mut lexical = PathBuf::new();
    for c in joined.components() {
        match c {
            Component::ParentDir => {
                lexical.pop();
            }
            Component::CurDir => {}
            other => lexical.push(other),
        }
    }
    // Canonicalize the parent only, so that a symlink named by PATH is reset, not its target.
    let full = match (lexical.parent(), lexical.file_name()) {
        (Some(parent), Some(name)) => absolute(parent)
            .map_err(|e| CliError::new(format!("{}: {e}", p.display())))?
            .join(name),
        _ => lexical,
    };
    if full == root {
        return Ok(None);
    }
    let rel = full.strip_prefix(root).map_err(|_| bad())?;
    let bytes = crate::os::manifest_path(rel).ok_or_else(bad)?;
    if cowtree_fs::name::validate_relative_path(&bytes).is_err() {
        return Err(bad());
    }
    Ok(Some(bytes))
}

pub fn run(args: Args, top: Option<&Path>) -> CmdResult {
    args.jobs.apply();
    let opt = args.store.clone().or(top);
    let (store, mut wt) = worktree_arg(&opt, args.worktree.as_deref())?;
    let cwd = std::env::current_dir()?;
    let cwd = std::fs::canonicalize(&cwd).unwrap_or(cwd);
    let base = if cwd.starts_with(&wt.path) {
        cwd
    } else {
        wt.path.clone()
    };
    let mut rels = Vec::new();
    let mut whole = args.paths.is_empty();
    for p in &args.paths {
        match relative_to(&wt.path, &base, p)? {
            None => whole = true,
            Some(rel) => rels.push((p, rel)),
        }
    }
    // A path that is not in the worktree must be in the base: looked for in one read of the
    // base's manifest, holding none of its entries.
    let mut missing: Vec<(&PathBuf, &[u8], bool)> = rels
        .iter()
        .filter(|(_, rel)| {
            wt.path
                .join(crate::os::path_from_bytes(rel))
                .symlink_metadata()
                .is_err()
        })
        .map(|(p, rel)| (*p, rel.as_slice(), false))
        .collect();
    if !missing.is_empty() {
        store.each_entry(&wt.base, |e| {
            for (_, rel, found) in missing.iter_mut() {
                *found |= e.path.starts_with(rel)
                    && (e.path.len() == rel.len() || e.path[rel.len()] == b'/');
            }
        })?;
    }
    if let Some((p, _, _)) = missing.iter().find(|(_, _, found)| !found) {
        return Err(CliError::new(format!(
            "reset: {} is neither in the worktree {} nor in its base snapshot {}",
            p.display(),
            wt.path.display(),
            &wt.base.to_hex()[..12]
        )));
    }
    let rels: Vec<Vec<u8>> = if whole {
        Vec::new()
    } else {
        rels.into_iter().map(|(_, r)| r).collect()
    };
    crate::interrupt::tell(crate::interrupt::Tell::Note(format!(
        "each file is either restored or as it was: `{}` (this command again) finishes the reset",
        crate::interrupt::same_command()
    )));
    let spinner = crate::progress::Activity::counting(
        format!("resetting {}", wt.path.display()),
        args.quiet || args.json,
        ("file", "files"),
    );
    let r = reset::reset_with_progress(&store, &mut wt, &rels, args.hard, spinner.progress());
    drop(spinner);
    let r = r?;
    crate::interrupt::finished();
    if args.json {
        print_json(&json!({
            "path": wt.path,
            "restored": r.restored,
            "removed": r.removed,
            "finished_interrupted": r.finished_interrupted,
            "archive_not_given": r.archive_not_given,
            "elapsed_ms": r.elapsed_ms,
        }))?;
    } else if !args.quiet {
        println!(
            "reset {}: {} restored, {} removed in {}",
            wt.path.display(),
            count(r.restored, "entry", "entries"),
            count(r.removed, "untracked entry", "untracked entries"),
            secs(r.elapsed_ms)
        );
    }
    if !args.quiet {
        crate::cmd::warn_archive_not_given(
            "reset",
            r.archive_not_given,
            store.root(),
            &wt.base,
            &wt.path,
        );
    }
    Ok(Exit::Ok)
}
