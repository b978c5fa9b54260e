//! `cowtree stores rm PATH...`: delete a store, its read-only tree subvolumes included, and
//! forget it (see `cowtree_store::remove`).

use std::path::{Path, PathBuf};
use std::time::Instant;

use cowtree_fs::subvolume::Deleted;
use cowtree_store::discover;
use cowtree_store::remove::{self, State};
use serde_json::json;

use crate::cmd::print_json;
use crate::exit::{CliError, CmdResult, Exit};
use crate::interrupt::{self, Tell};
use crate::units::count;

/// Delete stores: everything in them, their btrfs tree subvolumes too, and their line in the
/// list of stores.
///
/// `rm -rf` cannot delete a store on btrfs: its snapshots' trees are read-only subvolumes.
/// This deletes each subvolume in one call where the kernel permits (root, or a filesystem
/// mounted with `user_subvol_rm_allowed`), else clears its read-only flag and removes its files,
/// then everything else, then the directory.
///
/// A store that registered worktrees (still on disk) need is refused, naming them: remove them
/// first (`cowtree worktree rm DIR`), or add --force to keep them as plain directories that no
/// store knows. A store another cowtree command is using (its lock is held) is refused too.
///
/// Before deleting anything the store is made unusable (its `format` file is replaced by a
/// `removing` marker), so an interrupted removal leaves a store every command refuses, saying
/// so; running `cowtree stores rm PATH` again finishes it. It also removes what `rm -rf` left of
/// a store, and refuses a directory holding anything a store never holds.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  cowtree stores rm /mnt/btrfs/.cowtree-store         # delete that store
  cowtree stores rm --force ~/.local/share/cowtree    # even though worktrees are registered
  cowtree stores rm --json /mnt/data/.cowtree-store   # what was deleted, and how")]
pub struct Args {
    /// The stores' directories.
    #[arg(required = true, value_name = "PATH")]
    paths: Vec<PathBuf>,
    /// Delete the store even though registered worktrees need it; they stay as they are, as
    /// plain directories (`cowtree status` in them then finds no store).
    #[arg(long, short = 'f')]
    force: bool,
    /// Print one JSON object: {"removed": [{path, was, subvolumes: [{path, method, reason}],
    /// worktrees_left, forgotten, elapsed_ms}]} (was: store, being-removed, remains, empty,
    /// missing).
    #[arg(long)]
    json: bool,
    /// Print nothing but errors.
    #[arg(long, short = 'q')]
    quiet: bool,
}

pub fn run(args: Args) -> CmdResult {
    let mut rows = Vec::new();
    for p in &args.paths {
        let row = remove_one(p, args.force)?;
        if !args.json && !args.quiet {
            print_row(&row);
        }
        rows.push(row);
    }
    if args.json {
        print_json(&json!({ "removed": rows.iter().map(Row::to_json).collect::<Vec<_>>() }))?;
    }
    Ok(Exit::Ok)
}

/// What was done to one path.
struct Row {
    path: PathBuf,
    /// `None`: nothing was there.
    was: Option<State>,
    subvolumes: Vec<(PathBuf, Deleted)>,
    worktrees_left: Vec<PathBuf>,
    forgotten: bool,
    elapsed_ms: u128,
}

impl Row {
    fn to_json(&self) -> serde_json::Value {
        let subvolumes: Vec<_> = self
            .subvolumes
            .iter()
            .map(|(p, how)| {
                json!({"path": p, "method": how.as_str(), "reason": match how {
                    Deleted::Ioctl => None,
                    Deleted::RemovedTree { because } => Some(because.as_str()),
                }})
            })
            .collect();
        json!({
            "path": self.path,
            "was": self.was.map_or("missing", State::as_str),
            "subvolumes": subvolumes,
            "worktrees_left": self.worktrees_left,
            "forgotten": self.forgotten,
            "elapsed_ms": self.elapsed_ms,
        })
    }
}

fn remove_one(path: &Path, force: bool) -> Result<Row, CliError> {
    let started = Instant::now();
    let abs = discover::absolute(path)
        .map_err(|e| CliError::new(format!("{}: {e}", path.display())).path(path))?;
    let mut row = Row {
        path: abs.clone(),
        was: None,
        subvolumes: Vec::new(),
        worktrees_left: Vec::new(),
        forgotten: false,
        elapsed_ms: 0,
    };
    if abs.symlink_metadata().is_err() {
        // Nothing there: a store deleted by other means is only forgotten.
        row.forgotten = forget(&abs)?;
        if !row.forgotten {
            return Err(CliError::not_found(format!(
                "no store at {} (`cowtree stores` lists the known ones)",
                abs.display()
            ))
            .path(&abs));
        }
        return Ok(row);
    }
    let mut removal = remove::examine(&abs)?;
    row.was = Some(removal.state());
    if let Some(refusal) = removal.refusal() {
        if !force {
            return Err(refusal.into());
        }
        row.worktrees_left = removal.worktrees().to_vec();
    }
    removal.mark()?;
    // From here an interrupted removal leaves a store every command refuses; say how to finish.
    let again = format!(
        "cowtree stores rm {}",
        cowtree_store::error::shell_word(&abs)
    );
    interrupt::tell(Tell::Exists {
        path: abs.clone(),
        yes: format!(
            "{} is partly removed (and refused by every command): `{again}` finishes removing it",
            abs.display()
        ),
        no: format!("{} was removed", abs.display()),
    });
    let removed = removal.finish().map_err(|e| {
        CliError::new(format!(
            "{e}; the store is partly removed: `{again}` finishes removing it"
        ))
        .kind(crate::exit::Kind::Io)
        .path(&abs)
    })?;
    row.subvolumes = removed.subvolumes;
    if let Some(outside) = discover::outside_registry(&abs)
        && outside.exists()
    {
        std::fs::remove_dir_all(&outside).map_err(|e| {
            CliError::new(format!(
                "remove this user's registry of the store, {}: {e}",
                outside.display()
            ))
            .path(&outside)
        })?;
    }
    row.forgotten = forget(&abs)?;
    row.elapsed_ms = started.elapsed().as_millis();
    Ok(row)
}

fn forget(path: &Path) -> Result<bool, CliError> {
    discover::forget(path).map_err(|e| {
        let file = discover::known_stores_file().unwrap_or_default();
        CliError::new(format!(
            "forget {} in {}: {e}",
            path.display(),
            file.display()
        ))
        .path(file)
    })
}

fn print_row(row: &Row) {
    let p = row.path.display();
    let Some(was) = row.was else {
        println!("{p}: not there; removed it from the list of stores");
        return;
    };
    let what = match was {
        State::Store => format!("removed store {p}"),
        State::BeingRemoved => {
            format!("finished removing store {p} (its removal had stopped partway)")
        }
        State::Remains => format!("removed what was left of a store at {p}"),
        State::Empty => format!("removed the empty directory {p}"),
    };
    let fast = row
        .subvolumes
        .iter()
        .filter(|(_, how)| *how == Deleted::Ioctl)
        .count();
    let slow: Vec<_> = row
        .subvolumes
        .iter()
        .filter_map(|(_, how)| match how {
            Deleted::RemovedTree { because } => Some(*because),
            Deleted::Ioctl => None,
        })
        .collect();
    let mut notes = Vec::new();
    if fast > 0 {
        notes.push(format!(
            "{} deleted in one call each",
            count(fast as u64, "tree subvolume", "tree subvolumes")
        ));
    }
    if let Some(because) = slow.first() {
        notes.push(format!(
            "{} deleted file by file ({}; an O(1) delete needs root or a filesystem mounted \
             with user_subvol_rm_allowed)",
            count(slow.len() as u64, "tree subvolume", "tree subvolumes"),
            because.describe()
        ));
    }
    if notes.is_empty() {
        println!("{what}");
    } else {
        println!("{what}: {}", notes.join("; "));
    }
    if !row.worktrees_left.is_empty() {
        println!(
            "kept {} as plain directories no store knows: {}",
            count(row.worktrees_left.len() as u64, "worktree", "worktrees"),
            row.worktrees_left
                .iter()
                .map(|w| w.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
}
