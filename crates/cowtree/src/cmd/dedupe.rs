//! `cowtree dedupe`: share the data of identical files that were copied without sharing.

use std::path::PathBuf;

use cowtree_space::{DEFAULT_MIN_SIZE, DedupeError, DedupeOptions, Progress, dedupe};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::exit::{CliError, CmdResult, Exit};
use crate::units::{bytes, signed_bytes};

/// Find identical regular files under PATHs and make them share their data blocks.
///
/// Files are grouped by size, then by BLAKE3 hash; each set of identical files is handed to
/// the kernel's FIDEDUPERANGE, which locks the files, compares their bytes itself and only
/// then shares the blocks. So a file changed after hashing is simply not deduplicated (it is
/// listed as skipped with the reason), and no file's content, inode, mode or mtime ever
/// changes. Files already sharing all their data with their set's source are left alone.
///
/// Works on filesystems that can share data (XFS with reflink, btrfs); elsewhere it says so
/// and changes nothing. All PATHs must be on one filesystem. Symlinks are never followed;
/// hardlinked names count once. The space reclaimed is measured as `cowtree du` unique
/// physical bytes before and after. A progress bar is drawn when stderr is a terminal.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Files or directories to deduplicate together (one filesystem).
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// Find and report what would be deduplicated; change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Leave files smaller than this many bytes alone. The default, 64 KiB, skips the many
    /// small files that hold little of a typical tree's data but would cost a filesystem
    /// transaction each (most of the time in bench/space.sh); `--min-size 4096` includes
    /// them and reclaims more, more slowly.
    #[arg(long, value_name = "BYTES", default_value_t = DEFAULT_MIN_SIZE)]
    min_size: u64,
    /// Print one JSON object: dry_run, files_scanned, candidates, bytes_hashed, groups,
    /// files_deduped, bytes_deduped, already_shared_files, already_shared_bytes, skipped
    /// ([{path, reason}]), unique_physical_before, unique_physical_after, reclaimed, df_freed,
    /// errors.
    #[arg(long)]
    json: bool,
}

struct Bar(ProgressBar);

impl Progress for Bar {
    fn phase(&self, name: &'static str, total: Option<u64>) {
        let bar = &self.0;
        bar.set_message(name);
        match total {
            Some(t) => {
                bar.set_style(
                    ProgressStyle::with_template(
                        "{msg:>7} [{bar:30}] {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec} eta {eta}",
                    )
                    .expect("a valid template")
                    .progress_chars("=> "),
                );
                bar.set_length(t);
            }
            None => {
                bar.set_style(
                    ProgressStyle::with_template("{msg:>7} {spinner} {elapsed}")
                        .expect("a valid template"),
                );
                bar.enable_steady_tick(std::time::Duration::from_millis(200));
            }
        }
        bar.reset();
    }

    fn advance(&self, n: u64) {
        self.0.inc(n);
    }
}

pub fn run(args: Args) -> CmdResult {
    // Hidden when stderr is not a terminal.
    let bar = Bar(ProgressBar::with_draw_target(
        None,
        ProgressDrawTarget::stderr(),
    ));
    let opts = DedupeOptions {
        dry_run: args.dry_run,
        min_size: args.min_size,
        progress: &bar,
        after_hash: None,
    };
    let result = dedupe(&args.paths, &opts);
    bar.0.finish_and_clear();
    let report = result.map_err(|e| match e {
        DedupeError::Io(e) => CliError::new(format!("dedupe: {e}")),
        e => CliError::new(format!("dedupe: {e}")),
    })?;
    for e in &report.errors {
        eprintln!("cowtree: dedupe: {e}");
    }
    if args.json {
        println!(
            "{}",
            serde_json::to_string(&report).map_err(|e| CliError::new(e.to_string()))?
        );
    } else {
        let would = if report.dry_run { "would be " } else { "" };
        println!(
            "scanned {} files of at least {}; {} identical sets",
            report.files_scanned,
            bytes(args.min_size),
            report.groups
        );
        println!(
            "{would}deduplicated: {} files, {}",
            report.files_deduped,
            bytes(report.bytes_deduped)
        );
        if report.already_shared_files > 0 {
            println!(
                "already sharing: {} files, {} (left alone)",
                report.already_shared_files,
                bytes(report.already_shared_bytes)
            );
        }
        if !report.skipped.is_empty() {
            println!("skipped: {} files", report.skipped.len());
            for s in report.skipped.iter().take(20) {
                println!("  {}: {}", s.path.display(), s.reason);
            }
            if report.skipped.len() > 20 {
                println!("  ... and {} more (see --json)", report.skipped.len() - 20);
            }
        }
        match (
            report.unique_physical_before,
            report.unique_physical_after,
            report.reclaimed,
        ) {
            (Some(b), Some(a), Some(r)) if !report.dry_run => println!(
                "reclaimed: {} (unique physical {} -> {})",
                signed_bytes(r),
                bytes(b),
                bytes(a)
            ),
            (Some(b), _, _) => println!("unique physical: {} (dry run: unchanged)", bytes(b)),
            _ => println!("reclaimed: unknown (FIEMAP unavailable)"),
        }
    }
    if !report.errors.is_empty() {
        return Err(CliError::new(format!(
            "dedupe: {} error(s) (see above)",
            report.errors.len()
        )));
    }
    Ok(Exit::Ok)
}
