//! `cowtree checkout`: materialize a snapshot as a new worktree.

use std::path::{Path, PathBuf};

use cowtree_store::checkout::{CheckoutMode, CheckoutOptions, CheckoutReport};
use cowtree_store::{Hash, Store};
use cowtree_worktree::checkout::CheckedOut;
use serde_json::json;

use crate::cmd::pull::Beside;
use crate::cmd::{StoreOpt, checkout_store, print_json};
use crate::exit::{CliError, CmdResult, Exit};
use crate::units::{bytes, count, secs};

/// Check out a snapshot into a new directory.
///
/// SNAPSHOT is a full id, a unique id prefix of at least 8 hex digits, or a name. DST must not
/// exist or must be an empty directory. The tree is built in a staging directory beside DST
/// (`.<name>.cowtree-checkout-*`) and renamed into place, so DST is never left half-written.
/// Files are cloned from the store (sharing data blocks; writes stay private to this worktree)
/// with mode 0644, or 0755 for executables; symlinks are recreated exactly. The worktree is
/// recorded in the store's registry with a stat cache of what was written (see `cowtree
/// status`), and remembers its store, so commands run inside it need no --store.
///
/// On btrfs, with the store on the same filesystem, DST is instead one writable snapshot of the
/// snapshot's read-only tree subvolume in the store (built from the blobs by the first such
/// checkout): milliseconds whatever the tree's size, the same tree, and a status that reads no
/// file. --json says which method ran ("subvolume" or "per-file") and, when per file on btrfs,
/// why. A worktree on btrfs is a subvolume either way.
///
/// A snapshot taken with `cowtree snapshot --archive` (or --preserve=LIST) gives back what it
/// recorded, in cp's order: special files made, hardlinked names linked again, then each
/// entry's owner and group, its mode with set-ID bits, its extended attributes and ACLs, and
/// each directory's last. As root all of it; otherwise what this user may (the group where
/// a member, user.* attributes, FIFOs and sockets), with one warning line per kind not kept
/// (exit 0); --json says "archive" and counts "not_kept".
///
/// Without --store, the snapshot is looked up in the store of DST's filesystem, then in the
/// other known stores. If the store is on another filesystem than DST, files are copied:
/// --mode auto warns before starting, --mode clone refuses (exit 3). With --pull, a snapshot
/// that the store of DST's filesystem (or the one named) lacks is pulled into it first, even
/// when a store on another filesystem has it, so that the checkout clones. A snapshot found
/// nowhere exits 8, naming the stores searched.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  cowtree checkout v1 /work/app-a              # a worktree of the snapshot named v1
  cowtree checkout 3f2a9c1e /work/app-b        # by id prefix
  cowtree checkout --mode clone v1 /work/app-c # clone or fail (exit 3), like cp --reflink=always
  cowtree checkout --json v1 /work/app-d       # the report as JSON")]
pub struct Args {
    /// Snapshot id, id prefix (8+ hex digits) or name.
    snapshot: String,
    /// The new worktree directory.
    dst: PathBuf,
    /// auto: clone, else copy (reporting it); clone: clone every file or fail with exit 3,
    /// like `cp --reflink=always` (nothing is left at DST; the same as `clone --mode clone`);
    /// copy: always copy the data, into blocks of the worktree's own, never shared with the
    /// store.
    #[arg(long, value_enum, default_value = "auto")]
    mode: Mode,
    /// The same as --mode clone.
    #[arg(long)]
    strict: bool,
    /// Print one JSON object: files, dirs, symlinks, cloned, copied, bytes,
    /// fallbacks [{reason, count}], cross_device, store, elapsed_ms, method ("subvolume" or
    /// "per-file"), reason and reason_description (why not one snapshot, when per file; null
    /// otherwise), tree_built, archive (the snapshot recorded what `snapshot --archive`
    /// keeps, given to the tree), not_kept {ownership, xattr, acl, links, special} (entries of
    /// which something recorded could not be kept).
    #[arg(long)]
    json: bool,
    /// Print nothing but errors.
    #[arg(long, short = 'q')]
    quiet: bool,
    #[command(flatten)]
    store: StoreOpt,
    #[command(flatten)]
    jobs: crate::cmd::JobsOpt,
    /// When the store of DST's filesystem (or the one named) lacks SNAPSHOT, pull it into that
    /// store from a remote first (see `cowtree pull`).
    #[arg(long)]
    pull: bool,
    /// The remote for --pull (default: origin, else the only one configured).
    #[arg(long, requires = "pull")]
    remote: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Mode {
    Auto,
    Clone,
    Copy,
}

/// What an interrupt says: whether DST exists (the staging beside it, and its registration in
/// the store, the store's checkout registers for undo as it makes them). Registered before
/// the signal handler starts (see `crate::interrupt`).
pub fn tell_interrupt(args: &Args) {
    if args.dst.symlink_metadata().is_err() {
        crate::interrupt::tell(crate::interrupt::Tell::Exists {
            path: args.dst.clone(),
            yes: format!(
                "{} was already complete (`cowtree status -C {}` checks it)",
                args.dst.display(),
                cowtree_store::error::shell_word(&args.dst)
            ),
            no: format!("nothing was created at {}", args.dst.display()),
        });
    }
}

pub fn run(args: Args, top: Option<&Path>) -> CmdResult {
    args.jobs.apply();
    let opt = args.store.clone().or(top);
    let opts = CheckoutOptions {
        mode: match args.mode {
            Mode::Auto => CheckoutMode::Auto,
            Mode::Clone => CheckoutMode::Clone,
            Mode::Copy => CheckoutMode::Copy,
        },
        strict: args.strict || args.mode == Mode::Clone,
    };
    let spinner = crate::progress::Activity::counting(
        format!("checking out {} into {}", args.snapshot, args.dst.display()),
        args.quiet || args.json,
        ("file", "files"),
    );
    let warn = |w: &str| {
        if !args.quiet {
            eprintln!("cowtree: {w}")
        }
    };
    let (store, id, made) = make(&args, &opt, opts, &warn, spinner.progress())?;
    crate::interrupt::finished();
    let r = &made.report;
    // The marker is best effort: without user extended attributes the worktree is still found
    // by searching the known stores. The checkout itself is complete and registered: a
    // missing stat cache only costs speed (the first status reads every file), so it is a
    // warning.
    if let Some(e) = &made.cache_error {
        eprintln!(
            "cowtree: warning: {}: could not record the stat cache ({e}); the first status \
             will read every file",
            r.path.display()
        );
    }
    drop(spinner);
    if args.json {
        print_json(&report_json(&id, &store, r))?;
    } else if !args.quiet {
        tell(&id, r);
    }
    // What a snapshot --archive recorded and this checkout could not give (not root): one
    // line per kind, as clone says it.
    if !args.quiet {
        for line in crate::cmd::clone_preserve::not_kept_lines(&r.not_kept) {
            eprintln!("cowtree: warning: {line}");
        }
    }
    Ok(Exit::Ok)
}

/// The worktree made at DST: from the store of DST's filesystem (or the one named), where the
/// library's decision (`cowtree_store::source`) finds the snapshot; with --pull, a snapshot
/// that store lacks is pulled into it, and checked out as it arrives.
fn make(
    args: &Args,
    opt: &StoreOpt,
    opts: CheckoutOptions,
    warn: &dyn Fn(&str),
    progress: &cowtree_fs::Progress,
) -> Result<(Store, Hash, CheckedOut), CliError> {
    let quiet = args.quiet;
    let (store, found) = checkout_store(opt, &args.dst, &args.snapshot, args.pull, quiet)?;
    let from_store = |store: &Store, id: &Hash| {
        cowtree_worktree::checkout::checkout(store, id, &args.dst, opts, warn, progress)
            .map_err(CliError::from)
    };
    if let Some(id) = found {
        let made = from_store(&store, &id)?;
        return Ok((store, id, made));
    }
    let (id, made) = crate::cmd::pull::pull_beside(
        &store,
        args.remote.as_deref(),
        &args.snapshot,
        args.json || quiet,
        |beside| match beside {
            Beside::Arriving(id, arriving) => cowtree_worktree::checkout::checkout_arriving(
                &store, &id, &args.dst, opts, warn, progress, arriving,
            )
            .map_err(CliError::from),
            Beside::InStore(id) => from_store(&store, &id),
        },
    )?;
    Ok((store, id, made))
}

/// The checkout's `--json` object.
fn report_json(id: &Hash, store: &Store, r: &CheckoutReport) -> serde_json::Value {
    let fallbacks: Vec<_> = r
        .fallbacks
        .iter()
        .map(|(reason, count)| json!({"reason": reason, "count": count}))
        .collect();
    json!({
        "id": id.to_hex(),
        "path": r.path.to_string_lossy(),
        "store": store.root().to_string_lossy(),
        "files": r.files,
        "dirs": r.dirs,
        "symlinks": r.symlinks,
        "cloned": r.cloned,
        "copied": r.copied,
        "bytes": r.bytes,
        "fallbacks": fallbacks,
        "cross_device": r.cross_device,
        "worktree": r.worktree_id,
        "elapsed_ms": r.elapsed_ms,
        "method": r.method.as_str(),
        "reason": r.reason.as_ref().map(|why| why.code()),
        "reason_description": r.reason.as_ref().map(|why| why.to_string()),
        "tree_built": r.tree_built,
        "archive": r.archive,
        "not_kept": {
            "ownership": r.not_kept.ownership,
            "xattr": r.not_kept.xattr,
            "acl": r.not_kept.acl,
            "links": r.not_kept.links,
            "special": r.not_kept.special,
        },
    })
}

/// The checkout's summary line, and why the tree went per file and what was copied, where
/// that is worth saying.
fn tell(id: &Hash, r: &CheckoutReport) {
    // How the tree was made: one snapshot of the store's tree subvolume, or per file.
    let how = match r.method {
        cowtree_fs::whole_tree::Method::PerFile => {
            format!("{} cloned, {} copied", r.cloned, r.copied)
        }
        _ if r.tree_built => format!(
            "a snapshot of the store's tree subvolume, built now: {} cloned, {} copied",
            r.cloned, r.copied
        ),
        _ => "a snapshot of the store's tree subvolume".to_string(),
    };
    println!(
        "checked out {} into {}: {} ({how}), {}, {}; {} in {}",
        &id.to_hex()[..12],
        r.path.display(),
        count(r.files, "file", "files"),
        count(r.dirs, "dir", "dirs"),
        count(r.symlinks, "symlink", "symlinks"),
        bytes(r.bytes),
        secs(r.elapsed_ms)
    );
    // Said once, where the whole-tree method could have applied (btrfs) and did not (a
    // store on another filesystem was warned about already).
    if let Some(why) = &r.reason
        && !r.cross_device
    {
        if why.worth_telling(cowtree_fs::whole_tree::Purpose::Copy) {
            eprintln!("cowtree: per file: {why}");
        } else if why.warns() {
            eprintln!("cowtree: warning: per file: {why}");
        }
    }
    // A store on another filesystem was warned about before the checkout started.
    for (reason, n) in r.fallbacks.iter().filter(|_| !r.cross_device) {
        eprintln!(
            "cowtree: warning: {} copied because {reason}",
            count(*n, "file", "files")
        );
    }
}
