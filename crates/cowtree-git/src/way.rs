//! What the two ways of making DST's tree (by snapshot, [`crate::by_snapshot`]; per file,
//! [`crate::tree`]) take and give: the input, what both start from (`Prepared`: the commit's
//! tree as DST's index-to-be, SRC's index, the checkout filters), the result ([`Made`]), and
//! which way ran or may run, and why not the snapshot ([`Method`], [`MethodChoice`],
//! [`PerFileReason`]). [`crate::tree::make`] chooses between the two.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use cowtree_fs::UnsupportedCause;
use cowtree_fs::dir::Dir;
use gix::ObjectId;

use crate::error::{Error, Result};
use crate::filters;
use crate::ignored::{self, IgnoredReport};
pub use crate::method::{Method, MethodChoice, PerFileReason};
use crate::options::AddOptions;

/// What making the tree needs.
pub struct Input<'a> {
    /// SRC's repository.
    pub repo: &'a gix::Repository,
    /// The options.
    pub opts: &'a AddOptions,
    /// The worktree the command runs in (`None`: a bare repository). SRC, the worktree that
    /// lends its files, is chosen from it and its siblings ([`crate::donor`]).
    pub current_root: Option<&'a Path>,
    /// The commit to check out (`None`: an unborn branch).
    pub commit: Option<ObjectId>,
    /// DST's parent directory, open: the staging directory is made in it.
    pub parent: &'a Dir,
    /// Its path.
    pub parent_path: &'a Path,
    /// The staging directory's name (journaled by the caller before [`crate::tree::make`] runs).
    pub staging_name: &'a OsStr,
    /// Its path.
    pub staging_path: &'a Path,
    /// The new worktree's registration directory (its `$GIT_DIR`).
    pub admin_dir: &'a Path,
    /// The process's umask.
    pub umask: u32,
    /// What the repository is ([`crate::facts`]).
    pub facts: &'a crate::facts::Facts,
}

/// The tree made, and DST's index to write.
#[derive(Default)]
pub struct Made {
    /// How.
    pub method: Method,
    /// The worktree that lent its files.
    pub src: Option<PathBuf>,
    /// Why not by snapshot, when made per file.
    pub reason: Option<PerFileReason>,
    /// DST's index (`None`: no index, as after `--no-checkout`), with DST's stat data.
    pub index: Option<gix::index::File>,
    /// The cache-tree to write with `index` instead of its own ([`crate::cache_tree`]): the
    /// target tree's, which git's checkout primes.
    pub index_tree: Option<gix::index::extension::Tree>,
    /// DST's index already encoded, with DST's stat data (a claimed spare's): written as it
    /// is, in place of `index`.
    pub encoded: Option<crate::index_file::Located>,
    /// `index` is a sparse index (its entries collapsed: [`crate::cache_tree::collapse`]).
    pub sparse_index: bool,
    /// DST's stat data for each entry of [`Prepared::target`], in place of `index`: the
    /// caller that owns the [`Prepared`] moves the target into DST's index
    /// ([`Prepared::finish_with_stats`]) instead of the way copying it (78,000 entries:
    /// 9 MB).
    // Set by the snapshot way only (unix).
    #[cfg_attr(windows, allow(dead_code))]
    pub(crate) stats: Option<Vec<gix::index::entry::Stat>>,
    /// What was made, counted.
    pub counts: crate::AddCounts,
    /// Submodules left empty.
    pub submodules: Vec<String>,
    /// Ignored entries cloned.
    pub ignored: Option<IgnoredReport>,
    /// The first reason a file was copied.
    pub fallback: Option<(UnsupportedCause, PathBuf)>,
    /// Why no spare of the repository's pool was claimed, when it has one.
    pub pool: Option<String>,
}

impl Made {
    /// Counts one entry the per-file builder made ([`crate::build::EntryResult`]).
    pub(crate) fn count_built(&mut self, r: &crate::build::EntryResult) {
        use crate::build::Made as Entry;
        match r.made {
            Entry::Cloned(proof) => {
                self.counts.cloned += 1;
                self.counts.bytes_cloned += r.bytes;
                self.count_proof(proof);
            }
            Entry::Copied(proof) => {
                self.counts.copied += 1;
                self.counts.bytes_written += r.bytes;
                self.count_proof(proof);
            }
            Entry::FromObjects { rejected } => {
                self.counts.from_objects += 1;
                self.counts.bytes_written += r.bytes;
                self.counts.hash_mismatches += u64::from(rejected);
            }
            Entry::Carried { copied } => {
                self.counts.carried += 1;
                if copied {
                    self.counts.bytes_written += r.bytes;
                } else {
                    self.counts.bytes_cloned += r.bytes;
                }
            }
            Entry::Submodule | Entry::Skipped => {}
        }
    }

    /// Counts one file of SRC taken on `proof`.
    pub(crate) fn count_proof(&mut self, proof: crate::build::Proof) {
        match proof {
            crate::build::Proof::Stat => self.counts.reused_on_stat += 1,
            crate::build::Proof::Hash => self.counts.reused_after_hash += 1,
        }
    }
}

/// What both ways start from: the commit's tree as DST's index-to-be, SRC's index, the
/// selection of ignored entries, the checkout filters.
pub(crate) struct Prepared {
    /// The target tree's id.
    pub tree_id: ObjectId,
    /// SRC, the worktree that lends its files ([`crate::donor`]); `None` in a bare repository
    /// none of whose worktrees can.
    pub src_root: Option<PathBuf>,
    /// SRC's repository (its ignore rules), for workers.
    pub src_repo: gix::ThreadSafeRepository,
    /// SRC's index (empty when SRC has none).
    pub src_index: gix::index::File,
    /// What the verdicts on SRC's files are made with (SRC's index file's mtime, the
    /// configuration's risks, `--verify`).
    pub evidence: crate::trust::Evidence,
    /// The target's blob sizes ([`crate::sizes`]).
    pub sizes: crate::sizes::Sizes,
    /// The target was read from SRC's index and keeps its cache-tree ([`tree_of_cache`]).
    pub target_has_cache_tree: bool,
    /// The target's entries are SRC's index's, one for one, in the same order (read from its
    /// cache-tree, or `--with-changes`): each entry's SRC entry is the one at its position.
    #[cfg_attr(windows, allow(dead_code))]
    pub target_is_src_index: bool,
    /// DST's index-to-be: the target tree's entries (with `--with-changes`, SRC's index), no
    /// stat data yet.
    pub target: gix::index::File,
    /// SRC's `.worktreeinclude`, when read and present.
    pub include: Option<gix::ignore::Search>,
    /// The checkout filters of the target tree.
    pub filters: filters::Setup,
    /// The repository the command runs in (objects, attributes), for workers.
    pub sync_repo: gix::ThreadSafeRepository,
}

impl Prepared {
    /// Reads the commit, chooses SRC and reads its index and `.worktreeinclude`, and sets up
    /// the filters.
    pub(crate) fn new(input: &Input<'_>) -> Result<Prepared> {
        let repo = input.repo;
        let opts = input.opts;
        let commit_id = input.commit.expect("a checkout has a commit");
        let commit = repo.find_commit(commit_id).map_err(Error::git(
            "read commit",
            PathBuf::from(commit_id.to_string()),
        ))?;
        let tree_id = commit.tree_id().map_err(Error::git(
            "read commit",
            PathBuf::from(commit_id.to_string()),
        ))?;
        // Where the current worktree's HEAD is the target's tree, its index will most often
        // give the target ([`tree_of_cache`]): the file is then read twice at once, the second
        // time on another thread as the target-to-be (a copy of the first, 9 MB for 78,000
        // entries, takes as long again to fault in).
        let index_path = repo.index_path();
        let hash = repo.object_hash();
        let twice = input.current_root.is_some()
            && !opts.with_changes
            && repo.head_tree_id().ok().map(|t| t.detach()) == Some(tree_id.detach());
        let (mine, second) = std::thread::scope(|s| {
            let second =
                twice.then(|| s.spawn(|| crate::donor::read_index(&index_path, hash).ok()));
            let mine = match input.current_root {
                Some(root) => Some(crate::donor::current(repo, root)?),
                None => None,
            };
            let second =
                second.and_then(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)));
            Ok::<_, Error>((mine, second))
        })?;
        crate::steps::mark("read SRC's index");
        // With --with-changes DST gets the current worktree's index itself (staged changes,
        // additions and removals included, HEAD being the same commit); otherwise the target
        // tree's.
        let mut target_has_cache_tree = false;
        let (target, src, sized_tree) = if opts.with_changes {
            let src = mine.ok_or_else(|| Error::Bare {
                path: repo.git_dir().to_owned(),
            })?;
            if let Some(e) = src
                .index
                .entries()
                .iter()
                .find(|e| e.stage() != gix::index::entry::Stage::Unconflicted)
            {
                return Err(Error::Conflicted {
                    path: src.root.join(crate::portable::os_str(e.path(&src.index))),
                });
            }
            (src.index.clone(), Some(src), None)
        } else {
            let cached = mine
                .as_ref()
                .and_then(|m| tree_of_cache(&m.index, tree_id.detach(), second));
            target_has_cache_tree = cached.is_some();
            // (Read from SRC's cache-tree: SRC is then the current worktree, kept below.)
            let target = match cached {
                Some(t) => t,
                None => repo
                    .index_from_tree(&tree_id)
                    .map_err(Error::git("read tree", PathBuf::from(tree_id.to_string())))?,
            };
            crate::steps::mark("target");
            let dst_dev = input
                .parent
                .stat_self()
                .ok()
                .map(|st| cowtree_fs::sys::stat_dev(&st));
            // A target read from the current worktree's own index: that worktree holds it whole.
            let keep = input.opts.src_fixed || target_has_cache_tree;
            let src = crate::donor::choose(repo, mine, &target, keep, dst_dev)?;
            crate::steps::mark("choose SRC");
            (target, src, Some(tree_id.detach()))
        };
        // The target is a copy of the current worktree's index, and that worktree is SRC:
        // with --with-changes, and where read from its cache-tree.
        let target_is_src_index = (opts.with_changes || target_has_cache_tree)
            && src.as_ref().is_some_and(|s| s.current)
            && src
                .as_ref()
                .is_some_and(|s| s.index.entries().len() == target.entries().len());
        let mut target = target;
        if let (Some(sparse), false) = (&input.facts.sparse, opts.with_changes) {
            mark_sparse(&mut target, sparse);
            crate::steps::mark("sparse");
        }
        let mut fetched = None;
        if !input.facts.promisors.is_empty() {
            // A partial clone: what git's checkout would fetch, fetched now, in one batch.
            let missing = crate::promisor::missing(repo, &target);
            if !missing.is_empty() {
                let dir = input.current_root.unwrap_or(repo.common_dir());
                crate::promisor::fetch(dir, &input.facts.promisors, &missing)?;
                // The blobs are in a pack the repository's object store, which looked for
                // them before, may not look at again (it failed to, most of the time): the
                // repository opened again reads them.
                fetched = Some(
                    gix::open_opts(repo.git_dir(), repo.open_options().clone())
                        .map_err(Error::git("open", repo.git_dir().to_owned()))?,
                );
            }
            crate::steps::mark("fetch missing blobs");
        }
        let repo = fetched.as_ref().unwrap_or(repo);
        // SRC's parts, its index moved (an index of 78,000 entries is 10 MB to copy).
        let (src_root, src_repo, src_index) = match src {
            Some(s) => (Some(s.root), s.repo, s.index),
            None => (
                None,
                repo.clone(),
                gix::index::File::from_state(
                    gix::index::State::new(repo.object_hash()),
                    repo.index_path(),
                ),
            ),
        };
        let stamp = src_index.timestamp();
        let index_mtime = (stamp.unix_seconds(), stamp.nanoseconds());
        let include = match &src_root {
            Some(root) if opts.ignored.worktreeinclude => ignored::worktreeinclude(root)?,
            _ => None,
        };
        let filters = filters::Setup::new(repo, &target, input.admin_dir, input.staging_path)?;
        let evidence = crate::trust::Evidence {
            index_mtime,
            risk: filters.risk(),
            verify: opts.verify,
        };
        crate::steps::mark("filters");
        let sizes =
            crate::sizes::Sizes::load(repo.common_dir(), sized_tree, target.entries().len());
        Ok(Prepared {
            tree_id: tree_id.detach(),
            target_has_cache_tree,
            target_is_src_index,
            sizes,
            src_root,
            src_repo: src_repo.into_sync(),
            src_index,
            evidence,
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

    /// For each target entry, where SRC's index has an unconflicted entry at its path, that
    /// entry's position ([`crate::build::src_entries_for`]); without the search where the
    /// target is a copy of SRC's index (`target_is_src_index`: the same position).
    #[cfg_attr(windows, allow(dead_code))]
    pub fn src_entries(&self) -> Vec<Option<usize>> {
        if self.target_is_src_index {
            return (0..self.target.entries().len()).map(Some).collect();
        }
        crate::build::src_entries_for(&self.target, &self.src_index)
    }

    /// DST's index from the target with its stat data: with SRC's cache-tree where valid
    /// (see [`with_cache_tree`]); `--with-changes`, and a target read from SRC's index
    /// ([`tree_of_cache`]), keep SRC's own.
    pub fn finish_index(&self, target: gix::index::File, with_changes: bool) -> gix::index::File {
        if with_changes || self.target_has_cache_tree {
            target
        } else {
            with_cache_tree(target, &self.src_index, self.tree_id)
        }
    }

    /// DST's index made of the target itself (moved out, not copied) with `stats`, the stat
    /// data a way computed for its entries ([`Made::stats`]), then [`Prepared::finish_into`].
    #[cfg_attr(windows, allow(dead_code))]
    pub fn finish_with_stats(
        mut self,
        input: &Input<'_>,
        stats: Vec<gix::index::entry::Stat>,
        made: &mut Made,
    ) -> Result<()> {
        let empty = gix::index::File::from_state(
            gix::index::State::new(self.target.object_hash()),
            self.target.path().to_owned(),
        );
        let mut index = std::mem::replace(&mut self.target, empty);
        for (e, st) in index.entries_mut().iter_mut().zip(stats) {
            e.stat = st;
        }
        self.finish_into(input, index, made)
    }

    /// [`Prepared::finish_index`], then what git's checkout leaves that the entries alone do
    /// not give, into `made`: the target tree's cache-tree where SRC's could not be kept (git
    /// primes it from the tree it checked out), and with `index.sparse` in cone mode the
    /// sparse index git writes ([`crate::cache_tree::collapse`]). `--with-changes` keeps SRC's
    /// own index as it is.
    pub fn finish_into(
        &self,
        input: &Input<'_>,
        target: gix::index::File,
        made: &mut Made,
    ) -> Result<()> {
        let with_changes = input.opts.with_changes;
        let index = self.finish_index(target, with_changes);
        if with_changes {
            made.index = Some(index);
            return Ok(());
        }
        if let Some(sparse) = input.facts.sparse.as_ref().filter(|s| s.sparse_index) {
            let patterns = crate::sparse::Patterns::parse(&sparse.patterns, sparse.cone);
            if patterns.is_cone() {
                let full = crate::cache_tree::of_tree(input.repo, self.tree_id)?;
                let (state, tree) =
                    crate::cache_tree::collapse(&index, &full, &|d| patterns.cone_excludes_dir(d));
                made.index = Some(gix::index::File::from_state(state, index.path().to_owned()));
                made.index_tree = Some(tree);
                made.sparse_index = true;
                return Ok(());
            }
        }
        if index.tree().is_none() {
            made.index_tree = Some(crate::cache_tree::of_tree(input.repo, self.tree_id)?);
        }
        made.index = Some(index);
        Ok(())
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

/// The target tree `tree_id` as an index, read from `index` (the current worktree's) instead
/// of from the tree's objects, where its cache-tree (the `TREE` extension `git commit` and
/// `git read-tree` write, and every index change invalidates) says that it holds exactly that
/// tree: a valid root of that id and entry count, every entry unconflicted and unflagged. git
/// builds its commits from the same extension. `None` otherwise. `copy`: the same file read
/// again, used instead of a copy of `index` where it has the same trailer.
fn tree_of_cache(
    index: &gix::index::File,
    tree_id: gix::ObjectId,
    copy: Option<gix::index::File>,
) -> Option<gix::index::File> {
    let root = index.tree()?;
    let whole = root.id == tree_id
        && root.num_entries == Some(index.entries().len() as u32)
        && !index.is_sparse()
        && index.entries().iter().all(|e| {
            e.stage() == gix::index::entry::Stage::Unconflicted
                && !e.flags.intersects(
                    gix::index::entry::Flags::INTENT_TO_ADD
                        | gix::index::entry::Flags::SKIP_WORKTREE
                        | gix::index::entry::Flags::ASSUME_VALID,
                )
        });
    if !whole {
        return None;
    }
    // The entries as a tree gives them (no stat data, no flags), and the cache-tree, valid
    // for them. gitoxide writes no other extension.
    // The trailer names the file's bytes (a file replaced between the two reads has another).
    let mut out = match copy {
        Some(c)
            if c.checksum().is_some()
                && c.checksum() == index.checksum()
                && c.entries().len() == index.entries().len() =>
        {
            c
        }
        _ => index.clone(),
    };
    for e in out.entries_mut() {
        e.stat = Default::default();
        e.flags = gix::index::entry::Flags::empty();
    }
    Some(out)
}

/// Marks the target's entries that the sparse checkout leaves out skip-worktree (they are
/// not written, and git's index has them so), as git's checkout does with the patterns
/// `git worktree add` copied ([`crate::sparse`]).
pub(crate) fn mark_sparse(target: &mut gix::index::File, sparse: &crate::facts::Sparse) {
    use gix::index::entry::{Flags, Mode};
    let patterns = crate::sparse::Patterns::parse(&sparse.patterns, sparse.cone);
    let mut matcher = patterns.matcher();
    let (entries, backing) = target.entries_mut_and_pathbacking();
    for e in entries {
        let path = e.path_in(backing);
        if !matcher.includes(path, e.mode == Mode::COMMIT) {
            e.flags |= Flags::SKIP_WORKTREE | Flags::EXTENDED;
        }
    }
}
