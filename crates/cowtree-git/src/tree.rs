//! How DST's tree is made: the one place that decides, and each way.
//!
//! Per file ([`Method::PerFile`]): the target tree's directories are created in a new staging
//! directory, then each tracked file is reflinked from SRC when SRC's index proves it clean,
//! else written from objects ([`crate::build`]), while the ignored entries to bring are cloned
//! beside ([`crate::ignored`]). By snapshot ([`Method::Subvolume`], [`crate::by_snapshot`]):
//! where SRC's worktree is a btrfs subvolume root, the staging directory is one writable
//! snapshot of it, which is then made into exactly what the per-file way makes. Nothing
//! ([`Method::None`]): `--no-checkout` and `--orphan` leave DST empty but for its `.git` file,
//! as git does.
//!
//! By a spare ([`Method::Spare`], [`crate::pool`]): where the repository keeps a pool of
//! spare worktrees and one of the commit fits, it is proven untouched and renamed to the
//! staging name.
//!
//! [`make`] creates the staging directory and the tree in it: it tries a spare first, then the
//! snapshot (unless the options ask for per-file work), which says why it was not used when
//! it was not ([`crate::way::PerFileReason`]), and makes the tree per file then.

use cowtree_fs::staging::Staging;

use crate::build::{self, Made as EntryMade};
use crate::error::{Error, Result};
use crate::ignored;
use crate::options::BranchChoice;
use crate::way::{Input, Made, Method, Prepared};

/// Makes the staging directory `input.staging_name` in `input.parent`, and DST's tree in it:
/// by snapshot where [`crate::by_snapshot`] can and may, else per file. On an error the staging
/// directory is gone.
pub fn make<'p>(input: &Input<'p>) -> Result<(Staging<'p>, Made)> {
    let opts = input.opts;
    if !opts.checkout || matches!(opts.branch, BranchChoice::Orphan(_)) || input.commit.is_none() {
        let staging = create_staging(input)?;
        return Ok((
            staging,
            Made {
                method: Method::None,
                // An unborn branch gets an empty index (git's `reset --hard` writes one), whose
                // cache-tree names the empty tree; `--no-checkout` none.
                index: opts.checkout.then(|| {
                    gix::index::File::from_state(
                        gix::index::State::new(input.repo.object_hash()),
                        input.repo.index_path(),
                    )
                }),
                index_tree: opts.checkout.then(|| gix::index::extension::Tree {
                    name: Default::default(),
                    id: gix::ObjectId::empty_tree(input.repo.object_hash()),
                    num_entries: Some(0),
                    children: Vec::new(),
                }),
                ..Made::default()
            },
        ));
    }
    #[cfg(unix)]
    let pool_note = match crate::pool::claim(input)? {
        crate::pool::Claim::Made(staging, made) => return Ok((staging, *made)),
        crate::pool::Claim::NotUsed(why) => why,
    };
    // Windows: no pool of spare worktrees (its claim renames a directory tree that may hold
    // open handles, and its proof reads unix stat data): the normal way, said once where the
    // repository has a pool.
    #[cfg(windows)]
    let pool_note = crate::pool_windows::note(input);
    let prep = Prepared::new(input)?;
    #[cfg(unix)]
    let reason = match crate::by_snapshot::attempt(input, &prep)? {
        crate::by_snapshot::Attempt::Made(staging, made) => {
            prep.sizes.save();
            let mut made = *made;
            made.pool = pool_note;
            if let Some(stats) = made.stats.take() {
                prep.finish_with_stats(input, stats, &mut made)?;
            }
            return Ok((staging, made));
        }
        crate::by_snapshot::Attempt::NotUsed(reason) => reason,
    };
    // Windows: no btrfs snapshot; per file always.
    #[cfg(windows)]
    let reason = crate::pool_windows::per_file_reason(input);
    let staging = create_staging(input)?;
    let mut made = per_file(input, &prep, &staging)?;
    made.method = Method::PerFile;
    made.reason = Some(reason);
    made.pool = pool_note;
    prep.sizes.save();
    Ok((staging, made))
}

fn create_staging<'p>(input: &Input<'p>) -> Result<Staging<'p>> {
    Staging::create(input.parent, input.staging_name.to_owned(), 0o777).map_err(|e| {
        if e.kind() == std::io::ErrorKind::Interrupted {
            Error::Interrupted
        } else {
            Error::io("create directory", input.staging_path)(e)
        }
    })
}
fn per_file(input: &Input<'_>, prep: &Prepared, staging: &Staging<'_>) -> Result<Made> {
    let opts = input.opts;
    let src_root = prep.src_root.as_deref();
    let staging_path = input.staging_path;
    let src_index = &prep.src_index;
    let mut target = prep.target.clone();
    let selection = prep.selection(opts);
    let sync_repo = &prep.sync_repo;
    let fallback = build::Fallback::default();
    let build_input = build::BuildInput {
        repo: sync_repo,
        src_root,
        src_index,
        evidence: prep.evidence,
        sizes: &prep.sizes,
        target: &target,
        staging: &staging.dir,
        staging_path,
        with_changes: opts.with_changes,
        strict: opts.strict,
        umask: input.umask,
        filters: &prep.filters,
    };
    build::create_dirs(&build_input)?;
    // The tracked files and the ignored ones are independent once the directories exist: the
    // walk for ignored entries runs while the pool clones tracked files, and its own clones
    // join the same pool.
    let (results, ignored) = rayon::join(
        || build::build(&build_input, &fallback),
        || match src_root {
            Some(src_root) if selection.takes_any() => ignored::copy_ignored(
                &prep.src_repo.to_thread_local(),
                src_root,
                src_index,
                &target,
                &staging.dir,
                staging_path,
                &selection,
                opts.strict,
            )
            .map(Some),
            _ => Ok(None),
        },
    );
    let (results, ignored) = (results?, ignored?);

    let mut made = Made {
        src: prep.src_root.clone(),
        counts: crate::AddCounts {
            entries: results.len() as u64,
            ..Default::default()
        },
        ignored,
        fallback: fallback.first.into_inner().unwrap_or_default(),
        ..Made::default()
    };
    {
        let backing = target.path_backing().to_vec();
        for (e, r) in target.entries_mut().iter_mut().zip(&results) {
            made.count_built(r);
            match r.made {
                EntryMade::Submodule => made.submodules.push(e.path_in(&backing).to_string()),
                EntryMade::Skipped => {
                    made.counts.entries -= 1;
                    made.counts.skipped += 1;
                }
                _ => {}
            }
            e.stat = r.stat.unwrap_or_default();
        }
    }
    if made.fallback.is_none() {
        made.fallback = made.ignored.as_ref().and_then(|i| i.fallback.clone());
    }
    prep.finish_into(input, target, &mut made)?;
    Ok(made)
}
