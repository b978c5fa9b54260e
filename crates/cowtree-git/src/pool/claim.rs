//! Claiming a spare for DST: the third way of [`crate::tree::make`] (see the module doc of
//! [`crate::pool`] for when a spare fits and what proves it untouched).

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use cowtree_fs::dir::Dir;
use cowtree_fs::process::Stamp;
use cowtree_fs::staging::Staging;
use cowtree_fs::undo::unless_stopping;
use rayon::prelude::*;
use rustix::fs::{AtFlags, FileType};

use super::{CLAIMED, Pool, Spare, advance, fingerprint};
use crate::error::{Error, Result};
use crate::index_file::{EntryKind, Located};
use crate::method::MethodChoice;
use crate::options::BranchChoice;
use crate::way::{Input, Made, Method, Prepared};

/// What [`claim`] did.
pub(crate) enum Claim<'p> {
    /// A spare is the staging directory now, and DST's index is its own.
    Made(Staging<'p>, Box<Made>),
    /// No spare was used: why, when the repository has a pool.
    NotUsed(Option<String>),
}

/// Whether the options ask for exactly what a spare holds: a plain checkout of one commit,
/// the way left to cowtree.
fn plain(input: &Input<'_>) -> bool {
    let opts = input.opts;
    input.commit.is_some()
        && opts.checkout
        && !matches!(opts.branch, BranchChoice::Orphan(_))
        && !opts.with_changes
        && opts.sparse.is_none()
        && !opts.verify
        && opts.method == MethodChoice::Auto
        && input.facts.sparse.is_none()
}

/// Claims a spare of the repository's pool for `input`, when one fits; see [`crate::pool`].
/// A spare found changed is removed and the next one tried.
pub(crate) fn claim<'p>(input: &Input<'p>) -> Result<Claim<'p>> {
    let Some(commit) = input.commit.filter(|_| plain(input)) else {
        return Ok(Claim::NotUsed(None));
    };
    let pool = Pool::of(input.repo.common_dir());
    // The pool is an optimisation: nothing about it fails an `add`, which then goes on the
    // normal way and says why in its report.
    match try_claim(input, &pool, commit) {
        Ok(claim) => Ok(claim),
        Err(Error::Interrupted) => Err(Error::Interrupted),
        Err(e) => Ok(Claim::NotUsed(Some(e.to_string()))),
    }
}

fn try_claim<'p>(input: &Input<'p>, pool: &Pool, commit: gix::ObjectId) -> Result<Claim<'p>> {
    let Some(settings) = pool.settings()? else {
        return Ok(Claim::NotUsed(None));
    };
    pool.set_wanted(commit);
    let mut spares: Vec<Spare> = pool.spares()?;
    if spares.is_empty() {
        return Ok(Claim::NotUsed(Some("the pool has no spare".into())));
    }
    let fp = match fingerprint(input.repo, input.umask)? {
        Ok(fp) => fp,
        Err(why) => return Ok(Claim::NotUsed(Some(why))),
    };
    let spares_path = pool.spares_dir();
    let spares_dir = Dir::open(&spares_path).map_err(Error::io("open", &spares_path))?;
    let (mine, theirs) = (
        input
            .parent
            .stat_self()
            .map_err(Error::io("stat", input.parent_path))?,
        spares_dir
            .stat_self()
            .map_err(Error::io("stat", &spares_path))?,
    );
    if mine.st_dev != theirs.st_dev {
        return Ok(Claim::NotUsed(Some(format!(
            "the pool ({}) is on another filesystem than {}",
            spares_path.display(),
            input.parent_path.display()
        ))));
    }
    if mine.st_mode & 0o2000 != 0 && mine.st_gid != theirs.st_gid {
        // The per-file way gives DST the set-group-ID parent's group; a spare has the pool's.
        return Ok(Claim::NotUsed(Some(format!(
            "{} is set-group-ID, with another group than the pool's",
            input.parent_path.display()
        ))));
    }
    spares.retain(|s| {
        s.fingerprint == fp && s.age() <= settings.max_age && !(input.opts.strict && s.copied)
    });
    // Those at the target first (nothing to move), then the newest.
    spares.sort_by_key(|s| (s.commit != commit, std::cmp::Reverse(s.made)));
    let mut why = "its spares were made under another configuration, or are too old".to_owned();
    for spare in spares {
        let claimed = OsString::from(format!(
            "{CLAIMED}{}.{}",
            Stamp::current().token(),
            spare.id
        ));
        match spares_dir.rename_noreplace(OsStr::new(&spare.id), &spares_dir, &claimed) {
            Ok(()) => {}
            // Another claim took it first.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(Error::io("rename", spares_path.join(&spare.id))(e)),
        }
        let taken = take(input, pool, &spares_dir, &spares_path, &claimed, &spare);
        let _ = spares_dir.remove_tree(&claimed);
        match taken? {
            Taken::Made(staging, made) => return Ok(Claim::Made(staging, made)),
            Taken::Unusable(what) => why = format!("spare {} {what}, and was removed", spare.id),
        }
    }
    Ok(Claim::NotUsed(Some(why)))
}

/// What [`take`] did with a claimed spare.
enum Taken<'p> {
    /// It is the staging directory now.
    Made(Staging<'p>, Box<Made>),
    /// It could not be used (nothing was moved): why.
    Unusable(String),
}

/// Proves the claimed spare `claimed` untouched and renames its tree to the staging name; its
/// index becomes DST's, the spare moved to the target first where it holds another commit
/// ([`advance`]). Until the rename, nothing fails: a spare that cannot be read, proven or
/// moved is [`Taken::Unusable`].
fn take<'p>(
    input: &Input<'p>,
    pool: &Pool,
    spares_dir: &Dir,
    spares_path: &Path,
    claimed: &OsStr,
    spare: &Spare,
) -> Result<Taken<'p>> {
    let path = spares_path.join(claimed);
    let template = pool.template_path(spare.commit, &spare.fingerprint);
    let kind = input.repo.object_hash();
    let read = || -> Result<(Located, Vec<u8>, Dir, bool)> {
        let stats =
            std::fs::read(path.join("stat")).map_err(Error::io("read", path.join("stat")))?;
        let stat = super::StatFile::parse(&stats).map_err(|why| Error::Pool {
            path: path.join("stat"),
            message: why,
        })?;
        let located = stat
            .read_located(&template, kind)
            .map_err(Error::io("read", &template))?;
        crate::steps::mark("read the spare's index");
        let dirs =
            std::fs::read(path.join("dirs")).map_err(Error::io("read", path.join("dirs")))?;
        let claimed_dir = spares_dir
            .open_dir(claimed)
            .map_err(Error::io("open", &path))?;
        let tree = claimed_dir
            .open_dir(OsStr::new("tree"))
            .map_err(Error::io("open", path.join("tree")))?;
        let ok = untouched(&tree, &located, &stat, &dirs);
        crate::steps::mark("lstat its directories");
        Ok((located, stats, claimed_dir, ok))
    };
    let (mut located, stats, claimed_dir) = match read() {
        Ok((located, stats, dir, true)) => (located, stats, dir),
        Ok((.., false)) => return Ok(Taken::Unusable("was changed since it was made".into())),
        Err(e) => return Ok(Taken::Unusable(format!("could not be read ({e})"))),
    };
    let Ok(stat) = super::StatFile::parse(&stats) else {
        return Ok(Taken::Unusable("could not be read again".into()));
    };
    crate::steps::mark("prove the spare");
    // At another commit: moved as git checkout moves a worktree, on its decoded index.
    let plan = match input.commit {
        Some(c) if c != spare.commit => {
            let decoded = stat.read_template(&template, kind).and_then(|mut index| {
                super::apply_stats(&mut index, &stat).map_err(std::io::Error::other)?;
                Ok(index)
            });
            let index = match decoded {
                Ok(index) => index,
                Err(e) => return Ok(Taken::Unusable(format!("could not be read ({e})"))),
            };
            match advance::plan(input, &index)? {
                Ok(plan) => Some((index, plan)),
                Err(why) => {
                    return Ok(Taken::Unusable(format!(
                        "cannot be moved from {} to {c}: {why}",
                        spare.commit
                    )));
                }
            }
        }
        _ => None,
    };
    let reserved = Staging::reserve(input.parent, input.staging_name.to_owned())
        .map_err(Error::io("reserve", input.staging_path))?;
    match unless_stopping(|| {
        claimed_dir.rename(OsStr::new("tree"), input.parent, input.staging_name)
    }) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => return Err(Error::Interrupted),
        // Another mount of the same filesystem (a bind mount): a rename cannot cross it.
        Err(e) if e.raw_os_error() == Some(libc::EXDEV) => {
            return Ok(Taken::Unusable(format!(
                "cannot be renamed to {} (another mount)",
                input.staging_path.display()
            )));
        }
        Err(e) => return Err(Error::io("rename into", input.staging_path)(e)),
    }
    let staging = reserved
        .adopt()
        .map_err(Error::io("open", input.staging_path))?;
    let mut made = Made {
        method: Method::Spare,
        counts: crate::AddCounts {
            entries: (0..located.len())
                .filter(|&i| located.kind(i) != EntryKind::Submodule)
                .count() as u64,
            ..Default::default()
        },
        submodules: (0..located.len())
            .filter(|&i| located.kind(i) == EntryKind::Submodule)
            .map(|i| String::from_utf8_lossy(located.path(i)).into_owned())
            .collect(),
        ..Made::default()
    };
    match plan {
        Some((index, plan)) => {
            made.index_tree = index.tree().cloned();
            advance::apply(input, &staging.dir, &index, plan, &mut made)?;
        }
        None => {
            // The template's bytes with the spare's stat data: DST's index as the per-file
            // way would encode it, without decoding and encoding it again.
            for i in 0..located.len() {
                located.set_stat(i, &stat.stat(i));
            }
            made.encoded = Some(located);
        }
    }
    bring_ignored(input, &staging, &mut made)?;
    Ok(Taken::Made(staging, Box::new(made)))
}

/// The ignored entries the options select, cloned from SRC as they are now, as the per-file
/// way brings them.
fn bring_ignored(input: &Input<'_>, staging: &Staging<'_>, made: &mut Made) -> Result<()> {
    let i = &input.opts.ignored;
    let include = input
        .current_root
        .is_none_or(|r| std::fs::symlink_metadata(r.join(".worktreeinclude")).is_ok());
    if !(i.all || !i.patterns.is_empty() || (i.worktreeinclude && include)) {
        return Ok(());
    }
    let prep = Prepared::new(input)?;
    let selection = prep.selection(input.opts);
    let Some(src_root) = prep.src_root.as_deref().filter(|_| selection.takes_any()) else {
        return Ok(());
    };
    let report = crate::ignored::copy_ignored(
        &prep.src_repo.to_thread_local(),
        src_root,
        &prep.src_index,
        &prep.target,
        &staging.dir,
        input.staging_path,
        &selection,
        input.opts.strict,
    )?;
    made.fallback = report.fallback.clone();
    made.src = prep.src_root.clone();
    made.ignored = Some(report);
    Ok(())
}

/// Whether every file of `tree` has the stat data `index` recorded for it, and every
/// directory the stat data `dirs` recorded ([`dir_records`]): nothing was written, added,
/// removed, renamed or had its mode changed since (each changes a ctime or an mtime).
fn untouched(tree: &Dir, index: &Located, stat: &super::StatFile<'_>, dirs: &[u8]) -> bool {
    // Contiguous runs of entries, a few per thread; each run walks its directories as the
    // sorted paths go (a directory opened once, by name, from its parent) and looks each
    // entry up by name in it: about one `fstatat` per file, as the floor probe counts.
    let len = index.len();
    let run = len.div_ceil(rayon::current_num_threads().max(1) * 4).max(1);
    let starts: Vec<usize> = (0..len).step_by(run).collect();
    let files = starts.par_iter().all(|&from| {
        let mut walk = Walk::new(tree);
        let mut name = Vec::with_capacity(256);
        (from..(from + run).min(len)).all(|i| {
            let want = match index.kind(i) {
                // A submodule: an empty directory, recorded with the directories.
                EntryKind::Submodule => return true,
                EntryKind::File => FileType::RegularFile,
                EntryKind::Symlink => FileType::Symlink,
                EntryKind::Other => return false,
            };
            let path = index.path(i);
            let (dir, base) = match path.iter().rposition(|b| *b == b'/') {
                Some(i) => (&path[..i], &path[i + 1..]),
                None => (&path[..0], path),
            };
            let Some(d) = walk.at(dir) else { return false };
            name.clear();
            name.extend_from_slice(base);
            name.push(0);
            let Ok(c) = std::ffi::CStr::from_bytes_with_nul(&name) else {
                return false;
            };
            let Ok(st) = rustix::fs::statat(d, c, AtFlags::SYMLINK_NOFOLLOW) else {
                return false;
            };
            FileType::from_raw_mode(st.st_mode) == want
                && crate::trust::stat_of(&st) == stat.stat(i)
        })
    });
    crate::steps::mark("lstat the spare's files");
    files
        && dirs
            .split(|b| *b == 0)
            .filter(|r| !r.is_empty())
            .collect::<Vec<_>>()
            .par_iter()
            .all(|r| {
                let Some((stat, path)) = parse_dir_record(r) else {
                    return false;
                };
                let name = if path.is_empty() {
                    OsStr::new(".")
                } else {
                    OsStr::from_bytes(path)
                };
                rustix::fs::statat(tree, name, AtFlags::SYMLINK_NOFOLLOW).is_ok_and(|st| {
                    FileType::from_raw_mode(st.st_mode) == FileType::Directory
                        && dir_stat(&st) == stat
                })
            })
}

/// How [`Walk`] opens a directory: only to look names up in it (`O_PATH` where there is one).
#[cfg(target_os = "linux")]
const LOOKUP: rustix::fs::OFlags = rustix::fs::OFlags::PATH;
#[cfg(not(target_os = "linux"))]
const LOOKUP: rustix::fs::OFlags = rustix::fs::OFlags::RDONLY;

/// The directories of a run of sorted paths, open along the current one: each opened once,
/// by name from its parent (`O_PATH`, never through a symlink).
struct Walk<'a> {
    root: &'a Dir,
    /// The directory open at the top of `open`, relative to the root.
    path: Vec<u8>,
    /// For each open directory below the root: the length of `path` it ends at, and it.
    open: Vec<(usize, std::os::fd::OwnedFd)>,
}

impl<'a> Walk<'a> {
    fn new(root: &'a Dir) -> Walk<'a> {
        Walk {
            root,
            path: Vec::new(),
            open: Vec::new(),
        }
    }

    /// The directory `dir` (relative to the root; empty: the root), opening what it must.
    fn at(&mut self, dir: &[u8]) -> Option<std::os::fd::BorrowedFd<'_>> {
        use std::os::fd::AsFd;
        let within = |path: &[u8]| {
            dir.starts_with(path)
                && (path.is_empty() || dir.len() == path.len() || dir[path.len()] == b'/')
        };
        while !within(&self.path) {
            self.open.pop();
            let len = self.open.last().map_or(0, |(l, _)| *l);
            self.path.truncate(len);
        }
        while self.path.len() < dir.len() {
            let from = if self.path.is_empty() {
                0
            } else {
                self.path.len() + 1
            };
            let end = dir[from..]
                .iter()
                .position(|b| *b == b'/')
                .map_or(dir.len(), |i| from + i);
            let parent = self
                .open
                .last()
                .map_or(self.root.as_fd(), |(_, fd)| fd.as_fd());
            let fd = rustix::fs::openat(
                parent,
                OsStr::from_bytes(&dir[from..end]),
                LOOKUP
                    | rustix::fs::OFlags::DIRECTORY
                    | rustix::fs::OFlags::NOFOLLOW
                    | rustix::fs::OFlags::CLOEXEC,
                rustix::fs::Mode::empty(),
            )
            .ok()?;
            self.path.clear();
            self.path.extend_from_slice(&dir[..end]);
            self.open.push((end, fd));
        }
        Some(
            self.open
                .last()
                .map_or(self.root.as_fd(), |(_, fd)| fd.as_fd()),
        )
    }
}

/// What is recorded of a directory: inode, mtime and ctime, to the nanosecond.
type DirStat = (u64, i64, i64, i64, i64);

fn dir_stat(st: &rustix::fs::Stat) -> DirStat {
    (
        st.st_ino,
        st.st_mtime,
        st.st_mtime_nsec as i64,
        st.st_ctime,
        st.st_ctime_nsec as i64,
    )
}

/// One record of the `dirs` file: `INO MTIME MTIME_NS CTIME CTIME_NS PATH` (PATH relative to
/// the tree, empty for the tree itself), NUL-terminated.
fn parse_dir_record(r: &[u8]) -> Option<(DirStat, &[u8])> {
    let mut parts = r.splitn(6, |b| *b == b' ');
    let mut num = || -> Option<&[u8]> { parts.next() };
    let n = |b: Option<&[u8]>| -> Option<i64> { std::str::from_utf8(b?).ok()?.parse().ok() };
    let ino = n(num())? as u64;
    let (ms, mns, cs, cns) = (n(num())?, n(num())?, n(num())?, n(num())?);
    let path = num()?;
    Some(((ino, ms, mns, cs, cns), path))
}

/// The `dirs` file of a spare whose tree is `tree` and index `index`: every directory that
/// holds a tracked entry, every submodule's directory, and the tree itself.
pub(super) fn dir_records(tree: &Dir, index: &gix::index::File) -> std::io::Result<Vec<u8>> {
    let mut dirs: std::collections::BTreeSet<&[u8]> = std::collections::BTreeSet::new();
    dirs.insert(b"");
    let backing = index.path_backing();
    for e in index.entries() {
        let path: &[u8] = e.path_in(backing);
        if e.mode == gix::index::entry::Mode::COMMIT {
            dirs.insert(path);
        }
        let mut end = path.len();
        while let Some(slash) = path[..end].iter().rposition(|b| *b == b'/') {
            if !dirs.insert(&path[..slash]) {
                break;
            }
            end = slash;
        }
    }
    let mut out = Vec::with_capacity(dirs.len() * 64);
    for d in dirs {
        let name = if d.is_empty() {
            OsStr::new(".")
        } else {
            OsStr::from_bytes(d)
        };
        let st = rustix::fs::statat(tree, name, AtFlags::SYMLINK_NOFOLLOW)?;
        let (ino, ms, mns, cs, cns) = dir_stat(&st);
        out.extend_from_slice(format!("{ino} {ms} {mns} {cs} {cns} ").as_bytes());
        out.extend_from_slice(d);
        out.push(0);
    }
    Ok(out)
}
