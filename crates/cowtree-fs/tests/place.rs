//! `place_at` on real filesystems (run through scripts/test.sh, which mounts them): a file
//! placed from a trusted source with an exact mode, and the stat it hands back.
#![cfg(unix)]

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;

use cowtree_fs::dir::Dir;
use cowtree_fs::extents::extent_summary;
use cowtree_fs::place::{Placed, place_at};
use cowtree_fs::{CopyRange, Method, UnsupportedCause};
use cowtree_testutil::{Fs, pattern, scratch};
use rustix::fs::Stat;

fn blob(path: &Path, data: &[u8]) {
    fs::write(path, data).unwrap();
    // A store's blobs are read-only.
    fs::set_permissions(path, fs::Permissions::from_mode(0o444)).unwrap();
}

fn place(dir: &Path, src: &str, dst: &str, mode: u32, method: Method) -> std::io::Result<Placed> {
    let d = Dir::open(dir).unwrap();
    place_at(
        &d,
        src.as_ref(),
        &d,
        dst.as_ref(),
        mode,
        method,
        &CopyRange::new(),
    )
}

/// The returned stat is the file's stat now: inode, size, mode and both times.
fn assert_is_now(st: &Stat, path: &Path, what: &str) {
    let m = fs::symlink_metadata(path).unwrap();
    assert_eq!(
        (st.st_ino, st.st_size as u64, st.st_mode),
        (m.ino(), m.len(), m.mode()),
        "{what}"
    );
    assert_eq!(
        (
            st.st_mtime,
            st.st_mtime_nsec as i64,
            st.st_ctime,
            st.st_ctime_nsec as i64
        ),
        (m.mtime(), m.mtime_nsec(), m.ctime(), m.ctime_nsec()),
        "{what}: times"
    );
}

#[test]
fn place_clones_with_the_exact_mode_and_returns_the_stat_of_what_it_made() {
    for fsys in Fs::COW {
        let Some(dir) = scratch(fsys) else { continue };
        let data = pattern(300_000, 3);
        blob(&dir.path().join("blob"), &data);
        for (name, mode) in [("file", 0o644), ("tool", 0o755)] {
            let st = match place(dir.path(), "blob", name, mode, Method::Clone).unwrap() {
                Placed::Cloned(st) => st,
                other => panic!("{fsys:?}: {other:?}"),
            };
            let dst = dir.path().join(name);
            assert_is_now(&st, &dst, &format!("{fsys:?} {name}"));
            assert_eq!(st.st_mode & 0o7777, mode, "{fsys:?} {name}");
            assert_eq!(fs::read(&dst).unwrap(), data);
            assert!(
                extent_summary(&dst).unwrap().fully_shared(),
                "{fsys:?}: not a clone"
            );
            // A write to the placed file leaves the source alone.
            fs::write(&dst, b"changed").unwrap();
            assert_eq!(fs::read(dir.path().join("blob")).unwrap(), data);
        }
    }
}

#[test]
fn place_under_a_umask_that_strips_bits_gives_the_exact_mode_and_the_stat_after_the_chmod() {
    // The only test of this binary that changes the umask (a binary of its own for that: the
    // umask is the process's), and every other one asserts exact modes whatever the umask is.
    let old = rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
    for fsys in [Fs::Xfs, Fs::Btrfs, Fs::NoCow] {
        let Some(dir) = scratch(fsys) else { continue };
        blob(&dir.path().join("blob"), b"#!/bin/sh\n");
        for method in [Method::CloneOrCopy, Method::Copy] {
            let name = format!("tool-{method:?}");
            let st = match place(dir.path(), "blob", &name, 0o755, method).unwrap() {
                Placed::Cloned(st) | Placed::Copied(st, _) => st,
                other => panic!("{fsys:?}: {other:?}"),
            };
            assert_eq!(st.st_mode & 0o7777, 0o755, "{fsys:?} {method:?}");
            // The ctime of the chmod, not the one before it.
            assert_is_now(
                &st,
                &dir.path().join(&name),
                &format!("{fsys:?} {method:?}"),
            );
        }
    }
    rustix::process::umask(old);
}

#[test]
fn place_without_reflink_is_unsupported_or_copies_as_asked_and_says_which() {
    let Some(dir) = scratch(Fs::NoCow) else {
        return;
    };
    let data = pattern(70_000, 9);
    blob(&dir.path().join("blob"), &data);
    match place(dir.path(), "blob", "a", 0o644, Method::Clone).unwrap() {
        Placed::Unsupported(UnsupportedCause::Filesystem) => {}
        other => panic!("{other:?}"),
    }
    assert!(
        !dir.path().join("a").exists(),
        "an unsupported clone leaves no file"
    );
    match place(dir.path(), "blob", "b", 0o644, Method::CloneOrCopy).unwrap() {
        Placed::Copied(st, Some(UnsupportedCause::Filesystem)) => {
            assert_is_now(&st, &dir.path().join("b"), "clone or copy")
        }
        other => panic!("{other:?}"),
    }
    match place(dir.path(), "blob", "c", 0o644, Method::Copy).unwrap() {
        Placed::Copied(st, None) => assert_is_now(&st, &dir.path().join("c"), "copy"),
        other => panic!("{other:?}"),
    }
    for n in ["b", "c"] {
        assert_eq!(fs::read(dir.path().join(n)).unwrap(), data, "{n}");
    }
}

#[test]
fn place_refuses_a_source_that_is_not_a_regular_file_and_leaves_no_destination() {
    for fsys in [Fs::Xfs, Fs::Btrfs, Fs::NoCow] {
        let Some(dir) = scratch(fsys) else { continue };
        let p = dir.path();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            p.join("fifo"),
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o644),
            0,
        )
        .unwrap();
        assert!(fs::metadata(p.join("fifo")).unwrap().file_type().is_fifo());
        fs::create_dir(p.join("dir")).unwrap();
        blob(&p.join("blob"), b"x");
        std::os::unix::fs::symlink("blob", p.join("link")).unwrap();
        for src in ["fifo", "dir", "link"] {
            for method in [Method::Clone, Method::CloneOrCopy, Method::Copy] {
                let dst = format!("out-{src}-{method:?}");
                let r = place(p, src, &dst, 0o644, method);
                assert!(r.is_err(), "{fsys:?} {src} {method:?}: {r:?}");
                assert!(
                    fs::symlink_metadata(p.join(&dst)).is_err(),
                    "{fsys:?} {src} {method:?}: a destination was left"
                );
            }
        }
    }
}

#[test]
fn place_reports_a_missing_source_as_vanished_and_never_writes_through_an_existing_file() {
    for fsys in [Fs::Xfs, Fs::NoCow] {
        let Some(dir) = scratch(fsys) else { continue };
        let p = dir.path();
        for method in [Method::Clone, Method::Copy] {
            match place(p, "absent", "out", 0o644, method).unwrap() {
                Placed::SourceVanished => {}
                other => panic!("{fsys:?} {method:?}: {other:?}"),
            }
            assert!(fs::symlink_metadata(p.join("out")).is_err());
        }
        blob(&p.join("blob"), b"new bytes");
        fs::write(p.join("there"), b"kept").unwrap();
        let err = place(p, "blob", "there", 0o644, Method::Clone).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::AlreadyExists, "{fsys:?}");
        assert_eq!(fs::read(p.join("there")).unwrap(), b"kept");
    }
}
