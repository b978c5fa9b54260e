//! `cowtree gc`: free what no snapshot needs.

use std::path::Path;

use serde_json::json;

use crate::cmd::{StoreOpt, print_json, store_here};
use crate::exit::{CmdResult, Exit};
use crate::units::{bytes, count};

/// Delete unreferenced blobs and stale staging; report what was freed.
///
/// Deletes blobs no snapshot references, staging left by interrupted commands (in the store,
/// and the `.<name>.cowtree-checkout-*` directories that checkouts killed outright left beside
/// their destinations, named one per line), tree subvolumes (btrfs) of snapshots that are gone
/// or that a killed command left half made, and registry records of worktrees that no longer
/// exist (or whose path now holds something else). Also takes back what `cowtree git
/// worktree add` runs killed outright left in their repositories (staging, registration,
/// branch), found through their records in $XDG_STATE_HOME/cowtree/git-worktree-add, with or
/// without a store.
///
/// gc waits for running snapshots and checkouts to finish (it takes the store lock
/// exclusively) and never deletes a blob a recorded snapshot references.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  cowtree gc --dry-run             # what would be freed
  cowtree rm v1 && cowtree gc      # free the blobs only v1 needed")]
pub struct Args {
    /// Report what would be deleted without deleting anything.
    #[arg(long)]
    dry_run: bool,
    /// Print one JSON object: blobs_removed, bytes_freed, blobs_kept, staging_removed,
    /// staging_beside (paths), worktrees_pruned, dry_run, store, git_runs_cleaned,
    /// git_cleaned (what was done, one phrase each), git_runs_left (killed runs whose staging
    /// could not be removed, left for the next gc).
    #[arg(long)]
    json: bool,
    /// Print nothing but errors.
    #[arg(long, short = 'q')]
    quiet: bool,
    #[command(flatten)]
    store: StoreOpt,
}

pub fn run(args: Args, top: Option<&Path>) -> CmdResult {
    // First what killed `cowtree git worktree add` runs left (in git repositories, whatever
    // the store): found through their records, not through a store.
    let git = killed_git_runs(&args)?;
    let opt = args.store.clone().or(top);
    if opt.store.is_none() && std::env::var_os("COWTREE_STORE").is_none() {
        // No store at all: nothing else to collect, and no reason to fail.
        let here = cowtree_store::discover::store_here(&crate::cmd::cwd()?)?;
        if !cowtree_store::discover::exists(&here) {
            return no_store(&args, &here, &git);
        }
    }
    let store = store_here(&opt)?;
    let r = collect(&args, &store)?;
    // Even with --quiet: something gc was asked to clean is still there.
    for (path, error) in &r.staging_kept {
        eprintln!(
            "cowtree: warning: could not remove {} (left by a checkout that was killed): {error}; \
             the next gc tries again",
            path.display()
        );
    }
    if args.json {
        print_json(&json!({
            "blobs_removed": r.blobs_removed,
            "bytes_freed": r.bytes_freed,
            "blobs_kept": r.blobs_kept,
            "staging_removed": r.staging_removed,
            "staging_beside": r.staging_beside,
            "worktrees_pruned": r.worktrees_pruned,
            "trees_removed": r.trees_removed.iter().map(|(p, _)| p).collect::<Vec<_>>(),
            "dry_run": r.dry_run,
            "store": store.root(),
            "git_runs_cleaned": git.records,
            "git_cleaned": git.cleaned,
            "git_runs_left": git.left,
        }))?;
    } else if !args.quiet {
        summary(&r);
    }
    Ok(Exit::Ok)
}

/// Takes back what killed `cowtree git worktree add` runs left, and says what it did.
fn killed_git_runs(args: &Args) -> Result<cowtree_git::KilledRuns, crate::exit::CliError> {
    let git = match crate::cmd::git::run_registry() {
        Some(reg) if !args.dry_run => {
            cowtree_git::clean_killed_runs(&reg).map_err(crate::cmd::git_error::git_error)?
        }
        _ => cowtree_git::KilledRuns::default(),
    };
    if !args.quiet && !args.json {
        for c in &git.cleaned {
            println!("git worktree add killed earlier: {c}");
        }
    }
    if git.left > 0 && !args.json {
        eprintln!(
            "cowtree: gc: {} interrupted `git worktree add` run(s) left as they are: their \
             partial worktree could not be removed (above); the next `cowtree gc` tries again",
            git.left
        );
    }
    Ok(git)
}

/// The report when there is no store: only the git runs were collected.
fn no_store(args: &Args, here: &Path, git: &cowtree_git::KilledRuns) -> CmdResult {
    if args.json {
        print_json(&json!({
            "blobs_removed": 0, "bytes_freed": 0, "blobs_kept": 0,
            "staging_removed": 0, "staging_beside": [], "worktrees_pruned": 0,
            "dry_run": args.dry_run, "store": null,
            "git_runs_cleaned": git.records, "git_cleaned": git.cleaned,
            "git_runs_left": git.left,
        }))?;
    } else if !args.quiet {
        println!(
            "no store here ({}): nothing else to collect",
            here.display()
        );
    }
    Ok(Exit::Ok)
}

/// The store's gc, with the records of worktrees whose path now holds something else.
fn collect(
    args: &Args,
    store: &cowtree_store::Store,
) -> Result<cowtree_store::gc::GcReport, crate::exit::CliError> {
    // Records whose path now holds something else (the worktree was deleted or moved and the
    // path reused) would keep their base from `cowtree rm`; the store's gc drops those whose
    // path is gone, this drops the replaced ones, under gc's exclusive lock (a checkout in
    // progress holds the store shared from before it registers until its tree is in place).
    let dry_run = args.dry_run;
    let mut prune_replaced = |store: &cowtree_store::Store| -> cowtree_store::Result<u64> {
        let mut replaced = 0;
        for (id, _, presence) in cowtree_worktree::registry::list(store)? {
            if presence == cowtree_worktree::registry::Presence::Replaced {
                if !dry_run {
                    cowtree_store::worktree_records::remove(store, &id)?;
                }
                replaced += 1;
            }
        }
        Ok(replaced)
    };
    crate::interrupt::tell(crate::interrupt::Tell::Note(format!(
        "`{}` finishes it",
        cowtree_store::error::command(store.root(), &["gc"], Path::new(""))
    )));
    let spinner = crate::progress::Activity::counting(
        format!("collecting garbage in {}", store.root().display()),
        args.quiet || args.json,
        ("blob", "blobs"),
    );
    let r = cowtree_store::gc::gc_with(store, dry_run, &mut prune_replaced, spinner.progress());
    drop(spinner);
    Ok(r?)
}

/// The human summary of what gc removed (or would).
fn summary(r: &cowtree_store::gc::GcReport) {
    let verb = if r.dry_run { "would remove" } else { "removed" };
    println!(
        "{verb} {} ({}), {}, {}; {} kept",
        count(r.blobs_removed, "blob", "blobs"),
        bytes(r.bytes_freed),
        count(r.staging_removed, "staging entry", "staging entries"),
        count(
            r.worktrees_pruned,
            "stale worktree record",
            "stale worktree records"
        ),
        count(r.blobs_kept, "blob", "blobs"),
    );
    for (p, _) in &r.trees_removed {
        println!("{verb} tree subvolume {}", p.display());
    }
    for p in &r.staging_beside {
        println!(
            "{verb} {} (left by a checkout that was killed)",
            p.display()
        );
    }
}
