//! One module per subcommand.

pub mod checkout;
pub mod clone;
pub mod dedupe;
pub mod du;
pub mod gc;
pub mod git;
pub mod ls;
pub mod probe;
pub mod reset;
pub mod rm;
pub mod show;
pub mod snapshot;
pub mod status;
pub mod switch;
pub mod tag;
pub mod verify;
pub mod worktree;
pub mod worktrees;

use std::path::Path;

use cowtree_store::Store;

use crate::exit::CliError;

/// Opens (creating on first use) the store chosen by `--store`, `COWTREE_STORE`,
/// `XDG_DATA_HOME` or `HOME`.
pub fn open_store(explicit: Option<&Path>) -> Result<Store, CliError> {
    let root = cowtree_store::store::locate(explicit)?;
    Ok(Store::open(&root)?)
}

/// Prints one JSON object on stdout.
pub fn print_json(v: &impl serde::Serialize) -> Result<(), CliError> {
    let s = serde_json::to_string(v).map_err(|e| CliError::new(e.to_string()))?;
    println!("{s}");
    Ok(())
}

/// The registered worktree at `dst`, or (without `dst`) the one containing the current
/// directory.
pub fn worktree_at(
    store: &Store,
    dst: Option<&Path>,
) -> Result<cowtree_worktree::Worktree, CliError> {
    Ok(match dst {
        Some(d) => cowtree_worktree::registry::open(store, d)?,
        None => {
            let cwd = std::env::current_dir()?;
            cowtree_worktree::registry::containing(store, &cwd)?
        }
    })
}
