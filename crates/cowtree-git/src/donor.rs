//! Which worktree of the repository lends its files to the new one (SRC).
//!
//! Any worktree of the repository can: the one the command runs in, the main one, or any
//! linked one. The one the command runs in is taken when its index holds every entry of the
//! target tree (the common case: a new branch from HEAD), when `--from` names it, or with
//! `--with-changes` (whose changes are its own). Otherwise the index of every other worktree
//! is read (the most recently written first, at most [`MAX_CANDIDATES`]) and the one whose
//! index shares the most entries with the target tree lends its files, one on DST's filesystem
//! before one elsewhere (files from another filesystem are copied, not reflinked), the current
//! one on a tie. A bare repository has no worktree of its own: one of its linked worktrees
//! lends its files, or none, and then every file is written from the object database.
//!
//! The evidence that a lent file holds what the target needs is the same whichever worktree
//! lends it ([`crate::trust`]): the choice only decides how many files can be reused.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::trust::Kind;

/// At most this many other worktrees' indexes are read to choose.
pub const MAX_CANDIDATES: usize = 32;

/// The worktree that lends its files, and its index.
pub struct Source {
    /// Its root (resolved).
    pub root: PathBuf,
    /// Its repository (its index's path, its ignore rules).
    pub repo: gix::Repository,
    /// Its index (empty when it has none).
    pub index: gix::index::File,
    /// It is the worktree the command runs in.
    pub current: bool,
    /// How many of the target's entries its index holds as they are in the target.
    pub score: usize,
}

/// Reads the index at `path` as git does (its checksum is not verified; a missing file is an
/// empty index).
pub fn read_index(path: &Path, hash: gix::hash::Kind) -> Result<gix::index::File> {
    match gix::index::File::at(path, hash, true, Default::default()) {
        Ok(f) => Ok(f),
        Err(_) if !path.exists() => Ok(gix::index::File::from_state(
            gix::index::State::new(hash),
            path,
        )),
        Err(e) => Err(Error::git("read index", path)(e)),
    }
}

/// How many of `target`'s entries `index` holds unconflicted with the same blob and kind.
pub fn score(target: &gix::index::State, index: &gix::index::State) -> usize {
    let found = crate::build::src_entries_for(target, index);
    target
        .entries()
        .iter()
        .zip(found)
        .filter(|(t, j)| {
            j.is_some_and(|j| {
                let s = &index.entries()[j];
                s.id == t.id && Kind::of(s.mode) == Kind::of(t.mode)
            })
        })
        .count()
}

/// A worktree other than the current one.
struct Candidate {
    root: PathBuf,
    git_dir: PathBuf,
    index_mtime: std::time::SystemTime,
}

/// The other worktrees of `repo`'s repository (the main one and the linked ones) whose
/// directory is there, but `current`.
fn candidates(repo: &gix::Repository, current: Option<&Path>) -> Vec<Candidate> {
    let mut out = Vec::new();
    let mut add = |root: PathBuf, git_dir: PathBuf| {
        let Ok(root) = root.canonicalize().map(crate::portable::plain) else {
            return;
        };
        if Some(root.as_path()) == current || !root.is_dir() {
            return;
        }
        let index_mtime = std::fs::metadata(git_dir.join("index"))
            .and_then(|m| m.modified())
            .unwrap_or(std::time::UNIX_EPOCH);
        out.push(Candidate {
            root,
            git_dir,
            index_mtime,
        });
    };
    let common = repo.common_dir();
    let bare = repo.config_snapshot().boolean("core.bare").unwrap_or(false);
    if !bare
        && common.file_name() == Some(std::ffi::OsStr::new(".git"))
        && let Some(main) = common.parent()
    {
        add(main.to_owned(), common.to_owned());
    }
    if let Ok(linked) = repo.worktrees() {
        for w in linked {
            if let Ok(base) = w.base() {
                add(base, w.git_dir().to_owned());
            }
        }
    }
    out.sort_by_key(|c| std::cmp::Reverse(c.index_mtime));
    out.truncate(MAX_CANDIDATES);
    out
}

/// The device of `path`, if it can be read.
fn dev(path: &Path) -> Option<u64> {
    // The same reading of `st_dev` as DST's (`stat_dev`), on every platform.
    crate::portable::path_dev(path)
}

/// The worktree the command runs in (`root`), with its index, as a [`Source`] (its score not
/// computed yet).
pub fn current(repo: &gix::Repository, root: &Path) -> Result<Source> {
    Ok(Source {
        root: root.to_owned(),
        repo: repo.clone(),
        index: read_index(&repo.index_path(), repo.object_hash())?,
        current: true,
        score: 0,
    })
}

/// The worktree that lends its files for `target` (see the module documentation): `repo` is
/// the repository the command runs in, `mine` its worktree ([`current`]; `None`: a bare
/// repository), `keep_current` forces it (`--from`, `--with-changes`), `dst_dev` is the
/// device DST is made on.
pub fn choose(
    repo: &gix::Repository,
    mine: Option<Source>,
    target: &gix::index::State,
    keep_current: bool,
    dst_dev: Option<u64>,
) -> Result<Option<Source>> {
    let hash = repo.object_hash();
    let current = mine.as_ref().map(|m| m.root.clone());
    let mine = mine.map(|m| Source {
        score: if keep_current {
            0
        } else {
            score(target, &m.index)
        },
        ..m
    });
    if keep_current
        || mine
            .as_ref()
            .is_some_and(|m| m.score == target.entries().len())
    {
        return Ok(mine);
    }
    let same_fs = |root: &Path| dst_dev.is_some() && dev(root) == dst_dev;
    // (same filesystem, score) of the best so far; the current worktree wins ties.
    let mut best_key = mine.as_ref().map(|m| (same_fs(&m.root), m.score));
    let mut best: Option<(Candidate, gix::index::File, usize)> = None;
    for c in candidates(repo, current.as_deref()) {
        let Ok(index) = read_index(&c.git_dir.join("index"), hash) else {
            continue;
        };
        let s = score(target, &index);
        let key = (same_fs(&c.root), s);
        if s > 0 && best_key.is_none_or(|b| key > b) {
            best_key = Some(key);
            best = Some((c, index, s));
        }
    }
    let Some((c, index, score)) = best else {
        return Ok(mine);
    };
    let repo = gix::open(&c.root).map_err(|e| Error::NotAWorktree {
        path: c.root.clone(),
        source: e.into(),
    })?;
    Ok(Some(Source {
        root: c.root,
        repo,
        index,
        current: false,
        score,
    }))
}
