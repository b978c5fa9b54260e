//! `cowtree push`: send snapshots to a remote.

use std::path::Path;

use cowtree_remote::push::{PushItem, push_with};
use serde_json::json;

use crate::cmd::remote::{human, open_remote, remote_error, with_progress};
use crate::cmd::{StoreOpt, print_json, store_here};
use crate::exit::{CmdResult, Exit};

/// Send snapshots, and the file contents the remote lacks, to a remote.
///
/// SNAPSHOT is a full id, a unique id prefix of at least 8 hex digits, or a name; a name is
/// set on the remote too. The remote's pack indexes tell what it has, so only new content is
/// sent: small files packed into objects of about 32 MiB, large files as objects of their
/// own. A snapshot appears on the remote only once all its content is there. A remote name
/// is moved only if it is still where this store last saw it (conditional write); otherwise
/// the push fails with exit 5 (pull the name first, or use --force). A push that has anything
/// to send takes a shared lock on the remote first, and waits while a `remote gc`, `forget`
/// or `rm` holds it (saying so once on stderr). Interrupted, it resumes when run again. Exit codes: 1 error, 5 name conflict, 6 access denied or missing bucket,
/// 7 corrupt or missing remote data.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  cowtree push v1                         # v1's content and the name v1, to origin
  cowtree push --remote ci v1 v2 --json
  cowtree push --force v1                 # move the remote name even if another host did")]
pub struct Args {
    /// Snapshot ids, id prefixes (8+ hex digits) or names.
    #[arg(required = true)]
    snapshots: Vec<String>,
    /// The remote (default: origin, else the only one configured).
    #[arg(long)]
    remote: Option<String>,
    /// Move remote names even where another host moved them since this store last saw them.
    #[arg(long)]
    force: bool,
    /// Print one JSON object: snapshots_sent, snapshots_skipped, blobs_sent, bytes_sent,
    /// blobs_skipped, bytes_skipped, packs_sent, objects_sent, names [{name, id}], requests,
    /// elapsed_ms.
    #[arg(long)]
    json: bool,
    /// Print nothing on success.
    #[arg(long, short)]
    quiet: bool,
    #[command(flatten)]
    store: StoreOpt,
}

pub fn run(args: Args, top: Option<&Path>) -> CmdResult {
    let store = store_here(&args.store.clone().or(top))?;
    let mut items = Vec::new();
    for s in &args.snapshots {
        let id = cowtree_store::refs::resolve(&store, s)?;
        let is_name = cowtree_store::refs::get(&store, s)?.is_some_and(|n| n == id)
            && cowtree_store::Hash::from_hex(s).is_none();
        items.push(PushItem {
            id,
            name: is_name.then(|| s.clone()),
        });
    }
    let remote = open_remote(&store, args.remote.as_deref())?;
    let timing = crate::cmd::retention::lock_timing();
    let wait = crate::cmd::retention::on_wait(args.quiet || args.json);
    let r = with_progress(args.quiet, args.json, |p| {
        push_with(&store, &remote, &items, args.force, &timing, &wait, p)
    })
    .map_err(remote_error)?;
    if args.json {
        let names: Vec<_> = r
            .names_updated
            .iter()
            .map(|(n, id)| json!({"name": n, "id": id.to_hex()}))
            .collect();
        print_json(&json!({
            "remote": remote.name(),
            "snapshots_sent": r.snapshots_sent,
            "snapshots_skipped": r.snapshots_skipped,
            "blobs_sent": r.blobs_sent,
            "bytes_sent": r.bytes_sent,
            "blobs_skipped": r.blobs_skipped,
            "bytes_skipped": r.bytes_skipped,
            "packs_sent": r.packs_sent,
            "objects_sent": r.objects_sent,
            "names": names,
            "requests": r.requests,
            "elapsed_ms": r.elapsed_ms,
        }))?;
    } else if !args.quiet {
        println!(
            "pushed to {}: {} snapshot(s) sent, {} already there; {} objects, {} ({} blobs) \
             sent, {} blobs ({}) already there; {} requests in {} ms",
            remote.name(),
            r.snapshots_sent,
            r.snapshots_skipped,
            r.objects_sent,
            human(r.bytes_sent),
            r.blobs_sent,
            r.blobs_skipped,
            human(r.bytes_skipped),
            r.requests,
            r.elapsed_ms
        );
        for (n, id) in &r.names_updated {
            println!("name {n} -> {}", &id.to_hex()[..12]);
        }
    }
    Ok(Exit::Ok)
}
