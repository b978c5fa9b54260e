//! `cowtree dedupe`: share the data of identical files that were copied without sharing.

use std::path::PathBuf;

use cowtree_space::{DEFAULT_MIN_SIZE, DedupeError, DedupeOptions, Progress, dedupe};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::exit::{CliError, CmdResult, Exit};
use crate::units::{bytes, count, signed_bytes};

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
#[command(after_help = "Examples:
  cowtree dedupe --dry-run ~/copies   # what would be shared, changing nothing
  cowtree dedupe ~/copies/a ~/copies/b
  cowtree dedupe --min-size 65536 /data   # only files of 64 KiB and more (faster)")]
pub struct Args {
    /// Files or directories to deduplicate together (one filesystem).
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// Find and report what would be deduplicated; change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Leave files smaller than this many bytes alone. Default: one block of the filesystem
    /// (4096 bytes on most), the smallest file that can share a block. A larger size (e.g.
    /// 65536) skips the many small files, each a filesystem transaction: faster, reclaims less.
    #[arg(long, value_name = "BYTES")]
    min_size: Option<u64>,
    /// Print one JSON object: dry_run, files_scanned, candidates, bytes_hashed, groups,
    /// files_deduped, bytes_deduped, already_shared_files, already_shared_bytes, skipped
    /// ([{path, reason}]), unique_physical_before, unique_physical_after, reclaimed, df_freed,
    /// errors.
    #[arg(long)]
    json: bool,
    /// Print nothing but errors: no summary or progress bar.
    #[arg(long, short = 'q')]
    quiet: bool,
    #[command(flatten)]
    jobs: crate::cmd::JobsOpt,
}

/// The block size of the filesystem of `path` (its directory for a file).
#[cfg(unix)]
fn block_size(path: &std::path::Path) -> Option<u64> {
    let st = rustix::fs::statvfs(path).ok()?;
    (st.f_bsize > 0).then_some(st.f_bsize)
}

/// The block size of the filesystem of `path`: not asked on Windows (dedupe needs
/// FIDEDUPERANGE, and says so there); the default applies.
#[cfg(windows)]
fn block_size(_path: &std::path::Path) -> Option<u64> {
    None
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
    args.jobs.apply();
    // Hidden when stderr is not a terminal.
    let bar = Bar(ProgressBar::with_draw_target(
        None,
        if args.quiet || args.json {
            ProgressDrawTarget::hidden()
        } else {
            ProgressDrawTarget::stderr()
        },
    ));
    let min_size = args
        .min_size
        .or_else(|| block_size(&args.paths[0]))
        .unwrap_or(DEFAULT_MIN_SIZE);
    let opts = DedupeOptions {
        dry_run: args.dry_run,
        min_size,
        progress: &bar,
        after_hash: None,
    };
    crate::interrupt::tell(crate::interrupt::Tell::Note(
        "each file is either deduplicated or as it was".into(),
    ));
    let result = dedupe(&args.paths, &opts);
    bar.0.finish_and_clear();
    let report = result.map_err(|e| match e {
        DedupeError::Io(e) => CliError::new(format!("dedupe: {e}")),
        #[cfg(windows)]
        e @ DedupeError::Windows => CliError::unsupported(format!("dedupe: {e}")),
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
    } else if !args.quiet {
        let would = if report.dry_run { "would be " } else { "" };
        println!(
            "scanned {} of at least {}; {}",
            count(report.files_scanned, "file", "files"),
            bytes(min_size),
            count(report.groups, "identical set", "identical sets")
        );
        println!(
            "{would}deduplicated: {}, {}",
            count(report.files_deduped, "file", "files"),
            bytes(report.bytes_deduped)
        );
        if report.already_shared_files > 0 {
            println!(
                "already sharing: {}, {} (left alone)",
                count(report.already_shared_files, "file", "files"),
                bytes(report.already_shared_bytes)
            );
        }
        if !report.skipped.is_empty() {
            println!(
                "skipped: {}",
                count(report.skipped.len() as u64, "file", "files")
            );
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
            "dedupe: {} (see above)",
            count(report.errors.len() as u64, "error", "errors")
        )));
    }
    Ok(Exit::Ok)
}
