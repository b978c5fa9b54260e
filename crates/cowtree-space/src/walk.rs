//! A parallel walk over directory trees that never follows a symlink.
//!
//! Every directory below a root is opened relative to its parent's handle with `O_NOFOLLOW`
//! ([`cowtree_fs::dir::Dir::open_dir`]); regular files are opened relative to their directory
//! with `O_NOFOLLOW | O_NONBLOCK` (a FIFO swapped in cannot block the walk) and checked with
//! `fstat`. A symlink given as a root is reported as a symlink, not followed; a directory given
//! as a root is opened by its path (the user named it).
//!
//! Each worker thread accumulates into its own state `S`; the caller merges the states.
//! Errors do not stop the walk: they are collected and returned with the states.

use std::ffi::OsStr;
use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use cowtree_fs::dir::Dir;
use rustix::fs::{AtFlags, FileType, Mode, OFlags, Stat, fstat, openat, statat};

/// What kind of entry a visit is about.
#[derive(Debug)]
pub enum Kind<'a> {
    /// A directory (its own inode; its entries are visited separately).
    Dir,
    /// A regular file, open read-only.
    File(&'a OwnedFd),
    /// A symlink (not followed) or a special file.
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
}

struct Shared<'v, S, V> {
    states: Vec<Mutex<S>>,
    errors: Mutex<WalkErrors>,
    visit: &'v V,
}

impl<S, V> Shared<'_, S, V> {
    fn slot(&self) -> &Mutex<S> {
        let i = rayon::current_thread_index().unwrap_or(0);
        &self.states[i % self.states.len()]
    }

    fn error(&self, e: io::Error) {
        self.errors
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(e);
    }
}

fn with_path(op: &'static str, path: &Path, e: io::Error) -> io::Error {
    cowtree_fs::error::at_path(op, path, e)
}

/// Walks `roots` in parallel on the rayon pool, calling `visit` once per entry (each root
/// included) with the calling thread's state. Returns the states and the errors.
pub fn walk<S, V>(roots: &[PathBuf], visit: &V) -> (Vec<S>, WalkErrors)
where
    S: Default + Send,
    V: Fn(&mut S, Visit<'_>) + Sync,
{
    let shared = Shared {
        states: (0..rayon::current_num_threads() + 1)
            .map(|_| Mutex::new(S::default()))
            .collect(),
        errors: Mutex::new(WalkErrors::default()),
        visit,
    };
    rayon::scope(|scope| {
        for root in roots {
            match root_entry(root) {
                Ok(RootEntry::Dir(dir)) => {
                    let shared = &shared;
                    scope.spawn(move |scope| walk_dir(scope, shared, dir, root.clone()));
                }
                Ok(RootEntry::Leaf(parent)) => {
                    let name = root.file_name().unwrap_or(OsStr::new("."));
                    let mut state = shared.slot().lock().unwrap_or_else(|p| p.into_inner());
                    let at = At {
                        base: root,
                        name: None,
                    };
                    visit_leaf(&shared, &mut state, &parent, name, at, None);
                }
                Err(e) => shared.error(e),
            }
        }
    });
    let states = shared
        .states
        .into_iter()
        .map(|m| m.into_inner().unwrap_or_else(|p| p.into_inner()))
        .collect();
    let errors = shared
        .errors
        .into_inner()
        .unwrap_or_else(|p| p.into_inner());
    (states, errors)
}

enum RootEntry {
    /// The root is a directory, opened.
    Dir(Dir),
    /// The root is something else; its parent directory, opened.
    Leaf(Dir),
}

fn root_entry(root: &Path) -> io::Result<RootEntry> {
    let st = statat(rustix::fs::CWD, root, AtFlags::SYMLINK_NOFOLLOW)
        .map_err(|e| with_path("stat", root, e.into()))?;
    if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
        return Ok(RootEntry::Dir(Dir::open(root)?));
    }
    let parent = root
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    Ok(RootEntry::Leaf(Dir::open(parent)?))
}

fn walk_dir<'s, S, V>(
    scope: &rayon::Scope<'s>,
    shared: &'s Shared<'s, S, V>,
    mut dir: Dir,
    path: PathBuf,
) where
    S: Send,
    V: Fn(&mut S, Visit<'_>) + Sync,
{
    let st = match dir.stat_self() {
        Ok(st) => st,
        Err(e) => return shared.error(with_path("stat", &path, e)),
    };
    // The handle is this walk's own, freshly opened: read it in place, no second open.
    let entries = match dir.read_entries() {
        Ok(entries) => entries,
        Err(e) => return shared.error(with_path("read directory", &path, e)),
    };
    let dir = Arc::new(dir);
    let mut subdirs = Vec::new();
    {
        let mut state = shared.slot().lock().unwrap_or_else(|p| p.into_inner());
        (shared.visit)(
            &mut state,
            Visit {
                at: At {
                    base: &path,
                    name: None,
                },
                stat: &st,
                kind: Kind::Dir,
            },
        );
        for entry in entries {
            match entry.file_type {
                FileType::Directory => subdirs.push(entry.name),
                ft => {
                    let hint = (ft != FileType::Unknown).then_some(ft);
                    let at = At {
                        base: &path,
                        name: Some(&entry.name),
                    };
                    if let Some(is_dir) =
                        visit_leaf(shared, &mut state, &dir, &entry.name, at, hint)
                    {
                        subdirs.push(is_dir);
                    }
                }
            }
        }
    }
    for name in subdirs {
        let child = path.join(&name);
        let parent = Arc::clone(&dir);
        scope.spawn(move |scope| match parent.open_dir(&name) {
            Ok(sub) => {
                drop(parent);
                walk_dir(scope, shared, sub, child)
            }
            Err(e) => shared.error(with_path("open directory", &child, e)),
        });
    }
}

/// Visits a non-directory entry `name` of `dir`. When the entry turns out to be a directory
/// (unknown `d_type`), returns its name so the caller walks it.
fn visit_leaf<S, V>(
    shared: &Shared<'_, S, V>,
    state: &mut S,
    dir: &Dir,
    name: &OsStr,
    at: At<'_>,
    hint: Option<FileType>,
) -> Option<std::ffi::OsString>
where
    V: Fn(&mut S, Visit<'_>) + Sync,
{
    if hint.is_none_or(|t| t == FileType::RegularFile) {
        // Open first and fstat the open file: one syscall fewer than lstat + open, and the
        // stat describes exactly the file that is open.
        let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
        match openat(dir, name, flags, Mode::empty()) {
            Ok(fd) => match fstat(&fd) {
                Ok(st) => {
                    match FileType::from_raw_mode(st.st_mode) {
                        FileType::RegularFile => (shared.visit)(
                            state,
                            Visit {
                                at,
                                stat: &st,
                                kind: Kind::File(&fd),
                            },
                        ),
                        FileType::Directory => return Some(name.to_owned()),
                        _ => (shared.visit)(
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
                    shared.error(with_path("stat", &at.path(), e.into()));
                    return None;
                }
            },
            // A symlink (ELOOP) or something we may not open: fall through to lstat.
            Err(rustix::io::Errno::LOOP | rustix::io::Errno::ACCESS) => {}
            Err(rustix::io::Errno::NOENT) => return None, // vanished meanwhile
            Err(e) if hint.is_some() => {
                shared.error(with_path("open", &at.path(), e.into()));
                return None;
            }
            Err(_) => {}
        }
    }
    match dir.stat(name) {
        Ok(st) => {
            if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
                return Some(name.to_owned());
            }
            if FileType::from_raw_mode(st.st_mode) == FileType::RegularFile {
                // Could not be opened (permission): still counted, but without extents.
                shared.error(with_path(
                    "open",
                    &at.path(),
                    io::Error::from(io::ErrorKind::PermissionDenied),
                ));
            }
            (shared.visit)(
                state,
                Visit {
                    at,
                    stat: &st,
                    kind: Kind::Other,
                },
            );
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => shared.error(with_path("stat", &at.path(), e)),
    }
    None
}
