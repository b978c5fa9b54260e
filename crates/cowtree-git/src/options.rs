//! What [`crate::add`] is asked for ([`AddOptions`]: git's options for `git worktree add`, and
//! cowtree's) and what it reports ([`AddReport`]).

use std::path::PathBuf;

use cowtree_fs::UnsupportedCause;
use gix::ObjectId;

use crate::ignored::IgnoredReport;
use crate::method::{Method, MethodChoice, PerFileReason};

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
    /// them ([`crate::donor`]).
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
    /// `--sparse DIR...`: a cone-mode sparse worktree of these directories (and the top-level
    /// files), made in one step: the result of `git worktree add --no-checkout`, then `git
    /// sparse-checkout set --cone DIR...` and `git checkout` in it. Nothing outside the cone is
    /// written.
    pub sparse: Option<Vec<String>>,
    /// Ignored entries to clone.
    pub ignored: Ignored,
    /// Carry SRC's uncommitted changes to tracked files: DST's index is SRC's (staged changes,
    /// additions, removals) and each file whose stat data does not prove it holds its index
    /// blob is SRC's file as it is (or absent). Needs COMMIT-ISH to be SRC's HEAD commit
    /// ([`crate::Error::WithChangesOtherCommit`]) and an index without conflicts
    /// ([`crate::Error::Conflicted`]).
    pub with_changes: bool,
    /// Refuse to copy where a reflink is impossible.
    pub strict: bool,
    /// `--verify`: hash every file taken from SRC (its copy, as a git blob) instead of
    /// trusting SRC's stat data; see [`crate::trust`].
    pub verify: bool,
    /// Which way DST's tree may be made (see [`crate::tree`]): by one snapshot where SRC's worktree
    /// is a btrfs subvolume and the cost rule says it pays (the default), always per file,
    /// or by snapshot wherever SRC allows it.
    pub method: MethodChoice,
    /// Make the worktree, its index and its registration durable before returning.
    pub sync: bool,
    /// Run git's `post-checkout` hook as `git worktree add` does (its failure is reported in
    /// [`AddReport::hook`], the worktree stays).
    pub run_hooks: bool,
    /// A directory where the run leaves a record while it works, so that
    /// [`crate::run::clean_killed_runs`] can find what a killed run left (the CLI:
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
            sparse: None,
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

/// What [`crate::add()`] did.
#[derive(Debug, Clone)]
pub struct AddReport {
    /// The new worktree (absolute).
    pub dst: PathBuf,
    /// SRC, the worktree that lent its files (absolute, resolved): the one the command ran in,
    /// or another of the repository's ([`crate::donor`]); `None` when none could (a bare repository
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
    /// What was made, counted.
    pub counts: AddCounts,
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
    /// `Some(why)` when `git worktree add` made the worktree ([`crate::handover`]).
    pub made_by_git: Option<String>,
    /// Why no spare of the repository's pool was claimed, when it has one
    /// ([`crate::pool`]); with [`Method::Spare`], `None`.
    pub pool: Option<String>,
}

/// What `git worktree add` made, counted: the tree's entries, where each file's bytes came
/// from, and how many bytes were shared or written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AddCounts {
    /// Tracked entries in the worktree.
    pub entries: u64,
    /// Tracked entries the sparse checkout leaves out (in the index, skip-worktree, not
    /// written).
    pub skipped: u64,
    /// Files reflinked from SRC.
    pub cloned: u64,
    /// Files copied from SRC (no reflink possible).
    pub copied: u64,
    /// Entries written from the object database.
    pub from_objects: u64,
    /// Files taken from SRC (cloned, copied or kept by snapshot) on stat evidence: SRC's index
    /// proves them unchanged, their size is the blob's and no configured conversion could have
    /// kept it ([`crate::trust`]).
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
}

/// Refuses options that do not go together, as git does before looking at the repository.
pub fn check_options(opts: &AddOptions) -> crate::Result<()> {
    if let BranchChoice::Orphan(_) = opts.branch {
        if opts.track != Track::Default {
            return Err(crate::Error::Incompatible("--orphan", "--track"));
        }
        if !opts.checkout {
            return Err(crate::Error::Incompatible("--orphan", "--no-checkout"));
        }
        if opts.commit.is_some() {
            return Err(crate::Error::OrphanWithCommit);
        }
        if opts.with_changes {
            return Err(crate::Error::Incompatible("--orphan", "--with-changes"));
        }
    }
    if !opts.checkout && opts.with_changes {
        return Err(crate::Error::Incompatible(
            "--no-checkout",
            "--with-changes",
        ));
    }
    if opts.sparse.is_some() {
        // --sparse is `sparse-checkout set` and `checkout` after the add: nothing to check out
        // with these, and --with-changes carries SRC's own index, sparse or not.
        if let BranchChoice::Orphan(_) = opts.branch {
            return Err(crate::Error::Incompatible("--sparse", "--orphan"));
        }
        if !opts.checkout {
            return Err(crate::Error::Incompatible("--sparse", "--no-checkout"));
        }
        if opts.with_changes {
            return Err(crate::Error::Incompatible("--sparse", "--with-changes"));
        }
    }
    Ok(())
}
