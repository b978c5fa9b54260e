//! The target tree's directories, and what SRC has at each before and after the snapshot.

use std::collections::{HashMap, HashSet};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use cowtree_fs::dir::{Dir, DirEntry};
use gix::bstr::{BStr, BString, ByteSlice};
use rayon::prelude::*;
use rustix::fs::{AtFlags, Stat, statat};

use super::{path_of, split};
use crate::error::{Error, Result};

/// A child of a directory of the target tree.
#[derive(Debug, Clone, Copy)]
pub(super) enum Child {
    /// The target's entry of this index.
    Entry(usize),
    /// The target's directory of this index in [`Tree::dirs`].
    Dir(usize),
}

/// A directory of the target tree, and what SRC has there.
pub(super) struct TDir {
    pub(super) rel: BString,
    /// Its last component.
    pub(super) name: BString,
    pub(super) parent: Option<usize>,
    pub(super) children: Vec<Child>,
    /// The total length of the children's names: a btrfs directory holding exactly these
    /// names has twice this size.
    pub(super) names: u64,
    /// SRC's `lstat` before the snapshot (`None`: nothing there).
    pub(super) t0: Option<Stat>,
    /// SRC's `lstat` after the snapshot.
    pub(super) t2: Option<Stat>,
    /// The path names the same directory in SRC as in the snapshot (see the module doc).
    pub(super) same_place: bool,
    /// ... and lists the same entries.
    pub(super) same_list: bool,
    /// Entries the target does not have, where known (listed in SRC before, or in the
    /// snapshot).
    pub(super) extras: Option<Vec<DirEntry>>,
}

/// The target tree's directories.
pub(super) struct Tree {
    pub(super) dirs: Vec<TDir>,
    /// The directory of each target entry.
    pub(super) entry_dir: Vec<usize>,
    pub(super) index: HashMap<BString, usize>,
}

impl Tree {
    pub(super) fn new(target: &gix::index::State) -> Tree {
        let mut t = Tree {
            dirs: vec![TDir::new(BString::default(), None)],
            entry_dir: Vec::with_capacity(target.entries().len()),
            index: HashMap::new(),
        };
        t.index.insert(BString::default(), 0);
        let backing = target.path_backing();
        let mut last: Option<(BString, usize)> = None;
        for (i, e) in target.entries().iter().enumerate() {
            let path = e.path_in(backing);
            let (parent, name) = split(path);
            let d = match &last {
                Some((p, d)) if p.as_bstr() == parent => *d,
                _ => {
                    let d = t.ensure(parent);
                    last = Some((parent.to_owned(), d));
                    d
                }
            };
            t.dirs[d].children.push(Child::Entry(i));
            t.dirs[d].names += name.len() as u64;
            t.entry_dir.push(d);
        }
        t
    }

    pub(super) fn ensure(&mut self, rel: &BStr) -> usize {
        if let Some(&d) = self.index.get(rel) {
            return d;
        }
        let (parent, name) = split(rel);
        let p = self.ensure(parent);
        let d = self.dirs.len();
        self.dirs.push(TDir::new(rel.to_owned(), Some(p)));
        self.dirs[p].children.push(Child::Dir(d));
        self.dirs[p].names += name.len() as u64;
        self.index.insert(rel.to_owned(), d);
        d
    }

    /// The entries the per-file way creates: every tracked entry and directory but the root.
    pub(super) fn creates(&self) -> u64 {
        (self.entry_dir.len() + self.dirs.len() - 1) as u64
    }

    /// `lstat`s every directory's path in SRC (`root`, at `root_path`) in parallel and hands
    /// each result to `set` (`None`: nothing there). A path through a symlink resolves
    /// somewhere else: its first component is then not a directory, which makes every
    /// directory below it fail the tests of the module doc.
    pub(super) fn stat_all_in(
        &mut self,
        root: &Dir,
        root_path: &Path,
        set: impl Fn(&mut TDir, Option<Stat>) + Sync,
    ) -> Result<()> {
        let stats: Vec<Result<Option<Stat>>> = self
            .dirs
            .par_iter()
            .map(|d| {
                let r = if d.rel.is_empty() {
                    root.stat_self().map(Some)
                } else {
                    match statat(root, path_of(d.rel.as_ref()), AtFlags::SYMLINK_NOFOLLOW) {
                        Ok(st) => Ok(Some(st)),
                        Err(rustix::io::Errno::NOENT | rustix::io::Errno::NOTDIR) => Ok(None),
                        Err(e) => Err(e.into()),
                    }
                };
                r.map_err(Error::io("stat", root_path.join(path_of(d.rel.as_ref()))))
            })
            .collect();
        for (d, st) in self.dirs.iter_mut().zip(stats) {
            set(d, st?);
        }
        Ok(())
    }

    /// The names the target has in directory `d`.
    pub(super) fn names<'s>(
        &'s self,
        d: usize,
        target: &'s gix::index::State,
    ) -> HashSet<&'s [u8]> {
        let backing = target.path_backing();
        self.dirs[d]
            .children
            .iter()
            .map(|c| match *c {
                Child::Entry(i) => split(target.entries()[i].path_in(backing)).1,
                Child::Dir(j) => self.dirs[j].name.as_bytes(),
            })
            .collect()
    }
}

impl TDir {
    pub(super) fn new(rel: BString, parent: Option<usize>) -> TDir {
        let name = split(rel.as_ref()).1.into();
        TDir {
            rel,
            name,
            parent,
            children: Vec::new(),
            names: 0,
            t0: None,
            t2: None,
            same_place: false,
            same_list: false,
            extras: None,
        }
    }

    /// The target entries directly in it.
    pub fn entries(&self) -> impl Iterator<Item = usize> + '_ {
        self.children.iter().filter_map(|c| match *c {
            Child::Entry(i) => Some(i),
            Child::Dir(_) => None,
        })
    }

    /// Whether its size says it holds exactly the target's names (btrfs).
    pub(super) fn sized_exactly(st: &Stat, names: u64) -> bool {
        st.st_size as u64 == 2 * names
    }
}

/// The entries of `dir` the target does not have in directory `d`, sorted by name.
pub(super) fn extras_in(
    dir: &Dir,
    tree: &Tree,
    d: usize,
    target: &gix::index::State,
) -> std::io::Result<Vec<DirEntry>> {
    let names = tree.names(d, target);
    let mut out: Vec<DirEntry> = dir
        .entries()?
        .into_iter()
        .filter(|e| !names.contains(e.name.as_bytes()))
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}
