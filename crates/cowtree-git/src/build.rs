//! Writes the target tree's entries into the staging directory: each file reflinked from SRC
//! when SRC's copy is proven to hold the target blob ([`crate::trust`]), else written from the
//! object database; symlinks as symlinks; submodules as empty directories.

use std::ffi::OsStr;
use std::io::Write;
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use cowtree_fs::dir::Dir;
use cowtree_fs::{Method, Transfer, TransferOptions, UnsupportedCause};
use gix::bstr::{BStr, ByteSlice};
use gix::index::entry::{Mode, Stat};
use rayon::prelude::*;
use rustix::fs::{AtFlags, FileType, OFlags, Timespec, openat, statat};

use crate::clone::{self, CloneState, Cloned};
use crate::error::{Error, Result};
use crate::filters::Filters;
use crate::trust::{Kind, Verdict, judge, stat_of};

/// How one tracked entry was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Made {
    /// Reflinked from SRC (proven clean).
    Cloned,
    /// Copied from SRC (proven clean) because the filesystems cannot reflink.
    Copied,
    /// Written from the object database.
    FromObjects,
    /// `--with-changes`: SRC's uncommitted file (or its absence) carried over; `copied`: its
    /// data was copied, not reflinked (the cause is recorded in the build's [`Fallback`]).
    Carried {
        /// The file's data was copied.
        copied: bool,
    },
    /// A submodule, left as an empty directory.
    Submodule,
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
    /// SRC's worktree root.
    pub src_root: &'a Path,
    /// SRC's index.
    pub src_index: &'a gix::index::State,
    /// The mtime (seconds) of SRC's index file.
    pub src_index_mtime: i64,
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
    OsStr::from_bytes(b)
}

/// Creates every directory the target's entries need (parents before children; the entries
/// are sorted so that a parent's prefix comes first). [`build`] needs them.
pub fn create_dirs(input: &BuildInput<'_>) -> Result<()> {
    let mut made: std::collections::HashSet<&[u8]> = std::collections::HashSet::new();
    let backing = input.target.path_backing();
    for e in input.target.entries() {
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
    let src_root = Dir::open(input.src_root).map_err(Error::io("open", input.src_root))?;
    let src_entries = src_entries_for(input.target, input.src_index);
    let results: Vec<Result<Vec<EntryResult>>> = groups
        .par_iter()
        .map_init(
            || {
                let repo = input.repo.to_thread_local();
                let filters = input.filters.worker(&repo);
                (repo, filters)
            },
            |(repo, filters), &(a, b)| {
                let filters = filters.as_mut().map_err(|e| Error::Git {
                    what: "configure filters",
                    path: input.src_root.to_owned(),
                    source: e.to_string().into(),
                })?;
                let parent = split(entries[a].path_in(backing)).0;
                let src_dir = if parent.is_empty() {
                    src_root.try_clone().ok()
                } else {
                    src_root.open_dir_deep(Path::new(os(parent))).ok()
                };
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

fn times(st: &rustix::fs::Stat) -> (Timespec, Timespec) {
    (
        Timespec {
            tv_sec: st.st_atime as _,
            tv_nsec: st.st_atime_nsec as _,
        },
        Timespec {
            tv_sec: st.st_mtime as _,
            tv_nsec: st.st_mtime_nsec as _,
        },
    )
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
    let kind = Kind::of(entry.mode);
    match kind {
        Kind::Submodule => {
            return Ok(EntryResult {
                made: Made::Submodule,
                stat: None,
                bytes: 0,
            });
        }
        Kind::Other => {
            return Err(Error::Git {
                what: "unsupported entry mode in the target tree (sparse index?)",
                path: dst_path(),
                source: format!("{:?}", entry.mode).into(),
            });
        }
        Kind::File | Kind::Symlink => {}
    }
    // A file git filters on checkout is never proven by its blob id: written through the
    // filters, as git would (or carried with --with-changes, as SRC has it).
    let filtered = kind == Kind::File && filters.reason(repo, path)?.is_some();
    let filters = filtered.then_some(filters);
    let mode = if entry.mode == Mode::FILE_EXECUTABLE {
        0o777
    } else {
        0o666
    } & !input.umask;
    // The common case, through one descriptor (see crate::clone); anything else takes the
    // lstat path below.
    if kind == Kind::File
        && filters.is_none()
        && judge(src_entry, &entry.id, kind, input.src_index_mtime, None) != Verdict::OtherBlob
        && let Some(src) = src_dir.and_then(|d| clone::open_src(d, name))
    {
        let file = Some((FileType::RegularFile, stat_of(&src.stat)));
        if judge(src_entry, &entry.id, kind, input.src_index_mtime, file) == Verdict::Clean {
            // Only for messages: not built for the files that need none.
            let src_path = || input.src_root.join(os(path));
            match clone::clone_checked(&src, dst_dir, name, mode, input.strict, &fallback.clone)
                .map_err(|e| Error::io("clone", src_path())(e))?
            {
                Cloned::Done {
                    stat,
                    bytes,
                    because,
                } => {
                    let made = match because {
                        None => Made::Cloned,
                        Some(cause) => {
                            fallback.record(cause, src_path());
                            Made::Copied
                        }
                    };
                    return Ok(EntryResult {
                        made,
                        stat: Some(stat_of(&stat)),
                        bytes,
                    });
                }
                // Without --with-changes: the blob instead. With it: whatever SRC holds now,
                // through the lstat path below.
                Cloned::Changed if !input.with_changes => {
                    return from_objects(input, repo, None, entry, dst_dir, name, mode);
                }
                Cloned::Changed => {}
                Cloned::Refused(cause) => return Err(Error::strict(src_path(), cause)),
            }
        }
    }
    let src_st = src_dir.and_then(|d| statat(d, name, AtFlags::SYMLINK_NOFOLLOW).ok());
    let file = src_st
        .as_ref()
        .map(|st| (FileType::from_raw_mode(st.st_mode), stat_of(st)));
    let verdict = judge(src_entry, &entry.id, kind, input.src_index_mtime, file);
    match (verdict, kind) {
        (Verdict::Unproven, _) if input.with_changes => carry(
            input,
            entry,
            src_dir,
            src_st.as_ref(),
            dst_dir,
            name,
            fallback,
        ),
        _ if filters.is_some() => from_objects(input, repo, filters, entry, dst_dir, name, mode),
        (Verdict::Clean, Kind::File) => {
            let (src_dir, src_st) = (
                src_dir.expect("a clean verdict needs SRC's lstat, so SRC's directory is open"),
                src_st.expect("a clean verdict needs SRC's lstat"),
            );
            let method = if input.strict {
                Method::Clone
            } else {
                Method::CloneOrCopy
            };
            let opts = TransferOptions {
                method,
                mode: Some(mode),
                preserve_times: true,
            };
            let t = cowtree_fs::transfer_at(src_dir, name, dst_dir, name, &opts)
                .map_err(Error::io("clone", input.src_root.join(os(path))))?;
            let (made, bytes) = match t {
                Transfer::Cloned { bytes } => (Made::Cloned, bytes),
                Transfer::Copied { bytes, because } => {
                    fallback.record(
                        because.unwrap_or(UnsupportedCause::Filesystem),
                        input.src_root.join(os(path)),
                    );
                    (Made::Copied, bytes)
                }
                Transfer::Unsupported(cause) => {
                    return Err(Error::strict(input.src_root.join(os(path)), cause));
                }
                Transfer::SourceVanished => {
                    return changed_during_run(
                        input, repo, entry, src_dir, dst_dir, name, mode, fallback,
                    );
                }
            };
            // The clone holds what SRC held when it ran; SRC's stat data unchanged since
            // the verdict means that was still the target blob.
            let after = statat(src_dir, name, AtFlags::SYMLINK_NOFOLLOW).ok();
            let unchanged = after.is_some_and(|a| {
                a.st_ino == src_st.st_ino
                    && a.st_size == src_st.st_size
                    && a.st_mtime == src_st.st_mtime
                    && a.st_mtime_nsec == src_st.st_mtime_nsec
                    && a.st_ctime == src_st.st_ctime
                    && a.st_ctime_nsec == src_st.st_ctime_nsec
            });
            if !unchanged {
                dst_dir
                    .remove_file(name)
                    .map_err(Error::io("remove", dst_path()))?;
                return changed_during_run(
                    input, repo, entry, src_dir, dst_dir, name, mode, fallback,
                );
            }
            let st = dst_dir.stat(name).map_err(Error::io("stat", dst_path()))?;
            Ok(EntryResult {
                made,
                stat: Some(stat_of(&st)),
                bytes,
            })
        }
        (Verdict::Clean, Kind::Symlink) => {
            let src_st = src_st.expect("a clean verdict needs SRC's lstat");
            let r = from_objects(input, repo, None, entry, dst_dir, name, mode)?;
            // Same content as SRC's link: keep its time, so the entry is not racy.
            dst_dir
                .set_times(name, times(&src_st).0, times(&src_st).1)
                .map_err(Error::io("set times of", dst_path()))?;
            let st = dst_dir.stat(name).map_err(Error::io("stat", dst_path()))?;
            Ok(EntryResult {
                stat: Some(stat_of(&st)),
                ..r
            })
        }
        _ => from_objects(input, repo, None, entry, dst_dir, name, mode),
    }
}

/// SRC's file changed between the verdict and the clone: the blob from the object database,
/// or with `--with-changes` what SRC holds now.
#[allow(clippy::too_many_arguments)]
fn changed_during_run(
    input: &BuildInput<'_>,
    repo: &gix::Repository,
    entry: &gix::index::Entry,
    src_dir: &Dir,
    dst_dir: &Dir,
    name: &OsStr,
    mode: u32,
    fallback: &Fallback,
) -> Result<EntryResult> {
    if !input.with_changes {
        return from_objects(input, repo, None, entry, dst_dir, name, mode);
    }
    let st = statat(src_dir, name, AtFlags::SYMLINK_NOFOLLOW).ok();
    carry(
        input,
        entry,
        Some(src_dir),
        st.as_ref(),
        dst_dir,
        name,
        fallback,
    )
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
    src_st: Option<&rustix::fs::Stat>,
    dst_dir: &Dir,
    name: &OsStr,
    fallback: &Fallback,
) -> Result<EntryResult> {
    let path = entry.path_in(input.target.path_backing());
    let src_path = input.src_root.join(os(path));
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
    match FileType::from_raw_mode(st.st_mode) {
        FileType::RegularFile => {
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
        FileType::Symlink => {
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
        _ => carried(0),
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
    )
}

/// Writes `entry`'s blob (an entry of `target`) from the object database as `name` in
/// `dst_dir` (a file with permission bits `mode`, or a symlink), through `filters` when
/// given; `root_path` is the tree's root, for messages. Nothing may be at `name`.
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
) -> Result<EntryResult> {
    let path = entry.path_in(target.path_backing());
    let dst_path = root_path.join(os(path));
    let blob = repo
        .find_blob(entry.id)
        .map_err(Error::git("read blob", PathBuf::from(entry.id.to_string())))?;
    let filtered = match filters {
        Some(f) => Some(f.to_worktree(repo, path, &blob.data)?),
        None => None,
    };
    let data: &[u8] = filtered.as_deref().unwrap_or(&blob.data);
    if Kind::of(entry.mode) == Kind::Symlink {
        dst_dir
            .symlink(os(data), name)
            .map_err(Error::io("create symlink", &dst_path))?;
    } else {
        let fd = openat(
            dst_dir.as_fd(),
            name,
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            cowtree_fs::sys::mode(mode),
        )
        .map_err(|e| Error::io("create", &dst_path)(e.into()))?;
        let mut f = std::fs::File::from(fd);
        f.write_all(data).map_err(Error::io("write", &dst_path))?;
    }
    let st = dst_dir.stat(name).map_err(Error::io("stat", &dst_path))?;
    Ok(EntryResult {
        made: Made::FromObjects,
        stat: Some(stat_of(&st)),
        bytes: data.len() as u64,
    })
}

#[cfg(test)]
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
