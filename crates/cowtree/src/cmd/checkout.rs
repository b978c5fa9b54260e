//! `cowtree checkout`: materialize a snapshot as a new worktree.

use std::path::{Path, PathBuf};

use cowtree_store::checkout::{CheckoutMode, CheckoutOptions, checkout};
use serde_json::json;

use crate::cmd::{open_store, print_json};
use crate::exit::{CmdResult, Exit};

/// Check out a snapshot into a new directory.
///
/// SNAPSHOT is a full id, a unique id prefix of at least 8 hex digits, or a name. DST must not
/// exist or must be an empty directory. The tree is built in a staging directory beside DST
/// (`.<name>.cowtree-checkout-*`) and renamed into place, so DST is never left half-written.
/// Files are cloned from the store (sharing data blocks; writes stay private to this worktree)
/// with mode 0644, or 0755 for executables; symlinks are recreated exactly. The worktree is
/// recorded in the store's registry with
/// a stat cache of what was written (see `cowtree status`). If the store is on another filesystem than DST, cowtree
/// warns before starting (files are copied), or refuses with --strict (exit 3).
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Snapshot id, id prefix (8+ hex digits) or name.
    snapshot: String,
    /// The new worktree directory.
    dst: PathBuf,
    /// auto: clone, else copy; clone: clone, copy with a reported fallback; copy: always copy.
    #[arg(long, value_enum, default_value = "auto")]
    mode: Mode,
    /// Refuse to copy where a clone is not possible (exit 3), including a store on another
    /// filesystem.
    #[arg(long)]
    strict: bool,
    /// Print one JSON object: files, dirs, symlinks, cloned, copied, bytes,
    /// fallbacks [{reason, count}], elapsed_ms.
    #[arg(long)]
    json: bool,
    /// When this store lacks SNAPSHOT, pull it from a remote first (see `cowtree pull`).
    #[arg(long)]
    pull: bool,
    /// The remote for --pull (default: origin, else the only one configured).
    #[arg(long, requires = "pull")]
    remote: Option<String>,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Mode {
    Auto,
    Clone,
    Copy,
}

pub fn run(args: Args, store: Option<&Path>) -> CmdResult {
    let store = open_store(store)?;
    let id = match cowtree_store::refs::resolve(&store, &args.snapshot) {
        Ok(id) => id,
        Err(_) if args.pull => crate::cmd::pull::pull_for_checkout(
            &store,
            args.remote.as_deref(),
            &args.snapshot,
            args.json,
        )?,
        Err(e) => return Err(e.into()),
    };
    let opts = CheckoutOptions {
        mode: match args.mode {
            Mode::Auto => CheckoutMode::Auto,
            Mode::Clone => CheckoutMode::Clone,
            Mode::Copy => CheckoutMode::Copy,
        },
        strict: args.strict,
    };
    let r = checkout(&store, &id, &args.dst, opts, &|w| eprintln!("cowtree: {w}"))?;
    // Record the root's device and inode and a stat cache of what was just written, so that
    // status, switch and snapshot of this worktree read only files that change later.
    // The checkout itself is complete and registered: a failure here only costs speed (the
    // first status reads every file), so it is a warning.
    if let Err(e) = cowtree_worktree::status::adopt(&store, &r.path, &id) {
        eprintln!(
            "cowtree: warning: {}: could not record the stat cache ({e}); the first status \
             will read every file",
            r.path.display()
        );
    }
    if args.json {
        let fallbacks: Vec<_> = r
            .fallbacks
            .iter()
            .map(|(reason, count)| json!({"reason": reason, "count": count}))
            .collect();
        print_json(&json!({
            "id": id.to_hex(),
            "path": r.path.to_string_lossy(),
            "files": r.files,
            "dirs": r.dirs,
            "symlinks": r.symlinks,
            "cloned": r.cloned,
            "copied": r.copied,
            "bytes": r.bytes,
            "fallbacks": fallbacks,
            "cross_device": r.cross_device,
            "worktree": r.worktree_id,
            "elapsed_ms": r.elapsed_ms,
        }))?;
    } else {
        println!(
            "checked out {} into {}: {} files ({} cloned, {} copied), {} dirs, {} symlinks, \
             {} bytes in {} ms",
            &id.to_hex()[..12],
            r.path.display(),
            r.files,
            r.cloned,
            r.copied,
            r.dirs,
            r.symlinks,
            r.bytes,
            r.elapsed_ms
        );
        for (reason, count) in &r.fallbacks {
            println!("fallback: {count} file(s) copied because {reason}");
        }
    }
    Ok(Exit::Ok)
}
