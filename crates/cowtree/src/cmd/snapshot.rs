//! `cowtree snapshot`: record a tree (or a JSON manifest) in the store.

use std::path::{Path, PathBuf};

use cowtree_store::{ingest, interchange};
use serde_json::json;

use crate::cmd::{open_store, print_json};
use crate::exit::{CliError, CmdResult, Exit};

/// Record a directory tree in the store and print the snapshot id.
///
/// Every file is cloned into the store's staging area (copied when the filesystems cannot
/// share data), hashed, and kept as a read-only blob named by its BLAKE3 hash; the snapshot is
/// a manifest of paths, kinds (file, executable, symlink, empty directory), sizes and blobs.
/// Symlinks are recorded, never followed; fifos, sockets and devices are refused. The same
/// tree always gives the same id.
///
/// When DIR is a worktree registered in the store (made by `cowtree checkout`), the snapshot
/// is incremental: files whose size, times, inode and mode match the worktree's stat cache
/// (and are not racy) take their known blob without being read; only the others are read
/// into the store. The id is the one a fresh snapshot of the same content gets. The
/// worktree's base stays where it was unless --update-base (see there).
///
/// With --from-json FILE, records the manifest in FILE instead (the format `cowtree show
/// --json` prints, documented in docs/manifest.md). Its blobs must already be in the store;
/// every entry is validated and nothing is written if any entry is refused.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The directory to record.
    #[arg(required_unless_present = "from_json", conflicts_with = "from_json")]
    dir: Option<PathBuf>,
    /// Also name the snapshot NAME (like `cowtree tag`).
    #[arg(long, value_name = "NAME")]
    name: Option<String>,
    /// Record the JSON manifest in FILE ("-" for stdin) instead of a directory.
    #[arg(long, value_name = "FILE")]
    from_json: Option<PathBuf>,
    /// Print one JSON object: id, files, bytes, new_blobs, new_bytes, elapsed_ms (and for a
    /// worktree: read, listed_dirs, incremental, base_updated; read counts the files and
    /// listed_dirs the directories the stat cache could not vouch for).
    #[arg(long)]
    json: bool,
    /// For a registered worktree, also make the new snapshot its base (what status, switch
    /// and reset compare with). Off by default: a snapshot records the tree without changing
    /// what the worktree is based on, so status keeps showing the work done since checkout
    /// or switch, and recording never changes the meaning of other commands; pass it to
    /// treat the snapshot as a commit of that work.
    #[arg(long)]
    update_base: bool,
    /// Read every file even when DIR is a registered worktree (a fresh, non-incremental
    /// snapshot; the result is the same id).
    #[arg(long, conflicts_with = "update_base")]
    full: bool,
}

pub fn run(args: Args, store: Option<&Path>) -> CmdResult {
    let store = open_store(store)?;
    if let Some(file) = &args.from_json {
        let started = std::time::Instant::now();
        let text = if file.as_os_str() == "-" {
            let mut v = Vec::new();
            std::io::Read::read_to_end(&mut std::io::stdin(), &mut v)?;
            v
        } else {
            std::fs::read(file)
                .map_err(|e| CliError::new(format!("read {}: {e}", file.display())))?
        };
        let manifest = interchange::from_json(&text)
            .map_err(|e| CliError::new(format!("{}: {e}", file.display())))?;
        let id = ingest::record_manifest(&store, &manifest, args.name.as_deref())
            .map_err(|e| CliError::new(format!("{}: {e}", file.display())))?;
        if args.json {
            print_json(&json!({
                "id": id.to_hex(),
                "files": manifest.files(),
                "bytes": manifest.bytes(),
                "new_blobs": 0,
                "new_bytes": 0,
                "elapsed_ms": started.elapsed().as_millis() as u64,
            }))?;
        } else {
            println!("{id}");
        }
        return Ok(Exit::Ok);
    }
    let dir = args
        .dir
        .as_deref()
        .ok_or_else(|| CliError::new("snapshot: DIR is required"))?;
    if !args.full {
        if let Some(mut wt) = cowtree_worktree::registry::lookup(&store, dir)? {
            let r = cowtree_worktree::snapshot::snapshot(
                &store,
                &mut wt,
                args.name.as_deref(),
                args.update_base,
            )?;
            if args.json {
                print_json(&json!({
                    "id": r.id.to_hex(),
                    "files": r.files,
                    "bytes": r.bytes,
                    "new_blobs": r.new_blobs,
                    "new_bytes": r.new_bytes,
                    "read": r.read,
                    "listed_dirs": r.listed,
                    "incremental": true,
                    "base_updated": r.base_updated,
                    "elapsed_ms": r.elapsed_ms,
                }))?;
            } else {
                println!("{}", r.id);
                eprintln!(
                    "recorded worktree {}: {} files, {} bytes; read {} changed files ({} new \
                     blobs, {} new bytes){} in {} ms",
                    wt.path.display(),
                    r.files,
                    r.bytes,
                    r.read,
                    r.new_blobs,
                    r.new_bytes,
                    if r.base_updated { "; base updated" } else { "" },
                    r.elapsed_ms
                );
            }
            return Ok(Exit::Ok);
        }
    }
    if args.update_base {
        return Err(CliError::with_code(
            format!(
                "--update-base: {} is not a registered worktree",
                dir.display()
            ),
            2,
        ));
    }
    let r = ingest::snapshot_dir(&store, dir, args.name.as_deref())?;
    if args.json {
        print_json(&json!({
            "id": r.id.to_hex(),
            "files": r.files,
            "bytes": r.bytes,
            "new_blobs": r.new_blobs,
            "new_bytes": r.new_bytes,
            "cloned_bytes": r.cloned_bytes,
            "copied_bytes": r.copied_bytes,
            "elapsed_ms": r.elapsed_ms,
        }))?;
    } else {
        println!("{}", r.id);
        eprintln!(
            "recorded {} files, {} bytes ({} new blobs, {} new bytes; {} bytes copied into the \
             store) in {} ms",
            r.files, r.bytes, r.new_blobs, r.new_bytes, r.copied_bytes, r.elapsed_ms
        );
    }
    Ok(Exit::Ok)
}
