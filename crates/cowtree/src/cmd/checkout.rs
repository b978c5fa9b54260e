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
/// A snapshot taken with `cowtree snapshot --archive` (or --preserve=LIST) records owners,
/// modes with set-ID bits, attributes, ACLs, hardlinks and special files. Its checkout gives
/// none of that back unless asked, as `cp -a`, `rsync -a` and `tar --same-owner` must be
/// asked: without --archive or --preserve the tree is made as for any snapshot (files owned by
/// you with mode 0644 or 0755, no set-ID bits, attributes or ACLs, each hardlinked name a file
/// of its own), and the special files it records (FIFOs, sockets, device nodes) are not made:
/// one line says how many. --archive (-a) gives back all it recorded, --preserve=LIST the
/// items named, in cp's order: special files made, hardlinked names linked again, then each
/// entry's owner and group, its mode (set-ID bits only with its owner and group kept), its
/// extended attributes and ACLs, and each directory's last. With any item, every entry also
/// gets its recorded mode, as cp keeps the mode. An item the snapshot does not record is said
/// in one warning line (exit 0). As root all of it is kept; otherwise what this user may (the
/// group where a member, user.* attributes, FIFOs and sockets), with one warning line per
/// kind not kept (exit 0). As root, --archive of a snapshot from a remote you do not trust
/// lets it make device nodes, set-user-ID files owned by root and files of any owner in DST:
/// ask only for what you need (e.g. --preserve=links), or check it out as another user.
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
    /// otherwise), tree_built, archive (the tree was given some of
    /// what `snapshot --archive` recorded), recorded (the items the snapshot records:
    /// ownership, xattr, acl, links, special; [] for a snapshot without --archive), preserve
    /// (the items given: asked and recorded), not_recorded (asked and not recorded),
    /// special_not_made (special files recorded and not made: special not asked), not_kept
    /// {ownership, xattr, acl, links, special} (entries of which something asked and recorded
    /// could not be kept).
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
    /// Give back all a `snapshot --archive` recorded: the same as --preserve=all. As root,
    /// that includes device nodes, set-user-ID files and other owners: see above.
    #[arg(long, short = 'a')]
    archive: bool,
    /// Give back, comma-separated, what of a `snapshot --archive`'s record to give the tree:
    /// ownership, xattr, acl, links, special, all (mode and timestamps are accepted and change
    /// nothing). Without it or --archive, none of it. Alone (`--preserve`, no list), as GNU
    /// cp's: mode,ownership,timestamps.
    #[arg(long, value_name = "LIST", value_parser = crate::cmd::clone_preserve::parse,
          num_args = 0..=1, require_equals = true, default_missing_value = crate::cmd::clone_preserve::GNU_DEFAULT)]
    preserve: Option<cowtree_store::Preserve>,
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
        preserve: match (args.archive, args.preserve) {
            (true, _) => cowtree_store::Preserve::ALL,
            (false, p) => p.unwrap_or_default(),
        },
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
    // What was asked and the snapshot does not record; the special files it records and
    // were not asked for; what it recorded and this checkout could not give (not root): one
    // line per kind, as clone says it.
    if !args.quiet {
        for line in archive_lines(&id, r) {
            eprintln!("cowtree: {line}");
        }
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

/// What is said of a `snapshot --archive`'s record beside the summary: what was asked and the
/// snapshot does not record (a warning), and the special files it records that were not made.
fn archive_lines(id: &Hash, r: &CheckoutReport) -> Vec<String> {
    let short = &id.to_hex()[..12];
    let mut lines = Vec::new();
    if !r.not_recorded.is_none() {
        lines.push(match r.recorded {
            None => format!(
                "warning: snapshot {short} records none of what --archive and --preserve give \
                 back (it was not taken with snapshot --archive): checked out without it"
            ),
            Some(_) => format!(
                "warning: snapshot {short} does not record {} (it was taken with snapshot \
                 --preserve=LIST without it): checked out without it",
                items(r.not_recorded).join(", ")
            ),
        });
    }
    if r.special_not_made > 0 {
        let n = r.special_not_made;
        lines.push(format!(
            "{n} special {} (FIFOs, sockets, device nodes) recorded by snapshot {short} {} not \
             made: --archive or --preserve=special makes them",
            if n == 1 { "file" } else { "files" },
            if n == 1 { "was" } else { "were" },
        ));
    }
    lines
}

/// The names of the items of `p` (`--preserve`'s).
fn items(p: cowtree_store::Preserve) -> Vec<&'static str> {
    cowtree_store::interchange::archive_items(p)
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
        "recorded": r.recorded.map(items).unwrap_or_default(),
        "preserve": items(r.restored),
        "not_recorded": items(r.not_recorded),
        "special_not_made": r.special_not_made,
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
