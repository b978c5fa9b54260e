//! `cowtree verify`: check the store.

use std::path::Path;

use serde_json::json;

use crate::cmd::{StoreOpt, print_json, store_here};
use crate::exit::{CmdResult, Exit};
use crate::units::{bytes, count};

/// Rehash every blob and check every snapshot; exit 4 on problems.
///
/// Checks that every blob's content matches its name and that every snapshot's manifest is
/// intact and its blobs exist with the right sizes. Lists each problem.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  cowtree verify                          # check the store of this directory
  cowtree verify --store /mnt/xfs/.cowtree-store --json")]
pub struct Args {
    /// Print one JSON object: ok, blobs_checked, bytes_checked, snapshots_checked, trees_checked,
    /// problems [{kind, subject, message}], warnings [{kind, subject, message}].
    #[arg(long)]
    json: bool,
    /// Print nothing but the problems found.
    #[arg(long, short = 'q')]
    quiet: bool,
    #[command(flatten)]
    store: StoreOpt,
    #[command(flatten)]
    jobs: crate::cmd::JobsOpt,
}

pub fn run(args: Args, top: Option<&Path>) -> CmdResult {
    args.jobs.apply();
    let store = store_here(&args.store.clone().or(top))?;
    let spinner = crate::progress::Activity::counting(
        format!("verifying {}", store.root().display()),
        args.quiet || args.json,
        ("blob", "blobs"),
    );
    let r = cowtree_store::verify::verify_with_progress(&store, spinner.progress());
    drop(spinner);
    let r = r?;
    if args.json {
        let problems: Vec<_> = r
            .problems
            .iter()
            .map(|p| json!({"kind": p.kind, "subject": p.subject, "message": p.message}))
            .collect();
        let warnings: Vec<_> = r
            .warnings
            .iter()
            .map(|p| json!({"kind": p.kind, "subject": p.subject, "message": p.message}))
            .collect();
        print_json(&json!({
            "ok": r.problems.is_empty(),
            "blobs_checked": r.blobs_checked,
            "bytes_checked": r.bytes_checked,
            "snapshots_checked": r.snapshots_checked,
            "trees_checked": r.trees_checked,
            "problems": problems,
            "warnings": warnings,
        }))?;
    } else {
        for p in &r.problems {
            println!("{}: {}: {}", p.kind, p.subject, p.message);
        }
        for w in &r.warnings {
            eprintln!("cowtree: warning: {}: {}: {}", w.kind, w.subject, w.message);
        }
        if !args.quiet {
            let trees = if r.trees_checked > 0 {
                format!(
                    " ({} of them)",
                    count(r.trees_checked, "tree subvolume", "tree subvolumes")
                )
            } else {
                String::new()
            };
            println!(
                "checked {} ({}) and {}{trees}: {}",
                count(r.blobs_checked, "blob", "blobs"),
                bytes(r.bytes_checked),
                count(r.snapshots_checked, "snapshot", "snapshots"),
                count(r.problems.len() as u64, "problem", "problems")
            );
        }
    }
    Ok(if r.problems.is_empty() {
        Exit::Ok
    } else {
        Exit::Code(4)
    })
}
