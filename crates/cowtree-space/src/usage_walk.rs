//! A parallel walk over directory trees that never follows a symlink, for counting: each entry
//! is visited once with its `stat`, and errors are collected rather than stopping the walk.
//!
//! The traversal is [`cowtree_fs::walk`] (directories opened beneath their parent's handle or
//! the root's, never following a symlink; bounded descriptors); regular files are opened relative to their directory
//! with `O_NOFOLLOW | O_NONBLOCK` (a FIFO swapped in cannot block the walk) and checked with
//! `fstat`. A symlink given as a root is reported as a symlink, not followed; a directory given
//! as a root is opened by its path (the user named it).
//!
//! Each worker thread accumulates into its own state `S`; the caller merges the states.
//! Errors do not stop the walk: they are collected and returned with the states.
//!
//! On Windows the same walk runs over [`cowtree_fs::dir::Dir`]'s NT handles (no reparse point
//! followed); a regular file is not opened there, only described (its own handle, opened for
//! attributes alone): nothing on Windows reads a file's extents, so it comes as
//! [`Kind::Other`] with its stat.

use std::convert::Infallible;
use std::ffi::{OsStr, OsString};
use std::io;
use std::path::{Path, PathBuf};

use cowtree_fs::dir::{Dir, FileType, Stat};
use cowtree_fs::sys::OwnedFd;
use cowtree_fs::walk::{DirVisit, Failed, JobVisit, Visitor, Walk};
#[cfg(unix)]
use rustix::fs::{AtFlags, Mode, OFlags, fstat, openat, statat};

/// What kind of entry a visit is about.
#[derive(Debug)]
pub enum Kind<'a> {
    /// A directory (its own inode; its entries are visited separately).
    Dir,
    /// A regular file, open read-only.
    File(&'a OwnedFd),
    /// A symlink (not followed), a special file, or a regular file that was not opened (it
    /// could not be; on Windows, every one: see the module docs).
    Other,
}

/// One entry the walk reached.
#[derive(Debug)]
pub struct Visit<'a> {
    /// Where it is: see [`Visit::path`]. Kept apart so that no path is built for an entry
    /// unless the caller asks for it.
    pub at: At<'a>,
    /// `lstat` of the entry (for a file, `fstat` of the open file).
    pub stat: &'a Stat,
    /// What it is.
    pub kind: Kind<'a>,
}

/// Where an entry is: a path, or a directory's path and a name in it.
#[derive(Debug, Clone, Copy)]
pub struct At<'a> {
    /// The directory (or, without `name`, the entry itself).
    pub base: &'a Path,
    /// The entry's name in `base`.
    pub name: Option<&'a OsStr>,
}

impl At<'_> {
    /// The path, as the root was given plus the names below it.
    pub fn path(&self) -> PathBuf {
        match self.name {
            Some(n) => self.base.join(n),
            None => self.base.to_path_buf(),
        }
    }
}

impl Visit<'_> {
    /// The path, as the root was given plus the names below it (built on each call).
    pub fn path(&self) -> PathBuf {
        self.at.path()
    }
}

/// At most this many error messages are kept; the rest are only counted.
const MAX_ERRORS: usize = 100;

/// The errors of a walk: the first `MAX_ERRORS` and a total count.
#[derive(Debug, Default)]
pub struct WalkErrors {
    /// Error messages (each names its path).
    pub messages: Vec<String>,
    /// How many errors there were in all.
    pub count: u64,
}

impl WalkErrors {
    fn push(&mut self, e: io::Error) {
        self.count += 1;
        if self.messages.len() < MAX_ERRORS {
            self.messages.push(e.to_string());
        }
    }

    fn merge(&mut self, other: WalkErrors) {
        self.count += other.count;
        let room = MAX_ERRORS.saturating_sub(self.messages.len());
        self.messages.extend(other.messages.into_iter().take(room));
    }
}

fn with_path(op: &'static str, path: &Path, e: io::Error) -> io::Error {
    cowtree_fs::error::at_path(op, path, e)
}

/// One worker's part of a walk: the caller's state and the errors it met.
struct Counter<'v, S, V> {
    state: S,
    errors: WalkErrors,
    visit: &'v V,
}

impl<S, V> Visitor for Counter<'_, S, V>
where
    S: Send,
    V: Fn(&mut S, Visit<'_>) + Sync,
{
    /// The directory's path: the root as given plus the names below it.
    type Ctx = PathBuf;
    type Job = Infallible;
    type Error = Infallible;

    fn visit_dir(
        &mut self,
        d: &mut DirVisit<'_, PathBuf, Infallible>,
        path: PathBuf,
    ) -> Result<(), Infallible> {
        let st = match d.dir().stat_self() {
            Ok(st) => st,
            Err(e) => {
                self.errors.push(with_path("stat", &path, e));
                return Ok(());
            }
        };
        let entries = match d.entries() {
            Ok(entries) => entries,
            Err(e) => {
                self.errors.push(with_path("read directory", &path, e));
                return Ok(());
            }
        };
        (self.visit)(
            &mut self.state,
            Visit {
                at: At {
                    base: &path,
                    name: None,
                },
                stat: &st,
                kind: Kind::Dir,
            },
        );
        let mut subdirs: Vec<OsString> = Vec::new();
        for entry in entries {
            match entry.file_type {
                FileType::Directory => subdirs.push(entry.name),
                ft => {
                    #[cfg(unix)]
                    let hint = (ft != FileType::Unknown).then_some(ft);
                    // A Windows listing always says what an entry is.
                    #[cfg(windows)]
                    let hint = Some(ft);
                    let at = At {
                        base: &path,
                        name: Some(&entry.name),
                    };
                    if let Some(is_dir) = visit_leaf(
                        self.visit,
                        &mut self.state,
                        &mut self.errors,
                        d.dir(),
                        &entry.name,
                        at,
                        hint,
                    ) {
                        subdirs.push(is_dir);
                    }
                }
            }
        }
        for name in subdirs {
            let child = path.join(&name);
            d.descend(&name, child);
        }
        Ok(())
    }

    fn visit_job(&mut self, _: &JobVisit<'_>, job: Infallible) -> Result<(), Infallible> {
        match job {}
    }

    fn open_failed(
        &mut self,
        _: &Failed<'_>,
        path: PathBuf,
        e: io::Error,
    ) -> Result<(), Infallible> {
        self.errors.push(with_path("open directory", &path, e));
        Ok(())
    }
}

/// Walks `roots` in parallel on `jobs` threads (see [`cowtree_fs::workers::budget`]), calling
/// `visit` once per entry (each root included) with the calling worker's state. Returns the
/// states and the errors.
pub fn walk<S, V>(roots: &[PathBuf], jobs: usize, visit: &V) -> (Vec<S>, WalkErrors)
where
    S: Default + Send,
    V: Fn(&mut S, Visit<'_>) + Sync,
{
    let mut errors = WalkErrors::default();
    // Roots that are not directories are visited here; the others are walked below.
    let mut leaves = S::default();
    let mut dirs: Vec<(Dir, PathBuf)> = Vec::new();
    for root in roots {
        match root_entry(root) {
            Ok(RootEntry::Dir(dir)) => dirs.push((dir, root.clone())),
            Ok(RootEntry::Leaf(parent)) => {
                let name = root.file_name().unwrap_or(OsStr::new("."));
                let at = At {
                    base: root,
                    name: None,
                };
                visit_leaf(visit, &mut leaves, &mut errors, &parent, name, at, None);
            }
            Err(e) => errors.push(e),
        }
    }
    let walked = Walk::new(jobs).run(
        dirs.iter().map(|(dir, path)| (dir, path.clone())).collect(),
        || Counter {
            state: S::default(),
            errors: WalkErrors::default(),
            visit,
        },
    );
    let counters = match walked {
        Ok(counters) => counters,
        Err(never) => match never {},
    };
    let mut states = vec![leaves];
    for c in counters {
        states.push(c.state);
        errors.merge(c.errors);
    }
    (states, errors)
}

enum RootEntry {
    /// The root is a directory, opened.
    Dir(Dir),
    /// The root is something else; its parent directory, opened.
    Leaf(Dir),
}

#[cfg(unix)]
fn root_entry(root: &Path) -> io::Result<RootEntry> {
    let st = statat(rustix::fs::CWD, root, AtFlags::SYMLINK_NOFOLLOW)
        .map_err(|e| with_path("stat", root, e.into()))?;
    if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
        return Ok(RootEntry::Dir(Dir::open(root)?));
    }
    leaf_root(root)
}

/// The root as `std` describes it without following a final reparse point (a symlink or a
/// junction given as a root is described, not walked, as on unix).
#[cfg(windows)]
fn root_entry(root: &Path) -> io::Result<RootEntry> {
    let meta = std::fs::symlink_metadata(root).map_err(|e| with_path("stat", root, e))?;
    if meta.is_dir() {
        return Ok(RootEntry::Dir(Dir::open(root)?));
    }
    leaf_root(root)
}

/// A root that is not a directory: its parent, opened.
fn leaf_root(root: &Path) -> io::Result<RootEntry> {
    let parent = root
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    Ok(RootEntry::Leaf(Dir::open(parent)?))
}

/// Visits a non-directory entry `name` of `dir`. When the entry turns out to be a directory
/// (unknown `d_type`), returns its name so the caller walks it.
fn visit_leaf<S, V>(
    visit: &V,
    state: &mut S,
    errors: &mut WalkErrors,
    dir: &Dir,
    name: &OsStr,
    at: At<'_>,
    hint: Option<FileType>,
) -> Option<OsString>
where
    V: Fn(&mut S, Visit<'_>) + Sync,
{
    #[cfg(unix)]
    if hint.is_none_or(|t| t == FileType::RegularFile) {
        // Open first and fstat the open file: one syscall fewer than lstat + open, and the
        // stat describes exactly the file that is open.
        let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
        match openat(dir, name, flags, Mode::empty()) {
            Ok(fd) => match fstat(&fd) {
                Ok(st) => {
                    match FileType::from_raw_mode(st.st_mode) {
                        FileType::RegularFile => visit(
                            state,
                            Visit {
                                at,
                                stat: &st,
                                kind: Kind::File(&fd),
                            },
                        ),
                        FileType::Directory => return Some(name.to_owned()),
                        _ => visit(
                            state,
                            Visit {
                                at,
                                stat: &st,
                                kind: Kind::Other,
                            },
                        ),
                    }
                    return None;
                }
                Err(e) => {
                    errors.push(with_path("stat", &at.path(), e.into()));
                    return None;
                }
            },
            // A symlink (ELOOP) or something we may not open: fall through to lstat.
            Err(rustix::io::Errno::LOOP | rustix::io::Errno::ACCESS) => {}
            Err(rustix::io::Errno::NOENT) => return None, // vanished meanwhile
            Err(e) if hint.is_some() => {
                errors.push(with_path("open", &at.path(), e.into()));
                return None;
            }
            Err(_) => {}
        }
    }
    #[cfg(windows)]
    let _ = hint;
    match dir.stat(name) {
        Ok(st) => {
            let ft = cowtree_fs::sys::stat_file_type(&st);
            if ft == FileType::Directory {
                return Some(name.to_owned());
            }
            // Could not be opened (permission): still counted, but without extents. (Not
            // opened on Windows at all: not an error there.)
            #[cfg(unix)]
            if ft == FileType::RegularFile {
                errors.push(with_path(
                    "open",
                    &at.path(),
                    io::Error::from(io::ErrorKind::PermissionDenied),
                ));
            }
            visit(
                state,
                Visit {
                    at,
                    stat: &st,
                    kind: Kind::Other,
                },
            );
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => errors.push(with_path("stat", &at.path(), e)),
    }
    None
}
