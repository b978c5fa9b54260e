//! Writes the target tree's entries into the staging directory: each file reflinked from SRC
//! when SRC's copy is shown to hold the bytes git's checkout writes ([`crate::trust`]: on stat
//! evidence, or by hashing the copy), else written from the object database through git's
//! checkout conversion ([`crate::filters`]); symlinks as symlinks (files holding their target
//! with `core.symlinks=false`); submodules as empty directories.

use std::ffi::OsStr;
use std::io::Write;
#[cfg(unix)]
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use cowtree_fs::dir::Dir;
use cowtree_fs::{Method, Transfer, TransferOptions, UnsupportedCause};
use gix::bstr::{BStr, ByteSlice};
use gix::index::entry::{Mode, Stat};
use rayon::prelude::*;
#[cfg(unix)]
use rustix::fs::{AtFlags, OFlags, openat, statat};

use crate::clone::{self, CloneState, Cloned};
use crate::error::{Error, Result};
use crate::filters::Filters;
use crate::trust::{Evidence, Kind, SrcFile, Verdict, judge, records, stat_of};

/// How SRC's file was shown to hold an entry's bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proof {
    /// Stat data, size and configuration ([`Verdict::Clean`]).
    Stat,
    /// The copy hashed to the entry's blob ([`Verdict::Hash`]).
    Hash,
}

/// How one tracked entry was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Made {
    /// Reflinked from SRC.
    Cloned(Proof),
    /// Copied from SRC because the filesystems cannot reflink.
    Copied(Proof),
    /// Written from the object database; `rejected`: after SRC's copy was hashed and found to
    /// be another blob.
    FromObjects {
        /// SRC's copy was hashed and rejected first.
        rejected: bool,
    },
    /// `--with-changes`: SRC's uncommitted file (or its absence) carried over; `copied`: its
    /// data was copied, not reflinked (the cause is recorded in the build's [`Fallback`]).
    Carried {
        /// The file's data was copied.
        copied: bool,
    },
    /// A submodule, left as an empty directory.
    Submodule,
    /// Left out by the sparse checkout (skip-worktree): nothing written.
    Skipped,
}

/// The outcome for one entry: how it was made and the stat data for DST's index (`None`: an
/// entry git must look at).
#[derive(Debug, Clone, Copy)]
pub struct EntryResult {
    /// How the entry was made.
    pub made: Made,
    /// DST's `lstat` of the entry, when its content is known to be the entry's blob.
    pub stat: Option<Stat>,
    /// Bytes of file data.
    pub bytes: u64,
}

/// What the build needs to know.
pub struct BuildInput<'a> {
    /// SRC's repository (thread-safe handle; each worker makes its own local one).
    pub repo: &'a gix::ThreadSafeRepository,
    /// SRC's worktree root (`None`: no worktree lends its files; all come from objects).
    pub src_root: Option<&'a Path>,
    /// SRC's index.
    pub src_index: &'a gix::index::State,
    /// What the verdicts on SRC's files are made with.
    pub evidence: Evidence,
    /// The target's blob sizes.
    pub sizes: &'a crate::sizes::Sizes,
    /// The target tree as an index (entries sorted by path).
    pub target: &'a gix::index::State,
    /// The staging directory.
    pub staging: &'a Dir,
    /// Its path, for messages.
    pub staging_path: &'a Path,
    /// Carry SRC's uncommitted changes: `target` is then SRC's own index, and an entry whose
    /// file SRC's stat data does not prove is taken from SRC as it is (`carry`).
    pub with_changes: bool,
    /// Refuse to copy where a reflink is impossible.
    pub strict: bool,
    /// The process umask.
    pub umask: u32,
    /// The target tree's attributes and configuration for git's checkout filters.
    pub filters: &'a crate::filters::Setup,
}

/// State shared by the workers: the first reason a proven-clean file had to be copied
/// instead of cloned, and whether cloning is still tried.
#[derive(Debug, Default)]
pub struct Fallback {
    /// The first copy's cause and file.
    pub first: Mutex<Option<(UnsupportedCause, PathBuf)>>,
    /// Whether cloning is still tried.
    pub clone: CloneState,
}

impl Fallback {
    fn record(&self, cause: UnsupportedCause, path: PathBuf) {
        let mut f = self.first.lock().expect("no panics while held");
        if f.is_none() {
            *f = Some((cause, path));
        }
    }
}

fn split(path: &BStr) -> (&[u8], &[u8]) {
    match path.rfind_byte(b'/') {
        Some(i) => (&path[..i], &path[i + 1..]),
        None => (b"", path),
    }
}

fn os(b: &[u8]) -> &OsStr {
    crate::portable::os_str(b)
}

/// `lstat` of `name` in `dir`; `None` when it cannot be read.
#[cfg(unix)]
fn lstat_at(dir: &Dir, name: &OsStr) -> Option<rustix::fs::Stat> {
    statat(dir, name, AtFlags::SYMLINK_NOFOLLOW).ok()
}

/// What `name` in `dir` is, never following a reparse point; `None` when it cannot be read.
#[cfg(windows)]
fn lstat_at(dir: &Dir, name: &OsStr) -> Option<cowtree_fs::dir::Stat> {
    dir.stat(name).ok()
}

/// Creates every directory the target's entries need (parents before children; the entries
/// are sorted so that a parent's prefix comes first). [`build`] needs them.
pub fn create_dirs(input: &BuildInput<'_>) -> Result<()> {
    let mut made: std::collections::HashSet<&[u8]> = std::collections::HashSet::new();
    let backing = input.target.path_backing();
    for e in input.target.entries() {
        if e.flags.contains(gix::index::entry::Flags::SKIP_WORKTREE) {
            continue;
        }
        let path = e.path_in(backing);
        let bytes: &[u8] = path.as_ref();
        let mut dirs: Vec<&[u8]> = bytes
            .iter()
            .enumerate()
            .filter(|(_, b)| **b == b'/')
            .map(|(i, _)| &bytes[..i])
            .collect();
        if Kind::of(e.mode) == Kind::Submodule {
            dirs.push(bytes);
        }
        for d in dirs {
            if made.contains(d) {
                continue;
            }
            let (parent, name) = split(d.as_bstr());
            let pdir = if parent.is_empty() {
                input.staging.try_clone()
            } else {
                input.staging.open_dir_deep(Path::new(os(parent)))
            }
            .map_err(Error::io("open", input.staging_path.join(os(parent))))?;
            pdir.create_dir(os(name), 0o777).map_err(Error::io(
                "create directory",
                input.staging_path.join(os(d)),
            ))?;
            made.insert(d);
        }
    }
    Ok(())
}

/// For each of `target`'s entries, the position in `src` of `src`'s unconflicted (stage 0)
/// entry at the same path, if it has one: what `src.entry_by_path_and_stage(path,
/// Unconflicted)` finds, by one merge of the two entry lists instead of a binary search per
/// entry.
///
/// `src` is sorted by path, then stage, as an index file keeps it (gitoxide's lookups assume
/// so too). The merge also needs `target` in that order: an index read from a file is, and
/// one made by `index_from_tree` is in the tree's traversal order, which is the same for a
/// valid tree (git orders a tree's entries as if a directory's name ended in `/`). A target in
/// another order (a malformed tree) is found out by one pass of comparisons and looked up by
/// binary search instead.
pub fn src_entries_for(target: &gix::index::State, src: &gix::index::State) -> Vec<Option<usize>> {
    let (t_backing, s_backing) = (target.path_backing(), src.path_backing());
    if target.verify_entries().is_err() {
        return target
            .entries()
            .iter()
            .map(|e| {
                src.entry_index_by_path_and_stage(
                    e.path_in(t_backing),
                    gix::index::entry::Stage::Unconflicted,
                )
            })
            .collect();
    }
    let src_entries = src.entries();
    let mut j = 0;
    target
        .entries()
        .iter()
        .map(|e| {
            let path = e.path_in(t_backing);
            while src_entries
                .get(j)
                .is_some_and(|s| s.path_in(s_backing) < path)
            {
                j += 1;
            }
            src_entries
                .get(j)
                .is_some_and(|s| {
                    s.path_in(s_backing) == path
                        && s.stage() == gix::index::entry::Stage::Unconflicted
                })
                .then_some(j)
        })
        .collect()
}

/// Builds every entry of `input.target` in the staging directory (whose directories
/// [`create_dirs`] made), in parallel by directory; each entry is judged against SRC's entry at
/// its path ([`src_entries_for`]). The results are in the target's entry order.
pub fn build(input: &BuildInput<'_>, fallback: &Fallback) -> Result<Vec<EntryResult>> {
    let backing = input.target.path_backing();
    let entries = input.target.entries();
    // Groups of consecutive entries with the same parent directory.
    let mut groups: Vec<(usize, usize)> = Vec::new();
    let mut start = 0;
    for i in 1..=entries.len() {
        if i == entries.len()
            || split(entries[i].path_in(backing)).0 != split(entries[start].path_in(backing)).0
        {
            if start < i {
                groups.push((start, i));
            }
            start = i;
        }
    }
    let src_root = match input.src_root {
        Some(p) => Some(Dir::open(p).map_err(Error::io("open", p))?),
        None => None,
    };
    let src_entries = src_entries_for(input.target, input.src_index);
    let results: Vec<Result<Vec<EntryResult>>> = groups
        .par_iter()
        .map_init(
            || {
                let repo = input.repo.to_thread_local();
                let filters = input.filters.worker();
                (repo, filters)
            },
            |(repo, filters), &(a, b)| {
                let skipped = |i: usize| {
                    entries[i]
                        .flags
                        .contains(gix::index::entry::Flags::SKIP_WORKTREE)
                };
                if (a..b).all(skipped) {
                    // A directory the sparse checkout leaves out: never made.
                    return Ok((a..b)
                        .map(|_| EntryResult {
                            made: Made::Skipped,
                            stat: None,
                            bytes: 0,
                        })
                        .collect());
                }
                let parent = split(entries[a].path_in(backing)).0;
                let src_dir = src_root.as_ref().and_then(|r| {
                    if parent.is_empty() {
                        r.try_clone().ok()
                    } else {
                        r.open_dir_deep(Path::new(os(parent))).ok()
                    }
                });
                let dst_dir = if parent.is_empty() {
                    input.staging.try_clone()
                } else {
                    input.staging.open_dir_deep(Path::new(os(parent)))
                }
                .map_err(Error::io("open", input.staging_path.join(os(parent))))?;
                (a..b)
                    .map(|i| {
                        let src_entry = src_entries[i].map(|j| &input.src_index.entries()[j]);
                        one(
                            input,
                            repo,
                            filters,
                            src_dir.as_ref(),
                            &dst_dir,
                            i,
                            src_entry,
                            fallback,
                        )
                    })
                    .collect()
            },
        )
        .collect();
    let mut out = Vec::with_capacity(entries.len());
    for r in results {
        out.extend(r?);
    }
    Ok(out)
}

#[allow(clippy::too_many_arguments)]
fn one(
    input: &BuildInput<'_>,
    repo: &gix::Repository,
    filters: &mut Filters,
    src_dir: Option<&Dir>,
    dst_dir: &Dir,
    i: usize,
    src_entry: Option<&gix::index::Entry>,
    fallback: &Fallback,
) -> Result<EntryResult> {
    let backing = input.target.path_backing();
    let entry = &input.target.entries()[i];
    let path = entry.path_in(backing);
    let name = os(split(path).1);
    let dst_path = || input.staging_path.join(os(path));
    if entry
        .flags
        .contains(gix::index::entry::Flags::SKIP_WORKTREE)
    {
        return Ok(EntryResult {
            made: Made::Skipped,
            stat: None,
            bytes: 0,
        });
    }
    let kind = Kind::of(entry.mode);
    let mode = if entry.mode == Mode::FILE_EXECUTABLE {
        0o777
    } else {
        0o666
    } & !input.umask;
    match kind {
        // The empty directory git's checkout makes, whose stat data git records for the
        // gitlink (it compares none of it for a gitlink, but writes it).
        Kind::Submodule => Ok(EntryResult {
            made: Made::Submodule,
            stat: dst_dir.stat(name).ok().map(|st| stat_of(&st)),
            bytes: 0,
        }),
        Kind::Other => Err(Error::Git {
            what: "unsupported entry mode in the target tree (sparse index?)",
            path: dst_path(),
            source: format!("{:?}", entry.mode).into(),
        }),
        Kind::Symlink => symlink(input, repo, src_dir, dst_dir, entry, src_entry, fallback),
        Kind::File => {
            let file = File {
                input,
                repo,
                i,
                src_dir,
                dst_dir,
                entry,
                src_entry,
                name,
                mode,
                fallback,
            };
            file.make(filters)
        }
    }
}

/// A symlink: made from its blob (a file holding its target with `core.symlinks=false`, as
/// git makes it); a clean one in SRC lends its times, so that the entry is not racy. With
/// `--with-changes`, an unproven one is SRC's as it is.
fn symlink(
    input: &BuildInput<'_>,
    repo: &gix::Repository,
    src_dir: Option<&Dir>,
    dst_dir: &Dir,
    entry: &gix::index::Entry,
    src_entry: Option<&gix::index::Entry>,
    fallback: &Fallback,
) -> Result<EntryResult> {
    let path = entry.path_in(input.target.path_backing());
    let name = os(split(path).1);
    let dst_path = || input.staging_path.join(os(path));
    if !input.filters.symlinks() {
        return write_blob(
            repo,
            None,
            input.target,
            entry,
            dst_dir,
            input.staging_path,
            name,
            0o666 & !input.umask,
            true,
        );
    }
    let src_st = src_dir.and_then(|d| lstat_at(d, name));
    let file = src_st.as_ref().map(SrcFile::of);
    let verdict = judge(
        src_entry,
        &entry.id,
        Kind::Symlink,
        &input.evidence,
        file,
        || None,
    );
    if verdict == Verdict::Unproven && input.with_changes {
        return carry(
            input,
            entry,
            src_dir,
            src_st.as_ref(),
            dst_dir,
            name,
            fallback,
        );
    }
    let r = from_objects(input, repo, None, entry, dst_dir, name, 0)?;
    if let (Verdict::Clean, Some(src_st)) = (verdict, src_st) {
        // Same content as SRC's link: keep its time, so the entry is not racy.
        let (atime, mtime) = cowtree_fs::sys::stat_times(&src_st);
        dst_dir
            .set_times(name, atime, mtime)
            .map_err(Error::io("set times of", dst_path()))?;
        let st = dst_dir.stat(name).map_err(Error::io("stat", dst_path()))?;
        return Ok(EntryResult {
            stat: Some(stat_of(&st)),
            ..r
        });
    }
    Ok(r)
}

/// One regular file of the target, and what it is made from.
struct File<'a, 'b> {
    input: &'a BuildInput<'b>,
    repo: &'a gix::Repository,
    /// The entry's position in the target.
    i: usize,
    src_dir: Option<&'a Dir>,
    dst_dir: &'a Dir,
    entry: &'a gix::index::Entry,
    src_entry: Option<&'a gix::index::Entry>,
    name: &'a OsStr,
    mode: u32,
    fallback: &'a Fallback,
}

impl File<'_, '_> {
    fn path(&self) -> &BStr {
        self.entry.path_in(self.input.target.path_backing())
    }

    fn src_path(&self) -> PathBuf {
        self.input
            .src_root
            .unwrap_or(Path::new(""))
            .join(os(self.path()))
    }

    /// Decides and makes the file: SRC's copy (on stat evidence, or hashed), SRC's file as it
    /// is (`--with-changes`), or the blob through git's checkout conversion.
    fn make(&self, filters: &mut Filters) -> Result<EntryResult> {
        let input = self.input;
        // A file git converts on checkout is written through the conversion (or carried
        // with --with-changes, as SRC has it): SRC's bytes are not compared with the result.
        let look = filters.look(self.repo, self.path())?;
        let converts = look.converts.is_some();
        let mut evidence = input.evidence;
        if look.unconfigured_filter {
            evidence.risk = crate::trust::Risk::Any;
        }
        let opened = if records(self.src_entry, &self.entry.id, Kind::File) {
            self.src_dir.and_then(|d| clone::open_src(d, self.name))
        } else {
            None
        };
        let file = opened.as_ref().map(|s| SrcFile::of(&s.stat));
        let verdict = judge(
            self.src_entry,
            &self.entry.id,
            Kind::File,
            &evidence,
            file,
            || input.sizes.get(self.i, self.entry.id, self.repo),
        );
        match (verdict, opened) {
            (Verdict::Clean, _) if converts => self.write_from_objects(Some(filters), false),
            (Verdict::Clean, Some(src)) => self.reuse(&src, None),
            // With --with-changes SRC's file is what DST gets whatever it holds (with its
            // permission bits): carried as it is, and git looks at it.
            _ if input.with_changes && verdict != Verdict::OtherBlob => self.carry_now(),
            (Verdict::Hash, Some(src)) if !converts => self.reuse(&src, Some(&self.entry.id)),
            _ => self.write_from_objects(converts.then_some(filters), false),
        }
    }

    /// SRC's file cloned (or copied), with the hash check when `expect` is given.
    fn reuse(&self, src: &clone::SrcFile, expect: Option<&gix::ObjectId>) -> Result<EntryResult> {
        let input = self.input;
        let proof = if expect.is_some() {
            Proof::Hash
        } else {
            Proof::Stat
        };
        let cloned = clone::clone_checked(
            src,
            self.dst_dir,
            self.name,
            self.mode,
            input.strict,
            &self.fallback.clone,
            expect,
        )
        .map_err(|e| Error::io("clone", self.src_path())(e))?;
        match cloned {
            Cloned::Done {
                stat,
                bytes,
                because,
            } => {
                let made = match because {
                    None => Made::Cloned(proof),
                    Some(cause) => {
                        self.fallback.record(cause, self.src_path());
                        Made::Copied(proof)
                    }
                };
                Ok(EntryResult {
                    made,
                    stat: Some(stat_of(&stat)),
                    bytes,
                })
            }
            // SRC's file changed meanwhile: the blob instead, or with --with-changes what
            // SRC holds now.
            Cloned::Changed if input.with_changes => self.carry_now(),
            Cloned::Changed => self.write_from_objects(None, false),
            Cloned::Mismatch => self.write_from_objects(None, true),
            Cloned::Refused(cause) => Err(Error::strict(self.src_path(), cause)),
        }
    }

    fn carry_now(&self) -> Result<EntryResult> {
        let st = self.src_dir.and_then(|d| lstat_at(d, self.name));
        carry(
            self.input,
            self.entry,
            self.src_dir,
            st.as_ref(),
            self.dst_dir,
            self.name,
            self.fallback,
        )
    }

    fn write_from_objects(
        &self,
        filters: Option<&mut Filters>,
        rejected: bool,
    ) -> Result<EntryResult> {
        let mut r = from_objects(
            self.input,
            self.repo,
            filters,
            self.entry,
            self.dst_dir,
            self.name,
            self.mode,
        )?;
        r.made = Made::FromObjects { rejected };
        Ok(r)
    }
}

/// `--with-changes` (where the target is SRC's own index): SRC's own file or symlink, as it
/// is, for an entry whose file may differ from its blob; nothing when SRC has neither at the
/// path (deleted, or replaced by a directory or a special file), as git then reports the entry
/// deleted. A regular file keeps SRC's permission bits, so a mode change is carried too. The
/// index entry keeps no stat data, so git looks at it and reports it as SRC does.
fn carry(
    input: &BuildInput<'_>,
    entry: &gix::index::Entry,
    src_dir: Option<&Dir>,
    src_st: Option<&cowtree_fs::dir::Stat>,
    dst_dir: &Dir,
    name: &OsStr,
    fallback: &Fallback,
) -> Result<EntryResult> {
    let path = entry.path_in(input.target.path_backing());
    let src_path = input.src_root.unwrap_or(Path::new("")).join(os(path));
    let carried_as = |bytes, copied| {
        Ok(EntryResult {
            made: Made::Carried { copied },
            stat: None,
            bytes,
        })
    };
    let carried = |bytes| carried_as(bytes, false);
    let (Some(src_dir), Some(st)) = (src_dir, src_st) else {
        return carried(0);
    };
    let file_type = cowtree_fs::sys::stat_file_type(st);
    if file_type.is_file() {
        {
            let method = if input.strict {
                Method::Clone
            } else {
                Method::CloneOrCopy
            };
            let opts = TransferOptions {
                method,
                mode: Some(cowtree_fs::sys::stat_mode(st) & 0o777),
                preserve_times: true,
            };
            match cowtree_fs::transfer_at(src_dir, name, dst_dir, name, &opts)
                .map_err(Error::io("clone", &src_path))?
            {
                Transfer::Cloned { bytes } => carried(bytes),
                Transfer::Copied { bytes, because } => {
                    fallback.record(because.unwrap_or(UnsupportedCause::Filesystem), src_path);
                    carried_as(bytes, true)
                }
                Transfer::Unsupported(cause) => Err(Error::strict(src_path, cause)),
                Transfer::SourceVanished => carried(0),
            }
        }
    } else if file_type.is_symlink() {
        {
            let target = match src_dir.read_link(name) {
                Ok(t) => t,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return carried(0),
                Err(e) => return Err(Error::io("read symlink", &src_path)(e)),
            };
            dst_dir.symlink(&target, name).map_err(Error::io(
                "create symlink",
                input.staging_path.join(os(path)),
            ))?;
            carried(0)
        }
    } else {
        carried(0)
    }
}

/// Writes the entry's blob from the object database (a file with `mode`, or a symlink),
/// through `filters` when given.
fn from_objects(
    input: &BuildInput<'_>,
    repo: &gix::Repository,
    filters: Option<&mut Filters>,
    entry: &gix::index::Entry,
    dst_dir: &Dir,
    name: &OsStr,
    mode: u32,
) -> Result<EntryResult> {
    write_blob(
        repo,
        filters,
        input.target,
        entry,
        dst_dir,
        input.staging_path,
        name,
        mode,
        false,
    )
}

/// Writes `entry`'s blob (an entry of `target`) from the object database as `name` in
/// `dst_dir` (a file with permission bits `mode`, or a symlink unless `link_as_file`), through
/// git's checkout conversion when `filters` are given; `root_path` is the tree's root, for
/// messages. Nothing may be at `name`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn write_blob(
    repo: &gix::Repository,
    filters: Option<&mut Filters>,
    target: &gix::index::State,
    entry: &gix::index::Entry,
    dst_dir: &Dir,
    root_path: &Path,
    name: &OsStr,
    mode: u32,
    link_as_file: bool,
) -> Result<EntryResult> {
    let path = entry.path_in(target.path_backing());
    let dst_path = root_path.join(os(path));
    let blob = repo
        .find_blob(entry.id)
        .map_err(Error::git("read blob", PathBuf::from(entry.id.to_string())))?;
    let filtered = match filters {
        Some(f) => Some(f.to_worktree(repo, path, &entry.id, &blob.data)?),
        None => None,
    };
    let data: &[u8] = filtered.as_deref().unwrap_or(&blob.data);
    if Kind::of(entry.mode) == Kind::Symlink && !link_as_file {
        dst_dir
            .symlink(os(data), name)
            .map_err(Error::io("create symlink", &dst_path))?;
    } else {
        #[cfg(unix)]
        let mut f = std::fs::File::from(
            openat(
                dst_dir.as_fd(),
                name,
                OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                cowtree_fs::sys::mode(mode),
            )
            .map_err(|e| Error::io("create", &dst_path)(e.into()))?,
        );
        // Windows keeps no permission bits (Git for Windows sets none either): `mode` has
        // nothing to give.
        #[cfg(windows)]
        let mut f = {
            let _ = mode;
            dst_dir
                .create_file(name)
                .map_err(Error::io("create", &dst_path))?
        };
        f.write_all(data).map_err(Error::io("write", &dst_path))?;
    }
    let st = dst_dir.stat(name).map_err(Error::io("stat", &dst_path))?;
    Ok(EntryResult {
        made: Made::FromObjects { rejected: false },
        stat: Some(stat_of(&st)),
        bytes: data.len() as u64,
    })
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use gix::index::entry::{Flags, Stage};

    fn state(entries: &[(&str, Stage)]) -> gix::index::State {
        let mut s = gix::index::State::new(gix::hash::Kind::Sha1);
        for (path, stage) in entries {
            s.dangerously_push_entry(
                Stat::default(),
                gix::ObjectId::empty_blob(gix::hash::Kind::Sha1),
                Flags::from_stage(*stage),
                Mode::FILE,
                (*path).into(),
            );
        }
        s.sort_entries();
        s
    }

    /// What the merge must agree with: gitoxide's own lookup, for every target entry.
    fn by_lookup(target: &gix::index::State, src: &gix::index::State) -> Vec<Option<usize>> {
        target
            .entries()
            .iter()
            .map(|e| src.entry_index_by_path_and_stage(e.path(target), Stage::Unconflicted))
            .collect()
    }

    #[test]
    fn src_entries_for_finds_each_unconflicted_src_entry_at_the_target_path() {
        let u = Stage::Unconflicted;
        let target = state(&[
            ("a", u),
            ("a.txt", u),
            ("a/b", u),
            ("both", u),
            ("conflicted", u),
            ("only-in-target", u),
            ("z/deep/file", u),
        ]);
        let src = state(&[
            ("0-only-in-src", u),
            ("a", u),
            ("a/b", u),
            ("a/b/c", u),
            ("both", u),
            ("conflicted", Stage::Base),
            ("conflicted", Stage::Ours),
            ("conflicted", Stage::Theirs),
            ("z/deep/file", u),
            ("zz", u),
        ]);
        let found = src_entries_for(&target, &src);
        assert_eq!(found, by_lookup(&target, &src));
        let paths: Vec<Option<String>> = found
            .iter()
            .map(|j| j.map(|j| src.entries()[j].path(&src).to_string()))
            .collect();
        let want = |p: &str| Some(p.to_owned());
        assert_eq!(
            paths,
            vec![
                want("a"),
                None,
                want("a/b"),
                want("both"),
                None,
                None,
                want("z/deep/file")
            ]
        );
    }

    #[test]
    fn src_entries_for_a_target_out_of_order_agrees_with_the_lookup() {
        let u = Stage::Unconflicted;
        let src = state(&[("a", u), ("b", u), ("c/d", u), ("e", u)]);
        // Not sorted: the merge alone would miss "a" and "b" once past "c/d".
        let mut target = gix::index::State::new(gix::hash::Kind::Sha1);
        for path in ["c/d", "a", "zz", "b", "e"] {
            target.dangerously_push_entry(
                Stat::default(),
                gix::ObjectId::empty_blob(gix::hash::Kind::Sha1),
                Flags::from_stage(u),
                Mode::FILE,
                path.into(),
            );
        }
        assert!(
            target.verify_entries().is_err(),
            "the target is out of order"
        );
        let found = src_entries_for(&target, &src);
        assert_eq!(found, by_lookup(&target, &src));
        assert_eq!(found, vec![Some(2), Some(0), None, Some(1), Some(3)]);
    }

    #[test]
    fn a_target_made_from_a_tree_is_in_index_order_and_matches_gits_own_index() {
        // Names around `/` in byte order ('-' and '.' sort before it, '0' after), where a
        // tree's order (a directory's name compared as if it ended in `/`) and a plain sort of
        // the names would differ: the traversal must still give the index's order.
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        for path in ["a-b", "a.b", "a/x", "a/y/z", "a0", "a/y-", "b"] {
            let p = root.join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, path).unwrap();
        }
        let git = |args: &[&str]| {
            let out = cowtree_testutil::git_cmd(root)
                .args(args)
                .output()
                .expect("run git");
            assert!(out.status.success(), "git {args:?}: {out:?}");
        };
        git(&["init", "-q"]);
        git(&["add", "-A"]);
        git(&["commit", "-q", "-m", "c"]);
        let repo = gix::open(root).unwrap();
        let tree = repo.head_tree_id().unwrap();
        // As cowtree-git makes the target of `git worktree add`.
        let target = repo.index_from_tree(&tree).unwrap();
        target.verify_entries().unwrap();
        let paths: Vec<String> = target
            .entries()
            .iter()
            .map(|e| e.path(&target).to_string())
            .collect();
        assert_eq!(
            paths,
            ["a-b", "a.b", "a/x", "a/y-", "a/y/z", "a0", "b"],
            "traversal order"
        );
        let src = repo.open_index().unwrap();
        let found = src_entries_for(&target, &src);
        assert_eq!(found, by_lookup(&target, &src));
        assert!(found.iter().all(Option::is_some), "{found:?}");
    }

    #[test]
    fn src_entries_for_an_empty_src_or_target_finds_nothing() {
        let u = Stage::Unconflicted;
        let some = state(&[("a", u), ("b/c", u)]);
        let none = state(&[]);
        assert_eq!(src_entries_for(&some, &none), vec![None, None]);
        assert!(src_entries_for(&none, &some).is_empty());
        assert_eq!(src_entries_for(&some, &some), vec![Some(0), Some(1)]);
    }
}
