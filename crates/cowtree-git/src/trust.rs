//! When SRC's file may be reused for a target entry, and on what evidence.
//!
//! git trusts a worktree file without reading it when the index entry's stat data equals the
//! file's `lstat` and the entry is not racy. That proves the file unchanged since the index
//! recorded it, and git's checkout (or `git add`) recorded it as the entry's blob *after its
//! conversions*: a file checked out with CRLF line endings, an expanded `$Id$`, another
//! encoding or a smudge filter's output is "clean" for git, under the attributes and
//! configuration of that time. So stat data alone says nothing about SRC's bytes. The evidence
//! here, for a target entry whose checkout writes the blob as it is (see [`crate::filters`];
//! an entry whose checkout converts is always written from the object database):
//!
//! 1. SRC's index records the target blob at the path, as the same kind (file or symlink),
//!    unconflicted; else [`Verdict::OtherBlob`].
//! 2. SRC's file is there, of that kind, and its size is the blob's size: every conversion
//!    git applies on checkout but a size-keeping smudge filter changes the size of a blob it
//!    changes at all (CRLF adds a byte per line, `ident` adds the id, encodings re-encode;
//!    see [`Risk`] for the exceptions); else [`Verdict::Unproven`].
//! 3. Reuse without reading ([`Verdict::Clean`]) needs, besides, git's stat proof: the
//!    entry's stat data equal to `lstat` (mtime and ctime with nanoseconds, inode, uid, gid,
//!    size), the entry not racy (its mtime earlier than the index file's, to the nanosecond:
//!    git's rule when built with `USE_NSEC`; a file changed after the index was written has a
//!    later mtime), not smudged (size 0), no flag telling git not to look, and a
//!    configuration with no conversion that could have kept the size ([`Risk`]).
//! 4. Anything else of the blob's size is [`Verdict::Hash`]: taken, then the copy (private to
//!    this run) hashed as a git blob and kept only when the id is the target's.
//!
//! What no cheap evidence catches is documented in docs/git.md; `--verify` turns every
//! [`Verdict::Clean`] into [`Verdict::Hash`].

use cowtree_fs::dir::FileType;
use gix::ObjectId;
use gix::index::Entry;
use gix::index::entry::{Flags, Mode, Stage, Stat};

/// The kind of a tracked entry, as far as cloning is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A regular file (executable or not).
    File,
    /// A symbolic link.
    Symlink,
    /// A submodule (gitlink).
    Submodule,
    /// Anything else (sparse directory entries).
    Other,
}

impl Kind {
    /// The kind of an index entry's mode.
    pub fn of(mode: Mode) -> Kind {
        if mode == Mode::FILE || mode == Mode::FILE_EXECUTABLE {
            Kind::File
        } else if mode == Mode::SYMLINK {
            Kind::Symlink
        } else if mode == Mode::COMMIT {
            Kind::Submodule
        } else {
            Kind::Other
        }
    }

    /// Whether `ft` (from `lstat`) is this kind on disk.
    pub fn matches_file_type(self, ft: FileType) -> bool {
        match self {
            Kind::File => ft.is_file(),
            Kind::Symlink => ft.is_symlink(),
            Kind::Submodule | Kind::Other => false,
        }
    }
}

/// Which conversions in SRC's past the configuration cannot rule out among those that keep a
/// file's size: a smudge filter may write anything of the blob's size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub enum Risk {
    /// No filter driver with a smudge command or process is configured.
    #[default]
    None,
    /// Only git-lfs's own driver: it passes a blob that is not an LFS pointer through as it
    /// is, and writes a pointer's content, which could have the pointer's size. Files whose
    /// blob could be a pointer (under [`LFS_POINTER_MAX`] bytes) are hashed.
    LfsPointers,
    /// Another driver: every file is hashed.
    Any,
}

/// git-lfs pointer files are smaller than this (the LFS specification's limit).
pub const LFS_POINTER_MAX: u64 = 1024;

/// What the verdicts are made with, besides each entry.
#[derive(Debug, Clone, Copy)]
pub struct Evidence {
    /// The mtime of SRC's index file (seconds, nanoseconds).
    pub index_mtime: (i64, u32),
    /// The configuration's size-keeping conversions.
    pub risk: Risk,
    /// `--verify`: hash every file instead of trusting stat data.
    pub verify: bool,
}

/// SRC's file at a path, as `lstat` sees it.
#[derive(Debug, Clone, Copy)]
pub struct SrcFile {
    /// Its type.
    pub file_type: FileType,
    /// Its stat data as the index keeps it (truncated).
    pub stat: Stat,
    /// Its size.
    pub size: u64,
}

impl SrcFile {
    /// From an `lstat` result.
    pub fn of(st: &cowtree_fs::dir::Stat) -> SrcFile {
        SrcFile {
            file_type: cowtree_fs::sys::stat_file_type(st),
            stat: stat_of(st),
            size: cowtree_fs::sys::stat_size(st),
        }
    }
}

/// What SRC's copy of one path is, for a target entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// SRC's file holds the target's bytes: its index entry's stat data proves it unchanged,
    /// its size is the blob's, and no configured conversion could have kept the size. Reused
    /// without reading it.
    Clean,
    /// SRC's file has the blob's size and may hold it: reused only after the copy is hashed
    /// to the target's id.
    Hash,
    /// SRC's index records the target blob, but the file cannot hold it (absent, another
    /// type, another size) or, for a symlink, its stat data does not prove it.
    Unproven,
    /// SRC's index does not record the target blob at this path (or not as this kind).
    OtherBlob,
}

/// The index entry's stat data for an `lstat` result, truncated as git stores it.
#[cfg(unix)]
pub fn stat_of(st: &rustix::fs::Stat) -> Stat {
    use gix::index::entry::stat::Time;
    Stat {
        mtime: Time {
            secs: st.st_mtime as u32,
            nsecs: st.st_mtime_nsec as u32,
        },
        ctime: Time {
            secs: st.st_ctime as u32,
            nsecs: st.st_ctime_nsec as u32,
        },
        dev: st.st_dev as u32,
        ino: st.st_ino as u32,
        uid: st.st_uid,
        gid: st.st_gid,
        size: st.st_size as u32,
    }
}

/// The index entry's stat data for a Windows `stat`, as Git for Windows fills it in
/// (`compat/mingw.c`, `do_lstat`): the modification time, the *creation* time as `ctime`
/// (both with their 100 ns digits: Git for Windows is built without `NO_NSEC`), the size, and
/// zero for the device, the inode, the owner and the group, which it does not read (its
/// `st_ino`, `st_dev`, `st_uid` and `st_gid` are 0).
#[cfg(windows)]
pub fn stat_of(st: &cowtree_fs::dir::Stat) -> Stat {
    use gix::index::entry::stat::Time;
    let time = |ft: i64| {
        let t = cowtree_fs::dir::Timespec::from_filetime(ft);
        Time {
            secs: t.tv_sec as u32,
            nsecs: t.tv_nsec as u32,
        }
    };
    Stat {
        mtime: time(st.modified),
        ctime: time(st.created),
        dev: 0,
        ino: 0,
        uid: 0,
        gid: 0,
        size: st.size as u32,
    }
}

/// The id of the empty blob, which git leaves unsmudged at size 0.
fn is_empty_blob(id: &ObjectId) -> bool {
    *id == ObjectId::empty_blob(id.kind())
}

/// Whether SRC's `entry` records `target` as `kind`, unconflicted: the first test, which
/// needs no `lstat`.
pub fn records(entry: Option<&Entry>, target: &ObjectId, kind: Kind) -> bool {
    entry.is_some_and(|e| {
        e.stage() == Stage::Unconflicted && e.id == *target && Kind::of(e.mode) == kind
    })
}

/// Whether `entry`'s stat data proves `file` unchanged since the index recorded it (git's
/// rule, nanoseconds always compared, the racy test to the nanosecond).
fn stat_proves(entry: &Entry, file: &SrcFile, index_mtime: (i64, u32)) -> bool {
    if entry
        .flags
        .intersects(Flags::ASSUME_VALID | Flags::SKIP_WORKTREE | Flags::INTENT_TO_ADD)
    {
        return false;
    }
    // git writes racy entries that differ with size 0 ("smudged") so they never match.
    if entry.stat.size == 0 && !is_empty_blob(&entry.id) {
        return false;
    }
    let m = &entry.stat.mtime;
    if (i64::from(m.secs), m.nsecs) >= index_mtime {
        return false;
    }
    let (s, st) = (&entry.stat, &file.stat);
    s.mtime == st.mtime
        && s.ctime == st.ctime
        && s.ino == st.ino
        && s.uid == st.uid
        && s.gid == st.gid
        && s.size == st.size
}

/// Judges SRC's `entry` (stage 0 only) and SRC's `file` (`None` when absent or unreadable)
/// against the target blob `target` of kind `kind`. `blob_size` is asked for the blob's size
/// only when the verdict depends on it (`None`: unknown, which proves nothing).
pub fn judge(
    entry: Option<&Entry>,
    target: &ObjectId,
    kind: Kind,
    ev: &Evidence,
    file: Option<SrcFile>,
    blob_size: impl FnOnce() -> Option<u64>,
) -> Verdict {
    if !records(entry, target, kind) {
        return Verdict::OtherBlob;
    }
    let Some(entry) = entry else {
        return Verdict::OtherBlob;
    };
    let Some(file) = file.filter(|f| kind.matches_file_type(f.file_type)) else {
        return Verdict::Unproven;
    };
    let proven = stat_proves(entry, &file, ev.index_mtime);
    if kind == Kind::Symlink {
        // A symlink is always made from its blob; a proven one only keeps SRC's times.
        return if proven {
            Verdict::Clean
        } else {
            Verdict::Unproven
        };
    }
    let Some(size) = blob_size() else {
        return Verdict::Unproven;
    };
    if file.size != size {
        return Verdict::Unproven;
    }
    let risk_ruled_out = match ev.risk {
        Risk::None => true,
        Risk::LfsPointers => size >= LFS_POINTER_MAX,
        Risk::Any => false,
    };
    if proven && risk_ruled_out && !ev.verify {
        Verdict::Clean
    } else {
        Verdict::Hash
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gix::index::entry::stat::Time;

    /// A symlink's type as `lstat` gives it on this platform.
    #[cfg(unix)]
    const SYMLINK: FileType = FileType::Symlink;
    /// (`IO_REPARSE_TAG_SYMLINK` on Windows.)
    #[cfg(windows)]
    const SYMLINK: FileType = FileType::ReparsePoint(0xA000_000C);

    fn oid(b: u8) -> ObjectId {
        ObjectId::from_bytes_or_panic(&[b; 20])
    }

    fn stat(mtime: u32, size: u32) -> Stat {
        Stat {
            mtime: Time {
                secs: mtime,
                nsecs: 7,
            },
            ctime: Time {
                secs: mtime,
                nsecs: 9,
            },
            dev: 1,
            ino: 42,
            uid: 1000,
            gid: 1000,
            size,
        }
    }

    fn entry(id: ObjectId, mode: Mode, st: Stat, flags: Flags) -> Entry {
        let mut state = gix::index::State::new(gix::hash::Kind::Sha1);
        state.dangerously_push_entry(st, id, flags, mode, "f".into());
        state.entries()[0].clone()
    }

    const EV: Evidence = Evidence {
        index_mtime: (2000, 500),
        risk: Risk::None,
        verify: false,
    };

    fn file(st: Stat) -> Option<SrcFile> {
        Some(SrcFile {
            file_type: FileType::RegularFile,
            stat: st,
            size: u64::from(st.size),
        })
    }

    /// The verdict for SRC's entry `e` and file `f`, the target being `oid(1)`, a file of
    /// `size` bytes.
    fn verdict(e: &Entry, f: Option<SrcFile>, ev: &Evidence, size: u64) -> Verdict {
        judge(Some(e), &oid(1), Kind::File, ev, f, || Some(size))
    }

    #[test]
    fn stat_size_and_configuration_together_make_a_file_clean() {
        let e = entry(oid(1), Mode::FILE, stat(1000, 5), Flags::empty());
        assert_eq!(verdict(&e, file(stat(1000, 5)), &EV, 5), Verdict::Clean);
        let x = entry(oid(1), Mode::FILE_EXECUTABLE, stat(1000, 5), Flags::empty());
        assert_eq!(verdict(&x, file(stat(1000, 5)), &EV, 5), Verdict::Clean);
    }

    #[test]
    fn a_file_of_another_size_than_its_blob_cannot_hold_it() {
        // A CRLF checkout, an expanded $Id$: git's stat proof holds, the bytes differ.
        let e = entry(oid(1), Mode::FILE, stat(1000, 7), Flags::empty());
        assert_eq!(verdict(&e, file(stat(1000, 7)), &EV, 5), Verdict::Unproven);
        let verify = Evidence { verify: true, ..EV };
        assert_eq!(
            verdict(&e, file(stat(1000, 7)), &verify, 5),
            Verdict::Unproven
        );
    }

    #[test]
    fn an_unknown_blob_size_proves_nothing() {
        let e = entry(oid(1), Mode::FILE, stat(1000, 5), Flags::empty());
        let v = judge(
            Some(&e),
            &oid(1),
            Kind::File,
            &EV,
            file(stat(1000, 5)),
            || None,
        );
        assert_eq!(v, Verdict::Unproven);
    }

    #[test]
    fn a_configured_smudge_driver_or_verify_asks_for_a_hash() {
        let e = entry(oid(1), Mode::FILE, stat(1000, 5), Flags::empty());
        let any = Evidence {
            risk: Risk::Any,
            ..EV
        };
        assert_eq!(verdict(&e, file(stat(1000, 5)), &any, 5), Verdict::Hash);
        let verify = Evidence { verify: true, ..EV };
        assert_eq!(verdict(&e, file(stat(1000, 5)), &verify, 5), Verdict::Hash);
        // git-lfs: only files a pointer could be.
        let lfs = Evidence {
            risk: Risk::LfsPointers,
            ..EV
        };
        assert_eq!(verdict(&e, file(stat(1000, 5)), &lfs, 5), Verdict::Hash);
        let big = entry(oid(1), Mode::FILE, stat(1000, 1024), Flags::empty());
        assert_eq!(
            verdict(&big, file(stat(1000, 1024)), &lfs, 1024),
            Verdict::Clean
        );
    }

    #[test]
    fn the_racy_rule_compares_nanoseconds_with_the_index_files_mtime() {
        let at = |secs, nsecs| {
            let mut s = stat(secs, 5);
            s.mtime.nsecs = nsecs;
            s
        };
        // Earlier in the index's second: proven, as git with USE_NSEC.
        let e = entry(oid(1), Mode::FILE, at(2000, 499), Flags::empty());
        assert_eq!(verdict(&e, file(at(2000, 499)), &EV, 5), Verdict::Clean);
        // At or after the index's mtime: racy, hashed.
        for (s, n) in [(2000, 500), (2000, 501), (2001, 0)] {
            let e = entry(oid(1), Mode::FILE, at(s, n), Flags::empty());
            assert_eq!(
                verdict(&e, file(at(s, n)), &EV, 5),
                Verdict::Hash,
                "{s}.{n}"
            );
        }
    }

    #[test]
    fn stat_data_that_differs_asks_for_a_hash_when_the_size_is_the_blobs() {
        let e = entry(oid(1), Mode::FILE, stat(1000, 5), Flags::empty());
        let base = stat(1000, 5);
        let mut variants = Vec::new();
        let mut s = base;
        s.mtime.nsecs += 1;
        variants.push(s);
        let mut s = base;
        s.ctime.secs += 1;
        variants.push(s);
        let mut s = base;
        s.ctime.nsecs += 1;
        variants.push(s);
        let mut s = base;
        s.ino += 1;
        variants.push(s);
        let mut s = base;
        s.uid += 1;
        variants.push(s);
        let mut s = base;
        s.gid += 1;
        variants.push(s);
        for v in variants {
            assert_eq!(verdict(&e, file(v), &EV, 5), Verdict::Hash, "{v:?}");
        }
    }

    #[test]
    fn device_number_is_not_compared_as_git_does_not() {
        let e = entry(oid(1), Mode::FILE, stat(1000, 5), Flags::empty());
        let mut s = stat(1000, 5);
        s.dev += 1;
        assert_eq!(verdict(&e, file(s), &EV, 5), Verdict::Clean);
    }

    #[test]
    fn a_smudged_entry_is_hashed_and_the_empty_blob_at_size_zero_is_clean() {
        let e = entry(oid(1), Mode::FILE, stat(1000, 0), Flags::empty());
        assert_eq!(verdict(&e, file(stat(1000, 5)), &EV, 5), Verdict::Hash);
        let empty = ObjectId::empty_blob(gix::hash::Kind::Sha1);
        let e = entry(empty, Mode::FILE, stat(1000, 0), Flags::empty());
        let v = judge(
            Some(&e),
            &empty,
            Kind::File,
            &EV,
            file(stat(1000, 0)),
            || Some(0),
        );
        assert_eq!(v, Verdict::Clean);
    }

    #[test]
    fn flags_that_stop_git_looking_ask_for_a_hash() {
        for flag in [
            Flags::ASSUME_VALID,
            Flags::SKIP_WORKTREE,
            Flags::INTENT_TO_ADD,
        ] {
            let e = entry(oid(1), Mode::FILE, stat(1000, 5), flag);
            assert_eq!(
                verdict(&e, file(stat(1000, 5)), &EV, 5),
                Verdict::Hash,
                "{flag:?}"
            );
        }
    }

    #[test]
    fn another_blob_kind_or_stage_in_src_is_other_blob() {
        let e = entry(oid(1), Mode::FILE, stat(1000, 5), Flags::empty());
        let other = judge(
            Some(&e),
            &oid(2),
            Kind::File,
            &EV,
            file(stat(1000, 5)),
            || Some(5),
        );
        assert_eq!(other, Verdict::OtherBlob);
        let none = judge(None, &oid(1), Kind::File, &EV, file(stat(1000, 5)), || {
            Some(5)
        });
        assert_eq!(none, Verdict::OtherBlob);
        let link = entry(oid(1), Mode::SYMLINK, stat(1000, 5), Flags::empty());
        assert_eq!(
            verdict(&link, file(stat(1000, 5)), &EV, 5),
            Verdict::OtherBlob
        );
        let ours = entry(
            oid(1),
            Mode::FILE,
            stat(1000, 5),
            Flags::from_stage(Stage::Ours),
        );
        assert_eq!(
            verdict(&ours, file(stat(1000, 5)), &EV, 5),
            Verdict::OtherBlob
        );
    }

    #[test]
    fn an_absent_file_or_another_type_is_unproven() {
        let e = entry(oid(1), Mode::FILE, stat(1000, 5), Flags::empty());
        assert_eq!(verdict(&e, None, &EV, 5), Verdict::Unproven);
        let link = Some(SrcFile {
            file_type: SYMLINK,
            stat: stat(1000, 5),
            size: 5,
        });
        assert_eq!(verdict(&e, link, &EV, 5), Verdict::Unproven);
    }

    #[test]
    fn a_symlink_is_clean_on_stat_alone_and_never_hashed() {
        let e = entry(oid(1), Mode::SYMLINK, stat(1000, 5), Flags::empty());
        let link = |st| {
            Some(SrcFile {
                file_type: SYMLINK,
                stat: st,
                size: 5,
            })
        };
        let j = |f| judge(Some(&e), &oid(1), Kind::Symlink, &EV, f, || None);
        assert_eq!(j(link(stat(1000, 5))), Verdict::Clean);
        assert_eq!(j(link(stat(1001, 5))), Verdict::Unproven);
    }
}
