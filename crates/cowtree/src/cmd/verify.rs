//! `cowtree verify`: check the store.

use std::path::Path;

use serde_json::json;

use crate::cmd::{open_store, print_json};
use crate::exit::{CmdResult, Exit};

/// Rehash every blob and check every snapshot; exit 4 on problems.
///
/// Checks that every blob's content matches its name and that every snapshot's manifest is
/// intact and its blobs exist with the right sizes. Lists each problem.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print one JSON object: ok, blobs_checked, bytes_checked, snapshots_checked,
    /// problems [{kind, subject, message}].
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args, store: Option<&Path>) -> CmdResult {
    let store = open_store(store)?;
    let r = cowtree_store::verify::verify(&store)?;
    if args.json {
        let problems: Vec<_> = r
            .problems
            .iter()
            .map(|p| json!({"kind": p.kind, "subject": p.subject, "message": p.message}))
            .collect();
        print_json(&json!({
            "ok": r.problems.is_empty(),
            "blobs_checked": r.blobs_checked,
            "bytes_checked": r.bytes_checked,
            "snapshots_checked": r.snapshots_checked,
            "problems": problems,
        }))?;
    } else {
        for p in &r.problems {
            println!("{}: {}: {}", p.kind, p.subject, p.message);
        }
        println!(
            "checked {} blobs ({} bytes) and {} snapshots: {} problem(s)",
            r.blobs_checked,
            r.bytes_checked,
            r.snapshots_checked,
            r.problems.len()
        );
    }
    Ok(if r.problems.is_empty() {
        Exit::Ok
    } else {
        Exit::Code(4)
    })
}
