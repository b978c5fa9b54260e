//! cowtree-git: a new git linked worktree made by reflinking a source worktree's files.
//!
//! [`add`] does what `git worktree add` does (registers a linked worktree of SRC's repository
//! at a new DST, checks out a commit, writes DST's index) but takes each tracked file from SRC
//! by reflink when SRC's index proves, by git's own stat rules, that SRC's file holds the
//! target commit's blob ([`trust`]); only the others are written from the object database.
//! DST's index carries the stat data of DST's files, so the first `git status` in DST reads no
//! file. With [`AddOptions::ignored`], ignored files and directories (build outputs,
//! dependencies) are cloned too.
//!
//! # Contract
//! - SRC's files, its index and its repository's objects are never written. The only writes
//!   outside DST are git's own registration files (`$GIT_COMMON_DIR/worktrees/<id>/`, see
//!   [`register`]) and, with a new branch, the branch's ref and reflog.
//! - DST must not exist. It is built in a staging directory beside it and renamed into place
//!   after its index and registration are written: it appears whole or not at all. On an
//!   error, the staging directory, the registration and a branch made by this run are
//!   removed. A run killed at any point leaves a staging directory and a registration marked
//!   as its own, which the next run removes ([`register::clean_stale`]).
//! - Where the filesystems cannot reflink, files are copied and [`AddReport::fallback`] says
//!   why; with [`AddOptions::strict`] that is an error instead.
//! - Submodules are not handled: they are left as empty directories, as git leaves them.
//!   A SRC using sparse checkout (or any skip-worktree entry) is refused.
//! - A file that git's checkout filters would change (`.gitattributes` `filter=`, `ident`,
//!   `working-tree-encoding`, CRLF line endings; see [`filters`]) is never cloned: it is
//!   written from the object database through gitoxide's filter pipeline.

#![warn(missing_docs)]

pub mod build;
pub mod clone;
pub mod error;
pub mod filters;
pub mod ignored;
pub mod register;
pub mod trust;

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use cowtree_fs::UnsupportedCause;
use cowtree_fs::dir::{Dir, write_atomic};
use cowtree_fs::staging::{self, Staging, TREE as STAGING};
use gix::ObjectId;
use gix::refs::transaction::PreviousValue;

pub use build::Made;
pub use error::{Error, Result};
pub use ignored::IgnoredReport;

/// Which HEAD the new worktree gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BranchChoice {
    /// As `git worktree add` without `-b`/`--detach`: a COMMIT-ISH naming a local branch
    /// checks that branch out; another COMMIT-ISH detaches; no COMMIT-ISH checks out (or
    /// creates from SRC's HEAD) the branch named after DST.
    Auto,
    /// `-b NAME`: a new branch at COMMIT-ISH; an existing branch is refused.
    New(String),
    /// `--detach`: HEAD detached at COMMIT-ISH.
    Detach,
}

/// What to add.
#[derive(Debug, Clone)]
pub struct AddOptions {
    /// A path inside SRC's worktree.
    pub src: PathBuf,
    /// The new worktree's path.
    pub dst: PathBuf,
    /// The commit to check out (default: SRC's HEAD).
    pub commit: Option<String>,
    /// The new worktree's HEAD.
    pub branch: BranchChoice,
    /// Clone ignored entries: `None` no, `Some([])` all, `Some(patterns)` those matching.
    pub ignored: Option<Vec<String>>,
    /// Carry SRC's uncommitted changes to tracked files: DST's index is SRC's (staged changes,
    /// additions, removals) and each file whose stat data does not prove it holds its index
    /// blob is SRC's file as it is (or absent). Needs COMMIT-ISH to be SRC's HEAD commit
    /// ([`Error::WithChangesOtherCommit`]) and an index without conflicts
    /// ([`Error::Conflicted`]).
    pub with_changes: bool,
    /// Refuse to copy where a reflink is impossible.
    pub strict: bool,
}

/// The new worktree's HEAD.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeadReport {
    /// On a branch.
    Branch {
        /// The branch name.
        name: String,
        /// Whether this run created it.
        created: bool,
    },
    /// Detached.
    Detached,
}

/// What [`add`] did.
#[derive(Debug, Clone)]
pub struct AddReport {
    /// The new worktree (absolute).
    pub dst: PathBuf,
    /// Its registration directory.
    pub admin_dir: PathBuf,
    /// The commit checked out.
    pub commit: ObjectId,
    /// HEAD.
    pub head: HeadReport,
    /// Tracked entries.
    pub entries: u64,
    /// Files reflinked from SRC.
    pub cloned: u64,
    /// Files copied from SRC (no reflink possible).
    pub copied: u64,
    /// Entries written from the object database.
    pub from_objects: u64,
    /// Entries carried with their uncommitted changes.
    pub carried: u64,
    /// Bytes shared with SRC by reflink.
    pub bytes_cloned: u64,
    /// Bytes written (copied or from objects).
    pub bytes_written: u64,
    /// Submodule paths left as empty directories.
    pub submodules: Vec<String>,
    /// Index entries recorded with DST's stat data (git reads none of these files).
    pub index_stat_entries: u64,
    /// `--ignored`: what was copied.
    pub ignored: Option<IgnoredReport>,
    /// The first reason a file was copied instead of reflinked, and that file.
    pub fallback: Option<(UnsupportedCause, PathBuf)>,
    /// Registrations of killed runs removed first.
    pub cleaned: Vec<String>,
}

/// A new staging directory for `dst_name` beside it, locked while this run builds in it.
fn new_staging<'a>(parent: &'a Dir, parent_path: &Path, dst_name: &OsStr) -> Result<Staging<'a>> {
    let name = STAGING.name(dst_name, &format!("{:016x}", staging::random_u64()));
    let path = parent_path.join(&name);
    Staging::create(parent, name, 0o777).map_err(Error::io("create directory", &path))
}

/// Removes staging directories for `dst_name` that no live run holds.
fn clean_stale_staging(parent: &Dir, parent_path: &Path, dst_name: &OsStr) -> Result<()> {
    staging::remove_stale(parent, &STAGING.prefix(dst_name))
        .map(drop)
        .map_err(Error::io("remove stale staging in", parent_path))
}

fn current_umask() -> u32 {
    let old = rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o022));
    rustix::process::umask(old);
    cowtree_fs::sys::mode_bits(old)
}

struct Resolved {
    commit: ObjectId,
    head_line: String,
    head: HeadReport,
}

fn branch_ref(repo: &gix::Repository, name: &str) -> Result<Option<ObjectId>> {
    let full = format!("refs/heads/{name}");
    gix::refs::FullName::try_from(full.as_str()).map_err(|e| Error::BadBranchName {
        name: name.to_owned(),
        source: e.into(),
    })?;
    if name == "HEAD" || name.starts_with('-') {
        return Err(Error::BadBranchName {
            name: name.to_owned(),
            source: "git refuses this branch name".into(),
        });
    }
    let r = repo
        .try_find_reference(full.as_str())
        .map_err(Error::git("read reference", PathBuf::from(&full)))?;
    match r {
        None => Ok(None),
        Some(mut r) => Ok(Some(
            r.peel_to_id()
                .map_err(Error::git("peel reference", PathBuf::from(&full)))?
                .detach(),
        )),
    }
}

fn resolve_commit(repo: &gix::Repository, spec: Option<&str>, root: &Path) -> Result<ObjectId> {
    match spec {
        None => {
            let c = repo.head_commit().map_err(|_| Error::Unborn {
                path: root.to_owned(),
            })?;
            Ok(c.id)
        }
        Some(spec) => {
            let bad = |e: gix::error::Error| Error::BadRevision {
                spec: spec.to_owned(),
                repo: root.to_owned(),
                source: Box::new(std::io::Error::other(e.to_string())),
            };
            let id = repo
                .rev_parse_single(spec)
                .map_err(|e| Error::BadRevision {
                    spec: spec.to_owned(),
                    repo: root.to_owned(),
                    source: e.into(),
                })?;
            let _ = bad;
            let commit = id
                .object()
                .map_err(|e| Error::BadRevision {
                    spec: spec.to_owned(),
                    repo: root.to_owned(),
                    source: e.into(),
                })?
                .peel_to_commit()
                .map_err(|e| Error::BadRevision {
                    spec: spec.to_owned(),
                    repo: root.to_owned(),
                    source: e.into(),
                })?;
            Ok(commit.id)
        }
    }
}

fn resolve_head(
    repo: &gix::Repository,
    opts: &AddOptions,
    dst_name: &OsStr,
    root: &Path,
) -> Result<Resolved> {
    let common = repo.common_dir();
    let on_branch = |name: &str, tip: ObjectId| -> Result<Resolved> {
        if let Some(wt) = register::branch_checked_out_at(common, name) {
            return Err(Error::BranchCheckedOut {
                name: name.to_owned(),
                worktree: wt,
            });
        }
        Ok(Resolved {
            commit: tip,
            head_line: format!("ref: refs/heads/{name}"),
            head: HeadReport::Branch {
                name: name.to_owned(),
                created: false,
            },
        })
    };
    let new_branch = |name: &str, commit: ObjectId| Resolved {
        commit,
        head_line: format!("ref: refs/heads/{name}"),
        head: HeadReport::Branch {
            name: name.to_owned(),
            created: true,
        },
    };
    let detached = |commit: ObjectId| Resolved {
        commit,
        head_line: commit.to_string(),
        head: HeadReport::Detached,
    };
    match &opts.branch {
        BranchChoice::New(name) => {
            if branch_ref(repo, name)?.is_some() {
                return Err(Error::BranchExists(name.clone()));
            }
            Ok(new_branch(
                name,
                resolve_commit(repo, opts.commit.as_deref(), root)?,
            ))
        }
        BranchChoice::Detach => Ok(detached(resolve_commit(
            repo,
            opts.commit.as_deref(),
            root,
        )?)),
        BranchChoice::Auto => match opts.commit.as_deref() {
            Some(spec) => {
                let is_branch = gix::refs::FullName::try_from(format!("refs/heads/{spec}")).is_ok()
                    && !spec.starts_with('-')
                    && spec != "HEAD";
                match if is_branch {
                    branch_ref(repo, spec)?
                } else {
                    None
                } {
                    Some(tip) => on_branch(spec, tip),
                    None => Ok(detached(resolve_commit(repo, Some(spec), root)?)),
                }
            }
            None => {
                let name = dst_name.to_str().ok_or_else(|| Error::BadBranchName {
                    name: dst_name.to_string_lossy().into_owned(),
                    source: "not UTF-8; use -b or --detach".into(),
                })?;
                match branch_ref(repo, name)? {
                    Some(tip) => on_branch(name, tip),
                    None => Ok(new_branch(name, resolve_commit(repo, None, root)?)),
                }
            }
        },
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

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Makes the new worktree described by `opts`; see the crate documentation for what is
/// promised.
pub fn add(opts: &AddOptions) -> Result<AddReport> {
    let umask = current_umask();
    let repo = gix::discover(&opts.src).map_err(|e| Error::NotAWorktree {
        path: opts.src.clone(),
        source: e.into(),
    })?;
    let Some(workdir) = repo.workdir() else {
        return Err(Error::Bare {
            path: repo.git_dir().to_owned(),
        });
    };
    let src_root = workdir
        .canonicalize()
        .map_err(Error::io("resolve", workdir))?;
    let common = repo
        .common_dir()
        .canonicalize()
        .map_err(Error::io("resolve", repo.common_dir()))?;

    let dst_name = opts
        .dst
        .file_name()
        .ok_or_else(|| Error::BadDst(opts.dst.clone()))?
        .to_owned();
    let parent = match opts.dst.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let parent_abs = parent
        .canonicalize()
        .map_err(|_| Error::BadDst(opts.dst.clone()))?;
    let dst_abs = parent_abs.join(&dst_name);
    if std::fs::symlink_metadata(&dst_abs).is_ok() {
        return Err(Error::DstExists(dst_abs));
    }
    // Before HEAD is resolved: a killed run's registration must not hold its branch.
    let cleaned = register::clean_stale(&common)?;
    let resolved = resolve_head(&repo, opts, &dst_name, &src_root)?;
    if opts.with_changes {
        let head = repo.head_id().map_err(|_| Error::Unborn {
            path: src_root.clone(),
        })?;
        if head.detach() != resolved.commit {
            return Err(Error::WithChangesOtherCommit {
                path: src_root.clone(),
                head: head.to_string(),
                commit: resolved.commit.to_string(),
            });
        }
    }

    let parent_dir = Dir::open(&parent_abs).map_err(Error::io("open", &parent_abs))?;
    clean_stale_staging(&parent_dir, &parent_abs, &dst_name)?;

    let commit = repo.find_commit(resolved.commit).map_err(Error::git(
        "read commit",
        PathBuf::from(resolved.commit.to_string()),
    ))?;
    let tree_id = commit.tree_id().map_err(Error::git(
        "read commit",
        PathBuf::from(resolved.commit.to_string()),
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
    refuse_sparse(&repo, &src_index, &src_root)?;
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

    let staging = new_staging(&parent_dir, &parent_abs, &dst_name)?;
    let staging_path = parent_abs.join(staging.name());
    let sync_repo = repo.clone().into_sync();
    let fallback = build::Fallback::default();
    let filters = filters::Setup::new(&repo, &target)?;
    let input = build::BuildInput {
        repo: &sync_repo,
        src_root: &src_root,
        src_index: &src_index,
        src_index_mtime,
        target: &target,
        staging: &staging.dir,
        staging_path: &staging_path,
        with_changes: opts.with_changes,
        strict: opts.strict,
        umask,
        filters: &filters,
    };
    build::create_dirs(&input)?;
    // The tracked files and the ignored ones are independent once the directories exist: the
    // walk for ignored entries runs while the pool clones tracked files, and its own clones
    // join the same pool.
    let (results, ignored) = rayon::join(
        || build::build(&input, &fallback),
        || {
            opts.ignored
                .as_ref()
                .map(|patterns| {
                    ignored::copy_ignored(
                        &sync_repo.to_thread_local(),
                        &src_root,
                        &src_index,
                        &target,
                        &staging.dir,
                        &staging_path,
                        &ignored::Selection { patterns },
                        opts.strict,
                    )
                })
                .transpose()
        },
    );
    let (results, ignored) = (results?, ignored?);

    let mut report = AddReport {
        dst: dst_abs.clone(),
        admin_dir: PathBuf::new(),
        commit: resolved.commit,
        head: resolved.head.clone(),
        entries: results.len() as u64,
        cloned: 0,
        copied: 0,
        from_objects: 0,
        carried: 0,
        bytes_cloned: 0,
        bytes_written: 0,
        submodules: Vec::new(),
        index_stat_entries: 0,
        ignored,
        fallback: fallback.first.into_inner().unwrap_or_default(),
        cleaned,
    };
    {
        let backing = target.path_backing().to_vec();
        for (e, r) in target.entries_mut().iter_mut().zip(&results) {
            match r.made {
                Made::Cloned => {
                    report.cloned += 1;
                    report.bytes_cloned += r.bytes;
                }
                Made::Copied => {
                    report.copied += 1;
                    report.bytes_written += r.bytes;
                }
                Made::FromObjects => {
                    report.from_objects += 1;
                    report.bytes_written += r.bytes;
                }
                Made::Carried { copied } => {
                    report.carried += 1;
                    if copied {
                        report.bytes_written += r.bytes;
                    } else {
                        report.bytes_cloned += r.bytes;
                    }
                }
                Made::Submodule => report.submodules.push(e.path_in(&backing).to_string()),
            }
            e.stat = r.stat.unwrap_or_default();
        }
    }
    if report.fallback.is_none() {
        report.fallback = report.ignored.as_ref().and_then(|i| i.fallback.clone());
    }
    // SRC's own index (--with-changes) keeps its own cache-tree, valid for its entries.
    let mut target = if opts.with_changes {
        target
    } else {
        with_cache_tree(target, &src_index, tree_id.detach())
    };

    let reg = register::Registration::create(
        &common,
        &dst_name,
        &dst_abs.join(".git"),
        &resolved.head_line,
    )?;
    report.admin_dir = reg.path();
    let mut dotgit = b"gitdir: ".to_vec();
    dotgit.extend_from_slice(reg.path().as_os_str().as_bytes());
    dotgit.push(b'\n');
    write_atomic(&staging.dir, OsStr::new(".git"), &dotgit, 0o666, false)
        .map_err(Error::io("write", staging_path.join(".git")))?;

    // git re-reads every entry whose mtime is not older than the index file (racy git): wait
    // for the clock to leave the second of the newest file written here, so none is racy.
    let newest = target
        .entries()
        .iter()
        .filter(|e| e.stat != Default::default())
        .map(|e| i64::from(e.stat.mtime.secs))
        .max()
        .unwrap_or(0);
    while now_secs() <= newest {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let write = |t: &gix::index::File| {
        reg.write_index(|w| {
            t.write_to(w, gix::index::write::Options::default())
                .map(|_| ())
                .map_err(std::io::Error::other)
        })
    };
    let mut index_mtime = write(&target)?;
    // The filesystem stamps files from a coarse clock that can trail the system clock by a
    // tick: an index written just after the second turned may still carry the old second.
    let retry_until = std::time::Instant::now() + std::time::Duration::from_secs(2);
    while index_mtime <= newest && std::time::Instant::now() < retry_until {
        std::thread::sleep(std::time::Duration::from_millis(20));
        index_mtime = write(&target)?;
    }
    if index_mtime <= newest {
        // A clock that went backwards: leave those entries for git to look at.
        for e in target.entries_mut() {
            if i64::from(e.stat.mtime.secs) >= index_mtime {
                e.stat = Default::default();
            }
        }
        write(&target)?;
    }
    report.index_stat_entries = target
        .entries()
        .iter()
        .filter(|e| e.stat != Default::default())
        .count() as u64;

    let mut created_branch = None;
    if let HeadReport::Branch {
        name,
        created: true,
    } = &resolved.head
    {
        let full = format!("refs/heads/{name}");
        repo.reference(
            full.as_str(),
            resolved.commit,
            PreviousValue::MustNotExist,
            format!(
                "branch: Created from {}",
                opts.commit.as_deref().unwrap_or("HEAD")
            ),
        )
        .map_err(|e| match branch_ref(&repo, name) {
            Ok(Some(_)) => Error::BranchExists(name.clone()),
            _ => Error::git("create branch", PathBuf::from(&full))(e),
        })?;
        created_branch = Some(full);
    }

    let mut staging = staging;
    if let Err(e) = staging.commit(&dst_name, false) {
        if let Some(full) = created_branch
            && let Ok(r) = repo.find_reference(full.as_str())
        {
            let _ = r.delete();
        }
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            return Err(Error::DstExists(dst_abs));
        }
        return Err(Error::io("rename into", &dst_abs)(e));
    }
    reg.finish()?;
    Ok(report)
}
