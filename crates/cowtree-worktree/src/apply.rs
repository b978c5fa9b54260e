//! Changing a worktree's entries to match a manifest: the primitive steps of switch and reset.
//!
//! Every destination-side call goes through [`Dir`] handles opened beneath the worktree root
//! (never following a symlink). File and symlink content lands under a temp name in the same
//! directory (`.cowtree-tmp-<16 hex of the path's hash>`, the same name on every run) and is
//! renamed over the final name, so an interrupted run never leaves partial content under a
//! final name, and a re-run removes the temp it left before writing it again.

use std::collections::{BTreeSet, HashSet};
use std::ffi::{OsStr, OsString};
use std::io;
use std::path::Path;

use cowtree_fs::dir::Dir;
use cowtree_fs::{Method, Transfer, TransferOptions};
use cowtree_store::manifest::Data;
use cowtree_store::{Entry, Hash, Kind, Store};
use rayon::prelude::*;

use crate::blob;
use crate::cache::{Rec, StatCache, StatKey};
use crate::error::{Corrupt, Error, Result};
use crate::os::{FileType, Stat};
use crate::paths::{ancestors, path_of, show, split};

/// What sits at a path.
#[derive(Debug)]
pub enum Obs {
    /// Nothing (or a parent is missing or not a directory).
    Absent,
    /// A directory.
    Dir,
    /// A regular file.
    File(Stat),
    /// A symlink.
    Symlink(Stat),
    /// A fifo, socket or device.
    Other,
}

/// What [`Applier::place`] left at a path.
#[derive(Debug)]
pub struct Placed {
    /// The stat cache record of the entry now there.
    pub rec: Rec,
    /// This call wrote it (else it found the content already there and read it to know).
    pub written: bool,
}

/// Applies entries to one worktree.
pub struct Applier<'a> {
    /// The store (for blobs).
    pub store: &'a Store,
    /// The worktree root.
    pub root: Dir,
    /// Its path, for messages.
    pub root_path: &'a Path,
    /// Check whether an entry already holds the wanted content before writing it (a re-run
    /// after an interruption).
    pub careful: bool,
    /// Windows: the directories (relative paths) whose entries this applier created, renamed
    /// or removed, which [`Applier::sync`] flushes one by one (only administrators may flush
    /// a whole volume there).
    #[cfg(windows)]
    changed_dirs: std::sync::Mutex<BTreeSet<Vec<u8>>>,
}

fn tmp_name(path: &[u8]) -> OsString {
    OsString::from(format!(".cowtree-tmp-{}", &Hash::of(path).to_hex()[..16]))
}

impl<'a> Applier<'a> {
    /// Opens the worktree at `root_path`.
    pub fn new(store: &'a Store, root_path: &'a Path, careful: bool) -> Result<Applier<'a>> {
        let root = Dir::open(root_path).map_err(Error::Io)?;
        Ok(Applier {
            store,
            root,
            root_path,
            careful,
            #[cfg(windows)]
            changed_dirs: Default::default(),
        })
    }

    /// Notes that entries of directory `rel` were created, renamed or removed (Windows: its
    /// flush in [`Applier::sync`]; unix syncs the whole filesystem and needs no list).
    #[cfg(unix)]
    #[inline]
    fn changed(&self, _rel: &[u8]) {}

    /// Notes that entries of directory `rel` were created, renamed or removed, for
    /// [`Applier::sync`].
    #[cfg(windows)]
    fn changed(&self, rel: &[u8]) {
        if let Ok(mut d) = self.changed_dirs.lock() {
            d.insert(rel.to_vec());
        }
    }

    /// Makes everything written to the worktree's filesystem durable (`syncfs`), through the
    /// root opened before any write, so that a writeback error during the work is reported
    /// (syncfs reports errors seen since the descriptor was opened). Called before a record
    /// that describes the result is saved: the record must never survive a power loss that
    /// the files it describes did not.
    #[cfg(unix)]
    pub fn sync(&self) -> Result<()> {
        self.root
            .sync_filesystem()
            .map_err(|e| Error::io_at("sync worktree", self.root_path, e))
    }

    /// Makes everything this applier wrote durable (see the unix one): on Windows each file
    /// was flushed as it was written ([`Applier::place`]), and here each directory whose
    /// entries changed is flushed (a directory gone since is left: its parent's flush
    /// covers its removal).
    #[cfg(windows)]
    pub fn sync(&self) -> Result<()> {
        let dirs = match self.changed_dirs.lock() {
            Ok(mut d) => std::mem::take(&mut *d),
            Err(_) => return Err(Error::msg("internal error: a worker panicked")),
        };
        dirs.par_iter().try_for_each(|rel| {
            let Some(d) = self.open(rel)? else {
                return Ok(());
            };
            d.sync()
                .map_err(|e| Error::io_at("sync", self.full(rel), e))
        })
    }

    fn full(&self, rel: &[u8]) -> String {
        self.root_path.join(path_of(rel)).display().to_string()
    }

    fn err(&self, rel: &[u8], e: io::Error) -> Error {
        Error::io_at("", self.full(rel), e)
    }

    /// The error for `rel`, whose parent directory is missing or not a directory.
    fn no_parent(&self, rel: &[u8]) -> Error {
        self.err(
            rel,
            io::Error::new(
                io::ErrorKind::NotADirectory,
                "its parent is not a directory",
            ),
        )
    }

    /// The directory `rel` (root when empty); `None` when it is missing or not a directory.
    pub fn open(&self, rel: &[u8]) -> Result<Option<Dir>> {
        if rel.is_empty() {
            return (self.root.try_clone())
                .map(Some)
                .map_err(|e| self.err(rel, e));
        }
        let rel_os = crate::os::name(rel).map_err(|e| self.err(rel, e))?;
        match self.root.open_dir_beneath(Path::new(rel_os)) {
            Ok(d) => Ok(Some(d)),
            Err(e) if crate::paths::gone(&e) => Ok(None),
            Err(e) => Err(self.err(rel, e)),
        }
    }

    /// What sits at `rel`.
    pub fn observe(&self, rel: &[u8]) -> Result<Obs> {
        self.observe_in(rel).map(|(obs, _)| obs)
    }

    /// What sits at `rel`, and whether its parent could be opened as a directory beneath the
    /// root (then every ancestor of `rel` is a directory, none a symlink).
    pub fn observe_in(&self, rel: &[u8]) -> Result<(Obs, bool)> {
        let (parent, name) = split(rel);
        let Some(d) = self.open(parent)? else {
            return Ok((Obs::Absent, false));
        };
        let st = match crate::os::name(name).and_then(|n| d.try_stat(n)) {
            Ok(Some(st)) => st,
            Ok(None) => return Ok((Obs::Absent, true)),
            Err(e) => return Err(self.err(rel, e)),
        };
        let ft = cowtree_fs::sys::stat_file_type(&st);
        let obs = if ft.is_dir() {
            Obs::Dir
        } else if ft.is_file() {
            Obs::File(st)
        } else if ft.is_symlink() {
            Obs::Symlink(st)
        } else {
            Obs::Other
        };
        Ok((obs, true))
    }

    /// True when `rel` holds exactly entry `e` (content, kind, executable bit). Files whose
    /// stat matches a trusted cache record are not read.
    pub fn matches(&self, e: &Entry, obs: &Obs, cache: &StatCache) -> Result<bool> {
        match (&e.data, obs) {
            (Data::None, Obs::Dir) => Ok(true),
            (Data::Blob { size, hash }, Obs::File(st)) => {
                // (Windows has no executable bit: only the content tells there.)
                let exec = crate::os::exec_bit(cowtree_fs::sys::stat_mode(st));
                if exec.is_some_and(|x| x != (e.kind == Kind::Executable))
                    || cowtree_fs::sys::stat_size(st) != *size
                {
                    return Ok(false);
                }
                if let Some(h) = cache.trusted(&e.path, &StatKey::of(st)) {
                    return Ok(h == *hash);
                }
                let (parent, name) = split(&e.path);
                let Some(d) = self.open(parent)? else {
                    return Ok(false);
                };
                let got = crate::os::name(name)
                    .and_then(|n| blob::hash_at(&d, n))
                    .map_err(|err| self.err(&e.path, err))?;
                Ok(got.is_some_and(|(_, h)| h == *hash))
            }
            (Data::Target(t), Obs::Symlink(_)) => {
                let (parent, name) = split(&e.path);
                let Some(d) = self.open(parent)? else {
                    return Ok(false);
                };
                match crate::os::name(name).and_then(|n| d.read_link(n)) {
                    Ok(got) => Ok(got.as_encoded_bytes() == t.as_slice()),
                    Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(false),
                    Err(err) => Err(self.err(&e.path, err)),
                }
            }
            _ => Ok(false),
        }
    }

    /// Removes whatever is at `rel` (a directory with everything beneath it).
    pub fn remove_tree(&self, rel: &[u8]) -> Result<()> {
        let (parent, name) = split(rel);
        let Some(d) = self.open(parent)? else {
            return Ok(());
        };
        self.changed(parent);
        crate::os::name(name)
            .and_then(|n| d.remove_tree(n))
            .map_err(|e| self.err(rel, e))
    }

    /// Removes the directory `rel` if it is empty; anything else is left alone.
    pub fn remove_dir_if_empty(&self, rel: &[u8]) -> Result<()> {
        let (parent, name) = split(rel);
        let Some(d) = self.open(parent)? else {
            return Ok(());
        };
        let name = crate::os::name(name).map_err(|e| self.err(rel, e))?;
        match d.remove_dir(name) {
            Ok(()) => {
                self.changed(parent);
                Ok(())
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::NotFound
                        | io::ErrorKind::DirectoryNotEmpty
                        | io::ErrorKind::NotADirectory
                ) || not_empty(&e) =>
            {
                Ok(())
            }
            Err(e) => Err(self.err(rel, e)),
        }
    }

    /// Makes each of `dirs` (shortest first) a directory. Something else in the way is removed
    /// when `replace` says so; otherwise it is an error naming it.
    pub fn ensure_dirs(&self, dirs: &BTreeSet<Vec<u8>>, replace: bool) -> Result<u64> {
        let present = self.present_dirs(dirs);
        let mut created = 0;
        for d in dirs {
            if present.contains(&d[..]) {
                continue;
            }
            let (parent, name) = split(d);
            let name = crate::os::name(name).map_err(|e| self.err(d, e))?;
            let Some(p) = self.open(parent)? else {
                return Err(self.no_parent(d));
            };
            match p.try_stat(name).map_err(|e| self.err(d, e))? {
                Some(st) if cowtree_fs::sys::stat_file_type(&st).is_dir() => {
                    continue;
                }
                Some(_) if !replace => {
                    return Err(Error::InTheWay {
                        path: self.full(d).into(),
                        what: "is in the way of a directory the snapshot needs there".into(),
                        hint: "",
                    });
                }
                Some(_) => {
                    self.changed(parent);
                    p.remove_tree(name).map_err(|e| self.err(d, e))?
                }
                None => {}
            }
            match p.create_dir(name, 0o755) {
                Ok(()) => {
                    self.changed(parent);
                    created += 1
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(self.err(d, e)),
            }
        }
        Ok(created)
    }

    /// The directories of `dirs` known to be directories now, without looking at each: a
    /// directory that opens beneath the root (no symlink followed on the way, see
    /// [`Applier::open`]) is one, and so is each of its ancestors. Only the deepest of `dirs`
    /// (those no other one lies beneath) are opened, in parallel; a switch of files spread over
    /// a tree would otherwise open and stat every ancestor of every file, one after the other.
    /// Whatever does not open is left to the caller's walk, which says why.
    fn present_dirs<'d>(&self, dirs: &'d BTreeSet<Vec<u8>>) -> HashSet<&'d [u8]> {
        let inner: HashSet<&[u8]> = dirs.iter().flat_map(|d| ancestors(d)).collect();
        let deepest: Vec<&[u8]> = dirs
            .iter()
            .map(|d| &d[..])
            .filter(|d| !inner.contains(d))
            .collect();
        let opened: Vec<&[u8]> = deepest
            .par_iter()
            .copied()
            .filter(|d| matches!(self.open(d), Ok(Some(_))))
            .collect();
        opened
            .iter()
            .flat_map(|d| ancestors(d).chain(std::iter::once(*d)))
            .collect()
    }

    /// Writes the file or symlink entry `e` (its parent directory must exist) under the temp
    /// name and renames it over the final name. A directory at the final name (the rename
    /// fails with EISDIR) is then removed and the rename retried when `replace_dir`, else it
    /// is an error; on any error the temp is removed (best effort). Returns the stat cache record of what
    /// is now there, and whether this call wrote it (when `careful` finds the content already
    /// there, it writes nothing).
    pub fn place(&self, e: &Entry, replace_dir: bool, cache: &StatCache) -> Result<Placed> {
        let (parent, name) = split(&e.path);
        let name = crate::os::name(name).map_err(|err| self.err(&e.path, err))?;
        let Some(d) = self.open(parent)? else {
            return Err(self.no_parent(&e.path));
        };
        let tmp = tmp_name(&e.path);
        if self.careful {
            // A temp an interrupted run left (otherwise it is removed only when it is in the
            // way of the write below).
            d.remove_tree(&tmp).map_err(|err| self.err(&e.path, err))?;
            let obs = self.observe(&e.path)?;
            if self.matches(e, &obs, cache)? {
                return Ok(Placed {
                    rec: self.rec_of(&d, name, e)?,
                    written: false,
                });
            }
        }
        match self.write_tmp(e, &d, &tmp) {
            Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {
                d.remove_tree(&tmp).map_err(|err| self.err(&e.path, err))?;
                self.write_tmp(e, &d, &tmp)
            }
            r => r,
        }
        .map_err(|err| self.err(&e.path, err))??;
        self.changed(parent);
        // A directory at the final name makes the rename fail with EISDIR (a file or symlink
        // cannot replace a directory); only then is it looked at, and replaced or refused.
        // Any other failure removes the temp (best effort) and is the error.
        match d.rename(&tmp, &d, name) {
            Ok(()) => {}
            Err(err) if !maybe_dir_in_the_way(&err) => {
                let _ = d.remove_file(&tmp);
                return Err(self.err(&e.path, err));
            }
            Err(err) if !self.dir_at(&d, name, e).unwrap_or(false) => {
                let _ = d.remove_file(&tmp);
                return Err(self.err(&e.path, err));
            }
            Err(_) => {
                if !replace_dir {
                    let _ = d.remove_file(&tmp);
                    return Err(Error::InTheWay {
                        path: self.full(&e.path).into(),
                        what: format!(
                            "is a directory where the snapshot has a {}",
                            e.kind.as_str()
                        ),
                        hint: "; use --hard to replace it",
                    });
                }
                let replaced = d.remove_tree(name).and_then(|()| d.rename(&tmp, &d, name));
                if let Err(err) = replaced {
                    let _ = d.remove_file(&tmp);
                    return Err(self.err(&e.path, err));
                }
            }
        }
        Ok(Placed {
            rec: self.rec_of(&d, name, e)?,
            written: true,
        })
    }

    /// True when a directory is at `name` in `d`.
    fn dir_at(&self, d: &Dir, name: &OsStr, e: &Entry) -> Result<bool> {
        let st = d.try_stat(name).map_err(|err| self.err(&e.path, err))?;
        Ok(st.is_some_and(|st| cowtree_fs::sys::stat_file_type(&st).is_dir()))
    }

    /// Writes the content of file or symlink entry `e` under the temp name `tmp` in `d`. The
    /// outer error is the creation's (`AlreadyExists` when `tmp` is taken); the inner one is
    /// everything else, ready for the caller.
    fn write_tmp(&self, e: &Entry, d: &Dir, tmp: &OsStr) -> io::Result<Result<()>> {
        match &e.data {
            Data::Blob { hash, .. } => {
                let opts = TransferOptions {
                    method: Method::CloneOrCopy,
                    mode: Some(if e.kind == Kind::Executable {
                        0o755
                    } else {
                        0o644
                    }),
                    preserve_times: false,
                };
                let t = blob::with_blob(self.store, hash, |blobs, name| {
                    transfer_durable(blobs, name, d, tmp, &opts)
                });
                let t = match t.map(|t| t.unwrap_or(Transfer::SourceVanished)) {
                    Err(err) if err.kind() == io::ErrorKind::AlreadyExists => return Err(err),
                    Err(source) => {
                        return Ok(Err(Error::FromBlob {
                            path: self.full(&e.path).into(),
                            blob: self.store.blob_path(hash),
                            source,
                        }));
                    }
                    Ok(t) => t,
                };
                Ok(match t {
                    Transfer::Cloned { .. } | Transfer::Copied { .. } => Ok(()),
                    Transfer::SourceVanished => Err(Corrupt::MissingBlob {
                        store: self.store.root().to_path_buf(),
                        hash: *hash,
                        needed_for: self.full(&e.path).into(),
                    }
                    .into()),
                    Transfer::Unsupported(c) => Err(Error::msg(format!(
                        "{}: cannot write: {}",
                        self.full(&e.path),
                        c.as_str()
                    ))),
                })
            }
            Data::Target(t) => match crate::os::name(t) {
                Ok(t) => d.symlink(t, tmp).map(Ok),
                Err(err) => Ok(Err(self.err(&e.path, err))),
            },
            Data::None => Ok(Err(Error::msg(format!(
                "{}: internal error: place of a directory",
                self.full(&e.path)
            )))),
        }
    }

    fn rec_of(&self, d: &Dir, name: &OsStr, e: &Entry) -> Result<Rec> {
        let st = d.stat(name).map_err(|err| self.err(&e.path, err))?;
        let hash = match &e.data {
            Data::Blob { hash, .. } => *hash,
            Data::Target(t) => Hash::of(t),
            Data::None => Hash::of(b""),
        };
        Ok(Rec {
            path: e.path.clone(),
            key: StatKey::of(&st),
            hash,
        })
    }
}

/// [`cowtree_fs::transfer_at`] of a blob to a new file: unix makes it durable with the filesystem's sync
/// ([`Applier::sync`]).
#[cfg(unix)]
fn transfer_durable(
    src_dir: &Dir,
    src_name: &OsStr,
    dst_dir: &Dir,
    dst_name: &OsStr,
    opts: &TransferOptions,
) -> io::Result<Transfer> {
    cowtree_fs::transfer_at(src_dir, src_name, dst_dir, dst_name, opts)
}

/// [`cowtree_fs::transfer_at`] of a blob to a new file, which is flushed (`FlushFileBuffers`) through the
/// handle it was written with before it is closed: Windows lets only administrators flush a
/// whole volume, so [`Applier::sync`] flushes directories only.
#[cfg(windows)]
fn transfer_durable(
    src_dir: &Dir,
    src_name: &OsStr,
    dst_dir: &Dir,
    dst_name: &OsStr,
    opts: &TransferOptions,
) -> io::Result<Transfer> {
    use cowtree_fs::reflink::OpenSource;
    use std::os::windows::io::AsHandle;
    let Some(src) = OpenSource::open(src_dir, src_name)? else {
        return Ok(Transfer::SourceVanished);
    };
    let (done, file) = cowtree_fs::transfer_at_open(
        &src,
        (src_dir.as_handle(), src_name),
        (dst_dir.as_handle(), dst_name),
        opts,
    )?;
    if let Some(f) = file {
        f.sync_all()?;
    }
    Ok(done)
}

/// Lists the paths of non-directories beneath directory `rel` (recursively), for the check
/// that nothing untracked would be lost when the directory is replaced.
pub fn files_beneath(a: &Applier<'_>, rel: &[u8]) -> Result<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    let mut stack = vec![rel.to_vec()];
    while let Some(d) = stack.pop() {
        let Some(dir) = a.open(&d)? else { continue };
        for ent in dir.entries().map_err(|e| a.err(&d, e))? {
            let p = crate::paths::join(&d, ent.name.as_encoded_bytes());
            let ft: FileType = match crate::os::listed_type(ent.file_type) {
                Some(ft) => ft,
                None => match dir.try_stat(&ent.name).map_err(|e| a.err(&p, e))? {
                    Some(st) => cowtree_fs::sys::stat_file_type(&st),
                    None => continue,
                },
            };
            if ft.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    Ok(out)
}

/// Shows a path for messages.
pub fn show_path(p: &[u8]) -> String {
    show(p)
}

/// EEXIST, which some filesystems return for a non-empty directory.
#[cfg(unix)]
fn not_empty(e: &io::Error) -> bool {
    cowtree_fs::error::raw_errno(e) == Some(rustix::io::Errno::EXIST.raw_os_error())
}

/// Windows says a directory is not empty with `ERROR_DIR_NOT_EMPTY`, which is
/// [`io::ErrorKind::DirectoryNotEmpty`]: nothing more to look for.
#[cfg(windows)]
fn not_empty(_e: &io::Error) -> bool {
    false
}

/// Whether a failed rename of a file over `name` may have met a directory there: EISDIR.
#[cfg(unix)]
fn maybe_dir_in_the_way(e: &io::Error) -> bool {
    cowtree_fs::error::raw_errno(e) == Some(rustix::io::Errno::ISDIR.raw_os_error())
}

/// Whether a failed rename of a file over `name` may have met a directory there: Windows
/// refuses that with `ERROR_ACCESS_DENIED`, which other causes give too, so any failure is
/// looked at (the caller stats the name).
#[cfg(windows)]
fn maybe_dir_in_the_way(_e: &io::Error) -> bool {
    true
}
