//! When SRC's file is known to hold the target commit's blob, by git's own rules.
//!
//! git trusts a worktree file without reading it when the index entry's stat data equals the
//! file's `lstat` and the entry is not racy: its mtime is earlier than the index file's own
//! mtime, so any later write would have changed the stat data. The same rule decides here
//! whether SRC's file may be reflinked instead of written from the object database, with one
//! more condition: the entry's object id must be the target tree's.
//!
//! The comparison is stricter than git's default in two ways that can only send more files to
//! the object database, never fewer: nanoseconds are always compared, and the racy test uses
//! whole seconds (git's rule when built without `USE_NSEC`, which is how it is usually built).

use gix::ObjectId;
use gix::index::Entry;
use gix::index::entry::{Flags, Mode, Stage, Stat};
use rustix::fs::FileType;

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
            Kind::File => ft == FileType::RegularFile,
            Kind::Symlink => ft == FileType::Symlink,
            Kind::Submodule | Kind::Other => false,
        }
    }
}

/// What SRC's copy of one path is, for a target entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// SRC's index records the target blob and its stat data proves the file still holds it.
    Clean,
    /// SRC's index records the target blob, but the file may differ (stat data differs, the
    /// entry is racy, or flags tell git not to look at the file).
    Unproven,
    /// SRC's index does not record the target blob at this path (or not as this kind).
    OtherBlob,
}

/// The index entry's stat data for an `lstat` result, truncated as git stores it.
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

/// The id of the empty blob, which git leaves unsmudged at size 0.
fn is_empty_blob(id: &ObjectId) -> bool {
    *id == ObjectId::empty_blob(id.kind())
}

/// Judges SRC's `entry` (stage 0 only) against the target blob `target` of kind `kind`.
/// `index_mtime_secs` is the mtime of SRC's index file; `file` is SRC's `lstat` of the path
/// (`None` when absent or unreadable).
pub fn judge(
    entry: Option<&Entry>,
    target: &ObjectId,
    kind: Kind,
    index_mtime_secs: i64,
    file: Option<(FileType, Stat)>,
) -> Verdict {
    let Some(entry) = entry else {
        return Verdict::OtherBlob;
    };
    if entry.stage() != Stage::Unconflicted || entry.id != *target || Kind::of(entry.mode) != kind {
        return Verdict::OtherBlob;
    }
    if entry
        .flags
        .intersects(Flags::ASSUME_VALID | Flags::SKIP_WORKTREE | Flags::INTENT_TO_ADD)
    {
        return Verdict::Unproven;
    }
    let Some((ft, st)) = file else {
        return Verdict::Unproven;
    };
    if !kind.matches_file_type(ft) {
        return Verdict::Unproven;
    }
    // git writes racy entries with size 0 ("smudged") so that they never match again.
    if entry.stat.size == 0 && !is_empty_blob(&entry.id) {
        return Verdict::Unproven;
    }
    if i64::from(entry.stat.mtime.secs) >= index_mtime_secs {
        return Verdict::Unproven;
    }
    let s = &entry.stat;
    let same = s.mtime == st.mtime
        && s.ctime == st.ctime
        && s.ino == st.ino
        && s.uid == st.uid
        && s.gid == st.gid
        && s.size == st.size;
    if same {
        Verdict::Clean
    } else {
        Verdict::Unproven
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gix::index::entry::stat::Time;

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

    const INDEX_MTIME: i64 = 2000;

    fn file(st: Stat) -> Option<(FileType, Stat)> {
        Some((FileType::RegularFile, st))
    }

    #[test]
    fn matching_old_entry_with_the_target_blob_is_clean() {
        let e = entry(oid(1), Mode::FILE, stat(1000, 5), Flags::empty());
        assert_eq!(
            judge(
                Some(&e),
                &oid(1),
                Kind::File,
                INDEX_MTIME,
                file(stat(1000, 5))
            ),
            Verdict::Clean
        );
    }

    #[test]
    fn executable_entry_counts_as_a_file() {
        let e = entry(oid(1), Mode::FILE_EXECUTABLE, stat(1000, 5), Flags::empty());
        assert_eq!(
            judge(
                Some(&e),
                &oid(1),
                Kind::File,
                INDEX_MTIME,
                file(stat(1000, 5))
            ),
            Verdict::Clean
        );
    }

    #[test]
    fn other_blob_in_src_index_is_other_blob() {
        let e = entry(oid(1), Mode::FILE, stat(1000, 5), Flags::empty());
        assert_eq!(
            judge(
                Some(&e),
                &oid(2),
                Kind::File,
                INDEX_MTIME,
                file(stat(1000, 5))
            ),
            Verdict::OtherBlob
        );
    }

    #[test]
    fn path_missing_from_src_index_is_other_blob() {
        assert_eq!(
            judge(None, &oid(2), Kind::File, INDEX_MTIME, file(stat(1000, 5))),
            Verdict::OtherBlob
        );
    }

    #[test]
    fn symlink_entry_for_a_file_target_is_other_blob() {
        let e = entry(oid(1), Mode::SYMLINK, stat(1000, 5), Flags::empty());
        assert_eq!(
            judge(
                Some(&e),
                &oid(1),
                Kind::File,
                INDEX_MTIME,
                file(stat(1000, 5))
            ),
            Verdict::OtherBlob
        );
    }

    #[test]
    fn entry_modified_in_the_index_second_is_racy_and_unproven() {
        let e = entry(oid(1), Mode::FILE, stat(2000, 5), Flags::empty());
        assert_eq!(
            judge(
                Some(&e),
                &oid(1),
                Kind::File,
                INDEX_MTIME,
                file(stat(2000, 5))
            ),
            Verdict::Unproven
        );
    }

    #[test]
    fn entry_newer_than_the_index_is_unproven() {
        let e = entry(oid(1), Mode::FILE, stat(2001, 5), Flags::empty());
        assert_eq!(
            judge(
                Some(&e),
                &oid(1),
                Kind::File,
                INDEX_MTIME,
                file(stat(2001, 5))
            ),
            Verdict::Unproven
        );
    }

    #[test]
    fn any_stat_field_differing_is_unproven() {
        let e = entry(oid(1), Mode::FILE, stat(1000, 5), Flags::empty());
        let mut variants = Vec::new();
        let base = stat(1000, 5);
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
        s.size += 1;
        variants.push(s);
        let mut s = base;
        s.uid += 1;
        variants.push(s);
        for v in variants {
            assert_eq!(
                judge(Some(&e), &oid(1), Kind::File, INDEX_MTIME, file(v)),
                Verdict::Unproven,
                "{v:?}"
            );
        }
    }

    #[test]
    fn device_number_is_not_compared_as_git_does_not() {
        let e = entry(oid(1), Mode::FILE, stat(1000, 5), Flags::empty());
        let mut s = stat(1000, 5);
        s.dev += 1;
        assert_eq!(
            judge(Some(&e), &oid(1), Kind::File, INDEX_MTIME, file(s)),
            Verdict::Clean
        );
    }

    #[test]
    fn smudged_entry_is_unproven_even_when_the_file_is_empty() {
        let e = entry(oid(1), Mode::FILE, stat(1000, 0), Flags::empty());
        assert_eq!(
            judge(
                Some(&e),
                &oid(1),
                Kind::File,
                INDEX_MTIME,
                file(stat(1000, 0))
            ),
            Verdict::Unproven
        );
    }

    #[test]
    fn empty_blob_at_size_zero_is_clean() {
        let empty = ObjectId::empty_blob(gix::hash::Kind::Sha1);
        let e = entry(empty, Mode::FILE, stat(1000, 0), Flags::empty());
        assert_eq!(
            judge(
                Some(&e),
                &empty,
                Kind::File,
                INDEX_MTIME,
                file(stat(1000, 0))
            ),
            Verdict::Clean
        );
    }

    #[test]
    fn flags_that_stop_git_looking_make_the_entry_unproven() {
        for flag in [
            Flags::ASSUME_VALID,
            Flags::SKIP_WORKTREE,
            Flags::INTENT_TO_ADD,
        ] {
            let e = entry(oid(1), Mode::FILE, stat(1000, 5), flag);
            assert_eq!(
                judge(
                    Some(&e),
                    &oid(1),
                    Kind::File,
                    INDEX_MTIME,
                    file(stat(1000, 5))
                ),
                Verdict::Unproven,
                "{flag:?}"
            );
        }
    }

    #[test]
    fn conflicted_entry_is_other_blob() {
        let e = entry(
            oid(1),
            Mode::FILE,
            stat(1000, 5),
            Flags::from_stage(Stage::Ours),
        );
        assert_eq!(
            judge(
                Some(&e),
                &oid(1),
                Kind::File,
                INDEX_MTIME,
                file(stat(1000, 5))
            ),
            Verdict::OtherBlob
        );
    }

    #[test]
    fn absent_file_or_wrong_type_is_unproven() {
        let e = entry(oid(1), Mode::FILE, stat(1000, 5), Flags::empty());
        assert_eq!(
            judge(Some(&e), &oid(1), Kind::File, INDEX_MTIME, None),
            Verdict::Unproven
        );
        assert_eq!(
            judge(
                Some(&e),
                &oid(1),
                Kind::File,
                INDEX_MTIME,
                Some((FileType::Symlink, stat(1000, 5)))
            ),
            Verdict::Unproven
        );
    }
}
