//! `cowtree snapshot`: record a tree (or a JSON manifest) in the store.

use std::path::{Path, PathBuf};

use cowtree_store::{Hash, Store, discover, history, ingest, interchange};
use cowtree_worktree::snapshot::{self, CopyCause, Plan, RecordOptions, Recorded, Target};
use serde_json::json;

use crate::cmd::{
    StoreOpt, choose_store_for_tree, find_worktree, print_json, store_for_tree, store_for_tree_why,
};
use crate::exit::{CliError, CmdResult, Exit};
use crate::units::{bytes, count, secs};

/// Record a directory tree in the store and print the snapshot id.
///
/// Every file is cloned into the store's staging area (copied, with a warning saying why, on a
/// filesystem that cannot share data), hashed, and kept as a read-only blob named by its
/// BLAKE3 hash; the snapshot is a manifest of paths, kinds (file,
/// executable, symlink, empty directory), sizes and blobs. Symlinks are recorded, never
/// followed; fifos, sockets and devices are refused (recorded with --archive, below). The same
/// tree always gives the same id.
///
/// Without DIR, records the worktree containing the current directory (-C DIR names one).
/// For a worktree, the snapshot is incremental: files whose size, times, inode and mode match
/// the worktree's stat cache (and are not racy) take their known blob without being read. The
/// id is the one a fresh snapshot of the same content gets. As a commit does, the snapshot
/// becomes the worktree's base (what status, switch and reset compare with), so a worktree
/// with local changes can be switched after it is recorded; --keep-base leaves the base where
/// it was.
///
/// A btrfs subvolume's root on the store's filesystem (a worktree a checkout made on btrfs is
/// one) is read from a read-only snapshot of it taken first: the tree at one point in time,
/// whatever writers do meanwhile. That snapshot is kept as the snapshot's tree subvolume, so
/// its next checkout is a snapshot of it too.
///
/// Without --store, the store is the one holding the worktree, else one on DIR's filesystem
/// (created on first use, saying where and why). When that store (or the one named) is on
/// another filesystem than DIR (DIR's filesystem cannot share data, or nothing on its path
/// there is writable), recording DIR would copy its data into the store: that is refused
/// (exit 3), saying which store and why, unless --mode copy asks for it.
///
/// --archive (-a), or --preserve=LIST with GNU cp's names (as `cowtree clone` takes them),
/// records also what `cp -a` keeps, so that `cowtree checkout --archive` (or --preserve)
/// gives it back (a checkout without them does not): each entry's
/// owner and group with its set-ID bits (ownership), its extended attributes (xattr: user.*,
/// and trusted.* and security.* where readable, never trusted.SGI_* or security.evm), its
/// ACLs (acl), which files are one inode (links), the FIFOs, sockets and device nodes
/// (special, recorded instead of refused), and every directory's owner, mode and attributes;
/// all (all of them: --archive). Every entry's full mode is recorded too. Such a snapshot is
/// a manifest of version 2 (docs/manifest.md), a different id from the same tree's without
/// --archive; it reads every file (a worktree is not recorded incrementally, and its base
/// stays), and a btrfs subvolume is read in place. Without these options the snapshot is
/// exactly what it was (version 1, the same id).
///
/// With --from-json FILE, records the manifest in FILE instead (the format `cowtree show
/// --json` prints, documented in docs/manifest.md). Its blobs must already be in the store;
/// every entry is validated and nothing is written if any entry is refused. The JSON of a
/// snapshot taken with --archive (version 2) holds all that it records beside its entries,
/// and is recorded as that same snapshot (the same id), checked as its manifest is.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  cowtree snapshot ~/src/app --name v1   # record a tree and name the snapshot
  cd /work/app-a && cowtree snapshot     # record the worktree you are in (its new base)
  cowtree snapshot -C /work/app-a --name v2 --force   # move the name v2 to the new snapshot
  cowtree show --json v1 | cowtree snapshot --from-json -")]
pub struct Args {
    /// The directory to record (default: the worktree containing the current directory).
    #[arg(conflicts_with_all = ["from_json", "worktree"])]
    dir: Option<PathBuf>,
    /// Record the worktree whose root is DIR.
    #[arg(short = 'C', long, value_name = "DIR", conflicts_with = "from_json")]
    worktree: Option<PathBuf>,
    /// Also name the snapshot NAME (like `cowtree tag`); refused when NAME exists, unless
    /// --force.
    #[arg(long, value_name = "NAME")]
    name: Option<String>,
    /// Move --name NAME to the new snapshot when it already names another.
    #[arg(long, requires = "name")]
    force: bool,
    /// Record the JSON manifest in FILE ("-" for stdin) instead of a directory.
    #[arg(long, value_name = "FILE")]
    from_json: Option<PathBuf>,
    /// Print one JSON object: id, store, files, bytes, new_blobs, new_bytes, copied_bytes,
    /// elapsed_ms, frozen (read from a read-only btrfs snapshot of DIR, a subvolume), reason
    /// (why not, on btrfs; null otherwise), archive (what --archive or --preserve asked was
    /// recorded) (and for a worktree: read, listed_dirs, incremental, base_updated; read
    /// counts the files and listed_dirs the directories the stat cache could not vouch for).
    #[arg(long)]
    json: bool,
    /// Print nothing but errors (not even the id).
    #[arg(long, short = 'q')]
    quiet: bool,
    /// Record all that `cp -a` keeps: the same as --preserve=all.
    #[arg(long, short = 'a', conflicts_with = "from_json")]
    archive: bool,
    /// Record also, comma-separated: ownership, xattr, acl, links, special, all (mode and
    /// timestamps are accepted; modes are recorded, times are not). See above. Alone
    /// (`--preserve`, no list), as GNU cp's: mode,ownership,timestamps.
    #[arg(long, value_name = "LIST", value_parser = crate::cmd::clone_preserve::parse, conflicts_with = "from_json",
          num_args = 0..=1, require_equals = true, default_missing_value = crate::cmd::clone_preserve::GNU_DEFAULT)]
    preserve: Option<cowtree_store::Preserve>,
    /// For a worktree, leave its base where it was (status keeps showing the work as changes).
    #[arg(long)]
    keep_base: bool,
    /// Read every file even when DIR is a registered worktree (a fresh, non-incremental
    /// snapshot; the result is the same id; the base stays).
    #[arg(long, conflicts_with = "keep_base")]
    full: bool,
    /// auto: share the files' data with the store, and refuse (exit 3) a tree on another
    /// filesystem than the store, whose data would be copied; copy: copy it then.
    #[arg(long, value_enum, default_value = "auto")]
    mode: Mode,
    #[command(flatten)]
    store: StoreOpt,
    #[command(flatten)]
    jobs: crate::cmd::JobsOpt,
}

/// The refusal to record `tree` into `store` (on another filesystem, chosen because `why`):
/// which store, why that one, and what to do.
fn would_copy(store: &Path, tree: &Path, why: &str) -> CliError {
    let e = cowtree_store::Error::WouldCopy {
        store: store.to_path_buf(),
        tree: tree.to_path_buf(),
    };
    let text = format!(
        "{e} (the store is that one because {why}); --mode copy records it all the same, or \
         name a store on the filesystem of {} with --store",
        tree.display()
    );
    CliError::with_code(text, 3)
        .kind(crate::exit::Kind::Strict)
        .path(tree)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Mode {
    Auto,
    Copy,
}

/// Refuses to move an existing name without --force.
fn check_name(store: &Store, name: Option<&str>, force: bool) -> Result<(), CliError> {
    let Some(name) = name else {
        return Ok(());
    };
    cowtree_store::refs::validate_name(name)?;
    if !force && let Some(old) = cowtree_store::refs::get(store, name)? {
        return Err(CliError::new(format!(
            "name {name:?} already names snapshot {}; pass --force to move it, or choose \
             another name (nothing was recorded)",
            &old.to_hex()[..12]
        )));
    }
    Ok(())
}

/// What an interrupted snapshot leaves: blobs no snapshot names yet (said from before the
/// signal handler starts, see `crate::interrupt`; its staging in the store's tmp/ the store
/// registers for undo as it makes it).
pub fn tell_interrupt() {
    crate::interrupt::tell(crate::interrupt::Tell::Note(
        "no snapshot was recorded unless its id was printed".into(),
    ));
}

/// What frees the blobs an interrupted snapshot stored in `store`.
fn tell_gc(store: &Store) {
    crate::interrupt::tell(crate::interrupt::Tell::Note(format!(
        "blobs already stored are freed by `{}`",
        cowtree_store::error::command(store.root(), &["gc"], Path::new(""))
    )));
}

fn remember(store: &Store, id: &Hash, source: Option<&Path>) {
    if let Err(e) = history::record(store, id, source) {
        eprintln!("cowtree: warning: could not note the snapshot's source: {e}");
    }
}

pub fn run(args: Args, top: Option<&Path>) -> CmdResult {
    args.jobs.apply();
    let opt = args.store.clone().or(top);
    if let Some(file) = &args.from_json {
        return from_json(&args, &opt, file);
    }
    let archive = match (args.archive, args.preserve) {
        (true, _) => Some(cowtree_store::Preserve::ALL),
        (false, p) => p.filter(|p| *p != cowtree_store::Preserve::default()),
    };
    let (store, target, why) = store_and_target(&args, &opt)?;
    let opts = RecordOptions {
        name: args.name.as_deref(),
        keep_base: args.keep_base,
        full: args.full || archive.is_some(),
        copy_across: args.mode == Mode::Copy,
    };
    let plan = snapshot::plan(&store, target, &opts).map_err(|e| match &e {
        cowtree_store::Error::WouldCopy { store, tree } => would_copy(store, tree, &why),
        _ => CliError::from(e),
    })?;
    check_name(&store, args.name.as_deref(), args.force)?;
    tell_gc(&store);
    let unit = match plan {
        Plan::Incremental { .. } => ("entry", "entries"),
        Plan::Full(_) => ("file", "files"),
    };
    let spinner = crate::progress::Activity::counting(
        format!("recording {}", plan.path().display()),
        args.quiet || args.json,
        unit,
    );
    let r = plan.run_preserving(&store, opts.name, spinner.progress(), archive);
    drop(spinner);
    let r = r?;
    crate::interrupt::finished();
    if let Some(e) = &r.history_error {
        eprintln!("cowtree: warning: could not note the snapshot's source: {e}");
    }
    match &r.recorded {
        Recorded::Incremental {
            worktree: wt,
            report: r,
        } => report_incremental(&args, &store, wt, r)?,
        Recorded::Full {
            dir,
            report: r,
            copied,
        } => report_full(&args, &store, dir, r, *copied, &why)?,
    }
    Ok(Exit::Ok)
}

/// `--from-json FILE`: a manifest recorded as it is (its blobs already in the store).
fn from_json(args: &Args, opt: &StoreOpt, file: &Path) -> CmdResult {
    let store = store_for_tree(opt, Path::new("."), args.quiet)?;
    check_name(&store, args.name.as_deref(), args.force)?;
    let started = std::time::Instant::now();
    let text = if file.as_os_str() == "-" {
        let mut v = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut v)?;
        v
    } else {
        std::fs::read(file).map_err(|e| CliError::new(format!("read {}: {e}", file.display())))?
    };
    let manifest = interchange::from_json(&text)
        .map_err(|e| CliError::new(format!("{}: {e}", file.display())))?;
    let id = ingest::record_manifest(&store, &manifest, args.name.as_deref())
        .map_err(|e| CliError::new(format!("{}: {e}", file.display())))?;
    remember(&store, &id, None);
    if args.json {
        print_json(&json!({
            "id": id.to_hex(),
            "store": store.root(),
            "files": manifest.files(),
            "bytes": manifest.bytes(),
            "new_blobs": 0,
            "new_bytes": 0,
            "elapsed_ms": started.elapsed().as_millis() as u64,
        }))?;
    } else if !args.quiet {
        println!("{id}");
    }
    Ok(Exit::Ok)
}

/// The store, what to record in it (a worktree found in a store is recorded there,
/// incrementally; any other tree in full), and why that store (for messages).
fn store_and_target(args: &Args, opt: &StoreOpt) -> Result<(Store, Target, String), CliError> {
    let found = match (&args.dir, &args.worktree) {
        (_, Some(w)) => Some(find_worktree(opt, w, true)?),
        (None, None) => Some(
            find_worktree(opt, &std::env::current_dir()?, false).map_err(|e| {
                CliError::with_code(
                    format!("{e}\n(to record this directory: `cowtree snapshot .`)"),
                    2,
                )
            })?,
        ),
        (Some(d), None) if !args.full => find_worktree(opt, d, true).ok(),
        (Some(_), None) => None,
    };
    if let Some((store, wt)) = found.filter(|_| !args.full) {
        let why = format!("it holds the worktree {}", wt.path.display());
        return Ok((store, Target::Worktree(Box::new(wt)), why));
    }
    let dir = match (&args.dir, &args.worktree) {
        (Some(d), _) | (None, Some(d)) => d.clone(),
        (None, None) => std::env::current_dir()?,
    };
    // Looked up above (or --full): a DIR whose record cannot be read is recorded in full, as
    // one that is no worktree. A store that would have to copy it is refused before it is
    // created (the library's plan refuses it too).
    let chosen = choose_store_for_tree(opt, &dir)?;
    if args.mode != Mode::Copy
        && discover::same_filesystem(&dir, &chosen.root).is_ok_and(|same| !same)
    {
        return Err(would_copy(&chosen.root, &dir, &chosen.why));
    }
    let (store, why) = store_for_tree_why(opt, &dir, args.quiet)?;
    Ok((store, Target::Tree(dir), why))
}

/// What an incremental snapshot of the worktree `wt` says.
fn report_incremental(
    args: &Args,
    store: &Store,
    wt: &cowtree_worktree::registry::Worktree,
    r: &cowtree_worktree::snapshot::SnapshotReport,
) -> Result<(), CliError> {
    if args.json {
        print_json(&json!({
            "id": r.id.to_hex(),
            "store": store.root(),
            "files": r.files,
            "bytes": r.bytes,
            "new_blobs": r.new_blobs,
            "new_bytes": r.new_bytes,
            "read": r.read,
            "listed_dirs": r.listed,
            "incremental": true,
            "base_updated": r.base_updated,
            "elapsed_ms": r.elapsed_ms,
            "frozen": r.frozen,
            "reason": r.reason.as_ref().map(|w| w.code()),
        }))?;
    } else if !args.quiet {
        println!("{}", r.id);
        eprintln!(
            "recorded worktree {}{}: {}, {}; read {} ({}, {}){} in {}",
            wt.path.display(),
            frozen_note(r.frozen),
            count(r.files, "file", "files"),
            bytes(r.bytes),
            count(r.read, "changed file", "changed files"),
            count(r.new_blobs, "new blob", "new blobs"),
            bytes(r.new_bytes),
            if r.base_updated { "; now its base" } else { "" },
            secs(r.elapsed_ms)
        );
        reason_note(r.reason.as_ref());
    }
    Ok(())
}

/// What a full snapshot of `dir` says; `copied`: why data was copied into the store.
fn report_full(
    args: &Args,
    store: &Store,
    dir: &Path,
    r: &cowtree_store::ingest::IngestReport,
    copied: Option<CopyCause>,
    why: &str,
) -> Result<(), CliError> {
    if args.json {
        print_json(&json!({
            "id": r.id.to_hex(),
            "store": store.root(),
            "files": r.files,
            "bytes": r.bytes,
            "new_blobs": r.new_blobs,
            "new_bytes": r.new_bytes,
            "cloned_bytes": r.cloned_bytes,
            "copied_bytes": r.copied_bytes,
            "elapsed_ms": r.elapsed_ms,
            "frozen": r.frozen,
            "reason": r.reason.as_ref().map(|w| w.code()),
            "archive": args.archive || args.preserve.is_some_and(|p| p != cowtree_store::Preserve::default()),
        }))?;
    } else if !args.quiet {
        println!("{}", r.id);
        eprintln!(
            "recorded {}, {} ({}, {}){} in {}",
            count(r.files, "file", "files"),
            bytes(r.bytes),
            count(r.new_blobs, "new blob", "new blobs"),
            bytes(r.new_bytes),
            frozen_note(r.frozen),
            secs(r.elapsed_ms)
        );
        reason_note(r.reason.as_ref());
    }
    if let Some(cause) = copied
        && !args.quiet
    {
        eprintln!(
            "cowtree: warning: {}",
            copied_warning(store, dir, r.copied_bytes, cause, why)
        );
    }
    Ok(())
}

/// Said of a snapshot read from a read-only snapshot of its tree.
fn frozen_note(frozen: bool) -> &'static str {
    if frozen {
        " (read from a read-only btrfs snapshot of it, kept as its tree subvolume)"
    } else {
        ""
    }
}

/// Why a tree on btrfs was read in place, once, where that is worth saying (the seam's rule,
/// [`cowtree_fs::whole_tree::NotUsed::worth_telling`]).
fn reason_note(reason: Option<&cowtree_fs::whole_tree::NotUsed>) {
    use cowtree_fs::whole_tree::Purpose;
    match reason {
        Some(why) if why.worth_telling(Purpose::Read) => {
            eprintln!("cowtree: read in place, not from a read-only snapshot: {why}");
        }
        Some(why) if why.warns() => {
            eprintln!("cowtree: warning: read in place, not from a read-only snapshot: {why}");
        }
        _ => {}
    }
}

/// Why data had to be copied into the store (chosen because `why`).
fn copied_warning(store: &Store, dir: &Path, copied: u64, cause: CopyCause, why: &str) -> String {
    match cause {
        CopyCause::OtherFilesystem => format!(
            "{} copied into the store {} (--mode copy): it is on another filesystem than {} \
             (it is the store because {why}), so it holds its own copy of that data",
            bytes(copied),
            store.root().display(),
            dir.display()
        ),
        CopyCause::NoReflink(fs) => format!(
            "{} copied into the store {}: the filesystem of {} ({fs}) cannot share data, so \
             the store holds its own copy. XFS (made with reflink=1) and btrfs can",
            bytes(copied),
            store.root().display(),
            dir.display()
        ),
    }
}
