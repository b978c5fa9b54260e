//! After the snapshot: the snapshot made into exactly what the per-file way makes, in steps.
//! 1. SRC's directories looked at again: which ones name (and list) what they did before the
//!    snapshot ([`Apply::compare_dirs`]).
//! 2. Every tracked entry `lstat`ed, in SRC where its directory lists the same entries, else in
//!    the snapshot ([`Apply::look`]).
//! 3. The entries the target lacks found, from directory sizes where they prove there are none
//!    ([`Apply::find_untracked`]), and decided as the per-file way decides them
//!    ([`Apply::untracked`]); every tracked entry decided ([`Apply::decide_tracked`]).
//! 4. What goes is removed, missing directories made, files written from objects, permission
//!    bits and times set ([`Apply::make_dirs`], [`Apply::write`], [`Apply::fix`]).
//! 5. DST's index: SRC's stat data for what was kept, DST's for what was written
//!    ([`Apply::index`]).

use std::collections::HashSet;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use cowtree_fs::dir::{Dir, DirEntry};
use gix::bstr::{BStr, BString};
use gix::index::entry::{Mode, Stat as IndexStat};
use rayon::prelude::*;
use rustix::fs::{AtFlags, FileType, Timespec, statat};

use super::anew::{Anew, carry_anew, chmod_in, hash_kept, keep_anew};
use super::decide::{Act, DecideCtx, Decision, Hashed, Looked, Seen, Written, written};
use super::remove::remove_counted;
use super::survey::Marks;
use super::tree::{Child, TDir, Tree, extras_in};
use super::{
    Owner, Timing, changed, ctime_ns, file_type_of, has_dot_git, is_dir, join, open_in, os,
};
use super::{path_of, split};
use crate::error::{Error, Result};
use crate::ignored::IgnoredReport;
use crate::keep::{DirDecision, FileDecision, Rules};
use crate::trust::{Kind, records, stat_of};
use crate::way::{Input, Made, Method, Prepared};

/// What the walk of untracked entries and the tracked entries' verdicts decided.
#[derive(Default)]
struct Decided {
    /// Paths to remove (a directory with everything in it).
    removals: Vec<BString>,
    /// Directories whose permission bits the per-file way sets to 0777 less the umask
    /// (entered directories holding something taken), with the bits they have.
    dir_modes: Vec<(BString, u32)>,
    /// Directories taken whole from which something was removed: their times, to set again.
    times: Vec<(BString, Timespec, Timespec)>,
    report: IgnoredReport,
}

/// The snapshot (`staging`) of SRC (`src_dir`), made into DST's tree.
pub(super) struct Apply<'a, 'p> {
    pub input: &'a Input<'p>,
    pub prep: &'a Prepared,
    /// SRC's worktree root.
    pub src_root: &'a Path,
    pub src_dir: &'a Dir,
    pub staging: &'a Dir,
    /// When SRC's directories were first looked at (ns since the epoch).
    pub t0: i128,
    /// The holes the survey found SRC's per-file result holds nothing at.
    pub holes: HashSet<BString>,
    /// The owner and group the per-file way gives what it makes.
    pub owner: Owner,
}

impl Apply<'_, '_> {
    pub fn run(
        self,
        tree: &mut Tree,
        rules: &mut Rules<'_, '_>,
        timing: &mut Timing,
    ) -> Result<Made> {
        let (staging, staging_path) = (self.staging, self.input.staging_path);
        // SRC's repository always goes, and it is most of what goes (a pack file's extents,
        // the index): removed beside the steps that read, on a thread of its own.
        std::thread::scope(|scope| {
            let dot_git = scope.spawn(|| remove_dot_git(staging, staging_path));
            let made = self.run_beside_dot_git(tree, rules, timing);
            let dot_git = dot_git
                .join()
                .unwrap_or_else(|p| std::panic::resume_unwind(p));
            let mut made = made?;
            made.counts.removed += dot_git?;
            Ok(made)
        })
    }

    fn run_beside_dot_git(
        &self,
        tree: &mut Tree,
        rules: &mut Rules<'_, '_>,
        timing: &mut Timing,
    ) -> Result<Made> {
        self.compare_dirs(tree)?;
        let (looked, decisions) = self.look(tree)?;
        timing.mark("lstat");
        self.find_untracked(tree, &looked)?;
        let mut decided = self.decide_untracked(tree, rules)?;
        timing.mark("untracked");
        let acts = self.decide_tracked(decisions, &mut decided);
        timing.mark("decide");
        let (staging, staging_path) = (self.staging, self.input.staging_path);
        let removed = decided
            .removals
            .par_iter()
            .map(|rel| remove_in(staging, staging_path, rel.as_ref()))
            .sum::<Result<u64>>()?;
        timing.mark("remove");
        let mut dir_chmods = self.make_dirs(tree)?;
        dir_chmods.extend(
            std::mem::take(&mut decided.dir_modes)
                .into_iter()
                .filter(|(_, bits)| *bits != self.dir_mode()),
        );
        let written = self.write(tree, &acts, &looked)?;
        timing.mark("write");
        self.fix(&acts, &dir_chmods, &decided.times)?;
        let mut made = self.index(&acts, written)?;
        made.counts.removed += removed;
        let mut report = decided.report;
        report.nested_repos.sort();
        made.ignored = rules.takes_any().then_some(report);
        timing.mark("index");
        Ok(made)
    }

    /// The permission bits the per-file way gives a directory it makes.
    fn dir_mode(&self) -> u32 {
        0o777 & !self.input.umask
    }

    fn at(&self, rel: &BStr) -> std::path::PathBuf {
        self.input.staging_path.join(path_of(rel))
    }

    /// SRC's directories again, after the snapshot: each names the directory it named before
    /// (`same_place`), and lists the same entries (`same_list`), where its inode and ctime
    /// (and mtime and size) are unchanged and its ctime was more than a second old at the
    /// first look; and so did every directory above it. SRC's root names itself always.
    fn compare_dirs(&self, tree: &mut Tree) -> Result<()> {
        tree.stat_all_in(self.src_dir, self.src_root, |d, st| d.t2 = st)?;
        let racy_before = self.t0 - 1_000_000_000;
        for d in 0..tree.dirs.len() {
            let parent_ok = tree.dirs[d].parent.is_none_or(|p| tree.dirs[p].same_place);
            let dir = &mut tree.dirs[d];
            let root = dir.parent.is_none();
            let (place, list) = match (dir.t0.filter(is_dir), dir.t2.filter(is_dir)) {
                (Some(a), Some(b)) if ctime_ns(&a) < racy_before => {
                    let place = a.st_ino == b.st_ino
                        && a.st_dev == b.st_dev
                        && ctime_ns(&a) == ctime_ns(&b);
                    let list = place
                        && a.st_mtime == b.st_mtime
                        && a.st_mtime_nsec == b.st_mtime_nsec
                        && a.st_size == b.st_size;
                    (place, list)
                }
                _ => (false, false),
            };
            dir.same_place = (place || root) && parent_ok;
            dir.same_list = list && dir.same_place;
            if !dir.same_list {
                dir.extras = None;
            }
        }
        Ok(())
    }

    /// Every tracked entry's `lstat`: in SRC where its directory lists the same entries, else
    /// in the snapshot; whether a checkout filter changes it; and its act. In parallel by
    /// directory.
    fn look(&self, tree: &Tree) -> Result<(Vec<Seen>, Vec<Decision>)> {
        let (prep, src_dir, staging) = (self.prep, self.src_dir, self.staging);
        let target = &prep.target;
        let backing = target.path_backing();
        let src_of = prep.src_entries();
        // Each entry decided as soon as it is looked at ([`DecideCtx::decide`]).
        let ctx = DecideCtx {
            prep,
            umask: self.input.umask,
            with_changes: self.input.opts.with_changes,
            owner: self.owner,
            staging_path: self.input.staging_path,
        };
        type One = (usize, Seen, Decision);
        let parts: Vec<Result<Vec<One>>> = (0..tree.dirs.len())
            .into_par_iter()
            .map_init(
                || {
                    let repo = prep.sync_repo.to_thread_local();
                    let filters = prep.filters.worker();
                    (repo, filters)
                },
                |(repo, filters), d| {
                    let dir = &tree.dirs[d];
                    let entries: Vec<usize> = dir.entries().collect();
                    if entries.is_empty() {
                        return Ok(Vec::new());
                    }
                    let base = if dir.same_list { src_dir } else { staging };
                    let opened = open_in(base, dir.rel.as_ref()).ok();
                    entries
                        .into_iter()
                        .map(|i| {
                            let e = &target.entries()[i];
                            let path = e.path_in(backing);
                            let st = opened.as_ref().and_then(|o| {
                                statat(o, os(split(path).1), AtFlags::SYMLINK_NOFOLLOW).ok()
                            });
                            let kind = Kind::of(e.mode);
                            let look = if kind == Kind::File {
                                Some(filters.look(repo, path)?)
                            } else {
                                None
                            };
                            let filtered = look.as_ref().is_some_and(|l| l.converts.is_some());
                            let unconfigured_filter =
                                look.as_ref().is_some_and(|l| l.unconfigured_filter);
                            let src = src_of[i];
                            let src_entry = src.map(|j| &prep.src_index.entries()[j]);
                            // The blob's size, where the verdict can depend on it.
                            let size = (kind == Kind::File
                                && records(src_entry, &e.id, kind)
                                && st.is_some_and(|s| {
                                    FileType::from_raw_mode(s.st_mode) == FileType::RegularFile
                                }))
                            .then(|| prep.sizes.get(i, e.id, repo))
                            .flatten();
                            let l = Looked {
                                st,
                                filtered,
                                unconfigured_filter,
                                src,
                                size,
                            };
                            let act = ctx.decide(e, &l)?;
                            let seen = Seen {
                                present: l.st.is_some(),
                                filtered: l.filtered,
                            };
                            Ok((i, seen, act))
                        })
                        .collect()
                },
            )
            .collect();
        let n = target.entries().len();
        let mut looked = vec![Seen::default(); n];
        let mut acts: Vec<Option<Decision>> = vec![None; n];
        for part in parts {
            for (i, l, a) in part? {
                looked[i] = l;
                acts[i] = Some(a);
            }
        }
        // Entries of no directory of the tree (none: every entry has one) are decided here.
        let acts = acts
            .into_iter()
            .zip(target.entries())
            .map(|(a, e)| a.map_or_else(|| ctx.decide(e, &Looked::default()), Ok))
            .collect::<Result<Vec<_>>>()?;
        Ok((looked, acts))
    }

    /// Each target directory's entries the target lacks: none where SRC's directory lists the
    /// same entries as in the snapshot, holds every tracked name and has the size of exactly
    /// those names; those the survey listed where they are the same; else listed in the
    /// snapshot.
    fn find_untracked(&self, tree: &mut Tree, looked: &[Seen]) -> Result<()> {
        let target = &self.prep.target;
        for d in 0..tree.dirs.len() {
            let dir = &tree.dirs[d];
            let all_there = dir.children.iter().all(|c| match *c {
                Child::Entry(i) => looked[i].present,
                Child::Dir(j) => tree.dirs[j].t2.is_some(),
            });
            if dir.same_list && all_there {
                if dir.t2.is_some_and(|st| TDir::sized_exactly(&st, dir.names)) {
                    tree.dirs[d].extras = Some(Vec::new());
                    continue;
                }
                if dir.extras.is_some() {
                    continue;
                }
            }
            let rel = dir.rel.clone();
            tree.dirs[d].extras = match open_in(self.staging, rel.as_ref()) {
                Ok(o) => Some(
                    extras_in(&o, tree, d, target)
                        .map_err(Error::io("list", self.at(rel.as_ref())))?,
                ),
                Err(_) => Some(Vec::new()),
            };
        }
        Ok(())
    }

    /// The untracked entries of every target directory, decided.
    fn decide_untracked(&self, tree: &mut Tree, rules: &mut Rules<'_, '_>) -> Result<Decided> {
        let marks = Marks::compute(tree, rules)?;
        let mut decided = Decided::default();
        for &d in &marks.reported {
            decided
                .report
                .nested_repos
                .push(tree.dirs[d].rel.to_string());
        }
        for d in 0..tree.dirs.len() {
            let extras = tree.dirs[d].extras.take().unwrap_or_default();
            if extras.is_empty() {
                continue;
            }
            let rel = tree.dirs[d].rel.clone();
            let dir = open_in(self.staging, rel.as_ref())
                .map_err(Error::io("open", self.at(rel.as_ref())))?;
            for e in &extras {
                let sub = join(rel.as_ref(), e.name.as_bytes());
                // SRC's own repository (or a linked worktree's `.git` file) goes, removed apart
                // ([`remove_dot_git`]); everything goes where the ignored walk takes nothing.
                if d == 0 && e.name == ".git" {
                    continue;
                }
                let dropped = marks.shadowed[d] || !rules.takes_any();
                let ctx = Ctx {
                    dir: &dir,
                    inside_ignored: marks.ignored[d],
                    dropped,
                };
                self.untracked(rules, &mut decided, &ctx, sub.as_ref(), e)?;
            }
        }
        Ok(decided)
    }

    /// Decides the untracked entry `e` of the snapshot's directory `ctx.dir` (at `sub`) as
    /// the per-file way would (see [`crate::keep`]), recording what to remove. Returns whether
    /// anything of it is kept.
    fn untracked(
        &self,
        rules: &mut Rules<'_, '_>,
        out: &mut Decided,
        ctx: &Ctx<'_>,
        sub: &BStr,
        e: &DirEntry,
    ) -> Result<bool> {
        if ctx.dropped {
            out.removals.push(sub.to_owned());
            return Ok(false);
        }
        let ft = file_type_of(ctx.dir, e);
        if ft != FileType::Directory {
            let take = matches!(ft, FileType::RegularFile | FileType::Symlink)
                && rules.file(sub, e.name.as_bytes(), ctx.inside_ignored)? == FileDecision::Take;
            if !take {
                out.removals.push(sub.to_owned());
            } else if ft == FileType::Symlink {
                out.report.symlinks += 1;
            } else {
                out.report.cloned += 1;
            }
            return Ok(take);
        }
        let child = ctx
            .dir
            .open_dir(&e.name)
            .map_err(Error::io("open", self.at(sub)))?;
        let hole = self.holes.contains(sub);
        let git = self.has_dot_git(&child, sub, hole);
        match rules.dir(sub, e.name.as_bytes(), ctx.inside_ignored, git)? {
            DirDecision::NestedRepo { report } => {
                if report {
                    out.report.nested_repos.push(sub.to_string());
                }
                out.removals.push(sub.to_owned());
                Ok(false)
            }
            DirDecision::Whole if hole => Err(changed(self.src_root, sub)),
            DirDecision::Whole => {
                self.whole(out, &child, sub)?;
                Ok(true)
            }
            DirDecision::Enter { ignored } => {
                let mut entries = child.entries().map_err(Error::io("list", self.at(sub)))?;
                entries.sort_by(|a, b| a.name.cmp(&b.name));
                let mark = out.removals.len();
                let inner = Ctx {
                    dir: &child,
                    inside_ignored: ignored,
                    dropped: false,
                };
                let mut kept = false;
                for c in &entries {
                    let csub = join(sub, c.name.as_bytes());
                    kept |= self.untracked(rules, out, &inner, csub.as_ref(), c)?;
                }
                if kept {
                    let st = child.stat_self().map_err(Error::io("stat", self.at(sub)))?;
                    out.dir_modes
                        .push((sub.to_owned(), cowtree_fs::sys::stat_mode(&st) & 0o7777));
                    out.report.dirs += 1;
                } else {
                    // Nothing kept: the directory goes whole.
                    out.removals.truncate(mark);
                    out.removals.push(sub.to_owned());
                }
                Ok(kept)
            }
        }
    }

    /// Whether the directory `sub` (open as `dir` in the snapshot) holds a `.git`: a hole is
    /// empty in the snapshot, so SRC says.
    fn has_dot_git(&self, dir: &Dir, sub: &BStr, hole: bool) -> bool {
        if hole {
            open_in(self.src_dir, sub).is_ok_and(|d| has_dot_git(&d))
        } else {
            has_dot_git(dir)
        }
    }

    /// The ignored directory `sub` (open as `dir`) taken whole, as the per-file way copies it:
    /// but nested repositories and special files, which are removed (and the times of the
    /// directory holding them set back).
    fn whole(&self, out: &mut Decided, dir: &Dir, sub: &BStr) -> Result<()> {
        out.report.dirs += 1;
        let mut entries = dir.entries().map_err(Error::io("list", self.at(sub)))?;
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        let mut removed_here = false;
        for e in &entries {
            let csub = join(sub, e.name.as_bytes());
            match file_type_of(dir, e) {
                FileType::Directory => {
                    let child = dir
                        .open_dir(&e.name)
                        .map_err(Error::io("open", self.at(csub.as_ref())))?;
                    let hole = self.holes.contains(&csub);
                    if self.has_dot_git(&child, csub.as_ref(), hole) {
                        out.report.nested_repos.push(csub.to_string());
                        out.removals.push(csub);
                        removed_here = true;
                    } else if hole {
                        return Err(changed(self.src_root, csub.as_ref()));
                    } else {
                        self.whole(out, &child, csub.as_ref())?;
                    }
                }
                FileType::RegularFile => out.report.cloned += 1,
                FileType::Symlink => out.report.symlinks += 1,
                _ => {
                    out.report.special += 1;
                    out.removals.push(csub);
                    removed_here = true;
                }
            }
        }
        if removed_here {
            let st = dir.stat_self().map_err(Error::io("stat", self.at(sub)))?;
            let (atime, mtime) = cowtree_fs::sys::stat_times(&st);
            out.times.push((sub.to_owned(), atime, mtime));
        }
        Ok(())
    }

    /// The tracked entries' acts, decided as they were looked at ([`DecideCtx::decide`]); what
    /// is in the way of an entry to write is added to the removals.
    fn decide_tracked(&self, decisions: Vec<Decision>, decided: &mut Decided) -> Vec<Act> {
        let target = &self.prep.target;
        let backing = target.path_backing();
        let mut acts = Vec::with_capacity(decisions.len());
        for (e, (act, remove)) in target.entries().iter().zip(decisions) {
            if remove {
                decided.removals.push(e.path_in(backing).to_owned());
            }
            acts.push(act);
        }
        acts
    }

    /// Every target directory made a directory of the per-file way's permission bits: those
    /// SRC showed are there (their bits set where they differ); the others as the snapshot has
    /// them, or made. Returns the directories whose bits to set.
    fn make_dirs(&self, tree: &Tree) -> Result<Vec<(BString, u32)>> {
        let dir_mode = self.dir_mode();
        let mut chmods = Vec::new();
        for dir in &tree.dirs[1..] {
            if dir.same_place
                && let Some(st) = dir.t2
            {
                if cowtree_fs::sys::stat_mode(&st) & 0o7777 != dir_mode {
                    chmods.push((dir.rel.clone(), dir_mode));
                }
                continue;
            }
            let (parent_rel, name) = split(dir.rel.as_ref());
            let parent = open_in(self.staging, parent_rel)
                .map_err(Error::io("open", self.at(parent_rel)))?;
            let here = self.at(dir.rel.as_ref());
            match parent
                .try_stat(os(name))
                .map_err(Error::io("stat", &here))?
            {
                Some(st) if is_dir(&st) => {
                    if cowtree_fs::sys::stat_mode(&st) & 0o7777 != dir_mode {
                        chmods.push((dir.rel.clone(), dir_mode));
                    }
                }
                other => {
                    if other.is_some() {
                        remove_counted(&parent, os(name)).map_err(Error::io("remove", &here))?;
                    }
                    parent
                        .create_dir(os(name), 0o777)
                        .map_err(Error::io("create directory", &here))?;
                }
            }
        }
        Ok(chmods)
    }

    /// Writes every entry to write from the object database (through the filters where they
    /// apply), and makes every submodule's empty directory; in parallel by directory.
    fn write(&self, tree: &Tree, acts: &[Act], looked: &[Seen]) -> Result<Vec<Written>> {
        let (prep, staging) = (self.prep, self.staging);
        let (src_root, staging_path) = (self.src_root, self.input.staging_path);
        let at = |rel: &BStr| staging_path.join(path_of(rel));
        let target = &prep.target;
        let backing = target.path_backing();
        let umask = self.input.umask;
        let anew = Anew {
            src_dir: self.src_dir,
            src_root,
            staging_path,
            strict: self.input.opts.strict,
        };
        let parts: Vec<Result<Vec<Written>>> = (0..tree.dirs.len())
            .into_par_iter()
            .map_init(
                || {
                    let repo = prep.sync_repo.to_thread_local();
                    let filters = prep.filters.worker();
                    (repo, filters)
                },
                |(repo, filters), d| {
                    let todo: Vec<usize> = tree.dirs[d]
                        .entries()
                        .filter(|&i| {
                            matches!(
                                acts[i],
                                Act::Write
                                    | Act::Submodule
                                    | Act::CarryAnew
                                    | Act::KeepAnew { .. }
                                    | Act::Hash { .. }
                            )
                        })
                        .collect();
                    if todo.is_empty() {
                        return Ok(Vec::new());
                    }
                    let rel = &tree.dirs[d].rel;
                    let dst_dir = open_in(staging, rel.as_ref())
                        .map_err(Error::io("open", at(rel.as_ref())))?;
                    todo.into_iter()
                        .map(|i| {
                            let e = &target.entries()[i];
                            let path = e.path_in(backing);
                            let name = os(split(path).1);
                            if let Act::KeepAnew { st, mode } = acts[i] {
                                return keep_anew(
                                    &anew,
                                    repo,
                                    target,
                                    e,
                                    &dst_dir,
                                    name,
                                    (st, mode),
                                    i,
                                );
                            }
                            if let Act::CarryAnew = acts[i] {
                                return carry_anew(&anew, rel.as_ref(), &dst_dir, path, name, i);
                            }
                            if let Act::Submodule = acts[i] {
                                dst_dir
                                    .create_dir(name, 0o777)
                                    .map_err(Error::io("create directory", at(path)))?;
                                // Its stat data recorded, as git's checkout (and the per-file
                                // way) records it for a gitlink.
                                let st =
                                    dst_dir.stat(name).ok().map(|st| crate::trust::stat_of(&st));
                                return Ok(written(i, st, 0));
                            }
                            let mode = if e.mode == Mode::FILE_EXECUTABLE {
                                0o777
                            } else {
                                0o666
                            } & !umask;
                            let mut hashed = Hashed::No;
                            if let Act::Hash { st, chmod } = acts[i] {
                                let at = (staging, staging_path);
                                match hash_kept(at, &dst_dir, path, &e.id, st.size, chmod)? {
                                    Some(w) => return Ok(Written { i, ..w }),
                                    None => hashed = Hashed::Rejected,
                                }
                            }
                            let r = crate::build::write_blob(
                                repo,
                                looked[i].filtered.then_some(&mut *filters),
                                target,
                                e,
                                &dst_dir,
                                staging_path,
                                name,
                                mode,
                                Kind::of(e.mode) == Kind::Symlink && !prep.filters.symlinks(),
                            )?;
                            Ok(Written {
                                hashed,
                                ..written(i, r.stat, r.bytes)
                            })
                        })
                        .collect()
                },
            )
            .collect();
        let mut written = Vec::new();
        for part in parts {
            written.extend(part?);
        }
        Ok(written)
    }

    /// Sets the permission bits of kept and carried files and of directories where the
    /// per-file way gives others, the times of directories taken whole that lost entries, and
    /// the root's bits.
    fn fix(
        &self,
        acts: &[Act],
        dir_chmods: &[(BString, u32)],
        times: &[(BString, Timespec, Timespec)],
    ) -> Result<()> {
        let target = &self.prep.target;
        let backing = target.path_backing();
        for (e, act) in target.entries().iter().zip(acts) {
            if let Act::Keep {
                chmod: Some(bits), ..
            }
            | Act::Carry { chmod: Some(bits) } = *act
            {
                self.chmod(e.path_in(backing), bits)?;
            }
        }
        for (rel, bits) in dir_chmods {
            self.chmod(rel.as_ref(), *bits)?;
        }
        for (rel, atime, mtime) in times {
            let d = open_in(self.staging, rel.as_ref())
                .map_err(Error::io("open", self.at(rel.as_ref())))?;
            d.set_own_times(*atime, *mtime)
                .map_err(Error::io("set times of", self.at(rel.as_ref())))?;
        }
        let root = self
            .staging
            .stat_self()
            .map_err(Error::io("stat", self.input.staging_path))?;
        if cowtree_fs::sys::stat_mode(&root) & 0o7777 != self.dir_mode() {
            self.staging
                .set_mode(self.dir_mode())
                .map_err(Error::io("set mode of", self.input.staging_path))?;
        }
        Ok(())
    }

    fn chmod(&self, rel: &BStr, bits: u32) -> Result<()> {
        chmod_in(self.staging, self.input.staging_path, rel, bits)
    }

    /// DST's index: the target's entries with, for each kept file, SRC's stat data (the
    /// snapshot's own: the same but for the device, which is DST's), for each written file
    /// DST's; where a kept file's permission bits were set, or another name of it (a hard link)
    /// may have gone, its stat data read again. Carried files get none (git looks at them).
    fn index(&self, acts: &[Act], written: Vec<Written>) -> Result<Made> {
        let target = &self.prep.target;
        let backing = target.path_backing();
        let mut made = Made {
            method: Method::Subvolume,
            counts: crate::AddCounts {
                entries: target.entries().len() as u64,
                ..Default::default()
            },
            ..Made::default()
        };
        let mut stats: Vec<Option<IndexStat>> = vec![None; target.entries().len()];
        for w in written {
            stats[w.i] = w.stat;
            match (acts[w.i], w.hashed) {
                (Act::Write, _) => {
                    made.counts.from_objects += 1;
                    made.counts.bytes_written += w.bytes;
                }
                (_, Hashed::Rejected) => {
                    made.counts.from_objects += 1;
                    made.counts.hash_mismatches += 1;
                    made.counts.bytes_written += w.bytes;
                }
                (_, Hashed::Kept) => {
                    made.counts.kept += 1;
                    made.counts.reused_after_hash += 1;
                    made.counts.bytes_cloned += w.bytes;
                }
                _ => {}
            }
        }
        let dst_dev = self
            .staging
            .stat_self()
            .map_err(Error::io("stat", self.input.staging_path))?
            .st_dev;
        for (i, act) in acts.iter().enumerate() {
            let path = target.entries()[i].path_in(backing);
            match *act {
                Act::Keep { st, chmod } => {
                    made.counts.kept += 1;
                    made.counts.reused_on_stat += 1;
                    made.counts.bytes_cloned += st.size;
                    stats[i] = Some(if chmod.is_some() || st.linked {
                        let (parent, name) = split(path);
                        let now = open_in(self.staging, parent)
                            .and_then(|d| d.stat(os(name)))
                            .map_err(Error::io("stat", self.at(path)))?;
                        stat_of(&now)
                    } else {
                        let mut s = st.index;
                        s.dev = dst_dev as u32;
                        s
                    });
                }
                Act::Carry { .. } | Act::CarryAnew => made.counts.carried += 1,
                Act::KeepAnew { st, .. } => {
                    made.counts.kept += 1;
                    made.counts.reused_on_stat += 1;
                    made.counts.bytes_cloned += st.size;
                }
                Act::Submodule => made.submodules.push(path.to_string()),
                Act::Write | Act::Hash { .. } => {}
            }
        }
        // DST's index is the target with these stat data, made by the caller, who owns the
        // target and moves it ([`Prepared::finish_with_stats`]).
        made.stats = Some(stats.into_iter().map(Option::unwrap_or_default).collect());
        Ok(made)
    }
}

/// Removes the snapshot's `.git` (SRC's repository, or a linked worktree's `.git` file) from
/// `root` (at `root_path`), if it is there; how many entries went.
fn remove_dot_git(root: &Dir, root_path: &Path) -> Result<u64> {
    let name = std::ffi::OsStr::new(".git");
    match root
        .try_stat(name)
        .map_err(Error::io("stat", root_path.join(".git")))?
    {
        Some(_) => remove_counted(root, name).map_err(Error::io("remove", root_path.join(".git"))),
        None => Ok(0),
    }
}

/// Removes `rel` from the tree `root` (at `root_path`); how many entries went.
fn remove_in(root: &Dir, root_path: &Path, rel: &BStr) -> Result<u64> {
    let here = root_path.join(path_of(rel));
    let (parent, name) = split(rel);
    let d = open_in(root, parent).map_err(Error::io("open", &here))?;
    remove_counted(&d, os(name)).map_err(Error::io("remove", &here))
}

/// Where an untracked entry is decided: the snapshot's directory holding it, whether that
/// directory is ignored, and whether everything in it goes.
struct Ctx<'d> {
    dir: &'d Dir,
    inside_ignored: bool,
    dropped: bool,
}
