//! Hostile sources on real XFS: symlink loops and symlinks pointing outside, names with
//! newlines, backslashes and control characters, very deep trees, and a directory of many
//! empty files.
//!
//! `a_directory_of_many_empty_files_clones` uses 100,000 files in the full tier (.ci/run),
//! 20,000 in the README's run; with `COWTREE_TEST_HEAVY=1` it uses 1,000,000 (too slow for the
//! CI budget on two cores).

use crate::common;

use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::common::*;
use cowtree_fs::dir::Dir;
use cowtree_testutil::tree::{assert_same_tree, snapshot as tree_of};
use cowtree_testutil::{Fs, pattern, scratch};

fn odd_names() -> Vec<&'static [u8]> {
    vec![
        b"new\nline",
        b"back\\slash",
        b"ctl\x01\x02\x1b[31mred",
        b"tab\there",
        b"\xff\xfe not utf-8",
        b" leading space",
        b"-dash",
        b"trailing space ",
        b"quote\"'",
        b"..dots",
    ]
}

/// A source full of symlinks that must be copied, never followed, and odd names.
fn hostile_src(root: &Path) -> PathBuf {
    let src = root.join("src");
    fs::create_dir_all(src.join("sub")).unwrap();
    symlink("loop2", src.join("loop1")).unwrap();
    symlink("loop1", src.join("loop2")).unwrap();
    symlink("self", src.join("self")).unwrap();
    symlink(".", src.join("dot")).unwrap();
    symlink("..", src.join("sub/up")).unwrap();
    symlink("/etc", src.join("abs-out")).unwrap();
    symlink("../outside/secret", src.join("rel-out")).unwrap();
    symlink("../outside/dir", src.join("rel-out-dir")).unwrap();
    symlink(root.join("outside"), src.join("sub/abs-out-dir")).unwrap();
    for (i, n) in odd_names().into_iter().enumerate() {
        let name = OsStr::from_bytes(n);
        fs::write(src.join(name), pattern(100 + i, i as u64)).unwrap();
        fs::create_dir(src.join("sub").join(name)).unwrap();
        fs::write(src.join("sub").join(name).join(name), b"x").unwrap();
        symlink(name, src.join(format!("link{i}"))).unwrap();
    }
    src
}

fn outside(root: &Path) -> PathBuf {
    let o = root.join("outside");
    fs::create_dir_all(o.join("dir")).unwrap();
    fs::write(o.join("secret"), b"secret").unwrap();
    o
}

#[test]
fn clone_copies_symlinks_and_odd_names_exactly_and_follows_nothing() {
    let Some(dir) = scratch(Fs::Xfs) else { return };
    let root = dir.path();
    outside(root);
    let src = hostile_src(root);
    let dst = root.join("dst");
    let before = capture_except(root, &[&dst]);
    cowtree_plain(&[s("clone"), src.as_os_str(), dst.as_os_str()]).assert_ok("clone");
    before.assert_same(&capture_except(root, &[&dst]), "clone of a hostile source");
    assert_same_tree(&tree_of(&src), &tree_of(&dst), true);
    // A clone over the finished clone (overwrite) stays inside too, even through `dot` and
    // `sub/up`, which point back into DST.
    cowtree_plain(&[
        s("clone"),
        s("--on-existing"),
        s("overwrite"),
        src.as_os_str(),
        dst.as_os_str(),
    ])
    .assert_ok("clone over the clone");
    before.assert_same(&capture_except(root, &[&dst]), "second clone");
    // Directories merged into keep their own times (documented), so compare without times.
    assert_same_tree(&tree_of(&src), &tree_of(&dst), false);
}

#[test]
fn snapshot_and_checkout_record_symlinks_and_odd_names_exactly_and_follow_nothing() {
    let Some(dir) = scratch(Fs::Xfs) else { return };
    let root = dir.path();
    outside(root);
    let src = hostile_src(root);
    let store = root.join("store");
    let dst = root.join("wt");
    common::init_store(&store);
    let before = capture_except(root, &[&store]);
    let id = snapshot(&store, &src);
    before.assert_same(&capture_except(root, &[&store]), "snapshot");
    let before = capture_except(root, &[&dst, &store.join("worktrees")]);
    cowtree(&store, &[s("checkout"), s(&id), dst.as_os_str()]).assert_ok("checkout");
    before.assert_same(
        &capture_except(root, &[&dst, &store.join("worktrees")]),
        "checkout",
    );
    // Times are not part of a snapshot; everything else is.
    assert_same_tree(&tree_of(&src), &tree_of(&dst), false);
    assert_verify_ok(&store, "after the hostile source");
}

/// Builds `depth` nested directories named `a` under `top` (relative calls: the full paths are
/// far over PATH_MAX) with a file `bottom` in the deepest one.
fn deep_tree(top: &Path, depth: usize) {
    fs::create_dir(top).unwrap();
    let mut d = Dir::open(top).unwrap();
    for _ in 0..depth {
        d = d.create_dir_open(OsStr::new("a"), 0o755).unwrap();
    }
    let fd = rustix::fs::openat(
        &d,
        "bottom",
        rustix::fs::OFlags::WRONLY | rustix::fs::OFlags::CREATE | rustix::fs::OFlags::EXCL,
        rustix::fs::Mode::from_raw_mode(0o644),
    )
    .unwrap();
    rustix::io::write(&fd, b"deep").unwrap();
}

/// Walks `depth` levels of `a` under `top` and reads `bottom`.
fn read_deep(top: &Path, depth: usize) -> Vec<u8> {
    let mut d = Dir::open(top).unwrap();
    for level in 0..depth {
        d = d
            .open_dir(OsStr::new("a"))
            .unwrap_or_else(|e| panic!("level {level}: {e}"));
    }
    assert!(
        d.try_stat(OsStr::new("a")).unwrap().is_none(),
        "deeper than the source"
    );
    let fd = rustix::fs::openat(
        &d,
        "bottom",
        rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::NOFOLLOW,
        rustix::fs::Mode::empty(),
    )
    .unwrap();
    let mut out = Vec::new();
    std::io::Read::read_to_end(&mut fs::File::from(fd), &mut out).unwrap();
    out
}

/// Removes a tree deeper than PATH_MAX (`remove_dir_all` may not cope) by cowtree's own
/// iterative remover.
fn remove_deep(parent: &Path, name: &str) {
    Dir::open(parent)
        .unwrap()
        .remove_tree(OsStr::new(name))
        .unwrap();
}

const DEEP: usize = 5000;

#[test]
fn clone_of_a_tree_5000_directories_deep_works() {
    let Some(dir) = scratch(Fs::Xfs) else { return };
    let root = dir.path();
    let src = root.join("src");
    deep_tree(&src, DEEP);
    let dst = root.join("dst");
    let r = cowtree_plain(&[s("clone"), src.as_os_str(), dst.as_os_str()]);
    r.assert_ok("clone of a 5000-deep tree");
    assert_eq!(read_deep(&dst, DEEP), b"deep");
    remove_deep(root, "src");
    remove_deep(root, "dst");
}

#[test]
fn snapshot_of_a_tree_5000_directories_deep_is_refused_with_the_path_limit() {
    let Some(dir) = scratch(Fs::Xfs) else { return };
    let root = dir.path();
    let src = root.join("src");
    deep_tree(&src, DEEP);
    let store = root.join("store");
    common::init_store(&store);
    let r = cowtree(&store, &[s("snapshot"), src.as_os_str()]);
    r.assert_error("snapshot of a 5000-deep tree");
    assert!(r.stderr.contains("limit 4096"), "{}", r.stderr);
    assert_eq!(fs::read_dir(store.join("snapshots")).unwrap().count(), 0);
    assert_verify_ok(&store, "after the refused deep snapshot");
    // Within the limit (2047 levels: "a/" * 2047 + "bottom" = 4100 > 4096, so 2045) the same
    // shape is recorded and checked out.
    remove_deep(root, "src");
    let depth = 2045;
    deep_tree(&src, depth);
    let id = snapshot(&store, &src);
    let dst = root.join("wt");
    cowtree(&store, &[s("checkout"), s(&id), dst.as_os_str()]).assert_ok("deep checkout");
    assert_eq!(read_deep(&dst, depth), b"deep");
    remove_deep(root, "src");
    remove_deep(root, "wt");
}

#[test]
fn a_directory_of_many_empty_files_clones() {
    let Some(dir) = scratch(Fs::Xfs) else { return };
    let heavy = std::env::var_os("COWTREE_TEST_HEAVY").is_some_and(|v| v == "1");
    // 100,000 in the full tier, 20,000 in the README's run (each far more than one directory
    // read returns at once), 1,000,000 with COWTREE_TEST_HEAVY=1.
    let n = if heavy {
        1_000_000
    } else {
        cowtree_testutil::fewer("files", 100_000, 20_000) as usize
    };
    let root = dir.path();
    let src = root.join("src");
    fs::create_dir(&src).unwrap();
    let d = Dir::open(&src).unwrap();
    let started = Instant::now();
    for i in 0..n {
        let fd = rustix::fs::openat(
            &d,
            format!("f{i:07}").as_str(),
            rustix::fs::OFlags::WRONLY | rustix::fs::OFlags::CREATE | rustix::fs::OFlags::EXCL,
            rustix::fs::Mode::from_raw_mode(0o644),
        )
        .unwrap();
        drop(fd);
    }
    let made = started.elapsed();
    let dst = root.join("dst");
    let mut c = bin();
    c.args([s("clone"), s("--json"), src.as_os_str(), dst.as_os_str()]);
    let started = Instant::now();
    let r = run_limited(c, Duration::from_secs(900));
    let took = started.elapsed();
    r.assert_ok("clone of many empty files");
    assert_eq!(r.json()["files"], n as u64);
    let count = Dir::open(&dst).unwrap().entries().unwrap().len();
    assert_eq!(count, n);
    println!(
        "{n} empty files: created in {made:?}, cloned in {took:?}, peak RSS {} MiB",
        r.maxrss_kib / 1024
    );
}
