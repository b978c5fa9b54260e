//! The link pass: runs a [`Plan`] into a destination root (a new destination's staging
//! directory, or an existing destination under a merge's journal) in parallel work items
//! (see [`crate::work_items`]), each making its chunk of one directory's entries
//! ([`crate::entry`]) with the session's fallback state, then gives the directories it
//! created their mode and times ([`crate::dir_finish`]).

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use cowtree_fs::creation::CreationMask;
use cowtree_fs::dir::Dir;
use cowtree_fs::dir::Stat;

use crate::engine::{Engine, FDS_WHILE_LINKING, HELD_PER_WORKER};
use crate::error::LinkError;
use crate::file_link::FileLinker;
use crate::link_map::LinkMap;
use crate::link_staging::random_u64;
use crate::options::OnExisting;
use crate::plan::{PEntry, PKind, Plan, SrcRef, TreeSrc};
use crate::report::{NotKept, RecordEntry, Tally};
use crate::scan::open_rel;
use crate::txn::{Journal, Op};
use crate::work_items::{Held, Item, SrcDir, push_items};

/// The destination directory of a work item, as its entries are made in it.
pub(crate) struct Here<'a> {
    pub dir: &'a Dir,
    /// Its device.
    pub dev: u64,
    /// Where it is now, relative to the destination root (its final path, or under a
    /// temporary name).
    pub open: &'a Path,
    /// Its final path relative to the destination root, for messages and the record.
    pub rel: &'a Path,
    /// Created by this run (so it is empty but for what this run puts there).
    pub fresh: bool,
    /// What creation does to permission bits in it, when certain.
    pub mask: Option<CreationMask>,
}

impl Here<'_> {
    /// The full path of its entry `name`, for messages.
    pub(crate) fn full(&self, run: &Run<'_>, name: &OsStr) -> std::path::PathBuf {
        run.dst_path.join(self.rel).join(name)
    }
}

/// What making one entry gave.
pub(crate) enum Made {
    /// Nothing was made: the source was gone, or it is a device node the caller may not make
    /// (counted in [`NotKept::special`]).
    Nothing,
    /// Made; for a directory made in a merge, its identity, taken right after `mkdirat`.
    Made(Option<Stat>),
}

/// What one worker of a link pass gathers.
#[derive(Default)]
pub(crate) struct Local<'r> {
    pub tally: Tally,
    /// Directories this run created whose final mode lacks owner read, write or search
    /// (where they are now, their plan node): they get the source's mode and times at the
    /// end, deepest first. The others get theirs as soon as their last entry is made.
    pub created: Vec<(PathBuf, usize)>,
    pub ops: Vec<Op>,
    /// Each entry with its [`path_key`], made here so that the workers share that work.
    record: Vec<(Vec<u8>, RecordEntry)>,
    /// The source directory last opened: (tree, node) and its handle.
    pub src: Option<((u32, u32), SrcDir<'r>)>,
    /// Work items for the next pass (see [`push_items`]).
    pub tails: Vec<Item<'r>>,
}

impl Local<'_> {
    pub fn push_record(&mut self, entry: RecordEntry) {
        self.record.push((path_key(&entry.path), entry));
    }
}

/// What a link pass did.
pub(crate) struct Outcome {
    pub tally: Tally,
    pub ops: Vec<Op>,
    pub record: Vec<RecordEntry>,
}

/// One pass of a plan into `dst_root` (a staging directory or an existing destination).
pub(crate) struct Run<'r> {
    pub engine: &'r Engine,
    pub plan: &'r Plan,
    pub trees: &'r [Arc<TreeSrc>],
    pub dst_root: &'r Dir,
    /// The destination as the caller named it, for messages.
    pub dst_path: &'r Path,
    /// Set for a merge into an existing destination: new entries at existing directories
    /// are built under temporary names and noted here.
    pub journal: Option<&'r Journal<'r>>,
    /// What creation does to permission bits in the directories this run creates, when
    /// certain (a new destination only: in a merge, an existing directory may have a default
    /// ACL that new ones inherit).
    pub mask: Option<CreationMask>,
    /// Per plan directory created by this run and finished in the link pass, the number of
    /// its work items not done yet (0 for every other directory): the item that brings it
    /// to 0 gives the directory its mode and times.
    pub pending: Vec<AtomicUsize>,
    /// Directories held open by queued work items ([`Held`]: destination directories this
    /// run created and the source directories their entries come from), and the most there
    /// may be: [`HELD_PER_WORKER`] per worker, within what the open-file limit leaves beside
    /// the descriptors each worker holds itself and the source roots.
    held: AtomicUsize,
    max_held: usize,
    /// The first names of hardlinked source files ([`crate::Preserve::links`]).
    pub links: LinkMap,
    /// What directories finished outside a worker's [`Local`] could not keep.
    pub dirs_not_kept: Mutex<NotKept>,
}

impl<'r> Run<'r> {
    pub fn new(
        engine: &'r Engine,
        plan: &'r Plan,
        trees: &'r [Arc<TreeSrc>],
        dst_root: &'r Dir,
        dst_path: &'r Path,
        journal: Option<&'r Journal<'r>>,
        mask: Option<CreationMask>,
    ) -> Run<'r> {
        Run {
            engine,
            plan,
            trees,
            dst_root,
            dst_path,
            journal,
            mask,
            pending: plan.nodes.iter().map(|_| AtomicUsize::new(0)).collect(),
            held: AtomicUsize::new(0),
            max_held: {
                let jobs = engine.jobs.max(1);
                // Each source root stays open for the whole pass.
                let spare = cowtree_fs::workers::open_file_limit()
                    .saturating_sub(cowtree_fs::workers::RESERVED_FDS)
                    .saturating_sub(trees.len() + jobs * FDS_WHILE_LINKING);
                spare.min(HELD_PER_WORKER * jobs)
            },
            links: LinkMap::default(),
            dirs_not_kept: Mutex::new(NotKept::default()),
        }
    }

    /// The directory `name` of `parent`, opened for the work items of its entries: by name
    /// in its parent's handle, never following a symlink, which costs less than a path
    /// resolved from the root. `None` when enough directories are held already, or when the
    /// open fails (the items then open it from the root, and report what that finds).
    ///
    /// Held destination directories are only those this run created (filled by this run
    /// alone; in a merge, under a temporary name the journal notes): an existing directory
    /// of a merge is opened from the root by each item (see [`Run::link_item`]).
    pub(crate) fn hold(&self, parent: &Dir, name: &OsStr) -> Option<Arc<Held<'_>>> {
        if self.held.fetch_add(1, Ordering::Relaxed) >= self.max_held {
            self.held.fetch_sub(1, Ordering::Relaxed);
            return None;
        }
        match parent.open_dir(name) {
            Ok(dir) => Some(Arc::new(Held {
                dir,
                count: &self.held,
            })),
            Err(_) => {
                self.held.fetch_sub(1, Ordering::Relaxed);
                None
            }
        }
    }

    /// Where `src` is, as the record names it.
    pub(crate) fn src_rel(&self, src: &SrcRef) -> PathBuf {
        match src {
            SrcRef::Tree { tree, node, entry } => {
                let t = &self.trees[*tree as usize];
                t.tree.nodes[*node as usize].rel.join(t.name(*node, *entry))
            }
            SrcRef::Path { path, .. } => path.clone(),
        }
    }

    pub(crate) fn recording(&self) -> bool {
        self.engine.opts.record || self.engine.opts.hash.is_some()
    }

    /// Links every entry, then gives the directories this run created their mode and times.
    /// `root_fresh`: the destination root was created by this run.
    pub fn link_all(&self, root_fresh: bool) -> Result<Outcome, LinkError> {
        let mut first = Vec::new();
        let root_dev = if root_fresh {
            Some(
                self.dst_root
                    .stat_self()
                    .map(|st| cowtree_fs::sys::stat_dev(&st))
                    .map_err(|e| LinkError::io("stat", self.dst_path, e))?,
            )
        } else {
            None
        };
        let mut tails = Vec::new();
        push_items(
            self.plan,
            0,
            (PathBuf::new(), None, None),
            root_fresh,
            root_dev,
            &mut first,
            &mut tails,
        );
        let mut tally = Tally::default();
        let mut created = Vec::new();
        if root_fresh {
            created.push((PathBuf::new(), 0));
        }
        let mut ops = Vec::new();
        let mut record = Vec::new();
        // Passes: each runs the first chunk of every directory it reaches, and leaves the
        // other chunks of big ones to the next (see [`push_items`]).
        while !first.is_empty() {
            let locals = self.engine.workers.run(
                self.engine.jobs,
                first,
                Local::default,
                |local, item, push| self.link_item(local, item, push),
            )?;
            for local in locals {
                tally.merge(local.tally);
                created.extend(local.created);
                ops.extend(local.ops);
                record.extend(local.record);
                tails.extend(local.tails);
            }
            // The queue runs the last item first: ordered so that the second chunks of all
            // directories run first, one directory after another, then the third chunks, and
            // so on, so that workers taking the next items are in different directories for
            // as long as there are several.
            tails.sort_by(|a, b| b.start.cmp(&a.start).then_with(|| a.node.cmp(&b.node)));
            first = std::mem::take(&mut tails);
        }
        self.finish_dirs(created)?;
        tally.not_kept.add(
            &self
                .dirs_not_kept
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        // Publication order: by directory, so that each is opened once.
        ops.sort_by(|a, b| a.dir.cmp(&b.dir).then_with(|| a.name.cmp(&b.name)));
        // Paths are unique: an unstable sort gives the one order.
        self.engine
            .workers
            .sort_unstable_by(&mut record, |a, b| a.0.cmp(&b.0));
        let record = record.into_iter().map(|(_, e)| e).collect();
        Ok(Outcome { tally, ops, record })
    }

    /// Makes the entries of one work item, in the directory it holds or opens from the
    /// destination root, and finishes that directory if it was the last item there.
    fn link_item<'s>(
        &'s self,
        local: &mut Local<'s>,
        mut item: Item<'s>,
        push: &mut Vec<Item<'s>>,
    ) -> Result<(), LinkError> {
        if let Some((key, held)) = item.src.take() {
            local.src = Some((key, SrcDir::Held(held)));
        }
        let node = &self.plan.nodes[item.node];
        let opened;
        let dst_dir: &Dir = match &item.held {
            Some(held) => &held.dir,
            None => {
                opened = open_rel(self.dst_root, &item.open).map_err(|e| {
                    LinkError::io("open directory", &self.dst_path.join(&node.rel), e)
                })?;
                &opened
            }
        };
        let here = Here {
            dir: dst_dir,
            dev: self.item_dev(&item, dst_dir, &node.rel)?,
            open: &item.open,
            rel: &node.rel,
            fresh: item.fresh,
            // In a directory of an existing destination, creation may follow a default ACL.
            mask: if item.fresh { self.mask } else { None },
        };
        let bytes_before = bytes_of(&local.tally);
        let mut files: Vec<FileLinker<'_>> = Vec::new();
        let mut done = 0u64;
        for entry in &node.entries[item.start..item.end] {
            // One relaxed load per entry: a cancelled call stops within one file.
            self.engine.check_cancel(self.dst_path)?;
            done += 1;
            self.link_entry(local, &mut files, push, &here, entry)?;
        }
        if let Some(p) = &self.engine.opts.progress {
            p.advanced(done, bytes_of(&local.tally) - bytes_before);
        }
        let src = local.src.as_ref().map(|(key, d)| (*key, d.dir()));
        self.finish_item(item.node, dst_dir, src)
    }

    /// The device of the item's destination directory `dir` (at `rel`).
    fn item_dev(&self, item: &Item<'_>, dir: &Dir, rel: &Path) -> Result<u64, LinkError> {
        match item.dev {
            Some(d) => Ok(d),
            None => dir
                .stat_self()
                .map(|st| cowtree_fs::sys::stat_dev(&st))
                .map_err(|e| LinkError::io("stat", &self.dst_path.join(rel), e)),
        }
    }

    /// Makes one planned entry in `here`: in a merge, after deciding what becomes of an
    /// entry already at its name, under a temporary name noted for the publication.
    fn link_entry<'s>(
        &'s self,
        local: &mut Local<'s>,
        files: &mut Vec<FileLinker<'s>>,
        push: &mut Vec<Item<'s>>,
        here: &Here<'_>,
        entry: &PEntry,
    ) -> Result<(), LinkError> {
        let name: &OsStr = &entry.name;
        let replace = if here.fresh {
            false
        } else {
            match self.meet_existing(local, push, here, entry)? {
                Existing::Done => return Ok(()),
                Existing::Make { replace } => replace,
            }
        };
        let tmp;
        let at: &OsStr = if here.fresh {
            name
        } else {
            tmp = temp_name(name);
            if let Some(j) = self.journal {
                j.note_temp(here.open, &tmp)?;
            }
            &tmp
        };
        let made = match &entry.kind {
            PKind::File(src) => {
                self.file_entry(local, files, here, (name, at), src, entry.origin)?
            }
            PKind::Symlink(src) => {
                self.symlink_entry(local, here, (name, at), src, entry.origin)?
            }
            PKind::Dir(child) => {
                self.dir_entry(local, push, here, (name, at), *child, entry.origin)?
            }
            #[cfg(unix)]
            PKind::Special(src) => self.special_entry(local, here, (name, at), src)?,
            // Planned only under `Preserve::special`, refused before any work on Windows.
            #[cfg(windows)]
            PKind::Special(_) => {
                return Err(LinkError::Unsupported(
                    "making special files (preserve special)",
                ));
            }
        };
        if let Made::Made(made_dir) = made
            && !here.fresh
        {
            self.note_publication(local, here, (name, at), made_dir, replace)?;
        }
        Ok(())
    }

    /// In a merge: what becomes of `entry` given what the destination has at its name.
    fn meet_existing<'s>(
        &'s self,
        local: &mut Local<'s>,
        push: &mut Vec<Item<'s>>,
        here: &Here<'_>,
        entry: &PEntry,
    ) -> Result<Existing, LinkError> {
        let opts = &self.engine.opts;
        let name: &OsStr = &entry.name;
        let dst_full = || self.dst_path.join(here.rel).join(name);
        let existing = here
            .dir
            .try_stat(name)
            .map_err(|e| LinkError::io("stat", &dst_full(), e))?;
        let Some(st) = existing else {
            return Ok(Existing::Make { replace: false });
        };
        match (&entry.kind, is_dir(&st), opts.on_existing) {
            (PKind::Dir(child), true, _) => {
                // Merge into it; its own mode and times stay as they are.
                local.tally.dirs += 1;
                // An existing directory is never held: each of its items opens it
                // from the root by its path, so one moved away and replaced by a
                // symlink meanwhile makes the merge fail, and nothing more is made in
                // it, wherever it went. The journal and the publication find its
                // entries by that path: the undo removes what an earlier item made in
                // it only while it is there (else the error says the undo failed).
                let src = if self.plan.nodes[*child].entries.is_empty() {
                    None
                } else {
                    self.hold_src(local, *child)
                };
                push_items(
                    self.plan,
                    *child,
                    (here.open.join(name), None, src),
                    false,
                    None,
                    push,
                    &mut local.tails,
                );
                Ok(Existing::Done)
            }
            (kind, _, OnExisting::Skip) => {
                let below = match kind {
                    PKind::Dir(child) => self.plan.subtree_entries(*child),
                    _ => 0,
                };
                local.tally.skipped += 1 + below;
                if let Some(p) = &opts.progress {
                    p.advanced(below, 0);
                }
                Ok(Existing::Done)
            }
            (_, _, OnExisting::Fail) => Err(LinkError::DestinationExists(dst_full())),
            // A directory holds entries the source may not have: replacing it by
            // a file or a symlink would delete them. Refuse, as `cp` does.
            (_, true, OnExisting::Overwrite) => Err(LinkError::directory_in_the_way(&dst_full())),
            (_, false, OnExisting::Overwrite) => Ok(Existing::Make { replace: true }),
        }
    }

    /// Notes for the publication of a merge the entry made at the temporary name `at` for
    /// `name` (`made_dir`: a directory's identity, taken when it was made).
    fn note_publication(
        &self,
        local: &mut Local<'_>,
        here: &Here<'_>,
        (name, at): (&OsStr, &OsStr),
        made_dir: Option<Stat>,
        replace: bool,
    ) -> Result<(), LinkError> {
        let st = match made_dir {
            Some(st) => st,
            None => here
                .dir
                .stat(at)
                .map_err(|e| LinkError::io("stat", &self.dst_path.join(here.rel).join(name), e))?,
        };
        if replace {
            local.tally.replaced += 1;
        }
        local.ops.push(Op {
            dir: here.open.to_path_buf(),
            tmp: at.to_owned(),
            name: name.to_owned(),
            replace,
            ino: cowtree_fs::sys::stat_ino(&st),
            made: Some((
                cowtree_fs::sys::stat_dev(&st),
                cowtree_fs::sys::stat_file_type(&st),
            )),
        });
        Ok(())
    }

    /// The last item of a directory finished in the link pass gives it its mode and times,
    /// through the handle it has open (`dir`), now that nothing more is made in it; `src`:
    /// the source directory the worker has open, as (tree, node) and handle.
    fn finish_item(
        &self,
        node: usize,
        dir: &Dir,
        src: Option<((u32, u32), &Dir)>,
    ) -> Result<(), LinkError> {
        let pending = &self.pending[node];
        if pending.load(Ordering::Relaxed) > 0 && pending.fetch_sub(1, Ordering::AcqRel) == 1 {
            let node = &self.plan.nodes[node];
            // Only directories with metadata are counted, so `meta` is always there.
            if let Some(meta) = node.meta {
                self.finish_dir(dir, meta, src).map_err(|e| {
                    LinkError::io("set mode and times of", &self.dst_path.join(&node.rel), e)
                })?;
            }
        }
        Ok(())
    }

    /// The source directory the entries of plan directory `child` come from (that of its
    /// first file or symlink), opened for the child's work items by name in the worker's
    /// current source directory when that is its parent (as for a tree linked as it is),
    /// never following a symlink; `None` otherwise, or when enough directories are held.
    pub(crate) fn hold_src<'s>(
        &'s self,
        local: &Local<'s>,
        child: usize,
    ) -> Option<((u32, u32), Arc<Held<'s>>)> {
        let (tree, node) = self.plan.nodes[child]
            .entries
            .iter()
            .find_map(|e| match &e.kind {
                PKind::File(SrcRef::Tree { tree, node, .. })
                | PKind::Symlink(SrcRef::Tree { tree, node, .. }) => Some((*tree, *node)),
                _ => None,
            })?;
        let ((parent_tree, parent_node), parent) = local.src.as_ref()?;
        if *parent_tree != tree {
            return None;
        }
        let nodes = &self.trees[tree as usize].tree.nodes;
        let rel = &nodes[node as usize].rel;
        if rel.parent()? != nodes[*parent_node as usize].rel.as_path() {
            return None;
        }
        let held = self.hold(parent.dir(), rel.file_name()?)?;
        Some(((tree, node), held))
    }
}

/// What becomes of a planned entry in a merge, given what the destination has at its name.
enum Existing {
    /// Nothing more to do: merged into an existing directory, or skipped.
    Done,
    /// To be made (under a temporary name); `replace`: over an entry it replaces.
    Make { replace: bool },
}

fn is_dir(st: &Stat) -> bool {
    cowtree_fs::sys::stat_file_type(st).is_dir()
}

/// A temporary name beside `name` for link-then-rename: `.<name>.cowtree-tmp.<pid>.<random>`
/// (on Windows, `<name>` as UTF-8 with anything else replaced: the name is ours alone).
fn temp_name(name: &OsStr) -> OsString {
    let suffix = format!(
        ".cowtree-tmp.{}.{:08x}",
        std::process::id(),
        random_u64() as u32
    );
    #[cfg(unix)]
    {
        use std::os::unix::ffi::{OsStrExt, OsStringExt};
        let bytes = name.as_bytes();
        let mut v = Vec::with_capacity(bytes.len().min(200) + 48);
        v.push(b'.');
        v.extend_from_slice(&bytes[..bytes.len().min(200)]);
        v.extend_from_slice(suffix.as_bytes());
        OsString::from_vec(v)
    }
    #[cfg(windows)]
    {
        // 200 UTF-16 units at most, as names are limited in them.
        let mut t = String::from(".");
        let mut units = 0;
        for c in name.to_string_lossy().chars() {
            units += c.len_utf16();
            if units > 200 {
                break;
            }
            t.push(c);
        }
        t.push_str(&suffix);
        OsString::from(t)
    }
}

/// A key whose byte order is the order of [`Path`]'s `Ord` (component by component) for
/// normalized relative paths: the bytes, with the separator made to sort before every other
/// byte (names hold no NUL). Sorting by it compares with `memcmp` instead of parsing both
/// paths into components at every comparison.
fn path_key(p: &Path) -> Vec<u8> {
    p.as_os_str()
        .as_encoded_bytes()
        .iter()
        .map(|&c| {
            if c == b'/' || (cfg!(windows) && c == b'\\') {
                0
            } else {
                c
            }
        })
        .collect()
}

fn bytes_of(t: &Tally) -> u64 {
    t.bytes_cloned + t.bytes_copied + t.bytes_other
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_key_orders_as_path_components() {
        let paths = [
            "a",
            "a-b",
            "a/b",
            "a/b/c",
            "a/b-c",
            "a.b",
            "ab",
            "a0",
            "b",
            "a/a",
            "a/-",
            "a-/b",
            "\u{e9}",
            "a/\u{e9}/x",
            "a/\u{ff}",
        ];
        for x in paths {
            for y in paths {
                let (x, y) = (Path::new(x), Path::new(y));
                assert_eq!(path_key(x).cmp(&path_key(y)), x.cmp(y), "{x:?} vs {y:?}");
            }
        }
    }
}
