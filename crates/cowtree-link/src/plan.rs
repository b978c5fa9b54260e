//! The plan of one link call: every destination entry, from one or several sources, after
//! path mapping, with collisions between sources decided before anything is written.
//!
//! The plan is a tree of destination directories ([`PNode`]), each listing its entries with
//! where their data comes from ([`SrcRef`]). Sources are added in order; a later source
//! merges into what the earlier ones gave, exactly as linking them one after the other into
//! the same destination would (directories merge; for another entry at the same path,
//! [`OnExisting::Overwrite`] keeps the later one, [`OnExisting::Skip`] the earlier one, and
//! [`OnExisting::Fail`] refuses the call).

use std::collections::HashMap;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::LinkError;
use crate::options::{EntryKind, OnExisting, ScanTotals};
use crate::report::{Collision, CollisionAction};
use crate::scan::{DirMeta, Kind, Tree};

/// A path mapping hook: given a source-relative path and what the entry is, the
/// destination-relative path to put it at, or `None` to leave it out. For a directory, `None`
/// (or an empty path) means "do not create this directory as such"; its entries are still
/// offered one by one. It is called while the sources are still being read, so it may run
/// for a call that then fails reading a later source (see [`crate::Linker::link_sources`]).
pub type PathMap<'a> = &'a (dyn Fn(&Path, EntryKind) -> Option<PathBuf> + Sync);

/// Where a planned file or symlink comes from.
#[derive(Debug)]
pub(crate) enum SrcRef {
    /// Entry number `entry` of directory `node` of scanned tree `tree` (its name is there:
    /// see [`TreeSrc::name`]).
    Tree { tree: u32, node: u32, entry: u32 },
    /// A regular file named by its path (a list entry, or a file given as a source), on
    /// device `dev`, to be given permission bits `mode` (the source's when `None`).
    Path {
        path: PathBuf,
        dev: u64,
        mode: Option<u32>,
    },
}

#[derive(Debug)]
pub(crate) enum PKind {
    File(SrcRef),
    Symlink(SrcRef),
    Dir(usize),
    /// A FIFO, socket or device node, made again ([`crate::Preserve::special`]).
    Special(SrcRef),
}

#[derive(Debug)]
pub(crate) struct PEntry {
    pub name: Box<OsStr>,
    pub kind: PKind,
    /// The index of the source (or list entry) it comes from.
    pub origin: u32,
}

/// One destination directory of the plan.
#[derive(Debug)]
pub(crate) struct PNode {
    /// Path relative to the destination; empty for its root.
    pub rel: PathBuf,
    /// The source directory it comes from, whose mode and times it gets when this run
    /// creates it; `None` for a directory that only holds mapped entries (created 0755).
    pub meta: Option<DirMeta>,
    pub entries: Vec<PEntry>,
}

/// A source tree as the plan refers to it.
pub(crate) struct TreeSrc {
    /// The canonical path of the source root.
    pub path: PathBuf,
    pub root: Arc<cowtree_fs::dir::Dir>,
    pub tree: Tree,
}

impl TreeSrc {
    /// The name of entry number `entry` of node `node`.
    pub fn name(&self, node: u32, entry: u32) -> &OsStr {
        &self.tree.nodes[node as usize].entries[entry as usize].name
    }

    /// The full path of entry `name` of node `node`, for messages and symlink targets.
    pub fn full(&self, node: u32, name: &OsStr) -> PathBuf {
        self.path
            .join(&self.tree.nodes[node as usize].rel)
            .join(name)
    }
}

/// The full source path of `src`.
pub(crate) fn src_path(trees: &[Arc<TreeSrc>], src: &SrcRef) -> PathBuf {
    match src {
        SrcRef::Tree { tree, node, entry } => {
            let t = &trees[*tree as usize];
            t.full(*node, t.name(*node, *entry))
        }
        SrcRef::Path { path, .. } => path.clone(),
    }
}

pub(crate) struct Plan {
    /// `nodes[0]` is the destination root.
    pub nodes: Vec<PNode>,
    pub totals: ScanTotals,
    pub collisions: Vec<Collision>,
    /// Source entries not planned because an earlier source's entry is kept (Skip).
    pub skipped: u64,
    /// Source entries a mapping left out.
    pub dropped: u64,
}

impl Plan {
    /// The number of entries below node `id`.
    pub fn subtree_entries(&self, id: usize) -> u64 {
        let mut n = 0;
        let mut stack = vec![id];
        while let Some(i) = stack.pop() {
            for e in &self.nodes[i].entries {
                n += 1;
                if let PKind::Dir(c) = e.kind {
                    stack.push(c);
                }
            }
        }
        n
    }
}

/// Builds a [`Plan`] source by source. It owns the scanned trees it was given (see
/// [`Builder::add_tree`]), so that a tree can be added as soon as its scan is complete, while
/// later ones are still being read.
pub(crate) struct Builder {
    /// Shared with the tree being added (whose entries are read while the plan changes).
    trees: Vec<Arc<TreeSrc>>,
    on_existing: OnExisting,
    plan: Plan,
    /// Entry index by name, per node; built when a lookup first needs it. A node filled
    /// from one source directory alone (the common case: one source, no mapping) never needs
    /// one, since the names of one directory cannot collide.
    names: Vec<Option<HashMap<Box<OsStr>, usize>>>,
    /// The index of the source being added.
    origin: u32,
    /// The destination directory of the last mapped file or symlink, and its plan node.
    last_parent: Option<(PathBuf, usize)>,
    /// Special files of unmapped trees are planned ([`crate::Preserve::special`]).
    keep_special: bool,
}

#[derive(Clone, Copy)]
enum Leaf {
    File,
    Symlink,
    Special,
}

impl Leaf {
    fn kind(self, src: SrcRef) -> PKind {
        match self {
            Leaf::File => PKind::File(src),
            Leaf::Symlink => PKind::Symlink(src),
            Leaf::Special => PKind::Special(src),
        }
    }
}

impl Builder {
    /// A builder whose destination root gets `root` (`None`: the first tree added gives its
    /// root's).
    pub fn new(on_existing: OnExisting, root: Option<DirMeta>) -> Self {
        Builder {
            trees: Vec::new(),
            on_existing,
            plan: Plan {
                nodes: vec![PNode {
                    rel: PathBuf::new(),
                    meta: root,
                    entries: Vec::new(),
                }],
                totals: ScanTotals::default(),
                collisions: Vec::new(),
                skipped: 0,
                dropped: 0,
            },
            names: vec![None],
            origin: 0,
            last_parent: None,
            keep_special: false,
        }
    }

    /// Special files of trees added without a mapping are planned (made again) instead of
    /// left out.
    pub fn keep_special(mut self, yes: bool) -> Self {
        self.keep_special = yes;
        self
    }

    /// Entries added from now on come from source (or list entry) number `origin`.
    pub fn set_origin(&mut self, origin: usize) {
        self.origin = origin as u32;
    }

    /// The plan, and the trees it refers to (by their order of [`Builder::add_tree`]).
    pub fn finish(mut self) -> (Plan, Vec<Arc<TreeSrc>>) {
        let mut totals = ScanTotals::default();
        for node in &self.plan.nodes {
            for e in &node.entries {
                match e.kind {
                    PKind::File(_) => totals.files += 1,
                    PKind::Symlink(_) => totals.symlinks += 1,
                    PKind::Dir(_) => totals.dirs += 1,
                    PKind::Special(_) => totals.special += 1,
                }
            }
        }
        self.plan.totals = totals;
        (self.plan, self.trees)
    }

    /// Adds the scanned tree `src` (its root's entries go to the destination root), through
    /// `map` when given. The first tree added gives the destination root its metadata when
    /// the builder was made without.
    pub fn add_tree(&mut self, src: TreeSrc, map: Option<PathMap<'_>>) -> Result<(), LinkError> {
        let t = self.trees.len() as u32;
        // A directory's metadata, with where it comes from (for its extended attributes).
        let meta_of = |tree: &Tree, id: usize| DirMeta {
            src: Some((t, id as u32)),
            ..tree.nodes[id].meta
        };
        if self.trees.is_empty() && self.plan.nodes[0].meta.is_none() {
            self.plan.nodes[0].meta = Some(meta_of(&src.tree, 0));
        }
        let shared = Arc::new(src);
        self.trees.push(shared.clone());
        let tree = &shared.tree;
        // (source node, plan node when the mapping is the identity, whether that plan node
        // was made for this source directory alone, so that its entries need no lookup)
        let root_fresh = map.is_none() && self.plan.nodes[0].entries.is_empty();
        let mut stack: Vec<(usize, Option<usize>, bool)> = vec![(0, Some(0), root_fresh)];
        while let Some((sid, pid, fresh)) = stack.pop() {
            let snode = &tree.nodes[sid];
            for (index, entry) in snode.entries.iter().enumerate() {
                let src = || SrcRef::Tree {
                    tree: t,
                    node: sid as u32,
                    entry: index as u32,
                };
                let full = || shared.full(sid as u32, &entry.name);
                match (entry.kind, map) {
                    (Kind::Special, None) if self.keep_special => {
                        let pid = pid.ok_or_else(|| {
                            LinkError::io(
                                "plan",
                                &full(),
                                std::io::Error::other("no destination directory for it"),
                            )
                        })?;
                        if fresh {
                            self.push_entry(pid, &entry.name, PKind::Special(src()));
                        } else {
                            self.leaf(pid, &entry.name, Leaf::Special, src(), &full)?;
                        }
                    }
                    (Kind::Special, Some(_)) if self.keep_special => self.plan.dropped += 1,
                    (Kind::Special, _) => {}
                    (Kind::Dir(child), None) => {
                        let pid = pid.expect("identity mapping always has a plan node");
                        let meta = meta_of(tree, child);
                        let found = if fresh {
                            None
                        } else {
                            self.lookup(pid, &entry.name)
                        };
                        let made = match found {
                            None => Some(self.new_dir(pid, &entry.name, Some(meta))),
                            Some(_) => self.child_dir(pid, &entry.name, Some(meta), &full)?,
                        };
                        match made {
                            // A directory made now holds only this source directory's entries.
                            Some(pchild) => stack.push((child, Some(pchild), found.is_none())),
                            None => {
                                self.plan.skipped += tree.nodes[child].subtree_entries(&tree.nodes)
                            }
                        }
                    }
                    (Kind::Dir(child), Some(map)) => {
                        let rel = snode.rel.join(&*entry.name);
                        if let Some(to) = map(&rel, EntryKind::Dir)
                            && !to.as_os_str().is_empty()
                        {
                            check(&to, &full)?;
                            let meta = meta_of(tree, child);
                            if self.dir_at(&to, Some(meta), &full)?.is_none() {
                                // An earlier source's file is kept there; this
                                // directory's entries still go where they map to.
                            }
                        }
                        stack.push((child, None, false));
                    }
                    (Kind::File | Kind::Symlink, _) => {
                        let leaf = if entry.kind == Kind::File {
                            Leaf::File
                        } else {
                            Leaf::Symlink
                        };
                        match map {
                            None => {
                                let pid = pid.expect("identity mapping always has a plan node");
                                if fresh {
                                    self.push_entry(pid, &entry.name, leaf.kind(src()));
                                } else {
                                    self.leaf(pid, &entry.name, leaf, src(), &full)?;
                                }
                            }
                            Some(map) => {
                                let rel = snode.rel.join(&*entry.name);
                                let kind = match leaf {
                                    Leaf::Symlink => EntryKind::Symlink,
                                    Leaf::File | Leaf::Special => EntryKind::File,
                                };
                                match map(&rel, kind) {
                                    None => self.plan.dropped += 1,
                                    Some(to) => self.leaf_at(&to, leaf, src(), &full)?,
                                }
                            }
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// Counts a source entry a mapping left out.
    pub fn count_dropped(&mut self) {
        self.plan.dropped += 1;
    }

    /// Adds the regular file `src` at the destination-relative path `to`.
    pub fn add_file(&mut self, to: &Path, src: SrcRef) -> Result<(), LinkError> {
        let full = src_path(&self.trees, &src);
        self.leaf_at(to, Leaf::File, src, &|| full.clone())
    }

    fn leaf_at(
        &mut self,
        to: &Path,
        leaf: Leaf,
        src: SrcRef,
        full: &dyn Fn() -> PathBuf,
    ) -> Result<(), LinkError> {
        check(to, full)?;
        let name = to
            .file_name()
            .expect("a checked relative path ends in a name");
        let parent = to.parent().unwrap_or(Path::new(""));
        let pid = if parent.as_os_str().is_empty() {
            Some(0)
        } else if let Some((_, id)) = self
            .last_parent
            .as_ref()
            .filter(|(p, _)| p.as_os_str() == parent.as_os_str())
        {
            // Entries of one source directory usually go to one destination directory.
            Some(*id)
        } else {
            let id = self.dir_at(parent, None, full)?;
            if let Some(id) = id {
                // A directory of the plan keeps its node for good (it is never replaced:
                // an entry at its path is merged into it or refused).
                self.last_parent = Some((parent.to_path_buf(), id));
            }
            id
        };
        match pid {
            Some(pid) => self.leaf(pid, name, leaf, src, full),
            None => {
                self.plan.skipped += 1;
                Ok(())
            }
        }
    }

    /// The plan node at the (checked) relative path `rel`, creating the missing directories;
    /// `None` when an earlier source's non-directory is kept on the way (Skip).
    fn dir_at(
        &mut self,
        rel: &Path,
        meta: Option<DirMeta>,
        full: &dyn Fn() -> PathBuf,
    ) -> Result<Option<usize>, LinkError> {
        let mut id = 0;
        let mut comps = rel.components().peekable();
        while let Some(c) = comps.next() {
            let last = comps.peek().is_none();
            let m = if last { meta } else { None };
            match self.child_dir(id, c.as_os_str(), m, full)? {
                Some(next) => id = next,
                None => return Ok(None),
            }
        }
        Ok(Some(id))
    }

    /// The index of the entry `name` of plan node `pid`, if there is one.
    fn lookup(&mut self, pid: usize, name: &OsStr) -> Option<usize> {
        let entries = &self.plan.nodes[pid].entries;
        self.names[pid]
            .get_or_insert_with(|| {
                entries
                    .iter()
                    .enumerate()
                    .map(|(i, e)| (e.name.clone(), i))
                    .collect()
            })
            .get(name)
            .copied()
    }

    /// Adds the entry `name` (known not to be there) to plan node `pid`.
    fn push_entry(&mut self, pid: usize, name: &OsStr, kind: PKind) {
        let entries = &mut self.plan.nodes[pid].entries;
        if let Some(index) = &mut self.names[pid] {
            index.insert(name.into(), entries.len());
        }
        entries.push(PEntry {
            name: name.into(),
            kind,
            origin: self.origin,
        });
    }

    /// A new plan node for the directory `name` (known not to be there) in node `pid`.
    fn new_dir(&mut self, pid: usize, name: &OsStr, meta: Option<DirMeta>) -> usize {
        let id = self.new_node(pid, name, meta);
        self.push_entry(pid, name, PKind::Dir(id));
        id
    }

    /// A new, empty plan node for the directory `name` of node `pid` (not yet an entry).
    fn new_node(&mut self, pid: usize, name: &OsStr, meta: Option<DirMeta>) -> usize {
        let rel = self.plan.nodes[pid].rel.join(name);
        self.plan.nodes.push(PNode {
            rel,
            meta,
            entries: Vec::new(),
        });
        self.names.push(None);
        self.plan.nodes.len() - 1
    }

    /// The directory `name` in plan node `pid`, created in the plan if missing. Where an
    /// earlier source put a file or symlink: replaced (Overwrite), kept with `None` returned
    /// (Skip), or refused (Fail).
    fn child_dir(
        &mut self,
        pid: usize,
        name: &OsStr,
        meta: Option<DirMeta>,
        full: &dyn Fn() -> PathBuf,
    ) -> Result<Option<usize>, LinkError> {
        match self.lookup(pid, name) {
            None => Ok(Some(self.new_dir(pid, name, meta))),
            Some(idx) => {
                let earlier = match &self.plan.nodes[pid].entries[idx].kind {
                    PKind::Dir(id) => {
                        let id = *id;
                        if self.plan.nodes[id].meta.is_none() {
                            self.plan.nodes[id].meta = meta;
                        }
                        return Ok(Some(id));
                    }
                    PKind::File(s) | PKind::Symlink(s) | PKind::Special(s) => {
                        src_path(&self.trees, s)
                    }
                };
                let rel = self.plan.nodes[pid].rel.join(name);
                match self.on_existing {
                    OnExisting::Fail => Err(LinkError::Collision {
                        path: rel,
                        sources: [earlier, full()],
                    }),
                    OnExisting::Skip => {
                        self.collide(rel, earlier, full(), CollisionAction::Kept);
                        self.plan.skipped += 1;
                        Ok(None)
                    }
                    OnExisting::Overwrite => {
                        self.collide(rel.clone(), earlier, full(), CollisionAction::Replaced);
                        let id = self.new_node(pid, name, meta);
                        self.plan.nodes[pid].entries[idx].kind = PKind::Dir(id);
                        self.plan.nodes[pid].entries[idx].origin = self.origin;
                        Ok(Some(id))
                    }
                }
            }
        }
    }

    fn leaf(
        &mut self,
        pid: usize,
        name: &OsStr,
        leaf: Leaf,
        src: SrcRef,
        full: &dyn Fn() -> PathBuf,
    ) -> Result<(), LinkError> {
        let kind = leaf.kind(src);
        let Some(idx) = self.lookup(pid, name) else {
            self.push_entry(pid, name, kind);
            return Ok(());
        };
        let rel = self.plan.nodes[pid].rel.join(name);
        let earlier = match &self.plan.nodes[pid].entries[idx].kind {
            PKind::Dir(_) => None,
            PKind::File(s) | PKind::Symlink(s) | PKind::Special(s) => {
                Some(src_path(&self.trees, s))
            }
        };
        match (self.on_existing, earlier) {
            (OnExisting::Fail, earlier) => Err(LinkError::Collision {
                sources: [earlier.unwrap_or_else(|| rel.clone()), full()],
                path: rel,
            }),
            (OnExisting::Skip, earlier) => {
                let earlier = earlier.unwrap_or_else(|| rel.clone());
                self.collide(rel, earlier, full(), CollisionAction::Kept);
                self.plan.skipped += 1;
                Ok(())
            }
            // As when merging one source after the other: a directory is never replaced by
            // a file or symlink.
            (OnExisting::Overwrite, None) => Err(LinkError::directory_in_the_way(&rel)),
            (OnExisting::Overwrite, Some(earlier)) => {
                self.collide(rel, earlier, full(), CollisionAction::Replaced);
                self.plan.nodes[pid].entries[idx].kind = kind;
                self.plan.nodes[pid].entries[idx].origin = self.origin;
                Ok(())
            }
        }
    }

    fn collide(
        &mut self,
        path: PathBuf,
        earlier: PathBuf,
        later: PathBuf,
        action: CollisionAction,
    ) {
        self.plan.collisions.push(Collision {
            path,
            sources: [earlier, later],
            action,
        });
    }
}

/// Refuses a destination path that is not a valid relative path.
fn check(to: &Path, full: &dyn Fn() -> PathBuf) -> Result<(), LinkError> {
    cowtree_fs::name::check_relative_path(to.as_os_str().as_encoded_bytes()).map_err(|why| {
        LinkError::InvalidDestinationPath {
            src: full(),
            path: to.to_path_buf(),
            why,
        }
    })
}
