//! cowtree-git: a new git linked worktree made by reflinking a source worktree's files.
//!
//! [`add`] does what `git worktree add` does (registers a linked worktree of SRC's repository
//! at DST, checks out a commit or a branch, writes DST's index), with git's options and
//! refusals ([`AddOptions`], [`resolve`]), but takes each tracked file from SRC by reflink when
//! SRC's index proves, by git's own stat rules, that SRC's file holds the target commit's blob
//! ([`trust`]); only the others are written from the object database. DST's index carries the
//! stat data of DST's files, so the first `git status` in DST reads no file. Ignored files
//! that SRC's `.worktreeinclude` names, or that [`AddOptions::ignored`] asks for, are cloned
//! too.
//!
//! # Contract
//! - SRC's files, its index and its repository's objects are never written. The only writes
//!   outside DST are git's own registration files (`$GIT_COMMON_DIR/worktrees/<id>/`, see
//!   [`register`]), DST's missing parent directories and, with a new (or `-B` reset) branch,
//!   what `git branch` writes (the ref, its reflog, its tracking configuration).
//! - DST must not exist, or be an empty directory (as git). It is built in a staging
//!   directory beside it and renamed into place after its index and registration are
//!   written: it appears whole or not at all. On an error, or a signal handled through
//!   [`run::abort_all`], everything the run made is taken back: the staging directory, the
//!   registration, the branch it created (or moved with `-B`), the parents it created. A run
//!   killed at any point leaves a journal in its registration, from which the next run in the
//!   repository ([`register::clean_stale`]) or `cowtree gc` ([`run::clean_killed_runs`])
//!   takes it all back.
//! - Where the filesystems cannot reflink, files are copied and [`AddReport::fallback`] says
//!   why; with [`AddOptions::strict`] that is an error instead.
//! - Submodules are not handled: they are left as empty directories, as git leaves them.
//!   A SRC using sparse checkout (or any skip-worktree entry) is refused.
//! - A file that git's checkout filters would change (`.gitattributes` `filter=`, `ident`,
//!   `working-tree-encoding`, CRLF line endings; see [`filters`]) is never cloned: it is
//!   written from the object database through gitoxide's filter pipeline.
//! - With [`AddOptions::sync`], once [`add`] returns the worktree, its index and git's
//!   registration of it survive a power loss.

#![warn(missing_docs)]

pub mod branch;
pub mod build;
pub mod clone;
pub mod convert;
pub mod cost;
pub mod donor;
pub mod error;
pub mod filters;
pub mod hash;
pub mod ignored;
pub mod index_file;
pub mod journal;
pub mod keep;
pub mod register;
pub mod resolve;
pub mod run;
pub mod sizes;
pub mod snapshot;
mod steps;
pub mod tree;
pub mod trust;
pub mod way;

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};
use std::time::Instant;

use cowtree_fs::UnsupportedCause;
use cowtree_fs::dir::{Dir, write_atomic};
use cowtree_fs::staging::{self, TREE as STAGING};
use gix::ObjectId;

pub use build::Made;
pub use error::{Error, Result};
pub use ignored::IgnoredReport;
pub use run::{KilledRuns, abort_all, clean_killed_runs};
pub use way::{Method, MethodChoice, PerFileReason};

/// Which HEAD the new worktree gets (git's `-b`, `-B`, `--detach`, `--orphan`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BranchChoice {
    /// As `git worktree add` without `-b`/`-B`/`--detach`/`--orphan`: a COMMIT-ISH naming a
    /// local branch checks that branch out; one naming a branch that exists only on exactly
    /// one remote creates it from there, tracking it; another COMMIT-ISH detaches; no
    /// COMMIT-ISH checks out (or creates from SRC's HEAD, or with guess-remote from a
    /// remote-tracking branch) the branch named after DST.
    Auto,
    /// `-b NAME`: a new branch at COMMIT-ISH; an existing branch is refused.
    New(String),
    /// `-B NAME`: the branch NAME at COMMIT-ISH, created or reset (refused while another
    /// worktree has it checked out, unless forced).
    Reset(String),
    /// `--detach`: HEAD detached at COMMIT-ISH.
    Detach,
    /// `--orphan [-b NAME]`: a new unborn branch (named after DST without a name), an empty
    /// index and no files.
    Orphan(Option<String>),
}

/// Upstream tracking of a new branch (git's `--track`, `--no-track`; see `git branch`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Track {
    /// `branch.autoSetupMerge` decides (by default: track a remote-tracking start point).
    #[default]
    Default,
    /// `--track`: the start point becomes the upstream.
    Track,
    /// `--no-track`.
    NoTrack,
}

/// Which ignored files and directories of SRC the new worktree gets. Only entries git
/// ignores, and that are not tracked, are ever taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ignored {
    /// Those SRC's `.worktreeinclude` names (gitignore syntax; no file: none).
    pub worktreeinclude: bool,
    /// All of them (`--ignored`).
    pub all: bool,
    /// Those whose name or path matches one of these globs (`--ignored=PATTERN`).
    pub patterns: Vec<String>,
}

impl Default for Ignored {
    /// `.worktreeinclude` only.
    fn default() -> Self {
        Ignored {
            worktreeinclude: true,
            all: false,
            patterns: Vec::new(),
        }
    }
}

impl Ignored {
    /// None at all (`--no-ignored`).
    pub fn none() -> Self {
        Ignored {
            worktreeinclude: false,
            all: false,
            patterns: Vec::new(),
        }
    }
}

/// What to add: git's options for `git worktree add`, and cowtree's.
#[derive(Debug, Clone)]
pub struct AddOptions {
    /// A path inside the repository: a worktree (SRC by default), or a bare repository.
    pub src: PathBuf,
    /// SRC is the worktree `src` is in, even where another worktree of the repository holds
    /// more of the target's files (`--from`); by default the one that holds the most lends
    /// them ([`donor`]).
    pub src_fixed: bool,
    /// The new worktree's path (relative to the current directory, as git takes it).
    pub dst: PathBuf,
    /// The commit-ish to check out (default: SRC's HEAD; `-` is the previous branch).
    pub commit: Option<String>,
    /// The new worktree's HEAD.
    pub branch: BranchChoice,
    /// `-f`: once checks out a branch another worktree has, and replaces the registration
    /// of a missing worktree at DST; twice also when that registration is locked.
    pub force: u8,
    /// `--lock [--reason R]`: the text `locked` keeps (git writes "added with --lock").
    pub lock: Option<String>,
    /// `--track` / `--no-track` for a new branch.
    pub track: Track,
    /// `--guess-remote` / `--no-guess-remote` (`None`: `worktree.guessRemote`).
    pub guess_remote: Option<bool>,
    /// `--checkout` (default) / `--no-checkout`: without it DST holds only its `.git` file
    /// and has no index, as git leaves it.
    pub checkout: bool,
    /// `--quiet`: passed to `git branch`.
    pub quiet: bool,
    /// Ignored entries to clone.
    pub ignored: Ignored,
    /// Carry SRC's uncommitted changes to tracked files: DST's index is SRC's (staged changes,
    /// additions, removals) and each file whose stat data does not prove it holds its index
    /// blob is SRC's file as it is (or absent). Needs COMMIT-ISH to be SRC's HEAD commit
    /// ([`Error::WithChangesOtherCommit`]) and an index without conflicts
    /// ([`Error::Conflicted`]).
    pub with_changes: bool,
    /// Refuse to copy where a reflink is impossible.
    pub strict: bool,
    /// `--verify`: hash every file taken from SRC (its copy, as a git blob) instead of
    /// trusting SRC's stat data; see [`trust`].
    pub verify: bool,
    /// Which way DST's tree may be made (see [`tree`]): by one snapshot where SRC's worktree
    /// is a btrfs subvolume and the cost rule says it pays (the default), always per file,
    /// or by snapshot wherever SRC allows it.
    pub method: MethodChoice,
    /// Make the worktree, its index and its registration durable before returning.
    pub sync: bool,
    /// Run git's `post-checkout` hook as `git worktree add` does (its failure is reported in
    /// [`AddReport::hook`], the worktree stays).
    pub run_hooks: bool,
    /// A directory where the run leaves a record while it works, so that
    /// [`run::clean_killed_runs`] can find what a killed run left (the CLI:
    /// `$XDG_STATE_HOME/cowtree/git-worktree-add`).
    pub run_registry: Option<PathBuf>,
}

impl AddOptions {
    /// The options of a plain `git worktree add DST` run in SRC.
    pub fn new(src: impl Into<PathBuf>, dst: impl Into<PathBuf>) -> AddOptions {
        AddOptions {
            src: src.into(),
            src_fixed: false,
            dst: dst.into(),
            commit: None,
            branch: BranchChoice::Auto,
            force: 0,
            lock: None,
            track: Track::Default,
            guess_remote: None,
            checkout: true,
            quiet: false,
            ignored: Ignored::default(),
            with_changes: false,
            strict: false,
            verify: false,
            method: MethodChoice::Auto,
            sync: false,
            run_hooks: true,
            run_registry: None,
        }
    }
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
    /// On a new unborn branch (`--orphan`).
    Unborn {
        /// The branch name.
        name: String,
    },
    /// Detached.
    Detached,
}

/// What [`add`] did.
#[derive(Debug, Clone)]
pub struct AddReport {
    /// The new worktree (absolute).
    pub dst: PathBuf,
    /// SRC, the worktree that lent its files (absolute, resolved): the one the command ran in,
    /// or another of the repository's ([`donor`]); `None` when none could (a bare repository
    /// without worktrees, `--no-checkout`, `--orphan`).
    pub src: Option<PathBuf>,
    /// SRC is the worktree the command ran in.
    pub src_is_current: bool,
    /// Its registration directory.
    pub admin_dir: PathBuf,
    /// The commit checked out (`None` for `--orphan`).
    pub commit: Option<ObjectId>,
    /// HEAD.
    pub head: HeadReport,
    /// How DST's tree was made.
    pub method: Method,
    /// Why not by snapshot, when made per file (`None` for a snapshot and for
    /// [`Method::None`]).
    pub reason: Option<PerFileReason>,
    /// `--lock`: the lock's text.
    pub locked: Option<String>,
    /// Tracked entries.
    pub entries: u64,
    /// Files reflinked from SRC.
    pub cloned: u64,
    /// Files copied from SRC (no reflink possible).
    pub copied: u64,
    /// Entries written from the object database.
    pub from_objects: u64,
    /// Files taken from SRC (cloned, copied or kept by snapshot) on stat evidence: SRC's index
    /// proves them unchanged, their size is the blob's and no configured conversion could have
    /// kept it ([`trust`]).
    pub reused_on_stat: u64,
    /// Files taken from SRC after their copy was hashed to the target blob.
    pub reused_after_hash: u64,
    /// Files of SRC hashed and found to hold another blob, written from objects instead
    /// (counted in `from_objects` too).
    pub hash_mismatches: u64,
    /// Entries carried with their uncommitted changes.
    pub carried: u64,
    /// Tracked files and symlinks kept as the snapshot of SRC holds them ([`Method::Subvolume`]).
    pub kept: u64,
    /// Entries removed from the snapshot of SRC ([`Method::Subvolume`]): SRC's `.git`,
    /// untracked and unselected ignored entries, files rewritten.
    pub removed: u64,
    /// Bytes shared with SRC (by reflink, or kept from the snapshot).
    pub bytes_cloned: u64,
    /// Bytes written (copied or from objects).
    pub bytes_written: u64,
    /// Submodule paths left as empty directories.
    pub submodules: Vec<String>,
    /// Index entries recorded with DST's stat data (git reads none of these files).
    pub index_stat_entries: u64,
    /// The ignored entries cloned (`None`: none were asked for, or `.worktreeinclude` is
    /// absent).
    pub ignored: Option<IgnoredReport>,
    /// The first reason a file was copied instead of reflinked, and that file.
    pub fallback: Option<(UnsupportedCause, PathBuf)>,
    /// What killed runs had left, cleaned up first.
    pub cleaned: Vec<String>,
    /// What git said on the way (`git branch`'s tracking line, an inferred `--orphan`).
    pub notes: Vec<String>,
    /// `post-checkout`: `Some(code)` when the hook ran and failed.
    pub hook: Option<i32>,
}

fn current_umask() -> u32 {
    let old = rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o022));
    rustix::process::umask(old);
    cowtree_fs::sys::mode_bits(old)
}

/// DST as an absolute path whose existing part is resolved (as git's `realpath` of it), its
/// name, and whether it is an existing empty directory.
struct Dst {
    path: PathBuf,
    parent: PathBuf,
    name: OsString,
    empty_dir: bool,
}

impl Dst {
    fn examine(dst: &Path) -> Result<Dst> {
        let bad = || Error::BadDst(dst.to_owned());
        let abs = std::path::absolute(dst).map_err(|_| bad())?;
        // The deepest existing ancestor, resolved; the rest must be plain names (a `..`
        // under a missing directory cannot be created, as with git).
        let mut existing = abs.as_path();
        let mut rest = Vec::new();
        loop {
            if std::fs::symlink_metadata(existing).is_ok() {
                break;
            }
            let (Some(parent), Some(name)) = (existing.parent(), existing.file_name()) else {
                return Err(bad());
            };
            rest.push(name.to_owned());
            existing = parent;
        }
        let mut path = if rest.is_empty() {
            // DST itself exists: resolve its parent, keep its own name (not following it).
            let name = abs.file_name().ok_or_else(bad)?.to_owned();
            let parent = abs.parent().ok_or_else(bad)?;
            rest.push(name);
            parent.canonicalize().map_err(|_| bad())?
        } else {
            existing.canonicalize().map_err(|_| bad())?
        };
        for name in rest.iter().rev() {
            if Path::new(name)
                .components()
                .any(|c| !matches!(c, Component::Normal(_)))
            {
                return Err(bad());
            }
            path.push(name);
        }
        let name = path.file_name().ok_or_else(bad)?.to_owned();
        let parent = path.parent().ok_or_else(bad)?.to_owned();
        let empty_dir = match std::fs::symlink_metadata(&path) {
            Err(_) => false,
            Ok(m) if m.is_dir() => std::fs::read_dir(&path)
                .map(|mut d| d.next().is_none())
                .unwrap_or(false),
            Ok(_) => return Err(Error::DstExists(path)),
        };
        if !empty_dir && std::fs::symlink_metadata(&path).is_ok() {
            return Err(Error::DstExists(path));
        }
        Ok(Dst {
            path,
            parent,
            name,
            empty_dir,
        })
    }
}

/// Makes the new worktree described by `opts`; see the crate documentation for what is
/// promised.
pub fn add(opts: &AddOptions) -> Result<AddReport> {
    let started = Instant::now();
    steps::start();
    resolve::check_options(opts)?;
    let umask = current_umask();
    let repo = gix::discover(&opts.src).map_err(|e| Error::NotAWorktree {
        path: opts.src.clone(),
        source: e.into(),
    })?;
    let current_root = match repo.workdir() {
        Some(w) => Some(w.canonicalize().map_err(Error::io("resolve", w))?),
        None => None,
    };
    let common = repo
        .common_dir()
        .canonicalize()
        .map_err(Error::io("resolve", repo.common_dir()))?;
    // Where git's own commands run: the worktree the command runs in, or the bare repository.
    let src_root = current_root.clone().unwrap_or_else(|| common.clone());
    let dst = Dst::examine(&opts.dst)?;
    steps::mark("open");

    // Before HEAD is resolved: a killed run's registration must not hold its branch.
    let cleaned = register::clean_stale(&common)?;
    steps::mark("clean stale");
    // git's order: `-B` refuses a branch checked out elsewhere first, then DST is checked
    // (a missing but registered worktree), then the rest.
    let reset = matches!(opts.branch, BranchChoice::Reset(_));
    if !reset {
        register::check_candidate(&common, &dst.path, opts.force)?;
    }
    let plan = resolve::resolve(&repo, opts, &dst.name, &src_root)?;
    if reset {
        register::check_candidate(&common, &dst.path, opts.force)?;
    }
    if opts.with_changes {
        let head = repo.head_id().map_err(|_| Error::Unborn {
            path: src_root.clone(),
        })?;
        if Some(head.detach()) != plan.commit {
            return Err(Error::WithChangesOtherCommit {
                path: src_root.clone(),
                head: head.to_string(),
                commit: plan.commit.map(|c| c.to_string()).unwrap_or_default(),
            });
        }
    }

    steps::mark("resolve");
    let run = run::Run::begin(&src_root, &common, &dst.path, opts.run_registry.as_deref())?;
    // HEAD starts detached (or on the unborn branch), so that `git branch -B` below does not
    // see this worktree as having the branch checked out; it gets its final value after.
    let first_head = match plan.commit {
        Some(c) => c.to_string(),
        None => plan.head_line.clone(),
    };
    let admin_dir = run.register(|| {
        register::Registration::create(
            &common,
            &dst.name,
            &dst.path.join(".git"),
            &first_head,
            opts.lock.as_deref(),
            opts.sync,
        )
    })?;
    run.create_parents(&dst.path)?;

    let parent_dir = Dir::open(&dst.parent).map_err(Error::io("open", &dst.parent))?;
    staging::remove_stale(&parent_dir, &STAGING.prefix(&dst.name))
        .map_err(Error::io("remove stale staging in", &dst.parent))?;
    let staging_name = STAGING.name(&dst.name, &format!("{:016x}", staging::random_u64()));
    let staging_path = dst.parent.join(&staging_name);
    run.staging(&staging_path)?;
    steps::mark("register");

    // DST's tree is made here, one way or the other (see [`tree`]): the staging directory is
    // created (or snapshotted) and filled.
    let t_tree = Instant::now();
    let (staging, made) = tree::make(&way::Input {
        repo: &repo,
        opts,
        current_root: current_root.as_deref(),
        commit: plan.commit,
        parent: &parent_dir,
        parent_path: &dst.parent,
        staging_name: &staging_name,
        staging_path: &staging_path,
        admin_dir: &admin_dir,
        umask,
    })?;

    let t_tree = t_tree.elapsed();
    steps::mark("tree");
    let made_method = made.method;
    let mut notes = plan.notes.clone();
    if let Some(b) = &plan.new_branch {
        let commit = plan.commit.expect("a new branch has a commit");
        let undo = journal::BranchUndo {
            name: b.name.clone(),
            new: commit,
            previous: b.previous,
        };
        let start = branch::start_point(&repo, b, &opts.track, commit);
        run.branch(undo, || {
            notes.extend(branch::make(&src_root, b, &start, &opts.track, opts.quiet)?);
            // git resolved the start point again: it must be the commit built.
            match resolve::branch_tip(&repo, &b.name)? {
                Some(tip) if tip == commit => Ok(()),
                tip => Err(Error::GitFailed {
                    command: format!("git branch {} {}", b.name, b.start),
                    message: format!(
                        "the branch is at {}, not at {commit} which was checked out (the start \
                         point moved meanwhile); nothing was left",
                        tip.map(|t| t.to_string())
                            .unwrap_or_else(|| "nothing".into())
                    ),
                }),
            }
        })?;
    }

    let mut dotgit = b"gitdir: ".to_vec();
    dotgit.extend_from_slice(admin_dir.as_os_str().as_bytes());
    dotgit.push(b'\n');
    write_atomic(&staging.dir, OsStr::new(".git"), &dotgit, 0o666, false)
        .map_err(Error::io("write", staging_path.join(".git")))?;
    steps::mark("branch, .git file");
    let index_stat_entries = match made.index {
        Some(index) => run.with_registration(|reg| write_index(reg, &index))?,
        None => 0,
    };
    steps::mark("write the index");
    run.with_registration(|reg| reg.write("HEAD", format!("{}\n", plan.head_line).as_bytes()))?;
    run.with_registration(|reg| write_head_logs(&repo, reg, &plan, opts.checkout, &src_root))?;
    run.with_registration(|reg| copy_worktree_config(&repo, reg))?;
    steps::mark("HEAD, logs");

    if opts.sync {
        // Everything built and written so far reaches the disk before DST appears: the tree
        // and the `.git` file (DST's filesystem), the index, HEAD, the registration and the
        // branch (the repository's filesystem, when it is another one).
        staging
            .dir
            .sync_filesystem()
            .map_err(Error::io("sync", &staging_path))?;
        let common_dir = Dir::open(&common).map_err(Error::io("open", &common))?;
        if !same_filesystem(&staging.dir, &common_dir) {
            common_dir
                .sync_filesystem()
                .map_err(Error::io("sync", &common))?;
        }
    }
    let mut staging = staging;
    run.publish(|| {
        staging
            .commit(&dst.name, dst.empty_dir)
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::Interrupted => Error::Interrupted,
                std::io::ErrorKind::AlreadyExists | std::io::ErrorKind::DirectoryNotEmpty => {
                    Error::DstExists(dst.path.clone())
                }
                _ => Error::io("rename into", &dst.path)(e),
            })
    })?;
    if opts.sync {
        // The tree, and the parents this run created, were made durable by the filesystem
        // sync above; the rename is, once DST's parent is synced.
        parent_dir.sync().map_err(Error::io("sync", &dst.parent))?;
    }
    run.finish(opts.sync)?;
    steps::mark("publish");
    steps::print();
    if std::env::var_os("COWTREE_TIMING").is_some() {
        eprintln!(
            "timing: tree ({}) {:.1} ms; add {:.1} ms",
            made_method.as_str(),
            t_tree.as_secs_f64() * 1e3,
            started.elapsed().as_secs_f64() * 1e3
        );
    }

    let hook = match plan.commit {
        Some(commit) if opts.run_hooks && opts.checkout => {
            run_post_checkout(&repo, &dst.path, commit)
        }
        _ => None,
    };
    Ok(AddReport {
        dst: dst.path.clone(),
        src: made.src.clone(),
        src_is_current: made.src.is_some() && made.src == current_root,
        admin_dir: admin_dir.clone(),
        commit: plan.commit,
        head: plan.head.clone(),
        method: made.method,
        reason: made.reason,
        locked: opts.lock.clone(),
        entries: made.entries,
        cloned: made.cloned,
        copied: made.copied,
        from_objects: made.from_objects,
        reused_on_stat: made.reused_on_stat,
        reused_after_hash: made.reused_after_hash,
        hash_mismatches: made.hash_mismatches,
        carried: made.carried,
        kept: made.kept,
        removed: made.removed,
        bytes_cloned: made.bytes_cloned,
        bytes_written: made.bytes_written,
        submodules: made.submodules,
        index_stat_entries,
        ignored: made.ignored,
        fallback: made.fallback,
        cleaned,
        notes,
        hook,
    })
}

fn same_filesystem(a: &Dir, b: &Dir) -> bool {
    match (a.stat_self(), b.stat_self()) {
        (Ok(x), Ok(y)) => x.st_dev == y.st_dev,
        _ => false,
    }
}

/// Writes `target` as DST's index in the registration, at once. An entry whose file was
/// written in the same second as the index file is racy for git, as after git's own checkout:
/// the first `git status` reads those few files, and trusts the others. Returns how many
/// entries git trusts without reading the file (stat data recorded, not racy by git's rule in
/// whole seconds).
fn write_index(reg: &register::Registration, target: &gix::index::File) -> Result<u64> {
    let (secs, _) = reg.write_index(|w| {
        if !index_file::supported(target) {
            return target
                .write_to(w, gix::index::write::Options::default())
                .map(|_| ())
                .map_err(std::io::Error::other);
        }
        let bytes = index_file::encode(target)?;
        steps::mark("encode the index");
        std::io::Write::write_all(w, &bytes)
    })?;
    Ok(target
        .entries()
        .iter()
        .filter(|e| e.stat != Default::default() && i64::from(e.stat.mtime.secs) < secs)
        .count() as u64)
}

/// Writes what `git worktree add` leaves in the registration besides HEAD and the index:
/// `ORIG_HEAD` (its `git reset --hard` writes it) and `logs/HEAD` ([`register::head_log`]),
/// signed with the committer identity git would use.
fn write_head_logs(
    repo: &gix::Repository,
    reg: &register::Registration,
    plan: &resolve::Plan,
    checkout: bool,
    src_root: &Path,
) -> Result<()> {
    let Some(commit) = plan.commit else {
        return Ok(());
    };
    if checkout {
        reg.write("ORIG_HEAD", format!("{commit}\n").as_bytes())?;
    }
    let config = repo.config_snapshot();
    let log = match config.string("core.logAllRefUpdates") {
        None => register::LogRefs::Unset,
        Some(v) if v.eq_ignore_ascii_case(b"always") => register::LogRefs::Yes,
        Some(_) => match config.boolean("core.logAllRefUpdates") {
            Some(false) => register::LogRefs::Never,
            _ => register::LogRefs::Yes,
        },
    };
    let bare = config.boolean("core.bare").unwrap_or(false);
    let on_branch = matches!(plan.head, HeadReport::Branch { .. });
    let lines = register::head_log(Some(commit), on_branch, checkout, log, bare);
    if lines.is_empty() {
        return Ok(());
    }
    let ident = match repo.committer() {
        Some(Ok(sig)) => match sig.time() {
            Ok(time) => {
                let mut v = Vec::new();
                v.extend_from_slice(sig.name);
                v.extend_from_slice(b" <");
                v.extend_from_slice(sig.email);
                v.extend_from_slice(format!("> {time}").as_bytes());
                Some(v)
            }
            Err(_) => None,
        },
        _ => None,
    };
    // No identity in the configuration: git's own fallback (the user's name and host).
    let ident = match ident {
        Some(i) => i,
        None => {
            let out = branch::git(src_root)
                .args(["var", "GIT_COMMITTER_IDENT"])
                .output()
                .map_err(Error::io("run git var in", src_root))?;
            if !out.status.success() {
                return Ok(());
            }
            let mut v = out.stdout;
            while v.last() == Some(&b'\n') {
                v.pop();
            }
            v
        }
    };
    reg.write_head_log(&lines, &ident)
}

/// With `extensions.worktreeConfig`, the current worktree's `config.worktree` copied into the
/// new registration, as `git worktree add` copies it ("the new worktree behaves the same as
/// this one"), without `core.bare = true` and `core.worktree`, which git removes from the copy.
fn copy_worktree_config(repo: &gix::Repository, reg: &register::Registration) -> Result<()> {
    let config = repo.config_snapshot();
    if config.boolean("extensions.worktreeConfig") != Some(true) {
        return Ok(());
    }
    let from = repo.git_dir().join("config.worktree");
    let bytes = match std::fs::read(&from) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io("read", &from)(e)),
    };
    reg.write("config.worktree", &bytes)?;
    let to = reg.path().join("config.worktree");
    let copied = gix::config::File::from_bytes_no_includes(
        &bytes,
        gix::config::file::Metadata::from(gix::config::Source::Worktree),
        Default::default(),
    )
    .map_err(|e| Error::Git {
        what: "read the worktree configuration",
        path: from.clone(),
        source: e.into(),
    })?;
    let bare = matches!(copied.boolean("core.bare"), Ok(Some(true)));
    let worktree = copied.string("core.worktree").is_some();
    // Rare; git's own `config --file` edits the copy as `git worktree add` does.
    for (needed, args) in [
        (bare, &["--unset-all", "core.bare", "true"][..]),
        (worktree, &["--unset-all", "core.worktree"][..]),
    ] {
        if !needed {
            continue;
        }
        let out = branch::git(&reg.path())
            .arg("config")
            .arg("--file")
            .arg(&to)
            .args(args)
            .output()
            .map_err(Error::io("run git config in", reg.path()))?;
        if !out.status.success() {
            return Err(Error::GitFailed {
                command: format!("git config --file {} {}", to.display(), args.join(" ")),
                message: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
            });
        }
    }
    Ok(())
}

/// Runs git's `post-checkout` hook in DST as `git worktree add` does (`0{40} COMMIT 1`), when
/// the repository has one. `Some(status)` when it failed.
fn run_post_checkout(repo: &gix::Repository, dst: &Path, commit: ObjectId) -> Option<i32> {
    let hooks = match repo.config_snapshot().trusted_path("core.hooksPath") {
        Ok(Some(p)) => {
            if p.is_absolute() {
                p
            } else {
                dst.join(p)
            }
        }
        _ => repo.common_dir().join("hooks"),
    };
    let hook = hooks.join("post-checkout");
    let executable = std::fs::metadata(&hook)
        .is_ok_and(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o111 != 0);
    if !executable {
        return None;
    }
    let null = ObjectId::null(commit.kind()).to_string();
    // As git runs hooks: their output goes to stderr (stdout may be a program's to read).
    let stdout = std::os::fd::AsFd::as_fd(&std::io::stderr())
        .try_clone_to_owned()
        .map(std::process::Stdio::from)
        .unwrap_or_else(|_| std::process::Stdio::null());
    let status = branch::git(dst)
        .args(["hook", "run", "--ignore-missing", "post-checkout", "--"])
        .args([null.as_str(), &commit.to_string(), "1"])
        .stdout(stdout)
        .status();
    match status {
        Ok(s) if s.success() => None,
        Ok(s) => Some(s.code().unwrap_or(128)),
        Err(_) => Some(127),
    }
}
