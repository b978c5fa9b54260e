//! What a checkout needs besides creating files, on Windows, end to end on the volume the
//! tests run on: reading and hashing files by handle (`read`), which process made something
//! (`process`), and staging directories with their stamps and their lock (`staging`).
#![cfg(windows)]

use std::ffi::{OsStr, OsString};
use std::fs;
use std::io::{ErrorKind, Seek, SeekFrom};

use cowtree_fs::dir::Dir;
use cowtree_fs::process::{Stamp, pid_exists};
use cowtree_fs::read::{hash_at, hash_fd, read_chunks, read_whole};
use cowtree_fs::staging::{self, Naming, Staging, remove_stale};

fn os(s: &str) -> &OsStr {
    OsStr::new(s)
}

fn tree() -> (tempfile::TempDir, Dir) {
    let t = tempfile::tempdir().expect("tempdir");
    let d = Dir::open(t.path()).expect("open root");
    (t, d)
}

fn bytes(size: usize) -> Vec<u8> {
    (0..size).map(|i| (i * 31 % 251) as u8).collect()
}

const CLONE: Naming = staging::TREE;

// ---- read ---------------------------------------------------------------------------------

#[test]
fn read_whole_reads_small_and_large_files_by_handle_and_from_offset_zero() {
    let (t, _) = tree();
    // 4 MiB and more: two threads, each with positioned reads into its half.
    for size in [0usize, 1, 4095, (4 << 20) - 1, 4 << 20, (8 << 20) + 7] {
        let data = bytes(size);
        let p = t.path().join(format!("f{size}"));
        fs::write(&p, &data).expect("write");
        let mut f = fs::File::open(&p).expect("open");
        // The handle's position does not matter: read_whole reads from 0.
        f.seek(SeekFrom::Start(size as u64 / 2)).expect("seek");
        assert!(read_whole(&f).expect("read") == data, "size {size}");
    }
}

#[test]
fn hash_fd_equals_blake3_of_the_bytes_from_the_handles_position_and_sees_every_chunk() {
    let (t, _) = tree();
    for size in [0usize, 1, 64 << 10, (64 << 10) * 5 + 3, (1 << 20) * 3 + 11] {
        let data = bytes(size);
        let p = t.path().join(format!("h{size}"));
        fs::write(&p, &data).expect("write");
        let f = fs::File::open(&p).expect("open");
        let mut seen = Vec::new();
        let (n, h) = hash_fd(&f, |c| {
            seen.extend_from_slice(c);
            Ok(())
        })
        .expect("hash");
        assert_eq!((n, h), (size as u64, blake3::hash(&data)), "size {size}");
        assert!(seen == data, "size {size}");
    }
    let p = t.path().join("digits");
    fs::write(&p, b"0123456789").expect("write");
    let mut f = fs::File::open(&p).expect("open");
    f.seek(SeekFrom::Start(4)).expect("seek");
    assert_eq!(
        hash_fd(&f, |_| Ok(())).expect("hash"),
        (6, blake3::hash(b"456789"))
    );
    f.seek(SeekFrom::Start(0)).expect("seek");
    let e = read_chunks(&f, |_| Err(std::io::Error::other("stop"))).expect_err("stopped");
    assert_eq!(e.to_string(), "stop");
}

#[test]
fn hash_at_hashes_a_file_relative_to_a_directory_and_gives_none_for_a_missing_one_or_a_directory() {
    let (t, root) = tree();
    fs::write(t.path().join("f"), b"data").expect("write");
    fs::create_dir(t.path().join("d")).expect("mkdir");
    assert_eq!(
        hash_at(&root, os("f")).expect("hash"),
        Some((4, blake3::hash(b"data")))
    );
    // Names are matched without regard to case, as Windows does.
    assert_eq!(
        hash_at(&root, os("F")).expect("hash"),
        Some((4, blake3::hash(b"data")))
    );
    for name in ["missing", "d"] {
        assert_eq!(hash_at(&root, os(name)).expect(name), None, "{name}");
    }
    for bad in ["..", "a\\b", "CON", "x."] {
        let e = hash_at(&root, os(bad)).expect_err(bad);
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{bad}: {e}");
    }
}

// ---- process ------------------------------------------------------------------------------

#[test]
fn this_process_has_a_creation_time_and_is_alive() {
    let me = Stamp::current();
    assert_eq!(me.pid, std::process::id());
    assert!(me.start.is_some(), "no creation time read for this process");
    assert!(me.is_alive());
    assert!(pid_exists(me.pid));
    assert!(!pid_exists(0));
    // Windows pids are multiples of 4 and small: this one names nothing.
    assert!(!pid_exists(u32::MAX - 2));
    let token = me.token();
    let back = Stamp::parse_prefix(token.as_bytes()).expect("parse");
    assert_eq!(back, (me, &b""[..]));
}

// ---- staging ------------------------------------------------------------------------------

#[test]
fn staging_names_carry_the_stamp_and_fit_in_255_utf16_units() {
    let me = Stamp::current();
    assert_eq!(
        CLONE.name(os("out"), "00ff"),
        OsString::from(format!(".out.cowtree-staging.{me}.00ff"))
    );
    let long: String = "x".repeat(255);
    let n = CLONE.name(os(&long), &format!("{:016x}", u64::MAX));
    let units = std::os::windows::ffi::OsStrExt::encode_wide(n.as_os_str()).count();
    assert!(units <= 255, "{units}");
    assert_eq!(n.to_string_lossy().matches('x').count(), 200 - 16);
    // A pair of UTF-16 units is kept whole or dropped whole.
    let emoji: String = "\u{1F600}".repeat(120);
    let n = CLONE.prefix(os(&emoji));
    assert!(n.to_str().is_some(), "a surrogate pair was cut: {n:?}");
    cowtree_fs::dir::check_name(&CLONE.name(os(&emoji), "ffff")).expect("a valid name");
}

#[test]
fn a_dropped_staging_is_removed_and_a_committed_one_is_the_destination() {
    let (t, root) = tree();
    let dst = os("dst");
    let s = Staging::create(&root, CLONE.name(dst, "a"), 0o700).expect("create");
    s.dir.create_dir(os("inner"), 0o755).expect("mkdir");
    fs::write(t.path().join(s.name()).join("file"), "x").expect("write");
    let staged = t.path().join(s.name());
    assert!(staged.is_dir());
    drop(s);
    assert!(!staged.exists(), "an uncommitted staging is removed");

    let mut s = Staging::create(&root, CLONE.name(dst, "b"), 0o700).expect("create");
    s.dir.create_dir(os("inner"), 0o755).expect("mkdir");
    s.commit(dst, false).expect("commit");
    drop(s);
    assert!(t.path().join("dst/inner").is_dir(), "committed");

    // Something at the destination: AlreadyExists, the staging still there, then removed.
    let mut s = Staging::create(&root, CLONE.name(dst, "c"), 0o700).expect("create");
    let e = s.commit(dst, false).expect_err("taken");
    assert_eq!(e.kind(), ErrorKind::AlreadyExists, "{e}");
    let name = s.name().to_owned();
    assert!(t.path().join(&name).is_dir());
    s.remove().expect("remove");
    assert!(!t.path().join(&name).exists());
    assert!(
        t.path().join("dst/inner").is_dir(),
        "the destination is untouched"
    );
}

#[test]
fn a_committed_staging_replaces_an_empty_directory_when_asked() {
    let (t, root) = tree();
    fs::create_dir(t.path().join("dst")).expect("mkdir");
    let mut s = Staging::create(&root, CLONE.name(os("dst"), "r"), 0o700).expect("create");
    s.dir.create_dir(os("inner"), 0o755).expect("mkdir");
    s.commit(os("dst"), true)
        .expect("commit over an empty directory");
    drop(s);
    assert!(t.path().join("dst/inner").is_dir());
}

/// A dead run's staging (a pid that names no process) is removed with what is in it; a
/// live process's (this one's, with or without its creation time) is kept whatever its lock
/// says; another destination's is not looked at; a file with a staging name is left alone.
#[test]
fn stale_staging_of_a_dead_run_is_removed_and_a_live_ones_is_kept() {
    let (t, root) = tree();
    let p = t.path();
    let prefix = CLONE.prefix(os("dst"));
    let me = Stamp::current();
    fs::create_dir_all(p.join(".dst.cowtree-staging.4000000.dead/sub/deeper")).expect("mkdir");
    fs::write(p.join(".dst.cowtree-staging.4000000.dead/sub/f"), "x").expect("write");
    // A read-only file inside: removed too.
    let ro = p.join(".dst.cowtree-staging.4000000.dead/ro");
    fs::write(&ro, "x").expect("write");
    let mut perm = fs::metadata(&ro).expect("stat").permissions();
    perm.set_readonly(true);
    fs::set_permissions(&ro, perm).expect("readonly");
    // Made by this process and not locked (no handle open): its stamp keeps it.
    fs::create_dir(p.join(format!(".dst.cowtree-staging.{me}.justmade"))).expect("mkdir");
    fs::create_dir(p.join(format!(".dst.cowtree-staging.{}.pidonly", me.pid))).expect("mkdir");
    // This pid with another creation time: a dead run whose pid was reused.
    let start = me.start.expect("start");
    fs::create_dir(p.join(format!(
        ".dst.cowtree-staging.{}t{}.reused",
        me.pid,
        start + 1
    )))
    .expect("mkdir");
    fs::create_dir(p.join(".other.cowtree-staging.4000000.dead")).expect("mkdir");
    fs::write(p.join(".dst.cowtree-staging.4000000.file"), "x").expect("write");

    assert_eq!(remove_stale(&root, &prefix).expect("remove_stale"), 2);
    assert!(!p.join(".dst.cowtree-staging.4000000.dead").exists());
    assert!(
        !p.join(format!(
            ".dst.cowtree-staging.{}t{}.reused",
            me.pid,
            start + 1
        ))
        .exists()
    );
    assert!(
        p.join(format!(".dst.cowtree-staging.{me}.justmade"))
            .is_dir()
    );
    assert!(
        p.join(format!(".dst.cowtree-staging.{}.pidonly", me.pid))
            .is_dir()
    );
    assert!(p.join(".other.cowtree-staging.4000000.dead").is_dir());
    assert!(p.join(".dst.cowtree-staging.4000000.file").is_file());
}

/// The lock: a staging named for a dead run but with a handle open on it (a run whose
/// process cannot be checked, or one that is still using it) is kept; once the handle is
/// closed it goes.
#[test]
fn a_staging_with_a_handle_open_on_it_is_kept_and_goes_once_closed() {
    let (t, root) = tree();
    let name = ".dst.cowtree-staging.4000000.held";
    fs::create_dir_all(t.path().join(name).join("sub")).expect("mkdir");
    let held = root.open_dir(os(name)).expect("open");
    let prefix = CLONE.prefix(os("dst"));
    let removed = remove_stale(&root, &prefix).expect("remove_stale");
    if removed == 1 {
        println!(
            "NOT RUN: the share-mode lock (this Windows let an exclusive open of a directory \
             through while another handle was open on it)"
        );
        return;
    }
    assert_eq!(removed, 0, "a staging with an open handle is in use");
    assert!(t.path().join(name).join("sub").is_dir());
    // While it is held, its exclusive open says so.
    assert!(root.open_dir_exclusive(os(name)).expect("open").is_none());
    drop(held);
    assert_eq!(remove_stale(&root, &prefix).expect("remove_stale"), 1);
    assert!(!t.path().join(name).exists());
}

/// A live staging made by `Staging::create` is held by its own handle: even named for a dead
/// run (as if its process could not be checked) it is not taken.
#[test]
fn a_live_staging_is_held_by_its_own_handle() {
    let (t, root) = tree();
    let s = Staging::create(
        &root,
        OsString::from(".dst.cowtree-staging.4000000.live"),
        0o700,
    )
    .expect("create");
    let removed = remove_stale(&root, &CLONE.prefix(os("dst"))).expect("remove_stale");
    if removed == 1 {
        println!("NOT RUN: the share-mode lock (see the test above)");
        return;
    }
    assert_eq!(removed, 0);
    assert!(t.path().join(s.name()).is_dir());
    drop(s);
    assert!(!t.path().join(".dst.cowtree-staging.4000000.live").exists());
}

// ---- one entry's metadata (sys::open_entry, EntryFd) and creation -------------------------

mod entry {
    use super::*;
    use cowtree_fs::creation::{CreationMask, process_umask};
    use cowtree_fs::dir::Timespec;
    use cowtree_fs::sys::{
        EntryFd, KEPT_ATTRIBUTES, Unavailable, chmod_entry, chown_entry, entry_attributes,
        open_entry, set_entry_attributes, set_entry_times, xattr_get, xattr_list, xattr_set,
    };
    use std::os::windows::io::AsHandle;

    const READONLY: u32 = 0x1;
    const HIDDEN: u32 = 0x2;
    const DIRECTORY: u32 = 0x10;
    const ARCHIVE: u32 = 0x20;

    #[test]
    fn attributes_a_copy_keeps_are_set_and_cleared_through_the_entrys_handle() {
        let (t, root) = tree();
        fs::write(t.path().join("f"), "x").expect("write");
        fs::create_dir(t.path().join("d")).expect("mkdir");
        let f = open_entry(root.as_handle(), os("f")).expect("open f");
        let fd = EntryFd::Path(f.as_handle());
        set_entry_attributes(fd, READONLY | ARCHIVE).expect("set readonly");
        assert_eq!(
            entry_attributes(fd).expect("attrs") & KEPT_ATTRIBUTES,
            READONLY | ARCHIVE
        );
        assert!(
            fs::metadata(t.path().join("f"))
                .expect("stat")
                .permissions()
                .readonly(),
            "std sees it read-only"
        );
        // Times still go through the same handle once it is read-only.
        let (a, m) = (
            Timespec {
                tv_sec: 1_000_000_000,
                tv_nsec: 100,
            },
            Timespec {
                tv_sec: 1_500_000_000,
                tv_nsec: 123_456_700,
            },
        );
        set_entry_times(fd, a, m).expect("times");
        let st = root.stat(os("f")).expect("stat");
        assert_eq!((st.atime(), st.mtime()), (a, m));
        // Cleared to nothing: FILE_ATTRIBUTE_NORMAL. (Wine reports ARCHIVE on every file of
        // a unix filesystem whatever was set, so that one bit is not checked here.)
        set_entry_attributes(fd, 0).expect("clear");
        let left = entry_attributes(fd).expect("attrs") & KEPT_ATTRIBUTES;
        assert_eq!(left & !ARCHIVE, 0, "{left:#x}");
        drop(f);
        fs::write(t.path().join("f"), "writable again").expect("write");

        // A directory keeps being a directory whatever is asked.
        let d = open_entry(root.as_handle(), os("d")).expect("open d");
        let fd = EntryFd::Path(d.as_handle());
        set_entry_attributes(fd, HIDDEN | DIRECTORY).expect("set hidden");
        let attrs = entry_attributes(fd).expect("attrs");
        assert!(attrs & DIRECTORY != 0, "{attrs:#x}");
        if attrs & HIDDEN == 0 {
            println!("NOT RUN: the hidden attribute did not stick on this volume ({attrs:#x})");
        }
        assert!(root.open_dir(os("d")).is_ok(), "still a directory");
        let e = set_entry_times(
            fd,
            Timespec {
                tv_sec: -12_000_000_000,
                tv_nsec: 0,
            },
            Timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
        )
        .expect_err("before 1601");
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    }

    #[test]
    fn open_entry_refuses_bad_names_and_says_not_found() {
        let (_t, root) = tree();
        let e = open_entry(root.as_handle(), os("missing")).expect_err("missing");
        assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
        for bad in ["..", "a\\b", "a/b", "NUL", "x "] {
            let e = open_entry(root.as_handle(), os(bad)).expect_err(bad);
            assert_eq!(e.kind(), ErrorKind::InvalidInput, "{bad}: {e}");
        }
    }

    #[test]
    fn owners_permission_bits_and_xattrs_say_they_are_unavailable_and_change_nothing() {
        let (t, root) = tree();
        fs::write(t.path().join("f"), "x").expect("write");
        let f = open_entry(root.as_handle(), os("f")).expect("open");
        let fd = EntryFd::Path(f.as_handle());
        let before = entry_attributes(fd).expect("attrs");
        let errors = [
            chown_entry(fd, Some(0), Some(0)).expect_err("chown"),
            chmod_entry(fd, 0o444).expect_err("chmod"),
            xattr_list(fd).expect_err("list"),
            xattr_get(fd, b"user.x").expect_err("get"),
            xattr_set(fd, b"user.x", b"v").expect_err("set"),
        ];
        for e in &errors {
            assert_eq!(e.kind(), ErrorKind::Unsupported, "{e}");
            assert!(Unavailable::find(e).is_some(), "{e}");
        }
        assert!(errors[1].to_string().contains("chmod"), "{}", errors[1]);
        assert_eq!(entry_attributes(fd).expect("attrs"), before);
        assert!(
            !fs::metadata(t.path().join("f"))
                .expect("stat")
                .permissions()
                .readonly()
        );
    }

    #[test]
    fn creation_has_no_mask_on_windows_but_the_rule_holds() {
        let (_t, root) = tree();
        assert_eq!(process_umask(), None);
        assert_eq!(
            CreationMask::of_dir(&root, Some(0o022)).expect("of_dir"),
            None
        );
        assert!(CreationMask::new(0o022, false).file_exact(0o644));
        assert!(!CreationMask::new(0o022, true).dir_exact(0o755));
    }
}

// ---- place --------------------------------------------------------------------------------

mod place {
    use super::*;
    use cowtree_fs::place::{Placed, place_at};
    use cowtree_fs::{Method, UnsupportedCause};

    /// A source and destination directory with `blob` holding `data`.
    fn store() -> (tempfile::TempDir, Dir, Dir) {
        let (t, root) = tree();
        fs::create_dir(t.path().join("blobs")).expect("mkdir");
        fs::create_dir(t.path().join("wt")).expect("mkdir");
        fs::write(t.path().join("blobs/blob"), bytes(300_000)).expect("write");
        let (src, dst) = (
            root.open_dir(os("blobs")).expect("blobs"),
            root.open_dir(os("wt")).expect("wt"),
        );
        (t, src, dst)
    }

    #[test]
    fn a_blob_is_placed_by_copy_where_the_volume_cannot_clone_and_its_stat_is_the_files() {
        let (t, src, dst) = store();
        for (name, method) in [("auto", Method::CloneOrCopy), ("copy", Method::Copy)] {
            let placed = place_at(&src, os("blob"), &dst, os(name), 0o644, method).expect(name);
            let st = match (method, placed) {
                (Method::CloneOrCopy, Placed::Copied(st, Some(UnsupportedCause::Filesystem))) => st,
                (Method::Copy, Placed::Copied(st, None)) => st,
                (_, Placed::Cloned(st)) => {
                    println!("a block clone ran here ({name})");
                    st
                }
                (_, other) => panic!("{name}: {other:?}"),
            };
            assert_eq!(
                st,
                dst.stat(os(name)).expect("stat"),
                "{name}: the stat is the file's"
            );
            // Read after the stat: reading may change the access time.
            assert!(fs::read(t.path().join("wt").join(name)).expect("read") == bytes(300_000));
            assert_eq!(st.size, 300_000);
            // The device callers compare (sys::stat_dev): the same volume as its directory.
            assert_eq!(
                cowtree_fs::sys::stat_dev(&st),
                cowtree_fs::sys::stat_dev(&dst.stat_self().expect("stat dir"))
            );
            assert_ne!(cowtree_fs::sys::stat_dev(&st), 0);
            assert!(
                !fs::metadata(t.path().join("wt").join(name))
                    .expect("m")
                    .permissions()
                    .readonly()
            );
        }
    }

    #[test]
    fn a_mode_without_write_bits_places_a_read_only_file() {
        let (t, src, dst) = store();
        let placed =
            place_at(&src, os("blob"), &dst, os("ro"), 0o444, Method::CloneOrCopy).expect("place");
        let (Placed::Copied(st, _) | Placed::Cloned(st)) = placed else {
            panic!("{placed:?}")
        };
        assert!(st.attributes & 0x1 != 0, "read-only: {:#x}", st.attributes);
        assert_eq!(
            st,
            dst.stat(os("ro")).expect("stat"),
            "stat taken after the change"
        );
        assert!(
            fs::metadata(t.path().join("wt/ro"))
                .expect("m")
                .permissions()
                .readonly()
        );
    }

    #[test]
    fn clone_only_leaves_nothing_and_a_vanished_source_is_no_error() {
        let (t, src, dst) = store();
        match place_at(&src, os("blob"), &dst, os("c"), 0o644, Method::Clone).expect("place") {
            Placed::Unsupported(UnsupportedCause::Filesystem) => {
                assert!(!t.path().join("wt/c").exists(), "nothing left");
            }
            Placed::Cloned(_) => println!("a block clone ran here"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            place_at(&src, os("gone"), &dst, os("g"), 0o644, Method::CloneOrCopy).expect("gone"),
            Placed::SourceVanished
        ));
        assert!(!t.path().join("wt/g").exists());
    }

    #[test]
    fn an_existing_destination_is_refused_and_left_and_a_directory_is_no_source() {
        let (t, src, dst) = store();
        fs::write(t.path().join("wt/taken"), "mine").expect("write");
        for name in ["taken", "TAKEN"] {
            let e = place_at(&src, os("blob"), &dst, os(name), 0o644, Method::CloneOrCopy)
                .expect_err(name);
            assert_eq!(e.kind(), ErrorKind::AlreadyExists, "{name}: {e}");
        }
        assert_eq!(
            fs::read_to_string(t.path().join("wt/taken")).expect("read"),
            "mine"
        );
        fs::create_dir(t.path().join("blobs/d")).expect("mkdir");
        let e = place_at(&src, os("d"), &dst, os("d"), 0o644, Method::CloneOrCopy)
            .expect_err("a directory");
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
        assert!(!t.path().join("wt/d").exists());
        let e = place_at(&src, os("blob"), &dst, os("a\\b"), 0o644, Method::Copy)
            .expect_err("bad name");
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    }
}
