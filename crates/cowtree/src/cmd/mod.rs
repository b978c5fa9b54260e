//! One module per subcommand, and what they share: finding the store, the worktree, output.

pub mod checkout;
pub mod clone;
pub mod clone_preserve;
pub mod clone_record;
pub mod completions;
pub mod dedupe;
pub mod du;
pub mod gc;
pub mod git;
pub mod git_error;
pub mod hook;
pub mod ls;
pub mod man;
pub mod pool;
pub mod probe;
pub mod pull;
pub mod push;
pub mod remote;
pub mod remote_error;
pub mod reset;
pub mod retention;
pub mod rm;
pub mod show;
pub mod snapshot;
pub mod status;
pub mod stores;
pub mod stores_rm;
pub mod subvolume;
pub mod switch;
pub mod tag;
pub mod verify;
pub mod worktree;
pub mod worktrees;

use std::path::{Path, PathBuf};

use cowtree_store::Store;
use cowtree_store::discover::{self, Choice, Reason};
use cowtree_store::source::Source;
use cowtree_worktree::Worktree;

use crate::exit::CliError;

/// `--store`, for the commands that use a store.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct StoreOpt {
    /// The store directory. Default: $COWTREE_STORE, else the store that holds the worktree,
    /// else the store of the tree's filesystem (see `cowtree stores`).
    #[arg(long, value_name = "PATH")]
    pub store: Option<PathBuf>,
}

impl StoreOpt {
    /// `--store` given to the subcommand, else to `cowtree` itself (`cowtree --store P ls`).
    pub fn or(self, top: Option<&Path>) -> StoreOpt {
        StoreOpt {
            store: self.store.or_else(|| top.map(Path::to_path_buf)),
        }
    }

    /// The store named by `--store` or `COWTREE_STORE`, and which of the two named it.
    pub fn explicit(&self) -> Option<(PathBuf, &'static str)> {
        match &self.store {
            Some(p) => Some((p.clone(), "--store")),
            None => discover::from_env().map(|p| (p, "COWTREE_STORE")),
        }
    }
}

/// `--jobs`, for the commands that run worker pools.
#[derive(Debug, Clone, Copy, Default, clap::Args)]
pub struct JobsOpt {
    /// Size the worker pools for N cores (default, or 0: all cores). Each pool keeps its rule
    /// per core (e.g. ingest runs two workers per core); 1 makes the work gentlest on a busy
    /// machine.
    #[arg(long, short = 'j', value_name = "N")]
    pub jobs: Option<usize>,
}

impl JobsOpt {
    /// Applies `--jobs` to every pool built from now on.
    pub fn apply(self) {
        if let Some(n) = self.jobs.filter(|&n| n > 0) {
            // Also sizes rayon's global pool (switch, reset, verify run on it); it is not built
            // yet, as nothing has run on it.
            cowtree_fs::workers::limit_cores(n);
        }
    }
}

/// Opens an existing store; "no store at PATH" when there is none (read-only commands never
/// create one).
pub fn open_existing(root: &Path) -> Result<Store, CliError> {
    if !discover::exists(root) {
        if let Some(e) = cowtree_store::remove::leftover(root) {
            return Err(e.into());
        }
        return Err(CliError::new(format!(
            "no store at {} (a snapshot or a checkout creates one; `cowtree stores` lists the \
             known ones)",
            root.display()
        )));
    }
    let store = Store::open(root)?;
    let _ = discover::remember(store.root());
    Ok(store)
}

/// Opens the store at `root` for a command that writes, creating it when missing and then
/// saying where and why (unless `quiet`).
fn open_for_write(root: &Path, why: &str, quiet: bool) -> Result<Store, CliError> {
    let created = !discover::exists(root);
    let store = Store::open(root)?;
    if created && !quiet {
        eprintln!("cowtree: created store {} ({why})", root.display());
    }
    let _ = discover::remember(store.root());
    Ok(store)
}

pub fn cwd() -> Result<PathBuf, CliError> {
    std::env::current_dir().map_err(|e| CliError::new(format!("current directory: {e}")))
}

/// The per-filesystem choice for `tree`, as a reason sentence for a new store.
fn created_because(choice: &Choice, tree: &Path) -> String {
    match choice.reason {
        Reason::Default => format!("the default store; on the filesystem of {}", tree.display()),
        _ => format!("for {}: {}", tree.display(), choice.explain(tree)),
    }
}

/// The store for recording or checking out the tree at `tree` (a command that writes): the
/// explicit one, else the one a marker names, else the store of the tree's filesystem.
pub fn store_for_tree(opt: &StoreOpt, tree: &Path, quiet: bool) -> Result<Store, CliError> {
    store_for_tree_why(opt, tree, quiet).map(|(store, _)| store)
}

/// [`store_for_tree`], and why that store: "named by --store", "named by COWTREE_STORE", "it
/// holds the worktree around DIR", or the per-filesystem choice's reason.
pub fn store_for_tree_why(
    opt: &StoreOpt,
    tree: &Path,
    quiet: bool,
) -> Result<(Store, String), CliError> {
    let chosen = choose_store_for_tree(opt, tree)?;
    let store = match &chosen.created_because {
        Some(because) => open_for_write(&chosen.root, because, quiet)?,
        None => open_existing(&chosen.root)?,
    };
    Ok((store, chosen.why))
}

/// The store [`store_for_tree`] picks for `tree`, chosen but not opened (nor created).
pub struct Chosen {
    /// Its root.
    pub root: PathBuf,
    /// Why that store, as a clause ("named by --store", ...).
    pub why: String,
    /// What to say when it is created (None: it must exist).
    created_because: Option<String>,
}

/// Chooses the store for `tree` as [`store_for_tree`] does, creating nothing.
pub fn choose_store_for_tree(opt: &StoreOpt, tree: &Path) -> Result<Chosen, CliError> {
    if let Some((root, by)) = opt.explicit() {
        return Ok(Chosen {
            root,
            created_because: Some(format!("named by {by}")),
            why: format!("it was named by {by}"),
        });
    }
    if let Some((root, dir)) = discover::marked_store(tree)
        && discover::exists(&root)
    {
        return Ok(Chosen {
            root,
            why: format!("it holds the worktree {}", dir.display()),
            created_because: None,
        });
    }
    let choice = discover::store_for_tree(tree)?;
    Ok(Chosen {
        why: match choice.reason {
            Reason::Default | Reason::Existing => "it is the store of that filesystem".to_string(),
            _ => choice.explain(tree),
        },
        created_because: Some(created_because(&choice, tree)),
        root: choice.root,
    })
}

/// The store for commands that act on a store as a whole (ls, show, tag, rm, gc, verify,
/// worktree list): the explicit one, else the one holding the worktree around the current
/// directory, else the store of its filesystem, else the default one. Never creates a store.
pub fn store_here(opt: &StoreOpt) -> Result<Store, CliError> {
    if let Some((root, _)) = opt.explicit() {
        return open_existing(&root);
    }
    open_existing(&discover::store_here(&cwd()?)?)
}

/// Where a checkout to `dst` gets `snapshot`, as `cowtree_store::source` decides: the store
/// that has it, opened, with its id; or, when `pull` allows one and the store that should
/// serve the checkout lacks it, the store to pull it into (created when missing, saying why,
/// unless `quiet`) and no id.
pub fn checkout_store(
    opt: &StoreOpt,
    dst: &Path,
    snapshot: &str,
    pull: bool,
    quiet: bool,
) -> Result<(Store, Option<cowtree_store::Hash>), CliError> {
    let named = opt.explicit();
    let source = cowtree_store::source::checkout_source(
        named.as_ref().map(|(p, _)| p.as_path()),
        dst,
        snapshot,
        pull,
    )?;
    Ok(match source {
        Source::Store { root, id, .. } => (open_existing(&root)?, Some(id)),
        Source::Pull { into, choice } => {
            let why = match (&choice, &named) {
                (Some(c), _) => created_because(c, dst),
                (None, Some((_, by))) => format!("named by {by}"),
                (None, None) => "to pull into".to_string(),
            };
            (open_for_write(&into, &why, quiet)?, None)
        }
    })
}

/// The registered worktree whose root is `dir` (`exact`) or contains `dir`, and its store:
/// the explicit store, else the store its marker names, else the first store that has it.
pub fn find_worktree(
    opt: &StoreOpt,
    dir: &Path,
    exact: bool,
) -> Result<(Store, Worktree), CliError> {
    let find = |store: &Store| -> Result<Option<Worktree>, CliError> {
        if exact {
            return Ok(cowtree_worktree::registry::lookup(store, dir)?);
        }
        let abs = std::fs::canonicalize(dir)
            .map_err(|e| CliError::new(format!("{}: {e}", dir.display())))?;
        for a in abs.ancestors() {
            if let Some(wt) = cowtree_worktree::registry::lookup(store, a)? {
                return Ok(Some(wt));
            }
        }
        Ok(None)
    };
    if let Some((root, _)) = opt.explicit() {
        let store = open_existing(&root)?;
        let wt = if exact {
            cowtree_worktree::registry::open(&store, dir)?
        } else {
            cowtree_worktree::registry::containing(&store, dir)?
        };
        return Ok((store, wt));
    }
    let list = discover::candidates(dir);
    for root in &list {
        let store = open_existing(root)?;
        if let Some(wt) = find(&store)? {
            return Ok((store, wt));
        }
    }
    let place = if exact { "a" } else { "inside a" };
    Err(CliError::not_found(format!(
        "{} is not {place} registered worktree (searched {}; `cowtree checkout --help` says \
         how to make one, or name its store with --store)",
        dir.display(),
        if list.is_empty() {
            "no store: none exists yet".to_string()
        } else {
            format!(
                "the stores {}",
                list.iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        }
    )))
}

/// The worktree named by a positional DST or `-C DIR` (its root), else the one containing the
/// current directory.
pub fn worktree_arg(opt: &StoreOpt, named: Option<&Path>) -> Result<(Store, Worktree), CliError> {
    match named {
        Some(d) => find_worktree(opt, d, true),
        None => find_worktree(opt, &cwd()?, false),
    }
}

/// Prints one JSON object on stdout.
/// The warning of `switch` and `reset` when they wrote `n` entries of a version 2 snapshot
/// (`snapshot --archive`) `id` as a plain checkout writes them: what the snapshot records of
/// them (owners, set-ID bits, attributes, hardlinks) is not given; the command that makes a
/// worktree with it, beside `worktree`, is printed.
pub fn warn_archive_not_given(
    command: &str,
    n: u64,
    store: &Path,
    id: &cowtree_store::Hash,
    worktree: &Path,
) {
    if n == 0 {
        return;
    }
    let short = &id.to_hex()[..12];
    let mut beside = worktree.as_os_str().to_owned();
    beside.push(".archive");
    let checkout =
        cowtree_store::error::command(store, &["checkout", "--archive", short], Path::new(&beside));
    eprintln!(
        "cowtree: warning: {command} wrote {} as a plain checkout writes them (yours, without \
         the owners, set-ID bits, attributes and hardlinks snapshot {short} records with \
         --archive); `{checkout}` makes a worktree with them",
        crate::units::count(n, "entry", "entries")
    );
}

pub fn print_json(v: &impl serde::Serialize) -> Result<(), CliError> {
    let s = serde_json::to_string(v).map_err(|e| CliError::new(e.to_string()))?;
    println!("{s}");
    Ok(())
}
