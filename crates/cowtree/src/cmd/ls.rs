//! `cowtree ls`: list snapshots.

use std::collections::HashMap;
use std::path::Path;

use serde_json::json;

use crate::cmd::{StoreOpt, print_json, store_here};
use crate::exit::{CmdResult, Exit};
use crate::units::{bytes, date};

/// List the snapshots in the store, newest first.
///
/// Shows each snapshot's id, when it was recorded (UTC), its file count and size, its names
/// and the tree it was recorded from. Says so when the store holds no snapshot.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  cowtree ls                        # the store of this directory's worktree or filesystem
  cowtree ls --store /mnt/xfs/.cowtree-store
  cowtree ls --json | jq -r '.snapshots[0].id'   # the newest snapshot's id")]
pub struct Args {
    /// Print one JSON object: {"store", "snapshots": [{id, names, files, bytes, recorded_unix,
    /// source}]}, newest first.
    #[arg(long)]
    json: bool,
    /// List the snapshots and names on this remote instead: {"remote", "snapshots": [{id,
    /// names, manifest_bytes}]} with --json.
    #[arg(long, value_name = "NAME")]
    remote: Option<String>,
    #[command(flatten)]
    store: StoreOpt,
}

struct Row {
    id: String,
    names: Vec<String>,
    files: u64,
    bytes: u64,
    unix: u64,
    /// Position in the history (later is newer within one second).
    order: usize,
    source: Option<String>,
}

pub fn run(args: Args, top: Option<&Path>) -> CmdResult {
    let store = store_here(&args.store.clone().or(top))?;
    if let Some(remote) = &args.remote {
        return crate::cmd::remote::list_remote(&store, remote, args.json);
    }
    let mut names: HashMap<_, Vec<String>> = HashMap::new();
    for (name, id) in cowtree_store::refs::list(&store)? {
        names.entry(id).or_default().push(name);
    }
    let history = cowtree_store::history::latest(&store)?;
    let mut rows = Vec::new();
    for id in store.snapshot_ids()? {
        // The totals alone: no entry is held.
        let (files, bytes) = store.open_snapshot(&id)?.file_totals()?;
        let hex = id.to_hex();
        let (order, seen) = match history.get(&hex) {
            Some((i, h)) => (*i, Some(h)),
            None => (0, None),
        };
        // Snapshots recorded before the history existed: the manifest file's time.
        let unix = seen.map(|h| h.unix).unwrap_or_else(|| {
            store
                .root()
                .join("snapshots")
                .join(&hex)
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_secs())
        });
        rows.push(Row {
            names: names.remove(&id).unwrap_or_default(),
            files,
            bytes,
            unix,
            order,
            source: seen.and_then(|h| h.source.clone()),
            id: hex,
        });
    }
    rows.sort_by(|a, b| {
        (b.unix, b.order)
            .cmp(&(a.unix, a.order))
            .then_with(|| a.id.cmp(&b.id))
    });
    if args.json {
        let list: Vec<_> = rows
            .iter()
            .map(|r| {
                json!({"id": r.id, "names": r.names, "files": r.files, "bytes": r.bytes,
                       "recorded_unix": r.unix, "source": r.source})
            })
            .collect();
        print_json(&json!({ "store": store.root(), "snapshots": list }))?;
        return Ok(Exit::Ok);
    }
    if rows.is_empty() {
        println!(
            "no snapshots in the store {} (`cowtree snapshot --help` says how to record one)",
            store.root().display()
        );
        return Ok(Exit::Ok);
    }
    println!(
        "{:<12}  {:<16}  {:>8}  {:>10}  {:<12}  SOURCE",
        "ID", "RECORDED (UTC)", "FILES", "SIZE", "NAMES"
    );
    for r in rows {
        println!(
            "{:<12}  {:<16}  {:>8}  {:>10}  {:<12}  {}",
            &r.id[..12],
            date(r.unix),
            r.files,
            bytes(r.bytes),
            if r.names.is_empty() {
                "-".to_string()
            } else {
                r.names.join(",")
            },
            r.source.as_deref().unwrap_or("-")
        );
    }
    Ok(Exit::Ok)
}
