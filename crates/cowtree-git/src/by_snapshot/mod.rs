//! DST's tree by one snapshot of SRC's worktree, made into exactly what the per-file way
//! ([`crate::build`], [`crate::ignored`]) makes.
//!
//! Where SRC's worktree is the root of a btrfs subvolume on DST's filesystem and the caller may
//! snapshot it (the rules of [`cowtree_fs::whole_tree::preflight`]), the staging directory is a
//! writable snapshot of it: every file, with its inode number, size and times. The snapshot is
//! then changed into the per-file result:
//! - SRC's `.git` (the repository, or a linked worktree's file) is removed (DST's own `.git`
//!   file is written after, as for the per-file way);
//! - every entry COMMIT-ISH does not track is removed unless the per-file way would bring it
//!   ([`crate::keep`]: ignored entries that `--ignored` or `.worktreeinclude` select), and in
//!   what is kept, nested repositories and special files;
//! - every tracked file SRC's index does not prove clean ([`crate::trust`]: racy, stat data
//!   changed, flags), whose blob COMMIT-ISH changes, or that git's checkout filters would
//!   change, is rewritten from the object database; every tracked file SRC lacks is written;
//!   submodules are emptied;
//! - permission bits are made those the per-file way gives (COMMIT-ISH's mode less the umask
//!   for tracked files and directories).
//!
//! DST's index is the target tree with, for every file kept, SRC's stat data (the snapshot
//! keeps inode numbers, sizes, mtimes and ctimes; only `st_dev` differs, and DST's own is
//! recorded), and for every file written, DST's: git trusts every entry, so the first `git
//! status` in DST reads no file.
//!
//! # Reading SRC instead of the snapshot
//!
//! Looking up every file of a new snapshot is slow (its inodes are not in memory yet), so the
//! files are `lstat`ed in SRC, after the snapshot, and their verdicts applied to the snapshot.
//! That is sound where SRC's directories did not change between a first look before the
//! snapshot and a second after it: a directory whose inode number and ctime are the same both
//! times, and whose ctime is older than the first look by more than a second (so a change in
//! the same clock tick cannot hide), was not renamed meanwhile, so each path through it named
//! the same file in the snapshot as in SRC; and a file whose ctime did not change since SRC's
//! index recorded it was not written since. A directory whose entries did not change either
//! (its mtime and size too) lists in SRC what it listed in the snapshot. On btrfs a directory's
//! size is twice the length of its entries' names, so a directory holding exactly the tracked
//! names is known without listing it. Every directory that fails a test is read in the
//! snapshot itself instead.
//!
//! # Holes
//!
//! A snapshot holds an empty directory where a subvolume is nested below SRC, or a filesystem
//! is mounted. The snapshot way is taken only when the per-file result holds nothing there
//! (a nested worktree, an untracked or unselected directory); else per file, with the reason.
//!
//! The parts: `tree` (the target tree's directories and what SRC has there), `survey`
//! (before the snapshot: the cost rule's count and the holes), `apply` (after it: the
//! snapshot made into the per-file result), `remove` (removing entries, in parallel).

mod anew;
mod apply;
mod decide;
mod remove;
mod survey;
mod tree;

use std::collections::HashSet;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use cowtree_fs::dir::{Dir, DirEntry};
use cowtree_fs::staging::{self, Staging};
use cowtree_fs::subvolume::At;
use cowtree_fs::whole_tree::{self, Holes, Preflight, Request, WholeTree};
use gix::bstr::{BStr, BString, ByteSlice};
use rustix::fs::{FileType, Stat};

use crate::error::{Error, Result};
use crate::keep::{Rules, has_dot_git};
use crate::way::{Input, Made, MethodChoice, PerFileReason, Prepared};

use self::apply::Apply;
use self::survey::Survey;
use self::tree::Tree;

/// What [`attempt`] did.
pub(crate) enum Attempt<'p> {
    /// The staging directory is a snapshot made into DST's tree.
    Made(Staging<'p>, Box<Made>),
    /// Nothing was made; the per-file way makes the tree, for this reason.
    NotUsed(PerFileReason),
}

/// With `COWTREE_TIMING` set, where the time went, on stderr at the end.
pub(super) struct Timing {
    on: bool,
    start: std::time::Instant,
    last: std::time::Instant,
    parts: Vec<(&'static str, std::time::Duration)>,
}

impl Timing {
    fn new() -> Timing {
        let now = std::time::Instant::now();
        Timing {
            on: std::env::var_os("COWTREE_TIMING").is_some(),
            start: now,
            last: now,
            parts: Vec::new(),
        }
    }

    pub(super) fn mark(&mut self, what: &'static str) {
        if self.on {
            let now = std::time::Instant::now();
            self.parts.push((what, now - self.last));
            self.last = now;
        }
    }

    fn print(&self, tree: &Tree) {
        if self.on {
            let in_src = tree.dirs.iter().filter(|d| d.same_list).count();
            eprintln!(
                "timing: snapshot way: target directories read in SRC {in_src}, in the snapshot {}",
                tree.dirs.len() - in_src
            );
            let parts: Vec<String> = self
                .parts
                .iter()
                .map(|(w, d)| format!("{w} {:.1} ms", d.as_secs_f64() * 1e3))
                .collect();
            eprintln!(
                "timing: snapshot way: {}; {:.1} ms",
                parts.join(", "),
                self.start.elapsed().as_secs_f64() * 1e3
            );
        }
    }
}

/// Makes DST's tree by snapshot where SRC and the cost rule allow it (see the module doc).
pub(crate) fn attempt<'p>(input: &Input<'p>, prep: &Prepared) -> Result<Attempt<'p>> {
    let opts = input.opts;
    let mut timing = Timing::new();
    if opts.method == MethodChoice::PerFile {
        return Ok(Attempt::NotUsed(PerFileReason::Asked));
    }
    if input.facts.sparse.is_some() {
        return Ok(Attempt::NotUsed(PerFileReason::Sparse));
    }
    let Some(src_root) = prep.src_root.as_deref() else {
        return Ok(Attempt::NotUsed(PerFileReason::NoSource));
    };
    let src_dir = Dir::open(src_root).map_err(Error::io("open", src_root))?;
    let req = Request {
        src: At::new(&src_dir, src_root),
        parent: At::new(input.parent, input.parent_path),
        name: input.staging_name,
        read_only: false,
    };
    let holes = match whole_tree::preflight(&req).map_err(subvolume_error(src_root))? {
        Preflight::NotUsed(n) => return Ok(Attempt::NotUsed(PerFileReason::Seam(n))),
        Preflight::Ready(h) => h,
    };
    timing.mark("preflight");
    let src_repo = prep.src_repo.to_thread_local();
    let sel = prep.selection(opts);
    let mut rules = Rules::new(&src_repo, src_root, &prep.src_index, &prep.target, &sel)?;
    timing.mark("rules");
    let mut tree = Tree::new(&prep.target);
    timing.mark("tree");
    let t0 = now_ns();
    tree.stat_all_in(&src_dir, src_root, |d, st| d.t0 = st)?;
    timing.mark("first look");
    let owner = Owner::of_caller();
    if let Some(reason) = owner.refusal(input, &tree)? {
        return Ok(Attempt::NotUsed(reason));
    }
    let counting = opts.method == MethodChoice::Auto;
    let create = tree.creates();
    let mut survey = Survey {
        remove: 0,
        limit: crate::cost::limit(create),
        counting,
        holes: hole_set(&holes),
    };
    if let Some(reason) = survey.run(&mut tree, &mut rules, &src_dir, src_root, &holes)? {
        return Ok(Attempt::NotUsed(reason));
    }
    timing.mark("survey");
    if counting && !crate::cost::snapshot_pays(survey.remove, create) {
        return Ok(Attempt::NotUsed(PerFileReason::Cost {
            remove: survey.remove,
            create,
        }));
    }

    // Registered for undo before it is made (see `cowtree_fs::undo`).
    let reserved = Staging::reserve(input.parent, input.staging_name.to_owned())
        .map_err(Error::io("register", input.staging_path))?;
    let made = staging::unless_stopping(|| {
        whole_tree::snapshot_prepared(&req).map_err(std::io::Error::from)
    })
    .map_err(|e| {
        if e.kind() == std::io::ErrorKind::Interrupted {
            Error::Interrupted
        } else {
            Error::io("snapshot into", input.staging_path)(e)
        }
    })?;
    match made {
        WholeTree::Done(_) => {}
        WholeTree::NotUsed(n) => return Ok(Attempt::NotUsed(PerFileReason::Seam(n))),
    }
    // On error the reservation's undo removes what was made.
    let staging = reserved
        .adopt()
        .map_err(Error::io("open", input.staging_path))?;
    timing.mark("snapshot");
    let made = Apply {
        input,
        prep,
        src_root,
        src_dir: &src_dir,
        staging: &staging.dir,
        t0,
        holes: survey.holes,
        owner,
    }
    .run(&mut tree, &mut rules, &mut timing)?;
    let made = Made {
        src: Some(src_root.to_owned()),
        ..made
    };
    timing.print(&tree);
    Ok(Attempt::Made(staging, Box::new(made)))
}

/// The owner and group the per-file way gives every entry it makes: the process's effective
/// uid and gid (DST's parent is not set-group-ID, [`Owner::refusal`]).
#[derive(Debug, Clone, Copy)]
pub(super) struct Owner {
    pub(super) uid: u32,
    pub(super) gid: u32,
}

impl Owner {
    fn of_caller() -> Owner {
        Owner {
            uid: rustix::process::geteuid().as_raw(),
            gid: rustix::process::getegid().as_raw(),
        }
    }

    /// Whether `st` has this owner and group.
    pub(super) fn owns(&self, st: &Stat) -> bool {
        st.st_uid == self.uid && st.st_gid == self.gid
    }

    /// Why the snapshot way cannot give the per-file way's owners: DST's parent is
    /// set-group-ID (the per-file way's entries get its group and directories its bit), or a
    /// directory of the target tree in SRC (SRC's root included) belongs to another user or
    /// group (a snapshot keeps owners; directories cannot be given away unprivileged). A
    /// tracked file of another owner is written from objects instead ([`apply`]).
    fn refusal(&self, input: &Input<'_>, tree: &Tree) -> Result<Option<PerFileReason>> {
        let parent = input
            .parent
            .stat_self()
            .map_err(Error::io("stat", input.parent_path))?;
        if cowtree_fs::sys::stat_mode(&parent) & 0o2000 != 0 {
            return Ok(Some(PerFileReason::Owner {
                path: input.parent_path.to_owned(),
                uid: parent.st_uid,
                gid: parent.st_gid,
            }));
        }
        Ok(tree
            .dirs
            .iter()
            .find_map(|d| {
                d.t0.filter(|st| is_dir(st) && !self.owns(st))
                    .map(|st| (d, st))
            })
            .map(|(d, st)| PerFileReason::Owner {
                path: path_of(d.rel.as_ref()).to_owned(),
                uid: st.st_uid,
                gid: st.st_gid,
            }))
    }
}

fn subvolume_error(
    path: &Path,
) -> impl FnOnce(cowtree_fs::subvolume::SubvolumeError) -> Error + '_ {
    move |e| Error::io("look at the subvolume", path)(e.into())
}

fn hole_set(holes: &Holes) -> HashSet<BString> {
    holes
        .paths()
        .map(|p| BString::from(p.as_os_str().as_bytes()))
        .collect()
}

/// Nanoseconds since the epoch.
fn now_ns() -> i128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i128)
}

fn ctime_ns(st: &Stat) -> i128 {
    st.st_ctime as i128 * 1_000_000_000 + st.st_ctime_nsec as i128
}

fn is_dir(st: &Stat) -> bool {
    FileType::from_raw_mode(st.st_mode) == FileType::Directory
}

fn os(b: &[u8]) -> &OsStr {
    OsStr::from_bytes(b)
}

fn path_of(b: &BStr) -> &Path {
    Path::new(os(b))
}

fn join(prefix: &BStr, name: &[u8]) -> BString {
    let mut p = BString::from(prefix.to_vec());
    if !p.is_empty() {
        p.push(b'/');
    }
    p.extend_from_slice(name);
    p
}

fn split(path: &BStr) -> (&BStr, &[u8]) {
    match path.rfind_byte(b'/') {
        Some(i) => (path[..i].as_bstr(), &path[i + 1..]),
        None => (b"".as_bstr(), path.as_bytes()),
    }
}

fn file_type_of(dir: &Dir, e: &DirEntry) -> FileType {
    if e.file_type != FileType::Unknown {
        return e.file_type;
    }
    dir.stat(&e.name)
        .map(|st| FileType::from_raw_mode(st.st_mode))
        .unwrap_or(FileType::Unknown)
}

/// Opens the directory `rel` below `root` (`root` itself for the empty path), never through
/// a symlink.
fn open_in(root: &Dir, rel: &BStr) -> std::io::Result<Dir> {
    if rel.is_empty() {
        root.try_clone()
    } else {
        root.open_dir_deep(path_of(rel))
    }
}

/// The error for a hole (a nested subvolume) found where the new worktree must hold content,
/// after the survey found it where it must not: SRC changed during the run.
fn changed(src_root: &Path, rel: &BStr) -> Error {
    Error::Io {
        op: "make the worktree from a snapshot of",
        path: src_root.join(path_of(rel)),
        source: std::io::Error::other(
            "a subvolume nested there changed during the run; run again (or use --per-file)",
        ),
    }
}
