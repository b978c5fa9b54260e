//! The first pass: read the whole source tree (names and types, from `getdents` `d_type`)
//! before anything is written, so that special files are refused before any work and the
//! second pass knows every directory without reading the source again.

use std::convert::Infallible;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use cowtree_fs::dir::Dir;
use cowtree_fs::walk::{DirVisit, Failed, JobVisit, Visitor, Walk};
use cowtree_fs::workers::Pool;
use rustix::fs::{FileType, Stat, Timespec};

use crate::error::LinkError;
use crate::options::ScanTotals;

/// A source directory's own metadata.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DirMeta {
    pub mode: u32,
    pub dev: u64,
    pub atime: Timespec,
    pub mtime: Timespec,
}

impl DirMeta {
    pub fn from_stat(st: &Stat) -> Self {
        Self {
            mode: cowtree_fs::sys::stat_mode(st) & 0o7777,
            dev: cowtree_fs::sys::stat_dev(st),
            atime: Timespec {
                tv_sec: st.st_atime as _,
                tv_nsec: st.st_atime_nsec as _,
            },
            mtime: Timespec {
                tv_sec: st.st_mtime as _,
                tv_nsec: st.st_mtime_nsec as _,
            },
        }
    }
}

/// What a source entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    File,
    /// A directory; the index of its [`Node`].
    Dir(usize),
    Symlink,
    Special,
}

#[derive(Debug)]
pub(crate) struct Entry {
    pub name: Box<OsStr>,
    pub kind: Kind,
}

/// One source directory.
#[derive(Debug)]
pub(crate) struct Node {
    /// Path relative to the source root; empty for the root.
    pub rel: PathBuf,
    pub meta: DirMeta,
    pub entries: Vec<Entry>,
}

impl Node {
    /// The number of entries in this directory's subtree, itself excluded.
    pub fn subtree_entries(&self, nodes: &[Node]) -> u64 {
        let mut n = 0;
        let mut stack = vec![self];
        while let Some(node) = stack.pop() {
            for e in &node.entries {
                n += 1;
                if let Kind::Dir(child) = e.kind {
                    stack.push(&nodes[child]);
                }
            }
        }
        n
    }
}

/// The whole source tree. `nodes[0]` is the root.
#[derive(Debug)]
pub(crate) struct Tree {
    pub nodes: Vec<Node>,
    pub totals: ScanTotals,
    /// Special files, relative to the root.
    pub special: Vec<PathBuf>,
}

/// What one worker found, by tree: the scan's visitor.
struct Local<'a> {
    /// The roots' paths, for messages.
    paths: &'a [&'a Path],
    /// Per tree, the next directory's node id.
    next_id: &'a [AtomicUsize],
    /// (tree, node id, node)
    nodes: Vec<(usize, usize, Node)>,
    totals: Vec<ScanTotals>,
    special: Vec<(usize, PathBuf)>,
}

impl Visitor for Local<'_> {
    /// The directory's node id.
    type Ctx = usize;
    type Job = Infallible;
    type Error = LinkError;

    fn visit_dir(
        &mut self,
        d: &mut DirVisit<'_, usize, Infallible>,
        id: usize,
    ) -> Result<(), LinkError> {
        let t = d.root();
        let rel = d.rel_path().to_path_buf();
        let full = || self.paths[t].join(&rel);
        let st = d
            .dir()
            .stat_self()
            .map_err(|e| LinkError::io("stat", &full(), e))?;
        let list = d
            .entries()
            .map_err(|e| LinkError::io("read directory", &full(), e))?;
        let mut entries = Vec::with_capacity(list.len());
        for entry in list {
            let name = entry.name;
            let mut ft = entry.file_type;
            if ft == FileType::Unknown {
                // This filesystem does not fill in d_type.
                let st = d
                    .dir()
                    .stat(&name)
                    .map_err(|e| LinkError::io("stat", &full().join(&name), e))?;
                ft = FileType::from_raw_mode(st.st_mode);
            }
            let totals = &mut self.totals[t];
            let kind = match ft {
                FileType::RegularFile => {
                    totals.files += 1;
                    Kind::File
                }
                FileType::Directory => {
                    totals.dirs += 1;
                    let child = self.next_id[t].fetch_add(1, Ordering::Relaxed);
                    d.descend(&name, child);
                    Kind::Dir(child)
                }
                FileType::Symlink => {
                    totals.symlinks += 1;
                    Kind::Symlink
                }
                _ => {
                    totals.special += 1;
                    self.special.push((t, rel.join(&name)));
                    Kind::Special
                }
            };
            entries.push(Entry {
                name: name.into_boxed_os_str(),
                kind,
            });
        }
        self.nodes.push((
            t,
            id,
            Node {
                rel,
                meta: DirMeta::from_stat(&st),
                entries,
            },
        ));
        Ok(())
    }

    fn visit_job(&mut self, _: &JobVisit<'_>, job: Infallible) -> Result<(), LinkError> {
        match job {}
    }

    fn open_failed(
        &mut self,
        at: &Failed<'_>,
        _: usize,
        e: std::io::Error,
    ) -> Result<(), LinkError> {
        let rel = Path::new(<OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(at.rel));
        Err(LinkError::io(
            "open directory",
            &self.paths[at.root].join(rel),
            e,
        ))
    }
}

/// Opens the directory at `rel` under `root` (the root itself when `rel` is empty), refusing
/// symlinks on the way.
pub(crate) fn open_rel(root: &Dir, rel: &Path) -> std::io::Result<Dir> {
    if rel.as_os_str().is_empty() {
        root.try_clone()
    } else {
        // A tree may be deeper than PATH_MAX; it is still walked beneath the root.
        root.open_dir_deep(rel)
    }
}

/// Reads the trees under `roots` (each an open directory and its path, for messages) with
/// the session's workers, all in one parallel pass: many small trees (packages) keep every
/// worker busy, where one pass per tree would wait for the slowest directory of each.
pub(crate) fn scan_many(roots: &[(&Dir, &Path)], workers: &Pool) -> Result<Vec<Tree>, LinkError> {
    let next_id: Vec<AtomicUsize> = roots.iter().map(|_| AtomicUsize::new(1)).collect();
    let paths: Vec<&Path> = roots.iter().map(|(_, p)| *p).collect();
    let locals = Walk::on(workers).run(
        roots.iter().map(|(dir, _)| (*dir, 0usize)).collect(),
        || Local {
            paths: &paths,
            next_id: &next_id,
            nodes: Vec::new(),
            totals: vec![ScanTotals::default(); roots.len()],
            special: Vec::new(),
        },
    )?;

    let mut slots: Vec<Vec<Option<Node>>> = next_id
        .iter()
        .map(|n| (0..n.load(Ordering::Relaxed)).map(|_| None).collect())
        .collect();
    let mut totals = vec![ScanTotals::default(); roots.len()];
    let mut special: Vec<Vec<PathBuf>> = vec![Vec::new(); roots.len()];
    for local in locals {
        for (t, id, node) in local.nodes {
            slots[t][id] = Some(node);
        }
        for (sum, part) in totals.iter_mut().zip(&local.totals) {
            sum.files += part.files;
            sum.dirs += part.dirs;
            sum.symlinks += part.symlinks;
            sum.special += part.special;
        }
        for (t, p) in local.special {
            special[t].push(p);
        }
    }
    slots
        .into_iter()
        .zip(totals)
        .zip(special)
        .zip(roots)
        .map(|(((slots, totals), mut special), (_, src_path))| {
            let nodes = slots
                .into_iter()
                .enumerate()
                .map(|(id, n)| {
                    n.ok_or_else(|| {
                        LinkError::io(
                            "scan",
                            src_path,
                            std::io::Error::other(format!(
                                "directory #{id} was found but not read"
                            )),
                        )
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            special.sort();
            Ok(Tree {
                nodes,
                totals,
                special,
            })
        })
        .collect()
}
