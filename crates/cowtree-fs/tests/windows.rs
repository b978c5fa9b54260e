//! The Windows subset of cowtree-fs, end to end on the volume the tests run on. Under Wine
//! (scripts/windows.sh) that volume has no block cloning, so these run the copy fallback, the
//! refusals and the classification; the clone itself is only compiled there, and the two
//! symlink tests print "NOT RUN" (Wine 8.0 creates no symlinks).
#![cfg(windows)]

use std::io::ErrorKind;
use std::path::Path;

use cowtree_fs::probe::ProbeCache;
use cowtree_fs::{CopyMethod, ReflinkOutcome, UnsupportedCause, clone_or_copy, try_reflink};

/// Bytes that differ from one offset to the next, over more than one cluster and a partial one.
fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + i / 4096) as u8).collect()
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .expect("read_dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn clones_here(dir: &Path) -> bool {
    cowtree_fs::probe::volume(dir)
        .expect("volume")
        .reports_block_cloning
}

#[test]
fn clone_or_copy_without_block_cloning_copies_identical_bytes_and_says_why() {
    let t = tempfile::tempdir().expect("tempdir");
    let data = pattern((1 << 20) + 123);
    let (src, dst) = (t.path().join("src.bin"), t.path().join("dst.bin"));
    std::fs::write(&src, &data).expect("write");
    let method = clone_or_copy(&src, &dst).expect("clone_or_copy");
    if clones_here(t.path()) {
        assert_eq!(
            method,
            CopyMethod::Cloned {
                bytes: data.len() as u64
            }
        );
    } else {
        assert_eq!(
            method,
            CopyMethod::Copied {
                bytes: data.len() as u64,
                because: UnsupportedCause::Filesystem
            }
        );
    }
    assert_eq!(std::fs::read(&dst).expect("read dst"), data);
    assert_eq!(std::fs::read(&src).expect("read src"), data);
}

#[test]
fn clone_or_copy_of_an_empty_file_makes_an_empty_file() {
    let t = tempfile::tempdir().expect("tempdir");
    let (src, dst) = (t.path().join("empty"), t.path().join("copy"));
    std::fs::write(&src, b"").expect("write");
    let method = clone_or_copy(&src, &dst).expect("clone_or_copy");
    assert!(
        matches!(
            method,
            CopyMethod::Copied { bytes: 0, .. } | CopyMethod::Cloned { bytes: 0 }
        ),
        "{method:?}"
    );
    assert_eq!(std::fs::metadata(&dst).expect("stat").len(), 0);
}

#[test]
fn try_reflink_without_block_cloning_is_unsupported_and_leaves_no_destination() {
    let t = tempfile::tempdir().expect("tempdir");
    let (src, dst) = (t.path().join("src"), t.path().join("dst"));
    std::fs::write(&src, pattern(5000)).expect("write");
    if clones_here(t.path()) {
        assert_eq!(
            try_reflink(&src, &dst).expect("clone"),
            ReflinkOutcome::Cloned
        );
        assert_eq!(std::fs::read(&dst).expect("read"), pattern(5000));
        return;
    }
    assert_eq!(
        try_reflink(&src, &dst).expect("try_reflink"),
        ReflinkOutcome::Unsupported(UnsupportedCause::Filesystem)
    );
    assert_eq!(names(t.path()), ["src"]);
}

#[test]
fn an_existing_destination_is_refused_and_left_unchanged() {
    let t = tempfile::tempdir().expect("tempdir");
    let (src, dst) = (t.path().join("src"), t.path().join("dst"));
    std::fs::write(&src, b"new bytes").expect("write");
    std::fs::write(&dst, b"keep me").expect("write");
    for run in [
        |s: &Path, d: &Path| clone_or_copy(s, d).map(|_| ()),
        |s: &Path, d: &Path| try_reflink(s, d).map(|_| ()),
    ] {
        let e = run(&src, &dst).expect_err("dst exists");
        assert_eq!(e.kind(), ErrorKind::AlreadyExists, "{e}");
        assert!(e.to_string().contains("dst"), "{e}");
        assert_eq!(std::fs::read(&dst).expect("read"), b"keep me");
    }
    assert_eq!(names(t.path()), ["dst", "src"]);
}

#[test]
fn an_existing_directory_at_the_destination_is_refused_and_left_alone() {
    let t = tempfile::tempdir().expect("tempdir");
    let (src, dst) = (t.path().join("src"), t.path().join("dir"));
    std::fs::write(&src, b"x").expect("write");
    std::fs::create_dir(&dst).expect("mkdir");
    let e = clone_or_copy(&src, &dst).expect_err("a directory is there");
    assert_eq!(e.kind(), ErrorKind::AlreadyExists, "{e}");
    assert!(names(&dst).is_empty());
}

#[test]
fn a_vanished_source_is_classified_as_vanished() {
    let t = tempfile::tempdir().expect("tempdir");
    let (src, dst) = (t.path().join("gone"), t.path().join("dst"));
    assert_eq!(
        try_reflink(&src, &dst).expect("try_reflink"),
        ReflinkOutcome::SourceVanished
    );
    let e = clone_or_copy(&src, &dst).expect_err("nothing to copy");
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    assert!(e.to_string().contains("gone"), "{e}");
    // A missing parent directory of the source is a vanished source too.
    assert_eq!(
        try_reflink(&t.path().join("no-dir").join("f"), &dst).expect("try_reflink"),
        ReflinkOutcome::SourceVanished
    );
    assert!(names(t.path()).is_empty());
}

#[test]
fn names_windows_cannot_hold_are_refused_before_anything_is_written() {
    let t = tempfile::tempdir().expect("tempdir");
    let src = t.path().join("src");
    std::fs::write(&src, b"data").expect("write");
    for name in [
        "aux.txt",
        "CON",
        "nul",
        "com1.log",
        "LPT9",
        "conin$",
        "trailing.",
        "trailing ",
        "a<b",
        "a>b",
        "a\"b",
        "a|b",
        "a?b",
        "a*b",
        "tab\tname",
    ] {
        let dst = t.path().join(name);
        for e in [
            clone_or_copy(&src, &dst).expect_err(name),
            try_reflink(&src, &dst).expect_err(name),
        ] {
            assert_eq!(e.kind(), ErrorKind::InvalidInput, "{name:?}: {e}");
            assert!(e.to_string().contains("Windows cannot hold"), "{e}");
        }
        assert_eq!(names(t.path()), ["src"], "after {name:?}");
    }
}

#[test]
fn a_directory_as_the_source_is_not_a_regular_file() {
    let t = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(t.path().join("d")).expect("mkdir");
    let e = clone_or_copy(&t.path().join("d"), &t.path().join("dst")).expect_err("directory");
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    assert_eq!(names(t.path()), ["d"]);
}

#[test]
fn the_probe_names_the_volume_and_probes_each_pair_once() {
    let t = tempfile::tempdir().expect("tempdir");
    let (a, b) = (t.path().join("a"), t.path().join("b"));
    std::fs::create_dir(&a).expect("mkdir");
    std::fs::create_dir(&b).expect("mkdir");
    let cache = ProbeCache::new();
    let report = cache.probe(&a, &b).expect("probe");
    eprintln!("probe: {report:?}");
    assert!(!report.src.filesystem.is_empty(), "{report:?}");
    assert!(report.src.cluster_size.is_power_of_two(), "{report:?}");
    assert!(report.same_volume());
    if report.src.reports_block_cloning {
        assert_eq!(report.reflink, Ok(()));
    } else {
        assert_eq!(report.reflink, Err(UnsupportedCause::Filesystem));
    }
    assert_eq!(cache.reflink(&b, &a).expect("cached"), report.reflink);
    assert_eq!(cache.syscalls(), 1, "one probe per volume pair");
    assert!(
        names(&a).is_empty() && names(&b).is_empty(),
        "scratch files left"
    );
}

/// Makes `link` a symlink to `target`, or says why not and returns false: Wine 8.0's
/// `CreateSymbolicLinkW` reports success and creates nothing, and Windows without Developer
/// Mode refuses it. The tests that need a reparse point then do not run, and say so.
fn symlink_or_say_why_not(target: &Path, link: &Path) -> bool {
    let made = std::os::windows::fs::symlink_file(target, link);
    let is_link = std::fs::symlink_metadata(link).is_ok_and(|m| m.file_type().is_symlink());
    if !is_link {
        eprintln!("NOT RUN: no symlink could be made here ({made:?}, nothing at {link:?})");
    }
    is_link
}

#[test]
fn a_symlink_at_the_destination_is_refused_and_its_target_left_unchanged() {
    let t = tempfile::tempdir().expect("tempdir");
    let (src, dst, target) = (
        t.path().join("src"),
        t.path().join("link"),
        t.path().join("target"),
    );
    std::fs::write(&src, b"new bytes").expect("write");
    std::fs::write(&target, b"keep me").expect("write");
    if !symlink_or_say_why_not(&target, &dst) {
        return;
    }
    for e in [
        clone_or_copy(&src, &dst).expect_err("dst is a symlink"),
        try_reflink(&src, &dst)
            .map(|_| ())
            .expect_err("dst is a symlink"),
    ] {
        assert_eq!(e.kind(), ErrorKind::AlreadyExists, "{e}");
    }
    assert_eq!(std::fs::read(&target).expect("read"), b"keep me");
    assert!(
        std::fs::symlink_metadata(&dst)
            .expect("lstat")
            .file_type()
            .is_symlink()
    );
}

#[test]
fn a_symlink_as_the_source_is_not_followed() {
    let t = tempfile::tempdir().expect("tempdir");
    let (target, link, dst) = (
        t.path().join("target"),
        t.path().join("link"),
        t.path().join("dst"),
    );
    std::fs::write(&target, b"through the link").expect("write");
    if !symlink_or_say_why_not(&target, &link) {
        return;
    }
    let e = clone_or_copy(&link, &dst).expect_err("a symlink source");
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    assert!(!dst.exists());
}
