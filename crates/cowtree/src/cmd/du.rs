//! `cowtree du`: how much disk the paths really use, shared data counted once.

use std::path::PathBuf;

use cowtree_space::{DuOptions, du_with_progress};

use crate::exit::{CliError, CmdResult, Exit};
use crate::units::{bytes, count};

/// Show apparent, allocated, shared and unique physical bytes of PATHs.
///
/// apparent: sum of file sizes. allocated: blocks the inodes hold, what `du` shows, where a
/// block shared by ten clones counts ten times. shared: bytes in extents the filesystem marks
/// shared (with a clone or snapshot, inside these paths or not). unique physical: the disk
/// the file data under all PATHs occupies, each physical block counted once, from FIEMAP
/// extent addresses: ten clones of a tree show about one tree's worth, ten plain copies ten.
///
/// Symlinks are never followed; hardlinked files count once. Filesystems without FIEMAP
/// (tmpfs) cannot tell what is shared: their files count in apparent and allocated, and the
/// output says shared and unique physical are unavailable for them. Exits 1 if an entry
/// could not be read (after printing the figures for the rest).
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  cowtree du /work/app-a /work/app-b   # two worktrees: shared data counted once
  cowtree du --json ~/src | jq .unique_physical")]
pub struct Args {
    /// Files or directories to measure together.
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// Print one JSON object: apparent, allocated, shared, unique_physical (bytes; null when
    /// unavailable), fiemap_available, files, dirs, symlinks, other, hardlinks_skipped,
    /// unmapped_files, unmapped_allocated, unmapped_reason, unaddressed, devices, errors,
    /// error_count.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    jobs: crate::cmd::JobsOpt,
}

pub fn run(args: Args) -> CmdResult {
    args.jobs.apply();
    let spinner = crate::progress::Activity::counting(
        "measuring".to_string(),
        args.json,
        ("entry", "entries"),
    );
    let report = du_with_progress(&args.paths, &DuOptions::default(), spinner.progress());
    drop(spinner);
    for e in &report.errors {
        eprintln!("cowtree: du: {e}");
    }
    if args.json {
        println!(
            "{}",
            serde_json::to_string(&report).map_err(|e| CliError::new(e.to_string()))?
        );
    } else {
        let unavailable = || match &report.unmapped_reason {
            Some(why) => format!("unavailable: {why}"),
            None => "unavailable".to_string(),
        };
        let fig = |v: Option<u64>| match v {
            Some(v) => format!("{:>10}  ({v} bytes)", bytes(v)),
            None => unavailable(),
        };
        println!("apparent:        {}", fig(Some(report.apparent)));
        println!("allocated:       {}", fig(Some(report.allocated)));
        println!("shared:          {}", fig(report.shared));
        println!("unique physical: {}", fig(report.unique_physical));
        if report.allocated > 0
            && let Some(u) = report.unique_physical
        {
            println!(
                "                 allocated / unique physical = {:.2}x",
                report.allocated as f64 / u.max(1) as f64
            );
        }
        if report.unique_physical.is_some() && !report.fiemap_available {
            println!(
                "note: {} ({}) could not be mapped and are left out of shared and \
                 unique physical: {}",
                count(report.unmapped_files, "file", "files"),
                bytes(report.unmapped_allocated),
                report
                    .unmapped_reason
                    .as_deref()
                    .unwrap_or("see errors above")
            );
        }
        println!(
            "{}, {}, {}{}{}",
            count(report.files, "file", "files"),
            count(report.dirs, "directory", "directories"),
            count(report.symlinks, "symlink", "symlinks"),
            if report.other > 0 {
                format!(", {} other", report.other)
            } else {
                String::new()
            },
            if report.hardlinks_skipped > 0 {
                format!(
                    " ({} more hardlink names counted once)",
                    report.hardlinks_skipped
                )
            } else {
                String::new()
            }
        );
    }
    if report.error_count > 0 {
        return Err(CliError::new(format!(
            "du: {} entr{} could not be read (see above); the figures leave them out",
            report.error_count,
            if report.error_count == 1 { "y" } else { "ies" }
        )));
    }
    Ok(Exit::Ok)
}
