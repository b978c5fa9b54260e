//! `cowtree ls`: list snapshots.

use std::collections::HashMap;
use std::path::Path;

use serde_json::json;

use crate::cmd::{open_store, print_json};
use crate::exit::{CmdResult, Exit};

/// List the snapshots in the store.
///
/// Shows each snapshot's id, file count, size and names.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print one JSON object: {"snapshots": [{id, names, files, bytes}]}.
    #[arg(long)]
    json: bool,
    /// List the snapshots and names on this remote instead: {"remote", "snapshots": [{id,
    /// names, manifest_bytes}]} with --json.
    #[arg(long, value_name = "NAME")]
    remote: Option<String>,
}

pub fn run(args: Args, store: Option<&Path>) -> CmdResult {
    let store = open_store(store)?;
    if let Some(remote) = &args.remote {
        return crate::cmd::remote::list_remote(&store, remote, args.json);
    }
    let mut names: HashMap<_, Vec<String>> = HashMap::new();
    for (name, id) in cowtree_store::refs::list(&store)? {
        names.entry(id).or_default().push(name);
    }
    let mut rows = Vec::new();
    for id in store.snapshot_ids()? {
        let m = store.load(&id)?;
        let n = names.remove(&id).unwrap_or_default();
        rows.push((id, n, m.files(), m.bytes()));
    }
    if args.json {
        let list: Vec<_> = rows
            .iter()
            .map(|(id, n, f, b)| json!({"id": id.to_hex(), "names": n, "files": f, "bytes": b}))
            .collect();
        print_json(&json!({ "snapshots": list }))?;
    } else {
        for (id, n, f, b) in rows {
            println!("{id}  {f:>8} files {b:>14} bytes  {}", n.join(" "));
        }
    }
    Ok(Exit::Ok)
}
