//! `cowtree subvolume convert|delete|list`: btrfs subvolumes as cowtree sees them.

use std::path::PathBuf;

use crate::exit::CmdResult;

/// btrfs subvolumes: make a directory one, delete them, list them.
///
/// A btrfs subvolume is copied whole, in one snapshot, by `cowtree clone` (and commands that
/// make worktrees); a plain directory is copied file by file. `convert` turns a directory into
/// a subvolume in place so that it can be copied whole from then on; `list` shows the
/// subvolumes below a directory (the ones a snapshot would leave empty); `delete` removes
/// subvolumes, in one call where the kernel permits and by removing their files where it
/// does not. `cowtree probe PATH` says what this user may do with subvolumes there
/// (docs/subvolumes.md).
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  cowtree subvolume convert ~/src/app       # make it a subvolume: `cowtree clone` then snapshots it
  cowtree subvolume list ~/src              # subvolumes below ~/src
  cowtree subvolume delete /work/app-a      # delete one (O(1) where permitted)
  cowtree probe ~/src                       # can this user snapshot and delete here?")]
pub struct Args {
    #[command(subcommand)]
    command: Sub,
}

#[derive(Debug, clap::Subcommand)]
enum Sub {
    Convert(ConvertArgs),
    Delete(DeleteArgs),
    List(ListArgs),
}

/// Turn a directory into a btrfs subvolume in place.
///
/// Builds a subvolume beside DIR (`.<name>.cowtree-convert.<pid>.<random>`), clones DIR's
/// contents into it (sharing all data: no file data is written), gives every entry DIR's
/// owner, group, mode, times, extended attributes and hardlinks, swaps the two with one
/// atomic rename (`renameat2(RENAME_EXCHANGE)`) and removes the old tree. Entries get new
/// inode numbers (a stat cache, or git's index, sees them as touched once).
///
/// Refused, with nothing changed: on a filesystem other than btrfs; with a subvolume or a
/// mount point below DIR, or a special file in it; for a caller other than root when an entry
/// belongs to another user; and when anything in DIR changed during the copy (the original
/// stays in place until the swap: stop what writes to it and convert again). A directory that
/// is already a subvolume's root is left alone. Interrupted or killed, DIR is the original or
/// the whole copy, and the next convert of DIR removes what was left beside it.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  cowtree subvolume convert ~/src/app           # then `cowtree clone ~/src/app DST` is one snapshot
  cowtree subvolume convert --json ~/src/app    # path, converted, entries, elapsed_ms")]
struct ConvertArgs {
    /// The directory.
    dir: PathBuf,
    /// Print one JSON object: path, converted (false when it already was a subvolume),
    /// entries, cloned, copied, elapsed_ms.
    #[arg(long)]
    json: bool,
    /// Print nothing but errors.
    #[arg(long, short = 'q')]
    quiet: bool,
    /// Worker threads for the copy (default: one per core).
    #[arg(long, short = 'j', value_name = "N", default_value_t = 0)]
    jobs: usize,
}

/// Delete btrfs subvolumes, with everything in them.
///
/// Each is deleted with one ioctl where the kernel permits it (root, or a filesystem mounted
/// with `user_subvol_rm_allowed`): O(1), the space freed in the background. Elsewhere (an
/// unprivileged user without that option) its read-only flag is cleared and its files are
/// removed, then its empty root: as long as `rm -rf` takes. Subvolumes nested in it go first.
/// Says which way each went. A PATH that is not a subvolume's root is refused, untouched.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  cowtree subvolume delete /work/app-a /work/app-b
  cowtree subvolume delete --json /work/app-a    # [{path, method: ioctl | removed-tree, reason}]")]
struct DeleteArgs {
    /// The subvolumes (their root directories).
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// Print one JSON array: path, method ("ioctl" or "removed-tree"), reason (why not the
    /// ioctl).
    #[arg(long)]
    json: bool,
    /// Print nothing but errors.
    #[arg(long, short = 'q')]
    quiet: bool,
}

/// List the btrfs subvolumes below a directory, at any depth.
///
/// These are what a snapshot of the directory's subvolume would hold as empty directories, so
/// `cowtree clone` copies a tree with any of them file by file.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  cowtree subvolume list ~/src
  cowtree subvolume list --json ~/src    # {path, subvolume, id, read_only, below: [{path, id, read_only}]}")]
struct ListArgs {
    /// The directory.
    dir: PathBuf,
    /// Print one JSON object: path, subvolume (whether DIR is a subvolume's root), id (of the
    /// subvolume DIR is in), read_only, below (each subvolume: path, id, read_only).
    #[arg(long)]
    json: bool,
}

/// Linux: the btrfs ioctls. Windows: no such thing; the command says so in one line.
pub fn run(args: Args) -> CmdResult {
    #[cfg(unix)]
    return btrfs::run(args);
    #[cfg(windows)]
    {
        let _ = args;
        Err(crate::exit::CliError::unsupported(
            "subvolumes are btrfs's (Linux): Windows has none; clone, checkout and git worktree \
             add copy file by file there, block-cloned on ReFS and Dev Drives",
        ))
    }
}

#[cfg(unix)]
mod btrfs {
    use std::path::{Path, PathBuf};

    use cowtree_fs::dir::Dir;
    use cowtree_fs::subvolume::{self, At, Deleted};
    use cowtree_link::convert::{ConvertError, convert};
    use serde_json::json;

    use crate::cmd::print_json;
    use crate::exit::{CliError, CmdResult, Exit};

    use super::{Args, ConvertArgs, DeleteArgs, ListArgs, Sub};

    pub fn run(args: Args) -> CmdResult {
        match args.command {
            Sub::Convert(a) => run_convert(a),
            Sub::Delete(a) => run_delete(a),
            Sub::List(a) => run_list(a),
        }
    }

    fn run_convert(a: ConvertArgs) -> CmdResult {
        let r = convert(&a.dir, a.jobs).map_err(|e| convert_error(e, &a.dir))?;
        if a.json {
            print_json(&json!({
                "path": r.path,
                "converted": !r.already,
                "entries": r.entries,
                "cloned": r.cloned,
                "copied": r.copied,
                "elapsed_ms": u64::try_from(r.elapsed.as_millis()).unwrap_or(u64::MAX),
            }))?;
        } else if !a.quiet {
            if r.already {
                println!("{} is already a subvolume: nothing to do", r.path.display());
            } else {
                println!(
                    "{}: now a subvolume ({} entries, {} files cloned{}) in {:.2} s",
                    r.path.display(),
                    r.entries,
                    r.cloned,
                    if r.copied > 0 {
                        format!(", {} copied", r.copied)
                    } else {
                        String::new()
                    },
                    r.elapsed.as_secs_f64()
                );
            }
        }
        Ok(Exit::Ok)
    }

    fn convert_error(e: ConvertError, dir: &Path) -> CliError {
        let path = match &e {
            ConvertError::NotBtrfs { path, .. }
            | ConvertError::NotADirectory(path)
            | ConvertError::Nested { path, .. }
            | ConvertError::Special(path)
            | ConvertError::ForeignOwner { path, .. }
            | ConvertError::Changed(path) => path.clone(),
            _ => dir.to_path_buf(),
        };
        let text = match &e {
            ConvertError::Link(_) | ConvertError::Subvolume(_) | ConvertError::Io { .. } => {
                format!("convert {}: {e} (nothing was changed)", dir.display())
            }
            _ => e.to_string(),
        };
        CliError::new(text).path(path)
    }

    fn open_parent(path: &Path) -> Result<(PathBuf, Dir, std::ffi::OsString), CliError> {
        let name = path
            .file_name()
            .ok_or_else(|| {
                CliError::with_code(format!("{} must end in a name", path.display()), 2)
            })?
            .to_os_string();
        let parent = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let dir = Dir::open(&parent).map_err(|e| CliError::new(e.to_string()).path(&parent))?;
        Ok((parent, dir, name))
    }

    fn run_delete(a: DeleteArgs) -> CmdResult {
        let mut out = Vec::new();
        for p in &a.paths {
            let (parent_path, parent, name) = open_parent(p)?;
            let how = subvolume::delete(At::new(&parent, &parent_path), &name)
                .map_err(|e| CliError::new(e.to_string()).path(p))?;
            let reason = match how {
                Deleted::Ioctl => None,
                Deleted::RemovedTree { because } => Some(because),
            };
            if !a.json && !a.quiet {
                match reason {
                    None => println!("deleted subvolume {} (one call)", p.display()),
                    Some(c) => println!(
                        "deleted subvolume {} by removing its files (the one-call delete: {}; root or the user_subvol_rm_allowed mount option allows it)",
                        p.display(),
                        c.describe()
                    ),
                }
            }
            out.push(json!({
                "path": p,
                "method": how.as_str(),
                "reason": reason.map(|c| c.as_str()),
            }));
        }
        if a.json {
            print_json(&out)?;
        }
        Ok(Exit::Ok)
    }

    fn run_list(a: ListArgs) -> CmdResult {
        let dir = Dir::open(&a.dir).map_err(|e| CliError::new(e.to_string()).path(&a.dir))?;
        let at = At::new(&dir, &a.dir);
        let err = |e: subvolume::SubvolumeError| CliError::new(e.to_string()).path(&a.dir);
        if !subvolume::is_btrfs(at).map_err(err)? {
            let fs = cowtree_fs::fstype::fs_type(&dir)
                .map(|t| t.name())
                .unwrap_or("unknown");
            return Err(CliError::new(format!(
                "{} is on {fs}, not btrfs: there are no subvolumes",
                a.dir.display()
            ))
            .path(&a.dir));
        }
        let is_root = subvolume::is_root(at).map_err(err)?;
        let id = subvolume::id(at).map_err(err)?;
        let ro = if is_root {
            Some(subvolume::read_only(at).map_err(err)?)
        } else {
            None
        };
        let mut below = Vec::new();
        for n in subvolume::below(at).map_err(err)? {
            let p = a.dir.join(&n.path);
            let ro = Dir::open(&p)
                .ok()
                .and_then(|d| subvolume::read_only(At::new(&d, &p)).ok());
            below.push((n, ro));
        }
        if a.json {
            print_json(&json!({
                "path": a.dir,
                "subvolume": is_root,
                "id": id,
                "read_only": ro,
                "below": below.iter().map(|(n, ro)| json!({
                    "path": n.path, "id": n.id, "read_only": ro,
                })).collect::<Vec<_>>(),
            }))?;
            return Ok(Exit::Ok);
        }
        println!(
            "{}: {} (subvolume {id}{})",
            a.dir.display(),
            if is_root {
                "a subvolume's root"
            } else {
                "a directory inside a subvolume"
            },
            if ro == Some(true) { ", read-only" } else { "" }
        );
        if below.is_empty() {
            println!("no subvolumes below it");
        }
        for (n, ro) in &below {
            println!(
                "  {} (subvolume {}{})",
                n.path.display(),
                n.id,
                if *ro == Some(true) { ", read-only" } else { "" }
            );
        }
        Ok(Exit::Ok)
    }
}
