//! `cowtree tag`: name a snapshot.

use std::path::Path;

use serde_json::json;

use crate::cmd::{StoreOpt, print_json, store_here};
use crate::exit::{CliError, CmdResult, Exit};

/// Give a snapshot a name.
///
/// Writes refs/NAME in the store. A name that already names a snapshot is refused unless
/// --force, which moves it.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  cowtree tag v1 3f2a9c1e            # name a snapshot by id prefix
  cowtree tag release v1             # a second name for the snapshot v1
  cowtree tag --force latest v2      # move an existing name")]
pub struct Args {
    /// The name: one path component, not starting with '.' or '-'.
    name: String,
    /// Snapshot id, id prefix (8+ hex digits) or existing name.
    snapshot: String,
    /// Move NAME when it already names another snapshot.
    #[arg(long, short = 'f')]
    force: bool,
    /// Print one JSON object: name, id, previous (the id it named before, or null).
    #[arg(long)]
    json: bool,
    /// Print nothing but errors.
    #[arg(long, short = 'q')]
    quiet: bool,
    #[command(flatten)]
    store: StoreOpt,
}

pub fn run(args: Args, top: Option<&Path>) -> CmdResult {
    let store = store_here(&args.store.clone().or(top))?;
    let id = cowtree_store::refs::resolve(&store, &args.snapshot)?;
    cowtree_store::refs::validate_name(&args.name)?;
    let previous = cowtree_store::refs::get(&store, &args.name)?;
    if let Some(old) = previous
        && !args.force
    {
        return Err(CliError::new(format!(
            "name {:?} already names snapshot {}; pass --force to move it to {}",
            args.name,
            &old.to_hex()[..12],
            &id.to_hex()[..12]
        )));
    }
    cowtree_store::refs::set(&store, &args.name, &id)?;
    if args.json {
        print_json(&json!({
            "name": args.name,
            "id": id.to_hex(),
            "previous": previous.map(|h| h.to_hex()),
        }))?;
    } else if !args.quiet {
        println!("{} -> {id}", args.name);
    }
    Ok(Exit::Ok)
}
