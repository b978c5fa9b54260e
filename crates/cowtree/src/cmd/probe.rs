//! `cowtree probe`: what a location (or a source/destination pair) can do.

use std::path::{Path, PathBuf};

#[cfg(unix)]
use cowtree_fs::dir::Dir;
#[cfg(unix)]
use cowtree_fs::fstype::fs_type;
#[cfg(unix)]
use cowtree_fs::probe::{ProbeCache, probe};
use serde::Serialize;

use crate::exit::{CliError, CmdResult, Exit};

/// Report what a filesystem location can do: reflink (copy-on-write clone) and hardlink, and
/// on btrfs what this user may do with subvolumes.
///
/// With one PATH, probes clones within that filesystem; with PATH and DEST, probes clones from
/// PATH's filesystem to DEST's (different filesystems can never share data). A file is probed
/// at its directory. The probe makes one scratch file in each directory, tries one raw clone
/// and one hardlink with no fallback, and removes both. On btrfs it also creates a scratch
/// subvolume in PATH's directory, snapshots it and deletes the snapshot with the kernel's
/// one-call delete, and says whether each worked (an unprivileged user may delete in one call
/// only where the filesystem is mounted with user_subvol_rm_allowed; cowtree removes the files
/// instead), and whether PATH is a subvolume's root (what `cowtree clone` copies whole).
/// Exits 0 whenever the probe ran, whatever it found; nonzero when a path is missing or not
/// writable.
///
/// On Windows: the volume's filesystem and cluster size, one raw block clone
/// (`FSCTL_DUPLICATE_EXTENTS_TO_FILE`, ReFS and Dev Drives) and one hardlink; there are no
/// subvolumes there.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  cowtree probe /mnt/xfs                 # can this filesystem clone?
  cowtree probe ~/src /mnt/xfs/work      # can a clone from here to there share data?
  cowtree probe ~/src/app                # on btrfs: a subvolume? can I snapshot, delete in O(1)?")]
pub struct Args {
    /// The source location (a directory, or a file whose directory is probed).
    path: PathBuf,
    /// The destination location; defaults to PATH.
    dest: Option<PathBuf>,
    /// Print one JSON object: fs_type, dest_fs_type, same_device, reflink, hardlink, reason,
    /// and on btrfs subvolumes (subvolume_root, snapshot, snapshot_reason, fast_delete,
    /// fast_delete_reason).
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Serialize)]
struct Report {
    fs_type: std::borrow::Cow<'static, str>,
    dest_fs_type: std::borrow::Cow<'static, str>,
    /// On Windows: the source volume's cluster size, the unit of a block clone.
    #[serde(skip_serializing_if = "Option::is_none")]
    cluster_size: Option<u64>,
    same_device: bool,
    reflink: bool,
    hardlink: bool,
    reason: Option<String>,
    hardlink_reason: Option<&'static str>,
    /// On btrfs only.
    #[serde(skip_serializing_if = "Option::is_none")]
    subvolumes: Option<Subvolumes>,
}

#[derive(Debug, Serialize)]
struct Subvolumes {
    /// PATH (a directory) is a subvolume's root.
    subvolume_root: bool,
    snapshot: bool,
    snapshot_reason: Option<&'static str>,
    fast_delete: bool,
    fast_delete_reason: Option<&'static str>,
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

#[cfg(unix)]
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
        fs_type: src_type.name().into(),
        dest_fs_type: dst_type.name().into(),
        cluster_size: None,
        same_device: found.same_device,
        reflink: found.reflink.is_ok(),
        hardlink: found.hardlink.is_ok(),
        reason: found
            .reflink
            .err()
            .map(|c| format!("{}: {}", c.as_str(), c.describe())),
        hardlink_reason: found.hardlink.err().map(|r| r.as_str()),
        subvolumes: subvolumes(&args.path, &src)?,
    };
    print(&args, &src, &dst, &report)
}

/// `cowtree probe` on Windows: the volumes, one raw block clone and one hardlink.
#[cfg(windows)]
pub fn run(args: Args) -> CmdResult {
    use cowtree_fs::probe::ProbeCache;
    let src = probe_dir(&args.path)?;
    let dst = match &args.dest {
        Some(d) => probe_dir(d)?,
        None => src.clone(),
    };
    let found = ProbeCache::global().probe(&src, &dst).map_err(|e| {
        CliError::new(format!(
            "probe: {e} (the probe needs to create a scratch file in each directory)"
        ))
    })?;
    let hardlink = probe_hardlink(&src, &dst).map_err(|e| {
        CliError::new(format!(
            "probe: {e} (the probe needs to create a scratch file in each directory)"
        ))
    })?;
    let report = Report {
        fs_type: found.src.filesystem.clone().into(),
        dest_fs_type: found.dst.filesystem.clone().into(),
        cluster_size: Some(found.src.cluster_size),
        same_device: found.same_volume(),
        reflink: found.reflink.is_ok(),
        hardlink: hardlink.is_ok(),
        reason: found
            .reflink
            .err()
            .map(|c| format!("{}: {}", c.as_str(), c.describe())),
        hardlink_reason: hardlink.err(),
        subvolumes: None,
    };
    print(&args, &src, &dst, &report)
}

/// One hardlink from a scratch file in `src` into `dst` (both removed after): `Err` says
/// why none was made.
#[cfg(windows)]
fn probe_hardlink(src: &Path, dst: &Path) -> std::io::Result<Result<(), &'static str>> {
    use cowtree_fs::HardlinkOutcome;
    use cowtree_fs::dir::Dir;
    let name = format!(".cowtree-probe-link-{}", std::process::id());
    let (sd, dd) = (Dir::open(src)?, Dir::open(dst)?);
    let name = std::ffi::OsString::from(name);
    let link = std::ffi::OsString::from(format!("{}.link", name.to_string_lossy()));
    drop(sd.create_file(&name)?);
    let made = cowtree_fs::hardlink_at(&sd, &name, &dd, &link);
    let _ = dd.remove_file(&link);
    let _ = sd.remove_file(&name);
    Ok(match made? {
        HardlinkOutcome::Linked => Ok(()),
        HardlinkOutcome::Refused(r) => Err(r.as_str()),
        HardlinkOutcome::SourceVanished => Err("the scratch file vanished"),
    })
}

/// Prints the report, as one JSON object with `--json`.
fn print(args: &Args, src: &Path, dst: &Path, report: &Report) -> CmdResult {
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
    if let Some(c) = report.cluster_size {
        println!("cluster:     {c} bytes");
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
    if let Some(sv) = &report.subvolumes {
        if sv.subvolume_root {
            println!(
                "subvolume:   yes, the root of one (cowtree clone copies it whole, in one snapshot)"
            );
        } else {
            println!(
                "subvolume:   no (`cowtree subvolume convert {}` makes it one)",
                cowtree_store::error::shell_word(src)
            );
        }
        match sv.snapshot_reason {
            None => println!("snapshot:    yes (of subvolumes this user owns)"),
            Some(why) => println!("snapshot:    no ({why}; cowtree clones file by file)"),
        }
        match sv.fast_delete_reason {
            None => println!("delete:      in one call (O(1))"),
            Some(why) => println!(
                "delete:      not in one call ({why}; cowtree removes the files instead; root or the user_subvol_rm_allowed mount option allows it)"
            ),
        }
    }
    Ok(Exit::Ok)
}

/// What this user may do with subvolumes where `path` is (None: not btrfs).
#[cfg(unix)]
fn subvolumes(path: &Path, dir: &Path) -> Result<Option<Subvolumes>, CliError> {
    use cowtree_fs::subvolume::{At, is_root};
    let probe_err = |e: std::io::Error| {
        CliError::new(format!(
            "probe: {e} (the probe needs to create a scratch subvolume in {})",
            dir.display()
        ))
    };
    let Some(found) = ProbeCache::global().subvolumes(dir).map_err(probe_err)? else {
        return Ok(None);
    };
    let subvolume_root = match Dir::open(path) {
        Ok(d) => is_root(At::new(&d, path)).unwrap_or(false),
        Err(_) => false,
    };
    let describe = |r: Result<(), cowtree_fs::subvolume::Cause>| r.err().map(|c| c.describe());
    Ok(Some(Subvolumes {
        subvolume_root,
        snapshot: found.snapshot.is_ok(),
        snapshot_reason: describe(found.snapshot),
        fast_delete: found.fast_delete.is_ok(),
        fast_delete_reason: describe(found.fast_delete),
    }))
}
