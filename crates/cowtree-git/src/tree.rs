//! How DST's tree is made: the one place that decides ([`Method::choose`]), and each way.
//!
//! Per file ([`Method::PerFile`]): the target tree's directories are created, then each
//! tracked file is reflinked from SRC when SRC's index proves it clean, else written from
//! objects ([`crate::build`]), while the ignored entries to bring are cloned beside
//! ([`crate::ignored`]). Nothing ([`Method::None`]): `--no-checkout` and `--orphan` leave DST
//! empty but for its `.git` file, as git does. A whole-tree way (one snapshot of a source
//! subvolume) enters here as another [`Method`], chosen by [`Method::choose`] and made by
//! [`make`], which returns the same [`Made`].

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use cowtree_fs::UnsupportedCause;
use cowtree_fs::dir::Dir;
use gix::ObjectId;

use crate::build::{self, Made as EntryMade};
use crate::error::{Error, Result};
use crate::ignored::{self, IgnoredReport};
use crate::resolve::Plan;
use crate::{AddOptions, BranchChoice, filters};

/// How DST's tree was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// Each file created and cloned (or written) one by one: works on every filesystem.
    PerFile,
    /// Nothing to check out (`--no-checkout`, `--orphan`).
    None,
}

impl Method {
    /// Decides how DST's tree is made for `opts` and `plan`.
    pub fn choose(opts: &AddOptions, plan: &Plan) -> Method {
        if !opts.checkout || matches!(opts.branch, BranchChoice::Orphan(_)) || plan.commit.is_none()
        {
            Method::None
        } else {
            Method::PerFile
        }
    }

    /// The name reports use: `per-file`, `none`.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::PerFile => "per-file",
            Method::None => "none",
        }
    }
}

/// What making the tree needs.
pub struct Input<'a> {
    /// SRC's repository.
    pub repo: &'a gix::Repository,
    /// The options.
    pub opts: &'a AddOptions,
    /// SRC's worktree root.
    pub src_root: &'a Path,
    /// The commit to check out (`None`: an unborn branch).
    pub commit: Option<ObjectId>,
    /// The staging directory, open.
    pub staging: &'a Dir,
    /// Its path.
    pub staging_path: &'a Path,
    /// The process's umask.
    pub umask: u32,
}

/// The tree made, and DST's index to write.
#[derive(Default)]
pub struct Made {
    /// DST's index (`None`: no index, as after `--no-checkout`), with DST's stat data.
    pub index: Option<gix::index::File>,
    /// Tracked entries.
    pub entries: u64,
    /// Files reflinked from SRC.
    pub cloned: u64,
    /// Files copied from SRC.
    pub copied: u64,
    /// Entries written from objects.
    pub from_objects: u64,
    /// Entries carried with their changes.
    pub carried: u64,
    /// Bytes shared with SRC.
    pub bytes_cloned: u64,
    /// Bytes written.
    pub bytes_written: u64,
    /// Submodules left empty.
    pub submodules: Vec<String>,
    /// Ignored entries cloned.
    pub ignored: Option<IgnoredReport>,
    /// The first reason a file was copied.
    pub fallback: Option<(UnsupportedCause, PathBuf)>,
}

/// Makes DST's tree in the staging directory by `method`.
pub fn make(method: Method, input: &Input<'_>) -> Result<Made> {
    match method {
        Method::PerFile => per_file(input),
        Method::None => Ok(Made {
            // An unborn branch gets an empty index (git's `reset --hard` writes one);
            // `--no-checkout` none.
            index: input.opts.checkout.then(|| {
                gix::index::File::from_state(
                    gix::index::State::new(input.repo.object_hash()),
                    input.repo.index_path(),
                )
            }),
            ..Made::default()
        }),
    }
}

/// SRC's index, with DST's stat data, when it holds exactly the target tree and a valid
/// cache-tree (`TREE` extension) for it: gitoxide builds no cache-tree for an index made from a
/// tree, and without one the first `git status` (and commit) in DST reads every tree object
/// to compare HEAD with the index. Otherwise `target` as it is.
fn with_cache_tree(
    target: gix::index::File,
    src: &gix::index::File,
    tree_id: ObjectId,
) -> gix::index::File {
    let valid = src
        .tree()
        .is_some_and(|t| t.id == tree_id && t.num_entries == Some(target.entries().len() as u32))
        && !src.is_sparse()
        && src.entries().len() == target.entries().len()
        && src.entries().iter().zip(target.entries()).all(|(a, b)| {
            a.id == b.id
                && a.mode == b.mode
                && a.stage() == gix::index::entry::Stage::Unconflicted
                && a.path(src) == b.path(&target)
        });
    if !valid {
        return target;
    }
    let mut out = src.clone();
    for (e, t) in out.entries_mut().iter_mut().zip(target.entries()) {
        e.stat = t.stat;
        e.flags = t.flags;
    }
    out
}

/// Refuses a SRC that uses sparse checkout: its index leaves entries out of the worktree
/// (skip-worktree), which a reflinked copy would get wrong one way or the other.
fn refuse_sparse(repo: &gix::Repository, index: &gix::index::State, root: &Path) -> Result<()> {
    let sparse = |why: String| {
        Err(Error::Sparse {
            path: root.to_owned(),
            why,
        })
    };
    if repo.config_snapshot().boolean("core.sparseCheckout") == Some(true) {
        return sparse("core.sparseCheckout is true".into());
    }
    if index.is_sparse() {
        return sparse("the index is a sparse index".into());
    }
    if let Some(e) = index
        .entries()
        .iter()
        .find(|e| e.flags.contains(gix::index::entry::Flags::SKIP_WORKTREE))
    {
        return sparse(format!(
            "{} is marked skip-worktree in the index",
            e.path(index)
        ));
    }
    Ok(())
}

fn per_file(input: &Input<'_>) -> Result<Made> {
    let repo = input.repo;
    let opts = input.opts;
    let src_root = input.src_root;
    let commit_id = input.commit.expect("a checkout has a commit");
    let commit = repo.find_commit(commit_id).map_err(Error::git(
        "read commit",
        PathBuf::from(commit_id.to_string()),
    ))?;
    let tree_id = commit.tree_id().map_err(Error::git(
        "read commit",
        PathBuf::from(commit_id.to_string()),
    ))?;
    let src_index_path = repo.index_path();
    let src_index = match repo.open_index() {
        Ok(f) => f,
        Err(_) if !src_index_path.exists() => gix::index::File::from_state(
            gix::index::State::new(repo.object_hash()),
            &src_index_path,
        ),
        Err(e) => return Err(Error::git("read index", &src_index_path)(e)),
    };
    let src_index_mtime = src_index.timestamp().unix_seconds();
    refuse_sparse(repo, &src_index, src_root)?;
    // With --with-changes DST gets SRC's index itself (staged changes, additions and removals
    // included, HEAD being the same commit); otherwise the target tree's.
    let mut target = if opts.with_changes {
        if let Some(e) = src_index
            .entries()
            .iter()
            .find(|e| e.stage() != gix::index::entry::Stage::Unconflicted)
        {
            return Err(Error::Conflicted {
                path: src_root.join(OsStr::from_bytes(e.path(&src_index))),
            });
        }
        src_index.clone()
    } else {
        repo.index_from_tree(&tree_id)
            .map_err(Error::git("read tree", PathBuf::from(tree_id.to_string())))?
    };
    let include = if opts.ignored.worktreeinclude {
        ignored::worktreeinclude(src_root)?
    } else {
        None
    };
    let selection = ignored::Selection {
        all: opts.ignored.all,
        patterns: &opts.ignored.patterns,
        include: include.as_ref(),
    };

    let sync_repo = repo.clone().into_sync();
    let fallback = build::Fallback::default();
    let filters = filters::Setup::new(repo, &target)?;
    let build_input = build::BuildInput {
        repo: &sync_repo,
        src_root,
        src_index: &src_index,
        src_index_mtime,
        target: &target,
        staging: input.staging,
        staging_path: input.staging_path,
        with_changes: opts.with_changes,
        strict: opts.strict,
        umask: input.umask,
        filters: &filters,
    };
    build::create_dirs(&build_input)?;
    // The tracked files and the ignored ones are independent once the directories exist: the
    // walk for ignored entries runs while the pool clones tracked files, and its own clones
    // join the same pool.
    let (results, ignored) = rayon::join(
        || build::build(&build_input, &fallback),
        || {
            selection
                .takes_any()
                .then(|| {
                    ignored::copy_ignored(
                        &sync_repo.to_thread_local(),
                        src_root,
                        &src_index,
                        &target,
                        input.staging,
                        input.staging_path,
                        &selection,
                        opts.strict,
                    )
                })
                .transpose()
        },
    );
    let (results, ignored) = (results?, ignored?);

    let mut made = Made {
        entries: results.len() as u64,
        ignored,
        fallback: fallback.first.into_inner().unwrap_or_default(),
        ..Made::default()
    };
    {
        let backing = target.path_backing().to_vec();
        for (e, r) in target.entries_mut().iter_mut().zip(&results) {
            match r.made {
                EntryMade::Cloned => {
                    made.cloned += 1;
                    made.bytes_cloned += r.bytes;
                }
                EntryMade::Copied => {
                    made.copied += 1;
                    made.bytes_written += r.bytes;
                }
                EntryMade::FromObjects => {
                    made.from_objects += 1;
                    made.bytes_written += r.bytes;
                }
                EntryMade::Carried { copied } => {
                    made.carried += 1;
                    if copied {
                        made.bytes_written += r.bytes;
                    } else {
                        made.bytes_cloned += r.bytes;
                    }
                }
                EntryMade::Submodule => made.submodules.push(e.path_in(&backing).to_string()),
            }
            e.stat = r.stat.unwrap_or_default();
        }
    }
    if made.fallback.is_none() {
        made.fallback = made.ignored.as_ref().and_then(|i| i.fallback.clone());
    }
    // SRC's own index (--with-changes) keeps its own cache-tree, valid for its entries.
    made.index = Some(if opts.with_changes {
        target
    } else {
        with_cache_tree(target, &src_index, tree_id.detach())
    });
    Ok(made)
}
