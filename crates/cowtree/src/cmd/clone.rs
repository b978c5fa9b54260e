//! `cowtree clone`: a copy-on-write aware, parallel `cp -a` that says what it did.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use cowtree_fs::whole_tree::{Method, NotUsed, Purpose};
use cowtree_link::{
    CancelHandle, FallbackCount, HashAlgo, LinkError, LinkMode, LinkOptions, LinkReport, Linker,
    NotKept, OnExisting, Preserve,
};
use serde::Serialize;

use crate::exit::{CliError, CmdResult, Exit};

/// Exit code when `--strict` refused a fallback.
const EXIT_STRICT: u8 = 3;

/// The reason reported for `--per-file`.
const PER_FILE_ASKED: NotUsed = NotUsed::Requested {
    code: "per-file-asked",
    why: "the --per-file option",
};

/// Copy a directory tree (or one file) so that the copy shares data with the source.
///
/// Files are cloned (reflinked: own inode, shared data blocks, copied on write) where source and
/// destination filesystems can, and copied where they cannot; every file that was copied
/// instead of cloned is reported with the reason, once per cause. Symlinks are copied as
/// symlinks, never followed; permission bits, empty directories and the times of files and
/// directories are kept; names are kept byte for byte. By default, unlike `cp -a`, ownership,
/// ACLs, extended attributes and hardlinks between files of SRC are not kept (the copy belongs
/// to whoever runs cowtree, each name is a file of its own), and files lose set-user-ID and
/// set-group-ID bits.
///
/// --archive (-a), or --preserve=LIST with GNU cp's names, keeps them: ownership (owner and
/// group, as root; otherwise the group alone where you are a member of it; set-ID bits of
/// files only where owner and group were kept), xattr (extended attributes you may write:
/// user.*, and security.* and trusted.* as root), acl (POSIX ACLs), links (files with several
/// names inside SRC keep them, as hardlinks of one file in DST), special (FIFOs and sockets
/// made again, device nodes as root), all (all of them: --archive). What could not be kept is
/// no error: one line per kind says what and for how many entries (e.g. "ownership not kept
/// for 12 entries (not permitted: run as root ...)"), and --json counts it ("not_kept").
///
/// A new DST is built in a hidden staging directory beside it
/// (`.<name>.cowtree-staging.<pid>.<random>`) and renamed into place at the end, so DST appears
/// whole or not at all; staging left by a killed run is removed by the next run. An existing DST
/// is refused unless --on-existing says otherwise. Special files (FIFOs, sockets, devices) are
/// refused before anything is written, unless --skip-special (or --preserve=special, which
/// makes them again). A regular file as SRC works like
/// `cp`: DST is the new file, or an existing directory to put it in.
///
/// Several SRCs: with --on-existing overwrite or skip, their contents are merged into DST in
/// one pass (like installing several packages into one environment; a path that two sources
/// both have is a collision, reported, and the later source wins with overwrite, the earlier
/// with skip). Otherwise DST must be an existing directory and each SRC goes inside it under
/// its own name, as `cp` does.
///
/// A merge into an existing DST is all or nothing: new entries are built under hidden
/// temporary names (`.<name>.cowtree-tmp.<pid>.<random>`) and put in place at the end,
/// replaced entries are kept aside until then; on any error, and on Ctrl-C (SIGINT, SIGTERM,
/// SIGHUP), DST is put back as it was before clone exits. A merge killed midway (kill -9, or
/// a second Ctrl-C while it is being undone) leaves a journal (`.cowtree-txn.<pid>.<random>`
/// in DST): the next merge into DST, or `cowtree clone --recover DST`, finishes it (completes
/// it if it had started putting entries in place, else undoes it). Two merges into one DST
/// take turns: the second waits for the first (it says so), or with --no-wait fails at once.
///
/// A btrfs subvolume as SRC is copied whole, in one call, whatever its size: where SRC is the
/// root of a subvolume on the same btrfs filesystem as DST, owned by the caller (or the caller
/// is root), with no subvolume nested and no filesystem mounted below it, DST is new, and no
/// option asks for per-file work (--mode copy, hardlink or symlink, --record,
/// --no-preserve-times, --skip-special, several SRCs), DST is a writable snapshot of SRC. A
/// snapshot is an exact copy: every entry keeps its owner and group, its mode with set-ID
/// bits, its extended attributes and ACLs and its hardlinks, and special files are copied
/// too; files that belong to others stay theirs (docs/subvolumes.md, "Ownership rule").
/// --per-file asks for the per-file copy instead. The summary and --json say which ran
/// ("method": "subvolume" or "per-file") and why a tree was copied per file ("reason").
///
/// Exit status: 0 done, 1 error (nothing is left at a new DST; an existing DST is as before
/// unless the message says otherwise), 2 bad usage, 3 --strict refused a fallback (likewise).
#[derive(Debug, clap::Args)]
pub struct Args {
    /// How to link files: auto (clone, else copy, reporting it); clone (clone every file or
    /// fail with exit 3, like `cp --reflink=always`: nothing is left at a new DST, a merged DST
    /// is as it was; the same as `checkout --mode clone`); copy (always copy the data, into
    /// blocks of the copy's own, never shared with the source); hardlink (share inodes with
    /// the source: writes reach the source!); symlink (absolute symlinks to the source files).
    #[arg(long, value_enum, default_value_t = ModeArg::Auto)]
    mode: ModeArg,
    /// Fail (exit 3) instead of falling back to another method for any file; a new DST is then
    /// not created at all. --mode clone implies it.
    #[arg(long)]
    strict: bool,
    /// What to do if DST exists: fail (default), overwrite (merge into it, replacing entries by
    /// link-to-temporary-then-rename; existing files are never written through), skip (merge,
    /// keeping entries that are already there).
    #[arg(long, value_enum, default_value_t = OnExistingArg::Fail, value_name = "POLICY")]
    on_existing: OnExistingArg,
    /// Do not give files, symlinks and directories the source's access and modification times.
    #[arg(long)]
    no_preserve_times: bool,
    /// Skip FIFOs, sockets and device nodes (counted in the report) instead of refusing.
    #[arg(long)]
    skip_special: bool,
    /// Keep all that `cp -a` keeps: the same as --preserve=all.
    #[arg(long, short = 'a')]
    archive: bool,
    /// Also keep, comma-separated: ownership, xattr, acl, links, special, all (mode and
    /// timestamps are accepted and always kept). See above for what each keeps. Alone
    /// (`--preserve`, no list), as GNU cp's: mode,ownership,timestamps.
    #[arg(long, value_name = "LIST", value_parser = crate::cmd::clone_preserve::parse,
          num_args = 0..=1, require_equals = true, default_missing_value = crate::cmd::clone_preserve::GNU_DEFAULT)]
    preserve: Option<Preserve>,
    /// Worker threads (default: one per core: cloning is kernel metadata work, and more
    /// workers than cores only queue on the filesystem's locks; fewer if the open-file limit
    /// requires). More can help when copying to a slow disk or a network filesystem.
    #[arg(long, short = 'j', value_name = "N", default_value_t = 0)]
    jobs: usize,
    /// Print one JSON object (sources, a list of the SRC arguments; destination, method,
    /// files, dirs, symlinks, cloned, copied, hardlinked, symlinked, bytes, bytes_cloned,
    /// bytes_copied, skipped, special, vanished, fallbacks, collisions, elapsed_ms; and
    /// hardlinks: names made as hardlinks of an earlier name, special_made: special files
    /// made again, not_kept: {ownership, xattr, acl, links, special}, entries of which
    /// something --preserve asked for could not be kept).
    #[arg(long)]
    json: bool,
    /// Print nothing but errors: no summary, warnings or progress bar.
    #[arg(long, short = 'q')]
    quiet: bool,
    /// Write the record of every entry written to FILE, one JSON object per line: path
    /// (relative to DST), kind (file, dir, symlink), size, method (clone, copy, hardlink,
    /// symlink; null for directories, symlinks from the source and names made as hardlinks of
    /// an earlier name), source (the SRC that
    /// wrote it), from (its path in that SRC; not for directories) and, with --record-hash,
    /// the hash. A path that is not UTF-8 is written as path_base64 (source_base64,
    /// from_base64): its bytes in base64. FILE's directory is checked (a file made there)
    /// before anything is copied; if FILE cannot be written at the end, a new DST is removed.
    #[arg(long, value_name = "FILE")]
    record: Option<PathBuf>,
    /// Add each file's content hash to the --record lines (as "sha256" or "blake3").
    #[arg(long, value_enum, value_name = "ALGO", requires = "record")]
    record_hash: Option<HashArg>,
    /// Copy file by file even where SRC is a btrfs subvolume that could be copied whole in one
    /// snapshot (every entry of the copy is then the caller's, as described above).
    #[arg(long)]
    per_file: bool,
    /// Make the copy durable before it appears at DST (a merge: before and after it is put in
    /// place), so that once clone returns it survives a power loss. Like `cp`, clone does not
    /// sync otherwise: a killed clone still leaves DST whole or absent, but after a power loss
    /// only --sync promises that.
    #[arg(long)]
    sync: bool,
    /// When another cowtree run is merging into DST (it holds DST's lock), fail at once
    /// (exit 1, nothing changed) instead of waiting for it to finish.
    #[arg(long)]
    no_wait: bool,
    /// Finish the merges into DST that a killed clone left (their journal
    /// `.cowtree-txn.*` in DST): each is completed if it had started putting entries in
    /// place, else undone, and its temporary entries removed. The next merge into DST does
    /// this too. Copies nothing.
    #[arg(long, value_name = "DST", conflicts_with = "paths")]
    recover: Option<PathBuf>,
    /// The directory trees or files to copy, then where the copy goes.
    #[arg(
        required_unless_present = "recover",
        num_args = 2..,
        value_name = "SRC... DST"
    )]
    paths: Vec<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum HashArg {
    Sha256,
    Blake3,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum ModeArg {
    Auto,
    Clone,
    Copy,
    Hardlink,
    Symlink,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum OnExistingArg {
    Fail,
    Overwrite,
    Skip,
}

#[derive(Debug, Serialize)]
struct JsonFallback {
    reason: &'static str,
    description: &'static str,
    per_file: bool,
    count: u64,
    bytes: u64,
    example: String,
}

/// The counts are `null` where the tree was made whole in one call: nothing was visited.
#[derive(Debug, Serialize)]
struct JsonReport {
    sources: Vec<String>,
    destination: String,
    method: &'static str,
    reason: Option<&'static str>,
    reason_description: Option<String>,
    files: Option<u64>,
    dirs: Option<u64>,
    symlinks: Option<u64>,
    cloned: Option<u64>,
    copied: Option<u64>,
    hardlinked: Option<u64>,
    symlinked: Option<u64>,
    bytes: Option<u64>,
    bytes_cloned: Option<u64>,
    bytes_copied: Option<u64>,
    skipped: Option<u64>,
    special: Option<u64>,
    special_made: Option<u64>,
    hardlinks: Option<u64>,
    not_kept: Option<JsonNotKept>,
    vanished: Option<u64>,
    fallbacks: Vec<JsonFallback>,
    replaced: Option<u64>,
    collisions: Vec<JsonCollision>,
    elapsed_ms: u64,
}

/// [`NotKept`]: entries of which something asked for could not be kept.
#[derive(Debug, Serialize)]
struct JsonNotKept {
    ownership: u64,
    xattr: u64,
    acl: u64,
    links: u64,
    special: u64,
}

impl From<&NotKept> for JsonNotKept {
    fn from(n: &NotKept) -> Self {
        JsonNotKept {
            ownership: n.ownership,
            xattr: n.xattr,
            acl: n.acl,
            links: n.links,
            special: n.special,
        }
    }
}

#[derive(Debug, Serialize)]
struct JsonCollision {
    path: String,
    sources: [String; 2],
    action: &'static str,
}

pub fn run(args: Args) -> CmdResult {
    if let Some(dst) = &args.recover {
        return recover(dst, args.json, args.quiet);
    }
    let (srcs, dst) = args
        .paths
        .split_last()
        .map(|(dst, srcs)| (srcs, dst.as_path()))
        .expect("clap requires at least two paths");
    let existed = std::fs::symlink_metadata(dst).is_ok();
    // What can be checked before anything is written is: the record file is made now.
    let record = args
        .record
        .as_deref()
        .map(crate::cmd::clone_record::RecordFile::prepare)
        .transpose()?;
    let on_existing = on_existing(args.on_existing);
    let made = match targets(srcs, dst, on_existing) {
        Targets::New(list) => list,
        Targets::FileOver(_) | Targets::Merge => Vec::new(),
    };
    if args.mode == ModeArg::Hardlink && !args.quiet {
        eprintln!(
            "cowtree: warning: --mode hardlink: the copy shares inodes with the source, so a write through either one changes both (use the default mode for independent copies)"
        );
    }
    let bar = crate::progress::Activity::counting(
        format!("cloning into {}", dst.display()),
        args.quiet || args.json,
        ("entry", "entries"),
    );
    let opts = link_options(&args, &bar);
    let linker = Linker::with_cancel(opts, CANCEL.get_or_init(CancelHandle::new).clone());
    let result = if srcs.len() == 1 {
        linker
            .link_tree(&srcs[0], dst)
            .map_err(|e| cli_error(e, dst, existed, &[]))
    } else if on_existing != OnExisting::Fail {
        linker
            .link_trees(srcs, dst)
            .map_err(|e| cli_error(e, dst, existed, &[]))
    } else {
        link_each_inside(&linker, srcs, dst)
    };
    drop(bar);
    let report = result?;
    if let Some(record) = record {
        commit_record(record, &report, srcs, dst, &made)?;
    }
    crate::interrupt::finished();
    tell(&args, srcs, &report)
}

/// The library's options for what was asked, progress going to `bar`.
fn link_options(args: &Args, bar: &crate::progress::Activity) -> LinkOptions {
    let mode = match args.mode {
        ModeArg::Auto => LinkMode::Auto,
        ModeArg::Clone => LinkMode::Clone,
        ModeArg::Copy => LinkMode::Copy,
        ModeArg::Hardlink => LinkMode::Hardlink,
        ModeArg::Symlink => LinkMode::Symlink,
    };
    LinkOptions {
        mode,
        // --mode clone means clone or fail, in clone as in checkout.
        strict: args.strict || mode == LinkMode::Clone,
        on_existing: on_existing(args.on_existing),
        preserve_times: !args.no_preserve_times,
        jobs: args.jobs,
        skip_special: args.skip_special,
        progress: Some(Arc::new(CloneProgress {
            bar: bar.shared(),
            quiet: args.quiet,
        })),
        record: args.record.is_some(),
        hash: args.record_hash.map(|h| match h {
            HashArg::Sha256 => HashAlgo::Sha256,
            HashArg::Blake3 => HashAlgo::Blake3,
        }),
        // The record's sizes are on disk: hardlinked files are looked at for theirs.
        hardlink_sizes: true,
        sync: args.sync,
        // Windows has no whole-tree copy (no subvolumes, no directory clones): per file.
        whole_tree: !args.per_file && cfg!(unix),
        preserve: preserve(args),
        wait: !args.no_wait,
    }
}

/// What --archive and --preserve ask to keep.
fn preserve(args: &Args) -> Preserve {
    if args.archive {
        return Preserve::ALL;
    }
    args.preserve.unwrap_or_default()
}

/// Writes the --record file; if it cannot be, removes what a new DST made (the contract:
/// nothing is left at a new DST when clone exits 1).
fn commit_record(
    record: crate::cmd::clone_record::RecordFile,
    report: &LinkReport,
    srcs: &[PathBuf],
    dst: &Path,
    made: &[PathBuf],
) -> Result<(), CliError> {
    let path = record.path().to_path_buf();
    let Err(e) = record.commit(report, srcs) else {
        return Ok(());
    };
    let state = if made.is_empty() {
        format!(
            "the clone into {} is complete; only the record is missing",
            dst.display()
        )
    } else {
        remove_made(made)
    };
    Err(
        CliError::new(format!("write record {}: {e}; {state}", path.display()))
            .kind(crate::exit::Kind::Io)
            .path(path),
    )
}

/// The summary (or JSON) on stdout and the warnings on stderr.
fn tell(args: &Args, srcs: &[PathBuf], report: &LinkReport) -> CmdResult {
    let src_label = if srcs.len() == 1 {
        srcs[0].clone()
    } else {
        PathBuf::from(
            srcs.iter()
                .map(|s| s.to_string_lossy())
                .collect::<Vec<_>>()
                .join(", "),
        )
    };
    let reason = report
        .per_file_reason
        .clone()
        .or_else(|| args.per_file.then_some(PER_FILE_ASKED));
    if args.json {
        let json = to_json(srcs, report, reason.as_ref());
        println!(
            "{}",
            serde_json::to_string(&json).map_err(|e| CliError::new(e.to_string()))?
        );
    } else if !args.quiet {
        println!("{}", summary(report, &src_label, reason.as_ref()));
    }
    if args.quiet {
        return Ok(Exit::Ok);
    }
    if let Some(r) = reason.as_ref().filter(|r| r.warns()) {
        eprintln!(
            "cowtree: warning: {r}: copied {} per file instead",
            src_label.display()
        );
    }
    for fb in &report.fallbacks {
        eprintln!("cowtree: warning: {}", warning(fb, &src_label, report));
    }
    for line in crate::cmd::clone_preserve::not_kept_lines(&report.not_kept) {
        eprintln!("cowtree: warning: {line}");
    }
    for c in &report.collisions {
        eprintln!(
            "cowtree: warning: {} and {} both have {}: {}",
            c.sources[0].display(),
            c.sources[1].display(),
            c.path.display(),
            match c.action {
                cowtree_link::CollisionAction::Replaced => "the later one was linked",
                cowtree_link::CollisionAction::Kept => "the earlier one was kept",
            }
        );
    }
    Ok(Exit::Ok)
}

fn on_existing(arg: OnExistingArg) -> OnExisting {
    match arg {
        OnExistingArg::Fail => OnExisting::Fail,
        OnExistingArg::Overwrite => OnExisting::Overwrite,
        OnExistingArg::Skip => OnExisting::Skip,
    }
}

/// The link's cancellation handle, made before the signal handler starts (see
/// [`tell_interrupt`]).
static CANCEL: std::sync::OnceLock<CancelHandle> = std::sync::OnceLock::new();

/// What an interrupt says: a new destination is built in a staging directory beside it (a
/// single file too), which the libraries' undo removes, and then exists whole or not at all;
/// a merge is journaled, and the next merge finishes or undoes it. Registered before the
/// signal handler starts (see `crate::interrupt`).
pub fn tell_interrupt(args: &Args) {
    use crate::interrupt::{Tell, cancel_with, tell};
    // An interrupt cancels the link, which undoes its work before the process exits; one that
    // comes before the link starts makes it refuse to start.
    let cancel = CANCEL.get_or_init(CancelHandle::new).clone();
    cancel_with(move || cancel.cancel());
    let Some((dst, srcs)) = args.paths.split_last() else {
        return;
    };
    match targets(srcs, dst, on_existing(args.on_existing)) {
        Targets::New(list) => {
            for target in list {
                tell(Tell::Exists {
                    yes: format!("{} was already complete", target.display()),
                    no: format!("nothing was created at {}", target.display()),
                    path: target,
                });
            }
        }
        Targets::FileOver(target) => {
            // Made in a staging directory beside its target and renamed out over it.
            tell(Tell::Note(format!(
                "{} is as it was, or the whole new copy",
                target.display()
            )));
        }
        Targets::Merge => tell(Tell::Merge {
            dst: dst.to_path_buf(),
        }),
    }
}

/// What a clone of `srcs` to `dst` makes, as seen before it starts.
enum Targets {
    /// New destinations (none there now): DST, a file inside DST, or each SRC inside DST.
    New(Vec<PathBuf>),
    /// One file replacing the file that is there.
    FileOver(PathBuf),
    /// A merge into the existing directory DST.
    Merge,
}

fn targets(srcs: &[PathBuf], dst: &Path, on_existing: OnExisting) -> Targets {
    let absent = |p: &Path| std::fs::symlink_metadata(p).is_err();
    if srcs.len() > 1 && on_existing == OnExisting::Fail {
        // Each source goes inside DST under its own name, each one a new destination.
        return Targets::New(
            srcs.iter()
                .filter_map(|s| s.file_name())
                .map(|name| dst.join(name))
                .filter(|t| absent(t))
                .collect(),
        );
    }
    if srcs.len() == 1 && std::fs::metadata(&srcs[0]).is_ok_and(|m| m.is_file()) {
        // One file: into DST when DST is a directory, else to DST.
        let target = match (std::fs::metadata(dst), srcs[0].file_name()) {
            (Ok(m), Some(name)) if m.is_dir() => dst.join(name),
            _ => dst.to_path_buf(),
        };
        return if absent(&target) {
            Targets::New(vec![target])
        } else {
            Targets::FileOver(target)
        };
    }
    if absent(dst) {
        Targets::New(vec![dst.to_path_buf()])
    } else {
        Targets::Merge
    }
}

/// Removes the new destinations `made` after a failure that came once they were made (the
/// record could not be written): says what was removed, or what could not be.
fn remove_made(made: &[PathBuf]) -> String {
    let mut removed = Vec::new();
    let mut failed = Vec::new();
    for target in made {
        let (Some(parent), Some(name)) = (target.parent(), target.file_name()) else {
            continue;
        };
        let parent = if parent.as_os_str().is_empty() {
            Path::new(".")
        } else {
            parent
        };
        match cowtree_fs::dir::Dir::open(parent).and_then(|d| d.remove_tree(name)) {
            Ok(()) => removed.push(target.display().to_string()),
            Err(e) => failed.push(format!("{}: {e}", target.display())),
        }
    }
    let mut said = Vec::new();
    if !removed.is_empty() {
        said.push(format!(
            "nothing is left of the copy (removed {})",
            removed.join(", ")
        ));
    }
    if !failed.is_empty() {
        said.push(format!(
            "could not remove the copy ({}); remove it by hand",
            failed.join("; ")
        ));
    }
    said.join("; ")
}

/// What the link reports as it goes: to the progress bar when one is drawn, and the one line
/// saying that the merge waits for another one into DST.
struct CloneProgress {
    bar: Option<Arc<cowtree_fs::Progress>>,
    quiet: bool,
}

impl cowtree_link::Progress for CloneProgress {
    fn scanned(&self, totals: &cowtree_link::ScanTotals) {
        if let Some(bar) = &self.bar {
            cowtree_link::Progress::scanned(&**bar, totals);
        }
    }

    fn advanced(&self, entries: u64, bytes: u64) {
        if let Some(bar) = &self.bar {
            cowtree_link::Progress::advanced(&**bar, entries, bytes);
        }
    }

    fn waiting(&self, dst: &Path) {
        if !self.quiet {
            eprintln!(
                "cowtree: waiting for another cowtree run to finish merging into {} (--no-wait fails instead)",
                dst.display()
            );
        }
    }
}

/// `cowtree clone --recover DST`: finishes the merges a killed clone left in DST.
fn recover(dst: &Path, json: bool, quiet: bool) -> CmdResult {
    let n = Linker::new(LinkOptions::default())
        .recover(dst)
        .map_err(|e| CliError::new(e.to_string()).path(dst))?;
    if json {
        crate::cmd::print_json(&serde_json::json!({
            "destination": dst.to_string_lossy(),
            "recovered": n,
        }))?;
    } else if !quiet {
        println!(
            "{}: {}",
            dst.display(),
            match n {
                0 => "no interrupted merge to finish".to_string(),
                1 => "finished 1 interrupted merge".to_string(),
                n => format!("finished {n} interrupted merges"),
            }
        );
    }
    Ok(Exit::Ok)
}

/// `cp SRC... DIR`: each source inside the existing directory `dst` under its own name, one
/// after the other with one session; the record's paths are relative to `dst`.
fn link_each_inside(linker: &Linker, srcs: &[PathBuf], dst: &Path) -> Result<LinkReport, CliError> {
    match std::fs::symlink_metadata(dst) {
        Ok(m) if m.is_dir() => {}
        _ => {
            return Err(CliError::with_code(
                format!(
                    "with several sources, {} must be an existing directory (or pass --on-existing overwrite or skip to merge the sources into it)",
                    dst.display()
                ),
                2,
            ));
        }
    }
    let mut total: Option<LinkReport> = None;
    let mut done: Vec<PathBuf> = Vec::new();
    for (i, src) in srcs.iter().enumerate() {
        let Some(name) = src.file_name() else {
            return Err(CliError::new(format!(
                "source {} must end in a name",
                src.display()
            )));
        };
        let target = dst.join(name);
        let mut r = linker
            .link_tree(src, &target)
            .map_err(|e| cli_error(e, &target, false, &done))?;
        for entry in &mut r.record {
            entry.path = Path::new(name).join(&entry.path);
            entry.source = i;
        }
        if r.record.len() == 1 && r.record[0].path == Path::new(name).join(name) {
            // A single file's record already names it.
            r.record[0].path = PathBuf::from(name);
        }
        done.push(target);
        match &mut total {
            None => {
                r.destination = dst.to_path_buf();
                total = Some(r);
            }
            Some(t) => t.absorb(r),
        }
    }
    Ok(total.expect("clap requires at least one source"))
}

/// The message for a failed link into `dst`, saying what is at `dst` only when it is known
/// (`existed`: `dst` was there before; `done`: destinations of earlier sources that were
/// linked before this one failed).
fn cli_error(e: LinkError, dst: &Path, existed: bool, done: &[PathBuf]) -> CliError {
    let mut state = if !e.destination_unchanged() {
        String::new()
    } else if existed {
        format!("; nothing was changed at {}", dst.display())
    } else {
        format!("; nothing was created at {}", dst.display())
    };
    if !done.is_empty() {
        let list: Vec<String> = done.iter().map(|p| p.display().to_string()).collect();
        state.push_str(&format!(" (already linked before it: {})", list.join(", ")));
    }
    match e.cause() {
        LinkError::StrictFallback { .. } => CliError::with_code(format!("{e}{state}"), EXIT_STRICT),
        LinkError::DestinationExists(p) => CliError::new(format!(
            "destination {} already exists; pass --on-existing overwrite (replace entries) or --on-existing skip (keep them) to merge into it",
            p.display()
        )),
        _ if e.destination_unchanged()
            && matches!(
                e,
                LinkError::Io { .. }
                    | LinkError::Link { .. }
                    | LinkError::FailedAfterSuccess { .. }
            ) =>
        {
            CliError::new(format!("{e}{state}"))
        }
        _ => CliError::new(format!("{e}{}", if done.is_empty() { "" } else { &state })),
    }
}

fn to_json(srcs: &[PathBuf], r: &LinkReport, reason: Option<&NotUsed>) -> JsonReport {
    let counted = |n: u64| (r.method == Method::PerFile).then_some(n);
    JsonReport {
        sources: srcs
            .iter()
            .map(|s| s.to_string_lossy().into_owned())
            .collect(),
        destination: r.destination.to_string_lossy().into_owned(),
        method: r.method.as_str(),
        reason: reason.map(NotUsed::code),
        reason_description: reason.map(ToString::to_string),
        files: counted(r.files),
        dirs: counted(r.dirs),
        symlinks: counted(r.symlinks),
        cloned: counted(r.cloned),
        copied: counted(r.copied),
        hardlinked: counted(r.hardlinked),
        symlinked: counted(r.symlinked),
        bytes: counted(r.bytes),
        bytes_cloned: counted(r.bytes_cloned),
        bytes_copied: counted(r.bytes_copied),
        skipped: counted(r.skipped),
        special: counted(r.special),
        special_made: counted(r.special_made),
        hardlinks: counted(r.hardlinks),
        not_kept: (r.method == Method::PerFile).then(|| JsonNotKept::from(&r.not_kept)),
        vanished: counted(r.vanished),
        replaced: counted(r.replaced),
        collisions: r
            .collisions
            .iter()
            .map(|c| JsonCollision {
                path: c.path.to_string_lossy().into_owned(),
                sources: [
                    c.sources[0].to_string_lossy().into_owned(),
                    c.sources[1].to_string_lossy().into_owned(),
                ],
                action: c.action.as_str(),
            })
            .collect(),
        fallbacks: r
            .fallbacks
            .iter()
            .map(|f| JsonFallback {
                reason: f.reason,
                description: f.description,
                per_file: f.per_file,
                count: f.count,
                bytes: f.bytes,
                example: f.example.to_string_lossy().into_owned(),
            })
            .collect(),
        elapsed_ms: r.elapsed.as_millis().try_into().unwrap_or(u64::MAX),
    }
}

fn plural(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// The one-line human summary.
fn summary(r: &LinkReport, src: &Path, reason: Option<&NotUsed>) -> String {
    if r.method != Method::PerFile {
        return format!(
            "{}: {} {} (the whole tree in one call) in {:.2} s",
            r.destination.display(),
            match r.method {
                Method::DirectoryClone => "clone of the directory",
                _ => "writable snapshot of the subvolume",
            },
            src.display(),
            r.elapsed.as_secs_f64()
        );
    }
    let mut parts = Vec::new();
    if r.cloned > 0 {
        parts.push(format!(
            "cloned {} ({} shared)",
            plural(r.cloned, "file", "files"),
            human_bytes(r.bytes_cloned)
        ));
    }
    if r.copied > 0 {
        parts.push(format!(
            "copied {} ({})",
            plural(r.copied, "file", "files"),
            human_bytes(r.bytes_copied)
        ));
    }
    if r.hardlinked > 0 {
        parts.push(format!(
            "hardlinked {}",
            plural(r.hardlinked, "file", "files")
        ));
    }
    if r.symlinked > 0 {
        parts.push(format!(
            "symlinked {} to the source",
            plural(r.symlinked, "file", "files")
        ));
    }
    if parts.is_empty() {
        parts.push("no files".to_string());
    }
    let mut line = format!(
        "{}: {}; {}, {}",
        r.destination.display(),
        parts.join(", "),
        plural(r.dirs, "dir", "dirs"),
        plural(r.symlinks, "symlink", "symlinks"),
    );
    if r.skipped > 0 {
        line.push_str(&format!(", {} kept (already there)", r.skipped));
    }
    if r.hardlinks > 0 {
        line.push_str(&format!(
            ", {} kept",
            plural(r.hardlinks, "hardlink", "hardlinks")
        ));
    }
    if r.special_made > 0 {
        line.push_str(&format!(
            ", {} made",
            plural(r.special_made, "special file", "special files")
        ));
    }
    if r.special > 0 {
        line.push_str(&format!(
            ", {} skipped",
            plural(r.special, "special file", "special files")
        ));
    }
    line.push_str(&format!(" in {:.2} s", r.elapsed.as_secs_f64()));
    if let Some(reason) = reason.filter(|r| r.worth_telling(Purpose::Copy)) {
        line.push_str(&format!(" (per file: {reason})"));
    }
    line
}

/// One warning line for one fallback cause.
fn warning(fb: &FallbackCount, src: &Path, r: &LinkReport) -> String {
    let files = plural(fb.count, "file", "files");
    let size = human_bytes(fb.bytes);
    let dst = r.destination.display();
    match fb.reason {
        "cross-device" => format!(
            "{} and {dst} are on different filesystems, so no data can be shared: copied {files} ({size}) instead; put the destination on the source's filesystem to clone",
            src.display()
        ),
        "filesystem-cannot-reflink" => format!(
            "the filesystem of {dst} ({}) cannot reflink: copied {files} ({size}) instead; XFS (with reflink=1) and btrfs can",
            fs_name(&r.destination)
        ),
        "hardlink-cross-device" | "hardlink-not-permitted" => format!(
            "{}: copied {files} ({size}) instead of hardlinking",
            fb.description
        ),
        "source-vanished" => format!(
            "{} vanished from the source while cowtree ran (e.g. {}); {}",
            files,
            fb.example.display(),
            if fb.bytes > 0 {
                "they reappeared and were copied"
            } else {
                "they are not in the destination"
            }
        ),
        _ => format!(
            "{} for {files} (e.g. {}): copied {size} instead",
            fb.description,
            fb.example.display()
        ),
    }
}

fn fs_name(path: &Path) -> std::borrow::Cow<'static, str> {
    let dir = if path.is_dir() {
        path
    } else {
        path.parent().unwrap_or(Path::new("."))
    };
    crate::os::fs_name(dir).unwrap_or("unknown".into())
}

fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_bytes_uses_binary_units() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(5 << 30), "5.0 GiB");
    }

    #[test]
    fn summary_names_each_method_that_ran() {
        let r = LinkReport {
            destination: PathBuf::from("/d"),
            files: 3,
            cloned: 2,
            copied: 1,
            bytes_cloned: 2048,
            bytes_copied: 10,
            dirs: 1,
            symlinks: 0,
            ..LinkReport::default()
        };
        let s = summary(&r, Path::new("/s"), None);
        assert!(
            s.starts_with(
                "/d: cloned 2 files (2.0 KiB shared), copied 1 file (10 B); 1 dir, 0 symlinks in "
            ),
            "{s}"
        );
    }

    #[test]
    fn summary_says_how_many_hardlinks_and_special_files_were_kept() {
        let r = LinkReport {
            destination: PathBuf::from("/d"),
            files: 1,
            cloned: 1,
            hardlinks: 2,
            special_made: 1,
            ..LinkReport::default()
        };
        let s = summary(&r, Path::new("/s"), None);
        assert!(
            s.contains("0 symlinks, 2 hardlinks kept, 1 special file made in "),
            "{s}"
        );
    }
}
