//! How DST's tree is made: the one place that decides, and each way.
//!
//! Per file ([`Method::PerFile`]): the target tree's directories are created in a new staging
//! directory, then each tracked file is reflinked from SRC when SRC's index proves it clean,
//! else written from objects ([`crate::build`]), while the ignored entries to bring are cloned
//! beside ([`crate::ignored`]). By snapshot ([`Method::Subvolume`], [`crate::snapshot`]):
//! where SRC's worktree is a btrfs subvolume root, the staging directory is one writable
//! snapshot of it, which is then made into exactly what the per-file way makes. Nothing
//! ([`Method::None`]): `--no-checkout` and `--orphan` leave DST empty but for its `.git` file,
//! as git does.
//!
//! [`make`] creates the staging directory and the tree in it: it tries the snapshot first
//! (unless the options ask for per-file work), which says why it was not used when it was not
//! ([`PerFileReason`]), and makes the tree per file then.

use std::ffi::OsStr;
use std::fmt;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use cowtree_fs::UnsupportedCause;
use cowtree_fs::dir::Dir;
use cowtree_fs::staging::Staging;
use cowtree_fs::whole_tree::NotUsed;
use gix::ObjectId;

use crate::build::{self, Made as EntryMade};
use crate::error::{Error, Result};
use crate::ignored::{self, IgnoredReport};
use crate::{AddOptions, BranchChoice, filters};

/// How DST's tree was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Method {
    /// Each file created and cloned (or written) one by one: works on every filesystem.
    #[default]
    PerFile,
    /// One writable btrfs snapshot of SRC's worktree (a subvolume root), then made what the
    /// per-file way makes (see [`crate::snapshot`]).
    Subvolume,
    /// Nothing to check out (`--no-checkout`, `--orphan`).
    None,
}

impl Method {
    /// The name reports use: `per-file`, `subvolume`, `none`.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::PerFile => "per-file",
            Method::Subvolume => "subvolume",
            Method::None => "none",
        }
    }
}

/// Which way the caller lets [`make`] take.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MethodChoice {
    /// The snapshot where SRC allows it and the cost rule says it pays
    /// ([`crate::cost`]), else per file.
    #[default]
    Auto,
    /// Per file always (`--per-file`).
    PerFile,
    /// The snapshot wherever SRC allows it, whatever the cost rule says (`--subvolume`).
    Subvolume,
}

/// Why DST's tree was made per file, not by a snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PerFileReason {
    /// A rule of the whole-tree seam ([`cowtree_fs::whole_tree`]): the filesystem, another
    /// filesystem, not a subvolume root, not the owner, the kernel refused.
    Seam(NotUsed),
    /// The options asked for it (`--per-file`).
    Asked,
    /// A subvolume nested below SRC, or a filesystem mounted there, where DST must hold what
    /// SRC holds (a snapshot holds an empty directory there).
    Hole {
        /// The nested subvolume or mount point, relative to SRC.
        path: PathBuf,
        /// A mount point (else a nested subvolume).
        mount_point: bool,
    },
    /// An entry of SRC that DST keeps belongs to another user or group than the per-file way
    /// gives every entry it makes (this user's, the process's group), and a snapshot keeps
    /// owners; or DST's parent is set-group-ID, whose group (and bit) the per-file way gives.
    Owner {
        /// The directory, relative to SRC (empty: SRC itself); or DST's parent, absolute.
        path: PathBuf,
        /// Its owner.
        uid: u32,
        /// Its group.
        gid: u32,
    },
    /// The cost rule: making the snapshot into DST would remove more than the per-file way
    /// creates ([`crate::cost`]).
    Cost {
        /// Entries the snapshot way would remove (at least; counting stops past the limit).
        remove: u64,
        /// Entries the per-file way creates.
        create: u64,
    },
}

impl PerFileReason {
    /// A stable name for `--json`'s `"reason"`: the seam's codes, `per-file-asked`,
    /// `nested-subvolumes`, `mount-points`, `owner`, `cost`.
    pub fn code(&self) -> &'static str {
        match self {
            PerFileReason::Seam(n) => n.code(),
            PerFileReason::Asked => "per-file-asked",
            PerFileReason::Hole {
                mount_point: false, ..
            } => "nested-subvolumes",
            PerFileReason::Hole {
                mount_point: true, ..
            } => "mount-points",
            PerFileReason::Owner { .. } => "owner",
            PerFileReason::Cost { .. } => "cost",
        }
    }
}

impl fmt::Display for PerFileReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PerFileReason::Seam(n) => write!(f, "{n}"),
            PerFileReason::Asked => write!(f, "--per-file asked for it"),
            PerFileReason::Hole {
                path,
                mount_point: false,
            } => write!(
                f,
                "the subvolume nested at {} holds what the new worktree needs, and a snapshot \
                 would leave it empty",
                path.display()
            ),
            PerFileReason::Hole {
                path,
                mount_point: true,
            } => write!(
                f,
                "a filesystem mounted at {} holds what the new worktree needs, and a snapshot \
                 would not include it",
                path.display()
            ),
            PerFileReason::Owner { path, uid, gid } => write!(
                f,
                "{} belongs to uid {uid} and gid {gid} (or is set-group-ID), which a snapshot \
                 keeps, where the per-file way makes every entry this user's and this process's \
                 group's",
                if path.as_os_str().is_empty() {
                    Path::new("SRC's worktree")
                } else {
                    path.as_path()
                }
                .display()
            ),
            PerFileReason::Cost { remove, create } => write!(
                f,
                "a snapshot would leave at least {remove} entries to remove, more than the \
                 {create} the per-file way creates"
            ),
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
    /// DST's parent directory, open: the staging directory is made in it.
    pub parent: &'a Dir,
    /// Its path.
    pub parent_path: &'a Path,
    /// The staging directory's name (journaled by the caller before [`make`] runs).
    pub staging_name: &'a OsStr,
    /// Its path.
    pub staging_path: &'a Path,
    /// The process's umask.
    pub umask: u32,
}

/// The tree made, and DST's index to write.
#[derive(Default)]
pub struct Made {
    /// How.
    pub method: Method,
    /// Why not by snapshot, when made per file.
    pub reason: Option<PerFileReason>,
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
    /// Tracked files and symlinks kept as the snapshot holds them (proven clean).
    pub kept: u64,
    /// Entries removed from the snapshot (SRC's `.git`, untracked and unselected ignored
    /// entries, files rewritten), each directory's entries counted.
    pub removed: u64,
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

/// Makes the staging directory `input.staging_name` in `input.parent`, and DST's tree in it:
/// by snapshot where [`crate::snapshot`] can and may, else per file. On an error the staging
/// directory is gone.
pub fn make<'p>(input: &Input<'p>) -> Result<(Staging<'p>, Made)> {
    let opts = input.opts;
    if !opts.checkout || matches!(opts.branch, BranchChoice::Orphan(_)) || input.commit.is_none() {
        let staging = create_staging(input)?;
        return Ok((
            staging,
            Made {
                method: Method::None,
                // An unborn branch gets an empty index (git's `reset --hard` writes one);
                // `--no-checkout` none.
                index: opts.checkout.then(|| {
                    gix::index::File::from_state(
                        gix::index::State::new(input.repo.object_hash()),
                        input.repo.index_path(),
                    )
                }),
                ..Made::default()
            },
        ));
    }
    let prep = Prepared::new(input)?;
    let reason = match crate::snapshot::attempt(input, &prep)? {
        crate::snapshot::Attempt::Made(staging, made) => return Ok((staging, *made)),
        crate::snapshot::Attempt::NotUsed(reason) => reason,
    };
    let staging = create_staging(input)?;
    let mut made = per_file(input, &prep, &staging)?;
    made.method = Method::PerFile;
    made.reason = Some(reason);
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

/// What both ways start from: the commit's tree as DST's index-to-be, SRC's index, the
/// selection of ignored entries, the checkout filters.
pub(crate) struct Prepared {
    /// The target tree's id.
    pub tree_id: ObjectId,
    /// SRC's index (empty when SRC has none).
    pub src_index: gix::index::File,
    /// The mtime (seconds) of SRC's index file.
    pub src_index_mtime: i64,
    /// DST's index-to-be: the target tree's entries (with `--with-changes`, SRC's index), no
    /// stat data yet.
    pub target: gix::index::File,
    /// SRC's `.worktreeinclude`, when read and present.
    pub include: Option<gix::ignore::Search>,
    /// The checkout filters of the target tree.
    pub filters: filters::Setup,
    /// SRC's repository, for workers.
    pub sync_repo: gix::ThreadSafeRepository,
}

impl Prepared {
    fn new(input: &Input<'_>) -> Result<Prepared> {
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
        // With --with-changes DST gets SRC's index itself (staged changes, additions and
        // removals included, HEAD being the same commit); otherwise the target tree's.
        let target = if opts.with_changes {
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
        let filters = filters::Setup::new(repo, &target)?;
        Ok(Prepared {
            tree_id: tree_id.detach(),
            src_index,
            src_index_mtime,
            target,
            include,
            filters,
            sync_repo: repo.clone().into_sync(),
        })
    }

    /// Which ignored entries the options select.
    pub fn selection<'a>(&'a self, opts: &'a AddOptions) -> ignored::Selection<'a> {
        ignored::Selection {
            all: opts.ignored.all,
            patterns: &opts.ignored.patterns,
            include: self.include.as_ref(),
        }
    }

    /// DST's index from the target with its stat data: with SRC's cache-tree where valid
    /// (see [`with_cache_tree`]); `--with-changes` keeps SRC's own.
    pub fn finish_index(&self, target: gix::index::File, with_changes: bool) -> gix::index::File {
        if with_changes {
            target
        } else {
            with_cache_tree(target, &self.src_index, self.tree_id)
        }
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

fn per_file(input: &Input<'_>, prep: &Prepared, staging: &Staging<'_>) -> Result<Made> {
    let opts = input.opts;
    let src_root = input.src_root;
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
        src_index_mtime: prep.src_index_mtime,
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
        || {
            selection
                .takes_any()
                .then(|| {
                    ignored::copy_ignored(
                        &sync_repo.to_thread_local(),
                        src_root,
                        src_index,
                        &target,
                        &staging.dir,
                        staging_path,
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
    made.index = Some(prep.finish_index(target, opts.with_changes));
    Ok(made)
}
