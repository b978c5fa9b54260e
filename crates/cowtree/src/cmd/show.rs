//! `cowtree show`: print a snapshot's manifest.

use std::path::Path;

use cowtree_store::interchange;
use cowtree_store::manifest::{Data, show};

use crate::cmd::{StoreOpt, print_json, store_here};
use crate::exit::{CmdResult, Exit};
use crate::units::{bytes, count};

/// Print a snapshot's entries: kind, size, blob or link target, path.
///
/// --json prints the manifest interchange format (docs/manifest.md), which `cowtree snapshot
/// --from-json` reads back.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  cowtree show v1                   # every entry of the snapshot named v1
  cowtree show --json v1 > v1.json  # the interchange format (snapshot --from-json reads it)")]
pub struct Args {
    /// Snapshot id, id prefix (8+ hex digits) or name.
    snapshot: String,
    /// Print the manifest as one JSON object (format "cowtree-manifest", version 1).
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    store: StoreOpt,
}

pub fn run(args: Args, top: Option<&Path>) -> CmdResult {
    let store = store_here(&args.store.clone().or(top))?;
    let id = cowtree_store::refs::resolve(&store, &args.snapshot)?;
    let m = store.load(&id)?;
    if args.json {
        print_json(&interchange::to_json(&m, &id))?;
        return Ok(Exit::Ok);
    }
    println!(
        "snapshot {id}: {}, {}",
        count(m.files(), "file", "files"),
        bytes(m.bytes())
    );
    for e in m.entries() {
        let what = match &e.data {
            Data::Blob { hash, .. } => hash.to_hex()[..16].to_string(),
            Data::Target(t) => format!("-> {}", show(t)),
            Data::None => String::new(),
        };
        println!(
            "{:<10} {:>12} {} {}",
            e.kind.as_str(),
            e.size(),
            show(&e.path),
            what
        );
    }
    Ok(Exit::Ok)
}
