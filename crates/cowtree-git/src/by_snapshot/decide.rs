//! Each tracked entry of the snapshot decided: kept as the snapshot holds it, kept after its
//! copy hashes to the target blob, carried with `--with-changes`, made anew for its owner, or
//! written from the object database, as the per-file way decides it ([`crate::build`],
//! [`crate::trust`]).

use std::path::Path;

use gix::index::entry::{Mode, Stat as IndexStat};
use rustix::fs::{FileType, Stat};

use super::Owner;
use super::path_of;
use crate::error::{Error, Result};
use crate::trust::{Kind, SrcFile, Verdict, judge};
use crate::way::Prepared;

/// What one tracked entry needs.
#[derive(Debug, Clone, Copy)]
pub(super) enum Act {
    /// Kept as the snapshot holds it: its stat data, and permission bits to set.
    Keep { st: Lstat, chmod: Option<u32> },
    /// Written from the object database, after what is there is removed.
    Write,
    /// Kept if the snapshot's copy hashes to the target blob (SRC's stat data does not prove
    /// it, or the configuration asks for a hash): `chmod` as for [`Act::Keep`]. Else written
    /// from objects.
    Hash { st: Lstat, chmod: Option<u32> },
    /// `--with-changes`: SRC's file as it is, or nothing; `chmod`: permission bits to set.
    Carry { chmod: Option<u32> },
    /// A clean file or symlink of another owner or group: made anew as the per-file way makes
    /// it (a file reflinked from the snapshot's, with `mode`; a symlink from its blob), with
    /// the times of `st`.
    KeepAnew { st: AnewStat, mode: u32 },
    /// `--with-changes`, for a file or symlink of another owner or group: made anew from
    /// SRC's (as the per-file way makes it), after what is there is removed.
    CarryAnew,
    /// A submodule: an empty directory, after what is there is removed.
    Submodule,
}

/// What keeping an entry uses of its `lstat`: a third of a `struct stat`, so that the acts of
/// 78,000 entries, decided at once, do not fill (and fault in) tens of megabytes.
#[derive(Debug, Clone, Copy)]
pub(super) struct Lstat {
    /// Its stat data as the index records it.
    pub(super) index: IndexStat,
    pub(super) size: u64,
    /// It has other names (hard links).
    pub(super) linked: bool,
}

impl Lstat {
    pub(super) fn of(st: &Stat) -> Lstat {
        Lstat {
            index: crate::trust::stat_of(st),
            size: st.st_size as u64,
            linked: st.st_nlink > 1,
        }
    }
}

/// What making an entry anew uses of its `lstat`: its times, its size, whether a symlink.
#[derive(Debug, Clone, Copy)]
pub(super) struct AnewStat {
    pub(super) atime: rustix::fs::Timespec,
    pub(super) mtime: rustix::fs::Timespec,
    pub(super) size: u64,
    pub(super) symlink: bool,
}

impl AnewStat {
    fn of(st: &Stat) -> AnewStat {
        let (atime, mtime) = cowtree_fs::sys::stat_times(st);
        AnewStat {
            atime,
            mtime,
            size: st.st_size as u64,
            symlink: FileType::from_raw_mode(st.st_mode) == FileType::Symlink,
        }
    }
}

/// What is kept of a tracked entry once decided: whether something is in its place, and
/// whether git's checkout conversion changes it.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Seen {
    pub(super) present: bool,
    pub(super) filtered: bool,
}

/// One tracked entry as looked at: its `lstat` (`None`: nothing there), whether git's
/// checkout conversion changes it, SRC's index entry at its path, and the blob's size where
/// the verdict needs it.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Looked {
    pub(super) st: Option<Stat>,
    pub(super) filtered: bool,
    /// Its attributes name a filter driver that is not configured: hashed, never trusted.
    pub(super) unconfigured_filter: bool,
    pub(super) src: Option<usize>,
    pub(super) size: Option<u64>,
}

/// A tracked entry's act, and whether what is in its place goes first.
pub(super) type Decision = (Act, bool);

/// What became of an [`Act::Hash`] entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Hashed {
    /// Not hashed (another act).
    No,
    /// The copy is the blob: kept.
    Kept,
    /// Another blob: written from objects.
    Rejected,
}

/// One entry written (or hashed): its index in the target, DST's stat data, bytes written,
/// and for [`Act::Hash`] what became of it.
pub(super) struct Written {
    pub(super) i: usize,
    pub(super) stat: Option<IndexStat>,
    pub(super) bytes: u64,
    pub(super) hashed: Hashed,
}

pub(super) fn written(i: usize, stat: Option<IndexStat>, bytes: u64) -> Written {
    Written {
        i,
        stat,
        bytes,
        hashed: Hashed::No,
    }
}

/// What deciding a tracked entry needs (all of it shared by the workers).
pub(super) struct DecideCtx<'a> {
    pub(super) prep: &'a Prepared,
    pub(super) umask: u32,
    pub(super) with_changes: bool,
    pub(super) owner: Owner,
    pub(super) staging_path: &'a Path,
}

impl DecideCtx<'_> {
    /// The entry's verdict, as the per-file way's ([`crate::build`]): kept where SRC's index
    /// proves it holds its blob and no filter changes it, hashed where its size is the blob's
    /// and nothing else proves it, carried with `--with-changes` where it may not, else written
    /// from objects; and whether what is in the way is to be removed first.
    pub(super) fn decide(&self, e: &gix::index::Entry, l: &Looked) -> Result<Decision> {
        let prep = self.prep;
        let with_changes = self.with_changes;
        let kind = Kind::of(e.mode);
        let regular_or_link = |s: &Stat| {
            matches!(
                FileType::from_raw_mode(s.st_mode),
                FileType::RegularFile | FileType::Symlink
            )
        };
        let mut remove = false;
        let act = match kind {
            Kind::Submodule => Act::Submodule,
            Kind::Other => {
                let path = e.path_in(prep.target.path_backing());
                return Err(Error::Git {
                    what: "unsupported entry mode in the target tree (sparse index?)",
                    path: self.staging_path.join(path_of(path)),
                    source: format!("{:?}", e.mode).into(),
                });
            }
            Kind::Symlink if !prep.filters.symlinks() => Act::Write,
            Kind::File | Kind::Symlink => {
                let src_entry = l.src.map(|j| &prep.src_index.entries()[j]);
                let file = l.st.as_ref().map(SrcFile::of);
                let mut evidence = prep.evidence;
                if l.unconfigured_filter {
                    evidence.risk = crate::trust::Risk::Any;
                }
                let verdict = judge(src_entry, &e.id, kind, &evidence, file, || l.size);
                let want = if e.mode == Mode::FILE_EXECUTABLE {
                    0o777
                } else {
                    0o666
                } & !self.umask;
                let keep_chmod = |st: &Stat| {
                    let bits = cowtree_fs::sys::stat_mode(st) & 0o7777;
                    (kind == Kind::File && bits != want).then_some(want)
                };
                // The per-file way carries the permission bits, not set-ID bits.
                let carry_chmod = |st: &Stat| {
                    let bits = cowtree_fs::sys::stat_mode(st) & 0o7777;
                    let file = FileType::from_raw_mode(st.st_mode) == FileType::RegularFile;
                    (file && bits & !0o777 != 0).then_some(bits & 0o777)
                };
                let unproven = matches!(verdict, Verdict::Unproven)
                    || (verdict == Verdict::Hash && l.filtered);
                match (verdict, l.st) {
                    // A file git converts on checkout is written through the conversion.
                    (Verdict::Clean, Some(_)) if l.filtered => Act::Write,
                    // A file of another owner or group is made anew, the caller's, as the
                    // per-file way's own.
                    (Verdict::Clean, Some(st)) if !self.owner.owns(&st) => Act::KeepAnew {
                        st: AnewStat::of(&st),
                        mode: want,
                    },
                    (Verdict::Clean, Some(st)) => Act::Keep {
                        st: Lstat::of(&st),
                        chmod: keep_chmod(&st),
                    },
                    (Verdict::Hash, Some(st))
                        if !l.filtered && !with_changes && self.owner.owns(&st) =>
                    {
                        Act::Hash {
                            st: Lstat::of(&st),
                            chmod: keep_chmod(&st),
                        }
                    }
                    (Verdict::Hash, Some(_)) if !l.filtered && !with_changes => Act::Write,
                    (_, Some(st))
                        if (unproven || verdict == Verdict::Hash)
                            && with_changes
                            && regular_or_link(&st)
                            && !self.owner.owns(&st) =>
                    {
                        remove = true;
                        Act::CarryAnew
                    }
                    (_, Some(st))
                        if (unproven || verdict == Verdict::Hash)
                            && with_changes
                            && regular_or_link(&st) =>
                    {
                        Act::Carry {
                            chmod: carry_chmod(&st),
                        }
                    }
                    (_, st) if (unproven || verdict == Verdict::Hash) && with_changes => {
                        remove = st.is_some();
                        Act::Carry { chmod: None }
                    }
                    _ => Act::Write,
                }
            }
        };
        if matches!(act, Act::Write | Act::Submodule) && l.st.is_some() {
            remove = true;
        }
        Ok((act, remove))
    }
}
