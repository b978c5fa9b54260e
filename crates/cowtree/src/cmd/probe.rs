//! `cowtree probe`: what a location (or a source/destination pair) can do.

use std::path::{Path, PathBuf};

use cowtree_fs::dir::Dir;
use cowtree_fs::fstype::fs_type;
use cowtree_fs::probe::{ProbeCache, probe};
use serde::Serialize;

use crate::exit::{CliError, CmdResult, Exit};

/// Report what a filesystem location can do: reflink (copy-on-write clone) and hardlink.
///
/// With one PATH, probes clones within that filesystem; with PATH and DEST, probes clones from
/// PATH's filesystem to DEST's (different filesystems can never share data). A file is probed
/// at its directory. The probe makes one scratch file in each directory, tries one raw clone
/// and one hardlink with no fallback, and removes both. Exits 0 whenever the probe ran,
/// whatever it found; nonzero when a path is missing or not writable.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  cowtree probe /mnt/xfs                 # can this filesystem clone?
  cowtree probe ~/src /mnt/xfs/work      # can a clone from here to there share data?")]
pub struct Args {
    /// The source location (a directory, or a file whose directory is probed).
    path: PathBuf,
    /// The destination location; defaults to PATH.
    dest: Option<PathBuf>,
    /// Print one JSON object: fs_type, dest_fs_type, same_device, reflink, hardlink, reason.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Serialize)]
struct Report {
    fs_type: &'static str,
    dest_fs_type: &'static str,
    same_device: bool,
    reflink: bool,
    hardlink: bool,
    reason: Option<String>,
    hardlink_reason: Option<&'static str>,
}

fn probe_dir(path: &Path) -> Result<PathBuf, CliError> {
    let meta = std::fs::metadata(path)
        .map_err(|e| CliError::new(format!("probe: {}: {e}", path.display())))?;
    if meta.is_dir() {
        Ok(path.to_path_buf())
    } else {
        let parent = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        Ok(parent.to_path_buf())
    }
}

pub fn run(args: Args) -> CmdResult {
    let src = probe_dir(&args.path)?;
    let dst = match &args.dest {
        Some(d) => probe_dir(d)?,
        None => src.clone(),
    };
    let src_type = fs_type(Dir::open(&src)?)?;
    let dst_type = fs_type(Dir::open(&dst)?)?;
    let found = probe(ProbeCache::global(), &src, &dst).map_err(|e| {
        CliError::new(format!(
            "probe: {e} (the probe needs to create a scratch file in each directory)"
        ))
    })?;
    let report = Report {
        fs_type: src_type.name(),
        dest_fs_type: dst_type.name(),
        same_device: found.same_device,
        reflink: found.reflink.is_ok(),
        hardlink: found.hardlink.is_ok(),
        reason: found
            .reflink
            .err()
            .map(|c| format!("{}: {}", c.as_str(), c.describe())),
        hardlink_reason: found.hardlink.err().map(|r| r.as_str()),
    };
    if args.json {
        println!(
            "{}",
            serde_json::to_string(&report).map_err(|e| CliError::new(e.to_string()))?
        );
        return Ok(Exit::Ok);
    }
    let yes_no = |b: bool| if b { "yes" } else { "no" };
    println!("source:      {} ({})", src.display(), report.fs_type);
    if args.dest.is_some() {
        println!("destination: {} ({})", dst.display(), report.dest_fs_type);
    }
    println!("same device: {}", yes_no(report.same_device));
    match &report.reason {
        None => println!("reflink:     yes (copies share data until written)"),
        Some(why) => println!("reflink:     no ({why}; cowtree will copy instead)"),
    }
    match report.hardlink_reason {
        None => println!("hardlink:    yes"),
        Some(why) => println!("hardlink:    no ({why})"),
    }
    Ok(Exit::Ok)
}
