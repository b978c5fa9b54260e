//! `cowtree tag`: name a snapshot.

use std::path::Path;

use crate::cmd::open_store;
use crate::exit::{CmdResult, Exit};

/// Give a snapshot a name.
///
/// Writes refs/NAME in the store, replacing what the name pointed at.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The name: one path component, not starting with '.' or '-'.
    name: String,
    /// Snapshot id, id prefix (8+ hex digits) or existing name.
    snapshot: String,
}

pub fn run(args: Args, store: Option<&Path>) -> CmdResult {
    let store = open_store(store)?;
    let id = cowtree_store::refs::resolve(&store, &args.snapshot)?;
    cowtree_store::refs::set(&store, &args.name, &id)?;
    println!("{} -> {id}", args.name);
    Ok(Exit::Ok)
}
