//! Before the snapshot, on SRC: how many entries the snapshot way would remove (for the cost
//! rule, [`crate::cost`]), and whether the per-file result holds nothing where the snapshot
//! would hold an empty directory (the holes).

use std::collections::HashSet;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use cowtree_fs::dir::{Dir, DirEntry};
use cowtree_fs::whole_tree::Holes;
use gix::bstr::{BStr, BString, ByteSlice};
use gix::index::entry::Mode;
use rustix::fs::FileType;

use super::tree::{TDir, Tree, extras_in};
use super::{file_type_of, has_dot_git, is_dir, join, open_in, path_of, split};
use crate::error::{Error, Result};
use crate::keep::{DirDecision, FileDecision, Rules};
use crate::way::PerFileReason;

/// Before the snapshot, on SRC: what the snapshot way would have to remove (for the cost
/// rule), and whether every hole is somewhere the per-file result leaves empty.
pub(super) struct Survey {
    pub(super) remove: u64,
    pub(super) limit: u64,
    /// Counting for the cost rule (not with `--subvolume`).
    pub(super) counting: bool,
    pub(super) holes: HashSet<BString>,
}

impl Survey {
    pub(super) fn over(&self) -> bool {
        self.counting && self.remove > self.limit
    }

    /// Lists the directories whose size shows entries the target lacks, and counts what
    /// would be removed; checks the holes. `Some(reason)` when the snapshot way is not to be
    /// taken.
    pub(super) fn run(
        &mut self,
        tree: &mut Tree,
        rules: &mut Rules<'_, '_>,
        src: &Dir,
        src_path: &Path,
        holes: &Holes,
    ) -> Result<Option<PerFileReason>> {
        let target = rules.target();
        for d in 0..tree.dirs.len() {
            let Some(st) = tree.dirs[d].t0.filter(is_dir) else {
                continue;
            };
            if TDir::sized_exactly(&st, tree.dirs[d].names) {
                continue;
            }
            let rel = tree.dirs[d].rel.clone();
            let dir = open_in(src, rel.as_ref())
                .map_err(Error::io("open", src_path.join(path_of(rel.as_ref()))))?;
            let extras = extras_in(&dir, tree, d, target)
                .map_err(Error::io("list", src_path.join(path_of(rel.as_ref()))))?;
            tree.dirs[d].extras = Some(extras);
        }
        // Whether the ignored walk skips each target directory (a `.git` in it) and whether
        // it is ignored, top-down.
        let marks = Marks::compute(tree, rules)?;
        for d in 0..tree.dirs.len() {
            let Some(extras) = tree.dirs[d].extras.take() else {
                continue;
            };
            let rel = tree.dirs[d].rel.clone();
            let dir = open_in(src, rel.as_ref())
                .map_err(Error::io("open", src_path.join(path_of(rel.as_ref()))))?;
            for e in &extras {
                if self.over() {
                    return Ok(None);
                }
                let sub = join(rel.as_ref(), e.name.as_bytes());
                let dropped =
                    (d == 0 && e.name == ".git") || marks.shadowed[d] || !rules.takes_any();
                self.entry(rules, &dir, sub.as_ref(), e, marks.ignored[d], dropped)?;
            }
            tree.dirs[d].extras = Some(extras);
        }
        for (path, mount_point) in holes
            .nested
            .iter()
            .map(|p| (p, false))
            .chain(holes.mount_points.iter().map(|p| (p, true)))
        {
            let rel = BString::from(path.as_os_str().as_bytes());
            if !hole_is_dropped(tree, rules, &marks, src, rel.as_ref())? {
                return Ok(Some(PerFileReason::Hole {
                    path: path.clone(),
                    mount_point,
                }));
            }
        }
        Ok(None)
    }

    /// Counts what the snapshot way would remove for the untracked entry `e` of `dir`.
    pub(super) fn entry(
        &mut self,
        rules: &mut Rules<'_, '_>,
        dir: &Dir,
        sub: &BStr,
        e: &DirEntry,
        inside_ignored: bool,
        dropped: bool,
    ) -> Result<bool> {
        let ft = file_type_of(dir, e);
        if ft != FileType::Directory {
            let kept = !dropped
                && matches!(ft, FileType::RegularFile | FileType::Symlink)
                && rules.file(sub, e.name.as_bytes(), inside_ignored)? == FileDecision::Take;
            if !kept {
                self.remove += 1;
            }
            return Ok(kept);
        }
        let Ok(child) = dir.open_dir(&e.name) else {
            self.remove += 1;
            return Ok(false);
        };
        if dropped {
            self.count_tree(&child, sub);
            return Ok(false);
        }
        match rules.dir(sub, e.name.as_bytes(), inside_ignored, has_dot_git(&child))? {
            DirDecision::NestedRepo { .. } => {
                self.count_tree(&child, sub);
                Ok(false)
            }
            DirDecision::Whole => Ok(true),
            DirDecision::Enter { ignored } => {
                let mut entries = child.entries().unwrap_or_default();
                entries.sort_by(|a, b| a.name.cmp(&b.name));
                let mut kept = false;
                for c in &entries {
                    if self.over() {
                        return Ok(kept);
                    }
                    let csub = join(sub, c.name.as_bytes());
                    kept |= self.entry(rules, &child, csub.as_ref(), c, ignored, false)?;
                }
                if !kept {
                    self.remove += 1;
                }
                Ok(kept)
            }
        }
    }

    /// Counts `dir` and everything below it (not into holes, which a snapshot holds empty),
    /// until the limit is passed.
    pub(super) fn count_tree(&mut self, dir: &Dir, rel: &BStr) {
        self.remove += 1;
        if !self.counting || self.holes.contains(rel) {
            return;
        }
        let Ok(entries) = dir.entries() else { return };
        for e in entries {
            if self.over() {
                return;
            }
            if file_type_of(dir, &e) == FileType::Directory
                && let Ok(child) = dir.open_dir(&e.name)
            {
                self.count_tree(&child, join(rel, e.name.as_bytes()).as_ref());
            } else {
                self.remove += 1;
            }
        }
    }
}

/// For each target directory: whether the per-file ignored walk skips it (a `.git` in it or
/// above it), and whether git ignores it (or a directory above it). The `.git` is seen in the
/// directory's extras; ignore rules are asked only where something can be taken.
pub(super) struct Marks {
    pub(super) shadowed: Vec<bool>,
    pub(super) ignored: Vec<bool>,
    /// Target directories holding a `.git` that the report names.
    pub(super) reported: Vec<usize>,
}

impl Marks {
    pub fn compute(tree: &Tree, rules: &mut Rules<'_, '_>) -> Result<Marks> {
        let n = tree.dirs.len();
        let mut m = Marks {
            shadowed: vec![false; n],
            ignored: vec![false; n],
            reported: Vec::new(),
        };
        for d in 1..n {
            let p = tree.dirs[d].parent.expect("only the root has none");
            let rel = tree.dirs[d].rel.as_bstr();
            let name = split(rel).1;
            let git = tree.dirs[d]
                .extras
                .as_ref()
                .is_some_and(|x| x.iter().any(|e| e.name == ".git"));
            m.shadowed[d] = m.shadowed[p] || git;
            if !rules.takes_any() || m.shadowed[p] {
                continue;
            }
            match rules.dir(rel, name, m.ignored[p], git)? {
                DirDecision::NestedRepo { report } => {
                    if report {
                        m.reported.push(d);
                    }
                }
                DirDecision::Enter { ignored } => m.ignored[d] = ignored,
                // Tracked: never taken whole.
                DirDecision::Whole => m.ignored[d] = true,
            }
        }
        Ok(m)
    }
}

/// Whether the per-file result holds nothing at or below the hole `rel` (a nested subvolume
/// or mount point of SRC), judged on SRC.
fn hole_is_dropped(
    tree: &Tree,
    rules: &mut Rules<'_, '_>,
    marks: &Marks,
    src: &Dir,
    rel: &BStr,
) -> Result<bool> {
    let parts: Vec<&[u8]> = rel.split_str("/").collect();
    let mut d = 0usize;
    let mut i = 0;
    // Down the target's directories.
    while i < parts.len() {
        let prefix = parts[..=i].join(&b'/');
        match tree.index.get(prefix.as_bstr()) {
            Some(&j) if i + 1 == parts.len() => {
                // The hole is a directory of the target tree.
                let _ = j;
                return Ok(false);
            }
            Some(&j) => {
                d = j;
                i += 1;
            }
            None => break,
        }
    }
    let first = parts[..=i].join(&b'/');
    if rules.target().entry_by_path(first.as_bstr()).is_some() {
        // A submodule checked out as a nested subvolume: the per-file result is an empty
        // directory there, as the snapshot's.
        return Ok(i + 1 == parts.len()
            && rules
                .target()
                .entry_by_path(first.as_bstr())
                .is_some_and(|e| e.mode == Mode::COMMIT));
    }
    if (d == 0 && parts[i] == b".git") || marks.shadowed[d] || !rules.takes_any() {
        return Ok(true);
    }
    // Outside the target tree: each directory down to the hole decided as the ignored walk
    // decides it.
    let mut inside_ignored = marks.ignored[d];
    let mut whole = false;
    for k in i..parts.len() {
        let prefix = parts[..=k].join(&b'/');
        let Ok(dir) = open_in(src, prefix.as_bstr()) else {
            return Ok(true);
        };
        let git = has_dot_git(&dir);
        if whole {
            if git {
                return Ok(true);
            }
            continue;
        }
        match rules.dir(prefix.as_bstr(), parts[k], inside_ignored, git)? {
            DirDecision::NestedRepo { .. } => return Ok(true),
            DirDecision::Whole => whole = true,
            DirDecision::Enter { ignored } => inside_ignored = ignored,
        }
    }
    if whole {
        return Ok(false);
    }
    // Entered: dropped when nothing in it would be taken.
    let mut probe = Survey {
        remove: 0,
        limit: 0,
        counting: false,
        holes: HashSet::new(),
    };
    let dir = match open_in(src, rel) {
        Ok(d) => d,
        Err(_) => return Ok(true),
    };
    let mut entries = dir.entries().unwrap_or_default();
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    for e in &entries {
        let sub = join(rel, e.name.as_bytes());
        if probe.entry(rules, &dir, sub.as_ref(), e, inside_ignored, false)? {
            return Ok(false);
        }
    }
    Ok(true)
}
