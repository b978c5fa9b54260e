//! [`Linker`]: a linking session built once with its options, for callers that link many
//! things (a package manager installing many packages into one environment).

#[cfg(unix)]
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use cowtree_fs::dir::Dir;
use cowtree_fs::dir::Timespec;
use cowtree_fs::whole_tree::NotUsed;

use crate::cancel_handle::CancelHandle;
use crate::destination::run_plan;
use crate::engine::Engine;
use crate::error::LinkError;
use crate::options::{EntryKind, LinkOptions};
use crate::plan::{Builder, PathMap, Plan, SrcRef, TreeSrc};
use crate::report::LinkReport;
use crate::scan::{DirMeta, scan_each};
use crate::single_file::link_single_file;
use crate::whole;

/// A linking session: options chosen once, and state kept across every call.
///
/// - One fallback state per (source device, destination device) pair for the session's whole
///   life: once a pair is found unable to clone (or hardlink), later calls go straight to the
///   fallback instead of failing a first file again, and a pair on which the method worked
///   stays on it.
/// - One worker count for every call (see [`LinkOptions::jobs`]). Each call's scan and link
///   passes run on threads started for that pass (see [`cowtree_fs::workers::Pool`] for why
///   they are not kept); sorting the record runs on a thread pool the session keeps.
///
/// Every method returns a [`LinkReport`] and follows the crate's contract: a new destination
/// appears whole or not at all; a merge into an existing destination is a transaction (on
/// any error, the destination is left as it was, see [`LinkError::destination_unchanged`]).
///
/// A `Linker` is `Sync`: several threads may use one session at once (for different
/// destinations).
pub struct Linker {
    engine: Engine,
}

impl std::fmt::Debug for Linker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Linker")
            .field("opts", &self.engine.opts)
            .field("jobs", &self.engine.jobs)
            .finish()
    }
}

/// One source of [`Linker::link_sources`]: a directory tree (its contents go into the
/// destination) or a regular file (it goes into the destination under its own name), and an
/// optional path mapping.
#[derive(Clone, Copy)]
pub struct Source<'a> {
    /// The directory or file.
    pub path: &'a Path,
    /// Renames or drops entries: called with each entry's path relative to the source (for a
    /// file source, its name) and its kind; see [`PathMap`]. The paths it returns are
    /// checked as any destination name is (relative, no `.` or `..` components, no NUL).
    pub map: Option<PathMap<'a>>,
}

impl<'a> Source<'a> {
    /// A source linked as it is.
    pub fn new(path: &'a Path) -> Self {
        Source { path, map: None }
    }

    /// A source whose entries go where `map` says.
    pub fn mapped(path: &'a Path, map: PathMap<'a>) -> Self {
        Source {
            path,
            map: Some(map),
        }
    }
}

/// One file of [`Linker::link_files`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileEntry {
    /// The regular file to link (e.g. a blob in a content-addressed store). Symlinks in the
    /// path's directories are followed; the file itself must not be a symlink.
    pub src: PathBuf,
    /// Where it goes, relative to the destination.
    pub dst: PathBuf,
    /// Permission bits for the new file (e.g. 0o755 for an executable linked from a store
    /// that keeps blobs read-only); `None` takes the source's. Cloned and copied files only:
    /// a hardlink or symlink shares the source's inode and so its mode.
    pub mode: Option<u32>,
}

enum Prepared {
    /// The next tree of the scan.
    Tree,
    File {
        path: PathBuf,
        dev: u64,
        name: PathBuf,
    },
}

impl Linker {
    /// A session with `opts`.
    pub fn new(opts: LinkOptions) -> Linker {
        Linker::with_cancel(opts, CancelHandle::new())
    }

    /// A session with `opts` that `cancel` stops (see [`Linker::cancel_handle`]): for a
    /// handle made before the session (a signal handler installed first), or shared by
    /// several sessions.
    pub fn with_cancel(opts: LinkOptions, cancel: CancelHandle) -> Linker {
        Linker {
            engine: Engine::new(opts, cancel),
        }
    }

    /// The session's cancellation handle: [`CancelHandle::cancel`], from any thread, stops
    /// the calls in progress (each rolls back and returns [`LinkError::Cancelled`]) and
    /// refuses every later one. Every call of this method returns the same handle.
    pub fn cancel_handle(&self) -> CancelHandle {
        self.engine.cancel.clone()
    }

    /// The session's options.
    pub fn options(&self) -> &LinkOptions {
        &self.engine.opts
    }

    /// Refuses, before anything is read or written, what the options ask that this platform
    /// cannot do ([`crate::options::unsupported_here`]).
    fn check_platform(&self) -> Result<(), LinkError> {
        match crate::options::unsupported_here(&self.engine.opts) {
            Some(what) => Err(LinkError::Unsupported(what)),
            None => Ok(()),
        }
    }

    /// The number of worker threads each call uses.
    pub fn jobs(&self) -> usize {
        self.engine.jobs
    }

    /// Links the tree (or file) `src` to `dst`; see the crate documentation for the contract.
    pub fn link_tree(&self, src: &Path, dst: &Path) -> Result<LinkReport, LinkError> {
        self.engine.check_cancel(dst)?;
        self.check_platform()?;
        let meta = source_meta(src)?;
        if meta.is_file() {
            let started = Instant::now();
            let canon = std::fs::canonicalize(src).map_err(|e| LinkError::io("resolve", src, e))?;
            let id = id_of(src, &meta, true)?;
            let mut report = link_single_file(&self.engine, &canon, id, dst, started)?;
            if self.engine.opts.whole_tree {
                report.per_file_reason = Some(whole::FILE_SOURCE);
            }
            return Ok(report);
        }
        self.link_sources(&[Source::new(src)], dst)
    }

    /// Links the contents of several trees into one destination in one pass: the same
    /// result as linking them one after the other into `dst` with this session's
    /// [`crate::OnExisting`] (directories merge; for two sources with an entry at one path,
    /// `Overwrite` keeps the later, `Skip` the earlier, `Fail` refuses the call before
    /// anything is written), with each such collision listed in
    /// [`LinkReport::collisions`].
    pub fn link_trees<P: AsRef<Path>>(
        &self,
        srcs: &[P],
        dst: &Path,
    ) -> Result<LinkReport, LinkError> {
        let sources: Vec<Source<'_>> = srcs.iter().map(|p| Source::new(p.as_ref())).collect();
        self.link_sources(&sources, dst)
    }

    /// [`Linker::link_trees`] with a path mapping per source (see [`Source`]). A file as a
    /// source goes into the destination under its own name (or where its mapping says).
    ///
    /// Each tree is planned as soon as it and the sources before it are read, while the later
    /// ones are still being read: a mapping may be called for the entries of earlier sources
    /// before an error reading a later source is known (that error is still the one
    /// returned, and nothing is written).
    pub fn link_sources(
        &self,
        sources: &[Source<'_>],
        dst: &Path,
    ) -> Result<LinkReport, LinkError> {
        let started = Instant::now();
        self.engine.check_cancel(dst)?;
        self.check_platform()?;
        let checked = check_sources(sources, dst)?;
        let per_file_reason = match self.whole_tree_first(sources, &checked, dst, started)? {
            Ok(report) => return Ok(report),
            Err(reason) => reason,
        };
        let (plan, trees) = self.scan_and_plan(checked, dst)?;
        let mut report = run_plan(&self.engine, &plan, &trees, dst, started)?;
        report.special += plan.totals.special;
        report.per_file_reason = per_file_reason;
        Ok(report)
    }

    /// With [`LinkOptions::whole_tree`]: the tree made whole in one call (`Ok(report)`) where
    /// the call allows it, else why it is linked per file (`Err(reason)`; `Err(None)` when the
    /// whole-tree method was not asked for).
    fn whole_tree_first(
        &self,
        sources: &[Source<'_>],
        checked: &Checked<'_>,
        dst: &Path,
        started: Instant,
    ) -> Result<Result<LinkReport, Option<NotUsed>>, LinkError> {
        if !self.engine.opts.whole_tree {
            return Ok(Err(None));
        }
        let call = whole::Call {
            sources: sources.len(),
            mapped: sources.iter().any(|s| s.map.is_some()),
            dst_exists: checked.dst_id.is_some(),
        };
        Ok(match &checked.roots[..] {
            [(canon, _, _)] if sources.len() == 1 => {
                whole::try_new_destination(&self.engine.opts, call, canon, dst, started)?
                    .map_err(Some)
            }
            _ => Err(whole::requested(&self.engine.opts, call).or(Some(whole::FILE_SOURCE))),
        })
    }

    /// Reads every tree of `checked` in one parallel pass, and plans each as soon as it is
    /// read (with the file sources before it), while the workers read the next ones. The error
    /// returned is the one of reading every tree first, then checking each for special
    /// files, then planning: a read error wins over a special file, and a special file
    /// over a planning error (a collision refused, an invalid mapped path).
    fn scan_and_plan(
        &self,
        checked: Checked<'_>,
        dst: &Path,
    ) -> Result<(Plan, Vec<Arc<TreeSrc>>), LinkError> {
        let Checked {
            roots, prepared, ..
        } = checked;
        let scan_roots: Vec<(&Dir, &Path)> = roots
            .iter()
            .map(|(canon, root, _)| (&**root, canon.as_path()))
            .collect();
        // Special files are made again (and planned) under `preserve.special`, else refused
        // or, with `skip_special`, skipped and counted.
        let keep_special = self.engine.opts.preserve.special;
        let mut builder =
            Builder::new(self.engine.opts.on_existing, None).keep_special(keep_special);
        let mut prepared = prepared.into_iter().enumerate();
        let mut planning: Result<(), LinkError> = Ok(());
        let mut special = 0;
        scan_each(&scan_roots, &self.engine, dst, |t, tree| {
            let (canon, root, src) = &roots[t];
            if !keep_special {
                if !tree.special.is_empty() && !self.engine.opts.skip_special {
                    return Err(LinkError::SpecialFiles {
                        src: src.to_path_buf(),
                        paths: tree.special.iter().map(|p| src.join(p)).collect(),
                    });
                }
                special += tree.totals.special;
            }
            if planning.is_ok() {
                let tree = TreeSrc {
                    path: canon.clone(),
                    root: root.clone(),
                    tree,
                };
                planning = plan_until_tree(&mut builder, &mut prepared, Some(tree));
            }
            Ok(())
        })?;
        // The file sources after the last tree.
        planning?;
        plan_until_tree(&mut builder, &mut prepared, None)?;
        let (mut plan, trees) = builder.finish();
        if plan.nodes[0].meta.is_none() {
            plan.nodes[0].meta = Some(fresh_dir_meta());
        }
        plan.totals.special = special;
        Ok((plan, trees))
    }

    /// Links a list of files, each to its own destination-relative path (the case of a
    /// content-addressed store, whose blobs are not laid out as a tree). Missing parent
    /// directories are created (0755, less the umask). Two entries with one destination path
    /// are a collision, decided as in [`Linker::link_trees`].
    pub fn link_files(&self, entries: &[FileEntry], dst: &Path) -> Result<LinkReport, LinkError> {
        let started = Instant::now();
        self.engine.check_cancel(dst)?;
        self.check_platform()?;
        let mut builder = Builder::new(self.engine.opts.on_existing, Some(fresh_dir_meta()));
        for (i, e) in entries.iter().enumerate() {
            builder.set_origin(i);
            let meta = match std::fs::symlink_metadata(&e.src) {
                Ok(m) => m,
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                    return Err(LinkError::SourceMissing(e.src.clone()));
                }
                Err(err) => return Err(LinkError::io("stat", &e.src, err)),
            };
            if !meta.is_file() {
                return Err(LinkError::SourceNotLinkable(
                    e.src.clone(),
                    type_name(&meta),
                ));
            }
            builder.add_file(
                &e.dst,
                SrcRef::Path {
                    path: e.src.clone(),
                    dev: id_of(&e.src, &meta, false)?.0,
                    mode: e.mode,
                },
            )?;
        }
        let (plan, trees) = builder.finish();
        run_plan(&self.engine, &plan, &trees, dst, started)
    }

    /// Finishes merges into `dst` that a killed process left half done (normally done by
    /// the next merge into `dst` itself): each is completed if it had started publishing,
    /// and its temporary entries removed otherwise. Returns how many there were. Holds the
    /// destination's lock as a merge does: a merge running there is waited for (or, with
    /// [`LinkOptions::wait`] false, [`LinkError::DestinationBusy`]).
    pub fn recover(&self, dst: &Path) -> Result<usize, LinkError> {
        let root = Dir::open(dst).map_err(|e| LinkError::io("open", dst, e))?;
        let _lock = crate::destination::lock_destination(&self.engine, &root, dst)?;
        crate::txn::recover(&root)
            .map_err(|e| LinkError::io("finish an interrupted merge in", dst, e))
    }
}

/// The sources of a call, checked in order before anything is read.
struct Checked<'a> {
    /// The destination's (device, inode), when it exists.
    dst_id: Option<Id>,
    /// The trees to read: canonical path, root opened, path as given.
    roots: Vec<(PathBuf, Arc<Dir>, &'a Path)>,
    /// Every source in order (trees and files), with its mapping.
    prepared: Vec<(Option<PathMap<'a>>, Prepared)>,
}

/// Checks the sources in order: each exists and is a directory or a regular file, none is
/// the destination, the destination is not inside a tree, and no tree is inside the
/// destination; opens each tree's root.
fn check_sources<'a>(sources: &[Source<'a>], dst: &Path) -> Result<Checked<'a>, LinkError> {
    let parent_path = match dst.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let parent_canon =
        std::fs::canonicalize(parent_path).map_err(|e| LinkError::io("resolve", parent_path, e))?;
    let dst_id = dst_id(dst);
    let mut checked = Checked {
        dst_id,
        roots: Vec::new(),
        prepared: Vec::new(),
    };
    for source in sources {
        let src = source.path;
        let meta = source_meta(src)?;
        let canon = std::fs::canonicalize(src).map_err(|e| LinkError::io("resolve", src, e))?;
        let id = id_of(src, &meta, true)?;
        if dst_id == Some(id) {
            return Err(LinkError::SameSourceAndDestination(src.to_path_buf()));
        }
        if meta.is_file() {
            let name = canon
                .file_name()
                .map(PathBuf::from)
                .ok_or_else(|| LinkError::SourceNotLinkable(src.to_path_buf(), "root directory"))?;
            checked.prepared.push((
                source.map,
                Prepared::File {
                    path: canon,
                    dev: id.0,
                    name,
                },
            ));
            continue;
        }
        check_tree(src, &meta, (&canon, id), (dst, &parent_canon, dst_id))?;
        let root = Dir::open(&canon).map_err(|e| LinkError::io("open", src, e))?;
        checked.prepared.push((source.map, Prepared::Tree));
        checked.roots.push((canon, Arc::new(root), src));
    }
    Ok(checked)
}

/// Checks a source that is not a regular file (`src`, canonical path and identity `canon`
/// and `id`): it must be a directory, the destination (`dst`, its parent's canonical path
/// and its identity if it exists) must not be inside it, nor it inside the destination.
fn check_tree(
    src: &Path,
    meta: &std::fs::Metadata,
    (canon, id): (&Path, Id),
    (dst, parent_canon, dst_id): (&Path, &Path, Option<Id>),
) -> Result<(), LinkError> {
    if !meta.is_dir() {
        return Err(LinkError::SourceNotLinkable(
            src.to_path_buf(),
            type_name(meta),
        ));
    }
    if has_ancestor(parent_canon, id) {
        return Err(LinkError::DestinationInsideSource {
            src: src.to_path_buf(),
            dst: dst.to_path_buf(),
        });
    }
    if let Some(d) = dst_id
        && has_ancestor(canon, d)
    {
        return Err(LinkError::SourceInsideDestination {
            src: src.to_path_buf(),
            dst: dst.to_path_buf(),
        });
    }
    Ok(())
}

/// True when `path` or one of its ancestors is the directory `id` (device, inode). Comparing
/// inodes rather than strings also catches bind mounts and different spellings of one path.
#[cfg(unix)]
fn has_ancestor(path: &Path, id: Id) -> bool {
    path.ancestors().any(|a| {
        std::fs::metadata(a)
            .map(|m| (m.dev(), m.ino()) == id)
            .unwrap_or(false)
    })
}

/// [`has_ancestor`] on Windows: each ancestor's (volume, file id) read by opening it.
#[cfg(windows)]
fn has_ancestor(path: &Path, id: Id) -> bool {
    path.ancestors()
        .any(|a| cowtree_fs::sys::path_id(a, true).is_ok_and(|a| a == id))
}

/// An entry's (device, inode): `(st_dev, st_ino)` on unix, (volume serial, file id) on Windows.
type Id = (u64, cowtree_fs::sys::Ino);

/// The identity of `path`, whose metadata (through a final symlink when `follow`) is `meta`:
/// read from `meta` on unix; on Windows, where std's metadata lacks it, by opening `path`.
#[cfg(unix)]
fn id_of(_path: &Path, meta: &std::fs::Metadata, _follow: bool) -> Result<Id, LinkError> {
    Ok((meta.dev(), meta.ino()))
}

/// The identity of `path` (see the unix one).
#[cfg(windows)]
fn id_of(path: &Path, _meta: &std::fs::Metadata, follow: bool) -> Result<Id, LinkError> {
    cowtree_fs::sys::path_id(path, follow).map_err(|e| LinkError::io("stat", path, e))
}

/// The destination's identity, when it exists (a final symlink not followed).
#[cfg(unix)]
fn dst_id(dst: &Path) -> Option<Id> {
    std::fs::symlink_metadata(dst)
        .ok()
        .map(|m| (m.dev(), m.ino()))
}

/// The destination's identity, when it exists (a final reparse point not followed).
#[cfg(windows)]
fn dst_id(dst: &Path) -> Option<Id> {
    cowtree_fs::sys::path_id(dst, false).ok()
}

/// What the entry whose metadata is `meta` is called in messages.
#[cfg(unix)]
fn type_name(meta: &std::fs::Metadata) -> &'static str {
    use rustix::fs::FileType;
    match cowtree_fs::sys::file_type(meta.mode()) {
        FileType::RegularFile => "regular file",
        FileType::Directory => "directory",
        FileType::Symlink => "symlink",
        FileType::Fifo => "FIFO",
        FileType::Socket => "socket",
        FileType::CharacterDevice => "character device",
        FileType::BlockDevice => "block device",
        FileType::Unknown => "file of unknown type",
    }
}

/// What the entry whose metadata is `meta` is called in messages (Windows has files,
/// directories and reparse points).
#[cfg(windows)]
fn type_name(meta: &std::fs::Metadata) -> &'static str {
    let ft = meta.file_type();
    if ft.is_file() {
        "regular file"
    } else if ft.is_dir() {
        "directory"
    } else if ft.is_symlink() {
        "symlink"
    } else {
        "reparse point"
    }
}

/// Adds the prepared sources to `builder` in order, up to and including the next tree
/// (`tree`, just read), or all that are left (file sources only) when `tree` is `None`.
fn plan_until_tree<'a>(
    builder: &mut Builder,
    prepared: &mut impl Iterator<Item = (usize, (Option<PathMap<'a>>, Prepared))>,
    mut tree: Option<TreeSrc>,
) -> Result<(), LinkError> {
    for (i, (map, p)) in prepared.by_ref() {
        builder.set_origin(i);
        match p {
            Prepared::Tree => {
                if let Some(tree) = tree.take() {
                    builder.add_tree(tree, map)?;
                }
                return Ok(());
            }
            Prepared::File { path, dev, name } => {
                let to = match map {
                    None => Some(name),
                    Some(map) => map(&name, EntryKind::File),
                };
                match to {
                    Some(to) => builder.add_file(
                        &to,
                        SrcRef::Path {
                            path,
                            dev,
                            mode: None,
                        },
                    )?,
                    None => builder.count_dropped(),
                }
            }
        }
    }
    Ok(())
}

fn source_meta(src: &Path) -> Result<std::fs::Metadata, LinkError> {
    match std::fs::metadata(src) {
        Ok(m) => Ok(m),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Err(LinkError::SourceMissing(src.to_path_buf()))
        }
        Err(e) => Err(LinkError::io("stat", src, e)),
    }
}

/// The metadata a new destination root gets when no source directory gives it one: 0755 and
/// the current time.
fn fresh_dir_meta() -> DirMeta {
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    let t = Timespec {
        tv_sec: now.as_secs() as _,
        tv_nsec: now.subsec_nanos() as _,
    };
    DirMeta {
        mode: 0o755,
        dev: 0,
        atime: t,
        mtime: t,
        owner: None,
        src: None,
    }
}
